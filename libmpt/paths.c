/*
 * The client's path manager, carried out over real sockets: local paths
 * (interfaces, source addresses, or every address with fullmesh) times the
 * server's addresses times subflows_per_path gives the slots; each slot
 * opens its subflow once the connection is established and, when it goes
 * down, is retried after a backoff computed in one place (mpt_pm_backoff,
 * core/pm.c), soon after a link change (netlink.c). Links
 * going down fail the subflows that use them.
 */
#include "config.h"

#include <errno.h>
#include <ifaddrs.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pm.h"
#include "netlink.h"
#include "paths.h"
#include "subflow.h"

struct mpt_path {
    int used, removed, backup;
    char ifname[IF_NAMESIZE];        /* SO_BINDTODEVICE, or "" */
    struct sockaddr_storage src;     /* ss_family AF_UNSPEC: no bind */
    socklen_t srclen;
};

struct mpt_raddr {
    struct sockaddr_storage sa;
    socklen_t len;
    int addr_id;                     /* server's id, -1 for the resolved one */
    int removed;
};

struct mpt_slot {                    /* one (path, remote address, k) subflow */
    int path, raddr;
    int sf;                          /* engine index while a subflow exists, else -1 */
    int dead;
    unsigned fails;                  /* consecutive failures since one was up */
    struct mpt_tmr retry;
    struct mpt_socket *s;
    int has_last;                    /* `last` holds the subflow that went down last */
    struct mpt_subflow_info last;    /* as it went down (mpt_get_subflows records) */
};

static void slot_retry_cb(EV_P_ ev_timer *w, int revents);
static void slot_connect(struct mpt_slot *sl);

/* ---- Client path manager ------------------------------------------------------- */

static void slot_free(struct mpt_slot *sl)
{
    mpt_tmr_fini(&sl->retry);
    free(sl);
}

/* The slot's next attempt, after reconnect_min_ms doubling per consecutive
 * failure up to reconnect_max_ms (the engine's path manager's rule,
 * mpt_pm_backoff, so that the simulator tests the same delays). Traced with
 * the cause: retries are never silent. */
static void slot_schedule_retry(struct mpt_socket *s, struct mpt_slot *sl, int si, int err,
                                int sys_errno)
{
    uint64_t ms = mpt_pm_backoff((uint64_t)s->ctx->cfg.reconnect_min_ms * MPT_NS_PER_MS,
                                 (uint64_t)s->ctx->cfg.reconnect_max_ms * MPT_NS_PER_MS,
                                 sl->fails) /
                  MPT_NS_PER_MS;

    sl->fails++;
    MPT_TRACE(s->ctx, s->id, "sf_retry_scheduled",
              "\"slot\":%d,\"path\":%d,\"fails\":%u,\"error\":\"%s\",\"errno\":%d,\"ms\":%llu", si,
              sl->path, sl->fails, mpt_err_name(err), sys_errno, (unsigned long long)ms);
    mpt_tmr_start(&sl->retry, (double)ms / 1000.);
}

/* Subflow idx of a client slot went down (si: as reported): keep it as the
 * slot's record of its last failure and schedule the retry. */
void mpt_paths_slot_down(struct mpt_socket *s, int idx, const struct mpt_subflow_info *si)
{
    struct mpt_sfio *sf = s->sf[idx];
    int k = sf ? sf->slot : -1;

    if (k < 0 || k >= s->nslots)
        return;
    struct mpt_slot *sl = s->slots[k];
    sl->sf = -1;
    sl->last = *si;
    sl->last.state = si->fail_error != 0 ? MPT_SUBFLOW_FAILED : MPT_SUBFLOW_CLOSED;
    sl->has_last = 1;
    if (s->done || s->shut || sl->dead || s->paths[sl->path].removed ||
        s->raddrs[sl->raddr].removed)
        return;
    slot_schedule_retry(s, sl, k, si->fail_error, si->sys_errno);
}

/* What a subflow that went down looks like to subflow_down and the slot
 * record: the engine's view completed by the event's cause. */
