/* image.c — JPEG (libjpeg-turbo's libjpeg API) and PNG (libpng) decoding to RGB8, converted exactly as
 * Pillow 9.4's Image.open(f).convert("RGB") does (the reference of image.preprocess):
 *
 *   JPEG  YCbCr/RGB -> RGB with libjpeg-turbo's defaults (islow IDCT, fancy upsampling), as
 *         Pillow does; grayscale replicated; CMYK/YCCK read as Adobe-inverted CMYK ("CMYK;I",
 *         Pillow assumes it for every 4-channel JPEG) then Pillow's cmyk2rgb:
 *         c' = clip(nk - c*nk/255) with nk = 255 - k (MULDIV255 rounding).
 *   PNG   gray 1/2/4 bit scaled to 0..255 (x255, x85, x17); gray 16 bit becomes Pillow mode "I"
 *         whose convert("RGB") CLIPS at 255 (not >> 8: checked against Pillow 9.4);
 *         16-bit RGB/RGBA/LA keep the high byte; alpha dropped (not composited); palette
 *         looked up (tRNS ignored; an index past a short PLTE is gray (i, i, i), Pillow's
 *         initial palette); gAMA/iCCP/sRGB ignored, as Pillow does. A CRC error in any chunk
 *         read before the pixels, ancillary ones included, is an error (Pillow checks them all;
 *         libpng would only warn and drop an ancillary chunk).
 *
 * Neither library prints: each gets an error callback that records the message and longjmps
 * back into nx_jpeg_decode / png_decode (one setjmp each, every resource reachable from a struct so
 * nothing leaks), and a warning callback that discards, as Pillow ignores libjpeg's warnings.
 * (Not TurboJPEG's tjDecompress2: after any warning it reports a later fatal error as a mere
 * warning, leaving the pixel buffer unwritten, and its header call refuses sampling factors
 * outside its TJSAMP_* set, e.g. 3x1 or 4x2 luma, which Pillow decodes.) EXIF orientation is not applied (Pillow does not either).
 */
#include "media.h"

#include "../core/alloc.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h> /* after stdio.h, which it needs */

ngpt_status nx_image_check_size(const char *name, const char *fmt, int64_t w, int64_t h)
{
    if (w <= 0 || h <= 0)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: %s image has invalid size %lldx%lld", name, fmt,
                      (long long)w, (long long)h);
    if (w > NX_IMAGE_MAX_SIDE || h > NX_IMAGE_MAX_SIDE || (uint64_t)w * (uint64_t)h > NX_IMAGE_MAX_PIXELS)
        return nx_err(NGPT_ERR_UNSUPPORTED,
                      "%s: %s image of %lldx%lld pixels is too large (limits: %d per side, %u pixels)",
                      name, fmt, (long long)w, (long long)h, NX_IMAGE_MAX_SIDE, NX_IMAGE_MAX_PIXELS);
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * JPEG
 * ------------------------------------------------------------------------------------------- */

/* True when the marker structure runs from SOI to an EOI within the buffer (Pillow reports a
 * JPEG without one as truncated; libjpeg would silently invent the missing end). Segments are
 * skipped by their lengths (so an EXIF thumbnail's EOI inside APP1 does not count), entropy-
 * coded data up to the next marker that is not a stuffed 0xFF00 or a restart. Stray bytes
 * between segments are skipped up to the next 0xFF, as libjpeg's next_marker does (its
 * "extraneous bytes before marker" warning, which Pillow ignores). */
static bool jpeg_complete(const uint8_t *b, size_t len)
{
    size_t i = 2;
    while (i + 1 < len) {
        if (b[i] != 0xff) {
            i++;
            continue;
        }
        uint8_t m = b[i + 1];
        if (m == 0xff) { i++; continue; } /* fill byte */
        if (m == 0xd9) return true;
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) { i += 2; continue; }
        if (i + 3 >= len) return false;
        size_t seg = (size_t)b[i + 2] << 8 | b[i + 3];
        if (seg < 2 || i + 2 + seg > len) return false;
        i += 2 + seg;
        if (m == 0xda) { /* scan data */
            while (i + 1 < len && !(b[i] == 0xff && b[i + 1] != 0 && !(b[i + 1] >= 0xd0 && b[i + 1] <= 0xd7)))
                i++;
        }
    }
    return false;
}

