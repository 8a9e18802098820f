/* unet_blocks.h — the diffusers building blocks that the 2-D UNet (unet.c) and the 3-D UNet
 * (Zeroscope's UNet3DConditionModel, which reuses ResnetBlock2D and Transformer2DModel and adds
 * temporal layers) are made of, ported from diffusers 0.17 (resnet.py, attention.py,
 * attention_processor.py, transformer_2d.py, embeddings.py):
 *
 *   nx_wload          fetch a checkpoint tensor as a backend tensor (zero copy on CPU)
 *   nx_resnet2d       ResnetBlock2D (GroupNorm+SiLU, conv3x3, time-embedding add, GroupNorm+SiLU,
 *                     conv3x3, 1x1 conv shortcut when channels change, / output_scale_factor)
 *   nx_attn           Attention (to_q/to_k/to_v without bias, to_out.0 with bias)
 *   nx_tblock         BasicTransformerBlock (LN, self-attn, LN, cross-attn, LN, GEGLU FF)
 *   nx_transformer2d  Transformer2DModel, continuous input (GroupNorm eps 1e-6, proj_in as 1x1
 *                     conv or linear, blocks, proj_out, residual)
 *   nx_conv2d         a Conv2d with its padding/stride (conv_in, Downsample2D, Upsample2D ...)
 *
 * Every block has _load (prefix = the module's state-dict path, shapes checked), _forward (a flat
 * list of op calls; temporaries allocated and freed inside, so the caller holds only the block's
 * input and output) and _free. Activations are [N, C, H, W] with N = batch (x frames in 3-D), or
 * [N, H, W, C] in blocks loaded channels last (nx_wload.channels_last: the layout cuDNN's
 * tensor-core convolutions work in; the transformer then needs no permutes at all). */
#ifndef NX_UNET_BLOCKS_H
#define NX_UNET_BLOCKS_H

#include "../core/weights.h"
#include "../core/json.h"
#include "../ops/backend.h"
#include "img_layout.h"
#include "mweights.h"

/* ---- weight fetching ---- */

/* Receives every tensor a loader asks for (name, rank, shape), in load order. */
typedef ngpt_status (*nx_wl_record_fn)(void *user, const char *name, int rank, const int64_t *shape);

typedef struct nx_wload {
    nx_weights *w;
    nx_backend *be;
    nx_wl_record_fn record;  /* non-NULL: dry run — report each tensor, fetch nothing (w, be unused) */
    void       *record_user;
    ngpt_dtype  dt;          /* the model's compute dtype: F16/BF16 convert every weight to it once at
                              * load (nx_weight_fetch); F32 (0) keeps the checkpoint's dtype */
    bool        channels_last; /* blocks loaded now take and give [N, H, W, C]; their conv filters
                                * are permuted to [O, kh, kw, C] at load (a copy, also on the CPU) */
} nx_wload;


/* Fetch tensor `fmt...` (printf-style name) with exactly this shape (F32/F16/BF16) into *out: on
 * the CPU backend a view of the mapping (zero copy), otherwise a copy in backend memory. Free
 * with nx_tensor_free (a no-op for views). In a dry run (record set) *out is a data-less F32 view. */
ngpt_status nx_wl_get(nx_wload *wl, nx_tensor *out, int rank, const int64_t *shape, const char *fmt, ...)
    NX_PRINTF(5, 6);
/* nx_wl_get of a matrix [n, k] that only nx_op_linear reads: a copy the loader owns (the CPU's
 * BF16 compute) is also packed for the backend's linears (nx_op_linear_pack). */
ngpt_status nx_wl_get_linear(nx_wload *wl, nx_tensor *out, int64_t n, int64_t k, const char *fmt, ...)
    NX_PRINTF(5, 6);
/* The packing of nx_wl_get_linear for a matrix fetched otherwise (then reshaped); frees w if it fails. */
ngpt_status nx_wl_pack_linear(nx_wload *wl, nx_tensor *w);

/* ---- Conv2d ---- */

typedef struct nx_conv2d {
    int in_ch, out_ch, k, stride, pad;
    bool cl;      /* channels last */
    nx_tensor w;  /* (out_ch, in_ch, k, k), channels last (out_ch, k, k, in_ch) */
    nx_tensor b;  /* (out_ch) */
} nx_conv2d;
ngpt_status nx_conv2d_load(nx_conv2d *c, nx_wload *wl, const char *prefix, int in_ch, int out_ch, int k,
                           int stride, int pad);
