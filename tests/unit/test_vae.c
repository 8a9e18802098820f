/* test_vae.c — the VAE and the vocoder through the public decoder API: encoder against our
 * golden case and round-trip sanity, load errors on rewritten copies of the golden models
 * (missing / misshaped / extra tensors, unsupported or bad config keys), argument errors,
 * allocation-failure injection over loading, and the decode's memory peak. */
#include "test.h"
#include "alloc_fail.h"

#include <math.h>
#include "fixture.h"

#include "core/alloc.h"
#include "core/json.h"
#include "core/weights.h"
#include "api/context.h"
#include "models/hifigan.h"
#include "ops/cpu/cpu_ops.h"

#include <sys/stat.h>
#include <unistd.h>

static char g_golden[900], g_src[900], g_tmp[600];
static ngpt_context *g_ctx;

static const char *golden(const char *rel)
{
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_golden, rel);
    return buf[k];
}

static ngpt_status open_dec(ngpt_decoder **d, const char *dir, ngpt_decoder_kind kind, uint32_t comp)
{
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.kind = kind;
    p.components = comp;
    return ngpt_decoder_create(d, g_ctx, dir, &p);
}

static ngpt_tensor f32(int rank, const int64_t *shape, float *data)
{
    ngpt_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = NGPT_DTYPE_F32;
    t.rank = rank;
    for (int i = 0; i < rank; i++) t.shape[i] = shape[i];
    t.data = data;
    return t;
}

/* ---- copies of a golden model with edits ---- */

/* dst/<sub>/ = src/<sub>/ with the edits; dst/model_index.json copied. */
static void make_copy(const char *src, const char *dst, const char *sub, const char *wfile, const test_edit *e)
{
    char a[1400], b[1400];
    mkdir(dst, 0700);
    snprintf(a, sizeof a, "%s/model_index.json", src);
    snprintf(b, sizeof b, "%s/model_index.json", dst);
    test_copy_file(a, b);
    snprintf(a, sizeof a, "%s/%s", src, sub);
    snprintf(b, sizeof b, "%s/%s", dst, sub);
    mkdir(b, 0700);
    test_copy_edited(a, b, wfile, e);
}

static void rm_copy(const char *dst, const char *sub, const char *wfile)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/%s/%s", dst, sub, wfile);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s/config.json", dst, sub);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s", dst, sub);
    rmdir(p);
    snprintf(p, sizeof p, "%s/model_index.json", dst);
    unlink(p);
    rmdir(dst);
}

/* ---- tests ---- */

/* encode against tests/golden/vision/vae.encode/sd_b1_32x32, then decode(mean): shapes, finite,
 * deterministic; logvar optional. */
static void test_encode_roundtrip(void)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/tests/golden/vision/vae.encode/sd_b1_32x32/inputs.safetensors", g_src);
    nx_weights *in = NULL, *ex = NULL;
    CHECK_OK(nx_weights_open(&in, p));
    snprintf(p, sizeof p, "%s/tests/golden/vision/vae.encode/sd_b1_32x32/expected.safetensors", g_src);
    CHECK_OK(nx_weights_open(&ex, p));
    if (!in || !ex) return;
    const nx_wtensor *img = nx_weights_find(in, "image"), *mean_e = nx_weights_find(ex, "mean");
    CHECK(img && mean_e);
    ngpt_decoder *d = NULL;
    CHECK_OK(open_dec(&d, golden("models/sd-a"), NGPT_DECODER_AUTO, NGPT_DECODER_VAE));
    if (d && img && mean_e) {
        ngpt_tensor x = f32(4, img->shape, (float *)img->data), m = {0}, m2 = {0}, lv = {0}, y = {0};
        CHECK_OK(ngpt_decoder_vae_encode(d, &m, &lv, &x));
        CHECK(m.rank == 4 && m.shape[0] == 1 && m.shape[1] == 4 && m.shape[2] == 4 && m.shape[3] == 4);
        CHECK(lv.rank == 4 && lv.shape[1] == 4);
        if (m.data) CHECK(test_close("mean", m.data, mean_e->data, (size_t)ngpt_tensor_numel(&m), 5e-5f, 1e-4f));
        CHECK_OK(ngpt_decoder_vae_encode(d, &m2, NULL, &x));  /* logvar optional, deterministic */
        if (m.data && m2.data) CHECK(memcmp(m.data, m2.data, ngpt_tensor_nbytes(&m)) == 0);
        for (int64_t i = 0; lv.data && i < ngpt_tensor_numel(&lv); i++)
            CHECK(((float *)lv.data)[i] >= -30.0f && ((float *)lv.data)[i] <= 20.0f);
        /* decode(mean): back to the image's size, finite */
        CHECK_OK(ngpt_decoder_vae_decode(d, &y, &m));
        CHECK(y.rank == 4 && y.shape[1] == 3 && y.shape[2] == 32 && y.shape[3] == 32);
        int finite = 1;
        for (int64_t i = 0; y.data && i < ngpt_tensor_numel(&y); i++) finite &= isfinite(((float *)y.data)[i]) != 0;
        CHECK(finite);
        ngpt_tensor_free(&m);
        ngpt_tensor_free(&m2);
        ngpt_tensor_free(&lv);
        ngpt_tensor_free(&y);
    }
    ngpt_decoder_free(d);
    nx_weights_close(in);
    nx_weights_close(ex);
}

