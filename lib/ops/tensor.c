/* tensor.c — nx_tensor: views, backend allocation with the context's memory accounting,
 * and host <-> backend copies. */
#include "backend.h"

#include "../core/alloc.h"
#include "../core/error.h"

#include <stdio.h>
#include <string.h>

int64_t nx_numel(const nx_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->ne[i];
    return n;
}

size_t nx_nbytes(const nx_tensor *t) { return (size_t)nx_numel(t) * nx_dtype_size(t->dtype); }

nx_tensor nx_view(ngpt_dtype dt, int rank, const int64_t *ne, void *data, nx_backend *be)
{
    nx_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.rank = rank;
    for (int i = 0; i < rank && i < NX_MAX_DIMS; i++) t.ne[i] = ne[i];
    t.data = data;
    t.be = be;
    return t;
}

bool nx_same_shape(const nx_tensor *a, const nx_tensor *b)
{
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->ne[i] != b->ne[i]) return false;
    return true;
}

char *nx_tensor_str(char *buf, size_t cap, const nx_tensor *t)
{
    char sh[160];
    nx_shape_str(sh, sizeof sh, t->rank, t->ne);
    snprintf(buf, cap, "%s%s%s%s", t->name ? t->name : "", t->name ? " " : "", nx_dtype_name(t->dtype), sh);
    return buf;
}

ngpt_status nx_reshape(nx_tensor *out, const nx_tensor *t, int rank, const int64_t *ne)
{
    if (rank < 0 || rank > NX_MAX_DIMS) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "reshape: rank %d out of range", rank);
    if (t->packed) {
        char a[192];
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "reshape %s: packed (a linear's or convolution's own)",
                      nx_tensor_str(a, sizeof a, t));
    }
    nx_tensor r = nx_view(t->dtype, rank, ne, t->data, t->be);
    r.name = t->name;
    if (nx_numel(&r) != nx_numel(t)) {
        char a[192], b[192];
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "reshape %s to %s: element counts differ",
                      nx_tensor_str(a, sizeof a, t), nx_tensor_str(b, sizeof b, &r));
    }
    *out = r;
    return NGPT_OK;
}

