/* test_pipeline.c — ngpt_pipeline end to end on the embedded tiny bundle (NGPT_TINY_BUNDLE, set by
 * meson to build/tools/tiny): text + image in -> text + PNG out with a forced image, two turns,
 * the same seed giving the same bytes, a bundle without the image decoder (per-output status,
 * text still returned), cancellation mid-denoise, events, argument errors. */
#include "nextgpt.h"
#include "test.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static ngpt_context *g_ctx;
static const char *g_bundle;
static char g_cat[1024];

static void turn_params(ngpt_pipeline_turn_params *tp)
{
    ngpt_pipeline_turn_params_default(tp, sizeof *tp);
    tp->force = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE);
    tp->max_new_tokens = 12;
    tp->steps = 4;
    tp->seed = 42;
}

/* The index of the (first) image output; -1 when none. The random model may also start groups
 * of its own (a video group, whose decoder is not implemented), so tests look the image up. */
static int32_t image_output(const ngpt_pipeline_result *r)
{
    for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r); i++) {
        ngpt_modality m = NGPT_MODALITY_TEXT;
        ngpt_pipeline_result_output(r, i, &m, NULL, NULL, NULL);
        if (m == NGPT_MODALITY_IMAGE) return i;
    }
    return -1;
}

static void check_png(const ngpt_pipeline_result *r, int32_t i, int32_t size)
{
    CHECK(i >= 0);
    if (i < 0) return;
    ngpt_modality m = NGPT_MODALITY_TEXT;
    const uint8_t *bytes = NULL;
    size_t n = 0;
    const char *fmt = NULL;
    CHECK_OK(ngpt_pipeline_result_output(r, i, &m, &bytes, &n, &fmt));
    CHECK(m == NGPT_MODALITY_IMAGE);
    CHECK(fmt && strcmp(fmt, "png") == 0);
    CHECK(bytes && n > 8 && memcmp(bytes, "\x89PNG", 4) == 0);
    ngpt_image *img = NULL;
    CHECK_OK(ngpt_image_load_memory(&img, bytes, n, "output.png"));
    CHECK(ngpt_image_width(img) == size && ngpt_image_height(img) == size);
    ngpt_image_free(img);
}

