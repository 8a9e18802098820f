/* conv.c — conv1d/2d/3d and conv_transpose1d through cuDNN's legacy convolution API
 * (cudnnConvolutionForward / cudnnConvolutionBackwardData, cuDNN 9's cudnn_cnn), then one
 * bias + activation + residual kernel. 1-D convolutions run as 2-D with a height of 1 (cuDNN
 * wants >= 4-D tensors). The filter must have the activation dtype: a weight of another dtype is
 * converted into scratch first (exact for F16/BF16 weights under F32 activations). F32 runs with
 * CUDNN_FMA_MATH (no TF32), F16/BF16 may use tensor cores; accumulation is F32 in all cases.
 *
 * Plans. A model runs the same few dozen convolution shapes over and over (a UNet step: ~60 calls
 * of ~25 shapes), and in cuDNN 9 both choosing an algorithm and building the descriptors cost far
 * more than a small convolution itself: without plans the SD 1.5 UNet step took 233 ms on an H200,
 * with them 22.7 ms (bench/RESULTS.md, GPU run 4). So each shape gets a plan — descriptors plus the
 * algorithm — made on its first call and kept in the backend (NX_CUDA_PLANS_MAX, oldest replaced
 * first). The algorithm is cuDNN's heuristic pick by default; nx_cuda_set_conv_search(be, true)
 * measures the candidates on the first call instead (cudnnFind...AlgorithmEx, as PyTorch's
 * cudnn.benchmark does), which made the same UNet step no faster (25.7 vs 22.7 ms in run 4, 15.7
 * vs 15.8 ms in run 5): kept as an option.
 *
 * Channels last (nx_conv_params.channels_last: activations [N, H, W, C], filters [O, kh, kw, C/g])
 * goes to cuDNN as NHWC descriptors, no copies: the layout its tensor-core kernels work in.
 *
 * Two other routes, below: non-overlapping ("patchify") convolutions as a patch gather + one GEMM,
 * and a trial mode running 2-D F16/BF16 NCHW convolutions on NHWC copies (nx_cuda_set_conv_nhwc). */
#include "cuda_internal.h"
#include "../core/alloc.h"

#include <stdio.h>
#include <string.h>

#define WS_LIMIT ((size_t)2 << 30)  /* skip algorithms wanting more than 2 GiB of workspace */

static cudnnDataType_t dnn_dt(ngpt_dtype dt)
{
    switch (dt) {
    case NGPT_DTYPE_F16: return CUDNN_DATA_HALF;
    case NGPT_DTYPE_BF16: return CUDNN_DATA_BFLOAT16;
    default: return CUDNN_DATA_FLOAT;
    }
}

typedef struct conv_descs {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
} conv_descs;

static void descs_free(conv_descs *d)
{
    if (d->x) cudnnDestroyTensorDescriptor(d->x);
    if (d->y) cudnnDestroyTensorDescriptor(d->y);
    if (d->w) cudnnDestroyFilterDescriptor(d->w);
    if (d->conv) cudnnDestroyConvolutionDescriptor(d->conv);
}

static ngpt_status set_tensor(const char *op, cudnnTensorDescriptor_t d, cudnnDataType_t t, int nd, const int *dims)
{
    int strides[5];
    int s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
    CUDNN_TRY(op, cudnnSetTensorNdDescriptor, (d, t, nd, dims, strides));
    return NGPT_OK;
}

static bool fits_int(const nx_tensor *t)
{
    for (int i = 0; i < t->rank; i++)
        if (t->ne[i] > INT32_MAX) return false;
    return nx_numel(t) <= INT32_MAX;
}

/* Build the descriptors. xs/ys/ws are the tensors as cuDNN sees them (nd dims, 1-D lifted to
 * 2-D by the caller); the conv has nd - 2 spatial dims. */
