/* gemm.c — linear and matmul through cuBLAS (cublasGemmStridedBatchedEx, F32 accumulate);
 * a linear of at most NXK_GEMV_MAX_M rows through our GEMV kernel (kernels/gemv.cu).
 *
 * Row-major to cuBLAS: a row-major C[M, N] is a column-major C^T[N, M], and
 * C^T = op(b)^T op(a)^T, so cuBLAS is called with the operands swapped (b first) and m = N,
 * n = M. When a, b and c share a dtype the GEMM runs in it directly (F16/BF16 on tensor cores,
 * F32 as true F32: no TF32); otherwise the non-F32 operands are widened to F32 scratch, the GEMM
 * runs in F32 and the result is narrowed into c — exact for F16/BF16 weights under F32
 * activations, at the cost of the conversion (models load weights in the activation dtype).
 *
 * With nx_cuda_set_gemm_lt(be, true), the default, a linear whose x, w and y share a dtype runs as
 * one cuBLASLt matmul with the bias in its epilogue instead (see "cuBLASLt linears" below). */
#include "cuda_internal.h"
#include "../core/alloc.h"
#include "../core/dtype.h"

#include <string.h>

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

/* ---- cuBLASLt linears (nx_cuda_set_gemm_lt) ----
 *
 * PyTorch runs a linear as one cuBLASLt matmul with the bias added in the epilogue
 * (CUBLASLT_EPILOGUE_BIAS); the cuBLAS path above needs a second kernel (nxk_bias_add), one more
 * read and write of y per linear. On an H200 that left ImageBind-huge vision at batch 16 at 0.8x
 * PyTorch, and the SD 1.5 UNet step spent 6.7 ms in linears. The operands are swapped as for
 * cuBLAS (top of the file): cuBLASLt's A is w, stored column-major as K x N and transposed; its B
 * is x, K x M; D is y^T, N x M, so the bias (one value per output feature) runs along D's rows,
 * which is how CUBLASLT_EPILOGUE_BIAS broadcasts it. Compute type CUBLAS_COMPUTE_32F with F32
 * scale: F16/BF16 on tensor cores with F32 accumulation, F32 as true F32 (no TF32), as above.
 *
 * Plans. Creating the descriptors and asking the heuristic costs more than a small GEMM, so each
 * shape gets a plan — matmul descriptor, the three layouts (C and D share one) and the algorithm —
 * made on its first call and kept in the backend (NX_CUDA_LT_PLANS_MAX, oldest replaced first, as
 * conv.c keeps its plans). The heuristic assumes 256-byte aligned buffers unless told otherwise,
 * so the alignments of x, w and y are part of the key and given to it as preferences. No
 * preference covers the bias: it must be 16-byte aligned to come here at all (lt_linear), and its
 * alignment is part of the key too (the descriptor may be read with the first call's pointer). A shape cuBLASLt has no algorithm for (or whose matmul failed) keeps
 * a plan marked not ok and goes to the cuBLAS path from then on without asking again: the switch
 * never turns a linear the cuBLAS path can run into an error.
 *
 * The workspace is the backend's blas_ws (shared with cuBLAS: both run on the one stream), so a
 * linear recorded in a CUDA graph allocates nothing here either. */

typedef struct lt_key { /* int64_t only: no padding, compared with memcmp */
    int64_t M, N, K;
    int64_t dt, bias_dt; /* bias_dt -1: no bias */
    int64_t align[4];    /* bytes, a power of 2 up to 256: x, w, y, bias (0 without one) */
} lt_key;

struct nx_cuda_lt_plan {
    lt_key key;
    bool ok; /* false: cuBLASLt cannot run this shape; the cuBLAS path does */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c; /* w, x, y (C and D) */
    cublasLtMatmulAlgo_t algo;
};

static void lt_plan_clear(struct nx_cuda_lt_plan *p)
{
    if (p->desc) (void)cublasLtMatmulDescDestroy(p->desc);
    if (p->a) (void)cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) (void)cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) (void)cublasLtMatrixLayoutDestroy(p->c);
    p->desc = NULL;
    p->a = p->b = p->c = NULL;
    p->ok = false;
}

void nx_cuda_lt_free(nx_cuda *c)
{
    for (int i = 0; i < c->n_lt_plans; i++) lt_plan_clear(&c->lt_plans[i]);
    nx_free(c->lt_plans);
    c->lt_plans = NULL;
    c->n_lt_plans = 0;
    if (c->lt) (void)cublasLtDestroy(c->lt);
    c->lt = NULL;
}

