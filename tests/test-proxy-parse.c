/*
 * mpt-proxy's parsers on their own (no sockets): the stream header, the
 * SOCKS5 greeting and request at every truncation, HOST:PORT splitting, and
 * the --allow rules (CIDR, IPv6, IPv4-mapped addresses, names, ports).
 * Prints "ok:" / "FAIL:" lines; exit 0 only if every check passed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "proxy-socks5.h"
#include "proxy-target.h"

static int failures, checks;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            failures++;                                                              \
            printf("FAIL: %s:%d: %s\n", __FILE__, __LINE__, #cond);                  \
        }                                                                            \
    } while (0)

static void header_roundtrip(const struct proxy_target *t)
{
    uint8_t buf[PROXY_HEADER_MAX];
    struct proxy_target back;
    size_t n = proxy_header_encode(t, buf);

    for (size_t i = 0; i < n; i++) /* every prefix asks for more */
        CHECK(proxy_header_parse(buf, i, &back) == 0);
    CHECK(proxy_header_parse(buf, n, &back) == (int)n);
    CHECK(back.type == t->type);
    if (t->type != PROXY_TARGET_DEFAULT) {
        CHECK(back.port == t->port);
        CHECK(strcmp(back.name, t->name) == 0);
        CHECK(memcmp(back.addr, t->addr, 16) == 0);
    }
}

static void test_header(void)
{
    struct proxy_target t = {.type = PROXY_TARGET_DEFAULT};
    header_roundtrip(&t);
    memset(&t, 0, sizeof t);
    t.type = PROXY_TARGET_IPV4;
    inet_pton(AF_INET, "192.0.2.7", t.addr);
    t.port = 443;
    header_roundtrip(&t);
    memset(&t, 0, sizeof t);
    t.type = PROXY_TARGET_IPV6;
    inet_pton(AF_INET6, "2001:db8::1", t.addr);
    t.port = 65535;
    header_roundtrip(&t);
    memset(&t, 0, sizeof t);
    t.type = PROXY_TARGET_NAME;
    memset(t.name, 'a', 255);
    t.port = 1;
    header_roundtrip(&t);

    struct proxy_target back;
    const uint8_t bad_version[] = {2, 0};
    const uint8_t bad_type[] = {1, 2, 0, 0};
    const uint8_t empty_name[] = {1, 3, 0, 0, 80};
    const uint8_t nul_name[] = {1, 3, 2, 'a', 0, 0, 80};
    CHECK(proxy_header_parse(bad_version, sizeof bad_version, &back) < 0);
    CHECK(proxy_header_parse(bad_type, sizeof bad_type, &back) < 0);
    CHECK(proxy_header_parse(empty_name, sizeof empty_name, &back) < 0);
    CHECK(proxy_header_parse(nul_name, sizeof nul_name, &back) < 0);
    printf("ok: stream header: every type round-trips, prefixes need more, bad ones refused\n");
}

static void test_socks5(void)
{
    size_t used = 0;
    struct proxy_target t;
    uint8_t code = 0;
    const uint8_t greet[] = {5, 2, 2, 0};
    for (size_t i = 0; i < sizeof greet; i++)
        CHECK(socks5_parse_greeting(greet, i, &used) == SOCKS5_NEED_MORE);
    CHECK(socks5_parse_greeting(greet, sizeof greet, &used) == SOCKS5_DONE && used == 4);
    const uint8_t auth_only[] = {5, 1, 2};
    CHECK(socks5_parse_greeting(auth_only, sizeof auth_only, &used) == SOCKS5_REFUSE);
    const uint8_t no_methods[] = {5, 0};
    CHECK(socks5_parse_greeting(no_methods, sizeof no_methods, &used) == SOCKS5_REFUSE);
    const uint8_t v4[] = {4, 1};
    CHECK(socks5_parse_greeting(v4, sizeof v4, &used) == SOCKS5_BAD);

    const uint8_t req[] = {5, 1, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0x1f, 0x90};
    for (size_t i = 0; i < sizeof req; i++)
        CHECK(socks5_parse_request(req, i, &used, &t, &code) == SOCKS5_NEED_MORE);
    CHECK(socks5_parse_request(req, sizeof req, &used, &t, &code) == SOCKS5_DONE);
    CHECK(used == sizeof req && t.type == PROXY_TARGET_NAME && strcmp(t.name, "localhost") == 0 &&
          t.port == 8080);
    const uint8_t req6[] = {5, 1, 0, 4, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80};
    CHECK(socks5_parse_request(req6, sizeof req6, &used, &t, &code) == SOCKS5_DONE);
    CHECK(t.type == PROXY_TARGET_IPV6 && t.port == 80 && t.addr[0] == 0x20 && t.addr[15] == 1);
    const uint8_t bind[] = {5, 2, 0, 1, 127, 0, 0, 1, 0, 80};
    CHECK(socks5_parse_request(bind, sizeof bind, &used, &t, &code) == SOCKS5_REFUSE &&
          code == PROXY_REPLY_BAD_COMMAND);
    const uint8_t atyp[] = {5, 1, 0, 9};
    CHECK(socks5_parse_request(atyp, sizeof atyp, &used, &t, &code) == SOCKS5_REFUSE &&
          code == PROXY_REPLY_BAD_ADDRESS_TYPE);
    const uint8_t empty[] = {5, 1, 0, 3, 0, 0, 80};
    CHECK(socks5_parse_request(empty, sizeof empty, &used, &t, &code) == SOCKS5_REFUSE);

    uint8_t out[10];
    CHECK(socks5_reply(5, out) == 10 && out[0] == 5 && out[1] == 5 && out[3] == 1);
    printf("ok: SOCKS5 greeting and request: truncations, refusals, address types\n");
}

