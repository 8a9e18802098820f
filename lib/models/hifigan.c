/* hifigan.c — transformers 4.29's SpeechT5HifiGan (models/speecht5/modeling_speecht5.py),
 * AudioLDM's vocoder, written against the op layer. Sizes from vocoder/config.json.
 *
 *   mel [B, T, n_mels] -> (normalize_before: (mel - mean) / scale) -> transpose [B, n_mels, T]
 *   -> conv_pre (k 7, pad 3) -> for each upsample i: leaky_relu(slope) -> ConvTranspose1d
 *      (C/2^i -> C/2^(i+1), kernel k_i, stride u_i, pad (k_i - u_i) // 2) -> mean over the
 *      resblock_kernel_sizes of HifiGanResidualBlock(k, dilations)
 *   -> leaky_relu (PyTorch's DEFAULT slope 0.01, not the config's) -> conv_post (C -> 1, k 7,
 *      pad 3) -> tanh -> [B, L]
 *
 * HifiGanResidualBlock: for each dilation d: h = h + conv2(lrelu(conv1_d(lrelu(h)))), conv1 with
 * dilation d and pad (k*d - d)/2, conv2 with dilation 1 and pad (k-1)/2.
 * The output length is exact ConvTranspose1d arithmetic, L_{i+1} = (L_i - 1) u_i - 2 pad_i + k_i:
 * for AudioLDM's rates (5,4,2,2,2) with kernels (16,16,8,4,4) that is 160 T + 32, not T * hop
 * (see nx_hifigan_out_len).
 *
 * Channels last (nx_hifigan_load's channels_last: a BF16 decoder on an AMX CPU) the same network
 * runs on [B, L, C] activations: no transpose of the mel, each conv1d a conv2d over [B, 1, L, C],
 * each ConvTranspose1d as GEMMs (upsample_gemm).
 */
#include "hifigan.h"

#include "mweights.h"

#include "../core/alloc.h"
#include "../core/dtype.h"
#include "../core/json.h"

#include <stdio.h>
#include <string.h>

#define HG_MAX_UP NX_HIFIGAN_MAX_UP
#define HG_MAX_K  NX_HIFIGAN_MAX_K
#define HG_MAX_D  NX_HIFIGAN_MAX_D

typedef nx_hifigan_config hg_config;

typedef struct hg_resblock {
    int k, n_d, dil[HG_MAX_D];
    const nx_tensor *c1_w[HG_MAX_D], *c1_b[HG_MAX_D];  /* [C, C, k], [C] (dilation dil[j]) */
    const nx_tensor *c2_w[HG_MAX_D], *c2_b[HG_MAX_D];  /* [C, C, k], [C] */
} hg_resblock;

struct nx_hifigan {
    nx_backend *be;
    hg_config   cfg;
    bool        cl;                                    /* activations [B, L, C] (filters [O, 1, k, C]) */
    nx_mw       mw;
    const nx_tensor *mean, *scale;                     /* [n_mels] (used when normalize_before) */
    const nx_tensor *conv_pre_w, *conv_pre_b;          /* [C0, n_mels, 7], [C0] */
    const nx_tensor *up_w[HG_MAX_UP], *up_b[HG_MAX_UP]; /* [C/2^i, C/2^(i+1), k_i], [C/2^(i+1)] */
    hg_resblock res[HG_MAX_UP * HG_MAX_K];             /* [i * n_k + j] */
    /* channels last: upsampler i as GEMMs, W_q [u O, C_in] = taps q u .. q u + u - 1 of up_w
     * (zeros past k), and up_tail [Q - 1, u O] = the bias repeated (see upsample_gemm) */
    nx_tensor *up_q[HG_MAX_UP], up_brep[HG_MAX_UP], up_tail[HG_MAX_UP];  /* up_q: [n_q[i]] */
    int n_q[HG_MAX_UP];
    const nx_tensor *conv_post_w, *conv_post_b;        /* [1, C/2^n_up, 7], [1] */
    const nx_tensor *n_kernels;                        /* F32 [1] = n_k (res_state / num_kernels) */
};

