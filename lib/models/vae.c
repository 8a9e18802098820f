/* vae.c — diffusers 0.17's AutoencoderKL (models/autoencoder_kl.py, models/vae.py), written
 * against the op layer: the decoder (post_quant_conv -> Decoder) that turns latents into pixels
 * (SD 1.5, Zeroscope frame by frame) or mel spectrograms (AudioLDM), and the encoder (Encoder ->
 * quant_conv -> DiagonalGaussianDistribution's mean and logvar) for image-to-image and round
 * trips. Every size comes from vae/config.json; every tensor name and shape is checked at load.
 *
 *   decode: z [B, L, h, w] -> post_quant_conv (1x1) -> conv_in (3x3) -> mid block
 *           (resnet, single-head self-attention over h*w, resnet) -> up blocks (block_out_channels
 *           reversed; layers_per_block + 1 resnets each, nearest x2 + 3x3 conv except the last)
 *           -> GroupNorm + SiLU -> conv_out -> [B, out_channels, s*h, s*w], s = 2^(n_blocks - 1)
 *   encode: x [B, in_channels, H, W] -> conv_in -> down blocks (layers_per_block resnets,
 *           F.pad(0,1,0,1) + 3x3 stride-2 conv except the last) -> mid block -> GroupNorm + SiLU
 *           -> conv_out (2L) -> quant_conv (1x1) -> mean = [:, :L], logvar = [:, L:]
 *
 * ResnetBlock2D here: GroupNorm+SiLU, conv3x3, GroupNorm+SiLU, conv3x3, + (1x1 conv_shortcut of)
 * the input; eps 1e-6, groups norm_num_groups, no time embedding, output_scale_factor 1.
 * (lib/models/unet.c has its own ResnetBlock2D with the time embedding; sharing one is future
 * work.)
 *
 * Memory: each forward step allocates its output and frees its inputs as soon as they are dead,
 * so at most three activations of one block are alive. For SD 1.5 at 512x512 (B = 1, F32) the
 * peak is the first resnet of the last up block: input 256x512x512 (256 MiB) + normed copy
 * (256 MiB) + conv1 output 128x512x512 (128 MiB) = 640 MiB, plus the caller's 3 MiB output;
 * it scales linearly with B. The attention runs at 64x64 (4096 tokens x 512) through
 * nx_op_attention (flash-style: the 4096x4096 scores are never materialised on the CPU).
 */
#include "vae.h"

#include "img_layout.h"
#include "mweights.h"

#include "../core/alloc.h"
#include "../core/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define VAE_MAX_BLOCKS 8
#define VAE_MAX_LAYERS 8  /* resnets per block (layers_per_block + 1 in the decoder) */
#define VAE_EPS 1e-6f

/* ----------------------------------------------------------------------------------------------
 * config and weights */

typedef struct vae_config {
    int in_channels;                      /* 3 (image), 1 (AudioLDM mel) */
    int out_channels;
    int latent_channels;                  /* 4 (SD, Zeroscope), 8 (AudioLDM) */
    int n_blocks;
    int block_out_channels[VAE_MAX_BLOCKS];
    int layers_per_block;
    int norm_num_groups;
    double scaling_factor;                /* 0.18215 unless the config says */
} vae_config;

typedef struct resnet {
    int cin, cout;
    const nx_tensor *norm1_w, *norm1_b;   /* [cin] */
    const nx_tensor *conv1_w, *conv1_b;   /* [cout, cin, 3, 3], [cout] */
    const nx_tensor *norm2_w, *norm2_b;   /* [cout] */
    const nx_tensor *conv2_w, *conv2_b;   /* [cout, cout, 3, 3], [cout] */
    const nx_tensor *short_w, *short_b;   /* [cout, cin, 1, 1], [cout]; NULL when cin == cout */
} resnet;

typedef struct attn {
    int c;
    const nx_tensor *norm_w, *norm_b;     /* [C] */
    const nx_tensor *q_w, *q_b;           /* [C, C], [C] */
    const nx_tensor *k_w, *k_b;
    const nx_tensor *v_w, *v_b;
    const nx_tensor *o_w, *o_b;           /* proj_attn / to_out.0 */
} attn;

typedef struct mid_block {
    resnet res[2];
    attn   att;
} mid_block;

typedef struct sample_block {            /* UpDecoderBlock2D / DownEncoderBlock2D */
    int n_res;
    resnet res[VAE_MAX_LAYERS];
    const nx_tensor *resample_w, *resample_b;  /* [C, C, 3, 3], [C]; NULL in the last block */
} sample_block;

typedef struct coder {                   /* Decoder or Encoder */
    const nx_tensor *conv_in_w, *conv_in_b;    /* dec [C_last, L, 3, 3]; enc [C0, in, 3, 3] */
    mid_block mid;
    sample_block blocks[VAE_MAX_BLOCKS];       /* in execution order */
    const nx_tensor *norm_out_w, *norm_out_b;  /* dec [C0]; enc [C_last] */
    const nx_tensor *conv_out_w, *conv_out_b;  /* dec [out, C0, 3, 3]; enc [2L, C_last, 3, 3] */
} coder;

