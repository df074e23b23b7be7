/*
 * SPEC.md 3, EVFILT_VNODE: what causes each note on a file and on a directory, "all bits of
 * an occurrence" reporting, the watch following the inode, EV_CLEAR and level behaviour,
 * EBADF / EINVAL, and close(2) removing the knote. Every file lives in a fresh temporary
 * directory. Events are waited for with a bounded timeout.
 */
#include "kqtest.h"

#include <sys/resource.h>

#define WAIT_MS 2000

static char dir_path[64];

static void make_dir(void) {
    snprintf(dir_path, sizeof dir_path, "/tmp/kqvnode.XXXXXX");
    CHECK(mkdtemp(dir_path) != NULL);
}

static void path_in_dir(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", dir_path, name); }

static int make_file(const char *name, const char *content) {
    char path[128];
    path_in_dir(path, sizeof path, name);
    int fd = (int)CHECK_SYS(open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (content) kq_write_all(fd, content, strlen(content));
    return fd;
}

/* Waits for the one event of `ident` and returns its fflags (0 if none came). */
static unsigned wait_notes(int kq, int ident) {
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, WAIT_MS);
    CHECK_EQ_INT(ev.ident, ident);
    CHECK_EQ_INT(ev.filter, EVFILT_VNODE);
    return ev.fflags;
}

static void cleanup(void) {
    char command[128];
    snprintf(command, sizeof command, "rm -rf %s", dir_path);
    CHECK_EQ_INT(system(command), 0);
}

TEST(test_vnode_write_that_grows_reports_write_and_extend_even_to_write_only_watcher) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", "12345");
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL);
    CHECK_NO_EVENT(kq);
    kq_write_all(fd, "678", 3);
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_WRITE | NOTE_EXTEND);
    /* A write that does not grow the file: WRITE only. */
    CHECK_EQ_INT(pwrite(fd, "x", 1, 0), 1);
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_WRITE);
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_extend_only_watcher_sees_growth_with_write) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", "1");
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_EXTEND, 0, NULL);
    CHECK_EQ_INT(pwrite(fd, "x", 1, 0), 1); /* no growth: nothing wanted happened */
    CHECK_NO_EVENT_WITHIN(kq, 50);
    kq_write_all(fd, "23", 2);
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_WRITE | NOTE_EXTEND);
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_truncate_reports_attrib_and_write) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", "0123456789");
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_ATTRIB | NOTE_WRITE, 0, NULL);
    CHECK_SYS(ftruncate(fd, 2));
    /* One or two inotify events, merged into one kevent or two: collect what comes. */
    unsigned notes = wait_notes(kq, fd);
    struct kevent ev;
    struct timespec zero = {0, 0};
    if (kevent(kq, NULL, 0, &ev, 1, &zero) == 1) notes |= ev.fflags;
    CHECK_EQ_HEX(notes & (NOTE_ATTRIB | NOTE_WRITE), NOTE_ATTRIB | NOTE_WRITE);
    CHECK(!(notes & NOTE_EXTEND));
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_chmod_reports_attrib) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", NULL);
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_ATTRIB, 0, NULL);
    CHECK_SYS(fchmod(fd, 0600));
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_ATTRIB);
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_link_count_change_reports_link_and_last_unlink_reports_delete) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", "x");
    char a[128], b[128];
    path_in_dir(a, sizeof a, "a");
    path_in_dir(b, sizeof b, "b");
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_LINK | NOTE_DELETE, 0, NULL);
    CHECK_SYS(link(a, b));
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_LINK);
    CHECK_SYS(unlink(b));
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_LINK);
    CHECK_SYS(unlink(a));
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_DELETE);
    close(fd);
    close(kq);
    cleanup();
}

/* Several changes before one collection: every note of every occurrence is reported,
 * whatever their order (fstat shows the file after all of them: a write must not hide the
 * unlink that followed it). */
