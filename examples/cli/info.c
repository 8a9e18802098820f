/* nextgpt info: the library, the device, a bundle's components (tensors, dtypes, bytes) and the
 * memory estimate of a turn. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct tally {
    long long tensors, bytes;
    char dtypes[128];
} tally;

/* Count the tensors of a safetensors file by its header (no JSON library: the header's
 * "dtype" entries are counted; the data size is the file size minus the header). */
static int scan_safetensors(const char *path, tally *t)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char len8[8];
    if (fread(len8, 1, 8, f) != 8) { fclose(f); return 0; }
    unsigned long long n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | len8[i];
    if (n > (100ull << 20)) { fclose(f); return 0; }
    char *h = malloc(n + 1);
    if (!h || fread(h, 1, n, f) != n) { free(h); fclose(f); return 0; }
    h[n] = 0;
    fseek(f, 0, SEEK_END);
    long long size = ftell(f);
    fclose(f);
    for (const char *p = strstr(h, "\"dtype\""); p; p = strstr(p + 1, "\"dtype\"")) {
        const char *q = strchr(p + 7, '"');
        if (!q) break;
        const char *e = strchr(q + 1, '"');
        if (!e) break;
        char dt[16];
        snprintf(dt, sizeof dt, "%.*s", (int)(e - q - 1), q + 1);
        if (!strstr(t->dtypes, dt) && strlen(t->dtypes) + strlen(dt) + 2 < sizeof t->dtypes) {
            if (t->dtypes[0]) strcat(t->dtypes, ",");
            strcat(t->dtypes, dt);
        }
        t->tensors++;
    }
    t->bytes += size - 8 - (long long)n;
    free(h);
    return 1;
}

/* One folder with weights. */
typedef struct component {
    char      rel[512];
    long long tensors, bytes, pickle_bytes;
    char      dtypes[128];
} component;

typedef struct components {
    component c[256];
    int       n;
} components;

static void scan_tree(components *out, const char *root, const char *rel, int depth)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s%s%s", root, rel[0] ? "/" : "", rel) >= (int)sizeof dir) return;
    DIR *d = opendir(dir);
    if (!d) return;
    tally t = {0};
    long long other = 0;
    int files = 0;
    struct dirent *e;
    char subs[64][256];
    int n_subs = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (stat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (n_subs < 64 && depth < 4) snprintf(subs[n_subs++], sizeof subs[0], "%s", e->d_name);
            continue;
        }
        size_t l = strlen(e->d_name);
        if (l > 12 && strcmp(e->d_name + l - 12, ".safetensors") == 0) { files += scan_safetensors(p, &t); }
        else if ((l > 3 && strcmp(e->d_name + l - 3, ".pt") == 0) || (l > 4 && (strcmp(e->d_name + l - 4, ".pth") == 0 ||
                 strcmp(e->d_name + l - 4, ".bin") == 0))) { other += st.st_size; files++; }
    }
    closedir(d);
    if (files && out->n < 256) {
        component *c = &out->c[out->n++];
        snprintf(c->rel, sizeof c->rel, "%.*s", (int)sizeof c->rel - 1, rel[0] ? rel : ".");  /* paths past 511 bytes shown cut */
        c->tensors = t.tensors;
        c->bytes = t.bytes + other;
        c->pickle_bytes = other;
        snprintf(c->dtypes, sizeof c->dtypes, "%s", t.dtypes);
    }
    for (int i = 0; i < n_subs; i++) {
        char r[4096];
        if (snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", subs[i]) >= (int)sizeof r) continue;
        scan_tree(out, root, r, depth + 1);
    }
}

static const char *const k_part_names[NGPT_MEMORY_PART_COUNT] = {"backbone", "encoder", "projector", "image_decoder",
                                                                 "audio_decoder", "video_decoder"};
static const char *const k_stage_names[NGPT_PIPELINE_STAGE_COUNT] = {"load", "encode", "project", "llm", "decode",
                                                                     "media_out"};

