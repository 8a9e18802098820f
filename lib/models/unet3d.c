/* unet3d.c — diffusers 0.17 UNet3DConditionModel (unet_3d_condition.py, unet_3d_blocks.py,
 * resnet.py TemporalConvLayer, transformer_temporal.py) through the op layer: Zeroscope v2's
 * video denoiser. The spatial layers are the 2-D UNet's blocks (unet_blocks.c) run on every frame
 * (frames folded into the batch: [B*F, C, h, w], batch index b*F + f); the temporal layers see
 * the frames as a sequence:
 *
 *   sample [B,C,F,h,w] ─ permute to [B*F,C,h,w] ─ conv_in ─ transformer_in (temporal)
 *     ─ down blocks: (resnet ─ temp_conv [─ attention ─ temp_attention]) x layers [─ downsample]
 *     ─ mid: resnet ─ temp_conv ─ attention ─ temp_attention ─ resnet ─ temp_conv
 *     ─ up blocks: (concat skip ─ resnet ─ temp_conv [─ attention ─ temp_attention]) x (layers+1) [─ upsample]
 *     ─ GroupNorm+SiLU ─ conv_out ─ permute back to [B,C,F,h,w]
 *   timestep ─ sinusoid(C0) ─ linear_1 ─ SiLU ─ linear_2 = emb, repeated per frame;
 *   encoder_hidden_states repeated per frame (repeat_interleave).
 *
 * TemporalConvLayer(C): on [B,C,F,h,w], 4 x (GroupNorm(32 groups, hard-coded; eps 1e-5) ─ SiLU ─
 * Conv3d (3,1,1) pad (1,0,0)), plus the input.
 * TransformerTemporalModel(C): GroupNorm(groups, eps 1e-6) on [B,C,F,h,w]; tokens [B*h*w, F, C];
 * Linear proj_in C -> heads*head_size; one BasicTransformerBlock whose attn2 is a second
 * self-attention (double_self_attention); Linear proj_out; plus the input. (diffusers 0.17
 * reshapes the result back through (B,h,w,C,F) and (B,C,F,h,w) without permuting in between; the
 * two reinterpretations cancel, so the result is the plain inverse permutation used here.)
 *
 * Channels last (nx_wload.channels_last): the frames-in-batch activations are [B*F, h, w, C] =
 * [B, F, h*w, C]; the temporal conv is then a (3,1) NHWC conv over (F, h*w) and the GroupNorms
 * read [B, F*h*w, C] with no permute; the temporal transformer's tokens are one permute away.
 *
 * `attention_head_dim` is the head SIZE here: C / attention_head_dim heads per spatial and
 * temporal transformer; transformer_in has 8 heads of attention_head_dim. Every Transformer2D is
 * built with use_linear_projection (get_down_block / get_up_block / the mid block default). */
#include "unet3d.h"
#include "unet_blocks.h"

#include "../core/alloc.h"
#include "../core/error.h"
#include "../core/json.h"

#include <stdio.h>
#include <string.h>

#define MAX_BLOCKS NX_UNET_MAX_BLOCKS
#define MAX_LAYERS 8     /* resnets per block (up blocks have layers_per_block + 1) */
#define TCONV_GROUPS 32  /* TemporalConvLayer's GroupNorm(32, C), not norm_num_groups */
#define IN_HEADS 8       /* transformer_in: num_attention_heads=8 */
#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define TRYG(expr) do { if ((s = (expr)) != NGPT_OK) goto done; } while (0)

/* ---------------------------------------------------------------------------------------------
 * temporal blocks */

/* TemporalConvLayer (resnet.py): keys convK.0 (GroupNorm) and convK.2 (K = 1) / convK.3 (K > 1,
 * after a Dropout) (Conv3d). */
typedef struct tconv {
    int ch;
    bool cl;                         /* channels last */
    nx_tensor norm_w[4], norm_b[4];  /* (ch) */
    nx_tensor conv_w[4];             /* (ch, ch, 3, 1, 1); channels last (ch, 3, 1, ch) */
    nx_tensor conv_b[4];             /* (ch) */
} tconv;

/* TransformerTemporalModel (transformer_temporal.py), num_layers 1. */
typedef struct ttrans {
    int ch, inner, groups;
    bool cl;                         /* channels last */
    nx_tensor norm_w, norm_b;        /* (ch), GroupNorm eps 1e-6 */
    nx_tensor proj_in_w, proj_in_b;  /* (inner, ch), (inner) */
    nx_tblock block;                 /* transformer_blocks.0, dim inner, attn2 = self-attention */
    nx_tensor proj_out_w, proj_out_b;/* (ch, inner), (ch) */
} ttrans;

static ngpt_status tconv_load(tconv *t, nx_wload *wl, const char *prefix, int ch)
{
    t->ch = ch;
    t->cl = wl->channels_last;
    for (int k = 0; k < 4; k++) {
        int ci = k == 0 ? 2 : 3;
        NX_TRY(nx_wl_get(wl, &t->norm_w[k], 1, SHAPE(ch), "%s.conv%d.0.weight", prefix, k + 1));
        NX_TRY(nx_wl_get(wl, &t->norm_b[k], 1, SHAPE(ch), "%s.conv%d.0.bias", prefix, k + 1));
        NX_TRY(nx_wl_get(wl, &t->conv_w[k], 5, SHAPE(ch, ch, 3, 1, 1), "%s.conv%d.%d.weight", prefix, k + 1, ci));
        if (t->cl && !wl->record) { /* the Conv3d (3,1,1) as a (3,1) conv2d filter, channels last */
            NX_TRY(nx_weight_reshape(&t->conv_w[k], 4, SHAPE(ch, ch, 3, 1)));
            NX_TRY(nx_filter_to_nhwc(wl->be, &t->conv_w[k]));
        }
        NX_TRY(nx_wl_get(wl, &t->conv_b[k], 1, SHAPE(ch), "%s.conv%d.%d.bias", prefix, k + 1, ci));
    }
    return NGPT_OK;
}

