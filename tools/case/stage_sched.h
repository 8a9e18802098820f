/* stage_sched.h — ngpt-case stages scheduler.ddim, scheduler.pndm, scheduler.dpmsolver (see
 * ../shared/golden/vision/STAGES.md and video/STAGES.md), and our scheduler.euler,
 * scheduler.euler_ancestral and scheduler.heun (docs/architecture.md, "Schedulers"). */
#ifndef NGPT_CASE_STAGE_SCHED_H
#define NGPT_CASE_STAGE_SCHED_H

#include "stage.h"

ngpt_status case_scheduler_ddim(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_pndm(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_dpmsolver(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_euler(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_euler_ancestral(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_heun(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_unipc(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_lms(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_kdpm2(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_kdpm2_ancestral(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_deis(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_ddpm(const case_ctx *c, case_out *out);
ngpt_status case_scheduler_dpmsolver_singlestep(const case_ctx *c, case_out *out);

#endif
