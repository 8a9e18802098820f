/* elementwise.c — softmax, unary functions, broadcasting binary ops, scale, gated linear units
 * and argmax on F32. Element-wise work is cut into fixed blocks (the split never changes a
 * result); the loops are plain so the compiler vectorises them. */
#include "cpu_ops.h"
#include "cpu_util.h"

#include "../../core/error.h"

#include <math.h>
#include <string.h>

#define BLOCK 4096  /* elements per parallel item of flat element-wise work */

/* ---- unary ---- */

static void unary_run(float *y, const float *x, int64_t n, nx_unary op, float param)
{
    switch (op) {
    case NX_UNARY_IDENTITY:
        if (y != x) memmove(y, x, (size_t)n * sizeof *y);
        break;
    case NX_UNARY_SILU:
        nx_vsilu(y, x, n);
        break;
    case NX_UNARY_GELU:
        nx_vgelu(y, x, n);
        break;
    case NX_UNARY_GELU_TANH:
        nx_vgelu_tanh(y, x, n);
        break;
    case NX_UNARY_QUICK_GELU:
        nx_vquick_gelu(y, x, n);
        break;
    case NX_UNARY_RELU:
        for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case NX_UNARY_LEAKY_RELU:
        nx_vleaky_relu(y, x, param, n);
        break;
    case NX_UNARY_TANH:
        for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
        break;
    case NX_UNARY_SIGMOID:
        nx_vsigmoid(y, x, n);
        break;
    case NX_UNARY_EXP:
        for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
        break;
    case NX_UNARY_SQRT:
        for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]);
        break;
    case NX_UNARY_NEG:
        for (int64_t i = 0; i < n; i++) y[i] = -x[i];
        break;
    }
}

typedef struct {
    const float *x;
    float *y;
    int64_t n;
    nx_unary op;
    float p0, p1;
} flat_job;

static void unary_blocks(int64_t b0, int64_t b1, void *vp)
{
    const flat_job *j = vp;
    int64_t i0 = b0 * BLOCK, i1 = b1 * BLOCK < j->n ? b1 * BLOCK : j->n;
    unary_run(j->y + i0, j->x + i0, i1 - i0, j->op, j->p0);
}

ngpt_status nx_cpu_unary(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_unary op, float param)
{
    flat_job j = {x->data, y->data, nx_numel(x), op, param, 0};
    nx_cpu_parallel_for(be, (j.n + BLOCK - 1) / BLOCK, BLOCK * 8, unary_blocks, &j);
    return NGPT_OK;
}

static void scale_blocks(int64_t b0, int64_t b1, void *vp)
{
    const flat_job *j = vp;
    int64_t i0 = b0 * BLOCK, i1 = b1 * BLOCK < j->n ? b1 * BLOCK : j->n;
    nx_vaffine(j->y + i0, j->x + i0, j->p0, j->p1, i1 - i0);
}

ngpt_status nx_cpu_scale(nx_backend *be, nx_tensor *y, const nx_tensor *x, float alpha, float beta)
{
    flat_job j = {x->data, y->data, nx_numel(x), NX_UNARY_IDENTITY, alpha, beta};
    nx_cpu_parallel_for(be, (j.n + BLOCK - 1) / BLOCK, BLOCK, scale_blocks, &j);
    return NGPT_OK;
}

/* ---- binary with broadcasting ---- */

#define BIN_LOOP(EXPR)                                                                    \
    do {                                                                                  \
        if (sa && sb)                                                                     \
            for (int64_t i = 0; i < n; i++) { float u = a[i], v = b[i]; y[i] = (EXPR); }  \
        else if (sa)                                                                      \
            for (int64_t i = 0; i < n; i++) { float u = a[i], v = b[0]; y[i] = (EXPR); }  \
        else if (sb)                                                                      \
            for (int64_t i = 0; i < n; i++) { float u = a[0], v = b[i]; y[i] = (EXPR); }  \
        else                                                                              \
            for (int64_t i = 0; i < n; i++) { float u = a[0], v = b[0]; y[i] = (EXPR); }  \
    } while (0)

