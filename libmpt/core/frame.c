/*
 * The frame codec. Decoding is a bounds check on the 4-byte header followed
 * by fixed-offset reads, so every frame (DATA included) decodes in O(1) and
 * DATA's payload is lent out, never copied.
 *
 * Encoding validates with the same rules as decoding: whatever
 * mpt_frame_encode() writes, mpt_frame_decode() accepts and reproduces.
 */
#include "frame.h"

#include <string.h>

#include <mpt/error.h>

#include "wire.h"

/*
 * Body length bounds and allowed flags per known type. A table indexed by
 * the type byte keeps the header checks branch-light; types absent from it
 * have known == 0. DATA's minimum is 8 (just the DSN) rather than 9 so that an
 * empty DATA reaches the value check and is reported as MPT_EFRAME_VALUE, as
 * frame.h documents.
 */
struct shape {
    uint16_t min, max;
    uint8_t flags;
    uint8_t known;
};

#define ADDR_V4_BODY (4 + 4 + MPT_ADDR_HMAC_LEN)
#define ADDR_V6_BODY (4 + 16 + MPT_ADDR_HMAC_LEN)
#define ACK_FIXED 12u
#define ACK_RANGE 16u

static const struct shape shapes[256] = {
    [MPT_FT_HELLO] = {40, 40, 0, 1},
    [MPT_FT_HELLO_ACK] = {48, 48, 0, 1},
    [MPT_FT_JOIN] = {26, 26, MPT_FF_JOIN_BACKUP, 1},
    [MPT_FT_JOIN_ACK] = {48, 48, 0, 1},
    [MPT_FT_JOIN_CONFIRM] = {32, 32, 0, 1},
    [MPT_FT_DATA] = {8, MPT_FRAME_MAX_BODY, 0, 1},
    [MPT_FT_DATA_ACK] = {ACK_FIXED, ACK_FIXED + ACK_RANGE * MPT_FRAME_MAX_SACK, 0, 1},
    [MPT_FT_DATA_FIN] = {8, 8, 0, 1},
    [MPT_FT_ADD_ADDR] = {ADDR_V4_BODY, ADDR_V6_BODY, MPT_FF_ADD_ADDR_ECHO, 1},
    [MPT_FT_REMOVE_ADDR] = {1, MPT_FRAME_MAX_REMOVE, 0, 1},
    [MPT_FT_PRIO] = {0, 0, MPT_FF_PRIO_BACKUP | MPT_FF_PRIO_SECONDARY | MPT_FF_PRIO_NEVER, 1},
    [MPT_FT_PING] = {8, 8, 0, 1},
    [MPT_FT_PONG] = {8, 8, 0, 1},
    [MPT_FT_CLOSE] = {0, 0, 0, 1},
    [MPT_FT_FASTCLOSE] = {4, 4 + MPT_FRAME_MAX_TEXT, 0, 1},
    [MPT_FT_SUBFLOW_CLOSE] = {4, 4, 0, 1},
    [MPT_FT_ERROR] = {5, 5 + MPT_FRAME_MAX_TEXT, 0, 1},
    [MPT_FT_SUBFLOW_FAILED] = {4 + MPT_NONCE_LEN, 4 + MPT_NONCE_LEN, 0, 1},
};

/* Length rules a [min, max] interval cannot express. */
static int body_len_ok(uint8_t type, size_t blen)
{
    const struct shape *s = &shapes[type];

    if (blen < s->min || blen > s->max)
        return 0;
    if (type == MPT_FT_DATA_ACK)
        return (blen - ACK_FIXED) % ACK_RANGE == 0;
    if (type == MPT_FT_ADD_ADDR)
        return blen == ADDR_V4_BODY || blen == ADDR_V6_BODY;
    return 1;
}

/*
 * DSNs wrap, so ranges are ordered by their distance above the cumulative
 * ack rather than by raw value. Keeping every distance, ends included, below
 * 2^63 means each start and end is serially above ack (RFC 1982 style), and
 * within that half of the number space distance order and serial order
 * agree, so one pass of unsigned comparisons settles "ascending" and
 * "non-overlapping" without the intransitivity of raw serial comparison.
 * Adjacent ranges (one's end equal to the next's start) do not overlap and
 * are accepted.
 */
