/*
 * The client's path manager, carried out over real sockets. The decisions
 * are the engine's sans-I/O path manager's (core/pm.c, which the simulator
 * drives too): the slots (local path x server address x subflows_per_path),
 * which of them open when, and the backoff after a failure. This file keeps
 * only what is I/O: each path's interface or source address, each server
 * address's sockaddr, the engine subflow that carries a slot and the record
 * of its last one (mpt_get_subflows), opening the sockets, and one timer at
 * the manager's next deadline. Links going down (netlink.c) fail the
 * subflows that use them; any link change makes waiting slots retry soon.
 */
#include "config.h"

#include <errno.h>
#include <ifaddrs.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/pm.h"
#include "netlink.h"
#include "paths.h"
#include "subflow.h"

struct mpt_path {                    /* a local path: where its subflows bind */
    char ifname[IF_NAMESIZE];        /* SO_BINDTODEVICE, or "" */
    struct sockaddr_storage src;     /* ss_family AF_UNSPEC: no bind */
    socklen_t srclen;
    int prio;                        /* as given ("/backup", "/secondary", ...;
                                        enum mpt_priority); the manager has it since */
};

struct mpt_raddr {                   /* a server address, at the manager's index */
    struct sockaddr_storage sa;
    socklen_t len;
    int addr_id;                     /* server's id, -1 for the resolved one until advertised */
    int pm_id;                       /* the id the manager knows it by (0: the resolved one) */
};

struct mpt_slot {                    /* the I/O side of one manager slot */
    int sf;                          /* engine index while a subflow exists, else -1 */
    struct mpt_subflow_info *last;   /* its subflow that went down last, or NULL */
};

struct mpt_paths {
    struct mpt_socket *s;
    struct mpt_pm *pm;
    struct mpt_tmr timer;            /* at mpt_pm_next_timeout, once established */
    struct mpt_path path[MPT_PM_MAX_PATHS];
    int npaths;
    struct mpt_raddr raddr[MPT_PM_MAX_ADDRS];
    int nraddrs;
    struct mpt_slot slot[MPT_PM_MAX_SLOTS];
    struct {                         /* mpt_set_path_budget / _rate, per path id */
        uint64_t budget, rate;
        uint64_t used_prev;          /* counted by the path's subflows that went down */
        int spent_reported;
    } meter[MPT_PM_MAX_PATHS];
};

_Static_assert(MPT_IO_MAX_PATHS == MPT_PM_MAX_PATHS, "mpt_connect's limit is the manager's");

static void slot_open(struct mpt_paths *ps, const struct mpt_pm_action *a, uint64_t now);

/* ---- Carrying out the manager's decisions ------------------------------------------ */

/* The manager's timer: its next deadline. Before establishment nothing but
 * the first subflow opens (mpt_paths_connect_first), and a retry of that
 * one would be moot: the connection fails with it. */
static void paths_arm(struct mpt_paths *ps, uint64_t now)
{
    struct mpt_socket *s = ps->s;
    uint64_t t = mpt_pm_next_timeout(ps->pm);

    if (s->done || !s->established || t == MPT_TIME_NEVER) {
        mpt_tmr_stop(&ps->timer);
        return;
    }
    mpt_tmr_start(&ps->timer, t > now ? (double)(t - now) / 1e9 : 0.);
}

/* Opens every slot the manager says is due (traced as retries when the
 * timer says so), then re-arms the timer. After mpt_shutdown or the end of
 * the connection no subflow opens any more. Returns how many were opened. */
static int paths_run(struct mpt_paths *ps, int retry)
{
    struct mpt_socket *s = ps->s;
    struct mpt_pm_action a;
    struct mpt_pm_slot_info si;
    uint64_t now = mpt_io_now();
    int n = 0;

    if (s->done || s->shut)
        mpt_pm_stop(ps->pm);
    while (mpt_pm_next(ps->pm, now, &a)) {
        if (retry && mpt_pm_slot_info(ps->pm, a.slot, &si) == 0)
            MPT_TRACE(s->ctx, s->id, "sf_retry", "\"path\":%d,\"fails\":%u", a.path, si.failures);
        slot_open(ps, &a, now);
        n++;
    }
    paths_arm(ps, now);
    return n;
}

