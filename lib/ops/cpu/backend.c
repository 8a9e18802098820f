/* backend.c — the CPU backend: host memory and the op table. The ops themselves live in the
 * other files of this folder (one per op family). */
#include "cpu_ops.h"
#include "onednn.h"  /* nx_cpu_state (be->impl): oneDNN engine + primitive cache (gemm/conv) */

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <stdio.h>
#include <string.h>

static ngpt_status cpu_alloc(nx_backend *be, void **out, size_t nbytes)
{
    (void)be;
    *out = nx_malloc_aligned(nbytes);
    if (!*out) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes", nbytes);
    return NGPT_OK;
}

static void cpu_free(nx_backend *be, void *p)
{
    (void)be;
    nx_free_aligned(p);
}

static ngpt_status cpu_copy(nx_backend *be, void *dst, const void *src, size_t nbytes)
{
    (void)be;
    memcpy(dst, src, nbytes);
    return NGPT_OK;
}

static ngpt_status cpu_sync(nx_backend *be)
{
    (void)be;
    return NGPT_OK;
}

static void cpu_destroy(nx_backend *be)
{
    nx_cpu_state_free(be->impl);  /* onednn.c */
    nx_free(be);
}

static const nx_backend_vtbl k_cpu_vtbl = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .sync = cpu_sync,
    .destroy = cpu_destroy,
    .linear = nx_cpu_linear,
    .matmul = nx_cpu_matmul,
    .conv = nx_cpu_conv,
    .conv_transpose1d = nx_cpu_conv_transpose1d,
    .attention = nx_cpu_attention,
    .rms_norm = nx_cpu_rms_norm,
    .layer_norm = nx_cpu_layer_norm,
    .group_norm = nx_cpu_group_norm,
    .rope = nx_cpu_rope,
    .softmax = nx_cpu_softmax,
    .unary = nx_cpu_unary,
    .binary = nx_cpu_binary,
    .scale = nx_cpu_scale,
    .glu = nx_cpu_glu,
    .get_rows = nx_cpu_get_rows,
    .concat = nx_cpu_concat,
    .slice = nx_cpu_slice,
    .permute = nx_cpu_permute,
    .cast = nx_cpu_cast,
    .resize = nx_cpu_resize,
    .argmax = nx_cpu_argmax,
};

/* The CPU model from /proc/cpuinfo ("model name"), or "cpu". */
static void cpu_model_name(char *buf, size_t cap)
{
    snprintf(buf, cap, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t') c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, cap, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

ngpt_status nx_cpu_backend_create(nx_backend **out, nx_pool *pool, const nx_logger *log)
{
    *out = NULL;
    nx_backend *be = nx_calloc(1, sizeof *be);
    if (!be) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    be->v = &k_cpu_vtbl;
    be->kind = NGPT_BACKEND_CPU;
    be->act_dtypes = NX_DTYPE_BIT(NGPT_DTYPE_F32);
    be->pool = pool;
    /* ---- private state (onednn.c): oneDNN engine, primitive cache, bf16 option ---- */
    ngpt_status st = nx_cpu_state_create((nx_cpu_state **)&be->impl);
    if (st != NGPT_OK) {
        nx_free(be);
        return st;
    }
    /* ---- */
    if (log) be->log = *log;
    char model[100];
    cpu_model_name(model, sizeof model);
    snprintf(be->device_name, sizeof be->device_name, "%s (%d threads)", model, nx_pool_threads(pool));
    *out = be;
    return NGPT_OK;
}
