/* projector.c — NExT-GPT's input projector (llama_proj) and output projectors (TextFcLayer in
 * mode "transformer"), written against the op layer.
 *
 * The reference (NExT-GPT-Lagacy/code/model/layers.py, torch 1.13):
 *
 *     x = x + input_embs                        # hidden states of [X0..XN-1] + their input embeddings
 *     x = self.fc(x)                            # Linear(llm_hidden -> 512)
 *     x = self.tfm(x, self.query_embs.repeat(B, 1, 1))
 *         # nn.Transformer(batch_first, norm_first, d_model 512, nhead 4, 4 + 4 layers,
 *         #   dim_feedforward 2048, dropout 0, relu), no masks; torch adds a final LayerNorm after
 *         #   the encoder stack and one after the decoder stack
 *     outputs = self.model(x)                   # Linear(512 -> out_dim)
 *
 * Pre-norm encoder layer:  x += SA(LN1 x);  x += FF(LN2 x)
 * Pre-norm decoder layer:  y += SA(LN1 y);  y += MHA(LN2 y, memory);  y += FF(LN3 y)
 * FF(h) = linear2(relu(linear1(h))). MHA packs q, k, v in in_proj_{weight,bias} rows
 * [0:d | d:2d | 2d:3d]; heads of size d / nhead, softmax(q k^T / sqrt(head)) v, then out_proj.
 *
 * The weight matrices stay in the checkpoint's dtype (the real delta holds F16): on the CPU as
 * views of the mapped file, which the projector keeps open, elsewhere uploaded once. nn.Linear
 * widens F16/BF16 weights exactly under F32 activations, so the result is still the fp32
 * computation the golden cases describe — without 0.37 GiB of F32 copies of NExT-GPT's
 * projectors. Biases, norms and the query embeddings (a few MB) are widened to F32 copies.
 */
#include "projector.h"
#include "mweights.h"

#include "../core/fs.h"
#include "../core/alloc.h"
#include "../core/json.h"
#include "../core/weights.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

// ----------------------------------------------------------------------------
// weights

typedef struct mha_w {
    nx_tensor in_w;               /* (3d, d)  q | k | v rows */
    nx_tensor in_b;               /* (3d) */
    nx_tensor out_w;              /* (d, d) */
    nx_tensor out_b;              /* (d) */
    nx_tensor q_w, k_w, v_w;      /* (d, d) views into in_w */
    nx_tensor q_b, k_b, v_b;      /* (d) views into in_b */
} mha_w;

typedef struct ff_w {
    nx_tensor lin1_w;             /* (d_ff, d) */
    nx_tensor lin1_b;             /* (d_ff) */
    nx_tensor lin2_w;             /* (d, d_ff) */
    nx_tensor lin2_b;             /* (d) */
} ff_w;

typedef struct enc_layer {
    nx_tensor norm1_w, norm1_b;   /* (d) */
    mha_w     sa;
    nx_tensor norm2_w, norm2_b;   /* (d) */
    ff_w      ff;
} enc_layer;

typedef struct dec_layer {
    nx_tensor norm1_w, norm1_b;   /* (d) */
    mha_w     sa;
    nx_tensor norm2_w, norm2_b;   /* (d) */
    mha_w     ca;                 /* multihead_attn: queries from the decoder, keys/values from memory */
    nx_tensor norm3_w, norm3_b;   /* (d) */
    ff_w      ff;
} dec_layer;

typedef struct textfc {
    bool          loaded;
    nx_textfc_cfg c;
    nx_tensor     fc_w;           /* (d, in_dim) */
    nx_tensor     fc_b;           /* (d) */
    enc_layer    *enc;            /* (n_enc) */
    nx_tensor     enc_norm_w, enc_norm_b; /* (d) */
    dec_layer    *dec;            /* (n_dec) */
    nx_tensor     dec_norm_w, dec_norm_b; /* (d) */
    float        *query_host;     /* (n_out, d) query_embs[0], host copy for the per-batch repeat */
    nx_tensor     model_w;        /* (out_dim, d) */
    nx_tensor     model_b;        /* (out_dim) */
} textfc;

struct nx_projector {
    nx_backend *be;
    nx_weights *w;                /* the checkpoint, open while matrices are views of it (CPU) */
    int         llm_hidden;
    bool        has_input;
    int         in_dim;
    nx_tensor   proj_w;           /* (llm_hidden, in_dim) llama_proj.weight */
    nx_tensor   proj_b;           /* (llm_hidden) */
    textfc      out[NX_PROJ_N_OUT];
};

static const char *const slot_name[NX_PROJ_N_OUT] = {
    [NX_PROJ_IMAGE] = "image", [NX_PROJ_AUDIO] = "audio", [NX_PROJ_VIDEO] = "video"};
static const char *const slot_key[NX_PROJ_N_OUT] = {
    [NX_PROJ_IMAGE] = "gen_text_hidden_fcs.0", [NX_PROJ_AUDIO] = "gen_text_hidden_fcs_audio.0",
    [NX_PROJ_VIDEO] = "gen_text_hidden_fcs_video.0"};
