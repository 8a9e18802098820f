/* context.h — the ngpt_context behind the opaque handle: the backend every stage computes on,
 * the CPU thread pool and the logger. Stage handles keep a borrowed pointer to it. */
#ifndef NX_CONTEXT_H
#define NX_CONTEXT_H

#include "../core/log.h"
#include "../core/pool.h"
#include "../ops/backend.h"

#include <pthread.h>
#include <stdbool.h>

struct ngpt_context {
    ngpt_context_params params;    /* as given, completed with defaults */
    nx_logger   log;
    nx_pool    *pool;
    nx_backend *be;                /* the backend in use */
    nx_backend *cpu;               /* always present: host-side work and the reference */
    char        backend_note[512]; /* why AUTO fell back to the CPU */
    /* The device lock: on a CUDA context every public call that computes, loads or frees holds
     * it for its whole duration, so handles of one context may be used from different threads
     * (their calls take turns). One stream, one cuBLAS/cuDNN handle, the plan caches and a
     * graph capture in progress are not safe to share between host threads; the CPU backend
     * serialises per job instead (its pool and oneDNN mutexes) and takes no lock here.
     * Recursive: the pipeline's calls run through the stage handles' public calls. */
    pthread_mutex_t device_mu;
    bool            device_mu_ok;   /* initialised (and so destroyed by ngpt_context_free) */
    bool            serialize;      /* take device_mu: the CUDA backend (tests: any) */
};

/* Holds ctx's device lock (when it serialises; ctx may be NULL) until the end of the enclosing
 * block: `NX_HOLD_DEVICE(enc->ctx);` after the call's NULL checks. */
typedef struct nx_device_hold {
    ngpt_context *ctx;
} nx_device_hold;
nx_device_hold nx_device_acquire(ngpt_context *ctx);
void nx_device_release(nx_device_hold *h);
#define NX_HOLD_DEVICE(ctx) \
    nx_device_hold nx_device_hold_ __attribute__((cleanup(nx_device_release), unused)) = nx_device_acquire(ctx)
/* Tests: make a CPU context's calls take the device lock too (as a CUDA context's do), before
 * any handle of it is in use. */
void nx_context_set_serialize(ngpt_context *ctx, bool on);

#endif
