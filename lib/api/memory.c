/* memory.c — ngpt_pipeline_estimate_memory: the memory a pipeline turn needs, from the configs.
 *
 * Reads bundle.json and every part's config (through the loaders' own readers where they have
 * one: nx_llama_read_config, nx_imagebind_read_config, nx_unet_list_tensors — the UNet's exact
 * tensor list from its config.json; the VAE, CLIP/CLAP text encoders, vocoder and projectors
 * read the handful of sizes their formulas need), opens no weights, and adds up per part:
 *  - weights as the backend holds them (CPU: mmapped views in the stored dtype, except the copies
 *    the loaders make: the projectors' biases/norms in F32, the LoRA A/B in F32; CUDA: every
 *    tensor uploaded, in compute_dtype when that is F16/BF16, the projectors' matrices in their
 *    stored dtype),
 *  - the KV cache (backbone),
 *  - the peak working memory while the part computes (activations + scratch that are tensors).
 * The formulas and their assumptions are in docs/architecture.md, "Memory estimate"; every count
 * below is in elements unless named *_bytes.
 */
#include "nextgpt.h"

#include "core/fs.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/json.h"
#include "core/params.h"
#include "bundle.h"
#include "decoder.h"
#include "models/hifigan.h"
#include "models/imagebind.h"
#include "models/llama.h"
#include "models/unet.h"
#include "ops/cpu/cpu_ops.h" /* nx_cpu_conv_winograd_stripe: the CPU's Winograd memory bound */

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MEM_MAX_BLOCKS 8
#define MEM_MAX_LAYERS 8
#define MEM_CUDA_OVERHEAD (1ull << 30)  /* CUDA context + cuBLAS/cuDNN workspaces + pool slack */
#define MEM_SIGNAL_TOKENS 38            /* NExT-GPT's added tokens: the delta's extra vocab rows */

typedef struct mem_part {
    int      present;
    uint64_t weights, mapped, kv, work;
    int      work_kept;  /* the work stays allocated after the first use (backbone scratch) */
} mem_part;

struct ngpt_memory_estimate {
    ngpt_memory_params p;
    mem_part part[NGPT_MEMORY_PART_COUNT];
    uint64_t stage[NGPT_PIPELINE_STAGE_COUNT];
    uint64_t overhead, mapped;
};

static const ngpt_memory_params k_mem_params = {
    .struct_size = sizeof(ngpt_memory_params),
    .backend = NGPT_BACKEND_CPU,
    .compute_dtype = NGPT_DTYPE_F32,
    .inputs = 1u << NGPT_MODALITY_IMAGE,
    .outputs = 1u << NGPT_MODALITY_IMAGE,
};

NGPT_API ngpt_status ngpt_memory_params_default(ngpt_memory_params *p, size_t struct_size)
{
    return nx_params_default(p, struct_size, &k_mem_params, sizeof k_mem_params, "ngpt_memory_params_default");
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

typedef struct mem_env {
    const ngpt_memory_params *p;
    bool     cuda;
    uint64_t act;  /* bytes of an activation element: compute dtype (the CPU computes in F32) */
} mem_env;

/* dir + "/" + rel (rel as it is when absolute); NULL when out of memory (error set). */
static char *path_join(const char *dir, const char *rel)
{
    if (rel[0] == '/') {
        char *d = nx_strdup(rel);
        if (!d) nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_estimate_memory: out of memory");
        return d;
    }
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *s = nx_malloc(n);
    if (!s) {
        nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_estimate_memory: out of memory");
        return NULL;
    }
    snprintf(s, n, "%s/%s", dir, rel);
    return s;
}

/* A folder's config.json, which must exist and be a JSON object. */
static ngpt_status load_config(json_t **j, const char *dir, const char *sub, char *path, size_t cap)
{
    *j = NULL;
    int n = sub ? snprintf(path, cap, "%s/%s/config.json", dir, sub) : snprintf(path, cap, "%s/config.json", dir);
    if (n < 0 || (size_t)n >= cap) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "path too long: %s", dir);
    if (!nx_is_file(path)) return nx_err(NGPT_ERR_NOT_FOUND, "%s: not found", path);
    NX_TRY(nx_json_load_file(j, path));
    if (!json_is_object(*j)) {
        json_decref(*j);
        *j = NULL;
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: not a JSON object", path);
    }
    return NGPT_OK;
}

/* A positive size from a config (absent: def). */
static ngpt_status cfg_size(const json_t *j, const char *key, const char *file, int64_t def, int64_t *v)
{
    NX_TRY(nx_json_int_opt(j, key, file, def, v));
    if (*v < 1 || *v > (1 << 24))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is %lld (expected 1 .. 2^24)", file, key, (long long)*v);
    return NGPT_OK;
}

enum { MEM_LORA_R = 32 };

static uint64_t dsize(ngpt_dtype d) { return (uint64_t)ngpt_dtype_size(d); }

static double maxd(double a, double b) { return a > b ? a : b; }
static double mind(double a, double b) { return a < b ? a : b; }

/* ---------------------------------------------------------------------------------------------
 * Backbone: LLaMA + the NExT-GPT delta
 * ------------------------------------------------------------------------------------------- */

