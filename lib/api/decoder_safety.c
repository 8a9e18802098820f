/* decoder_safety.c — Stable Diffusion's safety checker on an IMAGE decoder
 * (NGPT_DECODER_FLAG_SAFETY_CHECKER): the stage call ngpt_decoder_safety_check, and the run that
 * ngpt_decoder_generate makes after the VAE, as NExT-GPT's custom_sd.run_safety_checker does. */
#include "bridge.h"
#include "decoder.h"

#include "../core/alloc.h"

#include <math.h>
#include <string.h>

ngpt_status nx_decoder_safety_pixels(ngpt_decoder *d, const float *img_f32, const uint8_t *img_u8, int64_t B,
                                     int64_t H, int64_t W, float *pixels)
{
    if (!d->safety)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no safety checker loaded (NGPT_DECODER_FLAG_SAFETY_CHECKER)", d->dir);
    if (B < 1 || H < 1 || W < 1 || H > NX_DECODE_MAX_SIDE || W > NX_DECODE_MAX_SIDE)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "safety checker: %lld images of %lldx%lld (1..%d a side)", (long long)B,
                      (long long)W, (long long)H, NX_DECODE_MAX_SIDE);
    const int64_t S = nx_safety_image_size(d->safety), hw3 = H * W * 3;
    uint8_t *u8 = img_u8 ? NULL : nx_malloc((size_t)hw3);
    ngpt_status s = img_u8 || u8 ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "safety checker: out of memory");
    for (int64_t b = 0; s == NGPT_OK && b < B; b++) {
        const uint8_t *rgb = img_u8 ? img_u8 + b * hw3 : u8;
        if (!img_u8) /* numpy_to_pil: (images * 255).round().astype("uint8"), float32, half to even */
            for (int64_t i = 0; i < hw3; i++) u8[i] = (uint8_t)rintf(img_f32[b * hw3 + i] * 255.0f);
        s = nx_safety_preprocess(d->safety, rgb, (int32_t)W, (int32_t)H, pixels + b * 3 * S * S);
    }
    nx_free(u8);
    return s;
}

ngpt_status nx_decoder_safety_run(ngpt_decoder *d, const float *img_f32, const uint8_t *img_u8, int64_t B, int64_t H,
                                  int64_t W, bool *nsfw, float *special, float *concept)
{
    if (!d->safety)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no safety checker loaded (NGPT_DECODER_FLAG_SAFETY_CHECKER)", d->dir);
    const int64_t S = nx_safety_image_size(d->safety);
    float *pixels = B > 0 ? nx_malloc((size_t)(B * 3 * S * S) * sizeof *pixels) : NULL;
    float *emb = B > 0 ? nx_malloc((size_t)(B * nx_safety_projection_dim(d->safety)) * sizeof *emb) : NULL;
    ngpt_status s = (pixels && emb) || B < 1 ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "safety checker: out of memory");
    if (s == NGPT_OK) s = nx_decoder_safety_pixels(d, img_f32, img_u8, B, H, W, pixels);
    if (s == NGPT_OK) s = nx_safety_embed(d->safety, pixels, B, emb);
    if (s == NGPT_OK) nx_safety_scores(d->safety, emb, B, special, concept, nsfw);
    nx_free(pixels);
    nx_free(emb);
    return s;
}

NGPT_API ngpt_status ngpt_decoder_safety_check(ngpt_decoder *d, ngpt_tensor *nsfw, ngpt_tensor *special_scores,
                                               ngpt_tensor *concept_scores, const ngpt_tensor *images)
{
    if (nsfw) memset(nsfw, 0, sizeof *nsfw);
    if (special_scores) memset(special_scores, 0, sizeof *special_scores);
    if (concept_scores) memset(concept_scores, 0, sizeof *concept_scores);
    if (!d || !nsfw) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_safety_check: decoder or nsfw is NULL");
    NX_HOLD_DEVICE(d->ctx);
    NX_TRY(nx_api_check_tensor(images, "images", -1));
    const int r = images->rank;
    if ((r != 3 && r != 4) || images->shape[r - 1] != 3 ||
        (images->dtype != NGPT_DTYPE_F32 && images->dtype != NGPT_DTYPE_U8)) {
        char got[160];
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_decoder_safety_check: images %s %s, expected F32 or U8 "
                      "[B, H, W, 3] or [H, W, 3]", ngpt_dtype_name(images->dtype),
                      nx_shape_str(got, sizeof got, r, images->shape));
    }
    const int64_t B = r == 4 ? images->shape[0] : 1, H = images->shape[r - 3], W = images->shape[r - 2];
    const int64_t n = B * H * W * 3;
    if (images->dtype == NGPT_DTYPE_F32)
        for (int64_t i = 0; i < n; i++) {
            float v = ((const float *)images->data)[i];
            if (!(v >= 0.0f && v <= 1.0f))
                return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_safety_check: images[%lld] is %g; F32 images "
                              "are in [0, 1] (ngpt_decoder_generate's output)", (long long)i, (double)v);
        }
    const int64_t ns = d->safety ? nx_safety_n_special(d->safety) : 0, nc = d->safety ? nx_safety_n_concepts(d->safety) : 0;
    int64_t s1[1] = {B}, s2[2] = {B, ns}, s3[2] = {B, nc};
    ngpt_status s = d->safety ? nx_api_tensor_new(nsfw, NGPT_DTYPE_BOOL, 1, s1)
                              : nx_err(NGPT_ERR_UNSUPPORTED, "%s: no safety checker loaded "
                                       "(NGPT_DECODER_FLAG_SAFETY_CHECKER)", d->dir);
    if (s == NGPT_OK && special_scores) s = nx_api_tensor_new(special_scores, NGPT_DTYPE_F32, 2, s2);
    if (s == NGPT_OK && concept_scores) s = nx_api_tensor_new(concept_scores, NGPT_DTYPE_F32, 2, s3);
    if (s == NGPT_OK) {
        const bool u8 = images->dtype == NGPT_DTYPE_U8;
        s = nx_decoder_safety_run(d, u8 ? NULL : images->data, u8 ? images->data : NULL, B, H, W, nsfw->data,
                                  special_scores ? special_scores->data : NULL,
                                  concept_scores ? concept_scores->data : NULL);
    }
    if (s != NGPT_OK) {
        ngpt_tensor_free(nsfw);
        if (special_scores) ngpt_tensor_free(special_scores);
        if (concept_scores) ngpt_tensor_free(concept_scores);
    }
    return s;
}
