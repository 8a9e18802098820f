/* conv.c — conv1d/2d/3d and conv_transpose1d through cuDNN's legacy convolution API
 * (cudnnConvolutionForward / cudnnConvolutionBackwardData, cuDNN 9's cudnn_cnn), then a bias
 * add kernel. 1-D convolutions run as 2-D with a height of 1 (cuDNN wants >= 4-D tensors).
 * The filter must have the activation dtype: a weight of another dtype is converted into
 * scratch first (exact for F16/BF16 weights under F32 activations). F32 runs with
 * CUDNN_FMA_MATH (no TF32), F16/BF16 with tensor cores; accumulation is F32 in all cases. */
#include "cuda_internal.h"

#include <stdio.h>

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
                              const int *ws, const int *pad, const int *stride, const int *dil, int groups)
{
    cudnnDataType_t t = dnn_dt(dt);
    CUDNN_TRY(op, cudnnCreateTensorDescriptor, (&d->x));
    CUDNN_TRY(op, cudnnCreateTensorDescriptor, (&d->y));
    CUDNN_TRY(op, cudnnCreateFilterDescriptor, (&d->w));
    CUDNN_TRY(op, cudnnCreateConvolutionDescriptor, (&d->conv));
    NX_TRY(set_tensor(op, d->x, t, nd, xs));
    NX_TRY(set_tensor(op, d->y, t, nd, ys));
    CUDNN_TRY(op, cudnnSetFilterNdDescriptor, (d->w, t, CUDNN_TENSOR_NCHW, nd, ws));
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

static ngpt_status conv_fwd(nx_backend *be, const char *op, conv_descs *d, const void *x, const void *w, void *y,
                            ngpt_dtype dt)
{
    cudnnHandle_t h;
    NX_TRY(nx_cuda_dnn(be, &h, op));
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    CUDNN_TRY(op, cudnnGetConvolutionForwardAlgorithm_v7,
              (h, d->x, d->w, d->conv, d->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
    cudnnMathType_t want = dt == NGPT_DTYPE_F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    int pick = -1;
    for (int pass = 0; pass < 2 && pick < 0; pass++)
        for (int i = 0; i < n; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= WS_LIMIT &&
                (pass == 1 || perf[i].mathType == want)) {
                pick = i;
                break;
            }
    if (pick < 0) return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s: cuDNN offers no forward algorithm for this convolution", op);
    /* F32 keeps CUDNN_FMA_MATH on the descriptor (no TF32); F16/BF16 take the algorithm's own */
    if (dt != NGPT_DTYPE_F32) CUDNN_TRY(op, cudnnSetConvolutionMathType, (d->conv, perf[pick].mathType));
    void *ws = NULL;
    if (perf[pick].memory) NX_TRY(nx_cuda_tmp_alloc(be, &ws, perf[pick].memory, op));
    float one = 1.0f, zero = 0.0f;
    cudnnStatus_t s = cudnnConvolutionForward(h, &one, d->x, x, d->w, w, d->conv, perf[pick].algo, ws, perf[pick].memory,
                                              &zero, d->y, y);
    nx_cuda_tmp_free(be, ws);
    return nx_cudnn_check(s, op, "cudnnConvolutionForward");
}

static ngpt_status conv_bwd_data(nx_backend *be, const char *op, conv_descs *d, const void *x, const void *w, void *y,
                                 ngpt_dtype dt)
{
    /* transpose conv: x plays dy (the forward conv's output), y plays dx */
    cudnnHandle_t h;
    NX_TRY(nx_cuda_dnn(be, &h, op));
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int n = 0;
    CUDNN_TRY(op, cudnnGetConvolutionBackwardDataAlgorithm_v7,
              (h, d->w, d->x, d->conv, d->y, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
    cudnnMathType_t want = dt == NGPT_DTYPE_F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    int pick = -1;
    for (int pass = 0; pass < 2 && pick < 0; pass++)
        for (int i = 0; i < n; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= WS_LIMIT &&
                (pass == 1 || perf[i].mathType == want)) {
                pick = i;
                break;
            }
    if (pick < 0) return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s: cuDNN offers no backward-data algorithm for this convolution", op);
    /* F32 keeps CUDNN_FMA_MATH on the descriptor (no TF32); F16/BF16 take the algorithm's own */
    if (dt != NGPT_DTYPE_F32) CUDNN_TRY(op, cudnnSetConvolutionMathType, (d->conv, perf[pick].mathType));
    void *ws = NULL;
    if (perf[pick].memory) NX_TRY(nx_cuda_tmp_alloc(be, &ws, perf[pick].memory, op));
    float one = 1.0f, zero = 0.0f;
    cudnnStatus_t s = cudnnConvolutionBackwardData(h, &one, d->w, w, d->x, x, d->conv, perf[pick].algo, ws,
                                                   perf[pick].memory, &zero, d->y, y);
    nx_cuda_tmp_free(be, ws);
    return nx_cudnn_check(s, op, "cudnnConvolutionBackwardData");
}

ngpt_status nx_cuda_conv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b,
                         const nx_conv_params *p)
{
    const char *op = x->rank == 3 ? "conv1d" : x->rank == 4 ? "conv2d" : "conv3d";
    if (!fits_int(x) || !fits_int(y) || !fits_int(w))
        return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s: tensors beyond 2^31 elements", op);
    if (nx_numel(y) == 0) return NGPT_OK;
    int nsp = x->rank - 2;
    int nd = nsp == 1 ? 4 : x->rank;
    int xs[5], ys[5], ws[5], pad[3], stride[3], dil[3];
    if (nsp == 1) {
        /* [N, C, L] as [N, C, 1, L] */
        xs[0] = (int)x->ne[0]; xs[1] = (int)x->ne[1]; xs[2] = 1; xs[3] = (int)x->ne[2];
        ys[0] = (int)y->ne[0]; ys[1] = (int)y->ne[1]; ys[2] = 1; ys[3] = (int)y->ne[2];
        ws[0] = (int)w->ne[0]; ws[1] = (int)w->ne[1]; ws[2] = 1; ws[3] = (int)w->ne[2];
        pad[0] = 0; stride[0] = 1; dil[0] = 1;
        pad[1] = p->pad[0]; stride[1] = p->stride[0]; dil[1] = p->dilation[0];
    } else {
        for (int i = 0; i < nd; i++) {
            xs[i] = (int)x->ne[i];
            ys[i] = (int)y->ne[i];
            ws[i] = (int)w->ne[i];
        }
        for (int i = 0; i < nsp; i++) {
            pad[i] = p->pad[i];
            stride[i] = p->stride[i];
            dil[i] = p->dilation[i];
        }
    }
    conv_descs d = {0};
    const void *wp = NULL;
    void *wtmp = NULL;
    ngpt_status st = make_descs(op, &d, y->dtype, nd, xs, ys, ws, pad, stride, dil, p->groups > 0 ? p->groups : 1);
    if (st == NGPT_OK) st = filter_in(be, op, w, y->dtype, &wp, &wtmp);
    if (st == NGPT_OK) st = conv_fwd(be, op, &d, x->data, wp, y->data, y->dtype);
    const bool act = p->act != NX_UNARY_IDENTITY;
    if (st == NGPT_OK && (b || act || p->residual)) { /* bias and the epilogue in one pass */
        int64_t inner = nx_numel(y) / (y->ne[0] * y->ne[1]);
        st = nx_cuda_check(nxk_bias_act_add(y->data, (int)y->dtype, b ? b->data : NULL, b ? (int)b->dtype : 0,
                                            p->residual ? p->residual->data : NULL, y->ne[0], y->ne[1], inner,
                                            act ? (int)p->act : -1, p->act_param, nx_cuda_of(be)->stream),
                           op, "nxk_bias_act_add");
    }
    nx_cuda_tmp_free(be, wtmp);
    descs_free(&d);
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
    int xs[4] = {(int)x->ne[0], (int)x->ne[1], 1, (int)x->ne[2]};
    int ys[4] = {(int)y->ne[0], (int)y->ne[1], 1, (int)y->ne[2]};
    int ws[4] = {(int)w->ne[0], (int)w->ne[1], 1, (int)w->ne[2]};
    int pd[2] = {0, pad}, sd[2] = {1, stride}, dd[2] = {1, dilation};
    conv_descs d = {0};
    const void *wp = NULL;
    void *wtmp = NULL;
    /* descriptor "x" = the forward conv's output = our x; "y" = the forward conv's input = our y */
    ngpt_status st = make_descs(op, &d, y->dtype, 4, xs, ys, ws, pd, sd, dd, groups > 0 ? groups : 1);
    if (st == NGPT_OK) st = filter_in(be, op, w, y->dtype, &wp, &wtmp);
    if (st == NGPT_OK) st = conv_bwd_data(be, op, &d, x->data, wp, y->data, y->dtype);
    if (st == NGPT_OK && b)
        st = nx_cuda_check(nxk_bias_add(y->data, (int)y->dtype, b->data, (int)b->dtype, y->ne[0], y->ne[1], y->ne[2],
                                        nx_cuda_of(be)->stream), op, "nxk_bias_add");
    nx_cuda_tmp_free(be, wtmp);
    descs_free(&d);
    return st;
}
