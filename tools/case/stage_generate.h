/* stage_generate.h — ngpt-case stages sd.generate, audioldm.generate, zeroscope.generate. */
#ifndef NGPT_CASE_STAGE_GENERATE_H
#define NGPT_CASE_STAGE_GENERATE_H

#include "stage.h"

ngpt_status case_sd_generate(const case_ctx *c, case_out *out);
ngpt_status case_audioldm_generate(const case_ctx *c, case_out *out);
ngpt_status case_zeroscope_generate(const case_ctx *c, case_out *out);

#endif
