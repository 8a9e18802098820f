/* unet.c — diffusers 0.17 UNet2DConditionModel (unet_2d_condition.py, unet_2d_blocks.py) through
 * the op layer: Stable Diffusion 1.5 (cross-attention on encoder_hidden_states) and AudioLDM
 * (class_embed_type "simple_projection" concatenated to the time embedding, no cross-attention
 * input). Only what those configs use is implemented; any other config value is
 * NGPT_ERR_UNSUPPORTED naming the key and value.
 *
 *   sample ─ conv_in ─ down blocks (resnet [+ transformer]) x layers [+ downsample] ─ mid block
 *          ─ up blocks (concat skip, resnet [+ transformer]) x (layers + 1) [+ upsample]
 *          ─ GroupNorm+SiLU ─ conv_out
 *   timestep ─ sinusoid ─ linear_1 ─ SiLU ─ linear_2 (─ [ , class_embedding(class_labels)]) = emb,
 *   and every resnet adds time_emb_proj(SiLU(emb)).
 *
 * The building blocks (ResnetBlock2D, Transformer2DModel ...) are in unet_blocks.c. A
 * UNet3DConditionModel config (Zeroscope) loads through the same nx_unet interface: nx_unet then
 * holds an nx_unet3d (unet3d.c) and every nx_unet_* call goes to it. */
#include "unet.h"
#include "unet3d.h"
#include "unet_blocks.h"

#include "../core/alloc.h"
#include "../core/error.h"
#include "../core/json.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_BLOCKS NX_UNET_MAX_BLOCKS
#define MAX_LAYERS 8  /* resnets per block (up blocks have layers_per_block + 1) */

/* ---------------------------------------------------------------------------------------------
 * config */

typedef struct unet_config {
    int   in_ch, out_ch;
    int   n_blocks;                 /* len(block_out_channels) */
    int   block_out[MAX_BLOCKS];    /* block_out_channels */
    int   layers[MAX_BLOCKS];       /* layers_per_block, per down block */
    int   heads[MAX_BLOCKS];        /* attention_head_dim per down block = the NUMBER of heads (2-D UNet) */
    int   cross_dim[MAX_BLOCKS];    /* cross_attention_dim per down block */
    bool  down_attn[MAX_BLOCKS];    /* CrossAttnDownBlock2D (else DownBlock2D) */
    bool  up_attn[MAX_BLOCKS];      /* CrossAttnUpBlock2D (else UpBlock2D) */
    int   groups;                   /* norm_num_groups */
    float eps;                      /* norm_eps */
    bool  flip_sin_to_cos;
    float freq_shift;
    int   time_dim;                 /* time_embed_dim: time_embedding_dim or 4 * block_out[0] */
    int   temb_ch;                  /* what the blocks get: 2 * time_dim with class_embeddings_concat */
    int   class_in;                 /* projection_class_embeddings_input_dim (simple_projection), else 0 */
    bool  class_concat;             /* class_embeddings_concat */
    int   conv_in_k, conv_out_k;
    int   down_pad;                 /* downsample_padding */
    float mid_scale;                /* mid_block_scale_factor */
    bool  linear_proj;              /* use_linear_projection */
    bool  center_input;             /* center_input_sample */
    bool  cross_input;              /* the model takes encoder_hidden_states (false with a class embedding) */
} unet_config;

typedef struct unet_down {
    int n_layers;
    bool has_attn, has_down;
    nx_resnet2d      resnets[MAX_LAYERS];
    nx_transformer2d attns[MAX_LAYERS];
    nx_conv2d        down;          /* downsamplers.0.conv (C, C, 3, 3), stride 2 */
} unet_down;

typedef struct unet_up {
    int n_layers;
    bool has_attn, has_up;
    nx_resnet2d      resnets[MAX_LAYERS];
    nx_transformer2d attns[MAX_LAYERS];
    nx_conv2d        up;            /* upsamplers.0.conv (C, C, 3, 3) after nearest x2 */
} unet_up;

struct nx_unet {
    nx_unet3d  *u3;                 /* UNet3DConditionModel: set, and everything below but be/w unused */
    unet_config c;
    bool        cl;                 /* activations channels last inside the forward */
    nx_backend *be;
    nx_weights *w;
    nx_tensor  time1_w, time1_b;    /* time_embedding.linear_1 (T, C0), (T) */
    nx_tensor  time2_w, time2_b;    /* time_embedding.linear_2 (T, T), (T) */
    nx_tensor  class_w, class_b;    /* class_embedding (T, class_in), (T); simple_projection only */
    nx_conv2d  conv_in;             /* (C0, in_ch, k, k) */
    unet_down  down[MAX_BLOCKS];
    nx_resnet2d      mid_res[2];    /* mid_block.resnets.{0,1} (Cn, Cn) */
    nx_transformer2d mid_attn;      /* mid_block.attentions.0 */
    unet_up    up[MAX_BLOCKS];
    nx_tensor  norm_out_w, norm_out_b;  /* conv_norm_out (C0) */
    nx_conv2d  conv_out;            /* (out_ch, C0, k, k) */
};

