/* stage_unet.h — the UNet stages: "unet2d" (Stable Diffusion: sample, timestep,
 * encoder_hidden_states -> out), "audioldm.unet" (sample, timestep, class_labels -> out) and
 * "zeroscope.unet3d" (sample [B, 4, F, h, w], timestep, encoder_hidden_states -> out). */
#ifndef NGPT_CASE_STAGE_UNET_H
#define NGPT_CASE_STAGE_UNET_H

#include "stage.h"

ngpt_status case_unet2d(const case_ctx *c, case_out *out);
ngpt_status case_audioldm_unet(const case_ctx *c, case_out *out);
ngpt_status case_zeroscope_unet3d(const case_ctx *c, case_out *out);

#endif
