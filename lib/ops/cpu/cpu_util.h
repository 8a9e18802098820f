/* cpu_util.h — shared helpers of the CPU op files: a chunked parallel-for over the context's pool
 * and the vector kernels (nx_cpu_isa picks their AVX-512, AVX2 or portable form). */
#ifndef NX_CPU_UTIL_H
#define NX_CPU_UTIL_H

#include "../backend.h"
#include "../../core/cpu_isa.h"

#include <stdbool.h>

/* fn(i0, i1, arg) processes items [i0, i1). */
typedef void (*nx_range_fn)(int64_t i0, int64_t i1, void *arg);

/* Split [0, n) into contiguous ranges and run them on be->pool. item_cost is roughly the number
 * of elements one item touches; small totals run on the caller. Each item must be computed
 * independently of the split (then results do not depend on the thread count). */
void nx_cpu_parallel_for(nx_backend *be, int64_t n, int64_t item_cost, nx_range_fn fn, void *arg);


#endif

/* F32 data of a float tensor: t->data itself when it is F32, else a converted copy in *tmp
 * (nx_malloc'd; free with nx_free). NULL with *tmp NULL on allocation failure. */
const float *nx_cpu_as_f32(const nx_tensor *t, float **tmp);

/* Vector kernels (AVX-512, AVX2 or portable by nx_cpu_isa; each result is the same for every
 * call on a given machine). */
float nx_vsum(const float *x, int64_t n);
float nx_vsumsq(const float *x, int64_t n);                 /* sum x^2 */
float nx_vsumsqdev(const float *x, float mean, int64_t n);  /* sum (x - mean)^2 */
/* y = x * s (* w[i] when w) (+ b[i] when b); y may alias x. */
void nx_vscale_wb(float *y, const float *x, float s, const float *w, const float *b, int64_t n);
/* y = (x - mean) * s * w[i] + b[i]  (w, b may be NULL); y may alias x. */
void nx_vnorm_wb(float *y, const float *x, float mean, float s, const float *w, const float *b, int64_t n);
/* y = x * a + c; y may alias x. */
void nx_vaffine(float *y, const float *x, float a, float c, int64_t n);
/* Column sums of x [rows, C] shifted by shift[c]: s[c] += sum (x - shift), q[c] += sum (x -
 * shift)^2, in double (AVX-512: F32 over blocks of 64 rows, then double). */
void nx_vcolstats(const float *x, int64_t rows, int64_t C, const float *shift, double *s, double *q);

/* y = x >= 0 ? x : x * slope (slope 0: ReLU, but -0 and NaN kept as x * 0); y may alias x. The
 * branchy scalar loop stayed scalar and mispredicted on every sign change. */
void nx_vleaky_relu(float *y, const float *x, float slope, int64_t n);
/* y = x * sigmoid(x) (SiLU) / y = sigmoid(x); y may alias x. AVX-512/AVX2 use a degree-6 exp
 * polynomial (about 2 ulp); the portable path uses expf. */
void nx_vsilu(float *y, const float *x, int64_t n);
void nx_vsigmoid(float *y, const float *x, int64_t n);
/* Exact (erf) GELU, tanh GELU, quick GELU; same accuracy class; y may alias x. */
void nx_vgelu(float *y, const float *x, int64_t n);
void nx_vgelu_tanh(float *y, const float *x, int64_t n);
void nx_vquick_gelu(float *y, const float *x, int64_t n);
/* y = exp(x * scale - shift); returns the sum of y (float, 32 lanes). y may alias x. */
float nx_vexp_sum(float *y, const float *x, float scale, float shift, int64_t n);
/* max(x * scale) (scale may be negative). */
float nx_vmax_scaled(const float *x, float scale, int64_t n);
/* y *= s */
void nx_vmul_scalar(float *y, float s, int64_t n);
