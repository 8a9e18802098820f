/* image_av.c — BMP, TIFF and Netpbm (PBM/PGM/PPM) through libavcodec's image decoders (FFmpeg's
 * bmp, tiff and pnm), converted to RGB as Pillow 9.4's Image.open(f).convert("RGB") does:
 *
 *   palette     looked up (BMP's BGRX table, TIFF's ColorMap high bytes); an index past a
 *               short BMP palette is gray (i, i, i), Pillow's initial palette;
 *   1 bit       0 / 255 (TIFF's WhiteIsZero and PBM's inverted sense as the file says);
 *   16 bit      RGB and RGBA keep the high byte; gray is Pillow mode "I;16", whose
 *               convert("RGB") CLIPS at 255 (as 16-bit PNG gray);
 *   RGB555/565  BMP's 16-bit pixels, each field scaled as Pillow's unpackers do (v * 255 / 31,
 *               v * 255 / 63, truncating);
 *   CMYK        Pillow's cmyk2rgb (FFmpeg's own conversion rounds differently: see prepare);
 *   RGBa        TIFF associated alpha un-premultiplied as Pillow's "RGBa" unpacker;
 *   maxval      Netpbm samples rescaled as Pillow does (pnm_lut);
 *   alpha       otherwise dropped, not composited;
 *   Orientation a TIFF's tag 274 applied after decoding, as Pillow's TIFF plugin does on load.
 *
 * These are lossless codings (uncompressed, RLE, LZW, Deflate, PackBits, CCITT), so FFmpeg's
 * samples are the file's and the pixels equal Pillow's. JPEG-compressed and tiled TIFF go to
 * image_tiff.c instead: FFmpeg 5.1 returns garbage for both rather than failing (and its IDCT
 * is not libjpeg's anyway).
 *
 * Why FFmpeg and not libtiff: libavcodec is already linked for video; its BMP, TIFF and PNM
 * decoders cover what Pillow reads of these formats, and its get_buffer2 hook lets the size
 * guard run before the frame is allocated (a 60-byte TIFF can claim 13000 x 13000). The headers
 * are read first for what FFmpeg does not check (a BMP cut short, see bmp_check) and for what it
 * would convert its own way. One thread; nothing prints (nx_av_quiet). */
#include "media.h"

#include "av_input.h"
#include "../core/alloc.h"

#include <libavcodec/avcodec.h>
#include <libavutil/pixdesc.h>
#include <limits.h>
#include <math.h>
#include <string.h>

typedef struct av_image {
    const char *name, *fmt;
    bool        zero;      /* clear the frame: BMP RLE leaves skipped pixels unwritten */
    ngpt_status size_st;   /* the size guard's verdict, from get_buffer */
} av_image;

/* The decoder asks for its frame once it knows the size: refuse oversized images here, before
 * anything of that size is allocated. */
static int get_buffer(AVCodecContext *cx, AVFrame *f, int flags)
{
    av_image *a = cx->opaque;
    if ((a->size_st = nx_image_check_size(a->name, a->fmt, f->width, f->height)) != NGPT_OK)
        return AVERROR(ENOMEM);
    int r = avcodec_default_get_buffer2(cx, f, flags);
    if (r >= 0 && a->zero) /* Pillow's RLE decoder gives pixels a delta or an early end skips index 0 */
        for (int p = 0; p < 4 && f->buf[p]; p++) memset(f->buf[p]->data, 0, f->buf[p]->size);
    return r;
}

static inline int rd16(const uint8_t *p, bool be) { return (int)nx_get_uint(p, 2, be); }
static inline uint32_t rd32(const uint8_t *p, bool be) { return nx_get_uint(p, 4, be); }

/* ---- BMP: what the headers say, read before FFmpeg sees the file ---- */

typedef struct bmp_info {
    uint32_t offbits, comp;
    int64_t  w, h;     /* h > 0 whatever the row order */
    int      bits, npal;
} bmp_info;

