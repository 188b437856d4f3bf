/*
 * The simulator: see sim.h for the model. Implementation notes:
 *
 *  - Events live in a binary min-heap ordered by (time, sequence number), so
 *    equal-time events run in the order they were scheduled: same seed, same
 *    trace.
 *  - A simulated socket has two pipes (one per direction). A pipe keeps the
 *    bytes written and not yet TCP-acked in a ring and four stream offsets:
 *    written >= transmitted >= arrived >= acked. Serialisation, arrival and
 *    ack are events carrying offsets, never bytes; bytes are copied once into
 *    the ring (from the engine's iovecs) and once out of it into the
 *    receiver's reassembly buffer, which keeps partial frames between calls
 *    to mpt_conn_sf_input().
 *  - After every event, every connection gets a "pass": drain events, run the
 *    application (recv, send, shutdown), drain each subflow's output into its
 *    socket, detach subflows the engine failed or closed, re-arm the timer.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpt/error.h>

#define MAX_ENTS 64
#define GEN_BUF (64 * 1024)
#define LIVELOCK_EVENTS 2000000u
#define MAX_PASS_ITERS 16

/* ---- PRNG, stream generator, hash ------------------------------------------ */

uint64_t sim_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
    uint64_t st = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = sim_splitmix64(&st);
}

uint64_t sim_rng_next(struct sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sim_rng_below(struct sim_rng *r, uint64_t n)
{
    /* Lemire's multiply-shift; the tiny bias does not matter here. */
    return (uint64_t)(((unsigned __int128)sim_rng_next(r) * n) >> 64);
}

static uint64_t stream_word(uint64_t key, uint64_t idx)
{
    uint64_t z = key + idx * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sim_stream_fill(uint64_t key, uint64_t off, uint8_t *buf, size_t len)
{
    while (len > 0 && (off & 7)) {
        *buf++ = (uint8_t)(stream_word(key, off >> 3) >> ((off & 7) * 8));
        off++;
        len--;
    }
    while (len >= 8) {
        uint64_t w = stream_word(key, off >> 3);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(buf, &w, 8);
#else
        for (int i = 0; i < 8; i++)
            buf[i] = (uint8_t)(w >> (i * 8));
#endif
        buf += 8;
        off += 8;
        len -= 8;
    }
    while (len > 0) {
        *buf++ = (uint8_t)(stream_word(key, off >> 3) >> ((off & 7) * 8));
        off++;
        len--;
    }
}

#define HASH_P1 0x9e3779b185ebca87ull
#define HASH_P2 0xc2b2ae3d27d4eb4full

static uint64_t hash_word(uint64_t h, uint64_t w)
{
    h ^= w * HASH_P2;
    h = rotl(h, 31) * HASH_P1;
    return h;
}

void sim_hash_init(struct sim_hash *h)
{
    memset(h, 0, sizeof *h);
    h->h = 0x27d4eb2f165667c5ull;
}

void sim_hash_update(struct sim_hash *h, const void *data, size_t len)
{
    const uint8_t *p = data;
    h->len += len;
    while (len > 0 && h->ncarry > 0) {
        h->carry |= (uint64_t)*p++ << (h->ncarry * 8);
        len--;
        if (++h->ncarry == 8) {
            h->h = hash_word(h->h, h->carry);
            h->carry = 0;
            h->ncarry = 0;
        }
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* host order: both sides hash on the same host */
        h->h = hash_word(h->h, w);
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        h->carry |= (uint64_t)*p++ << (h->ncarry * 8);
        h->ncarry++;
        len--;
    }
}

uint64_t sim_hash_final(const struct sim_hash *hs)
{
    uint64_t h = hs->h;
    if (hs->ncarry)
        h = hash_word(h, hs->carry);
    h ^= hs->len;
    h ^= h >> 33;
    h *= HASH_P2;
    h ^= h >> 29;
    return h;
}

/* ---- Data structures -------------------------------------------------------- */

enum ev_kind {
    EV_TX_DONE,  /* a = sock, b = dir */
    EV_ARRIVE,   /* a = sock, b = dir, c = offset */
    EV_ACK,      /* a = sock, b = dir, c = offset */
    EV_RST,      /* a = sock, b = receiving side */
    EV_CONNECT,  /* a = sock */
    EV_TIMER,    /* a = ent, c = generation */
    EV_SCRIPT,   /* a = script index */
    EV_WAKE,     /* nothing: just a pass */
};

struct event {
    uint64_t t, seq;
    int kind, a, b;
    uint64_t c;
};

enum script_kind { SC_STALL, SC_FAIL, SC_RECOVER, SC_RATE, SC_DELAY, SC_PAUSE, SC_CALL };

struct script {
    enum script_kind kind;
    int path, dir;
    uint64_t value;
    sim_call_fn fn;
    void *arg;
};

struct pipe {
    uint8_t *ring;
    size_t cap;
    uint64_t write_off, tx_off, arr_off, ack_off;
    uint64_t tx_end;
    int tx_busy, stopped; /* stopped: the writer reset the socket */
    uint64_t last_arrive_t, last_ack_t;
    int parked_tx, parked_any;
    uint64_t parked_arrive, parked_ack;
    int fin;
    uint64_t fin_off;
    int fin_delivered;
    /* cfg.tcp_model */
    uint64_t cwnd, ssthresh, ai_acc, recover_until;
    uint32_t retrans;
};

enum end_state { END_PENDING, END_ATTACHED, END_RAW, END_DONE };

struct end {
    enum end_state st;
    int ent, sf;
    uint8_t *rx;
    size_t rxlen, rxcap;
};

struct sock {
    int id, path, raw, dead, connected, connect_parked, rst_parked[2];
    int bulk, bulk_dir; /* sim_add_tcp_flow: writes forever in bulk_dir, nobody reads */
    struct end end[2];    /* [SIM_CLIENT], [SIM_SERVER] */
    struct pipe p[2];     /* [SIM_C2S] written by the client, [SIM_S2C] by the server */
    struct sim_sock_info info;
    uint8_t *raw_tx;
    size_t raw_tx_len;
    uint8_t *raw_rx;
    size_t raw_rx_len, raw_rx_cap;
};

struct ent {
    struct mpt_conn *c;
    int side, main, final;
    uint64_t armed_t, gen;
    enum mpt_conn_state last_state;
    int sock_of_sf[MPT_MAX_SUBFLOWS_LIMIT];
    int last_sock_of_sf[MPT_MAX_SUBFLOWS_LIMIT]; /* kept after detach, for events */
};

struct app {
    int ent; /* -1 until the connection exists */
    int established, shut, write_err, read_err;
    uint64_t read_paused_until;
    struct sim_hash hs_sent, hs_recv;
    uint8_t *gen;
    uint64_t gen_off;
    size_t gen_len;
    uint8_t *rbuf, *vbuf;
};

struct path {
    struct sim_path_cfg cfg;
    int stalled, failed;
};

struct sim {
    struct sim_cfg cfg;
    uint64_t now, seq;
    struct sim_hash golden; /* every byte each engine wrote and every event, with times */
    struct mpt_pm *pm;      /* cfg.use_pm */
    uint64_t bn_busy[SIM_MAX_BOTTLENECKS][2]; /* when each bottleneck's queue drains */
    struct sim_rng loss_rng; /* random loss, drawn apart from everything else */
    uint64_t pm_wake;       /* EV_WAKE pushed for the path manager at this time */
    struct event *heap;
    size_t nheap, capheap;
    struct script *scripts;
    size_t nscripts, capscripts;
    struct path path[SIM_MAX_PATHS];
    struct sock **socks;
    int nsocks, capsocks;
    struct ent ent[MAX_ENTS];
    int nents;
    struct mpt_server *srv;
    struct app app[2];
    uint64_t key[2]; /* stream keys per direction */
    struct sim_rng rng_ep[2];
    struct sim_result res;
    uint64_t last_progress;
    uint64_t same_t_count, same_t;
    char msg[1024];
    FILE *trace;
    int trace_frames; /* SIM_TRACE=2: every frame an engine consumes */
    double clock_cost; /* ns per clock read (measure_engine) */
    int started;
};

static const char *side_name(int side)
{
    return side == SIM_CLIENT ? "client" : "server";
}

static void trace(struct sim *sim, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct sim *sim, const char *fmt, ...)
{
    va_list ap;
    if (!sim->trace)
        return;
    fprintf(sim->trace, "[%4" PRIu64 ".%06" PRIu64 "] ", sim->now / SIM_S, (sim->now % SIM_S) / 1000);
    va_start(ap, fmt);
    vfprintf(sim->trace, fmt, ap);
    va_end(ap);
    fputc('\n', sim->trace);
}

static void fail_msg(struct sim *sim, enum sim_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_msg(struct sim *sim, enum sim_outcome o, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (sim->res.outcome != SIM_RUNNING)
        return;
    sim->res.outcome = o;
    n = snprintf(sim->msg, sizeof sim->msg, "%s at t=%.6f s (seed %" PRIu64 "): ",
                 sim_outcome_name(o), (double)sim->now / 1e9, sim->cfg.seed);
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof sim->msg)
        vsnprintf(sim->msg + n, sizeof sim->msg - (size_t)n, fmt, ap);
    va_end(ap);
    trace(sim, "%s", sim->msg);
}

/* ---- Engine call timing ----------------------------------------------------- */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* With cfg.measure_engine, every engine call is timed; the cost of the two
 * clock reads themselves (calibrated in sim_new) is subtracted per call. */
#define ENGINE(sim, stmt)                                                                          \
    do {                                                                                           \
        if ((sim)->cfg.measure_engine) {                                                           \
            uint64_t t0_ = mono_ns();                                                              \
            stmt;                                                                                  \
            (sim)->res.engine_ns += (double)(mono_ns() - t0_) - (sim)->clock_cost;                 \
            (sim)->res.engine_calls++;                                                             \
        } else {                                                                                   \
            stmt;                                                                                  \
        }                                                                                          \
    } while (0)

static double calibrate_clock(void)
{
    uint64_t t0 = mono_ns(), t1 = t0;
    int n = 0;
    while (n < 200000 && t1 - t0 < 20 * SIM_MS) {
        t1 = mono_ns();
        n++;
    }
    return n > 0 ? (double)(t1 - t0) / n : 0;
}

/* ---- Heap --------------------------------------------------------------------- */

static int ev_less(const struct event *x, const struct event *y)
{
    return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

static void push(struct sim *sim, uint64_t t, int kind, int a, int b, uint64_t c)
{
    struct event e = { .t = t < sim->now ? sim->now : t, .seq = sim->seq++, .kind = kind, .a = a,
                       .b = b, .c = c };
    size_t i;
    if (sim->nheap == sim->capheap) {
        size_t ncap = sim->capheap ? sim->capheap * 2 : 256;
        struct event *nh = realloc(sim->heap, ncap * sizeof *nh);
        if (!nh) {
            fail_msg(sim, SIM_INTERNAL, "out of memory (event heap)");
            return;
        }
        sim->heap = nh;
        sim->capheap = ncap;
    }
    i = sim->nheap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_less(&e, &sim->heap[parent]))
            break;
        sim->heap[i] = sim->heap[parent];
        i = parent;
    }
    sim->heap[i] = e;
}

static struct event pop(struct sim *sim)
{
    struct event top = sim->heap[0], last = sim->heap[--sim->nheap];
    size_t i = 0, n = sim->nheap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct event *best = &last;
        if (l < n && ev_less(&sim->heap[l], best)) {
            m = l;
            best = &sim->heap[l];
        }
        if (r < n && ev_less(&sim->heap[r], best))
            m = r;
        if (m == i)
            break;
        sim->heap[i] = sim->heap[m];
        i = m;
    }
    if (n > 0)
        sim->heap[i] = last;
    return top;
}

