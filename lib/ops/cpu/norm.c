/* norm.c — RMSNorm, LayerNorm (over the last dim) and GroupNorm (+ fused SiLU) on F32 rows.
 * Row statistics accumulate in float over 16-32 lanes (LayerNorm: two passes, mean then the
 * squared deviations); GroupNorm statistics sum each channel in float lanes and the channels
 * of a group in double (channels last: each channel over a stripe of rows in double). Weights
 * may be F32/F16/BF16: they are converted to F32 once per call. */
#include "cpu_ops.h"
#include "cpu_util.h"

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <math.h>
#include <string.h>

typedef struct {
    const float *x;
    float *y;
    const float *w, *b;
    int64_t c;
    float eps;
} row_norm_job;

static void rms_rows(int64_t r0, int64_t r1, void *vp)
{
    const row_norm_job *j = vp;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->c;
        float ms = nx_vsumsq(x, j->c) / (float)j->c;
        nx_vscale_wb(j->y + r * j->c, x, 1.0f / sqrtf(ms + j->eps), j->w, NULL, j->c);
    }
}

static void ln_rows(int64_t r0, int64_t r1, void *vp)
{
    const row_norm_job *j = vp;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->c;
        float mean = nx_vsum(x, j->c) / (float)j->c;
        float var = nx_vsumsqdev(x, mean, j->c) / (float)j->c;
        nx_vnorm_wb(j->y + r * j->c, x, mean, 1.0f / sqrtf(var + j->eps), j->w, j->b, j->c);
    }
}

static ngpt_status oom(const char *op) { return nx_err(NGPT_ERR_OUT_OF_MEMORY, "cpu %s: out of memory", op); }

ngpt_status nx_cpu_rms_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, float eps)
{
    float *wt = NULL;
    const float *wf = NULL;
    if (w && !(wf = nx_cpu_as_f32(w, &wt))) return oom("rms_norm");
    int64_t c = x->ne[x->rank - 1];
    int64_t rows = c ? nx_numel(x) / c : 0;
    row_norm_job j = {x->data, y->data, wf, NULL, c, eps};
    nx_cpu_parallel_for(be, rows, 2 * c, rms_rows, &j);
    nx_free(wt);
    return NGPT_OK;
}

typedef struct {
    row_norm_job n;
    float *x;        /* in place: x += r */
    const float *r;
} rms_add_job;

/* per row: x += r (the binary op's F32 sum), then the same RMSNorm of the stored row */
static void rms_add_rows(int64_t r0, int64_t r1, void *vp)
{
    const rms_add_job *j = vp;
    const int64_t c = j->n.c;
    for (int64_t r = r0; r < r1; r++) {
        float *x = j->x + r * c;
        const float *a = j->r + r * c;
        for (int64_t i = 0; i < c; i++) x[i] += a[i];
        rms_rows(r, r + 1, (void *)&j->n);
    }
}

ngpt_status nx_cpu_rms_norm_add(nx_backend *be, nx_tensor *y, nx_tensor *x, const nx_tensor *r, const nx_tensor *w,
                                float eps)
{
    float *wt = NULL;
    const float *wf = NULL;
    if (w && !(wf = nx_cpu_as_f32(w, &wt))) return oom("rms_norm_add");
    int64_t c = x->ne[x->rank - 1];
    int64_t rows = c ? nx_numel(x) / c : 0;
    rms_add_job j = {{x->data, y->data, wf, NULL, c, eps}, x->data, r->data};
    nx_cpu_parallel_for(be, rows, 4 * c, rms_add_rows, &j);
    nx_free(wt);
    return NGPT_OK;
}

/* w and b (either may be NULL) as F32 arrays: the tensors' own, or copies in *wt / *bt (NULL
 * otherwise) for the caller to free. */
static ngpt_status vecs_f32(const nx_tensor *w, const nx_tensor *b, const float **wf, const float **bf, float **wt,
                            float **bt, const char *op)
{
    *wf = *bf = NULL;
    *wt = *bt = NULL;
    if (w && !(*wf = nx_cpu_as_f32(w, wt))) return oom(op);
    if (b && !(*bf = nx_cpu_as_f32(b, bt))) {
        nx_free(*wt);
        *wt = NULL;
        return oom(op);
    }
    return NGPT_OK;
}

