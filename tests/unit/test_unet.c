/* test_unet.c — the UNet (lib/models/unet*.c) through ngpt_decoder_create/ngpt_decoder_unet on the
 * golden tiny models (../shared/golden/models/sd-a, audioldm-a, and zeroscope-a for the 3-D UNet
 * of unet3d.c): load errors on rewritten copies
 * (missing / misshaped / extra tensor, unsupported config values, each named), argument errors,
 * batch consistency (a batch of 2 equals two batches of 1), the timestep embedding, and
 * allocation-failure injection over the load. */
#include "test.h"
#include "alloc_fail.h"

#include "core/cpu_isa.h"
#include "core/dtype.h"
#include "core/json.h"
#include "core/weights.h"
#include "api/context.h"
#include "api/decoder.h"
#include "media/media.h"
#include "models/sampler.h"
#include "models/unet.h"
#include "models/unet_blocks.h"
#include "ops/backend.h"

#include <dirent.h>
#include <limits.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_golden[900];
static ngpt_context *g_ctx;

/* ---- helpers ---- */

static ngpt_status open_dec(ngpt_decoder **d, const char *dir)
{
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.components = NGPT_DECODER_UNET;
    return ngpt_decoder_create(d, g_ctx, dir, &p);
}

static void model_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/models/%s", g_golden, name);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    if (a) fclose(a);
    if (b) fclose(b);
}

typedef enum edit_kind { EDIT_NONE, EDIT_DROP, EDIT_RESHAPE, EDIT_EXTRA, EDIT_F16 } edit_kind;

/* A copy of golden pipeline `model` in a new temp folder: model_index.json, unet/config.json with
 * `cfg_key` set to the JSON `cfg_val` (NULL: unchanged), and the weights rewritten with
 * nx_safetensors_write with one edit on `tensor`. */
