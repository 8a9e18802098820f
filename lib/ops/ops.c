/* ops.c — the op layer's front door: every nx_op_* checks its arguments completely (NULLs,
 * residency, ranks, shapes, dtypes, parameter ranges) and only then calls the backend, so that
 * backends implement math only (backend.h). Errors name the op and describe the tensors:
 *   "linear: w F16[64, 32] does not match x F32[5, 48] (K 32 != 48)". */
#include "backend.h"

#include "../core/error.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>

/* ---- describing tensors in messages ---- */

/* "role F32[2, 3]" or "role 'name' F32[2, 3]". */
static char *desc(char *buf, size_t cap, const char *role, const nx_tensor *t)
{
    char sh[160];
    if (!t) {
        snprintf(buf, cap, "%s (NULL)", role);
        return buf;
    }
    int rank = t->rank < 0 ? 0 : t->rank > NX_MAX_DIMS ? NX_MAX_DIMS : t->rank;
    nx_shape_str(sh, sizeof sh, rank, t->ne);
    if (t->name)
        snprintf(buf, cap, "%s '%s' %s%s", role, t->name, nx_dtype_name(t->dtype), sh);
    else
        snprintf(buf, cap, "%s %s%s", role, nx_dtype_name(t->dtype), sh);
    return buf;
}

/* A description valid until the end of the enclosing full expression. */
#define D(role, t) desc((char[256]){0}, 256, (role), (t))

static char *shape_of(char *buf, size_t cap, int rank, const int64_t *ne)
{
    return nx_shape_str(buf, cap, rank, ne);
}
#define S(rank, ne) shape_of((char[160]){0}, 160, (rank), (ne))

#define WEIGHT_DTYPES NX_FLOAT_DTYPES

/* ---- generic checks ---- */

static ngpt_status chk_be(nx_backend *be, const char *op)
{
    if (!be || !be->v) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: backend is NULL", op);
    return NGPT_OK;
}

/* Present, well-formed, resident on be, dtype in mask (0: any known dtype). */
static ngpt_status chk_tensor(nx_backend *be, const char *op, const char *role, const nx_tensor *t,
                              unsigned dtype_mask, const char *dtype_what)
{
    if (!t) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, role);
    if (t->rank < 0 || t->rank > NX_MAX_DIMS)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s has rank %d (0..%d allowed)", op, role, t->rank, NX_MAX_DIMS);
    for (int i = 0; i < t->rank; i++)
        if (t->ne[i] < 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s has a negative dimension", op, D(role, t));
    if (nx_dtype_size(t->dtype) == 0)
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "%s: %s has an unknown dtype %d", op, role, (int)t->dtype);
    if (t->be != be) {
        if (!(t->be == NULL && be->kind == NGPT_BACKEND_CPU)) {
            const char *where = t->be ? t->be->v->name : "host memory";
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s lives in %s%s, not on the %s backend", op, D(role, t), where,
                          t->be ? "'s memory" : "", be->v->name);
        }
    }
    if (!t->data && nx_numel(t) > 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s has no data", op, D(role, t));
    if (t->packed)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s is packed (only the linear's or convolution's w it was packed for may be)",
                      op, D(role, t));
    if (dtype_mask && !(dtype_mask & NX_DTYPE_BIT(t->dtype)))
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "%s: %s: %s is not %s", op, D(role, t), nx_dtype_name(t->dtype), dtype_what);
    return NGPT_OK;
}

static ngpt_status chk_act(nx_backend *be, const char *op, const char *role, const nx_tensor *t)
{
    const char *what = be->act_dtypes == NX_DTYPE_BIT(NGPT_DTYPE_F32) ? "F32 (the activation dtype of this backend)"
                                                                    : "an activation dtype of this backend";
    return chk_tensor(be, op, role, t, be->act_dtypes, what);
}

static ngpt_status chk_weight(nx_backend *be, const char *op, const char *role, const nx_tensor *t)
{
    return chk_tensor(be, op, role, t, WEIGHT_DTYPES, "a weight dtype (F32, F16 or BF16)");
}

static ngpt_status chk_rank(const char *op, const char *role, const nx_tensor *t, int lo, int hi)
{
    if (t->rank >= lo && t->rank <= hi) return NGPT_OK;
    if (lo == hi) return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s must have rank %d", op, D(role, t), lo);
    return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s must have rank %d..%d", op, D(role, t), lo, hi);
}

/* y must have exactly shape ne[rank]. */
static ngpt_status chk_out_shape(const char *op, const char *role, const nx_tensor *y, int rank, const int64_t *ne)
{
    bool ok = y->rank == rank;
    for (int i = 0; ok && i < rank; i++) ok = y->ne[i] == ne[i];
    if (ok) return NGPT_OK;
    return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s should be %s", op, D(role, y), S(rank, ne));
}

static ngpt_status chk_same_shape(const char *op, const char *ry, const nx_tensor *y, const char *rx, const nx_tensor *x)
{
    if (nx_same_shape(y, x)) return NGPT_OK;
    return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s does not match %s (same shape required)", op, D(ry, y), D(rx, x));
}

static ngpt_status chk_same_dtype(const char *op, const char *ry, const nx_tensor *y, const char *rx, const nx_tensor *x)
{
    if (y->dtype == x->dtype) return NGPT_OK;
    return nx_err(NGPT_ERR_DTYPE_MISMATCH, "%s: %s and %s must have the same dtype", op, D(ry, y), D(rx, x));
}

/* Optional per-channel vector v[C]. */
static ngpt_status chk_vec_opt(nx_backend *be, const char *op, const char *role, const nx_tensor *v, int64_t c,
                               const char *against_role, const nx_tensor *against)
{
    if (!v) return NGPT_OK;
    NX_TRY(chk_weight(be, op, role, v));
    if (v->rank != 1 || v->ne[0] != c)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s does not match %s (expected [%lld])", op, D(role, v),
                      D(against_role, against), (long long)c);
    return NGPT_OK;
}