static ngpt_status unsupported(const char *file, const char *key, const json_t *v)
{
    return nx_unet_cfg_unsupported(file, key, v, NULL);
}

/* An int or a list of n ints (per down block). */
static ngpt_status int_or_list(const json_t *cfg, const char *file, const char *key, int n, int def, int *out)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        for (int i = 0; i < n; i++) out[i] = def;
        return NGPT_OK;
    }
    if (!json_is_integer(v) && !(json_is_array(v) && (int)json_array_size(v) == n))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' must be an integer or a list of %d integers (one per down block)",
                      file, key, n);
    for (int i = 0; i < n; i++) {
        const json_t *e = json_is_integer(v) ? v : json_array_get(v, (size_t)i);
        /* range checked before the value is narrowed to int (4294967297 would become 1) */
        if (!json_is_integer(e) || json_integer_value(e) <= 0 || json_integer_value(e) > 65536)
            return unsupported(file, key, v);
        out[i] = (int)json_integer_value(e);
    }
    return NGPT_OK;
}

static ngpt_status block_types(const json_t *cfg, const char *file, const char *key, int n, const char *attn_name,
                               const char *plain_name, bool *attn)
{
    return nx_unet_cfg_block_types(cfg, file, key, n, attn_name, plain_name, attn, NULL);
}

