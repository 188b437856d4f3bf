/* Shared code of the libmpt tools (tool.h). */
#include "tool.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

double tool_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tool_init(struct tool *t, const char *name)
{
    memset(t, 0, sizeof *t);
    t->name = name;
    t->t0 = tool_now();
}

static int need_value(const struct tool *t, int argc, char **argv, int i)
{
    if (i + 1 >= argc || argv[i + 1][0] == '\0') {
        fprintf(stderr, "%s: option %s needs a value (see --help)\n", t->name, argv[i]);
        return -1;
    }
    return 0;
}

int tool_usage_error(const struct tool *t, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", t->name);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    if (t->usage != NULL)
        t->usage(stderr);
    return TOOL_EXIT_USAGE;
}

int tool_common_option(struct tool *t, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char **slot = NULL;

    if ((strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) && t->help != NULL) {
        t->help();
        exit(TOOL_EXIT_OK);
    }
    if (strcmp(a, "--version") == 0) {
        tool_version(t);
        exit(TOOL_EXIT_OK);
    }
    if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
        t->verbose = 1;
        (*i)++;
        return 1;
    }
    if (strcmp(a, "--stats") == 0) {
        t->stats = 1;
        (*i)++;
        return 1;
    }
    if (strcmp(a, "--tls-insecure") == 0) {
        t->tls = t->tls_insecure = 1;
        (*i)++;
        return 1;
    }
    if (strcmp(a, "--tls-psk") == 0) {
        const char *h;
        size_t n = 0;
        if (need_value(t, argc, argv, *i) < 0)
            return -1;
        for (h = argv[*i + 1]; h[0] != '\0' && h[1] != '\0' && n < sizeof t->tls_psk; h += 2) {
            unsigned v;
            if (sscanf(h, "%2x", &v) != 1 || !isxdigit((unsigned char)h[0]) ||
                !isxdigit((unsigned char)h[1]))
                break;
            t->tls_psk[n++] = (uint8_t)v;
        }
        if (h[0] != '\0' || n < 16) {
            fprintf(stderr, "%s: --tls-psk wants 16 to %zu bytes in hex, not \"%s\"\n", t->name,
                    sizeof t->tls_psk, argv[*i + 1]);
            return -1;
        }
        t->tls_psk_len = n;
        t->tls = 1;
        *i += 2;
        return 1;
    }
    if (strcmp(a, "--all-paths") == 0) {
        t->all_paths = 1;
        (*i)++;
        return 1;
    }
    if (strcmp(a, "--path") == 0 || strcmp(a, "-p") == 0) {
        if (need_value(t, argc, argv, *i) < 0)
            return -1;
        if (t->npaths == TOOL_MAX_PATHS) {
            fprintf(stderr, "%s: at most %d paths\n", t->name, TOOL_MAX_PATHS);
            return -1;
        }
        t->paths[t->npaths++] = argv[*i + 1];
        *i += 2;
        return 1;
    }
    if (strcmp(a, "--server-id") == 0) {
        uint64_t v;
        if (need_value(t, argc, argv, *i) < 0 ||
            tool_parse_u64(t, "--server-id", argv[*i + 1], 1, UINT32_MAX, &v) < 0)
            return -1;
        t->server_id = (uint32_t)v;
        *i += 2;
        return 1;
    }
    if (strcmp(a, "--advertise") == 0) {
        if (need_value(t, argc, argv, *i) < 0)
            return -1;
        if (t->nadvertise == TOOL_MAX_ADDRS) {
            fprintf(stderr, "%s: at most %d --advertise addresses\n", t->name, TOOL_MAX_ADDRS);
            return -1;
        }
        t->advertise[t->nadvertise++] = argv[*i + 1];
        *i += 2;
        return 1;
    }
    if (strcmp(a, "--scheduler") == 0 || strcmp(a, "--sched") == 0)
        slot = &t->sched;
    else if (strcmp(a, "--cc") == 0)
        slot = &t->cc;
    else if (strcmp(a, "--tcp-cc") == 0)
        slot = &t->tcp_cc;
    else if (strcmp(a, "--trace") == 0)
        slot = &t->trace;
    else if (strcmp(a, "--tls-ca") == 0)
        slot = &t->tls_ca;
    else if (strcmp(a, "--tls-cert") == 0)
        slot = &t->tls_cert;
    else if (strcmp(a, "--tls-key") == 0)
        slot = &t->tls_key;
    else if (strcmp(a, "--tls-name") == 0)
        slot = &t->tls_name;
    else if (strcmp(a, "--tls-psk-identity") == 0)
        slot = &t->tls_psk_id;
    if (slot == NULL)
        return 0;
    if (need_value(t, argc, argv, *i) < 0)
        return -1;
    if (strncmp(a, "--tls-", 6) == 0)
        t->tls = 1;
    *slot = argv[*i + 1];
    *i += 2;
    return 1;
}

