/* ref_ops.c — see ref_ops.h. Deliberately naive. */
#include "ref_ops.h"

#include <math.h>
#include <string.h>

int64_t ref_numel(int rank, const int64_t *ne)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= ne[i];
    return n;
}

void ref_to_nhwc(float *dst, const float *src, int64_t n, int64_t c, int64_t sp)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t q = 0; q < sp; q++) dst[(i * sp + q) * c + k] = src[(i * c + k) * sp + q];
}

void ref_to_nhwc_d(double *dst, const double *src, int64_t n, int64_t c, int64_t sp)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t q = 0; q < sp; q++) dst[(i * sp + q) * c + k] = src[(i * c + k) * sp + q];
}

void ref_rms_norm(float *y, const float *x, int64_t rows, int64_t c, const float *w, double eps)
{
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t i = 0; i < c; i++) ss += (double)x[r * c + i] * x[r * c + i];
        double inv = 1.0 / sqrt(ss / (double)c + eps);
        for (int64_t i = 0; i < c; i++) y[r * c + i] = (float)(x[r * c + i] * inv * (w ? w[i] : 1.0));
    }
}

void ref_layer_norm(float *y, const float *x, int64_t rows, int64_t c, const float *w, const float *b, double eps)
{
    for (int64_t r = 0; r < rows; r++) {
        double s = 0, ss = 0;
        for (int64_t i = 0; i < c; i++) s += x[r * c + i];
        double mean = s / (double)c;
        for (int64_t i = 0; i < c; i++) ss += (x[r * c + i] - mean) * (x[r * c + i] - mean);
        double inv = 1.0 / sqrt(ss / (double)c + eps);
        for (int64_t i = 0; i < c; i++)
            y[r * c + i] = (float)((x[r * c + i] - mean) * inv * (w ? w[i] : 1.0) + (b ? b[i] : 0.0));
    }
}

void ref_group_norm(float *y, const float *x, int64_t n, int64_t c, int64_t spatial, int groups, const float *w,
                    const float *b, double eps, int silu)
{
    int64_t cg = c / groups;
    for (int64_t ni = 0; ni < n; ni++)
        for (int g = 0; g < groups; g++) {
            const float *xg = x + (ni * c + g * cg) * spatial;
            float *yg = y + (ni * c + g * cg) * spatial;
            double s = 0, ss = 0;
            int64_t len = cg * spatial;
            for (int64_t i = 0; i < len; i++) s += xg[i];
            double mean = s / (double)len;
            for (int64_t i = 0; i < len; i++) ss += (xg[i] - mean) * (xg[i] - mean);
            double inv = 1.0 / sqrt(ss / (double)len + eps);
            for (int64_t ci = 0; ci < cg; ci++)
                for (int64_t i = 0; i < spatial; i++) {
                    int64_t ch = g * cg + ci;
                    double v = (xg[ci * spatial + i] - mean) * inv * (w ? w[ch] : 1.0) + (b ? b[ch] : 0.0);
                    if (silu) v = v / (1.0 + exp(-v));
                    yg[ci * spatial + i] = (float)v;
                }
        }
}

void ref_rope(float *y, const float *x, int64_t b, int64_t s, int64_t h, int64_t d, const int32_t *pos, int n_rot,
              double theta, nx_rope_mode mode)
{
    for (int64_t bi = 0; bi < b; bi++)
        for (int64_t si = 0; si < s; si++)
            for (int64_t hi = 0; hi < h; hi++) {
                const float *xr = x + ((bi * s + si) * h + hi) * d;
                float *yr = y + ((bi * s + si) * h + hi) * d;
                double out[4096];
                for (int64_t i = 0; i < d; i++) out[i] = xr[i];
                for (int i = 0; i < n_rot / 2; i++) {
                    double ang = pos[si] * pow(theta, -2.0 * i / n_rot);
                    int i0 = mode == NX_ROPE_HALF ? i : 2 * i;
                    int i1 = mode == NX_ROPE_HALF ? i + n_rot / 2 : 2 * i + 1;
                    out[i0] = xr[i0] * cos(ang) - xr[i1] * sin(ang);
                    out[i1] = xr[i1] * cos(ang) + xr[i0] * sin(ang);
                }
                for (int64_t i = 0; i < d; i++) yr[i] = (float)out[i];
            }
}

