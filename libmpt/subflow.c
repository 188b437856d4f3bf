/*
 * The kernel socket of one subflow: its options, TCP_INFO sampling, reads
 * into the engine and writes of what the engine has for it, connect
 * completion and timeout, and the lingering close that lets the peer read
 * the last frames.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#ifdef __linux__
#include <linux/tcp.h> /* the full struct tcp_info */
#else
#include <netinet/tcp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/alloc.h"
#include "paths.h"
#include "subflow.h"
#include "tls.h"

#define IOV_MAX_BATCH 64
#define MPT_IO_ROOM_REFILL (64u * 1024u)

static void sf_io_cb(EV_P_ ev_io *w, int revents);
static void sf_ctimer_cb(EV_P_ ev_timer *w, int revents);
static void sf_read(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now);

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

/*
 * TCP_NOTSENT_LOWAT per path from its delivery rate: what waits unsent in
 * the socket is what a reinjection (or any newly scheduled byte) queues
 * behind, so it should drain in about MPT_LOWAT_DRAIN_MS whatever the
 * rate: 128 KiB is 105 ms at 10 Mbit/s but nothing at 10 Gbit/s. Between
 * MPT_LOWAT_MIN and the configured value; reset only when it moves by a
 * quarter, so the setsockopt is rare.
 */
#define MPT_LOWAT_DRAIN_MS 20u
#define MPT_LOWAT_MIN (32u * 1024u)
static void adapt_lowat(struct mpt_ctx *ctx, struct mpt_sfio *sf, uint64_t rate)
{
#ifdef TCP_NOTSENT_LOWAT
    uint64_t want = rate * MPT_LOWAT_DRAIN_MS / 1000u;
    unsigned cap = ctx->cfg.notsent_lowat, cur = sf->lowat ? sf->lowat : cap, v;

    if (rate == 0 || cap <= MPT_LOWAT_MIN)
        return;
    v = want < MPT_LOWAT_MIN ? MPT_LOWAT_MIN : want > cap ? cap : (unsigned)want;
    if (v * 4u < cur * 3u || v * 4u > cur * 5u) {
        if (setsockopt(sf->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof v) == 0)
            sf->lowat = v;
    }
#else
    (void)ctx;
    (void)sf;
    (void)rate;
#endif
}

/* Control frames of an idle subflow: a PING with its DATA_ACK, a PONG. */
#define INFO_IDLE_BYTES 64

int mpt_sfio_info_due(const struct mpt_sfio *sf, uint64_t now, uint64_t min_age)
{
    uint64_t age = now - sf->last_info;

    if (age <= min_age)
        return 0;
    return sf->info.unacked_bytes > 0 || sf->info.notsent_bytes > 0 ||
           sf->sent_since_info > INFO_IDLE_BYTES || sf->info.srtt == 0 ||
           age >= 1000 * MPT_NS_PER_MS;
}

