/* video.c — ImageBind's video transform (STAGES.md video.preprocess) over FFmpeg's libraries:
 * data.load_and_transform_video_data as NExT-GPT runs it through pytorchvideo 0.1.5's
 * EncodedVideoDecord and decord 0.6.0:
 *
 *   frame table  the best video stream; one frame per packet, frame i = the packet with the i-th
 *                smallest pts; fps = avg_frame_rate as a double; duration = N / fps.
 *   clips        ConstantClipsPerVideoSampler(2 s, 5 clips): start k * max(D - 2, 0) / 5 (or / 4,
 *                the fixed rule) as exact rationals, then frame indices ceil(fps * double(t)) with
 *                double(t) the correctly rounded double of the rational (Python float * Fraction).
 *   frames       the first and last frame of each clip (UniformTemporalSubsample(2)), decoded by
 *                libavcodec and converted to RGB24 by libswscale at the coded size with the
 *                frame's own colour matrix and range (BT.601 limited when untagged): what the
 *                scale filter of decord's avfilter graph does (in_color_matrix / in_range
 *                "auto"), then turned upright as
 *                decord 0.6.0 does: the stream's "rotate" tag, else its display matrix, as a
 *                clockwise angle; 90, 180 and 270 degrees insert transpose filters (phone
 *                videos), any other angle is ignored.
 *   transform    /255, ShortSideScale(224) = bilinear, half-pixel centres, no antialias (torch
 *                interpolate), Normalize (CLIP mean/std), 3 spatial crops (left/centre/right, or
 *                top/centre/bottom for portrait) -> F32 [15, 3, 2, 224, 224].
 *
 * FFmpeg's logging: the library must not print (av_input.c quiets it once).
 */
#include "media.h"

#include "../core/alloc.h"
#include "av_input.h"

#include <libavcodec/avcodec.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

__extension__ typedef unsigned __int128 u128;

#define S NX_IMAGE_SIZE

/* The YCbCr -> RGB matrix and input range of FFmpeg's scale filter with its defaults
 * (in_color_matrix and in_range "auto"): the frame's colorspace (an unknown or unspecified one
 * is BT.601) and, when the frame says, its range; what decord's graph converts with. */
static void set_colorspace(struct SwsContext *sws, const AVFrame *f)
{
    int *inv, *table, in_full, out_full, bri, con, sat;
    if (sws_getColorspaceDetails(sws, &inv, &in_full, &table, &out_full, &bri, &con, &sat) < 0) return;
    int cs = f->colorspace;
    if (cs < 1 || cs > 10 || cs == 8) cs = AVCOL_SPC_BT470BG;
    const int *coef = sws_getCoefficients(cs);
    if (f->color_range != AVCOL_RANGE_UNSPECIFIED) in_full = f->color_range == AVCOL_RANGE_JPEG;
    sws_setColorspaceDetails(sws, coef, in_full, coef, out_full, bri, con, sat);
}

/* ---- exact clip times ---- */

/* num * 2^e / q correctly rounded to a double (num > 0, q small). */
static double rat_to_double(u128 num, uint64_t q, int e)
{
    int s = 0;
    while (num < ((u128)q << 62)) {
        num <<= 1;
        s++;
    }
    u128 quo = num / q, rem = num % q;
    u128 z = (quo << 1) | (rem != 0); /* sticky bit below the rounding position */
    return ldexp((double)z, e - s - 1);
}

