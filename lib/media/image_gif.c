/* image_gif.c — GIF through giflib, as Pillow 9.4 opens it and converts it to RGB (its own LZW
 * decoder gives the same indices for a valid stream; the layout rules below were checked
 * against Pillow, `python_media` keeps them checked):
 *
 *   the first image of the file only; the canvas is the logical screen, grown to hold the
 *   image if it reaches past it; outside the image the canvas holds index 0, or the
 *   transparent index when the graphic control extension before the image sets one (the
 *   screen's background colour is NOT used); indices go through the image's local colour
 *   table, else the global one, else are gray levels (Pillow mode "L"); an index past the
 *   table is gray (i, i, i), Pillow's initial palette; transparency is otherwise ignored
 *   (convert("RGB") drops it). Interlaced rows are put back in order. */
#include "media.h"

#include "../core/alloc.h"

#include <gif_lib.h>
#include <stdbool.h>
#include <string.h>

typedef struct gif_mem {
    const uint8_t *buf;
    size_t len, pos;
    bool pad;  /* a block size read at the end gives 0 (see the last DGifGetLine below) */
} gif_mem;

static int gif_read(GifFileType *g, GifByteType *dst, int n)
{
    gif_mem *m = g->UserData;
    size_t want = n < 0 ? 0 : (size_t)n, k = want;
    if (k > m->len - m->pos) k = m->len - m->pos;
    memcpy(dst, m->buf + m->pos, k);
    m->pos += k;
    if (m->pad && want == 1 && k == 0) {
        dst[0] = 0;
        k = 1;
    }
    return (int)k;
}

static ngpt_status gif_fail(const char *name, int code)
{
    const char *why = GifErrorString(code);
    return nx_err(code == D_GIF_ERR_NOT_ENOUGH_MEM ? NGPT_ERR_OUT_OF_MEMORY : NGPT_ERR_BAD_FORMAT,
                  "%s: corrupt or truncated GIF: %s", name, why ? why : "unknown giflib error");
}

ngpt_status nx_gif_decode(const uint8_t *buf, size_t len, const char *name, int32_t *w, int32_t *h, uint8_t **rgb)
{
    gif_mem m = {buf, len, 0, false};
    int err = 0;
    GifFileType *g = DGifOpen(&m, gif_read, &err);
    if (!g) return gif_fail(name, err);
    ngpt_status st = NGPT_OK;
    uint8_t *idx = NULL, *out = NULL, *row = NULL;
    int trns = -1;
    GifRecordType rt;
    for (;;) {  /* extensions up to the first image */
        if (DGifGetRecordType(g, &rt) == GIF_ERROR) goto giferr;
        if (rt == IMAGE_DESC_RECORD_TYPE) break;
        if (rt == TERMINATE_RECORD_TYPE) {
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: GIF file holds no image", name);
            goto done;
        }
        if (rt == EXTENSION_RECORD_TYPE) {
            int code = 0;
            GifByteType *ext = NULL;
            if (DGifGetExtension(g, &code, &ext) == GIF_ERROR) goto giferr;
            /* a graphic control block with the transparency flag sets the index; one without it
             * leaves an earlier one's (as Pillow reads them) */
            if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4 && (ext[1] & 1)) trns = ext[4];
            while (ext) if (DGifGetExtensionNext(g, &ext) == GIF_ERROR) goto giferr;
        }
    }
    if (DGifGetImageDesc(g) == GIF_ERROR) goto giferr;
    const GifImageDesc *d = &g->Image;
    const int64_t x0 = d->Left, y0 = d->Top, fw = d->Width, fh = d->Height;
    const int64_t cw = x0 + fw > g->SWidth ? x0 + fw : g->SWidth, ch = y0 + fh > g->SHeight ? y0 + fh : g->SHeight;
    if ((st = nx_image_check_size(name, "GIF", cw, ch)) != NGPT_OK) goto done;
    if (fw <= 0 || fh <= 0) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: GIF image of size %lldx%lld", name, (long long)fw, (long long)fh);
        goto done;
    }
    idx = nx_malloc((size_t)(cw * ch));
    out = nx_malloc((size_t)(cw * ch) * 3);
    row = nx_malloc((size_t)fw);
    if (!idx || !out || !row) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %lldx%lld image", name, (long long)cw, (long long)ch);
        goto done;
    }
    memset(idx, trns >= 0 ? trns : 0, (size_t)(cw * ch));
    static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
    int64_t lines = 0;
    for (int pass = 0; pass < (d->Interlace ? 4 : 1); pass++)
        for (int64_t y = d->Interlace ? start[pass] : 0; y < fh; y += d->Interlace ? step[pass] : 1) {
            /* After the last pixel giflib reads on to the image data's empty terminating block;
             * Pillow stops at the last pixel, so a file cut just before that block opens there:
             * a block size read at the end of the file is taken as that 0. A file cut earlier
             * still fails: a short block is a read error, a 0 block amid the pixels a defect. */
            m.pad = ++lines == fh;
            if (DGifGetLine(g, row, (int)fw) == GIF_ERROR) goto giferr;
            memcpy(idx + (y0 + y) * cw + x0, row, (size_t)fw);
        }
    const ColorMapObject *cm = d->ColorMap ? d->ColorMap : g->SColorMap;
    for (int64_t i = 0; i < cw * ch; i++) {
        const int v = idx[i];
        if (cm && v < cm->ColorCount) {
            out[3 * i] = cm->Colors[v].Red, out[3 * i + 1] = cm->Colors[v].Green, out[3 * i + 2] = cm->Colors[v].Blue;
        } else {
            out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = (uint8_t)v;
        }
    }
    *w = (int32_t)cw;
    *h = (int32_t)ch;
    *rgb = out;
    out = NULL;
    goto done;
giferr:
    st = gif_fail(name, g->Error);
done:
    nx_free(idx);
    nx_free(out);
    nx_free(row);
    DGifCloseFile(g, &err);
    return st;
}
