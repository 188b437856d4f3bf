/*
 * The pull-style event API (mpt_ctx_next_event), the thread-safe
 * mpt_ctx_wakeup and the size-versioned struct mpt_callbacks, through the
 * public API on loopback.
 */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

static const char *const lo1[] = {"127.0.0.1"};
static const char *const two_paths[] = {"127.0.0.1", "127.0.0.2"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t pattern(uint64_t off)
{
    return (uint8_t)(off * 7u + (off >> 11));
}

/* A transfer driven only by events: no callback anywhere. */
START_TEST(transfer_driven_by_events_only)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *c, *srv = NULL;
    const uint64_t total = 4u << 20;
    uint64_t sent = 0, got = 0;
    int bad = 0, c_connected = 0, c_closed = 0, s_closed = 0, s_eof = 0, accepts = 0;
    int c_readable_before_connected = 0, events_after_closed = 0, subflow_events = 0;
    int max_per_pass = 0, shut = 0;
    int tag_c, tag_l;
    uint8_t buf[65536];

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, NULL, &tag_l, &l), 0);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), two_paths,
                                 2, NULL, &tag_c, &c),
                     0);
    double deadline = now_s() + 30;
    while (!(c_closed && s_closed) && now_s() < deadline) {
        struct mpt_ctx_event ev = {.size = sizeof ev};
        int n = 0;
        mpt_ctx_run(ctx, 5);
        while (mpt_ctx_next_event(ctx, &ev) == 0) {
            n++;
            if (ev.type == MPT_EVENT_ACCEPT) {
                ck_assert_ptr_eq(ev.listener, l);
                ck_assert_ptr_eq(ev.user, &tag_l);
                ck_assert_ptr_null(ev.socket);
                struct mpt_socket *a;
                while (mpt_accept(l, NULL, NULL, &a) == 0) {
                    srv = a;
                    accepts++;
                }
                continue;
            }
            ck_assert_ptr_nonnull(ev.socket);
            if (ev.socket == c) {
                ck_assert_ptr_eq(ev.user, &tag_c);
                if (c_closed)
                    events_after_closed++;
                switch (ev.type) {
                case MPT_EVENT_CONNECTED:
                    ck_assert_int_eq(ev.status, 0);
                    c_connected = 1;
                    break;
                case MPT_EVENT_READABLE:
                    if (!c_connected)
                        c_readable_before_connected++;
                    while (mpt_recv(c, buf, sizeof buf) > 0)
                        ;
                    break;
                case MPT_EVENT_SUBFLOWS:
                    subflow_events++;
                    break;
                case MPT_EVENT_CLOSED:
                    ck_assert_int_eq(ev.status, 0);
                    c_closed = 1;
                    break;
                default:
                    break;
                }
                if ((ev.type == MPT_EVENT_CONNECTED || ev.type == MPT_EVENT_WRITABLE) &&
                    c_connected) {
                    while (sent < total) {
                        size_t k = sizeof buf;
                        if (k > total - sent)
                            k = (size_t)(total - sent);
                        for (size_t i = 0; i < k; i++)
                            buf[i] = pattern(sent + i);
                        ssize_t w = mpt_send(c, buf, k);
                        if (w <= 0) {
                            ck_assert_int_eq(w, MPT_EAGAIN);
                            break;
                        }
                        sent += (uint64_t)w;
                    }
                    if (sent == total && !shut) {
                        ck_assert_int_eq(mpt_shutdown(c), 0);
                        shut = 1;
                    }
                }
            } else {
                ck_assert_ptr_eq(ev.socket, srv);
                ck_assert_ptr_null(ev.user);
                if (ev.type == MPT_EVENT_READABLE) {
                    ssize_t r;
                    while ((r = mpt_recv(srv, buf, sizeof buf)) > 0) {
                        for (ssize_t i = 0; i < r; i++)
                            bad += buf[i] != pattern(got + (uint64_t)i);
                        got += (uint64_t)r;
                    }
                    if (r == 0 && !s_eof) {
                        s_eof = 1;
                        ck_assert_int_eq(mpt_shutdown(srv), 0);
                    }
                } else if (ev.type == MPT_EVENT_CLOSED) {
                    ck_assert_int_eq(ev.status, 0);
                    s_closed = 1;
                }
            }
        }
        if (n > max_per_pass)
            max_per_pass = n;
    }
    ck_assert_int_eq(accepts, 1);
    ck_assert_int_eq(c_connected, 1);
    ck_assert_int_eq(c_readable_before_connected, 0);
    ck_assert_uint_eq(sent, total);
    ck_assert_uint_eq(got, total);
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(s_eof, 1);
    ck_assert_int_eq(c_closed, 1);
    ck_assert_int_eq(s_closed, 1);
    ck_assert_int_eq(events_after_closed, 0);
    ck_assert_int_ge(subflow_events, 1); /* both subflows came up */
    /* Coalesced: one pass never yields more than every kind of every handle. */
    ck_assert_int_le(max_per_pass, 3 * 6);
    fprintf(stderr, "events: most in one pass %d, subflow events %d\n", max_per_pass,
            subflow_events);
    mpt_close(c);
    mpt_close(srv);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* Events of a released handle are dropped; a refused connect is reported
 * as CONNECTED with the error, then CLOSED. */
