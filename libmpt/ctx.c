/* The context: configuration, the libev loop, what the context's helpers
 * (watchers, resolver) are started with, external loops, and the trace. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#endif

#include "core/alloc.h"
#include "core/cc.h"
#include "core/sched.h"
#include "abi.h"
#include "tls.h"
#include "ctx.h"

/* ---- Configuration ---------------------------------------------------------- */

void mpt_config_default(struct mpt_config *cfg, size_t size)
{
    struct mpt_config d;
    struct mpt_core_settings core;

    if (cfg == NULL || size < sizeof(size_t))
        return;
    /* The engine's limits and timers have one source of defaults (its
     * settings); the I/O layer's own defaults are the literals here, and
     * nowhere else. */
    mpt_core_settings_default(&core);
    memset(&d, 0, sizeof d);
    d.size = size;
    d.max_subflows = core.max_subflows;
    d.sndbuf = core.sndbuf;
    d.rcvbuf = core.rcvbuf;
    d.rcvbuf_initial = core.rcvbuf_initial;
    d.sndbuf_initial = core.sndbuf_initial;
    d.connect_timeout_ms = 5000;
    d.handshake_timeout_ms = (uint32_t)(core.handshake_timeout / MPT_NS_PER_MS);
    d.close_timeout_ms = (uint32_t)(core.close_timeout / MPT_NS_PER_MS);
    d.user_timeout_ms = 10000;
    d.subflow_timeout_ms = (uint32_t)(core.subflow_timeout / MPT_NS_PER_MS);
    d.ping_interval_ms = (uint32_t)(core.ping_interval / MPT_NS_PER_MS);
    d.notsent_lowat = 128u << 10;
    d.write_budget = 256u << 10;
    d.reconnect_min_ms = 250;
    d.reconnect_max_ms = 30000;
    d.subflows_per_path = 1;
    d.listen_backlog = 1024;
    d.max_connections = 65536;
    d.max_pending_handshakes = 4096;
    d.max_conns_per_addr = 1024;
    d.advertise_addresses = 1;
    memcpy(cfg, &d, size < sizeof d ? size : sizeof d);
    if (size > sizeof d) /* a newer program's fields, unknown here: 0 */
        memset((uint8_t *)cfg + sizeof d, 0, size - sizeof d);
}

/*
 * Is in->size a struct mpt_config this library can take? The 0.1.0 layout
 * or the current one, or a newer, larger one whose bytes beyond what this
 * library knows are all zero (the convention of Linux's
 * copy_struct_from_user): a setting it cannot honour is refused, not
 * dropped. Anything else cannot have come from mpt_config_default().
 */
static int config_size_ok(const struct mpt_config *in)
{
    const uint8_t *p = (const uint8_t *)in;

    if (in->size == MPT_CONFIG_SIZE_0_1 || in->size == MPT_CONFIG_SIZE_ACK ||
        in->size == MPT_CONFIG_SIZE_SRVID || in->size == MPT_CONFIG_SIZE_TLS ||
        in->size == MPT_CONFIG_SIZE_LIMITS || in->size == MPT_CONFIG_SIZE_MODE)
        return in->size == MPT_CONFIG_SIZE_0_1 || in->reserved0 == 0;
    if (in->size < sizeof *in || in->size > sizeof *in + MPT_CONFIG_MAX_TAIL)
        return 0;
    for (size_t i = sizeof *in; i < in->size; i++)
        if (p[i] != 0)
            return 0;
    return in->reserved0 == 0;
}

int mpt_tls_config_check(const struct mpt_tls_config *tls, char *why, size_t why_len)
{
    struct mpt_tls *t;
    int rc = mpt_tls_new(tls, &t, why, why_len);

    mpt_tls_free(t);
    return rc;
}

static void rand_fill(void *user, uint8_t *buf, size_t len)
{
    mpt_random_fill(user, buf, len);
}

/* A TCP_CONGESTION name the kernel lacks would otherwise fail silently on
 * every subflow: try it once on a socket that never connects. */