static void make_copy(char *dir, const char *model, const char *cfg_key, const char *cfg_val, edit_kind kind,
                      const char *tensor)
{
    strcpy(dir, "/tmp/ngpt_unet_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char src[1200], dst[1200];
    model_dir(src, sizeof src, model);
    char from[1300], to[1300];
    snprintf(from, sizeof from, "%s/model_index.json", src);
    snprintf(to, sizeof to, "%s/model_index.json", dir);
    copy_file(from, to);
    snprintf(dst, sizeof dst, "%s/unet", dir);
    mkdir(dst, 0755);

    json_t *cfg = NULL;
    snprintf(from, sizeof from, "%s/unet/config.json", src);
    CHECK_OK(nx_json_load_file(&cfg, from));
    if (cfg_key) json_object_set_new(cfg, cfg_key, json_loads(cfg_val, JSON_DECODE_ANY, NULL));
    snprintf(to, sizeof to, "%s/unet/config.json", dir);
    CHECK(json_dump_file(cfg, to, JSON_INDENT(1)) == 0);
    json_decref(cfg);

    nx_weights *w = NULL;
    snprintf(from, sizeof from, "%s/unet/diffusion_pytorch_model.safetensors", src);
    CHECK_OK(nx_weights_open(&w, from));
    if (!w) return;
    size_t n = nx_weights_count(w);
    nx_st_entry *e = calloc(n + 1, sizeof *e);
    int64_t (*shapes)[NGPT_MAX_DIMS] = calloc(n + 1, sizeof *shapes);
    static const float extra[4] = {1, 2, 3, 4};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        bool hit = tensor && !strcmp(t->name, tensor);
        if (hit && kind == EDIT_DROP) continue;
        memcpy(shapes[k], t->shape, sizeof shapes[k]);
        e[k] = (nx_st_entry){t->name, t->dtype, t->rank, shapes[k], t->data};
        if (kind == EDIT_F16 && t->dtype == NGPT_DTYPE_F32) {  /* every tensor stored as F16 */
            size_t ne = t->nbytes / 4;
            uint16_t *h = malloc(ne * 2 + 2);
            float *f = malloc(ne * 4 + 4);
            nx_wtensor_to_f32(t, f);
            for (size_t q = 0; q < ne; q++) h[q] = nx_f32_to_f16(f[q]);
            free(f);
            e[k].dtype = NGPT_DTYPE_F16;
            e[k].data = h;
        }
        if (hit && kind == EDIT_RESHAPE) {  /* same bytes, dims 0 and 1 swapped */
            shapes[k][0] = t->shape[1];
            shapes[k][1] = t->shape[0];
        }
        k++;
    }
    if (kind == EDIT_EXTRA) {
        shapes[k][0] = 4;
        e[k] = (nx_st_entry){tensor, NGPT_DTYPE_F32, 1, shapes[k], extra};
        k++;
    }
    snprintf(to, sizeof to, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    CHECK_OK(nx_safetensors_write(to, e, k, NULL, 0));
    if (kind == EDIT_F16)
        for (size_t i = 0; i < k; i++)
            if (e[i].dtype == NGPT_DTYPE_F16) free((void *)e[i].data);
    free(e);
    free(shapes);
    nx_weights_close(w);
}

static void remove_copy(const char *dir)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/unet/config.json", dir), unlink(p);
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.safetensors", dir), unlink(p);
    snprintf(p, sizeof p, "%s/unet", dir), rmdir(p);
    snprintf(p, sizeof p, "%s/model_index.json", dir), unlink(p);
    rmdir(dir);
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((g_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rand_buf(size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

static ngpt_tensor view(ngpt_dtype dt, int rank, const int64_t *shape, void *data)
{
    ngpt_tensor t = {0};
    t.dtype = dt, t.rank = rank, t.data = data;
    for (int i = 0; i < rank; i++) t.shape[i] = shape[i];
    return t;
}

/* ---- load errors ---- */

static void expect_load(const char *model, const char *key, const char *val, edit_kind kind, const char *tensor,
                        ngpt_status want, const char *needle)
{
    char dir[64];
    make_copy(dir, model, key, val, kind, tensor);
    ngpt_decoder *d = (ngpt_decoder *)&d;
    CHECK_ERR(open_dec(&d, dir), want, needle);
    CHECK(d == NULL);
    ngpt_decoder_free(d);
    remove_copy(dir);
}

static void test_load_errors(void)
{
    /* an unchanged copy loads */
    char dir[64];
    make_copy(dir, "sd-a", NULL, NULL, EDIT_NONE, NULL);
    ngpt_decoder *d = NULL;
    CHECK_OK(open_dec(&d, dir));
    ngpt_decoder_free(d);
    remove_copy(dir);

    expect_load("sd-a", NULL, NULL, EDIT_DROP, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                NGPT_ERR_NOT_FOUND, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight");
    expect_load("sd-a", NULL, NULL, EDIT_RESHAPE, "down_blocks.2.resnets.0.conv1.weight", NGPT_ERR_SHAPE_MISMATCH,
                "down_blocks.2.resnets.0.conv1.weight");
    expect_load("sd-a", NULL, NULL, EDIT_EXTRA, "down_blocks.0.surprise.weight", NGPT_ERR_UNEXPECTED_TENSOR,
                "down_blocks.0.surprise.weight");
    expect_load("audioldm-a", NULL, NULL, EDIT_DROP, "class_embedding.weight", NGPT_ERR_NOT_FOUND,
                "class_embedding.weight");
    /* config values this port does not implement: named key and value */
    expect_load("sd-a", "act_fn", "\"gelu\"", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "act_fn = \"gelu\"");
    expect_load("sd-a", "class_embed_type", "\"timestep\"", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED,
                "class_embed_type = \"timestep\"");
    expect_load("sd-a", "mid_block_type", "\"UNetMidBlock2DSimpleCrossAttn\"", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED,
                "mid_block_type");
    expect_load("sd-a", "down_block_types", "[\"AttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", "
                "\"DownBlock2D\"]", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "down_block_types[0] = \"AttnDownBlock2D\"");
    expect_load("sd-a", "resnet_time_scale_shift", "\"scale_shift\"", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED,
                "resnet_time_scale_shift");
    expect_load("sd-a", "addition_embed_type", "\"text\"", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "addition_embed_type");
    expect_load("sd-a", "time_embedding_type", "\"fourier\"", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED,
                "time_embedding_type");
    expect_load("sd-a", "downsample_padding", "0", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "downsample_padding = 0");
    expect_load("sd-a", "_class_name", "\"UNet2DModel\"", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "_class_name");
    /* numbers out of range are named at load, before anything narrows them (4294967297 would
     * run as 1 in an int) */
    expect_load("sd-a", "layers_per_block", "4294967297", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED,
                "layers_per_block = 4294967297");
    expect_load("sd-a", "attention_head_dim", "[4, 4, 4294967300, 4]", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED,
                "attention_head_dim");
    expect_load("sd-a", "in_channels", "4294967300", EDIT_NONE, NULL, NGPT_ERR_BAD_FORMAT, "in_channels 4294967300");
    expect_load("sd-a", "norm_num_groups", "4294967304", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "norm_num_groups");
    expect_load("sd-a", "time_embedding_dim", "4294967424", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "time_embedding_dim");
    expect_load("sd-a", "norm_eps", "-1", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "norm_eps");
    expect_load("sd-a", "mid_block_scale_factor", "1e300", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "mid_block_scale_factor");
    expect_load("sd-a", "freq_shift", "1e300", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "freq_shift");
    expect_load("sd-a", "sample_size", "-8", EDIT_NONE, NULL, NGPT_ERR_BAD_FORMAT, "sample_size -8 is not in 1..4096");
    /* a config that does not match the weights: the first misshaped tensor is named */
    expect_load("sd-a", "cross_attention_dim", "48", EDIT_NONE, NULL, NGPT_ERR_SHAPE_MISMATCH, "attn2.to_k.weight");
    expect_load("sd-a", "use_linear_projection", "true", EDIT_NONE, NULL, NGPT_ERR_SHAPE_MISMATCH, "proj_in.weight");
}

static void test_load_errors_3d(void)
{
    char dir[64];
    make_copy(dir, "zeroscope-a", NULL, NULL, EDIT_NONE, NULL);
    ngpt_decoder *d = NULL;
    CHECK_OK(open_dec(&d, dir));
    ngpt_decoder_free(d);
    remove_copy(dir);

    /* a tensor of each temporal kind, named */
    expect_load("zeroscope-a", NULL, NULL, EDIT_DROP, "down_blocks.1.temp_convs.0.conv4.3.weight", NGPT_ERR_NOT_FOUND,
                "down_blocks.1.temp_convs.0.conv4.3.weight");
    expect_load("zeroscope-a", NULL, NULL, EDIT_DROP, "up_blocks.2.temp_attentions.1.transformer_blocks.0.attn2.to_v.weight",
                NGPT_ERR_NOT_FOUND, "up_blocks.2.temp_attentions.1.transformer_blocks.0.attn2.to_v.weight");
    expect_load("zeroscope-a", NULL, NULL, EDIT_RESHAPE, "transformer_in.proj_in.weight", NGPT_ERR_SHAPE_MISMATCH,
                "transformer_in.proj_in.weight");
    expect_load("zeroscope-a", NULL, NULL, EDIT_RESHAPE, "down_blocks.3.resnets.0.conv1.weight",
                NGPT_ERR_SHAPE_MISMATCH, "down_blocks.3.resnets.0.conv1.weight");
    expect_load("zeroscope-a", NULL, NULL, EDIT_EXTRA, "mid_block.temp_convs.2.conv1.0.weight",
                NGPT_ERR_UNEXPECTED_TENSOR, "mid_block.temp_convs.2.conv1.0.weight");
    /* config values the 3-D port does not implement */
    expect_load("zeroscope-a", "attention_head_dim", "[8, 8, 8, 8]", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED,
                "attention_head_dim = [8,8,8,8]");
    expect_load("zeroscope-a", "layers_per_block", "[1, 1, 1, 1]", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED,
                "layers_per_block");
    expect_load("zeroscope-a", "act_fn", "\"gelu\"", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "act_fn = \"gelu\"");
    expect_load("zeroscope-a", "num_attention_heads", "8", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "num_attention_heads");
    expect_load("zeroscope-a", "norm_num_groups", "null", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED, "norm_num_groups");
    expect_load("zeroscope-a", "down_block_types", "[\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock3D\", "
                "\"CrossAttnDownBlock3D\", \"DownBlock3D\"]", EDIT_NONE, NULL, NGPT_ERR_UNSUPPORTED,
                "down_block_types[0] = \"CrossAttnDownBlock2D\"");
    /* widths the temporal convolutions' fixed 32 GroupNorm groups cannot take, even when
     * norm_num_groups could */
    expect_load("zeroscope-a", "block_out_channels", "[48, 48, 48, 64]", EDIT_NONE, NULL, NGPT_ERR_BAD_FORMAT,
                "norm_num_groups 32");
    /* a config that does not match the weights */
    expect_load("zeroscope-a", "cross_attention_dim", "40", EDIT_NONE, NULL, NGPT_ERR_SHAPE_MISMATCH, "attn2.to_k.weight");
    expect_load("zeroscope-a", "attention_head_dim", "16", EDIT_NONE, NULL, NGPT_ERR_SHAPE_MISMATCH, "transformer_in");
}

/* ---- argument errors ---- */

static void test_arg_errors(void)
{
    char dir[1000];
    ngpt_decoder *sd = NULL, *au = NULL;
    model_dir(dir, sizeof dir, "sd-a");
    CHECK_OK(open_dec(&sd, dir));
    model_dir(dir, sizeof dir, "audioldm-a");
    CHECK_OK(open_dec(&au, dir));
    if (!sd || !au) goto done;

    float buf[2 * 8 * 16 * 16] = {0}, ehs[2 * 5 * 32] = {0}, cls[2 * 24] = {0};
    int64_t t64[2] = {10, 20};
    ngpt_tensor y = {0};
    ngpt_tensor s4 = view(NGPT_DTYPE_F32, 4, (int64_t[]){1, 4, 8, 8}, buf);
    ngpt_tensor s3 = view(NGPT_DTYPE_F32, 4, (int64_t[]){1, 3, 8, 8}, buf);
    ngpt_tensor ts1 = view(NGPT_DTYPE_I64, 1, (int64_t[]){1}, t64);
    ngpt_tensor ts3 = view(NGPT_DTYPE_I64, 1, (int64_t[]){3}, t64);
    ngpt_tensor e = view(NGPT_DTYPE_F32, 3, (int64_t[]){1, 5, 32}, ehs);
    ngpt_tensor e_bad = view(NGPT_DTYPE_F32, 3, (int64_t[]){1, 5, 16}, ehs);
    ngpt_tensor c = view(NGPT_DTYPE_F32, 2, (int64_t[]){1, 24}, cls);
    ngpt_tensor c_bad = view(NGPT_DTYPE_F32, 2, (int64_t[]){1, 12}, cls);
    ngpt_tensor a8 = view(NGPT_DTYPE_F32, 4, (int64_t[]){1, 8, 8, 16}, buf);

    CHECK_OK(ngpt_decoder_unet(sd, &y, &s4, &ts1, &e, NULL));
    CHECK(y.rank == 4 && y.shape[1] == 4 && y.shape[2] == 8 && y.shape[3] == 8);
    ngpt_tensor_free(&y);
    CHECK_ERR(ngpt_decoder_unet(sd, &y, &s3, &ts1, &e, NULL), NGPT_ERR_SHAPE_MISMATCH, "sample");
    CHECK_ERR(ngpt_decoder_unet(sd, &y, &s4, &ts1, NULL, NULL), NGPT_ERR_INVALID_ARGUMENT, "encoder_hidden_states");
    CHECK_ERR(ngpt_decoder_unet(sd, &y, &s4, &ts1, &e, &c), NGPT_ERR_INVALID_ARGUMENT, "class_labels");
    CHECK_ERR(ngpt_decoder_unet(sd, &y, &s4, &ts1, &e_bad, NULL), NGPT_ERR_SHAPE_MISMATCH, "encoder_hidden_states");
    CHECK_ERR(ngpt_decoder_unet(sd, &y, &s4, &ts3, &e, NULL), NGPT_ERR_SHAPE_MISMATCH, "timesteps");
    CHECK_ERR(ngpt_decoder_unet(sd, NULL, &s4, &ts1, &e, NULL), NGPT_ERR_INVALID_ARGUMENT, NULL);

    CHECK_OK(ngpt_decoder_unet(au, &y, &a8, &ts1, NULL, &c));
    CHECK(y.rank == 4 && y.shape[1] == 8 && y.shape[2] == 8 && y.shape[3] == 16);
    ngpt_tensor_free(&y);
    CHECK_ERR(ngpt_decoder_unet(au, &y, &a8, &ts1, NULL, NULL), NGPT_ERR_INVALID_ARGUMENT, "class_labels");
    CHECK_ERR(ngpt_decoder_unet(au, &y, &a8, &ts1, &e, &c), NGPT_ERR_INVALID_ARGUMENT, "encoder_hidden_states");
    CHECK_ERR(ngpt_decoder_unet(au, &y, &a8, &ts1, NULL, &c_bad), NGPT_ERR_SHAPE_MISMATCH, "class_labels");
    CHECK_ERR(ngpt_decoder_unet(au, &y, &s4, &ts1, NULL, &c), NGPT_ERR_SHAPE_MISMATCH, "sample");
done:
    ngpt_decoder_free(sd);
    ngpt_decoder_free(au);
}

/* ---- batch consistency ---- */

static void batch_check(const char *model, int C, int64_t h, int64_t w, int cond_len, int cond_dim, bool audio)
{
    char dir[1000];
    model_dir(dir, sizeof dir, model);
    ngpt_decoder *d = NULL;
    CHECK_OK(open_dec(&d, dir));
    if (!d) return;
    size_t ns = (size_t)(C * h * w), nc = (size_t)(cond_len * cond_dim);
    float *x = rand_buf(2 * ns), *cond = rand_buf(2 * nc);
    float ts[2] = {981.0f, 37.0f};
    ngpt_tensor y2 = {0}, y1[2] = {{0}};
    ngpt_tensor xs = view(NGPT_DTYPE_F32, 4, (int64_t[]){2, C, h, w}, x);
    ngpt_tensor tt = view(NGPT_DTYPE_F32, 1, (int64_t[]){2}, ts);
    ngpt_tensor cs = audio ? view(NGPT_DTYPE_F32, 2, (int64_t[]){2, cond_dim}, cond)
                           : view(NGPT_DTYPE_F32, 3, (int64_t[]){2, cond_len, cond_dim}, cond);
    CHECK_OK(ngpt_decoder_unet(d, &y2, &xs, &tt, audio ? NULL : &cs, audio ? &cs : NULL));
    for (int b = 0; b < 2; b++) {
        ngpt_tensor x1 = view(NGPT_DTYPE_F32, 4, (int64_t[]){1, C, h, w}, x + b * ns);
        ngpt_tensor t1 = view(NGPT_DTYPE_F32, 1, (int64_t[]){1}, ts + b);
        ngpt_tensor c1 = audio ? view(NGPT_DTYPE_F32, 2, (int64_t[]){1, cond_dim}, cond + b * nc)
                               : view(NGPT_DTYPE_F32, 3, (int64_t[]){1, cond_len, cond_dim}, cond + b * nc);
        CHECK_OK(ngpt_decoder_unet(d, &y1[b], &x1, &t1, audio ? NULL : &c1, audio ? &c1 : NULL));
    }
    if (y2.data && y1[0].data && y1[1].data) {
        const float *a = y2.data;
        const double worst = fmax(test_max_abs_diff(a, y1[0].data, ns), test_max_abs_diff(a + ns, y1[1].data, ns));
        CHECK_MSG(worst <= 1e-5, "%s: batch of 2 vs two batches of 1 differ by %g", model, worst);
        /* and the two samples really differ (the check is not vacuous) */
        CHECK(fabs((double)a[0] - a[ns]) > 0 || fabs((double)a[1] - a[ns + 1]) > 0);
    }
    ngpt_tensor_free(&y2);
    ngpt_tensor_free(&y1[0]);
    ngpt_tensor_free(&y1[1]);
    free(x);
    free(cond);
    ngpt_decoder_free(d);
}

static void test_batch(void)
{
    batch_check("sd-a", 4, 8, 16, 7, 32, false);
    batch_check("audioldm-a", 8, 13, 16, 1, 24, true);  /* odd height: upsample to the skip's size */
}

/* ---- the 3-D UNet: arguments, batch consistency, frames that interact ---- */

/* y = unet(x [B, 4, F, 16, 16], ts[B], cond [B, 7, 48]) on zeroscope-a. */
static ngpt_status run3d(ngpt_decoder *d, ngpt_tensor *y, float *x, float *ts, float *cond, int64_t B, int64_t F)
{
    ngpt_tensor xs = view(NGPT_DTYPE_F32, 5, (int64_t[]){B, 4, F, 16, 16}, x);
    ngpt_tensor tt = view(NGPT_DTYPE_F32, 1, (int64_t[]){B}, ts);
    ngpt_tensor cs = view(NGPT_DTYPE_F32, 3, (int64_t[]){B, 7, 48}, cond);
    return ngpt_decoder_unet(d, y, &xs, &tt, &cs, NULL);
}

static void test_unet3d(void)
{
    char dir[1000];
    model_dir(dir, sizeof dir, "zeroscope-a");
    ngpt_decoder *d = NULL;
    CHECK_OK(open_dec(&d, dir));
    if (!d) return;
    const int64_t F = 3;
    size_t frame = 4 * 16 * 16, ns = (size_t)F * frame, nc = 7 * 48;
    float *x = rand_buf(2 * ns), *cond = rand_buf(2 * nc), ts[2] = {981.0f, 37.0f};
    ngpt_tensor y2 = {0}, y1[2] = {{0}}, yf = {0};

    /* argument errors */
    ngpt_tensor s4 = view(NGPT_DTYPE_F32, 4, (int64_t[]){1, 4, 16, 16}, x);
    ngpt_tensor s5 = view(NGPT_DTYPE_F32, 5, (int64_t[]){1, 4, F, 16, 16}, x);
    ngpt_tensor s5c = view(NGPT_DTYPE_F32, 5, (int64_t[]){1, 3, F, 16, 16}, x);
    ngpt_tensor t1 = view(NGPT_DTYPE_F32, 1, (int64_t[]){1}, ts);
    ngpt_tensor c1 = view(NGPT_DTYPE_F32, 3, (int64_t[]){1, 7, 48}, cond);
    ngpt_tensor c_bad = view(NGPT_DTYPE_F32, 3, (int64_t[]){1, 7, 40}, cond);
    ngpt_tensor cl = view(NGPT_DTYPE_F32, 2, (int64_t[]){1, 48}, cond);
    CHECK_ERR(ngpt_decoder_unet(d, &y2, &s4, &t1, &c1, NULL), NGPT_ERR_SHAPE_MISMATCH, "sample");
    CHECK_ERR(ngpt_decoder_unet(d, &y2, &s5c, &t1, &c1, NULL), NGPT_ERR_SHAPE_MISMATCH, "sample");
    CHECK_ERR(ngpt_decoder_unet(d, &y2, &s5, &t1, NULL, NULL), NGPT_ERR_INVALID_ARGUMENT, "encoder_hidden_states");
    CHECK_ERR(ngpt_decoder_unet(d, &y2, &s5, &t1, &c_bad, NULL), NGPT_ERR_SHAPE_MISMATCH, "encoder_hidden_states");
    CHECK_ERR(ngpt_decoder_unet(d, &y2, &s5, &t1, &c1, &cl), NGPT_ERR_INVALID_ARGUMENT, "class_labels");

    /* a batch of 2 equals two batches of 1 */
    CHECK_OK(run3d(d, &y2, x, ts, cond, 2, F));
    for (int b = 0; b < 2; b++) CHECK_OK(run3d(d, &y1[b], x + b * ns, ts + b, cond + b * nc, 1, F));
    if (y2.data && y1[0].data && y1[1].data) {
        CHECK(y2.rank == 5 && y2.shape[0] == 2 && y2.shape[1] == 4 && y2.shape[2] == F && y2.shape[3] == 16);
        double e = fmax(test_max_abs_diff(y2.data, y1[0].data, ns), test_max_abs_diff((const float *)y2.data + ns, y1[1].data, ns));
        double m = 0;
        for (size_t i = 0; i < 2 * ns; i++) m = fmax(m, fabs(((const float *)y2.data)[i]));
        /* float32 sums in another order (GEMM blocking by batch size): relative to the output scale */
        CHECK_MSG(e <= 1e-5 * fmax(1.0, m), "zeroscope-a: batch of 2 vs two batches of 1 differ by %g (max |y| %g)", e, m);
        CHECK(test_max_abs_diff(y1[0].data, y1[1].data, ns) > 1e-3);
    }
    /* the frames interact (temporal layers): frame 0 of an F-frame clip is not frame 0 run alone,
     * and changing only the last frame changes the first frame's output */
    if (y1[0].data) {
        float *x1 = malloc(frame * sizeof *x1);
        for (int c = 0; c < 4; c++) memcpy(x1 + c * 256, x + (size_t)c * F * 256, 256 * sizeof *x1);
        CHECK_OK(run3d(d, &yf, x1, ts, cond, 1, 1));
        if (yf.data) {
            double e = 0;
            for (int c = 0; c < 4; c++)
                e = fmax(e, test_max_abs_diff((const float *)yf.data + c * 256, (const float *)y1[0].data + (size_t)c * F * 256, 256));
            CHECK_MSG(e > 1e-4, "zeroscope-a: frame 0 alone equals frame 0 of the clip (%g)", e);
        }
        ngpt_tensor_free(&yf);
        free(x1);
        for (int c = 0; c < 4; c++)
            for (int i = 0; i < 256; i++) x[(size_t)c * F * 256 + (size_t)(F - 1) * 256 + i] += 0.5f;
        CHECK_OK(run3d(d, &yf, x, ts, cond, 1, F));
        if (yf.data) {
            double e = 0;
            for (int c = 0; c < 4; c++)
                e = fmax(e, test_max_abs_diff((const float *)yf.data + (size_t)c * F * 256, (const float *)y1[0].data + (size_t)c * F * 256, 256));
            CHECK_MSG(e > 1e-4, "zeroscope-a: frame 0 ignores frame %d (%g)", (int)F - 1, e);
        }
    }
    ngpt_tensor_free(&yf);
    ngpt_tensor_free(&y2);
    ngpt_tensor_free(&y1[0]);
    ngpt_tensor_free(&y1[1]);
    free(x);
    free(cond);
    ngpt_decoder_free(d);
}

/* ---- F16 weights (used in place, zero copy) give the F32 result within F16 rounding ---- */

static void test_f16_weights(void)
{
    char dir[64], f32dir[1000];
    make_copy(dir, "sd-a", NULL, NULL, EDIT_F16, NULL);
    model_dir(f32dir, sizeof f32dir, "sd-a");
    ngpt_decoder *a = NULL, *b = NULL;
    CHECK_OK(open_dec(&a, f32dir));
    CHECK_OK(open_dec(&b, dir));
    float *x = rand_buf(2 * 4 * 8 * 8), *c = rand_buf(2 * 3 * 32);
    float ts[2] = {999.0f, 1.0f};
    ngpt_tensor xs = view(NGPT_DTYPE_F32, 4, (int64_t[]){2, 4, 8, 8}, x);
    ngpt_tensor tt = view(NGPT_DTYPE_F32, 1, (int64_t[]){2}, ts);
    ngpt_tensor cs = view(NGPT_DTYPE_F32, 3, (int64_t[]){2, 3, 32}, c);
    ngpt_tensor ya = {0}, yb = {0};
    if (a && b) {
        CHECK_OK(ngpt_decoder_unet(a, &ya, &xs, &tt, &cs, NULL));
        CHECK_OK(ngpt_decoder_unet(b, &yb, &xs, &tt, &cs, NULL));
    }
    if (ya.data && yb.data) {
        double worst = 0, scale = 0;
        for (int64_t i = 0; i < ngpt_tensor_numel(&ya); i++) {
            double u = ((float *)ya.data)[i], v = ((float *)yb.data)[i];
            worst = test_worst(worst, fabs(u - v));
            scale = fmax(scale, fabs(u));
        }
        CHECK_MSG(worst <= 1e-2 * (scale > 1 ? scale : 1), "F16 weights differ from F32 by %g (max |y| %g)", worst, scale);
        CHECK(worst > 0);  /* the F16 copy really was used */
    }
    ngpt_tensor_free(&ya);
    ngpt_tensor_free(&yb);
    ngpt_decoder_free(a);
    ngpt_decoder_free(b);
    free(x);
    free(c);
    remove_copy(dir);
}

/* ---- nx_unet_list_tensors names exactly the tensors of the checkpoint, with their shapes ---- */

typedef struct { nx_weights *w; int n, bad; } list_check;

static ngpt_status list_cb(void *user, const char *name, int rank, const int64_t *shape)
{
    list_check *lc = user;
    const nx_wtensor *t = nx_weights_find(lc->w, name);
    bool ok = t && t->rank == rank;
    for (int i = 0; ok && i < rank; i++) ok = t->shape[i] == shape[i];
    if (!ok && lc->bad++ < 3) fprintf(stderr, "list_tensors: %s not in the checkpoint with that shape\n", name);
    lc->n++;
    return NGPT_OK;
}

static void test_list_tensors(void)
{
    const char *models[] = {"sd-a", "audioldm-a", "zeroscope-a"};
    for (int m = 0; m < 3; m++) {
        char cfg[1100], st[1100];
        snprintf(cfg, sizeof cfg, "%s/models/%s/unet/config.json", g_golden, models[m]);
        snprintf(st, sizeof st, "%s/models/%s/unet/diffusion_pytorch_model.safetensors", g_golden, models[m]);
        list_check lc = {0};
        CHECK_OK(nx_weights_open(&lc.w, st));
        if (!lc.w) continue;
        CHECK_OK(nx_unet_list_tensors(cfg, list_cb, &lc));
        CHECK(lc.bad == 0);
        CHECK_MSG((size_t)lc.n == nx_weights_count(lc.w), "%s: listed %d of %zu tensors", models[m], lc.n,
                  nx_weights_count(lc.w));
        nx_weights_close(lc.w);
    }
}

/* ---- timestep embedding: flip_sin_to_cos puts cos first; t = 0 gives cos 1, sin 0 ---- */

static void test_timestep_embedding(void)
{
    float out[2 * 9], t[2] = {0.0f, 500.0f};
    nx_timestep_embedding(out, t, 2, 9, true, 0.0f, 10000.0f);
    for (int i = 0; i < 4; i++) CHECK(out[i] == 1.0f && out[4 + i] == 0.0f);
    CHECK(out[8] == 0.0f && out[17] == 0.0f);
    /* i = 0: frequency 1 */
    CHECK(fabsf(out[9] - cosf(500.0f)) < 1e-6f && fabsf(out[13] - sinf(500.0f)) < 1e-6f);
    nx_timestep_embedding(out, t + 1, 1, 8, false, 1.0f, 10000.0f);
    CHECK(fabsf(out[0] - sinf(500.0f)) < 1e-6f && fabsf(out[4] - cosf(500.0f)) < 1e-6f);
    /* shift 1: the last frequency is exp(-ln(1e4)) = 1e-4 */
    CHECK(fabsf(out[3] - sinf(500.0f * 1e-4f)) < 1e-6f);

    /* nx_op_timestep_embedding (the decoder's loop makes the time input on the device) is the
     * host function bit for bit: odd and even dims, both orders, a shift */
    nx_backend *be = g_ctx->be;
    const float ts[3] = {999.0f, 0.0f, 1.0f / 3.0f};
    const nx_timestep_params ps[4] = {{320, true, 0.0f, 10000.0f}, {9, false, 1.0f, 10000.0f},
                                      {1, true, 0.0f, 10000.0f}, {64, false, 0.5f, 100.0f}};
    for (int k = 0; k < 4; k++) {
        nx_tensor tt = {0}, y = {0};
        CHECK_OK(nx_tensor_alloc(&tt, be, NGPT_DTYPE_F32, 1, (int64_t[]){3}));
        CHECK_OK(nx_tensor_alloc(&y, be, NGPT_DTYPE_F32, 2, (int64_t[]){3, ps[k].dim}));
        float *want = malloc(sizeof(float) * 3 * (size_t)ps[k].dim);
        if (tt.data && y.data && want) {
            memcpy(tt.data, ts, sizeof ts);
            nx_timestep_embedding(want, ts, 3, ps[k].dim, ps[k].flip_sin_to_cos, ps[k].shift, ps[k].max_period);
            CHECK_OK(nx_op_timestep_embedding(be, &y, &tt, &ps[k]));
            CHECK_MSG(memcmp(y.data, want, nx_nbytes(&y)) == 0, "timestep_embedding dim %d", ps[k].dim);
        }
        free(want);
        nx_tensor_free(&y);
        if (k == 0) { /* the op's checks */
            nx_tensor bad = {0};
            CHECK_OK(nx_tensor_alloc(&bad, be, NGPT_DTYPE_F32, 2, (int64_t[]){2, 320}));
            CHECK_ERR(nx_op_timestep_embedding(be, &bad, &tt, &ps[0]), NGPT_ERR_SHAPE_MISMATCH, "should be [3, 320]");
            const nx_timestep_params zero = {0, true, 0.0f, 10000.0f}, div0 = {320, true, 160.0f, 10000.0f};
            CHECK_ERR(nx_op_timestep_embedding(be, &bad, &tt, &zero), NGPT_ERR_INVALID_ARGUMENT, "dim");
            CHECK_ERR(nx_op_timestep_embedding(be, &bad, &tt, &div0), NGPT_ERR_INVALID_ARGUMENT, "divide by zero");
            CHECK_ERR(nx_op_timestep_embedding(be, &bad, &tt, NULL), NGPT_ERR_INVALID_ARGUMENT, "");
            nx_tensor_free(&bad);
        }
        nx_tensor_free(&tt);
    }
}

/* ---- allocation failures over the load ---- */

typedef struct {
    char dir[1000];
    bool cl;      /* load channels last (filters permuted: allocations of their own) */
    bool forward; /* and run one forward (every temporary of the layout's path) */
} load_args;

static ngpt_status load_once(void *user)
{
    const load_args *a = user;
    nx_pool *pool = NULL;
    nx_backend *be = NULL;
    nx_unet *u = NULL;
    nx_tensor x = {0}, e = {0}, y = {0};
    ngpt_status st = nx_pool_create(&pool, 1);
    if (st == NGPT_OK) st = nx_cpu_backend_create(&be, pool, NULL);
    if (st == NGPT_OK) st = nx_unet_load(&u, be, a->dir, NGPT_DTYPE_F32, a->cl);
    if (st == NGPT_OK && a->forward) { /* zeros: the shapes, not the values, decide the allocations */
        const bool d3 = nx_unet_is_3d(u);
        const int64_t xs[5] = {1, nx_unet_in_channels(u), 2, 8, 8}, es[3] = {1, 77, nx_unet_cross_attention_dim(u)};
        int64_t xs4[4] = {1, xs[1], 8, 8}, ys[5];
        memcpy(ys, d3 ? xs : xs4, (d3 ? 5 : 4) * sizeof *ys);
        ys[1] = nx_unet_out_channels(u);
        const float ts[1] = {981.0f};
        st = nx_tensor_alloc(&x, be, NGPT_DTYPE_F32, d3 ? 5 : 4, d3 ? xs : xs4);
        if (st == NGPT_OK) st = nx_tensor_alloc(&e, be, NGPT_DTYPE_F32, 3, es);
        if (st == NGPT_OK) st = nx_tensor_alloc(&y, be, NGPT_DTYPE_F32, d3 ? 5 : 4, ys);
        if (st == NGPT_OK) {
            memset(x.data, 0, nx_nbytes(&x));
            memset(e.data, 0, nx_nbytes(&e));
            st = nx_unet_forward(u, &y, &x, ts, &e, NULL);
        }
    }
    nx_tensor_free(&x), nx_tensor_free(&e), nx_tensor_free(&y);
    nx_unet_free(u);
    nx_backend_free(be);
    nx_pool_free(pool);
    return st;
}

/* A context, an image decoder with its VAE only, a 37x29 picture and its image-to-image latents
 * (the Lanczos cut, the pixels, the VAE encoder's lazy load, the sample's noise), all freed; for
 * a zeroscope folder, a video decoder and the video-to-video latents of 2 frames. */
static ngpt_status image_latents_once(void *user)
{
    const char *dir = user;
    const bool video = strstr(dir, "zeroscope") != NULL;  /* the video decoder: video_latents of 2 frames */
    static uint8_t px[37 * 29 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 37u);
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CPU;
    cp.n_threads = 1;
    ngpt_decoder_params dp;
    ngpt_decoder_params_default(&dp, sizeof dp);
    dp.kind = video ? NGPT_DECODER_VIDEO : NGPT_DECODER_IMAGE;
    dp.components = NGPT_DECODER_VAE;
    ngpt_context *ctx = NULL;
    ngpt_decoder *d = NULL;
    ngpt_image *img = NULL;
    ngpt_tensor t = {0};
    const ngpt_tensor frames = {.dtype = NGPT_DTYPE_U8, .rank = 4, .shape = {2, 16, 16, 3}, .data = px};
    ngpt_status st = ngpt_context_create(&ctx, &cp);
    if (st == NGPT_OK) st = ngpt_decoder_create(&d, ctx, dir, &dp);
    if (st == NGPT_OK && !video) st = ngpt_image_from_rgb8(&img, px, 37, 29, 0);
    if (st == NGPT_OK) st = video ? ngpt_decoder_video_latents(d, &t, &frames, 1, 3) : ngpt_decoder_image_latents(d, &t, img, 1, 3);
    ngpt_tensor_free(&t);
    ngpt_image_free(img);
    ngpt_decoder_free(d);
    ngpt_context_free(ctx);
    return st;
}

static void test_alloc_failures(void)
{
    char sd[1000];
    model_dir(sd, sizeof sd, "sd-a");
    CHECK(test_alloc_fail_stride("sd-a image_latents", image_latents_once, sd, 3) > 20);
    char zs[1000];
    model_dir(zs, sizeof zs, "zeroscope-a");
    CHECK(test_alloc_fail_stride("zeroscope-a video_latents", image_latents_once, zs, 3) > 20);
    load_args a = {.cl = false, .forward = false};
    snprintf(a.dir, sizeof a.dir, "%s/models/sd-a/unet", g_golden);
    int64_t n = test_alloc_fail_all("sd-a unet load", load_once, &a);
    CHECK(n > 10);
    snprintf(a.dir, sizeof a.dir, "%s/models/audioldm-a/unet", g_golden);
    n = test_alloc_fail_all("audioldm-a unet load", load_once, &a);
    CHECK(n > 10);
    snprintf(a.dir, sizeof a.dir, "%s/models/zeroscope-a/unet", g_golden);
    n = test_alloc_fail_all("zeroscope-a unet3d load", load_once, &a);
    CHECK(n > 10);
    /* channels last: the load's filter copies and every temporary of a forward */
    a.cl = a.forward = true;
    snprintf(a.dir, sizeof a.dir, "%s/models/sd-a/unet", g_golden);
    n = test_alloc_fail_all("sd-a unet channels last, load + forward", load_once, &a);
    CHECK(n > 100);
    /* the UNet3D repeats its temporal layers' allocation sites dozens of times over ~2000
     * allocations: every 7th (all of them took 20 s here, minutes under ASan) */
    snprintf(a.dir, sizeof a.dir, "%s/models/zeroscope-a/unet", g_golden);
    n = test_alloc_fail_stride("zeroscope-a unet3d channels last, load + forward", load_once, &a, 7);
    CHECK(n > 100);
}

/* compute_dtype: F16 is a CUDA option, the CPU backend refuses it by name (BF16 it takes:
 * test_bf16_cpu); a non-float dtype is an argument error; an older caller's struct without the
 * field gets F32. */
static void test_compute_dtype_cpu(void)
{
    char dir[1000];
    model_dir(dir, sizeof dir, "sd-a");
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    CHECK(p.compute_dtype == NGPT_DTYPE_F32);
    ngpt_decoder *d = NULL;
    p.compute_dtype = NGPT_DTYPE_F16;
    CHECK_ERR(ngpt_decoder_create(&d, g_ctx, dir, &p), NGPT_ERR_UNSUPPORTED, "compute_dtype F16 needs a backend");
    CHECK(d == NULL);
    CHECK_ERR(ngpt_decoder_create(&d, g_ctx, dir, &p), NGPT_ERR_UNSUPPORTED, "computes decoders in F32 or BF16");
    CHECK(d == NULL);
    p.compute_dtype = NGPT_DTYPE_I64;
    CHECK_ERR(ngpt_decoder_create(&d, g_ctx, dir, &p), NGPT_ERR_INVALID_ARGUMENT, "is not F32, F16 or BF16");
    CHECK(d == NULL);
    /* an older caller: struct_size ends before compute_dtype, so the bytes after it are ignored */
    p.compute_dtype = NGPT_DTYPE_BF16;
    p.struct_size = offsetof(ngpt_decoder_params, compute_dtype);
    p.components = NGPT_DECODER_UNET;
    CHECK_OK(ngpt_decoder_create(&d, g_ctx, dir, &p));
    CHECK(d && !d->cpu_bf16);
    ngpt_decoder_free(d);
}

/* ||a - b|| / ||b|| over n floats */
static double rel_diff(const float *a, const float *b, int64_t n)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        m += (double)b[i] * b[i];
    }
    return m > 0 ? sqrt(d / m) : sqrt(d);
}

/* out (F32) of the same stage call on a F32 and a BF16 decoder: close (relative L2 distance
 * within tol) but not equal; and the F32
 * decoder's result is bit for bit what it gave before the BF16 one ran (the BF16 compute is
 * scoped to the BF16 decoder's calls) */
typedef ngpt_status (*stage_fn)(ngpt_decoder *d, ngpt_tensor *out, void *arg);

static void compare_bf16(const char *what, ngpt_decoder *f, ngpt_decoder *h, stage_fn fn, void *arg, double tol)
{
    ngpt_tensor a = {0}, b = {0}, c = {0};
    CHECK_OK(fn(f, &a, arg));
    CHECK_OK(fn(h, &b, arg));
    CHECK_OK(fn(f, &c, arg));
    const int64_t n = ngpt_tensor_numel(&a);
    if (a.data && b.data && c.data && n > 0 && n == ngpt_tensor_numel(&b)) {
        const double r = rel_diff(b.data, a.data, n);
        CHECK_MSG(r > 0 && r <= tol, "%s: BF16 against F32: relative difference %.3g (want (0, %.3g])", what, r, tol);
        CHECK_MSG(memcmp(a.data, c.data, (size_t)n * sizeof(float)) == 0, "%s: the F32 decoder changed", what);
        bool finite = true;
        for (int64_t i = 0; i < n; i++) finite &= isfinite(((float *)b.data)[i]) != 0;
        CHECK_MSG(finite, "%s: BF16 output not finite", what);
    } else {
        CHECK_MSG(0, "%s: no output", what);
    }
    ngpt_tensor_free(&a), ngpt_tensor_free(&b), ngpt_tensor_free(&c);
}

typedef struct unet_args { ngpt_tensor s, t, e, c; bool has_e, has_c; } unet_args;

static ngpt_status run_unet(ngpt_decoder *d, ngpt_tensor *out, void *arg)
{
    unet_args *u = arg;
    return ngpt_decoder_unet(d, out, &u->s, &u->t, u->has_e ? &u->e : NULL, u->has_c ? &u->c : NULL);
}

static ngpt_status run_vae(ngpt_decoder *d, ngpt_tensor *out, void *arg)
{
    return ngpt_decoder_vae_decode(d, out, arg);
}

static ngpt_status run_vocoder(ngpt_decoder *d, ngpt_tensor *out, void *arg)
{
    return ngpt_decoder_vocoder(d, out, arg);
}

typedef struct gen_args { ngpt_tensor c, u; ngpt_decode_params p; } gen_args;

static ngpt_status run_generate(ngpt_decoder *d, ngpt_tensor *out, void *arg)
{
    gen_args *g = arg;
    return ngpt_decoder_generate(d, out, NULL, &g->c, &g->u, &g->p);
}

static ngpt_status open_dtype(ngpt_decoder **d, const char *dir, ngpt_dtype dt)
{
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.compute_dtype = dt;
    return ngpt_decoder_create(d, g_ctx, dir, &p);
}

/* compute_dtype BF16 on the CPU: activations F32, the UNet's and VAE's matrices and filters in
 * BF16, their calls in the CPU's BF16 compute; for the three decoder kinds, stage by stage and
 * end to end, against the F32 decoder of the same folder. */
static void test_bf16_cpu(void)
{
    static float buf[2 * 8 * 4 * 16 * 16], ehs[2 * 77 * 64], cls[2 * 24];
    test_rng r = {0x510e527full};
    test_fill(&r, buf, sizeof buf / 4, -1.0f, 1.0f);
    test_fill(&r, ehs, sizeof ehs / 4, -1.0f, 1.0f);
    test_fill(&r, cls, sizeof cls / 4, -1.0f, 1.0f);
    int64_t t64[2] = {981, 500};
    const char *names[3] = {"sd-a", "audioldm-a", "zeroscope-a"};
    for (int k = 0; k < 3; k++) {
        char dir[1000];
        model_dir(dir, sizeof dir, names[k]);
        ngpt_decoder *f = NULL, *h = NULL;
        CHECK_OK(open_dtype(&f, dir, NGPT_DTYPE_F32));
        CHECK_OK(open_dtype(&h, dir, NGPT_DTYPE_BF16));
        if (!f || !h) {
            ngpt_decoder_free(f), ngpt_decoder_free(h);
            continue;
        }
        CHECK(h->cpu_bf16 && h->dt == NGPT_DTYPE_F32 && !f->cpu_bf16);
        char what[64];
        unet_args u = {.t = view(NGPT_DTYPE_I64, 1, (int64_t[]){2}, t64)};
        if (k == 0) {
            u.s = view(NGPT_DTYPE_F32, 4, (int64_t[]){2, 4, 16, 16}, buf);
            u.e = view(NGPT_DTYPE_F32, 3, (int64_t[]){2, 77, 32}, ehs), u.has_e = true;
        } else if (k == 1) {
            u.s = view(NGPT_DTYPE_F32, 4, (int64_t[]){2, 8, 16, 16}, buf);
            u.c = view(NGPT_DTYPE_F32, 2, (int64_t[]){2, 24}, cls), u.has_c = true;
        } else {
            u.s = view(NGPT_DTYPE_F32, 5, (int64_t[]){2, 4, 4, 16, 16}, buf);
            u.e = view(NGPT_DTYPE_F32, 3, (int64_t[]){2, 77, nx_unet_cross_attention_dim(f->unet)}, ehs), u.has_e = true;
        }
        snprintf(what, sizeof what, "%s unet", names[k]);
        /* zeroscope-a's random UNet3D amplifies rounding most: 0.06 with the linears alone in
         * BF16, 0.095 with its convolutions too (the others: 0.004-0.019) */
        compare_bf16(what, f, h, run_unet, &u, k == 2 ? 0.15 : 0.05);
        const int64_t lc = nx_vae_latent_channels(f->vae);
        ngpt_tensor lat = k == 2 ? view(NGPT_DTYPE_F32, 5, (int64_t[]){1, lc, 2, 8, 8}, buf)
                                 : view(NGPT_DTYPE_F32, 4, (int64_t[]){1, lc, 8, 8}, buf);
        snprintf(what, sizeof what, "%s vae decode", names[k]);
        compare_bf16(what, f, h, run_vae, &lat, 0.05);
        if (k == 0) {
            gen_args g = {.c = view(NGPT_DTYPE_F32, 3, (int64_t[]){1, 77, 32}, ehs),
                          .u = view(NGPT_DTYPE_F32, 3, (int64_t[]){1, 77, 32}, ehs + 77 * 32)};
            ngpt_decode_params_default(&g.p, sizeof g.p);
            g.p.num_inference_steps = 3;
            g.p.height = g.p.width = 64;
            g.p.seed = 11;
            compare_bf16("sd-a generate", f, h, run_generate, &g, 0.1);
        }
        ngpt_decoder_free(f);
        ngpt_decoder_free(h);
    }
}

/* The vocoder of a BF16 decoder: with AMX, BF16 filters channels last (close to the F32
 * decoder's, not equal); without (nx_cpu_set_amx off here too), F32 bit for bit as the F32
 * decoder's, the channels-last flag notwithstanding. */
static void test_bf16_vocoder(void)
{
    char dir[1000];
    model_dir(dir, sizeof dir, "audioldm-a");
    static float mel_data[1 * 16 * 64];
    test_rng r = {0x6a09e667ull};
    test_fill(&r, mel_data, sizeof mel_data / 4, -8.0f, 0.0f);
    ngpt_tensor mel = view(NGPT_DTYPE_F32, 3, (int64_t[]){1, 16, 64}, mel_data);
    const bool amx = nx_cpu_has_amx_bf16() != 0;
    for (int pass = amx ? 0 : 1; pass < 2; pass++) {
        const bool was = pass == 1 ? nx_cpu_set_amx(false) : true;
        ngpt_decoder *f = NULL, *h = NULL;
        ngpt_decoder_params p;
        ngpt_decoder_params_default(&p, sizeof p);
        p.components = NGPT_DECODER_VOCODER;
        CHECK_OK(ngpt_decoder_create(&f, g_ctx, dir, &p));
        p.compute_dtype = NGPT_DTYPE_BF16;
        if (pass == 1) p.flags = NGPT_DECODER_FLAG_CHANNELS_LAST; /* the UNet's and VAE's layout only */
        CHECK_OK(ngpt_decoder_create(&h, g_ctx, dir, &p));
        if (f && h && pass == 0) {
            compare_bf16("audioldm-a vocoder (AMX)", f, h, run_vocoder, &mel, 0.05);
        } else if (f && h) {
            ngpt_tensor a = {0}, b = {0};
            CHECK_OK(run_vocoder(f, &a, &mel));
            CHECK_OK(run_vocoder(h, &b, &mel));
            CHECK_MSG(a.data && b.data && memcmp(a.data, b.data, (size_t)ngpt_tensor_numel(&a) * sizeof(float)) == 0,
                      "audioldm-a vocoder: a BF16 decoder without AMX differs from the F32 one");
            ngpt_tensor_free(&a), ngpt_tensor_free(&b);
        }
        ngpt_decoder_free(f);
        ngpt_decoder_free(h);
        if (pass == 1) nx_cpu_set_amx(was);
    }
}

/* on_step and on_preview of ngpt_decoder_generate, for the three decoder kinds: called once per
 * step in order; the latents shaped as the call's; the RGB approximation [B, (F,) h, w, 3] of
 * 4-channel latents equal to the documented linear map (audio: none); either callback returning
 * false cancels with NGPT_ERR_CANCELLED. */
typedef struct cb_log {
    int steps, previews, stop_step, stop_preview, rank;
    int64_t shape[5];
    bool rgb_ok, order_ok, had_rgb;
} cb_log;

static bool on_step_cb(int32_t step, int32_t total, float elapsed, void *user)
{
    cb_log *l = user;
    l->order_ok &= step == l->steps + 1 && step <= total && elapsed >= 0.0f;
    l->steps++;
    return step != l->stop_step;
}

static bool on_preview_cb(int32_t step, int32_t total, const ngpt_tensor *lat, const ngpt_tensor *rgb, void *user)
{
    static const float m[4][3] = {{0.3512f, 0.2297f, 0.3227f}, {0.3250f, 0.4974f, 0.2350f},
                                  {-0.2829f, 0.1762f, 0.2721f}, {-0.2120f, -0.2616f, -0.7177f}};
    cb_log *l = user;
    l->order_ok &= step == l->previews + 1 && step == l->steps && step <= total;
    l->previews++;
    l->order_ok &= lat->rank == l->rank && memcmp(lat->shape, l->shape, (size_t)l->rank * sizeof(int64_t)) == 0;
    l->had_rgb |= rgb != NULL;
    if (rgb) {
        const int64_t B = lat->shape[0], pix = ngpt_tensor_numel(lat) / (B * 4);
        l->rgb_ok &= rgb->rank == lat->rank && rgb->shape[0] == B && rgb->shape[rgb->rank - 1] == 3 &&
                     ngpt_tensor_numel(rgb) == B * pix * 3;
        const float *x = lat->data, *o = rgb->data;
        for (int64_t b = 0; l->rgb_ok && b < B; b++)
            for (int64_t i = 0; i < pix; i++)
                for (int k = 0; k < 3; k++) {
                    float v = 0.0f;
                    for (int c = 0; c < 4; c++) v += x[(b * 4 + c) * pix + i] * m[c][k];
                    v = fminf(fmaxf(v * 0.5f + 0.5f, 0.0f), 1.0f);
                    l->rgb_ok &= fabsf(o[(b * pix + i) * 3 + k] - v) <= 1e-6f;
                }
    }
    return step != l->stop_preview;
}

/* Conditioning [1, 77, dim] (cond[2] != 0) or a class label [1, dim] (cond[2] == 0, AudioLDM) of
 * uniform(-1, 1) values in buf, seeded. */
static ngpt_tensor random_cond(float *buf, const int64_t cond[3], uint64_t seed)
{
    test_rng r = {seed};
    ngpt_tensor c = {.dtype = NGPT_DTYPE_F32, .data = buf};
    c.rank = cond[2] ? 3 : 2;
    memcpy(c.shape, cond, 3 * sizeof *cond);
    test_fill(&r, buf, (size_t)ngpt_tensor_numel(&c), -1.0f, 1.0f);
    return c;
}

/* A few steps without guidance (no uncond), small sizes for every kind */
static ngpt_decode_params small_decode(int steps)
{
    ngpt_decode_params gp;
    ngpt_decode_params_default(&gp, sizeof gp);
    gp.num_inference_steps = steps;
    gp.guidance_scale = 1.0f;
    gp.height = gp.width = 64;
    gp.num_frames = 2;
    gp.audio_length_s = 0.32;
    return gp;
}

static void test_step_callbacks(void)
{
    static const struct { const char *model; int rank; int64_t shape[5]; int64_t cond[3]; } k[3] = {
        {"sd-a", 4, {1, 4, 8, 8}, {1, 77, 32}},         /* cond: [B, 77, cross_attention_dim] */
        {"zeroscope-a", 5, {1, 4, 2, 8, 8}, {1, 77, 48}},
        {"audioldm-a", 4, {1, 8, 8, 16}, {1, 24, 0}},   /* [B, projection_class_embeddings_input_dim] */
    };
    for (int i = 0; i < 3; i++) {
        char dir[1000];
        model_dir(dir, sizeof dir, k[i].model);
        ngpt_decoder *d = NULL;
        CHECK_OK(ngpt_decoder_create(&d, g_ctx, dir, NULL));
        if (!d) continue;
        static float cond[77 * 1024];
        ngpt_tensor c = random_cond(cond, k[i].cond, 0x243f6a88ull + (uint64_t)i);
        ngpt_decode_params gp = small_decode(3);
        gp.on_step = on_step_cb;
        gp.on_preview = on_preview_cb;
        for (int run = 0; run < 3; run++) {
            cb_log l = {0};
            l.rank = k[i].rank, l.rgb_ok = l.order_ok = true;
            memcpy(l.shape, k[i].shape, sizeof l.shape);
            if (run == 1) l.stop_step = 2;
            if (run == 2) l.stop_preview = 1;
            gp.user_data = &l;
            ngpt_tensor out = {0};
            ngpt_status st = ngpt_decoder_generate(d, &out, NULL, &c, NULL, &gp);
            ngpt_tensor_free(&out);
            if (run == 0) {
                CHECK_MSG(st == NGPT_OK, "%s: %s", k[i].model, ngpt_last_error());
                CHECK_MSG(l.steps >= 3 && l.previews == l.steps, "%s: %d steps, %d previews", k[i].model, l.steps,
                          l.previews);
            } else {
                CHECK_MSG(st == NGPT_ERR_CANCELLED, "%s run %d: %s", k[i].model, run, ngpt_status_string(st));
                CHECK(run == 1 ? l.steps == 2 && l.previews == 1 : l.steps == 1 && l.previews == 1);
            }
            CHECK_MSG(l.order_ok, "%s run %d: callbacks out of order or latents of another shape", k[i].model, run);
            CHECK_MSG(l.rgb_ok && l.had_rgb == (i < 2), "%s run %d: the RGB preview", k[i].model, run);
        }
        ngpt_decoder_free(d);
    }
}

/* The component folders of a golden pipeline that make_variant copies. */
static const char *const k_comps[4] = {"unet", "vae", "scheduler", "vocoder"};

/* A temp copy of golden pipeline `model` in `dir`: every component folder, its weights linked and
 * its JSON files rewritten, with `key` set to the JSON `val` in `sub`/`file` (key NULL: no edit). */
static void make_variant(char *dir, const char *model, const char *sub, const char *file, const char *key, const char *val)
{
    strcpy(dir, "/tmp/ngpt_variant_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char src[1200];
    model_dir(src, sizeof src, model);
    char from[1400], to[1400];
    snprintf(from, sizeof from, "%s/model_index.json", src);
    snprintf(to, sizeof to, "%s/model_index.json", dir);
    copy_file(from, to);
    for (int c = 0; c < 4; c++) {
        snprintf(from, sizeof from, "%s/%s", src, k_comps[c]);
        DIR *dd = opendir(from);
        if (!dd) continue;
        snprintf(to, sizeof to, "%s/%s", dir, k_comps[c]);
        mkdir(to, 0755);
        struct dirent *e;
        while ((e = readdir(dd)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char f[1700], t[1700];
            snprintf(f, sizeof f, "%s/%s", from, e->d_name);
            snprintf(t, sizeof t, "%s/%s", to, e->d_name);
            size_t nl = strlen(e->d_name);
            if (nl < 5 || strcmp(e->d_name + nl - 5, ".json") != 0) {
                char abs[PATH_MAX];
                CHECK(realpath(f, abs) && symlink(abs, t) == 0);
                continue;
            }
            json_t *j = NULL;
            CHECK_OK(nx_json_load_file(&j, f));
            if (key && !strcmp(k_comps[c], sub) && !strcmp(e->d_name, file))
                json_object_set_new(j, key, json_loads(val, JSON_DECODE_ANY, NULL));
            CHECK(j && json_dump_file(j, t, JSON_INDENT(1)) == 0);
            json_decref(j);
        }
        closedir(dd);
    }
}

static void remove_variant(const char *dir)
{
    char p[1400];
    for (int c = 0; c < 4; c++) {
        snprintf(p, sizeof p, "%s/%s", dir, k_comps[c]);
        DIR *dd = opendir(p);
        if (!dd) continue;
        struct dirent *e;
        while ((e = readdir(dd)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char f[1700];
            snprintf(f, sizeof f, "%s/%s", p, e->d_name);
            unlink(f);
        }
        closedir(dd);
        rmdir(p);
    }
    snprintf(p, sizeof p, "%s/model_index.json", dir), unlink(p);
    rmdir(dir);
}

/* ngpt_decoder_generate on golden `model` or (sub != NULL) on a variant with one config key
 * changed: *out (and the mel in *aux for AUDIO) from seeded noise. */
static ngpt_status generate_variant(const char *model, const char *sub, const char *file, const char *key,
                                    const char *val, const ngpt_decode_params *gp, ngpt_tensor *out, ngpt_tensor *aux,
                                    float *factor, int32_t *rate)
{
    static const struct { const char *model; int64_t cond[3]; } conds[3] = {
        {"sd-a", {1, 77, 32}}, {"zeroscope-a", {1, 77, 48}}, {"audioldm-a", {1, 24, 0}}};
    char dir[1200];
    if (sub) make_variant(dir, model, sub, file, key, val);
    else model_dir(dir, sizeof dir, model);
    static float cond[77 * 48];
    ngpt_tensor c = {0};
    for (int i = 0; i < 3; i++)
        if (!strcmp(model, conds[i].model)) c = random_cond(cond, conds[i].cond, 0x85a308d3ull);
    ngpt_decoder *d = NULL;
    ngpt_status st = ngpt_decoder_create(&d, g_ctx, dir, NULL);
    if (st == NGPT_OK) st = ngpt_decoder_generate(d, out, aux, &c, NULL, gp);
    if (factor) *factor = ngpt_decoder_vae_scaling_factor(d);
    if (rate) *rate = ngpt_decoder_sample_rate(d);
    ngpt_decoder_free(d);
    if (sub) remove_variant(dir);
    return st;
}

static bool same_tensor(const ngpt_tensor *a, const ngpt_tensor *b)
{
    return a->data && b->data && a->rank == b->rank && !memcmp(a->shape, b->shape, sizeof a->shape) &&
           !memcmp(a->data, b->data, (size_t)ngpt_tensor_numel(a) * sizeof(float));
}

/* The config readings of NExT-GPT's pipelines that differ from the folder's files:
 * custom_sd.decode_latents divides by 0.18215 whatever vae/config.json says (custom_vd and
 * custom_ad read it); custom_sd's constructor sets the scheduler's steps_offset to 1 and
 * clip_sample to false, and a UNet sample_size below 64 to 64 when diffusers < 0.9 wrote the
 * config; custom_ad takes the vocoder's sampling_rate for the frame count and the crop, and
 * refuses lengths below hop x the VAE's scale. */
static void test_pipeline_config_readings(void)
{
    ngpt_decode_params gp = small_decode(1);  /* one step shows every difference below */
    gp.seed = 7;
    ngpt_tensor ref = {0}, out = {0}, aux = {0};
    float f = 0;
    int32_t rate = -1;

    /* image: the VAE's scaling_factor is not read; steps_offset and clip_sample are fixed up */
    CHECK_OK(generate_variant("sd-a", NULL, NULL, NULL, NULL, &gp, &ref, NULL, &f, &rate));
    CHECK_MSG(f == 0.18215f && rate == 0, "sd-a: factor %g, rate %d", (double)f, (int)rate);
    CHECK_OK(generate_variant("sd-a", "vae", "config.json", "scaling_factor", "0.5", &gp, &out, NULL, &f, NULL));
    CHECK_MSG(f == 0.18215f && same_tensor(&ref, &out), "sd-a, scaling_factor 0.5: factor %g, same %d", (double)f,
              (int)same_tensor(&ref, &out));
    ngpt_tensor_free(&out);
    CHECK_OK(generate_variant("sd-a", "scheduler", "scheduler_config.json", "steps_offset", "0", &gp, &out, NULL, NULL, NULL));
    CHECK_MSG(same_tensor(&ref, &out), "sd-a: steps_offset 0 in the file changed the image");
    ngpt_tensor_free(&out);
    ngpt_tensor_free(&ref);
    gp.scheduler = NGPT_SCHEDULER_DDIM;
    CHECK_OK(generate_variant("sd-a", NULL, NULL, NULL, NULL, &gp, &ref, NULL, NULL, NULL));
    CHECK_OK(generate_variant("sd-a", "scheduler", "scheduler_config.json", "clip_sample", "true", &gp, &out, NULL, NULL, NULL));
    CHECK_MSG(same_tensor(&ref, &out), "sd-a, DDIM: clip_sample true in the file changed the image");
    ngpt_tensor_free(&out);
    ngpt_tensor_free(&ref);
    gp.scheduler = NGPT_SCHEDULER_AUTO;

    /* image: the default width from a sample_size of 8 that diffusers 0.8 wrote is 64 x 8 (a
     * strip 8 high keeps the decode cheap) */
    ngpt_decode_params g1 = small_decode(1);
    g1.width = 0;
    g1.height = 8;
    CHECK_OK(generate_variant("sd-a", "unet", "config.json", "_diffusers_version", "\"0.8.0\"", &g1, &out, NULL, NULL, NULL));
    CHECK_MSG(out.rank == 4 && out.shape[1] == 8 && out.shape[2] == 512, "sd-a, unet 0.8.0: image %lldx%lld",
              (long long)out.shape[1], (long long)out.shape[2]);
    ngpt_tensor_free(&out);
    CHECK_OK(generate_variant("sd-a", "unet", "config.json", "_diffusers_version", "\"0.9.0.dev0\"", &g1, &out, NULL, NULL, NULL));
    CHECK_MSG(out.rank == 4 && out.shape[2] == 64, "sd-a, unet 0.9.0.dev0: width %lld", (long long)out.shape[2]);
    ngpt_tensor_free(&out);

    /* video: the VAE's scaling_factor is read; the scheduler file as it is */
    CHECK_OK(generate_variant("zeroscope-a", NULL, NULL, NULL, NULL, &gp, &ref, NULL, NULL, NULL));
    CHECK_OK(generate_variant("zeroscope-a", "vae", "config.json", "scaling_factor", "0.5", &gp, &out, NULL, &f, NULL));
    CHECK_MSG(f == 0.5f && out.data && !same_tensor(&ref, &out), "zeroscope-a, scaling_factor 0.5: factor %g", (double)f);
    ngpt_tensor_free(&out);
    CHECK_OK(generate_variant("zeroscope-a", "scheduler", "scheduler_config.json", "steps_offset", "0", &gp, &out, NULL, NULL, NULL));
    CHECK_MSG(out.data && !same_tensor(&ref, &out), "zeroscope-a: steps_offset 0 changed nothing");
    ngpt_tensor_free(&out);
    ngpt_tensor_free(&ref);

    /* audio: 0.32 s at the vocoder's rate; hop 160 / 8000 = 0.02 s gives 16 mel frames, not 32 */
    CHECK_OK(generate_variant("audioldm-a", NULL, NULL, NULL, NULL, &gp, &out, &aux, NULL, &rate));
    CHECK_MSG(rate == 16000 && out.shape[1] == 5120 && aux.shape[2] == 32, "audioldm-a: rate %d, %lld samples, %lld frames",
              (int)rate, (long long)out.shape[1], (long long)aux.shape[2]);
    ngpt_tensor_free(&out);
    ngpt_tensor_free(&aux);
    CHECK_OK(generate_variant("audioldm-a", "vocoder", "config.json", "sampling_rate", "8000", &gp, &out, &aux, NULL, &rate));
    CHECK_MSG(rate == 8000 && out.shape[1] == 2560 && aux.shape[2] == 16, "audioldm-a at 8 kHz: rate %d, %lld samples, %lld frames",
              (int)rate, (long long)out.shape[1], (long long)aux.shape[2]);
    ngpt_tensor_free(&out);
    ngpt_tensor_free(&aux);
    /* the shortest length is hop x scale = 0.01 x 4 */
    gp.audio_length_s = 0.04;
    CHECK_OK(generate_variant("audioldm-a", NULL, NULL, NULL, NULL, &gp, &out, NULL, NULL, NULL));
    CHECK(out.rank == 2 && out.shape[1] == 640);
    ngpt_tensor_free(&out);
    gp.audio_length_s = 0.039;
    ngpt_status st = generate_variant("audioldm-a", NULL, NULL, NULL, NULL, &gp, &out, NULL, NULL, NULL);
    CHECK_MSG(st == NGPT_ERR_INVALID_ARGUMENT && strstr(ngpt_last_error(), "0.04"), "0.039 s: %s", ngpt_last_error());
    CHECK(out.data == NULL);
}

/* NGPT_DECODER_FLAG_CUDA_GRAPH on the CPU: accepted, nothing recorded, the same images bit for
 * bit; the backend's capture calls are refusals; nx_unet_forward_t with the timestep input made by
 * nx_unet_time_input equals nx_unet_forward, and a wrong input is a named error. */
static void test_graph_flag_cpu(void)
{
    char dir[1000];
    model_dir(dir, sizeof dir, "sd-a");
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    ngpt_decoder *plain = NULL, *graph = NULL, *bad = NULL;
    CHECK_OK(ngpt_decoder_create(&plain, g_ctx, dir, &p));
    p.flags = NGPT_DECODER_FLAG_CUDA_GRAPH;
    CHECK_OK(ngpt_decoder_create(&graph, g_ctx, dir, &p));
    p.flags = 0x80u;
    CHECK_ERR(ngpt_decoder_create(&bad, g_ctx, dir, &p), NGPT_ERR_INVALID_ARGUMENT, "unknown flag bits 0x80");
    CHECK(bad == NULL);
    if (!plain || !graph) {
        ngpt_decoder_free(plain);
        ngpt_decoder_free(graph);
        return;
    }
    static float cond[77 * 32], unc[77 * 32];
    test_rng r = {0x6a09e667ull};
    test_fill(&r, cond, 77 * 32, -1.0f, 1.0f);
    test_fill(&r, unc, 77 * 32, -1.0f, 1.0f);
    ngpt_tensor c = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {1, 77, 32}, .data = cond};
    ngpt_tensor u = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {1, 77, 32}, .data = unc};
    ngpt_decode_params gp;
    ngpt_decode_params_default(&gp, sizeof gp);
    gp.num_inference_steps = 3;
    gp.height = gp.width = 64;
    gp.seed = 7;
    ngpt_tensor a = {0}, b = {0};
    CHECK_OK(ngpt_decoder_generate(plain, &a, NULL, &c, &u, &gp));
    CHECK_OK(ngpt_decoder_generate(graph, &b, NULL, &c, &u, &gp));
    CHECK(ngpt_tensor_numel(&a) == ngpt_tensor_numel(&b) && ngpt_tensor_numel(&a) > 0);
    if (a.data && b.data && ngpt_tensor_numel(&a) == ngpt_tensor_numel(&b))
        CHECK(memcmp(a.data, b.data, (size_t)ngpt_tensor_numel(&a) * sizeof(float)) == 0);
    ngpt_tensor_free(&a), ngpt_tensor_free(&b);

    nx_backend *be = g_ctx->be;
    nx_graph *gr = (nx_graph *)&gr;
    CHECK_ERR(nx_backend_capture_begin(be), NGPT_ERR_UNSUPPORTED, "no graph capture");
    CHECK_ERR(nx_backend_capture_end(be, &gr), NGPT_ERR_UNSUPPORTED, "no graph capture");
    CHECK(gr == NULL);
    CHECK_ERR(nx_backend_graph_launch(be, NULL), NGPT_ERR_UNSUPPORTED, "no graph");
    nx_backend_graph_free(be, NULL);

    /* forward_t == forward; the timestep input checked */
    nx_unet *un = plain->unet;
    int64_t xs[4] = {2, 4, 8, 8}, es[3] = {2, 77, 32}, C0 = nx_unet_time_channels(un);
    nx_tensor x = {0}, e = {0}, y1 = {0}, y2 = {0}, tin = {0}, bad_t = {0};
    CHECK_OK(nx_tensor_alloc(&x, be, NGPT_DTYPE_F32, 4, xs));
    CHECK_OK(nx_tensor_alloc(&e, be, NGPT_DTYPE_F32, 3, es));
    CHECK_OK(nx_tensor_alloc(&y1, be, NGPT_DTYPE_F32, 4, xs));
    CHECK_OK(nx_tensor_alloc(&y2, be, NGPT_DTYPE_F32, 4, xs));
    CHECK_OK(nx_tensor_alloc(&tin, be, NGPT_DTYPE_F32, 2, (int64_t[]){2, C0}));
    CHECK_OK(nx_tensor_alloc(&bad_t, be, NGPT_DTYPE_F32, 2, (int64_t[]){2, C0 + 1}));
    if (x.data && e.data && tin.data) {
        test_fill(&r, x.data, (size_t)nx_numel(&x), -1.0f, 1.0f);
        test_fill(&r, e.data, (size_t)nx_numel(&e), -1.0f, 1.0f);
        const float ts[2] = {981.0f, 21.0f};
        nx_unet_time_input(un, ts, 2, tin.data);
        CHECK_OK(nx_unet_forward(un, &y1, &x, ts, &e, NULL));
        CHECK_OK(nx_unet_forward_t(un, &y2, &x, &tin, &e, NULL));
        CHECK(memcmp(y1.data, y2.data, nx_nbytes(&y1)) == 0);
        CHECK_ERR(nx_unet_forward_t(un, &y2, &x, &bad_t, &e, NULL), NGPT_ERR_SHAPE_MISMATCH, "timestep input must be");
    }
    nx_tensor_free(&x), nx_tensor_free(&e), nx_tensor_free(&y1), nx_tensor_free(&y2);
    nx_tensor_free(&tin), nx_tensor_free(&bad_t);
    ngpt_decoder_free(plain);
    ngpt_decoder_free(graph);
}

/* The SD pipeline's loop by hand with the public calls (4 steps, guidance g, [uncond; cond] in cu,
 * latents lat0 [1, 4, 8, 8]) and the image postprocess, compared with *img. With init (image-to-
 * image, diffusers' StableDiffusionImg2ImgPipeline): int(4 x strength) steps, the schedule's last,
 * from add_noise(init, lat0, their first timestep). */
static void check_by_hand_from(ngpt_decoder *d, const char *dir, ngpt_scheduler_kind kind, const float *lat0, float *cu,
                               float g, const float *init, double strength, const ngpt_tensor *img)
{
    enum { S = 77, D = 32, NL = 4 * 8 * 8 };
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/scheduler/scheduler_config.json", dir);
    ngpt_scheduler_params sp;
    ngpt_scheduler_params_default(&sp, sizeof sp);
    sp.kind = kind;
    ngpt_scheduler *s = NULL;
    CHECK_OK(ngpt_scheduler_create(&s, cfg, &sp));
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 4));
    const double *ts = NULL;
    size_t nts = 0;
    CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &nts));
    static float lat[NL], x2[2 * NL], guided[NL];
    const float sigma = ngpt_scheduler_init_noise_sigma(s);
    const bool vp = kind == NGPT_SCHEDULER_UNIPC_MULTISTEP || kind == NGPT_SCHEDULER_DEIS_MULTISTEP ||
                    kind == NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP;
    if (!init) CHECK(vp ? sigma == 1.0f : sigma > 1.0f);  /* (LMS: Euler's) */
    size_t k0 = 0;
    if (init) {
        const int order = kind == NGPT_SCHEDULER_HEUN || kind == NGPT_SCHEDULER_KDPM2 ? 2 : 1;
        k0 = (size_t)((4 - (int)(4 * strength)) * order);
        CHECK(k0 < nts);
        if (k0 < nts) CHECK_OK(ngpt_scheduler_add_noise_f64(s, lat, init, lat0, NL, ts[k0]));
    } else {
        for (int i = 0; i < NL; i++) lat[i] = lat0[i] * sigma;
    }
    ngpt_tensor ehs = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {2, S, D}, .data = cu};
    ngpt_tensor xt = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {2, 4, 8, 8}, .data = x2};
    for (size_t k = k0; s && k < nts; k++) {
        memcpy(x2, lat, sizeof lat);
        memcpy(x2 + NL, lat, sizeof lat);
        CHECK_OK(ngpt_scheduler_scale_model_input_f64(s, x2, 2 * NL, ts[k]));
        float t32 = (float)ts[k];
        ngpt_tensor tt = {.dtype = NGPT_DTYPE_F32, .rank = 1, .shape = {1}, .data = &t32};
        ngpt_tensor eps = {0};
        CHECK_OK(ngpt_decoder_unet(d, &eps, &xt, &tt, &ehs, NULL));
        if (!eps.data) break;
        const float *e = eps.data;
        for (int i = 0; i < NL; i++) guided[i] = e[i] + g * (e[NL + i] - e[i]);
        ngpt_tensor_free(&eps);
        CHECK_OK(ngpt_scheduler_step_f64(s, guided, ts[k], lat, NL, NULL));
    }
    const float inv = 1.0f / ngpt_decoder_vae_scaling_factor(d);
    for (int i = 0; i < NL; i++) lat[i] *= inv;
    ngpt_tensor lt = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {1, 4, 8, 8}, .data = lat}, dec = {0};
    CHECK_OK(ngpt_decoder_vae_decode(d, &dec, &lt));
    if (dec.data && img->data && ngpt_tensor_numel(&dec) == ngpt_tensor_numel(img)) {
        const float *x = dec.data, *o = img->data;
        bool same = true;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < 64 * 64; i++) {
                float v = x[ch * 64 * 64 + i] * 0.5f + 0.5f;
                v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                same &= o[i * 3 + ch] == v;
            }
        CHECK_MSG(same, "kind %d: ngpt_decoder_generate differs from the loop by hand", (int)kind);
    } else {
        CHECK_MSG(0, "kind %d: no image to compare", (int)kind);
    }
    ngpt_tensor_free(&dec);
    ngpt_scheduler_free(s);
}

