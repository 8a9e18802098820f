/* layout.c — gathers and copies: get_rows (F32/F16/BF16 tables), concat, slice, permute
 * (any rank <= 8, dims collapsed first), cast (F32/F16/BF16/I32), and resize (nearest and
 * bilinear, index arithmetic as PyTorch's CPU upsample kernels do it, in float; NCHW or
 * channels last). */
#include "cpu_ops.h"
#include "cpu_util.h"

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <math.h>
#include <string.h>

#define BLOCK 8192

/* ---- get_rows ---- */

typedef struct {
    const nx_tensor *table;
    const int32_t *ids;
    float *y;
    int64_t d;
} rows_job;

static void get_rows_run(int64_t r0, int64_t r1, void *vp)
{
    const rows_job *j = vp;
    size_t es = nx_dtype_size(j->table->dtype);
    for (int64_t r = r0; r < r1; r++) {
        const unsigned char *src = (const unsigned char *)j->table->data + (size_t)j->ids[r] * (size_t)j->d * es;
        float *dst = j->y + r * j->d;
        switch (j->table->dtype) {
        case NGPT_DTYPE_F16: nx_f16_to_f32_n((const uint16_t *)src, dst, (size_t)j->d); break;
        case NGPT_DTYPE_BF16: nx_bf16_to_f32_n((const uint16_t *)src, dst, (size_t)j->d); break;
        default: memcpy(dst, src, (size_t)j->d * sizeof *dst); break;
        }
    }
}

ngpt_status nx_cpu_get_rows(nx_backend *be, nx_tensor *y, const nx_tensor *table, const nx_tensor *ids)
{
    const int32_t *id = ids->data;
    int64_t n = ids->ne[0], v = table->ne[0];
    for (int64_t i = 0; i < n; i++)
        if (id[i] < 0 || id[i] >= v)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "get_rows: id %d at position %lld is outside [0, %lld) of table %s",
                          (int)id[i], (long long)i, (long long)v, table->name ? table->name : "");
    rows_job j = {table, id, y->data, table->ne[1]};
    nx_cpu_parallel_for(be, n, j.d, get_rows_run, &j);
    return NGPT_OK;
}

/* ---- concat / slice: outer loops of contiguous byte runs ---- */

typedef struct {
    const unsigned char *a, *b;
    unsigned char *y;
    size_t la, lb;   /* bytes per outer index taken from a / b */
    size_t sa;       /* a's bytes per outer index (slice: whole x row) */
} cat_job;

static void concat_run(int64_t o0, int64_t o1, void *vp)
{
    const cat_job *j = vp;
    for (int64_t o = o0; o < o1; o++) {
        unsigned char *y = j->y + (size_t)o * (j->la + j->lb);
        memcpy(y, j->a + (size_t)o * j->la, j->la);
        memcpy(y + j->la, j->b + (size_t)o * j->lb, j->lb);
    }
}

static void slice_run(int64_t o0, int64_t o1, void *vp)
{
    const cat_job *j = vp;
    for (int64_t o = o0; o < o1; o++) memcpy(j->y + (size_t)o * j->la, j->a + (size_t)o * j->sa, j->la);
}

static int64_t prod(const int64_t *ne, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= ne[i];
    return p;
}

ngpt_status nx_cpu_concat(nx_backend *be, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, int axis)
{
    size_t es = nx_dtype_size(a->dtype);
    int64_t outer = prod(a->ne, 0, axis), inner = prod(a->ne, axis + 1, a->rank);
    cat_job j = {a->data, b->data, y->data, (size_t)(a->ne[axis] * inner) * es, (size_t)(b->ne[axis] * inner) * es, 0};
    nx_cpu_parallel_for(be, outer, (int64_t)((j.la + j.lb) / 4 + 1), concat_run, &j);
    return NGPT_OK;
}

ngpt_status nx_cpu_slice(nx_backend *be, nx_tensor *y, const nx_tensor *x, int axis, int64_t start)
{
    size_t es = nx_dtype_size(x->dtype);
    int64_t outer = prod(x->ne, 0, axis), inner = prod(x->ne, axis + 1, x->rank);
    cat_job j = {(const unsigned char *)x->data + (size_t)(start * inner) * es, NULL, y->data,
                 (size_t)(y->ne[axis] * inner) * es, 0, (size_t)(x->ne[axis] * inner) * es};
    nx_cpu_parallel_for(be, outer, (int64_t)(j.la / 4 + 1), slice_run, &j);
    return NGPT_OK;
}