static void test_load_errors(void)
{
    char dst[1400];
    snprintf(dst, sizeof dst, "%s/sd", g_tmp);
    const char *sd = golden("models/sd-a");
    const char *W = "diffusion_pytorch_model.safetensors";
    ngpt_decoder *d = NULL;
    struct {
        test_edit e;
        ngpt_status want;
        const char *needle;
    } cases[] = {
        {{.drop = "decoder.mid_block.attentions.0.query.weight"}, NGPT_ERR_NOT_FOUND, "decoder.mid_block.attentions.0.query.weight"},
        {{.drop = "post_quant_conv.bias"}, NGPT_ERR_NOT_FOUND, "post_quant_conv.bias"},
        {{.reshape = "decoder.up_blocks.2.resnets.0.conv1.weight"}, NGPT_ERR_SHAPE_MISMATCH, "decoder.up_blocks.2.resnets.0.conv1.weight"},
        {{.extra = "decoder.something_new.weight"}, NGPT_ERR_UNEXPECTED_TENSOR, "decoder.something_new.weight"},
        {{.cfg_key = "act_fn", .cfg_val = "\"gelu\""}, NGPT_ERR_UNSUPPORTED, "act_fn"},
        {{.cfg_key = "up_block_types", .cfg_val = "[\"UpDecoderBlock2D\",\"AttnUpDecoderBlock2D\",\"UpDecoderBlock2D\",\"UpDecoderBlock2D\"]"},
         NGPT_ERR_UNSUPPORTED, "up_block_types"},
        {{.cfg_key = "use_quant_conv", .cfg_val = "false"}, NGPT_ERR_UNSUPPORTED, "use_quant_conv"},
        {{.cfg_key = "shift_factor", .cfg_val = "0.1159"}, NGPT_ERR_UNSUPPORTED, "shift_factor"},
        {{.cfg_key = "_class_name", .cfg_val = "\"AsymmetricAutoencoderKL\""}, NGPT_ERR_UNSUPPORTED, "_class_name"},
        {{.cfg_key = "norm_num_groups", .cfg_val = "24"}, NGPT_ERR_BAD_FORMAT, "norm_num_groups"},
        {{.cfg_key = "block_out_channels", .cfg_val = "[32, 64]"}, NGPT_ERR_BAD_FORMAT, "down_block_types"},
        {{.cfg_key = "latent_channels", .cfg_val = "\"four\""}, NGPT_ERR_BAD_FORMAT, "latent_channels"},
        {{.cfg_key = "layers_per_block", .cfg_val = "2"}, NGPT_ERR_NOT_FOUND, "decoder.up_blocks.0.resnets.2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        make_copy(sd, dst, "vae", W, &cases[i].e);
        d = NULL;
        CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUTO, NGPT_DECODER_VAE), cases[i].want, cases[i].needle);
        CHECK(d == NULL);
        rm_copy(dst, "vae", W);
    }
    /* a decoder-only checkpoint: loads and decodes; encode names the missing tensor and the
     * decoder stays usable */
    make_copy(sd, dst, "vae", W, &(test_edit){.drop = "quant_conv.weight"});
    CHECK_OK(open_dec(&d, dst, NGPT_DECODER_AUTO, NGPT_DECODER_VAE));
    if (d) {
        float z[1 * 4 * 2 * 2] = {0.1f, -0.2f, 0.3f, 0.4f}, im[1 * 3 * 16 * 16] = {0};
        int64_t zs[4] = {1, 4, 2, 2}, is[4] = {1, 3, 16, 16};
        ngpt_tensor zt = f32(4, zs, z), it = f32(4, is, im), y = {0}, m = {0};
        CHECK_ERR(ngpt_decoder_vae_encode(d, &m, NULL, &it), NGPT_ERR_NOT_FOUND, "quant_conv.weight");
        CHECK_ERR(ngpt_decoder_vae_encode(d, &m, NULL, &it), NGPT_ERR_NOT_FOUND, "quant_conv.weight");
        CHECK_OK(ngpt_decoder_vae_decode(d, &y, &zt));
        CHECK(y.rank == 4 && y.shape[2] == 16);
        ngpt_tensor_free(&y);
        ngpt_decoder_free(d);
        d = NULL;
    }
    rm_copy(dst, "vae", W);

    /* vocoder */
    snprintf(dst, sizeof dst, "%s/al", g_tmp);
    const char *al = golden("models/audioldm-a");
    const char *VW = "model.safetensors";
    struct {
        test_edit e;
        ngpt_status want;
        const char *needle;
    } vc[] = {
        {{.drop = "resblocks.7.convs2.1.weight"}, NGPT_ERR_NOT_FOUND, "resblocks.7.convs2.1.weight"},
        {{.reshape = "upsampler.1.weight"}, NGPT_ERR_SHAPE_MISMATCH, "upsampler.1.weight"},
        {{.extra = "conv_post.extra"}, NGPT_ERR_UNEXPECTED_TENSOR, "conv_post.extra"},
        {{.cfg_key = "model_type", .cfg_val = "\"hifigan_v2\""}, NGPT_ERR_UNSUPPORTED, "model_type"},
        {{.cfg_key = "resblock_kernel_sizes", .cfg_val = "[3, 8, 11]"}, NGPT_ERR_UNSUPPORTED, "resblock_kernel_sizes"},
        {{.cfg_key = "upsample_kernel_sizes", .cfg_val = "[16, 16, 8, 4]"}, NGPT_ERR_BAD_FORMAT, "upsample_kernel_sizes"},
        {{.cfg_key = "resblock_dilation_sizes", .cfg_val = "[[1, 3, 5], [1, 3, 5]]"}, NGPT_ERR_BAD_FORMAT, "resblock_dilation_sizes"},
        {{.drop = "mean", .cfg_key = "normalize_before", .cfg_val = "true"}, NGPT_ERR_NOT_FOUND, "mean"},
    };
    for (size_t i = 0; i < sizeof vc / sizeof *vc; i++) {
        make_copy(al, dst, "vocoder", VW, &vc[i].e);
        d = NULL;
        CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUDIO, NGPT_DECODER_VOCODER), vc[i].want, vc[i].needle);
        CHECK(d == NULL);
        rm_copy(dst, "vocoder", VW);
    }
    /* normalize_before true with the buffers present: loads, and (mel - mean) / scale runs */
    make_copy(al, dst, "vocoder", VW, &(test_edit){.cfg_key = "normalize_before", .cfg_val = "true"});
    CHECK_OK(open_dec(&d, dst, NGPT_DECODER_AUDIO, NGPT_DECODER_VOCODER));
    if (d) {
        float mel[5 * 64];
        for (int i = 0; i < 5 * 64; i++) mel[i] = -5.0f + 0.01f * (float)i;
        int64_t ms[2] = {5, 64};
        ngpt_tensor mt = f32(2, ms, mel), w = {0};
        CHECK_OK(ngpt_decoder_vocoder(d, &w, &mt));
        CHECK(w.rank == 1 && w.shape[0] == 160 * 5 + 32);
        ngpt_tensor_free(&w);
        ngpt_decoder_free(d);
        d = NULL;
    }
    rm_copy(dst, "vocoder", VW);
}