static void paths_timer_cb(EV_P_ ev_timer *w, int revents)
{
    struct mpt_paths *ps = w->data;
    struct mpt_socket *s = ps->s;

    if (!s->done && s->established && paths_run(ps, 1) > 0)
        mpt_sock_pump(s, 1);
}

/* Slot k's subflow is gone or never came (err, sys_errno: why): the
 * manager decides whether and when it retries; a retry is never silent. */
static void slot_down(struct mpt_paths *ps, int k, int err, int sys_errno, uint64_t now)
{
    struct mpt_socket *s = ps->s;
    struct mpt_pm_slot_info si;

    if (s->done || s->shut)
        mpt_pm_stop(ps->pm);
    mpt_pm_down(ps->pm, k, now);
    if (mpt_pm_slot_info(ps->pm, k, &si) == 0 && si.state == MPT_PM_WAITING) {
        uint64_t ms = si.retry_at > now ? (si.retry_at - now) / MPT_NS_PER_MS : 0;
        MPT_TRACE(s->ctx, s->id, "sf_retry_scheduled",
                  "\"slot\":%d,\"path\":%d,\"fails\":%u,\"error\":\"%s\",\"errno\":%d,\"ms\":%llu",
                  k, si.path, si.failures, mpt_err_name(err), sys_errno, (unsigned long long)ms);
    }
    paths_arm(ps, now);
}

/* Keeps si as slot k's record of its last subflow (no record if there is
 * no memory for it: the slot still retries). */
static void slot_record(struct mpt_paths *ps, int k, const struct mpt_subflow_info *si)
{
    struct mpt_slot *sl = &ps->slot[k];

    if (sl->last == NULL && (sl->last = mpt_malloc(sizeof *sl->last)) == NULL)
        return;
    *sl->last = *si;
    sl->last->state = si->fail_error != 0 ? MPT_SUBFLOW_FAILED : MPT_SUBFLOW_CLOSED;
}

/* Subflow idx of a client slot went down (si: as reported): keep it as the
 * slot's record of its last failure and let the manager schedule the retry. */
void mpt_paths_slot_down(struct mpt_socket *s, int idx, const struct mpt_subflow_info *si)
{
    struct mpt_paths *ps = s->paths;
    struct mpt_sfio *sf = s->sf[idx];
    int k = sf ? sf->slot : -1;

    if (ps == NULL || k < 0 || k >= mpt_pm_nslots(ps->pm))
        return;
    ps->slot[k].sf = -1;
    if (si->path_id >= 0 && si->path_id < MPT_PM_MAX_PATHS && ps->meter[si->path_id].budget)
        ps->meter[si->path_id].used_prev = si->budget_used;
    slot_record(ps, k, si);
    slot_down(ps, k, si->fail_error, si->sys_errno, mpt_io_now());
}

/* A slot could not even get a subflow (engine limit, no memory): record
 * the cause and retry later like any failure. */
static void slot_fail_now(struct mpt_paths *ps, const struct mpt_pm_action *a, int err,
                          uint64_t now)
{
    struct mpt_subflow_info si;

    memset(&si, 0, sizeof si);
    si.path_id = a->path;
    si.remote = ps->raddr[a->addr].sa;
    si.fail_error = err;
    slot_record(ps, a->slot, &si);
    slot_down(ps, a->slot, err, 0, now);
}

/* A subflow the I/O layer still holds although the engine has already
 * reused its index for a new one: record it for its slot, then let go (no
 * callback: this can run inside an API call). */
