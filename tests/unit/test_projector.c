/* test_projector.c — ngpt_projector through the public API: loading from a projector folder
 * (projector-a) and from the NExT-GPT delta (pytorch_model.pt, delta.safetensors, the folder),
 * sizes derived from shapes and the params overrides, .pt == .safetensors results, batch
 * consistency, input_sum, named errors for missing / misshaped / unknown tensors and bad
 * arguments, and allocation-failure injection over create. Golden values are in the golden
 * suite (projector.input / projector.output). */
#include "nextgpt.h"
#include "core/weights.h"
#include "test.h"
#include "alloc_fail.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[900], g_proj[1024], g_delta[1024], g_pt[1100], g_st[1100], g_tmp[64];
static ngpt_context *g_ctx;

static ngpt_projector *create(const char *path, const ngpt_projector_params *p)
{
    ngpt_projector *pj = NULL;
    ngpt_status s = ngpt_projector_create(&pj, g_ctx, path, p);
    CHECK_MSG(s == NGPT_OK, "create %s -> %s: %s", path, ngpt_status_string(s), ngpt_last_error());
    return pj;
}

static ngpt_tensor host3(float *data, int64_t a, int64_t b, int64_t c)
{
    ngpt_tensor t = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {a, b, c}, .data = data};
    return t;
}

/* hidden/input_embs [B, n_in, llm] filled from the seeded rng */
static float *rand_buf(test_rng *r, size_t n)
{
    float *p = malloc(n * sizeof *p);
    test_fill(r, p, n, -1.5f, 1.5f);
    return p;
}

static void test_projector_a(void)
{
    char path[1100];
    snprintf(path, sizeof path, "%s", g_proj);
    ngpt_projector *pj = create(path, NULL);
    if (!pj) return;
    CHECK(ngpt_projector_has_input(pj) == 1);
    CHECK(ngpt_projector_llm_hidden_size(pj) == 64);
    CHECK(ngpt_projector_input_dim(pj) == 32);
    CHECK(ngpt_projector_output_dim(pj, NGPT_MODALITY_IMAGE) == 32);
    CHECK(ngpt_projector_output_dim(pj, NGPT_MODALITY_AUDIO) == 24);
    CHECK(ngpt_projector_output_dim(pj, NGPT_MODALITY_VIDEO) == 48);
    CHECK(ngpt_projector_num_input_tokens(pj, NGPT_MODALITY_VIDEO) == 24);
    CHECK(ngpt_projector_num_output_tokens(pj, NGPT_MODALITY_AUDIO) == 1);
    CHECK(ngpt_projector_num_output_tokens(pj, NGPT_MODALITY_IMAGE) == 77);
    CHECK(ngpt_projector_d_model(pj, NGPT_MODALITY_IMAGE) == 32);
    CHECK(ngpt_projector_nhead(pj, NGPT_MODALITY_IMAGE) == 4);
    CHECK(ngpt_projector_output_dim(pj, NGPT_MODALITY_TEXT) == 0);
    CHECK(ngpt_projector_has_output(NULL, NGPT_MODALITY_IMAGE) == 0);
    ngpt_projector_free(pj);
    ngpt_projector_free(NULL);

    /* only the audio projector: the others are skipped, not reported */
    ngpt_projector_params p;
    ngpt_projector_params_default(&p, sizeof p);
    p.modalities = NGPT_PROJECTOR_AUDIO;
    pj = create(path, &p);
    if (!pj) return;
    CHECK(ngpt_projector_has_input(pj) == 0);
    CHECK(ngpt_projector_has_output(pj, NGPT_MODALITY_AUDIO) == 1);
    CHECK(ngpt_projector_has_output(pj, NGPT_MODALITY_IMAGE) == 0);
    ngpt_tensor out = {0};
    float f[32] = {0};
    ngpt_tensor ft = {.dtype = NGPT_DTYPE_F32, .rank = 2, .shape = {1, 32}, .data = f};
    CHECK_ERR(ngpt_projector_input(pj, &out, &ft), NGPT_ERR_UNSUPPORTED, "ngpt_projector_input: no input projector");
    CHECK_ERR(ngpt_projector_input_sum(pj, &out, &ft), NGPT_ERR_UNSUPPORTED, "ngpt_projector_input_sum: no input projector");
    float h[4 * 64] = {0};
    ngpt_tensor ht = host3(h, 1, 4, 64);
    CHECK_ERR(ngpt_projector_output(pj, &out, NGPT_MODALITY_IMAGE, &ht, &ht), NGPT_ERR_UNSUPPORTED, "image");
    ngpt_projector_free(pj);
}

