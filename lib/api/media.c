/* media.c — the ngpt_image / ngpt_audio handles of the public ABI ("Media preprocessing" in
 * nextgpt.h) over lib/media: file reading, argument checks, library-owned output tensors. */
#include "../core/alloc.h"
#include "../core/error.h"
#include "../core/params.h"
#include "../media/media.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct ngpt_image {
    int32_t  w, h;
    uint8_t *rgb; /* [h][w][3] */
};

struct ngpt_audio {
    int32_t channels, rate;
    int64_t frames;
    float  *pcm;       /* [frames][channels] */
    char    name[128]; /* the file or buffer name (its tail when longer), for messages */
};

/* a->name = name, or "..." + its last characters when it does not fit */
static void audio_set_name(ngpt_audio *a, const char *name)
{
    size_t n = strlen(name), cap = sizeof a->name - 1;
    if (n <= cap) memcpy(a->name, name, n + 1);
    else snprintf(a->name, sizeof a->name, "...%s", name + n - (cap - 3));
}

/* Largest media file read into memory. */
#define MEDIA_MAX_FILE ((uint64_t)1 << 32)

/* Read a whole file; NOT_FOUND / IO errors name it. */
static ngpt_status read_file(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return nx_err(errno == ENOENT ? NGPT_ERR_NOT_FOUND : NGPT_ERR_IO, "%s: cannot open: %s", path,
                      strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return nx_err(NGPT_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > MEDIA_MAX_FILE) {
        fclose(f);
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: file of %lld bytes is too large", path, (long long)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *b = nx_malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = n ? fread(b, 1, n, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (got != n || bad) {
        nx_free(b);
        return nx_err(NGPT_ERR_IO, "%s: read error", path);
    }
    *buf = b;
    *len = n;
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Images
 * ------------------------------------------------------------------------------------------- */

static ngpt_status image_from_buffer(ngpt_image **out, const uint8_t *data, size_t size, const char *name)
{
    ngpt_image *img = nx_calloc(1, sizeof *img);
    if (!img) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate an image", name);
    ngpt_status st = nx_image_decode(data, size, name, &img->w, &img->h, &img->rgb);
    if (st != NGPT_OK) {
        nx_free(img);
        return st;
    }
    *out = img;
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_image_load(ngpt_image **out, const char *path)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_load: out is NULL");
    *out = NULL;
    if (!path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_load: path is NULL");
    uint8_t *buf;
    size_t len;
    NX_TRY(read_file(path, &buf, &len));
    ngpt_status st = image_from_buffer(out, buf, len, path);
    nx_free(buf);
    return st;
}

NGPT_API ngpt_status ngpt_image_load_memory(ngpt_image **out, const void *data, size_t size, const char *name)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_load_memory: out is NULL");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && size) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_load_memory: %s: data is NULL", name);
    return image_from_buffer(out, data, size, name);
}

NGPT_API ngpt_status ngpt_image_from_rgb8(ngpt_image **out, const uint8_t *rgb, int32_t width, int32_t height,
                                          size_t stride)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_from_rgb8: out is NULL");
    *out = NULL;
    if (!rgb) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_from_rgb8: rgb is NULL");
    if (width <= 0 || height <= 0 || width > NX_IMAGE_MAX_SIDE || height > NX_IMAGE_MAX_SIDE ||
        (uint64_t)width * (uint64_t)height > NX_IMAGE_MAX_PIXELS)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_from_rgb8: size %dx%d out of range (1..%d a side, %u pixels)",
                      width, height, NX_IMAGE_MAX_SIDE, NX_IMAGE_MAX_PIXELS);
    size_t row = (size_t)width * 3;
    if (stride == 0) stride = row;
    if (stride < row)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_from_rgb8: stride %zu < width * 3 = %zu", stride, row);
    ngpt_image *img = nx_calloc(1, sizeof *img);
    uint8_t *px = nx_malloc(row * (size_t)height);
    if (!img || !px) {
        nx_free(img);
        nx_free(px);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_image_from_rgb8: cannot allocate %dx%d", width, height);
    }
    for (int32_t y = 0; y < height; y++) memcpy(px + row * (size_t)y, rgb + stride * (size_t)y, row);
    img->w = width;
    img->h = height;
    img->rgb = px;
    *out = img;
    return NGPT_OK;
}

NGPT_API int32_t ngpt_image_width(const ngpt_image *img) { return img ? img->w : 0; }
NGPT_API int32_t ngpt_image_height(const ngpt_image *img) { return img ? img->h : 0; }
NGPT_API const uint8_t *ngpt_image_pixels(const ngpt_image *img) { return img ? img->rgb : NULL; }

NGPT_API void ngpt_image_free(ngpt_image *img)
{
    if (!img) return;
    nx_free(img->rgb);
    nx_free(img);
}

