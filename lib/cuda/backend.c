/* backend.c — the CUDA backend: device selection, stream and library handles, device memory,
 * and the op table (the ops are in gemm.c, conv.c and kernel_ops.c). */
#include "cuda_internal.h"

#include "../core/alloc.h"

#include <stdio.h>
#include <string.h>

ngpt_status nx_cuda_check(cudaError_t e, const char *op, const char *call)
{
    if (e == cudaSuccess) return NGPT_OK;
    (void)cudaGetLastError();  /* clear a non-sticky error so the next call starts clean */
    return nx_err(NGPT_ERR_DEVICE, "cuda: %s: %s: %s", op, call, cudaGetErrorString(e));
}

ngpt_status nx_cublas_check(cublasStatus_t s, const char *op, const char *call)
{
    if (s == CUBLAS_STATUS_SUCCESS) return NGPT_OK;
    return nx_err(NGPT_ERR_DEVICE, "cuda: %s: %s: %s", op, call, cublasGetStatusString(s));
}

ngpt_status nx_cudnn_check(cudnnStatus_t s, const char *op, const char *call)
{
    if (s == CUDNN_STATUS_SUCCESS) return NGPT_OK;
    /* the CUDNN_STATUS_NOT_SUPPORTED family (3000-3999): what this cuDNN cannot do here (a caller
     * may take another route); anything else (bad parameters, execution failures) is an error */
    const bool unsupported = (int)s >= 3000 && (int)s < 4000;
    return nx_err(unsupported ? NGPT_ERR_UNSUPPORTED : NGPT_ERR_DEVICE, "cuda: %s: %s: %s", op, call,
                  cudnnGetErrorString(s));
}

ngpt_status nx_cuda_tmp_alloc(nx_backend *be, void **out, size_t nbytes, const char *op)
{
    *out = NULL;
    cudaError_t e = cudaMallocAsync(out, nbytes ? nbytes : 1, nx_cuda_of(be)->stream);
    if (e != cudaSuccess) {
        *out = NULL;
        (void)cudaGetLastError();
        return nx_err(e == cudaErrorMemoryAllocation ? NGPT_ERR_OUT_OF_MEMORY : NGPT_ERR_DEVICE,
                      "cuda: %s: cudaMallocAsync(%zu bytes of scratch): %s", op, nbytes, cudaGetErrorString(e));
    }
    return NGPT_OK;
}

void nx_cuda_tmp_free(nx_backend *be, void *p)
{
    if (p) (void)cudaFreeAsync(p, nx_cuda_of(be)->stream);
}

ngpt_status nx_cuda_dnn(nx_backend *be, cudnnHandle_t *out, const char *op)
{
    nx_cuda *c = nx_cuda_of(be);
    if (!c->dnn) {
        cudnnHandle_t h = NULL;
        CUDNN_TRY(op, cudnnCreate, (&h));
        cudnnStatus_t s = cudnnSetStream(h, c->stream);
        if (s != CUDNN_STATUS_SUCCESS) {
            cudnnDestroy(h);
            return nx_cudnn_check(s, op, "cudnnSetStream");
        }
        c->dnn = h;
    }
    *out = c->dnn;
    return NGPT_OK;
}

/* ---- memory ---- */

/* Stream-ordered allocation from the device's memory pool (kept, not returned to the driver:
 * release threshold raised in cuda_init). Models allocate and free activations per op; plain
 * cudaFree synchronises the whole device, which serialised every op of a UNet step. All work of
 * a backend is on its one stream, so a block freed here is reused only by work queued after it. */
static ngpt_status cuda_alloc(nx_backend *be, void **out, size_t nbytes)
{
    *out = NULL;
    nx_cuda *c = nx_cuda_of(be);
    cudaError_t e = c->pooled ? cudaMallocAsync(out, nbytes ? nbytes : 1, c->stream) : cudaMalloc(out, nbytes ? nbytes : 1);
    if (e != cudaSuccess) {
        *out = NULL;
        (void)cudaGetLastError();
        return nx_err(e == cudaErrorMemoryAllocation ? NGPT_ERR_OUT_OF_MEMORY : NGPT_ERR_DEVICE,
                      "cuda: alloc: %s(%zu bytes) on %s: %s", c->pooled ? "cudaMallocAsync" : "cudaMalloc", nbytes,
                      be->device_name, cudaGetErrorString(e));
    }
    return NGPT_OK;
}

