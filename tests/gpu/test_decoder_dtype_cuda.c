/* test_decoder_dtype_cuda.c — ngpt_decoder_params.compute_dtype on the CUDA backend (suite 'gpu';
 * exits 77 without a usable GPU or without the golden models).
 *
 * On the golden SD model (../shared/golden/models/sd-a, or $NGPT_GOLDEN_DIR/models/sd-a: a tiny
 * UNet2DConditionModel + AutoencoderKL with the SD 1.5 layout) the UNet, the VAE decode and a
 * short ngpt_decoder_generate run in F32 on the CPU (the reference: the golden cases pin it to
 * diffusers) and with compute_dtype F32, F16 and BF16 on CUDA; the outputs (F32 across the API in
 * every case) are compared by relative L2 error ||got - ref|| / ||ref||.
 *
 * Bounds, and why. Under compute_dtype F16/BF16 the weights are rounded once to the dtype and
 * every op's output is rounded to it (the ops accumulate in F32 inside: cuBLAS/cuDNN compute
 * type 32F, the hand-written kernels in float). One rounding has a relative error of at most
 * u = 2^-11 (F16) or 2^-8 (BF16), about u/sqrt(3) RMS. These errors are independent from op to
 * op, so along the network they add as a random walk: ~ sqrt(L) u/sqrt(3) for L rounding stages
 * on the longest path. The golden UNet has about 150 of them (conv_in, 4 down blocks of resnet +
 * transformer, mid, 4 up blocks of 2 resnets + transformers, each resnet ~6 stages, each
 * transformer block ~20), its VAE decoder about 60; residual adds and the norms keep the relative
 * error from compounding multiplicatively, and softmax/SiLU/GroupNorm have condition numbers of
 * order 1 on these activations. That gives ~3.5e-3 (F16) and ~2.8e-2 (BF16) for the UNet; the
 * bounds allow a further factor ~3 for the ill-conditioned corners (near-cancelling GroupNorm
 * groups, attention rows with one dominating key):
 *     one UNet or VAE pass:  F16 1e-2, BF16 8e-2.
 * CUDA F32 against the CPU only reorders F32 sums (and F32 has u = 2^-24): 1e-4.
 * generate (3 PNDM steps, CFG 7.5): the guidance combine u + g (c - u) carries the errors of u and
 * c with weights (1 - g) and g, sqrt(6.5^2 + 7.5^2) ~ 10 times a pass's error relative to |eps|,
 * while the latents it updates are ~ |eps| in size and the image goes through the VAE and the
 * clamp (which only shrinks differences); three steps add up to ~sqrt(3) more:
 *     image after generate:  F16 5e-2, BF16 3e-1 (F32 on CUDA: 1e-3).
 * Also compared: the 3-D UNet (zeroscope-a; twice the one-pass bounds for twice the depth) and the
 * CLIP text encoder (tests/golden/models/clip-a; the one-pass bounds) and the safety checker's
 * scores (tests/golden/models/sd-b-safety). Two decoders of one CUDA context on two threads at
 * once (the context's device lock) give what each gives alone.
 * The errors measured are printed, so the bounds can be tightened from the first GPU runs. */
#include "test.h"

#include "nextgpt.h"
#include "core/dtype.h"
#include "ops/ops.h"

#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_golden[900];
static ngpt_context *g_cpu, *g_gpu;
static ngpt_context *g_gpu_log;  /* another CUDA context: test_cuda_logging_context */

/* ||a - b|| / ||b|| (inf when b is 0 or a has a NaN) */
static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (!(num == num) || den == 0) return INFINITY;
    return sqrt(num / den);
}

static ngpt_tensor f32(int rank, const int64_t *shape, float *data)
{
    ngpt_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = NGPT_DTYPE_F32;
    t.rank = rank;
    for (int i = 0; i < rank; i++) t.shape[i] = shape[i];
    t.data = data;
    return t;
}

/* A decoder from dir on ctx: compute dtype, components (0 = all), NGPT_DECODER_FLAG_* flags. */
static ngpt_decoder *open_dec(ngpt_context *ctx, const char *dir, ngpt_dtype dt, uint32_t comp, uint32_t flags)
{
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.compute_dtype = dt;
    p.components = comp;
    p.flags = flags;
    ngpt_decoder *d = NULL;
    CHECK_OK(ngpt_decoder_create(&d, ctx, dir, &p));
    return d;
}

static ngpt_decoder *open_sd_flags(ngpt_context *ctx, ngpt_dtype dt, uint32_t flags)
{
    char dir[1000];
    snprintf(dir, sizeof dir, "%s/models/sd-a", g_golden);
    return open_dec(ctx, dir, dt, 0, flags);
}

static ngpt_decoder *open_sd(ngpt_context *ctx, ngpt_dtype dt) { return open_sd_flags(ctx, dt, 0); }

typedef struct bounds {
    ngpt_dtype dt;
    double pass, gen;
} bounds;

static const bounds k_bounds[] = {
    {NGPT_DTYPE_F32, 1e-4, 1e-3},
    {NGPT_DTYPE_F16, 1e-2, 5e-2},
    {NGPT_DTYPE_BF16, 8e-2, 3e-1},
};

