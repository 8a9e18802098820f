/* test_media_out.c — the "Media output" API: every encoder read back through a decoder
 * (our own image/audio decoders, libsndfile, libavformat), video.postprocess on hand-made
 * values, bad input (each a named error, no crash, no print), and allocation-failure
 * injection over the PNG encoder. */
#include "nextgpt.h"
#include "test.h"
#include "alloc_fail.h"
#include "media/encode.h"
#include "core/fs.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <math.h>
#include <sndfile.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef __clang__ /* a gcc-only warning */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char g_tmp[256];

static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_tmp, name); }

/* A smooth RGB test pattern (JPEG-friendly) with some detail. */
static uint8_t *make_rgb(int w, int h, int seed)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            q[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            q[2] = (uint8_t)(128 + 100 * sin((x + y + seed * 3) * 0.2));
        }
    return p;
}

static void test_png_roundtrip(void)
{
    const int w = 37, h = 23; /* odd sizes are fine for images */
    uint8_t *rgb = make_rgb(w, h, 0);
    rgb[5] = 0, rgb[6] = 255; /* extremes */
    ngpt_image *img = NULL, *back = NULL;
    CHECK_OK(ngpt_image_from_rgb8(&img, rgb, w, h, 0));
    ngpt_blob *b = NULL;
    CHECK_OK(ngpt_image_encode(&b, img, NGPT_IMAGE_FORMAT_PNG, 0, 0));
    CHECK(b && ngpt_blob_size(b) > 8 && memcmp(ngpt_blob_data(b), "\x89PNG", 4) == 0);
    CHECK_OK(ngpt_image_load_memory(&back, ngpt_blob_data(b), ngpt_blob_size(b), "png"));
    CHECK(back && ngpt_image_width(back) == w && ngpt_image_height(back) == h);
    if (back) CHECK(memcmp(ngpt_image_pixels(back), rgb, (size_t)w * h * 3) == 0);
    ngpt_image_free(back);
    back = NULL;
    /* to a file, format from the extension */
    char path[512];
    tmp_path(path, sizeof path, "a.PNG");
    CHECK_OK(ngpt_image_save(img, path, NGPT_IMAGE_FORMAT_AUTO, 0, 0));
    CHECK_OK(ngpt_image_load(&back, path));
    if (back) CHECK(memcmp(ngpt_image_pixels(back), rgb, (size_t)w * h * 3) == 0);
    ngpt_image_free(back);
    ngpt_blob_free(b);
    ngpt_image_free(img);
    free(rgb);
    ngpt_blob_free(NULL);
    CHECK(ngpt_blob_data(NULL) == NULL && ngpt_blob_size(NULL) == 0);
}

static double psnr(const uint8_t *a, const uint8_t *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++) se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

static void test_jpeg(void)
{
    const int w = 64, h = 48;
    uint8_t *rgb = make_rgb(w, h, 1);
    ngpt_image *img = NULL;
    CHECK_OK(ngpt_image_from_rgb8(&img, rgb, w, h, 0));
    const uint32_t flags[2] = {0, NGPT_ENCODE_JPEG_444};
    for (int k = 0; k < 2; k++) {
        ngpt_blob *b = NULL;
        ngpt_image *back = NULL;
        CHECK_OK(ngpt_image_encode(&b, img, NGPT_IMAGE_FORMAT_JPEG, 92, flags[k]));
        CHECK(b && ngpt_blob_size(b) > 2 && ngpt_blob_data(b)[0] == 0xFF && ngpt_blob_data(b)[1] == 0xD8);
        CHECK_OK(ngpt_image_load_memory(&back, ngpt_blob_data(b), ngpt_blob_size(b), "jpeg"));
        CHECK(back && ngpt_image_width(back) == w && ngpt_image_height(back) == h);
        if (back) {
            double p = psnr(ngpt_image_pixels(back), rgb, (size_t)w * h * 3);
            CHECK_MSG(p > 30.0, "JPEG flags %u: PSNR %.2f dB", flags[k], p);
        }
        ngpt_image_free(back);
        ngpt_blob_free(b);
    }
    char path[512];
    tmp_path(path, sizeof path, "b.jpeg");
    CHECK_OK(ngpt_image_save(img, path, NGPT_IMAGE_FORMAT_AUTO, 0, 0));
    ngpt_image *back = NULL;
    CHECK_OK(ngpt_image_load(&back, path));
    CHECK(back && ngpt_image_width(back) == w);
    ngpt_image_free(back);
    ngpt_image_free(img);
    free(rgb);
}