/* ---- Configuration ------------------------------------------------------------ */

void sim_cfg_default(struct sim_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = 1;
    cfg->npaths = 1;
    cfg->path[0].rate[0] = cfg->path[0].rate[1] = 10 * SIM_MBPS;
    cfg->path[0].delay[0] = cfg->path[0].delay[1] = 10 * SIM_MS;
    cfg->sndbuf = 256 * 1024;
    cfg->notsent_lowat = 64 * 1024;
    cfg->mss = 1448;
    mpt_core_settings_default(&cfg->settings[0]);
    mpt_core_settings_default(&cfg->settings[1]);
    cfg->shutdown[0] = cfg->shutdown[1] = 1;
    cfg->auto_join = 1;
    cfg->rejoin = 1;
    mpt_pm_settings_default(&cfg->pm);
    cfg->progress_timeout = 60 * SIM_S;
    cfg->time_limit = 7200 * SIM_S;
    cfg->read_chunk = 64 * 1024;
}

static void rand_fn(void *user, uint8_t *buf, size_t len)
{
    struct sim_rng *r = user;
    while (len > 0) {
        uint64_t w = sim_rng_next(r);
        size_t n = len < 8 ? len : 8;
        memcpy(buf, &w, n);
        buf += n;
        len -= n;
    }
}

static int sides_final(struct sim *sim);

int sim_new(const struct sim_cfg *cfg, struct sim **out)
{
    struct sim *sim = calloc(1, sizeof *sim);
    uint64_t st;
    if (!sim)
        return -1;
    sim->cfg = *cfg;
    if (sim->cfg.npaths < 1 || sim->cfg.npaths > SIM_MAX_PATHS)
        goto fail;
    if (sim->cfg.read_chunk == 0)
        sim->cfg.read_chunk = 64 * 1024;
    if (sim->cfg.mss == 0)
        sim->cfg.mss = 1448;
    sim->trace = cfg->trace;
    {
        const char *e = getenv("SIM_TRACE");
        if (!sim->trace && e && *e && strcmp(e, "0") != 0)
            sim->trace = stderr;
        sim->trace_frames = sim->trace && e && atoi(e) >= 2;
    }
    if (sim->cfg.measure_engine)
        sim->clock_cost = calibrate_clock();
    st = cfg->seed;
    sim->key[0] = sim_splitmix64(&st);
    sim->key[1] = sim_splitmix64(&st);
    sim_rng_seed(&sim->rng_ep[0], sim_splitmix64(&st));
    sim_rng_seed(&sim->rng_ep[1], sim_splitmix64(&st));
    sim_rng_seed(&sim->loss_rng, cfg->seed ^ 0x6c6f7373ull); /* apart: other draws unchanged */
    for (int s = 0; s < 2; s++) {
        sim->cfg.settings[s].rand = rand_fn;
        sim->cfg.settings[s].rand_user = &sim->rng_ep[s];
        sim->app[s].ent = -1;
        sim_hash_init(&sim->golden);
        sim_hash_init(&sim->app[s].hs_sent);
        sim_hash_init(&sim->app[s].hs_recv);
        sim->app[s].gen = malloc(GEN_BUF);
        sim->app[s].rbuf = malloc(sim->cfg.read_chunk);
        sim->app[s].vbuf = malloc(sim->cfg.read_chunk);
        if (!sim->app[s].gen || !sim->app[s].rbuf || !sim->app[s].vbuf)
            goto fail;
        sim->res.dir[s].mismatch = -1;
    }
    for (int p = 0; p < sim->cfg.npaths; p++) {
        sim->path[p].cfg = sim->cfg.path[p];
        for (int d = 0; d < 2; d++) {
            if (sim->path[p].cfg.rate[d] == 0)
                sim->path[p].cfg.rate[d] = 1;
        }
    }
    if (mpt_server_new(&sim->cfg.settings[SIM_SERVER], &sim->srv) < 0)
        goto fail;
    if (mpt_conn_client_new(&sim->cfg.settings[SIM_CLIENT], 0, &sim->ent[0].c) < 0)
        goto fail;
    sim->ent[0].side = SIM_CLIENT;
    sim->ent[0].main = 1;
    sim->ent[0].armed_t = MPT_TIME_NEVER;
    sim->ent[0].last_state = mpt_conn_state(sim->ent[0].c);
    for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++)
        sim->ent[0].sock_of_sf[i] = sim->ent[0].last_sock_of_sf[i] = -1;
    sim->nents = 1;
    sim->app[SIM_CLIENT].ent = 0;
    for (int side = 0; side < 2; side++)
        if (cfg->write_start[side])
            push(sim, cfg->write_start[side], EV_WAKE, 0, 0, 0);
    if (cfg->use_pm) {
        if (mpt_pm_new(&cfg->pm, &sim->pm) < 0)
            goto fail;
        for (int p = 0; p < cfg->npaths; p++)
            mpt_pm_add_path(sim->pm, 0, cfg->path[p].backup, 0);
        mpt_pm_add_addr(sim->pm, 0, 0, 0, NULL);
        sim->pm_wake = MPT_TIME_NEVER;
    }
    *out = sim;
    return 0;
fail:
    sim_free(sim);
    return -1;
}

static void sock_free_bufs(struct sock *k)
{
    for (int i = 0; i < 2; i++) {
        free(k->p[i].ring);
        k->p[i].ring = NULL;
        free(k->end[i].rx);
        k->end[i].rx = NULL;
    }
    free(k->raw_tx);
    k->raw_tx = NULL;
}

void sim_free(struct sim *sim)
{
    if (!sim)
        return;
    for (int i = 0; i < sim->nents; i++) {
        if (sim->ent[i].c)
            mpt_conn_free(sim->ent[i].c);
    }
    if (sim->srv)
        mpt_server_free(sim->srv);
    mpt_pm_free(sim->pm);
    for (int i = 0; i < sim->nsocks; i++) {
        sock_free_bufs(sim->socks[i]);
        free(sim->socks[i]->raw_rx);
        free(sim->socks[i]);
    }
    free(sim->socks);
    free(sim->heap);
    free(sim->scripts);
    for (int s = 0; s < 2; s++) {
        free(sim->app[s].gen);
        free(sim->app[s].rbuf);
        free(sim->app[s].vbuf);
    }
    free(sim);
}

/* ---- Scripts ------------------------------------------------------------------ */

static void add_script(struct sim *sim, uint64_t t, struct script sc)
{
    if (sim->nscripts == sim->capscripts) {
        size_t ncap = sim->capscripts ? sim->capscripts * 2 : 16;
        struct script *ns = realloc(sim->scripts, ncap * sizeof *ns);
        if (!ns) {
            fail_msg(sim, SIM_INTERNAL, "out of memory (scripts)");
            return;
        }
        sim->scripts = ns;
        sim->capscripts = ncap;
    }
    sim->scripts[sim->nscripts] = sc;
    push(sim, t, EV_SCRIPT, (int)sim->nscripts, 0, 0);
    sim->nscripts++;
}

void sim_at_stall(struct sim *sim, uint64_t t, int path)
{
    add_script(sim, t, (struct script){ .kind = SC_STALL, .path = path });
}

void sim_at_fail(struct sim *sim, uint64_t t, int path)
{
    add_script(sim, t, (struct script){ .kind = SC_FAIL, .path = path });
}

void sim_at_recover(struct sim *sim, uint64_t t, int path)
{
    add_script(sim, t, (struct script){ .kind = SC_RECOVER, .path = path });
}

void sim_at_rate(struct sim *sim, uint64_t t, int path, int dir, uint64_t rate)
{
    add_script(sim, t, (struct script){ .kind = SC_RATE, .path = path, .dir = dir, .value = rate });
}

void sim_at_delay(struct sim *sim, uint64_t t, int path, int dir, uint64_t delay)
{
    add_script(sim, t,
               (struct script){ .kind = SC_DELAY, .path = path, .dir = dir, .value = delay });
}

void sim_at_read_pause(struct sim *sim, uint64_t t, int side, uint64_t duration)
{
    add_script(sim, t,
               (struct script){ .kind = SC_PAUSE, .path = 0, .dir = side, .value = duration });
}

void sim_at_call(struct sim *sim, uint64_t t, sim_call_fn fn, void *arg)
{
    add_script(sim, t, (struct script){ .kind = SC_CALL, .fn = fn, .arg = arg });
}

/* ---- Pipes ----------------------------------------------------------------------- */

static uint64_t path_rtt(const struct sim *sim, int p)
{
    return sim->path[p].cfg.delay[0] + sim->path[p].cfg.delay[1];
}

static size_t chunk_for_rate(const struct sim *sim, uint64_t rate)
{
    uint64_t c = rate / 8 / 1000; /* 1 ms worth */
    if (c < 2ull * sim->cfg.mss)
        c = 2ull * sim->cfg.mss;
    if (c > 65536)
        c = 65536;
    return (size_t)c;
}