static ngpt_status make_descs(const char *op, conv_descs *d, ngpt_dtype dt, int nd, const int *xs, const int *ys,
                              const int *ws, const int *pad, const int *stride, const int *dil, int groups, bool nhwc)
{
    cudnnDataType_t t = dnn_dt(dt);
    CUDNN_TRY(op, cudnnCreateTensorDescriptor, (&d->x));
    CUDNN_TRY(op, cudnnCreateTensorDescriptor, (&d->y));
    CUDNN_TRY(op, cudnnCreateFilterDescriptor, (&d->w));
    CUDNN_TRY(op, cudnnCreateConvolutionDescriptor, (&d->conv));
    if (nhwc) { /* 2-D only; dims still given in N, C, H, W order */
        CUDNN_TRY(op, cudnnSetTensor4dDescriptor, (d->x, CUDNN_TENSOR_NHWC, t, xs[0], xs[1], xs[2], xs[3]));
        CUDNN_TRY(op, cudnnSetTensor4dDescriptor, (d->y, CUDNN_TENSOR_NHWC, t, ys[0], ys[1], ys[2], ys[3]));
        CUDNN_TRY(op, cudnnSetFilter4dDescriptor, (d->w, t, CUDNN_TENSOR_NHWC, ws[0], ws[1], ws[2], ws[3]));
    } else {
        NX_TRY(set_tensor(op, d->x, t, nd, xs));
        NX_TRY(set_tensor(op, d->y, t, nd, ys));
        CUDNN_TRY(op, cudnnSetFilterNdDescriptor, (d->w, t, CUDNN_TENSOR_NCHW, nd, ws));
    }
    CUDNN_TRY(op, cudnnSetConvolutionNdDescriptor,
              (d->conv, nd - 2, pad, stride, dil, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_TRY(op, cudnnSetConvolutionGroupCount, (d->conv, groups));
    CUDNN_TRY(op, cudnnSetConvolutionMathType,
              (d->conv, dt == NGPT_DTYPE_F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    return NGPT_OK;
}

/* The filter in the activation dtype: w itself, or a converted scratch copy in *owned. */
static ngpt_status filter_in(nx_backend *be, const char *op, const nx_tensor *w, ngpt_dtype dt, const void **out,
                             void **owned)
{
    *owned = NULL;
    *out = w->data;
    if (w->dtype == dt) return NGPT_OK;
    int64_t n = nx_numel(w);
    NX_TRY(nx_cuda_tmp_alloc(be, owned, (size_t)n * nx_dtype_size(dt), op));
    *out = *owned;
    return nx_cuda_check(nxk_cast(*owned, (int)dt, w->data, (int)w->dtype, n, nx_cuda_of(be)->stream), op, "nxk_cast");
}

/* ---- plans ---- */

#define FIND_WS ((size_t)256 << 20)  /* workspace offered to the algorithm search */

typedef struct conv_key {
    int bwd;  /* 0: forward (conv), 1: backward data (conv_transpose1d) */
    int nhwc; /* NHWC descriptors (channels last, or NCHW run on NHWC copies: conv_on_copies) */
    int dt, nd, groups;
    int xs[5], ys[5], ws[5], pad[3], stride[3], dil[3];
} conv_key;

struct nx_cuda_conv_plan {
    conv_key key;
    conv_descs d;
    int algo;        /* cudnnConvolutionFwdAlgo_t or cudnnConvolutionBwdDataAlgo_t */
    size_t ws_bytes;
};

void nx_cuda_conv_plans_free(nx_cuda *c)
{
    for (int i = 0; i < c->n_plans; i++) descs_free(&c->plans[i].d);
    nx_free(c->plans);
    c->plans = NULL;
    c->n_plans = 0;
}

void nx_cuda_set_conv_search(nx_backend *be, bool measure)
{
    if (!be || be->kind != NGPT_BACKEND_CUDA) return;
    nx_cuda *c = nx_cuda_of(be);
    c->conv_heuristic = !measure;
    nx_cuda_conv_plans_free(c);  /* plans made the other way are not reused */
}

/* The first acceptable candidate of cuDNN's list (fastest first for a search, best first for the
 * heuristic): F32 only with CUDNN_FMA_MATH (TF32 would round the inputs to 10 bits), else any
 * math; within WS_LIMIT; -1 when none. */
#define PICK(perf, n, dt, out)                                                                        \
    do {                                                                                              \
        (out) = -1;                                                                                   \
        for (int i_ = 0; i_ < (n) && (out) < 0; i_++)                                                 \
            if ((perf)[i_].status == CUDNN_STATUS_SUCCESS && (perf)[i_].memory <= WS_LIMIT &&         \
                ((dt) != NGPT_DTYPE_F32 || (perf)[i_].mathType == CUDNN_FMA_MATH))                    \
                (out) = i_;                                                                           \
    } while (0)

/* Choose the algorithm of a new plan (descriptors made): measured on these buffers, or cuDNN's
 * heuristic. A search writes y; the caller then runs the convolution into it for real. */
static ngpt_status plan_choose(nx_backend *be, const char *op, struct nx_cuda_conv_plan *pl, const void *x,
                               const void *w, void *y)
{
    nx_cuda *c = nx_cuda_of(be);
    cudnnHandle_t h;
    NX_TRY(nx_cuda_dnn(be, &h, op));
    conv_descs *d = &pl->d;
    ngpt_dtype dt = (ngpt_dtype)pl->key.dt;
    void *ws = NULL;
    if (!c->conv_heuristic && nx_cuda_tmp_alloc(be, &ws, FIND_WS, op) != NGPT_OK) ws = NULL; /* heuristic then */
    int n = 0, pick = -1;
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    /* the search first where it may run; cuDNN's heuristic when it cannot or finds nothing */
    for (int heur = ws ? 0 : 1; heur < 2 && pick < 0; heur++) {
        if (!pl->key.bwd) {
            cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
            s = !heur ? cudnnFindConvolutionForwardAlgorithmEx(h, d->x, x, d->w, w, d->conv, d->y, y,
                                                               CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf, ws, FIND_WS)
                      : cudnnGetConvolutionForwardAlgorithm_v7(h, d->x, d->w, d->conv, d->y,
                                                               CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf);
            if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, dt, pick);
            if (pick >= 0) pl->algo = (int)perf[pick].algo, pl->ws_bytes = perf[pick].memory, math = perf[pick].mathType;
        } else {
            cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
            s = !heur ? cudnnFindConvolutionBackwardDataAlgorithmEx(h, d->w, w, d->x, x, d->conv, d->y, y,
                                                                    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf,
                                                                    ws, FIND_WS)
                      : cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d->w, d->x, d->conv, d->y,
                                                                    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf);
            if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, dt, pick);
            if (pick >= 0) pl->algo = (int)perf[pick].algo, pl->ws_bytes = perf[pick].memory, math = perf[pick].mathType;
        }
    }
    nx_cuda_tmp_free(be, ws);
    NX_TRY(nx_cudnn_check(s, op, "cudnnGet...Algorithm_v7"));
    if (pick < 0)
        return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s: cuDNN offers no %s algorithm for this convolution", op,
                      pl->key.bwd ? "backward-data" : "forward");
    /* F32 keeps CUDNN_FMA_MATH on the descriptor (no TF32); F16/BF16 take the algorithm's own */
    if (dt != NGPT_DTYPE_F32) CUDNN_TRY(op, cudnnSetConvolutionMathType, (d->conv, math));
    return NGPT_OK;
}