static void sf_retire(struct mpt_socket *s, struct mpt_sfio *sf)
{
    struct mpt_pm_slot_info psi;
    struct mpt_subflow_info si;

    if (!sf->down_reported) {
        memset(&si, 0, sizeof si);
        si.path_id = mpt_pm_slot_info(s->paths->pm, sf->slot, &psi) == 0 ? psi.path : -1;
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
 * Opens the TCP connection the manager asked for and reserves its engine
 * subflow. A socket that cannot be made (no such interface any more,
 * address gone, no route) still becomes a subflow that fails at once, so
 * that it is reported and retried like one that fails later. An engine
 * that takes no more subflows at all (the connection is closing) stops the
 * manager.
 */
static void slot_open(struct mpt_paths *ps, const struct mpt_pm_action *a, uint64_t now)
{
    struct mpt_socket *s = ps->s;
    struct mpt_path *p = &ps->path[a->path];
    struct mpt_raddr *r = &ps->raddr[a->addr];
    struct mpt_sfio *sf;
    const char *what;
    int fd, idx, in_progress, e;

    idx = mpt_conn_add_subflow(s->c, (uint8_t)a->path, a->prio, now);
    if (idx < 0) {
        MPT_TRACE(s->ctx, s->id, "sf_add_refused", "\"error\":\"%s\"", mpt_err_name(idx));
        if (idx == MPT_ETOOMANY) {
            slot_fail_now(ps, a, idx, now);
        } else {
            mpt_pm_stop(ps->pm);
            mpt_pm_down(ps->pm, a->slot, now);
        }
        return;
    }
    /* before it carries a byte: the path's budget and rate cap */
    mpt_paths_meter_apply(s, a->slot, idx);
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
                  idx, a->path, mpt_err_name(MPT_ENOMEM));
        mpt_conn_sf_failed(s->c, idx, MPT_ENOMEM, now);
        slot_fail_now(ps, a, MPT_ENOMEM, now);
        mpt_sock_kick(s);
        return;
    }
    sf->slot = a->slot;
    sf->remote = r->sa;
    if (p->src.ss_family != AF_UNSPEC)
        memcpy(&sf->local, &p->src, p->srclen);
    memcpy(sf->ifname, p->ifname, sizeof sf->ifname);
    ps->slot[a->slot].sf = idx;
    (void)mpt_conn_sf_set_remote_id(s->c, idx, r->addr_id > 0 ? (uint8_t)r->addr_id : 0);
    if (e != 0) {
        MPT_TRACE(s->ctx, s->id, "sf_connect_failed",
                  "\"sf\":%d,\"path\":%d,\"step\":\"%s\",\"errno\":%d", idx, a->path, what, e);
        mpt_sfio_fail_sys(s, sf, "sf_error", e, now);
    } else {
        MPT_TRACE(s->ctx, s->id, "sf_connect", "\"sf\":%d,\"path\":%d,\"raddr\":%d", idx,
                  a->path, a->addr);
        if (!in_progress)
            mpt_sfio_connected(s, sf, now);
        else
            mpt_tmr_start(&sf->ctimer, s->ctx->cfg.connect_timeout_ms / 1000.);
    }
    mpt_sock_kick(s);
}

int mpt_paths_add_raddr(struct mpt_socket *s, const struct sockaddr_storage *ss, socklen_t len,
                        int addr_id)
{
    struct mpt_paths *ps = s->paths;
    int a, is_new;

    /* The manager tells addresses apart by id; the same sockaddr under
     * another id (the resolved one, advertised) is the same address. */
    for (int i = 0; i < ps->nraddrs; i++) {
        if (ps->raddr[i].len == len && memcmp(&ps->raddr[i].sa, ss, len) == 0) {
            if (ps->raddr[i].addr_id < 0)
                ps->raddr[i].addr_id = addr_id;
            return i;
        }
    }
    a = mpt_pm_add_addr(ps->pm, ss->ss_family, addr_id < 0 ? 0 : addr_id, mpt_io_now(), &is_new);
    if (a < 0 || !is_new)
        return a;
    ps->raddr[a].sa = *ss;
    ps->raddr[a].len = len;
    ps->raddr[a].addr_id = addr_id;
    ps->raddr[a].pm_id = addr_id < 0 ? 0 : addr_id;
    ps->nraddrs = a + 1;
    if (s->established)
        (void)paths_run(ps, 0);
    return a;
}

