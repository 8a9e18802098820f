/* imagebind.c — ImageBind-huge's vision and audio branches, written once against the op layer.
 *
 * A faithful port of facebookresearch/ImageBind (imagebind/models/imagebind_model.py,
 * multimodal_preprocessors.py, transformer.py, helpers.py) as NExT-GPT's copy runs it
 * (NExT-GPT-Lagacy/code/model/ImageBind; nextgpt-facts.md §1.2, §7.1), for one clip:
 *
 *   vision  PadIm2Video(repeat, 2): [3,H,W] -> [3,2,H,W]; Conv3d(3->D, k = s = (2,14,14), no bias)
 *           -> 1x16x16 patches, row-major (t,h,w) -> [256, D]
 *   audio   Conv2d(1->D, k 16, s 10, no bias) on [1,128,204] -> 12x19 patches -> [228, D];
 *           LayerNorm(D, eps 1e-5) on the patch tokens
 *   both    prepend CLS, add the learnable pos_embed (CLS included); vision: LayerNorm(eps 1e-6)
 *           blocks (pre-LN, eps 1e-6): x += MHA(LN1 x); x += MLP(LN2 x)
 *             MHA = nn.MultiheadAttention(bias=True, add_bias_kv: audio) over packed in_proj
 *             (q|k|v rows); add_bias_kv appends the learned bias_k / bias_v as one more key / value
 *             (229 queries, 230 keys); softmax(q k^T / sqrt(head_dim)) v, no mask; out_proj
 *             MLP = fc1 (D -> 4D) -> exact GELU -> fc2; no layer scale, drop path only in training
 *           head: LayerNorm(eps 1e-6) -> token 0 -> Linear(D -> out, no bias)
 *           postprocessor: F.normalize(p=2) [upstream audio: x min(exp(log_logit_scale), 100) = 20;
 *           NExT-GPT's copy: not applied]
 *   items   [B, S, ...] inputs are S clips per item: the S normalised vectors are averaged, the
 *           mean is not re-normalised.
 *
 * The head's LayerNorm runs on token 0 only (LayerNorm is per token, so this equals LN-then-select).
 * Weights live in one backend allocation (`blob`) — on the CPU, those already in their dtype are
 * views of the mapped checkpoint instead (ld_upload); matrices keep the checkpoint's dtype (F32,
 * F16 or BF16), norms, biases and embeddings are F32. With an F16/BF16 activation dtype (CUDA)
 * the matrices, the embeddings, the blocks' linear biases and the activations are in that dtype
 * (converted once at load, so GEMMs, convolutions and attention run one dtype on tensor cores and
 * cuBLASLt adds the biases in the GEMMs' epilogues); norms stay F32 (the kernels read them in
 * their own dtype) and the head output is widened to F32 before the normalisation.
 */
#include "imagebind.h"

#include "../core/fs.h"
#include "../core/alloc.h"
#include "../core/dtype.h"
#include "../core/json.h"
#include "../core/weights.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define IB_CHUNK 16  /* clips per forward pass: bounds activation memory */

static const char *const ib_name[NX_IB_N] = {"vision", "audio"};

// ----------------------------------------------------------------------------
// weights

typedef struct ib_block {
    nx_tensor norm_1_w, norm_1_b;  // (D)
    nx_tensor in_proj_w;           // (3D, D) rows q | k | v
    nx_tensor in_proj_b;           // (3D)
    nx_tensor wq, wk, wv;          // views of in_proj_w, (D, D) each
    nx_tensor bq, bk, bv;          // views of in_proj_b, (D) each
    nx_tensor bias_k, bias_v;      // (1, D), add_bias_kv only
    nx_tensor out_w, out_b;        // (D, D), (D)
    nx_tensor norm_2_w, norm_2_b;  // (D)
    nx_tensor fc1_w, fc1_b;        // (R*D, D), (R*D)
    nx_tensor fc2_w, fc2_b;        // (D, R*D), (D)
} ib_block;

typedef struct ib_branch {
    bool      loaded;
    int       D, H, R, n_blocks;
    int64_t   grid[3];                  // patch grid: vision (t, h, w), audio (1, h, w)
    int64_t   n_patch;                  // product of grid
    nx_tensor stem_w;                   // vision (D, 3, kt, kh, kw); audio (D, 1, k, k)
    nx_tensor stem_norm_w, stem_norm_b; // audio (D)
    nx_tensor cls_pos;                  // (1, D) = cls_token + pos_embed[0]
    nx_tensor pos_patch;                // (1, n_patch, D) = pos_embed[1:]
    nx_tensor pre_ln_w, pre_ln_b;       // (D), pre_transformer_ln only
    ib_block *blocks;                   // (n_blocks)
    nx_tensor head_norm_w, head_norm_b; // (D)
    nx_tensor head_w;                   // (out, D)
    float     logit_scale;              // 0 = none (NExT-GPT); else the upstream scale
} ib_branch;

struct nx_imagebind {
    nx_backend         *be;
    nx_imagebind_config cfg;
    char               *file;           // the checkpoint (for messages)
    ib_branch           br[NX_IB_N];
    nx_tensor           blob;           // every tensor above that is not a view of w, one allocation
    nx_weights         *w;              // the open checkpoint (CPU: matrices are views of its mapping)
    nx_tensor           zero_ids;       // I32 (IB_CHUNK) zeros: get_rows ids broadcasting a (1, D) row
    nx_tensor           zero_frames;    // (1, 1, video_frames, 1, 1): PadIm2Video's repeat by broadcast
    ngpt_dtype          cdt;            // activation dtype: F32, or F16/BF16 (CUDA)
    bool                pack;           // CPU BF16 matrices: the blocks' linears packed (pack_matrices)
};

void nx_imagebind_config_huge(nx_imagebind_config *c)
{
    memset(c, 0, sizeof *c);
    c->out_embed_dim = 1024;
    c->embed_dim[NX_IB_VISION] = 1280;
    c->num_blocks[NX_IB_VISION] = 32;
    c->num_heads[NX_IB_VISION] = 16;
    c->embed_dim[NX_IB_AUDIO] = 768;
    c->num_blocks[NX_IB_AUDIO] = 12;
    c->num_heads[NX_IB_AUDIO] = 12;
    c->pre_transformer_ln[NX_IB_VISION] = true;
    c->add_bias_kv[NX_IB_AUDIO] = true;
    c->video_frames = 2;
    c->kernel_size[0] = 2;
    c->kernel_size[1] = 14;
    c->kernel_size[2] = 14;
    c->image_size = 224;
    c->audio_kernel_size = 16;
    c->audio_stride = 10;
    c->audio_num_mel_bins = 128;
    c->audio_target_len = 204;
    c->mlp_ratio = 4;
    c->layer_norm_eps = 1e-6f;
    c->audio_stem_layer_norm_eps = 1e-5f;
    c->audio_logit_scale_applied = false;
}

