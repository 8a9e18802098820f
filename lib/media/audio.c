/* audio.c — audio decoding (libsndfile) and ImageBind's audio transform, as
 * data.load_and_transform_audio_data computes it with torchaudio 0.13.1 and pytorchvideo
 * (STAGES.md audio.fbank):
 *
 *   1. load: integer PCM scaled by 1/2^(bits-1) (libsndfile's float normalisation = torchaudio's);
 *      everything clipped to [-1, 1] and Vorbis rounded to 16 bits, as torchaudio's sox_io gives
 *      them (see nx_audio_decode);
 *   2. torchaudio.functional.resample to 16 kHz, every channel (Hann-windowed sinc, width 6,
 *      rolloff 0.99; kernel computed in float32 like torchaudio, the convolution summed in double);
 *   3. ConstantClipsPerVideoSampler(2 s, 3 clips) with exact rational clip times;
 *   4. per clip, in order: subtract the clip's mean over all channels IN PLACE on the shared
 *      waveform (overlapping clips see earlier clips' shifts), Kaldi fbank of channel 0;
 *   5. [frames,128] -> [128,204] (zero pad / crop), (x + 4.268) / 9.138.
 *
 * The FFT is our own radix-2 transform: a 512-point transform per 10 ms frame is all Kaldi fbank
 * needs, and FFTW (or pocketfft, MKL) is not among our dependencies; a 60-line FFT in double
 * precision is more accurate than the float32 one torchaudio uses, which is all that matters here.
 */
#include "media.h"

#include "../core/alloc.h"

#include <math.h>
#include <stdbool.h>
#include <sndfile.h>
#include <string.h>

#define SR        16000
#define WIN       400   /* 25 ms */
#define SHIFT     160   /* 10 ms */
#define NFFT      512   /* round_to_power_of_two(400) */
#define NBINS     (NFFT / 2)

/* ---------------------------------------------------------------------------------------------
 * Decoding (libsndfile, from memory through sf_open_virtual; FFmpeg for the rest: audio_av.c)
 * ------------------------------------------------------------------------------------------- */

typedef struct vio {
    const uint8_t *buf;
    sf_count_t     len, pos;
} vio;

static sf_count_t vio_len(void *u) { return ((vio *)u)->len; }
static sf_count_t vio_seek(sf_count_t off, int whence, void *u)
{
    vio *v = u;
    sf_count_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? v->pos + off : v->len + off;
    if (p < 0 || p > v->len) return -1;
    v->pos = p;
    return p;
}
static sf_count_t vio_read(void *dst, sf_count_t n, void *u)
{
    vio *v = u;
    if (n > v->len - v->pos) n = v->len - v->pos;
    if (n < 0) n = 0;
    memcpy(dst, v->buf + v->pos, (size_t)n);
    v->pos += n;
    return n;
}
static sf_count_t vio_write(const void *src, sf_count_t n, void *u)
{
    (void)src; (void)n; (void)u;
    return 0;
}
static sf_count_t vio_tell(void *u) { return ((vio *)u)->pos; }

/* Would libsndfile hand this to libmpg123? Raw MPEG audio (a frame sync or an ID3v2 tag first) or
 * MPEG Layer III in WAV (format tag 0x55, plain or in WAVE_FORMAT_EXTENSIBLE). libmpg123 prints
 * its warnings on stderr ("Note: Skipped 1024 bytes in input.") for every odd file, and libsndfile
 * does not ask it to be quiet: such files go to FFmpeg, whose log we control. A superset of
 * libsndfile's own test is enough. */
static bool mpeg_audio(const uint8_t *b, size_t n)
{
    if (n >= 3 && memcmp(b, "ID3", 3) == 0) return true;
    if (n >= 2 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0 && (b[1] & 0x06) != 0) return true; /* layer I-III, not ADTS */
    if (n < 12 || memcmp(b, "RIFF", 4) != 0 || memcmp(b + 8, "WAVE", 4) != 0) return false;
    for (size_t at = 12; at + 8 <= n;) {
        const uint32_t sz = (uint32_t)b[at + 4] | (uint32_t)b[at + 5] << 8 | (uint32_t)b[at + 6] << 16 |
                            (uint32_t)b[at + 7] << 24;
        if (memcmp(b + at, "fmt ", 4) == 0) {
            if (at + 10 > n) return false;
            const unsigned tag = b[at + 8] | b[at + 9] << 8;
            if (tag == 0x55) return true;
            return tag == 0xFFFE && at + 34 <= n && b[at + 32] == 0x55 && b[at + 33] == 0;
        }
        if (sz > n - at - 8) return false;
        at += 8 + (size_t)sz + (sz & 1);
    }
    return false;
}

