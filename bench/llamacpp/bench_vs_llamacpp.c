/* bench_vs_llamacpp.c — the LLaMA backbone against llama.cpp on the same weights, in one process.
 *
 * A benchmark, not a test. llama.cpp comes from npm (bench/llamacpp/setup.sh puts the prebuilt
 * CPU libraries and the exact llama.cpp source they were built from, for llama.h, under
 * bench/llamacpp/.deps/); it is dlopen'ed, so nothing of ours links against it. The model folder
 * comes from to_gguf.py: config.json + model.safetensors (HF layout, read by ngpt_backbone_create)
 * and model.gguf (the same weights converted as convert_hf_to_gguf.py does).
 *
 *   bench_vs_llamacpp LIBDIR MODELDIR check [threads=2] [n=16]
 *       the same n token ids through both engines, logits of every position (F32 KV cache and no
 *       flash attention on llama.cpp's side, so both compute in F32): max |diff|, max |logit|,
 *       and whether the arg-max agrees. Exit 3 when max |diff| > 1e-3 * max |logit|.
 *   bench_vs_llamacpp LIBDIR MODELDIR speed [threads=2] [pp=512] [prompt=16] [tg=64] [reps=3]
 *       prefill of pp tokens (logits of the last only) and decode of tg tokens one at a time after
 *       a prompt of `prompt` tokens, both engines alternating, best of reps; plus the read
 *       bandwidth over a buffer of the weight bytes read per decoded token (measured before and
 *       after, best), and each engine's decode as a fraction of bytes/token / bandwidth.
 *       llama.cpp runs in its defaults otherwise (F16 KV cache, flash attention auto).
 * Environment: NGPT_BENCH_WCVT=0 runs our F16/BF16-weight linears through the oneDNN path the
 * fused convert GEMM replaced (lib/ops/cpu/gemm_wcvt.c); NGPT_BENCH_WCVT=both times that path as
 * a third prefill contestant in the same loop (before/after in one process); NGPT_BENCH_BF16=1
 * creates our backbone with compute_dtype BF16 (prompts through oneDNN's bf16 GEMMs).
 * Output lines starting with "RESULT" are machine-readable (run.sh builds its table from them).
 */
#include "nextgpt.h"
#include "../bench_membw.h"
#include "ops/cpu/cpu_ops.h"

#include "ggml-backend.h"
#include "llama.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- llama.cpp through dlopen --------------------------------------------------------------- */

#define LL_FUNCS(X)                                                                                  \
    X(llama_backend_init) X(llama_backend_free) X(llama_model_default_params)                        \
    X(llama_context_default_params) X(llama_model_load_from_file) X(llama_model_free)               \
    X(llama_init_from_model) X(llama_free) X(llama_batch_init) X(llama_batch_free) X(llama_decode)   \
    X(llama_get_logits_ith) X(llama_get_memory) X(llama_memory_clear) X(llama_log_set)               \
    X(llama_print_system_info) X(llama_model_n_params) X(llama_model_size)
#define LL_DECL(fn) static __typeof__(fn) *p_##fn;
LL_FUNCS(LL_DECL)
static __typeof__(ggml_backend_load_all_from_path) *p_ggml_backend_load_all_from_path;

static void ll_log(enum ggml_log_level level, const char *text, void *ud)
{
    (void)ud;
    if (level >= GGML_LOG_LEVEL_WARN || strstr(text, "load_backend") || strstr(text, "CPU_REPACK") ||
        strstr(text, "flash_attn"))
        fputs(text, stderr);
}

