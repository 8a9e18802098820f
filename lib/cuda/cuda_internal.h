/* cuda_internal.h — the CUDA backend's private state and error helpers (the lib/cuda C files only).
 *
 * Every CUDA / cuBLAS / cuDNN failure becomes NGPT_ERR_DEVICE with the message
 * "cuda: <op>: <call>: <error string>"; nothing here exits or aborts. */
#ifndef NX_CUDA_INTERNAL_H
#define NX_CUDA_INTERNAL_H

#include "../ops/backend.h"
#include "../core/error.h"
#include "../../kernels/kernels.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

typedef struct nx_cuda {
    int            device;
    int            cc;         /* compute capability, 10 * major + minor */
    cudaStream_t   stream;     /* every op is enqueued here, in order */
    cublasHandle_t blas;
    cudnnHandle_t  dnn;        /* created on first conv (loading cuDNN costs ~1 s) */
    int32_t       *d_flag;     /* one device int for kernels that report a bad input (get_rows) */
    bool           pooled;     /* stream-ordered allocation (cudaMallocAsync) is available */
    bool           conv_heuristic;  /* conv algorithms from cuDNN's heuristic, not measured (conv.c) */
    bool           conv_nhwc;   /* 2-D F16/BF16 convolutions on channels-last copies (conv.c) */
    bool           conv_cl_via_nchw;        /* channels-last convolutions forced onto NCHW copies (conv.c) */
    bool           conv_cl_fallback_logged; /* the "no NHWC plan" note was logged */
    uint64_t       conv_cl_fallbacks;       /* channels-last convolutions that had no NHWC plan */
    bool           attn_split;  /* decode steps (Sq 1) through the split-KV kernel (kernel_ops.c) */
    bool           gemm_lt;     /* linears through cuBLASLt with the bias fused (gemm.c) */
    bool           capturing;  /* between capture_begin and capture_end: no host copies or syncs */
    void          *blas_ws;    /* cuBLAS's workspace, ours so that a captured GEMM allocates nothing;
                                  cuBLASLt's too (same stream, so the two never overlap) */
    struct nx_cuda_conv_plan *plans;  /* conv.c: descriptors + algorithm per shape, oldest first */
    int            n_plans;
    cublasLtHandle_t lt;       /* cuBLASLt (gemm.c's nx_cuda_set_gemm_lt linears); NULL if creating it failed */
    struct nx_cuda_lt_plan *lt_plans;  /* gemm.c: cuBLASLt descriptors + algorithm per shape, oldest first */
    int            n_lt_plans;
} nx_cuda;

#define NX_CUDA_PLANS_MAX 256
#define NX_CUDA_LT_PLANS_MAX 64
#define NX_CUDA_BLAS_WS_BYTES ((size_t)32 << 20)  /* blas_ws: NVIDIA's size for Hopper */

static inline nx_cuda *nx_cuda_of(nx_backend *be) { return (nx_cuda *)be->impl; }

ngpt_status nx_cuda_check(cudaError_t e, const char *op, const char *call);
ngpt_status nx_cublas_check(cublasStatus_t s, const char *op, const char *call);
ngpt_status nx_cudnn_check(cudnnStatus_t s, const char *op, const char *call);

/* CU_TRY("linear", cudaMemcpyAsync, (dst, src, n, kind, stream)); — returns on failure. */
#define CU_TRY(op, fn, args) NX_TRY(nx_cuda_check(fn args, op, #fn))
#define CUBLAS_TRY(op, fn, args) NX_TRY(nx_cublas_check(fn args, op, #fn))
#define CUDNN_TRY(op, fn, args) NX_TRY(nx_cudnn_check(fn args, op, #fn))

/* Stream-ordered scratch memory (cudaMallocAsync on the backend's stream); NULL-safe free. */
ngpt_status nx_cuda_tmp_alloc(nx_backend *be, void **out, size_t nbytes, const char *op);
void nx_cuda_tmp_free(nx_backend *be, void *p);
/* The cuDNN handle, created on first use. */
ngpt_status nx_cuda_dnn(nx_backend *be, cudnnHandle_t *out, const char *op);