static void test_split(void)
{
    char host[256];
    const char *port, *err;

    CHECK(proxy_split_hostport("example.org:443", 0, host, sizeof host, &port, &err) == 0 &&
          strcmp(host, "example.org") == 0 && strcmp(port, "443") == 0);
    CHECK(proxy_split_hostport("[2001:db8::1]:80", 0, host, sizeof host, &port, &err) == 0 &&
          strcmp(host, "2001:db8::1") == 0 && strcmp(port, "80") == 0);
    CHECK(proxy_split_hostport("1080", 1, host, sizeof host, &port, &err) == 0 && host[0] == 0);
    CHECK(proxy_split_hostport("1080", 0, host, sizeof host, &port, &err) < 0);
    CHECK(proxy_split_hostport("::1:80", 0, host, sizeof host, &port, &err) < 0);
    CHECK(proxy_split_hostport(":80", 0, host, sizeof host, &port, &err) < 0);
    CHECK(proxy_split_hostport("[::1]80", 0, host, sizeof host, &port, &err) < 0);
    printf("ok: HOST:PORT, [V6]:PORT and PORT\n");
}

static struct sockaddr_storage sa(const char *addr, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
    } else {
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
    }
    return ss;
}

static int allowed(const struct proxy_allow *r, size_t n, const char *addr, uint16_t port)
{
    struct sockaddr_storage ss = sa(addr, port);
    return proxy_allow_addr(r, n, (struct sockaddr *)&ss);
}

static void test_allow(void)
{
    struct proxy_allow r[4];
    const char *err;

    CHECK(proxy_allow_parse("10.0.0.0/8:*", &r[0], &err) == 0);
    CHECK(proxy_allow_parse("[2001:db8::/32]:443", &r[1], &err) == 0);
    CHECK(proxy_allow_parse("Example.ORG:443", &r[2], &err) == 0);
    CHECK(proxy_allow_parse("192.0.2.9:22", &r[3], &err) == 0);
    CHECK(allowed(r, 4, "10.255.1.2", 1));
    CHECK(!allowed(r, 4, "11.0.0.1", 1));
    CHECK(allowed(r, 4, "::ffff:10.1.2.3", 80)); /* judged as IPv4 */
    CHECK(allowed(r, 4, "2001:db8:ffff::1", 443));
    CHECK(!allowed(r, 4, "2001:db8::1", 80));
    CHECK(!allowed(r, 4, "2001:db9::1", 443));
    CHECK(allowed(r, 4, "192.0.2.9", 22));
    CHECK(!allowed(r, 4, "192.0.2.9", 23));
    CHECK(!allowed(r, 4, "192.0.2.8", 22));
    CHECK(proxy_allow_name(r, 4, "example.org", 443));
    CHECK(!proxy_allow_name(r, 4, "example.org", 80));
    CHECK(!proxy_allow_name(r, 4, "www.example.org", 443));
    CHECK(proxy_allow_parse("0.0.0.0/0:80", &r[0], &err) == 0);
    CHECK(allowed(r, 1, "203.0.113.5", 80) && !allowed(r, 1, "203.0.113.5", 81));
    CHECK(proxy_allow_parse("10.0.0.0/33:80", &r[0], &err) < 0);
    CHECK(proxy_allow_parse("host/8:80", &r[0], &err) < 0);
    CHECK(proxy_allow_parse("10.0.0.1:0", &r[0], &err) < 0);
    CHECK(proxy_allow_parse("10.0.0.1:http", &r[0], &err) < 0);
    CHECK(proxy_allow_parse("10.0.0.1", &r[0], &err) < 0);
    printf("ok: --allow rules: prefixes, IPv6, IPv4-mapped, names, ports, bad rules refused\n");
}

int main(void)
{
    test_header();
    test_socks5();
    test_split();
    test_allow();
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
