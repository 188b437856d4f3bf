/*
 * One multipath connection: the engine pump (engine output -> subflow
 * sockets, events -> callbacks or the pull queue), the per-connection timer,
 * and the public data API. The subflow sockets themselves are subflow.c's;
 * the client's paths and their subflows' (re)creation are paths.c's.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/sched.h"
#include "core/cc.h"
#include "abi.h"
#include "listener.h"
#include "paths.h"
#include "sock.h"
#include "subflow.h"
#include "tls.h"

#define MPT_LATE_TIMER (50 * MPT_NS_PER_MS) /* a timer this late: read first */

static void sock_timer_cb(EV_P_ ev_timer *w, int revents);

/* ---- Allocation and teardown -------------------------------------------------- */

struct mpt_socket *mpt_sock_alloc(struct mpt_ctx *ctx, int server)
{
    struct mpt_socket *s;

    if (ctx->nconns >= ctx->cfg.max_connections)
        return NULL;
    if ((s = mpt_calloc(1, sizeof *s)) == NULL)
        return NULL;
    if (mpt_tmr_init(&ctx->ws, &s->timer, sock_timer_cb) < 0) {
        mpt_free(s);
        return NULL;
    }
    s->ctx = ctx;
    s->server = server;
    s->mode = -1;
    s->evsrc.s = s;
    s->id = ++ctx->next_conn_id;
    s->timer.w.data = s;
    LIST_INSERT_HEAD(&ctx->socks, s, link);
    ctx->nconns++;
    return s;
}

/* Frees everything at once; no callback. */
void mpt_sock_destroy(struct mpt_socket *s)
{
    struct mpt_ctx *ctx = s->ctx;

    for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++)
        if (s->sf[i])
            mpt_sfio_close(s, s->sf[i]);
    mpt_paths_free(s);
    mpt_resolve_cancel(&ctx->resolver, &s->rreq);
    mpt_evq_forget(ctx, &s->evsrc);
    mpt_tmr_fini(&s->timer);
    if (s->listener)
        mpt_listener_conn_gone(s->listener, s);
    if (s->c)
        mpt_conn_free(s->c);
    LIST_REMOVE(s, link);
    ctx->nconns--;
    mpt_peer_put(ctx, s->peer);
    s->peer = NULL;
    MPT_TRACE(ctx, s->id, "conn_freed", NULL);
    mpt_tls_session_free(s->tls_session);
    mpt_free(s->host);
    mpt_free(s);
}

void mpt_sock_free_all(struct mpt_ctx *ctx)
{
    while (!LIST_EMPTY(&ctx->socks)) {
        struct mpt_socket *s = LIST_FIRST(&ctx->socks);
        s->busy = 0;
        mpt_sock_destroy(s);
    }
}

