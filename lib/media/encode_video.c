/* encode_video.c — RGB8 frames to MP4 or WebM through libavformat/libavcodec, in memory.
 *
 * Codecs, first found wins (avcodec_find_encoder_by_name):
 *   MP4   libx264 (H.264, CRF 23, preset medium), else mpeg4 (MPEG-4 part 2, qscale 3)
 *   WebM  libvpx-vp9 (VP9, CRF 32 constant quality), else libvpx (VP8, CRF 10), else
 *         NGPT_ERR_UNSUPPORTED naming the missing encoders.
 * Pixels: RGB24 -> yuv420p through libswscale (BT.601 matrix, limited range, as FFmpeg and
 * imageio-ffmpeg write by default; the stream is tagged so). yuv420p halves the chroma in both
 * directions, so width and height must be even: odd sizes are refused (NGPT_ERR_UNSUPPORTED)
 * rather than silently padded or cropped (Zeroscope's sizes are multiples of 8).
 * Timing: constant frame rate `fps` (av_d2q, e.g. 8 -> 1/8 s per frame), frame i at pts i.
 * Output goes through a custom, seekable AVIOContext into an nx_bytes buffer (the MP4 muxer
 * seeks back to finish the mdat size and writes moov at the end).
 *
 * FFmpeg's log level is process-wide: as in video.c, it is set to AV_LOG_QUIET once, and only if
 * it is still FFmpeg's default, so the library prints nothing unless the application asked.
 */
#include "encode.h"

#include "../core/alloc.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t g_log_once = PTHREAD_ONCE_INIT;
static void quiet_ffmpeg(void)
{
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_QUIET);
}

/* ---- memory AVIO (write + seek) ---- */

static int io_write(void *u, uint8_t *buf, int n)
{
    if (n < 0) return AVERROR(EINVAL);
    return nx_bytes_write(u, buf, (size_t)n) ? n : AVERROR(ENOMEM);
}

static int64_t io_seek(void *u, int64_t off, int whence)
{
    nx_bytes *b = u;
    if (whence & AVSEEK_SIZE) return (int64_t)b->len;
    whence &= ~AVSEEK_FORCE;
    int64_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? (int64_t)b->pos + off : (int64_t)b->len + off;
    if (p < 0) return AVERROR(EINVAL);
    b->pos = (size_t)p;
    return p;
}

/* ---- encoder state: everything reachable from here, freed by venc_free ---- */

typedef struct venc {
    AVFormatContext   *oc;
    AVIOContext       *io;
    AVCodecContext    *cc;
    AVStream          *st;
    AVFrame           *frame;
    AVPacket          *pkt;
    struct SwsContext *sws;
} venc;

static void venc_free(venc *v)
{
    if (v->io) {
        av_freep(&v->io->buffer);
        avio_context_free(&v->io);
    }
    if (v->oc) v->oc->pb = NULL;
    avformat_free_context(v->oc);
    avcodec_free_context(&v->cc);
    av_frame_free(&v->frame);
    av_packet_free(&v->pkt);
    sws_freeContext(v->sws);
    memset(v, 0, sizeof *v);
}

