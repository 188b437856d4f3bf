/*
 * Public API tests on loopback: every argument and state error, connection
 * refused, the blocking layer, driving libmpt from poll() through
 * mpt_ctx_fd(), the trace, many simultaneous connections, and a join with a
 * wrong token refused by the server.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

#include "core/frame.h"
#include "random.h"

/* Internal (libmpt/util.h, subflow.h): the errno -> MPT_E* map every syscall site uses,
 * and the kernel socket of subflow index sf. */
int mpt_errno_to_mpt(int e);
int mpt_io_test_subflow_fd(struct mpt_socket *s, int sf);
unsigned mpt_io_test_src_tests(const struct mpt_ctx *ctx);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *const lo1[] = {"127.0.0.1"};

/* A callback-driven echo server: everything read is written back; end of
 * stream is answered with end of stream. */
struct echo {
    int accepted;
    int closed;
};

static void echo_readable(struct mpt_socket *s, void *user)
{
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = mpt_recv(s, buf, sizeof buf);
        if (n == 0) {
            mpt_shutdown(s);
            return;
        }
        if (n < 0)
            return;
        /* Echo; the test payloads fit the send buffer. */
        ck_assert_int_eq(mpt_send(s, buf, (size_t)n), n);
    }
}

static void echo_closed(struct mpt_socket *s, int status, void *user)
{
    ((struct echo *)user)->closed++;
    mpt_close(s);
}

static void echo_accept(struct mpt_listener *l, void *user)
{
    struct echo *e = user;
    struct mpt_callbacks cb = {0};
    struct mpt_socket *s;

    cb.readable = echo_readable;
    cb.closed = echo_closed;
    while (mpt_accept(l, &cb, e, &s) == 0) {
        e->accepted++;
        echo_readable(s, e);
    }
}

/* An echo server on a thread of its own, with its own context and loop: a
 * client tested on another loop then has nothing of the server's keeping
 * its loop alive. */
struct srv_thread {
    pthread_t th;
    atomic_int port, stop;
};

static void *srv_main(void *arg)
{
    struct srv_thread *t = arg;
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct echo e = {0, 0};

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    atomic_store(&t->port, mpt_listener_port(l));
    while (!atomic_load(&t->stop))
        mpt_ctx_run(ctx, 20);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
    return NULL;
}

static int srv_thread_start(struct srv_thread *t)
{
    atomic_init(&t->port, 0);
    atomic_init(&t->stop, 0);
    ck_assert_int_eq(pthread_create(&t->th, NULL, srv_main, t), 0);
    while (atomic_load(&t->port) == 0)
        usleep(1000);
    return atomic_load(&t->port);
}

static void srv_thread_stop(struct srv_thread *t)
{
    atomic_store(&t->stop, 1);
    pthread_join(t->th, NULL);
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd); /* nobody listens there now */
    return ntohs(a.sin_port);
}

START_TEST(argument_errors)
{
    struct mpt_ctx *ctx;
    struct mpt_socket *s = (void *)1;
    struct mpt_listener *l = (void *)1;
    struct mpt_config cfg;
    struct mpt_info info;
    static const char *const bad_path[] = {""};
    static const char *const bad_addr[] = {"not-an-address"};

    ck_assert_int_eq(mpt_ctx_new(NULL, NULL, NULL), MPT_EINVAL);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.max_subflows = 99;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), MPT_EINVAL);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.scheduler = "no-such-scheduler";
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), MPT_ENOTFOUND);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.scheduler = "minrtt";
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    mpt_ctx_free(ctx);
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);

    ck_assert_int_eq(mpt_connect(NULL, "127.0.0.1", 1, NULL, 0, NULL, NULL, &s), MPT_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(mpt_connect(ctx, NULL, 1, NULL, 0, NULL, NULL, &s), MPT_EINVAL);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", 0, NULL, 0, NULL, NULL, &s), MPT_EINVAL);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", 1, NULL, 0, NULL, NULL, NULL), MPT_EINVAL);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", 1, NULL, 1, NULL, NULL, &s), MPT_EINVAL);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", 1, bad_path, 1, NULL, NULL, &s), MPT_EINVAL);
    ck_assert_int_eq(mpt_connect(ctx, "999.1.2.3", 1, NULL, 0, NULL, NULL, &s), MPT_ERESOLVE);

    ck_assert_int_eq(mpt_listen(NULL, NULL, 0, 0, NULL, NULL, &l), MPT_EINVAL);
    ck_assert_ptr_null(l);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, NULL, NULL, NULL), MPT_EINVAL);
    ck_assert_int_eq(mpt_listen(ctx, bad_addr, 1, 0, NULL, NULL, &l), MPT_ERESOLVE);
    ck_assert_int_eq(mpt_accept(NULL, NULL, NULL, &s), MPT_EINVAL);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, NULL, NULL, &l), 0);
    ck_assert_int_eq(mpt_accept(l, NULL, NULL, &s), MPT_EAGAIN);
    /* The same port again: in use. */
    struct mpt_listener *l2;
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, (uint16_t)mpt_listener_port(l), NULL, NULL, &l2),
                     MPT_EADDRINUSE);
    ck_assert_ptr_null(l2);
    /* An address that is not on this host (TEST-NET-1). */
    static const char *const not_local[] = {"192.0.2.1"};
    ck_assert_int_eq(mpt_listen(ctx, not_local, 1, 0, NULL, NULL, &l2), MPT_EADDRNOTAVAIL);

    ck_assert_int_eq(mpt_send(NULL, "x", 1), MPT_EINVAL);
    ck_assert_int_eq(mpt_recv(NULL, &info, 1), MPT_EINVAL);
    ck_assert_int_eq(mpt_shutdown(NULL), MPT_EINVAL);
    ck_assert_int_eq(mpt_close(NULL), MPT_EINVAL);
    ck_assert_int_eq(mpt_abort(NULL), MPT_EINVAL);
    ck_assert_int_eq(mpt_get_info(NULL, &info), MPT_EINVAL);
    ck_assert_int_eq(mpt_get_subflows(NULL, NULL, 0), MPT_EINVAL);
    ck_assert_int_eq(mpt_add_path(NULL, "127.0.0.1"), MPT_EINVAL);
    ck_assert_int_eq(mpt_remove_path(NULL, 0), MPT_EINVAL);
    ck_assert_int_eq(mpt_set_backup(NULL, 0, 1), MPT_EINVAL);
    ck_assert_int_eq(mpt_set_scheduler(NULL, "minrtt"), MPT_EINVAL);
    ck_assert_int_eq(mpt_set_callbacks(NULL, NULL, NULL), MPT_EINVAL);
    ck_assert_int_eq(mpt_set_trace_file(NULL, NULL), MPT_EINVAL);
    ck_assert_int_eq(mpt_ctx_run(NULL, 0), MPT_EINVAL);
    ck_assert_int_eq(mpt_blocking_send_all(NULL, "x", 1, 10), MPT_EINVAL);
    ck_assert_int_eq(mpt_blocking_recv(NULL, &info, 1, 10), MPT_EINVAL);
    ck_assert_int_eq(mpt_blocking_close(NULL, 10), MPT_EINVAL);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", 0, NULL, 0, 10, &s), MPT_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(mpt_strerror(MPT_EPIPE), "sending side already shut down");

    /* State errors before the handshake finishes. */
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), NULL, 0,
                                 NULL, NULL, &s),
                     0);
    ck_assert_int_eq(mpt_send(s, "x", 1), MPT_ESTATE);
    ck_assert_int_eq(mpt_recv(s, &info, 1), MPT_ESTATE);
    ck_assert_int_eq(mpt_shutdown(s), MPT_ESTATE);
    ck_assert_int_eq(mpt_set_scheduler(s, "nope"), MPT_ENOTFOUND);
    ck_assert_int_eq(mpt_set_scheduler(s, "roundrobin"), 0);
    info.size = sizeof info;
    ck_assert_int_eq(mpt_get_info(s, &info), 0);
    ck_assert_int_eq(info.state, MPT_STATE_CONNECTING);
    ck_assert_int_eq(mpt_recv(s, NULL, 1), MPT_EINVAL);
    ck_assert_int_eq(mpt_abort(s), 0);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