static bool bmp_read_header(const uint8_t *b, size_t len, bmp_info *m)
{
    if (len < 26) return false;
    m->offbits = rd32(b + 10, false);
    uint32_t hsize = rd32(b + 14, false);
    if (hsize == 12) { /* OS/2 1.x core header: 16-bit sizes, no compression, no colour count */
        m->w = rd16(b + 18, false), m->h = rd16(b + 20, false), m->bits = rd16(b + 24, false), m->comp = 0;
        m->npal = 1 << (m->bits <= 8 ? m->bits : 8);
        return true;
    }
    if (hsize < 40 || len < 50) return false; /* FFmpeg refuses these headers itself */
    m->w = (int32_t)rd32(b + 18, false), m->h = (int32_t)rd32(b + 22, false);
    if (m->h < 0) m->h = -m->h;
    m->bits = rd16(b + 28, false), m->comp = rd32(b + 30, false);
    uint32_t used = rd32(b + 46, false); /* FFmpeg zero-fills its palette past the file's */
    m->npal = used && used <= 256 ? (int)used : m->bits >= 1 && m->bits <= 8 ? 1 << m->bits : 256;
    return true;
}

/* An RLE stream must cover the image or end with an end-of-bitmap code: a file cut inside it is
 * an error, as in Pillow (FFmpeg would quietly leave the rest of the image at index 0). Pixels
 * are counted as Pillow counts them. */
static bool bmp_rle_complete(const uint8_t *b, size_t len, const bmp_info *m)
{
    int64_t total = m->w * m->h, n = 0, x = 0;
    size_t pos = m->offbits;
    while (n < total) {
        if (pos > len || len - pos < 2) return false;
        int c = b[pos], v = b[pos + 1];
        pos += 2;
        if (c) {
            int64_t k = x >= m->w ? 0 : c < m->w - x ? c : m->w - x; /* Pillow clips a run at the row's end */
            n += k, x += k;
        } else if (v == 0) {
            n += x ? m->w - x : 0, x = 0;
        } else if (v == 1) {
            return true;
        } else if (v == 2) {
            if (len - pos < 2) return false;
            n += b[pos] + (int64_t)b[pos + 1] * m->w;
            x = n % m->w;
            pos += 2;
        } else {
            size_t bytes = m->comp == 2 ? (size_t)(v + 1) / 2 : (size_t)v;
            if (len - pos < bytes) return false;
            pos += bytes + (bytes & 1);
            n += v, x += v;
        }
    }
    return true;
}

/* Refuse a cut file before FFmpeg decodes it, as Pillow does: for uncompressed rows FFmpeg would
 * fall back to unpadded rows ("assuming missing line alignment") and return a sheared image.
 * Pillow needs every row's padding but the last's. */
static ngpt_status bmp_check(const char *name, const uint8_t *b, size_t len, const bmp_info *m)
{
    if (m->w <= 0 || m->h <= 0 || m->offbits > len) return NGPT_OK; /* FFmpeg says what is wrong */
    ngpt_status st = nx_image_check_size(name, "BMP", m->w, m->h);
    if (st != NGPT_OK) return st;
    if (m->comp == 1 || m->comp == 2) {
        if (!bmp_rle_complete(b, len, m))
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated BMP: its RLE data ends before the image does", name);
    } else if (m->comp == 0 || m->comp == 3 || m->comp == 6) {
        uint64_t bits = (uint64_t)m->w * (uint64_t)(m->bits > 0 ? m->bits : 1);
        uint64_t need = (bits + 31) / 32 * 4 * (uint64_t)(m->h - 1) + (bits + 7) / 8; /* last row: no padding */
        if (need > len - m->offbits)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated BMP: %lldx%lld at %d bits needs %llu bytes of pixels, "
                          "the file holds %zu", name, (long long)m->w, (long long)m->h, m->bits,
                          (unsigned long long)need, len - m->offbits);
    }
    return NGPT_OK;
}