/* Run every output projector on pj with fixed data; results appended to *res (malloc'd). */
static void run_all(ngpt_projector *pj, float **res, size_t *n_res)
{
    const ngpt_modality mods[3] = {NGPT_MODALITY_IMAGE, NGPT_MODALITY_AUDIO, NGPT_MODALITY_VIDEO};
    *res = NULL;
    *n_res = 0;
    for (int m = 0; m < 3; m++) {
        test_rng r = {1234 + (uint64_t)m};
        int64_t B = 2, n_in = ngpt_projector_num_input_tokens(pj, mods[m]), llm = ngpt_projector_llm_hidden_size(pj);
        size_t n = (size_t)(B * n_in * llm);
        float *h = rand_buf(&r, n), *e = rand_buf(&r, n);
        ngpt_tensor ht = host3(h, B, n_in, llm), et = host3(e, B, n_in, llm), out = {0};
        CHECK_OK(ngpt_projector_output(pj, &out, mods[m], &ht, &et));
        size_t k = (size_t)ngpt_tensor_numel(&out);
        CHECK(out.rank == 3 && out.shape[0] == B && out.shape[1] == ngpt_projector_num_output_tokens(pj, mods[m]) &&
              out.shape[2] == ngpt_projector_output_dim(pj, mods[m]));
        *res = realloc(*res, (*n_res + k) * sizeof **res);
        memcpy(*res + *n_res, out.data, k * sizeof **res);
        *n_res += k;
        for (size_t i = 0; i < k; i++) CHECK_MSG(isfinite(((float *)out.data)[i]), "non-finite output %zu", i);
        ngpt_tensor_free(&out);
        free(h);
        free(e);
    }
    /* the input projector too */
    test_rng r = {99};
    int64_t in = ngpt_projector_input_dim(pj);
    float *f = rand_buf(&r, (size_t)(3 * in));
    ngpt_tensor ft = {.dtype = NGPT_DTYPE_F32, .rank = 2, .shape = {3, in}, .data = f}, out = {0};
    CHECK_OK(ngpt_projector_input(pj, &out, &ft));
    size_t k = (size_t)ngpt_tensor_numel(&out);
    *res = realloc(*res, (*n_res + k) * sizeof **res);
    if (k) memcpy(*res + *n_res, out.data, k * sizeof **res);
    *n_res += k;
    ngpt_tensor_free(&out);
    free(f);
}

