/* sched.h — the diffusion schedulers behind ngpt_scheduler (diffusers 0.17 ports).
 *
 * Split in two so that a device kernel can reuse the math:
 *  - the scheduler (sched.c): config, noise schedule, timesteps, stepping state; for each step it
 *    computes a handful of float32 scalar coefficients (nx_*_coef) exactly as diffusers does on
 *    0-dim float32 tensors;
 *  - the step kernels (sched_step.c): pure elementwise functions of (coefficients, arrays), one
 *    fused loop per step, evaluating each expression in diffusers' order (float32 throughout).
 */
#ifndef NX_SCHED_H
#define NX_SCHED_H

#include "nextgpt.h"
#include <stdbool.h>
#include <stddef.h>

/* ---- DDIM: x0/eps from the model output, optional clip, then the (12) update ---- */
typedef struct nx_ddim_coef {
    int   pred;           /* ngpt_prediction_type */
    float sqrt_a_t;       /* alpha_prod_t ** 0.5 */
    float sqrt_b_t;       /* beta_prod_t ** 0.5 */
    float sqrt_a_prev;    /* alpha_prod_t_prev ** 0.5 */
    float dir;            /* (1 - alpha_prod_t_prev - std_dev_t**2) ** 0.5 */
    float std_dev;        /* eta * variance ** 0.5 (0: no noise term) */
    bool  clip;           /* clamp x0 to [-clip_range, clip_range] */
    float clip_range;
    bool  use_clipped;    /* re-derive eps from the clipped x0 */
    bool  add_noise;      /* eta > 0 */
} nx_ddim_coef;
void nx_ddim_apply(const nx_ddim_coef *c, const float *model_output, float *sample, const float *noise, size_t n);

/* ---- PNDM: combine the eps history (PLMS / PRK), then _get_prev_sample ---- */
typedef enum nx_pndm_combine {
    NX_PNDM_M = 0,        /* m = model_output */
    NX_PNDM_AVG2,         /* m = (m + e1) / 2                       (PLMS counter 1) */
    NX_PNDM_AB2,          /* m = (3 e1 - e2) / 2 */
    NX_PNDM_AB3,          /* m = (23 e1 - 16 e2 + 5 e3) / 12 */
    NX_PNDM_AB4,          /* m = (1/24) (55 e1 - 59 e2 + 37 e3 - 9 e4) */
    NX_PNDM_PRK_LAST      /* m = acc + (1/6) m                      (4th PRK sub-step) */
} nx_pndm_combine;
typedef struct nx_pndm_coef {
    int   combine;        /* nx_pndm_combine */
    bool  v_pred;         /* m = sqrt_a_t m + sqrt_b_t x before the update */
    float sqrt_a_t, sqrt_b_t;
    float sample_coeff;   /* (a_prev / a_t) ** 0.5 */
    float diff;           /* a_prev - a_t */
    float denom;          /* a_t b_prev**0.5 + (a_t b_t a_prev)**0.5 */
} nx_pndm_coef;
/* e[0] = newest history entry (e1), e[1] = e2 ...; acc for PRK_LAST. out may alias x. */
void nx_pndm_apply(const nx_pndm_coef *c, const float *model_output, const float *const e[4], const float *acc,
                   const float *x, float *out, size_t n);

/* ---- DPM-Solver multistep: convert_model_output, then a 1st/2nd/3rd order update ---- */
typedef struct nx_dpm_coef {
    int   algo;           /* ngpt_dpm_algorithm */
    int   pred;           /* ngpt_prediction_type */
    int   order;          /* 1, 2, 3: the update used this step */
    bool  heun;           /* solver_type heun (else midpoint) */
    float conv_alpha, conv_sigma;  /* alpha_t, sigma_t at the current timestep (conversion) */
    float cx;             /* x' = cx x + c0 D0 + c1 D1 + c2 D2 + cn noise, summed left to right */
    float c0, c1, c2;     /* signed coefficients of D0, D1, D2 (diffusers' "a - c*D" is "a + (-c)*D",
                             which is exact in IEEE arithmetic) */
    float inv_r0, inv_r1; /* 1/r0, 1/r1 */
    float r0_r01;         /* r0 / (r0 + r1) */
    float inv_r01;        /* 1 / (r0 + r1) */
    float cn;             /* noise coefficient (SDE variants) */
} nx_dpm_coef;
/* m[0] receives the converted output of this step; m[1], m[2]: the previous ones (newest
 * first), read when order >= 2 / 3. noise: SDE variants only. */
void nx_dpm_apply(const nx_dpm_coef *c, const float *model_output, float *const m[3], float *sample,
                  const float *noise, size_t n);

#endif