static void check_changes_collected_together(const char *steps, unsigned expected) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", "x");
    char a[128], b[128];
    path_in_dir(a, sizeof a, "a");
    path_in_dir(b, sizeof b, "b");
    const char *name = a;
    unsigned all = NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | NOTE_RENAME;
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, all, 0, NULL);
    for (const char *step = steps; *step; step++) {
        switch (*step) {
        case 'w': kq_write_all(fd, "more", 4); break;
        case 'u': CHECK_SYS(unlink(name)); break;
        case 'r': CHECK_SYS(rename(name, b)); name = b; break;
        case 'c': CHECK_SYS(fchmod(fd, 0600)); break;
        }
    }
    unsigned notes = wait_notes(kq, fd);
    CHECK_MSG(notes == expected, "steps %s: fflags 0x%x, expected 0x%x", steps, notes, expected);
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_write_then_unlink_collected_together_reports_delete) {
    check_changes_collected_together("wu", NOTE_WRITE | NOTE_EXTEND | NOTE_DELETE);
}

TEST(test_vnode_unlink_then_write_collected_together_reports_both) {
    check_changes_collected_together("uw", NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND);
}

TEST(test_vnode_rename_write_unlink_collected_together_reports_all) {
    check_changes_collected_together("rwu", NOTE_RENAME | NOTE_WRITE | NOTE_EXTEND | NOTE_DELETE);
}

TEST(test_vnode_chmod_then_unlink_collected_together_reports_attrib_and_delete) {
    check_changes_collected_together("cu", NOTE_ATTRIB | NOTE_DELETE);
}

