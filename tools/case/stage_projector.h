/* stage_projector.h — ngpt-case stages projector.input and projector.output
 * (see ../shared/golden/vision/STAGES.md). */
#ifndef NGPT_CASE_STAGE_PROJECTOR_H
#define NGPT_CASE_STAGE_PROJECTOR_H

#include "stage.h"

ngpt_status case_projector_input(const case_ctx *c, case_out *out);
ngpt_status case_projector_output(const case_ctx *c, case_out *out);

#endif
