/* stages — NExT-GPT by hand, one stage handle at a time: what ngpt_pipeline does for an
 * image in and an image out, written out so each handle's job is visible.
 *
 *   stages IMAGEBIND LLM PROJECTORS IMAGE_DECODER IMAGE OUT.png [PROMPT] [STEPS]
 *   B=build/tools/tiny; build/examples/c/stages $B/imagebind $B/llm $B/projectors \
 *       $B/decoders/image data/tiny/cat.jpg out.png
 *
 *   image --ngpt_encoder--> embedding [1, 1024]            ImageBind, frozen
 *         --ngpt_projector (input)--> soft token [1, 4096]  llama_proj: a "word" the LLM reads
 *         --ngpt_backbone (turn)--> answer text + [IMG0..3] signal group (hidden states)
 *         --ngpt_projector (output)--> conditioning [1, 77, 768]   what SD's text encoder would give
 *         --ngpt_decoder (generate)--> pixels [1, H, W, 3] --> PNG
 *
 * (Sizes are NExT-GPT's; the tiny test bundle has the same shapes scaled down.) For the official
 * release the paths are imagebind_huge.pth, the Vicuna-7B folder (set bp.delta_path to the
 * NExT-GPT delta), the delta pytorch_model.pt (it holds the projectors) and the
 * stable-diffusion-v1-5 folder. The defaults below are the pipeline's, so this program's PNG is
 * the one `nextgpt run --force image` writes for the same image, prompt, steps and seed 0.
 */
#include <nextgpt.h>

#include <stdio.h>
#include <stdlib.h>