struct refused {
    int connected, closed;
    int down, down_error, down_errno, down_path;
};

static void ref_down(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    struct refused *r = user;
    r->down++;
    r->down_error = sf->fail_error;
    r->down_errno = sf->sys_errno;
    r->down_path = sf->path_id;
}

static void ref_connected(struct mpt_socket *s, int status, void *user)
{
    ((struct refused *)user)->connected = status;
}

static void ref_closed(struct mpt_socket *s, int status, void *user)
{
    ((struct refused *)user)->closed = status ? status : 1;
}

START_TEST(connect_refused)
{
    struct mpt_ctx *ctx;
    struct mpt_socket *s;
    struct refused r = {0, 0, 0, 0, 0, -2};
    struct mpt_callbacks cb = {0};

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    cb.connected = ref_connected;
    cb.closed = ref_closed;
    cb.subflow_down = ref_down;
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)free_port(), NULL, 0, &cb, &r, &s),
                     0);
    double t0 = now_s();
    while (r.closed == 0 && now_s() - t0 < 15)
        mpt_ctx_run(ctx, 100);
    /* The cause, not "system call failed". */
    ck_assert_int_eq(r.connected, MPT_ECONNREFUSED);
    ck_assert_int_eq(r.closed, MPT_ECONNREFUSED);
    ck_assert_int_eq(mpt_send(s, "x", 1), MPT_ECONNREFUSED);
    struct mpt_info info = {.size = sizeof info};
    ck_assert_int_eq(mpt_get_info(s, &info), 0);
    ck_assert_int_eq(info.state, MPT_STATE_ABORTED);
    ck_assert_int_eq(info.error, MPT_ECONNREFUSED);
    ck_assert_int_eq(info.sys_errno, ECONNREFUSED);
    /* The path that failed says so too. */
    ck_assert_int_eq(r.down, 1);
    ck_assert_int_eq(r.down_error, MPT_ECONNREFUSED);
    ck_assert_int_eq(r.down_errno, ECONNREFUSED);
    ck_assert_int_eq(r.down_path, 0);
    ck_assert_int_eq(mpt_close(s), 0);
    mpt_ctx_free(ctx);

    /* The blocking layer reports it as an error too. */
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)free_port(), NULL, 0, 10000,
                                          &s),
                     MPT_ECONNREFUSED);
    ck_assert_ptr_null(s);
    mpt_ctx_free(ctx);
}
END_TEST