ngpt_status nx_audio_decode(const uint8_t *buf, size_t len, const char *name, float **pcm,
                            int64_t *frames, int32_t *channels, int32_t *rate)
{
    if (len == 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: empty file, not an audio file", name);
    /* MP3 through FFmpeg, not clipped: torchaudio 0.12+ has no sox MP3 decoder and falls back to FFmpeg */
    if (mpeg_audio(buf, len)) return nx_audio_decode_av(buf, len, name, pcm, frames, channels, rate);
    vio v = {buf, (sf_count_t)len, 0};
    SF_VIRTUAL_IO io = {vio_len, vio_seek, vio_read, vio_write, vio_tell};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &v);
    if (!sf) {
        /* torchaudio.load hands what sox cannot open to FFmpeg; we do the same with libsndfile */
        char why[160];
        snprintf(why, sizeof why, "%s", sf_strerror(NULL));
        ngpt_status st = nx_audio_decode_av(buf, len, name, pcm, frames, channels, rate);
        if (st != NGPT_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", ngpt_last_error());
            return nx_err(st, "%s (libsndfile: %s)", msg, why);
        }
        return st;
    }
    ngpt_status st = NGPT_OK;
    float *data = NULL;
    /* Opus: sox (opusfile) and FFmpeg decode at 48 kHz whatever rate the encoder was given;
     * libsndfile would decode at that input rate (another filter, another length) */
    if ((info.format & SF_FORMAT_SUBMASK) == SF_FORMAT_OPUS) {
        int r48 = 48000;
        if (sf_command(sf, SFC_SET_ORIGINAL_SAMPLERATE, &r48, sizeof r48) != SF_TRUE ||
            sf_command(sf, SFC_GET_CURRENT_SF_INFO, &info, sizeof info) != 0 || info.samplerate != 48000) {
            st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: this libsndfile cannot decode Opus at 48 kHz", name);
            goto done;
        }
    }
    if (info.channels <= 0 || info.channels > 64 || info.samplerate <= 0 || info.samplerate > 768000) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: bad audio header (%d channels, %d Hz)", name,
                    info.channels, info.samplerate);
        goto done;
    }
    if (info.frames <= 0 || info.frames > ((sf_count_t)1 << 31) / info.channels) {
        st = nx_err(info.frames <= 0 ? NGPT_ERR_BAD_FORMAT : NGPT_ERR_UNSUPPORTED,
                    "%s: %s (%lld frames)", name, info.frames <= 0 ? "no audio samples" : "audio too long",
                    (long long)info.frames);
        goto done;
    }
    data = nx_malloc(sizeof *data * (size_t)info.frames * (size_t)info.channels);
    if (!data) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate %lld audio frames", name, (long long)info.frames);
        goto done;
    }
    sf_command(sf, SFC_SET_NORM_FLOAT, NULL, SF_TRUE);
    sf_count_t got = sf_readf_float(sf, data, info.frames);
    if (got != info.frames) {
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: truncated or corrupt audio: read %lld of %lld frames%s%s", name,
                    (long long)got, (long long)info.frames, sf_error(sf) ? ": " : "",
                    sf_error(sf) ? sf_strerror(sf) : "");
        goto done;
    }
    /* torchaudio.load (the sox_io backend) reads through sox's int32 samples: float and double
     * data clip to [-1, 1] (NaN becomes -1: sox's float-to-int conversion gives INT_MIN on x86),
     * and sox decodes Vorbis with vorbisfile's ov_read to 16-bit PCM, rint(x * 32768) clipped.
     * libsndfile hands over the unclipped floats; integer PCM is in range already. */
    bool vorbis = (info.format & SF_FORMAT_SUBMASK) == SF_FORMAT_VORBIS;
    for (size_t i = 0; i < (size_t)info.frames * (size_t)info.channels; i++) {
        float x = data[i];
        if (vorbis) x = rintf(x * 32768.0f) / 32768.0f;
        data[i] = !(x >= -1.0f) ? -1.0f : x > 1.0f ? 1.0f : x;
    }
    *pcm = data;
    data = NULL;
    *frames = info.frames;
    *channels = info.channels;
    *rate = info.samplerate;
