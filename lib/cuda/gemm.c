/* gemm.c — linear and matmul through cuBLAS (cublasGemmStridedBatchedEx, F32 accumulate);
 * a linear of at most NXK_GEMV_MAX_M rows through our GEMV kernel (kernels/gemv.cu).
 *
 * Row-major to cuBLAS: a row-major C[M, N] is a column-major C^T[N, M], and
 * C^T = op(b)^T op(a)^T, so cuBLAS is called with the operands swapped (b first) and m = N,
 * n = M. When a, b and c share a dtype the GEMM runs in it directly (F16/BF16 on tensor cores,
 * F32 as true F32: no TF32); otherwise the non-F32 operands are widened to F32 scratch, the GEMM
 * runs in F32 and the result is narrowed into c — exact for F16/BF16 weights under F32
 * activations, at the cost of the conversion (models load weights in the activation dtype). */
#include "cuda_internal.h"

static cudaDataType_t cuda_dt(ngpt_dtype dt)
{
    switch (dt) {
    case NGPT_DTYPE_F16: return CUDA_R_16F;
    case NGPT_DTYPE_BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
    }
}

typedef struct gemm_args {
    const void *a, *b;  /* row-major a [B?, M, K] (or [K, M] with trans_a), b [B?, K, N] (or [N, K]) */
    void *c;            /* [B, M, N] */
    ngpt_dtype dt;      /* of a, b and c */
    int64_t batch, M, N, K;
    int64_t stride_a, stride_b;  /* elements between batch items; 0 broadcasts */
    bool trans_a, trans_b;
    float alpha, beta;
} gemm_args;

