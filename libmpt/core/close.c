/* Graceful close (DATA_FIN, CLOSE), abort and FASTCLOSE, and the mapping
 * between local errors and wire reason codes.
 *
 * CLOSE. shutdown -> DATA_FIN (dsn = end of data, consumes one DSN) once all
 * data has been sent (re-sent elsewhere if its subflow fails or stalls);
 * half-close works both ways. CLOSE (with a final DATA_ACK) on every
 * established subflow when our DATA_FIN is acked and the peer's is consumed;
 * the peer answers CLOSE (a CLOSE before both DATA_FINs is a protocol error,
 * never an end of stream; a duplicate is ignored); then CLOSED and MPT_EV_CLOSED (subflows CLOSED;
 * the caller drains their output, then closes the sockets). If both
 * DATA_FINs are done and no subflow is left, the connection is CLOSED too
 * (only the CLOSE exchange was lost). close_timeout bounds the wait for the
 * peer's CLOSE (then FASTCLOSE + MPT_ETIMEDOUT). A local abort or fatal
 * error sends FASTCLOSE on every live subflow (no events for a local
 * abort; recv/send then return MPT_ECLOSED); a received FASTCLOSE aborts
 * with MPT_EV_ERROR/MPT_ERESET, except on a join subflow that is not yet
 * authenticated, where it only fails that subflow.
 */
#include "alloc.h"
#include "conn_int.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

int mpt_err_of_reason(uint32_t reason)
{
    switch (reason) {
    case MPT_REASON_AUTH: return MPT_EAUTH;
    case MPT_REASON_TOO_MANY: return MPT_ETOOMANY;
    case MPT_REASON_TIMEOUT: return MPT_ETIMEDOUT;
    case MPT_REASON_UNKNOWN_TOKEN: return MPT_ETOKEN;
    case MPT_REASON_VERSION: return MPT_EVERSION;
    case MPT_REASON_REPLAY: return MPT_EREPLAY;
    case MPT_REASON_FLOW: return MPT_EFLOW;
    case MPT_REASON_RESOURCE: return MPT_ENOBUFS;
    case MPT_REASON_PROTOCOL: return MPT_EPROTO;
    default: return MPT_ECLOSED;
    }
}

uint32_t mpt_reason_of_err(int err)
{
    switch (err) {
    case MPT_EAUTH: return MPT_REASON_AUTH;
    case MPT_ETOOMANY: return MPT_REASON_TOO_MANY;
    case MPT_ETIMEDOUT: return MPT_REASON_TIMEOUT;
    case MPT_ETOKEN: return MPT_REASON_UNKNOWN_TOKEN;
    case MPT_EVERSION: return MPT_REASON_VERSION;
    case MPT_EREPLAY: return MPT_REASON_REPLAY;
    case MPT_EFLOW: return MPT_REASON_FLOW;
    case MPT_ENOMEM:
    case MPT_ENOBUFS: return MPT_REASON_RESOURCE;
    case MPT_ENOPATH: return MPT_REASON_PATH_REMOVED;
    case MPT_EPROTO:
    case MPT_EPREAMBLE:
    case MPT_EFRAME_LEN:
    case MPT_EFRAME_TOOBIG:
    case MPT_EFRAME_RESERVED:
    case MPT_EFRAME_TYPE:
    case MPT_EFRAME_VALUE: return MPT_REASON_PROTOCOL;
    /* local causes with no wire reason: a reset, EOF, a system error */
    default: return MPT_REASON_NONE;
    }
}

void mpt_abort_conn(struct mpt_conn *c, int err, uint32_t reason, int fastclose, int event,
                       int errsf, uint8_t ftype)
{
    if (c->state == MPT_CONN_ABORTED || c->state == MPT_CONN_CLOSED)
        return;
    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        if (!sf_live(s))
            continue;
        mpt_q_drop(s);
        if (i == errsf)
            mpt_q_reason(s, MPT_FT_ERROR, reason, ftype);
        if (fastclose && (s->state == MPT_SF_ESTABLISHED || s->state == MPT_SF_CLOSING ||
                          s->state == MPT_SF_HANDSHAKE)) {
            struct mpt_frame f;
            memset(&f, 0, sizeof f);
            f.type = MPT_FT_FASTCLOSE;
            f.u.close.reason = reason;
            if (c->abort_text) {
                f.u.close.text = (const uint8_t *)c->abort_text;
                f.u.close.text_len = strlen(c->abort_text);
            }
            mpt_q_frame(s, &f);
        }
        s->state = MPT_SF_CLOSED;
    }
    c->state = MPT_CONN_ABORTED;
    c->error = err;
    if (event)
        mpt_ev_push(c, MPT_EV_ERROR, -1, err, reason);
}

/* Connection-level protocol violation found on subflow i. */
int mpt_proto_violation(struct mpt_conn *c, int i, int err, uint32_t reason, uint8_t ftype,
                           uint64_t now)
{
    (void)now;
    mpt_abort_conn(c, err, reason, 1, 1, i, ftype);
    return err;
}

void mpt_enter_closing(struct mpt_conn *c, uint64_t now)
{
    (void)now;
    if (c->state == MPT_CONN_ESTABLISHED)
        c->state = MPT_CONN_CLOSING;
}

void mpt_finish_close(struct mpt_conn *c)
{
    c->state = MPT_CONN_CLOSED;
    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        if (sf_live(s))
            s->state = MPT_SF_CLOSED;
        s->ack_pending = 0;
    }
    mpt_ev_push(c, MPT_EV_CLOSED, -1, 0, 0);
    mpt_ev_push(c, MPT_EV_READABLE, -1, 0, 0);
}