START_TEST(errno_map)
{
    static const struct {
        int e, mpt;
    } map[] = {
        {ECONNREFUSED, MPT_ECONNREFUSED}, {EADDRINUSE, MPT_EADDRINUSE},
        {EADDRNOTAVAIL, MPT_EADDRNOTAVAIL}, {ENODEV, MPT_ENODEV},
        {ENETUNREACH, MPT_ENETUNREACH}, {ENETDOWN, MPT_ENETUNREACH},
        {EHOSTUNREACH, MPT_EHOSTUNREACH}, {EACCES, MPT_EPERM}, {EPERM, MPT_EPERM},
        {EMFILE, MPT_EMFILE}, {ENFILE, MPT_EMFILE}, {ECONNRESET, MPT_ECONNRESET},
        {EAFNOSUPPORT, MPT_EAFNOSUPPORT}, {ETIMEDOUT, MPT_ETIMEDOUT}, {ENOMEM, MPT_ENOMEM},
        {ENOTSUP, MPT_ENOTSUP}, {EPIPE, MPT_ECLOSED},
        /* Never the codes that mean something else to the application. */
        {EAGAIN, MPT_ESYS}, {EINVAL, MPT_ESYS}, {ENOENT, MPT_ESYS},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        ck_assert_msg(mpt_errno_to_mpt(map[i].e) == map[i].mpt, "errno %d: %s, expected %s",
                      map[i].e, mpt_err_name(mpt_errno_to_mpt(map[i].e)),
                      mpt_err_name(map[i].mpt));
}
END_TEST

START_TEST(blocking_echo_and_state_errors)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct echo e = {0, 0};
    static const char *const paths[] = {"127.0.0.1", "127.0.0.2/backup"};
    char buf[100];

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "localhost", (uint16_t)mpt_listener_port(l),
                                          paths, 2, 5000, &s),
                     0);
    ck_assert_int_eq(mpt_blocking_send_all(s, "hello, world", 12, 5000), 12);
    size_t got = 0;
    while (got < 12) {
        ssize_t n = mpt_blocking_recv(s, buf + got, sizeof buf - got, 5000);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    ck_assert(memcmp(buf, "hello, world", 12) == 0);
    ck_assert_int_eq(mpt_blocking_recv(s, buf, sizeof buf, 50), MPT_ETIMEDOUT);

    /* Introspection while established. */
    mpt_ctx_run(ctx, 300);
    struct mpt_info info = {.size = sizeof info};
    ck_assert_int_eq(mpt_get_info(s, &info), 0);
    ck_assert_int_eq(info.state, MPT_STATE_ESTABLISHED);
    ck_assert_uint_ge(info.bytes_acked, 12);
    ck_assert_uint_ge(info.bytes_received, 12);
    struct mpt_subflow_info sfi[8];
    int nsf = mpt_get_subflows(s, sfi, 8);
    ck_assert_int_ge(nsf, 1);
    ck_assert_int_eq(sfi[0].remote.ss_family, AF_INET);
    ck_assert_int_eq(mpt_set_scheduler(s, "minrtt"), 0); /* live switch */
    ck_assert_int_eq(mpt_remove_path(s, 7), MPT_ENOTFOUND);
    ck_assert_int_eq(mpt_set_backup(s, 7, 1), MPT_ENOTFOUND);
    ck_assert_int_eq(mpt_add_path(s, ""), MPT_EINVAL);

    ck_assert_int_eq(mpt_shutdown(s), 0);
    ck_assert_int_eq(mpt_shutdown(s), MPT_EPIPE);
    ck_assert_int_eq(mpt_send(s, "x", 1), MPT_EPIPE);
    ck_assert_int_eq(mpt_blocking_send_all(s, "x", 1, 100), MPT_EPIPE);
    /* The echo server answers our end of stream with its own. */
    ck_assert_int_eq(mpt_blocking_recv(s, buf, sizeof buf, 5000), 0);
    ck_assert_int_eq(mpt_blocking_close(s, 5000), 0);
    ck_assert_int_eq(e.accepted, 1);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* mpt_blocking_close against a peer that never ends its side: on timeout
 * it aborts (the peer sees FASTCLOSE), as documented, instead of leaving a
 * close running in the background. */
struct quiet {
    struct mpt_socket *s;
    int closed, status;
};

static void quiet_closed(struct mpt_socket *s, int status, void *user)
{
    struct quiet *q = user;
    q->closed = 1;
    q->status = status;
}

static void quiet_accept(struct mpt_listener *l, void *user)
{
    struct quiet *q = user;
    struct mpt_callbacks cb = {.closed = quiet_closed};
    struct mpt_socket *s;
    while (mpt_accept(l, &cb, q, &s) == 0)
        q->s = s; /* never reads, never shuts down */
}

START_TEST(blocking_close_aborts_on_timeout)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct quiet q = {NULL, 0, 0};

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, quiet_accept, &q, &l), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), NULL,
                                          0, 5000, &s),
                     0);
    ck_assert_int_eq(mpt_blocking_send_all(s, "unread", 6, 5000), 6);
    double t0 = now_s();
    ck_assert_int_eq(mpt_blocking_close(s, 300), MPT_ETIMEDOUT);
    ck_assert(now_s() - t0 >= 0.29);
    t0 = now_s();
    while (!q.closed && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_int_eq(q.closed, 1);
    ck_assert_int_eq(q.status, MPT_ERESET); /* aborted, not left closing */
    struct mpt_info info = {.size = sizeof info};
    ck_assert_int_eq(mpt_get_info(q.s, &info), 0);
    ck_assert_int_eq(info.state, MPT_STATE_ABORTED);
    mpt_abort(q.s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* The server aborts while the client is not looking; the client's next
 * writes then fail (the server's socket is gone) before it has read the
 * FASTCLOSE waiting in its receive queue. The abort must still reach it as
 * MPT_ERESET, not as a path failure that retries until MPT_ENOPATH. */
static void closed_status(struct mpt_socket *s, int status, void *user)
{
    (void)s;
    *(int *)user = status;
}

START_TEST(abort_read_before_write_error)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct quiet q = {NULL, 0, 0};
    struct mpt_callbacks cb = {.closed = closed_status};
    static char chunk[16384];
    int status = 1;

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, quiet_accept, &q, &l), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), NULL,
                                          0, 5000, &s),
                     0);
    double t0 = now_s();
    while (q.s == NULL && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_ptr_nonnull(q.s);
    mpt_set_callbacks(s, &cb, &status);
    ck_assert_int_eq(mpt_abort(q.s), 0); /* FASTCLOSE written, socket closed */
    /* Without running the loop: the first write draws the closed socket's
     * RST, the next ones fail on it. */
    for (int i = 0; i < 4; i++) {
        struct timespec d = {0, 30 * 1000 * 1000};
        nanosleep(&d, NULL);
        (void)mpt_send(s, chunk, sizeof chunk);
    }
    t0 = now_s();
    while (status == 1 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_msg(status == MPT_ERESET, "client saw %s after %.3f s", mpt_err_name(status),
                  now_s() - t0);
    ck_assert(now_s() - t0 < 1.0);
    mpt_close(s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* Another event loop (poll) drives libmpt through mpt_ctx_fd. */
struct ext {
    int connected;
    size_t got;
    char buf[64];
};

static void ext_connected(struct mpt_socket *s, int status, void *user)
{
    ((struct ext *)user)->connected = status == 0 ? 1 : -1;
    ck_assert_int_eq(mpt_send(s, "ping over poll", 14), 14);
}

static void ext_readable(struct mpt_socket *s, void *user)
{
    struct ext *x = user;
    ssize_t n;
    while ((n = mpt_recv(s, x->buf + x->got, sizeof x->buf - x->got)) > 0)
        x->got += (size_t)n;
}

START_TEST(external_loop_fd)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct echo e = {0, 0};
    struct ext x;
    struct mpt_callbacks cb = {0};

    memset(&x, 0, sizeof x);
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    int fd = mpt_ctx_fd(ctx);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(mpt_ctx_fd(ctx), fd);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    cb.connected = ext_connected;
    cb.readable = ext_readable;
    /* A name: resolved on the helper thread, whose wake-up must reach poll(). */
    ck_assert_int_eq(mpt_connect(ctx, "localhost", (uint16_t)mpt_listener_port(l), lo1, 1, &cb,
                                 &x, &s),
                     0);
    double t0 = now_s();
    while (x.got < 14 && now_s() - t0 < 10) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int to = mpt_ctx_timeout(ctx);
        ck_assert_int_ge(to, -1);
        poll(&p, 1, to < 0 || to > 2000 ? 2000 : to);
        ck_assert_int_eq(mpt_ctx_process(ctx), 0);
    }
    ck_assert_int_eq(x.connected, 1);
    ck_assert_uint_eq(x.got, 14);
    ck_assert(now_s() - t0 < 1.5); /* no wake-up was missed */
    ck_assert(memcmp(x.buf, "ping over poll", 14) == 0);
    mpt_abort(s);
    mpt_ctx_free(ctx);
}
END_TEST

/* A client that sends "hi", shuts down, reads the echo and its end of
 * stream, and releases itself when the connection is closed. */
struct hi {
    int connected, closed, status;
    size_t got;
    char buf[16];
};

static void hi_connected(struct mpt_socket *s, int status, void *user)
{
    struct hi *h = user;
    h->connected = status == 0 ? 1 : status;
    if (status == 0) {
        ck_assert_int_eq(mpt_send(s, "hi", 2), 2);
        ck_assert_int_eq(mpt_shutdown(s), 0);
    }
}

static void hi_readable(struct mpt_socket *s, void *user)
{
    struct hi *h = user;
    ssize_t n;
    while ((n = mpt_recv(s, h->buf + h->got, sizeof h->buf - h->got)) > 0)
        h->got += (size_t)n;
}

static void hi_closed(struct mpt_socket *s, int status, void *user)
{
    struct hi *h = user;
    h->closed = 1;
    h->status = status;
    mpt_close(s);
}

static const struct mpt_callbacks hi_cb = {
    .connected = hi_connected,
    .readable = hi_readable,
    .closed = hi_closed,
};

static void check_hi(const struct hi *h)
{
    ck_assert_int_eq(h->connected, 1);
    ck_assert_int_eq(h->closed, 1);
    ck_assert_int_eq(h->status, 0);
    ck_assert_uint_eq(h->got, 2);
    ck_assert(memcmp(h->buf, "hi", 2) == 0);
}

/* A host name on the application's own libev loop: ev_run() must not
 * return while the lookup is pending (it once returned at once, with no
 * callback ever called), and must return once everything is over. */
START_TEST(resolve_keeps_app_loop_alive)
{
    struct srv_thread st;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mpt_ctx *ctx;
    struct mpt_socket *s;
    struct hi h;

    memset(&h, 0, sizeof h);
    int port = srv_thread_start(&st);
    ck_assert_ptr_nonnull(loop);
    ck_assert_int_eq(mpt_ctx_new(&ctx, loop, NULL), 0);
    double t0 = now_s();
    ev_run(loop, 0); /* an idle context keeps nothing alive */
    ck_assert(now_s() - t0 < 0.5);
    ck_assert_int_eq(mpt_connect(ctx, "localhost", (uint16_t)port, lo1, 1, &hi_cb, &h, &s), 0);
    t0 = now_s();
    ev_run(loop, 0);
    check_hi(&h);
    ck_assert(now_s() - t0 < 10);
    t0 = now_s();
    ev_run(loop, 0); /* and the resolver, idle again, neither */
    ck_assert(now_s() - t0 < 0.5);
    mpt_ctx_free(ctx);
    ev_loop_destroy(loop);
    srv_thread_stop(&st);
}
END_TEST

/* The same with the context's own loop and mpt_ctx_run(ctx, -1). */
START_TEST(resolve_keeps_ctx_run_alive)
{
    struct srv_thread st;
    struct mpt_ctx *ctx;
    struct mpt_socket *s;
    struct hi h;

    memset(&h, 0, sizeof h);
    int port = srv_thread_start(&st);
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_connect(ctx, "localhost", (uint16_t)port, lo1, 1, &hi_cb, &h, &s), 0);
    double t0 = now_s();
    ck_assert_int_eq(mpt_ctx_run(ctx, -1), 0);
    check_hi(&h);
    ck_assert(now_s() - t0 < 10);
    /* A lookup abandoned by its socket holds nothing either. */
    memset(&h, 0, sizeof h);
    ck_assert_int_eq(mpt_connect(ctx, "localhost", (uint16_t)port, lo1, 1, &hi_cb, &h, &s), 0);
    ck_assert_int_eq(mpt_abort(s), 0);
    t0 = now_s();
    ck_assert_int_eq(mpt_ctx_run(ctx, -1), 0);
    ck_assert(now_s() - t0 < 0.5);
    ck_assert_int_eq(h.connected, 0);
    mpt_ctx_free(ctx);
    srv_thread_stop(&st);
}
END_TEST

