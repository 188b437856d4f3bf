/*
 * What the sockets a listener created ask of it (listener.c); only
 * listener.c sees struct mpt_listener.
 */
#ifndef MPT_LISTENER_H
#define MPT_LISTENER_H

struct mpt_ctx;
struct mpt_listener;
struct mpt_socket;

void mpt_listener_conn_gone(struct mpt_listener *l, struct mpt_socket *s);
/* A server socket's source-address count goes down (pc may be NULL). */
struct mpt_peer_count;
void mpt_peer_put(struct mpt_ctx *ctx, struct mpt_peer_count *pc);
void mpt_listener_ready(struct mpt_listener *l, struct mpt_socket *s);
void mpt_listener_unqueue(struct mpt_listener *l, struct mpt_socket *s);
struct mpt_ctx *mpt_listener_ctx(const struct mpt_listener *l);
int mpt_listener_closed(const struct mpt_listener *l);
void *mpt_listener_user(const struct mpt_listener *l);

#endif
