/*
 * libmpt wire format: the subflow preamble and the frames that follow it.
 * doc/protocol.md is the normative description; this header mirrors it.
 *
 * Every integer is in network byte order. Every frame starts with the same
 * 4-byte header
 *
 *    0        1        2        3
 *   +--------+--------+--------+--------+
 *   |  type  | flags  |   body length   |   then `body length` bytes
 *   +--------+--------+--------+--------+
 *
 * so a receiver can always find the next frame. A type with the high bit set
 * (0x80..0xFF) is "ignorable": an unknown ignorable frame is skipped; an
 * unknown frame without that bit is a protocol error (MPT_EFRAME_TYPE).
 * Flags not defined for a type must be zero (MPT_EFRAME_RESERVED).
 *
 * Bodies (after the 4-byte header):
 *   HELLO        u8 version_min, u8 version_max, u16 features, u8 key[32],
 *                u32 window                                        (40 bytes)
 *   HELLO_ACK    u8 version, u8 reserved(0), u16 features, u8 key[32],
 *                u8 routing_id[8], u32 window                      (48 bytes)
 *   JOIN         u64 token, u8 nonce[16], u8 addr_id, u8 reserved(0)
 *                flags: BACKUP                                     (26 bytes)
 *   JOIN_ACK     u8 nonce[16], u8 hmac[32]                         (48 bytes)
 *   JOIN_CONFIRM u8 hmac[32]                                       (32 bytes)
 *   DATA         u64 dsn, payload (1..MPT_FRAME_MAX_DATA bytes)  (9..65535)
 *   DATA_ACK     u64 ack, u32 window, then 0..4 ranges of u64 start, u64 end
 *                (12 + 16*n bytes; each range: start < end, ascending,
 *                non-overlapping, all above ack)
 *   DATA_FIN     u64 dsn (the DSN one past the sender's last byte)  (8 bytes)
 *   ADD_ADDR     u8 addr_id, u8 family (4 or 6), u16 port, addr (4 or 16
 *                bytes), u8 hmac[8]                           (16 or 28 bytes)
 *                flags: ECHO
 *   REMOVE_ADDR  u8 addr_id[n], 1 <= n <= MPT_FRAME_MAX_REMOVE   (n bytes)
 *   PRIO         empty; flags: BACKUP (applies to the subflow it arrives on)
 *   PING         u64 opaque                                          (8 bytes)
 *   PONG         u64 opaque (copied from the PING)                   (8 bytes)
 *   CLOSE        empty
 *   FASTCLOSE    u32 reason, text[0..MPT_FRAME_MAX_TEXT]     (4..259 bytes)
 *   SUBFLOW_CLOSE u32 reason                                         (4 bytes)
 *   ERROR        u32 code, u8 frame_type, text[0..MPT_FRAME_MAX_TEXT]
 *                                                            (5..260 bytes)
 *   SUBFLOW_FAILED (ignorable) u32 reason, u8 client_nonce[16] of the
 *                failed subflow's JOIN (all zero: the first subflow) (20 bytes)
 */
#ifndef MPT_CORE_FRAME_H
#define MPT_CORE_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MPT_PROTO_VERSION 1

#define MPT_FRAME_HDR_LEN 4
#define MPT_FRAME_MAX_BODY 65535u
#define MPT_FRAME_MAX_DATA (MPT_FRAME_MAX_BODY - 8u) /* payload after the DSN */
#define MPT_FRAME_MAX_SACK 4
#define MPT_FRAME_MAX_REMOVE 32
#define MPT_FRAME_MAX_TEXT 255
#define MPT_KEY_LEN 32
#define MPT_SECRET_LEN 32 /* a TLS exporter output keying HMACs (6.5) */
#define MPT_NONCE_LEN 16
#define MPT_HMAC_LEN 32
#define MPT_ADDR_HMAC_LEN 8
#define MPT_ROUTING_ID_LEN 8
/* Largest encoding of any frame other than DATA: an upper bound callers can
 * size stack buffers with. */
#define MPT_FRAME_MAX_CONTROL (MPT_FRAME_HDR_LEN + 260)