static void test_delta(void)
{
    ngpt_projector *a = create(g_pt, NULL), *b = create(g_st, NULL), *c = create(g_delta, NULL);
    if (!a || !b || !c) goto done;
    /* sizes derived from the delta's shapes + NExT-GPT's constants */
    CHECK(ngpt_projector_llm_hidden_size(a) == 64);
    CHECK(ngpt_projector_input_dim(a) == 1024);
    CHECK(ngpt_projector_d_model(a, NGPT_MODALITY_IMAGE) == 16);
    CHECK(ngpt_projector_nhead(a, NGPT_MODALITY_IMAGE) == 4);
    CHECK(ngpt_projector_output_dim(a, NGPT_MODALITY_IMAGE) == 768);
    CHECK(ngpt_projector_output_dim(a, NGPT_MODALITY_AUDIO) == 512);
    CHECK(ngpt_projector_output_dim(a, NGPT_MODALITY_VIDEO) == 1024);
    CHECK(ngpt_projector_num_input_tokens(a, NGPT_MODALITY_IMAGE) == 4);
    CHECK(ngpt_projector_num_input_tokens(a, NGPT_MODALITY_AUDIO) == 8);
    CHECK(ngpt_projector_num_input_tokens(a, NGPT_MODALITY_VIDEO) == 24);
    CHECK(ngpt_projector_num_output_tokens(a, NGPT_MODALITY_VIDEO) == 77);
    CHECK(ngpt_projector_num_output_tokens(a, NGPT_MODALITY_AUDIO) == 1);
    float *ra, *rb, *rc;
    size_t na, nb, nc;
    run_all(a, &ra, &na);
    run_all(b, &rb, &nb);
    run_all(c, &rc, &nc);
    CHECK(na == nb && na == nc && na > 0);
    CHECK_MSG(na == nb && memcmp(ra, rb, na * sizeof *ra) == 0, ".pt and .safetensors results differ");
    CHECK_MSG(na == nc && memcmp(ra, rc, na * sizeof *ra) == 0, "folder and .pt results differ");
    free(ra);
    free(rb);
    free(rc);

    /* overrides: nhead 2 still loads and changes the result; 3 does not divide 16 */
    ngpt_projector_params p;
    ngpt_projector_params_default(&p, sizeof p);
    p.modalities = NGPT_PROJECTOR_AUDIO;
    p.nhead = 2;
    ngpt_projector *h2 = create(g_pt, &p);
    if (h2) CHECK(ngpt_projector_nhead(h2, NGPT_MODALITY_AUDIO) == 2);
    ngpt_projector_free(h2);
    ngpt_projector *bad = NULL;
    p.nhead = 3;
    CHECK_ERR(ngpt_projector_create(&bad, g_ctx, g_pt, &p), NGPT_ERR_INVALID_ARGUMENT, "nhead 3");
    CHECK(bad == NULL);
    p.nhead = 0;
    p.audio_num_output_tokens = 77;
    CHECK_ERR(ngpt_projector_create(&bad, g_ctx, g_pt, &p), NGPT_ERR_SHAPE_MISMATCH, "query tokens");
    p.audio_num_output_tokens = 1;
    p.audio_num_input_tokens = 5;
    ngpt_projector *n5 = create(g_pt, &p);
    if (n5) CHECK(ngpt_projector_num_input_tokens(n5, NGPT_MODALITY_AUDIO) == 5);
    ngpt_projector_free(n5);
done:
    ngpt_projector_free(a);
    ngpt_projector_free(b);
    ngpt_projector_free(c);
}

/* The delta's F16 matrices stay F16 (views of the mapping on the CPU) and are widened inside
 * nn.Linear; a copy of the delta widened to F32 up front must give the same outputs. */
static void test_f16_matrices(void)
{
    char f32[1100];
    snprintf(f32, sizeof f32, "%s/delta_f32.safetensors", g_tmp);
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, g_st));
    if (!w) return;
    size_t n = nx_weights_count(w), n_f16 = 0;
    nx_st_entry *ent = calloc(n, sizeof *ent);
    float **bufs = calloc(n, sizeof *bufs);
    for (size_t i = 0; ent && bufs && i < n; i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        size_t k = 1;
        for (int d = 0; d < t->rank; d++) k *= (size_t)t->shape[d];
        bufs[i] = malloc((k ? k : 1) * sizeof(float));
        if (!bufs[i]) continue;
        nx_wtensor_to_f32(t, bufs[i]);
        n_f16 += t->dtype == NGPT_DTYPE_F16;
        ent[i] = (nx_st_entry){t->name, NGPT_DTYPE_F32, t->rank, t->shape, bufs[i]};
    }
    CHECK_MSG(n_f16 > 100, "the golden delta should hold F16 tensors (%zu)", n_f16);
    if (ent && bufs) CHECK_OK(nx_safetensors_write(f32, ent, n, NULL, 0));
    for (size_t i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    free(ent);
    nx_weights_close(w);

    ngpt_projector *a = create(g_st, NULL), *b = create(f32, NULL);
    if (a && b) {
        float *ra, *rb;
        size_t na, nb;
        run_all(a, &ra, &na);
        run_all(b, &rb, &nb);
        CHECK(na == nb && na > 0);
        double worst = 0;
        for (size_t i = 0; na == nb && i < na; i++) {
            double e = fabs((double)ra[i] - rb[i]) / (1.0 + fabs((double)rb[i]));
            if (e > worst) worst = e;
        }
        CHECK_MSG(worst <= 1e-5, "F16 matrices vs their F32 widening: worst error %.3g", worst);
        free(ra);
        free(rb);
    }
    ngpt_projector_free(a);
    ngpt_projector_free(b);
    unlink(f32);
}

