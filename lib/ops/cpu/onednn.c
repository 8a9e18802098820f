/* onednn.c — engine/stream, the primitive cache and thread control for the CPU backend. */
#include "onednn.h"

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <omp.h>
#include <string.h>

/* Primitives are small (a few KiB + JIT code); a model uses a few hundred distinct shapes. The
 * cache keeps the most recently used ones and drops the least recently used beyond this. */
#define NX_DNNL_CACHE_MAX 512

const char *nx_dnnl_status_str(dnnl_status_t s)
{
    switch (s) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments";
    case dnnl_unimplemented: return "unimplemented";
    case dnnl_iterator_ends: return "iterator ends";
    case dnnl_runtime_error: return "runtime error";
    case dnnl_not_required: return "not required";
    default: return "unknown error";
    }
}

ngpt_status nx_cpu_state_create(nx_cpu_state **out)
{
    *out = NULL;
    nx_cpu_state *st = nx_calloc(1, sizeof *st);
    if (!st) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->blocks.mu, NULL);
    *out = st;
    return NGPT_OK;
}

static void prim_free(nx_dnnl_prim *p)
{
    for (int i = 0; i < p->n_args; i++) {
        if (p->mem[i]) dnnl_memory_destroy(p->mem[i]);
        if (p->user_mem[i]) dnnl_memory_destroy(p->user_mem[i]);
        if (p->reorder[i]) dnnl_primitive_destroy(p->reorder[i]);
    }
    if (p->scratch) dnnl_memory_destroy(p->scratch);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    nx_free(p);
}

void nx_cpu_state_free(nx_cpu_state *st)
{
    if (!st) return;
    for (nx_dnnl_prim *p = st->cache, *n; p; p = n) {
        n = p->next;
        prim_free(p);
    }
    nx_free_aligned(st->scratch);
    if (st->stream) dnnl_stream_destroy(st->stream);
    if (st->engine) dnnl_engine_destroy(st->engine);
    pthread_mutex_destroy(&st->blocks.mu);
    pthread_mutex_destroy(&st->mu);
    nx_free(st);
}

/* A setting of the backend (one of st's fields, n bytes), stored under st->mu. */
static void set_setting(nx_backend *be, void *field, const void *value, size_t n)
{
    nx_cpu_state *st = be->impl;
    pthread_mutex_lock(&st->mu);
    memcpy(field, value, n);
    pthread_mutex_unlock(&st->mu);
}
#define SET(be, field, v) set_setting((be), &((nx_cpu_state *)(be)->impl)->field, &(v), sizeof(v))

void nx_cpu_set_bf16_compute(nx_backend *be, bool on) { SET(be, bf16_compute, on); }

/* The calling thread's override (nx_cpu_bf16_scope_begin): for `tl_bf16_be` only. */
static _Thread_local const nx_backend *tl_bf16_be;
static _Thread_local bool tl_bf16_on;

