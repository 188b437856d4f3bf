/* SOCKS5 greeting, request and replies (proxy-socks5.h, RFC 1928). */
#include "proxy-socks5.h"

#include <string.h>

enum socks5_result socks5_parse_greeting(const uint8_t *buf, size_t len, size_t *used)
{
    size_t n;

    if (len < 1)
        return SOCKS5_NEED_MORE;
    if (buf[0] != SOCKS5_VERSION)
        return SOCKS5_BAD;
    if (len < 2)
        return SOCKS5_NEED_MORE;
    n = buf[1];
    if (len < 2 + n)
        return SOCKS5_NEED_MORE;
    *used = 2 + n;
    for (size_t i = 0; i < n; i++)
        if (buf[2 + i] == SOCKS5_METHOD_NONE)
            return SOCKS5_DONE;
    return SOCKS5_REFUSE;
}

enum socks5_result socks5_parse_request(const uint8_t *buf, size_t len, size_t *used,
                                        struct proxy_target *t, uint8_t *reply)
{
    size_t need, alen = 0;

    if (len < 1)
        return SOCKS5_NEED_MORE;
    if (buf[0] != SOCKS5_VERSION)
        return SOCKS5_BAD;
    if (len < 4)
        return SOCKS5_NEED_MORE;
    /* The command is judged once the whole request is known to be well formed:
     * an unknown address type cannot be skipped, so it is answered first. */
    switch (buf[3]) {
    case PROXY_TARGET_IPV4:
        need = 4 + 4 + 2;
        break;
    case PROXY_TARGET_IPV6:
        need = 4 + 16 + 2;
        break;
    case PROXY_TARGET_NAME:
        if (len < 5)
            return SOCKS5_NEED_MORE;
        alen = buf[4];
        need = 5 + alen + 2;
        break;
    default:
        *reply = PROXY_REPLY_BAD_ADDRESS_TYPE;
        return SOCKS5_REFUSE;
    }
    if (len < need)
        return SOCKS5_NEED_MORE;
    *used = need;
    if (buf[1] != SOCKS5_CMD_CONNECT) {
        *reply = PROXY_REPLY_BAD_COMMAND;
        return SOCKS5_REFUSE;
    }
    memset(t, 0, sizeof *t);
    t->type = (enum proxy_target_type)buf[3];
    if (t->type == PROXY_TARGET_NAME) {
        memcpy(t->name, buf + 5, alen);
        t->name[alen] = '\0';
        if (alen == 0 || strlen(t->name) != alen) { /* empty, or a NUL inside */
            *reply = PROXY_REPLY_HOST_UNREACHABLE;
            return SOCKS5_REFUSE;
        }
    } else {
        memcpy(t->addr, buf + 4, t->type == PROXY_TARGET_IPV4 ? 4 : 16);
    }
    t->port = (uint16_t)(buf[need - 2] << 8 | buf[need - 1]);
    return SOCKS5_DONE;
}

void socks5_method_reply(uint8_t method, uint8_t out[2])
{
    out[0] = SOCKS5_VERSION;
    out[1] = method;
}

size_t socks5_reply(uint8_t code, uint8_t out[10])
{
    memset(out, 0, 10);
    out[0] = SOCKS5_VERSION;
    out[1] = code;
    out[3] = PROXY_TARGET_IPV4; /* BND.ADDR 0.0.0.0, BND.PORT 0 */
    return 10;
}
