/* log.h — messages to the context's log callback (stderr by default; never stdout). */
#ifndef NX_LOG_H
#define NX_LOG_H

#include "error.h"

typedef struct nx_logger {
    ngpt_log_level level;   /* drop messages below this */
    ngpt_log_fn    fn;      /* NULL = stderr */
    void          *user;
} nx_logger;

/* lg may be NULL: then WARN and above go to stderr. */
void nx_log(const nx_logger *lg, ngpt_log_level level, const char *fmt, ...) NX_PRINTF(3, 4);

#endif