/* nx_cpu_set_conv_NAME / nx_cpu_conv_NAME: a convolution path's mode, in st->conv_NAME */
#define CONV_MODE(name)                                                                 \
    void nx_cpu_set_conv_##name(nx_backend *be, nx_conv_winograd_mode mode)            \
    {                                                                                   \
        const int m = (int)mode;                                                        \
        SET(be, conv_##name, m);                                                        \
    }                                                                                   \
    nx_conv_winograd_mode nx_cpu_conv_##name(const nx_backend *be)                      \
    {                                                                                   \
        const nx_cpu_state *st = be->impl;                                              \
        return st ? (nx_conv_winograd_mode)st->conv_##name : NX_CONV_WINOGRAD_AUTO;     \
    }

nx_conv_winograd_mode nx_cpu_conv_mode_from_name(const char *name)
{
    return !strcmp(name, "off") ? NX_CONV_WINOGRAD_OFF : !strcmp(name, "always") ? NX_CONV_WINOGRAD_ALWAYS
                                                                                 : NX_CONV_WINOGRAD_AUTO;
}

CONV_MODE(winograd)
CONV_MODE(direct1d)
CONV_MODE(fft1d)
#undef CONV_MODE

void nx_cpu_set_conv_winograd_stripe(nx_backend *be, size_t bytes) { SET(be, wino_stripe, bytes); }

size_t nx_cpu_conv_winograd_stripe(const nx_backend *be)
{
    const nx_cpu_state *st = be ? be->impl : NULL;
    return st && st->wino_stripe ? st->wino_stripe : (size_t)192 << 20;
}

#undef SET

bool nx_cpu_bf16_compute(const nx_backend *be)
{
    if (be && be == tl_bf16_be) return tl_bf16_on;
    const nx_cpu_state *st = be->impl;
    return st && st->bf16_compute;
}

nx_cpu_bf16_scope nx_cpu_bf16_scope_begin(const nx_backend *be, bool on)
{
    nx_cpu_bf16_scope prev = {tl_bf16_be, tl_bf16_on};
    tl_bf16_be = be;
    tl_bf16_on = on;
    return prev;
}

void nx_cpu_bf16_scope_end(nx_cpu_bf16_scope prev)
{
    tl_bf16_be = prev.be;
    tl_bf16_on = prev.on;
}

ngpt_status nx_dnnl_attr_new(dnnl_primitive_attr_t *attr)
{
    dnnl_status_t r = dnnl_primitive_attr_create(attr);
    if (r == dnnl_success) r = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (r != dnnl_success) {
        if (*attr) dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
        return nx_err(NGPT_ERR_INTERNAL, "oneDNN: primitive attribute: %s", nx_dnnl_status_str(r));
    }
    return NGPT_OK;
}

ngpt_status nx_dnnl_md(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, dnnl_data_type_t dt,
                       const int64_t *strides)
{
    dnnl_dims_t d, s;
    int64_t acc = 1;
    for (int i = ndims - 1; i >= 0; i--) {
        d[i] = dims[i];
        s[i] = strides ? strides[i] : acc;
        acc *= dims[i];
    }
    dnnl_status_t r = dnnl_memory_desc_init_by_strides(md, ndims, d, dt, s);
    if (r != dnnl_success)
        return nx_err(NGPT_ERR_INTERNAL, "oneDNN: memory descriptor (%d dims): %s", ndims, nx_dnnl_status_str(r));
    return NGPT_OK;
}

/* Under st->mu. */
static ngpt_status ensure_engine(nx_cpu_state *st)
{
    if (st->dnnl_ready) return NGPT_OK;
    dnnl_status_t r = dnnl_engine_create(&st->engine, dnnl_cpu, 0);
    if (r != dnnl_success) return nx_err(NGPT_ERR_INTERNAL, "oneDNN: cannot create the CPU engine: %s", nx_dnnl_status_str(r));
    r = dnnl_stream_create(&st->stream, st->engine, dnnl_stream_default_flags);
    if (r != dnnl_success) {
        dnnl_engine_destroy(st->engine);
        st->engine = NULL;
        return nx_err(NGPT_ERR_INTERNAL, "oneDNN: cannot create a stream: %s", nx_dnnl_status_str(r));
    }
    st->dnnl_ready = true;
    return NGPT_OK;
}

/* Under st->mu: build a primitive and its (handle-less) memories. */
/* Weights in the F(4x4, 3x3) Winograd layout from dense F32 [O, C, 3, 3]: winograd.c's transform
 * (oneDNN's reorder for it is single-threaded; see there). Records the layout in p. */
static bool own_wino_weights(nx_dnnl_prim *p, int i, const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *user)
{
    if (p->arg_ids[i] != DNNL_ARG_WEIGHTS || md->format_kind != dnnl_format_kind_wino) return false;
    const dnnl_wino_desc_t *wd = &md->format_desc.wino_desc;
    if (wd->wino_format != dnnl_wino_wei_OBaaIBOIio || wd->r != 3 || wd->alpha != 6 || md->data_type != dnnl_f32)
        return false;
    if (user->ndims != 4 || user->data_type != dnnl_f32 || user->format_kind != dnnl_blocked ||
        user->dims[2] != 3 || user->dims[3] != 3)
        return false;
    const dnnl_dims_t *st = &user->format_desc.blocking.strides;
    if (user->format_desc.blocking.inner_nblks != 0 || (*st)[3] != 1 || (*st)[2] != 3 || (*st)[1] != 9 ||
        (*st)[0] != 9 * user->dims[1])
        return false;
    nx_wino_layout l = {wd->ic, wd->oc, wd->ic_block, wd->oc_block, wd->ic2_block, wd->oc2_block};
    if (!nx_cpu_wino_layout_ok(&l) || l.oc < user->dims[0] || l.ic < user->dims[1] ||
        p->buf_size[i] < (size_t)(36 * l.oc * l.ic) * sizeof(float))
        return false;
    p->own_wino[i] = true;
    p->wino[i] = l;
    p->wino_oc[i] = user->dims[0];
    p->wino_ic[i] = user->dims[1];
    return true;
}

/* Under st->mu: for a blocked primitive, the reorders between user_mds and its own layouts. */
static dnnl_status_t build_reorders(nx_cpu_state *st, nx_dnnl_prim *p, dnnl_primitive_desc_t pd,
                                    const dnnl_memory_desc_t *user_mds)
{
    for (int i = 0; i < p->n_args; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, p->arg_ids[i]);
        if (!md) return dnnl_runtime_error;
        if (dnnl_memory_desc_equal(md, &user_mds[i])) continue;
        p->buf_size[i] = dnnl_memory_desc_get_size(md);
        if (own_wino_weights(p, i, md, &user_mds[i])) continue;
        const bool out = p->arg_ids[i] == DNNL_ARG_DST;
        dnnl_primitive_desc_t rpd = NULL;
        dnnl_status_t r = out ? dnnl_reorder_primitive_desc_create(&rpd, md, st->engine, &user_mds[i], st->engine, NULL)
                              : dnnl_reorder_primitive_desc_create(&rpd, &user_mds[i], st->engine, md, st->engine, NULL);
        if (r == dnnl_success) r = dnnl_primitive_create(&p->reorder[i], rpd);
        if (rpd) dnnl_primitive_desc_destroy(rpd);
        if (r == dnnl_success) r = dnnl_memory_create(&p->user_mem[i], &user_mds[i], st->engine, DNNL_MEMORY_NONE);
        if (r != dnnl_success) return r;
    }
    return dnnl_success;
}

