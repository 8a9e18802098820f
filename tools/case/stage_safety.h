/* stage_safety.h — ngpt-case stage sd.safety_checker (Stable Diffusion's safety checker). */
#ifndef NGPT_CASE_STAGE_SAFETY_H
#define NGPT_CASE_STAGE_SAFETY_H

#include "stage.h"

ngpt_status case_sd_safety_checker(const case_ctx *c, case_out *out);

/* Add BOOL [B] flags as output `name`, I64 0/1 (the cases' has_nsfw_concepts). */
ngpt_status case_out_flags(case_out *out, const char *name, const ngpt_tensor *flags);

#endif