static void tconv_free(tconv *t)
{
    for (int k = 0; k < 4; k++) {
        nx_tensor_free(&t->norm_w[k]);
        nx_tensor_free(&t->norm_b[k]);
        nx_tensor_free(&t->conv_w[k]);
        nx_tensor_free(&t->conv_b[k]);
    }
}

/* y [B*F, C, h, w] = x + convs(x seen as [B, C, F, h, w]). The Conv3d (3,1,1) pad (1,0,0) is run
 * as the same-math 2-D conv with kernel (3,1), pad (1,0) over [B, C, F, h*w]: the CPU backend's
 * 3-D conv path was 4-7x slower than its 2-D one on these shapes (bench_unet3d NGPT_BENCH_ZS_CONV). */
/* Channels last: x [B*F, h, w, C] is already [B, F, h*w, C], the (3,1) conv's NHWC input, and
 * the GroupNorm's [B, F*h*w, C]: no permutes. */
static ngpt_status tconv_forward_cl(nx_backend *be, const tconv *t, nx_tensor *y, const nx_tensor *x, int64_t F)
{
    const int64_t N = x->ne[0], H = x->ne[1], W = x->ne[2], C = x->ne[3], B = N / F;
    nx_conv_params cp = nx_conv_params_default();
    cp.pad[0] = 1;
    cp.channels_last = true;
    nx_tensor c = {0}, x4, y4;
    ngpt_status s;
    TRYG(nx_reshape(&x4, x, 4, SHAPE(B, F, H * W, C)));
    TRYG(nx_reshape(&y4, y, 4, SHAPE(B, F, H * W, C)));
    TRYG(nx_new(be, x->dtype, &c, 4, x4.ne));
    for (int k = 0; k < 4; k++) /* the norm over [B, F*h*w, C] is the same over [B, F, h*w, C] */
        TRYG(nx_op_group_norm_conv(be, k % 2 ? &y4 : &c, k == 0 ? &x4 : (k % 2 ? &c : &y4), &t->norm_w[k],
                                   &t->norm_b[k], TCONV_GROUPS, 1e-5f, NX_GN_SILU | NX_GN_CHANNELS_LAST,
                                   &t->conv_w[k], &t->conv_b[k], &cp)); /* c, y, c, y */
    TRYG(nx_op_binary(be, &y4, &y4, &x4, NX_BINARY_ADD));
done:
    nx_tensor_free(&c);
    return s;
}

static ngpt_status tconv_forward(nx_backend *be, const tconv *t, nx_tensor *y, const nx_tensor *x, int64_t F)
{
    if (t->cl) return tconv_forward_cl(be, t, y, x, F);
    int64_t N = x->ne[0], C = x->ne[1], H = x->ne[2], W = x->ne[3], B = N / F;
    static const int swap12[5] = {0, 2, 1, 3, 4};  /* [B,F,C,h,w] <-> [B,C,F,h,w] */
    nx_conv_params cp = nx_conv_params_default();
    cp.pad[0] = 1;
    nx_tensor a = {0}, g = {0}, c = {0}, x5, y5, g4, c4, w4;
    ngpt_status s;
    TRYG(nx_reshape(&x5, x, 5, SHAPE(B, F, C, H, W)));
    TRYG(nx_new(be, x->dtype, &a, 5, SHAPE(B, C, F, H, W)));
    TRYG(nx_op_permute(be, &a, &x5, swap12));
    TRYG(nx_new(be, x->dtype, &g, 5, a.ne));
    TRYG(nx_new(be, x->dtype, &c, 5, a.ne));
    TRYG(nx_reshape(&g4, &g, 4, SHAPE(B, C, F, H * W)));
    TRYG(nx_reshape(&c4, &c, 4, SHAPE(B, C, F, H * W)));
    for (int k = 0; k < 4; k++) {
        TRYG(nx_op_group_norm(be, &g, k == 0 ? &a : &c, &t->norm_w[k], &t->norm_b[k], TCONV_GROUPS, 1e-5f, NX_GN_SILU));
        TRYG(nx_reshape(&w4, &t->conv_w[k], 4, SHAPE(C, C, 3, 1)));
        TRYG(nx_op_conv(be, &c4, &g4, &w4, &t->conv_b[k], &cp));
    }
    TRYG(nx_op_binary(be, &c, &c, &a, NX_BINARY_ADD));
    TRYG(nx_reshape(&y5, y, 5, SHAPE(B, F, C, H, W)));
    TRYG(nx_op_permute(be, &y5, &c, swap12));
done:
    nx_tensor_free(&a);
    nx_tensor_free(&g);
    nx_tensor_free(&c);
    return s;
}