/* y [N, out_ch, Ho, Wo] (channels last [N, Ho, Wo, out_ch]) allocated by the caller. */
ngpt_status nx_conv2d_forward(nx_backend *be, const nx_conv2d *c, nx_tensor *y, const nx_tensor *x);
/* Allocates *y with the conv's output shape and runs it. */
ngpt_status nx_conv2d_new(nx_backend *be, const nx_conv2d *c, nx_tensor *y, const nx_tensor *x);
/* y = conv(group_norm(x) (+ SiLU)) in one op (nx_op_group_norm_conv): the GroupNorm's w, b,
 * groups and eps; SiLU always (every norm before a conv in these UNets has it). y allocated by
 * the caller (nx_conv2d_forward's shape). */
ngpt_status nx_conv2d_norm_forward(nx_backend *be, const nx_conv2d *c, nx_tensor *y, const nx_tensor *x,
                                   const nx_tensor *gw, const nx_tensor *gb, int groups, float eps);
void nx_conv2d_free(nx_conv2d *c);

/* ---- ResnetBlock2D (time_embedding_norm "default", pre_norm, SiLU) ---- */

typedef struct nx_resnet2d {
    int   in_ch, out_ch, temb_ch, groups;
    float eps, out_scale;
    bool  cl;                    /* channels last */
    nx_tensor norm1_w, norm1_b;  /* (in_ch) */
    nx_conv2d conv1;             /* (out_ch, in_ch, 3, 3) */
    nx_tensor temb_w, temb_b;    /* time_emb_proj (out_ch, temb_ch), (out_ch); none when temb_ch == 0 */
    nx_tensor norm2_w, norm2_b;  /* (out_ch) */
    nx_conv2d conv2;             /* (out_ch, out_ch, 3, 3) */
    bool      has_shortcut;      /* in_ch != out_ch */
    nx_conv2d shortcut;          /* conv_shortcut (out_ch, in_ch, 1, 1) */
} nx_resnet2d;
ngpt_status nx_resnet2d_load(nx_resnet2d *r, nx_wload *wl, const char *prefix, int in_ch, int out_ch,
                             int temb_ch, int groups, float eps, float out_scale);
/* y [N, out_ch, H, W] = block(x [N, in_ch, H, W], temb_act): temb_act is SiLU(temb) [N, temb_ch]
 * (the block applies the nonlinearity to temb before time_emb_proj; the caller computes it once
 * per forward), NULL when temb_ch == 0. */
ngpt_status nx_resnet2d_forward(nx_backend *be, const nx_resnet2d *r, nx_tensor *y, const nx_tensor *x,
                                const nx_tensor *temb_act);
void nx_resnet2d_free(nx_resnet2d *r);

/* ---- Attention ---- */

typedef struct nx_attn {
    int heads, dim_head, q_dim, kv_dim;
    nx_tensor q_w;         /* to_q (heads*dim_head, q_dim) */
    nx_tensor k_w, v_w;    /* to_k, to_v (heads*dim_head, kv_dim) */
    nx_tensor o_w, o_b;    /* to_out.0 (q_dim, heads*dim_head), (q_dim) */
} nx_attn;
ngpt_status nx_attn_load(nx_attn *a, nx_wload *wl, const char *prefix, int q_dim, int kv_dim, int heads,
                         int dim_head);
/* y [N, L, q_dim] = attn(x [N, L, q_dim], ctx [N, S, kv_dim]); ctx NULL = x (diffusers: an absent
 * encoder_hidden_states makes the layer attend to its own input, so kv_dim must equal q_dim). */
ngpt_status nx_attn_forward(nx_backend *be, const nx_attn *a, nx_tensor *y, const nx_tensor *x, const nx_tensor *ctx);
void nx_attn_free(nx_attn *a);

/* ---- BasicTransformerBlock (norm_type layer_norm, GEGLU feed-forward mult 4) ---- */

typedef struct nx_tblock {
    int dim, ff_inner;
    nx_tensor norm1_w, norm1_b;  /* (dim) */
    nx_attn   attn1;             /* self-attention */
    bool      has_attn2;         /* cross_attention_dim given */
    nx_tensor norm2_w, norm2_b;  /* (dim) */
    nx_attn   attn2;             /* cross-attention, K/V from cross_attention_dim */
    nx_tensor norm3_w, norm3_b;  /* (dim) */
    nx_tensor ff1_w, ff1_b;      /* ff.net.0.proj (2*ff_inner, dim), (2*ff_inner) */
    nx_tensor ff2_w, ff2_b;      /* ff.net.2 (dim, ff_inner), (dim) */
} nx_tblock;
/* cross_dim 0 = no attn2. */
ngpt_status nx_tblock_load(nx_tblock *t, nx_wload *wl, const char *prefix, int dim, int heads, int dim_head,
                           int cross_dim);