NGPT_API ngpt_status ngpt_image_preprocess(ngpt_tensor *out, const ngpt_image *img)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_preprocess: out is NULL");
    memset(out, 0, sizeof *out);
    if (!img) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_preprocess: img is NULL");
    const int64_t shape[3] = {3, NX_IMAGE_SIZE, NX_IMAGE_SIZE};
    ngpt_tensor t;
    NX_TRY(ngpt_tensor_create(&t, NGPT_DTYPE_F32, 3, shape));
    ngpt_status st = nx_image_preprocess_rgb8(img->rgb, img->w, img->h, t.data);
    if (st != NGPT_OK) {
        ngpt_tensor_free(&t);
        return st;
    }
    *out = t;
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_image_postprocess(ngpt_tensor *out, const ngpt_tensor *image)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_postprocess: out is NULL");
    memset(out, 0, sizeof *out);
    if (!image) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_postprocess: image is NULL");
    if (image->dtype != NGPT_DTYPE_F32)
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "ngpt_image_postprocess: image is %s, expected F32",
                      ngpt_dtype_name(image->dtype));
    if (image->rank != 4 || image->shape[1] != 3 || image->shape[0] < 0 || image->shape[2] < 0 || image->shape[3] < 0) {
        char buf[96];
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_image_postprocess: image is %s, expected [B, 3, H, W]",
                      nx_shape_str(buf, sizeof buf, image->rank, image->shape));
    }
    const int64_t shape[4] = {image->shape[0], image->shape[2], image->shape[3], 3};
    if (!image->data && shape[0] && shape[1] && shape[2]) /* an empty batch may come without data */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_image_postprocess: image data is NULL");
    ngpt_tensor t;
    NX_TRY(ngpt_tensor_create(&t, NGPT_DTYPE_U8, 4, shape));
    nx_image_postprocess(image->data, shape[0], shape[1], shape[2], t.data);
    *out = t;
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Audio
 * ------------------------------------------------------------------------------------------- */

static ngpt_status audio_from_buffer(ngpt_audio **out, const uint8_t *data, size_t size, const char *name)
{
    ngpt_audio *a = nx_calloc(1, sizeof *a);
    if (!a) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate an audio handle", name);
    ngpt_status st = nx_audio_decode(data, size, name, &a->pcm, &a->frames, &a->channels, &a->rate);
    if (st != NGPT_OK) {
        nx_free(a);
        return st;
    }
    audio_set_name(a, name);
    *out = a;
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_audio_load(ngpt_audio **out, const char *path)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_load: out is NULL");
    *out = NULL;
    if (!path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_load: path is NULL");
    uint8_t *buf;
    size_t len;
    NX_TRY(read_file(path, &buf, &len));
    ngpt_status st = audio_from_buffer(out, buf, len, path);
    nx_free(buf);
    return st;
}

NGPT_API ngpt_status ngpt_audio_load_memory(ngpt_audio **out, const void *data, size_t size, const char *name)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_load_memory: out is NULL");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && size) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_load_memory: %s: data is NULL", name);
    return audio_from_buffer(out, data, size, name);
}

NGPT_API ngpt_status ngpt_audio_from_pcm(ngpt_audio **out, const float *samples, int64_t n_frames,
                                         int32_t channels, int32_t sample_rate)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_from_pcm: out is NULL");
    *out = NULL;
    if (!samples) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_from_pcm: samples is NULL");
    if (n_frames <= 0 || channels <= 0 || channels > 64 || sample_rate <= 0 || sample_rate > 768000 ||
        n_frames > ((int64_t)1 << 31) / channels)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT,
                      "ngpt_audio_from_pcm: %lld frames, %d channels, %d Hz out of range", (long long)n_frames,
                      channels, sample_rate);
    ngpt_audio *a = nx_calloc(1, sizeof *a);
    size_t n = (size_t)n_frames * (size_t)channels;
    float *pcm = nx_malloc(sizeof *pcm * n);
    if (!a || !pcm) {
        nx_free(a);
        nx_free(pcm);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_audio_from_pcm: cannot allocate %zu samples", n);
    }
    memcpy(pcm, samples, sizeof *pcm * n);
    a->pcm = pcm;
    a->frames = n_frames;
    a->channels = channels;
    a->rate = sample_rate;
    audio_set_name(a, "PCM audio");
    *out = a;
    return NGPT_OK;
}

NGPT_API int32_t ngpt_audio_sample_rate(const ngpt_audio *a) { return a ? a->rate : 0; }
NGPT_API int32_t ngpt_audio_channels(const ngpt_audio *a) { return a ? a->channels : 0; }
NGPT_API int64_t ngpt_audio_frames(const ngpt_audio *a) { return a ? a->frames : 0; }
NGPT_API const float *ngpt_audio_samples(const ngpt_audio *a) { return a ? a->pcm : NULL; }

