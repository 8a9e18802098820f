/* nextgpt generate: one decoder alone, from a text prompt (text-to-image, -audio, -video), or from
 * a picture and a prompt (image-to-image): no language model, no ImageBind. The decoder folder is
 * --model's when it is a diffusers pipeline folder (model_index.json), else the one a bundle's
 * bundle.json names for --modality. */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* The file extensions each modality is written as (the first: the default). */
static const char *const k_exts[4][4] = {
    {NULL}, {"png", "jpg", "jpeg", NULL}, {"wav", "flac", "ogg", NULL}, {"mp4", "webm", NULL, NULL}};

static int ext_ok(ngpt_modality m, const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return 0;
    for (int i = 0; k_exts[m][i]; i++)
        if (strcasecmp(dot + 1, k_exts[m][i]) == 0) return 1;
    return 0;
}

/* The decoder folder for o->modality (malloc'd) and whether the bundle says it is a test model;
 * NULL with the message printed. */
static char *decoder_dir(const char *model, ngpt_modality m, int *test_model)
{
    char p[4096];
    *test_model = 0;
    snprintf(p, sizeof p, "%s/model_index.json", model);
    if (access(p, R_OK) == 0) return strdup(model);
    if (!is_dir_with_manifest(model)) {
        fprintf(stderr, "nextgpt: %s is neither a diffusers pipeline folder (model_index.json) nor a NExT-GPT "
                        "bundle (bundle.json)\n", model);
        return NULL;
    }
    snprintf(p, sizeof p, "%s/bundle.json", model);
    json_error_t e;
    json_t *j = json_load_file(p, 0, &e);
    if (!j) {
        fprintf(stderr, "nextgpt: %s:%d: %s\n", p, e.line, e.text);
        return NULL;
    }
    *test_model = json_is_true(json_object_get(j, "random_weights"));
    const char *rel = json_string_value(json_object_get(json_object_get(j, "decoders"), k_names[m]));
    char *dir = NULL;
    if (!rel) {
        fprintf(stderr, "nextgpt: %s names no %s decoder (\"decoders\": {\"%s\": ...})\n", p, k_names[m], k_names[m]);
    } else if ((dir = malloc(strlen(model) + strlen(rel) + 2))) {
        if (rel[0] == '/') strcpy(dir, rel);
        else sprintf(dir, "%s/%s", model, rel);
    }
    json_decref(j);
    return dir;
}

static bool on_step(int32_t step, int32_t total, float elapsed_s, void *ud)
{
    fprintf(stderr, "\r%s: step %d/%d (%.1f s)\033[K", (const char *)ud, step, total, elapsed_s);
    fflush(stderr);
    return true;
}

