/*
 * TLS on every subflow, over loopback (doc/security.md): byte-exact
 * transfers over 2 and 4 TLS subflows both ways with exactly one full
 * handshake per connection (the joins resume it), PSK mode, and the
 * refusals: wrong CA, wrong name, expired certificate, a man in the middle
 * with another CA's certificate, TLS client to a plain server and the
 * reverse (each fast, with the reason), and configuration errors naming
 * the file. Certificates are made at run time by tests/tls/make-certs.sh
 * (OpenSSL); the test is skipped (77) without openssl.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

#define PAT_LEN ((1u << 20) + 7u)
#define MIB (1024ull * 1024ull)

static char dir[256];
static char f_ca[300], f_other_ca[300], f_srv[300], f_srv_key[300], f_expired[300];
static char f_mitm[300], f_mitm_key[300];
static uint8_t pat[PAT_LEN];
static uint8_t rbuf[256 * 1024];

static void pat_init(void)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < PAT_LEN; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pat[i] = (uint8_t)x;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- Configurations -------------------------------------------------------------- */

static struct mpt_tls_config tls_server(const char *cert, const char *key)
{
    struct mpt_tls_config t;
    memset(&t, 0, sizeof t);
    t.size = sizeof t;
    t.cert_file = cert;
    t.key_file = key;
    return t;
}

static struct mpt_tls_config tls_client(const char *ca, const char *name)
{
    struct mpt_tls_config t;
    memset(&t, 0, sizeof t);
    t.size = sizeof t;
    t.ca_file = ca;
    t.server_name = name;
    return t;
}

/* Two contexts on one loop: the server's and the client's. */
static void two_ctx(const struct mpt_tls_config *st, const struct mpt_tls_config *ct,
                    struct mpt_ctx **sctx, struct mpt_ctx **cctx)
{
    struct mpt_config cfg;

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.tls = st;
    cfg.reconnect_min_ms = 10;
    ck_assert_int_eq(mpt_ctx_new(sctx, NULL, &cfg), 0);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.tls = ct;
    cfg.reconnect_min_ms = 10;
    ck_assert_int_eq(mpt_ctx_new(cctx, mpt_ctx_loop(*sctx), &cfg), 0);
    if (getenv("MPT_TEST_TRACE")) {
        mpt_set_trace_file(*sctx, getenv("MPT_TEST_TRACE"));
        mpt_set_trace_file(*cctx, getenv("MPT_TEST_TRACE"));
    }
}

/* ---- Transfers ------------------------------------------------------------------- */

struct xfer {
    struct mpt_socket *cli, *srv;
    int server_sends;
    uint64_t total, sent, recvd;
    int eof, error, shut, closed_cli, closed_srv, sf_up_cli, sf_down_cli, conn_status;
    double t_connected;
};

static struct mpt_socket *sender(struct xfer *x)
{
    return x->server_sends ? x->srv : x->cli;
}

static void pump_send(struct xfer *x)
{
    struct mpt_socket *s = sender(x);

    if (s == NULL || x->shut)
        return;
    while (x->sent < x->total) {
        size_t off = (size_t)(x->sent % PAT_LEN);
        size_t n = PAT_LEN - off;
        if (n > 256 * 1024)
            n = 256 * 1024;
        if (n > x->total - x->sent)
            n = (size_t)(x->total - x->sent);
        ssize_t w = mpt_send(s, pat + off, n);
        if (w == MPT_EAGAIN)
            return;
        if (w <= 0) {
            x->error = (int)w;
            return;
        }
        x->sent += (uint64_t)w;
    }
    ck_assert_int_eq(mpt_shutdown(s), 0);
    x->shut = 1;
}