static int ranges_ok(uint64_t ack, const struct mpt_sack_range *r, unsigned n)
{
    uint64_t prev_end = 0; /* as a distance above ack */
    const uint64_t half = UINT64_C(1) << 63;

    for (unsigned i = 0; i < n; i++) {
        uint64_t s = r[i].start - ack, e = r[i].end - ack;

        if (i == 0 ? s == 0 : s < prev_end)
            return 0;
        if (e <= s || e >= half)
            return 0;
        prev_end = e;
    }
    return 1;
}

ssize_t mpt_frame_decode(const uint8_t *buf, size_t len, size_t max_body, struct mpt_frame *f)
{
    const uint8_t *b;
    uint8_t type, flags;
    size_t blen;

    if (!f || (!buf && len))
        return MPT_EINVAL;
    if (len < MPT_FRAME_HDR_LEN)
        return MPT_EINCOMPLETE;
    type = buf[0];
    flags = buf[1];
    blen = mpt_get16(buf + 2);
    /* Decided from the header alone so a peer cannot make us buffer a body
     * we would refuse anyway. */
    if (blen > max_body)
        return MPT_EFRAME_TOOBIG;
    if (shapes[type].known && !body_len_ok(type, blen))
        return MPT_EFRAME_LEN;
    if (len - MPT_FRAME_HDR_LEN < blen)
        return MPT_EINCOMPLETE;

    memset(f, 0, sizeof *f);
    f->type = type;
    if (!shapes[type].known)
        return type & MPT_FT_IGNORABLE ? (ssize_t)(MPT_FRAME_HDR_LEN + blen) : MPT_EFRAME_TYPE;
    if (flags & ~shapes[type].flags)
        return MPT_EFRAME_RESERVED;
    f->flags = flags;
    b = buf + MPT_FRAME_HDR_LEN;

    switch (type) {
    case MPT_FT_HELLO:
        f->u.hello.version_min = b[0];
        f->u.hello.version_max = b[1];
        f->u.hello.features = mpt_get16(b + 2);
        memcpy(f->u.hello.key, b + 4, MPT_KEY_LEN);
        f->u.hello.window = mpt_get32(b + 36);
        break;
    case MPT_FT_HELLO_ACK:
        if (b[1] != 0)
            return MPT_EFRAME_RESERVED;
        f->u.hello_ack.version = b[0];
        f->u.hello_ack.features = mpt_get16(b + 2);
        memcpy(f->u.hello_ack.key, b + 4, MPT_KEY_LEN);
        memcpy(f->u.hello_ack.routing_id, b + 36, MPT_ROUTING_ID_LEN);
        f->u.hello_ack.window = mpt_get32(b + 44);
        break;
    case MPT_FT_JOIN:
        if (b[25] != 0)
            return MPT_EFRAME_RESERVED;
        f->u.join.token = mpt_get64(b);
        memcpy(f->u.join.nonce, b + 8, MPT_NONCE_LEN);
        f->u.join.addr_id = b[24];
        break;
    case MPT_FT_JOIN_ACK:
        memcpy(f->u.join_ack.nonce, b, MPT_NONCE_LEN);
        memcpy(f->u.join_ack.hmac, b + MPT_NONCE_LEN, MPT_HMAC_LEN);
        break;
    case MPT_FT_JOIN_CONFIRM:
        memcpy(f->u.join_confirm.hmac, b, MPT_HMAC_LEN);
        break;
    case MPT_FT_DATA:
        if (blen == 8)
            return MPT_EFRAME_VALUE;
        f->u.data.dsn = mpt_get64(b);
        f->u.data.payload = b + 8;
        f->u.data.len = blen - 8;
        break;
    case MPT_FT_DATA_ACK: {
        unsigned n = (unsigned)((blen - ACK_FIXED) / ACK_RANGE);

        f->u.data_ack.ack = mpt_get64(b);
        f->u.data_ack.window = mpt_get32(b + 8);
        f->u.data_ack.nranges = (uint8_t)n;
        for (unsigned i = 0; i < n; i++) {
            const uint8_t *p = b + ACK_FIXED + ACK_RANGE * i;

            f->u.data_ack.ranges[i].start = mpt_get64(p);
            f->u.data_ack.ranges[i].end = mpt_get64(p + 8);
        }
        if (!ranges_ok(f->u.data_ack.ack, f->u.data_ack.ranges, n))
            return MPT_EFRAME_VALUE;
        break;
    }
    case MPT_FT_DATA_FIN:
        f->u.data_fin.dsn = mpt_get64(b);
        break;
    case MPT_FT_ADD_ADDR: {
        uint8_t family = b[1];

        if (family != 4 && family != 6)
            return MPT_EFRAME_VALUE;
        if (blen != (family == 4 ? ADDR_V4_BODY : ADDR_V6_BODY))
            return MPT_EFRAME_LEN;
        size_t alen = family == 4 ? 4 : 16;
        f->u.add_addr.addr_id = b[0];
        f->u.add_addr.family = family;
        f->u.add_addr.port = mpt_get16(b + 2);
        memcpy(f->u.add_addr.addr, b + 4, alen);
        memcpy(f->u.add_addr.hmac, b + 4 + alen, MPT_ADDR_HMAC_LEN);
        break;
    }
    case MPT_FT_REMOVE_ADDR:
        f->u.remove_addr.n = (uint8_t)blen;
        memcpy(f->u.remove_addr.ids, b, blen);
        break;
    case MPT_FT_PING:
    case MPT_FT_PONG:
        f->u.ping.opaque = mpt_get64(b);
        break;
    case MPT_FT_PRIO:
    case MPT_FT_CLOSE:
        break;
    case MPT_FT_FASTCLOSE:
        f->u.close.reason = mpt_get32(b);
        f->u.close.text = b + 4;
        f->u.close.text_len = blen - 4;
        break;
    case MPT_FT_SUBFLOW_CLOSE:
        f->u.close.reason = mpt_get32(b);
        break;
    case MPT_FT_ERROR:
        f->u.close.reason = mpt_get32(b);
        f->u.close.frame_type = b[4];
        f->u.close.text = b + 5;
        f->u.close.text_len = blen - 5;
        break;
    case MPT_FT_SUBFLOW_FAILED:
        f->u.sf_failed.reason = mpt_get32(b);
        memcpy(f->u.sf_failed.nonce, b + 4, MPT_NONCE_LEN);
        break;
    }
    return (ssize_t)(MPT_FRAME_HDR_LEN + blen);
}

