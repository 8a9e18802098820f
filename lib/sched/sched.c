/* sched.c — ngpt_scheduler: the config (diffusers 0.17's scheduler_config.json: DDIM, PNDM,
 * DPM-Solver multistep, Euler, Euler ancestral, Heun, UniPC multistep, LMS, KDPM2, KDPM2
 * ancestral, DEIS multistep, DDPM, DPM-Solver singlestep), the noise schedule
 * (betas, alphas_cumprod and the tables each kind derives from them), create and free. The
 * files of lib/sched are listed in sched_impl.h.
 */
#include "sched_impl.h"
#include "../core/alloc.h"
#include "../core/error.h"
#include "../core/params.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>


static ngpt_status cfg_num(const json_t *o, const char *k, double def, double *out)
{
    const json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) { *out = def; return NGPT_OK; }
    if (json_is_string(v)) {  /* Python's json writes -Infinity / Infinity / NaN; see quote_nonfinite */
        const char *t = json_string_value(v);
        if (!strcmp(t, "-Infinity")) { *out = -INFINITY; return NGPT_OK; }
        if (!strcmp(t, "Infinity")) { *out = INFINITY; return NGPT_OK; }
        if (!strcmp(t, "NaN")) { *out = NAN; return NGPT_OK; }
    }
    if (!json_is_number(v))
        return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: '%s' is not a number", k);
    *out = json_number_value(v);
    return NGPT_OK;
}

static ngpt_status cfg_int(const json_t *o, const char *k, int64_t def, int64_t *out)
{
    const json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) { *out = def; return NGPT_OK; }
    if (json_is_integer(v)) { *out = (int64_t)json_integer_value(v); return NGPT_OK; }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 1e15) {
        *out = (int64_t)json_real_value(v);
        return NGPT_OK;
    }
    return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: '%s' is not an integer", k);
}

static ngpt_status cfg_bool(const json_t *o, const char *k, bool def, bool *out)
{
    const json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) { *out = def; return NGPT_OK; }
    if (!json_is_boolean(v))
        return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: '%s' is not a boolean", k);
    *out = json_is_true(v);
    return NGPT_OK;
}

static ngpt_status cfg_str(const json_t *o, const char *k, const char *def, const char **out)
{
    const json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) { *out = def; return NGPT_OK; }
    if (!json_is_string(v))
        return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: '%s' is not a string", k);
    *out = json_string_value(v);
    return NGPT_OK;
}

const char *nx_sched_class_name(ngpt_scheduler_kind k)
{
    switch (k) {
    case NGPT_SCHEDULER_DDIM: return "DDIMScheduler";
    case NGPT_SCHEDULER_PNDM: return "PNDMScheduler";
    case NGPT_SCHEDULER_DPMSOLVER_MULTISTEP: return "DPMSolverMultistepScheduler";
    case NGPT_SCHEDULER_EULER: return "EulerDiscreteScheduler";
    case NGPT_SCHEDULER_EULER_ANCESTRAL: return "EulerAncestralDiscreteScheduler";
    case NGPT_SCHEDULER_HEUN: return "HeunDiscreteScheduler";
    case NGPT_SCHEDULER_UNIPC_MULTISTEP: return "UniPCMultistepScheduler";
    case NGPT_SCHEDULER_LMS: return "LMSDiscreteScheduler";
    case NGPT_SCHEDULER_KDPM2: return "KDPM2DiscreteScheduler";
    case NGPT_SCHEDULER_KDPM2_ANCESTRAL: return "KDPM2AncestralDiscreteScheduler";
    case NGPT_SCHEDULER_DEIS_MULTISTEP: return "DEISMultistepScheduler";
    case NGPT_SCHEDULER_DDPM: return "DDPMScheduler";
    case NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP: return "DPMSolverSinglestepScheduler";
    default: return "?";
    }
}

bool nx_sched_is_kdiffusion(const ngpt_scheduler *s)
{
    return s->kind == NGPT_SCHEDULER_EULER || s->kind == NGPT_SCHEDULER_EULER_ANCESTRAL || s->kind == NGPT_SCHEDULER_HEUN ||
           s->kind == NGPT_SCHEDULER_LMS || nx_sched_is_kdpm2(s);
}

bool nx_sched_is_kdpm2(const ngpt_scheduler *s)
{
    return s->kind == NGPT_SCHEDULER_KDPM2 || s->kind == NGPT_SCHEDULER_KDPM2_ANCESTRAL;
}

/* torch.linspace(start, end, n, dtype=float32) as torch 1.13's CPU kernel computes it (checked
 * bit for bit against torch on x86-64): step = (end - start) / (n - 1) in float; the output is
 * filled in blocks of 16 = two 8-lane vectors (the remainder one by one); each vector (or single
 * element) at index i gets base = start + step * i if i < n/2, else end - step * (n - 1 - i),
 * which torch's AVX2 build evaluates with a fused multiply-add; lane j of a vector adds j * step
 * (not fused). */