/* y[i] = a[i * sa] op b[i * sb], sa/sb in {0, 1}. */
static void bin_inner(float *y, const float *a, int sa, const float *b, int sb, int64_t n, nx_binary op)
{
    switch (op) {
    case NX_BINARY_ADD: BIN_LOOP(u + v); break;
    case NX_BINARY_SUB: BIN_LOOP(u - v); break;
    case NX_BINARY_MUL: BIN_LOOP(u * v); break;
    case NX_BINARY_DIV: BIN_LOOP(u / v); break;
    }
}

typedef struct {
    const float *a, *b;
    float *y;
    int m;                   /* collapsed rank */
    int64_t ne[NX_MAX_DIMS]; /* collapsed output shape */
    int64_t sa[NX_MAX_DIMS], sb[NX_MAX_DIMS];  /* element strides (0 = broadcast) */
    int64_t inner;           /* ne[m - 1] */
    int ia, ib;              /* inner strides */
    nx_binary op;
} bin_job;

static void bin_rows(int64_t r0, int64_t r1, void *vp)
{
    const bin_job *j = vp;
    for (int64_t r = r0; r < r1; r++) {
        int64_t rem = r, oa = 0, ob = 0;
        for (int k = j->m - 2; k >= 0; k--) {
            int64_t idx = rem % j->ne[k];
            rem /= j->ne[k];
            oa += idx * j->sa[k];
            ob += idx * j->sb[k];
        }
        bin_inner(j->y + r * j->inner, j->a + oa, j->ia, j->b + ob, j->ib, j->inner, j->op);
    }
}

ngpt_status nx_cpu_binary(nx_backend *be, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, nx_binary op)
{
    bin_job j;
    memset(&j, 0, sizeof j);
    j.a = a->data;
    j.b = b->data;
    j.y = y->data;
    j.op = op;
    int64_t total = nx_numel(y);
    if (total == 0) return NGPT_OK;
    /* Collapse: drop output dims of size 1, merge neighbours with the same broadcast pattern. */
    int r = y->rank, m = 0;
    int abc[NX_MAX_DIMS], bbc[NX_MAX_DIMS];
    for (int i = 0; i < r; i++) {
        if (y->ne[i] == 1) continue;
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int ab = !(ia >= 0 && a->ne[ia] != 1), bb = !(ib >= 0 && b->ne[ib] != 1);
        if (m > 0 && abc[m - 1] == ab && bbc[m - 1] == bb) {
            j.ne[m - 1] *= y->ne[i];
        } else {
            j.ne[m] = y->ne[i];
            abc[m] = ab;
            bbc[m] = bb;
            m++;
        }
    }
    if (m == 0) {  /* a single element */
        j.ne[0] = 1;
        abc[0] = bbc[0] = 0;
        m = 1;
    }
    int64_t pa = 1, pb = 1;
    for (int k = m - 1; k >= 0; k--) {
        j.sa[k] = abc[k] ? 0 : pa;
        j.sb[k] = bbc[k] ? 0 : pb;
        if (!abc[k]) pa *= j.ne[k];
        if (!bbc[k]) pb *= j.ne[k];
    }
    j.m = m;
    j.inner = j.ne[m - 1];
    j.ia = abc[m - 1] ? 0 : 1;
    j.ib = bbc[m - 1] ? 0 : 1;
    int64_t rows = total / j.inner;
    if (rows == 1 && j.inner > 2 * BLOCK) {
        /* one long row: split it into blocks */
        int64_t nb = (j.inner + BLOCK - 1) / BLOCK;
        j.m = 2;
        j.ne[0] = nb;
        j.ne[1] = BLOCK;
        j.sa[0] = j.ia ? BLOCK : 0;
        j.sb[0] = j.ib ? BLOCK : 0;
        int64_t full = j.inner / BLOCK;  /* the last partial block runs separately */
        j.inner = BLOCK;
        nx_cpu_parallel_for(be, full, BLOCK, bin_rows, &j);
        int64_t done = full * BLOCK, left = total - done;
        if (left > 0)
            bin_inner(j.y + done, j.a + (j.ia ? done : 0), j.ia, j.b + (j.ib ? done : 0), j.ib, left, op);
        return NGPT_OK;
    }
    nx_cpu_parallel_for(be, rows, j.inner + 8, bin_rows, &j);
    return NGPT_OK;
}

/* ---- softmax ---- */

typedef struct {
    const float *x;
    float *y;
    int64_t c;
    float scale;
    nx_unary act;
    bool gate_first;
} row_job;

