/*
 * libmpt: one application connection over several network paths.
 * This umbrella header declares the whole public API; see doc/man/.
 */
#ifndef MPT_MPT_H
#define MPT_MPT_H

#include <mpt/export.h>
#include <mpt/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string, for example "0.1.0". Static; never NULL. */
MPT_EXPORT const char *mpt_version(void);

#ifdef __cplusplus
}
#endif
#endif
