/* nextgpt — the libnextgpt command line.
 *
 *   nextgpt run [--model DIR] --prompt TEXT [--image F]... [--audio F]... [--video F]...
 *               [--out-dir D] [--force image|audio|video]... [--steps N] [--seed S]
 *               [--scheduler ddim|pndm|dpm|euler|euler-a|heun|unipc|lms|kdpm2|kdpm2-a|deis|ddpm|
 *                            dpm-single]
 *               [--size WxH] [--frames N] [--seconds S]
 *               [--max-tokens N] [--json] [--device auto|cpu|cuda] [--threads N] [--dtype f32|f16|bf16]
 *               [--cuda-graphs] [--channels-last] [--safety-checker]
 *   nextgpt chat [--model DIR] [--out-dir D] [--force M]... [--steps N] [--seed S] [--scheduler NAME]
 *               [--size WxH] [--frames N] [--seconds S] [--max-tokens N] [--no-media-history] [--json]
 *               [--device ...] [--threads N] [--dtype ...]
 *               [--cuda-graphs] [--channels-last] [--safety-checker]
 *   nextgpt info [--model DIR] [--json] [--device ...] [--threads N] [--dtype ...] [--ctx N]
 *               [--size WxH] [--force M]... [--safety-checker]   (memory estimate of a turn: its device, dtype,
 *               context, image size and output modalities; default: image)
 *   nextgpt convert ARGS...        (runs ngpt-convert: official pickles -> safetensors)
 *
 * Without --model, `run` and `chat` use the embedded tiny test model (random weights: the answer
 * and the media are noise) from the build tree or <prefix>/share/libnextgpt/tiny, and say so on
 * stderr. `chat` reads the conversation from stdin, one line per message or command (chat_help).
 * Exit status: 0 success, 1 a runtime error (the library's message on stderr; for chat: any line
 * failed), 2 bad usage. Progress goes to stderr when it is a terminal; --json prints one JSON
 * object on stdout (run, info) or one per turn and per failed line (chat).
 */
#include <nextgpt.h>

#include <ctype.h>
#include <errno.h>
#include <signal.h>
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
        "                   [--scheduler ddim|pndm|dpm|euler|euler-a|heun|unipc|lms|kdpm2|kdpm2-a|deis|ddpm|\n"
        "                                dpm-single]   (default: each decoder's own)\n"
        "                   [--size WxH] [--frames N] [--seconds S]   (image/video size, video frames,\n"
        "                                audio length; default: each decoder's own)\n"
        "                   [--max-tokens N] [--json] [--device auto|cpu|cuda] [--threads N]\n"
        "                   [--dtype f32|f16|bf16]   (f16/bf16: compute dtype on CUDA; bf16 on the CPU too)\n"
        "                   [--cuda-graphs]   (CUDA: stages recorded once as graphs and replayed)\n"
        "                   [--channels-last] (decoders' UNets and VAEs NHWC inside: cuDNN's layout)\n"
        "                   [--safety-checker] (SD's safety checker blacks out flagged images, as NExT-GPT)\n"
        "       nextgpt chat [--model DIR] [--out-dir D] [--force image|audio|video]... [--steps N]\n"
        "                   [--seed S] [--scheduler NAME] [--size WxH] [--frames N] [--seconds S]\n"
        "                   [--max-tokens N] [--no-media-history] [--json]\n"
        "                   [--device auto|cpu|cuda] [--threads N] [--dtype f32|f16|bf16]\n"
        "                   [--cuda-graphs] [--channels-last] [--safety-checker]\n"
        "                   (nextgpt chat --help: commands)\n"
        "       nextgpt info [--model DIR] [--json] [--device auto|cpu|cuda] [--threads N]\n"
        "                   [--dtype f32|f16|bf16] [--ctx N] [--size WxH] [--force image|audio|video]...\n"
        "                   [--safety-checker]\n"
        "                   (components, and the memory a turn needs on that device: --force names\n"
        "                   the output decoders, default image; --size the image/video size)\n"
        "       nextgpt convert ARGS...   (ngpt-convert: official pickles -> safetensors)\n"
        "       nextgpt --version\n"
        "Without --model, the embedded tiny test model (random weights) is used.\n"
        "Exit status: 0 ok, 1 runtime error, 2 usage error.\n");
    return f == stdout ? 0 : 2;
}

