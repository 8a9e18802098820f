/* sched_unipc.c — UniPC multistep's step (scheduling_unipc_multistep.py, B(h) variants): the
 * corrector UniC and the predictor UniP, their coefficients from a small linear solve copied from
 * torch.linalg.solve.
 */
#include "sched_impl.h"
#include "../core/alloc.h"
#include "../core/error.h"

#include <math.h>

/* torch.linalg.solve(A, b) in float32 for n <= 3 as torch 1.13 on OpenBLAS 0.3.21 computes it
 * (bit for bit on 2000 random systems of UniPC's form, each way). The LU factors come from LAPACK's
 * getf2 (left-looking: each column updated by dot products, the pivot the first largest
 * magnitude, the column below scaled by the pivot's reciprocal). torch factors A^T when A is
 * contiguous and solves (A^T)^T x = b (U^T forward, L^T backward, the row swaps undone last);
 * a sliced A (UniP's R[:-1, :-1]) is factored itself and solved as L U x = P b. Sums of products
 * are float32 without fusing (OpenBLAS's sdot accumulates float products in double, which for
 * two terms rounds the same). */
static void solve_f32(int n, const float A[3][3], bool contiguous, const float *b, float *x)
{
    float lu[3][3];  /* lu[r][c]: row r, column c of the factored matrix */
    int piv[3];
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) lu[r][c] = contiguous ? A[c][r] : A[r][c];
    for (int j = 0; j < n; j++) {
        float col[3];
        for (int i = 0; i < n; i++) col[i] = lu[i][j];
        for (int i = 0; i < j; i++)
            if (piv[i] != i) { const float t = col[i]; col[i] = col[piv[i]]; col[piv[i]] = t; }
        for (int i = 1; i < n; i++) {  /* rows above j: L's triangle; from j on: the rest */
            float d = 0.0f;
            for (int k = 0; k < (i < j ? i : j); k++) d = d + lu[i][k] * col[k];
            col[i] = col[i] - d;
        }
        int jp = j;
        for (int i = j + 1; i < n; i++)
            if (fabsf(col[i]) > fabsf(col[jp])) jp = i;
        piv[j] = jp;
        for (int i = 0; i < n; i++) lu[i][j] = col[i];
        if (jp != j)
            for (int k = 0; k <= j; k++) { const float t = lu[j][k]; lu[j][k] = lu[jp][k]; lu[jp][k] = t; }
        if (lu[j][j] != 0.0f) {
            const float r = 1.0f / lu[j][j];
            for (int i = j + 1; i < n; i++) lu[i][j] = lu[i][j] * r;
        }
    }
    if (contiguous) {
        for (int i = 0; i < n; i++) {  /* U^T y = b */
            float d = 0.0f;
            for (int k = 0; k < i; k++) d = d + lu[k][i] * x[k];
            x[i] = (b[i] - d) / lu[i][i];
        }
        for (int i = n - 2; i >= 0; i--) {  /* L^T z = y (unit diagonal) */
            float d = 0.0f;
            for (int k = i + 1; k < n; k++) d = d + lu[k][i] * x[k];
            x[i] = x[i] - d;
        }
        for (int i = n - 1; i >= 0; i--)
            if (piv[i] != i) { const float t = x[i]; x[i] = x[piv[i]]; x[piv[i]] = t; }
        return;
    }
    for (int i = 0; i < n; i++) x[i] = b[i];
    for (int i = 0; i < n; i++)
        if (piv[i] != i) { const float t = x[i]; x[i] = x[piv[i]]; x[piv[i]] = t; }
    for (int i = 0; i < n; i++)  /* L y = P b, column by column (axpy) */
        for (int k = i + 1; k < n; k++) x[k] = x[k] + -x[i] * lu[k][i];
    for (int i = n - 1; i >= 0; i--) {  /* U x = y */
        x[i] = x[i] / lu[i][i];
        for (int k = 0; k < i; k++) x[k] = x[k] + -x[i] * lu[k][i];
    }
}

/* One UniPC update (multistep_uni_p_bh_update, or with corrector multistep_uni_c_bh_update) of
 * `order` from timestep s0 to t, the older outputs at older[0 .. order-2]: the coefficients of
 * x' = cx x - c0 m0 - cb (sum_k rho_k (m_k - m0) / rk_k [+ rho_t (m_t - m0)]). */