/* The memory estimate of a turn for info: on the backend --device names (auto: the context's),
 * in --dtype, with --ctx, --size and --force (the output decoders; default image). NULL with the
 * library's message on stderr when the bundle's configs cannot be read. */
static ngpt_memory_estimate *info_estimate(const opts *o, ngpt_context *ctx, const char *model, ngpt_memory_params *mp)
{
    ngpt_memory_params_default(mp, sizeof *mp);
    mp->backend = o->cp.device == NGPT_DEVICE_CUDA ? NGPT_BACKEND_CUDA
                : o->cp.device == NGPT_DEVICE_CPU ? NGPT_BACKEND_CPU : ngpt_context_backend(ctx);
    mp->compute_dtype = o->dtype;
    mp->n_ctx = o->n_ctx;
    mp->width = o->width;
    mp->height = o->height;
    if (o->force) mp->outputs = o->force;
    if (o->safety_checker) mp->flags = NGPT_PIPELINE_SAFETY_CHECKER;
    ngpt_memory_estimate *e = NULL;
    if (ngpt_pipeline_estimate_memory(&e, model, mp) != NGPT_OK) {
        fprintf(stderr, "nextgpt: memory estimate: %s\n", ngpt_last_error());
        return NULL;
    }
    return e;
}

static void print_bytes(char *buf, size_t n, uint64_t b)
{
    if (b == 0) snprintf(buf, n, "0");
    else if (b >= (1ull << 30)) snprintf(buf, n, "%.2f GiB", (double)b / (1024.0 * 1024.0 * 1024.0));
    else if (b >= (1ull << 20)) snprintf(buf, n, "%.1f MiB", (double)b / (1024.0 * 1024.0));
    else snprintf(buf, n, "%.1f KiB", (double)b / 1024.0);
}

static void info_memory_table(const ngpt_memory_estimate *e, const ngpt_memory_params *mp)
{
    char a[32], b[32], c[32], d[32];
    printf("memory estimate of a turn (%s, %s, context %s, outputs:%s%s%s; from the configs, see\n"
           "docs/architecture.md \"Memory estimate\"):\n",
           ngpt_backend_name(mp->backend), ngpt_dtype_name(mp->compute_dtype), mp->n_ctx ? "--ctx" : "min(2048, model)",
           (mp->outputs & NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE)) ? " image" : "",
           (mp->outputs & NGPT_PIPELINE_FORCE(NGPT_MODALITY_AUDIO)) ? " audio" : "",
           (mp->outputs & NGPT_PIPELINE_FORCE(NGPT_MODALITY_VIDEO)) ? " video" : "");
    printf("  %-14s %12s %12s %12s %12s\n", "part", "weights", "mmapped", "KV cache", "working");
    for (int i = 0; i < NGPT_MEMORY_PART_COUNT; i++) {
        if (!ngpt_memory_estimate_has_part(e, (ngpt_memory_part)i)) continue;
        uint64_t w, m, kv, wk;
        ngpt_memory_estimate_part(e, (ngpt_memory_part)i, &w, &m, &kv, &wk);
        print_bytes(a, sizeof a, w), print_bytes(b, sizeof b, m), print_bytes(c, sizeof c, kv), print_bytes(d, sizeof d, wk);
        printf("  %-14s %12s %12s %12s %12s\n", k_part_names[i], a, b, c, d);
    }
    printf("  stage peaks (%s tensor memory):", mp->backend == NGPT_BACKEND_CUDA ? "device" : "host");
    for (int s = 0; s < NGPT_PIPELINE_STAGE_COUNT; s++) {
        print_bytes(a, sizeof a, ngpt_memory_estimate_stage(e, (ngpt_pipeline_stage)s));
        printf("%s %s %s", s ? "," : "", k_stage_names[s], a);
    }
    uint64_t peak, over, mapped;
    ngpt_memory_estimate_peak(e, &peak, &over, &mapped);
    print_bytes(a, sizeof a, peak), print_bytes(b, sizeof b, over), print_bytes(c, sizeof c, mapped);
    printf("\n  turn peak: %s%s%s%s; weights read from mmapped files, not included: %s\n", a,
           over ? " (incl. " : "", over ? b : "", over ? " for the CUDA context and workspaces)" : "", c);
}