static int chat_help(FILE *f)
{
    usage(f);
    fprintf(f,
        "\n"
        "nextgpt chat: a multi-turn conversation read from stdin, one line at a time (typed, or piped).\n"
        "One pipeline for the whole conversation: the history stays in its KV cache, and generated\n"
        "media re-enter it as NExT-GPT's demo does (--no-media-history: they do not).\n"
        "A line is a message (sent as one turn, with the media attached before it), or a command:\n"
        "  /image PATH    attach an image to the next message (also /audio PATH, /video PATH;\n"
        "                 several may be attached; the file must be readable)\n"
        "  /force MODALITY  the next message must answer with image, audio or video (repeatable;\n"
        "                 --force applies to every message)\n"
        "  /reset         forget the conversation and the pending attachments\n"
        "  /help          this text (on stderr)\n"
        "  /quit          end (as does the end of stdin; /exit too)\n"
        "  //TEXT         the message \"/TEXT\"\n"
        "Ctrl-C during a turn cancels it (the partial answer is kept; \"cancelled\": true).\n"
        "Empty lines are ignored. The answer goes to stdout; generated media are written to --out-dir\n"
        "as turnN-MODALITY-I.EXT and each is named on a 'wrote' line. A line that fails (an unknown\n"
        "command, a missing file, a turn the library refuses) is reported on stderr and the chat\n"
        "goes on, the conversation unchanged; the exit status is then 1.\n"
        "--json: one JSON object per line on stdout: for a turn {\"turn\", \"test_model\", \"text\",\n"
        "\"outputs\", \"history_media\", \"history_error\", \"n_past\", \"cancelled\", \"timings_ms\","
        " \"peak_host_bytes\", \"peak_device_bytes\"} (turn: the\n"
        "message's number, failed ones included); for a failed line\n"
        "{\"error\": {\"line\": N, \"input\": LINE, \"message\": TEXT}}; commands that succeed print\n"
        "nothing.\n");
    return f == stdout ? 0 : 2;
}

#define STR_(x) #x
#define STR(x) STR_(x) /* a macro's value as a string literal */

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

/* Length of the valid UTF-8 sequence at p (1..4), 0 when p does not start one. */
static int utf8_seq(const unsigned char *p)
{
    int n = p[0] < 0x80 ? 1 : p[0] >= 0xC2 && p[0] <= 0xDF ? 2 : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
          : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : 0;
    for (int i = 1; i < n; i++) {
        unsigned lo = 0x80, hi = 0xBF;
        if (i == 1 && p[0] == 0xE0) lo = 0xA0;
        if (i == 1 && p[0] == 0xED) hi = 0x9F;
        if (i == 1 && p[0] == 0xF0) lo = 0x90;
        if (i == 1 && p[0] == 0xF4) hi = 0x8F;
        if (p[i] < lo || p[i] > hi) return 0;
    }
    return n;
}

/* A JSON string: escapes, and U+FFFD for each byte that is not valid UTF-8 (user input may be
 * any bytes), so that the output always parses. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = utf8_seq(p);
        if (n == 0) { fputs("\\ufffd", f); p++; continue; }
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fwrite(p, 1, (size_t)n, f);
        p += n;
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
    ngpt_scheduler_kind scheduler;  /* --scheduler (AUTO: each decoder folder's own) */
    int json;
    int no_media_history;
    int cuda_graphs;
    int channels_last;
    int safety_checker;
    ngpt_dtype dtype;  /* --dtype: the pipeline's compute dtype (F32 default; f16/bf16 on CUDA, bf16 on the CPU) */
    int32_t n_ctx;     /* info --ctx: the conversation's context (0 = the pipeline's default) */
    int32_t width, height;  /* --size WxH (0 = the decoder's) */
    int32_t frames;         /* run/chat --frames: video frames (0 = 24) */
    double seconds;         /* run/chat --seconds: audio length (0 = 5 s) */
} opts;

