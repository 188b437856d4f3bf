/*
 * mpt-cat: netcat over libmpt.
 *
 *   mpt-cat [options] HOST PORT
 *   mpt-cat [options] -l [-k] [ADDR]... PORT
 *
 * Standard input goes to the peer, the peer's data to standard output. The
 * two directions end separately: end of input becomes the end of the
 * libmpt stream (mpt_shutdown), the peer's end of stream ends the output,
 * and the tool is done once both are over and the connection has closed
 * gracefully. Everything runs on one libev loop, which also watches
 * standard input and output (both non-blocking, restored at exit).
 * doc/man/mpt-cat.1 is the user's documentation.
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpt/mpt.h>

#include "tool.h"

/* A local read or write failed: standard input or output. */
#define EXIT_LOCAL_IO 3

#define BUF_SIZE 65536

static struct tool T;
static struct ev_loop *loop;
static struct mpt_ctx *ctx;
static struct mpt_listener *listener;

/* ---- options --------------------------------------------------------------- */

static int listening, keep;
static const char *host;
static uint16_t port;
static const char *laddrs[TOOL_MAX_ADDRS];
static size_t nladdrs;
static char where[400]; /* "host:port" (client) or "addr:port" (server): every message */

/* ---- standard input and output ------------------------------------------------ */

static ev_io in_w, out_w;
static char inbuf[BUF_SIZE], outbuf[BUF_SIZE];
static size_t inlen, outoff, outlen;
static int in_eof;    /* standard input has ended (it is read once, even with -k) */
static int stdin_tty; /* a terminal: the peer's end of stream also ends our sending side */

/* ---- the connection being served ------------------------------------------------- */

static struct session {
    struct mpt_socket *s;
    char peer[80];
    int established;
    int shut;        /* our end of stream was sent */
    int stop_input;  /* send what is buffered, then end the stream */
    int peer_eof;    /* the peer's end of stream was read */
    int closed;      /* `closed` came; status says how */
    int status;
    int reported;    /* its failure was printed */
    int stats_done;  /* --stats printed */
    int result;      /* TOOL_EXIT_OK, TOOL_EXIT_FAIL or EXIT_LOCAL_IO */
    uint64_t sent, received;
    double t_start;
} cur;

/* A client that connected while the current one was only waiting for the
 * close to complete: served next rather than refused (sequential clients
 * of -k would otherwise race the previous close). */
static struct mpt_socket *pending;
static unsigned served;
static int exit_code = TOOL_EXIT_OK;
static int stopping; /* a fatal local error or a signal: no next client */

static void session_done(void);
static void pump_recv(void);
static void flush_input(void);

/* --stats once both directions are over, while the subflows still exist
 * (they are gone once the close completes), or at the end of a failure. */
static void stats_once(void)
{
    if (T.stats && cur.s != NULL && !cur.stats_done) {
        cur.stats_done = 1;
        tool_print_stats(&T, stderr, cur.s);
    }
}

static void set_result(int code)
{
    if (cur.result == TOOL_EXIT_OK)
        cur.result = code;
}

static void fail_conn(const char *what, int err)
{
    if (!cur.reported) {
        char w[500];
        snprintf(w, sizeof w, "%s%s%s", where, listening ? " from " : "", listening ? cur.peer : "");
        tool_conn_error(&T, cur.s, w, what, err);
        if (err == MPT_ERESET && !listening && cur.received == 0)
            fprintf(stderr, "%s: %s: (an mpt-cat -l aborts a client that comes while it "
                            "serves another one)\n", T.name, where);
    }
    cur.reported = 1;
    set_result(TOOL_EXIT_FAIL);
}

/* Standard input or output failed: the transfer cannot complete, so the
 * peer is told with an abort rather than a clean end of stream. */
static void fail_local(const char *what, const char *op, int e)
{
    tool_error_errno(&T, what, e == EPIPE ? "write (the reader went away)" : op, e);
    set_result(EXIT_LOCAL_IO);
    cur.reported = 1;
    stopping = 1;
    if (cur.s != NULL && !cur.closed) {
        cur.closed = 1;
        cur.status = MPT_ECLOSED;
    }
    session_done();
}