static ngpt_status chk_eps(const char *op, float eps)
{
    if (!(eps > 0.0f) || !isfinite(eps)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: eps %g must be > 0", op, (double)eps);
    return NGPT_OK;
}

static ngpt_status chk_finite(const char *op, const char *what, float v)
{
    if (!isfinite(v)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s %g is not finite", op, what, (double)v);
    return NGPT_OK;
}

static bool unary_valid(nx_unary u) { return (unsigned)u <= (unsigned)NX_UNARY_NEG; }

static const char *unary_name(nx_unary u)
{
    static const char *const names[] = {"identity", "silu", "gelu", "gelu_tanh", "quick_gelu", "relu",
                                        "leaky_relu", "tanh", "sigmoid", "exp", "sqrt", "neg"};
    return unary_valid(u) ? names[u] : "?";
}

#define UNSUPPORTED(be, op) nx_err(NGPT_ERR_UNSUPPORTED, "%s: op %s not supported", (be)->v->name, (op))

/* ---- per-op profile (benchmarks only: nx_ops_profile_enable) ----
 * Each op is bracketed by backend syncs so that its wall time is its own (on CUDA the work is
 * otherwise asynchronous); that serialisation is why it is off by default. */
#define PROF_MAX 32
typedef struct prof_row {
    const char *op;
    long calls;
    double seconds;
} prof_row;
static prof_row g_prof[PROF_MAX];
static int g_prof_n;
static _Atomic bool g_prof_on;
static pthread_mutex_t g_prof_mu = PTHREAD_MUTEX_INITIALIZER;

void nx_ops_profile_enable(bool on) { g_prof_on = on; }

static double prof_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* false when the backend refused to sync: a graph capture is open, so the op is being recorded,
 * not run, and has no time of its own (the refusal's message is not left behind) */
static bool prof_sync(nx_backend *be)
{
    if (!be->v->sync || be->v->sync(be) == NGPT_OK) return true;
    ngpt_clear_error();
    return false;
}

static double prof_begin(nx_backend *be) { return prof_sync(be) ? prof_now() : -1.0; }

static void prof_end(nx_backend *be, const char *op, double t0)
{
    if (t0 < 0 || !prof_sync(be)) return;
    double dt = prof_now() - t0;
    pthread_mutex_lock(&g_prof_mu);
    int i = 0;
    while (i < g_prof_n && strcmp(g_prof[i].op, op) != 0) i++;
    if (i == g_prof_n && g_prof_n < PROF_MAX) g_prof[g_prof_n++] = (prof_row){op, 0, 0.0};
    if (i < g_prof_n) {
        g_prof[i].calls++;
        g_prof[i].seconds += dt;
    }
    pthread_mutex_unlock(&g_prof_mu);
}

static int prof_cmp(const void *a, const void *b)
{
    double x = ((const prof_row *)a)->seconds, y = ((const prof_row *)b)->seconds;
    return (x < y) - (x > y);
}

void nx_ops_profile_report(FILE *f, const char *title)
{
    pthread_mutex_lock(&g_prof_mu);
    qsort(g_prof, (size_t)g_prof_n, sizeof *g_prof, prof_cmp);
    double total = 0.0;
    for (int i = 0; i < g_prof_n; i++) total += g_prof[i].seconds;
    fprintf(f, "# op profile: %s (ops bracketed by syncs; total %.3f ms)\n", title, total * 1e3);
    for (int i = 0; i < g_prof_n; i++)
        fprintf(f, "#   %-18s %7ld calls %10.3f ms %5.1f%%\n", g_prof[i].op, g_prof[i].calls, g_prof[i].seconds * 1e3,
                total > 0 ? 100.0 * g_prof[i].seconds / total : 0.0);
    g_prof_n = 0;
    pthread_mutex_unlock(&g_prof_mu);
}

/* ---- per-op trace (tests only: nx_ops_trace) ---- */
static nx_ops_trace_fn g_trace_fn;
static void *g_trace_user;
static _Atomic bool g_trace_on;

void nx_ops_trace(nx_ops_trace_fn fn, void *user)
{
    g_trace_fn = fn;
    g_trace_user = user;
    g_trace_on = fn != NULL;
}

/* Runs the backend call; with the profile on, brackets it by syncs and adds its time once it
 * succeeded (not while it is recorded into a graph); with a trace set, hands the op's output to
 * the trace once it succeeded. */
#define PROFILED(be, opname, out, call)                                      \
    do {                                                                     \
        if (!g_prof_on && !g_trace_on) return (call);                        \
        bool prof_ = g_prof_on;                                              \
        double t0_ = prof_ ? prof_begin(be) : 0.0;                           \
        ngpt_status st_ = (call);                                            \
        if (prof_ && st_ == NGPT_OK) prof_end((be), (opname), t0_);          \
        if (st_ == NGPT_OK && g_trace_on) g_trace_fn(g_trace_user, (opname), (out)); \
        return st_;                                                          \
    } while (0)

/* Normalise a possibly negative axis into [0, rank). */
static ngpt_status chk_axis(const char *op, int *axis, int rank, const char *role, const nx_tensor *t)
{
    int a = *axis;
    if (a < -rank || a >= rank)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: axis %d out of range for %s", op, a, D(role, t));
    *axis = a < 0 ? a + rank : a;
    return NGPT_OK;
}

/* ---- ops ---- */

nx_conv_params nx_conv_params_default(void)
{
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < 3; i++) {
        p.stride[i] = 1;
        p.pad[i] = 0;
        p.dilation[i] = 1;
    }
    p.groups = 1;
    return p;
}

static ngpt_status chk_linear(nx_backend *be, const char *op, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b);

ngpt_status nx_op_linear(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b)
{
    static const char op[] = "linear";
    NX_TRY(chk_linear(be, op, y, x, w, b));
    if (!be->v->linear) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->linear(be, y, x, w, b));
}

ngpt_status nx_op_linear_epi(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b,
                             const nx_linear_epi *e)
{
    static const char op[] = "linear_epi";
    NX_TRY(chk_linear(be, op, y, x, w, b));
    if (!e) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: the epilogue is NULL", op);
    if (!unary_valid(e->act)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown epilogue function %d", op, (int)e->act);
    if (e->act == NX_UNARY_LEAKY_RELU) NX_TRY(chk_finite(op, "leaky_relu slope", e->act_param));
    if (y->data == x->data && nx_numel(y) > 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: y must not be x (%s)", op, D("y", y));
    if (e->accumulate) {
        NX_TRY(chk_act(be, op, "tmp", e->tmp));
        NX_TRY(chk_same_dtype(op, "tmp", e->tmp, "y", y));
        NX_TRY(chk_same_shape(op, "tmp", e->tmp, "y", y));
        if (nx_numel(y) > 0 && (e->tmp->data == y->data || e->tmp->data == x->data))
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: tmp must be neither y nor x (%s)", op, D("tmp", e->tmp));
    }
    if (be->v->linear_epi) PROFILED(be, op, y, be->v->linear_epi(be, y, x, w, b, e));
    /* the ops it fuses */
    nx_tensor *dst = e->accumulate ? e->tmp : y;
    NX_TRY(nx_op_linear(be, dst, x, w, b));
    if (e->act != NX_UNARY_IDENTITY) NX_TRY(nx_op_unary(be, dst, dst, e->act, e->act_param));
    return e->accumulate ? nx_op_binary(be, y, y, dst, NX_BINARY_ADD) : NGPT_OK;
}

/* y, x, w, b of a linear: present, resident, shapes agreeing (a packed w as the plain one). */
static ngpt_status chk_linear(nx_backend *be, const char *op, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b)
{
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    /* a packed w is a linear's own: checked as the plain tensor it stands for */
    nx_tensor wp = w ? *w : (nx_tensor){0};
    wp.packed = 0;
    NX_TRY(chk_weight(be, op, "w", w ? &wp : NULL));
    NX_TRY(chk_rank(op, "x", x, 1, NX_MAX_DIMS));
    NX_TRY(chk_rank(op, "w", w, 2, 2));
    int64_t k = x->ne[x->rank - 1];
    if (w->ne[1] != k)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s does not match %s (K %lld != %lld)", op, D("w", w), D("x", x),
                      (long long)w->ne[1], (long long)k);
    int64_t n = w->ne[0];
    if (b) {
        NX_TRY(chk_weight(be, op, "b", b));
        if (b->rank != 1 || b->ne[0] != n)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s does not match %s (expected [%lld])", op, D("b", b), D("w", w),
                          (long long)n);
    }
    int64_t ne[NX_MAX_DIMS];
    memcpy(ne, x->ne, sizeof ne);
    ne[x->rank - 1] = n;
    return chk_out_shape(op, "y", y, x->rank, ne);
}

ngpt_status nx_op_linear_pack(nx_backend *be, nx_tensor *w)
{
    static const char op[] = "linear_pack";
    NX_TRY(chk_be(be, op));
    if (w && w->packed) return NGPT_OK;
    NX_TRY(chk_weight(be, op, "w", w));
    NX_TRY(chk_rank(op, "w", w, 2, 2));
    return be->v->linear_pack ? be->v->linear_pack(be, w) : NGPT_OK;
}

ngpt_status nx_op_matmul(nx_backend *be, nx_tensor *c, const nx_tensor *a, const nx_tensor *b, bool trans_a,
                         bool trans_b, float alpha, float beta)
{
    static const char op[] = "matmul";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "c", c));
    NX_TRY(chk_act(be, op, "a", a));
    NX_TRY(chk_act(be, op, "b", b));
    NX_TRY(chk_rank(op, "a", a, 2, 3));
    NX_TRY(chk_rank(op, "b", b, 2, 3));
    NX_TRY(chk_rank(op, "c", c, 2, 3));
    NX_TRY(chk_finite(op, "alpha", alpha));
    NX_TRY(chk_finite(op, "beta", beta));
    int64_t ba = a->rank == 3 ? a->ne[0] : 1, bb = b->rank == 3 ? b->ne[0] : 1;
    const int64_t *ma = a->ne + (a->rank - 2), *mb = b->ne + (b->rank - 2);
    int64_t m = trans_a ? ma[1] : ma[0], ka = trans_a ? ma[0] : ma[1];
    int64_t kb = trans_b ? mb[1] : mb[0], n = trans_b ? mb[0] : mb[1];
    if (ka != kb)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s%s does not match %s%s (K %lld != %lld)", op, D("a", a),
                      trans_a ? " (transposed)" : "", D("b", b), trans_b ? " (transposed)" : "", (long long)ka,
                      (long long)kb);
    if (ba != bb && ba != 1 && bb != 1)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: batch of %s does not match %s (%lld vs %lld)", op, D("a", a),
                      D("b", b), (long long)ba, (long long)bb);
    int64_t bt = ba > bb ? ba : bb;
    if (c->rank == 2) {
        if (bt != 1)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s should be [%lld, %lld, %lld]", op, D("c", c), (long long)bt,
                          (long long)m, (long long)n);
        int64_t ne[2] = {m, n};
        NX_TRY(chk_out_shape(op, "c", c, 2, ne));
    } else {
        int64_t ne[3] = {bt, m, n};
        NX_TRY(chk_out_shape(op, "c", c, 3, ne));
    }
    if (!be->v->matmul) return UNSUPPORTED(be, op);
    PROFILED(be, op, c, be->v->matmul(be, c, a, b, trans_a, trans_b, alpha, beta));
}

