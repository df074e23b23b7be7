/*
 * SPEC.md 1, the ABI: a FreeBSD 12 program's view of <sys/event.h> holds here byte for byte.
 * struct kevent is 64 bytes with FreeBSD 12's field offsets and types (ident a uintptr_t,
 * filter a short, flags an unsigned short, fflags an unsigned int, data an int64_t, udata a
 * pointer, ext four uint64_t), and the filter, flag and note values are FreeBSD's, so that
 * an event list written or read by raw offsets (serialised, shared, or built by another
 * language's FFI) means the same thing here.
 */
#include "kqtest.h"

#include <stddef.h>

/* Checked by the compiler too: a layout change does not even build. */
_Static_assert(sizeof(struct kevent) == 64, "struct kevent is 64 bytes (FreeBSD 12)");
_Static_assert(offsetof(struct kevent, ident) == 0, "ident at 0");
_Static_assert(offsetof(struct kevent, filter) == 8, "filter at 8");
_Static_assert(offsetof(struct kevent, flags) == 10, "flags at 10");
_Static_assert(offsetof(struct kevent, fflags) == 12, "fflags at 12");
_Static_assert(offsetof(struct kevent, data) == 16, "data at 16");
_Static_assert(offsetof(struct kevent, udata) == 24, "udata at 24");
_Static_assert(offsetof(struct kevent, ext) == 32, "ext at 32");

#define FIELD_SIZE(field) sizeof(((struct kevent *)0)->field)

TEST(test_abi_struct_kevent_is_64_bytes_with_freebsd_12_offsets_and_types) {
    CHECK_EQ_INT(sizeof(struct kevent), 64);
    CHECK_EQ_INT(_Alignof(struct kevent), 8);
    CHECK_EQ_INT(offsetof(struct kevent, ident), 0);
    CHECK_EQ_INT(offsetof(struct kevent, filter), 8);
    CHECK_EQ_INT(offsetof(struct kevent, flags), 10);
    CHECK_EQ_INT(offsetof(struct kevent, fflags), 12);
    CHECK_EQ_INT(offsetof(struct kevent, data), 16);
    CHECK_EQ_INT(offsetof(struct kevent, udata), 24);
    CHECK_EQ_INT(offsetof(struct kevent, ext), 32);
    CHECK_EQ_INT(FIELD_SIZE(ident), sizeof(uintptr_t));
    CHECK_EQ_INT(FIELD_SIZE(filter), 2);
    CHECK_EQ_INT(FIELD_SIZE(flags), 2);
    CHECK_EQ_INT(FIELD_SIZE(fflags), 4);
    CHECK_EQ_INT(FIELD_SIZE(data), 8);
    CHECK_EQ_INT(FIELD_SIZE(udata), sizeof(void *));
    CHECK_EQ_INT(FIELD_SIZE(ext), 32);
    /* Signedness: filter and data are signed, flags and fflags unsigned. */
    struct kevent ev;
    memset(&ev, 0xff, sizeof ev);
    CHECK(ev.filter < 0);
    CHECK(ev.data < 0);
    CHECK(ev.flags > 0);
    CHECK(ev.fflags > 0);
}

TEST(test_abi_ev_set_fills_the_fields_in_freebsds_order_and_clears_ext) {
    struct kevent ev;
    memset(&ev, 0xab, sizeof ev);
    EV_SET(&ev, 7, EVFILT_WRITE, EV_ADD | EV_CLEAR, NOTE_LOWAT, 512, (void *)0x1234);
    CHECK_EQ_HEX(ev.ident, 7);
    CHECK_EQ_INT(ev.filter, EVFILT_WRITE);
    CHECK_EQ_HEX(ev.flags, EV_ADD | EV_CLEAR);
    CHECK_EQ_HEX(ev.fflags, NOTE_LOWAT);
    CHECK_EQ_INT(ev.data, 512);
    CHECK_EQ_HEX(ev.udata, 0x1234);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(ev.ext[i], 0);
}

TEST(test_abi_filter_values_are_freebsd_12s) {
    CHECK_EQ_INT(EVFILT_READ, -1);
    CHECK_EQ_INT(EVFILT_WRITE, -2);
    CHECK_EQ_INT(EVFILT_AIO, -3);
    CHECK_EQ_INT(EVFILT_VNODE, -4);
    CHECK_EQ_INT(EVFILT_PROC, -5);
    CHECK_EQ_INT(EVFILT_SIGNAL, -6);
    CHECK_EQ_INT(EVFILT_TIMER, -7);
    CHECK_EQ_INT(EVFILT_PROCDESC, -8);
    CHECK_EQ_INT(EVFILT_FS, -9);
    CHECK_EQ_INT(EVFILT_LIO, -10);
    CHECK_EQ_INT(EVFILT_USER, -11);
    CHECK_EQ_INT(EVFILT_SENDFILE, -12);
    CHECK_EQ_INT(EVFILT_EMPTY, -13);
    CHECK_EQ_INT(EVFILT_SYSCOUNT, 13);
}

