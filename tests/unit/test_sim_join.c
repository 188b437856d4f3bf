/*
 * Handshake and join security in the simulator. Each refused join must leave
 * the connection alone: the transfer around it completes byte-exact.
 *  - a JOIN_ACK whose HMAC is altered in flight: the client refuses (EAUTH);
 *  - a JOIN with an unknown token: the server refuses (ETOKEN, ERROR frame);
 *  - a replayed JOIN + JOIN_CONFIRM recorded from a successful join: refused;
 *  - joins beyond the server's subflow limit: refused (ETOOMANY), and the
 *    client's own limit makes mpt_conn_add_subflow fail.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "sim.h"

#define BYTES (8 * SIM_MIB)

struct capture {
    int sock;             /* the socket to record / tamper with */
    int flip_join_ack;    /* flip a bit of JOIN_ACK's HMAC on its way to the client */
    uint8_t c2s[256];     /* the first client bytes on that socket */
    size_t len;
    int raw_sock;
};

static void tap(struct sim *sim, int sock, int dir, uint64_t off, uint8_t *data, size_t len,
                void *user)
{
    struct capture *cap = user;
    if (sock != cap->sock)
        return;
    if (dir == SIM_C2S && off < sizeof cap->c2s) {
        size_t n = sizeof cap->c2s - (size_t)off < len ? sizeof cap->c2s - (size_t)off : len;
        memcpy(cap->c2s + off, data, n);
        if (off + n > cap->len)
            cap->len = (size_t)off + n;
    }
    if (dir == SIM_S2C && cap->flip_join_ack) {
        /* JOIN_ACK is the server's first frame: header 4, nonce 16, HMAC 32 */
        uint64_t target = MPT_FRAME_HDR_LEN + MPT_NONCE_LEN + 5;
        if (target >= off && target < off + len)
            data[target - off] ^= 0x10;
    }
}

static void two_paths(struct sim_cfg *cfg, struct capture *cap)
{
    sim_cfg_default(cfg);
    cfg->seed = 77;
    cfg->npaths = 2;
    cfg->path[0].rate[0] = cfg->path[0].rate[1] = 20 * SIM_MBPS;
    cfg->path[0].delay[0] = cfg->path[0].delay[1] = 10 * SIM_MS;
    cfg->path[1].rate[0] = cfg->path[1].rate[1] = 10 * SIM_MBPS;
    cfg->path[1].delay[0] = cfg->path[1].delay[1] = 20 * SIM_MS;
    cfg->bytes[0] = cfg->bytes[1] = BYTES;
    cfg->tap = tap;
    cfg->tap_user = cap;
    memset(cap, 0, sizeof *cap);
    cap->sock = 1; /* the first join (socket 0 carries the handshake) */
    cap->raw_sock = -1;
}

static void assert_complete(struct sim *sim)
{
    char buf[1024];
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
}

/* Length of the preamble + frames up to and including the first frame of
 * type `type` in the captured client bytes. */
static size_t through_frame(const struct capture *cap, uint8_t type)
{
    size_t off = MPT_PREAMBLE_JOIN_LEN;
    while (off + MPT_FRAME_HDR_LEN <= cap->len) {
        size_t flen = MPT_FRAME_HDR_LEN + ((size_t)cap->c2s[off + 2] << 8 | cap->c2s[off + 3]);
        if (off + flen > cap->len)
            break;
        off += flen;
        if (cap->c2s[off - flen] == type)
            return off;
    }
    return 0;
}

static void assert_error_reply(struct sim *sim, int sock, uint32_t reason)
{
    struct sim_sock_info si;
    uint32_t code;
    ck_assert_int_eq(sim_sock_info(sim, sock, &si), 0);
    ck_assert_msg(si.raw_rx_len >= MPT_FRAME_HDR_LEN + 5, "no ERROR frame came back (%zu bytes)",
                  si.raw_rx_len);
    ck_assert_uint_eq(si.raw_rx[0], MPT_FT_ERROR);
    code = (uint32_t)si.raw_rx[4] << 24 | (uint32_t)si.raw_rx[5] << 16 |
           (uint32_t)si.raw_rx[6] << 8 | si.raw_rx[7];
    ck_assert_uint_eq(code, reason);
    ck_assert_msg(si.eof[SIM_CLIENT] || si.reset, "the server did not close the refused socket");
    ck_assert_int_eq(si.up[SIM_SERVER], 0);
}

START_TEST(join_ack_with_wrong_hmac)
{
    struct capture cap;
    struct sim_cfg cfg;
    struct sim *sim;
    struct sim_sock_info si;
    two_paths(&cfg, &cap);
    cap.flip_join_ack = 1;
    cfg.rejoin = 0;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_run(sim);
    assert_complete(sim);
    ck_assert_int_eq(sim_sock_info(sim, 1, &si), 0);
    ck_assert_int_eq(si.path, 1);
    ck_assert_msg(si.input_error[SIM_CLIENT] == MPT_EAUTH || si.down_error[SIM_CLIENT] == MPT_EAUTH,
                  "client did not refuse the altered JOIN_ACK with MPT_EAUTH (input %s, down %s)",
                  mpt_err_name(si.input_error[SIM_CLIENT]), mpt_err_name(si.down_error[SIM_CLIENT]));
    ck_assert_int_eq(si.up[SIM_CLIENT], 0);
    ck_assert_int_eq(si.up[SIM_SERVER], 0);
    sim_free(sim);
}
END_TEST

