/* ops.h — the op layer: the only interface model code (lib/models/) computes through.
 *
 * One interface, two backends (lib/ops/cpu: the reference; lib/cuda + kernels/: CUDA). Model code
 * is written once against nx_op_* and runs on either. Every nx_op_* validates its arguments here
 * (lib/ops/ops.c: shapes, dtypes, residency) and then calls the backend through nx_backend_vtbl,
 * so a backend implements the math only ("host validates, device computes").
 *
 * Tensors
 * -------
 * nx_tensor is a dense row-major array: ne[0] is the OUTERMOST dimension, ne[rank-1] the
 * innermost (contiguous), like PyTorch and numpy (not ggml). All ops take and produce contiguous
 * tensors; layout changes are explicit (nx_op_permute). Data lives where the backend says
 * (host memory for CPU, device memory for CUDA); nx_tensor_upload/download move it.
 *
 * Dtypes
 * ------
 * Activations are F32 on the CPU backend; the CUDA backend also computes in F16/BF16. Weights
 * (the `w` of linear/conv/get_rows) may be F32, F16 or BF16 on both. Op outputs have the dtype
 * of the output tensor the caller allocated; element-wise ops, norms, convolutions and attention
 * want y in x's dtype and binary's a, b, y in one dtype (checked: the CUDA kernels read every
 * operand in one dtype). Index tensors are I32.
 *
 * Every op returns NGPT_OK or an ngpt_status with the message set (nx_err).
 */
#ifndef NX_OPS_H
#define NX_OPS_H

#include "nextgpt.h"
#include "../core/dtype.h"
#include "../sched/sched_math.h"
#include "timestep_math.h"

#include <stdbool.h>
#include <stdio.h>

#define NX_MAX_DIMS 8

typedef struct nx_backend nx_backend;

typedef struct nx_tensor {
    ngpt_dtype   dtype;
    int          rank;
    int64_t      ne[NX_MAX_DIMS];  /* shape, ne[0] outermost */
    void        *data;             /* host pointer (CPU) or device pointer (CUDA) */
    nx_backend  *be;               /* the backend whose memory holds data; NULL = host memory */
    bool         owns;             /* data was allocated by nx_tensor_alloc (freed by nx_tensor_free) */
    const char  *name;             /* optional, for error messages (borrowed) */
    int          packed;           /* 0, or a weight in a layout of the backend's own (its code;
                                      nx_op_linear_pack, nx_op_conv_pack): only the op it was
                                      packed for takes it; every other op refuses it */
} nx_tensor;

/* ---- tensor helpers (lib/ops/tensor.c) ---- */

int64_t nx_numel(const nx_tensor *t);
size_t  nx_nbytes(const nx_tensor *t);
/* A non-owning view of `data` (host memory when be == NULL). */
nx_tensor nx_view(ngpt_dtype dt, int rank, const int64_t *ne, void *data, nx_backend *be);
/* The same data seen with another shape of the same numel. */
ngpt_status nx_reshape(nx_tensor *out, const nx_tensor *t, int rank, const int64_t *ne);
/* Allocate uninitialised backend memory (counts against the context's memory limit). */
ngpt_status nx_tensor_alloc(nx_tensor *out, nx_backend *be, ngpt_dtype dt, int rank, const int64_t *ne);
/* A high-water mark of the backend's tensor memory over an interval (per-stage memory reports):
 * begin sets it to the bytes held now; peak reads the most held since. One interval at a time
 * per backend; allocations of other threads on the backend count too. */
void nx_mem_window_begin(nx_backend *be);
uint64_t nx_mem_window_peak(const nx_backend *be);
/* Free what nx_tensor_alloc allocated; views are only reset. NULL is a no-op. */
void nx_tensor_free(nx_tensor *t);
/* Copy host memory -> tensor / tensor -> host memory (nbytes must equal nx_nbytes(t)). */
ngpt_status nx_tensor_upload(nx_tensor *t, const void *host, size_t nbytes);
ngpt_status nx_tensor_download(const nx_tensor *t, void *host, size_t nbytes);
/* Copy nbytes of host memory into the tensor's bytes [offset, offset + nbytes). */
ngpt_status nx_tensor_upload_part(nx_tensor *t, const void *host, size_t nbytes, size_t offset);
/* "name F32[2, 3]" for messages. */
char *nx_tensor_str(char *buf, size_t cap, const nx_tensor *t);
bool nx_same_shape(const nx_tensor *a, const nx_tensor *b);

