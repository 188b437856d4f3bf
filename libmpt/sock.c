/*
 * One multipath connection: its subflow sockets, the engine pump (read ->
 * engine -> writev), the per-connection timer, events to callbacks, and the
 * client path manager (paths x server addresses, re-established with backoff).
 */
#include "config.h"

#include <errno.h>
#include <ifaddrs.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#ifdef __linux__
#include <linux/tcp.h> /* the full struct tcp_info */
#else
#include <netinet/tcp.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/sched.h"
#include "core/cc.h"
#include "io.h"

#define IOV_MAX_BATCH 64
#define MPT_IO_ROOM_REFILL (64u * 1024u)

static void sock_timer_cb(EV_P_ ev_timer *w, int revents);
static void sf_io_cb(EV_P_ ev_io *w, int revents);
static void sf_ctimer_cb(EV_P_ ev_timer *w, int revents);
static void slot_retry_cb(EV_P_ ev_timer *w, int revents);
static void slot_connect(struct mpt_slot *sl);
static void sf_close(struct mpt_socket *s, struct mpt_sfio *sf);
static void start_all_slots(struct mpt_socket *s);
static int sock_add_raddr(struct mpt_socket *s, const struct sockaddr_storage *ss, socklen_t len,
                          int addr_id);

/* ---- Socket options ---------------------------------------------------------- */

/* Returns 0, or the errno of the option that could not be set. */
int mpt_sock_setopts(struct mpt_ctx *ctx, int fd)
{
    int one = 1;
    unsigned lowat = ctx->cfg.notsent_lowat;
    unsigned uto = ctx->cfg.user_timeout_ms;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        return errno;
#ifdef TCP_NOTSENT_LOWAT
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
#endif
#ifdef TCP_USER_TIMEOUT
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof uto);
#endif
#ifdef TCP_CONGESTION
    if (ctx->cfg.tcp_congestion != NULL)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, ctx->cfg.tcp_congestion,
                         (socklen_t)strlen(ctx->cfg.tcp_congestion));
#endif
    (void)lowat;
    (void)uto;
    return 0;
}

