/* decoder.h — the ngpt_decoder behind the handle, shared by decoder.c (loading, stage by stage)
 * and decoder_generate.c (the denoising pipelines). */
#ifndef NX_API_DECODER_H
#define NX_API_DECODER_H

#include "context.h"

#include "../core/json.h"
#include "../ops/cpu/cpu_ops.h"
#include "../models/clap_text.h"
#include "../models/clip_text.h"
#include "../models/hifigan.h"
#include "../models/safety_checker.h"
#include "../models/unet.h"
#include "../models/vae.h"
#include "../tokenizer/clip_bpe.h"

struct ngpt_decoder {
    ngpt_context     *ctx;
    ngpt_decoder_kind kind;
    ngpt_dtype        dt;           /* activation dtype of the UNet, VAE, text encoder: params.compute_dtype,
                                     * F32 on the CPU (where BF16 sets cpu_bf16) */
    bool              cpu_bf16;     /* BF16 on the CPU: the UNet's and VAE's matrices and filters held
                                     * in BF16, their calls under nx_decoder_bf16_begin */
    char             *dir;
    nx_unet          *unet;
    nx_vae           *vae;
    nx_hifigan       *vocoder;
    int64_t           sample_size;  /* unet/config.json sample_size (latent pixels) */
    nx_clip_text     *text_encoder; /* text_encoder/ (IMAGE, VIDEO), loaded with tokenizer */
    nx_clap_text     *clap;         /* text_encoder/ (AUDIO: CLAP's text branch) */
    nx_clip_bpe      *tokenizer;    /* tokenizer/ (CLIP's BPE; RoBERTa's for AUDIO) */
    nx_safety        *safety;       /* safety_checker/ + feature_extractor/ (IMAGE, on
                                     * NGPT_DECODER_FLAG_SAFETY_CHECKER) */
    float            *uncond;       /* host F32 [1, uncond_len, hidden]: the text encoder on "",
                                     * computed on first use (nx_decoder_uncond); AUDIO: [1, P],
                                     * the normalised CLAP text_embeds of "", computed at create */
    int64_t           uncond_len;
    bool              text_released; /* NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER: only uncond is left */
    bool              cuda_graph;    /* NGPT_DECODER_FLAG_CUDA_GRAPH (decoder_generate.c) */
    int32_t           text_max_len, text_hidden; /* what the released text encoder reported */
};

/* Around a decoder's UNet and VAE calls: the CPU's BF16 compute for this thread when the
 * decoder was created with compute_dtype BF16 on the CPU (linears and convolutions take BF16
 * inputs, F32 accumulation); otherwise nothing changes. End with nx_cpu_bf16_scope_end. */
static inline nx_cpu_bf16_scope nx_decoder_bf16_begin(const ngpt_decoder *d)
{
    nx_cpu_bf16_scope none = {0};
    return d->cpu_bf16 ? nx_cpu_bf16_scope_begin(d->ctx->be, true) : none;
}
static inline void nx_decoder_bf16_end(const ngpt_decoder *d, nx_cpu_bf16_scope prev)
{
    if (d->cpu_bf16) nx_cpu_bf16_scope_end(prev);
}

/* The text encoder's output for "" padded to S tokens (the pipelines' negative prompt when
 * NExT-GPT passes prompt_embeds of S tokens): host F32 [1, S, hidden], owned by the decoder and
 * cached (computed once per decoder for a given S). AUDIO: host F32 [1, projection_dim], the
 * L2-normalised CLAP text_embeds of "" (S is ignored: the pipeline pads "" to
 * prompt_embeds.shape[1] tokens under an attention mask, which leaves the first token's output
 * as it is unpadded). NGPT_ERR_UNSUPPORTED without a text encoder. (decoder_text.c) */
ngpt_status nx_decoder_uncond(ngpt_decoder *d, int64_t S, const float **emb);

/* The largest image / video side ngpt_decoder_generate takes (pixels); the pipeline's turn
 * settings and the memory estimate check against it too. */
#define NX_DECODE_MAX_SIDE NGPT_DECODE_MAX_SIDE

