/* sched_math.h — one scheduler step for one element, shared by the host (sched_step.c, the CPU
 * backend's nx_op_sched_step) and the CUDA kernel (kernels/sched.cu), so that the three run the
 * same expressions in the same order: diffusers 0.17's float32 tensor arithmetic.
 *
 * A step is data (nx_sched_step): the classifier-free guidance combine, the scheduler's state
 * updates (PNDM's ets.append and cur_sample, its PRK accumulator, DPM-Solver's, UniPC's and
 * DEIS's model_outputs, UniPC's last sample, DPM singlestep's group sample, Heun's first-order
 * derivative and sample, KDPM2's sample, LMS's derivatives) as slot indices into six state
 * buffers, and the per-step coefficients that lib/sched's planners compute from the schedule.
 * Everything a step does to element i reads and writes element i only, so the whole step is one
 * pass over the latents — on a GPU one kernel, its inputs never leaving the device.
 *
 * Plain C structs, no pointers: they pass by value into a kernel. Compiled as C and as CUDA C++. */
#ifndef NX_SCHED_MATH_H
#define NX_SCHED_MATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define NX_SCHED_FN static __host__ __device__ __forceinline__
#else
#define NX_SCHED_FN static inline
#endif

/* Values of ngpt_prediction_type / ngpt_dpm_algorithm (nextgpt.h; sched_step.c checks they agree). */
#define NX_SCHED_PRED_EPSILON 1
#define NX_SCHED_PRED_V       2
#define NX_SCHED_PRED_SAMPLE  3
#define NX_SCHED_DPM_PP       1
#define NX_SCHED_DPM          2
#define NX_SCHED_SDE_DPM_PP   3
#define NX_SCHED_SDE_DPM      4

