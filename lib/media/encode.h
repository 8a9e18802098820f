/* encode.h — media encoders (the output side of lib/media): RGB8 images to PNG/JPEG, float
 * PCM to WAV/FLAC/OGG, RGB8 frames to MP4/WebM. Every encoder writes into a growable memory
 * buffer (nx_bytes, nx_malloc'ed so allocation-failure injection reaches it); the public
 * ngpt_*_save functions write that buffer to a file. Nothing here prints; errors go through
 * nx_err and name `what` (a file path or "<memory>") and the codec. */
#ifndef NX_MEDIA_ENCODE_H
#define NX_MEDIA_ENCODE_H

#include "../core/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer with a write position (seekable, for muxers and libsndfile). */
typedef struct nx_bytes {
    uint8_t *data;
    size_t   len;  /* bytes valid (the high-water mark) */
    size_t   cap;
    size_t   pos;  /* write position (may pass len: a gap is zero-filled on the next write) */
    bool     failed; /* a write ran out of memory; every later write fails too (sticky) */
} nx_bytes;

/* Write n bytes at pos (growing, zero-filling a gap); false when out of memory, then and ever
 * after (so a writer that ignores one short write cannot produce a silently corrupt file). */
bool nx_bytes_write(nx_bytes *b, const void *src, size_t n);
void nx_bytes_free(nx_bytes *b);

/* ---- images (encode_image.c) ---- */

/* PNG, 8-bit RGB, no interlace, zlib level 6; every libpng/zlib allocation through nx_malloc. */
ngpt_status nx_png_encode(const uint8_t *rgb, int32_t w, int32_t h, const char *what, nx_bytes *out);
/* Baseline JPEG through TurboJPEG: quality 1..100, chroma 4:2:0 (or 4:4:4 when full_chroma). */
ngpt_status nx_jpeg_encode(const uint8_t *rgb, int32_t w, int32_t h, int32_t quality, bool full_chroma,
                           const char *what, nx_bytes *out);

/* ---- audio (encode_audio.c) ---- */

enum { NX_AUDIO_WAV16 = 1, NX_AUDIO_WAV_FLOAT = 2, NX_AUDIO_FLAC = 3, NX_AUDIO_OGG = 4 };

/* Interleaved float [frames][channels] (nominally [-1,1]; integer formats clip) to a sound file
 * through libsndfile (sf_open_virtual). FLAC is 16-bit; OGG is Vorbis at libsndfile's default
 * quality (0.4). */
ngpt_status nx_audio_encode(const float *pcm, int64_t frames, int32_t channels, int32_t rate, int fmt,
                            const char *what, nx_bytes *out);

/* ---- video (encode_video.c) ---- */

enum { NX_VIDEO_MP4 = 1, NX_VIDEO_WEBM = 2 };

/* Largest frame count accepted by nx_video_encode. */
#define NX_VIDEO_MAX_FRAMES 100000

/* RGB8 frames [f][h][w][3] to MP4 (libx264, else MPEG-4 part 2) or WebM (libvpx-vp9, else
 * libvpx VP8), yuv420p (BT.601, limited range), constant frame rate fps. w and h must be even
 * (NGPT_ERR_UNSUPPORTED otherwise). *codec (may be NULL) gets the encoder's name (static). */
ngpt_status nx_video_encode(const uint8_t *rgb, int64_t f, int32_t h, int32_t w, double fps, int fmt,
                            const char *what, nx_bytes *out, const char **codec);

/* The same with the encoder named (one of the format's list above; NULL = first found):
 * lets the tests exercise the fallbacks on a build that has the preferred encoders. */
ngpt_status nx_video_encode_with(const uint8_t *rgb, int64_t f, int32_t h, int32_t w, double fps, int fmt,
                                 const char *force_codec, const char *what, nx_bytes *out, const char **codec);

/* The encoder nx_video_encode would use for fmt (static name), or NULL when none exists. */
const char *nx_video_codec_name(int fmt);

/* video.postprocess (diffusers' tensor2vid): F32 [B,3,F,H,W] -> U8 [F,H,B*W,3]. */
void nx_video_postprocess(const float *video, int64_t b, int64_t f, int64_t h, int64_t w, uint8_t *out);

#endif