/* ---- TIFF: what the first IFD says, read before FFmpeg sees the file ---- */

typedef struct tiff_info {
    uint32_t width, height, compression, photometric, samples, bits, extra, sample_format, orientation;
    bool     tiled;
    const nx_tiff_entry *photometric_entry;
} tiff_info;

/* The tags of IFD 0 that decide whether FFmpeg's pixels can be Pillow's. */
static tiff_info tiff_info_of(const uint8_t *b, const nx_tiff_ifd *ifd)
{
    return (tiff_info){
        .width = nx_tiff_value(b, ifd, 256, 0, 0), .height = nx_tiff_value(b, ifd, 257, 0, 0),
        .bits = nx_tiff_value(b, ifd, 258, 0, 1), .compression = nx_tiff_value(b, ifd, 259, 0, 1),
        .photometric = nx_tiff_value(b, ifd, 262, 0, UINT32_MAX), .orientation = nx_tiff_value(b, ifd, 274, 0, 1),
        .samples = nx_tiff_value(b, ifd, 277, 0, 1), .extra = nx_tiff_value(b, ifd, 338, 0, 0),
        .sample_format = nx_tiff_value(b, ifd, 339, 0, 1), .tiled = nx_tiff_find(ifd, 322) != NULL,
        .photometric_entry = nx_tiff_find(ifd, 262),
    };
}

/* Refuse what neither FFmpeg nor image_tiff.c would decode as Pillow (libtiff) does: old-style
 * JPEG and other lossy or exotic compressions, signed or float samples, and colour spaces other
 * than gray, RGB, palette, 8-bit CMYK and (JPEG-compressed) YCbCr. */
static ngpt_status tiff_check(const char *name, const tiff_info *t)
{
    if (t->width && t->height) {
        ngpt_status st = nx_image_check_size(name, "TIFF", t->width, t->height);
        if (st != NGPT_OK) return st;
    }
    switch (t->compression) {
    case 1: case 2: case 3: case 4: case 5: case 7: case 8: case 32773: case 32946: break;
    case 6:
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: old-style JPEG TIFF (compression 6) is not supported (uncompressed, "
                      "LZW, Deflate, PackBits, CCITT and JPEG (7) TIFF are)", name);
    default:
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: TIFF compression %u is not supported (uncompressed, LZW, Deflate, "
                      "PackBits, CCITT and JPEG TIFF are)", name, t->compression);
    }
    if (t->sample_format != 1) /* FFmpeg would read signed or float samples as unsigned integers */
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: TIFF with SampleFormat %u is not supported (unsigned integer samples "
                      "are)", name, t->sample_format);
    if (t->photometric == UINT32_MAX) /* required; readers disagree on a default */
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: TIFF without a PhotometricInterpretation tag", name);
    bool cmyk = t->photometric == 5 && t->samples == 4 && t->bits == 8;
    if (t->photometric > 3 && !cmyk && !(t->photometric == 6 && t->compression == 7))
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: TIFF photometric interpretation %u with %u x %u-bit samples is not "
                      "supported (gray, RGB, palette and 8-bit CMYK are)", name, t->photometric, t->samples, t->bits);
    return NGPT_OK;
}

/* Every strip or tile inside the file: FFmpeg refuses one that is not too ("Invalid data found
 * when processing input"), which does not say that the file was cut short. */
static ngpt_status tiff_check_pieces(const uint8_t *b, size_t len, const nx_tiff_ifd *ifd, const char *name)
{
    const bool tiled = nx_tiff_find(ifd, 322) != NULL;
    const nx_tiff_entry *offs = nx_tiff_find(ifd, tiled ? 324 : 273), *cnts = nx_tiff_find(ifd, tiled ? 325 : 279);
    if (!offs || !cnts) return NGPT_OK; /* the decoders say what is missing */
    const uint32_t n = offs->count < cnts->count ? offs->count : cnts->count;
    for (uint32_t k = 0; k < n; k++) {
        const uint32_t o = nx_tiff_value(b, ifd, offs->tag, k, 0), c = nx_tiff_value(b, ifd, cnts->tag, k, 0);
        if (o > len || c > len - o)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated TIFF: %s %u (%u bytes at offset %u) runs past the end of "
                          "the file (%zu bytes)", name, tiled ? "tile" : "strip", k, c, o, len);
    }
    return NGPT_OK;
}