static void linspace_f32(float *out, int64_t n, double start_d, double end_d)
{
    const float start = (float)start_d, end = (float)end_d;
    if (n == 1) { out[0] = start; return; }
    const float step = (end - start) / (float)(n - 1);
    const int64_t half = n / 2;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int64_t blk = i; blk < i + 16; blk += 8) {
            const float base = blk < half ? fmaf(step, (float)blk, start) : fmaf(-step, (float)(n - blk - 1), end);
            for (int j = 0; j < 8; j++) out[blk + j] = base + (float)j * step;
        }
    }
    for (; i < n; i++) out[i] = i < half ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
}

static ngpt_status build_schedule(ngpt_scheduler *s, const json_t *cfg, const char *beta_schedule, double beta_start,
                                  double beta_end, bool zero_snr, bool set_alpha_to_one)
{
    const int64_t T = s->T;
    float *betas = nx_malloc((size_t)T * sizeof *betas);
    s->acp = nx_malloc((size_t)T * sizeof *s->acp);
    if (!betas || !s->acp) { nx_free(betas); return nx_err(NGPT_ERR_OUT_OF_MEMORY, "scheduler: schedule of %lld steps", (long long)T); }

    const json_t *tb = json_object_get(cfg, "trained_betas");
    if (tb && !json_is_null(tb)) {
        if (!json_is_array(tb) || (int64_t)json_array_size(tb) != T) {
            nx_free(betas);
            return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: 'trained_betas' must be an array of num_train_timesteps (%lld) numbers", (long long)T);
        }
        for (int64_t i = 0; i < T; i++) {
            const json_t *v = json_array_get(tb, (size_t)i);
            if (!json_is_number(v)) { nx_free(betas); return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: 'trained_betas'[%lld] is not a number", (long long)i); }
            betas[i] = (float)json_number_value(v);
        }
    } else if (!strcmp(beta_schedule, "linear")) {
        linspace_f32(betas, T, beta_start, beta_end);
    } else if (!strcmp(beta_schedule, "scaled_linear")) {
        linspace_f32(betas, T, sqrt(beta_start), sqrt(beta_end));
        for (int64_t i = 0; i < T; i++) betas[i] = betas[i] * betas[i];
    } else if (!strcmp(beta_schedule, "sigmoid") && s->kind == NGPT_SCHEDULER_DDPM) {
        /* torch.sigmoid(torch.linspace(-6, 6, T)) * (beta_end - beta_start) + beta_start in float32 */
        linspace_f32(betas, T, -6.0, 6.0);
        const float scale = (float)(beta_end - beta_start), shift = (float)beta_start;
        for (int64_t i = 0; i < T; i++) betas[i] = 1.0f / (1.0f + expf(-betas[i])) * scale + shift;
    } else if (!strcmp(beta_schedule, "squaredcos_cap_v2")) {
        for (int64_t i = 0; i < T; i++) {
            double t1 = (double)i / (double)T, t2 = (double)(i + 1) / (double)T;
            double a1 = cos((t1 + 0.008) / 1.008 * M_PI / 2), a2 = cos((t2 + 0.008) / 1.008 * M_PI / 2);
            double b = 1 - (a2 * a2) / (a1 * a1);
            betas[i] = (float)(b < 0.999 ? b : 0.999);
        }
    } else {
        nx_free(betas);
        return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: beta_schedule '%s' is not implemented for %s "
                      "(linear, scaled_linear, squaredcos_cap_v2; DDPM also sigmoid)", beta_schedule,
                      nx_sched_class_name(s->kind));
    }

    /* torch.cumprod on CPU accumulates in double (acc_type<float> = double). */
    double acc = 1.0;
    for (int64_t i = 0; i < T; i++) {
        acc *= (double)(1.0f - betas[i]);
        s->acp[i] = (float)acc;
    }
    if (zero_snr) {
        /* rescale_zero_terminal_snr (float32 tensor ops) */
        float *sq = betas;  /* reuse: alphas_bar_sqrt */
        for (int64_t i = 0; i < T; i++) sq[i] = sqrtf(s->acp[i]);
        const float s0 = sq[0], sT = sq[T - 1];
        const float k = s0 / (s0 - sT);
        for (int64_t i = 0; i < T; i++) { sq[i] -= sT; sq[i] *= k; }
        float prev_bar = 0;
        acc = 1.0;
        for (int64_t i = 0; i < T; i++) {
            const float bar = sq[i] * sq[i];
            const float alpha = i == 0 ? bar : bar / prev_bar;
            prev_bar = bar;
            const float beta = 1.0f - alpha;
            acc *= (double)(1.0f - beta);
            s->acp[i] = (float)acc;
        }
    }
    nx_free(betas);
    s->final_acp = set_alpha_to_one ? 1.0f : s->acp[0];

    if (nx_sched_is_kdiffusion(s) || s->karras) {
        /* sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 (float32 tensor ops);
         * Euler's init_noise_sigma = max(sigmas + [0]) */
        s->train_sigma = nx_malloc((size_t)T * sizeof(float));
        if (!s->train_sigma) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "scheduler: Euler sigmas of %lld steps", (long long)T);
        s->init_sigma = 0.0f;
        for (int64_t i = 0; i < T; i++) {
            s->train_sigma[i] = sqrtf((1.0f - s->acp[i]) / s->acp[i]);
            if (s->train_sigma[i] > s->init_sigma || isnan(s->train_sigma[i])) s->init_sigma = s->train_sigma[i];
        }
    }
    if (s->kind == NGPT_SCHEDULER_DPMSOLVER_MULTISTEP || s->kind == NGPT_SCHEDULER_UNIPC_MULTISTEP ||
        s->kind == NGPT_SCHEDULER_DEIS_MULTISTEP || s->kind == NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP) {
        s->alpha_t = nx_malloc((size_t)T * sizeof(float));
        s->sigma_t = nx_malloc((size_t)T * sizeof(float));
        s->lambda_t = nx_malloc((size_t)T * sizeof(float));
        if (!s->alpha_t || !s->sigma_t || !s->lambda_t)
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "scheduler: %s tables of %lld steps", nx_sched_class_name(s->kind), (long long)T);
        for (int64_t i = 0; i < T; i++) {
            s->alpha_t[i] = sqrtf(s->acp[i]);
            s->sigma_t[i] = sqrtf(1.0f - s->acp[i]);
            s->lambda_t[i] = logf(s->alpha_t[i]) - logf(s->sigma_t[i]);
        }
    }
    return NGPT_OK;
}

