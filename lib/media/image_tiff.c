/* image_tiff.c — the TIFF container: IFD 0 read for the checks image_av.c makes before FFmpeg
 * sees a file, and the two layouts FFmpeg 5.1 decodes wrongly (garbage, not an error), taken
 * apart chunk by chunk (a chunk is a tile, or a strip of a JPEG-compressed TIFF):
 *
 *   tiles           each tile becomes a one-strip TIFF of its own (the file's other tags, the
 *                   tile's bytes), decoded through image_av.c as any TIFF, and placed;
 *   JPEG (7)        each chunk is a JPEG stream, abbreviated when the file has JPEGTables:
 *                   the tables' segments go in front of the chunk's and libjpeg decodes it as
 *                   our JPEG path does (image.c), with libtiff's colour handling: YCbCr
 *                   converted by libjpeg (JPEGCOLORMODE_RGB, which Pillow sets), gray, RGB and
 *                   CMYK taken as stored (CMYK not inverted, unlike a JPEG file); checked
 *                   against Pillow + libtiff on strips and tiles, YCbCr subsampled 1x1, 2x1
 *                   and 2x2, CMYK.
 *
 * Pixels of a tile or strip past the image's edge are dropped, as libtiff does. */
#include "media.h"

#include "../core/alloc.h"

#include <string.h>

/* The largest image (NX_IMAGE_MAX_PIXELS) in 64 x 64 tiles is 43691 chunks; the usual 256 x 256
 * tiles stay far below. */
#define NX_TIFF_MAX_CHUNKS 65536

static void wr(uint8_t *p, int size, bool be, uint32_t v)
{
    for (int i = 0; i < size; i++) p[be ? size - 1 - i : i] = (uint8_t)(v >> (8 * i));
}

/* Bytes per value of the TIFF 6 field types (0: unknown, BigTIFF's 8-byte types included). */
static int type_size(int type)
{
    static const int sizes[] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4};
    return type > 0 && type < (int)(sizeof sizes / sizeof *sizes) ? sizes[type] : 0;
}

bool nx_tiff_read_ifd0(const uint8_t *b, size_t len, nx_tiff_ifd *ifd)
{
    ifd->be = len > 0 && b[0] == 'M';
    ifd->n = 0;
    ifd->cut_tag = 0;
    ifd->off = ifd->listed = 0;
    if (len < 8) return false;
    size_t off = ifd->off = nx_get_uint(b + 4, 4, ifd->be);
    if (off > len || len - off < 2) return false;
    size_t n = ifd->listed = nx_get_uint(b + off, 2, ifd->be);
    if ((len - off - 2) / 12 < n || n > NX_TIFF_MAX_ENTRIES) return false;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = b + off + 2 + 12 * i;
        nx_tiff_entry *t = &ifd->e[ifd->n];
        t->tag = (uint16_t)nx_get_uint(e, 2, ifd->be);
        t->type = (uint16_t)nx_get_uint(e + 2, 2, ifd->be);
        t->count = nx_get_uint(e + 4, 4, ifd->be);
        int ts = type_size(t->type);
        if (!ts || t->count == 0 || t->count > len / (size_t)ts) continue; /* unknown or impossible */
        t->size = (size_t)ts * t->count;
        t->at = t->size <= 4 ? (size_t)(e + 8 - b) : nx_get_uint(e + 8, 4, ifd->be); /* inline when it fits */
        if (t->at > len || len - t->at < t->size) {
            /* Pillow skips such a tag with a warning; without one of the size, sample or
             * strip/tile layout tags it then cannot identify the file */
            static const uint16_t layout[] = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 322, 323, 324, 325,
                                              347 /* JPEGTables: without them libjpeg finds no tables */};
            for (size_t k = 0; k < sizeof layout / sizeof *layout; k++)
                if (t->tag == layout[k] && !ifd->cut_tag) ifd->cut_tag = t->tag;
            continue;
        }
        ifd->n++;
    }
    return true;
}