/* A link, address or route changed (netlink.c): waiting slots retry soon. */
static void sock_paths_changed(struct mpt_socket *s)
{
    if (s->server || s->done || !s->established || s->paths == NULL)
        return;
    uint64_t now = mpt_io_now();
    mpt_pm_links_changed(s->paths->pm, now);
    paths_arm(s->paths, now);
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
 * them retry soon (sock_paths_changed). Pumps without dispatch (the
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
    memset(ctx->src_seen, 0, sizeof ctx->src_seen);
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

static int parse_path(const char *str, struct mpt_path *p)
{
    char buf[128];
    size_t n;

    if (str == NULL || (n = strlen(str)) == 0 || n >= sizeof buf)
        return MPT_EINVAL;
    memset(p, 0, sizeof *p);
    memcpy(buf, str, n + 1);
    static const struct {
        const char *suffix;
        int prio;
    } tiers[] = {{"/primary", MPT_PRIORITY_PRIMARY},
                 {"/backup", MPT_PRIORITY_BACKUP},
                 {"/secondary", MPT_PRIORITY_SECONDARY},
                 {"/never", MPT_PRIORITY_NEVER}};
    for (size_t t = 0; t < sizeof tiers / sizeof tiers[0]; t++) {
        size_t k = strlen(tiers[t].suffix);
        if (n > k && strcmp(buf + n - k, tiers[t].suffix) == 0) {
            p->prio = tiers[t].prio;
            buf[n - k] = '\0';
            break;
        }
    }
    if (buf[0] == '\0')
        return MPT_EINVAL;
    if (mpt_parse_addr(buf, 0, &p->src, &p->srclen) == 0)
        return 0;
    if (strlen(buf) >= IF_NAMESIZE || strchr(buf, '/') != NULL || strchr(buf, ' ') != NULL)
        return MPT_EINVAL;
    strcpy(p->ifname, buf);
    p->src.ss_family = AF_UNSPEC;
    return 0;
}

/* Same source address (and port, scope) as an entry of the cache? */
static int src_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return 0;
}

/* A test bind that succeeded stays good for a second or until a link or an
 * address goes away (links_down empties the cache): a client opening
 * thousands of connections per second tests each source address once, not
 * four system calls per path per connection. A source port is never
 * cached: whether it is free changes from one connect to the next. */
#define SRC_SEEN_FRESH (1000 * MPT_NS_PER_MS)

static int src_seen(struct mpt_ctx *ctx, const struct sockaddr_storage *a, uint64_t now)
{
    for (size_t k = 0; k < sizeof ctx->src_seen / sizeof ctx->src_seen[0]; k++) {
        const struct mpt_src_seen *e = &ctx->src_seen[k];
        if (e->at && now - e->at < SRC_SEEN_FRESH && src_same(&e->a, a))
            return 1;
    }
    return 0;
}

static void src_remember(struct mpt_ctx *ctx, const struct sockaddr_storage *a, uint64_t now)
{
    size_t n = sizeof ctx->src_seen / sizeof ctx->src_seen[0], old = 0;

    if ((a->ss_family == AF_INET && ((const struct sockaddr_in *)a)->sin_port) ||
        (a->ss_family == AF_INET6 && ((const struct sockaddr_in6 *)a)->sin6_port))
        return;
    for (size_t k = 1; k < n; k++)
        if (ctx->src_seen[k].at < ctx->src_seen[old].at)
            old = k;
    ctx->src_seen[old].a = *a;
    ctx->src_seen[old].at = now ? now : 1;
}

/*
 * A path that can never work is an error up front rather than a subflow
 * retried forever: an interface that does not exist (MPT_ENODEV), a source
 * address that is not one of this host's (MPT_EADDRNOTAVAIL, found by a
 * test bind, which is exactly what the subflow will do). An interface that
 * exists but is down, or comes and goes, is fine: it may come back.
 */
static int check_path(struct mpt_ctx *ctx, const struct mpt_path *p)
{
    int fd, e = 0, one = 1;
    uint64_t now;

    if (p->ifname[0] != '\0')
        return if_nametoindex(p->ifname) == 0 ? mpt_errno_to_mpt(errno) : 0;
    if (p->src.ss_family == AF_UNSPEC)
        return 0;
    now = mpt_io_now();
    if (src_seen(ctx, &p->src, now))
        return 0;
    ctx->src_tests++;
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
    if (e)
        return mpt_errno_to_mpt(e);
    src_remember(ctx, &p->src, now);
    return 0;
}

/* Path p (parsed) joins the manager: its index there is its path id. */
static int path_add(struct mpt_paths *ps, const struct mpt_path *p)
{
    int id = mpt_pm_add_path(ps->pm, p->src.ss_family, p->prio, mpt_io_now());

    if (id < 0)
        return id;
    ps->path[id] = *p;
    ps->npaths = id + 1;
    return id;
}

static int fullmesh_paths(struct mpt_paths *ps)
{
    struct ifaddrs *ifa, *i;
    struct mpt_path p;
    int rc = 0;

    if (getifaddrs(&ifa) < 0)
        return mpt_errno_to_mpt(errno);
    for (i = ifa; i && ps->npaths < MPT_PM_MAX_PATHS && rc >= 0; i = i->ifa_next) {
        if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP))
            continue;
        if ((i->ifa_flags & IFF_LOOPBACK) && !ps->s->ctx->cfg.include_loopback)
            continue;
        int fam = i->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6)
            continue;
        if (fam == AF_INET6 &&
            IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
            continue;
        memset(&p, 0, sizeof p);
        p.srclen = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        memcpy(&p.src, i->ifa_addr, p.srclen);
        rc = path_add(ps, &p);
    }
    freeifaddrs(ifa);
    return rc < 0 ? rc : 0;
}

