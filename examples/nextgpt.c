/* nextgpt — the libnextgpt command line.
 *
 *   nextgpt run [--model DIR] --prompt TEXT [--image F]... [--audio F]... [--video F]...
 *               [--out-dir D] [--force image|audio|video]... [--steps N] [--seed S]
 *               [--max-tokens N] [--json] [--device auto|cpu|cuda] [--threads N]
 *   nextgpt info [--model DIR] [--device ...] [--threads N]
 *   nextgpt convert ARGS...        (runs ngpt-convert: official pickles -> safetensors)
 *
 * Without --model, `run` uses the embedded tiny test model (random weights: the answer and the
 * media are noise) from the build tree or <prefix>/share/libnextgpt/tiny, and says so on stderr.
 * Exit status: 0 success, 1 a runtime error (the library's message on stderr), 2 bad usage.
 * Progress goes to stderr when it is a terminal; --json prints one JSON object on stdout.
 */
#include <nextgpt.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NGPT_TINY_BUILD_DIR
#define NGPT_TINY_BUILD_DIR ""
#endif
#ifndef NGPT_TINY_INSTALL_DIR
#define NGPT_TINY_INSTALL_DIR ""
#endif
#ifndef NGPT_CONVERT_BUILD_PATH
#define NGPT_CONVERT_BUILD_PATH ""
#endif

#define MAX_MEDIA 64

static int usage(FILE *f)
{
    fprintf(f,
        "usage: nextgpt run [--model DIR] --prompt TEXT [--image F]... [--audio F]... [--video F]...\n"
        "                   [--out-dir D] [--force image|audio|video]... [--steps N] [--seed S]\n"
        "                   [--max-tokens N] [--json] [--device auto|cpu|cuda] [--threads N]\n"
        "       nextgpt info [--model DIR] [--device auto|cpu|cuda] [--threads N]\n"
        "       nextgpt convert ARGS...   (ngpt-convert: official pickles -> safetensors)\n"
        "       nextgpt --version\n"
        "Without --model, the embedded tiny test model (random weights) is used.\n"
        "Exit status: 0 ok, 1 runtime error, 2 usage error.\n");
    return f == stdout ? 0 : 2;
}

static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "nextgpt: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return usage(stderr);
}

static int is_dir_with_manifest(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/bundle.json", dir);
    return dir[0] && access(p, R_OK) == 0;
}

/* The tiny bundle: $NEXTGPT_TINY_MODEL, the build tree, then the install prefix. */
static const char *tiny_model(void)
{
    const char *env = getenv("NEXTGPT_TINY_MODEL");
    if (env && is_dir_with_manifest(env)) return env;
    if (is_dir_with_manifest(NGPT_TINY_BUILD_DIR)) return NGPT_TINY_BUILD_DIR;
    if (is_dir_with_manifest(NGPT_TINY_INSTALL_DIR)) return NGPT_TINY_INSTALL_DIR;
    return NULL;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* ---------------------------------------------------------------------------------------------
 * Common options
 * ------------------------------------------------------------------------------------------- */

typedef struct opts {
    ngpt_context_params cp;
    const char *model;
    const char *prompt;
    const char *out_dir;
    ngpt_pipeline_media media[MAX_MEDIA];
    size_t n_media;
    uint32_t force;
    int32_t steps, max_tokens;
    uint64_t seed;
    int json;
} opts;

static int parse_modality(const char *s, ngpt_modality *m)
{
    if (strcmp(s, "image") == 0) *m = NGPT_MODALITY_IMAGE;
    else if (strcmp(s, "audio") == 0) *m = NGPT_MODALITY_AUDIO;
    else if (strcmp(s, "video") == 0) *m = NGPT_MODALITY_VIDEO;
    else return 0;
    return 1;
}

static int parse_int(const char *s, long long lo, long long hi, long long *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi) return 0;
    *v = x;
    return 1;
}

