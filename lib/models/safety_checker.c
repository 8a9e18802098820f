/* safety_checker.c — StableDiffusionSafetyChecker (diffusers 0.17) on CLIPVisionModel
 * (transformers 4.29) and CLIPImageProcessor's preprocessing; see safety_checker.h.
 *
 *   x = cat(class_embedding, patch_embedding(pixels) as [B, N, D]) + position_embedding   [B, 1+N, D]
 *   x = CLIPEncoder(pre_layrnorm(x))   (clip_encoder.h, no mask)
 *   image_embeds = visual_projection(post_layernorm(x[:, 0]))
 */
#include "safety_checker.h"

#include "../core/alloc.h"
#include "../core/json.h"
#include "../core/l2norm.h"
#include "../media/media.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SC_MAX_SIDE 4096   /* image_size and the processor's sizes */

/* CLIPImageProcessor's settings (preprocessor_config.json) */
typedef struct sc_fe {
    bool    do_resize, do_center_crop, do_rescale, do_normalize;
    int32_t shortest_edge;      /* resize: the short side becomes this */
    int32_t crop_h, crop_w;
    double  rescale_factor;
    float   mean[3], stdv[3];
} sc_fe;

struct nx_safety {
    nx_backend *be;
    nx_mw       mw;
    nx_safety_config cfg;
    nx_clip_enc enc;                          /* enc.cfg = cfg.enc */
    int32_t     grid;                         /* patches a side: image_size / patch */
    int32_t     n_concept, n_special;
    const nx_tensor *patch_w;                 /* [D, 3, p, p] */
    const nx_tensor *pre_w, *pre_b, *post_w, *post_b;
    const nx_tensor *proj_w;                  /* [P, D] */
    nx_tensor   pos_patch;                    /* [1, N, D] = position_embedding[1:] (owned) */
    float      *cls_pos;                      /* host [D] = class_embedding + position_embedding[0] */
    float      *concept, *special;            /* host [n, P], each row L2-normalised */
    float      *concept_thr, *special_thr;    /* host [n] */
    sc_fe       fe;
};

/* ---- configs ---- */

ngpt_status nx_safety_read_config(nx_safety_config *c, const char *dir)
{
    /* CLIPVisionConfig's defaults */
    static const nx_clip_enc_config def = {.hidden = 768, .layers = 12, .heads = 12, .inter = 3072, .eps = 1e-5f,
                                           .act = NX_UNARY_QUICK_GELU};
    char path[4096], where[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    const char *mt = NULL;
    ngpt_status s = nx_json_str_opt(j, "model_type", path, "clip", &mt);
    if (s == NGPT_OK && strcmp(mt, "clip") != 0)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'model_type' is '%s' (the safety checker is a CLIPConfig: 'clip')", path,
                   mt);
    int64_t v = 0;
    if (s == NGPT_OK) s = nx_json_int_opt(j, "projection_dim", path, 512, &v);
    if (s == NGPT_OK && (v < 1 || v > (1 << 16)))
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'projection_dim' is %lld", path, (long long)v);
    c->proj = (int32_t)v;
    /* transformers 4.29's CLIPConfig: a legacy vision_config_dict becomes the whole vision
     * config (CLIPVisionConfig(**vision_config_dict).to_dict(), every default included) and
     * overrides vision_config key by key, so only it and the defaults count. */
    const char *key = "vision_config_dict";
    json_t *vc = json_object_get(j, key);
    if (!vc || json_is_null(vc)) vc = json_object_get(j, key = "vision_config");
    if (s == NGPT_OK && vc && !json_is_object(vc) && !json_is_null(vc))
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is not an object", path, key);
    json_t *empty = json_object();
    if (!json_is_object(vc)) vc = empty;
    if (s == NGPT_OK && !empty) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    snprintf(where, sizeof where, "%s '%s'", path, key);
    if (s == NGPT_OK) s = nx_clip_enc_read_config(&c->enc, vc, where, &def);
    int64_t isz = 0, patch = 0, ch = 0;
    if (s == NGPT_OK) s = nx_json_int_opt(vc, "image_size", where, 224, &isz);
    if (s == NGPT_OK) s = nx_json_int_opt(vc, "patch_size", where, 32, &patch);
    if (s == NGPT_OK) s = nx_json_int_opt(vc, "num_channels", where, 3, &ch);
    if (s == NGPT_OK && (isz < 1 || isz > SC_MAX_SIDE || patch < 1 || patch > isz))
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: image_size %lld, patch_size %lld (1 <= patch_size <= image_size <= %d)",
                   where, (long long)isz, (long long)patch, SC_MAX_SIDE);
    if (s == NGPT_OK && ch != 3)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: num_channels %lld (the checker sees RGB images: 3)", where, (long long)ch);
    c->image_size = (int32_t)isz;
    c->patch = (int32_t)patch;
    json_decref(empty);
    json_decref(j);
    return s;
}