static uint64_t pipe_cwnd(const struct sim *sim, const struct sock *k, int dir)
{
    const struct path *p = &sim->path[k->path];
    if (sim->cfg.tcp_model)
        return k->p[dir].cwnd;
    uint64_t bdp = p->cfg.rate[dir] / 8 * path_rtt(sim, k->path) / SIM_S;
    uint64_t c = bdp + bdp / 4 + 2 * chunk_for_rate(sim, p->cfg.rate[dir]);
    if (c < 16ull * sim->cfg.mss)
        c = 16ull * sim->cfg.mss;
    return c;
}

/* Linux autotunes the send buffer; keep at least 2 BDP + lowat for the fastest
 * rate the path will have initially. */
static size_t sock_bufsize(const struct sim *sim, int path)
{
    const struct path *p = &sim->path[path];
    uint64_t r = p->cfg.rate[0] > p->cfg.rate[1] ? p->cfg.rate[0] : p->cfg.rate[1];
    uint64_t need = 2 * (r / 8 * path_rtt(sim, path) / SIM_S) + sim->cfg.notsent_lowat + 65536;
    return need > sim->cfg.sndbuf ? (size_t)need : sim->cfg.sndbuf;
}

static size_t pipe_free(const struct pipe *pp)
{
    return pp->cap - (size_t)(pp->write_off - pp->ack_off);
}

static size_t pipe_room(const struct sim *sim, const struct pipe *pp)
{
    size_t fr = pipe_free(pp), notsent = (size_t)(pp->write_off - pp->tx_off);
    size_t low = notsent < sim->cfg.notsent_lowat ? sim->cfg.notsent_lowat - notsent : 0;
    return fr < low ? fr : low;
}

static void ring_write(struct pipe *pp, const uint8_t *data, size_t len)
{
    size_t pos = (size_t)(pp->write_off % pp->cap);
    size_t first = pp->cap - pos < len ? pp->cap - pos : len;
    memcpy(pp->ring + pos, data, first);
    memcpy(pp->ring, data + first, len - first);
    pp->write_off += len;
}

static void ring_read(const struct pipe *pp, uint64_t off, uint8_t *out, size_t len)
{
    size_t pos = (size_t)(off % pp->cap);
    size_t first = pp->cap - pos < len ? pp->cap - pos : len;
    memcpy(out, pp->ring + pos, first);
    memcpy(out + first, pp->ring, len - first);
}

static void bulk_fill(struct pipe *pp)
{
    static const uint8_t zeros[4096];
    size_t n;

    while ((n = pipe_free(pp)) > 0)
        ring_write(pp, zeros, n < sizeof zeros ? n : sizeof zeros);
}

static void try_tx(struct sim *sim, struct sock *k, int dir)
{
    struct pipe *pp = &k->p[dir];
    struct path *p = &sim->path[k->path];
    uint64_t unsent, inflight, cwnd, chunk, ser;
    if (k->bulk && dir == k->bulk_dir && k->connected)
        bulk_fill(pp);
    if (k->dead || pp->tx_busy || pp->stopped || p->stalled || p->failed || !k->connected)
        return;
    unsent = pp->write_off - pp->tx_off;
    if (unsent == 0)
        return;
    inflight = pp->tx_off - pp->ack_off;
    cwnd = pipe_cwnd(sim, k, dir);
    if (inflight >= cwnd)
        return;
    chunk = chunk_for_rate(sim, p->cfg.rate[dir]);
    if (chunk > unsent)
        chunk = unsent;
    ser = (chunk * 8 * SIM_S + p->cfg.rate[dir] - 1) / p->cfg.rate[dir];
    pp->tx_busy = 1;
    pp->tx_end = pp->tx_off + chunk;
    push(sim, sim->now + ser, EV_TX_DONE, k->id, dir, 0);
}

/* ---- Sockets ------------------------------------------------------------------- */

static struct sock *sock_new(struct sim *sim, int path)
{
    struct sock *k;
    size_t cap = sock_bufsize(sim, path);
    if (sim->nsocks == sim->capsocks) {
        int ncap = sim->capsocks ? sim->capsocks * 2 : 16;
        struct sock **ns = realloc(sim->socks, (size_t)ncap * sizeof *ns);
        if (!ns)
            return NULL;
        sim->socks = ns;
        sim->capsocks = ncap;
    }
    k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->id = sim->nsocks;
    k->info.pm_slot = -1;
    k->info.t_open = sim->now;
    k->path = path;
    for (int i = 0; i < 2; i++) {
        k->p[i].cwnd = 10ull * sim->cfg.mss;
        k->p[i].ssthresh = UINT64_MAX;
        k->p[i].cap = cap;
        k->p[i].ring = malloc(cap);
        k->end[i].st = END_PENDING;
        k->end[i].ent = -1;
        k->end[i].sf = -1;
        k->end[i].rxcap = 2 * 65536 + 16;
        k->end[i].rx = malloc(k->end[i].rxcap);
        if (!k->p[i].ring || !k->end[i].rx) {
            sock_free_bufs(k);
            free(k);
            return NULL;
        }
    }
    k->info.path = path;
    k->info.client_sf = k->info.server_sf = -1;
    sim->socks[sim->nsocks++] = k;
    return k;
}

static void sock_maybe_dead(struct sim *sim, struct sock *k)
{
    if (k->dead)
        return;
    if (k->end[0].st == END_DONE && k->end[1].st == END_DONE && k->p[0].fin_delivered &&
        k->p[1].fin_delivered) {
        k->dead = 1;
        sock_free_bufs(k);
        trace(sim, "sock %d: closed", k->id);
    }
}

static void sock_kill(struct sim *sim, struct sock *k)
{
    if (k->dead)
        return;
    k->dead = 1;
    k->end[0].st = k->end[1].st = END_DONE;
    sock_free_bufs(k);
}

static void detach_end(struct sim *sim, struct sock *k, int side)
{
    struct end *e = &k->end[side];
    if (e->st == END_ATTACHED && e->ent >= 0) {
        struct ent *en = &sim->ent[e->ent];
        if (e->sf >= 0 && en->sock_of_sf[e->sf] == k->id)
            en->sock_of_sf[e->sf] = -1;
        k->info.down[side] = 1;
    }
    e->st = END_DONE;
    e->rxlen = 0;
}

/* Our end `side` closes gracefully: FIN after the queued bytes. */
static void end_fin(struct sim *sim, struct sock *k, int side)
{
    int dir = side == SIM_CLIENT ? SIM_C2S : SIM_S2C;
    struct pipe *pp = &k->p[dir];
    detach_end(sim, k, side);
    if (k->dead || pp->fin)
        return;
    pp->fin = 1;
    pp->fin_off = pp->write_off;
    if (!k->connected)
        return;
    if (pp->arr_off == pp->fin_off && !pp->tx_busy)
        push(sim, sim->now + sim->path[k->path].cfg.delay[dir], EV_ARRIVE, k->id, dir,
             pp->fin_off);
    sock_maybe_dead(sim, k);
}

/* Our end `side` resets the socket: the peer learns one delay later. */
static void end_rst(struct sim *sim, struct sock *k, int side)
{
    int dir = side == SIM_CLIENT ? SIM_C2S : SIM_S2C;
    struct pipe *pp = &k->p[dir];
    int peer = !side;
    detach_end(sim, k, side);
    if (k->dead)
        return;
    pp->stopped = 1;
    if (k->end[peer].st == END_DONE) {
        sock_kill(sim, k);
        return;
    }
    if (!k->connected) {
        /* the SYN never completed: nothing reaches the peer */
        if (k->end[peer].st == END_PENDING)
            k->end[peer].st = END_DONE;
        sock_kill(sim, k);
        return;
    }
    {
        uint64_t t = sim->now + sim->path[k->path].cfg.delay[dir];
        if (t < pp->last_arrive_t)
            t = pp->last_arrive_t;
        push(sim, t, EV_RST, k->id, peer, 0);
    }
}

static void conn_sf_failed(struct sim *sim, struct sock *k, int side, int err)
{
    struct end *e = &k->end[side];
    if (e->st == END_ATTACHED) {
        struct ent *en = &sim->ent[e->ent];
        trace(sim, "sock %d: %s sf %d failed (%s)", k->id, side_name(side), e->sf,
              mpt_err_name(err));
        ENGINE(sim, mpt_conn_sf_failed(en->c, e->sf, err, sim->now));
    }
    detach_end(sim, k, side);
}

/* ---- Connections ------------------------------------------------------------- */

static int ent_new(struct sim *sim, struct mpt_conn *c, int side)
{
    struct ent *en;
    if (sim->nents == MAX_ENTS)
        return -1;
    en = &sim->ent[sim->nents];
    memset(en, 0, sizeof *en);
    en->c = c;
    en->side = side;
    en->armed_t = MPT_TIME_NEVER;
    en->last_state = mpt_conn_state(c);
    for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++)
        en->sock_of_sf[i] = en->last_sock_of_sf[i] = -1;
    return sim->nents++;
}

static int ent_of_conn(struct sim *sim, struct mpt_conn *c)
{
    for (int i = 0; i < sim->nents; i++) {
        if (sim->ent[i].c == c)
            return i;
    }
    return -1;
}

static void attach(struct sim *sim, struct sock *k, int side, int ent, int sf)
{
    struct ent *en = &sim->ent[ent];
    int old = en->sock_of_sf[sf];
    if (old >= 0 && old != k->id) {
        /* the engine reused a slot we had not seen die: drop the old socket */
        trace(sim, "sock %d: %s slot %d reused, resetting old socket", old, side_name(side), sf);
        end_rst(sim, sim->socks[old], side);
    }
    k->end[side].st = END_ATTACHED;
    k->end[side].ent = ent;
    k->end[side].sf = sf;
    en->sock_of_sf[sf] = k->id;
    en->last_sock_of_sf[sf] = k->id;
    if (side == SIM_CLIENT)
        k->info.client_sf = sf;
    else
        k->info.server_sf = sf;
}