static ngpt_status parse_config(unet_config *c, const json_t *j, const char *file)
{
    memset(c, 0, sizeof *c);
    const char *cls;
    NX_TRY(nx_json_str_opt(j, "_class_name", file, "UNet2DConditionModel", &cls));
    if (strcmp(cls, "UNet2DConditionModel"))
        return unsupported(file, "_class_name", json_object_get(j, "_class_name"));

    /* what this port does not implement: must be absent, null or the default */
    static const nx_unet_fixed_key fixed[] = {
        {"act_fn", "\"silu\""},
        {"addition_embed_type", NULL},
        {"encoder_hid_dim", NULL},
        {"encoder_hid_dim_type", NULL},
        {"time_cond_proj_dim", NULL},
        {"timestep_post_act", NULL},
        {"time_embedding_act_fn", NULL},
        {"num_class_embeds", NULL},
        {"cross_attention_norm", NULL},
        {"dual_cross_attention", "false"},
        {"only_cross_attention", "false"},
        {"resnet_skip_time_act", "false"},
        {"resnet_time_scale_shift", "\"default\""},
        {"time_embedding_type", "\"positional\""},
        {"mid_block_type", "\"UNetMidBlock2DCrossAttn\""},
        /* keys of later diffusers versions, accepted at their 0.17 behaviour only */
        {"num_attention_heads", NULL},
        {"transformer_layers_per_block", "1"},
        {"attention_type", "\"default\""},
        {"addition_time_embed_dim", NULL},
    };
    NX_TRY(nx_unet_cfg_fixed(j, file, fixed, sizeof fixed / sizeof fixed[0], NULL));

    int64_t v;
    int64_t v2;
    NX_TRY(nx_json_int_opt(j, "in_channels", file, 4, &v));
    NX_TRY(nx_json_int_opt(j, "out_channels", file, 4, &v2));
    if (v <= 0 || v > 65536 || v2 <= 0 || v2 > 65536)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: in_channels %lld / out_channels %lld must be in 1..65536", file,
                      (long long)v, (long long)v2);
    c->in_ch = (int)v;
    c->out_ch = (int)v2;

    NX_TRY(nx_unet_cfg_block_out(j, file, c->block_out, &c->n_blocks, NULL));
    NX_TRY(block_types(j, file, "down_block_types", c->n_blocks, "CrossAttnDownBlock2D", "DownBlock2D", c->down_attn));
    NX_TRY(block_types(j, file, "up_block_types", c->n_blocks, "CrossAttnUpBlock2D", "UpBlock2D", c->up_attn));
    NX_TRY(int_or_list(j, file, "layers_per_block", c->n_blocks, 2, c->layers));
    for (int i = 0; i < c->n_blocks; i++)
        if (c->layers[i] + 1 > MAX_LAYERS) return unsupported(file, "layers_per_block", json_object_get(j, "layers_per_block"));
    NX_TRY(int_or_list(j, file, "attention_head_dim", c->n_blocks, 8, c->heads));
    NX_TRY(int_or_list(j, file, "cross_attention_dim", c->n_blocks, 1280, c->cross_dim));

    const json_t *ng = json_object_get(j, "norm_num_groups");
    if (ng && json_is_null(ng)) return unsupported(file, "norm_num_groups", ng);  /* no conv_norm_out */
    NX_TRY(nx_json_int_opt(j, "norm_num_groups", file, 32, &v));
    if (v <= 0 || v > 65536) return unsupported(file, "norm_num_groups", ng);
    c->groups = (int)v;
    for (int i = 0; i < c->n_blocks; i++)
        if (c->block_out[i] % c->groups)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: norm_num_groups %d does not divide block_out_channels[%d] = %d", file,
                          c->groups, i, c->block_out[i]);
    double d;
    NX_TRY(nx_json_num_opt(j, "norm_eps", file, 1e-5, &d)); c->eps = (float)d;
    if (!(d > 0 && d < 1)) return unsupported(file, "norm_eps", json_object_get(j, "norm_eps"));
    NX_TRY(nx_json_bool_opt(j, "flip_sin_to_cos", file, true, &c->flip_sin_to_cos));
    NX_TRY(nx_json_num_opt(j, "freq_shift", file, 0, &d)); c->freq_shift = (float)d;
    if (!(d > -65536 && d < 65536)) return unsupported(file, "freq_shift", json_object_get(j, "freq_shift"));
    NX_TRY(nx_json_int_opt(j, "time_embedding_dim", file, 4 * c->block_out[0], &v));
    if (v <= 0 || v > (1 << 20)) return unsupported(file, "time_embedding_dim", json_object_get(j, "time_embedding_dim"));
    c->time_dim = (int)v;
    if (c->block_out[0] < 2) return unsupported(file, "block_out_channels", json_object_get(j, "block_out_channels"));

    const char *cet;
    NX_TRY(nx_json_str_opt(j, "class_embed_type", file, NULL, &cet));
    NX_TRY(nx_json_bool_opt(j, "class_embeddings_concat", file, false, &c->class_concat));
    if (cet) {
        if (strcmp(cet, "simple_projection")) return unsupported(file, "class_embed_type", json_object_get(j, "class_embed_type"));
        NX_TRY(nx_json_int(j, "projection_class_embeddings_input_dim", file, &v));
        if (v <= 0 || v > (1 << 20)) return unsupported(file, "projection_class_embeddings_input_dim",
                                       json_object_get(j, "projection_class_embeddings_input_dim"));
        c->class_in = (int)v;
    }
    /* diffusers doubles the blocks' time width with class_embeddings_concat even without a class
     * embedding (which then fails at forward): refuse that combination */
    if (c->class_concat && !c->class_in)
        return unsupported(file, "class_embeddings_concat", json_object_get(j, "class_embeddings_concat"));
    c->temb_ch = c->class_concat ? 2 * c->time_dim : c->time_dim;

    NX_TRY(nx_json_int_opt(j, "conv_in_kernel", file, 3, &v)); c->conv_in_k = (int)v;
    if (v < 1 || v % 2 == 0 || v > 15) return unsupported(file, "conv_in_kernel", json_object_get(j, "conv_in_kernel"));
    NX_TRY(nx_json_int_opt(j, "conv_out_kernel", file, 3, &v)); c->conv_out_k = (int)v;
    if (v < 1 || v % 2 == 0 || v > 15) return unsupported(file, "conv_out_kernel", json_object_get(j, "conv_out_kernel"));
    NX_TRY(nx_json_int_opt(j, "downsample_padding", file, 1, &v)); c->down_pad = (int)v;
    if (v != 1) return unsupported(file, "downsample_padding", json_object_get(j, "downsample_padding"));
    NX_TRY(nx_json_num_opt(j, "mid_block_scale_factor", file, 1.0, &d)); c->mid_scale = (float)d;
    if (!(d > 0 && d < 1e6)) return unsupported(file, "mid_block_scale_factor", json_object_get(j, "mid_block_scale_factor"));
    NX_TRY(nx_json_bool_opt(j, "use_linear_projection", file, false, &c->linear_proj));
    NX_TRY(nx_json_bool_opt(j, "center_input_sample", file, false, &c->center_input));
    /* upcast_attention (fp16 only: scores in float32, which the CPU backend always does),
     * resnet_out_scale_factor (only used by ResnetDownsampleBlock2D & co.), sample_size,
     * mid_block_only_cross_attention (only UNetMidBlock2DSimpleCrossAttn) and
     * addition_embed_type_num_heads do not change these blocks. */

    /* The conditioning: SD attends to encoder_hidden_states; AudioLDM conditions through the class
     * embedding and its pipeline passes encoder_hidden_states=None, so the attn2 layers attend to
     * the feature map itself — which needs cross_attention_dim == the block's width. */
    c->cross_input = c->class_in == 0;
    for (int i = 0; i < c->n_blocks; i++) {
        int ch = c->block_out[i];
        if (c->cross_input && c->cross_dim[i] != c->cross_dim[0])
            return unsupported(file, "cross_attention_dim", json_object_get(j, "cross_attention_dim"));
        if (c->heads[i] > ch)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: attention_head_dim %d (heads) exceeds block width %d", file, c->heads[i], ch);
        bool used = c->down_attn[i] || c->up_attn[c->n_blocks - 1 - i] || i == c->n_blocks - 1;
        if (!c->cross_input && used && c->cross_dim[i] != ch)
            return nx_err(NGPT_ERR_UNSUPPORTED, "%s: cross_attention_dim %d of block %d differs from its width %d, "
                          "but a UNet with a class embedding runs without encoder_hidden_states", file,
                          c->cross_dim[i], i, ch);
    }
    return NGPT_OK;
}

