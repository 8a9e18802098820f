/* pipeline_memory.c — measures the memory of one real pipeline turn on the CPU and prints it next
 * to the estimate (ngpt_pipeline_estimate_memory) for the same settings.
 *
 *     pipeline_memory BUNDLE_DIR IMAGE.jpg [SIZE=512] [STEPS=2] [N_CTX=0]
 *
 * The turn: text + image in, image out (forced), SIZE x SIZE pixels, STEPS decoder steps (the
 * peak does not depend on them), a short prompt, 8 new tokens at most. Reported: per stage the
 * library's accounting (ngpt_pipeline_result_stage_memory) and the estimate's stage (n_ctx as
 * the pipeline's, and with n_ctx 512); the process's anonymous memory (RssAnon sampled every
 * ~5 ms by a thread, peak per stage and overall), VmHWM and RssFile at the end; the mapped
 * weights. Use bench/run_pipeline_memory.sh, which also writes a random-weight bundle at real
 * widths (tools/make_sized_bundle.py).
 *
 * NGPT_BENCH_DEVICE=cuda: the same turn on the GPU with F16 compute (issue 7's setting), the
 * library's device accounting per stage next to the CUDA estimate (the allowance included), and
 * the context's peak; the device's own peak (CUDA context, libraries, pool slack) is read outside
 * by bench/gpu_remote.sh with nvidia-smi.
 */
#include "nextgpt.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <time.h>

#define GIB (1024.0 * 1024.0 * 1024.0)
#define MIB (1024.0 * 1024.0)

static uint64_t status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    uint64_t v = 0;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0 && line[k] == ':') { v = strtoull(line + k + 1, NULL, 10); break; }
    fclose(f);
    return v * 1024;
}

static atomic_int g_stop;
static atomic_ullong g_peak_anon;   /* since the last reset */
static atomic_ullong g_peak_total;  /* whole run */

static void *sampler(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 5 * 1000 * 1000};
    while (!atomic_load(&g_stop)) {
        uint64_t a = status_kb("RssAnon");
        if (a > atomic_load(&g_peak_anon)) atomic_store(&g_peak_anon, a);
        if (a > atomic_load(&g_peak_total)) atomic_store(&g_peak_total, a);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static const char *const k_stage_name[NGPT_PIPELINE_STAGE_COUNT] = {"load", "encode", "project", "llm", "decode",
                                                                    "media_out"};
static uint64_t g_stage_anon[NGPT_PIPELINE_STAGE_COUNT];
static int g_cur_stage = -1;

/* Progress events: the sampler's peak per phase, approximately (events come at the end of a
 * step: LOAD -> load, ENCODE -> encode, TOKEN -> llm, DENOISE -> decode, OUTPUT -> media_out; the
 * peak until the first event of the next phase is charged to the previous one). */
static bool on_event(const ngpt_pipeline_event *ev, void *user)
{
    (void)user;
    if (!ev) return true;
    static const int k_phase[] = {NGPT_PIPELINE_STAGE_LOAD, NGPT_PIPELINE_STAGE_ENCODE, NGPT_PIPELINE_STAGE_LLM,
                                  NGPT_PIPELINE_STAGE_DECODE, NGPT_PIPELINE_STAGE_MEDIA_OUT};
    if ((int)ev->kind < 0 || (int)ev->kind > 4) return true;
    int s = k_phase[ev->kind];
    if (g_cur_stage >= 0) {
        uint64_t p = atomic_exchange(&g_peak_anon, status_kb("RssAnon"));
        if (p > g_stage_anon[g_cur_stage]) g_stage_anon[g_cur_stage] = p;
    }
    g_cur_stage = s;
    return true;
}

/* With PIPELINE_MEMORY_SMAPS set: the anonymous memory of each mapping of >= 8 MiB (where it is:
 * large malloc blocks are mappings of their own), largest first. */
static void print_smaps(const char *when)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return;
    char line[512], range[128] = "", path[256] = "";
    struct { char r[128], p[256]; uint64_t kb; } top[64];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "Anonymous: %llu kB", &kb) == 1) {
            if (kb >= 8192 && n < 64) {
                snprintf(top[n].r, sizeof top[n].r, "%s", range);
                snprintf(top[n].p, sizeof top[n].p, "%s", path);
                top[n++].kb = kb;
            }
        } else if (strchr(line, '-') && line[0] != ' ' && !strchr(line, ':')) {
            char a[128] = "", perm[8] = "", off[32] = "", dev[32] = "", ino[32] = "", pth[256] = "";
            sscanf(line, "%127s %7s %31s %31s %31s %255s", a, perm, off, dev, ino, pth);
            snprintf(range, sizeof range, "%s %s", a, perm);
            snprintf(path, sizeof path, "%s", pth);
        } else if (isxdigit((unsigned char)line[0]) && strchr(line, '-')) {
            char a[128] = "", perm[8] = "", off[32] = "", dev[32] = "", ino[32] = "", pth[256] = "";
            sscanf(line, "%127s %7s %31s %31s %31s %255s", a, perm, off, dev, ino, pth);
            snprintf(range, sizeof range, "%s %s", a, perm);
            snprintf(path, sizeof path, "%s", pth);
        }
    }
    fclose(f);
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) sum += top[i].kb;
    printf("smaps %s: %d mappings with >= 8 MiB anonymous, %.1f MiB in all:\n", when, n, (double)sum / 1024.0);
    for (int i = 0; i < n; i++) printf("  %9.1f MiB  %s %s\n", (double)top[i].kb / 1024.0, top[i].r, top[i].p);
}