static void cuda_free(nx_backend *be, void *p)
{
    if (!p) return;
    nx_cuda *c = nx_cuda_of(be);
    if (c->pooled) (void)cudaFreeAsync(p, c->stream);  /* after every op queued on p */
    else (void)cudaFree(p);                            /* waits for the device: no op still uses p */
}

/* A host copy or a sync would end a capture with an error deep inside the driver; refuse it
 * here instead, naming what was refused. */
static ngpt_status no_capture(const nx_cuda *c, const char *what)
{
    if (!c->capturing) return NGPT_OK;
    return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s during a graph capture (the captured ops must stay on the device)",
                  what);
}

static ngpt_status cuda_upload(nx_backend *be, void *dst, const void *host, size_t nbytes)
{
    nx_cuda *c = nx_cuda_of(be);
    NX_TRY(no_capture(c, "upload"));
    if (!nbytes) return NGPT_OK;
    CU_TRY("upload", cudaMemcpyAsync, (dst, host, nbytes, cudaMemcpyHostToDevice, c->stream));
    CU_TRY("upload", cudaStreamSynchronize, (c->stream));
    return NGPT_OK;
}

static ngpt_status cuda_download(nx_backend *be, void *host, const void *src, size_t nbytes)
{
    nx_cuda *c = nx_cuda_of(be);
    NX_TRY(no_capture(c, "download"));
    if (!nbytes) return NGPT_OK;
    CU_TRY("download", cudaMemcpyAsync, (host, src, nbytes, cudaMemcpyDeviceToHost, c->stream));
    CU_TRY("download", cudaStreamSynchronize, (c->stream));
    return NGPT_OK;
}

static ngpt_status cuda_sync(nx_backend *be)
{
    NX_TRY(no_capture(nx_cuda_of(be), "sync"));
    CU_TRY("sync", cudaStreamSynchronize, (nx_cuda_of(be)->stream));
    return NGPT_OK;
}

/* ---- graphs: stream capture of the backend's one stream, instantiated once, replayed ---- */
struct nx_graph {
    cudaGraphExec_t exec;
};

static ngpt_status cuda_capture_begin(nx_backend *be)
{
    nx_cuda *c = nx_cuda_of(be);
    if (c->capturing) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "cuda: capture_begin: a capture is already open");
    if (!c->pooled)  /* a plain cudaMalloc inside a capture is refused by the driver */
        return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: graph capture needs stream-ordered allocation (cudaMallocAsync)");
    /* thread-local: other threads' CUDA calls (another context) are not drawn into the capture */
    CU_TRY("capture_begin", cudaStreamBeginCapture, (c->stream, cudaStreamCaptureModeThreadLocal));
    c->capturing = true;
    return NGPT_OK;
}

static ngpt_status cuda_capture_end(nx_backend *be, nx_graph **out)
{
    nx_cuda *c = nx_cuda_of(be);
    *out = NULL;
    if (!c->capturing) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "cuda: capture_end without capture_begin");
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    c->capturing = false;
    if (e != cudaSuccess) {
        if (g) (void)cudaGraphDestroy(g);
        return nx_cuda_check(e, "capture_end", "cudaStreamEndCapture");
    }
    cudaGraphExec_t x = NULL;
    e = cudaGraphInstantiate(&x, g, 0);
    (void)cudaGraphDestroy(g);
    if (e != cudaSuccess) return nx_cuda_check(e, "capture_end", "cudaGraphInstantiate");
    nx_graph *ng = nx_calloc(1, sizeof *ng);
    if (!ng) {
        (void)cudaGraphExecDestroy(x);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "cuda: capture_end: out of memory");
    }
    ng->exec = x;
    *out = ng;
    return NGPT_OK;
}

static ngpt_status cuda_graph_launch(nx_backend *be, nx_graph *g)
{
    nx_cuda *c = nx_cuda_of(be);
    NX_TRY(no_capture(c, "graph launch"));
    CU_TRY("graph_launch", cudaGraphLaunch, (g->exec, c->stream));
    return NGPT_OK;
}

/* What a captured cudaMallocAsync used lives in the device's graph memory pool, not in the
 * default pool: destroying the graph does not hand it back, nor does cudaMemPoolTrimTo. Only
 * cudaDeviceGraphMemTrim does, for the device's graphs that are not running. It is called here,
 * where a graph goes, and not from cuda_trim: that would unmap the memory of the graphs still in
 * use (a session's decode step), which their next launch would have to map again. */