static int trace_lines, trace_sf_up, trace_bad;

static void trace_cb(const char *line, size_t len, void *user)
{
    trace_lines++;
    if (strlen(line) != len || line[0] != '{' || line[len - 1] != '}')
        trace_bad++;
    if (strstr(line, "\"ev\":\"sf_up\""))
        trace_sf_up++;
}

START_TEST(trace_callback_and_file)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct echo e = {0, 0};
    char path[] = "/tmp/mpt-trace-XXXXXX";
    int tfd = mkstemp(path);

    ck_assert_int_ge(tfd, 0);
    close(tfd);
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_set_trace_callback(ctx, trace_cb, NULL), 0);
    ck_assert_int_eq(mpt_set_trace_file(ctx, path), 0);
    ck_assert_int_eq(mpt_set_trace_file(ctx, "/nonexistent-dir/x"), MPT_ESYS);
    ck_assert_int_eq(mpt_set_trace_file(ctx, path), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), NULL,
                                          0, 5000, &s),
                     0);
    ck_assert_int_eq(mpt_blocking_send_all(s, "abc", 3, 5000), 3);
    char b[8];
    ck_assert_int_eq(mpt_blocking_recv(s, b, sizeof b, 5000), 3);
    mpt_abort(s);
    mpt_ctx_free(ctx);
    ck_assert_int_gt(trace_lines, 5);
    ck_assert_int_eq(trace_bad, 0);
    ck_assert_int_ge(trace_sf_up, 2); /* both ends */
    FILE *fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    int lines = 0, c;
    while ((c = fgetc(fp)) != EOF)
        lines += c == '\n';
    fclose(fp);
    unlink(path);
    ck_assert_int_ge(lines, trace_lines);
}
END_TEST

/* Many connections at once: each client sends 16 KiB and shuts down; the
 * server counts bytes and ends of stream. */
#define NCONN 128
struct many {
    int accepted, eofs, connected, failed, last_error;
    uint64_t bytes;
};

static void many_srv_readable(struct mpt_socket *s, void *user)
{
    struct many *m = user;
    uint8_t buf[32768];
    for (;;) {
        ssize_t n = mpt_recv(s, buf, sizeof buf);
        if (n > 0) {
            m->bytes += (uint64_t)n;
            continue;
        }
        if (n == 0) {
            m->eofs++;
            mpt_close(s);
        }
        return;
    }
}

static void many_accept(struct mpt_listener *l, void *user)
{
    struct many *m = user;
    struct mpt_callbacks cb = {0};
    struct mpt_socket *s;

    cb.readable = many_srv_readable;
    while (mpt_accept(l, &cb, m, &s) == 0) {
        m->accepted++;
        many_srv_readable(s, m);
    }
}

static void many_connected(struct mpt_socket *s, int status, void *user)
{
    struct many *m = user;
    static uint8_t payload[16384];
    if (status < 0) {
        m->failed++;
        m->last_error = status;
        return;
    }
    m->connected++;
    ck_assert_int_eq(mpt_send(s, payload, sizeof payload), (ssize_t)sizeof payload);
    ck_assert_int_eq(mpt_close(s), 0); /* graceful: buffered data still goes out */
}

START_TEST(many_connections)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct many m;
    struct mpt_callbacks cb = {0};
    struct mpt_config cfg;
    static const char *const paths[] = {"127.0.0.1", "127.0.0.2"};

    memset(&m, 0, sizeof m);
    /* 256 handshakes at once take longer than the 5 s default on a loaded
     * machine under Valgrind: this test is about many connections working,
     * the handshake timeout is test_io_limits' */
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.handshake_timeout_ms = 60000;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, many_accept, &m, &l), 0);
    cb.connected = many_connected;
    double t0 = now_s();
    for (int i = 0; i < NCONN; i++) {
        struct mpt_socket *s;
        ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), paths, 2,
                                     &cb, &m, &s),
                         0);
    }
    /* The burst tests each source address once (a test stays good for 1 s),
     * not twice per connection. */
    unsigned tests = mpt_io_test_src_tests(ctx);
    ck_assert_uint_le(tests, 2 * (1 + (unsigned)(now_s() - t0)));
    ck_assert_uint_ge(tests, 2);
    t0 = now_s();
    while (m.eofs < NCONN && m.failed == 0 && now_s() - t0 < 120)
        mpt_ctx_run(ctx, 100);
    ck_assert_msg(m.failed == 0, "%d of %d connections failed, the last with %s", m.failed, NCONN,
                  mpt_strerror(m.last_error));
    ck_assert_int_eq(m.connected, NCONN);
    ck_assert_int_eq(m.accepted, NCONN);
    ck_assert_int_eq(m.eofs, NCONN);
    ck_assert_uint_eq(m.bytes, (uint64_t)NCONN * 16384);
    /* Everything closes and frees itself. */
    t0 = now_s();
    mpt_ctx_run(ctx, 500);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* The engine's randomness comes in batches of kernel CSPRNG output: bytes
 * are handed out once, and a forked child never hands out what its parent
 * will (both would otherwise pick the same keys and nonces next). */
START_TEST(random_batches_are_not_shared_across_fork)
{
    struct mpt_random r;
    uint8_t a[16], b[16], mine[16], childs[16];
    int p[2];

    mpt_random_init(&r);
    mpt_random_fill(&r, a, sizeof a);
    mpt_random_fill(&r, b, sizeof b);
    ck_assert(memcmp(a, b, sizeof a) != 0);
    ck_assert_uint_eq(r.draws, 1); /* one getrandom() for both */
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        mpt_random_fill(&r, childs, sizeof childs);
        _exit(write(p[1], childs, sizeof childs) == (ssize_t)sizeof childs ? 0 : 1);
    }
    mpt_random_fill(&r, mine, sizeof mine);
    ck_assert_int_eq(read(p[0], childs, sizeof childs), (ssize_t)sizeof childs);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert(memcmp(mine, childs, sizeof mine) != 0);
    ck_assert_uint_eq(r.draws, 1); /* the parent's batch is still its own */
    uint8_t big[4096]; /* more than a quarter batch: straight from the kernel */
    memset(big, 0, sizeof big);
    mpt_random_fill(&r, big, sizeof big);
    ck_assert(memcmp(big, big + 2048, 2048) != 0);
    close(p[0]);
    close(p[1]);
    mpt_random_wipe(&r);
}
END_TEST

/* Every subflow carries the configured TCP options, on the server too,
 * where (on Linux) the accepted socket inherits them from the listener
 * instead of setting them per accepted subflow. */
static struct mpt_socket *opt_srv;