/* ---- Netpbm: the header, so that maxval can be applied as Pillow does ---- */

/* Next header token as a number (comments from '#' to the end of the line are whitespace).
 * -1 when there is none or it does not fit. */
static int64_t pnm_token(const uint8_t *b, size_t len, size_t *pos)
{
    size_t i = *pos;
    for (;;) {
        while (i < len && strchr(" \t\r\n\v\f", b[i]) && b[i]) i++;
        if (i < len && b[i] == '#') {
            while (i < len && b[i] != '\n' && b[i] != '\r') i++;
            continue;
        }
        break;
    }
    int64_t v = 0;
    size_t start = i;
    while (i < len && b[i] >= '0' && b[i] <= '9' && v < 1000000) v = v * 10 + (b[i++] - '0');
    *pos = i;
    return i == start || (i < len && b[i] >= '0' && b[i] <= '9') ? -1 : v;
}

/* One row of frame f to packed RGB8. false for a pixel format we do not map. */
static bool convert_row(const AVFrame *f, int y, int npal, uint8_t *d)
{
    int w = f->width;
    const uint8_t *s = f->data[0] + (ptrdiff_t)y * f->linesize[0];
    enum AVPixelFormat pf = f->format;
    switch (pf) {
    case AV_PIX_FMT_RGB24:
        memcpy(d, s, (size_t)w * 3);
        return true;
    case AV_PIX_FMT_BGR24:
        for (int x = 0; x < w; x++, s += 3, d += 3) d[0] = s[2], d[1] = s[1], d[2] = s[0];
        return true;
    case AV_PIX_FMT_RGBA: case AV_PIX_FMT_RGB0:
    case AV_PIX_FMT_BGRA: case AV_PIX_FMT_BGR0:
    case AV_PIX_FMT_ARGB: case AV_PIX_FMT_0RGB:
    case AV_PIX_FMT_ABGR: case AV_PIX_FMT_0BGR: {
        const AVPixFmtDescriptor *ds = av_pix_fmt_desc_get(pf);
        int r = ds->comp[0].offset, g = ds->comp[1].offset, b = ds->comp[2].offset;
        for (int x = 0; x < w; x++, s += 4, d += 3) d[0] = s[r], d[1] = s[g], d[2] = s[b];
        return true;
    }
    case AV_PIX_FMT_GRAY8: case AV_PIX_FMT_YA8: {
        int step = pf == AV_PIX_FMT_YA8 ? 2 : 1;
        for (int x = 0; x < w; x++, s += step, d += 3) d[0] = d[1] = d[2] = s[0];
        return true;
    }
    case AV_PIX_FMT_MONOWHITE: case AV_PIX_FMT_MONOBLACK: {
        int on = pf == AV_PIX_FMT_MONOBLACK ? 255 : 0;
        for (int x = 0; x < w; x++, d += 3)
            d[0] = d[1] = d[2] = (uint8_t)(s[x >> 3] >> (7 - (x & 7)) & 1 ? on : 255 - on);
        return true;
    }
    case AV_PIX_FMT_PAL8: {
        const uint32_t *pal = (const uint32_t *)f->data[1];
        for (int x = 0; x < w; x++, d += 3) {
            int i = s[x];
            if (i >= npal) { d[0] = d[1] = d[2] = (uint8_t)i; continue; }
            uint32_t c = pal[i];
            d[0] = (uint8_t)(c >> 16), d[1] = (uint8_t)(c >> 8), d[2] = (uint8_t)c;
        }
        return true;
    }
    case AV_PIX_FMT_RGB555LE: case AV_PIX_FMT_RGB555BE:
    case AV_PIX_FMT_RGB565LE: case AV_PIX_FMT_RGB565BE: {
        bool be = pf == AV_PIX_FMT_RGB555BE || pf == AV_PIX_FMT_RGB565BE;
        bool g6 = pf == AV_PIX_FMT_RGB565LE || pf == AV_PIX_FMT_RGB565BE;
        for (int x = 0; x < w; x++, s += 2, d += 3) {
            int v = rd16(s, be);
            d[0] = (uint8_t)((v >> (g6 ? 11 : 10) & 31) * 255 / 31);
            d[1] = (uint8_t)(g6 ? (v >> 5 & 63) * 255 / 63 : (v >> 5 & 31) * 255 / 31);
            d[2] = (uint8_t)((v & 31) * 255 / 31);
        }
        return true;
    }
    case AV_PIX_FMT_GRAY16LE: case AV_PIX_FMT_GRAY16BE: {
        bool be = pf == AV_PIX_FMT_GRAY16BE;
        for (int x = 0; x < w; x++, s += 2, d += 3) {
            int v = rd16(s, be);
            d[0] = d[1] = d[2] = (uint8_t)(v > 255 ? 255 : v);
        }
        return true;
    }
    case AV_PIX_FMT_YA16LE: case AV_PIX_FMT_YA16BE:
    case AV_PIX_FMT_RGB48LE: case AV_PIX_FMT_RGB48BE:
    case AV_PIX_FMT_RGBA64LE: case AV_PIX_FMT_RGBA64BE: {
        const AVPixFmtDescriptor *ds = av_pix_fmt_desc_get(pf);
        bool be = ds->flags & AV_PIX_FMT_FLAG_BE, gray = ds->nb_components <= 2;
        int step = ds->comp[0].step, hi = be ? 0 : 1;
        for (int x = 0; x < w; x++, s += step, d += 3) {
            if (gray) d[0] = d[1] = d[2] = s[hi];
            else d[0] = s[hi], d[1] = s[2 + hi], d[2] = s[4 + hi];
        }
        return true;
    }
    case AV_PIX_FMT_GBRP: case AV_PIX_FMT_GBRAP: {
        const uint8_t *g = s, *b = f->data[1] + (ptrdiff_t)y * f->linesize[1],
                      *r = f->data[2] + (ptrdiff_t)y * f->linesize[2];
        for (int x = 0; x < w; x++, d += 3) d[0] = r[x], d[1] = g[x], d[2] = b[x];
        return true;
    }
    default:
        return false;
    }
}