START_TEST(released_and_refused)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *c, *c2;
    struct mpt_ctx_event ev = {.size = sizeof ev};
    int got_connected = 0, got_closed = 0, from_released = 0;

    ck_assert_int_eq(mpt_ctx_next_event(NULL, &ev), MPT_EINVAL);
    ck_assert_int_eq(mpt_ctx_next_event((struct mpt_ctx *)&ev, NULL), MPT_EINVAL);
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_ctx_next_event(ctx, &ev), MPT_EAGAIN);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, NULL, NULL, &l), 0);
    int port = mpt_listener_port(l);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)port, lo1, 1, NULL, NULL, &c), 0);
    for (int i = 0; i < 100; i++)
        mpt_ctx_run(ctx, 5); /* the CONNECTED and ACCEPT events are queued now */
    ck_assert_int_eq(mpt_abort(c), 0);
    mpt_listener_close(l); /* its ACCEPT goes with it */
    while (mpt_ctx_next_event(ctx, &ev) == 0)
        from_released++;
    ck_assert_int_eq(from_released, 0);

    /* Nobody listens on the port now. */
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)port, lo1, 1, NULL, NULL, &c2),
                     0);
    for (int i = 0; i < 400 && !got_closed; i++) {
        mpt_ctx_run(ctx, 5);
        while (mpt_ctx_next_event(ctx, &ev) == 0) {
            ck_assert_ptr_eq(ev.socket, c2);
            if (ev.type == MPT_EVENT_CONNECTED) {
                ck_assert_int_eq(ev.status, MPT_ECONNREFUSED);
                ck_assert_int_eq(got_closed, 0);
                got_connected = 1;
            } else if (ev.type == MPT_EVENT_CLOSED) {
                ck_assert_int_eq(ev.status, MPT_ECONNREFUSED);
                got_closed = 1;
            }
        }
    }
    ck_assert_int_eq(got_connected, 1);
    ck_assert_int_eq(got_closed, 1);
    mpt_close(c2);
    mpt_ctx_free(ctx);
}
END_TEST

struct waker {
    struct mpt_ctx *ctx;
    int delay_ms;
};

static void *waker_main(void *arg)
{
    struct waker *w = arg;
    usleep((useconds_t)w->delay_ms * 1000);
    for (int i = 0; i < 3; i++) /* coalesced into one */
        ck_assert_int_eq(mpt_ctx_wakeup(w->ctx), 0);
    return NULL;
}

