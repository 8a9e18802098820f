/* winograd.c — the F(4x4, 3x3) Winograd weight transform, U = G w G^T per (out, in) channel pair,
 * written straight into the blocked layout oneDNN's jit_wino_4x3 convolution reads
 * (dnnl_wino_wei_OBaaIBOIio). oneDNN 2.6 has the reorder, but its final layout pass runs on one
 * thread with scalar stores: 54 ms for one 512x512x3x3 kernel, longer than the Winograd
 * convolution it feeds at 64x64, which made Winograd a loss below ~16k pixels (conv.c). Here it
 * is one pass, 16 output channels at a time (one 64-byte row of the layout), on the pool.
 *
 * G is oneDNN's (its kernels' input/output transforms are scaled to match these rows, so they are
 * part of its interface, not a choice): rows for the 6 points of F(4x4, 3x3). */
#include "cpu_ops.h"
#include "cpu_util.h"

#include <string.h>

static const float G[6][3] = {
    {1.13777777777778f, 0.f, 0.f},
    {-0.688403361344538f, -0.430252100840336f, -0.26890756302521f},
    {-0.688403361344538f, 0.430252100840336f, -0.26890756302521f},
    {0.119514472455649f, 0.179271708683473f, 0.26890756302521f},
    {0.119514472455649f, -0.179271708683473f, 0.26890756302521f},
    {0.f, 0.f, 1.f},
};

enum { A = 6, R = 3, OB_MAX = 64 };

typedef struct wino_job {
    float       *dst;
    const float *w;     /* [O, C, 3, 3] */
    int64_t      O, C;  /* the kernel's channels (the layout's may be padded above them) */
    nx_wino_layout l;
} wino_job;

/* One item = one block of oc_block output channels, all input channels. */
static void wino_blocks(int64_t b0, int64_t b1, void *arg)
{
    const wino_job *j = arg;
    const nx_wino_layout *l = &j->l;
    const int64_t ic_chunks = l->ic / (l->ic_block * l->ic2_block);
    float u[A * A][OB_MAX];
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t occ = blk / l->oc2_block, ob = blk % l->oc2_block, oc0 = blk * l->oc_block;
        for (int64_t ic = 0; ic < l->ic; ic++) {
            const int64_t icc = ic / (l->ic_block * l->ic2_block);
            const int64_t ib = ic / l->ic_block % l->ic2_block, ii = ic % l->ic_block;
            for (int o = 0; o < l->oc_block; o++) {
                const int64_t oc = oc0 + o;
                float k[R][R] = {{0}};
                if (oc < j->O && ic < j->C) memcpy(k, j->w + (oc * j->C + ic) * R * R, sizeof k);
                float t[R][A]; /* t = k G^T */
                for (int r = 0; r < R; r++)
                    for (int c = 0; c < A; c++) t[r][c] = k[r][0] * G[c][0] + k[r][1] * G[c][1] + k[r][2] * G[c][2];
                for (int r = 0; r < A; r++) /* u = G t */
                    for (int c = 0; c < A; c++)
                        u[r * A + c][o] = G[r][0] * t[0][c] + G[r][1] * t[1][c] + G[r][2] * t[2][c];
            }
            for (int uh = 0; uh < A; uh++)
                for (int uw = 0; uw < A; uw++) {
                    const int64_t off =
                        ((((((occ * A + uh) * A + uw) * ic_chunks + icc) * l->oc2_block + ob) * l->ic2_block + ib) *
                             l->ic_block + ii) * l->oc_block;
                    memcpy(j->dst + off, u[uh * A + uw], (size_t)l->oc_block * sizeof(float));
                }
        }
    }
}

bool nx_cpu_wino_layout_ok(const nx_wino_layout *l)
{
    return l->oc_block > 0 && l->oc_block <= OB_MAX && l->ic_block > 0 && l->oc2_block > 0 && l->ic2_block > 0 &&
           l->oc % (l->oc_block * l->oc2_block) == 0 && l->ic % (l->ic_block * l->ic2_block) == 0;
}

void nx_cpu_wino_weights_4x3(nx_backend *be, float *dst, const nx_wino_layout *l, const float *w, int64_t O, int64_t C)
{
    wino_job j = {dst, w, O, C, *l};
    nx_cpu_parallel_for(be, l->oc / l->oc_block, l->ic * l->oc_block * A * A, wino_blocks, &j);
}