static ngpt_status ttrans_load(ttrans *t, nx_wload *wl, const char *prefix, int ch, int heads, int head_size,
                               int groups)
{
    int inner = heads * head_size;
    char p[256];
    t->ch = ch, t->inner = inner, t->groups = groups, t->cl = wl->channels_last;
    NX_TRY(nx_wl_get(wl, &t->norm_w, 1, SHAPE(ch), "%s.norm.weight", prefix));
    NX_TRY(nx_wl_get(wl, &t->norm_b, 1, SHAPE(ch), "%s.norm.bias", prefix));
    NX_TRY(nx_wl_get_linear(wl, &t->proj_in_w, inner, ch, "%s.proj_in.weight", prefix));
    NX_TRY(nx_wl_get(wl, &t->proj_in_b, 1, SHAPE(inner), "%s.proj_in.bias", prefix));
    snprintf(p, sizeof p, "%s.transformer_blocks.0", prefix);
    /* double_self_attention: attn2's keys/values come from the block's own width */
    NX_TRY(nx_tblock_load(&t->block, wl, p, inner, heads, head_size, inner));
    NX_TRY(nx_wl_get_linear(wl, &t->proj_out_w, ch, inner, "%s.proj_out.weight", prefix));
    NX_TRY(nx_wl_get(wl, &t->proj_out_b, 1, SHAPE(ch), "%s.proj_out.bias", prefix));
    return NGPT_OK;
}

static void ttrans_free(ttrans *t)
{
    nx_tensor_free(&t->norm_w);
    nx_tensor_free(&t->norm_b);
    nx_tensor_free(&t->proj_in_w);
    nx_tensor_free(&t->proj_in_b);
    nx_tblock_free(&t->block);
    nx_tensor_free(&t->proj_out_w);
    nx_tensor_free(&t->proj_out_b);
}

/* Channels last: x [B*F, h, w, C] = [B, F, h*w, C]; the norm reads it as [B, F*h*w, C], the
 * tokens are one permute away ([B, h*w, F, C]) and one back. */
static ngpt_status ttrans_forward_cl(nx_backend *be, const ttrans *t, nx_tensor *y, const nx_tensor *x, int64_t F)
{
    const int64_t N = x->ne[0], H = x->ne[1], W = x->ne[2], C = x->ne[3], B = N / F, P = H * W;
    static const int swap12[4] = {0, 2, 1, 3}; /* [B, F, P, C] <-> [B, P, F, C] */
    nx_tensor g = {0}, p = {0}, h = {0}, x3, g4, p3, y4;
    ngpt_status s;
    TRYG(nx_reshape(&x3, x, 3, SHAPE(B, F * P, C)));
    TRYG(nx_new(be, x->dtype, &g, 3, x3.ne));
    TRYG(nx_op_group_norm(be, &g, &x3, &t->norm_w, &t->norm_b, t->groups, 1e-6f, NX_GN_CHANNELS_LAST));
    TRYG(nx_reshape(&g4, &g, 4, SHAPE(B, F, P, C)));
    TRYG(nx_new(be, x->dtype, &p, 4, SHAPE(B, P, F, C)));
    TRYG(nx_op_permute(be, &p, &g4, swap12));
    nx_tensor_free(&g);
    TRYG(nx_reshape(&p3, &p, 3, SHAPE(B * P, F, C)));
    TRYG(nx_new(be, x->dtype, &h, 3, SHAPE(B * P, F, t->inner)));
    TRYG(nx_op_linear(be, &h, &p3, &t->proj_in_w, &t->proj_in_b));
    TRYG(nx_tblock_forward(be, &t->block, &h, NULL));
    TRYG(nx_op_linear(be, &p3, &h, &t->proj_out_w, &t->proj_out_b));
    nx_tensor_free(&h);
    TRYG(nx_reshape(&y4, y, 4, SHAPE(B, F, P, C)));
    TRYG(nx_op_permute(be, &y4, &p, swap12));
    TRYG(nx_op_binary(be, y, y, x, NX_BINARY_ADD));
done:
    nx_tensor_free(&g);
    nx_tensor_free(&p);
    nx_tensor_free(&h);
    return s;
}