static void test_arg_errors(void)
{
    ngpt_decoder *img = NULL, *aud = NULL;
    CHECK_OK(open_dec(&img, golden("models/sd-a"), NGPT_DECODER_AUTO, NGPT_DECODER_VAE));
    CHECK_OK(open_dec(&aud, golden("models/audioldm-a"), NGPT_DECODER_AUTO, NGPT_DECODER_VAE | NGPT_DECODER_VOCODER));
    if (!img || !aud) {
        ngpt_decoder_free(img);
        ngpt_decoder_free(aud);
        return;
    }
    float buf[2 * 8 * 16 * 64] = {0};
    ngpt_tensor y = {0}, m = {0};
    int64_t s8[4] = {1, 8, 4, 4}, s4[4] = {1, 4, 4, 4}, s3[3] = {4, 4, 4};
    ngpt_tensor t8 = f32(4, s8, buf), t4 = f32(4, s4, buf), t3 = f32(3, s3, buf);
    CHECK_ERR(ngpt_decoder_vae_decode(img, &y, &t8), NGPT_ERR_SHAPE_MISMATCH, "latents");  /* 8 channels on SD */
    CHECK_ERR(ngpt_decoder_vae_decode(aud, &y, &t4), NGPT_ERR_SHAPE_MISMATCH, "latents");  /* 4 on AudioLDM */
    CHECK_ERR(ngpt_decoder_vae_decode(img, &y, &t3), NGPT_ERR_SHAPE_MISMATCH, "latents: expected rank 4, got [4, 4, 4]");       /* rank 3 */
    CHECK(y.data == NULL);
    CHECK_ERR(ngpt_decoder_vae_decode(NULL, &y, &t4), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK_ERR(ngpt_decoder_vae_decode(img, &y, NULL), NGPT_ERR_INVALID_ARGUMENT, NULL);
    /* the vocoder on an image decoder */
    int64_t ms[3] = {1, 4, 64};
    ngpt_tensor mel = f32(3, ms, buf);
    CHECK_ERR(ngpt_decoder_vocoder(img, &y, &mel), NGPT_ERR_UNSUPPORTED, "vocoder");
    ngpt_decoder *bad = NULL;
    CHECK_ERR(open_dec(&bad, golden("models/sd-a"), NGPT_DECODER_AUTO, NGPT_DECODER_VOCODER), NGPT_ERR_INVALID_ARGUMENT,
              "vocoder");
    CHECK(bad == NULL);
    /* a kind the caller names must be model_index.json's */
    CHECK_ERR(open_dec(&bad, golden("models/sd-a"), NGPT_DECODER_AUDIO, NGPT_DECODER_VAE), NGPT_ERR_BAD_FORMAT,
              "describes the image decoder, not the audio one");
    CHECK_ERR(open_dec(&bad, golden("models/audioldm-a"), NGPT_DECODER_IMAGE, NGPT_DECODER_VAE), NGPT_ERR_BAD_FORMAT,
              "describes the audio decoder, not the image one");
    CHECK(bad == NULL);
    /* mel with the wrong n_mels / rank */
    int64_t ms2[3] = {1, 4, 80}, ms4[4] = {1, 2, 4, 64}, ms5[5] = {1, 1, 1, 4, 64};
    ngpt_tensor mel2 = f32(3, ms2, buf), mel4 = f32(4, ms4, buf), mel5 = f32(5, ms5, buf);
    CHECK_ERR(ngpt_decoder_vocoder(aud, &y, &mel2), NGPT_ERR_SHAPE_MISMATCH, "mel");
    CHECK_ERR(ngpt_decoder_vocoder(aud, &y, &mel4), NGPT_ERR_SHAPE_MISMATCH, "got [1, 2, 4, 64]");
    CHECK_ERR(ngpt_decoder_vocoder(aud, &y, &mel5), NGPT_ERR_SHAPE_MISMATCH, "[B, 1, T, n_mels]");
    /* the VAE's [B, 1, T, n_mels] is squeezed as AudioLDMPipeline does: the same waveform */
    for (int i = 0; i < 4 * 64; i++) buf[i] = -4.0f + 0.02f * (float)i;
    int64_t s_vae[4] = {1, 1, 4, 64};
    ngpt_tensor mel_vae = f32(4, s_vae, buf), w3 = {0}, w4 = {0};
    CHECK_OK(ngpt_decoder_vocoder(aud, &w3, &mel));
    CHECK_OK(ngpt_decoder_vocoder(aud, &w4, &mel_vae));
    CHECK(w4.rank == 2 && w4.shape[0] == 1 && w4.shape[1] == w3.shape[1]);
    CHECK(w3.data && w4.data && memcmp(w3.data, w4.data, (size_t)w3.shape[1] * sizeof(float)) == 0);
    ngpt_tensor_free(&w3);
    ngpt_tensor_free(&w4);
    memset(buf, 0, sizeof buf);
    /* encode: wrong channels, size not a multiple of the scale, NULL out */
    int64_t e1[4] = {1, 1, 16, 16}, e2[4] = {1, 3, 12, 16}, e3[4] = {1, 1, 16, 64};
    ngpt_tensor i1 = f32(4, e1, buf), i2 = f32(4, e2, buf), i3 = f32(4, e3, buf);
    CHECK_ERR(ngpt_decoder_vae_encode(img, &m, NULL, &i1), NGPT_ERR_SHAPE_MISMATCH, "image");
    CHECK_ERR(ngpt_decoder_vae_encode(img, &m, NULL, &i2), NGPT_ERR_SHAPE_MISMATCH, "multiples of 8");
    CHECK_ERR(ngpt_decoder_vae_encode(img, NULL, NULL, &i2), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK(m.data == NULL);
    CHECK_OK(ngpt_decoder_vae_encode(aud, &m, NULL, &i3));  /* AudioLDM: 1 channel, scale 4 */
    CHECK(m.rank == 4 && m.shape[1] == 8 && m.shape[2] == 4 && m.shape[3] == 16);
    ngpt_tensor_free(&m);
    ngpt_decoder_free(img);
    ngpt_decoder_free(aud);
}

/* The decode frees as it goes: its peak stays a small multiple of the largest activation. */
static void test_memory_peak(void)
{
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CPU;
    cp.n_threads = 1;
    ngpt_context *ctx = NULL;
    CHECK_OK(ngpt_context_create(&ctx, &cp));
    if (!ctx) return;
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.components = NGPT_DECODER_VAE;
    ngpt_decoder *d = NULL;
    CHECK_OK(ngpt_decoder_create(&d, ctx, golden("models/sd-a"), &p));
    if (d) {
        static float z[1 * 4 * 8 * 8];
        int64_t zs[4] = {1, 4, 8, 8};
        ngpt_tensor zt = f32(4, zs, z), y = {0};
        uint64_t before = ngpt_context_memory_used(ctx);
        CHECK_OK(ngpt_decoder_vae_decode(d, &y, &zt));
        uint64_t peak = ngpt_context_memory_peak(ctx);
        fprintf(stderr, "sd-a decode 8x8 -> 64x64: activation peak %llu bytes\n", (unsigned long long)(peak - before));
        /* largest activation: 64 ch x 64 x 64 after the last upsample of the 64-channel
         * block, 1 MiB; the bound allows input + normed copy + conv output of the widest block */
        uint64_t largest = 64ull * 64 * 64 * 4;
        CHECK_MSG(peak - before <= 3 * largest + 64 * 1024, "decode peak %llu bytes", (unsigned long long)(peak - before));
        CHECK(ngpt_context_memory_used(ctx) == before);  /* nothing left behind */
        ngpt_tensor_free(&y);
    }
    ngpt_decoder_free(d);
    ngpt_context_free(ctx);
}

/* ---- allocation-failure injection over loading ---- */

typedef struct load_args {
    const char *dir;
    uint32_t comp;
    bool encode;
    uint32_t flags; /* NGPT_DECODER_FLAG_* */
} load_args;

static ngpt_status load_free(void *u)
{
    const load_args *a = u;
    ngpt_decoder *d = NULL;
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.components = a->comp;
    p.flags = a->flags;
    ngpt_status s = ngpt_decoder_create(&d, g_ctx, a->dir, &p);
    if (s == NGPT_OK && a->encode) {
        float im[1 * 3 * 8 * 8] = {0};
        int64_t is[4] = {1, 3, 8, 8};
        ngpt_tensor it = f32(4, is, im), m = {0};
        s = ngpt_decoder_vae_encode(d, &m, NULL, &it);
        ngpt_tensor_free(&m);
        if (s == NGPT_OK && (a->flags & NGPT_DECODER_FLAG_CHANNELS_LAST)) { /* and a decode */
            float z[1 * 4 * 1 * 1] = {0};
            int64_t zs[4] = {1, 4, 1, 1};
            ngpt_tensor zt = f32(4, zs, z), y = {0};
            s = ngpt_decoder_vae_decode(d, &y, &zt);
            ngpt_tensor_free(&y);
        }
    }
    ngpt_decoder_free(d);
    return s;
}

static void test_alloc_fail(void)
{
    load_args a = {golden("models/sd-a"), NGPT_DECODER_VAE, false, 0};
    int64_t n = test_alloc_fail_all("sd-a vae", load_free, &a);
    CHECK(n > 5);
    load_args b = {golden("models/audioldm-a"), NGPT_DECODER_VAE | NGPT_DECODER_VOCODER, false, 0};
    n = test_alloc_fail_all("audioldm-a vae+vocoder", load_free, &b);
    CHECK(n > 5);
    /* the CPU backend caches convolution primitives per shape in the context (freed with
     * it): one warm-up encode first, so the counted runs see a populated cache */
    load_args c = {golden("models/sd-a"), NGPT_DECODER_VAE, true, 0};
    CHECK_OK(load_free(&c));
    n = test_alloc_fail_all("sd-a vae + encode", load_free, &c);
    CHECK(n > 5);
    /* channels last: the permuted filters, an encode and a decode (every 5th allocation: all
     * of them took two minutes under ASan) */
    load_args d = {golden("models/sd-a"), NGPT_DECODER_VAE, true, NGPT_DECODER_FLAG_CHANNELS_LAST};
    CHECK_OK(load_free(&d));
    n = test_alloc_fail_stride("sd-a vae channels last + encode + decode", load_free, &d, 5);
    CHECK(n > 20);
}

/* Channels last against NCHW through the public API, decode at odd latent sizes and a round
 * trip's encode: same numbers within F32 rounding (relative to the output's largest value). */
static void test_channels_last(void)
{
    static const struct { const char *model; int64_t z[4]; } k[] = {
        {"models/sd-a", {1, 4, 5, 7}}, {"models/sd-a", {2, 4, 1, 3}}, {"models/audioldm-a", {1, 8, 11, 16}}};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        ngpt_decoder_params p;
        ngpt_decoder_params_default(&p, sizeof p);
        p.components = NGPT_DECODER_VAE;
        ngpt_decoder *a = NULL, *b = NULL;
        CHECK_OK(ngpt_decoder_create(&a, g_ctx, golden(k[i].model), &p));
        p.flags = NGPT_DECODER_FLAG_CHANNELS_LAST;
        CHECK_OK(ngpt_decoder_create(&b, g_ctx, golden(k[i].model), &p));
        if (!a || !b) {
            ngpt_decoder_free(a), ngpt_decoder_free(b);
            continue;
        }
        const int64_t n = k[i].z[0] * k[i].z[1] * k[i].z[2] * k[i].z[3];
        float *z = malloc((size_t)n * sizeof *z);
        test_rng r = {0x9b05688cull + i};
        test_fill(&r, z, (size_t)n, -2.0f, 2.0f);
        ngpt_tensor zt = f32(4, k[i].z, z), ya = {0}, yb = {0};
        CHECK_OK(ngpt_decoder_vae_decode(a, &ya, &zt));
        CHECK_OK(ngpt_decoder_vae_decode(b, &yb, &zt));
        if (ya.data && yb.data && ngpt_tensor_numel(&ya) == ngpt_tensor_numel(&yb)) {
            const double e = test_max_rel_diff(&ya, &yb);
            CHECK_MSG(e < 1e-4, "%s decode [%lld, %lld, %lld, %lld]: channels last differs by %.3g", k[i].model,
                      (long long)k[i].z[0], (long long)k[i].z[1], (long long)k[i].z[2], (long long)k[i].z[3], e);
        }
        if (i == 0 && ya.data && yb.data) { /* the encode of that image, both ways */
            ngpt_tensor ma = {0}, mb = {0};
            CHECK_OK(ngpt_decoder_vae_encode(a, &ma, NULL, &ya));
            CHECK_OK(ngpt_decoder_vae_encode(b, &mb, NULL, &ya));
            const double e = ma.data && mb.data ? test_max_rel_diff(&ma, &mb) : 1.0;
            CHECK_MSG(e < 1e-4, "encode: channels last differs by %.3g", e);
            ngpt_tensor_free(&ma), ngpt_tensor_free(&mb);
        }
        ngpt_tensor_free(&ya), ngpt_tensor_free(&yb);
        free(z);
        ngpt_decoder_free(a), ngpt_decoder_free(b);
    }
}

/* The vocoder channels last (hifigan.c: [B, L, C] activations, the upsamplers as GEMMs over
 * phase-split taps) against the NCW forward of the same folder, in F32 (any CPU) and with BF16
 * filters under the CPU's BF16 compute (a BF16 decoder on an AMX CPU runs that one); a batch of
 * two mels (the GEMM path walks the batch itself) of an odd length; then allocation failures over
 * load + forward + free of the channels-last one. */
typedef struct voc_args {
    const char *dir;
    ngpt_dtype  dt;
    bool        cl;
    nx_tensor  *mel, *wave;
} voc_args;

static ngpt_status voc_run(void *arg)
{
    voc_args *a = arg;
    nx_backend *be = g_ctx->be;
    nx_hifigan *h = NULL;
    ngpt_status s = nx_hifigan_load(&h, be, a->dir, a->dt, a->cl);
    if (s == NGPT_OK) {
        nx_cpu_bf16_scope prev = nx_cpu_bf16_scope_begin(be, a->dt == NGPT_DTYPE_BF16);
        s = nx_hifigan_forward(h, a->wave, a->mel);
        nx_cpu_bf16_scope_end(prev);
    }
    nx_hifigan_free(h);
    return s;
}

static void test_vocoder_layouts(void)
{
    const char *dir = golden("models/audioldm-a/vocoder");
    nx_backend *be = g_ctx->be;
    const int64_t B = 2, T = 13, M = 64, L = 160 * T + 32;
    nx_tensor mel = {0}, w[3] = {{0}};
    CHECK_OK(nx_tensor_alloc(&mel, be, NGPT_DTYPE_F32, 3, (const int64_t[]){B, T, M}));
    for (int i = 0; i < 3; i++) CHECK_OK(nx_tensor_alloc(&w[i], be, NGPT_DTYPE_F32, 2, (const int64_t[]){B, L}));
    if (!mel.data || !w[0].data || !w[1].data || !w[2].data) goto done;
    test_rng r = {0x3c6ef372ull};
    test_fill(&r, mel.data, (size_t)(B * T * M), -8.0f, 0.0f);
    voc_args a[3] = {{dir, NGPT_DTYPE_F32, false, &mel, &w[0]},
                     {dir, NGPT_DTYPE_F32, true, &mel, &w[1]},
                     {dir, NGPT_DTYPE_BF16, true, &mel, &w[2]}};
    for (int i = 0; i < 3; i++) CHECK_OK(voc_run(&a[i]));
    ngpt_tensor o[3];
    for (int i = 0; i < 3; i++) o[i] = f32(2, (const int64_t[]){B, L}, w[i].data);
    const double e32 = test_max_rel_diff(&o[0], &o[1]), e16 = test_max_rel_diff(&o[0], &o[2]);
    CHECK_MSG(e32 < 1e-4, "vocoder channels last (F32) differs from NCW by %.3g", e32);
    CHECK_MSG(e16 > 0 && e16 < 0.05, "vocoder channels last (BF16) differs from NCW F32 by %.3g (want (0, 0.05))", e16);
    voc_args f = {dir, NGPT_DTYPE_BF16, true, &mel, &w[2]};
    int64_t n = test_alloc_fail_stride("vocoder channels last: load + forward", voc_run, &f, 3);
    CHECK(n > 20);
done:
    nx_tensor_free(&mel);
    for (int i = 0; i < 3; i++) nx_tensor_free(&w[i]);
}

int main(void)
{
    const char *g = getenv("NGPT_GOLDEN_DIR");
    const char *root = getenv("NGPT_SOURCE_ROOT");
    if (!root) root = ".";
    snprintf(g_src, sizeof g_src, "%s", root);
    if (g) snprintf(g_golden, sizeof g_golden, "%s", g);
    else snprintf(g_golden, sizeof g_golden, "%s/../shared/golden", root);
    if (access(golden("models/sd-a/vae/config.json"), R_OK) != 0) {
        fprintf(stderr, "golden models not found under %s: skipping\n", g_golden);
        return TEST_SKIP;
    }
    snprintf(g_tmp, sizeof g_tmp, "%s/ngpt_test_vae_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    if (!(g_ctx = test_cpu_context(2))) return 1;
    RUN(test_encode_roundtrip);
    RUN(test_load_errors);
    RUN(test_arg_errors);
    RUN(test_memory_peak);
    RUN(test_alloc_fail);
    RUN(test_channels_last);
    RUN(test_vocoder_layouts);
    ngpt_context_free(g_ctx);
    rmdir(g_tmp);
    return test_done();
}
