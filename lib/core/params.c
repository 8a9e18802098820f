/* params.c — see params.h. */
#include "params.h"

#include <string.h>

/* Larger than any params struct will grow: a bigger struct_size is an uninitialised struct. */
#define NX_PARAMS_MAX_SIZE 65536

ngpt_status nx_params_default(void *p, size_t caller_size, const void *defaults, size_t full_size, const char *fn)
{
    if (!p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: p is NULL", fn);
    if (caller_size < sizeof(size_t) || caller_size > NX_PARAMS_MAX_SIZE)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: struct_size %zu is not a params struct size", fn, caller_size);
    memcpy(p, defaults, caller_size < full_size ? caller_size : full_size);
    memcpy(p, &caller_size, sizeof caller_size);
    return NGPT_OK;
}

ngpt_status nx_params_read(void *dst, const void *caller, const void *defaults, size_t full_size, const char *fn)
{
    memcpy(dst, defaults, full_size);
    if (!caller) return NGPT_OK;
    size_t cs;
    memcpy(&cs, caller, sizeof cs);
    if (cs < sizeof(size_t) || cs > NX_PARAMS_MAX_SIZE)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT,
                      "%s: params->struct_size is %zu (fill the params with their _params_default function first)", fn, cs);
    memcpy(dst, caller, cs < full_size ? cs : full_size);
    memcpy(dst, &full_size, sizeof full_size);
    return NGPT_OK;
}