/* double(k * ms / q) and double(k * ms / q + 2) for the double ms >= 0. */
static void clip_times(double ms, int k, int q, double *start, double *end)
{
    if (ms <= 0.0 || k == 0) {
        *start = 0.0;
        *end = 2.0;
        return;
    }
    int e;
    double fr = frexp(ms, &e);
    uint64_t mant = (uint64_t)ldexp(fr, 53);
    e -= 53; /* ms = mant * 2^e, e < 0 for any realistic duration */
    u128 a = (u128)mant * (u128)k;
    *start = rat_to_double(a, (uint64_t)q, e);
    if (e < 0 && e > -62) {
        *end = rat_to_double(a + ((u128)(2 * q) << (-e)), (uint64_t)q, e);
    } else {
        *end = *start + 2.0; /* only for absurd durations */
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- bilinear (torch interpolate, align_corners=False) ---- */

typedef struct lin {
    int i0, i1;
    float l0, l1;
} lin;

static void lin_coeffs(int in, int out, lin *c)
{
    float scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        float src = scale * ((float)d + 0.5f) - 0.5f;
        if (src < 0.0f) src = 0.0f;
        int i0 = (int)src;
        if (i0 > in - 1) i0 = in - 1;
        c[d].i0 = i0;
        c[d].i1 = i0 + (i0 < in - 1 ? 1 : 0);
        c[d].l1 = src - (float)i0;
        c[d].l0 = 1.0f - c[d].l1;
    }
}

/* The short-side scale (pytorchvideo ShortSideScale) and its bilinear taps. */
typedef struct scaler {
    int nw, nh;
    lin *cx, *cy;
} scaler;

static ngpt_status scaler_init(scaler *sc, int w, int h, const char *name)
{
    if (w < h) {
        sc->nw = S;
        sc->nh = (int)floor((double)h / w * S);
    } else {
        sc->nh = S;
        sc->nw = (int)floor((double)w / h * S);
    }
    sc->cx = nx_malloc(sizeof *sc->cx * (size_t)sc->nw);
    sc->cy = nx_malloc(sizeof *sc->cy * (size_t)sc->nh);
    if (!sc->cx || !sc->cy) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate the scaler", name);
    lin_coeffs(w, sc->nw, sc->cx);
    lin_coeffs(h, sc->nh, sc->cy);
    return NGPT_OK;
}

/* One RGB24 frame -> the 3 crops' [c][t][y][x] slots of `out` for clip `clip`, frame slot t. */
static void transform_frame(const scaler *sc, const uint8_t *rgb, int linesize, int clip, int t, float *out)
{
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    int nw = sc->nw, nh = sc->nh;
    int yo = (nh - S + 1) / 2, xo = (nw - S + 1) / 2; /* ceil((n - 224) / 2) */
    for (int crop = 0; crop < 3; crop++) {
        int y0 = yo, x0 = xo;
        if (nh > nw) {
            if (crop == 0) y0 = 0;
            if (crop == 2) y0 = nh - S;
        } else {
            if (crop == 0) x0 = 0;
            if (crop == 2) x0 = nw - S;
        }
        float *dst = out + (size_t)(3 * clip + crop) * 3 * 2 * S * S;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++) {
                const lin *ly = &sc->cy[y + y0];
                const uint8_t *r0 = rgb + (size_t)ly->i0 * linesize, *r1 = rgb + (size_t)ly->i1 * linesize;
                float *d = dst + (((size_t)c * 2 + t) * S + y) * S;
                for (int x = 0; x < S; x++) {
                    const lin *lx = &sc->cx[x + x0];
                    float a = (float)r0[lx->i0 * 3 + c] / 255.0f, b = (float)r0[lx->i1 * 3 + c] / 255.0f;
                    float e = (float)r1[lx->i0 * 3 + c] / 255.0f, f = (float)r1[lx->i1 * 3 + c] / 255.0f;
                    float v = ly->l0 * (lx->l0 * a + lx->l1 * b) + ly->l1 * (lx->l0 * e + lx->l1 * f);
                    d[x] = (v - mean[c]) / stdv[c];
                }
            }
    }
}

/* ---- rotation (decord VideoReader::GetRotation + its transpose filters) ---- */

/* The clockwise rotation decord applies: 90, 180, 270, or 0 for any other angle. decord takes
 * atof of the "rotate" tag (FFmpeg 4's mov demuxer exported it as "%g" of the display matrix's
 * angle; FFmpeg 5 exports only the matrix), else minus av_display_rotation_get of the matrix,
 * reduced to [0, 360). The angle is rounded to whole degrees here, as the tag had it. */
static int stream_rotation(AVStream *st)
{
    double theta = 0.0;
    AVDictionaryEntry *tag = av_dict_get(st->metadata, "rotate", NULL, 0);
    if (tag && *tag->value && strcmp(tag->value, "0") != 0) theta = atof(tag->value);
    size_t sz = 0;
    const uint8_t *dm = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &sz);
    if (dm && sz >= 9 * sizeof(int32_t) && theta == 0.0) theta = -av_display_rotation_get((const int32_t *)dm);
    if (!isfinite(theta)) return 0;
    theta = fmod(theta, 360.0);
    if (theta < 0.0) theta += 360.0;
    int deg = (int)lround(theta) % 360;
    return deg == 90 || deg == 180 || deg == 270 ? deg : 0;
}

/* ---- the whole transform ---- */

typedef struct vctx {
    nx_av_input      in;
    AVCodecContext  *dec;
    AVPacket        *pkt;
    AVFrame         *frame;
    struct SwsContext *sws;
    uint8_t         *rgb;
    uint8_t         *rot;   /* the upright frame when the stream is rotated */
    int64_t         *pts;
    AVPacket       **pkts;  /* the stream's packets in file order (decoded after indexing) */
    int64_t          npkts;
    scaler           sc;
} vctx;

