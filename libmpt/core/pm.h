/*
 * The path manager of a client connection, sans I/O: which subflows to open,
 * when, and which to give up. Its inputs are the local paths (interfaces or
 * source addresses the caller binds to), the server's addresses (the one
 * connected to first, id 0, and those it advertises with ADD_ADDR), subflow
 * up / down and link changes; its output is "open a subflow for slot S (path
 * P to address A) now". The caller (the I/O layer, or the simulator) carries
 * out the decisions and reports back; the timings are its `now`.
 *
 * A slot is one (path, address, k) with k < subflows_per_path, for every
 * path and address of compatible families. Before the connection is
 * established only slot 0 (the first path to the first address) opens;
 * afterwards every slot without a subflow opens, and a slot whose subflow
 * fails or closes is retried after min_backoff << failures (at most
 * max_backoff), at once after a link change. Slots of a removed path or
 * address are dead. At most MPT_PM_MAX_SLOTS slots exist: a path or address
 * added beyond that is still added, with the slots that fit.
 */
#ifndef MPT_CORE_PM_H
#define MPT_CORE_PM_H

#include <stddef.h>
#include <stdint.h>

#define MPT_PM_MAX_PATHS 16
#define MPT_PM_MAX_ADDRS 16
#define MPT_PM_MAX_SLOTS 64

struct mpt_pm;

struct mpt_pm_settings {
    uint32_t subflows_per_path; /* per (path, address); default 1, at most 8 */
    uint64_t min_backoff;       /* first retry after a failure, ns; default 250 ms */
    uint64_t max_backoff;       /* ceiling of the doubling backoff, ns; default 30 s */
};

void mpt_pm_settings_default(struct mpt_pm_settings *s);

/* What to do now: open a subflow for `slot`, over local `path` to server
 * address `addr` (indexes from mpt_pm_add_path / mpt_pm_add_addr). */
struct mpt_pm_action {
    int slot, path, addr;
    int addr_id; /* the address's wire id (0: the first one) */
    int prio;    /* the path's tier (enum mpt_prio; 1 = backup) */
};

enum mpt_pm_slot_state {
    MPT_PM_WAITING, /* no subflow; opens at retry_at */
    MPT_PM_OPEN,    /* a subflow exists (connecting or established) */
    MPT_PM_DEAD,    /* its path or address was removed, or the manager stopped */
};

struct mpt_pm_slot_info {
    int path, addr;
    enum mpt_pm_slot_state state;
    unsigned failures;  /* in a row, since the last established subflow */
    uint64_t retry_at;  /* WAITING: when it opens */
    int removed;        /* DEAD because its path or address was removed (not
                           because the manager stopped) */
};

/* 0, MPT_EINVAL or MPT_ENOMEM. s may be NULL for the defaults. */
int mpt_pm_new(const struct mpt_pm_settings *s, struct mpt_pm **out);
void mpt_pm_free(struct mpt_pm *pm);

/* A local path; family AF_INET / AF_INET6 value, or 0 for any. Returns its
 * index (0, 1, ... in the order added) or MPT_ETOOMANY. */
int mpt_pm_add_path(struct mpt_pm *pm, int family, int prio, uint64_t now);
/* The path's slots die; the caller closes their subflows. MPT_ENOTFOUND. */
int mpt_pm_remove_path(struct mpt_pm *pm, int path);
/* The tier new subflows of the path get (enum mpt_prio). */
int mpt_pm_set_prio(struct mpt_pm *pm, int path, int prio);

/*
 * A server address: wire id 0 for the one first connected to, else the
 * ADD_ADDR id. The caller decides whether two addresses are the same (it
 * holds them); a known id is not added again (`*is_new` says which).
 * Returns the address index (0, 1, ... in the order added), MPT_ETOOMANY or
 * MPT_EINVAL.
 */
int mpt_pm_add_addr(struct mpt_pm *pm, int family, int addr_id, uint64_t now, int *is_new);
/* REMOVE_ADDR: the address's slots die. MPT_ENOTFOUND if no such id. */
int mpt_pm_remove_addr(struct mpt_pm *pm, int addr_id);

void mpt_pm_established(struct mpt_pm *pm, uint64_t now); /* joins may start */
void mpt_pm_stop(struct mpt_pm *pm);                      /* no subflow opens any more */
/* A link, address or route changed: waiting slots retry shortly. */
void mpt_pm_links_changed(struct mpt_pm *pm, uint64_t now);

/* Returns 1 and fills *a if a slot is to be opened now (it is then OPEN: the
 * caller opens the subflow, or reports mpt_pm_down if it cannot), else 0. */
int mpt_pm_next(struct mpt_pm *pm, uint64_t now, struct mpt_pm_action *a);
/* When mpt_pm_next may have something: MPT_TIME_NEVER if nothing waits. */
uint64_t mpt_pm_next_timeout(const struct mpt_pm *pm);

/* The wait before retrying a slot after `failures` failures in a row:
 * min_backoff << failures (the shift at most 16), at most max_backoff. The
 * one place this is computed, for the I/O layer too. */
uint64_t mpt_pm_backoff(uint64_t min_backoff, uint64_t max_backoff, unsigned failures);

void mpt_pm_up(struct mpt_pm *pm, int slot);                /* its subflow is established */
void mpt_pm_down(struct mpt_pm *pm, int slot, uint64_t now); /* failed, closed or refused */

int mpt_pm_nslots(const struct mpt_pm *pm);
int mpt_pm_slot_info(const struct mpt_pm *pm, int slot, struct mpt_pm_slot_info *out);

#endif