/* unet/config.json's sample_size (unet_cfg, parsed from `path`), the latent size the UNet was
 * trained at, for the default image size (x the VAE's scale). The image decoder takes it as
 * custom_sd.StableDiffusionPipeline.__init__ does: 64 when diffusers < 0.9.0 wrote the config and
 * it says less. (decoder.c; the memory estimate's too) */
ngpt_status nx_decoder_sample_size(const json_t *unet_cfg, const char *path, ngpt_decoder_kind kind, int64_t *out);

/* What ngpt_decoder_generate divides the final latents by (float64, as the pipelines' `1 / sf`):
 * IMAGE 0.18215, which NExT-GPT's custom_sd.decode_latents hard-codes (its line reading
 * vae.config.scaling_factor is commented out); AUDIO and VIDEO vae/config.json's scaling_factor
 * (custom_ad, custom_vd). 0 without a VAE. (decoder.c) */
double nx_decoder_latent_scale(const ngpt_decoder *d);

/* The safety checker on B images of H x W, host F32 [B, H, W, 3] in [0, 1] (img_f32) or U8
 * (img_u8; the other NULL): nsfw[B], and the rounded scores [B, n_special] / [B, n_concepts]
 * where special / concept are not NULL. NGPT_ERR_UNSUPPORTED without a checker loaded.
 * (decoder_safety.c) */
ngpt_status nx_decoder_safety_run(ngpt_decoder *d, const float *img_f32, const uint8_t *img_u8, int64_t B, int64_t H,
                                  int64_t W, bool *nsfw, float *special, float *concept);
/* Its first half: numpy_to_pil (F32 images rounded to 8 bits) and the feature extractor ->
 * pixels [B, 3, S, S] (S = nx_safety_image_size). (decoder_safety.c) */
ngpt_status nx_decoder_safety_pixels(ngpt_decoder *d, const float *img_f32, const uint8_t *img_u8, int64_t B,
                                     int64_t H, int64_t W, float *pixels);

/* The scheduler ngpt_decoder_generate would make for p (its scheduler, eta and steps) from the
 * decoder folder `dir` of `kind`, made and freed: the pipeline checks a turn's steps before the
 * language model runs (with steps_offset 1, 1000 steps reach past the 1000 training timesteps).
 * (decoder_generate.c) */
ngpt_status nx_decoder_check_schedule(const char *dir, ngpt_decoder_kind kind, const ngpt_decode_params *p);

/* "image", "audio", "video" ("unknown" for any other value), for messages. (decoder.c) */
const char *nx_decoder_kind_name(ngpt_decoder_kind k);

/* Standard normal noise: xoshiro256** (splitmix64-seeded), Box-Muller pairs (cos then sin),
 * row-major. Documented in nextgpt.h (ngpt_decoder_generate) so callers can reproduce it.
 * (decoder_generate.c) */
void nx_decoder_gaussian_fill(float *x, size_t n, uint64_t seed);
/* Whether a decoder runs its UNet and VAE channels last inside: NGPT_DECODER_FLAG_CHANNELS_LAST
 * in flags, F16/BF16 compute on CUDA (cuDNN's NHWC tensor-core convolutions), or the CPU's BF16
 * compute on a CPU with AMX-BF16 (whose convolutions are channels last: lib/ops/cpu/conv.c,
 * use_amx_conv). */
bool nx_decoder_channels_last(unsigned flags, ngpt_backend kind, ngpt_dtype compute);
/* Whether an audio decoder's vocoder runs in BF16, channels last (hifigan.c): the CPU's BF16
 * compute on a CPU with AMX-BF16 only (not the channels-last flag: elsewhere its convolutions would
 * run F32 on reordered filters). The decoder's load and the memory estimate both ask this. */
bool nx_decoder_vocoder_bf16(ngpt_backend kind, ngpt_dtype compute);

/* NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER: compute uncond for text_max_length tokens, then free
 * the text encoder and tokenizer (no-op without them). (decoder_text.c) */
ngpt_status nx_decoder_release_text(ngpt_decoder *d);

#endif