/* false when the error is over the bound */
static bool check_rel(const char *what, ngpt_dtype dt, const ngpt_tensor *got, const ngpt_tensor *ref, double bound)
{
    CHECK(got->dtype == NGPT_DTYPE_F32 && ref->dtype == NGPT_DTYPE_F32);
    CHECK(ngpt_tensor_numel(got) == ngpt_tensor_numel(ref));
    if (ngpt_tensor_numel(got) != ngpt_tensor_numel(ref) || !got->data || !ref->data) return false;
    double e = rel_l2(got->data, ref->data, (size_t)ngpt_tensor_numel(ref));
    fprintf(stderr, "  %-22s %-4s rel L2 %.3e (bound %.0e)\n", what, ngpt_dtype_name(dt), e, bound);
    CHECK_MSG(e <= bound, "%s in %s: relative L2 error %.3e > %.0e", what, ngpt_dtype_name(dt), e, bound);
    return e <= bound;
}

/* ---- where a failing model leaves the CPU: every op's output recorded (nx_ops_trace) on both
 * backends and compared in order, so one GPU run names the op that goes wrong. */
typedef struct trace_rec {
    const char *op;
    int rank;
    int64_t ne[NX_MAX_DIMS];
    ngpt_dtype dt;
    float *v;  /* NULL for a non-float output or when the copy failed */
} trace_rec;

typedef struct trace_log {
    trace_rec *r;
    int n, cap;
} trace_log;

static void trace_cb(void *user, const char *op, const nx_tensor *y)
{
    trace_log *L = user;
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 256;
        trace_rec *r = realloc(L->r, (size_t)cap * sizeof *r);
        if (!r) return;
        L->r = r, L->cap = cap;
    }
    trace_rec *t = &L->r[L->n++];
    memset(t, 0, sizeof *t);
    t->op = op, t->rank = y->rank, t->dt = y->dtype;
    memcpy(t->ne, y->ne, sizeof t->ne);
    size_t n = (size_t)nx_numel(y), nb = nx_nbytes(y);
    if (y->dtype != NGPT_DTYPE_F32 && y->dtype != NGPT_DTYPE_F16 && y->dtype != NGPT_DTYPE_BF16) return;
    void *raw = malloc(nb ? nb : 1);
    t->v = malloc((n ? n : 1) * sizeof(float));
    if (raw && t->v && nx_tensor_download(y, raw, nb) == NGPT_OK) {
        nx_dtype_to_f32_n(raw, y->dtype, t->v, n);
    } else {
        free(t->v);
        t->v = NULL;
    }
    free(raw);
}

static void trace_free(trace_log *L)
{
    for (int i = 0; i < L->n; i++) free(L->r[i].v);
    free(L->r);
    memset(L, 0, sizeof *L);
}

/* Prints every op with its relative L2 error against the reference run (to stderr, for the log)
 * and, in a TRACE-FIRST line each, the first few whose error is over `jump` and more than twice
 * any earlier op's: where the error enters rather than where it is carried along. */
static void trace_report(const char *what, ngpt_dtype dt, const trace_log *ref, const trace_log *got, double jump)
{
    int shown = 0;
    double worst = 0;
    fprintf(stderr, "  trace %s %s: %d ops on the CPU, %d on CUDA\n", what, ngpt_dtype_name(dt), ref->n, got->n);
    /* casts are skipped on both sides: CUDA converts the F32 inputs to the compute dtype */
    for (int i = 0, j = 0;; i++, j++) {
        while (i < got->n && strcmp(got->r[i].op, "cast") == 0) i++;
        while (j < ref->n && strcmp(ref->r[j].op, "cast") == 0) j++;
        if (i >= got->n || j >= ref->n) break;
        const trace_rec *a = &got->r[i], *b = &ref->r[j];
        char shape[96] = "";
        size_t o = 0;
        for (int d = 0; d < b->rank && o < sizeof shape - 24; d++)
            o += (size_t)snprintf(shape + o, sizeof shape - o, d ? "x%lld" : "%lld", (long long)b->ne[d]);
        size_t na = 1, nb = 1;
        for (int d = 0; d < a->rank; d++) na *= (size_t)a->ne[d];
        for (int d = 0; d < b->rank; d++) nb *= (size_t)b->ne[d];
        if (strcmp(a->op, b->op) != 0 || na != nb) {
            fprintf(stderr, "  trace #%d/%d: the op sequences part (CUDA %s, CPU %s [%s]): stop\n", i, j, a->op, b->op,
                    shape);
            return;
        }
        double e = a->v && b->v ? rel_l2(a->v, b->v, nb) : -1.0;
        /* an error that appears here rather than one carried in from earlier ops */
        bool bad = (e > jump && e > 2 * worst) || e < 0;
        if (e > worst) worst = e;
        fprintf(stderr, "  trace #%-4d %-16s [%s] %s rel L2 %.3e%s\n", j, a->op, shape, ngpt_dtype_name(a->dt), e,
                bad ? "  <--" : "");
        if (bad && shown++ < 6)
            fprintf(stderr, "  TRACE-FIRST %s %s #%d %s [%s] rel L2 %.3e\n", what, ngpt_dtype_name(dt), j, a->op, shape, e);
    }
}

