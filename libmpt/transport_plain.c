/*
 * Plain TCP under a subflow: the system calls themselves, no copy, no state
 * beyond the fd.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <mpt/error.h>

#include "transport.h"

static int plain_handshake(struct mpt_tp *tp)
{
    (void)tp;
    return 0;
}

static ssize_t plain_read(struct mpt_tp *tp, uint8_t *buf, size_t len)
{
    ssize_t n = read(tp->fd, buf, len);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        tp->want = EV_READ;
    return n;
}

static ssize_t plain_writev(struct mpt_tp *tp, const struct iovec *iov, int n)
{
    struct msghdr mh;
    ssize_t w;

    memset(&mh, 0, sizeof mh);
    mh.msg_iov = (struct iovec *)iov;
    mh.msg_iovlen = (size_t)n;
    w = sendmsg(tp->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        tp->want = EV_WRITE;
    return w;
}

static int plain_export(struct mpt_tp *tp, const char *label, uint8_t *out, size_t len)
{
    (void)tp;
    (void)label;
    (void)out;
    (void)len;
    return MPT_ENOTSUP;
}

static void plain_free(struct mpt_tp *tp)
{
    free(tp);
}

static const struct mpt_tp_ops plain_ops = {
    .name = "tcp",
    .handshake = plain_handshake,
    .read = plain_read,
    .writev = plain_writev,
    .export_secret = plain_export,
    .free = plain_free,
};

struct mpt_tp *mpt_tp_plain_new(int fd)
{
    struct mpt_tp *tp = calloc(1, sizeof *tp);

    if (tp == NULL)
        return NULL;
    tp->ops = &plain_ops;
    tp->fd = fd;
    return tp;
}