/* The plan for key: the kept one, or a new one (descriptors, algorithm) added to the backend's. */
static ngpt_status plan_get(nx_backend *be, const char *op, const conv_key *key, const void *x, const void *w,
                            void *y, const struct nx_cuda_conv_plan **out)
{
    nx_cuda *c = nx_cuda_of(be);
    for (int i = c->n_plans - 1; i >= 0; i--)
        if (memcmp(&c->plans[i].key, key, sizeof *key) == 0) {
            if (c->plans[i].algo < 0) /* remembered: cuDNN has no plan for this shape */
                return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s: cuDNN made no %s plan for this shape", op,
                              key->nhwc ? "NHWC" : "NCHW");
            *out = &c->plans[i];
            return NGPT_OK;
        }
    struct nx_cuda_conv_plan pl;
    memset(&pl, 0, sizeof pl);
    pl.key = *key;
    ngpt_status st = make_descs(op, &pl.d, (ngpt_dtype)key->dt, key->nd, key->xs, key->ys, key->ws, key->pad,
                                key->stride, key->dil, key->groups, key->nhwc != 0);
    if (st == NGPT_OK) st = plan_choose(be, op, &pl, x, w, y);
    if (st != NGPT_OK) {
        descs_free(&pl.d);
        if (st != NGPT_ERR_UNSUPPORTED) return st;
        /* kept as a negative entry (algo -1, no descriptors): a later call of the shape is refused
         * at once instead of asking cuDNN again (descriptors and the heuristic cost far more than
         * a small convolution; see the top of this file) */
        memset(&pl.d, 0, sizeof pl.d);
        pl.algo = -1;
    }
    if (!c->plans) {
        c->plans = nx_calloc(NX_CUDA_PLANS_MAX, sizeof *c->plans);
        if (!c->plans) {
            descs_free(&pl.d);
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "cuda: %s: out of memory for the convolution plans", op);
        }
    }
    if (c->n_plans == NX_CUDA_PLANS_MAX) { /* full: drop the oldest */
        descs_free(&c->plans[0].d);
        memmove(c->plans, c->plans + 1, (size_t)(NX_CUDA_PLANS_MAX - 1) * sizeof *c->plans);
        c->n_plans--;
    }
    c->plans[c->n_plans] = pl;
    *out = &c->plans[c->n_plans++];
    return st;
}

