/* test_safety.c — Stable Diffusion's safety checker (lib/models/safety_checker.c,
 * lib/api/decoder_safety.c) on the golden model tests/golden/models/sd-b-safety: load errors on
 * edited copies of safety_checker/ and feature_extractor/ (each named), the flag's argument
 * errors, ngpt_decoder_safety_check's inputs (F32 and U8 agree, one image = the batch's first),
 * generate with the checker = generate without it with the flagged images zeroed and the flags in
 * aux, a pipeline with NGPT_PIPELINE_SAFETY_CHECKER against one without, and allocation-failure
 * injection over load + check. The numbers themselves are the golden
 * cases' (sd.safety_checker, sd.generate with "safety_checker": true). */
#include "test.h"
#include "alloc_fail.h"
#include "fixture.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_model[900], g_pipe[900], g_audio[900], g_tmp[800];
static ngpt_context *g_ctx;

static ngpt_status open_dec(ngpt_decoder **d, const char *dir, ngpt_decoder_kind kind, uint32_t flags)
{
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.kind = kind;
    p.flags = flags;
    return ngpt_decoder_create(d, g_ctx, dir, &p);
}

/* dst: model_index.json and unet/vae/scheduler linked to sd-b-safety's, safety_checker/ copied
 * with edit e, feature_extractor/preprocessor_config.json = fe (NULL: sd-b-safety's). */
static void sc_copy(const char *dst, const test_edit *e, const char *fe)
{
    char a[1400], b[1400];
    mkdir(dst, 0700);
    snprintf(a, sizeof a, "%s/model_index.json", g_model);
    snprintf(b, sizeof b, "%s/model_index.json", dst);
    test_copy_file(a, b);
    static const char *const links[] = {"unet", "vae", "scheduler"};
    for (int i = 0; i < 3; i++) {
        char src[1400], abs[PATH_MAX];
        snprintf(src, sizeof src, "%s/%s", g_model, links[i]);
        snprintf(b, sizeof b, "%s/%s", dst, links[i]);
        CHECK(realpath(src, abs) && symlink(abs, b) == 0);
    }
    snprintf(a, sizeof a, "%s/safety_checker", g_model);
    snprintf(b, sizeof b, "%s/safety_checker", dst);
    mkdir(b, 0700);
    test_copy_edited(a, b, "model.safetensors", e);
    snprintf(b, sizeof b, "%s/feature_extractor", dst);
    mkdir(b, 0700);
    snprintf(b, sizeof b, "%s/feature_extractor/preprocessor_config.json", dst);
    if (fe) {
        test_write_text(b, fe);
    } else {
        snprintf(a, sizeof a, "%s/feature_extractor/preprocessor_config.json", g_model);
        test_copy_file(a, b);
    }
}

static void sc_rm(const char *dst)
{
    static const char *const files[] = {"safety_checker/model.safetensors", "safety_checker/config.json",
                                        "safety_checker", "feature_extractor/preprocessor_config.json",
                                        "feature_extractor", "unet", "vae", "scheduler", "model_index.json"};
    char p[1400];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dst, files[i]);
        if (unlink(p) != 0) rmdir(p);
    }
    rmdir(dst);
}

/* sd-b-safety's preprocessor_config.json with `key` set to the JSON text `val`. */
static char *fe_with(const char *key, const char *val)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/feature_extractor/preprocessor_config.json", g_model);
    json_t *j = NULL;
    CHECK_OK(nx_json_load_file(&j, p));
    if (!j) return NULL;
    json_error_t err;
    json_object_set_new(j, key, json_loads(val, JSON_DECODE_ANY, &err));
    char *s = json_dumps(j, 0);
    json_decref(j);
    return s;
}

