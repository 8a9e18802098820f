/* error.h — setting the thread-local error message behind ngpt_last_error(). */
#ifndef NX_ERROR_H
#define NX_ERROR_H

#include "nextgpt.h"

#if defined(__GNUC__)
#  define NX_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define NX_PRINTF(a, b)
#endif

/* Set the calling thread's message (printf format) and return `status`, so that error paths
 * read `return nx_err(NGPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));`. */
ngpt_status nx_err(ngpt_status status, const char *fmt, ...) NX_PRINTF(2, 3);

/* Prefix the current message with more context ("loading unet: " + old message) and return
 * `status` unchanged. Used when an inner call's message lacks the outer "where". */
ngpt_status nx_err_wrap(ngpt_status status, const char *fmt, ...) NX_PRINTF(2, 3);

/* Propagate a failing status: `NX_TRY(nx_foo(...));` in a function returning ngpt_status. */
#define NX_TRY(expr)                          \
    do {                                      \
        ngpt_status nx_try_s_ = (expr);       \
        if (nx_try_s_ != NGPT_OK) return nx_try_s_; \
    } while (0)

/* Format a shape as "[2, 3, 4]" into buf (always NUL-terminated); returns buf. */
char *nx_shape_str(char *buf, size_t cap, int rank, const int64_t *shape);

#endif
