/* The event queue: what the engine tells the application, pulled with
 * mpt_conn_next_event(). At most EVQ_LEN: EVQ_INLINE inside the connection,
 * more allocated as it fills (most connections hold a few at a time);
 * READABLE and WRITABLE are coalesced. */
#include "alloc.h"
#include "conn_int.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

struct mpt_event *mpt_ev_push(struct mpt_conn *c, enum mpt_event_type type, int sf, int err,
                                 uint32_t reason)
{
    struct mpt_event *ev;

    if (type == MPT_EV_READABLE) {
        if (c->ev_readable)
            return NULL;
        c->ev_readable = 1;
    } else if (type == MPT_EV_WRITABLE) {
        if (c->ev_writable)
            return NULL;
        c->ev_writable = 1;
    }
    if (c->ev_n == c->ev_cap && c->ev_cap < EVQ_LEN) {
        /* Grow, unwrapping the ring; without memory it is full. */
        unsigned ncap = 2 * c->ev_cap;
        struct mpt_event *nq = mpt_malloc(ncap * sizeof *nq);
        if (nq != NULL) {
            for (unsigned k = 0; k < c->ev_n; k++)
                nq[k] = c->evq[(c->ev_head + k) % c->ev_cap];
            if (c->evq != c->ev_inline)
                mpt_free(c->evq);
            c->evq = nq;
            c->ev_cap = ncap;
            c->ev_head = 0;
        }
    }
    if (c->ev_n == c->ev_cap) {
        c->ev_dropped++;
        return NULL;
    }
    ev = &c->evq[(c->ev_head + c->ev_n) % c->ev_cap];
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ev->sf = sf;
    ev->sf_id = sf >= 0 && sf < c->nslots ? c->sf[sf].id : 0;
    ev->error = err;
    ev->reason = reason;
    c->ev_n++;
    return ev;
}

int mpt_conn_next_event(struct mpt_conn *c, struct mpt_event *ev)
{
    if (!c || c->ev_n == 0)
        return 0;
    *ev = c->evq[c->ev_head];
    c->ev_head = (c->ev_head + 1) % c->ev_cap;
    c->ev_n--;
    if (ev->type == MPT_EV_READABLE)
        c->ev_readable = 0;
    else if (ev->type == MPT_EV_WRITABLE)
        c->ev_writable = 0;
    return 1;
}