static void check_by_hand(ngpt_decoder *d, const char *dir, ngpt_scheduler_kind kind, const float *lat0, float *cu,
                          float g, const ngpt_tensor *img)
{
    check_by_hand_from(d, dir, kind, lat0, cu, g, NULL, 0.0, img);
}

/* ngpt_decoder_generate with Heun and Euler equals the loop written by hand with the public
 * calls, as diffusers' StableDiffusionPipeline runs it: latents x init_noise_sigma; per step the
 * UNet on scale_model_input([lat; lat]) at float32(t), guidance, step; the VAE decode. Euler
 * ancestral and SDE DPM-Solver draw their noise from the seed: the same seed gives the same
 * image, another does not. */
static void test_generate_euler(void)
{
    char dir[1000];
    model_dir(dir, sizeof dir, "sd-a");
    ngpt_decoder *d = NULL;
    CHECK_OK(ngpt_decoder_create(&d, g_ctx, dir, NULL));
    if (!d) return;
    enum { S = 77, D = 32, NL = 4 * 8 * 8 };
    static float cu[2 * S * D], lat0[NL];
    test_rng r = {0x510e527full};
    test_fill(&r, cu, 2 * S * D, -1.0f, 1.0f);
    test_fill(&r, lat0, NL, -1.0f, 1.0f);
    ngpt_tensor u = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {1, S, D}, .data = cu};
    ngpt_tensor c = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {1, S, D}, .data = cu + S * D};
    ngpt_tensor l0 = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {1, 4, 8, 8}, .data = lat0};
    ngpt_decode_params gp;
    ngpt_decode_params_default(&gp, sizeof gp);
    gp.num_inference_steps = 4;
    gp.height = gp.width = 64;
    gp.latents = &l0;
    const float g = gp.guidance_scale = 7.5f;
    ngpt_tensor img = {0};
    static const ngpt_scheduler_kind kinds[7] = {NGPT_SCHEDULER_HEUN, NGPT_SCHEDULER_UNIPC_MULTISTEP,
                                                 NGPT_SCHEDULER_LMS, NGPT_SCHEDULER_KDPM2, NGPT_SCHEDULER_DEIS_MULTISTEP,
                                                 NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, NGPT_SCHEDULER_EULER};
    for (int ki = 0; ki < 7; ki++) {
        gp.scheduler = kinds[ki];
        ngpt_tensor_free(&img);
        CHECK_OK(ngpt_decoder_generate(d, &img, NULL, &c, &u, &gp));
        check_by_hand(d, dir, kinds[ki], lat0, cu, g, &img);
    }  /* the last image (Euler's) is compared with Euler ancestral's below */

    /* the samplers that draw noise: from the seed */
    const size_t nb = (size_t)ngpt_tensor_numel(&img) * sizeof(float);
    static const ngpt_scheduler_kind ancestral[3] = {NGPT_SCHEDULER_EULER_ANCESTRAL, NGPT_SCHEDULER_KDPM2_ANCESTRAL,
                                                     NGPT_SCHEDULER_DDPM};
    for (int ai = 0; ai < 3; ai++) {
        gp.scheduler = ancestral[ai];
        gp.seed = 11;
        ngpt_tensor a1 = {0}, a2 = {0}, a3 = {0};
        CHECK_OK(ngpt_decoder_generate(d, &a1, NULL, &c, &u, &gp));
        CHECK_OK(ngpt_decoder_generate(d, &a2, NULL, &c, &u, &gp));
        gp.seed = 12;
        CHECK_OK(ngpt_decoder_generate(d, &a3, NULL, &c, &u, &gp));
        if (a1.data && a2.data && a3.data && img.data) {
            CHECK(memcmp(a1.data, a2.data, nb) == 0);
            CHECK(memcmp(a1.data, a3.data, nb) != 0);
            CHECK(memcmp(a1.data, img.data, nb) != 0);
            bool finite = true;
            for (size_t i = 0; i < nb / sizeof(float); i++) finite &= isfinite(((float *)a1.data)[i]);
            CHECK(finite);
        }
        ngpt_tensor_free(&a1), ngpt_tensor_free(&a2), ngpt_tensor_free(&a3);
    }
    ngpt_tensor_free(&img);
    ngpt_decoder_free(d);

    /* a folder whose scheduler is an SDE DPM-Solver: generate draws its noise from the seed (it
     * used to fail asking for variance_noise) */
    char tmp[64] = "/tmp/ngpt_sde_XXXXXX", p[1200], q[1200];
    CHECK(mkdtemp(tmp) != NULL);
    static const char *const parts[3] = {"model_index.json", "unet", "vae"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, parts[i]);
        snprintf(q, sizeof q, "%s/%s", tmp, parts[i]);
        CHECK(symlink(p, q) == 0);
    }
    snprintf(q, sizeof q, "%s/scheduler", tmp);
    CHECK(mkdir(q, 0755) == 0);
    snprintf(q, sizeof q, "%s/scheduler/scheduler_config.json", tmp);
    FILE *f = fopen(q, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"algorithm_type\": \"sde-dpmsolver++\", "
              "\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012}", f);
        fclose(f);
    }
    ngpt_decoder *sde = NULL;
    CHECK_OK(ngpt_decoder_create(&sde, g_ctx, tmp, NULL));
    gp.scheduler = NGPT_SCHEDULER_AUTO;
    ngpt_tensor s1 = {0}, s2 = {0};
    if (sde) {
        CHECK_OK(ngpt_decoder_generate(sde, &s1, NULL, &c, &u, &gp));
        CHECK_OK(ngpt_decoder_generate(sde, &s2, NULL, &c, &u, &gp));
        if (s1.data && s2.data) CHECK(memcmp(s1.data, s2.data, nb) == 0);
    }
    ngpt_tensor_free(&s1), ngpt_tensor_free(&s2);
    ngpt_decoder_free(sde);
    unlink(q);
    snprintf(q, sizeof q, "%s/scheduler", tmp), rmdir(q);
    for (int i = 0; i < 3; i++) snprintf(q, sizeof q, "%s/%s", tmp, parts[i]), unlink(q);
    rmdir(tmp);
}