static void info_memory_json(const ngpt_memory_estimate *e, const ngpt_memory_params *mp)
{
    if (!e) {
        printf("null");
        return;
    }
    uint64_t peak, over, mapped;
    ngpt_memory_estimate_peak(e, &peak, &over, &mapped);
    printf("{\"backend\": \"%s\", \"dtype\": \"%s\", \"n_ctx\": %d, \"width\": %d, \"height\": %d, \"outputs\": [",
           ngpt_backend_name(mp->backend), ngpt_dtype_name(mp->compute_dtype), (int)mp->n_ctx, (int)mp->width,
           (int)mp->height);
    int k = 0;
    for (int m = NGPT_MODALITY_IMAGE; m <= NGPT_MODALITY_VIDEO; m++)
        if (mp->outputs & NGPT_PIPELINE_FORCE(m)) printf("%s\"%s\"", k++ ? ", " : "", k_names[m]);
    printf("], \"parts\": {");
    k = 0;
    for (int i = 0; i < NGPT_MEMORY_PART_COUNT; i++) {
        if (!ngpt_memory_estimate_has_part(e, (ngpt_memory_part)i)) continue;
        uint64_t w, m, kv, wk;
        ngpt_memory_estimate_part(e, (ngpt_memory_part)i, &w, &m, &kv, &wk);
        printf("%s\"%s\": {\"weight_bytes\": %llu, \"mapped_bytes\": %llu, \"kv_bytes\": %llu, \"work_bytes\": %llu}",
               k++ ? ", " : "", k_part_names[i], (unsigned long long)w, (unsigned long long)m, (unsigned long long)kv,
               (unsigned long long)wk);
    }
    printf("}, \"stage_peak_bytes\": {");
    for (int s = 0; s < NGPT_PIPELINE_STAGE_COUNT; s++)
        printf("%s\"%s\": %llu", s ? ", " : "", k_stage_names[s],
               (unsigned long long)ngpt_memory_estimate_stage(e, (ngpt_pipeline_stage)s));
    printf("}, \"peak_bytes\": %llu, \"overhead_bytes\": %llu, \"mapped_bytes\": %llu}", (unsigned long long)peak,
           (unsigned long long)over, (unsigned long long)mapped);
}

/* info --json: {"version", "abi", "cuda_build", "backend", "device", "threads", "note", "model":
 * null | {"path", "test_model", "components": [{"path", "tensors", "dtypes": [...], "bytes",
 * "pickle_bytes"}], "memory": null (configs unreadable) | {"backend", "dtype", "n_ctx", "width",
 * "height", "outputs": [...], "parts": {"backbone": {"weight_bytes", "mapped_bytes", "kv_bytes",
 * "work_bytes"}, ...}, "stage_peak_bytes": {"load", ..., "media_out"}, "peak_bytes",
 * "overhead_bytes", "mapped_bytes"}}} */
static void info_json(ngpt_context *ctx, const char *note, const char *model, int tiny, const components *cs,
                      const ngpt_memory_estimate *e, const ngpt_memory_params *mp)
{
    printf("{\"version\": ");
    json_str(stdout, ngpt_version());
    printf(", \"abi\": %d, \"cuda_build\": %s, \"backend\": ", ngpt_abi_version(), ngpt_has_cuda_build() ? "true" : "false");
    json_str(stdout, ngpt_backend_name(ngpt_context_backend(ctx)));
    printf(", \"device\": ");
    json_str(stdout, ngpt_context_device_name(ctx));
    printf(", \"threads\": %d, \"note\": ", ngpt_context_n_threads(ctx));
    json_str(stdout, note);
    printf(", \"model\": ");
    if (!model) {
        printf("null}\n");
        return;
    }
    printf("{\"path\": ");
    json_str(stdout, model);
    printf(", \"test_model\": %s, \"components\": [", tiny ? "true" : "false");
    for (int i = 0; i < cs->n; i++) {
        const component *c = &cs->c[i];
        printf("%s{\"path\": ", i ? ", " : "");
        json_str(stdout, c->rel);
        printf(", \"tensors\": %lld, \"dtypes\": [", c->tensors);
        const char *d = c->dtypes;
        for (int k = 0; *d; k++) {
            const char *e = strchr(d, ',');
            size_t n = e ? (size_t)(e - d) : strlen(d);
            printf("%s\"%.*s\"", k ? ", " : "", (int)n, d);
            d += n + (e ? 1 : 0);
        }
        printf("], \"bytes\": %lld, \"pickle_bytes\": %lld}", c->bytes, c->pickle_bytes);
    }
    printf("], \"memory\": ");
    info_memory_json(e, mp);
    printf("}}\n");
}