void mpt_sfio_sample_info(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
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
    sf->info.retransmits = ti.tcpi_retransmits;
    sf->info.backoff = ti.tcpi_backoff;
    {
        uint64_t age = (uint64_t)ti.tcpi_last_ack_recv * MPT_NS_PER_MS;
        sf->info.last_ack_at = now > age ? now - age : 1;
    }
    sf->last_info = now;
    sf->sent_since_info = 0;
    adapt_lowat(s->ctx, sf, ti.tcpi_delivery_rate);
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
 * below TCP_NOTSENT_LOWAT, and at least a floor: the configured budget, or
 * on a path whose delivery rate is known, about MPT_LOWAT_DRAIN_MS of it
 * (at least MPT_LOWAT_MIN) if that is less. Minus what the engine already
 * queued for the subflow and the socket did not take yet
 * (mpt_conn_sf_set_room counts beyond that): without it every writable
 * wake-up of a socket whose send buffer is full would add a whole budget to
 * the engine's queue, and on a 10 Mbit/s path that queue grew to 1 MB
 * (0.8 s) in front of reinjected bytes and SUBFLOW_FAILED. On a fast path
 * (loopback) the window is large and few wake-ups move a lot; on a slow one
 * little waits in the socket or in the engine.
 */
#define MPT_IO_MAX_ROOM (4u << 20)
static size_t writable_room(const struct mpt_socket *s, const struct mpt_sfio *sf)
{
    const struct mpt_ctx *ctx = s->ctx;
    const struct mpt_sf_info *in = &sf->info;
    size_t lowat = sf->lowat ? sf->lowat : ctx->cfg.notsent_lowat;
    size_t room = 0, floor = ctx->cfg.write_budget;
    struct mpt_sf_stats st;

    if (in->cwnd_bytes > in->unacked_bytes)
        room += in->cwnd_bytes - in->unacked_bytes;
    if (lowat > in->notsent_bytes)
        room += lowat - in->notsent_bytes;
    if (in->delivery_rate > 0) {
        uint64_t f = in->delivery_rate * MPT_LOWAT_DRAIN_MS / 1000u;
        if (f < MPT_LOWAT_MIN)
            f = MPT_LOWAT_MIN;
        if (f < floor)
            floor = (size_t)f;
    }
    if (room < floor)
        room = floor;
    if (room > MPT_IO_MAX_ROOM)
        room = MPT_IO_MAX_ROOM;
    if (mpt_conn_sf_get_stats(s->c, sf->idx, &st) == 0)
        room = room > st.queued ? room - st.queued : 0;
    return room;
}

/* ---- Subflows ----------------------------------------------------------------- */

static struct mpt_sfio *sock_attach(struct mpt_socket *s, int idx, int fd, int connecting,
                                    struct mpt_tp *tp, const struct sockaddr_storage *local,
                                    const struct sockaddr_storage *peer)
{
    struct mpt_sfio *sf;

    if (idx < 0 || idx >= MPT_MAX_SUBFLOWS_LIMIT || s->sf[idx] != NULL ||
        (sf = mpt_calloc(1, sizeof *sf)) == NULL) {
        mpt_tp_free(tp);
        return NULL;
    }
    if (fd >= 0 && tp == NULL && (tp = mpt_tp_plain_new(fd)) == NULL) {
        mpt_free(sf);
        return NULL;
    }
    if (mpt_tmr_init(&s->ctx->ws, &sf->ctimer, sf_ctimer_cb) < 0) {
        mpt_tp_free(tp);
        mpt_free(sf);
        return NULL;
    }
    sf->s = s;
    sf->idx = idx;
    sf->fd = fd;
    sf->tp = tp;
    sf->tp_ready = 1;
    sf->slot = -1;
    sf->connecting = connecting;
    mpt_io_init(&s->ctx->ws, &sf->io, sf_io_cb, fd);
    sf->io.w.data = sf;
    sf->ctimer.w.data = sf;
    s->sf[idx] = sf;
    if (fd < 0) {
        /* A subflow whose socket could not be made: it only exists to be
         * reported down like any other (slot_connect). */
    } else if (!connecting) {
        socklen_t l = sizeof sf->local;
        if (local != NULL && local->ss_family != AF_UNSPEC)
            sf->local = *local;
        else
            getsockname(fd, (struct sockaddr *)&sf->local, &l);
        if (peer != NULL && peer->ss_family != AF_UNSPEC) {
            sf->remote = *peer;
        } else {
            l = sizeof sf->remote;
            getpeername(fd, (struct sockaddr *)&sf->remote, &l);
        }
        sf->room_left = s->ctx->cfg.write_budget;
        mpt_conn_sf_set_room(s->c, idx, sf->room_left, mpt_io_now());
        mpt_io_set(&sf->io, EV_READ | EV_WRITE);
    } else {
        mpt_io_set(&sf->io, EV_WRITE);
    }
    return sf;
}

struct mpt_sfio *mpt_sock_attach(struct mpt_socket *s, int idx, int fd, int connecting)
{
    return sock_attach(s, idx, fd, connecting, NULL, NULL, NULL);
}

struct mpt_sfio *mpt_sock_attach_tp(struct mpt_socket *s, int idx, int fd, struct mpt_tp *tp,
                                    const struct sockaddr_storage *local,
                                    const struct sockaddr_storage *peer)
{
    return sock_attach(s, idx, fd, 0, tp, local, peer);
}

void mpt_sfio_close(struct mpt_socket *s, struct mpt_sfio *sf)
{
    /* the engine may reuse the slot once its socket is gone */
    if (s->c != NULL && mpt_conn_sf_state(s->c, sf->idx) >= MPT_SF_FAILED)
        (void)mpt_conn_sf_release(s->c, sf->idx);
    mpt_io_set(&sf->io, 0);
    mpt_tmr_fini(&sf->ctimer);
    mpt_tp_free(sf->tp);
    if (sf->fd >= 0)
        close(sf->fd);
    mpt_paths_sf_gone(s, sf->slot, sf->idx);
    s->sf[sf->idx] = NULL;
    mpt_free(sf);
}

int mpt_io_test_subflow_fd(struct mpt_socket *s, int idx)
{
    if (s == NULL || idx < 0 || idx >= MPT_MAX_SUBFLOWS_LIMIT || s->sf[idx] == NULL)
        return -1;
    return s->sf[idx]->fd;
}

/* A system call on subflow sf failed with errno e: record the cause (its
 * MPT_E* code and the errno), trace it, and fail the subflow. */
void mpt_sfio_fail_sys(struct mpt_socket *s, struct mpt_sfio *sf, const char *what, int e,
                       uint64_t now)
{
    if (sf->tp != NULL && sf->tp->error != 0) {
        /* the transport's own protocol failed (TLS): its code, not an errno */
        sf->sys_errno = s->last_sys_errno = 0;
        sf->fail_error = s->last_fail_error = sf->tp->error;
        MPT_TRACE(s->ctx, s->id, what, "\"sf\":%d,\"error\":\"%s\",\"why\":\"%s\"", sf->idx,
                  mpt_err_name(sf->fail_error), sf->tp->why);
    } else {
        sf->sys_errno = s->last_sys_errno = e;
        sf->fail_error = s->last_fail_error = mpt_errno_to_mpt(e);
        MPT_TRACE(s->ctx, s->id, what, "\"sf\":%d,\"errno\":%d,\"error\":\"%s\"", sf->idx, e,
                  mpt_err_name(sf->fail_error));
    }
    mpt_conn_sf_failed(s->c, sf->idx, sf->fail_error, now);
}

/* Writes what the engine has for sf, within what the socket takes. */
void mpt_sfio_flush(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
{
    struct mpt_iovec miov[IOV_MAX_BATCH];
    struct iovec iov[IOV_MAX_BATCH];
    int want_write = 0;

    if (sf->fd < 0 || sf->connecting || !sf->tp_ready)
        return;
    if (sf->tp->out_pending && mpt_tp_writev(sf->tp, NULL, 0) < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            mpt_sfio_fail_sys(s, sf, "sf_write_error", errno, now);
            mpt_io_set(&sf->io, sf->eof_seen ? 0 : EV_READ);
            return;
        }
        mpt_conn_sf_set_room(s->c, sf->idx, 0, now);
        sf->room_left = 0;
        mpt_io_set(&sf->io, (sf->eof_seen ? 0 : EV_READ) | EV_WRITE);
        return;
    }
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
        ssize_t w = mpt_tp_writev(sf->tp, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                mpt_conn_sf_set_room(s->c, sf->idx, 0, now);
                sf->room_left = 0;
                want_write = 1;
                break;
            }
            /* The peer may have said why before it closed (a FASTCLOSE or
             * ERROR still unread in our receive queue, which outlives its
             * RST): read that first, or an abort would look like a path
             * failure and the connection would retry until no path remained. */
            int e = errno;
            if (!sf->eof_seen)
                sf_read(s, sf, now);
            if (s->c != NULL && mpt_conn_sf_state(s->c, sf->idx) < MPT_SF_FAILED)
                mpt_sfio_fail_sys(s, sf, "sf_write_error", e, now);
            mpt_io_set(&sf->io, sf->eof_seen ? 0 : EV_READ);
            return;
        }
        mpt_conn_sf_sent(s->c, sf->idx, (size_t)w, now);
        sf->sent_since_info += (size_t)w;
        if (MPT_TRACING(s->ctx)) {
            struct mpt_sf_stats st;
            (void)mpt_conn_sf_get_stats(s->c, sf->idx, &st);
            MPT_TRACE(s->ctx, s->id, "sf_write",
                      "\"sf\":%d,\"bytes\":%zd,\"queued\":%zu,\"inflight\":%llu,"
                      "\"notsent\":%u,\"unacked\":%u,\"room\":%zu",
                      sf->idx, w, st.queued, (unsigned long long)st.inflight,
                      sf->info.notsent_bytes, sf->info.unacked_bytes, sf->room_left);
        }
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
    /* The engine takes every byte, keeping an incomplete frame itself. */
    ssize_t used = mpt_conn_sf_input(s->c, sf->idx, data, len, now);

    if (used < 0)
        MPT_TRACE(s->ctx, s->id, "sf_protocol_error", "\"sf\":%d,\"error\":\"%s\"", sf->idx,
                  mpt_err_name((int)used));
}