static ngpt_status parse_pred(const char *v, int *out)
{
    if (!strcmp(v, "epsilon")) *out = NGPT_PREDICTION_EPSILON;
    else if (!strcmp(v, "v_prediction")) *out = NGPT_PREDICTION_V;
    else if (!strcmp(v, "sample")) *out = NGPT_PREDICTION_SAMPLE;
    else return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: prediction_type '%s' (epsilon, v_prediction, sample)", v);
    return NGPT_OK;
}

/* The multistep samplers' solver_order (the params' when set), 1-3: diffusers takes any, but past 3
 * the history would outgrow the device step's slots, and the methods' authors recommend 2 or 3. */
static ngpt_status cfg_order(ngpt_scheduler *s, const json_t *cfg, const ngpt_scheduler_params *p, const char *what)
{
    int64_t order = 2;
    NX_TRY(cfg_int(cfg, "solver_order", 2, &order));
    if (p->solver_order) order = p->solver_order;
    if (order < 1 || order > 3)
        return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler: %s solver_order %lld (1, 2 or 3)", what, (long long)order);
    s->order = (int)order;
    return NGPT_OK;
}

/* Dynamic thresholding (per-batch-item quantiles of x0) is not ported: the API is layout-free. */
static ngpt_status cfg_no_thresholding(const json_t *cfg, const char *what)
{
    bool thresholding = false;
    NX_TRY(cfg_bool(cfg, "thresholding", false, &thresholding));
    if (thresholding)
        return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: %s 'thresholding' (dynamic thresholding, per-batch-item "
                      "quantiles) is not implemented", what);
    return NGPT_OK;
}

static ngpt_status configure_unipc(ngpt_scheduler *s, const json_t *cfg, const ngpt_scheduler_params *p)
{
    const char *stype = NULL;
    NX_TRY(cfg_order(s, cfg, p, "UniPC"));
    s->lambda_min_clipped = -INFINITY;  /* set_dpm's timesteps, unclipped */
    NX_TRY(cfg_bool(cfg, "predict_x0", true, &s->predict_x0));
    NX_TRY(cfg_bool(cfg, "lower_order_final", true, &s->lower_order_final));
    NX_TRY(cfg_no_thresholding(cfg, "UniPC"));
    NX_TRY(cfg_str(cfg, "solver_type", "bh2", &stype));
    /* as diffusers: DPM-Solver's names stand for bh1 */
    if (!strcmp(stype, "bh2")) s->bh2 = true;
    else if (!strcmp(stype, "bh1") || !strcmp(stype, "midpoint") || !strcmp(stype, "heun") || !strcmp(stype, "logrho")) s->bh2 = false;
    else return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: solver_type '%s' is not implemented for UniPCMultistepScheduler", stype);
    if (p->solver_type != NGPT_DPM_SOLVER_TYPE_FROM_CONFIG) {
        if (p->solver_type < NGPT_DPM_SOLVER_MIDPOINT || p->solver_type > NGPT_DPM_SOLVER_BH2)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: unknown solver_type %d", (int)p->solver_type);
        s->bh2 = p->solver_type == NGPT_DPM_SOLVER_BH2;
    }
    const json_t *dc = json_object_get(cfg, "disable_corrector");
    if (dc && !json_is_null(dc)) {
        if (!json_is_array(dc))
            return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: 'disable_corrector' is not an array of step indices");
        const size_t n = json_array_size(dc);
        s->disable_corrector = nx_malloc((n ? n : 1) * sizeof *s->disable_corrector);
        if (!s->disable_corrector) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "scheduler config: 'disable_corrector' of %zu", n);
        for (size_t i = 0; i < n; i++) {
            const json_t *v = json_array_get(dc, i);
            if (!json_is_integer(v))
                return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: 'disable_corrector'[%zu] is not an integer", i);
            s->disable_corrector[i] = (int64_t)json_integer_value(v);
        }
        s->n_disable = n;
    }
    return NGPT_OK;
}