/* `key` of a processor config: an integer n, {"shortest_edge": n} or {"height": h, "width": w}.
 * *se: the shortest edge given (an integer is one when int_is_short, as transformers'
 * get_size_dict(default_to_square=False) reads `size`), else 0; *h, *w: a fixed size, else 0. */
static ngpt_status read_size(const json_t *j, const char *key, const char *path, int64_t def, bool int_is_short,
                             int32_t *se, int32_t *h, int32_t *w)
{
    *se = *h = *w = 0;
    const json_t *v = json_object_get(j, key);
    int64_t e = 0, hh = 0, ww = 0;
    if (json_is_object(v)) {
        NX_TRY(nx_json_int_opt(v, "shortest_edge", path, 0, &e));
        NX_TRY(nx_json_int_opt(v, "height", path, 0, &hh));
        NX_TRY(nx_json_int_opt(v, "width", path, 0, &ww));
        if (!((e && !hh && !ww) || (!e && hh && ww)))
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' must be an integer, {\"shortest_edge\": n} or "
                          "{\"height\": h, \"width\": w}", path, key);
    } else {
        int64_t n = def;
        if (v && !json_is_null(v)) NX_TRY(nx_json_int(j, key, path, &n));
        if (int_is_short) e = n;
        else hh = ww = n;
    }
    const int64_t vals[3] = {e, hh, ww};
    for (int i = 0; i < 3; i++)
        if (vals[i] < 0 || vals[i] > SC_MAX_SIDE || (i == 0 && !e && !hh))
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is out of range (1..%d)", path, key, SC_MAX_SIDE);
    *se = (int32_t)e;
    *h = (int32_t)hh;
    *w = (int32_t)ww;
    return NGPT_OK;
}

static ngpt_status read_triple(const json_t *j, const char *key, const char *path, const float def[3], float out[3])
{
    const json_t *v = json_object_get(j, key);
    memcpy(out, def, 3 * sizeof *out);
    if (!v || json_is_null(v)) return NGPT_OK;
    if (json_is_number(v)) {  /* one value for every channel */
        out[0] = out[1] = out[2] = (float)json_number_value(v);
        return NGPT_OK;
    }
    if (!json_is_array(v) || json_array_size(v) != 3)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' must be a number or a list of 3 numbers", path, key);
    for (size_t i = 0; i < 3; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_number(e)) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s'[%zu] is not a number", path, key, i);
        out[i] = (float)json_number_value(e);  /* numpy: np.array(mean, dtype=float32) */
    }
    return NGPT_OK;
}

