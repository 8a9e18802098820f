/* test_pipeline.c — ngpt_pipeline end to end on the embedded tiny bundle (NGPT_TINY_BUNDLE, set by
 * meson to build/tools/tiny): text + image in -> text + PNG out with a forced image, two turns,
 * the same seed giving the same bytes, a bundle without the image decoder (per-output status,
 * text still returned), cancellation mid-denoise, events, argument errors, and generated media
 * re-entering the history (checked against the same conversation built by hand), and the device
 * lock a CUDA context's calls take (forced on a CPU context). */
#include "nextgpt.h"
#include "test.h"
#include "api/context.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
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
    /* per-stage memory: host high-water marks (CPU context: nothing on a device); the LLM stage
     * holds at least the KV cache, the decode stage the UNet's activations; none above the
     * context's all-time peak */
    for (int k = 0; k < NGPT_PIPELINE_STAGE_COUNT; k++) {
        uint64_t host = 1, dev = 1;
        ngpt_pipeline_result_stage_memory(r, (ngpt_pipeline_stage)k, &host, &dev);
        CHECK_MSG(dev == 0, "stage %d: %llu device bytes on a CPU context", k, (unsigned long long)dev);
        CHECK(host <= ngpt_context_memory_peak(g_ctx));
    }
    uint64_t llm = 0, dec = 0, unknown = 1;
    ngpt_pipeline_result_stage_memory(r, NGPT_PIPELINE_STAGE_LLM, &llm, NULL);
    ngpt_pipeline_result_stage_memory(r, NGPT_PIPELINE_STAGE_DECODE, &dec, NULL);
    ngpt_pipeline_result_stage_memory(r, (ngpt_pipeline_stage)99, &unknown, NULL);
    CHECK(llm > 0 && dec > 0 && unknown == 0);
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
    /* an item of no input modality is refused, not dropped (the turn would go on without it) */
    int32_t past = ngpt_backbone_session_n_past(ngpt_pipeline_session(p));
    ngpt_pipeline_media odd[2] = {{NGPT_MODALITY_IMAGE, g_cat, NULL, 0, NULL, NULL},
                                  {(ngpt_modality)42, g_cat, NULL, 0, NULL, NULL}};
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", odd, 2, &tp), NGPT_ERR_INVALID_ARGUMENT, "media[1]: modality 42");
    odd[1].modality = NGPT_MODALITY_TEXT;
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", odd, 2, &tp), NGPT_ERR_INVALID_ARGUMENT, "media[1]: modality 0");
    odd[1] = (ngpt_pipeline_media){NGPT_MODALITY_AUDIO, NULL, NULL, 0, NULL, NULL};
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", odd, 2, &tp), NGPT_ERR_INVALID_ARGUMENT, "media[1] must set exactly one");
    CHECK(r == NULL && ngpt_backbone_session_n_past(ngpt_pipeline_session(p)) == past);
    tp.video_fps = NAN;
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", NULL, 0, &tp), NGPT_ERR_INVALID_ARGUMENT, "video_fps nan");
    tp.video_fps = 0;
    /* decoder settings are checked before the language model runs */
    int32_t before = ngpt_backbone_session_n_past(ngpt_pipeline_session(p));
    tp.steps = -1;
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", NULL, 0, &tp), NGPT_ERR_INVALID_ARGUMENT, "steps -1 in 0..1000");
    tp.steps = 0;
    tp.guidance_scale = NAN;
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", NULL, 0, &tp), NGPT_ERR_INVALID_ARGUMENT, "decoder settings");
    tp.guidance_scale = 0;
    tp.height = 12;
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", NULL, 0, &tp), NGPT_ERR_INVALID_ARGUMENT, "multiples of 8");
    tp.height = 0;
    CHECK(ngpt_backbone_session_n_past(ngpt_pipeline_session(p)) == before);
    tp.force = 1u << 7;
    CHECK_ERR(ngpt_pipeline_turn(&r, p, "x", NULL, 0, &tp), NGPT_ERR_INVALID_ARGUMENT, "force");
    CHECK_ERR(ngpt_pipeline_result_output(NULL, 0, NULL, NULL, NULL, NULL), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK_OK(ngpt_pipeline_release_decoder(p, NGPT_MODALITY_IMAGE));
    CHECK(ngpt_pipeline_decoder(p, NGPT_MODALITY_IMAGE) == NULL);
    ngpt_pipeline_free(p);
    ngpt_pipeline_free(NULL);
    ngpt_pipeline_result_free(NULL);
}

/* A copy of the bundle whose bundle.json names no image decoder; projectors: their folder
 * (NULL: the bundle's). */
static void write_manifest_without_image(const char *dir, const char *projectors)
{
    mkdir(dir, 0755);
    char path[2048];
    snprintf(path, sizeof path, "%s/bundle.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\"format\": \"nextgpt-bundle\", \"version\": 1, \"random_weights\": true,\n"
               " \"llm\": \"%s/llm\", \"delta\": null, \"imagebind\": \"%s/imagebind\",\n"
               " \"projectors\": \"%s%s\", \"decoders\": {\"audio\": null}}\n",
            g_bundle, g_bundle, projectors ? projectors : g_bundle, projectors ? "" : "/projectors");
    fclose(f);
}