struct nx_vae {
    nx_backend *be;
    vae_config  cfg;
    bool        cl;    /* activations channels last inside decode/encode (filters permuted at load) */
    nx_mw       mw;
    char       *dir;
    const nx_tensor *post_quant_w, *post_quant_b;  /* [L, L, 1, 1], [L] */
    coder dec;
    bool  has_encoder;
    const nx_tensor *quant_w, *quant_b;            /* [2L, 2L, 1, 1], [2L] */
    coder enc;
};

static ngpt_status read_config(vae_config *c, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    ngpt_status s = NGPT_OK;
    int64_t v;
    const char *str;
    const char *cls = NULL;
#define GETI(key, def, field)                                                   \
    if (s == NGPT_OK) s = nx_json_int_opt(j, key, path, def, &v);               \
    if (s == NGPT_OK && (v < 1 || v > 65536))                                   \
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is %lld", path, key, (long long)v); \
    if (s == NGPT_OK) c->field = (int)v;
    s = nx_json_str_opt(j, "_class_name", path, "AutoencoderKL", &cls);
    if (s == NGPT_OK && strcmp(cls, "AutoencoderKL") != 0)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: '_class_name' is '%s' (only AutoencoderKL is supported)", path, cls);
    GETI("in_channels", 3, in_channels)
    GETI("out_channels", 3, out_channels)
    GETI("latent_channels", 4, latent_channels)
    GETI("layers_per_block", 1, layers_per_block)
    GETI("norm_num_groups", 32, norm_num_groups)
#undef GETI
    if (s == NGPT_OK && c->layers_per_block + 1 > VAE_MAX_LAYERS)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'layers_per_block' %d (at most %d supported)", path, c->layers_per_block,
                   VAE_MAX_LAYERS - 1);
    int64_t boc[VAE_MAX_BLOCKS];
    size_t nb = 0;
    if (s == NGPT_OK && !json_object_get(j, "block_out_channels")) {
        boc[0] = 64;  /* AutoencoderKL's default */
        nb = 1;
    } else if (s == NGPT_OK) {
        s = nx_json_int_array(j, "block_out_channels", path, boc, VAE_MAX_BLOCKS, &nb);
        if (s == NGPT_ERR_BAD_FORMAT && json_array_size(json_object_get(j, "block_out_channels")) > VAE_MAX_BLOCKS)
            s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'block_out_channels' has more than %d entries", path, VAE_MAX_BLOCKS);
    }
    if (s == NGPT_OK && nb == 0) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'block_out_channels' is empty", path);
    c->n_blocks = (int)nb;
    for (size_t i = 0; s == NGPT_OK && i < nb; i++) {
        if (boc[i] < 1 || boc[i] > 65536 || boc[i] % c->norm_num_groups != 0)
            s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'block_out_channels'[%zu] = %lld is not a positive multiple of "
                       "'norm_num_groups' %d", path, i, (long long)boc[i], c->norm_num_groups);
        else
            c->block_out_channels[i] = (int)boc[i];
    }
    /* block types: only the ones AutoencoderKL's Encoder/Decoder are built from */
    static const char *const type_keys[2] = {"down_block_types", "up_block_types"};
    static const char *const type_want[2] = {"DownEncoderBlock2D", "UpDecoderBlock2D"};
    for (int k = 0; s == NGPT_OK && k < 2; k++) {
        json_t *a = json_object_get(j, type_keys[k]);
        if (!a) {
            if (nb != 1) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' missing", path, type_keys[k]);
            continue;
        }
        if (!json_is_array(a) || json_array_size(a) != nb)
            s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' must be an array of %zu entries (one per block_out_channels)", path,
                       type_keys[k], nb);
        for (size_t i = 0; s == NGPT_OK && i < nb; i++) {
            const char *t = json_string_value(json_array_get(a, i));
            if (!t || strcmp(t, type_want[k]) != 0)
                s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: '%s'[%zu] is %s%s%s (only %s is supported)", path, type_keys[k], i,
                           t ? "'" : "", t ? t : "not a string", t ? "'" : "", type_want[k]);
        }
    }
    if (s == NGPT_OK) s = nx_json_str_opt(j, "act_fn", path, "silu", &str);
    if (s == NGPT_OK && strcmp(str, "silu") != 0)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'act_fn' is '%s' (only 'silu' is supported)", path, str);
    double sf = 0.18215;
    if (s == NGPT_OK) s = nx_json_num_opt(j, "scaling_factor", path, 0.18215, &sf);
    if (s == NGPT_OK && !(sf > 0 && isfinite(sf)))
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'scaling_factor' is %g", path, sf);
    c->scaling_factor = sf;
    /* keys of later diffusers versions that change the network: accepted only at their
     * AutoencoderKL-0.17 values (sample_size, force_upcast and the _ keys are ignored) */
    static const char *const true_keys[] = {"use_quant_conv", "use_post_quant_conv", "mid_block_add_attention"};
    for (size_t i = 0; s == NGPT_OK && i < sizeof true_keys / sizeof *true_keys; i++) {
        bool b = true;
        s = nx_json_bool_opt(j, true_keys[i], path, true, &b);
        if (s == NGPT_OK && !b) s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: '%s' false is not supported", path, true_keys[i]);
    }
    static const char *const null_keys[] = {"shift_factor", "latents_mean", "latents_std"};
    for (size_t i = 0; s == NGPT_OK && i < sizeof null_keys / sizeof *null_keys; i++) {
        json_t *x = json_object_get(j, null_keys[i]);
        if (x && !json_is_null(x)) s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: '%s' is not supported", path, null_keys[i]);
    }
    json_decref(j);
    return s;
}