/* UNet on a CFG-shaped batch, VAE decode, and a 3-step generate: CPU F32 vs CUDA in each dtype. */
static void test_sd_dtypes(void)
{
    ngpt_decoder *ref = open_sd(g_cpu, NGPT_DTYPE_F32);
    if (!ref) return;
    test_rng r = {0x5eed5eedull};
    /* UNet: sample [2, 4, 8, 8], timestep 501, encoder_hidden_states [2, 77, 32] */
    static float sample[2 * 4 * 8 * 8], ehs[2 * 77 * 32], lat[1 * 4 * 8 * 8], cond[77 * 32], unc[77 * 32];
    test_fill(&r, sample, sizeof sample / sizeof *sample, -1.5f, 1.5f);
    test_fill(&r, ehs, sizeof ehs / sizeof *ehs, -1.0f, 1.0f);
    test_fill(&r, lat, sizeof lat / sizeof *lat, -1.0f, 1.0f);
    test_fill(&r, cond, sizeof cond / sizeof *cond, -1.0f, 1.0f);
    test_fill(&r, unc, sizeof unc / sizeof *unc, -1.0f, 1.0f);
    float ts = 501.0f;
    int64_t ss[4] = {2, 4, 8, 8}, es[3] = {2, 77, 32}, ls[4] = {1, 4, 8, 8}, cs[3] = {1, 77, 32}, one = 1;
    ngpt_tensor ts_t = f32(1, &one, &ts), s_t = f32(4, ss, sample), e_t = f32(3, es, ehs), l_t = f32(4, ls, lat);
    ngpt_tensor c_t = f32(3, cs, cond), u_t = f32(3, cs, unc);
    ngpt_decode_params gp;
    ngpt_decode_params_default(&gp, sizeof gp);
    gp.num_inference_steps = 3;
    gp.guidance_scale = 7.5f;
    gp.height = gp.width = 64;
    gp.seed = 1234;

    ngpt_tensor ru = {0}, rv = {0}, rg = {0};
    CHECK_OK(ngpt_decoder_unet(ref, &ru, &s_t, &ts_t, &e_t, NULL));
    CHECK_OK(ngpt_decoder_vae_decode(ref, &rv, &l_t));
    CHECK_OK(ngpt_decoder_generate(ref, &rg, NULL, &c_t, &u_t, &gp));
    for (size_t k = 0; k < sizeof k_bounds / sizeof *k_bounds; k++) {
        const bounds *b = &k_bounds[k];
        ngpt_decoder *d = open_sd(g_gpu, b->dt);
        if (!d) continue;
        ngpt_tensor gu = {0}, gv = {0}, gg = {0};
        CHECK_OK(ngpt_decoder_unet(d, &gu, &s_t, &ts_t, &e_t, NULL));
        check_rel("unet", b->dt, &gu, &ru, b->pass);
        CHECK_OK(ngpt_decoder_vae_decode(d, &gv, &l_t));
        check_rel("vae decode", b->dt, &gv, &rv, b->pass);
        CHECK_OK(ngpt_decoder_generate(d, &gg, NULL, &c_t, &u_t, &gp));
        check_rel("generate (3 steps)", b->dt, &gg, &rg, b->gen);
        /* NGPT_DECODER_FLAG_CUDA_GRAPH: steps 2 and 3 replayed from a recording of the same
         * kernels on the same buffers: the same image, and no "not captured" fallback logged */
        ngpt_decoder *dg = open_sd_flags(g_gpu_log, b->dt, NGPT_DECODER_FLAG_CUDA_GRAPH);
        if (dg) {
            ngpt_tensor gr = {0};
            *test_graph_fallbacks() = 0;
            CHECK_OK(ngpt_decoder_generate(dg, &gr, NULL, &c_t, &u_t, &gp));
            check_rel("generate, CUDA graph", b->dt, &gr, &gg, 1e-6);
            CHECK_MSG(*test_graph_fallbacks() == 0, "%s: the step was not recorded as a graph (see the log above)",
                      ngpt_dtype_name(b->dt));
            ngpt_tensor_free(&gr);
            ngpt_decoder_free(dg);
        }
        /* NGPT_DECODER_FLAG_CHANNELS_LAST: the UNet and VAE NHWC end to end, against the CPU's
         * NCHW F32 within the same bounds (and, with the graph flag too, recorded as one). F16
         * and BF16 run channels last without the flag too (nx_decoder_channels_last): there the
         * two decoders are the same path, F32 compares the two layouts. */
        for (int graph = 0; graph < 2; graph++) {
            const uint32_t fl = NGPT_DECODER_FLAG_CHANNELS_LAST | (graph ? NGPT_DECODER_FLAG_CUDA_GRAPH : 0);
            ngpt_decoder *dc = open_sd_flags(g_gpu_log, b->dt, fl);
            if (!dc) continue;
            ngpt_tensor cu = {0}, cv = {0}, cg = {0};
            *test_graph_fallbacks() = 0;
            if (!graph) {
                CHECK_OK(ngpt_decoder_unet(dc, &cu, &s_t, &ts_t, &e_t, NULL));
                check_rel("unet, channels last", b->dt, &cu, &ru, b->pass);
                CHECK_OK(ngpt_decoder_vae_decode(dc, &cv, &l_t));
                check_rel("vae decode, channels last", b->dt, &cv, &rv, b->pass);
            }
            CHECK_OK(ngpt_decoder_generate(dc, &cg, NULL, &c_t, &u_t, &gp));
            check_rel(graph ? "generate, channels last + CUDA graph" : "generate, channels last", b->dt, &cg, &rg, b->gen);
            CHECK_MSG(*test_graph_fallbacks() == 0, "%s channels last: the step was not recorded (see the log above)",
                      ngpt_dtype_name(b->dt));
            ngpt_tensor_free(&cu), ngpt_tensor_free(&cv), ngpt_tensor_free(&cg);
            ngpt_decoder_free(dc);
        }
        ngpt_tensor_free(&gu);
        ngpt_tensor_free(&gv);
        ngpt_tensor_free(&gg);
        ngpt_decoder_free(d);
    }
    ngpt_tensor_free(&ru);
    ngpt_tensor_free(&rv);
    ngpt_tensor_free(&rg);
    ngpt_decoder_free(ref);
}