enum { MODE_INFO = 0, MODE_RUN = 1, MODE_CHAT = 2 };

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
    /* digits only, as written: strtoll would also take " 5" and "+5" */
    if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1]))) return 0;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi) return 0;
    *v = x;
    return 1;
}

/* The options followed by a value: a trailing one lacks it, anything else trailing is unknown. */
static int takes_value(const char *a)
{
    static const char *const v[] = {"--model", "--device", "--threads", "--ctx", "--size", "--dtype", "--out-dir",
                                    "--force", "--steps", "--seed", "--scheduler", "--max-tokens", "--prompt",
                                    "--image", "--audio", "--video", "--frames", "--seconds"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (strcmp(a, v[i]) == 0) return 1;
    return 0;
}

/* Returns -1 when all is well, else the exit status. */
static int parse(opts *o, int argc, char **argv, int mode)
{
    const int run = mode == MODE_RUN, gen = mode != MODE_INFO;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        long long v;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return mode == MODE_CHAT ? chat_help(stdout) : usage(stdout);
        if (strcmp(a, "--json") == 0) { o->json = 1; continue; }
        if (mode == MODE_CHAT && strcmp(a, "--no-media-history") == 0) { o->no_media_history = 1; continue; }
        if (gen && strcmp(a, "--cuda-graphs") == 0) { o->cuda_graphs = 1; continue; }
        if (gen && strcmp(a, "--channels-last") == 0) { o->channels_last = 1; continue; }
        if (strcmp(a, "--safety-checker") == 0) { o->safety_checker = 1; continue; }
        if (mode == MODE_CHAT && (strcmp(a, "--prompt") == 0 || strcmp(a, "--image") == 0 || strcmp(a, "--audio") == 0 ||
                                  strcmp(a, "--video") == 0))
            return bad_usage("chat: %s is given in the conversation (a message line, /image PATH ...): see nextgpt chat --help", a);
        if (!has && takes_value(a)) return bad_usage("%s needs a value", a);
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
        } else if (!gen && strcmp(a, "--ctx") == 0) {
            if (!parse_int(argv[++i], 1, 1 << 20, &v)) return bad_usage("--ctx: '%s' is not in 1..1048576", argv[i]);
            o->n_ctx = (int32_t)v;
        } else if (strcmp(a, "--size") == 0) {
            long long w = 0, h = 0;
            const char *sz = argv[++i], *x = strchr(sz, 'x');
            char ws[32] = "";
            /* each side digits only, through parse_int: sscanf's %d took " +512" and wrapped 2^32+8 to 8 */
            if (x && (size_t)(x - sz) < sizeof ws) memcpy(ws, sz, (size_t)(x - sz));
            if (!x || !parse_int(ws, 8, NGPT_DECODE_MAX_SIDE, &w) || !parse_int(x + 1, 8, NGPT_DECODE_MAX_SIDE, &h) ||
                w % 8 || h % 8)
                return bad_usage("--size: '%s' is not WxH (multiples of 8 in 8.." STR(NGPT_DECODE_MAX_SIDE)
                                 ", as the decoders take)", sz);
            o->width = (int32_t)w;
            o->height = (int32_t)h;
        } else if (strcmp(a, "--dtype") == 0) {
            const char *d = argv[++i];
            if (strcmp(d, "f32") == 0) o->dtype = NGPT_DTYPE_F32;
            else if (strcmp(d, "f16") == 0) o->dtype = NGPT_DTYPE_F16;
            else if (strcmp(d, "bf16") == 0) o->dtype = NGPT_DTYPE_BF16;
            else return bad_usage("--dtype: '%s' is not f32, f16 or bf16", d);
        } else if (run && strcmp(a, "--prompt") == 0) o->prompt = argv[++i];
        else if (gen && strcmp(a, "--out-dir") == 0) o->out_dir = argv[++i];
        else if (run && (strcmp(a, "--image") == 0 || strcmp(a, "--audio") == 0 || strcmp(a, "--video") == 0)) {
            if (o->n_media == MAX_MEDIA) return bad_usage("at most 64 media items (%s)", a);
            ngpt_modality m;
            parse_modality(a + 2, &m);
            o->media[o->n_media++] = (ngpt_pipeline_media){m, argv[++i], NULL, 0, NULL, NULL};
        } else if (strcmp(a, "--force") == 0) {
            ngpt_modality m;
            if (!parse_modality(argv[++i], &m)) return bad_usage("--force: '%s' is not image, audio or video", argv[i]);
            o->force |= NGPT_PIPELINE_FORCE(m);
        } else if (gen && strcmp(a, "--steps") == 0) {
            if (!parse_int(argv[++i], 1, 1000, &v)) return bad_usage("--steps: '%s' is not in 1..1000", argv[i]);
            o->steps = (int32_t)v;
        } else if (gen && strcmp(a, "--scheduler") == 0) {
            static const struct { const char *name; ngpt_scheduler_kind kind; } k[] = {
                {"ddim", NGPT_SCHEDULER_DDIM}, {"pndm", NGPT_SCHEDULER_PNDM},
                {"dpm", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP}, {"euler", NGPT_SCHEDULER_EULER},
                {"euler-a", NGPT_SCHEDULER_EULER_ANCESTRAL}, {"heun", NGPT_SCHEDULER_HEUN},
                {"unipc", NGPT_SCHEDULER_UNIPC_MULTISTEP}, {"lms", NGPT_SCHEDULER_LMS},
                {"kdpm2", NGPT_SCHEDULER_KDPM2}, {"kdpm2-a", NGPT_SCHEDULER_KDPM2_ANCESTRAL},
                {"deis", NGPT_SCHEDULER_DEIS_MULTISTEP}, {"ddpm", NGPT_SCHEDULER_DDPM},
                {"dpm-single", NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP}};
            const char *name = argv[++i];
            size_t j = 0;
            while (j < sizeof k / sizeof k[0] && strcmp(k[j].name, name) != 0) j++;
            if (j == sizeof k / sizeof k[0])
                return bad_usage("--scheduler: '%s' is not ddim, pndm, dpm, euler, euler-a, heun, unipc, lms, kdpm2, "
                                 "kdpm2-a, deis, ddpm or dpm-single", name);
            o->scheduler = k[j].kind;
        } else if (gen && strcmp(a, "--frames") == 0) {
            if (!parse_int(argv[++i], 1, 256, &v)) return bad_usage("--frames: '%s' is not in 1..256", argv[i]);
            o->frames = (int32_t)v;
        } else if (gen && strcmp(a, "--seconds") == 0) {
            char *end;
            const char *sv = argv[++i];
            double secs = strtod(sv, &end);
            /* decimal as written: strtod also reads hexadecimal (0x1p4) and exponents (1e1) */
            if (end == sv || *end || !(isdigit((unsigned char)sv[0]) || sv[0] == '.') || strpbrk(sv, "xXeEpP") ||
                !(secs > 0 && secs <= 60))
                return bad_usage("--seconds: '%s' is not in (0, 60]", sv);
            o->seconds = secs;
        } else if (gen && strcmp(a, "--max-tokens") == 0) {
            if (!parse_int(argv[++i], 1, 100000, &v)) return bad_usage("--max-tokens: '%s' is not in 1..100000", argv[i]);
            o->max_tokens = (int32_t)v;
        } else if (gen && strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            const char *sv = argv[++i];
            unsigned long long s = strtoull(sv, &end, 10);  /* strtoull takes "-1" as 2^64 - 1: refused */
            if (errno || end == sv || *end || !isdigit((unsigned char)sv[0]))
                return bad_usage("--seed: '%s' is not a number in 0..18446744073709551615", sv);
            o->seed = s;
        } else return bad_usage("unknown argument '%s'", a);
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

static const char *const k_names[4] = {"text", "image", "audio", "video"};

/* --model, or the embedded tiny bundle (with the random-weights notice); NULL (message printed)
 * when there is none. */
static const char *pick_model(const opts *o)
{
    if (o->model) return o->model;
    const char *model = tiny_model();
    if (!model) {
        fprintf(stderr, "nextgpt: no --model given and the embedded tiny model was not found (looked in "
                        "$NEXTGPT_TINY_MODEL, %s, %s)\n", NGPT_TINY_BUILD_DIR, NGPT_TINY_INSTALL_DIR);
        return NULL;
    }
    fprintf(stderr, "nextgpt: no --model given: using the embedded tiny test model (%s).\n"
                    "nextgpt: NOTE: it has RANDOM weights; its answers and media are noise. Pass --model DIR "
                    "for a real NExT-GPT bundle.\n", model);
    return model;
}

/* The context and the pipeline (--out-dir created first); 0, or 1 with the message printed. */
static int open_pipeline(const opts *o, int tty, uint32_t flags, ngpt_context **ctx, ngpt_pipeline **p)
{
    *ctx = NULL;
    *p = NULL;
    const char *model = pick_model(o);
    if (!model) return 1;
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "nextgpt: cannot create --out-dir %s: %s\n", o->out_dir, strerror(errno));
        return 1;
    }
    /* before loading anything: a turn takes minutes on a real model, its files are written last */
    struct stat sb;
    if (stat(o->out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(o->out_dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "nextgpt: --out-dir %s is not a folder we can write into\n", o->out_dir);
        return 1;
    }
    if (!(*ctx = make_context(o))) return 1;
    ngpt_pipeline_params pp;
    ngpt_pipeline_params_default(&pp, sizeof pp);
    pp.flags = flags | (o->cuda_graphs ? NGPT_PIPELINE_CUDA_GRAPHS : 0u) | (o->channels_last ? NGPT_PIPELINE_CHANNELS_LAST : 0u) |
               (o->safety_checker ? NGPT_PIPELINE_SAFETY_CHECKER : 0u);
    pp.compute_dtype = o->dtype;
    if (tty) pp.on_event = progress;
    if (ngpt_pipeline_create(p, *ctx, model, &pp) != NGPT_OK) {
        if (tty) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
        ngpt_context_free(*ctx);
        *ctx = NULL;
        return 1;
    }
    return 0;
}