static void on_readable(struct mpt_socket *s, void *user)
{
    struct xfer *x = user;

    for (;;) {
        ssize_t n = mpt_recv(s, rbuf, sizeof rbuf);
        if (n == MPT_EAGAIN)
            return;
        if (n < 0) {
            x->error = (int)n;
            return;
        }
        if (n == 0) {
            x->eof = 1;
            mpt_shutdown(s);
            return;
        }
        size_t done = 0;
        while (done < (size_t)n) {
            size_t off = (size_t)((x->recvd + done) % PAT_LEN);
            size_t k = PAT_LEN - off;
            if (k > (size_t)n - done)
                k = (size_t)n - done;
            if (memcmp(rbuf + done, pat + off, k) != 0) {
                fprintf(stderr, "mismatch at byte %llu\n", (unsigned long long)(x->recvd + done));
                x->error = -1000;
                return;
            }
            done += k;
        }
        x->recvd += (uint64_t)n;
    }
}

static void on_writable(struct mpt_socket *s, void *user)
{
    pump_send(user);
}

static void on_connected(struct mpt_socket *s, int status, void *user)
{
    struct xfer *x = user;

    x->conn_status = status;
    x->t_connected = now_s();
    if (status < 0) {
        x->error = status;
        return;
    }
    pump_send(x);
}

static void on_closed_cli(struct mpt_socket *s, int status, void *user)
{
    struct xfer *x = user;
    x->closed_cli = status == 0 ? 1 : -1;
    if (x->t_connected == 0)
        x->t_connected = now_s();
}

static void on_closed_srv(struct mpt_socket *s, int status, void *user)
{
    ((struct xfer *)user)->closed_srv = status == 0 ? 1 : -1;
}

static void on_sf_up(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    ((struct xfer *)user)->sf_up_cli++;
}

static void on_sf_down(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    fprintf(stderr, "subflow %d down: %s\n", sf->id, mpt_err_name(sf->fail_error));
    ((struct xfer *)user)->sf_down_cli++;
}

static void on_accept(struct mpt_listener *l, void *user)
{
    struct xfer *x = user;
    struct mpt_callbacks cb = {0};
    struct mpt_socket *s;

    cb.readable = on_readable;
    cb.writable = on_writable;
    cb.closed = on_closed_srv;
    while (mpt_accept(l, &cb, x, &s) == 0) {
        ck_assert_ptr_null(x->srv);
        x->srv = s;
        if (x->server_sends)
            pump_send(x);
        else
            on_readable(s, x);
    }
}

static void connect_to(struct mpt_ctx *cctx, int port, int npaths, struct xfer *x)
{
    static const char *const cli_paths[] = {"127.0.0.1", "127.0.0.2"};
    struct mpt_callbacks cb = {0};

    cb.connected = on_connected;
    cb.readable = on_readable;
    cb.writable = on_writable;
    cb.closed = on_closed_cli;
    cb.subflow_up = on_sf_up;
    cb.subflow_down = on_sf_down;
    ck_assert_int_eq(mpt_connect(cctx, "127.0.0.1", (uint16_t)port, cli_paths, (size_t)npaths,
                                 &cb, x, &x->cli),
                     0);
}