/* Under st->mu: build a primitive (through build, or build_blocked with its reorders) and its
 * (handle-less) memories. */
static ngpt_status build_prim(nx_cpu_state *st, const nx_dnnl_key *key, nx_dnnl_build_fn build,
                              nx_dnnl_build_blocked_fn build_blocked, void *arg, const char *what, nx_dnnl_prim **out)
{
    nx_dnnl_prim *p = nx_calloc(1, sizeof *p);
    if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    p->key = *key;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_desc_t user_mds[NX_DNNL_MAX_ARGS];
    ngpt_status s = build ? build(st->engine, arg, &pd, p->arg_ids, &p->n_args)
                          : build_blocked(st->engine, arg, &pd, p->arg_ids, user_mds, &p->n_args);
    if (s != NGPT_OK) {
        nx_free(p);
        return nx_err_wrap(s, "%s: ", what);
    }
    dnnl_status_t r = dnnl_primitive_create(&p->prim, pd);
    if (r == dnnl_success) {
        for (int i = 0; i < p->n_args; i++) {
            const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, p->arg_ids[i]);
            r = md ? dnnl_memory_create(&p->mem[i], md, st->engine, DNNL_MEMORY_NONE) : dnnl_runtime_error;
            if (r != dnnl_success) break;
        }
    }
    if (r == dnnl_success && build_blocked) r = build_reorders(st, p, pd, user_mds);
    if (r == dnnl_success) {
        const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        if (smd && (p->scratch_size = dnnl_memory_desc_get_size(smd)) > 0)
            r = dnnl_memory_create(&p->scratch, smd, st->engine, DNNL_MEMORY_NONE);
    }
    dnnl_primitive_desc_destroy(pd);
    if (r != dnnl_success) {
        prim_free(p);
        return nx_err(NGPT_ERR_INTERNAL, "%s: oneDNN cannot create the primitive: %s", what, nx_dnnl_status_str(r));
    }
    *out = p;
    return NGPT_OK;
}

/* Under st->mu: the cached primitive for key (moved to the front), or a new one. */
static ngpt_status find_or_build(nx_cpu_state *st, const nx_dnnl_key *key, nx_dnnl_build_fn build,
                                 nx_dnnl_build_blocked_fn build_blocked, void *arg, const char *what,
                                 nx_dnnl_prim **out)
{
    ngpt_status s = ensure_engine(st);
    if (s != NGPT_OK) return s;
    nx_dnnl_prim *p = NULL, *prev = NULL, *before_last = NULL;
    for (nx_dnnl_prim *c = st->cache; c; prev = c, c = c->next) {
        if (memcmp(&c->key, key, sizeof *key) == 0) {
            p = c;
            if (prev) { /* move to front */
                prev->next = c->next;
                c->next = st->cache;
                st->cache = c;
            }
            break;
        }
        if (c->next && !c->next->next) before_last = c;
    }
    if (!p) {
        s = build_prim(st, key, build, build_blocked, arg, what, &p);
        if (s != NGPT_OK) return s;
        p->next = st->cache;
        st->cache = p;
        if (++st->n_cached > NX_DNNL_CACHE_MAX && before_last) {
            prim_free(before_last->next);
            before_last->next = NULL;
            st->n_cached--;
        }
    }
    *out = p;
    return NGPT_OK;
}