static void test_load_errors(void)
{
    char dst[900];
    snprintf(dst, sizeof dst, "%s/sc", g_tmp);
    ngpt_decoder *d = NULL;
    const uint32_t F = NGPT_DECODER_FLAG_SAFETY_CHECKER;
#define VM "vision_model.vision_model."
    static const struct {
        test_edit e;
        ngpt_status st;
        const char *needle;
    } cases[] = {
        {{.drop = "concept_embeds"}, NGPT_ERR_NOT_FOUND, "concept_embeds"},
        {{.drop = "special_care_embeds_weights"}, NGPT_ERR_NOT_FOUND, "special_care_embeds_weights"},
        {{.drop = VM "encoder.layers.1.mlp.fc1.weight"}, NGPT_ERR_NOT_FOUND, "layers.1.mlp.fc1.weight"},
        {{.drop = VM "embeddings.class_embedding"}, NGPT_ERR_NOT_FOUND, "class_embedding"},
        {{.reshape = "visual_projection.weight"}, NGPT_ERR_SHAPE_MISMATCH, "visual_projection"},
        {{.reshape = VM "embeddings.position_embedding.weight"}, NGPT_ERR_SHAPE_MISMATCH, "position_embedding"},
        {{.reshape = VM "embeddings.patch_embedding.weight"}, NGPT_ERR_SHAPE_MISMATCH, "patch_embedding"},
        {{.extra_like = "concept_embeds_weights", .extra = "logit_scale"}, NGPT_ERR_UNEXPECTED_TENSOR, "logit_scale"},
        {{.cfg_key = "model_type", .cfg_val = "\"clip_vision_model\""}, NGPT_ERR_UNSUPPORTED, "clip_vision_model"},
        {{.cfg_key = "projection_dim", .cfg_val = "0"}, NGPT_ERR_BAD_FORMAT, "projection_dim"},
        {{.cfg_key = "projection_dim", .cfg_val = "7"}, NGPT_ERR_SHAPE_MISMATCH, "visual_projection"},
        /* vision_config_dict replaces vision_config whole: the defaults (768 wide) then apply */
        {{.cfg_key = "vision_config_dict", .cfg_val = "{\"num_hidden_layers\": 1}"}, NGPT_ERR_SHAPE_MISMATCH,
         "patch_embedding"},
        {{.cfg_key = "vision_config_dict", .cfg_val = "[1]"}, NGPT_ERR_BAD_FORMAT, "vision_config_dict"},
        {{.truncate = true}, NGPT_ERR_BAD_FORMAT, "model.safetensors"},
    };
#undef VM
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sc_copy(dst, &cases[i].e, NULL);
        CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUTO, F), cases[i].st, cases[i].needle);
        CHECK(d == NULL);
        sc_rm(dst);
    }
    /* the processor's settings */
    static const struct {
        const char *key, *val;
        ngpt_status st;
        const char *needle;
    } fe_cases[] = {
        {"resample", "2", NGPT_ERR_UNSUPPORTED, "resample"},
        {"size", "{\"height\": 32, \"width\": 32}", NGPT_ERR_UNSUPPORTED, "shortest_edge"},
        {"size", "{\"longest_edge\": 32}", NGPT_ERR_BAD_FORMAT, "size"},
        {"crop_size", "0", NGPT_ERR_BAD_FORMAT, "crop_size"},
        {"crop_size", "\"big\"", NGPT_ERR_BAD_FORMAT, "crop_size"},
        {"image_mean", "[0.5, 0.5]", NGPT_ERR_BAD_FORMAT, "image_mean"},
        {"image_processor_type", "\"ViTImageProcessor\"", NGPT_ERR_UNSUPPORTED, "ViTImageProcessor"},
    };
    test_edit none = {0};
    for (size_t i = 0; i < sizeof fe_cases / sizeof *fe_cases; i++) {
        char *fe = fe_with(fe_cases[i].key, fe_cases[i].val);
        sc_copy(dst, &none, fe);
        CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUTO, F), fe_cases[i].st, fe_cases[i].needle);
        CHECK(d == NULL);
        sc_rm(dst);
        free(fe);
    }
    sc_copy(dst, &none, "{\"size\": 32,");
    CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUTO, F), NGPT_ERR_BAD_FORMAT, "preprocessor_config.json");
    sc_rm(dst);
    /* a crop other than the vision model's image_size: refused when an image is checked */
    char *fe = fe_with("crop_size", "8");
    sc_copy(dst, &none, fe);
    free(fe);
    CHECK_OK(open_dec(&d, dst, NGPT_DECODER_AUTO, F));
    float px[16 * 16 * 3] = {0};
    ngpt_tensor img = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {1, 16, 16, 3}, .data = px}, nsfw = {0};
    CHECK_ERR(ngpt_decoder_safety_check(d, &nsfw, NULL, NULL, &img), NGPT_ERR_SHAPE_MISMATCH, "8x8");
    CHECK(nsfw.data == NULL);
    ngpt_decoder_free(d);
    d = NULL;
    sc_rm(dst);
    /* a short side of 21 under the 32 crop: transformers pads it into a 32 canvas at 5 and slices from
     * (21 - 32) // 2 + 5 = -1, clipped to 0..31: 31 pixels, which the vision model refuses */
    fe = fe_with("size", "21");
    sc_copy(dst, &none, fe);
    free(fe);
    CHECK_OK(open_dec(&d, dst, NGPT_DECODER_AUTO, F));
    CHECK_ERR(ngpt_decoder_safety_check(d, &nsfw, NULL, NULL, &img), NGPT_ERR_SHAPE_MISMATCH, "into 31x31");
    ngpt_decoder_free(d);
    d = NULL;
    sc_rm(dst);
    /* folders: asked for and missing; the flag on another kind */
    CHECK_ERR(open_dec(&d, g_pipe, NGPT_DECODER_AUTO, F), NGPT_ERR_NOT_FOUND, "safety_checker");
    sc_copy(dst, &none, NULL);
    char p[1400];
    snprintf(p, sizeof p, "%s/feature_extractor/preprocessor_config.json", dst);
    unlink(p);
    snprintf(p, sizeof p, "%s/feature_extractor", dst);
    rmdir(p);
    CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUTO, F), NGPT_ERR_NOT_FOUND, "feature_extractor");
    sc_rm(dst);
    CHECK_ERR(open_dec(&d, g_audio, NGPT_DECODER_AUTO, F), NGPT_ERR_INVALID_ARGUMENT, "image decoders");
    CHECK(d == NULL);
}