static void test_image_from_tensor(void)
{
    float px[2 * 2 * 3] = {0.0f, 1.0f, 0.5f, -3.0f, 7.0f, 0.2f, 0.1f, 0.9f, 1.5f / 255.0f, 2.5f / 255.0f, 0.25f, 1.0f};
    ngpt_tensor t = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {2, 2, 3}, .data = px};
    ngpt_image *img = NULL;
    CHECK_OK(ngpt_image_from_tensor(&img, &t));
    if (img) {
        const uint8_t *p = ngpt_image_pixels(img);
        for (int i = 0; i < 12; i++) {
            float v = px[i] < 0 ? 0 : px[i] > 1 ? 1 : px[i];
            CHECK_MSG(p[i] == (uint8_t)rintf(v * 255.0f), "pixel %d: %u", i, p[i]);
        }
    }
    ngpt_image_free(img);
    uint8_t u8[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    ngpt_tensor t8 = {.dtype = NGPT_DTYPE_U8, .rank = 3, .shape = {2, 2, 3}, .data = u8};
    CHECK_OK(ngpt_image_from_tensor(&img, &t8));
    CHECK(img && memcmp(ngpt_image_pixels(img), u8, 12) == 0);
    ngpt_image_free(img);
    ngpt_tensor bad = t8;
    bad.shape[2] = 4;
    CHECK_ERR(ngpt_image_from_tensor(&img, &bad), NGPT_ERR_SHAPE_MISMATCH, "[H, W, 3]");
    bad = t8;
    bad.dtype = NGPT_DTYPE_I16;
    CHECK_ERR(ngpt_image_from_tensor(&img, &bad), NGPT_ERR_DTYPE_MISMATCH, "I16");
}

/* ---- audio ---- */

static float *make_pcm(int64_t n, int ch, int rate)
{
    float *p = malloc(sizeof *p * (size_t)n * ch);
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < ch; c++)
            p[i * ch + c] = (float)(0.6 * sin(2 * M_PI * (440.0 + 110 * c) * (double)i / rate));
    return p;
}