/* Everything that must be freed after libjpeg's error_exit longjmps lives here (not in locals). */
typedef struct jpeg_ctx {
    struct jpeg_decompress_struct di;
    struct jpeg_error_mgr         jerr;
    jmp_buf                       jb;
    char                          msg[JMSG_LENGTH_MAX];
    uint8_t                      *raw, *rgb;
} jpeg_ctx;

/* A fatal libjpeg error: keep the message, back to nx_jpeg_decode's setjmp. */
static void jpeg_on_error(j_common_ptr ci)
{
    jpeg_ctx *c = (jpeg_ctx *)ci->client_data;
    (*ci->err->format_message)(ci, c->msg);
    longjmp(c->jb, 1);
}

/* Warnings ("Corrupt JPEG data: ...", "Premature end of JPEG file") and trace messages:
 * neither printed nor fatal, as in Pillow (whose decoder ignores libjpeg's warnings). */
static void jpeg_on_message(j_common_ptr ci, int level)
{
    (void)ci;
    (void)level;
}

ngpt_status nx_jpeg_decode(const uint8_t *buf, size_t len, const char *name, int32_t *ow, int32_t *oh,
                           uint8_t **out)
{
    return nx_jpeg_decode_as(buf, len, name, NX_JPEG_FILE, ow, oh, out);
}

ngpt_status nx_jpeg_decode_as(const uint8_t *buf, size_t len, const char *name, nx_jpeg_mode mode, int32_t *ow,
                              int32_t *oh, uint8_t **out)
{
    if (len > (size_t)0xffffffffu) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: JPEG larger than 4 GiB", name);
    jpeg_ctx c;
    memset(&c, 0, sizeof c);
    c.di.err = jpeg_std_error(&c.jerr);
    c.jerr.error_exit = jpeg_on_error;
    c.jerr.emit_message = jpeg_on_message;
    c.di.client_data = &c;
    ngpt_status st = NGPT_OK;
    if (setjmp(c.jb)) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt or truncated JPEG: %s", name, c.msg);
        goto done;
    }
    jpeg_create_decompress(&c.di);
    jpeg_mem_src(&c.di, buf, (unsigned long)len);
    jpeg_read_header(&c.di, TRUE); /* no image (tables only, or cut before SOF): error_exit */
    int32_t w = (int32_t)c.di.image_width, h = (int32_t)c.di.image_height;
    if ((st = nx_image_check_size(name, "JPEG", w, h)) != NGPT_OK) goto done;
    if (!jpeg_complete(buf, len)) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated JPEG (no end-of-image marker)", name);
        goto done;
    }
    int nc;
    if (mode == NX_JPEG_TIFF_YCBCR && c.di.num_components == 3) c.di.jpeg_color_space = JCS_YCbCr;
    if (mode == NX_JPEG_TIFF_RAW && c.di.num_components > 1) /* libtiff: no colour conversion at all */
        c.di.jpeg_color_space = c.di.num_components == 3 ? JCS_RGB : c.di.num_components == 4 ? JCS_CMYK : JCS_UNKNOWN;
    switch (c.di.jpeg_color_space) {
    case JCS_GRAYSCALE: c.di.out_color_space = JCS_GRAYSCALE; nc = 1; break;
    case JCS_CMYK:
    case JCS_YCCK: c.di.out_color_space = JCS_CMYK; nc = 4; break;
    case JCS_YCbCr:
    case JCS_RGB: c.di.out_color_space = JCS_RGB; nc = 3; break;
    default:
        st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: JPEG with %d components in an unknown colour space is not supported",
                    name, c.di.num_components);
        goto done;
    }
    /* libjpeg's defaults, as Pillow leaves them: accurate (islow) IDCT, fancy upsampling. */
    jpeg_start_decompress(&c.di);
    size_t npix = (size_t)w * (size_t)h, stride = (size_t)w * (size_t)nc;
    c.raw = nx_malloc(npix * (size_t)nc);
    c.rgb = nc == 3 ? c.raw : nx_malloc(npix * 3);
    if (!c.raw || !c.rgb) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %dx%d image", name, w, h);
        goto done;
    }
    while (c.di.output_scanline < c.di.output_height) {
        JSAMPROW row = c.raw + (size_t)c.di.output_scanline * stride;
        jpeg_read_scanlines(&c.di, &row, 1);
    }
    jpeg_finish_decompress(&c.di);
    uint8_t *raw = c.raw, *rgb = c.rgb;
    if (nc == 1) {
        for (size_t i = npix; i-- > 0;) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = raw[i];
    } else if (nc == 4) {
        for (size_t i = 0; i < npix; i++) {
            const uint8_t *p = raw + 4 * i;
            int inv = mode == NX_JPEG_FILE ? 255 : 0; /* Pillow reads every 4-channel JPEG file as Adobe-inverted */
            for (int k = 0; k < 3; k++) rgb[3 * i + k] = nx_cmyk2rgb(inv ^ p[k], inv ^ p[3]);
        }
    }
    *ow = w;
    *oh = h;
    *out = c.rgb;
    if (c.raw == c.rgb) c.raw = NULL;
    c.rgb = NULL;
