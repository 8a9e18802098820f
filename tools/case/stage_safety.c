/* stage_safety.c — sd.safety_checker: images F32 [B, H, W, 3] in [0, 1] (decode_latents' output)
 * through custom_sd.run_safety_checker. Outputs: has_nsfw_concepts I64 [B], special_scores,
 * concept_scores (ngpt_decoder_safety_check), images (flagged ones black, as the pipeline
 * returns them), and the internals pixel_values [B, 3, S, S] (the feature extractor) and
 * image_embeds [B, projection_dim], read from the decoder's checker so that a failing case says
 * which half is wrong. */
#include "stage_safety.h"

#include "api/decoder.h"
#include "core/alloc.h"

#include <string.h>

ngpt_status case_out_flags(case_out *out, const char *name, const ngpt_tensor *flags)
{
    int64_t B = flags->shape[0];
    int64_t *v = nx_malloc((size_t)(B > 0 ? B : 1) * sizeof *v);
    if (!v) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t b = 0; b < B; b++) v[b] = ((const bool *)flags->data)[b] ? 1 : 0;
    ngpt_status s = case_out_add(out, name, NGPT_DTYPE_I64, 1, &B, v);
    nx_free(v);
    return s;
}

/* pixel_values and image_embeds through the checker's internals (nx_safety_*). */
static ngpt_status internals(ngpt_decoder *d, case_out *out, const float *img, int64_t B, int64_t H, int64_t W)
{
    nx_safety *m = d->safety;
    const int64_t S = nx_safety_image_size(m), P = nx_safety_projection_dim(m);
    float *px = nx_malloc((size_t)(B * 3 * S * S) * sizeof *px), *emb = nx_malloc((size_t)(B * P) * sizeof *emb);
    ngpt_status s = px && emb ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    if (s == NGPT_OK) s = nx_decoder_safety_pixels(d, img, NULL, B, H, W, px);
    if (s == NGPT_OK) s = nx_safety_embed(m, px, B, emb);
    int64_t ps[4] = {B, 3, S, S}, es[2] = {B, P};
    if (s == NGPT_OK) s = case_out_add(out, "pixel_values", NGPT_DTYPE_F32, 4, ps, px);
    if (s == NGPT_OK) s = case_out_add(out, "image_embeds", NGPT_DTYPE_F32, 2, es, emb);
    nx_free(px);
    nx_free(emb);
    return s;
}

ngpt_status case_sd_safety_checker(const case_ctx *c, case_out *out)
{
    ngpt_decoder *d = NULL;
    char *dir = NULL;
    float *img = NULL;
    ngpt_tensor nsfw = {0}, special = {0}, concept = {0}, in = {.dtype = NGPT_DTYPE_F32};
    ngpt_status s = case_open_decoder_flags(c, &d, NGPT_DECODER_IMAGE, 0, NGPT_DECODER_FLAG_SAFETY_CHECKER, &dir);
    if (s == NGPT_OK) s = case_input_f32(c, "images", &img, &in.rank, in.shape);
    if (s == NGPT_OK && in.rank != 4) s = nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: images must be [B, H, W, 3]", c->case_dir);
    in.data = img;
    if (s == NGPT_OK) s = ngpt_decoder_safety_check(d, &nsfw, &special, &concept, &in);
    if (s == NGPT_OK) s = case_out_flags(out, "has_nsfw_concepts", &nsfw);
    if (s == NGPT_OK) s = case_out_add(out, "special_scores", NGPT_DTYPE_F32, 2, special.shape, special.data);
    if (s == NGPT_OK) s = case_out_add(out, "concept_scores", NGPT_DTYPE_F32, 2, concept.shape, concept.data);
    if (s == NGPT_OK) s = internals(d, out, img, in.shape[0], in.shape[1], in.shape[2]);
    if (s == NGPT_OK) {  /* the pipeline's images: flagged ones replaced by zeros */
        const int64_t n = in.shape[1] * in.shape[2] * 3;
        for (int64_t b = 0; b < in.shape[0]; b++)
            if (((const bool *)nsfw.data)[b]) memset(img + b * n, 0, (size_t)n * sizeof *img);
        s = case_out_add(out, "images", NGPT_DTYPE_F32, 4, in.shape, img);
    }
    ngpt_tensor_free(&nsfw);
    ngpt_tensor_free(&special);
    ngpt_tensor_free(&concept);
    nx_free(img);
    ngpt_decoder_free(d);
    nx_free(dir);
    return s;
}