void mpt_sock_maybe_free(struct mpt_socket *s)
{
    if (s->busy == 0 && s->released && s->done)
        mpt_sock_destroy(s);
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
        o->priority = (enum mpt_priority)st.prio;
        o->bytes_sent = st.bytes_sent;
        o->bytes_acked = st.bytes_acked;
        o->fail_error = st.fail_error;
        o->fail_reason = st.fail_reason;
        o->rtt_us = st.srtt / 1000u;
        o->budget_bytes = st.budget;
        o->budget_used = st.budget_used;
        o->budget_spent = st.budget_spent;
        o->rate_cap = st.rate;
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
        mpt_paths_slot_info(s, sf->slot, &o->path_id, &o->failures);
        if (o->fail_error == 0)
            o->fail_error = sf->fail_error;
        if (o->fail_error == sf->fail_error)
            o->sys_errno = sf->sys_errno;
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
            mpt_sfio_flush(s, sf, now); /* last frames (CLOSE, FASTCLOSE), best effort */
        if (err == 0 && sf->fd >= 0 && !sf->connecting) {
            mpt_sfio_linger_close(s->ctx, sf->fd);
            sf->fd = -1;
        }
        mpt_sfio_close(s, sf);
    }
    mpt_paths_stop(s);
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
#define PULL_budget_spent MPT_EVENT_BUDGET_SPENT
#define PULL_STATUS_budget_spent(...) 0
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
            mpt_paths_start_all(s);
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
            if (sf)
                mpt_paths_slot_up(s, sf->slot);
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
        if (MPT_TRACING(s->ctx) && s->c != NULL) {
            struct mpt_conn_stats cs;
            mpt_conn_get_stats(s->c, &cs);
            MPT_TRACE(s->ctx, s->id, "sf_down_cause",
                      "\"sf\":%d,\"blackholes\":%llu,\"notices\":%llu", ev->sf,
                      (unsigned long long)cs.sf_blackholes, (unsigned long long)cs.sf_fail_notices);
        }
        if (sf != NULL && sf->info.last_ack_at)
            /* the kernel's view at its last sample (blackhole rule, liveness.c) */
            MPT_TRACE(s->ctx, s->id, "sf_down_info",
                      "\"sf\":%d,\"ack_age_ms\":%llu,\"sample_age_ms\":%llu,"
                      "\"srtt_us\":%llu,\"retransmits\":%u,\"backoff\":%u",
                      ev->sf, (unsigned long long)((mpt_io_now() - sf->info.last_ack_at) / MPT_NS_PER_MS),
                      (unsigned long long)((mpt_io_now() - sf->last_info) / MPT_NS_PER_MS),
                      (unsigned long long)(sf->info.srtt / 1000u), sf->info.retransmits,
                      sf->info.backoff);
        if (sf != NULL) {
            sf->down_reported = 1;
            mpt_paths_slot_down(s, ev->sf, &si);
        }
        CALL(s, subflow_down, &si, s->user);
        break;
    }
    case MPT_EV_BUDGET_SPENT:
        if (ev->sf < 0 || ev->sf >= MPT_MAX_SUBFLOWS_LIMIT)
            break;
        fill_sf_info(s, ev->sf, &si);
        MPT_TRACE(s->ctx, s->id, "budget_spent", "\"sf\":%d,\"id\":%d,\"path\":%d,\"used\":%llu",
                  ev->sf, si.id, si.path_id, (unsigned long long)si.budget_used);
        if (mpt_paths_meter_spent(s, si.path_id))
            CALL(s, budget_spent, &si, s->user);
        break;
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
            mpt_paths_add_raddr(s, &ss, len, ev->addr.addr_id);
        }
        CALL(s, addr_learned, (const struct sockaddr *)&ss, len, ev->addr.addr_id, s->user);
        break;
    }
    case MPT_EV_ADDR_REMOVED:
        MPT_TRACE(s->ctx, s->id, "addr_removed", "\"addr_id\":%u", ev->addr.addr_id);
        if (!s->server)
            mpt_paths_addr_removed(s, ev->addr.addr_id);
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
            mpt_sfio_flush(s, sf, now); /* in any state: final CLOSE / ERROR frames */
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
                mpt_paths_slot_down(s, i, &si);
            }
            MPT_TRACE(s->ctx, s->id, "sf_closed", "\"sf\":%d", i);
            mpt_sfio_close(s, sf);
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
    uint64_t due = s->done ? MPT_TIME_NEVER : mpt_conn_next_timeout(s->c);
    if (due <= now && now - due > MPT_LATE_TIMER) {
        /* The loop is late (a busy process, issue 15): what arrived while it
         * was busy counts before the timeout (the PONG, the HELLO_ACK). */
        for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT && !s->done; i++)
            if (s->sf[i])
                mpt_sfio_read_late(s, s->sf[i], now);
        due = s->done ? MPT_TIME_NEVER : mpt_conn_next_timeout(s->c);
    }
    if (due <= now) {
        for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++)
            if (s->sf[i] && mpt_sfio_info_due(s->sf[i], now, 10 * MPT_NS_PER_MS))
                mpt_sfio_sample_info(s, s->sf[i], now);
        mpt_conn_handle_timeout(s->c, now);
        if (MPT_TRACING(s->ctx))
            for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++) {
                struct mpt_sf_stats st;
                if (s->sf[i] == NULL || mpt_conn_sf_get_stats(s->c, i, &st) < 0 ||
                    st.stalled == s->sf[i]->traced_stall)
                    continue;
                s->sf[i]->traced_stall = st.stalled;
                struct mpt_conn_stats cs;
                mpt_conn_get_stats(s->c, &cs);
                MPT_TRACE(s->ctx, s->id, "sf_stall",
                          "\"sf\":%d,\"stalled\":%d,\"inflight\":%llu,\"quiet_stalls\":%llu", i,
                          st.stalled, (unsigned long long)st.inflight,
                          (unsigned long long)cs.sf_quiet_stalls);
            }
    }
    mpt_sock_pump(s, 1);
}

