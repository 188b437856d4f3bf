/*
 * The context's I/O watchers: libev's, and, once an external loop asked
 * for mpt_ctx_fd(), an epoll set that mirrors every started one so that a
 * foreign loop can poll a single fd and call mpt_ctx_process() when it is
 * readable.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include "core/alloc.h"
#include "watch.h"

void mpt_watchers_init(struct mpt_watchers *ws, struct ev_loop *loop)
{
    memset(ws, 0, sizeof *ws);
    ws->loop = loop;
    ws->extfd = -1;
    LIST_INIT(&ws->ios);
    LIST_INIT(&ws->tmrs);
}

void mpt_watchers_fini(struct mpt_watchers *ws)
{
    mpt_free(ws->theap);
    ws->theap = NULL;
    if (ws->extfd >= 0)
        close(ws->extfd);
    ws->extfd = -1;
}

static void ext_ctl(struct mpt_watchers *ws, int op, struct mpt_io *io)
{
#ifdef __linux__
    struct epoll_event e;

    memset(&e, 0, sizeof e);
    e.events = (io->events & EV_READ ? EPOLLIN : 0) | (io->events & EV_WRITE ? EPOLLOUT : 0);
    e.data.ptr = io;
    epoll_ctl(ws->extfd, op, io->w.fd, &e);
#else
    (void)ws;
    (void)op;
    (void)io;
#endif
}

void mpt_io_init(struct mpt_watchers *ws, struct mpt_io *io, void (*cb)(EV_P_ ev_io *, int),
                 int fd)
{
    memset(io, 0, sizeof *io);
    io->ws = ws;
    ev_io_init(&io->w, cb, fd, 0);
}

void mpt_io_set(struct mpt_io *io, int events)
{
    struct mpt_watchers *ws = io->ws;
    int old = io->events;

    if (old == events)
        return;
    if (old != 0)
        ev_io_stop(ws->loop, &io->w);
    io->events = events;
    if (events != 0) {
        ev_io_set(&io->w, io->w.fd, events);
        ev_io_start(ws->loop, &io->w);
    }
    if (old == 0 && events != 0) {
        LIST_INSERT_HEAD(&ws->ios, io, link);
    } else if (old != 0 && events == 0) {
        LIST_REMOVE(io, link);
    }
    if (ws->extfd >= 0) {
#ifdef __linux__
        ext_ctl(ws, old == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD, io);
#endif
    }
}

int mpt_watchers_mirror(struct mpt_watchers *ws)
{
#ifdef __linux__
    if (ws->extfd < 0) {
        if ((ws->extfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
            ws->extfd = -1;
            return -1;
        }
        struct mpt_io *io;
        LIST_FOREACH(io, &ws->ios, link)
            ext_ctl(ws, EPOLL_CTL_ADD, io);
    }
    return ws->extfd;
#else
    (void)ws;
    errno = ENOTSUP;
    return -1;
#endif
}

void mpt_watchers_mirror_fd(struct mpt_watchers *ws, int fd)
{
#ifdef __linux__
    struct epoll_event e;

    memset(&e, 0, sizeof e);
    e.events = EPOLLIN;
    e.data.ptr = NULL;
    epoll_ctl(ws->extfd, EPOLL_CTL_ADD, fd, &e);
#else
    (void)ws;
    (void)fd;
#endif
}