static ngpt_status read_processor_config(sc_fe *fe, const char *dir)
{
    static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    char path[4096];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    ngpt_status s = NGPT_OK;
    static const char *const type_keys[] = {"image_processor_type", "feature_extractor_type"};
    for (size_t i = 0; i < 2 && s == NGPT_OK; i++) {
        const char *t = NULL;
        s = nx_json_str_opt(j, type_keys[i], path, "CLIPImageProcessor", &t);
        if (s == NGPT_OK && strcmp(t, "CLIPImageProcessor") != 0 && strcmp(t, "CLIPFeatureExtractor") != 0)
            s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: '%s' is '%s' (only CLIPImageProcessor / CLIPFeatureExtractor)",
                       path, type_keys[i], t);
    }
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "do_resize", path, true, &fe->do_resize);
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "do_center_crop", path, true, &fe->do_center_crop);
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "do_rescale", path, true, &fe->do_rescale);
    if (s == NGPT_OK) s = nx_json_bool_opt(j, "do_normalize", path, true, &fe->do_normalize);
    int32_t se = 0, h = 0, w = 0;
    if (s == NGPT_OK) s = read_size(j, "size", path, 224, true, &se, &h, &w);
    /* CLIPImageProcessor.resize of transformers 4.29 takes only a shortest edge */
    if (s == NGPT_OK && fe->do_resize && !se)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'size' must give a shortest_edge (CLIPImageProcessor.resize)", path);
    fe->shortest_edge = se;
    if (s == NGPT_OK) s = read_size(j, "crop_size", path, 224, false, &se, &h, &w);
    if (s == NGPT_OK && fe->do_center_crop && se)
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'crop_size' must be an integer or {\"height\": h, \"width\": w}", path);
    fe->crop_h = h;
    fe->crop_w = w;
    int64_t resample = 3;
    if (s == NGPT_OK) s = nx_json_int_opt(j, "resample", path, 3, &resample);
    if (s == NGPT_OK && fe->do_resize && resample != 3)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'resample' %lld (only 3, PIL's BICUBIC, is supported)", path,
                   (long long)resample);
    if (s == NGPT_OK) s = nx_json_num_opt(j, "rescale_factor", path, 1.0 / 255.0, &fe->rescale_factor);
    if (s == NGPT_OK) s = read_triple(j, "image_mean", path, clip_mean, fe->mean);
    if (s == NGPT_OK) s = read_triple(j, "image_std", path, clip_std, fe->stdv);
    json_decref(j);
    return s;
}

/* ---- weights ---- */

/* A checker tensor as host F32 [rows, cols] (cols 0: a vector), marked used; rows -1 = any. */
static ngpt_status host_tensor(nx_safety *m, const char *name, int64_t rows, int64_t cols, float **out, int32_t *n)
{
    const nx_wtensor *t = NULL;
    int64_t shape[2] = {rows, cols};
    NX_TRY(nx_weights_get(m->mw.w, name, NX_FLOAT_DTYPES, cols ? 2 : 1, shape, &t));
    if (t->shape[0] < 1 || t->shape[0] > 4096)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' has %lld rows", m->mw.path, name, (long long)t->shape[0]);
    *out = nx_malloc((size_t)t->shape[0] * (size_t)(cols ? cols : 1) * sizeof **out);
    if (!*out) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", m->mw.path);
    nx_wtensor_to_f32(t, *out);
    if (n) *n = (int32_t)t->shape[0];
    return NGPT_OK;
}

