/* See bench-common.h. */
#include "bench-common.h"
#include <errno.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static unsigned char bench_pat[BENCH_PAT_PERIOD + BENCH_IO];

void bench_pat_init(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < BENCH_PAT_PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bench_pat[i] = (unsigned char)(x >> 24);
    }
    for (size_t i = 0; i < BENCH_IO; i++)
        bench_pat[BENCH_PAT_PERIOD + i] = bench_pat[i % BENCH_PAT_PERIOD];
}

const unsigned char *bench_pat_at(uint64_t off)
{
    return bench_pat + off % BENCH_PAT_PERIOD;
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_msg_fill(unsigned char *msg, uint64_t seq)
{
    uint64_t t = now_ns();
    memcpy(msg + 16, bench_pat_at(seq * BENCH_MSG + 16), BENCH_MSG - 16);
    memcpy(msg, &seq, 8);
    memcpy(msg + 8, &t, 8);
}

void bench_rx_init(struct bench_rx *rx, int stream)
{
    memset(rx, 0, sizeof *rx);
    rx->stream = stream;
}

static void mismatch(struct bench_rx *rx, uint64_t at)
{
    if (!rx->bad) {
        rx->bad = 1;
        rx->bad_at = at;
    }
}

static void rx_msg(struct bench_rx *rx, const unsigned char *m, uint64_t t_ns)
{
    uint64_t seq, sent;
    uint64_t off = rx->next_seq * BENCH_MSG;

    memcpy(&seq, m, 8);
    memcpy(&sent, m + 8, 8);
    if (seq != rx->next_seq || memcmp(m + 16, bench_pat_at(off + 16), BENCH_MSG - 16) != 0) {
        mismatch(rx, off);
    } else if (!rx->bad) {
        rx->good += BENCH_MSG;
        if (rx->nlat == rx->cap) {
            size_t cap = rx->cap ? rx->cap * 2 : 4096;
            double *p = realloc(rx->lat, cap * sizeof *p);
            if (!p) {
                perror("realloc");
                exit(1);
            }
            rx->lat = p;
            rx->cap = cap;
        }
        rx->lat[rx->nlat++] = t_ns > sent ? (double)(t_ns - sent) / 1e9 : 0.0;
    }
    rx->next_seq++;
}

void bench_rx_data(struct bench_rx *rx, const unsigned char *buf, size_t n)
{
    double t = bench_now();

    if (rx->bytes > 0 && t - rx->t_last > rx->max_gap) {
        rx->max_gap = t - rx->t_last;
        rx->max_gap_from = rx->t_last;
    }
    rx->t_last = t;
    if (!rx->stream) {
        if (!rx->bad) {
            uint64_t off = rx->bytes;
            size_t done = 0;
            while (done < n) {
                size_t k = n - done < BENCH_IO ? n - done : BENCH_IO;
                if (memcmp(buf + done, bench_pat_at(off + done), k) != 0) {
                    size_t j = 0;
                    while (j < k && buf[done + j] == bench_pat_at(off + done)[j])
                        j++;
                    mismatch(rx, off + done + j);
                    rx->good = off + done + j;
                    break;
                }
                done += k;
            }
            if (!rx->bad)
                rx->good = off + n;
        }
        rx->bytes += n;
        return;
    }
    uint64_t t_ns = now_ns();
    rx->bytes += n;
    while (n > 0) {
        if (rx->msg_have == 0 && n >= BENCH_MSG) {
            rx_msg(rx, buf, t_ns);
            buf += BENCH_MSG;
            n -= BENCH_MSG;
            continue;
        }
        size_t k = BENCH_MSG - rx->msg_have;
        if (k > n)
            k = n;
        memcpy(rx->msg + rx->msg_have, buf, k);
        rx->msg_have += k;
        buf += k;
        n -= k;
        if (rx->msg_have == BENCH_MSG) {
            rx_msg(rx, rx->msg, t_ns);
            rx->msg_have = 0;
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int bench_rx_report(struct bench_rx *rx, uint64_t expected, char *out, size_t outlen)
{
    uint64_t lost = 0;
    int ok;
    size_t len;

    if (expected > 0)
        lost = expected > rx->good ? expected - rx->good : 0;
    else if (rx->bad)
        lost = rx->bytes > rx->good ? rx->bytes - rx->good : 1;
    ok = !rx->bad && lost == 0 && (!rx->stream || rx->msg_have == 0);
    len = strlen(out);
    snprintf(out + len, outlen - len, " max_gap_ms=%.1f max_gap_from=%.6f lost_bytes=%llu verify=%s",
             rx->max_gap * 1e3, rx->max_gap_from, (unsigned long long)lost, ok ? "ok" : "FAIL");
    if (rx->bad) {
        len = strlen(out);
        snprintf(out + len, outlen - len, " first_bad_offset=%llu", (unsigned long long)rx->bad_at);
    }
    if (rx->stream) {
        double p50 = 0, p99 = 0, mx = 0;
        if (rx->nlat > 0) {
            qsort(rx->lat, rx->nlat, sizeof *rx->lat, cmp_double);
            p50 = rx->lat[(rx->nlat - 1) / 2];
            p99 = rx->lat[(size_t)((double)(rx->nlat - 1) * 0.99)];
            mx = rx->lat[rx->nlat - 1];
        }
        len = strlen(out);
        snprintf(out + len, outlen - len,
                 " messages=%zu latency_p50_ms=%.2f latency_p99_ms=%.2f latency_max_ms=%.2f", rx->nlat,
                 p50 * 1e3, p99 * 1e3, mx * 1e3);
    }
    return ok;
}

long bench_rss_kib(void)
{
    char line[256];
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    fclose(f);
    return v;
}

void bench_raise_nofile(long need)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= (rlim_t)need)
        return;
    rl.rlim_cur = (rlim_t)need;
    if (rl.rlim_max < (rlim_t)need)
        rl.rlim_max = (rlim_t)need;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return;
    int e = errno;
    /* Without CAP_SYS_RESOURCE: as far as the hard limit goes. */
    getrlimit(RLIMIT_NOFILE, &rl);
    fprintf(stderr, "bench: setrlimit(NOFILE, %ld): %s; using the hard limit %ld\n", need,
            strerror(e), (long)rl.rlim_max);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}