static ngpt_status cfg_int(const json_t *j, const char *key, const char *file, int *v)
{
    int64_t x;
    NX_TRY(nx_json_int_opt(j, key, file, *v, &x));
    if (x < 1 || x > (1 << 20)) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' = %lld is out of range", file, key, (long long)x);
    *v = (int)x;
    return NGPT_OK;
}

static ngpt_status cfg_float(const json_t *j, const char *key, const char *file, float *v)
{
    double x;
    NX_TRY(nx_json_num_opt(j, key, file, *v, &x));
    if (!(x > 0.0 && x < 1.0)) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' = %g is out of range (0, 1)", file, key, x);
    *v = (float)x;
    return NGPT_OK;
}

/* config.json: ImageBindModel's constructor arguments (absent keys: imagebind_huge). */
static ngpt_status read_config(nx_imagebind_config *c, const char *file)
{
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, file));
    ngpt_status s = json_is_object(j) ? NGPT_OK : nx_err(NGPT_ERR_BAD_FORMAT, "%s: not a JSON object", file);
    const char *type = NULL;
    if (s == NGPT_OK) s = nx_json_str_opt(j, "model_type", file, "imagebind", &type);
    if (s == NGPT_OK && strcmp(type, "imagebind") != 0)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: model_type '%s' is not imagebind", file, type);
    if (s == NGPT_OK) s = cfg_int(j, "out_embed_dim", file, &c->out_embed_dim);
    if (s == NGPT_OK) s = cfg_int(j, "vision_embed_dim", file, &c->embed_dim[NX_IB_VISION]);
    if (s == NGPT_OK) s = cfg_int(j, "vision_num_blocks", file, &c->num_blocks[NX_IB_VISION]);
    if (s == NGPT_OK) s = cfg_int(j, "vision_num_heads", file, &c->num_heads[NX_IB_VISION]);
    if (s == NGPT_OK) s = cfg_int(j, "audio_embed_dim", file, &c->embed_dim[NX_IB_AUDIO]);
    if (s == NGPT_OK) s = cfg_int(j, "audio_num_blocks", file, &c->num_blocks[NX_IB_AUDIO]);
    if (s == NGPT_OK) s = cfg_int(j, "audio_num_heads", file, &c->num_heads[NX_IB_AUDIO]);
    if (s == NGPT_OK) s = cfg_int(j, "video_frames", file, &c->video_frames);
    if (s == NGPT_OK) s = cfg_int(j, "image_size", file, &c->image_size);
    if (s == NGPT_OK) s = cfg_int(j, "audio_kernel_size", file, &c->audio_kernel_size);
    if (s == NGPT_OK) s = cfg_int(j, "audio_stride", file, &c->audio_stride);
    if (s == NGPT_OK) s = cfg_int(j, "audio_num_mel_bins", file, &c->audio_num_mel_bins);
    if (s == NGPT_OK) s = cfg_int(j, "audio_target_len", file, &c->audio_target_len);
    if (s == NGPT_OK) s = cfg_int(j, "mlp_ratio", file, &c->mlp_ratio);
    if (s == NGPT_OK) s = cfg_float(j, "layer_norm_eps", file, &c->layer_norm_eps);
    if (s == NGPT_OK) s = cfg_float(j, "audio_stem_layer_norm_eps", file, &c->audio_stem_layer_norm_eps);
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "vision_pre_transformer_ln", file, c->pre_transformer_ln[NX_IB_VISION], &c->pre_transformer_ln[NX_IB_VISION]);
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "audio_pre_transformer_ln", file, c->pre_transformer_ln[NX_IB_AUDIO], &c->pre_transformer_ln[NX_IB_AUDIO]);
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "vision_add_bias_kv", file, c->add_bias_kv[NX_IB_VISION], &c->add_bias_kv[NX_IB_VISION]);
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "audio_add_bias_kv", file, c->add_bias_kv[NX_IB_AUDIO], &c->add_bias_kv[NX_IB_AUDIO]);
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "audio_logit_scale_applied", file, c->audio_logit_scale_applied, &c->audio_logit_scale_applied);
    if (s == NGPT_OK && json_object_get(j, "kernel_size")) {
        int64_t k[3];
        size_t n = 0;
        s = nx_json_int_array(j, "kernel_size", file, k, 3, &n);
        if (s == NGPT_OK && n != 3) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'kernel_size' has %zu entries, expected 3", file, n);
        for (int i = 0; s == NGPT_OK && i < 3; i++) {
            if (k[i] < 1 || k[i] > 4096) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'kernel_size' entry %lld is out of range", file, (long long)k[i]);
            else c->kernel_size[i] = (int)k[i];
        }
    }
    for (int m = 0; s == NGPT_OK && m < NX_IB_N; m++)
        if (c->embed_dim[m] % c->num_heads[m])
            s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: %s_embed_dim %d is not a multiple of %s_num_heads %d", file, ib_name[m],
                       c->embed_dim[m], ib_name[m], c->num_heads[m]);
    json_decref(j);
    return s;
}

/* Patch grids, from the conv output size formula (floor((in - k) / s) + 1). */
static ngpt_status patch_grid(const nx_imagebind_config *c, int m, int64_t g[3], const char *file)
{
    if (m == NX_IB_VISION) {
        int in[3] = {c->video_frames, c->image_size, c->image_size};
        for (int i = 0; i < 3; i++) {
            if (in[i] < c->kernel_size[i])
                return nx_err(NGPT_ERR_BAD_FORMAT, "%s: vision kernel_size %d is larger than the input (%d)", file,
                              c->kernel_size[i], in[i]);
            g[i] = (in[i] - c->kernel_size[i]) / c->kernel_size[i] + 1;
        }
    } else {
        int k = c->audio_kernel_size, s = c->audio_stride;
        if (c->audio_num_mel_bins < k || c->audio_target_len < k)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: audio_kernel_size %d is larger than the fbank (%d x %d)", file, k,
                          c->audio_num_mel_bins, c->audio_target_len);
        g[0] = 1;
        g[1] = (c->audio_num_mel_bins - k) / s + 1;
        g[2] = (c->audio_target_len - k) / s + 1;
    }
    return NGPT_OK;
}

// ----------------------------------------------------------------------------
// loading: pass 1 lists every tensor (name, dtype, shape, source), pass 2 makes the views, places
// the rest in the blob, allocates it once and uploads

typedef struct ib_item {
    nx_tensor        *dst;
    const nx_wtensor *src;   // from the checkpoint, or
    const void       *host;  // host data of dst's dtype
    size_t            off;   // in the blob (pass 2)
} ib_item;

typedef struct ib_loader {
    nx_weights *w;
    ib_item    *items;
    size_t      n, cap;
    void       *host[8];     // host buffers to free after the upload
    int         n_host;
    ngpt_dtype  mat_dt;      // dtype of the linears' matrices: F32 (0) = as stored
    ngpt_dtype  conv_dt;     // of the stems' filters: F32 (0) = as stored
    ngpt_dtype  bias_dt;     // of the blocks' linear biases: the activation dtype
} ib_loader;