ngpt_status nx_tensor_alloc(nx_tensor *out, nx_backend *be, ngpt_dtype dt, int rank, const int64_t *ne)
{
    memset(out, 0, sizeof *out);
    if (!be) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "tensor alloc: no backend");
    if (rank < 0 || rank > NX_MAX_DIMS || nx_dtype_size(dt) == 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "tensor alloc: bad rank %d or dtype %d", rank, (int)dt);
    nx_tensor t = nx_view(dt, rank, ne, NULL, be);
    for (int i = 0; i < rank; i++)
        if (ne[i] < 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "tensor alloc: negative dimension");
    size_t n = nx_nbytes(&t);
    /* Reserve first (atomically: stages on different threads share the backend), then allocate. */
    uint64_t used = __atomic_add_fetch(&be->mem_used, n, __ATOMIC_RELAXED);
    if (be->mem_limit && used > be->mem_limit) {
        __atomic_sub_fetch(&be->mem_used, n, __ATOMIC_RELAXED);
        char s[192];
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: allocating %s (%zu bytes) would exceed the memory limit of %llu bytes (%llu in use)",
                      be->v->name, nx_tensor_str(s, sizeof s, &t), n, (unsigned long long)be->mem_limit,
                      (unsigned long long)(used - n));
    }
    ngpt_status s = be->v->alloc(be, &t.data, n ? n : 1);
    if (s != NGPT_OK) {
        __atomic_sub_fetch(&be->mem_used, n, __ATOMIC_RELAXED);
        return s;
    }
    uint64_t peak = __atomic_load_n(&be->mem_peak, __ATOMIC_RELAXED);
    while (used > peak && !__atomic_compare_exchange_n(&be->mem_peak, &peak, used, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    peak = __atomic_load_n(&be->mem_window, __ATOMIC_RELAXED);
    while (used > peak && !__atomic_compare_exchange_n(&be->mem_window, &peak, used, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    t.owns = true;
    *out = t;
    return NGPT_OK;
}

void nx_mem_window_begin(nx_backend *be)
{
    __atomic_store_n(&be->mem_window, __atomic_load_n(&be->mem_used, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}

uint64_t nx_mem_window_peak(const nx_backend *be) { return __atomic_load_n(&be->mem_window, __ATOMIC_RELAXED); }

void nx_tensor_free(nx_tensor *t)
{
    if (!t) return;
    if (t->owns && t->be) {
        t->be->v->free(t->be, t->data);
        __atomic_sub_fetch(&t->be->mem_used, nx_nbytes(t), __ATOMIC_RELAXED);
    }
    memset(t, 0, sizeof *t);
}

ngpt_status nx_tensor_upload(nx_tensor *t, const void *host, size_t nbytes)
{
    if (nbytes != nx_nbytes(t)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "upload: %zu bytes for a tensor of %zu", nbytes, nx_nbytes(t));
    if (!t->be) {
        memcpy(t->data, host, nbytes);
        return NGPT_OK;
    }
    return t->be->v->upload(t->be, t->data, host, nbytes);
}

ngpt_status nx_tensor_upload_part(nx_tensor *t, const void *host, size_t nbytes, size_t offset)
{
    if (offset > nx_nbytes(t) || nbytes > nx_nbytes(t) - offset)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "upload: bytes [%zu, %zu) outside a tensor of %zu", offset, offset + nbytes,
                      nx_nbytes(t));
    void *dst = (char *)t->data + offset;
    if (!t->be) {
        memcpy(dst, host, nbytes);
        return NGPT_OK;
    }
    return t->be->v->upload(t->be, dst, host, nbytes);
}

ngpt_status nx_tensor_download(const nx_tensor *t, void *host, size_t nbytes)
{
    if (nbytes != nx_nbytes(t)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "download: %zu bytes for a tensor of %zu", nbytes, nx_nbytes(t));
    if (!t->be) {
        memcpy(host, t->data, nbytes);
        return NGPT_OK;
    }
    return t->be->v->download(t->be, host, t->data, nbytes);
}

void nx_backend_free(nx_backend *be)
{
    if (be && be->v && be->v->destroy) be->v->destroy(be);
}

void nx_backend_trim(nx_backend *be)
{
    if (be && be->v && be->v->trim) be->v->trim(be);
}

ngpt_status nx_backend_capture_begin(nx_backend *be)
{
    if (!be->v->capture_begin) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no graph capture", be->v->name);
    return be->v->capture_begin(be);
}

ngpt_status nx_backend_capture_end(nx_backend *be, nx_graph **out)
{
    *out = NULL;
    if (!be->v->capture_end) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no graph capture", be->v->name);
    return be->v->capture_end(be, out);
}

ngpt_status nx_backend_graph_launch(nx_backend *be, nx_graph *g)
{
    if (!be->v->graph_launch || !g) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no graph to launch", be->v->name);
    return be->v->graph_launch(be, g);
}

void nx_backend_graph_free(nx_backend *be, nx_graph *g)
{
    if (g && be && be->v->graph_free) be->v->graph_free(be, g);
}

ngpt_status nx_backend_replay(nx_backend *be, nx_graph **graph, ngpt_status (*run)(void *arg), void *arg,
                              const char *what)
{
    const ngpt_status s = nx_backend_graph_launch(be, *graph);
    if (s == NGPT_OK) return s;
    nx_log(&be->log, NGPT_LOG_INFO, "%s: its graph could not be replayed (%s); running it op by op, not captured again",
           what, ngpt_last_error());
    nx_backend_graph_free(be, *graph);
    *graph = NULL;
    ngpt_clear_error();
    return run(arg);
}

ngpt_status nx_backend_record(nx_backend *be, ngpt_status (*run)(void *arg), void *arg, nx_graph **graph,
                              const char *what)
{
    *graph = NULL;
    char why[256] = "";
    ngpt_status s = nx_backend_capture_begin(be);
    if (s == NGPT_OK) {
        const ngpt_status r = run(arg);
        if (r != NGPT_OK) snprintf(why, sizeof why, "%s", ngpt_last_error()); /* the cause, not the end's */
        s = nx_backend_capture_end(be, graph);
        if (r != NGPT_OK) {
            nx_backend_graph_free(be, *graph);
            *graph = NULL;
            s = r;
        }
    }
    if (s == NGPT_OK) return nx_backend_replay(be, graph, run, arg, what); /* the first launch may fail too */
    if (!why[0]) snprintf(why, sizeof why, "%s", ngpt_last_error());
    nx_log(&be->log, NGPT_LOG_INFO, "%s was not captured as a graph (%s); running it op by op", what, why);
    return run(arg);
}
