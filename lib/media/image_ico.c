/* image_ico.c — Windows icons (.ico) as Pillow 9.4's IcoImagePlugin opens them: the entry it
 * sorts first (largest width x height, then deepest colour depth, then the last in the file),
 * which is either a PNG (decoded as any PNG) or a DIB whose height counts its XOR image and AND
 * mask together: the XOR image alone is decoded, as a BMP with the height halved (through
 * image_av.c). convert("RGB") drops the alpha Pillow builds from the AND mask or the fourth
 * channel, so the mask is not read. Cursors (.cur) are not icons and are not recognised. */
#include "media.h"

#include "../core/alloc.h"

#include <string.h>

static uint32_t le32(const uint8_t *p) { return nx_get_uint(p, 4, false); }
static int le16(const uint8_t *p) { return (int)nx_get_uint(p, 2, false); }

/* Pillow's colour depth of an entry: bpp, else ceil(log2(colours)), else 256. */
static int ico_depth(const uint8_t *e)
{
    int bpp = le16(e + 6), ncol = e[2];
    if (bpp) return bpp;
    if (!ncol) return 256;
    int d = 0;
    while ((1 << d) < ncol) d++;
    return d;
}

ngpt_status nx_ico_decode(const uint8_t *buf, size_t len, const char *name, int32_t *w, int32_t *h, uint8_t **rgb)
{
    int n = len >= 6 ? le16(buf + 4) : 0;
    if (n == 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: ICO file holds no image", name);
    if ((len - 6) / 16 < (size_t)n)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated ICO directory (%d entries, %zu bytes)", name, n, len);
    /* Pillow sorts by depth, then (stably) by area, and reverses: the largest area wins, then the
     * deepest, then the later entry; ">=" keeps the later of equals. */
    const uint8_t *best = NULL;
    int64_t best_area = -1;
    int best_depth = -1;
    for (int i = 0; i < n; i++) {
        const uint8_t *e = buf + 6 + 16 * i;
        int64_t area = (int64_t)(e[0] ? e[0] : 256) * (e[1] ? e[1] : 256);
        int depth = ico_depth(e);
        if (area > best_area || (area == best_area && depth >= best_depth))
            best = e, best_area = area, best_depth = depth;
    }
    uint32_t off = le32(best + 12);
    if (off >= len)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: ICO image at offset %u past the end of the file (%zu bytes)", name, off,
                      len);
    const uint8_t *img = buf + off;
    size_t img_len = len - off;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (img_len >= 8 && memcmp(img, png_sig, 8) == 0) return nx_image_decode(img, img_len, name, w, h, rgb);

    /* A DIB: put a BMP file header in front, its pixel offset after the header, masks and
     * palette, and halve the height (the AND mask follows the XOR image). */
    if (img_len < 40 || le32(img) < 40 || le32(img) > img_len)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: ICO image is neither a PNG nor a whole DIB header", name);
    uint32_t hsize = le32(img), comp = le32(img + 16), used = le32(img + 32);
    int bits = le16(img + 14);
    size_t npal = bits <= 8 ? (used && used <= 256 ? used : (size_t)1 << bits) : 0;
    size_t offbits = 14 + hsize + (comp == 3 && hsize == 40 ? 12 : 0) + 4 * npal;
    uint8_t *bmp = nx_malloc(14 + img_len);
    if (!bmp) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot copy a %zu-byte ICO image", name, img_len);
    size_t total = 14 + img_len;
    memset(bmp, 0, 14);
    bmp[0] = 'B', bmp[1] = 'M';
    for (int k = 0; k < 4; k++) bmp[2 + k] = (uint8_t)(total >> (8 * k)), bmp[10 + k] = (uint8_t)(offbits >> (8 * k));
    memcpy(bmp + 14, img, img_len);
    int32_t dib_h = (int32_t)le32(img + 8), half = dib_h / 2; /* Pillow: int(h / 2) */
    for (int k = 0; k < 4; k++) bmp[14 + 8 + k] = (uint8_t)((uint32_t)half >> (8 * k));
    ngpt_status st = nx_image_decode_av(bmp, total, name, NX_IMAGE_BMP, w, h, rgb);
    nx_free(bmp);
    return st;
}