/* signal tokens: [IMG0..3], [AUD0..7], [VID0..23] */
static const int slot_n_in[NX_PROJ_N_OUT] = {[NX_PROJ_IMAGE] = 4, [NX_PROJ_AUDIO] = 8, [NX_PROJ_VIDEO] = 24};
static const char input_key[] = "llama_proj";
static const char llm_prefix[] = "llama_model.";         /* LoRA, embed_tokens, lm_head of a delta */

// ----------------------------------------------------------------------------
// loading

typedef struct loader {
    nx_backend *be;
    nx_weights *w;
    const char *file;
} loader;

#define NAME_MAX_LEN 256

/* Fetch `prefix.suffix` with the given shape, widen to F32 and upload to dst. */
static ngpt_status get_f32(loader *L, nx_tensor *dst, const char *prefix, const char *suffix, int rank,
                           int64_t s0, int64_t s1, int64_t s2)
{
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    int64_t shape[3] = {s0, s1, s2};
    const nx_wtensor *t = NULL;
    NX_TRY(nx_weights_get(L->w, name, NX_DTYPE_BIT(NGPT_DTYPE_F32) | NX_DTYPE_BIT(NGPT_DTYPE_F16) |
                                          NX_DTYPE_BIT(NGPT_DTYPE_BF16), rank, shape, &t));
    int64_t n = 1;  /* the tensor's own shape: a -1 in shape[] matched any size */
    for (int i = 0; i < rank; i++) n *= t->shape[i];
    float *host = nx_malloc((size_t)(n ? n : 1) * sizeof *host);
    if (!host) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory reading '%s'", L->file, name);
    nx_wtensor_to_f32(t, host);
    ngpt_status s = nx_tensor_alloc(dst, L->be, NGPT_DTYPE_F32, rank, t->shape);
    if (s == NGPT_OK) s = nx_tensor_upload(dst, host, (size_t)n * sizeof *host);
    if (s != NGPT_OK) nx_tensor_free(dst);
    nx_free(host);
    if (s != NGPT_OK) return nx_err_wrap(s, "%s: '%s': ", L->file, name);
    return NGPT_OK;
}

/* Fetch the matrix `prefix.suffix` [s0, s1] in its stored dtype (see the top of the file). */
static ngpt_status get_mat(loader *L, nx_tensor *dst, const char *prefix, const char *suffix, int64_t s0, int64_t s1)
{
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    int64_t shape[2] = {s0, s1};
    const nx_wtensor *t = NULL;
    NX_TRY(nx_weights_get(L->w, name, NX_FLOAT_DTYPES, 2, shape, &t));
    ngpt_status s = nx_weight_fetch(dst, L->be, t, 2, shape, NGPT_DTYPE_F32);
    return s != NGPT_OK ? nx_err_wrap(s, "%s: '%s': ", L->file, name) : NGPT_OK;
}

static ngpt_status load_mha(loader *L, mha_w *m, const char *prefix, int64_t d)
{
    NX_TRY(get_mat(L, &m->in_w, prefix, "in_proj_weight", 3 * d, d));
    NX_TRY(get_f32(L, &m->in_b, prefix, "in_proj_bias", 1, 3 * d, 0, 0));
    NX_TRY(get_mat(L, &m->out_w, prefix, "out_proj.weight", d, d));
    NX_TRY(get_f32(L, &m->out_b, prefix, "out_proj.bias", 1, d, 0, 0));
    int64_t wne[2] = {d, d}, bne[1] = {d};
    char *w = m->in_w.data;
    float *b = m->in_b.data;
    const size_t wb = (size_t)(d * d) * nx_dtype_size(m->in_w.dtype);
    m->q_w = nx_view(m->in_w.dtype, 2, wne, w, m->in_w.be);
    m->k_w = nx_view(m->in_w.dtype, 2, wne, w + wb, m->in_w.be);
    m->v_w = nx_view(m->in_w.dtype, 2, wne, w + 2 * wb, m->in_w.be);
    m->q_b = nx_view(NGPT_DTYPE_F32, 1, bne, b, L->be);
    m->k_b = nx_view(NGPT_DTYPE_F32, 1, bne, b + d, L->be);
    m->v_b = nx_view(NGPT_DTYPE_F32, 1, bne, b + 2 * d, L->be);
    return NGPT_OK;
}

static void free_mha(mha_w *m)
{
    nx_tensor_free(&m->in_w);
    nx_tensor_free(&m->in_b);
    nx_tensor_free(&m->out_w);
    nx_tensor_free(&m->out_b);
}

static ngpt_status load_ff(loader *L, ff_w *f, const char *prefix, int64_t d, int64_t dff)
{
    NX_TRY(get_mat(L, &f->lin1_w, prefix, "linear1.weight", dff, d));
    NX_TRY(get_f32(L, &f->lin1_b, prefix, "linear1.bias", 1, dff, 0, 0));
    NX_TRY(get_mat(L, &f->lin2_w, prefix, "linear2.weight", d, dff));
    NX_TRY(get_f32(L, &f->lin2_b, prefix, "linear2.bias", 1, d, 0, 0));
    return NGPT_OK;
}

