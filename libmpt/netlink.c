/*
 * Path recovery triggers. Failed subflows are retried with exponential
 * backoff (sock.c); on Linux an rtnetlink socket also watches links,
 * addresses and routes, and any change that may bring a path back makes every
 * waiting subflow retry at once instead of at the end of its backoff.
 * Elsewhere the backoff timer alone does the job.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#endif

#include "io.h"

#ifdef __linux__
static void nl_io_cb(EV_P_ ev_io *w, int revents)
{
    struct mpt_ctx *ctx = w->data;
    uint8_t buf[8192];
    int wake = 0;

    for (;;) {
        ssize_t r = recv(w->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r <= 0)
            break;
        unsigned int n = (unsigned int)r;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == RTM_NEWLINK) {
                struct ifinfomsg *ifi = NLMSG_DATA(h);
                if ((ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_RUNNING))
                    wake = 1;
            } else if (h->nlmsg_type == RTM_NEWADDR || h->nlmsg_type == RTM_NEWROUTE) {
                wake = 1;
            }
        }
    }
    if (!wake)
        return;
    MPT_TRACE(ctx, 0, "netlink_change", NULL);
    for (struct mpt_socket *s = ctx->socks; s; s = s->next)
        mpt_sock_paths_changed(s);
}
#endif

void mpt_netlink_start(struct mpt_ctx *ctx)
{
#ifdef __linux__
    struct sockaddr_nl sa;
    int fd;

    if (ctx->nlfd >= 0)
        return;
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return; /* backoff alone still re-establishes paths */
    memset(&sa, 0, sizeof sa);
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE |
                   RTMGRP_IPV6_ROUTE;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return;
    }
    ctx->nlfd = fd;
    mpt_io_init(ctx, &ctx->nlio, nl_io_cb, fd);
    ctx->nlio.w.data = ctx;
    mpt_io_set(&ctx->nlio, EV_READ);
    ev_unref(ctx->loop); /* watching links alone does not keep mpt_ctx_run() going */
#else
    (void)ctx;
#endif
}

void mpt_netlink_stop(struct mpt_ctx *ctx)
{
    if (ctx->nlfd < 0)
        return;
    ev_ref(ctx->loop);
    mpt_io_set(&ctx->nlio, 0);
    close(ctx->nlfd);
    ctx->nlfd = -1;
}
