/* edit_image — picture and text in, picture out: Stable Diffusion's image-to-image, the image
 * decoder alone (no language model).
 *
 *   edit_image IMAGE_DECODER PICTURE PROMPT OUT.png [STEPS] [STRENGTH]
 *   build/examples/c/edit_image build/tools/tiny/decoders/image data/tiny/cat.jpg "in the snow" out.png
 *
 * The picture becomes latents as diffusers' img2img pipeline makes them (each side cut down to
 * a multiple of 8, the VAE encoder, a sample of its distribution, x the scaling factor); the
 * prompt goes through the decoder's own text encoder; then the last STRENGTH of the schedule
 * (default 0.8) runs from those latents, noised to where it starts. The same settings give the
 * same bytes as `nextgpt generate --model DECODER --init-image PICTURE --seed 1`. With the tiny
 * test bundle the picture is noise.
 */
#include <nextgpt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 7) {
        fprintf(stderr, "usage: %s IMAGE_DECODER PICTURE PROMPT OUT.png [STEPS] [STRENGTH]\n", argv[0]);
        return 2;
    }
    const int32_t steps = argc > 5 ? atoi(argv[5]) : 0;     /* 0 = the decoder's default, 50 */
    const double strength = argc > 6 ? atof(argv[6]) : 0.8;  /* diffusers' default */
    if ((argc > 5 && steps <= 0) || !(strength > 0 && strength <= 1)) {
        fprintf(stderr, "edit_image: STEPS must be a positive number and STRENGTH in (0, 1]\n");
        return 2;
    }
    int rc = 1;
    ngpt_context *ctx = NULL;
    ngpt_decoder *dec = NULL;
    ngpt_image *picture = NULL, *result = NULL;
    ngpt_tensor cond = {0}, init = {0}, out = {0};

    if (ngpt_context_create(&ctx, NULL) != NGPT_OK) goto done;
    if (ngpt_decoder_create(&dec, ctx, argv[1], NULL) != NGPT_OK) goto done;
    if (ngpt_image_load(&picture, argv[2]) != NGPT_OK) goto done;
    /* The VAE's sample draws its noise from seed 2, the denoising from seed 1: two draws. */
    if (ngpt_decoder_image_latents(dec, &init, picture, 1, 2) != NGPT_OK) goto done;
    if (ngpt_decoder_encode_text(dec, &cond, argv[3]) != NGPT_OK) goto done;

    ngpt_decode_params gp;
    ngpt_decode_params_default(&gp, sizeof gp);
    gp.num_inference_steps = steps;
    gp.seed = 1;
    gp.init_latents = &init;  /* the size comes from them: height and width are left 0 */
    gp.strength = strength;
    /* uncond NULL: the decoder's text encoder on "", the pipeline's negative prompt */
    if (ngpt_decoder_generate(dec, &out, NULL, &cond, NULL, &gp) != NGPT_OK) goto done;

    /* out is F32 [1, H, W, 3] in [0, 1]: one image, viewed as [H, W, 3] */
    ngpt_tensor one = out;
    one.rank = 3;
    memmove(one.shape, one.shape + 1, 3 * sizeof one.shape[0]);
    one.owner = NULL;
    if (ngpt_image_from_tensor(&result, &one) != NGPT_OK) goto done;
    if (ngpt_image_save(result, argv[4], NGPT_IMAGE_FORMAT_AUTO, 0, 0) != NGPT_OK) goto done;
    printf("wrote %s (%dx%d, from %dx%d)\n", argv[4], ngpt_image_width(result), ngpt_image_height(result),
           ngpt_image_width(picture), ngpt_image_height(picture));
    rc = 0;
done:
    if (rc) fprintf(stderr, "edit_image: %s\n", ngpt_last_error());
    ngpt_image_free(result);
    ngpt_tensor_free(&out);
    ngpt_tensor_free(&cond);
    ngpt_tensor_free(&init);
    ngpt_image_free(picture);
    ngpt_decoder_free(dec);
    ngpt_context_free(ctx);
    return rc;
}
