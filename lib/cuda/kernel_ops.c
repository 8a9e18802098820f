/* kernel_ops.c — the ops that run hand-written kernels (the kernels/ .cu files, through kernels.h), plus
 * concat/slice as strided cudaMemcpy2DAsync. Arguments are already validated by ops.c; this
 * file only flattens shapes into the launchers' integers and maps errors. */
#include "cuda_internal.h"

#include <stdio.h>

#define STREAM(be) (nx_cuda_of(be)->stream)
#define KTRY(op, fn, args) NX_TRY(nx_cuda_check(fn args, op, #fn))

static int64_t last_dim(const nx_tensor *t) { return t->rank ? t->ne[t->rank - 1] : 1; }
static int64_t rows_of(const nx_tensor *t)
{
    int64_t c = last_dim(t);
    return c ? nx_numel(t) / c : 0;
}

/* Single-head attention with a head dim beyond the flash kernels' NXK_ATTN_MAX_D (the SD VAE's
 * mid-block attention: one head of width 512 over h*w positions), unmasked and non-causal,
 * through cuBLAS: scores F32 [B, Sq, Skv] = scale q k^T (F32 accumulate), softmax in F32, the
 * probabilities rounded to the activation dtype (as eager PyTorch feeds them to the second
 * bmm), out = P v. Memory: B Sq Skv (8 + dtype size) bytes of scratch (4096^2: 160 MiB in F16). */
static ngpt_status attention_gemm(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                                  const nx_tensor *v, float scale)
{
    static const char op[] = "attention";
    int64_t B = q->ne[0], Sq = q->ne[1], D = q->ne[3], Skv = k->ne[1];
    ngpt_dtype dt = q->dtype;
    size_t n = (size_t)(B * Sq * Skv);
    void *sc = NULL, *pf = NULL, *pd = NULL;
    ngpt_status st = nx_cuda_tmp_alloc(be, &sc, n * 4, op);
    if (st == NGPT_OK) st = nx_cuda_tmp_alloc(be, &pf, n * 4, op);
    if (st == NGPT_OK && dt != NGPT_DTYPE_F32) st = nx_cuda_tmp_alloc(be, &pd, n * nx_dtype_size(dt), op);
    if (st == NGPT_OK)
        st = nx_cuda_gemm_typed(be, op, q->data, k->data, dt, sc, NGPT_DTYPE_F32, B, Sq, Skv, D, Sq * D, Skv * D, false,
                                true, scale);
    if (st == NGPT_OK)
        st = nx_cuda_check(nxk_softmax(pf, sc, NXK_F32, B * Sq, Skv, 1.0f, STREAM(be)), op, "nxk_softmax");
    if (st == NGPT_OK && pd)
        st = nx_cuda_check(nxk_cast(pd, (int)dt, pf, NXK_F32, (int64_t)n, STREAM(be)), op, "nxk_cast");
    if (st == NGPT_OK)
        st = nx_cuda_gemm_typed(be, op, pd ? pd : pf, v->data, dt, out->data, dt, B, Sq, D, Skv, Sq * Skv, Skv * D, false,
                                false, 1.0f);
    nx_cuda_tmp_free(be, sc);
    nx_cuda_tmp_free(be, pf);
    nx_cuda_tmp_free(be, pd);
    return st;
}

ngpt_status nx_cuda_attention(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                              const nx_tensor *v, const nx_tensor *mask, float scale, bool causal)
{
    if (q->ne[3] > NXK_ATTN_MAX_D) {
        if (q->ne[2] == 1 && k->ne[2] == 1 && !mask && !causal) return attention_gemm(be, out, q, k, v, scale);
        return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: attention: head dim %lld > %d is supported single-head, unmasked "
                      "and non-causal only", (long long)q->ne[3], NXK_ATTN_MAX_D);
    }
    for (int i = 0; i < 4; i++)
        if (q->ne[i] > INT32_MAX || k->ne[i] > INT32_MAX)
            return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: attention: dimension beyond 2^31");
    nxk_attn_params p = {
        .q = q->data, .k = k->data, .v = v->data, .out = out->data,
        .mask = mask ? (const float *)mask->data : NULL,
        .B = (int)q->ne[0], .Sq = (int)q->ne[1], .H = (int)q->ne[2], .D = (int)q->ne[3],
        .Skv = (int)k->ne[1], .Hkv = (int)k->ne[2],
        .scale = scale, .causal = causal ? 1 : 0, .dt = (int)q->dtype,
    };
    /* [Sq, Skv] is shared by the batch; [B, Sq, Skv] / [B, 1, Sq, Skv] is per batch item
     * (a batch dim of 1 broadcasts too) */
    p.mask_bstride = 0;
    if (mask && mask->rank >= 3 && mask->ne[0] > 1) p.mask_bstride = (int64_t)p.Sq * p.Skv;
    if (p.B == 0 || p.Sq == 0 || p.H == 0) return NGPT_OK;
    size_t split = nx_cuda_of(be)->attn_split ? nxk_attention_decode_scratch(&p) : 0;
    if (split) { /* a decode step: keys spread over many blocks (kernels/attention_decode.cu) */
        void *scratch = NULL;
        NX_TRY(nx_cuda_tmp_alloc(be, &scratch, split, "attention"));
        ngpt_status st = nx_cuda_check(nxk_attention_decode(&p, scratch, STREAM(be)), "attention", "nxk_attention_decode");
        nx_cuda_tmp_free(be, scratch);
        return st;
    }
    KTRY("attention", nxk_attention, (&p, STREAM(be)));
    return NGPT_OK;
}