static int family_ok(const struct mpt_path *p, const struct mpt_raddr *r)
{
    return p->src.ss_family == AF_UNSPEC || p->src.ss_family == r->sa.ss_family;
}

static int sock_add_slot(struct mpt_socket *s, int path, int raddr)
{
    struct mpt_slot *sl;

    if (s->nslots >= MPT_IO_MAX_SLOTS)
        return MPT_ETOOMANY;
    if ((sl = calloc(1, sizeof *sl)) == NULL)
        return MPT_ENOMEM;
    if (mpt_tmr_init(&s->ctx->ws, &sl->retry, slot_retry_cb) < 0) {
        free(sl);
        return MPT_ENOMEM;
    }
    sl->path = path;
    sl->raddr = raddr;
    sl->sf = -1;
    sl->s = s;
    sl->retry.w.data = sl;
    s->slots[s->nslots] = sl;
    return s->nslots++;
}

static void make_slots(struct mpt_socket *s, int path, int raddr)
{
    for (unsigned k = 0; k < s->ctx->cfg.subflows_per_path; k++)
        if (family_ok(&s->paths[path], &s->raddrs[raddr]))
            (void)sock_add_slot(s, path, raddr);
}

void mpt_paths_start_all(struct mpt_socket *s)
{
    for (int i = 0; i < s->nslots; i++) {
        struct mpt_slot *sl = s->slots[i];
        if (sl->sf < 0 && !sl->dead && !ev_is_active(&sl->retry.w))
            slot_connect(sl);
    }
}

int mpt_paths_add_raddr(struct mpt_socket *s, const struct sockaddr_storage *ss, socklen_t len,
                        int addr_id)
{
    for (int i = 0; i < s->nraddrs; i++) {
        if (s->raddrs[i].len == len && memcmp(&s->raddrs[i].sa, ss, len) == 0) {
            if (s->raddrs[i].addr_id < 0)
                s->raddrs[i].addr_id = addr_id;
            return i;
        }
    }
    if (s->nraddrs >= MPT_IO_MAX_RADDRS)
        return MPT_ETOOMANY;
    int r = s->nraddrs++;
    s->raddrs[r].sa = *ss;
    s->raddrs[r].len = len;
    s->raddrs[r].addr_id = addr_id;
    for (int p = 0; p < s->npaths; p++)
        if (s->paths[p].used && !s->paths[p].removed)
            make_slots(s, p, r);
    if (s->established)
        mpt_paths_start_all(s);
    return r;
}

/* A slot could not even get a subflow (engine limit, no memory): record
 * the cause and retry later like any failure. */
static void slot_fail_now(struct mpt_slot *sl, int err)
{
    struct mpt_socket *s = sl->s;
    int k = 0;

    while (k < s->nslots && s->slots[k] != sl)
        k++;
    memset(&sl->last, 0, sizeof sl->last);
    sl->last.path_id = sl->path;
    sl->last.state = MPT_SUBFLOW_FAILED;
    sl->last.remote = s->raddrs[sl->raddr].sa;
    sl->last.fail_error = err;
    sl->has_last = 1;
    slot_schedule_retry(s, sl, k, err, 0);
}

/* A subflow the I/O layer still holds although the engine has already
 * reused its index for a new one: record it for its slot, then let go (no
 * callback: this can run inside an API call). */
static void sf_retire(struct mpt_socket *s, struct mpt_sfio *sf)
{
    struct mpt_subflow_info si;

    if (!sf->down_reported) {
        memset(&si, 0, sizeof si);
        si.path_id = sf->slot >= 0 && sf->slot < s->nslots ? s->slots[sf->slot]->path : -1;
        si.remote = sf->remote;
        si.local = sf->local;
        si.fail_error = sf->fail_error ? sf->fail_error : MPT_ECLOSED;
        si.sys_errno = sf->sys_errno;
        sf->down_reported = 1;
        mpt_paths_slot_down(s, sf->idx, &si);
    }
    MPT_TRACE(s->ctx, s->id, "sf_closed", "\"sf\":%d", sf->idx);
    mpt_sfio_close(s, sf);
}