ngpt_status nx_cpu_layer_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b, float eps)
{
    float *wt, *bt;
    const float *wf, *bf;
    NX_TRY(vecs_f32(w, b, &wf, &bf, &wt, &bt, "layer_norm"));
    int64_t c = x->ne[x->rank - 1];
    int64_t rows = c ? nx_numel(x) / c : 0;
    row_norm_job j = {x->data, y->data, wf, bf, c, eps};
    nx_cpu_parallel_for(be, rows, 3 * c, ln_rows, &j);
    nx_free(wt);
    nx_free(bt);
    return NGPT_OK;
}

typedef struct {
    const float *x;
    float *y;
    const float *w, *b;
    int64_t c, groups, spatial;
    float eps;
    bool silu;
} gn_job;

static void gn_groups(int64_t g0, int64_t g1, void *vp)
{
    const gn_job *j = vp;
    int64_t cg = j->c / j->groups, len = cg * j->spatial;
    for (int64_t gi = g0; gi < g1; gi++) {
        const float *x = j->x + gi * len;
        float *y = j->y + gi * len;
        /* per-channel float sums (vectorised, 32 lanes) accumulated in double; two passes */
        double s = 0, ss = 0;
        for (int64_t ci = 0; ci < cg; ci++) s += nx_vsum(x + ci * j->spatial, j->spatial);
        float meanf = (float)(s / (double)len);
        for (int64_t ci = 0; ci < cg; ci++) ss += nx_vsumsqdev(x + ci * j->spatial, meanf, j->spatial);
        float rstd = (float)(1.0 / sqrt(ss / (double)len + j->eps));
        int64_t c0 = (gi % j->groups) * cg;
        for (int64_t ci = 0; ci < cg; ci++) {
            int64_t ch = c0 + ci;
            float a = rstd * (j->w ? j->w[ch] : 1.0f);
            float sh = (j->b ? j->b[ch] : 0.0f) - meanf * a;
            float *yr = y + ci * j->spatial;
            nx_vaffine(yr, x + ci * j->spatial, a, sh, j->spatial);
            if (j->silu) nx_vsilu(yr, yr, j->spatial);
        }
    }
}

/* Channels last: x [N, S, C], a group's channels a slice of every row. Two passes, each parallel
 * over stripes of rows (a task per (n, stripe)): per-channel sums of x - shift and of its square
 * (nx_vcolstats: double), folded into the groups serially, where the shift is the group's first
 * value (so the variance is not a difference of two large sums); then y = x * a[c] + sh[c] row by
 * row (nx_vnorm_wb). */
#define GN_STRIPES 64
#define GN_BF16_CHUNK 512

typedef struct {
    const float *x;
    void *y;                      /* F32, or BF16 with bf16 */
    bool bf16;
    int64_t S, C, stripes, rows;  /* rows per stripe */
    double *s, *q;                /* [N * stripes, C] per-channel sums of x - shift, (x - shift)^2 */
    const float *shift;           /* [N, C]: the first value of each channel's group */
    const float *a, *sh;          /* [N, C]: scale and shift of the apply pass */
    int pass;
    bool silu;
} gncl_job;

static void gncl_run(int64_t t0, int64_t t1, void *vp)
{
    const gncl_job *j = vp;
    const int64_t C = j->C;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t n = t / j->stripes, r0 = (t % j->stripes) * j->rows;
        const int64_t r1 = r0 + j->rows < j->S ? r0 + j->rows : j->S;
        if (r1 <= r0) continue;
        if (j->pass == 0) {
            nx_vcolstats(j->x + (n * j->S + r0) * C, r1 - r0, C, j->shift + n * C, j->s + t * C, j->q + t * C);
            continue;
        }
        const float *a = j->a + n * C, *sh = j->sh + n * C;
        for (int64_t r = r0; r < r1; r++) {
            const float *x = j->x + (n * j->S + r) * C;
            if (!j->bf16) {
                float *y = (float *)j->y + (n * j->S + r) * C;
                nx_vnorm_wb(y, x, 0.0f, 1.0f, a, sh, C);
                if (j->silu) nx_vsilu(y, y, C);
                continue;
            }
            uint16_t *y = (uint16_t *)j->y + (n * j->S + r) * C;
            float buf[GN_BF16_CHUNK]; /* the row in F32 a chunk at a time, then rounded */
            for (int64_t c0 = 0; c0 < C; c0 += GN_BF16_CHUNK) {
                const int64_t m = C - c0 < GN_BF16_CHUNK ? C - c0 : GN_BF16_CHUNK;
                nx_vnorm_wb(buf, x + c0, 0.0f, 1.0f, a + c0, sh + c0, m);
                if (j->silu) nx_vsilu(buf, buf, m);
                nx_f32_to_bf16_n(buf, y + c0, (size_t)m);
            }
        }
    }
}

