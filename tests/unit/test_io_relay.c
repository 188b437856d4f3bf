/*
 * Real sockets through a TCP-splitting relay (issue 8, item 2): every
 * subflow goes client -> relay -> server on loopback, and the relay, like a
 * satellite or cellular performance-enhancing proxy, takes bytes off the
 * sender at once (so the kernel's srtt is that of loopback) but delivers them
 * 300 ms later in each direction. DATA to DATA_ACK thus takes over 600 ms
 * while TCP reports well under a millisecond; a sender that judged stalls by
 * the kernel's srtt would reinject most of its window. With no loss, at most
 * 1.05x the payload may be sent in each direction.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

#define DELAY_MS 300
#define BYTES (1u << 20)
#define MAXP 8
#define QCAP (16u << 20)

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the relay ---------------------------------------------------------------- */

struct chunk {
    uint64_t at;
    size_t len, off;
    struct chunk *next;
    uint8_t data[];
};

struct dir {
    int from, to;
    struct chunk *head, *tail;
    size_t queued;
    int eof, shut;
};

struct pair {
    int used;
    struct dir d[2];
};

struct relay {
    int lfd, port, target_port;
    volatile int stop;
    struct pair p[MAXP];
    pthread_t th;
};

static void dir_free(struct dir *d)
{
    while (d->head) {
        struct chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
}

static void pair_close(struct pair *p)
{
    close(p->d[0].from);
    close(p->d[0].to);
    dir_free(&p->d[0]);
    dir_free(&p->d[1]);
    p->used = 0;
}

static int dir_read(struct dir *d)
{
    uint8_t buf[65536];
    ssize_t n = read(d->from, buf, sizeof buf);

    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0) {
        d->eof = 1;
        return 0;
    }
    struct chunk *c = malloc(sizeof *c + (size_t)n);
    if (!c)
        return -1;
    c->at = now_ms() + DELAY_MS;
    c->len = (size_t)n;
    c->off = 0;
    c->next = NULL;
    memcpy(c->data, buf, (size_t)n);
    if (d->tail)
        d->tail->next = c;
    else
        d->head = c;
    d->tail = c;
    d->queued += (size_t)n;
    return 0;
}

static int dir_write(struct dir *d, uint64_t now)
{
    while (d->head && d->head->at <= now) {
        struct chunk *c = d->head;
        ssize_t n = write(d->to, c->data + c->off, c->len - c->off);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        c->off += (size_t)n;
        d->queued -= (size_t)n;
        if (c->off < c->len)
            return 0;
        d->head = c->next;
        if (!d->head)
            d->tail = NULL;
        free(c);
    }
    if (!d->head && d->eof && !d->shut) {
        shutdown(d->to, SHUT_WR);
        d->shut = 1;
    }
    return 0;
}

static void relay_accept(struct relay *r)
{
    struct sockaddr_in a;
    int c = accept(r->lfd, NULL, NULL), s;

    if (c < 0)
        return;
    s = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)r->target_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        close(c);
        if (s >= 0)
            close(s);
        return;
    }
    fcntl(c, F_SETFL, O_NONBLOCK);
    fcntl(s, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < MAXP; i++) {
        if (r->p[i].used)
            continue;
        memset(&r->p[i], 0, sizeof r->p[i]);
        r->p[i].used = 1;
        r->p[i].d[0].from = c;
        r->p[i].d[0].to = s;
        r->p[i].d[1].from = s;
        r->p[i].d[1].to = c;
        return;
    }
    close(c);
    close(s);
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;

    while (!r->stop) {
        struct pollfd pf[1 + 4 * MAXP];
        int n = 0, map[1 + 4 * MAXP];
        uint64_t now = now_ms(), next = now + 50;

        pf[n].fd = r->lfd;
        pf[n].events = POLLIN;
        map[n++] = -1;
        for (int i = 0; i < MAXP; i++) {
            if (!r->p[i].used)
                continue;
            for (int k = 0; k < 2; k++) {
                struct dir *d = &r->p[i].d[k];
                if (!d->eof && d->queued < QCAP) {
                    pf[n].fd = d->from;
                    pf[n].events = POLLIN;
                    map[n++] = i * 2 + k;
                }
                if (d->head && d->head->at <= now) {
                    pf[n].fd = d->to;
                    pf[n].events = POLLOUT;
                    map[n++] = i * 2 + k;
                } else if (d->head && d->head->at < next) {
                    next = d->head->at;
                }
            }
        }
        poll(pf, (nfds_t)n, (int)(next > now ? next - now : 0));
        now = now_ms();
        for (int j = 0; j < n; j++) {
            if (map[j] < 0) {
                if (pf[j].revents & POLLIN)
                    relay_accept(r);
                continue;
            }
            struct pair *p = &r->p[map[j] / 2];
            struct dir *d = &p->d[map[j] % 2];
            int rc = 0;
            if (!p->used)
                continue;
            if (pf[j].events == POLLIN && pf[j].revents)
                rc = dir_read(d);
            else if (pf[j].events == POLLOUT && pf[j].revents)
                rc = dir_write(d, now);
            if (rc < 0 || (p->d[0].shut && p->d[1].shut))
                pair_close(p);
        }
        for (int i = 0; i < MAXP; i++)
            for (int k = 0; k < 2 && r->p[i].used; k++)
                if (dir_write(&r->p[i].d[k], now) < 0)
                    pair_close(&r->p[i]);
    }
    for (int i = 0; i < MAXP; i++)
        if (r->p[i].used)
            pair_close(&r->p[i]);
    return NULL;
}

