/* resize.c — ImageBind's vision transform on RGB8, bit for bit as torchvision 0.14 + Pillow 9.4
 * compute it (STAGES.md image.preprocess):
 *
 *   Resize(224, BICUBIC)   Pillow's ImagingResample: separable, horizontal pass then vertical,
 *                          8-bit intermediate, filter support scaled when shrinking (antialias),
 *                          double weights normalised to 1 and converted to 22-bit fixed point.
 *   CenterCrop(224)        top/left = round((size - 224) / 2) with Python's half-to-even round.
 *   ToTensor, Normalize    u8 / 255 and (x - mean) / std, all in float32.
 *
 * Hand-written because no C library we link implements Pillow's exact fixed-point arithmetic
 * (libswscale and libvips bicubics differ in kernel, support and rounding), and one u8 step is
 * already ~0.015 after normalisation: anything but an exact port fails the golden cases.
 *
 * The same machinery with Pillow's Lanczos filter (nx_resize_lanczos_rgb8) cuts an image-to-image
 * input down to a multiple of 8 as diffusers' VaeImageProcessor does.
 *
 * Also here, the other RGB8 geometry: nx_rgb8_orient, the 8 EXIF/TIFF orientations (a TIFF's
 * Orientation tag, and a video stream's 90/180/270-degree rotation).
 */
#include "media.h"

#include "../core/alloc.h"

#include <math.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

