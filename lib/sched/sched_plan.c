/* sched_plan.c — a step planned on the host (nx_sched_plan: the bookkeeping, and the step's
 * float32 coefficients as an nx_sched_step) and ngpt_scheduler_step, which runs the plan over host
 * arrays; the steps of DDIM (scheduling_ddim.py), DDPM (scheduling_ddpm.py), PNDM
 * (scheduling_pndm.py) and DPM-Solver multistep (scheduling_dpmsolver_multistep.py). The other
 * kinds plan in sched_kdiff.c, sched_unipc.c, sched_deis.c and sched_singlestep.c.
 */
#include "sched_impl.h"
#include "../core/alloc.h"
#include "../core/error.h"

#include <math.h>
#include <string.h>


static float acp_at(const ngpt_scheduler *s, int64_t t)
{
    /* python indexing: a negative index counts from the end (only reachable with odd configs) */
    return s->acp[t < 0 ? t + s->T : t];
}

static ngpt_status plan_ddim(ngpt_scheduler *s, int64_t t, bool have_noise, nx_sched_step *p)
{
    const int64_t prev_t = t - s->T / s->n_inference;
    const float a_t = acp_at(s, t);
    const float a_prev = prev_t >= 0 ? acp_at(s, prev_t) : s->final_acp;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    nx_ddim_coef *c = &p->c.ddim;
    c->pred = s->pred;
    c->sqrt_a_t = sqrtf(a_t);
    c->sqrt_b_t = sqrtf(b_t);
    c->sqrt_a_prev = sqrtf(a_prev);
    const float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
    c->std_dev = s->eta * sqrtf(variance);
    /* (1 - a_prev - std_dev^2) >= 0 for eta <= 1 (it is b_prev a_t (1/a_prev - 1) / b_t there, up to
     * rounding); a larger eta can make it negative, where diffusers' ** 0.5 gives NaN latents */
    float dir2 = 1.0f - a_prev - c->std_dev * c->std_dev;
    if (dir2 < 0.0f && dir2 > -1e-6f) dir2 = 0.0f;
    if (!(dir2 >= 0.0f))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT,
                      "ngpt_scheduler_step: DDIM with eta = %g at timestep %lld: 1 - alphas_cumprod[prev] - std_dev^2 = %g "
                      "is negative (the step would take its square root: NaN in diffusers); use eta <= 1",
                      (double)s->eta, (long long)t, (double)dir2);
    c->dir = sqrtf(dir2);
    c->clip = s->clip_sample;
    c->clip_range = s->clip_sample_range;
    c->use_clipped = s->use_clipped;
    c->add_noise = s->eta > 0;
    if (c->add_noise && !have_noise)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: DDIM with eta = %g needs variance_noise", (double)s->eta);
    p->noise = c->add_noise;
    return NGPT_OK;
}

/* DDPMScheduler.step: the posterior mean of x_prev given x0 and x, plus its noise (but at t = 0). */
static ngpt_status plan_ddpm(ngpt_scheduler *s, int64_t t, bool have_noise, nx_sched_step *p)
{
    const int64_t prev_t = t - s->T / s->n_inference;
    const float a_t = acp_at(s, t), a_prev = prev_t >= 0 ? acp_at(s, prev_t) : 1.0f;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    const float cur_alpha = a_t / a_prev, cur_beta = 1.0f - cur_alpha;
    nx_ddpm_coef *c = &p->c.ddpm;
    c->pred = s->pred;
    c->sqrt_a_t = sqrtf(a_t);
    c->sqrt_b_t = sqrtf(b_t);
    c->clip = s->clip_sample;
    c->clip_range = s->clip_sample_range;
    c->c_x0 = (sqrtf(a_prev) * cur_beta) / b_t;
    c->c_x = sqrtf(cur_alpha) * b_prev / b_t;
    c->add_noise = t > 0;
    if (c->add_noise) {
        if (!have_noise)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: DDPMScheduler needs variance_noise (at "
                          "timestep %lld)", (long long)t);
        /* _get_variance: the posterior variance, clamped at 1e-20 (torch.clamp keeps NaN) */
        float var = (1.0f - a_prev) / (1.0f - a_t) * cur_beta;
        var = var < 1e-20f ? 1e-20f : var;
        if (s->variance_type == VARIANCE_FIXED_SMALL_LOG) c->std = expf(0.5f * logf(var));
        else c->std = sqrtf(s->variance_type == VARIANCE_FIXED_LARGE ? cur_beta : var);
    }
    p->noise = c->add_noise;
    return NGPT_OK;
}

