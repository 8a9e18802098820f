/* backend.h — what a backend implements behind ops.h.
 *
 * lib/ops/ops.c validates every call (shapes, dtypes, residency) and only then calls these
 * functions, so a backend may assume: tensors are contiguous, shapes agree exactly as ops.h
 * states, every tensor lives in this backend's memory, dtypes are ones it declared in
 * `supports` (see below). A backend returns NGPT_OK or an nx_err status (e.g. a CUDA error).
 */
#ifndef NX_BACKEND_H
#define NX_BACKEND_H

#include "ops.h"
#include "../core/log.h"
#include "../core/pool.h"

typedef struct nx_graph nx_graph;  /* a recorded op sequence (backend-private) */

typedef struct nx_backend_vtbl {
    const char *name;  /* "cpu", "cuda" */

    /* memory */
    ngpt_status (*alloc)(nx_backend *be, void **out, size_t nbytes);
    void        (*free)(nx_backend *be, void *p);
    ngpt_status (*upload)(nx_backend *be, void *dst, const void *host, size_t nbytes);
    ngpt_status (*download)(nx_backend *be, void *host, const void *src, size_t nbytes);
    ngpt_status (*sync)(nx_backend *be);
    void        (*destroy)(nx_backend *be);
    /* optional: hand memory the backend keeps for reuse back to the system (nx_backend_trim) */
    void        (*trim)(nx_backend *be);
    /* optional: graph capture (nx_backend_capture_begin and the rest, below) */
    ngpt_status (*capture_begin)(nx_backend *be);
    ngpt_status (*capture_end)(nx_backend *be, nx_graph **out);
    ngpt_status (*graph_launch)(nx_backend *be, nx_graph *g);
    void        (*graph_free)(nx_backend *be, nx_graph *g);

    /* ops: same arguments as the nx_op_* of the same name, already validated */
    ngpt_status (*linear)(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b);
    /* optional: nx_op_linear_epi (without it: linear, then the epilogue's unary and binary ops) */
    ngpt_status (*linear_epi)(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b, const nx_linear_epi *e);
    /* optional: nx_op_linear_pack (without it: a no-op) */
    ngpt_status (*linear_pack)(nx_backend *, nx_tensor *w);
    ngpt_status (*matmul)(nx_backend *, nx_tensor *c, const nx_tensor *a, const nx_tensor *b,
                          bool trans_a, bool trans_b, float alpha, float beta);
    ngpt_status (*conv)(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                        const nx_tensor *b, const nx_conv_params *p);
    /* optional: nx_op_conv_pack (without it: a no-op) */
    ngpt_status (*conv_pack)(nx_backend *, nx_tensor *w, const nx_conv_params *p);
    ngpt_status (*conv_transpose1d)(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                                    const nx_tensor *b, int stride, int pad, int output_padding,
                                    int dilation, int groups);
    ngpt_status (*attention)(nx_backend *, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                             const nx_tensor *v, const nx_tensor *mask, float scale, bool causal);
    ngpt_status (*rms_norm)(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, float eps);
    /* optional: nx_op_rms_norm_add (without it: binary ADD, then rms_norm) */
    ngpt_status (*rms_norm_add)(nx_backend *, nx_tensor *y, nx_tensor *x, const nx_tensor *r, const nx_tensor *w,
                                float eps);
    ngpt_status (*layer_norm)(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b, float eps);
    ngpt_status (*group_norm)(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b, int groups, float eps, unsigned flags); /* NX_GN_* */
    /* optional: nx_op_group_norm_conv (without it: group_norm into a temporary, then conv) */
    ngpt_status (*group_norm_conv)(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *gw,
                                   const nx_tensor *gb, int groups, float eps, unsigned gn_flags, const nx_tensor *w,
                                   const nx_tensor *b, const nx_conv_params *p);
    ngpt_status (*rope)(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *pos,
                        int n_rot, float theta, nx_rope_mode mode);
    ngpt_status (*softmax)(nx_backend *, nx_tensor *y, const nx_tensor *x, float scale);
    ngpt_status (*unary)(nx_backend *, nx_tensor *y, const nx_tensor *x, nx_unary op, float param);
    ngpt_status (*binary)(nx_backend *, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, nx_binary op);
    ngpt_status (*scale)(nx_backend *, nx_tensor *y, const nx_tensor *x, float alpha, float beta);
    ngpt_status (*glu)(nx_backend *, nx_tensor *y, const nx_tensor *x, nx_unary act, bool gate_first);
    ngpt_status (*get_rows)(nx_backend *, nx_tensor *y, const nx_tensor *table, const nx_tensor *ids);
    ngpt_status (*concat)(nx_backend *, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, int axis);
    ngpt_status (*slice)(nx_backend *, nx_tensor *y, const nx_tensor *x, int axis, int64_t start);
    ngpt_status (*permute)(nx_backend *, nx_tensor *y, const nx_tensor *x, const int *perm);
    ngpt_status (*cast)(nx_backend *, nx_tensor *y, const nx_tensor *x);
    ngpt_status (*resize)(nx_backend *, nx_tensor *y, const nx_tensor *x, nx_resize_mode mode, bool align_corners,
                          bool channels_last);
    ngpt_status (*argmax)(nx_backend *, nx_tensor *y, const nx_tensor *x);
    ngpt_status (*set_rows)(nx_backend *, nx_tensor *dst, const nx_tensor *src, const nx_tensor *pos);
    ngpt_status (*attention_len)(nx_backend *, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                                 const nx_tensor *v, const nx_tensor *len, float scale);
    ngpt_status (*timestep_embedding)(nx_backend *, nx_tensor *y, const nx_tensor *t, const nx_timestep_params *p);
    /* slot[] holds NX_SCHED_SLOTS entries (NULL where the caller has none) */
    ngpt_status (*sched_step)(nx_backend *, const nx_sched_step *p, nx_tensor *x, const nx_tensor *eps,
                              const nx_tensor *noise, nx_tensor *const *slot);
} nx_backend_vtbl;