/* Image-to-image (ngpt_decode_params.init_latents, strength) equals diffusers' img2img loop by
 * hand for schedulers of order 1 and 2, counts its steps in on_step, and refuses what has no step
 * to run or the wrong shape. */
static int g_img2img_total;
static bool img2img_step(int32_t step, int32_t total, float elapsed, void *ud)
{
    (void)step, (void)elapsed, (void)ud;
    g_img2img_total = total;
    return true;
}

static void test_generate_img2img(void)
{
    char dir[1000];
    model_dir(dir, sizeof dir, "sd-a");
    ngpt_decoder *d = NULL;
    CHECK_OK(ngpt_decoder_create(&d, g_ctx, dir, NULL));
    if (!d) return;
    enum { S = 77, D = 32, NL = 4 * 8 * 8 };
    static float cu[2 * S * D], lat0[NL], init[NL];
    test_rng r = {0x9b05688cull};
    test_fill(&r, cu, 2 * S * D, -1.0f, 1.0f);
    test_fill(&r, lat0, NL, -1.0f, 1.0f);
    test_fill(&r, init, NL, -2.0f, 2.0f);
    ngpt_tensor u = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {1, S, D}, .data = cu};
    ngpt_tensor c = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {1, S, D}, .data = cu + S * D};
    ngpt_tensor l0 = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {1, 4, 8, 8}, .data = lat0};
    ngpt_tensor in = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {1, 4, 8, 8}, .data = init};
    ngpt_decode_params gp;
    ngpt_decode_params_default(&gp, sizeof gp);
    CHECK(gp.strength == 0.8 && gp.init_latents == NULL);
    gp.num_inference_steps = 4;
    gp.height = gp.width = 64;
    gp.latents = &l0;
    gp.init_latents = &in;
    gp.on_step = img2img_step;
    const float g = gp.guidance_scale = 7.5f;
    static const struct { ngpt_scheduler_kind kind; double strength; int total; } runs[] = {
        {NGPT_SCHEDULER_DDIM, 0.5, 2},  {NGPT_SCHEDULER_PNDM, 0.75, 4},  /* PNDM: 5 timesteps for 4 steps */
        {NGPT_SCHEDULER_EULER, 0.6, 2}, {NGPT_SCHEDULER_HEUN, 0.5, 3},   /* Heun: 7 timesteps, the last 3 */
        {NGPT_SCHEDULER_KDPM2, 1.0, 7}, {NGPT_SCHEDULER_UNIPC_MULTISTEP, 0.25, 1},
        {NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0.7, 2}};
    ngpt_tensor img = {0};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        gp.scheduler = runs[i].kind;
        gp.strength = runs[i].strength;
        g_img2img_total = -1;
        ngpt_tensor_free(&img);
        CHECK_OK(ngpt_decoder_generate(d, &img, NULL, &c, &u, &gp));
        CHECK_MSG(g_img2img_total == runs[i].total, "kind %d strength %g: %d steps, expected %d", (int)runs[i].kind,
                  runs[i].strength, g_img2img_total, runs[i].total);
        check_by_hand_from(d, dir, runs[i].kind, lat0, cu, g, init, runs[i].strength, &img);
    }
    /* without init_latents the same params run from the noise alone: another image */
    ngpt_tensor txt = {0};
    gp.init_latents = NULL;
    CHECK_OK(ngpt_decoder_generate(d, &txt, NULL, &c, &u, &gp));
    if (txt.data && img.data) CHECK(memcmp(txt.data, img.data, (size_t)ngpt_tensor_numel(&img) * sizeof(float)) != 0);
    ngpt_tensor_free(&txt);
    ngpt_tensor_free(&img);
    /* errors */
    gp.init_latents = &in;
    gp.scheduler = NGPT_SCHEDULER_DDIM;
    ngpt_tensor x = {0};
    gp.strength = 0.2;  /* int(4 x 0.2) = 0 */
    CHECK_ERR(ngpt_decoder_generate(d, &x, NULL, &c, &u, &gp), NGPT_ERR_INVALID_ARGUMENT, "strength 0.2 x 4 steps runs no step");
    gp.strength = 0.0;
    CHECK_ERR(ngpt_decoder_generate(d, &x, NULL, &c, &u, &gp), NGPT_ERR_INVALID_ARGUMENT, "strength 0 out of (0, 1]");
    gp.strength = 1.5;
    CHECK_ERR(ngpt_decoder_generate(d, &x, NULL, &c, &u, &gp), NGPT_ERR_INVALID_ARGUMENT, "strength 1.5 out of (0, 1]");
    gp.strength = NAN;
    CHECK_ERR(ngpt_decoder_generate(d, &x, NULL, &c, &u, &gp), NGPT_ERR_INVALID_ARGUMENT, "out of (0, 1]");
    gp.strength = 0.5;
    gp.latents = NULL;  /* noise from the seed: reproducible (below) */
    gp.seed = 5;
    gp.height = 72;  /* the init latents are 64x64's */
    CHECK_ERR(ngpt_decoder_generate(d, &x, NULL, &c, &u, &gp), NGPT_ERR_SHAPE_MISMATCH,
              "init_latents [1, 4, 8, 8], expected [1, 4, 9, 8] for these params (set the size");
    gp.height = 64;
    ngpt_tensor a = {0}, b = {0};
    CHECK_OK(ngpt_decoder_generate(d, &a, NULL, &c, &u, &gp));
    CHECK_OK(ngpt_decoder_generate(d, &b, NULL, &c, &u, &gp));
    if (a.data && b.data) CHECK(memcmp(a.data, b.data, (size_t)ngpt_tensor_numel(&a) * sizeof(float)) == 0);
    ngpt_tensor_free(&a), ngpt_tensor_free(&b), ngpt_tensor_free(&x);
    ngpt_decoder_free(d);
}