/* ---- element-wise enums ---- */

typedef enum nx_unary {
    NX_UNARY_IDENTITY   = 0,
    NX_UNARY_SILU       = 1,  /* x * sigmoid(x) */
    NX_UNARY_GELU       = 2,  /* exact: 0.5 x (1 + erf(x / sqrt 2)) (PyTorch default) */
    NX_UNARY_GELU_TANH  = 3,  /* tanh approximation */
    NX_UNARY_QUICK_GELU = 4,  /* x * sigmoid(1.702 x) (CLIP) */
    NX_UNARY_RELU       = 5,
    NX_UNARY_LEAKY_RELU = 6,  /* param = negative slope */
    NX_UNARY_TANH       = 7,
    NX_UNARY_SIGMOID    = 8,
    NX_UNARY_EXP        = 9,
    NX_UNARY_SQRT       = 10,
    NX_UNARY_NEG        = 11
} nx_unary;

typedef enum nx_binary {
    NX_BINARY_ADD = 0,
    NX_BINARY_SUB = 1,
    NX_BINARY_MUL = 2,
    NX_BINARY_DIV = 3
} nx_binary;

typedef enum nx_resize_mode {
    NX_RESIZE_NEAREST  = 0,  /* PyTorch F.interpolate(mode="nearest"): src = floor(dst * in/out) */
    NX_RESIZE_BILINEAR = 1   /* F.interpolate(mode="bilinear"), align_corners from the call */
} nx_resize_mode;

typedef enum nx_rope_mode {
    NX_ROPE_HALF        = 0, /* HF LLaMA rotate_half: pairs (i, i + d/2) */
    NX_ROPE_INTERLEAVED = 1  /* GPT-J / original Meta: pairs (2i, 2i + 1) */
} nx_rope_mode;

/* ---- ops ----
 * Shapes use numpy notation; "..." is any number of leading dimensions (flattened to M).
 * y is always an output tensor the caller allocated with the exact shape stated. */

/* y[..., N] = x[..., K] @ w[N, K]^T (+ b[N]) — PyTorch nn.Linear. w: F32/F16/BF16 (CPU: F32
 * accumulate; M == 1 takes the hand-written GEMV path). b may be NULL. */
ngpt_status nx_op_linear(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                         const nx_tensor *b);

/* nx_op_linear with an epilogue: y = act(x W^T + b) (act NX_UNARY_IDENTITY: none), or with
 * accumulate y += act(x W^T + b) (a residual added in place). Where the backend cannot fuse it
 * (the CPU: its oneDNN path with GELU, tanh-GELU, SiLU or quick GELU fuses it; other paths, other
 * functions and CUDA do not), the linear writes into tmp, a tensor of y's shape and dtype other
 * than y and x (needed with accumulate only), and the ops follow. */
typedef struct nx_linear_epi {
    nx_unary   act;
    float      act_param;
    bool       accumulate;
    nx_tensor *tmp;
} nx_linear_epi;
ngpt_status nx_op_linear_epi(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                             const nx_tensor *b, const nx_linear_epi *e);

/* Let the backend keep w, a linear's [N, K] weight, in a layout of its own that its linears
 * run faster on; w's bytes are rewritten in place (same size), so w's memory must be writable
 * and used by nothing else. Sets w->packed when it happened; a no-op (NGPT_OK, w unchanged)
 * where the backend has no such layout for w. The CPU backend packs BF16 W with K % 32 == 0 and
 * N % 64 == 0 on CPUs with AMX-BF16 into oneDNN's AMX layout (BA16a64b2a), which its BF16-compute
 * linears take as they are, instead of reordering W on every call (bench_gemm "vit": 256 x 3840
 * x 1280 1.49 -> 1.30 ms); F32-compute linears on a packed W unpack it per call. */
ngpt_status nx_op_linear_pack(nx_backend *be, nx_tensor *w);

/* Batched matmul: c[B, M, N] = alpha * op(a)[B, M, K] @ op(b)[B, K, N] (+ beta * c).
 * a is [B, M, K] or, with trans_a, [B, K, M]; b is [B, K, N] or, with trans_b, [B, N, K].
 * Rank 2 operands mean B = 1; a batch of 1 on a or b broadcasts over the other's batch. */
ngpt_status nx_op_matmul(nx_backend *be, nx_tensor *c, const nx_tensor *a, const nx_tensor *b,
                         bool trans_a, bool trans_b, float alpha, float beta);