static int tcp_congestion_check(const char *name)
{
#ifdef TCP_CONGESTION
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;

    if (fd < 0)
        return MPT_ESYS;
    if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)strlen(name)) < 0)
        rc = errno == ENOENT ? MPT_ENOTFOUND : errno == EPERM ? MPT_EPERM : MPT_EINVAL;
    close(fd);
    return rc;
#else
    (void)name;
    return MPT_ENOTSUP;
#endif
}

static int take_config(struct mpt_ctx *ctx, const struct mpt_config *in)
{
    struct mpt_config *c = &ctx->cfg;
    struct mpt_config d;

    mpt_config_default(&d, sizeof d);
    if (in != NULL) {
        if (!config_size_ok(in))
            return MPT_EINVAL;
        memcpy(&d, in, in->size < sizeof d ? in->size : sizeof d);
        d.reserved0 = 0; /* a 0.1.0 program's padding: never read */
    }
    *c = d;
    c->size = sizeof *c;
    /* 0 means the default: the values mpt_config_default() just put in d
     * before the program's struct was copied over them. */
    mpt_config_default(&d, sizeof d);
#define DEF_(f) \
    if (c->f == 0) c->f = d.f
    DEF_(max_subflows);
    DEF_(sndbuf);
    DEF_(rcvbuf);
    DEF_(rcvbuf_initial);
    DEF_(sndbuf_initial);
    DEF_(connect_timeout_ms);
    DEF_(handshake_timeout_ms);
    DEF_(close_timeout_ms);
    DEF_(user_timeout_ms);
    DEF_(subflow_timeout_ms);
    DEF_(ping_interval_ms);
    DEF_(notsent_lowat);
    DEF_(write_budget);
    DEF_(reconnect_min_ms);
    DEF_(reconnect_max_ms);
    DEF_(subflows_per_path);
    DEF_(listen_backlog);
    DEF_(max_connections);
    DEF_(max_pending_handshakes);
    DEF_(max_conns_per_addr);
#undef DEF_
    if (c->max_subflows > MPT_MAX_SUBFLOWS_LIMIT || c->subflows_per_path > 8 ||
        c->service_mode > MPT_MODE_INTERACTIVE)
        return MPT_EINVAL;
    if (c->scheduler != NULL) {
        if (mpt_sched_find(c->scheduler) == NULL)
            return MPT_ENOTFOUND;
        if ((ctx->cfg_sched = mpt_strdup(c->scheduler)) == NULL)
            return MPT_ENOMEM;
        c->scheduler = ctx->cfg_sched;
    }
    if (c->congestion != NULL) {
        if (mpt_cc_find(c->congestion) == NULL)
            return MPT_ENOTFOUND;
        if ((ctx->cfg_cc = mpt_strdup(c->congestion)) == NULL)
            return MPT_ENOMEM;
        c->congestion = ctx->cfg_cc;
    }
    if (c->tcp_congestion != NULL) {
        int rc = tcp_congestion_check(c->tcp_congestion);
        if (rc < 0)
            return rc;
        if ((ctx->cfg_tcpcc = mpt_strdup(c->tcp_congestion)) == NULL)
            return MPT_ENOMEM;
        c->tcp_congestion = ctx->cfg_tcpcc;
    }

    if (c->tls != NULL) {
        /* Loaded once here; the program's struct is not kept. */
        int rc = mpt_tls_new(c->tls, &ctx->tls, NULL, 0);
        if (rc < 0)
            return rc;
        c->tls = NULL;
    }

    struct mpt_core_settings *s = &ctx->core;
    mpt_core_settings_default(s);
    s->tls = ctx->tls != NULL; /* both roles: TLS on every subflow, or none */
    s->accept_tls = mpt_tls_can_serve(ctx->tls);
    s->max_subflows = c->max_subflows;
    s->sndbuf = c->sndbuf;
    s->rcvbuf = c->rcvbuf;
    s->rcvbuf_initial = c->rcvbuf_initial;
    s->sndbuf_initial = c->sndbuf_initial;
    s->ping_interval = (uint64_t)c->ping_interval_ms * MPT_NS_PER_MS;
    s->subflow_timeout = (uint64_t)c->subflow_timeout_ms * MPT_NS_PER_MS;
    s->handshake_timeout = (uint64_t)c->handshake_timeout_ms * MPT_NS_PER_MS;
    s->close_timeout = (uint64_t)c->close_timeout_ms * MPT_NS_PER_MS;
    s->ack_timeout = (uint64_t)c->ack_timeout_ms * MPT_NS_PER_MS; /* 0: the engine's 4 x */
    s->server_id = c->server_id;
    s->service_mode = (int)c->service_mode;
    s->sched = c->scheduler ? mpt_sched_find(c->scheduler) : NULL;
    s->cc = c->congestion ? mpt_cc_find(c->congestion) : NULL;
    s->rand = rand_fill;
    s->rand_user = &ctx->rng;
    return 0;
}

