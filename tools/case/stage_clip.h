/* stage_clip.h — ngpt-case stages of the decoders' CLIP tokenizer and text encoder (our own cases,
 * tests/golden/vision/clip.tokenize and clip.text_encoder; generator tools/gen_clip_cases.py):
 *   clip.tokenize      params.text -> input_ids I64 [1, max_length] (the pipelines' padded call)
 *   clip.text_encoder  inputs input_ids [B, S] (or params.text) -> last_hidden_state F32 [B, S, hidden]
 * "model" names a pipeline folder with text_encoder/ and tokenizer/. */
#ifndef NGPT_CASE_STAGE_CLIP_H
#define NGPT_CASE_STAGE_CLIP_H

#include "stage.h"

ngpt_status case_clip_tokenize(const case_ctx *c, case_out *out);
ngpt_status case_clip_text_encoder(const case_ctx *c, case_out *out);

#endif
