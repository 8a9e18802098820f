/* encode_image.c — RGB8 to PNG (libpng) and JPEG (libjpeg-turbo's TurboJPEG API), in memory.
 *
 * PNG: libpng writes through png_set_write_fn into an nx_bytes buffer; its allocations
 * (including zlib's) go through nx_malloc via png_create_write_struct_2, so the library's
 * allocation accounting and failure injection cover them. libpng's errors are reported
 * through an error callback that records the message and longjmps back into nx_png_encode
 * (the only setjmp; every resource is reachable from a struct, so nothing leaks); warnings are
 * discarded. Nothing prints.
 * JPEG: tjCompress2 (baseline, libjpeg-turbo's default accurate DCT), its own buffer copied
 * into the nx_bytes buffer.
 *
 * Also the small shared nx_bytes buffer used by every encoder.
 */
#include "encode.h"

#include "../core/alloc.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <turbojpeg.h>

/* ---------------------------------------------------------------------------------------------
 * nx_bytes
 * ------------------------------------------------------------------------------------------- */

bool nx_bytes_write(nx_bytes *b, const void *src, size_t n)
{
    if (b->failed || n > SIZE_MAX - b->pos) return b->failed = true, false;
    size_t end = b->pos + n;
    if (end > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < end) cap = cap > SIZE_MAX / 2 ? end : cap * 2;
        uint8_t *p = nx_realloc(b->data, cap);
        if (!p) return b->failed = true, false;
        b->data = p;
        b->cap = cap;
    }
    if (b->pos > b->len) memset(b->data + b->len, 0, b->pos - b->len);
    if (n) memcpy(b->data + b->pos, src, n);
    b->pos = end;
    if (end > b->len) b->len = end;
    return true;
}

void nx_bytes_free(nx_bytes *b)
{
    nx_free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------------------------------------
 * PNG
 * ------------------------------------------------------------------------------------------- */

typedef struct png_wctx {
    nx_bytes *out;
    bool      oom;       /* an nx_malloc/realloc failed (report OUT_OF_MEMORY) */
    char      msg[160];  /* libpng's error message */
} png_wctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_wctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static png_voidp png_nx_malloc(png_structp png, png_alloc_size_t n)
{
    void *p = nx_malloc(n ? n : 1);
    if (!p) {
        png_wctx *c = png ? png_get_error_ptr(png) : NULL;
        if (c) c->oom = true;
    }
    return p;
}

static void png_nx_free(png_structp png, png_voidp p)
{
    (void)png;
    nx_free(p);
}

static void png_write_cb(png_structp png, png_bytep data, size_t n)
{
    png_wctx *c = png_get_io_ptr(png);
    if (!nx_bytes_write(c->out, data, n)) {
        c->oom = true;
        png_error(png, "out of memory for the output buffer");
    }
}

static void png_flush_cb(png_structp png) { (void)png; }

ngpt_status nx_png_encode(const uint8_t *rgb, int32_t w, int32_t h, const char *what, nx_bytes *out)
{
    png_wctx c = {.out = out};
    /* The error pointer is set at creation, so a failing first allocation is seen too. */
    png_structp png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning, NULL,
                                                png_nx_malloc, png_nx_free);
    if (!png) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: PNG: cannot create the libpng writer", what);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: PNG: cannot create the libpng info", what);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        nx_bytes_free(out);
        if (c.oom) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: PNG: out of memory (%s)", what, c.msg);
        return nx_err(NGPT_ERR_INTERNAL, "%s: PNG: libpng: %s", what, c.msg);
    }
    png_set_write_fn(png, &c, png_write_cb, png_flush_cb);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    for (int32_t y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * (size_t)w * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * JPEG
 * ------------------------------------------------------------------------------------------- */

ngpt_status nx_jpeg_encode(const uint8_t *rgb, int32_t w, int32_t h, int32_t quality, bool full_chroma,
                           const char *what, nx_bytes *out)
{
    tjhandle tj = tjInitCompress();
    if (!tj) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: JPEG: cannot create a TurboJPEG compressor", what);
    unsigned char *jbuf = NULL;
    unsigned long jlen = 0;
    int rc = tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jbuf, &jlen, full_chroma ? TJSAMP_444 : TJSAMP_420, quality,
                         0);
    ngpt_status st = NGPT_OK;
    if (rc != 0)
        st = nx_err(NGPT_ERR_INTERNAL, "%s: JPEG: TurboJPEG: %s", what, tjGetErrorStr2(tj));
    else if (!nx_bytes_write(out, jbuf, (size_t)jlen))
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: JPEG: cannot allocate %lu bytes", what, jlen);
    tjFree(jbuf);
    tjDestroy(tj);
    if (st != NGPT_OK) nx_bytes_free(out);
    return st;
}