/* y = conv(x, w) + b with p's epilogue: operands present, resident and agreeing. */
static ngpt_status chk_conv(nx_backend *be, const char *op, const nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                            const nx_tensor *b, const nx_conv_params *p)
{
    if (!p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: params are NULL (use nx_conv_params_default)", op);
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    /* a packed w is a convolution's own: checked as the plain tensor it stands for */
    nx_tensor wp = w ? *w : (nx_tensor){0};
    wp.packed = 0;
    NX_TRY(chk_weight(be, op, "w", w ? &wp : NULL));
    const bool cl = p->channels_last;
    if (cl) NX_TRY(chk_rank(op, "x (channels last)", x, 4, 4));
    else NX_TRY(chk_rank(op, "x", x, 3, 5));
    int sd = x->rank - 2;
    if (w->rank != x->rank)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s does not match %s (rank %d != %d)", op, D("w", w), D("x", x),
                      w->rank, x->rank);
    /* where C and the spatial dims sit: [N, C, *sp] / w [O, C/g, *k], or channels last
     * [N, *sp, C] / w [O, *k, C/g] */
    const int xc = cl ? x->rank - 1 : 1, xsp = cl ? 1 : 2;
    int g = p->groups;
    int64_t cin = x->ne[xc], o = w->ne[0];
    if (g < 1 || cin % g != 0 || o % g != 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: groups %d must be >= 1 and divide C of %s and O of %s", op, g,
                      D("x", x), D("w", w));
    if (w->ne[xc] != cin / g)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s does not match %s (C/groups %lld != %lld)", op, D("w", w),
                      D("x", x), (long long)w->ne[xc], (long long)(cin / g));
    int64_t ne[5] = {x->ne[0], 0, 0, 0, 0};
    ne[xc] = o;
    for (int i = 0; i < sd; i++) {
        if (p->stride[i] < 1 || p->pad[i] < 0 || p->dilation[i] < 1)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: spatial dim %d: stride %d, pad %d, dilation %d out of range", op, i,
                          p->stride[i], p->pad[i], p->dilation[i]);
        int64_t k = w->ne[xsp + i];
        int64_t span = x->ne[xsp + i] + 2 * (int64_t)p->pad[i] - (int64_t)p->dilation[i] * (k - 1) - 1;
        if (k < 1 || span < 0)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s with %s, pad %d, dilation %d gives an empty output", op, D("x", x),
                          D("w", w), p->pad[i], p->dilation[i]);
        ne[xsp + i] = span / p->stride[i] + 1;
    }
    NX_TRY(chk_vec_opt(be, op, "b", b, o, "w", w));
    NX_TRY(chk_out_shape(op, "y", y, x->rank, ne));
    const bool epi = p->act != NX_UNARY_IDENTITY || p->residual;
    if (epi) {
        if (!unary_valid(p->act)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown epilogue function %d", op, (int)p->act);
        if (p->act == NX_UNARY_LEAKY_RELU) NX_TRY(chk_finite(op, "leaky_relu slope", p->act_param));
    }
    if (y->data == x->data) /* every path reads x while it writes y */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: y must not be x (%s)", op, D("y", y));
    if (p->residual) {
        NX_TRY(chk_act(be, op, "residual", p->residual));
        NX_TRY(chk_same_dtype(op, "y", y, "residual", p->residual));
        NX_TRY(chk_same_shape(op, "y", y, "residual", p->residual));
        if (p->residual->data == y->data)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: the residual must not be y itself (%s)", op, D("y", y));
    }
    return NGPT_OK;
}

