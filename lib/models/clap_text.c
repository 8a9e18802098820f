/* clap_text.c — ClapTextModelWithProjection (transformers, models/clap/modeling_clap.py) against
 * the op layer.
 *
 *   pos[b, s] = pad + cumsum(ids[b] != pad)[s] if ids[b, s] != pad else pad   (RoBERTa's ids)
 *   x = LN_emb(word[ids] + token_type[0] + position[pos])                     [B, S, D]
 *   per layer (post-LN, BERT):
 *     a = attention(query(x), key(x), value(x))      H heads, scale hd^-0.5, additive mask
 *                                                     (1 - attention_mask) * finfo(f32).min
 *     x = LN1(x + dense_o(a))
 *     x = LN2(x + dense_out(act(dense_in(x))))       act = config hidden_act (gelu)
 *   pooled = tanh(pooler(x[:, 0]))                                             [B, D]
 *   text_embeds = linear2(proj_act(linear1(pooled)))                          [B, P]
 * LayerNorm eps = layer_norm_eps (1e-12 in CLAP's config). Dropout is off (eval). The AudioLDM
 * pipeline L2-normalises text_embeds; that is left to the caller (lib/api/decoder_text.c).
 */
#include "clap_text.h"

#include "mweights.h"

#include "../core/alloc.h"
#include "../core/json.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CL_MAX_LAYERS 64

typedef struct cl_config {
    int      vocab_size, hidden, layers, heads, inter, max_pos, type_vocab, proj, pad;
    float    eps;
    nx_unary act, proj_act;
} cl_config;

typedef struct cl_layer {
    const nx_tensor *q_w, *q_b, *k_w, *k_b;   /* [D, D], [D] */
    const nx_tensor *v_w, *v_b, *o_w, *o_b;   /* [D, D], [D] */
    const nx_tensor *ln1_w, *ln1_b;           /* [D] attention.output.LayerNorm */
    const nx_tensor *fc1_w, *fc1_b;           /* [I, D], [I] intermediate.dense */
    const nx_tensor *fc2_w, *fc2_b;           /* [D, I], [D] output.dense */
    const nx_tensor *ln2_w, *ln2_b;           /* [D] output.LayerNorm */
} cl_layer;

struct nx_clap_text {
    nx_backend *be;
    cl_config   cfg;
    nx_mw       mw;
    const nx_tensor *word;            /* [V, D] */
    const nx_tensor *pos;             /* [P, D] (P = max_position_embeddings) */
    const nx_tensor *type;            /* [T, D] (row 0 is used: token_type_ids are zeros) */
    const nx_tensor *lne_w, *lne_b;   /* [D] embeddings.LayerNorm */
    cl_layer    layer[CL_MAX_LAYERS];
    const nx_tensor *pool_w, *pool_b; /* [D, D], [D] */
    const nx_tensor *p1_w, *p1_b;     /* [Pj, D], [Pj] text_projection.linear1 */
    const nx_tensor *p2_w, *p2_b;     /* [Pj, Pj], [Pj] text_projection.linear2 */
};

static ngpt_status parse_act(const char *path, const char *key, const char *name, nx_unary *out)
{
    if (strcmp(name, "gelu") == 0) *out = NX_UNARY_GELU;
    else if (strcmp(name, "gelu_new") == 0 || strcmp(name, "gelu_pytorch_tanh") == 0) *out = NX_UNARY_GELU_TANH;
    else if (strcmp(name, "relu") == 0) *out = NX_UNARY_RELU;
    else if (strcmp(name, "tanh") == 0) *out = NX_UNARY_TANH;
    else if (strcmp(name, "silu") == 0 || strcmp(name, "swish") == 0) *out = NX_UNARY_SILU;
    else
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: %s '%s' is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, "
                      "tanh, silu are)", path, key, name);
    return NGPT_OK;
}