/* ---- permute ---- */

typedef struct {
    const unsigned char *x;
    unsigned char *y;
    size_t es;
    int m;                    /* collapsed rank */
    int64_t ne[NX_MAX_DIMS];  /* collapsed output shape */
    int64_t st[NX_MAX_DIMS];  /* input element stride of each output dim */
} perm_job;

#define PERM_INNER(T)                                                            \
    do {                                                                         \
        const T *xs = (const T *)j->x + off;                                     \
        T *yd = (T *)j->y + r * n;                                               \
        for (int64_t i = 0; i < n; i++) yd[i] = xs[i * s];                       \
    } while (0)

/* Tiled transpose for the common case where the output's second-innermost dim is the input's
 * innermost (st[m - 2] == 1): TILE output rows are filled together, reading TILE contiguous
 * input elements per output column. */
#define TILE 16
#define PERM_TILE(T)                                                                 \
    do {                                                                             \
        const T *xs = (const T *)j->x + off;                                         \
        T *yd = (T *)j->y + r * n;                                                   \
        for (int64_t i0 = 0; i0 < n; i0 += TILE) {                                   \
            int64_t i1 = i0 + TILE < n ? i0 + TILE : n;                              \
            for (int64_t t = 0; t < tile; t++)                                       \
                for (int64_t i = i0; i < i1; i++) yd[t * n + i] = xs[i * s + t];     \
        }                                                                            \
    } while (0)

static int64_t perm_offset(const perm_job *j, int64_t r)
{
    int64_t rem = r, off = 0;
    for (int k = j->m - 2; k >= 0; k--) {
        off += (rem % j->ne[k]) * j->st[k];
        rem /= j->ne[k];
    }
    return off;
}

static void permute_rows(int64_t r0, int64_t r1, void *vp)
{
    const perm_job *j = vp;
    int64_t n = j->ne[j->m - 1], s = j->st[j->m - 1];
    if (j->m >= 2 && s != 1 && j->st[j->m - 2] == 1) {
        int64_t rows_dim = j->ne[j->m - 2];
        for (int64_t r = r0; r < r1;) {
            int64_t tile = TILE, left_in_dim = rows_dim - r % rows_dim;
            if (tile > r1 - r) tile = r1 - r;
            if (tile > left_in_dim) tile = left_in_dim;
            int64_t off = perm_offset(j, r);
            switch (j->es) {
            case 1: PERM_TILE(uint8_t); break;
            case 2: PERM_TILE(uint16_t); break;
            case 4: PERM_TILE(uint32_t); break;
            default: PERM_TILE(uint64_t); break;
            }
            r += tile;
        }
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        int64_t off = perm_offset(j, r);
        if (s == 1) {
            memcpy(j->y + (size_t)(r * n) * j->es, j->x + (size_t)off * j->es, (size_t)n * j->es);
            continue;
        }
        switch (j->es) {
        case 1: PERM_INNER(uint8_t); break;
        case 2: PERM_INNER(uint16_t); break;
        case 4: PERM_INNER(uint32_t); break;
        default: PERM_INNER(uint64_t); break;
        }
    }
}

ngpt_status nx_cpu_permute(nx_backend *be, nx_tensor *y, const nx_tensor *x, const int *perm)
{
    perm_job j;
    memset(&j, 0, sizeof j);
    j.x = x->data;
    j.y = y->data;
    j.es = nx_dtype_size(x->dtype);
    int64_t total = nx_numel(x);
    if (total == 0) return NGPT_OK;
    int64_t xst[NX_MAX_DIMS], p = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        xst[d] = p;
        p *= x->ne[d];
    }
    int m = 0, last_in = -2;
    for (int i = 0; i < x->rank; i++) {
        int d = perm[i];
        if (x->ne[d] == 1) continue;
        if (m > 0 && d == last_in + 1) {  /* adjacent in the input too: merge */
            j.ne[m - 1] *= x->ne[d];
            j.st[m - 1] = xst[d];
        } else {
            j.ne[m] = x->ne[d];
            j.st[m] = xst[d];
            m++;
        }
        last_in = d;
    }
    if (m == 0) {
        j.ne[0] = 1;
        j.st[0] = 1;
        m = 1;
    }
    j.m = m;
    int64_t n = j.ne[m - 1];
    nx_cpu_parallel_for(be, total / n, n + 8, permute_rows, &j);
    return NGPT_OK;
}

/* ---- cast ---- */

typedef struct {
    const void *x;
    void *y;
    ngpt_dtype xt, yt;
    int64_t n;
} cast_job;