done:
    nx_free(data);
    sf_close(sf);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Resampling (torchaudio.functional.resample, sinc_interpolation)
 * ------------------------------------------------------------------------------------------- */

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

ngpt_status nx_audio_resample(const float *src, int64_t n, ptrdiff_t stride, int32_t from, int32_t to,
                              float **dst, int64_t *n_out)
{
    const int lpw = 6;
    const double rolloff = 0.99;
    int64_t g = gcd64(from, to), o = from / g, m = to / g;
    double base = (double)(o < m ? o : m) * rolloff;
    int64_t width = (int64_t)ceil(lpw * (double)o / base);
    int64_t ntap = 2 * width + o;
    int64_t nout = (m * n + o - 1) / o; /* ceil(m * n / o) */
    /* torchaudio builds an m x ntap kernel; for rates with a tiny gcd (44101 Hz: 16000 x 44119
     * taps) that is gigabytes. Refuse beyond 2^26 taps (every common rate is under 2^17). */
    if (m * ntap > ((int64_t)1 << 26))
        return nx_err(NGPT_ERR_UNSUPPORTED, "resample %d -> %d Hz: rate ratio %lld/%lld too complex (kernel of %lld taps)",
                      from, to, (long long)m, (long long)o, (long long)(m * ntap));
    float *kern = nx_malloc(sizeof *kern * (size_t)(m * ntap));
    float *out = nx_malloc(sizeof *out * (size_t)(nout > 0 ? nout : 1));
    if (!kern || !out) {
        nx_free(kern);
        nx_free(out);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "resample %d -> %d Hz: cannot allocate", from, to);
    }
    /* torchaudio _get_sinc_resample_kernel with dtype float32: every step rounded to float. */
    const float fbase = (float)base, fpi = (float)M_PI, fscale = (float)(base / (double)o);
    for (int64_t j = 0; j < m; j++) {
        float phase = (float)(-j) / (float)m;
        for (int64_t i = 0; i < ntap; i++) {
            float t = phase + (float)(i - width) / (float)o;
            t *= fbase;
            if (t < -lpw) t = (float)-lpw;
            if (t > lpw) t = (float)lpw;
            float wc = cosf(t * fpi / (float)lpw / 2.0f);
            float win = wc * wc;
            t *= fpi;
            float k = t == 0.0f ? 1.0f : sinf(t) / t;
            kern[j * ntap + i] = k * (win * fscale);
        }
    }
    /* Output f*m + j = sum_i kern[j][i] * x[f*o + i - width] (zero outside [0, n)). */
    for (int64_t q = 0; q < nout; q++) {
        int64_t f = q / m, j = q % m;
        const float *k = kern + j * ntap;
        int64_t s0 = f * o - width;
        int64_t i0 = s0 < 0 ? -s0 : 0;
        int64_t i1 = ntap;
        if (s0 + i1 > n) i1 = n - s0;
        double acc = 0.0;
        for (int64_t i = i0; i < i1; i++) acc += (double)k[i] * src[(s0 + i) * stride];
        out[q] = (float)acc;
    }
    nx_free(kern);
    *dst = out;
    *n_out = nout;
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Clip sampling (pytorchvideo ConstantClipsPerVideoSampler(2, 3) with Fractions)
 * ------------------------------------------------------------------------------------------- */

void nx_audio_clip_range(int64_t n, int clip_rule, int k, int64_t *a, int64_t *b)
{
    /* duration = n / 16000 (double); max_start = Fraction(max(duration - 2, 0)) exactly;
     * start = k * max_start / q (q = 3 in pytorchvideo 0.1.5, 2 after its fix);
     * sample index = int(start * 16000), end index = int((start + 2) * 16000). */
    double d = (double)n / (double)SR - 2.0;
    int64_t q = clip_rule == NX_CLIP_RULE_PTV_FIXED ? 2 : 3;
    int64_t s = 0;
    if (d > 0.0 && k > 0) {
        int e;
        double fr = frexp(d, &e);             /* d = fr * 2^e, fr in [0.5, 1) */
        int64_t mant = (int64_t)ldexp(fr, 53); /* exact */
        e -= 53;                               /* d = mant * 2^e */
        __extension__ typedef unsigned __int128 u128;
        u128 num = (u128)mant * (u128)(k * SR);
        if (e >= 0) {
            s = (int64_t)((num << e) / (u128)q); /* d < 2^31 here, no overflow */
        } else if (e > -120) {
            u128 den = (u128)q << (-e);
            s = (int64_t)(num / den);
        }
    }
    *a = s;
    *b = s + 2 * SR;
}