ngpt_status nx_tiff_ifd_error(const nx_tiff_ifd *ifd, size_t len, const char *name)
{
    /* TIFF writers put IFD 0 after the pixels, so a file cut short loses it first */
    if (ifd->off > len || len - ifd->off < 2)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated or corrupt TIFF: its first IFD is at offset %zu, past the end "
                      "of the file (%zu bytes)", name, ifd->off, len);
    if (ifd->listed > NX_TIFF_MAX_ENTRIES)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt TIFF: its first IFD lists %zu entries (at most %d are read)",
                      name, ifd->listed, NX_TIFF_MAX_ENTRIES);
    return nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated TIFF: the %zu entries of its first IFD (at offset %zu) run past "
                  "the end of the file (%zu bytes)", name, ifd->listed, ifd->off, len);
}

const nx_tiff_entry *nx_tiff_find(const nx_tiff_ifd *ifd, int tag)
{
    for (int i = 0; i < ifd->n; i++)
        if (ifd->e[i].tag == tag) return &ifd->e[i];
    return NULL;
}

uint32_t nx_tiff_value(const uint8_t *b, const nx_tiff_ifd *ifd, int tag, uint32_t idx, uint32_t dflt)
{
    const nx_tiff_entry *t = nx_tiff_find(ifd, tag);
    if (!t || idx >= t->count) return dflt;
    int ts = type_size(t->type);
    if (ts != 1 && ts != 2 && ts != 4) return dflt; /* not an integer field */
    return nx_get_uint(b + t->at + (size_t)ts * idx, ts, ifd->be);
}

/* ---- tiles through FFmpeg ---- */

/* The file's tags a tile's one-strip TIFF keeps: those that say how to decode the pixels (not
 * the size and layout, which it gets anew, nor Orientation, which our caller applies, nor ICC,
 * XMP, EXIF and other metadata, which would be copied for every tile). */
static bool kept(int tag)
{
    static const uint16_t tags[] = {258, 259, 262, 266, 277, 284, 292, 293, 317, 320, 332, 338, 339};
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++)
        if (tags[i] == tag) return true;
    return false;
}

/* A one-strip TIFF of width tw, height th whose strips (one per plane) are the chunks
 * `chunk[p]` of the file: the file's other tags, their values copied. *out nx_malloc'ed. */
static ngpt_status tile_tiff(const uint8_t *b, const nx_tiff_ifd *ifd, uint32_t tw, uint32_t th, int planes,
                             const uint8_t *const *chunk, const uint32_t *chunk_len, const char *name,
                             uint8_t **out, size_t *out_len)
{
    bool be = ifd->be;
    int n = 5;
    size_t extra = 0, data = 0;
    for (int i = 0; i < ifd->n; i++)
        if (kept(ifd->e[i].tag)) n++, extra += ifd->e[i].size > 4 ? (ifd->e[i].size + 1) & ~(size_t)1 : 0;
    if (extra > (1u << 20)) /* a 16-bit ColorMap is 384 KiB; more is a file built to make us copy */
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: TIFF tag values of %zu bytes", name, extra);
    for (int p = 0; p < planes; p++) data += chunk_len[p];
    size_t ifd_len = 2 + 12 * (size_t)n + 4, arrays = planes > 1 ? 8 * (size_t)planes : 0;
    size_t total = 8 + ifd_len + extra + arrays + data;
    uint8_t *t = nx_malloc(total);
    if (!t) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a TIFF tile (%zu bytes)", name, total);
    memcpy(t, be ? "MM\0*" : "II*\0", 4);
    wr(t + 4, 4, be, 8);
    wr(t + 8, 2, be, (uint32_t)n);
    size_t vals = 8 + ifd_len, arr = vals + extra, pix = arr + arrays;
    /* entries in tag order: the kept ones (the file's are in order) with ours merged in */
    const uint32_t ours[5][2] = {{256, tw}, {257, th}, {273, 0}, {278, th}, {279, 0}};
    uint8_t *e = t + 10;
    int k = 0;
    for (int i = 0; i <= ifd->n; i++) {
        const nx_tiff_entry *f = i < ifd->n ? &ifd->e[i] : NULL;
        while (k < 5 && (!f || ours[k][0] < f->tag)) {
            wr(e, 2, be, ours[k][0]);
            wr(e + 2, 2, be, 4); /* LONG */
            wr(e + 4, 4, be, ours[k][0] == 273 || ours[k][0] == 279 ? (uint32_t)planes : 1);
            uint32_t v = ours[k][1];
            if (ours[k][0] == 273 || ours[k][0] == 279) {
                size_t at = ours[k][0] == 273 ? arr : arr + 4 * (size_t)planes, o = pix;
                for (int p = 0; p < planes; p++) {
                    uint32_t x = ours[k][0] == 273 ? (uint32_t)o : chunk_len[p];
                    if (planes > 1) wr(t + at + 4 * (size_t)p, 4, be, x);
                    else v = x;
                    o += chunk_len[p];
                }
                if (planes > 1) v = (uint32_t)at;
            }
            wr(e + 8, 4, be, v);
            e += 12, k++;
        }
        if (!f || !kept(f->tag)) continue;
        wr(e, 2, be, f->tag);
        wr(e + 2, 2, be, f->type);
        wr(e + 4, 4, be, f->count);
        memset(e + 8, 0, 4);
        if (f->size <= 4) {
            memcpy(e + 8, b + f->at, f->size);
        } else {
            memcpy(t + vals, b + f->at, f->size);
            wr(e + 8, 4, be, (uint32_t)vals);
            vals += (f->size + 1) & ~(size_t)1;
        }
        e += 12;
    }
    wr(e, 4, be, 0); /* no next IFD */
    for (int p = 0; p < planes; p++) memcpy(t + pix, chunk[p], chunk_len[p]), pix += chunk_len[p];
    *out = t;
    *out_len = total;
    return NGPT_OK;
}

