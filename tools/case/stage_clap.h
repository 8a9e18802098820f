/* stage_clap.h — ngpt-case stages of AudioLDM's text branch (our own cases,
 * tests/golden/audio/roberta.tokenize and clap.text_encoder; generator tools/gen_clap_cases.py):
 *   roberta.tokenize   params.text (+ max_length, default the tokenizer's model_max_length)
 *                      -> input_ids I64 [1, max_length], attention_mask I64 [1, max_length]
 *   clap.text_encoder  inputs input_ids [B, S] (+ attention_mask [B, S]), or params.text
 *                      (+ max_length) -> prompt_embeds F32 [B, projection_dim] =
 *                      F.normalize(ClapTextModelWithProjection(...).text_embeds, dim=-1)
 * "model" names a pipeline folder with text_encoder/ and tokenizer/. */
#ifndef NGPT_CASE_STAGE_CLAP_H
#define NGPT_CASE_STAGE_CLAP_H

#include "stage.h"

ngpt_status case_roberta_tokenize(const case_ctx *c, case_out *out);
ngpt_status case_clap_text_encoder(const case_ctx *c, case_out *out);

#endif
