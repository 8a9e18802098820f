/* mweights.c — see mweights.h. */
#include "mweights.h"

#include "../core/alloc.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

ngpt_status nx_mw_open(nx_mw *m, nx_backend *be, const char *dir, const char *const *files)
{
    memset(m, 0, sizeof *m);
    m->be = be;
    char tried[512] = "";
    for (size_t i = 0; files[i]; i++) {
        size_t n = strlen(dir) + strlen(files[i]) + 2;
        char *p = nx_malloc(n);
        if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
        snprintf(p, n, "%s/%s", dir, files[i]);
        struct stat sb;
        if (stat(p, &sb) == 0) {
            ngpt_status s = nx_weights_open(&m->w, p);
            if (s != NGPT_OK) {
                nx_free(p);
                return s;
            }
            m->path = p;
            m->cap = nx_weights_count(m->w) + 4;
            m->t = nx_calloc(m->cap, sizeof *m->t);
            if (!m->t) {
                nx_mw_close(m);
                return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
            }
            return NGPT_OK;
        }
        nx_free(p);
        size_t l = strlen(tried);
        snprintf(tried + l, sizeof tried - l, "%s%s", i ? ", " : "", files[i]);
    }
    return nx_err(NGPT_ERR_NOT_FOUND, "%s: no weights file (looked for %s)", dir, tried);
}

/* The table is sized at open for every tensor of the file plus a few constants and never grows
 * (pointers into it are handed out), so a full table means a loader fetched a name twice. */
static ngpt_status push(nx_mw *m, nx_tensor **slot)
{
    if (m->n == m->cap) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: more tensors fetched than the file holds", m->path);
    *slot = &m->t[m->n];
    return NGPT_OK;
}

ngpt_status nx_weight_fetch(nx_tensor *out, nx_backend *be, const nx_wtensor *wt, int rank, const int64_t *shape,
                            ngpt_dtype dt)
{
    memset(out, 0, sizeof *out);
    if (be->kind == NGPT_BACKEND_CPU) {
        *out = nx_view(wt->dtype, rank, shape, (void *)wt->data, NULL);
        out->name = wt->name;
        if (dt == NGPT_DTYPE_F32 || rank < 2 || wt->dtype == dt) return NGPT_OK;
        /* the CPU's BF16 compute (activations stay F32): matrices and filters converted once
         * here, so the GEMMs take them in place instead of rounding them on every call */
        nx_tensor src = *out;
        NX_TRY(nx_tensor_alloc(out, be, dt, rank, shape));
        ngpt_status s = nx_op_cast(be, out, &src);
        if (s != NGPT_OK) nx_tensor_free(out);
        else out->name = wt->name;
        return s;
    }
    nx_tensor raw = {0};
    NX_TRY(nx_tensor_alloc(&raw, be, wt->dtype, rank, shape));
    ngpt_status s = nx_tensor_upload(&raw, wt->data, wt->nbytes);
    if (s == NGPT_OK && dt != NGPT_DTYPE_F32 && wt->dtype != dt) {
        s = nx_tensor_alloc(out, be, dt, rank, shape);
        if (s == NGPT_OK) s = nx_op_cast(be, out, &raw);
        nx_tensor_free(&raw);
        if (s != NGPT_OK) nx_tensor_free(out);
    } else if (s == NGPT_OK) {
        *out = raw;
    } else {
        nx_tensor_free(&raw);
    }
    if (s == NGPT_OK) out->name = wt->name;
    return s;
}

ngpt_status nx_upload_f32_as(nx_tensor *out, nx_backend *be, ngpt_dtype dt, int rank, const int64_t *shape,
                             const float *host)
{
    memset(out, 0, sizeof *out);
    nx_tensor raw = {0};
    NX_TRY(nx_tensor_alloc(&raw, be, NGPT_DTYPE_F32, rank, shape));
    ngpt_status s = nx_tensor_upload(&raw, host, nx_nbytes(&raw));
    if (s != NGPT_OK || dt == NGPT_DTYPE_F32) {
        if (s == NGPT_OK) *out = raw;
        else nx_tensor_free(&raw);
        return s;
    }
    s = nx_tensor_alloc(out, be, dt, rank, shape);
    if (s == NGPT_OK) s = nx_op_cast(be, out, &raw);
    nx_tensor_free(&raw);
    if (s != NGPT_OK) nx_tensor_free(out);
    return s;
}

