/*
 * SPEC.md 3, EVFILT_FS (FreeBSD's filt_fsattach/filt_fsevent in vfs_subr.c): mounts and
 * unmounts, reported as VQ_MOUNT and VQ_UNMOUNT in fflags, with EV_CLEAR added, data 0. Any
 * ident is accepted (FreeBSD checks none); the registration's fflags are ignored.
 *
 * Every test mounts in a private mount namespace of its own child (unshare(CLONE_NEWNS), "/"
 * made private, a tmpfs in a temporary directory), so nothing leaks to the machine; where the
 * namespace cannot be made (no CAP_SYS_ADMIN), the test is skipped with the reason.
 */
#include "kqtest.h"

#include <dlfcn.h>
#include <sched.h>
#include <sys/fanotify.h>
#include <sys/mount.h>

static char where[64];

/* In the child: a private mount namespace and a directory to mount on, or SKIP. */
static void private_namespace(void) {
    if (unshare(CLONE_NEWNS) != 0)
        SKIP("unshare(CLONE_NEWNS): %s (mount namespaces need CAP_SYS_ADMIN)", strerror(errno));
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        SKIP("making / private in the new namespace: %s", strerror(errno));
    kq_tmpdir(where, sizeof where);
}

static void mount_tmpfs(const char *path) {
    if (mount("kqtest", path, "tmpfs", 0, "size=64k") != 0) SKIP("mount tmpfs: %s", strerror(errno));
}

static void unmount(const char *path) { CHECK_SYS(umount(path)); }

/* The one event of a bounded wait: an EVFILT_FS event for `ident` with `fflags`. */
static void check_fs_event(int kq, uintptr_t ident, unsigned fflags) {
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 2000);
    CHECK_EQ_INT(ev.ident, ident);
    CHECK_EQ_INT(ev.filter, EVFILT_FS);
    CHECK_EQ_HEX(ev.flags, EV_CLEAR);
    CHECK_EQ_HEX(ev.fflags, fflags);
    CHECK_EQ_INT(ev.data, 0);
}