static void test_batch_and_sum(void)
{
    ngpt_projector *pj = create(g_proj, NULL);
    if (!pj) return;
    const int64_t B = 3, n_in = 4, llm = 64, n_out = 77, od = 32;
    test_rng r = {7};
    size_t n = (size_t)(B * n_in * llm);
    float *h = rand_buf(&r, n), *e = rand_buf(&r, n);
    ngpt_tensor ht = host3(h, B, n_in, llm), et = host3(e, B, n_in, llm), all = {0};
    CHECK_OK(ngpt_projector_output(pj, &all, NGPT_MODALITY_IMAGE, &ht, &et));
    for (int64_t b = 0; b < B && all.data; b++) {
        ngpt_tensor h1 = host3(h + b * n_in * llm, 1, n_in, llm), e1 = host3(e + b * n_in * llm, 1, n_in, llm), one = {0};
        CHECK_OK(ngpt_projector_output(pj, &one, NGPT_MODALITY_IMAGE, &h1, &e1));
        if (one.data)
            test_close("batch row", (float *)all.data + b * n_out * od, one.data, (size_t)(n_out * od), 1e-5f, 1e-5f);
        ngpt_tensor_free(&one);
    }
    ngpt_tensor_free(&all);

    /* input_sum = sum of the per-item projections (bias counted per item), not proj(sum) */
    float f[3 * 32];
    test_fill(&r, f, 96, -1, 1);
    ngpt_tensor ft = {.dtype = NGPT_DTYPE_F32, .rank = 2, .shape = {3, 32}, .data = f}, each = {0}, sum = {0};
    CHECK_OK(ngpt_projector_input(pj, &each, &ft));
    CHECK_OK(ngpt_projector_input_sum(pj, &sum, &ft));
    if (each.data && sum.data) {
        CHECK(sum.rank == 2 && sum.shape[0] == 1 && sum.shape[1] == 64);
        float want[64];
        for (int j = 0; j < 64; j++) {
            const float *e3 = each.data;
            want[j] = e3[j] + e3[64 + j] + e3[128 + j];
        }
        test_close("input_sum", sum.data, want, 64, 1e-6f, 1e-6f);
    }
    ngpt_tensor_free(&each);
    ngpt_tensor_free(&sum);
    /* one item given as a 1-D [in_dim] tensor */
    ngpt_tensor f1 = {.dtype = NGPT_DTYPE_F32, .rank = 1, .shape = {32}, .data = f}, o1 = {0};
    CHECK_OK(ngpt_projector_input(pj, &o1, &f1));
    CHECK(o1.rank == 2 && o1.shape[0] == 1 && o1.shape[1] == 64);
    ngpt_tensor_free(&o1);

    /* bad arguments */
    ngpt_tensor out = {0};
    ngpt_tensor h5 = host3(h, 1, 5, llm), wide = host3(h, 1, 4, 63);
    CHECK_ERR(ngpt_projector_output(pj, &out, NGPT_MODALITY_IMAGE, &h5, &h5), NGPT_ERR_SHAPE_MISMATCH, "hidden: expected [1, 4, 64], got [1, 5, 64]");
    CHECK_ERR(ngpt_projector_output(pj, &out, NGPT_MODALITY_IMAGE, &wide, &wide), NGPT_ERR_SHAPE_MISMATCH, "[1, 4, 64]");
    ngpt_tensor h2 = host3(h, 2, 4, llm), e1 = host3(e, 1, 4, llm);
    CHECK_ERR(ngpt_projector_output(pj, &out, NGPT_MODALITY_IMAGE, &h2, &e1), NGPT_ERR_SHAPE_MISMATCH, "input_embs");
    CHECK_ERR(ngpt_projector_output(pj, &out, NGPT_MODALITY_TEXT, &h2, &h2), NGPT_ERR_INVALID_ARGUMENT, "modality");
    CHECK_ERR(ngpt_projector_output(pj, &out, NGPT_MODALITY_IMAGE, NULL, &h2), NGPT_ERR_INVALID_ARGUMENT, NULL);
    ngpt_tensor h0 = host3(h, 0, 4, llm);
    CHECK_ERR(ngpt_projector_output(pj, &out, NGPT_MODALITY_IMAGE, &h0, &h0), NGPT_ERR_SHAPE_MISMATCH, "batch of 0");
    ngpt_tensor f33 = {.dtype = NGPT_DTYPE_F32, .rank = 2, .shape = {1, 33}, .data = f};
    CHECK_ERR(ngpt_projector_input(pj, &out, &f33), NGPT_ERR_SHAPE_MISMATCH, "features: expected [n, 32] or [32], got [1, 33]");
    CHECK_ERR(ngpt_projector_input(NULL, &out, &f33), NGPT_ERR_INVALID_ARGUMENT, NULL);
    free(h);
    free(e);
    ngpt_projector_free(pj);
}

