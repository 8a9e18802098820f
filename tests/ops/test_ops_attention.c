/* test_ops_attention.c — CPU flash attention against a naive double softmax(QK^T * scale +
 * mask) V. Tolerance: 1e-5 absolute + 1e-5 relative (F32 accumulation, a polynomial exp with
 * ~2 ulp, inputs in [-1, 1] so outputs are convex combinations of V within [-1, 1]). Rows whose
 * keys are all hidden must be exactly 0 (documented behaviour). */
#include "ops_test_util.h"

static test_rng rng = {0x0123456789abcdefull};
/* BF16 compute (nx_cpu_set_bf16_compute): on a CPU with AVX512-BF16 the tiles (not the row
 * path) take q * scale, K, V and the probabilities in BF16 with F32 accumulation */
static bool g_bf16;

static float bf16_round(float x)
{
    return nx_bf16_to_f32(nx_f32_to_bf16(x));
}

static void ref_attention(const float *q, const float *k, const float *v, const float *mask, int64_t mask_bs,
                          int64_t B, int64_t Sq, int64_t Skv, int64_t H, int64_t Hkv, int64_t D, double scale,
                          int causal, float *out)
{
    double *s = malloc(sizeof(double) * (size_t)(Skv + 1));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            int64_t hk = h / (H / Hkv);
            for (int64_t i = 0; i < Sq; i++) {
                double mx = -INFINITY;
                for (int64_t j = 0; j < Skv; j++) {
                    double d = 0;
                    for (int64_t e = 0; e < D; e++)
                        d += (double)q[((b * Sq + i) * H + h) * D + e] * k[((b * Skv + j) * Hkv + hk) * D + e];
                    d *= scale;
                    if (mask) d += mask[b * mask_bs + i * Skv + j];
                    if (causal && j > i + Skv - Sq) d = -INFINITY;
                    s[j] = d;
                    if (d > mx) mx = d;
                }
                double l = 0;
                for (int64_t j = 0; j < Skv; j++) {
                    s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx);
                    l += s[j];
                }
                for (int64_t e = 0; e < D; e++) {
                    double o = 0;
                    for (int64_t j = 0; j < Skv; j++) o += s[j] * v[((b * Skv + j) * Hkv + hk) * D + e];
                    out[((b * Sq + i) * H + h) * D + e] = l > 0 ? (float)(o / l) : 0.0f;
                }
            }
        }
    free(s);
}

/* mask_kind: 0 none, 1 [Sq, Skv], 2 [B, Sq, Skv], 3 [B, 1, Sq, Skv]; with_inf puts -inf
 * entries (and one fully -inf row) into the mask. */