static void opt_accept(struct mpt_listener *l, void *user)
{
    (void)user;
    while (opt_srv == NULL && mpt_accept(l, NULL, NULL, &opt_srv) == 0)
        ;
}

static void opt_connected(struct mpt_socket *s, int status, void *user)
{
    (void)s;
    *(int *)user = status == 0 ? 1 : status;
}

static void check_sock_opts(int fd, const char *side)
{
    int v = 0;
    char cc[16] = {0};
    socklen_t vl = sizeof v, cl = sizeof cc - 1;

    ck_assert_msg(fd >= 0, "%s: no subflow socket", side);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    ck_assert_msg(v != 0, "%s: TCP_NODELAY not set", side);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, &vl), 0);
    ck_assert_msg(v == 7000, "%s: TCP_USER_TIMEOUT %d, not 7000", side, v);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &vl), 0);
    ck_assert_msg(v == 65536, "%s: TCP_NOTSENT_LOWAT %d, not 65536", side, v);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &cl), 0);
    ck_assert_msg(strcmp(cc, "cubic") == 0, "%s: TCP_CONGESTION %s, not cubic", side, cc);
}

START_TEST(accepted_subflow_options)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *c;
    struct mpt_callbacks cb = {0};
    struct mpt_config cfg;
    int up = 0;

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.user_timeout_ms = 7000;
    cfg.notsent_lowat = 65536;
    cfg.tcp_congestion = "cubic";
    opt_srv = NULL;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, opt_accept, NULL, &l), 0);
    cb.connected = opt_connected;
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), lo1, 1, &cb,
                                 &up, &c),
                     0);
    double t0 = now_s();
    while ((up == 0 || opt_srv == NULL) && now_s() - t0 < 10)
        mpt_ctx_run(ctx, 50);
    ck_assert_int_eq(up, 1);
    ck_assert_ptr_nonnull(opt_srv);
    check_sock_opts(mpt_io_test_subflow_fd(c, 0), "client");
    check_sock_opts(mpt_io_test_subflow_fd(opt_srv, 0), "server");
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* A raw TCP client sends a JOIN for a token nobody owns: the server must
 * refuse it (close the socket) and keep serving the real connection. */
START_TEST(join_wrong_token_refused)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct echo e = {0, 0};

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    int port = mpt_listener_port(l);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)port, NULL, 0, 5000, &s), 0);

    uint8_t msg[256];
    struct mpt_preamble pre;
    memset(&pre, 0, sizeof pre);
    pre.version = MPT_PROTO_VERSION;
    pre.kind = MPT_PRE_JOIN;
    memcpy(pre.routing_id, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    ssize_t n1 = mpt_preamble_encode(&pre, msg, sizeof msg);
    ck_assert_int_eq(n1, MPT_PREAMBLE_JOIN_LEN);
    struct mpt_frame f;
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_JOIN;
    f.u.join.token = 0x0123456789abcdefull;
    memset(f.u.join.nonce, 0x5a, sizeof f.u.join.nonce);
    ssize_t n2 = mpt_frame_encode(&f, msg + n1, sizeof msg - (size_t)n1);
    ck_assert_int_gt(n2, 0);

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(fd, 0);
    connect(fd, (struct sockaddr *)&a, sizeof a);
    int eof = 0, sent = 0;
    size_t reply = 0;
    double t0 = now_s();
    while (!eof && now_s() - t0 < 5) {
        mpt_ctx_run(ctx, 20);
        if (!sent && write(fd, msg, (size_t)(n1 + n2)) == n1 + n2)
            sent = 1;
        uint8_t buf[512];
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EAGAIN))
            eof = 1;
        else if (r > 0)
            reply += (size_t)r;
    }
    close(fd);
    ck_assert(sent);
    ck_assert(eof);
    /* At most an ERROR frame came back, never a JOIN_ACK. */
    ck_assert_uint_le(reply, MPT_FRAME_MAX_CONTROL);

    /* The real connection still works. */
    char b[8];
    ck_assert_int_eq(mpt_blocking_send_all(s, "ok", 2, 5000), 2);
    ck_assert_int_eq(mpt_blocking_recv(s, b, sizeof b, 5000), 2);
    struct mpt_info info = {.size = sizeof info};
    ck_assert_int_eq(mpt_get_info(s, &info), 0);
    ck_assert_int_eq(info.state, MPT_STATE_ESTABLISHED);
    mpt_abort(s);
    mpt_ctx_free(ctx);
}
END_TEST

static int established_subflows(struct mpt_socket *s);

/* struct mpt_subflow_info as a program built against libmpt 0.1.0 has it. */
struct sf_info_0_1 {
    int id;
    int path_id;
    enum mpt_subflow_state state;
    struct sockaddr_storage local, remote;
    char ifname[16];
    int backup;
    uint64_t rtt_us, rttvar_us;
    uint32_t cwnd_bytes, total_retrans;
    uint64_t bytes_sent, bytes_acked;
    int fail_error;
    uint32_t fail_reason;
};

/* Arrays of struct mpt_subflow_info and struct mpt_info from programs that
 * know an older or a newer layout than the library (doc/abi.md). */