static void test_missing_decoder(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/test_pipeline_noimage", getenv("NGPT_BUILD_ROOT") ? getenv("NGPT_BUILD_ROOT") : ".");
    write_manifest_without_image(dir, NULL);
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
    /* parts whose widths do not meet: projectors for a 96-wide LLM beside the 128-wide one */
    char proj[1200];
    const char *root = getenv("NGPT_SOURCE_ROOT");
    snprintf(proj, sizeof proj, "%s/tests/golden/models/projector-b", root ? root : ".");
    write_manifest_without_image(dir, proj);
    p = (ngpt_pipeline *)&p;
    CHECK_ERR(ngpt_pipeline_create(&p, g_ctx, dir, NULL), NGPT_ERR_SHAPE_MISMATCH,
              "projector-b) are for a 96-wide language model");
    CHECK(p == NULL);
    /* a manifest of another format, or of a newer layout, is refused by name (and by the
     * memory estimate), not read as if it were this one */
    static const struct { const char *json; ngpt_status want; const char *msg; } k_heads[] = {
        {"{\"format\": \"other\", \"llm\": \"x\", \"imagebind\": \"x\"}", NGPT_ERR_BAD_FORMAT, "'format'"},
        {"{\"version\": 2, \"llm\": \"x\", \"imagebind\": \"x\"}", NGPT_ERR_UNSUPPORTED, "bundle version 2 is newer"},
        {"{\"version\": \"1\", \"llm\": \"x\", \"imagebind\": \"x\"}", NGPT_ERR_BAD_FORMAT, "'version'"},
    };
    for (size_t k = 0; k < sizeof k_heads / sizeof *k_heads; k++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/bundle.json", dir);
        FILE *f = fopen(path, "w");
        if (f) fputs(k_heads[k].json, f), fclose(f);
        CHECK_ERR(ngpt_pipeline_create(&p, g_ctx, dir, NULL), k_heads[k].want, k_heads[k].msg);
        ngpt_memory_estimate *e = NULL;
        CHECK_ERR(ngpt_pipeline_estimate_memory(&e, dir, NULL), k_heads[k].want, k_heads[k].msg);
    }
    /* a bundle folder without bundle.json */
    CHECK_ERR(ngpt_pipeline_create(&p, g_ctx, "/nonexistent-bundle", NULL), NGPT_ERR_NOT_FOUND, "bundle.json");
    CHECK(p == NULL);
    /* a success leaves the last failure's message as it was */
    write_manifest_without_image(dir, NULL);
    CHECK_OK(ngpt_pipeline_create(&p, g_ctx, dir, NULL));
    CHECK_MSG(t_contains(ngpt_last_error(), "/nonexistent-bundle"), "last error now: %s", ngpt_last_error());
    ngpt_pipeline_free(p);
}

typedef struct events {
    int loads, tokens, denoise, outputs, cancel_at, encodes, cancel_encode, cancel_load;
    int32_t enc_step[4], enc_total[4];
    ngpt_modality enc_mod[4];
} events;

static bool on_event(const ngpt_pipeline_event *ev, void *ud)
{
    events *e = ud;
    switch (ev->kind) {
    case NGPT_PIPELINE_EVENT_LOAD:
        e->loads++;
        if (e->cancel_load && e->loads >= e->cancel_load) return false;
        break;
    case NGPT_PIPELINE_EVENT_TOKEN: e->tokens++; break;
    case NGPT_PIPELINE_EVENT_DENOISE:
        e->denoise++;
        if (e->cancel_at && ev->step >= e->cancel_at) return false;
        break;
    case NGPT_PIPELINE_EVENT_OUTPUT: e->outputs++; break;
    case NGPT_PIPELINE_EVENT_ENCODE:
        if (e->encodes < 4) {
            e->enc_step[e->encodes] = ev->step;
            e->enc_total[e->encodes] = ev->total;
            e->enc_mod[e->encodes] = ev->modality;
        }
        e->encodes++;
        if (e->cancel_encode) return false;
        break;
    default: break;
    }
    return true;
}

/* ---- a turn's event callback calling back into its own pipeline: refused by name (it would
 * free the decoder or the cache the turn is using), and the turn goes on */
typedef struct reenter {
    ngpt_pipeline *p;
    int tried, refused;
} reenter;

static bool reenter_event(const ngpt_pipeline_event *ev, void *ud)
{
    reenter *r = ud;
    if (ev->kind != NGPT_PIPELINE_EVENT_DENOISE && ev->kind != NGPT_PIPELINE_EVENT_TOKEN) return true;
    ngpt_pipeline_result *inner = NULL;
    ngpt_pipeline_turn_params tp;
    turn_params(&tp);
    const ngpt_status got[4] = {
        ngpt_pipeline_release_decoder(r->p, NGPT_MODALITY_IMAGE), ngpt_pipeline_reset(r->p),
        ngpt_pipeline_turn(&inner, r->p, "again", NULL, 0, &tp),
        ngpt_backbone_session_reset(ngpt_pipeline_session(r->p))};
    for (int i = 0; i < 4; i++) {
        r->tried++;
        /* the session is inside the turn only while tokens stream */
        if (got[i] == NGPT_ERR_INVALID_ARGUMENT) r->refused++;
        else if (!(i == 3 && ev->kind == NGPT_PIPELINE_EVENT_DENOISE)) CHECK_MSG(0, "call %d was not refused", i);
    }
    CHECK(inner == NULL);
    CHECK(strstr(ngpt_last_error(), "inside") != NULL);
    ngpt_clear_error();
    return true;
}