/*
 * Opens the TCP connection of a slot and reserves its engine subflow. A
 * socket that cannot be made (no such interface any more, address gone, no
 * route) still becomes a subflow that fails at once, so that it is reported
 * and retried like one that fails later.
 */
static void slot_connect(struct mpt_slot *sl)
{
    struct mpt_socket *s = sl->s;
    struct mpt_path *p = &s->paths[sl->path];
    struct mpt_raddr *r = &s->raddrs[sl->raddr];
    struct mpt_sfio *sf;
    uint64_t now = mpt_io_now();
    const char *what;
    int fd, idx, in_progress, e;

    if (s->done || p->removed || r->removed)
        return;
    idx = mpt_conn_add_subflow(s->c, (uint8_t)sl->path, p->backup, now);
    if (idx < 0) {
        MPT_TRACE(s->ctx, s->id, "sf_add_refused", "\"error\":\"%s\"", mpt_err_name(idx));
        if (idx == MPT_ETOOMANY)
            slot_fail_now(sl, idx);
        return;
    }
    if (s->sf[idx] != NULL)
        sf_retire(s, s->sf[idx]);
    e = mpt_sfio_socket(s->ctx, p->ifname, &p->src, p->srclen, &r->sa, r->len, &fd,
                        &in_progress, &what);
    if (e != 0 && fd >= 0) {
        close(fd);
        fd = -1;
    }
    if ((sf = mpt_sock_attach(s, idx, fd, 1)) == NULL) {
        if (fd >= 0)
            close(fd);
        MPT_TRACE(s->ctx, s->id, "sf_connect_failed", "\"sf\":%d,\"path\":%d,\"error\":\"%s\"",
                  idx, sl->path, mpt_err_name(MPT_ENOMEM));
        mpt_conn_sf_failed(s->c, idx, MPT_ENOMEM, now);
        slot_fail_now(sl, MPT_ENOMEM);
        mpt_sock_kick(s);
        return;
    }
    for (int i = 0; i < s->nslots; i++)
        if (s->slots[i] == sl)
            sf->slot = i;
    sf->remote = r->sa;
    sf->backup = p->backup;
    if (p->src.ss_family != AF_UNSPEC)
        memcpy(&sf->local, &p->src, p->srclen);
    memcpy(sf->ifname, p->ifname, sizeof sf->ifname);
    sl->sf = idx;
    (void)mpt_conn_sf_set_remote_id(s->c, idx, r->addr_id > 0 ? (uint8_t)r->addr_id : 0);
    if (e != 0) {
        MPT_TRACE(s->ctx, s->id, "sf_connect_failed",
                  "\"sf\":%d,\"path\":%d,\"step\":\"%s\",\"errno\":%d", idx, sl->path, what, e);
        mpt_sfio_fail_sys(s, sf, "sf_error", e, now);
    } else {
        MPT_TRACE(s->ctx, s->id, "sf_connect", "\"sf\":%d,\"path\":%d,\"raddr\":%d", idx,
                  sl->path, sl->raddr);
        if (!in_progress)
            mpt_sfio_connected(s, sf, now);
        else
            mpt_tmr_start(&sf->ctimer, s->ctx->cfg.connect_timeout_ms / 1000.);
    }
    mpt_sock_kick(s);
}

/* A link, address or route changed (netlink.c): retry waiting subflows now. */
static void sock_paths_changed(struct mpt_socket *s)
{
    if (s->server || s->done || !s->established)
        return;
    for (int i = 0; i < s->nslots; i++) {
        struct mpt_slot *sl = s->slots[i];
        if (sl->sf < 0 && !sl->dead && ev_is_active(&sl->retry.w) &&
            ev_timer_remaining(s->ctx->loop, &sl->retry.w) > 0.05)
            mpt_tmr_start(&sl->retry, 0.02); /* let bursts of changes settle */
    }
}