int sim_open_subflow(struct sim *sim, int path, int backup)
{
    struct ent *en = &sim->ent[0];
    struct sock *k;
    int sf;
    if (path < 0 || path >= sim->cfg.npaths)
        return MPT_EINVAL;
    ENGINE(sim, sf = mpt_conn_add_subflow(en->c, (uint8_t)path, backup, sim->now));
    if (sf < 0) {
        trace(sim, "client: add_subflow on path %d refused: %s", path, mpt_err_name(sf));
        return sf;
    }
    k = sock_new(sim, path);
    if (!k) {
        fail_msg(sim, SIM_INTERNAL, "out of memory (socket)");
        return MPT_ENOMEM;
    }
    attach(sim, k, SIM_CLIENT, 0, sf);
    trace(sim, "sock %d: client sf %d connecting on path %d%s", k->id, sf, path,
          backup == 1 ? " (backup)" : backup == 2 ? " (secondary)" : backup == 3 ? " (never)" : "");
    /* SYN, SYN-ACK: one RTT (refused after one RTT if the path is down) */
    push(sim, sim->now + path_rtt(sim, path), EV_CONNECT, k->id, 0, 0);
    return k->id;
}

int sim_add_tcp_flow(struct sim *sim, int path, int dir)
{
    struct sock *k;

    if (path < 0 || path >= sim->cfg.npaths || (dir != SIM_C2S && dir != SIM_S2C))
        return MPT_EINVAL;
    if (!(k = sock_new(sim, path))) {
        fail_msg(sim, SIM_INTERNAL, "out of memory (socket)");
        return MPT_ENOMEM;
    }
    k->bulk = 1;
    k->bulk_dir = dir;
    k->info.raw = 1;
    k->end[SIM_CLIENT].st = k->end[SIM_SERVER].st = END_DONE; /* the receiver discards */
    trace(sim, "sock %d: plain TCP flow on path %d, %s", k->id, path,
          dir == SIM_C2S ? "client to server" : "server to client");
    push(sim, sim->now + path_rtt(sim, path), EV_CONNECT, k->id, 0, 0);
    return k->id;
}

int sim_open_raw(struct sim *sim, int path, const uint8_t *data, size_t len)
{
    struct sock *k;
    if (path < 0 || path >= sim->cfg.npaths)
        return MPT_EINVAL;
    k = sock_new(sim, path);
    if (!k)
        return MPT_ENOMEM;
    k->raw = 1;
    k->info.raw = 1;
    k->end[SIM_CLIENT].st = END_RAW;
    k->raw_tx = malloc(len ? len : 1);
    if (!k->raw_tx)
        return MPT_ENOMEM;
    memcpy(k->raw_tx, data, len);
    k->raw_tx_len = len;
    trace(sim, "sock %d: raw connection on path %d (%zu bytes)", k->id, path, len);
    push(sim, sim->now + path_rtt(sim, path), EV_CONNECT, k->id, 0, 0);
    return k->id;
}

void sim_raw_write(struct sim *sim, int sock, const uint8_t *data, size_t len)
{
    struct sock *k;
    struct pipe *pp;
    if (sock < 0 || sock >= sim->nsocks)
        return;
    k = sim->socks[sock];
    pp = &k->p[SIM_C2S];
    if (k->dead || !k->raw || pp->fin || pp->stopped)
        return;
    if (!k->connected) {
        uint8_t *n = realloc(k->raw_tx, k->raw_tx_len + len);
        if (!n)
            return;
        memcpy(n + k->raw_tx_len, data, len);
        k->raw_tx = n;
        k->raw_tx_len += len;
        return;
    }
    if (len > pipe_free(pp))
        len = pipe_free(pp);
    ring_write(pp, data, len);
    try_tx(sim, k, SIM_C2S);
}

/* ---- Receiving ------------------------------------------------------------------ */

static int rx_reserve(struct end *e, size_t add)
{
    if (e->rxlen + add <= e->rxcap)
        return 0;
    size_t ncap = e->rxcap;
    while (ncap < e->rxlen + add)
        ncap *= 2;
    uint8_t *n = realloc(e->rx, ncap);
    if (!n)
        return -1;
    e->rx = n;
    e->rxcap = ncap;
    return 0;
}

/* SIM_TRACE=2: one line per frame in buf[0..len) (complete frames only). */
static void trace_frames(struct sim *sim, const struct sock *k, int side, const uint8_t *buf,
                         size_t len)
{
    while (len > 0) {
        struct mpt_frame f;
        ssize_t n = mpt_frame_decode(buf, len, MPT_FRAME_MAX_BODY, &f);
        char extra[96] = "";
        if (n <= 0)
            return;
        switch (f.type) {
        case MPT_FT_DATA:
            snprintf(extra, sizeof extra, " dsn ..%06" PRIx64 " len %zu", f.u.data.dsn & 0xffffff,
                     f.u.data.len);
            break;
        case MPT_FT_DATA_ACK:
            snprintf(extra, sizeof extra, " ack ..%06" PRIx64 " window %" PRIu32 " ranges %u",
                     f.u.data_ack.ack & 0xffffff, f.u.data_ack.window, f.u.data_ack.nranges);
            break;
        case MPT_FT_DATA_FIN:
            snprintf(extra, sizeof extra, " dsn ..%06" PRIx64, f.u.data_fin.dsn & 0xffffff);
            break;
        case MPT_FT_FASTCLOSE:
        case MPT_FT_SUBFLOW_CLOSE:
        case MPT_FT_ERROR:
            snprintf(extra, sizeof extra, " reason %" PRIu32, f.u.close.reason);
            break;
        default:
            break;
        }
        trace(sim, "sock %d: %s <- %s%s", k->id, side_name(side), mpt_frame_type_name(f.type),
              extra);
        buf += n;
        len -= (size_t)n;
    }
}

static void feed_engine(struct sim *sim, struct sock *k, int side, size_t start)
{
    struct end *e = &k->end[side];
    struct ent *en = &sim->ent[e->ent];
    size_t off = start;
    while (off < e->rxlen && e->st == END_ATTACHED) {
        ssize_t r;
        ENGINE(sim, r = mpt_conn_sf_input(en->c, e->sf, e->rx + off, e->rxlen - off, sim->now));
        if (r < 0) {
            if (!k->info.input_error[side])
                k->info.input_error[side] = (int)r;
            trace(sim, "sock %d: %s sf %d input error %s", k->id, side_name(side), e->sf,
                  mpt_err_name((int)r));
            /* the engine failed the subflow: our side resets the socket */
            end_rst(sim, k, side);
            e->rxlen = 0;
            return;
        }
        if (r == 0)
            break;
        if (sim->trace_frames)
            trace_frames(sim, k, side, e->rx + off, (size_t)r);
        off += (size_t)r;
    }
    if (e->st != END_ATTACHED) {
        e->rxlen = 0;
        return;
    }
    memmove(e->rx, e->rx + off, e->rxlen - off);
    e->rxlen -= off;
    if (e->rxlen >= MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY)
        fail_msg(sim, SIM_DEADLOCK,
                 "sock %d: %s engine left %zu bytes (a complete frame) unconsumed on sf %d",
                 k->id, side_name(side), e->rxlen, e->sf);
}

static void server_accept(struct sim *sim, struct sock *k)
{
    struct end *e = &k->end[SIM_SERVER];
    struct mpt_accept a;
    int r, ent;
    memset(&a, 0, sizeof a);
    ENGINE(sim, r = mpt_server_accept(sim->srv, e->rx, e->rxlen, sim->now, &a));
    if (r == MPT_EINCOMPLETE)
        return;
    if (r < 0) {
        struct pipe *pp = &k->p[SIM_S2C];
        k->info.accept_error = r;
        sim->res.accept_errors++;
        trace(sim, "sock %d: server refused the connection: %s (reply %zu bytes)", k->id,
              mpt_err_name(r), a.reply_len);
        if (a.reply_len > 0 && a.reply_len <= pipe_free(pp)) {
            ring_write(pp, a.reply, a.reply_len);
            try_tx(sim, k, SIM_S2C);
        }
        end_fin(sim, k, SIM_SERVER);
        return;
    }
    ent = ent_of_conn(sim, a.conn);
    if (ent < 0) {
        ent = ent_new(sim, a.conn, SIM_SERVER);
        if (ent < 0) {
            fail_msg(sim, SIM_INTERNAL, "too many server connections");
            return;
        }
        if (sim->app[SIM_SERVER].ent < 0) {
            sim->app[SIM_SERVER].ent = ent;
            sim->ent[ent].main = 1;
        } else {
            sim->res.extra_server_conns++;
        }
    }
    attach(sim, k, SIM_SERVER, ent, a.sf);
    trace(sim, "sock %d: server accepted: %s, sf %d", k->id, a.is_new ? "new connection" : "join",
          a.sf);
    if (a.consumed > e->rxlen)
        a.consumed = e->rxlen;
    feed_engine(sim, k, SIM_SERVER, a.consumed);
}

static void deliver(struct sim *sim, struct sock *k, int dir, uint64_t from, uint64_t to)
{
    int side = dir == SIM_C2S ? SIM_SERVER : SIM_CLIENT;
    struct end *e = &k->end[side];
    size_t len = (size_t)(to - from);
    uint8_t *dst;
    k->info.bytes[dir] += len;
    if (e->st == END_DONE)
        return; /* closed or reset end: TCP discards */
    if (e->st == END_RAW) {
        if (k->raw_rx_len + len > k->raw_rx_cap) {
            size_t ncap = k->raw_rx_cap ? k->raw_rx_cap : 1024;
            while (ncap < k->raw_rx_len + len)
                ncap *= 2;
            uint8_t *n = realloc(k->raw_rx, ncap);
            if (!n)
                return;
            k->raw_rx = n;
            k->raw_rx_cap = ncap;
        }
        ring_read(&k->p[dir], from, k->raw_rx + k->raw_rx_len, len);
        if (sim->cfg.tap)
            sim->cfg.tap(sim, k->id, dir, from, k->raw_rx + k->raw_rx_len, len, sim->cfg.tap_user);
        k->raw_rx_len += len;
        k->info.raw_rx = k->raw_rx;
        k->info.raw_rx_len = k->raw_rx_len;
        return;
    }
    if (rx_reserve(e, len) < 0) {
        fail_msg(sim, SIM_INTERNAL, "out of memory (receive buffer)");
        return;
    }
    dst = e->rx + e->rxlen;
    ring_read(&k->p[dir], from, dst, len);
    if (sim->cfg.tap)
        sim->cfg.tap(sim, k->id, dir, from, dst, len, sim->cfg.tap_user);
    e->rxlen += len;
    if (e->st == END_PENDING)
        server_accept(sim, k);
    else
        feed_engine(sim, k, side, 0);
}