/* ---- loading ---- */

static ngpt_status get(nx_mw *m, const nx_tensor **t, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                       const char *fmt, ...) NX_PRINTF(8, 9);
static ngpt_status get(nx_mw *m, const nx_tensor **t, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                       const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t shape[4] = {d0, d1, d2, d3};
    /* every 4-D tensor of the VAE is a conv filter (permuted when the VAE runs channels last) */
    return rank == 4 ? nx_mw_get_filter(m, t, name, shape) : nx_mw_get(m, t, name, rank, shape);
}

static ngpt_status load_resnet(nx_mw *m, resnet *r, int cin, int cout, const char *p)
{
    r->cin = cin;
    r->cout = cout;
    NX_TRY(get(m, &r->norm1_w, 1, cin, 0, 0, 0, "%s.norm1.weight", p));
    NX_TRY(get(m, &r->norm1_b, 1, cin, 0, 0, 0, "%s.norm1.bias", p));
    NX_TRY(get(m, &r->conv1_w, 4, cout, cin, 3, 3, "%s.conv1.weight", p));
    NX_TRY(get(m, &r->conv1_b, 1, cout, 0, 0, 0, "%s.conv1.bias", p));
    NX_TRY(get(m, &r->norm2_w, 1, cout, 0, 0, 0, "%s.norm2.weight", p));
    NX_TRY(get(m, &r->norm2_b, 1, cout, 0, 0, 0, "%s.norm2.bias", p));
    NX_TRY(get(m, &r->conv2_w, 4, cout, cout, 3, 3, "%s.conv2.weight", p));
    NX_TRY(get(m, &r->conv2_b, 1, cout, 0, 0, 0, "%s.conv2.bias", p));
    r->short_w = r->short_b = NULL;
    if (cin != cout) {
        NX_TRY(get(m, &r->short_w, 4, cout, cin, 1, 1, "%s.conv_shortcut.weight", p));
        NX_TRY(get(m, &r->short_b, 1, cout, 0, 0, 0, "%s.conv_shortcut.bias", p));
    }
    return NGPT_OK;
}

/* The VAE attention under either naming: diffusers <= 0.17 checkpoints (query/key/value/
 * proj_attn) or the converted one (to_q/to_k/to_v/to_out.0). */
static ngpt_status load_attn(nx_mw *m, attn *a, int c, const char *p)
{
    a->c = c;
    char probe[256];
    snprintf(probe, sizeof probe, "%s.to_q.weight", p);
    bool modern = nx_weights_find(m->w, probe) != NULL;
    const char *nq = modern ? "to_q" : "query", *nk = modern ? "to_k" : "key";
    const char *nv = modern ? "to_v" : "value", *no = modern ? "to_out.0" : "proj_attn";
    NX_TRY(get(m, &a->norm_w, 1, c, 0, 0, 0, "%s.group_norm.weight", p));
    NX_TRY(get(m, &a->norm_b, 1, c, 0, 0, 0, "%s.group_norm.bias", p));
    NX_TRY(get(m, &a->q_w, 2, c, c, 0, 0, "%s.%s.weight", p, nq));
    NX_TRY(get(m, &a->q_b, 1, c, 0, 0, 0, "%s.%s.bias", p, nq));
    NX_TRY(get(m, &a->k_w, 2, c, c, 0, 0, "%s.%s.weight", p, nk));
    NX_TRY(get(m, &a->k_b, 1, c, 0, 0, 0, "%s.%s.bias", p, nk));
    NX_TRY(get(m, &a->v_w, 2, c, c, 0, 0, "%s.%s.weight", p, nv));
    NX_TRY(get(m, &a->v_b, 1, c, 0, 0, 0, "%s.%s.bias", p, nv));
    NX_TRY(get(m, &a->o_w, 2, c, c, 0, 0, "%s.%s.weight", p, no));
    NX_TRY(get(m, &a->o_b, 1, c, 0, 0, 0, "%s.%s.bias", p, no));
    return NGPT_OK;
}

static ngpt_status load_mid(nx_mw *m, mid_block *mb, int c, const char *p)
{
    char q[128];
    snprintf(q, sizeof q, "%s.mid_block.resnets.0", p);
    NX_TRY(load_resnet(m, &mb->res[0], c, c, q));
    snprintf(q, sizeof q, "%s.mid_block.attentions.0", p);
    NX_TRY(load_attn(m, &mb->att, c, q));
    snprintf(q, sizeof q, "%s.mid_block.resnets.1", p);
    return load_resnet(m, &mb->res[1], c, c, q);
}