/* The noise nextgpt.h documents for a seed (ngpt_decoder_generate): xoshiro256** seeded by
 * splitmix64, Box-Muller pairs (cos, sin), row-major; written here from the header's words. */
static void documented_noise(float *x, size_t n, uint64_t seed)
{
    nx_rng r;
    nx_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i += 2) {
        double u1 = nx_rng_uniform(&r), u2 = nx_rng_uniform(&r);
        double rad = sqrt(-2.0 * log(1.0 - u1));
        x[i] = (float)(rad * cos(2.0 * M_PI * u2));
        if (i + 1 < n) x[i + 1] = (float)(rad * sin(2.0 * M_PI * u2));
    }
}

/* ngpt_decoder_image_latents against the steps written out with the public calls: the Lanczos
 * cut to multiples of 8, u8 / 255 x 2 - 1 in NCHW, ngpt_decoder_vae_encode, then mean (or mean +
 * exp(logvar / 2) x the documented noise) x the scaling factor, bit for bit; then those latents
 * through ngpt_decoder_generate with the size left 0 (taken from them) and repeated over a
 * batch of 2. The golden cases sd.image_latents check the same against diffusers' steps. */
static void test_image_latents(void)
{
    char dir[1000];
    model_dir(dir, sizeof dir, "sd-a");
    ngpt_decoder *d = NULL;
    CHECK_OK(ngpt_decoder_create(&d, g_ctx, dir, NULL));
    if (!d) return;
    static const int32_t sizes[2][2] = {{37, 29}, {40, 24}};  /* cut to 32x24; already multiples */
    test_rng r = {0x51ed2701ull};
    for (int k = 0; k < 2; k++) {
        const int32_t w = sizes[k][0], h = sizes[k][1], cw = w - w % 8, ch = h - h % 8;
        uint8_t *px = malloc((size_t)w * h * 3), *cut = malloc((size_t)cw * ch * 3);
        for (size_t i = 0; i < (size_t)w * h * 3; i++) px[i] = (uint8_t)(test_rng_u64(&r) >> 56);
        ngpt_image *img = NULL;
        CHECK_OK(ngpt_image_from_rgb8(&img, px, w, h, 0));
        if (cw == w && ch == h) memcpy(cut, px, (size_t)w * h * 3);
        else CHECK_OK(nx_resize_lanczos_rgb8(px, w, h, cut, cw, ch));
        float *x = malloc(sizeof(float) * 3 * (size_t)cw * ch);
        for (size_t i = 0; i < (size_t)cw * ch; i++)
            for (int c = 0; c < 3; c++) x[(size_t)c * cw * ch + i] = 2.0f * ((float)cut[i * 3 + c] / 255.0f) - 1.0f;
        ngpt_tensor xt = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {1, 3, ch, cw}, .data = x};
        ngpt_tensor mean = {0}, lv = {0}, mode = {0}, smp = {0};
        CHECK_OK(ngpt_decoder_vae_encode(d, &mean, &lv, &xt));
        CHECK_OK(ngpt_decoder_image_latents(d, &mode, img, 0, 0));
        CHECK_OK(ngpt_decoder_image_latents(d, &smp, img, 1, 9));
        const int64_t want[4] = {1, 4, ch / 8, cw / 8};
        CHECK(mode.rank == 4 && memcmp(mode.shape, want, sizeof want) == 0 && smp.rank == 4 &&
              memcmp(smp.shape, want, sizeof want) == 0);
        const float sf = ngpt_decoder_vae_scaling_factor(d);
        const int64_t n = ngpt_tensor_numel(&mean);
        float *noise = malloc(sizeof(float) * (size_t)n);
        documented_noise(noise, (size_t)n, 9);
        int64_t bad_mode = 0, bad_sample = 0;
        for (int64_t i = 0; mode.data && smp.data && i < n; i++) {
            const float m = ((float *)mean.data)[i], l = ((float *)lv.data)[i];
            bad_mode += ((float *)mode.data)[i] != sf * m;
            bad_sample += ((float *)smp.data)[i] != sf * (m + expf(0.5f * l) * noise[i]);
        }
        CHECK_MSG(bad_mode == 0 && bad_sample == 0, "%dx%d: %lld mode and %lld sample values differ from the steps by hand",
                  w, h, (long long)bad_mode, (long long)bad_sample);
        if (k == 0) {
            /* generate: the size from init_latents; a batch-1 init_latents over 2 cond rows is [init; init] */
            enum { S = 77, D = 32 };
            static float cond[2 * S * D];
            test_fill(&r, cond, 2 * S * D, -1.0f, 1.0f);
            ngpt_tensor c2 = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {2, S, D}, .data = cond};
            ngpt_decode_params gp = small_decode(3);
            gp.height = gp.width = 0;
            gp.init_latents = &mode;
            gp.strength = 0.7;
            gp.seed = 4;
            ngpt_tensor one = {0}, two = {0}, twice = {0};
            CHECK_OK(ngpt_decoder_generate(d, &one, NULL, &c2, NULL, &gp));
            const int64_t img_shape[4] = {2, ch, cw, 3};
            CHECK(one.rank == 4 && memcmp(one.shape, img_shape, sizeof img_shape) == 0);
            float *both = malloc(sizeof(float) * 2 * (size_t)n);
            if (mode.data) {
                memcpy(both, mode.data, sizeof(float) * (size_t)n);
                memcpy(both + n, mode.data, sizeof(float) * (size_t)n);
            }
            ngpt_tensor init2 = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {2, 4, ch / 8, cw / 8}, .data = both};
            gp.init_latents = &init2;
            CHECK_OK(ngpt_decoder_generate(d, &two, NULL, &c2, NULL, &gp));
            CHECK(one.data && two.data && memcmp(one.data, two.data, sizeof(float) * (size_t)ngpt_tensor_numel(&one)) == 0);
            /* the seed's noise is the documented one: the same run from latents written out by hand */
            float *lat = malloc(sizeof(float) * 2 * (size_t)n);
            documented_noise(lat, 2 * (size_t)n, 4);
            ngpt_tensor lt = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {2, 4, ch / 8, cw / 8}, .data = lat};
            gp.latents = &lt;
            CHECK_OK(ngpt_decoder_generate(d, &twice, NULL, &c2, NULL, &gp));
            CHECK(twice.data && one.data && memcmp(one.data, twice.data, sizeof(float) * (size_t)ngpt_tensor_numel(&one)) == 0);
            gp.latents = NULL;
            /* a batch of 3 cond rows cannot repeat 2 init rows; an explicit size must match */
            static float cond3[3 * S * D];
            const ngpt_tensor c3 = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {3, S, D}, .data = cond3};
            ngpt_tensor none = {0};
            CHECK_ERR(ngpt_decoder_generate(d, &none, NULL, &c3, NULL, &gp), NGPT_ERR_SHAPE_MISMATCH, "its batch may also divide");
            gp.height = 64;
            gp.width = 64;
            CHECK_ERR(ngpt_decoder_generate(d, &none, NULL, &c2, NULL, &gp), NGPT_ERR_SHAPE_MISMATCH, "expected [2, 4, 8, 8]");
            CHECK(none.data == NULL);
            free(lat), free(both);
            ngpt_tensor_free(&one), ngpt_tensor_free(&two), ngpt_tensor_free(&twice);
        }
        free(noise), free(x), free(cut), free(px);
        ngpt_tensor_free(&mean), ngpt_tensor_free(&lv), ngpt_tensor_free(&mode), ngpt_tensor_free(&smp);
        ngpt_image_free(img);
    }
    /* errors */
    ngpt_tensor t = {0};
    uint8_t tiny[7 * 40 * 3] = {0};
    ngpt_image *small = NULL;
    CHECK_OK(ngpt_image_from_rgb8(&small, tiny, 40, 7, 0));
    CHECK_ERR(ngpt_decoder_image_latents(d, &t, small, 0, 0), NGPT_ERR_INVALID_ARGUMENT, "image 40x7: cut to multiples of 8 it is 40x0");
    CHECK_ERR(ngpt_decoder_image_latents(d, &t, NULL, 0, 0), NGPT_ERR_INVALID_ARGUMENT, "is NULL");
    CHECK_ERR(ngpt_decoder_image_latents(NULL, &t, small, 0, 0), NGPT_ERR_INVALID_ARGUMENT, "is NULL");
    ngpt_decoder_free(d);
    model_dir(dir, sizeof dir, "audioldm-a");
    CHECK_OK(ngpt_decoder_create(&d, g_ctx, dir, NULL));
    CHECK_ERR(ngpt_decoder_image_latents(d, &t, small, 0, 0), NGPT_ERR_UNSUPPORTED, "needs an image decoder (this one is audio)");
    CHECK(t.data == NULL && t.rank == 0);
    ngpt_decoder_free(d);
    ngpt_image_free(small);
}

