/*
 * mpt-cat: netcat over libmpt.
 *
 *   mpt-cat -l PORT [--listen-addr ADDR]...      serve one connection
 *   mpt-cat HOST PORT [--path IF_OR_ADDR[/backup]]...
 *
 * Standard input goes to the peer, the peer's data to standard output. End of
 * input shuts down the sending side; the program exits when both directions
 * are finished. The context runs on the application's own libev loop, which
 * also watches standard input.
 *
 * Exit status: 0 only after a graceful close (both directions complete);
 * 1 for any failure (never connected, a send or receive error, a stream that
 * ended in error, a loop that ran dry first), with a message naming the
 * peer and the cause; 2 for a usage error.
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpt/mpt.h>

static struct mpt_ctx *ctx;
static struct mpt_socket *sock;
static ev_io stdin_w;
static char inbuf[65536];
static size_t inlen;
static int in_eof, out_eof, verbose;
static int exit_code = 1; /* until the connection has closed gracefully */
static int reported;       /* a failure message was printed */
static char peer[300];    /* "host:port" or ":port" (listening) */

/* "peer: what: MPT_E...: text (errno N: text)" */
static void fail_msg(const char *what, int err)
{
    struct mpt_info info = {.size = sizeof info};
    int e = 0;

    reported = 1;
    if (sock != NULL && mpt_get_info(sock, &info) == 0 && info.error == err)
        e = info.sys_errno;
    if (e != 0)
        fprintf(stderr, "mpt-cat: %s: %s: %s: %s (errno %d: %s)\n", peer, what, mpt_err_name(err),
                mpt_strerror(err), e, strerror(e));
    else
        fprintf(stderr, "mpt-cat: %s: %s: %s: %s\n", peer, what, mpt_err_name(err),
                mpt_strerror(err));
}

static void finish(int code)
{
    static int failed;

    failed |= code != 0; /* a failure is never undone by a later close */
    exit_code = failed ? 1 : 0;
    ev_break(mpt_ctx_loop(ctx), EVBREAK_ALL);
}

static void flush_input(void)
{
    while (inlen > 0) {
        ssize_t n = mpt_send(sock, inbuf, inlen);
        if (n == MPT_EAGAIN) {
            ev_io_stop(mpt_ctx_loop(ctx), &stdin_w); /* wait for `writable` */
            return;
        }
        if (n < 0) {
            fail_msg("send", (int)n);
            finish(1);
            return;
        }
        memmove(inbuf, inbuf + n, inlen - (size_t)n);
        inlen -= (size_t)n;
    }
    if (in_eof) {
        mpt_shutdown(sock);
        return;
    }
    ev_io_start(mpt_ctx_loop(ctx), &stdin_w);
}

static void stdin_cb(EV_P_ ev_io *w, int revents)
{
    ssize_t n = read(STDIN_FILENO, inbuf + inlen, sizeof inbuf - inlen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        in_eof = 1;
        ev_io_stop(EV_A_ w);
    } else {
        inlen += (size_t)n;
    }
    flush_input();
}

static void on_readable(struct mpt_socket *s, void *user)
{
    char buf[65536];
    for (;;) {
        ssize_t n = mpt_recv(s, buf, sizeof buf);
        if (n == MPT_EAGAIN)
            return;
        if (n < 0) {
            fail_msg("recv", (int)n);
            finish(1);
            return;
        }
        if (n == 0) {
            out_eof = 1;
            return;
        }
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            fprintf(stderr, "mpt-cat: %s: standard output: %s\n", peer, strerror(errno));
            reported = 1;
            finish(1);
            return;
        }
        fflush(stdout);
    }
}

static void on_writable(struct mpt_socket *s, void *user)
{
    flush_input();
}

static void on_connected(struct mpt_socket *s, int status, void *user)
{
    if (status < 0) {
        fail_msg("connect", status);
        return; /* `closed` follows */
    }
    if (verbose)
        fprintf(stderr, "mpt-cat: connected\n");
    ev_io_start(mpt_ctx_loop(ctx), &stdin_w);
}

