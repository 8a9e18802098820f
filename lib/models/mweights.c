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

ngpt_status nx_mw_get(nx_mw *m, const nx_tensor **out, const char *name, int rank, const int64_t *shape)
{
    const nx_wtensor *wt = NULL;
    NX_TRY(nx_weights_get(m->w, name, NX_FLOAT_DTYPES, rank, shape, &wt));
    nx_tensor *t = NULL;
    NX_TRY(push(m, &t));
    if (m->be->kind == NGPT_BACKEND_CPU) {
        *t = nx_view(wt->dtype, wt->rank, wt->shape, (void *)wt->data, NULL);
    } else {
        NX_TRY(nx_tensor_alloc(t, m->be, wt->dtype, wt->rank, wt->shape));
        ngpt_status s = nx_tensor_upload(t, wt->data, wt->nbytes);
        if (s != NGPT_OK) {
            nx_tensor_free(t);
            return s;
        }
    }
    t->name = wt->name;
    m->n++;
    *out = t;
    return NGPT_OK;
}

ngpt_status nx_mw_const(nx_mw *m, const nx_tensor **out, const float *vals, int64_t n)
{
    nx_tensor *t = NULL;
    NX_TRY(push(m, &t));
    NX_TRY(nx_tensor_alloc(t, m->be, NGPT_DTYPE_F32, 1, &n));
    ngpt_status s = nx_tensor_upload(t, vals, (size_t)n * sizeof *vals);
    if (s != NGPT_OK) {
        nx_tensor_free(t);
        return s;
    }
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