/* ---- Context ------------------------------------------------------------------- */

/* The resolver's lookup thread stored an answer: an external loop polling
 * mpt_ctx_fd() cannot see libev's own async pipe, so the eventfd shows it
 * (and is drained when the answers are collected). Under the resolver's
 * lock; wake_mu guards wakefd, which mpt_ctx_fd() may create meanwhile. */
static void resolver_wake(void *arg)
{
    struct mpt_ctx *ctx = arg;

    pthread_mutex_lock(&ctx->wake_mu);
    if (ctx->wakefd >= 0) {
        uint64_t one = 1;
        (void)!write(ctx->wakefd, &one, sizeof one);
    }
    pthread_mutex_unlock(&ctx->wake_mu);
}

static void resolver_woken(void *arg)
{
    struct mpt_ctx *ctx = arg;

    pthread_mutex_lock(&ctx->wake_mu);
    if (ctx->wakefd >= 0) {
        uint64_t v;
        (void)!read(ctx->wakefd, &v, sizeof v);
    }
    pthread_mutex_unlock(&ctx->wake_mu);
}

int mpt_ctx_new(struct mpt_ctx **out, void *ev_loop, const struct mpt_config *cfg)
{
    struct mpt_resolve_hooks hooks = {resolver_wake, resolver_woken, NULL};
    struct mpt_ctx *ctx;
    int rc;

    if (out == NULL)
        return MPT_EINVAL;
    *out = NULL;
    if ((ctx = mpt_calloc(1, sizeof *ctx)) == NULL)
        return MPT_ENOMEM;
    ctx->wakefd = -1;
    mpt_netlink_init(&ctx->nl);
    mpt_random_init(&ctx->rng);
    LIST_INIT(&ctx->lingers);
    LIST_INIT(&ctx->socks);
    LIST_INIT(&ctx->listeners);
    TAILQ_INIT(&ctx->pendq);
    if ((rc = take_config(ctx, cfg)) < 0)
        goto fail;
    rc = MPT_ENOMEM;
    if ((ctx->rbuf = mpt_malloc(MPT_IO_RBUF)) == NULL)
        goto fail;
    if (ev_loop != NULL) {
        ctx->loop = ev_loop;
    } else {
        unsigned flags = EVFLAG_AUTO;
        if (ev_supported_backends() & EVBACKEND_EPOLL)
            flags = EVBACKEND_EPOLL;
        errno = 0;
        if ((ctx->loop = ev_loop_new(flags)) == NULL) {
            rc = errno ? mpt_errno_to_mpt(errno) : MPT_ESYS;
            goto fail;
        }
        ctx->own_loop = 1;
    }
    mpt_watchers_init(&ctx->ws, ctx->loop);
    if ((rc = pthread_mutex_init(&ctx->wake_mu, NULL)) != 0) {
        rc = mpt_errno_to_mpt(rc);
        if (ctx->own_loop)
            ev_loop_destroy(ctx->loop);
        goto fail;
    }
    hooks.arg = ctx;
    if ((rc = mpt_resolve_init(&ctx->resolver, ctx->loop, &hooks)) < 0) {
        pthread_mutex_destroy(&ctx->wake_mu);
        if (ctx->own_loop)
            ev_loop_destroy(ctx->loop);
        goto fail;
    }
    mpt_events_init(ctx);
    ctx->t0 = mpt_io_now();
    /* Bug reports: MPT_TRACE=file traces every context of the process. */
    const char *tr = getenv("MPT_TRACE");
    if (tr != NULL && tr[0] != '\0')
        (void)mpt_set_trace_file(ctx, tr);
    *out = ctx;
    return 0;
fail:
    mpt_free(ctx->cfg_sched);
    mpt_free(ctx->cfg_cc);
    mpt_free(ctx->cfg_tcpcc);
    mpt_tls_free(ctx->tls);
    mpt_free(ctx->rbuf);
    mpt_free(ctx);
    return rc;
}