static void test_reentry_refused(void)
{
    ngpt_pipeline *p = NULL;
    CHECK_OK(ngpt_pipeline_create(&p, g_ctx, g_bundle, NULL));
    if (!p) return;
    ngpt_pipeline_turn_params tp;
    turn_params(&tp);
    tp.steps = 2;
    reenter re = {p, 0, 0};
    tp.on_event = reenter_event;
    tp.user_data = &re;
    ngpt_pipeline_result *r = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r, p, "a cat", NULL, 0, &tp));
    int32_t img = r ? image_output(r) : -1;
    CHECK(img >= 0 && ngpt_pipeline_result_output(r, img, NULL, NULL, NULL, NULL) == NGPT_OK);
    CHECK_MSG(re.tried > 0 && re.refused >= re.tried * 3 / 4, "tried %d, refused %d", re.tried, re.refused);
    ngpt_pipeline_result_free(r);
    /* after the turn the same calls work */
    CHECK_OK(ngpt_pipeline_release_decoder(p, NGPT_MODALITY_IMAGE));
    CHECK_OK(ngpt_pipeline_reset(p));
    ngpt_pipeline_free(p);
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

    /* cancelled at each load event of create in turn: a named CANCELLED, no handle, no leak */
    static const char *const parts[] = {"language model", "imagebind", "projectors", "image decoder"};
    for (int k = 1; k <= 4; k++) {
        events ke = {.cancel_load = k};
        ngpt_pipeline_params kp = pp;
        kp.user_data = &ke;
        ngpt_pipeline *q = (ngpt_pipeline *)&ke;
        CHECK_ERR(ngpt_pipeline_create(&q, g_ctx, g_bundle, &kp), NGPT_ERR_CANCELLED, parts[k - 1]);
        CHECK(q == NULL && ke.loads == k);
    }

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

    /* cancelled at the first encoded item: the other items are not encoded, the language model
     * does not run (the conversation is as before), the forced image is listed as cancelled */
    events e3 = {.cancel_encode = 1};
    tp.user_data = &e3;
    int32_t past = ngpt_backbone_session_n_past(ngpt_pipeline_session(p));
    ngpt_pipeline_media two[2] = {{NGPT_MODALITY_IMAGE, g_cat, NULL, 0, NULL, NULL},
                                  {NGPT_MODALITY_IMAGE, g_cat, NULL, 0, NULL, NULL}};
    uint32_t force = tp.force;
    tp.force = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE);
    r = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r, p, "and this one?", two, 2, &tp));
    if (r) {
        CHECK(ngpt_pipeline_result_cancelled(r) == 1);
        CHECK(e3.encodes == 1 && e3.tokens == 0 && e3.denoise == 0);
        CHECK(ngpt_pipeline_result_text(r, NULL)[0] == 0);
        CHECK(ngpt_backbone_session_n_past(ngpt_pipeline_session(p)) == past);
        CHECK(ngpt_pipeline_result_n_outputs(r) == 1);
        CHECK_ERR(ngpt_pipeline_result_output(r, image_output(r), NULL, NULL, NULL, NULL), NGPT_ERR_CANCELLED, NULL);
        ngpt_pipeline_result_free(r);
    }
    tp.force = force;

    /* ENCODE events count the items as they are encoded, images first: [audio, image] gives
     * steps 1 (image), 2 (audio) of 2 */
    float *tone = calloc(16000, sizeof *tone);
    ngpt_audio *snd = NULL;
    for (int i = 0; tone && i < 16000; i++) tone[i] = 0.3f * sinf(0.0628f * (float)i);
    if (tone) CHECK_OK(ngpt_audio_from_pcm(&snd, tone, 16000, 1, 16000));
    free(tone);
    if (snd) {
        events e4 = {0};
        ngpt_pipeline_media mixed[2] = {{NGPT_MODALITY_AUDIO, NULL, NULL, 0, NULL, snd},
                                        {NGPT_MODALITY_IMAGE, g_cat, NULL, 0, NULL, NULL}};
        ngpt_pipeline_turn_params tp4 = tp;
        tp4.user_data = &e4;
        tp4.force = 0;
        tp4.max_new_tokens = 1;
        r = NULL;
        CHECK_OK(ngpt_pipeline_turn(&r, p, "both?", mixed, 2, &tp4));
        CHECK_MSG(e4.encodes == 2 && e4.enc_step[0] == 1 && e4.enc_step[1] == 2 && e4.enc_total[0] == 2 &&
                  e4.enc_total[1] == 2 && e4.enc_mod[0] == NGPT_MODALITY_IMAGE && e4.enc_mod[1] == NGPT_MODALITY_AUDIO,
                  "encode events: %d, steps %d %d of %d %d, modalities %d %d", e4.encodes, e4.enc_step[0],
                  e4.enc_step[1], e4.enc_total[0], e4.enc_total[1], (int)e4.enc_mod[0], (int)e4.enc_mod[1]);
        ngpt_pipeline_result_free(r);
        ngpt_audio_free(snd);
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

/* ---- generated media re-entering the history (nextgpt-facts §1.4) ----
 * The pipeline's conversation is rebuilt by hand on a second session of the same backbone with
 * the stage API: the same turn, then the pipeline's own output re-encoded as the demo's saved
 * file (PNG -> pixels -> JPEG quality 75 -> ImageBind -> input projector) and spliced with
 * ngpt_backbone_add_assistant_media. The pipeline's session must then hold the same positions
 * (n_past = prompt + {<Img> soft </Img>} + [BOS] + the answer's text ids) with the same logits,
 * and its next turn must answer as the hand-built one does. A control built with another image
 * (cat.jpg) must not match, and a pipeline with NGPT_PIPELINE_NO_MEDIA_HISTORY keeps the answer
 * as generated. */

/* The soft token [n_embd] of an image through ImageBind + the input projector. */
static int soft_of_image(ngpt_pipeline *p, const ngpt_image *img, float *row)
{
    ngpt_tensor emb = {0}, tok = {0};
    int ok = 0;
    CHECK_OK(ngpt_encoder_encode_image(ngpt_pipeline_encoder(p), &emb, img));
    if (emb.data) {
        ngpt_tensor f = {NGPT_DTYPE_F32, 2, {1, emb.shape[1]}, emb.data, NULL};
        CHECK_OK(ngpt_projector_input_sum(ngpt_pipeline_projector(p), &tok, &f));
        if (tok.data) {
            memcpy(row, tok.data, (size_t)ngpt_backbone_n_embd(ngpt_pipeline_backbone(p)) * sizeof(float));
            ok = 1;
        }
    }
    ngpt_tensor_free(&emb);
    ngpt_tensor_free(&tok);
    return ok;
}

/* The demo's re-read of a generated image: PNG bytes -> JPEG (PIL's default quality 75) -> pixels. */
static ngpt_image *as_demo_jpeg(const uint8_t *png, size_t n)
{
    ngpt_image *img = NULL, *back = NULL;
    ngpt_blob *jpg = NULL;
    CHECK_OK(ngpt_image_load_memory(&img, png, n, "output.png"));
    if (img) CHECK_OK(ngpt_image_encode(&jpg, img, NGPT_IMAGE_FORMAT_JPEG, 75, 0));
    if (jpg) CHECK_OK(ngpt_image_load_memory(&back, ngpt_blob_data(jpg), ngpt_blob_size(jpg), "generated.jpg"));
    ngpt_blob_free(jpg);
    ngpt_image_free(img);
    return back;
}

static void test_media_history(void)
{
    ngpt_pipeline *p = NULL, *q = NULL;
    ngpt_pipeline_params pp;
    ngpt_pipeline_params_default(&pp, sizeof pp);
    pp.flags = 1u << 9;
    CHECK_ERR(ngpt_pipeline_create(&p, g_ctx, g_bundle, &pp), NGPT_ERR_INVALID_ARGUMENT, "flags");
    pp.flags = 0; /* compute dtype: F16 is a CUDA option (BF16 the CPU takes), and only float dtypes exist */
    pp.compute_dtype = NGPT_DTYPE_F16;
    CHECK_ERR(ngpt_pipeline_create(&p, g_ctx, g_bundle, &pp), NGPT_ERR_UNSUPPORTED, "needs a CUDA context");
    pp.compute_dtype = NGPT_DTYPE_I32;
    CHECK_ERR(ngpt_pipeline_create(&p, g_ctx, g_bundle, &pp), NGPT_ERR_INVALID_ARGUMENT, "compute_dtype I32");
    CHECK(p == NULL);
    pp.compute_dtype = NGPT_DTYPE_F32;
    CHECK_OK(ngpt_pipeline_create(&p, g_ctx, g_bundle, NULL));
    pp.flags = NGPT_PIPELINE_NO_MEDIA_HISTORY;
    CHECK_OK(ngpt_pipeline_create(&q, g_ctx, g_bundle, &pp));
    if (!p || !q) { ngpt_pipeline_free(p); ngpt_pipeline_free(q); return; }
    ngpt_backbone *bb = ngpt_pipeline_backbone(p);
    const int32_t H = ngpt_backbone_n_embd(bb), V = ngpt_backbone_n_vocab(bb);
    ngpt_backbone_session *ps = ngpt_pipeline_session(p), *qs = ngpt_pipeline_session(q);
    CHECK(ps != NULL && qs != NULL && ngpt_pipeline_session(NULL) == NULL);

    ngpt_pipeline_turn_params tp;
    turn_params(&tp);
    tp.temperature = 0;  /* greedy: the hand-built session must choose the same ids */
    ngpt_pipeline_result *r = NULL, *rq = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r, p, "draw a cat", NULL, 0, &tp));
    CHECK_OK(ngpt_pipeline_turn(&rq, q, "draw a cat", NULL, 0, &tp));
    ngpt_backbone_session *s = NULL, *s2 = NULL;
    ngpt_backbone_session_params sp;
    ngpt_backbone_session_params_default(&sp, sizeof sp);
    sp.n_ctx = ngpt_backbone_n_ctx(bb) < 2048 ? ngpt_backbone_n_ctx(bb) : 2048;
    CHECK_OK(ngpt_backbone_session_create(&s, bb, &sp));
    CHECK_OK(ngpt_backbone_session_create(&s2, bb, &sp));
    float *rows = calloc((size_t)4 * (size_t)H, sizeof(float));
    float *cat_row = calloc((size_t)H, sizeof(float));
    ngpt_turn_result *tr = NULL, *tr2 = NULL;
    if (!r || !rq || !s || !s2 || !rows || !cat_row) goto done;

    /* which outputs re-entered: every produced one (the image at least), in output order */
    int32_t k = -1, n_ok = 0, kq = -1;
    for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r); i++)
        n_ok += ngpt_pipeline_result_output(r, i, NULL, NULL, NULL, NULL) == NGPT_OK;
    ngpt_clear_error();
    CHECK_OK(ngpt_pipeline_result_history(r, &k));
    CHECK_MSG(k == n_ok && k >= 1, "history media %d, produced outputs %d", k, n_ok);
    CHECK_OK(ngpt_pipeline_result_history(rq, &kq));
    CHECK(kq == 0);
    CHECK_ERR(ngpt_pipeline_result_history(NULL, &kq), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK(strcmp(ngpt_pipeline_result_text(r, NULL), ngpt_pipeline_result_text(rq, NULL)) == 0);

    /* the same turn by hand */
    ngpt_turn_params ttp;
    ngpt_turn_params_default(&ttp, sizeof ttp);
    ttp.temperature = 0;
    ttp.top_p = tp.top_p;
    ttp.seed = tp.seed;
    ttp.max_new_tokens = tp.max_new_tokens;
    ttp.require_modalities = NGPT_MODALITY_BIT(NGPT_MODALITY_IMAGE);
    CHECK_OK(ngpt_backbone_turn(&tr, s, "draw a cat", NULL, 0, &ttp));
    if (!tr) goto done;
    size_t alen = 0;
    const char *answer = ngpt_turn_result_text(tr, &alen);
    CHECK(strcmp(answer, ngpt_pipeline_result_text(r, NULL)) == 0);
    /* without re-entry the cache holds the answer as generated: the hand session before splicing */
    CHECK_MSG(ngpt_backbone_session_n_past(qs) == ngpt_backbone_session_n_past(s), "no-history n_past %d, hand %d",
              ngpt_backbone_session_n_past(qs), ngpt_backbone_session_n_past(s));

    /* the pipeline's outputs as the demo re-reads them */
    ngpt_turn_media tm[4];
    int32_t n = 0, only_images = 1;
    for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r) && n < 4; i++) {
        ngpt_modality m = NGPT_MODALITY_TEXT;
        const uint8_t *bytes = NULL;
        size_t nb = 0;
        if (ngpt_pipeline_result_output(r, i, &m, &bytes, &nb, NULL) != NGPT_OK) continue;
        if (m != NGPT_MODALITY_IMAGE) { only_images = 0; continue; }
        ngpt_image *img = as_demo_jpeg(bytes, nb);
        if (img && soft_of_image(p, img, rows + (size_t)n * (size_t)H))
            tm[n] = (ngpt_turn_media){NGPT_MODALITY_IMAGE, rows + (size_t)n * (size_t)H, 1}, n++;
        ngpt_image_free(img);
    }
    CHECK_MSG(only_images, "the greedy tiny model produced a non-image output: adjust the prompt");
    CHECK(n == k);
    if (n < 1 || !only_images) goto done;
    int32_t n_prompt = ngpt_turn_result_n_prompt(tr);
    CHECK_OK(ngpt_backbone_add_assistant_media(s, tm, (size_t)n));

    /* positions: the prompt, then <Img> soft </Img> per medium, then [BOS] + the answer's ids */
    size_t n_text = 0;
    if (alen) ngpt_tokenizer_encode(ngpt_backbone_tokenizer(bb), answer, alen, 0, NULL, 0, &n_text);
    int32_t want = n_prompt + 3 * n + (alen ? 1 + (int32_t)n_text : 0);
    CHECK_MSG(ngpt_backbone_session_n_past(ps) == want && ngpt_backbone_session_n_past(s) == want,
              "n_past pipeline %d, hand %d, expected %d", ngpt_backbone_session_n_past(ps),
              ngpt_backbone_session_n_past(s), want);
    int32_t nr1 = 0, nr2 = 0;
    const float *lp = ngpt_backbone_get_logits(ps, &nr1), *ls = ngpt_backbone_get_logits(s, &nr2);
    CHECK(lp && ls && nr1 == 1 && nr2 == 1);
    if (lp && ls) {
        float d = test_max_abs_diff(lp, ls, V);
        CHECK_MSG(d < 1e-4f, "logits after re-entry: max |diff| %g", (double)d);
        fprintf(stderr, "     media history: %d medium, n_past %d (answer as generated: %d), answer %zu bytes, "
                "logits vs hand-built max |diff| %g\n", (int)n, (int)want, (int)ngpt_backbone_session_n_past(qs),
                alen, (double)d);
    }

    /* control: the same splice with another image (cat.jpg) gives other logits */
    ngpt_image *cat = NULL;
    CHECK_OK(ngpt_image_load(&cat, g_cat));
    if (cat && soft_of_image(p, cat, cat_row)) {
        CHECK_OK(ngpt_backbone_turn(&tr2, s2, "draw a cat", NULL, 0, &ttp));
        ngpt_turn_media cm[4];
        for (int32_t i = 0; i < n; i++) cm[i] = (ngpt_turn_media){NGPT_MODALITY_IMAGE, cat_row, 1};
        CHECK_OK(ngpt_backbone_add_assistant_media(s2, cm, (size_t)n));
        const float *lc = ngpt_backbone_get_logits(s2, NULL);
        if (lc && lp) {
            float d = test_max_abs_diff(lp, lc, V);
            CHECK_MSG(d > 1e-3f, "logits with another image: max |diff| only %g", (double)d);
            fprintf(stderr, "     control (cat.jpg instead): max |diff| %g\n", (double)d);
        }
    }
    ngpt_image_free(cat);

    /* the next turn sees the generated image: the pipeline answers as the hand-built history */
    ngpt_pipeline_result *r2 = NULL;
    tp.force = 0;
    ngpt_turn_result *t2 = NULL;
    ttp.require_modalities = 0;
    CHECK_OK(ngpt_pipeline_turn(&r2, p, "what did you draw?", NULL, 0, &tp));
    CHECK_OK(ngpt_backbone_turn(&t2, s, "what did you draw?", NULL, 0, &ttp));
    if (r2 && t2) {
        CHECK(strcmp(ngpt_pipeline_result_text(r2, NULL), ngpt_turn_result_text(t2, NULL)) == 0);
        CHECK_MSG(ngpt_backbone_session_n_past(ps) == ngpt_backbone_session_n_past(s) ||
                  ngpt_pipeline_result_n_outputs(r2) > 0, "turn 2 n_past pipeline %d, hand %d",
                  ngpt_backbone_session_n_past(ps), ngpt_backbone_session_n_past(s));
    }
    ngpt_pipeline_result_free(r2);
    ngpt_turn_result_free(t2);

    /* reset forgets it */
    CHECK_OK(ngpt_pipeline_reset(p));
    CHECK(ngpt_backbone_session_n_past(ps) == 0);

    /* every modality re-enters: image (JPEG), audio (the samples), video (the MP4 bytes) */
    tp.force = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE) | NGPT_PIPELINE_FORCE(NGPT_MODALITY_AUDIO) |
               NGPT_PIPELINE_FORCE(NGPT_MODALITY_VIDEO);
    tp.steps = 1;
    tp.num_frames = 2;        /* small: this runs under the sanitizers too */
    tp.audio_length_s = 0.5;
    tp.max_new_tokens = 2;
    ngpt_pipeline_result *r3 = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r3, p, "a cat, its purr and a clip of it", NULL, 0, &tp));
    if (r3) {
        int32_t ok = 0, seen = 0, kh = -1;
        for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r3); i++) {
            ngpt_modality m = NGPT_MODALITY_TEXT;
            if (ngpt_pipeline_result_output(r3, i, &m, NULL, NULL, NULL) == NGPT_OK) ok++, seen |= 1 << m;
        }
        ngpt_clear_error();
        CHECK_OK(ngpt_pipeline_result_history(r3, &kh));
        CHECK_MSG(seen == 0xE && kh == ok, "produced modalities 0x%x, %d outputs, %d in the history", seen, ok, kh);
        ngpt_pipeline_result_free(r3);
    }
