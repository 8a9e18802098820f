/* unet.c — placeholder until the UNet lands (NGPT_ERR_UNIMPLEMENTED). */
#include "unet.h"

ngpt_status nx_unet_load(nx_unet **out, nx_backend *be, const char *unet_dir)
{
    (void)be;
    *out = NULL;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "%s: the UNet is not implemented yet", unet_dir);
}
void nx_unet_free(nx_unet *u) { (void)u; }
bool nx_unet_is_3d(const nx_unet *u) { (void)u; return false; }
int nx_unet_in_channels(const nx_unet *u) { (void)u; return 0; }
int nx_unet_out_channels(const nx_unet *u) { (void)u; return 0; }
int nx_unet_cross_attention_dim(const nx_unet *u) { (void)u; return 0; }
int nx_unet_class_embed_dim(const nx_unet *u) { (void)u; return 0; }
ngpt_status nx_unet_forward(nx_unet *u, nx_tensor *out, const nx_tensor *sample, const float *timesteps,
                            const nx_tensor *ehs, const nx_tensor *class_labels)
{
    (void)u; (void)out; (void)sample; (void)timesteps; (void)ehs; (void)class_labels;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "the UNet is not implemented yet");
}