/* An FFmpeg error as a status: ENOMEM -> OUT_OF_MEMORY, anything else -> INTERNAL. */
static ngpt_status av_fail(int rc, const char *what, const char *codec, const char *step)
{
    char msg[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(rc, msg, sizeof msg);
    return nx_err(rc == AVERROR(ENOMEM) ? NGPT_ERR_OUT_OF_MEMORY : NGPT_ERR_INTERNAL, "%s: %s: %s failed: %s", what,
                  codec, step, msg);
}

/* Send one frame (NULL = flush) and write every packet the encoder returns. */
static int encode_write(venc *v, AVFrame *frame)
{
    int rc = avcodec_send_frame(v->cc, frame);
    if (rc < 0) return rc;
    for (;;) {
        rc = avcodec_receive_packet(v->cc, v->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return 0;
        if (rc < 0) return rc;
        av_packet_rescale_ts(v->pkt, v->cc->time_base, v->st->time_base);
        v->pkt->stream_index = v->st->index;
        rc = av_interleaved_write_frame(v->oc, v->pkt); /* takes the packet's reference */
        if (rc < 0) return rc;
    }
}

static void set_quality(AVCodecContext *cc, const char *name)
{
    if (strcmp(name, "libx264") == 0) {
        av_opt_set(cc->priv_data, "preset", "medium", 0);
        av_opt_set(cc->priv_data, "crf", "23", 0);
    } else if (strcmp(name, "mpeg4") == 0) {
        cc->flags |= AV_CODEC_FLAG_QSCALE;
        cc->global_quality = FF_QP2LAMBDA * 3;
    } else if (strcmp(name, "libvpx-vp9") == 0 || strcmp(name, "libvpx") == 0) {
        cc->bit_rate = strcmp(name, "libvpx") == 0 ? 4000000 : 0; /* VP8's CRF needs a bitrate cap */
        av_opt_set(cc->priv_data, "crf", strcmp(name, "libvpx") == 0 ? "10" : "32", 0);
        av_opt_set(cc->priv_data, "deadline", "good", 0);
        av_opt_set(cc->priv_data, "cpu-used", "4", 0);
    }
}

static const char *const k_mp4_codecs[] = {"libx264", "mpeg4", NULL};
static const char *const k_webm_codecs[] = {"libvpx-vp9", "libvpx", NULL};

static const char *const *codec_list(int fmt)
{
    return fmt == NX_VIDEO_MP4 ? k_mp4_codecs : fmt == NX_VIDEO_WEBM ? k_webm_codecs : NULL;
}

static const AVCodec *find_codec(int fmt)
{
    const char *const *names = codec_list(fmt);
    const AVCodec *codec = NULL;
    for (int i = 0; names && names[i] && !codec; i++) codec = avcodec_find_encoder_by_name(names[i]);
    return codec;
}

const char *nx_video_codec_name(int fmt)
{
    const AVCodec *c = find_codec(fmt);
    return c ? c->name : NULL;
}

ngpt_status nx_video_encode(const uint8_t *rgb, int64_t f, int32_t h, int32_t w, double fps, int fmt,
                            const char *what, nx_bytes *out, const char **codec_name)
{
    return nx_video_encode_with(rgb, f, h, w, fps, fmt, NULL, what, out, codec_name);
}

ngpt_status nx_video_encode_with(const uint8_t *rgb, int64_t f, int32_t h, int32_t w, double fps, int fmt,
                                 const char *force_codec, const char *what, nx_bytes *out, const char **codec_name)
{
    pthread_once(&g_log_once, quiet_ffmpeg);
    const char *container = fmt == NX_VIDEO_MP4 ? "mp4" : fmt == NX_VIDEO_WEBM ? "webm" : NULL;
    if (!container) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown video format %d", what, fmt);
    if ((w & 1) || (h & 1))
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: %dx%d: video width and height must be even (yuv420p)", what, w, h);
    const char *const *names = codec_list(fmt);
    const AVCodec *codec = NULL;
    if (force_codec) {
        bool listed = false;
        for (int i = 0; names[i]; i++) listed |= strcmp(names[i], force_codec) == 0;
        if (!listed) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s: encoder %s is not one of this format's", what,
                                   container, force_codec);
        if (!(codec = avcodec_find_encoder_by_name(force_codec)))
            return nx_err(NGPT_ERR_UNSUPPORTED, "%s: %s: this FFmpeg has no encoder %s", what, container, force_codec);
    } else {
        codec = find_codec(fmt);
    }
    if (!codec)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: %s: this FFmpeg has none of the encoders %s, %s", what, container,
                      names[0], names[1]);
    const char *cname = codec->name;
    if (codec_name) *codec_name = cname;

    venc v = {0};
    ngpt_status st = NGPT_OK;
    int rc = avformat_alloc_output_context2(&v.oc, NULL, container, NULL);
    if (rc < 0 || !v.oc) {
        st = av_fail(rc < 0 ? rc : AVERROR(ENOMEM), what, container, "creating the muxer");
        goto done;
    }
    uint8_t *iobuf = av_malloc(65536);
    if (!iobuf || !(v.io = avio_alloc_context(iobuf, 65536, 1, out, NULL, io_write, io_seek))) {
        av_free(iobuf);
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: %s: cannot allocate the output context", what, container);
        goto done;
    }
    v.oc->pb = v.io;
    v.oc->flags |= AVFMT_FLAG_CUSTOM_IO | AVFMT_FLAG_BITEXACT;

    v.cc = avcodec_alloc_context3(codec);
    v.st = avformat_new_stream(v.oc, NULL);
    v.frame = av_frame_alloc();
    v.pkt = av_packet_alloc();
    if (!v.cc || !v.st || !v.frame || !v.pkt) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: %s: cannot allocate the encoder", what, cname);
        goto done;
    }
    AVRational rate = av_d2q(fps, 100000);
    v.cc->width = w;
    v.cc->height = h;
    v.cc->pix_fmt = AV_PIX_FMT_YUV420P;
    v.cc->framerate = rate;
    v.cc->time_base = av_inv_q(rate);
    v.cc->gop_size = 12;
    v.cc->color_range = AVCOL_RANGE_MPEG;
    v.cc->colorspace = AVCOL_SPC_SMPTE170M;
    v.cc->color_primaries = AVCOL_PRI_SMPTE170M;
    v.cc->color_trc = AVCOL_TRC_SMPTE170M;
    v.cc->flags |= AV_CODEC_FLAG_BITEXACT;
    if (v.oc->oformat->flags & AVFMT_GLOBALHEADER) v.cc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    set_quality(v.cc, cname);
    if ((rc = avcodec_open2(v.cc, codec, NULL)) < 0) {
        st = av_fail(rc, what, cname, "opening the encoder");
        goto done;
    }
    if ((rc = avcodec_parameters_from_context(v.st->codecpar, v.cc)) < 0) {
        st = av_fail(rc, what, cname, "copying the codec parameters");
        goto done;
    }
    v.st->time_base = v.cc->time_base;
    v.st->avg_frame_rate = rate;
    v.st->r_frame_rate = rate;
    if ((rc = avformat_write_header(v.oc, NULL)) < 0) {
        st = av_fail(rc, what, container, "writing the header");
        goto done;
    }

    v.frame->format = AV_PIX_FMT_YUV420P;
    v.frame->width = w;
    v.frame->height = h;
    v.frame->color_range = AVCOL_RANGE_MPEG;
    v.frame->colorspace = AVCOL_SPC_SMPTE170M;
    if ((rc = av_frame_get_buffer(v.frame, 0)) < 0) {
        st = av_fail(rc, what, cname, "allocating a frame");
        goto done;
    }
    v.sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND, NULL,
                           NULL, NULL);
    if (!v.sws) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot create the RGB -> yuv420p converter", what);
        goto done;
    }
    const size_t frame_bytes = (size_t)w * (size_t)h * 3;
    for (int64_t i = 0; i < f; i++) {
        if ((rc = av_frame_make_writable(v.frame)) < 0) {
            st = av_fail(rc, what, cname, "making a frame writable");
            goto done;
        }
        const uint8_t *src[1] = {rgb + (size_t)i * frame_bytes};
        const int stride[1] = {w * 3};
        sws_scale(v.sws, src, stride, 0, h, v.frame->data, v.frame->linesize);
        v.frame->pts = i;
        if ((rc = encode_write(&v, v.frame)) < 0) {
            st = av_fail(rc, what, cname, "encoding a frame");
            goto done;
        }
    }
    if ((rc = encode_write(&v, NULL)) < 0) {
        st = av_fail(rc, what, cname, "flushing the encoder");
        goto done;
    }
    if ((rc = av_write_trailer(v.oc)) < 0) {
        st = av_fail(rc, what, container, "writing the trailer");
        goto done;
    }
    avio_flush(v.io);
    if (v.io->error < 0) st = av_fail(v.io->error, what, container, "writing");
    else if (out->failed) st = av_fail(AVERROR(ENOMEM), what, container, "writing");
