/* timestep_math.h — the sinusoidal timestep embedding of diffusers' get_timestep_embedding
 * (embeddings.py), one (timestep, frequency) pair at a time, in float32 as PyTorch computes it.
 * Shared by the host (nx_timestep_embedding in lib/models/unet_blocks.c), the CPU backend's
 * nx_op_timestep_embedding and the CUDA kernel (kernels/layout.cu), so the three agree up to the
 * last bit of expf/sinf/cosf (the device computes them in double, below). Compiled as C and as
 * CUDA C++. */
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
#ifdef __CUDA_ARCH__
    /* the device's expf/sinf/cosf are up to 2 ulp off, and t (up to ~1000) multiplies the exp's
     * error into the angle: 2.4e-4 at t = 999. In double, rounded once, they are the correctly
     * rounded values glibc's float functions give in all but rare cases. */
    const float a = t * (float)exp((double)e);
    *sn = (float)sin((double)a);
    *cs = (float)cos((double)a);
#else
    const float a = t * expf(e);
    *sn = sinf(a);
    *cs = cosf(a);
#endif
    *col_sin = p->flip_sin_to_cos ? half + i : i;
    *col_cos = p->flip_sin_to_cos ? i : half + i;
}

#endif