/* Same address, ignoring ports; IPv4-mapped IPv6 compares as IPv4. */
static int addr_norm(const struct sockaddr_storage *ss, int *fam, const uint8_t **a)
{
    if (ss->ss_family == AF_INET) {
        *fam = AF_INET;
        *a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
        return 1;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            *fam = AF_INET;
            *a = a6->s6_addr + 12;
        } else {
            *fam = AF_INET6;
            *a = a6->s6_addr;
        }
        return 1;
    }
    return 0;
}

static int same_addr(const struct sockaddr_storage *x, const struct sockaddr_storage *y)
{
    int fx, fy;
    const uint8_t *ax, *ay;

    if (!addr_norm(x, &fx, &ax) || !addr_norm(y, &fy, &ay) || fx != fy)
        return 0;
    return memcmp(ax, ay, fx == AF_INET ? 4 : 16) == 0;
}

static int is_loopback(const struct sockaddr_storage *ss)
{
    int f;
    const uint8_t *a;

    if (!addr_norm(ss, &f, &a))
        return 0;
    if (f == AF_INET)
        return a[0] == 127;
    return memcmp(a, &in6addr_loopback, 16) == 0;
}

/*
 * A link went down or an address went away (netlink.c): fail at once every
 * live subflow bound to ifname (SO_BINDTODEVICE) or whose local address is
 * one of addrs, instead of waiting for the engine's stall detector. Client
 * slots then retry with their usual backoff, and a link coming back makes
 * them retry at once (sock_paths_changed). Pumps without dispatch (the
 * caller walks ctx->socks): events are delivered from the kicked timer.
 * err is the cause the subflows report: MPT_ENODEV (interface deleted),
 * MPT_ENETUNREACH (link down), MPT_EADDRNOTAVAIL (address removed).
 */
static void sock_link_down(struct mpt_socket *s, const char *ifname,
                           const struct sockaddr_storage *addrs, int naddrs, int err)
{
    uint64_t now;
    int n = 0;

    if (s->c == NULL || s->done)
        return;
    now = mpt_io_now();
    for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++) {
        struct mpt_sfio *sf = s->sf[i];
        int hit = 0;
        if (sf == NULL || mpt_conn_sf_state(s->c, i) >= MPT_SF_FAILED)
            continue;
        if (is_loopback(&sf->local) || strcmp(sf->ifname, "lo") == 0)
            continue;
        if (ifname != NULL && ifname[0] != '\0' && strcmp(sf->ifname, ifname) == 0)
            hit = 1;
        for (int k = 0; !hit && k < naddrs; k++)
            hit = same_addr(&sf->local, &addrs[k]);
        if (!hit)
            continue;
        MPT_TRACE(s->ctx, s->id, "sf_link_down", "\"sf\":%d,\"if\":\"%s\",\"error\":\"%s\"", i,
                  ifname != NULL ? ifname : "", mpt_err_name(err));
        sf->fail_error = err;
        sf->sys_errno = 0; /* a netlink event, not a failed system call */
        mpt_conn_sf_failed(s->c, i, err, now);
        n++;
    }
    if (n > 0)
        mpt_sock_pump(s, 0);
}

/* The rtnetlink watcher's reports, for every socket of the context. */
static void links_down(void *arg, const char *ifname, const struct sockaddr_storage *addrs,
                       int naddrs, int err)
{
    struct mpt_ctx *ctx = arg;
    struct mpt_socket *s, *next;

    MPT_TRACE(ctx, 0, "netlink_down", "\"if\":\"%s\",\"addrs\":%d,\"error\":\"%s\"",
              ifname ? ifname : "", naddrs, mpt_err_name(err));
    LIST_FOREACH_SAFE(s, &ctx->socks, link, next)
        sock_link_down(s, ifname, addrs, naddrs, err);
}

