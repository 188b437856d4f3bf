/*
 * TLS 1.2 (mbedTLS 2.28) under a subflow, non-blocking over its socket.
 *
 * Only AEAD suites with forward secrecy or a PSK: ECDHE with AES-GCM or
 * ChaCha20-Poly1305 for certificates; PSK (plain and ECDHE) with the same
 * ciphers. Servers issue session tickets and clients resume them, so a join
 * costs one round trip and no certificate. Keys for the engine come from an
 * RFC 5705 exporter: TLS-PRF(master secret, label, client_random ||
 * server_random), the master secret captured by mbedTLS's key-export hook.
 * Writes go out in whole records of at most the record payload, so a burst
 * of small frames does not become a burst of small records.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ev.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_internal.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <mpt/error.h>

#include "core/frame.h"
#include "tls.h"

#define REC_MAX 16384u
#define RBUF_LEN (64u * 1024u) /* read ahead: a few records per recv() */

struct mpt_tls {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca, cert;
    mbedtls_pk_context key;
    mbedtls_ssl_ticket_context ticket;
    mbedtls_ssl_config cli, srv;
    int have_ca, have_cert, psk, can_serve;
    char *server_name;
    struct tls_tp *current;          /* the transport inside mbedtls_ssl_handshake */
};

struct tls_tp {
    struct mpt_tp base;
    struct mpt_tls *t;
    mbedtls_ssl_context ssl;
    int server, hs_done, resumed, have_keys, sys_errno, first_seen;
    uint8_t clear[MPT_PREAMBLE_MAX_LEN];   /* client: the preamble, before TLS */
    size_t clear_len, clear_off;
    uint8_t *early;                  /* server: bytes read with the preamble */
    size_t early_len, early_off;
    uint8_t ms[48], rnd[64];
    mbedtls_tls_prf_types prf;
    size_t inflight;                 /* bytes of a record mbedtls holds, half sent */
    uint8_t stage[REC_MAX];
    size_t rb_off, rb_len;           /* read ahead, once the handshake is over */
    uint8_t rb[RBUF_LEN];
};