static void input_watch(int on)
{
    if (on && cur.established && !cur.closed && !in_eof && !cur.shut && !cur.stop_input &&
        inlen < sizeof inbuf)
        ev_io_start(loop, &in_w);
    else
        ev_io_stop(loop, &in_w);
}

static void maybe_done(void)
{
    if (cur.s != NULL && cur.closed && outlen == 0 && (cur.peer_eof || cur.status < 0))
        session_done();
}

/* ---- sending: standard input -> peer ----------------------------------------------- */

static void flush_input(void)
{
    if (cur.s == NULL || cur.closed || cur.shut)
        return;
    while (inlen > 0) {
        ssize_t n = mpt_send(cur.s, inbuf, inlen);
        if (n == MPT_EAGAIN) {
            input_watch(0); /* `writable` resumes */
            return;
        }
        if (n < 0) {
            input_watch(0);
            fail_conn("send", (int)n);
            return; /* `closed` follows */
        }
        memmove(inbuf, inbuf + n, inlen - (size_t)n);
        inlen -= (size_t)n;
        cur.sent += (uint64_t)n;
    }
    if (in_eof || cur.stop_input) {
        int rc = mpt_shutdown(cur.s);
        input_watch(0);
        cur.shut = 1;
        if (rc < 0 && rc != MPT_EPIPE) {
            fail_conn("end of stream", rc);
            return;
        }
        tool_verbose(&T, "%s: sent end of stream after %llu bytes (%s)", where,
                     (unsigned long long)cur.sent,
                     in_eof ? "end of standard input" : "the peer ended, input is a terminal");
        if (cur.peer_eof)
            stats_once();
        return;
    }
    input_watch(1);
}

static void stdin_cb(EV_P_ ev_io *w, int revents)
{
    ssize_t n = read(STDIN_FILENO, inbuf + inlen, sizeof inbuf - inlen);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        fail_local("standard input", "read", errno);
        return;
    }
    if (n == 0)
        in_eof = 1;
    else
        inlen += (size_t)n;
    flush_input();
}

/* ---- receiving: peer -> standard output ----------------------------------------------- */

/* Writes what is buffered; 1 when the buffer is empty, 0 when stdout is
 * full (out_w waits), -1 after a write error was reported. */
static int write_out(void)
{
    while (outoff < outlen) {
        ssize_t n = write(STDOUT_FILENO, outbuf + outoff, outlen - outoff);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            ev_io_start(loop, &out_w);
            return 0;
        }
        if (n < 0) {
            fail_local("standard output", "write", errno);
            return -1;
        }
        outoff += (size_t)n;
    }
    outoff = outlen = 0;
    ev_io_stop(loop, &out_w);
    return 1;
}

static void stdout_cb(EV_P_ ev_io *w, int revents)
{
    if (write_out() == 1) {
        pump_recv();
        maybe_done();
    }
}

/* Moves received data to standard output while it takes it: the unread
 * rest stays in libmpt, whose receive window then holds the peer back. */
static void pump_recv(void)
{
    while (cur.s != NULL && outlen == 0 && !cur.peer_eof) {
        ssize_t n = mpt_recv(cur.s, outbuf, sizeof outbuf);
        if (n == MPT_EAGAIN)
            return;
        if (n < 0) {
            fail_conn(cur.closed ? "the connection was aborted" : "receive", (int)n);
            cur.peer_eof = 1; /* nothing more will come */
            maybe_done();
            return;
        }
        if (n == 0) {
            cur.peer_eof = 1;
            if (!keep) /* -k writes the next client's data there too */
                tool_release_stdout(); /* a reader of our output sees its end now */
            tool_verbose(&T, "%s: end of stream from the peer after %llu bytes", where,
                         (unsigned long long)cur.received);
            if (stdin_tty && !cur.shut) {
                cur.stop_input = 1;
                flush_input();
            }
            if (cur.shut)
                stats_once();
            maybe_done();
            return;
        }
        cur.received += (uint64_t)n;
        outlen = (size_t)n;
        if (write_out() < 0)
            return;
    }
}