static ngpt_status int_list(const json_t *j, const char *key, const char *path, int *vals, int cap, int *n)
{
    int64_t v[HG_MAX_UP > HG_MAX_K ? HG_MAX_UP : HG_MAX_K];
    size_t nn = 0;
    json_t *a = json_object_get(j, key);
    if (!a) return nx_err(NGPT_ERR_NOT_FOUND, "%s: '%s' missing", path, key);
    if (json_is_array(a) && json_array_size(a) > (size_t)cap)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: '%s' has %zu entries (at most %d supported)", path, key,
                      json_array_size(a), cap);
    NX_TRY(nx_json_int_array(j, key, path, v, (size_t)cap, &nn));
    if (nn == 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is empty", path, key);
    for (size_t i = 0; i < nn; i++) {
        if (v[i] < 1 || v[i] > 4096)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s'[%zu] is %lld", path, key, i, (long long)v[i]);
        vals[i] = (int)v[i];
    }
    *n = (int)nn;
    return NGPT_OK;
}

ngpt_status nx_hifigan_read_config(nx_hifigan_config *c, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    ngpt_status s = NGPT_OK;
    int64_t v;
    const char *mt = NULL;
    s = nx_json_str_opt(j, "model_type", path, "hifigan", &mt);
    if (s == NGPT_OK && strcmp(mt, "hifigan") != 0)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'model_type' is '%s' (only SpeechT5HifiGan's 'hifigan' is supported)", path, mt);
    json_t *arch = json_object_get(j, "architectures");
    if (s == NGPT_OK && arch) {
        const char *a0 = json_string_value(json_array_get(arch, 0));
        if (!a0 || strcmp(a0, "SpeechT5HifiGan") != 0)
            s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'architectures' is not [\"SpeechT5HifiGan\"]", path);
    }
#define GETI(key, def, field)                                                   \
    if (s == NGPT_OK) s = nx_json_int_opt(j, key, path, def, &v);               \
    if (s == NGPT_OK && (v < 1 || v > 1 << 20))                                 \
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is %lld", path, key, (long long)v); \
    if (s == NGPT_OK) c->field = (int)v;
    GETI("model_in_dim", 80, model_in_dim)
    GETI("upsample_initial_channel", 512, upsample_initial_channel)
    GETI("sampling_rate", 16000, sampling_rate)
#undef GETI
    int nk = 0;
    if (s == NGPT_OK) s = int_list(j, "upsample_rates", path, c->upsample_rates, HG_MAX_UP, &c->n_up);
    if (s == NGPT_OK) s = int_list(j, "upsample_kernel_sizes", path, c->upsample_kernel_sizes, HG_MAX_UP, &nk);
    if (s == NGPT_OK && nk != c->n_up)
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'upsample_kernel_sizes' has %d entries, 'upsample_rates' %d", path, nk, c->n_up);
    int64_t hop = 1;  /* samples per mel frame: bounded, so that hop and the output lengths fit */
    for (int i = 0; s == NGPT_OK && i < c->n_up; i++)
        if ((hop *= c->upsample_rates[i]) > 65536)
            s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'upsample_rates' multiply to more than 65536 samples per frame", path);
    for (int i = 0; s == NGPT_OK && i < c->n_up; i++) {
        if (c->upsample_kernel_sizes[i] < c->upsample_rates[i])
            s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'upsample_kernel_sizes'[%d] %d is smaller than 'upsample_rates'[%d] %d",
                       path, i, c->upsample_kernel_sizes[i], i, c->upsample_rates[i]);
        if (s == NGPT_OK && (c->upsample_initial_channel >> (i + 1)) < 1)
            s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'upsample_initial_channel' %d is too small for %d upsamplers", path,
                       c->upsample_initial_channel, c->n_up);
    }
    if (s == NGPT_OK) s = int_list(j, "resblock_kernel_sizes", path, c->resblock_kernel_sizes, HG_MAX_K, &c->n_k);
    json_t *dl = json_object_get(j, "resblock_dilation_sizes");
    if (s == NGPT_OK && (!json_is_array(dl) || json_array_size(dl) != (size_t)c->n_k))
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'resblock_dilation_sizes' must be a list of %d lists", path, c->n_k);
    for (int k = 0; s == NGPT_OK && k < c->n_k; k++) {
        json_t *row = json_array_get(dl, (size_t)k);
        size_t nd = json_is_array(row) ? json_array_size(row) : 0;
        if (nd == 0 || nd > HG_MAX_D)
            s = nx_err(nd > HG_MAX_D ? NGPT_ERR_UNSUPPORTED : NGPT_ERR_BAD_FORMAT,
                       "%s: 'resblock_dilation_sizes'[%d] must be a list of 1..%d integers", path, k, HG_MAX_D);
        for (size_t d = 0; s == NGPT_OK && d < nd; d++) {
            json_t *x = json_array_get(row, d);
            if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 4096)
                s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'resblock_dilation_sizes'[%d][%zu] is not a positive integer", path, k, d);
            else
                c->resblock_dilation_sizes[k][d] = (int)json_integer_value(x);
        }
        c->n_d[k] = (int)nd;
        /* "same" padding (k*d - d) / 2 only keeps the length for odd kernels */
        if (s == NGPT_OK && c->resblock_kernel_sizes[k] % 2 == 0)
            s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'resblock_kernel_sizes'[%d] %d is even (odd sizes are supported)", path, k,
                       c->resblock_kernel_sizes[k]);
    }
    double slope = 0.1;
    if (s == NGPT_OK) s = nx_json_num_opt(j, "leaky_relu_slope", path, 0.1, &slope);
    c->leaky_relu_slope = (float)slope;
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "normalize_before", path, true, &c->normalize_before);
    json_decref(j);
    return s;
}