static void pndm_coef(const ngpt_scheduler *s, int64_t t, int64_t prev_t, int combine, nx_pndm_coef *c)
{
    const float a_t = acp_at(s, t);
    const float a_prev = prev_t >= 0 ? acp_at(s, prev_t) : s->final_acp;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    c->combine = combine;
    c->v_pred = s->pred == NGPT_PREDICTION_V;
    c->sqrt_a_t = sqrtf(a_t);
    c->sqrt_b_t = sqrtf(b_t);
    c->sample_coeff = sqrtf(a_prev / a_t);
    c->denom = a_t * sqrtf(b_prev) + sqrtf(a_t * b_t * a_prev);
    c->diff = a_prev - a_t;
}

/* ets.append (PLMS trims to the last 3 before appending, so at most 4 are kept): the slot that
 * receives this step's model output. */
int nx_sched_ets_push(ngpt_scheduler *s)
{
    int slot = -1;
    if (s->n_ets == 4) { slot = s->ets[3]; s->n_ets = 3; }
    for (int b = 0; b < 4 && slot < 0; b++) {  /* a free slot among 0..3 */
        bool used = false;
        for (int j = 0; j < s->n_ets; j++) used |= s->ets[j] == b;
        if (!used) slot = b;
    }
    memmove(&s->ets[1], &s->ets[0], (size_t)s->n_ets * sizeof s->ets[0]);
    s->ets[0] = slot;
    s->n_ets++;
    return slot;
}

enum { SLOT_CUR_SAMPLE = 4, SLOT_ACC = 5 };

static ngpt_status plan_pndm(ngpt_scheduler *s, int64_t t, nx_sched_step *p)
{
    const int64_t ratio = s->T / s->n_inference;
    if (s->counter < (int64_t)s->n_prk && !s->skip_prk_steps) {
        p->acc = SLOT_ACC; /* written by phase 0 before any read; PLMS steps leave it alone */
        /* step_prk */
        const int64_t diff_to_prev = (s->counter % 2) ? 0 : ratio / 2;
        const int64_t prev_t = t - diff_to_prev;
        const int64_t tt = s->ts[s->counter / 4 * 4];
        const int phase = (int)(s->counter % 4);
        int combine = NX_PNDM_M;
        if (phase == 0) {
            p->acc_mode = NX_SCHED_ACC_SET;
            p->acc_k = (float)(1.0 / 6.0);
            p->push = nx_sched_ets_push(s);
            p->save_x = SLOT_CUR_SAMPLE;
            s->have_cur_sample = true;
        } else if (phase == 1 || phase == 2) {
            p->acc_mode = NX_SCHED_ACC_ADD;
            p->acc_k = (float)(1.0 / 3.0);
        } else {
            combine = NX_PNDM_PRK_LAST;
        }
        pndm_coef(s, tt, prev_t, combine, &p->c.pndm);
        if (s->have_cur_sample) p->xin = SLOT_CUR_SAMPLE;
        s->counter++;
        return NGPT_OK;
    }

    /* step_plms */
    if (!s->skip_prk_steps && s->n_ets < 3)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: PNDM without skip_prk_steps runs PLMS only "
                      "after the PRK steps");
    int64_t prev_t = t - ratio, tt = t;
    if (s->counter != 1) {
        if (s->n_ets > 3) s->n_ets = 3;
        p->push = nx_sched_ets_push(s);
    } else {
        prev_t = t;
        tt = t + ratio;
    }
    int combine;
    if (s->n_ets == 1 && s->counter == 0) {
        combine = NX_PNDM_M;
        p->save_x = SLOT_CUR_SAMPLE;
        s->have_cur_sample = true;
    } else if (s->n_ets == 1 && s->counter == 1) {
        combine = NX_PNDM_AVG2;
        p->xin = SLOT_CUR_SAMPLE;
        s->have_cur_sample = false;
    } else if (s->n_ets == 2) combine = NX_PNDM_AB2;
    else if (s->n_ets == 3) combine = NX_PNDM_AB3;
    else combine = NX_PNDM_AB4;
    for (int j = 0; j < 4; j++) p->e[j] = j < s->n_ets ? s->ets[j] : -1;
    pndm_coef(s, tt, prev_t, combine, &p->c.pndm);
    s->counter++;
    return NGPT_OK;
}