static void free_ff(ff_w *f)
{
    nx_tensor_free(&f->lin1_w);
    nx_tensor_free(&f->lin1_b);
    nx_tensor_free(&f->lin2_w);
    nx_tensor_free(&f->lin2_b);
}

static void free_textfc(textfc *t)
{
    nx_tensor_free(&t->fc_w);
    nx_tensor_free(&t->fc_b);
    if (t->enc) {
        for (int i = 0; i < t->c.n_enc; i++) {
            enc_layer *l = &t->enc[i];
            nx_tensor_free(&l->norm1_w); nx_tensor_free(&l->norm1_b);
            nx_tensor_free(&l->norm2_w); nx_tensor_free(&l->norm2_b);
            free_mha(&l->sa);
            free_ff(&l->ff);
        }
    }
    if (t->dec) {
        for (int i = 0; i < t->c.n_dec; i++) {
            dec_layer *l = &t->dec[i];
            nx_tensor_free(&l->norm1_w); nx_tensor_free(&l->norm1_b);
            nx_tensor_free(&l->norm2_w); nx_tensor_free(&l->norm2_b);
            nx_tensor_free(&l->norm3_w); nx_tensor_free(&l->norm3_b);
            free_mha(&l->sa);
            free_mha(&l->ca);
            free_ff(&l->ff);
        }
    }
    nx_free(t->enc);
    nx_free(t->dec);
    nx_tensor_free(&t->enc_norm_w);
    nx_tensor_free(&t->enc_norm_b);
    nx_tensor_free(&t->dec_norm_w);
    nx_tensor_free(&t->dec_norm_b);
    nx_free(t->query_host);
    nx_tensor_free(&t->model_w);
    nx_tensor_free(&t->model_b);
    memset(t, 0, sizeof *t);
}

static ngpt_status load_norm(loader *L, nx_tensor *w, nx_tensor *b, const char *prefix, const char *norm, int64_t d)
{
    char sfx[64];
    snprintf(sfx, sizeof sfx, "%s.weight", norm);
    NX_TRY(get_f32(L, w, prefix, sfx, 1, d, 0, 0));
    snprintf(sfx, sizeof sfx, "%s.bias", norm);
    NX_TRY(get_f32(L, b, prefix, sfx, 1, d, 0, 0));
    return NGPT_OK;
}

/* Load TextFcLayer `key` with configuration t->c (already complete). */
static ngpt_status load_textfc(loader *L, textfc *t, const char *key)
{
    const nx_textfc_cfg *c = &t->c;
    int64_t d = c->d_model, dff = c->d_ff;
    char p[NAME_MAX_LEN];
    NX_TRY(get_mat(L, &t->fc_w, key, "fc.weight", d, c->in_dim));
    NX_TRY(get_f32(L, &t->fc_b, key, "fc.bias", 1, d, 0, 0));
    t->enc = nx_calloc((size_t)c->n_enc, sizeof *t->enc);
    t->dec = nx_calloc((size_t)c->n_dec, sizeof *t->dec);
    if (!t->enc || !t->dec) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory loading '%s'", L->file, key);
    for (int i = 0; i < c->n_enc; i++) {
        enc_layer *l = &t->enc[i];
        snprintf(p, sizeof p, "%s.tfm.encoder.layers.%d", key, i);
        NX_TRY(load_norm(L, &l->norm1_w, &l->norm1_b, p, "norm1", d));
        NX_TRY(load_norm(L, &l->norm2_w, &l->norm2_b, p, "norm2", d));
        char sp[NAME_MAX_LEN + 16];
        snprintf(sp, sizeof sp, "%s.self_attn", p);
        NX_TRY(load_mha(L, &l->sa, sp, d));
        NX_TRY(load_ff(L, &l->ff, p, d, dff));
    }
    snprintf(p, sizeof p, "%s.tfm.encoder", key);
    NX_TRY(load_norm(L, &t->enc_norm_w, &t->enc_norm_b, p, "norm", d));
    for (int i = 0; i < c->n_dec; i++) {
        dec_layer *l = &t->dec[i];
        snprintf(p, sizeof p, "%s.tfm.decoder.layers.%d", key, i);
        NX_TRY(load_norm(L, &l->norm1_w, &l->norm1_b, p, "norm1", d));
        NX_TRY(load_norm(L, &l->norm2_w, &l->norm2_b, p, "norm2", d));
        NX_TRY(load_norm(L, &l->norm3_w, &l->norm3_b, p, "norm3", d));
        char sp[NAME_MAX_LEN + 16];
        snprintf(sp, sizeof sp, "%s.self_attn", p);
        NX_TRY(load_mha(L, &l->sa, sp, d));
        snprintf(sp, sizeof sp, "%s.multihead_attn", p);
        NX_TRY(load_mha(L, &l->ca, sp, d));
        NX_TRY(load_ff(L, &l->ff, p, d, dff));
    }
    snprintf(p, sizeof p, "%s.tfm.decoder", key);
    NX_TRY(load_norm(L, &t->dec_norm_w, &t->dec_norm_b, p, "norm", d));
    NX_TRY(get_mat(L, &t->model_w, key, "model.weight", c->out_dim, d));
    NX_TRY(get_f32(L, &t->model_b, key, "model.bias", 1, c->out_dim, 0, 0));

    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, "%s.query_embs", key);
    int64_t qs[3] = {1, c->num_output_tokens, d};
    const nx_wtensor *q = NULL;
    NX_TRY(nx_weights_get(L->w, name, NX_DTYPE_BIT(NGPT_DTYPE_F32) | NX_DTYPE_BIT(NGPT_DTYPE_F16) |
                                          NX_DTYPE_BIT(NGPT_DTYPE_BF16), 3, qs, &q));
    t->query_host = nx_malloc((size_t)c->num_output_tokens * (size_t)d * sizeof(float));
    if (!t->query_host) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory reading '%s'", L->file, name);
    nx_wtensor_to_f32(q, t->query_host);
    return NGPT_OK;
}