// ----------------------------------------------------------------------------
// bad files, written from the real ones

typedef struct variant {
    const char *drop_prefix;     /* tensors to leave out */
    const char *bad_shape;       /* tensor written with its first dim - 1 */
    bool        extra;           /* add "extra.weight" */
    const char *cfg_from, *cfg_to; /* folder route: config.json with the first cfg_from replaced */
} variant;

static void write_variant(const char *src, const char *dst, const variant *v)
{
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, src));
    if (!w) return;
    size_t n = nx_weights_count(w);
    nx_st_entry *e = calloc(n + 1, sizeof *e);
    int64_t (*shapes)[NGPT_MAX_DIMS] = calloc(n + 1, sizeof *shapes);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        if (v->drop_prefix && strncmp(t->name, v->drop_prefix, strlen(v->drop_prefix)) == 0) continue;
        memcpy(shapes[k], t->shape, sizeof shapes[k]);
        if (v->bad_shape && strcmp(t->name, v->bad_shape) == 0) shapes[k][0]--;
        e[k] = (nx_st_entry){t->name, t->dtype, t->rank, shapes[k], t->data};
        k++;
    }
    static const float extra[4] = {1, 2, 3, 4};
    static const int64_t extra_shape[1] = {4};
    if (v->extra) e[k++] = (nx_st_entry){"extra.weight", NGPT_DTYPE_F32, 1, extra_shape, extra};
    CHECK_OK(nx_safetensors_write(dst, e, k, NULL, 0));
    free(e);
    free(shapes);
    nx_weights_close(w);
}

static void copy_file(const char *src, const char *dst)
{
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    CHECK(a && b);
    char buf[4096];
    size_t n;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    if (a) fclose(a);
    if (b) fclose(b);
}

/* A projector folder in g_tmp/proj with a model.safetensors variant of projector-a. */
static ngpt_status create_folder_variant(const variant *v, ngpt_projector **pj)
{
    char src[1200], dir[128], dst[200];
    snprintf(dir, sizeof dir, "%s/proj", g_tmp);
    mkdir(dir, 0700);
    snprintf(src, sizeof src, "%s/config.json", g_proj);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    copy_file(src, dst);
    if (v->cfg_from) {
        FILE *f = fopen(dst, "rb");
        static char text[16384];
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f) fclose(f);
        text[n] = 0;
        char *at = strstr(text, v->cfg_from);
        CHECK_MSG(at != NULL, "config.json has no '%s'", v->cfg_from);
        if (at && (f = fopen(dst, "wb"))) {
            fprintf(f, "%.*s%s%s", (int)(at - text), text, v->cfg_to, at + strlen(v->cfg_from));
            fclose(f);
        }
    }
    snprintf(src, sizeof src, "%s/model.safetensors", g_proj);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    write_variant(src, dst, v);
    ngpt_clear_error();
    return ngpt_projector_create(pj, g_ctx, dir, NULL);
}

static ngpt_status create_delta_variant(const variant *v, const ngpt_projector_params *p, ngpt_projector **pj)
{
    char dst[200];
    snprintf(dst, sizeof dst, "%s/delta_variant.safetensors", g_tmp);
    write_variant(g_st, dst, v);
    ngpt_clear_error();
    return ngpt_projector_create(pj, g_ctx, dst, p);
}