static ngpt_status ld_add(ib_loader *L, nx_tensor *dst, ngpt_dtype dt, int rank, const int64_t *ne,
                          const nx_wtensor *src, const void *host)
{
    if (L->n == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 64;
        ib_item *it = nx_realloc(L->items, cap * sizeof *it);
        if (!it) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "imagebind: out of memory listing tensors");
        L->items = it;
        L->cap = cap;
    }
    *dst = nx_view(dt, rank, ne, NULL, NULL);
    L->items[L->n++] = (ib_item){dst, src, host, 0};
    return NGPT_OK;
}

static void *ld_host(ib_loader *L, size_t nbytes)
{
    if (L->n_host == (int)(sizeof L->host / sizeof L->host[0])) return NULL;
    void *p = nx_calloc(1, nbytes ? nbytes : 1);
    if (p) L->host[L->n_host++] = p;
    return p;
}

/* What ld_get makes of a tensor: F32 (norms, embeddings before their host math, the head's
 * bias), a linear's matrix (mat_dt, or as stored), a stem's conv filter (conv_dt, or as stored), a
 * block's linear bias (bias_dt: in the output's dtype cuBLASLt adds it in the GEMM's epilogue,
 * where it declines an F32 one under F16/BF16 outputs; PyTorch's F16 model holds them so too). */
enum { LD_F32, LD_MAT, LD_CONV, LD_BIAS };

/* Fetch checkpoint tensor `fmt...` of the given shape as `kind` says. */
static ngpt_status ld_get(ib_loader *L, nx_tensor *dst, int kind, const nx_wtensor **srcp, int rank,
                          const int64_t *shape, const char *fmt, ...) NX_PRINTF(7, 8);
static ngpt_status ld_get(ib_loader *L, nx_tensor *dst, int kind, const nx_wtensor **srcp, int rank,
                          const int64_t *shape, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const nx_wtensor *t = NULL;
    NX_TRY(nx_weights_get(L->w, name, NX_FLOAT_DTYPES, rank, shape, &t));
    if (srcp) *srcp = t;
    if (!dst) return NGPT_OK;
    const ngpt_dtype want = kind == LD_MAT ? L->mat_dt : L->conv_dt;
    ngpt_dtype dt = kind == LD_F32    ? NGPT_DTYPE_F32
                    : kind == LD_BIAS ? L->bias_dt
                    : want != NGPT_DTYPE_F32 ? want : t->dtype;
    return ld_add(L, dst, dt, rank, shape, t, NULL);
}

/* On the CPU a checkpoint tensor already in its destination dtype is a view of the mapping (the
 * weights stay open with the model): ImageBind-huge's 2.7 GB of F32 are not copied. The blob
 * holds the rest: converted tensors, the split positional embedding, the constants. */
static bool ld_is_view(const nx_imagebind *m, const ib_item *it)
{
    return m->be->kind == NGPT_BACKEND_CPU && !it->host && it->src->dtype == it->dst->dtype &&
           it->src->nbytes == nx_nbytes(it->dst) && (uintptr_t)it->src->data % 16 == 0 &&
           !(m->pack && it->dst->rank == 2 && it->dst->dtype == NGPT_DTYPE_BF16);  // packed in place: copied
}

static ngpt_status ld_upload(nx_imagebind *m, ib_loader *L)
{
    size_t bytes = 0;
    for (size_t i = 0; i < L->n; i++) {
        ib_item *it = &L->items[i];
        if (ld_is_view(m, it)) {
            it->dst->data = (void *)it->src->data;
            it->dst->be = m->be;
            continue;
        }
        it->off = (bytes + 63) & ~(size_t)63;
        bytes = it->off + nx_nbytes(it->dst);
    }
    int64_t nb = (int64_t)(bytes ? bytes : 1);
    NX_TRY(nx_tensor_alloc(&m->blob, m->be, NGPT_DTYPE_U8, 1, &nb));
    for (size_t i = 0; i < L->n; i++) {
        ib_item *it = &L->items[i];
        if (ld_is_view(m, it)) continue;
        it->dst->data = (char *)m->blob.data + it->off;
        it->dst->be = m->be;
        size_t n = nx_nbytes(it->dst);
        ngpt_dtype dt = it->dst->dtype;
        bool host_same = it->host && (dt == NGPT_DTYPE_F32 || dt == NGPT_DTYPE_I32);  // host data is F32 or I32
        if (host_same || (!it->host && it->src->dtype == dt)) {
            NX_TRY(nx_tensor_upload(it->dst, it->host ? it->host : it->src->data, n));
            continue;
        }
        // convert on the host: through F32, then narrowed when dst is F16/BF16
        size_t count = (size_t)nx_numel(it->dst);
        float *tmp = nx_malloc(count ? count * sizeof(float) : 1);
        if (!tmp)
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "imagebind: out of memory converting %s",
                          it->src ? it->src->name : "an embedding");
        if (it->host) memcpy(tmp, it->host, count * sizeof(float));
        else nx_wtensor_to_f32(it->src, tmp);
        if (dt == NGPT_DTYPE_F16 || dt == NGPT_DTYPE_BF16) {  // in place: 2-byte values over the 4-byte ones
            uint16_t *h = (uint16_t *)tmp;
            for (size_t j = 0; j < count; j++) h[j] = dt == NGPT_DTYPE_F16 ? nx_f32_to_f16(tmp[j]) : nx_f32_to_bf16(tmp[j]);
        }
        ngpt_status s = nx_tensor_upload(it->dst, tmp, n);
        nx_free(tmp);
        NX_TRY(s);
    }
    return NGPT_OK;
}

static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool stored(const nx_weights *w, int m)
{
    char p[64];
    snprintf(p, sizeof p, "modality_trunks.%s.", ib_name[m]);
    for (size_t i = 0; i < nx_weights_count(w); i++)
        if (has_prefix(nx_weights_at(w, i)->name, p)) return true;
    return false;
}