static void sf_read(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
{
    uint8_t *buf = s->ctx->rbuf;

    /* mpt_blocking_recv's buffer is full: what we read now would only be
     * copied into the ring and out again (the readable socket brings us
     * back once the application asks again) */
    if (sf->tp->pending == 0 && mpt_conn_recv_lend_full(s->c))
        return;
    /* A few batches per wake-up, and whatever the transport still holds
     * (no readable socket would bring us back for it). */
    for (int round = 0; round < 4 || sf->tp->pending > 0; round++) {
        size_t want = mpt_conn_recv_read_hint(s->c, sf->idx);
        if (want == 0 || want > MPT_IO_RBUF)
            want = MPT_IO_RBUF;
        else if (want < MPT_IO_RBUF_MIN)
            want = MPT_IO_RBUF_MIN;
        ssize_t n = mpt_tp_read(sf->tp, buf, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            mpt_sfio_fail_sys(s, sf, "sf_read_error", errno, now);
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
        mpt_sock_sf_input(s, sf, buf, (size_t)n, now);
        if (mpt_conn_sf_state(s->c, sf->idx) >= MPT_SF_FAILED)
            return;
        if ((size_t)n < want && sf->tp->pending == 0)
            return;
        /* mpt_blocking_recv's buffer is full: more now would only be
         * copied into the ring and out again */
        if (mpt_conn_recv_lend_full(s->c))
            return;
    }
}

/* A TLS subflow's handshake, as far as the socket lets it go. Once over:
 * the first subflow's exporter keys the connection (and its session is kept
 * for the joins to resume), a join's own exporter binds its HMACs, and
 * frames flow. A failure fails the subflow with the reason kept for
 * mpt_get_info; no frame was written on it. */
static void sf_tls_step(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
{
    uint8_t sec[MPT_TLS_SECRET_LEN];
    int first = !s->established;

    if (mpt_tp_handshake(sf->tp) < 0) {
        if (errno == EAGAIN) {
            mpt_io_set(&sf->io, sf->tp->want);
            return;
        }
        if (sf->tp->error != 0)
            snprintf(s->tls_error, sizeof s->tls_error, "%s", sf->tp->why);
        mpt_sfio_fail_sys(s, sf, "sf_tls_failed", errno, now);
        mpt_io_set(&sf->io, 0);
        return;
    }
    int rc = mpt_tp_export(sf->tp, first ? MPT_TLS_LABEL_CONN : MPT_TLS_LABEL_JOIN, sec,
                           sizeof sec);
    if (rc == 0)
        rc = first ? mpt_conn_set_secret(s->c, sec) : mpt_conn_sf_set_binding(s->c, sf->idx, sec);
    memset(sec, 0, sizeof sec);
    if (rc < 0) {
        snprintf(s->tls_error, sizeof s->tls_error, "TLS exporter: %s", mpt_err_name(rc));
        MPT_TRACE(s->ctx, s->id, "sf_tls_failed", "\"sf\":%d,\"error\":\"%s\"", sf->idx,
                  mpt_err_name(rc));
        sf->fail_error = MPT_ETLS;
        mpt_conn_sf_failed(s->c, sf->idx, MPT_ETLS, now);
        mpt_io_set(&sf->io, 0);
        return;
    }
    if (first) {
        (void)mpt_tp_tls_save_session(sf->tp, &s->tls_session); /* no ticket: joins run in full */
        s->tls_suite = mpt_tp_tls_suite(sf->tp);
    }
    if (mpt_tp_tls_resumed(sf->tp))
        s->tls_resumed++;
    else
        s->tls_full++;
    MPT_TRACE(s->ctx, s->id, "sf_tls_up", "\"sf\":%d,\"suite\":\"%s\",\"resumed\":%d",
              sf->idx, mpt_tp_tls_suite(sf->tp), mpt_tp_tls_resumed(sf->tp));
    sf->tp_ready = 1;
    mpt_io_set(&sf->io, EV_READ | EV_WRITE);
}

/* Client: the preamble goes out in clear, then TLS runs before any frame. */
static void sf_tls_start(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
{
    uint8_t pre[MPT_PREAMBLE_MAX_LEN];
    ssize_t n = mpt_conn_sf_take_preamble(s->c, sf->idx, pre, sizeof pre);
    struct mpt_tp *tp = NULL;

    if (n > 0)
        tp = mpt_tp_tls_client(s->ctx->tls, sf->fd, s->host, pre, (size_t)n, s->tls_session);
    if (tp == NULL) {
        sf->fail_error = n < 0 ? (int)n : MPT_ENOMEM;
        mpt_conn_sf_failed(s->c, sf->idx, sf->fail_error, now);
        return;
    }
    mpt_tp_free(sf->tp);
    sf->tp = tp;
    sf->tp_ready = 0;
    MPT_TRACE(s->ctx, s->id, "sf_tls_start", "\"sf\":%d,\"resume\":%d", sf->idx,
              s->tls_session != NULL);
    sf_tls_step(s, sf, now);
}

void mpt_sfio_read_late(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
{
    if (sf->fd >= 0 && !sf->connecting && sf->tp_ready && sf->tp != NULL && !sf->eof_seen &&
        mpt_conn_sf_state(s->c, sf->idx) < MPT_SF_FAILED)
        sf_read(s, sf, now);
}

void mpt_sfio_read_held(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
{
    if (sf->tp != NULL && sf->tp->pending > 0 && mpt_conn_sf_state(s->c, sf->idx) < MPT_SF_FAILED)
        sf_read(s, sf, now);
}

void mpt_sfio_connected(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now)
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
    if (s->ctx->tls != NULL)
        sf_tls_start(s, sf, now);
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
            mpt_sfio_fail_sys(s, sf, "sf_connect_failed", err, now);
        } else {
            mpt_sfio_connected(s, sf, now);
        }
        mpt_sock_pump(s, 1);
        return;
    }
    if (!sf->tp_ready) {
        sf_tls_step(s, sf, now);
        mpt_sock_pump(s, 1);
        return;
    }
    if (revents & EV_WRITE) {
        mpt_sfio_sample_info(s, sf, now);
        sf->room_left = writable_room(s, sf);
        mpt_conn_sf_set_room(s->c, sf->idx, sf->room_left, now);
    }
    if (revents & EV_READ) {
        /* The peer's acks arrive here. A subflow held back by the coupled
         * window writes nothing, so no writable wake-up would refresh the
         * TCP-level bytes in flight that its cap is measured against. */
        if (mpt_sfio_info_due(sf, now, MPT_NS_PER_MS))
            mpt_sfio_sample_info(s, sf, now);
        /* mpt_blocking_recv waits on a loan: the subflow likely to carry
         * the bytes at the cumulative point goes first, so they land in
         * the loan in order and this one's (further on) stay in its socket
         * rather than in the ring. */
        int j = s->c != NULL ? mpt_conn_recv_next_sf(s->c) : -1;
        if (j >= 0 && j != sf->idx && s->sf[j] != NULL) {
            struct mpt_sfio *o = s->sf[j];
            if (o->fd >= 0 && !o->connecting && o->tp_ready && !o->eof_seen)
                sf_read(s, o, now);
        }
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

/* A graceful end closes each subflow like TCP should: FIN first, then read
 * (and discard) until the peer's FIN, so that late frames in flight do not
 * turn the close into a reset that destroys the peer's last frames. */
struct mpt_linger {
    struct mpt_io io;
    struct mpt_tmr tmr;
    LIST_ENTRY(mpt_linger) link;     /* ctx->lingers */
};

static void linger_end(struct mpt_linger *lf)
{
    int fd = lf->io.w.fd;
    mpt_io_set(&lf->io, 0);
    mpt_tmr_fini(&lf->tmr);
    LIST_REMOVE(lf, link);
    close(fd);
    mpt_free(lf);
}

static void linger_io_cb(EV_P_ ev_io *w, int revents)
{
    struct mpt_linger *lf = w->data;
    uint8_t buf[4096];
    ssize_t n = read(w->fd, buf, sizeof buf);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        linger_end(lf);
}

static void linger_tmr_cb(EV_P_ ev_timer *w, int revents)
{
    linger_end(w->data);
}

void mpt_sfio_linger_close(struct mpt_ctx *ctx, int fd)
{
    struct mpt_linger *lf = mpt_malloc(sizeof *lf);

    shutdown(fd, SHUT_WR);
    if (lf == NULL || mpt_tmr_init(&ctx->ws, &lf->tmr, linger_tmr_cb) < 0) {
        mpt_free(lf);
        close(fd);
        return;
    }
    mpt_io_init(&ctx->ws, &lf->io, linger_io_cb, fd);
    lf->io.w.data = lf;
    lf->tmr.w.data = lf;
    LIST_INSERT_HEAD(&ctx->lingers, lf, link);
    mpt_io_set(&lf->io, EV_READ);
    mpt_tmr_start(&lf->tmr, 2.0);
}

void mpt_sock_linger_flush(struct mpt_ctx *ctx)
{
    while (!LIST_EMPTY(&ctx->lingers))
        linger_end(LIST_FIRST(&ctx->lingers));
}

/*
 * The socket of one (path, server address) subflow: created, configured,
 * bound to the path and connecting. Returns 0 (*fd set, *in_progress when
 * connect() has not finished yet) or the errno of the step that failed,
 * which *what names for the trace.
 */
int mpt_sfio_socket(struct mpt_ctx *ctx, const char *ifname, const struct sockaddr_storage *src,
                    socklen_t srclen, const struct sockaddr_storage *dst, socklen_t dstlen,
                    int *fd, int *in_progress, const char **what)
{
    int e;

    *in_progress = 0;
    *what = "socket";
    if ((*fd = socket(dst->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return errno;
    *what = "setsockopt";
    if ((e = mpt_sock_setopts(ctx, *fd)) != 0)
        return e;
    if (ifname[0] != '\0') {
        *what = "bindtodevice";
#ifdef SO_BINDTODEVICE
        if (setsockopt(*fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) < 0)
            return errno;
#else
        return ENOTSUP;
#endif
    }
    *what = "bind";
    if (src->ss_family != AF_UNSPEC && bind(*fd, (const struct sockaddr *)src, srclen) < 0)
        return errno;
    *what = "connect";
    if (connect(*fd, (const struct sockaddr *)dst, dstlen) < 0) {
        if (errno != EINPROGRESS)
            return errno;
        *in_progress = 1;
    }
    return 0;
}