/* Pillow's bicubic_filter (a = -0.5), with its exact expression order. */
static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Pillow's sinc_filter and lanczos_filter (a = 3): diffusers' VaeImageProcessor resizes with it. */
static double sinc(double x)
{
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos(double x)
{
    if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
    return 0.0;
}

/* Pillow's struct filter: the kernel and its support at scale 1. */
typedef struct filter {
    double (*fn)(double);
    double support;
} filter;

static const filter k_bicubic = {bicubic, 2.0};
static const filter k_lanczos = {lanczos, 3.0};

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for in_size -> out_size, for the n outputs
 * o0 .. o0+n-1 only. bounds[2*i] = first tap, bounds[2*i+1] = tap count of output o0 + i;
 * kk[i*ksize + t] = fixed-point weight. */
static ngpt_status coeffs(const filter *f, int in_size, int out_size, int o0, int n, int **bounds_out,
                          int32_t **kk_out, int *ksize_out)
{
    double scale = (double)((float)in_size - 0.0f) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = nx_malloc(sizeof *pre * (size_t)n * (size_t)ksize);
    int *bounds = nx_malloc(sizeof *bounds * (size_t)n * 2);
    int32_t *kk = nx_malloc(sizeof *kk * (size_t)n * (size_t)ksize);
    if (!pre || !bounds || !kk) {
        nx_free(pre);
        nx_free(bounds);
        nx_free(kk);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "image resize: cannot allocate filter coefficients");
    }
    for (int i = 0; i < n; i++) {
        int xx = o0 + i;
        double center = 0.0 + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = pre + (size_t)i * ksize;
        for (int x = 0; x < xmax; x++) {
            double wgt = f->fn((x + xmin - center + 0.5) * ss);
            k[x] = wgt;
            ww += wgt;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (int x = xmax; x < ksize; x++) k[x] = 0;
        bounds[2 * i] = xmin;
        bounds[2 * i + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)n * ksize; i++)
        kk[i] = pre[i] < 0 ? (int32_t)(-0.5 + pre[i] * (1 << PRECISION_BITS))
                           : (int32_t)(0.5 + pre[i] * (1 << PRECISION_BITS));
    nx_free(pre);
    *bounds_out = bounds;
    *kk_out = kk;
    *ksize_out = ksize;
    return NGPT_OK;
}

static inline uint8_t clip8(int64_t in)
{
    if (in >= ((int64_t)1 << PRECISION_BITS << 8)) return 255;
    if (in <= 0) return 0;
    return (uint8_t)(in >> PRECISION_BITS);
}

/* One pass along x (horizontal) or y (vertical) of packed RGB8 sw x sh, resampled to out_size
 * samples along that axis, of which only the n outputs o0 .. o0+n-1 are computed (each output
 * depends on its own taps only, so this is a crop of the full pass). dst is n x sh (horizontal)
 * or sw x n (vertical). */
static ngpt_status pass(const filter *f, const uint8_t *src, int sw, int sh, uint8_t *dst, int out_size, int o0,
                        int n, int horizontal)
{
    int *bounds = NULL;
    int32_t *kk = NULL;
    int ksize = 0;
    NX_TRY(coeffs(f, horizontal ? sw : sh, out_size, o0, n, &bounds, &kk, &ksize));
    int dw = horizontal ? n : sw, dh = horizontal ? sh : n;
    for (int y = 0; y < dh; y++) {
        for (int x = 0; x < dw; x++) {
            int o = horizontal ? x : y;
            int xmin = bounds[2 * o], nt = bounds[2 * o + 1];
            const int32_t *k = kk + (size_t)o * ksize;
            for (int c = 0; c < 3; c++) {
                int64_t ss = (int64_t)1 << (PRECISION_BITS - 1);
                if (horizontal) {
                    const uint8_t *row = src + ((size_t)y * sw + xmin) * 3 + c;
                    for (int t = 0; t < nt; t++) ss += (int64_t)row[3 * t] * k[t];
                } else {
                    const uint8_t *col = src + ((size_t)xmin * sw + x) * 3 + c;
                    for (int t = 0; t < nt; t++) ss += (int64_t)col[(size_t)t * sw * 3] * k[t];
                }
                dst[((size_t)y * dw + x) * 3 + c] = clip8(ss);
            }
        }
    }
    nx_free(bounds);
    nx_free(kk);
    return NGPT_OK;
}

/* The window [x0, x0+cw) x [y0, y0+ch) of Pillow's resize of src (sw x sh) to dw x dh, into dst
 * (cw x ch). A pass whose size is unchanged is skipped (a plain copy of the window), as Pillow
 * skips it; the horizontal pass computes cw columns of every source row, so memory is
 * cw x sh, never the whole dw x dh result. */
static ngpt_status resize_window(const filter *f, const uint8_t *src, int32_t sw, int32_t sh, int32_t dw, int32_t dh,
                                 int32_t x0, int32_t y0, int32_t cw, int32_t ch, uint8_t *dst)
{
    uint8_t *tmp = nx_malloc((size_t)cw * sh * 3);
    if (!tmp) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "image resize: cannot allocate %dx%d", cw, sh);
    ngpt_status st = NGPT_OK;
    if (sw == dw) {
        for (int32_t y = 0; y < sh; y++) memcpy(tmp + (size_t)y * cw * 3, src + ((size_t)y * sw + x0) * 3, (size_t)cw * 3);
    } else {
        st = pass(f, src, sw, sh, tmp, dw, x0, cw, 1);
    }
    if (st == NGPT_OK) {
        if (sh == dh) memcpy(dst, tmp + (size_t)y0 * cw * 3, (size_t)cw * ch * 3);
        else st = pass(f, tmp, cw, sh, dst, dh, y0, ch, 0);
    }
    nx_free(tmp);
    return st;
}

ngpt_status nx_resize_bicubic_rgb8(const uint8_t *src, int32_t sw, int32_t sh, uint8_t *dst,
                                   int32_t dw, int32_t dh)
{
    return nx_resize_bicubic_rgb8_window(src, sw, sh, dw, dh, 0, 0, dw, dh, dst);
}

ngpt_status nx_resize_bicubic_rgb8_window(const uint8_t *src, int32_t sw, int32_t sh, int32_t dw, int32_t dh,
                                          int32_t x0, int32_t y0, int32_t cw, int32_t ch, uint8_t *dst)
{
    if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "image resize: bad size %dx%d -> %dx%d", sw, sh, dw, dh);
    if (x0 < 0 || y0 < 0 || cw <= 0 || ch <= 0 || cw > dw - x0 || ch > dh - y0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "image resize: window %dx%d at (%d, %d) outside %dx%d", cw, ch, x0,
                      y0, dw, dh);
    return resize_window(&k_bicubic, src, sw, sh, dw, dh, x0, y0, cw, ch, dst);
}