/* ngpt_decoder_video_latents against the steps by hand: each frame u8 / 255 x 2 - 1 through
 * ngpt_decoder_vae_encode, mean (or mean + exp(logvar / 2) x the documented noise over
 * [F, C, h, w]) x the scaling factor, permuted to [1, C, F, h, w], bit for bit; F32 frames in
 * [0, 1] give the same; generate takes the size and the frame count from the result; the
 * errors. The golden cases zeroscope.video_latents check it against diffusers' steps. */
static void test_video_latents(void)
{
    char dir[1000];
    model_dir(dir, sizeof dir, "zeroscope-a");
    ngpt_decoder *d = NULL;
    CHECK_OK(ngpt_decoder_create(&d, g_ctx, dir, NULL));
    if (!d) return;
    enum { F = 2, H = 16, W = 24, C = 4, h = H / 8, w = W / 8, PER = C * h * w };
    static uint8_t px[F * H * W * 3];
    static float fx[F * H * W * 3], x[F * 3 * H * W], mean[F * PER], lv[F * PER], noise[F * PER];
    test_rng r = {0x7f4a7c15ull};
    for (size_t i = 0; i < sizeof px; i++) {
        px[i] = (uint8_t)(test_rng_u64(&r) >> 56);
        fx[i] = (float)px[i] / 255.0f;
    }
    for (int f = 0; f < F; f++)
        for (int i = 0; i < H * W; i++)
            for (int c = 0; c < 3; c++) x[((f * 3 + c) * H * W) + i] = 2.0f * ((float)px[(f * H * W + i) * 3 + c] / 255.0f) - 1.0f;
    for (int f = 0; f < F; f++) {
        ngpt_tensor xt = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {1, 3, H, W}, .data = x + f * 3 * H * W};
        ngpt_tensor m = {0}, l = {0};
        CHECK_OK(ngpt_decoder_vae_encode(d, &m, &l, &xt));
        if (m.data && l.data) {
            memcpy(mean + f * PER, m.data, sizeof(float) * PER);
            memcpy(lv + f * PER, l.data, sizeof(float) * PER);
        }
        ngpt_tensor_free(&m), ngpt_tensor_free(&l);
    }
    documented_noise(noise, F * PER, 5);
    const float sf = ngpt_decoder_vae_scaling_factor(d);
    ngpt_tensor u8 = {.dtype = NGPT_DTYPE_U8, .rank = 4, .shape = {F, H, W, 3}, .data = px};
    ngpt_tensor f32 = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {F, H, W, 3}, .data = fx};
    ngpt_tensor mode = {0}, smp = {0}, mode32 = {0};
    CHECK_OK(ngpt_decoder_video_latents(d, &mode, &u8, 0, 0));
    CHECK_OK(ngpt_decoder_video_latents(d, &smp, &u8, 1, 5));
    CHECK_OK(ngpt_decoder_video_latents(d, &mode32, &f32, 0, 0));
    const int64_t want[5] = {1, C, F, h, w};
    CHECK(mode.rank == 5 && memcmp(mode.shape, want, sizeof want) == 0);
    int bad = 0;
    for (int f = 0; mode.data && smp.data && mode32.data && f < F; f++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < h * w; i++) {
                const int src = f * PER + c * h * w + i, dst = (c * F + f) * h * w + i;
                bad += ((float *)mode.data)[dst] != sf * mean[src];
                bad += ((float *)mode32.data)[dst] != sf * mean[src];
                bad += ((float *)smp.data)[dst] != sf * (mean[src] + expf(0.5f * lv[src]) * noise[src]);
            }
    CHECK_MSG(bad == 0, "%d video latents differ from the steps by hand", bad);
    /* generate: the size and frames from init_latents */
    static float cond[77 * 48];
    const int64_t cs[3] = {1, 77, 48};
    ngpt_tensor c = random_cond(cond, cs, 0x3c6ef373ull);
    ngpt_decode_params gp = small_decode(2);
    gp.height = gp.width = 0;
    gp.num_frames = 0;
    gp.init_latents = &smp;
    gp.strength = 0.5;
    ngpt_tensor v = {0};
    CHECK_OK(ngpt_decoder_generate(d, &v, NULL, &c, NULL, &gp));
    const int64_t vs[5] = {1, 3, F, H, W};
    CHECK(v.rank == 5 && memcmp(v.shape, vs, sizeof vs) == 0);
    ngpt_tensor_free(&v), ngpt_tensor_free(&mode), ngpt_tensor_free(&smp), ngpt_tensor_free(&mode32);
    /* errors */
    ngpt_tensor t = {0};
    ngpt_tensor odd = {.dtype = NGPT_DTYPE_U8, .rank = 4, .shape = {F, 12, W, 3}, .data = px};
    CHECK_ERR(ngpt_decoder_video_latents(d, &t, &odd, 0, 0), NGPT_ERR_SHAPE_MISMATCH, "frames [2, 12, 24, 3]: expected");
    ngpt_tensor none = {.dtype = NGPT_DTYPE_U8, .rank = 4, .shape = {0, H, W, 3}, .data = px};
    CHECK_ERR(ngpt_decoder_video_latents(d, &t, &none, 0, 0), NGPT_ERR_SHAPE_MISMATCH, "F in [1, 256]");
    ngpt_tensor ints = {.dtype = NGPT_DTYPE_I32, .rank = 4, .shape = {1, H, W, 3}, .data = fx};
    CHECK_ERR(ngpt_decoder_video_latents(d, &t, &ints, 0, 0), NGPT_ERR_DTYPE_MISMATCH, "not U8 or F32");
    CHECK_ERR(ngpt_decoder_video_latents(d, &t, NULL, 0, 0), NGPT_ERR_INVALID_ARGUMENT, "frames");
    ngpt_decoder_free(d);
    model_dir(dir, sizeof dir, "sd-a");
    CHECK_OK(ngpt_decoder_create(&d, g_ctx, dir, NULL));
    CHECK_ERR(ngpt_decoder_video_latents(d, &t, &u8, 0, 0), NGPT_ERR_UNSUPPORTED, "needs a video decoder (this one is image)");
    CHECK(t.data == NULL);
    ngpt_decoder_free(d);
}

