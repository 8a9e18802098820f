/* unet_blocks.c — ResnetBlock2D, Attention, BasicTransformerBlock, Transformer2DModel and the
 * timestep embedding of diffusers 0.17, as flat lists of op calls (see unet_blocks.h). */
#include "unet_blocks.h"

#include "../core/alloc.h"
#include "../core/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * weight fetching */

static ngpt_status wl_get(nx_wload *wl, nx_tensor *out, int rank, const int64_t *shape, const char *name)
{
    memset(out, 0, sizeof *out);
    if (wl->record) {
        *out = nx_view(NGPT_DTYPE_F32, rank, shape, NULL, NULL);
        return wl->record(wl->record_user, name, rank, shape);
    }
    const nx_wtensor *wt;
    NX_TRY(nx_weights_get(wl->w, name, NX_FLOAT_DTYPES, rank, shape, &wt));
    return nx_weight_fetch(out, wl->be, wt, rank, shape, wl->dt);
}

ngpt_status nx_wl_get(nx_wload *wl, nx_tensor *out, int rank, const int64_t *shape, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return wl_get(wl, out, rank, shape, name);
}

ngpt_status nx_wl_get_linear(nx_wload *wl, nx_tensor *out, int64_t n, int64_t k, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    NX_TRY(wl_get(wl, out, 2, (const int64_t[]){n, k}, name));
    return nx_wl_pack_linear(wl, out);
}

