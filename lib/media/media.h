/* media.h — media codecs and the ImageBind preprocessing, below the public ngpt_image /
 * ngpt_audio handles (lib/api/media.c).
 *
 * Everything here reproduces one reference exactly (the sections image.preprocess, audio.fbank
 * and image.postprocess of ../shared/golden/vision/STAGES.md): Pillow 9.4's decoding and
 * convert("RGB"), its fixed-point bicubic resize, torchaudio 0.13's sinc resampler and Kaldi
 * fbank, pytorchvideo's clip sampler. `name` arguments only label error messages (a file path,
 * or "<memory>"). Nothing here prints; errors go through nx_err.
 */
#ifndef NX_MEDIA_H
#define NX_MEDIA_H

#include "../core/error.h"

#include <stdbool.h>
#include <stdint.h>

/* Largest accepted image: each side (JPEG's own limit is 65500) and the pixel count, Pillow
 * 9.4's: Image.open raises DecompressionBombError above 2 x MAX_IMAGE_PIXELS = 178956970. A
 * panorama Pillow opens (24000 x 5000) opens here too. Videos: 16384 a side (a frame buffer
 * per decoded frame). */
#define NX_IMAGE_MAX_SIDE   65535
#define NX_IMAGE_MAX_PIXELS 178956970u
#define NX_VIDEO_MAX_SIDE   16384

/* ---- images (image.c) ---- */

/* Decode a JPEG, PNG, WebP, GIF, BMP, TIFF, Netpbm or ICO image (sniffed from the magic bytes)
 * to packed RGB8 [h][w][3], converted as Pillow's Image.open(f).convert("RGB") does. *rgb is
 * nx_malloc'ed. NGPT_ERR_BAD_FORMAT for corrupt, truncated or unrecognised data,
 * NGPT_ERR_UNSUPPORTED for too large images and known layouts we do not decode. */
ngpt_status nx_image_decode(const uint8_t *buf, size_t len, const char *name,
                            int32_t *w, int32_t *h, uint8_t **rgb);

/* NGPT_OK when a w x h image is within NX_IMAGE_MAX_SIDE / _PIXELS; `fmt` names the format. */
ngpt_status nx_image_check_size(const char *name, const char *fmt, int64_t w, int64_t h);
/* BMP, TIFF and Netpbm (image_av.c): through libavcodec's decoders, converted as Pillow 9.4 does. */
typedef enum nx_image_codec { NX_IMAGE_BMP, NX_IMAGE_TIFF, NX_IMAGE_PBM, NX_IMAGE_PGM, NX_IMAGE_PPM } nx_image_codec;
ngpt_status nx_image_decode_av(const uint8_t *buf, size_t len, const char *name, nx_image_codec codec,
                               int32_t *w, int32_t *h, uint8_t **rgb);
/* An unsigned integer of `size` (1..4) bytes at p, big- or little-endian: the file headers. */
static inline uint32_t nx_get_uint(const uint8_t *p, int size, bool be)
{
    uint32_t v = 0;
    for (int i = 0; i < size; i++) v |= (uint32_t)p[be ? size - 1 - i : i] << (8 * i);
    return v;
}

/* Pillow's cmyk2rgb for one channel: nk - MULDIV255(c, nk) with nk = 255 - k (0..255 in, out). */
static inline uint8_t nx_cmyk2rgb(int c, int k)
{
    int nk = 255 - k, t = c * nk + 128;
    return (uint8_t)(nk - (((t >> 8) + t) >> 8));
}

/* TIFF's IFD 0 (image_tiff.c): the entries with known types whose values lie inside the file. */
#define NX_TIFF_MAX_ENTRIES 512
typedef struct nx_tiff_entry {
    uint16_t tag, type;
    uint32_t count;
    size_t   at, size;   /* file offset and length of the values (inline ones too) */
} nx_tiff_entry;
typedef struct nx_tiff_ifd {
    bool          be;    /* "MM" */
    int           n;
    int           cut_tag; /* a layout tag whose values run past the end of the file, or 0 */
    size_t        off, listed; /* where IFD 0 is and how many entries it says it has (for messages) */
    nx_tiff_entry e[NX_TIFF_MAX_ENTRIES];
} nx_tiff_ifd;
/* false when IFD 0 is not inside the file or has more than NX_TIFF_MAX_ENTRIES entries
 * (nx_tiff_ifd_error says which). */