START_TEST(wakeup_from_another_thread)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_ctx_event ev = {.size = sizeof ev};
    pthread_t th;

    ck_assert_int_eq(mpt_ctx_wakeup(NULL), MPT_EINVAL);
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    /* Something to keep mpt_ctx_run(ctx, -1) running. */
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, NULL, NULL, &l), 0);
    struct waker w = {ctx, 100};
    ck_assert_int_eq(pthread_create(&th, NULL, waker_main, &w), 0);
    double t0 = now_s();
    ck_assert_int_eq(mpt_ctx_run(ctx, 10000), 0);
    double took = now_s() - t0;
    pthread_join(th, NULL);
    ck_assert_double_ge(took, 0.05);
    ck_assert_double_lt(took, 2.0); /* not the 10 s timeout */
    ck_assert_int_eq(mpt_ctx_next_event(ctx, &ev), 0);
    ck_assert_int_eq(ev.type, MPT_EVENT_WAKEUP);
    ck_assert_ptr_null(ev.socket);
    ck_assert_int_eq(mpt_ctx_next_event(ctx, &ev), MPT_EAGAIN);

    /* Unbounded run: the wake-up ends it too. */
    w.delay_ms = 50;
    ck_assert_int_eq(pthread_create(&th, NULL, waker_main, &w), 0);
    t0 = now_s();
    ck_assert_int_eq(mpt_ctx_run(ctx, -1), 0);
    ck_assert_double_lt(now_s() - t0, 2.0);
    pthread_join(th, NULL);
    ck_assert_int_eq(mpt_ctx_next_event(ctx, &ev), 0);
    ck_assert_int_eq(ev.type, MPT_EVENT_WAKEUP);

    /* A foreign loop: the context's fd becomes readable. */
    int fd = mpt_ctx_fd(ctx);
    ck_assert_int_ge(fd, 0);
    mpt_ctx_process(ctx);
    ck_assert_int_eq(pthread_create(&th, NULL, waker_main, &w), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    t0 = now_s();
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    ck_assert_double_lt(now_s() - t0, 2.0);
    pthread_join(th, NULL);
    ck_assert_int_eq(mpt_ctx_timeout(ctx), 0);
    ck_assert_int_eq(mpt_ctx_process(ctx), 0);
    ck_assert_int_eq(mpt_ctx_next_event(ctx, &ev), 0);
    ck_assert_int_eq(ev.type, MPT_EVENT_WAKEUP);
    ck_assert_int_eq(mpt_ctx_next_event(ctx, &ev), MPT_EAGAIN);
    /* And the fd is quiet again, not stuck readable. */
    ck_assert_int_eq(poll(&p, 1, 50), 0);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* A newer program's struct mpt_callbacks: larger, with its own members. */
struct callbacks_v9 {
    struct mpt_callbacks known;
    void (*future)(void);
};

static void noop_future(void) {}

START_TEST(callbacks_versioned_by_size)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *c;
    struct callbacks_v9 v9;

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, NULL, NULL, &l), 0);
    uint16_t port = (uint16_t)mpt_listener_port(l);
    memset(&v9, 0, sizeof v9);
    /* Smaller than the 0.1.0 struct: not from sizeof. */
    ck_assert_int_eq(mpt_connect_sized(ctx, "127.0.0.1", port, lo1, 1, &v9.known, 8, NULL, &c),
                     MPT_EINVAL);
    /* Larger with a member this library cannot call: refused, not ignored. */
    v9.future = noop_future;
    ck_assert_int_eq(mpt_connect_sized(ctx, "127.0.0.1", port, lo1, 1, &v9.known, sizeof v9,
                                       NULL, &c),
                     MPT_EINVAL);
    v9.future = NULL;
    ck_assert_int_eq(mpt_connect_sized(ctx, "127.0.0.1", port, lo1, 1, &v9.known, sizeof v9,
                                       NULL, &c),
                     0);
    ck_assert_int_eq(mpt_set_callbacks_sized(c, &v9.known, 8, NULL), MPT_EINVAL);
    v9.future = noop_future;
    ck_assert_int_eq(mpt_set_callbacks_sized(c, &v9.known, sizeof v9, NULL), MPT_EINVAL);
    ck_assert_int_eq((mpt_set_callbacks)(c, &v9.known, NULL), 0); /* the 0.1.0 symbol */
    ck_assert_int_eq(mpt_set_callbacks(c, NULL, NULL), 0);
    ck_assert_int_eq(mpt_accept_sized(l, &v9.known, 8, NULL, &c), MPT_EINVAL);
    mpt_abort(c);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io_events");
    TCase *tc = tcase_create("io_events");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, transfer_driven_by_events_only);
    tcase_add_test(tc, released_and_refused);
    tcase_add_test(tc, wakeup_from_another_thread);
    tcase_add_test(tc, callbacks_versioned_by_size);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
