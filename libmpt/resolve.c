/*
 * Name resolution that never blocks the loop. A numeric address is parsed at
 * once; a name is resolved by getaddrinfo() on a short-lived thread, which
 * only stores the result and wakes the loop with ev_async: the connection
 * continues on the loop thread. Both cases complete from the loop, never from
 * inside mpt_connect().
 *
 * Loop references: the ev_async watcher is always started but does not keep
 * the loop alive on its own (ev_unref), so an idle resolver never stops
 * ev_run() / mpt_ctx_run(-1) from returning. Every lookup whose socket still
 * waits for it holds one reference instead (resolve_hold), so the loop keeps
 * running until the answer has been delivered.
 */
#include "config.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

struct mpt_resolve_req {
    struct mpt_ctx *ctx;
    struct mpt_socket *s;  /* NULL once cancelled; guarded by ctx->resolve_mu */
    struct mpt_resolve_req *next;
    char *host;
    int family;
    int done, err, has_thread;
    pthread_t th;
    struct sockaddr_storage sa;
    socklen_t len;
};

/* The loop is referenced while ctx->resolve_waiting > 0. */
static void resolve_hold(struct mpt_ctx *ctx)
{
    if (ctx->resolve_waiting++ == 0)
        ev_ref(ctx->loop);
}

static void resolve_release(struct mpt_ctx *ctx)
{
    if (ctx->resolve_waiting > 0 && --ctx->resolve_waiting == 0)
        ev_unref(ctx->loop);
}

static int lookup(const char *host, int family, int numeric, struct sockaddr_storage *sa,
                  socklen_t *len)
{
    struct addrinfo hints, *res = NULL;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | (numeric ? AI_NUMERICHOST : 0);
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 && numeric) {
        hints.ai_flags = AI_NUMERICHOST; /* loopback-only hosts: no AI_ADDRCONFIG */
        rc = getaddrinfo(host, NULL, &hints, &res);
    }
    if (rc != 0 || res == NULL)
        return MPT_ERESOLVE;
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void *resolve_thread(void *arg)
{
    struct mpt_resolve_req *r = arg;
    struct sockaddr_storage sa;
    socklen_t len = 0;
    int err = lookup(r->host, r->family, 0, &sa, &len);

    pthread_mutex_lock(&r->ctx->resolve_mu);
    r->err = err;
    if (err == 0) {
        r->sa = sa;
        r->len = len;
    }
    r->done = 1;
    ev_async_send(r->ctx->loop, &r->ctx->resolve_async);
    if (r->ctx->wakefd >= 0) {
        uint64_t one = 1;
        (void)!write(r->ctx->wakefd, &one, sizeof one);
    }
    pthread_mutex_unlock(&r->ctx->resolve_mu);
    return NULL;
}