ngpt_status nx_op_conv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b,
                       const nx_conv_params *p)
{
    static const char op[] = "conv";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_conv(be, op, y, x, w, b, p));
    if (!be->v->conv) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->conv(be, y, x, w, b, p));
}

ngpt_status nx_op_conv_pack(nx_backend *be, nx_tensor *w, const nx_conv_params *p)
{
    static const char op[] = "conv_pack";
    NX_TRY(chk_be(be, op));
    if (!p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: params are NULL (use nx_conv_params_default)", op);
    if (w && w->packed) return NGPT_OK;
    NX_TRY(chk_weight(be, op, "w", w));
    NX_TRY(chk_rank(op, "w", w, p->channels_last ? 4 : 3, p->channels_last ? 4 : 5));
    return be->v->conv_pack ? be->v->conv_pack(be, w, p) : NGPT_OK;
}

ngpt_status nx_op_conv_transpose1d(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                                   const nx_tensor *b, int stride, int pad, int output_padding, int dilation, int groups)
{
    static const char op[] = "conv_transpose1d";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    NX_TRY(chk_weight(be, op, "w", w));
    NX_TRY(chk_rank(op, "x", x, 3, 3));
    NX_TRY(chk_rank(op, "w", w, 3, 3));
    if (stride < 1 || pad < 0 || dilation < 1 || output_padding < 0 ||
        (output_padding >= stride && output_padding >= dilation))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT,
                      "%s: stride %d, pad %d, output_padding %d, dilation %d out of range (output_padding must be "
                      "smaller than stride or dilation)",
                      op, stride, pad, output_padding, dilation);
    int64_t c = x->ne[1];
    if (groups < 1 || c % groups != 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: groups %d must be >= 1 and divide C of %s", op, groups, D("x", x));
    if (w->ne[0] != c)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s does not match %s (C %lld != %lld)", op, D("w", w), D("x", x),
                      (long long)w->ne[0], (long long)c);
    int64_t o = w->ne[1] * groups, k = w->ne[2];
    int64_t lo = (x->ne[2] - 1) * stride - 2 * (int64_t)pad + (int64_t)dilation * (k - 1) + output_padding + 1;
    if (k < 1 || x->ne[2] < 1 || lo < 1)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s with %s, stride %d, pad %d gives an empty output", op, D("x", x),
                      D("w", w), stride, pad);
    NX_TRY(chk_vec_opt(be, op, "b", b, o, "w", w));
    int64_t ne[3] = {x->ne[0], o, lo};
    NX_TRY(chk_out_shape(op, "y", y, 3, ne));
    if (!be->v->conv_transpose1d) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->conv_transpose1d(be, y, x, w, b, stride, pad, output_padding, dilation, groups));
}

/* attention's and attention_len's common arguments: four activations of one dtype, q and k of
 * rank 4, v shaped like k, a finite scale */
static ngpt_status chk_qkv(nx_backend *be, const char *op, const nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                           const nx_tensor *v, float scale)
{
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "out", out));
    NX_TRY(chk_act(be, op, "q", q));
    NX_TRY(chk_act(be, op, "k", k));
    NX_TRY(chk_act(be, op, "v", v));
    NX_TRY(chk_rank(op, "q", q, 4, 4));
    NX_TRY(chk_rank(op, "k", k, 4, 4));
    NX_TRY(chk_same_shape(op, "v", v, "k", k));
    NX_TRY(chk_same_dtype(op, "k", k, "q", q));
    NX_TRY(chk_same_dtype(op, "v", v, "q", q));
    NX_TRY(chk_same_dtype(op, "out", out, "q", q));
    NX_TRY(chk_finite(op, "scale", scale));
    return NGPT_OK;
}

ngpt_status nx_op_attention(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                            const nx_tensor *v, const nx_tensor *mask, float scale, bool causal)
{
    static const char op[] = "attention";
    NX_TRY(chk_qkv(be, op, out, q, k, v, scale));
    int64_t bs = q->ne[0], sq = q->ne[1], h = q->ne[2], d = q->ne[3];
    int64_t skv = k->ne[1], hkv = k->ne[2];
    if (k->ne[0] != bs || k->ne[3] != d)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s does not match %s (B and D must agree)", op, D("k", k), D("q", q));
    if (hkv < 1 || h % hkv != 0)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: heads of %s (%lld) are not a multiple of those of %s (%lld)", op,
                      D("q", q), (long long)h, D("k", k), (long long)hkv);
    if (d < 1 || skv < 1)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s with %s: D and Skv must be >= 1", op, D("q", q), D("k", k));
    if (causal && sq > skv)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: causal with Sq %lld > Skv %lld leaves queries without keys", op,
                      (long long)sq, (long long)skv);
    if (mask) {
        NX_TRY(chk_tensor(be, op, "mask", mask, NX_DTYPE_BIT(NGPT_DTYPE_F32), "F32"));
        bool ok = false;
        if (mask->rank == 2) ok = mask->ne[0] == sq && mask->ne[1] == skv;
        if (mask->rank == 3) ok = mask->ne[0] == bs && mask->ne[1] == sq && mask->ne[2] == skv;
        if (mask->rank == 4) ok = mask->ne[0] == bs && mask->ne[1] == 1 && mask->ne[2] == sq && mask->ne[3] == skv;
        if (!ok)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s should be [%lld, %lld], [%lld, %lld, %lld] or [%lld, 1, %lld, %lld]",
                          op, D("mask", mask), (long long)sq, (long long)skv, (long long)bs, (long long)sq,
                          (long long)skv, (long long)bs, (long long)sq, (long long)skv);
    }
    NX_TRY(chk_out_shape(op, "out", out, 4, q->ne));
    if (!be->v->attention) return UNSUPPORTED(be, op);
    PROFILED(be, op, out, be->v->attention(be, out, q, k, v, mask, scale, causal));
}

