/* unet3d.h — diffusers 0.17 UNet3DConditionModel (Zeroscope v2), the 3-D half of the nx_unet
 * interface (unet.h): nx_unet_load dispatches on config.json's _class_name and keeps an nx_unet3d
 * inside the nx_unet it returns; the decoder sees only nx_unet_*. Internal to lib/models. */
#ifndef NX_UNET3D_H
#define NX_UNET3D_H

#include "unet_blocks.h"

#include <jansson.h>

typedef struct nx_unet3d nx_unet3d;

/* Parse a UNet3DConditionModel config.json (file names it in errors); no weights yet. Any value
 * this port does not implement is NGPT_ERR_UNSUPPORTED naming the key and value. */
ngpt_status nx_unet3d_create(nx_unet3d **out, const json_t *cfg, const char *file);
/* Fetch every tensor through wl (shapes checked; a dry run when wl->record is set). On error the
 * tensors fetched so far stay owned by u (nx_unet3d_free releases them). */
ngpt_status nx_unet3d_load(nx_unet3d *u, nx_wload *wl);
void nx_unet3d_free(nx_unet3d *u);  /* NULL is a no-op; call before closing the weights */

int nx_unet3d_in_channels(const nx_unet3d *u);
int nx_unet3d_out_channels(const nx_unet3d *u);
int nx_unet3d_cross_attention_dim(const nx_unet3d *u);

/* out [B, out_ch, F, h, w] = unet(sample [B, in_ch, F, h, w], timesteps, ehs [B, S,
 * cross_attention_dim]).sample, out allocated by the caller; the timesteps come as their
 * sinusoidal input tin [B, time channels] on the device in sample's dtype (flip_sin_to_cos,
 * shift 0: nx_unet_time_params; nx_unet_forward does both, see unet.h). */
int64_t nx_unet3d_time_channels(const nx_unet3d *u);
ngpt_status nx_unet3d_forward_t(nx_unet3d *u, nx_backend *be, nx_tensor *out, const nx_tensor *sample,
                                const nx_tensor *tin, const nx_tensor *ehs);

#endif