/* Turn a kept plan into the negative entry of its shape (its algorithm failed when run). */
static void plan_forget(const struct nx_cuda_conv_plan *pl)
{
    struct nx_cuda_conv_plan *p = (struct nx_cuda_conv_plan *)pl; /* one of the backend's plans */
    descs_free(&p->d);
    memset(&p->d, 0, sizeof p->d);
    p->algo = -1;
    p->ws_bytes = 0;
}

static ngpt_status plan_run(nx_backend *be, const char *op, const struct nx_cuda_conv_plan *pl, const void *x,
                            const void *w, void *y)
{
    cudnnHandle_t h;
    NX_TRY(nx_cuda_dnn(be, &h, op));
    void *ws = NULL;
    if (pl->ws_bytes) NX_TRY(nx_cuda_tmp_alloc(be, &ws, pl->ws_bytes, op));
    float one = 1.0f, zero = 0.0f;
    const conv_descs *d = &pl->d;
    cudnnStatus_t s =
        pl->key.bwd
            ? cudnnConvolutionBackwardData(h, &one, d->w, w, d->x, x, d->conv, (cudnnConvolutionBwdDataAlgo_t)pl->algo,
                                           ws, pl->ws_bytes, &zero, d->y, y)
            : cudnnConvolutionForward(h, &one, d->x, x, d->w, w, d->conv, (cudnnConvolutionFwdAlgo_t)pl->algo, ws,
                                      pl->ws_bytes, &zero, d->y, y);
    nx_cuda_tmp_free(be, ws);
    return nx_cudnn_check(s, op, pl->key.bwd ? "cudnnConvolutionBackwardData" : "cudnnConvolutionForward");
}

/* Filter conversion, plan, run. */
static ngpt_status conv_exec(nx_backend *be, const char *op, const conv_key *key, const void *x, const nx_tensor *w,
                             void *y)
{
    const void *wp = NULL;
    void *wtmp = NULL;
    const struct nx_cuda_conv_plan *pl = NULL;
    ngpt_status st = filter_in(be, op, w, (ngpt_dtype)key->dt, &wp, &wtmp);
    if (st == NGPT_OK) st = plan_get(be, op, key, x, wp, y, &pl);
    if (st == NGPT_OK) st = plan_run(be, op, pl, x, wp, y);
    nx_cuda_tmp_free(be, wtmp);
    return st;
}

/* A 2-D F16/BF16 convolution on channels-last copies (nx_cuda_set_conv_nhwc): cuDNN's tensor-core
 * kernels are NHWC-native, and the NCHW path ran the SD UNet's convolutions at ~55 TFLOP/s on an
 * H200 (GPU run 6). x and the filter are permuted into scratch, the result permuted back: three
 * extra passes over memory per call, to be weighed against the faster kernel by bench_unet. */