static void turn_params(const opts *o, int tty, uint32_t force, ngpt_pipeline_turn_params *tp)
{
    ngpt_pipeline_turn_params_default(tp, sizeof *tp);
    tp->force = o->force | force;
    tp->steps = o->steps;
    tp->seed = o->seed;
    tp->scheduler = o->scheduler;
    tp->width = o->width;
    tp->height = o->height;
    tp->num_frames = o->frames;
    tp->audio_length_s = o->seconds;
    if (o->max_tokens) tp->max_new_tokens = o->max_tokens;
    if (tty) tp->on_event = progress;
}

/* Write the result's media into --out-dir as PREFIX MODALITY-I.EXT and print the answer: text
 * lines, or one JSON object (turn > 0: chat's fields too). 0, or 1 when an output was not
 * produced (not counting a cancelled turn's), a file could not be written, or stdout failed. */
static int report(const opts *o, ngpt_pipeline *p, const ngpt_pipeline_result *r, int turn)
{
    int rc = 0;
    char prefix[32] = "";
    if (turn > 0) snprintf(prefix, sizeof prefix, "turn%d-", turn);
    errno = 0; /* a failed write to stdout below leaves its reason here */
    if (o->json) {
        printf("{");
        if (turn > 0) printf("\"turn\": %d, ", turn);
        printf("\"test_model\": %s, \"text\": ", ngpt_pipeline_is_test_model(p) ? "true" : "false");
        json_str(stdout, ngpt_pipeline_result_text(r, NULL));
        printf(", \"outputs\": [");
    } else {
        printf("%s\n", ngpt_pipeline_result_text(r, NULL));
    }
    for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r); i++) {
        ngpt_modality m;
        const uint8_t *bytes;
        size_t n;
        const char *fmt;
        ngpt_status os = ngpt_pipeline_result_output(r, i, &m, &bytes, &n, &fmt);
        char path[4096] = "";
        const char *msg = os == NGPT_OK ? "" : ngpt_pipeline_result_output_message(r, i);
        if (os == NGPT_OK) {
            snprintf(path, sizeof path, "%s/%s%s-%d.%s", o->out_dir, prefix, k_names[m & 3], (int)i, fmt);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(bytes, 1, n, f) != n) {
                fprintf(stderr, "nextgpt: cannot write %s: %s\n", path, strerror(errno));
                if (f) fclose(f);
                rc = 1;
                path[0] = 0;
            } else if (fclose(f) != 0) {
                fprintf(stderr, "nextgpt: cannot write %s: %s\n", path, strerror(errno));
                rc = 1;
                path[0] = 0;
            } else if (!o->json) {
                printf("wrote %s (%s, %zu bytes%s)\n", path, k_names[m & 3], n,
                       ngpt_pipeline_result_output_nsfw(r, i) ? "; blacked out by the safety checker" : "");
            }
        } else {
            fprintf(stderr, "nextgpt: %s output not produced: %s\n", k_names[m & 3], msg);
            if (os != NGPT_ERR_CANCELLED) rc = 1;
        }
        if (o->json) {
            printf("%s{\"modality\": \"%s\", \"status\": \"%s\", \"file\": ", i ? ", " : "", k_names[m & 3],
                   ngpt_status_string(os));
            if (path[0]) json_str(stdout, path); else printf("null");
            printf(", \"bytes\": %zu, \"nsfw\": %s, \"message\": ", os == NGPT_OK ? n : (size_t)0,
                   ngpt_pipeline_result_output_nsfw(r, i) ? "true" : "false");
            json_str(stdout, msg);
            printf("}");
        }
    }
    int32_t n_hist = 0;
    const char *hist_msg = NULL;
    if (turn > 0 && ngpt_pipeline_result_history(r, &n_hist) != NGPT_OK) {
        hist_msg = ngpt_last_error();
        fprintf(stderr, "nextgpt: generated media did not re-enter the history: %s\n", hist_msg);
    }
    if (o->json) {
        static const char *const stages[NGPT_PIPELINE_STAGE_COUNT] = {"load", "encode", "project", "llm", "decode", "media_out"};
        printf("]");
        if (turn > 0) {
            printf(", \"history_media\": %d, \"history_error\": ", (int)n_hist);
            if (hist_msg) json_str(stdout, hist_msg); else printf("null");
            printf(", \"n_past\": %d", (int)ngpt_backbone_session_n_past(ngpt_pipeline_session(p)));
        }
        printf(", \"cancelled\": %s, \"timings_ms\": {", ngpt_pipeline_result_cancelled(r) ? "true" : "false");
        for (int s = 0; s < NGPT_PIPELINE_STAGE_COUNT; s++)
            printf("%s\"%s\": %.3f", s ? ", " : "", stages[s], ngpt_pipeline_result_stage_ms(r, (ngpt_pipeline_stage)s));
        for (int dev = 0; dev < 2; dev++) { /* per-stage tensor-memory high-water marks */
            printf("}, \"peak_%s_bytes\": {", dev ? "device" : "host");
            for (int s = 0; s < NGPT_PIPELINE_STAGE_COUNT; s++) {
                uint64_t h = 0, d = 0;
                ngpt_pipeline_result_stage_memory(r, (ngpt_pipeline_stage)s, &h, &d);
                printf("%s\"%s\": %llu", s ? ", " : "", stages[s], (unsigned long long)(dev ? d : h));
            }
        }
        printf("}}\n");
    }
    if (fflush(stdout) != 0 || ferror(stdout)) { /* a full disk or a closed pipe: not silent */
        fprintf(stderr, "nextgpt: cannot write the answer to stdout: %s\n", errno ? strerror(errno) : "write error");
        clearerr(stdout);
        rc = 1;
    }
    return rc;
}