static void run_transfer(const struct mpt_tls_config *st, const struct mpt_tls_config *ct,
                         int server_sends, int nsrv, int npaths, uint64_t total, int nsub)
{
    static const char *const srv_addrs[] = {"127.0.0.1", "127.0.0.2"};
    struct mpt_ctx *sctx, *cctx;
    struct mpt_listener *l;
    struct xfer x;

    pat_init();
    memset(&x, 0, sizeof x);
    x.server_sends = server_sends;
    x.total = total;
    two_ctx(st, ct, &sctx, &cctx);
    ck_assert_int_eq(mpt_listen(sctx, srv_addrs, (size_t)nsrv, 0, on_accept, &x, &l), 0);
    connect_to(cctx, mpt_listener_port(l), npaths, &x);
    double t0 = now_s();
    while (x.error == 0 && !(x.eof && x.closed_cli && x.closed_srv) && now_s() - t0 < 120)
        mpt_ctx_run(sctx, 100);
    double dt = now_s() - t0;

    struct mpt_tls_info ci = {.size = sizeof ci}, si = {.size = sizeof si};
    ck_assert_int_eq(mpt_get_tls_info(x.cli, &ci), 0);
    ck_assert_ptr_nonnull(x.srv);
    ck_assert_int_eq(mpt_get_tls_info(x.srv, &si), 0);
    fprintf(stderr,
            "tls %s subflows=%d: %llu MiB in %.2f s (%.0f Mbit/s), suite %s, full handshakes "
            "client %u server %u, resumed client %u server %u\n",
            server_sends ? "server->client" : "client->server", nsub,
            (unsigned long long)(x.recvd / MIB), dt, x.recvd * 8 / dt / 1e6, ci.suite,
            ci.full_handshakes, si.full_handshakes, ci.resumed_handshakes,
            si.resumed_handshakes);
    ck_assert_int_eq(x.error, 0);
    ck_assert(x.eof);
    ck_assert_uint_eq(x.recvd, total);
    ck_assert_int_ge(x.sf_up_cli, nsub);
    ck_assert_int_eq(x.sf_down_cli, 0); /* a graceful close is no failure, TLS or not */
    ck_assert_int_eq(x.closed_cli, 1);
    ck_assert_int_eq(x.closed_srv, 1);
    /* One full handshake per connection; every join resumed it. */
    ck_assert_uint_eq(ci.full_handshakes, 1);
    ck_assert_uint_eq(si.full_handshakes, 1);
    ck_assert_uint_eq(ci.resumed_handshakes, (unsigned)nsub - 1);
    ck_assert_uint_eq(si.resumed_handshakes, (unsigned)nsub - 1);
    ck_assert_ptr_null(ci.error);
    ck_assert(strstr(ci.suite, "GCM") != NULL || strstr(ci.suite, "CHACHA") != NULL);
    ck_assert_int_eq(mpt_close(x.cli), 0);
    ck_assert_int_eq(mpt_close(x.srv), 0);
    mpt_listener_close(l);
    mpt_ctx_free(cctx);
    mpt_ctx_free(sctx);
}

START_TEST(two_subflows_client_to_server)
{
    struct mpt_tls_config st = tls_server(f_srv, f_srv_key), ct = tls_client(f_ca, "mpt-test.example");
    run_transfer(&st, &ct, 0, 1, 2, 64 * MIB, 2);
}
END_TEST

START_TEST(two_subflows_server_to_client)
{
    struct mpt_tls_config st = tls_server(f_srv, f_srv_key), ct = tls_client(f_ca, "mpt-test.example");
    run_transfer(&st, &ct, 1, 1, 2, 64 * MIB, 2);
}
END_TEST

START_TEST(four_subflows_client_to_server)
{
    struct mpt_tls_config st = tls_server(f_srv, f_srv_key), ct = tls_client(f_ca, "mpt-test.example");
    run_transfer(&st, &ct, 0, 2, 2, 64 * MIB, 4);
}
END_TEST

START_TEST(four_subflows_server_to_client)
{
    struct mpt_tls_config st = tls_server(f_srv, f_srv_key), ct = tls_client(f_ca, "mpt-test.example");
    run_transfer(&st, &ct, 1, 2, 2, 64 * MIB, 4);
}
END_TEST

START_TEST(psk_two_subflows)
{
    static const uint8_t psk[32] = "0123456789abcdef0123456789abcde";
    struct mpt_tls_config t;
    memset(&t, 0, sizeof t);
    t.size = sizeof t;
    t.psk = psk;
    t.psk_len = sizeof psk;
    t.psk_identity = "mpt-test";
    run_transfer(&t, &t, 1, 1, 2, 16 * MIB, 2);
}
END_TEST

/* ---- Refusals ---------------------------------------------------------------------- */

/* A connection that must fail: within a second, with `want` as the
 * client's error and `why` (if not NULL) in its TLS reason. */
/* why: a piece of the TLS verdict (mpt_get_tls_info), peer_says: of the
 * server's ERROR text (mpt_info.peer_text); NULL: not checked. */