/* One query over the first len[0] keys: the decode kernel with the length read on the device. */
ngpt_status nx_cuda_attention_len(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                                  const nx_tensor *v, const nx_tensor *len, float scale)
{
    for (int i = 0; i < 4; i++)
        if (q->ne[i] > INT32_MAX || k->ne[i] > INT32_MAX)
            return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: attention_len: dimension beyond 2^31");
    nxk_attn_params p = {
        .q = q->data, .k = k->data, .v = v->data, .out = out->data,
        .B = (int)q->ne[0], .Sq = 1, .H = (int)q->ne[2], .D = (int)q->ne[3],
        .Skv = (int)k->ne[1], .Hkv = (int)k->ne[2],
        .scale = scale, .causal = 0, .dt = (int)q->dtype, .kv_len = (const int32_t *)len->data,
    };
    if (p.B == 0 || p.H == 0) return NGPT_OK;
    const size_t bytes = nxk_attention_decode_scratch(&p);
    if (!bytes)
        return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: attention_len: head dim %d (the decode kernel has 16, 32, 64, 80, "
                      "96 and 128)", p.D);
    void *scratch = NULL;
    NX_TRY(nx_cuda_tmp_alloc(be, &scratch, bytes, "attention_len"));
    ngpt_status st = nx_cuda_check(nxk_attention_decode(&p, scratch, STREAM(be)), "attention_len", "nxk_attention_decode");
    nx_cuda_tmp_free(be, scratch);
    return st;
}

ngpt_status nx_cuda_set_rows(nx_backend *be, nx_tensor *dst, const nx_tensor *src, const nx_tensor *pos)
{
    KTRY("set_rows", nxk_set_rows, (dst->data, src->data, (int)nx_dtype_size(dst->dtype), pos->data, src->ne[0],
                                    src->ne[1], dst->ne[0], STREAM(be)));
    return NGPT_OK;
}

bool nx_cuda_attention_len_head_dim(int64_t d)
{
    return d > 0 && d <= INT32_MAX && nxk_attention_decode_head_dim((int)d);
}

void nx_cuda_set_attention_split(nx_backend *be, bool on)
{
    if (be && be->kind == NGPT_BACKEND_CUDA) nx_cuda_of(be)->attn_split = on;
}

