/*
 * Shared by the benchmark contenders (mpt-bench for libmpt, mpt-tcpbench for
 * plain TCP and kernel MPTCP) so that every contender is measured the same
 * way: the same byte pattern, the same receive-side checks, the same
 * statistics and the same output keys.
 *
 * Data: the byte at stream offset o is bench_pat[o % BENCH_PAT_PERIOD], a
 * pseudo-random table with a prime period, so a lost, duplicated or
 * misplaced block shows up as a mismatch. In stream mode the stream is a
 * sequence of BENCH_MSG-byte messages; message i starts with its sequence
 * number and CLOCK_MONOTONIC send time (same clock in every namespace of
 * the machine), the rest is the pattern.
 *
 * Receiver statistics: verified bytes (lost_bytes = expected - verified
 * prefix), the longest interval between two reads that returned data after
 * the first byte (max_gap_ms), and in stream mode the one-way message latency
 * (p50/p99/max).
 */
#ifndef MPT_BENCH_COMMON_H
#define MPT_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_PAT_PERIOD 65521u
#define BENCH_IO (256u * 1024u)
#define BENCH_MSG 1024u

void bench_pat_init(void);
/* BENCH_IO pattern bytes starting at stream offset off. */
const unsigned char *bench_pat_at(uint64_t off);
/* Fills one stream-mode message (BENCH_MSG bytes) with seq and now. */
void bench_msg_fill(unsigned char *msg, uint64_t seq);

double bench_now(void);      /* CLOCK_MONOTONIC seconds */
double bench_cpu(void);      /* user + system CPU seconds of this process */
long bench_rss_kib(void);    /* this process's VmRSS, KiB; -1 if unknown */
/* Raises RLIMIT_NOFILE to need (the hard limit too, where allowed; else as
 * far as the hard limit goes), saying so on stderr when it cannot. */
void bench_raise_nofile(long need);

struct bench_rx {
    int stream;              /* messages with timestamps */
    uint64_t bytes;          /* received */
    uint64_t good;           /* verified prefix */
    int bad;                 /* a mismatch was seen */
    uint64_t bad_at;         /* stream offset of the first mismatch */
    double t_last;           /* time of the last read that returned data */
    double max_gap;          /* seconds */
    double max_gap_from;     /* CLOCK_MONOTONIC seconds when the longest gap began */
    unsigned char msg[BENCH_MSG];
    size_t msg_have;
    uint64_t next_seq;
    double *lat;             /* stream: one-way latency of each message, s */
    size_t nlat, cap;
};

void bench_rx_init(struct bench_rx *rx, int stream);
void bench_rx_data(struct bench_rx *rx, const unsigned char *buf, size_t n);
/* Appends " max_gap_ms=.. max_gap_from=.. lost_bytes=.. verify=ok|FAIL [messages=.. latency_*]"
 * to out; expected is the byte count the sender promised (0: unknown, then
 * lost_bytes only counts a mismatch). Returns 1 if the data is complete and
 * correct. */
int bench_rx_report(struct bench_rx *rx, uint64_t expected, char *out, size_t outlen);

#endif
