/* sched_deis.c — DEIS multistep's step (scheduling_deis_multistep.py, log-rho): DPM-Solver's
 * bookkeeping (model_outputs, lower_order_final) with DEIS's updates, whose coefficients integrate
 * Lagrange polynomials in log rho, rho = sigma / alpha. diffusers takes the logs with numpy (its
 * float32 SIMD log, copied as nx_sched_np_logf) and does the rest as 0-dim float32 tensor
 * arithmetic, which is what this file copies.
 */
#include "sched_impl.h"

#include <math.h>

static float rho_at(const ngpt_scheduler *s, int64_t t)
{
    return s->sigma_t[t] / s->alpha_t[t];
}

/* ind_fn of the second-order update: Integrate[(log(t) - log(c)) / (log(b) - log(c)), {t}] */
static float ind2(float t, float b, float c)
{
    return t * (-nx_sched_np_logf(c) + nx_sched_np_logf(t) - 1.0f) / (nx_sched_np_logf(b) - nx_sched_np_logf(c));
}

/* ind_fn of the third-order update: Integrate[(log(t) - log(c)) (log(t) - log(d)) /
 * ((log(b) - log(c)) (log(b) - log(d))), {t}], in diffusers' order of operations */
static float ind3(float t, float b, float c, float d)
{
    const float lt = nx_sched_np_logf(t), lb = nx_sched_np_logf(b), lc = nx_sched_np_logf(c), ld = nx_sched_np_logf(d);
    const float numerator = t * (lc * (ld - lt + 1.0f) - ld * lt + ld + lt * lt - 2.0f * lt + 2.0f);
    const float denominator = (lb - lc) * (lb - ld);
    return numerator / denominator;
}

/* DEISMultistepScheduler.step at schedule index idx: slots 0 .. order-1 hold model_outputs. */
ngpt_status nx_sched_plan_deis(ngpt_scheduler *s, int64_t t, size_t idx, nx_sched_step *p)
{
    int64_t prev_t;
    int order = nx_sched_multistep_order(s, t, idx, &prev_t);
    /* python indexing, as diffusers: a step repeated at the first timestep reads ts[-1] */
    const int64_t s1 = s->ts[(idx + s->n_ts - 1) % s->n_ts], s2 = s->ts[(idx + 2 * s->n_ts - 2) % s->n_ts];
    const float r_t = rho_at(s, prev_t), r0 = rho_at(s, t), r1 = rho_at(s, s1), r2 = order == 3 ? rho_at(s, s2) : 0.0f;
    /* Two history timesteps with one noise level (rho equal in float32) make diffusers divide by
     * log(b) - log(c) = 0: NaN latents. The update drops to the order whose history is distinct. */
    if (order == 3 && (nx_sched_np_logf(r1) == nx_sched_np_logf(r2) || nx_sched_np_logf(r0) == nx_sched_np_logf(r2)))
        order = 2;
    if (order >= 2 && nx_sched_np_logf(r0) == nx_sched_np_logf(r1)) order = 1;
    for (int j = 0; j < 3; j++) p->m[j] = j < order ? s->mo[j] : -1;

    nx_deis_coef *c = &p->c.deis;
    c->pred = s->pred;
    c->order = order;
    c->conv_alpha = s->alpha_t[t];
    c->conv_sigma = s->sigma_t[t];
    c->alpha_t = s->alpha_t[prev_t];
    if (order == 1) {
        const float h = s->lambda_t[prev_t] - s->lambda_t[t];
        c->cx = s->alpha_t[prev_t] / s->alpha_t[t];
        c->c0 = s->sigma_t[prev_t] * (expf(h) - 1.0f);
    } else if (order == 2) {
        c->k[0] = ind2(r_t, r0, r1) - ind2(r0, r0, r1);
        c->k[1] = ind2(r_t, r1, r0) - ind2(r0, r1, r0);
    } else {
        c->k[0] = ind3(r_t, r0, r1, r2) - ind3(r0, r0, r1, r2);
        c->k[1] = ind3(r_t, r1, r2, r0) - ind3(r0, r1, r2, r0);
        c->k[2] = ind3(r_t, r2, r0, r1) - ind3(r0, r2, r0, r1);
    }
    if (s->lower_order_nums < s->order) s->lower_order_nums++;
    return NGPT_OK;
}