ngpt_status nx_wl_pack_linear(nx_wload *wl, nx_tensor *w)
{
    if (wl->record || !w->owns) return NGPT_OK;
    ngpt_status s = nx_op_linear_pack(wl->be, w);
    if (s != NGPT_OK) nx_tensor_free(w);
    return s;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NX_TRYG(expr) do { if ((s = (expr)) != NGPT_OK) goto done; } while (0)

/* ---------------------------------------------------------------------------------------------
 * Conv2d */

static nx_conv_params conv2d_params(const nx_conv2d *c)
{
    nx_conv_params p = nx_conv_params_default();
    p.stride[0] = p.stride[1] = c->stride;
    p.pad[0] = p.pad[1] = c->pad;
    p.channels_last = c->cl;
    return p;
}

ngpt_status nx_conv2d_load(nx_conv2d *c, nx_wload *wl, const char *prefix, int in_ch, int out_ch, int k,
                           int stride, int pad)
{
    memset(c, 0, sizeof *c);
    c->in_ch = in_ch, c->out_ch = out_ch, c->k = k, c->stride = stride, c->pad = pad;
    c->cl = wl->channels_last;
    ngpt_status s;
    NX_TRYG(nx_wl_get(wl, &c->w, 4, SHAPE(out_ch, in_ch, k, k), "%s.weight", prefix));
    if (c->cl && !wl->record) NX_TRYG(nx_filter_to_nhwc(wl->be, &c->w));
    if (!wl->record && c->w.owns) { /* a copy of our own (the CPU's BF16 compute): packed for its convolutions */
        const nx_conv_params p = conv2d_params(c);
        NX_TRYG(nx_op_conv_pack(wl->be, &c->w, &p));
    }
    NX_TRYG(nx_wl_get(wl, &c->b, 1, SHAPE(out_ch), "%s.bias", prefix));
    return NGPT_OK;
done:
    nx_conv2d_free(c);
    return s;
}

ngpt_status nx_conv2d_forward(nx_backend *be, const nx_conv2d *c, nx_tensor *y, const nx_tensor *x)
{
    const nx_conv_params p = conv2d_params(c);
    return nx_op_conv(be, y, x, &c->w, &c->b, &p);
}

ngpt_status nx_conv2d_norm_forward(nx_backend *be, const nx_conv2d *c, nx_tensor *y, const nx_tensor *x,
                                   const nx_tensor *gw, const nx_tensor *gb, int groups, float eps)
{
    const nx_conv_params p = conv2d_params(c);
    const unsigned gn = NX_GN_SILU | (c->cl ? NX_GN_CHANNELS_LAST : 0);
    return nx_op_group_norm_conv(be, y, x, gw, gb, groups, eps, gn, &c->w, &c->b, &p);
}

ngpt_status nx_conv2d_new(nx_backend *be, const nx_conv2d *c, nx_tensor *y, const nx_tensor *x)
{
    const nx_img d = nx_img_of(x, c->cl);
    int64_t ho = (d.h + 2 * c->pad - c->k) / c->stride + 1;
    int64_t wo = (d.w + 2 * c->pad - c->k) / c->stride + 1;
    NX_TRY(nx_img_new(be, x->dtype, y, c->cl, d.n, c->out_ch, ho, wo));
    ngpt_status s = nx_conv2d_forward(be, c, y, x);
    if (s != NGPT_OK) nx_tensor_free(y);
    return s;
}

void nx_conv2d_free(nx_conv2d *c)
{
    nx_tensor_free(&c->w);
    nx_tensor_free(&c->b);
}

/* ---------------------------------------------------------------------------------------------
 * ResnetBlock2D */

ngpt_status nx_resnet2d_load(nx_resnet2d *r, nx_wload *wl, const char *prefix, int in_ch, int out_ch,
                             int temb_ch, int groups, float eps, float out_scale)
{
    memset(r, 0, sizeof *r);
    r->in_ch = in_ch, r->out_ch = out_ch, r->temb_ch = temb_ch, r->groups = groups;
    r->eps = eps, r->out_scale = out_scale, r->cl = wl->channels_last;
    char p[256];
    ngpt_status s;
    NX_TRYG(nx_wl_get(wl, &r->norm1_w, 1, SHAPE(in_ch), "%s.norm1.weight", prefix));
    NX_TRYG(nx_wl_get(wl, &r->norm1_b, 1, SHAPE(in_ch), "%s.norm1.bias", prefix));
    snprintf(p, sizeof p, "%s.conv1", prefix);
    NX_TRYG(nx_conv2d_load(&r->conv1, wl, p, in_ch, out_ch, 3, 1, 1));
    if (temb_ch > 0) {
        NX_TRYG(nx_wl_get(wl, &r->temb_w, 2, SHAPE(out_ch, temb_ch), "%s.time_emb_proj.weight", prefix));
        NX_TRYG(nx_wl_get(wl, &r->temb_b, 1, SHAPE(out_ch), "%s.time_emb_proj.bias", prefix));
    }
    NX_TRYG(nx_wl_get(wl, &r->norm2_w, 1, SHAPE(out_ch), "%s.norm2.weight", prefix));
    NX_TRYG(nx_wl_get(wl, &r->norm2_b, 1, SHAPE(out_ch), "%s.norm2.bias", prefix));
    snprintf(p, sizeof p, "%s.conv2", prefix);
    NX_TRYG(nx_conv2d_load(&r->conv2, wl, p, out_ch, out_ch, 3, 1, 1));
    r->has_shortcut = in_ch != out_ch;
    if (r->has_shortcut) {
        snprintf(p, sizeof p, "%s.conv_shortcut", prefix);
        NX_TRYG(nx_conv2d_load(&r->shortcut, wl, p, in_ch, out_ch, 1, 1, 0));
    }
    return NGPT_OK;
done:
    nx_resnet2d_free(r);
    return s;
}

ngpt_status nx_resnet2d_forward(nx_backend *be, const nx_resnet2d *r, nx_tensor *y, const nx_tensor *x,
                                const nx_tensor *temb_act)
{
    const nx_img d = nx_img_of(x, r->cl);
    nx_tensor h = {0}, h2 = {0}, t = {0}, t4;
    ngpt_status s;
    /* h = conv1(silu(norm1(x))) */
    NX_TRYG(nx_img_new(be, x->dtype, &h, r->cl, d.n, r->out_ch, d.h, d.w));
    NX_TRYG(nx_conv2d_norm_forward(be, &r->conv1, &h, x, &r->norm1_w, &r->norm1_b, r->groups, r->eps));
    /* h += time_emb_proj(silu(temb))[:, :, None, None] */
    if (r->temb_ch > 0 && temb_act) {
        NX_TRYG(nx_new(be, x->dtype, &t, 2, SHAPE(d.n, r->out_ch)));
        NX_TRYG(nx_op_linear(be, &t, temb_act, &r->temb_w, &r->temb_b));
        NX_TRYG(nx_reshape(&t4, &t, 4, r->cl ? SHAPE(d.n, 1, 1, r->out_ch) : SHAPE(d.n, r->out_ch, 1, 1)));
        NX_TRYG(nx_op_binary(be, &h, &h, &t4, NX_BINARY_ADD));
        nx_tensor_free(&t);
    }
    /* h = conv2(dropout(silu(norm2(h)))) (dropout is the identity at inference) */
    NX_TRYG(nx_new(be, x->dtype, &h2, 4, h.ne));
    NX_TRYG(nx_conv2d_norm_forward(be, &r->conv2, &h2, &h, &r->norm2_w, &r->norm2_b, r->groups, r->eps));
    /* y = (shortcut(x) + h) / output_scale_factor */
    if (r->has_shortcut) {
        NX_TRYG(nx_conv2d_forward(be, &r->shortcut, y, x));
        NX_TRYG(nx_op_binary(be, y, y, &h2, NX_BINARY_ADD));
    } else {
        NX_TRYG(nx_op_binary(be, y, x, &h2, NX_BINARY_ADD));
    }
    if (r->out_scale != 1.0f) NX_TRYG(nx_op_scale(be, y, y, 1.0f / r->out_scale, 0.0f));
done:
    nx_tensor_free(&h2);
    nx_tensor_free(&h);
    nx_tensor_free(&t);
    return s;
}

void nx_resnet2d_free(nx_resnet2d *r)
{
    nx_tensor_free(&r->norm1_w);
    nx_tensor_free(&r->norm1_b);
    nx_conv2d_free(&r->conv1);
    nx_tensor_free(&r->temb_w);
    nx_tensor_free(&r->temb_b);
    nx_tensor_free(&r->norm2_w);
    nx_tensor_free(&r->norm2_b);
    nx_conv2d_free(&r->conv2);
    nx_conv2d_free(&r->shortcut);
}

/* ---------------------------------------------------------------------------------------------
 * Attention (attention_processor.py Attention + AttnProcessor: bias false, out_bias true,
 * scale dim_head^-0.5, no norm_cross, no residual_connection, rescale_output_factor 1) */

ngpt_status nx_attn_load(nx_attn *a, nx_wload *wl, const char *prefix, int q_dim, int kv_dim, int heads,
                         int dim_head)
{
    memset(a, 0, sizeof *a);
    a->heads = heads, a->dim_head = dim_head, a->q_dim = q_dim, a->kv_dim = kv_dim;
    int inner = heads * dim_head;
    ngpt_status s;
    NX_TRYG(nx_wl_get_linear(wl, &a->q_w, inner, q_dim, "%s.to_q.weight", prefix));
    NX_TRYG(nx_wl_get_linear(wl, &a->k_w, inner, kv_dim, "%s.to_k.weight", prefix));
    NX_TRYG(nx_wl_get_linear(wl, &a->v_w, inner, kv_dim, "%s.to_v.weight", prefix));
    NX_TRYG(nx_wl_get_linear(wl, &a->o_w, q_dim, inner, "%s.to_out.0.weight", prefix));
    NX_TRYG(nx_wl_get(wl, &a->o_b, 1, SHAPE(q_dim), "%s.to_out.0.bias", prefix));
    return NGPT_OK;
done:
    nx_attn_free(a);
    return s;
}

ngpt_status nx_attn_forward(nx_backend *be, const nx_attn *a, nx_tensor *y, const nx_tensor *x, const nx_tensor *ctx)
{
    if (!ctx) ctx = x;
    int64_t N = x->ne[0], L = x->ne[1], S = ctx->ne[1], H = a->heads, D = a->dim_head;
    if (ctx->ne[2] != a->kv_dim)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "attention: keys/values of width %lld for to_k '%s' of width %d",
                      (long long)ctx->ne[2], a->k_w.name ? a->k_w.name : "", a->kv_dim);
    nx_tensor q = {0}, k = {0}, v = {0}, o = {0}, q4, k4, v4, o3;
    ngpt_status s;
    NX_TRYG(nx_new(be, x->dtype, &q, 3, SHAPE(N, L, H * D)));
    NX_TRYG(nx_op_linear(be, &q, x, &a->q_w, NULL));
    NX_TRYG(nx_new(be, x->dtype, &k, 3, SHAPE(N, S, H * D)));
    NX_TRYG(nx_op_linear(be, &k, ctx, &a->k_w, NULL));
    NX_TRYG(nx_new(be, x->dtype, &v, 3, SHAPE(N, S, H * D)));
    NX_TRYG(nx_op_linear(be, &v, ctx, &a->v_w, NULL));
    NX_TRYG(nx_new(be, x->dtype, &o, 4, SHAPE(N, L, H, D)));
    NX_TRYG(nx_reshape(&q4, &q, 4, SHAPE(N, L, H, D)));
    NX_TRYG(nx_reshape(&k4, &k, 4, SHAPE(N, S, H, D)));
    NX_TRYG(nx_reshape(&v4, &v, 4, SHAPE(N, S, H, D)));
    NX_TRYG(nx_op_attention(be, &o, &q4, &k4, &v4, NULL, 1.0f / sqrtf((float)D), false));
    nx_tensor_free(&q);
    nx_tensor_free(&k);
    nx_tensor_free(&v);
    NX_TRYG(nx_reshape(&o3, &o, 3, SHAPE(N, L, H * D)));
    NX_TRYG(nx_op_linear(be, y, &o3, &a->o_w, &a->o_b));
done:
    nx_tensor_free(&q);
    nx_tensor_free(&k);
    nx_tensor_free(&v);
    nx_tensor_free(&o);
    return s;
}