static ngpt_status get(nx_mw *m, const nx_tensor **t, int rank, int64_t d0, int64_t d1, int64_t d2, const char *fmt,
                       int i, int j)
{
    char name[128];
    snprintf(name, sizeof name, fmt, i, j);
    int64_t shape[3] = {d0, d1, d2};
    return nx_mw_get(m, t, name, rank, shape);
}

/* Upsampler i's GEMM weights (channels last; see upsample_gemm): built on the host in F32 from
 * up_w [C_in, O, k], held in the model's dtype and in the backend's packed layout. */
static ngpt_status upsample_gemm_load(nx_hifigan *h, int i)
{
    nx_backend *be = h->be;
    const nx_tensor *w = h->up_w[i];
    const int64_t Ci = w->ne[0], O = w->ne[1], k = w->ne[2], u = h->cfg.upsample_rates[i];
    const int Q = (int)((k + u - 1) / u);
    h->up_q[i] = nx_calloc((size_t)Q, sizeof *h->up_q[i]);
    if (!h->up_q[i]) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", h->mw.path);
    h->n_q[i] = Q;
    const size_t n = (size_t)nx_numel(w), nq = (size_t)(u * O * Ci);
    float *wf = nx_malloc(n * sizeof *wf), *wq = nx_malloc(nq * sizeof *wq), *bf = nx_malloc((size_t)(u * O) * sizeof *bf);
    void *raw = nx_malloc(nx_nbytes(w) > (size_t)O * 4 ? nx_nbytes(w) : (size_t)O * 4);
    ngpt_status s = wf && wq && bf && raw ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", h->mw.path);
    if (s == NGPT_OK) s = nx_tensor_download(w, raw, nx_nbytes(w));
    if (s == NGPT_OK) nx_dtype_to_f32_n(raw, w->dtype, wf, n);
    for (int q = 0; s == NGPT_OK && q < Q; q++) { /* W_q[(p, o), c] = w[c, o, q u + p] */
        for (int64_t p = 0; p < u; p++)
            for (int64_t o = 0; o < O; o++) {
                float *row = wq + (p * O + o) * Ci;
                const int64_t j = q * u + p;
                for (int64_t c = 0; c < Ci; c++) row[c] = j < k ? wf[(c * O + o) * k + j] : 0.0f;
            }
        s = nx_upload_f32_as(&h->up_q[i][q], be, h->mw.dt, 2, (const int64_t[]){u * O, Ci}, wq);
        if (s == NGPT_OK) s = nx_op_linear_pack(be, &h->up_q[i][q]);
    }
    const nx_tensor *b = h->up_b[i];
    if (s == NGPT_OK) s = nx_tensor_download(b, raw, nx_nbytes(b));
    if (s == NGPT_OK) {
        nx_dtype_to_f32_n(raw, b->dtype, bf, (size_t)O);
        for (int64_t p = 1; p < u; p++) memcpy(bf + p * O, bf, (size_t)O * sizeof *bf);
        s = nx_upload_f32_as(&h->up_brep[i], be, NGPT_DTYPE_F32, 1, (const int64_t[]){u * O}, bf);
    }
    if (s == NGPT_OK && Q > 1) { /* the rows only the later taps reach start at the bias */
        float *t = nx_malloc((size_t)((Q - 1) * u * O) * sizeof *t);
        if (!t) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", h->mw.path);
        for (int r = 0; t && r < Q - 1; r++) memcpy(t + r * u * O, bf, (size_t)(u * O) * sizeof *t);
        if (s == NGPT_OK) s = nx_upload_f32_as(&h->up_tail[i], be, NGPT_DTYPE_F32, 2, (const int64_t[]){Q - 1, u * O}, t);
        nx_free(t);
    }
    nx_free(wf);
    nx_free(wq);
    nx_free(bf);
    nx_free(raw);
    return s;
}

