/* ref_ops.h — plain reference implementations of the ops (naive loops, double arithmetic, F32
 * in and out) for the op tests: the CPU backend and later the CUDA backend are compared against
 * these. Shapes follow ops.h (row-major, ne[0] outermost). Nothing here is fast or clever. */
#ifndef NX_REF_OPS_H
#define NX_REF_OPS_H

#include "ops/ops.h"

#include <stddef.h>
#include <stdint.h>

int64_t ref_numel(int rank, const int64_t *ne);
/* [n, c, sp] -> [n, sp, c]: an NCHW array in the channels-last layout (F32, and F64 for the
 * conv references) */
void ref_to_nhwc(float *dst, const float *src, int64_t n, int64_t c, int64_t sp);
void ref_to_nhwc_d(double *dst, const double *src, int64_t n, int64_t c, int64_t sp);

/* x[rows, c] -> y */
void ref_rms_norm(float *y, const float *x, int64_t rows, int64_t c, const float *w, double eps);
void ref_layer_norm(float *y, const float *x, int64_t rows, int64_t c, const float *w, const float *b, double eps);
/* x[n, c, spatial] */
void ref_group_norm(float *y, const float *x, int64_t n, int64_t c, int64_t spatial, int groups, const float *w,
                    const float *b, double eps, int silu);
/* x[b, s, h, d], pos[s] */
void ref_rope(float *y, const float *x, int64_t b, int64_t s, int64_t h, int64_t d, const int32_t *pos, int n_rot,
              double theta, nx_rope_mode mode);
void ref_softmax(float *y, const float *x, int64_t rows, int64_t c, double scale);
double ref_unary1(nx_unary op, double x, double param);
void ref_unary(float *y, const float *x, int64_t n, nx_unary op, double param);
/* numpy broadcasting; y has rank max(ra, rb) and the broadcast shape */
void ref_binary(float *y, const float *a, int ra, const int64_t *nea, const float *b, int rb, const int64_t *neb,
                nx_binary op);
void ref_scale(float *y, const float *x, int64_t n, double alpha, double beta);
/* x[rows, 2n] -> y[rows, n] */
void ref_glu(float *y, const float *x, int64_t rows, int64_t n, nx_unary act, int gate_first);
void ref_argmax(int32_t *y, const float *x, int64_t rows, int64_t c);
/* table (decoded to F32) [v, d], ids[n] -> y[n, d] */
void ref_get_rows(float *y, const float *table, int64_t d, const int32_t *ids, int64_t n);
/* element-size generic layout references */
void ref_concat(void *y, const void *a, const void *b, size_t es, int rank, const int64_t *nea, const int64_t *neb,
                int axis);
void ref_slice(void *y, const void *x, size_t es, int rank, const int64_t *nex, int axis, int64_t start, int64_t len);
void ref_permute(void *y, const void *x, size_t es, int rank, const int64_t *nex, const int *perm);
/* x[n, c, h, w] -> y[n, c, ho, wo], index arithmetic as PyTorch's CPU kernels (float) */
void ref_resize(float *y, const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t ho, int64_t wo,
                nx_resize_mode mode, int align_corners);

/* For the GEMM/attention tests: y[m, n] = x[m, k] @ w[n, k]^T + b[n] (b may be NULL). */
void ref_linear(float *y, const float *x, const float *w, const float *b, int64_t m, int64_t n, int64_t k);
/* q[B, Sq, H, D], k/v[B, Skv, Hkv, D], mask NULL or [B or 1, Sq, Skv] (mask_batched: 1 if per batch).
 * Skv <= 8192 (and ref_rope: D <= 4096): fixed scratch arrays. */
void ref_attention(float *out, const float *q, const float *k, const float *v, const float *mask, int mask_batched,
                   int64_t bsz, int64_t sq, int64_t skv, int64_t h, int64_t hkv, int64_t d, double scale, int causal);

/* Convolutions in double; sc gets the sum of |terms| per output (the error scale).
 * N-d conv over up to 3 spatial dims: x[xs], w[ws] (PyTorch's [O, C/groups, k...]), y[ys] */
void ref_conv(const float *x, const float *w, const float *b, const int64_t *xs, const int64_t *ws,
              const int64_t *ys, int nsp, const nx_conv_params *p, double *y, double *sc);
/* p's epilogue (nx_conv_params.act: LEAKY_RELU or RELU; .residual, F32) applied to y[n] */
void ref_epilogue(double *y, double *sc, size_t n, const nx_conv_params *p);
/* ConvTranspose1d: x[N, C, L], w[C, O/groups, k] (PyTorch's layout), y[N, O, Lo] */
void ref_conv_transpose1d(const float *x, const float *w, const float *b, int64_t N, int64_t C, int64_t O, int64_t L,
                          int64_t Lo, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t groups, double *y,
                          double *sc);

#endif