/* One generate three ways: the CPU in F32 (ref); CUDA in b's dtype (d) within b's generate
 * bound; and CUDA with the step recorded as a graph (dg, on the logging context) against d, with
 * no fallback (dg may be NULL: not compared). */
static void compare_generate(ngpt_decoder *ref, ngpt_decoder *d, ngpt_decoder *dg, const ngpt_tensor *c,
                             const ngpt_tensor *u, const ngpt_decode_params *gp, const bounds *b, const char *name)
{
    ngpt_tensor rg = {0}, gg = {0}, gr = {0};
    char what[128];
    CHECK_OK(ngpt_decoder_generate(ref, &rg, NULL, c, u, gp));
    CHECK_OK(ngpt_decoder_generate(d, &gg, NULL, c, u, gp));
    snprintf(what, sizeof what, "generate, %s", name);
    check_rel(what, b->dt, &gg, &rg, b->gen);
    if (dg) {
        *test_graph_fallbacks() = 0;
        CHECK_OK(ngpt_decoder_generate(dg, &gr, NULL, c, u, gp));
        snprintf(what, sizeof what, "generate, %s, CUDA graph", name);
        check_rel(what, b->dt, &gr, &gg, 1e-6);
        CHECK_MSG(*test_graph_fallbacks() == 0, "%s: the step was not recorded as a graph (see the log above)", what);
    }
    ngpt_tensor_free(&rg), ngpt_tensor_free(&gg), ngpt_tensor_free(&gr);
}

/* The device-side sampler state through whole generate calls (F32, CPU against CUDA), every
 * kind: the k-diffusion samplers divide the UNet input per step (Euler ancestral and KDPM2
 * ancestral draw noise each step, Heun and KDPM2 keep a derivative and a sample across their
 * paired steps), the multistep ones (DPM-Solver++, UniPC, DEIS, LMS) keep their model-output
 * history in device slots, DDPM and DDIM with eta > 0 draw noise, the singlestep DPM-Solver
 * restarts each group from its first sample; runs without guidance (eps [n]). With the graph
 * flag, the per-step divisor and timesteps reach the recorded step through its fixed buffers:
 * the same latents as op by op. The input-scaled samplers also run channels last (NHWC UNet
 * and VAE), with and without the graph, against the CPU. */
