#include <mpt/error.h>

const char *mpt_strerror(int err)
{
    switch (err) {
    case MPT_OK:
        return "success";
#define MPT_ERR_STR_(name, value, msg) case MPT_##name: return msg;
    MPT_ERRNO_MAP(MPT_ERR_STR_)
#undef MPT_ERR_STR_
    }
    return "unknown error";
}

const char *mpt_err_name(int err)
{
    switch (err) {
    case MPT_OK:
        return "MPT_OK";
#define MPT_ERR_NAME_(name, value, msg) case MPT_##name: return "MPT_" #name;
    MPT_ERRNO_MAP(MPT_ERR_NAME_)
#undef MPT_ERR_NAME_
    }
    return "MPT_E(unknown)";
}