/* ---- libmpt callbacks ----------------------------------------------------------- */

static void session_start(struct mpt_socket *s)
{
    struct mpt_subflow_info sf[4];

    memset(&cur, 0, sizeof cur);
    cur.s = s;
    cur.t_start = tool_now();
    snprintf(cur.peer, sizeof cur.peer, "?");
    if (listening) {
        if (mpt_get_subflows(s, sf, 4) > 0)
            tool_addr(&sf[0].remote, cur.peer, sizeof cur.peer);
        cur.established = 1;
        served++;
        tool_verbose(&T, "%s: accepted a client from %s", where, cur.peer);
        flush_input();
        pump_recv();
    }
}

static void on_connected(struct mpt_socket *s, int status, void *user)
{
    if (s != cur.s)
        return;
    if (status < 0) {
        char what[400] = "connect";
        int n = (int)strlen(what);
        for (size_t i = 0; i < T.npaths && n < (int)sizeof what; i++)
            n += snprintf(what + n, sizeof what - (size_t)n, "%s%s", i ? "," : " over paths ",
                          T.paths[i]);
        fail_conn(what, status);
        return; /* `closed` follows */
    }
    cur.established = 1;
    tool_verbose(&T, "connected to %s", where);
    flush_input();
    pump_recv();
}

static void on_readable(struct mpt_socket *s, void *user)
{
    if (s == cur.s)
        pump_recv();
}

static void on_writable(struct mpt_socket *s, void *user)
{
    if (s == cur.s)
        flush_input();
}

static void on_closed(struct mpt_socket *s, int status, void *user)
{
    if (s == pending) {
        mpt_close(pending);
        pending = NULL;
        return;
    }
    if (s != cur.s)
        return;
    cur.closed = 1;
    cur.status = status;
    input_watch(0);
    if (status < 0)
        fail_conn(cur.established ? "the connection was aborted" : "connect", status);
    pump_recv(); /* what arrived before the close is still delivered */
    maybe_done();
}

static void on_subflow(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    if (s == cur.s)
        tool_subflow_event(&T, sf);
}

static const struct mpt_callbacks cbs = {
    .connected = on_connected,
    .readable = on_readable,
    .writable = on_writable,
    .subflow_up = on_subflow,
    .subflow_down = on_subflow,
    .closed = on_closed,
};

/* The current client is over: report it, then serve the next one (-k) or
 * end the loop. */
static void session_done(void)
{
    struct mpt_socket *s = cur.s;

    if (s == NULL)
        return;
    if (!cur.shut && cur.result == TOOL_EXIT_OK)
        set_result(TOOL_EXIT_FAIL);
    if (cur.status < 0)
        set_result(TOOL_EXIT_FAIL);
    tool_verbose(&T, "%s%s%s: connection %s: sent %llu B, received %llu B in %.3f s", where,
                 listening ? " from " : "", listening ? cur.peer : "",
                 cur.result == TOOL_EXIT_OK ? "closed" : "failed", (unsigned long long)cur.sent,
                 (unsigned long long)cur.received, tool_now() - cur.t_start);
    stats_once();
    if (cur.result != TOOL_EXIT_OK && exit_code == TOOL_EXIT_OK)
        exit_code = cur.result;
    input_watch(0);
    ev_io_stop(loop, &out_w);
    outoff = outlen = 0;
    inlen = 0; /* input the failed connection did not take is lost with it */
    if (cur.closed && cur.status == 0)
        mpt_close(s);
    else
        mpt_abort(s);
    cur.s = NULL;
    if (!listening || !keep || stopping) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (pending != NULL) {
        struct mpt_socket *p = pending;
        pending = NULL;
        session_start(p);
    }
}

