/* chat_image — a two-turn conversation about an image with the whole NExT-GPT pipeline.
 *
 *   chat_image BUNDLE IMAGE [QUESTION [FOLLOW_UP]]
 *   build/examples/c/chat_image build/tools/tiny data/tiny/cat.jpg
 *
 * BUNDLE is a NExT-GPT bundle folder (bundle.json naming the language model, ImageBind, the
 * projectors and the decoders; see the README). ngpt_pipeline loads every part once and keeps
 * the conversation in the language model's KV cache, so the follow-up question is answered
 * with the picture and the first answer still in view. The answer is streamed as it is
 * generated. With the tiny test bundle (random weights) the answers are noise.
 */
#include <nextgpt.h>

#include <stdio.h>

/* Called by the pipeline for every stage; here only the streamed answer text is of interest. */
static bool on_event(const ngpt_pipeline_event *ev, void *user_data)
{
    (void)user_data;
    if (ev->kind == NGPT_PIPELINE_EVENT_TOKEN) {
        fwrite(ev->text, 1, ev->text_len, stdout);  /* text is not NUL-terminated */
        fflush(stdout);
    }
    return true;  /* false would cancel the turn */
}

/* One user turn: print the question, stream the answer. Returns 0 on success. */
static int ask(ngpt_pipeline *p, const char *question, const ngpt_pipeline_media *media, size_t n_media)
{
    ngpt_pipeline_turn_params tp;
    ngpt_pipeline_turn_params_default(&tp, sizeof tp);  /* NExT-GPT's demo sampling settings */
    tp.max_new_tokens = 32;
    tp.on_event = on_event;
    printf("user: %s\nassistant: ", question);
    fflush(stdout);
    ngpt_pipeline_result *r = NULL;
    if (ngpt_pipeline_turn(&r, p, question, media, n_media, &tp) != NGPT_OK) {
        printf("\n");
        fprintf(stderr, "chat_image: %s\n", ngpt_last_error());
        return 1;
    }
    printf("\n");
    /* The model may also decide to answer with media (signal tokens); a chat program would
     * save them as the nextgpt command does (examples/cli/run.c). Here they are only listed. */
    static const char *const names[4] = {"text", "image", "audio", "video"};
    for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r); i++) {
        ngpt_modality m;
        size_t size = 0;
        if (ngpt_pipeline_result_output(r, i, &m, NULL, &size, NULL) == NGPT_OK)
            printf("(output %d: %s, %zu bytes)\n", (int)i, names[m & 3], size);
        else  /* e.g. the bundle has no decoder for it: the message says so */
            printf("(output %d: %s, %s)\n", (int)i, names[m & 3], ngpt_pipeline_result_output_message(r, i));
    }
    ngpt_pipeline_result_free(r);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s BUNDLE IMAGE [QUESTION [FOLLOW_UP]]\n", argv[0]);
        return 2;
    }
    const char *question = argc > 3 ? argv[3] : "What is in this picture?";
    const char *follow_up = argc > 4 ? argv[4] : "And what colour is it?";

    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) {
        fprintf(stderr, "chat_image: %s\n", ngpt_last_error());
        return 1;
    }
    ngpt_pipeline *p = NULL;
    if (ngpt_pipeline_create(&p, ctx, argv[1], NULL) != NGPT_OK) {  /* NULL: default params */
        fprintf(stderr, "chat_image: %s\n", ngpt_last_error());
        ngpt_context_free(ctx);
        return 1;
    }
    if (ngpt_pipeline_is_test_model(p))
        fprintf(stderr, "chat_image: note: %s is a test model with random weights: its answers are noise\n", argv[1]);

    /* The image goes in by path; memory bytes or decoded pixels work too (ngpt_pipeline_media). */
    ngpt_pipeline_media image = {NGPT_MODALITY_IMAGE, argv[2], NULL, 0, NULL, NULL};
    int rc = ask(p, question, &image, 1);
    if (rc == 0) rc = ask(p, follow_up, NULL, 0);  /* same conversation: no need to resend the image */

    ngpt_pipeline_free(p);
    ngpt_context_free(ctx);
    return rc;
}