static ngpt_status est_backbone(const mem_env *E, const char *llm, bool delta, mem_part *P)
{
    nx_llama_config c;
    NX_TRY(nx_llama_read_config(&c, llm));
    const double H = c.hidden, I = c.ffn, L = c.n_layers, Dq = (double)c.n_heads * c.head_dim,
                 Dkv = (double)c.n_kv_heads * c.head_dim, V = c.vocab + (delta ? MEM_SIGNAL_TOKENS : 0);
    const double attn = L * (2 * H * Dq + 2 * H * Dkv);             /* q, k, v, o */
    const double rest = 2 * V * H + L * (3 * H * I + 2 * H) + H;     /* embed, lm_head, MLP, norms */
    const uint64_t sd = dsize(c.wdtype);                            /* stored dtype: torch_dtype */
    const uint64_t cdt = dsize(E->p->compute_dtype);
    if (!E->cuda) {
        /* views of the checkpoint; a delta's LoRA runs unmerged (lora_merge's CPU default): its
         * A/B of rank MEM_LORA_R (NExT-GPT's) counted as owned F32 */
        P->weights = (uint64_t)((rest + attn) * (double)sd);
        P->mapped = P->weights;
        if (delta) P->weights += (uint64_t)(L * 2.0 * MEM_LORA_R * (2 * H + Dq + Dkv) * 4.0);
    } else {
        /* uploaded, except embed_tokens: a host view of the mapped checkpoint on every backend */
        const double dev = rest - V * H, emb = V * H * (double)sd;
        if (E->p->compute_dtype != NGPT_DTYPE_F32) P->weights = (uint64_t)((dev + attn) * (double)cdt + emb);
        else P->weights = (uint64_t)(dev * (double)sd + attn * (delta ? 4.0 : (double)sd) + emb);
        P->mapped = (uint64_t)emb;
    }
    int64_t n_ctx = E->p->n_ctx ? E->p->n_ctx : 2048;
    if (n_ctx > c.max_pos) n_ctx = c.max_pos;
    int64_t n = E->p->n_batch ? E->p->n_batch : 512;
    if (n > n_ctx) n = n_ctx;
    P->kv = (uint64_t)(2.0 * L * (double)n_ctx * Dkv) * E->act;
    /* scratch for n positions (x, xn, proj [n, H]; q, att [n, Dq]; gate, up [n, I] — on CUDA
     * gate is [n, 2 I], the fused [gate | up]; ids, pos), the logits and hidden rows of the last
     * position (F32, and in the compute dtype when it is not F32, with an F32 staging buffer for
     * caller embedding rows) — kept between evals */
    double scratch = (double)n * (3 * H + 2 * Dq + (E->cuda ? 3 : 2) * I) * (double)E->act + (double)n * 8.0;
    double outs = (V + H) * 4.0;
    if (E->act != 4) outs += (V + H) * (double)E->act + (double)n * H * 4.0;
    P->work = (uint64_t)(scratch + outs);
    P->work_kept = 1;
    P->present = 1;
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Encoder: ImageBind vision + audio (pipeline: both branches)
 * ------------------------------------------------------------------------------------------- */

static ngpt_status est_encoder(const mem_env *E, const char *path, mem_part *P)
{
    nx_imagebind_config c;
    NX_TRY(nx_imagebind_read_config(&c, path));
    double mat = 0, vec = 0, work = 0;
    const uint32_t used = E->p->inputs | E->p->outputs;  /* outputs re-enter the history */
    for (int m = 0; m < NX_IB_N; m++) {
        const double D = c.embed_dim[m], R = c.mlp_ratio, nb = c.num_blocks[m];
        double tokens, stem, clips, in_elems;
        if (m == NX_IB_VISION) {
            double g0 = (c.video_frames - c.kernel_size[0]) / c.kernel_size[0] + 1;
            double g1 = (c.image_size - c.kernel_size[1]) / c.kernel_size[1] + 1;
            tokens = 1 + g0 * g1 * g1;
            stem = D * 3 * c.kernel_size[0] * c.kernel_size[1] * c.kernel_size[2];
            /* an image is one clip; a video 15 (5 clips x 3 crops), at most 16 per pass */
            clips = (used & (1u << NGPT_MODALITY_VIDEO)) ? 15 : 1;
            in_elems = 3.0 * c.video_frames * c.image_size * c.image_size;
        } else {
            double g1 = (c.audio_num_mel_bins - c.audio_kernel_size) / c.audio_stride + 1;
            double g2 = (c.audio_target_len - c.audio_kernel_size) / c.audio_stride + 1;
            tokens = 1 + g1 * g2;
            stem = D * c.audio_kernel_size * c.audio_kernel_size;
            vec += 2 * D + 1;  /* stem LayerNorm, log_logit_scale */
            clips = (used & (1u << NGPT_MODALITY_AUDIO)) ? 3 : 0;
            in_elems = (double)c.audio_num_mel_bins * c.audio_target_len;
        }
        const double blk_mat = 4 * D * D + 2 * R * D * D;                  /* in_proj, out_proj, fc1, fc2 */
        const double blk_vec = 3 * D + D + 4 * D + R * D + D + (c.add_bias_kv[m] ? 2 * D : 0);
        mat += stem + tokens * D + D + nb * blk_mat + (double)c.out_embed_dim * D;  /* + pos, cls, head */
        vec += nb * blk_vec + 2 * D + (c.pre_transformer_ln[m] ? 2 * D : 0);
        if (clips > 0) {
            double M = clips < 16 ? clips : 16, Lk = tokens + (c.add_bias_kv[m] ? 1 : 0);
            double w = M * (4 * tokens * D + 2 * Lk * D + R * tokens * D) * (double)E->act  /* x h q o k v f */
                     + (m == NX_IB_VISION ? M * in_elems * (double)E->act : 0)             /* PadIm2Video repeat */
                     + clips * in_elems * 4.0 * 2                                           /* the input, F32 + cast */
                     + clips * (double)c.out_embed_dim * ((double)E->act + 8.0);
            work = maxd(work, w);
        }
    }
    /* matrices and embeddings in their stored dtype (assumed F32: imagebind_huge.pth) or the
     * compute dtype when F16/BF16, norms and biases F32: one owned blob on CUDA; on the CPU views
     * of the mapped checkpoint (the split positional embedding, a few MB, is not counted), except
     * under BF16 compute, whose matrices are converted to BF16 once at load (owned) */
    const bool half = E->p->compute_dtype != NGPT_DTYPE_F32;
    P->weights = (uint64_t)(mat * (half ? 2.0 : 4.0) + vec * 4.0);
    P->mapped = E->cuda ? 0 : half ? (uint64_t)(vec * 4.0) : P->weights;
    P->work = (uint64_t)work;
    P->present = 1;
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Projectors: the input linear + one output transformer per modality, all F32 and owned
 * ------------------------------------------------------------------------------------------- */

typedef struct proj_cfg {
    double in_dim, out_dim, n_in, n_out, d, d_ff, n_enc, n_dec;
} proj_cfg;

/* nn.Transformer layers (norm_first): self-attention (in_proj 3d x d + 3d, out_proj), 2 (enc) or 3
 * (dec) LayerNorms, linear1/linear2; the decoder adds the cross-attention; one final norm each;
 * plus fc (in -> d), query_embs [n_out, d] and model (d -> out). The matrices (held in the
 * stored dtype) and the rest (biases, norms, queries: F32 copies) apart. */
static double proj_matrices(const proj_cfg *c)
{
    const double d = c->d, ff = 2 * d * c->d_ff;
    return c->n_enc * (4 * d * d + ff) + c->n_dec * (8 * d * d + ff) + c->in_dim * d + d * c->out_dim;
}

static double proj_vectors(const proj_cfg *c)
{
    const double d = c->d, ff = c->d_ff + d;
    return c->n_enc * (4 * d + ff + 4 * d) + 2 * d + c->n_dec * (8 * d + ff + 6 * d) + 2 * d + d + c->n_out * d +
           c->out_dim;
}

static double proj_work(const proj_cfg *c)
{
    const double T = c->n_in + c->n_out;
    return 4.0 * (T * (8 * c->d + c->d_ff) + c->n_out * c->out_dim * 2 + c->n_in * c->in_dim);
}

static ngpt_status est_projector(const mem_env *E, const char *path, int64_t llm_hidden, mem_part *P)
{
    static const char *const slot[3] = {"image", "audio", "video"};
    /* NExT-GPT 7b_tiva_v0 (the delta holds the projectors and no config) */
    proj_cfg pc[3] = {{4096, 768, 4, 77, 512, 2048, 4, 4}, {4096, 512, 8, 1, 512, 2048, 4, 4},
                      {4096, 1024, 24, 77, 512, 2048, 4, 4}};
    double in_dim = 1024, out = (double)llm_hidden;
    ngpt_dtype sd = NGPT_DTYPE_F16;  /* the delta's HalfStorage; a projector folder: its torch_dtype */
    char file[4096];
    json_t *j = NULL;
    ngpt_status s = NGPT_OK;
    if (nx_is_dir(path)) {
        snprintf(file, sizeof file, "%s/config.json", path);
        if (nx_is_file(file)) {
            NX_TRY(load_config(&j, path, NULL, file, sizeof file));
            const char *mt = NULL;
            s = nx_json_str_opt(j, "model_type", file, "", &mt);
            if (s == NGPT_OK && strcmp(mt, "nextgpt_projectors") != 0) { json_decref(j); j = NULL; }
        }
    }  /* a delta file (or a folder without a projector config): NExT-GPT's sizes, nothing read */
    if (s == NGPT_OK && j) {
        const json_t *ip = json_object_get(j, "input_projector"), *ops = json_object_get(j, "output_projectors");
        int64_t v;
        if (!json_is_object(ip) || !json_is_object(ops))
            s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'input_projector' and 'output_projectors' must be objects", file);
        const char *dt = NULL;
        if (s == NGPT_OK) s = nx_json_str_opt(j, "torch_dtype", file, "float32", &dt);
        if (s == NGPT_OK) sd = !strcmp(dt, "float16") ? NGPT_DTYPE_F16 : !strcmp(dt, "bfloat16") ? NGPT_DTYPE_BF16
                                                                                                 : NGPT_DTYPE_F32;
        if (s == NGPT_OK && (s = cfg_size(ip, "in_dim", file, 1024, &v)) == NGPT_OK) in_dim = (double)v;
        if (s == NGPT_OK && (s = cfg_size(ip, "out_dim", file, llm_hidden, &v)) == NGPT_OK) out = (double)v;
        static const char *const k[8] = {"in_dim", "out_dim", "num_input_tokens", "num_output_tokens", "d_model",
                                         "dim_feedforward", "num_encoder_layers", "num_decoder_layers"};
        for (int i = 0; s == NGPT_OK && i < 3; i++) {
            const json_t *o = json_object_get(ops, slot[i]);
            if (!o) { pc[i].d = 0; continue; }  /* the bundle has no such output projector */
            double *f[8] = {&pc[i].in_dim, &pc[i].out_dim, &pc[i].n_in, &pc[i].n_out, &pc[i].d, &pc[i].d_ff,
                            &pc[i].n_enc, &pc[i].n_dec};
            for (int q = 0; s == NGPT_OK && q < 8; q++) {
                s = nx_json_int(o, k[q], file, &v);
                if (s == NGPT_OK && (v < (q == 6 ? 0 : 1) || v > (1 << 24)))
                    s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: output_projectors.%s.%s is %lld", file, slot[i], k[q], (long long)v);
                if (s == NGPT_OK) *f[q] = (double)v;
            }
        }
    }
    json_decref(j);
    NX_TRY(s);
    double mats = in_dim * out, vecs = out, work = 4.0 * (in_dim + out) * 16;
    for (int i = 0; i < 3; i++) {
        if (pc[i].d == 0) continue;
        mats += proj_matrices(&pc[i]);
        vecs += proj_vectors(&pc[i]);
        work = maxd(work, proj_work(&pc[i]));
    }
    /* matrices in the stored dtype: views of the mapping on the CPU, uploaded as they are on CUDA */
    P->mapped = E->cuda ? 0 : (uint64_t)(mats * (double)dsize(sd));
    P->weights = (uint64_t)(mats * (double)dsize(sd) + vecs * 4.0);
    P->work = (uint64_t)work;
    P->present = 1;
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Decoders: UNet (2-D or 3-D, from its exact tensor list) + VAE decoder + text encoder + vocoder
 * ------------------------------------------------------------------------------------------- */

typedef struct unet_shape {
    double params, mats;  /* mats: of tensors of rank >= 2 (matrices and conv filters) */
    int    in_ch, c0;
    bool   is_3d;
    int    n_down, n_up;
    int    down_out[MEM_MAX_BLOCKS], down_layers[MEM_MAX_BLOCKS], down_ffi[MEM_MAX_BLOCKS];
    bool   down_has_down[MEM_MAX_BLOCKS];
    int    up_in[MEM_MAX_BLOCKS][MEM_MAX_LAYERS + 1], up_out[MEM_MAX_BLOCKS], up_layers[MEM_MAX_BLOCKS];
    int    up_ffi[MEM_MAX_BLOCKS];
    bool   up_has_up[MEM_MAX_BLOCKS];
    int    mid_ch, mid_ffi;
} unet_shape;

static ngpt_status unet_record(void *user, const char *name, int rank, const int64_t *shape)
{
    unet_shape *u = user;
    double n = 1;
    for (int i = 0; i < rank; i++) n *= (double)shape[i];
    u->params += n;
    if (rank >= 2) u->mats += n;
    int b, l;
    char rest[200];
    if (!strcmp(name, "conv_in.weight") && rank >= 2) {
        u->c0 = (int)shape[0];
        u->in_ch = (int)shape[1];
    } else if (strstr(name, "temp_") || !strncmp(name, "transformer_in.", 15)) {
        u->is_3d = true;
    }
    if (sscanf(name, "down_blocks.%d.resnets.%d.%199s", &b, &l, rest) == 3 && b >= 0 && b < MEM_MAX_BLOCKS &&
        l >= 0 && l < MEM_MAX_LAYERS && !strcmp(rest, "conv1.weight")) {
        if (b + 1 > u->n_down) u->n_down = b + 1;
        if (l + 1 > u->down_layers[b]) u->down_layers[b] = l + 1;
        u->down_out[b] = (int)shape[0];
    } else if (sscanf(name, "down_blocks.%d.attentions.%d.%199s", &b, &l, rest) == 3 && b >= 0 && b < MEM_MAX_BLOCKS &&
               !strcmp(rest, "transformer_blocks.0.ff.net.0.proj.weight")) {
        u->down_ffi[b] = (int)(shape[0] / 2);
    } else if (sscanf(name, "down_blocks.%d.downsamplers.0.%199s", &b, rest) == 2 && b >= 0 && b < MEM_MAX_BLOCKS) {
        u->down_has_down[b] = true;
    } else if (sscanf(name, "up_blocks.%d.resnets.%d.%199s", &b, &l, rest) == 3 && b >= 0 && b < MEM_MAX_BLOCKS &&
               l >= 0 && l <= MEM_MAX_LAYERS && !strcmp(rest, "conv1.weight") && rank >= 2) {
        if (b + 1 > u->n_up) u->n_up = b + 1;
        if (l + 1 > u->up_layers[b]) u->up_layers[b] = l + 1;
        u->up_out[b] = (int)shape[0];
        u->up_in[b][l] = (int)shape[1];
    } else if (sscanf(name, "up_blocks.%d.attentions.%d.%199s", &b, &l, rest) == 3 && b >= 0 && b < MEM_MAX_BLOCKS &&
               !strcmp(rest, "transformer_blocks.0.ff.net.0.proj.weight")) {
        u->up_ffi[b] = (int)(shape[0] / 2);
    } else if (sscanf(name, "up_blocks.%d.upsamplers.0.%199s", &b, rest) == 2 && b >= 0 && b < MEM_MAX_BLOCKS) {
        u->up_has_up[b] = true;
    } else if (!strcmp(name, "mid_block.resnets.0.conv1.weight")) {
        u->mid_ch = (int)shape[0];
    } else if (!strcmp(name, "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight")) {
        u->mid_ffi = (int)(shape[0] / 2);
    }
    return NGPT_OK;
}

/* Working set of a Transformer2DModel over A = C x positions: x, y, norm/permute, proj_in output,
 * the block's norm and attention output, GEGLU's projection (2 ffi) and gate (ffi); the
 * attention's q, k, v, o (4A) fit under that. */
static double tr_ws(double C, double ffi, double pos)
{
    double r = ffi > 0 ? ffi / C : 4;
    return maxd(5 + 3 * r, 10) * C * pos;
}

/* Peak activation elements of one UNet forward per batch item (x frames for 3-D) at a latent of
 * h x w: the skip stack (every down-path output is kept until its up block) + the largest block's
 * working set (resnet: input, norm, conv1 output, output, 3 x the concatenated input in the up path;
 * transformer: tr_ws; 3-D: two more copies of the activation for the temporal layers) + the
 * input, time embedding and output. */
static double unet_ws(const unet_shape *u, double h, double w)
{
    double hw[MEM_MAX_BLOCKS + 1];
    double hh = h, ww = w;
    for (int i = 0; i <= MEM_MAX_BLOCKS; i++) {
        hw[i] = hh * ww;
        hh = hh > 1 ? (double)(((int64_t)hh + 1) / 2) : 1;
        ww = ww > 1 ? (double)(((int64_t)ww + 1) / 2) : 1;
    }
    const double t3 = u->is_3d ? 2 : 0;
    double skip = u->c0 * hw[0], ws = 0;
    if (u->is_3d) ws = maxd(ws, tr_ws(u->c0, 0, hw[0]));  /* transformer_in */
    double cin = u->c0;
    for (int b = 0; b < u->n_down; b++) {
        double C = u->down_out[b];
        for (int l = 0; l < u->down_layers[b]; l++) {
            ws = maxd(ws, (2 * cin + 2 * C + t3 * C) * hw[b]);
            if (u->down_ffi[b]) ws = maxd(ws, tr_ws(C, u->down_ffi[b], hw[b]) + t3 * C * hw[b]);
            skip += C * hw[b];
            cin = C;
        }
        if (u->down_has_down[b]) {
            ws = maxd(ws, C * (hw[b] + hw[b + 1]));
            skip += C * hw[b + 1];
        }
    }
    int lv = u->n_down ? u->n_down - 1 : 0;
    if (u->mid_ch) {
        ws = maxd(ws, (4 + t3) * u->mid_ch * hw[lv]);
        if (u->mid_ffi) ws = maxd(ws, tr_ws(u->mid_ch, u->mid_ffi, hw[lv]) + t3 * u->mid_ch * hw[lv]);
    }
    for (int b = 0; b < u->n_up; b++) {
        double C = u->up_out[b];
        for (int l = 0; l < u->up_layers[b]; l++) {
            ws = maxd(ws, (3.0 * u->up_in[b][l] + 2 * C + t3 * C) * hw[lv]);
            if (u->up_ffi[b]) ws = maxd(ws, tr_ws(C, u->up_ffi[b], hw[lv]) + t3 * C * hw[lv]);
        }
        if (u->up_has_up[b] && lv > 0) {
            ws = maxd(ws, C * (hw[lv] + 2 * hw[lv - 1]));
            lv--;
        }
    }
    return skip + ws + (2.0 * u->in_ch + 4.0 * u->c0) * hw[0];
}

/* diffusers AutoencoderKL: the decoder's parameters and its peak activation elements at a latent
 * of h x w (every tensor of the largest step: a resnet's input, norm output, conv1 output and
 * output, or an upsampler's input, nearest-x2 output and conv output), plus post_quant_conv. */
typedef struct vae_shape {
    int    boc[MEM_MAX_BLOCKS], n, layers, latent, out_ch;
    double params, mats;  /* mats: of the conv filters and attention matrices */
} vae_shape;

static ngpt_status read_vae(vae_shape *v, const char *dir, const char *sub)
{
    char file[4096];
    json_t *j = NULL;
    NX_TRY(load_config(&j, dir, sub, file, sizeof file));
    int64_t x, boc[MEM_MAX_BLOCKS];
    size_t nb = 0;
    ngpt_status s = cfg_size(j, "layers_per_block", file, 1, &x);
    if (s == NGPT_OK) v->layers = (int)x;
    if (s == NGPT_OK && (s = cfg_size(j, "latent_channels", file, 4, &x)) == NGPT_OK) v->latent = (int)x;
    if (s == NGPT_OK && (s = cfg_size(j, "out_channels", file, 3, &x)) == NGPT_OK) v->out_ch = (int)x;
    if (s == NGPT_OK && json_object_get(j, "block_out_channels")) {
        s = nx_json_int_array(j, "block_out_channels", file, boc, MEM_MAX_BLOCKS, &nb);
        if (s == NGPT_OK && nb == 0) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'block_out_channels' is empty", file);
        for (size_t i = 0; s == NGPT_OK && i < nb; i++)
            if (boc[i] < 1 || boc[i] > 65536)
                s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'block_out_channels' entry %lld", file, (long long)boc[i]);
    } else if (s == NGPT_OK) {
        boc[0] = 64;
        nb = 1;
    }
    json_decref(j);
    NX_TRY(s);
    v->n = (int)nb;
    for (size_t i = 0; i < nb; i++) v->boc[i] = (int)boc[i];
    /* parameters: post_quant_conv, conv_in, mid (2 resnets + attention), up blocks, norm_out, conv_out */
    const double Lc = v->latent, Cn = v->boc[nb - 1];
#define RES(ci, co) (2 * (ci) + 9 * (ci) * (co) + (co) + 2 * (co) + 9 * (co) * (co) + (co) + ((ci) != (co) ? (ci) * (co) + (co) : 0))
#define RESM(ci, co) (9 * (ci) * (co) + 9 * (co) * (co) + ((ci) != (co) ? (ci) * (co) : 0))
    double p = Lc * Lc + Lc + 9 * Lc * Cn + Cn + 2 * RES(Cn, Cn) + 2 * Cn + 4 * (Cn * Cn + Cn);
    double mats = Lc * Lc + 9 * Lc * Cn + 2 * RESM(Cn, Cn) + 4 * Cn * Cn;
    double prev = Cn;
    for (int i = 0; i < v->n; i++) {
        double C = v->boc[v->n - 1 - i];
        for (int l = 0; l <= v->layers; l++) {
            p += RES(l == 0 ? prev : C, C);
            mats += RESM(l == 0 ? prev : C, C);
        }
        if (i < v->n - 1) p += 9 * C * C + C, mats += 9 * C * C;
        prev = C;
    }
    p += 2 * v->boc[0] + 9 * (double)v->boc[0] * v->out_ch + v->out_ch;
    mats += 9 * (double)v->boc[0] * v->out_ch;
#undef RES
#undef RESM
    v->params = p;
    v->mats = mats;
    return NGPT_OK;
}

/* cpu: a Winograd 3x3 convolution (lib/ops/cpu/conv.c) holds its scratchpad and blocked copies of
 * its input and output, (36/16 + 1) (C_in + C_out) floats per pixel, up to the stripe budget
 * past which it runs in row stripes (winograd_run) — measured, these were most of an SD decode's
 * CPU peak before the stripes (bench/pipeline_memory). */
static double wino_ws(double ci, double co, double hw)
{
    return mind(3.25 * (ci + co) * hw, (double)nx_cpu_conv_winograd_stripe(NULL) / sizeof(float));
}

static double vae_ws(const vae_shape *v, double h, double w, double score_elems, bool cpu)
{
    /* the mid-block at the latent size: its attention (one head of width Cn over h*w positions)
     * with score_elems per score where the kernel materialises them — alive only there */
    double hw = h * w, Cn = v->boc[v->n - 1], ws = 5 * Cn * hw + score_elems * hw * hw, prev = Cn;
    for (int i = 0; i < v->n; i++) {
        double C = v->boc[v->n - 1 - i];
        for (int l = 0; l <= v->layers; l++) {
            double ci = l == 0 ? prev : C;
            ws = maxd(ws, (2 * ci + 2 * C) * hw + (cpu ? wino_ws(ci, C, hw) : 0));
        }
        if (i < v->n - 1) {
            ws = maxd(ws, C * hw + 2 * C * 4 * hw);
            hw *= 4;
        }
        prev = C;
    }
    return ws + (double)v->out_ch * hw + v->latent * h * w * 2;
}

/* CLIPTextModel (image, video) or ClapTextModelWithProjection (audio) parameters. */
static ngpt_status text_params(const char *dir, bool clap, double *params, double *work)
{
    char file[4096];
    json_t *j = NULL;
    NX_TRY(load_config(&j, dir, "text_encoder", file, sizeof file));
    int64_t V = 0, D = 0, I = 0, L = 0, P = 0, T = 1, proj = 0;
    ngpt_status s = cfg_size(j, "vocab_size", file, 49408, &V);
    if (s == NGPT_OK) s = cfg_size(j, "hidden_size", file, 512, &D);
    if (s == NGPT_OK) s = cfg_size(j, "intermediate_size", file, 2048, &I);
    if (s == NGPT_OK) s = cfg_size(j, "num_hidden_layers", file, 12, &L);
    if (s == NGPT_OK) s = cfg_size(j, "max_position_embeddings", file, 77, &P);
    if (s == NGPT_OK && clap) s = cfg_size(j, "type_vocab_size", file, 1, &T);
    if (s == NGPT_OK && clap) s = cfg_size(j, "projection_dim", file, 512, &proj);
    json_decref(j);
    NX_TRY(s);
    const double d = (double)D, layer = 4 * d * d + 4 * d + 4 * d + 2 * d * (double)I + (double)I + d;
    *params = (double)V * d + (double)P * d + (double)L * layer + 2 * d;
    if (clap) *params += (double)T * d + d * d + d + d * (double)proj + (double)proj + (double)proj * proj + (double)proj;
    /* one pass over at most max_position tokens: x, norm, q, k, v, o, the MLP's [S, I] */
    *work = (double)P * (6 * d + 2 * (double)I) + (double)P * P;
    return NGPT_OK;
}

/* The safety checker's vision tower (NGPT_PIPELINE_SAFETY_CHECKER): parameters, and the peak
 * activation elements of one image (the pipeline checks its one image per output). */
static ngpt_status safety_params(const char *dir, double *params, double *work)
{
    char sc[4096];
    snprintf(sc, sizeof sc, "%s/safety_checker", dir);
    if (!nx_is_dir(sc)) return nx_err(NGPT_ERR_NOT_FOUND, "%s: folder not found (NGPT_PIPELINE_SAFETY_CHECKER)", sc);
    nx_safety_config c;
    NX_TRY(nx_safety_read_config(&c, sc));
    const double d = c.enc.hidden, I = c.enc.inter, S = c.image_size, p = c.patch, G = (double)(c.image_size / c.patch);
    const double T = G * G + 1, layer = 4 * d * d + 4 * d + 4 * d + 2 * d * I + I + d;
    /* patch conv, positions, class row, two LayerNorms, the layers, the projection, the 17 + 3
     * concept rows and their thresholds (SD 1.5's counts: the configs do not say) */
    *params = d * 3 * p * p + T * d + d + 4 * d + c.enc.layers * layer + c.proj * d + 20 * (c.proj + 1);
    /* the pixels (F32 + the compute dtype), the patch grid twice, x, norm, q, k, v, o, the MLP */
    *work = 2 * 3 * S * S + 2 * G * G * d + T * (6 * d + I) + T * T * c.enc.heads;
    return NGPT_OK;
}

/* SpeechT5HifiGan: its mel bins, samples per mel frame, parameters, and the peak activation
 * elements for the mel frames of `secs` seconds (rounded up to a multiple of the VAE factor sc, as
 * ngpt_decoder_generate does; *frames gets that count). */
typedef struct voc_shape {
    double n_mels, hop, frames, params, work;  /* hop: samples per mel frame */
    double up, up_gemm, vecs; /* the upsamplers' weights, their GEMM copies (hifigan.c, channels
                               * last: taps padded to a multiple of the rate), the vectors */
} voc_shape;

static ngpt_status read_vocoder(voc_shape *o, const char *dir, double secs, double sc)
{
    char vdir[4096];
    if (snprintf(vdir, sizeof vdir, "%s/vocoder", dir) >= (int)sizeof vdir)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "path too long: %s", dir);
    nx_hifigan_config c;
    NX_TRY(nx_hifigan_read_config(&c, vdir)); /* checked as the loader checks it: rates, kernels >= 1 */
    const double in = c.model_in_dim, C0 = c.upsample_initial_channel;
    double hop = 1;
    for (int i = 0; i < c.n_up; i++) hop *= c.upsample_rates[i];
    const int64_t isc = (int64_t)sc; /* secs <= 60 and hop / sr > 0: the frame count fits */
    const int64_t T0 = (int64_t)(secs / (hop / (double)c.sampling_rate));
    const double T = (double)((T0 + isc - 1) / isc * isc);
    double p = 7.0 * in * C0 + C0 + 2.0 * in, w = 0, C = C0, len = T, up = 0, up_gemm = 0, vecs = C0 + 2.0 * in + 1;
    for (int i = 0; i < c.n_up; i++) {
        double Co = C / 2;
        const int u = c.upsample_rates[i], ku = c.upsample_kernel_sizes[i];
        p += C * Co * ku + Co;
        up += C * Co * ku;
        up_gemm += C * Co * (double)((ku + u - 1) / u * u);
        vecs += Co;
        for (int k = 0; k < c.n_k; k++) {
            p += 2.0 * c.n_d[k] * (Co * Co * c.resblock_kernel_sizes[k] + Co);
            vecs += 2.0 * c.n_d[k] * Co;
        }
        len *= c.upsample_rates[i];
        w = maxd(w, C * len / c.upsample_rates[i] + 5 * Co * len); /* input, upsampled, resblock temporaries, sum */
        C = Co;
    }
    p += 7 * C + 1;
    *o = (voc_shape){in, hop, T, p, w, up, up_gemm, vecs};
    return NGPT_OK;
}

static ngpt_status est_decoder(const mem_env *E, const char *dir, ngpt_modality m, mem_part *P)
{
    if (!nx_is_dir(dir)) return nx_err(NGPT_ERR_NOT_FOUND, "%s: decoder folder not found", dir);
    char file[4096];
    snprintf(file, sizeof file, "%s/unet/config.json", dir);
    if (!nx_is_file(file)) return nx_err(NGPT_ERR_NOT_FOUND, "%s: not found", file);
    unet_shape u;
    memset(&u, 0, sizeof u);
    NX_TRY(nx_unet_list_tensors(file, unet_record, &u));
    vae_shape v;
    memset(&v, 0, sizeof v);
    NX_TRY(read_vae(&v, dir, "vae"));
    const double sc = (double)(1 << (v.n - 1));
    double text = 0, text_work = 0;
    voc_shape voc = {0};
    char te[4096], tk[4096];
    snprintf(te, sizeof te, "%s/text_encoder", dir);
    snprintf(tk, sizeof tk, "%s/tokenizer", dir);
    if (nx_is_dir(te) && nx_is_dir(tk)) NX_TRY(text_params(dir, m == NGPT_MODALITY_AUDIO, &text, &text_work));
    /* latent size, batch 2 (classifier-free guidance), frames */
    double h, w, frames = 1, out_elems;
    if (m == NGPT_MODALITY_AUDIO) {
        double secs = E->p->audio_length_s > 0 ? E->p->audio_length_s : 5.0;
        snprintf(file, sizeof file, "%s/vocoder/config.json", dir);
        if (!nx_is_file(file)) return nx_err(NGPT_ERR_NOT_FOUND, "%s: not found (an audio decoder needs its vocoder)", file);
        NX_TRY(read_vocoder(&voc, dir, secs, sc));
        h = voc.frames / sc;
        w = voc.n_mels / sc;
        out_elems = voc.frames * voc.n_mels + voc.frames * voc.hop * 2;  /* mel, wave (+ a copy) */
    } else {
        double sample = 64;
        bool video = m == NGPT_MODALITY_VIDEO;
        {
            json_t *j = NULL;
            int64_t x = 64;
            NX_TRY(load_config(&j, dir, "unet", file, sizeof file));
            ngpt_status s = nx_decoder_sample_size(j, file, video ? NGPT_DECODER_VIDEO : NGPT_DECODER_IMAGE, &x);
            json_decref(j);
            NX_TRY(s);
            sample = (double)x;
        }
        double H = E->p->height ? E->p->height : (video ? 320 : sample * sc);
        double W = E->p->width ? E->p->width : (video ? 576 : sample * sc);
        if (video) frames = E->p->num_frames ? E->p->num_frames : 24;
        h = (double)(int64_t)(H / sc);
        w = (double)(int64_t)(W / sc);
        out_elems = frames * 3 * H * W * (video ? 2 : 1);
    }
    const double B = 2;  /* CFG: the unconditional and the conditional branch in one batch */
    const double act = (double)E->act;
    double unet_work = B * frames * unet_ws(&u, h, w) * act;
    /* the mid-block attention's scores exist only where the kernel materialises them: CUDA's
     * single-head D > 256 path (F32 scores + probabilities in the compute dtype) */
    const double score_elems = E->cuda && v.boc[v.n - 1] > 256 ? (4.0 + act) / act : 0;
    double vae_work = vae_ws(&v, h, w, score_elems, !E->cuda) * act;
    /* the loop (decoder_generate.c): F32 latents, the UNet's F32 input and output at batch 2B, up
     * to six scheduler state buffers, and the input and output again in the compute dtype when
     * that is narrower; the text conditioning; the video VAE decodes frame by frame into
     * [F, 3, H, W] and permutes it; the output in F32 */
    const double lat = frames * u.in_ch * h * w;
    double loop = (1 + 2 * B + 2 * B + 6 * B) * lat * 4.0 + (act < 4.0 ? 4 * B * lat * act : 0.0) + 2 * 77 * 1024 * act;
    double stage_work = maxd(unet_work, vae_work + out_elems * act) + loop + out_elems * 4.0;
    if (m == NGPT_MODALITY_AUDIO) stage_work = maxd(stage_work, voc.work * 4.0 + loop + out_elems * 4.0);
    /* weights: stored F32 (diffusers' default); on CUDA converted to F16/BF16 when asked; the
     * vocoder and CLAP stay F32. The pipeline releases the text encoder once it has the embedding
     * of "" (NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER): its weights (CUDA; mapped on the CPU) are
     * held only while the decoder loads, with the UNet and VAE — counted as working memory. */
    const double conv = E->cuda && E->p->compute_dtype != NGPT_DTYPE_F32 ? act : 4.0;
    const double text_bytes = E->cuda ? text * (m == NGPT_MODALITY_AUDIO ? 4.0 : conv) : 0;
    stage_work = maxd(stage_work, text_bytes + text_work * act);
    double checker = 0, checker_work = 0;  /* after the VAE, beside the output */
    if (m == NGPT_MODALITY_IMAGE && (E->p->flags & NGPT_PIPELINE_SAFETY_CHECKER)) {
        NX_TRY(safety_params(dir, &checker, &checker_work));
        stage_work = maxd(stage_work, out_elems * 4.0 * 2 + checker_work * act);
    }
    P->weights = (uint64_t)((u.params + v.params + checker) * conv + (m == NGPT_MODALITY_AUDIO ? voc.params : 0) * 4.0);
    P->mapped = E->cuda ? 0 : P->weights;
    if (!E->cuda && E->p->compute_dtype == NGPT_DTYPE_BF16) {
        /* the CPU's BF16 decoders: the UNet's and VAE's matrices and filters converted to BF16 at
         * create (owned); their vectors and the checker stay views of the files. The vocoder too,
         * except with AMX (decoder.c): its filters and its upsamplers' GEMM copies in BF16, the
         * upsamplers' own weights and the vectors mapped */
        const double mats = u.mats + v.mats;
        const bool voc16 = m == NGPT_MODALITY_AUDIO && nx_decoder_vocoder_bf16(NGPT_BACKEND_CPU, E->p->compute_dtype);
        const double voc_mapped = m != NGPT_MODALITY_AUDIO ? 0 : voc16 ? voc.up + voc.vecs : voc.params;
        const double voc_owned = voc16 ? (voc.params - voc.up - voc.vecs + voc.up_gemm) * 2.0 : 0;
        P->mapped = (uint64_t)((u.params + v.params - mats + checker + voc_mapped) * 4.0);
        P->weights = P->mapped + (uint64_t)(mats * 2.0 + voc_owned);
    }
    P->work = (uint64_t)stage_work;
    P->present = 1;
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The estimate
 * ------------------------------------------------------------------------------------------- */

static uint64_t resident(const mem_part *P)
{
    return (P->weights - P->mapped) + P->kv + (P->work_kept ? P->work : 0);
}

static ngpt_status estimate(ngpt_memory_estimate *e, const char *dir)
{
    const ngpt_memory_params *p = &e->p;
    mem_env E = {p, p->backend == NGPT_BACKEND_CUDA, 4};
    if (E.cuda) E.act = dsize(p->compute_dtype);
    char *manifest = path_join(dir, "bundle.json");
    if (!manifest) return NGPT_ERR_OUT_OF_MEMORY;
    json_t *j = NULL;
    ngpt_status s = nx_is_file(manifest) ? nx_json_load_file(&j, manifest)
                                      : nx_err(NGPT_ERR_NOT_FOUND, "%s: not found", manifest);
    if (s == NGPT_OK && !json_is_object(j)) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: not a JSON object", manifest);
    if (s == NGPT_OK) s = nx_bundle_check_manifest(j, manifest);
    static const char *const key[] = {"llm", "imagebind", "projectors", "delta"};
    char *path[4] = {0};
    for (int i = 0; s == NGPT_OK && i < 4; i++) {
        const json_t *v = json_object_get(j, key[i]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_string(v)) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is not a string or null", manifest, key[i]);
        else if (!(path[i] = path_join(dir, json_string_value(v)))) s = NGPT_ERR_OUT_OF_MEMORY;
    }
    if (s == NGPT_OK && !path[0]) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'llm' (the language model folder) is required", manifest);
    if (s == NGPT_OK && !path[1]) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'imagebind' is required", manifest);
    if (s == NGPT_OK && !path[2] && !path[3])
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'projectors' is required when there is no 'delta'", manifest);
    if (s == NGPT_OK) s = nx_err_wrap(est_backbone(&E, path[0], path[3] != NULL, &e->part[NGPT_MEMORY_BACKBONE]),
                                      "language model (%s): ", path[0]);
    if (s == NGPT_OK) s = nx_err_wrap(est_encoder(&E, path[1], &e->part[NGPT_MEMORY_ENCODER]), "imagebind (%s): ", path[1]);
    if (s == NGPT_OK) {
        nx_llama_config c;
        s = nx_llama_read_config(&c, path[0]);
        const char *pp = path[2] ? path[2] : path[3];
        if (s == NGPT_OK) s = nx_err_wrap(est_projector(&E, pp, c.hidden, &e->part[NGPT_MEMORY_PROJECTOR]),
                                          "projectors (%s): ", pp);
    }
    const json_t *d = s == NGPT_OK ? json_object_get(j, "decoders") : NULL;
    if (d && !json_is_null(d) && !json_is_object(d)) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'decoders' is not an object", manifest);
    static const char *const mname[4] = {"text", "image", "audio", "video"};
    for (int m = NGPT_MODALITY_IMAGE; s == NGPT_OK && json_is_object(d) && m <= NGPT_MODALITY_VIDEO; m++) {
        const json_t *v = json_object_get(d, mname[m]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_string(v)) {
            s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'decoders.%s' is not a string or null", manifest, mname[m]);
            break;
        }
        char *dp = path_join(dir, json_string_value(v));
        if (!dp) { s = NGPT_ERR_OUT_OF_MEMORY; break; }
        s = nx_err_wrap(est_decoder(&E, dp, (ngpt_modality)m, &e->part[NGPT_MEMORY_IMAGE_DECODER + m - 1]),
                        "%s decoder (%s): ", mname[m], dp);
        nx_free(dp);
    }
    for (int i = 0; i < 4; i++) nx_free(path[i]);
    json_decref(j);
    nx_free(manifest);
    NX_TRY(s);

    /* Resident: the backbone (+ session), ImageBind, the projectors, and every decoder that is
     * preloaded or runs in the turn (a lazily loaded decoder stays loaded). Each stage adds its
     * working memory on top; the decode stage of the largest decoder that runs. */
    uint64_t res = 0, dec_work = 0;
    for (int i = 0; i < NGPT_MEMORY_PART_COUNT; i++) {
        const mem_part *P = &e->part[i];
        e->mapped += P->mapped;
        if (!P->present) continue;
        if (i >= NGPT_MEMORY_IMAGE_DECODER) {
            uint32_t bit = 1u << (uint32_t)(i - NGPT_MEMORY_IMAGE_DECODER + 1);
            if (!((p->preload | p->outputs) & bit)) continue;
            if ((p->outputs & bit) && P->work > dec_work) dec_work = P->work;
        }
        res += resident(P);
    }
    e->stage[NGPT_PIPELINE_STAGE_LOAD] = res;
    e->stage[NGPT_PIPELINE_STAGE_ENCODE] = res + e->part[NGPT_MEMORY_ENCODER].work;
    e->stage[NGPT_PIPELINE_STAGE_PROJECT] = res + e->part[NGPT_MEMORY_PROJECTOR].work;
    e->stage[NGPT_PIPELINE_STAGE_LLM] = res;  /* the scratch is resident already */
    e->stage[NGPT_PIPELINE_STAGE_DECODE] = res + dec_work;
    e->stage[NGPT_PIPELINE_STAGE_MEDIA_OUT] = res;
    e->overhead = E.cuda ? MEM_CUDA_OVERHEAD : 0;
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_pipeline_estimate_memory(ngpt_memory_estimate **out, const char *bundle_dir,
                                                   const ngpt_memory_params *params)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_estimate_memory: out is NULL");
    *out = NULL;
    if (!bundle_dir) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_estimate_memory: bundle_dir is NULL");
    ngpt_memory_estimate *e = nx_calloc(1, sizeof *e);
    if (!e) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_estimate_memory: out of memory");
    ngpt_status s = nx_params_read(&e->p, params, &k_mem_params, sizeof e->p, "ngpt_pipeline_estimate_memory");
    const ngpt_memory_params *p = &e->p;
    const uint32_t bits = (1u << NGPT_MODALITY_IMAGE) | (1u << NGPT_MODALITY_AUDIO) | (1u << NGPT_MODALITY_VIDEO);
    if (s == NGPT_OK && p->backend != NGPT_BACKEND_CPU && p->backend != NGPT_BACKEND_CUDA)
        s = nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_estimate_memory: backend %d is not CPU or CUDA", (int)p->backend);
    else if (s == NGPT_OK && p->compute_dtype != NGPT_DTYPE_F32 && p->compute_dtype != NGPT_DTYPE_F16 &&
             p->compute_dtype != NGPT_DTYPE_BF16)
        s = nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_estimate_memory: compute_dtype %s (expected F32, F16 or BF16)",
                   ngpt_dtype_name(p->compute_dtype));
    else if (s == NGPT_OK && p->compute_dtype == NGPT_DTYPE_F16 && p->backend != NGPT_BACKEND_CUDA)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_pipeline_estimate_memory: compute_dtype %s needs the CUDA backend (the "
                   "CPU backend computes in F32 or BF16)", ngpt_dtype_name(p->compute_dtype));
    else if (s == NGPT_OK && ((p->inputs | p->outputs | p->preload) & ~bits))
        s = nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_estimate_memory: inputs, outputs and preload take "
                   "NGPT_PIPELINE_FORCE bits of image, audio, video");
    else if (s == NGPT_OK && (p->n_ctx < 0 || p->n_batch < 0 || p->height < 0 || p->width < 0 || p->num_frames < 0 ||
                              !(p->audio_length_s >= 0 && p->audio_length_s <= 60) || p->num_frames > 256 ||
                              p->height > NX_DECODE_MAX_SIDE || p->width > NX_DECODE_MAX_SIDE || p->height % 8 || p->width % 8))
        s = nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_estimate_memory: a size is out of range or not a multiple of "
                   "8 as the decoders need (n_ctx %d, n_batch %d, "
                   "height %d, width %d, num_frames %d, audio_length_s %g)", (int)p->n_ctx, (int)p->n_batch,
                   (int)p->height, (int)p->width, (int)p->num_frames, p->audio_length_s);
    if (s == NGPT_OK) s = estimate(e, bundle_dir);
    if (s != NGPT_OK) {
        nx_free(e);
        return s;
    }
    *out = e;
    return NGPT_OK;
}

