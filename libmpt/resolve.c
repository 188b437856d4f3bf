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

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/mpt.h>

#include "core/alloc.h"
#include "resolve.h"
#include "util.h"

struct mpt_resolve_req {
    struct mpt_resolver *rs;
    mpt_resolve_done_cb cb; /* NULL once cancelled; guarded by rs->mu */
    void *arg;
    uint16_t port;
    SLIST_ENTRY(mpt_resolve_req) link; /* rs->reqs */
    char *host;
    int family;
    int done, err, has_thread;
    pthread_t th;
    struct sockaddr_storage sa;
    socklen_t len;
};

/* The loop is referenced while rs->waiting > 0. */
static void resolve_hold(struct mpt_resolver *rs)
{
    if (rs->waiting++ == 0)
        ev_ref(rs->loop);
}

static void resolve_release(struct mpt_resolver *rs)
{
    if (rs->waiting > 0 && --rs->waiting == 0)
        ev_unref(rs->loop);
}

/* A plain IPv4 or IPv6 literal, without getaddrinfo(): with AI_ADDRCONFIG
 * that opens a netlink socket and asks nscd on every call, a dozen system
 * calls per connection for a server that opens thousands. 0, or -1 to let
 * getaddrinfo() decide (names, scoped IPv6, a family mismatch). */
static int literal(const char *host, int family, struct sockaddr_storage *sa, socklen_t *len)
{
    memset(sa, 0, sizeof *sa);
    if (family != AF_INET6) {
        struct sockaddr_in *a = (struct sockaddr_in *)sa;
        if (inet_pton(AF_INET, host, &a->sin_addr) == 1) {
            a->sin_family = AF_INET;
            *len = sizeof *a;
            return 0;
        }
    }
    if (family != AF_INET) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) == 1) {
            a->sin6_family = AF_INET6;
            *len = sizeof *a;
            return 0;
        }
    }
    return -1;
}

static int lookup(const char *host, int family, int numeric, struct sockaddr_storage *sa,
                  socklen_t *len)
{
    struct addrinfo hints, *res = NULL;

    if (numeric && literal(host, family, sa, len) == 0)
        return 0;
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

    struct mpt_resolver *rs = r->rs;

    pthread_mutex_lock(&rs->mu);
    r->err = err;
    if (err == 0) {
        r->sa = sa;
        r->len = len;
    }
    r->done = 1;
    ev_async_send(rs->loop, &rs->async);
    if (rs->hooks.wake != NULL)
        rs->hooks.wake(rs->hooks.arg);
    pthread_mutex_unlock(&rs->mu);
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
    struct mpt_resolver *rs = w->data;
    SLIST_HEAD(, mpt_resolve_req) done = SLIST_HEAD_INITIALIZER(done);
    struct mpt_resolve_req *r, *prev = NULL, *next;

    pthread_mutex_lock(&rs->mu);
    if (rs->hooks.woken != NULL)
        rs->hooks.woken(rs->hooks.arg);
    SLIST_FOREACH_SAFE(r, &rs->reqs, link, next) {
        if (!r->done) {
            prev = r;
            continue;
        }
        if (prev != NULL)
            SLIST_REMOVE_AFTER(prev, link);
        else
            SLIST_REMOVE_HEAD(&rs->reqs, link);
        SLIST_INSERT_HEAD(&done, r, link);
    }
    pthread_mutex_unlock(&rs->mu);
    while (!SLIST_EMPTY(&done)) {
        r = SLIST_FIRST(&done);
        SLIST_REMOVE_HEAD(&done, link);
        if (r->has_thread)
            pthread_join(r->th, NULL);
        if (r->cb != NULL) {
            resolve_release(rs);
            if (r->err == 0)
                set_port(&r->sa, r->port);
            r->cb(r->arg, r->err, (struct sockaddr *)&r->sa, r->len);
        }
        mpt_free(r->host);
        mpt_free(r);
    }
}