/* Body length f would encode to, after checking f against every rule the
 * decoder applies. */
static ssize_t body_len(const struct mpt_frame *f)
{
    const struct shape *s;
    size_t blen;

    if (!f)
        return MPT_EINVAL;
    s = &shapes[f->type];
    if (!s->known)
        return MPT_EFRAME_TYPE;
    if (f->flags & ~s->flags)
        return MPT_EFRAME_RESERVED;

    switch (f->type) {
    case MPT_FT_DATA:
        if (f->u.data.len == 0)
            return MPT_EFRAME_VALUE;
        if (f->u.data.len > MPT_FRAME_MAX_DATA)
            return MPT_EFRAME_TOOBIG;
        if (!f->u.data.payload)
            return MPT_EINVAL;
        blen = 8 + f->u.data.len;
        break;
    case MPT_FT_DATA_ACK:
        if (f->u.data_ack.nranges > MPT_FRAME_MAX_SACK)
            return MPT_EFRAME_LEN;
        if (!ranges_ok(f->u.data_ack.ack, f->u.data_ack.ranges, f->u.data_ack.nranges))
            return MPT_EFRAME_VALUE;
        blen = ACK_FIXED + ACK_RANGE * f->u.data_ack.nranges;
        break;
    case MPT_FT_ADD_ADDR:
        if (f->u.add_addr.family != 4 && f->u.add_addr.family != 6)
            return MPT_EFRAME_VALUE;
        blen = f->u.add_addr.family == 4 ? ADDR_V4_BODY : ADDR_V6_BODY;
        break;
    case MPT_FT_REMOVE_ADDR:
        if (f->u.remove_addr.n < 1 || f->u.remove_addr.n > MPT_FRAME_MAX_REMOVE)
            return MPT_EFRAME_LEN;
        blen = f->u.remove_addr.n;
        break;
    case MPT_FT_FASTCLOSE:
    case MPT_FT_ERROR:
        if (f->u.close.text_len > MPT_FRAME_MAX_TEXT)
            return MPT_EFRAME_LEN;
        if (f->u.close.text_len && !f->u.close.text)
            return MPT_EINVAL;
        blen = (f->type == MPT_FT_ERROR ? 5 : 4) + f->u.close.text_len;
        break;
    default:
        /* Every other known type has a fixed body. */
        blen = s->min;
        break;
    }
    return (ssize_t)blen;
}

ssize_t mpt_frame_encoded_len(const struct mpt_frame *f)
{
    ssize_t blen = body_len(f);

    return blen < 0 ? blen : MPT_FRAME_HDR_LEN + blen;
}