NGPT_API int32_t ngpt_memory_estimate_has_part(const ngpt_memory_estimate *e, ngpt_memory_part part)
{
    return e && (int)part >= 0 && part < NGPT_MEMORY_PART_COUNT ? e->part[part].present : 0;
}

NGPT_API void ngpt_memory_estimate_part(const ngpt_memory_estimate *e, ngpt_memory_part part, uint64_t *weight_bytes,
                                        uint64_t *mapped_bytes, uint64_t *kv_bytes, uint64_t *work_bytes)
{
    const mem_part *P = e && (int)part >= 0 && part < NGPT_MEMORY_PART_COUNT ? &e->part[part] : NULL;
    if (weight_bytes) *weight_bytes = P ? P->weights : 0;
    if (mapped_bytes) *mapped_bytes = P ? P->mapped : 0;
    if (kv_bytes) *kv_bytes = P ? P->kv : 0;
    if (work_bytes) *work_bytes = P ? P->work : 0;
}

NGPT_API uint64_t ngpt_memory_estimate_stage(const ngpt_memory_estimate *e, ngpt_pipeline_stage stage)
{
    return e && (int)stage >= 0 && stage < NGPT_PIPELINE_STAGE_COUNT ? e->stage[stage] : 0;
}

NGPT_API void ngpt_memory_estimate_peak(const ngpt_memory_estimate *e, uint64_t *peak, uint64_t *overhead,
                                        uint64_t *mapped)
{
    uint64_t m = 0;
    for (int i = 0; e && i < NGPT_PIPELINE_STAGE_COUNT; i++)
        if (e->stage[i] > m) m = e->stage[i];
    if (peak) *peak = e ? m + e->overhead : 0;
    if (overhead) *overhead = e ? e->overhead : 0;
    if (mapped) *mapped = e ? e->mapped : 0;
}

NGPT_API void ngpt_memory_estimate_free(ngpt_memory_estimate *e)
{
    nx_free(e);
}