void nx_attn_free(nx_attn *a)
{
    nx_tensor_free(&a->q_w);
    nx_tensor_free(&a->k_w);
    nx_tensor_free(&a->v_w);
    nx_tensor_free(&a->o_w);
    nx_tensor_free(&a->o_b);
}

/* ---------------------------------------------------------------------------------------------
 * BasicTransformerBlock */

ngpt_status nx_tblock_load(nx_tblock *t, nx_wload *wl, const char *prefix, int dim, int heads, int dim_head,
                           int cross_dim)
{
    memset(t, 0, sizeof *t);
    t->dim = dim, t->ff_inner = 4 * dim, t->has_attn2 = cross_dim > 0;
    char p[256];
    ngpt_status s;
    NX_TRYG(nx_wl_get(wl, &t->norm1_w, 1, SHAPE(dim), "%s.norm1.weight", prefix));
    NX_TRYG(nx_wl_get(wl, &t->norm1_b, 1, SHAPE(dim), "%s.norm1.bias", prefix));
    snprintf(p, sizeof p, "%s.attn1", prefix);
    NX_TRYG(nx_attn_load(&t->attn1, wl, p, dim, dim, heads, dim_head));
    if (t->has_attn2) {
        NX_TRYG(nx_wl_get(wl, &t->norm2_w, 1, SHAPE(dim), "%s.norm2.weight", prefix));
        NX_TRYG(nx_wl_get(wl, &t->norm2_b, 1, SHAPE(dim), "%s.norm2.bias", prefix));
        snprintf(p, sizeof p, "%s.attn2", prefix);
        NX_TRYG(nx_attn_load(&t->attn2, wl, p, dim, cross_dim, heads, dim_head));
    }
    NX_TRYG(nx_wl_get(wl, &t->norm3_w, 1, SHAPE(dim), "%s.norm3.weight", prefix));
    NX_TRYG(nx_wl_get(wl, &t->norm3_b, 1, SHAPE(dim), "%s.norm3.bias", prefix));
    NX_TRYG(nx_wl_get_linear(wl, &t->ff1_w, 2 * t->ff_inner, dim, "%s.ff.net.0.proj.weight", prefix));
    NX_TRYG(nx_wl_get(wl, &t->ff1_b, 1, SHAPE(2 * t->ff_inner), "%s.ff.net.0.proj.bias", prefix));
    NX_TRYG(nx_wl_get_linear(wl, &t->ff2_w, dim, t->ff_inner, "%s.ff.net.2.weight", prefix));
    NX_TRYG(nx_wl_get(wl, &t->ff2_b, 1, SHAPE(dim), "%s.ff.net.2.bias", prefix));
    return NGPT_OK;
done:
    nx_tblock_free(t);
    return s;
}

