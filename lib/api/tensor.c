/* tensor.c — the ngpt_tensor helpers of the public ABI. */
#include "../core/alloc.h"
#include "../core/dtype.h"
#include "../core/error.h"

#include <string.h>

NGPT_API size_t ngpt_dtype_size(ngpt_dtype dt) { return nx_dtype_size(dt); }
NGPT_API const char *ngpt_dtype_name(ngpt_dtype dt) { return nx_dtype_name(dt); }

NGPT_API int64_t ngpt_tensor_numel(const ngpt_tensor *t)
{
    if (!t || t->rank < 0 || t->rank > NGPT_MAX_DIMS) return 0;
    int64_t n = 1;  /* -1 for a negative or overflowing shape (no tensor has that many elements) */
    for (int i = 0; i < t->rank; i++) {
        if (t->shape[i] < 0) return -1;
        if (t->shape[i] && n > INT64_MAX / t->shape[i]) return -1;
        n *= t->shape[i];
    }
    return n;
}

NGPT_API size_t ngpt_tensor_nbytes(const ngpt_tensor *t)
{
    int64_t n = ngpt_tensor_numel(t);
    size_t es = t ? nx_dtype_size(t->dtype) : 0;
    if (n <= 0 || !es || (uint64_t)n > SIZE_MAX / es) return 0;  /* none, or not a size */
    return (size_t)n * es;
}

/* The owner tag of library-owned tensors: any non-NULL value works; this one is recognisable. */
static char k_owner_tag;

NGPT_API ngpt_status ngpt_tensor_create(ngpt_tensor *out, ngpt_dtype dtype, int32_t rank, const int64_t *shape)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_tensor_create: out is NULL");
    memset(out, 0, sizeof *out);
    if (nx_dtype_size(dtype) == 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_tensor_create: unknown dtype %d", (int)dtype);
    if (rank < 0 || rank > NGPT_MAX_DIMS)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_tensor_create: rank %d out of range [0, %d]", rank, NGPT_MAX_DIMS);
    if (rank > 0 && !shape) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_tensor_create: shape is NULL");
    uint64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_tensor_create: negative dimension %lld", (long long)shape[i]);
        if (shape[i] && n > (UINT64_MAX / 16) / (uint64_t)shape[i])
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_tensor_create: shape too large");
        n *= (uint64_t)shape[i];
    }
    size_t bytes = (size_t)n * nx_dtype_size(dtype);
    void *data = nx_calloc(1, bytes ? bytes : 1);
    if (!data) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_tensor_create: cannot allocate %zu bytes", bytes);
    out->dtype = dtype;
    out->rank = rank;
    for (int i = 0; i < rank; i++) out->shape[i] = shape[i];
    out->data = data;
    out->owner = &k_owner_tag;
    return NGPT_OK;
}

NGPT_API void ngpt_tensor_free(ngpt_tensor *t)
{
    if (!t) return;
    if (t->owner) nx_free(t->data);
    memset(t, 0, sizeof *t);
}