/* ---- DDIM: x0/eps from the model output, optional clip, then the (12) update ---- */
typedef struct nx_ddim_coef {
    int   pred;           /* NX_SCHED_PRED_* */
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

/* ---- DPM-Solver multistep: convert_model_output, then a 1st/2nd/3rd order update ---- */
typedef struct nx_dpm_coef {
    int   algo;           /* NX_SCHED_DPM_* */
    int   pred;           /* NX_SCHED_PRED_* */
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

/* ---- Euler / Euler ancestral / Heun / KDPM2 (k-diffusion): x0 from the sigma-scaled output,
 * one Euler step along the ODE derivative, plus sigma_up noise for the ancestral samplers.
 * Heun's second step averages its derivative with the first's and restarts from the first's
 * sample; KDPM2's restarts from it with its own derivative (taken at the midpoint sigma) ---- */
enum { NX_HEUN_NONE = 0, NX_HEUN_FIRST = 1, NX_HEUN_SECOND = 2, NX_KDPM2_FIRST = 3, NX_KDPM2_SECOND = 4 };
typedef struct nx_euler_coef {
    int   pred;           /* NX_SCHED_PRED_* */
    int   heun;           /* NX_HEUN_*: HEUN_FIRST saves the derivative in slot m[0], the sample in
                             m[1]; KDPM2_FIRST the sample in m[1] */
    float sigma;          /* sigma_hat (= sigma: s_churn 0); Heun's second step: sigma_next;
                             KDPM2's: the interpolated sigma */
    float dt;             /* sigmas[i+1] - sigma_hat; ancestral: sigma_down - sigma; KDPM2: the
                             interpolated sigma - sigma, then sigma_next (ancestral: sigma_down)
                             - sigma */
    float v_out;          /* v-prediction: -sigma / (sigma**2 + 1) ** 0.5 */
    float v_skip_div;     /* v-prediction: sigma**2 + 1 (the sample is divided by it) */
    float sigma_up;       /* ancestral: the noise's scale */
    bool  ancestral;
} nx_euler_coef;

/* ---- UniPC multistep, B(h) variants: convert_model_output, the corrector UniC (the previous
 * step's sample corrected with this step's output), then the predictor UniP. Each update is
 * x' = cx x - c0 m0 - cb (sum_k rho_k D1_k [+ rho_t (m_t - m0)]), D1_k = (m_k - m0) / rk_k,
 * in diffusers' order of float32 operations ---- */
typedef struct nx_unipc_coef {
    int   pred;           /* NX_SCHED_PRED_* */
    bool  x0;             /* predict_x0: the history holds x0 predictions, else noise predictions */
    float conv_alpha, conv_sigma;  /* alpha_t, sigma_t at the current timestep (conversion) */
    bool  corr;           /* UniC this step */
    int   kc, kp;         /* history terms D1 of UniC and of UniP (0-2) */
    float c_cx, c_c0, c_cb, c_rho_t;
    float c_rk[2], c_rho[2];
    float p_cx, p_c0, p_cb;
    float p_rk[2], p_rho[2];
} nx_unipc_coef;

/* ---- LMS (k-diffusion's linear multistep): Euler's derivative, then x' = x + sum_k c_k d_k over
 * the newest derivatives, the c_k integrals of Lagrange polynomials through the sigmas ---- */
typedef struct nx_lms_coef {
    int   pred;           /* NX_SCHED_PRED_* */
    float sigma, v_out, v_skip_div;  /* as nx_euler_coef's */
    int   order;          /* terms summed (1-4): this step's derivative, then e[0 .. order-2] */
    float c[4];
} nx_lms_coef;

/* ---- DDPM: x0 (clipped), then x' = c_x0 x0 + c_x x + std noise ---- */
typedef struct nx_ddpm_coef {
    int   pred;           /* NX_SCHED_PRED_* */
    float sqrt_a_t, sqrt_b_t;  /* alpha_prod_t ** 0.5, beta_prod_t ** 0.5 */
    bool  clip;
    float clip_range;
    float c_x0, c_x;      /* pred_original_sample_coeff, current_sample_coeff */
    bool  add_noise;      /* t > 0 */
    float std;            /* the variance noise's scale */
} nx_ddpm_coef;

/* ---- DEIS multistep (log-rho): the noise prediction re-derived from the x0 prediction, then
 * x' = cx x - c0 m0 (order 1, DDIM's) or x' = alpha_t (x / alpha_s0 + k0 m0 + k1 m1 [+ k2 m2]),
 * the k_j integrals of Lagrange polynomials in log rho ---- */
typedef struct nx_deis_coef {
    int   pred;           /* NX_SCHED_PRED_* */
    float conv_alpha, conv_sigma;  /* alpha_t, sigma_t at the current timestep (conversion) */
    int   order;          /* 1, 2, 3 */
    float cx, c0;         /* order 1: alpha_t / alpha_s, sigma_t (e^h - 1) */
    float alpha_t;        /* orders 2, 3 (alpha_s0 is conv_alpha) */
    float k[3];           /* orders 2, 3 */
} nx_deis_coef;

/* ---- DPM-Solver singlestep: the model output converted as DPM-Solver's; each step of a group
 * updates the sample the group started at (saved by its first step) with the group's outputs,
 * x' = cx S + c0 D0 + c1 D1 [+ c2 D2] ---- */
typedef struct nx_dpm_single_coef {
    int   pred;           /* NX_SCHED_PRED_* */
    bool  pp;             /* dpmsolver++ (x0 predictions), else dpmsolver (noise predictions) */
    int   order;          /* 1, 2, 3 */
    bool  heun;           /* solver_type heun (else midpoint) */
    bool  save;           /* order 1 at a group's start: S = x, kept in slot save_x */
    float conv_alpha, conv_sigma;
    float cx, c0, c1, c2; /* signed, as nx_dpm_coef's */
    float inv_r0, inv_r1, r0, r1, r01;  /* 1 / r0, 1 / r1, r0, r1, r0 - r1 */
} nx_dpm_single_coef;

#define NX_SCHED_SLOTS 6
enum { NX_SCHED_KIND_DDIM = 1, NX_SCHED_KIND_PNDM = 2, NX_SCHED_KIND_DPM = 3, NX_SCHED_KIND_EULER = 4,
       NX_SCHED_KIND_UNIPC = 5, NX_SCHED_KIND_LMS = 6, NX_SCHED_KIND_DEIS = 7, NX_SCHED_KIND_DDPM = 8,
       NX_SCHED_KIND_DPM_SINGLE = 9 };
enum { NX_SCHED_ACC_NONE = 0, NX_SCHED_ACC_SET = 1, NX_SCHED_ACC_ADD = 2 };

/* One step over n elements. Slot fields are indices into the six state buffers, -1 for none. */
typedef struct nx_sched_step {
    int     kind;         /* NX_SCHED_KIND_* */
    int64_t n;            /* elements of the sample */
    bool    cfg;          /* the model output is [uncond; cond] (2n): m = u + guidance (c - u) */
    float   guidance;
    bool    noise;        /* the step reads variance noise [n] */
    /* state updates, applied before the update in this order */
    int     push;         /* PNDM ets.append: slot <- m */
    int     save_x;       /* PNDM cur_sample: slot <- x */
    int     acc_mode;     /* PNDM PRK: NX_SCHED_ACC_SET acc = k m, _ADD acc = acc + k m */
    int     acc;          /* PNDM: the accumulator's slot (read by NX_PNDM_PRK_LAST) */
    float   acc_k;
    /* the update */
    int     xin;          /* PNDM: the sample the update reads (-1: x itself, else cur_sample's slot) */
    int     e[4];         /* PNDM: ets, newest first. LMS: the previous derivatives, newest first
                             (this step's goes to push) */
    int     m[3];         /* DPM, DEIS: m[0] receives this step's converted output; m[1], m[2] the previous.
                             UniPC: the previous converted outputs, newest first (this step's goes
                             to push; its sample before UniP to save_x, where UniC reads the last) */
    union {
        nx_ddim_coef ddim;
        nx_pndm_coef pndm;
        nx_dpm_coef  dpm;
        nx_euler_coef euler;
        nx_unipc_coef unipc;
        nx_lms_coef lms;
        nx_deis_coef deis;
        nx_ddpm_coef ddpm;
        nx_dpm_single_coef dpm1;
    } c;
} nx_sched_step;

NX_SCHED_FN float nx_sched_clampf(float v, float lo, float hi)
{
    /* torch.clamp: min(max(v, lo), hi) */
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* DDIM's new sample from sample x, model output m and noise. */
NX_SCHED_FN float nx_ddim_elem(const nx_ddim_coef *c, float x, float m, float noise)
{
    const float sa = c->sqrt_a_t, sb = c->sqrt_b_t, r = c->clip_range;
    float x0, e;
    switch (c->pred) {
    case NX_SCHED_PRED_SAMPLE: x0 = m; e = (x - sa * x0) / sb; break;
    case NX_SCHED_PRED_V:      x0 = sa * x - sb * m; e = sa * m + sb * x; break;
    default:                   x0 = (x - sb * m) / sa; e = m; break;
    }
    if (c->clip) x0 = nx_sched_clampf(x0, -r, r);
    if (c->use_clipped) e = (x - sa * x0) / sb;
    float prev = c->sqrt_a_prev * x0 + c->dir * e;
    if (c->add_noise) prev = prev + c->std_dev * noise;
    return prev;
}

/* PNDM's new sample from model output m, history e1..e4 (newest first), acc and sample xi. */
NX_SCHED_FN float nx_pndm_elem(const nx_pndm_coef *c, float m, float e1, float e2, float e3, float e4, float acc,
                               float xi)
{
    const float sixth = (float)(1.0 / 6.0), k24 = (float)(1.0 / 24.0);
    switch (c->combine) {
    case NX_PNDM_AVG2: m = (m + e1) / 2.0f; break;
    case NX_PNDM_AB2:  m = (3.0f * e1 - e2) / 2.0f; break;
    case NX_PNDM_AB3:  m = (23.0f * e1 - 16.0f * e2 + 5.0f * e3) / 12.0f; break;
    case NX_PNDM_AB4:  m = k24 * (55.0f * e1 - 59.0f * e2 + 37.0f * e3 - 9.0f * e4); break;
    case NX_PNDM_PRK_LAST: m = acc + sixth * m; break;
    default: break;
    }
    if (c->v_pred) m = c->sqrt_a_t * m + c->sqrt_b_t * xi;
    return c->sample_coeff * xi - (c->diff * m) / c->denom;
}

/* convert_model_output of DPM-Solver and UniPC: the x0 prediction (x0) or the noise prediction
 * from model output mo and sample x, alpha a and sigma s at the step's timestep. */
NX_SCHED_FN float nx_sched_convert(int pred, bool x0, float a, float s, float x, float mo)
{
    if (x0) {
        switch (pred) {
        case NX_SCHED_PRED_SAMPLE: return mo;
        case NX_SCHED_PRED_V:      return a * x - s * mo;
        default:                   return (x - s * mo) / a;
        }
    }
    switch (pred) {
    case NX_SCHED_PRED_SAMPLE: return (x - a * mo) / s;
    case NX_SCHED_PRED_V:      return a * mo + s * x;
    default:                   return mo;
    }
}

/* DDPM's new sample from sample x, model output m and noise. */
NX_SCHED_FN float nx_ddpm_elem(const nx_ddpm_coef *c, float x, float m, float noise)
{
    float x0 = nx_sched_convert(c->pred, true, c->sqrt_a_t, c->sqrt_b_t, x, m);
    if (c->clip) x0 = nx_sched_clampf(x0, -c->clip_range, c->clip_range);
    float prev = c->c_x0 * x0 + c->c_x * x;
    if (c->add_noise) prev = prev + c->std * noise;
    return prev;
}

/* DPM-Solver's new sample from sample x and model output mo; *m0 receives the converted output,
 * m1/m2 are the previous ones (read when order >= 2 / 3). */
NX_SCHED_FN float nx_dpm_elem(const nx_dpm_coef *c, float x, float mo, float *m0_out, float m1, float m2,
                              float noise)
{
    const bool pp = c->algo == NX_SCHED_DPM_PP || c->algo == NX_SCHED_SDE_DPM_PP;
    const bool sde = c->algo == NX_SCHED_SDE_DPM_PP || c->algo == NX_SCHED_SDE_DPM;
    const float m0 = nx_sched_convert(c->pred, pp, c->conv_alpha, c->conv_sigma, x, mo);
    *m0_out = m0;
    float r = c->cx * x + c->c0 * m0;
    if (c->order == 2) {
        const float d1 = c->inv_r0 * (m0 - m1);
        r = r + c->c1 * d1;
    } else if (c->order == 3) {
        const float d10 = c->inv_r0 * (m0 - m1);
        const float d11 = c->inv_r1 * (m1 - m2);
        const float d1 = d10 + c->r0_r01 * (d10 - d11);
        const float d2 = c->inv_r01 * (d10 - d11);
        r = r + c->c1 * d1;
        r = r + c->c2 * d2;
    }
    if (sde) r = r + c->cn * noise;
    return r;
}

/* DPM-Solver singlestep's new sample from sample x and model output mo; *m0_out receives the
 * converted output, m1/m2 are the group's earlier ones, *S its start sample. */
NX_SCHED_FN float nx_dpm_single_elem(const nx_dpm_single_coef *c, float x, float mo, float *m0_out, float m1, float m2,
                                     float *S)
{
    const float m0 = nx_sched_convert(c->pred, c->pp, c->conv_alpha, c->conv_sigma, x, mo);
    *m0_out = m0;
    if (c->save) *S = x;
    const float s = *S;
    if (c->order == 1) return c->cx * s + c->c0 * m0;
    if (c->order == 2) {
        const float d1 = c->inv_r0 * (m0 - m1);
        float r = c->cx * s + c->c0 * m1;
        return r + c->c1 * d1;
    }
    const float d1_0 = c->inv_r1 * (m1 - m2), d1_1 = c->inv_r0 * (m0 - m2);
    float r = c->cx * s + c->c0 * m2;
    if (!c->heun) return r + c->c1 * d1_1;
    const float d1 = (c->r0 * d1_0 - c->r1 * d1_1) / c->r01;
    const float d2 = 2.0f * (d1_1 - d1_0) / c->r01;
    r = r + c->c1 * d1;
    return r + c->c2 * d2;
}

/* The ODE derivative (x - x0) / sigma of Euler, Heun and LMS, x0 from the sigma-scaled output. */
NX_SCHED_FN float nx_kdiff_derivative(int pred, float sigma, float v_out, float v_skip_div, float x, float m)
{
    float x0;
    switch (pred) {
    case NX_SCHED_PRED_SAMPLE: x0 = m; break;
    case NX_SCHED_PRED_V:      x0 = m * v_out + x / v_skip_div; break;
    default:                   x0 = x - sigma * m; break;
    }
    return (x - x0) / sigma;
}

/* Euler's new sample from sample x, model output m and noise, in diffusers' order of float32
 * tensor operations (pred_original_sample, then derivative = (x - x0) / sigma_hat). Heun: deriv
 * and saved are the element's two state slots; KDPM2: saved is its one. */
NX_SCHED_FN float nx_euler_elem(const nx_euler_coef *c, float x, float m, float noise, float *deriv, float *saved)
{
    float d = nx_kdiff_derivative(c->pred, c->sigma, c->v_out, c->v_skip_div, x, m);
    if (c->heun == NX_HEUN_FIRST) {
        *deriv = d;
        *saved = x;
    } else if (c->heun == NX_HEUN_SECOND) {
        d = (*deriv + d) / 2.0f;
        x = *saved;
    } else if (c->heun == NX_KDPM2_FIRST) {
        *saved = x;
    } else if (c->heun == NX_KDPM2_SECOND) {
        x = *saved;
    }
    float prev = x + d * c->dt;
    if (c->ancestral) prev = prev + noise * c->sigma_up;
    return prev;
}

/* einsum("k,bk...->b...", rho, D1s) for k terms, as torch 1.13 sums them on small tensors (on
 * large ones its BLAS path fuses the second product: the sums can differ in the last bit) */
NX_SCHED_FN float nx_unipc_res(int k, const float *rho, const float *rk, const float *hist, float m0)
{
    float r = rho[0] * ((hist[0] - m0) / rk[0]);
    if (k == 2) r = r + rho[1] * ((hist[1] - m0) / rk[1]);
    return r;
}

/* UniPC's new sample from sample x and model output mo; hist: the previous converted outputs,
 * newest first; last: the previous step's sample before UniP (read with c->corr). *m_out and
 * *x_out receive this step's converted output and its sample before UniP. */
NX_SCHED_FN float nx_unipc_elem(const nx_unipc_coef *c, float x, float mo, const float *hist, float last,
                                float *m_out, float *x_out)
{
    const float mt = nx_sched_convert(c->pred, c->x0, c->conv_alpha, c->conv_sigma, x, mo);
    if (c->corr) {  /* multistep_uni_c_bh_update(mt, t, last, x, previous order) */
        const float m0 = hist[0];
        const float xt = c->c_cx * last - c->c_c0 * m0;
        const float res = c->kc ? nx_unipc_res(c->kc, c->c_rho, c->c_rk, hist + 1, m0) : 0.0f;
        x = xt - c->c_cb * (res + c->c_rho_t * (mt - m0));
    }
    *m_out = mt;
    *x_out = x;
    /* multistep_uni_p_bh_update: m0 is now mt, the older outputs hist[0], hist[1] */
    const float xt = c->p_cx * x - c->p_c0 * mt;
    const float res = c->kp ? nx_unipc_res(c->kp, c->p_rho, c->p_rk, hist, mt) : 0.0f;
    return xt - c->p_cb * res;
}

/* LMS's new sample from sample x, model output m and the previous derivatives (newest first);
 * *d_out receives this step's. diffusers sums sum(c * d for ...) from the integer 0. */
NX_SCHED_FN float nx_lms_elem(const nx_lms_coef *c, float x, float m, const float *prev, float *d_out)
{
    const float d = nx_kdiff_derivative(c->pred, c->sigma, c->v_out, c->v_skip_div, x, m);
    *d_out = d;
    float sum = 0.0f + c->c[0] * d;
    for (int k = 1; k < c->order; k++) sum = sum + c->c[k] * prev[k - 1];
    return x + sum;
}

/* DEIS's new sample from sample x and model output mo; *m0_out receives the converted output (a
 * noise prediction), m1/m2 are the previous ones (read at order 2 / 3). */
NX_SCHED_FN float nx_deis_elem(const nx_deis_coef *c, float x, float mo, float *m0_out, float m1, float m2)
{
    const float x0 = nx_sched_convert(c->pred, true, c->conv_alpha, c->conv_sigma, x, mo);
    const float m0 = (x - c->conv_alpha * x0) / c->conv_sigma;
    *m0_out = m0;
    if (c->order == 1) return c->cx * x - c->c0 * m0;
    float r = x / c->conv_alpha + c->k[0] * m0;  /* sample / alpha_s0 */
    r = r + c->k[1] * m1;
    if (c->order == 3) r = r + c->k[2] * m2;
    return c->alpha_t * r;
}

/* The whole step for element i: eps the model output ([n], or [2n] with cfg), x the sample
 * (updated in place), noise [n] (read when p->noise), slot the six state buffers. */
NX_SCHED_FN void nx_sched_elem(const nx_sched_step *p, const float *eps, float *x, const float *noise,
                               float *const *slot, int64_t i)
{
    float m = eps[i];
    if (p->cfg) m = m + p->guidance * (eps[p->n + i] - m);
    const float xi = x[i];
    const float nz = p->noise ? noise[i] : 0.0f;
    if (p->kind == NX_SCHED_KIND_DDIM) {
        x[i] = nx_ddim_elem(&p->c.ddim, xi, m, nz);
        return;
    }
    if (p->kind == NX_SCHED_KIND_DDPM) {
        x[i] = nx_ddpm_elem(&p->c.ddpm, xi, m, nz);
        return;
    }
    if (p->kind == NX_SCHED_KIND_EULER) {
        x[i] = nx_euler_elem(&p->c.euler, xi, m, nz, p->m[0] >= 0 ? &slot[p->m[0]][i] : NULL,
                             p->m[1] >= 0 ? &slot[p->m[1]][i] : NULL);
        return;
    }
    if (p->kind == NX_SCHED_KIND_UNIPC) {
        /* every read before the writes: push may be the oldest history slot, which UniC reads */
        float hist[3];
        for (int j = 0; j < 3; j++) hist[j] = p->m[j] >= 0 ? slot[p->m[j]][i] : 0.0f;
        const float last = p->c.unipc.corr ? slot[p->save_x][i] : 0.0f;
        float mt, xc;
        x[i] = nx_unipc_elem(&p->c.unipc, xi, m, hist, last, &mt, &xc);
        slot[p->push][i] = mt;
        slot[p->save_x][i] = xc;
        return;
    }
    if (p->kind == NX_SCHED_KIND_LMS) {
        float prev[3];
        for (int j = 0; j < 3; j++) prev[j] = p->e[j] >= 0 ? slot[p->e[j]][i] : 0.0f;
        float d;
        x[i] = nx_lms_elem(&p->c.lms, xi, m, prev, &d);
        slot[p->push][i] = d;
        return;
    }
    if (p->kind == NX_SCHED_KIND_DEIS) {
        x[i] = nx_deis_elem(&p->c.deis, xi, m, &slot[p->m[0]][i], p->m[1] >= 0 ? slot[p->m[1]][i] : 0.0f,
                            p->m[2] >= 0 ? slot[p->m[2]][i] : 0.0f);
        return;
    }
    if (p->kind == NX_SCHED_KIND_DPM_SINGLE) {
        x[i] = nx_dpm_single_elem(&p->c.dpm1, xi, m, &slot[p->m[0]][i], p->m[1] >= 0 ? slot[p->m[1]][i] : 0.0f,
                                  p->m[2] >= 0 ? slot[p->m[2]][i] : 0.0f, &slot[p->save_x][i]);
        return;
    }
    if (p->kind == NX_SCHED_KIND_DPM) {
        x[i] = nx_dpm_elem(&p->c.dpm, xi, m, &slot[p->m[0]][i], p->m[1] >= 0 ? slot[p->m[1]][i] : 0.0f,
                           p->m[2] >= 0 ? slot[p->m[2]][i] : 0.0f, nz);
        return;
    }
    if (p->push >= 0) slot[p->push][i] = m;
    if (p->save_x >= 0) slot[p->save_x][i] = xi;
    if (p->acc_mode == NX_SCHED_ACC_SET) slot[p->acc][i] = p->acc_k * m;
    else if (p->acc_mode == NX_SCHED_ACC_ADD) slot[p->acc][i] = slot[p->acc][i] + p->acc_k * m;
    const float e1 = p->e[0] >= 0 ? slot[p->e[0]][i] : 0.0f, e2 = p->e[1] >= 0 ? slot[p->e[1]][i] : 0.0f;
    const float e3 = p->e[2] >= 0 ? slot[p->e[2]][i] : 0.0f, e4 = p->e[3] >= 0 ? slot[p->e[3]][i] : 0.0f;
    const float acc = p->acc >= 0 ? slot[p->acc][i] : 0.0f;
    const float xin = p->xin >= 0 ? slot[p->xin][i] : xi;
    x[i] = nx_pndm_elem(&p->c.pndm, m, e1, e2, e3, e4, acc, xin);
}

#endif