/* B images of h x w, uniform in [0, 1] (and exact k / 255 values for a few pixels). */
static float *random_images(int64_t B, int64_t h, int64_t w, uint64_t seed)
{
    size_t n = (size_t)(B * h * w * 3);
    float *x = malloc(n * sizeof *x);
    test_rng r = {seed};
    if (x) test_fill(&r, x, n, 0.0f, 1.0f);
    for (size_t i = 0; x && i < n; i += 7) x[i] = (float)(i % 256) / 255.0f;
    return x;
}

static void test_check_api(void)
{
    ngpt_decoder *d = NULL, *plain = NULL;
    CHECK_OK(open_dec(&d, g_model, NGPT_DECODER_AUTO, NGPT_DECODER_FLAG_SAFETY_CHECKER));
    CHECK_OK(open_dec(&plain, g_model, NGPT_DECODER_AUTO, 0));
    if (!d || !plain) goto out;
    const int64_t B = 3, H = 40, W = 56;
    float *x = random_images(B, H, W, 0x9e3779b9ull);
    uint8_t *u8 = malloc((size_t)(B * H * W * 3));
    if (!x || !u8) goto out_free;
    for (int64_t i = 0; i < B * H * W * 3; i++) u8[i] = (uint8_t)rintf(x[i] * 255.0f);
    ngpt_tensor img = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {B, H, W, 3}, .data = x};
    ngpt_tensor n1 = {0}, s1 = {0}, c1 = {0}, n2 = {0}, s2 = {0}, c2 = {0}, n3 = {0}, c3 = {0};
    CHECK_OK(ngpt_decoder_safety_check(d, &n1, &s1, &c1, &img));
    CHECK(n1.dtype == NGPT_DTYPE_BOOL && n1.rank == 1 && n1.shape[0] == B);
    CHECK(s1.dtype == NGPT_DTYPE_F32 && s1.rank == 2 && s1.shape[0] == B && s1.shape[1] == 3);
    CHECK(c1.dtype == NGPT_DTYPE_F32 && c1.rank == 2 && c1.shape[0] == B && c1.shape[1] == 17);
    /* flagged exactly when a concept score is above 0; scores are multiples of 0.001 */
    for (int64_t b = 0; n1.data && c1.data && b < B; b++) {
        bool any = false;
        for (int k = 0; k < 17; k++) {
            float v = ((float *)c1.data)[b * 17 + k];
            any |= v > 0;
            CHECK(fabsf(v * 1000.0f - rintf(v * 1000.0f)) < 1e-3f);
        }
        CHECK(((bool *)n1.data)[b] == any);
    }
    /* the same images as U8: the same result (F32 images are rounded to 8 bits first) */
    ngpt_tensor img8 = {.dtype = NGPT_DTYPE_U8, .rank = 4, .shape = {B, H, W, 3}, .data = u8};
    CHECK_OK(ngpt_decoder_safety_check(d, &n2, &s2, &c2, &img8));
    CHECK(n2.data && !memcmp(n1.data, n2.data, (size_t)B));
    CHECK(c2.data && !memcmp(c1.data, c2.data, (size_t)(B * 17) * sizeof(float)));
    CHECK(s2.data && !memcmp(s1.data, s2.data, (size_t)(B * 3) * sizeof(float)));
    /* one image, rank 3, scores not asked for: the batch's first */
    ngpt_tensor one = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {H, W, 3}, .data = x};
    CHECK_OK(ngpt_decoder_safety_check(d, &n3, NULL, &c3, &one));
    CHECK(n3.shape[0] == 1 && n3.data && n1.data && ((bool *)n3.data)[0] == ((bool *)n1.data)[0]);
    CHECK(c3.data && c1.data && !memcmp(c3.data, c1.data, 17 * sizeof(float)));
    ngpt_tensor *all[] = {&n1, &s1, &c1, &n2, &s2, &c2, &n3, &c3};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ngpt_tensor_free(all[i]);
    /* bad input */
    ngpt_tensor nsfw = {0};
    x[5] = 1.5f;
    CHECK_ERR(ngpt_decoder_safety_check(d, &nsfw, NULL, NULL, &img), NGPT_ERR_INVALID_ARGUMENT, "[0, 1]");
    x[5] = NAN;
    CHECK_ERR(ngpt_decoder_safety_check(d, &nsfw, NULL, NULL, &img), NGPT_ERR_INVALID_ARGUMENT, "nan");
    x[5] = 0.5f;
    ngpt_tensor rgba = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {1, H, W * 3 / 4, 4}, .data = x};
    CHECK_ERR(ngpt_decoder_safety_check(d, &nsfw, NULL, NULL, &rgba), NGPT_ERR_SHAPE_MISMATCH, "[B, H, W, 3]");
    ngpt_tensor f16 = img;
    f16.dtype = NGPT_DTYPE_F16;
    CHECK_ERR(ngpt_decoder_safety_check(d, &nsfw, NULL, NULL, &f16), NGPT_ERR_SHAPE_MISMATCH, "F16");
    CHECK_ERR(ngpt_decoder_safety_check(d, NULL, NULL, NULL, &img), NGPT_ERR_INVALID_ARGUMENT, "nsfw");
    CHECK_ERR(ngpt_decoder_safety_check(plain, &nsfw, NULL, NULL, &img), NGPT_ERR_UNSUPPORTED, "safety checker");
    CHECK(nsfw.data == NULL);