/* UNet3DConditionModel -> u->u3; anything else through parse_config. */
static ngpt_status parse_any(nx_unet *u, const json_t *j, const char *file)
{
    const char *cls;
    NX_TRY(nx_json_str_opt(j, "_class_name", file, "UNet2DConditionModel", &cls));
    if (!strcmp(cls, "UNet3DConditionModel")) return nx_unet3d_create(&u->u3, j, file);
    return parse_config(&u->c, j, file);
}

/* ---------------------------------------------------------------------------------------------
 * load */

static ngpt_status load_modules(nx_unet *u, nx_wload *wl)
{
    if (u->u3) {
        NX_TRY(nx_unet3d_load(u->u3, wl));
        return wl->record ? NGPT_OK : nx_weights_check_unused(u->w);
    }
    const unet_config *c = &u->c;
    int n = c->n_blocks, C0 = c->block_out[0], T = c->time_dim, Tb = c->temb_ch;
    char p[128];
    NX_TRY(nx_wl_get(wl, &u->time1_w, 2, (int64_t[]){T, C0}, "time_embedding.linear_1.weight"));
    NX_TRY(nx_wl_get(wl, &u->time1_b, 1, (int64_t[]){T}, "time_embedding.linear_1.bias"));
    NX_TRY(nx_wl_get(wl, &u->time2_w, 2, (int64_t[]){T, T}, "time_embedding.linear_2.weight"));
    NX_TRY(nx_wl_get(wl, &u->time2_b, 1, (int64_t[]){T}, "time_embedding.linear_2.bias"));
    if (c->class_in) {
        NX_TRY(nx_wl_get(wl, &u->class_w, 2, (int64_t[]){T, c->class_in}, "class_embedding.weight"));
        NX_TRY(nx_wl_get(wl, &u->class_b, 1, (int64_t[]){T}, "class_embedding.bias"));
    }
    NX_TRY(nx_conv2d_load(&u->conv_in, wl, "conv_in", c->in_ch, C0, c->conv_in_k, 1, (c->conv_in_k - 1) / 2));

    /* down: block i maps block_out[i-1] -> block_out[i] */
    for (int i = 0; i < n; i++) {
        unet_down *b = &u->down[i];
        int in = i == 0 ? C0 : c->block_out[i - 1], out = c->block_out[i];
        b->has_attn = c->down_attn[i];
        b->has_down = i != n - 1;
        for (int j = 0; j < c->layers[i]; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            NX_TRY(nx_resnet2d_load(&b->resnets[j], wl, p, j == 0 ? in : out, out, Tb, c->groups, c->eps, 1.0f));
            b->n_layers = j + 1;
            if (b->has_attn) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
                NX_TRY(nx_transformer2d_load(&b->attns[j], wl, p, out, c->heads[i], out / c->heads[i], 1,
                                             c->cross_dim[i], c->groups, c->linear_proj));
            }
        }
        if (b->has_down) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
            NX_TRY(nx_conv2d_load(&b->down, wl, p, out, out, 3, 2, c->down_pad));
        }
    }

    /* mid */
    int Cn = c->block_out[n - 1];
    NX_TRY(nx_resnet2d_load(&u->mid_res[0], wl, "mid_block.resnets.0", Cn, Cn, Tb, c->groups, c->eps, c->mid_scale));
    NX_TRY(nx_transformer2d_load(&u->mid_attn, wl, "mid_block.attentions.0", Cn, c->heads[n - 1], Cn / c->heads[n - 1],
                                 1, c->cross_dim[n - 1], c->groups, c->linear_proj));
    NX_TRY(nx_resnet2d_load(&u->mid_res[1], wl, "mid_block.resnets.1", Cn, Cn, Tb, c->groups, c->eps, c->mid_scale));

    /* up: reversed widths; resnet j takes (previous output | its skip) */
    for (int i = 0; i < n; i++) {
        unet_up *b = &u->up[i];
        int r = n - 1 - i;  /* the mirrored down block */
        int out = c->block_out[r];
        int prev = i == 0 ? c->block_out[n - 1] : c->block_out[r + 1];
        int in = c->block_out[r > 0 ? r - 1 : 0];
        int nl = c->layers[r] + 1;
        b->has_attn = c->up_attn[i];
        b->has_up = i != n - 1;
        for (int j = 0; j < nl; j++) {
            int skip = j == nl - 1 ? in : out, rin = j == 0 ? prev : out;
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            NX_TRY(nx_resnet2d_load(&b->resnets[j], wl, p, rin + skip, out, Tb, c->groups, c->eps, 1.0f));
            b->n_layers = j + 1;
            if (b->has_attn) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
                NX_TRY(nx_transformer2d_load(&b->attns[j], wl, p, out, c->heads[r], out / c->heads[r], 1,
                                             c->cross_dim[r], c->groups, c->linear_proj));
            }
        }
        if (b->has_up) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            NX_TRY(nx_conv2d_load(&b->up, wl, p, out, out, 3, 1, 1));
        }
    }

    NX_TRY(nx_wl_get(wl, &u->norm_out_w, 1, (int64_t[]){C0}, "conv_norm_out.weight"));
    NX_TRY(nx_wl_get(wl, &u->norm_out_b, 1, (int64_t[]){C0}, "conv_norm_out.bias"));
    NX_TRY(nx_conv2d_load(&u->conv_out, wl, "conv_out", C0, c->out_ch, c->conv_out_k, 1, (c->conv_out_k - 1) / 2));
    return wl->record ? NGPT_OK : nx_weights_check_unused(u->w);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = nx_malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