ssize_t mpt_frame_encode(const struct mpt_frame *f, uint8_t *out, size_t cap)
{
    ssize_t blen = body_len(f);
    uint8_t *b;

    if (blen < 0)
        return blen;
    if (cap < MPT_FRAME_HDR_LEN + (size_t)blen)
        return MPT_ENOBUFS;
    if (!out)
        return MPT_EINVAL;
    out[0] = f->type;
    out[1] = f->flags;
    b = mpt_put16(out + 2, (uint16_t)blen);

    switch (f->type) {
    case MPT_FT_HELLO:
        b[0] = f->u.hello.version_min;
        b[1] = f->u.hello.version_max;
        mpt_put16(b + 2, f->u.hello.features);
        memcpy(b + 4, f->u.hello.key, MPT_KEY_LEN);
        mpt_put32(b + 36, f->u.hello.window);
        break;
    case MPT_FT_HELLO_ACK:
        b[0] = f->u.hello_ack.version;
        b[1] = 0;
        mpt_put16(b + 2, f->u.hello_ack.features);
        memcpy(b + 4, f->u.hello_ack.key, MPT_KEY_LEN);
        memcpy(b + 36, f->u.hello_ack.routing_id, MPT_ROUTING_ID_LEN);
        mpt_put32(b + 44, f->u.hello_ack.window);
        break;
    case MPT_FT_JOIN:
        mpt_put64(b, f->u.join.token);
        memcpy(b + 8, f->u.join.nonce, MPT_NONCE_LEN);
        b[24] = f->u.join.addr_id;
        b[25] = 0;
        break;
    case MPT_FT_JOIN_ACK:
        memcpy(b, f->u.join_ack.nonce, MPT_NONCE_LEN);
        memcpy(b + MPT_NONCE_LEN, f->u.join_ack.hmac, MPT_HMAC_LEN);
        break;
    case MPT_FT_JOIN_CONFIRM:
        memcpy(b, f->u.join_confirm.hmac, MPT_HMAC_LEN);
        break;
    case MPT_FT_DATA:
        mpt_put64(b, f->u.data.dsn);
        /* memmove: a caller may encode in place over the payload it decoded. */
        memmove(b + 8, f->u.data.payload, f->u.data.len);
        break;
    case MPT_FT_DATA_ACK:
        b = mpt_put64(b, f->u.data_ack.ack);
        b = mpt_put32(b, f->u.data_ack.window);
        for (unsigned i = 0; i < f->u.data_ack.nranges; i++) {
            b = mpt_put64(b, f->u.data_ack.ranges[i].start);
            b = mpt_put64(b, f->u.data_ack.ranges[i].end);
        }
        break;
    case MPT_FT_DATA_FIN:
        mpt_put64(b, f->u.data_fin.dsn);
        break;
    case MPT_FT_ADD_ADDR: {
        size_t alen = f->u.add_addr.family == 4 ? 4 : 16;

        b[0] = f->u.add_addr.addr_id;
        b[1] = f->u.add_addr.family;
        mpt_put16(b + 2, f->u.add_addr.port);
        memcpy(b + 4, f->u.add_addr.addr, alen);
        memcpy(b + 4 + alen, f->u.add_addr.hmac, MPT_ADDR_HMAC_LEN);
        break;
    }
    case MPT_FT_REMOVE_ADDR:
        memcpy(b, f->u.remove_addr.ids, f->u.remove_addr.n);
        break;
    case MPT_FT_PING:
    case MPT_FT_PONG:
        mpt_put64(b, f->u.ping.opaque);
        break;
    case MPT_FT_PRIO:
    case MPT_FT_CLOSE:
        break;
    case MPT_FT_FASTCLOSE:
        mpt_put32(b, f->u.close.reason);
        if (f->u.close.text_len)
            memmove(b + 4, f->u.close.text, f->u.close.text_len);
        break;
    case MPT_FT_SUBFLOW_CLOSE:
        mpt_put32(b, f->u.close.reason);
        break;
    case MPT_FT_ERROR:
        mpt_put32(b, f->u.close.reason);
        b[4] = f->u.close.frame_type;
        if (f->u.close.text_len)
            memmove(b + 5, f->u.close.text, f->u.close.text_len);
        break;
    case MPT_FT_SUBFLOW_FAILED:
        mpt_put32(b, f->u.sf_failed.reason);
        memcpy(b + 4, f->u.sf_failed.nonce, MPT_NONCE_LEN);
        break;
    }
    return MPT_FRAME_HDR_LEN + blen;
}

