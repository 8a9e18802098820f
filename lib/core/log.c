/* log.c — formatting and routing of log messages. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static const char *level_name(ngpt_log_level l)
{
    switch (l) {
    case NGPT_LOG_DEBUG: return "debug";
    case NGPT_LOG_INFO: return "info";
    case NGPT_LOG_WARN: return "warn";
    case NGPT_LOG_ERROR: return "error";
    default: return "log";
    }
}

void nx_log(const nx_logger *lg, ngpt_log_level level, const char *fmt, ...)
{
    ngpt_log_level min = lg ? lg->level : NGPT_LOG_WARN;
    if (level < min || level >= NGPT_LOG_NONE) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lg && lg->fn)
        lg->fn(level, msg, lg->user);
    else
        fprintf(stderr, "libnextgpt %s: %s\n", level_name(level), msg);
}