/* List the tensors of branch m (pass 1). */
static ngpt_status list_branch(nx_imagebind *m, ib_loader *L, int mod)
{
    const nx_imagebind_config *c = &m->cfg;
    ib_branch *b = &m->br[mod];
    const char *mn = ib_name[mod];
    int64_t D = c->embed_dim[mod], R = c->mlp_ratio;
    b->D = (int)D;
    b->H = c->num_heads[mod];
    b->R = c->mlp_ratio;
    b->n_blocks = c->num_blocks[mod];
    NX_TRY(patch_grid(c, mod, b->grid, m->file));
    b->n_patch = b->grid[0] * b->grid[1] * b->grid[2];

    // preprocessor: stem, cls + pos (combined on the host: the same one float add torch does)
    if (mod == NX_IB_VISION) {
        int64_t ws[5] = {D, 3, c->kernel_size[0], c->kernel_size[1], c->kernel_size[2]};
        NX_TRY(ld_get(L, &b->stem_w, LD_CONV, NULL, 5, ws, "modality_preprocessors.vision.rgbt_stem.proj.1.weight"));
    } else {
        int64_t ws[4] = {D, 1, c->audio_kernel_size, c->audio_kernel_size}, ns[1] = {D};
        NX_TRY(ld_get(L, &b->stem_w, LD_CONV, NULL, 4, ws, "modality_preprocessors.audio.rgbt_stem.proj.weight"));
        NX_TRY(ld_get(L, &b->stem_norm_w, LD_F32, NULL, 1, ns, "modality_preprocessors.audio.rgbt_stem.norm_layer.weight"));
        NX_TRY(ld_get(L, &b->stem_norm_b, LD_F32, NULL, 1, ns, "modality_preprocessors.audio.rgbt_stem.norm_layer.bias"));
    }
    const nx_wtensor *cls = NULL, *pos = NULL;
    int64_t cs[3] = {1, 1, D}, ps[3] = {1, 1 + b->n_patch, D};
    NX_TRY(ld_get(L, NULL, LD_F32, &cls, 3, cs, "modality_preprocessors.%s.cls_token", mn));
    NX_TRY(ld_get(L, NULL, LD_F32, &pos, 3, ps, "modality_preprocessors.%s.pos_embedding_helper.pos_embed", mn));
    float *pe = ld_host(L, (size_t)((1 + b->n_patch) * D) * sizeof(float));
    float *ct = nx_malloc((size_t)D * sizeof(float));
    if (!pe || !ct) {
        nx_free(ct);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "imagebind: out of memory loading the %s embeddings", mn);
    }
    nx_wtensor_to_f32(pos, pe);
    nx_wtensor_to_f32(cls, ct);
    for (int64_t d = 0; d < D; d++) pe[d] = ct[d] + pe[d];
    nx_free(ct);
    int64_t s1[2] = {1, D}, s2[3] = {1, b->n_patch, D};
    NX_TRY(ld_add(L, &b->cls_pos, m->cdt, 2, s1, NULL, pe));
    NX_TRY(ld_add(L, &b->pos_patch, m->cdt, 3, s2, NULL, pe + D));

    // trunk
    int64_t vd[1] = {D}, v3d[1] = {3 * D}, m3d[2] = {3 * D, D}, mdd[2] = {D, D}, bkv[3] = {1, 1, D};
    int64_t vrd[1] = {R * D}, mrd[2] = {R * D, D}, mdr[2] = {D, R * D};
    const char *tp = "modality_trunks";
    if (c->pre_transformer_ln[mod]) {
        NX_TRY(ld_get(L, &b->pre_ln_w, LD_F32, NULL, 1, vd, "%s.%s.pre_transformer_layer.0.weight", tp, mn));
        NX_TRY(ld_get(L, &b->pre_ln_b, LD_F32, NULL, 1, vd, "%s.%s.pre_transformer_layer.0.bias", tp, mn));
    }
    b->blocks = nx_calloc((size_t)b->n_blocks, sizeof *b->blocks);
    if (!b->blocks) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "imagebind: out of memory (%s blocks)", mn);
    for (int i = 0; i < b->n_blocks; i++) {
        ib_block *k = &b->blocks[i];
        NX_TRY(ld_get(L, &k->norm_1_w, LD_F32, NULL, 1, vd, "%s.%s.blocks.%d.norm_1.weight", tp, mn, i));
        NX_TRY(ld_get(L, &k->norm_1_b, LD_F32, NULL, 1, vd, "%s.%s.blocks.%d.norm_1.bias", tp, mn, i));
        NX_TRY(ld_get(L, &k->in_proj_w, LD_MAT, NULL, 2, m3d, "%s.%s.blocks.%d.attn.in_proj_weight", tp, mn, i));
        NX_TRY(ld_get(L, &k->in_proj_b, LD_BIAS, NULL, 1, v3d, "%s.%s.blocks.%d.attn.in_proj_bias", tp, mn, i));
        if (c->add_bias_kv[mod]) {
            NX_TRY(ld_get(L, &k->bias_k, LD_F32, NULL, 3, bkv, "%s.%s.blocks.%d.attn.bias_k", tp, mn, i));
            NX_TRY(ld_get(L, &k->bias_v, LD_F32, NULL, 3, bkv, "%s.%s.blocks.%d.attn.bias_v", tp, mn, i));
            k->bias_k.rank = k->bias_v.rank = 2;  // (1, 1, D) seen as a (1, D) table
            k->bias_k.ne[1] = k->bias_v.ne[1] = D;
        }
        NX_TRY(ld_get(L, &k->out_w, LD_MAT, NULL, 2, mdd, "%s.%s.blocks.%d.attn.out_proj.weight", tp, mn, i));
        NX_TRY(ld_get(L, &k->out_b, LD_BIAS, NULL, 1, vd, "%s.%s.blocks.%d.attn.out_proj.bias", tp, mn, i));
        NX_TRY(ld_get(L, &k->norm_2_w, LD_F32, NULL, 1, vd, "%s.%s.blocks.%d.norm_2.weight", tp, mn, i));
        NX_TRY(ld_get(L, &k->norm_2_b, LD_F32, NULL, 1, vd, "%s.%s.blocks.%d.norm_2.bias", tp, mn, i));
        NX_TRY(ld_get(L, &k->fc1_w, LD_MAT, NULL, 2, mrd, "%s.%s.blocks.%d.mlp.fc1.weight", tp, mn, i));
        NX_TRY(ld_get(L, &k->fc1_b, LD_BIAS, NULL, 1, vrd, "%s.%s.blocks.%d.mlp.fc1.bias", tp, mn, i));
        NX_TRY(ld_get(L, &k->fc2_w, LD_MAT, NULL, 2, mdr, "%s.%s.blocks.%d.mlp.fc2.weight", tp, mn, i));
        NX_TRY(ld_get(L, &k->fc2_b, LD_BIAS, NULL, 1, vd, "%s.%s.blocks.%d.mlp.fc2.bias", tp, mn, i));
    }

    // head, postprocessor
    int64_t hw[2] = {c->out_embed_dim, D};
    NX_TRY(ld_get(L, &b->head_norm_w, LD_F32, NULL, 1, vd, "modality_heads.%s.0.weight", mn));
    NX_TRY(ld_get(L, &b->head_norm_b, LD_F32, NULL, 1, vd, "modality_heads.%s.0.bias", mn));
    NX_TRY(ld_get(L, &b->head_w, LD_MAT, NULL, 2, hw, "modality_heads.%s.2.weight", mn));
    b->logit_scale = 0.0f;
    if (mod == NX_IB_AUDIO) {
        // stored in every checkpoint; used only when audio_logit_scale_applied (upstream ImageBind)
        const char *ln = "modality_postprocessors.audio.1.log_logit_scale";
        const nx_wtensor *t = nx_weights_find(L->w, ln);
        if (c->audio_logit_scale_applied) {
            int64_t none[1] = {0};
            NX_TRY(nx_weights_get(L->w, ln, NX_FLOAT_DTYPES, 0, none, &t));
            float v = 0.0f;
            nx_wtensor_to_f32(t, &v);
            b->logit_scale = fminf(expf(v), 100.0f);  // LearnableLogitScaling: clip(exp, max=100)
        } else if (t) {
            nx_weights_mark_used(L->w, ln);
        }
    }
    b->loaded = true;
    return NGPT_OK;
}