/* Pillow's Netpbm values: round(v / maxval * out_max) in doubles (Python's round: half to even,
 * as nearbyint in the default rounding mode), clipped; out_max is 65535 for gray with maxval >
 * 255 (Pillow mode "I", whose convert("RGB") then clips at 255), else 255. */
static void pnm_lut(uint8_t *lut, int maxval, bool gray)
{
    double out_max = gray && maxval > 255 ? 65535.0 : 255.0;
    for (int v = 0; v < 65536; v++) {
        double x = nearbyint((double)v / maxval * out_max);
        lut[v] = (uint8_t)(x > 255 ? 255 : x);
    }
}

typedef struct av_job {
    nx_image_codec codec;
    uint8_t *data;      /* the packet's bytes: the file, patched where said below */
    size_t   len;
    int      npal;      /* BMP: palette entries the file holds */
    bool     cmyk;      /* TIFF CMYK, relabelled RGB(A) so that FFmpeg hands us the inks */
    size_t   cmyk_at, cmyk_size; /* where its (first) Photometric value lies, and its bytes */
    bool     assoc;     /* TIFF RGBA with associated (premultiplied) alpha */
    int      orientation; /* TIFF Orientation 2..8, applied after decoding as Pillow does */
    int      maxval;    /* Netpbm gray/colour: the file's maxval (the packet says 255 or 65535) */
} av_job;