static void on_closed(struct mpt_socket *s, int status, void *user)
{
    if (status < 0 && !reported)
        fail_msg("connection failed", status);
    else if (verbose)
        fprintf(stderr, "mpt-cat: %s: connection closed\n", peer);
    finish(status < 0 ? 1 : 0);
}

static void on_sf(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    if (verbose)
        fprintf(stderr, "mpt-cat: subflow %d (path %d) %s\n", sf->id, sf->path_id,
                sf->state == MPT_SUBFLOW_ESTABLISHED ? "up" : "down");
}

static const struct mpt_callbacks cbs = {
    .connected = on_connected,
    .readable = on_readable,
    .writable = on_writable,
    .subflow_up = on_sf,
    .subflow_down = on_sf,
    .closed = on_closed,
};

static void on_accept(struct mpt_listener *l, void *user)
{
    if (sock != NULL)
        return; /* one connection only */
    if (mpt_accept(l, &cbs, NULL, &sock) == 0) {
        if (verbose)
            fprintf(stderr, "mpt-cat: accepted\n");
        ev_io_start(mpt_ctx_loop(ctx), &stdin_w);
        on_readable(sock, NULL);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: mpt-cat [-v] [--trace FILE] -l PORT [--listen-addr ADDR]...\n"
                    "       mpt-cat [-v] [--trace FILE] HOST PORT [--path IF_OR_ADDR[/backup]]...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *paths[16], *laddrs[8], *pos[2], *trace = NULL;
    size_t npaths = 0, nladdrs = 0, npos = 0;
    int listen_port = -1, rc;
    struct mpt_listener *l = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-l") == 0 && i + 1 < argc)
            listen_port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc && npaths < 16)
            paths[npaths++] = argv[++i];
        else if (strcmp(argv[i], "--listen-addr") == 0 && i + 1 < argc && nladdrs < 8)
            laddrs[nladdrs++] = argv[++i];
        else if (strcmp(argv[i], "--trace") == 0 && i + 1 < argc)
            trace = argv[++i];
        else if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else if (argv[i][0] != '-' && npos < 2)
            pos[npos++] = argv[i];
        else
            usage();
    }
    if ((listen_port < 0 && npos != 2) || (listen_port >= 0 && npos != 0))
        usage();

    struct ev_loop *loop = EV_DEFAULT;
    if ((rc = mpt_ctx_new(&ctx, loop, NULL)) < 0) {
        fprintf(stderr, "mpt-cat: %s\n", mpt_strerror(rc));
        return 1;
    }
    if (trace && (rc = mpt_set_trace_file(ctx, trace)) < 0)
        fprintf(stderr, "mpt-cat: trace: %s\n", mpt_strerror(rc));
    fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
    ev_io_init(&stdin_w, stdin_cb, STDIN_FILENO, EV_READ);

    if (listen_port >= 0) {
        snprintf(peer, sizeof peer, "%s:%d", nladdrs ? laddrs[0] : "", listen_port);
        rc = mpt_listen(ctx, nladdrs ? laddrs : NULL, nladdrs, (uint16_t)listen_port, on_accept,
                        NULL, &l);
        if (rc < 0) {
            fail_msg("listen", rc);
            mpt_ctx_free(ctx);
            return 1;
        }
        snprintf(peer, sizeof peer, "%s:%d", nladdrs ? laddrs[0] : "", mpt_listener_port(l));
        if (verbose)
            fprintf(stderr, "mpt-cat: listening on port %d\n", mpt_listener_port(l));
    } else {
        snprintf(peer, sizeof peer, "%s:%s", pos[0], pos[1]);
        rc = mpt_connect(ctx, pos[0], (uint16_t)atoi(pos[1]), paths, npaths, &cbs, NULL, &sock);
        if (rc < 0) {
            char what[400] = "connect";
            for (size_t i = 0; i < npaths; i++)
                snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s",
                         i == 0 ? " over paths " : ",", paths[i]);
            fail_msg(what, rc);
            mpt_ctx_free(ctx);
            return 1;
        }
    }
    ev_run(loop, 0);
    if (exit_code != 0 && !reported)
        fprintf(stderr, "mpt-cat: %s: the connection did not finish (the event loop ran dry)\n",
                peer);
    if (sock)
        mpt_close(sock);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
    return exit_code;
}