/* Returns -1 when all is well, else the exit status. */
static int parse(opts *o, int argc, char **argv, int run)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        long long v;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return usage(stdout);
        if (!has && a[0] == '-' && strcmp(a, "--json") != 0) return bad_usage("%s needs a value", a);
        if (strcmp(a, "--model") == 0) o->model = argv[++i];
        else if (strcmp(a, "--device") == 0) {
            const char *d = argv[++i];
            if (strcmp(d, "auto") == 0) o->cp.device = NGPT_DEVICE_AUTO;
            else if (strcmp(d, "cpu") == 0) o->cp.device = NGPT_DEVICE_CPU;
            else if (strcmp(d, "cuda") == 0) o->cp.device = NGPT_DEVICE_CUDA;
            else return bad_usage("--device: '%s' is not auto, cpu or cuda", d);
        } else if (strcmp(a, "--threads") == 0) {
            if (!parse_int(argv[++i], 0, 1024, &v)) return bad_usage("--threads: '%s' is not a count", argv[i]);
            o->cp.n_threads = (int32_t)v;
        } else if (run && strcmp(a, "--prompt") == 0) o->prompt = argv[++i];
        else if (run && strcmp(a, "--out-dir") == 0) o->out_dir = argv[++i];
        else if (run && (strcmp(a, "--image") == 0 || strcmp(a, "--audio") == 0 || strcmp(a, "--video") == 0)) {
            if (o->n_media == MAX_MEDIA) return bad_usage("at most 64 media items (%s)", a);
            ngpt_modality m;
            parse_modality(a + 2, &m);
            o->media[o->n_media++] = (ngpt_pipeline_media){m, argv[++i], NULL, 0, NULL, NULL};
        } else if (run && strcmp(a, "--force") == 0) {
            ngpt_modality m;
            if (!parse_modality(argv[++i], &m)) return bad_usage("--force: '%s' is not image, audio or video", argv[i]);
            o->force |= NGPT_PIPELINE_FORCE(m);
        } else if (run && strcmp(a, "--steps") == 0) {
            if (!parse_int(argv[++i], 1, 1000, &v)) return bad_usage("--steps: '%s' is not in 1..1000", argv[i]);
            o->steps = (int32_t)v;
        } else if (run && strcmp(a, "--max-tokens") == 0) {
            if (!parse_int(argv[++i], 1, 100000, &v)) return bad_usage("--max-tokens: '%s' is not in 1..100000", argv[i]);
            o->max_tokens = (int32_t)v;
        } else if (run && strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end) return bad_usage("--seed: '%s' is not a number", argv[i]);
            o->seed = s;
        } else if (run && strcmp(a, "--json") == 0) o->json = 1;
        else return bad_usage("unknown argument '%s'", a);
    }
    return -1;
}

static ngpt_context *make_context(const opts *o)
{
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &o->cp) != NGPT_OK) {
        fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
        return NULL;
    }
    return ctx;
}

/* ---------------------------------------------------------------------------------------------
 * run
 * ------------------------------------------------------------------------------------------- */

static bool progress(const ngpt_pipeline_event *ev, void *ud)
{
    (void)ud;
    static const char *const names[4] = {"text", "image", "audio", "video"};
    switch (ev->kind) {
    case NGPT_PIPELINE_EVENT_LOAD:
        fprintf(stderr, "\rloading %.*s...\033[K", (int)ev->text_len, ev->text);
        break;
    case NGPT_PIPELINE_EVENT_ENCODE:
        fprintf(stderr, "\rencoding media %d/%d\033[K", ev->step, ev->total);
        break;
    case NGPT_PIPELINE_EVENT_TOKEN:
        fprintf(stderr, "\rgenerating text (%.1f s)\033[K", ev->elapsed_s);
        break;
    case NGPT_PIPELINE_EVENT_DENOISE:
        fprintf(stderr, "\r%s: step %d/%d\033[K", names[ev->modality & 3], ev->step, ev->total);
        break;
    case NGPT_PIPELINE_EVENT_OUTPUT:
        fprintf(stderr, "\r\033[K");
        break;
    }
    fflush(stderr);
    return true;
}