static int cmd_run(int argc, char **argv)
{
    opts o = {0};
    ngpt_context_params_default(&o.cp, sizeof o.cp);
    o.out_dir = ".";
    int rc = parse(&o, argc, argv, MODE_RUN);
    if (rc >= 0) return rc;
    if (!o.prompt) return bad_usage("run: --prompt is required%s", "");
    for (size_t i = 0; i < o.n_media; i++)
        if (access(o.media[i].path, R_OK) != 0) {
            fprintf(stderr, "nextgpt: cannot read %s: %s\n", o.media[i].path, strerror(errno));
            return 1;
        }
    int tty = isatty(2) && !o.json;
    ngpt_context *ctx = NULL;
    ngpt_pipeline *p = NULL;
    /* one turn: nothing follows, so generated media need not re-enter the history */
    if (open_pipeline(&o, tty, NGPT_PIPELINE_NO_MEDIA_HISTORY, &ctx, &p) != 0) return 1;
    ngpt_pipeline_turn_params tp;
    turn_params(&o, tty, 0, &tp);
    ngpt_pipeline_result *r = NULL;
    ngpt_status st = ngpt_pipeline_turn(&r, p, o.prompt, o.media, o.n_media, &tp);
    if (tty) fprintf(stderr, "\r\033[K");
    if (st != NGPT_OK) {
        fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
        ngpt_pipeline_free(p);
        ngpt_context_free(ctx);
        return 1;
    }
    rc = report(&o, p, r, 0);
    ngpt_pipeline_result_free(r);
    ngpt_pipeline_free(p);
    ngpt_context_free(ctx);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * chat: one pipeline, the conversation read from stdin line by line (chat_help)
 * ------------------------------------------------------------------------------------------- */

/* Ctrl-C during a chat turn cancels the turn (the partial answer is kept); elsewhere it ends the
 * program as usual. sig_atomic_t is int32_t on the platforms this builds on. */
static volatile sig_atomic_t g_cancel;
_Static_assert(sizeof(sig_atomic_t) == sizeof(int32_t), "sig_atomic_t is not 32-bit");

static void on_sigint(int sig)
{
    (void)sig;
    g_cancel = 1;
}

typedef struct chat {
    opts       *o;
    int         line_no;
    int         failed;
    char       *paths[MAX_MEDIA];  /* the pending attachments (owned copies) */
    ngpt_modality mods[MAX_MEDIA];
    size_t      n_media;
    uint32_t    force;             /* /force for the next message */
} chat;

static void chat_clear(chat *c)
{
    for (size_t i = 0; i < c->n_media; i++) free(c->paths[i]);
    c->n_media = 0;
    c->force = 0;
}

/* A line that failed: stderr, and with --json an error object on stdout. */
static void chat_error(chat *c, const char *input, const char *fmt, const char *arg)
{
    char msg[4096];
    snprintf(msg, sizeof msg, fmt, arg);
    fprintf(stderr, "nextgpt: line %d: %s\n", c->line_no, msg);
    if (c->o->json) {
        printf("{\"error\": {\"line\": %d, \"input\": ", c->line_no);
        json_str(stdout, input);
        printf(", \"message\": ");
        json_str(stdout, msg);
        printf("}}\n");
        fflush(stdout);
    }
    c->failed = 1;
}

/* A command line ("/..."): 1 = go on, 0 = /quit. */
static int chat_command(chat *c, ngpt_pipeline *p, const char *line)
{
    const char *sp = strchr(line, ' ');
    size_t cl = sp ? (size_t)(sp - line) : strlen(line);
    const char *arg = sp ? sp + 1 : "";
    while (*arg == ' ') arg++;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "%.*s", (int)(cl < sizeof cmd - 1 ? cl : sizeof cmd - 1), line);
    ngpt_modality m;
    if (strcmp(cmd, "/quit") == 0 || strcmp(cmd, "/exit") == 0) return 0;
    if (strcmp(cmd, "/help") == 0) {
        chat_help(stderr);
    } else if (strcmp(cmd, "/reset") == 0) {
        chat_clear(c);
        if (ngpt_pipeline_reset(p) != NGPT_OK) chat_error(c, line, "%s", ngpt_last_error());
    } else if (parse_modality(cmd + 1, &m)) {
        if (!*arg) chat_error(c, line, "%s needs a file: /image PATH, /audio PATH or /video PATH", cmd);
        else if (access(arg, R_OK) != 0) {
            char msg[4096];
            snprintf(msg, sizeof msg, "cannot read %s: %s", arg, strerror(errno));
            chat_error(c, line, "%s", msg);
        } else if (c->n_media == MAX_MEDIA) chat_error(c, line, "at most %s media per message", "64");
        else if (!(c->paths[c->n_media] = strdup(arg))) chat_error(c, line, "%s", "out of memory");
        else c->mods[c->n_media++] = m;
    } else if (strcmp(cmd, "/force") == 0) {
        if (!parse_modality(arg, &m)) chat_error(c, line, "/force: '%s' is not image, audio or video", arg);
        else c->force |= NGPT_PIPELINE_FORCE(m);
    } else {
        chat_error(c, line, "unknown command '%s' (/image, /audio, /video, /force, /reset, /help, /quit; "
                   "//TEXT sends \"/TEXT\")", cmd);
    }
    return 1;
}