static const int suites_cert[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

static const int suites_psk[] = {
    MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_PSK_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

static void set_why(char *why, size_t wlen, const char *what, const char *path, int ret)
{
    char e[128];

    if (why == NULL || wlen == 0)
        return;
    mbedtls_strerror(ret, e, sizeof e);
    snprintf(why, wlen, "%s %s: %s (mbedTLS -0x%04x)", what, path, e, (unsigned)-ret);
}

/* The master secret and randoms of every handshake, for the exporter. The
 * hook has no SSL context argument: the transport in the handshake call is
 * the one it belongs to (everything runs on the loop thread). */
static int export_keys_cb(void *p, const unsigned char *ms, const unsigned char *kb,
                          size_t maclen, size_t keylen, size_t ivlen,
                          const unsigned char client_random[32],
                          const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
    struct mpt_tls *t = p;
    struct tls_tp *tp = t->current;

    (void)kb;
    (void)maclen;
    (void)keylen;
    (void)ivlen;
    if (tp == NULL)
        return 0;
    memcpy(tp->ms, ms, sizeof tp->ms);
    memcpy(tp->rnd, client_random, 32);
    memcpy(tp->rnd + 32, server_random, 32);
    tp->prf = prf;
    tp->have_keys = 1;
    tp->resumed = tp->ssl.handshake != NULL && tp->ssl.handshake->resume;
    return 0;
}

static int conf_common(struct mpt_tls *t, mbedtls_ssl_config *c, int endpoint,
                       const struct mpt_tls_config *cfg, char *why, size_t wlen)
{
    int ret = mbedtls_ssl_config_defaults(c, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) {
        set_why(why, wlen, "TLS configuration", "", ret);
        return MPT_ETLS;
    }
    mbedtls_ssl_conf_min_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_rng(c, mbedtls_ctr_drbg_random, &t->drbg);
    mbedtls_ssl_conf_ciphersuites(c, t->psk ? suites_psk : suites_cert);
    mbedtls_ssl_conf_renegotiation(c, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_extended_master_secret(c, MBEDTLS_SSL_EXTENDED_MS_ENABLED);
    mbedtls_ssl_conf_export_keys_ext_cb(c, export_keys_cb, t);
    if (t->psk) {
        ret = mbedtls_ssl_conf_psk(c, cfg->psk, cfg->psk_len,
                                   (const unsigned char *)cfg->psk_identity,
                                   strlen(cfg->psk_identity));
        if (ret != 0) {
            set_why(why, wlen, "TLS PSK identity", cfg->psk_identity, ret);
            return MPT_ETLS;
        }
    }
    if (t->have_ca)
        mbedtls_ssl_conf_ca_chain(c, &t->ca, NULL);
    if (t->have_cert) {
        ret = mbedtls_ssl_conf_own_cert(c, &t->cert, &t->key);
        if (ret != 0) {
            set_why(why, wlen, "TLS certificate", cfg->cert_file, ret);
            return MPT_ETLS;
        }
    }
    return 0;
}

int mpt_tls_new(const struct mpt_tls_config *in, struct mpt_tls **out, char *why, size_t wlen)
{
    struct mpt_tls_config c, *cfg = &c;
    struct mpt_tls *t;
    int ret, rc = MPT_ETLS;

    *out = NULL;
    if (why && wlen)
        why[0] = '\0';
    if (in == NULL || in->size < sizeof(size_t) || in->size > sizeof c + 4096)
        return MPT_EINVAL;
    /* Size-versioned like struct mpt_config: what both know; a newer
     * program's settings beyond that must be zero (unknown, not ignored). */
    memset(&c, 0, sizeof c);
    memcpy(&c, in, in->size < sizeof c ? in->size : sizeof c);
    for (size_t i = sizeof c; i < in->size; i++)
        if (((const uint8_t *)in)[i] != 0)
            return MPT_EINVAL;
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        if (why)
            snprintf(why, wlen, "TLS: a certificate needs its key and a key its certificate");
        return MPT_EINVAL;
    }
    if ((cfg->psk != NULL && (cfg->psk_len == 0 || cfg->psk_identity == NULL)) ||
        (cfg->psk == NULL && cfg->psk_len != 0)) {
        if (why)
            snprintf(why, wlen, "TLS: a PSK needs a length and an identity");
        return MPT_EINVAL;
    }
    if (cfg->psk == NULL && !cfg->insecure_skip_verify && cfg->ca_file == NULL &&
        cfg->ca_path == NULL && cfg->cert_file == NULL) {
        if (why)
            snprintf(why, wlen, "TLS: no CA to verify the server (ca_file or ca_path), no "
                                "certificate to serve, no PSK, and insecure_skip_verify not set");
        return MPT_EINVAL;
    }
    if ((t = calloc(1, sizeof *t)) == NULL)
        return MPT_ENOMEM;
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_pk_init(&t->key);
    mbedtls_ssl_ticket_init(&t->ticket);
    mbedtls_ssl_config_init(&t->cli);
    mbedtls_ssl_config_init(&t->srv);
    t->psk = cfg->psk != NULL;
    if ((ret = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                     (const unsigned char *)"libmpt-tls", 10)) != 0) {
        set_why(why, wlen, "TLS random generator", "", ret);
        goto fail;
    }
    if (cfg->ca_file != NULL) {
        if ((ret = mbedtls_x509_crt_parse_file(&t->ca, cfg->ca_file)) != 0) {
            set_why(why, wlen, "TLS CA file", cfg->ca_file, ret);
            goto fail;
        }
        t->have_ca = 1;
    }
    if (cfg->ca_path != NULL) {
        if ((ret = mbedtls_x509_crt_parse_path(&t->ca, cfg->ca_path)) != 0) {
            set_why(why, wlen, "TLS CA directory", cfg->ca_path, ret < 0 ? ret : -1);
            goto fail;
        }
        t->have_ca = 1;
    }
    if (cfg->cert_file != NULL) {
        if ((ret = mbedtls_x509_crt_parse_file(&t->cert, cfg->cert_file)) != 0) {
            set_why(why, wlen, "TLS certificate file", cfg->cert_file, ret);
            goto fail;
        }
        if ((ret = mbedtls_pk_parse_keyfile(&t->key, cfg->key_file, NULL)) != 0) {
            set_why(why, wlen, "TLS key file", cfg->key_file, ret);
            goto fail;
        }
        if ((ret = mbedtls_pk_check_pair(&t->cert.pk, &t->key)) != 0) {
            set_why(why, wlen, "TLS key file (not the certificate's key)", cfg->key_file, ret);
            goto fail;
        }
        t->have_cert = 1;
    }
    if (cfg->server_name != NULL && (t->server_name = strdup(cfg->server_name)) == NULL) {
        rc = MPT_ENOMEM;
        goto fail;
    }
    if ((rc = conf_common(t, &t->cli, MBEDTLS_SSL_IS_CLIENT, cfg, why, wlen)) < 0)
        goto fail;
    mbedtls_ssl_conf_authmode(&t->cli, t->psk || cfg->insecure_skip_verify
                                           ? MBEDTLS_SSL_VERIFY_NONE
                                           : MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_session_tickets(&t->cli, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    t->can_serve = t->have_cert || t->psk;
    if (t->can_serve) {
        if ((rc = conf_common(t, &t->srv, MBEDTLS_SSL_IS_SERVER, cfg, why, wlen)) < 0)
            goto fail;
        /* A CA on the server side asks clients for certificates it verifies. */
        mbedtls_ssl_conf_authmode(&t->srv, t->have_ca && !t->psk ? MBEDTLS_SSL_VERIFY_REQUIRED
                                                                 : MBEDTLS_SSL_VERIFY_NONE);
        if ((ret = mbedtls_ssl_ticket_setup(&t->ticket, mbedtls_ctr_drbg_random, &t->drbg,
                                            MBEDTLS_CIPHER_AES_256_GCM, 86400)) != 0) {
            set_why(why, wlen, "TLS session tickets", "", ret);
            rc = MPT_ETLS;
            goto fail;
        }
        mbedtls_ssl_conf_session_tickets_cb(&t->srv, mbedtls_ssl_ticket_write,
                                            mbedtls_ssl_ticket_parse, &t->ticket);
    }
    *out = t;
    return 0;
fail:
    mpt_tls_free(t);
    return rc;
}

void mpt_tls_free(struct mpt_tls *t)
{
    if (t == NULL)
        return;
    mbedtls_ssl_config_free(&t->cli);
    mbedtls_ssl_config_free(&t->srv);
    mbedtls_ssl_ticket_free(&t->ticket);
    mbedtls_pk_free(&t->key);
    mbedtls_x509_crt_free(&t->cert);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    free(t->server_name);
    free(t);
}

int mpt_tls_can_serve(const struct mpt_tls *t)
{
    return t != NULL && t->can_serve;
}

/* ---- The socket under mbedTLS --------------------------------------------------- */

static int bio_send(void *p, const unsigned char *buf, size_t len)
{
    struct tls_tp *tp = p;

    for (;;) {
        ssize_t n = send(tp->base.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            tp->base.want = EV_WRITE;
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        }
        tp->sys_errno = errno;
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

/* A client that gets the byte of an ERROR frame where a TLS record should
 * start was refused in clear (doc/protocol.md 3.2): say why, with the
 * server's text. */
static int refused_in_clear(struct tls_tp *tp, const unsigned char *got, size_t n)
{
    uint8_t buf[MPT_FRAME_MAX_CONTROL];
    struct mpt_frame f;
    size_t have = n < sizeof buf ? n : sizeof buf;

    memcpy(buf, got, have);
    while (have < sizeof buf) {
        ssize_t r = recv(tp->base.fd, buf + have, sizeof buf - have, MSG_DONTWAIT);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    tp->base.error = MPT_ETLS;
    if (mpt_frame_decode(buf, have, MPT_FRAME_MAX_CONTROL, &f) > 0 && f.type == MPT_FT_ERROR) {
        int tl = (int)(f.u.close.text_len < 120 ? f.u.close.text_len : 120);
        char text[121];
        for (int i = 0; i < tl; i++) /* sanitized: a peer's text */
            text[i] = f.u.close.text[i] >= 0x20 && f.u.close.text[i] < 0x7f ? (char)f.u.close.text[i] : '?';
        text[tl] = '\0';
        snprintf(tp->base.why, sizeof tp->base.why,
                 "server does not offer TLS (it answered in clear: \"%s\")", text);
    } else {
        snprintf(tp->base.why, sizeof tp->base.why,
                 "server does not offer TLS (it answered in clear, not with a TLS record)");
    }
    return MBEDTLS_ERR_NET_RECV_FAILED;
}

static int bio_recv(void *p, unsigned char *buf, size_t len)
{
    struct tls_tp *tp = p;

    if (tp->early_off < tp->early_len) {
        size_t n = tp->early_len - tp->early_off;
        if (n > len)
            n = len;
        memcpy(buf, tp->early + tp->early_off, n);
        tp->early_off += n;
        return (int)n;
    }
    if (tp->rb_off < tp->rb_len) {
        size_t n = tp->rb_len - tp->rb_off;
        if (n > len)
            n = len;
        memcpy(buf, tp->rb + tp->rb_off, n);
        tp->rb_off += n;
        return (int)n;
    }
    if (tp->hs_done && len < sizeof tp->rb) {
        /* mbedTLS asks for a record header, then its body: one recv()
         * brings several records instead. */
        ssize_t n;
        do
            n = recv(tp->base.fd, tp->rb, sizeof tp->rb, MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n > 0) {
            tp->rb_len = (size_t)n;
            tp->rb_off = 0;
            return bio_recv(p, buf, len);
        }
        if (n == 0)
            return 0;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            tp->base.want = EV_READ;
            return MBEDTLS_ERR_SSL_WANT_READ;
        }
        tp->sys_errno = errno;
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
    for (;;) {
        ssize_t n = recv(tp->base.fd, buf, len, MSG_DONTWAIT);
        if (n > 0) {
            if (!tp->server && !tp->first_seen) {
                tp->first_seen = 1;
                if (buf[0] == MPT_FT_ERROR)
                    return refused_in_clear(tp, buf, (size_t)n);
            }
            return (int)n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            tp->base.want = EV_READ;
            return MBEDTLS_ERR_SSL_WANT_READ;
        }
        tp->sys_errno = errno;
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

/* ---- The transport --------------------------------------------------------------- */

/* An mbedTLS error ret: as an errno (-1 returned), with the reason kept. */
static int tls_fail(struct tls_tp *tp, int ret, const char *when)
{
    char e[128];

    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        tp->base.want = ret == MBEDTLS_ERR_SSL_WANT_READ ? EV_READ : EV_WRITE;
        errno = EAGAIN;
        return -1;
    }
    if (tp->base.error != 0) { /* set on the way (refused in clear) */
        errno = EPROTO;
        return -1;
    }
    if (tp->sys_errno != 0) { /* the socket itself failed: like plain TCP */
        errno = tp->sys_errno;
        return -1;
    }
    tp->base.error = MPT_ETLS;
    if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        char info[160];
        uint32_t flags = mbedtls_ssl_get_verify_result(&tp->ssl);
        int n = mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        while (n > 0 && (info[n - 1] == '\n' || info[n - 1] == ' '))
            info[--n] = '\0';
        for (int i = 0; i < n; i++)
            if (info[i] == '\n')
                info[i] = ';';
        snprintf(tp->base.why, sizeof tp->base.why, "%s: certificate not accepted: %s", when,
                 n > 0 ? info : "unknown reason");
    } else if (ret == MBEDTLS_ERR_SSL_CONN_EOF) {
        snprintf(tp->base.why, sizeof tp->base.why, "%s: the peer closed the connection", when);
    } else {
        mbedtls_strerror(ret, e, sizeof e);
        snprintf(tp->base.why, sizeof tp->base.why, "%s: %s (mbedTLS -0x%04x)", when, e,
                 (unsigned)-ret);
    }
    errno = EPROTO;
    return -1;
}

static int tls_handshake(struct mpt_tp *b)
{
    struct tls_tp *tp = (struct tls_tp *)b;
    int ret;

    if (tp->hs_done)
        return 0;
    while (tp->clear_off < tp->clear_len) {
        ret = bio_send(tp, tp->clear + tp->clear_off, tp->clear_len - tp->clear_off);
        if (ret < 0)
            return tls_fail(tp, ret, "sending the preamble");
        tp->clear_off += (size_t)ret;
    }
    tp->t->current = tp;
    ret = mbedtls_ssl_handshake(&tp->ssl);
    tp->t->current = NULL;
    if (ret != 0)
        return tls_fail(tp, ret, "TLS handshake");
    tp->hs_done = 1;
    free(tp->early);
    tp->early = NULL;
    tp->early_len = tp->early_off = 0;
    return 0;
}

static ssize_t tls_read(struct mpt_tp *b, uint8_t *buf, size_t len)
{
    struct tls_tp *tp = (struct tls_tp *)b;
    size_t got = 0;

    b->pending = 0;
    while (got < len) {
        int ret = mbedtls_ssl_read(&tp->ssl, buf + got, len - got);
        if (ret > 0) {
            got += (size_t)ret;
            continue;
        }
        if (got > 0)
            break; /* the end or the error shows on the next call */
        /* A TCP FIN without close_notify is an end of stream too: the
         * frames inside (DATA_FIN, CLOSE) say whether the stream was
         * complete, so a truncation cannot pass for a clean end. */
        if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_CONN_EOF)
            return 0;
        return tls_fail(tp, ret, "TLS read");
    }
    /* Records already read from the socket: no readable event brings us back
     * for them. */
    b->pending = mbedtls_ssl_get_bytes_avail(&tp->ssl) + (tp->rb_len - tp->rb_off);
    return (ssize_t)got;
}

/* Finishes sending the record mbedtls holds (it ignores the buffer then). */
static int flush_inflight(struct tls_tp *tp)
{
    int ret;

    if (tp->inflight == 0)
        return 0;
    ret = mbedtls_ssl_write(&tp->ssl, tp->stage, tp->inflight);
    if (ret < 0)
        return tls_fail(tp, ret, "TLS write");
    tp->inflight = 0;
    tp->base.out_pending = 0;
    return 0;
}

static ssize_t tls_writev(struct mpt_tp *b, const struct iovec *iov, int n)
{
    struct tls_tp *tp = (struct tls_tp *)b;
    size_t max = (size_t)mbedtls_ssl_get_max_out_record_payload(&tp->ssl);
    size_t total = 0, off = 0;
    int i = 0;

    if (max == 0 || max > REC_MAX)
        max = REC_MAX;
    if (flush_inflight(tp) < 0)
        return -1;
    while (i < n) {
        const uint8_t *src;
        size_t len = 0;
        if (iov[i].iov_len - off >= max) {
            src = (const uint8_t *)iov[i].iov_base + off; /* a whole record: no copy */
            len = max;
            off += max;
        } else {
            /* Small pieces (frame headers, short frames): one record for many. */
            while (i < n && len < max) {
                size_t k = iov[i].iov_len - off;
                if (k > max - len)
                    k = max - len;
                memcpy(tp->stage + len, (const uint8_t *)iov[i].iov_base + off, k);
                len += k;
                off += k;
                if (off == iov[i].iov_len) {
                    i++;
                    off = 0;
                }
            }
            src = tp->stage;
        }
        if (i < n && off == iov[i].iov_len) {
            i++;
            off = 0;
        }
        if (len == 0)
            continue;
        int ret = mbedtls_ssl_write(&tp->ssl, src, len);
        if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
            /* The record is sealed and partly out: its bytes are taken, the
             * rest goes with the next call. */
            tp->inflight = len;
            b->out_pending = 1;
            b->want = EV_WRITE;
            return (ssize_t)(total + len);
        }
        if (ret < 0) {
            if (total > 0)
                return (ssize_t)total;
            return tls_fail(tp, ret, "TLS write");
        }
        total += (size_t)ret;
    }
    return (ssize_t)total;
}

static int tls_export(struct mpt_tp *b, const char *label, uint8_t *out, size_t len)
{
    struct tls_tp *tp = (struct tls_tp *)b;

    if (!tp->hs_done || !tp->have_keys)
        return MPT_ESTATE;
    if (mbedtls_ssl_tls_prf(tp->prf, tp->ms, sizeof tp->ms, label, tp->rnd, sizeof tp->rnd, out,
                            len) != 0)
        return MPT_ETLS;
    return 0;
}

static void tls_tp_free(struct mpt_tp *b)
{
    struct tls_tp *tp = (struct tls_tp *)b;

    mbedtls_ssl_free(&tp->ssl);
    mbedtls_platform_zeroize(tp->ms, sizeof tp->ms);
    free(tp->early);
    free(tp);
}

static const struct mpt_tp_ops tls_ops = {
    .name = "tls",
    .handshake = tls_handshake,
    .read = tls_read,
    .writev = tls_writev,
    .export_secret = tls_export,
    .free = tls_tp_free,
};

static struct tls_tp *tp_new(struct mpt_tls *t, int fd, int server)
{
    struct tls_tp *tp = calloc(1, sizeof *tp);

    if (tp == NULL)
        return NULL;
    tp->base.ops = &tls_ops;
    tp->base.fd = fd;
    tp->t = t;
    tp->server = server;
    mbedtls_ssl_init(&tp->ssl);
    if (mbedtls_ssl_setup(&tp->ssl, server ? &t->srv : &t->cli) != 0) {
        mbedtls_ssl_free(&tp->ssl);
        free(tp);
        return NULL;
    }
    mbedtls_ssl_set_bio(&tp->ssl, tp, bio_send, bio_recv, NULL);
    return tp;
}

struct mpt_tp *mpt_tp_tls_client(struct mpt_tls *t, int fd, const char *name,
                                 const uint8_t *clear, size_t clear_len, const void *session)
{
    struct tls_tp *tp;

    if (clear_len > sizeof tp->clear || (tp = tp_new(t, fd, 0)) == NULL)
        return NULL;
    memcpy(tp->clear, clear, clear_len);
    tp->clear_len = clear_len;
    if (t->server_name != NULL)
        name = t->server_name;
    if ((name != NULL && mbedtls_ssl_set_hostname(&tp->ssl, name) != 0) ||
        (session != NULL && mbedtls_ssl_set_session(&tp->ssl, session) != 0)) {
        tls_tp_free(&tp->base);
        return NULL;
    }
    return &tp->base;
}

struct mpt_tp *mpt_tp_tls_server(struct mpt_tls *t, int fd, const uint8_t *early,
                                 size_t early_len)
{
    struct tls_tp *tp;

    if (!t->can_serve || (tp = tp_new(t, fd, 1)) == NULL)
        return NULL;
    if (early_len > 0) {
        if ((tp->early = malloc(early_len)) == NULL) {
            tls_tp_free(&tp->base);
            return NULL;
        }
        memcpy(tp->early, early, early_len);
        tp->early_len = early_len;
    }
    return &tp->base;
}

int mpt_tp_tls_resumed(const struct mpt_tp *b)
{
    return b->ops == &tls_ops && ((const struct tls_tp *)b)->resumed;
}

int mpt_tp_tls_save_session(struct mpt_tp *b, void **out)
{
    struct tls_tp *tp = (struct tls_tp *)b;
    mbedtls_ssl_session *s;

    if (b->ops != &tls_ops || !tp->hs_done)
        return MPT_ESTATE;
    if ((s = malloc(sizeof *s)) == NULL)
        return MPT_ENOMEM;
    mbedtls_ssl_session_init(s);
    if (mbedtls_ssl_get_session(&tp->ssl, s) != 0) {
        mbedtls_ssl_session_free(s);
        free(s);
        return MPT_ETLS;
    }
    mpt_tls_session_free(*out);
    *out = s;
    return 0;
}

void mpt_tls_session_free(void *session)
{
    if (session == NULL)
        return;
    mbedtls_ssl_session_free(session);
    free(session);
}

const char *mpt_tp_tls_suite(const struct mpt_tp *b)
{
    if (b->ops != &tls_ops || !((const struct tls_tp *)b)->hs_done)
        return "";
    return mbedtls_ssl_get_ciphersuite(&((const struct tls_tp *)b)->ssl);
}
