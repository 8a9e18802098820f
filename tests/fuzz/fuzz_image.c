/* fuzz_image.c — image files (JPEG through libjpeg-turbo, PNG through libpng, WebP through
 * libwebp, GIF through giflib, BMP/TIFF/Netpbm through libavcodec, anything else refused by its
 * first bytes) through ngpt_image_load_memory, ImageBind's vision transform and image-to-image's
 * Lanczos cut to multiples of 8. */
#include "fuzz_media.h"
#include "media/media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int64_t blocks = nx_alloc_blocks();
    ngpt_image *img = NULL;
    ngpt_status st = ngpt_image_load_memory(&img, data, size, "fuzz image");
    fuzz_status("ngpt_image_load_memory", st);
    if (img) {
        const int32_t w = ngpt_image_width(img), h = ngpt_image_height(img);
        FUZZ_REQUIRE(w > 0 && h > 0 && w <= 65535 && h <= 65535 && (int64_t)w * h <= 178956970, "a %dx%d image", w, h);
        const uint8_t *px = ngpt_image_pixels(img);
        unsigned sum = 0;
        for (int64_t i = 0; i < (int64_t)w * h * 3; i += 4093) sum += px[i]; /* the pixels are there */
        (void)sum;
        ngpt_tensor t = {0};
        st = ngpt_image_preprocess(&t, img);
        fuzz_status("ngpt_image_preprocess", st);
        static const int64_t shape[3] = {3, 224, 224};
        if (st == NGPT_OK) fuzz_check_tensor("image", &t, 3, shape);
        ngpt_tensor_free(&t);
        /* image-to-image's cut to multiples of 8 (ngpt_decoder_image_latents' Lanczos resize),
         * on the images small enough to keep a run fast */
        if ((int64_t)w * h <= (1 << 20) && w >= 8 && h >= 8) {
            const int32_t cw = w - w % 8, ch = h - h % 8;
            uint8_t *cut = nx_malloc((size_t)cw * (size_t)ch * 3);
            if (cut) {
                st = nx_resize_lanczos_rgb8(px, w, h, cut, cw, ch);
                FUZZ_REQUIRE(st == NGPT_OK || st == NGPT_ERR_OUT_OF_MEMORY, "the Lanczos cut of a %dx%d image -> %s", w,
                             h, ngpt_status_string(st));
                nx_free(cut);
            }
        }
        ngpt_image_free(img);
    }
    fuzz_no_leak("image", blocks);
    return 0;
}