static void softmax_rows(int64_t r0, int64_t r1, void *vp)
{
    const row_job *j = vp;
    int64_t c = j->c;
    float s = j->scale;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * c;
        float *y = j->y + r * c;
        float mx = nx_vmax_scaled(x, s, c);
        float inv = 1.0f / nx_vexp_sum(y, x, s, mx, c);
        nx_vmul_scalar(y, inv, c);
    }
}

ngpt_status nx_cpu_softmax(nx_backend *be, nx_tensor *y, const nx_tensor *x, float scale)
{
    row_job j = {x->data, y->data, x->ne[x->rank - 1], scale, NX_UNARY_IDENTITY, false};
    if (j.c == 0) return NGPT_OK;
    nx_cpu_parallel_for(be, nx_numel(x) / j.c, j.c * 8, softmax_rows, &j);
    return NGPT_OK;
}

/* ---- glu ---- */

static void glu_rows(int64_t r0, int64_t r1, void *vp)
{
    const row_job *j = vp;
    int64_t n = j->c;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * 2 * n;
        float *y = j->y + r * n;
        const float *g = j->gate_first ? x : x + n, *o = j->gate_first ? x + n : x;
        unary_run(y, g, n, j->act, 0.0f);
        for (int64_t i = 0; i < n; i++) y[i] *= o[i];
    }
}

ngpt_status nx_cpu_glu(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_unary act, bool gate_first)
{
    row_job j = {x->data, y->data, y->ne[y->rank - 1], 1.0f, act, gate_first};
    if (j.c == 0) return NGPT_OK;
    nx_cpu_parallel_for(be, nx_numel(y) / j.c, j.c * 8, glu_rows, &j);
    return NGPT_OK;
}

/* ---- argmax ---- */

typedef struct {
    const float *x;
    int32_t *y;
    int64_t c;
} argmax_job;

static void argmax_rows(int64_t r0, int64_t r1, void *vp)
{
    const argmax_job *j = vp;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->c;
        int64_t best = 0;
        float bv = x[0];
        for (int64_t i = 1; i < j->c; i++) {
            float v = x[i];
            if (isnan(bv)) break;  /* NaN is the maximum (as in PyTorch) */
            if (v > bv || isnan(v)) {
                bv = v;
                best = i;
            }
        }
        j->y[r] = (int32_t)best;
    }
}

ngpt_status nx_cpu_argmax(nx_backend *be, nx_tensor *y, const nx_tensor *x)
{
    argmax_job j = {x->data, y->data, x->ne[x->rank - 1]};
    if (j.c > INT32_MAX) return nx_err(NGPT_ERR_UNSUPPORTED, "cpu argmax: last dim %lld exceeds I32", (long long)j.c);
    nx_cpu_parallel_for(be, nx_numel(x) / j.c, j.c, argmax_rows, &j);
    return NGPT_OK;
}

/* The scheduler step: sched_math.h's element function, as ngpt_scheduler_step runs it on host
 * arrays (so the two agree bit for bit). Tens of thousands of elements: one thread is enough. */
ngpt_status nx_cpu_sched_step(nx_backend *be, const nx_sched_step *p, nx_tensor *x, const nx_tensor *eps,
                              const nx_tensor *noise, nx_tensor *const *slot)
{
    (void)be;
    float *s[NX_SCHED_SLOTS];
    for (int j = 0; j < NX_SCHED_SLOTS; j++) s[j] = slot[j] ? slot[j]->data : NULL;
    const float *nz = noise ? noise->data : NULL;
    for (int64_t i = 0; i < p->n; i++) nx_sched_elem(p, eps->data, x->data, nz, s, i);
    return NGPT_OK;
}

ngpt_status nx_cpu_timestep_embedding(nx_backend *be, nx_tensor *y, const nx_tensor *t, const nx_timestep_params *p)
{
    (void)be;
    const float *tv = t->data;
    for (int64_t b = 0; b < t->ne[0]; b++) {
        float *o = (float *)y->data + b * p->dim;
        for (int i = 0; i < p->dim / 2; i++) {
            float sn, cs;
            int js, jc;
            nx_timestep_pair(p, tv[b], i, &sn, &cs, &js, &jc);
            o[js] = sn;
            o[jc] = cs;
        }
        if (p->dim % 2) o[p->dim - 1] = 0.0f;
    }
    return NGPT_OK;
}
