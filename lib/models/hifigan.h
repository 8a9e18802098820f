/* hifigan.h — transformers' SpeechT5HifiGan (AudioLDM's vocoder), from a vocoder/ folder
 * (config.json + model.safetensors or pytorch_model.bin). */
#ifndef NX_HIFIGAN_H
#define NX_HIFIGAN_H

#include "../ops/backend.h"

typedef struct nx_hifigan nx_hifigan;

ngpt_status nx_hifigan_load(nx_hifigan **out, nx_backend *be, const char *vocoder_dir);
void nx_hifigan_free(nx_hifigan *h);
int  nx_hifigan_n_mels(const nx_hifigan *h);        /* model_in_dim */
int  nx_hifigan_hop(const nx_hifigan *h);           /* product of upsample_rates */
int  nx_hifigan_sampling_rate(const nx_hifigan *h);

/* wave [B, T * hop] = vocoder(mel [B, T, n_mels]); out allocated by the caller. */
ngpt_status nx_hifigan_forward(nx_hifigan *h, nx_tensor *wave, const nx_tensor *mel);

#endif
