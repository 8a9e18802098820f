/* bridge.c — ngpt_tensor <-> nx_tensor with dtype conversion and named checks. */
#include "bridge.h"

#include "../core/alloc.h"
#include "../core/error.h"

#include <string.h>

ngpt_status nx_api_check_tensor(const ngpt_tensor *t, const char *what, int rank_want)
{
    if (!t) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", what);
    if (nx_dtype_size(t->dtype) == 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown dtype %d", what, (int)t->dtype);
    if (t->rank < 0 || t->rank > NGPT_MAX_DIMS)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: rank %d out of range", what, (int)t->rank);
    for (int i = 0; i < t->rank; i++)
        if (t->shape[i] < 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: negative dimension", what);
    if (rank_want >= 0 && t->rank != rank_want) {
        char s[160];
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: expected rank %d, got %s", what, rank_want,
                      nx_shape_str(s, sizeof s, t->rank, t->shape));
    }
    int64_t n = ngpt_tensor_numel(t);
    if (n < 0 || (uint64_t)n > (uint64_t)INT64_MAX / nx_dtype_size(t->dtype)) {
        char s[160];
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: shape %s overflows", what,
                      nx_shape_str(s, sizeof s, t->rank, t->shape));
    }
    if (!t->data && n > 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: data is NULL", what);
    return NGPT_OK;
}


ngpt_status nx_api_read_f32(const ngpt_tensor *src, float **data, int64_t *n, const char *what)
{
    *data = NULL;
    NX_TRY(nx_api_check_tensor(src, what, -1));
    int64_t cnt = ngpt_tensor_numel(src);
    float *d = nx_malloc((size_t)(cnt ? cnt : 1) * sizeof(float));
    if (!d) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    nx_dtype_to_f32_n(src->data, src->dtype, d, (size_t)cnt);
    *data = d;
    if (n) *n = cnt;
    return NGPT_OK;
}

ngpt_status nx_api_upload_into(nx_tensor *dst, const ngpt_tensor *src, const char *what)
{
    NX_TRY(nx_api_check_tensor(src, what, -1));
    const int64_t cnt = ngpt_tensor_numel(src);
    if (cnt != nx_numel(dst))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %lld elements for a device tensor of %lld", what, (long long)cnt,
                      (long long)nx_numel(dst));
    const ngpt_dtype dt = dst->dtype;
    if (src->dtype == dt) return nx_tensor_upload(dst, src->data, nx_nbytes(dst));
    size_t bytes = (size_t)(cnt ? cnt : 1) * nx_dtype_size(dt);
    void *tmp = nx_malloc(bytes);
    if (!tmp) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    ngpt_status s = NGPT_OK;
    for (int64_t i = 0; i < cnt; i++) {
        double v = nx_dtype_get(src->data, src->dtype, (size_t)i);
        switch (dt) {
        case NGPT_DTYPE_F32: ((float *)tmp)[i] = (float)v; break;
        case NGPT_DTYPE_F16: ((uint16_t *)tmp)[i] = nx_f32_to_f16((float)v); break;
        case NGPT_DTYPE_BF16: ((uint16_t *)tmp)[i] = nx_f32_to_bf16((float)v); break;
        case NGPT_DTYPE_I32: ((int32_t *)tmp)[i] = (int32_t)nx_dtype_get_i64(src->data, src->dtype, (size_t)i); break;
        case NGPT_DTYPE_I64: ((int64_t *)tmp)[i] = nx_dtype_get_i64(src->data, src->dtype, (size_t)i); break;
        default:
            s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: cannot convert to %s", what, nx_dtype_name(dt));
            i = cnt;
        }
    }
    if (s == NGPT_OK) s = nx_tensor_upload(dst, tmp, nx_nbytes(dst));
    nx_free(tmp);
    return s;
}

ngpt_status nx_api_upload(nx_tensor *out, nx_backend *be, const ngpt_tensor *src, ngpt_dtype dt, const char *what)
{
    memset(out, 0, sizeof *out);
    NX_TRY(nx_api_check_tensor(src, what, -1));
    NX_TRY(nx_tensor_alloc(out, be, dt, src->rank, src->shape));
    out->name = what;
    ngpt_status s = nx_api_upload_into(out, src, what);
    if (s != NGPT_OK) nx_tensor_free(out);
    return s;
}

ngpt_status nx_api_tensor_new(ngpt_tensor *out, ngpt_dtype dt, int rank, const int64_t *shape)
{
    return ngpt_tensor_create(out, dt, rank, shape);
}

ngpt_status nx_api_download(ngpt_tensor *out, const nx_tensor *src, ngpt_dtype dt)
{
    memset(out, 0, sizeof *out);
    NX_TRY(ngpt_tensor_create(out, dt, src->rank, src->ne));
    ngpt_status s;
    if (src->dtype == dt) {
        s = nx_tensor_download(src, out->data, nx_nbytes(src));
    } else if (dt == NGPT_DTYPE_F32 && (src->dtype == NGPT_DTYPE_F16 || src->dtype == NGPT_DTYPE_BF16)) {
        size_t n = (size_t)nx_numel(src);
        uint16_t *tmp = nx_malloc(n ? n * 2 : 2);
        s = tmp ? nx_tensor_download(src, tmp, n * 2) : nx_err(NGPT_ERR_OUT_OF_MEMORY, "download: out of memory");
        if (s == NGPT_OK) {
            if (src->dtype == NGPT_DTYPE_F16) nx_f16_to_f32_n(tmp, out->data, n);
            else nx_bf16_to_f32_n(tmp, out->data, n);
        }
        nx_free(tmp);
    } else {
        s = nx_err(NGPT_ERR_UNSUPPORTED, "download: %s to %s", nx_dtype_name(src->dtype), nx_dtype_name(dt));
    }
    if (s != NGPT_OK) ngpt_tensor_free(out);
    return s;
}
