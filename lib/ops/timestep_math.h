/* timestep_math.h — the sinusoidal timestep embedding of diffusers' get_timestep_embedding
 * (embeddings.py), one (timestep, frequency) pair at a time, in float32 as PyTorch computes it.
 * Shared by the host (nx_timestep_embedding in lib/models/unet_blocks.c), the CPU backend's
 * nx_op_timestep_embedding and the CUDA kernel (kernels/layout.cu), so the three agree up to the
 * device's sinf/cosf/expf. Compiled as C and as CUDA C++. */
#ifndef NX_TIMESTEP_MATH_H
#define NX_TIMESTEP_MATH_H

#include <math.h>
#include <stdbool.h>

#ifdef __CUDACC__
#define NX_TS_FN static __host__ __device__ __forceinline__
#else
#define NX_TS_FN static inline
#endif

/* y[b, :] = [sin | cos] of t[b] * exp(-ln(max_period) i / (dim/2 - shift)), i < dim/2; the halves
 * swapped when flip_sin_to_cos; a zero column appended when dim is odd. */
typedef struct nx_timestep_params {
    int   dim;
    bool  flip_sin_to_cos;
    float shift;        /* downscale_freq_shift */
    float max_period;   /* 10000 */
} nx_timestep_params;

/* Column i < dim/2 of timestep t: its sine and cosine and where they go. */
NX_TS_FN void nx_timestep_pair(const nx_timestep_params *p, float t, int i, float *sn, float *cs, int *col_sin,
                               int *col_cos)
{
    const int half = p->dim / 2;
    const float c = (float)(-log((double)p->max_period));
    const float den = (float)half - p->shift;
    float e = (float)i * c;
    e = e / den;
    const float a = t * expf(e);
    *sn = sinf(a);
    *cs = cosf(a);
    *col_sin = p->flip_sin_to_cos ? half + i : i;
    *col_cos = p->flip_sin_to_cos ? i : half + i;
}

#endif
