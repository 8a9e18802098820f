/* stage_vae.c — the VAE and vocoder stages, through the public decoder API: an ngpt_decoder
 * created on the pipeline folder with only the component the stage needs.
 * case.json "model" may name the pipeline folder (model_index.json) or its vae/ or vocoder/
 * subfolder; the pipeline folder is then its parent. */
#include "stage_vae.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool exists(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* The pipeline folder of c->model_dir (nx_malloc'd). */
static ngpt_status pipeline_dir(const case_ctx *c, char **out)
{
    if (!c->model_dir) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: case.json has no \"model\"", c->case_dir);
    size_t n = strlen(c->model_dir);
    char *p = nx_malloc(n + 4);
    if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    memcpy(p, c->model_dir, n + 1);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    if (!exists(p, "model_index.json") && exists(p, "config.json")) {
        char *slash = strrchr(p, '/');
        if (slash && slash != p) *slash = 0;
        else strcpy(p, ".");
    }
    *out = p;
    return NGPT_OK;
}

uint32_t case_decoder_flags(void)
{
    const char *v = getenv("NGPT_CASE_CHANNELS_LAST");
    return v && atoi(v) ? NGPT_DECODER_FLAG_CHANNELS_LAST : 0;
}

ngpt_status case_open_decoder(const case_ctx *c, ngpt_decoder **d, ngpt_decoder_kind kind, uint32_t comp, char **dir)
{
    return case_open_decoder_flags(c, d, kind, comp, 0, dir);
}

ngpt_status case_open_decoder_flags(const case_ctx *c, ngpt_decoder **d, ngpt_decoder_kind kind, uint32_t comp,
                                    uint32_t flags, char **dir)
{
    NX_TRY(pipeline_dir(c, dir));
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.kind = kind;
    p.components = comp;
    p.flags = case_decoder_flags() | flags;
    ngpt_status s = ngpt_decoder_create(d, c->ctx, *dir, &p);
    if (s != NGPT_OK) {
        nx_free(*dir);
        *dir = NULL;
    }
    return s;
}

/* vae/config.json scaling_factor as the double the pipelines divide by (1 / sf * latents). */
static ngpt_status scaling_factor(const char *dir, double *sf)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/vae/config.json", dir);
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, p));
    ngpt_status s = nx_json_num_opt(j, "scaling_factor", p, 0.18215, sf);
    json_decref(j);
    return s;
}

/* latents (scaled by 1/sf unless pre_divided) -> decode -> output `name`. */
static ngpt_status decode(const case_ctx *c, case_out *out, ngpt_decoder_kind kind, bool pre_divided, const char *name)
{
    ngpt_decoder *d = NULL;
    char *dir = NULL;
    NX_TRY(case_open_decoder(c, &d, kind, NGPT_DECODER_VAE, &dir));
    float *x = NULL;
    int rank = 0;
    int64_t shape[NGPT_MAX_DIMS];
    ngpt_tensor y = {0};
    ngpt_status s = case_input_f32(c, "latents", &x, &rank, shape);
    if (s == NGPT_OK && !pre_divided) {
        double sf = 0;
        s = scaling_factor(dir, &sf);
        /* torch: `1 / scaling_factor * latents` — the Python float is rounded to float32 */
        float inv = (float)(1.0 / sf);
        int64_t n = 1;
        for (int i = 0; i < rank; i++) n *= shape[i];
        for (int64_t i = 0; s == NGPT_OK && i < n; i++) x[i] = inv * x[i];
    }
    if (s == NGPT_OK) {
        ngpt_tensor t = {.dtype = NGPT_DTYPE_F32, .rank = rank, .data = x};
        memcpy(t.shape, shape, sizeof shape);
        s = ngpt_decoder_vae_decode(d, &y, &t);
    }
    if (s == NGPT_OK) s = case_out_add(out, name, y.dtype, y.rank, y.shape, y.data);
    ngpt_tensor_free(&y);
    nx_free(x);
    nx_free(dir);
    ngpt_decoder_free(d);
    return s;
}

ngpt_status case_vae_decode(const case_ctx *c, case_out *out)
{
    return decode(c, out, NGPT_DECODER_IMAGE, true, "image");
}

ngpt_status case_audioldm_vae_decode(const case_ctx *c, case_out *out)
{
    return decode(c, out, NGPT_DECODER_AUDIO, false, "mel");
}

ngpt_status case_zeroscope_vae_decode(const case_ctx *c, case_out *out)
{
    return decode(c, out, NGPT_DECODER_VIDEO, false, "frames");
}

/* image [B, C, H, W] -> mean, logvar (the latent distribution, unscaled; logvar clamped). */
ngpt_status case_vae_encode(const case_ctx *c, case_out *out)
{
    ngpt_decoder *d = NULL;
    char *dir = NULL;
    NX_TRY(case_open_decoder(c, &d, NGPT_DECODER_AUTO, NGPT_DECODER_VAE, &dir));
    float *x = NULL;
    int rank = 0;
    int64_t shape[NGPT_MAX_DIMS];
    ngpt_tensor m = {0}, lv = {0};
    ngpt_status s = case_input_f32(c, "image", &x, &rank, shape);
    if (s == NGPT_OK) {
        ngpt_tensor t = {.dtype = NGPT_DTYPE_F32, .rank = rank, .data = x};
        memcpy(t.shape, shape, sizeof shape);
        s = ngpt_decoder_vae_encode(d, &m, &lv, &t);
    }
    if (s == NGPT_OK) s = case_out_add(out, "mean", m.dtype, m.rank, m.shape, m.data);
    if (s == NGPT_OK) s = case_out_add(out, "logvar", lv.dtype, lv.rank, lv.shape, lv.data);
    ngpt_tensor_free(&m);
    ngpt_tensor_free(&lv);
    nx_free(x);
    nx_free(dir);
    ngpt_decoder_free(d);
    return s;
}

