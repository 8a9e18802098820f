/* audio_av.c — sounds libsndfile cannot open (AAC in MP4/M4A, WMA, AC-3, AMR, the audio track of
 * a video file, ...), decoded through FFmpeg as torchaudio 0.13's load does when sox cannot open
 * a file (torchaudio.io._compat.load_audio):
 *
 *   the best audio stream (av_find_best_stream); every packet decoded, the decoder drained at
 *   the end; frames converted by "aformat=sample_fmts=fltp" — integers scaled by 1/2^(bits-1)
 *   (u8 centred on 128), float and double samples as they are, NOT clipped (sox's path clips).
 *
 * MP3 comes here too, as in torchaudio 0.12+ (its sox has no MP3 decoder; libsndfile's libmpg123
 * would also print on stderr): not clipped, so a loud MP3 keeps its peaks above 1.
 *
 * Stricter than torchaudio where it would hand back garbage: a decoding error, a sample format,
 * channel count or rate that changes mid-stream, or a non-finite sample is NGPT_ERR_BAD_FORMAT
 * (torchaudio stops quietly or passes NaN on to the fbank). */
#include "media.h"

#include "../core/alloc.h"
#include "av_input.h"

#include <libavcodec/avcodec.h>
#include <math.h>
#include <string.h>

#define MAX_SAMPLES ((int64_t)1 << 31) /* as nx_audio_decode's libsndfile path */

typedef struct actx {
    nx_av_input     in;
    AVCodecContext *dec;
    AVPacket       *pkt;
    AVFrame        *frame;
    float          *pcm;
    int64_t         frames, cap;  /* frames held / room for */
    int             channels, rate;
} actx;

/* packed: the frame's format without its planar flag; planar: whether it had one */
static float sample_at(const AVFrame *f, enum AVSampleFormat packed, bool planar, int ch, int channels, int i)
{
    const uint8_t *p = planar ? f->extended_data[ch] : f->extended_data[0];
    const size_t k = planar ? (size_t)i : (size_t)i * (size_t)channels + (size_t)ch;
    switch (packed) {
    case AV_SAMPLE_FMT_U8: return (float)((int)p[k] - 0x80) * (1.0f / (1 << 7));
    case AV_SAMPLE_FMT_S16: return (float)((const int16_t *)p)[k] * (1.0f / (1 << 15));
    case AV_SAMPLE_FMT_S32: return (float)((const int32_t *)p)[k] * (1.0f / (1u << 31));
    case AV_SAMPLE_FMT_S64: return (float)((const int64_t *)p)[k] * (1.0f / (float)(UINT64_C(1) << 63));
    case AV_SAMPLE_FMT_FLT: return ((const float *)p)[k];
    case AV_SAMPLE_FMT_DBL: return (float)((const double *)p)[k];
    default: return NAN; /* refused before */
    }
}

/* Append one decoded frame. */
static ngpt_status take_frame(actx *a, const AVFrame *f, const char *name)
{
    const enum AVSampleFormat fmt = f->format;
    const int channels = f->ch_layout.nb_channels, rate = f->sample_rate;
    if (channels <= 0 || channels > 64 || rate <= 0 || rate > 768000 || f->nb_samples < 0)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: bad audio frame (%d channels, %d Hz)", name, channels, rate);
    const enum AVSampleFormat packed = av_get_packed_sample_fmt(fmt);
    const bool planar = av_sample_fmt_is_planar(fmt);
    switch (packed) {
    case AV_SAMPLE_FMT_U8: case AV_SAMPLE_FMT_S16: case AV_SAMPLE_FMT_S32: case AV_SAMPLE_FMT_S64:
    case AV_SAMPLE_FMT_FLT: case AV_SAMPLE_FMT_DBL: break;
    default:
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: audio sample format %s is not supported", name,
                      av_get_sample_fmt_name(fmt) ? av_get_sample_fmt_name(fmt) : "?");
    }
    if (a->channels == 0) {
        a->channels = channels;
        a->rate = rate;
    } else if (channels != a->channels || rate != a->rate) {
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: the audio changes from %d channels at %d Hz to %d at %d Hz mid-stream",
                      name, a->channels, a->rate, channels, rate);
    }
    const int64_t n = f->nb_samples;
    if ((a->frames + n) * channels > MAX_SAMPLES)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: audio too long (over %lld samples)", name, (long long)MAX_SAMPLES);
    if (a->frames + n > a->cap) {
        int64_t cap = a->cap ? a->cap : 65536;
        while (cap < a->frames + n) cap *= 2;
        if (cap * channels > MAX_SAMPLES) cap = MAX_SAMPLES / channels;
        float *p = nx_realloc(a->pcm, sizeof *p * (size_t)cap * (size_t)channels);
        if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate %lld audio frames", name, (long long)cap);
        a->pcm = p;
        a->cap = cap;
    }
    float *dst = a->pcm + a->frames * channels;
    for (int i = 0; i < f->nb_samples; i++)
        for (int c = 0; c < channels; c++) {
            const float x = sample_at(f, packed, planar, c, channels, i);
            if (!isfinite(x))
                return nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt audio: sample %lld of channel %d is not finite", name,
                              (long long)(a->frames + i), c);
            dst[(size_t)i * (size_t)channels + (size_t)c] = x;
        }
    a->frames += n;
    return NGPT_OK;
}