void ref_softmax(float *y, const float *x, int64_t rows, int64_t c, double scale)
{
    for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY, s = 0;
        for (int64_t i = 0; i < c; i++) mx = fmax(mx, x[r * c + i] * scale);
        for (int64_t i = 0; i < c; i++) s += exp(x[r * c + i] * scale - mx);
        for (int64_t i = 0; i < c; i++) y[r * c + i] = (float)(exp(x[r * c + i] * scale - mx) / s);
    }
}

double ref_unary1(nx_unary op, double x, double param)
{
    switch (op) {
    case NX_UNARY_IDENTITY: return x;
    case NX_UNARY_SILU: return x / (1.0 + exp(-x));
    /* 0.5 (1 + erf(x / sqrt 2)) written with erfc, and 0.5 (1 + tanh(u)) as sigmoid(2u), so that
     * the negative tails do not cancel */
    case NX_UNARY_GELU: return 0.5 * x * erfc(-x / sqrt(2.0));
    case NX_UNARY_GELU_TANH: return x / (1.0 + exp(-2.0 * sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case NX_UNARY_QUICK_GELU: return x / (1.0 + exp(-1.702 * x));
    case NX_UNARY_RELU: return x > 0 ? x : 0;
    case NX_UNARY_LEAKY_RELU: return x >= 0 ? x : x * param;
    case NX_UNARY_TANH: return tanh(x);
    case NX_UNARY_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case NX_UNARY_EXP: return exp(x);
    case NX_UNARY_SQRT: return sqrt(x);
    case NX_UNARY_NEG: return -x;
    }
    return NAN;
}

void ref_unary(float *y, const float *x, int64_t n, nx_unary op, double param)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)ref_unary1(op, x[i], param);
}

void ref_binary(float *y, const float *a, int ra, const int64_t *nea, const float *b, int rb, const int64_t *neb,
                nx_binary op)
{
    int r = ra > rb ? ra : rb;
    int64_t ne[NX_MAX_DIMS], da[NX_MAX_DIMS], db[NX_MAX_DIMS];
    for (int i = 0; i < r; i++) {
        int ia = i - (r - ra), ib = i - (r - rb);
        da[i] = ia >= 0 ? nea[ia] : 1;
        db[i] = ib >= 0 ? neb[ib] : 1;
        ne[i] = da[i] > db[i] ? da[i] : db[i];
    }
    int64_t n = ref_numel(r, ne);
    for (int64_t e = 0; e < n; e++) {
        int64_t rem = e, oa = 0, ob = 0, sa = 1, sb = 1;
        for (int i = r - 1; i >= 0; i--) {
            int64_t idx = rem % ne[i];
            rem /= ne[i];
            oa += (da[i] == 1 ? 0 : idx) * sa;
            ob += (db[i] == 1 ? 0 : idx) * sb;
            sa *= da[i];
            sb *= db[i];
        }
        double u = a[oa], v = b[ob], res = 0;
        switch (op) {
        case NX_BINARY_ADD: res = u + v; break;
        case NX_BINARY_SUB: res = u - v; break;
        case NX_BINARY_MUL: res = u * v; break;
        case NX_BINARY_DIV: res = u / v; break;
        }
        y[e] = (float)res;
    }
}

void ref_scale(float *y, const float *x, int64_t n, double alpha, double beta)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)(alpha * x[i] + beta);
}