START_TEST(struct_sizes_old_and_new)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct echo e = {0, 0};
    static const char *const paths[] = {"127.0.0.1", "127.0.0.2"};
    const size_t big = sizeof(struct mpt_subflow_info) + 24;
    uint8_t buf[4 * (sizeof(struct mpt_subflow_info) + 24)];

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), paths,
                                          2, 5000, &s),
                     0);
    double t0 = now_s();
    while (established_subflows(s) < 2 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    struct mpt_subflow_info cur[2];
    ck_assert_int_eq(mpt_get_subflows(s, cur, 2), 2);

    /* A newer program: larger elements, its extra bytes zeroed. */
    memset(buf, 0xa5, sizeof buf);
    ck_assert_int_eq(mpt_get_subflows_sized(s, (struct mpt_subflow_info *)buf, 2, big), 2);
    for (int i = 0; i < 2; i++) {
        const uint8_t *el = buf + (size_t)i * big;
        ck_assert(memcmp(el, &cur[i], offsetof(struct mpt_subflow_info, rtt_us)) == 0);
        for (size_t k = sizeof(struct mpt_subflow_info); k < big; k++)
            ck_assert_uint_eq(el[k], 0);
    }
    ck_assert_uint_eq(buf[2 * big], 0xa5); /* nothing beyond n elements */

    /* A 0.1.0 program: through the old symbol (not the macro), 0.1.0 stride. */
    struct sf_info_0_1 old[3];
    memset(old, 0xa5, sizeof old);
    ck_assert_int_eq((mpt_get_subflows)(s, (struct mpt_subflow_info *)old, 2), 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(old[i].id, cur[i].id);
        ck_assert_int_eq(old[i].path_id, cur[i].path_id);
        ck_assert_int_eq(old[i].state, MPT_SUBFLOW_ESTABLISHED);
        ck_assert_int_eq(old[i].local.ss_family, AF_INET);
    }
    const uint8_t *tail = (const uint8_t *)&old[2];
    for (size_t k = 0; k < sizeof old[2]; k++)
        ck_assert_uint_eq(tail[k], 0xa5);
    ck_assert_int_eq(mpt_get_subflows_sized(s, cur, 2, sizeof(struct sf_info_0_1) - 1),
                     MPT_EINVAL);

    /* struct mpt_info from a newer program: the unknown tail is zeroed. */
    uint8_t ib[sizeof(struct mpt_info) + 32];
    memset(ib, 0xa5, sizeof ib);
    struct mpt_info *info = (struct mpt_info *)ib;
    info->size = sizeof ib;
    ck_assert_int_eq(mpt_get_info(s, info), 0);
    ck_assert_uint_eq(info->size, sizeof(struct mpt_info));
    ck_assert_int_eq(info->state, MPT_STATE_ESTABLISHED);
    for (size_t k = sizeof(struct mpt_info); k < sizeof ib; k++)
        ck_assert_uint_eq(ib[k], 0);
    mpt_abort(s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* Paths while connected: add one, mark it backup, remove it. */
struct pc {
    int up, down;
};

static void pc_up(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    ((struct pc *)user)->up++;
}

static void pc_down(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    ((struct pc *)user)->down++;
}

START_TEST(path_control)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct echo e = {0, 0};
    struct pc pc = {0, 0};
    struct mpt_callbacks cb = {0};
    char b[8];

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), lo1,
                                          1, 5000, &s),
                     0);
    cb.subflow_up = pc_up;
    cb.subflow_down = pc_down;
    ck_assert_int_eq(mpt_set_callbacks(s, &cb, &pc), 0);
    ck_assert_ptr_eq(mpt_get_user(s), &pc);
    int id = mpt_add_path(s, "127.0.0.2");
    ck_assert_int_eq(id, 1);
    double t0 = now_s();
    while (pc.up < 1 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 50);
    ck_assert_int_eq(pc.up, 1);
    struct mpt_subflow_info sf[4];
    ck_assert_int_eq(mpt_get_subflows(s, sf, 4), 2);
    ck_assert_int_eq(sf[1].path_id, 1);
    ck_assert_int_eq(sf[1].state, MPT_SUBFLOW_ESTABLISHED);
    ck_assert_int_eq(((struct sockaddr_in *)&sf[1].local)->sin_addr.s_addr, htonl(0x7f000002));
    ck_assert_int_eq(mpt_set_backup(s, id, 1), 0);
    ck_assert_int_eq(mpt_set_backup(s, 0, 0), 0);
    ck_assert_int_eq(mpt_blocking_send_all(s, "pc", 2, 5000), 2);
    ck_assert_int_eq(mpt_blocking_recv(s, b, sizeof b, 5000), 2);

    ck_assert_int_eq(mpt_remove_path(s, id), 0);
    ck_assert_int_eq(mpt_remove_path(s, id), MPT_ENOTFOUND);
    t0 = now_s();
    while (mpt_get_subflows(s, NULL, 0) > 1 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 50);
    ck_assert_int_eq(mpt_get_subflows(s, NULL, 0), 1);
    /* Not re-created: it was removed, not lost. */
    mpt_ctx_run(ctx, 600);
    ck_assert_int_eq(mpt_get_subflows(s, NULL, 0), 1);
    ck_assert_int_eq(mpt_blocking_send_all(s, "ok", 2, 5000), 2);
    ck_assert_int_eq(mpt_blocking_recv(s, b, sizeof b, 5000), 2);
    ck_assert_int_eq(mpt_blocking_close(s, 5000), 0);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* A path that can never work is refused by mpt_connect and mpt_add_path
 * instead of being retried forever in silence. */