/* Send one packet (NULL: drain) and take every frame it gives. */
static ngpt_status decode(actx *a, const AVPacket *pkt, const char *name)
{
    char eb[128];
    int r = avcodec_send_packet(a->dec, pkt);
    if (r < 0 && r != AVERROR_EOF)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt audio data: %s", name, nx_av_err(r, eb, sizeof eb));
    for (;;) {
        r = avcodec_receive_frame(a->dec, a->frame);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return NGPT_OK;
        if (r < 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt audio data: %s", name, nx_av_err(r, eb, sizeof eb));
        ngpt_status st = take_frame(a, a->frame, name);
        av_frame_unref(a->frame);
        if (st != NGPT_OK) return st;
    }
}

ngpt_status nx_audio_decode_av(const uint8_t *buf, size_t len, const char *name, float **pcm,
                               int64_t *frames, int32_t *channels, int32_t *rate)
{
    actx a;
    memset(&a, 0, sizeof a);
    char eb[128];
    int r;
    ngpt_status st = nx_av_input_open(&a.in, buf, len, name, "audio");
    if (st != NGPT_OK) goto done;
    const AVCodec *codec = NULL;
    const int si = av_find_best_stream(a.in.fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (si < 0 || !codec) {
        st = nx_err(si == AVERROR_DECODER_NOT_FOUND ? NGPT_ERR_UNSUPPORTED : NGPT_ERR_BAD_FORMAT,
                    "%s: no decodable audio stream: %s", name,
                    nx_av_err(si < 0 ? si : AVERROR_DECODER_NOT_FOUND, eb, sizeof eb));
        goto done;
    }
    const AVStream *stream = a.in.fmt->streams[si];
    if (!(a.dec = avcodec_alloc_context3(codec)) || !(a.pkt = av_packet_alloc()) || !(a.frame = av_frame_alloc())) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate an audio decoder", name);
        goto done;
    }
    a.dec->pkt_timebase = stream->time_base;
    if ((r = avcodec_parameters_to_context(a.dec, stream->codecpar)) < 0 || (r = avcodec_open2(a.dec, codec, NULL)) < 0) {
        st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: cannot open the %s decoder: %s", name, codec->name,
                    nx_av_err(r, eb, sizeof eb));
        goto done;
    }
    while ((r = av_read_frame(a.in.fmt, a.pkt)) >= 0) {
        if (a.pkt->stream_index == si) st = decode(&a, a.pkt, name);
        av_packet_unref(a.pkt);
        if (st != NGPT_OK) goto done;
    }
    if (r != AVERROR_EOF) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: corrupt audio file: %s", name, nx_av_err(r, eb, sizeof eb));
        goto done;
    }
    if ((st = decode(&a, NULL, name)) != NGPT_OK) goto done;
    if (a.frames == 0) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: no audio samples", name);
        goto done;
    }
    *pcm = a.pcm;
    a.pcm = NULL;
    *frames = a.frames;
    *channels = a.channels;
    *rate = a.rate;
done:
    nx_free(a.pcm);
    av_frame_free(&a.frame);
    av_packet_free(&a.pkt);
    avcodec_free_context(&a.dec);
    nx_av_input_close(&a.in);
    return st;
}
