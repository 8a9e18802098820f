/* sched_kdiff.c — the k-diffusion samplers' steps: Euler (scheduling_euler_discrete.py), Euler
 * ancestral (scheduling_euler_ancestral_discrete.py), Heun (scheduling_heun_discrete.py) and
 * LMS (scheduling_lms_discrete.py). Their timesteps and sigmas are sched_timesteps.c's.
 */
#include "sched_impl.h"
#include "../core/alloc.h"
#include "../core/error.h"

#include <math.h>

enum { SLOT_HEUN_DERIV = 0, SLOT_HEUN_SAMPLE = 1 };

ngpt_status nx_sched_plan_euler(ngpt_scheduler *s, size_t idx, bool have_noise, nx_sched_step *p)
{
    nx_euler_coef *c = &p->c.euler;
    const bool second = s->kind == NGPT_SCHEDULER_HEUN && s->heun_second;
    if (second && idx == 0)  /* diffusers would read sigmas[-1] */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: Heun's second-order step at the first "
                      "timestep: take the steps in order");
    const float sigma = s->sigmas[second ? idx - 1 : idx], sigma_next = s->sigmas[second ? idx : idx + 1];
    /* the x0 prediction's sigma: sigma_hat (= sigma, gamma 0), for Heun's second step sigma_next */
    const float si = second ? sigma_next : sigma;
    c->pred = s->pred;
    c->sigma = si;
    c->v_skip_div = si * si + 1.0f;
    c->v_out = -si / sqrtf(si * si + 1.0f);
    if (s->kind == NGPT_SCHEDULER_HEUN) {
        c->heun = second ? NX_HEUN_SECOND : NX_HEUN_FIRST;
        p->m[0] = SLOT_HEUN_DERIV;
        p->m[1] = SLOT_HEUN_SAMPLE;
        if (!second) s->heun_dt = sigma_next - sigma;
        c->dt = s->heun_dt;
        s->heun_second = !second;
    } else if (s->kind == NGPT_SCHEDULER_EULER_ANCESTRAL) {
        if (!have_noise)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: EulerAncestralDiscreteScheduler needs "
                          "variance_noise");
        const float to2 = sigma_next * sigma_next, from2 = sigma * sigma;
        c->sigma_up = sqrtf(to2 * (from2 - to2) / from2);
        /* sigma_to**2 - sigma_up**2 is sigma_to**4 / sigma_from**2 >= 0; rounding could make it
         * negative where sigma_to << sigma_from (diffusers: NaN), so it is held at 0 */
        float down2 = to2 - c->sigma_up * c->sigma_up;
        float down = sqrtf(down2 > 0.0f ? down2 : 0.0f);
        if (!isfinite(c->sigma_up) || !isfinite(down)) {
            /* sigmas past ~1e9 (thousands of training steps) overflow these float32 products
             * (diffusers: inf and NaN latents); in double they are finite */
            const double t2 = (double)sigma_next * sigma_next, f2 = (double)sigma * sigma, up = sqrt(t2 * (f2 - t2) / f2);
            c->sigma_up = (float)up;
            down = (float)sqrt(fmax(t2 - up * up, 0.0));
        }
        c->dt = down - sigma;
        c->ancestral = true;
        p->noise = true;
    } else {
        c->dt = sigma_next - sigma;
    }
    s->next = idx + 1;
    return NGPT_OK;
}


/* get_lms_coefficient's integrand: the Lagrange basis polynomial `cur` through sigmas[t - k],
 * k < order, at tau, in float32 as diffusers evaluates it (python float tau against 0-dim float32
 * tensors) */
static double lms_basis(const float *sg, int order, size_t t, int cur, double tau)
{
    const float tf = (float)tau;
    float prod = 1.0f;
    for (int k = 0; k < order; k++)
        if (k != cur) prod = prod * ((tf - sg[t - (size_t)k]) / (sg[t - (size_t)cur] - sg[t - (size_t)k]));
    return (double)prod;
}

/* scipy.integrate.quad(f, a, b, epsrel=1e-4) of lms_basis: QUADPACK's dqags, whose first 21-point
 * Gauss-Kronrod rule (dqk21, copied with its order of sums) meets that tolerance for these
 * polynomials of degree <= 3; its later bisections would refine rounding noise only. */
static double lms_coefficient(const float *sg, int order, size_t t, int cur)
{
    static const double xgk[11] = {0.995657163025808080735527280689003, 0.973906528517171720077964012084452,
                                   0.930157491355708226001207180059508, 0.865063366688984510732096688423493,
                                   0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
                                   0.562757134668604683339000099272694, 0.433395394129247190799265943165784,
                                   0.294392862701460198131126603103866, 0.148874338981631210884826001129720, 0.0};
    static const double wgk[11] = {0.011694638867371874278064396062192, 0.032558162307964727478818972459390,
                                   0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
                                   0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
                                   0.123491976262065851077208067022521, 0.134709217311473325928054001771707,
                                   0.142775938577060080797094273138717, 0.147739104901338491374841515972068,
                                   0.149445554002916905664936468389821};
    const double a = sg[t], b = sg[t + 1];
    const double centr = 0.5 * (a + b), hlgth = 0.5 * (b - a);
    double resk = wgk[10] * lms_basis(sg, order, t, cur, centr);
    for (int j = 1; j <= 5; j++) {  /* the Gauss nodes (xgk(2j), 1-based), then the Kronrod ones */
        const double absc = hlgth * xgk[2 * j - 1];
        resk = resk + wgk[2 * j - 1] * (lms_basis(sg, order, t, cur, centr - absc) + lms_basis(sg, order, t, cur, centr + absc));
    }
    for (int j = 1; j <= 5; j++) {
        const double absc = hlgth * xgk[2 * j - 2];
        resk = resk + wgk[2 * j - 2] * (lms_basis(sg, order, t, cur, centr - absc) + lms_basis(sg, order, t, cur, centr + absc));
    }
    return resk * hlgth;
}

/* LMSDiscreteScheduler.step at index idx (order 4, as the pipelines call it): the derivative
 * history is PNDM's ring of four slots. */
void nx_sched_plan_lms(ngpt_scheduler *s, size_t idx, nx_sched_step *p)
{
    nx_lms_coef *c = &p->c.lms;
    const float sigma = s->sigmas[idx];
    c->pred = s->pred;
    c->sigma = sigma;
    c->v_skip_div = sigma * sigma + 1.0f;
    c->v_out = -sigma / sqrtf(sigma * sigma + 1.0f);
    for (int j = 0; j < 3; j++) p->e[j] = j < s->n_ets ? s->ets[j] : -1;
    p->push = nx_sched_ets_push(s);
    /* order = min(step_index + 1, 4); zip() with the derivatives kept stops at the shorter */
    const int order = idx + 1 < 4 ? (int)idx + 1 : 4;
    c->order = order < s->n_ets ? order : s->n_ets;
    for (int k = 0; k < c->order; k++) c->c[k] = (float)lms_coefficient(s->sigmas, order, idx, k);
    s->next = idx + 1;
}