/* DDPMScheduler's variance_type (clip_sample and thresholding are read with DDIM's). */
static ngpt_status configure_ddpm(ngpt_scheduler *s, const json_t *cfg)
{
    const char *vt = NULL;
    NX_TRY(cfg_str(cfg, "variance_type", "fixed_small", &vt));
    if (!strcmp(vt, "fixed_small")) s->variance_type = VARIANCE_FIXED_SMALL;
    else if (!strcmp(vt, "fixed_small_log")) s->variance_type = VARIANCE_FIXED_SMALL_LOG;
    else if (!strcmp(vt, "fixed_large")) s->variance_type = VARIANCE_FIXED_LARGE;
    else if (!strcmp(vt, "fixed_large_log"))  /* 0.17 takes the square root of log(beta) < 0 */
        return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: DDPM variance_type 'fixed_large_log' (diffusers 0.17 "
                      "samples NaN with it: the square root of a negative log variance)");
    else if (!strcmp(vt, "learned") || !strcmp(vt, "learned_range"))
        return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: DDPM variance_type '%s' (model outputs with learned "
                      "variance channels) is not implemented", vt);
    else return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: DDPM variance_type '%s' (fixed_small, fixed_small_log, "
                       "fixed_large)", vt);
    return NGPT_OK;
}

/* DEISMultistepScheduler: log-rho DEIS only; DPM-Solver's algorithm and solver names stand for it,
 * as diffusers maps them. */
static ngpt_status configure_deis(ngpt_scheduler *s, const json_t *cfg, const ngpt_scheduler_params *p)
{
    const char *algo = NULL, *stype = NULL;
    NX_TRY(cfg_order(s, cfg, p, "DEIS"));
    s->lambda_min_clipped = -INFINITY;  /* set_dpm's timesteps, unclipped */
    NX_TRY(cfg_bool(cfg, "lower_order_final", true, &s->lower_order_final));
    NX_TRY(cfg_no_thresholding(cfg, "DEIS"));
    NX_TRY(cfg_str(cfg, "algorithm_type", "deis", &algo));
    if (strcmp(algo, "deis") && strcmp(algo, "dpmsolver") && strcmp(algo, "dpmsolver++"))
        return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: algorithm_type '%s' is not implemented for "
                      "DEISMultistepScheduler (deis)", algo);
    NX_TRY(cfg_str(cfg, "solver_type", "logrho", &stype));
    if (strcmp(stype, "logrho") && strcmp(stype, "midpoint") && strcmp(stype, "heun") && strcmp(stype, "bh1") &&
        strcmp(stype, "bh2"))
        return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: solver_type '%s' is not implemented for "
                      "DEISMultistepScheduler (logrho)", stype);
    /* the params' algorithm and solver types all mean DEIS's one; they are checked, not used */
    if (p->algorithm_type < NGPT_DPM_ALGORITHM_FROM_CONFIG || p->algorithm_type > NGPT_DPM_SDE_DPMSOLVER)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: unknown algorithm_type %d", (int)p->algorithm_type);
    if (p->solver_type < NGPT_DPM_SOLVER_TYPE_FROM_CONFIG || p->solver_type > NGPT_DPM_SOLVER_BH2)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: unknown solver_type %d", (int)p->solver_type);
    return NGPT_OK;
}