START_TEST(bad_paths_refused_up_front)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s = (void *)1;
    struct echo e = {0, 0};
    static const char *const no_if[] = {"eht0"};
    static const char *const no_if_backup[] = {"127.0.0.1", "eht0/backup"};
    static const char *const not_local[] = {"192.0.2.7"};

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    uint16_t port = (uint16_t)mpt_listener_port(l);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", port, no_if, 1, NULL, NULL, &s), MPT_ENODEV);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", port, no_if_backup, 2, NULL, NULL, &s),
                     MPT_ENODEV);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", port, not_local, 1, NULL, NULL, &s),
                     MPT_EADDRNOTAVAIL);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", port, no_if, 1, 5000, &s),
                     MPT_ENODEV);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", port, lo1, 1, 5000, &s), 0);
    ck_assert_int_eq(mpt_add_path(s, "eht0"), MPT_ENODEV);
    ck_assert_int_eq(mpt_add_path(s, "192.0.2.7/backup"), MPT_EADDRNOTAVAIL);
    ck_assert_int_eq(mpt_add_path(s, "127.0.0.2"), 1); /* the refused ones took no id */
    mpt_abort(s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* A path that fails at run time is reported (subflow_down with the cause)
 * and stays visible in mpt_get_subflows with its last error and when it
 * retries; the slot's next subflow gets a new id. */
struct rt {
    int up, down;
    struct mpt_subflow_info last_down, last_up;
};

static void rt_up(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    struct rt *r = user;
    r->up++;
    r->last_up = *sf;
}

static void rt_down(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    struct rt *r = user;
    r->down++;
    r->last_down = *sf;
}

/* Resets (RST) the server's TCP connection whose peer is 127.0.0.2: a TCP
 * socket connected to AF_UNSPEC disconnects and resets its peer. */
static int reset_subflow_from(struct mpt_socket *srv, uint32_t peer_addr)
{
    for (int i = 0; i < 32; i++) {
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        int fd = mpt_io_test_subflow_fd(srv, i);
        if (fd < 0 || getpeername(fd, (struct sockaddr *)&a, &len) < 0 ||
            a.sin_addr.s_addr != htonl(peer_addr))
            continue;
        struct sockaddr unspec = {.sa_family = AF_UNSPEC};
        return connect(fd, &unspec, sizeof unspec);
    }
    return -1;
}

struct acc1 {
    struct mpt_socket *s;
};

static void acc1_accept(struct mpt_listener *l, void *user)
{
    struct acc1 *a = user;
    struct mpt_callbacks cb = {.readable = echo_readable};
    struct mpt_socket *s;
    while (mpt_accept(l, &cb, NULL, &s) == 0) {
        a->s = s;
        echo_readable(s, NULL);
    }
}

START_TEST(runtime_path_failure_recorded)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct mpt_config cfg;
    struct acc1 acc = {NULL};
    struct rt r;
    static const char *const paths[] = {"127.0.0.1", "127.0.0.2"};
    struct mpt_callbacks cb = {.subflow_up = rt_up, .subflow_down = rt_down};
    char b[8];

    memset(&r, 0, sizeof r);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.reconnect_min_ms = 1500; /* long enough to look at the record */
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, acc1_accept, &acc, &l), 0);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), paths, 2, &cb,
                                 &r, &s),
                     0);
    double t0 = now_s();
    while (r.up < 2 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_int_eq(r.up, 2);
    ck_assert_ptr_nonnull(acc.s);
    struct mpt_subflow_info sf[4];
    ck_assert_int_eq(mpt_get_subflows(s, sf, 4), 2);
    int old_id = sf[0].path_id == 1 ? sf[0].id : sf[1].id;

    ck_assert_int_eq(reset_subflow_from(acc.s, 0x7f000002), 0);
    t0 = now_s();
    while (r.down < 1 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_int_eq(r.down, 1);
    ck_assert_int_eq(r.last_down.path_id, 1);
    ck_assert_int_eq(r.last_down.id, old_id);
    ck_assert_int_eq(r.last_down.fail_error, MPT_ECONNRESET);
    ck_assert_int_eq(r.last_down.sys_errno, ECONNRESET);

    /* Path 0 still up, path 1 a record: failed, why, and when it retries. */
    mpt_ctx_run(ctx, 50);
    ck_assert_int_eq(mpt_get_subflows(s, sf, 4), 2);
    ck_assert_int_eq(sf[0].path_id, 0);
    ck_assert_int_eq(sf[0].state, MPT_SUBFLOW_ESTABLISHED);
    ck_assert_int_eq(sf[0].retry_ms, -1);
    ck_assert_int_eq(sf[1].path_id, 1);
    ck_assert_int_eq(sf[1].id, old_id);
    ck_assert_int_eq(sf[1].state, MPT_SUBFLOW_FAILED);
    ck_assert_int_eq(sf[1].fail_error, MPT_ECONNRESET);
    ck_assert_int_eq(sf[1].sys_errno, ECONNRESET);
    ck_assert_uint_eq(sf[1].failures, 1);
    ck_assert_int_gt(sf[1].retry_ms, 0);
    ck_assert_int_le(sf[1].retry_ms, 1500);
    ck_assert_int_eq(((struct sockaddr_in *)&sf[1].remote)->sin_addr.s_addr, htonl(0x7f000001));
    struct mpt_info info = {.size = sizeof info};
    ck_assert_int_eq(mpt_get_info(s, &info), 0);
    ck_assert_uint_eq(info.subflows, 1); /* records are not subflows */
    ck_assert_uint_eq(info.subflows_opened, 2);
    ck_assert_uint_eq(info.subflows_failed, 1); /* counted although it is gone */

    /* The retry brings the path back, as a new subflow. */
    t0 = now_s();
    while (r.up < 3 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_int_eq(r.up, 3);
    ck_assert_int_eq(r.last_up.path_id, 1);
    ck_assert_int_ne(r.last_up.id, old_id);
    ck_assert_uint_eq(r.last_up.failures, 0);
    ck_assert_int_eq(mpt_get_subflows(s, sf, 4), 2);
    ck_assert_int_eq(sf[1].state, MPT_SUBFLOW_ESTABLISHED);
    ck_assert_int_eq(mpt_get_info(s, &info), 0);
    ck_assert_uint_eq(info.subflows_opened, 3);
    ck_assert_uint_eq(info.subflows_failed, 1);
    ck_assert_int_eq(mpt_blocking_send_all(s, "rt", 2, 5000), 2);
    ck_assert_int_eq(mpt_blocking_recv(s, b, sizeof b, 5000), 2);
    mpt_abort(s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* Introspection a receiver and a sender need: stable subflow ids (the
 * first is 1; mpt_set_backup takes them on the server), bytes received per
 * subflow, and unacked_bytes falling to 0 once everything sent has been
 * acknowledged, without closing. */
START_TEST(ids_received_bytes_and_unacked)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct mpt_config cfg;
    struct acc1 acc = {NULL};
    static const char *const paths[] = {"127.0.0.1", "127.0.0.2"};
    static uint8_t payload[1 << 20];
    struct mpt_subflow_info sf[4];
    struct mpt_info info = {.size = sizeof info};

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.scheduler = "roundrobin"; /* both paths carry data */
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, acc1_accept, &acc, &l), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), paths,
                                          2, 5000, &s),
                     0);
    double t0 = now_s();
    while (established_subflows(s) < 2 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_int_eq(mpt_get_subflows(s, sf, 4), 2);
    ck_assert_int_eq(sf[0].id + sf[1].id, 3); /* ids 1 and 2 */
    ck_assert_int_ne(sf[0].id, sf[1].id);

    /* Nothing acknowledged right after the copy into the send buffer. */
    ck_assert_int_eq(mpt_send(s, payload, sizeof payload), (ssize_t)sizeof payload);
    ck_assert_int_eq(mpt_get_info(s, &info), 0);
    ck_assert_uint_eq(info.unacked_bytes, sizeof payload);
    ck_assert_uint_eq(info.subflows_opened, 2);
    ck_assert_uint_eq(info.subflows_failed, 0);
    t0 = now_s();
    while (info.unacked_bytes > 0 && now_s() - t0 < 10) {
        mpt_ctx_run(ctx, 20);
        ck_assert_int_eq(mpt_get_info(s, &info), 0);
    }
    ck_assert_uint_eq(info.unacked_bytes, 0); /* all of it arrived, connection still open */
    ck_assert_uint_ge(info.bytes_acked, sizeof payload);
    ck_assert_int_eq(info.state, MPT_STATE_ESTABLISHED);

    /* The receiver sees the split. */
    ck_assert_ptr_nonnull(acc.s);
    struct mpt_subflow_info rs[4];
    ck_assert_int_eq(mpt_get_subflows(acc.s, rs, 4), 2);
    ck_assert_uint_gt(rs[0].bytes_received, 0);
    ck_assert_uint_gt(rs[1].bytes_received, 0);
    ck_assert_uint_ge(rs[0].bytes_received + rs[1].bytes_received, sizeof payload);
    ck_assert_int_eq(rs[0].id + rs[1].id, 3);

    /* Server side, mpt_set_backup names a subflow by its id. */
    ck_assert_int_eq(mpt_set_backup(acc.s, 0, 1), MPT_ENOTFOUND);
    ck_assert_int_eq(mpt_set_backup(acc.s, 3, 1), MPT_ENOTFOUND);
    int bid = rs[1].id;
    ck_assert_int_eq(mpt_set_backup(acc.s, bid, 1), 0);
    int cpath = -1; /* the client's view of that subflow: same local address */
    t0 = now_s();
    while (now_s() - t0 < 5) {
        mpt_ctx_run(ctx, 20);
        ck_assert_int_eq(mpt_get_subflows(s, sf, 4), 2);
        for (int i = 0; i < 2; i++)
            if (memcmp(&sf[i].local, &rs[1].remote, sizeof(struct sockaddr_in)) == 0 &&
                sf[i].backup)
                cpath = sf[i].path_id;
        if (cpath >= 0)
            break;
    }
    ck_assert_int_ge(cpath, 0);
    /* The server's local address of each subflow (the listener's, not asked
     * of the kernel) is what the client connected to, port included. */
    for (int i = 0; i < 2; i++) {
        int seen = 0;
        for (int j = 0; j < 2; j++)
            seen += memcmp(&rs[i].local, &sf[j].remote, sizeof(struct sockaddr_in)) == 0;
        ck_assert_int_eq(seen, 2);
    }

    /* A DATA_FIN counts until it is acknowledged. */
    ck_assert_int_eq(mpt_shutdown(s), 0);
    ck_assert_int_eq(mpt_get_info(s, &info), 0);
    ck_assert_uint_eq(info.unacked_bytes, 1);
    mpt_abort(s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

START_TEST(state_names)
{
    static const char *const conn[] = {"connecting", "established", "closing", "closed",
                                       "aborted"};
    static const char *const sub[] = {"connecting", "handshake", "established",
                                      "closing",    "failed",    "closed"};
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(mpt_state_name((enum mpt_state)i), conn[i]);
    for (int i = 0; i < 6; i++)
        ck_assert_str_eq(mpt_subflow_state_name((enum mpt_subflow_state)i), sub[i]);
    ck_assert_str_eq(mpt_state_name((enum mpt_state)99), "unknown");
    ck_assert_str_eq(mpt_subflow_state_name((enum mpt_subflow_state)-1), "unknown");
    ck_assert_ptr_eq(mpt_state_name(MPT_STATE_CLOSED), mpt_state_name(MPT_STATE_CLOSED));
}
END_TEST

/* N subflows over one path, and fullmesh over the local interfaces. */
static int count_up;
static void count_up_cb(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    count_up++;
}

static int established_subflows(struct mpt_socket *s)
{
    struct mpt_info info = {.size = sizeof info};
    mpt_get_info(s, &info);
    return (int)info.subflows_established;
}

START_TEST(subflows_per_path_and_fullmesh)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct mpt_config cfg;
    struct echo e = {0, 0};
    struct mpt_callbacks cb = {.subflow_up = count_up_cb};
    char b[8];

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.subflows_per_path = 3;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), NULL,
                                          0, 5000, &s),
                     0);
    double t0 = now_s();
    while (established_subflows(s) < 3 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 50);
    ck_assert_int_eq(established_subflows(s), 3);
    ck_assert_int_eq(mpt_blocking_send_all(s, "x3", 2, 5000), 2);
    ck_assert_int_eq(mpt_blocking_recv(s, b, sizeof b, 5000), 2);
    mpt_abort(s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);

    /* fullmesh, loopback included: the IPv4 loopback address is a path (::1
     * is skipped for an IPv4 server). */
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.fullmesh = 1;
    cfg.include_loopback = 1;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    count_up = 0;
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), NULL, 0, &cb,
                                 NULL, &s),
                     0);
    t0 = now_s();
    while (count_up < 1 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 50);
    ck_assert_int_ge(count_up, 1);
    struct mpt_subflow_info sf[8];
    int n = mpt_get_subflows(s, sf, 8);
    ck_assert_int_ge(n, 1);
    ck_assert_int_eq(sf[0].local.ss_family, AF_INET);
    mpt_abort(s);
    mpt_ctx_free(ctx);
}
END_TEST