ngpt_status nx_mw_get(nx_mw *m, const nx_tensor **out, const char *name, int rank, const int64_t *shape)
{
    const nx_wtensor *wt = NULL;
    NX_TRY(nx_weights_get(m->w, name, NX_FLOAT_DTYPES, rank, shape, &wt));
    nx_tensor *t = NULL;
    NX_TRY(push(m, &t));
    NX_TRY(nx_weight_fetch(t, m->be, wt, wt->rank, wt->shape, m->dt));
    m->n++;
    *out = t;
    return NGPT_OK;
}

ngpt_status nx_weight_reshape(nx_tensor *w, int rank, const int64_t *ne)
{
    const bool owns = w->owns;
    NX_TRY(nx_reshape(w, w, rank, ne));
    w->owns = owns;
    return NGPT_OK;
}

ngpt_status nx_filter_to_nhwc(nx_backend *be, nx_tensor *w)
{
    /* [O, C, k...] -> [O, k..., C]: the permutation {0, 2, .., rank - 1, 1} */
    const int r = w->rank;
    int perm[NGPT_MAX_DIMS];
    int64_t ne[NGPT_MAX_DIMS], ksz = 1;
    ne[0] = w->ne[0];
    perm[0] = 0;
    for (int i = 1; i < r - 1; i++) {
        perm[i] = i + 1;
        ne[i] = w->ne[i + 1];
        ksz *= ne[i];
    }
    perm[r - 1] = 1;
    ne[r - 1] = w->ne[1];
    if (ksz == 1) return nx_weight_reshape(w, r, ne); /* the same bytes */
    nx_tensor t;
    NX_TRY(nx_tensor_alloc(&t, be, w->dtype, r, ne));
    ngpt_status s = nx_op_permute(be, &t, w, perm);
    if (s != NGPT_OK) {
        nx_tensor_free(&t);
        return s;
    }
    t.name = w->name;
    nx_tensor_free(w);
    *w = t;
    return NGPT_OK;
}

ngpt_status nx_mw_get_filter(nx_mw *m, const nx_tensor **out, const char *name, const int64_t *shape)
{
    NX_TRY(nx_mw_get(m, out, name, 4, shape));
    return m->filters_nhwc ? nx_filter_to_nhwc(m->be, &m->t[m->n - 1]) : NGPT_OK;
}

ngpt_status nx_mw_get_fmt(nx_mw *m, const nx_tensor **out, int64_t d0, int64_t d1, const char *fmt, int i)
{
    char name[160];
    snprintf(name, sizeof name, fmt, i);
    int64_t shape[2] = {d0, d1};
    return nx_mw_get(m, out, name, d1 ? 2 : 1, shape);
}

ngpt_status nx_mw_const(nx_mw *m, const nx_tensor **out, const float *vals, int64_t n)
{
    nx_tensor *t = NULL;
    NX_TRY(push(m, &t));
    const ngpt_dtype dt = m->be->kind == NGPT_BACKEND_CPU ? NGPT_DTYPE_F32 : m->dt;
    NX_TRY(nx_upload_f32_as(t, m->be, dt, 1, &n, vals));
    m->n++;
    *out = t;
    return NGPT_OK;
}

void nx_mw_skip_prefix(nx_mw *m, const char *prefix)
{
    size_t n = nx_weights_count(m->w), lp = strlen(prefix);
    for (size_t i = 0; i < n; i++) {
        const nx_wtensor *t = nx_weights_at(m->w, i);
        if (strncmp(t->name, prefix, lp) == 0) nx_weights_mark_used(m->w, t->name);
    }
}

ngpt_status nx_mw_check_unused(const nx_mw *m) { return nx_weights_check_unused(m->w); }

void nx_mw_close(nx_mw *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) nx_tensor_free(&m->t[i]);
    nx_free(m->t);
    nx_weights_close(m->w);
    nx_free(m->path);
    memset(m, 0, sizeof *m);
}
