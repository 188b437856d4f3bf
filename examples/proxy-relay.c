/* mpt-proxy's byte pump between a TCP socket and a libmpt connection (proxy-relay.h). */
#include "proxy-relay.h"
#include "proxy-target.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void tcp_read_cb(EV_P_ ev_io *w, int revents);
static void tcp_write_cb(EV_P_ ev_io *w, int revents);

void proxy_relay_init(struct proxy_relay *r, struct ev_loop *loop, int fd,
                      struct mpt_socket *sock, const struct proxy_relay_ops *ops, void *user)
{
    memset(r, 0, sizeof *r);
    r->loop = loop;
    r->fd = fd;
    r->sock = sock;
    r->ops = ops;
    r->user = user;
    ev_io_init(&r->tcp_read, tcp_read_cb, fd, EV_READ);
    r->tcp_read.data = r;
    ev_io_init(&r->tcp_write, tcp_write_cb, fd, EV_WRITE);
    r->tcp_write.data = r;
}

int proxy_relay_preload_mpt(struct proxy_relay *r, const void *buf, size_t len)
{
    if (len > sizeof r->to_mpt - r->to_mpt_len)
        return -1;
    memcpy(r->to_mpt + r->to_mpt_len, buf, len);
    r->to_mpt_len += len;
    return 0;
}

int proxy_relay_preload_tcp(struct proxy_relay *r, const void *buf, size_t len)
{
    if (len > sizeof r->to_tcp - r->to_tcp_len)
        return -1;
    memcpy(r->to_tcp + r->to_tcp_len, buf, len);
    r->to_tcp_len += len;
    r->bytes_to_tcp += len;
    return 0;
}

void proxy_relay_stop(struct proxy_relay *r)
{
    ev_io_stop(r->loop, &r->tcp_read);
    ev_io_stop(r->loop, &r->tcp_write);
}

/* Marks the relay over; the entry point that was called reports it. */
static void finish(struct proxy_relay *r, enum proxy_relay_end why)
{
    if (r->ended)
        return;
    r->ended = 1;
    r->why = why;
    proxy_relay_stop(r);
}

/* The last call of every entry point: `ended` may free r. */
static void report(struct proxy_relay *r)
{
    if (r->ended == 1) {
        r->ended = 2;
        r->ops->ended(r, r->why, r->user);
    }
}

static void check_done(struct proxy_relay *r)
{
    if (r->tcp_eof && r->mpt_shut && r->mpt_eof && r->tcp_shut && r->to_tcp_len == 0)
        finish(r, PROXY_RELAY_DONE);
}

/* TCP -> libmpt: send what is buffered; read TCP again only once it is all
 * in libmpt's send buffer (that is the backpressure). */
static void pump_to_mpt(struct proxy_relay *r)
{
    while (!r->ended && r->to_mpt_len > 0) {
        ssize_t n = mpt_send(r->sock, r->to_mpt + r->to_mpt_off, r->to_mpt_len);
        if (n == MPT_EAGAIN) {
            ev_io_stop(r->loop, &r->tcp_read); /* until `writable` */
            return;
        }
        if (n < 0) {
            r->mpt_error = (int)n;
            finish(r, PROXY_RELAY_MPT_ERROR);
            return;
        }
        r->to_mpt_off += (size_t)n;
        r->to_mpt_len -= (size_t)n;
    }
    if (r->ended)
        return;
    r->to_mpt_off = 0;
    if (r->tcp_eof) {
        ev_io_stop(r->loop, &r->tcp_read);
        if (!r->mpt_shut) {
            int rc = mpt_shutdown(r->sock);
            if (rc < 0 && rc != MPT_EPIPE) {
                r->mpt_error = rc;
                finish(r, PROXY_RELAY_MPT_ERROR);
                return;
            }
            r->mpt_shut = 1;
            check_done(r);
        }
        return;
    }
    ev_io_start(r->loop, &r->tcp_read);
}

/* libmpt -> TCP: write what is buffered; take more from libmpt only once the
 * TCP socket has taken it all. */
static void pump_to_tcp(struct proxy_relay *r)
{
    while (!r->ended) {
        while (r->to_tcp_len > 0) {
            ssize_t n = send(r->fd, r->to_tcp + r->to_tcp_off, r->to_tcp_len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                ev_io_start(r->loop, &r->tcp_write);
                return;
            }
            if (n < 0) {
                r->tcp_errno = errno;
                finish(r, PROXY_RELAY_TCP_ERROR);
                return;
            }
            r->to_tcp_off += (size_t)n;
            r->to_tcp_len -= (size_t)n;
        }
        r->to_tcp_off = 0;
        ev_io_stop(r->loop, &r->tcp_write);
        if (r->mpt_eof) {
            if (!r->tcp_shut) {
                /* The peer may have reset already; the read side reports that. */
                (void)shutdown(r->fd, SHUT_WR);
                r->tcp_shut = 1;
                check_done(r);
            }
            return;
        }
        ssize_t n = mpt_recv(r->sock, r->to_tcp, sizeof r->to_tcp);
        if (n == MPT_EAGAIN)
            return; /* `readable` calls again */
        if (n < 0) {
            r->mpt_error = (int)n;
            finish(r, PROXY_RELAY_MPT_ERROR);
            return;
        }
        if (n == 0) {
            if (r->expect_status) { /* the server ended the stream without a status */
                r->expect_status = 0;
                (void)r->ops->status(r, PROXY_REPLY_FAILURE, r->user);
                finish(r, PROXY_RELAY_STATUS);
                return;
            }
            r->mpt_eof = 1;
            continue;
        }
        if (r->expect_status) {
            int code = r->to_tcp[0];
            r->expect_status = 0;
            memmove(r->to_tcp, r->to_tcp + 1, (size_t)n - 1);
            n--;
            if (r->ops->status(r, code, r->user) != 0) {
                finish(r, PROXY_RELAY_STATUS);
                return;
            }
        }
        r->to_tcp_len = (size_t)n;
        r->bytes_to_tcp += (uint64_t)n;
    }
}

static void tcp_read_cb(EV_P_ ev_io *w, int revents)
{
    struct proxy_relay *r = w->data;
    ssize_t n = read(r->fd, r->to_mpt, sizeof r->to_mpt);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        r->tcp_errno = errno;
        finish(r, PROXY_RELAY_TCP_ERROR);
    } else {
        if (n == 0)
            r->tcp_eof = 1;
        r->to_mpt_len = (size_t)n;
        r->bytes_to_mpt += (uint64_t)n;
        pump_to_mpt(r);
    }
    report(r);
}

static void tcp_write_cb(EV_P_ ev_io *w, int revents)
{
    struct proxy_relay *r = w->data;

    pump_to_tcp(r);
    report(r);
}

void proxy_relay_start(struct proxy_relay *r)
{
    r->started = 1;
    pump_to_mpt(r);
    pump_to_tcp(r);
    report(r);
}

void proxy_relay_mpt_readable(struct proxy_relay *r)
{
    pump_to_tcp(r);
    report(r);
}

void proxy_relay_mpt_writable(struct proxy_relay *r)
{
    pump_to_mpt(r);
    report(r);
}

void proxy_relay_mpt_closed(struct proxy_relay *r, int status)
{
    if (status < 0) {
        r->mpt_error = status;
        finish(r, PROXY_RELAY_MPT_ERROR);
    } else {
        pump_to_tcp(r); /* what is still buffered, then the end of stream */
    }
    report(r);
}