static int32_t f32_to_i32(float v)
{
    if (isnan(v)) return 0;
    if (v >= 2147483648.0f) return INT32_MAX;
    if (v <= -2147483648.0f) return INT32_MIN;
    return (int32_t)v;  /* truncation toward zero, like torch .to(torch.int32) */
}

static void cast_blocks(int64_t b0, int64_t b1, void *vp)
{
    const cast_job *j = vp;
    int64_t i0 = b0 * BLOCK, i1 = b1 * BLOCK < j->n ? b1 * BLOCK : j->n;
    size_t n = (size_t)(i1 - i0);
    size_t xs = nx_dtype_size(j->xt), ys = nx_dtype_size(j->yt);
    const void *x = (const unsigned char *)j->x + (size_t)i0 * xs;
    void *y = (unsigned char *)j->y + (size_t)i0 * ys;
    if (j->xt == j->yt) {
        memcpy(y, x, n * xs);
        return;
    }
    float tmp[256];
    const float *xf = x;
    float *yf = y;
    switch (j->xt) {
    case NGPT_DTYPE_F32:
        if (j->yt == NGPT_DTYPE_F16) nx_f32_to_f16_n(xf, y, n);
        else if (j->yt == NGPT_DTYPE_BF16) nx_f32_to_bf16_n(xf, y, n);
        else for (size_t i = 0; i < n; i++) ((int32_t *)y)[i] = f32_to_i32(xf[i]);
        return;
    case NGPT_DTYPE_I32:
        for (size_t i = 0; i < n; i++) yf[i] = (float)((const int32_t *)x)[i];
        return;
    case NGPT_DTYPE_F16:
        if (j->yt == NGPT_DTYPE_F32) {
            nx_f16_to_f32_n(x, yf, n);
            return;
        }
        for (size_t i = 0; i < n; i += 256) {
            size_t k = n - i < 256 ? n - i : 256;
            nx_f16_to_f32_n((const uint16_t *)x + i, tmp, k);
            nx_f32_to_bf16_n(tmp, (uint16_t *)y + i, k);
        }
        return;
    default: /* BF16 */
        if (j->yt == NGPT_DTYPE_F32) {
            nx_bf16_to_f32_n(x, yf, n);
            return;
        }
        for (size_t i = 0; i < n; i += 256) {
            size_t k = n - i < 256 ? n - i : 256;
            nx_bf16_to_f32_n((const uint16_t *)x + i, tmp, k);
            nx_f32_to_f16_n(tmp, (uint16_t *)y + i, k);
        }
        return;
    }
}

ngpt_status nx_cpu_cast(nx_backend *be, nx_tensor *y, const nx_tensor *x)
{
    cast_job j = {x->data, y->data, x->dtype, y->dtype, nx_numel(x)};
    nx_cpu_parallel_for(be, (j.n + BLOCK - 1) / BLOCK, BLOCK, cast_blocks, &j);
    return NGPT_OK;
}

/* ---- resize ---- */

typedef struct {
    int64_t i0, i1;
    float l0, l1;
} lerp_ix;

/* PyTorch (aten/src/ATen/native/UpSample.h): nearest_idx and area_pixel_compute_source_index +
 * guard_index_and_lambda, with float arithmetic. */
static void make_ix(lerp_ix *ix, int64_t in, int64_t out, nx_resize_mode mode, bool align)
{
    for (int64_t d = 0; d < out; d++) {
        if (mode == NX_RESIZE_NEAREST) {
            int64_t s;
            if (out == in) s = d;
            else if (out == 2 * in) s = d >> 1;
            else {
                float sc = (float)in / (float)out;
                s = (int64_t)floorf((float)d * sc);
                if (s > in - 1) s = in - 1;
            }
            ix[d] = (lerp_ix){s, s, 1.0f, 0.0f};
            continue;
        }
        float sc = align ? (out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f) : (float)in / (float)out;
        float src = align ? sc * (float)d : sc * ((float)d + 0.5f) - 0.5f;
        if (!align && src < 0.0f) src = 0.0f;
        int64_t i0 = (int64_t)floorf(src);
        if (i0 > in - 1) i0 = in - 1;
        float l1 = src - (float)i0;
        l1 = l1 < 0.0f ? 0.0f : l1 > 1.0f ? 1.0f : l1;
        ix[d] = (lerp_ix){i0, i0 + (i0 < in - 1 ? 1 : 0), 1.0f - l1, l1};
    }
}

