/* backend.c — the CPU backend: host memory and the op table. The ops themselves live in the
 * other files of this folder (one per op family). */
#include "cpu_ops.h"
#include "onednn.h"  /* nx_cpu_state (be->impl): oneDNN engine + primitive cache (gemm/conv) */

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* Under bl->mu: remove cached block i and return it. */
static void *take(nx_cpu_blocks *bl, int i)
{
    void *p = bl->p[i];
    bl->bytes -= bl->size[i];
    bl->n--;
    memmove(&bl->p[i], &bl->p[i + 1], (size_t)(bl->n - i) * sizeof bl->p[0]);
    memmove(&bl->size[i], &bl->size[i + 1], (size_t)(bl->n - i) * sizeof bl->size[0]);
    return p;
}

/* Under bl->mu: drop the oldest cached blocks into drop[] (freed by the caller, outside the lock)
 * until `nbytes` more fit under the cap, and a slot is free when `slot` is asked for. */
static int make_room(nx_cpu_blocks *bl, size_t nbytes, bool slot, void **drop)
{
    int n_drop = 0;
    while (bl->n > 0 && ((slot && bl->n == NX_CPU_BLOCKS_MAX) || bl->bytes + nbytes > NX_CPU_BLOCKS_CAP))
        drop[n_drop++] = take(bl, 0);
    return n_drop;
}

void *nx_cpu_block_alloc(nx_backend *be, size_t nbytes)
{
    nx_cpu_blocks *bl = be && be->impl ? &((nx_cpu_state *)be->impl)->blocks : NULL;
    if (bl && nbytes >= NX_CPU_BLOCK_MIN) {
        pthread_mutex_lock(&bl->mu);
        int best = -1;
        for (int i = 0; i < bl->n; i++)
            if (bl->size[i] >= nbytes && bl->size[i] / 3 * 2 <= nbytes && (best < 0 || bl->size[i] < bl->size[best]))
                best = i;
        void *p = NULL, *drop[NX_CPU_BLOCKS_MAX];
        int n_drop = 0;
        /* a miss: the cached blocks plus the new one stay within the cap (oldest dropped), so
         * idle cached blocks never add to the peak beside a large fresh allocation (a 0.3-1.1 GiB
         * Winograd scratchpad beside 1 GiB of cache was most of the CPU peak of an SD decode,
         * bench/pipeline_memory) */
        if (best >= 0) p = take(bl, best);
        else n_drop = make_room(bl, nbytes, false, drop);
        pthread_mutex_unlock(&bl->mu);
        for (int i = 0; i < n_drop; i++) nx_free_aligned(drop[i]);
        if (p) return p;
    }
    return nbytes >= NX_CPU_BLOCK_MIN ? nx_cpu_huge_alloc(nbytes) : nx_malloc_aligned(nbytes);
}

void *nx_cpu_huge_alloc(size_t nbytes)
{
    void *p = nx_malloc_aligned(nbytes);
#ifdef MADV_HUGEPAGE
    /* 2 MiB pages where the kernel's THP mode is "madvise": 512x fewer first-touch faults and
     * TLB misses */
    if (p) {
        uintptr_t a = ((uintptr_t)p + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
        uintptr_t e = ((uintptr_t)p + nbytes) & ~(uintptr_t)((2u << 20) - 1);
        if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
    }
#endif
    return p;
}

void nx_cpu_block_free(nx_backend *be, void *p)
{
    if (!p) return;
    nx_cpu_blocks *bl = be && be->impl ? &((nx_cpu_state *)be->impl)->blocks : NULL;
    const size_t size = nx_aligned_size(p);
    if (!bl || size < NX_CPU_BLOCK_MIN || size > NX_CPU_BLOCKS_CAP) {
        nx_free_aligned(p);
        return;
    }
    void *drop[NX_CPU_BLOCKS_MAX];
    pthread_mutex_lock(&bl->mu);
    const int n_drop = make_room(bl, size, true, drop);
    bl->p[bl->n] = p;
    bl->size[bl->n++] = size;
    bl->bytes += size;
    pthread_mutex_unlock(&bl->mu);
    for (int i = 0; i < n_drop; i++) nx_free_aligned(drop[i]);
}

void nx_cpu_trim(nx_backend *be)
{
    nx_cpu_state *st = be ? be->impl : NULL;
    if (!st) return;
    nx_cpu_blocks *bl = &st->blocks;
    pthread_mutex_lock(&bl->mu);
    for (int i = 0; i < bl->n; i++) nx_free_aligned(bl->p[i]);
    bl->n = 0;
    bl->bytes = 0;
    pthread_mutex_unlock(&bl->mu);
    pthread_mutex_lock(&st->mu);  /* oneDNN's shared scratchpad */
    nx_free_aligned(st->scratch);
    st->scratch = NULL;
    st->scratch_cap = 0;
    pthread_mutex_unlock(&st->mu);
}

static ngpt_status cpu_alloc(nx_backend *be, void **out, size_t nbytes)
{
    *out = nx_cpu_block_alloc(be, nbytes);
    if (!*out) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes", nbytes);
    return NGPT_OK;
}

static void cpu_free(nx_backend *be, void *p) { nx_cpu_block_free(be, p); }

static ngpt_status cpu_copy(nx_backend *be, void *dst, const void *src, size_t nbytes)
{
    (void)be;
    if (nbytes) memcpy(dst, src, nbytes);  /* empty tensors may have NULL data */
    return NGPT_OK;
}

static ngpt_status cpu_sync(nx_backend *be)
{
    (void)be;
    return NGPT_OK;
}

static void cpu_destroy(nx_backend *be)
{
    nx_cpu_trim(be);
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
    .trim = nx_cpu_trim,
    .linear = nx_cpu_linear,
    .linear_epi = nx_cpu_linear_epi,
    .linear_pack = nx_cpu_linear_pack,
    .conv_pack = nx_cpu_conv_pack,
    .matmul = nx_cpu_matmul,
    .conv = nx_cpu_conv,
    .conv_transpose1d = nx_cpu_conv_transpose1d,
    .attention = nx_cpu_attention,
    .rms_norm = nx_cpu_rms_norm,
    .rms_norm_add = nx_cpu_rms_norm_add,
    .layer_norm = nx_cpu_layer_norm,
    .group_norm = nx_cpu_group_norm,
    .group_norm_conv = nx_cpu_group_norm_conv,
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
    .set_rows = nx_cpu_set_rows,
    .attention_len = nx_cpu_attention_len,
    .timestep_embedding = nx_cpu_timestep_embedding,
    .sched_step = nx_cpu_sched_step,
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