/* vae.py Decoder: up block i runs reversed(block_out_channels)[i]. */
static ngpt_status load_decoder(nx_vae *v)
{
    const vae_config *c = &v->cfg;
    nx_mw *m = &v->mw;
    coder *d = &v->dec;
    int nb = c->n_blocks, L = c->latent_channels;
    int ctop = c->block_out_channels[nb - 1], c0 = c->block_out_channels[0];
    NX_TRY(get(m, &v->post_quant_w, 4, L, L, 1, 1, "post_quant_conv.weight"));
    NX_TRY(get(m, &v->post_quant_b, 1, L, 0, 0, 0, "post_quant_conv.bias"));
    NX_TRY(get(m, &d->conv_in_w, 4, ctop, L, 3, 3, "decoder.conv_in.weight"));
    NX_TRY(get(m, &d->conv_in_b, 1, ctop, 0, 0, 0, "decoder.conv_in.bias"));
    NX_TRY(load_mid(m, &d->mid, ctop, "decoder"));
    int cout = ctop;
    for (int i = 0; i < nb; i++) {
        sample_block *b = &d->blocks[i];
        int cin = cout;
        cout = c->block_out_channels[nb - 1 - i];
        b->n_res = c->layers_per_block + 1;
        for (int r = 0; r < b->n_res; r++) {
            char p[128];
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, r);
            NX_TRY(load_resnet(m, &b->res[r], r == 0 ? cin : cout, cout, p));
        }
        b->resample_w = b->resample_b = NULL;
        if (i != nb - 1) {
            NX_TRY(get(m, &b->resample_w, 4, cout, cout, 3, 3, "decoder.up_blocks.%d.upsamplers.0.conv.weight", i));
            NX_TRY(get(m, &b->resample_b, 1, cout, 0, 0, 0, "decoder.up_blocks.%d.upsamplers.0.conv.bias", i));
        }
    }
    NX_TRY(get(m, &d->norm_out_w, 1, c0, 0, 0, 0, "decoder.conv_norm_out.weight"));
    NX_TRY(get(m, &d->norm_out_b, 1, c0, 0, 0, 0, "decoder.conv_norm_out.bias"));
    NX_TRY(get(m, &d->conv_out_w, 4, c->out_channels, c0, 3, 3, "decoder.conv_out.weight"));
    NX_TRY(get(m, &d->conv_out_b, 1, c->out_channels, 0, 0, 0, "decoder.conv_out.bias"));
    return NGPT_OK;
}

/* vae.py Encoder (double_z: conv_out gives 2L channels) + quant_conv. */
static ngpt_status load_encoder(nx_vae *v)
{
    const vae_config *c = &v->cfg;
    nx_mw *m = &v->mw;
    coder *e = &v->enc;
    int nb = c->n_blocks, L2 = 2 * c->latent_channels;
    int ctop = c->block_out_channels[nb - 1], c0 = c->block_out_channels[0];
    NX_TRY(get(m, &e->conv_in_w, 4, c0, c->in_channels, 3, 3, "encoder.conv_in.weight"));
    NX_TRY(get(m, &e->conv_in_b, 1, c0, 0, 0, 0, "encoder.conv_in.bias"));
    int cout = c0;
    for (int i = 0; i < nb; i++) {
        sample_block *b = &e->blocks[i];
        int cin = cout;
        cout = c->block_out_channels[i];
        b->n_res = c->layers_per_block;
        for (int r = 0; r < b->n_res; r++) {
            char p[128];
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, r);
            NX_TRY(load_resnet(m, &b->res[r], r == 0 ? cin : cout, cout, p));
        }
        b->resample_w = b->resample_b = NULL;
        if (i != nb - 1) {
            NX_TRY(get(m, &b->resample_w, 4, cout, cout, 3, 3, "encoder.down_blocks.%d.downsamplers.0.conv.weight", i));
            NX_TRY(get(m, &b->resample_b, 1, cout, 0, 0, 0, "encoder.down_blocks.%d.downsamplers.0.conv.bias", i));
        }
    }
    NX_TRY(load_mid(m, &e->mid, ctop, "encoder"));
    NX_TRY(get(m, &e->norm_out_w, 1, ctop, 0, 0, 0, "encoder.conv_norm_out.weight"));
    NX_TRY(get(m, &e->norm_out_b, 1, ctop, 0, 0, 0, "encoder.conv_norm_out.bias"));
    NX_TRY(get(m, &e->conv_out_w, 4, L2, ctop, 3, 3, "encoder.conv_out.weight"));
    NX_TRY(get(m, &e->conv_out_b, 1, L2, 0, 0, 0, "encoder.conv_out.bias"));
    NX_TRY(get(m, &v->quant_w, 4, L2, L2, 1, 1, "quant_conv.weight"));
    NX_TRY(get(m, &v->quant_b, 1, L2, 0, 0, 0, "quant_conv.bias"));
    return NGPT_OK;
}

