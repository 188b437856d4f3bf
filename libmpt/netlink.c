/*
 * Path recovery triggers. Failed subflows are retried with exponential
 * backoff (paths.c); on Linux an rtnetlink socket also watches links,
 * addresses and routes, and reports (netlink.h's hooks) any change that may
 * bring a path back, so that waiting subflows retry at once instead of at
 * the end of their backoff, and a link going down or an address going
 * away, so that the subflows using it fail at once instead of leaving the
 * engine to notice the stall: nothing tells TCP that the link is gone.
 * Elsewhere the backoff timer alone does the job.
 */
#include "config.h"

#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#endif

#include <mpt/mpt.h>

#include "netlink.h"

#ifdef __linux__
#define NL_MAX_DOWN_ADDRS 32

static void link_down_all(struct mpt_netlink *nl, const char *ifname,
                          const struct sockaddr_storage *addrs, int naddrs, int err)
{
    nl->hooks.link_down(nl->hooks.arg, ifname, addrs, naddrs, err);
}

/* A link went down (err MPT_ENETUNREACH) or was deleted (MPT_ENODEV): its
 * name, then every address still on it (link-down events are rare, so
 * getifaddrs() here is fine). */
static void nl_link_down(struct mpt_netlink *nl, struct nlmsghdr *h, int err)
{
    struct ifinfomsg *ifi = NLMSG_DATA(h);
    char name[IF_NAMESIZE] = "";
    struct sockaddr_storage addrs[NL_MAX_DOWN_ADDRS];
    int n = 0;
    struct ifaddrs *ifa0 = NULL;

    if (ifi->ifi_flags & IFF_LOOPBACK)
        return;
    int len = (int)IFLA_PAYLOAD(h);
    for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFLA_IFNAME) {
            size_t l = RTA_PAYLOAD(a);
            if (l >= sizeof name)
                l = sizeof name - 1;
            memcpy(name, RTA_DATA(a), l);
            name[l] = '\0';
        }
    }
    if (name[0] == '\0' && if_indextoname((unsigned)ifi->ifi_index, name) == NULL)
        return;
    if (strcmp(name, "lo") == 0)
        return;
    if (getifaddrs(&ifa0) == 0) {
        for (struct ifaddrs *i = ifa0; i != NULL && n < NL_MAX_DOWN_ADDRS; i = i->ifa_next) {
            if (i->ifa_addr == NULL || i->ifa_name == NULL || strcmp(i->ifa_name, name) != 0)
                continue;
            if (i->ifa_addr->sa_family == AF_INET) {
                memset(&addrs[n], 0, sizeof addrs[n]);
                memcpy(&addrs[n++], i->ifa_addr, sizeof(struct sockaddr_in));
            } else if (i->ifa_addr->sa_family == AF_INET6) {
                memset(&addrs[n], 0, sizeof addrs[n]);
                memcpy(&addrs[n++], i->ifa_addr, sizeof(struct sockaddr_in6));
            }
        }
        freeifaddrs(ifa0);
    }
    link_down_all(nl, name, addrs, n, err);
}

/* An address was removed. */
static void nl_addr_gone(struct mpt_netlink *nl, struct nlmsghdr *h)
{
    struct ifaddrmsg *ifa = NLMSG_DATA(h);
    struct sockaddr_storage ss;
    const void *local = NULL, *addr = NULL;
    int len = (int)IFA_PAYLOAD(h);

    for (struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFA_LOCAL)
            local = RTA_DATA(a);
        else if (a->rta_type == IFA_ADDRESS)
            addr = RTA_DATA(a);
    }
    if (local == NULL)
        local = addr; /* IPv6 and most IPv4: IFA_ADDRESS is the local one */
    if (local == NULL)
        return;
    memset(&ss, 0, sizeof ss);
    if (ifa->ifa_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, local, 4);
    } else if (ifa->ifa_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, local, 16);
    } else {
        return;
    }
    link_down_all(nl, NULL, &ss, 1, MPT_EADDRNOTAVAIL);
}

static void nl_io_cb(EV_P_ ev_io *w, int revents)
{
    struct mpt_netlink *nl = w->data;
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
                else
                    nl_link_down(nl, h, MPT_ENETUNREACH);
            } else if (h->nlmsg_type == RTM_DELLINK) {
                nl_link_down(nl, h, MPT_ENODEV);
            } else if (h->nlmsg_type == RTM_DELADDR) {
                nl_addr_gone(nl, h);
            } else if (h->nlmsg_type == RTM_NEWADDR || h->nlmsg_type == RTM_NEWROUTE) {
                wake = 1;
            }
        }
    }
    if (!wake)
        return;
    nl->hooks.changed(nl->hooks.arg);
}
#endif

void mpt_netlink_init(struct mpt_netlink *nl)
{
    memset(nl, 0, sizeof *nl);
    nl->fd = -1;
}

void mpt_netlink_start(struct mpt_netlink *nl, struct mpt_watchers *ws,
                       const struct mpt_netlink_hooks *hooks)
{
#ifdef __linux__
    struct sockaddr_nl sa;
    int fd;

    if (nl->fd >= 0)
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
    nl->fd = fd;
    nl->ws = ws;
    nl->hooks = *hooks;
    mpt_io_init(ws, &nl->io, nl_io_cb, fd);
    nl->io.w.data = nl;
    mpt_io_set(&nl->io, EV_READ);
    ev_unref(ws->loop); /* watching links alone does not keep mpt_ctx_run() going */
#else
    (void)nl;
    (void)ws;
    (void)hooks;
#endif
}

void mpt_netlink_stop(struct mpt_netlink *nl)
{
    if (nl->fd < 0)
        return;
    ev_ref(nl->ws->loop);
    mpt_io_set(&nl->io, 0);
    close(nl->fd);
    nl->fd = -1;
}
