/*
 * mpt-proxy's byte pump: one TCP socket and one libmpt connection, both
 * directions, once both are up.
 *
 *  - Bounded: one buffer of PROXY_RELAY_BUF bytes per direction. When
 *    mpt_send says MPT_EAGAIN the TCP socket is not read until `writable`;
 *    when the TCP socket cannot take more, mpt_recv is not called until it
 *    can (libmpt then holds the data and its window closes).
 *  - Half-close both ways: end of file from TCP becomes mpt_shutdown, the
 *    libmpt end of stream becomes shutdown(SHUT_WR).
 *  - An error on either side ends the relay at once; the owner resets the
 *    other side.
 * The owner keeps the libmpt callbacks and forwards readable, writable and
 * closed to proxy_relay_mpt_*; the relay calls `ended` exactly once, as the
 * last thing it does in that call chain (the owner may free it there).
 */
#ifndef MPT_PROXY_RELAY_H
#define MPT_PROXY_RELAY_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include <mpt/mpt.h>

#define PROXY_RELAY_BUF 65536

enum proxy_relay_end {
    PROXY_RELAY_DONE = 0,  /* both directions finished */
    PROXY_RELAY_TCP_ERROR, /* reading or writing the TCP socket failed: errno in tcp_errno */
    PROXY_RELAY_MPT_ERROR, /* the libmpt connection failed: code in mpt_error */
    PROXY_RELAY_STATUS,    /* the server's status byte was not 0 (status callback) */
};

struct proxy_relay;

struct proxy_relay_ops {
    /* With expect_status: the first byte from libmpt, the server's status.
     * Return 0 to go on, non-zero to end the relay (PROXY_RELAY_STATUS). */
    int (*status)(struct proxy_relay *r, int code, void *user);
    void (*ended)(struct proxy_relay *r, enum proxy_relay_end why, void *user);
};

struct proxy_relay {
    struct ev_loop *loop;
    int fd;
    struct mpt_socket *sock;
    const struct proxy_relay_ops *ops;
    void *user;
    int expect_status;         /* the first libmpt byte is the server's status */
    int started, ended;
    ev_io tcp_read, tcp_write;
    /* TCP -> libmpt */
    uint8_t to_mpt[PROXY_RELAY_BUF];
    size_t to_mpt_off, to_mpt_len;
    int tcp_eof, mpt_shut;
    /* libmpt -> TCP */
    uint8_t to_tcp[PROXY_RELAY_BUF];
    size_t to_tcp_off, to_tcp_len;
    int mpt_eof, tcp_shut;
    enum proxy_relay_end why;
    int tcp_errno, mpt_error;
    uint64_t bytes_to_mpt, bytes_to_tcp; /* payload, without header and status */
};

/* Prepares r (not started). */
void proxy_relay_init(struct proxy_relay *r, struct ev_loop *loop, int fd,
                      struct mpt_socket *sock, const struct proxy_relay_ops *ops, void *user);
/* Bytes to send before anything read from the other side (the header, the
 * status byte, data read while the connection was being set up). Call
 * before proxy_relay_start; -1 if they do not fit. */
int proxy_relay_preload_mpt(struct proxy_relay *r, const void *buf, size_t len);
int proxy_relay_preload_tcp(struct proxy_relay *r, const void *buf, size_t len);
/* Starts pumping both ways (both sides must be connected). */
void proxy_relay_start(struct proxy_relay *r);
/* Forwarded libmpt events. */
void proxy_relay_mpt_readable(struct proxy_relay *r);
void proxy_relay_mpt_writable(struct proxy_relay *r);
void proxy_relay_mpt_closed(struct proxy_relay *r, int status);
/* Stops the watchers (the owner closes fd and sock). */
void proxy_relay_stop(struct proxy_relay *r);

#endif