TEST(test_abi_flag_values_are_freebsd_12s) {
    CHECK_EQ_HEX(EV_ADD, 0x0001);
    CHECK_EQ_HEX(EV_DELETE, 0x0002);
    CHECK_EQ_HEX(EV_ENABLE, 0x0004);
    CHECK_EQ_HEX(EV_DISABLE, 0x0008);
    CHECK_EQ_HEX(EV_ONESHOT, 0x0010);
    CHECK_EQ_HEX(EV_CLEAR, 0x0020);
    CHECK_EQ_HEX(EV_RECEIPT, 0x0040);
    CHECK_EQ_HEX(EV_DISPATCH, 0x0080);
    CHECK_EQ_HEX(EV_FORCEONESHOT, 0x0100);
    CHECK_EQ_HEX(EV_KEEPUDATA, 0x0200);
    CHECK_EQ_HEX(EV_SYSFLAGS, 0xF000);
    CHECK_EQ_HEX(EV_DROP, 0x1000);
    CHECK_EQ_HEX(EV_FLAG1, 0x2000);
    CHECK_EQ_HEX(EV_FLAG2, 0x4000);
    CHECK_EQ_HEX(EV_EOF, 0x8000);
    CHECK_EQ_HEX(EV_ERROR, 0x4000);
}

TEST(test_abi_note_values_are_freebsd_12s) {
    CHECK_EQ_HEX(NOTE_FFNOP, 0);
    CHECK_EQ_HEX(NOTE_FFAND, 0x40000000);
    CHECK_EQ_HEX(NOTE_FFOR, 0x80000000);
    CHECK_EQ_HEX(NOTE_FFCOPY, 0xc0000000);
    CHECK_EQ_HEX(NOTE_FFCTRLMASK, 0xc0000000);
    CHECK_EQ_HEX(NOTE_FFLAGSMASK, 0x00ffffff);
    CHECK_EQ_HEX(NOTE_TRIGGER, 0x01000000);
    CHECK_EQ_HEX(NOTE_LOWAT, 0x0001);
    CHECK_EQ_HEX(NOTE_FILE_POLL, 0x0002);
    CHECK_EQ_HEX(NOTE_DELETE, 0x0001);
    CHECK_EQ_HEX(NOTE_WRITE, 0x0002);
    CHECK_EQ_HEX(NOTE_EXTEND, 0x0004);
    CHECK_EQ_HEX(NOTE_ATTRIB, 0x0008);
    CHECK_EQ_HEX(NOTE_LINK, 0x0010);
    CHECK_EQ_HEX(NOTE_RENAME, 0x0020);
    CHECK_EQ_HEX(NOTE_REVOKE, 0x0040);
    CHECK_EQ_HEX(NOTE_OPEN, 0x0080);
    CHECK_EQ_HEX(NOTE_CLOSE, 0x0100);
    CHECK_EQ_HEX(NOTE_CLOSE_WRITE, 0x0200);
    CHECK_EQ_HEX(NOTE_READ, 0x0400);
    CHECK_EQ_HEX(NOTE_EXIT, 0x80000000);
    CHECK_EQ_HEX(NOTE_FORK, 0x40000000);
    CHECK_EQ_HEX(NOTE_EXEC, 0x20000000);
    CHECK_EQ_HEX(NOTE_PCTRLMASK, 0xf0000000);
    CHECK_EQ_HEX(NOTE_PDATAMASK, 0x000fffff);
    CHECK_EQ_HEX(NOTE_TRACK, 0x00000001);
    CHECK_EQ_HEX(NOTE_TRACKERR, 0x00000002);
    CHECK_EQ_HEX(NOTE_CHILD, 0x00000004);
    CHECK_EQ_HEX(NOTE_SECONDS, 0x00000001);
    CHECK_EQ_HEX(NOTE_MSECONDS, 0x00000002);
    CHECK_EQ_HEX(NOTE_USECONDS, 0x00000004);
    CHECK_EQ_HEX(NOTE_NSECONDS, 0x00000008);
    CHECK_EQ_HEX(NOTE_ABSTIME, 0x00000010);
}

RUN_TESTS()
