/* media_out.c — the "Media output" section of nextgpt.h: ngpt_blob, image/audio/video encoding
 * to memory or to a file, ngpt_image_from_tensor and ngpt_video_postprocess, over the encoders
 * of lib/media (encode_*.c). Argument checks live here; the encoders assume valid input. */
#include "../core/alloc.h"
#include "../core/error.h"
#include "../core/fs.h"
#include "../media/encode.h"
#include "../media/media.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct ngpt_blob {
    uint8_t *data;
    size_t   size;
};

NGPT_API const uint8_t *ngpt_blob_data(const ngpt_blob *b) { return b ? b->data : NULL; }
NGPT_API size_t ngpt_blob_size(const ngpt_blob *b) { return b ? b->size : 0; }

NGPT_API void ngpt_blob_free(ngpt_blob *b)
{
    if (!b) return;
    nx_free(b->data);
    nx_free(b);
}

/* Wrap an encoder's buffer in a blob (taking it; freed on failure). */
static ngpt_status blob_take(ngpt_blob **out, nx_bytes *bytes, const char *fn)
{
    ngpt_blob *b = nx_calloc(1, sizeof *b);
    if (!b) {
        nx_bytes_free(bytes);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a blob", fn);
    }
    b->data = bytes->data;
    b->size = bytes->len;
    memset(bytes, 0, sizeof *bytes);
    *out = b;
    return NGPT_OK;
}

static bool put_bytes(FILE *f, void *user)
{
    const nx_bytes *bytes = user;
    return !bytes->len || fwrite(bytes->data, 1, bytes->len, f) == bytes->len;
}

/* Write an encoded buffer to path, replacing it only once the whole file is written. */
static ngpt_status write_file(const char *path, const nx_bytes *bytes)
{
    return nx_write_replace(path, true, put_bytes, (void *)bytes);
}

/* The extension of path (after the last '.' of its last component), or "". */
static const char *extension(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    return dot ? dot + 1 : "";
}

/* ---------------------------------------------------------------------------------------------
 * Images
 * ------------------------------------------------------------------------------------------- */

static ngpt_status image_encode_bytes(const ngpt_image *img, ngpt_image_format fmt, int32_t quality, uint32_t flags,
                                      const char *what, const char *fn, nx_bytes *out)
{
    if (!img) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: img is NULL", fn);
    if (flags & ~NGPT_ENCODE_JPEG_444) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn, flags);
    if (fmt == NGPT_IMAGE_FORMAT_AUTO) fmt = NGPT_IMAGE_FORMAT_PNG;
    const uint8_t *rgb = ngpt_image_pixels(img);
    int32_t w = ngpt_image_width(img), h = ngpt_image_height(img);
    switch (fmt) {
    case NGPT_IMAGE_FORMAT_PNG:
        return nx_png_encode(rgb, w, h, what, out);
    case NGPT_IMAGE_FORMAT_JPEG:
        if (quality == 0) quality = 90;
        if (quality < 1 || quality > 100)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: JPEG quality %d out of range 1..100", fn, quality);
        return nx_jpeg_encode(rgb, w, h, quality, (flags & NGPT_ENCODE_JPEG_444) != 0, what, out);
    default:
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown image format %d", fn, (int)fmt);
    }
}

NGPT_API ngpt_status ngpt_image_encode(ngpt_blob **out, const ngpt_image *img, ngpt_image_format fmt, int32_t quality,
                                       uint32_t flags)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_encode: out is NULL");
    *out = NULL;
    nx_bytes b = {0};
    NX_TRY(image_encode_bytes(img, fmt, quality, flags, "<memory>", "ngpt_image_encode", &b));
    return blob_take(out, &b, "ngpt_image_encode");
}