void ref_glu(float *y, const float *x, int64_t rows, int64_t n, nx_unary act, int gate_first)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) {
            double a = x[r * 2 * n + i], b = x[r * 2 * n + n + i];
            y[r * n + i] = (float)(gate_first ? ref_unary1(act, a, 0) * b : a * ref_unary1(act, b, 0));
        }
}

void ref_argmax(int32_t *y, const float *x, int64_t rows, int64_t c)
{
    for (int64_t r = 0; r < rows; r++) {
        int32_t best = 0;
        for (int64_t i = 1; i < c; i++)
            if (x[r * c + i] > x[r * c + best]) best = (int32_t)i;
        y[r] = best;
    }
}

void ref_get_rows(float *y, const float *table, int64_t d, const int32_t *ids, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) y[i * d + j] = table[(int64_t)ids[i] * d + j];
}

/* index of a multi-index in a row-major shape */
static int64_t flat(int rank, const int64_t *ne, const int64_t *idx)
{
    int64_t o = 0;
    for (int i = 0; i < rank; i++) o = o * ne[i] + idx[i];
    return o;
}

static void unflat(int rank, const int64_t *ne, int64_t e, int64_t *idx)
{
    for (int i = rank - 1; i >= 0; i--) {
        idx[i] = e % ne[i];
        e /= ne[i];
    }
}

void ref_concat(void *y, const void *a, const void *b, size_t es, int rank, const int64_t *nea, const int64_t *neb,
                int axis)
{
    int64_t ne[NX_MAX_DIMS], idx[NX_MAX_DIMS];
    memcpy(ne, nea, sizeof(int64_t) * (size_t)rank);
    ne[axis] += neb[axis];
    int64_t n = ref_numel(rank, ne);
    for (int64_t e = 0; e < n; e++) {
        unflat(rank, ne, e, idx);
        const void *src;
        if (idx[axis] < nea[axis]) {
            src = (const char *)a + (size_t)flat(rank, nea, idx) * es;
        } else {
            idx[axis] -= nea[axis];
            src = (const char *)b + (size_t)flat(rank, neb, idx) * es;
        }
        memcpy((char *)y + (size_t)e * es, src, es);
    }
}

void ref_slice(void *y, const void *x, size_t es, int rank, const int64_t *nex, int axis, int64_t start, int64_t len)
{
    int64_t ne[NX_MAX_DIMS], idx[NX_MAX_DIMS];
    memcpy(ne, nex, sizeof(int64_t) * (size_t)rank);
    ne[axis] = len;
    int64_t n = ref_numel(rank, ne);
    for (int64_t e = 0; e < n; e++) {
        unflat(rank, ne, e, idx);
        idx[axis] += start;
        memcpy((char *)y + (size_t)e * es, (const char *)x + (size_t)flat(rank, nex, idx) * es, es);
    }
}

void ref_permute(void *y, const void *x, size_t es, int rank, const int64_t *nex, const int *perm)
{
    int64_t ne[NX_MAX_DIMS], idx[NX_MAX_DIMS], xi[NX_MAX_DIMS];
    for (int i = 0; i < rank; i++) ne[i] = nex[perm[i]];
    int64_t n = ref_numel(rank, ne);
    for (int64_t e = 0; e < n; e++) {
        unflat(rank, ne, e, idx);
        for (int i = 0; i < rank; i++) xi[perm[i]] = idx[i];
        memcpy((char *)y + (size_t)e * es, (const char *)x + (size_t)flat(rank, nex, xi) * es, es);
    }
}