/* rms_norm's and rms_norm_add's common arguments */
static ngpt_status chk_rms(nx_backend *be, const char *op, const nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                           float eps)
{
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    NX_TRY(chk_rank(op, "x", x, 1, NX_MAX_DIMS));
    NX_TRY(chk_eps(op, eps));
    NX_TRY(chk_vec_opt(be, op, "w", w, x->ne[x->rank - 1], "x", x));
    return chk_same_shape(op, "y", y, "x", x);
}

ngpt_status nx_op_rms_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, float eps)
{
    static const char op[] = "rms_norm";
    NX_TRY(chk_rms(be, op, y, x, w, eps));
    if (!be->v->rms_norm) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->rms_norm(be, y, x, w, eps));
}

ngpt_status nx_op_rms_norm_add(nx_backend *be, nx_tensor *y, nx_tensor *x, const nx_tensor *r, const nx_tensor *w,
                               float eps)
{
    static const char op[] = "rms_norm_add";
    NX_TRY(chk_rms(be, op, y, x, w, eps));
    NX_TRY(chk_act(be, op, "r", r));
    NX_TRY(chk_same_dtype(op, "r", r, "x", x));
    NX_TRY(chk_same_shape(op, "r", r, "x", x));
    if (y->data == x->data || y->data == r->data)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s aliases x or r", op, D("y", y));
    if (!be->v->rms_norm_add) { /* the two ops it fuses */
        NX_TRY(nx_op_binary(be, x, x, r, NX_BINARY_ADD));
        return nx_op_rms_norm(be, y, x, w, eps);
    }
    PROFILED(be, op, y, be->v->rms_norm_add(be, y, x, r, w, eps));
}

ngpt_status nx_op_layer_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b,
                             float eps)
{
    static const char op[] = "layer_norm";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    NX_TRY(chk_rank(op, "x", x, 1, NX_MAX_DIMS));
    NX_TRY(chk_eps(op, eps));
    NX_TRY(chk_vec_opt(be, op, "w", w, x->ne[x->rank - 1], "x", x));
    NX_TRY(chk_vec_opt(be, op, "b", b, x->ne[x->rank - 1], "x", x));
    NX_TRY(chk_same_shape(op, "y", y, "x", x));
    if (!be->v->layer_norm) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->layer_norm(be, y, x, w, b, eps));
}

/* y = group_norm(x) (+ SiLU): operands present, resident and agreeing. */
static ngpt_status chk_group_norm(nx_backend *be, const char *op, const nx_tensor *y, const nx_tensor *x,
                                  const nx_tensor *w, const nx_tensor *b, int groups, float eps, unsigned flags)
{
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    NX_TRY(chk_rank(op, "x", x, 2, NX_MAX_DIMS));
    NX_TRY(chk_eps(op, eps));
    if (flags & ~(unsigned)(NX_GN_SILU | NX_GN_CHANNELS_LAST))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", op, flags);
    const int64_t C = x->ne[flags & NX_GN_CHANNELS_LAST ? x->rank - 1 : 1];
    if (groups < 1 || C % groups != 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: groups %d must be >= 1 and divide C of %s%s", op, groups, D("x", x),
                      flags & NX_GN_CHANNELS_LAST ? " (channels last)" : "");
    NX_TRY(chk_vec_opt(be, op, "w", w, C, "x", x));
    NX_TRY(chk_vec_opt(be, op, "b", b, C, "x", x));
    NX_TRY(chk_same_shape(op, "y", y, "x", x));
    return NGPT_OK;
}

ngpt_status nx_op_group_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b,
                             int groups, float eps, unsigned flags)
{
    static const char op[] = "group_norm";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_group_norm(be, op, y, x, w, b, groups, eps, flags));
    if (!be->v->group_norm) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->group_norm(be, y, x, w, b, groups, eps, flags));
}

/* nx_op_group_norm_conv without a backend hook: the backend's two ops through a temporary (the
 * operands checked by the caller, the temporary has x's shape and dtype). */
static ngpt_status group_norm_then_conv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *gw,
                                        const nx_tensor *gb, int groups, float eps, unsigned gn_flags,
                                        const nx_tensor *w, const nx_tensor *b, const nx_conv_params *p)
{
    nx_tensor t = {0};
    NX_TRY(nx_tensor_alloc(&t, be, x->dtype, x->rank, x->ne));
    ngpt_status s = be->v->group_norm(be, &t, x, gw, gb, groups, eps, gn_flags);
    if (s == NGPT_OK) s = be->v->conv(be, y, &t, w, b, p);
    nx_tensor_free(&t);
    return s;
}

ngpt_status nx_op_group_norm_conv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *gw,
                                  const nx_tensor *gb, int groups, float eps, unsigned gn_flags, const nx_tensor *w,
                                  const nx_tensor *b, const nx_conv_params *p)
{
    static const char op[] = "group_norm_conv";
    NX_TRY(chk_be(be, op));
    if (!p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: params are NULL (use nx_conv_params_default)", op);
    if (!(gn_flags & NX_GN_CHANNELS_LAST) != !p->channels_last)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: the norm's layout (%s) is not the convolution's (%s)", op,
                      gn_flags & NX_GN_CHANNELS_LAST ? "channels last" : "channels first",
                      p->channels_last ? "channels last" : "channels first");
    /* the normalised x has x's shape and dtype: x stands for it in the convolution's checks */
    NX_TRY(chk_group_norm(be, op, x, x, gw, gb, groups, eps, gn_flags));
    NX_TRY(chk_conv(be, op, y, x, w, b, p));
    if (be->v->group_norm_conv) PROFILED(be, op, y, be->v->group_norm_conv(be, y, x, gw, gb, groups, eps, gn_flags, w, b, p));
    if (!be->v->group_norm || !be->v->conv) return UNSUPPORTED(be, op);
    /* one op to the profile and the trace on every backend, whichever way it runs */
    PROFILED(be, op, y, group_norm_then_conv(be, y, x, gw, gb, groups, eps, gn_flags, w, b, p));
}

