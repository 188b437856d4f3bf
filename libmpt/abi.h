/*
 * The public structs as libmpt 0.1.0 laid them out, and the rules that keep
 * the current ones compatible (doc/abi.md): what the sized entry points
 * compare their callers' sizes with.
 */
#ifndef MPT_ABI_H
#define MPT_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <mpt/mpt.h>

#include "core/conn.h" /* enum mpt_prio */

/* struct mpt_callbacks as libmpt 0.1.0 had it: what the unsized entry
 * points (mpt_connect, mpt_accept, mpt_set_callbacks) receive. */
#define MPT_CALLBACKS_SIZE_0_1 (7 * sizeof(void (*)(void)))
_Static_assert(sizeof(struct mpt_callbacks) >= MPT_CALLBACKS_SIZE_0_1,
               "struct mpt_callbacks only grows");

/*
 * struct mpt_subflow_info as libmpt 0.1.0 laid it out: binaries built then
 * call the mpt_get_subflows symbol with arrays of these (doc/abi.md). The
 * current struct must begin with exactly this layout.
 */
struct mpt_subflow_info_0_1 {
    int id;
    int path_id;
    enum mpt_subflow_state state;
    struct sockaddr_storage local;
    struct sockaddr_storage remote;
    char ifname[16];
    int backup;
    uint64_t rtt_us;
    uint64_t rttvar_us;
    uint32_t cwnd_bytes;
    uint32_t total_retrans;
    uint64_t bytes_sent;
    uint64_t bytes_acked;
    int fail_error;
    uint32_t fail_reason;
};
#define MPT_SUBFLOW_INFO_SIZE_0_1 sizeof(struct mpt_subflow_info_0_1)
#define MPT_SAME_FIELD_(f)                                                                   \
    _Static_assert(offsetof(struct mpt_subflow_info, f) ==                                   \
                       offsetof(struct mpt_subflow_info_0_1, f),                             \
                   "struct mpt_subflow_info: 0.1.0 field " #f " moved")
MPT_SAME_FIELD_(id);
MPT_SAME_FIELD_(path_id);
MPT_SAME_FIELD_(state);
MPT_SAME_FIELD_(local);
MPT_SAME_FIELD_(remote);
MPT_SAME_FIELD_(ifname);
MPT_SAME_FIELD_(backup);
MPT_SAME_FIELD_(rtt_us);
MPT_SAME_FIELD_(rttvar_us);
MPT_SAME_FIELD_(cwnd_bytes);
MPT_SAME_FIELD_(total_retrans);
MPT_SAME_FIELD_(bytes_sent);
MPT_SAME_FIELD_(bytes_acked);
MPT_SAME_FIELD_(fail_error);
MPT_SAME_FIELD_(fail_reason);
#undef MPT_SAME_FIELD_
_Static_assert(sizeof(struct mpt_subflow_info) >= MPT_SUBFLOW_INFO_SIZE_0_1,
               "struct mpt_subflow_info only grows");

/*
 * struct mpt_config as libmpt 0.1.0 laid it out (its sizeof, padding
 * included, is the smallest size mpt_ctx_new accepts). Every field added
 * later starts at or beyond the sizeof of the layout before it.
 */
struct mpt_config_0_1 {
    size_t size;
    uint32_t max_subflows;
    size_t sndbuf;
    size_t rcvbuf;
    uint32_t connect_timeout_ms, handshake_timeout_ms, close_timeout_ms, user_timeout_ms;
    uint32_t subflow_timeout_ms, ping_interval_ms, notsent_lowat, write_budget;
    uint32_t reconnect_min_ms, reconnect_max_ms, subflows_per_path, listen_backlog;
    uint32_t max_connections;
    const char *scheduler, *congestion, *tcp_congestion;
    int fullmesh, include_loopback, advertise_addresses;
};
#define MPT_CONFIG_SIZE_0_1 sizeof(struct mpt_config_0_1)
#define MPT_SAME_FIELD_(f)                                                                   \
    _Static_assert(offsetof(struct mpt_config, f) == offsetof(struct mpt_config_0_1, f),     \
                   "struct mpt_config: 0.1.0 field " #f " moved")
MPT_SAME_FIELD_(max_subflows);
MPT_SAME_FIELD_(sndbuf);
MPT_SAME_FIELD_(rcvbuf);
MPT_SAME_FIELD_(connect_timeout_ms);
MPT_SAME_FIELD_(max_connections);
MPT_SAME_FIELD_(scheduler);
MPT_SAME_FIELD_(tcp_congestion);
MPT_SAME_FIELD_(fullmesh);
MPT_SAME_FIELD_(advertise_addresses);
#undef MPT_SAME_FIELD_
_Static_assert(offsetof(struct mpt_config, ack_timeout_ms) >= MPT_CONFIG_SIZE_0_1,
               "struct mpt_config: fields added after 0.1.0 start beyond its padding");
/* The unreleased layouts that ended with ack_timeout_ms and with
 * server_id, which programs built in between may pass (the Python binding's
 * hand copy, for one). Each new field starts beyond the sizeof of the
 * layout before it (its tail padding included). */
#define MPT_CONFIG_SIZE_ACK offsetof(struct mpt_config, server_id)
#define MPT_CONFIG_SIZE_SRVID offsetof(struct mpt_config, tls)
_Static_assert(offsetof(struct mpt_config, server_id) >= offsetof(struct mpt_config, ack_timeout_ms) + 4,
               "struct mpt_config: server_id starts beyond ack_timeout_ms");
_Static_assert(offsetof(struct mpt_config, tls) % sizeof(void *) == 0 &&
                   offsetof(struct mpt_config, tls) >= offsetof(struct mpt_config, server_id) + 4,
               "struct mpt_config: tls starts beyond the server_id layout's padding");
#define MPT_CONFIG_SIZE_TLS offsetof(struct mpt_config, max_pending_handshakes)
_Static_assert(offsetof(struct mpt_config, max_pending_handshakes) ==
                   offsetof(struct mpt_config, tls) + sizeof(void *),
               "struct mpt_config: the limits start right after tls");
#define MPT_CONFIG_SIZE_LIMITS offsetof(struct mpt_config, service_mode)
_Static_assert(offsetof(struct mpt_config, service_mode) >=
                   offsetof(struct mpt_config, max_conns_per_addr) + 4,
               "struct mpt_config: service_mode starts beyond the limits");
#define MPT_CONFIG_SIZE_MODE offsetof(struct mpt_config, rcvbuf_initial)
_Static_assert(offsetof(struct mpt_config, rcvbuf_initial) >=
                   offsetof(struct mpt_config, service_mode) + 4,
               "struct mpt_config: rcvbuf_initial starts beyond service_mode");
/* A struct from a newer program may be at most this much larger. */
#define MPT_CONFIG_MAX_TAIL 4096u

/* The public tiers are the engine's (core/conn.h), value for value. */
_Static_assert((int)MPT_PRIORITY_PRIMARY == MPT_PRIO_PRIMARY, "tier values");
_Static_assert((int)MPT_PRIORITY_BACKUP == MPT_PRIO_BACKUP, "tier values");
_Static_assert((int)MPT_PRIORITY_SECONDARY == MPT_PRIO_SECONDARY, "tier values");
_Static_assert((int)MPT_PRIORITY_NEVER == MPT_PRIO_NEVER, "tier values");

#endif
