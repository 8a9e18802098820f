/* clip_encoder.h — transformers 4.29's CLIPEncoder (models/clip/modeling_clip.py): the stack of
 * pre-LN CLIPEncoderLayers that CLIP's text tower (clip_text.c) and vision tower (the Stable
 * Diffusion safety checker, safety_checker.c) share:
 *
 *   per layer:
 *     x = x + out_proj(attention(q_proj(ln1(x)), k_proj(.), v_proj(.)))   H heads, scale hd^-0.5
 *     x = x + fc2(act(fc1(ln2(x))))                                        act = hidden_act
 *
 * The text tower runs it with the causal mask, the vision tower without a mask. */
#ifndef NX_CLIP_ENCODER_H
#define NX_CLIP_ENCODER_H

#include "mweights.h"

#include "../core/json.h"

#define NX_CLIP_MAX_LAYERS 64

typedef struct nx_clip_enc_config {
    int      hidden, layers, heads, inter;
    float    eps;     /* layer_norm_eps */
    nx_unary act;     /* hidden_act */
} nx_clip_enc_config;

typedef struct nx_clip_enc_layer {
    const nx_tensor *ln1_w, *ln1_b;           /* [D] */
    const nx_tensor *q_w, *q_b, *k_w, *k_b;   /* [D, D], [D] */
    const nx_tensor *v_w, *v_b, *o_w, *o_b;   /* [D, D], [D] */
    const nx_tensor *ln2_w, *ln2_b;           /* [D] */
    const nx_tensor *fc1_w, *fc1_b;           /* [I, D], [I] */
    const nx_tensor *fc2_w, *fc2_b;           /* [D, I], [D] */
} nx_clip_enc_layer;

typedef struct nx_clip_enc {
    nx_clip_enc_config cfg;
    nx_clip_enc_layer  layer[NX_CLIP_MAX_LAYERS];
} nx_clip_enc;

/* The encoder's keys of a CLIP{Text,Vision}Config object `obj` (hidden_size, num_hidden_layers,
 * num_attention_heads, intermediate_size, layer_norm_eps, hidden_act), each absent one taken from
 * `def` (the config class's defaults); `file` names the source in messages. Checks the ranges,
 * hidden % heads and the activation (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh). */
ngpt_status nx_clip_enc_read_config(nx_clip_enc_config *c, const json_t *obj, const char *file,
                                    const nx_clip_enc_config *def);

/* Fetch every layer's weights from w under `prefix` ("text_model.encoder.layers." + i + "."). */
ngpt_status nx_clip_enc_load(nx_clip_enc *e, nx_mw *w, const char *prefix);

/* x [B, S, hidden] (the compute dtype) through every layer, in place. */
ngpt_status nx_clip_enc_forward(const nx_clip_enc *e, nx_backend *be, nx_tensor *x, bool causal);

#endif
