/* sched_step.c — a planned scheduler step over host arrays (ngpt_scheduler_step). The
 * per-element math is sched_math.h's, shared with the backends' nx_op_sched_step. */
#include "sched.h"

_Static_assert(NX_SCHED_PRED_EPSILON == NGPT_PREDICTION_EPSILON && NX_SCHED_PRED_V == NGPT_PREDICTION_V &&
                   NX_SCHED_PRED_SAMPLE == NGPT_PREDICTION_SAMPLE,
               "sched_math.h's prediction codes are ngpt_prediction_type's");
_Static_assert(NX_SCHED_DPM_PP == NGPT_DPM_DPMSOLVER_PP && NX_SCHED_DPM == NGPT_DPM_DPMSOLVER &&
                   NX_SCHED_SDE_DPM_PP == NGPT_DPM_SDE_DPMSOLVER_PP && NX_SCHED_SDE_DPM == NGPT_DPM_SDE_DPMSOLVER,
               "sched_math.h's DPM-Solver codes are ngpt_dpm_algorithm's");

void nx_sched_run_host(const nx_sched_step *p, const float *eps, float *x, const float *noise, float *const *slot)
{
    for (int64_t i = 0; i < p->n; i++) nx_sched_elem(p, eps, x, noise, slot, i);
}