static int cmd_chat(int argc, char **argv)
{
    opts o = {0};
    ngpt_context_params_default(&o.cp, sizeof o.cp);
    o.out_dir = ".";
    int rc = parse(&o, argc, argv, MODE_CHAT);
    if (rc >= 0) return rc;
    int tty = isatty(2) && !o.json;
    int prompt = isatty(0) && isatty(2);
    ngpt_context *ctx = NULL;
    ngpt_pipeline *p = NULL;
    if (open_pipeline(&o, tty, o.no_media_history ? NGPT_PIPELINE_NO_MEDIA_HISTORY : 0, &ctx, &p) != 0) return 1;
    if (prompt) fprintf(stderr, "nextgpt chat: type a message, /help for the commands, /quit to end.\n");
    chat c = {.o = &o};
    int turn = 0;
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (prompt) { fprintf(stderr, c.n_media ? "(%zu attached)> " : "> ", c.n_media); fflush(stderr); }
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) break;
        c.line_no++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (strspn(line, " \t") == (size_t)len) continue;  /* empty or blank: ignored, as /help says */
        if (strlen(line) != (size_t)len) {  /* a NUL would cut the message short without a word */
            fprintf(stderr, "nextgpt: line %d: contains a NUL byte: not sent\n", c.line_no);
            c.failed = 1;
            continue;
        }
        const char *msg = line;
        if (line[0] == '/' && line[1] != '/') {
            if (!chat_command(&c, p, line)) break;
            continue;
        }
        if (line[0] == '/') msg = line + 1;  /* "//TEXT" */
        ngpt_pipeline_media media[MAX_MEDIA];
        for (size_t i = 0; i < c.n_media; i++)
            media[i] = (ngpt_pipeline_media){c.mods[i], c.paths[i], NULL, 0, NULL, NULL};
        ngpt_pipeline_turn_params tp;
        turn_params(&o, tty, c.force, &tp);
        ngpt_pipeline_result *r = NULL;
        turn++;
        g_cancel = 0;
        tp.cancel = (const volatile int32_t *)&g_cancel;
        struct sigaction sa = {0}, old;
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old);
        ngpt_status st = ngpt_pipeline_turn(&r, p, msg, media, c.n_media, &tp);
        sigaction(SIGINT, &old, NULL);
        if (tty) fprintf(stderr, "\r\033[K");
        chat_clear(&c);
        if (st != NGPT_OK) {
            chat_error(&c, line, "%s (the conversation is unchanged)", ngpt_last_error());
            continue;
        }
        if (report(&o, p, r, turn) != 0) c.failed = 1;
        ngpt_pipeline_result_free(r);
    }
    free(line);
    chat_clear(&c);
    ngpt_pipeline_free(p);
    ngpt_context_free(ctx);
    return c.failed ? 1 : 0;
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

static int cmd_info(int argc, char **argv)
{
    opts o = {0};
    ngpt_context_params_default(&o.cp, sizeof o.cp);
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
    if (strcmp(argv[1], "chat") == 0) return cmd_chat(argc - 2, argv + 2);
    if (strcmp(argv[1], "convert") == 0) return cmd_convert(argc - 2, argv + 2, argv[0]);
    if (argv[1][0] == '-') return cmd_info(argc - 1, argv + 1);  /* `nextgpt --device cpu`: info */
    return bad_usage("unknown command '%s' (run, chat, info, convert)", argv[1]);
}