ngpt_status nx_unet_load(nx_unet **out, nx_backend *be, const char *unet_dir, ngpt_dtype dt, bool channels_last)
{
    *out = NULL;
    nx_unet *u = nx_calloc(1, sizeof *u);
    if (!u) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", unet_dir);
    u->be = be;
    json_t *j = NULL;
    char *path = join(unet_dir, "config.json");
    ngpt_status s = path ? nx_json_load_file(&j, path) : nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", unet_dir);
    if (s == NGPT_OK) s = parse_any(u, j, path);
    json_decref(j);
    nx_free(path);
    path = NULL;
    static const char *const files[] = {"diffusion_pytorch_model.safetensors",
                                        "diffusion_pytorch_model.safetensors.index.json",
                                        "diffusion_pytorch_model.bin"};
    for (size_t i = 0; s == NGPT_OK && i < sizeof files / sizeof files[0]; i++) {
        nx_free(path);
        path = join(unet_dir, files[i]);
        if (!path) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", unet_dir);
        else if (access(path, R_OK) == 0) break;
        else if (i + 1 == sizeof files / sizeof files[0])
            s = nx_err(NGPT_ERR_NOT_FOUND, "%s: no diffusion_pytorch_model.safetensors (or .bin)", unet_dir);
    }
    if (s == NGPT_OK) s = nx_weights_open(&u->w, path);
    nx_free(path);
    if (s == NGPT_OK) {
        u->cl = channels_last;
        nx_wload wl = {u->w, be, NULL, NULL, dt, u->cl};
        s = load_modules(u, &wl);
    }
    if (s != NGPT_OK) {
        nx_unet_free(u);
        return s;
    }
    *out = u;
    return NGPT_OK;
}

ngpt_status nx_unet_list_tensors(const char *config_path, nx_unet_tensor_fn fn, void *user)
{
    nx_unet *u = nx_calloc(1, sizeof *u);
    if (!u) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", config_path);
    json_t *j = NULL;
    ngpt_status s = nx_json_load_file(&j, config_path);
    if (s == NGPT_OK) s = parse_any(u, j, config_path);
    json_decref(j);
    if (s == NGPT_OK) {
        nx_wload wl = {NULL, NULL, fn, user, NGPT_DTYPE_F32, false};
        s = load_modules(u, &wl);
    }
    nx_unet_free(u);  /* only views and block arrays: nothing was fetched */
    return s;
}