ngpt_status nx_vae_load(nx_vae **out, nx_backend *be, const char *vae_dir, bool load_enc, ngpt_dtype dt,
                        bool channels_last)
{
    *out = NULL;
    nx_vae *v = nx_calloc(1, sizeof *v);
    if (!v) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", vae_dir);
    v->be = be;
    v->dir = nx_strdup(vae_dir);
    ngpt_status s = v->dir ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", vae_dir);
    if (s == NGPT_OK) s = read_config(&v->cfg, vae_dir);
    static const char *const files[] = {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", NULL};
    if (s == NGPT_OK) s = nx_mw_open(&v->mw, be, vae_dir, files);
    v->mw.dt = dt;  /* weights converted to the compute dtype at fetch (encoder too, on demand) */
    v->cl = v->mw.filters_nhwc = channels_last;
    if (s == NGPT_OK) s = load_decoder(v);
    if (s == NGPT_OK && load_enc) s = load_encoder(v);
    if (s == NGPT_OK) v->has_encoder = load_enc;
    if (s == NGPT_OK && !load_enc) {
        /* not loaded now, not an error: nx_vae_load_encoder resolves them on demand */
        nx_mw_skip_prefix(&v->mw, "encoder.");
        nx_mw_skip_prefix(&v->mw, "quant_conv.");
    }
    if (s == NGPT_OK) s = nx_mw_check_unused(&v->mw);
    if (s != NGPT_OK) {
        nx_vae_free(v);
        return s;
    }
    *out = v;
    return NGPT_OK;
}

ngpt_status nx_vae_load_encoder(nx_vae *v)
{
    if (v->has_encoder) return NGPT_OK;
    size_t n0 = v->mw.n;
    ngpt_status s = load_encoder(v);
    if (s != NGPT_OK) {
        /* drop the half-resolved encoder; the decoder stays usable */
        for (size_t i = n0; i < v->mw.n; i++) nx_tensor_free(&v->mw.t[i]);
        v->mw.n = n0;
        memset(&v->enc, 0, sizeof v->enc);
        v->quant_w = v->quant_b = NULL;
        return s;
    }
    v->has_encoder = true;
    return NGPT_OK;
}

void nx_vae_free(nx_vae *v)
{
    if (!v) return;
    nx_mw_close(&v->mw);
    nx_free(v->dir);
    nx_free(v);
}

double nx_vae_scaling_factor(const nx_vae *v) { return v->cfg.scaling_factor; }
int nx_vae_latent_channels(const nx_vae *v) { return v->cfg.latent_channels; }
int nx_vae_out_channels(const nx_vae *v) { return v->cfg.out_channels; }
int nx_vae_in_channels(const nx_vae *v) { return v->cfg.in_channels; }
int nx_vae_scale(const nx_vae *v) { return 1 << (v->cfg.n_blocks - 1); }
bool nx_vae_has_encoder(const nx_vae *v) { return v->has_encoder; }

/* ----------------------------------------------------------------------------------------------
 * forward building blocks. Each takes *x, computes, frees *x and replaces it with the result
 * (so the caller's "current activation" moves down the network and dead tensors go at once). */

static void replace(nx_tensor *x, nx_tensor *y)
{
    nx_tensor_free(x);
    *x = *y;
    memset(y, 0, sizeof *y);
}

/* y = conv2d(x) (k x k, stride, symmetric pad), y allocated here; cl: channels last (w then
 * [O, k, k, C]). */
static ngpt_status conv2d(nx_backend *be, bool cl, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                          const nx_tensor *b, int stride, int pad)
{
    const int64_t k = cl ? w->ne[1] : w->ne[2];
    const nx_img d = nx_img_of(x, cl);
    NX_TRY(nx_img_new(be, x->dtype, y, cl, d.n, w->ne[0], (d.h + 2 * pad - k) / stride + 1, (d.w + 2 * pad - k) / stride + 1));
    nx_conv_params p = nx_conv_params_default();
    p.stride[0] = p.stride[1] = stride;
    p.pad[0] = p.pad[1] = pad;
    p.channels_last = cl;
    ngpt_status s = nx_op_conv(be, y, x, w, b, &p);
    if (s != NGPT_OK) nx_tensor_free(y);
    return s;
}

static ngpt_status norm(nx_backend *be, bool cl, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                        const nx_tensor *b, int groups, bool silu)
{
    NX_TRY(nx_tensor_alloc(y, be, x->dtype, x->rank, x->ne));
    ngpt_status s = nx_op_group_norm(be, y, x, w, b, groups, VAE_EPS,
                                     (silu ? NX_GN_SILU : 0) | (cl ? NX_GN_CHANNELS_LAST : 0));
    if (s != NGPT_OK) nx_tensor_free(y);
    return s;
}

/* y = conv2d(silu(group_norm(x))) (3x3, pad 1) in one op (nx_op_group_norm_conv), y allocated here. */
static ngpt_status norm_conv(nx_backend *be, bool cl, nx_tensor *y, const nx_tensor *x, const nx_tensor *gw,
                             const nx_tensor *gb, int groups, const nx_tensor *w, const nx_tensor *b)
{
    const nx_img d = nx_img_of(x, cl);
    NX_TRY(nx_img_new(be, x->dtype, y, cl, d.n, w->ne[0], d.h, d.w));
    nx_conv_params p = nx_conv_params_default();
    p.pad[0] = p.pad[1] = 1;
    p.channels_last = cl;
    ngpt_status s = nx_op_group_norm_conv(be, y, x, gw, gb, groups, VAE_EPS, NX_GN_SILU | (cl ? NX_GN_CHANNELS_LAST : 0),
                                          w, b, &p);
    if (s != NGPT_OK) nx_tensor_free(y);
    return s;
}

/* ResnetBlock2D (temb None): x <- shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x)))))) */
static ngpt_status resnet_fwd(nx_backend *be, bool cl, const resnet *r, int groups, nx_tensor *x)
{
    nx_tensor a = {0}, h = {0}, sc = {0};
    ngpt_status s = norm_conv(be, cl, &a, x, r->norm1_w, r->norm1_b, groups, r->conv1_w, r->conv1_b);
    if (s == NGPT_OK) s = norm_conv(be, cl, &h, &a, r->norm2_w, r->norm2_b, groups, r->conv2_w, r->conv2_b);
    nx_tensor_free(&a);
    if (s == NGPT_OK && r->short_w) {
        s = conv2d(be, cl, &sc, x, r->short_w, r->short_b, 1, 0);
        if (s == NGPT_OK) replace(x, &sc);
    }
    if (s == NGPT_OK) s = nx_op_binary(be, &h, x, &h, NX_BINARY_ADD);  /* (input + hidden) / 1.0 */
    if (s == NGPT_OK) replace(x, &h);
    nx_tensor_free(&h);
    return s;
}

/* The VAE's attention: one head of width C over the h*w positions, residual added. The
 * projections read [B, HW, C]: channels last is that already, NCHW is permuted there and back. */
static ngpt_status attn_fwd(nx_backend *be, bool cl, const attn *a, int groups, nx_tensor *x)
{
    const nx_img d = nx_img_of(x, cl);
    const int64_t B = d.n, C = d.c, H = d.h, W = d.w, S = H * W;
    nx_tensor n = {0}, t = {0}, q = {0}, k = {0}, v = {0}, o = {0}, p = {0};
    int64_t bhwc[4] = {B, H, W, C}, bsc[3] = {B, S, C}, bs1c[4] = {B, S, 1, C};
    ngpt_status s = norm(be, cl, &n, x, a->norm_w, a->norm_b, groups, false);
    if (cl) {
        t = n, n = (nx_tensor){0};
    } else {
        if (s == NGPT_OK) s = nx_tensor_alloc(&t, be, x->dtype, 4, bhwc);
        if (s == NGPT_OK) s = nx_img_to_nhwc(be, &t, &n);
        nx_tensor_free(&n);
    }
    nx_tensor t3;
    if (s == NGPT_OK) s = nx_reshape(&t3, &t, 3, bsc);
    if (s == NGPT_OK) s = nx_tensor_alloc(&q, be, x->dtype, 4, bs1c);
    if (s == NGPT_OK) s = nx_tensor_alloc(&k, be, x->dtype, 4, bs1c);
    if (s == NGPT_OK) s = nx_tensor_alloc(&v, be, x->dtype, 4, bs1c);
    nx_tensor q3, k3, v3;
    if (s == NGPT_OK) s = nx_reshape(&q3, &q, 3, bsc);
    if (s == NGPT_OK) s = nx_reshape(&k3, &k, 3, bsc);
    if (s == NGPT_OK) s = nx_reshape(&v3, &v, 3, bsc);
    if (s == NGPT_OK) s = nx_op_linear(be, &q3, &t3, a->q_w, a->q_b);
    if (s == NGPT_OK) s = nx_op_linear(be, &k3, &t3, a->k_w, a->k_b);
    if (s == NGPT_OK) s = nx_op_linear(be, &v3, &t3, a->v_w, a->v_b);
    nx_tensor_free(&t);
    if (s == NGPT_OK) s = nx_tensor_alloc(&o, be, x->dtype, 4, bs1c);
    if (s == NGPT_OK) s = nx_op_attention(be, &o, &q, &k, &v, NULL, 1.0f / sqrtf((float)C), false);
    nx_tensor_free(&q);
    nx_tensor_free(&k);
    nx_tensor_free(&v);
    nx_tensor o3;
    if (s == NGPT_OK) s = nx_reshape(&o3, &o, 3, bsc);
    if (s == NGPT_OK) s = nx_tensor_alloc(&p, be, x->dtype, 4, bhwc);
    nx_tensor p3;
    if (s == NGPT_OK) s = nx_reshape(&p3, &p, 3, bsc);
    if (s == NGPT_OK) s = nx_op_linear(be, &p3, &o3, a->o_w, a->o_b);
    nx_tensor_free(&o);
    if (cl) {
        if (s == NGPT_OK) s = nx_op_binary(be, x, &p, x, NX_BINARY_ADD);  /* (hidden + residual) / 1.0 */
    } else {
        if (s == NGPT_OK) s = nx_tensor_alloc(&n, be, x->dtype, 4, x->ne);
        if (s == NGPT_OK) s = nx_img_to_nchw(be, &n, &p);
        if (s == NGPT_OK) s = nx_op_binary(be, x, &n, x, NX_BINARY_ADD);
    }
    nx_tensor_free(&p);
    nx_tensor_free(&n);
    return s;
}

static ngpt_status mid_fwd(nx_backend *be, bool cl, const mid_block *m, int groups, nx_tensor *x)
{
    NX_TRY(resnet_fwd(be, cl, &m->res[0], groups, x));
    NX_TRY(attn_fwd(be, cl, &m->att, groups, x));
    return resnet_fwd(be, cl, &m->res[1], groups, x);
}

/* Upsample2D: nearest x2, then 3x3 conv. */
static ngpt_status upsample_fwd(nx_backend *be, bool cl, const nx_tensor *w, const nx_tensor *b, nx_tensor *x)
{
    nx_tensor u = {0}, y = {0};
    const nx_img d = nx_img_of(x, cl);
    ngpt_status s = nx_img_new(be, x->dtype, &u, cl, d.n, d.c, d.h * 2, d.w * 2);
    if (s == NGPT_OK) s = nx_op_resize(be, &u, x, NX_RESIZE_NEAREST, false, cl);
    if (s == NGPT_OK) {
        nx_tensor_free(x);
        s = conv2d(be, cl, &y, &u, w, b, 1, 1);
    }
    if (s == NGPT_OK) replace(x, &y);
    nx_tensor_free(&u);
    return s;
}

/* A zero tensor of shape ne (host zeros uploaded: F.pad's zeros are exact whatever x holds). */
static ngpt_status zeros(nx_backend *be, nx_tensor *z, ngpt_dtype dt, const int64_t *ne)
{
    NX_TRY(nx_tensor_alloc(z, be, dt, 4, ne));  /* all-zero bytes are 0.0 in F32, F16 and BF16 */
    size_t nb = nx_nbytes(z);
    void *h = nx_calloc(nb ? nb : 1, 1);
    ngpt_status s = h ? nx_tensor_upload(z, h, nb) : nx_err(NGPT_ERR_OUT_OF_MEMORY, "vae: out of memory");
    nx_free(h);
    if (s != NGPT_OK) nx_tensor_free(z);
    return s;
}

/* Downsample2D (use_conv, padding 0): F.pad(x, (0, 1, 0, 1)), then 3x3 stride-2 conv. */
static ngpt_status downsample_fwd(nx_backend *be, bool cl, const nx_tensor *w, const nx_tensor *b, nx_tensor *x)
{
    const nx_img d = nx_img_of(x, cl);
    const int ax_h = cl ? 1 : 2, ax_w = cl ? 2 : 3;
    int64_t zc[4], pw[4], zr[4], ph[4];
    nx_img_shape(zc, cl, d.n, d.c, d.h, 1), nx_img_shape(pw, cl, d.n, d.c, d.h, d.w + 1);
    nx_img_shape(zr, cl, d.n, d.c, 1, d.w + 1), nx_img_shape(ph, cl, d.n, d.c, d.h + 1, d.w + 1);
    nx_tensor z = {0}, a = {0}, y = {0};
    ngpt_status s = zeros(be, &z, x->dtype, zc);
    if (s == NGPT_OK) s = nx_tensor_alloc(&a, be, x->dtype, 4, pw);
    if (s == NGPT_OK) s = nx_op_concat(be, &a, x, &z, ax_w);
    nx_tensor_free(&z);
    if (s == NGPT_OK) s = zeros(be, &z, x->dtype, zr);
    if (s == NGPT_OK) s = nx_tensor_alloc(&y, be, x->dtype, 4, ph);
    if (s == NGPT_OK) s = nx_op_concat(be, &y, &a, &z, ax_h);
    nx_tensor_free(&z);
    nx_tensor_free(&a);
    if (s == NGPT_OK) s = conv2d(be, cl, &a, &y, w, b, 2, 0);
    nx_tensor_free(&y);
    if (s == NGPT_OK) replace(x, &a);
    return s;
}

/* The caller's NCHW tensor as the network's layout: x itself, or a channels-last copy in *tmp. */
static ngpt_status layout_in(nx_vae *v, const nx_tensor *x, nx_tensor *tmp, const nx_tensor **in)
{
    *in = x;
    if (!v->cl) return NGPT_OK;
    const nx_img d = nx_img_of(x, false);
    NX_TRY(nx_img_new(v->be, x->dtype, tmp, true, d.n, d.c, d.h, d.w));
    ngpt_status s = nx_img_to_nhwc(v->be, tmp, x);
    if (s != NGPT_OK) nx_tensor_free(tmp);
    *in = tmp;
    return s;
}

/* ----------------------------------------------------------------------------------------------
 * decode / encode */

ngpt_status nx_vae_decode(nx_vae *v, nx_tensor *out, const nx_tensor *latents)
{
    nx_backend *be = v->be;
    const vae_config *c = &v->cfg;
    const coder *d = &v->dec;
    int g = c->norm_num_groups;
    if (latents->rank != 4 || latents->ne[1] != c->latent_channels)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: latents must be [B, %d, h, w]", v->dir, c->latent_channels);
    int64_t sc = nx_vae_scale(v);
    if (out->rank != 4 || out->ne[0] != latents->ne[0] || out->ne[1] != c->out_channels ||
        out->ne[2] != latents->ne[2] * sc || out->ne[3] != latents->ne[3] * sc)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: decode output must be [B, %d, %lld*h, %lld*w]", v->dir,
                      c->out_channels, (long long)sc, (long long)sc);
    const bool cl = v->cl;
    nx_tensor z = {0}, x = {0}, lt = {0};
    const nx_tensor *lat = NULL;
    ngpt_status s = layout_in(v, latents, &lt, &lat);
    if (s == NGPT_OK) s = conv2d(be, cl, &z, lat, v->post_quant_w, v->post_quant_b, 1, 0);  /* post_quant_conv */
    nx_tensor_free(&lt);
    if (s == NGPT_OK) s = conv2d(be, cl, &x, &z, d->conv_in_w, d->conv_in_b, 1, 1);         /* decoder.conv_in */
    nx_tensor_free(&z);
    if (s == NGPT_OK) s = mid_fwd(be, cl, &d->mid, g, &x);                                  /* decoder.mid_block */
    for (int i = 0; s == NGPT_OK && i < c->n_blocks; i++) {                                  /* decoder.up_blocks */
        const sample_block *b = &d->blocks[i];
        for (int r = 0; s == NGPT_OK && r < b->n_res; r++) s = resnet_fwd(be, cl, &b->res[r], g, &x);
        if (s == NGPT_OK && b->resample_w) s = upsample_fwd(be, cl, b->resample_w, b->resample_b, &x);
    }
    if (s == NGPT_OK && cl) {                                        /* conv_norm_out + SiLU, conv_out, then NCHW */
        s = norm_conv(be, cl, &z, &x, d->norm_out_w, d->norm_out_b, g, d->conv_out_w, d->conv_out_b);
        if (s == NGPT_OK) s = nx_img_to_nchw(be, out, &z);
    } else if (s == NGPT_OK) {                                       /* conv_norm_out + SiLU, conv_out, into out */
        nx_conv_params p = nx_conv_params_default();
        p.pad[0] = p.pad[1] = 1;
        s = nx_op_group_norm_conv(be, out, &x, d->norm_out_w, d->norm_out_b, g, VAE_EPS, NX_GN_SILU, d->conv_out_w,
                                  d->conv_out_b, &p);
    }
    nx_tensor_free(&x);
    nx_tensor_free(&z);
    return s;
}