/* Mark every tensor under `prefix.` used (a projector the caller did not ask for, or the
 * LLM part of a delta); returns how many. */
static size_t skip_prefix(nx_weights *w, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);
    for (size_t i = 0; i < nx_weights_count(w); i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        if (strncmp(t->name, prefix, len) == 0 && (prefix[len - 1] == '.' || t->name[len] == '.')) {
            nx_weights_mark_used(w, t->name);
            n++;
        }
    }
    return n;
}

static const nx_wtensor *findf(nx_weights *w, const char *fmt, const char *key, int i)
{
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, fmt, key, i);
    return nx_weights_find(w, name);
}

/* Delta route: the sizes of TextFcLayer `key` from its tensor shapes; nhead and the number of
 * input tokens cannot be derived (NExT-GPT's constants, or the caller's). */
static ngpt_status derive_cfg(loader *L, const char *key, int slot, const nx_projector_opts *o, nx_textfc_cfg *c)
{
    const nx_wtensor *fc = findf(L->w, "%s.fc.weight", key, 0);
    const nx_wtensor *mo = findf(L->w, "%s.model.weight", key, 0);
    const nx_wtensor *qe = findf(L->w, "%s.query_embs", key, 0);
    const nx_wtensor *l1 = findf(L->w, "%s.tfm.encoder.layers.%d.linear1.weight", key, 0);
    const char *missing = !fc ? "fc.weight" : !mo ? "model.weight" : !qe ? "query_embs"
                        : !l1 ? "tfm.encoder.layers.0.linear1.weight" : NULL;
    if (missing) return nx_err(NGPT_ERR_NOT_FOUND, "%s: tensor '%s.%s' not found (%s output projector)", L->file, key,
                               missing, slot_name[slot]);
    if (fc->rank != 2 || mo->rank != 2 || qe->rank != 3 || l1->rank != 2)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: '%s': fc.weight, model.weight, linear1.weight must be 2-D and "
                      "query_embs 3-D", L->file, key);
    memset(c, 0, sizeof *c);
    c->d_model = (int)fc->shape[0];
    c->in_dim = (int)fc->shape[1];
    c->out_dim = (int)mo->shape[0];
    c->num_output_tokens = (int)qe->shape[1];
    c->d_ff = (int)l1->shape[0];
    while (findf(L->w, "%s.tfm.encoder.layers.%d.norm1.weight", key, c->n_enc)) c->n_enc++;
    while (findf(L->w, "%s.tfm.decoder.layers.%d.norm1.weight", key, c->n_dec)) c->n_dec++;
    c->nhead = o->nhead > 0 ? o->nhead : 4;
    c->num_input_tokens = o->num_input_tokens[slot] > 0 ? o->num_input_tokens[slot] : slot_n_in[slot];
    c->eps = 1e-5f;
    if (c->n_dec == 0)
        return nx_err(NGPT_ERR_NOT_FOUND, "%s: tensor '%s.tfm.decoder.layers.0.norm1.weight' not found", L->file, key);
    return NGPT_OK;
}

