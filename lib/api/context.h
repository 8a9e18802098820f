/* context.h — the ngpt_context behind the opaque handle: the backend every stage computes on,
 * the CPU thread pool and the logger. Stage handles keep a borrowed pointer to it. */
#ifndef NX_CONTEXT_H
#define NX_CONTEXT_H

#include "../core/log.h"
#include "../core/pool.h"
#include "../ops/backend.h"

struct ngpt_context {
    ngpt_context_params params;    /* as given, completed with defaults */
    nx_logger   log;
    nx_pool    *pool;
    nx_backend *be;                /* the backend in use */
    nx_backend *cpu;               /* always present: host-side work and the reference */
    char        backend_note[512]; /* why AUTO fell back to the CPU */
};

#endif
