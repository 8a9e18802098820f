/* encode_audio.c — float PCM to WAV (16-bit PCM or 32-bit float), FLAC (16-bit) and
 * OGG/Vorbis through libsndfile, written into memory with sf_open_virtual (the public
 * ngpt_audio_save writes the buffer to a file). Integer formats clip out-of-range samples
 * (SFC_SET_CLIPPING) rather than wrap; libsndfile scales float -> int16 by 32767. Nothing
 * prints: libsndfile's messages are copied into ngpt_last_error(). */
#include "encode.h"

#include "../core/alloc.h"

#include <sndfile.h>
#include <string.h>

static sf_count_t vo_len(void *u) { return (sf_count_t)((nx_bytes *)u)->len; }

static sf_count_t vo_seek(sf_count_t off, int whence, void *u)
{
    nx_bytes *b = u;
    sf_count_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? (sf_count_t)b->pos + off : (sf_count_t)b->len + off;
    if (p < 0) return -1;
    b->pos = (size_t)p; /* past the end is allowed: the gap is zero-filled on the next write */
    return p;
}

static sf_count_t vo_read(void *dst, sf_count_t n, void *u)
{
    nx_bytes *b = u;
    if (b->pos >= b->len || n <= 0) return 0;
    size_t k = b->len - b->pos;
    if ((size_t)n < k) k = (size_t)n;
    memcpy(dst, b->data + b->pos, k);
    b->pos += k;
    return (sf_count_t)k;
}

static sf_count_t vo_write(const void *src, sf_count_t n, void *u)
{
    if (n <= 0) return 0;
    return nx_bytes_write(u, src, (size_t)n) ? n : 0;
}

static sf_count_t vo_tell(void *u) { return (sf_count_t)((nx_bytes *)u)->pos; }

static const char *fmt_name(int fmt)
{
    switch (fmt) {
    case NX_AUDIO_WAV16: return "WAV (16-bit PCM)";
    case NX_AUDIO_WAV_FLOAT: return "WAV (32-bit float)";
    case NX_AUDIO_FLAC: return "FLAC";
    case NX_AUDIO_OGG: return "OGG/Vorbis";
    default: return "?";
    }
}

ngpt_status nx_audio_encode(const float *pcm, int64_t frames, int32_t channels, int32_t rate, int fmt,
                            const char *what, nx_bytes *out)
{
    SF_INFO info;
    memset(&info, 0, sizeof info);
    info.samplerate = rate;
    info.channels = channels;
    switch (fmt) {
    case NX_AUDIO_WAV16: info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16; break;
    case NX_AUDIO_WAV_FLOAT: info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT; break;
    case NX_AUDIO_FLAC: info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16; break;
    case NX_AUDIO_OGG: info.format = SF_FORMAT_OGG | SF_FORMAT_VORBIS; break;
    default: return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: unknown audio format %d", what, fmt);
    }
    if (!sf_format_check(&info))
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: %s with %d channels at %d Hz is not supported by this libsndfile",
                      what, fmt_name(fmt), channels, rate);
    SF_VIRTUAL_IO io = {vo_len, vo_seek, vo_read, vo_write, vo_tell};
    SNDFILE *sf = sf_open_virtual(&io, SFM_WRITE, &info, out);
    if (!sf) {
        bool oom = out->failed;
        nx_bytes_free(out);
        return nx_err(oom ? NGPT_ERR_OUT_OF_MEMORY : NGPT_ERR_UNSUPPORTED, "%s: %s: libsndfile cannot open an encoder: %s",
                      what, fmt_name(fmt), sf_strerror(NULL));
    }
    sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
    ngpt_status st = NGPT_OK;
    /* in blocks, so a short write is reported close to where it happened */
    const int64_t block = 65536;
    for (int64_t i = 0; i < frames && st == NGPT_OK; i += block) {
        sf_count_t n = (sf_count_t)(frames - i < block ? frames - i : block);
        if (sf_writef_float(sf, pcm + (size_t)i * (size_t)channels, n) != n)
            st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: %s: write failed after %lld frames: %s", what, fmt_name(fmt),
                        (long long)i, sf_strerror(sf));
    }
    if (sf_close(sf) != 0 && st == NGPT_OK)
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: %s: finishing the file failed", what, fmt_name(fmt));
    if (out->failed && st == NGPT_OK) /* libsndfile ignores some short writes (headers) */
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: %s: out of memory for the output buffer", what, fmt_name(fmt));
    if (st != NGPT_OK) nx_bytes_free(out);
    return st;
}