/* Views into the uploaded blob (pass 2 done). */
static void make_views(nx_imagebind *m)
{
    for (int mod = 0; mod < NX_IB_N; mod++) {
        ib_branch *b = &m->br[mod];
        if (!b->loaded) continue;
        int64_t D = b->D, dd[2] = {D, D}, d1[1] = {D};
        for (int i = 0; i < b->n_blocks; i++) {
            ib_block *k = &b->blocks[i];
            size_t ws = (size_t)(D * D) * nx_dtype_size(k->in_proj_w.dtype);
            size_t bs = (size_t)D * nx_dtype_size(k->in_proj_b.dtype);
            char *w = k->in_proj_w.data, *bb = k->in_proj_b.data;
            k->wq = nx_view(k->in_proj_w.dtype, 2, dd, w, m->be);
            k->wk = nx_view(k->in_proj_w.dtype, 2, dd, w + ws, m->be);
            k->wv = nx_view(k->in_proj_w.dtype, 2, dd, w + 2 * ws, m->be);
            k->bq = nx_view(k->in_proj_b.dtype, 1, d1, bb, m->be);
            k->bk = nx_view(k->in_proj_b.dtype, 1, d1, bb + bs, m->be);
            k->bv = nx_view(k->in_proj_b.dtype, 1, d1, bb + 2 * bs, m->be);
        }
    }
}

/* The blocks' matrices in the backend's own layout for its linears (nx_op_linear_pack: on the
 * CPU, oneDNN's AMX-BF16 layout, ~20 % faster linears at 257 tokens; a no-op without AMX). The
 * q/k/v views each pack their third of in_proj_w, which is used through them only. */
static ngpt_status pack_matrices(nx_imagebind *m)
{
    for (int mod = 0; mod < NX_IB_N; mod++) {
        ib_branch *b = &m->br[mod];
        for (int i = 0; b->loaded && i < b->n_blocks; i++) {
            ib_block *k = &b->blocks[i];
            nx_tensor *w[6] = {&k->wq, &k->wk, &k->wv, &k->out_w, &k->fc1_w, &k->fc2_w};
            for (int j = 0; j < 6; j++) NX_TRY(nx_op_linear_pack(m->be, w[j]));
        }
    }
    return NGPT_OK;
}

/* Skip (mark used) what this model does not load: other ImageBind modalities, branches not
 * asked for; then anything left over is an unexpected tensor. */
static ngpt_status skip_others(nx_imagebind *m, nx_weights *w)
{
    static const char *const groups[] = {"modality_preprocessors.", "modality_trunks.", "modality_heads.",
                                          "modality_postprocessors."};
    static const char *const others[] = {"text", "depth", "thermal", "imu"};
    for (size_t i = 0; i < nx_weights_count(w); i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        if (t->used) continue;
        for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
            if (!has_prefix(t->name, groups[g])) continue;
            const char *rest = t->name + strlen(groups[g]);
            const char *dot = strchr(rest, '.');
            size_t len = dot ? (size_t)(dot - rest) : strlen(rest);
            bool skip = false;
            for (size_t o = 0; o < sizeof others / sizeof others[0]; o++)
                if (strlen(others[o]) == len && strncmp(rest, others[o], len) == 0) skip = true;
            for (int mod = 0; mod < NX_IB_N; mod++)
                if (!m->br[mod].loaded && strlen(ib_name[mod]) == len && strncmp(rest, ib_name[mod], len) == 0) skip = true;
            if (skip) nx_weights_mark_used(w, t->name);
        }
    }
    ngpt_status s = nx_weights_check_unused(w);
    return s == NGPT_OK ? s : nx_err_wrap(s, "imagebind: ");
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = nx_malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

ngpt_status nx_imagebind_read_config(nx_imagebind_config *c, const char *path)
{
    nx_imagebind_config_huge(c);
    if (!nx_is_dir(path)) {
        if (!nx_is_file(path)) return nx_err(NGPT_ERR_NOT_FOUND, "%s: no such ImageBind folder or checkpoint file", path);
        return NGPT_OK;  /* a checkpoint file: imagebind_huge's constructor */
    }
    char *cfg = join(path, "config.json");
    if (!cfg) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "imagebind: out of memory");
    ngpt_status s = nx_is_file(cfg) ? read_config(c, cfg) : NGPT_OK;
    nx_free(cfg);
    return s;
}

/* The checkpoint file and the config of `path` (a folder or a file). */
static ngpt_status resolve(nx_imagebind *m, const char *path)
{
    nx_imagebind_config_huge(&m->cfg);
    if (!nx_is_dir(path)) {
        if (!nx_is_file(path)) return nx_err(NGPT_ERR_NOT_FOUND, "%s: no such ImageBind folder or checkpoint file", path);
        m->file = nx_strdup(path);
        return m->file ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "imagebind: out of memory");
    }
    char *cfg = join(path, "config.json");
    if (!cfg) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "imagebind: out of memory");
    ngpt_status s = nx_is_file(cfg) ? read_config(&m->cfg, cfg) : NGPT_OK;
    nx_free(cfg);
    NX_TRY(s);
    static const char *const names[] = {"model.safetensors", "model.safetensors.index.json", "imagebind_huge.pth"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *f = join(path, names[i]);
        if (!f) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "imagebind: out of memory");
        if (nx_is_file(f)) {
            m->file = f;
            return NGPT_OK;
        }
        nx_free(f);
    }
    return nx_err(NGPT_ERR_NOT_FOUND, "%s: no model.safetensors, model.safetensors.index.json or imagebind_huge.pth", path);
}