/* Convolutions, PyTorch semantics (cross-correlation, zero padding, symmetric pads).
 * conv1d: x[N, C, L]         w[O, C/groups, k]           y[N, O, Lo]
 * conv2d: x[N, C, H, W]      w[O, C/groups, kh, kw]      y[N, O, Ho, Wo]
 * conv3d: x[N, C, D, H, W]   w[O, C/groups, kd, kh, kw]  y[N, O, Do, Ho, Wo]
 * conv2d, channels_last: x[N, H, W, C]  w[O, kh, kw, C/groups]  y[N, Ho, Wo, O]
 * b[O] may be NULL. stride/pad/dilation have one entry per spatial dim. */
typedef struct nx_conv_params {
    int stride[3];
    int pad[3];
    int dilation[3];
    int groups;
    /* epilogue: y = act(conv(x) + b) + residual. act NX_UNARY_IDENTITY (the default) for none,
     * act_param its parameter (the LEAKY_RELU slope); residual NULL (the default) or a tensor of
     * y's shape and dtype that is not y. Every backend applies it: the CPU's own conv1d paths in
     * their stores (HiFi-GAN's passes over its activations saved), its oneDNN paths and CUDA in
     * one pass after the convolution. */
    nx_unary act;
    float act_param;
    const nx_tensor *residual;
    /* conv2d only: activations channels last (x, y and the residual [N, H, W, C], PyTorch's
     * channels_last memory format made contiguous) and the filter [O, kh, kw, C/groups] (PyTorch's
     * weight permuted (0, 2, 3, 1): cuDNN's NHWC filter layout). cuDNN's tensor-core kernels are
     * NHWC-native, so a network kept channels last end to end skips the transposes NCHW costs
     * (kernels/, lib/cuda/conv.c); the CPU backend runs it through oneDNN's nhwc kernels. */
    bool channels_last;
} nx_conv_params;
nx_conv_params nx_conv_params_default(void);  /* stride 1, pad 0, dilation 1, groups 1, no epilogue */
ngpt_status nx_op_conv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                       const nx_tensor *b, const nx_conv_params *p);
/* nx_op_linear_pack for a conv1d/conv2d filter that convolutions with p's stride, padding,
 * dilation, groups and layout will take (p's epilogue is ignored). The CPU backend packs BF16
 * filters of stride-1, ungrouped convolutions on CPUs with AMX-BF16 into the blocked layout
 * oneDNN's AMX convolution picks for them (at 32² or 64 samples; where the size of a call makes
 * it pick another, that call reorders, as it would from the plain filter), when that layout is
 * the plain filter's size. Other convolutions on a packed filter unpack it per call. */
ngpt_status nx_op_conv_pack(nx_backend *be, nx_tensor *w, const nx_conv_params *p);
/* conv_transpose1d: x[N, C, L], w[C, O/groups, k] (PyTorch ConvTranspose1d layout), y[N, O, Lo]
 * with Lo = (L - 1) * stride - 2 * pad + dilation * (k - 1) + output_padding + 1. */
ngpt_status nx_op_conv_transpose1d(nx_backend *be, nx_tensor *y, const nx_tensor *x,
                                   const nx_tensor *w, const nx_tensor *b, int stride, int pad,
                                   int output_padding, int dilation, int groups);

/* Scaled dot-product attention.
 * q[B, Sq, H, D], k/v[B, Skv, Hkv, D], out[B, Sq, H, D] (the layout nn.Linear produces, so no
 * permutes around attention). H must be a multiple of Hkv (grouped-query). Any D.
 * scale: usually 1/sqrt(D). causal: query i attends to keys j <= i + (Skv - Sq) (bottom-right
 * aligned: prefill with Sq == Skv, and decode with a KV cache of Skv keys). mask: optional F32
 * additive mask [Sq, Skv] or [B, Sq, Skv] (or [B, 1, Sq, Skv]), added to the scores. */
ngpt_status nx_op_attention(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                            const nx_tensor *v, const nx_tensor *mask, float scale, bool causal);

/* y = x * rsqrt(mean(x^2, last dim) + eps) * w[C]  (LLaMA RMSNorm; w may be NULL). */
ngpt_status nx_op_rms_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                           float eps);
/* x += r, then y = rms_norm(x, w, eps): a transformer's residual add and the next norm in one
 * launch (the same result as nx_op_binary ADD then nx_op_rms_norm: x is rounded to its dtype
 * before the norm reads it). y, x, r of one shape and dtype; y must not alias x or r. */
