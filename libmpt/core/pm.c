/* The client path manager (pm.h): slots per (path, address), backoff. */
#include "pm.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "conn.h"

#define LINK_RETRY (20 * MPT_NS_PER_MS)  /* after a link change: let bursts settle */
#define LINK_SOON (50 * MPT_NS_PER_MS)   /* retries due sooner than this are left alone */

struct pm_path {
    int family, prio, removed;
};

struct pm_addr {
    int family, id, removed;
};

struct pm_slot {
    int path, addr;
    enum mpt_pm_slot_state state;
    unsigned failures;
    uint64_t retry_at;
};

struct mpt_pm {
    struct mpt_pm_settings s;
    struct pm_path paths[MPT_PM_MAX_PATHS];
    struct pm_addr addrs[MPT_PM_MAX_ADDRS];
    struct pm_slot slots[MPT_PM_MAX_SLOTS];
    int npaths, naddrs, nslots;
    int established, stopped;
};

void mpt_pm_settings_default(struct mpt_pm_settings *s)
{
    memset(s, 0, sizeof *s);
    s->subflows_per_path = 1;
    s->min_backoff = 250 * MPT_NS_PER_MS;
    s->max_backoff = 30000 * MPT_NS_PER_MS;
}

int mpt_pm_new(const struct mpt_pm_settings *s, struct mpt_pm **out)
{
    struct mpt_pm *pm;

    if (!out)
        return MPT_EINVAL;
    *out = NULL;
    if (s && (s->subflows_per_path > 8 || s->min_backoff > s->max_backoff))
        return MPT_EINVAL;
    if (!(pm = calloc(1, sizeof *pm)))
        return MPT_ENOMEM;
    if (s)
        pm->s = *s;
    else
        mpt_pm_settings_default(&pm->s);
    if (pm->s.subflows_per_path == 0)
        pm->s.subflows_per_path = 1;
    *out = pm;
    return 0;
}

void mpt_pm_free(struct mpt_pm *pm)
{
    free(pm);
}

static int compatible(const struct pm_path *p, const struct pm_addr *a)
{
    return p->family == 0 || a->family == 0 || p->family == a->family;
}

/* New slots for (path, addr), ready at once: those that fit. */
static void make_slots(struct mpt_pm *pm, int path, int addr, uint64_t now)
{
    if (!compatible(&pm->paths[path], &pm->addrs[addr]))
        return;
    for (unsigned k = 0; k < pm->s.subflows_per_path && pm->nslots < MPT_PM_MAX_SLOTS; k++) {
        struct pm_slot *sl = &pm->slots[pm->nslots++];
        sl->path = path;
        sl->addr = addr;
        sl->state = pm->stopped ? MPT_PM_DEAD : MPT_PM_WAITING;
        sl->failures = 0;
        sl->retry_at = now;
    }
}

int mpt_pm_add_path(struct mpt_pm *pm, int family, int prio, uint64_t now)
{
    int id;

    if (!pm || prio < 0 || prio > 3)
        return MPT_EINVAL;
    if (pm->npaths >= MPT_PM_MAX_PATHS)
        return MPT_ETOOMANY;
    id = pm->npaths++;
    pm->paths[id].family = family;
    pm->paths[id].prio = prio;
    pm->paths[id].removed = 0;
    for (int a = 0; a < pm->naddrs; a++)
        if (!pm->addrs[a].removed)
            make_slots(pm, id, a, now);
    return id;
}

int mpt_pm_remove_path(struct mpt_pm *pm, int path)
{
    if (!pm || path < 0 || path >= pm->npaths || pm->paths[path].removed)
        return MPT_ENOTFOUND;
    pm->paths[path].removed = 1;
    for (int i = 0; i < pm->nslots; i++)
        if (pm->slots[i].path == path)
            pm->slots[i].state = MPT_PM_DEAD;
    return 0;
}

int mpt_pm_set_prio(struct mpt_pm *pm, int path, int prio)
{
    if (!pm || path < 0 || path >= pm->npaths || pm->paths[path].removed)
        return MPT_ENOTFOUND;
    if (prio < 0 || prio > 3)
        return MPT_EINVAL;
    pm->paths[path].prio = prio;
    return 0;
}

int mpt_pm_add_addr(struct mpt_pm *pm, int family, int addr_id, uint64_t now, int *is_new)
{
    int a;

    if (is_new)
        *is_new = 0;
    if (!pm || addr_id < 0 || addr_id > 255)
        return MPT_EINVAL;
    for (a = 0; a < pm->naddrs; a++)
        if (pm->addrs[a].id == addr_id && !pm->addrs[a].removed)
            return a;
    if (pm->naddrs >= MPT_PM_MAX_ADDRS)
        return MPT_ETOOMANY;
    a = pm->naddrs++;
    pm->addrs[a].family = family;
    pm->addrs[a].id = addr_id;
    pm->addrs[a].removed = 0;
    if (is_new)
        *is_new = 1;
    for (int p = 0; p < pm->npaths; p++)
        if (!pm->paths[p].removed)
            make_slots(pm, p, a, now);
    return a;
}