static bool nhwc_applies(const nx_cuda *c, const conv_key *k)
{
    return c->conv_nhwc && !k->bwd && k->nd == 4 && k->groups == 1 &&
           (k->dt == NGPT_DTYPE_F16 || k->dt == NGPT_DTYPE_BF16);
}

/* A 2-D convolution run in the other layout on permuted copies: `to_nhwc` (the caller's tensors
 * are NCHW: x and the filter permuted to NHWC, the result back) or the reverse. The key is the
 * caller's (dims in N, C, H, W order either way); nhwc is set for the copies' layout. */
static ngpt_status conv_on_copies(nx_backend *be, const char *op, const conv_key *key, bool to_nhwc, const void *x,
                                  const nx_tensor *w, void *y)
{
    conv_key k = *key;
    k.nhwc = to_nhwc;
    ngpt_dtype dt = (ngpt_dtype)k.dt;
    size_t es = nx_dtype_size(dt);
    cudaStream_t st = nx_cuda_of(be)->stream;
    const int N = k.xs[0], C = k.xs[1], H = k.xs[2], W = k.xs[3];
    const int O = k.ws[0], Cg = k.ws[1], KH = k.ws[2], KW = k.ws[3], Ho = k.ys[2], Wo = k.ys[3];
    static const int to_last[4] = {0, 2, 3, 1}, to_first[4] = {0, 3, 1, 2};
    const int *in = to_nhwc ? to_last : to_first, *back = to_nhwc ? to_first : to_last;
    /* the shapes as stored in the caller's layout, and of the result in the copies' layout */
    const int64_t xne[4] = {N, to_nhwc ? C : H, to_nhwc ? H : W, to_nhwc ? W : C};
    const int64_t wne[4] = {O, to_nhwc ? Cg : KH, to_nhwc ? KH : KW, to_nhwc ? KW : Cg};
    const int64_t yne[4] = {N, to_nhwc ? Ho : O, to_nhwc ? Wo : Ho, to_nhwc ? O : Wo};
    const void *wp = NULL;
    void *wtmp = NULL, *xt = NULL, *wt = NULL, *yt = NULL;
    const struct nx_cuda_conv_plan *pl = NULL;
    ngpt_status s = filter_in(be, op, w, dt, &wp, &wtmp);
    if (s == NGPT_OK) s = nx_cuda_tmp_alloc(be, &xt, (size_t)N * C * H * W * es, op);
    if (s == NGPT_OK) s = nx_cuda_tmp_alloc(be, &wt, (size_t)O * Cg * KH * KW * es, op);
    if (s == NGPT_OK) s = nx_cuda_tmp_alloc(be, &yt, (size_t)N * O * Ho * Wo * es, op);
    if (s == NGPT_OK) s = nx_cuda_check(nxk_permute(xt, x, (int)es, 4, xne, in, st), op, "nxk_permute");
    if (s == NGPT_OK) s = nx_cuda_check(nxk_permute(wt, wp, (int)es, 4, wne, in, st), op, "nxk_permute");
    if (s == NGPT_OK) s = plan_get(be, op, &k, xt, wt, yt, &pl);
    if (s == NGPT_OK) {
        s = plan_run(be, op, pl, xt, wt, yt);
        if (s == NGPT_ERR_UNSUPPORTED) plan_forget(pl); /* as in conv_exec_cl */
    }
    if (s == NGPT_OK) s = nx_cuda_check(nxk_permute(y, yt, (int)es, 4, yne, back, st), op, "nxk_permute");
    nx_cuda_tmp_free(be, yt);
    nx_cuda_tmp_free(be, wt);
    nx_cuda_tmp_free(be, xt);
    nx_cuda_tmp_free(be, wtmp);
    return s;
}

/* Channels last (nx_conv_params.channels_last): cuDNN's NHWC descriptors, no copies. Where cuDNN
 * makes no NHWC plan for a shape (its NHWC support differs by dtype, groups and version), or when
 * forced (nx_cuda_set_conv_cl_via_nchw, for the parity test), the convolution runs on NCHW copies
 * (conv_on_copies). Logged once at INFO. */