/* Folder route: the sizes from config.json's output_projectors.<name>. */
static ngpt_status config_cfg(const json_t *pj, const char *file, int slot, const nx_projector_opts *o,
                              nx_textfc_cfg *c, const char **key)
{
    int64_t v[9];
    static const char *const k[9] = {"in_dim", "out_dim", "num_input_tokens", "num_output_tokens", "d_model",
                                     "nhead", "num_encoder_layers", "num_decoder_layers", "dim_feedforward"};
    const char *mode = NULL, *act = NULL;
    bool norm_first = true;
    double eps = 1e-5;
    NX_TRY(nx_json_str(pj, "key", file, key));
    NX_TRY(nx_json_str_opt(pj, "mode", file, "transformer", &mode));
    NX_TRY(nx_json_str_opt(pj, "activation", file, "relu", &act));
    NX_TRY(nx_json_bool_opt(pj, "norm_first", file, true, &norm_first));
    NX_TRY(nx_json_num_opt(pj, "layer_norm_eps", file, 1e-5, &eps));
    for (int i = 0; i < 9; i++) {
        NX_TRY(nx_json_int(pj, k[i], file, &v[i]));
        if (v[i] < (i == 6 ? 0 : 1) || v[i] > (1 << 24))
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: output_projectors.%s.%s is %lld", file, slot_name[slot], k[i],
                          (long long)v[i]);
    }
    if (!(eps > 0 && eps < 1))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: output_projectors.%s.layer_norm_eps is %g (must be in (0, 1))", file,
                      slot_name[slot], eps);
    if (strcmp(mode, "transformer") != 0 || strcmp(act, "relu") != 0 || !norm_first)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: output_projectors.%s: only mode \"transformer\" with activation "
                      "\"relu\" and norm_first true is supported (got \"%s\", \"%s\", %s)", file, slot_name[slot],
                      mode, act, norm_first ? "true" : "false");
    memset(c, 0, sizeof *c);
    c->in_dim = (int)v[0];
    c->out_dim = (int)v[1];
    c->num_input_tokens = o->num_input_tokens[slot] > 0 ? o->num_input_tokens[slot] : (int)v[2];
    c->num_output_tokens = (int)v[3];
    c->d_model = (int)v[4];
    c->nhead = o->nhead > 0 ? o->nhead : (int)v[5];
    c->n_enc = (int)v[6];
    c->n_dec = (int)v[7];
    c->d_ff = (int)v[8];
    c->eps = (float)eps;
    return NGPT_OK;
}

/* Decide the route: a projector folder (config.json with model_type "nextgpt_projectors"), a
 * delta folder (delta.safetensors, else pytorch_model.pt) or a delta file. */
static ngpt_status resolve(const char *path, char **weights_file, json_t **cfg, char **cfg_file)
{
    *weights_file = NULL;
    *cfg = NULL;
    *cfg_file = NULL;
    if (nx_is_file(path)) {
        *weights_file = nx_strdup(path);
        return *weights_file ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "projector: out of memory");
    }
    if (!nx_is_dir(path)) return nx_err(NGPT_ERR_NOT_FOUND, "%s: projector file or folder not found", path);
    size_t n = strlen(path) + 32;
    char *cf = nx_malloc(n), *wf = nx_malloc(n);
    if (!cf || !wf) {
        nx_free(cf);
        nx_free(wf);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "projector: out of memory");
    }
    snprintf(cf, n, "%s/config.json", path);
    ngpt_status s = NGPT_OK;
    if (nx_is_file(cf)) {
        json_t *j = NULL;
        s = nx_json_load_file(&j, cf);
        const char *mt = NULL;
        if (s == NGPT_OK) s = nx_json_str_opt(j, "model_type", cf, "", &mt);
        if (s == NGPT_OK && strcmp(mt, "nextgpt_projectors") == 0) {
            snprintf(wf, n, "%s/model.safetensors", path);
            *weights_file = wf;
            *cfg = j;
            *cfg_file = cf;
            return NGPT_OK;
        }
        json_decref(j);
    }
    nx_free(cf);
    if (s != NGPT_OK) {
        nx_free(wf);
        return s;
    }
    snprintf(wf, n, "%s/delta.safetensors", path);
    if (!nx_is_file(wf)) snprintf(wf, n, "%s/pytorch_model.pt", path);
    if (!nx_is_file(wf)) {
        nx_free(wf);
        return nx_err(NGPT_ERR_NOT_FOUND, "%s: neither a projector folder (config.json with model_type "
                      "\"nextgpt_projectors\") nor a NExT-GPT delta folder (delta.safetensors or pytorch_model.pt)", path);
    }
    *weights_file = wf;
    return NGPT_OK;
}

