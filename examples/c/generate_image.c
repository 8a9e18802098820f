/* generate_image — text in, picture out: NExT-GPT forced to answer with an image.
 *
 *   generate_image BUNDLE PROMPT OUT.png [STEPS]
 *   build/examples/c/generate_image build/tools/tiny "a cat in the snow" cat.png
 *
 * NExT-GPT produces an image when its language model emits the signal tokens [IMG0]..[IMG3];
 * whether it does depends on the prompt. `force` makes the pipeline append that signal group
 * when the model did not, so an image always comes out: the group's hidden states go through
 * the image output projector into Stable Diffusion's conditioning. STEPS is the number of
 * denoising steps (default 50, NExT-GPT's). With the tiny test bundle the picture is noise.
 */
#include <nextgpt.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s BUNDLE PROMPT OUT.png [STEPS]\n", argv[0]);
        return 2;
    }
    int32_t steps = argc > 4 ? atoi(argv[4]) : 0;
    if (argc > 4 && steps <= 0) {
        fprintf(stderr, "generate_image: STEPS must be a positive number, not '%s'\n", argv[4]);
        return 2;
    }
    int rc = 1;
    ngpt_context *ctx = NULL;
    ngpt_pipeline *p = NULL;
    ngpt_pipeline_result *r = NULL;

    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) goto fail;

    /* Preloading the image decoder makes a load error show up here rather than in the output. */
    ngpt_pipeline_params pp;
    ngpt_pipeline_params_default(&pp, sizeof pp);
    pp.preload = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE);
    if (ngpt_pipeline_create(&p, ctx, argv[1], &pp) != NGPT_OK) goto fail;

    ngpt_pipeline_turn_params tp;
    ngpt_pipeline_turn_params_default(&tp, sizeof tp);
    tp.force = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE);  /* always answer with an image */
    tp.max_new_tokens = 32;
    tp.steps = steps;                                     /* 0 = the decoder's default, 50 */
    tp.seed = 1;                                          /* same seed, same picture */
    if (ngpt_pipeline_turn(&r, p, argv[2], NULL, 0, &tp) != NGPT_OK) goto fail;
    printf("answer: %s\n", ngpt_pipeline_result_text(r, NULL));

    /* Outputs come one per signal group. A failed output (no decoder, a decoder error) does not
     * fail the turn: its status and message say why. */
    for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r); i++) {
        ngpt_modality m;
        const uint8_t *bytes;
        size_t size;
        const char *format;
        ngpt_status st = ngpt_pipeline_result_output(r, i, &m, &bytes, &size, &format);
        if (m != NGPT_MODALITY_IMAGE) continue;  /* the model may have started other groups too */
        if (st != NGPT_OK) {
            fprintf(stderr, "generate_image: no image: %s\n", ngpt_pipeline_result_output_message(r, i));
            goto done;
        }
        /* The bytes are an encoded PNG already; write them as they are. */
        FILE *f = fopen(argv[3], "wb");
        int written = f && fwrite(bytes, 1, size, f) == size;
        if (f && fclose(f) != 0) written = 0;
        if (!written) {
            perror(argv[3]);
            goto done;
        }
        printf("wrote %s (%s, %zu bytes)\n", argv[3], format, size);
        rc = 0;
        goto done;
    }
    fprintf(stderr, "generate_image: the turn produced no image output\n");
    goto done;

fail:
    fprintf(stderr, "generate_image: %s\n", ngpt_last_error());
done:
    ngpt_pipeline_result_free(r);
    ngpt_pipeline_free(p);
    ngpt_context_free(ctx);
    return rc;
}
