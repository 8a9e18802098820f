/* sched_singlestep.c — DPM-Solver singlestep's step (scheduling_dpmsolver_singlestep.py): the
 * steps in groups of 1-3 (get_order_list); a group's first step keeps its sample, and each step of
 * the group updates that sample, from the group's first timestep to its own next one, with the
 * group's converted model outputs (DPM-Solver's conversion, the updates' own coefficients).
 */
#include "sched_impl.h"

#include <math.h>

/* The coefficients of an update of `order` from timestep sg (the group's first) to t, the
 * group's outputs at s0 (this step's), s1 (order 3). False where the update divides by zero (two
 * of the timesteps it reads with one noise level: diffusers gives NaN latents). */
static bool single_coef(const ngpt_scheduler *s, int order, int64_t sg, int64_t s1, int64_t s0, int64_t t,
                        nx_dpm_single_coef *c)
{
    const float lam_t = s->lambda_t[t], lam_g = s->lambda_t[sg];
    const float alpha_t = s->alpha_t[t], sigma_t = s->sigma_t[t];
    const float h = lam_t - lam_g, em = expf(-h), ep = expf(h);
    c->cx = c->pp ? sigma_t / s->sigma_t[sg] : alpha_t / s->alpha_t[sg];
    c->c0 = c->pp ? -(alpha_t * (em - 1.0f)) : -(sigma_t * (ep - 1.0f));
    if (order == 1) return true;
    const float h_0 = s->lambda_t[s0] - lam_g;
    if (h == 0.0f || h_0 == 0.0f) return false;
    c->r0 = h_0 / h;
    c->inv_r0 = 1.0f / c->r0;
    /* B: the D1 term's coefficient of the heun updates and of the third-order midpoint one */
    const float b = c->pp ? alpha_t * ((em - 1.0f) / h + 1.0f) : -(sigma_t * ((ep - 1.0f) / h - 1.0f));
    if (order == 2) {
        c->c1 = !c->heun ? -(0.5f * (c->pp ? alpha_t * (em - 1.0f) : sigma_t * (ep - 1.0f))) : b;
        return true;
    }
    const float h_1 = s->lambda_t[s1] - lam_g;
    c->r1 = h_1 / h;
    c->r01 = c->r0 - c->r1;
    c->inv_r1 = 1.0f / c->r1;  /* (the midpoint update reads neither D1_0 nor r0 - r1) */
    if (c->heun && (h_1 == 0.0f || c->r01 == 0.0f)) return false;
    c->c1 = b;
    c->c2 = c->pp ? -(alpha_t * ((em - 1.0f + h) / (h * h) - 0.5f)) : -(sigma_t * ((ep - 1.0f - h) / (h * h) - 0.5f));
    return true;
}

/* DPMSolverSinglestepScheduler.step at schedule index idx: slots 0 .. order-1 hold model_outputs,
 * slot `order` the group's first sample. */
ngpt_status nx_sched_plan_dpm_single(ngpt_scheduler *s, int64_t t, size_t idx, nx_sched_step *p)
{
    const int64_t prev_t = idx == s->n_ts - 1 ? 0 : s->ts[idx + 1];
    p->m[0] = nx_sched_mo_push(s, t);
    /* order_list's order, lower while fewer outputs are held (after set_timesteps or reset) */
    int order = s->order_list[idx];
    if (order > s->lower_order_nums + 1) order = s->lower_order_nums + 1;
    if (s->lower_order_nums < s->order) s->lower_order_nums++;
    nx_dpm_single_coef *c = &p->c.dpm1;
    c->pred = s->pred;
    c->pp = s->algo == NGPT_DPM_DPMSOLVER_PP;
    c->heun = s->heun;
    c->conv_alpha = s->alpha_t[t];
    c->conv_sigma = s->sigma_t[t];
    c->save = order == 1;
    p->save_x = s->order;
    const int64_t sg = s->ts[idx - (size_t)(order - 1)], s1 = order == 3 ? s->ts[idx - 1] : t;
    if (!single_coef(s, order, sg, s1, t, prev_t, c)) {
        /* the first-order update from the group's sample with this step's output instead */
        order = 1;
        single_coef(s, 1, sg, sg, t, prev_t, c);
    }
    c->order = order;
    for (int j = 1; j < order; j++) p->m[j] = s->mo[j];
    s->next = idx + 1;
    return NGPT_OK;
}