done:
    ngpt_turn_result_free(tr);
    ngpt_turn_result_free(tr2);
    free(rows);
    free(cat_row);
    ngpt_backbone_session_free(s);
    ngpt_backbone_session_free(s2);
    ngpt_pipeline_result_free(r);
    ngpt_pipeline_result_free(rq);
    ngpt_pipeline_free(p);
    ngpt_pipeline_free(q);
}

/* compute_dtype BF16 on the CPU: the backbone's prompt linears, ImageBind and the decoders'
 * UNet and VAE in the CPU's BF16 compute; a turn makes all three media */
static void test_bf16_cpu(void)
{
    ngpt_pipeline_params pp;
    ngpt_pipeline_params_default(&pp, sizeof pp);
    pp.compute_dtype = NGPT_DTYPE_BF16;
    ngpt_pipeline *p = NULL;
    CHECK_OK(ngpt_pipeline_create(&p, g_ctx, g_bundle, &pp));
    if (!p) return;
    ngpt_pipeline_turn_params tp;
    turn_params(&tp);
    tp.force = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE) | NGPT_PIPELINE_FORCE(NGPT_MODALITY_AUDIO) |
               NGPT_PIPELINE_FORCE(NGPT_MODALITY_VIDEO);
    tp.steps = 1;
    tp.num_frames = 2;
    tp.audio_length_s = 0.5;
    tp.max_new_tokens = 2;
    ngpt_pipeline_media in = {.modality = NGPT_MODALITY_IMAGE, .path = g_cat};
    ngpt_pipeline_result *r = NULL;
    CHECK_OK(ngpt_pipeline_turn(&r, p, "a cat, its purr and a clip of it", &in, 1, &tp));
    if (r) {
        int32_t seen = 0;
        for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r); i++) {
            ngpt_modality m = NGPT_MODALITY_TEXT;
            const uint8_t *bytes = NULL;
            size_t n = 0;
            if (ngpt_pipeline_result_output(r, i, &m, &bytes, &n, NULL) == NGPT_OK && bytes && n > 0) seen |= 1 << m;
        }
        ngpt_clear_error();
        CHECK_MSG(seen == 0xE, "BF16 turn produced modalities 0x%x", seen);
        ngpt_pipeline_result_free(r);
    }
    ngpt_pipeline_free(p);
}


