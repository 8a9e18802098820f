/* onednn.h — the CPU backend's private state and its oneDNN glue: one engine + stream per
 * backend, and a cache of primitives keyed by (op, shapes, dtypes, flags).
 *
 * Debian's libdnnl 2.6 is built with the OpenMP runtime (DNNL_CPU_RUNTIME == OMP, ldd shows
 * libgomp), so oneDNN does not use our nx_pool: before every execute we call
 * omp_set_num_threads(nx_pool_threads(be->pool)) on the calling thread, which is what makes
 * oneDNN honour the context's thread count. Executions on one backend are serialised by a mutex
 * (oneDNN already uses every thread we allow it). */
#ifndef NX_CPU_ONEDNN_H
#define NX_CPU_ONEDNN_H

#include "cpu_ops.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>

/* Cache key: an op tag and up to NX_DNNL_KEY_LEN integers (unused entries zero). */
#define NX_DNNL_KEY_LEN 48
typedef struct nx_dnnl_key {
    int64_t v[NX_DNNL_KEY_LEN];
} nx_dnnl_key;

enum { NX_DNNL_MAX_ARGS = 6 };

typedef struct nx_dnnl_prim {
    nx_dnnl_key          key;
    dnnl_primitive_t     prim;
    int                  n_args;
    int                  arg_ids[NX_DNNL_MAX_ARGS];
    dnnl_memory_t        mem[NX_DNNL_MAX_ARGS];
    dnnl_memory_t        scratch;  /* the scratchpad's memory object (NULL when it needs none), */
    size_t               scratch_size; /* over the backend's shared buffer */
    /* nx_dnnl_run_blocked only: per arg, the reorder between the caller's plain layout and the
     * primitive's own (NULL where they agree), the caller-side memory and the size of the
     * primitive-side buffer, allocated per call. */
    dnnl_primitive_t     reorder[NX_DNNL_MAX_ARGS];
    dnnl_memory_t        user_mem[NX_DNNL_MAX_ARGS];
    size_t               buf_size[NX_DNNL_MAX_ARGS];
    /* ... and, for F(4x4, 3x3) Winograd weights, our transform instead of oneDNN's reorder
     * (winograd.c): the layout and the kernel's [O, C] */
    bool                 own_wino[NX_DNNL_MAX_ARGS];
    nx_wino_layout       wino[NX_DNNL_MAX_ARGS];
    int64_t              wino_oc[NX_DNNL_MAX_ARGS], wino_ic[NX_DNNL_MAX_ARGS];
    struct nx_dnnl_prim *next;
} nx_dnnl_prim;

/* Freed large blocks kept for reuse (backend.c): a fresh multi-MiB block from malloc is a new
 * mapping whose every page faults on first touch (the SD VAE's 134-268 MiB activations spent
 * ~40 % of a copy in page faults), and the same sizes come back every layer and every step. */
enum { NX_CPU_BLOCKS_MAX = 32 }; /* 16 made the vocoder's DFT convs (5 buffers each) miss 13 times a forward */
#define NX_CPU_BLOCK_MIN   ((size_t)4 << 20)
#define NX_CPU_BLOCKS_CAP  ((size_t)512 << 20) /* 1 GiB held 0.27 GiB more at the real-width CPU turn's peak and was no faster (SD VAE 512², A/B) */
typedef struct nx_cpu_blocks {
    pthread_mutex_t mu;           /* its own lock: st->mu is held through whole oneDNN executions */
    void           *p[NX_CPU_BLOCKS_MAX];  /* oldest first */
    size_t          size[NX_CPU_BLOCKS_MAX];
    int             n;
    size_t          bytes;
} nx_cpu_blocks;

/* The CPU backend's be->impl. */
typedef struct nx_cpu_state {
    nx_cpu_blocks   blocks;
    pthread_mutex_t mu;           /* guards everything below and oneDNN executions */
    bool            dnnl_ready;
    dnnl_engine_t   engine;
    dnnl_stream_t   stream;
    nx_dnnl_prim   *cache;        /* most recently used first */
    int             n_cached;
    void           *scratch;      /* the scratchpad every primitive runs with (one runs at a time, */
    size_t          scratch_cap;  /* under mu): grown to the largest asked for, freed by nx_cpu_trim */
    bool            bf16_compute; /* nx_cpu_set_bf16_compute */
    int             conv_winograd; /* nx_cpu_set_conv_winograd (nx_conv_winograd_mode) */
    int             conv_direct1d; /* nx_cpu_set_conv_direct1d (nx_conv_winograd_mode) */
    int             conv_fft1d;    /* nx_cpu_set_conv_fft1d (nx_conv_winograd_mode) */
    size_t          wino_stripe;   /* nx_cpu_set_conv_winograd_stripe (0: the default) */
} nx_cpu_state;