static void test_image_turns(void)
{
    ngpt_pipeline *p = NULL;
    CHECK_OK(ngpt_pipeline_create(&p, g_ctx, g_bundle, NULL));
    if (!p) return;
    CHECK(ngpt_pipeline_is_test_model(p) == 1);
    CHECK(ngpt_pipeline_decoder(p, NGPT_MODALITY_IMAGE) == NULL);  /* lazy */
    CHECK(ngpt_pipeline_decoder_path(p, NGPT_MODALITY_IMAGE) != NULL);
    ngpt_pipeline_media m = {NGPT_MODALITY_IMAGE, g_cat, NULL, 0, NULL, NULL};
    ngpt_pipeline_turn_params tp;
    turn_params(&tp);
    ngpt_pipeline_result *r = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r, p, "draw this cat in the snow", &m, 1, &tp));
    if (!r) { ngpt_pipeline_free(p); return; }
    CHECK(ngpt_pipeline_result_text(r, NULL) != NULL);
    CHECK(ngpt_pipeline_result_n_outputs(r) >= 1);
    CHECK(ngpt_pipeline_result_cancelled(r) == 0);
    check_png(r, image_output(r), 64);  /* the tiny UNet's sample_size 8 x the VAE's 8 */
    CHECK(ngpt_pipeline_result_stage_ms(r, NGPT_PIPELINE_STAGE_DECODE) > 0);
    CHECK(ngpt_pipeline_result_stage_ms(r, NGPT_PIPELINE_STAGE_LLM) > 0);
    CHECK(ngpt_pipeline_result_stage_ms(r, NGPT_PIPELINE_STAGE_ENCODE) > 0);
    CHECK(ngpt_pipeline_result_stage_ms(r, (ngpt_pipeline_stage)99) == 0);
    CHECK(ngpt_pipeline_decoder(p, NGPT_MODALITY_IMAGE) != NULL);
    size_t len1 = 0;
    const uint8_t *b1 = NULL;
    ngpt_pipeline_result_output(r, image_output(r), NULL, &b1, &len1, NULL);

    /* a second turn continues the conversation, text only in, image forced out */
    ngpt_pipeline_result *r2 = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r2, p, "now make it bigger", NULL, 0, &tp));
    if (r2) {
        check_png(r2, image_output(r2), 64);
        ngpt_pipeline_result_free(r2);
    }

    /* reset + the same turn with the same seed: the same bytes */
    CHECK_OK(ngpt_pipeline_reset(p));
    ngpt_pipeline_result *r3 = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r3, p, "draw this cat in the snow", &m, 1, &tp));
    if (r3) {
        size_t len3 = 0;
        const uint8_t *b3 = NULL;
        CHECK_OK(ngpt_pipeline_result_output(r3, image_output(r3), NULL, &b3, &len3, NULL));
        CHECK(len3 == len1 && b1 && b3 && memcmp(b1, b3, len1) == 0);
        CHECK(strcmp(ngpt_pipeline_result_text(r3, NULL), ngpt_pipeline_result_text(r, NULL)) == 0);
        ngpt_pipeline_result_free(r3);
    }
    ngpt_pipeline_result_free(r);

    /* errors */
    CHECK_ERR(ngpt_pipeline_turn(NULL, p, "x", NULL, 0, &tp), NGPT_ERR_INVALID_ARGUMENT, "out");
    ngpt_pipeline_media bad = {NGPT_MODALITY_IMAGE, "/nonexistent/cat.jpg", NULL, 0, NULL, NULL};
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", &bad, 1, &tp), NGPT_ERR_NOT_FOUND, "/nonexistent/cat.jpg");
    CHECK(r == NULL);
    ngpt_pipeline_media two = {NGPT_MODALITY_IMAGE, g_cat, "x", 1, NULL, NULL};
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", &two, 1, &tp), NGPT_ERR_INVALID_ARGUMENT, "exactly one");
    tp.force = 1u << 7;
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", NULL, 0, &tp), NGPT_ERR_INVALID_ARGUMENT, "force");
    CHECK_ERR(ngpt_pipeline_result_output(NULL, 0, NULL, NULL, NULL, NULL), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK_OK(ngpt_pipeline_release_decoder(p, NGPT_MODALITY_IMAGE));
    CHECK(ngpt_pipeline_decoder(p, NGPT_MODALITY_IMAGE) == NULL);
    ngpt_pipeline_free(p);
    ngpt_pipeline_free(NULL);
    ngpt_pipeline_result_free(NULL);
}

/* A copy of the bundle whose bundle.json names no image decoder. */
static void write_manifest_without_image(const char *dir)
{
    mkdir(dir, 0755);
    char path[2048];
    snprintf(path, sizeof path, "%s/bundle.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\"format\": \"nextgpt-bundle\", \"version\": 1, \"random_weights\": true,\n"
               " \"llm\": \"%s/llm\", \"delta\": null, \"imagebind\": \"%s/imagebind\",\n"
               " \"projectors\": \"%s/projectors\", \"decoders\": {\"audio\": null}}\n",
            g_bundle, g_bundle, g_bundle);
    fclose(f);
}

static void test_missing_decoder(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/test_pipeline_noimage", getenv("NGPT_BUILD_ROOT") ? getenv("NGPT_BUILD_ROOT") : ".");
    write_manifest_without_image(dir);
    ngpt_pipeline *p = NULL;
    CHECK_OK(ngpt_pipeline_create(&p, g_ctx, dir, NULL));
    if (!p) return;
    ngpt_pipeline_turn_params tp;
    turn_params(&tp);
    ngpt_pipeline_result *r = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r, p, "draw a cat", NULL, 0, &tp));
    if (r) {
        CHECK(ngpt_pipeline_result_text(r, NULL) != NULL);
        int32_t i = image_output(r);
        CHECK(i >= 0);
        const uint8_t *b = (const uint8_t *)"x";
        CHECK_ERR(ngpt_pipeline_result_output(r, i, NULL, &b, NULL, NULL), NGPT_ERR_NOT_FOUND, "no image decoder");
        CHECK(b == NULL);
        CHECK(t_contains(ngpt_pipeline_result_output_message(r, i), "image decoder"));
        ngpt_pipeline_result_free(r);
    }
    ngpt_pipeline_free(p);
    /* a bundle folder without bundle.json */
    CHECK_ERR(ngpt_pipeline_create(&p, g_ctx, "/nonexistent-bundle", NULL), NGPT_ERR_NOT_FOUND, "bundle.json");
    CHECK(p == NULL);
}

