#include "crypto.h"

#include <string.h>

#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

#include "wire.h"

void mpt_key_derive(const uint8_t key[MPT_KEY_LEN], uint64_t *token, uint64_t *idsn)
{
    uint8_t digest[32];

    mbedtls_sha256_ret(key, MPT_KEY_LEN, digest, 0);
    if (token)
        *token = mpt_get64(digest);
    if (idsn)
        *idsn = mpt_get64(digest + 24);
}

/* HMAC-SHA256 keyed by a || b (|| secret, with TLS) over msg. With SHA-256
 * and valid lengths the mbedTLS call cannot fail, so its result is not
 * propagated. */
static void hmac_two_keys(const uint8_t a[MPT_KEY_LEN], const uint8_t b[MPT_KEY_LEN],
                          const uint8_t *secret, const uint8_t *msg, size_t msg_len,
                          uint8_t out[MPT_HMAC_LEN])
{
    uint8_t key[2 * MPT_KEY_LEN + MPT_SECRET_LEN];
    size_t klen = 2 * MPT_KEY_LEN;

    memcpy(key, a, MPT_KEY_LEN);
    memcpy(key + MPT_KEY_LEN, b, MPT_KEY_LEN);
    if (secret != NULL) {
        memcpy(key + klen, secret, MPT_SECRET_LEN);
        klen += MPT_SECRET_LEN;
    }
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, klen, msg, msg_len, out);
    for (volatile uint8_t *z = key; z < key + sizeof key; z++) /* no copy of the keys lingers */
        *z = 0;
}

void mpt_join_hmac(enum mpt_join_role role, const uint8_t own_key[MPT_KEY_LEN],
                   const uint8_t peer_key[MPT_KEY_LEN], const uint8_t own_nonce[MPT_NONCE_LEN],
                   const uint8_t peer_nonce[MPT_NONCE_LEN], uint8_t addr_id, uint8_t flags,
                   uint8_t out[MPT_HMAC_LEN])
{
    mpt_join_hmac_tls(role, own_key, peer_key, NULL, NULL, own_nonce, peer_nonce, addr_id, flags,
                      out);
}

void mpt_join_hmac_tls(enum mpt_join_role role, const uint8_t own_key[MPT_KEY_LEN],
                       const uint8_t peer_key[MPT_KEY_LEN], const uint8_t *secret,
                       const uint8_t *binding, const uint8_t own_nonce[MPT_NONCE_LEN],
                       const uint8_t peer_nonce[MPT_NONCE_LEN], uint8_t addr_id, uint8_t flags,
                       uint8_t out[MPT_HMAC_LEN])
{
    static const char label[] = "MPTL-JOIN-";
    uint8_t msg[sizeof label - 1 + 1 + 2 * MPT_NONCE_LEN + 2 + MPT_SECRET_LEN];
    uint8_t *p = msg;

    memcpy(p, label, sizeof label - 1);
    p += sizeof label - 1;
    *p++ = (uint8_t)role;
    memcpy(p, own_nonce, MPT_NONCE_LEN);
    p += MPT_NONCE_LEN;
    memcpy(p, peer_nonce, MPT_NONCE_LEN);
    p += MPT_NONCE_LEN;
    *p++ = addr_id;
    *p++ = flags;
    if (binding != NULL) {
        memcpy(p, binding, MPT_SECRET_LEN);
        p += MPT_SECRET_LEN;
    }
    hmac_two_keys(own_key, peer_key, secret, msg, (size_t)(p - msg), out);
}

void mpt_addr_hmac(const uint8_t sender_key[MPT_KEY_LEN], const uint8_t receiver_key[MPT_KEY_LEN],
                   uint8_t addr_id, uint8_t family, uint16_t port, const uint8_t *addr,
                   uint8_t out[MPT_ADDR_HMAC_LEN])
{
    mpt_addr_hmac_tls(sender_key, receiver_key, NULL, addr_id, family, port, addr, out);
}

void mpt_addr_hmac_tls(const uint8_t sender_key[MPT_KEY_LEN],
                       const uint8_t receiver_key[MPT_KEY_LEN], const uint8_t *secret,
                       uint8_t addr_id, uint8_t family, uint16_t port, const uint8_t *addr,
                       uint8_t out[MPT_ADDR_HMAC_LEN])
{
    uint8_t msg[4 + 16];
    uint8_t full[MPT_HMAC_LEN];
    size_t alen = family == 6 ? 16 : 4;

    msg[0] = addr_id;
    msg[1] = family;
    mpt_put16(msg + 2, port);
    memcpy(msg + 4, addr, alen);
    hmac_two_keys(sender_key, receiver_key, secret, msg, 4 + alen, full);
    memcpy(out, full, MPT_ADDR_HMAC_LEN);
}

int mpt_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t diff = 0;

    for (size_t i = 0; i < n; i++)
        diff |= (uint8_t)(a[i] ^ b[i]);
    return diff == 0;
}