TEST(test_vnode_rename_reports_rename_and_watch_follows_the_inode) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", "x");
    char a[128], b[128];
    path_in_dir(a, sizeof a, "a");
    path_in_dir(b, sizeof b, "b");
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_RENAME | NOTE_WRITE, 0, NULL);
    CHECK_SYS(rename(a, b));
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_RENAME);
    /* Still watched under its new name. */
    int other = (int)CHECK_SYS(open(b, O_WRONLY | O_APPEND | O_CLOEXEC));
    kq_write_all(other, "y", 1);
    CHECK(wait_notes(kq, fd) & NOTE_WRITE);
    close(other);
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_open_read_close_notes) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", "hello");
    char a[128];
    path_in_dir(a, sizeof a, "a");
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_OPEN, 0, NULL);
    int reader = (int)CHECK_SYS(open(a, O_RDONLY | O_CLOEXEC));
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_OPEN);
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_READ, 0, NULL);
    char buffer[8];
    CHECK_EQ_INT(read(reader, buffer, sizeof buffer), 5);
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_READ);
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_CLOSE | NOTE_CLOSE_WRITE, 0, NULL);
    close(reader);
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_CLOSE);
    int writer = (int)CHECK_SYS(open(a, O_WRONLY | O_CLOEXEC));
    close(writer);
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_CLOSE_WRITE);
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_directory_entry_changes_report_write_and_subdirectories_link) {
    make_dir();
    int kq = kq_new();
    int dfd = (int)CHECK_SYS(open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    KQ_SET(kq, dfd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE | NOTE_LINK, 0, NULL);
    int fd = make_file("f", NULL);
    CHECK_EQ_HEX(wait_notes(kq, dfd), NOTE_WRITE);
    char f[128], g[128], sub[128];
    path_in_dir(f, sizeof f, "f");
    path_in_dir(g, sizeof g, "g");
    path_in_dir(sub, sizeof sub, "sub");
    CHECK_SYS(rename(f, g)); /* a plain file moved within: WRITE only */
    unsigned notes = wait_notes(kq, dfd);
    struct kevent ev;
    struct timespec zero = {0, 0};
    if (kevent(kq, NULL, 0, &ev, 1, &zero) == 1) notes |= ev.fflags;
    CHECK_EQ_HEX(notes, NOTE_WRITE);
    CHECK_SYS(mkdir(sub, 0755));
    CHECK_EQ_HEX(wait_notes(kq, dfd), NOTE_WRITE | NOTE_LINK);
    /* A subdirectory renamed within: WRITE only (the link count does not change). */
    char sub2[128];
    path_in_dir(sub2, sizeof sub2, "sub2");
    CHECK_SYS(rename(sub, sub2));
    notes = wait_notes(kq, dfd);
    if (kevent(kq, NULL, 0, &ev, 1, &zero) == 1) notes |= ev.fflags;
    CHECK_EQ_HEX(notes, NOTE_WRITE);
    CHECK_SYS(rename(sub2, sub));
    notes = wait_notes(kq, dfd);
    if (kevent(kq, NULL, 0, &ev, 1, &zero) == 1) notes |= ev.fflags;
    CHECK_EQ_HEX(notes, NOTE_WRITE);
    CHECK_SYS(rmdir(sub));
    CHECK_EQ_HEX(wait_notes(kq, dfd), NOTE_WRITE | NOTE_LINK);
    CHECK_SYS(unlink(g));
    CHECK_EQ_HEX(wait_notes(kq, dfd), NOTE_WRITE);
    close(fd);
    close(dfd);
    close(kq);
    cleanup();
}

TEST(test_vnode_occurrences_merge_until_returned_and_ev_clear_resets) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", NULL);
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE | NOTE_ATTRIB, 0, NULL);
    kq_write_all(fd, "x", 1);
    CHECK_SYS(fchmod(fd, 0600));
    /* Both happened before the wait: one event with both notes (the first wait may race the
     * second inotify event, so collect for a bounded time). */
    unsigned notes = 0;
    for (int i = 0; i < 2 && (notes & (NOTE_WRITE | NOTE_ATTRIB)) != (NOTE_WRITE | NOTE_ATTRIB); i++)
        notes |= wait_notes(kq, fd);
    CHECK_EQ_HEX(notes & (NOTE_WRITE | NOTE_ATTRIB), NOTE_WRITE | NOTE_ATTRIB);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_without_ev_clear_stays_returned_as_on_freebsd) {
    /* FreeBSD's filter is ready while kn_fflags != 0, and only EV_CLEAR resets them. */
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", NULL);
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL);
    kq_write_all(fd, "x", 1);
    CHECK(wait_notes(kq, fd) & NOTE_WRITE);
    CHECK(wait_notes(kq, fd) & NOTE_WRITE);
    KQ_SET(kq, fd, EVFILT_VNODE, EV_DELETE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_unwanted_occurrence_is_not_reported) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", NULL);
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_RENAME, 0, NULL);
    kq_write_all(fd, "x", 1);
    CHECK_SYS(fchmod(fd, 0600));
    CHECK_NO_EVENT_WITHIN(kq, 50);
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_bad_descriptor_is_ebadf_and_non_vnodes_einval) {
    int kq = kq_new();
    int closed = (int)CHECK_SYS(dup(0));
    close(closed);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)closed, EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), EBADF);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)closed, EVFILT_VNODE, EV_DELETE, 0, 0, NULL), EBADF);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)1 << 40, EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), EBADF);
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)sv[0], EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), EINVAL);
    int p[2];
    kq_pipe(p);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)p[0], EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), EINVAL);
    int other = kq_new();
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)other, EVFILT_VNODE, EV_ADD, NOTE_WRITE, 0, NULL), EINVAL);
    close(other);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
    close(kq);
}

TEST(test_vnode_close_of_descriptor_removes_knote) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", NULL);
    char a[128];
    path_in_dir(a, sizeof a, "a");
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL);
    close(fd);
    /* The number is reused by another file: no knote, no stale event. */
    int again = (int)CHECK_SYS(open(a, O_RDWR | O_CLOEXEC));
    CHECK_EQ_INT(again, fd);
    kq_write_all(again, "x", 1);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)again, EVFILT_VNODE, EV_DELETE, 0, 0, NULL), ENOENT);
    close(again);
    close(kq);
    cleanup();
}