/* The packet for FFmpeg: a copy of the file, except that a CMYK TIFF is relabelled RGB (FFmpeg
 * would convert with its own rounding, not Pillow's) and a Netpbm header gets maxval 255 or 65535
 * (FFmpeg would rescale other maxvals with its own rounding) — we apply maxval ourselves. */
static ngpt_status prepare(av_job *j, const uint8_t *buf, size_t len, const char *name, const char *fmt)
{
    const uint8_t *body = buf;
    size_t body_len = len, head_len = 0;
    char head[64];
    bmp_info bm;
    if (j->codec == NX_IMAGE_BMP && bmp_read_header(buf, len, &bm)) {
        ngpt_status st = bmp_check(name, buf, len, &bm);
        if (st != NGPT_OK) return st;
        j->npal = bm.npal;
    }
    if (j->codec == NX_IMAGE_PGM || j->codec == NX_IMAGE_PPM) {
        size_t pos = 2;
        int64_t w = pnm_token(buf, len, &pos), h = pnm_token(buf, len, &pos), mv = pnm_token(buf, len, &pos);
        if (w < 0 || h < 0 || mv < 0 || pos >= len)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated or corrupt %s header", name, fmt);
        ngpt_status st = nx_image_check_size(name, fmt, w, h);
        if (st != NGPT_OK) return st;
        if (mv < 1 || mv > 65535)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: %s maxval %lld outside 1..65535", name, fmt, (long long)mv);
        j->maxval = (int)mv;
        bool plain = buf[1] <= '3';
        head_len = (size_t)snprintf(head, sizeof head, "P%c\n%lld %lld\n%d\n", buf[1], (long long)w, (long long)h,
                                    mv > 255 ? 65535 : 255);
        body = buf + pos + (plain ? 0 : 1); /* a raw raster starts after one whitespace byte */
        body_len = len - (size_t)(body - buf);
    }
    if (body_len > (size_t)INT_MAX - AV_INPUT_BUFFER_PADDING_SIZE - head_len)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: %s file larger than 2 GiB", name, fmt);
    j->len = head_len + body_len;
    if (!(j->data = av_mallocz(j->len + AV_INPUT_BUFFER_PADDING_SIZE)))
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot copy a %zu-byte %s file", name, len, fmt);
    memcpy(j->data, head, head_len);
    memcpy(j->data + head_len, body, body_len);
    if (j->cmyk) {
        uint8_t *v = j->data + j->cmyk_at;
        memset(v, 0, j->cmyk_size);
        v[buf[0] == 'M' ? j->cmyk_size - 1 : 0] = 2; /* RGB */
    }
    return NGPT_OK;
}