static ngpt_status load_all(nx_projector *P, loader *L, const json_t *cfg, const char *cfg_file,
                            const nx_projector_opts *o)
{
    nx_weights *w = L->w;
    const char *file = L->file;
    /* sizes of everything present / asked for */
    const json_t *outs = cfg ? json_object_get(cfg, "output_projectors") : NULL;
    const char *ipkey = input_key;
    int64_t llm = 0, in_dim = 0;
    bool ip_present;
    if (cfg) {
        NX_TRY(nx_json_int(cfg, "llm_hidden_size", cfg_file, &llm));
        if (llm < 1 || llm > (1 << 24))
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: llm_hidden_size is %lld", cfg_file, (long long)llm);
        const json_t *ip = json_object_get(cfg, "input_projector");
        ip_present = ip != NULL;
        if (ip) {
            int64_t od = 0;
            bool bias = true;
            NX_TRY(nx_json_str_opt(ip, "key", cfg_file, input_key, &ipkey));
            NX_TRY(nx_json_int(ip, "in_dim", cfg_file, &in_dim));
            if (in_dim < 1 || in_dim > (1 << 24))
                return nx_err(NGPT_ERR_BAD_FORMAT, "%s: input_projector.in_dim is %lld", cfg_file, (long long)in_dim);
            NX_TRY(nx_json_int_opt(ip, "out_dim", cfg_file, llm, &od));
            NX_TRY(nx_json_bool_opt(ip, "bias", cfg_file, true, &bias));
            if (od != llm) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: input_projector.out_dim %lld != llm_hidden_size %lld",
                                         cfg_file, (long long)od, (long long)llm);
            if (!bias) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: input_projector without bias", cfg_file);
        }
    } else {
        const nx_wtensor *pw = findf(w, "%s.weight", input_key, 0);
        ip_present = pw != NULL;
        if (pw && pw->rank == 2) {
            llm = pw->shape[0];
            in_dim = pw->shape[1];
        }
    }
    bool want_in = o->want_all ? ip_present : o->want_input;
    if (want_in && !ip_present)
        return nx_err(NGPT_ERR_NOT_FOUND, "%s: no input projector ('%s.weight') but it was asked for", cfg ? cfg_file : file,
                      ipkey);
    if (want_in) {
        if (!cfg && in_dim == 0)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: tensor '%s.weight' must be 2-D [llm_hidden, in_dim]", file, ipkey);
        NX_TRY(get_mat(L, &P->proj_w, ipkey, "weight", llm, in_dim));
        NX_TRY(get_f32(L, &P->proj_b, ipkey, "bias", 1, llm, 0, 0));
        P->has_input = true;
        P->in_dim = (int)in_dim;
        P->llm_hidden = (int)llm;
    } else if (ip_present) {
        skip_prefix(w, ipkey);
    }

    int loaded = P->has_input ? 1 : 0;
    for (int s = 0; s < NX_PROJ_N_OUT; s++) {
        textfc *t = &P->out[s];
        const char *key = slot_key[s];
        bool present;
        const json_t *pj = NULL;
        if (cfg) {
            pj = outs ? json_object_get(outs, slot_name[s]) : NULL;
            present = pj != NULL;
            if (pj) NX_TRY(nx_json_str(pj, "key", cfg_file, &key));
        } else {
            present = findf(w, "%s.fc.weight", key, 0) != NULL;
        }
        bool want = o->want_all ? present : o->want_out[s];
        if (want && !present)
            return nx_err(NGPT_ERR_NOT_FOUND, "%s: no %s output projector ('%s.*') but it was asked for",
                          cfg ? cfg_file : file, slot_name[s], key);
        if (!want) {
            if (present) skip_prefix(w, key);
            continue;
        }
        if (cfg) NX_TRY(config_cfg(pj, cfg_file, s, o, &t->c, &key));
        else NX_TRY(derive_cfg(L, key, s, o, &t->c));
        nx_textfc_cfg *c = &t->c;
        if (c->nhead < 1 || c->d_model % c->nhead != 0)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s output projector: nhead %d does not divide d_model %d",
                          file, slot_name[s], c->nhead, c->d_model);
        if (o->num_output_tokens[s] > 0 && o->num_output_tokens[s] != c->num_output_tokens)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s output projector has %d query tokens, %d were asked for",
                          file, slot_name[s], c->num_output_tokens, o->num_output_tokens[s]);
        if (llm == 0) llm = c->in_dim;
        if (c->in_dim != llm)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s output projector takes %d-wide hidden states, the LLM "
                          "hidden size is %lld", file, slot_name[s], c->in_dim, (long long)llm);
        NX_TRY(load_textfc(L, t, key));
        t->loaded = true;
        loaded++;
    }
    if (loaded == 0) return nx_err(NGPT_ERR_NOT_FOUND, "%s: no projector loaded (none asked for, or none in the file)", file);
    P->llm_hidden = (int)llm;
    if (!cfg) skip_prefix(w, llm_prefix);   /* the delta's LLM part: LoRA, embed_tokens, lm_head */
    if (!o->allow_unknown) NX_TRY(nx_weights_check_unused(w));
    return NGPT_OK;
}

ngpt_status nx_projector_load(nx_projector **out, nx_backend *be, const char *path, const nx_projector_opts *o)
{
    *out = NULL;
    char *wf = NULL, *cfg_file = NULL;
    json_t *cfg = NULL;
    NX_TRY(resolve(path, &wf, &cfg, &cfg_file));
    nx_projector *P = nx_calloc(1, sizeof *P);
    ngpt_status s = P ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    nx_weights *w = NULL;
    if (s == NGPT_OK) {
        P->be = be;
        s = nx_weights_open(&w, wf);
    }
    if (s == NGPT_OK) {
        loader L = {be, w, wf};
        s = load_all(P, &L, cfg, cfg_file, o);
    }
    /* the CPU's matrices are views of the mapping; other backends hold copies of everything */
    if (s == NGPT_OK && be->kind == NGPT_BACKEND_CPU) P->w = w;
    else nx_weights_close(w);
    json_decref(cfg);
    nx_free(cfg_file);
    nx_free(wf);
    if (s != NGPT_OK) {
        nx_projector_free(P);
        return s;
    }
    *out = P;
    return NGPT_OK;
}