/* h [N, L, dim] updated in place; ehs [N, S, cross_dim] or NULL (attn2 then attends to h). */
ngpt_status nx_tblock_forward(nx_backend *be, const nx_tblock *t, nx_tensor *h, const nx_tensor *ehs);
void nx_tblock_free(nx_tblock *t);

/* ---- Transformer2DModel (continuous input) ---- */

typedef struct nx_transformer2d {
    int  in_ch, inner, groups, n_layers;
    bool linear_proj;            /* use_linear_projection */
    bool cl;                     /* channels last: x, y [N, H, W, C], already the blocks' [N, HW, C] */
    nx_tensor norm_w, norm_b;    /* (in_ch), GroupNorm eps 1e-6 */
    nx_tensor proj_in_w;         /* (inner, in_ch) [linear] or (inner, in_ch, 1, 1) [conv], seen as (inner, in_ch) */
    nx_tensor proj_in_b;         /* (inner) */
    nx_tblock *blocks;           /* n_layers */
    nx_tensor proj_out_w;        /* (in_ch, inner) [linear] or (in_ch, inner, 1, 1) [conv] */
    nx_tensor proj_out_b;        /* (in_ch) */
} nx_transformer2d;
/* heads x dim_head = inner; cross_dim 0 = no cross-attention layer. */
ngpt_status nx_transformer2d_load(nx_transformer2d *t, nx_wload *wl, const char *prefix, int in_ch, int heads,
                                  int dim_head, int n_layers, int cross_dim, int groups, bool linear_proj);
/* y [N, C, H, W] = x + proj_out(blocks(proj_in(norm(x)))); ehs [N, S, cross_dim] or NULL. */
ngpt_status nx_transformer2d_forward(nx_backend *be, const nx_transformer2d *t, nx_tensor *y, const nx_tensor *x,
                                     const nx_tensor *ehs);
void nx_transformer2d_free(nx_transformer2d *t);

/* ---- timestep embedding (embeddings.py get_timestep_embedding, on the host, float32 as PyTorch) ---- */

/* out[n, dim] for n timesteps: [sin | cos] of t * exp(-ln(max_period) i / (dim/2 - shift)),
 * halves swapped when flip_sin_to_cos, a zero column appended when dim is odd. */
void nx_timestep_embedding(float *out, const float *t, int n, int dim, bool flip_sin_to_cos, float shift,
                           float max_period);

/* Allocate an activation tensor of dtype dt on be (small helper for forward code). The blocks
 * compute in the dtype of their input (F32, or F16/BF16 on CUDA with compute_dtype set), so
 * every temporary is allocated with the input's dtype. */
static inline ngpt_status nx_new(nx_backend *be, ngpt_dtype dt, nx_tensor *t, int rank, const int64_t *ne)
{
    return nx_tensor_alloc(t, be, dt, rank, ne);
}

/* config.json checks shared by the 2-D and 3-D UNets. `model` (may be NULL) is appended to the
 * message, e.g. "(UNet3DConditionModel)". */
ngpt_status nx_unet_cfg_unsupported(const char *file, const char *key, const json_t *v, const char *model);
/* Keys this port fixes: each must be absent, null, or equal to `accepted` (a JSON literal; NULL:
 * no value is accepted). */
typedef struct { const char *key, *accepted; } nx_unet_fixed_key;
ngpt_status nx_unet_cfg_fixed(const json_t *cfg, const char *file, const nx_unet_fixed_key *keys, size_t n,
                              const char *model);
/* block_out_channels: 1..NX_UNET_MAX_BLOCKS widths in 1..65536, into block_out[NX_UNET_MAX_BLOCKS]. */
#define NX_UNET_MAX_BLOCKS 8
ngpt_status nx_unet_cfg_block_out(const json_t *cfg, const char *file, int *block_out, int *n_blocks, const char *model);
/* cfg[key] must be a list of n block types, each attn_name (attn[i] = true) or plain_name. */
ngpt_status nx_unet_cfg_block_types(const json_t *cfg, const char *file, const char *key, int n, const char *attn_name,
                                    const char *plain_name, bool *attn, const char *model);

#endif