/* Frame f to packed RGB8 as the job says. false for a pixel layout we do not map. */
static bool convert(const av_job *j, const AVFrame *f, uint8_t *rgb)
{
    int w = f->width, h = f->height;
    enum AVPixelFormat pf = f->format;
    if (j->maxval && pf != AV_PIX_FMT_MONOWHITE) {
        uint8_t lut[65536];
        bool gray = pf == AV_PIX_FMT_GRAY8 || pf == AV_PIX_FMT_GRAY16LE || pf == AV_PIX_FMT_GRAY16BE;
        bool wide = pf == AV_PIX_FMT_GRAY16LE || pf == AV_PIX_FMT_GRAY16BE || pf == AV_PIX_FMT_RGB48LE ||
                    pf == AV_PIX_FMT_RGB48BE;
        bool be = pf == AV_PIX_FMT_GRAY16BE || pf == AV_PIX_FMT_RGB48BE;
        if (!gray && !wide && pf != AV_PIX_FMT_RGB24) return false;
        pnm_lut(lut, j->maxval, gray);
        for (int y = 0; y < h; y++) {
            const uint8_t *s = f->data[0] + (ptrdiff_t)y * f->linesize[0];
            uint8_t *d = rgb + (size_t)y * w * 3;
            for (int x = 0; x < w; x++, d += 3)
                for (int c = 0; c < 3; c++) {
                    int i = gray ? x : 3 * x + c;
                    d[c] = lut[wide ? rd16(s + 2 * i, be) : s[i]];
                }
        }
        return true;
    }
    if (j->cmyk) {
        bool planar = pf == AV_PIX_FMT_GBRAP;
        if (!planar && pf != AV_PIX_FMT_RGBA) return false;
        for (int y = 0; y < h; y++) {
            const uint8_t *p[4];
            for (int c = 0; c < 4; c++) p[c] = f->data[planar ? c : 0] + (ptrdiff_t)y * f->linesize[planar ? c : 0];
            uint8_t *d = rgb + (size_t)y * w * 3;
            for (int x = 0; x < w; x++, d += 3) {
                int ink[4];
                if (planar) ink[0] = p[2][x], ink[1] = p[0][x], ink[2] = p[1][x], ink[3] = p[3][x];
                else for (int c = 0; c < 4; c++) ink[c] = p[0][4 * x + c];
                for (int c = 0; c < 3; c++) d[c] = nx_cmyk2rgb(ink[c], ink[3]);
            }
        }
        return true;
    }
    if (j->assoc) { /* Pillow's "RGBa" unpacker: c * 255 / a clipped, black where a = 0 */
        if (pf != AV_PIX_FMT_RGBA) return false;
        for (int y = 0; y < h; y++) {
            const uint8_t *s = f->data[0] + (ptrdiff_t)y * f->linesize[0];
            uint8_t *d = rgb + (size_t)y * w * 3;
            for (int x = 0; x < w; x++, s += 4, d += 3)
                for (int c = 0; c < 3; c++) {
                    int v = s[3] == 0 ? 0 : s[3] == 255 ? s[c] : s[c] * 255 / s[3];
                    d[c] = (uint8_t)(v > 255 ? 255 : v);
                }
        }
        return true;
    }
    for (int y = 0; y < h; y++)
        if (!convert_row(f, y, j->npal, rgb + (size_t)y * w * 3)) return false;
    return true;
}