static void deliver_eof(struct sim *sim, struct sock *k, int dir)
{
    int side = dir == SIM_C2S ? SIM_SERVER : SIM_CLIENT;
    struct end *e = &k->end[side];
    k->info.eof[side] = 1;
    trace(sim, "sock %d: EOF at %s", k->id, side_name(side));
    if (e->st == END_ATTACHED)
        conn_sf_failed(sim, k, side, MPT_ECLOSED);
    /* TCP: the application closes its side too */
    if (!k->dead)
        end_fin(sim, k, side);
    sock_maybe_dead(sim, k);
}

/* ---- Event handlers --------------------------------------------------------------- */

/* A loss seen by the sender: its retransmission counter, and at most once
 * per RTT a halved window (fast recovery). */
static void tcp_loss(struct sim *sim, struct sock *k, int dir)
{
    struct pipe *pp = &k->p[dir];
    uint64_t floor = 2ull * sim->cfg.mss;

    pp->retrans++;
    if (sim->now < pp->recover_until)
        return;
    pp->ssthresh = pp->cwnd / 2 > floor ? pp->cwnd / 2 : floor;
    pp->cwnd = pp->ssthresh;
    pp->ai_acc = 0;
    pp->recover_until = sim->now + path_rtt(sim, k->path);
}

/*
 * How long a chunk that just left the sender takes to arrive: the one-way
 * delay, the queue of a shared bottleneck (cfg.bottleneck), and for a chunk
 * with a lost packet (random loss, or a full bottleneck queue) one more
 * round trip, as a fast retransmission costs. With cfg.tcp_model off there is
 * no loss and no bottleneck: the delay alone.
 */
static uint64_t network_delay(struct sim *sim, struct sock *k, int dir, uint64_t chunk)
{
    const struct path *p = &sim->path[k->path];
    uint64_t d = p->cfg.delay[dir];
    int lost = 0;

    if (!sim->cfg.tcp_model)
        return d;
    if (p->cfg.loss_ppm) {
        uint64_t pkts = (chunk + sim->cfg.mss - 1) / sim->cfg.mss;
        lost = sim_rng_below(&sim->loss_rng, 1000000) < pkts * p->cfg.loss_ppm;
    }
    if (p->cfg.bottleneck > 0 && p->cfg.bottleneck <= SIM_MAX_BOTTLENECKS) {
        const struct sim_bottleneck_cfg *b = &sim->cfg.bottleneck[p->cfg.bottleneck - 1];
        uint64_t *busy = &sim->bn_busy[p->cfg.bottleneck - 1][dir];
        uint64_t start = *busy > sim->now ? *busy : sim->now;
        uint64_t queued = (start - sim->now) * b->rate / 8 / SIM_S;
        if (b->rate && queued + chunk > b->buffer) {
            lost = 1; /* tail drop: this chunk's last packet */
        } else if (b->rate) {
            *busy = start + chunk * 8 * SIM_S / b->rate;
            d += *busy - sim->now;
        }
    }
    if (lost) {
        tcp_loss(sim, k, dir);
        d += path_rtt(sim, k->path);
    }
    return d;
}

static void on_tx_done(struct sim *sim, struct sock *k, int dir)
{
    struct pipe *pp = &k->p[dir];
    uint64_t t;
    if (sim->path[k->path].stalled) {
        pp->parked_tx = 1;
        return;
    }
    pp->tx_busy = 0;
    {
        uint64_t chunk = pp->tx_end - pp->tx_off;
        pp->tx_off = pp->tx_end;
        if (sim->path[k->path].cfg.split_rtt) /* the proxy takes the bytes off our hands */
            push(sim, sim->now + sim->path[k->path].cfg.split_rtt, EV_ACK, k->id, dir,
                 pp->tx_off);
        t = sim->now + network_delay(sim, k, dir, chunk);
    }
    if (t < pp->last_arrive_t)
        t = pp->last_arrive_t;
    pp->last_arrive_t = t;
    push(sim, t, EV_ARRIVE, k->id, dir, pp->tx_off);
    try_tx(sim, k, dir);
}

static void on_arrive(struct sim *sim, struct sock *k, int dir, uint64_t off)
{
    struct pipe *pp = &k->p[dir];
    if (sim->path[k->path].stalled) {
        if (off > pp->parked_arrive)
            pp->parked_arrive = off;
        pp->parked_any = 1;
        return;
    }
    if (off > pp->arr_off) {
        uint64_t from = pp->arr_off, t;
        pp->arr_off = off;
        t = sim->now + sim->path[k->path].cfg.delay[!dir];
        if (t < pp->last_ack_t)
            t = pp->last_ack_t;
        pp->last_ack_t = t;
        if (!sim->path[k->path].cfg.split_rtt)
            push(sim, t, EV_ACK, k->id, dir, off);
        deliver(sim, k, dir, from, off);
    }
    if (!k->dead && pp->fin && !pp->fin_delivered && pp->arr_off == pp->fin_off) {
        pp->fin_delivered = 1;
        deliver_eof(sim, k, dir);
    }
}

static void on_ack(struct sim *sim, struct sock *k, int dir, uint64_t off)
{
    struct pipe *pp = &k->p[dir];
    if (sim->path[k->path].stalled) {
        if (off > pp->parked_ack)
            pp->parked_ack = off;
        return;
    }
    if (off > pp->ack_off) {
        uint64_t acked = off - pp->ack_off;
        pp->ack_off = off;
        if (sim->cfg.tcp_model) {
            if (pp->cwnd < pp->ssthresh) {
                pp->cwnd += acked; /* slow start */
            } else {
                pp->ai_acc += acked * sim->cfg.mss; /* one segment per window acked */
                pp->cwnd += pp->ai_acc / pp->cwnd;
                pp->ai_acc %= pp->cwnd;
            }
        }
    }
    try_tx(sim, k, dir);
}

static void on_rst(struct sim *sim, struct sock *k, int side)
{
    if (sim->path[k->path].stalled) {
        k->rst_parked[side] = 1;
        return;
    }
    trace(sim, "sock %d: RST reaches %s", k->id, side_name(side));
    k->info.reset = 1;
    if (k->end[side].st == END_ATTACHED)
        conn_sf_failed(sim, k, side, MPT_ESYS);
    sock_kill(sim, k);
}

static void on_connect(struct sim *sim, struct sock *k)
{
    struct path *p = &sim->path[k->path];
    if (k->dead)
        return;
    if (p->failed) {
        trace(sim, "sock %d: connect refused (path %d down)", k->id, k->path);
        k->info.reset = 1;
        if (k->end[SIM_CLIENT].st == END_ATTACHED)
            conn_sf_failed(sim, k, SIM_CLIENT, MPT_ESYS);
        sock_kill(sim, k);
        return;
    }
    if (p->stalled) {
        k->connect_parked = 1;
        return;
    }
    k->connected = 1;
    if (k->bulk) {
        try_tx(sim, k, k->bulk_dir);
        return;
    }
    if (k->raw) {
        struct pipe *pp = &k->p[SIM_C2S];
        size_t n = k->raw_tx_len < pipe_free(pp) ? k->raw_tx_len : pipe_free(pp);
        ring_write(pp, k->raw_tx, n);
        try_tx(sim, k, SIM_C2S);
        return;
    }
    if (k->end[SIM_CLIENT].st == END_ATTACHED) {
        struct ent *en = &sim->ent[k->end[SIM_CLIENT].ent];
        int r;
        trace(sim, "sock %d: client sf %d TCP connected", k->id, k->end[SIM_CLIENT].sf);
        ENGINE(sim, r = mpt_conn_sf_connected(en->c, k->end[SIM_CLIENT].sf, sim->now));
        if (r < 0)
            trace(sim, "sock %d: sf_connected: %s", k->id, mpt_err_name(r));
    } else {
        /* the engine gave the slot up while connecting */
        end_fin(sim, k, SIM_CLIENT);
    }
}

static void path_fail(struct sim *sim, int p)
{
    sim->path[p].failed = 1;
    sim->path[p].stalled = 0;
    for (int i = 0; i < sim->nsocks; i++) {
        struct sock *k = sim->socks[i];
        if (k->dead || k->path != p)
            continue;
        k->info.reset = 1;
        for (int s = 0; s < 2; s++) {
            if (k->end[s].st == END_ATTACHED)
                conn_sf_failed(sim, k, s, MPT_ESYS);
        }
        sock_kill(sim, k);
    }
}

static void path_recover(struct sim *sim, int p)
{
    struct path *pa = &sim->path[p];
    pa->failed = 0;
    if (pa->stalled) {
        pa->stalled = 0;
        for (int i = 0; i < sim->nsocks; i++) {
            struct sock *k = sim->socks[i];
            if (k->dead || k->path != p)
                continue;
            if (k->connect_parked) {
                k->connect_parked = 0;
                push(sim, sim->now + path_rtt(sim, p), EV_CONNECT, k->id, 0, 0);
            }
            for (int d = 0; d < 2; d++) {
                struct pipe *pp = &k->p[d];
                if (pp->parked_tx) {
                    pp->parked_tx = 0;
                    push(sim, sim->now, EV_TX_DONE, k->id, d, 0);
                }
                if (pp->parked_any) {
                    /* held bytes (and FIN) arrive one delay after the path resumes */
                    uint64_t t = sim->now + pa->cfg.delay[d];
                    if (t < pp->last_arrive_t)
                        t = pp->last_arrive_t;
                    pp->last_arrive_t = t;
                    push(sim, t, EV_ARRIVE, k->id, d,
                         pp->parked_arrive > pp->arr_off ? pp->parked_arrive : pp->arr_off);
                }
                if (pp->parked_ack > pp->ack_off)
                    push(sim, sim->now + pa->cfg.delay[!d], EV_ACK, k->id, d, pp->parked_ack);
                pp->parked_arrive = pp->parked_ack = 0;
                pp->parked_any = 0;
                try_tx(sim, k, d);
            }
            for (int s = 0; s < 2; s++) {
                if (k->rst_parked[s]) {
                    k->rst_parked[s] = 0;
                    push(sim, sim->now + pa->cfg.delay[s == SIM_SERVER ? SIM_C2S : SIM_S2C],
                         EV_RST, k->id, s, 0);
                }
            }
        }
    }
    if (sim->pm)
        mpt_pm_links_changed(sim->pm, sim->now); /* what rtnetlink tells the I/O layer */
    else if (sim->cfg.rejoin && sim->app[SIM_CLIENT].established &&
        mpt_conn_state(sim->ent[0].c) == MPT_CONN_ESTABLISHED) {
        int live = 0;
        for (int i = 0; i < sim->nsocks; i++) {
            const struct sock *k = sim->socks[i];
            live |= !k->dead && !k->raw && k->path == p && k->end[SIM_CLIENT].st == END_ATTACHED;
        }
        if (!live)
            sim_open_subflow(sim, p, pa->cfg.backup);
    }
}