TEST(test_vnode_knotes_sharing_an_inode_and_a_read_knote_do_not_end_each_others_watch) {
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", NULL);
    char a[128];
    path_in_dir(a, sizeof a, "a");
    int second = (int)CHECK_SYS(open(a, O_RDWR | O_CLOEXEC));
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL);
    KQ_SET(kq, second, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL);
    KQ_SET(kq, fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    struct kevent ev[4];
    struct timespec zero = {0, 0};
    (void)kevent(kq, NULL, 0, ev, 4, &zero); /* the READ knote's initial state, if any */
    KQ_SET(kq, second, EVFILT_VNODE, EV_DELETE, 0, 0, NULL);
    KQ_SET(kq, fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
    kq_write_all(second, "x", 1);
    CHECK_EQ_HEX(wait_notes(kq, fd), NOTE_WRITE | NOTE_EXTEND);
    close(second);
    close(fd);
    close(kq);
    cleanup();
}

/* CPU time of this process, in ms. */
static long cpu_ms(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (long)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000 +
           (long)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000;
}

TEST(test_vnode_and_file_read_watches_removed_leave_an_idle_wait_idle) {
    /* Removing the last watch queues inotify's IN_IGNORED: it must be read, or epoll keeps
     * reporting the inotify descriptor and a wait spins instead of sleeping. */
    make_dir();
    int kq = kq_new();
    int fd = make_file("a", NULL);
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL);
    KQ_SET(kq, fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    struct kevent ev[4];
    struct timespec zero = {0, 0};
    (void)kevent(kq, NULL, 0, ev, 4, &zero);
    KQ_SET(kq, fd, EVFILT_VNODE, EV_DELETE, 0, 0, NULL);
    KQ_SET(kq, fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
    long before = cpu_ms();
    struct timespec limit = {0, 300 * 1000 * 1000};
    CHECK_EQ_INT(kevent(kq, NULL, 0, ev, 4, &limit), 0);
    long used = cpu_ms() - before;
    CHECK_MSG(used < 100, "an idle 300 ms wait used %ld ms of CPU", used);
    close(fd);
    close(kq);
    cleanup();
}

TEST(test_vnode_many_watched_files_use_one_descriptor) {
    enum { FILES = 64 };
    make_dir();
    int kq = kq_new();
    int fds[FILES];
    char name[16];
    for (int i = 0; i < FILES; i++) {
        snprintf(name, sizeof name, "f%d", i);
        fds[i] = make_file(name, NULL);
    }
    int before = kq_fd_count();
    for (int i = 0; i < FILES; i++) KQ_SET(kq, fds[i], EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL);
    CHECK(kq_fd_count() <= before + 1); /* the kqueue's inotify instance, created on first use */
    kq_write_all(fds[FILES - 1], "x", 1);
    CHECK_EQ_INT(wait_notes(kq, fds[FILES - 1]), NOTE_WRITE | NOTE_EXTEND);
    for (int i = 0; i < FILES; i++) close(fds[i]);
    close(kq);
    cleanup();
}

/* Bad input: a file deleted before registration. Its descriptor still names the inode, so
 * the registration succeeds (FreeBSD watches the vnode); the deletion already happened and is
 * not reported; later writes are. */
TEST(test_vnode_file_deleted_before_registration_watched_through_its_descriptor) {
    make_dir();
    int fd = make_file("gone", "");
    char path[128];
    path_in_dir(path, sizeof path, "gone");
    CHECK_SYS(unlink(path));
    int kq = kq_new();
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND, 0, NULL);
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(write(fd, "data", 4), 4);
    CHECK_EQ_INT(wait_notes(kq, fd), NOTE_WRITE | NOTE_EXTEND);
    CHECK_NO_EVENT(kq);
    close(fd);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)fd, EVFILT_VNODE, EV_DELETE, 0, 0, NULL), EBADF);
    close(kq);
    cleanup();
}

RUN_TESTS()