static ngpt_status group_norm_cl(nx_backend *be, void *y, bool y_bf16, const nx_tensor *x, const float *wf,
                                 const float *bf, int groups, float eps, bool silu)
{
    const int64_t N = x->ne[0], C = x->ne[x->rank - 1];
    int64_t S = 1;
    for (int i = 1; i < x->rank - 1; i++) S *= x->ne[i];
    if (N == 0 || C == 0 || S == 0) return NGPT_OK;
    const int64_t stripes = S < GN_STRIPES ? S : GN_STRIPES;
    gncl_job j = {x->data, y, y_bf16, S, C, stripes, (S + stripes - 1) / stripes, NULL, NULL, NULL, NULL, NULL, 0, silu};
    j.s = nx_calloc((size_t)(2 * N * stripes * C), sizeof *j.s);
    float *shift = nx_malloc((size_t)(N * C) * sizeof *shift), *a = nx_malloc((size_t)(N * C) * sizeof *a),
          *sh = nx_malloc((size_t)(N * C) * sizeof *sh);
    if (!j.s || !shift || !a || !sh) {
        nx_free(j.s), nx_free(shift), nx_free(a), nx_free(sh);
        return oom("group_norm");
    }
    j.q = j.s + N * stripes * C;
    const int64_t cg = C / groups, cost = j.rows * C * 2;
    const float *xs = x->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) shift[n * C + c] = xs[n * S * C + c / cg * cg];
    j.shift = shift;
    nx_cpu_parallel_for(be, N * stripes, cost, gncl_run, &j);
    const double len = (double)(cg * S);
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < groups; g++) {
            double sum = 0, sq = 0;
            for (int64_t t = 0; t < stripes; t++)
                for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
                    sum += j.s[(n * stripes + t) * C + c];
                    sq += j.q[(n * stripes + t) * C + c];
                }
            const double dm = sum / len, var = sq / len - dm * dm;
            const double mean = dm + (double)shift[n * C + g * cg];
            const float rstd = (float)(1.0 / sqrt((var > 0 ? var : 0) + eps));
            for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
                a[n * C + c] = rstd * (wf ? wf[c] : 1.0f);
                sh[n * C + c] = (bf ? bf[c] : 0.0f) - (float)mean * a[n * C + c];
            }
        }
    j.a = a, j.sh = sh, j.pass = 1;
    nx_cpu_parallel_for(be, N * stripes, cost, gncl_run, &j);
    nx_free(j.s), nx_free(shift), nx_free(a), nx_free(sh);
    return NGPT_OK;
}

ngpt_status nx_cpu_group_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b, int groups, float eps, unsigned flags)
{
    const bool silu = (flags & NX_GN_SILU) != 0;
    float *wt, *bt;
    const float *wf, *bf;
    NX_TRY(vecs_f32(w, b, &wf, &bf, &wt, &bt, "group_norm"));
    if (flags & NX_GN_CHANNELS_LAST) {
        ngpt_status s = group_norm_cl(be, y->data, false, x, wf, bf, groups, eps, silu);
        nx_free(wt);
        nx_free(bt);
        return s;
    }
    int64_t spatial = 1;
    for (int i = 2; i < x->rank; i++) spatial *= x->ne[i];
    gn_job j = {x->data, y->data, wf, bf, x->ne[1], groups, spatial, eps, silu};
    int64_t n_groups = x->ne[0] * groups;
    if (spatial > 0 && x->ne[1] > 0)
        nx_cpu_parallel_for(be, n_groups, 4 * (x->ne[1] / groups) * spatial, gn_groups, &j);
    nx_free(wt);
    nx_free(bt);
    return NGPT_OK;
}

ngpt_status nx_cpu_group_norm_cl_bf16(nx_backend *be, uint16_t *y, const nx_tensor *x, const nx_tensor *w,
                                      const nx_tensor *b, int groups, float eps, bool silu)
{
    float *wt, *bt;
    const float *wf, *bf;
    NX_TRY(vecs_f32(w, b, &wf, &bf, &wt, &bt, "group_norm"));
    ngpt_status s = group_norm_cl(be, y, true, x, wf, bf, groups, eps, silu);
    nx_free(wt);
    nx_free(bt);
    return s;
}