static ngpt_status conv_exec_cl(nx_backend *be, const char *op, const conv_key *key, const void *x, const nx_tensor *w,
                                void *y)
{
    nx_cuda *c = nx_cuda_of(be);
    if (!c->conv_cl_via_nchw) {
        const void *wp = NULL;
        void *wtmp = NULL;
        const struct nx_cuda_conv_plan *pl = NULL;
        ngpt_status s = filter_in(be, op, w, (ngpt_dtype)key->dt, &wp, &wtmp);
        if (s == NGPT_OK) s = plan_get(be, op, key, x, wp, y, &pl);
        if (s == NGPT_OK) {
            s = plan_run(be, op, pl, x, wp, y);
            /* an algorithm the heuristic offered but cuDNN then refuses for this shape */
            if (s == NGPT_ERR_UNSUPPORTED) plan_forget(pl);
        }
        nx_cuda_tmp_free(be, wtmp);
        /* only "cuDNN cannot do this" falls back: bad parameters or a failed launch stay errors */
        if (s != NGPT_ERR_UNSUPPORTED) return s;
        c->conv_cl_fallbacks++;
        if (!c->conv_cl_fallback_logged) {
            nx_log(&be->log, NGPT_LOG_INFO, "cuda: %s: no NHWC plan (%s); such convolutions run on NCHW copies", op,
                   ngpt_last_error());
            c->conv_cl_fallback_logged = true;
        }
        ngpt_clear_error();
    }
    return conv_on_copies(be, op, key, false, x, w, y);
}

/* nx_cuda_set_conv_nhwc's trial mode: a shape cuDNN plans in NCHW only runs there as before,
 * instead of the switch turning a convolution that works into an error. */
static ngpt_status conv_exec_nhwc_copies(nx_backend *be, const char *op, const conv_key *key, const void *x,
                                         const nx_tensor *w, void *y)
{
    ngpt_status s = conv_on_copies(be, op, key, true, x, w, y);
    if (s != NGPT_ERR_UNSUPPORTED) return s;
    ngpt_clear_error();
    return conv_exec(be, op, key, x, w, y);
}

uint64_t nx_cuda_conv_cl_fallbacks(const nx_backend *be)
{
    return be && be->kind == NGPT_BACKEND_CUDA ? nx_cuda_of((nx_backend *)be)->conv_cl_fallbacks : 0;
}

void nx_cuda_set_conv_cl_via_nchw(nx_backend *be, bool on)
{
    if (be && be->kind == NGPT_BACKEND_CUDA) nx_cuda_of(be)->conv_cl_via_nchw = on;
}

void nx_cuda_set_conv_nhwc(nx_backend *be, bool on)
{
    if (be && be->kind == NGPT_BACKEND_CUDA) nx_cuda_of(be)->conv_nhwc = on;
}

/* Non-overlapping convolutions ("patchify": stride == kernel along every axis, no padding or
 * dilation, one group, sizes divisible by the kernel) — the ViT stems, ImageBind's Conv3d
 * 2x14x14 on two frames. cuDNN has no fast kernel for the 3-D one (0.9 ms of a 5.5 ms batch-1
 * ImageBind forward on an H200, ~3 TFLOP/s); as a GEMM it is a gather of the patches (one
 * permute), one GEMM against the filter read as [O, C*k...], and one permute of the result. */
static bool is_patchify(const nx_tensor *x, const nx_tensor *w, const nx_conv_params *p)
{
    int nsp = x->rank - 2;
    if (nsp < 1 || nsp > 3 || (p->groups > 1)) return false;
    int64_t taps = 1;
    for (int i = 0; i < nsp; i++) {
        int64_t k = w->ne[2 + i];
        if (p->stride[i] != k || p->pad[i] != 0 || p->dilation[i] != 1 || k < 1 || x->ne[2 + i] % k) return false;
        taps *= k;
    }
    return taps > 1;  /* 1x1 convolutions stay with cuDNN (a GEMM there already, no gather needed) */
}