/* gemm.c */
void nx_cuda_lt_free(nx_cuda *c);  /* the cuBLASLt plans and handle */
ngpt_status nx_cuda_linear(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b);
ngpt_status nx_cuda_matmul(nx_backend *, nx_tensor *c, const nx_tensor *a, const nx_tensor *b,
                           bool trans_a, bool trans_b, float alpha, float beta);
/* c[batch, M, N] (c_dt) = alpha * op(a) @ op(b), a and b row-major of dtype ab_dt (a [M, K] or
 * [K, M] with trans_a, b [K, N] or [N, K] with trans_b; batch strides in elements, 0
 * broadcasts), F32 accumulate; c_dt may differ from ab_dt (F32 scores from F16 inputs). */
ngpt_status nx_cuda_gemm_typed(nx_backend *be, const char *op, const void *a, const void *b, ngpt_dtype ab_dt, void *c,
                               ngpt_dtype c_dt, int64_t batch, int64_t M, int64_t N, int64_t K, int64_t stride_a,
                               int64_t stride_b, bool trans_a, bool trans_b, float alpha);
/* conv.c */
void nx_cuda_conv_plans_free(nx_cuda *c);
ngpt_status nx_cuda_conv(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                         const nx_tensor *b, const nx_conv_params *p);
ngpt_status nx_cuda_conv_transpose1d(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                                     const nx_tensor *b, int stride, int pad, int output_padding,
                                     int dilation, int groups);
/* kernel_ops.c */
ngpt_status nx_cuda_attention(nx_backend *, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                              const nx_tensor *v, const nx_tensor *mask, float scale, bool causal);
ngpt_status nx_cuda_rms_norm(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, float eps);
ngpt_status nx_cuda_set_rows(nx_backend *, nx_tensor *dst, const nx_tensor *src, const nx_tensor *pos);
ngpt_status nx_cuda_attention_len(nx_backend *, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                                  const nx_tensor *v, const nx_tensor *len, float scale);
ngpt_status nx_cuda_timestep_embedding(nx_backend *, nx_tensor *y, const nx_tensor *t, const nx_timestep_params *p);
ngpt_status nx_cuda_sched_step(nx_backend *, const nx_sched_step *p, nx_tensor *x, const nx_tensor *eps,
                               const nx_tensor *noise, nx_tensor *const *slot);
ngpt_status nx_cuda_rms_norm_add(nx_backend *, nx_tensor *y, nx_tensor *x, const nx_tensor *r, const nx_tensor *w,
                                 float eps);
ngpt_status nx_cuda_layer_norm(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                               const nx_tensor *b, float eps);
ngpt_status nx_cuda_group_norm(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                               const nx_tensor *b, int groups, float eps, unsigned flags);
ngpt_status nx_cuda_rope(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *pos,
                         int n_rot, float theta, nx_rope_mode mode);
ngpt_status nx_cuda_softmax(nx_backend *, nx_tensor *y, const nx_tensor *x, float scale);
ngpt_status nx_cuda_unary(nx_backend *, nx_tensor *y, const nx_tensor *x, nx_unary op, float param);
ngpt_status nx_cuda_binary(nx_backend *, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, nx_binary op);
ngpt_status nx_cuda_scale(nx_backend *, nx_tensor *y, const nx_tensor *x, float alpha, float beta);
ngpt_status nx_cuda_glu(nx_backend *, nx_tensor *y, const nx_tensor *x, nx_unary act, bool gate_first);
ngpt_status nx_cuda_get_rows(nx_backend *, nx_tensor *y, const nx_tensor *table, const nx_tensor *ids);
ngpt_status nx_cuda_concat(nx_backend *, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, int axis);
ngpt_status nx_cuda_slice(nx_backend *, nx_tensor *y, const nx_tensor *x, int axis, int64_t start);
ngpt_status nx_cuda_permute(nx_backend *, nx_tensor *y, const nx_tensor *x, const int *perm);
ngpt_status nx_cuda_cast(nx_backend *, nx_tensor *y, const nx_tensor *x);
ngpt_status nx_cuda_resize(nx_backend *, nx_tensor *y, const nx_tensor *x, nx_resize_mode mode, bool align_corners,
                           bool channels_last);
ngpt_status nx_cuda_argmax(nx_backend *, nx_tensor *y, const nx_tensor *x);

#endif