/* A path given as an interface name is bound with SO_BINDTODEVICE (needs
 * CAP_NET_RAW: without it the connection fails, which is also checked). */
/* Waits (up to 5 s) until s has want established subflows, checks that
 * it has exactly that many, all established, then counts how many go to
 * 127.0.0.1 and to 127.0.0.3; a short echo proves the connection works. */
static void count_subflows_to(struct mpt_ctx *ctx, struct mpt_socket *s, int want, int *to1,
                              int *to3)
{
    struct mpt_subflow_info sf[8];
    char b[8];
    int n;

    double t0 = now_s();
    while (established_subflows(s) < want && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 50);
    mpt_ctx_run(ctx, 100); /* and no more */
    n = mpt_get_subflows(s, sf, 8);
    ck_assert_int_eq(n, want);
    *to1 = *to3 = 0;
    for (int i = 0; i < n; i++) {
        uint32_t a = ntohl(((struct sockaddr_in *)&sf[i].remote)->sin_addr.s_addr);
        ck_assert_int_eq(sf[i].state, MPT_SUBFLOW_ESTABLISHED);
        *to1 += a == 0x7f000001;
        *to3 += a == 0x7f000003;
    }
    ck_assert_int_eq(mpt_blocking_send_all(s, "ad", 2, 5000), 2);
    ck_assert_int_eq(mpt_blocking_recv(s, b, sizeof b, 5000), 2);
}

/* The server listens on two addresses and advertises the one the client
 * did not connect to (ADD_ADDR): the path manager joins it with
 * subflows_per_path subflows, as many as to the first address. */
START_TEST(advertised_address_joined)
{
    static const char *const lo13[] = {"127.0.0.1", "127.0.0.3"};
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct mpt_config cfg;
    struct echo e = {0, 0};
    int to1, to3;

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.subflows_per_path = 2;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo13, 2, 0, echo_accept, &e, &l), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), NULL,
                                          0, 5000, &s),
                     0);
    count_subflows_to(ctx, s, 4, &to1, &to3);
    ck_assert_int_eq(to1, 2);
    ck_assert_int_eq(to3, 2);
    {
        struct mpt_subflow_info sf[8];
        int n = mpt_get_subflows(s, sf, 8);
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(sf[i].path_id, 0);
    }
    mpt_abort(s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

/* Behind a balancer the listening address is not what clients should join:
 * a wildcard listener advertises nothing by default, and the operator's list
 * (here 127.0.0.3 with an explicit port) goes out instead and is joined. */
START_TEST(advertised_addresses_set_by_operator)
{
    static const char *const any4[] = {"0.0.0.0"};
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct echo e = {0, 0};
    char adv[32];
    const char *advs[1] = {adv};
    int to1, to3;

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, any4, 1, 0, echo_accept, &e, &l), 0);
    snprintf(adv, sizeof adv, "127.0.0.3:%d", mpt_listener_port(l));
    {
        static const char *const bad[] = {"example.org", "127.0.0.1:0", "127.0.0.1:70000",
                                          "[::1", "::1]:5", "1.2.3.4:x"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
            ck_assert_int_eq(mpt_listener_set_advertised(l, &bad[i], 1), MPT_ERESOLVE);
        static const char *const ok[] = {"::1", "[::1]:443", "10.0.0.1:1", "10.0.0.2"};
        ck_assert_int_eq(mpt_listener_set_advertised(l, ok, 4), 0);
        ck_assert_int_eq(mpt_listener_set_advertised(l, NULL, 1), MPT_EINVAL);
        ck_assert_int_eq(mpt_listener_set_advertised(NULL, NULL, 0), MPT_EINVAL);
    }
    ck_assert_int_eq(mpt_listener_set_advertised(l, advs, 1), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), NULL,
                                          0, 5000, &s),
                     0);
    count_subflows_to(ctx, s, 2, &to1, &to3);
    ck_assert_int_eq(to1, 1);
    ck_assert_int_eq(to3, 1);
    mpt_abort(s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

START_TEST(path_by_interface_name)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct echo e = {0, 0};
    static const char *const lo_if[] = {"lo"};
    char b[8];

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, echo_accept, &e, &l), 0);
    int rc = mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), lo_if, 1,
                                  5000, &s);
    if (geteuid() != 0) {
        mpt_ctx_free(ctx);
        return;
    }
    ck_assert_int_eq(rc, 0);
    struct mpt_subflow_info sf[2];
    ck_assert_int_eq(mpt_get_subflows(s, sf, 2), 1);
    ck_assert_str_eq(sf[0].ifname, "lo");
    ck_assert_int_eq(mpt_blocking_send_all(s, "if", 2, 5000), 2);
    ck_assert_int_eq(mpt_blocking_recv(s, b, sizeof b, 5000), 2);
    mpt_abort(s);
    mpt_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("io_api");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, argument_errors);
    tcase_add_test(tc, connect_refused);
    tcase_add_test(tc, errno_map);
    tcase_add_test(tc, blocking_echo_and_state_errors);
    tcase_add_test(tc, external_loop_fd);
    tcase_add_test(tc, blocking_close_aborts_on_timeout);
    tcase_add_test(tc, abort_read_before_write_error);
    tcase_add_test(tc, resolve_keeps_app_loop_alive);
    tcase_add_test(tc, resolve_keeps_ctx_run_alive);
    tcase_add_test(tc, trace_callback_and_file);
    tcase_add_test(tc, many_connections);
    tcase_add_test(tc, random_batches_are_not_shared_across_fork);
    tcase_add_test(tc, accepted_subflow_options);
    tcase_add_test(tc, join_wrong_token_refused);
    tcase_add_test(tc, path_control);
    tcase_add_test(tc, struct_sizes_old_and_new);
    tcase_add_test(tc, subflows_per_path_and_fullmesh);
    tcase_add_test(tc, path_by_interface_name);
    tcase_add_test(tc, advertised_address_joined);
    tcase_add_test(tc, advertised_addresses_set_by_operator);
    tcase_add_test(tc, bad_paths_refused_up_front);
    tcase_add_test(tc, runtime_path_failure_recorded);
    tcase_add_test(tc, ids_received_bytes_and_unacked);
    tcase_add_test(tc, state_names);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