static void cuda_graph_free(nx_backend *be, nx_graph *g)
{
    if (!g) return;
    nx_cuda *c = nx_cuda_of(be);
    if (c->capturing) { /* a sync would break the capture open on the stream: the memory stays cached */
        (void)cudaGraphExecDestroy(g->exec);
    } else {
        (void)cudaStreamSynchronize(c->stream);  /* no replay of g still queued */
        (void)cudaGraphExecDestroy(g->exec);
        (void)cudaDeviceGraphMemTrim(c->device);
    }
    (void)cudaGetLastError();
    nx_free(g);
}

static void cuda_trim(nx_backend *be)
{
    nx_cuda *c = be->impl;
    cudaMemPool_t pool;
    if (!c || !c->pooled) return;
    (void)cudaStreamSynchronize(c->stream);  /* frees queued on the stream return to the pool first */
    if (cudaDeviceGetDefaultMemPool(&pool, c->device) == cudaSuccess) (void)cudaMemPoolTrimTo(pool, 0);
    (void)cudaGetLastError();
}

static void cuda_destroy(nx_backend *be)
{
    if (!be) return;
    nx_cuda *c = be->impl;
    if (c) {
        if (c->stream) (void)cudaStreamSynchronize(c->stream);
        cudaMemPool_t pool;  /* hand the cached blocks back to the driver */
        if (c->pooled && cudaDeviceGetDefaultMemPool(&pool, c->device) == cudaSuccess) (void)cudaMemPoolTrimTo(pool, 0);
        (void)cudaGetLastError();
        nx_cuda_conv_plans_free(c);
        nx_cuda_lt_free(c);
        if (c->dnn) cudnnDestroy(c->dnn);
        if (c->blas) cublasDestroy(c->blas);
        if (c->blas_ws) (void)cudaFree(c->blas_ws);
        if (c->d_flag) (void)cudaFree(c->d_flag);
        if (c->stream) (void)cudaStreamDestroy(c->stream);
        nx_free(c);
    }
    nx_free(be);
}

static const nx_backend_vtbl k_cuda_vtbl = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .sync = cuda_sync,
    .destroy = cuda_destroy,
    .trim = cuda_trim,
    .capture_begin = cuda_capture_begin,
    .capture_end = cuda_capture_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .linear = nx_cuda_linear,
    .matmul = nx_cuda_matmul,
    .conv = nx_cuda_conv,
    .conv_transpose1d = nx_cuda_conv_transpose1d,
    .attention = nx_cuda_attention,
    .rms_norm = nx_cuda_rms_norm,
    .rms_norm_add = nx_cuda_rms_norm_add,
    .layer_norm = nx_cuda_layer_norm,
    .group_norm = nx_cuda_group_norm,
    .rope = nx_cuda_rope,
    .softmax = nx_cuda_softmax,
    .unary = nx_cuda_unary,
    .binary = nx_cuda_binary,
    .scale = nx_cuda_scale,
    .glu = nx_cuda_glu,
    .get_rows = nx_cuda_get_rows,
    .concat = nx_cuda_concat,
    .slice = nx_cuda_slice,
    .permute = nx_cuda_permute,
    .cast = nx_cuda_cast,
    .resize = nx_cuda_resize,
    .argmax = nx_cuda_argmax,
    .set_rows = nx_cuda_set_rows,
    .attention_len = nx_cuda_attention_len,
    .timestep_embedding = nx_cuda_timestep_embedding,
    .sched_step = nx_cuda_sched_step,
};