static void test_bad_files(void)
{
    ngpt_projector *pj = NULL;
    variant v = {.drop_prefix = "gen_text_hidden_fcs_video.0.tfm.decoder.layers.0.norm3.bias"};
    CHECK_ERR(create_folder_variant(&v, &pj), NGPT_ERR_NOT_FOUND,
              "'gen_text_hidden_fcs_video.0.tfm.decoder.layers.0.norm3.bias' not found");
    v = (variant){.bad_shape = "gen_text_hidden_fcs.0.tfm.encoder.layers.1.linear1.weight"};
    CHECK_ERR(create_folder_variant(&v, &pj), NGPT_ERR_SHAPE_MISMATCH,
              "gen_text_hidden_fcs.0.tfm.encoder.layers.1.linear1.weight");
    v = (variant){.extra = true};
    CHECK_ERR(create_folder_variant(&v, &pj), NGPT_ERR_UNEXPECTED_TENSOR, "extra.weight");
    CHECK(pj == NULL);
    /* config.json sizes out of range are named; -1 is not a wildcard for any size */
    v = (variant){.cfg_from = "\"llm_hidden_size\": 64", .cfg_to = "\"llm_hidden_size\": -5"};
    CHECK_ERR(create_folder_variant(&v, &pj), NGPT_ERR_BAD_FORMAT, "config.json: llm_hidden_size is -5");
    v = (variant){.cfg_from = "\"in_dim\": 32", .cfg_to = "\"in_dim\": -1"};
    CHECK_ERR(create_folder_variant(&v, &pj), NGPT_ERR_BAD_FORMAT, "config.json: input_projector.in_dim is -1");
    v = (variant){.cfg_from = "\"layer_norm_eps\": 1e-05", .cfg_to = "\"layer_norm_eps\": -1"};
    CHECK_ERR(create_folder_variant(&v, &pj), NGPT_ERR_BAD_FORMAT, "output_projectors.image.layer_norm_eps is -1");
    v = (variant){.cfg_from = "\"in_dim\": 32", .cfg_to = "\"in_dim\": 31"};
    CHECK_ERR(create_folder_variant(&v, &pj), NGPT_ERR_SHAPE_MISMATCH, "'llama_proj.weight': expected [64, 31], got [64, 32]");
    CHECK(pj == NULL);

    /* delta route */
    v = (variant){.extra = true};
    CHECK_ERR(create_delta_variant(&v, NULL, &pj), NGPT_ERR_UNEXPECTED_TENSOR, "extra.weight");
    ngpt_projector_params p;
    ngpt_projector_params_default(&p, sizeof p);
    p.flags = NGPT_PROJECTOR_ALLOW_UNKNOWN_TENSORS;
    CHECK_OK(create_delta_variant(&v, &p, &pj));
    ngpt_projector_free(pj);
    pj = NULL;
    v = (variant){.bad_shape = "gen_text_hidden_fcs_audio.0.tfm.decoder.layers.2.multihead_attn.in_proj_weight"};
    CHECK_ERR(create_delta_variant(&v, NULL, &pj), NGPT_ERR_SHAPE_MISMATCH, "multihead_attn.in_proj_weight");
    v = (variant){.bad_shape = "llama_proj.bias"};
    CHECK_ERR(create_delta_variant(&v, NULL, &pj), NGPT_ERR_SHAPE_MISMATCH, "llama_proj.bias");
    v = (variant){.drop_prefix = "gen_text_hidden_fcs.0.query_embs"};
    CHECK_ERR(create_delta_variant(&v, NULL, &pj), NGPT_ERR_NOT_FOUND, "gen_text_hidden_fcs.0.query_embs");
    /* without the audio projector: loads the rest; asking for it is a named error */
    v = (variant){.drop_prefix = "gen_text_hidden_fcs_audio."};
    CHECK_OK(create_delta_variant(&v, NULL, &pj));
    if (pj) {
        CHECK(ngpt_projector_has_output(pj, NGPT_MODALITY_AUDIO) == 0);
        CHECK(ngpt_projector_has_output(pj, NGPT_MODALITY_VIDEO) == 1);
    }
    ngpt_projector_free(pj);
    pj = NULL;
    p.flags = 0;
    p.modalities = NGPT_PROJECTOR_AUDIO;
    CHECK_ERR(create_delta_variant(&v, &p, &pj), NGPT_ERR_NOT_FOUND, "audio");

    /* bad paths and params */
    CHECK_ERR(ngpt_projector_create(&pj, g_ctx, "/nonexistent/projector", NULL), NGPT_ERR_NOT_FOUND, "/nonexistent");
    CHECK_ERR(ngpt_projector_create(&pj, g_ctx, g_tmp, NULL), NGPT_ERR_NOT_FOUND, "delta");
    CHECK_ERR(ngpt_projector_create(NULL, g_ctx, g_pt, NULL), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK_ERR(ngpt_projector_create(&pj, NULL, g_pt, NULL), NGPT_ERR_INVALID_ARGUMENT, NULL);
    p.modalities = 0x100;
    CHECK_ERR(ngpt_projector_create(&pj, g_ctx, g_pt, &p), NGPT_ERR_INVALID_ARGUMENT, "modality bits");
    p.modalities = 0;
    p.flags = 0x80;
    CHECK_ERR(ngpt_projector_create(&pj, g_ctx, g_pt, &p), NGPT_ERR_INVALID_ARGUMENT, "flags");
    CHECK_ERR(ngpt_projector_params_default(NULL, sizeof p), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK(pj == NULL);
}

static void test_params_default(void)
{
    ngpt_projector_params p;
    memset(&p, 0xab, sizeof p);
    CHECK_OK(ngpt_projector_params_default(&p, sizeof p));
    CHECK(p.struct_size == sizeof p && p.modalities == 0 && p.nhead == 0 && p.flags == 0);
    CHECK(p.image_num_output_tokens == 0 && p.video_num_input_tokens == 0);
    /* an older caller's struct that ends after nhead: nothing past it is written, and create
     * reads only that much */
    unsigned char buf[sizeof p + 8];
    memset(buf, 0xcd, sizeof buf);
    size_t old = offsetof(ngpt_projector_params, image_num_input_tokens);
    CHECK_OK(ngpt_projector_params_default((ngpt_projector_params *)buf, old));
    CHECK(buf[old] == 0xcd);
    ngpt_projector *pj = create(g_pt, (ngpt_projector_params *)buf);
    ngpt_projector_free(pj);
}

static ngpt_status load_folder(void *user)
{
    (void)user;
    ngpt_projector *pj = NULL;
    ngpt_status s = ngpt_projector_create(&pj, g_ctx, g_proj, NULL);
    ngpt_projector_free(pj);
    return s;
}

static ngpt_status load_pt(void *user)
{
    ngpt_projector_params p;
    ngpt_projector_params_default(&p, sizeof p);
    p.modalities = *(uint32_t *)user;
    ngpt_projector *pj = NULL;
    ngpt_status s = ngpt_projector_create(&pj, g_ctx, g_pt, &p);
    ngpt_projector_free(pj);
    return s;
}

static void test_alloc_fail(void)
{
    int64_t n = test_alloc_fail_all("projector-a folder", load_folder, NULL);
    CHECK(n > 10);
    uint32_t m = NGPT_PROJECTOR_INPUT | NGPT_PROJECTOR_AUDIO;
    n = test_alloc_fail_all("delta .pt (input + audio)", load_pt, &m);
    CHECK(n > 10);
}

int main(void)
{
    const char *g = getenv("NGPT_GOLDEN_DIR");
    const char *root = getenv("NGPT_SOURCE_ROOT");
    if (g) snprintf(g_dir, sizeof g_dir, "%s", g);
    else snprintf(g_dir, sizeof g_dir, "%s/../shared/golden", root ? root : ".");
    snprintf(g_proj, sizeof g_proj, "%s/models/projector-a", g_dir);
    snprintf(g_delta, sizeof g_delta, "%s/models/nextgpt-delta-a", g_dir);
    snprintf(g_pt, sizeof g_pt, "%s/pytorch_model.pt", g_delta);
    snprintf(g_st, sizeof g_st, "%s/delta.safetensors", g_delta);
    FILE *f = fopen(g_pt, "rb");
    if (!f) {
        fprintf(stderr, "golden models not found under %s: skipping\n", g_dir);
        return TEST_SKIP;
    }
    fclose(f);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ngpt_test_projector_XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;
    if (!(g_ctx = test_cpu_context(2))) return 1;
    RUN(test_params_default);
    RUN(test_projector_a);
    RUN(test_delta);
    RUN(test_f16_matrices);
    RUN(test_batch_and_sum);
    RUN(test_bad_files);
    RUN(test_alloc_fail);
    ngpt_context_free(g_ctx);
    char p[200];
    snprintf(p, sizeof p, "%s/proj/config.json", g_tmp); unlink(p);
    snprintf(p, sizeof p, "%s/proj/model.safetensors", g_tmp); unlink(p);
    snprintf(p, sizeof p, "%s/proj", g_tmp); rmdir(p);
    snprintf(p, sizeof p, "%s/delta_variant.safetensors", g_tmp); unlink(p);
    rmdir(g_tmp);
    return test_done();
}
