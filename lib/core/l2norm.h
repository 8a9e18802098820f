/* l2norm.h — torch.nn.functional.normalize(x, dim=-1) on host rows: x / max(||x||_2, 1e-12),
 * the norm accumulated in double and rounded to float (torch's float32 norm is within an ulp).
 * CLAP's text embedding (decoder_text.c) and the safety checker's cosine distances use it. */
#ifndef NX_L2NORM_H
#define NX_L2NORM_H

#include <math.h>
#include <stdint.h>

/* rows x n floats, in place */
static inline void nx_l2_normalize_rows(float *x, int64_t rows, int64_t n)
{
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++) ss += (double)x[r * n + i] * x[r * n + i];
        float nrm = (float)sqrt(ss);
        if (nrm < 1e-12f) nrm = 1e-12f;
        for (int64_t i = 0; i < n; i++) x[r * n + i] /= nrm;
    }
}

#endif
