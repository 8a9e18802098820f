/* clip_text.h — transformers 4.29's CLIPTextModel (models/clip/modeling_clip.py), the text
 * encoder of the diffusers pipelines' text_encoder/ folder (config.json + model.safetensors or
 * pytorch_model.bin): SD 1.5's CLIP ViT-L/14 text tower (768, 12 layers, quick_gelu), Zeroscope's
 * OpenCLIP-H one (1024, 23 layers, gelu) — every size from config.json. */
#ifndef NX_CLIP_TEXT_H
#define NX_CLIP_TEXT_H

#include "../ops/backend.h"

typedef struct nx_clip_text nx_clip_text;

/* dt: the compute dtype (F32, or F16/BF16 where the backend computes in them; weights are
 * converted to it at load). */
ngpt_status nx_clip_text_load(nx_clip_text **out, nx_backend *be, const char *dir, ngpt_dtype dt);
ngpt_dtype nx_clip_text_dtype(const nx_clip_text *m);  /* the load's dt */
void nx_clip_text_free(nx_clip_text *m);
int  nx_clip_text_hidden(const nx_clip_text *m);         /* hidden_size */
int  nx_clip_text_max_positions(const nx_clip_text *m);  /* max_position_embeddings (77) */
int  nx_clip_text_vocab_size(const nx_clip_text *m);

/* last_hidden_state: out [B, S, hidden] (dtype nx_clip_text_dtype, allocated by the caller on the model's backend)
 * for the host ids [B * S] (each in [0, vocab_size), S <= max_positions), with the causal mask
 * and no attention mask, as the diffusers pipelines call it. */
ngpt_status nx_clip_text_forward(nx_clip_text *m, nx_tensor *out, const int32_t *ids, int64_t B, int64_t S);

#endif