ngpt_status nx_resize_lanczos_rgb8(const uint8_t *src, int32_t sw, int32_t sh, uint8_t *dst, int32_t dw, int32_t dh)
{
    if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "image resize: bad size %dx%d -> %dx%d", sw, sh, dw, dh);
    return resize_window(&k_lanczos, src, sw, sh, dw, dh, 0, 0, dw, dh, dst);
}

/* Python's int(round(d / 2.0)) for an integer d >= 0: halves go to the even neighbour. */
static int32_t round_half_even_div2(int32_t d)
{
    int32_t q = d / 2;
    if (d % 2 == 0) return q;
    return (q % 2 == 0) ? q : q + 1;
}

ngpt_status nx_image_preprocess_rgb8(const uint8_t *rgb, int32_t w, int32_t h, float *out)
{
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    const int32_t S = NX_IMAGE_SIZE;
    if (w <= 0 || h <= 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "image preprocess: empty image");
    /* torchvision _compute_resized_output_size: short side S, long side int(S * long / short). */
    int32_t nw, nh;
    if (w <= h) {
        nw = S;
        nh = (int32_t)((double)S * h / (double)w);
    } else {
        nh = S;
        nw = (int32_t)((double)S * w / (double)h);
    }
    /* Only the S x S window CenterCrop keeps is resampled: the same bytes as resizing the whole
     * image then cropping, but bounded memory and time for extreme aspect ratios (a 1 x 16384
     * image resizes to 224 x 3670016, 2.4 GB that the crop throws away). */
    int32_t top = round_half_even_div2(nh - S), left = round_half_even_div2(nw - S);
    uint8_t *rs = nx_malloc((size_t)S * S * 3);
    if (!rs) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "image preprocess: cannot allocate %dx%d", S, S);
    ngpt_status st = resize_window(&k_bicubic, rgb, w, h, nw, nh, left, top, S, S, rs);
    if (st != NGPT_OK) {
        nx_free(rs);
        return st;
    }
    for (int c = 0; c < 3; c++)
        for (int32_t y = 0; y < S; y++)
            for (int32_t x = 0; x < S; x++) {
                float v = (float)rs[((size_t)y * S + x) * 3 + c] / 255.0f;
                out[((size_t)c * S + y) * S + x] = (v - mean[c]) / stdv[c];
            }
    nx_free(rs);
    return NGPT_OK;
}

void nx_image_postprocess(const float *img, int64_t b, int64_t h, int64_t w, uint8_t *out)
{
    /* diffusers: (image / 2 + 0.5).clamp(0, 1), NHWC, (x * 255).round() (half to even) in
     * float32, astype(uint8). rintf rounds half to even in the default rounding mode. */
    for (int64_t n = 0; n < b; n++)
        for (int c = 0; c < 3; c++)
            for (int64_t i = 0; i < h * w; i++) {
                float v = img[(n * 3 + c) * h * w + i] / 2.0f + 0.5f;
                v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                if (v != v) v = 0.0f; /* NaN: numpy's astype would be undefined; pick 0 */
                out[(n * h * w + i) * 3 + c] = (uint8_t)rintf(v * 255.0f);
            }
}

void nx_rgb8_orient(const uint8_t *src, int32_t w, int32_t h, int o, uint8_t *dst)
{
    int32_t W = o >= 5 ? h : w, H = o >= 5 ? w : h;
    for (int32_t y = 0; y < H; y++)
        for (int32_t x = 0; x < W; x++) {
            int32_t sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x, sy = y; break;             /* FLIP_LEFT_RIGHT */
            case 3: sx = w - 1 - x, sy = h - 1 - y; break;     /* ROTATE_180 */
            case 4: sx = x, sy = h - 1 - y; break;             /* FLIP_TOP_BOTTOM */
            case 5: sx = y, sy = x; break;                     /* TRANSPOSE */
            case 6: sx = y, sy = h - 1 - x; break;             /* ROTATE_270 (90 clockwise) */
            case 7: sx = w - 1 - y, sy = h - 1 - x; break;     /* TRANSVERSE */
            case 8: sx = w - 1 - y, sy = x; break;             /* ROTATE_90 (270 clockwise) */
            default: sx = x, sy = y; break;                    /* 1: upright */
            }
            memcpy(dst + ((size_t)y * W + x) * 3, src + ((size_t)sy * w + sx) * 3, 3);
        }
}