/* ---------------------------------------------------------------------------------------------
 * Kaldi fbank (torchaudio.compliance.kaldi.fbank with ImageBind's arguments)
 * ------------------------------------------------------------------------------------------- */

typedef struct fbank_tables {
    double cosv[NFFT / 2], sinv[NFFT / 2];
    float  window[WIN];
    float  banks[NX_FBANK_MELS][NBINS]; /* bin 256 (Nyquist) has weight 0 in every band */
} fbank_tables;

static float mel_scale(float f) { return 1127.0f * logf(1.0f + f / 700.0f); }

static void fbank_init(fbank_tables *t)
{
    for (int i = 0; i < NFFT / 2; i++) {
        t->cosv[i] = cos(2.0 * M_PI * i / NFFT);
        t->sinv[i] = -sin(2.0 * M_PI * i / NFFT);
    }
    /* torch.hann_window(400, periodic=False): 0.5 - 0.5 cos(2 pi n / 399). */
    for (int i = 0; i < WIN; i++) t->window[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / (WIN - 1)));
    /* get_mel_banks(128, 512, 16000, low 20, high 0 -> 8000), in float32 as torchaudio. */
    double mel_low = 1127.0 * log(1.0 + 20.0 / 700.0);
    double mel_high = 1127.0 * log(1.0 + 8000.0 / 700.0);
    float delta = (float)((mel_high - mel_low) / (NX_FBANK_MELS + 1));
    float lowf = (float)mel_low;
    for (int b = 0; b < NX_FBANK_MELS; b++) {
        float left = lowf + (float)b * delta;
        float center = lowf + (float)(b + 1) * delta;
        float right = lowf + (float)(b + 2) * delta;
        for (int k = 0; k < NBINS; k++) {
            float mel = mel_scale(31.25f * (float)k);
            float up = (mel - left) / (center - left);
            float down = (right - mel) / (right - center);
            float v = up < down ? up : down;
            t->banks[b][k] = v > 0.0f ? v : 0.0f;
        }
    }
}

/* In-place iterative radix-2 complex FFT of NFFT points. */
static void fft512(const fbank_tables *t, double *re, double *im)
{
    for (int i = 1, j = 0; i < NFFT; i++) {
        int bit = NFFT >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            double tr = re[i], ti = im[i];
            re[i] = re[j]; im[i] = im[j];
            re[j] = tr; im[j] = ti;
        }
    }
    for (int len = 2; len <= NFFT; len <<= 1) {
        int step = NFFT / len;
        for (int i = 0; i < NFFT; i += len)
            for (int k = 0; k < len / 2; k++) {
                double wr = t->cosv[k * step], wi = t->sinv[k * step];
                int a = i + k, b = a + len / 2;
                double xr = re[b] * wr - im[b] * wi, xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr; im[b] = im[a] - xi;
                re[a] += xr; im[a] += xi;
            }
    }
}