/* model_outputs (DPM-Solver, UniPC): drop the oldest of `order`, append this step's; returns its
 * slot (a free one, or the oldest's), now mo[0]. mo_t, UniPC's timestep_list, follows along. */
int nx_sched_mo_push(ngpt_scheduler *s, int64_t t)
{
    int slot = 0;
    for (int b = 0; b < s->order; b++) {
        bool used = false;
        for (int j = 0; j < s->order - 1; j++) used |= s->mo[j] == b;
        if (!used) { slot = b; break; }
    }
    for (int j = s->order - 1; j > 0; j--) { s->mo[j] = s->mo[j - 1]; s->mo_t[j] = s->mo_t[j - 1]; }
    s->mo[0] = slot;
    s->mo_t[0] = t;
    return slot;
}

int nx_sched_multistep_order(ngpt_scheduler *s, int64_t t, size_t idx, int64_t *prev_t)
{
    const size_t last = s->n_ts - 1;
    *prev_t = idx == last ? 0 : s->ts[idx + 1];
    const bool low_final = idx == last && s->lower_order_final && s->n_ts < 15;
    const bool low_second = s->n_ts >= 2 && idx == last - 1 && s->lower_order_final && s->n_ts < 15;
    nx_sched_mo_push(s, t);
    if (s->order == 1 || s->lower_order_nums < 1 || low_final) return 1;
    if (s->order == 2 || s->lower_order_nums < 2 || low_second) return 2;
    return 3;
}

static ngpt_status plan_dpm(ngpt_scheduler *s, int64_t t, size_t idx, bool have_noise, nx_sched_step *p)
{
    const bool sde = s->algo == NGPT_DPM_SDE_DPMSOLVER_PP || s->algo == NGPT_DPM_SDE_DPMSOLVER;
    if (sde && !have_noise)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: the SDE DPM-Solver variants need variance_noise");
    p->noise = sde;
    int64_t prev_t;
    int order = nx_sched_multistep_order(s, t, idx, &prev_t);
    /* A step to its own timestep (Karras timesteps end at 0, and the last step goes to 0): h = 0,
     * the update is the identity. diffusers' third-order and heun formulas divide 0 by 0 there
     * (NaN latents with 15 or more steps); the first-order one gives the identity exactly. */
    if (s->lambda_t[prev_t] == s->lambda_t[t]) order = 1;
    for (int j = 0; j < 3; j++) p->m[j] = j < order ? s->mo[j] : -1;

    nx_dpm_coef *c = &p->c.dpm;
    c->algo = s->algo;
    c->pred = s->pred;
    c->order = order;
    c->heun = s->heun;
    c->conv_alpha = s->alpha_t[t];
    c->conv_sigma = s->sigma_t[t];
    const int64_t s0 = t;
    const float lam_t = s->lambda_t[prev_t], lam_s0 = s->lambda_t[s0];
    const float alpha_t = s->alpha_t[prev_t], alpha_s0 = s->alpha_t[s0];
    const float sigma_t = s->sigma_t[prev_t], sigma_s0 = s->sigma_t[s0];
    const float h = lam_t - lam_s0;
    const bool pp = s->algo == NGPT_DPM_DPMSOLVER_PP;
    const bool spp = s->algo == NGPT_DPM_SDE_DPMSOLVER_PP;
    const bool plain = s->algo == NGPT_DPM_DPMSOLVER;
    const float em = expf(-h), ep = expf(h);
    if (pp) {
        c->cx = sigma_t / sigma_s0;
        c->c0 = -(alpha_t * (em - 1.0f));
    } else if (plain) {
        c->cx = alpha_t / alpha_s0;
        c->c0 = -(sigma_t * (ep - 1.0f));
    } else if (spp) {
        c->cx = sigma_t / sigma_s0 * em;
        c->c0 = alpha_t * (1.0f - expf(-2.0f * h));
        c->cn = sigma_t * sqrtf(1.0f - expf(-2.0f * h));
    } else {
        c->cx = alpha_t / alpha_s0;
        c->c0 = -(2.0f * (sigma_t * (ep - 1.0f)));
        c->cn = sigma_t * sqrtf(expf(2.0f * h) - 1.0f);
    }
    if (order >= 2) {
        /* python indexing, as diffusers: a step repeated at the first timestep reads ts[-1] */
        const int64_t s1 = s->ts[(idx + s->n_ts - 1) % s->n_ts];
        const float lam_s1 = s->lambda_t[s1];
        const float h0 = lam_s0 - lam_s1;
        const float r0 = h0 / h;
        c->inv_r0 = 1.0f / r0;
        if (order == 2) {
            if (pp) c->c1 = s->heun ? alpha_t * ((em - 1.0f) / h + 1.0f) : -(0.5f * (alpha_t * (em - 1.0f)));
            else if (plain) c->c1 = s->heun ? -(sigma_t * ((ep - 1.0f) / h - 1.0f)) : -(0.5f * (sigma_t * (ep - 1.0f)));
            else if (spp) {
                const float e2 = expf(-2.0f * h);
                c->c1 = s->heun ? alpha_t * ((1.0f - e2) / (-2.0f * h) + 1.0f) : 0.5f * (alpha_t * (1.0f - e2));
            } else {
                c->c1 = s->heun ? -(2.0f * (sigma_t * ((ep - 1.0f) / h - 1.0f))) : -(sigma_t * (ep - 1.0f));
            }
        } else {
            const int64_t s2 = s->ts[(idx + 2 * s->n_ts - 2) % s->n_ts];
            const float h1 = lam_s1 - s->lambda_t[s2];
            const float r1 = h1 / h;
            c->inv_r1 = 1.0f / r1;
            c->r0_r01 = r0 / (r0 + r1);
            c->inv_r01 = 1.0f / (r0 + r1);
            if (pp) {
                c->c1 = alpha_t * ((em - 1.0f) / h + 1.0f);
                c->c2 = -(alpha_t * ((em - 1.0f + h) / (h * h) - 0.5f));
            } else {
                c->c1 = -(sigma_t * ((ep - 1.0f) / h - 1.0f));
                c->c2 = -(sigma_t * ((ep - 1.0f - h) / (h * h) - 0.5f));
            }
        }
    }
    if (s->lower_order_nums < s->order) s->lower_order_nums++;
    return NGPT_OK;
}