ngpt_status nx_op_rope(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *pos, int n_rot, float theta,
                       nx_rope_mode mode)
{
    static const char op[] = "rope";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    NX_TRY(chk_tensor(be, op, "pos", pos, NX_DTYPE_BIT(NGPT_DTYPE_I32), "I32"));
    NX_TRY(chk_rank(op, "x", x, 4, 4));
    if (pos->rank != 1 || pos->ne[0] != x->ne[1])
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s does not match %s (expected [%lld])", op, D("pos", pos),
                      D("x", x), (long long)x->ne[1]);
    if (n_rot < 2 || n_rot % 2 != 0 || n_rot > x->ne[3])
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: n_rot %d must be even, >= 2 and <= D of %s", op, n_rot, D("x", x));
    if (!(theta > 0.0f) || !isfinite(theta))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: theta %g must be > 0", op, (double)theta);
    if (mode != NX_ROPE_HALF && mode != NX_ROPE_INTERLEAVED)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown mode %d", op, (int)mode);
    NX_TRY(chk_same_shape(op, "y", y, "x", x));
    if (!be->v->rope) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->rope(be, y, x, pos, n_rot, theta, mode));
}

ngpt_status nx_op_softmax(nx_backend *be, nx_tensor *y, const nx_tensor *x, float scale)
{
    static const char op[] = "softmax";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    NX_TRY(chk_rank(op, "x", x, 1, NX_MAX_DIMS));
    NX_TRY(chk_finite(op, "scale", scale));
    NX_TRY(chk_same_shape(op, "y", y, "x", x));
    if (!be->v->softmax) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->softmax(be, y, x, scale));
}

ngpt_status nx_op_unary(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_unary u, float param)
{
    static const char op[] = "unary";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    if (!unary_valid(u)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown function %d", op, (int)u);
    if (u == NX_UNARY_LEAKY_RELU) NX_TRY(chk_finite(op, "leaky_relu slope", param));
    NX_TRY(chk_same_shape(op, "y", y, "x", x));
    if (!be->v->unary) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->unary(be, y, x, u, param));
}

ngpt_status nx_op_binary(nx_backend *be, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, nx_binary bop)
{
    static const char op[] = "binary";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "a", a));
    NX_TRY(chk_act(be, op, "b", b));
    NX_TRY(chk_same_dtype(op, "b", b, "a", a));
    NX_TRY(chk_same_dtype(op, "y", y, "a", a));
    if ((unsigned)bop > (unsigned)NX_BINARY_DIV) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown op %d", op, (int)bop);
    int r = a->rank > b->rank ? a->rank : b->rank;
    int64_t ne[NX_MAX_DIMS];
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->ne[ia] : 1, db = ib >= 0 ? b->ne[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s and %s do not broadcast (dim %d: %lld vs %lld)", op, D("a", a),
                          D("b", b), i, (long long)da, (long long)db);
        ne[i] = da == 1 ? db : da;
    }
    NX_TRY(chk_out_shape(op, "y", y, r, ne));
    if ((y->data == a->data && !nx_same_shape(y, a)) || (y->data == b->data && !nx_same_shape(y, b)))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s aliases an input of another shape (%s, %s)", op, D("y", y),
                      D("a", a), D("b", b));
    if (!be->v->binary) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->binary(be, y, a, b, bop));
}

ngpt_status nx_op_scale(nx_backend *be, nx_tensor *y, const nx_tensor *x, float alpha, float beta)
{
    static const char op[] = "scale";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    NX_TRY(chk_finite(op, "alpha", alpha));
    NX_TRY(chk_finite(op, "beta", beta));
    NX_TRY(chk_same_shape(op, "y", y, "x", x));
    if (!be->v->scale) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->scale(be, y, x, alpha, beta));
}

ngpt_status nx_op_glu(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_unary act, bool gate_first)
{
    static const char op[] = "glu";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    NX_TRY(chk_rank(op, "x", x, 1, NX_MAX_DIMS));
    if (!unary_valid(act) || act == NX_UNARY_LEAKY_RELU)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: activation %d (%s) not allowed", op, (int)act, unary_name(act));
    int64_t last = x->ne[x->rank - 1];
    if (last % 2 != 0)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: last dim of %s must be even", op, D("x", x));
    int64_t ne[NX_MAX_DIMS];
    memcpy(ne, x->ne, sizeof ne);
    ne[x->rank - 1] = last / 2;
    NX_TRY(chk_out_shape(op, "y", y, x->rank, ne));
    if (!be->v->glu) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->glu(be, y, x, act, gate_first));
}

ngpt_status nx_op_get_rows(nx_backend *be, nx_tensor *y, const nx_tensor *table, const nx_tensor *ids)
{
    static const char op[] = "get_rows";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_weight(be, op, "table", table));
    NX_TRY(chk_tensor(be, op, "ids", ids, NX_DTYPE_BIT(NGPT_DTYPE_I32), "I32"));
    NX_TRY(chk_rank(op, "table", table, 2, 2));
    NX_TRY(chk_rank(op, "ids", ids, 1, 1));
    int64_t ne[2] = {ids->ne[0], table->ne[1]};
    NX_TRY(chk_out_shape(op, "y", y, 2, ne));
    if (!be->v->get_rows) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->get_rows(be, y, table, ids));
}

ngpt_status nx_op_concat(nx_backend *be, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, int axis)
{
    static const char op[] = "concat";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "a", a));
    NX_TRY(chk_act(be, op, "b", b));
    NX_TRY(chk_same_dtype(op, "b", b, "a", a));
    NX_TRY(chk_same_dtype(op, "y", y, "a", a));
    NX_TRY(chk_rank(op, "a", a, 1, NX_MAX_DIMS));
    NX_TRY(chk_axis(op, &axis, a->rank, "a", a));
    if (b->rank != a->rank)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s and %s differ in rank", op, D("a", a), D("b", b));
    int64_t ne[NX_MAX_DIMS];
    for (int i = 0; i < a->rank; i++) {
        if (i != axis && a->ne[i] != b->ne[i])
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s and %s differ in dim %d (concat axis %d)", op, D("a", a),
                          D("b", b), i, axis);
        ne[i] = i == axis ? a->ne[i] + b->ne[i] : a->ne[i];
    }
    NX_TRY(chk_out_shape(op, "y", y, a->rank, ne));
    if (!be->v->concat) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->concat(be, y, a, b, axis));
}