static ngpt_status conv_patchify(nx_backend *be, const char *op, nx_tensor *y, const nx_tensor *x, const nx_tensor *w)
{
    int nsp = x->rank - 2;
    int64_t N = x->ne[0], C = x->ne[1], O = w->ne[0], P = 1, K = C;
    /* x [N, C, (o0, k0), (o1, k1), ...] -> patches [N, o0, o1, .., C, k0, k1, ..] */
    int64_t ne[NXK_MAX_DIMS];
    int perm[NXK_MAX_DIMS];
    int r = 0;
    ne[r++] = N;
    ne[r++] = C;
    for (int i = 0; i < nsp; i++) {
        int64_t k = w->ne[2 + i], o = x->ne[2 + i] / k;
        ne[r++] = o;
        ne[r++] = k;
        P *= o;
        K *= k;
    }
    r = 0;
    perm[r++] = 0;
    for (int i = 0; i < nsp; i++) perm[r++] = 2 + 2 * i;
    perm[r++] = 1;
    for (int i = 0; i < nsp; i++) perm[r++] = 3 + 2 * i;
    ngpt_dtype dt = y->dtype;
    size_t es = nx_dtype_size(dt);
    cudaStream_t st = nx_cuda_of(be)->stream;
    const void *wp = NULL;
    void *wtmp = NULL, *patches = NULL, *tmp = NULL;
    ngpt_status s = filter_in(be, op, w, dt, &wp, &wtmp);
    if (s == NGPT_OK) s = nx_cuda_tmp_alloc(be, &patches, (size_t)nx_numel(x) * es, op);
    if (s == NGPT_OK) s = nx_cuda_tmp_alloc(be, &tmp, (size_t)nx_numel(y) * es, op);
    if (s == NGPT_OK) s = nx_cuda_check(nxk_permute(patches, x->data, (int)es, 2 + 2 * nsp, ne, perm, st), op, "nxk_permute");
    /* tmp [N * P, O] = patches [N * P, K] . w [O, K]^T */
    if (s == NGPT_OK) s = nx_cuda_gemm_typed(be, op, patches, wp, dt, tmp, dt, 1, N * P, O, K, 0, 0, false, true, 1.0f);
    /* y [N, O, P] = tmp [N, P, O] permuted */
    int64_t ne3[3] = {N, P, O};
    const int perm3[3] = {0, 2, 1};
    if (s == NGPT_OK) s = nx_cuda_check(nxk_permute(y->data, tmp, (int)es, 3, ne3, perm3, st), op, "nxk_permute");
    nx_cuda_tmp_free(be, tmp);
    nx_cuda_tmp_free(be, patches);
    nx_cuda_tmp_free(be, wtmp);
    return s;
}

