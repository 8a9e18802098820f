/* none.c — the CUDA backend entry point of a build without CUDA (-Dcuda=disabled, or auto
 * without nvcc/cuBLAS/cuDNN). */
#include "../ops/backend.h"

ngpt_status nx_cuda_backend_create(nx_backend **out, int device_index, nx_pool *pool, const nx_logger *log)
{
    (void)device_index;
    (void)pool;
    (void)log;
    *out = NULL;
    return nx_err(NGPT_ERR_UNSUPPORTED, "this libnextgpt was built without CUDA (meson -Dcuda=disabled or no CUDA toolkit found)");
}

void nx_cuda_set_conv_search(nx_backend *be, bool measure)
{
    (void)be;
    (void)measure;
}

void nx_cuda_make_current(nx_backend *be)
{
    (void)be;
}

void nx_cuda_set_attention_split(nx_backend *be, bool on)
{
    (void)be;
    (void)on;
}

bool nx_cuda_attention_len_head_dim(int64_t d)
{
    (void)d;
    return false;
}

void nx_cuda_set_conv_nhwc(nx_backend *be, bool on)
{
    (void)be;
    (void)on;
}

void nx_cuda_set_conv_cl_via_nchw(nx_backend *be, bool on)
{
    (void)be;
    (void)on;
}

uint64_t nx_cuda_conv_cl_fallbacks(const nx_backend *be)
{
    (void)be;
    return 0;
}

void nx_cuda_set_gemm_lt(nx_backend *be, bool on)
{
    (void)be;
    (void)on;
}