static void on_script(struct sim *sim, const struct script *sc)
{
    switch (sc->kind) {
    case SC_STALL:
        trace(sim, "path %d: stall", sc->path);
        if (!sim->path[sc->path].failed)
            sim->path[sc->path].stalled = 1;
        break;
    case SC_FAIL:
        trace(sim, "path %d: fail (reset)", sc->path);
        path_fail(sim, sc->path);
        break;
    case SC_RECOVER:
        trace(sim, "path %d: recover", sc->path);
        path_recover(sim, sc->path);
        break;
    case SC_RATE:
    case SC_DELAY:
        for (int d = 0; d < 2; d++) {
            if (sc->dir >= 0 && sc->dir != d)
                continue;
            if (sc->kind == SC_RATE)
                sim->path[sc->path].cfg.rate[d] = sc->value ? sc->value : 1;
            else
                sim->path[sc->path].cfg.delay[d] = sc->value;
        }
        trace(sim, "path %d: %s of dir %d now %" PRIu64, sc->path,
              sc->kind == SC_RATE ? "rate" : "delay", sc->dir, sc->value);
        break;
    case SC_PAUSE:
        sim->app[sc->dir].read_paused_until = sim->now + sc->value;
        push(sim, sim->now + sc->value, EV_WAKE, 0, 0, 0);
        trace(sim, "%s application stops reading for %.3f s", side_name(sc->dir),
              (double)sc->value / 1e9);
        break;
    case SC_CALL:
        sc->fn(sim, sc->arg);
        break;
    }
}

/* ---- The pass: events, application, output, timer -------------------------------- */

static void progress(struct sim *sim)
{
    sim->last_progress = sim->now;
}

static int app_pass(struct sim *sim, int side)
{
    struct app *ap = &sim->app[side];
    struct ent *en = &sim->ent[ap->ent];
    struct mpt_conn *c = en->c;
    int rdir = side == SIM_CLIENT ? SIM_S2C : SIM_C2S, wdir = !rdir;
    struct sim_dir_result *rd = &sim->res.dir[rdir], *wd = &sim->res.dir[wdir];
    int did = 0;

    if (sim->now >= ap->read_paused_until && !rd->eof && !ap->read_err) {
        for (;;) {
            ssize_t r;
            ENGINE(sim, r = mpt_conn_recv(c, ap->rbuf, sim->cfg.read_chunk, sim->now));
            if (r > 0) {
                if (rd->delivered > 0) {
                    uint64_t gap = sim->now - rd->t_last_read;
                    if (gap > rd->max_gap) {
                        rd->max_gap = gap;
                        rd->max_gap_at = sim->now;
                    }
                } else {
                    rd->t_first_read = sim->now;
                }
                rd->t_last_read = sim->now;
                sim_hash_update(&ap->hs_recv, ap->rbuf, (size_t)r);
                if (rd->mismatch < 0) {
                    sim_stream_fill(sim->key[rdir], rd->delivered, ap->vbuf, (size_t)r);
                    if (memcmp(ap->vbuf, ap->rbuf, (size_t)r) != 0) {
                        for (ssize_t i = 0; i < r; i++) {
                            if (ap->vbuf[i] != ap->rbuf[i]) {
                                rd->mismatch = (int64_t)(rd->delivered + (uint64_t)i);
                                break;
                            }
                        }
                        trace(sim, "%s: received bytes differ from the stream at offset %" PRId64,
                              side_name(side), rd->mismatch);
                    }
                }
                rd->delivered += (uint64_t)r;
                rd->hash_recv = sim_hash_final(&ap->hs_recv);
                did = 1;
                progress(sim);
                continue;
            }
            if (r == 0) {
                rd->eof = 1;
                trace(sim, "%s: end of stream after %" PRIu64 " bytes", side_name(side),
                      rd->delivered);
                did = 1;
                progress(sim);
            } else if (r != MPT_EAGAIN) {
                ap->read_err = (int)r;
                trace(sim, "%s: recv: %s", side_name(side), mpt_err_name((int)r));
            }
            break;
        }
    }
    while (wd->written < sim->cfg.bytes[wdir] && !ap->write_err &&
           sim->now >= sim->cfg.write_start[side]) {
        uint64_t rem = sim->cfg.bytes[wdir] - wd->written;
        size_t avail;
        ssize_t r;
        if (wd->written < ap->gen_off || wd->written >= ap->gen_off + ap->gen_len) {
            ap->gen_off = wd->written;
            ap->gen_len = rem < GEN_BUF ? (size_t)rem : GEN_BUF;
            sim_stream_fill(sim->key[wdir], ap->gen_off, ap->gen, ap->gen_len);
        }
        avail = (size_t)(ap->gen_off + ap->gen_len - wd->written);
        ENGINE(sim, r = mpt_conn_send(c, ap->gen + (wd->written - ap->gen_off), avail, sim->now));
        if (r > 0) {
            if (wd->written == 0)
                wd->t_first_write = sim->now;
            sim_hash_update(&ap->hs_sent, ap->gen + (wd->written - ap->gen_off), (size_t)r);
            wd->written += (uint64_t)r;
            wd->t_last_write = sim->now;
            wd->hash_sent = sim_hash_final(&ap->hs_sent);
            did = 1;
            progress(sim);
            continue;
        }
        if (r != MPT_EAGAIN) {
            ap->write_err = (int)r;
            if (!wd->write_error)
                wd->write_error = (int)r;
            trace(sim, "%s: send: %s", side_name(side), mpt_err_name((int)r));
        }
        break;
    }
    if (wd->written == sim->cfg.bytes[wdir] && sim->cfg.shutdown[side] && !ap->shut &&
        !ap->write_err) {
        int r;
        ENGINE(sim, r = mpt_conn_shutdown(c, sim->now));
        ap->shut = 1;
        trace(sim, "%s: shutdown after %" PRIu64 " bytes: %s", side_name(side), wd->written,
              r < 0 ? mpt_err_name(r) : "ok");
        did = 1;
    }
    return did;
}

static void handle_event(struct sim *sim, int ei, const struct mpt_event *ev)
{
    struct ent *en = &sim->ent[ei];
    int side = en->side;
    struct sim_side_result *sr = en->main ? &sim->res.side[side] : NULL;
    {
        uint64_t rec[7] = {sim->now,        (uint64_t)ei,         (uint64_t)ev->type,
                           (uint64_t)ev->sf, (uint64_t)ev->error, ev->reason,
                           ev->addr.addr_id};
        sim_hash_update(&sim->golden, rec, sizeof rec);
        sim->res.trace_hash = sim_hash_final(&sim->golden);
    }
    switch (ev->type) {
    case MPT_EV_BUDGET_SPENT:
        trace(sim, "%s: budget of sf %d spent", side_name(side), ev->sf);
        if (sr)
            sr->budget_spent++;
        break;
    case MPT_EV_ESTABLISHED:
        trace(sim, "%s%s: established", side_name(side), en->main ? "" : " (extra)");
        progress(sim);
        if (!sr)
            break;
        sr->established = 1;
        sim->app[side].established = 1;
        if (side == SIM_CLIENT && en->main && sim->pm)
            mpt_pm_established(sim->pm, sim->now);
        if (side == SIM_CLIENT && sim->cfg.auto_join && !sim->pm) {
            for (int p = 1; p < sim->cfg.npaths; p++) {
                if (!sim->path[p].failed)
                    sim_open_subflow(sim, p, sim->path[p].cfg.backup);
            }
        }
        break;
    case MPT_EV_SF_UP:
        trace(sim, "%s: sf %d up", side_name(side), ev->sf);
        progress(sim);
        if (sr)
            sr->sf_up++;
        if (ev->sf >= 0 && ev->sf < MPT_MAX_SUBFLOWS_LIMIT && en->last_sock_of_sf[ev->sf] >= 0) {
            struct sock *k = sim->socks[en->last_sock_of_sf[ev->sf]];
            k->info.up[side] = 1;
            if (side == SIM_CLIENT && sim->pm && k->info.pm_slot >= 0)
                mpt_pm_up(sim->pm, k->info.pm_slot);
        }
        break;
    case MPT_EV_SF_DOWN:
        trace(sim, "%s: sf %d down: %s reason %u", side_name(side), ev->sf,
              mpt_err_name(ev->error), ev->reason);
        if (sr)
            sr->sf_down++;
        if (ev->sf >= 0 && ev->sf < MPT_MAX_SUBFLOWS_LIMIT && en->last_sock_of_sf[ev->sf] >= 0) {
            struct sock *k = sim->socks[en->last_sock_of_sf[ev->sf]];
            if (!k->info.down_error[side])
                k->info.down_error[side] = ev->error ? ev->error : 1;
            if (side == SIM_CLIENT && sim->pm && k->info.pm_slot >= 0) {
                mpt_pm_down(sim->pm, k->info.pm_slot, sim->now);
                k->info.pm_slot = -1;
            }
        }
        break;
    case MPT_EV_ADDR_LEARNED:
        if (side == SIM_CLIENT && sim->pm) {
            int is_new = 0;
            int a = mpt_pm_add_addr(sim->pm, 0, ev->addr.addr_id, sim->now, &is_new);
            trace(sim, "client: learned address id %u -> pm address %d%s", ev->addr.addr_id, a,
                  is_new ? " (new)" : "");
        }
        break;
    case MPT_EV_ADDR_REMOVED:
        if (side == SIM_CLIENT && sim->pm)
            mpt_pm_remove_addr(sim->pm, ev->addr.addr_id);
        break;
    case MPT_EV_CLOSED:
        trace(sim, "%s: connection closed", side_name(side));
        progress(sim);
        if (sr)
            sr->closed = 1;
        break;
    case MPT_EV_ERROR:
        trace(sim, "%s: connection error %s reason %u", side_name(side), mpt_err_name(ev->error),
              ev->reason);
        progress(sim);
        if (sr && !sr->error) {
            sr->error = ev->error ? ev->error : MPT_EPROTO;
            sr->error_reason = ev->reason;
        }
        break;
    default:
        break;
    }
}