int mpt_resolve_init(struct mpt_resolver *rs, struct ev_loop *loop,
                     const struct mpt_resolve_hooks *hooks)
{
    int rc;

    memset(rs, 0, sizeof *rs);
    SLIST_INIT(&rs->reqs);
    if ((rc = pthread_mutex_init(&rs->mu, NULL)) != 0)
        return mpt_errno_to_mpt(rc);
    rs->loop = loop;
    if (hooks != NULL)
        rs->hooks = *hooks;
    ev_async_init(&rs->async, resolve_async_cb);
    rs->async.data = rs;
    ev_async_start(rs->loop, &rs->async);
    ev_unref(rs->loop); /* an idle resolver does not keep mpt_ctx_run() going */
    return 0;
}

void mpt_resolve_fini(struct mpt_resolver *rs)
{
    struct mpt_resolve_req *r, *next;

    pthread_mutex_lock(&rs->mu);
    r = SLIST_FIRST(&rs->reqs);
    SLIST_INIT(&rs->reqs);
    pthread_mutex_unlock(&rs->mu);
    for (; r; r = next) {
        next = SLIST_NEXT(r, link);
        if (r->has_thread)
            pthread_join(r->th, NULL);
        mpt_free(r->host);
        mpt_free(r);
    }
    while (rs->waiting > 0)
        resolve_release(rs);
    ev_ref(rs->loop); /* undo mpt_resolve_init's ev_unref before stopping */
    ev_async_stop(rs->loop, &rs->async);
    pthread_mutex_destroy(&rs->mu);
}

int mpt_resolve_pending(struct mpt_resolver *rs)
{
    return ev_async_pending(&rs->async);
}

int mpt_resolve_start(struct mpt_resolver *rs, const char *host, uint16_t port, int family,
                      mpt_resolve_done_cb done, void *arg, struct mpt_resolve_req **out)
{
    struct mpt_resolve_req *r = mpt_calloc(1, sizeof *r);

    if (r == NULL)
        return MPT_ENOMEM;
    r->rs = rs;
    r->cb = done;
    r->arg = arg;
    r->port = port;
    r->family = family;
    if ((r->host = mpt_strdup(host)) == NULL) {
        mpt_free(r);
        return MPT_ENOMEM;
    }
    if (lookup(host, family, 1, &r->sa, &r->len) == 0) {
        r->done = 1;
    } else if (strspn(host, "0123456789.:") == strlen(host) && strchr(host, '.') != NULL) {
        /* Looks numeric but is not a valid address (or wrong family). */
        mpt_free(r->host);
        mpt_free(r);
        return MPT_ERESOLVE;
    } else {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256u * 1024u);
        pthread_mutex_lock(&rs->mu);
        int rc = pthread_create(&r->th, &attr, resolve_thread, r);
        if (rc == 0)
            r->has_thread = 1;
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            pthread_mutex_unlock(&rs->mu);
            mpt_free(r->host);
            mpt_free(r);
            return mpt_errno_to_mpt(rc); /* EAGAIN: MPT_ESYS, not "try again" */
        }
        SLIST_INSERT_HEAD(&rs->reqs, r, link);
        *out = r;
        pthread_mutex_unlock(&rs->mu);
        resolve_hold(rs);
        return 0;
    }
    pthread_mutex_lock(&rs->mu);
    SLIST_INSERT_HEAD(&rs->reqs, r, link);
    *out = r;
    pthread_mutex_unlock(&rs->mu);
    resolve_hold(rs);
    ev_async_send(rs->loop, &rs->async);
    return 0;
}

void mpt_resolve_cancel(struct mpt_resolver *rs, struct mpt_resolve_req **req)
{
    if (*req == NULL)
        return;
    pthread_mutex_lock(&rs->mu);
    (*req)->cb = NULL;
    *req = NULL;
    pthread_mutex_unlock(&rs->mu);
    resolve_release(rs); /* nobody waits for the answer any more */
}