ngpt_status nx_cuda_rms_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, float eps)
{
    KTRY("rms_norm", nxk_rms_norm, (y->data, x->data, (int)x->dtype, w ? w->data : NULL, w ? (int)w->dtype : 0,
                                    rows_of(x), last_dim(x), eps, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_rms_norm_add(nx_backend *be, nx_tensor *y, nx_tensor *x, const nx_tensor *r, const nx_tensor *w,
                                 float eps)
{
    KTRY("rms_norm_add", nxk_rms_norm_add, (y->data, x->data, r->data, (int)x->dtype, w ? w->data : NULL,
                                            w ? (int)w->dtype : 0, rows_of(x), last_dim(x), eps, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_layer_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                               const nx_tensor *b, float eps)
{
    KTRY("layer_norm", nxk_layer_norm, (y->data, x->data, (int)x->dtype, w ? w->data : NULL, w ? (int)w->dtype : 0,
                                        b ? b->data : NULL, b ? (int)b->dtype : 0, rows_of(x), last_dim(x), eps,
                                        STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_group_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                               const nx_tensor *b, int groups, float eps, unsigned flags)
{
    const int silu = (flags & NX_GN_SILU) ? 1 : 0;
    void *scratch = NULL;
    ngpt_status st;
    if (flags & NX_GN_CHANNELS_LAST) {
        const int64_t N = x->ne[0], C = x->ne[x->rank - 1];
        const int64_t S = (N != 0 && C != 0) ? nx_numel(x) / (N * C) : 0;
        if (groups > NXK_GN_CL_MAX_GROUPS)
            return nx_err(NGPT_ERR_UNSUPPORTED, "cuda: group_norm: channels last with %d groups (at most %d)", groups,
                          NXK_GN_CL_MAX_GROUPS);
        if (N == 0 || S == 0 || C == 0) return NGPT_OK; /* empty */
        const size_t bytes = nxk_group_norm_cl_scratch(N, C, S, groups);
        NX_TRY(nx_cuda_tmp_alloc(be, &scratch, bytes, "group_norm"));
        st = nx_cuda_check(nxk_group_norm_cl(y->data, x->data, (int)x->dtype, w ? w->data : NULL, w ? (int)w->dtype : 0,
                                             b ? b->data : NULL, b ? (int)b->dtype : 0, N, C, S, groups, eps, silu,
                                             scratch, STREAM(be)),
                           "group_norm", "nxk_group_norm_cl");
        nx_cuda_tmp_free(be, scratch);
        return st;
    }
    int64_t N = x->ne[0], C = x->ne[1];
    int64_t S = (N != 0 && C != 0) ? nx_numel(x) / (N * C) : 0;
    int64_t parts = nxk_group_norm_parts(C, S, groups);
    if (parts > 0 && N > 0) NX_TRY(nx_cuda_tmp_alloc(be, &scratch, (size_t)(N * groups * parts) * 2 * sizeof(float), "group_norm"));
    st = nx_cuda_check(nxk_group_norm(y->data, x->data, (int)x->dtype, w ? w->data : NULL, w ? (int)w->dtype : 0,
                                      b ? b->data : NULL, b ? (int)b->dtype : 0, N, C, S, groups, eps, silu, scratch,
                                      STREAM(be)),
                       "group_norm", "nxk_group_norm");
    nx_cuda_tmp_free(be, scratch);
    return st;
}

ngpt_status nx_cuda_rope(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *pos, int n_rot,
                         float theta, nx_rope_mode mode)
{
    KTRY("rope", nxk_rope, (y->data, x->data, (int)x->dtype, (const int32_t *)pos->data, x->ne[0], x->ne[1], x->ne[2],
                            x->ne[3], n_rot, theta, (int)mode, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_softmax(nx_backend *be, nx_tensor *y, const nx_tensor *x, float scale)
{
    KTRY("softmax", nxk_softmax, (y->data, x->data, (int)x->dtype, rows_of(x), last_dim(x), scale, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_unary(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_unary op, float param)
{
    KTRY("unary", nxk_unary, (y->data, x->data, (int)x->dtype, nx_numel(x), (int)op, param, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_binary(nx_backend *be, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, nx_binary op)
{
    nxk_bcast bc = {0};
    bc.rank = y->rank;
    int64_t sa = 1, sb = 1;
    for (int d = y->rank - 1; d >= 0; d--) {
        bc.ne[d] = y->ne[d];
        int da = d - (y->rank - a->rank), db = d - (y->rank - b->rank);
        int64_t na = da >= 0 ? a->ne[da] : 1, nb = db >= 0 ? b->ne[db] : 1;
        bc.sa[d] = na == 1 ? 0 : sa;
        bc.sb[d] = nb == 1 ? 0 : sb;
        sa *= na;
        sb *= nb;
    }
    if (y->rank == 0) {  /* scalars */
        bc.rank = 1;
        bc.ne[0] = 1;
        bc.sa[0] = bc.sb[0] = 0;
    }
    KTRY("binary", nxk_binary, (y->data, a->data, b->data, (int)y->dtype, &bc, (int)op, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_scale(nx_backend *be, nx_tensor *y, const nx_tensor *x, float alpha, float beta)
{
    KTRY("scale", nxk_scale, (y->data, x->data, (int)x->dtype, nx_numel(x), alpha, beta, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_glu(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_unary act, bool gate_first)
{
    KTRY("glu", nxk_glu, (y->data, x->data, (int)x->dtype, rows_of(y), last_dim(y), (int)act, gate_first ? 1 : 0,
                          STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_get_rows(nx_backend *be, nx_tensor *y, const nx_tensor *table, const nx_tensor *ids)
{
    nx_cuda *c = nx_cuda_of(be);
    int64_t n = nx_numel(ids), D = table->ne[1], V = table->ne[0];
    if (n == 0) return NGPT_OK;
    if (c->capturing) { /* recorded (ImageBind's class-token rows): no flag read back, see ops.h */
        KTRY("get_rows", nxk_get_rows, (y->data, (int)y->dtype, table->data, (int)table->dtype, (const int32_t *)ids->data,
                                        n, D, V, c->d_flag, c->stream));
        return NGPT_OK;
    }
    int32_t none = INT32_MAX, bad = INT32_MAX;
    CU_TRY("get_rows", cudaMemcpyAsync, (c->d_flag, &none, sizeof none, cudaMemcpyHostToDevice, c->stream));
    KTRY("get_rows", nxk_get_rows, (y->data, (int)y->dtype, table->data, (int)table->dtype, (const int32_t *)ids->data,
                                    n, D, V, c->d_flag, c->stream));
    /* ids live on the device: the out-of-range check costs one small download and a sync */
    CU_TRY("get_rows", cudaMemcpyAsync, (&bad, c->d_flag, sizeof bad, cudaMemcpyDeviceToHost, c->stream));
    CU_TRY("get_rows", cudaStreamSynchronize, (c->stream));
    if (bad != INT32_MAX) {
        int32_t id = 0;
        CU_TRY("get_rows", cudaMemcpy, (&id, (const int32_t *)ids->data + bad, sizeof id, cudaMemcpyDeviceToHost));
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "get_rows: id %d at position %d is outside [0, %lld)", (int)id, (int)bad,
                      (long long)V);
    }
    return NGPT_OK;
}

/* Copy src [outer, src_w] bytes into dst [outer, dst_w] at byte column col. */
static ngpt_status copy_2d(nx_backend *be, const char *op, void *dst, size_t dst_w, size_t col, const void *src,
                           size_t src_w, size_t width, size_t src_col, size_t outer)
{
    if (!width || !outer) return NGPT_OK;
    CU_TRY(op, cudaMemcpy2DAsync, ((char *)dst + col, dst_w, (const char *)src + src_col, src_w, width, outer,
                                   cudaMemcpyDeviceToDevice, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_concat(nx_backend *be, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, int axis)
{
    size_t es = nx_dtype_size(y->dtype);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= y->ne[i];
    for (int i = axis + 1; i < y->rank; i++) inner *= y->ne[i];
    size_t wa = (size_t)(a->ne[axis] * inner) * es, wb = (size_t)(b->ne[axis] * inner) * es, wy = wa + wb;
    NX_TRY(copy_2d(be, "concat", y->data, wy, 0, a->data, wa, wa, 0, (size_t)outer));
    NX_TRY(copy_2d(be, "concat", y->data, wy, wa, b->data, wb, wb, 0, (size_t)outer));
    return NGPT_OK;
}

ngpt_status nx_cuda_slice(nx_backend *be, nx_tensor *y, const nx_tensor *x, int axis, int64_t start)
{
    size_t es = nx_dtype_size(y->dtype);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= x->ne[i];
    for (int i = axis + 1; i < x->rank; i++) inner *= x->ne[i];
    size_t wx = (size_t)(x->ne[axis] * inner) * es, wy = (size_t)(y->ne[axis] * inner) * es;
    return copy_2d(be, "slice", y->data, wy, 0, x->data, wx, wy, (size_t)(start * inner) * es, (size_t)outer);
}

ngpt_status nx_cuda_permute(nx_backend *be, nx_tensor *y, const nx_tensor *x, const int *perm)
{
    KTRY("permute", nxk_permute, (y->data, x->data, (int)nx_dtype_size(x->dtype), x->rank, x->ne, perm, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_cast(nx_backend *be, nx_tensor *y, const nx_tensor *x)
{
    KTRY("cast", nxk_cast, (y->data, (int)y->dtype, x->data, (int)x->dtype, nx_numel(x), STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_resize(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_resize_mode mode, bool align_corners,
                           bool channels_last)
{
    if (channels_last)
        KTRY("resize", nxk_resize, (y->data, x->data, (int)x->dtype, x->ne[0], x->ne[1], x->ne[2], x->ne[3], y->ne[1],
                                    y->ne[2], (int)mode, align_corners ? 1 : 0, STREAM(be)));
    else
        KTRY("resize", nxk_resize, (y->data, x->data, (int)x->dtype, x->ne[0] * x->ne[1], x->ne[2], x->ne[3], 1,
                                    y->ne[2], y->ne[3], (int)mode, align_corners ? 1 : 0, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_argmax(nx_backend *be, nx_tensor *y, const nx_tensor *x)
{
    KTRY("argmax", nxk_argmax, ((int32_t *)y->data, x->data, (int)x->dtype, rows_of(x), last_dim(x), STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_sched_step(nx_backend *be, const nx_sched_step *p, nx_tensor *x, const nx_tensor *eps,
                               const nx_tensor *noise, nx_tensor *const *slot)
{
    float *s[NX_SCHED_SLOTS];
    for (int j = 0; j < NX_SCHED_SLOTS; j++) s[j] = slot[j] ? slot[j]->data : NULL;
    KTRY("sched_step", nxk_sched_step, (p, eps->data, x->data, noise ? noise->data : NULL, s, STREAM(be)));
    return NGPT_OK;
}

ngpt_status nx_cuda_timestep_embedding(nx_backend *be, nx_tensor *y, const nx_tensor *t, const nx_timestep_params *p)
{
    KTRY("timestep_embedding", nxk_timestep_embedding, (y->data, (int)y->dtype, t->data, t->ne[0], p, STREAM(be)));
    return NGPT_OK;
}