/* out (F32, generate's) written to path as the modality's file; 0, or 1 with the message printed. */
static int save(ngpt_decoder *d, ngpt_modality m, const ngpt_tensor *out, const char *path)
{
    ngpt_status s = NGPT_OK;
    if (m == NGPT_MODALITY_IMAGE) {
        ngpt_tensor one = *out;  /* [1, H, W, 3] -> [H, W, 3] (batch 1) */
        one.rank = 3;
        memmove(one.shape, one.shape + 1, 3 * sizeof one.shape[0]);
        one.owner = NULL;
        ngpt_image *img = NULL;
        s = ngpt_image_from_tensor(&img, &one);
        if (s == NGPT_OK) s = ngpt_image_save(img, path, NGPT_IMAGE_FORMAT_AUTO, 0, 0);
        ngpt_image_free(img);
    } else if (m == NGPT_MODALITY_AUDIO) {
        ngpt_audio *a = NULL;
        s = ngpt_audio_from_pcm(&a, out->data, out->shape[out->rank - 1], 1, ngpt_decoder_sample_rate(d));
        if (s == NGPT_OK) s = ngpt_audio_save(a, path, NGPT_AUDIO_FORMAT_AUTO);
        ngpt_audio_free(a);
    } else {
        ngpt_tensor frames = {0};
        s = ngpt_video_postprocess(&frames, out);
        if (s == NGPT_OK) s = ngpt_video_save(&frames, path, 8.0f, NGPT_VIDEO_FORMAT_AUTO);  /* NExT-GPT's 8 fps */
        ngpt_tensor_free(&frames);
    }
    if (s != NGPT_OK) fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
    return s != NGPT_OK;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

int cmd_generate(int argc, char **argv)
{
    opts o;
    int rc = parse(&o, argc, argv, MODE_GENERATE);
    if (rc >= 0) return rc;
    const ngpt_modality m = o.modality;
    if (!o.prompt) return bad_usage("generate: --prompt is required (\"\" for none)%s", "");
    if (o.init_image && m != NGPT_MODALITY_IMAGE)
        return bad_usage("generate: --init-image is for --modality image, not %s", k_names[m]);
    if (o.init_image && (o.width || o.height))
        return bad_usage("generate: the size comes from --init-image (cut to multiples of 8); drop --size%s", "");
    if (o.strength != 0 && !o.init_image) return bad_usage("generate: --strength goes with --init-image%s", "");
    if ((o.frames && m != NGPT_MODALITY_VIDEO) || (o.seconds != 0 && m != NGPT_MODALITY_AUDIO) ||
        ((o.width || o.height) && m == NGPT_MODALITY_AUDIO) || (o.safety_checker && m != NGPT_MODALITY_IMAGE))
        return bad_usage("generate: --frames is for video, --seconds for audio, --size for images and video, "
                         "--safety-checker for images (--modality %s)", k_names[m]);
    char def_out[32];
    snprintf(def_out, sizeof def_out, "nextgpt-%s.%s", k_names[m], k_exts[m][0]);
    const char *path = o.out ? o.out : def_out;
    if (!ext_ok(m, path))
        return bad_usage(m == NGPT_MODALITY_IMAGE ? "--out: '%s': an image is written as .png, .jpg or .jpeg"
                         : m == NGPT_MODALITY_AUDIO ? "--out: '%s': a sound is written as .wav, .flac or .ogg"
                         : "--out: '%s': a video is written as .mp4 or .webm", path);
    if (o.init_image && access(o.init_image, R_OK) != 0) {
        fprintf(stderr, "nextgpt: cannot read %s: %s\n", o.init_image, strerror(errno));
        return 1;
    }
    const char *model = pick_model(&o);
    if (!model) return 1;
    int test_model = 0;
    char *dir = decoder_dir(model, m, &test_model);
    if (!dir) return 1;
    const int tty = isatty(2) && !o.json;
    const double t0 = now_ms();
    ngpt_context *ctx = make_context(&o);
    ngpt_decoder *d = NULL;
    ngpt_image *init_img = NULL;
    ngpt_tensor cond = {0}, uncond = {0}, init = {0}, out = {0}, nsfw = {0};
    ngpt_status s = ctx ? NGPT_OK : NGPT_ERR_INTERNAL;  /* make_context printed why */
    if (s == NGPT_OK) {
        ngpt_decoder_params dp;
        ngpt_decoder_params_default(&dp, sizeof dp);
        dp.kind = (ngpt_decoder_kind)m;  /* the decoder kinds are numbered as the modalities */
        dp.compute_dtype = o.dtype;
        dp.flags = (o.cuda_graphs ? NGPT_DECODER_FLAG_CUDA_GRAPH : 0u) | (o.channels_last ? NGPT_DECODER_FLAG_CHANNELS_LAST : 0u) |
                   (o.safety_checker ? NGPT_DECODER_FLAG_SAFETY_CHECKER : 0u);
        if (tty) fprintf(stderr, "\rloading %s...\033[K", dir);
        s = ngpt_decoder_create(&d, ctx, dir, &dp);
    }
    if (s == NGPT_OK) s = ngpt_decoder_encode_text(d, &cond, o.prompt);
    if (s == NGPT_OK && o.negative) s = ngpt_decoder_encode_text(d, &uncond, o.negative);
    if (s == NGPT_OK && o.init_image) s = ngpt_image_load(&init_img, o.init_image);
    /* the VAE's sample draws from seed + 1: the generate call's noise draws from seed */
    if (s == NGPT_OK && o.init_image) s = ngpt_decoder_image_latents(d, &init, init_img, 1, o.seed + 1);
    if (s == NGPT_OK) {
        ngpt_decode_params gp;
        ngpt_decode_params_default(&gp, sizeof gp);
        gp.num_inference_steps = o.steps;
        gp.guidance_scale = o.guidance;
        gp.scheduler = o.scheduler;
        gp.seed = o.seed;
        gp.width = o.width;
        gp.height = o.height;
        gp.num_frames = o.frames;
        gp.audio_length_s = o.seconds;
        if (o.init_image) gp.init_latents = &init;
        if (o.strength != 0) gp.strength = o.strength;
        if (tty) {
            gp.on_step = on_step;
            gp.user_data = (void *)k_names[m];
        }
        s = ngpt_decoder_generate(d, &out, m == NGPT_MODALITY_AUDIO ? NULL : &nsfw, &cond, o.negative ? &uncond : NULL, &gp);
    }
    if (tty) fprintf(stderr, "\r\033[K");
    if (s != NGPT_OK && ctx) fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
    rc = s != NGPT_OK;
    if (!rc) rc = save(d, m, &out, path);
    const int flagged = nsfw.data && ((const bool *)nsfw.data)[0];
    if (!rc && o.json) {
        printf("{\"test_model\": %s, \"modality\": \"%s\", \"file\": ", test_model ? "true" : "false", k_names[m]);
        json_str(stdout, path);
        printf(", \"decoder\": ");
        json_str(stdout, dir);
        printf(", \"seed\": %llu, \"nsfw\": %s, \"elapsed_ms\": %.3f}\n", (unsigned long long)o.seed,
               flagged ? "true" : "false", now_ms() - t0);
    } else if (!rc) {
        printf("wrote %s (%s%s)\n", path, k_names[m], flagged ? "; blacked out by the safety checker" : "");
    }
    if (!rc && (fflush(stdout) != 0 || ferror(stdout))) {
        fprintf(stderr, "nextgpt: cannot write to stdout\n");
        rc = 1;
    }
    ngpt_tensor_free(&nsfw);
    ngpt_tensor_free(&out);
    ngpt_tensor_free(&init);
    ngpt_tensor_free(&uncond);
    ngpt_tensor_free(&cond);
    ngpt_image_free(init_img);
    ngpt_decoder_free(d);
    ngpt_context_free(ctx);
    free(dir);
    return rc;
}