/* Fbank of one clip (channel 0, n samples) into out [128][204] (normalised, padded). */
static void fbank_clip(const fbank_tables *t, const float *x, int64_t n, float *out)
{
    const float eps = 1.1920928955078125e-07f;
    const float pad = (0.0f - -4.268f) / 9.138f;
    int64_t nframes = n < WIN ? 0 : 1 + (n - WIN) / SHIFT;
    for (int64_t f = 0; f < NX_FBANK_FRAMES; f++) {
        if (f >= nframes) {
            for (int b = 0; b < NX_FBANK_MELS; b++) out[b * NX_FBANK_FRAMES + f] = pad;
            continue;
        }
        const float *s = x + f * SHIFT;
        double mean = 0.0;
        for (int i = 0; i < WIN; i++) mean += s[i];
        mean /= WIN;
        double fr[WIN], re[NFFT], im[NFFT];
        for (int i = 0; i < WIN; i++) fr[i] = (double)s[i] - mean;
        for (int i = WIN - 1; i >= 0; i--) {
            double prev = fr[i > 0 ? i - 1 : 0];
            re[i] = (fr[i] - 0.97 * prev) * t->window[i];
        }
        for (int i = WIN; i < NFFT; i++) re[i] = 0.0;
        memset(im, 0, sizeof im);
        fft512(t, re, im);
        double pw[NBINS];
        for (int k = 0; k < NBINS; k++) pw[k] = re[k] * re[k] + im[k] * im[k];
        for (int b = 0; b < NX_FBANK_MELS; b++) {
            double e = 0.0;
            for (int k = 0; k < NBINS; k++) e += pw[k] * t->banks[b][k];
            float ef = (float)e;
            if (!(ef > eps)) ef = eps;
            float v = logf(ef);
            out[b * NX_FBANK_FRAMES + f] = (v - -4.268f) / 9.138f;
        }
    }
}

ngpt_status nx_audio_fbank(const float *pcm, int64_t frames, int32_t channels, int32_t rate,
                           int clip_rule, const char *name, float *out)
{
    if (!pcm || frames <= 0 || channels <= 0 || rate <= 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: empty audio", name);
    /* Planar 16 kHz copy of every channel (the in-place mean removal touches all of them). */
    float *wave = NULL;
    int64_t n = frames;
    ngpt_status st = NGPT_OK;
    fbank_tables *t = nx_malloc(sizeof *t);
    if (!t) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: audio preprocess: cannot allocate", name);
    if (rate != SR) {
        int64_t g = gcd64(rate, SR);
        n = (SR / g * frames + rate / g - 1) / (rate / g);
    }
    /* Every clip holds min(n, 2 s) samples, and Kaldi's fbank (torchaudio.compliance.kaldi) raises
     * for fewer than one 25 ms window: ImageBind has no embedding for such a sound, so this is an
     * error rather than a clip of padding. */
    if (n < WIN) {
        st = nx_err(NGPT_ERR_INVALID_ARGUMENT,
                    "%s: %lld samples at %d Hz (%.2f ms) is too short for ImageBind's audio transform: its fbank "
                    "needs one 25 ms window, %d samples at 16 kHz (this is %lld)",
                    name, (long long)frames, (int)rate, 1000.0 * (double)frames / rate, WIN, (long long)n);
        goto done;
    }
    wave = nx_malloc(sizeof *wave * (size_t)(n > 0 ? n : 1) * (size_t)channels);
    if (!wave) {
        st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: audio preprocess: cannot allocate", name);
        goto done;
    }
    for (int32_t c = 0; c < channels; c++) {
        if (rate == SR) {
            for (int64_t i = 0; i < n; i++) wave[c * n + i] = pcm[i * channels + c];
        } else {
            float *r = NULL;
            int64_t nr = 0;
            st = nx_audio_resample(pcm + c, frames, channels, rate, SR, &r, &nr);
            if (st != NGPT_OK) {
                nx_err_wrap(st, "%s: ", name);
                goto done;
            }
            memcpy(wave + c * n, r, sizeof *r * (size_t)nr);
            nx_free(r);
        }
    }
    fbank_init(t);
    for (int k = 0; k < NX_FBANK_CLIPS; k++) {
        int64_t a, b;
        nx_audio_clip_range(n, clip_rule, k, &a, &b);
        if (a > n) a = n;
        if (b > n) b = n;
        int64_t len = b - a;
        if (len > 0) {
            /* waveform -= waveform.mean(): the float32 mean of all channels of the clip */
            double sum = 0.0;
            for (int32_t c = 0; c < channels; c++)
                for (int64_t i = a; i < b; i++) sum += wave[c * n + i];
            float mean = (float)(sum / (double)(len * channels));
            for (int32_t c = 0; c < channels; c++)
                for (int64_t i = a; i < b; i++) wave[c * n + i] -= mean;
        }
        fbank_clip(t, wave + a, len, out + (size_t)k * NX_FBANK_MELS * NX_FBANK_FRAMES);
    }
done:
    nx_free(wave);
    nx_free(t);
    return st;
}