void tool_common_help(FILE *f)
{
    fputs("Paths and algorithms:\n"
          "  -p, --path PATH      a local path: an interface (eth0) or a source address\n"
          "                       (192.0.2.10, 2001:db8::10); PATH/secondary, /backup\n"
          "                       or /never for its tier\n"
          "                       (see mpt_set_priority(3)); repeat for several\n"
          "                       (client side)\n"
          "      --all-paths      one path per local interface address that is up\n"
          "      --scheduler NAME minrtt (default), roundrobin, redundant, blest, ecf,\n"
          "                       weighted\n"
          "      --cc NAME        uncoupled (default), lia, olia, balia\n"
          "      --tcp-cc NAME    the kernel's TCP congestion control per subflow (cubic,\n"
          "                       reno, bbr)\n"
          "TLS on every subflow (each option below turns it on; doc/security.md):\n"
          "      --tls-ca FILE|DIR    CAs that verify the peer's certificate\n"
          "      --tls-cert FILE      this side's certificate (PEM; a server needs one, or a PSK)\n"
          "      --tls-key FILE       its private key (PEM)\n"
          "      --tls-name NAME      the name the server's certificate must carry (default:\n"
          "                           the host connected to)\n"
          "      --tls-psk HEX        a pre-shared key (16 to 64 bytes in hex) instead of\n"
          "                           certificates; with --tls-psk-identity ID (default mpt)\n"
          "      --tls-insecure       accept any server certificate (tests only: anyone on\n"
          "                           the path can read and change everything)\n"
          "Servers behind a load balancer (doc/loadbalancing.md):\n"
          "      --server-id N    1-4294967295: this process's routing id prefix, which\n"
          "                       every join carries in clear for the balancer\n"
          "      --advertise ADDR[:PORT]  advertise this address to clients instead of\n"
          "                       the listening ones (the balancer's); repeat, at most 8\n"
          "Output:\n"
          "  -v, --verbose        connection and subflow events on stderr, with times,\n"
          "                       addresses and causes\n"
          "      --stats          per-subflow numbers on stderr at the end\n"
          "      --trace FILE     the library's JSON-lines trace\n"
          "  -h, --help           this help (exit 0)\n"
          "      --version        the tool's and the library's version (exit 0)\n",
          f);
}

void tool_version(const struct tool *t)
{
    printf("%s (libmpt %s)\n", t->name, mpt_version());
}