void ref_resize(float *y, const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t ho, int64_t wo,
                nx_resize_mode mode, int align_corners)
{
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t oy = 0; oy < ho; oy++)
            for (int64_t ox = 0; ox < wo; ox++) {
                const float *xp = x + p * h * w;
                double v;
                if (mode == NX_RESIZE_NEAREST) {
                    /* torch nearest_idx */
                    int64_t sy = ho == h ? oy : ho == 2 * h ? oy / 2 : (int64_t)floorf((float)oy * ((float)h / (float)ho));
                    int64_t sx = wo == w ? ox : wo == 2 * w ? ox / 2 : (int64_t)floorf((float)ox * ((float)w / (float)wo));
                    if (sy > h - 1) sy = h - 1;
                    if (sx > w - 1) sx = w - 1;
                    v = xp[sy * w + sx];
                } else {
                    int64_t in[2] = {h, w}, out[2] = {ho, wo}, d[2] = {oy, ox}, i0[2], i1[2];
                    double l1[2];
                    for (int k = 0; k < 2; k++) {
                        float src;
                        if (align_corners) {
                            float sc = out[k] > 1 ? (float)(in[k] - 1) / (float)(out[k] - 1) : 0.0f;
                            src = sc * (float)d[k];
                        } else {
                            float sc = (float)in[k] / (float)out[k];
                            src = sc * ((float)d[k] + 0.5f) - 0.5f;
                            if (src < 0) src = 0;
                        }
                        i0[k] = (int64_t)floorf(src);
                        if (i0[k] > in[k] - 1) i0[k] = in[k] - 1;
                        i1[k] = i0[k] < in[k] - 1 ? i0[k] + 1 : i0[k];
                        l1[k] = src - (float)i0[k];
                    }
                    v = (1 - l1[0]) * ((1 - l1[1]) * xp[i0[0] * w + i0[1]] + l1[1] * xp[i0[0] * w + i1[1]]) +
                        l1[0] * ((1 - l1[1]) * xp[i1[0] * w + i0[1]] + l1[1] * xp[i1[0] * w + i1[1]]);
                }
                y[(p * ho + oy) * wo + ox] = (float)v;
            }
}

void ref_linear(float *y, const float *x, const float *w, const float *b, int64_t m, int64_t n, int64_t k)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = b ? b[j] : 0.0;
            for (int64_t t = 0; t < k; t++) s += (double)x[i * k + t] * w[j * k + t];
            y[i * n + j] = (float)s;
        }
}

void ref_attention(float *out, const float *q, const float *k, const float *v, const float *mask, int mask_batched,
                   int64_t bsz, int64_t sq, int64_t skv, int64_t h, int64_t hkv, int64_t d, double scale, int causal)
{
    double sc[8192];
    for (int64_t b = 0; b < bsz; b++)
        for (int64_t hi = 0; hi < h; hi++) {
            int64_t kh = hi / (h / hkv);
            for (int64_t i = 0; i < sq; i++) {
                double mx = -INFINITY;
                for (int64_t j = 0; j < skv; j++) {
                    double s = 0;
                    for (int64_t t = 0; t < d; t++)
                        s += (double)q[((b * sq + i) * h + hi) * d + t] * k[((b * skv + j) * hkv + kh) * d + t];
                    s *= scale;
                    if (mask) s += mask[((mask_batched ? b : 0) * sq + i) * skv + j];
                    if (causal && j > i + (skv - sq)) s = -INFINITY;
                    sc[j] = s;
                    mx = fmax(mx, s);
                }
                double sum = 0;
                for (int64_t j = 0; j < skv; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int64_t t = 0; t < d; t++) {
                    double o = 0;
                    for (int64_t j = 0; j < skv; j++) o += sc[j] * v[((b * skv + j) * hkv + kh) * d + t];
                    out[((b * sq + i) * h + hi) * d + t] = (float)(o / sum);
                }
            }
        }
}