ngpt_status nx_tblock_forward(nx_backend *be, const nx_tblock *t, nx_tensor *h, const nx_tensor *ehs)
{
    int64_t N = h->ne[0], L = h->ne[1];
    nx_tensor n = {0}, o = {0}, f = {0}, g = {0};
    ngpt_status s;
    NX_TRYG(nx_new(be, h->dtype, &n, 3, h->ne));
    NX_TRYG(nx_new(be, h->dtype, &o, 3, h->ne));
    /* h += attn1(norm1(h)) */
    NX_TRYG(nx_op_layer_norm(be, &n, h, &t->norm1_w, &t->norm1_b, 1e-5f));
    NX_TRYG(nx_attn_forward(be, &t->attn1, &o, &n, NULL));
    NX_TRYG(nx_op_binary(be, h, h, &o, NX_BINARY_ADD));
    /* h += attn2(norm2(h), encoder_hidden_states) */
    if (t->has_attn2) {
        NX_TRYG(nx_op_layer_norm(be, &n, h, &t->norm2_w, &t->norm2_b, 1e-5f));
        NX_TRYG(nx_attn_forward(be, &t->attn2, &o, &n, ehs));
        NX_TRYG(nx_op_binary(be, h, h, &o, NX_BINARY_ADD));
    }
    /* h += ff(norm3(h)), ff = net.2(GEGLU(net.0.proj)) */
    NX_TRYG(nx_op_layer_norm(be, &n, h, &t->norm3_w, &t->norm3_b, 1e-5f));
    NX_TRYG(nx_new(be, h->dtype, &f, 3, SHAPE(N, L, 2 * t->ff_inner)));
    NX_TRYG(nx_op_linear(be, &f, &n, &t->ff1_w, &t->ff1_b));
    nx_tensor_free(&n);
    NX_TRYG(nx_new(be, h->dtype, &g, 3, SHAPE(N, L, t->ff_inner)));
    NX_TRYG(nx_op_glu(be, &g, &f, NX_UNARY_GELU, false));
    nx_tensor_free(&f);
    NX_TRYG(nx_op_linear(be, &o, &g, &t->ff2_w, &t->ff2_b));
    NX_TRYG(nx_op_binary(be, h, h, &o, NX_BINARY_ADD));
done:
    nx_tensor_free(&n);
    nx_tensor_free(&o);
    nx_tensor_free(&f);
    nx_tensor_free(&g);
    return s;
}