int cmd_info(int argc, char **argv)
{
    opts o;
    int rc = parse(&o, argc, argv, MODE_INFO);
    if (rc >= 0) return rc;
    ngpt_context *ctx = NULL;
    char fallback[700] = ""; /* why --device cuda describes the CPU (the JSON's and text's note) */
    if (o.cp.device == NGPT_DEVICE_CUDA && ngpt_context_create(&ctx, &o.cp) != NGPT_OK) {
        /* info describes: without a usable GPU it still estimates for CUDA, on a CPU context */
        snprintf(fallback, sizeof fallback, "using the CPU: %s (the memory estimate is for CUDA)", ngpt_last_error());
        fprintf(stderr, "nextgpt: %s\nnextgpt: describing the CPU; the memory estimate is for CUDA\n", ngpt_last_error());
        ngpt_context_params cp = o.cp;
        cp.device = NGPT_DEVICE_CPU;
        if (ngpt_context_create(&ctx, &cp) != NGPT_OK) ctx = NULL;
    }
    if (!ctx) ctx = make_context(&o);
    if (!ctx) return 1;
    const char *note = fallback[0] ? fallback : ngpt_context_backend_note(ctx);
    const char *model = o.model ? o.model : tiny_model();
    if (model && !is_dir_with_manifest(model)) {
        fprintf(stderr, "nextgpt: %s/bundle.json: %s\n", model, strerror(errno ? errno : ENOENT));
        ngpt_context_free(ctx);
        return 1;
    }
    static components cs;
    cs.n = 0;
    if (model) scan_tree(&cs, model, "", 0);
    ngpt_memory_params mp;
    ngpt_memory_estimate *e = model ? info_estimate(&o, ctx, model, &mp) : NULL;
    int rc_mem = model && !e ? 1 : 0;
    if (o.json) {
        info_json(ctx, note, model, model && !o.model, &cs, e, &mp);
        ngpt_memory_estimate_free(e);
        ngpt_context_free(ctx);
        return rc_mem;
    }
    printf("libnextgpt %s (ABI %d)\n", ngpt_version(), ngpt_abi_version());
    printf("cuda build: %s\n", ngpt_has_cuda_build() ? "yes" : "no");
    printf("backend:    %s\n", ngpt_backend_name(ngpt_context_backend(ctx)));
    printf("device:     %s\n", ngpt_context_device_name(ctx));
    printf("threads:    %d\n", ngpt_context_n_threads(ctx));
    if (note[0]) printf("note:       %s\n", note);
    ngpt_context_free(ctx);
    if (!model) return 0;
    printf("model:      %s%s\n", model, o.model ? "" : " (embedded tiny test model, random weights)");
    printf("components (weights on disk; on the CPU they are memory-mapped, on CUDA uploaded once):\n");
    for (int i = 0; i < cs.n; i++) {
        const component *c = &cs.c[i];
        printf("  %-36s %6lld tensors  %-10s %9.2f MiB%s\n", c->rel, c->tensors, c->dtypes[0] ? c->dtypes : "-",
               (double)c->bytes / (1024.0 * 1024.0), c->pickle_bytes ? " (incl. pickles, not counted)" : "");
    }
    if (e) info_memory_table(e, &mp);
    ngpt_memory_estimate_free(e);
    return rc_mem;
}
