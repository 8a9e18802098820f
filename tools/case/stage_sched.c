/* stage_sched.c — the scheduler stages: params = the diffusers scheduler config plus
 * num_inference_steps (and eta for DDIM); inputs sample0 [S...], model_outputs [T, S...] and,
 * where the scheduler draws noise (our own cases: DDPM, DDIM with eta > 0, SDE DPM-Solver, Euler
 * ancestral, KDPM2 ancestral), variance_noise [T, S...]; outputs timesteps I64 [T] (the k-diffusion
 * stages — Euler, Euler ancestral, Heun, LMS, KDPM2, KDPM2 ancestral: F64),
 * samples F32 [T, S...] (the sample after each step), alphas_cumprod F32 [num_train_timesteps];
 * the k-diffusion stages also init_noise_sigma F32 [1] and model_inputs F32 [T, S...] (each step's
 * scale_model_input of the sample). */
#include "stage_sched.h"
#include "core/alloc.h"

#include <string.h>

static ngpt_status run(const case_ctx *c, case_out *out, ngpt_scheduler_kind kind)
{
    ngpt_scheduler_params p;
    ngpt_scheduler_params_default(&p, sizeof p);
    p.kind = kind;
    int64_t steps;
    NX_TRY(nx_json_int(c->params, "num_inference_steps", "case.json params", &steps));
    double eta = 0;
    NX_TRY(nx_json_num_opt(c->params, "eta", "case.json params", 0.0, &eta));
    p.eta = (float)eta;
    bool clipped = false;
    NX_TRY(nx_json_bool_opt(c->params, "use_clipped_model_output", "case.json params", false, &clipped));
    p.use_clipped_model_output = clipped;

    char *cfg = json_dumps(c->params, JSON_COMPACT);
    if (!cfg) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot serialise params", c->case_dir);
    ngpt_scheduler *s = NULL;
    ngpt_status st = ngpt_scheduler_create_from_json(&s, cfg, strlen(cfg), &p);
    free(cfg);  /* jansson's allocator */
    if (st != NGPT_OK) return st;

    const bool euler = kind == NGPT_SCHEDULER_EULER || kind == NGPT_SCHEDULER_EULER_ANCESTRAL || kind == NGPT_SCHEDULER_HEUN ||
                       kind == NGPT_SCHEDULER_LMS || kind == NGPT_SCHEDULER_KDPM2 || kind == NGPT_SCHEDULER_KDPM2_ANCESTRAL;
    float *x = NULL, *mo = NULL, *noise = NULL, *samples = NULL, *inputs = NULL;
    int rx, rm, rn;
    int64_t sx[NGPT_MAX_DIMS], sm[NGPT_MAX_DIMS], sn[NGPT_MAX_DIMS];
    const double *ts;
    size_t T;
    if ((st = ngpt_scheduler_set_timesteps(s, (int32_t)steps)) != NGPT_OK) goto done;
    if ((st = ngpt_scheduler_timesteps_f64(s, &ts, &T)) != NGPT_OK) goto done;
    if ((st = case_input_f32(c, "sample0", &x, &rx, sx)) != NGPT_OK) goto done;
    if ((st = case_input_f32(c, "model_outputs", &mo, &rm, sm)) != NGPT_OK) goto done;
    size_t n = 1;
    for (int i = 0; i < rx; i++) n *= (size_t)sx[i];
    if (rm != rx + 1 || (size_t)sm[0] != T || rx + 1 > NGPT_MAX_DIMS) {
        st = nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: model_outputs must be [%zu, sample0 shape] (rank %d), got rank %d "
                    "with %lld rows", c->case_dir, T, rx + 1, rm, (long long)sm[0]);
        goto done;
    }
    for (int i = 0; i < rx; i++)
        if (sm[i + 1] != sx[i]) { st = nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: model_outputs dim %d is %lld, sample0 has %lld",
                                              c->case_dir, i + 1, (long long)sm[i + 1], (long long)sx[i]); goto done; }
    if (c->inputs && nx_weights_find(c->inputs, "variance_noise")) {
        if ((st = case_input_f32(c, "variance_noise", &noise, &rn, sn)) != NGPT_OK) goto done;
        size_t nn = 1;
        for (int i = 0; i < rn; i++) nn *= (size_t)sn[i];
        if (nn != T * n) { st = nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: variance_noise must have %zu x %zu elements", c->case_dir, T, n); goto done; }
    }
    samples = nx_malloc(((T * n) > 0 ? T * n : 1) * sizeof *samples);
    inputs = nx_malloc(((T * n) > 0 ? T * n : 1) * sizeof *inputs);
    if (!samples || !inputs) { st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: samples", c->case_dir); goto done; }
    const float sigma0 = ngpt_scheduler_init_noise_sigma(s);
    for (size_t k = 0; k < T; k++) {
        memcpy(inputs + k * n, x, n * sizeof *x);
        if ((st = ngpt_scheduler_scale_model_input_f64(s, inputs + k * n, n, ts[k])) != NGPT_OK) goto done;
        if ((st = ngpt_scheduler_step_f64(s, mo + k * n, ts[k], x, n, noise ? noise + k * n : NULL)) != NGPT_OK) goto done;
        memcpy(samples + k * n, x, n * sizeof *x);
    }
    int64_t shape[NGPT_MAX_DIMS];
    shape[0] = (int64_t)T;
    for (int i = 0; i < rx; i++) shape[i + 1] = sx[i];
    if (euler) {
        int64_t one[1] = {1};
        if ((st = case_out_add(out, "timesteps", NGPT_DTYPE_F64, 1, shape, ts)) != NGPT_OK) goto done;
        if ((st = case_out_add(out, "init_noise_sigma", NGPT_DTYPE_F32, 1, one, &sigma0)) != NGPT_OK) goto done;
        if ((st = case_out_add(out, "model_inputs", NGPT_DTYPE_F32, rx + 1, shape, inputs)) != NGPT_OK) goto done;
    } else {
        const int64_t *ti;
        size_t Ti;
        if ((st = ngpt_scheduler_timesteps(s, &ti, &Ti)) != NGPT_OK) goto done;
        if ((st = case_out_add(out, "timesteps", NGPT_DTYPE_I64, 1, shape, ti)) != NGPT_OK) goto done;
    }
    if ((st = case_out_add(out, "samples", NGPT_DTYPE_F32, rx + 1, shape, samples)) != NGPT_OK) goto done;
    const float *acp;
    size_t na;
    if ((st = ngpt_scheduler_alphas_cumprod(s, &acp, &na)) != NGPT_OK) goto done;
    int64_t ashape[1] = {(int64_t)na};
    st = case_out_add(out, "alphas_cumprod", NGPT_DTYPE_F32, 1, ashape, acp);
done:
    nx_free(x);
    nx_free(mo);
    nx_free(noise);
    nx_free(samples);
    nx_free(inputs);
    ngpt_scheduler_free(s);
    return st;
}

ngpt_status case_scheduler_ddim(const case_ctx *c, case_out *out) { return run(c, out, NGPT_SCHEDULER_DDIM); }
ngpt_status case_scheduler_pndm(const case_ctx *c, case_out *out) { return run(c, out, NGPT_SCHEDULER_PNDM); }
ngpt_status case_scheduler_dpmsolver(const case_ctx *c, case_out *out)
{
    return run(c, out, NGPT_SCHEDULER_DPMSOLVER_MULTISTEP);
}
ngpt_status case_scheduler_euler(const case_ctx *c, case_out *out) { return run(c, out, NGPT_SCHEDULER_EULER); }
ngpt_status case_scheduler_euler_ancestral(const case_ctx *c, case_out *out)
{
    return run(c, out, NGPT_SCHEDULER_EULER_ANCESTRAL);
}
ngpt_status case_scheduler_heun(const case_ctx *c, case_out *out) { return run(c, out, NGPT_SCHEDULER_HEUN); }
ngpt_status case_scheduler_unipc(const case_ctx *c, case_out *out) { return run(c, out, NGPT_SCHEDULER_UNIPC_MULTISTEP); }
ngpt_status case_scheduler_lms(const case_ctx *c, case_out *out) { return run(c, out, NGPT_SCHEDULER_LMS); }
ngpt_status case_scheduler_kdpm2(const case_ctx *c, case_out *out) { return run(c, out, NGPT_SCHEDULER_KDPM2); }
ngpt_status case_scheduler_kdpm2_ancestral(const case_ctx *c, case_out *out)
{
    return run(c, out, NGPT_SCHEDULER_KDPM2_ANCESTRAL);
}
ngpt_status case_scheduler_deis(const case_ctx *c, case_out *out) { return run(c, out, NGPT_SCHEDULER_DEIS_MULTISTEP); }
ngpt_status case_scheduler_ddpm(const case_ctx *c, case_out *out) { return run(c, out, NGPT_SCHEDULER_DDPM); }
ngpt_status case_scheduler_dpmsolver_singlestep(const case_ctx *c, case_out *out)
{
    return run(c, out, NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP);
}