void nx_projector_free(nx_projector *p)
{
    if (!p) return;
    nx_tensor_free(&p->proj_w);
    nx_tensor_free(&p->proj_b);
    for (int s = 0; s < NX_PROJ_N_OUT; s++) free_textfc(&p->out[s]);
    nx_weights_close(p->w);
    nx_free(p);
}

int nx_projector_llm_hidden(const nx_projector *p) { return p->llm_hidden; }
bool nx_projector_has_input(const nx_projector *p) { return p->has_input; }
int nx_projector_input_dim(const nx_projector *p) { return p->has_input ? p->in_dim : 0; }

const nx_textfc_cfg *nx_projector_out_cfg(const nx_projector *p, int slot)
{
    if (slot < 0 || slot >= NX_PROJ_N_OUT || !p->out[slot].loaded) return NULL;
    return &p->out[slot].c;
}

// ----------------------------------------------------------------------------
// forward

ngpt_status nx_projector_input_forward(nx_projector *p, nx_tensor *y, const nx_tensor *x)
{
    if (!p->has_input) return nx_err(NGPT_ERR_UNSUPPORTED, "projector: no input projector loaded");
    return nx_op_linear(p->be, y, x, &p->proj_w, &p->proj_b);
}

static ngpt_status alloc3(nx_backend *be, nx_tensor *t, int64_t a, int64_t b, int64_t c)
{
    int64_t ne[3] = {a, b, c};
    return nx_tensor_alloc(t, be, NGPT_DTYPE_F32, 3, ne);
}

/* x [B, Sq, d] += out_proj(MHA(q = h [B, Sq, d], k = v = kv [B, Skv, d])). */
static ngpt_status mha_residual(nx_backend *be, nx_tensor *x, const nx_tensor *h, const nx_tensor *kv, const mha_w *w,
                                int nhead)
{
    int64_t B = h->ne[0], Sq = h->ne[1], Skv = kv->ne[1], d = h->ne[2], D = d / nhead;
    nx_tensor q = {0}, k = {0}, v = {0}, a = {0}, o = {0}, q4, k4, v4, a4;
    int64_t qne[4] = {B, Sq, nhead, D}, kne[4] = {B, Skv, nhead, D};
    ngpt_status s = alloc3(be, &q, B, Sq, d);
    if (s == NGPT_OK) s = alloc3(be, &k, B, Skv, d);
    if (s == NGPT_OK) s = alloc3(be, &v, B, Skv, d);
    if (s == NGPT_OK) s = alloc3(be, &a, B, Sq, d);
    if (s == NGPT_OK) s = alloc3(be, &o, B, Sq, d);
    if (s == NGPT_OK) s = nx_op_linear(be, &q, h, &w->q_w, &w->q_b);
    if (s == NGPT_OK) s = nx_op_linear(be, &k, kv, &w->k_w, &w->k_b);
    if (s == NGPT_OK) s = nx_op_linear(be, &v, kv, &w->v_w, &w->v_b);
    if (s == NGPT_OK) s = nx_reshape(&q4, &q, 4, qne);
    if (s == NGPT_OK) s = nx_reshape(&k4, &k, 4, kne);
    if (s == NGPT_OK) s = nx_reshape(&v4, &v, 4, kne);
    if (s == NGPT_OK) s = nx_reshape(&a4, &a, 4, qne);
    if (s == NGPT_OK) s = nx_op_attention(be, &a4, &q4, &k4, &v4, NULL, 1.0f / sqrtf((float)D), false);
    if (s == NGPT_OK) s = nx_op_linear(be, &o, &a, &w->out_w, &w->out_b);
    if (s == NGPT_OK) s = nx_op_binary(be, x, x, &o, NX_BINARY_ADD);
    nx_tensor_free(&q);
    nx_tensor_free(&k);
    nx_tensor_free(&v);
    nx_tensor_free(&a);
    nx_tensor_free(&o);
    return s;
}

/* x [B, S, d] += linear2(relu(linear1(h))). */
static ngpt_status ff_residual(nx_backend *be, nx_tensor *x, const nx_tensor *h, const ff_w *w, int64_t dff)
{
    nx_tensor t = {0}, o = {0};
    ngpt_status s = alloc3(be, &t, h->ne[0], h->ne[1], dff);
    if (s == NGPT_OK) s = alloc3(be, &o, h->ne[0], h->ne[1], h->ne[2]);
    if (s == NGPT_OK) s = nx_op_linear(be, &t, h, &w->lin1_w, &w->lin1_b);
    if (s == NGPT_OK) s = nx_op_unary(be, &t, &t, NX_UNARY_RELU, 0.0f);
    if (s == NGPT_OK) s = nx_op_linear(be, &o, &t, &w->lin2_w, &w->lin2_b);
    if (s == NGPT_OK) s = nx_op_binary(be, x, x, &o, NX_BINARY_ADD);
    nx_tensor_free(&t);
    nx_tensor_free(&o);
    return s;
}