ngpt_status nx_cuda_conv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b,
                         const nx_conv_params *p)
{
    const char *op = x->rank == 3 ? "conv1d" : x->rank == 4 ? "conv2d" : "conv3d";
    if (!fits_int(x) || !fits_int(y) || !fits_int(w))
        return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s: tensors beyond 2^31 elements", op);
    if (nx_numel(y) == 0) return NGPT_OK;
    int nsp = x->rank - 2;
    conv_key k;
    memset(&k, 0, sizeof k);
    k.bwd = 0, k.dt = (int)y->dtype, k.nd = nsp == 1 ? 4 : x->rank, k.groups = p->groups > 0 ? p->groups : 1;
    if (nsp == 1) {
        /* [N, C, L] as [N, C, 1, L] */
        int xs[4] = {(int)x->ne[0], (int)x->ne[1], 1, (int)x->ne[2]}, ys[4] = {(int)y->ne[0], (int)y->ne[1], 1, (int)y->ne[2]};
        int ws[4] = {(int)w->ne[0], (int)w->ne[1], 1, (int)w->ne[2]};
        memcpy(k.xs, xs, sizeof xs), memcpy(k.ys, ys, sizeof ys), memcpy(k.ws, ws, sizeof ws);
        k.pad[0] = 0, k.stride[0] = 1, k.dil[0] = 1;
        k.pad[1] = p->pad[0], k.stride[1] = p->stride[0], k.dil[1] = p->dilation[0];
    } else if (p->channels_last) { /* x [N, H, W, C], w [O, kh, kw, C/g]: dims given in N, C, H, W order */
        k.nhwc = 1;
        const int perm[4] = {0, 3, 1, 2};
        for (int i = 0; i < 4; i++)
            k.xs[i] = (int)x->ne[perm[i]], k.ys[i] = (int)y->ne[perm[i]], k.ws[i] = (int)w->ne[perm[i]];
        for (int i = 0; i < nsp; i++) k.pad[i] = p->pad[i], k.stride[i] = p->stride[i], k.dil[i] = p->dilation[i];
    } else {
        for (int i = 0; i < k.nd; i++) k.xs[i] = (int)x->ne[i], k.ys[i] = (int)y->ne[i], k.ws[i] = (int)w->ne[i];
        for (int i = 0; i < nsp; i++) k.pad[i] = p->pad[i], k.stride[i] = p->stride[i], k.dil[i] = p->dilation[i];
    }
    ngpt_status st = k.nhwc                             ? conv_exec_cl(be, op, &k, x->data, w, y->data)
                     : is_patchify(x, w, p)             ? conv_patchify(be, op, y, x, w)
                     : nhwc_applies(nx_cuda_of(be), &k) ? conv_exec_nhwc_copies(be, op, &k, x->data, w, y->data)
                                                        : conv_exec(be, op, &k, x->data, w, y->data);
    const bool act = p->act != NX_UNARY_IDENTITY;
    if (st == NGPT_OK && (b || act || p->residual)) { /* bias and the epilogue in one pass */
        /* y as [outer, C, inner] with C the output channels: [N, O, H * W], or [N * H * W, O, 1] */
        const int64_t O = k.ys[1], outer = k.nhwc ? nx_numel(y) / O : y->ne[0], inner = nx_numel(y) / (outer * O);
        st = nx_cuda_check(nxk_bias_act_add(y->data, (int)y->dtype, b ? b->data : NULL, b ? (int)b->dtype : 0,
                                            p->residual ? p->residual->data : NULL, outer, O, inner,
                                            act ? (int)p->act : -1, p->act_param, nx_cuda_of(be)->stream),
                           op, "nxk_bias_act_add");
    }
    return st;
}

ngpt_status nx_cuda_conv_transpose1d(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                                     const nx_tensor *b, int stride, int pad, int output_padding, int dilation,
                                     int groups)
{
    const char *op = "conv_transpose1d";
    if (!fits_int(x) || !fits_int(y) || !fits_int(w))
        return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s: tensors beyond 2^31 elements", op);
    if (output_padding >= stride)
        return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s: output_padding %d >= stride %d is not supported by cuDNN's backward-data path",
                      op, output_padding, stride);
    if (nx_numel(y) == 0) return NGPT_OK;
    /* The backward-data of a forward conv from y-shaped [N, O, 1, Lo] to x-shaped [N, C, 1, L],
     * whose filter [C, O/groups, 1, k] is exactly ConvTranspose1d's weight layout. */
    conv_key k;
    memset(&k, 0, sizeof k);
    k.bwd = 1, k.dt = (int)y->dtype, k.nd = 4, k.groups = groups > 0 ? groups : 1;
    /* descriptor "x" = the forward conv's output = our x; "y" = the forward conv's input = our y */
    int xs[4] = {(int)x->ne[0], (int)x->ne[1], 1, (int)x->ne[2]}, ys[4] = {(int)y->ne[0], (int)y->ne[1], 1, (int)y->ne[2]};
    int ws[4] = {(int)w->ne[0], (int)w->ne[1], 1, (int)w->ne[2]};
    memcpy(k.xs, xs, sizeof xs), memcpy(k.ys, ys, sizeof ys), memcpy(k.ws, ws, sizeof ws);
    k.pad[1] = pad, k.stride[0] = 1, k.stride[1] = stride, k.dil[0] = 1, k.dil[1] = dilation;
    ngpt_status st = conv_exec(be, op, &k, x->data, w, y->data);
    if (st == NGPT_OK && b)
        st = nx_cuda_check(nxk_bias_add(y->data, (int)y->dtype, b->data, (int)b->dtype, y->ne[0], y->ne[1], y->ne[2],
                                        nx_cuda_of(be)->stream), op, "nxk_bias_add");
    return st;
}
