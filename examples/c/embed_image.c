/* embed_image — encode an image to its ImageBind embedding.
 *
 *   embed_image IMAGEBIND IMAGE
 *   build/examples/c/embed_image build/tools/tiny/imagebind data/tiny/cat.jpg
 *
 * IMAGEBIND is ImageBind's checkpoint: the official imagebind_huge.pth, a .safetensors, or a
 * folder with config.json + weights (the tiny bundle's imagebind/ folder). The embedding is what
 * NExT-GPT feeds its input projector: 1024 floats for imagebind_huge (32 for the tiny test
 * model), L2-normalised, so the program prints its length and norm, then the values.
 */
#include <nextgpt.h>

#include <math.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s IMAGEBIND IMAGE\n", argv[0]);
        return 2;
    }
    int rc = 1;
    ngpt_context *ctx = NULL;
    ngpt_encoder *enc = NULL;
    ngpt_image *img = NULL;
    ngpt_tensor emb = {0};  /* filled by the library; ngpt_tensor_free releases it (also when empty) */

    /* A context picks the device (CUDA when usable, else the CPU) and owns the thread pool. */
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) goto fail;

    /* Load only the vision branch: ImageBind's audio branch is not needed for a picture. */
    ngpt_encoder_params ep;
    ngpt_encoder_params_default(&ep, sizeof ep);
    ep.modalities = NGPT_ENCODER_IMAGE;
    if (ngpt_encoder_create(&enc, ctx, argv[1], &ep) != NGPT_OK) goto fail;

    /* Decoding and ImageBind's preprocessing (resize 224, crop, normalise) happen inside
     * encode_image, exactly as NExT-GPT's Python pipeline does them. */
    if (ngpt_image_load(&img, argv[2]) != NGPT_OK) goto fail;
    if (ngpt_encoder_encode_image(enc, &emb, img) != NGPT_OK) goto fail;

    /* emb is F32 [1, D]: one row per image. */
    const float *v = emb.data;
    int64_t d = emb.shape[1];
    double sq = 0;
    for (int64_t i = 0; i < d; i++) sq += (double)v[i] * v[i];
    printf("image: %s (%dx%d)\n", argv[2], ngpt_image_width(img), ngpt_image_height(img));
    printf("embedding: %lld floats, L2 norm %.6f\n", (long long)d, sqrt(sq));
    for (int64_t i = 0; i < d; i++) printf("%s%.6f", i ? " " : "", v[i]);
    printf("\n");
    rc = 0;
    goto done;

fail:
    /* Every failing call leaves a message naming what failed (file, tensor, shapes). */
    fprintf(stderr, "embed_image: %s\n", ngpt_last_error());
done:
    /* Free in reverse order; every _free accepts NULL, so one exit path serves all cases. */
    ngpt_tensor_free(&emb);
    ngpt_image_free(img);
    ngpt_encoder_free(enc);
    ngpt_context_free(ctx);
    return rc;
}