static int drain_output(struct sim *sim, struct ent *en, int sf, struct sock *k)
{
    int side = en->side, dir = side == SIM_CLIENT ? SIM_C2S : SIM_S2C;
    struct pipe *pp = &k->p[dir];
    struct mpt_iovec iov[16];
    struct mpt_sf_info info;
    const struct path *pa = &sim->path[k->path];
    int did = 0;
    if (k->dead || !k->connected || pp->fin || pp->stopped)
        return 0;
    memset(&info, 0, sizeof info);
    info.srtt = (pa->cfg.split_rtt ? pa->cfg.split_rtt : path_rtt(sim, k->path)) +
                (uint64_t)sim->cfg.mss * 8 * SIM_S / pa->cfg.rate[dir];
    info.rttvar = info.srtt / 8;
    info.cwnd_bytes = (uint32_t)pipe_cwnd(sim, k, dir);
    info.total_retrans = pp->retrans;
    info.mss = sim->cfg.mss;
    info.unacked_bytes = (uint32_t)(pp->tx_off - pp->ack_off);
    info.notsent_bytes = (uint32_t)(pp->write_off - pp->tx_off);
    info.delivery_rate = pa->cfg.rate[dir] / 8;
    ENGINE(sim, mpt_conn_sf_set_info(en->c, sf, &info));
    for (;;) {
        size_t room = pipe_room(sim, pp), total = 0, written = 0, fr;
        int n;
        ENGINE(sim, mpt_conn_sf_set_room(en->c, sf, room, sim->now));
        ENGINE(sim, n = mpt_conn_sf_output(en->c, sf, iov, 16, sim->now));
        if (n <= 0)
            break;
        fr = pipe_free(pp);
        for (int i = 0; i < n; i++) {
            size_t w = iov[i].len < fr - written ? iov[i].len : fr - written;
            total += iov[i].len;
            ring_write(pp, iov[i].base, w);
            sim_hash_update(&sim->golden, iov[i].base, w);
            written += w;
        }
        if (written > 0) {
            uint64_t rec[4] = {sim->now, (uint64_t)k->id, (uint64_t)side, written};
            sim_hash_update(&sim->golden, rec, sizeof rec);
            sim->res.trace_hash = sim_hash_final(&sim->golden);
            ENGINE(sim, mpt_conn_sf_sent(en->c, sf, written, sim->now));
            did = 1;
        }
        try_tx(sim, k, dir);
        if (written < total || written == 0)
            break;
    }
    return did;
}

static void ent_pass(struct sim *sim, int ei)
{
    struct ent *en = &sim->ent[ei];
    struct mpt_event ev;
    enum mpt_conn_state st;
    uint64_t t;
    if (!en->c)
        return;
    for (int iter = 0; iter < MAX_PASS_ITERS; iter++) {
        int did = 0, more;
        for (;;) {
            ENGINE(sim, more = mpt_conn_next_event(en->c, &ev));
            if (!more)
                break;
            handle_event(sim, ei, &ev);
            did = 1;
        }
        if (en->main && sim->app[en->side].established)
            did |= app_pass(sim, en->side);
        else if (!en->main) {
            /* extra server connections: read and discard */
            uint8_t buf[4096];
            ssize_t r;
            do {
                ENGINE(sim, r = mpt_conn_recv(en->c, buf, sizeof buf, sim->now));
            } while (r > 0);
        }
        for (int sf = 0; sf < MPT_MAX_SUBFLOWS_LIMIT; sf++) {
            int ki = en->sock_of_sf[sf];
            enum mpt_sf_state sst;
            struct sock *k;
            if (ki < 0)
                continue;
            k = sim->socks[ki];
            did |= drain_output(sim, en, sf, k);
            ENGINE(sim, sst = mpt_conn_sf_state(en->c, sf));
            if (sst == MPT_SF_FAILED) {
                trace(sim, "sock %d: %s engine failed sf %d: reset", k->id, side_name(en->side),
                      sf);
                if (en->main) {
                    struct sim_side_result *sr = &sim->res.side[en->side];
                    if (!sr->engine_sf_fails++)
                        sr->t_engine_sf_fail = sim->now;
                }
                end_rst(sim, k, en->side);
                did = 1;
            } else if (sst == MPT_SF_CLOSED) {
                trace(sim, "sock %d: %s engine closed sf %d: FIN", k->id, side_name(en->side),
                      sf);
                end_fin(sim, k, en->side);
                did = 1;
            }
        }
        if (!did)
            break;
    }
    ENGINE(sim, st = mpt_conn_state(en->c));
    if (st != en->last_state) {
        trace(sim, "%s%s: state %d -> %d", side_name(en->side), en->main ? "" : " (extra)",
              en->last_state, st);
        en->last_state = st;
        progress(sim);
    }
    en->final = st == MPT_CONN_CLOSED || st == MPT_CONN_ABORTED;
    if (en->main) {
        struct sim_side_result *sr = &sim->res.side[en->side];
        const struct mpt_core_settings *s = &sim->cfg.settings[en->side];
        ENGINE(sim, mpt_conn_get_stats(en->c, &sr->stats));
        sr->state = st;
        if (sr->stats.rcv_mem_peak > sr->rcv_mem_peak)
            sr->rcv_mem_peak = sr->stats.rcv_mem_peak;
        if (sr->stats.rcv_mem > sr->rcv_mem_peak)
            sr->rcv_mem_peak = sr->stats.rcv_mem;
        if (sr->stats.snd_mem > sr->snd_mem_peak)
            sr->snd_mem_peak = sr->stats.snd_mem;
        if ((sr->rcv_mem_peak > s->rcvbuf || sr->snd_mem_peak > s->sndbuf) && !sr->mem_violation) {
            sr->mem_violation = 1;
            trace(sim, "%s: memory bound exceeded: rcv_mem_peak %zu (rcvbuf %zu), snd_mem %zu "
                       "(sndbuf %zu)",
                  side_name(en->side), sr->rcv_mem_peak, s->rcvbuf, sr->snd_mem_peak, s->sndbuf);
        }
    }
    ENGINE(sim, t = mpt_conn_next_timeout(en->c));
    if (t != MPT_TIME_NEVER && t < sim->now)
        t = sim->now; /* overdue: handle it at once */
    if (t != MPT_TIME_NEVER && t < en->armed_t) {
        en->armed_t = t;
        en->gen++;
        push(sim, t, EV_TIMER, ei, 0, en->gen);
    }
}

static void pm_pass(struct sim *sim);

static void pass_all(struct sim *sim)
{
    /* connections influence each other only through scheduled events */
    for (int i = 0; i < sim->nents; i++)
        ent_pass(sim, i);
    pm_pass(sim);
}

/* A side is done when its engine is CLOSED or ABORTED and - after a graceful
 * close - its application has read everything up to the end of stream
 * (received data stays readable after the close, as with TCP). */
static int side_done(struct sim *sim, int side)
{
    const struct app *ap = &sim->app[side];
    const struct ent *en = &sim->ent[ap->ent];
    int rdir = side == SIM_CLIENT ? SIM_S2C : SIM_C2S;
    if (!en->final)
        return 0;
    return en->last_state == MPT_CONN_ABORTED || sim->res.dir[rdir].eof || ap->read_err;
}

static int sides_final(struct sim *sim)
{
    if (!side_done(sim, SIM_CLIENT))
        return 0;
    return sim->app[SIM_SERVER].ent < 0 || side_done(sim, SIM_SERVER);
}

static void dispatch(struct sim *sim, const struct event *e)
{
    struct sock *k = NULL;
    if (e->kind == EV_TX_DONE || e->kind == EV_ARRIVE || e->kind == EV_ACK ||
        e->kind == EV_RST || e->kind == EV_CONNECT) {
        k = sim->socks[e->a];
        if (k->dead)
            return;
    }
    switch (e->kind) {
    case EV_TX_DONE:
        on_tx_done(sim, k, e->b);
        break;
    case EV_ARRIVE:
        on_arrive(sim, k, e->b, e->c);
        break;
    case EV_ACK:
        on_ack(sim, k, e->b, e->c);
        break;
    case EV_RST:
        on_rst(sim, k, e->b);
        break;
    case EV_CONNECT:
        on_connect(sim, k);
        break;
    case EV_TIMER: {
        struct ent *en = &sim->ent[e->a];
        uint64_t t;
        if (e->c != en->gen || !en->c)
            return;
        en->armed_t = MPT_TIME_NEVER;
        ENGINE(sim, t = mpt_conn_next_timeout(en->c));
        if (t <= sim->now)
            ENGINE(sim, mpt_conn_handle_timeout(en->c, sim->now));
        break;
    }
    case EV_SCRIPT:
        on_script(sim, &sim->scripts[e->a]);
        break;
    case EV_WAKE:
        if (sim->now >= sim->pm_wake)
            sim->pm_wake = MPT_TIME_NEVER;
        break;
    }
}

/* Carries out the path manager's decisions (what the I/O layer's path code
 * does over real sockets). */
static void pm_pass(struct sim *sim)
{
    struct mpt_pm_action a;
    uint64_t t;

    if (!sim->pm || !sim->ent[0].c)
        return;
    while (mpt_pm_next(sim->pm, sim->now, &a)) {
        int id = sim_open_subflow(sim, a.path, a.prio);
        trace(sim, "pm: slot %d (path %d, address %d) -> %s", a.slot, a.path, a.addr,
              id >= 0 ? "opened" : mpt_err_name(id));
        if (id < 0) {
            mpt_pm_down(sim->pm, a.slot, sim->now);
        } else {
            sim->socks[id]->info.pm_slot = a.slot;
            mpt_conn_sf_set_remote_id(sim->ent[0].c, sim->socks[id]->info.client_sf,
                                      (uint8_t)a.addr_id);
        }
    }
    t = mpt_pm_next_timeout(sim->pm);
    if (t != MPT_TIME_NEVER && t != sim->pm_wake) {
        push(sim, t > sim->now ? t : sim->now, EV_WAKE, 0, 0, 0);
        sim->pm_wake = t;
    }
}

struct mpt_pm *sim_pm(struct sim *sim)
{
    return sim->pm;
}