static void vctx_free(vctx *v)
{
    sws_freeContext(v->sws);
    av_frame_free(&v->frame);
    av_packet_free(&v->pkt);
    avcodec_free_context(&v->dec);
    nx_av_input_close(&v->in);
    nx_free(v->rgb);
    nx_free(v->rot);
    for (int64_t i = 0; i < v->npkts; i++) av_packet_free(&v->pkts[i]);
    nx_free(v->pkts);
    nx_free(v->pts);
    nx_free(v->sc.cx);
    nx_free(v->sc.cy);
}

ngpt_status nx_video_preprocess(const uint8_t *buf, size_t len, const char *name, int clip_rule, float *out)
{
    vctx v;
    memset(&v, 0, sizeof v);
    ngpt_status st = NGPT_OK;
    char eb[128];
    int r;
    if ((st = nx_av_input_open(&v.in, buf, len, name, "video")) != NGPT_OK) goto done;
    const AVCodec *codec = NULL;
    int si = av_find_best_stream(v.in.fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (si < 0 || !codec) {
        st = nx_err(si == AVERROR_DECODER_NOT_FOUND ? NGPT_ERR_UNSUPPORTED : NGPT_ERR_BAD_FORMAT,
                    "%s: no decodable video stream: %s", name, nx_av_err(si < 0 ? si : AVERROR_DECODER_NOT_FOUND, eb, sizeof eb));
        goto done;
    }
    AVStream *stream = v.in.fmt->streams[si];
    AVRational afr = stream->avg_frame_rate;
    if (afr.num <= 0 || afr.den <= 0) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: video stream has no average frame rate", name);
        goto done;
    }
    double fps = (double)afr.num / (double)afr.den;
    int w = stream->codecpar->width, h = stream->codecpar->height;
    if (w <= 0 || h <= 0 || w > NX_VIDEO_MAX_SIDE || h > NX_VIDEO_MAX_SIDE) {
        st = nx_err(w <= 0 || h <= 0 ? NGPT_ERR_BAD_FORMAT : NGPT_ERR_UNSUPPORTED, "%s: video size %dx%d not supported",
                    name, w, h);
        goto done;
    }

    /* Frame table: every packet of the stream, pts sorted (decord IndexKeyframes). */
    v.pkt = av_packet_alloc();
    v.frame = av_frame_alloc();
    if (!v.pkt || !v.frame) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate", name);
        goto done;
    }
    int64_t n = 0, cap = 0;
    while ((r = av_read_frame(v.in.fmt, v.pkt)) >= 0) {
        if (v.pkt->stream_index == si) {
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                int64_t *np = nx_realloc(v.pts, sizeof *np * (size_t)cap);
                if (np) v.pts = np;
                AVPacket **pp = np ? nx_realloc(v.pkts, sizeof *pp * (size_t)cap) : NULL;
                if (pp) v.pkts = pp;
                if (!np || !pp) {
                    av_packet_unref(v.pkt);
                    st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate the frame table", name);
                    goto done;
                }
            }
            v.pts[n++] = v.pkt->pts != AV_NOPTS_VALUE ? v.pkt->pts : v.pkt->dts;
            v.pkts[v.npkts] = av_packet_alloc();
            if (!v.pkts[v.npkts]) {
                av_packet_unref(v.pkt);
                st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a packet", name);
                goto done;
            }
            av_packet_move_ref(v.pkts[v.npkts++], v.pkt);
        }
        av_packet_unref(v.pkt);
    }
    if (r != AVERROR_EOF) { /* decord stops with an error here too */
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt or truncated video: reading packet %lld of the %dx%d %s stream failed: %s",
                    name, (long long)n, w, h, codec->name, nx_av_err(r, eb, sizeof eb));
        goto done;
    }
    if (n == 0) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: the %dx%d %s stream has no frames", name, w, h, codec->name);
        goto done;
    }
    qsort(v.pts, (size_t)n, sizeof *v.pts, cmp_i64);

    /* Clips and the frames they need: want[i] = frame index, slot[i] = clip*2 + t. */
    double D = (double)n / fps, ms = D - 2.0 > 0.0 ? D - 2.0 : 0.0;
    int q = clip_rule == NX_CLIP_RULE_PTV_FIXED ? 4 : 5;
    int64_t want[10];
    for (int k = 0; k < 5; k++) {
        double ts, te;
        clip_times(ms, k, q, &ts, &te);
        int64_t a = (int64_t)ceil(fps * ts), b = (int64_t)ceil(fps * te);
        if (b > n) b = n;
        if (a >= b) {
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: clip %d [%g s, %g s) holds no frame (%lld frames at %g fps)", name,
                        k, ts, te, (long long)n, fps);
            goto done;
        }
        want[2 * k] = a;
        want[2 * k + 1] = b - 1;
    }

    /* Decode in order, matching frames to the table by their timestamp. */
    v.dec = avcodec_alloc_context3(codec);
    if (!v.dec || avcodec_parameters_to_context(v.dec, stream->codecpar) < 0) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot create a %s decoder", name, codec->name);
        goto done;
    }
    v.dec->thread_count = 1;
    if ((r = avcodec_open2(v.dec, codec, NULL)) < 0) {
        st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: cannot open the %s decoder: %s", name, codec->name, nx_av_err(r, eb, sizeof eb));
        goto done;
    }
    int rot = stream_rotation(stream);
    int uw = rot == 90 || rot == 270 ? h : w, uh = rot == 90 || rot == 270 ? w : h; /* upright size */
    if ((st = scaler_init(&v.sc, uw, uh, name)) != NGPT_OK) goto done;
    /* swscale's SIMD converters work in blocks: with a packed destination they leave up to 6
     * columns at the right unwritten (854 or 321 wide) or write past a row. A row stride
     * rounded up to 64 bytes with a spare row lets them finish; rows are packed afterwards. */
    int stride = (w * 3 + 63) / 64 * 64;
    v.rgb = nx_malloc((size_t)stride * (h + 1) + 64);
    if (rot) v.rot = nx_malloc((size_t)w * h * 3);
    if (!v.rgb || (rot && !v.rot)) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a frame", name);
        goto done;
    }
    int done_count = 0, eof = 0;
    int64_t decoded = 0, next = 0;
    while (done_count < 10) {
        if (!eof) {
            if (next == v.npkts) {
                eof = 1;
                avcodec_send_packet(v.dec, NULL);
            } else {
                r = avcodec_send_packet(v.dec, v.pkts[next]);
                if (r != AVERROR(EAGAIN)) next++; /* EAGAIN: drain frames first, resend */
                if (r < 0 && r != AVERROR(EAGAIN)) {
                    st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt video data: %s", name, nx_av_err(r, eb, sizeof eb));
                    goto done;
                }
            }
        }
        int got_any = 0;
        while ((r = avcodec_receive_frame(v.dec, v.frame)) >= 0) {
            got_any = 1;
            int64_t ts = v.frame->best_effort_timestamp;
            int64_t *hit = ts == AV_NOPTS_VALUE ? NULL : bsearch(&ts, v.pts, (size_t)n, sizeof *v.pts, cmp_i64);
            int64_t idx = hit ? hit - v.pts : decoded;
            decoded++;
            int needed = 0;
            for (int i = 0; i < 10; i++) needed |= want[i] == idx;
            if (needed) {
                if (v.frame->width != w || v.frame->height != h) {
                    av_frame_unref(v.frame);
                    st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: frame size changes mid-stream", name);
                    goto done;
                }
                v.sws = sws_getCachedContext(v.sws, w, h, v.frame->format, w, h, AV_PIX_FMT_RGB24, SWS_BICUBIC,
                                             NULL, NULL, NULL);
                if (!v.sws) {
                    av_frame_unref(v.frame);
                    st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: cannot convert pixel format %d to RGB", name, v.frame->format);
                    goto done;
                }
                set_colorspace(v.sws, v.frame);
                uint8_t *dst[4] = {v.rgb, NULL, NULL, NULL};
                int dls[4] = {stride, 0, 0, 0};
                sws_scale(v.sws, (const uint8_t *const *)v.frame->data, v.frame->linesize, 0, h, dst, dls);
                for (int y = 1; y < h; y++) memmove(v.rgb + (size_t)y * w * 3, v.rgb + (size_t)y * stride, (size_t)w * 3);
                if (rot) nx_rgb8_orient(v.rgb, w, h, rot == 90 ? 6 : rot == 180 ? 3 : 8, v.rot);
                for (int i = 0; i < 10; i++)
                    if (want[i] == idx) {
                        transform_frame(&v.sc, rot ? v.rot : v.rgb, uw * 3, i / 2, i % 2, out);
                        done_count++;
                    }
            }
            av_frame_unref(v.frame);
        }
        if (r != AVERROR(EAGAIN) && r != AVERROR_EOF) {
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt video data: %s", name, nx_av_err(r, eb, sizeof eb));
            goto done;
        }
        if (eof && (r == AVERROR_EOF || !got_any)) break;
    }
    if (done_count < 10)
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: only %d of the 10 frames needed could be decoded (truncated?)", name,
                    done_count);
done:
    vctx_free(&v);
    return st;
}