ngpt_status nx_imagebind_load(nx_imagebind **out, nx_backend *be, const char *path, unsigned modalities,
                              ngpt_dtype act_dtype, ngpt_dtype mat_dtype)
{
    *out = NULL;
    if (modalities & ~(NX_IB_BIT(NX_IB_VISION) | NX_IB_BIT(NX_IB_AUDIO)))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "imagebind: unknown modality bits 0x%x", modalities);
    if (act_dtype != NGPT_DTYPE_F32 && act_dtype != NGPT_DTYPE_F16 && act_dtype != NGPT_DTYPE_BF16)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "imagebind: activation dtype %s (expected F32, F16 or BF16)",
                      nx_dtype_name(act_dtype));
    if (mat_dtype != NGPT_DTYPE_F32 && mat_dtype != NGPT_DTYPE_F16 && mat_dtype != NGPT_DTYPE_BF16)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "imagebind: matrix dtype %s (expected F32, F16 or BF16)",
                      nx_dtype_name(mat_dtype));
    nx_imagebind *m = nx_calloc(1, sizeof *m);
    if (!m) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "imagebind: out of memory");
    m->be = be;
    m->cdt = act_dtype;
    ib_loader L = {0};
    L.mat_dt = mat_dtype != NGPT_DTYPE_F32 ? mat_dtype : act_dtype;
    L.conv_dt = act_dtype;  // the CPU converts F16/BF16 filters to F32 per call anyway
    L.bias_dt = act_dtype;
    m->pack = be->kind == NGPT_BACKEND_CPU && L.mat_dt == NGPT_DTYPE_BF16;
    ngpt_status s = resolve(m, path);
    if (s == NGPT_OK) s = nx_weights_open(&L.w, m->file);
    unsigned want = modalities;
    if (s == NGPT_OK && !want) {
        for (int mod = 0; mod < NX_IB_N; mod++)
            if (stored(L.w, mod)) want |= NX_IB_BIT(mod);
        if (!want) s = nx_err(NGPT_ERR_NOT_FOUND, "%s: neither a vision nor an audio branch is stored", m->file);
    }
    for (int mod = 0; s == NGPT_OK && mod < NX_IB_N; mod++)
        if (want & NX_IB_BIT(mod)) s = list_branch(m, &L, mod);
    // constants: get_rows ids (zeros), the zero frames PadIm2Video's repeat adds
    int64_t zn[1] = {IB_CHUNK}, fz[5] = {1, 1, m->cfg.video_frames, 1, 1};
    void *zi = s == NGPT_OK ? ld_host(&L, IB_CHUNK * sizeof(int32_t)) : NULL;
    void *zf = s == NGPT_OK ? ld_host(&L, (size_t)m->cfg.video_frames * sizeof(float)) : NULL;
    if (s == NGPT_OK && (!zi || !zf)) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "imagebind: out of memory");
    if (s == NGPT_OK) s = ld_add(&L, &m->zero_ids, NGPT_DTYPE_I32, 1, zn, NULL, zi);
    if (s == NGPT_OK) s = ld_add(&L, &m->zero_frames, m->cdt, 5, fz, NULL, zf);
    if (s == NGPT_OK) s = skip_others(m, L.w);
    if (s == NGPT_OK) s = ld_upload(m, &L);
    if (s == NGPT_OK) make_views(m);
    if (s == NGPT_OK && m->pack) s = pack_matrices(m);
    for (int i = 0; i < L.n_host; i++) nx_free(L.host[i]);
    nx_free(L.items);
    m->w = L.w;  /* open while views of it may exist (closed by nx_imagebind_free) */
    if (s != NGPT_OK) {
        nx_imagebind_free(m);
        return s;
    }
    *out = m;
    return NGPT_OK;
}

void nx_imagebind_free(nx_imagebind *m)
{
    if (!m) return;
    nx_tensor_free(&m->blob);
    nx_weights_close(m->w);
    for (int mod = 0; mod < NX_IB_N; mod++) nx_free(m->br[mod].blocks);
    nx_free(m->file);
    nx_free(m);
}

const nx_imagebind_config *nx_imagebind_get_config(const nx_imagebind *m) { return &m->cfg; }

bool nx_imagebind_has(const nx_imagebind *m, nx_ib_modality mod)
{
    return m && (unsigned)mod < NX_IB_N && m->br[mod].loaded;
}

// ----------------------------------------------------------------------------
// forward

typedef struct ib_scratch {
    nx_tensor x;   // (M, L, D) the residual stream
    nx_tensor h;   // (M, L, D)
    nx_tensor q;   // (M, L, D)
    nx_tensor k;   // (M, Lk, D)
    nx_tensor v;   // (M, Lk, D)
    nx_tensor o;   // (M, L, D)
    nx_tensor f;   // (M, L, R*D) MLP hidden
    nx_tensor rep; // vision (M, 3, F, H, W): PadIm2Video output, when the input needs the repeat
    nx_tensor in;  // (M, clip...) the input clips in the activation dtype (when it is not F32)
} ib_scratch;

static void scratch_free(ib_scratch *s)
{
    nx_tensor_free(&s->x);
    nx_tensor_free(&s->h);
    nx_tensor_free(&s->q);
    nx_tensor_free(&s->k);
    nx_tensor_free(&s->v);
    nx_tensor_free(&s->o);
    nx_tensor_free(&s->f);
    nx_tensor_free(&s->rep);
    nx_tensor_free(&s->in);
}

/* A view of the first elements of buffer t, with another shape. */
static nx_tensor vw(const nx_tensor *t, int rank, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t ne[4] = {a, b, c, d};
    return nx_view(t->dtype, rank, ne, t->data, t->be);
}

/* One transformer block on x (M, L, D). */
static ngpt_status block_forward(nx_imagebind *m, const ib_branch *b, const ib_block *k, ib_scratch *s, int64_t M,
                                 int64_t L, bool bias_kv)
{
    nx_backend *be = m->be;
    int64_t D = b->D, H = b->H, hd = D / H, Lk = L + (bias_kv ? 1 : 0);
    float eps = m->cfg.layer_norm_eps;
    nx_tensor x = vw(&s->x, 3, M, L, D, 0), h = vw(&s->h, 3, M, L, D, 0), q = vw(&s->q, 3, M, L, D, 0);
    nx_tensor o = vw(&s->o, 3, M, L, D, 0), f = vw(&s->f, 3, M, L, b->R * D, 0);
    nx_tensor kk = vw(&s->k, 3, M, Lk, D, 0), vv = vw(&s->v, 3, M, Lk, D, 0);

    // x += out_proj(attention(in_proj(LN1 x)))
    NX_TRY(nx_op_layer_norm(be, &h, &x, &k->norm_1_w, &k->norm_1_b, eps));
    NX_TRY(nx_op_linear(be, &q, &h, &k->wq, &k->bq));
    if (!bias_kv) {
        NX_TRY(nx_op_linear(be, &kk, &h, &k->wk, &k->bk));
        NX_TRY(nx_op_linear(be, &vv, &h, &k->wv, &k->bv));
    } else {
        // k = cat(h Wk + bk, bias_k) along the sequence (nn.MultiheadAttention add_bias_kv)
        nx_tensor t = vw(&s->o, 3, M, L, D, 0), row = vw(&s->f, 2, M, D, 0, 0);
        nx_tensor ids = vw(&m->zero_ids, 1, M, 0, 0, 0), row3 = vw(&s->f, 3, M, 1, D, 0);
        NX_TRY(nx_op_linear(be, &t, &h, &k->wk, &k->bk));
        NX_TRY(nx_op_get_rows(be, &row, &k->bias_k, &ids));
        NX_TRY(nx_op_concat(be, &kk, &t, &row3, 1));
        NX_TRY(nx_op_linear(be, &t, &h, &k->wv, &k->bv));
        NX_TRY(nx_op_get_rows(be, &row, &k->bias_v, &ids));
        NX_TRY(nx_op_concat(be, &vv, &t, &row3, 1));
    }
    nx_tensor q4 = vw(&s->q, 4, M, L, H, hd), k4 = vw(&s->k, 4, M, Lk, H, hd), v4 = vw(&s->v, 4, M, Lk, H, hd);
    nx_tensor o4 = vw(&s->o, 4, M, L, H, hd);
    NX_TRY(nx_op_attention(be, &o4, &q4, &k4, &v4, NULL, 1.0f / sqrtf((float)hd), false));
    // the residual adds and the GELU in the GEMMs' epilogues where the backend fuses them (h: the
    // product where it does not)
    const nx_linear_epi add = {.act = NX_UNARY_IDENTITY, .accumulate = true, .tmp = &h};
    const nx_linear_epi gelu = {.act = NX_UNARY_GELU};
    NX_TRY(nx_op_linear_epi(be, &x, &o, &k->out_w, &k->out_b, &add));

    // x += fc2(gelu(fc1(LN2 x)))
    NX_TRY(nx_op_layer_norm(be, &h, &x, &k->norm_2_w, &k->norm_2_b, eps));
    NX_TRY(nx_op_linear_epi(be, &f, &h, &k->fc1_w, &k->fc1_b, &gelu));
    NX_TRY(nx_op_linear_epi(be, &x, &f, &k->fc2_w, &k->fc2_b, &add));
    return NGPT_OK;
}