NGPT_API void ngpt_audio_free(ngpt_audio *a)
{
    if (!a) return;
    nx_free(a->pcm);
    nx_free(a);
}

static const ngpt_audio_preprocess_params k_audio_defaults = {
    .struct_size = sizeof(ngpt_audio_preprocess_params),
    .clip_rule = NGPT_CLIP_RULE_PYTORCHVIDEO_0_1_5,
};

NGPT_API ngpt_status ngpt_audio_preprocess_params_default(ngpt_audio_preprocess_params *p, size_t struct_size)
{
    return nx_params_default(p, struct_size, &k_audio_defaults, sizeof k_audio_defaults, "ngpt_audio_preprocess_params_default");
}

NGPT_API ngpt_status ngpt_audio_preprocess(ngpt_tensor *out, const ngpt_audio *a, const ngpt_audio_preprocess_params *params)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_preprocess: out is NULL");
    memset(out, 0, sizeof *out);
    if (!a) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_preprocess: audio is NULL");
    ngpt_audio_preprocess_params p;
    NX_TRY(nx_params_read(&p, params, &k_audio_defaults, sizeof p, "ngpt_audio_preprocess"));
    if (p.clip_rule != NGPT_CLIP_RULE_PYTORCHVIDEO_0_1_5 && p.clip_rule != NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_preprocess: unknown clip rule %d", (int)p.clip_rule);
    if (p.flags) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_audio_preprocess: flags 0x%x (reserved, 0)", p.flags);
    const int64_t shape[4] = {NX_FBANK_CLIPS, 1, NX_FBANK_MELS, NX_FBANK_FRAMES};
    ngpt_tensor t;
    NX_TRY(ngpt_tensor_create(&t, NGPT_DTYPE_F32, 4, shape));
    int rule = p.clip_rule == NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED ? NX_CLIP_RULE_PTV_FIXED : NX_CLIP_RULE_PTV015;
    ngpt_status st = nx_audio_fbank(a->pcm, a->frames, a->channels, a->rate, rule, a->name, t.data);
    if (st != NGPT_OK) {
        ngpt_tensor_free(&t);
        return st;
    }
    *out = t;
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Video
 * ------------------------------------------------------------------------------------------- */

static const ngpt_video_preprocess_params k_video_defaults = {
    .struct_size = sizeof(ngpt_video_preprocess_params),
    .clip_rule = NGPT_CLIP_RULE_PYTORCHVIDEO_0_1_5,
};

NGPT_API ngpt_status ngpt_video_preprocess_params_default(ngpt_video_preprocess_params *p, size_t struct_size)
{
    return nx_params_default(p, struct_size, &k_video_defaults, sizeof k_video_defaults, "ngpt_video_preprocess_params_default");
}

static ngpt_status video_run(ngpt_tensor *out, const uint8_t *data, size_t size, const char *name,
                             const ngpt_video_preprocess_params *params)
{
    ngpt_video_preprocess_params p;
    NX_TRY(nx_params_read(&p, params, &k_video_defaults, sizeof p, "ngpt_video_preprocess"));
    if (p.clip_rule != NGPT_CLIP_RULE_PYTORCHVIDEO_0_1_5 && p.clip_rule != NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_preprocess: unknown clip rule %d", (int)p.clip_rule);
    if (p.flags) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_preprocess: flags 0x%x (reserved, 0)", p.flags);
    const int64_t shape[5] = {3 * NX_VIDEO_CLIPS, 3, 2, NX_IMAGE_SIZE, NX_IMAGE_SIZE};
    ngpt_tensor t;
    NX_TRY(ngpt_tensor_create(&t, NGPT_DTYPE_F32, 5, shape));
    int rule = p.clip_rule == NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED ? NX_CLIP_RULE_PTV_FIXED : NX_CLIP_RULE_PTV015;
    ngpt_status st = nx_video_preprocess(data, size, name, rule, t.data);
    if (st != NGPT_OK) {
        ngpt_tensor_free(&t);
        return st;
    }
    *out = t;
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_video_preprocess(ngpt_tensor *out, const char *path, const ngpt_video_preprocess_params *p)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_preprocess: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_preprocess: path is NULL");
    uint8_t *buf;
    size_t len;
    NX_TRY(read_file(path, &buf, &len));
    ngpt_status st = video_run(out, buf, len, path, p);
    nx_free(buf);
    return st;
}

NGPT_API ngpt_status ngpt_video_preprocess_memory(ngpt_tensor *out, const void *data, size_t size, const char *name,
                                                  const ngpt_video_preprocess_params *p)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_preprocess_memory: out is NULL");
    memset(out, 0, sizeof *out);
    if (!name) name = "<memory>";
    if (!data && size) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_video_preprocess_memory: %s: data is NULL", name);
    return video_run(out, data, size, name, p);
}