/* ---- Public API: client ---------------------------------------------------------- */

/* Called once the host is resolved (resolve.c): create the engine
 * connection and open the first path's first subflow. */
static void sock_resolved(void *arg, int err, const struct sockaddr *sa, socklen_t len)
{
    struct mpt_socket *s = arg;
    struct mpt_ctx *ctx = s->ctx;
    struct mpt_core_settings set = ctx->core;
    struct sockaddr_storage ss;
    uint64_t now = mpt_io_now();
    int rc;

    s->rreq = NULL;
    if (err == 0) {
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, sa, len);
        rc = mpt_paths_add_raddr(s, &ss, len, -1);
        if (rc < 0)
            err = rc;
        else if (mpt_paths_nslots(s) == 0)
            err = MPT_ENOPATH; /* no local path of the right family */
    }
    if (err == 0) {
        if (s->sched)
            set.sched = s->sched;
        if (s->mode >= 0)
            set.service_mode = s->mode;
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
    MPT_TRACE(ctx, s->id, "conn_start", "\"slots\":%d", mpt_paths_nslots(s));
    mpt_paths_connect_first(s);
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
    if ((s->host = mpt_strdup(host)) == NULL || (rc = mpt_paths_setup(s, paths, npaths)) < 0)
        goto fail;
    s->port = port;
    mpt_callbacks_take(s, cb, cb_size);
    s->user = user;
    s->released = 0;
    if ((rc = mpt_resolve_start(&ctx->resolver, host, port, mpt_paths_family(s), sock_resolved,
                                s, &s->rreq)) < 0)
        goto fail;
    mpt_paths_watch_links(ctx);
    MPT_TRACE(ctx, s->id, "connect", "\"port\":%u,\"paths\":%d", port, mpt_paths_count(s));
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

/* Whether s takes application bytes now: 0, or the error mpt_send returns. */
static int send_ready(const struct mpt_socket *s, const void *buf, size_t len)
{
    if (sock_usable(s) < 0 || (buf == NULL && len > 0))
        return MPT_EINVAL;
    if (s->done)
        return s->error ? s->error : MPT_ECLOSED;
    if (s->shut)
        return MPT_EPIPE;
    if (s->c == NULL || !s->established)
        return MPT_ESTATE;
    return 0;
}

ssize_t mpt_send(struct mpt_socket *s, const void *buf, size_t len)
{
    int rc;

    if ((rc = send_ready(s, buf, len)) < 0)
        return rc;
    if (len == 0)
        return 0;
    ssize_t n = mpt_conn_send(s->c, buf, len, mpt_io_now());
    if (n > 0)
        mpt_sock_pump(s, 0);
    return n;
}

ssize_t mpt_send_msg(struct mpt_socket *s, const void *buf, size_t len,
                     const struct mpt_send_opts *o)
{
    struct mpt_msg_policy pol;
    int rc;

    if (o == NULL)
        return mpt_send(s, buf, len);
    if (o->size < sizeof *o || o->size > sizeof *o + 4096 || o->flags != 0)
        return MPT_EINVAL;
    for (size_t i = sizeof *o; i < o->size; i++)
        if (((const uint8_t *)o)[i] != 0)
            return MPT_EINVAL; /* a newer program's option this library cannot honour */
    if ((rc = send_ready(s, buf, len)) < 0)
        return rc;
    if (len == 0)
        return 0;
    pol.redundant_below = o->redundant_below;
    pol.deadline_ms = o->deadline_ms;
    ssize_t n = mpt_conn_send_msg(s->c, buf, len, &pol, mpt_io_now());
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

int mpt_sock_recv_lend(struct mpt_socket *s, void *buf, size_t len)
{
    if (s->released || s->c == NULL || !s->established || s->done)
        return 0;
    return mpt_conn_recv_lend(s->c, buf, len) == 0;
}

size_t mpt_sock_recv_unlend(struct mpt_socket *s)
{
    size_t got;

    if (s->c == NULL)
        return 0;
    got = mpt_conn_recv_unlend(s->c, mpt_io_now());
    if (got > 0 && !s->done)
        mpt_sock_pump(s, 0); /* window updates */
    return got;
}

size_t mpt_sock_recv_lent(const struct mpt_socket *s)
{
    return s->c != NULL ? mpt_conn_recv_lent(s->c) : 0;
}

int mpt_sock_recv_lend_waiting(const struct mpt_socket *s)
{
    return s->c != NULL && mpt_conn_recv_lend_waiting(s->c);
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
                mpt_sfio_flush(s, s->sf[i], now);
    }
    sock_finish(s, MPT_ECLOSED);
    mpt_sock_maybe_free(s);
    return 0;
}

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

_Static_assert((int)MPT_MODE_AGGREGATE == (int)MPT_SM_AGGREGATE &&
                   (int)MPT_MODE_HANDOVER == (int)MPT_SM_HANDOVER &&
                   (int)MPT_MODE_INTERACTIVE == (int)MPT_SM_INTERACTIVE,
               "enum mpt_service_mode and the engine's modes agree");

int mpt_set_mode(struct mpt_socket *s, enum mpt_service_mode mode)
{
    if (s == NULL || s->released || (int)mode < MPT_MODE_AGGREGATE ||
        (int)mode > MPT_MODE_INTERACTIVE)
        return MPT_EINVAL;
    if (s->done)
        return MPT_ESTATE;
    if (s->c == NULL) {
        s->mode = (int)mode;
        return 0;
    }
    MPT_TRACE(s->ctx, s->id, "set_mode", "\"mode\":%d", (int)mode);
    return mpt_conn_set_mode(s->c, (int)mode, mpt_io_now());
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
        o.peer_text = mpt_conn_peer_text(s->c);
        o.rcv_window = st.rcv_window;
        o.rcv_allocated = st.rcv_allocated;
        o.snd_allocated = st.snd_allocated;
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

int mpt_get_tls_info(struct mpt_socket *s, struct mpt_tls_info *info)
{
    struct mpt_tls_info o;

    if (s == NULL || info == NULL || info->size < sizeof(size_t))
        return MPT_EINVAL;
    memset(&o, 0, sizeof o);
    o.size = info->size < sizeof o ? info->size : sizeof o;
    o.full_handshakes = s->tls_full;
    o.resumed_handshakes = s->tls_resumed;
    o.suite = s->tls_suite != NULL ? s->tls_suite : "";
    o.error = s->tls_error[0] != '\0' ? s->tls_error : NULL;
    if (info->size > sizeof o) /* a newer program's fields */
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
    for (int k = 0; k < mpt_paths_nslots(s); k++) {
        if (!mpt_paths_slot_record(s, k, &o))
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