done:
    if (c.rgb != c.raw) nx_free(c.rgb);
    nx_free(c.raw);
    jpeg_destroy_decompress(&c.di);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * PNG
 * ------------------------------------------------------------------------------------------- */

typedef struct png_ctx {
    const uint8_t *buf;
    size_t         len, pos;
    const char    *name;
    char           msg[256];
    uint8_t       *img;    /* decoded rows (libpng layout) */
    png_bytep     *rows;
    uint8_t       *rgb;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* the library never prints; warnings do not change the decoded pixels */
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "unexpected end of file (truncated)");
    memcpy(dst, c->buf + c->pos, n);
    c->pos += n;
}

static ngpt_status png_decode(const uint8_t *buf, size_t len, const char *name, int32_t *ow,
                              int32_t *oh, uint8_t **out)
{
    png_ctx c = {.buf = buf, .len = len, .name = name};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning);
    if (!png) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot create a libpng reader", name);
    png_infop info = png_create_info_struct(png);
    ngpt_status st = NGPT_OK;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot create a libpng reader", name);
    }
    /* Everything that must be freed after a longjmp lives in `c` (not in locals). */
    if (setjmp(png_jmpbuf(png))) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt or truncated PNG: %s", name, c.msg);
        goto done;
    }
    png_set_read_fn(png, &c, png_read_mem);
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, ct = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &ct, &interlace, NULL, NULL);
    if ((st = nx_image_check_size(name, "PNG", w, h)) != NGPT_OK) goto done;
    if (depth < 8) png_set_packing(png);  /* one byte per sample, values unscaled */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    int nch = png_get_channels(png, info);
    int bps = depth == 16 ? 2 : 1;
    if (rowbytes < (size_t)w * (size_t)nch * (size_t)bps) png_error(png, "unexpected row size");
    c.img = nx_malloc(rowbytes * h);
    c.rows = nx_malloc(sizeof *c.rows * h);
    c.rgb = nx_malloc((size_t)w * h * 3);
    if (!c.img || !c.rows || !c.rgb) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %ux%u image", name, (unsigned)w, (unsigned)h);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) c.rows[y] = c.img + rowbytes * y;
    png_read_image(png, c.rows);

    png_colorp pal = NULL;
    int npal = 0;
    if (ct == PNG_COLOR_TYPE_PALETTE && !png_get_PLTE(png, info, &pal, &npal))
        png_error(png, "palette image without a PLTE chunk");
    int gray_scale = depth == 1 ? 255 : depth == 2 ? 85 : depth == 4 ? 17 : 1;
    for (png_uint_32 y = 0; y < h; y++) {
        const uint8_t *s = c.rows[y];
        uint8_t *d = c.rgb + (size_t)y * w * 3;
        for (png_uint_32 x = 0; x < w; x++, d += 3) {
            const uint8_t *p = s + (size_t)x * nch * bps;
            switch (ct) {
            case PNG_COLOR_TYPE_GRAY:
            case PNG_COLOR_TYPE_GRAY_ALPHA: {
                int v;
                if (depth == 16 && ct == PNG_COLOR_TYPE_GRAY) {
                    v = (p[0] << 8) | p[1]; /* Pillow mode "I": convert("RGB") clips */
                    if (v > 255) v = 255;
                } else {
                    v = p[0] * gray_scale; /* 16-bit LA: high byte */
                }
                d[0] = d[1] = d[2] = (uint8_t)v;
                break;
            }
            case PNG_COLOR_TYPE_PALETTE: {
                int i = p[0];
                if (i < npal) {
                    d[0] = pal[i].red;
                    d[1] = pal[i].green;
                    d[2] = pal[i].blue;
                } else {
                    /* index past the palette: Pillow's palette starts as the gray ramp
                     * (ImagingPaletteNew) and PLTE overwrites only its first npal entries */
                    d[0] = d[1] = d[2] = (uint8_t)i;
                }
                break;
            }
            default: /* RGB, RGBA: 16-bit keeps the high byte */
                d[0] = p[0];
                d[1] = p[bps];
                d[2] = p[2 * bps];
                break;
            }
        }
    }
    *ow = (int32_t)w;
    *oh = (int32_t)h;
    *out = c.rgb;
    c.rgb = NULL;