ngpt_status nx_projector_output_forward(nx_projector *p, int slot, nx_tensor *y, const nx_tensor *hidden,
                                        const nx_tensor *input_embs)
{
    const nx_textfc_cfg *c = nx_projector_out_cfg(p, slot);
    if (!c) return nx_err(NGPT_ERR_UNSUPPORTED, "projector: no %s output projector loaded",
                          slot >= 0 && slot < NX_PROJ_N_OUT ? slot_name[slot] : "such");
    const textfc *t = &p->out[slot];
    nx_backend *be = p->be;
    int64_t B = hidden->ne[0], Sin = hidden->ne[1], Sout = c->num_output_tokens, d = c->d_model;
    nx_tensor sum = {0}, x = {0}, h = {0}, mem = {0}, q = {0}, hq = {0}, yd = {0};
    float *qh = NULL;
    ngpt_status s = nx_tensor_alloc(&sum, be, NGPT_DTYPE_F32, hidden->rank, hidden->ne);
    if (s == NGPT_OK) s = alloc3(be, &x, B, Sin, d);
    if (s == NGPT_OK) s = alloc3(be, &h, B, Sin, d);
    if (s == NGPT_OK) s = alloc3(be, &mem, B, Sin, d);
    if (s == NGPT_OK) s = alloc3(be, &q, B, Sout, d);
    if (s == NGPT_OK) s = alloc3(be, &hq, B, Sout, d);
    if (s == NGPT_OK) s = alloc3(be, &yd, B, Sout, d);

    /* x = fc(hidden + input_embs) */
    if (s == NGPT_OK) s = nx_op_binary(be, &sum, hidden, input_embs, NX_BINARY_ADD);
    if (s == NGPT_OK) s = nx_op_linear(be, &x, &sum, &t->fc_w, &t->fc_b);
    /* encoder: memory = LN_enc(layers(x)) */
    for (int i = 0; s == NGPT_OK && i < c->n_enc; i++) {
        const enc_layer *l = &t->enc[i];
        s = nx_op_layer_norm(be, &h, &x, &l->norm1_w, &l->norm1_b, c->eps);
        if (s == NGPT_OK) s = mha_residual(be, &x, &h, &h, &l->sa, c->nhead);
        if (s == NGPT_OK) s = nx_op_layer_norm(be, &h, &x, &l->norm2_w, &l->norm2_b, c->eps);
        if (s == NGPT_OK) s = ff_residual(be, &x, &h, &l->ff, c->d_ff);
    }
    if (s == NGPT_OK) s = nx_op_layer_norm(be, &mem, &x, &t->enc_norm_w, &t->enc_norm_b, c->eps);
    /* decoder: tgt = query_embs repeated over the batch */
    if (s == NGPT_OK) {
        size_t per = (size_t)Sout * (size_t)d;
        qh = nx_malloc((size_t)(B ? B : 1) * per * sizeof *qh);
        if (!qh) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "projector: out of memory");
        for (int64_t b = 0; s == NGPT_OK && b < B; b++) memcpy(qh + (size_t)b * per, t->query_host, per * sizeof *qh);
        if (s == NGPT_OK) s = nx_tensor_upload(&q, qh, (size_t)B * per * sizeof *qh);
    }
    for (int i = 0; s == NGPT_OK && i < c->n_dec; i++) {
        const dec_layer *l = &t->dec[i];
        s = nx_op_layer_norm(be, &hq, &q, &l->norm1_w, &l->norm1_b, c->eps);
        if (s == NGPT_OK) s = mha_residual(be, &q, &hq, &hq, &l->sa, c->nhead);
        if (s == NGPT_OK) s = nx_op_layer_norm(be, &hq, &q, &l->norm2_w, &l->norm2_b, c->eps);
        if (s == NGPT_OK) s = mha_residual(be, &q, &hq, &mem, &l->ca, c->nhead);
        if (s == NGPT_OK) s = nx_op_layer_norm(be, &hq, &q, &l->norm3_w, &l->norm3_b, c->eps);
        if (s == NGPT_OK) s = ff_residual(be, &q, &hq, &l->ff, c->d_ff);
    }
    if (s == NGPT_OK) s = nx_op_layer_norm(be, &yd, &q, &t->dec_norm_w, &t->dec_norm_b, c->eps);
    /* conditioning = model(y) */
    if (s == NGPT_OK) s = nx_op_linear(be, y, &yd, &t->model_w, &t->model_b);
    nx_free(qh);
    nx_tensor_free(&sum);
    nx_tensor_free(&x);
    nx_tensor_free(&h);
    nx_tensor_free(&mem);
    nx_tensor_free(&q);
    nx_tensor_free(&hq);
    nx_tensor_free(&yd);
    return s;
}