static ngpt_status load_weights(nx_safety *m, ngpt_dtype dt)
{
    nx_mw *w = &m->mw;
    const int64_t D = m->enc.cfg.hidden, P = m->cfg.proj, N = (int64_t)m->grid * m->grid;
#define VM "vision_model.vision_model."
    int64_t fs[4] = {D, 3, m->cfg.patch, m->cfg.patch};
    NX_TRY(nx_mw_get_filter(w, &m->patch_w, VM "embeddings.patch_embedding.weight", fs));
    float *cls = NULL, *pos = NULL;
    ngpt_status s = host_tensor(m, VM "embeddings.class_embedding", D, 0, &cls, NULL);
    if (s == NGPT_OK) s = host_tensor(m, VM "embeddings.position_embedding.weight", N + 1, D, &pos, NULL);
    if (s == NGPT_OK) {
        /* the one float add embeddings + position_embedding makes for the class row */
        for (int64_t k = 0; k < D; k++) cls[k] += pos[k];
        int64_t ps[3] = {1, N, D};
        s = nx_upload_f32_as(&m->pos_patch, m->be, dt, 3, ps, pos + D);
    }
    m->cls_pos = cls;
    nx_free(pos);
    NX_TRY(s);
    nx_weights_mark_used(w->w, VM "embeddings.position_ids");  /* a buffer: arange(N + 1) */
    NX_TRY(nx_mw_get_fmt(w, &m->pre_w, D, 0, VM "pre_layrnorm.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->pre_b, D, 0, VM "pre_layrnorm.bias", 0));
    NX_TRY(nx_clip_enc_load(&m->enc, w, VM "encoder.layers."));
    NX_TRY(nx_mw_get_fmt(w, &m->post_w, D, 0, VM "post_layernorm.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->post_b, D, 0, VM "post_layernorm.bias", 0));
#undef VM
    NX_TRY(nx_mw_get_fmt(w, &m->proj_w, P, D, "visual_projection.weight", 0));
    NX_TRY(host_tensor(m, "concept_embeds", -1, P, &m->concept, &m->n_concept));
    NX_TRY(host_tensor(m, "special_care_embeds", -1, P, &m->special, &m->n_special));
    NX_TRY(host_tensor(m, "concept_embeds_weights", m->n_concept, 0, &m->concept_thr, NULL));
    NX_TRY(host_tensor(m, "special_care_embeds_weights", m->n_special, 0, &m->special_thr, NULL));
    nx_l2_normalize_rows(m->concept, m->n_concept, P);  /* cosine_distance's F.normalize, once */
    nx_l2_normalize_rows(m->special, m->n_special, P);
    return nx_mw_check_unused(w);
}

ngpt_status nx_safety_load(nx_safety **out, nx_backend *be, const char *checker_dir, const char *fe_dir,
                           ngpt_dtype dt)
{
    *out = NULL;
    nx_safety *m = nx_calloc(1, sizeof *m);
    if (!m) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", checker_dir);
    m->be = be;
    ngpt_status s = nx_safety_read_config(&m->cfg, checker_dir);
    if (s == NGPT_OK) {
        m->enc.cfg = m->cfg.enc;
        m->grid = m->cfg.image_size / m->cfg.patch;
    }
    if (s == NGPT_OK) s = read_processor_config(&m->fe, fe_dir);
    static const char *const files[] = {"model.safetensors", "pytorch_model.bin", NULL};
    if (s == NGPT_OK) s = nx_mw_open(&m->mw, be, checker_dir, files);
    m->mw.dt = dt;
    if (s == NGPT_OK) s = load_weights(m, dt);
    if (s != NGPT_OK) {
        nx_safety_free(m);
        return s;
    }
    *out = m;
    return NGPT_OK;
}

void nx_safety_free(nx_safety *m)
{
    if (!m) return;
    nx_tensor_free(&m->pos_patch);
    nx_mw_close(&m->mw);
    nx_free(m->cls_pos);
    nx_free(m->concept);
    nx_free(m->special);
    nx_free(m->concept_thr);
    nx_free(m->special_thr);
    nx_free(m);
}

int32_t nx_safety_image_size(const nx_safety *m) { return m->cfg.image_size; }
int32_t nx_safety_projection_dim(const nx_safety *m) { return m->cfg.proj; }
int32_t nx_safety_n_concepts(const nx_safety *m) { return m->n_concept; }
int32_t nx_safety_n_special(const nx_safety *m) { return m->n_special; }

/* ---- CLIPImageProcessor ---- */

static int32_t floor_div2(int32_t a) { return a >= 0 ? a / 2 : -((-a + 1) / 2); }

/* transformers 4.29 image_transforms.center_crop along one side of n pixels, crop c: the first
 * output pixel's position in the (unpadded) image and the output length. Where the crop is
 * larger, the image sits in a zero canvas max(c, n) long at (max(c, n) - n) // 2, and the
 * slice is clipped to the canvas (one pixel short when c - n is odd, as upstream). */
static void crop_side(int32_t n, int32_t c, int32_t *first, int32_t *len, bool padded)
{
    int32_t lo = floor_div2(n - c), hi = lo + c;
    if (!padded) {
        *first = lo;
        *len = c;
        return;
    }
    int32_t canvas = c > n ? c : n, pad = (canvas - n) / 2;
    lo += pad;
    hi += pad;
    int32_t a = lo > 0 ? lo : 0, b = hi < canvas ? hi : canvas;
    *first = a - pad;
    *len = b - a;
}

ngpt_status nx_safety_preprocess(const nx_safety *m, const uint8_t *rgb, int32_t w, int32_t h, float *out)
{
    const sc_fe *fe = &m->fe;
    if (w < 1 || h < 1) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "safety checker: empty image");
    /* resize: get_resize_output_image_size(default_to_square=False) */
    int32_t nw = w, nh = h;
    if (fe->do_resize) {
        int32_t S = fe->shortest_edge, shorter = w <= h ? w : h, longer = w <= h ? h : w;
        if (shorter != S) {
            double l = (double)S * longer / shorter;
            if (l > 1 << 30) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "safety checker: %dx%d image", w, h);
            if (w <= h) nw = S, nh = (int32_t)l;
            else nh = S, nw = (int32_t)l;
        }
    }
    /* center crop (with transformers' zero padding), else the whole image */
    int32_t y0 = 0, x0 = 0, oh = nh, ow = nw;
    if (fe->do_center_crop) {
        int32_t top = floor_div2(nh - fe->crop_h), left = floor_div2(nw - fe->crop_w);
        bool inside = top >= 0 && left >= 0 && top + fe->crop_h <= nh && left + fe->crop_w <= nw;
        crop_side(nh, fe->crop_h, &y0, &oh, !inside);
        crop_side(nw, fe->crop_w, &x0, &ow, !inside);
    }
    const int32_t S = m->cfg.image_size;
    if (oh != S || ow != S)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "safety checker: the feature extractor makes a %dx%d image into %dx%d; "
                      "the vision model takes %dx%d", w, h, ow, oh, S, S);
    /* the part of the resized image inside the output window; the rest stays 0 (the padding) */
    int32_t ry0 = y0 > 0 ? y0 : 0, rx0 = x0 > 0 ? x0 : 0;
    int32_t ry1 = y0 + oh < nh ? y0 + oh : nh, rx1 = x0 + ow < nw ? x0 + ow : nw;
    uint8_t *canvas = nx_calloc((size_t)S * S * 3, 1);
    uint8_t *win = canvas && ry1 > ry0 && rx1 > rx0 ? nx_malloc((size_t)(ry1 - ry0) * (rx1 - rx0) * 3) : NULL;
    if (!canvas || (ry1 > ry0 && rx1 > rx0 && !win)) {
        nx_free(canvas);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "safety checker: out of memory");
    }
    ngpt_status s = NGPT_OK;
    if (win) {
        int32_t cw = rx1 - rx0, ch = ry1 - ry0;
        if (nw != w || nh != h) {
            s = nx_resize_bicubic_rgb8_window(rgb, w, h, nw, nh, rx0, ry0, cw, ch, win);
        } else {
            for (int32_t y = 0; y < ch; y++)
                memcpy(win + (size_t)y * cw * 3, rgb + ((size_t)(ry0 + y) * w + rx0) * 3, (size_t)cw * 3);
        }
        for (int32_t y = 0; s == NGPT_OK && y < ch; y++)
            memcpy(canvas + ((size_t)(ry0 - y0 + y) * S + (rx0 - x0)) * 3, win + (size_t)y * cw * 3, (size_t)cw * 3);
    }
    /* rescale: uint8 * factor in float64, then float32; normalize in float32; channels first */
    for (int c = 0; s == NGPT_OK && c < 3; c++)
        for (size_t i = 0; i < (size_t)S * S; i++) {
            float v = fe->do_rescale ? (float)((double)canvas[i * 3 + c] * fe->rescale_factor) : (float)canvas[i * 3 + c];
            if (fe->do_normalize) v = (v - fe->mean[c]) / fe->stdv[c];
            out[(size_t)c * S * S + i] = v;
        }
    nx_free(win);
    nx_free(canvas);
    return s;
}