ngpt_status nx_cpu_state_create(nx_cpu_state **out);
void        nx_cpu_state_free(nx_cpu_state *st);

/* Builds an op descriptor into a primitive descriptor (called once per new key, under the
 * lock, with the engine). Sets *pd and the exec args (DNNL_ARG_*) the primitive takes, in the
 * order nx_dnnl_run's `handles` will give them. */
typedef ngpt_status (*nx_dnnl_build_fn)(dnnl_engine_t eng, void *arg, dnnl_primitive_desc_t *pd,
                                        int *arg_ids, int *n_args);

/* Find or build the primitive for `key`, point its memories at handles[i] (same order as the
 * build's arg_ids), run it with the backend's thread count and wait. `what` names the op in
 * error messages. */
ngpt_status nx_dnnl_run(nx_backend *be, const nx_dnnl_key *key, nx_dnnl_build_fn build, void *arg,
                        void *const *handles, const char *what);

/* Like nx_dnnl_build_fn, for a primitive built with format_tag_any (oneDNN picks blocked
 * layouts): also sets user_mds[i], the caller's layout of each arg. */
typedef ngpt_status (*nx_dnnl_build_blocked_fn)(dnnl_engine_t eng, void *arg, dnnl_primitive_desc_t *pd,
                                                int *arg_ids, dnnl_memory_desc_t *user_mds, int *n_args);

/* nx_dnnl_run for a primitive whose layouts differ from the caller's: every arg whose layout
 * differs goes through a buffer in the primitive's layout (allocated for the call) and a cached
 * reorder — before the primitive for inputs, after it for DNNL_ARG_DST. Pays off only where the
 * primitive's gain exceeds the reorders (see conv.c's Winograd rule). */
ngpt_status nx_dnnl_run_blocked(nx_backend *be, const nx_dnnl_key *key, nx_dnnl_build_blocked_fn build, void *arg,
                                void *const *handles, const char *what);

/* The layout (memory descriptor) that the primitive `build` makes would take for arg_id (a
 * DNNL_ARG_*), without running it: what packing a weight ahead of its calls needs. */
ngpt_status nx_dnnl_query_md(nx_backend *be, nx_dnnl_build_blocked_fn build, void *arg, int arg_id,
                             dnnl_memory_desc_t *out, const char *what);

/* src (src_md) -> dst (dst_md) by a oneDNN reorder built for the call (load-time packing and the
 * rare unpacking: not cached). */
ngpt_status nx_dnnl_reorder(nx_backend *be, const dnnl_memory_desc_t *src_md, const void *src,
                            const dnnl_memory_desc_t *dst_md, void *dst, const char *what);

/* The format tag that describes md exactly (dims and data type as md's), or 0 when none does. */
int nx_dnnl_tag_of(const dnnl_memory_desc_t *md);

/* A primitive attribute with a user-managed scratchpad, passed at execution: oneDNN's default
 * library-managed scratchpad is per thread and breaks when a primitive created on one thread
 * executes on another (seen as a crash in conv: handles sharing a context may run on different
 * threads). All primitives share one scratchpad (nx_cpu_state.scratch), the size of the largest:
 * Winograd convolutions at 512² need 0.3-1.1 GiB each, and a cache of primitives that each owned
 * theirs held ~4 GiB after an SD decode (bench/pipeline_memory); allocating it per run instead
 * made that decode 40 % slower (page faults). Destroy with dnnl_primitive_attr_destroy. */
ngpt_status nx_dnnl_attr_new(dnnl_primitive_attr_t *attr);

/* A memory descriptor with explicit strides (elements), or dense row-major when strides is
 * NULL. */
ngpt_status nx_dnnl_md(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, dnnl_data_type_t dt,
                       const int64_t *strides);

const char *nx_dnnl_status_str(dnnl_status_t s);

#endif