int tool_parse_u64(const struct tool *t, const char *what, const char *s, uint64_t min,
                   uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (s == NULL || s[0] < '0' || s[0] > '9' || (v = strtoull(s, &end, 10), *end != '\0') ||
        errno == ERANGE || v < min || v > max) {
        fprintf(stderr, "%s: %s: '%s' is not a number from %" PRIu64 " to %" PRIu64 "\n",
                t->name, what, s ? s : "", min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int tool_parse_port(const struct tool *t, const char *what, const char *s, uint16_t *out)
{
    uint64_t v;

    if (tool_parse_u64(t, what, s, 0, 65535, &v) < 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int tool_parse_size(const struct tool *t, const char *what, const char *s, uint64_t *out)
{
    char buf[32];
    size_t n = s ? strlen(s) : 0;
    unsigned shift = 0;

    if (n > 0 && n < sizeof buf) {
        memcpy(buf, s, n + 1);
        switch (buf[n - 1]) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: break;
        }
        if (shift)
            buf[n - 1] = '\0';
        uint64_t v;
        if (tool_parse_u64(t, what, buf, 0, UINT64_MAX >> shift, &v) == 0) {
            *out = v << shift;
            return 0;
        }
        return -1;
    }
    fprintf(stderr, "%s: %s: '%s' is not a size (a number, optionally K, M or G)\n", t->name,
            what, s ? s : "");
    return -1;
}

int tool_ctx_new(const struct tool *t, void *loop, struct mpt_ctx **ctx)
{
    struct mpt_config cfg;
    int rc;

    struct mpt_tls_config tls;
    char why[256];

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.scheduler = t->sched;
    cfg.congestion = t->cc;
    cfg.tcp_congestion = t->tcp_cc;
    cfg.fullmesh = t->all_paths;
    if (t->tls) {
        struct stat st;
        memset(&tls, 0, sizeof tls);
        tls.size = sizeof tls;
        if (t->tls_ca != NULL && stat(t->tls_ca, &st) == 0 && S_ISDIR(st.st_mode))
            tls.ca_path = t->tls_ca;
        else
            tls.ca_file = t->tls_ca;
        tls.cert_file = t->tls_cert;
        tls.key_file = t->tls_key;
        tls.server_name = t->tls_name;
        if (t->tls_psk_len > 0) {
            tls.psk = t->tls_psk;
            tls.psk_len = t->tls_psk_len;
            tls.psk_identity = t->tls_psk_id != NULL ? t->tls_psk_id : "mpt";
        }
        tls.insecure_skip_verify = t->tls_insecure;
        if ((rc = mpt_tls_config_check(&tls, why, sizeof why)) < 0) {
            fprintf(stderr, "%s: TLS options: %s: %s\n", t->name, mpt_err_name(rc), why);
            return rc;
        }
        cfg.tls = &tls;
    }
    cfg.server_id = t->server_id;
    if ((rc = mpt_ctx_new(ctx, loop, &cfg)) < 0) {
        const char *what = "cannot start libmpt";
        if (rc == MPT_ENOTFOUND)
            what = "unknown --scheduler, --cc or --tcp-cc name";
        tool_error(t, t->sched || t->cc || t->tcp_cc ? "options" : "setup", what, rc, 0);
        return rc;
    }
    if (t->trace != NULL && (rc = mpt_set_trace_file(*ctx, t->trace)) < 0) {
        tool_error(t, t->trace, "cannot open the trace file", rc, 0);
        mpt_ctx_free(*ctx);
        *ctx = NULL;
        return rc;
    }
    return 0;
}

int tool_listener_setup(const struct tool *t, struct mpt_listener *l)
{
    int rc;

    if (t->nadvertise == 0)
        return 0;
    if ((rc = mpt_listener_set_advertised(l, t->advertise, t->nadvertise)) < 0) {
        char where[128];
        snprintf(where, sizeof where, "--advertise %s%s", t->advertise[0],
                 t->nadvertise > 1 ? " ..." : "");
        tool_error(t, where, "not a numeric ADDR, V4:PORT or [V6]:PORT", rc, 0);
    }
    return rc;
}

void tool_error(const struct tool *t, const char *where, const char *what, int err, int sys_errno)
{
    if (sys_errno != 0)
        fprintf(stderr, "%s: %s: %s: %s: %s (errno %d: %s)\n", t->name, where, what,
                mpt_err_name(err), mpt_strerror(err), sys_errno, strerror(sys_errno));
    else
        fprintf(stderr, "%s: %s: %s: %s: %s\n", t->name, where, what, mpt_err_name(err),
                mpt_strerror(err));
}

void tool_error_errno(const struct tool *t, const char *where, const char *what, int e)
{
    fprintf(stderr, "%s: %s: %s: %s\n", t->name, where, what, strerror(e));
}

void tool_conn_error(const struct tool *t, struct mpt_socket *s, const char *where,
                     const char *what, int err)
{
    struct mpt_info info = {.size = sizeof info};
    int e = 0;

    int got = s != NULL && mpt_get_info(s, &info) == 0;

    if (got && info.error == err)
        e = info.sys_errno;
    tool_error(t, where, what, err, e);
    if (got && info.peer_text != NULL) /* the peer's own words, e.g. "TLS required" */
        fprintf(stderr, "%s: %s: the peer said: %s\n", t->name, where, info.peer_text);
    struct mpt_tls_info ti = {.size = sizeof ti};
    if (s != NULL && mpt_get_tls_info(s, &ti) == 0 && ti.error != NULL) /* a certificate's verdict */
        fprintf(stderr, "%s: %s: TLS: %s\n", t->name, where, ti.error);
}

void tool_verbose(const struct tool *t, const char *fmt, ...)
{
    va_list ap;

    if (!t->verbose)
        return;
    fprintf(stderr, "%s: +%.3f s: ", t->name, tool_now() - t->t0);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *tool_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
        snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
        snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

void tool_subflow_event(const struct tool *t, const struct mpt_subflow_info *sf)
{
    char l[64], r[64];

    if (!t->verbose)
        return;
    tool_addr(&sf->local, l, sizeof l);
    tool_addr(&sf->remote, r, sizeof r);
    if (sf->state == MPT_SUBFLOW_ESTABLISHED)
        tool_verbose(t, "subflow %d up: path %d, %s -> %s%s%s%s", sf->id, sf->path_id, l, r,
                     sf->ifname[0] ? " dev " : "", sf->ifname, sf->backup ? " (backup)" : "");
    else if (sf->fail_error != 0)
        tool_verbose(t, "subflow %d down: path %d, %s -> %s: %s%s%s, %u failure(s)%s", sf->id,
                     sf->path_id, l, r, mpt_err_name(sf->fail_error),
                     sf->sys_errno ? ", " : "", sf->sys_errno ? strerror(sf->sys_errno) : "",
                     sf->failures, sf->retry_ms >= 0 ? ", retrying" : "");
    else
        tool_verbose(t, "subflow %d closed: path %d, %s -> %s", sf->id, sf->path_id, l, r);
}

void tool_print_stats(const struct tool *t, FILE *f, struct mpt_socket *s)
{
    struct mpt_subflow_info sf[32];
    struct mpt_info info = {.size = sizeof info};
    char l[64], r[64];
    int n;

    if (s == NULL || (n = mpt_get_subflows(s, sf, 32)) < 0)
        return;
    if (n > 32)
        n = 32;
    fprintf(f, "%s: subflows:\n", t->name);
    fprintf(f, "  %3s %4s %-24s %-24s %-11s %9s %12s %12s %7s %s\n", "id", "path", "local",
            "remote", "state", "rtt_ms", "sent", "received", "retrans", "cause");
    for (int i = 0; i < n; i++)
        fprintf(f, "  %3d %4d %-24s %-24s %-11s %9.2f %12" PRIu64 " %12" PRIu64 " %7u %s\n",
                sf[i].id, sf[i].path_id, tool_addr(&sf[i].local, l, sizeof l),
                tool_addr(&sf[i].remote, r, sizeof r), mpt_subflow_state_name(sf[i].state),
                (double)sf[i].rtt_us / 1000.0, sf[i].bytes_sent, sf[i].bytes_received,
                sf[i].total_retrans, sf[i].fail_error ? mpt_err_name(sf[i].fail_error) : "-");
    if (mpt_get_info(s, &info) == 0)
        fprintf(f,
                "%s: connection: %s, sent %" PRIu64 " B (reinjected %" PRIu64 "), received %" PRIu64
                " B, subflows opened %" PRIu64 ", failed %" PRIu64 ", scheduler %s, cc %s\n",
                t->name, mpt_state_name(info.state), info.bytes_sent, info.bytes_reinjected,
                info.bytes_received, info.subflows_opened, info.subflows_failed,
                info.scheduler ? info.scheduler : "?", info.congestion ? info.congestion : "?");
}

/* ---- standard input's flags ---------------------------------------------------- */

static int saved_fd = -1, saved_flags;

static void restore_flags(void)
{
    if (saved_fd >= 0)
        (void)fcntl(saved_fd, F_SETFL, saved_flags);
}

static void restore_and_die(int sig)
{
    restore_flags();
    signal(sig, SIG_DFL);
    raise(sig);
}

int tool_nonblock_restored(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0)
        return -1;
    if (saved_fd < 0) {
        saved_fd = fd;
        saved_flags = fl;
        atexit(restore_flags);
        signal(SIGINT, restore_and_die);
        signal(SIGTERM, restore_and_die);
        signal(SIGHUP, restore_and_die);
    }
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* mpt-copy */

/* The address without its port, for path labels. */
static void addr_host(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, a, sizeof a);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, a, sizeof a);
    snprintf(buf, len, "%s", a);
}

void tool_paths_sample(struct tool_paths *p, struct mpt_socket *s, int by_remote)
{
    struct mpt_subflow_info sf[32];
    char label[64];
    int n;

    if (s == NULL || (n = mpt_get_subflows(s, sf, 32)) < 0)
        return;
    if (n > 32)
        n = 32;
    for (size_t k = 0; k < p->n; k++)
        p->path[k].up = 0;
    for (int i = 0; i < n; i++) {
        size_t k, j;
        uint64_t b = by_remote ? sf[i].bytes_received : sf[i].bytes_sent;

        addr_host(by_remote ? &sf[i].remote : &sf[i].local, label, sizeof label);
        for (k = 0; k < p->n && strcmp(p->path[k].label, label) != 0; k++)
            ;
        if (k == p->n) {
            if (p->n == TOOL_MAX_PATHS)
                continue;
            snprintf(p->path[k].label, sizeof p->path[k].label, "%s", label);
            p->path[k].bytes = 0;
            p->n++;
        }
        if (sf[i].state == MPT_SUBFLOW_ESTABLISHED)
            p->path[k].up = 1;
        for (j = 0; j < p->nsf && p->sf[j].id != sf[i].id; j++)
            ;
        if (j == p->nsf) {
            if (p->nsf == TOOL_PATHS_MAX_SUBFLOWS)
                continue;
            p->sf[j].id = sf[i].id;
            p->sf[j].path = k;
            p->sf[j].bytes = 0;
            p->nsf++;
        }
        if (b > p->sf[j].bytes) {
            p->path[k].bytes += b - p->sf[j].bytes;
            p->sf[j].bytes = b;
        }
    }
}

const char *tool_bytes(uint64_t n, char *buf, size_t len)
{
    if (n < 1024)
        snprintf(buf, len, "%" PRIu64 " B", n);
    else if (n < (1u << 20))
        snprintf(buf, len, "%.1f KiB", (double)n / 1024);
    else if (n < (1ull << 30))
        snprintf(buf, len, "%.1f MiB", (double)n / (1 << 20));
    else
        snprintf(buf, len, "%.2f GiB", (double)n / (1 << 30));
    return buf;
}

/* mpt-cat / mpt-stream */


static int stdio_saved, stdio_flags[2];

static void restore_stdio(void)
{
    /* Output first: if both share a description, input's copy wins, and
     * both hold the flags from before any change. */
    if (stdio_saved) {
        (void)fcntl(STDOUT_FILENO, F_SETFL, stdio_flags[1]);
        (void)fcntl(STDIN_FILENO, F_SETFL, stdio_flags[0]);
    }
    restore_flags();
}

static void restore_stdio_and_die(int sig)
{
    restore_stdio();
    signal(sig, SIG_DFL);
    raise(sig);
}

int tool_nonblock_stdio(void)
{
    int in = fcntl(STDIN_FILENO, F_GETFL), out = fcntl(STDOUT_FILENO, F_GETFL);

    if (in < 0 || out < 0)
        return -1;
    if (!stdio_saved) {
        stdio_flags[0] = in;
        stdio_flags[1] = out;
        stdio_saved = 1;
        atexit(restore_stdio);
        signal(SIGINT, restore_stdio_and_die);
        signal(SIGTERM, restore_stdio_and_die);
        signal(SIGHUP, restore_stdio_and_die);
    }
    if (fcntl(STDIN_FILENO, F_SETFL, in | O_NONBLOCK) < 0 ||
        fcntl(STDOUT_FILENO, F_SETFL, out | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

void tool_release_stdout(void)
{
    struct stat in, out;
    int fd;

    if (isatty(STDOUT_FILENO) || fstat(STDOUT_FILENO, &out) < 0 ||
        (fstat(STDIN_FILENO, &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino))
        return;
    if ((fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
        return;
    if (stdio_saved)
        (void)fcntl(STDOUT_FILENO, F_SETFL, stdio_flags[1]);
    if (dup2(fd, STDOUT_FILENO) >= 0)
        stdio_flags[1] = fcntl(STDOUT_FILENO, F_GETFL);
    close(fd);
}
