/* image_webp.c — WebP through libwebp, as Pillow 9.4 opens it (WebPImagePlugin with libwebp's
 * animation API, which it uses for every WebP file, still or animated):
 *
 *   WebPAnimDecoder, color_mode MODE_RGBA (non-premultiplied), no threads; the first frame,
 *   i.e. the canvas after frame 1 is blended onto a transparent canvas (the ANIM background
 *   colour is not used, as libwebp recommends); convert("RGB") then drops alpha (not
 *   composited). Lossy WebP is decoded by libwebp with its default fancy upsampling: the same
 *   bytes as Pillow, which links the same library.
 *
 * A still image is decoded straight into our RGB buffer (WebPDecodeRGBInto: the same pixels, as
 * the animation decoder decodes a key frame into its canvas without blending) — the animation
 * decoder would first zero-fill a canvas of the header's size, 1 GB for a 100-byte file that
 * claims 16383 x 16383. The size is checked (WebPGetFeatures) before anything is allocated. */
#include "media.h"

#include "../core/alloc.h"

#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>

ngpt_status nx_webp_decode(const uint8_t *buf, size_t len, const char *name, int32_t *w, int32_t *h, uint8_t **rgb)
{
    WebPBitstreamFeatures f;
    VP8StatusCode vs = WebPGetFeatures(buf, len, &f);
    if (vs != VP8_STATUS_OK)
        return nx_err(vs == VP8_STATUS_UNSUPPORTED_FEATURE ? NGPT_ERR_UNSUPPORTED : NGPT_ERR_BAD_FORMAT,
                      "%s: %s WebP header (libwebp status %d)", name,
                      vs == VP8_STATUS_NOT_ENOUGH_DATA ? "truncated" : "corrupt or unsupported", (int)vs);
    ngpt_status st = nx_image_check_size(name, "WebP", f.width, f.height);
    if (st != NGPT_OK) return st;

    if (!f.has_animation) {
        const size_t n = (size_t)f.width * (size_t)f.height * 3;
        uint8_t *out = nx_malloc(n);
        if (!out) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %dx%d image", name, f.width, f.height);
        if (!WebPDecodeRGBInto(buf, len, out, n, f.width * 3)) {
            nx_free(out);
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt or truncated WebP image data", name);
        }
        *w = f.width;
        *h = f.height;
        *rgb = out;
        return NGPT_OK;
    }

    WebPAnimDecoderOptions opt;
    if (!WebPAnimDecoderOptionsInit(&opt))
        return nx_err(NGPT_ERR_INTERNAL, "%s: libwebp's demux ABI does not match its headers", name);
    opt.color_mode = MODE_RGBA;
    opt.use_threads = 0;
    const WebPData data = {buf, len};
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&data, &opt);
    if (!dec) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt or truncated WebP file", name);
    WebPAnimInfo info;
    uint8_t *canvas = NULL;
    int ts = 0;
    if (!WebPAnimDecoderGetInfo(dec, &info)) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt WebP file", name);
        goto done;
    }
    if ((st = nx_image_check_size(name, "WebP", info.canvas_width, info.canvas_height)) != NGPT_OK) goto done;
    if (!WebPAnimDecoderGetNext(dec, &canvas, &ts) || !canvas) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt or truncated WebP image data", name);
        goto done;
    }
    const size_t n = (size_t)info.canvas_width * info.canvas_height;
    uint8_t *out = nx_malloc(n * 3);
    if (!out) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %ux%u image", name, info.canvas_width,
                    info.canvas_height);
        goto done;
    }
    for (size_t i = 0; i < n; i++) memcpy(out + 3 * i, canvas + 4 * i, 3);
    *w = (int32_t)info.canvas_width;
    *h = (int32_t)info.canvas_height;
    *rgb = out;
done:
    WebPAnimDecoderDelete(dec);
    return st;
}