/* A conv filter [O, C, k]; for channels-last activations held [O, 1, k, C], a conv2d filter over
 * [B, 1, L, C] (the op layer's channels-last convolutions are 2-D). */
static ngpt_status get_filter(nx_mw *m, const nx_tensor **t, int64_t O, int64_t C, int64_t k, int dil, const char *fmt,
                              int i, int j)
{
    NX_TRY(get(m, t, 3, O, C, k, fmt, i, j));
    if (!m->filters_nhwc) return NGPT_OK;
    nx_tensor *w = &m->t[m->n - 1];
    NX_TRY(nx_filter_to_nhwc(m->be, w));
    NX_TRY(nx_weight_reshape(w, 4, (const int64_t[]){O, 1, k, C}));
    nx_conv_params p = nx_conv_params_default(); /* as conv1d() calls it */
    p.channels_last = true;
    p.pad[1] = (int)((k * dil - dil) / 2);
    p.dilation[1] = dil;
    return nx_op_conv_pack(m->be, w, &p);
}

static ngpt_status load_weights(nx_hifigan *h)
{
    const hg_config *c = &h->cfg;
    nx_mw *m = &h->mw;
    int M = c->model_in_dim, C = c->upsample_initial_channel;
    if (c->normalize_before) {
        NX_TRY(get(m, &h->mean, 1, M, 0, 0, "mean", 0, 0));
        NX_TRY(get(m, &h->scale, 1, M, 0, 0, "scale", 0, 0));
    } else {
        nx_weights_mark_used(m->w, "mean");   /* registered buffers, unused without normalize_before */
        nx_weights_mark_used(m->w, "scale");
    }
    NX_TRY(get_filter(m, &h->conv_pre_w, C, M, 7, 1, "conv_pre.weight", 0, 0));
    NX_TRY(get(m, &h->conv_pre_b, 1, C, 0, 0, "conv_pre.bias", 0, 0));
    for (int i = 0; i < c->n_up; i++) {
        int ci = C >> i, co = C >> (i + 1);
        const ngpt_dtype dt = m->dt;
        m->dt = NGPT_DTYPE_F32; /* as stored: the GEMMs' copies are made from it (channels last) */
        ngpt_status s = get(m, &h->up_w[i], 3, ci, co, c->upsample_kernel_sizes[i], "upsampler.%d.weight", i, 0);
        m->dt = dt;
        NX_TRY(s);
        NX_TRY(get(m, &h->up_b[i], 1, co, 0, 0, "upsampler.%d.bias", i, 0));
        if (h->cl) NX_TRY(upsample_gemm_load(h, i));
        for (int k = 0; k < c->n_k; k++) {
            int r = i * c->n_k + k, ks = c->resblock_kernel_sizes[k];
            hg_resblock *b = &h->res[r];
            b->k = ks;
            b->n_d = c->n_d[k];
            for (int d = 0; d < b->n_d; d++) {
                b->dil[d] = c->resblock_dilation_sizes[k][d];
                NX_TRY(get_filter(m, &b->c1_w[d], co, co, ks, b->dil[d], "resblocks.%d.convs1.%d.weight", r, d));
                NX_TRY(get(m, &b->c1_b[d], 1, co, 0, 0, "resblocks.%d.convs1.%d.bias", r, d));
                NX_TRY(get_filter(m, &b->c2_w[d], co, co, ks, 1, "resblocks.%d.convs2.%d.weight", r, d));
                NX_TRY(get(m, &b->c2_b[d], 1, co, 0, 0, "resblocks.%d.convs2.%d.bias", r, d));
            }
        }
    }
    int cl = C >> c->n_up;
    NX_TRY(get_filter(m, &h->conv_post_w, 1, cl, 7, 1, "conv_post.weight", 0, 0));
    NX_TRY(get(m, &h->conv_post_b, 1, 1, 0, 0, "conv_post.bias", 0, 0));
    float nk = (float)c->n_k;
    NX_TRY(nx_mw_const(m, &h->n_kernels, &nk, 1));
    return nx_mw_check_unused(m);
}

