/* sched_step.c — the elementwise halves of the scheduler steps: pure functions of per-step scalar
 * coefficients (computed in sched.c) and float arrays. Each expression is evaluated in the order
 * diffusers 0.17 evaluates it on float32 tensors, so results match it to the last bit or so. */
#include "sched.h"

#include <math.h>

static inline float clampf(float v, float lo, float hi)
{
    /* torch.clamp: min(max(v, lo), hi) */
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

void nx_ddim_apply(const nx_ddim_coef *c, const float *model_output, float *sample, const float *noise, size_t n)
{
    const float sa = c->sqrt_a_t, sb = c->sqrt_b_t, r = c->clip_range;
    for (size_t i = 0; i < n; i++) {
        const float x = sample[i], m = model_output[i];
        float x0, e;
        switch (c->pred) {
        case NGPT_PREDICTION_SAMPLE: x0 = m; e = (x - sa * x0) / sb; break;
        case NGPT_PREDICTION_V:      x0 = sa * x - sb * m; e = sa * m + sb * x; break;
        default:                     x0 = (x - sb * m) / sa; e = m; break;
        }
        if (c->clip) x0 = clampf(x0, -r, r);
        if (c->use_clipped) e = (x - sa * x0) / sb;
        float prev = c->sqrt_a_prev * x0 + c->dir * e;
        if (c->add_noise) prev = prev + c->std_dev * noise[i];
        sample[i] = prev;
    }
}

void nx_pndm_apply(const nx_pndm_coef *c, const float *model_output, const float *const e[4], const float *acc,
                   const float *x, float *out, size_t n)
{
    const float sixth = (float)(1.0 / 6.0), k24 = (float)(1.0 / 24.0);
    for (size_t i = 0; i < n; i++) {
        float m = model_output[i];
        switch (c->combine) {
        case NX_PNDM_AVG2: m = (m + e[0][i]) / 2.0f; break;
        case NX_PNDM_AB2:  m = (3.0f * e[0][i] - e[1][i]) / 2.0f; break;
        case NX_PNDM_AB3:  m = (23.0f * e[0][i] - 16.0f * e[1][i] + 5.0f * e[2][i]) / 12.0f; break;
        case NX_PNDM_AB4:
            m = k24 * (55.0f * e[0][i] - 59.0f * e[1][i] + 37.0f * e[2][i] - 9.0f * e[3][i]);
            break;
        case NX_PNDM_PRK_LAST: m = acc[i] + sixth * m; break;
        default: break;
        }
        const float xi = x[i];
        if (c->v_pred) m = c->sqrt_a_t * m + c->sqrt_b_t * xi;
        out[i] = c->sample_coeff * xi - (c->diff * m) / c->denom;
    }
}

void nx_dpm_apply(const nx_dpm_coef *c, const float *model_output, float *const m[3], float *sample,
                  const float *noise, size_t n)
{
    const bool pp = c->algo == NGPT_DPM_DPMSOLVER_PP || c->algo == NGPT_DPM_SDE_DPMSOLVER_PP;
    const bool sde = c->algo == NGPT_DPM_SDE_DPMSOLVER_PP || c->algo == NGPT_DPM_SDE_DPMSOLVER;
    const float a = c->conv_alpha, s = c->conv_sigma;
    for (size_t i = 0; i < n; i++) {
        const float x = sample[i], mo = model_output[i];
        float m0;
        if (pp) {  /* convert_model_output -> x0_pred */
            switch (c->pred) {
            case NGPT_PREDICTION_SAMPLE: m0 = mo; break;
            case NGPT_PREDICTION_V:      m0 = a * x - s * mo; break;
            default:                     m0 = (x - s * mo) / a; break;
            }
        } else {   /* -> epsilon */
            switch (c->pred) {
            case NGPT_PREDICTION_SAMPLE: m0 = (x - a * mo) / s; break;
            case NGPT_PREDICTION_V:      m0 = a * mo + s * x; break;
            default:                     m0 = mo; break;
            }
        }
        m[0][i] = m0;
        float r = c->cx * x + c->c0 * m0;
        if (c->order == 2) {
            const float d1 = c->inv_r0 * (m0 - m[1][i]);
            r = r + c->c1 * d1;
        } else if (c->order == 3) {
            const float d10 = c->inv_r0 * (m0 - m[1][i]);
            const float d11 = c->inv_r1 * (m[1][i] - m[2][i]);
            const float d1 = d10 + c->r0_r01 * (d10 - d11);
            const float d2 = c->inv_r01 * (d10 - d11);
            r = r + c->c1 * d1;
            r = r + c->c2 * d2;
        }
        if (sde) r = r + c->cn * noise[i];
        sample[i] = r;
    }
}