/* y [B*F, C, h, w] = x + proj_out(block(proj_in(norm(x) as [B*h*w, F, C]))) back in x's layout. */
static ngpt_status ttrans_forward(nx_backend *be, const ttrans *t, nx_tensor *y, const nx_tensor *x, int64_t F)
{
    if (t->cl) return ttrans_forward_cl(be, t, y, x, F);
    int64_t N = x->ne[0], C = x->ne[1], H = x->ne[2], W = x->ne[3], B = N / F;
    static const int swap12[5] = {0, 2, 1, 3, 4};  /* [B,F,C,h,w] -> [B,C,F,h,w] */
    static const int to_tok[5] = {0, 3, 4, 2, 1};  /* [B,C,F,h,w] -> [B,h,w,F,C] */
    static const int from_tok[5] = {0, 3, 4, 1, 2};/* [B,h,w,F,C] -> [B,F,C,h,w] */
    nx_tensor a = {0}, g = {0}, p = {0}, h = {0}, x5, p3, p5, y5;
    ngpt_status s;
    TRYG(nx_reshape(&x5, x, 5, SHAPE(B, F, C, H, W)));
    TRYG(nx_new(be, x->dtype, &a, 5, SHAPE(B, C, F, H, W)));
    TRYG(nx_op_permute(be, &a, &x5, swap12));
    TRYG(nx_new(be, x->dtype, &g, 5, a.ne));
    TRYG(nx_op_group_norm(be, &g, &a, &t->norm_w, &t->norm_b, t->groups, 1e-6f, 0));
    nx_tensor_free(&a);
    TRYG(nx_new(be, x->dtype, &p, 5, SHAPE(B, H, W, F, C)));
    TRYG(nx_op_permute(be, &p, &g, to_tok));
    nx_tensor_free(&g);
    TRYG(nx_reshape(&p3, &p, 3, SHAPE(B * H * W, F, C)));
    TRYG(nx_new(be, x->dtype, &h, 3, SHAPE(B * H * W, F, t->inner)));
    TRYG(nx_op_linear(be, &h, &p3, &t->proj_in_w, &t->proj_in_b));
    TRYG(nx_tblock_forward(be, &t->block, &h, NULL));
    TRYG(nx_op_linear(be, &p3, &h, &t->proj_out_w, &t->proj_out_b));
    nx_tensor_free(&h);
    TRYG(nx_reshape(&p5, &p, 5, SHAPE(B, H, W, F, C)));
    TRYG(nx_reshape(&y5, y, 5, SHAPE(B, F, C, H, W)));
    TRYG(nx_op_permute(be, &y5, &p5, from_tok));
    TRYG(nx_op_binary(be, y, y, x, NX_BINARY_ADD));
done:
    nx_tensor_free(&a);
    nx_tensor_free(&g);
    nx_tensor_free(&p);
    nx_tensor_free(&h);
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * config and model */

typedef struct u3_config {
    int   in_ch, out_ch;
    int   n_blocks;                /* len(block_out_channels) */
    int   block_out[MAX_BLOCKS];   /* block_out_channels */
    bool  down_attn[MAX_BLOCKS];   /* CrossAttnDownBlock3D (else DownBlock3D) */
    bool  up_attn[MAX_BLOCKS];     /* CrossAttnUpBlock3D (else UpBlock3D) */
    int   layers;                  /* layers_per_block (an int in UNet3D) */
    int   head_size;               /* attention_head_dim: the head SIZE (an int in UNet3D) */
    int   cross_dim;               /* cross_attention_dim */
    int   groups;                  /* norm_num_groups */
    float eps;                     /* norm_eps */
    float mid_scale;               /* mid_block_scale_factor */
    int   time_dim;                /* 4 * block_out[0] */
} u3_config;

typedef struct u3_block {
    int n_layers;
    bool has_attn, has_resample;
    nx_resnet2d      resnets[MAX_LAYERS];
    tconv            tconvs[MAX_LAYERS];  /* temp_convs.j (out) */
    nx_transformer2d attns[MAX_LAYERS];   /* attentions.j: out/head_size heads of head_size */
    ttrans           tattns[MAX_LAYERS];  /* temp_attentions.j: same heads */
    nx_conv2d        resample;            /* downsamplers.0.conv (stride 2) / upsamplers.0.conv */
} u3_block;

struct nx_unet3d {
    u3_config c;
    bool      cl;                  /* activations [B*F, h, w, C] inside the forward */
    nx_tensor time1_w, time1_b;    /* time_embedding.linear_1 (T, C0), (T) */
    nx_tensor time2_w, time2_b;    /* time_embedding.linear_2 (T, T), (T) */
    nx_conv2d conv_in;             /* (C0, in_ch, 3, 3) */
    ttrans    tin;                 /* transformer_in: 8 heads of head_size, 32 groups, on C0 */
    u3_block  down[MAX_BLOCKS];
    nx_resnet2d      mid_res[2];   /* mid_block.resnets.{0,1} (Cn, Cn) */
    tconv            mid_tconv[2]; /* mid_block.temp_convs.{0,1} */
    nx_transformer2d mid_attn;     /* mid_block.attentions.0 */
    ttrans           mid_tattn;    /* mid_block.temp_attentions.0 */
    u3_block  up[MAX_BLOCKS];
    nx_tensor norm_out_w, norm_out_b;  /* conv_norm_out (C0) */
    nx_conv2d conv_out;            /* (out_ch, C0, 3, 3) */
    nx_tensor zeros;               /* [F] zeros of the last forward (repeat_interleave as a broadcast
                                      add), kept: a captured step must not upload them */
};

static ngpt_status unsupported(const char *file, const char *key, const json_t *v)
{
    return nx_unet_cfg_unsupported(file, key, v, "UNet3DConditionModel");
}

static ngpt_status block_types(const json_t *cfg, const char *file, const char *key, int n, const char *attn_name,
                               const char *plain_name, bool *attn)
{
    return nx_unet_cfg_block_types(cfg, file, key, n, attn_name, plain_name, attn, "UNet3DConditionModel");
}

/* An integer key in [lo, hi] (a list, e.g. a per-block attention_head_dim, is unsupported: UNet3D
 * passes it whole to transformer_in). */
static ngpt_status int_key(const json_t *j, const char *file, const char *key, int def, int lo, int hi, int *out)
{
    const json_t *v = json_object_get(j, key);
    if (!v) { *out = def; return NGPT_OK; }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) return unsupported(file, key, v);
    *out = (int)json_integer_value(v);
    return NGPT_OK;
}

