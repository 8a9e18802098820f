/* bridge.h — moving tensors across the ABI: a caller's ngpt_tensor (host memory, any float or
 * integer dtype) into backend memory as the op layer wants it, and a backend result back out
 * as a library-owned ngpt_tensor. Every stage handle uses these, so the checks and the messages
 * ("sample: expected rank 4, got [2, 4, 8]") are the same everywhere. */
#ifndef NX_API_BRIDGE_H
#define NX_API_BRIDGE_H

#include "../ops/backend.h"

/* Check `t` (non-NULL, known dtype, rank 0..NGPT_MAX_DIMS, non-negative shape, data non-NULL
 * when non-empty); `what` names it in messages. rank_want < 0 accepts any rank. */
ngpt_status nx_api_check_tensor(const ngpt_tensor *t, const char *what, int rank_want);

/* Copy a caller tensor into a new backend tensor of dtype `dt` (converting F32/F16/BF16/F64/
 * integers as needed). Free *out with nx_tensor_free. */
ngpt_status nx_api_upload(nx_tensor *out, nx_backend *be, const ngpt_tensor *src, ngpt_dtype dt, const char *what);
/* The same into an allocated backend tensor of as many elements (its dtype, its shape). */
ngpt_status nx_api_upload_into(nx_tensor *dst, const ngpt_tensor *src, const char *what);

/* Read a caller tensor as host F32 (allocated with nx_malloc, freed by the caller with nx_free);
 * *n receives the element count. */
ngpt_status nx_api_read_f32(const ngpt_tensor *src, float **data, int64_t *n, const char *what);

/* Download a backend tensor into a new library-owned ngpt_tensor of the same shape, converted
 * to `dt` (F32 or the tensor's own dtype). */
ngpt_status nx_api_download(ngpt_tensor *out, const nx_tensor *src, ngpt_dtype dt);

/* Make a library-owned ngpt_tensor (zero-filled) — same as ngpt_tensor_create. */
ngpt_status nx_api_tensor_new(ngpt_tensor *out, ngpt_dtype dt, int rank, const int64_t *shape);

#endif