static ngpt_status read_config(cl_config *c, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    ngpt_status s = NGPT_OK;
    const char *mt = NULL, *act = NULL, *pe = NULL;
    s = nx_json_str_opt(j, "model_type", path, "clap_text_model", &mt);
    if (s == NGPT_OK && strcmp(mt, "clap_text_model") != 0)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'model_type' is '%s' (only ClapTextModelWithProjection's "
                   "'clap_text_model' is supported)", path, mt);
    int64_t v = 0;
#define GETI(key, def, field, lo, hi)                                                     \
    if (s == NGPT_OK) s = nx_json_int_opt(j, key, path, def, &v);                         \
    if (s == NGPT_OK && (v < (lo) || v > (hi)))                                           \
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is %lld", path, key, (long long)v);     \
    if (s == NGPT_OK) c->field = (int)v;
    GETI("vocab_size", 50265, vocab_size, 1, 1 << 24)
    GETI("hidden_size", 768, hidden, 1, 1 << 16)
    GETI("num_hidden_layers", 12, layers, 1, 1 << 16)
    GETI("num_attention_heads", 12, heads, 1, 1 << 12)
    GETI("intermediate_size", 3072, inter, 1, 1 << 18)
    GETI("max_position_embeddings", 514, max_pos, 1, 1 << 16)
    GETI("type_vocab_size", 1, type_vocab, 1, 1 << 16)
    GETI("projection_dim", 512, proj, 1, 1 << 16)
    GETI("pad_token_id", 1, pad, 0, 1 << 24)
#undef GETI
    if (s == NGPT_OK && c->layers > CL_MAX_LAYERS)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: %d layers (at most %d supported)", path, c->layers, CL_MAX_LAYERS);
    if (s == NGPT_OK && c->hidden % c->heads)
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path, c->hidden,
                   c->heads);
    if (s == NGPT_OK && (c->pad >= c->vocab_size || c->max_pos < c->pad + 3))
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: pad_token_id %d does not fit vocab_size %d and max_position_embeddings %d",
                   path, c->pad, c->vocab_size, c->max_pos);
    double eps = 1e-12;
    if (s == NGPT_OK) s = nx_json_num_opt(j, "layer_norm_eps", path, 1e-12, &eps);
    c->eps = (float)eps;
    if (s == NGPT_OK) s = nx_json_str_opt(j, "position_embedding_type", path, "absolute", &pe);
    if (s == NGPT_OK && strcmp(pe, "absolute") != 0)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: position_embedding_type '%s' is not supported (only 'absolute')", path, pe);
    if (s == NGPT_OK) s = nx_json_str_opt(j, "hidden_act", path, "gelu", &act);
    if (s == NGPT_OK) s = parse_act(path, "hidden_act", act, &c->act);
    if (s == NGPT_OK) s = nx_json_str_opt(j, "projection_hidden_act", path, "relu", &act);
    if (s == NGPT_OK) s = parse_act(path, "projection_hidden_act", act, &c->proj_act);
    bool dec = false;
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "is_decoder", path, false, &dec);
    if (s == NGPT_OK && dec) s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: is_decoder true is not supported", path);
    json_decref(j);
    return s;
}