done:
    venc_free(&v);
    if (st != NGPT_OK) nx_bytes_free(out);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * video.postprocess
 * ------------------------------------------------------------------------------------------- */

void nx_video_postprocess(const float *video, int64_t b, int64_t f, int64_t h, int64_t w, uint8_t *out)
{
    /* diffusers' tensor2vid (text-to-video pipeline, output_type "np"): video.mul_(0.5).add_(0.5)
     * (two float32 roundings), clamp_(0, 1), permute(2,3,0,4,1).reshape(F, H, B*W, 3) — the batch
     * laid side by side along the width — then per frame (frame * 255).astype(uint8) in float32:
     * truncation toward zero, not rounding. NaN (undefined in numpy) becomes 0. */
    for (int64_t n = 0; n < b; n++)
        for (int c = 0; c < 3; c++)
            for (int64_t t = 0; t < f; t++)
                for (int64_t y = 0; y < h; y++) {
                    const float *src = video + (((n * 3 + c) * f + t) * h + y) * w;
                    uint8_t *dst = out + ((t * h + y) * (b * w) + n * w) * 3 + c;
                    for (int64_t x = 0; x < w; x++) {
                        float v = src[x] * 0.5f; /* exact (c11: no FMA contraction) */
                        float u = v + 0.5f;
                        u = u < 0.0f ? 0.0f : u > 1.0f ? 1.0f : u;
                        if (u != u) u = 0.0f;
                        dst[x * 3] = (uint8_t)(u * 255.0f);
                    }
                }
}
