/*
 * Key derivation and authentication for handshakes, joins and ADD_ADDR
 * (doc/protocol.md, "Cryptographic computations"). Pure functions over
 * mbedTLS's SHA-256/HMAC: no randomness here, the caller supplies keys and
 * nonces.
 */
#ifndef MPT_CORE_CRYPTO_H
#define MPT_CORE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

/* token = first 8 bytes of SHA-256(key), IDSN = last 8 bytes, both read as
 * big-endian integers. */
void mpt_key_derive(const uint8_t key[MPT_KEY_LEN], uint64_t *token, uint64_t *idsn);

/* Role of the party that computes the MAC. */
enum mpt_join_role { MPT_JOIN_SERVER = 'S', MPT_JOIN_CLIENT = 'C' };

/*
 * JOIN_ACK (role S) and JOIN_CONFIRM (role C) MAC:
 *   HMAC-SHA256(key = own_key || peer_key,
 *               msg = "MPTL-JOIN-" role || own_nonce || peer_nonce || addr_id || flags)
 * where "own" is the party computing it: the server for JOIN_ACK, the client
 * for JOIN_CONFIRM.
 */
void mpt_join_hmac(enum mpt_join_role role, const uint8_t own_key[MPT_KEY_LEN],
                   const uint8_t peer_key[MPT_KEY_LEN], const uint8_t own_nonce[MPT_NONCE_LEN],
                   const uint8_t peer_nonce[MPT_NONCE_LEN], uint8_t addr_id, uint8_t flags,
                   uint8_t out[MPT_HMAC_LEN]);

/*
 * ADD_ADDR MAC: the first 8 bytes of
 *   HMAC-SHA256(key = sender_key || receiver_key,
 *               msg = addr_id || family || port (2 bytes) || addr (4 or 16 bytes))
 */
void mpt_addr_hmac(const uint8_t sender_key[MPT_KEY_LEN], const uint8_t receiver_key[MPT_KEY_LEN],
                   uint8_t addr_id, uint8_t family, uint16_t port, const uint8_t *addr,
                   uint8_t out[MPT_ADDR_HMAC_LEN]);

/*
 * The same bound to TLS (doc/protocol.md 6.5): with `secret` (the 32-byte
 * exporter of the first subflow's TLS session, or NULL) the HMAC key is
 * own_key || peer_key || secret; with `binding` (the 32-byte exporter of
 * the joining subflow's own TLS session, or NULL) the JOIN message ends
 * with it. Both NULL: exactly mpt_join_hmac / mpt_addr_hmac.
 */
void mpt_join_hmac_tls(enum mpt_join_role role, const uint8_t own_key[MPT_KEY_LEN],
                       const uint8_t peer_key[MPT_KEY_LEN], const uint8_t *secret,
                       const uint8_t *binding, const uint8_t own_nonce[MPT_NONCE_LEN],
                       const uint8_t peer_nonce[MPT_NONCE_LEN], uint8_t addr_id, uint8_t flags,
                       uint8_t out[MPT_HMAC_LEN]);
void mpt_addr_hmac_tls(const uint8_t sender_key[MPT_KEY_LEN],
                       const uint8_t receiver_key[MPT_KEY_LEN], const uint8_t *secret,
                       uint8_t addr_id, uint8_t family, uint16_t port, const uint8_t *addr,
                       uint8_t out[MPT_ADDR_HMAC_LEN]);

/* Constant-time comparison: 1 if equal. */
int mpt_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

#endif