bool nx_tiff_read_ifd0(const uint8_t *buf, size_t len, nx_tiff_ifd *ifd);
/* The NGPT_ERR_BAD_FORMAT for a file nx_tiff_read_ifd0 refused. */
ngpt_status nx_tiff_ifd_error(const nx_tiff_ifd *ifd, size_t len, const char *name);
const nx_tiff_entry *nx_tiff_find(const nx_tiff_ifd *ifd, int tag);
/* The idx-th value of an integer tag, dflt when absent. */
uint32_t nx_tiff_value(const uint8_t *buf, const nx_tiff_ifd *ifd, int tag, uint32_t idx, uint32_t dflt);
/* A tiled or JPEG-compressed TIFF, chunk by chunk (FFmpeg 5.1 decodes neither correctly). */
ngpt_status nx_tiff_decode_chunks(const uint8_t *buf, size_t len, const nx_tiff_ifd *ifd, const char *name,
                                  int32_t *w, int32_t *h, uint8_t **rgb);
/* JPEG (image.c), as nx_image_decode does it; _as for a JPEG inside a TIFF, as libtiff hands it
 * to Pillow: NX_JPEG_TIFF_YCBCR (photometric YCbCr, JPEGCOLORMODE_RGB: libjpeg converts) or
 * NX_JPEG_TIFF_RAW (no colour conversion: RGB as stored, CMYK not inverted). */
typedef enum nx_jpeg_mode { NX_JPEG_FILE, NX_JPEG_TIFF_YCBCR, NX_JPEG_TIFF_RAW } nx_jpeg_mode;
ngpt_status nx_jpeg_decode(const uint8_t *buf, size_t len, const char *name, int32_t *w, int32_t *h, uint8_t **rgb);
ngpt_status nx_jpeg_decode_as(const uint8_t *buf, size_t len, const char *name, nx_jpeg_mode mode, int32_t *w,
                              int32_t *h, uint8_t **rgb);
/* ICO (image_ico.c): the entry Pillow 9.4 opens, a PNG or a DIB (through nx_image_decode_av). */
ngpt_status nx_ico_decode(const uint8_t *buf, size_t len, const char *name, int32_t *w, int32_t *h, uint8_t **rgb);
/* WebP (image_webp.c): the first frame, as Pillow 9.4 reads it through libwebp's WebPAnimDecoder. */
ngpt_status nx_webp_decode(const uint8_t *buf, size_t len, const char *name, int32_t *w, int32_t *h, uint8_t **rgb);
/* GIF (image_gif.c): the first image, laid out and converted as Pillow 9.4 does. */
ngpt_status nx_gif_decode(const uint8_t *buf, size_t len, const char *name, int32_t *w, int32_t *h, uint8_t **rgb);

/* ---- ImageBind vision preprocessing (resize.c) ---- */

#define NX_IMAGE_SIZE 224

/* Pillow's Image.resize(BICUBIC) of packed RGB8 (horizontal pass, then vertical, each skipped
 * when that size is unchanged). dst holds dw*dh*3 bytes. */
ngpt_status nx_resize_bicubic_rgb8(const uint8_t *src, int32_t sw, int32_t sh,
                                   uint8_t *dst, int32_t dw, int32_t dh);
/* The window [x0, x0 + cw) x [y0, y0 + ch) of that resize (inside dw x dh), into dst (cw x ch):
 * the same bytes as resizing whole and cropping, in cw x sh memory. */
ngpt_status nx_resize_bicubic_rgb8_window(const uint8_t *src, int32_t sw, int32_t sh, int32_t dw, int32_t dh,
                                          int32_t x0, int32_t y0, int32_t cw, int32_t ch, uint8_t *dst);