static void set_port(struct sockaddr_storage *sa, uint16_t port)
{
    if (sa->ss_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
    else if (sa->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

static void resolve_async_cb(EV_P_ ev_async *w, int revents)
{
    struct mpt_ctx *ctx = w->data;
    struct mpt_resolve_req *done = NULL, **pp;

    pthread_mutex_lock(&ctx->resolve_mu);
    if (ctx->wakefd >= 0) {
        uint64_t v;
        (void)!read(ctx->wakefd, &v, sizeof v);
    }
    for (pp = &ctx->resolve_reqs; *pp;) {
        struct mpt_resolve_req *r = *pp;
        if (r->done) {
            *pp = r->next;
            r->next = done;
            done = r;
        } else {
            pp = &r->next;
        }
    }
    pthread_mutex_unlock(&ctx->resolve_mu);
    while (done) {
        struct mpt_resolve_req *r = done;
        done = r->next;
        if (r->has_thread)
            pthread_join(r->th, NULL);
        if (r->s != NULL) {
            struct mpt_socket *s = r->s;
            resolve_release(ctx);
            s->rreq = NULL;
            if (r->err == 0)
                set_port(&r->sa, s->port);
            mpt_sock_resolved(s, r->err, (struct sockaddr *)&r->sa, r->len);
        }
        free(r->host);
        free(r);
    }
}

int mpt_resolve_init(struct mpt_ctx *ctx)
{
    int rc = pthread_mutex_init(&ctx->resolve_mu, NULL);

    if (rc != 0)
        return mpt_errno_to_mpt(rc);
    ev_async_init(&ctx->resolve_async, resolve_async_cb);
    ctx->resolve_async.data = ctx;
    ev_async_start(ctx->loop, &ctx->resolve_async);
    ev_unref(ctx->loop); /* an idle resolver does not keep mpt_ctx_run() going */
    return 0;
}

void mpt_resolve_fini(struct mpt_ctx *ctx)
{
    struct mpt_resolve_req *r, *next;

    pthread_mutex_lock(&ctx->resolve_mu);
    r = ctx->resolve_reqs;
    ctx->resolve_reqs = NULL;
    pthread_mutex_unlock(&ctx->resolve_mu);
    for (; r; r = next) {
        next = r->next;
        if (r->has_thread)
            pthread_join(r->th, NULL);
        free(r->host);
        free(r);
    }
    while (ctx->resolve_waiting > 0)
        resolve_release(ctx);
    ev_ref(ctx->loop); /* undo mpt_resolve_init's ev_unref before stopping */
    ev_async_stop(ctx->loop, &ctx->resolve_async);
    pthread_mutex_destroy(&ctx->resolve_mu);
}

int mpt_resolve_start(struct mpt_socket *s, const char *host, uint16_t port)
{
    struct mpt_ctx *ctx = s->ctx;
    struct mpt_resolve_req *r = calloc(1, sizeof *r);
    int family = AF_UNSPEC;

    (void)port;
    if (r == NULL)
        return MPT_ENOMEM;
    /* Prefer the family of the first explicit source address. */
    if (s->npaths > 0 && s->paths[0].src.ss_family != AF_UNSPEC)
        family = s->paths[0].src.ss_family;
    r->ctx = ctx;
    r->s = s;
    r->family = family;
    if ((r->host = strdup(host)) == NULL) {
        free(r);
        return MPT_ENOMEM;
    }
    if (lookup(host, family, 1, &r->sa, &r->len) == 0) {
        r->done = 1;
    } else if (strspn(host, "0123456789.:") == strlen(host) && strchr(host, '.') != NULL) {
        /* Looks numeric but is not a valid address (or wrong family). */
        free(r->host);
        free(r);
        return MPT_ERESOLVE;
    } else {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256u * 1024u);
        pthread_mutex_lock(&ctx->resolve_mu);
        int rc = pthread_create(&r->th, &attr, resolve_thread, r);
        if (rc == 0)
            r->has_thread = 1;
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            pthread_mutex_unlock(&ctx->resolve_mu);
            free(r->host);
            free(r);
            return mpt_errno_to_mpt(rc); /* EAGAIN: MPT_ESYS, not "try again" */
        }
        r->next = ctx->resolve_reqs;
        ctx->resolve_reqs = r;
        s->rreq = r;
        pthread_mutex_unlock(&ctx->resolve_mu);
        resolve_hold(ctx);
        return 0;
    }
    pthread_mutex_lock(&ctx->resolve_mu);
    r->next = ctx->resolve_reqs;
    ctx->resolve_reqs = r;
    s->rreq = r;
    pthread_mutex_unlock(&ctx->resolve_mu);
    resolve_hold(ctx);
    ev_async_send(ctx->loop, &ctx->resolve_async);
    return 0;
}

void mpt_resolve_cancel(struct mpt_socket *s)
{
    struct mpt_ctx *ctx = s->ctx;

    if (s->rreq == NULL)
        return;
    pthread_mutex_lock(&ctx->resolve_mu);
    s->rreq->s = NULL;
    s->rreq = NULL;
    pthread_mutex_unlock(&ctx->resolve_mu);
    resolve_release(ctx); /* nobody waits for the answer any more */
}