ngpt_status nx_hifigan_load(nx_hifigan **out, nx_backend *be, const char *vocoder_dir, ngpt_dtype dt,
                            bool channels_last)
{
    *out = NULL;
    nx_hifigan *h = nx_calloc(1, sizeof *h);
    if (!h) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", vocoder_dir);
    h->be = be;
    ngpt_status s = nx_hifigan_read_config(&h->cfg, vocoder_dir);
    static const char *const files[] = {"model.safetensors", "pytorch_model.bin", NULL};
    if (s == NGPT_OK) s = nx_mw_open(&h->mw, be, vocoder_dir, files);
    h->mw.dt = dt;
    h->cl = h->mw.filters_nhwc = channels_last;
    if (s == NGPT_OK) s = load_weights(h);
    if (s != NGPT_OK) {
        nx_hifigan_free(h);
        return s;
    }
    *out = h;
    return NGPT_OK;
}

void nx_hifigan_free(nx_hifigan *h)
{
    if (!h) return;
    for (int i = 0; i < HG_MAX_UP; i++) {
        for (int q = 0; q < h->n_q[i]; q++) nx_tensor_free(&h->up_q[i][q]);
        nx_free(h->up_q[i]);
        nx_tensor_free(&h->up_brep[i]);
        nx_tensor_free(&h->up_tail[i]);
    }
    nx_mw_close(&h->mw);
    nx_free(h);
}

int nx_hifigan_n_mels(const nx_hifigan *h) { return h->cfg.model_in_dim; }
ngpt_dtype nx_hifigan_dtype(const nx_hifigan *h) { return h->mw.dt; }
int nx_hifigan_sampling_rate(const nx_hifigan *h) { return h->cfg.sampling_rate; }
int nx_hifigan_hop(const nx_hifigan *h)
{
    int hop = 1;
    for (int i = 0; i < h->cfg.n_up; i++) hop *= h->cfg.upsample_rates[i];
    return hop;
}

double nx_hifigan_hop_s(const nx_hifigan *h) { return (double)nx_hifigan_hop(h) / (double)h->cfg.sampling_rate; }

static int64_t up_len(const hg_config *c, int i, int64_t L)
{
    int u = c->upsample_rates[i], k = c->upsample_kernel_sizes[i];
    return (L - 1) * u - 2 * ((k - u) / 2) + k;
}

int64_t nx_hifigan_out_len(const nx_hifigan *h, int64_t T)
{
    int64_t L = T;
    for (int i = 0; i < h->cfg.n_up; i++) L = up_len(&h->cfg, i, L);
    return L;
}

/* ---- forward ---- */

/* y = conv(x) + b, then leaky_relu(slope) when `leaky`, then + res when res is set (one fused
 * epilogue on the CPU, see nx_conv_params). */