static void sample_info(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
{
#if defined(__linux__) && defined(TCP_INFO)
    struct tcp_info ti;
    socklen_t len = sizeof ti;

    if (sf->fd < 0 || sf->connecting)
        return;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(sf->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return;
    sf->info.srtt = (uint64_t)ti.tcpi_rtt * 1000u;
    sf->info.rttvar = (uint64_t)ti.tcpi_rttvar * 1000u;
    sf->info.mss = ti.tcpi_snd_mss;
    sf->info.cwnd_bytes = ti.tcpi_snd_cwnd * ti.tcpi_snd_mss;
    sf->info.unacked_bytes = ti.tcpi_unacked * ti.tcpi_snd_mss;
    sf->info.notsent_bytes = ti.tcpi_notsent_bytes;
    sf->info.delivery_rate = ti.tcpi_delivery_rate;
    sf->info.total_retrans = ti.tcpi_total_retrans;
    sf->last_info = now;
    mpt_conn_sf_set_info(s->c, sf->idx, &sf->info);
#else
    (void)s;
    (void)sf;
    (void)now;
#endif
}

/*
 * What a writable socket takes now without committing much to this path:
 * what its congestion window still lets it send plus what may wait unsent
 * below TCP_NOTSENT_LOWAT, and at least the configured budget (the kernel's
 * numbers may be stale or unknown). On a fast path (loopback) the window is
 * large and few wake-ups move a lot; on a slow one little waits in the socket.
 */
#define MPT_IO_MAX_ROOM (4u << 20)
static size_t writable_room(const struct mpt_ctx *ctx, const struct mpt_sfio *sf)
{
    const struct mpt_sf_info *in = &sf->info;
    size_t lowat = ctx->cfg.notsent_lowat;
    size_t room = 0;

    if (in->cwnd_bytes > in->unacked_bytes)
        room += in->cwnd_bytes - in->unacked_bytes;
    if (lowat > in->notsent_bytes)
        room += lowat - in->notsent_bytes;
    if (room < ctx->cfg.write_budget)
        room = ctx->cfg.write_budget;
    return room < MPT_IO_MAX_ROOM ? room : MPT_IO_MAX_ROOM;
}

/* ---- Allocation and teardown -------------------------------------------------- */

struct mpt_socket *mpt_sock_alloc(struct mpt_ctx *ctx, int server)
{
    struct mpt_socket *s;

    if (ctx->nconns >= ctx->cfg.max_connections)
        return NULL;
    if ((s = calloc(1, sizeof *s)) == NULL)
        return NULL;
    if (mpt_tmr_init(ctx, &s->timer, sock_timer_cb) < 0) {
        free(s);
        return NULL;
    }
    s->ctx = ctx;
    s->server = server;
    s->evsrc.s = s;
    s->id = ++ctx->next_conn_id;
    s->timer.w.data = s;
    s->next = ctx->socks;
    if (ctx->socks)
        ctx->socks->prev = s;
    ctx->socks = s;
    ctx->nconns++;
    return s;
}

static void slot_free(struct mpt_slot *sl)
{
    mpt_tmr_fini(&sl->retry);
    free(sl);
}

/* Frees everything at once; no callback. */
void mpt_sock_destroy(struct mpt_socket *s)
{
    struct mpt_ctx *ctx = s->ctx;

    for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++)
        if (s->sf[i])
            sf_close(s, s->sf[i]);
    for (int i = 0; i < s->nslots; i++)
        slot_free(s->slots[i]);
    mpt_resolve_cancel(s);
    mpt_evq_forget(ctx, &s->evsrc);
    mpt_tmr_fini(&s->timer);
    if (s->listener)
        mpt_listener_conn_gone(s->listener, s);
    if (s->c)
        mpt_conn_free(s->c);
    if (s->prev)
        s->prev->next = s->next;
    else
        ctx->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    ctx->nconns--;
    MPT_TRACE(ctx, s->id, "conn_freed", NULL);
    free(s->host);
    free(s->paths);
    free(s->raddrs);
    free(s);
}

void mpt_sock_maybe_free(struct mpt_socket *s)
{
    if (s->busy == 0 && s->released && s->done)
        mpt_sock_destroy(s);
}

/* ---- Subflows ----------------------------------------------------------------- */

struct mpt_sfio *mpt_sock_attach(struct mpt_socket *s, int idx, int fd, int connecting)
{
    struct mpt_sfio *sf;

    if (idx < 0 || idx >= MPT_MAX_SUBFLOWS_LIMIT || s->sf[idx] != NULL)
        return NULL;
    if ((sf = calloc(1, sizeof *sf)) == NULL)
        return NULL;
    if (mpt_tmr_init(s->ctx, &sf->ctimer, sf_ctimer_cb) < 0) {
        free(sf);
        return NULL;
    }
    sf->s = s;
    sf->idx = idx;
    sf->fd = fd;
    sf->slot = -1;
    sf->connecting = connecting;
    mpt_io_init(s->ctx, &sf->io, sf_io_cb, fd);
    sf->io.w.data = sf;
    sf->ctimer.w.data = sf;
    s->sf[idx] = sf;
    if (fd < 0) {
        /* A subflow whose socket could not be made: it only exists to be
         * reported down like any other (slot_connect). */
    } else if (!connecting) {
        socklen_t l = sizeof sf->local;
        getsockname(fd, (struct sockaddr *)&sf->local, &l);
        l = sizeof sf->remote;
        getpeername(fd, (struct sockaddr *)&sf->remote, &l);
        sf->room_left = s->ctx->cfg.write_budget;
        mpt_conn_sf_set_room(s->c, idx, sf->room_left, mpt_io_now());
        mpt_io_set(&sf->io, EV_READ | EV_WRITE);
    } else {
        mpt_io_set(&sf->io, EV_WRITE);
    }
    return sf;
}

static void sf_close(struct mpt_socket *s, struct mpt_sfio *sf)
{
    /* the engine may reuse the slot once its socket is gone */
    if (s->c != NULL && mpt_conn_sf_state(s->c, sf->idx) >= MPT_SF_FAILED)
        (void)mpt_conn_sf_release(s->c, sf->idx);
    mpt_io_set(&sf->io, 0);
    mpt_tmr_fini(&sf->ctimer);
    if (sf->fd >= 0)
        close(sf->fd);
    free(sf->pend);
    if (sf->slot >= 0 && sf->slot < s->nslots && s->slots[sf->slot]->sf == sf->idx)
        s->slots[sf->slot]->sf = -1;
    s->sf[sf->idx] = NULL;
    free(sf);
}

int mpt_io_test_subflow_fd(struct mpt_socket *s, int idx)
{
    if (s == NULL || idx < 0 || idx >= MPT_MAX_SUBFLOWS_LIMIT || s->sf[idx] == NULL)
        return -1;
    return s->sf[idx]->fd;
}

/* A system call on subflow sf failed with errno e: record the cause (its
 * MPT_E* code and the errno), trace it, and fail the subflow. */
static void sf_fail_sys(struct mpt_socket *s, struct mpt_sfio *sf, const char *what, int e,
                        uint64_t now)
{
    sf->sys_errno = s->last_sys_errno = e;
    sf->fail_error = s->last_fail_error = mpt_errno_to_mpt(e);
    MPT_TRACE(s->ctx, s->id, what, "\"sf\":%d,\"errno\":%d,\"error\":\"%s\"", sf->idx, e,
              mpt_err_name(sf->fail_error));
    mpt_conn_sf_failed(s->c, sf->idx, sf->fail_error, now);
}

/* Writes what the engine has for sf, within what the socket takes. */
static void sf_flush(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
{
    struct mpt_iovec miov[IOV_MAX_BATCH];
    struct iovec iov[IOV_MAX_BATCH];
    int want_write = 0;

    if (sf->fd < 0 || sf->connecting)
        return;
    for (;;) {
        int n = mpt_conn_sf_output(s->c, sf->idx, miov, IOV_MAX_BATCH, now);
        size_t total = 0;
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = (void *)miov[i].base;
            iov[i].iov_len = miov[i].len;
            total += miov[i].len;
        }
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(sf->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                mpt_conn_sf_set_room(s->c, sf->idx, 0, now);
                sf->room_left = 0;
                want_write = 1;
                break;
            }
            if (mpt_conn_sf_state(s->c, sf->idx) < MPT_SF_FAILED)
                sf_fail_sys(s, sf, "sf_write_error", errno, now);
            mpt_io_set(&sf->io, sf->eof_seen ? 0 : EV_READ);
            return;
        }
        mpt_conn_sf_sent(s->c, sf->idx, (size_t)w, now);
        MPT_TRACE(s->ctx, s->id, "sf_write", "\"sf\":%d,\"bytes\":%zd", sf->idx, w);
        sf->room_left -= (size_t)w < sf->room_left ? (size_t)w : sf->room_left;
        if ((size_t)w < total) {
            mpt_conn_sf_set_room(s->c, sf->idx, 0, now);
            sf->room_left = 0;
            want_write = 1;
            break;
        }
    }
    /* Nearly no room left: the engine cannot fit another DATA frame, so ask
     * the socket when it takes more (else both sides could wait on a
     * leftover of a few bytes that the scheduler treats as none). */
    if (sf->room_left < MPT_IO_ROOM_REFILL)
        want_write = 1;
    mpt_io_set(&sf->io, (sf->eof_seen ? 0 : EV_READ) | (want_write ? EV_WRITE : 0));
}

void mpt_sock_sf_input(struct mpt_socket *s, struct mpt_sfio *sf, const uint8_t *data,
                       size_t len, uint64_t now)
{
    ssize_t used = mpt_conn_sf_input(s->c, sf->idx, data, len, now);

    if (used < 0) {
        MPT_TRACE(s->ctx, s->id, "sf_protocol_error", "\"sf\":%d,\"error\":\"%s\"", sf->idx,
                  mpt_err_name((int)used));
        sf->pend_len = 0;
        return;
    }
    size_t rest = len - (size_t)used;
    if (rest > 0) {
        if (sf->pend == NULL || rest > sf->pend_len) {
            uint8_t *p = realloc(sf->pend, rest);
            if (p == NULL) {
                mpt_conn_sf_failed(s->c, sf->idx, MPT_ENOMEM, now);
                return;
            }
            sf->pend = p;
        }
        memmove(sf->pend, data + used, rest);
        sf->pend_len = rest;
    } else if (sf->pend != NULL) {
        free(sf->pend);
        sf->pend = NULL;
        sf->pend_len = 0;
    }
}

