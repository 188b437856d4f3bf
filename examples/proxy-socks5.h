/*
 * The SOCKS5 side of mpt-proxy's client (RFC 1928): the method greeting
 * (only "no authentication" is accepted), the request (only CONNECT, with
 * an IPv4, IPv6 or domain-name address), and the replies. Byte parsing
 * only: no sockets, so every case can be tested on its own.
 */
#ifndef MPT_PROXY_SOCKS5_H
#define MPT_PROXY_SOCKS5_H

#include <stddef.h>
#include <stdint.h>

#include "proxy-target.h"

#define SOCKS5_VERSION 5
#define SOCKS5_METHOD_NONE 0x00
#define SOCKS5_METHOD_UNACCEPTABLE 0xff
#define SOCKS5_CMD_CONNECT 1

enum socks5_result {
    SOCKS5_NEED_MORE = 0, /* the message is not complete yet */
    SOCKS5_DONE,          /* parsed; *used bytes taken */
    SOCKS5_REFUSE,        /* answer with the reply code given, then close */
    SOCKS5_BAD,           /* not SOCKS5: close without an answer */
};

/*
 * The client's greeting (VER NMETHODS METHODS...). DONE: the client offers
 * "no authentication"; REFUSE: it does not (answer 05 FF); BAD: not SOCKS5.
 */
enum socks5_result socks5_parse_greeting(const uint8_t *buf, size_t len, size_t *used);

/*
 * The request (VER CMD RSV ATYP DST.ADDR DST.PORT). DONE: a CONNECT whose
 * target is in *t; REFUSE: *reply is the code to answer with (command or
 * address type not supported); BAD: not SOCKS5.
 */
enum socks5_result socks5_parse_request(const uint8_t *buf, size_t len, size_t *used,
                                        struct proxy_target *t, uint8_t *reply);

/* The 2-byte method selection answer. */
void socks5_method_reply(uint8_t method, uint8_t out[2]);
/* The 10-byte reply to a request: code, and BND.ADDR 0.0.0.0:0 (the
 * bound address is the proxy server's, which the client cannot use). */
size_t socks5_reply(uint8_t code, uint8_t out[10]);

#endif