out_free:
    free(x);
    free(u8);
out:
    ngpt_decoder_free(d);
    ngpt_decoder_free(plain);
}

/* generate with the checker = generate without it, flagged images zeroed, flags in aux */
static void test_generate(void)
{
    ngpt_decoder *d = NULL, *plain = NULL;
    CHECK_OK(open_dec(&d, g_model, NGPT_DECODER_AUTO, NGPT_DECODER_FLAG_SAFETY_CHECKER));
    CHECK_OK(open_dec(&plain, g_model, NGPT_DECODER_AUTO, 0));
    if (!d || !plain) goto out;
    const int64_t B = 4;  /* sd-b's UNet: cross_attention_dim 48 */
    static float cond[4 * 77 * 48];
    test_rng r = {0x243f6a88ull};
    test_fill(&r, cond, sizeof cond / sizeof *cond, -1.0f, 1.0f);
    ngpt_tensor c = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {B, 77, 48}, .data = cond};
    ngpt_decode_params gp;
    ngpt_decode_params_default(&gp, sizeof gp);
    gp.num_inference_steps = 2;
    gp.guidance_scale = 1.0f;
    gp.height = gp.width = 32;
    gp.seed = 7;
    ngpt_tensor a = {0}, b = {0}, flags = {0}, nsfw = {0}, b2 = {0};
    CHECK_OK(ngpt_decoder_generate(plain, &a, NULL, &c, NULL, &gp));
    if (!a.data) goto out;
    CHECK_OK(ngpt_decoder_generate(d, &b, &flags, &c, NULL, &gp));
    CHECK_OK(ngpt_decoder_safety_check(d, &nsfw, NULL, NULL, &a));
    CHECK(flags.dtype == NGPT_DTYPE_BOOL && flags.rank == 1 && flags.shape[0] == B);
    CHECK(flags.data && nsfw.data && !memcmp(flags.data, nsfw.data, (size_t)B));
    const int64_t n = a.shape[1] * a.shape[2] * 3;
    for (int64_t i = 0; b.data && flags.data && i < B; i++) {
        const float *pa = (const float *)a.data + i * n, *pb = (const float *)b.data + i * n;
        bool same = !memcmp(pa, pb, (size_t)n * sizeof(float)), zero = true;
        for (int64_t k = 0; k < n; k++) zero &= pb[k] == 0.0f;
        CHECK(((bool *)flags.data)[i] ? zero : same);
    }
    /* aux may be NULL; a decoder without the checker leaves aux empty */
    CHECK_OK(ngpt_decoder_generate(d, &b2, NULL, &c, NULL, &gp));
    CHECK(b.data && b2.data && !memcmp(b.data, b2.data, (size_t)(B * n) * sizeof(float)));
    ngpt_tensor_free(&b2);
    ngpt_tensor_free(&flags);
    CHECK_OK(ngpt_decoder_generate(plain, &b2, &flags, &c, NULL, &gp));
    CHECK(flags.data == NULL && flags.rank == 0);
    ngpt_tensor *all[] = {&a, &b, &flags, &nsfw, &b2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ngpt_tensor_free(all[i]);
out:
    ngpt_decoder_free(d);
    ngpt_decoder_free(plain);
}