ngpt_status nx_image_decode_av(const uint8_t *buf, size_t len, const char *name, nx_image_codec codec,
                               int32_t *ow, int32_t *oh, uint8_t **out)
{
    static const struct { enum AVCodecID id; const char *fmt; } codecs[] = {
        [NX_IMAGE_BMP] = {AV_CODEC_ID_BMP, "BMP"},
        [NX_IMAGE_TIFF] = {AV_CODEC_ID_TIFF, "TIFF"},
        [NX_IMAGE_PBM] = {AV_CODEC_ID_PBM, "PBM"},
        [NX_IMAGE_PGM] = {AV_CODEC_ID_PGM, "PGM"},
        [NX_IMAGE_PPM] = {AV_CODEC_ID_PPM, "PPM"},
    };
    av_image a = {.name = name, .fmt = codecs[codec].fmt};
    av_job j = {.codec = codec, .npal = 256};
    a.zero = codec == NX_IMAGE_BMP;
    nx_av_quiet();
    const AVCodec *dec = avcodec_find_decoder(codecs[codec].id);
    if (!dec) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: this FFmpeg build has no %s decoder", name, a.fmt);
    ngpt_status st = NGPT_OK;
    AVCodecContext *cx = NULL;
    AVPacket *pkt = NULL;
    AVFrame *f = NULL;
    uint8_t *rgb = NULL;
    char eb[128];
    int r;
    int32_t w, h;
    if (codec == NX_IMAGE_TIFF) {
        nx_tiff_ifd ifd;
        if (nx_tiff_read_ifd0(buf, len, &ifd)) {
            if (ifd.cut_tag)
                return nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated TIFF: the values of tag %d run past the end of the "
                              "file", name, ifd.cut_tag);
            tiff_info t = tiff_info_of(buf, &ifd);
            if ((st = tiff_check(name, &t)) != NGPT_OK) return st;
            if ((st = tiff_check_pieces(buf, len, &ifd, name)) != NGPT_OK) return st;
            j.cmyk = t.photometric == 5;
            const nx_tiff_entry *ph = t.photometric_entry;
            if (ph) j.cmyk_at = ph->at, j.cmyk_size = ph->size / ph->count; /* the first value, whatever the count */
            j.assoc = t.photometric == 2 && t.samples == 4 && t.bits == 8 && t.extra == 1;
            j.orientation = t.orientation >= 2 && t.orientation <= 8 ? (int)t.orientation : 0;
            if (t.tiled || t.compression == 7) { /* FFmpeg 5.1 returns garbage for both */
                if ((st = nx_tiff_decode_chunks(buf, len, &ifd, name, &w, &h, &rgb)) != NGPT_OK) return st;
                goto transpose;
            }
        } else if (len >= 8) {
            return nx_tiff_ifd_error(&ifd, len, name);
        }
    }
    if ((st = prepare(&j, buf, len, name, a.fmt)) != NGPT_OK) return st;
    cx = avcodec_alloc_context3(dec);
    pkt = av_packet_alloc();
    f = av_frame_alloc();
    if (!cx || !pkt || !f || av_packet_from_data(pkt, j.data, (int)j.len) < 0) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %s decoder", name, a.fmt);
        goto done;
    }
    j.data = NULL; /* the packet owns it */
    cx->opaque = &a;
    cx->get_buffer2 = get_buffer;
    cx->thread_count = 1;
    cx->thread_type = 0;
    if ((r = avcodec_open2(cx, dec, NULL)) < 0) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot open FFmpeg's %s decoder: %s", name, a.fmt,
                    nx_av_err(r, eb, sizeof eb));
        goto done;
    }
    if ((r = avcodec_send_packet(cx, pkt)) >= 0) {
        r = avcodec_receive_frame(cx, f);
        if (r == AVERROR(EAGAIN) && (r = avcodec_send_packet(cx, NULL)) >= 0) r = avcodec_receive_frame(cx, f);
    }
    if (a.size_st != NGPT_OK) {
        st = a.size_st;
        goto done;
    }
    if (r < 0) {
        st = nx_err(r == AVERROR(ENOMEM) ? NGPT_ERR_OUT_OF_MEMORY : NGPT_ERR_BAD_FORMAT,
                    "%s: corrupt, truncated or unsupported %s image: %s", name, a.fmt, nx_av_err(r, eb, sizeof eb));
        goto done;
    }
    w = f->width, h = f->height;
    if (!(rgb = nx_malloc((size_t)w * (size_t)h * 3))) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %dx%d image", name, w, h);
        goto done;
    }
    if (!convert(&j, f, rgb)) {
        const char *pn = av_get_pix_fmt_name(f->format);
        st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: %s image with pixel layout %s is not supported", name, a.fmt,
                    pn ? pn : "unknown");
        goto done;
    }
transpose:
    if (j.orientation) { /* Pillow's TiffImagePlugin.load_end transposes on open (not so for JPEG's EXIF) */
        uint8_t *o = nx_malloc((size_t)w * (size_t)h * 3);
        if (!o) {
            st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %dx%d image", name, w, h);
            goto done;
        }
        nx_rgb8_orient(rgb, w, h, j.orientation, o);
        if (j.orientation >= 5) {
            int32_t t = w;
            w = h, h = t;
        }
        nx_free(rgb);
        rgb = o;
    }
    *ow = w;
    *oh = h;
    *out = rgb;
    rgb = NULL;
done:
    av_free(j.data);
    nx_free(rgb);
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&cx);
    return st;
}