static ngpt_status conv1d(nx_backend *be, bool cl, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                          const nx_tensor *b, int dil, bool leaky, float slope, const nx_tensor *res)
{
    const int64_t k = w->ne[2]; /* [O, C, k] or [O, 1, k, C] */
    const int pad = (int)((k * dil - dil) / 2);
    const int64_t L = x->ne[cl ? 1 : 2] + 2 * pad - dil * (k - 1);
    int64_t ne[3] = {x->ne[0], cl ? L : w->ne[0], cl ? w->ne[0] : L};
    NX_TRY(nx_tensor_alloc(y, be, NGPT_DTYPE_F32, 3, ne));
    nx_conv_params p = nx_conv_params_default();
    p.channels_last = cl;
    p.pad[cl] = pad;
    p.dilation[cl] = dil;
    if (leaky) {
        p.act = NX_UNARY_LEAKY_RELU;
        p.act_param = slope;
    }
    nx_tensor x4, y4, r4;
    if (cl) { /* [B, L, C] seen as [B, 1, L, C] */
        x4 = nx_view(x->dtype, 4, (const int64_t[]){x->ne[0], 1, x->ne[1], x->ne[2]}, x->data, x->be);
        y4 = nx_view(y->dtype, 4, (const int64_t[]){ne[0], 1, ne[1], ne[2]}, y->data, y->be);
        if (res) r4 = nx_view(res->dtype, 4, y4.ne, res->data, res->be);
    }
    p.residual = res && cl ? &r4 : res;
    ngpt_status s = nx_op_conv(be, cl ? &y4 : y, cl ? &x4 : x, w, b, &p);
    if (s != NGPT_OK) nx_tensor_free(y);
    return s;
}

static ngpt_status lrelu(nx_backend *be, nx_tensor *y, const nx_tensor *x, float slope)
{
    NX_TRY(nx_tensor_alloc(y, be, NGPT_DTYPE_F32, x->rank, x->ne));
    ngpt_status s = nx_op_unary(be, y, x, NX_UNARY_LEAKY_RELU, slope);
    if (s != NGPT_OK) nx_tensor_free(y);
    return s;
}

/* HifiGanResidualBlock on x (not modified), xa = leaky_relu(x) (shared by a stage's resblocks);
 * *y allocated here. */
static ngpt_status resblock_fwd(nx_backend *be, bool cl, const hg_resblock *r, float slope, nx_tensor *y,
                                const nx_tensor *x, const nx_tensor *xa)
{
    nx_tensor h = {0}, a = {0}, b = {0};
    const nx_tensor *cur = x;
    ngpt_status s = NGPT_OK;
    for (int d = 0; s == NGPT_OK && d < r->n_d; d++) {
        if (d > 0) s = lrelu(be, &a, cur, slope);
        if (s == NGPT_OK) s = conv1d(be, cl, &b, d ? &a : xa, r->c1_w[d], r->c1_b[d], r->dil[d], true, slope, NULL);
        nx_tensor_free(&a);
        if (s == NGPT_OK) s = conv1d(be, cl, &a, &b, r->c2_w[d], r->c2_b[d], 1, false, 0.0f, cur);  /* + residual */
        nx_tensor_free(&b);
        nx_tensor_free(&h);                                                  /* the previous h */
        h = a;
        memset(&a, 0, sizeof a);
        cur = &h;
    }
    nx_tensor_free(&a);
    if (s != NGPT_OK) {
        nx_tensor_free(&h);
        return s;
    }
    *y = h;
    return NGPT_OK;
}

/* y [B, L, O] = ConvTranspose1d(x [B, T, C_in]) of upsampler i, channels last, as GEMMs: input
 * step t adds w[:, :, j] x_t at output position u t + j - pad. With j = q u + p, Y[t + q, p] +=
 * (W_q x_t)[p] over a [T + Q - 1, u, O] grid Y, whose positions pad .. pad + L - 1 are y. So Q
 * linears of [T, C_in] x [C_in, u O] accumulate into row windows of Y, the first one writing its
 * rows with the bias, the Q - 1 rows after it starting at the bias; y is a copy of Y's window.
 * AudioLDM's five upsamplers for 5 s of audio: 214 ms as oneDNN's F32 deconvolution between two
 * transposes, 61 ms so on its AMX matmul with packed W_q (bench/RESULTS.md, session 32). */
