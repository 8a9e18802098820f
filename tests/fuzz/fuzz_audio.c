/* fuzz_audio.c — sound files (whatever libsndfile reads: WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF,
 * ...; the rest through FFmpeg: AAC/M4A, ...) through ngpt_audio_load_memory and ImageBind's
 * audio transform (resample, fbank). */
#include "fuzz_media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int64_t blocks = nx_alloc_blocks();
    ngpt_audio *a = NULL;
    ngpt_status st = ngpt_audio_load_memory(&a, data, size, "fuzz audio");
    fuzz_status("ngpt_audio_load_memory", st);
    if (a) {
        const int32_t rate = ngpt_audio_sample_rate(a), ch = ngpt_audio_channels(a);
        const int64_t frames = ngpt_audio_frames(a);
        FUZZ_REQUIRE(rate > 0 && ch > 0 && frames >= 0, "rate %d, %d channels, %lld frames", rate, ch, (long long)frames);
        /* libsndfile's path clips to [-1, 1] as sox does; FFmpeg's (M4A, ...) does not clip, as
         * torchaudio's FFmpeg fallback does not, but refuses non-finite samples */
        const float *x = ngpt_audio_samples(a);
        for (int64_t i = 0; i < frames * ch; i++) FUZZ_REQUIRE(isfinite(x[i]), "sample %lld is %g", (long long)i, x[i]);
        /* the transform resamples the whole file: keep the fuzzer on the parsers for long ones */
        if (frames <= 4 * 48000) {
            ngpt_tensor t = {0};
            st = ngpt_audio_preprocess(&t, a, NULL);
            fuzz_status("ngpt_audio_preprocess", st);
            static const int64_t shape[4] = {3, 1, 128, 204};
            if (st == NGPT_OK) fuzz_check_tensor("audio", &t, 4, shape);
            ngpt_tensor_free(&t);
        }
        ngpt_audio_free(a);
    }
    fuzz_no_leak("audio", blocks);
    return 0;
}