/* The latents stages' params: "sample" (false: the distribution's mode), "seed" (its noise). */
static ngpt_status sample_params(const case_ctx *c, bool *sample, uint64_t *seed)
{
    double v = 0;
    NX_TRY(nx_json_bool_opt(c->params, "sample", "case.json params", false, sample));
    NX_TRY(nx_json_num_opt(c->params, "seed", "case.json params", 0, &v));
    if (!(v >= 0 && v < 18446744073709551616.0)) return nx_err(NGPT_ERR_BAD_FORMAT, "case.json params: seed %g", v);
    *seed = (uint64_t)v;
    return NGPT_OK;
}

/* A picture file -> image-to-image's init_latents (our own cases, tests/golden/vision/sd.image_latents):
 * params "file", "sample", "seed". */
ngpt_status case_sd_image_latents(const case_ctx *c, case_out *out)
{
    bool sample = false;
    uint64_t seed = 0;
    NX_TRY(sample_params(c, &sample, &seed));
    char *path = NULL;
    NX_TRY(case_param_path(c, "file", &path));
    ngpt_decoder *d = NULL;
    char *dir = NULL;
    ngpt_image *img = NULL;
    ngpt_tensor y = {0};
    ngpt_status s = case_open_decoder(c, &d, NGPT_DECODER_IMAGE, NGPT_DECODER_VAE, &dir);
    if (s == NGPT_OK) s = ngpt_image_load(&img, path);
    if (s == NGPT_OK) s = ngpt_decoder_image_latents(d, &y, img, sample, seed);
    if (s == NGPT_OK) s = case_out_add(out, "latents", y.dtype, y.rank, y.shape, y.data);
    ngpt_tensor_free(&y);
    ngpt_image_free(img);
    ngpt_decoder_free(d);
    nx_free(dir);
    nx_free(path);
    return s;
}

/* Frames U8 [F, H, W, 3] -> video-to-video's init_latents [1, C, F, h, w] (our own cases,
 * tests/golden/video/zeroscope.video_latents): params "sample", "seed". */
ngpt_status case_zeroscope_video_latents(const case_ctx *c, case_out *out)
{
    bool sample = false;
    uint64_t seed = 0;
    NX_TRY(sample_params(c, &sample, &seed));
    int32_t *v = NULL;
    int rank = 0;
    int64_t shape[NGPT_MAX_DIMS];
    NX_TRY(case_input_i32(c, "frames", &v, &rank, shape));
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= shape[i];
    uint8_t *u8 = nx_malloc((size_t)n);
    ngpt_status s = u8 ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; s == NGPT_OK && i < n; i++) u8[i] = (uint8_t)v[i];
    ngpt_decoder *d = NULL;
    char *dir = NULL;
    ngpt_tensor y = {0};
    if (s == NGPT_OK) s = case_open_decoder(c, &d, NGPT_DECODER_VIDEO, NGPT_DECODER_VAE, &dir);
    if (s == NGPT_OK) {
        ngpt_tensor t = {.dtype = NGPT_DTYPE_U8, .rank = rank, .data = u8};
        memcpy(t.shape, shape, sizeof shape);
        s = ngpt_decoder_video_latents(d, &y, &t, sample, seed);
    }
    if (s == NGPT_OK) s = case_out_add(out, "latents", y.dtype, y.rank, y.shape, y.data);
    ngpt_tensor_free(&y);
    ngpt_decoder_free(d);
    nx_free(dir);
    nx_free(u8);
    nx_free(v);
    return s;
}

/* mel [B, 1, T, n_mels] (the VAE's output layout; squeeze(1) as mel_spectrogram_to_waveform
 * does) or [B, T, n_mels] -> waveform [B, L]. */
ngpt_status case_vocoder_hifigan(const case_ctx *c, case_out *out)
{
    ngpt_decoder *d = NULL;
    char *dir = NULL;
    NX_TRY(case_open_decoder(c, &d, NGPT_DECODER_AUDIO, NGPT_DECODER_VOCODER, &dir));
    float *x = NULL;
    int rank = 0;
    int64_t shape[NGPT_MAX_DIMS];
    ngpt_tensor y = {0};
    ngpt_status s = case_input_f32(c, "mel", &x, &rank, shape);
    if (s == NGPT_OK && rank == 4 && shape[1] == 1) {
        shape[1] = shape[2];
        shape[2] = shape[3];
        rank = 3;
    }
    if (s == NGPT_OK) {
        ngpt_tensor t = {.dtype = NGPT_DTYPE_F32, .rank = rank, .data = x};
        memcpy(t.shape, shape, sizeof shape);
        s = ngpt_decoder_vocoder(d, &y, &t);
    }
    if (s == NGPT_OK) s = case_out_add(out, "waveform", y.dtype, y.rank, y.shape, y.data);
    ngpt_tensor_free(&y);
    nx_free(x);
    nx_free(dir);
    ngpt_decoder_free(d);
    return s;
}