/* Frame types. 0x80 and above are ignorable when unknown. */
enum mpt_frame_type {
    MPT_FT_HELLO = 0x01,
    MPT_FT_HELLO_ACK = 0x02,
    MPT_FT_JOIN = 0x03,
    MPT_FT_JOIN_ACK = 0x04,
    MPT_FT_JOIN_CONFIRM = 0x05,
    MPT_FT_DATA = 0x10,
    MPT_FT_DATA_ACK = 0x11,
    MPT_FT_DATA_FIN = 0x12,
    MPT_FT_ADD_ADDR = 0x20,
    MPT_FT_REMOVE_ADDR = 0x21,
    MPT_FT_PRIO = 0x22,
    MPT_FT_PING = 0x30,
    MPT_FT_PONG = 0x31,
    MPT_FT_CLOSE = 0x40,
    MPT_FT_FASTCLOSE = 0x41,
    MPT_FT_SUBFLOW_CLOSE = 0x42,
    MPT_FT_ERROR = 0x43,
    MPT_FT_SUBFLOW_FAILED = 0xC2, /* ignorable: an old peer skips it */
};
#define MPT_FT_IGNORABLE 0x80

/* Flags, per type. */
#define MPT_FF_JOIN_BACKUP 0x01
#define MPT_FF_ADD_ADDR_ECHO 0x01
#define MPT_FF_PRIO_BACKUP 0x01
#define MPT_FF_PRIO_SECONDARY 0x02 /* with TIERS in force (protocol 4.3, 5.11) */
#define MPT_FF_PRIO_NEVER 0x04     /* with TIERS, always together with BACKUP */

/* HELLO/HELLO_ACK feature bits; unknown bits are ignored by the receiver and
 * the answer carries only the bits both sides understand. */
#define MPT_FEAT_SACK 0x0001u   /* DATA_ACK may carry ranges */
#define MPT_FEAT_TLS 0x0002u    /* informational: subflows run TLS after the preamble */
#define MPT_FEAT_TIERS 0x0004u  /* PRIO may carry SECONDARY and NEVER */

/* Reason codes carried by FASTCLOSE, SUBFLOW_CLOSE and ERROR. */
enum mpt_reason {
    MPT_REASON_NONE = 0,
    MPT_REASON_PROTOCOL = 1,     /* peer violated the protocol */
    MPT_REASON_AUTH = 2,         /* join authentication failed */
    MPT_REASON_TOO_MANY = 3,     /* subflow limit */
    MPT_REASON_RESOURCE = 4,     /* memory or other local limit */
    MPT_REASON_TIMEOUT = 5,      /* liveness or handshake timeout */
    MPT_REASON_APP_ABORT = 6,    /* the application aborted */
    MPT_REASON_ADMIN = 7,        /* administrative shutdown */
    MPT_REASON_PATH_REMOVED = 8, /* the local path went away */
    MPT_REASON_UNKNOWN_TOKEN = 9,
    MPT_REASON_VERSION = 10,
    MPT_REASON_REPLAY = 11,
    MPT_REASON_FLOW = 12,        /* flow-control violation */
};

struct mpt_sack_range {
    uint64_t start; /* first DSN held */
    uint64_t end;   /* one past the last DSN held */
};

/*
 * A decoded frame. Pointer fields point INTO the buffer given to
 * mpt_frame_decode() and are valid only as long as that buffer is: DATA is
 * never copied. For encoding, the same struct is filled by the caller and the
 * pointers are only read.
 */
struct mpt_frame {
    uint8_t type;
    uint8_t flags;
    union {
        struct {
            uint8_t version_min, version_max;
            uint16_t features;
            uint8_t key[MPT_KEY_LEN];
            uint32_t window;
        } hello;
        struct {
            uint8_t version;
            uint16_t features;
            uint8_t key[MPT_KEY_LEN];
            uint8_t routing_id[MPT_ROUTING_ID_LEN];
            uint32_t window;
        } hello_ack;
        struct {
            uint64_t token;
            uint8_t nonce[MPT_NONCE_LEN];
            uint8_t addr_id;
        } join;
        struct {
            uint8_t nonce[MPT_NONCE_LEN];
            uint8_t hmac[MPT_HMAC_LEN];
        } join_ack;
        struct {
            uint8_t hmac[MPT_HMAC_LEN];
        } join_confirm;
        struct {
            uint64_t dsn;
            const uint8_t *payload; /* borrowed */
            size_t len;
        } data;
        struct {
            uint64_t ack;
            uint32_t window;
            uint8_t nranges;
            struct mpt_sack_range ranges[MPT_FRAME_MAX_SACK];
        } data_ack;
        struct {
            uint64_t dsn;
        } data_fin;
        struct {
            uint8_t addr_id;
            uint8_t family; /* 4 or 6 */
            uint16_t port;
            uint8_t addr[16]; /* first 4 bytes used for IPv4 */
            uint8_t hmac[MPT_ADDR_HMAC_LEN];
        } add_addr;
        struct {
            uint8_t n;
            uint8_t ids[MPT_FRAME_MAX_REMOVE];
        } remove_addr;
        struct {
            uint64_t opaque;
        } ping; /* also PONG */
        struct {
            uint32_t reason;  /* FASTCLOSE, SUBFLOW_CLOSE, ERROR: code */
            uint8_t frame_type; /* ERROR only: the offending type, 0 if none */
            const uint8_t *text; /* borrowed, not NUL-terminated; FASTCLOSE and ERROR */
            size_t text_len;
        } close;
        struct {
            uint32_t reason;
            uint8_t nonce[MPT_NONCE_LEN]; /* the client's JOIN nonce; zero: first subflow */
        } sf_failed;
    } u;
};