static ngpt_status upsample_gemm(nx_hifigan *h, int i, nx_tensor *y, const nx_tensor *x)
{
    nx_backend *be = h->be;
    const hg_config *c = &h->cfg;
    const int u = c->upsample_rates[i], k = c->upsample_kernel_sizes[i], pad = (k - u) / 2, Q = h->n_q[i];
    const int64_t B = x->ne[0], T = x->ne[1], Ci = x->ne[2], O = h->up_w[i]->ne[1], L = up_len(c, i, T);
    const int64_t R = T + Q - 1, uO = u * O;
    nx_tensor Y = {0}, tmp = {0};
    ngpt_status s = nx_tensor_alloc(&Y, be, NGPT_DTYPE_F32, 2, (const int64_t[]){R, uO});
    if (s == NGPT_OK && Q > 1) s = nx_tensor_alloc(&tmp, be, NGPT_DTYPE_F32, 2, (const int64_t[]){T, uO});
    if (s == NGPT_OK) s = nx_tensor_alloc(y, be, NGPT_DTYPE_F32, 3, (const int64_t[]){B, L, O});
    float *Yd = Y.data;
    for (int64_t bi = 0; s == NGPT_OK && bi < B; bi++) {
        nx_tensor xb = nx_view(NGPT_DTYPE_F32, 2, (const int64_t[]){T, Ci}, (float *)x->data + bi * T * Ci, x->be);
        nx_tensor head = nx_view(NGPT_DTYPE_F32, 2, (const int64_t[]){T, uO}, Yd, Y.be);
        if (Q > 1) {
            nx_tensor tail = nx_view(NGPT_DTYPE_F32, 2, (const int64_t[]){Q - 1, uO}, Yd + T * uO, Y.be);
            s = nx_op_scale(be, &tail, &h->up_tail[i], 1.0f, 0.0f);
        }
        if (s == NGPT_OK) s = nx_op_linear(be, &head, &xb, &h->up_q[i][0], &h->up_brep[i]);
        for (int q = 1; s == NGPT_OK && q < Q; q++) {
            nx_tensor win = nx_view(NGPT_DTYPE_F32, 2, (const int64_t[]){T, uO}, Yd + q * uO, Y.be);
            nx_linear_epi e = {.act = NX_UNARY_IDENTITY, .accumulate = true, .tmp = &tmp};
            s = nx_op_linear_epi(be, &win, &xb, &h->up_q[i][q], NULL, &e);
        }
        nx_tensor crop = nx_view(NGPT_DTYPE_F32, 2, (const int64_t[]){L, O}, Yd + pad * O, Y.be);
        nx_tensor yb = nx_view(NGPT_DTYPE_F32, 2, (const int64_t[]){L, O}, (float *)y->data + bi * L * O, y->be);
        if (s == NGPT_OK) s = nx_op_scale(be, &yb, &crop, 1.0f, 0.0f);
    }
    nx_tensor_free(&Y);
    nx_tensor_free(&tmp);
    if (s != NGPT_OK) nx_tensor_free(y);
    return s;
}

