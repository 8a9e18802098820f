/* The options of run, chat, info and generate: one table says which command takes which option and
 * whether a value follows; parse() reads them into an opts. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int parse_modality(const char *s, ngpt_modality *m)
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

/* A decimal number as written (no hexadecimal, exponent or sign) in [lo, hi], lo excluded when
 * open_lo; 0 when it is not one. */
static int parse_decimal(const char *s, double lo, double hi, int open_lo, double *v)
{
    char *end;
    double x = strtod(s, &end);
    /* decimal as written: strtod also reads hexadecimal (0x1p4), exponents (1e1), inf and nan */
    if (end == s || *end || !(isdigit((unsigned char)s[0]) || s[0] == '.') || strpbrk(s, "xXeEpP") ||
        !(open_lo ? x > lo : x >= lo) || !(x <= hi))
        return 0;
    *v = x;
    return 1;
}

/* ALL: every command; PIPE: those about a bundle's pipeline (info, run, chat); TURN: the two that
 * run turns; GEN: those that run decoders (the turns and generate); ONE: generate's own */
enum { ALL = MODE_INFO | MODE_RUN | MODE_CHAT | MODE_GENERATE, PIPE = MODE_INFO | MODE_RUN | MODE_CHAT,
       TURN = MODE_RUN | MODE_CHAT, GEN = TURN | MODE_GENERATE, ONE = MODE_GENERATE };

/* Every option: the commands that take it, and whether a value follows it. An option of another
 * command is unknown here, and a trailing one that takes a value lacks it. */
static const struct cli_option {
    const char *name;
    int         modes;
    int         value;
} k_options[] = {
    {"--model", ALL, 1},      {"--device", ALL, 1},    {"--threads", ALL, 1},      {"--dtype", ALL, 1},
    {"--size", ALL, 1},       {"--force", PIPE, 1},    {"--json", ALL, 0},         {"--safety-checker", ALL, 0},
    {"--ctx", MODE_INFO, 1},
    {"--prompt", MODE_RUN | ONE, 1}, {"--image", MODE_RUN, 1}, {"--audio", MODE_RUN, 1}, {"--video", MODE_RUN, 1},
    {"--no-media-history", MODE_CHAT, 0},
    {"--out-dir", TURN, 1},   {"--max-tokens", TURN, 1},
    {"--steps", GEN, 1},      {"--seed", GEN, 1},      {"--scheduler", GEN, 1},    {"--frames", GEN, 1},
    {"--seconds", GEN, 1},    {"--cuda-graphs", GEN, 0}, {"--channels-last", GEN, 0},
    {"--no-cuda-graphs", GEN, 0},
    {"--negative", ONE, 1},   {"--modality", ONE, 1},  {"--init-image", ONE, 1},   {"--strength", ONE, 1},
    {"--guidance", ONE, 1},   {"--out", ONE, 1},
};

static const struct cli_option *find_option(const char *a)
{
    for (size_t i = 0; i < sizeof k_options / sizeof k_options[0]; i++)
        if (strcmp(a, k_options[i].name) == 0) return &k_options[i];
    return NULL;
}

static int is(const char *a, const char *name) { return strcmp(a, name) == 0; }