static ngpt_status parse_config(u3_config *c, const json_t *j, const char *file)
{
    memset(c, 0, sizeof *c);
    /* what diffusers 0.17's UNet3DConditionModel fixes (or later versions added): default only */
    static const nx_unet_fixed_key fixed[] = {
        {"act_fn", "\"silu\""},
        {"downsample_padding", "1"},
        {"num_attention_heads", NULL},
        {"time_cond_proj_dim", NULL},
    };
    NX_TRY(nx_unet_cfg_fixed(j, file, fixed, sizeof fixed / sizeof fixed[0], "UNet3DConditionModel"));
    NX_TRY(int_key(j, file, "in_channels", 4, 1, 65536, &c->in_ch));
    NX_TRY(int_key(j, file, "out_channels", 4, 1, 65536, &c->out_ch));

    NX_TRY(nx_unet_cfg_block_out(j, file, c->block_out, &c->n_blocks, "UNet3DConditionModel"));
    NX_TRY(block_types(j, file, "down_block_types", c->n_blocks, "CrossAttnDownBlock3D", "DownBlock3D", c->down_attn));
    NX_TRY(block_types(j, file, "up_block_types", c->n_blocks, "CrossAttnUpBlock3D", "UpBlock3D", c->up_attn));
    NX_TRY(int_key(j, file, "layers_per_block", 2, 1, MAX_LAYERS - 1, &c->layers));
    NX_TRY(int_key(j, file, "attention_head_dim", 64, 1, 65536, &c->head_size));
    NX_TRY(int_key(j, file, "cross_attention_dim", 1024, 1, 65536, &c->cross_dim));
    NX_TRY(int_key(j, file, "norm_num_groups", 32, 1, 65536, &c->groups));  /* null: no conv_norm_out */
    double d;
    NX_TRY(nx_json_num_opt(j, "norm_eps", file, 1e-5, &d));
    if (!(d > 0)) return unsupported(file, "norm_eps", json_object_get(j, "norm_eps"));
    c->eps = (float)d;
    NX_TRY(nx_json_num_opt(j, "mid_block_scale_factor", file, 1.0, &d));
    if (!(d > 0)) return unsupported(file, "mid_block_scale_factor", json_object_get(j, "mid_block_scale_factor"));
    c->mid_scale = (float)d;
    c->time_dim = 4 * c->block_out[0];
    /* sample_size only sets the pipeline's default size. */

    for (int i = 0; i < c->n_blocks; i++) {
        int ch = c->block_out[i];
        if (ch % c->groups)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: norm_num_groups %d does not divide block_out_channels[%d] = %d", file,
                          c->groups, i, ch);
        if (ch % TCONV_GROUPS)  /* TemporalConvLayer and transformer_in: GroupNorm(32, C) */
            return nx_err(NGPT_ERR_UNSUPPORTED, "%s: block_out_channels[%d] = %d is not a multiple of 32 (the temporal "
                          "convolutions' fixed GroupNorm groups)", file, i, ch);
        bool attn = c->down_attn[i] || c->up_attn[c->n_blocks - 1 - i] || i == c->n_blocks - 1;
        if (attn && ch < c->head_size)
            return nx_err(NGPT_ERR_UNSUPPORTED, "%s: attention_head_dim %d (the head size) exceeds block width %d", file,
                          c->head_size, ch);
    }
    return NGPT_OK;
}

ngpt_status nx_unet3d_create(nx_unet3d **out, const json_t *cfg, const char *file)
{
    *out = NULL;
    nx_unet3d *u = nx_calloc(1, sizeof *u);
    if (!u) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", file);
    ngpt_status s = parse_config(&u->c, cfg, file);
    if (s != NGPT_OK) {
        nx_free(u);
        return s;
    }
    *out = u;
    return NGPT_OK;
}

/* resnet -> temp_conv [-> attention -> temp_attention], layer j of a 3-D block. */
static ngpt_status layer_load(const u3_config *c, u3_block *b, nx_wload *wl, const char *blk, int j, int in, int out)
{
    char p[192];
    int heads = out / c->head_size;
    snprintf(p, sizeof p, "%s.resnets.%d", blk, j);
    NX_TRY(nx_resnet2d_load(&b->resnets[j], wl, p, in, out, c->time_dim, c->groups, c->eps, 1.0f));
    b->n_layers = j + 1;
    snprintf(p, sizeof p, "%s.temp_convs.%d", blk, j);
    NX_TRY(tconv_load(&b->tconvs[j], wl, p, out));
    if (!b->has_attn) return NGPT_OK;
    snprintf(p, sizeof p, "%s.attentions.%d", blk, j);
    NX_TRY(nx_transformer2d_load(&b->attns[j], wl, p, out, heads, c->head_size, 1, c->cross_dim, c->groups, true));
    snprintf(p, sizeof p, "%s.temp_attentions.%d", blk, j);
    return ttrans_load(&b->tattns[j], wl, p, out, heads, c->head_size, c->groups);
}