static void mount_then_unmount(void *arg) {
    (void)arg;
    private_namespace();
    int kq = kq_new();
    KQ_SET(kq, 0, EVFILT_FS, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    mount_tmpfs(where);
    check_fs_event(kq, 0, VQ_MOUNT);
    CHECK_NO_EVENT(kq); /* EV_CLEAR: once */
    unmount(where);
    check_fs_event(kq, 0, VQ_UNMOUNT);
    CHECK_NO_EVENT(kq);
    close(kq);
    rmdir(where);
}

TEST(test_fs_mount_then_unmount_in_private_namespace) { kq_run_child(mount_then_unmount, NULL, 8000); }

/* Several changes between two collections make one event with every bit (FreeBSD ORs the
 * hints into kn_fflags). An unmount and a mount on the same place (Linux may give the new
 * mount the old one's 32-bit ID) are both seen: listmount's IDs are never reused. */
static void merged(void *arg) {
    (void)arg;
    private_namespace();
    mount_tmpfs(where);
    int kq = kq_new();
    KQ_SET(kq, 0, EVFILT_FS, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    unmount(where);
    mount_tmpfs(where);
    check_fs_event(kq, 0, VQ_MOUNT | VQ_UNMOUNT);
    /* A mount attached and detached again before the kqueue looks: only fanotify's mount
     * events (Linux 6.15+, CAP_SYS_ADMIN) show it; the mount table keeps no trace. */
    int probe = fanotify_init(0x00004000 /* FAN_REPORT_MNT */, 0);
    if (probe >= 0) {
        close(probe);
        char inner[96];
        snprintf(inner, sizeof inner, "%s/inner", where);
        CHECK_SYS(mkdir(inner, 0700));
        mount_tmpfs(inner);
        unmount(inner);
        check_fs_event(kq, 0, VQ_MOUNT | VQ_UNMOUNT);
    }
    unmount(where);
    check_fs_event(kq, 0, VQ_UNMOUNT);
    close(kq);
    rmdir(where);
}

TEST(test_fs_changes_between_collections_merge_into_one_event) { kq_run_child(merged, NULL, 8000); }

/* FreeBSD's kqueue_register looks up a non-descriptor knote by (ident, filter) and
 * filt_fsattach checks nothing: a nonzero ident is accepted and is a knote of its own. The
 * registration's fflags are ignored: every VQ_* bit is reported. */
static void idents(void *arg) {
    (void)arg;
    private_namespace();
    int kq = kq_new();
    KQ_SET(kq, 0, EVFILT_FS, EV_ADD, 0, 0, (void *)1);
    KQ_SET(kq, 42, EVFILT_FS, EV_ADD, VQ_UNMOUNT, 0, (void *)2);
    KQ_SET(kq, UINTPTR_MAX, EVFILT_FS, EV_ADD | EV_ONESHOT, 0, 0, (void *)3);
    CHECK_NO_EVENT(kq);
    mount_tmpfs(where);
    struct kevent ev[4];
    int n = KQ_WAIT(kq, ev, 4, 2000);
    if (n < 3) n += KQ_WAIT(kq, ev + n, 4 - n, 500);
    CHECK_EQ_INT(n, 3);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        CHECK_EQ_INT(ev[i].filter, EVFILT_FS);
        CHECK_EQ_HEX(ev[i].fflags, VQ_MOUNT);
        if (ev[i].ident == 0 && ev[i].udata == (void *)1) seen |= 1;
        if (ev[i].ident == 42 && ev[i].udata == (void *)2) seen |= 2;
        if (ev[i].ident == UINTPTR_MAX && ev[i].udata == (void *)3) {
            CHECK_EQ_HEX(ev[i].flags, EV_CLEAR | EV_ONESHOT);
            seen |= 4;
        }
    }
    CHECK_EQ_INT(seen, 7);
    CHECK_EQ_INT(kq_change_errno(kq, UINTPTR_MAX, EVFILT_FS, EV_DELETE, 0, 0, NULL), ENOENT);
    KQ_SET(kq, 42, EVFILT_FS, EV_DELETE, 0, 0, NULL);
    unmount(where);
    check_fs_event(kq, 0, VQ_UNMOUNT);
    close(kq);
    rmdir(where);
}

TEST(test_fs_any_ident_accepted_each_knote_fires_fflags_ignored) { kq_run_child(idents, NULL, 8000); }

/* FreeBSD 12 signals a mount and an unmount, not an update (MNT_UPDATE): a remount changes
 * no mount ID here and is not reported. */
static void remount(void *arg) {
    (void)arg;
    private_namespace();
    mount_tmpfs(where);
    int kq = kq_new();
    KQ_SET(kq, 0, EVFILT_FS, EV_ADD, 0, 0, NULL);
    CHECK_SYS(mount(NULL, where, NULL, MS_REMOUNT | MS_RDONLY, NULL));
    CHECK_NO_EVENT_WITHIN(kq, 50);
    unmount(where);
    check_fs_event(kq, 0, VQ_UNMOUNT);
    close(kq);
    rmdir(where);
}

TEST(test_fs_remount_is_not_reported) { kq_run_child(remount, NULL, 8000); }

/* A knote registered after a change does not report it (FreeBSD: the hint went to the knotes
 * on the list at the time); one already registered does. A disabled knote keeps recording. */
static void later(void *arg) {
    (void)arg;
    private_namespace();
    int kq = kq_new();
    KQ_SET(kq, 1, EVFILT_FS, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, 3, EVFILT_FS, EV_ADD | EV_DISABLE, 0, 0, NULL);
    mount_tmpfs(where);
    KQ_SET(kq, 2, EVFILT_FS, EV_ADD, 0, 0, NULL);
    check_fs_event(kq, 1, VQ_MOUNT);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    KQ_SET(kq, 3, EVFILT_FS, EV_ENABLE, 0, 0, NULL);
    check_fs_event(kq, 3, VQ_MOUNT);
    unmount(where);
    struct kevent ev[4];
    int n = KQ_WAIT(kq, ev, 4, 2000);
    if (n < 3) n += KQ_WAIT(kq, ev + n, 4 - n, 500);
    CHECK_EQ_INT(n, 3);
    for (int i = 0; i < n; i++) CHECK_EQ_HEX(ev[i].fflags, VQ_UNMOUNT);
    close(kq);
    rmdir(where);
}

TEST(test_fs_knote_added_after_a_change_sees_only_later_ones) { kq_run_child(later, NULL, 8000); }

/* One descriptor (/proc/self/mountinfo) per kqueue however many FS knotes, closed with the
 * last of them. */
static void descriptors(void *arg) {
    (void)arg;
    private_namespace();
    int kq = kq_new();
    int base = kq_fd_count();
    KQ_SET(kq, 0, EVFILT_FS, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, 1, EVFILT_FS, EV_ADD, 0, 0, NULL);
    CHECK_EQ_INT(kq_fd_count(), base + 1);
    KQ_SET(kq, 0, EVFILT_FS, EV_DELETE, 0, 0, NULL);
    CHECK_EQ_INT(kq_fd_count(), base + 1);
    KQ_SET(kq, 1, EVFILT_FS, EV_DELETE, 0, 0, NULL);
    CHECK_EQ_INT(kq_fd_count(), base);
    /* Again from nothing: a fresh list, no stale change. */
    KQ_SET(kq, 0, EVFILT_FS, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    mount_tmpfs(where);
    check_fs_event(kq, 0, VQ_MOUNT);
    unmount(where);
    close(kq);
    rmdir(where);
}

TEST(test_fs_one_descriptor_per_kqueue_released_with_the_last_knote) { kq_run_child(descriptors, NULL, 8000); }

/* Without fanotify's mount events (no CAP_SYS_ADMIN over the namespace, or Linux before
 * 6.15), the mount table is compared before and after each change: listmount(2)'s IDs
 * (Linux 6.8+), or before 6.8 the IDs of /proc/self/mountinfo (a listmount that answers
 * ENOSYS stands for such a kernel, which has no mount events either). */
typedef int (*inject_fn)(const char *call, int error, int skip, int count);

static void mount_table(void *arg) {
    const char *call = arg;
    inject_fn inject = (inject_fn)dlsym(RTLD_DEFAULT, "kqueue_test_inject_fault");
    if (inject == NULL) SKIP("libkqueue.so has no fault injector (a release build)");
    private_namespace();
    CHECK_EQ_INT(inject(call, strcmp(call, "listmount") == 0 ? ENOSYS : EPERM, 0, 1000000), 0);
    int kq = kq_new();
    KQ_SET(kq, 0, EVFILT_FS, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    mount_tmpfs(where);
    check_fs_event(kq, 0, VQ_MOUNT);
    CHECK_NO_EVENT(kq);
    if (strcmp(call, "listmount") != 0) {
        /* Unique IDs: an unmount and a mount on the same place between two looks. */
        unmount(where);
        mount_tmpfs(where);
        check_fs_event(kq, 0, VQ_MOUNT | VQ_UNMOUNT);
    }
    unmount(where);
    check_fs_event(kq, 0, VQ_UNMOUNT);
    inject("read", 0, 0, 0);
    close(kq);
    rmdir(where);
}

TEST(test_fs_without_mount_events_compares_listmount_ids) { kq_run_child(mount_table, "fanotify_init", 8000); }

TEST(test_fs_without_listmount_compares_mountinfo_ids) { kq_run_child(mount_table, "listmount", 8000); }

/* The VQ_* values are FreeBSD's (<sys/mount.h> there; <sys/event.h> here). */
TEST(test_fs_vq_values_are_freebsd) {
    CHECK_EQ_HEX(VQ_NOTRESP, 0x1);
    CHECK_EQ_HEX(VQ_NEEDAUTH, 0x2);
    CHECK_EQ_HEX(VQ_LOWDISK, 0x4);
    CHECK_EQ_HEX(VQ_MOUNT, 0x8);
    CHECK_EQ_HEX(VQ_UNMOUNT, 0x10);
    CHECK_EQ_HEX(VQ_DEAD, 0x20);
    CHECK_EQ_HEX(VQ_ASSIST, 0x40);
    CHECK_EQ_HEX(VQ_NOTRESPLOCK, 0x80);
    CHECK_EQ_HEX(VQ_FLAG8000, 0x8000);
}

RUN_TESTS()