struct nx_backend {
    const nx_backend_vtbl *v;
    ngpt_backend kind;
    unsigned     act_dtypes;     /* NX_DTYPE_BIT set of activation dtypes */
    char         device_name[128];
    nx_logger    log;
    nx_pool     *pool;           /* CPU worker threads (also used by CUDA for host work) */
    /* memory accounting for the context's limit (bytes) */
    uint64_t     mem_limit;      /* 0 = none */
    uint64_t     mem_used;
    uint64_t     mem_peak;
    uint64_t     mem_window;  /* the peak since the last nx_mem_window_begin (per-stage reports) */
    void        *impl;           /* backend-private state */
};

/* CPU backend (lib/ops/cpu/). The pool (owned by the context) is borrowed; NULL = one thread. */
ngpt_status nx_cpu_backend_create(nx_backend **out, nx_pool *pool, const nx_logger *log);

/* CUDA backend (lib/cuda/). Fails with NGPT_ERR_DEVICE and a message saying why (no device,
 * driver too old, cuBLAS init failed) when no usable GPU is present; in a build without CUDA it
 * returns NGPT_ERR_UNSUPPORTED. The pool is borrowed for host-side work. */
ngpt_status nx_cuda_backend_create(nx_backend **out, int device_index, nx_pool *pool,
                                   const nx_logger *log);

/* How a CUDA backend picks each new convolution shape's cuDNN algorithm: cuDNN's heuristic (false,
 * the default) or measured on the first call (true). Drops the kept plans; no-op on other backends. */
void nx_cuda_set_conv_search(nx_backend *be, bool measure);
/* Make be's device the calling thread's current one: CUDA's current device is per thread, and
 * a context's handles may be called from threads other than the one that created it (the
 * device lock, context.c, calls this for each public call). */
void nx_cuda_make_current(nx_backend *be);
/* Decode-step attention (one query row, no mask, a head dim of nx_cuda_attention_len_head_dim)
 * through the split-KV kernel (kernels/attention_decode.cu) instead of the flash kernel. On by
 * default (GPU run 7: LLaMA-7B-shaped decode 167 -> 173 tok/s on an H200; the graph's decode
 * steps use that kernel anyway); no-op on other backends. */