void nx_unet_free(nx_unet *u)
{
    if (!u) return;
    nx_unet3d_free(u->u3);
    nx_tensor_free(&u->time1_w);
    nx_tensor_free(&u->time1_b);
    nx_tensor_free(&u->time2_w);
    nx_tensor_free(&u->time2_b);
    nx_tensor_free(&u->class_w);
    nx_tensor_free(&u->class_b);
    nx_conv2d_free(&u->conv_in);
    for (int i = 0; i < MAX_BLOCKS; i++) {
        unet_down *d = &u->down[i];
        for (int j = 0; j < MAX_LAYERS; j++) {
            nx_resnet2d_free(&d->resnets[j]);
            nx_transformer2d_free(&d->attns[j]);
        }
        nx_conv2d_free(&d->down);
        unet_up *p = &u->up[i];
        for (int j = 0; j < MAX_LAYERS; j++) {
            nx_resnet2d_free(&p->resnets[j]);
            nx_transformer2d_free(&p->attns[j]);
        }
        nx_conv2d_free(&p->up);
    }
    nx_resnet2d_free(&u->mid_res[0]);
    nx_resnet2d_free(&u->mid_res[1]);
    nx_transformer2d_free(&u->mid_attn);
    nx_tensor_free(&u->norm_out_w);
    nx_tensor_free(&u->norm_out_b);
    nx_conv2d_free(&u->conv_out);
    nx_weights_close(u->w);
    nx_free(u);
}

bool nx_unet_is_3d(const nx_unet *u) { return u->u3 != NULL; }
int nx_unet_in_channels(const nx_unet *u) { return u->u3 ? nx_unet3d_in_channels(u->u3) : u->c.in_ch; }
int nx_unet_out_channels(const nx_unet *u) { return u->u3 ? nx_unet3d_out_channels(u->u3) : u->c.out_ch; }
int nx_unet_cross_attention_dim(const nx_unet *u)
{
    if (u->u3) return nx_unet3d_cross_attention_dim(u->u3);
    return u->c.cross_input ? u->c.cross_dim[0] : 0;
}
int nx_unet_class_embed_dim(const nx_unet *u) { return u->u3 ? 0 : u->c.class_in; }

/* ---------------------------------------------------------------------------------------------
 * forward */

#define SKIP_CAP (1 + MAX_BLOCKS * (MAX_LAYERS + 1))
#define TRYG(expr) do { if ((s = (expr)) != NGPT_OK) goto done; } while (0)

/* Move a tensor (ownership included) out of *src, leaving it empty. */
static nx_tensor take(nx_tensor *src)
{
    nx_tensor t = *src;
    memset(src, 0, sizeof *src);
    return t;
}

int64_t nx_unet_time_channels(const nx_unet *u)
{
    return u->u3 ? nx_unet3d_time_channels(u->u3) : u->c.block_out[0];
}

void nx_unet_time_params(const nx_unet *u, nx_timestep_params *p)
{
    if (u->u3) *p = (nx_timestep_params){(int)nx_unet3d_time_channels(u->u3), true, 0.0f, 10000.0f};
    else *p = (nx_timestep_params){u->c.block_out[0], u->c.flip_sin_to_cos, u->c.freq_shift, 10000.0f};
}

void nx_unet_time_input(const nx_unet *u, const float *timesteps, int64_t B, float *host)
{
    nx_timestep_params p;
    nx_unet_time_params(u, &p);
    nx_timestep_embedding(host, timesteps, (int)B, p.dim, p.flip_sin_to_cos, p.shift, p.max_period);
}

ngpt_status nx_unet_forward(nx_unet *u, nx_tensor *out, const nx_tensor *sample, const float *timesteps,
                            const nx_tensor *ehs, const nx_tensor *class_labels)
{
    if (!sample || sample->rank < 1 || sample->ne[0] < 1)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "unet: sample must be [B, C, ...] with B >= 1");
    int64_t B = sample->ne[0], C0 = nx_unet_time_channels(u);
    float *host = nx_malloc((size_t)(B * C0) * sizeof *host);
    if (!host) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "unet: out of memory");
    nx_unet_time_input(u, timesteps, B, host);
    nx_tensor tin = {0};
    ngpt_status s = nx_upload_f32_as(&tin, u->be, sample->dtype, 2, (int64_t[]){B, C0}, host);
    nx_free(host);
    if (s == NGPT_OK) s = nx_unet_forward_t(u, out, sample, &tin, ehs, class_labels);
    nx_tensor_free(&tin);
    return s;
}