static int cmd_run(int argc, char **argv)
{
    opts o = {0};
    ngpt_context_params_default(&o.cp, sizeof o.cp);
    o.out_dir = ".";
    int rc = parse(&o, argc, argv, 1);
    if (rc >= 0) return rc;
    if (!o.prompt) return bad_usage("run: --prompt is required%s", "");
    for (size_t i = 0; i < o.n_media; i++)
        if (access(o.media[i].path, R_OK) != 0) {
            fprintf(stderr, "nextgpt: cannot read %s: %s\n", o.media[i].path, strerror(errno));
            return 1;
        }
    const char *model = o.model;
    if (!model) {
        model = tiny_model();
        if (!model) {
            fprintf(stderr, "nextgpt: no --model given and the embedded tiny model was not found (looked in "
                            "$NEXTGPT_TINY_MODEL, %s, %s)\n", NGPT_TINY_BUILD_DIR, NGPT_TINY_INSTALL_DIR);
            return 1;
        }
        fprintf(stderr, "nextgpt: no --model given: using the embedded tiny test model (%s).\n"
                        "nextgpt: NOTE: it has RANDOM weights; its answers and media are noise. Pass --model DIR "
                        "for a real NExT-GPT bundle.\n", model);
    }
    if (mkdir(o.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "nextgpt: cannot create --out-dir %s: %s\n", o.out_dir, strerror(errno));
        return 1;
    }
    int tty = isatty(2) && !o.json;
    ngpt_context *ctx = make_context(&o);
    if (!ctx) return 1;
    ngpt_pipeline_params pp;
    ngpt_pipeline_params_default(&pp, sizeof pp);
    if (tty) pp.on_event = progress;
    ngpt_pipeline *p = NULL;
    if (ngpt_pipeline_create(&p, ctx, model, &pp) != NGPT_OK) {
        if (tty) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
        ngpt_context_free(ctx);
        return 1;
    }
    ngpt_pipeline_turn_params tp;
    ngpt_pipeline_turn_params_default(&tp, sizeof tp);
    tp.force = o.force;
    tp.steps = o.steps;
    tp.seed = o.seed;
    if (o.max_tokens) tp.max_new_tokens = o.max_tokens;
    if (tty) tp.on_event = progress;
    ngpt_pipeline_result *r = NULL;
    ngpt_status st = ngpt_pipeline_turn(&r, p, o.prompt, o.media, o.n_media, &tp);
    if (tty) fprintf(stderr, "\r\033[K");
    if (st != NGPT_OK) {
        fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
        ngpt_pipeline_free(p);
        ngpt_context_free(ctx);
        return 1;
    }
    static const char *const names[4] = {"text", "image", "audio", "video"};
    rc = 0;
    if (o.json) printf("{\"test_model\": %s, \"text\": ", ngpt_pipeline_is_test_model(p) ? "true" : "false");
    if (o.json) json_str(stdout, ngpt_pipeline_result_text(r, NULL));
    else printf("%s\n", ngpt_pipeline_result_text(r, NULL));
    if (o.json) printf(", \"outputs\": [");
    for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r); i++) {
        ngpt_modality m;
        const uint8_t *bytes;
        size_t n;
        const char *fmt;
        ngpt_status os = ngpt_pipeline_result_output(r, i, &m, &bytes, &n, &fmt);
        char path[4096] = "";
        const char *msg = os == NGPT_OK ? "" : ngpt_pipeline_result_output_message(r, i);
        if (os == NGPT_OK) {
            snprintf(path, sizeof path, "%s/%s-%d.%s", o.out_dir, names[m & 3], (int)i, fmt);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(bytes, 1, n, f) != n) {
                fprintf(stderr, "nextgpt: cannot write %s: %s\n", path, strerror(errno));
                if (f) fclose(f);
                rc = 1;
                path[0] = 0;
            } else if (fclose(f) != 0) {
                fprintf(stderr, "nextgpt: cannot write %s: %s\n", path, strerror(errno));
                rc = 1;
            } else if (!o.json) {
                printf("wrote %s (%s, %zu bytes)\n", path, names[m & 3], n);
            }
        } else {
            fprintf(stderr, "nextgpt: %s output not produced: %s\n", names[m & 3], msg);
        }
        if (o.json) {
            printf("%s{\"modality\": \"%s\", \"status\": \"%s\", \"file\": ", i ? ", " : "", names[m & 3],
                   ngpt_status_string(os));
            if (path[0]) json_str(stdout, path); else printf("null");
            printf(", \"bytes\": %zu, \"message\": ", os == NGPT_OK ? n : (size_t)0);
            json_str(stdout, msg);
            printf("}");
        }
    }
    if (o.json) {
        static const char *const stages[NGPT_PIPELINE_STAGE_COUNT] = {"load", "encode", "project", "llm", "decode", "media_out"};
        printf("], \"cancelled\": %s, \"timings_ms\": {", ngpt_pipeline_result_cancelled(r) ? "true" : "false");
        for (int s = 0; s < NGPT_PIPELINE_STAGE_COUNT; s++)
            printf("%s\"%s\": %.3f", s ? ", " : "", stages[s], ngpt_pipeline_result_stage_ms(r, (ngpt_pipeline_stage)s));
        printf("}}\n");
    }
    ngpt_pipeline_result_free(r);
    ngpt_pipeline_free(p);
    ngpt_context_free(ctx);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * info: the library, the device, and a bundle's components (tensors, dtypes, bytes)
 * ------------------------------------------------------------------------------------------- */

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