void nx_tblock_free(nx_tblock *t)
{
    nx_tensor_free(&t->norm1_w);
    nx_tensor_free(&t->norm1_b);
    nx_attn_free(&t->attn1);
    nx_tensor_free(&t->norm2_w);
    nx_tensor_free(&t->norm2_b);
    nx_attn_free(&t->attn2);
    nx_tensor_free(&t->norm3_w);
    nx_tensor_free(&t->norm3_b);
    nx_tensor_free(&t->ff1_w);
    nx_tensor_free(&t->ff1_b);
    nx_tensor_free(&t->ff2_w);
    nx_tensor_free(&t->ff2_b);
}

/* ---------------------------------------------------------------------------------------------
 * Transformer2DModel */

ngpt_status nx_transformer2d_load(nx_transformer2d *t, nx_wload *wl, const char *prefix, int in_ch, int heads,
                                  int dim_head, int n_layers, int cross_dim, int groups, bool linear_proj)
{
    memset(t, 0, sizeof *t);
    int inner = heads * dim_head;
    t->in_ch = in_ch, t->inner = inner, t->groups = groups, t->linear_proj = linear_proj;
    t->cl = wl->channels_last;
    char p[256];
    ngpt_status s;
    NX_TRYG(nx_wl_get(wl, &t->norm_w, 1, SHAPE(in_ch), "%s.norm.weight", prefix));
    NX_TRYG(nx_wl_get(wl, &t->norm_b, 1, SHAPE(in_ch), "%s.norm.bias", prefix));
    /* a 1x1 conv on NCHW followed by the permute to [N, HW, C] equals the permute followed by a
     * linear layer with the conv weight seen as (out, in): one code path for both projections */
    if (linear_proj) NX_TRYG(nx_wl_get(wl, &t->proj_in_w, 2, SHAPE(inner, in_ch), "%s.proj_in.weight", prefix));
    else NX_TRYG(nx_wl_get(wl, &t->proj_in_w, 4, SHAPE(inner, in_ch, 1, 1), "%s.proj_in.weight", prefix));
    NX_TRYG(nx_weight_reshape(&t->proj_in_w, 2, SHAPE(inner, in_ch)));
    NX_TRYG(nx_wl_pack_linear(wl, &t->proj_in_w));
    NX_TRYG(nx_wl_get(wl, &t->proj_in_b, 1, SHAPE(inner), "%s.proj_in.bias", prefix));
    t->blocks = nx_calloc((size_t)(n_layers > 0 ? n_layers : 1), sizeof *t->blocks);
    if (!t->blocks) { s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", prefix); goto done; }
    for (int i = 0; i < n_layers; i++) {
        snprintf(p, sizeof p, "%s.transformer_blocks.%d", prefix, i);
        NX_TRYG(nx_tblock_load(&t->blocks[i], wl, p, inner, heads, dim_head, cross_dim));
        t->n_layers = i + 1;
    }
    if (linear_proj) NX_TRYG(nx_wl_get(wl, &t->proj_out_w, 2, SHAPE(in_ch, inner), "%s.proj_out.weight", prefix));
    else NX_TRYG(nx_wl_get(wl, &t->proj_out_w, 4, SHAPE(in_ch, inner, 1, 1), "%s.proj_out.weight", prefix));
    NX_TRYG(nx_weight_reshape(&t->proj_out_w, 2, SHAPE(in_ch, inner)));
    NX_TRYG(nx_wl_pack_linear(wl, &t->proj_out_w));
    NX_TRYG(nx_wl_get(wl, &t->proj_out_b, 1, SHAPE(in_ch), "%s.proj_out.bias", prefix));
    return NGPT_OK;
done:
    nx_transformer2d_free(t);
    return s;
}

ngpt_status nx_transformer2d_forward(nx_backend *be, const nx_transformer2d *t, nx_tensor *y, const nx_tensor *x,
                                     const nx_tensor *ehs)
{
    const nx_img d = nx_img_of(x, t->cl);
    const int64_t N = d.n, C = d.c, HW = d.h * d.w;
    nx_tensor g = {0}, p = {0}, h = {0}, p3, o3, x3;
    ngpt_status s;
    /* h = proj_in(norm(x) as [N, HW, C]): channels last is that layout already, NCHW permutes */
    NX_TRYG(nx_new(be, x->dtype, &g, 4, x->ne));
    NX_TRYG(nx_op_group_norm(be, &g, x, &t->norm_w, &t->norm_b, t->groups, 1e-6f, t->cl ? NX_GN_CHANNELS_LAST : 0));
    if (t->cl) {
        p = g, g = (nx_tensor){0};
    } else {
        NX_TRYG(nx_img_new(be, x->dtype, &p, true, N, C, d.h, d.w));
        NX_TRYG(nx_img_to_nhwc(be, &p, &g));
        nx_tensor_free(&g);
    }
    NX_TRYG(nx_reshape(&p3, &p, 3, SHAPE(N, HW, C)));
    NX_TRYG(nx_new(be, x->dtype, &h, 3, SHAPE(N, HW, t->inner)));
    NX_TRYG(nx_op_linear(be, &h, &p3, &t->proj_in_w, &t->proj_in_b));
    /* transformer blocks */
    for (int i = 0; i < t->n_layers; i++) NX_TRYG(nx_tblock_forward(be, &t->blocks[i], &h, ehs));
    /* y = proj_out(h) (as [N, C, H, W] when NCHW) + x */
    if (t->cl) {
        NX_TRYG(nx_reshape(&o3, y, 3, SHAPE(N, HW, C)));
        NX_TRYG(nx_reshape(&x3, x, 3, SHAPE(N, HW, C)));
        NX_TRYG(nx_op_linear(be, &o3, &h, &t->proj_out_w, &t->proj_out_b));
        NX_TRYG(nx_op_binary(be, &o3, &o3, &x3, NX_BINARY_ADD));
    } else {
        NX_TRYG(nx_op_linear(be, &p3, &h, &t->proj_out_w, &t->proj_out_b));
        nx_tensor_free(&h);
        NX_TRYG(nx_img_to_nchw(be, y, &p));
        NX_TRYG(nx_op_binary(be, y, y, x, NX_BINARY_ADD));
    }
done:
    nx_tensor_free(&g);
    nx_tensor_free(&p);
    nx_tensor_free(&h);
    return s;
}

void nx_transformer2d_free(nx_transformer2d *t)
{
    nx_tensor_free(&t->norm_w);
    nx_tensor_free(&t->norm_b);
    nx_tensor_free(&t->proj_in_w);
    nx_tensor_free(&t->proj_in_b);
    for (int i = 0; i < t->n_layers; i++) nx_tblock_free(&t->blocks[i]);
    nx_free(t->blocks);
    t->blocks = NULL;
    t->n_layers = 0;
    nx_tensor_free(&t->proj_out_w);
    nx_tensor_free(&t->proj_out_b);
}

/* ---------------------------------------------------------------------------------------------
 * timestep embedding: every step in float32 as PyTorch computes it (the scalar -ln(max_period)
 * is rounded to float before the multiply, as TensorIterator does with a Python scalar) */

void nx_timestep_embedding(float *out, const float *t, int n, int dim, bool flip_sin_to_cos, float shift,
                           float max_period)
{
    const nx_timestep_params p = {dim, flip_sin_to_cos, shift, max_period};
    for (int b = 0; b < n; b++) {
        float *o = out + (size_t)b * (size_t)dim;
        for (int i = 0; i < dim / 2; i++) {
            float sn, cs;
            int js, jc;
            nx_timestep_pair(&p, t[b], i, &sn, &cs, &js, &jc);
            o[js] = sn;
            o[jc] = cs;
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}

ngpt_status nx_unet_cfg_unsupported(const char *file, const char *key, const json_t *v, const char *model)
{
    char *txt = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    ngpt_status s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: %s = %s is not supported%s%s%s", file, key, txt ? txt : "?",
                           model ? " (" : "", model ? model : "", model ? ")" : "");
    free(txt); /* jansson's allocator */
    return s;
}

ngpt_status nx_unet_cfg_fixed(const json_t *cfg, const char *file, const nx_unet_fixed_key *keys, size_t n,
                              const char *model)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(cfg, keys[i].key);
        if (!v || json_is_null(v)) continue;
        json_t *a = keys[i].accepted ? json_loads(keys[i].accepted, JSON_DECODE_ANY, NULL) : NULL;
        bool eq = a && json_equal(v, a);
        json_decref(a);
        if (!eq) return nx_unet_cfg_unsupported(file, keys[i].key, v, model);
    }
    return NGPT_OK;
}