/* A forced image near the end of the context: the text stops early enough to leave its 4 signal
 * tokens room (before, the text ran to the end and the image was dropped without a word); when
 * the prompt itself leaves no room, the image is an output that failed, with a message. Prompts
 * of growing length in a 96-position context, until the turn no longer fits at all. */
static void test_forced_at_context_end(void)
{
    ngpt_pipeline_params pp;
    ngpt_pipeline_params_default(&pp, sizeof pp);
    pp.n_ctx = 96;
    ngpt_pipeline *p = NULL;
    CHECK_OK(ngpt_pipeline_create(&p, g_ctx, g_bundle, &pp));
    if (!p) return;
    CHECK(ngpt_backbone_session_n_ctx(ngpt_pipeline_session(p)) == 96);
    ngpt_pipeline_turn_params tp;
    turn_params(&tp);
    tp.steps = 1;
    tp.max_new_tokens = 200; /* the context, not max_new_tokens, ends the text */
    int produced = 0, unmet = 0, too_long = 0;
    char prompt[1024] = "";
    for (int words = 40; words < 100 && !too_long; words++) {
        strcat(prompt, "word ");
        ngpt_pipeline_reset(p);
        ngpt_pipeline_result *r = NULL;
        if (ngpt_pipeline_turn(&r, p, prompt, NULL, 0, &tp) != NGPT_OK) {
            too_long = words;  /* the prompt alone overflows the context */
            ngpt_clear_error();
            break;
        }
        int32_t img = image_output(r);
        CHECK_MSG(img >= 0, "%d words: the forced image has no output at all", words);
        if (img >= 0) {
            ngpt_modality m;
            const uint8_t *bytes = NULL;
            size_t n = 0;
            ngpt_status st = ngpt_pipeline_result_output(r, img, &m, &bytes, &n, NULL);
            if (st == NGPT_OK) {
                produced++;
            } else {
                unmet++;
                const char *msg = ngpt_pipeline_result_output_message(r, img);
                CHECK_MSG(st == NGPT_ERR_INVALID_ARGUMENT && msg && strstr(msg, "does not fit") && strstr(msg, "96"),
                          "%d words: %s: %s", words, ngpt_status_string(st), msg ? msg : "(no message)");
            }
        }
        ngpt_pipeline_result_free(r);
    }
    fprintf(stderr, "  forced image at the end of a 96-position context: produced %d, unmet %d, prompt too long at "
            "%d words\n", produced, unmet, too_long);
    CHECK(produced > 0 && unmet > 0 && unmet <= 4 && too_long > 0);
    ngpt_pipeline_free(p);
}