ssize_t mpt_frame_data_header(uint64_t dsn, size_t len, uint8_t out[MPT_DATA_HDR_LEN])
{
    if (!out || len < 1 || len > MPT_FRAME_MAX_DATA)
        return MPT_EINVAL;
    out[0] = MPT_FT_DATA;
    out[1] = 0;
    mpt_put16(out + 2, (uint16_t)(8 + len));
    mpt_put64(out + 4, dsn);
    return MPT_DATA_HDR_LEN;
}

const char *mpt_frame_type_name(uint8_t type)
{
    switch ((enum mpt_frame_type)type) {
    case MPT_FT_HELLO: return "HELLO";
    case MPT_FT_HELLO_ACK: return "HELLO_ACK";
    case MPT_FT_JOIN: return "JOIN";
    case MPT_FT_JOIN_ACK: return "JOIN_ACK";
    case MPT_FT_JOIN_CONFIRM: return "JOIN_CONFIRM";
    case MPT_FT_DATA: return "DATA";
    case MPT_FT_DATA_ACK: return "DATA_ACK";
    case MPT_FT_DATA_FIN: return "DATA_FIN";
    case MPT_FT_ADD_ADDR: return "ADD_ADDR";
    case MPT_FT_REMOVE_ADDR: return "REMOVE_ADDR";
    case MPT_FT_PRIO: return "PRIO";
    case MPT_FT_PING: return "PING";
    case MPT_FT_PONG: return "PONG";
    case MPT_FT_CLOSE: return "CLOSE";
    case MPT_FT_FASTCLOSE: return "FASTCLOSE";
    case MPT_FT_SUBFLOW_CLOSE: return "SUBFLOW_CLOSE";
    case MPT_FT_ERROR: return "ERROR";
    case MPT_FT_SUBFLOW_FAILED: return "SUBFLOW_FAILED";
    }
    return "UNKNOWN";
}

ssize_t mpt_preamble_decode(const uint8_t *buf, size_t len, struct mpt_preamble *p)
{
    size_t need;

    if (!p || (!buf && len))
        return MPT_EINVAL;
    /* The magic is checked on whatever prefix has arrived, so a client that
     * does not speak the protocol is refused at its first byte instead of
     * after we have waited for eight. */
    if (len && memcmp(buf, MPT_PREAMBLE_MAGIC, len < 4 ? len : 4) != 0)
        return MPT_EPREAMBLE;
    if (len < MPT_PREAMBLE_NEW_LEN)
        return MPT_EINCOMPLETE;
    if (buf[5] != MPT_PRE_NEW && buf[5] != MPT_PRE_JOIN)
        return MPT_EPREAMBLE;
    if ((buf[6] & ~MPT_PREF_TLS) || buf[7] != 0)
        return MPT_EFRAME_RESERVED;
    need = buf[5] == MPT_PRE_JOIN ? MPT_PREAMBLE_JOIN_LEN : MPT_PREAMBLE_NEW_LEN;
    if (len < need)
        return MPT_EINCOMPLETE;
    memset(p, 0, sizeof *p);
    p->version = buf[4];
    p->kind = buf[5];
    p->flags = buf[6];
    if (p->kind == MPT_PRE_JOIN)
        memcpy(p->routing_id, buf + 8, MPT_ROUTING_ID_LEN);
    return (ssize_t)need;
}

ssize_t mpt_preamble_encode(const struct mpt_preamble *p, uint8_t *out, size_t cap)
{
    size_t need;

    if (!p || (p->kind != MPT_PRE_NEW && p->kind != MPT_PRE_JOIN) || (p->flags & ~MPT_PREF_TLS))
        return MPT_EINVAL;
    need = p->kind == MPT_PRE_JOIN ? MPT_PREAMBLE_JOIN_LEN : MPT_PREAMBLE_NEW_LEN;
    if (cap < need)
        return MPT_ENOBUFS;
    if (!out)
        return MPT_EINVAL;
    memcpy(out, MPT_PREAMBLE_MAGIC, 4);
    out[4] = p->version;
    out[5] = p->kind;
    out[6] = p->flags;
    out[7] = 0;
    if (p->kind == MPT_PRE_JOIN)
        memcpy(out + 8, p->routing_id, MPT_ROUTING_ID_LEN);
    return (ssize_t)need;
}