static int ll_open(const char *libdir)
{
    char path[1024];
    /* RUNPATH $ORIGIN of libllama finds libggml*.so; RTLD_GLOBAL so the CPU backend that
     * ggml_backend_load_all_from_path loads later binds to the same libggml-base. */
    snprintf(path, sizeof path, "%s/libggml-base.so", libdir);
    if (!dlopen(path, RTLD_NOW | RTLD_GLOBAL)) goto fail;
    const char *lname[] = {"libggml.so", "libggml.v0.5.0.so", NULL};
    void *hg = NULL;
    for (int i = 0; lname[i] && !hg; i++) {
        snprintf(path, sizeof path, "%s/%s", libdir, lname[i]);
        hg = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    }
    const char *llname[] = {"libllama.so", "libllama.v0.5.0.so", NULL};
    void *hl = NULL;
    for (int i = 0; llname[i] && !hl; i++) {
        snprintf(path, sizeof path, "%s/%s", libdir, llname[i]);
        hl = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    }
    if (!hg || !hl) goto fail;
#define LL_SYM(fn)                                                                                   \
    if (!(*(void **)&p_##fn = dlsym(hl, #fn))) {                                                     \
        fprintf(stderr, "llama.cpp: missing symbol %s\n", #fn);                                     \
        return -1;                                                                                   \
    }
    LL_FUNCS(LL_SYM)
    if (!(*(void **)&p_ggml_backend_load_all_from_path = dlsym(hg, "ggml_backend_load_all_from_path"))) {
        fprintf(stderr, "llama.cpp: missing symbol ggml_backend_load_all_from_path\n");
        return -1;
    }
    p_llama_log_set(ll_log, NULL);
    p_ggml_backend_load_all_from_path(libdir);
    p_llama_backend_init();
    return 0;
fail:
    fprintf(stderr, "llama.cpp: dlopen: %s\n", dlerror());
    return -1;
}

typedef struct ll_engine {
    struct llama_model *model;
    struct llama_context *ctx;
    struct llama_batch batch;
    int cap;
} ll_engine;

static int ll_create(ll_engine *e, const char *gguf, int threads, int n_ctx, int n_batch, int exact)
{
    struct llama_model_params mp = p_llama_model_default_params();
    mp.n_gpu_layers = 0;
    e->model = p_llama_model_load_from_file(gguf, mp);
    if (!e->model) return -1;
    struct llama_context_params cp = p_llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = cp.n_ubatch = (uint32_t)n_batch;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.no_perf = true;
    if (exact) {
        cp.type_k = cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    e->ctx = p_llama_init_from_model(e->model, cp);
    if (!e->ctx) return -1;
    e->batch = p_llama_batch_init(n_batch, 0, 1);
    e->cap = n_batch;
    return 0;
}

static void ll_destroy(ll_engine *e)
{
    p_llama_batch_free(e->batch);
    p_llama_free(e->ctx);
    p_llama_model_free(e->model);
}

/* Positions pos0..pos0+n-1; logits for all positions (all = 1) or the last. */
static int ll_eval(ll_engine *e, const int32_t *ids, int n, int pos0, int all)
{
    struct llama_batch *b = &e->batch;
    b->n_tokens = n;
    for (int i = 0; i < n; i++) {
        b->token[i] = ids[i];
        b->pos[i] = pos0 + i;
        b->n_seq_id[i] = 1;
        b->seq_id[i][0] = 0;
        b->logits[i] = (int8_t)(all || i == n - 1);
    }
    int r = p_llama_decode(e->ctx, *b);
    if (r != 0) fprintf(stderr, "llama_decode: %d\n", r);
    return r;
}

static void ll_reset(ll_engine *e) { p_llama_memory_clear(p_llama_get_memory(e->ctx), true); }

/* ---- ours ----------------------------------------------------------------------------------- */

typedef struct ng_engine {
    ngpt_context *ctx;
    ngpt_backbone *bb;
    ngpt_backbone_session *s;
} ng_engine;

static int ng_create(ng_engine *e, const char *dir, int threads, int n_ctx)
{
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CPU;
    cp.n_threads = threads;
    ngpt_backbone_session_params sp;
    ngpt_backbone_session_params_default(&sp, sizeof sp);
    sp.n_ctx = n_ctx;
    ngpt_backbone_params bp;
    ngpt_backbone_params_default(&bp, sizeof bp);
    /* NGPT_BENCH_BF16=1: our prompts in the CPU's BF16 compute (BF16 GEMM inputs; decode as F32) */
    if (getenv("NGPT_BENCH_BF16") && !strcmp(getenv("NGPT_BENCH_BF16"), "1")) bp.compute_dtype = NGPT_DTYPE_BF16;
    if (ngpt_context_create(&e->ctx, &cp) || ngpt_backbone_create(&e->bb, e->ctx, dir, &bp) ||
        ngpt_backbone_session_create(&e->s, e->bb, &sp)) {
        fprintf(stderr, "libnextgpt: %s\n", ngpt_last_error());
        return -1;
    }
    return 0;
}

static void ng_destroy(ng_engine *e)
{
    ngpt_backbone_session_free(e->s);
    ngpt_backbone_free(e->bb);
    ngpt_context_free(e->ctx);
}

static int ng_eval(ng_engine *e, const int32_t *ids, int n, int all)
{
    ngpt_backbone_batch b;
    ngpt_backbone_batch_default(&b, sizeof b);
    b.n_tokens = n;
    b.ids = ids;
    b.output = all ? NGPT_OUTPUT_ALL : NGPT_OUTPUT_LAST;
    if (ngpt_backbone_eval(e->s, &b)) {
        fprintf(stderr, "ngpt_backbone_eval: %s\n", ngpt_last_error());
        return -1;
    }
    return 0;
}

/* ---- config -------------------------------------------------------------------------------- */

typedef struct model_info {
    int H, I, L, V;
    int es; /* bytes per weight element */
    char dtype[16];
} model_info;

static int json_int(const char *js, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\"", key);
    const char *p = strstr(js, k);
    if (!p) return -1;
    p = strchr(p + strlen(k), ':');
    return p ? atoi(p + 1) : -1;
}

static int read_info(const char *dir, model_info *mi)
{
    char path[1024], js[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(js, 1, sizeof js - 1, f);
    fclose(f);
    js[n] = 0;
    mi->H = json_int(js, "hidden_size");
    mi->I = json_int(js, "intermediate_size");
    mi->L = json_int(js, "num_hidden_layers");
    mi->V = json_int(js, "vocab_size");
    int f16 = strstr(js, "\"float16\"") != NULL;
    mi->es = f16 ? 2 : 4;
    snprintf(mi->dtype, sizeof mi->dtype, "%s", f16 ? "F16" : "F32");
    return 0;
}

static void ids_fill(int32_t *ids, int n, int V, int salt)
{
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(((int64_t)i * 7919 + salt * 104729 + 13) % V);
}

/* ---- modes --------------------------------------------------------------------------------- */

static int check(const char *dir, const char *gguf, const model_info *mi, int threads, int n)
{
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    ids_fill(ids, n, mi->V, 1);
    ng_engine ng;
    if (ng_create(&ng, dir, threads, 256) || ng_eval(&ng, ids, n, 1)) return 1;
    int32_t rows = 0;
    const float *a = ngpt_backbone_get_logits(ng.s, &rows);
    if (rows != n) {
        fprintf(stderr, "libnextgpt returned %d rows of logits, expected %d\n", rows, n);
        return 1;
    }
    float *ours = malloc((size_t)n * (size_t)mi->V * sizeof *ours);
    memcpy(ours, a, (size_t)n * (size_t)mi->V * sizeof *ours);
    ng_destroy(&ng);
    { /* for bench_torch.py --check: ids_fill(salt 1) logits of every position, f32 [n, V] */
        char path[1024];
        snprintf(path, sizeof path, "%s/logits_ngpt_%d.f32", dir, n);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(ours, sizeof *ours, (size_t)n * (size_t)mi->V, f);
            fclose(f);
        }
    }

    ll_engine ll;
    if (ll_create(&ll, gguf, threads, 256, 256, 1)) {
        fprintf(stderr, "llama.cpp could not load %s\n", gguf);
        return 1;
    }
    if (ll_eval(&ll, ids, n, 0, 1)) return 1;
    double maxdiff = 0, maxabs = 0, maxrel_row = 0;
    int argmax_agree = 0;
    for (int i = 0; i < n; i++) {
        const float *b = p_llama_get_logits_ith(ll.ctx, i), *o = ours + (size_t)i * (size_t)mi->V;
        if (!b) return 1;
        int ia = 0, ib = 0;
        double rowdiff = 0, rowabs = 0;
        for (int v = 0; v < mi->V; v++) {
            double d = fabs((double)o[v] - (double)b[v]);
            if (d > rowdiff) rowdiff = d;
            if (fabs((double)b[v]) > rowabs) rowabs = fabs((double)b[v]);
            if (o[v] > o[ia]) ia = v;
            if (b[v] > b[ib]) ib = v;
        }
        if (rowdiff > maxdiff) maxdiff = rowdiff;
        if (rowabs > maxabs) maxabs = rowabs;
        if (rowdiff / rowabs > maxrel_row) maxrel_row = rowdiff / rowabs;
        argmax_agree += ia == ib;
    }
    ll_destroy(&ll);
    int ok = maxdiff <= 1e-3 * maxabs;
    printf("check %s: %d positions x %d logits: max |ours - llama.cpp| = %.3g, max |logit| = %.3g, "
           "relative %.3g (worst row %.3g); arg-max agrees at %d/%d positions -> %s\n",
           mi->dtype, n, mi->V, maxdiff, maxabs, maxdiff / maxabs, maxrel_row, argmax_agree, n,
           ok ? "SAME MODEL" : "MISMATCH");
    printf("RESULT check %s maxdiff=%.3g maxabs=%.3g rel=%.3g argmax=%d/%d %s\n", mi->dtype, maxdiff, maxabs,
           maxdiff / maxabs, argmax_agree, n, ok ? "ok" : "MISMATCH");
    free(ours);
    free(ids);
    return ok ? 0 : 3;
}

static void pause_ms(int ms) { usleep((useconds_t)ms * 1000); }

static int speed(const char *dir, const char *gguf, const model_info *mi, int threads, int pp, int prompt, int tg,
                 int reps)
{
    int n_ctx = (pp > prompt + tg ? pp : prompt + tg) + 16;
    int maxb = pp > prompt ? pp : prompt;
    int32_t *ids = malloc((size_t)(maxb + tg) * sizeof *ids);
    ids_fill(ids, maxb + tg, mi->V, 2);
    size_t per_tok = ((size_t)mi->L * ((size_t)4 * mi->H * mi->H + (size_t)3 * mi->H * mi->I) +
                      (size_t)mi->V * mi->H) * (size_t)mi->es;

    ng_engine ng;
    ll_engine ll;
    if (ng_create(&ng, dir, threads, n_ctx)) return 1;
    if (ll_create(&ll, gguf, threads, n_ctx, maxb, 0)) {
        fprintf(stderr, "llama.cpp could not load %s\n", gguf);
        return 1;
    }
    double bw = bench_read_bw(per_tok, threads);
    /* warm-up: page the weights in for both (first touch of the mmapped files) */
    if (ng_eval(&ng, ids, prompt, 0) || ll_eval(&ll, ids, prompt, 0, 0)) return 1;
    ngpt_backbone_session_reset(ng.s);
    ll_reset(&ll);

    /* NGPT_BENCH_WCVT=both: a third prefill contestant, ours through the oneDNN path */
    const int both = getenv("NGPT_BENCH_WCVT") && !strcmp(getenv("NGPT_BENCH_WCVT"), "both");
    double ng_pp = 1e30, ll_pp = 1e30, ng_tg = 1e30, ll_tg = 1e30, old_pp = 1e30;
    for (int r = 0; r < reps; r++) {
        /* alternate which engine goes first */
        for (int k = 0; k < 2 + both; k++) {
            int which = (k + r) % (2 + both), ours = which == 0;
            pause_ms(200);
            double t0 = now();
            if (which == 2) {
                nx_cpu_set_wcvt(false);
                int rc = ng_eval(&ng, ids, pp, 0);
                nx_cpu_set_wcvt(true);
                if (rc) return 1;
                double t = now() - t0;
                if (t < old_pp) old_pp = t;
                ngpt_backbone_session_reset(ng.s);
            } else if (ours) {
                if (ng_eval(&ng, ids, pp, 0)) return 1;
                double t = now() - t0;
                if (t < ng_pp) ng_pp = t;
                ngpt_backbone_session_reset(ng.s);
            } else {
                if (ll_eval(&ll, ids, pp, 0, 0)) return 1;
                double t = now() - t0;
                if (t < ll_pp) ll_pp = t;
                ll_reset(&ll);
            }
        }
        for (int k = 0; k < 2; k++) {
            int ours = (k + r) % 2 == 0;
            pause_ms(200);
            if (ours) {
                if (ng_eval(&ng, ids, prompt, 0)) return 1;
                double t0 = now();
                for (int i = 0; i < tg; i++)
                    if (ng_eval(&ng, ids + prompt + i, 1, 0)) return 1;
                double t = now() - t0;
                if (t < ng_tg) ng_tg = t;
                ngpt_backbone_session_reset(ng.s);
            } else {
                if (ll_eval(&ll, ids, prompt, 0, 0)) return 1;
                double t0 = now();
                for (int i = 0; i < tg; i++)
                    if (ll_eval(&ll, ids + prompt + i, 1, prompt + i, 0)) return 1;
                double t = now() - t0;
                if (t < ll_tg) ll_tg = t;
                ll_reset(&ll);
            }
        }
        fprintf(stderr, "  rep %d: pp%d ours %.1f / llama.cpp %.1f tok/s; tg%d ours %.2f / llama.cpp %.2f tok/s\n", r,
                pp, pp / ng_pp, pp / ll_pp, tg, tg / ng_tg, tg / ll_tg);
    }
    if (both)
        printf("%s, %d threads, %d layers: prefill pp%d ours through the oneDNN path (before the fused GEMM) "
               "%.1f tok/s (fused / that %.2f)\n", mi->dtype, threads, mi->L, pp, pp / old_pp, old_pp / ng_pp);
    double bw2 = bench_read_bw(per_tok, threads);
    if (bw2 > bw) bw = bw2;
    double ceil_tok = bw * 1e9 / (double)per_tok;
    double ng_d = tg / ng_tg, ll_d = tg / ll_tg;
    printf("%s, %d threads, %d layers: prefill pp%d ours %.1f tok/s, llama.cpp %.1f tok/s (ours/llama.cpp %.2f)\n",
           mi->dtype, threads, mi->L, pp, pp / ng_pp, pp / ll_pp, ll_pp / ng_pp);
    printf("%s decode tg%d after %d: ours %.2f tok/s, llama.cpp %.2f tok/s (ours/llama.cpp %.2f); "
           "%.1f MB/token, read %.1f GB/s -> ceiling %.2f tok/s: ours %.0f%%, llama.cpp %.0f%%\n",
           mi->dtype, tg, prompt, ng_d, ll_d, ng_d / ll_d, per_tok / 1e6, bw, ceil_tok, 100 * ng_d / ceil_tok,
           100 * ll_d / ceil_tok);
    printf("RESULT speed %s threads=%d pp=%d ng_pp=%.2f ll_pp=%.2f tg=%d ng_tg=%.3f ll_tg=%.3f mb_tok=%.1f "
           "bw=%.2f ceil=%.3f\n",
           mi->dtype, threads, pp, pp / ng_pp, pp / ll_pp, tg, ng_d, ll_d, per_tok / 1e6, bw, ceil_tok);
    ng_destroy(&ng);
    ll_destroy(&ll);
    free(ids);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s LIBDIR MODELDIR check [threads n] | speed [threads pp prompt tg reps]\n", argv[0]);
        return 2;
    }
    const char *libdir = argv[1], *dir = argv[2], *mode = argv[3];
    /* NGPT_BENCH_WCVT=0: our F16/BF16 linears through the pre-fused oneDNN path (before/after) */
    if (getenv("NGPT_BENCH_WCVT") && !strcmp(getenv("NGPT_BENCH_WCVT"), "0")) nx_cpu_set_wcvt(false);
    int threads = argc > 4 ? atoi(argv[4]) : 2;
    model_info mi;
    if (read_info(dir, &mi) || mi.H <= 0 || mi.L <= 0 || mi.V <= 0 || mi.I <= 0) {
        fprintf(stderr, "%s/config.json: unreadable\n", dir);
        return 2;
    }
    char gguf[1024];
    snprintf(gguf, sizeof gguf, "%s/model.gguf", dir);
    if (ll_open(libdir)) {
        printf("RESULT llama.cpp-unavailable\n");
        return 4;
    }
    fprintf(stderr, "llama.cpp system info: %s\n", p_llama_print_system_info());
    int rc;
    if (!strcmp(mode, "check"))
        rc = check(dir, gguf, &mi, threads, argc > 5 ? atoi(argv[5]) : 16);
    else
        rc = speed(dir, gguf, &mi, threads, argc > 5 ? atoi(argv[5]) : 512, argc > 6 ? atoi(argv[6]) : 16,
                   argc > 7 ? atoi(argv[7]) : 64, argc > 8 ? atoi(argv[8]) : 3);
    return rc;
}