static void test_sd_samplers(void)
{
    ngpt_decoder *ref = open_sd(g_cpu, NGPT_DTYPE_F32);
    if (!ref) return;
    ngpt_decoder *d = open_sd(g_gpu, NGPT_DTYPE_F32), *dg = open_sd_flags(g_gpu_log, NGPT_DTYPE_F32, NGPT_DECODER_FLAG_CUDA_GRAPH);
    ngpt_decoder *dc = open_sd_flags(g_gpu, NGPT_DTYPE_F32, NGPT_DECODER_FLAG_CHANNELS_LAST);
    ngpt_decoder *dcg = open_sd_flags(g_gpu_log, NGPT_DTYPE_F32, NGPT_DECODER_FLAG_CHANNELS_LAST | NGPT_DECODER_FLAG_CUDA_GRAPH);
    test_rng r = {0x5a5a5a5aull};
    static float cond[77 * 32], unc[77 * 32];
    test_fill(&r, cond, sizeof cond / sizeof *cond, -1.0f, 1.0f);
    test_fill(&r, unc, sizeof unc / sizeof *unc, -1.0f, 1.0f);
    int64_t cs[3] = {1, 77, 32};
    ngpt_tensor c_t = f32(3, cs, cond), u_t = f32(3, cs, unc);
    static const struct {
        ngpt_scheduler_kind kind;
        float guidance, eta;
        int steps;
        bool scaled;  /* the UNet input divided per step: also run channels last */
        const char *name;
    } cases[] = {
        {NGPT_SCHEDULER_EULER_ANCESTRAL, 7.5f, 0, 4, true, "euler ancestral"},
        {NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 7.5f, 0, 5, false, "dpm-solver++ 2m"},
        {NGPT_SCHEDULER_HEUN, 7.5f, 0, 3, true, "heun"},
        {NGPT_SCHEDULER_EULER_ANCESTRAL, 1.0f, 0, 3, true, "euler ancestral, no guidance"},
        {NGPT_SCHEDULER_EULER, 7.5f, 0, 3, true, "euler"},
        {NGPT_SCHEDULER_LMS, 7.5f, 0, 5, true, "lms"},
        {NGPT_SCHEDULER_KDPM2, 7.5f, 0, 3, true, "kdpm2"},
        {NGPT_SCHEDULER_KDPM2_ANCESTRAL, 7.5f, 0, 3, true, "kdpm2 ancestral"},
        {NGPT_SCHEDULER_UNIPC_MULTISTEP, 7.5f, 0, 5, false, "unipc"},
        {NGPT_SCHEDULER_DEIS_MULTISTEP, 7.5f, 0, 5, false, "deis"},
        {NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, 7.5f, 0, 5, false, "dpm-solver singlestep"},
        {NGPT_SCHEDULER_DDPM, 7.5f, 0, 4, false, "ddpm"},
        {NGPT_SCHEDULER_DDIM, 7.5f, 0.7f, 4, false, "ddim, eta 0.7"},
        {NGPT_SCHEDULER_PNDM, 1.0f, 0, 4, false, "pndm, no guidance"},
    };
    for (size_t i = 0; d && dg && i < sizeof cases / sizeof *cases; i++) {
        ngpt_decode_params gp;
        ngpt_decode_params_default(&gp, sizeof gp);
        gp.num_inference_steps = cases[i].steps;
        gp.guidance_scale = cases[i].guidance;
        gp.scheduler = cases[i].kind;
        gp.eta = cases[i].eta;
        gp.height = gp.width = 64;
        gp.seed = 77 + i;
        compare_generate(ref, d, dg, &c_t, &u_t, &gp, &k_bounds[0], cases[i].name);
        if (cases[i].scaled && dc && dcg) {
            char what[96];
            snprintf(what, sizeof what, "%s, channels last", cases[i].name);
            compare_generate(ref, dc, dcg, &c_t, &u_t, &gp, &k_bounds[0], what);
        }
    }
    ngpt_decoder_free(dcg);
    ngpt_decoder_free(dc);
    ngpt_decoder_free(dg);
    ngpt_decoder_free(d);
    ngpt_decoder_free(ref);
}

/* The audio and video loops with an input-scaled, noise-drawing sampler (Euler ancestral) in
 * each compute dtype against the CPU's F32, and with the step recorded as a graph against op by
 * op: AudioLDM (class-embedding conditioning [1, 24]) and Zeroscope (2 frames). F32 at the
 * smallest sizes (0.64 s, 64x64); F16/BF16 where the deepest level's GroupNorm groups are not a
 * handful of numbers (2.56 s: 8x2 there; 256x256: 4x4, see test_unet3d_dtypes). Three steps
 * of these random-weight models amplify rounding: the CPU's BF16 (GEMM inputs rounded, nothing
 * else) is 7.5e-2 from its F32 on Zeroscope, so the reduced dtypes get twice the SD generate
 * bound; a wrong cast or layout gives errors of order 1. Their shapes and parameters run on the
 * CPU as written here (F32 and the CPU's BF16 through this test with the CPU standing in for the
 * device, 2026-11-29). */
static void test_generate_audio_video(void)
{
    static const struct { const char *model; int rank; int64_t shape[3]; } k_dec[] = {
        {"audioldm-a", 2, {1, 24, 0}},
        {"zeroscope-a", 3, {1, 77, 48}},
    };
    test_rng r = {0xa0d10ull};
    for (size_t m = 0; m < sizeof k_dec / sizeof *k_dec; m++) {
        char dir[1000];
        snprintf(dir, sizeof dir, "%s/models/%s", g_golden, k_dec[m].model);
        ngpt_decoder *ref = open_dec(g_cpu, dir, NGPT_DTYPE_F32, 0, 0);
        static float cond[77 * 48], unc[77 * 48];
        const size_t n = (size_t)(k_dec[m].shape[1] * (k_dec[m].rank == 3 ? k_dec[m].shape[2] : 1));
        test_fill(&r, cond, n, -1.0f, 1.0f);
        test_fill(&r, unc, n, -1.0f, 1.0f);
        ngpt_tensor c_t = f32(k_dec[m].rank, k_dec[m].shape, cond), u_t = f32(k_dec[m].rank, k_dec[m].shape, unc);
        for (size_t k = 0; ref && k < sizeof k_bounds / sizeof *k_bounds; k++) {
            const bounds *b = &k_bounds[k];
            const bool f32_run = b->dt == NGPT_DTYPE_F32;
            const bounds bb = {b->dt, b->pass, f32_run ? b->gen : 2 * b->gen};
            ngpt_decoder *d = open_dec(g_gpu, dir, b->dt, 0, 0);
            ngpt_decoder *dg = open_dec(g_gpu_log, dir, b->dt, 0, NGPT_DECODER_FLAG_CUDA_GRAPH);
            ngpt_decode_params gp;
            ngpt_decode_params_default(&gp, sizeof gp);
            gp.num_inference_steps = 3;
            gp.guidance_scale = 7.5f;
            gp.scheduler = NGPT_SCHEDULER_EULER_ANCESTRAL;
            gp.seed = 5;
            gp.audio_length_s = f32_run ? 0.64 : 2.56;
            gp.height = gp.width = f32_run ? 64 : 256;
            gp.num_frames = 2;
            char what[96];
            snprintf(what, sizeof what, "%s, euler ancestral", k_dec[m].model);
            if (d && dg) compare_generate(ref, d, dg, &c_t, &u_t, &gp, &bb, what);
            ngpt_decoder_free(dg);
            ngpt_decoder_free(d);
        }
        ngpt_decoder_free(ref);
    }
}

