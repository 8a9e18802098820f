/* safety_checker.h — Stable Diffusion's safety checker as NExT-GPT's custom_sd pipeline runs it
 * (run_safety_checker, right after decode_latents):
 *
 *   pixel_values = feature_extractor(numpy_to_pil(image))        transformers 4.29 CLIPImageProcessor
 *   pooled       = CLIPVisionModel(pixel_values).pooler_output    post_layernorm(last_hidden[:, 0])
 *   image_embeds = visual_projection(pooled)                      no bias
 *   cos          = normalize(image_embeds) @ normalize(embeds)^T  special_care_embeds, concept_embeds
 *   then diffusers 0.17's StableDiffusionSafetyChecker.forward loop per image:
 *     adjustment = 0
 *     special_scores[k] = round(cos_s[k] - special_care_embeds_weights[k] + adjustment, 3);
 *                         > 0: adjustment = 0.01 (for the later special concepts too)
 *     concept_scores[k] = round(cos_c[k] - concept_embeds_weights[k] + adjustment, 3)
 *     nsfw = any concept_scores > 0   (the pipeline then blacks the image out)
 * in float64 (numpy float32 minus a Python float), round = rint(x * 1000) / 1000 as numpy's.
 *
 * Files: safety_checker/config.json (CLIPConfig: the vision tower's keys from vision_config, or,
 * when the legacy vision_config_dict is there, from it alone over CLIPVisionConfig's defaults, as
 * transformers 4.29 reads SD 1.5's file; projection_dim) + model.safetensors or
 * pytorch_model.bin (tensors vision_model.vision_model.*, visual_projection.weight,
 * concept_embeds, special_care_embeds and their *_weights), and
 * feature_extractor/preprocessor_config.json. */
#ifndef NX_SAFETY_CHECKER_H
#define NX_SAFETY_CHECKER_H

#include "clip_encoder.h"

typedef struct nx_safety nx_safety;

/* safety_checker/config.json's sizes: the vision tower's encoder, image_size, patch_size,
 * projection_dim. */
typedef struct nx_safety_config {
    nx_clip_enc_config enc;
    int32_t            image_size, patch, proj;
} nx_safety_config;

/* Read `checker_dir`/config.json (the memory estimate reads it too). */
ngpt_status nx_safety_read_config(nx_safety_config *c, const char *checker_dir);

/* dt: the vision tower's compute dtype (F32, or F16/BF16 on a backend that computes in them). */
ngpt_status nx_safety_load(nx_safety **out, nx_backend *be, const char *checker_dir, const char *fe_dir,
                           ngpt_dtype dt);
void nx_safety_free(nx_safety *m);

int32_t nx_safety_image_size(const nx_safety *m);     /* vision image_size: pixel_values are [3, S, S] */
int32_t nx_safety_projection_dim(const nx_safety *m);
int32_t nx_safety_n_concepts(const nx_safety *m);     /* rows of concept_embeds (17 in SD 1.5) */
int32_t nx_safety_n_special(const nx_safety *m);      /* rows of special_care_embeds (3) */

/* The feature extractor on one packed RGB8 image (w x h): out F32 [3, S, S]. An image the
 * processor's settings do not bring to S x S is NGPT_ERR_SHAPE_MISMATCH (CLIP would fail on it). */
ngpt_status nx_safety_preprocess(const nx_safety *m, const uint8_t *rgb, int32_t w, int32_t h, float *out);

/* pixels host F32 [B, 3, S, S] -> embeds host F32 [B, projection_dim] (image_embeds). */
ngpt_status nx_safety_embed(nx_safety *m, const float *pixels, int64_t B, float *embeds);

/* The forward loop on embeds [B, projection_dim] (L2-normalised in place): special [B, n_special],
 * concept [B, n_concepts] (the result dicts' rounded scores; either may be NULL) and nsfw[B]. */
void nx_safety_scores(const nx_safety *m, float *embeds, int64_t B, float *special, float *concept, bool *nsfw);

#endif
