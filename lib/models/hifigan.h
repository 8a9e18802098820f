/* hifigan.h — transformers' SpeechT5HifiGan (AudioLDM's vocoder), from a vocoder/ folder
 * (config.json + model.safetensors or pytorch_model.bin). */
#ifndef NX_HIFIGAN_H
#define NX_HIFIGAN_H

#include "../ops/backend.h"

typedef struct nx_hifigan nx_hifigan;

#define NX_HIFIGAN_MAX_UP 8
#define NX_HIFIGAN_MAX_K  8
#define NX_HIFIGAN_MAX_D  8

typedef struct nx_hifigan_config {
    int   model_in_dim;                       /* n_mels (64 for AudioLDM) */
    int   upsample_initial_channel;
    int   n_up;
    int   upsample_rates[NX_HIFIGAN_MAX_UP];
    int   upsample_kernel_sizes[NX_HIFIGAN_MAX_UP];
    int   n_k;
    int   resblock_kernel_sizes[NX_HIFIGAN_MAX_K];
    int   n_d[NX_HIFIGAN_MAX_K];
    int   resblock_dilation_sizes[NX_HIFIGAN_MAX_K][NX_HIFIGAN_MAX_D];
    float leaky_relu_slope;
    bool  normalize_before;
    int   sampling_rate;
} nx_hifigan_config;

/* vocoder_dir/config.json, read and checked as nx_hifigan_load reads it (the memory estimate
 * reads it too); a named error for anything it does not support. */
ngpt_status nx_hifigan_read_config(nx_hifigan_config *c, const char *vocoder_dir);

/* dt: the filters' dtype (F32: as stored; BF16 for the CPU's BF16 compute, converted once here);
 * channels_last: activations [B, L, C] inside the forward (filters held [O, k, C]), the layout
 * oneDNN's AMX convolutions take without transposing reorders. */
ngpt_status nx_hifigan_load(nx_hifigan **out, nx_backend *be, const char *vocoder_dir, ngpt_dtype dt,
                            bool channels_last);
void nx_hifigan_free(nx_hifigan *h);
ngpt_dtype nx_hifigan_dtype(const nx_hifigan *h);  /* the filters' dtype as loaded (dt) */
int  nx_hifigan_n_mels(const nx_hifigan *h);        /* model_in_dim */
int  nx_hifigan_hop(const nx_hifigan *h);           /* product of upsample_rates */
/* Waveform samples for T mel frames: the ConvTranspose1d chain's exact length, each stage
 * L -> L * u + ((k - u) mod 2); 160 T + 32 for AudioLDM's vocoder (T * hop when every k - u is
 * even). */
int64_t nx_hifigan_out_len(const nx_hifigan *h, int64_t T);
int  nx_hifigan_sampling_rate(const nx_hifigan *h);
/* Seconds per mel frame, the pipelines' vocoder_upsample_factor: hop / sampling_rate in float64
 * (numpy's prod(upsample_rates) / sampling_rate). */
double nx_hifigan_hop_s(const nx_hifigan *h);

/* wave [B, nx_hifigan_out_len(T)] = vocoder(mel [B, T, n_mels]); out allocated by the caller. */
ngpt_status nx_hifigan_forward(nx_hifigan *h, nx_tensor *wave, const nx_tensor *mel);

#endif