ngpt_status nx_unet_forward_t(nx_unet *u, nx_tensor *out, const nx_tensor *sample, const nx_tensor *tin,
                              const nx_tensor *ehs, const nx_tensor *class_labels)
{
    if (u->u3) {
        if (class_labels) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "unet3d: class_labels given to a UNet without a class embedding");
        return nx_unet3d_forward_t(u->u3, u->be, out, sample, tin, ehs);
    }
    const unet_config *c = &u->c;
    nx_backend *be = u->be;
    ngpt_dtype dt = sample->dtype;  /* the compute dtype: the caller's sample, out and ehs share it */
    if (out->dtype != dt || (ehs && ehs->dtype != dt) || (class_labels && class_labels->dtype != dt))
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "unet: sample, out, encoder_hidden_states and class_labels must share "
                      "one dtype (sample is %s)", nx_dtype_name(dt));
    if (sample->rank != 4 || sample->ne[1] != c->in_ch || out->rank != 4 || out->ne[0] != sample->ne[0] ||
        out->ne[1] != c->out_ch || out->ne[2] != sample->ne[2] || out->ne[3] != sample->ne[3])
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "unet: sample must be [B, %d, h, w] and out [B, %d, h, w]", c->in_ch, c->out_ch);
    int64_t B = sample->ne[0], C0 = c->block_out[0], T = c->time_dim;
    if (c->cross_input != (ehs != NULL))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "unet: encoder_hidden_states %s", ehs ? "given to a UNet without "
                      "cross-attention input" : "missing");
    if (ehs && (ehs->rank != 3 || ehs->ne[0] != B || ehs->ne[2] != c->cross_dim[0]))
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "unet: encoder_hidden_states must be [%lld, S, %d]", (long long)B, c->cross_dim[0]);
    if ((c->class_in != 0) != (class_labels != NULL))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "unet: class_labels %s", class_labels ? "given to a UNet without a class "
                      "embedding" : "missing (class_embed_type simple_projection)");
    if (class_labels && (class_labels->rank != 2 || class_labels->ne[0] != B || class_labels->ne[1] != c->class_in))
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "unet: class_labels must be [%lld, %d]", (long long)B, c->class_in);

    if (!tin || tin->rank != 2 || tin->ne[0] != B || tin->ne[1] != C0 || tin->dtype != dt)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "unet: the timestep input must be [%lld, %lld] %s", (long long)B,
                      (long long)C0, nx_dtype_name(dt));

    ngpt_status s = NGPT_OK;
    nx_tensor e1 = {0}, e2 = {0}, ce = {0}, emb = {0}, temb = {0};
    nx_tensor x = {0}, a = {0}, b = {0}, cen = {0};
    nx_tensor skips[SKIP_CAP];
    int ns = 0;
    memset(skips, 0, sizeof skips);

    /* ---- time (and class) embedding: emb [B, Tb]; temb = SiLU(emb), the resnets' input ---- */
    TRYG(nx_new(be, dt, &e1, 2, (int64_t[]){B, T}));
    TRYG(nx_op_linear(be, &e1, tin, &u->time1_w, &u->time1_b));
    TRYG(nx_op_unary(be, &e1, &e1, NX_UNARY_SILU, 0));
    TRYG(nx_new(be, dt, &e2, 2, (int64_t[]){B, T}));
    TRYG(nx_op_linear(be, &e2, &e1, &u->time2_w, &u->time2_b));
    if (c->class_in) {
        TRYG(nx_new(be, dt, &ce, 2, (int64_t[]){B, T}));
        TRYG(nx_op_linear(be, &ce, class_labels, &u->class_w, &u->class_b));
        if (c->class_concat) {
            TRYG(nx_new(be, dt, &emb, 2, (int64_t[]){B, 2 * T}));
            TRYG(nx_op_concat(be, &emb, &e2, &ce, 1));
        } else {
            TRYG(nx_op_binary(be, &e2, &e2, &ce, NX_BINARY_ADD));
            emb = take(&e2);
        }
    } else {
        emb = take(&e2);
    }
    TRYG(nx_new(be, dt, &temb, 2, emb.ne));
    TRYG(nx_op_unary(be, &temb, &emb, NX_UNARY_SILU, 0));
    nx_tensor_free(&e1), nx_tensor_free(&e2), nx_tensor_free(&ce), nx_tensor_free(&emb);

    /* ---- conv_in; every down-block output is kept on the skip stack ---- */
    const bool cl = u->cl;
    const nx_img sd = nx_img_of(sample, false);
    const nx_tensor *in = sample;
    if (cl) { /* the latents channels last for the whole network; out is permuted back at the end */
        TRYG(nx_img_new(be, dt, &cen, true, sd.n, sd.c, sd.h, sd.w));
        TRYG(nx_img_to_nhwc(be, &cen, sample));
        in = &cen;
    }
    if (c->center_input) {
        if (!cl) TRYG(nx_new(be, dt, &cen, 4, sample->ne));
        TRYG(nx_op_scale(be, &cen, in, 2.0f, -1.0f));
        in = &cen;
    }
    TRYG(nx_conv2d_new(be, &u->conv_in, &skips[ns++], in));
    nx_tensor_free(&cen);

    /* ---- down blocks ---- */
    for (int i = 0; i < c->n_blocks; i++) {
        const unet_down *d = &u->down[i];
        for (int j = 0; j < d->n_layers; j++) {
            const nx_tensor *h = &skips[ns - 1];
            const nx_img hd = nx_img_of(h, cl);
            TRYG(nx_img_new(be, dt, &a, cl, B, d->resnets[j].out_ch, hd.h, hd.w));
            TRYG(nx_resnet2d_forward(be, &d->resnets[j], &a, h, &temb));
            if (d->has_attn) {
                TRYG(nx_new(be, dt, &b, 4, a.ne));
                TRYG(nx_transformer2d_forward(be, &d->attns[j], &b, &a, ehs));
                nx_tensor_free(&a);
                a = take(&b);
            }
            skips[ns++] = take(&a);
        }
        if (d->has_down) {
            TRYG(nx_conv2d_new(be, &d->down, &skips[ns], &skips[ns - 1]));
            ns++;
        }
    }

    /* ---- mid block: resnet, transformer, resnet ---- */
    {
        const nx_tensor *h = &skips[ns - 1];
        TRYG(nx_new(be, dt, &a, 4, h->ne));
        TRYG(nx_resnet2d_forward(be, &u->mid_res[0], &a, h, &temb));
        TRYG(nx_new(be, dt, &b, 4, h->ne));
        TRYG(nx_transformer2d_forward(be, &u->mid_attn, &b, &a, ehs));
        TRYG(nx_resnet2d_forward(be, &u->mid_res[1], &a, &b, &temb));
        nx_tensor_free(&b);
        x = take(&a);
    }

    /* ---- up blocks: concat the skip, resnet [+ transformer]; upsample to the next skip's size ---- */
    for (int i = 0; i < c->n_blocks; i++) {
        const unet_up *p = &u->up[i];
        for (int j = 0; j < p->n_layers; j++) {
            nx_tensor *sk = &skips[--ns];
            const nx_img xd = nx_img_of(&x, cl), kd = nx_img_of(sk, cl);
            TRYG(nx_img_new(be, dt, &a, cl, B, xd.c + kd.c, xd.h, xd.w));
            TRYG(nx_op_concat(be, &a, &x, sk, cl ? 3 : 1));
            nx_tensor_free(&x);
            nx_tensor_free(sk);
            TRYG(nx_img_new(be, dt, &x, cl, B, p->resnets[j].out_ch, xd.h, xd.w));
            TRYG(nx_resnet2d_forward(be, &p->resnets[j], &x, &a, &temb));
            nx_tensor_free(&a);
            if (p->has_attn) {
                TRYG(nx_new(be, dt, &a, 4, x.ne));
                TRYG(nx_transformer2d_forward(be, &p->attns[j], &a, &x, ehs));
                nx_tensor_free(&x);
                x = take(&a);
            }
        }
        if (p->has_up) {
            /* F.interpolate(scale_factor=2) when the sample is a multiple of 2^num_upsamplers,
             * else F.interpolate(size=the next skip's size) (same as 2x where that is 2x) */
            const nx_img nd = nx_img_of(&skips[ns - 1], cl), xd = nx_img_of(&x, cl);
            TRYG(nx_img_new(be, dt, &a, cl, B, xd.c, nd.h, nd.w));
            TRYG(nx_op_resize(be, &a, &x, NX_RESIZE_NEAREST, false, cl));
            nx_tensor_free(&x);
            TRYG(nx_conv2d_new(be, &p->up, &x, &a));
            nx_tensor_free(&a);
        }
    }

    /* ---- conv_norm_out + SiLU, conv_out ---- */
    if (cl) {
        const nx_img d = nx_img_of(&x, cl);
        TRYG(nx_img_new(be, dt, &a, cl, d.n, u->conv_out.out_ch, d.h, d.w));
        TRYG(nx_conv2d_norm_forward(be, &u->conv_out, &a, &x, &u->norm_out_w, &u->norm_out_b, c->groups, c->eps));
        TRYG(nx_img_to_nchw(be, out, &a));
    } else {
        TRYG(nx_conv2d_norm_forward(be, &u->conv_out, out, &x, &u->norm_out_w, &u->norm_out_b, c->groups, c->eps));
    }
done:
    nx_tensor_free(&e1), nx_tensor_free(&e2), nx_tensor_free(&ce), nx_tensor_free(&emb);
    nx_tensor_free(&temb), nx_tensor_free(&x), nx_tensor_free(&a), nx_tensor_free(&b), nx_tensor_free(&cen);
    for (int i = 0; i < SKIP_CAP; i++) nx_tensor_free(&skips[i]);
    return s;
}