static void links_changed(void *arg)
{
    struct mpt_ctx *ctx = arg;
    struct mpt_socket *s;

    MPT_TRACE(ctx, 0, "netlink_change", NULL);
    LIST_FOREACH(s, &ctx->socks, link)
        sock_paths_changed(s);
}

void mpt_paths_watch_links(struct mpt_ctx *ctx)
{
    struct mpt_netlink_hooks hooks = {links_down, links_changed, ctx};

    mpt_netlink_start(&ctx->nl, &ctx->ws, &hooks);
}

static void slot_retry_cb(EV_P_ ev_timer *w, int revents)
{
    struct mpt_slot *sl = w->data;
    struct mpt_socket *s = sl->s;

    if (sl->sf < 0 && !s->done && s->established) {
        MPT_TRACE(s->ctx, s->id, "sf_retry", "\"path\":%d,\"fails\":%u", sl->path, sl->fails);
        slot_connect(sl);
        mpt_sock_pump(s, 1);
    }
}

static int parse_path(const char *str, struct mpt_path *p)
{
    char buf[128];
    size_t n;

    if (str == NULL || (n = strlen(str)) == 0 || n >= sizeof buf)
        return MPT_EINVAL;
    memset(p, 0, sizeof *p);
    memcpy(buf, str, n + 1);
    if (n > 7 && strcmp(buf + n - 7, "/backup") == 0) {
        p->backup = 1;
        buf[n - 7] = '\0';
    }
    if (buf[0] == '\0')
        return MPT_EINVAL;
    if (mpt_parse_addr(buf, 0, &p->src, &p->srclen) == 0) {
        p->used = 1;
        return 0;
    }
    if (strlen(buf) >= IF_NAMESIZE || strchr(buf, '/') != NULL || strchr(buf, ' ') != NULL)
        return MPT_EINVAL;
    strcpy(p->ifname, buf);
    p->src.ss_family = AF_UNSPEC;
    p->used = 1;
    return 0;
}

/*
 * A path that can never work is an error up front rather than a subflow
 * retried forever: an interface that does not exist (MPT_ENODEV), a source
 * address that is not one of this host's (MPT_EADDRNOTAVAIL, found by a
 * test bind, which is exactly what the subflow will do). An interface that
 * exists but is down, or comes and goes, is fine: it may come back.
 */
