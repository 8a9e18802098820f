/* sched_kdiff.c — the k-diffusion samplers' steps: Euler (scheduling_euler_discrete.py), Euler
 * ancestral (scheduling_euler_ancestral_discrete.py), Heun (scheduling_heun_discrete.py), LMS
 * (scheduling_lms_discrete.py), KDPM2 (scheduling_k_dpm_2_discrete.py) and KDPM2 ancestral
 * (scheduling_k_dpm_2_ancestral_discrete.py). Their timesteps and sigmas are sched_timesteps.c's.
 */
#include "sched_impl.h"
#include "../core/error.h"

#include <math.h>

enum { SLOT_HEUN_DERIV = 0, SLOT_HEUN_SAMPLE = 1, SLOT_KDPM2_SAMPLE = 0 };

/* The sigma of the x0 prediction and its v-prediction terms (-sigma / (sigma**2 + 1) ** 0.5 and
 * sigma**2 + 1), float32 as diffusers' 0-dim tensors. */
static void x0_sigma(float si, float *sigma, float *v_out, float *v_skip_div)
{
    *sigma = si;
    *v_skip_div = si * si + 1.0f;
    *v_out = -si / sqrtf(si * si + 1.0f);
}

void nx_sched_ancestral_sigmas(float from, float to, float *up, float *down)
{
    const float to2 = to * to, from2 = from * from;
    *up = sqrtf(to2 * (from2 - to2) / from2);
    /* sigma_to**2 - sigma_up**2 is sigma_to**4 / sigma_from**2 >= 0; rounding could make it
     * negative where sigma_to << sigma_from (diffusers: NaN), so it is held at 0 */
    const float down2 = to2 - *up * *up;
    *down = sqrtf(down2 > 0.0f ? down2 : 0.0f);
    if (!isfinite(*up) || !isfinite(*down)) {
        /* sigmas past ~1e9 (thousands of training steps) overflow these float32 products
         * (diffusers: inf and NaN latents); in double they are finite */
        const double t2 = (double)to * to, f2 = (double)from * from, u = sqrt(t2 * (f2 - t2) / f2);
        *up = (float)u;
        *down = (float)sqrt(fmax(t2 - u * u, 0.0));
    }
}

ngpt_status nx_sched_plan_euler(ngpt_scheduler *s, size_t idx, bool have_noise, nx_sched_step *p)
{
    nx_euler_coef *c = &p->c.euler;
    const bool second = s->kind == NGPT_SCHEDULER_HEUN && s->second_order;
    if (second && idx == 0)  /* diffusers would read sigmas[-1] */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: Heun's second-order step at the first "
                      "timestep: take the steps in order");
    const float sigma = s->sigmas[second ? idx - 1 : idx], sigma_next = s->sigmas[second ? idx : idx + 1];
    /* the x0 prediction's sigma: sigma_hat (= sigma, gamma 0), for Heun's second step sigma_next */
    const float si = second ? sigma_next : sigma;
    c->pred = s->pred;
    x0_sigma(si, &c->sigma, &c->v_out, &c->v_skip_div);
    if (s->kind == NGPT_SCHEDULER_HEUN) {
        c->heun = second ? NX_HEUN_SECOND : NX_HEUN_FIRST;
        p->m[0] = SLOT_HEUN_DERIV;
        p->m[1] = SLOT_HEUN_SAMPLE;
        if (!second) s->heun_dt = sigma_next - sigma;
        c->dt = s->heun_dt;
        s->second_order = !second;
    } else if (s->kind == NGPT_SCHEDULER_EULER_ANCESTRAL) {
        if (!have_noise)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: EulerAncestralDiscreteScheduler needs "
                          "variance_noise");
        float down;
        nx_sched_ancestral_sigmas(sigma, sigma_next, &c->sigma_up, &down);
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
    c->pred = s->pred;
    x0_sigma(s->sigmas[idx], &c->sigma, &c->v_out, &c->v_skip_div);
    for (int j = 0; j < 3; j++) p->e[j] = j < s->n_ets ? s->ets[j] : -1;
    p->push = nx_sched_ets_push(s);
    /* order = min(step_index + 1, 4); zip() with the derivatives kept stops at the shorter */
    const int order = idx + 1 < 4 ? (int)idx + 1 : 4;
    c->order = order < s->n_ets ? order : s->n_ets;
    for (int k = 0; k < c->order; k++) c->c[k] = (float)lms_coefficient(s->sigmas, order, idx, k);
    s->next = idx + 1;
}

/* KDPM2's step at index idx: the first-order one moves the sample to the interpolated sigma and
 * keeps it; the second-order one takes the derivative there and steps from the kept sample to the
 * next sigma (ancestral: to sigma_down, then adds sigma_up noise). */
ngpt_status nx_sched_plan_kdpm2(ngpt_scheduler *s, size_t idx, bool have_noise, nx_sched_step *p)
{
    nx_euler_coef *c = &p->c.euler;
    const bool second = s->second_order, anc = s->kind == NGPT_SCHEDULER_KDPM2_ANCESTRAL;
    if (second && idx == 0)  /* diffusers would read sigmas[-1] */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: %s's second-order step at the first timestep: "
                      "take the steps in order", nx_sched_class_name(s->kind));
    if (second && anc && !have_noise)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: KDPM2AncestralDiscreteScheduler needs "
                      "variance_noise on its second-order steps");
    c->pred = s->pred;
    p->m[1] = SLOT_KDPM2_SAMPLE;
    if (!second) {
        const float sigma = s->sigmas[idx], si = s->sigmas_interp[anc ? idx : idx + 1];
        x0_sigma(sigma, &c->sigma, &c->v_out, &c->v_skip_div);
        c->dt = si - sigma;
        c->heun = NX_KDPM2_FIRST;
    } else {
        const float sigma = s->sigmas[idx - 1], si = s->sigmas_interp[anc ? idx - 1 : idx];
        x0_sigma(si, &c->sigma, &c->v_out, &c->v_skip_div);
        c->dt = (anc ? s->sigmas_down[idx - 1] : s->sigmas[idx]) - sigma;
        c->heun = NX_KDPM2_SECOND;
        if (anc) {
            c->sigma_up = s->sigmas_up[idx - 1];
            c->ancestral = true;
            p->noise = true;
        }
    }
    s->second_order = !second;
    s->next = idx + 1;
    return NGPT_OK;
}
