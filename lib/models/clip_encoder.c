/* clip_encoder.c — CLIPEncoder (transformers 4.29) against the op layer; see clip_encoder.h. */
#include "clip_encoder.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

ngpt_status nx_clip_enc_read_config(nx_clip_enc_config *c, const json_t *obj, const char *file,
                                    const nx_clip_enc_config *def)
{
    *c = *def;
    ngpt_status s = NGPT_OK;
    int64_t v = 0;
#define GETI(key, field, hi)                                                              \
    if (s == NGPT_OK) s = nx_json_int_opt(obj, key, file, def->field, &v);                \
    if (s == NGPT_OK && (v < 1 || v > (hi)))                                              \
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is %lld", file, key, (long long)v);     \
    if (s == NGPT_OK) c->field = (int)v;
    GETI("hidden_size", hidden, 1 << 16)
    GETI("num_hidden_layers", layers, 1 << 16)
    GETI("num_attention_heads", heads, 1 << 12)
    GETI("intermediate_size", inter, 1 << 18)
#undef GETI
    if (s == NGPT_OK && c->layers > NX_CLIP_MAX_LAYERS)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: %d layers (at most %d supported)", file, c->layers, NX_CLIP_MAX_LAYERS);
    if (s == NGPT_OK && c->hidden % c->heads)
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", file,
                   c->hidden, c->heads);
    double eps = def->eps;
    if (s == NGPT_OK) s = nx_json_num_opt(obj, "layer_norm_eps", file, def->eps, &eps);
    if (s == NGPT_OK && !(eps >= 0.0 && eps < 1.0))
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'layer_norm_eps' is %g", file, eps);
    c->eps = (float)eps;
    const char *act = NULL;
    if (s == NGPT_OK) s = nx_json_str_opt(obj, "hidden_act", file, "quick_gelu", &act);
    if (s == NGPT_OK) {
        if (strcmp(act, "quick_gelu") == 0) c->act = NX_UNARY_QUICK_GELU;
        else if (strcmp(act, "gelu") == 0) c->act = NX_UNARY_GELU;
        else if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0) c->act = NX_UNARY_GELU_TANH;
        else
            s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (quick_gelu, gelu, gelu_new, "
                       "gelu_pytorch_tanh are)", file, act);
    }
    return s;
}

ngpt_status nx_clip_enc_load(nx_clip_enc *e, nx_mw *w, const char *prefix)
{
    const nx_clip_enc_config *c = &e->cfg;
    int64_t D = c->hidden, I = c->inter;
    static const char *const names[] = {
        "layer_norm1.weight", "layer_norm1.bias", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
        "self_attn.k_proj.weight", "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias",
        "self_attn.out_proj.weight", "self_attn.out_proj.bias", "layer_norm2.weight", "layer_norm2.bias",
        "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"};
    for (int i = 0; i < c->layers; i++) {
        nx_clip_enc_layer *L = &e->layer[i];
        const nx_tensor **dst[] = {&L->ln1_w, &L->ln1_b, &L->q_w, &L->q_b, &L->k_w, &L->k_b, &L->v_w, &L->v_b,
                                   &L->o_w, &L->o_b, &L->ln2_w, &L->ln2_b, &L->fc1_w, &L->fc1_b, &L->fc2_w, &L->fc2_b};
        /* [rows, cols] of each (cols 0: a vector) */
        const int64_t shape[][2] = {{D, 0}, {D, 0}, {D, D}, {D, 0}, {D, D}, {D, 0}, {D, D}, {D, 0},
                                    {D, D}, {D, 0}, {D, 0}, {D, 0}, {I, D}, {I, 0}, {D, I}, {D, 0}};
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
            char fmt[256];
            if (snprintf(fmt, sizeof fmt, "%s%%d.%s", prefix, names[k]) >= (int)sizeof fmt)
                return nx_err(NGPT_ERR_INVALID_ARGUMENT, "CLIP encoder: tensor prefix too long");
            NX_TRY(nx_mw_get_fmt(w, dst[k], shape[k][0], shape[k][1], fmt, i));
        }
    }
    return NGPT_OK;
}

ngpt_status nx_clip_enc_forward(const nx_clip_enc *e, nx_backend *be, nx_tensor *x, bool causal)
{
    const nx_clip_enc_config *c = &e->cfg;
    ngpt_dtype dt = x->dtype;
    int64_t B = x->ne[0], S = x->ne[1], D = c->hidden, H = c->heads, hd = D / H;
    if (x->rank != 3 || x->ne[2] != D)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "CLIP encoder: input must be [B, S, %lld]", (long long)D);
    nx_tensor h = {0}, q = {0}, k = {0}, v = {0}, a = {0}, f = {0};
    int64_t sx[3] = {B, S, D}, sf[3] = {B, S, c->inter};
    ngpt_status s = nx_tensor_alloc(&h, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&q, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&k, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&v, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&a, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&f, be, dt, 3, sf);
    int64_t s4[4] = {B, S, H, hd};
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; s == NGPT_OK && i < c->layers; i++) {
        const nx_clip_enc_layer *L = &e->layer[i];
        s = nx_op_layer_norm(be, &h, x, L->ln1_w, L->ln1_b, c->eps);
        if (s == NGPT_OK) s = nx_op_linear(be, &q, &h, L->q_w, L->q_b);
        if (s == NGPT_OK) s = nx_op_linear(be, &k, &h, L->k_w, L->k_b);
        if (s == NGPT_OK) s = nx_op_linear(be, &v, &h, L->v_w, L->v_b);
        if (s == NGPT_OK) {
            nx_tensor q4 = nx_view(dt, 4, s4, q.data, q.be), k4 = nx_view(dt, 4, s4, k.data, k.be);
            nx_tensor v4 = nx_view(dt, 4, s4, v.data, v.be), a4 = nx_view(dt, 4, s4, a.data, a.be);
            s = nx_op_attention(be, &a4, &q4, &k4, &v4, NULL, scale, causal);
        }
        if (s == NGPT_OK) s = nx_op_linear(be, &h, &a, L->o_w, L->o_b);
        if (s == NGPT_OK) s = nx_op_binary(be, x, x, &h, NX_BINARY_ADD);
        if (s == NGPT_OK) s = nx_op_layer_norm(be, &h, x, L->ln2_w, L->ln2_b, c->eps);
        if (s == NGPT_OK) s = nx_op_linear(be, &f, &h, L->fc1_w, L->fc1_b);
        if (s == NGPT_OK) s = nx_op_unary(be, &f, &f, c->act, 0.0f);
        if (s == NGPT_OK) s = nx_op_linear(be, &h, &f, L->fc2_w, L->fc2_b);
        if (s == NGPT_OK) s = nx_op_binary(be, x, x, &h, NX_BINARY_ADD);
    }
    nx_tensor *all[] = {&h, &q, &k, &v, &a, &f};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nx_tensor_free(all[i]);
    return s;
}