static void sf_read(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
{
    uint8_t *buf = s->ctx->rbuf;

    for (int round = 0; round < 4; round++) {
        size_t off = sf->pend_len;
        if (off > 0)
            memcpy(buf, sf->pend, off);
        ssize_t n = read(sf->fd, buf + off, MPT_IO_RBUF - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            sf_fail_sys(s, sf, "sf_read_error", errno, now);
            return;
        }
        if (n == 0) {
            /* At the end of a graceful close the peer's FIN on this subflow
             * may arrive before its final CLOSE on another one: give the
             * close a moment to finish before calling this a failure. */
            if (mpt_conn_state(s->c) == MPT_CONN_CLOSING && !sf->eof_seen) {
                sf->eof_seen = 1;
                mpt_io_set(&sf->io, 0);
                mpt_tmr_start(&sf->ctimer, 0.25);
                return;
            }
            sf->fail_error = MPT_ECLOSED;
            MPT_TRACE(s->ctx, s->id, "sf_eof", "\"sf\":%d", sf->idx);
            mpt_conn_sf_failed(s->c, sf->idx, MPT_ECLOSED, now);
            return;
        }
        mpt_sock_sf_input(s, sf, buf, off + (size_t)n, now);
        if (mpt_conn_sf_state(s->c, sf->idx) >= MPT_SF_FAILED)
            return;
        if ((size_t)n < MPT_IO_RBUF - off)
            return;
    }
}

static void sf_connected(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
{
    socklen_t l = sizeof sf->local;

    sf->connecting = 0;
    mpt_tmr_stop(&sf->ctimer);
    getsockname(sf->fd, (struct sockaddr *)&sf->local, &l);
    MPT_TRACE(s->ctx, s->id, "sf_tcp_connected", "\"sf\":%d", sf->idx);
    mpt_conn_sf_connected(s->c, sf->idx, now);
    sf->room_left = s->ctx->cfg.write_budget;
    mpt_conn_sf_set_room(s->c, sf->idx, sf->room_left, now);
    mpt_io_set(&sf->io, EV_READ | EV_WRITE);
}

static void sf_io_cb(EV_P_ ev_io *w, int revents)
{
    struct mpt_sfio *sf = w->data;
    struct mpt_socket *s = sf->s;
    uint64_t now = mpt_io_now();

    if (sf->connecting) {
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(sf->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
            err = errno;
        if (err != 0) {
            sf_fail_sys(s, sf, "sf_connect_failed", err, now);
        } else {
            sf_connected(s, sf, now);
        }
        mpt_sock_pump(s, 1);
        return;
    }
    if (revents & EV_WRITE) {
        sample_info(s, sf, now);
        sf->room_left = writable_room(s->ctx, sf);
        mpt_conn_sf_set_room(s->c, sf->idx, sf->room_left, now);
    }
    if (revents & EV_READ) {
        /* The peer's acks arrive here. A subflow held back by the coupled
         * window writes nothing, so no writable wake-up would refresh the
         * TCP-level bytes in flight that its cap is measured against. */
        if (now - sf->last_info > MPT_NS_PER_MS)
            sample_info(s, sf, now);
        sf_read(s, sf, now);
    }
    mpt_sock_pump(s, 1);
}

static void sf_ctimer_cb(EV_P_ ev_timer *w, int revents)
{
    struct mpt_sfio *sf = w->data;
    struct mpt_socket *s = sf->s;

    if (sf->eof_seen) {
        if (!s->done && mpt_conn_sf_state(s->c, sf->idx) < MPT_SF_FAILED) {
            MPT_TRACE(s->ctx, s->id, "sf_eof", "\"sf\":%d", sf->idx);
            sf->fail_error = MPT_ECLOSED;
            mpt_conn_sf_failed(s->c, sf->idx, MPT_ECLOSED, mpt_io_now());
        }
        mpt_sock_pump(s, 1);
        return;
    }
    if (!sf->connecting)
        return;
    MPT_TRACE(s->ctx, s->id, "sf_connect_timeout", "\"sf\":%d", sf->idx);
    sf->fail_error = MPT_ETIMEDOUT;
    mpt_conn_sf_failed(s->c, sf->idx, MPT_ETIMEDOUT, mpt_io_now());
    mpt_sock_pump(s, 1);
}

/* ---- Events to callbacks ----------------------------------------------------- */

/* The public states are the engine's, value for value: the casts below
 * (and in mpt_get_info) rely on it. */
#define MPT_SAME_STATE_(pub, eng)                                                            \
    _Static_assert((int)(pub) == (int)(eng), #pub " must equal " #eng)
MPT_SAME_STATE_(MPT_SUBFLOW_CONNECTING, MPT_SF_CONNECTING);
MPT_SAME_STATE_(MPT_SUBFLOW_HANDSHAKE, MPT_SF_HANDSHAKE);
MPT_SAME_STATE_(MPT_SUBFLOW_ESTABLISHED, MPT_SF_ESTABLISHED);
MPT_SAME_STATE_(MPT_SUBFLOW_CLOSING, MPT_SF_CLOSING);
MPT_SAME_STATE_(MPT_SUBFLOW_FAILED, MPT_SF_FAILED);
MPT_SAME_STATE_(MPT_SUBFLOW_CLOSED, MPT_SF_CLOSED);
MPT_SAME_STATE_(MPT_STATE_CONNECTING, MPT_CONN_HANDSHAKE);
MPT_SAME_STATE_(MPT_STATE_ESTABLISHED, MPT_CONN_ESTABLISHED);
MPT_SAME_STATE_(MPT_STATE_CLOSING, MPT_CONN_CLOSING);
MPT_SAME_STATE_(MPT_STATE_CLOSED, MPT_CONN_CLOSED);
MPT_SAME_STATE_(MPT_STATE_ABORTED, MPT_CONN_ABORTED);
#undef MPT_SAME_STATE_

static void fill_sf_info(struct mpt_socket *s, int idx, struct mpt_subflow_info *o)
{
    struct mpt_sf_stats st;
    struct mpt_sfio *sf = s->sf[idx];

    memset(o, 0, sizeof *o);
    o->path_id = -1;
    o->retry_ms = -1;
    if (s->c != NULL && mpt_conn_sf_get_stats(s->c, idx, &st) == 0) {
        o->id = (int)st.id;
        o->state = (enum mpt_subflow_state)st.state;
        o->bytes_received = st.bytes_received;
        o->backup = st.backup;
        o->bytes_sent = st.bytes_sent;
        o->bytes_acked = st.bytes_acked;
        o->fail_error = st.fail_error;
        o->fail_reason = st.fail_reason;
        o->rtt_us = st.srtt / 1000u;
    } else {
        o->state = MPT_SUBFLOW_CLOSED;
    }
    if (sf != NULL) {
        o->local = sf->local;
        o->remote = sf->remote;
        memcpy(o->ifname, sf->ifname, sizeof o->ifname);
        o->ifname[sizeof o->ifname - 1] = '\0';
        if (sf->info.srtt)
            o->rtt_us = sf->info.srtt / 1000u;
        o->rttvar_us = sf->info.rttvar / 1000u;
        o->cwnd_bytes = sf->info.cwnd_bytes;
        o->total_retrans = sf->info.total_retrans;
        if (sf->slot >= 0 && sf->slot < s->nslots) {
            o->path_id = s->slots[sf->slot]->path;
            o->failures = s->slots[sf->slot]->fails;
        }
        if (o->fail_error == 0)
            o->fail_error = sf->fail_error;
        if (o->fail_error == sf->fail_error)
            o->sys_errno = sf->sys_errno;
    }
}

/* A graceful end closes each subflow like TCP should: FIN first, then read
 * (and discard) until the peer's FIN, so that late frames in flight do not
 * turn the close into a reset that destroys the peer's last frames. */
struct linger_fd {
    struct mpt_io io;
    struct mpt_tmr tmr;
};

static void linger_end(struct linger_fd *lf)
{
    int fd = lf->io.w.fd;
    mpt_io_set(&lf->io, 0);
    mpt_tmr_fini(&lf->tmr);
    close(fd);
    free(lf);
}

static void linger_io_cb(EV_P_ ev_io *w, int revents)
{
    struct linger_fd *lf = w->data;
    uint8_t buf[4096];
    ssize_t n = read(w->fd, buf, sizeof buf);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        linger_end(lf);
}

static void linger_tmr_cb(EV_P_ ev_timer *w, int revents)
{
    linger_end(w->data);
}

static void linger_close(struct mpt_ctx *ctx, int fd)
{
    struct linger_fd *lf = malloc(sizeof *lf);

    shutdown(fd, SHUT_WR);
    if (lf == NULL || mpt_tmr_init(ctx, &lf->tmr, linger_tmr_cb) < 0) {
        free(lf);
        close(fd);
        return;
    }
    mpt_io_init(ctx, &lf->io, linger_io_cb, fd);
    lf->io.w.data = lf;
    lf->tmr.w.data = lf;
    mpt_io_set(&lf->io, EV_READ);
    mpt_tmr_start(&lf->tmr, 2.0);
}

void mpt_sock_linger_flush(struct mpt_ctx *ctx)
{
    for (struct mpt_io *io = ctx->ios, *next; io; io = next) {
        next = io->next;
        if (io->w.cb == linger_io_cb) {
            linger_end(io->w.data);
            next = ctx->ios; /* the list changed */
        }
    }
}

/* Drop the connection's subflows and mark it finished. */
static void sock_finish(struct mpt_socket *s, int err)
{
    if (s->done)
        return;
    s->done = 1;
    s->error = err;
    MPT_TRACE(s->ctx, s->id, "conn_closed", "\"error\":\"%s\"", mpt_err_name(err));
    uint64_t now = mpt_io_now();
    for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++) {
        struct mpt_sfio *sf = s->sf[i];
        if (sf == NULL)
            continue;
        if (s->c != NULL)
            sf_flush(s, sf, now); /* last frames (CLOSE, FASTCLOSE), best effort */
        if (err == 0 && sf->fd >= 0 && !sf->connecting) {
            linger_close(s->ctx, sf->fd);
            sf->fd = -1;
        }
        sf_close(s, sf);
    }
    for (int i = 0; i < s->nslots; i++)
        mpt_tmr_stop(&s->slots[i]->retry);
    mpt_tmr_stop(&s->timer);
    if (s->server && !s->accepted) {
        /* Never handed to the application: nobody else will release it. */
        if (s->listener)
            mpt_listener_unqueue(s->listener, s);
        s->released = 1;
    }
}

/* A socket without callbacks queues the event instead (events.c). */
#define PULL_connected MPT_EVENT_CONNECTED
#define PULL_readable MPT_EVENT_READABLE
#define PULL_writable MPT_EVENT_WRITABLE
#define PULL_subflow_up MPT_EVENT_SUBFLOWS
#define PULL_subflow_down MPT_EVENT_SUBFLOWS
#define PULL_addr_learned MPT_EVENT_SUBFLOWS
#define PULL_closed MPT_EVENT_CLOSED
#define PULL_STATUS_connected(status, ...) (status)
#define PULL_STATUS_closed(status, ...) (status)
#define PULL_STATUS_readable(...) 0
#define PULL_STATUS_writable(...) 0
#define PULL_STATUS_subflow_up(...) 0
#define PULL_STATUS_subflow_down(...) 0
#define PULL_STATUS_addr_learned(...) 0
#define CALL(s, fn, ...)                                                                   \
    do {                                                                                   \
        if ((s)->released)                                                                 \
            break;                                                                         \
        if ((s)->cb.fn != NULL) {                                                          \
            (s)->ctx->in_cb++;                                                             \
            (s)->cb.fn((s), __VA_ARGS__);                                                  \
            (s)->ctx->in_cb--;                                                             \
        } else if ((s)->pull) {                                                            \
            mpt_evq_post((s)->ctx, &(s)->evsrc, PULL_##fn, PULL_STATUS_##fn(__VA_ARGS__)); \
        }                                                                                  \
    } while (0)

static void drain_released(struct mpt_socket *s, uint64_t now)
{
    /* The application let go: swallow incoming data so the peer can finish. */
    while (mpt_conn_recv(s->c, s->ctx->rbuf, MPT_IO_RBUF, now) > 0)
        ;
}

/* The slot's next attempt, after reconnect_min_ms doubling per consecutive
 * failure up to reconnect_max_ms. Traced with the cause: retries are never
 * silent. */
static void slot_schedule_retry(struct mpt_socket *s, struct mpt_slot *sl, int si, int err,
                                int sys_errno)
{
    unsigned shift = sl->fails < 16 ? sl->fails : 16;
    uint64_t ms = (uint64_t)s->ctx->cfg.reconnect_min_ms << shift;

    if (ms > s->ctx->cfg.reconnect_max_ms)
        ms = s->ctx->cfg.reconnect_max_ms;
    sl->fails++;
    MPT_TRACE(s->ctx, s->id, "sf_retry_scheduled",
              "\"slot\":%d,\"path\":%d,\"fails\":%u,\"error\":\"%s\",\"errno\":%d,\"ms\":%llu", si,
              sl->path, sl->fails, mpt_err_name(err), sys_errno, (unsigned long long)ms);
    mpt_tmr_start(&sl->retry, (double)ms / 1000.);
}

/* Subflow idx of a client slot went down (si: as reported): keep it as the
 * slot's record of its last failure and schedule the retry. */
static void slot_down(struct mpt_socket *s, int idx, const struct mpt_subflow_info *si)
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
static void down_info(struct mpt_socket *s, int idx, int error, uint32_t reason,
                      struct mpt_subflow_info *si)
{
    fill_sf_info(s, idx, si);
    if (si->fail_error == 0)
        si->fail_error = error;
    if (si->fail_reason == 0)
        si->fail_reason = reason;
}

static void handle_event(struct mpt_socket *s, const struct mpt_event *ev, uint64_t now)
{
    struct mpt_subflow_info si;

    switch (ev->type) {
    case MPT_EV_ESTABLISHED:
        s->established = 1;
        MPT_TRACE(s->ctx, s->id, "conn_established", "\"server\":%d", s->server);
        if (s->server) {
            if (s->listener && !s->accepted)
                mpt_listener_ready(s->listener, s);
        } else {
            start_all_slots(s);
            CALL(s, connected, 0, s->user);
        }
        break;
    case MPT_EV_READABLE:
        if (s->released)
            drain_released(s, now);
        else
            CALL(s, readable, s->user);
        break;
    case MPT_EV_WRITABLE:
        CALL(s, writable, s->user);
        break;
    case MPT_EV_SF_UP:
        if (ev->sf >= 0 && ev->sf < MPT_MAX_SUBFLOWS_LIMIT) {
            struct mpt_sfio *sf = s->sf[ev->sf];
            if (sf && sf->slot >= 0 && sf->slot < s->nslots)
                s->slots[sf->slot]->fails = 0;
            fill_sf_info(s, ev->sf, &si);
            MPT_TRACE(s->ctx, s->id, "sf_up", "\"sf\":%d,\"id\":%d,\"path\":%d", ev->sf, si.id,
                      si.path_id);
            CALL(s, subflow_up, &si, s->user);
        }
        break;
    case MPT_EV_SF_DOWN: {
        struct mpt_sfio *sf;
        if (ev->sf < 0 || ev->sf >= MPT_MAX_SUBFLOWS_LIMIT)
            break;
        sf = s->sf[ev->sf];
        /* The engine reuses a failed subflow's index at once: an event for
         * a subflow already reported, or for a slot index that now holds a
         * live subflow, is not news. */
        if ((sf != NULL && sf->down_reported) ||
            (s->c != NULL && mpt_conn_sf_state(s->c, ev->sf) < MPT_SF_FAILED))
            break;
        down_info(s, ev->sf, ev->error, ev->reason, &si);
        MPT_TRACE(s->ctx, s->id, "sf_down",
                  "\"sf\":%d,\"id\":%d,\"path\":%d,\"error\":\"%s\",\"errno\":%d,\"reason\":%u",
                  ev->sf, si.id, si.path_id, mpt_err_name(si.fail_error), si.sys_errno,
                  (unsigned)si.fail_reason);
        if (sf != NULL) {
            sf->down_reported = 1;
            slot_down(s, ev->sf, &si);
        }
        CALL(s, subflow_down, &si, s->user);
        break;
    }
    case MPT_EV_ADDR_LEARNED: {
        struct sockaddr_storage ss;
        socklen_t len;
        memset(&ss, 0, sizeof ss);
        if (ev->addr.family == 4) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            a->sin_family = AF_INET;
            a->sin_port = htons(ev->addr.port);
            memcpy(&a->sin_addr, ev->addr.addr, 4);
            len = sizeof *a;
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(ev->addr.port);
            memcpy(&a->sin6_addr, ev->addr.addr, 16);
            len = sizeof *a;
        }
        MPT_TRACE(s->ctx, s->id, "addr_learned", "\"addr_id\":%u", ev->addr.addr_id);
        if (!s->server) {
            sock_add_raddr(s, &ss, len, ev->addr.addr_id);
        }
        CALL(s, addr_learned, (const struct sockaddr *)&ss, len, ev->addr.addr_id, s->user);
        break;
    }
    case MPT_EV_ADDR_REMOVED:
        MPT_TRACE(s->ctx, s->id, "addr_removed", "\"addr_id\":%u", ev->addr.addr_id);
        for (int i = 0; !s->server && i < s->nraddrs; i++)
            if (s->raddrs[i].addr_id == ev->addr.addr_id)
                s->raddrs[i].removed = 1;
        break;
    case MPT_EV_CLOSED:
        sock_finish(s, 0);
        CALL(s, closed, 0, s->user);
        break;
    case MPT_EV_ERROR: {
        int err = ev->error ? ev->error : MPT_ECLOSED;
        int was_est = s->established;
        if (err == s->last_fail_error)
            s->sys_errno = s->last_sys_errno; /* e.g. the handshake path's refusal */
        sock_finish(s, err);
        if (!was_est && !s->server)
            CALL(s, connected, err, s->user);
        CALL(s, closed, err, s->user);
        break;
    }
    }
}

/* Re-arm the connection timer from the engine's deadline. */
static void rearm(struct mpt_socket *s, uint64_t now)
{
    if (s->done || s->c == NULL) {
        mpt_tmr_stop(&s->timer);
        return;
    }
    uint64_t t = mpt_conn_next_timeout(s->c);
    if (t == MPT_TIME_NEVER) {
        mpt_tmr_stop(&s->timer);
        return;
    }
    double after = t > now ? (double)(t - now) / 1e9 : 0.;
    mpt_tmr_start(&s->timer, after);
}

void mpt_sock_kick(struct mpt_socket *s)
{
    if (!s->done)
        mpt_tmr_start(&s->timer, 0.);
}

/*
 * After any input: write what the engine has on every subflow, close the
 * sockets of dead subflows, deliver events (only from the loop: dispatch),
 * re-arm the timer. API calls pump without dispatch and kick the timer so
 * that events are delivered on the next loop iteration.
 */
void mpt_sock_pump(struct mpt_socket *s, int dispatch)
{
    struct mpt_event ev;
    uint64_t now = mpt_io_now();

    if (s->c == NULL || s->done) {
        if (dispatch)
            mpt_sock_maybe_free(s);
        return;
    }
    s->busy++;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++) {
            struct mpt_sfio *sf = s->sf[i];
            if (sf == NULL)
                continue;
            sf_flush(s, sf, now); /* in any state: final CLOSE / ERROR frames */
        }
        if (!dispatch)
            break;
        while (!s->done && mpt_conn_next_event(s->c, &ev))
            handle_event(s, &ev, now);
        if (s->done)
            break;
    }
    if (!s->done) {
        /* Close sockets of subflows the engine gave up on (after their last
         * frames were flushed above). */
        for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++) {
            struct mpt_sfio *sf = s->sf[i];
            if (sf == NULL || mpt_conn_sf_state(s->c, i) < MPT_SF_FAILED)
                continue;
            if (!sf->down_reported && !dispatch)
                continue; /* report first */
            if (!sf->down_reported) {
                struct mpt_subflow_info si;
                down_info(s, i, sf->fail_error, 0, &si);
                slot_down(s, i, &si);
            }
            MPT_TRACE(s->ctx, s->id, "sf_closed", "\"sf\":%d", i);
            sf_close(s, sf);
        }
        if (MPT_TRACING(s->ctx)) {
            struct mpt_conn_stats st;
            mpt_conn_get_stats(s->c, &st);
            if (st.bytes_reinjected > s->trace_reinj)
                MPT_TRACE(s->ctx, s->id, "reinject", "\"bytes\":%llu,\"events\":%llu",
                          (unsigned long long)(st.bytes_reinjected - s->trace_reinj),
                          (unsigned long long)st.reinjections);
            s->trace_reinj = st.bytes_reinjected;
            MPT_TRACE(s->ctx, s->id, "stats",
                      "\"sent\":%llu,\"acked\":%llu,\"received\":%llu,\"reinjected\":%llu",
                      (unsigned long long)st.bytes_sent, (unsigned long long)st.bytes_acked,
                      (unsigned long long)st.bytes_received,
                      (unsigned long long)st.bytes_reinjected);
        }
        if (dispatch)
            rearm(s, now);
        else
            mpt_sock_kick(s);
    }
    s->busy--;
    if (dispatch || s->done)
        mpt_sock_maybe_free(s);
}