static ngpt_status configure(ngpt_scheduler *s, const json_t *cfg, const ngpt_scheduler_params *p)
{
    if (!json_is_object(cfg)) return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: not a JSON object");
    /* kind */
    ngpt_scheduler_kind kind = p->kind;
    if (kind == NGPT_SCHEDULER_AUTO) {
        const char *cls = NULL;
        NX_TRY(cfg_str(cfg, "_class_name", NULL, &cls));
        if (!cls) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "scheduler config: no '_class_name' and kind AUTO: name the scheduler kind");
        if (!strcmp(cls, "DDIMScheduler")) kind = NGPT_SCHEDULER_DDIM;
        else if (!strcmp(cls, "PNDMScheduler")) kind = NGPT_SCHEDULER_PNDM;
        else if (!strcmp(cls, "DPMSolverMultistepScheduler")) kind = NGPT_SCHEDULER_DPMSOLVER_MULTISTEP;
        else if (!strcmp(cls, "EulerDiscreteScheduler")) kind = NGPT_SCHEDULER_EULER;
        else if (!strcmp(cls, "EulerAncestralDiscreteScheduler")) kind = NGPT_SCHEDULER_EULER_ANCESTRAL;
        else if (!strcmp(cls, "HeunDiscreteScheduler")) kind = NGPT_SCHEDULER_HEUN;
        else if (!strcmp(cls, "UniPCMultistepScheduler")) kind = NGPT_SCHEDULER_UNIPC_MULTISTEP;
        else if (!strcmp(cls, "LMSDiscreteScheduler")) kind = NGPT_SCHEDULER_LMS;
        else if (!strcmp(cls, "KDPM2DiscreteScheduler")) kind = NGPT_SCHEDULER_KDPM2;
        else if (!strcmp(cls, "KDPM2AncestralDiscreteScheduler")) kind = NGPT_SCHEDULER_KDPM2_ANCESTRAL;
        else if (!strcmp(cls, "DEISMultistepScheduler")) kind = NGPT_SCHEDULER_DEIS_MULTISTEP;
        else if (!strcmp(cls, "DDPMScheduler")) kind = NGPT_SCHEDULER_DDPM;
        else if (!strcmp(cls, "DPMSolverSinglestepScheduler")) kind = NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP;
        else return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: _class_name '%s' is not supported "
                           "(DDIMScheduler, PNDMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, "
                           "EulerAncestralDiscreteScheduler, HeunDiscreteScheduler, UniPCMultistepScheduler, "
                           "LMSDiscreteScheduler, KDPM2DiscreteScheduler, KDPM2AncestralDiscreteScheduler, "
                           "DEISMultistepScheduler, DDPMScheduler, DPMSolverSinglestepScheduler)", cls);
    } else if (kind < NGPT_SCHEDULER_DDIM || kind > NX_SCHED_LAST_KIND) {
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: unknown kind %d", (int)kind);
    }
    s->kind = kind;
    const bool ddim = kind == NGPT_SCHEDULER_DDIM, pndm = kind == NGPT_SCHEDULER_PNDM;
    const bool single = kind == NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP;
    const bool dpm = kind == NGPT_SCHEDULER_DPMSOLVER_MULTISTEP || single, euler = nx_sched_is_kdiffusion(s);

    /* common keys, with each class's __init__ defaults */
    double beta_start, beta_end;
    const char *beta_schedule = "linear", *pred = "epsilon";
    NX_TRY(cfg_int(cfg, "num_train_timesteps", 1000, &s->T));
    if (s->T < 1 || s->T > 100000000)
        return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: num_train_timesteps %lld out of range", (long long)s->T);
    /* Heun's and KDPM2's defaults are SD's range */
    const bool sd_range = kind == NGPT_SCHEDULER_HEUN || nx_sched_is_kdpm2(s);
    NX_TRY(cfg_num(cfg, "beta_start", sd_range ? 0.00085 : 0.0001, &beta_start));
    NX_TRY(cfg_num(cfg, "beta_end", sd_range ? 0.012 : 0.02, &beta_end));
    NX_TRY(cfg_str(cfg, "beta_schedule", "linear", &beta_schedule));
    NX_TRY(cfg_str(cfg, "prediction_type", "epsilon", &pred));
    /* Euler keeps "original_sample" as another name of "sample" */
    if (kind == NGPT_SCHEDULER_EULER && !strcmp(pred, "original_sample")) pred = "sample";
    NX_TRY(parse_pred(pred, &s->pred));
    if (p->prediction_type != NGPT_PREDICTION_FROM_CONFIG) {
        if (p->prediction_type < NGPT_PREDICTION_EPSILON || p->prediction_type > NGPT_PREDICTION_SAMPLE)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: unknown prediction_type %d", (int)p->prediction_type);
        s->pred = p->prediction_type;
    }
    bool set_alpha_to_one = false, zero_snr = false;
    if (ddim || pndm) {
        NX_TRY(cfg_bool(cfg, "set_alpha_to_one", ddim, &set_alpha_to_one));
        NX_TRY(cfg_int(cfg, "steps_offset", 0, &s->steps_offset));
        /* beyond +-T every timestep falls outside alphas_cumprod (diffusers: IndexError at the
         * first step); refusing it here also keeps i * ratio + steps_offset from overflowing */
        if (s->steps_offset < -s->T || s->steps_offset > s->T)
            return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: steps_offset %lld is outside [-%lld, %lld] "
                          "(num_train_timesteps)", (long long)s->steps_offset, (long long)s->T, (long long)s->T);
    }
    if (ddim || kind == NGPT_SCHEDULER_DDPM) {
        double range;
        NX_TRY(cfg_bool(cfg, "clip_sample", true, &s->clip_sample));
        NX_TRY(cfg_num(cfg, "clip_sample_range", 1.0, &range));
        s->clip_sample_range = (float)range;
        NX_TRY(cfg_no_thresholding(cfg, nx_sched_class_name(kind)));
    }
    if (kind == NGPT_SCHEDULER_DDPM) NX_TRY(configure_ddpm(s, cfg));
    if (ddim) {
        const char *spacing = NULL;
        NX_TRY(cfg_str(cfg, "timestep_spacing", "leading", &spacing));
        if (!strcmp(spacing, "leading")) s->spacing = SPACING_LEADING;
        else if (!strcmp(spacing, "trailing")) s->spacing = SPACING_TRAILING;
        else return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: timestep_spacing '%s' (DDIM in diffusers 0.17: leading, trailing)", spacing);
        NX_TRY(cfg_bool(cfg, "rescale_betas_zero_snr", false, &zero_snr));
        s->eta = isnan(p->eta) ? 0.0f : p->eta;
        if (s->eta < 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: eta %g is negative", (double)s->eta);
        s->use_clipped = p->use_clipped_model_output != 0;
    }
    if (pndm) {
        NX_TRY(cfg_bool(cfg, "skip_prk_steps", false, &s->skip_prk_steps));
        if (s->pred == NGPT_PREDICTION_SAMPLE)
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: PNDM supports prediction_type epsilon or v_prediction, not 'sample'");
    }
    if (euler) {
        if ((kind == NGPT_SCHEDULER_EULER_ANCESTRAL || kind == NGPT_SCHEDULER_HEUN || nx_sched_is_kdpm2(s)) &&
            s->pred == NGPT_PREDICTION_SAMPLE)
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler: %s supports prediction_type epsilon or v_prediction, not "
                          "'sample' (diffusers 0.17: not implemented)", nx_sched_class_name(kind));
        if (kind == NGPT_SCHEDULER_HEUN || kind == NGPT_SCHEDULER_LMS) {
            NX_TRY(cfg_bool(cfg, "use_karras_sigmas", false, &s->karras));
            if (s->karras && s->T < 2)  /* _sigma_to_t indexes log_sigmas[1]: diffusers fails */
                return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: Karras sigmas need num_train_timesteps >= 2");
        }
        if (kind == NGPT_SCHEDULER_EULER) {
            const char *interp;
            NX_TRY(cfg_str(cfg, "interpolation_type", "linear", &interp));
            /* 0.17's log_linear builds num_inference_steps + 1 ascending sigmas for
             * num_inference_steps descending timesteps: a broken schedule, not worth copying */
            if (strcmp(interp, "linear"))
                return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: Euler interpolation_type '%s' is not "
                              "implemented (linear)", interp);
            NX_TRY(cfg_bool(cfg, "use_karras_sigmas", false, &s->karras));
            if (s->karras && s->T < 2)  /* _sigma_to_t indexes log_sigmas[1]: diffusers fails */
                return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: Karras sigmas need num_train_timesteps >= 2");
        }
    }
    if (dpm) {
        const char *algo, *stype, *variance_type;
        NX_TRY(cfg_order(s, cfg, p, "DPM-Solver"));
        NX_TRY(cfg_str(cfg, "algorithm_type", "dpmsolver++", &algo));
        if (!strcmp(algo, "dpmsolver++") || !strcmp(algo, "deis")) s->algo = NGPT_DPM_DPMSOLVER_PP;
        else if (!strcmp(algo, "dpmsolver")) s->algo = NGPT_DPM_DPMSOLVER;
        else if (!strcmp(algo, "sde-dpmsolver++")) s->algo = NGPT_DPM_SDE_DPMSOLVER_PP;
        else if (!strcmp(algo, "sde-dpmsolver")) s->algo = NGPT_DPM_SDE_DPMSOLVER;
        else return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: algorithm_type '%s' is not implemented for %s", algo, nx_sched_class_name(kind));
        if (p->algorithm_type != NGPT_DPM_ALGORITHM_FROM_CONFIG) {
            if (p->algorithm_type < NGPT_DPM_DPMSOLVER_PP || p->algorithm_type > NGPT_DPM_SDE_DPMSOLVER)
                return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: unknown algorithm_type %d", (int)p->algorithm_type);
            s->algo = p->algorithm_type;
        }
        NX_TRY(cfg_str(cfg, "solver_type", "midpoint", &stype));
        if (!strcmp(stype, "midpoint") || !strcmp(stype, "logrho") || !strcmp(stype, "bh1") || !strcmp(stype, "bh2")) s->heun = false;
        else if (!strcmp(stype, "heun")) s->heun = true;
        else return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: solver_type '%s' is not implemented for %s", stype, nx_sched_class_name(kind));
        if (p->solver_type != NGPT_DPM_SOLVER_TYPE_FROM_CONFIG) {
            /* UniPC's bh1 / bh2 are midpoint here, as diffusers maps the names */
            if (p->solver_type < NGPT_DPM_SOLVER_MIDPOINT || p->solver_type > NGPT_DPM_SOLVER_BH2)
                return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: unknown solver_type %d", (int)p->solver_type);
            s->heun = p->solver_type == NGPT_DPM_SOLVER_HEUN;
        }
        if (single && (s->algo == NGPT_DPM_SDE_DPMSOLVER_PP || s->algo == NGPT_DPM_SDE_DPMSOLVER))
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler: DPMSolverSinglestepScheduler has no SDE variants "
                          "(dpmsolver++, dpmsolver)");
        if (s->order == 3 && (s->algo == NGPT_DPM_SDE_DPMSOLVER_PP || s->algo == NGPT_DPM_SDE_DPMSOLVER))
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler: the SDE DPM-Solver variants have no third-order update (solver_order 3)");
        NX_TRY(cfg_bool(cfg, "lower_order_final", true, &s->lower_order_final));
        NX_TRY(cfg_no_thresholding(cfg, "DPM-Solver"));
        NX_TRY(cfg_bool(cfg, "use_karras_sigmas", false, &s->karras));
        if (s->karras && s->T < 2)  /* _sigma_to_t indexes log_sigmas[1]: diffusers fails */
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: Karras sigmas need num_train_timesteps >= 2");
        NX_TRY(cfg_str(cfg, "variance_type", NULL, &variance_type));
        if (variance_type && (!strcmp(variance_type, "learned") || !strcmp(variance_type, "learned_range")))
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: DPM-Solver variance_type '%s' (model outputs with "
                          "learned variance channels) is not implemented", variance_type);
        NX_TRY(cfg_num(cfg, "lambda_min_clipped", -INFINITY, &s->lambda_min_clipped));
    }
    if (kind == NGPT_SCHEDULER_UNIPC_MULTISTEP) NX_TRY(configure_unipc(s, cfg, p));
    if (kind == NGPT_SCHEDULER_DEIS_MULTISTEP) NX_TRY(configure_deis(s, cfg, p));
    return build_schedule(s, cfg, beta_schedule, beta_start, beta_end, zero_snr, set_alpha_to_one);
}