/* Clips xc (M, ...) -> head outputs e (M, out), not normalised. */
static ngpt_status clips_forward(nx_imagebind *m, int mod, nx_tensor *e, const nx_tensor *xc, ib_scratch *s)
{
    nx_backend *be = m->be;
    const nx_imagebind_config *c = &m->cfg;
    const ib_branch *b = &m->br[mod];
    int64_t M = xc->ne[0], D = b->D, P = b->n_patch, L = 1 + P;
    nx_conv_params cp = nx_conv_params_default();
    nx_tensor conv = vw(&s->q, 3, M, D, P, 0);  // stem output (M, D, P) in q's memory

    // stem -> patch tokens (M, P, D) in h
    if (mod == NX_IB_VISION) {
        const nx_tensor *in = xc;
        nx_tensor x5;
        int64_t F = c->video_frames;
        if (xc->rank == 4 || xc->ne[2] != F) {  // PadIm2Video(repeat): x (M,3,1,H,W) + zeros (1,1,F,1,1)
            int64_t ne5[5] = {M, 3, 1, xc->ne[xc->rank - 2], xc->ne[xc->rank - 1]};
            x5 = nx_view(xc->dtype, 5, ne5, xc->data, xc->be);
            ne5[2] = F;
            nx_tensor rep = nx_view(s->rep.dtype, 5, ne5, s->rep.data, s->rep.be);
            NX_TRY(nx_op_binary(be, &rep, &x5, &m->zero_frames, NX_BINARY_ADD));
            x5 = rep;
            in = &x5;
        }
        for (int i = 0; i < 3; i++) cp.stride[i] = c->kernel_size[i];
        int64_t ne5[5] = {M, D, b->grid[0], b->grid[1], b->grid[2]};
        nx_tensor y5 = nx_view(s->q.dtype, 5, ne5, s->q.data, be);
        NX_TRY(nx_op_conv(be, &y5, in, &b->stem_w, NULL, &cp));
    } else {
        cp.stride[0] = cp.stride[1] = c->audio_stride;
        nx_tensor y4 = vw(&s->q, 4, M, D, b->grid[1], b->grid[2]);
        NX_TRY(nx_op_conv(be, &y4, xc, &b->stem_w, NULL, &cp));
    }
    nx_tensor tok = vw(&s->h, 3, M, P, D, 0);
    int perm[3] = {0, 2, 1};
    NX_TRY(nx_op_permute(be, &tok, &conv, perm));
    if (mod == NX_IB_AUDIO) {
        nx_tensor t2 = vw(&s->o, 3, M, P, D, 0);
        NX_TRY(nx_op_layer_norm(be, &t2, &tok, &b->stem_norm_w, &b->stem_norm_b, c->audio_stem_layer_norm_eps));
        tok = t2;
    }

    // x = cat(cls, tokens) + pos_embed
    NX_TRY(nx_op_binary(be, &tok, &tok, &b->pos_patch, NX_BINARY_ADD));
    nx_tensor row = vw(&s->k, 2, M, D, 0, 0), row3 = vw(&s->k, 3, M, 1, D, 0), ids = vw(&m->zero_ids, 1, M, 0, 0, 0);
    NX_TRY(nx_op_get_rows(be, &row, &b->cls_pos, &ids));
    nx_tensor x = vw(&s->x, 3, M, L, D, 0);
    if (c->pre_transformer_ln[mod]) {
        nx_tensor t = vw(&s->v, 3, M, L, D, 0);
        NX_TRY(nx_op_concat(be, &t, &row3, &tok, 1));
        NX_TRY(nx_op_layer_norm(be, &x, &t, &b->pre_ln_w, &b->pre_ln_b, c->layer_norm_eps));
    } else {
        NX_TRY(nx_op_concat(be, &x, &row3, &tok, 1));
    }

    for (int i = 0; i < b->n_blocks; i++) NX_TRY(block_forward(m, b, &b->blocks[i], s, M, L, c->add_bias_kv[mod]));

    // head: LN(token 0) -> Linear
    nx_tensor t0 = vw(&s->h, 3, M, 1, D, 0), n0 = vw(&s->o, 2, M, D, 0, 0), t0r = vw(&s->h, 2, M, D, 0, 0);
    NX_TRY(nx_op_slice(be, &t0, &x, 1, 0));
    NX_TRY(nx_op_layer_norm(be, &n0, &t0r, &b->head_norm_w, &b->head_norm_b, c->layer_norm_eps));
    return nx_op_linear(be, e, &n0, &b->head_w, NULL);
}

static ngpt_status check_input(const nx_imagebind *m, int mod, const nx_tensor *x)
{
    const nx_imagebind_config *c = &m->cfg;
    char got[160];
    nx_shape_str(got, sizeof got, x->rank, x->ne);
    if (x->dtype != NGPT_DTYPE_F32) return nx_err(NGPT_ERR_DTYPE_MISMATCH, "imagebind %s: input must be F32", ib_name[mod]);
    if (mod == NX_IB_VISION) {
        int64_t S = c->image_size;
        bool ok = (x->rank == 4 && x->ne[1] == 3 && x->ne[2] == S && x->ne[3] == S) ||
                  (x->rank == 5 && x->ne[1] == 3 && (x->ne[2] == 1 || x->ne[2] == c->video_frames) && x->ne[3] == S &&
                   x->ne[4] == S);
        if (!ok)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "imagebind vision: pixels: expected [N, 3, %lld, %lld] or [N, 3, T, %lld, %lld] "
                          "with T = 1 or %d, got %s", (long long)S, (long long)S, (long long)S, (long long)S,
                          c->video_frames, got);
    } else {
        bool ok = x->rank == 4 && x->ne[1] == 1 && x->ne[2] == c->audio_num_mel_bins && x->ne[3] == c->audio_target_len;
        if (!ok)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "imagebind audio: fbank: expected [N, 1, %d, %d], got %s",
                          c->audio_num_mel_bins, c->audio_target_len, got);
    }
    return NGPT_OK;
}