static void on_accept(struct mpt_listener *l, void *user)
{
    struct mpt_socket *s;

    while (mpt_accept(l, &cbs, NULL, &s) == 0) {
        if (cur.s == NULL && !stopping) {
            session_start(s);
            continue;
        }
        if (cur.s != NULL && cur.shut && cur.peer_eof && pending == NULL) {
            pending = s; /* the current one only waits for its close to complete */
            continue;
        }
        struct mpt_subflow_info sf[4];
        char who[80] = "?";
        if (mpt_get_subflows(s, sf, 4) > 0)
            tool_addr(&sf[0].remote, who, sizeof who);
        fprintf(stderr, "%s: %s: refused a client from %s: busy with %s (one client at a time)\n",
                T.name, where, who, cur.peer);
        mpt_abort(s);
    }
}

/* ---- main ------------------------------------------------------------------------- */

static void usage_lines(FILE *f)
{
    fprintf(f, "usage: mpt-cat [options] HOST PORT\n"
               "       mpt-cat [options] -l [-k] [ADDR]... PORT\n");
}

static void help(void)
{
    usage_lines(stdout);
    fputs("\n"
          "Netcat over libmpt: standard input goes to the peer, the peer's data to\n"
          "standard output. End of input ends the stream to the peer; the tool exits\n"
          "once the peer has ended its stream too and everything was written.\n"
          "\n"
          "  -l, --listen          wait for a client on PORT (0: any free port, shown by\n"
          "                        -v), at each numeric ADDR or at every address\n"
          "  -k, --keep-listening  with -l (together: -lk): serve the next client after\n"
          "                        one is done, until SIGINT or SIGTERM; a client that\n"
          "                        comes while one is served is refused (aborted at once)\n",
          stdout);
    tool_common_help(stdout);
    fputs("\nExit status: 0 when every transfer completed, 1 when a connection failed\n"
          "(never connected, reset, aborted, cannot listen), 2 for a usage error, 3 when\n"
          "reading standard input or writing standard output failed. See mpt-cat(1).\n",
          stdout);
}

static int parse_args(int argc, char **argv)
{
    const char *pos[TOOL_MAX_ADDRS + 1];
    size_t npos = 0;
    int only_pos = 0;

    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        if (!only_pos && a[0] == '-' && a[1] != '\0') {
            int rc = tool_common_option(&T, argc, argv, &i);
            if (rc < 0)
                return TOOL_EXIT_USAGE;
            if (rc > 0)
                continue;
            i++;
            if (strcmp(a, "-l") == 0 || strcmp(a, "--listen") == 0) {
                listening = 1;
            } else if (strcmp(a, "-k") == 0 || strcmp(a, "--keep-listening") == 0) {
                keep = 1;
            } else if (strcmp(a, "-lk") == 0 || strcmp(a, "-kl") == 0) {
                listening = keep = 1;
            } else if (strcmp(a, "--") == 0) {
                only_pos = 1;
            } else {
                return tool_usage_error(&T, "unknown option '%s'", a);
            }
            continue;
        }
        if (npos == sizeof pos / sizeof pos[0])
            return tool_usage_error(&T, "unexpected argument '%s'", a);
        pos[npos++] = a;
        i++;
    }

    if (keep && !listening)
        return tool_usage_error(&T, "%s", "-k needs -l");
    if (!listening) {
        if (npos != 2)
            return tool_usage_error(&T, "%s", npos < 2 ? "HOST and PORT are needed (or -l [ADDR] PORT)"
                                              : "too many arguments: HOST PORT");
        host = pos[0];
        if (tool_parse_port(&T, "PORT", pos[1], &port) < 0)
            return TOOL_EXIT_USAGE;
        if (port == 0)
            return tool_usage_error(&T, "%s", "PORT: port 0 is not a port to connect to");
        snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
        return TOOL_EXIT_OK;
    }
    if (npos == 0)
        return tool_usage_error(&T, "%s", "-l needs a PORT");
    if (T.npaths || T.all_paths)
        return tool_usage_error(&T, "%s", "--path and --all-paths are for connecting, not with -l");
    if (tool_parse_port(&T, "PORT", pos[npos - 1], &port) < 0)
        return TOOL_EXIT_USAGE;
    nladdrs = npos - 1;
    for (size_t i = 0; i < nladdrs; i++)
        laddrs[i] = pos[i];
    return TOOL_EXIT_OK;
}

