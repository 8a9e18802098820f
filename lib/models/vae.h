/* vae.h — diffusers' AutoencoderKL (decoder, and the encoder when asked), loaded from a vae/
 * folder: SD 1.5's image VAE, AudioLDM's mel VAE, Zeroscope's (frame by frame). */
#ifndef NX_VAE_H
#define NX_VAE_H

#include "../ops/backend.h"

typedef struct nx_vae nx_vae;

/* dt: the compute dtype (F32, or F16/BF16 where the backend computes in them): weights are
 * converted to it at load, and decode/encode run in it (their tensors all have dtype dt).
 * channels_last: decode/encode run their activations [B, H, W, C] inside (conv filters permuted
 * once at load); their inputs and outputs stay NCHW. */
ngpt_status nx_vae_load(nx_vae **out, nx_backend *be, const char *vae_dir, bool load_encoder, ngpt_dtype dt,
                        bool channels_last);
void nx_vae_free(nx_vae *v);
double nx_vae_scaling_factor(const nx_vae *v);  /* vae/config.json's, as read (float64) */
int   nx_vae_latent_channels(const nx_vae *v);
int   nx_vae_out_channels(const nx_vae *v);
/* Spatial upsampling factor of the decoder (2^(len(block_out_channels) - 1): 8 for SD). */
int   nx_vae_scale(const nx_vae *v);

/* out [B, out_channels, s*h, s*w] = decode(latents [B, latent_channels, h, w]); latents already
 * divided by the scaling factor; out allocated by the caller. */
ngpt_status nx_vae_decode(nx_vae *v, nx_tensor *out, const nx_tensor *latents);

/* The encoder (Encoder + quant_conv), when nx_vae_load was not asked for it: resolves its tensors
 * from the still-open checkpoint (idempotent; on failure the decoder stays usable). */
ngpt_status nx_vae_load_encoder(nx_vae *v);
bool nx_vae_has_encoder(const nx_vae *v);
int  nx_vae_in_channels(const nx_vae *v);

/* mean, logvar [B, latent_channels, H/s, W/s] = the DiagonalGaussianDistribution of
 * encode(image [B, in_channels, H, W]) (H, W multiples of s): moments = quant_conv(encoder(x)),
 * mean, logvar = moments.chunk(2, dim=1); logvar NOT yet clamped to [-30, 20] (the caller does);
 * logvar may be NULL. Not multiplied by the scaling factor. Outputs allocated by the caller. */
ngpt_status nx_vae_encode(nx_vae *v, nx_tensor *mean, nx_tensor *logvar, const nx_tensor *image);

#endif
