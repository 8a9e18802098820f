/* sched_impl.h — the scheduler's state and the functions its files share (not installed).
 *
 * The files of lib/sched, diffusers 0.17 ports (file names below are diffusers'):
 *  - sched.c: config (scheduler_config.json), noise schedule, create / free;
 *  - sched_timesteps.c: set_timesteps, the timestep lookups, scale_model_input, add_noise;
 *  - sched_plan.c: nx_sched_plan and ngpt_scheduler_step; DDIM, PNDM and DPM-Solver's steps;
 *  - sched_kdiff.c: the k-diffusion samplers' steps (Euler, Euler ancestral, Heun, LMS, KDPM2,
 *    KDPM2 ancestral);
 *  - sched_unipc.c: UniPC's step;
 *  - sched_deis.c: DEIS's step;
 *  - sched_singlestep.c: DPM-Solver singlestep's step;
 *  - sched_step.c / sched_math.h: a planned step's element-wise work.
 *
 * Precision follows the reference: betas/alphas_cumprod are float32 tensors in diffusers
 * (torch.linspace in float32, torch.cumprod accumulating in double on CPU and rounding each
 * entry to float32); per-step scalars (alpha_prod_t ** 0.5, exp(-h), ...) are 0-dim float32
 * tensors there, so they are float here; timestep arithmetic is numpy float64 / int64.
 */
#ifndef NX_SCHED_IMPL_H
#define NX_SCHED_IMPL_H

#include "sched.h"

#include <stdint.h>

enum { SPACING_LEADING = 0, SPACING_TRAILING = 1 };
enum { VARIANCE_FIXED_SMALL = 0, VARIANCE_FIXED_SMALL_LOG = 1, VARIANCE_FIXED_LARGE = 2 };

struct ngpt_scheduler {
    ngpt_scheduler_kind kind;
    /* ---- config (diffusers names) ---- */
    int64_t T;                  /* num_train_timesteps */
    int     pred;               /* ngpt_prediction_type */
    bool    clip_sample;        /* DDIM, DDPM */
    float   clip_sample_range;  /* DDIM, DDPM */
    int     variance_type;      /* DDPM: VARIANCE_* */
    int64_t steps_offset;       /* DDIM, PNDM */
    int     spacing;            /* DDIM timestep_spacing */
    bool    skip_prk_steps;     /* PNDM */
    int     order;              /* DPM, UniPC, DEIS solver_order */
    int     algo;               /* DPM algorithm_type */
    bool    heun;               /* DPM solver_type */
    bool    lower_order_final;  /* DPM, UniPC */
    bool    predict_x0;         /* UniPC */
    bool    bh2;                /* UniPC solver_type bh2 (else bh1) */
    int64_t *disable_corrector; /* UniPC: step indices whose next step skips UniC */
    size_t  n_disable;
    double  lambda_min_clipped; /* DPM */
    bool    karras;             /* Euler, Heun, DPM use_karras_sigmas */
    float   eta;                /* DDIM step argument */
    bool    use_clipped;        /* DDIM step argument */
    /* ---- schedule ---- */
    float  *acp;                /* alphas_cumprod [T] */
    float   final_acp;          /* DDIM, PNDM */
    float  *alpha_t, *sigma_t, *lambda_t;  /* DPM, UniPC [T] */
    float  *train_sigma;        /* Euler, Karras DPM [T]: ((1 - acp) / acp) ** 0.5 in float32 */
    float   init_sigma;         /* Euler, Heun: init_noise_sigma (Heun: of the last set_timesteps) */
    /* ---- timesteps ---- */
    int32_t  n_inference;       /* as passed to set_timesteps; 0 = not yet */
    int64_t *ts;                /* [n_ts] (not the Euler kinds': theirs are fractional) */
    double  *tsf;               /* [n_ts]: every kind's timesteps as float64 */
    float   *sigmas;            /* k-diffusion [n_ts + 1]: the step sigmas, then 0 */
    float   *sigmas_interp;     /* KDPM2 [n_ts + 1]: sigmas_interpol, repeated as sigmas are */
    float   *sigmas_up, *sigmas_down;  /* KDPM2 ancestral [n_ts + 1], likewise */
    size_t   n_ts;
    size_t   next;              /* Euler, DPM singlestep: the step expected next (a repeated timestep
                                   resolves to it) */
    int8_t  *order_list;        /* DPM singlestep [n_ts]: each step's order (get_order_list) */
    size_t   n_prk;             /* PNDM: the first n_prk timesteps are PRK steps */
    /* ---- stepping state ---- */
    size_t n;                   /* elements per sample, fixed by the first step; 0 = none yet */
    float *buf[NX_SCHED_SLOTS]; /* host stepping's state: PNDM ets ring (0-3) + cur_sample (4) + the PRK
                                   accumulator (5); DPM model_outputs (0 .. order-1); UniPC those and
                                   last_sample (order); Heun's derivative and sample (0, 1); LMS's
                                   derivatives (0-3). Device stepping (nx_sched_plan) keeps its own
                                   buffers in the same slots. */
    size_t buf_n;               /* the elements buf[] were allocated for */
    int    ets[4];              /* PNDM, LMS: history as slots, ets[0] newest; -1 unused */
    int    n_ets;
    bool   have_cur_sample;
    int64_t counter;            /* PNDM */
    int    lower_order_nums;    /* DPM, UniPC */
    int    mo[3];               /* DPM, UniPC: model_outputs as slots, mo[0] newest; -1 unused */
    int64_t mo_t[3];            /* UniPC: timestep_list, the timesteps of mo[] */
    int    this_order;          /* UniPC: the last UniP's order (the next UniC's) */
    bool   second_order;        /* Heun, KDPM2: the next step is a second-order one (diffusers: Heun's
                                   dt, KDPM2's sample set) */
    float  heun_dt;             /* Heun: the first-order step's dt */
};
/* sched.c */
const char *nx_sched_class_name(ngpt_scheduler_kind k);  /* diffusers' class name */
bool nx_sched_is_kdiffusion(const ngpt_scheduler *s);     /* fractional timesteps, sigma-scaled input */
bool nx_sched_is_kdpm2(const ngpt_scheduler *s);          /* KDPM2 or KDPM2 ancestral */
void nx_sched_free_state(ngpt_scheduler *s);              /* the host stepping's buffers */
void nx_sched_reset_state(ngpt_scheduler *s);             /* the stepping counters and history */