ngpt_status nx_op_slice(nx_backend *be, nx_tensor *y, const nx_tensor *x, int axis, int64_t start)
{
    static const char op[] = "slice";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    NX_TRY(chk_rank(op, "x", x, 1, NX_MAX_DIMS));
    NX_TRY(chk_axis(op, &axis, x->rank, "x", x));
    if (y->rank != x->rank)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s and %s differ in rank", op, D("y", y), D("x", x));
    for (int i = 0; i < x->rank; i++)
        if (i != axis && x->ne[i] != y->ne[i])
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s and %s differ in dim %d (slice axis %d)", op, D("y", y),
                          D("x", x), i, axis);
    if (start < 0 || start > x->ne[axis] - y->ne[axis])
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: [%lld:%lld] along axis %d is out of range for %s", op,
                      (long long)start, (long long)(start + y->ne[axis]), axis, D("x", x));
    if (!be->v->slice) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->slice(be, y, x, axis, start));
}

ngpt_status nx_op_permute(nx_backend *be, nx_tensor *y, const nx_tensor *x, const int *perm)
{
    static const char op[] = "permute";
    NX_TRY(chk_be(be, op));
    /* a copy: any float dtype on either backend (a loader also permutes F16/BF16 weights on the
     * CPU, whose activations are F32) */
    NX_TRY(chk_weight(be, op, "y", y));
    NX_TRY(chk_weight(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    if (!perm) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: perm is NULL", op);
    bool seen[NX_MAX_DIMS] = {0};
    int64_t ne[NX_MAX_DIMS];
    for (int i = 0; i < x->rank; i++) {
        int p = perm[i];
        if (p < 0 || p >= x->rank || seen[p])
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: perm is not a permutation of the %d dims of %s (entry %d = %d)",
                          op, x->rank, D("x", x), i, p);
        seen[p] = true;
        ne[i] = x->ne[p];
    }
    NX_TRY(chk_out_shape(op, "y", y, x->rank, ne));
    if (!be->v->permute) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->permute(be, y, x, perm));
}

ngpt_status nx_op_cast(nx_backend *be, nx_tensor *y, const nx_tensor *x)
{
    static const char op[] = "cast";
    const unsigned ok = NX_FLOAT_DTYPES | NX_DTYPE_BIT(NGPT_DTYPE_I32);
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_tensor(be, op, "y", y, ok, "F32, F16, BF16 or I32"));
    NX_TRY(chk_tensor(be, op, "x", x, ok, "F32, F16, BF16 or I32"));
    bool xi = x->dtype == NGPT_DTYPE_I32, yi = y->dtype == NGPT_DTYPE_I32;
    if (xi != yi && (xi ? y->dtype : x->dtype) != NGPT_DTYPE_F32)
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "%s: %s to %s: I32 converts to and from F32 only", op, D("x", x), D("y", y));
    NX_TRY(chk_same_shape(op, "y", y, "x", x));
    if (!be->v->cast) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->cast(be, y, x));
}

ngpt_status nx_op_resize(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_resize_mode mode, bool align_corners,
                         bool channels_last)
{
    static const char op[] = "resize";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_same_dtype(op, "y", y, "x", x));
    NX_TRY(chk_rank(op, "x", x, 4, 4));
    NX_TRY(chk_rank(op, "y", y, 4, 4));
    if (mode != NX_RESIZE_NEAREST && mode != NX_RESIZE_BILINEAR)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown mode %d", op, (int)mode);
    if (mode == NX_RESIZE_NEAREST && align_corners)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: align_corners only applies to bilinear", op);
    const int c = channels_last ? 3 : 1, h = channels_last ? 1 : 2; /* C and H's dims */
    if (y->ne[0] != x->ne[0] || y->ne[c] != x->ne[c] || y->ne[h] < 1 || y->ne[h + 1] < 1 || x->ne[h] < 1 ||
        x->ne[h + 1] < 1)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s does not match %s (N, C equal, spatial sizes >= 1%s)", op, D("y", y),
                      D("x", x), channels_last ? "; channels last" : "");
    if (!be->v->resize) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->resize(be, y, x, mode, align_corners, channels_last));
}

ngpt_status nx_op_argmax(nx_backend *be, nx_tensor *y, const nx_tensor *x)
{
    static const char op[] = "argmax";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_tensor(be, op, "y", y, NX_DTYPE_BIT(NGPT_DTYPE_I32), "I32"));
    NX_TRY(chk_act(be, op, "x", x));
    NX_TRY(chk_rank(op, "x", x, 1, NX_MAX_DIMS));
    if (x->ne[x->rank - 1] < 1)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: last dim of %s is empty", op, D("x", x));
    NX_TRY(chk_out_shape(op, "y", y, x->rank - 1, x->ne));
    if (!be->v->argmax) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->argmax(be, y, x));
}

/* a state slot the plan names: present, F32, n elements */
static ngpt_status chk_slot(nx_backend *be, const char *op, int idx, nx_tensor *const *slot, int n_slots, int64_t n,
                            const char *role)
{
    if (idx < 0) return NGPT_OK;
    if (idx >= NX_SCHED_SLOTS || idx >= n_slots || !slot || !slot[idx])
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: the plan's %s is state slot %d, but %d slots were given", op, role,
                      idx, n_slots);
    NX_TRY(chk_tensor(be, op, "slot", slot[idx], NX_DTYPE_BIT(NGPT_DTYPE_F32), "F32"));
    if (nx_numel(slot[idx]) != n)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s has %lld elements, the plan %lld", op, D("slot", slot[idx]),
                      (long long)nx_numel(slot[idx]), (long long)n);
    return NGPT_OK;
}