NGPT_API ngpt_status ngpt_image_save(const ngpt_image *img, const char *path, ngpt_image_format fmt, int32_t quality,
                                     uint32_t flags)
{
    if (!path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_save: path is NULL");
    if (fmt == NGPT_IMAGE_FORMAT_AUTO) {
        const char *e = extension(path);
        if (strcasecmp(e, "png") == 0)
            fmt = NGPT_IMAGE_FORMAT_PNG;
        else if (strcasecmp(e, "jpg") == 0 || strcasecmp(e, "jpeg") == 0)
            fmt = NGPT_IMAGE_FORMAT_JPEG;
        else
            return nx_err(NGPT_ERR_INVALID_ARGUMENT,
                          "ngpt_image_save: %s: cannot tell the format from the extension (.png, .jpg, .jpeg)", path);
    }
    nx_bytes b = {0};
    NX_TRY(image_encode_bytes(img, fmt, quality, flags, path, "ngpt_image_save", &b));
    ngpt_status st = write_file(path, &b);
    nx_bytes_free(&b);
    return st;
}

NGPT_API ngpt_status ngpt_image_from_tensor(ngpt_image **out, const ngpt_tensor *t)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_from_tensor: out is NULL");
    *out = NULL;
    if (!t || !t->data) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_from_tensor: pixels is NULL");
    if (t->dtype != NGPT_DTYPE_U8 && t->dtype != NGPT_DTYPE_F32)
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "ngpt_image_from_tensor: pixels are %s, expected U8 or F32",
                      ngpt_dtype_name(t->dtype));
    if (t->rank != 3 || t->shape[2] != 3 || t->shape[0] <= 0 || t->shape[1] <= 0 || t->shape[0] > NX_IMAGE_MAX_SIDE ||
        t->shape[1] > NX_IMAGE_MAX_SIDE) {
        char buf[96];
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_image_from_tensor: pixels are %s, expected [H, W, 3]",
                      nx_shape_str(buf, sizeof buf, t->rank, t->shape));
    }
    int32_t h = (int32_t)t->shape[0], w = (int32_t)t->shape[1];
    if (t->dtype == NGPT_DTYPE_U8) return ngpt_image_from_rgb8(out, t->data, w, h, 0);
    size_t n = (size_t)w * (size_t)h * 3;
    uint8_t *rgb = nx_malloc(n);
    if (!rgb) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_image_from_tensor: cannot allocate %dx%d", w, h);
    const float *src = t->data;
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        if (v != v) v = 0.0f;
        rgb[i] = (uint8_t)rintf(v * 255.0f); /* numpy's round: half to even */
    }
    ngpt_status st = ngpt_image_from_rgb8(out, rgb, w, h, 0);
    nx_free(rgb);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Audio
 * ------------------------------------------------------------------------------------------- */

static ngpt_status audio_encode_bytes(const ngpt_audio *a, ngpt_audio_format fmt, const char *what, const char *fn,
                                      nx_bytes *out)
{
    if (!a) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: audio is NULL", fn);
    if (fmt == NGPT_AUDIO_FORMAT_AUTO) fmt = NGPT_AUDIO_FORMAT_WAV16;
    int f;
    switch (fmt) {
    case NGPT_AUDIO_FORMAT_WAV16: f = NX_AUDIO_WAV16; break;
    case NGPT_AUDIO_FORMAT_WAV_FLOAT: f = NX_AUDIO_WAV_FLOAT; break;
    case NGPT_AUDIO_FORMAT_FLAC: f = NX_AUDIO_FLAC; break;
    case NGPT_AUDIO_FORMAT_OGG: f = NX_AUDIO_OGG; break;
    default: return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown audio format %d", fn, (int)fmt);
    }
    return nx_audio_encode(ngpt_audio_samples(a), ngpt_audio_frames(a), ngpt_audio_channels(a),
                           ngpt_audio_sample_rate(a), f, what, out);
}

NGPT_API ngpt_status ngpt_audio_encode(ngpt_blob **out, const ngpt_audio *a, ngpt_audio_format fmt)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_encode: out is NULL");
    *out = NULL;
    nx_bytes b = {0};
    NX_TRY(audio_encode_bytes(a, fmt, "<memory>", "ngpt_audio_encode", &b));
    return blob_take(out, &b, "ngpt_audio_encode");
}

NGPT_API ngpt_status ngpt_audio_save(const ngpt_audio *a, const char *path, ngpt_audio_format fmt)
{
    if (!path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_save: path is NULL");
    if (fmt == NGPT_AUDIO_FORMAT_AUTO) {
        const char *e = extension(path);
        if (strcasecmp(e, "wav") == 0)
            fmt = NGPT_AUDIO_FORMAT_WAV16;
        else if (strcasecmp(e, "flac") == 0)
            fmt = NGPT_AUDIO_FORMAT_FLAC;
        else if (strcasecmp(e, "ogg") == 0 || strcasecmp(e, "oga") == 0)
            fmt = NGPT_AUDIO_FORMAT_OGG;
        else
            return nx_err(NGPT_ERR_INVALID_ARGUMENT,
                          "ngpt_audio_save: %s: cannot tell the format from the extension (.wav, .flac, .ogg, .oga)",
                          path);
    }
    nx_bytes b = {0};
    NX_TRY(audio_encode_bytes(a, fmt, path, "ngpt_audio_save", &b));
    ngpt_status st = write_file(path, &b);
    nx_bytes_free(&b);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Video
 * ------------------------------------------------------------------------------------------- */

NGPT_API ngpt_status ngpt_video_postprocess(ngpt_tensor *out, const ngpt_tensor *video)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_postprocess: out is NULL");
    memset(out, 0, sizeof *out);
    if (!video) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_postprocess: video is NULL");
    if (video->dtype != NGPT_DTYPE_F32)
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "ngpt_video_postprocess: video is %s, expected F32",
                      ngpt_dtype_name(video->dtype));
    const int64_t *s = video->shape;
    if (video->rank != 5 || s[1] != 3 || s[0] < 0 || s[2] < 0 || s[3] < 0 || s[4] < 0 ||
        (s[0] && s[4] > INT64_MAX / s[0])) {
        char buf[96];
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_video_postprocess: video is %s, expected [B, 3, F, H, W]",
                      nx_shape_str(buf, sizeof buf, video->rank, video->shape));
    }
    const int64_t shape[4] = {s[2], s[3], s[0] * s[4], 3};
    if (!video->data && shape[0] && shape[1] && shape[2]) /* an empty video may come without data */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_postprocess: video data is NULL");
    ngpt_tensor t;
    NX_TRY(ngpt_tensor_create(&t, NGPT_DTYPE_U8, 4, shape));
    nx_video_postprocess(video->data, s[0], s[2], s[3], s[4], t.data);
    *out = t;
    return NGPT_OK;
}