/* Everything after the device is chosen; on failure the caller destroys the half-built backend. */
static ngpt_status cuda_init(nx_backend *be, nx_cuda *c, int device_index)
{
    const char *op = "no usable CUDA device";
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return nx_err(NGPT_ERR_DEVICE, "%s: cudaGetDeviceCount: %s", op, cudaGetErrorString(e));
    }
    if (n <= 0) return nx_err(NGPT_ERR_DEVICE, "%s: cudaGetDeviceCount found no device", op);
    if (device_index >= n)
        return nx_err(NGPT_ERR_DEVICE, "%s: device index %d requested but only %d CUDA device%s present", op,
                      device_index, n, n == 1 ? " is" : "s are");
    CU_TRY(op, cudaSetDevice, (device_index));
    c->device = device_index;
    struct cudaDeviceProp prop;
    CU_TRY(op, cudaGetDeviceProperties, (&prop, device_index));
    c->cc = prop.major * 10 + prop.minor;
    snprintf(be->device_name, sizeof be->device_name, "%.90s (sm_%d, %.0f GiB)", prop.name, c->cc,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    if (prop.major < 8)
        return nx_err(NGPT_ERR_DEVICE, "%s: %s has compute capability %d.%d; libnextgpt needs 8.0 or newer (bf16)",
                      op, prop.name, prop.major, prop.minor);
    /* Were the kernels compiled for this GPU (-Dgpu_archs)? */
    e = nxk_probe();
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return nx_err(NGPT_ERR_DEVICE, "%s: %s (sm_%d): the kernels were not built for it (meson -Dgpu_archs): %s",
                      op, prop.name, c->cc, cudaGetErrorString(e));
    }
    CU_TRY(op, cudaStreamCreateWithFlags, (&c->stream, cudaStreamNonBlocking));
    /* Stream-ordered allocation where the device and runtime support memory pools (keep freed
     * blocks for reuse, see cuda_alloc); else plain cudaMalloc/cudaFree. */
    int pools = 0;
    cudaMemPool_t pool;
    uint64_t keep = UINT64_MAX;
    c->pooled = cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device_index) == cudaSuccess && pools &&
                cudaDeviceGetDefaultMemPool(&pool, device_index) == cudaSuccess &&
                cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) == cudaSuccess;
    (void)cudaGetLastError();
    if (!c->pooled) nx_log(&be->log, NGPT_LOG_INFO, "cuda: no stream-ordered memory pool: plain cudaMalloc");
    c->conv_heuristic = true; /* cudnnFind's picks were no faster on the SD UNet (RESULTS.md, GPU runs 4-5) */
    c->gemm_lt = true;        /* SD 1.5 UNet step 19.5 -> 14.2 ms, the rest level (RESULTS.md, GPU run 7) */
    c->attn_split = true;     /* decode steps 167 -> 173 tok/s (LLaMA-7B shape; RESULTS.md, GPU run 7) */
    CU_TRY(op, cudaMalloc, ((void **)&c->d_flag, sizeof(int32_t)));
    CUBLAS_TRY(op, cublasCreate, (&c->blas));
    CUBLAS_TRY(op, cublasSetStream, (c->blas, c->stream));
    /* our own workspace (32 MiB, NVIDIA's size for Hopper): cuBLAS then allocates nothing per
     * call, which a captured GEMM requires; the cuBLASLt linears (gemm.c) are given it too */
    CU_TRY(op, cudaMalloc, (&c->blas_ws, NX_CUDA_BLAS_WS_BYTES));
    CUBLAS_TRY(op, cublasSetWorkspace, (c->blas, c->blas_ws, NX_CUDA_BLAS_WS_BYTES));
    /* F32 GEMMs stay true F32 (no TF32): the CPU reference and the goldens are F32. */
    CUBLAS_TRY(op, cublasSetMathMode, (c->blas, CUBLAS_DEFAULT_MATH));
    /* The cuBLASLt handle for nx_cuda_set_gemm_lt, made here rather than on the first linear, which
     * may be inside a graph capture. Without one the linears stay on cuBLAS: not a reason to fail. */
    cublasStatus_t ls = cublasLtCreate(&c->lt);
    if (ls != CUBLAS_STATUS_SUCCESS) {
        c->lt = NULL;
        nx_log(&be->log, NGPT_LOG_INFO, "cuda: cublasLtCreate: %s: linears through cuBLAS only",
               cublasGetStatusString(ls));
    }
    return NGPT_OK;
}

void nx_cuda_make_current(nx_backend *be)
{
    /* a failure here resurfaces, with its message, at the call's first CUDA operation */
    if (be && be->kind == NGPT_BACKEND_CUDA && cudaSetDevice(nx_cuda_of(be)->device) != cudaSuccess)
        (void)cudaGetLastError();
}

ngpt_status nx_cuda_backend_create(nx_backend **out, int device_index, nx_pool *pool, const nx_logger *log)
{
    *out = NULL;
    nx_backend *be = nx_calloc(1, sizeof *be);
    nx_cuda *c = nx_calloc(1, sizeof *c);
    if (!be || !c) {
        nx_free(be);
        nx_free(c);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "cuda backend: out of memory");
    }
    be->v = &k_cuda_vtbl;
    be->kind = NGPT_BACKEND_CUDA;
    be->act_dtypes = NX_FLOAT_DTYPES;
    be->pool = pool;
    if (log) be->log = *log;
    be->impl = c;
    snprintf(be->device_name, sizeof be->device_name, "cuda:%d", device_index);
    ngpt_status st = cuda_init(be, c, device_index);
    if (st != NGPT_OK) {
        cuda_destroy(be);
        return st;
    }
    nx_log(&be->log, NGPT_LOG_INFO, "cuda: using %s", be->device_name);
    *out = be;
    return NGPT_OK;
}