void nx_cuda_set_gemm_lt(nx_backend *be, bool on)
{
    if (be && be->kind == NGPT_BACKEND_CUDA) nx_cuda_of(be)->gemm_lt = on;
}

/* The largest power of 2 up to 256 dividing the address. */
static int64_t align_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    int64_t al = 256;
    while (al > 1 && a % (uintptr_t)al) al /= 2;
    return al;
}

/* Descriptors and algorithm for pl->key (bias: the first call's, for its alignment); sets pl->ok
 * when the heuristic has an algorithm. On failure the caller clears what was made. */
static cublasStatus_t lt_plan_make(nx_cuda *c, struct nx_cuda_lt_plan *pl, const void *bias)
{
    const lt_key *k = &pl->key;
    const cudaDataType_t t = cuda_dt((ngpt_dtype)k->dt);
    cublasLtMatmulPreference_t pref = NULL;
    cublasStatus_t s;
#define LT_TRY(call)                                \
    do {                                            \
        s = (call);                                 \
        if (s != CUBLAS_STATUS_SUCCESS) goto done;  \
    } while (0)
    LT_TRY(cublasLtMatmulDescCreate(&pl->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const int32_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
    LT_TRY(cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof op_t));
    LT_TRY(cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof op_n));
    if (k->bias_dt >= 0) {
        const uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
        LT_TRY(cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        if (k->bias_dt != k->dt) { /* an F32 bias under F16/BF16 output; the default is D's type */
            const int32_t bt = (int32_t)cuda_dt((ngpt_dtype)k->bias_dt);
            LT_TRY(cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
        }
        LT_TRY(cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    }
    LT_TRY(cublasLtMatrixLayoutCreate(&pl->a, t, (uint64_t)k->K, (uint64_t)k->N, k->K));
    LT_TRY(cublasLtMatrixLayoutCreate(&pl->b, t, (uint64_t)k->K, (uint64_t)k->M, k->K));
    LT_TRY(cublasLtMatrixLayoutCreate(&pl->c, t, (uint64_t)k->N, (uint64_t)k->M, k->N));
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = NX_CUDA_BLAS_WS_BYTES;
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    const uint32_t al_a = (uint32_t)k->align[1], al_b = (uint32_t)k->align[0], al_c = (uint32_t)k->align[2];
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c));
    cublasLtMatmulHeuristicResult_t r;
    memset(&r, 0, sizeof r);
    int n = 0;
    LT_TRY(cublasLtMatmulAlgoGetHeuristic(c->lt, pl->desc, pl->a, pl->b, pl->c, pl->c, pref, 1, &r, &n));
    if (n < 1 || r.state != CUBLAS_STATUS_SUCCESS) {
        s = CUBLAS_STATUS_NOT_SUPPORTED;
        goto done;
    }
    pl->algo = r.algo;
    pl->ok = true;
done:
#undef LT_TRY
    if (pref) (void)cublasLtMatmulPreferenceDestroy(pref);
    return s;
}

static void lt_log_fallback(nx_backend *be, const lt_key *k, const char *why, cublasStatus_t s)
{
    nx_log(&be->log, NGPT_LOG_INFO,
           "cuda: linear: cuBLASLt %s M %lld N %lld K %lld %s%s%s (%s): cuBLAS and a bias kernel instead", why,
           (long long)k->M, (long long)k->N, (long long)k->K, nx_dtype_name((ngpt_dtype)k->dt),
           k->bias_dt >= 0 ? ", bias " : ", no bias", k->bias_dt >= 0 ? nx_dtype_name((ngpt_dtype)k->bias_dt) : "",
           cublasGetStatusString(s));
}

/* The plan for key, made on its first call; NULL when cuBLASLt is not to run this call. */
static struct nx_cuda_lt_plan *lt_plan_get(nx_backend *be, const lt_key *key, const void *bias)
{
    nx_cuda *c = nx_cuda_of(be);
    for (int i = c->n_lt_plans - 1; i >= 0; i--)
        if (memcmp(&c->lt_plans[i].key, key, sizeof *key) == 0) return c->lt_plans[i].ok ? &c->lt_plans[i] : NULL;
    if (!c->lt) return NULL; /* cublasLtCreate failed in cuda_init (logged there) */
    if (!c->lt_plans) {
        c->lt_plans = nx_calloc(NX_CUDA_LT_PLANS_MAX, sizeof *c->lt_plans);
        if (!c->lt_plans) return NULL;
    }
    struct nx_cuda_lt_plan pl;
    memset(&pl, 0, sizeof pl);
    pl.key = *key;
    cublasStatus_t s = lt_plan_make(c, &pl, bias);
    if (s != CUBLAS_STATUS_SUCCESS) {
        lt_plan_clear(&pl);
        lt_log_fallback(be, key, "declined", s); /* NOT_SUPPORTED: no algorithm for it */
        if (s == CUBLAS_STATUS_ALLOC_FAILED) return NULL; /* out of host memory: not a verdict on the shape */
    }
    if (c->n_lt_plans == NX_CUDA_LT_PLANS_MAX) { /* full: drop the oldest */
        lt_plan_clear(&c->lt_plans[0]);
        memmove(c->lt_plans, c->lt_plans + 1, (size_t)(NX_CUDA_LT_PLANS_MAX - 1) * sizeof *c->lt_plans);
        c->n_lt_plans--;
    }
    c->lt_plans[c->n_lt_plans] = pl;
    struct nx_cuda_lt_plan *out = &c->lt_plans[c->n_lt_plans++];
    return out->ok ? out : NULL;
}

/* y = x w^T (+ b) by one cuBLASLt matmul. False when it did not run (switched off, a case it does
 * not take, or cuBLASLt failed): the caller then runs the cuBLAS path, which gives the error if
 * there is one to give. */
static bool lt_linear(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b,
                      int64_t M, int64_t N, int64_t K)
{
    nx_cuda *c = nx_cuda_of(be);
    const ngpt_dtype dt = y->dtype;
    if (!c->gemm_lt || x->dtype != dt || w->dtype != dt) return false;
    if (dt != NGPT_DTYPE_F32 && dt != NGPT_DTYPE_F16 && dt != NGPT_DTYPE_BF16) return false;
    /* empty GEMMs and dimensions beyond int: the cuBLAS path's cases (an early return, or its error) */
    if (M <= NXK_GEMV_MAX_M || N < 1 || K < 1 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) return false;
    /* a bias in y's dtype (cuBLASLt's default) or F32 (asked for explicitly, may be refused) */
    if (b && b->dtype != dt && b->dtype != NGPT_DTYPE_F32) return false;
    /* cuBLASLt's alignment preferences cover A, B, C and D but not the epilogue's bias: the
     * heuristic may pick a kernel that loads the bias 16 bytes at a time, which faults with a
     * misaligned address (a sticky error: the context is lost) on a bias view that is not
     * (PyTorch falls back to its unfused addmm for the same reason). Such a bias takes the
     * cuBLAS path. */
    if (b && align_of(b->data) < 16) return false;
    lt_key key;
    memset(&key, 0, sizeof key);
    key.M = M, key.N = N, key.K = K;
    key.dt = dt;
    key.bias_dt = b ? (int64_t)b->dtype : -1;
    key.align[0] = align_of(x->data);
    key.align[1] = align_of(w->data);
    key.align[2] = align_of(y->data);
    key.align[3] = b ? align_of(b->data) : 0;
    struct nx_cuda_lt_plan *pl = lt_plan_get(be, &key, b ? b->data : NULL);
    if (!pl) return false;
    cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
    if (b) { /* this call's bias: the plan's descriptor holds the last one */
        const void *bp = b->data;
        s = cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp);
    }
    const float alpha = 1.0f, beta = 0.0f;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmul(c->lt, pl->desc, &alpha, w->data, pl->a, x->data, pl->b, &beta, y->data, pl->c, y->data,
                           pl->c, &pl->algo, c->blas_ws, NX_CUDA_BLAS_WS_BYTES, c->stream);
    if (s != CUBLAS_STATUS_SUCCESS) {
        (void)cudaGetLastError(); /* a failed launch must not be reported by the next kernel's check */
        lt_log_fallback(be, &key, "matmul failed on", s);
        lt_plan_clear(pl); /* not ok: this shape stays on the cuBLAS path */
        return false;
    }
    return true;
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
    if (lt_linear(be, y, x, w, b, M, N, K)) return NGPT_OK;
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
