/* Helpers of the whole I/O layer (util.c); they call nothing else. */
#ifndef MPT_UTIL_H
#define MPT_UTIL_H

#include <stdint.h>
#include <sys/socket.h>

/* CLOCK_MONOTONIC, ns: the engine's `now`. */
uint64_t mpt_io_now(void);
/* The one place that turns an errno into an MPT_E* code. */
int mpt_errno_to_mpt(int e);
/* A numeric IPv4 or IPv6 address with port, or MPT_ERESOLVE. */
int mpt_parse_addr(const char *str, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);
/* Like mpt_parse_addr, but also takes "V4:PORT" and "[V6]:PORT" (then port is
 * only the default). MPT_ERESOLVE if str is not numeric or the port is bad. */
int mpt_parse_addr_port(const char *str, uint16_t port, struct sockaddr_storage *ss,
                        socklen_t *len);

#endif