/* Generic N-d conv reference over up to 3 spatial dims (unused dims have size 1). */
void ref_conv(const float *x, const float *w, const float *b, const int64_t *xs, const int64_t *ws,
                     const int64_t *ys, int nsp, const nx_conv_params *p, double *y, double *sc)
{
    int64_t N = xs[0], C = xs[1], O = ws[0], G = p->groups, Cg = C / G, Og = O / G;
    int64_t X[3] = {1, 1, 1}, Kk[3] = {1, 1, 1}, Y[3] = {1, 1, 1}, st[3] = {1, 1, 1}, pd[3] = {0, 0, 0},
            dl[3] = {1, 1, 1};
    for (int i = 0; i < nsp; i++) {
        int j = 3 - nsp + i;
        X[j] = xs[2 + i], Kk[j] = ws[2 + i], Y[j] = ys[2 + i];
        st[j] = p->stride[i], pd[j] = p->pad[i], dl[j] = p->dilation[i];
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            int64_t g = o / Og;
            for (int64_t a = 0; a < Y[0]; a++)
                for (int64_t bb = 0; bb < Y[1]; bb++)
                    for (int64_t c = 0; c < Y[2]; c++) {
                        double s = b ? b[o] : 0, sa = b ? fabs(b[o]) : 0;
                        for (int64_t ci = 0; ci < Cg; ci++)
                            for (int64_t ka = 0; ka < Kk[0]; ka++)
                                for (int64_t kb = 0; kb < Kk[1]; kb++)
                                    for (int64_t kc = 0; kc < Kk[2]; kc++) {
                                        int64_t ia = a * st[0] - pd[0] + ka * dl[0];
                                        int64_t ib = bb * st[1] - pd[1] + kb * dl[1];
                                        int64_t ic = c * st[2] - pd[2] + kc * dl[2];
                                        if (ia < 0 || ia >= X[0] || ib < 0 || ib >= X[1] || ic < 0 || ic >= X[2])
                                            continue;
                                        double xv = x[(((n * C + g * Cg + ci) * X[0] + ia) * X[1] + ib) * X[2] + ic];
                                        double wv = w[(((o * Cg + ci) * Kk[0] + ka) * Kk[1] + kb) * Kk[2] + kc];
                                        s += xv * wv;
                                        sa += fabs(xv * wv);
                                    }
                        size_t yi = (size_t)((((n * O + o) * Y[0] + a) * Y[1] + bb) * Y[2] + c);
                        y[yi] = s;
                        sc[yi] = sa;
                    }
        }
}

/* The conv epilogue on the reference: y = act(y) + res, and its error scale grows by |res|. */
void ref_epilogue(double *y, double *sc, size_t n, const nx_conv_params *p)
{
    for (size_t i = 0; i < n; i++) {
        if (p->act == NX_UNARY_LEAKY_RELU && y[i] < 0) y[i] *= p->act_param;
        if (p->act == NX_UNARY_RELU && y[i] < 0) y[i] = 0;
        if (p->residual) {
            const double r = ((const float *)p->residual->data)[i];
            y[i] += r;
            sc[i] += fabs(r);
        }
    }
}

/* See ref_ops.h. */
void ref_conv_transpose1d(const float *x, const float *w, const float *b, int64_t N, int64_t C, int64_t O, int64_t L,
                          int64_t Lo, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t groups, double *y,
                          double *sc)
{
    const int64_t Cg = C / groups, Og = O / groups;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            const int64_t g = o / Og;
            double *yr = y + (n * O + o) * Lo, *sr = sc + (n * O + o) * Lo;
            for (int64_t t = 0; t < Lo; t++) yr[t] = b ? b[o] : 0, sr[t] = b ? fabs(b[o]) : 0;
            for (int64_t ci = 0; ci < Cg; ci++)
                for (int64_t l = 0; l < L; l++)
                    for (int64_t kk = 0; kk < k; kk++) {
                        const int64_t t = l * stride - pad + kk * dil;
                        if (t < 0 || t >= Lo) continue;
                        const double v = (double)x[(n * C + g * Cg + ci) * L + l] * w[((g * Cg + ci) * Og + o % Og) * k + kk];
                        yr[t] += v;
                        sr[t] += fabs(v);
                    }
        }
}