/*
 * Decode one frame from buf[0..len).
 * Returns the number of bytes consumed (> 0) and fills *f, or:
 *   MPT_EINCOMPLETE     buf holds only part of a frame (never for a complete
 *                       but invalid one); call again with more bytes
 *   MPT_EFRAME_TOOBIG   the length exceeds max_body (a local limit, at most
 *                       MPT_FRAME_MAX_BODY) - reported from the header alone
 *   MPT_EFRAME_LEN      the length does not fit the type
 *   MPT_EFRAME_RESERVED undefined flag bits or reserved fields are set
 *   MPT_EFRAME_TYPE     unknown type without the ignorable bit
 *   MPT_EFRAME_VALUE    a field is out of range (family, empty DATA, ranges)
 * An unknown ignorable frame decodes successfully with f->type set to its
 * type and nothing else filled in; the caller skips it.
 * Never reads outside buf[0..len).
 */
ssize_t mpt_frame_decode(const uint8_t *buf, size_t len, size_t max_body,
                         struct mpt_frame *f);

/* Bytes mpt_frame_encode() will write for f, or a negative MPT_E* code if
 * f is not encodable (unknown type, oversize payload, bad field). */
ssize_t mpt_frame_encoded_len(const struct mpt_frame *f);

/*
 * Encode f into out[0..cap). Returns bytes written, MPT_ENOBUFS if cap is too
 * small (nothing useful written), or MPT_EINVAL / MPT_EFRAME_* if f itself is
 * invalid. For DATA the payload is copied; callers that want to avoid the copy
 * use mpt_frame_data_header() and send the payload from their own buffer.
 */
ssize_t mpt_frame_encode(const struct mpt_frame *f, uint8_t *out, size_t cap);

/* Writes the 12-byte header of a DATA frame (frame header + DSN) for a payload
 * of len bytes, 1 <= len <= MPT_FRAME_MAX_DATA. Returns 12 or MPT_EINVAL. */
#define MPT_DATA_HDR_LEN (MPT_FRAME_HDR_LEN + 8)
ssize_t mpt_frame_data_header(uint64_t dsn, size_t len, uint8_t out[MPT_DATA_HDR_LEN]);

/* Name of a frame type for traces ("DATA_ACK"), or "UNKNOWN". Static string. */
const char *mpt_frame_type_name(uint8_t type);

/*
 * The subflow preamble: the first bytes on every subflow, in clear text even
 * when TLS follows, so a layer-4 load balancer can route joins.
 *
 *    0     1     2     3     4        5      6       7
 *   +-----+-----+-----+-----+--------+------+-------+----------+
 *   | 'M' | 'P' | 'T' | 'L' | version| kind | flags | reserved |  (8 bytes)
 *   +-----+-----+-----+-----+--------+------+-------+----------+
 *   | routing_id (8 bytes, JOIN only)                          |
 *   +----------------------------------------------------------+
 * kind: 0 = NEW connection, 1 = JOIN. flags: bit 0 = TLS follows.
 */
#define MPT_PREAMBLE_MAGIC "MPTL"
#define MPT_PREAMBLE_NEW_LEN 8
#define MPT_PREAMBLE_JOIN_LEN 16
#define MPT_PREAMBLE_MAX_LEN 16
enum mpt_preamble_kind { MPT_PRE_NEW = 0, MPT_PRE_JOIN = 1 };
#define MPT_PREF_TLS 0x01

struct mpt_preamble {
    uint8_t version;
    uint8_t kind;
    uint8_t flags;
    uint8_t routing_id[MPT_ROUTING_ID_LEN]; /* JOIN only */
};

/* Returns bytes consumed (8 or 16), MPT_EINCOMPLETE, MPT_EPREAMBLE (bad magic
 * or kind), MPT_EFRAME_RESERVED (reserved flag bits or byte). The version is
 * returned as is; the caller decides whether it speaks it. */
ssize_t mpt_preamble_decode(const uint8_t *buf, size_t len, struct mpt_preamble *p);
/* Returns bytes written (8 or 16), MPT_ENOBUFS or MPT_EINVAL. */
ssize_t mpt_preamble_encode(const struct mpt_preamble *p, uint8_t *out, size_t cap);

#endif
