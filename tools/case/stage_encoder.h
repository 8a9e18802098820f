/* stage_encoder.h — golden-case stages of the ImageBind encoder (STAGES.md imagebind.vision,
 * imagebind.audio; the project's own imagebind.video), run through the public "Encoder
 * (ImageBind)" API. */
#ifndef NGPT_CASE_STAGE_ENCODER_H
#define NGPT_CASE_STAGE_ENCODER_H

#include "stage.h"

/* inputs pixels F32 [B,3,224,224] -> embedding F32 [B,out_embed_dim] */
ngpt_status case_imagebind_vision(const case_ctx *c, case_out *out);
/* inputs fbank F32 [B,3,1,128,204] -> embedding F32 [B,out_embed_dim] (mean over the 3 clips) */
ngpt_status case_imagebind_audio(const case_ctx *c, case_out *out);
/* inputs pixels [B,S,3,T,224,224] (T = 1 or 2, any float dtype) -> embedding F32
 * [B,out_embed_dim] (mean over the S clips) */
ngpt_status case_imagebind_video(const case_ctx *c, case_out *out);

#endif