/* ---- the chunk loop ---- */

ngpt_status nx_tiff_decode_chunks(const uint8_t *b, size_t len, const nx_tiff_ifd *ifd, const char *name,
                                  int32_t *ow, int32_t *oh, uint8_t **out)
{
    uint32_t w = nx_tiff_value(b, ifd, 256, 0, 0), h = nx_tiff_value(b, ifd, 257, 0, 0);
    ngpt_status st = nx_image_check_size(name, "TIFF", w, h);
    if (st != NGPT_OK) return st;
    bool tiled = nx_tiff_find(ifd, 322) != NULL, jpeg = nx_tiff_value(b, ifd, 259, 0, 1) == 7;
    uint32_t cw = tiled ? nx_tiff_value(b, ifd, 322, 0, 0) : w;
    uint32_t ch = tiled ? nx_tiff_value(b, ifd, 323, 0, 0) : nx_tiff_value(b, ifd, 278, 0, h);
    if (ch > h) ch = h;
    if ((st = nx_image_check_size(name, tiled ? "TIFF tile" : "TIFF strip", cw, ch)) != NGPT_OK) return st;
    int planes = nx_tiff_value(b, ifd, 284, 0, 1) == 2 ? (int)nx_tiff_value(b, ifd, 277, 0, 1) : 1;
    if (planes < 1 || planes > 8)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: TIFF with %d separate planes", name, planes);
    if (jpeg && planes > 1)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: JPEG-compressed TIFF with separate planes is not supported", name);
    uint32_t photometric = nx_tiff_value(b, ifd, 262, 0, 0);
    if (jpeg && photometric != 1 && photometric != 2 && photometric != 5 && photometric != 6)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: JPEG-compressed TIFF with photometric interpretation %u is not "
                      "supported (gray, RGB, CMYK and YCbCr are)", name, photometric);
    nx_jpeg_mode jmode = photometric == 6 ? NX_JPEG_TIFF_YCBCR : NX_JPEG_TIFF_RAW;
    uint32_t across = (w + cw - 1) / cw, down = (h + ch - 1) / ch, per_plane = across * down;
    if ((uint64_t)per_plane * (uint64_t)planes > NX_TIFF_MAX_CHUNKS) /* each is a decoder run: bound the work */
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: TIFF of %ux%u in %u %s of %ux%u: more than %d pieces", name, w, h,
                      per_plane * (uint32_t)planes, tiled ? "tiles" : "strips", cw, ch, NX_TIFF_MAX_CHUNKS);
    const nx_tiff_entry *offs = nx_tiff_find(ifd, tiled ? 324 : 273), *cnts = nx_tiff_find(ifd, tiled ? 325 : 279);
    if (!offs || !cnts || offs->count < per_plane * (uint32_t)planes || cnts->count < per_plane * (uint32_t)planes)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: TIFF lists fewer %s than its %ux%u image in %ux%u pieces needs", name,
                      tiled ? "tiles" : "strips", w, h, cw, ch);
    const nx_tiff_entry *tables = jpeg ? nx_tiff_find(ifd, 347) : NULL;
    size_t tlen = tables && tables->size >= 4 ? tables->size - 2 : 0; /* its segments, without EOI */
    /* what a piece can need: its samples uncompressed, twice over (no coding expands more), so
     * that pieces pointing at one large blob do not make us copy it again and again */
    uint64_t cap = 2 * (uint64_t)cw * ch * (uint64_t)nx_tiff_value(b, ifd, 277, 0, 1) *
                   ((nx_tiff_value(b, ifd, 258, 0, 8) + 7) / 8) + 4096;
    uint8_t *img = nx_malloc((size_t)w * h * 3), *piece = NULL, *rgb = NULL;
    if (!img) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %ux%u image", name, w, h);
    for (uint32_t k = 0; k < per_plane && st == NGPT_OK; k++) {
        const uint8_t *chunk[8];
        uint32_t chunk_len[8];
        for (int p = 0; p < planes; p++) {
            uint32_t o = nx_tiff_value(b, ifd, offs->tag, k + (uint32_t)p * per_plane, 0);
            uint32_t c = nx_tiff_value(b, ifd, cnts->tag, k + (uint32_t)p * per_plane, 0);
            if (o > len || c > len - o) {
                st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated TIFF: %s %u at %u+%u past the end (%zu bytes)", name,
                            tiled ? "tile" : "strip", k, o, c, len);
                break;
            }
            chunk[p] = b + o, chunk_len[p] = c < cap ? c : (uint32_t)cap;
        }
        if (st != NGPT_OK) break;
        size_t plen = 0;
        if (jpeg) { /* SOI + the tables' segments + the chunk after its SOI */
            if (chunk_len[0] < 2) {
                st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: TIFF %s %u holds no JPEG stream", name, tiled ? "tile" : "strip", k);
                break;
            }
            plen = tlen + chunk_len[0] - (tlen ? 2 : 0);
            if (!(piece = nx_malloc(plen))) {
                st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %zu-byte JPEG stream", name, plen);
                break;
            }
            if (tlen) memcpy(piece, b + tables->at, tlen), memcpy(piece + tlen, chunk[0] + 2, chunk_len[0] - 2);
            else memcpy(piece, chunk[0], chunk_len[0]);
        } else if ((st = tile_tiff(b, ifd, cw, ch, planes, chunk, chunk_len, name, &piece, &plen)) != NGPT_OK) {
            break;
        }
        int32_t pw = 0, ph = 0;
        st = jpeg ? nx_jpeg_decode_as(piece, plen, name, jmode, &pw, &ph, &rgb)
                  : nx_image_decode_av(piece, plen, name, NX_IMAGE_TIFF, &pw, &ph, &rgb);
        nx_free(piece);
        piece = NULL;
        if (st != NGPT_OK) break;
        uint32_t x0 = (k % across) * cw, y0 = (k / across) * ch;
        uint32_t nx = w - x0 < cw ? w - x0 : cw, ny = h - y0 < ch ? h - y0 : ch;
        if ((uint32_t)pw < nx || (uint32_t)ph < ny) {
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: TIFF %s %u decodes to %dx%d, smaller than its %ux%u place", name,
                        tiled ? "tile" : "strip", k, pw, ph, nx, ny);
        } else {
            for (uint32_t y = 0; y < ny; y++)
                memcpy(img + ((size_t)(y0 + y) * w + x0) * 3, rgb + (size_t)y * (size_t)pw * 3, (size_t)nx * 3);
        }
        nx_free(rgb);
        rgb = NULL;
    }
    if (st != NGPT_OK) {
        nx_free(img);
        return st;
    }
    *ow = (int32_t)w;
    *oh = (int32_t)h;
    *out = img;
    return NGPT_OK;
}