static void test_audio_roundtrip(void)
{
    const int64_t n = 16000;
    const int ch = 2, rate = 16000;
    float *pcm = make_pcm(n, ch, rate);
    pcm[0] = 1.5f; /* clips in integer formats, and when a float WAV is loaded */
    ngpt_audio *a = NULL;
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, n, ch, rate));
    struct {
        ngpt_audio_format fmt;
        float tol;
    } cases[] = {{NGPT_AUDIO_FORMAT_WAV16, 1.0f / 32767 + 1e-6f},
                 {NGPT_AUDIO_FORMAT_WAV_FLOAT, 0.0f},
                 {NGPT_AUDIO_FORMAT_FLAC, 1.0f / 32767 + 1e-6f}};
    for (int k = 0; k < 3; k++) {
        ngpt_blob *b = NULL;
        CHECK_OK(ngpt_audio_encode(&b, a, cases[k].fmt));
        ngpt_audio *back = NULL;
        CHECK_OK(ngpt_audio_load_memory(&back, ngpt_blob_data(b), ngpt_blob_size(b), "enc"));
        CHECK_MSG(back && ngpt_audio_frames(back) == n && ngpt_audio_sample_rate(back) == rate &&
                      ngpt_audio_channels(back) == ch,
                  "format %d", (int)cases[k].fmt);
        if (back && ngpt_audio_frames(back) == n) {
            const float *s = ngpt_audio_samples(back);
            float worst = 0;
            for (int64_t i = 1; i < n * ch; i++) worst = (float)test_worst(worst, fabsf(s[i] - pcm[i]));
            CHECK_MSG(worst <= cases[k].tol, "format %d: max error %g", (int)cases[k].fmt, worst);
            /* 1.5 clips: when encoding to integers, and when loading a float WAV (as
             * torchaudio.load does) */
            CHECK_MSG(fabsf(s[0] - 1.0f) <= 1.0f / 32767, "format %d: clipped sample %g", (int)cases[k].fmt, s[0]);
        }
        ngpt_audio_free(back);
        ngpt_blob_free(b);
    }
    /* OGG/Vorbis through libsndfile directly, from a file named .ogg */
    char path[512];
    tmp_path(path, sizeof path, "c.ogg");
    CHECK_OK(ngpt_audio_save(a, path, NGPT_AUDIO_FORMAT_AUTO));
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    CHECK_MSG(sf != NULL, "%s: %s", path, sf_strerror(NULL));
    if (sf) {
        CHECK((info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_OGG);
        CHECK(info.samplerate == rate && info.channels == ch);
        CHECK_MSG(llabs((long long)info.frames - n) <= 2048, "OGG frames %lld", (long long)info.frames);
        sf_close(sf);
    }
    tmp_path(path, sizeof path, "d.flac");
    CHECK_OK(ngpt_audio_save(a, path, NGPT_AUDIO_FORMAT_AUTO));
    memset(&info, 0, sizeof info);
    sf = sf_open(path, SFM_READ, &info);
    CHECK(sf && (info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC && info.frames == n);
    if (sf) sf_close(sf);
    ngpt_audio_free(a);
    free(pcm);
}

/* ---- video ---- */

typedef struct vinfo {
    int frames, w, h;
    AVRational rate;
    char codec[32];
} vinfo;

/* Open with libavformat, decode every frame of the best video stream. */
static int probe_video(const char *path, vinfo *vi)
{
    memset(vi, 0, sizeof *vi);
    AVFormatContext *fc = NULL;
    if (avformat_open_input(&fc, path, NULL, NULL) < 0) return -1;
    int rc = -1;
    AVCodecContext *dc = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    if (avformat_find_stream_info(fc, NULL) < 0) goto out;
    int si = av_find_best_stream(fc, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (si < 0) goto out;
    AVStream *s = fc->streams[si];
    const AVCodec *dec = avcodec_find_decoder(s->codecpar->codec_id);
    snprintf(vi->codec, sizeof vi->codec, "%s", avcodec_get_name(s->codecpar->codec_id));
    vi->w = s->codecpar->width;
    vi->h = s->codecpar->height;
    vi->rate = s->avg_frame_rate.num ? s->avg_frame_rate : s->r_frame_rate;
    if (!dec || !(dc = avcodec_alloc_context3(dec)) || avcodec_parameters_to_context(dc, s->codecpar) < 0 ||
        avcodec_open2(dc, dec, NULL) < 0)
        goto out;
    for (int eof = 0; !eof;) {
        if (av_read_frame(fc, pkt) < 0) {
            eof = 1;
            avcodec_send_packet(dc, NULL);
        } else {
            if (pkt->stream_index == si) avcodec_send_packet(dc, pkt);
            av_packet_unref(pkt);
        }
        while (avcodec_receive_frame(dc, fr) == 0) {
            vi->frames++;
            av_frame_unref(fr);
        }
    }
    rc = 0;
out:
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&dc);
    avformat_close_input(&fc);
    return rc;
}

static void test_video(void)
{
    const int f = 8, h = 48, w = 64;
    uint8_t *frames = malloc((size_t)f * h * w * 3);
    for (int i = 0; i < f; i++) {
        uint8_t *p = make_rgb(w, h, i);
        memcpy(frames + (size_t)i * h * w * 3, p, (size_t)h * w * 3);
        free(p);
    }
    ngpt_tensor t = {.dtype = NGPT_DTYPE_U8, .rank = 4, .shape = {f, h, w, 3}, .data = frames};
    const char *mp4 = ngpt_media_video_codec(NGPT_VIDEO_FORMAT_MP4);
    const char *webm = ngpt_media_video_codec(NGPT_VIDEO_FORMAT_WEBM);
    fprintf(stderr, "  encoders: MP4 %s, WebM %s\n", mp4 ? mp4 : "(none)", webm ? webm : "(none)");
    CHECK(ngpt_media_video_codec((ngpt_video_format)9) == NULL);
    const struct {
        const char *name;
        ngpt_video_format fmt;
        const char *codec;
    } cases[] = {{"e.mp4", NGPT_VIDEO_FORMAT_MP4, mp4}, {"f.webm", NGPT_VIDEO_FORMAT_WEBM, webm}};
    for (int k = 0; k < 2; k++) {
        char path[512];
        tmp_path(path, sizeof path, cases[k].name);
        if (!cases[k].codec) {
            CHECK_ERR(ngpt_video_save(&t, path, 8.0f, cases[k].fmt), NGPT_ERR_UNSUPPORTED, "encoder");
            continue;
        }
        CHECK_OK(ngpt_video_save(&t, path, 8.0f, NGPT_VIDEO_FORMAT_AUTO));
        vinfo vi;
        CHECK_MSG(probe_video(path, &vi) == 0, "%s: libavformat cannot read it back", path);
        CHECK_MSG(vi.frames == f && vi.w == w && vi.h == h, "%s: %d frames %dx%d", path, vi.frames, vi.w, vi.h);
        CHECK_MSG(vi.rate.num == 8 * vi.rate.den, "%s: rate %d/%d", path, vi.rate.num, vi.rate.den);
        fprintf(stderr, "  %s: %s, %d frames %dx%d at %d/%d fps\n", cases[k].name, vi.codec, vi.frames, vi.w, vi.h,
                vi.rate.num, vi.rate.den);
        /* in memory: the same container */
        ngpt_blob *b = NULL;
        CHECK_OK(ngpt_video_encode(&b, &t, 8.0f, cases[k].fmt));
        CHECK(b && ngpt_blob_size(b) > 100);
        if (b && cases[k].fmt == NGPT_VIDEO_FORMAT_MP4) CHECK(memcmp(ngpt_blob_data(b) + 4, "ftyp", 4) == 0);
        if (b && cases[k].fmt == NGPT_VIDEO_FORMAT_WEBM) CHECK(memcmp(ngpt_blob_data(b), "\x1a\x45\xdf\xa3", 4) == 0);
        ngpt_blob_free(b);
    }
    /* the fallback encoders, forced (this FFmpeg may have the preferred ones) */
    const struct {
        const char *codec, *file, *id;
        int fmt;
    } fb[] = {{"mpeg4", "h.mp4", "mpeg4", NX_VIDEO_MP4}, {"libvpx", "i.webm", "vp8", NX_VIDEO_WEBM}};
    for (int k = 0; k < 2; k++) {
        nx_bytes bytes = {0};
        const char *used = NULL;
        ngpt_status st = nx_video_encode_with(frames, f, h, w, 8.0, fb[k].fmt, fb[k].codec, "fallback", &bytes, &used);
        if (st == NGPT_ERR_UNSUPPORTED) {
            fprintf(stderr, "  %s: not in this FFmpeg (%s)\n", fb[k].codec, ngpt_last_error());
            continue;
        }
        CHECK_OK(st);
        CHECK(used && strcmp(used, fb[k].codec) == 0);
        char p2[512];
        tmp_path(p2, sizeof p2, fb[k].file);
        FILE *fo = fopen(p2, "wb");
        if (fo) {
            fwrite(bytes.data, 1, bytes.len, fo);
            fclose(fo);
        }
        vinfo vi;
        CHECK_MSG(probe_video(p2, &vi) == 0 && vi.frames == f && vi.w == w && vi.h == h && strcmp(vi.codec, fb[k].id) == 0 &&
                      vi.rate.num == 8 * vi.rate.den,
                  "%s: %s %d frames %dx%d %d/%d", fb[k].codec, vi.codec, vi.frames, vi.w, vi.h, vi.rate.num, vi.rate.den);
        fprintf(stderr, "  fallback %s: %s, %d frames %dx%d\n", fb[k].file, vi.codec, vi.frames, vi.w, vi.h);
        nx_bytes_free(&bytes);
    }
    nx_bytes bad = {0};
    CHECK_ERR(nx_video_encode_with(frames, f, h, w, 8.0, NX_VIDEO_MP4, "libvpx", "x", &bad, NULL),
              NGPT_ERR_INVALID_ARGUMENT, "not one of");
    /* another rate, one frame */
    char path[512];
    tmp_path(path, sizeof path, "g.mp4");
    ngpt_tensor one = t;
    one.shape[0] = 1;
    if (mp4) {
        CHECK_OK(ngpt_video_save(&one, path, 24.0f, NGPT_VIDEO_FORMAT_MP4));
        vinfo vi;
        CHECK(probe_video(path, &vi) == 0 && vi.frames == 1 && vi.rate.num == 24 * vi.rate.den);
    }
    free(frames);
}

static void test_video_postprocess(void)
{
    /* B=2, F=1, H=1, W=2: batch side by side along the width */
    float v[2 * 3 * 1 * 1 * 2] = {0.0f, 1.0f, -1.0f, 2.0f, -0.5f, 0.999f, 0.5f, -2.0f, 0.25f, NAN, 1e-9f, -0.25f};
    ngpt_tensor in = {.dtype = NGPT_DTYPE_F32, .rank = 5, .shape = {2, 3, 1, 1, 2}, .data = v};
    ngpt_tensor out = {0};
    CHECK_OK(ngpt_video_postprocess(&out, &in));
    CHECK(out.dtype == NGPT_DTYPE_U8 && out.rank == 4 && out.shape[0] == 1 && out.shape[1] == 1 && out.shape[2] == 4 &&
          out.shape[3] == 3);
    if (out.data) {
        const uint8_t *o = out.data;
        /* frame 0, row 0, x = b*W + w, channel c <- v[b][c][0][0][w] */
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++)
                for (int x = 0; x < 2; x++) {
                    float u = v[(b * 3 + c) * 2 + x] * 0.5f + 0.5f;
                    u = u != u ? 0.0f : u < 0 ? 0 : u > 1 ? 1 : u;
                    CHECK_MSG(o[(b * 2 + x) * 3 + c] == (uint8_t)(u * 255.0f), "b%d c%d x%d: %u", b, c, x,
                              o[(b * 2 + x) * 3 + c]);
                }
        CHECK(o[0] == 127); /* 0 -> 127.5 -> truncated */
    }
    ngpt_tensor_free(&out);
    ngpt_tensor bad = in;
    bad.shape[1] = 4;
    CHECK_ERR(ngpt_video_postprocess(&out, &bad), NGPT_ERR_SHAPE_MISMATCH, "[B, 3, F, H, W]");
    bad = in;
    bad.dtype = NGPT_DTYPE_F16;
    CHECK_ERR(ngpt_video_postprocess(&out, &bad), NGPT_ERR_DTYPE_MISMATCH, "F16");
    /* no data: refused, unless there is nothing to read (an empty batch, as the image call) */
    bad = in;
    bad.data = NULL;
    CHECK_ERR(ngpt_video_postprocess(&out, &bad), NGPT_ERR_INVALID_ARGUMENT, "data is NULL");
    CHECK_ERR(ngpt_video_postprocess(&out, NULL), NGPT_ERR_INVALID_ARGUMENT, "video is NULL");
    bad.shape[0] = 0;
    CHECK_OK(ngpt_video_postprocess(&out, &bad));
    CHECK(out.rank == 4 && ngpt_tensor_numel(&out) == 0);
    ngpt_tensor_free(&out);
    ngpt_tensor empty_img = {.dtype = NGPT_DTYPE_F32, .rank = 4, .shape = {0, 3, 8, 8}};
    CHECK_OK(ngpt_image_postprocess(&out, &empty_img));
    CHECK(out.rank == 4 && out.shape[0] == 0 && out.shape[3] == 3);
    ngpt_tensor_free(&out);
    empty_img.shape[0] = 1;
    CHECK_ERR(ngpt_image_postprocess(&out, &empty_img), NGPT_ERR_INVALID_ARGUMENT, "data is NULL");
}