int nx_sched_slots(const ngpt_scheduler *s)
{
    switch (s->kind) {
    case NGPT_SCHEDULER_DDIM: return 0;
    case NGPT_SCHEDULER_PNDM: return NX_SCHED_SLOTS;
    case NGPT_SCHEDULER_DPMSOLVER_MULTISTEP:
    case NGPT_SCHEDULER_DEIS_MULTISTEP: return s->order;
    case NGPT_SCHEDULER_HEUN: return 2;
    case NGPT_SCHEDULER_UNIPC_MULTISTEP:                       /* model_outputs, then last_sample */
    case NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP: return s->order + 1;  /* (the group's first sample) */
    case NGPT_SCHEDULER_LMS: return 4;                          /* the derivatives */
    case NGPT_SCHEDULER_KDPM2:
    case NGPT_SCHEDULER_KDPM2_ANCESTRAL: return 1;              /* the first-order step's sample */
    default: return 0;
    }
}

/* A trajectory keeps the element count of its first step. */
static ngpt_status check_n(const ngpt_scheduler *s, size_t n)
{
    if (s->n && s->n != n)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_scheduler_step: n = %zu, but earlier steps had %zu "
                      "(call ngpt_scheduler_set_timesteps or _reset to start a new trajectory)", n, s->n);
    return NGPT_OK;
}