static void expect_refused(const struct mpt_tls_config *st, const struct mpt_tls_config *ct,
                           int want, const char *why, const char *peer_says)
{
    struct mpt_ctx *sctx, *cctx;
    struct mpt_listener *l;
    struct xfer x;

    memset(&x, 0, sizeof x);
    x.total = 1000;
    two_ctx(st, ct, &sctx, &cctx);
    ck_assert_int_eq(mpt_listen(sctx, NULL, 0, 0, on_accept, &x, &l), 0);
    double t0 = now_s();
    connect_to(cctx, mpt_listener_port(l), 1, &x);
    while (x.closed_cli == 0 && now_s() - t0 < 10)
        mpt_ctx_run(sctx, 50);
    double dt = x.t_connected - t0;
    struct mpt_info ci = {.size = sizeof ci};
    struct mpt_tls_info ti = {.size = sizeof ti};
    ck_assert_int_eq(mpt_get_info(x.cli, &ci), 0);
    ck_assert_int_eq(mpt_get_tls_info(x.cli, &ti), 0);
    fprintf(stderr, "refused in %.3f s: %s (%s)\n", dt, mpt_err_name(x.conn_status),
            ti.error ? ti.error : "no TLS reason");
    ck_assert_int_eq(x.closed_cli, -1);
    ck_assert_int_eq(x.conn_status, want);
    ck_assert_msg(dt < 1.0, "refusal took %.3f s", dt);
    if (why != NULL) {
        ck_assert_ptr_nonnull(ti.error);
        ck_assert_msg(strstr(ti.error, why) != NULL, "reason \"%s\" lacks \"%s\"", ti.error,
                      why);
    }
    if (peer_says != NULL) {
        ck_assert_ptr_nonnull(ci.peer_text);
        ck_assert_msg(strstr(ci.peer_text, peer_says) != NULL, "peer_text \"%s\" lacks \"%s\"",
                      ci.peer_text, peer_says);
    }
    ck_assert_ptr_null(x.srv); /* nothing reached the application */
    ck_assert_uint_eq(ci.bytes_sent, 0);
    ck_assert_uint_eq(ti.full_handshakes, 0);
    mpt_close(x.cli);
    mpt_listener_close(l);
    mpt_ctx_free(cctx);
    mpt_ctx_free(sctx);
}

START_TEST(wrong_ca_refused)
{
    struct mpt_tls_config st = tls_server(f_srv, f_srv_key),
                          ct = tls_client(f_other_ca, "mpt-test.example");
    expect_refused(&st, &ct, MPT_ETLS, "not correctly signed by the trusted CA", NULL);
}
END_TEST

START_TEST(wrong_name_refused)
{
    struct mpt_tls_config st = tls_server(f_srv, f_srv_key),
                          ct = tls_client(f_ca, "someone-else.example");
    expect_refused(&st, &ct, MPT_ETLS, "Common Name (CN) does not match", NULL);
}
END_TEST

START_TEST(expired_refused)
{
    struct mpt_tls_config st = tls_server(f_expired, f_srv_key),
                          ct = tls_client(f_ca, "mpt-test.example");
    expect_refused(&st, &ct, MPT_ETLS, "validity has expired", NULL);
}
END_TEST

START_TEST(mitm_certificate_refused)
{
    /* Whoever terminates TLS in between has to show a certificate of its
     * own for the name: one the client's CA did not sign. */
    struct mpt_tls_config st = tls_server(f_mitm, f_mitm_key),
                          ct = tls_client(f_ca, "mpt-test.example");
    expect_refused(&st, &ct, MPT_ETLS, "not correctly signed by the trusted CA", NULL);
}
END_TEST

START_TEST(tls_client_to_plain_server)
{
    struct mpt_tls_config ct = tls_client(f_ca, "mpt-test.example");
    expect_refused(NULL, &ct, MPT_ETLS, "server does not offer TLS", NULL);
}
END_TEST

START_TEST(plain_client_to_tls_server)
{
    struct mpt_tls_config st = tls_server(f_srv, f_srv_key);
    expect_refused(&st, NULL, MPT_EPROTO, NULL, "TLS required by this server");
}
END_TEST