int mpt_pm_remove_addr(struct mpt_pm *pm, int addr_id)
{
    int found = 0;

    if (!pm)
        return MPT_EINVAL;
    for (int a = 0; a < pm->naddrs; a++) {
        if (pm->addrs[a].id != addr_id || pm->addrs[a].removed)
            continue;
        pm->addrs[a].removed = 1;
        found = 1;
        for (int i = 0; i < pm->nslots; i++)
            if (pm->slots[i].addr == a)
                pm->slots[i].state = MPT_PM_DEAD;
    }
    return found ? 0 : MPT_ENOTFOUND;
}

void mpt_pm_established(struct mpt_pm *pm, uint64_t now)
{
    if (!pm || pm->established)
        return;
    pm->established = 1;
    for (int i = 0; i < pm->nslots; i++)
        if (pm->slots[i].state == MPT_PM_WAITING && pm->slots[i].retry_at < now)
            pm->slots[i].retry_at = now;
}

void mpt_pm_stop(struct mpt_pm *pm)
{
    if (!pm)
        return;
    pm->stopped = 1;
    for (int i = 0; i < pm->nslots; i++)
        if (pm->slots[i].state == MPT_PM_WAITING)
            pm->slots[i].state = MPT_PM_DEAD;
}

void mpt_pm_links_changed(struct mpt_pm *pm, uint64_t now)
{
    if (!pm || !pm->established)
        return;
    for (int i = 0; i < pm->nslots; i++) {
        struct pm_slot *sl = &pm->slots[i];
        if (sl->state == MPT_PM_WAITING && sl->retry_at > now + LINK_SOON)
            sl->retry_at = now + LINK_RETRY;
    }
}

/* Before establishment only the first slot may open (it carries HELLO). */
static int may_open(const struct mpt_pm *pm, int i)
{
    return pm->established || i == 0;
}

int mpt_pm_next(struct mpt_pm *pm, uint64_t now, struct mpt_pm_action *a)
{
    if (!pm || !a || pm->stopped)
        return 0;
    for (int i = 0; i < pm->nslots; i++) {
        struct pm_slot *sl = &pm->slots[i];
        if (sl->state != MPT_PM_WAITING || sl->retry_at > now || !may_open(pm, i))
            continue;
        sl->state = MPT_PM_OPEN;
        a->slot = i;
        a->path = sl->path;
        a->addr = sl->addr;
        a->addr_id = pm->addrs[sl->addr].id;
        a->prio = pm->paths[sl->path].prio;
        return 1;
    }
    return 0;
}

uint64_t mpt_pm_next_timeout(const struct mpt_pm *pm)
{
    uint64_t t = MPT_TIME_NEVER;

    if (!pm || pm->stopped)
        return t;
    for (int i = 0; i < pm->nslots; i++) {
        const struct pm_slot *sl = &pm->slots[i];
        if (sl->state == MPT_PM_WAITING && may_open(pm, i) && sl->retry_at < t)
            t = sl->retry_at;
    }
    return t;
}

void mpt_pm_up(struct mpt_pm *pm, int slot)
{
    if (pm && slot >= 0 && slot < pm->nslots)
        pm->slots[slot].failures = 0;
}

uint64_t mpt_pm_backoff(uint64_t min_backoff, uint64_t max_backoff, unsigned failures)
{
    unsigned shift = failures < 16 ? failures : 16;
    uint64_t wait = min_backoff << shift;

    if (wait > max_backoff || (shift && wait >> shift != min_backoff))
        wait = max_backoff;
    return wait;
}

void mpt_pm_down(struct mpt_pm *pm, int slot, uint64_t now)
{
    struct pm_slot *sl;

    if (!pm || slot < 0 || slot >= pm->nslots)
        return;
    sl = &pm->slots[slot];
    if (sl->state != MPT_PM_OPEN)
        return;
    if (pm->stopped) {
        sl->state = MPT_PM_DEAD;
        return;
    }
    sl->retry_at = now + mpt_pm_backoff(pm->s.min_backoff, pm->s.max_backoff, sl->failures);
    sl->failures++;
    sl->state = MPT_PM_WAITING;
}

int mpt_pm_nslots(const struct mpt_pm *pm)
{
    return pm ? pm->nslots : 0;
}

int mpt_pm_slot_info(const struct mpt_pm *pm, int slot, struct mpt_pm_slot_info *out)
{
    const struct pm_slot *sl;

    if (!pm || !out || slot < 0 || slot >= pm->nslots)
        return MPT_EINVAL;
    sl = &pm->slots[slot];
    out->path = sl->path;
    out->addr = sl->addr;
    out->state = sl->state;
    out->failures = sl->failures;
    out->retry_at = sl->retry_at;
    out->removed = pm->paths[sl->path].removed || pm->addrs[sl->addr].removed;
    return 0;
}