typedef struct {
    const float *x;
    float *y;
    int64_t h, w, ho, wo, c;  /* c: channels of a pixel (channels last), else 1 */
    const lerp_ix *ih, *iw;
    bool nearest;
} resize_job;

static void resize_rows(int64_t r0, int64_t r1, void *vp)
{
    const resize_job *j = vp;
    for (int64_t r = r0; r < r1; r++) {  /* r = plane * ho + oy */
        int64_t plane = r / j->ho, oy = r % j->ho;
        const float *xp = j->x + plane * j->h * j->w;
        float *y = j->y + r * j->wo;
        const lerp_ix *hy = &j->ih[oy];
        const float *x0 = xp + hy->i0 * j->w, *x1 = xp + hy->i1 * j->w;
        if (j->nearest) {
            for (int64_t ox = 0; ox < j->wo; ox++) y[ox] = x0[j->iw[ox].i0];
            continue;
        }
        for (int64_t ox = 0; ox < j->wo; ox++) {
            const lerp_ix *wx = &j->iw[ox];
            y[ox] = hy->l0 * (wx->l0 * x0[wx->i0] + wx->l1 * x0[wx->i1]) +
                    hy->l1 * (wx->l0 * x1[wx->i0] + wx->l1 * x1[wx->i1]);
        }
    }
}

/* Channels last: row r = (n, oy) of y [N, Ho, Wo, C], each output pixel C contiguous floats. */
static void resize_rows_cl(int64_t r0, int64_t r1, void *vp)
{
    const resize_job *j = vp;
    const int64_t C = j->c;
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / j->ho, oy = r % j->ho;
        const float *xp = j->x + n * j->h * j->w * C;
        float *y = j->y + r * j->wo * C;
        const lerp_ix *hy = &j->ih[oy];
        const float *x0 = xp + hy->i0 * j->w * C, *x1 = xp + hy->i1 * j->w * C;
        for (int64_t ox = 0; ox < j->wo; ox++, y += C) {
            const lerp_ix *wx = &j->iw[ox];
            if (j->nearest) {
                memcpy(y, x0 + wx->i0 * C, (size_t)C * sizeof *y);
                continue;
            }
            const float *a = x0 + wx->i0 * C, *b = x0 + wx->i1 * C, *c = x1 + wx->i0 * C, *d = x1 + wx->i1 * C;
            for (int64_t k = 0; k < C; k++)
                y[k] = hy->l0 * (wx->l0 * a[k] + wx->l1 * b[k]) + hy->l1 * (wx->l0 * c[k] + wx->l1 * d[k]);
        }
    }
}

ngpt_status nx_cpu_resize(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_resize_mode mode, bool align_corners,
                          bool channels_last)
{
    const int hd = channels_last ? 1 : 2; /* H's dim */
    int64_t h = x->ne[hd], w = x->ne[hd + 1], ho = y->ne[hd], wo = y->ne[hd + 1];
    lerp_ix *ix = nx_malloc((size_t)(ho + wo) * sizeof *ix);
    if (!ix) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "cpu resize: out of memory");
    make_ix(ix, h, ho, mode, align_corners);
    make_ix(ix + ho, w, wo, mode, align_corners);
    const int64_t c = channels_last ? x->ne[3] : 1;
    resize_job j = {x->data, y->data, h, w, ho, wo, c, ix, ix + ho, mode == NX_RESIZE_NEAREST};
    if (channels_last) nx_cpu_parallel_for(be, x->ne[0] * ho, wo * j.c * 4, resize_rows_cl, &j);
    else nx_cpu_parallel_for(be, x->ne[0] * x->ne[1] * ho, wo * 4, resize_rows, &j);
    nx_free(ix);
    return NGPT_OK;
}

ngpt_status nx_cpu_set_rows(nx_backend *be, nx_tensor *dst, const nx_tensor *src, const nx_tensor *pos)
{
    (void)be;
    const int64_t R = dst->ne[0], n = src->ne[0];
    const size_t row = (size_t)dst->ne[1] * nx_dtype_size(dst->dtype);
    const int32_t *p = pos->data;
    for (int64_t i = 0; i < n; i++)
        if (p[i] < 0 || p[i] >= R)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "set_rows: position %d (row %lld) outside [0, %lld)", p[i],
                          (long long)i, (long long)R);
    for (int64_t i = 0; i < n; i++) memcpy((char *)dst->data + (size_t)p[i] * row, (const char *)src->data + (size_t)i * row, row);
    return NGPT_OK;
}