ngpt_status nx_imagebind_encode(nx_imagebind *m, nx_ib_modality mod, nx_tensor *y, const nx_tensor *x, int64_t clips)
{
    if (!nx_imagebind_has(m, mod))
        return nx_err(NGPT_ERR_UNSUPPORTED, "imagebind: the %s branch is not loaded",
                      (unsigned)mod < NX_IB_N ? ib_name[mod] : "?");
    NX_TRY(check_input(m, mod, x));
    const ib_branch *b = &m->br[mod];
    int64_t total = x->ne[0], out = m->cfg.out_embed_dim;
    if (clips < 1 || total % clips || y->rank != 2 || y->ne[0] != total / clips || y->ne[1] != out ||
        y->dtype != NGPT_DTYPE_F32) {
        char got[160];
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "imagebind %s: %lld clips in items of %lld need an F32 output [%lld, %lld], got %s",
                      ib_name[mod], (long long)total, (long long)clips, (long long)(clips ? total / clips : 0),
                      (long long)out, nx_shape_str(got, sizeof got, y->rank, y->ne));
    }
    if (total == 0) return NGPT_OK;
    nx_backend *be = m->be;
    int64_t M = total < IB_CHUNK ? total : IB_CHUNK;
    int64_t D = b->D, L = 1 + b->n_patch, Lk = L + (m->cfg.add_bias_kv[mod] ? 1 : 0);
    int64_t sd[3] = {M, L, D}, sk[3] = {M, Lk, D}, sf[3] = {M, L, b->R * D}, se[2] = {total, out};
    const ngpt_dtype cdt = m->cdt;
    ib_scratch s = {0};
    nx_tensor e = {0}, e32 = {0}, en = {0};
    ngpt_status st = nx_tensor_alloc(&s.x, be, cdt, 3, sd);
    if (st == NGPT_OK) st = nx_tensor_alloc(&s.h, be, cdt, 3, sd);
    if (st == NGPT_OK) st = nx_tensor_alloc(&s.q, be, cdt, 3, sd);
    if (st == NGPT_OK) st = nx_tensor_alloc(&s.k, be, cdt, 3, sk);
    if (st == NGPT_OK) st = nx_tensor_alloc(&s.v, be, cdt, 3, sk);
    if (st == NGPT_OK) st = nx_tensor_alloc(&s.o, be, cdt, 3, sd);
    if (st == NGPT_OK) st = nx_tensor_alloc(&s.f, be, cdt, 3, sf);
    if (st == NGPT_OK && mod == NX_IB_VISION && (x->rank == 4 || x->ne[2] != m->cfg.video_frames)) {
        int64_t sr[5] = {M, 3, m->cfg.video_frames, x->ne[x->rank - 2], x->ne[x->rank - 1]};
        st = nx_tensor_alloc(&s.rep, be, cdt, 5, sr);
    }
    if (st == NGPT_OK && cdt != NGPT_DTYPE_F32) {
        int64_t si[NX_MAX_DIMS];
        memcpy(si, x->ne, sizeof si);
        si[0] = M;
        st = nx_tensor_alloc(&s.in, be, cdt, x->rank, si);
    }
    if (st == NGPT_OK) st = nx_tensor_alloc(&e, be, cdt, 2, se);
    if (st == NGPT_OK && cdt != NGPT_DTYPE_F32) st = nx_tensor_alloc(&e32, be, NGPT_DTYPE_F32, 2, se);
    if (st == NGPT_OK) st = nx_tensor_alloc(&en, be, NGPT_DTYPE_F32, 2, se);

    size_t clip_elems = (size_t)(nx_numel(x) / total), es = nx_dtype_size(cdt);
    for (int64_t i0 = 0; st == NGPT_OK && i0 < total; i0 += M) {
        int64_t n = total - i0 < M ? total - i0 : M;
        nx_tensor xc = *x, ec = vw(&e, 2, n, out, 0, 0);
        xc.ne[0] = n;
        xc.data = (float *)x->data + (size_t)i0 * clip_elems;
        ec.data = (char *)e.data + (size_t)(i0 * out) * es;
        if (cdt != NGPT_DTYPE_F32) {  // the F32 pixels / fbank narrowed to the activation dtype
            nx_tensor xi = s.in;
            xi.ne[0] = n;
            st = nx_op_cast(be, &xi, &xc);
            xc = xi;
        }
        if (st == NGPT_OK) st = clips_forward(m, mod, &ec, &xc, &s);
    }
    if (st == NGPT_OK && cdt != NGPT_DTYPE_F32) st = nx_op_cast(be, &e32, &e);
    const nx_tensor *ef = cdt != NGPT_DTYPE_F32 ? &e32 : &e;

    // F.normalize(p=2, eps=1e-12) = x / max(|x|, 1e-12): rms_norm gives x / sqrt(mean(x^2) + eps),
    // so scale by 1/sqrt(out) (eps 1e-24/out: the same clamp, squared); then the upstream logit scale
    float alpha = 1.0f / sqrtf((float)out);
    if (b->logit_scale > 0.0f) alpha *= b->logit_scale;
    if (st == NGPT_OK) st = nx_op_rms_norm(be, &en, ef, NULL, 1e-24f / (float)out);
    if (st == NGPT_OK) st = nx_op_scale(be, &en, &en, alpha, 0.0f);

    // mean over the clips of each item (not re-normalised)
    int64_t N = total / clips;
    if (st == NGPT_OK && clips == 1) st = nx_op_scale(be, y, &en, 1.0f, 0.0f);
    if (st == NGPT_OK && clips > 1) {
        nx_tensor e3 = vw(&en, 3, N, clips, out, 0), y3 = vw(y, 3, N, 1, out, 0), t3 = vw(ef, 3, N, 1, out, 0);
        st = nx_op_slice(be, &y3, &e3, 1, 0);
        for (int64_t c = 1; st == NGPT_OK && c < clips; c++) {
            st = nx_op_slice(be, &t3, &e3, 1, c);
            if (st == NGPT_OK) st = nx_op_binary(be, &y3, &y3, &t3, NX_BINARY_ADD);
        }
        if (st == NGPT_OK) st = nx_op_scale(be, y, y, 1.0f / (float)clips, 0.0f);
    }
    scratch_free(&s);
    nx_tensor_free(&e);
    nx_tensor_free(&e32);
    nx_tensor_free(&en);
    return st;
}