static ngpt_status gemm_same(nx_backend *be, const char *op, const gemm_args *g)
{
    nx_cuda *cu = nx_cuda_of(be);
    if (g->M > INT32_MAX || g->N > INT32_MAX || g->K > INT32_MAX || g->batch > INT32_MAX)
        return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s: GEMM dimensions beyond 2^31 (M %lld N %lld K %lld)", op,
                      (long long)g->M, (long long)g->N, (long long)g->K);
    if (g->M == 0 || g->N == 0) return NGPT_OK;
    cudaDataType_t t = cuda_dt(g->dt);
    int m = (int)g->N, n = (int)g->M, k = (int)g->K;
    /* cuBLAS "A" is our b, cuBLAS "B" is our a (see the top of the file). */
    cublasOperation_t opA = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    int lda = g->trans_b ? k : m;
    cublasOperation_t opB = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    int ldb = g->trans_a ? n : k;
    int ldc = m;
    CUBLAS_TRY(op, cublasGemmStridedBatchedEx,
               (cu->blas, opA, opB, m, n, k, &g->alpha, g->b, t, lda, (long long)g->stride_b, g->a, t, ldb,
                (long long)g->stride_a, &g->beta, g->c, t, ldc, (long long)(g->M * g->N), (int)g->batch,
                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return NGPT_OK;
}

/* Widen src (n elements of dt) to a new F32 scratch buffer, or return src itself when F32. */
static ngpt_status widen(nx_backend *be, const char *op, const void *src, ngpt_dtype dt, int64_t n,
                         const void **out, void **owned)
{
    *owned = NULL;
    *out = src;
    if (dt == NGPT_DTYPE_F32) return NGPT_OK;
    NX_TRY(nx_cuda_tmp_alloc(be, owned, (size_t)n * 4, op));
    ngpt_status st = nx_cuda_check(nxk_cast(*owned, NXK_F32, src, (int)dt, n, nx_cuda_of(be)->stream), op, "nxk_cast");
    if (st != NGPT_OK) {
        nx_cuda_tmp_free(be, *owned);
        *owned = NULL;
        return st;
    }
    *out = *owned;
    return NGPT_OK;
}

/* c (dtype c_dt) = gemm over a (a_dt) and b (b_dt); na/nb/nc are the element counts. */
static ngpt_status gemm_mixed(nx_backend *be, const char *op, gemm_args g, ngpt_dtype a_dt, ngpt_dtype b_dt,
                              int64_t na, int64_t nb, int64_t nc)
{
    if (a_dt == g.dt && b_dt == g.dt) return gemm_same(be, op, &g);
    nx_cuda *cu = nx_cuda_of(be);
    void *ta = NULL, *tb = NULL, *tc = NULL;
    const void *c_in = NULL;
    ngpt_status st = widen(be, op, g.a, a_dt, na, &g.a, &ta);
    if (st == NGPT_OK) st = widen(be, op, g.b, b_dt, nb, &g.b, &tb);
    void *c_out = g.c;
    if (st == NGPT_OK && g.dt != NGPT_DTYPE_F32) {
        if (g.beta != 0.0f) {
            st = widen(be, op, g.c, g.dt, nc, &c_in, &tc);
        } else {
            st = nx_cuda_tmp_alloc(be, &tc, (size_t)nc * 4, op);
        }
        g.c = tc;
    }
    (void)c_in;
    ngpt_dtype c_dt = g.dt;
    g.dt = NGPT_DTYPE_F32;
    if (st == NGPT_OK) st = gemm_same(be, op, &g);
    if (st == NGPT_OK && c_dt != NGPT_DTYPE_F32)
        st = nx_cuda_check(nxk_cast(c_out, (int)c_dt, tc, NXK_F32, nc, cu->stream), op, "nxk_cast");
    nx_cuda_tmp_free(be, ta);
    nx_cuda_tmp_free(be, tb);
    nx_cuda_tmp_free(be, tc);
    return st;
}

ngpt_status nx_cuda_linear(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b)
{
    int64_t K = x->ne[x->rank - 1];
    int64_t N = w->ne[0];
    int64_t M = K ? nx_numel(x) / K : 0;
    if (K == 0) M = nx_numel(y) / (N ? N : 1);
    if (M >= 1 && M <= NXK_GEMV_MAX_M) /* decode steps: memory-bound, see kernels/gemv.cu */
        return nx_cuda_check(nxk_gemv(y->data, (int)y->dtype, x->data, (int)x->dtype, w->data, (int)w->dtype,
                                      b ? b->data : NULL, b ? (int)b->dtype : NXK_F32, M, N, K,
                                      nx_cuda_of(be)->stream), "linear", "nxk_gemv");
    gemm_args g = {
        .a = x->data, .b = w->data, .c = y->data, .dt = y->dtype,
        .batch = 1, .M = M, .N = N, .K = K, .stride_a = 0, .stride_b = 0,
        .trans_a = false, .trans_b = true, .alpha = 1.0f, .beta = 0.0f,
    };
    NX_TRY(gemm_mixed(be, "linear", g, x->dtype, w->dtype, nx_numel(x), nx_numel(w), nx_numel(y)));
    if (b)
        NX_TRY(nx_cuda_check(nxk_bias_add(y->data, (int)y->dtype, b->data, (int)b->dtype, M, N, 1,
                                          nx_cuda_of(be)->stream), "linear", "nxk_bias_add"));
    return NGPT_OK;
}

ngpt_status nx_cuda_matmul(nx_backend *be, nx_tensor *c, const nx_tensor *a, const nx_tensor *b,
                           bool trans_a, bool trans_b, float alpha, float beta)
{
    int64_t Ba = a->rank == 3 ? a->ne[0] : 1, Bb = b->rank == 3 ? b->ne[0] : 1;
    int64_t ar = a->ne[a->rank - 2], ac = a->ne[a->rank - 1];
    int64_t br = b->ne[b->rank - 2], bc = b->ne[b->rank - 1];
    int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac;
    int64_t N = trans_b ? br : bc;
    gemm_args g = {
        .a = a->data, .b = b->data, .c = c->data, .dt = c->dtype,
        .batch = Ba > Bb ? Ba : Bb, .M = M, .N = N, .K = K,
        .stride_a = Ba == 1 ? 0 : ar * ac, .stride_b = Bb == 1 ? 0 : br * bc,
        .trans_a = trans_a, .trans_b = trans_b, .alpha = alpha, .beta = beta,
    };
    return gemm_mixed(be, "matmul", g, a->dtype, b->dtype, nx_numel(a), nx_numel(b), nx_numel(c));
}

ngpt_status nx_cuda_gemm_typed(nx_backend *be, const char *op, const void *a, const void *b, ngpt_dtype ab_dt, void *c,
                               ngpt_dtype c_dt, int64_t batch, int64_t M, int64_t N, int64_t K, int64_t stride_a,
                               int64_t stride_b, bool trans_a, bool trans_b, float alpha)
{
    nx_cuda *cu = nx_cuda_of(be);
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || batch > INT32_MAX)
        return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: %s: GEMM dimensions beyond 2^31 (M %lld N %lld K %lld)", op,
                      (long long)M, (long long)N, (long long)K);
    if (M == 0 || N == 0 || batch == 0) return NGPT_OK;
    cudaDataType_t tab = cuda_dt(ab_dt), tc = cuda_dt(c_dt);
    int m = (int)N, n = (int)M, k = (int)K;
    cublasOperation_t opA = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    int lda = trans_b ? k : m;
    cublasOperation_t opB = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    int ldb = trans_a ? n : k;
    float beta = 0.0f;
    CUBLAS_TRY(op, cublasGemmStridedBatchedEx,
               (cu->blas, opA, opB, m, n, k, &alpha, b, tab, lda, (long long)stride_b, a, tab, ldb, (long long)stride_a,
                &beta, c, tc, m, (long long)(M * N), (int)batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return NGPT_OK;
}
