/* stage_media.h — golden-case stages of media preprocessing (STAGES.md image.preprocess,
 * audio.fbank, video.preprocess, image.postprocess; video/STAGES.md video.postprocess), run through the public "Media preprocessing" API. */
#ifndef NGPT_CASE_STAGE_MEDIA_H
#define NGPT_CASE_STAGE_MEDIA_H

#include "stage.h"

/* params {"file"} -> pixels F32 [3,224,224] */
ngpt_status case_image_preprocess(const case_ctx *c, case_out *out);
/* params {"file", "clip_rule": "pytorchvideo-0.1.5" | "pytorchvideo-fixed"} -> fbank F32 [3,1,128,204] */
ngpt_status case_audio_fbank(const case_ctx *c, case_out *out);
/* params {"file", "clip_rule"} -> pixels F32 [15,3,2,224,224] */
ngpt_status case_video_preprocess(const case_ctx *c, case_out *out);
/* inputs image F32 [B,3,H,W] -> image_u8 U8 [B,H,W,3] */
ngpt_status case_image_postprocess(const case_ctx *c, case_out *out);
/* inputs video F32 [B,3,F,H,W] -> frames_u8 U8 [F,H,B*W,3] (tensor2vid, truncating) */
ngpt_status case_video_postprocess(const case_ctx *c, case_out *out);

#endif