static ngpt_decoder *open_comp(ngpt_context *ctx, const char *dir, ngpt_dtype dt, uint32_t comp)
{
    return open_dec(ctx, dir, dt, comp, 0);
}

/* The 3-D UNet (golden zeroscope-a: temporal convs and attention on top of the 2-D blocks, about
 * twice the rounding stages of sd-a's UNet, hence twice the one-pass bounds). */
static void test_unet3d_dtypes(void)
{
    char dir[1000];
    snprintf(dir, sizeof dir, "%s/models/zeroscope-a", g_golden);
    ngpt_decoder *ref = open_comp(g_cpu, dir, NGPT_DTYPE_F32, NGPT_DECODER_UNET);
    if (!ref) return;
    test_rng r = {0x3d3d3dull};
    /* 32x32 latents, not the model's sample_size 8: at 8x8 the deepest level is 1x1, where the
     * GroupNorm of 64 channels in 32 groups normalises pairs of numbers, and a pair close together
     * amplifies any rounding of it without bound. Measured on the CPU: rounding only the inputs to
     * F16 moved the 8x8 output by 9.3e-3 (12x at that GroupNorm, found with nx_ops_trace), and F16
     * compute on the GPU by 0.38; at 32x32 (groups of 32 numbers there) the input rounding moves
     * it by 1.2e-3, as for the SD model. */
    static float sample[1 * 4 * 2 * 32 * 32], ehs[1 * 77 * 48];
    test_fill(&r, sample, sizeof sample / sizeof *sample, -1.5f, 1.5f);
    test_fill(&r, ehs, sizeof ehs / sizeof *ehs, -1.0f, 1.0f);
    float ts = 301.0f;
    int64_t ss[5] = {1, 4, 2, 32, 32}, es[3] = {1, 77, 48}, one = 1;
    ngpt_tensor ts_t = f32(1, &one, &ts), s_t = f32(5, ss, sample), e_t = f32(3, es, ehs), ru = {0};
    CHECK_OK(ngpt_decoder_unet(ref, &ru, &s_t, &ts_t, &e_t, NULL));
    for (size_t k = 0; k < sizeof k_bounds / sizeof *k_bounds; k++) {
        ngpt_decoder *d = open_comp(g_gpu, dir, k_bounds[k].dt, NGPT_DECODER_UNET);
        if (!d) continue;
        ngpt_tensor gu = {0};
        CHECK_OK(ngpt_decoder_unet(d, &gu, &s_t, &ts_t, &e_t, NULL));
        if (!check_rel("unet3d", k_bounds[k].dt, &gu, &ru, 2 * k_bounds[k].pass)) {
            trace_log lr = {0}, lg = {0};
            ngpt_tensor t1 = {0}, t2 = {0};
            nx_ops_trace(trace_cb, &lr);
            (void)ngpt_decoder_unet(ref, &t1, &s_t, &ts_t, &e_t, NULL);
            nx_ops_trace(trace_cb, &lg);
            (void)ngpt_decoder_unet(d, &t2, &s_t, &ts_t, &e_t, NULL);
            nx_ops_trace(NULL, NULL);
            trace_report("unet3d", k_bounds[k].dt, &lr, &lg, k_bounds[k].pass);
            trace_free(&lr), trace_free(&lg);
            ngpt_tensor_free(&t1), ngpt_tensor_free(&t2);
        }
        ngpt_tensor_free(&gu);
        ngpt_decoder_free(d);
    }
    ngpt_tensor_free(&ru);
    ngpt_decoder_free(ref);
}

/* The CLIP text encoder (tests/golden/models/clip-a joined to sd-a's model_index.json in a
 * temporary folder): a transformer of 12 + 1 rounding stages per layer, within the one-pass
 * bounds. Skipped when the source tree's tests/golden is not there. */
