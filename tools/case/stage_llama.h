/* stage_llama.h — ngpt-case stages of the backbone (shared/golden/llm/STAGES.md): llama.logits,
 * llama.logits_embeds, llama.generate_greedy, llama.lora. */
#ifndef NGPT_CASE_STAGE_LLAMA_H
#define NGPT_CASE_STAGE_LLAMA_H

#include "stage.h"

ngpt_status case_llama_logits(const case_ctx *c, case_out *out);
ngpt_status case_llama_logits_embeds(const case_ctx *c, case_out *out);
ngpt_status case_llama_generate_greedy(const case_ctx *c, case_out *out);
ngpt_status case_llama_lora(const case_ctx *c, case_out *out);

#endif