typedef struct events {
    int loads, tokens, denoise, outputs, cancel_at;
} events;

static bool on_event(const ngpt_pipeline_event *ev, void *ud)
{
    events *e = ud;
    switch (ev->kind) {
    case NGPT_PIPELINE_EVENT_LOAD: e->loads++; break;
    case NGPT_PIPELINE_EVENT_TOKEN: e->tokens++; break;
    case NGPT_PIPELINE_EVENT_DENOISE:
        e->denoise++;
        if (e->cancel_at && ev->step >= e->cancel_at) return false;
        break;
    case NGPT_PIPELINE_EVENT_OUTPUT: e->outputs++; break;
    default: break;
    }
    return true;
}

static void test_events_and_cancel(void)
{
    ngpt_pipeline *p = NULL;
    ngpt_pipeline_params pp;
    ngpt_pipeline_params_default(&pp, sizeof pp);
    events ce = {0};
    pp.on_event = on_event;
    pp.user_data = &ce;
    pp.preload = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE);
    CHECK_OK(ngpt_pipeline_create(&p, g_ctx, g_bundle, &pp));
    if (!p) return;
    CHECK(ce.loads == 4);  /* language model, imagebind, projectors, image decoder */
    CHECK(ngpt_pipeline_decoder(p, NGPT_MODALITY_IMAGE) != NULL);

    ngpt_pipeline_turn_params tp;
    turn_params(&tp);
    events e = {0};
    tp.on_event = on_event;
    tp.user_data = &e;
    ngpt_pipeline_result *r = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r, p, "a cat", NULL, 0, &tp));
    CHECK_MSG(e.denoise >= tp.steps && e.outputs >= 1, "tokens %d denoise %d outputs %d", e.tokens, e.denoise, e.outputs);
    CHECK(e.tokens >= 1 || ngpt_pipeline_result_text(r, NULL)[0] == 0);  /* streamed text, when there is text */
    ngpt_pipeline_result_free(r);

    /* cancel at the second denoising step: the turn returns its text, the image is cancelled */
    events e2 = {.cancel_at = 2};
    tp.user_data = &e2;
    r = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r, p, "another cat", NULL, 0, &tp));
    if (r) {
        CHECK(ngpt_pipeline_result_cancelled(r) == 1);
        CHECK(e2.denoise == 2);
        CHECK(ngpt_pipeline_result_text(r, NULL) != NULL);
        CHECK_ERR(ngpt_pipeline_result_output(r, image_output(r), NULL, NULL, NULL, NULL), NGPT_ERR_CANCELLED, NULL);
        ngpt_pipeline_result_free(r);
    }

    /* the cancel flag before the turn: no tokens sampled, no image */
    volatile int32_t flag = 1;
    tp.cancel = &flag;
    tp.on_event = NULL;
    r = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r, p, "a third cat", NULL, 0, &tp));
    if (r) {
        CHECK(ngpt_pipeline_result_cancelled(r) == 1);
        ngpt_pipeline_result_free(r);
    }
    ngpt_pipeline_free(p);
}

int main(void)
{
    static char bundle_abs[4096];
    g_bundle = getenv("NGPT_TINY_BUNDLE");
    if (g_bundle && realpath(g_bundle, bundle_abs)) g_bundle = bundle_abs;
    const char *root = getenv("NGPT_SOURCE_ROOT");
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/bundle.json", g_bundle ? g_bundle : ".");
    if (!g_bundle || access(probe, R_OK) != 0) {
        fprintf(stderr, "NGPT_TINY_BUNDLE (the tiny bundle) not found: skipping\n");
        return TEST_SKIP;
    }
    snprintf(g_cat, sizeof g_cat, "%s/data/tiny/cat.jpg", root ? root : ".");
    if (!(g_ctx = test_cpu_context(2))) return 1;
    RUN(test_image_turns);
    RUN(test_missing_decoder);
    RUN(test_events_and_cancel);
    ngpt_context_free(g_ctx);
    return test_done();
}
