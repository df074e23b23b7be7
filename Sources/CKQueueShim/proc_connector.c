/*
 * EVFILT_PROC's NOTE_FORK / NOTE_EXEC / NOTE_TRACK source: the kernel's process connector
 * (netlink, NETLINK_CONNECTOR, group CN_IDX_PROC), which reports fork, exec and exit of every
 * process of the system, in the order they happened to each process: a process's fork comes
 * before its exit, and its exit before it can be reaped. Listening needs CAP_NET_ADMIN in the initial network namespace's
 * user namespace; without it opening fails and those notes fail with ENOTSUP.
 */
#define _GNU_SOURCE
#include "CKQueueShim.h"

#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int kq_shim_proc_connector_open(void) {
    int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
    if (fd < 0) return -errno;
    struct sockaddr_nl address;
    memset(&address, 0, sizeof address);
    address.nl_family = AF_NETLINK;
    address.nl_groups = CN_IDX_PROC;
    address.nl_pid = 0; /* the kernel assigns a port id */
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int error = errno;
        kq_shim_real_close(fd);
        return -error;
    }
    /* A larger buffer: the connector reports every process of the system. */
    int size = 1 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    /* The listen request: a netlink header, a connector message, the operation. */
    enum proc_cn_mcast_op operation = PROC_CN_MCAST_LISTEN;
    char request[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof operation)] __attribute__((aligned(NLMSG_ALIGNTO)));
    memset(request, 0, sizeof request);
    struct nlmsghdr *header = (struct nlmsghdr *)request;
    header->nlmsg_len = NLMSG_LENGTH(sizeof(struct cn_msg) + sizeof operation);
    header->nlmsg_type = NLMSG_DONE;
    struct cn_msg *message = (struct cn_msg *)NLMSG_DATA(header);
    message->id.idx = CN_IDX_PROC;
    message->id.val = CN_VAL_PROC;
    message->len = sizeof operation;
    memcpy(message->data, &operation, sizeof operation);
    if (send(fd, request, header->nlmsg_len, 0) < 0) {
        int error = errno;
        kq_shim_real_close(fd);
        return -error;
    }
    return fd;
}

int kq_shim_proc_connector_read(int fd, struct kq_proc_event *events, int capacity, int *overflowed) {
    char buffer[4096] __attribute__((aligned(NLMSG_ALIGNTO)));
    int count = 0;
    while (count < capacity) {
        ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == ENOBUFS) { /* the socket overflowed: events were lost */
                *overflowed = 1;
                continue;
            }
            break; /* EAGAIN: drained */
        }
        for (struct nlmsghdr *header = (struct nlmsghdr *)buffer; NLMSG_OK(header, (size_t)n);
             header = NLMSG_NEXT(header, n)) {
            if (header->nlmsg_type == NLMSG_ERROR || header->nlmsg_type == NLMSG_NOOP) continue;
            struct cn_msg *message = NLMSG_DATA(header);
            if (message->id.idx != CN_IDX_PROC || message->id.val != CN_VAL_PROC) continue;
            /* The event follows the 20-byte cn_msg header: copy it out to an aligned place. */
            struct proc_event event;
            memset(&event, 0, sizeof event);
            size_t length = message->len < sizeof event ? message->len : sizeof event;
            memcpy(&event, message->data, length);
            struct kq_proc_event *out = &events[count];
            switch (event.what) {
            case PROC_EVENT_FORK:
                /* A new thread is a fork of a thread; only a new process counts. */
                if (event.event_data.fork.child_pid != event.event_data.fork.child_tgid) continue;
                out->kind = KQ_PROC_EVENT_FORK;
                out->pid = event.event_data.fork.child_tgid;
                out->parent = event.event_data.fork.parent_tgid;
                out->status = 0;
                break;
            case PROC_EVENT_EXEC:
                out->kind = KQ_PROC_EVENT_EXEC;
                out->pid = event.event_data.exec.process_tgid;
                out->parent = 0;
                out->status = 0;
                break;
            case PROC_EVENT_EXIT:
                /* Sent by each exiting thread (before the process can be reaped); the thread
                 * group leader's carries the process's wait status. */
                if (event.event_data.exit.process_pid != event.event_data.exit.process_tgid) continue;
                out->kind = KQ_PROC_EVENT_EXIT;
                out->pid = event.event_data.exit.process_tgid;
                out->parent = 0;
                out->status = (int)event.event_data.exit.exit_code;
                break;
            default:
                continue;
            }
            if (++count == capacity) break;
        }
    }
    return count;
}

int kq_shim_proc_connector_read_names(int fd, struct kq_proc_name *names, int capacity) {
    char buffer[4096] __attribute__((aligned(NLMSG_ALIGNTO)));
    int count = 0;
    while (count < capacity) {
        ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == ENOBUFS || errno == EINTR) continue;
            break;
        }
        for (struct nlmsghdr *header = (struct nlmsghdr *)buffer; NLMSG_OK(header, (size_t)n) && count < capacity;
             header = NLMSG_NEXT(header, n)) {
            if (header->nlmsg_type == NLMSG_ERROR || header->nlmsg_type == NLMSG_NOOP) continue;
            struct cn_msg *message = NLMSG_DATA(header);
            if (message->id.idx != CN_IDX_PROC || message->id.val != CN_VAL_PROC) continue;
            struct proc_event event;
            memset(&event, 0, sizeof event);
            size_t length = message->len < sizeof event ? message->len : sizeof event;
            memcpy(&event, message->data, length);
            if (event.what != PROC_EVENT_COMM) continue;
            if (event.event_data.comm.process_pid != event.event_data.comm.process_tgid) continue;
            names[count].pid = event.event_data.comm.process_tgid;
            memcpy(names[count].name, event.event_data.comm.comm, sizeof names[count].name - 1);
            names[count].name[sizeof names[count].name - 1] = 0;
            count++;
        }
    }
    return count;
}
