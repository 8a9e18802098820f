/* kernels.h — the C interface of the hand-written CUDA kernels (the .cu files of kernels/).
 *
 * Host validates, device computes: lib/ops/ops.c has already checked shapes and dtypes, and
 * the lib/cuda C files have flattened them into the plain integers below. Every launcher enqueues its
 * kernel(s) on `stream` and returns cudaGetLastError() (cudaSuccess = 0) — or
 * cudaErrorInvalidValue for a configuration it does not handle — and never exits or syncs.
 *
 * Dtype codes are ngpt_dtype values: 0 = F32, 1 = F16, 2 = BF16, 4 = I32. Pointers are device
 * pointers of contiguous row-major arrays. Kernels compute in f32 whatever the storage dtype. */
#ifndef NX_KERNELS_H
#define NX_KERNELS_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "../lib/ops/timestep_math.h"
#include "../lib/sched/sched_math.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NXK_F32  0
#define NXK_F16  1
#define NXK_BF16 2
#define NXK_I32  4

#define NXK_MAX_DIMS 8

/* cudaSuccess when the kernels have code for the current device (cudaFuncGetAttributes). */
cudaError_t nxk_probe(void);

/* ---- elementwise.cu ---- */
/* dst[i] = (dst_dt) src[i]: any pair of F32/F16/BF16, and I32 <-> F32. */
cudaError_t nxk_cast(void *dst, int dst_dt, const void *src, int src_dt, int64_t n, cudaStream_t stream);
/* y = f(x), op = nx_unary value. y may alias x. */
cudaError_t nxk_unary(void *y, const void *x, int dt, int64_t n, int op, float param, cudaStream_t stream);
/* y = alpha * x + beta */
cudaError_t nxk_scale(void *y, const void *x, int dt, int64_t n, float alpha, float beta, cudaStream_t stream);
/* y = a op b with broadcasting: y has `rank` dims ne[]; sa/sb are a's and b's element strides per
 * y dim (0 where that operand broadcasts). op = nx_binary value. */
typedef struct nxk_bcast {
    int     rank;
    int64_t ne[NXK_MAX_DIMS];
    int64_t sa[NXK_MAX_DIMS];
    int64_t sb[NXK_MAX_DIMS];
} nxk_bcast;
cudaError_t nxk_binary(void *y, const void *a, const void *b, int dt, const nxk_bcast *bc, int op,
                       cudaStream_t stream);
/* x[rows, 2n] -> y[rows, n]: act(a) * b (gate_first) or a * act(b). */
cudaError_t nxk_glu(void *y, const void *x, int dt, int64_t rows, int64_t n, int act, int gate_first,
                    cudaStream_t stream);
/* y[outer, C, inner] += b[C] (b of dtype b_dt). */
cudaError_t nxk_bias_add(void *y, int dt, const void *b, int b_dt, int64_t outer, int64_t C, int64_t inner,
                         cudaStream_t stream);
/* The conv epilogue in one pass: y = act(y + b[c]) + res[i] over y[outer, C, inner]; b (b_dt)
 * and res (y's dtype and shape) may be NULL; act an nx_unary value, or -1 for none. */
cudaError_t nxk_bias_act_add(void *y, int dt, const void *b, int b_dt, const void *res, int64_t outer, int64_t C,
                             int64_t inner, int act, float param, cudaStream_t s);

/* ---- gemv.cu ---- */
#define NXK_GEMV_MAX_M 8
/* y[M, N] = x[M, K] w[N, K]^T (+ b[N]; b may be NULL) for 1 <= M <= NXK_GEMV_MAX_M; x, w, b and
 * y each F32/F16/BF16 (their own dtype codes), F32 accumulation. */
cudaError_t nxk_gemv(void *y, int y_dt, const void *x, int x_dt, const void *w, int w_dt, const void *b, int b_dt,
                     int64_t M, int64_t N, int64_t K, cudaStream_t stream);

/* ---- norm.cu ---- (w/b may be NULL; their dtypes are w_dt/b_dt) */
cudaError_t nxk_rms_norm(void *y, const void *x, int dt, const void *w, int w_dt, int64_t rows, int64_t cols,
                         float eps, cudaStream_t stream);
/* x += r (rounded to x's dtype), then y = rms_norm(x); x, r, y of dtype dt */
cudaError_t nxk_rms_norm_add(void *y, void *x, const void *r, int dt, const void *w, int w_dt, int64_t rows,
                             int64_t cols, float eps, cudaStream_t stream);
cudaError_t nxk_layer_norm(void *y, const void *x, int dt, const void *w, int w_dt, const void *b, int b_dt,
                           int64_t rows, int64_t cols, float eps, cudaStream_t stream);
/* x[N, C, S] (S = product of the spatial dims). Groups of more than a chunk's elements are split
 * across blocks: scratch then holds nxk_group_norm_parts(C, S, groups) * N * groups float2 (8-byte
 * aligned device memory; NULL when parts is 0). */
int64_t nxk_group_norm_parts(int64_t C, int64_t S, int groups);
cudaError_t nxk_group_norm(void *y, const void *x, int dt, const void *w, int w_dt, const void *b, int b_dt,
                           int64_t N, int64_t C, int64_t S, int groups, float eps, int silu, void *scratch,
                           cudaStream_t stream);
/* Channels last: x[N, S, C], at most NXK_GN_CL_MAX_GROUPS groups (their sums live in shared
 * memory); scratch of nxk_group_norm_cl_scratch bytes (16-byte aligned). */