static void open_raw_unknown_token(struct sim *sim, void *arg)
{
    struct capture *cap = arg;
    uint8_t buf[256];
    size_t n = through_frame(cap, MPT_FT_JOIN);
    ck_assert_msg(n > 0, "no JOIN captured (%zu bytes)", cap->len);
    memcpy(buf, cap->c2s, n);
    buf[MPT_PREAMBLE_JOIN_LEN + MPT_FRAME_HDR_LEN + 3] ^= 0x5a; /* inside the token */
    cap->raw_sock = sim_open_raw(sim, 1, buf, n);
    ck_assert_int_ge(cap->raw_sock, 0);
}

START_TEST(join_with_unknown_token)
{
    struct capture cap;
    struct sim_cfg cfg;
    struct sim *sim;
    struct sim_sock_info si;
    two_paths(&cfg, &cap);
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_call(sim, 1 * SIM_S, open_raw_unknown_token, &cap);
    sim_run(sim);
    assert_complete(sim);
    ck_assert_int_eq(sim_sock_info(sim, cap.raw_sock, &si), 0);
    ck_assert_int_eq(si.accept_error, MPT_ETOKEN);
    assert_error_reply(sim, cap.raw_sock, MPT_REASON_UNKNOWN_TOKEN);
    sim_free(sim);
}
END_TEST

static void open_raw_replay(struct sim *sim, void *arg)
{
    struct capture *cap = arg;
    size_t n = through_frame(cap, MPT_FT_JOIN_CONFIRM);
    ck_assert_msg(n > 0, "no JOIN + JOIN_CONFIRM captured (%zu bytes)", cap->len);
    cap->raw_sock = sim_open_raw(sim, 1, cap->c2s, n);
    ck_assert_int_ge(cap->raw_sock, 0);
}

START_TEST(replayed_join)
{
    struct capture cap;
    struct sim_cfg cfg;
    struct sim *sim;
    struct sim_sock_info si;
    two_paths(&cfg, &cap);
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_call(sim, 1 * SIM_S, open_raw_replay, &cap);
    sim_run(sim);
    assert_complete(sim);
    ck_assert_int_eq(sim_sock_info(sim, 1, &si), 0);
    ck_assert_int_eq(si.up[SIM_SERVER], 1); /* the original join worked */
    ck_assert_int_eq(sim_sock_info(sim, cap.raw_sock, &si), 0);
    ck_assert_msg(si.accept_error == MPT_EREPLAY, "replayed join: accept gave %s, input %s",
                  mpt_err_name(si.accept_error), mpt_err_name(si.input_error[SIM_SERVER]));
    assert_error_reply(sim, cap.raw_sock, MPT_REASON_REPLAY);
    sim_free(sim);
}
END_TEST

START_TEST(joins_beyond_server_limit)
{
    struct sim_cfg cfg;
    struct sim *sim;
    int refused = 0;
    sim_cfg_default(&cfg);
    cfg.seed = 78;
    cfg.npaths = 4;
    for (int p = 0; p < 4; p++) {
        cfg.path[p].rate[0] = cfg.path[p].rate[1] = (10 + 5 * (uint64_t)p) * SIM_MBPS;
        cfg.path[p].delay[0] = cfg.path[p].delay[1] = (5 + 10 * (uint64_t)p) * SIM_MS;
    }
    cfg.bytes[0] = cfg.bytes[1] = BYTES;
    cfg.settings[SIM_SERVER].max_subflows = 2;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_run(sim);
    assert_complete(sim);
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        sim_sock_info(sim, k, &si);
        if (si.accept_error) {
            ck_assert_int_eq(si.accept_error, MPT_ETOOMANY);
            ck_assert_int_eq(si.up[SIM_CLIENT], 0);
            refused++;
        }
    }
    ck_assert_int_eq(refused, 2);
    sim_free(sim);
}
END_TEST

static void open_one_more(struct sim *sim, void *arg)
{
    int *r = arg;
    *r = sim_open_subflow(sim, 0, 0);
}

START_TEST(client_own_limit)
{
    struct sim_cfg cfg;
    struct sim *sim;
    int r = 0;
    sim_cfg_default(&cfg);
    cfg.seed = 79;
    cfg.npaths = 2;
    cfg.path[1] = cfg.path[0];
    cfg.bytes[0] = cfg.bytes[1] = 2 * SIM_MIB;
    cfg.settings[SIM_CLIENT].max_subflows = 2;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_call(sim, 500 * SIM_MS, open_one_more, &r);
    sim_run(sim);
    assert_complete(sim);
    ck_assert_int_eq(r, MPT_ETOOMANY);
    sim_free(sim);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_join");
    TCase *tc = tcase_create("join");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, join_ack_with_wrong_hmac);
    tcase_add_test(tc, join_with_unknown_token);
    tcase_add_test(tc, replayed_join);
    tcase_add_test(tc, joins_beyond_server_limit);
    tcase_add_test(tc, client_own_limit);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