ngpt_status nx_op_sched_step(nx_backend *be, const nx_sched_step *p, nx_tensor *x, const nx_tensor *eps,
                             const nx_tensor *noise, nx_tensor *const *slot, int n_slots)
{
    static const char op[] = "sched_step";
    NX_TRY(chk_be(be, op));
    if (!p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: no plan", op);
    if (p->kind < NX_SCHED_KIND_DDIM || p->kind > NX_SCHED_KIND_DPM_SINGLE)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown scheduler kind %d", op, p->kind);
    const unsigned f32 = NX_DTYPE_BIT(NGPT_DTYPE_F32);
    NX_TRY(chk_tensor(be, op, "x", x, f32, "F32"));
    NX_TRY(chk_tensor(be, op, "eps", eps, f32, "F32"));
    const int64_t n = p->n;
    if (nx_numel(x) != n || nx_numel(eps) != (p->cfg ? 2 * n : n))
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s and %s for a plan of %lld elements%s", op, D("x", x), D("eps", eps),
                      (long long)n, p->cfg ? " (eps holds [uncond; cond]: twice that)" : "");
    if (p->cfg) NX_TRY(chk_finite(op, "guidance", p->guidance));
    if (p->noise) {
        NX_TRY(chk_tensor(be, op, "noise", noise, f32, "F32"));
        if (nx_numel(noise) != n)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s for a plan of %lld elements", op, D("noise", noise), (long long)n);
    }
    if (n_slots < 0 || n_slots > NX_SCHED_SLOTS)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %d state slots (at most %d)", op, n_slots, NX_SCHED_SLOTS);
    NX_TRY(chk_slot(be, op, p->push, slot, n_slots, n, "ets.append target"));
    NX_TRY(chk_slot(be, op, p->save_x, slot, n_slots, n, "cur_sample"));
    NX_TRY(chk_slot(be, op, p->acc, slot, n_slots, n, "accumulator"));
    NX_TRY(chk_slot(be, op, p->xin, slot, n_slots, n, "sample"));
    for (int j = 0; j < 4; j++) NX_TRY(chk_slot(be, op, p->e[j], slot, n_slots, n, "history"));
    for (int j = 0; j < 3; j++) NX_TRY(chk_slot(be, op, p->m[j], slot, n_slots, n, "model output history"));
    if ((p->kind == NX_SCHED_KIND_DPM || p->kind == NX_SCHED_KIND_DEIS || p->kind == NX_SCHED_KIND_DPM_SINGLE) &&
        p->m[0] < 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: a DPM-Solver or DEIS plan without its model output slot", op);
    if (p->kind == NX_SCHED_KIND_DPM_SINGLE && p->save_x < 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: a DPM-Solver singlestep plan without its sample slot", op);
    if (p->kind == NX_SCHED_KIND_EULER && p->c.euler.heun != NX_HEUN_NONE &&
        (p->m[1] < 0 || ((p->c.euler.heun == NX_HEUN_FIRST || p->c.euler.heun == NX_HEUN_SECOND) && p->m[0] < 0)))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: a Heun or KDPM2 plan without its state slots", op);
    if (p->kind == NX_SCHED_KIND_LMS && p->push < 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: an LMS plan without its derivative slot", op);
    if (p->kind == NX_SCHED_KIND_UNIPC && (p->push < 0 || p->save_x < 0 || (p->c.unipc.corr && p->m[0] < 0)))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: a UniPC plan without its model output or sample slots", op);
    bool alias = x->data == eps->data || (p->noise && x->data == noise->data);
    for (int j = 0; j < n_slots; j++) alias |= slot[j] && slot[j]->data == x->data;
    alias &= n > 0;
    if (alias) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s aliases another operand", op, D("x", x));
    nx_tensor *all[NX_SCHED_SLOTS] = {0};
    for (int j = 0; j < n_slots; j++) all[j] = slot[j];
    if (!be->v->sched_step) return UNSUPPORTED(be, op);
    PROFILED(be, op, x, be->v->sched_step(be, p, x, eps, p->noise ? noise : NULL, all));
}

ngpt_status nx_op_timestep_embedding(nx_backend *be, nx_tensor *y, const nx_tensor *t, const nx_timestep_params *p)
{
    static const char op[] = "timestep_embedding";
    NX_TRY(chk_be(be, op));
    if (!p || p->dim < 1 || !isfinite(p->shift) || !(p->max_period > 0.0f) || !isfinite(p->max_period))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: dim must be >= 1, shift finite and max_period positive", op);
    if (p->dim / 2 > 0 && (float)(p->dim / 2) == p->shift)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: shift %g equals dim/2: the frequencies divide by zero", op,
                      (double)p->shift);
    NX_TRY(chk_act(be, op, "y", y));
    NX_TRY(chk_tensor(be, op, "t", t, NX_DTYPE_BIT(NGPT_DTYPE_F32), "F32"));
    if (t->rank != 1 || y->rank != 2 || y->ne[0] != t->ne[0] || y->ne[1] != p->dim)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s should be [%lld, %d] for %s", op, D("y", y),
                      (long long)(t->rank >= 1 ? t->ne[0] : 0), p->dim, D("t", t));
    if (!be->v->timestep_embedding) return UNSUPPORTED(be, op);
    PROFILED(be, op, y, be->v->timestep_embedding(be, y, t, p));
}

ngpt_status nx_op_set_rows(nx_backend *be, nx_tensor *dst, const nx_tensor *src, const nx_tensor *pos)
{
    static const char op[] = "set_rows";
    NX_TRY(chk_be(be, op));
    NX_TRY(chk_act(be, op, "dst", dst));
    NX_TRY(chk_act(be, op, "src", src));
    NX_TRY(chk_same_dtype(op, "src", src, "dst", dst));
    NX_TRY(chk_tensor(be, op, "pos", pos, NX_DTYPE_BIT(NGPT_DTYPE_I32), "I32"));
    NX_TRY(chk_rank(op, "dst", dst, 2, 2));
    NX_TRY(chk_rank(op, "src", src, 2, 2));
    NX_TRY(chk_rank(op, "pos", pos, 1, 1));
    if (src->ne[1] != dst->ne[1] || pos->ne[0] != src->ne[0])
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s, %s and %s: src [n, D] into dst [R, D] at pos [n]", op,
                      D("dst", dst), D("src", src), D("pos", pos));
    if (src->ne[0] > 0 && dst->data == src->data)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s aliases src", op, D("dst", dst));
    if (!be->v->set_rows) return UNSUPPORTED(be, op);
    PROFILED(be, op, dst, be->v->set_rows(be, dst, src, pos));
}

ngpt_status nx_op_attention_len(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                                const nx_tensor *v, const nx_tensor *len, float scale)
{
    static const char op[] = "attention_len";
    NX_TRY(chk_qkv(be, op, out, q, k, v, scale));
    NX_TRY(chk_tensor(be, op, "len", len, NX_DTYPE_BIT(NGPT_DTYPE_I32), "I32"));
    if (nx_numel(len) != 1) return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s must hold one length", op, D("len", len));
    if (q->ne[1] != 1 || k->ne[0] != q->ne[0] || k->ne[3] != q->ne[3] || k->ne[1] < 1 || k->ne[2] < 1 ||
        q->ne[2] % k->ne[2] != 0)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s with %s: q [B, 1, H, D], k [B, Skv >= 1, Hkv, D], H a "
                      "multiple of Hkv", op, D("q", q), D("k", k));
    NX_TRY(chk_out_shape(op, "out", out, 4, q->ne));
    if (!be->v->attention_len) return UNSUPPORTED(be, op);
    PROFILED(be, op, out, be->v->attention_len(be, out, q, k, v, len, scale));
}
