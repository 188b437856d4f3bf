/* libmpt: symbol visibility. Only declarations marked MPT_EXPORT leave the library. */
#ifndef MPT_EXPORT_H
#define MPT_EXPORT_H

#if defined(MPT_BUILDING_LIBRARY) && defined(__GNUC__)
#define MPT_EXPORT __attribute__((visibility("default")))
#else
#define MPT_EXPORT
#endif

#endif