/* NGPT_DECODER_FLAG_CHANNELS_LAST on the CPU: each kind's generate (SD, AudioLDM with its VAE,
 * Zeroscope's UNet3D) and the VAE round trip agree with the NCHW decoder's within F32 rounding;
 * the golden cases check it against upstream too (golden_cases_channels_last). */
static void test_channels_last_flag(void)
{
    static const struct { const char *model; int64_t cond[3]; } k[3] = {
        {"sd-a", {1, 77, 32}}, {"zeroscope-a", {1, 77, 48}}, {"audioldm-a", {1, 24, 0}}};
    for (int i = 0; i < 3; i++) {
        char dir[1000];
        model_dir(dir, sizeof dir, k[i].model);
        ngpt_decoder_params p;
        ngpt_decoder_params_default(&p, sizeof p);
        ngpt_decoder *plain = NULL, *cl = NULL;
        CHECK_OK(ngpt_decoder_create(&plain, g_ctx, dir, &p));
        p.flags = NGPT_DECODER_FLAG_CHANNELS_LAST;
        CHECK_OK(ngpt_decoder_create(&cl, g_ctx, dir, &p));
        if (!plain || !cl) {
            ngpt_decoder_free(plain), ngpt_decoder_free(cl);
            continue;
        }
        static float cond[77 * 1024];
        ngpt_tensor c = random_cond(cond, k[i].cond, 0x3c6ef372ull + (uint64_t)i);
        ngpt_decode_params gp = small_decode(2);
        /* zeroscope-a at 64x64 reaches a 1x1 level whose GroupNorm normalises pairs, which
         * amplifies rounding without bound (bench/RESULTS.md, GPU runs 4-6): 256x256 there */
        if (i == 1) gp.height = gp.width = 256;
        gp.seed = 11;
        ngpt_tensor a = {0}, b = {0};
        CHECK_OK(ngpt_decoder_generate(plain, &a, NULL, &c, NULL, &gp));
        CHECK_OK(ngpt_decoder_generate(cl, &b, NULL, &c, NULL, &gp));
        CHECK(ngpt_tensor_numel(&a) == ngpt_tensor_numel(&b) && ngpt_tensor_numel(&a) > 0);
        if (a.data && b.data && ngpt_tensor_numel(&a) == ngpt_tensor_numel(&b)) {
            const double e = test_max_rel_diff(&a, &b);
            CHECK_MSG(e < 1e-4, "%s: channels last differs from NCHW by %.3g (relative to max |out|)", k[i].model, e);
            CHECK_MSG(e > 0, "%s: channels last gave the NCHW result bit for bit: was it taken?", k[i].model);
        }
        ngpt_tensor_free(&a), ngpt_tensor_free(&b);
        ngpt_decoder_free(plain), ngpt_decoder_free(cl);
    }
}