ngpt_status nx_vae_encode(nx_vae *v, nx_tensor *mean, nx_tensor *logvar, const nx_tensor *image)
{
    nx_backend *be = v->be;
    const vae_config *c = &v->cfg;
    const coder *e = &v->enc;
    int g = c->norm_num_groups, L = c->latent_channels;
    if (!v->has_encoder) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: the encoder is not loaded", v->dir);
    int64_t sc = nx_vae_scale(v);
    if (image->rank != 4 || image->ne[1] != c->in_channels || image->ne[2] % sc || image->ne[3] % sc)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: the image must be [B, %d, H, W] with H and W multiples of %lld",
                      v->dir, c->in_channels, (long long)sc);
    int64_t ls[4] = {image->ne[0], L, image->ne[2] / sc, image->ne[3] / sc};
    if (mean->rank != 4 || memcmp(mean->ne, ls, sizeof ls) || (logvar && (logvar->rank != 4 || memcmp(logvar->ne, ls, sizeof ls))))
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: encode outputs must be [B, %d, H/%lld, W/%lld]", v->dir, L,
                      (long long)sc, (long long)sc);
    const bool cl = v->cl;
    nx_tensor x = {0}, z = {0}, it = {0};
    const nx_tensor *img = NULL;
    ngpt_status s = layout_in(v, image, &it, &img);
    if (s == NGPT_OK) s = conv2d(be, cl, &x, img, e->conv_in_w, e->conv_in_b, 1, 1);        /* encoder.conv_in */
    nx_tensor_free(&it);
    for (int i = 0; s == NGPT_OK && i < c->n_blocks; i++) {                                  /* encoder.down_blocks */
        const sample_block *b = &e->blocks[i];
        for (int r = 0; s == NGPT_OK && r < b->n_res; r++) s = resnet_fwd(be, cl, &b->res[r], g, &x);
        if (s == NGPT_OK && b->resample_w) s = downsample_fwd(be, cl, b->resample_w, b->resample_b, &x);
    }
    if (s == NGPT_OK) s = mid_fwd(be, cl, &e->mid, g, &x);                                  /* encoder.mid_block */
    if (s == NGPT_OK) s = norm_conv(be, cl, &z, &x, e->norm_out_w, e->norm_out_b, g, e->conv_out_w, e->conv_out_b);
    nx_tensor_free(&x);                                                       /* conv_norm_out + SiLU, conv_out: 2L */
    if (s == NGPT_OK) {
        x = z;
        memset(&z, 0, sizeof z);
    }
    if (s == NGPT_OK) s = conv2d(be, cl, &z, &x, v->quant_w, v->quant_b, 1, 0);             /* quant_conv: moments */
    nx_tensor_free(&x);
    if (s == NGPT_OK && cl) { /* moments back to NCHW */
        const nx_img d = nx_img_of(&z, true);
        s = nx_img_new(be, z.dtype, &x, false, d.n, d.c, d.h, d.w);
        if (s == NGPT_OK) s = nx_img_to_nchw(be, &x, &z);
        if (s == NGPT_OK) replace(&z, &x);
    }
    if (s == NGPT_OK) s = nx_op_slice(be, mean, &z, 1, 0);                                   /* mean, logvar = chunk(2) */
    if (s == NGPT_OK && logvar) s = nx_op_slice(be, logvar, &z, 1, L);
    nx_tensor_free(&x);
    nx_tensor_free(&z);
    return s;
}