enum sim_outcome sim_run_until(struct sim *sim, uint64_t until)
{
    if (!sim->started) {
        sim->started = 1;
        sim->last_progress = 0;
        trace(sim, "start: seed %" PRIu64 ", %d paths, sndbuf %zu, lowat %zu", sim->cfg.seed,
              sim->cfg.npaths, sim->cfg.sndbuf, sim->cfg.notsent_lowat);
        for (int s = 0; s < 2; s++)
            trace(sim, "%s: rcvbuf %zu sndbuf %zu max_frame_payload %u max_subflows %u",
                  side_name(s), sim->cfg.settings[s].rcvbuf, sim->cfg.settings[s].sndbuf,
                  sim->cfg.settings[s].max_frame_payload, sim->cfg.settings[s].max_subflows);
        for (int p = 0; p < sim->cfg.npaths; p++)
            trace(sim, "path %d: %.3f/%.3f Mbit/s, %.3f/%.3f ms%s", p,
                  (double)sim->path[p].cfg.rate[0] / 1e6, (double)sim->path[p].cfg.rate[1] / 1e6,
                  (double)sim->path[p].cfg.delay[0] / 1e6, (double)sim->path[p].cfg.delay[1] / 1e6,
                  sim->path[p].cfg.backup ? " backup" : "");
        if (sim->pm)
            pm_pass(sim);
        else
            sim_open_subflow(sim, 0, sim->path[0].cfg.backup);
        pass_all(sim);
    }
    while (sim->res.outcome == SIM_RUNNING) {
        struct event e;
        if (sides_final(sim)) {
            sim->res.outcome = SIM_FINISHED;
            break;
        }
        if (sim->nheap == 0) {
            fail_msg(sim, SIM_DEADLOCK, "nothing left to happen (no event, no timer)");
            break;
        }
        if (sim->heap[0].t > until)
            break;
        e = pop(sim);
        if (e.t != sim->same_t) {
            sim->same_t = e.t;
            sim->same_t_count = 0;
        } else if (++sim->same_t_count > LIVELOCK_EVENTS) {
            fail_msg(sim, SIM_LIVELOCK, "more than %u events at one instant (last kind %d)",
                     LIVELOCK_EVENTS, e.kind);
            break;
        }
        sim->now = e.t;
        sim->res.events++;
        if (sim->now > sim->cfg.time_limit) {
            fail_msg(sim, SIM_TIMELIMIT, "virtual time limit reached");
            break;
        }
        if (sim->now - sim->last_progress > sim->cfg.progress_timeout) {
            char d[512];
            sim_describe(sim, d, sizeof d);
            fail_msg(sim, SIM_DEADLOCK, "no progress for %.1f s: %s",
                     (double)(sim->now - sim->last_progress) / 1e9, d);
            break;
        }
        dispatch(sim, &e);
        pass_all(sim);
    }
    sim->res.end_time = sim->now;
    return sim->res.outcome;
}

enum sim_outcome sim_run(struct sim *sim)
{
    return sim_run_until(sim, UINT64_MAX);
}

/* ---- Inspection ---------------------------------------------------------------------- */

uint64_t sim_now(const struct sim *sim)
{
    return sim->now;
}

struct mpt_conn *sim_conn(struct sim *sim, int side)
{
    int e = sim->app[side].ent;
    return e < 0 ? NULL : sim->ent[e].c;
}

const char *sim_outcome_name(enum sim_outcome o)
{
    switch (o) {
    case SIM_RUNNING:
        return "running";
    case SIM_FINISHED:
        return "finished";
    case SIM_DEADLOCK:
        return "DEADLOCK";
    case SIM_TIMELIMIT:
        return "TIME LIMIT";
    case SIM_LIVELOCK:
        return "LIVELOCK";
    case SIM_INTERNAL:
        return "SIMULATOR ERROR";
    }
    return "?";
}

const char *sim_message(const struct sim *sim)
{
    return sim->msg;
}

const struct sim_result *sim_result(const struct sim *sim)
{
    return &sim->res;
}

int sim_nsocks(const struct sim *sim)
{
    return sim->nsocks;
}

int sim_sock_info(const struct sim *sim, int sock, struct sim_sock_info *info)
{
    if (sock < 0 || sock >= sim->nsocks)
        return -1;
    *info = sim->socks[sock]->info;
    info->raw_rx = sim->socks[sock]->raw_rx;
    info->raw_rx_len = sim->socks[sock]->raw_rx_len;
    return 0;
}

static const char *state_name(enum mpt_conn_state s)
{
    switch (s) {
    case MPT_CONN_HANDSHAKE:
        return "HANDSHAKE";
    case MPT_CONN_ESTABLISHED:
        return "ESTABLISHED";
    case MPT_CONN_CLOSING:
        return "CLOSING";
    case MPT_CONN_CLOSED:
        return "CLOSED";
    case MPT_CONN_ABORTED:
        return "ABORTED";
    }
    return "?";
}

void sim_describe(const struct sim *sim, char *buf, size_t len)
{
    const struct sim_result *r = &sim->res;
    int live = 0;
    for (int i = 0; i < sim->nsocks; i++)
        live += !sim->socks[i]->dead;
    snprintf(buf, len,
             "t=%.3f s; c2s %" PRIu64 "/%" PRIu64 " written, %" PRIu64 " read%s; s2c %" PRIu64
             "/%" PRIu64 " written, %" PRIu64 " read%s; client %s%s err %s; server %s%s err %s; "
             "%d live sockets; reinjected %" PRIu64 "/%" PRIu64 " bytes",
             (double)sim->now / 1e9, r->dir[0].written, sim->cfg.bytes[0], r->dir[0].delivered,
             r->dir[0].eof ? " +EOF" : "", r->dir[1].written, sim->cfg.bytes[1],
             r->dir[1].delivered, r->dir[1].eof ? " +EOF" : "", state_name(r->side[0].state),
             r->side[0].closed ? " (closed)" : "", mpt_err_name(r->side[0].error),
             sim->app[SIM_SERVER].ent < 0 ? "none" : state_name(r->side[1].state),
             r->side[1].closed ? " (closed)" : "", mpt_err_name(r->side[1].error), live,
             r->side[0].stats.bytes_reinjected, r->side[1].stats.bytes_reinjected);
}

static int check_dir(const struct sim *sim, int d, int need_all, char *buf, size_t len)
{
    const struct sim_dir_result *r = &sim->res.dir[d];
    const char *n = d == SIM_C2S ? "client->server" : "server->client";
    if (r->mismatch >= 0) {
        snprintf(buf, len, "%s: bytes differ from what was written at offset %" PRId64, n,
                 r->mismatch);
        return 0;
    }
    if (r->delivered > r->written) {
        snprintf(buf, len, "%s: %" PRIu64 " bytes read but only %" PRIu64 " written", n,
                 r->delivered, r->written);
        return 0;
    }
    if (need_all) {
        if (r->written != sim->cfg.bytes[d] || r->delivered != r->written) {
            snprintf(buf, len, "%s: %" PRIu64 " of %" PRIu64 " written, %" PRIu64 " read", n,
                     r->written, sim->cfg.bytes[d], r->delivered);
            return 0;
        }
        if (r->hash_sent != r->hash_recv) {
            snprintf(buf, len, "%s: hash of written %016" PRIx64 " != hash of read %016" PRIx64,
                     n, r->hash_sent, r->hash_recv);
            return 0;
        }
        if (sim->cfg.shutdown[d == SIM_C2S ? SIM_CLIENT : SIM_SERVER] && !r->eof) {
            snprintf(buf, len, "%s: no end of stream after %" PRIu64 " bytes", n, r->delivered);
            return 0;
        }
    }
    return 1;
}

static int check_common(const struct sim *sim, char *buf, size_t len)
{
    char d[512];
    if (sim->res.outcome != SIM_FINISHED) {
        snprintf(buf, len, "%s", sim->msg[0] ? sim->msg : sim_outcome_name(sim->res.outcome));
        return 0;
    }
    for (int s = 0; s < 2; s++) {
        const struct sim_side_result *sr = &sim->res.side[s];
        if (sr->mem_violation) {
            sim_describe(sim, d, sizeof d);
            snprintf(buf, len,
                     "%s exceeded its memory bounds: rcv_mem_peak %zu (rcvbuf %zu), snd_mem "
                     "peak %zu (sndbuf %zu); %s",
                     side_name(s), sr->rcv_mem_peak, sim->cfg.settings[s].rcvbuf,
                     sr->snd_mem_peak, sim->cfg.settings[s].sndbuf, d);
            return 0;
        }
    }
    return 1;
}

int sim_check_complete(const struct sim *sim, char *buf, size_t len)
{
    char d[512];
    if (!check_common(sim, buf, len))
        return 0;
    for (int dir = 0; dir < 2; dir++) {
        if (!check_dir(sim, dir, 1, buf, len))
            return 0;
    }
    for (int s = 0; s < 2; s++) {
        const struct sim_side_result *sr = &sim->res.side[s];
        if (sr->error || sr->state != MPT_CONN_CLOSED || !sr->closed) {
            sim_describe(sim, d, sizeof d);
            snprintf(buf, len, "%s did not close gracefully (seed %" PRIu64 "): %s", side_name(s),
                     sim->cfg.seed, d);
            return 0;
        }
    }
    return 1;
}

int sim_check_exact_or_error(const struct sim *sim, char *buf, size_t len)
{
    char d[512];
    int errored = 0;
    if (!check_common(sim, buf, len))
        return 0;
    for (int s = 0; s < 2; s++) {
        const struct sim_side_result *sr = &sim->res.side[s];
        if (sr->state == MPT_CONN_ABORTED)
            errored = 1;
    }
    if (!errored)
        return sim_check_complete(sim, buf, len);
    for (int dir = 0; dir < 2; dir++) {
        if (!check_dir(sim, dir, 0, buf, len))
            return 0;
    }
    for (int s = 0; s < 2; s++) {
        const struct sim_side_result *sr = &sim->res.side[s];
        if (s == SIM_SERVER && sim->app[SIM_SERVER].ent < 0)
            continue;
        if (sr->state != MPT_CONN_ABORTED && sr->state != MPT_CONN_CLOSED) {
            sim_describe(sim, d, sizeof d);
            snprintf(buf, len, "%s neither closed nor aborted: %s", side_name(s), d);
            return 0;
        }
        if (sr->state == MPT_CONN_ABORTED && !sr->error) {
            sim_describe(sim, d, sizeof d);
            snprintf(buf, len, "%s aborted without an MPT_EV_ERROR event: %s", side_name(s), d);
            return 0;
        }
    }
    return 1;
}