/* ---------------------------------------------------------------------------------------------
 * create / free
 * ------------------------------------------------------------------------------------------- */

static const ngpt_scheduler_params k_defaults = {
    .struct_size = sizeof(ngpt_scheduler_params),
    .kind = NGPT_SCHEDULER_AUTO,
    .eta = 0.0f,
};

NGPT_API ngpt_status ngpt_scheduler_params_default(ngpt_scheduler_params *p, size_t struct_size)
{
    return nx_params_default(p, struct_size, &k_defaults, sizeof k_defaults, "ngpt_scheduler_params_default");
}

/* Read the caller's params (possibly an older, shorter struct) into a full one. */
static ngpt_status read_params(const ngpt_scheduler_params *in, ngpt_scheduler_params *p)
{
    NX_TRY(nx_params_read(p, in, &k_defaults, sizeof *p, "ngpt_scheduler_params"));
    if (p->flags) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: flags 0x%x: no flags are defined", p->flags);
    return NGPT_OK;
}

void nx_sched_free_state(ngpt_scheduler *s)
{
    for (int i = 0; i < NX_SCHED_SLOTS; i++) { nx_free(s->buf[i]); s->buf[i] = NULL; }
    s->buf_n = 0;
    s->n = 0;
}

void nx_sched_reset_state(ngpt_scheduler *s)
{
    s->n_ets = 0;
    s->have_cur_sample = false;
    s->counter = 0;
    s->lower_order_nums = 0;
    s->next = 0;
    s->second_order = false;
    s->heun_dt = 0.0f;
    s->this_order = 0;
    for (int i = 0; i < 4; i++) s->ets[i] = -1;
    for (int i = 0; i < 3; i++) s->mo[i] = -1;
}