static const char *shape(const ngpt_tensor *t, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int32_t i = 0; i < t->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 7 || argc > 9) {
        fprintf(stderr, "usage: %s IMAGEBIND LLM PROJECTORS IMAGE_DECODER IMAGE OUT.png [PROMPT] [STEPS]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 7 ? argv[7] : "Draw this in the snow.";
    int32_t steps = argc > 8 ? atoi(argv[8]) : 0;  /* 0 = the decoder's default, 50 */
    if (argc > 8 && steps <= 0) {
        fprintf(stderr, "stages: STEPS must be a positive number, not '%s'\n", argv[8]);
        return 2;
    }
    int rc = 1;
    char s1[64], s2[64];
    ngpt_context *ctx = NULL;
    ngpt_encoder *enc = NULL;
    ngpt_projector *proj = NULL;
    ngpt_backbone *bb = NULL;
    ngpt_backbone_session *sess = NULL;
    ngpt_decoder *dec = NULL;
    ngpt_image *img = NULL, *picture = NULL;
    ngpt_turn_result *turn = NULL;
    ngpt_tensor emb = {0}, soft = {0}, cond = {0}, pixels = {0};

    /* The context: device, threads and memory accounting shared by every handle below. */
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) goto fail;

    /* 1. Encoder: ImageBind's vision branch turns the picture into one embedding. */
    ngpt_encoder_params ep;
    ngpt_encoder_params_default(&ep, sizeof ep);
    ep.modalities = NGPT_ENCODER_IMAGE;
    if (ngpt_encoder_create(&enc, ctx, argv[1], &ep) != NGPT_OK) goto fail;
    if (ngpt_image_load(&img, argv[5]) != NGPT_OK) goto fail;
    if (ngpt_encoder_encode_image(enc, &emb, img) != NGPT_OK) goto fail;
    printf("1 encoder:   %s -> embedding %s\n", argv[5], shape(&emb, s1, sizeof s1));

    /* 2. Input projector: the embedding becomes one row in the LLM's embedding space, a "soft
     *    token" spliced into the prompt between <Img> and </Img>. The same projector file holds
     *    the output projectors (step 4): load the input and the image output ones. */
    ngpt_projector_params pjp;
    ngpt_projector_params_default(&pjp, sizeof pjp);
    pjp.modalities = NGPT_PROJECTOR_INPUT | NGPT_PROJECTOR_IMAGE;
    if (ngpt_projector_create(&proj, ctx, argv[3], &pjp) != NGPT_OK) goto fail;
    if (ngpt_projector_input(proj, &soft, &emb) != NGPT_OK) goto fail;
    printf("2 projector: embedding -> soft token %s\n", shape(&soft, s1, sizeof s1));

    /* 3. Backbone: the language model (weights, shareable) and a session (this conversation's
     *    KV cache). A turn builds NExT-GPT's prompt template around the soft token, generates the
     *    answer and returns the signal groups: the hidden states at [IMG0]..[IMG3]. Requiring
     *    the image modality appends that group when the model does not start it itself. */
    ngpt_backbone_params bp;
    ngpt_backbone_params_default(&bp, sizeof bp);  /* bp.delta_path = the NExT-GPT delta, for the real model */
    if (ngpt_backbone_create(&bb, ctx, argv[2], &bp) != NGPT_OK) goto fail;
    ngpt_backbone_session_params sp;
    ngpt_backbone_session_params_default(&sp, sizeof sp);
    sp.n_ctx = 512;  /* KV cache positions: enough for one short turn */
    if (ngpt_backbone_session_create(&sess, bb, &sp) != NGPT_OK) goto fail;
    ngpt_turn_media media = {NGPT_MODALITY_IMAGE, soft.data, 1};  /* soft is F32 [1, n_embd] */
    ngpt_turn_params tp;
    ngpt_turn_params_default(&tp, sizeof tp);  /* the demo's sampling: temperature 1, top_p 0.01, seed 0 */
    tp.max_new_tokens = 32;
    tp.require_modalities = NGPT_MODALITY_BIT(NGPT_MODALITY_IMAGE);
    if (ngpt_backbone_turn(&turn, sess, prompt, &media, 1, &tp) != NGPT_OK) goto fail;
    printf("3 backbone:  answer \"%s\"\n", ngpt_turn_result_text(turn, NULL));

    /* The image group: n_tokens (4) rows of hidden states, plus the embedding rows of
     * [IMG0]..[IMG3], the output projector's two inputs. */
    const float *hidden = NULL, *input_embs = NULL;
    int32_t n_sig = 0;
    for (int32_t g = 0; g < ngpt_turn_result_n_groups(turn) && !hidden; g++) {
        ngpt_modality m;
        if (ngpt_turn_result_group(turn, g, &m, &n_sig, &hidden, &input_embs) != NGPT_OK) goto fail;
        if (m != NGPT_MODALITY_IMAGE) hidden = NULL;  /* the model may also start other groups */
    }
    if (!hidden) {
        fprintf(stderr, "stages: the turn returned no image group\n");
        goto done;
    }
    int32_t h = ngpt_backbone_n_embd(bb);
    printf("             image signal group: %d hidden states of %d\n", (int)n_sig, (int)h);

    /* 4. Output projector: signal hidden states -> the decoder's conditioning, in place of the
     *    CLIP text embedding Stable Diffusion normally gets. Caller-owned views (owner NULL) of
     *    the turn's arrays, batch 1. */
    ngpt_tensor hid_t = {NGPT_DTYPE_F32, 3, {1, n_sig, h}, (void *)hidden, NULL};
    ngpt_tensor emb_t = {NGPT_DTYPE_F32, 3, {1, n_sig, h}, (void *)input_embs, NULL};
    if (ngpt_projector_output(proj, &cond, NGPT_MODALITY_IMAGE, &hid_t, &emb_t) != NGPT_OK) goto fail;
    printf("4 projector: signal states -> conditioning %s\n", shape(&cond, s1, sizeof s1));

    /* 5. Decoder: Stable Diffusion's denoising loop on that conditioning. uncond NULL: the
     *    decoder's own CLIP text encoder supplies the embedding of "" for classifier-free
     *    guidance, as NExT-GPT's negative prompt. */
    if (ngpt_decoder_create(&dec, ctx, argv[4], NULL) != NGPT_OK) goto fail;
    ngpt_decode_params dp;
    ngpt_decode_params_default(&dp, sizeof dp);  /* 50 DDIM steps, guidance 7.5, seed 0 */
    dp.num_inference_steps = steps;
    if (ngpt_decoder_generate(dec, &pixels, NULL, &cond, NULL, &dp) != NGPT_OK) goto fail;
    printf("5 decoder:   conditioning -> pixels %s\n", shape(&pixels, s2, sizeof s2));

    /* pixels is F32 [1, H, W, 3] in [0, 1]; view the one image as [H, W, 3] and save it. */
    ngpt_tensor hw3 = {NGPT_DTYPE_F32, 3, {pixels.shape[1], pixels.shape[2], 3}, pixels.data, NULL};
    if (ngpt_image_from_tensor(&picture, &hw3) != NGPT_OK) goto fail;
    if (ngpt_image_save(picture, argv[6], NGPT_IMAGE_FORMAT_PNG, 0, 0) != NGPT_OK) goto fail;
    printf("wrote %s (%dx%d)\n", argv[6], ngpt_image_width(picture), ngpt_image_height(picture));
    rc = 0;
    goto done;

fail:
    fprintf(stderr, "stages: %s\n", ngpt_last_error());
done:
    /* Reverse order of creation: a session before its backbone, every handle before ctx. */
    ngpt_image_free(picture);
    ngpt_tensor_free(&pixels);
    ngpt_tensor_free(&cond);
    ngpt_turn_result_free(turn);
    ngpt_tensor_free(&soft);
    ngpt_tensor_free(&emb);
    ngpt_image_free(img);
    ngpt_decoder_free(dec);
    ngpt_backbone_session_free(sess);
    ngpt_backbone_free(bb);
    ngpt_projector_free(proj);
    ngpt_encoder_free(enc);
    ngpt_context_free(ctx);
    return rc;
}