/* sched_timesteps.c */
/* np.log of a float32 as numpy 1.24 computes it on x86-64 (its SIMD code, not libm's logf: they
 * differ in the last bit for ~8% of arguments) */
float nx_sched_np_logf(float x);
size_t nx_sched_first_step(const ngpt_scheduler *s, double t);
void nx_sched_free_timesteps(ngpt_scheduler *s);  /* the timesteps and the k-diffusion sigmas */
size_t nx_sched_find_step(const ngpt_scheduler *s, double t);
ngpt_status nx_sched_not_in_schedule(const ngpt_scheduler *s, const char *fn, double t);

/* sched_kdiff.c: an ancestral step's sigma_up and sigma_down from sigma `from` to `to` (Euler
 * ancestral's per step, KDPM2 ancestral's in its schedule) */
void nx_sched_ancestral_sigmas(float from, float to, float *up, float *down);

/* sched_plan.c: the history rings, PNDM's and LMS's ets, DPM-Solver's and UniPC's model_outputs */
int nx_sched_ets_push(ngpt_scheduler *s);
int nx_sched_mo_push(ngpt_scheduler *s, int64_t t);
/* DPM-Solver multistep's and DEIS's step bookkeeping at schedule index idx: this step's output
 * pushed (nx_sched_mo_push), the timestep it steps to (*prev_t), and the returned order of its
 * update (lower for the first steps and, with lower_order_final under 15 steps, the last two) */
int nx_sched_multistep_order(ngpt_scheduler *s, int64_t t, size_t idx, int64_t *prev_t);

/* the kinds' step planners (sched_kdiff.c, sched_unipc.c, sched_deis.c, sched_singlestep.c) */
ngpt_status nx_sched_plan_euler(ngpt_scheduler *s, size_t idx, bool have_noise, nx_sched_step *p);
ngpt_status nx_sched_plan_kdpm2(ngpt_scheduler *s, size_t idx, bool have_noise, nx_sched_step *p);
void nx_sched_plan_lms(ngpt_scheduler *s, size_t idx, nx_sched_step *p);
ngpt_status nx_sched_plan_unipc(ngpt_scheduler *s, int64_t t, size_t idx, nx_sched_step *p);
ngpt_status nx_sched_plan_deis(ngpt_scheduler *s, int64_t t, size_t idx, nx_sched_step *p);
ngpt_status nx_sched_plan_dpm_single(ngpt_scheduler *s, int64_t t, size_t idx, nx_sched_step *p);

#endif
