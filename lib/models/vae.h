/* vae.h — diffusers' AutoencoderKL (decoder, and the encoder when asked), loaded from a vae/
 * folder: SD 1.5's image VAE, AudioLDM's mel VAE, Zeroscope's (frame by frame). */
#ifndef NX_VAE_H
#define NX_VAE_H

#include "../ops/backend.h"

typedef struct nx_vae nx_vae;

ngpt_status nx_vae_load(nx_vae **out, nx_backend *be, const char *vae_dir, bool load_encoder);
void nx_vae_free(nx_vae *v);
float nx_vae_scaling_factor(const nx_vae *v);
int   nx_vae_latent_channels(const nx_vae *v);
int   nx_vae_out_channels(const nx_vae *v);
/* Spatial upsampling factor of the decoder (2^(len(block_out_channels) - 1): 8 for SD). */
int   nx_vae_scale(const nx_vae *v);

/* out [B, out_channels, s*h, s*w] = decode(latents [B, latent_channels, h, w]); latents already
 * divided by the scaling factor; out allocated by the caller. */
ngpt_status nx_vae_decode(nx_vae *v, nx_tensor *out, const nx_tensor *latents);

#endif
