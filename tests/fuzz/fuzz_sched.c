/* fuzz_sched.c — scheduler_config.json text (diffusers' DDIM, PNDM, DPM-Solver, Euler, Heun,
 * UniPC, LMS, KDPM2 keys; kinds past UniPC through _class_name) and the caller's overrides, then a whole denoising loop. A config that is accepted must give
 * timesteps inside the training range and, with a proper noise schedule (every beta in (0, 1)),
 * finite samples. */
#include "fuzz.h"

#include <math.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngpt_scheduler_params p;
    ngpt_scheduler_params_default(&p, sizeof p);
    p.kind = (ngpt_scheduler_kind)(fuzz_take(&data, &size, 1) % 8); /* (an unknown kind: test_sched) */
    const uint32_t o = fuzz_take(&data, &size, 1);
    p.prediction_type = (ngpt_prediction_type)(o % 4);
    p.algorithm_type = (ngpt_dpm_algorithm)(o / 4 % 5);
    p.solver_type = (ngpt_dpm_solver_type)(o / 20 % 3); /* (UniPC: bh1; its bh2 is the config default) */
    p.solver_order = (int32_t)(o / 60 % 5); /* 4 is out of range: refused */
    const uint32_t e = fuzz_take(&data, &size, 1);
    p.eta = e & 1 ? (float)(e >> 1) / 64.0f : 0.0f;
    p.use_clipped_model_output = (int32_t)(e >> 7);
    const int32_t steps = (int32_t)(fuzz_take(&data, &size, 2) % 1100);

    const int64_t blocks = nx_alloc_blocks();
    ngpt_scheduler *s = NULL;
    ngpt_status st = ngpt_scheduler_create_from_json(&s, (const char *)data, size, &p);
    fuzz_status("ngpt_scheduler_create_from_json", st);
    if (s) {
        const float *acp = NULL;
        size_t n_train = 0;
        FUZZ_REQUIRE(ngpt_scheduler_alphas_cumprod(s, &acp, &n_train) == NGPT_OK && n_train > 0, "no alphas_cumprod");
        bool sane = true;
        /* a zero beta makes alphas_cumprod reach 1 (1 - acp vanishes) or repeat (two timesteps with
         * one noise level, DPM-Solver's step h = 0): DDIM with eta > 0 and DPM-Solver divide by
         * those and give NaN, as diffusers does on the same config. Sane: every beta in (0, 1). */
        for (size_t i = 0; i < n_train; i++) sane &= acp[i] > 0.0f && acp[i] < 1.0f && (i == 0 || acp[i] < acp[i - 1]);
        /* Finite samples are promised only where the schedule's noise-to-signal ratio
         * sqrt((1 - acp) / acp) stays below 500 (SD's ends at 14.6): this eps (0.1 x) feeds the
         * sample back into itself, and beyond that the samplers' float32 arithmetic overflows in
         * diffusers too. DDIM and PNDM multiply the sample by sqrt(acp_prev / acp), up to 1e22 when
         * acp ends in float32's denormals (PNDM's Runge-Kutta warm-up: inf from 7 steps of a
         * 38198-step schedule, corpus pndm-prk-tiny-alpha); the k-diffusion samplers are not
         * variance preserving, the sample grows with sigma and each step scales it by up to
         * 1 + 0.1 |dt|. (An infinite sigma gives NaN Karras timesteps: refused.) */
        const float acp_min = acp[n_train - 1];
        sane &= sqrtf((1.0f - acp_min) / acp_min) <= 500.0f;
        st = ngpt_scheduler_set_timesteps(s, steps);
        fuzz_status("ngpt_scheduler_set_timesteps", st);
        /* PNDM's Runge-Kutta warm-up needs 4 steps (diffusers fails below that) */
        const bool prk_short = ngpt_scheduler_get_kind(s) == NGPT_SCHEDULER_PNDM && steps < 4;
        /* Refusals named by their cause: a steps_offset that pushes DDIM's or PNDM's largest
         * timestep past the schedule (diffusers: IndexError), and Karras sigmas that are not finite
         * (alphas_cumprod so small that 1 / acp overflows float32; diffusers: NaN timesteps) */
        const bool named = st == NGPT_ERR_INVALID_ARGUMENT &&
                           (strstr(ngpt_last_error(), "steps_offset") || strstr(ngpt_last_error(), "unusable"));
        FUZZ_REQUIRE(st == NGPT_OK || steps < 1 || (size_t)steps > n_train || prk_short || !sane || named,
                     "%d of %zu steps refused: %s", steps, n_train, ngpt_last_error());
        const double *ts = NULL;
        size_t nts = 0;
        if (st == NGPT_OK && ngpt_scheduler_timesteps_f64(s, &ts, &nts) == NGPT_OK) {
            float x[8] = {1, -1, 0.5f, 0, 2, -2, 0.25f, 1}, eps[8], noise[8];
            for (size_t k = 0; k < nts; k++) {
                /* a negative steps_offset gives python-style negative indices, down to -T */
                FUZZ_REQUIRE(ts[k] >= -(double)n_train && ts[k] < (double)n_train, "timestep %g outside [-%zu, %zu)",
                             ts[k], n_train, n_train);
                for (int i = 0; i < 8; i++) eps[i] = 0.1f * x[i] + 0.05f * (float)(i - 4), noise[i] = 0.3f * (float)(4 - i);
                st = ngpt_scheduler_step_f64(s, eps, ts[k], x, 8, noise);
                fuzz_status("ngpt_scheduler_step", st);
                if (st != NGPT_OK) break;
                for (int i = 0; i < 8 && sane && isfinite(p.eta); i++)
                    FUZZ_REQUIRE(isfinite(x[i]), "step %zu (t=%g): sample %d is %g", k, ts[k], i, x[i]);
            }
        }
        ngpt_scheduler_free(s);
    }
    fuzz_no_leak("scheduler", blocks);
    return 0;
}