/* ---- Configuration ---------------------------------------------------------------- */

START_TEST(config_errors_name_the_file)
{
    char why[256];
    struct mpt_tls_config t = tls_client("/nonexistent/ca.pem", NULL);
    struct mpt_config cfg;
    struct mpt_ctx *ctx;

    ck_assert_int_eq(mpt_tls_config_check(&t, why, sizeof why), MPT_ETLS);
    ck_assert_msg(strstr(why, "/nonexistent/ca.pem") != NULL, "why: %s", why);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.tls = &t;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), MPT_ETLS);
    /* a key that is not the certificate's */
    t = tls_server(f_srv, f_mitm_key);
    ck_assert_int_eq(mpt_tls_config_check(&t, why, sizeof why), MPT_ETLS);
    ck_assert_msg(strstr(why, f_mitm_key) != NULL, "why: %s", why);
    /* nothing to verify with and no insecure mode spelled out */
    memset(&t, 0, sizeof t);
    t.size = sizeof t;
    ck_assert_int_eq(mpt_tls_config_check(&t, why, sizeof why), MPT_EINVAL);
    t.insecure_skip_verify = 1;
    ck_assert_int_eq(mpt_tls_config_check(&t, why, sizeof why), 0);
    /* a client-only configuration cannot listen */
    cfg.tls = &t;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    struct mpt_listener *l;
    ck_assert_int_eq(mpt_listen(ctx, NULL, 0, 0, NULL, NULL, &l), MPT_EINVAL);
    mpt_ctx_free(ctx);
    t = tls_server(f_srv, f_srv_key);
    ck_assert_int_eq(mpt_tls_config_check(&t, why, sizeof why), 0);
}
END_TEST

START_TEST(insecure_mode_connects_to_any_certificate)
{
    struct mpt_tls_config st = tls_server(f_mitm, f_mitm_key), ct;
    memset(&ct, 0, sizeof ct);
    ct.size = sizeof ct;
    ct.insecure_skip_verify = 1;
    run_transfer(&st, &ct, 0, 1, 2, 4 * MIB, 2);
}
END_TEST

static int make_certs(void)
{
    char cmd[600];
    const char *src = getenv("srcdir");

    snprintf(dir, sizeof dir, "/tmp/mpt-tls-test-%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "sh %s/tests/tls/make-certs.sh %s >/dev/null",
             src ? src : MPT_TEST_SRCDIR, dir);
    int rc = system(cmd);
    if (rc != 0)
        return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
#define F_(v, n) snprintf(v, sizeof v, "%s/%s", dir, n)
    F_(f_ca, "ca.pem");
    F_(f_other_ca, "other-ca.pem");
    F_(f_srv, "server.pem");
    F_(f_srv_key, "server.key");
    F_(f_expired, "expired.pem");
    F_(f_mitm, "mitm.pem");
    F_(f_mitm_key, "mitm.key");
#undef F_
    return 0;
}

int main(void)
{
    int rc = make_certs(), failed;
    char cmd[300];

    if (rc != 0) {
        fprintf(stderr, "test_io_tls: could not make certificates (%d): skipped\n", rc);
        return 77;
    }
    Suite *s = suite_create("io_tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, two_subflows_client_to_server);
    tcase_add_test(tc, two_subflows_server_to_client);
    tcase_add_test(tc, four_subflows_client_to_server);
    tcase_add_test(tc, four_subflows_server_to_client);
    tcase_add_test(tc, psk_two_subflows);
    tcase_add_test(tc, wrong_ca_refused);
    tcase_add_test(tc, wrong_name_refused);
    tcase_add_test(tc, expired_refused);
    tcase_add_test(tc, mitm_certificate_refused);
    tcase_add_test(tc, tls_client_to_plain_server);
    tcase_add_test(tc, plain_client_to_tls_server);
    tcase_add_test(tc, config_errors_name_the_file);
    tcase_add_test(tc, insecure_mode_connects_to_any_certificate);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    return failed ? 1 : 0;
}