static int check_path(const struct mpt_path *p)
{
    int fd, e = 0, one = 1;

    if (p->ifname[0] != '\0')
        return if_nametoindex(p->ifname) == 0 ? mpt_errno_to_mpt(errno) : 0;
    if (p->src.ss_family == AF_UNSPEC)
        return 0;
    if ((fd = socket(p->src.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return mpt_errno_to_mpt(errno);
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* Checks the address without taking an ephemeral port. */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    (void)one;
    if (bind(fd, (const struct sockaddr *)&p->src, p->srclen) < 0)
        e = errno;
    close(fd);
    return e ? mpt_errno_to_mpt(e) : 0;
}

static int fullmesh_paths(struct mpt_socket *s)
{
    struct ifaddrs *ifa, *i;

    if (getifaddrs(&ifa) < 0)
        return mpt_errno_to_mpt(errno);
    for (i = ifa; i && s->npaths < MPT_IO_MAX_PATHS; i = i->ifa_next) {
        if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP))
            continue;
        if ((i->ifa_flags & IFF_LOOPBACK) && !s->ctx->cfg.include_loopback)
            continue;
        int fam = i->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6)
            continue;
        if (fam == AF_INET6 &&
            IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
            continue;
        struct mpt_path *p = &s->paths[s->npaths];
        memset(p, 0, sizeof *p);
        p->srclen = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        memcpy(&p->src, i->ifa_addr, p->srclen);
        p->used = 1;
        s->npaths++;
    }
    freeifaddrs(ifa);
    return 0;
}

/* ---- Paths ------------------------------------------------------------------------ */

int mpt_add_path(struct mpt_socket *s, const char *path)
{
    struct mpt_path p;
    int rc;

    if (s == NULL || s->released || path == NULL)
        return MPT_EINVAL;
    if (s->server || s->done)
        return MPT_ESTATE;
    if ((rc = parse_path(path, &p)) < 0 || (rc = check_path(&p)) < 0)
        return rc;
    if (s->npaths >= MPT_IO_MAX_PATHS)
        return MPT_ETOOMANY;
    int id = s->npaths++;
    s->paths[id] = p;
    for (int r = 0; r < s->nraddrs; r++)
        if (!s->raddrs[r].removed)
            make_slots(s, id, r);
    if (s->established) {
        mpt_paths_start_all(s);
        mpt_sock_pump(s, 0);
    }
    MPT_TRACE(s->ctx, s->id, "path_added", "\"path\":%d", id);
    return id;
}

int mpt_remove_path(struct mpt_socket *s, int path_id)
{
    if (s == NULL || s->released)
        return MPT_EINVAL;
    if (s->server)
        return MPT_ESTATE;
    if (path_id < 0 || path_id >= s->npaths || s->paths[path_id].removed)
        return MPT_ENOTFOUND;
    s->paths[path_id].removed = 1;
    uint64_t now = mpt_io_now();
    for (int i = 0; i < s->nslots; i++) {
        struct mpt_slot *sl = s->slots[i];
        if (sl->path != path_id)
            continue;
        sl->dead = 1;
        mpt_tmr_stop(&sl->retry);
        if (sl->sf >= 0 && s->c)
            mpt_conn_sf_close(s->c, sl->sf, MPT_REASON_PATH_REMOVED, now);
    }
    MPT_TRACE(s->ctx, s->id, "path_removed", "\"path\":%d", path_id);
    if (s->c && !s->done)
        mpt_sock_pump(s, 0);
    return 0;
}

/* The engine index of the subflow whose stable id is id, or -1. */
static int sf_index_of_id(const struct mpt_socket *s, int id)
{
    struct mpt_sf_stats st;

    for (int i = 0; id > 0 && i < MPT_MAX_SUBFLOWS_LIMIT; i++)
        if (s->sf[i] != NULL && mpt_conn_sf_get_stats(s->c, i, &st) == 0 && (int)st.id == id)
            return i;
    return -1;
}

int mpt_set_backup(struct mpt_socket *s, int path_id, int backup)
{
    uint64_t now = mpt_io_now();
    int rc = 0;

    if (s == NULL || s->released)
        return MPT_EINVAL;
    if (s->done || s->c == NULL)
        return MPT_ESTATE;
    backup = backup ? 1 : 0;
    if (s->server) {
        int idx = sf_index_of_id(s, path_id);
        if (idx < 0)
            return MPT_ENOTFOUND;
        rc = mpt_conn_sf_set_backup(s->c, idx, backup, now);
    } else {
        if (path_id < 0 || path_id >= s->npaths || s->paths[path_id].removed)
            return MPT_ENOTFOUND;
        s->paths[path_id].backup = backup;
        for (int i = 0; i < s->nslots; i++) {
            struct mpt_slot *sl = s->slots[i];
            if (sl->path == path_id && sl->sf >= 0) {
                int r = mpt_conn_sf_set_backup(s->c, sl->sf, backup, now);
                if (r < 0 && r != MPT_ESTATE)
                    rc = r;
            }
        }
    }
    mpt_sock_pump(s, 0);
    return rc < 0 ? rc : 0;
}

/* Before the engine exists (a client between mpt_connect and the name's
 * resolution) the choice waits in the socket; afterwards it switches the
 * live connection, on either side. */
/* A client slot with no subflow now, whose last one went down: its record
 * (the subflow as it failed, with when the slot retries). 0 if none. */
int mpt_paths_slot_record(const struct mpt_socket *s, int k, struct mpt_subflow_info *o)
{
    const struct mpt_slot *sl = s->slots[k];

    if (sl->sf >= 0 || !sl->has_last || sl->dead || s->paths[sl->path].removed ||
        s->raddrs[sl->raddr].removed)
        return 0;
    *o = sl->last;
    o->failures = sl->fails;
    o->retry_ms = -1;
    if (ev_is_active(&sl->retry.w)) {
        double left = ev_timer_remaining(s->ctx->loop, (ev_timer *)&sl->retry.w) * 1000.;
        o->retry_ms = left <= 0. ? 0 : left >= (double)INT32_MAX ? INT32_MAX : (int)left + 1;
    }
    return 1;
}

/* ---- What the rest of the socket asks of its paths ---------------------------------- */

/* mpt_connect: the paths given (parsed and checked; each refusal traced),
 * every local address with fullmesh, or one unbound path. */
int mpt_paths_setup(struct mpt_socket *s, const char *const *paths, size_t npaths)
{
    struct mpt_ctx *ctx = s->ctx;
    int rc;

    s->paths = calloc(MPT_IO_MAX_PATHS, sizeof *s->paths);
    s->raddrs = calloc(MPT_IO_MAX_RADDRS, sizeof *s->raddrs);
    if (s->paths == NULL || s->raddrs == NULL)
        return MPT_ENOMEM;
    for (size_t i = 0; i < npaths; i++) {
        if ((rc = parse_path(paths[i], &s->paths[i])) < 0 ||
            (rc = check_path(&s->paths[i])) < 0) {
            MPT_TRACE(ctx, s->id, "path_refused", "\"path\":%zu,\"error\":\"%s\"", i,
                      mpt_err_name(rc));
            return rc;
        }
    }
    s->npaths = (int)npaths;
    if (npaths == 0 && ctx->cfg.fullmesh) {
        if ((rc = fullmesh_paths(s)) < 0)
            return rc;
    }
    if (s->npaths == 0) {
        s->paths[0].used = 1;
        s->paths[0].src.ss_family = AF_UNSPEC;
        s->npaths = 1;
    }
    return 0;
}

/* The family to resolve the server's name in: the first explicit source
 * address's, else any. */
int mpt_paths_family(const struct mpt_socket *s)
{
    return s->paths[0].src.ss_family != AF_UNSPEC ? s->paths[0].src.ss_family : AF_UNSPEC;
}

/* The connection exists: its first subflow, on the first slot. */
void mpt_paths_connect_first(struct mpt_socket *s)
{
    slot_connect(s->slots[0]);
}

void mpt_paths_free(struct mpt_socket *s)
{
    for (int i = 0; i < s->nslots; i++)
        slot_free(s->slots[i]);
    s->nslots = 0;
    free(s->paths);
    free(s->raddrs);
    s->paths = NULL;
    s->raddrs = NULL;
}

/* The connection is finished: no more retries. */
void mpt_paths_stop(struct mpt_socket *s)
{
    for (int i = 0; i < s->nslots; i++)
        mpt_tmr_stop(&s->slots[i]->retry);
}

int mpt_paths_slot_info(const struct mpt_socket *s, int k, int *path_id, uint32_t *failures)
{
    if (k < 0 || k >= s->nslots)
        return 0;
    *path_id = s->slots[k]->path;
    *failures = s->slots[k]->fails;
    return 1;
}

/* Slot k's subflow is up: its failures in a row end. */
void mpt_paths_slot_up(struct mpt_socket *s, int k)
{
    if (k >= 0 && k < s->nslots)
        s->slots[k]->fails = 0;
}

/* Engine subflow idx of slot k is gone: the slot has none (unless it has
 * a newer one already). */
void mpt_paths_sf_gone(struct mpt_socket *s, int k, int idx)
{
    if (k >= 0 && k < s->nslots && s->slots[k]->sf == idx)
        s->slots[k]->sf = -1;
}

/* REMOVE_ADDR: the slots to that address die as their subflows end. */
void mpt_paths_addr_removed(struct mpt_socket *s, int addr_id)
{
    for (int i = 0; i < s->nraddrs; i++)
        if (s->raddrs[i].addr_id == addr_id)
            s->raddrs[i].removed = 1;
}