#define NXK_GN_CL_MAX_GROUPS 2048
size_t nxk_group_norm_cl_scratch(int64_t N, int64_t C, int64_t S, int groups);
cudaError_t nxk_group_norm_cl(void *y, const void *x, int dt, const void *w, int w_dt, const void *b, int b_dt,
                              int64_t N, int64_t C, int64_t S, int groups, float eps, int silu, void *scratch,
                              cudaStream_t stream);
cudaError_t nxk_softmax(void *y, const void *x, int dt, int64_t rows, int64_t cols, float scale,
                        cudaStream_t stream);
/* y (I32) [rows] = argmax over cols, first index on ties */
cudaError_t nxk_argmax(int32_t *y, const void *x, int dt, int64_t rows, int64_t cols, cudaStream_t stream);

/* ---- sched.cu ---- */
/* One planned scheduler step fused with the CFG combine (lib/sched/sched_math.h): eps [n] or
 * [2n] (p->cfg), x [n] in place, noise [n] when p->noise, slot[NX_SCHED_SLOTS] (NULL where the
 * plan names none); all F32. */
cudaError_t nxk_sched_step(const nx_sched_step *p, const float *eps, float *x, const float *noise,
                           float *const *slot, cudaStream_t stream);

/* ---- layout.cu ---- */
/* x[B, S, H, D] -> y, pos I32 [S]; mode = nx_rope_mode. y may alias x. */
cudaError_t nxk_rope(void *y, const void *x, int dt, const int32_t *pos, int64_t B, int64_t S, int64_t H,
                     int64_t D, int n_rot, float theta, int mode, cudaStream_t stream);
/* y[n, D] (dtype y_dt) = table[ids[i]] (dtype t_dt); an id outside [0, V) is not read: the
 * smallest such position is atomicMin'ed into *bad_pos (which the caller set to INT32_MAX). */
cudaError_t nxk_get_rows(void *y, int y_dt, const void *table, int t_dt, const int32_t *ids, int64_t n,
                         int64_t D, int64_t V, int32_t *bad_pos, cudaStream_t stream);
/* y = x.permute(perm), elements of elsize bytes (1, 2, 4 or 8); ne = x's shape. */
cudaError_t nxk_permute(void *y, const void *x, int elsize, int rank, const int64_t *ne, const int *perm,
                        cudaStream_t stream);
/* x[P, H, W, I] -> y[P, Ho, Wo, I]; mode = nx_resize_mode (NCHW: P = N * C, I = 1; channels
 * last: P = N, I = C) */
cudaError_t nxk_resize(void *y, const void *x, int dt, int64_t P, int64_t H, int64_t W, int64_t I, int64_t Ho,
                       int64_t Wo, int mode, int align_corners, cudaStream_t stream);
/* dst[pos[i], :] = src[i, :] for i < n (rows of D elements of elsize 2 or 4 bytes); a position
 * outside [0, R) is skipped. */
cudaError_t nxk_set_rows(void *dst, const void *src, int elsize, const int32_t *pos, int64_t n, int64_t D, int64_t R,
                         cudaStream_t stream);
/* y [B, p->dim] (dt) = the sinusoidal embedding of t F32 [B] (lib/ops/timestep_math.h). */
cudaError_t nxk_timestep_embedding(void *y, int dt, const float *t, int64_t B, const nx_timestep_params *p,
                                   cudaStream_t stream);

/* ---- attention*.cu ---- */
typedef struct nxk_attn_params {
    const void *q, *k, *v;   /* q[B, Sq, H, D], k/v[B, Skv, Hkv, D] */
    const float *mask;       /* NULL or F32 [Sq, Skv] per batch item at mask_bstride */
    void *out;               /* [B, Sq, H, D] */
    int64_t mask_bstride;    /* 0 (shared mask) or Sq * Skv */
    int B, Sq, Skv, H, Hkv, D;
    float scale;
    int causal;              /* bottom-right aligned: key j visible to query i iff j <= i + Skv - Sq */
    int dt;                  /* q/k/v/out dtype */
    const int32_t *kv_len;   /* nxk_attention_decode only: NULL, or a device I32 in [1, Skv] — the
                              * keys are the first *kv_len rows of the Skv (read at run time) */
} nxk_attn_params;
/* Flash-style forward (online softmax in f32). F16/BF16 without a mask at head dims
 * 40/64/80/128/160 run on tensor cores (attention_mma.cuh; sm_80+, 16-byte aligned pointers);
 * the rest on CUDA cores (attention.cuh): those head dims are compile-time instantiations, any
 * other D <= 256 takes the generic kernel; D > 256 is cudaErrorInvalidValue. */
cudaError_t nxk_attention(const nxk_attn_params *p, cudaStream_t stream);
/* The largest head dim nxk_attention accepts. */
#define NXK_ATTN_MAX_D 256
/* Split-KV attention for decode steps (attention_decode.cu): Sq 1, no mask, D 16, 32, 64, 80,
 * 96 or 128, any float dtype. _scratch: the F32 scratch bytes it needs (4-byte aligned device memory), 0 when
 * the call is not one it takes. */
size_t nxk_attention_decode_scratch(const nxk_attn_params *p);
/* 1 when the decode kernel has code for head dim D. */
int nxk_attention_decode_head_dim(int D);
cudaError_t nxk_attention_decode(const nxk_attn_params *p, float *scratch, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
