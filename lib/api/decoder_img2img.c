/* decoder_img2img.c — the init_latents of image-to-image and video-to-video, from pixels:
 *   ngpt_decoder_image_latents  a picture, as diffusers 0.17's StableDiffusionImg2ImgPipeline
 *                               prepares it (image_processor.py VaeImageProcessor.preprocess);
 *   ngpt_decoder_video_latents  frames, as diffusers 0.18's VideoToVideoSDPipeline does
 *                               (preprocess_video; frames into the batch);
 * then both as prepare_latents: vae.encode(x).latent_dist.sample() x vae.config.scaling_factor.
 * The VAE encoder itself is ngpt_decoder_vae_encode's, called one frame at a time. */
#include "bridge.h"
#include "decoder.h"

#include "../core/alloc.h"
#include "../media/media.h"

#include <math.h>
#include <string.h>

/* VaeImageProcessor.preprocess of a PIL RGB image: resize to (w - w % 8, h - h % 8) with
 * Lanczos (Pillow returns a copy when the size is unchanged), np.array(...).astype(float32) /
 * 255.0, NCHW, 2.0 * x - 1.0: all float32, as numpy and torch compute them. */
static ngpt_status preprocess(const uint8_t *rgb, int32_t w, int32_t h, int32_t cw, int32_t ch, float *x)
{
    const uint8_t *src = rgb;
    uint8_t *cut = NULL;
    if (cw != w || ch != h) {
        cut = nx_malloc((size_t)cw * (size_t)ch * 3);
        if (!cut) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_image_latents: cannot allocate %dx%d", cw, ch);
        ngpt_status s = nx_resize_lanczos_rgb8(rgb, w, h, cut, cw, ch);
        if (s != NGPT_OK) {
            nx_free(cut);
            return s;
        }
        src = cut;
    }
    const size_t plane = (size_t)cw * (size_t)ch;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            float v = (float)src[i * 3 + (size_t)c] / 255.0f;
            x[(size_t)c * plane + i] = 2.0f * v - 1.0f;
        }
    nx_free(cut);
    return NGPT_OK;
}

/* x F32 [F, 3, H, W] (pixels in [-1, 1]) -> dst F32 [F, C, H/sc, W/sc] = (mean + exp(logvar / 2)
 * x noise) x the scaling factor (sample) or mean x it. The VAE encodes one frame per call (its
 * activations are those of one frame; every op is per sample, so the batch would give the same
 * values); the noise is one draw over the whole [F, C, h, w], as sample() draws it over the batch. */
static ngpt_status encode_scaled(ngpt_decoder *d, const float *x, int64_t F, int64_t H, int64_t W, int32_t sample,
                                 uint64_t seed, float *dst)
{
    const int64_t sc = nx_vae_scale(d->vae), per = nx_vae_latent_channels(d->vae) * (H / sc) * (W / sc);
    const int64_t n = F * per;
    float *lv_all = sample ? nx_malloc((size_t)n * sizeof(float)) : NULL;
    if (sample && !lv_all) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory for the latent distribution", d->dir);
    ngpt_status s = NGPT_OK;
    for (int64_t f = 0; f < F && s == NGPT_OK; f++) {
        const ngpt_tensor frame = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {1, 3, H, W},
                                   .data = (void *)(x + f * 3 * H * W)};
        ngpt_tensor mean = {0}, logvar = {0};
        s = ngpt_decoder_vae_encode(d, &mean, sample ? &logvar : NULL, &frame);
        if (s == NGPT_OK) {
            memcpy(dst + f * per, mean.data, (size_t)per * sizeof(float));
            if (sample) memcpy(lv_all + f * per, logvar.data, (size_t)per * sizeof(float));
        }
        ngpt_tensor_free(&mean);
        ngpt_tensor_free(&logvar);
    }
    if (s == NGPT_OK && sample) {
        /* DiagonalGaussianDistribution.sample: mean + std * randn, std = exp(0.5 * logvar) */
        float *noise = nx_malloc((size_t)n * sizeof(float));
        if (!noise) {
            s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory for the sample's noise", d->dir);
        } else {
            nx_decoder_gaussian_fill(noise, (size_t)n, seed);
            for (int64_t i = 0; i < n; i++) dst[i] = dst[i] + expf(0.5f * lv_all[i]) * noise[i];
            nx_free(noise);
        }
    }
    nx_free(lv_all);
    const float sf = ngpt_decoder_vae_scaling_factor(d);  /* scaling_factor * init_latents: float32 */
    for (int64_t i = 0; s == NGPT_OK && i < n; i++) dst[i] = sf * dst[i];
    return s;
}