static ngpt_status video_encode_bytes(const ngpt_tensor *frames, float fps, ngpt_video_format fmt, const char *what,
                                      const char *fn, nx_bytes *out)
{
    if (!frames || !frames->data) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: frames is NULL", fn);
    if (fmt == NGPT_VIDEO_FORMAT_AUTO) fmt = NGPT_VIDEO_FORMAT_MP4;
    if (fmt != NGPT_VIDEO_FORMAT_MP4 && fmt != NGPT_VIDEO_FORMAT_WEBM)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown video format %d", fn, (int)fmt);
    if (frames->dtype != NGPT_DTYPE_U8)
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "%s: frames are %s, expected U8 (ngpt_video_postprocess output)", fn,
                      ngpt_dtype_name(frames->dtype));
    const int64_t *s = frames->shape;
    char buf[96];
    if (frames->rank != 4 || s[3] != 3 || s[0] < 0 || s[1] <= 0 || s[2] <= 0 || s[1] > NX_VIDEO_MAX_SIDE ||
        s[2] > NX_VIDEO_MAX_SIDE)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: frames are %s, expected [F, H, W, 3]", fn,
                      nx_shape_str(buf, sizeof buf, frames->rank, frames->shape));
    if (s[0] == 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: 0 frames: a video needs at least one", fn);
    if (s[0] > NX_VIDEO_MAX_FRAMES)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %lld frames is more than the limit %d", fn, (long long)s[0],
                      NX_VIDEO_MAX_FRAMES);
    if (!(fps > 0.0f && fps <= 1000.0f))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: fps %g out of range (0, 1000]", fn, (double)fps);
    return nx_video_encode(frames->data, s[0], (int32_t)s[1], (int32_t)s[2], (double)fps,
                           fmt == NGPT_VIDEO_FORMAT_MP4 ? NX_VIDEO_MP4 : NX_VIDEO_WEBM, what, out, NULL);
}

NGPT_API ngpt_status ngpt_video_encode(ngpt_blob **out, const ngpt_tensor *frames_u8, float fps, ngpt_video_format fmt)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_encode: out is NULL");
    *out = NULL;
    nx_bytes b = {0};
    NX_TRY(video_encode_bytes(frames_u8, fps, fmt, "<memory>", "ngpt_video_encode", &b));
    return blob_take(out, &b, "ngpt_video_encode");
}

NGPT_API ngpt_status ngpt_video_save(const ngpt_tensor *frames_u8, const char *path, float fps, ngpt_video_format fmt)
{
    if (!path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_save: path is NULL");
    if (fmt == NGPT_VIDEO_FORMAT_AUTO) {
        const char *e = extension(path);
        if (strcasecmp(e, "mp4") == 0)
            fmt = NGPT_VIDEO_FORMAT_MP4;
        else if (strcasecmp(e, "webm") == 0)
            fmt = NGPT_VIDEO_FORMAT_WEBM;
        else
            return nx_err(NGPT_ERR_INVALID_ARGUMENT,
                          "ngpt_video_save: %s: cannot tell the format from the extension (.mp4, .webm)", path);
    }
    nx_bytes b = {0};
    NX_TRY(video_encode_bytes(frames_u8, fps, fmt, path, "ngpt_video_save", &b));
    ngpt_status st = write_file(path, &b);
    nx_bytes_free(&b);
    return st;
}

NGPT_API const char *ngpt_media_video_codec(ngpt_video_format fmt)
{
    if (fmt == NGPT_VIDEO_FORMAT_AUTO) fmt = NGPT_VIDEO_FORMAT_MP4;
    if (fmt == NGPT_VIDEO_FORMAT_MP4) return nx_video_codec_name(NX_VIDEO_MP4);
    if (fmt == NGPT_VIDEO_FORMAT_WEBM) return nx_video_codec_name(NX_VIDEO_WEBM);
    return NULL;
}