ngpt_status nx_unet3d_load(nx_unet3d *u, nx_wload *wl)
{
    const u3_config *c = &u->c;
    int n = c->n_blocks, C0 = c->block_out[0], T = c->time_dim, Cn = c->block_out[n - 1];
    char p[128];
    u->cl = wl->channels_last;
    NX_TRY(nx_conv2d_load(&u->conv_in, wl, "conv_in", c->in_ch, C0, 3, 1, 1));
    NX_TRY(nx_wl_get(wl, &u->time1_w, 2, SHAPE(T, C0), "time_embedding.linear_1.weight"));
    NX_TRY(nx_wl_get(wl, &u->time1_b, 1, SHAPE(T), "time_embedding.linear_1.bias"));
    NX_TRY(nx_wl_get(wl, &u->time2_w, 2, SHAPE(T, T), "time_embedding.linear_2.weight"));
    NX_TRY(nx_wl_get(wl, &u->time2_b, 1, SHAPE(T), "time_embedding.linear_2.bias"));
    NX_TRY(ttrans_load(&u->tin, wl, "transformer_in", C0, IN_HEADS, c->head_size, 32));

    for (int i = 0; i < n; i++) {  /* down block i: block_out[i-1] -> block_out[i] */
        u3_block *b = &u->down[i];
        int in = i == 0 ? C0 : c->block_out[i - 1], out = c->block_out[i];
        b->has_attn = c->down_attn[i];
        b->has_resample = i != n - 1;
        snprintf(p, sizeof p, "down_blocks.%d", i);
        for (int j = 0; j < c->layers; j++) NX_TRY(layer_load(c, b, wl, p, j, j == 0 ? in : out, out));
        if (b->has_resample) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
            NX_TRY(nx_conv2d_load(&b->resample, wl, p, out, out, 3, 2, 1));
        }
    }

    int hn = Cn / c->head_size;
    NX_TRY(nx_resnet2d_load(&u->mid_res[0], wl, "mid_block.resnets.0", Cn, Cn, T, c->groups, c->eps, c->mid_scale));
    NX_TRY(tconv_load(&u->mid_tconv[0], wl, "mid_block.temp_convs.0", Cn));
    NX_TRY(nx_transformer2d_load(&u->mid_attn, wl, "mid_block.attentions.0", Cn, hn, c->head_size, 1, c->cross_dim,
                                 c->groups, true));
    NX_TRY(ttrans_load(&u->mid_tattn, wl, "mid_block.temp_attentions.0", Cn, hn, c->head_size, c->groups));
    NX_TRY(nx_resnet2d_load(&u->mid_res[1], wl, "mid_block.resnets.1", Cn, Cn, T, c->groups, c->eps, c->mid_scale));
    NX_TRY(tconv_load(&u->mid_tconv[1], wl, "mid_block.temp_convs.1", Cn));

    for (int i = 0; i < n; i++) {  /* up block i mirrors down block r; resnet j takes (previous | skip) */
        u3_block *b = &u->up[i];
        int r = n - 1 - i, out = c->block_out[r];
        int prev = i == 0 ? Cn : c->block_out[r + 1];
        int in = c->block_out[r > 0 ? r - 1 : 0];
        int nl = c->layers + 1;
        b->has_attn = c->up_attn[i];
        b->has_resample = i != n - 1;
        snprintf(p, sizeof p, "up_blocks.%d", i);
        for (int j = 0; j < nl; j++) {
            int skip = j == nl - 1 ? in : out, rin = j == 0 ? prev : out;
            NX_TRY(layer_load(c, b, wl, p, j, rin + skip, out));
        }
        if (b->has_resample) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            NX_TRY(nx_conv2d_load(&b->resample, wl, p, out, out, 3, 1, 1));
        }
    }

    NX_TRY(nx_wl_get(wl, &u->norm_out_w, 1, SHAPE(C0), "conv_norm_out.weight"));
    NX_TRY(nx_wl_get(wl, &u->norm_out_b, 1, SHAPE(C0), "conv_norm_out.bias"));
    return nx_conv2d_load(&u->conv_out, wl, "conv_out", C0, c->out_ch, 3, 1, 1);
}

static void block_free(u3_block *b)
{
    for (int j = 0; j < MAX_LAYERS; j++) {
        nx_resnet2d_free(&b->resnets[j]);
        tconv_free(&b->tconvs[j]);
        nx_transformer2d_free(&b->attns[j]);
        ttrans_free(&b->tattns[j]);
    }
    nx_conv2d_free(&b->resample);
}

void nx_unet3d_free(nx_unet3d *u)
{
    if (!u) return;
    nx_tensor_free(&u->zeros);
    nx_tensor_free(&u->time1_w);
    nx_tensor_free(&u->time1_b);
    nx_tensor_free(&u->time2_w);
    nx_tensor_free(&u->time2_b);
    nx_conv2d_free(&u->conv_in);
    ttrans_free(&u->tin);
    for (int i = 0; i < MAX_BLOCKS; i++) {
        block_free(&u->down[i]);
        block_free(&u->up[i]);
    }
    for (int i = 0; i < 2; i++) {
        nx_resnet2d_free(&u->mid_res[i]);
        tconv_free(&u->mid_tconv[i]);
    }
    nx_transformer2d_free(&u->mid_attn);
    ttrans_free(&u->mid_tattn);
    nx_tensor_free(&u->norm_out_w);
    nx_tensor_free(&u->norm_out_b);
    nx_conv2d_free(&u->conv_out);
    nx_free(u);
}

int nx_unet3d_in_channels(const nx_unet3d *u) { return u->c.in_ch; }
int nx_unet3d_out_channels(const nx_unet3d *u) { return u->c.out_ch; }
int nx_unet3d_cross_attention_dim(const nx_unet3d *u) { return u->c.cross_dim; }

/* ---------------------------------------------------------------------------------------------
 * forward */

#define SKIP_CAP (1 + MAX_BLOCKS * (MAX_LAYERS + 1))

/* Each step replaces *x [B*F, C, h, w] by the block's output (x's old memory freed). */
static ngpt_status step_resnet(nx_backend *be, const nx_resnet2d *r, nx_tensor *x, const nx_tensor *temb)
{
    nx_tensor y = {0};
    const nx_img d = nx_img_of(x, r->cl);
    NX_TRY(nx_img_new(be, x->dtype, &y, r->cl, d.n, r->out_ch, d.h, d.w));
    ngpt_status s = nx_resnet2d_forward(be, r, &y, x, temb);
    if (s != NGPT_OK) { nx_tensor_free(&y); return s; }
    nx_tensor_free(x);
    *x = y;
    return NGPT_OK;
}

static ngpt_status step_tconv(nx_backend *be, const tconv *t, nx_tensor *x, int64_t F)
{
    nx_tensor y = {0};
    NX_TRY(nx_new(be, x->dtype, &y, 4, x->ne));
    ngpt_status s = tconv_forward(be, t, &y, x, F);
    if (s != NGPT_OK) { nx_tensor_free(&y); return s; }
    nx_tensor_free(x);
    *x = y;
    return NGPT_OK;
}

