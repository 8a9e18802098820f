/* projector.h — NExT-GPT's projectors: the input projector `llama_proj` (Linear in -> llm_hidden,
 * one soft token per media item) and the three output projectors (TextFcLayer, mode
 * "transformer": fc -> nn.Transformer(norm_first, relu, dropout 0) -> model) that turn the LLM's
 * signal-token hidden states into decoder conditioning.
 *
 * Loaded from either
 *  - a projector folder: config.json (model_type "nextgpt_projectors": every size stated) +
 *    model.safetensors, with the delta's key names; or
 *  - the NExT-GPT delta itself (pytorch_model.pt or delta.safetensors, or a folder holding one):
 *    only the projector keys are taken, sizes derived from the tensor shapes and NExT-GPT's
 *    constants (nhead 4, signal tokens 4/24/8), which the options may override. The LLM keys
 *    (`llama_model.*`: LoRA, embed_tokens, lm_head) are skipped by prefix.
 */
#ifndef NX_PROJECTOR_H
#define NX_PROJECTOR_H

#include "../ops/backend.h"
#include "modality.h"

/* Output projector slots: indexed by nx_modality (modality.h). */
#define NX_PROJ_IMAGE NX_MODALITY_IMAGE
#define NX_PROJ_AUDIO NX_MODALITY_AUDIO
#define NX_PROJ_VIDEO NX_MODALITY_VIDEO
#define NX_PROJ_N_OUT NX_MODALITY_COUNT

typedef struct nx_projector_opts {
    bool     want_input;          /* load llama_proj */
    bool     want_out[NX_PROJ_N_OUT];
    bool     want_all;            /* load whatever the file holds (the fields above ignored) */
    int      nhead;               /* 0 = config.json, else NExT-GPT's 4 */
    int      num_input_tokens[NX_PROJ_N_OUT];   /* 0 = config / NExT-GPT's 4, 8, 24 */
    int      num_output_tokens[NX_PROJ_N_OUT];  /* 0 = from query_embs; else must match it */
    bool     allow_unknown;       /* unknown tensors are not an error */
} nx_projector_opts;

typedef struct nx_textfc_cfg {
    int   in_dim;                 /* llm_hidden (fc input) */
    int   out_dim;                /* decoder conditioning width (768 / 512 / 1024) */
    int   num_input_tokens;       /* signal tokens: 4 / 8 / 24 */
    int   num_output_tokens;      /* query tokens: 77 / 1 / 77 */
    int   d_model;                /* 512 */
    int   nhead;                  /* 4 */
    int   n_enc, n_dec;           /* 4, 4 */
    int   d_ff;                   /* 2048 */
    float eps;                    /* 1e-5 */
} nx_textfc_cfg;

typedef struct nx_projector nx_projector;

ngpt_status nx_projector_load(nx_projector **out, nx_backend *be, const char *path, const nx_projector_opts *o);
void nx_projector_free(nx_projector *p);

int  nx_projector_llm_hidden(const nx_projector *p);
bool nx_projector_has_input(const nx_projector *p);
int  nx_projector_input_dim(const nx_projector *p);
/* NULL when that output projector is not loaded. */
const nx_textfc_cfg *nx_projector_out_cfg(const nx_projector *p, int slot);

/* y [n, llm_hidden] = llama_proj(x [n, in_dim]). */
ngpt_status nx_projector_input_forward(nx_projector *p, nx_tensor *y, const nx_tensor *x);
/* y [B, n_out, out_dim] = TextFcLayer(hidden [B, n_in, llm_hidden], input_embs [same]). */
ngpt_status nx_projector_output_forward(nx_projector *p, int slot, nx_tensor *y, const nx_tensor *hidden,
                                        const nx_tensor *input_embs);

#endif