/* Channels last against NCHW on the UNet forward alone, at sizes the golden cases do not have:
 * odd latent heights and widths (the up blocks resize to the skip's size instead of 2x), a
 * single row, three frames, one frame; same weights, same inputs, within F32 rounding.
 * (zeroscope-a at 8x8 reaches a 1x1 level whose GroupNorms normalise pairs: there a 1e-6
 * relative change of the input moves the NCHW output itself by 0.36, so one frame runs at
 * 32x32.) */
static void test_channels_last_shapes(void)
{
    static const struct { const char *model; int64_t shape[5]; } k[] = {
        {"sd-a", {2, 4, 9, 13}}, {"sd-a", {1, 4, 8, 1}}, {"sd-a", {1, 4, 24, 8}},
        {"audioldm-a", {2, 8, 25, 16}}, {"audioldm-a", {1, 8, 11, 8}},
        {"zeroscope-a", {1, 4, 3, 16, 24}}, {"zeroscope-a", {2, 4, 1, 32, 32}}};
    nx_backend *be = g_ctx->be;
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        char dir[1000];
        model_dir(dir, sizeof dir, k[i].model);
        strncat(dir, "/unet", sizeof dir - strlen(dir) - 1);
        nx_unet *a = NULL, *b = NULL;
        CHECK_OK(nx_unet_load(&a, be, dir, NGPT_DTYPE_F32, false));
        CHECK_OK(nx_unet_load(&b, be, dir, NGPT_DTYPE_F32, true));
        if (!a || !b) {
            nx_unet_free(a), nx_unet_free(b);
            continue;
        }
        const bool d3 = nx_unet_is_3d(a), audio = nx_unet_class_embed_dim(a) > 0;
        const int rank = d3 ? 5 : 4;
        const int64_t B = k[i].shape[0];
        int64_t ys[5];
        memcpy(ys, k[i].shape, sizeof ys);
        ys[1] = nx_unet_out_channels(a);
        const int64_t es[3] = {B, 77, nx_unet_cross_attention_dim(a)}, cs[2] = {B, nx_unet_class_embed_dim(a)};
        nx_tensor x = {0}, c = {0}, y1 = {0}, y2 = {0};
        CHECK_OK(nx_tensor_alloc(&x, be, NGPT_DTYPE_F32, rank, k[i].shape));
        CHECK_OK(audio ? nx_tensor_alloc(&c, be, NGPT_DTYPE_F32, 2, cs) : nx_tensor_alloc(&c, be, NGPT_DTYPE_F32, 3, es));
        CHECK_OK(nx_tensor_alloc(&y1, be, NGPT_DTYPE_F32, rank, ys));
        CHECK_OK(nx_tensor_alloc(&y2, be, NGPT_DTYPE_F32, rank, ys));
        if (x.data && c.data && y1.data && y2.data) {
            test_rng r = {0x510e527full + i};
            test_fill(&r, x.data, (size_t)nx_numel(&x), -1.5f, 1.5f);
            test_fill(&r, c.data, (size_t)nx_numel(&c), -1.0f, 1.0f);
            const float ts[2] = {801.0f, 17.0f};
            CHECK_OK(nx_unet_forward(a, &y1, &x, ts, audio ? NULL : &c, audio ? &c : NULL));
            CHECK_OK(nx_unet_forward(b, &y2, &x, ts, audio ? NULL : &c, audio ? &c : NULL));
            ngpt_tensor t1 = {.dtype = NGPT_DTYPE_F32, .rank = rank, .data = y1.data};
            ngpt_tensor t2 = {.dtype = NGPT_DTYPE_F32, .rank = rank, .data = y2.data};
            memcpy(t1.shape, ys, sizeof ys), memcpy(t2.shape, ys, sizeof ys);
            const double e = test_max_rel_diff(&t1, &t2);
            CHECK_MSG(e < 1e-4, "%s [%lld, %lld, %lld, %lld%s]: channels last differs by %.3g", k[i].model,
                      (long long)ys[0], (long long)k[i].shape[1], (long long)k[i].shape[2], (long long)k[i].shape[3],
                      d3 ? ", .." : "", e);
        }
        nx_tensor_free(&x), nx_tensor_free(&c), nx_tensor_free(&y1), nx_tensor_free(&y2);
        nx_unet_free(a), nx_unet_free(b);
    }
}

int main(void)
{
    const char *g = getenv("NGPT_GOLDEN_DIR");
    const char *root = getenv("NGPT_SOURCE_ROOT");
    if (g) snprintf(g_golden, sizeof g_golden, "%s", g);
    else snprintf(g_golden, sizeof g_golden, "%s/../shared/golden", root ? root : ".");
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/models/sd-a/unet/config.json", g_golden);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "golden models not found under %s: skipping\n", g_golden);
        return TEST_SKIP;
    }
    if (!(g_ctx = test_cpu_context(2))) return 1;
    RUN(test_timestep_embedding);
    RUN(test_load_errors);
    RUN(test_load_errors_3d);
    RUN(test_arg_errors);
    RUN(test_unet3d);
    RUN(test_batch);
    RUN(test_f16_weights);
    RUN(test_list_tensors);
    RUN(test_compute_dtype_cpu);
    RUN(test_bf16_cpu);
    RUN(test_bf16_vocoder);
    RUN(test_graph_flag_cpu);
    RUN(test_channels_last_flag);
    RUN(test_channels_last_shapes);
    RUN(test_step_callbacks);
    RUN(test_generate_euler);
    RUN(test_generate_img2img);
    RUN(test_image_latents);
    RUN(test_video_latents);
    RUN(test_pipeline_config_readings);
    ngpt_context_free(g_ctx);
    RUN(test_alloc_failures);
    return test_done();
}