static bool g_cuda;  /* NGPT_BENCH_DEVICE=cuda */

static ngpt_memory_estimate *estimate(const char *bundle, int n_ctx, int size)
{
    ngpt_memory_params mp;
    ngpt_memory_params_default(&mp, sizeof mp);
    if (g_cuda) mp.backend = NGPT_BACKEND_CUDA, mp.compute_dtype = NGPT_DTYPE_F16;
    mp.n_ctx = n_ctx;
    mp.height = mp.width = size;
    ngpt_memory_estimate *e = NULL;
    if (ngpt_pipeline_estimate_memory(&e, bundle, &mp) != NGPT_OK) {
        fprintf(stderr, "pipeline_memory: estimate: %s\n", ngpt_last_error());
        return NULL;
    }
    return e;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pipeline_memory BUNDLE_DIR IMAGE [SIZE=512] [STEPS=2] [N_CTX=0]\n");
        return 2;
    }
    const char *bundle = argv[1], *image = argv[2];
    int size = argc > 3 ? atoi(argv[3]) : 512, steps = argc > 4 ? atoi(argv[4]) : 2;
    int n_ctx = argc > 5 ? atoi(argv[5]) : 0;
    pthread_t th;
    pthread_create(&th, NULL, sampler, NULL);
    uint64_t anon0 = status_kb("RssAnon");

    const char *bdev = getenv("NGPT_BENCH_DEVICE");
    g_cuda = bdev && !strcmp(bdev, "cuda");
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = g_cuda ? NGPT_DEVICE_CUDA : NGPT_DEVICE_CPU;
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) { fprintf(stderr, "pipeline_memory: %s\n", ngpt_last_error()); return 1; }
    ngpt_pipeline_params pp;
    ngpt_pipeline_params_default(&pp, sizeof pp);
    pp.n_ctx = n_ctx;
    if (g_cuda) pp.compute_dtype = NGPT_DTYPE_F16;
    ngpt_pipeline *p = NULL;
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (ngpt_pipeline_create(&p, ctx, bundle, &pp) != NGPT_OK) {
        fprintf(stderr, "pipeline_memory: create: %s\n", ngpt_last_error());
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    uint64_t anon_created = status_kb("RssAnon"), create_peak = atomic_exchange(&g_peak_anon, anon_created);

    ngpt_pipeline_media m = {NGPT_MODALITY_IMAGE, image, NULL, 0, NULL, NULL};
    ngpt_pipeline_turn_params tp;
    ngpt_pipeline_turn_params_default(&tp, sizeof tp);
    tp.force = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE);
    tp.max_new_tokens = 8;
    tp.steps = steps;
    tp.seed = 7;
    tp.height = tp.width = size;
    tp.on_event = on_event;
    ngpt_pipeline_result *r = NULL;
    if (ngpt_pipeline_turn(&r, p, "draw this cat in the snow", &m, 1, &tp) != NGPT_OK) {
        fprintf(stderr, "pipeline_memory: turn: %s\n", ngpt_last_error());
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (g_cur_stage >= 0) {
        uint64_t pk = atomic_load(&g_peak_anon);
        if (pk > g_stage_anon[g_cur_stage]) g_stage_anon[g_cur_stage] = pk;
    }
    atomic_store(&g_stop, 1);
    pthread_join(th, NULL);
    uint64_t hwm = status_kb("VmHWM"), rss_file = status_kb("RssFile"), rss_anon = status_kb("RssAnon");
    uint64_t peak_anon = atomic_load(&g_peak_total);
    if (getenv("PIPELINE_MEMORY_SMAPS")) print_smaps("after the turn");

    ngpt_memory_estimate *e = estimate(bundle, n_ctx, size), *e512 = estimate(bundle, 512, size);
    if (!e || !e512) return 1;
    uint64_t mapped = 0, est_peak = 0, est512_peak = 0;
    ngpt_memory_estimate_peak(e, &est_peak, NULL, &mapped);
    ngpt_memory_estimate_peak(e512, &est512_peak, NULL, NULL);

    printf("bundle %s, image %s, %dx%d, %d steps, n_ctx %d (0 = the pipeline's), create %.1f s, turn %.1f s\n",
           bundle, image, size, size, steps, n_ctx, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9,
           (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) * 1e-9);
    printf("\n| stage | library accounting (MiB) | estimate, n_ctx %s (MiB) | estimate, n_ctx 512 (MiB) | RssAnon peak, by progress events (MiB) |\n",
           n_ctx ? argv[5] : "default");
    printf("|---|---:|---:|---:|---:|\n");
    for (int s = 0; s < NGPT_PIPELINE_STAGE_COUNT; s++) {
        uint64_t host = 0, dev = 0;
        ngpt_pipeline_result_stage_memory(r, (ngpt_pipeline_stage)s, &host, &dev);
        printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", k_stage_name[s], (double)(g_cuda ? dev : host) / MIB,
               (double)ngpt_memory_estimate_stage(e, (ngpt_pipeline_stage)s) / MIB,
               (double)ngpt_memory_estimate_stage(e512, (ngpt_pipeline_stage)s) / MIB, (double)g_stage_anon[s] / MIB);
    }
    printf("\nprocess: RssAnon at start %.1f MiB, after create %.1f MiB (peak during create %.1f MiB), peak (5 ms samples) %.1f MiB, "
           "at end %.1f MiB; VmHWM %.1f MiB; RssFile at end %.1f MiB\n",
           (double)anon0 / MIB, (double)anon_created / MIB, (double)create_peak / MIB, (double)peak_anon / MIB,
           (double)rss_anon / MIB, (double)hwm / MIB, (double)rss_file / MIB);
    printf("mapped weights (estimate's CPU views of the files): %.2f GiB\n", (double)mapped / GIB);
    printf("estimate peak: %.3f GiB (n_ctx default), %.3f GiB (n_ctx 512)\n", (double)est_peak / GIB, (double)est512_peak / GIB);
    if (g_cuda) {
        uint64_t ovh = 0;
        ngpt_memory_estimate_peak(e, NULL, &ovh, NULL);
        printf("GPU (%s): the context's peak tensor memory %.3f GiB; estimate %.3f GiB (%.3f GiB of it the allowance"
               " for the CUDA context, libraries and pool slack); goal 18 GiB for the device's peak (see nvidia-smi)\n",
               ngpt_context_device_name(ctx), (double)ngpt_context_memory_peak(ctx) / GIB, (double)est_peak / GIB,
               (double)ovh / GIB);
    } else {
        printf("CPU peak beyond mapped weights: %.3f GiB measured (anonymous), %.3f GiB estimated; goal 2 GiB\n",
               (double)peak_anon / GIB, (double)(n_ctx == 512 ? est512_peak : est_peak) / GIB);
    }
    ngpt_memory_estimate_free(e);
    ngpt_memory_estimate_free(e512);
    ngpt_pipeline_result_free(r);
    ngpt_pipeline_free(p);
    ngpt_context_free(ctx);
    return 0;
}