static void test_text_encoder_dtypes(void)
{
    const char *root = getenv("NGPT_SOURCE_ROOT");
    char clip[1200], abs_clip[PATH_MAX], tmp[600], a[PATH_MAX + 1400], b[PATH_MAX + 1400];
    snprintf(clip, sizeof clip, "%s/tests/golden/models/clip-a", root ? root : ".");
    if (!realpath(clip, abs_clip)) {
        fprintf(stderr, "  %s not found: text encoder not compared\n", clip);
        return;
    }
    snprintf(tmp, sizeof tmp, "%s/ngpt_test_dtype_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) {
        CHECK_MSG(0, "mkdtemp %s failed", tmp);
        return;
    }
    snprintf(a, sizeof a, "%s/models/sd-a/model_index.json", g_golden);
    snprintf(b, sizeof b, "%s/model_index.json", tmp);
    FILE *fi = fopen(a, "rb"), *fo = fopen(b, "wb");
    CHECK(fi && fo);
    char buf[4096];
    size_t n;
    while (fi && fo && (n = fread(buf, 1, sizeof buf, fi)) > 0) CHECK(fwrite(buf, 1, n, fo) == n);
    if (fi) fclose(fi);
    if (fo) fclose(fo);
    const char *sub[2] = {"text_encoder", "tokenizer"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/%s", abs_clip, sub[i]);
        snprintf(b, sizeof b, "%s/%s", tmp, sub[i]);
        CHECK(symlink(a, b) == 0);
    }
    ngpt_decoder *ref = open_comp(g_cpu, tmp, NGPT_DTYPE_F32, NGPT_DECODER_TEXT_ENCODER);
    ngpt_tensor re = {0};
    if (ref) CHECK_OK(ngpt_decoder_encode_text(ref, &re, "a photo of an astronaut riding a horse"));
    for (size_t k = 0; ref && k < sizeof k_bounds / sizeof *k_bounds; k++) {
        ngpt_decoder *d = open_comp(g_gpu, tmp, k_bounds[k].dt, NGPT_DECODER_TEXT_ENCODER);
        if (!d) continue;
        ngpt_tensor ge = {0};
        CHECK_OK(ngpt_decoder_encode_text(d, &ge, "a photo of an astronaut riding a horse"));
        check_rel("clip text encoder", k_bounds[k].dt, &ge, &re, k_bounds[k].pass);
        ngpt_tensor_free(&ge);
        ngpt_decoder_free(d);
    }
    ngpt_tensor_free(&re);
    ngpt_decoder_free(ref);
    const char *f[3] = {"model_index.json", "text_encoder", "tokenizer"};
    for (int i = 0; i < 3; i++) {
        snprintf(b, sizeof b, "%s/%s", tmp, f[i]);
        unlink(b);
    }
    rmdir(tmp);
}

/* The safety checker's vision tower (tests/golden/models/sd-b-safety) on CUDA in each compute
 * dtype against the CPU: its scores are rounded to 0.001, so F32 may differ by one step where a
 * value sits at a rounding boundary; F16 / BF16 move the embedding by the one-pass bound, and a
 * cosine by about as much. The flags are compared in F32 only. */
static void test_safety_checker_dtypes(void)
{
    const char *root = getenv("NGPT_SOURCE_ROOT");
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/tests/golden/models/sd-b-safety", root ? root : ".");
    if (access(dir, R_OK) != 0) {
        fprintf(stderr, "  %s not found: safety checker not compared\n", dir);
        return;
    }
    static float px[3 * 40 * 56 * 3];
    test_rng r = {0x51ed270bull};
    test_fill(&r, px, sizeof px / sizeof *px, 0.0f, 1.0f);
    const int64_t shape[4] = {3, 40, 56, 3};
    ngpt_tensor img = f32(4, shape, px);
    ngpt_decoder *ref = open_dec(g_cpu, dir, NGPT_DTYPE_F32, NGPT_DECODER_VAE, NGPT_DECODER_FLAG_SAFETY_CHECKER);
    ngpt_tensor rn = {0}, rc = {0};
    if (ref) CHECK_OK(ngpt_decoder_safety_check(ref, &rn, NULL, &rc, &img));
    for (size_t k = 0; rc.data && k < sizeof k_bounds / sizeof *k_bounds; k++) {
        ngpt_decoder *d = open_dec(g_gpu, dir, k_bounds[k].dt, NGPT_DECODER_VAE, NGPT_DECODER_FLAG_SAFETY_CHECKER);
        ngpt_tensor gn = {0}, gc = {0};
        if (d) CHECK_OK(ngpt_decoder_safety_check(d, &gn, NULL, &gc, &img));
        double worst = 0;
        for (int64_t i = 0; gc.data && i < ngpt_tensor_numel(&rc); i++)
            worst = test_worst(worst, fabs((double)((float *)gc.data)[i] - ((float *)rc.data)[i]));
        const double bound = k_bounds[k].dt == NGPT_DTYPE_F32 ? 1.5e-3 : 4 * k_bounds[k].pass;
        fprintf(stderr, "  safety checker %s: max |score - CPU's| %.3g (bound %.3g)\n", ngpt_dtype_name(k_bounds[k].dt),
                worst, bound);
        CHECK(gc.data && worst <= bound);
        if (k_bounds[k].dt == NGPT_DTYPE_F32) CHECK(gn.data && !memcmp(gn.data, rn.data, 3));
        ngpt_tensor_free(&gn);
        ngpt_tensor_free(&gc);
        ngpt_decoder_free(d);
    }
    ngpt_tensor_free(&rn);
    ngpt_tensor_free(&rc);
    ngpt_decoder_free(ref);
}

