/* error.c — thread-local error messages and status names. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NX_ERRMSG_CAP 2048

static _Thread_local char tl_msg[NX_ERRMSG_CAP];

ngpt_status nx_err(ngpt_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    va_end(ap);
    return status;
}

ngpt_status nx_err_wrap(ngpt_status status, const char *fmt, ...)
{
    /* callers wrap a call's result whatever it is: a success must leave the last failure's
     * message as it was (ngpt_last_error's contract) */
    if (status == NGPT_OK) return status;
    char prefix[NX_ERRMSG_CAP];
    char old[NX_ERRMSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tl_msg, sizeof old);
    size_t n = strnlen(prefix, sizeof prefix - 1);
    memcpy(tl_msg, prefix, n);
    size_t m = strnlen(old, sizeof old - 1);
    if (m > sizeof tl_msg - 1 - n) m = sizeof tl_msg - 1 - n;
    memcpy(tl_msg + n, old, m);
    tl_msg[n + m] = 0;
    return status;
}

char *nx_shape_str(char *buf, size_t cap, int rank, const int64_t *shape)
{
    size_t n = 0;
    if (cap == 0) return buf;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

NGPT_API const char *ngpt_last_error(void) { return tl_msg; }

NGPT_API void ngpt_clear_error(void) { tl_msg[0] = 0; }

NGPT_API const char *ngpt_status_string(ngpt_status s)
{
    switch (s) {
    case NGPT_OK: return "NGPT_OK";
    case NGPT_ERR_INVALID_ARGUMENT: return "NGPT_ERR_INVALID_ARGUMENT";
    case NGPT_ERR_NOT_FOUND: return "NGPT_ERR_NOT_FOUND";
    case NGPT_ERR_IO: return "NGPT_ERR_IO";
    case NGPT_ERR_BAD_FORMAT: return "NGPT_ERR_BAD_FORMAT";
    case NGPT_ERR_SHAPE_MISMATCH: return "NGPT_ERR_SHAPE_MISMATCH";
    case NGPT_ERR_DTYPE_MISMATCH: return "NGPT_ERR_DTYPE_MISMATCH";
    case NGPT_ERR_UNSUPPORTED: return "NGPT_ERR_UNSUPPORTED";
    case NGPT_ERR_OUT_OF_MEMORY: return "NGPT_ERR_OUT_OF_MEMORY";
    case NGPT_ERR_DEVICE: return "NGPT_ERR_DEVICE";
    case NGPT_ERR_CANCELLED: return "NGPT_ERR_CANCELLED";
    case NGPT_ERR_UNEXPECTED_TENSOR: return "NGPT_ERR_UNEXPECTED_TENSOR";
    case NGPT_ERR_BUFFER_TOO_SMALL: return "NGPT_ERR_BUFFER_TOO_SMALL";
    case NGPT_ERR_UNIMPLEMENTED: return "NGPT_ERR_UNIMPLEMENTED";
    case NGPT_ERR_INTERNAL: return "NGPT_ERR_INTERNAL";
    }
    return "NGPT_UNKNOWN_STATUS";
}
