/* stage_vae.h — ngpt-case stages of the VAE and the vocoder: vae.decode, vae.encode (our own
 * cases, tests/golden/vision/vae.encode), sd.image_latents and zeroscope.video_latents (ours too), audioldm.vae_decode, zeroscope.vae_decode,
 * vocoder.hifigan (see ../shared/golden/{vision,audio,video}/STAGES.md). */
#ifndef NGPT_CASE_STAGE_VAE_H
#define NGPT_CASE_STAGE_VAE_H

#include "stage.h"

ngpt_status case_vae_decode(const case_ctx *c, case_out *out);
ngpt_status case_vae_encode(const case_ctx *c, case_out *out);
ngpt_status case_sd_image_latents(const case_ctx *c, case_out *out);
ngpt_status case_zeroscope_video_latents(const case_ctx *c, case_out *out);
ngpt_status case_audioldm_vae_decode(const case_ctx *c, case_out *out);
ngpt_status case_zeroscope_vae_decode(const case_ctx *c, case_out *out);
ngpt_status case_vocoder_hifigan(const case_ctx *c, case_out *out);

#endif