static void sock_timer_cb(EV_P_ ev_timer *w, int revents)
{
    struct mpt_socket *s = w->data;
    uint64_t now = mpt_io_now();

    if (s->c == NULL) {
        mpt_sock_maybe_free(s);
        return;
    }
    if (!s->done && mpt_conn_next_timeout(s->c) <= now) {
        for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++)
            if (s->sf[i] && now - s->sf[i]->last_info > 10 * MPT_NS_PER_MS)
                sample_info(s, s->sf[i], now);
        mpt_conn_handle_timeout(s->c, now);
    }
    mpt_sock_pump(s, 1);
}

/* ---- Client path manager ------------------------------------------------------- */

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
    if (mpt_tmr_init(s->ctx, &sl->retry, slot_retry_cb) < 0) {
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

static void start_all_slots(struct mpt_socket *s)
{
    for (int i = 0; i < s->nslots; i++) {
        struct mpt_slot *sl = s->slots[i];
        if (sl->sf < 0 && !sl->dead && !ev_is_active(&sl->retry.w))
            slot_connect(sl);
    }
}

static int sock_add_raddr(struct mpt_socket *s, const struct sockaddr_storage *ss, socklen_t len,
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
        start_all_slots(s);
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
        slot_down(s, sf->idx, &si);
    }
    MPT_TRACE(s->ctx, s->id, "sf_closed", "\"sf\":%d", sf->idx);
    sf_close(s, sf);
}

