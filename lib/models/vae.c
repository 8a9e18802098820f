/* vae.c — placeholder until the VAE lands (NGPT_ERR_UNIMPLEMENTED). */
#include "vae.h"

ngpt_status nx_vae_load(nx_vae **out, nx_backend *be, const char *vae_dir, bool load_encoder)
{
    (void)be;
    (void)load_encoder;
    *out = NULL;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "%s: the VAE is not implemented yet", vae_dir);
}
void nx_vae_free(nx_vae *v) { (void)v; }
float nx_vae_scaling_factor(const nx_vae *v) { (void)v; return 0.0f; }
int nx_vae_latent_channels(const nx_vae *v) { (void)v; return 0; }
int nx_vae_out_channels(const nx_vae *v) { (void)v; return 0; }
int nx_vae_scale(const nx_vae *v) { (void)v; return 0; }
ngpt_status nx_vae_decode(nx_vae *v, nx_tensor *out, const nx_tensor *latents)
{
    (void)v; (void)out; (void)latents;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "the VAE is not implemented yet");
}
