/*
 * The client's paths and the (re)creation of their subflows (paths.c,
 * carrying out core/pm.c's decisions): what the rest of the socket asks of
 * them. A slot k is the path manager's; only paths.c sees s->paths.
 */
#ifndef MPT_PATHS_H
#define MPT_PATHS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sock.h"

int mpt_paths_setup(struct mpt_socket *s, const char *const *paths, size_t npaths);
int mpt_paths_family(const struct mpt_socket *s);
void mpt_paths_free(struct mpt_socket *s);
int mpt_paths_count(const struct mpt_socket *s);  /* local paths (0: server) */
int mpt_paths_nslots(const struct mpt_socket *s); /* the manager's slots (0: server) */
/* A server address (id -1: the resolved one); its index or MPT_ETOOMANY. */
int mpt_paths_add_raddr(struct mpt_socket *s, const struct sockaddr_storage *ss, socklen_t len,
                        int addr_id);
void mpt_paths_addr_removed(struct mpt_socket *s, int addr_id);
void mpt_paths_connect_first(struct mpt_socket *s);
/* Established: every slot without a subflow opens. */
void mpt_paths_start_all(struct mpt_socket *s);
void mpt_paths_stop(struct mpt_socket *s);
void mpt_paths_meter_apply(struct mpt_socket *s, int k, int idx);
int mpt_paths_meter_spent(struct mpt_socket *s, int path_id);
void mpt_paths_slot_up(struct mpt_socket *s, int k);
/* Subflow idx went down as si says: its slot keeps the record and retries. */
void mpt_paths_slot_down(struct mpt_socket *s, int idx, const struct mpt_subflow_info *si);
void mpt_paths_sf_gone(struct mpt_socket *s, int k, int idx);
/* 1 and slot k's path and failures in a row, or 0 if no such slot. */
int mpt_paths_slot_info(const struct mpt_socket *s, int k, int *path_id, uint32_t *failures);
/* 1 and slot k's record of its last subflow if it has none now, else 0. */
int mpt_paths_slot_record(const struct mpt_socket *s, int k, struct mpt_subflow_info *o);
/* Follows the context's links (netlink.c) for every client socket. */
void mpt_paths_watch_links(struct mpt_ctx *ctx);

#endif