/* ---- the device lock (context.h): a CUDA context's public calls take turns; here a CPU
 * context is made to take it too. A pipeline turn runs through the stage handles' own calls
 * (the lock is recursive); a decoder generate holds it for all its steps, so another thread's
 * encode that starts during step 1 ends after the last step; the step callback may call the
 * same context's handles from its own thread. */
typedef struct lock_run {
    ngpt_encoder *enc;
    ngpt_decoder *dec;
    ngpt_image *img;
    const ngpt_tensor *cond;
    int steps_done;      /* A's steps, atomically */
    int total;           /* its step count (PNDM: 3 steps are 4 timesteps) */
    int a_inside;        /* A is in step 1's callback */
    int steps_at_b_done; /* A's steps when B's encode returned */
    ngpt_status a_status, b_status, nested_status;
    ngpt_tensor a_out, b_out;
} lock_run;

static bool lock_on_step(int32_t step, int32_t total, float elapsed, void *user)
{
    (void)elapsed;
    lock_run *L = user;
    L->total = total;
    if (step == 1) {
        ngpt_tensor e = {0};
        L->nested_status = ngpt_encoder_encode_image(L->enc, &e, L->img); /* the same thread: no deadlock */
        ngpt_tensor_free(&e);
        __atomic_store_n(&L->a_inside, 1, __ATOMIC_SEQ_CST);
        struct timespec ts = {0, 300 * 1000 * 1000}; /* B's encode would end here without the lock */
        nanosleep(&ts, NULL);
    }
    __atomic_store_n(&L->steps_done, step, __ATOMIC_SEQ_CST);
    return true;
}