static void check_attn(int64_t B, int64_t Sq, int64_t Skv, int64_t H, int64_t Hkv, int64_t D, int causal, int mask_kind,
                       int with_inf)
{
    size_t nq = (size_t)(B * Sq * H * D), nk = (size_t)(B * Skv * Hkv * D);
    int64_t mb = mask_kind >= 2 ? B : 1;
    size_t nm = (size_t)(mb * Sq * Skv);
    float *q = malloc(4 * nq), *k = malloc(4 * nk), *v = malloc(4 * nk), *m = malloc(4 * nm + 4);
    float *out = malloc(4 * nq), *want = malloc(4 * nq);
    test_fill(&rng, q, nq, -1, 1);
    test_fill(&rng, k, nk, -1, 1);
    test_fill(&rng, v, nk, -1, 1);
    test_fill(&rng, m, nm, -2, 2);
    if (with_inf) {
        for (size_t i = 0; i < nm; i += 3) m[i] = -INFINITY;
        for (int64_t j = 0; j < Skv; j++) m[(Sq / 2) * Skv + j] = -INFINITY; /* a fully masked row */
    }
    for (size_t i = 0; i < nq; i++) out[i] = NAN;
    float scale = 1.0f / sqrtf((float)D);
    int64_t qs[4] = {B, Sq, H, D}, ks[4] = {B, Skv, Hkv, D};
    int64_t ms[4] = {B, 1, Sq, Skv};
    nx_tensor tq = nx_view(NGPT_DTYPE_F32, 4, qs, q, t_be), tk = nx_view(NGPT_DTYPE_F32, 4, ks, k, t_be);
    nx_tensor tv = nx_view(NGPT_DTYPE_F32, 4, ks, v, t_be), to = nx_view(NGPT_DTYPE_F32, 4, qs, out, t_be);
    nx_tensor tm;
    if (mask_kind == 1) tm = nx_view(NGPT_DTYPE_F32, 2, ms + 2, m, t_be);
    else if (mask_kind == 2) tm = nx_view(NGPT_DTYPE_F32, 3, (int64_t[]){B, Sq, Skv}, m, t_be);
    else tm = nx_view(NGPT_DTYPE_F32, 4, ms, m, t_be);
    nx_cpu_set_bf16_compute(t_be, g_bf16);
    CHECK_OK(nx_cpu_attention(t_be, &to, &tq, &tk, &tv, mask_kind ? &tm : NULL, scale, causal));
    nx_cpu_set_bf16_compute(t_be, false);
    /* the BF16 tiles: the reference on the BF16 operands (exact scores); the probabilities'
     * rounding before P V remains, 2^-9 relative per term of a convex combination of |v| <= 1 */
    const bool bf16_path = g_bf16 && nx_cpu_has_avx512_bf16() && Sq > 3 && Skv > 16 && !(H == 1 && D >= 256);
    float tol = 1e-5f;
    double rscale = scale;
    if (bf16_path) {
        for (size_t i = 0; i < nq; i++) q[i] = bf16_round(q[i] * scale);
        for (size_t i = 0; i < nk; i++) k[i] = bf16_round(k[i]), v[i] = bf16_round(v[i]);
        rscale = 1.0;
        tol = 4e-3f;
    }
    ref_attention(q, k, v, mask_kind ? m : NULL, mask_kind >= 2 ? Sq * Skv : 0, B, Sq, Skv, H, Hkv, D, rscale, causal,
                  want);
    char what[160];
    snprintf(what, sizeof what, "attention B=%lld Sq=%lld Skv=%lld H=%lld Hkv=%lld D=%lld causal=%d mask=%d inf=%d",
             (long long)B, (long long)Sq, (long long)Skv, (long long)H, (long long)Hkv, (long long)D, causal, mask_kind,
             with_inf);
    test_close(what, out, want, nq, tol, tol);
    if (bf16_path) { /* and not the F32 result */
        float *f = malloc(4 * nq);
        nx_tensor tf = nx_view(NGPT_DTYPE_F32, 4, qs, f, t_be);
        CHECK_OK(nx_cpu_attention(t_be, &tf, &tq, &tk, &tv, mask_kind ? &tm : NULL, (float)rscale, causal));
        size_t differ = 0;
        for (size_t i = 0; i < nq; i++) differ += f[i] != out[i];
        CHECK_MSG(differ > 0, "%s: BF16 equals F32", what);
        free(f);
    }
    free(q), free(k), free(v), free(m), free(out), free(want);
}

static void test_attention_dims(void)
{
    const int64_t Ds[5] = {40, 64, 80, 128, 160};
    for (int d = 0; d < 5; d++) {
        check_attn(1, 77, 77, 2, 2, Ds[d], 0, 0, 0);   /* CLIP-like, non causal */
        check_attn(2, 33, 33, 2, 2, Ds[d], 1, 0, 0);   /* prefill, causal */
        check_attn(1, 1, 100, 4, 2, Ds[d], 1, 0, 0);   /* decode with KV cache, GQA */
    }
}