/* The checks both entry points share: the decoder's kind and a VAE taking RGB. */
static ngpt_status check_decoder(const ngpt_decoder *d, ngpt_decoder_kind kind, const char *fn)
{
    if (d->kind != kind)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: %s needs %s %s decoder (this one is %s)", d->dir, fn,
                      kind == NGPT_DECODER_IMAGE ? "an" : "a", nx_decoder_kind_name(kind),
                      nx_decoder_kind_name(d->kind));
    if (!d->vae) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no VAE loaded", d->dir);
    if (nx_vae_in_channels(d->vae) != 3)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: the VAE takes %lld channels, not RGB", d->dir,
                      (long long)nx_vae_in_channels(d->vae));
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_decoder_image_latents(ngpt_decoder *d, ngpt_tensor *out, const ngpt_image *img,
                                                int32_t sample, uint64_t seed)
{
    if (!d || !out || !img)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_image_latents: decoder, out or image is NULL");
    memset(out, 0, sizeof *out);
    NX_TRY(check_decoder(d, NGPT_DECODER_IMAGE, "ngpt_decoder_image_latents"));
    const int32_t w = ngpt_image_width(img), h = ngpt_image_height(img);
    const int64_t sc = nx_vae_scale(d->vae);
    const int32_t cw = (int32_t)(w - w % sc), ch = (int32_t)(h - h % sc);
    if (cw < sc || ch < sc || cw > NX_DECODE_MAX_SIDE || ch > NX_DECODE_MAX_SIDE)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_image_latents: image %dx%d: cut to multiples of %lld it is "
                      "%dx%d, outside [%lld, %d] a side", w, h, (long long)sc, cw, ch, (long long)sc, NX_DECODE_MAX_SIDE);
    const int64_t ls[4] = {1, nx_vae_latent_channels(d->vae), ch / sc, cw / sc};
    float *x = nx_malloc(sizeof(float) * 3 * (size_t)cw * (size_t)ch);
    if (!x) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_image_latents: cannot allocate %dx%d", cw, ch);
    ngpt_status s = preprocess(ngpt_image_pixels(img), w, h, cw, ch, x);
    if (s == NGPT_OK) s = nx_api_tensor_new(out, NGPT_DTYPE_F32, 4, ls);
    if (s == NGPT_OK) s = encode_scaled(d, x, 1, ch, cw, sample, seed, out->data);
    if (s != NGPT_OK) ngpt_tensor_free(out);
    nx_free(x);
    return s;
}

NGPT_API ngpt_status ngpt_decoder_video_latents(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *frames,
                                                int32_t sample, uint64_t seed)
{
    if (!d || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_video_latents: decoder or out is NULL");
    memset(out, 0, sizeof *out);
    NX_TRY(check_decoder(d, NGPT_DECODER_VIDEO, "ngpt_decoder_video_latents"));
    NX_TRY(nx_api_check_tensor(frames, "frames", 4));
    const int64_t F = frames->shape[0], H = frames->shape[1], W = frames->shape[2], sc = nx_vae_scale(d->vae);
    char sh[160];
    if (frames->dtype != NGPT_DTYPE_U8 && frames->dtype != NGPT_DTYPE_F32)
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "ngpt_decoder_video_latents: frames are %s, not U8 or F32 in [0, 1]",
                      ngpt_dtype_name(frames->dtype));
    if (frames->shape[3] != 3 || F < 1 || F > 256 || H < sc || W < sc || H % sc || W % sc || H > NX_DECODE_MAX_SIDE ||
        W > NX_DECODE_MAX_SIDE)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_decoder_video_latents: frames %s: expected [F, H, W, 3], F in [1, 256], "
                      "H and W multiples of %lld in [%lld, %d] (the pipeline does not resize)",
                      nx_shape_str(sh, sizeof sh, frames->rank, frames->shape), (long long)sc, (long long)sc,
                      NX_DECODE_MAX_SIDE);
    /* preprocess_video: u8 / 255 in float32 (float frames as they are), [F, H, W, 3] -> [F, 3, H, W],
     * 2.0 * video - 1.0 */
    const size_t plane = (size_t)H * (size_t)W;
    float *x = nx_malloc(sizeof(float) * 3 * plane * (size_t)F);
    const int64_t C = nx_vae_latent_channels(d->vae), h = H / sc, w = W / sc;
    float *lat = x ? nx_malloc(sizeof(float) * (size_t)(F * C * h * w)) : NULL;
    if (!x || !lat) {
        nx_free(x);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_video_latents: cannot allocate %lld frames of %lldx%lld",
                      (long long)F, (long long)W, (long long)H);
    }
    const uint8_t *u8 = frames->data;
    const float *f32 = frames->data;
    for (int64_t f = 0; f < F; f++)
        for (size_t i = 0; i < plane; i++)
            for (int c = 0; c < 3; c++) {
                const size_t at = ((size_t)f * plane + i) * 3 + (size_t)c;
                const float v = frames->dtype == NGPT_DTYPE_U8 ? (float)u8[at] / 255.0f : f32[at];
                x[((size_t)f * 3 + (size_t)c) * plane + i] = 2.0f * v - 1.0f;
            }
    ngpt_status s = encode_scaled(d, x, F, H, W, sample, seed, lat);
    const int64_t ls[5] = {1, C, F, h, w};
    if (s == NGPT_OK) s = nx_api_tensor_new(out, NGPT_DTYPE_F32, 5, ls);
    if (s == NGPT_OK) {  /* [F, C, h, w] -> [1, C, F, h, w]: the pipeline's reshape and permute back */
        float *o = out->data;
        for (int64_t f = 0; f < F; f++)
            for (int64_t c = 0; c < C; c++)
                memcpy(o + (c * F + f) * h * w, lat + (f * C + c) * h * w, sizeof(float) * (size_t)(h * w));
    }
    nx_free(lat);
    nx_free(x);
    return s;
}
