/* Default engine settings (the values documented in conn.h). */
#include "conn.h"

#include <string.h>

void mpt_core_settings_default(struct mpt_core_settings *s)
{
    memset(s, 0, sizeof *s);
    s->max_subflows = 8;
    s->max_frame_payload = 16384;
    s->sndbuf = 16u << 20;
    s->rcvbuf = 16u << 20;
    s->sndbuf_initial = 256u << 10;
    s->rcvbuf_initial = 1u << 20;
    s->ack_delay = 2 * MPT_NS_PER_MS;
    s->ping_interval = 1000 * MPT_NS_PER_MS;
    s->stall_min = 250 * MPT_NS_PER_MS;
    s->subflow_timeout = 2000 * MPT_NS_PER_MS;
    s->handshake_timeout = 5000 * MPT_NS_PER_MS;
    s->close_timeout = 10000 * MPT_NS_PER_MS;
    s->sched = NULL;
    s->cc = NULL;
    s->rand = NULL;
    s->rand_user = NULL;
}