ngpt_status nx_op_rms_norm_add(nx_backend *be, nx_tensor *y, nx_tensor *x, const nx_tensor *r, const nx_tensor *w,
                               float eps);
/* y = (x - mean) / sqrt(var + eps) * w[C] + b[C] over the last dim (biased variance); w, b may
 * be NULL. */
ngpt_status nx_op_layer_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                             const nx_tensor *b, float eps);
/* GroupNorm over x[N, C, *spatial] (C divisible by groups), per-channel w[C], b[C] (NULL ok),
 * then SiLU with NX_GN_SILU (the fused ResNet-block pattern). With NX_GN_CHANNELS_LAST x is
 * [N, *spatial, C] (the channels of group g: g * C/groups .. (g + 1) * C/groups - 1 of every
 * position). */
enum { NX_GN_SILU = 1u, NX_GN_CHANNELS_LAST = 2u };
ngpt_status nx_op_group_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                             const nx_tensor *b, int groups, float eps, unsigned flags);
/* y = conv(group_norm(x)): nx_op_group_norm with gw, gb, groups, eps, gn_flags into a temporary
 * of x's shape, then nx_op_conv of it with w, b, p (gn_flags' NX_GN_CHANNELS_LAST and
 * p->channels_last agree) — the ResNet blocks' norm (+ SiLU) and convolution in one call, the same
 * result. Where a backend can, the normalised activations never exist in F32: the CPU under BF16
 * compute on its AMX convolution path (channels last) writes them straight in BF16, the input that
 * convolution reads, instead of F32 that it would round in a reorder of its own. */
ngpt_status nx_op_group_norm_conv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *gw,
                                  const nx_tensor *gb, int groups, float eps, unsigned gn_flags, const nx_tensor *w,
                                  const nx_tensor *b, const nx_conv_params *p);

/* Rotary embedding on x[B, S, H, D] -> y (may alias x): position of row s is pos[s] (I32 [S]);
 * rotates the first n_rot dims (n_rot even, <= D; the rest pass through);
 * inv_freq[i] = theta^(-2i / n_rot). */
ngpt_status nx_op_rope(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *pos,
                       int n_rot, float theta, nx_rope_mode mode);

/* y = softmax(x * scale) over the last dim (max-subtracted). */
ngpt_status nx_op_softmax(nx_backend *be, nx_tensor *y, const nx_tensor *x, float scale);

/* y = f(x), same shape (y may alias x). param is the LEAKY_RELU slope, else ignored. */
ngpt_status nx_op_unary(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_unary op, float param);

/* y = a op b with numpy broadcasting (right-aligned shapes, size-1 dims broadcast);
 * y has the broadcast shape and may alias a or b when it has the same shape. */
ngpt_status nx_op_binary(nx_backend *be, nx_tensor *y, const nx_tensor *a, const nx_tensor *b,
                         nx_binary op);

/* y = alpha * x + beta (element-wise; y may alias x). */
ngpt_status nx_op_scale(nx_backend *be, nx_tensor *y, const nx_tensor *x, float alpha, float beta);

/* Gated linear unit on x[..., 2N] -> y[..., N]: with a = x[..., :N], b = x[..., N:],
 * y = act(a) * b when gate_first, else a * act(b) (diffusers GEGLU: hidden, gate = chunk(2);
 * hidden * gelu(gate)). LLaMA's silu(gate) * up uses gate_first with [gate; up] fused weights. */
ngpt_status nx_op_glu(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_unary act, bool gate_first);

/* Embedding gather: y[n, D] = table[ids[n], :], table [V, D] F32/F16/BF16, ids I32 [n];
 * an id outside [0, V) is NGPT_ERR_INVALID_ARGUMENT naming the id and its position — except in a
 * CUDA graph recording, which cannot read the check back: there such a row is zeros, and the ids
 * are the caller's invariant (as for set_rows). */
ngpt_status nx_op_get_rows(nx_backend *be, nx_tensor *y, const nx_tensor *table, const nx_tensor *ids);

