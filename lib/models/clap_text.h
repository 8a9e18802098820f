/* clap_text.h — transformers' ClapTextModelWithProjection (models/clap/modeling_clap.py), the
 * text branch of CLAP that AudioLDM keeps in text_encoder/ (config.json model_type
 * "clap_text_model" + model.safetensors or pytorch_model.bin): a RoBERTa encoder, the pooler
 * (first token, dense + tanh) and ClapProjectionLayer (linear, act, linear) -> text_embeds.
 * AudioLDM-l-full: hidden 768, 12 layers, 12 heads, projection 512 — every size from config.json. */
#ifndef NX_CLAP_TEXT_H
#define NX_CLAP_TEXT_H

#include "../ops/backend.h"

typedef struct nx_clap_text nx_clap_text;

ngpt_status nx_clap_text_load(nx_clap_text **out, nx_backend *be, const char *dir);
void nx_clap_text_free(nx_clap_text *m);
int  nx_clap_text_projection_dim(const nx_clap_text *m);  /* projection_dim (512) */
int  nx_clap_text_max_tokens(const nx_clap_text *m);      /* max_position_embeddings - pad_token_id - 1 (512) */
int  nx_clap_text_vocab_size(const nx_clap_text *m);

/* text_embeds (NOT normalised): out [B, projection_dim] (F32, allocated by the caller on the
 * model's backend) for the host ids [B * S] (each in [0, vocab_size), S <= max_tokens) and
 * attention_mask [B * S] (0/1; NULL = all ones, as transformers defaults it). Position ids as
 * RoBERTa makes them: padding_idx + the running count of non-pad ids, padding_idx at pad ids. */
ngpt_status nx_clap_text_forward(nx_clap_text *m, nx_tensor *out, const int32_t *ids, const int32_t *mask, int64_t B,
                                 int64_t S);

#endif