ngpt_status nx_unet_cfg_block_out(const json_t *cfg, const char *file, int *block_out, int *n_blocks, const char *model)
{
    int64_t bo[NX_UNET_MAX_BLOCKS];
    size_t nb;
    const json_t *v = json_object_get(cfg, "block_out_channels");
    if (json_is_array(v) && json_array_size(v) > NX_UNET_MAX_BLOCKS)
        return nx_unet_cfg_unsupported(file, "block_out_channels", v, model);
    NX_TRY(nx_json_int_array(cfg, "block_out_channels", file, bo, NX_UNET_MAX_BLOCKS, &nb));
    if (nb < 1) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: block_out_channels is empty", file);
    for (size_t i = 0; i < nb; i++) {
        if (bo[i] <= 0 || bo[i] > 65536) return nx_unet_cfg_unsupported(file, "block_out_channels", v, model);
        block_out[i] = (int)bo[i];
    }
    *n_blocks = (int)nb;
    return NGPT_OK;
}

ngpt_status nx_unet_cfg_block_types(const json_t *cfg, const char *file, const char *key, int n, const char *attn_name,
                                    const char *plain_name, bool *attn, const char *model)
{
    const json_t *v = json_object_get(cfg, key);
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' must be a list of %d block types", file, key, n);
    for (int i = 0; i < n; i++) {
        const char *t = json_string_value(json_array_get(v, (size_t)i));
        if (t && !strcmp(t, attn_name)) attn[i] = true;
        else if (t && !strcmp(t, plain_name)) attn[i] = false;
        else {
            char k[64];
            snprintf(k, sizeof k, "%s[%d]", key, i);
            return nx_unet_cfg_unsupported(file, k, json_array_get(v, (size_t)i), model);
        }
    }
    return NGPT_OK;
}
