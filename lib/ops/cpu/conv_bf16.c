/* conv_bf16.c — conv2d (and conv1d, as H = 1) in BF16 compute on the CPU: the input gathered
 * into BF16 columns (im2col), then oneDNN's bf16 matmul, F32 accumulation and output.
 *
 * Why im2col and not oneDNN's bf16 convolution: on our plain NCHW activations oneDNN 2.x's bf16
 * convolution measured no faster than the F32 Winograd it replaced (session 20: the SD UNet CFG
 * step 1.93 s against 1.91 s); its fast bf16 kernels want blocked activations and weights that the
 * models would have to keep end to end. Its bf16 matmul, on the other hand, runs at ~0.75 of the
 * BF16 peak (bench_imagebind), and with the weights as the matmul's left operand, W [O, C*kh*kw]
 * is the PyTorch filter [O, C, kh, kw] as stored: no weight reorder, and the product comes out as
 * NCHW rows, y[n] [O, Ho*Wo]. The columns cost 2 * kh * kw bytes per input element per output
 * position, written once and read by the GEMM: a memory-bound pass that is small next to the
 * GEMM's C*kh*kw multiply-adds per output. Calls whose columns would pass COL_BYTES run as
 * chunks of output rows, so a VAE conv at 512² does not take a GiB of scratch. Which
 * convolutions come here (without AMX, not those the F32 Winograd takes): conv.c's
 * use_bf16_gemm. */
#include "cpu_ops.h"

#include "../../core/alloc.h"
#include "../../core/dtype.h"
#include "../../core/error.h"

#include <string.h>

#define COL_BYTES ((int64_t)32 << 20)

typedef struct col_job {
    const float              *x;
    uint16_t                 *col;   /* [nimg][K][rows * Wo] */
    const nx_conv_bf16_shape *s;
    int64_t                   n0, nimg, r0, rows, K;
} col_job;

/* Row k of image img's columns: input channel c, kernel tap (i, j), output rows r0 .. r0 + rows. */
static void col_row(const col_job *J, int64_t img, int64_t k)
{
    const nx_conv_bf16_shape *s = J->s;
    const int64_t t = img * J->K + k;
    const int64_t c = k / (s->kh * s->kw), i = (k / s->kw) % s->kh, j = k % s->kw;
    const int64_t Wo = s->Wo, iw0 = j * s->dw - s->pw;
    const float *xc = J->x + ((J->n0 + img) * s->C + c) * s->H * s->W;
    uint16_t *d = J->col + t * J->rows * Wo;
    /* output columns [lo, hi) read inside the row (stride sw) */
    int64_t lo = 0, hi = Wo;
    while (lo < Wo && lo * s->sw + iw0 < 0) lo++;
    while (hi > lo && (hi - 1) * s->sw + iw0 >= s->W) hi--;
    if (s->sw == 1 && s->sh == 1 && Wo == s->W && hi > lo) {
        /* "same" convolutions at stride 1 (nearly all of a UNet's): the valid rows of this tap
         * read one contiguous run of x, shifted by iw0, so they convert in one call; the
         * columns outside [lo, hi) then get their zeros back (they read the neighbour row) */
        int64_t ra = 0, rb = J->rows; /* rows whose input row is inside x */
        while (ra < rb && (J->r0 + ra) - s->ph + i * s->dh < 0) ra++;
        while (rb > ra && (J->r0 + rb - 1) - s->ph + i * s->dh >= s->H) rb--;
        memset(d, 0, (size_t)(ra * Wo) * sizeof *d);
        memset(d + rb * Wo, 0, (size_t)((J->rows - rb) * Wo) * sizeof *d);
        if (rb > ra) {
            const int64_t ih = (J->r0 + ra) - s->ph + i * s->dh;
            const int64_t first = ra * Wo + lo, last = (rb - 1) * Wo + hi; /* [first, last) of d */
            nx_f32_to_bf16_n(xc + (ih * s->W + iw0 + lo), d + first, (size_t)(last - first));
            for (int64_t r = ra; r < rb; r++) {
                for (int64_t o = 0; o < lo; o++) d[r * Wo + o] = 0;
                for (int64_t o = hi; o < Wo; o++) d[r * Wo + o] = 0;
            }
        }
        return;
    }
    for (int64_t r = 0; r < J->rows; r++, d += Wo) {
        const int64_t ih = (J->r0 + r) * s->sh - s->ph + i * s->dh;
        if (ih < 0 || ih >= s->H || hi <= lo) {
            memset(d, 0, (size_t)Wo * sizeof *d);
            continue;
        }
        const float *xr = xc + ih * s->W; /* column o reads xr[o * sw + iw0], inside for o in [lo, hi) */
        memset(d, 0, (size_t)lo * sizeof *d);
        if (s->sw == 1) {
            nx_f32_to_bf16_n(xr + (lo + iw0), d + lo, (size_t)(hi - lo));
        } else {
            for (int64_t o = lo; o < hi; o++) d[o] = nx_f32_to_bf16(xr[o * s->sw + iw0]);
        }
        memset(d + hi, 0, (size_t)(Wo - hi) * sizeof *d);
    }
}