NGPT_API void ngpt_scheduler_free(ngpt_scheduler *s)
{
    if (!s) return;
    nx_sched_free_state(s);
    nx_free(s->acp);
    nx_free(s->alpha_t);
    nx_free(s->sigma_t);
    nx_free(s->lambda_t);
    nx_free(s->train_sigma);
    nx_sched_free_timesteps(s);
    nx_free(s->disable_corrector);
    nx_free(s->order_list);
    nx_free(s);
}

static ngpt_status create_from(ngpt_scheduler **out, const json_t *cfg, const ngpt_scheduler_params *pin)
{
    ngpt_scheduler_params p;
    NX_TRY(read_params(pin, &p));
    ngpt_scheduler *s = nx_calloc(1, sizeof *s);
    if (!s) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_create: out of memory");
    nx_sched_reset_state(s);
    ngpt_status st = configure(s, cfg, &p);
    if (st != NGPT_OK) { ngpt_scheduler_free(s); return st; }
    *out = s;
    return NGPT_OK;
}

/* diffusers saves configs with Python's json module, which writes the non-standard tokens
 * -Infinity, Infinity and NaN (DPMSolverMultistepScheduler's lambda_min_clipped defaults to
 * -inf). jansson rejects them, so outside strings they are quoted ("-Infinity") before parsing
 * and cfg_num reads them back. Returns a new NUL-terminated buffer (nx_free) or NULL. */