unsigned mpt_io_test_src_tests(const struct mpt_ctx *ctx)
{
    return ctx->src_tests;
}

void mpt_ctx_free(struct mpt_ctx *ctx)
{
    if (ctx == NULL)
        return;
    mpt_sock_free_all(ctx);
    mpt_listener_free_all(ctx);
    mpt_sock_linger_flush(ctx);
    mpt_peer_counts_free(ctx);
    mpt_netlink_stop(&ctx->nl);
    mpt_events_fini(ctx);
    mpt_resolve_fini(&ctx->resolver);
    pthread_mutex_destroy(&ctx->wake_mu);
    while (!LIST_EMPTY(&ctx->ws.tmrs))
        mpt_tmr_fini(LIST_FIRST(&ctx->ws.tmrs));
    if (ctx->trace_fp)
        fclose(ctx->trace_fp);
    mpt_watchers_fini(&ctx->ws);
    if (ctx->wakefd >= 0)
        close(ctx->wakefd);
    if (ctx->own_loop)
        ev_loop_destroy(ctx->loop);
    mpt_free(ctx->cfg_sched);
    mpt_free(ctx->cfg_cc);
    mpt_free(ctx->cfg_tcpcc);
    mpt_tls_free(ctx->tls);
    mpt_free(ctx->rbuf);
    mpt_random_wipe(&ctx->rng);
    mpt_free(ctx);
}

int mpt_ctx_get_stats(struct mpt_ctx *ctx, struct mpt_ctx_stats *st)
{
    struct mpt_ctx_stats v;

    if (ctx == NULL || st == NULL || st->size < sizeof(size_t) + sizeof(uint64_t))
        return MPT_EINVAL;
    v = ctx->stats;
    v.conns = ctx->nconns;
    v.pending = ctx->npending;
    size_t n = st->size < sizeof v ? st->size : sizeof v;
    v.size = st->size;
    memcpy(st, &v, n);
    return 0;
}

void *mpt_ctx_loop(struct mpt_ctx *ctx)
{
    return ctx ? ctx->loop : NULL;
}

static void run_timeout_cb(EV_P_ ev_timer *w, int revents)
{
    (void)revents;
    ev_break(EV_A_ EVBREAK_ONE);
}

int mpt_ctx_run(struct mpt_ctx *ctx, int timeout_ms)
{
    if (ctx == NULL)
        return MPT_EINVAL;
    if (ctx->in_cb)
        return MPT_ESTATE;
    ctx->breaking = 0;
    ctx->running++;
    if (timeout_ms == 0) {
        ev_run(ctx->loop, EVRUN_NOWAIT);
    } else if (timeout_ms < 0) {
        ev_run(ctx->loop, 0);
    } else {
        ev_timer t;
        ev_timer_init(&t, run_timeout_cb, timeout_ms / 1000., 0.);
        ev_timer_start(ctx->loop, &t);
        ev_run(ctx->loop, 0);
        ev_timer_stop(ctx->loop, &t);
    }
    ctx->running--;
    return 0;
}

void mpt_ctx_break(struct mpt_ctx *ctx)
{
    if (ctx != NULL) {
        ctx->breaking = 1;
        ev_break(ctx->loop, EVBREAK_ONE);
    }
}

int mpt_ctx_fd(struct mpt_ctx *ctx)
{
    if (ctx == NULL)
        return MPT_EINVAL;
#ifdef __linux__
    if (ctx->ws.extfd < 0) {
        if (mpt_watchers_mirror(&ctx->ws) < 0)
            return mpt_errno_to_mpt(errno);
        /* The resolver thread's wake-ups reach libev through its own pipe,
         * which the external loop cannot see: mirror them with an eventfd. */
        int wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wfd >= 0) {
            mpt_watchers_mirror_fd(&ctx->ws, wfd);
            pthread_mutex_lock(&ctx->wake_mu);
            ctx->wakefd = wfd;
            pthread_mutex_unlock(&ctx->wake_mu);
        }
    }
    return ctx->ws.extfd;