/* The tiny bundle with sd-b-safety's checker beside its image decoder: with
 * NGPT_PIPELINE_SAFETY_CHECKER an image turn gives the plain pipeline's PNG, or a black one when
 * the checker flags that image (ngpt_pipeline_result_output_nsfw). */
static void test_pipeline_flag(void)
{
    const char *tiny = getenv("NGPT_TINY_BUNDLE");
    if (!tiny || access(tiny, R_OK) != 0) {
        fprintf(stderr, "NGPT_TINY_BUNDLE not set or missing: pipeline test skipped\n");
        return;
    }
    char b[1200], p[1400], q[1400];
    snprintf(b, sizeof b, "%s/bundle", g_tmp);
    mkdir(b, 0700);
    snprintf(p, sizeof p, "%s/image", b);
    mkdir(p, 0700);
    static const char *const parts[] = {"unet", "vae", "scheduler", "text_encoder", "tokenizer"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        snprintf(q, sizeof q, "%s/decoders/image/%s", tiny, parts[i]);
        snprintf(p, sizeof p, "%s/image/%s", b, parts[i]);
        if (access(q, R_OK) == 0) CHECK(symlink(q, p) == 0);
    }
    snprintf(q, sizeof q, "%s/decoders/image/model_index.json", tiny);
    snprintf(p, sizeof p, "%s/image/model_index.json", b);
    test_copy_file(q, p);
    static const char *const checker[] = {"safety_checker", "feature_extractor"};
    for (int i = 0; i < 2; i++) {
        snprintf(q, sizeof q, "%s/%s", g_model, checker[i]);
        snprintf(p, sizeof p, "%s/image/%s", b, checker[i]);
        CHECK(symlink(q, p) == 0);
    }
    snprintf(p, sizeof p, "%s/bundle.json", b);
    char manifest[4096];
    snprintf(manifest, sizeof manifest,
             "{\"format\": \"nextgpt-bundle\", \"version\": 1, \"random_weights\": true, \"llm\": \"%s/llm\","
             " \"delta\": null, \"imagebind\": \"%s/imagebind\", \"projectors\": \"%s/projectors\","
             " \"decoders\": {\"image\": \"image\"}}", tiny, tiny, tiny);
    test_write_text(p, manifest);

    ngpt_pipeline_params pp;
    ngpt_pipeline_params_default(&pp, sizeof pp);
    ngpt_pipeline *plain = NULL, *safe = NULL;
    CHECK_OK(ngpt_pipeline_create(&plain, g_ctx, b, &pp));
    pp.flags = NGPT_PIPELINE_SAFETY_CHECKER;
    CHECK_OK(ngpt_pipeline_create(&safe, g_ctx, b, &pp));
    ngpt_pipeline_turn_params tp;
    ngpt_pipeline_turn_params_default(&tp, sizeof tp);
    tp.force = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE);
    tp.max_new_tokens = 8;
    tp.steps = 2;
    ngpt_pipeline_result *r0 = NULL, *r1 = NULL;
    int flagged = 0, passed = 0;
    for (uint64_t seed = 1; plain && safe && seed <= 4; seed++) {
        tp.seed = seed;
        /* each a first turn: a blacked-out image in one history would make the next turns differ */
        CHECK_OK(ngpt_pipeline_reset(plain));
        CHECK_OK(ngpt_pipeline_reset(safe));
        CHECK_OK(ngpt_pipeline_turn(&r0, plain, "draw", NULL, 0, &tp));
        CHECK_OK(ngpt_pipeline_turn(&r1, safe, "draw", NULL, 0, &tp));
        for (int32_t i = 0; r0 && r1 && i < ngpt_pipeline_result_n_outputs(r0); i++) {
            ngpt_modality m;
            const uint8_t *b0 = NULL, *b1 = NULL;
            size_t n0 = 0, n1 = 0;
            if (ngpt_pipeline_result_output(r0, i, &m, &b0, &n0, NULL) != NGPT_OK || m != NGPT_MODALITY_IMAGE) continue;
            CHECK_OK(ngpt_pipeline_result_output(r1, i, NULL, &b1, &n1, NULL));
            CHECK(ngpt_pipeline_result_output_nsfw(r0, i) == 0);
            /* the checker's verdict on the plain PNG's pixels (8-bit, as the pipeline rounds) */
            ngpt_image *img = NULL, *img1 = NULL;
            CHECK_OK(ngpt_image_load_memory(&img, b0, n0, "plain.png"));
            CHECK_OK(ngpt_image_load_memory(&img1, b1, n1, "safe.png"));
            if (!img || !img1) {
                ngpt_image_free(img);
                ngpt_image_free(img1);
                continue;
            }
            const int32_t w = ngpt_image_width(img), h = ngpt_image_height(img);
            ngpt_tensor px = {.dtype = NGPT_DTYPE_U8, .rank = 3, .shape = {h, w, 3}, .data = (void *)ngpt_image_pixels(img)};
            ngpt_tensor nsfw = {0};
            CHECK_OK(ngpt_decoder_safety_check(ngpt_pipeline_decoder(safe, NGPT_MODALITY_IMAGE), &nsfw, NULL, NULL, &px));
            const bool bad = nsfw.data && *(bool *)nsfw.data;
            CHECK(ngpt_pipeline_result_output_nsfw(r1, i) == (bad ? 1 : 0));
            const uint8_t *p1 = ngpt_image_pixels(img1);
            bool black = true;
            for (int64_t k = 0; k < (int64_t)w * h * 3; k++) black &= p1[k] == 0;
            if (bad) CHECK(black);
            else CHECK(n0 == n1 && !memcmp(b0, b1, n0));
            flagged += bad;
            passed += !bad;
            ngpt_tensor_free(&nsfw);
            ngpt_image_free(img);
            ngpt_image_free(img1);
        }
        ngpt_pipeline_result_free(r0);
        ngpt_pipeline_result_free(r1);
        r0 = r1 = NULL;
    }
    fprintf(stderr, "pipeline with the safety checker: %d images flagged, %d passed\n", flagged, passed);
    CHECK(flagged + passed >= 4);
    ngpt_pipeline_free(plain);
    ngpt_pipeline_free(safe);
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        snprintf(p, sizeof p, "%s/image/%s", b, parts[i]);
        unlink(p);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/image/%s", b, checker[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/image/model_index.json", b), unlink(p);
    snprintf(p, sizeof p, "%s/image", b), rmdir(p);
    snprintf(p, sizeof p, "%s/bundle.json", b), unlink(p);
    rmdir(b);
}