/* Two handles of one CUDA context driven from two threads at once (the device lock, context.h):
 * an SD decoder recording its step as a CUDA graph — a capture on the context's stream, which
 * another thread's kernels must not enter — and a Zeroscope decoder, each generating twice;
 * every image equals what the same call gave alone, and no recording fell back. */
typedef struct thread_gen {
    ngpt_decoder *d;
    const ngpt_tensor *c, *u;
    ngpt_decode_params gp;
    ngpt_tensor out[2];
    ngpt_status st[2];
} thread_gen;

static void *thread_gen_run(void *arg)
{
    thread_gen *g = arg;
    for (int i = 0; i < 2; i++) g->st[i] = ngpt_decoder_generate(g->d, &g->out[i], NULL, g->c, g->u, &g->gp);
    return NULL;
}

static void test_two_threads(void)
{
    char dir[1000];
    snprintf(dir, sizeof dir, "%s/models/zeroscope-a", g_golden);
    ngpt_decoder *sd = open_sd_flags(g_gpu_log, NGPT_DTYPE_F32, NGPT_DECODER_FLAG_CUDA_GRAPH);
    ngpt_decoder *zs = open_dec(g_gpu_log, dir, NGPT_DTYPE_F32, 0, 0);
    test_rng r = {0x7f4a7c15ull};
    static float c1[77 * 32], u1[77 * 32], c2[77 * 48], u2[77 * 48];
    test_fill(&r, c1, sizeof c1 / sizeof *c1, -1.0f, 1.0f);
    test_fill(&r, u1, sizeof u1 / sizeof *u1, -1.0f, 1.0f);
    test_fill(&r, c2, sizeof c2 / sizeof *c2, -1.0f, 1.0f);
    test_fill(&r, u2, sizeof u2 / sizeof *u2, -1.0f, 1.0f);
    int64_t s1[3] = {1, 77, 32}, s2[3] = {1, 77, 48};
    ngpt_tensor c1_t = f32(3, s1, c1), u1_t = f32(3, s1, u1), c2_t = f32(3, s2, c2), u2_t = f32(3, s2, u2);
    thread_gen g[2] = {{sd, &c1_t, &u1_t, {0}, {{0}}, {0}}, {zs, &c2_t, &u2_t, {0}, {{0}}, {0}}};
    for (int k = 0; k < 2; k++) {
        ngpt_decode_params_default(&g[k].gp, sizeof g[k].gp);
        g[k].gp.num_inference_steps = 4;
        g[k].gp.guidance_scale = 7.5f;
        g[k].gp.height = g[k].gp.width = 64;
        g[k].gp.num_frames = 2;
        g[k].gp.seed = 11 + k;
    }
    ngpt_tensor alone[2] = {{0}};
    *test_graph_fallbacks() = 0;
    for (int k = 0; sd && zs && k < 2; k++) CHECK_OK(ngpt_decoder_generate(g[k].d, &alone[k], NULL, g[k].c, g[k].u, &g[k].gp));
    if (alone[0].data && alone[1].data) {
        pthread_t t[2];
        for (int k = 0; k < 2; k++) CHECK(pthread_create(&t[k], NULL, thread_gen_run, &g[k]) == 0);
        for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < 2; i++) {
                CHECK(g[k].st[i] == NGPT_OK);
                check_rel(k ? "zeroscope, two threads" : "sd + graph, two threads", NGPT_DTYPE_F32, &g[k].out[i],
                          &alone[k], 1e-6);
            }
        CHECK_MSG(*test_graph_fallbacks() == 0, "a recording fell back with two threads on the context (see the log)");
    }
    for (int k = 0; k < 2; k++) {
        ngpt_tensor_free(&alone[k]);
        ngpt_tensor_free(&g[k].out[0]), ngpt_tensor_free(&g[k].out[1]);
    }
    ngpt_decoder_free(zs);
    ngpt_decoder_free(sd);
}

/* A dtype that is no float compute dtype is rejected on CUDA too. */
static void test_bad_dtype(void)
{
    char dir[1000];
    snprintf(dir, sizeof dir, "%s/models/sd-a", g_golden);
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.compute_dtype = NGPT_DTYPE_I32;
    ngpt_decoder *d = NULL;
    CHECK_ERR(ngpt_decoder_create(&d, g_gpu, dir, &p), NGPT_ERR_INVALID_ARGUMENT, "compute_dtype");
    CHECK(d == NULL);
}

int main(void)
{
    if (!test_golden_dir(g_golden, sizeof g_golden, "models/sd-a/unet/config.json")) return TEST_SKIP;
    if (!(g_gpu = test_cuda_context())) return TEST_SKIP;
    if (!(g_cpu = test_cpu_context(2))) return 1;
    CHECK(g_gpu_log = test_cuda_logging_context());
    if (!g_gpu_log) return test_done();
    RUN(test_sd_dtypes);
    RUN(test_sd_samplers);
    RUN(test_generate_audio_video);
    RUN(test_unet3d_dtypes);
    RUN(test_text_encoder_dtypes);
    RUN(test_safety_checker_dtypes);
    RUN(test_two_threads);
    RUN(test_bad_dtype);
    ngpt_context_free(g_gpu_log);
    ngpt_context_free(g_gpu);
    ngpt_context_free(g_cpu);
    return test_done();
}