done:
    png_destroy_read_struct(&png, &info, NULL);
    nx_free(c.rgb);
    nx_free(c.rows);
    nx_free(c.img);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Sniffing
 * ------------------------------------------------------------------------------------------- */

ngpt_status nx_image_decode(const uint8_t *buf, size_t len, const char *name, int32_t *w,
                            int32_t *h, uint8_t **rgb)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len == 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: empty file, not an image", name);
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return nx_jpeg_decode(buf, len, name, w, h, rgb);
    if (len >= 8 && memcmp(buf, png_sig, 8) == 0) return png_decode(buf, len, name, w, h, rgb);
    if (len >= 6 && (memcmp(buf, "GIF87a", 6) == 0 || memcmp(buf, "GIF89a", 6) == 0))
        return nx_gif_decode(buf, len, name, w, h, rgb);
    if (len >= 12 && memcmp(buf, "RIFF", 4) == 0 && memcmp(buf + 8, "WEBP", 4) == 0)
        return nx_webp_decode(buf, len, name, w, h, rgb);
    if (len >= 2 && buf[0] == 'B' && buf[1] == 'M')
        return nx_image_decode_av(buf, len, name, NX_IMAGE_BMP, w, h, rgb);
    if (len >= 4 && (memcmp(buf, "II*\0", 4) == 0 || memcmp(buf, "MM\0*", 4) == 0))
        return nx_image_decode_av(buf, len, name, NX_IMAGE_TIFF, w, h, rgb);
    if (len >= 4 && (memcmp(buf, "II+\0", 4) == 0 || memcmp(buf, "MM\0+", 4) == 0))
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: BigTIFF images are not supported (Pillow 9.4 does not read them "
                      "either)", name);
    if (len >= 4 && memcmp(buf, "\0\0\1\0", 4) == 0) return nx_ico_decode(buf, len, name, w, h, rgb);
    if (len >= 3 && buf[0] == 'P' && buf[1] >= '1' && buf[1] <= '6' && buf[2] && strchr(" \t\r\n#", buf[2])) {
        static const nx_image_codec pnm[] = {NX_IMAGE_PBM, NX_IMAGE_PGM, NX_IMAGE_PPM};
        return nx_image_decode_av(buf, len, name, pnm[(buf[1] - '1') % 3], w, h, rgb);
    }
    if (len >= 12 && memcmp(buf + 4, "ftyp", 4) == 0 &&
        (memcmp(buf + 8, "hei", 3) == 0 || memcmp(buf + 8, "hev", 3) == 0 || memcmp(buf + 8, "mif1", 4) == 0 ||
         memcmp(buf + 8, "msf1", 4) == 0 || memcmp(buf + 8, "avif", 4) == 0 || memcmp(buf + 8, "avis", 4) == 0))
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: HEIF/AVIF images are not supported (JPEG, PNG, WebP, GIF, BMP, "
                      "TIFF, Netpbm and ICO are)", name);
    return nx_err(NGPT_ERR_BAD_FORMAT, "%s: not a JPEG, PNG, WebP, GIF, BMP, TIFF, Netpbm or ICO image "
                  "(unrecognised signature)", name);
}