/* ---- the vision tower ---- */

ngpt_status nx_safety_embed(nx_safety *m, const float *pixels, int64_t B, float *embeds)
{
    nx_backend *be = m->be;
    const ngpt_dtype dt = m->mw.dt;
    const int64_t D = m->enc.cfg.hidden, S = m->cfg.image_size, G = m->grid, N = G * G, P = m->cfg.proj;
    if (B < 1) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "safety checker: batch %lld", (long long)B);
    float *cls = nx_malloc((size_t)B * D * sizeof *cls);
    if (!cls) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "safety checker: out of memory");
    for (int64_t b = 0; b < B; b++) memcpy(cls + b * D, m->cls_pos, (size_t)D * sizeof *cls);
    nx_tensor px = {0}, pe = {0}, pt = {0}, ct = {0}, x = {0}, h = {0}, pooled = {0}, pn = {0}, e = {0}, e32 = {0};
    int64_t sp[4] = {B, 3, S, S}, spe[4] = {B, D, G, G}, spt[4] = {B, G, G, D}, sc[3] = {B, 1, D};
    int64_t sx[3] = {B, 1 + N, D}, se[3] = {B, 1, P};
    ngpt_status s = nx_upload_f32_as(&px, be, dt, 4, sp, pixels);
    if (s == NGPT_OK) s = nx_upload_f32_as(&ct, be, dt, 3, sc, cls);
    if (s == NGPT_OK) s = nx_tensor_alloc(&pe, be, dt, 4, spe);
    if (s == NGPT_OK) {
        nx_conv_params cp = nx_conv_params_default();
        cp.stride[0] = cp.stride[1] = m->cfg.patch;
        s = nx_op_conv(be, &pe, &px, m->patch_w, NULL, &cp);
    }
    if (s == NGPT_OK) s = nx_tensor_alloc(&pt, be, dt, 4, spt);
    static const int to_tokens[4] = {0, 2, 3, 1};  /* flatten(2).transpose(1, 2) */
    if (s == NGPT_OK) s = nx_op_permute(be, &pt, &pe, to_tokens);
    if (s == NGPT_OK) {
        int64_t s3[3] = {B, N, D};
        nx_tensor tok = nx_view(dt, 3, s3, pt.data, pt.be);
        s = nx_op_binary(be, &tok, &tok, &m->pos_patch, NX_BINARY_ADD);
        if (s == NGPT_OK) s = nx_tensor_alloc(&x, be, dt, 3, sx);
        if (s == NGPT_OK) s = nx_op_concat(be, &x, &ct, &tok, 1);
    }
    if (s == NGPT_OK) s = nx_tensor_alloc(&h, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_op_layer_norm(be, &h, &x, m->pre_w, m->pre_b, m->enc.cfg.eps);
    if (s == NGPT_OK) s = nx_clip_enc_forward(&m->enc, be, &h, false);
    if (s == NGPT_OK) s = nx_tensor_alloc(&pooled, be, dt, 3, sc);
    if (s == NGPT_OK) s = nx_op_slice(be, &pooled, &h, 1, 0);
    if (s == NGPT_OK) s = nx_tensor_alloc(&pn, be, dt, 3, sc);
    if (s == NGPT_OK) s = nx_op_layer_norm(be, &pn, &pooled, m->post_w, m->post_b, m->enc.cfg.eps);
    if (s == NGPT_OK) s = nx_tensor_alloc(&e, be, dt, 3, se);
    if (s == NGPT_OK) s = nx_op_linear(be, &e, &pn, m->proj_w, NULL);
    const nx_tensor *res = &e;
    if (s == NGPT_OK && dt != NGPT_DTYPE_F32) {
        s = nx_tensor_alloc(&e32, be, NGPT_DTYPE_F32, 3, se);
        if (s == NGPT_OK) s = nx_op_cast(be, &e32, &e);
        res = &e32;
    }
    if (s == NGPT_OK) s = nx_tensor_download(res, embeds, (size_t)(B * P) * sizeof *embeds);
    nx_tensor *all[] = {&px, &pe, &pt, &ct, &x, &h, &pooled, &pn, &e, &e32};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nx_tensor_free(all[i]);
    nx_free(cls);
    return s;
}