/* attention (spatial, cross-attending to ehs) then temp_attention (over the frames) */
static ngpt_status step_attn(nx_backend *be, const nx_transformer2d *a, const ttrans *ta, nx_tensor *x,
                             const nx_tensor *ehs, int64_t F)
{
    nx_tensor y = {0};
    NX_TRY(nx_new(be, x->dtype, &y, 4, x->ne));
    ngpt_status s = nx_transformer2d_forward(be, a, &y, x, ehs);
    if (s == NGPT_OK) s = ttrans_forward(be, ta, x, &y, F);
    nx_tensor_free(&y);
    return s;
}

int64_t nx_unet3d_time_channels(const nx_unet3d *u) { return u->c.block_out[0]; }

ngpt_status nx_unet3d_forward_t(nx_unet3d *u, nx_backend *be, nx_tensor *out, const nx_tensor *sample,
                                const nx_tensor *tin, const nx_tensor *ehs)
{
    const u3_config *c = &u->c;
    if (sample->rank != 5 || sample->ne[1] != c->in_ch || out->rank != 5 || out->ne[0] != sample->ne[0] ||
        out->ne[1] != c->out_ch || out->ne[2] != sample->ne[2] || out->ne[3] != sample->ne[3] ||
        out->ne[4] != sample->ne[4])
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "unet3d: sample must be [B, %d, F, h, w] and out [B, %d, F, h, w]",
                      c->in_ch, c->out_ch);
    int64_t B = sample->ne[0], F = sample->ne[2], H = sample->ne[3], W = sample->ne[4], N = B * F;
    int64_t C0 = c->block_out[0], T = c->time_dim;
    if (B < 1 || F < 1 || H < 1 || W < 1)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "unet3d: sample has an empty dimension");
    if (!ehs) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "unet3d: encoder_hidden_states missing");
    if (ehs->rank != 3 || ehs->ne[0] != B || ehs->ne[1] < 1 || ehs->ne[2] != c->cross_dim)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "unet3d: encoder_hidden_states must be [%lld, S, %d]", (long long)B,
                      c->cross_dim);
    ngpt_dtype dt = sample->dtype;  /* the compute dtype (sample, out and ehs share it) */
    if (out->dtype != dt || ehs->dtype != dt)
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "unet3d: sample, out and encoder_hidden_states must share one dtype "
                      "(sample is %s)", nx_dtype_name(dt));
    int64_t S = ehs->ne[1];
    static const int swap12[5] = {0, 2, 1, 3, 4};  /* [B,C,F,h,w] <-> [B,F,C,h,w] */

    if (!tin || tin->rank != 2 || tin->ne[0] != B || tin->ne[1] != C0 || tin->dtype != dt)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "unet3d: the timestep input must be [%lld, %lld] %s", (long long)B,
                      (long long)C0, nx_dtype_name(dt));

    ngpt_status s = NGPT_OK;
    nx_tensor e1 = {0}, e2 = {0}, temb = {0}, ehs_f = {0}, x = {0}, a = {0};
    nx_tensor skips[SKIP_CAP];
    int ns = 0;
    memset(skips, 0, sizeof skips);

    /* zeros [F] in the compute dtype: made on the first forward with F frames and kept */
    if (!u->zeros.data || u->zeros.ne[0] != F || u->zeros.dtype != dt || u->zeros.be != be) {
        nx_tensor_free(&u->zeros);
        float *z = nx_calloc((size_t)F, sizeof *z);
        if (!z) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "unet3d: out of memory");
        s = nx_upload_f32_as(&u->zeros, be, dt, 1, SHAPE(F), z);
        nx_free(z);
        if (s != NGPT_OK) return s;
    }
    const nx_tensor *zf = &u->zeros;

    /* ---- emb [B, T]; temb = SiLU(emb) repeated per frame [B*F, T]; ehs repeated [B*F, S, D] ---- */
    TRYG(nx_new(be, dt, &e1, 2, SHAPE(B, T)));
    TRYG(nx_op_linear(be, &e1, tin, &u->time1_w, &u->time1_b));
    TRYG(nx_op_unary(be, &e1, &e1, NX_UNARY_SILU, 0));
    TRYG(nx_new(be, dt, &e2, 2, SHAPE(B, T)));
    TRYG(nx_op_linear(be, &e2, &e1, &u->time2_w, &u->time2_b));
    TRYG(nx_op_unary(be, &e2, &e2, NX_UNARY_SILU, 0));
    {
        nx_tensor ev, zv, tv, hv, zv4, fv;
        TRYG(nx_new(be, dt, &temb, 2, SHAPE(N, T)));
        TRYG(nx_reshape(&ev, &e2, 3, SHAPE(B, 1, T)));
        TRYG(nx_reshape(&zv, zf, 3, SHAPE(1, F, 1)));
        TRYG(nx_reshape(&tv, &temb, 3, SHAPE(B, F, T)));
        TRYG(nx_op_binary(be, &tv, &ev, &zv, NX_BINARY_ADD));
        TRYG(nx_new(be, dt, &ehs_f, 3, SHAPE(N, S, c->cross_dim)));
        TRYG(nx_reshape(&hv, ehs, 4, SHAPE(B, 1, S, c->cross_dim)));
        TRYG(nx_reshape(&zv4, zf, 4, SHAPE(1, F, 1, 1)));
        TRYG(nx_reshape(&fv, &ehs_f, 4, SHAPE(B, F, S, c->cross_dim)));
        TRYG(nx_op_binary(be, &fv, &hv, &zv4, NX_BINARY_ADD));
    }
    nx_tensor_free(&e1), nx_tensor_free(&e2);

    /* ---- frames into the batch (channels last: [B, F, h, w, C]); conv_in; transformer_in; the skip stack ---- */
    const bool cl = u->cl;
    {
        nx_tensor av;
        static const int to_cl[5] = {0, 2, 3, 4, 1}; /* [B,C,F,h,w] -> [B,F,h,w,C] */
        TRYG(nx_new(be, dt, &a, 5, cl ? SHAPE(B, F, H, W, c->in_ch) : SHAPE(B, F, c->in_ch, H, W)));
        TRYG(nx_op_permute(be, &a, sample, cl ? to_cl : swap12));
        TRYG(nx_reshape(&av, &a, 4, cl ? SHAPE(N, H, W, c->in_ch) : SHAPE(N, c->in_ch, H, W)));
        TRYG(nx_conv2d_new(be, &u->conv_in, &x, &av));
        nx_tensor_free(&a);
    }
    TRYG(nx_new(be, dt, &skips[ns], 4, x.ne));
    TRYG(ttrans_forward(be, &u->tin, &skips[ns], &x, F));
    ns++;
    nx_tensor_free(&x);

    /* ---- down blocks ---- */
    for (int i = 0; i < c->n_blocks; i++) {
        const u3_block *d = &u->down[i];
        for (int j = 0; j < d->n_layers; j++) {
            const nx_tensor *h = &skips[ns - 1];
            const nx_img hd = nx_img_of(h, cl);
            TRYG(nx_img_new(be, dt, &x, cl, N, d->resnets[j].out_ch, hd.h, hd.w));
            TRYG(nx_resnet2d_forward(be, &d->resnets[j], &x, h, &temb));
            TRYG(step_tconv(be, &d->tconvs[j], &x, F));
            if (d->has_attn) TRYG(step_attn(be, &d->attns[j], &d->tattns[j], &x, &ehs_f, F));
            skips[ns++] = x;
            memset(&x, 0, sizeof x);
        }
        if (d->has_resample) {
            TRYG(nx_conv2d_new(be, &d->resample, &skips[ns], &skips[ns - 1]));
            ns++;
        }
    }

    /* ---- mid: resnet, temp_conv, attention, temp_attention, resnet, temp_conv ---- */
    TRYG(nx_new(be, dt, &x, 4, skips[ns - 1].ne));
    TRYG(nx_resnet2d_forward(be, &u->mid_res[0], &x, &skips[ns - 1], &temb));
    TRYG(step_tconv(be, &u->mid_tconv[0], &x, F));
    TRYG(step_attn(be, &u->mid_attn, &u->mid_tattn, &x, &ehs_f, F));
    TRYG(step_resnet(be, &u->mid_res[1], &x, &temb));
    TRYG(step_tconv(be, &u->mid_tconv[1], &x, F));

    /* ---- up blocks: concat the skip, resnet, temp_conv [, attention, temp_attention]; upsample ---- */
    for (int i = 0; i < c->n_blocks; i++) {
        const u3_block *p = &u->up[i];
        for (int j = 0; j < p->n_layers; j++) {
            nx_tensor *sk = &skips[--ns];
            const nx_img xd = nx_img_of(&x, cl), kd = nx_img_of(sk, cl);
            TRYG(nx_img_new(be, dt, &a, cl, N, xd.c + kd.c, xd.h, xd.w));
            TRYG(nx_op_concat(be, &a, &x, sk, cl ? 3 : 1));
            nx_tensor_free(&x);
            nx_tensor_free(sk);
            x = a;
            memset(&a, 0, sizeof a);
            TRYG(step_resnet(be, &p->resnets[j], &x, &temb));
            TRYG(step_tconv(be, &p->tconvs[j], &x, F));
            if (p->has_attn) TRYG(step_attn(be, &p->attns[j], &p->tattns[j], &x, &ehs_f, F));
        }
        if (p->has_resample) {
            /* nearest 2x, or to the next skip's size when h, w are not multiples of 2^upsamplers */
            const nx_img nd = nx_img_of(&skips[ns - 1], cl), xd = nx_img_of(&x, cl);
            TRYG(nx_img_new(be, dt, &a, cl, N, xd.c, nd.h, nd.w));
            TRYG(nx_op_resize(be, &a, &x, NX_RESIZE_NEAREST, false, cl));
            nx_tensor_free(&x);
            TRYG(nx_conv2d_new(be, &p->resample, &x, &a));
            nx_tensor_free(&a);
        }
    }

    /* ---- conv_norm_out + SiLU, conv_out, frames back out of the batch ---- */
    {
        nx_tensor ov;
        const nx_img d = nx_img_of(&x, cl);
        TRYG(nx_img_new(be, dt, &a, cl, d.n, u->conv_out.out_ch, d.h, d.w));
        TRYG(nx_conv2d_norm_forward(be, &u->conv_out, &a, &x, &u->norm_out_w, &u->norm_out_b, c->groups, c->eps));
        nx_tensor_free(&x);
        x = a;
        memset(&a, 0, sizeof a);
        static const int from_cl[5] = {0, 4, 1, 2, 3}; /* [B,F,h,w,C] -> [B,C,F,h,w] */
        TRYG(nx_reshape(&ov, &x, 5, cl ? SHAPE(B, F, H, W, c->out_ch) : SHAPE(B, F, c->out_ch, H, W)));
        TRYG(nx_op_permute(be, out, &ov, cl ? from_cl : swap12));
    }
done:
    nx_tensor_free(&e1), nx_tensor_free(&e2);
    nx_tensor_free(&temb), nx_tensor_free(&ehs_f), nx_tensor_free(&x), nx_tensor_free(&a);
    for (int i = 0; i < SKIP_CAP; i++) nx_tensor_free(&skips[i]);
    return s;
}