#else
    return MPT_ENOTSUP;
#endif
}

int mpt_ctx_timeout(struct mpt_ctx *ctx)
{
    if (ctx == NULL)
        return MPT_EINVAL;
    if (ev_pending_count(ctx->loop) > 0 || mpt_resolve_pending(&ctx->resolver) ||
        ev_async_pending(&ctx->wake_async) || !TAILQ_EMPTY(&ctx->evq) || ctx->wake_pending)
        return 0;
    if (ctx->ws.theap_n == 0)
        return -1;
    ev_now_update(ctx->loop);
    double left = mpt_tmr_next(&ctx->ws); /* O(1): the heap's top */
    if (left <= 0.)
        return 0;
    if (left >= INT_MAX / 1000.)
        return INT_MAX;
    return (int)(left * 1000.) + 1; /* round up: never wake before it is due */
}

int mpt_ctx_process(struct mpt_ctx *ctx)
{
    if (ctx == NULL)
        return MPT_EINVAL;
    if (ctx->in_cb)
        return MPT_ESTATE;
    ev_run(ctx->loop, EVRUN_NOWAIT);
    return 0;
}

/* ---- Trace ----------------------------------------------------------------------- */

int mpt_set_trace_file(struct mpt_ctx *ctx, const char *path)
{
    FILE *fp = NULL;

    if (ctx == NULL)
        return MPT_EINVAL;
    if (path != NULL && (fp = fopen(path, "ae")) == NULL)
        return mpt_errno_to_mpt(errno);
    if (fp != NULL)
        setvbuf(fp, NULL, _IOLBF, 0); /* whole lines, even if the process dies */
    if (ctx->trace_fp)
        fclose(ctx->trace_fp);
    ctx->trace_fp = fp;
    if (fp != NULL) {
        /* the clocks behind "t", so traces of two processes line up */
        struct timespec ts;
        uint64_t wall;
        clock_gettime(CLOCK_REALTIME, &ts);
        wall = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        wall -= mpt_io_now() - ctx->t0;
        mpt_trace_emit(ctx, 0, "trace_open", "\"t0_mono_ms\":%llu.%03llu,\"t0_wall_ms\":%llu.%03llu,\"pid\":%ld",
                       (unsigned long long)(ctx->t0 / 1000000u),
                       (unsigned long long)(ctx->t0 / 1000u % 1000u),
                       (unsigned long long)(wall / 1000000u), (unsigned long long)(wall / 1000u % 1000u),
                       (long)getpid());
    }
    return 0;
}

int mpt_set_trace_callback(struct mpt_ctx *ctx, mpt_trace_cb cb, void *user)
{
    if (ctx == NULL)
        return MPT_EINVAL;
    ctx->trace_cb = cb;
    ctx->trace_user = user;
    return 0;
}

void mpt_trace_emit(struct mpt_ctx *ctx, unsigned conn, const char *ev, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    uint64_t t = mpt_io_now() - ctx->t0;
    int n = snprintf(line, sizeof line, "{\"t\":%llu.%03llu,\"conn\":%u,\"ev\":\"%s\"",
                     (unsigned long long)(t / 1000000u),
                     (unsigned long long)(t / 1000u % 1000u), conn, ev);

    if (n < 0 || (size_t)n >= sizeof line - 2)
        return;
    if (fmt != NULL && fmt[0] != '\0') {
        line[n++] = ',';
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 2, fmt, ap);
        va_end(ap);
        if (m < 0)
            return;
        n += m;
        if ((size_t)n > sizeof line - 2)
            n = (int)sizeof line - 2;
    }
    line[n++] = '}';
    line[n] = '\0';
    if (ctx->trace_cb)
        ctx->trace_cb(line, (size_t)n, ctx->trace_user);
    if (ctx->trace_fp) {
        fputs(line, ctx->trace_fp);
        fputc('\n', ctx->trace_fp);
    }
}