void nx_cuda_set_attention_split(nx_backend *be, bool on);
/* Whether the CUDA backend's nx_op_attention_len (that split-KV kernel) has code for head dim
 * d; false in a build without CUDA. */
bool nx_cuda_attention_len_head_dim(int64_t d);
/* 2-D F16/BF16 convolutions run by cuDNN on channels-last (NHWC) copies of x and the filter, the
 * result permuted back. Off by default (GPU run 7: the SD 1.5 UNet step 21.1 ms this way, 19.5
 * ms NCHW, 13.3 ms channels last end to end); kept for comparison; no-op on other backends. */
void nx_cuda_set_conv_nhwc(nx_backend *be, bool on);
/* Channels-last convolutions (nx_conv_params.channels_last) run on NCHW copies, the path taken
 * where cuDNN makes no NHWC plan; for the parity test. No-op on other backends. */
void nx_cuda_set_conv_cl_via_nchw(nx_backend *be, bool on);
/* How many channels-last convolutions took those copies because cuDNN had no NHWC plan (0 on
 * other backends). */
uint64_t nx_cuda_conv_cl_fallbacks(const nx_backend *be);
/* Linears of more than NXK_GEMV_MAX_M rows whose x, w and y share a dtype run by cuBLASLt, the
 * bias added in the GEMM's epilogue instead of by a second kernel; a shape or bias dtype cuBLASLt
 * cannot do stays on the cuBLAS path. On by default (GPU run 7: the SD 1.5 UNet step 19.5 -> 14.2
 * ms on an H200, the backbone and ImageBind level); no-op on other backends. */
void nx_cuda_set_gemm_lt(nx_backend *be, bool on);

/* Graph capture, for a sequence of ops replayed many times with the same shapes and buffers (a
 * denoising step). Between capture_begin and capture_end the backend records what the ops enqueue
 * instead of running it; graph_launch then runs the recording, reading and writing the same
 * device buffers (refill the inputs in place before each launch). The recorded ops must not copy
 * to or from the host or synchronise (upload, download, sync, an op that checks a device flag):
 * that fails the capture, and capture_end then returns the error with *out NULL — the caller runs
 * the ops directly instead. Tensors allocated during the capture must be freed during it.
 * NGPT_ERR_UNSUPPORTED from a backend without graphs (the CPU: its ops run as they are called, so
 * there is nothing to save). capture_end always ends the capture. */
ngpt_status nx_backend_capture_begin(nx_backend *be);
ngpt_status nx_backend_capture_end(nx_backend *be, nx_graph **out);
ngpt_status nx_backend_graph_launch(nx_backend *be, nx_graph *g);
void nx_backend_graph_free(nx_backend *be, nx_graph *g);  /* NULL-safe */
/* run(arg) recorded into *graph and the recording launched once (recording runs nothing). Where
 * the backend cannot record it (no graphs, an op that needs the host, a driver refusal) or the
 * first launch fails, run(arg) runs directly, *graph ends NULL and the reason goes to be's log
 * at INFO naming `what`: a graph is a speed-up, never a new failure. */
ngpt_status nx_backend_record(nx_backend *be, ngpt_status (*run)(void *arg), void *arg, nx_graph **graph,
                              const char *what);
/* *graph (a recording of run(arg)) launched; where the launch fails, the graph is freed, *graph
 * set to NULL (the caller's cue not to record again), the reason logged at INFO naming `what`,
 * and run(arg) runs op by op instead. */
ngpt_status nx_backend_replay(nx_backend *be, nx_graph **graph, ngpt_status (*run)(void *arg), void *arg,
                              const char *what);

void nx_backend_free(nx_backend *be);
/* Release the memory a backend keeps for reuse (the CPU's freed large blocks, CUDA's stream-
 * ordered pool): called where a burst of large activations ends (a decoder call, a turn). */
void nx_backend_trim(nx_backend *be);

#endif