/* Under st->mu: run one primitive on the stream and wait. */
static dnnl_status_t exec(nx_cpu_state *st, dnnl_primitive_t prim, int n_args, const dnnl_exec_arg_t *args)
{
    dnnl_status_t r = dnnl_primitive_execute(prim, st->stream, n_args, args);
    return r == dnnl_success ? dnnl_stream_wait(st->stream) : r;
}

/* Under st->mu: run p (and its reorders) on handles, with buffers for the blocked args. */
static ngpt_status run_prim(nx_backend *be, nx_cpu_state *st, nx_dnnl_prim *p, void *const *handles, const char *what)
{
    void *buf[NX_DNNL_MAX_ARGS] = {0}, *small_scratch = NULL;
    dnnl_exec_arg_t args[NX_DNNL_MAX_ARGS + 1];
    int n_args = p->n_args;
    ngpt_status s = NGPT_OK;
    for (int i = 0; i < p->n_args; i++) {
        void *h = handles[i];
        if (p->reorder[i] || p->own_wino[i]) {
            buf[i] = nx_cpu_block_alloc(be, p->buf_size[i]);
            if (!buf[i]) {
                s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes for a blocked layout", what,
                           p->buf_size[i]);
                goto done;
            }
            if (p->reorder[i]) dnnl_memory_set_data_handle_v2(p->user_mem[i], handles[i], st->stream);
            else nx_cpu_wino_weights_4x3(be, buf[i], &p->wino[i], handles[i], p->wino_oc[i], p->wino_ic[i]);
            h = buf[i];
        }
        dnnl_memory_set_data_handle_v2(p->mem[i], h, st->stream);
        args[i].arg = p->arg_ids[i];
        args[i].memory = p->mem[i];
    }
    if (p->scratch) {
        /* small scratchpads per run; large ones share the backend's buffer (see onednn.h) */
        const bool shared = p->scratch_size >= NX_CPU_BLOCK_MIN;
        if (shared && p->scratch_size > st->scratch_cap) {
            nx_free_aligned(st->scratch);
            st->scratch_cap = 0;
            st->scratch = nx_cpu_huge_alloc(p->scratch_size);
            if (st->scratch) st->scratch_cap = p->scratch_size;
        } else if (!shared) {
            small_scratch = nx_malloc_aligned(p->scratch_size);
        }
        void *sp = shared ? st->scratch : small_scratch;
        if (!sp) {
            s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate the %zu-byte oneDNN scratchpad", what,
                       p->scratch_size);
            goto done;
        }
        dnnl_memory_set_data_handle_v2(p->scratch, sp, st->stream);
        args[n_args].arg = DNNL_ARG_SCRATCHPAD;
        args[n_args].memory = p->scratch;
        n_args++;
    }
    /* OpenMP-built oneDNN: the team size of its parallel regions follows this thread's ICV. Its
     * team needs the cores that the pool's workers would otherwise poll on. */
    nx_pool_park(be->pool);
    omp_set_num_threads(nx_pool_threads(be->pool));
    dnnl_status_t r = dnnl_success;
    for (int i = 0; i < p->n_args && r == dnnl_success; i++)
        if (p->reorder[i] && p->arg_ids[i] != DNNL_ARG_DST) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, p->user_mem[i]}, {DNNL_ARG_TO, p->mem[i]}};
            r = exec(st, p->reorder[i], 2, ra);
        }
    if (r == dnnl_success) r = exec(st, p->prim, n_args, args);
    for (int i = 0; i < p->n_args && r == dnnl_success; i++)
        if (p->reorder[i] && p->arg_ids[i] == DNNL_ARG_DST) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, p->mem[i]}, {DNNL_ARG_TO, p->user_mem[i]}};
            r = exec(st, p->reorder[i], 2, ra);
        }
    if (r != dnnl_success) s = nx_err(NGPT_ERR_INTERNAL, "%s: oneDNN execution failed: %s", what, nx_dnnl_status_str(r));