#include <dirent.h>

static void scan_tree(const char *root, const char *rel, int depth)
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
    if (files)
        printf("  %-36s %6lld tensors  %-10s %9.2f MiB%s\n", rel[0] ? rel : ".", t.tensors,
               t.dtypes[0] ? t.dtypes : "-", (double)(t.bytes + other) / (1024.0 * 1024.0),
               other ? " (incl. pickles, not counted)" : "");
    for (int i = 0; i < n_subs; i++) {
        char r[4096];
        if (snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", subs[i]) >= (int)sizeof r) continue;
        scan_tree(root, r, depth + 1);
    }
}

static int cmd_info(int argc, char **argv)
{
    opts o = {0};
    ngpt_context_params_default(&o.cp, sizeof o.cp);
    int rc = parse(&o, argc, argv, 0);
    if (rc >= 0) return rc;
    ngpt_context *ctx = make_context(&o);
    if (!ctx) return 1;
    printf("libnextgpt %s (ABI %d)\n", ngpt_version(), ngpt_abi_version());
    printf("cuda build: %s\n", ngpt_has_cuda_build() ? "yes" : "no");
    printf("backend:    %s\n", ngpt_backend_name(ngpt_context_backend(ctx)));
    printf("device:     %s\n", ngpt_context_device_name(ctx));
    printf("threads:    %d\n", ngpt_context_n_threads(ctx));
    const char *note = ngpt_context_backend_note(ctx);
    if (note[0]) printf("note:       %s\n", note);
    ngpt_context_free(ctx);
    const char *model = o.model ? o.model : tiny_model();
    if (!model) return 0;
    if (!is_dir_with_manifest(model)) {
        fprintf(stderr, "nextgpt: %s/bundle.json: %s\n", model, strerror(errno ? errno : ENOENT));
        return 1;
    }
    printf("model:      %s%s\n", model, o.model ? "" : " (embedded tiny test model, random weights)");
    printf("components (weights on disk; on the CPU they are memory-mapped, on CUDA uploaded once):\n");
    scan_tree(model, "", 0);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * convert: run ngpt-convert (next to this program, in the build tree, or on PATH)
 * ------------------------------------------------------------------------------------------- */

static int cmd_convert(int argc, char **argv, const char *self)
{
    char path[4096];
    const char *slash = strrchr(self, '/');
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args) return 1;
    for (int i = 0; i < argc; i++) args[i + 1] = argv[i];
    if (slash) {
        snprintf(path, sizeof path, "%.*s/ngpt-convert", (int)(slash - self), self);
        args[0] = path;
        if (access(path, X_OK) == 0) execv(path, args);
    }
    if (NGPT_CONVERT_BUILD_PATH[0] && access(NGPT_CONVERT_BUILD_PATH, X_OK) == 0) {
        args[0] = (char *)NGPT_CONVERT_BUILD_PATH;
        execv(NGPT_CONVERT_BUILD_PATH, args);
    }
    args[0] = (char *)"ngpt-convert";
    execvp("ngpt-convert", args);
    fprintf(stderr, "nextgpt: cannot run ngpt-convert: %s\n", strerror(errno));
    free(args);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("%s\n", ngpt_version());
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0))
        return usage(stdout);
    if (argc < 2 || strcmp(argv[1], "info") == 0) return cmd_info(argc < 2 ? 0 : argc - 2, argv + 2);
    if (strcmp(argv[1], "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "convert") == 0) return cmd_convert(argc - 2, argv + 2, argv[0]);
    if (argv[1][0] == '-') return cmd_info(argc - 1, argv + 1);  /* `nextgpt --device cpu`: info */
    return bad_usage("unknown command '%s' (run, info, convert)", argv[1]);
}