/* The kh * kw rows of one input channel (task t = img * C + c): its plane stays in cache. */
static void col_task(int64_t t, int64_t nt, void *arg)
{
    (void)nt;
    const col_job *J = arg;
    const int64_t taps = J->s->kh * J->s->kw, img = t / J->s->C, c = t % J->s->C;
    for (int64_t k = c * taps; k < (c + 1) * taps; k++) col_row(J, img, k);
}

ngpt_status nx_cpu_conv_bf16(nx_backend *be, float *y, const float *x, const nx_tensor *w, const nx_tensor *b,
                             const nx_conv_bf16_shape *s)
{
    const int64_t K = s->C * s->kh * s->kw, P = s->Ho * s->Wo, O = s->O;
    /* images per chunk (all when their columns fit), else rows per chunk of one image */
    int64_t nimg = s->N, rows = s->Ho;
    const int64_t img_bytes = K * P * 2;
    if (s->N * img_bytes > COL_BYTES) {
        nimg = img_bytes <= COL_BYTES ? COL_BYTES / img_bytes : 1;
        if (nimg == 1) {
            rows = COL_BYTES / (K * s->Wo * 2);
            rows = rows < 1 ? 1 : rows > s->Ho ? s->Ho : rows;
        }
    }
    uint16_t *wc = NULL, *col = nx_malloc_aligned((size_t)(nimg * K * rows * s->Wo) * 2);
    float *bc = NULL;
    const uint16_t *wd = w->data;
    if (w->dtype != NGPT_DTYPE_BF16) wd = wc = nx_malloc_aligned((size_t)(O * K) * 2);
    if (b) bc = nx_malloc_aligned((size_t)O * sizeof(float));
    ngpt_status st = NGPT_OK;
    if (!col || !wd || (b && !bc)) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "conv (bf16): cannot allocate %lld x %lld bf16 columns or weights",
                    (long long)K, (long long)(rows * s->Wo));
        goto out;
    }
    if (wc) nx_cpu_convert(be, wc, NGPT_DTYPE_BF16, w->data, w->dtype, O * K);
    if (bc) nx_cpu_convert(be, bc, NGPT_DTYPE_F32, b->data, b->dtype, O);
    for (int64_t n0 = 0; st == NGPT_OK && n0 < s->N; n0 += nimg) {
        const int64_t ni = s->N - n0 < nimg ? s->N - n0 : nimg;
        for (int64_t r0 = 0; st == NGPT_OK && r0 < s->Ho; r0 += rows) {
            const int64_t nr = s->Ho - r0 < rows ? s->Ho - r0 : rows;
            col_job cj = {x, col, s, n0, ni, r0, nr, K};
            nx_pool_run(be->pool, ni * s->C, col_task, &cj);
            st = nx_cpu_conv_gemm_bf16(be, y + n0 * O * P + r0 * s->Wo, O * P, P, wd, col, ni, O, K, nr * s->Wo);
        }
    }
    if (st == NGPT_OK && bc) {
        nx_cpu_add_row_bias(be, y, bc, s->N, O, P);
    }
out:
    nx_free_aligned(col);
    nx_free_aligned(wc);
    nx_free_aligned(bc);
    return st;
}