done:
    for (int i = 0; i < p->n_args; i++) nx_cpu_block_free(be, buf[i]);
    nx_free_aligned(small_scratch);
    return s;
}

static ngpt_status run_locked(nx_backend *be, const nx_dnnl_key *key, nx_dnnl_build_fn build,
                              nx_dnnl_build_blocked_fn build_blocked, void *arg, void *const *handles, const char *what)
{
    nx_cpu_state *st = be->impl;
    pthread_mutex_lock(&st->mu);
    nx_dnnl_prim *p = NULL;
    ngpt_status s = find_or_build(st, key, build, build_blocked, arg, what, &p);
    if (s == NGPT_OK) s = run_prim(be, st, p, handles, what);
    pthread_mutex_unlock(&st->mu);
    return s;
}

ngpt_status nx_dnnl_run(nx_backend *be, const nx_dnnl_key *key, nx_dnnl_build_fn build, void *arg,
                        void *const *handles, const char *what)
{
    return run_locked(be, key, build, NULL, arg, handles, what);
}

ngpt_status nx_dnnl_run_blocked(nx_backend *be, const nx_dnnl_key *key, nx_dnnl_build_blocked_fn build, void *arg,
                                void *const *handles, const char *what)
{
    return run_locked(be, key, NULL, build, arg, handles, what);
}

ngpt_status nx_dnnl_query_md(nx_backend *be, nx_dnnl_build_blocked_fn build, void *arg, int arg_id,
                             dnnl_memory_desc_t *out, const char *what)
{
    nx_cpu_state *st = be->impl;
    pthread_mutex_lock(&st->mu);
    ngpt_status s = ensure_engine(st);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_desc_t user_mds[NX_DNNL_MAX_ARGS];
    int ids[NX_DNNL_MAX_ARGS], n = 0;
    if (s == NGPT_OK) s = build(st->engine, arg, &pd, ids, user_mds, &n);
    if (s == NGPT_OK) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg_id);
        if (md) *out = *md;
        else s = nx_err(NGPT_ERR_INTERNAL, "%s: oneDNN has no memory descriptor for arg %d", what, arg_id);
        dnnl_primitive_desc_destroy(pd);
    }
    pthread_mutex_unlock(&st->mu);
    return s;
}

ngpt_status nx_dnnl_reorder(nx_backend *be, const dnnl_memory_desc_t *src_md, const void *src,
                            const dnnl_memory_desc_t *dst_md, void *dst, const char *what)
{
    nx_cpu_state *st = be->impl;
    pthread_mutex_lock(&st->mu);
    ngpt_status s = ensure_engine(st);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t ms = NULL, md = NULL;
    dnnl_status_t r = dnnl_success;
    if (s == NGPT_OK) r = dnnl_reorder_primitive_desc_create(&pd, src_md, st->engine, dst_md, st->engine, NULL);
    if (s == NGPT_OK && r == dnnl_success) r = dnnl_primitive_create(&prim, pd);
    if (s == NGPT_OK && r == dnnl_success) r = dnnl_memory_create(&ms, src_md, st->engine, (void *)src);
    if (s == NGPT_OK && r == dnnl_success) r = dnnl_memory_create(&md, dst_md, st->engine, dst);
    if (s == NGPT_OK && r == dnnl_success) {
        nx_pool_park(be->pool);
        omp_set_num_threads(nx_pool_threads(be->pool));
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
        r = exec(st, prim, 2, args);
    }
    if (s == NGPT_OK && r != dnnl_success) s = nx_err(NGPT_ERR_INTERNAL, "%s: oneDNN reorder: %s", what, nx_dnnl_status_str(r));
    if (ms) dnnl_memory_destroy(ms);
    if (md) dnnl_memory_destroy(md);
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    pthread_mutex_unlock(&st->mu);
    return s;
}

int nx_dnnl_tag_of(const dnnl_memory_desc_t *md)
{
    for (int t = 1; t < (int)dnnl_format_tag_last; t++) {
        dnnl_memory_desc_t m;
        if (dnnl_memory_desc_init_by_tag(&m, md->ndims, md->dims, md->data_type, (dnnl_format_tag_t)t) != dnnl_success)
            continue;
        if (dnnl_memory_desc_equal(&m, md)) return t;
    }
    return 0;
}