/* ---- bad input ---- */

static void test_bad_input(void)
{
    uint8_t px[4 * 4 * 3] = {0};
    ngpt_image *img = NULL;
    CHECK_OK(ngpt_image_from_rgb8(&img, px, 4, 4, 0));
    ngpt_blob *b = (ngpt_blob *)1;
    CHECK_ERR(ngpt_image_encode(&b, NULL, NGPT_IMAGE_FORMAT_PNG, 0, 0), NGPT_ERR_INVALID_ARGUMENT, "img is NULL");
    CHECK(b == NULL);
    CHECK_ERR(ngpt_image_encode(NULL, img, NGPT_IMAGE_FORMAT_PNG, 0, 0), NGPT_ERR_INVALID_ARGUMENT, "out is NULL");
    CHECK_ERR(ngpt_image_encode(&b, img, (ngpt_image_format)7, 0, 0), NGPT_ERR_INVALID_ARGUMENT, "unknown image format");
    CHECK_ERR(ngpt_image_encode(&b, img, NGPT_IMAGE_FORMAT_JPEG, 101, 0), NGPT_ERR_INVALID_ARGUMENT, "quality");
    CHECK_ERR(ngpt_image_encode(&b, img, NGPT_IMAGE_FORMAT_PNG, 0, 0x80), NGPT_ERR_INVALID_ARGUMENT, "flags");
    CHECK_ERR(ngpt_image_save(img, "/tmp/x.bmp", NGPT_IMAGE_FORMAT_AUTO, 0, 0), NGPT_ERR_INVALID_ARGUMENT, "x.bmp");
    CHECK_ERR(ngpt_image_save(img, "/nonexistent-dir/x.png", NGPT_IMAGE_FORMAT_AUTO, 0, 0), NGPT_ERR_IO,
              "/nonexistent-dir/x.png");
    CHECK_ERR(ngpt_image_save(img, NULL, NGPT_IMAGE_FORMAT_PNG, 0, 0), NGPT_ERR_INVALID_ARGUMENT, "path");
    ngpt_image_free(img);

    float pcm[8] = {0};
    ngpt_audio *a = NULL;
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, 8, 1, 16000));
    CHECK_ERR(ngpt_audio_encode(&b, a, (ngpt_audio_format)42), NGPT_ERR_INVALID_ARGUMENT, "unknown audio format");
    CHECK_ERR(ngpt_audio_encode(&b, NULL, NGPT_AUDIO_FORMAT_WAV16), NGPT_ERR_INVALID_ARGUMENT, "audio is NULL");
    CHECK_ERR(ngpt_audio_save(a, "/tmp/x.mp3", NGPT_AUDIO_FORMAT_AUTO), NGPT_ERR_INVALID_ARGUMENT, "x.mp3");
    CHECK_ERR(ngpt_audio_save(a, "/nonexistent-dir/x.wav", NGPT_AUDIO_FORMAT_AUTO), NGPT_ERR_IO, "x.wav");
    ngpt_audio_free(a);

    uint8_t fr[2 * 6 * 8 * 3] = {0};
    ngpt_tensor t = {.dtype = NGPT_DTYPE_U8, .rank = 4, .shape = {2, 6, 8, 3}, .data = fr};
    ngpt_tensor z = t;
    z.shape[0] = 0;
    CHECK_ERR(ngpt_video_encode(&b, &z, 8.0f, NGPT_VIDEO_FORMAT_MP4), NGPT_ERR_INVALID_ARGUMENT, "0 frames");
    ngpt_tensor odd = t;
    odd.shape[1] = 5;
    CHECK_ERR(ngpt_video_encode(&b, &odd, 8.0f, NGPT_VIDEO_FORMAT_MP4), NGPT_ERR_UNSUPPORTED, "even");
    odd = t;
    odd.shape[2] = 7;
    CHECK_ERR(ngpt_video_encode(&b, &odd, 8.0f, NGPT_VIDEO_FORMAT_WEBM), NGPT_ERR_UNSUPPORTED, "even");
    CHECK_ERR(ngpt_video_encode(&b, &t, 8.0f, (ngpt_video_format)5), NGPT_ERR_INVALID_ARGUMENT, "unknown video format");
    CHECK_ERR(ngpt_video_encode(&b, &t, 0.0f, NGPT_VIDEO_FORMAT_MP4), NGPT_ERR_INVALID_ARGUMENT, "fps");
    CHECK_ERR(ngpt_video_encode(&b, &t, NAN, NGPT_VIDEO_FORMAT_MP4), NGPT_ERR_INVALID_ARGUMENT, "fps");
    ngpt_tensor f32 = t;
    f32.dtype = NGPT_DTYPE_F32;
    CHECK_ERR(ngpt_video_encode(&b, &f32, 8.0f, NGPT_VIDEO_FORMAT_MP4), NGPT_ERR_DTYPE_MISMATCH, "expected U8");
    ngpt_tensor r3 = t;
    r3.rank = 3;
    CHECK_ERR(ngpt_video_encode(&b, &r3, 8.0f, NGPT_VIDEO_FORMAT_MP4), NGPT_ERR_SHAPE_MISMATCH, "[F, H, W, 3]");
    CHECK_ERR(ngpt_video_save(&t, "/tmp/x.avi", 8.0f, NGPT_VIDEO_FORMAT_AUTO), NGPT_ERR_INVALID_ARGUMENT, "x.avi");
    if (ngpt_media_video_codec(NGPT_VIDEO_FORMAT_MP4))
        CHECK_ERR(ngpt_video_save(&t, "/nonexistent-dir/x.mp4", 8.0f, NGPT_VIDEO_FORMAT_AUTO), NGPT_ERR_IO, "x.mp4");
}