/* CLOSE (after a final DATA_ACK) on every established subflow: one of them
 * may be stalled, and the peer ignores duplicates. */
static int send_close_all(struct mpt_conn *c)
{
    int sent = 0;

    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        struct oitem *it;
        if (s->state != MPT_SF_ESTABLISHED)
            continue;
        it = mpt_ring_push_back(&s->q);
        if (it) {
            it->kind = IT_ACK;
            it->off = 0;
            it->len = 0;
            mpt_q_encode_ack(c, it);
            s->q_bytes += it->hlen;
            s->ack_pending = 0;
        }
        if (mpt_q_simple(s, MPT_FT_CLOSE, 0) == 0)
            sent = 1;
    }
    if (sent)
        c->ack_needed = 0;
    return sent;
}

void mpt_check_close(struct mpt_conn *c)
{
    if (!conn_open(c))
        return;
    if (!c->close_sent && c->fin_acked && c->rfin_consumed && send_close_all(c)) {
        c->close_sent = 1;
        c->close_deadline = c->now + c->s.close_timeout;
    }
    if (c->close_sent && c->close_rcvd)
        mpt_finish_close(c);
}

int mpt_conn_shutdown(struct mpt_conn *c, uint64_t now)
{
    if (!c)
        return MPT_EINVAL;
    c->now = now;
    if (c->state == MPT_CONN_ABORTED)
        return c->error;
    if (!conn_open(c))
        return MPT_ESTATE;
    if (c->fin_pending)
        return 0;
    c->fin_pending = 1;
    c->fin_dsn = c->sb.end;
    mpt_enter_closing(c, now);
    mpt_post(c, now);
    return 0;
}

int mpt_conn_abort(struct mpt_conn *c, uint32_t reason, uint64_t now)
{
    if (!c)
        return MPT_EINVAL;
    c->now = now;
    if (c->state == MPT_CONN_ABORTED || c->state == MPT_CONN_CLOSED)
        return MPT_ESTATE;
    mpt_abort_conn(c, MPT_ECLOSED, reason, 1, 0, -1, 0);
    return 0;
}

/* ERROR on any subflow fails that subflow only (13.1). */
/* 5.17: the text is for humans and may be anything: keep printable ASCII.
 * An unauthenticated join cannot write it: anyone who saw the token could. */
static void keep_peer_text(struct mpt_conn *c, int i, const struct mpt_frame *f)
{
    const struct sf *s = &c->sf[i];
    size_t n = f->u.close.text_len;

    if (n == 0 || (s->state == MPT_SF_HANDSHAKE && s->is_join && c->is_server))
        return;
    if (c->peer_text == NULL) {
        c->peer_text = mpt_malloc(MPT_FRAME_MAX_TEXT + 1);
        if (c->peer_text == NULL)
            return; /* a diagnostic only: the error code still goes up */
    }
    if (n > MPT_FRAME_MAX_TEXT)
        n = MPT_FRAME_MAX_TEXT;
    for (size_t k = 0; k < n; k++) {
        uint8_t ch = f->u.close.text[k];
        c->peer_text[k] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    c->peer_text[n] = '\0';
}

int mpt_close_on_error(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now)
{
    keep_peer_text(c, i, f);
    mpt_sf_fail(c, i, mpt_err_of_reason(f->u.close.reason), f->u.close.reason, 0, 0, now);
    return 0;
}

int mpt_close_on_fastclose(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now)
{
    struct sf *s = &c->sf[i];

    keep_peer_text(c, i, f);
    /* a join not yet authenticated cannot kill the connection: anyone
     * who saw the token could open one */
    if (s->state == MPT_SF_HANDSHAKE && s->is_join)
        mpt_sf_fail(c, i, MPT_ERESET, f->u.close.reason, 0, 0, now);
    else
        mpt_abort_conn(c, MPT_ERESET, f->u.close.reason, 0, 1, -1, 0);
    return 0;
}

int mpt_close_on_close(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now)
{
    struct sf *s = &c->sf[i];

    /* 11.1: valid only once both DATA_FINs are done: our DATA_FIN sent
     * (the CLOSE says it was acknowledged) and the peer's consumed. A
     * CLOSE before that would turn a truncated stream into a clean end. */
    if (c->close_rcvd)
        return 0; /* duplicate */
    if (!c->fin_sent || !c->rfin_consumed)
        return mpt_proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
    c->close_rcvd = 1;
    if (!c->fin_acked) {
        c->fin_acked = 1;
        c->snd_una = c->fin_dsn + 1;
        mpt_snd_release(c);
    }
    if (!c->close_sent && mpt_q_simple(s, MPT_FT_CLOSE, 0) == 0)
        c->close_sent = 1;
    if (c->close_sent)
        mpt_finish_close(c);
    return 0;
}

void mpt_close_on_subflow_close(struct mpt_conn *c, int i, const struct mpt_frame *f)
{
    struct sf *s = &c->sf[i];

    s->sc_rcvd = 1;
    mpt_snd_reinject_sf(c, s, 1);
    if (s->ack_pending)
        c->ack_needed = 1;
    mpt_q_drop(s);
    if (!s->sc_sent) {
        mpt_q_reason(s, MPT_FT_SUBFLOW_CLOSE, f->u.close.reason, 0);
        s->sc_sent = 1;
    }
    mpt_sf_closing_done(c, i, f->u.close.reason);
}