static void on_signal(EV_P_ ev_signal *w, int revents)
{
    stopping = 1;
    if (cur.s != NULL) {
        fprintf(stderr, "%s: %s%s%s: interrupted (signal %d) after sending %llu B and receiving "
                        "%llu B\n", T.name, where, listening ? " from " : "",
                listening ? cur.peer : "", w->signum, (unsigned long long)cur.sent,
                (unsigned long long)cur.received);
        cur.reported = 1;
        set_result(TOOL_EXIT_FAIL);
        session_done();
    }
    ev_break(EV_A_ EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    ev_signal sigint_w, sigterm_w;
    int rc;

    tool_init(&T, "mpt-cat");
    T.help = help;
    T.usage = usage_lines;
    if ((rc = parse_args(argc, argv)) != TOOL_EXIT_OK)
        return rc;
    signal(SIGPIPE, SIG_IGN); /* a closed output is an EPIPE to report */
    stdin_tty = isatty(STDIN_FILENO);
    if (tool_nonblock_stdio() < 0) {
        tool_error_errno(&T, "standard input and output", "cannot make them non-blocking", errno);
        return EXIT_LOCAL_IO;
    }
    loop = EV_DEFAULT;
    if (tool_ctx_new(&T, loop, &ctx) < 0)
        return TOOL_EXIT_FAIL;
    ev_io_init(&in_w, stdin_cb, STDIN_FILENO, EV_READ);
    ev_io_init(&out_w, stdout_cb, STDOUT_FILENO, EV_WRITE);

    if (listening) {
        rc = mpt_listen(ctx, nladdrs ? laddrs : NULL, nladdrs, port, on_accept, NULL, &listener);
        snprintf(where, sizeof where, strchr(nladdrs ? laddrs[0] : "", ':') ? "[%s]:%u" : "%s:%u",
                 nladdrs ? laddrs[0] : "*", rc < 0 ? port : (unsigned)mpt_listener_port(listener));
        if (rc < 0) {
            tool_error(&T, where, "listen", rc, 0);
            mpt_ctx_free(ctx);
            return TOOL_EXIT_FAIL;
        }
        if (tool_listener_setup(&T, listener) < 0) {
            mpt_ctx_free(ctx);
            return TOOL_EXIT_USAGE;
        }
        tool_verbose(&T, "listening on %s", where);
        /* With -k the tool runs until a signal; a signal during a client is a failure. */
        if (keep) {
            ev_signal_init(&sigint_w, on_signal, SIGINT);
            ev_signal_start(loop, &sigint_w);
            ev_signal_init(&sigterm_w, on_signal, SIGTERM);
            ev_signal_start(loop, &sigterm_w);
        }
    } else {
        memset(&cur, 0, sizeof cur);
        cur.t_start = tool_now();
        tool_verbose(&T, "connecting to %s", where);
        rc = mpt_connect(ctx, host, port, T.paths, T.npaths, &cbs, NULL, &cur.s);
        if (rc >= 0)
            tool_apply_meters(&T, cur.s);
        if (rc < 0) {
            char what[400] = "connect";
            int n = (int)strlen(what);
            for (size_t i = 0; i < T.npaths && n < (int)sizeof what; i++)
                n += snprintf(what + n, sizeof what - (size_t)n, "%s%s", i ? "," : " over paths ",
                              T.paths[i]);
            tool_error(&T, where, what, rc, 0);
            mpt_ctx_free(ctx);
            return TOOL_EXIT_FAIL;
        }
    }
    ev_run(loop, 0);

    if (cur.s != NULL) {
        /* The loop ran dry with the connection open: libmpt lost track of it. */
        if (!cur.reported)
            fprintf(stderr, "%s: %s: the connection did not finish\n", T.name, where);
        set_result(TOOL_EXIT_FAIL);
        session_done();
    }
    if (pending != NULL)
        mpt_abort(pending);
    if (listening && keep)
        tool_verbose(&T, "%s: stopped after %u client(s)", where, served);
    mpt_listener_close(listener);
    mpt_ctx_free(ctx);
    return exit_code;
}