static ngpt_status load_check(void *user)
{
    (void)user;
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.components = NGPT_DECODER_VAE;  /* the checker alone would be components 0 = everything */
    p.flags = NGPT_DECODER_FLAG_SAFETY_CHECKER;
    ngpt_decoder *d = NULL;
    ngpt_status s = ngpt_decoder_create(&d, g_ctx, g_model, &p);
    static float x[2 * 20 * 36 * 3];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = (float)(i % 97) / 96.0f;
    ngpt_tensor img = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {2, 20, 36, 3}, .data = x}, n = {0}, c = {0};
    if (s == NGPT_OK) s = ngpt_decoder_safety_check(d, &n, NULL, &c, &img);
    ngpt_tensor_free(&n);
    ngpt_tensor_free(&c);
    ngpt_decoder_free(d);
    return s;
}

static void test_alloc_failures(void)
{
    /* once first: the CPU backend keeps its oneDNN primitives (the patch convolution's) in a cache
     * that lives as long as the context, which the counting run must find filled */
    CHECK_OK(load_check(NULL));
    CHECK(test_alloc_fail_all("safety checker load + check", load_check, NULL) > 20);
}

int main(void)
{
    const char *root = getenv("NGPT_SOURCE_ROOT");
    if (!root) root = ".";
    char p[900];
    snprintf(p, sizeof p, "%s/tests/golden/models/sd-b-safety", root);
    if (access(p, R_OK) != 0) {
        fprintf(stderr, "tests/golden/models/sd-b-safety not found under %s: skipping\n", root);
        return TEST_SKIP;
    }
    /* absolute paths: the links of the edited copies must resolve from the temporary folder */
    static const char *const names[3] = {"sd-b-safety", "sd-b-pipe", "audioldm-b-pipe"};
    char *dst[3] = {g_model, g_pipe, g_audio};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/tests/golden/models/%s", root, names[i]);
        char *rp = realpath(p, NULL);
        snprintf(dst[i], sizeof g_model, "%s", rp ? rp : p);
        free(rp);
    }
    snprintf(g_tmp, sizeof g_tmp, "%s/ngpt_test_safety_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    if (!(g_ctx = test_cpu_context(2))) return 1;
    RUN(test_load_errors);
    RUN(test_check_api);
    RUN(test_generate);
    RUN(test_pipeline_flag);
    RUN(test_alloc_failures);
    ngpt_context_free(g_ctx);
    rmdir(g_tmp);
    return test_done();
}
