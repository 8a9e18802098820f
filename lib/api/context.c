/* context.c — ngpt_context: picks the backend (AUTO: CUDA when usable, else CPU with a note),
 * starts the CPU thread pool, and owns the logger. Also the version and tensor ABI helpers. */
#include "context.h"

#include "../core/alloc.h"
#include "../core/dtype.h"
#include "../core/error.h"
#include "../core/params.h"

#include <stdio.h>
#include <string.h>

NGPT_API const char *ngpt_version(void) { return NGPT_VERSION_STRING; }
NGPT_API int32_t ngpt_version_number(void) { return NGPT_VERSION_NUMBER; }
NGPT_API int32_t ngpt_abi_version(void) { return NGPT_ABI_VERSION; }

NGPT_API int32_t ngpt_has_cuda_build(void)
{
#ifdef NGPT_WITH_CUDA
    return 1;
#else
    return 0;
#endif
}

static const ngpt_context_params k_defaults = {
    .struct_size = sizeof(ngpt_context_params),
    .device = NGPT_DEVICE_AUTO,
    .device_index = 0,
    .n_threads = 0,
    .log_level = NGPT_LOG_WARN,
};

NGPT_API ngpt_status ngpt_context_params_default(ngpt_context_params *p, size_t struct_size)
{
    return nx_params_default(p, struct_size, &k_defaults, sizeof k_defaults, "ngpt_context_params_default");
}

NGPT_API ngpt_status ngpt_context_create(ngpt_context **out, const ngpt_context_params *params)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_context_create: out is NULL");
    *out = NULL;
    ngpt_context_params p;
    NX_TRY(nx_params_read(&p, params, &k_defaults, sizeof p, "ngpt_context_create"));
    if (p.device != NGPT_DEVICE_AUTO && p.device != NGPT_DEVICE_CPU && p.device != NGPT_DEVICE_CUDA)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_context_create: unknown device kind %d", (int)p.device);
    if (p.n_threads < 0 || p.n_threads > 1024)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_context_create: n_threads %d out of range [0, 1024]", p.n_threads);
    if ((unsigned)p.log_level > NGPT_LOG_NONE)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_context_create: unknown log level %d", (int)p.log_level);
    if (p.device_index < 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_context_create: device_index %d < 0", p.device_index);

    ngpt_context *ctx = nx_calloc(1, sizeof *ctx);
    if (!ctx) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_context_create: out of memory");
    ctx->params = p;
    ctx->log.level = p.log_level;
    ctx->log.fn = p.log_callback;
    ctx->log.user = p.log_user_data;
    if (p.n_threads == 0) ctx->params.n_threads = nx_cpu_count();

    ngpt_status st = nx_pool_create(&ctx->pool, ctx->params.n_threads);
    if (st == NGPT_OK) st = nx_cpu_backend_create(&ctx->cpu, ctx->pool, &ctx->log);
    if (st != NGPT_OK) {
        ngpt_context_free(ctx);
        return nx_err_wrap(st, "ngpt_context_create: ");
    }
    ctx->be = ctx->cpu;

    if (p.device != NGPT_DEVICE_CPU) {
        nx_backend *cuda = NULL;
        st = nx_cuda_backend_create(&cuda, p.device_index, ctx->pool, &ctx->log);
        if (st == NGPT_OK) {
            ctx->be = cuda;
        } else if (p.device == NGPT_DEVICE_CUDA) {
            ngpt_context_free(ctx);
            return nx_err_wrap(st == NGPT_ERR_UNSUPPORTED ? NGPT_ERR_UNSUPPORTED : NGPT_ERR_DEVICE,
                               "ngpt_context_create: CUDA was requested but is not usable: ");
        } else {
            snprintf(ctx->backend_note, sizeof ctx->backend_note, "using the CPU: %s", ngpt_last_error());
            nx_log(&ctx->log, NGPT_LOG_INFO, "%s", ctx->backend_note);
            ngpt_clear_error();
        }
    }
    ctx->be->mem_limit = p.memory_limit;
    ctx->cpu->mem_limit = p.memory_limit;
    pthread_mutexattr_t ma;
    bool ok = pthread_mutexattr_init(&ma) == 0;
    if (ok) {
        ok = pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE) == 0 && pthread_mutex_init(&ctx->device_mu, &ma) == 0;
        pthread_mutexattr_destroy(&ma);
    }
    if (!ok) {
        ngpt_context_free(ctx);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_context_create: cannot create the device lock");
    }
    ctx->device_mu_ok = true;
    ctx->serialize = ctx->be != ctx->cpu;
    *out = ctx;
    return NGPT_OK;
}

nx_device_hold nx_device_acquire(ngpt_context *ctx)
{
    nx_device_hold h = {ctx && ctx->serialize ? ctx : NULL};
    if (h.ctx) {
        pthread_mutex_lock(&h.ctx->device_mu);
        if (h.ctx->be != h.ctx->cpu) nx_cuda_make_current(h.ctx->be); /* device_index > 0 from another thread */
    }
    return h;
}

void nx_device_release(nx_device_hold *h)
{
    if (h->ctx) pthread_mutex_unlock(&h->ctx->device_mu);
    h->ctx = NULL;
}

void nx_context_set_serialize(ngpt_context *ctx, bool on)
{
    if (ctx) ctx->serialize = on;
}

NGPT_API void ngpt_context_free(ngpt_context *ctx)
{
    if (!ctx) return;
    if (ctx->be && ctx->be != ctx->cpu) nx_backend_free(ctx->be);
    nx_backend_free(ctx->cpu);
    nx_pool_free(ctx->pool);
    if (ctx->device_mu_ok) pthread_mutex_destroy(&ctx->device_mu);
    nx_free(ctx);
}

NGPT_API ngpt_backend ngpt_context_backend(const ngpt_context *ctx)
{
    return ctx && ctx->be ? ctx->be->kind : NGPT_BACKEND_CPU;
}

NGPT_API const char *ngpt_backend_name(ngpt_backend b)
{
    switch (b) {
    case NGPT_BACKEND_CPU: return "cpu";
    case NGPT_BACKEND_CUDA: return "cuda";
    }
    return "unknown";
}

NGPT_API const char *ngpt_context_device_name(const ngpt_context *ctx)
{
    return ctx && ctx->be ? ctx->be->device_name : "";
}

NGPT_API const char *ngpt_context_backend_note(const ngpt_context *ctx)
{
    return ctx ? ctx->backend_note : "";
}

NGPT_API int32_t ngpt_context_n_threads(const ngpt_context *ctx)
{
    return ctx ? ctx->params.n_threads : 0;
}

NGPT_API uint64_t ngpt_context_memory_used(const ngpt_context *ctx)
{
    if (!ctx) return 0;
    /* atomic loads: other threads' handles allocate on this context meanwhile */
    uint64_t n = __atomic_load_n(&ctx->cpu->mem_used, __ATOMIC_RELAXED);
    if (ctx->be != ctx->cpu) n += __atomic_load_n(&ctx->be->mem_used, __ATOMIC_RELAXED);
    return n;
}

NGPT_API uint64_t ngpt_context_memory_peak(const ngpt_context *ctx)
{
    if (!ctx) return 0;
    uint64_t n = __atomic_load_n(&ctx->cpu->mem_peak, __ATOMIC_RELAXED);
    if (ctx->be != ctx->cpu) n += __atomic_load_n(&ctx->be->mem_peak, __ATOMIC_RELAXED);
    return n;
}