ngpt_status nx_sched_plan(ngpt_scheduler *s, double ts_f, size_t n, bool have_noise, nx_sched_step *p)
{
    if (!s->n_inference)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: call ngpt_scheduler_set_timesteps first");
    NX_TRY(check_n(s, n));
    const bool kd = nx_sched_is_kdiffusion(s);
    /* (DPM singlestep keeps repeated timesteps: the expected next step first, as the k-diffusion kinds) */
    const bool by_next = kd || s->kind == NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP;
    const size_t idx = by_next ? nx_sched_find_step(s, ts_f) : nx_sched_first_step(s, ts_f);
    /* DDIM trailing can end at -1 (diffusers indexes from the end) */
    if (idx == s->n_ts || (!kd && (ts_f < (double)-s->T || ts_f >= (double)s->T)))
        return nx_sched_not_in_schedule(s, "ngpt_scheduler_step", ts_f);
    const int64_t timestep = kd ? 0 : s->ts[idx];
    memset(p, 0, sizeof *p);
    p->n = (int64_t)n;
    p->push = p->save_x = p->acc = p->xin = -1;
    for (int j = 0; j < 4; j++) p->e[j] = -1;
    for (int j = 0; j < 3; j++) p->m[j] = -1;
    ngpt_status st;
    switch (s->kind) {
    case NGPT_SCHEDULER_DDIM: p->kind = NX_SCHED_KIND_DDIM; st = plan_ddim(s, timestep, have_noise, p); break;
    case NGPT_SCHEDULER_DDPM: p->kind = NX_SCHED_KIND_DDPM; st = plan_ddpm(s, timestep, have_noise, p); break;
    case NGPT_SCHEDULER_PNDM: p->kind = NX_SCHED_KIND_PNDM; st = plan_pndm(s, timestep, p); break;
    case NGPT_SCHEDULER_DPMSOLVER_MULTISTEP: p->kind = NX_SCHED_KIND_DPM; st = plan_dpm(s, timestep, idx, have_noise, p); break;
    case NGPT_SCHEDULER_UNIPC_MULTISTEP: p->kind = NX_SCHED_KIND_UNIPC; st = nx_sched_plan_unipc(s, timestep, idx, p); break;
    case NGPT_SCHEDULER_DEIS_MULTISTEP: p->kind = NX_SCHED_KIND_DEIS; st = nx_sched_plan_deis(s, timestep, idx, p); break;
    case NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP:
        p->kind = NX_SCHED_KIND_DPM_SINGLE;
        st = nx_sched_plan_dpm_single(s, timestep, idx, p);
        break;
    case NGPT_SCHEDULER_LMS: p->kind = NX_SCHED_KIND_LMS; nx_sched_plan_lms(s, idx, p); st = NGPT_OK; break;
    case NGPT_SCHEDULER_KDPM2:
    case NGPT_SCHEDULER_KDPM2_ANCESTRAL: p->kind = NX_SCHED_KIND_EULER; st = nx_sched_plan_kdpm2(s, idx, have_noise, p); break;
    default: p->kind = NX_SCHED_KIND_EULER; st = nx_sched_plan_euler(s, idx, have_noise, p); break;
    }
    if (st == NGPT_OK) s->n = n;
    return st;
}

NGPT_API ngpt_status ngpt_scheduler_step(ngpt_scheduler *s, const float *model_output, int64_t timestep,
                                         float *sample, size_t n, const float *variance_noise)
{
    return ngpt_scheduler_step_f64(s, model_output, (double)timestep, sample, n, variance_noise);
}

NGPT_API ngpt_status ngpt_scheduler_step_f64(ngpt_scheduler *s, const float *model_output, double timestep,
                                             float *sample, size_t n, const float *variance_noise)
{
    if (!s) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: s is NULL");
    if (n && (!model_output || !sample))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: model_output or sample is NULL");
    NX_TRY(check_n(s, n)); /* before the buffers are sized for n (nx_sched_plan checks it again) */
    /* the state buffers, before the plan advances the state, so that running out of memory
     * leaves the trajectory where it was */
    if (s->buf_n != n) {  /* (only before the first step: later ones have s->n == n) */
        for (int i = 0; i < NX_SCHED_SLOTS; i++) { nx_free(s->buf[i]); s->buf[i] = NULL; }
        s->buf_n = n;
    }
    for (int i = 0; i < nx_sched_slots(s); i++) {
        if (s->buf[i]) continue;
        s->buf[i] = nx_malloc((n ? n : 1) * sizeof(float));
        if (!s->buf[i]) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_step: state of %zu floats", n);
    }
    nx_sched_step p;
    NX_TRY(nx_sched_plan(s, timestep, n, variance_noise != NULL, &p));
    nx_sched_run_host(&p, model_output, sample, variance_noise, s->buf);
    return NGPT_OK;
}