static char *quote_nonfinite(const char *in, size_t len, size_t *out_len)
{
    static const char *const tok[3] = {"-Infinity", "Infinity", "NaN"};
    char *out = nx_malloc(len + len / 3 * 2 + 3);  /* each token of >= 3 chars grows by 2 */
    if (!out) return NULL;
    size_t o = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        const char ch = in[i];
        if (in_str) {
            out[o++] = ch;
            if (ch == '\\' && i + 1 < len) out[o++] = in[++i];
            else if (ch == '"') in_str = false;
            continue;
        }
        if (ch == '"') { in_str = true; out[o++] = ch; continue; }
        int hit = -1;
        for (int t = 0; t < 3 && hit < 0; t++) {
            size_t tl = strlen(tok[t]);
            if (i + tl <= len && !memcmp(in + i, tok[t], tl)) hit = t;
        }
        if (hit >= 0) {
            size_t tl = strlen(tok[hit]);
            out[o++] = '"';
            memcpy(out + o, tok[hit], tl);
            o += tl;
            out[o++] = '"';
            i += tl - 1;
        } else {
            out[o++] = ch;
        }
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

static ngpt_status create_from_text(ngpt_scheduler **out, const char *text, size_t len, const char *what,
                                    const ngpt_scheduler_params *p, bool sd_fixups)
{
    size_t qlen;
    char *q = quote_nonfinite(text, len, &qlen);
    if (!q) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    json_error_t je;
    json_t *cfg = json_loadb(q, qlen, 0, &je);
    nx_free(q);
    if (!cfg) return nx_err(NGPT_ERR_BAD_FORMAT, "%s:%d:%d: %s", what, je.line, je.column, je.text);
    /* (a config that is not an object is refused by configure, naming it) */
    if (sd_fixups && json_is_object(cfg) &&
        (json_object_set_new(cfg, "steps_offset", json_integer(1)) || json_object_set_new(cfg, "clip_sample", json_false()))) {
        json_decref(cfg);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    ngpt_status st = create_from(out, cfg, p);
    json_decref(cfg);
    return st;
}

NGPT_API ngpt_status ngpt_scheduler_create_from_json(ngpt_scheduler **out, const char *json_text, size_t len,
                                                     const ngpt_scheduler_params *p)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_create_from_json: out is NULL");
    *out = NULL;
    if (!json_text) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_create_from_json: json_text is NULL");
    return create_from_text(out, json_text, len, "scheduler config", p, false);
}

static ngpt_status create_from_file(ngpt_scheduler **out, const char *path, const ngpt_scheduler_params *p, bool sd_fixups)
{
    FILE *f = fopen(path, "rb");
    if (!f) return nx_err(errno == ENOENT ? NGPT_ERR_NOT_FOUND : NGPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *nb = nx_realloc(buf, cap);
            if (!nb) { nx_free(buf); fclose(f); return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path); }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    const int rd_err = ferror(f);
    fclose(f);
    if (rd_err) { nx_free(buf); return nx_err(NGPT_ERR_IO, "%s: read error", path); }
    ngpt_status st = create_from_text(out, buf, len, path, p, sd_fixups);
    nx_free(buf);
    if (st != NGPT_OK && !strstr(ngpt_last_error(), path)) return nx_err_wrap(st, "%s: ", path);
    return st;
}

NGPT_API ngpt_status ngpt_scheduler_create(ngpt_scheduler **out, const char *path, const ngpt_scheduler_params *p)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_create: out is NULL");
    *out = NULL;
    if (!path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_create: path is NULL");
    return create_from_file(out, path, p, false);
}

ngpt_status nx_sched_create_sd(ngpt_scheduler **out, const char *path, const ngpt_scheduler_params *p)
{
    *out = NULL;
    return create_from_file(out, path, p, true);
}

NGPT_API ngpt_scheduler_kind ngpt_scheduler_get_kind(const ngpt_scheduler *s)
{
    return s ? s->kind : NGPT_SCHEDULER_AUTO;
}