/* ---- StableDiffusionSafetyChecker.forward's loop ---- */

static double round3(double x) { return rint(x * 1000.0) / 1000.0; }  /* numpy's round(x, 3) */

void nx_safety_scores(const nx_safety *m, float *embeds, int64_t B, float *special, float *concept, bool *nsfw)
{
    const int64_t P = m->cfg.proj;
    nx_l2_normalize_rows(embeds, B, P);  /* cosine_distance's F.normalize(image_embeds) */
    for (int64_t b = 0; b < B; b++) {
        const float *e = embeds + b * P;
        double adjustment = 0.0;
        bool bad = false;
        for (int pass = 0; pass < 2; pass++) {  /* the special-care concepts, then the concepts */
            const int32_t n = pass ? m->n_concept : m->n_special;
            const float *rows = pass ? m->concept : m->special, *thr = pass ? m->concept_thr : m->special_thr;
            float *dst = pass ? concept : special;
            for (int32_t k = 0; k < n; k++) {
                /* cosine_distance: torch's float32 mm, the dot accumulated in double here */
                double d = 0;
                for (int64_t i = 0; i < P; i++) d += (double)e[i] * rows[(int64_t)k * P + i];
                double score = round3((double)(float)d - (double)thr[k] + adjustment);
                if (dst) dst[b * n + k] = (float)score;
                if (score > 0) {
                    if (pass) bad = true;
                    else adjustment = 0.01;  /* "special care": stricter for what follows */
                }
            }
        }
        nsfw[b] = bad;
    }
}