/* y = concat(a, b) along axis (all other dims equal). */
ngpt_status nx_op_concat(nx_backend *be, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, int axis);
/* y = x[..., start:start+len, ...] along axis, len = y->ne[axis] (a copy). */
ngpt_status nx_op_slice(nx_backend *be, nx_tensor *y, const nx_tensor *x, int axis, int64_t start);
/* y = x.permute(perm) made contiguous; y's shape is x's permuted. F32, F16 or BF16 on every
 * backend (weights too: the CPU's activations are F32, but a loader may permute F16 weights). */
ngpt_status nx_op_permute(nx_backend *be, nx_tensor *y, const nx_tensor *x, const int *perm);
/* y = x converted to y's dtype (same shape; F32/F16/BF16 among each other, I32 <-> F32). */
ngpt_status nx_op_cast(nx_backend *be, nx_tensor *y, const nx_tensor *x);

/* Resize over the last two dims of x[N, C, H, W] to y[N, C, Ho, Wo]; channels_last: over the
 * middle two of x[N, H, W, C] to y[N, Ho, Wo, C]. */
ngpt_status nx_op_resize(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_resize_mode mode,
                         bool align_corners, bool channels_last);

/* y[...] (I32) = argmax over the last dim of x (first index on ties). */
ngpt_status nx_op_argmax(nx_backend *be, nx_tensor *y, const nx_tensor *x);

/* dst[pos[i], :] = src[i, :] for i < n: dst [R, D], src [n, D] in dst's dtype, pos I32 [n] with
 * every position in [0, R) — the caller's invariant, which the CPU checks and CUDA relies on
 * (it skips a row outside rather than synchronise, so the op can be recorded in a graph), and
 * no position twice (CUDA writes rows in no particular order; the CPU's last one wins). The KV
 * cache append of a recorded decode step. */
ngpt_status nx_op_set_rows(nx_backend *be, nx_tensor *dst, const nx_tensor *src, const nx_tensor *pos);

/* Attention of one query per (batch, head) over the first len[0] of k's Skv keys: q [B, 1, H, D],
 * k, v [B, Skv, Hkv, D] (H a multiple of Hkv), len I32 [1] in [1, Skv], out like q. The length
 * is read when the op runs (on CUDA: by the kernel), so a recorded decode step replays as the KV
 * cache fills. Same result as nx_op_attention on k[:, :len] (one query sees every key). CUDA:
 * head dims 16, 32, 64, 80, 96, 128. */
ngpt_status nx_op_attention_len(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                                const nx_tensor *v, const nx_tensor *len, float scale);

/* The sinusoidal timestep embedding (timestep_math.h): y[B, p->dim] (an activation dtype) from
 * t F32 [B] — the UNet's time input made on the device, so a recorded denoising step only needs
 * the new timesteps uploaded. */
ngpt_status nx_op_timestep_embedding(nx_backend *be, nx_tensor *y, const nx_tensor *t, const nx_timestep_params *p);

/* One planned diffusion-scheduler step (nx_sched_plan in lib/sched), fused with the
 * classifier-free guidance combine, over F32 tensors of n = p->n elements: x [n] the latents (in
 * place), eps the model output ([n], or [2n] = [uncond; cond] with p->cfg), noise [n] (read when
 * p->noise, else may be NULL), slot[0 .. n_slots) the scheduler's state buffers (n floats each;
 * those the plan names must be present). Each element is sched_math.h's nx_sched_elem, so the
 * CPU backend equals ngpt_scheduler_step bit for bit. x may not alias another operand. */
ngpt_status nx_op_sched_step(nx_backend *be, const nx_sched_step *p, nx_tensor *x, const nx_tensor *eps,
                             const nx_tensor *noise, nx_tensor *const *slot, int n_slots);

/* Per-op profile for benchmarks: when enabled (process-wide), every op is bracketed by backend
 * syncs and its wall time added to a total per op name; report prints the totals (largest
 * first) to f and resets them. Off by default: the syncs serialise CUDA work. */
void nx_ops_profile_enable(bool on);
void nx_ops_profile_report(FILE *f, const char *title);

/* Per-op trace for tests (tests/gpu/test_decoder_dtype_cuda.c finds the first op where CUDA in
 * F16 leaves the CPU): when set, fn is called after every op that succeeded with the op's name
 * and its output tensor, on the op's backend (reading it with nx_tensor_download synchronises).
 * Process-wide, not synchronised: set it while no op runs; NULL turns it off. */
typedef void (*nx_ops_trace_fn)(void *user, const char *op, const nx_tensor *y);
void nx_ops_trace(nx_ops_trace_fn fn, void *user);

#endif