/* ---- Paths ------------------------------------------------------------------------ */

int mpt_add_path(struct mpt_socket *s, const char *path)
{
    struct mpt_path p;
    int rc, id;

    if (s == NULL || s->released || path == NULL)
        return MPT_EINVAL;
    if (s->server || s->done)
        return MPT_ESTATE;
    if ((rc = parse_path(path, &p)) < 0 || (rc = check_path(s->ctx, &p)) < 0)
        return rc;
    if ((id = path_add(s->paths, &p)) < 0)
        return id;
    if (s->established) {
        (void)paths_run(s->paths, 0);
        mpt_sock_pump(s, 0);
    }
    MPT_TRACE(s->ctx, s->id, "path_added", "\"path\":%d", id);
    return id;
}

int mpt_remove_path(struct mpt_socket *s, int path_id)
{
    struct mpt_paths *ps;
    struct mpt_pm_slot_info si;
    uint64_t now;

    if (s == NULL || s->released)
        return MPT_EINVAL;
    if (s->server)
        return MPT_ESTATE;
    ps = s->paths;
    if (mpt_pm_remove_path(ps->pm, path_id) < 0)
        return MPT_ENOTFOUND;
    now = mpt_io_now();
    for (int k = 0; k < mpt_pm_nslots(ps->pm); k++)
        if (mpt_pm_slot_info(ps->pm, k, &si) == 0 && si.path == path_id &&
            ps->slot[k].sf >= 0 && s->c)
            mpt_conn_sf_close(s->c, ps->slot[k].sf, MPT_REASON_PATH_REMOVED, now);
    paths_arm(ps, now);
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

/* Switches the live connection, on either side: the server names a
 * subflow by its id, the client a path (its subflows now and later). */
int mpt_set_priority(struct mpt_socket *s, int path_id, enum mpt_priority prio)
{
    uint64_t now = mpt_io_now();
    int rc = 0;

    if (s == NULL || s->released || (int)prio < MPT_PRIORITY_PRIMARY ||
        (int)prio > MPT_PRIORITY_NEVER)
        return MPT_EINVAL;
    if (s->done || s->c == NULL)
        return MPT_ESTATE;
    if (s->server) {
        int idx = sf_index_of_id(s, path_id);
        if (idx < 0)
            return MPT_ENOTFOUND;
        rc = mpt_conn_sf_set_prio(s->c, idx, (int)prio, now);
    } else {
        struct mpt_paths *ps = s->paths;
        struct mpt_pm_slot_info si;
        if (mpt_pm_set_prio(ps->pm, path_id, (int)prio) < 0)
            return MPT_ENOTFOUND;
        for (int k = 0; k < mpt_pm_nslots(ps->pm); k++) {
            if (mpt_pm_slot_info(ps->pm, k, &si) == 0 && si.path == path_id &&
                ps->slot[k].sf >= 0) {
                int r = mpt_conn_sf_set_prio(s->c, ps->slot[k].sf, (int)prio, now);
                if (r < 0 && r != MPT_ESTATE)
                    rc = r;
            }
        }
    }
    mpt_sock_pump(s, 0);
    return rc < 0 ? rc : 0;
}

/* ---- Metered paths ---------------------------------------------------------------- */

static int path_known(const struct mpt_paths *ps, int path_id)
{
    return path_id >= 0 && path_id < MPT_PM_MAX_PATHS && path_id < ps->npaths;
}

static int set_meter(struct mpt_socket *s, int path_id, uint64_t v, int rate)
{
    uint64_t now = mpt_io_now();
    int rc = 0;

    if (s == NULL || s->released || (rate && v > ((uint64_t)1 << 34)))
        return MPT_EINVAL;
    if (s->done || (s->c == NULL && (s->server || s->paths == NULL)))
        return MPT_ESTATE; /* a client may set them before its connection starts */
    if (s->server) {
        int idx = sf_index_of_id(s, path_id);
        if (idx < 0)
            return MPT_ENOTFOUND;
        rc = rate ? mpt_conn_sf_set_rate(s->c, idx, v, now)
                  : mpt_conn_sf_set_budget(s->c, idx, v, 0, now);
    } else {
        struct mpt_paths *ps = s->paths;
        struct mpt_pm_slot_info si;
        if (!path_known(ps, path_id))
            return MPT_ENOTFOUND;
        if (rate) {
            ps->meter[path_id].rate = v;
        } else {
            ps->meter[path_id].budget = v;
            ps->meter[path_id].used_prev = 0;
            ps->meter[path_id].spent_reported = 0;
        }
        for (int k = 0; k < mpt_pm_nslots(ps->pm); k++) {
            if (s->c != NULL && mpt_pm_slot_info(ps->pm, k, &si) == 0 && si.path == path_id &&
                ps->slot[k].sf >= 0) {
                int r = rate ? mpt_conn_sf_set_rate(s->c, ps->slot[k].sf, v, now)
                             : mpt_conn_sf_set_budget(s->c, ps->slot[k].sf, v, 0, now);
                if (r < 0 && r != MPT_ESTATE)
                    rc = r;
            }
        }
    }
    if (s->c == NULL)
        return 0;
    MPT_TRACE(s->ctx, s->id, rate ? "path_rate" : "path_budget", "\"path\":%d,\"value\":%llu",
              path_id, (unsigned long long)v);
    mpt_sock_pump(s, 0);
    return rc < 0 ? rc : 0;
}

int mpt_set_path_budget(struct mpt_socket *s, int path_id, uint64_t bytes)
{
    return set_meter(s, path_id, bytes, 0);
}

int mpt_set_path_rate(struct mpt_socket *s, int path_id, uint64_t bytes_per_s)
{
    return set_meter(s, path_id, bytes_per_s, 1);
}

/* Client: engine subflow idx was made for slot k: the path's budget and rate. */
void mpt_paths_meter_apply(struct mpt_socket *s, int k, int idx)
{
    struct mpt_paths *ps = s->paths;
    struct mpt_pm_slot_info si;
    uint64_t now = mpt_io_now();

    if (ps == NULL || s->c == NULL || mpt_pm_slot_info(ps->pm, k, &si) < 0 ||
        !path_known(ps, si.path))
        return;
    if (ps->meter[si.path].budget)
        mpt_conn_sf_set_budget(s->c, idx, ps->meter[si.path].budget,
                               ps->meter[si.path].used_prev, now);
    if (ps->meter[si.path].rate)
        mpt_conn_sf_set_rate(s->c, idx, ps->meter[si.path].rate, now);
}

/* A budget-spent event for path_id: 1 if it is news (once per budget set);
 * the path's later subflows start as backups. */
int mpt_paths_meter_spent(struct mpt_socket *s, int path_id)
{
    struct mpt_paths *ps = s->paths;

    if (ps == NULL || !path_known(ps, path_id))
        return 1; /* server: per subflow, the engine raises it once */
    if (ps->meter[path_id].spent_reported)
        return 0;
    ps->meter[path_id].spent_reported = 1;
    mpt_pm_set_prio(ps->pm, path_id, MPT_PRIO_BACKUP);
    return 1;
}

int mpt_set_backup(struct mpt_socket *s, int path_id, int backup)
{
    return mpt_set_priority(s, path_id, backup ? MPT_PRIORITY_BACKUP : MPT_PRIORITY_PRIMARY);
}

/* A client slot with no subflow now, whose last one went down: its record
 * (the subflow as it went down, with the manager's failure count and when
 * it retries). 0 if none, or if its path or address was removed. */
int mpt_paths_slot_record(const struct mpt_socket *s, int k, struct mpt_subflow_info *o)
{
    const struct mpt_paths *ps = s->paths;
    struct mpt_pm_slot_info si;

    if (ps == NULL || mpt_pm_slot_info(ps->pm, k, &si) < 0 || ps->slot[k].sf >= 0 ||
        ps->slot[k].last == NULL || si.removed)
        return 0;
    *o = *ps->slot[k].last;
    o->failures = si.failures;
    o->retry_ms = -1;
    if (si.state == MPT_PM_WAITING) {
        uint64_t now = mpt_io_now();
        double left = si.retry_at > now ? (double)(si.retry_at - now) / MPT_NS_PER_MS : 0.;
        /* Rounded up, so that 0 means due; an exact 400 ms stays 400, the
         * bound a caller may check against reconnect_max_ms. */
        o->retry_ms = left <= 0.                 ? 0
                      : left >= (double)INT32_MAX ? INT32_MAX
                                                  : (int)left + ((double)(int)left < left);
    }
    return 1;
}

/* ---- What the rest of the socket asks of its paths ---------------------------------- */

/* mpt_connect: the manager, and the paths given (parsed and checked; each
 * refusal traced), every local address with fullmesh, or one unbound path. */
int mpt_paths_setup(struct mpt_socket *s, const char *const *paths, size_t npaths)
{
    struct mpt_ctx *ctx = s->ctx;
    struct mpt_pm_settings set;
    struct mpt_paths *ps;
    struct mpt_path p;
    int rc;

    if ((ps = mpt_calloc(1, sizeof *ps)) == NULL)
        return MPT_ENOMEM;
    if (mpt_tmr_init(&ctx->ws, &ps->timer, paths_timer_cb) < 0) {
        mpt_free(ps);
        return MPT_ENOMEM;
    }
    ps->timer.w.data = ps;
    ps->s = s;
    for (int k = 0; k < MPT_PM_MAX_SLOTS; k++)
        ps->slot[k].sf = -1;
    s->paths = ps;
    mpt_pm_settings_default(&set);
    set.subflows_per_path = ctx->cfg.subflows_per_path;
    set.min_backoff = (uint64_t)ctx->cfg.reconnect_min_ms * MPT_NS_PER_MS;
    set.max_backoff = (uint64_t)ctx->cfg.reconnect_max_ms * MPT_NS_PER_MS;
    if (set.min_backoff > set.max_backoff)
        set.min_backoff = set.max_backoff; /* the same delays: the ceiling */
    if ((rc = mpt_pm_new(&set, &ps->pm)) < 0)
        return rc;
    for (size_t i = 0; i < npaths; i++) {
        if ((rc = parse_path(paths[i], &p)) < 0 || (rc = check_path(ctx, &p)) < 0) {
            MPT_TRACE(ctx, s->id, "path_refused", "\"path\":%zu,\"error\":\"%s\"", i,
                      mpt_err_name(rc));
            return rc;
        }
        if ((rc = path_add(ps, &p)) < 0)
            return rc;
    }
    if (npaths == 0 && ctx->cfg.fullmesh) {
        if ((rc = fullmesh_paths(ps)) < 0)
            return rc;
    }
    if (ps->npaths == 0) {
        memset(&p, 0, sizeof p);
        p.src.ss_family = AF_UNSPEC;
        if ((rc = path_add(ps, &p)) < 0)
            return rc;
    }
    return 0;
}

/* The family to resolve the server's name in: the first explicit source
 * address's, else any. */
int mpt_paths_family(const struct mpt_socket *s)
{
    return s->paths->path[0].src.ss_family;
}

int mpt_paths_count(const struct mpt_socket *s)
{
    return s->paths ? s->paths->npaths : 0;
}

int mpt_paths_nslots(const struct mpt_socket *s)
{
    return s->paths ? mpt_pm_nslots(s->paths->pm) : 0;
}

/* The connection exists: its first subflow, on the first slot (the only
 * one the manager opens before establishment). */
void mpt_paths_connect_first(struct mpt_socket *s)
{
    (void)paths_run(s->paths, 0);
}

/* Established: every slot without a subflow opens. */
void mpt_paths_start_all(struct mpt_socket *s)
{
    mpt_pm_established(s->paths->pm, mpt_io_now());
    (void)paths_run(s->paths, 0);
}

void mpt_paths_free(struct mpt_socket *s)
{
    struct mpt_paths *ps = s->paths;

    if (ps == NULL)
        return;
    for (int k = 0; k < MPT_PM_MAX_SLOTS; k++)
        mpt_free(ps->slot[k].last);
    mpt_tmr_fini(&ps->timer);
    mpt_pm_free(ps->pm);
    mpt_free(ps);
    s->paths = NULL;
}

/* The connection is finished: no more subflows. */
void mpt_paths_stop(struct mpt_socket *s)
{
    if (s->paths == NULL)
        return;
    mpt_pm_stop(s->paths->pm);
    mpt_tmr_stop(&s->paths->timer);
}

int mpt_paths_slot_info(const struct mpt_socket *s, int k, int *path_id, uint32_t *failures)
{
    struct mpt_pm_slot_info si;

    if (s->paths == NULL || mpt_pm_slot_info(s->paths->pm, k, &si) < 0)
        return 0;
    *path_id = si.path;
    *failures = si.failures;
    return 1;
}

/* Slot k's subflow is up: its failures in a row end. */
void mpt_paths_slot_up(struct mpt_socket *s, int k)
{
    if (s->paths != NULL)
        mpt_pm_up(s->paths->pm, k);
}

/* Engine subflow idx of slot k is gone: the slot has none (unless it has
 * a newer one already). */
void mpt_paths_sf_gone(struct mpt_socket *s, int k, int idx)
{
    if (s->paths != NULL && k >= 0 && k < MPT_PM_MAX_SLOTS && s->paths->slot[k].sf == idx)
        s->paths->slot[k].sf = -1;
}

/* REMOVE_ADDR: the manager's slots to that address die (their subflows end
 * as the engine closes them). */
void mpt_paths_addr_removed(struct mpt_socket *s, int addr_id)
{
    struct mpt_paths *ps = s->paths;

    for (int i = 0; i < ps->nraddrs; i++)
        if (ps->raddr[i].addr_id == addr_id)
            (void)mpt_pm_remove_addr(ps->pm, ps->raddr[i].pm_id);
    paths_arm(ps, mpt_io_now());
}