/*
 * The socket of one (path, server address) subflow: created, configured,
 * bound to the path and connecting. Returns 0 (*fd set, *in_progress when
 * connect() has not finished yet) or the errno of the step that failed,
 * which *what names for the trace.
 */
static int subflow_socket(struct mpt_ctx *ctx, const struct mpt_path *p,
                          const struct mpt_raddr *r, int *fd, int *in_progress,
                          const char **what)
{
    int e;

    *in_progress = 0;
    *what = "socket";
    if ((*fd = socket(r->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return errno;
    *what = "setsockopt";
    if ((e = mpt_sock_setopts(ctx, *fd)) != 0)
        return e;
    if (p->ifname[0] != '\0') {
        *what = "bindtodevice";
#ifdef SO_BINDTODEVICE
        if (setsockopt(*fd, SOL_SOCKET, SO_BINDTODEVICE, p->ifname,
                       (socklen_t)strlen(p->ifname)) < 0)
            return errno;
#else
        return ENOTSUP;
#endif
    }
    *what = "bind";
    if (p->src.ss_family != AF_UNSPEC && bind(*fd, (const struct sockaddr *)&p->src, p->srclen) < 0)
        return errno;
    *what = "connect";
    if (connect(*fd, (const struct sockaddr *)&r->sa, r->len) < 0) {
        if (errno != EINPROGRESS)
            return errno;
        *in_progress = 1;
    }
    return 0;
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
    e = subflow_socket(s->ctx, p, r, &fd, &in_progress, &what);
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
        sf_fail_sys(s, sf, "sf_error", e, now);
    } else {
        MPT_TRACE(s->ctx, s->id, "sf_connect", "\"sf\":%d,\"path\":%d,\"raddr\":%d", idx,
                  sl->path, sl->raddr);
        if (!in_progress)
            sf_connected(s, sf, now);
        else
            mpt_tmr_start(&sf->ctimer, s->ctx->cfg.connect_timeout_ms / 1000.);
    }
    mpt_sock_kick(s);
}

/* A link, address or route changed (netlink.c): retry waiting subflows now. */
void mpt_sock_paths_changed(struct mpt_socket *s)
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
 * them retry at once (mpt_sock_paths_changed). Pumps without dispatch (the
 * caller walks ctx->socks): events are delivered from the kicked timer.
 * err is the cause the subflows report: MPT_ENODEV (interface deleted),
 * MPT_ENETUNREACH (link down), MPT_EADDRNOTAVAIL (address removed).
 */
void mpt_sock_link_down(struct mpt_socket *s, const char *ifname,
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

/* ---- Public API: client ---------------------------------------------------------- */

/* Called once the host is resolved: create the engine connection and open
 * the first path's first subflow. */
void mpt_sock_resolved(struct mpt_socket *s, int err, const struct sockaddr *sa, socklen_t len)
{
    struct mpt_ctx *ctx = s->ctx;
    struct mpt_core_settings set = ctx->core;
    struct sockaddr_storage ss;
    uint64_t now = mpt_io_now();
    int rc;

    s->rreq = NULL;
    if (err == 0) {
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, sa, len);
        rc = sock_add_raddr(s, &ss, len, -1);
        if (rc < 0)
            err = rc;
        else if (s->nslots == 0)
            err = MPT_ENOPATH; /* no local path of the right family */
    }
    if (err == 0) {
        if (s->sched)
            set.sched = s->sched;
        if (s->cc)
            set.cc = s->cc;
        err = mpt_conn_client_new(&set, now, &s->c);
    }
    if (err < 0) {
        MPT_TRACE(ctx, s->id, "connect_failed", "\"error\":\"%s\"", mpt_err_name(err));
        s->done = 1;
        s->error = err;
        s->busy++;
        CALL(s, connected, err, s->user);
        CALL(s, closed, err, s->user);
        s->busy--;
        mpt_sock_maybe_free(s);
        return;
    }
    MPT_TRACE(ctx, s->id, "conn_start", "\"slots\":%d", s->nslots);
    slot_connect(s->slots[0]);
    mpt_sock_pump(s, 1);
}

int mpt_connect_sized(struct mpt_ctx *ctx, const char *host, uint16_t port,
                      const char *const *paths, size_t npaths, const struct mpt_callbacks *cb,
                      size_t cb_size, void *user, struct mpt_socket **out)
{
    struct mpt_socket *s;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (ctx == NULL || host == NULL || host[0] == '\0' || out == NULL || port == 0 ||
        (npaths > 0 && paths == NULL) || npaths > MPT_IO_MAX_PATHS ||
        !mpt_callbacks_size_ok(cb, cb_size))
        return MPT_EINVAL;
    if ((s = mpt_sock_alloc(ctx, 0)) == NULL)
        return ctx->nconns >= ctx->cfg.max_connections ? MPT_ENOBUFS : MPT_ENOMEM;
    rc = MPT_ENOMEM;
    s->paths = calloc(MPT_IO_MAX_PATHS, sizeof *s->paths);
    s->raddrs = calloc(MPT_IO_MAX_RADDRS, sizeof *s->raddrs);
    s->host = strdup(host);
    if (s->paths == NULL || s->raddrs == NULL || s->host == NULL)
        goto fail;
    for (size_t i = 0; i < npaths; i++) {
        if ((rc = parse_path(paths[i], &s->paths[i])) < 0 ||
            (rc = check_path(&s->paths[i])) < 0) {
            MPT_TRACE(ctx, s->id, "path_refused", "\"path\":%zu,\"error\":\"%s\"", i,
                      mpt_err_name(rc));
            goto fail;
        }
    }
    s->npaths = (int)npaths;
    if (npaths == 0 && ctx->cfg.fullmesh) {
        if ((rc = fullmesh_paths(s)) < 0)
            goto fail;
    }
    if (s->npaths == 0) {
        s->paths[0].used = 1;
        s->paths[0].src.ss_family = AF_UNSPEC;
        s->npaths = 1;
    }
    s->port = port;
    mpt_callbacks_take(s, cb, cb_size);
    s->user = user;
    s->released = 0;
    if ((rc = mpt_resolve_start(s, host, port)) < 0)
        goto fail;
    mpt_netlink_start(ctx);
    MPT_TRACE(ctx, s->id, "connect", "\"port\":%u,\"paths\":%d", port, s->npaths);
    *out = s;
    return 0;
fail:
    s->released = 1;
    s->done = 1;
    mpt_sock_destroy(s);
    return rc;
}

/* The 0.1.0 entry point, for binaries built before mpt_connect became a
 * macro: their struct mpt_callbacks is the 0.1.0 one. */
int(mpt_connect)(struct mpt_ctx *ctx, const char *host, uint16_t port, const char *const *paths,
                 size_t npaths, const struct mpt_callbacks *cb, void *user,
                 struct mpt_socket **out)
{
    return mpt_connect_sized(ctx, host, port, paths, npaths, cb, MPT_CALLBACKS_SIZE_0_1, user,
                             out);
}

int mpt_set_callbacks_sized(struct mpt_socket *s, const struct mpt_callbacks *cb,
                            size_t cb_size, void *user)
{
    if (s == NULL || s->released || !mpt_callbacks_size_ok(cb, cb_size))
        return MPT_EINVAL;
    mpt_callbacks_take(s, cb, cb_size);
    s->user = user;
    return 0;
}

int(mpt_set_callbacks)(struct mpt_socket *s, const struct mpt_callbacks *cb, void *user)
{
    return mpt_set_callbacks_sized(s, cb, MPT_CALLBACKS_SIZE_0_1, user);
}

void *mpt_get_user(const struct mpt_socket *s)
{
    return s ? s->user : NULL;
}

/* ---- Public API: data ---------------------------------------------------------- */

static int sock_usable(const struct mpt_socket *s)
{
    if (s == NULL || s->released)
        return MPT_EINVAL;
    return 0;
}

ssize_t mpt_send(struct mpt_socket *s, const void *buf, size_t len)
{
    int rc;

    if ((rc = sock_usable(s)) < 0 || (buf == NULL && len > 0))
        return MPT_EINVAL;
    if (s->done)
        return s->error ? s->error : MPT_ECLOSED;
    if (s->shut)
        return MPT_EPIPE;
    if (s->c == NULL || !s->established)
        return MPT_ESTATE;
    if (len == 0)
        return 0;
    ssize_t n = mpt_conn_send(s->c, buf, len, mpt_io_now());
    if (n > 0)
        mpt_sock_pump(s, 0);
    return n;
}

ssize_t mpt_recv(struct mpt_socket *s, void *buf, size_t len)
{
    int rc;

    if ((rc = sock_usable(s)) < 0 || buf == NULL || len == 0)
        return MPT_EINVAL;
    if (s->c == NULL || (!s->established && !s->done))
        return MPT_ESTATE;
    ssize_t n = mpt_conn_recv(s->c, buf, len, mpt_io_now());
    if (n > 0 && !s->done)
        mpt_sock_pump(s, 0); /* window updates */
    if (n == MPT_EAGAIN && s->done)
        return s->error ? s->error : 0;
    return n;
}

int mpt_shutdown(struct mpt_socket *s)
{
    int rc;

    if ((rc = sock_usable(s)) < 0)
        return rc;
    if (s->shut)
        return MPT_EPIPE;
    if (s->c == NULL || !s->established || s->done)
        return MPT_ESTATE;
    if ((rc = mpt_conn_shutdown(s->c, mpt_io_now())) < 0)
        return rc;
    s->shut = 1;
    MPT_TRACE(s->ctx, s->id, "shutdown", NULL);
    mpt_sock_pump(s, 0);
    return 0;
}

int mpt_close(struct mpt_socket *s)
{
    if (s == NULL || s->released)
        return MPT_EINVAL;
    s->released = 1;
    MPT_TRACE(s->ctx, s->id, "close", NULL);
    if (!s->done) {
        if (s->c == NULL || !s->established) {
            if (s->c)
                mpt_conn_abort(s->c, MPT_REASON_APP_ABORT, mpt_io_now());
            mpt_sock_pump(s, 0);
            sock_finish(s, MPT_ECLOSED);
        } else {
            if (!s->shut)
                (void)mpt_conn_shutdown(s->c, mpt_io_now());
            s->shut = 1;
            drain_released(s, mpt_io_now());
            mpt_sock_pump(s, 0);
        }
    }
    if (s->server && s->listener && !s->accepted)
        mpt_listener_unqueue(s->listener, s);
    mpt_sock_maybe_free(s);
    return 0;
}

int mpt_abort(struct mpt_socket *s)
{
    if (s == NULL || s->released)
        return MPT_EINVAL;
    s->released = 1;
    MPT_TRACE(s->ctx, s->id, "abort", NULL);
    if (!s->done && s->c != NULL) {
        mpt_conn_abort(s->c, MPT_REASON_APP_ABORT, mpt_io_now());
        /* Flush the FASTCLOSE frames once, then drop everything. */
        uint64_t now = mpt_io_now();
        for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++)
            if (s->sf[i])
                sf_flush(s, s->sf[i], now);
    }
    sock_finish(s, MPT_ECLOSED);
    mpt_sock_maybe_free(s);
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
        start_all_slots(s);
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
int mpt_set_scheduler(struct mpt_socket *s, const char *name)
{
    const struct mpt_sched_ops *ops;

    if (s == NULL || s->released || name == NULL)
        return MPT_EINVAL;
    if ((ops = mpt_sched_find(name)) == NULL)
        return MPT_ENOTFOUND;
    if (s->done)
        return MPT_ESTATE;
    if (s->c == NULL) {
        s->sched = ops;
        return 0;
    }
    MPT_TRACE(s->ctx, s->id, "set_scheduler", "\"name\":\"%s\"", ops->name);
    return mpt_conn_set_sched(s->c, ops, mpt_io_now());
}

int mpt_set_cc(struct mpt_socket *s, const char *name)
{
    const struct mpt_cc_ops *ops;

    if (s == NULL || s->released || name == NULL)
        return MPT_EINVAL;
    if ((ops = mpt_cc_find(name)) == NULL)
        return MPT_ENOTFOUND;
    if (s->done)
        return MPT_ESTATE;
    if (s->c == NULL) {
        s->cc = ops;
        return 0;
    }
    MPT_TRACE(s->ctx, s->id, "set_cc", "\"name\":\"%s\"", ops->name);
    return mpt_conn_set_cc(s->c, ops, mpt_io_now());
}

/* ---- Introspection -------------------------------------------------------------------- */

const char *mpt_state_name(enum mpt_state state)
{
    switch (state) {
    case MPT_STATE_CONNECTING: return "connecting";
    case MPT_STATE_ESTABLISHED: return "established";
    case MPT_STATE_CLOSING: return "closing";
    case MPT_STATE_CLOSED: return "closed";
    case MPT_STATE_ABORTED: return "aborted";
    }
    return "unknown";
}

const char *mpt_subflow_state_name(enum mpt_subflow_state state)
{
    switch (state) {
    case MPT_SUBFLOW_CONNECTING: return "connecting";
    case MPT_SUBFLOW_HANDSHAKE: return "handshake";
    case MPT_SUBFLOW_ESTABLISHED: return "established";
    case MPT_SUBFLOW_CLOSING: return "closing";
    case MPT_SUBFLOW_FAILED: return "failed";
    case MPT_SUBFLOW_CLOSED: return "closed";
    }
    return "unknown";
}

int mpt_get_info(struct mpt_socket *s, struct mpt_info *info)
{
    struct mpt_info o;
    struct mpt_conn_stats st;

    if (s == NULL || info == NULL || info->size < sizeof(size_t))
        return MPT_EINVAL;
    memset(&o, 0, sizeof o);
    o.size = info->size < sizeof o ? info->size : sizeof o;
    if (s->c != NULL) {
        mpt_conn_get_stats(s->c, &st);
        o.bytes_sent = st.bytes_sent;
        o.bytes_acked = st.bytes_acked;
        o.bytes_received = st.bytes_received;
        o.bytes_reinjected = st.bytes_reinjected;
        o.reinjections = st.reinjections;
        o.snd_buffered = st.snd_mem;
        o.rcv_buffered = st.rcv_mem;
        o.unacked_bytes = st.snd_unacked;
        o.subflows_opened = st.sf_opened;
        o.subflows_failed = st.sf_failed;
        o.state = (enum mpt_state)mpt_conn_state(s->c);
        o.scheduler = mpt_conn_sched(s->c)->name;
        o.reorder_frames = st.reorder_samples;
        o.reorder_p50_us = st.reorder_p50 / 1000;
        o.reorder_p99_us = st.reorder_p99 / 1000;
        o.reorder_max_us = st.reorder_max / 1000;
        o.congestion = mpt_conn_cc(s->c)->name;
        for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++) {
            if (s->sf[i] == NULL)
                continue;
            enum mpt_sf_state ss = mpt_conn_sf_state(s->c, i);
            if (ss != MPT_SF_CLOSED)
                o.subflows++;
            if (ss == MPT_SF_ESTABLISHED)
                o.subflows_established++;
        }
    } else {
        o.state = s->done ? MPT_STATE_ABORTED : MPT_STATE_CONNECTING;
        o.scheduler = s->sched != NULL ? s->sched->name
                      : s->ctx->core.sched != NULL ? s->ctx->core.sched->name : "minrtt";
        o.congestion = s->cc != NULL ? s->cc->name
                       : s->ctx->core.cc != NULL ? s->ctx->core.cc->name : "uncoupled";
    }
    if (s->done)
        o.state = s->error ? MPT_STATE_ABORTED : MPT_STATE_CLOSED;
    o.error = s->error;
    o.sys_errno = s->error ? s->sys_errno : 0;
    if (info->size > sizeof o) /* a newer program: its fields are unknown here */
        memset((uint8_t *)info + sizeof o, 0, info->size - sizeof o);
    memcpy(info, &o, o.size);
    return 0;
}

/* Entry i of a caller's array whose elements are elem_size bytes apart:
 * the fields both sides know, zeros for fields only the caller knows. */
static void put_sf_info(void *base, size_t i, size_t elem_size, const struct mpt_subflow_info *o)
{
    uint8_t *dst = (uint8_t *)base + i * elem_size;

    if (elem_size <= sizeof *o) {
        memcpy(dst, o, elem_size);
    } else {
        memcpy(dst, o, sizeof *o);
        memset(dst + sizeof *o, 0, elem_size - sizeof *o);
    }
}

/* A client slot with no subflow now, whose last one went down: its record
 * (the subflow as it failed, with when the slot retries). 0 if none. */
static int slot_record(const struct mpt_socket *s, const struct mpt_slot *sl,
                       struct mpt_subflow_info *o)
{
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

int mpt_get_subflows_sized(struct mpt_socket *s, struct mpt_subflow_info *out, size_t n,
                           size_t elem_size)
{
    struct mpt_subflow_info o;
    int count = 0;

    if (s == NULL || (out == NULL && n > 0) || elem_size < MPT_SUBFLOW_INFO_SIZE_0_1)
        return MPT_EINVAL;
    for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++) {
        if (s->sf[i] == NULL)
            continue;
        if ((size_t)count < n) {
            fill_sf_info(s, i, &o);
            put_sf_info(out, (size_t)count, elem_size, &o);
        }
        count++;
    }
    for (int k = 0; k < s->nslots; k++) {
        if (!slot_record(s, s->slots[k], &o))
            continue;
        if ((size_t)count < n)
            put_sf_info(out, (size_t)count, elem_size, &o);
        count++;
    }
    return count;
}

/* The 0.1.0 entry point, for binaries built before mpt_get_subflows became
 * a macro: their array elements have the 0.1.0 layout. */
int(mpt_get_subflows)(struct mpt_socket *s, struct mpt_subflow_info *out, size_t n)
{
    return mpt_get_subflows_sized(s, out, n, MPT_SUBFLOW_INFO_SIZE_0_1);
}