/* Pillow's Image.resize(LANCZOS) of packed RGB8, the same passes as the bicubic one (diffusers'
 * VaeImageProcessor.resize: resample "lanczos"). */
ngpt_status nx_resize_lanczos_rgb8(const uint8_t *src, int32_t sw, int32_t sh, uint8_t *dst, int32_t dw, int32_t dh);

/* src (w x h, packed RGB8) in the orientation an EXIF/TIFF Orientation value 1..8 describes,
 * turned upright into dst as Pillow's exif_transpose does (5..8 swap the sides: dst is h x w).
 * Also decord's video rotations: 6 is 90 degrees clockwise, 3 is 180, 8 is 270. */
void nx_rgb8_orient(const uint8_t *src, int32_t w, int32_t h, int orientation, uint8_t *dst);

/* Resize (short side 224) + CenterCrop 224 + ToTensor + Normalize (CLIP mean/std):
 * out is F32 [3,224,224]. */
ngpt_status nx_image_preprocess_rgb8(const uint8_t *rgb, int32_t w, int32_t h, float *out);

/* image.postprocess: F32 [B,3,H,W] (VAE output, nominally [-1,1]) -> U8 [B,H,W,3]. */
void nx_image_postprocess(const float *img, int64_t b, int64_t h, int64_t w, uint8_t *out);

/* ---- audio (audio.c) ---- */

/* Decode any libsndfile format to interleaved float [frames][channels] (integer PCM scaled by
 * 1/2^(bits-1), as torchaudio.load does); what libsndfile cannot open goes through
 * nx_audio_decode_av, as torchaudio falls back to FFmpeg. *pcm is nx_malloc'ed. */
ngpt_status nx_audio_decode(const uint8_t *buf, size_t len, const char *name, float **pcm,
                            int64_t *frames, int32_t *channels, int32_t *rate);
/* The same through libavformat/libavcodec (audio_av.c): torchaudio 0.13's FFmpeg fallback, which
 * is also how it reads MP3 (its sox has no MP3 decoder since 0.12): samples not clipped. */
ngpt_status nx_audio_decode_av(const uint8_t *buf, size_t len, const char *name, float **pcm,
                               int64_t *frames, int32_t *channels, int32_t *rate);

/* The clip rule of pytorchvideo's ConstantClipsPerVideoSampler (ngpt_clip_rule values). */
enum { NX_CLIP_RULE_PTV015 = 0, NX_CLIP_RULE_PTV_FIXED = 1 };

#define NX_FBANK_CLIPS  3
#define NX_FBANK_MELS   128
#define NX_FBANK_FRAMES 204

/* ImageBind load_and_transform_audio_data after the load: resample to 16 kHz, 3 clips of 2 s,
 * per clip mean removal (in place, shared waveform), Kaldi fbank of channel 0, pad/crop to 204
 * frames, normalise. out is F32 [3,1,128,204]. */
ngpt_status nx_audio_fbank(const float *pcm, int64_t frames, int32_t channels, int32_t rate,
                           int clip_rule, const char *name, float *out);

/* torchaudio.functional.resample (sinc_interpolation, width 6, rolloff 0.99) of one channel
 * (src with stride `stride` floats). *dst (nx_malloc'ed) gets *n_out samples. */
ngpt_status nx_audio_resample(const float *src, int64_t n, ptrdiff_t stride, int32_t from,
                              int32_t to, float **dst, int64_t *n_out);

/* Sample range [*a, *b) of clip k (0..2) for a 16 kHz waveform of n samples (unclamped end). */
void nx_audio_clip_range(int64_t n, int clip_rule, int k, int64_t *a, int64_t *b);

/* ---- video (video.c) ---- */

#define NX_VIDEO_CLIPS 5

/* ImageBind load_and_transform_video_data for one file held in memory: out is F32
 * [15,3,2,224,224] (3 crops per clip, clips in time order). */
ngpt_status nx_video_preprocess(const uint8_t *buf, size_t len, const char *name, int clip_rule, float *out);

#endif