static void relay_start(struct relay *r, int target_port)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    int one = 1;

    memset(r, 0, sizeof *r);
    r->target_port = target_port;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(r->lfd, 0);
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(r->lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(r->lfd, 16), 0);
    getsockname(r->lfd, (struct sockaddr *)&a, &l);
    r->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&r->th, NULL, relay_main, r), 0);
}

static void relay_stop(struct relay *r)
{
    r->stop = 1;
    pthread_join(r->th, NULL);
    close(r->lfd);
}

/* ---- the server: its own context on its own thread ------------------------------ */

static uint8_t pat[BYTES];

struct server {
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_info info;
    uint64_t got;
    int rc;
    pthread_t th;
};

static void *server_main(void *arg)
{
    struct server *sv = arg;
    struct mpt_socket *s;
    static uint8_t buf[65536];
    ssize_t n;

    sv->rc = mpt_blocking_accept(sv->l, 20000, &s);
    if (sv->rc < 0)
        return NULL;
    sv->rc = (int)mpt_blocking_send_all(s, pat, sizeof pat, 30000);
    if (sv->rc < 0 || (sv->rc = mpt_shutdown(s)) < 0)
        return NULL;
    while ((n = mpt_blocking_recv(s, buf, sizeof buf, 30000)) > 0)
        sv->got += (uint64_t)n;
    if (n < 0) {
        sv->rc = (int)n;
        return NULL;
    }
    sv->info.size = sizeof sv->info;
    mpt_get_info(s, &sv->info);
    sv->rc = mpt_blocking_close(s, 30000);
    return NULL;
}

START_TEST(long_rtt_through_splitting_relay)
{
    struct mpt_config cfg;
    struct server sv;
    struct relay r;
    struct mpt_ctx *ctx;
    struct mpt_socket *s;
    struct mpt_info ci;
    static uint8_t buf[65536];
    const char *lo[] = {"127.0.0.1"};
    uint64_t got = 0, t0;
    ssize_t n;

    for (size_t i = 0; i < sizeof pat; i++)
        pat[i] = (uint8_t)(i * 2654435761u >> 13);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.subflows_per_path = 2; /* two subflows, both through the relay */
    memset(&sv, 0, sizeof sv);
    ck_assert_int_eq(mpt_ctx_new(&sv.ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_listen(sv.ctx, lo, 1, 0, NULL, NULL, &sv.l), 0);
    relay_start(&r, mpt_listener_port(sv.l));
    ck_assert_int_eq(pthread_create(&sv.th, NULL, server_main, &sv), 0);

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    t0 = now_ms();
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)r.port, lo, 1, 10000, &s), 0);
    ck_assert_int_ge(now_ms() - t0, 2 * DELAY_MS - 20); /* the relay really delays */
    ck_assert_int_eq(mpt_blocking_send_all(s, pat, sizeof pat, 30000), (long)sizeof pat);
    ck_assert_int_eq(mpt_shutdown(s), 0);
    while ((n = mpt_blocking_recv(s, buf, sizeof buf, 30000)) > 0) {
        ck_assert_int_eq(memcmp(buf, pat + got, (size_t)n), 0);
        got += (uint64_t)n;
    }
    ck_assert_int_eq(n, 0);
    ck_assert_uint_eq(got, sizeof pat);
    ci.size = sizeof ci;
    ck_assert_int_eq(mpt_get_info(s, &ci), 0);
    ck_assert_int_eq(mpt_blocking_close(s, 30000), 0);
    pthread_join(sv.th, NULL);
    relay_stop(&r);
    ck_assert_int_eq(sv.rc, 0);
    ck_assert_uint_eq(sv.got, sizeof pat);
    printf("through a %d ms relay: client sent %llu (%llu reinjected), server sent %llu (%llu "
           "reinjected) for %u bytes each way\n",
           DELAY_MS, (unsigned long long)ci.bytes_sent, (unsigned long long)ci.bytes_reinjected,
           (unsigned long long)sv.info.bytes_sent, (unsigned long long)sv.info.bytes_reinjected,
           BYTES);
    ck_assert_uint_le(ci.bytes_sent * 100, (uint64_t)BYTES * 105);
    ck_assert_uint_le(sv.info.bytes_sent * 100, (uint64_t)BYTES * 105);
    mpt_listener_close(sv.l);
    mpt_ctx_free(sv.ctx);
    mpt_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io_relay");
    TCase *tc = tcase_create("io");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, long_rtt_through_splitting_relay);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