static void *lock_thread_a(void *arg)
{
    lock_run *L = arg;
    ngpt_decode_params gp;
    ngpt_decode_params_default(&gp, sizeof gp);
    gp.num_inference_steps = 3;
    gp.seed = 3;
    gp.on_step = lock_on_step;
    gp.user_data = L;
    L->a_status = ngpt_decoder_generate(L->dec, &L->a_out, NULL, L->cond, NULL, &gp);
    return NULL;
}

static void *lock_thread_b(void *arg)
{
    lock_run *L = arg;
    while (!__atomic_load_n(&L->a_inside, __ATOMIC_SEQ_CST)) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    L->b_status = ngpt_encoder_encode_image(L->enc, &L->b_out, L->img);
    L->steps_at_b_done = __atomic_load_n(&L->steps_done, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_device_lock(void)
{
    ngpt_context *ctx = test_cpu_context(2);
    if (!ctx) return;
    nx_context_set_serialize(ctx, true);
    ngpt_pipeline *p = NULL;
    CHECK_OK(ngpt_pipeline_create(&p, ctx, g_bundle, NULL));
    ngpt_image *img = NULL;
    CHECK_OK(ngpt_image_load(&img, g_cat));
    ngpt_pipeline_media m = {NGPT_MODALITY_IMAGE, g_cat, NULL, 0, NULL, NULL};
    ngpt_pipeline_turn_params tp;
    turn_params(&tp);
    ngpt_pipeline_result *r = NULL;
    if (p) CHECK_OK(ngpt_pipeline_turn(&r, p, "draw this cat", &m, 1, &tp));
    if (r) check_png(r, image_output(r), 64);
    ngpt_pipeline_result_free(r);
    lock_run L = {0};
    L.enc = p ? ngpt_pipeline_encoder(p) : NULL;
    L.dec = p ? ngpt_pipeline_decoder(p, NGPT_MODALITY_IMAGE) : NULL;
    L.img = img;
    ngpt_tensor cond = {0}, alone = {0};
    if (L.dec) { /* the pipeline released the text encoder: any [1, 77, D] conditioning */
        const int64_t cs[3] = {1, 77, ngpt_decoder_text_hidden_size(L.dec)};
        CHECK_OK(ngpt_tensor_create(&cond, NGPT_DTYPE_F32, 3, cs));
        for (int64_t i = 0; cond.data && i < ngpt_tensor_numel(&cond); i++) ((float *)cond.data)[i] = (float)(i % 7) / 7.0f;
    }
    if (L.enc && img) CHECK_OK(ngpt_encoder_encode_image(L.enc, &alone, img));
    L.cond = &cond;
    if (L.enc && L.dec && cond.data && alone.data) {
        pthread_t a, b;
        CHECK(pthread_create(&a, NULL, lock_thread_a, &L) == 0);
        CHECK(pthread_create(&b, NULL, lock_thread_b, &L) == 0);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        CHECK(L.a_status == NGPT_OK && L.b_status == NGPT_OK && L.nested_status == NGPT_OK);
        CHECK_MSG(L.total >= 3 && L.steps_at_b_done == L.total, "the other thread's encode returned after %d of "
                  "%d steps: the generate call did not hold the device lock", L.steps_at_b_done, L.total);
        CHECK(L.b_out.data && ngpt_tensor_nbytes(&L.b_out) == ngpt_tensor_nbytes(&alone) &&
              !memcmp(L.b_out.data, alone.data, ngpt_tensor_nbytes(&alone)));
    }
    ngpt_tensor_free(&L.a_out);
    ngpt_tensor_free(&L.b_out);
    ngpt_tensor_free(&cond);
    ngpt_tensor_free(&alone);
    ngpt_image_free(img);
    ngpt_pipeline_free(p);
    ngpt_context_free(ctx);
}

/* A bundle named relative to the working directory still loads its decoders lazily after the
 * caller changes directory, and its decoder paths are absolute. */
static void test_relative_bundle(void)
{
    char cwd[4096], parent[4096];
    if (!getcwd(cwd, sizeof cwd)) return;
    snprintf(parent, sizeof parent, "%s", g_bundle);
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent) return;
    *slash = '\0';
    ngpt_pipeline *p = NULL;
    if (chdir(parent) == 0) {
        CHECK_OK(ngpt_pipeline_create(&p, g_ctx, slash + 1, NULL));
        CHECK(chdir("/") == 0);
    }
    if (p) {
        char want[4200];
        snprintf(want, sizeof want, "%s/decoders/image", g_bundle);
        const char *dp = ngpt_pipeline_decoder_path(p, NGPT_MODALITY_IMAGE);
        CHECK_MSG(dp && strcmp(dp, want) == 0, "decoder path %s, expected %s", dp ? dp : "(null)", want);
        ngpt_pipeline_turn_params tp;
        turn_params(&tp);
        tp.steps = 1;
        ngpt_pipeline_result *r = NULL;
        CHECK_OK(ngpt_pipeline_turn(&r, p, "draw", NULL, 0, &tp));
        if (r) CHECK_MSG(ngpt_pipeline_result_output(r, image_output(r), NULL, NULL, NULL, NULL) == NGPT_OK,
                         "image output after a chdir: %s", ngpt_pipeline_result_output_message(r, image_output(r)));
        ngpt_pipeline_result_free(r);
        ngpt_pipeline_free(p);
    }
    CHECK(chdir(cwd) == 0);
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
    RUN(test_reentry_refused);
    RUN(test_media_history);
    RUN(test_bf16_cpu);
    RUN(test_forced_at_context_end);
    RUN(test_device_lock);
    RUN(test_relative_bundle);
    ngpt_context_free(g_ctx);
    return test_done();
}
