/*
 * TLS under the subflows (transport_tls.c): a context's TLS configuration,
 * loaded once from struct mpt_tls_config, and the per-subflow transports
 * made from it. Only the I/O layer sees mbedTLS's SSL layer; the engine gets
 * the exported secrets (core/conn.h: mpt_conn_set_secret and the bindings).
 */
#ifndef MPT_TLS_H
#define MPT_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <mpt/mpt.h>

#include "transport.h"

struct mpt_tls;

/* Exporter labels (doc/protocol.md, "Keys with TLS"). */
#define MPT_TLS_LABEL_CONN "EXPORTER-MPTL-connection"
#define MPT_TLS_LABEL_JOIN "EXPORTER-MPTL-join"
#define MPT_TLS_SECRET_LEN 32

/* Loads cfg (files read now, strings copied). 0, MPT_ENOMEM, MPT_EINVAL (a
 * missing or contradictory setting) or MPT_ETLS (a file that mbedTLS could
 * not load); why (may be NULL) then says which file and mbedTLS's reason. */
int mpt_tls_new(const struct mpt_tls_config *cfg, struct mpt_tls **out, char *why, size_t wlen);
void mpt_tls_free(struct mpt_tls *t);
/* 1 if this configuration can serve (a certificate and key, or a PSK). */
int mpt_tls_can_serve(const struct mpt_tls *t);

/*
 * A client transport on connected fd: writes `clear` (the preamble, in
 * clear) first, then runs the TLS handshake, verifying the server as
 * `name` (the configured server_name wins) and resuming `session` if not
 * NULL (mpt_tp_tls_save_session). NULL without memory.
 */
struct mpt_tp *mpt_tp_tls_client(struct mpt_tls *t, int fd, const char *name,
                                 const uint8_t *clear, size_t clear_len, const void *session);
/* A server transport on accepted fd; `early` are bytes already read past
 * the preamble (the start of the ClientHello). */
struct mpt_tp *mpt_tp_tls_server(struct mpt_tls *t, int fd, const uint8_t *early,
                                 size_t early_len);

/* After the handshake: was it a resumption (no certificate, one round trip)? */
int mpt_tp_tls_resumed(const struct mpt_tp *tp);
/* Client: the session to resume on later subflows (*out, replacing and
 * freeing what it held). 0 or MPT_E*. */
int mpt_tp_tls_save_session(struct mpt_tp *tp, void **out);
void mpt_tls_session_free(void *session);
/* The negotiated cipher suite's name, or "" before the handshake. */
const char *mpt_tp_tls_suite(const struct mpt_tp *tp);

#endif
