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
static int exit_code;

static void finish(int code)
{
    exit_code = code;
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
            fprintf(stderr, "mpt-cat: send: %s\n", mpt_strerror((int)n));
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
            fprintf(stderr, "mpt-cat: recv: %s\n", mpt_strerror((int)n));
            finish(1);
            return;
        }
        if (n == 0) {
            out_eof = 1;
            return;
        }
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
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
        fprintf(stderr, "mpt-cat: connect: %s\n", mpt_strerror(status));
        return; /* `closed` follows */
    }
    if (verbose)
        fprintf(stderr, "mpt-cat: connected\n");
    ev_io_start(mpt_ctx_loop(ctx), &stdin_w);
}

static void on_closed(struct mpt_socket *s, int status, void *user)
{
    if (verbose || status < 0)
        fprintf(stderr, "mpt-cat: connection closed: %s\n", mpt_strerror(status));
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
        rc = mpt_listen(ctx, nladdrs ? laddrs : NULL, nladdrs, (uint16_t)listen_port, on_accept,
                        NULL, &l);
        if (rc < 0) {
            fprintf(stderr, "mpt-cat: listen: %s\n", mpt_strerror(rc));
            return 1;
        }
        if (verbose)
            fprintf(stderr, "mpt-cat: listening on port %d\n", mpt_listener_port(l));
    } else {
        rc = mpt_connect(ctx, pos[0], (uint16_t)atoi(pos[1]), paths, npaths, &cbs, NULL, &sock);
        if (rc < 0) {
            fprintf(stderr, "mpt-cat: connect: %s\n", mpt_strerror(rc));
            return 1;
        }
    }
    ev_run(loop, 0);
    if (sock)
        mpt_close(sock);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
    return exit_code;
}