static void unipc_update(const ngpt_scheduler *s, int order, bool corrector, int64_t s0, const int64_t *older, int64_t t,
                         float *cx, float *c0, float *cb, float *rk, float *rho, float *rho_t, int *k)
{
    const float lam_t = s->lambda_t[t], lam_s0 = s->lambda_t[s0];
    const float alpha_t = s->alpha_t[t], alpha_s0 = s->alpha_t[s0];
    const float sigma_t = s->sigma_t[t], sigma_s0 = s->sigma_t[s0];
    const float h = lam_t - lam_s0;
    const bool x0 = s->predict_x0;
    *cx = x0 ? sigma_t / sigma_s0 : alpha_t / alpha_s0;
    const float hh = x0 ? -h : h;
    /* torch.expm1 is SIMD code (Sleef's), correctly rounded in 99.8% of float32 arguments, where
     * glibc's expm1f is in 89%: the double result rounded follows torch more often */
    const float h_phi_1 = (float)expm1((double)hh);
    const float B_h = s->bh2 ? h_phi_1 : hh;
    *c0 = (x0 ? alpha_t : sigma_t) * h_phi_1;
    *cb = (x0 ? alpha_t : sigma_t) * B_h;
    *k = order - 1;
    if (h == 0.0f) {
        /* two timesteps with one noise level: diffusers divides 0 by 0 (NaN latents); the
         * update's limit as h -> 0 drops the B(h) term (rk grows without bound, B(h) vanishes) */
        *cb = 0.0f;
        *rho_t = 0.0f;
        *k = 0;
        return;
    }
    float rks[3] = {0}, R[3][3] = {{0}}, b[3] = {0};
    for (int i = 0; i < order - 1; i++) rks[i] = rk[i] = (s->lambda_t[older[i]] - lam_s0) / h;
    rks[order - 1] = 1.0f;
    float h_phi_k = h_phi_1 / hh - 1.0f;
    int factorial = 1;
    for (int i = 1; i <= order; i++) {
        for (int c = 0; c < order; c++) R[i - 1][c] = i == 1 ? 1.0f : i == 2 ? rks[c] : rks[c] * rks[c];
        b[i - 1] = h_phi_k * (float)factorial / B_h;
        factorial *= i + 1;
        h_phi_k = h_phi_k / hh - (float)(1.0 / factorial);
    }
    if (corrector) {
        float r[3];
        if (order == 1) r[0] = 0.5f;
        else solve_f32(order, (const float(*)[3])R, true, b, r);
        for (int i = 0; i < order - 1; i++) rho[i] = r[i];
        *rho_t = r[order - 1];
    } else if (order == 2) {
        rho[0] = 0.5f;
    } else if (order == 3) {
        solve_f32(2, (const float(*)[3])R, false, b, rho);  /* R[:-1, :-1], b[:-1]: a view */
    }
}

static bool corrector_disabled(const ngpt_scheduler *s, int64_t step)
{
    for (size_t i = 0; i < s->n_disable; i++)
        if (s->disable_corrector[i] == step) return true;
    return false;
}

/* UniPCMultistepScheduler.step at schedule index idx: slots 0 .. order-1 hold model_outputs, slot
 * order last_sample. */
ngpt_status nx_sched_plan_unipc(ngpt_scheduler *s, int64_t t, size_t idx, nx_sched_step *p)
{
    nx_unipc_coef *c = &p->c.unipc;
    c->pred = s->pred;
    c->x0 = s->predict_x0;
    c->conv_alpha = s->alpha_t[t];
    c->conv_sigma = s->sigma_t[t];
    for (int j = 0; j < 3; j++) p->m[j] = s->mo[j];  /* -1 where the history is shorter */
    p->save_x = s->order;
    /* last_sample is set once a step has run since set_timesteps / reset */
    c->corr = idx > 0 && !corrector_disabled(s, (int64_t)idx - 1) && s->mo[0] >= 0;
    if (c->corr)  /* from the previous timestep to this one, at the previous step's order */
        unipc_update(s, s->this_order, true, s->mo_t[0], &s->mo_t[1], t, &c->c_cx, &c->c_c0, &c->c_cb, c->c_rk,
                     c->c_rho, &c->c_rho_t, &c->kc);
    p->push = nx_sched_mo_push(s, t);
    const size_t last = s->n_ts - 1;
    int order = s->lower_order_final && (size_t)s->order > s->n_ts - idx ? (int)(s->n_ts - idx) : s->order;
    if (order > s->lower_order_nums + 1) order = s->lower_order_nums + 1;
    s->this_order = order;
    const int64_t prev_t = idx == last ? 0 : s->ts[idx + 1];
    float rho_t_unused;
    unipc_update(s, order, false, t, &s->mo_t[1], prev_t, &c->p_cx, &c->p_c0, &c->p_cb, c->p_rk, c->p_rho,
                 &rho_t_unused, &c->kp);
    if (s->lower_order_nums < s->order) s->lower_order_nums++;
    return NGPT_OK;
}