ngpt_status nx_hifigan_forward(nx_hifigan *h, nx_tensor *wave, const nx_tensor *mel)
{
    nx_backend *be = h->be;
    const hg_config *c = &h->cfg;
    const bool cl = h->cl;
    if (mel->rank != 3 || mel->ne[2] != c->model_in_dim || mel->ne[1] < 1)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "vocoder: mel must be [B, T >= 1, %d]", c->model_in_dim);
    int64_t B = mel->ne[0], T = mel->ne[1], L = nx_hifigan_out_len(h, T);
    if (wave->rank != 2 || wave->ne[0] != B || wave->ne[1] != L)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "vocoder: the waveform must be [%lld, %lld]", (long long)B, (long long)L);
    nx_tensor n = {0}, x = {0}, y = {0}, acc = {0}, r = {0};
    ngpt_status s = NGPT_OK;
    const nx_tensor *m = mel;
    if (c->normalize_before) {                                   /* (spectrogram - mean) / scale */
        s = nx_tensor_alloc(&n, be, NGPT_DTYPE_F32, 3, mel->ne);
        if (s == NGPT_OK) s = nx_op_binary(be, &n, mel, h->mean, NX_BINARY_SUB);
        if (s == NGPT_OK) s = nx_op_binary(be, &n, &n, h->scale, NX_BINARY_DIV);
        m = &n;
    }
    if (!cl) {                                                   /* transpose(2, 1); [B, T, n_mels] is channels last */
        int64_t bmt[3] = {B, c->model_in_dim, T};
        static const int tr[3] = {0, 2, 1};
        if (s == NGPT_OK) s = nx_tensor_alloc(&x, be, NGPT_DTYPE_F32, 3, bmt);
        if (s == NGPT_OK) s = nx_op_permute(be, &x, m, tr);
        m = &x;
    }
    if (s == NGPT_OK) s = conv1d(be, cl, &y, m, h->conv_pre_w, h->conv_pre_b, 1, false, 0.0f, NULL);  /* conv_pre (pad 3) */
    nx_tensor_free(&n);
    nx_tensor_free(&x);
    for (int i = 0; s == NGPT_OK && i < c->n_up; i++) {
        s = nx_op_unary(be, &y, &y, NX_UNARY_LEAKY_RELU, c->leaky_relu_slope);
        if (s == NGPT_OK && cl) {
            s = upsample_gemm(h, i, &x, &y);
        } else if (s == NGPT_OK) {
            const int u = c->upsample_rates[i], k = c->upsample_kernel_sizes[i];
            s = nx_tensor_alloc(&x, be, NGPT_DTYPE_F32, 3, (const int64_t[]){B, h->up_w[i]->ne[1], up_len(c, i, y.ne[2])});
            if (s == NGPT_OK) s = nx_op_conv_transpose1d(be, &x, &y, h->up_w[i], h->up_b[i], u, (k - u) / 2, 0, 1, 1);
        }
        nx_tensor_free(&y);
        nx_tensor xa = {0};
        if (s == NGPT_OK) s = lrelu(be, &xa, &x, c->leaky_relu_slope);
        if (s == NGPT_OK) s = resblock_fwd(be, cl, &h->res[i * c->n_k], c->leaky_relu_slope, &acc, &x, &xa);
        for (int j = 1; s == NGPT_OK && j < c->n_k; j++) {
            s = resblock_fwd(be, cl, &h->res[i * c->n_k + j], c->leaky_relu_slope, &r, &x, &xa);
            if (s == NGPT_OK) s = nx_op_binary(be, &acc, &acc, &r, NX_BINARY_ADD);
            nx_tensor_free(&r);
        }
        nx_tensor_free(&xa);
        nx_tensor_free(&x);
        if (s == NGPT_OK) s = nx_op_binary(be, &acc, &acc, h->n_kernels, NX_BINARY_DIV);  /* / num_kernels */
        y = acc;
        memset(&acc, 0, sizeof acc);
    }
    if (s == NGPT_OK) s = nx_op_unary(be, &y, &y, NX_UNARY_LEAKY_RELU, 0.01f);  /* F.leaky_relu default slope */
    nx_tensor w3, y4;
    if (s == NGPT_OK && cl) s = nx_reshape(&w3, wave, 4, (const int64_t[]){B, 1, L, 1});
    else if (s == NGPT_OK) s = nx_reshape(&w3, wave, 3, (const int64_t[]){B, 1, L});
    if (s == NGPT_OK) {                                          /* conv_post, straight into wave */
        nx_conv_params p = nx_conv_params_default();
        p.pad[cl] = 3;
        p.channels_last = cl;
        if (cl) y4 = nx_view(y.dtype, 4, (const int64_t[]){B, 1, y.ne[1], y.ne[2]}, y.data, y.be);
        s = nx_op_conv(be, &w3, cl ? &y4 : &y, h->conv_post_w, h->conv_post_b, &p);
    }
    if (s == NGPT_OK) s = nx_op_unary(be, &w3, &w3, NX_UNARY_TANH, 0.0f);
    nx_tensor_free(&y);
    nx_tensor_free(&acc);
    return s;
}