static void test_attention_shapes(void)
{
    check_attn(1, 5, 130, 4, 1, 64, 1, 0, 0);    /* Sq < Skv, causal, MQA */
    check_attn(2, 70, 200, 6, 3, 40, 1, 0, 0);   /* several q and k tiles, GQA */
    check_attn(1, 40, 20, 2, 2, 16, 1, 0, 0);    /* Sq > Skv: early rows see nothing -> 0 */
    check_attn(2, 37, 65, 2, 1, 80, 0, 1, 0);    /* shared mask */
    check_attn(2, 37, 65, 2, 2, 24, 0, 2, 0);    /* per-batch mask */
    check_attn(2, 9, 64, 3, 3, 8, 1, 3, 0);      /* [B,1,Sq,Skv] + causal */
    check_attn(2, 33, 70, 2, 2, 128, 0, 2, 1);   /* -inf entries and a fully masked row */
    check_attn(1, 64, 64, 1, 1, 3, 1, 1, 1);     /* tiny odd D */
    check_attn(1, 1, 1, 1, 1, 1, 0, 0, 0);
    check_attn(2, 70, 90, 1, 1, 256, 0, 0, 0);   /* one wide head: the GEMM path (the VAE's) */
    check_attn(1, 150, 8192, 1, 1, 256, 0, 0, 0); /* ... over two blocks of query rows */
    check_attn(1, 40, 90, 1, 1, 256, 1, 0, 0);   /* causal: flash tiles */
}

/* 1-3 query rows: the row path (AVX-512 hosts) — decode steps, the audio projector's one query */
static void test_attention_few_rows(void)
{
    check_attn(1, 1, 517, 32, 32, 128, 1, 0, 0); /* LLaMA-7B decode at 517 positions */
    check_attn(2, 2, 70, 4, 2, 40, 1, 0, 0);     /* two rows, causal, GQA */
    check_attn(1, 3, 2, 2, 2, 16, 1, 0, 0);      /* Sq > Skv: the first row sees nothing -> 0 */
    check_attn(2, 3, 33, 2, 1, 24, 0, 1, 0);     /* shared mask */
    check_attn(2, 2, 33, 2, 2, 80, 0, 2, 1);     /* -inf entries and a fully masked row */
    check_attn(2, 1, 47, 3, 3, 17, 1, 3, 0);     /* [B,1,Sq,Skv] + causal, D 17 */
    check_attn(1, 1, 1, 1, 1, 3, 0, 0, 0);       /* one key, tiny D */
    check_attn(1, 1, 77, 4, 4, 64, 0, 0, 0);     /* cross-attention of one query (audio projector) */
    /* up to 16 keys, any number of rows: the row path too (Zeroscope's temporal attention) */
    check_attn(3, 8, 8, 5, 5, 64, 0, 0, 0);      /* 8 frames */
    check_attn(1, 9, 16, 2, 1, 24, 1, 1, 1);     /* causal + shared mask with -inf, MQA */
    check_attn(2, 20, 5, 2, 2, 17, 1, 2, 0);     /* Sq > Skv, causal: early rows -> 0 */
}

/* BF16 compute: the tiles' BF16 path where the CPU has AVX512-BF16 (else F32, as above) */
static void test_attention_bf16(void)
{
    g_bf16 = true;
    check_attn(2, 300, 300, 8, 8, 40, 0, 0, 0);  /* SD's 32² self-attention shape, smaller */
    check_attn(2, 70, 77, 8, 8, 80, 0, 0, 0);    /* cross-attention over 77 tokens */
    check_attn(1, 77, 77, 2, 2, 64, 1, 0, 0);    /* causal */
    check_attn(2, 37, 65, 2, 2, 24, 0, 2, 0);    /* per-batch mask */
    check_attn(2, 33, 70, 2, 2, 128, 0, 2, 1);   /* -inf entries and a fully masked row */
    check_attn(2, 70, 200, 6, 3, 17, 1, 0, 0);   /* odd D, GQA, partial tiles */
    check_attn(1, 64, 64, 1, 1, 3, 1, 1, 1);     /* tiny odd D */
    check_attn(1, 5, 130, 4, 1, 160, 1, 0, 0);   /* D 160: three 64-wide column blocks */
    check_attn(1, 2, 40, 2, 2, 40, 0, 0, 0);     /* the row path: F32 */
    g_bf16 = false;
}

int main(void)
{
    if (!ops_test_init(2)) {
        fprintf(stderr, "cannot create the CPU backend: %s\n", ngpt_last_error());
        return 1;
    }
    RUN(test_attention_dims);
    RUN(test_attention_few_rows);
    RUN(test_attention_shapes);
    RUN(test_attention_bf16);
    FOR_NARROWER_ISAS {
        RUN(test_attention_dims);
        RUN(test_attention_shapes);
        RUN(test_attention_bf16);
    }
    ops_test_fini();
    return test_done();
}
