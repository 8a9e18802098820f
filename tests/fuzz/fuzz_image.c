/* fuzz_image.c — image files (JPEG through libjpeg-turbo, PNG through libpng, WebP through
 * libwebp, GIF through giflib, BMP/TIFF/Netpbm through libavcodec, anything else refused by its
 * first bytes) through ngpt_image_load_memory and ImageBind's vision transform. */
#include "fuzz_media.h"

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
        ngpt_image_free(img);
    }
    fuzz_no_leak("image", blocks);
    return 0;
}