/* Fills *o from the defaults and the options; returns -1 when all is well, else the exit status. */
int parse(opts *o, int argc, char **argv, int mode)
{
    /* CUDA graphs on by default: every stage faster on an H200, the same results (bench/RESULTS.md,
     * GPU run 7); the library applies them on CUDA only */
    *o = (opts){.out_dir = ".", .modality = NGPT_MODALITY_IMAGE, .cuda_graphs = 1};
    ngpt_context_params_default(&o->cp, sizeof o->cp);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        long long v;
        if (is(a, "-h") || is(a, "--help")) return mode == MODE_CHAT ? chat_help(stdout) : usage(stdout);
        if (mode == MODE_CHAT && (is(a, "--prompt") || is(a, "--image") || is(a, "--audio") || is(a, "--video")))
            return bad_usage("chat: %s is given in the conversation (a message line, /image PATH ...): see nextgpt chat --help", a);
        const struct cli_option *opt = find_option(a);
        if (!opt || !(opt->modes & mode)) return bad_usage("unknown argument '%s'", a);
        if (opt->value && i + 1 == argc) return bad_usage("%s needs a value", a);
        const char *val = opt->value ? argv[++i] : NULL;
        if (is(a, "--json")) o->json = 1;
        else if (is(a, "--no-media-history")) o->no_media_history = 1;
        else if (is(a, "--cuda-graphs")) o->cuda_graphs = 1;
        else if (is(a, "--no-cuda-graphs")) o->cuda_graphs = 0;
        else if (is(a, "--channels-last")) o->channels_last = 1;
        else if (is(a, "--safety-checker")) o->safety_checker = 1;
        else if (is(a, "--model")) o->model = val;
        else if (is(a, "--device")) {
            if (is(val, "auto")) o->cp.device = NGPT_DEVICE_AUTO;
            else if (is(val, "cpu")) o->cp.device = NGPT_DEVICE_CPU;
            else if (is(val, "cuda")) o->cp.device = NGPT_DEVICE_CUDA;
            else return bad_usage("--device: '%s' is not auto, cpu or cuda", val);
        } else if (is(a, "--threads")) {
            if (!parse_int(val, 0, 1024, &v)) return bad_usage("--threads: '%s' is not a count", val);
            o->cp.n_threads = (int32_t)v;
        } else if (is(a, "--ctx")) {
            if (!parse_int(val, 1, 1 << 20, &v)) return bad_usage("--ctx: '%s' is not in 1..1048576", val);
            o->n_ctx = (int32_t)v;
        } else if (is(a, "--size")) {
            long long w = 0, h = 0;
            const char *x = strchr(val, 'x');
            char ws[32] = "";
            /* each side digits only, through parse_int: sscanf's %d took " +512" and wrapped 2^32+8 to 8 */
            if (x && (size_t)(x - val) < sizeof ws) memcpy(ws, val, (size_t)(x - val));
            if (!x || !parse_int(ws, 8, NGPT_DECODE_MAX_SIDE, &w) || !parse_int(x + 1, 8, NGPT_DECODE_MAX_SIDE, &h) ||
                w % 8 || h % 8)
                return bad_usage("--size: '%s' is not WxH (multiples of 8 in 8.." STR(NGPT_DECODE_MAX_SIDE)
                                 ", as the decoders take)", val);
            o->width = (int32_t)w;
            o->height = (int32_t)h;
        } else if (is(a, "--dtype")) {
            if (is(val, "f32")) o->dtype = NGPT_DTYPE_F32;
            else if (is(val, "f16")) o->dtype = NGPT_DTYPE_F16;
            else if (is(val, "bf16")) o->dtype = NGPT_DTYPE_BF16;
            else return bad_usage("--dtype: '%s' is not f32, f16 or bf16", val);
        } else if (is(a, "--prompt")) o->prompt = val;
        else if (is(a, "--out-dir")) o->out_dir = val;
        else if (is(a, "--image") || is(a, "--audio") || is(a, "--video")) {
            if (o->n_media == MAX_MEDIA) return bad_usage("at most 64 media items (%s)", a);
            ngpt_modality m = NGPT_MODALITY_IMAGE;  /* set: a + 2 is one of the three */
            parse_modality(a + 2, &m);
            o->media[o->n_media++] = (ngpt_pipeline_media){m, val, NULL, 0, NULL, NULL};
        } else if (is(a, "--force")) {
            ngpt_modality m = NGPT_MODALITY_IMAGE;
            if (!parse_modality(val, &m)) return bad_usage("--force: '%s' is not image, audio or video", val);
            o->force |= NGPT_PIPELINE_FORCE(m);
        } else if (is(a, "--steps")) {
            if (!parse_int(val, 1, 1000, &v)) return bad_usage("--steps: '%s' is not in 1..1000", val);
            o->steps = (int32_t)v;
        } else if (is(a, "--scheduler")) {
            static const struct { const char *name; ngpt_scheduler_kind kind; } k[] = {
                {"ddim", NGPT_SCHEDULER_DDIM}, {"pndm", NGPT_SCHEDULER_PNDM},
                {"dpm", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP}, {"euler", NGPT_SCHEDULER_EULER},
                {"euler-a", NGPT_SCHEDULER_EULER_ANCESTRAL}, {"heun", NGPT_SCHEDULER_HEUN},
                {"unipc", NGPT_SCHEDULER_UNIPC_MULTISTEP}, {"lms", NGPT_SCHEDULER_LMS},
                {"kdpm2", NGPT_SCHEDULER_KDPM2}, {"kdpm2-a", NGPT_SCHEDULER_KDPM2_ANCESTRAL},
                {"deis", NGPT_SCHEDULER_DEIS_MULTISTEP}, {"ddpm", NGPT_SCHEDULER_DDPM},
                {"dpm-single", NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP}};
            size_t j = 0;
            while (j < sizeof k / sizeof k[0] && !is(k[j].name, val)) j++;
            if (j == sizeof k / sizeof k[0])
                return bad_usage("--scheduler: '%s' is not ddim, pndm, dpm, euler, euler-a, heun, unipc, lms, kdpm2, "
                                 "kdpm2-a, deis, ddpm or dpm-single", val);
            o->scheduler = k[j].kind;
        } else if (is(a, "--frames")) {
            if (!parse_int(val, 1, 256, &v)) return bad_usage("--frames: '%s' is not in 1..256", val);
            o->frames = (int32_t)v;
        } else if (is(a, "--seconds")) {
            if (!parse_decimal(val, 0, 60, 1, &o->seconds)) return bad_usage("--seconds: '%s' is not in (0, 60]", val);
        } else if (is(a, "--strength")) {
            if (!parse_decimal(val, 0, 1, 1, &o->strength)) return bad_usage("--strength: '%s' is not in (0, 1]", val);
        } else if (is(a, "--guidance")) {
            double g;
            if (!parse_decimal(val, 0, 100, 0, &g)) return bad_usage("--guidance: '%s' is not in [0, 100]", val);
            o->guidance = (float)g;
        } else if (is(a, "--modality")) {
            if (!parse_modality(val, &o->modality)) return bad_usage("--modality: '%s' is not image, audio or video", val);
        } else if (is(a, "--negative")) o->negative = val;
        else if (is(a, "--init-image")) o->init_image = val;
        else if (is(a, "--out")) o->out = val; else if (is(a, "--max-tokens")) {
            if (!parse_int(val, 1, 100000, &v)) return bad_usage("--max-tokens: '%s' is not in 1..100000", val);
            o->max_tokens = (int32_t)v;
        } else if (is(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);  /* strtoull takes "-1" as 2^64 - 1: refused */
            if (errno || end == val || *end || !isdigit((unsigned char)val[0]))
                return bad_usage("--seed: '%s' is not a number in 0..18446744073709551615", val);
            o->seed = s;
        } else return bad_usage("unknown argument '%s'", a);  /* in the table, not handled: a bug here */
    }
    return -1;
}

ngpt_context *make_context(const opts *o)
{
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &o->cp) != NGPT_OK) {
        fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
        return NULL;
    }
    return ctx;
}