static ngpt_status load_weights(nx_clap_text *m)
{
    const cl_config *c = &m->cfg;
    nx_mw *w = &m->mw;
    int64_t D = c->hidden, I = c->inter, P = c->proj;
#define E "text_model.embeddings."
    NX_TRY(nx_mw_get_fmt(w, &m->word, c->vocab_size, D, E "word_embeddings.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->pos, c->max_pos, D, E "position_embeddings.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->type, c->type_vocab, D, E "token_type_embeddings.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->lne_w, D, 0, E "LayerNorm.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->lne_b, D, 0, E "LayerNorm.bias", 0));
    nx_weights_mark_used(w->w, E "position_ids");    /* buffers: arange(P), zeros */
    nx_weights_mark_used(w->w, E "token_type_ids");
#undef E
    for (int i = 0; i < c->layers; i++) {
        cl_layer *L = &m->layer[i];
#define P_ "text_model.encoder.layer.%d."
        NX_TRY(nx_mw_get_fmt(w, &L->q_w, D, D, P_ "attention.self.query.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->q_b, D, 0, P_ "attention.self.query.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->k_w, D, D, P_ "attention.self.key.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->k_b, D, 0, P_ "attention.self.key.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->v_w, D, D, P_ "attention.self.value.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->v_b, D, 0, P_ "attention.self.value.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->o_w, D, D, P_ "attention.output.dense.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->o_b, D, 0, P_ "attention.output.dense.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->ln1_w, D, 0, P_ "attention.output.LayerNorm.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->ln1_b, D, 0, P_ "attention.output.LayerNorm.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->fc1_w, I, D, P_ "intermediate.dense.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->fc1_b, I, 0, P_ "intermediate.dense.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->fc2_w, D, I, P_ "output.dense.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->fc2_b, D, 0, P_ "output.dense.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->ln2_w, D, 0, P_ "output.LayerNorm.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->ln2_b, D, 0, P_ "output.LayerNorm.bias", i));
#undef P_
    }
    NX_TRY(nx_mw_get_fmt(w, &m->pool_w, D, D, "text_model.pooler.dense.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->pool_b, D, 0, "text_model.pooler.dense.bias", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->p1_w, P, D, "text_projection.linear1.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->p1_b, P, 0, "text_projection.linear1.bias", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->p2_w, P, P, "text_projection.linear2.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->p2_b, P, 0, "text_projection.linear2.bias", 0));
    return nx_mw_check_unused(w);
}

ngpt_status nx_clap_text_load(nx_clap_text **out, nx_backend *be, const char *dir)
{
    *out = NULL;
    nx_clap_text *m = nx_calloc(1, sizeof *m);
    if (!m) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    m->be = be;
    ngpt_status s = read_config(&m->cfg, dir);
    static const char *const files[] = {"model.safetensors", "pytorch_model.bin", NULL};
    if (s == NGPT_OK) s = nx_mw_open(&m->mw, be, dir, files);
    if (s == NGPT_OK) s = load_weights(m);
    if (s != NGPT_OK) {
        nx_clap_text_free(m);
        return s;
    }
    *out = m;
    return NGPT_OK;
}

void nx_clap_text_free(nx_clap_text *m)
{
    if (!m) return;
    nx_mw_close(&m->mw);
    nx_free(m);
}

int nx_clap_text_projection_dim(const nx_clap_text *m) { return m->cfg.proj; }
int nx_clap_text_max_tokens(const nx_clap_text *m) { return m->cfg.max_pos - m->cfg.pad - 1; }
int nx_clap_text_vocab_size(const nx_clap_text *m) { return m->cfg.vocab_size; }

/* ---- forward ---- */

/* Host side: RoBERTa's position ids, the first-token row indices and the additive mask
 * [B, S, S] (NULL when every token is attended). */
static ngpt_status host_inputs(const cl_config *c, const int32_t *ids, const int32_t *mask, int64_t B, int64_t S,
                               int32_t **pos, int32_t **first, float **amask)
{
    *pos = nx_malloc((size_t)(B * S) * sizeof **pos);
    *first = nx_malloc((size_t)B * sizeof **first);
    if (!*pos || !*first) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "text encoder: out of memory");
    for (int64_t b = 0; b < B; b++) {
        int32_t n = 0;
        for (int64_t i = 0; i < S; i++) {
            bool real = ids[b * S + i] != c->pad;
            n += real;
            (*pos)[b * S + i] = real ? c->pad + n : c->pad;
        }
        (*first)[b] = (int32_t)(b * S);
    }
    bool all = true;
    for (int64_t i = 0; mask && i < B * S; i++) all = all && mask[i] != 0;
    if (all) return NGPT_OK;
    *amask = nx_malloc((size_t)(B * S * S) * sizeof **amask);
    if (!*amask) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "text encoder: out of memory");
    for (int64_t b = 0; b < B; b++)
        for (int64_t q = 0; q < S; q++)
            for (int64_t k = 0; k < S; k++) (*amask)[(b * S + q) * S + k] = mask[b * S + k] ? 0.0f : -FLT_MAX;
    return NGPT_OK;
}

ngpt_status nx_clap_text_forward(nx_clap_text *m, nx_tensor *out, const int32_t *ids, const int32_t *mask, int64_t B,
                                 int64_t S)
{
    const cl_config *c = &m->cfg;
    nx_backend *be = m->be;
    int64_t D = c->hidden, H = c->heads, hd = D / H, Pj = c->proj;
    if (B < 1 || S < 1 || S > nx_clap_text_max_tokens(m))
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "text encoder: %lld x %lld tokens (1..%d per sequence)", (long long)B,
                      (long long)S, nx_clap_text_max_tokens(m));
    if (out->rank != 2 || out->ne[0] != B || out->ne[1] != Pj)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "text encoder: output must be [%lld, %lld]", (long long)B, (long long)Pj);
    int32_t *pos_host = NULL, *first_host = NULL;
    float *mask_host = NULL;
    ngpt_status s = host_inputs(c, ids, mask, B, S, &pos_host, &first_host, &mask_host);

    nx_tensor tid = {0}, pid = {0}, fid = {0}, am = {0}, x = {0}, e = {0}, h = {0}, q = {0}, k = {0}, v = {0}, a = {0},
              f = {0}, p0 = {0}, p1 = {0};
    int64_t n_tok = B * S;
    int64_t s1[1] = {n_tok}, sb[1] = {B}, sx[3] = {B, S, D}, sf[3] = {B, S, c->inter}, sm[3] = {B, S, S};
    int64_t sp0[2] = {B, D}, sp1[2] = {B, Pj};
    if (s == NGPT_OK) s = nx_tensor_alloc(&tid, be, NGPT_DTYPE_I32, 1, s1);
    if (s == NGPT_OK) s = nx_tensor_upload(&tid, ids, (size_t)n_tok * sizeof *ids);
    if (s == NGPT_OK) s = nx_tensor_alloc(&pid, be, NGPT_DTYPE_I32, 1, s1);
    if (s == NGPT_OK) s = nx_tensor_upload(&pid, pos_host, (size_t)n_tok * sizeof *pos_host);
    if (s == NGPT_OK) s = nx_tensor_alloc(&fid, be, NGPT_DTYPE_I32, 1, sb);
    if (s == NGPT_OK) s = nx_tensor_upload(&fid, first_host, (size_t)B * sizeof *first_host);
    if (s == NGPT_OK && mask_host) s = nx_tensor_alloc(&am, be, NGPT_DTYPE_F32, 3, sm);
    if (s == NGPT_OK && mask_host) s = nx_tensor_upload(&am, mask_host, (size_t)(B * S * S) * sizeof *mask_host);
    nx_tensor *xs[] = {&x, &e, &h, &q, &k, &v, &a};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++)
        if (s == NGPT_OK) s = nx_tensor_alloc(xs[i], be, NGPT_DTYPE_F32, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&f, be, NGPT_DTYPE_F32, 3, sf);
    if (s == NGPT_OK) s = nx_tensor_alloc(&p0, be, NGPT_DTYPE_F32, 2, sp0);
    if (s == NGPT_OK) s = nx_tensor_alloc(&p1, be, NGPT_DTYPE_F32, 2, sp1);

    /* embeddings */
    int64_t s2[2] = {n_tok, D}, sd[1] = {D};
    if (s == NGPT_OK) {
        nx_tensor x2 = nx_view(NGPT_DTYPE_F32, 2, s2, x.data, x.be);
        s = nx_op_get_rows(be, &x2, m->word, &tid);
    }
    if (s == NGPT_OK) {
        nx_tensor e2 = nx_view(NGPT_DTYPE_F32, 2, s2, e.data, e.be);
        s = nx_op_get_rows(be, &e2, m->pos, &pid);
    }
    if (s == NGPT_OK) s = nx_op_binary(be, &e, &x, &e, NX_BINARY_ADD);
    if (s == NGPT_OK) {
        nx_tensor t0 = nx_view(m->type->dtype, 1, sd, m->type->data, m->type->be);  /* token_type_ids = 0 */
        s = nx_op_binary(be, &e, &e, &t0, NX_BINARY_ADD);
    }
    if (s == NGPT_OK) s = nx_op_layer_norm(be, &x, &e, m->lne_w, m->lne_b, c->eps);

    int64_t s4[4] = {B, S, H, hd};
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; s == NGPT_OK && i < c->layers; i++) {
        const cl_layer *L = &m->layer[i];
        s = nx_op_linear(be, &q, &x, L->q_w, L->q_b);
        if (s == NGPT_OK) s = nx_op_linear(be, &k, &x, L->k_w, L->k_b);
        if (s == NGPT_OK) s = nx_op_linear(be, &v, &x, L->v_w, L->v_b);
        if (s == NGPT_OK) {
            nx_tensor q4 = nx_view(NGPT_DTYPE_F32, 4, s4, q.data, q.be), k4 = nx_view(NGPT_DTYPE_F32, 4, s4, k.data, k.be);
            nx_tensor v4 = nx_view(NGPT_DTYPE_F32, 4, s4, v.data, v.be), a4 = nx_view(NGPT_DTYPE_F32, 4, s4, a.data, a.be);
            s = nx_op_attention(be, &a4, &q4, &k4, &v4, mask_host ? &am : NULL, scale, false);
        }
        if (s == NGPT_OK) s = nx_op_linear(be, &h, &a, L->o_w, L->o_b);
        if (s == NGPT_OK) s = nx_op_binary(be, &h, &h, &x, NX_BINARY_ADD);
        if (s == NGPT_OK) s = nx_op_layer_norm(be, &x, &h, L->ln1_w, L->ln1_b, c->eps);
        if (s == NGPT_OK) s = nx_op_linear(be, &f, &x, L->fc1_w, L->fc1_b);
        if (s == NGPT_OK) s = nx_op_unary(be, &f, &f, c->act, 0.0f);
        if (s == NGPT_OK) s = nx_op_linear(be, &h, &f, L->fc2_w, L->fc2_b);
        if (s == NGPT_OK) s = nx_op_binary(be, &h, &h, &x, NX_BINARY_ADD);
        if (s == NGPT_OK) s = nx_op_layer_norm(be, &x, &h, L->ln2_w, L->ln2_b, c->eps);
    }
    /* pooler on the first token, then the projection */
    if (s == NGPT_OK) {
        nx_tensor x2 = nx_view(NGPT_DTYPE_F32, 2, s2, x.data, x.be);
        s = nx_op_get_rows(be, &p0, &x2, &fid);
    }
    nx_tensor pooled = {0};
    if (s == NGPT_OK) {
        pooled = nx_view(NGPT_DTYPE_F32, 2, sp0, e.data, e.be);  /* e is free again: [B, D] fits */
        s = nx_op_linear(be, &pooled, &p0, m->pool_w, m->pool_b);
    }
    if (s == NGPT_OK) s = nx_op_unary(be, &pooled, &pooled, NX_UNARY_TANH, 0.0f);
    if (s == NGPT_OK) s = nx_op_linear(be, &p1, &pooled, m->p1_w, m->p1_b);
    if (s == NGPT_OK) s = nx_op_unary(be, &p1, &p1, c->proj_act, 0.0f);
    if (s == NGPT_OK) s = nx_op_linear(be, out, &p1, m->p2_w, m->p2_b);
    nx_tensor *all[] = {&tid, &pid, &fid, &am, &x, &e, &h, &q, &k, &v, &a, &f, &p0, &p1};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nx_tensor_free(all[i]);
    nx_free(pos_host);
    nx_free(first_host);
    nx_free(mask_host);
    return s;
}