/* ---- allocation failures ---- */

static ngpt_status encode_png_once(void *u)
{
    ngpt_blob *b = NULL;
    ngpt_status st = ngpt_image_encode(&b, u, NGPT_IMAGE_FORMAT_PNG, 0, 0);
    ngpt_blob_free(b);
    return st;
}

static ngpt_status encode_wav_once(void *u)
{
    ngpt_blob *b = NULL;
    ngpt_status st = ngpt_audio_encode(&b, u, NGPT_AUDIO_FORMAT_WAV16);
    ngpt_blob_free(b);
    return st;
}

static bool put_text(FILE *f, void *user)
{
    return fputs(user, f) >= 0;
}

static bool file_is(const char *path, const char *want)
{
    size_t n = 0;
    unsigned char *got = test_read_file(path, &n);
    const bool same = got && n == strlen(want) && !memcmp(got, want, n);
    free(got);
    return same;
}

/* nx_write_replace, the one way the library writes a file (media saves, safetensors): what it
 * must do besides writing beside the file and renaming. */
static void test_write_replace(void)
{
    char dir[] = "/tmp/ngpt_write_XXXXXX", p[512], q[512];
    CHECK(mkdtemp(dir) != NULL);
    /* a name under /dev standing for an open file (/dev/stdout redirected to a file) is written
     * through, not replaced: the file stays the one its writer holds */
    snprintf(p, sizeof p, "%s/log", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    snprintf(q, sizeof q, "/dev/fd/%d", fd);
    CHECK_OK(nx_write_replace(q, false, put_text, "new"));
    struct stat sb;
    CHECK(fstat(fd, &sb) == 0 && sb.st_nlink == 1 && sb.st_size == 3);
    CHECK(file_is(p, "new"));
    close(fd);
    /* a dangling link: the file is made where it points, the link kept */
    snprintf(p, sizeof p, "%s/link", dir);
    CHECK(symlink("made.png", p) == 0);
    CHECK_OK(nx_write_replace(p, false, put_text, "via link"));
    CHECK(lstat(p, &sb) == 0 && S_ISLNK(sb.st_mode));
    snprintf(q, sizeof q, "%s/made.png", dir);
    CHECK(file_is(q, "via link"));
    /* the replaced file's mode is kept (a private file stays private) */
    snprintf(p, sizeof p, "%s/private", dir);
    CHECK_OK(nx_write_replace(p, false, put_text, "one"));
    CHECK(chmod(p, 0600) == 0);
    CHECK_OK(nx_write_replace(p, false, put_text, "two"));
    CHECK(stat(p, &sb) == 0 && (sb.st_mode & 07777) == 0600 && file_is(p, "two"));
    /* a name too long for the temporary suffix: written in place where the writer allows it */
    char name[251];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CHECK_ERR(nx_write_replace(p, false, put_text, "long"), NGPT_ERR_IO, "File name too long");
    CHECK_OK(nx_write_replace(p, true, put_text, "long"));
    CHECK(file_is(p, "long"));
    unlink(p);
    /* an existing file we may not write is refused as fopen would (root may write anything) */
    snprintf(p, sizeof p, "%s/private", dir);
    CHECK(chmod(p, 0400) == 0);
    if (geteuid() != 0) CHECK_ERR(nx_write_replace(p, true, put_text, "x"), NGPT_ERR_IO, "private");
    /* a folder is no file to write */
    CHECK_ERR(nx_write_replace(dir, true, put_text, "x"), NGPT_ERR_IO, "is a folder");
    /* nothing left behind, every file accounted for */
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        n++;
        CHECK_MSG(!strstr(e->d_name, ".tmp-"), "left behind: %s", e->d_name);
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    CHECK_MSG(n == 4, "%d files (log, link, made.png, private)", n);
    CHECK(rmdir(dir) == 0);
}

static void test_alloc_failures(void)
{
    const int w = 96, h = 64;
    uint8_t *rgb = make_rgb(w, h, 2);
    ngpt_image *img = NULL;
    CHECK_OK(ngpt_image_from_rgb8(&img, rgb, w, h, 0));
    int64_t n = test_alloc_fail_all("PNG encode", encode_png_once, img);
    CHECK_MSG(n >= 3, "PNG encode made only %lld allocations", (long long)n);
    ngpt_image_free(img);
    free(rgb);
    float *pcm = make_pcm(20000, 1, 16000);
    ngpt_audio *a = NULL;
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, 20000, 1, 16000));
    test_alloc_fail_all("WAV encode", encode_wav_once, a);
    ngpt_audio_free(a);
    free(pcm);
}

static void rm_tmp(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
}

int main(void)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ngpt_media_out_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_png_roundtrip);
    RUN(test_jpeg);
    RUN(test_image_from_tensor);
    RUN(test_audio_roundtrip);
    RUN(test_video);
    RUN(test_video_postprocess);
    RUN(test_bad_input);
    RUN(test_write_replace);
    RUN(test_alloc_failures);
    rm_tmp();
    return test_done();
}
