/* decoder_img2img.c — ngpt_decoder_image_latents: a picture into image-to-image's init_latents,
 * as diffusers 0.17's StableDiffusionImg2ImgPipeline prepares them (image_processor.py
 * VaeImageProcessor.preprocess, then prepare_latents' vae.encode(image).latent_dist.sample() x
 * vae.config.scaling_factor). The VAE encoder itself is ngpt_decoder_vae_encode's. */
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

NGPT_API ngpt_status ngpt_decoder_image_latents(ngpt_decoder *d, ngpt_tensor *out, const ngpt_image *img,
                                                int32_t sample, uint64_t seed)
{
    if (!d || !out || !img)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_image_latents: decoder, out or image is NULL");
    memset(out, 0, sizeof *out);
    if (d->kind != NGPT_DECODER_IMAGE)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: ngpt_decoder_image_latents needs an image decoder (this one is %s)", d->dir,
                      d->kind == NGPT_DECODER_AUDIO ? "audio" : "video");
    if (!d->vae) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no VAE loaded", d->dir);
    const int32_t w = ngpt_image_width(img), h = ngpt_image_height(img);
    const int64_t sc = nx_vae_scale(d->vae);
    const int32_t cw = (int32_t)(w - w % sc), ch = (int32_t)(h - h % sc);
    if (cw < sc || ch < sc || cw > NX_DECODE_MAX_SIDE || ch > NX_DECODE_MAX_SIDE)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_image_latents: image %dx%d: cut to multiples of %lld it is "
                      "%dx%d, outside [%lld, %d] a side", w, h, (long long)sc, cw, ch, (long long)sc, NX_DECODE_MAX_SIDE);
    if (nx_vae_in_channels(d->vae) != 3)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: the VAE takes %lld channels, not RGB", d->dir,
                      (long long)nx_vae_in_channels(d->vae));
    ngpt_tensor x = {0}, mean = {0}, logvar = {0};
    const int64_t xs[4] = {1, 3, ch, cw};
    ngpt_status s = nx_api_tensor_new(&x, NGPT_DTYPE_F32, 4, xs);
    if (s == NGPT_OK) s = preprocess(ngpt_image_pixels(img), w, h, cw, ch, x.data);
    if (s == NGPT_OK) s = ngpt_decoder_vae_encode(d, &mean, sample ? &logvar : NULL, &x);
    ngpt_tensor_free(&x);
    if (s != NGPT_OK) return s;
    const int64_t n = ngpt_tensor_numel(&mean);
    float *m = mean.data;
    if (sample) {
        /* DiagonalGaussianDistribution.sample: mean + std * randn, std = exp(0.5 * logvar) */
        float *noise = nx_malloc((size_t)n * sizeof(float));
        if (!noise) {
            ngpt_tensor_free(&mean);
            ngpt_tensor_free(&logvar);
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_image_latents: out of memory");
        }
        nx_decoder_gaussian_fill(noise, (size_t)n, seed);
        const float *lv = logvar.data;
        for (int64_t i = 0; i < n; i++) m[i] = m[i] + expf(0.5f * lv[i]) * noise[i];
        nx_free(noise);
        ngpt_tensor_free(&logvar);
    }
    const float sf = ngpt_decoder_vae_scaling_factor(d);  /* scaling_factor * init_latents: float32 */
    for (int64_t i = 0; i < n; i++) m[i] = sf * m[i];
    *out = mean;
    return NGPT_OK;
}
