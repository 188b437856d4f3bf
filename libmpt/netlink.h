/*
 * The rtnetlink watcher (netlink.c): reports link, address and route
 * changes through the hooks its caller registers, and calls nothing else
 * of libmpt.
 */
#ifndef MPT_NETLINK_H
#define MPT_NETLINK_H

#include <sys/socket.h>

#include "watch.h"

struct mpt_netlink_hooks {
    /* A link went down (err MPT_ENETUNREACH) or was deleted (MPT_ENODEV):
     * its name and the addresses still on it; or an address went away
     * (ifname NULL, MPT_EADDRNOTAVAIL). */
    void (*link_down)(void *arg, const char *ifname, const struct sockaddr_storage *addrs,
                      int naddrs, int err);
    /* Something changed that may bring a path back. */
    void (*changed)(void *arg);
    void *arg;
};

struct mpt_netlink {
    int fd;                          /* -1 while not watching */
    struct mpt_io io;
    struct mpt_watchers *ws;
    struct mpt_netlink_hooks hooks;
};

void mpt_netlink_init(struct mpt_netlink *nl);
/* Starts watching (once; later calls do nothing). Without rtnetlink it
 * does nothing: the backoff alone re-establishes paths. */
void mpt_netlink_start(struct mpt_netlink *nl, struct mpt_watchers *ws,
                       const struct mpt_netlink_hooks *hooks);
void mpt_netlink_stop(struct mpt_netlink *nl);

#endif
