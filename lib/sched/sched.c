/* sched.c — ngpt_scheduler: DDIM, PNDM, DPM-Solver multistep, Euler, Euler ancestral, Heun,
 * UniPC multistep and LMS as in diffusers 0.17 (scheduling_ddim.py, scheduling_pndm.py,
 * scheduling_dpmsolver_multistep.py, scheduling_euler_discrete.py,
 * scheduling_euler_ancestral_discrete.py, scheduling_heun_discrete.py,
 * scheduling_unipc_multistep.py, scheduling_lms_discrete.py).
 *
 * Precision follows the reference: betas/alphas_cumprod are float32 tensors in diffusers
 * (torch.linspace in float32, torch.cumprod accumulating in double on CPU and rounding each
 * entry to float32); per-step scalars (alpha_prod_t ** 0.5, exp(-h), ...) are 0-dim float32
 * tensors there, so they are float here; timestep arithmetic is numpy float64 / int64.
 * A step is planned here (nx_sched_plan: the bookkeeping, and the coefficients as an
 * nx_sched_step) and run element by element by sched_math.h — on the host by sched_step.c, on a
 * backend by nx_op_sched_step.
 */
#include "sched.h"
#include "../core/alloc.h"
#include "../core/error.h"
#include "../core/params.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { SPACING_LEADING = 0, SPACING_TRAILING = 1 };

struct ngpt_scheduler {
    ngpt_scheduler_kind kind;
    /* ---- config (diffusers names) ---- */
    int64_t T;                  /* num_train_timesteps */
    int     pred;               /* ngpt_prediction_type */
    bool    clip_sample;        /* DDIM */
    float   clip_sample_range;  /* DDIM */
    int64_t steps_offset;       /* DDIM, PNDM */
    int     spacing;            /* DDIM timestep_spacing */
    bool    skip_prk_steps;     /* PNDM */
    int     order;              /* DPM, UniPC solver_order */
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
    float   *sigmas;            /* Euler [n_ts + 1]: the step sigmas, then 0 */
    size_t   n_ts;
    size_t   next;              /* Euler: the step expected next (a repeated timestep resolves to it) */
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
    bool   heun_second;         /* Heun: the next step is a second-order one (diffusers: dt set) */
    float  heun_dt;             /* Heun: the first-order step's dt */
};

/* ---------------------------------------------------------------------------------------------
 * config
 * ------------------------------------------------------------------------------------------- */

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

static const char *kind_class(ngpt_scheduler_kind k)
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
    default: return "?";
    }
}

static bool is_kdiffusion(const ngpt_scheduler *s)
{
    return s->kind == NGPT_SCHEDULER_EULER || s->kind == NGPT_SCHEDULER_EULER_ANCESTRAL || s->kind == NGPT_SCHEDULER_HEUN ||
           s->kind == NGPT_SCHEDULER_LMS;
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
                      "(linear, scaled_linear, squaredcos_cap_v2)", beta_schedule, kind_class(s->kind));
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

    if (is_kdiffusion(s) || s->karras) {
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
    if (s->kind == NGPT_SCHEDULER_DPMSOLVER_MULTISTEP || s->kind == NGPT_SCHEDULER_UNIPC_MULTISTEP) {
        s->alpha_t = nx_malloc((size_t)T * sizeof(float));
        s->sigma_t = nx_malloc((size_t)T * sizeof(float));
        s->lambda_t = nx_malloc((size_t)T * sizeof(float));
        if (!s->alpha_t || !s->sigma_t || !s->lambda_t)
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "scheduler: %s tables of %lld steps", kind_class(s->kind), (long long)T);
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

static ngpt_status configure_unipc(ngpt_scheduler *s, const json_t *cfg, const ngpt_scheduler_params *p)
{
    int64_t order = 2;
    bool thresholding = false;
    const char *stype = NULL;
    NX_TRY(cfg_int(cfg, "solver_order", 2, &order));
    if (p->solver_order) order = p->solver_order;
    /* diffusers takes any order; past 3 the history would outgrow the device step's slots, and
     * UniPC's authors recommend 2 (guided) or 3 (unconditional) */
    if (order < 1 || order > 3)
        return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler: UniPC solver_order %lld (1, 2 or 3)", (long long)order);
    s->order = (int)order;
    s->lambda_min_clipped = -INFINITY;  /* set_dpm's timesteps, unclipped */
    NX_TRY(cfg_bool(cfg, "predict_x0", true, &s->predict_x0));
    NX_TRY(cfg_bool(cfg, "lower_order_final", true, &s->lower_order_final));
    NX_TRY(cfg_bool(cfg, "thresholding", false, &thresholding));
    if (thresholding)
        return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: UniPC 'thresholding' is not implemented");
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
        else return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: _class_name '%s' is not supported "
                           "(DDIMScheduler, PNDMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, "
                           "EulerAncestralDiscreteScheduler, HeunDiscreteScheduler, UniPCMultistepScheduler, "
                           "LMSDiscreteScheduler)", cls);
    } else if (kind < NGPT_SCHEDULER_DDIM || kind > NGPT_SCHEDULER_LMS) {
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: unknown kind %d", (int)kind);
    }
    s->kind = kind;
    const bool ddim = kind == NGPT_SCHEDULER_DDIM, pndm = kind == NGPT_SCHEDULER_PNDM;
    const bool dpm = kind == NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, euler = is_kdiffusion(s);

    /* common keys, with each class's __init__ defaults */
    double beta_start, beta_end;
    const char *beta_schedule = "linear", *pred = "epsilon";
    NX_TRY(cfg_int(cfg, "num_train_timesteps", 1000, &s->T));
    if (s->T < 1 || s->T > 100000000)
        return nx_err(NGPT_ERR_BAD_FORMAT, "scheduler config: num_train_timesteps %lld out of range", (long long)s->T);
    /* HeunDiscreteScheduler's defaults are SD's range */
    NX_TRY(cfg_num(cfg, "beta_start", kind == NGPT_SCHEDULER_HEUN ? 0.00085 : 0.0001, &beta_start));
    NX_TRY(cfg_num(cfg, "beta_end", kind == NGPT_SCHEDULER_HEUN ? 0.012 : 0.02, &beta_end));
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
    if (ddim) {
        double range;
        bool thresholding;
        const char *spacing;
        NX_TRY(cfg_bool(cfg, "clip_sample", true, &s->clip_sample));
        NX_TRY(cfg_num(cfg, "clip_sample_range", 1.0, &range));
        s->clip_sample_range = (float)range;
        NX_TRY(cfg_bool(cfg, "thresholding", false, &thresholding));
        if (thresholding)
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: DDIM 'thresholding' (dynamic thresholding, "
                          "per-batch-item quantiles) is not implemented");
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
        if ((kind == NGPT_SCHEDULER_EULER_ANCESTRAL || kind == NGPT_SCHEDULER_HEUN) && s->pred == NGPT_PREDICTION_SAMPLE)
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler: %s supports prediction_type epsilon or v_prediction, not "
                          "'sample' (diffusers 0.17: not implemented)", kind_class(kind));
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
        int64_t order;
        bool thresholding;
        const char *algo, *stype, *variance_type;
        NX_TRY(cfg_int(cfg, "solver_order", 2, &order));
        if (p->solver_order) order = p->solver_order;
        if (order < 1 || order > 3)
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler: DPM-Solver solver_order %lld (1, 2 or 3)", (long long)order);
        s->order = (int)order;
        NX_TRY(cfg_str(cfg, "algorithm_type", "dpmsolver++", &algo));
        if (!strcmp(algo, "dpmsolver++") || !strcmp(algo, "deis")) s->algo = NGPT_DPM_DPMSOLVER_PP;
        else if (!strcmp(algo, "dpmsolver")) s->algo = NGPT_DPM_DPMSOLVER;
        else if (!strcmp(algo, "sde-dpmsolver++")) s->algo = NGPT_DPM_SDE_DPMSOLVER_PP;
        else if (!strcmp(algo, "sde-dpmsolver")) s->algo = NGPT_DPM_SDE_DPMSOLVER;
        else return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: algorithm_type '%s' is not implemented for DPMSolverMultistepScheduler", algo);
        if (p->algorithm_type != NGPT_DPM_ALGORITHM_FROM_CONFIG) {
            if (p->algorithm_type < NGPT_DPM_DPMSOLVER_PP || p->algorithm_type > NGPT_DPM_SDE_DPMSOLVER)
                return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: unknown algorithm_type %d", (int)p->algorithm_type);
            s->algo = p->algorithm_type;
        }
        NX_TRY(cfg_str(cfg, "solver_type", "midpoint", &stype));
        if (!strcmp(stype, "midpoint") || !strcmp(stype, "logrho") || !strcmp(stype, "bh1") || !strcmp(stype, "bh2")) s->heun = false;
        else if (!strcmp(stype, "heun")) s->heun = true;
        else return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: solver_type '%s' is not implemented for DPMSolverMultistepScheduler", stype);
        if (p->solver_type != NGPT_DPM_SOLVER_TYPE_FROM_CONFIG) {
            /* UniPC's bh1 / bh2 are midpoint here, as diffusers maps the names */
            if (p->solver_type < NGPT_DPM_SOLVER_MIDPOINT || p->solver_type > NGPT_DPM_SOLVER_BH2)
                return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_params: unknown solver_type %d", (int)p->solver_type);
            s->heun = p->solver_type == NGPT_DPM_SOLVER_HEUN;
        }
        if (s->order == 3 && (s->algo == NGPT_DPM_SDE_DPMSOLVER_PP || s->algo == NGPT_DPM_SDE_DPMSOLVER))
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler: the SDE DPM-Solver variants have no third-order update (solver_order 3)");
        NX_TRY(cfg_bool(cfg, "lower_order_final", true, &s->lower_order_final));
        NX_TRY(cfg_bool(cfg, "thresholding", false, &thresholding));
        if (thresholding)
            return nx_err(NGPT_ERR_UNSUPPORTED, "scheduler config: DPM-Solver 'thresholding' is not implemented");
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

static void free_state(ngpt_scheduler *s)
{
    for (int i = 0; i < NX_SCHED_SLOTS; i++) { nx_free(s->buf[i]); s->buf[i] = NULL; }
    s->buf_n = 0;
    s->n = 0;
}

static void reset_state(ngpt_scheduler *s)
{
    s->n_ets = 0;
    s->have_cur_sample = false;
    s->counter = 0;
    s->lower_order_nums = 0;
    s->next = 0;
    s->heun_second = false;
    s->heun_dt = 0.0f;
    s->this_order = 0;
    for (int i = 0; i < 4; i++) s->ets[i] = -1;
    for (int i = 0; i < 3; i++) s->mo[i] = -1;
}

NGPT_API void ngpt_scheduler_free(ngpt_scheduler *s)
{
    if (!s) return;
    free_state(s);
    nx_free(s->acp);
    nx_free(s->alpha_t);
    nx_free(s->sigma_t);
    nx_free(s->lambda_t);
    nx_free(s->train_sigma);
    nx_free(s->ts);
    nx_free(s->tsf);
    nx_free(s->sigmas);
    nx_free(s->disable_corrector);
    nx_free(s);
}

static ngpt_status create_from(ngpt_scheduler **out, const json_t *cfg, const ngpt_scheduler_params *pin)
{
    ngpt_scheduler_params p;
    NX_TRY(read_params(pin, &p));
    ngpt_scheduler *s = nx_calloc(1, sizeof *s);
    if (!s) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_create: out of memory");
    reset_state(s);
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
                                    const ngpt_scheduler_params *p)
{
    size_t qlen;
    char *q = quote_nonfinite(text, len, &qlen);
    if (!q) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    json_error_t je;
    json_t *cfg = json_loadb(q, qlen, 0, &je);
    nx_free(q);
    if (!cfg) return nx_err(NGPT_ERR_BAD_FORMAT, "%s:%d:%d: %s", what, je.line, je.column, je.text);
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
    return create_from_text(out, json_text, len, "scheduler config", p);
}

NGPT_API ngpt_status ngpt_scheduler_create(ngpt_scheduler **out, const char *path, const ngpt_scheduler_params *p)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_create: out is NULL");
    *out = NULL;
    if (!path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_create: path is NULL");
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
    ngpt_status st = create_from_text(out, buf, len, path, p);
    nx_free(buf);
    if (st != NGPT_OK && !strstr(ngpt_last_error(), path)) return nx_err_wrap(st, "%s: ", path);
    return st;
}

NGPT_API ngpt_scheduler_kind ngpt_scheduler_get_kind(const ngpt_scheduler *s)
{
    return s ? s->kind : NGPT_SCHEDULER_AUTO;
}

/* ---------------------------------------------------------------------------------------------
 * timesteps
 * ------------------------------------------------------------------------------------------- */

static ngpt_status ts_alloc(ngpt_scheduler *s, size_t n)
{
    int64_t *ts = nx_malloc((n ? n : 1) * sizeof *ts);
    double *tsf = nx_malloc((n ? n : 1) * sizeof *tsf);
    float *sigmas = is_kdiffusion(s) ? nx_malloc((n + 1) * sizeof *sigmas) : NULL;
    if (!ts || !tsf || (is_kdiffusion(s) && !sigmas)) {
        nx_free(ts);
        nx_free(tsf);
        nx_free(sigmas);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_set_timesteps: out of memory");
    }
    nx_free(s->ts);
    nx_free(s->tsf);
    nx_free(s->sigmas);
    s->ts = ts;
    s->tsf = tsf;
    s->sigmas = sigmas;
    s->n_ts = n;
    return NGPT_OK;
}

static ngpt_status set_ddim(ngpt_scheduler *s, int32_t N)
{
    if (s->spacing == SPACING_LEADING) {
        const int64_t ratio = s->T / N;
        NX_TRY(ts_alloc(s, (size_t)N));
        for (int32_t i = 0; i < N; i++) s->ts[i] = (int64_t)(N - 1 - i) * ratio + s->steps_offset;
    } else {
        /* np.round(np.arange(T, 0, -ratio)) - 1, numpy's float arange: len = ceil((stop - start) / step),
         * values start + i * delta with delta = (start + step) - start. */
        const double ratio = (double)s->T / (double)N, start = (double)s->T, step = -ratio;
        const double len_d = ceil((0.0 - start) / step);
        const size_t len = len_d > 0 ? (size_t)len_d : 0;
        const double delta = (start + step) - start;
        NX_TRY(ts_alloc(s, len));
        for (size_t i = 0; i < len; i++) s->ts[i] = (int64_t)nearbyint(start + (double)i * delta) - 1;
    }
    return NGPT_OK;
}

static ngpt_status set_pndm(ngpt_scheduler *s, int32_t N)
{
    const int64_t ratio = s->T / N;
    int64_t *base = nx_malloc((size_t)N * sizeof *base);  /* _timesteps, ascending */
    if (!base) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_set_timesteps: out of memory");
    for (int32_t i = 0; i < N; i++) base[i] = (int64_t)i * ratio + s->steps_offset;
    ngpt_status st;
    if (s->skip_prk_steps) {
        /* concat(_ts[:-1], _ts[-2:-1], _ts[-1:])[::-1] */
        size_t n = (size_t)N - 1 + (N >= 2 ? 1 : 0) + 1;
        st = ts_alloc(s, n);
        if (st == NGPT_OK) {
            size_t k = 0;
            int64_t *fw = nx_malloc(n * sizeof *fw);
            if (!fw) { nx_free(base); return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_set_timesteps: out of memory"); }
            for (int32_t i = 0; i < N - 1; i++) fw[k++] = base[i];
            if (N >= 2) fw[k++] = base[N - 2];
            fw[k++] = base[N - 1];
            for (size_t i = 0; i < n; i++) s->ts[i] = fw[n - 1 - i];
            nx_free(fw);
            s->n_prk = 0;
        }
    } else {
        /* prk = _ts[-4:].repeat(2) + tile([0, T//N//2], 4); prk = prk[:-1].repeat(2)[1:-1][::-1]
         * plms = _ts[:-3][::-1] */
        const int32_t m = N < 4 ? N : 4;
        const int64_t half = s->T / N / 2;
        int64_t rep[8], rep2[16];
        for (int32_t i = 0; i < m; i++) { rep[2 * i] = base[N - m + i]; rep[2 * i + 1] = base[N - m + i]; }
        /* np.tile([0, half], 4) has 8 entries: broadcasting against 2m entries needs m == 4 */
        if (m != 4) {
            nx_free(base);
            return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_scheduler_set_timesteps: PNDM with PRK steps needs at least 4 "
                          "inference steps (diffusers fails for %d)", N);
        }
        for (int i = 0; i < 8; i++) rep[i] += (i % 2) ? half : 0;
        int k = 0;
        for (int i = 0; i < 7; i++) { rep2[k++] = rep[i]; rep2[k++] = rep[i]; }
        /* rep2[1 .. 12] reversed */
        const size_t n_prk = 12, n_plms = N > 3 ? (size_t)N - 3 : 0;
        st = ts_alloc(s, n_prk + n_plms);
        if (st == NGPT_OK) {
            for (size_t i = 0; i < n_prk; i++) s->ts[i] = rep2[12 - i];
            for (size_t i = 0; i < n_plms; i++) s->ts[n_prk + i] = base[n_plms - 1 - i];
            s->n_prk = n_prk;
        }
    }
    nx_free(base);
    return st;
}

/* Append t to the first *k timesteps unless it is there (np.unique's first occurrences, in order). */
static void ts_push_unique(ngpt_scheduler *s, size_t *k, int64_t t)
{
    for (size_t q = 0; q < *k; q++)
        if (s->ts[q] == t) return;
    s->ts[(*k)++] = t;
}

static double np_linspace_at(double stop, int32_t n, int32_t i);
static ngpt_status karras_timesteps(const ngpt_scheduler *s, const double *sigmas, int32_t N, double *ts);
static void karras_sigmas(double *sg, int32_t N, double first, double last);

static ngpt_status set_dpm(ngpt_scheduler *s, int32_t N)
{
    if (s->karras) {
        /* _convert_to_karras on the training sigmas (ascending, so these run from the smallest
         * to the largest), each mapped back to a timestep, rounded (half to even), flipped;
         * duplicates removed, the first kept (lambda_min_clipped plays no part) */
        double *sg = nx_malloc((size_t)N * sizeof *sg), *t = nx_malloc((size_t)N * sizeof *t);
        ngpt_status st = sg && t ? ts_alloc(s, (size_t)N)
                                 : nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_set_timesteps: out of memory");
        if (st == NGPT_OK) {
            karras_sigmas(sg, N, (double)s->train_sigma[0], (double)s->train_sigma[s->T - 1]);
            st = karras_timesteps(s, sg, N, t);
        }
        size_t k = 0;
        for (int32_t j = N - 1; st == NGPT_OK && j >= 0; j--) ts_push_unique(s, &k, (int64_t)nearbyint(t[j]));
        if (st == NGPT_OK) s->n_ts = k;
        nx_free(sg);
        nx_free(t);
        return st;
    }
    /* clipped_idx = torch.searchsorted(flip(lambda_t), lambda_min_clipped): entries below it */
    int64_t clipped = 0;
    const float lmin = (float)s->lambda_min_clipped;
    for (int64_t i = s->T - 1; i >= 0; i--) {
        if (s->lambda_t[i] < lmin) clipped++;
        else break;
    }
    /* np.linspace(0, T - 1 - clipped, N + 1).round()[::-1][:-1], duplicates removed (first kept) */
    const double stop = (double)(s->T - 1 - clipped);
    const double step = stop / (double)N;
    NX_TRY(ts_alloc(s, (size_t)N));
    size_t k = 0;
    for (int32_t j = N; j >= 1; j--) ts_push_unique(s, &k, (int64_t)nearbyint(j == N ? stop : (double)j * step));
    s->n_ts = k;
    return NGPT_OK;
}

/* np.linspace(0, stop, n) in float64: i * (stop / (n - 1)), the last one stop itself; [0] for n 1. */
static double np_linspace_at(double stop, int32_t n, int32_t i)
{
    if (n == 1) return 0.0;
    return i == n - 1 ? stop : (double)i * (stop / (double)(n - 1));
}

/* np.interp(x, arange(len(fp)), fp) with fp float32, as numpy's C loop computes it. */
static double np_interp_arange(double x, const float *fp, int64_t len)
{
    if (!(x >= 0.0)) return x < 0.0 ? (double)fp[0] : x; /* NaN stays NaN */
    if (x >= (double)(len - 1)) return (double)fp[len - 1];
    const int64_t j = (int64_t)x;
    if (x == (double)j) return (double)fp[j];
    const double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    double r = slope * (x - (double)j) + (double)fp[j];
    if (isnan(r)) r = slope * (x - (double)(j + 1)) + (double)fp[j + 1];
    return r;
}

/* _convert_to_karras (rho 7, float64): in_sigmas[0] = first, in_sigmas[-1] = last. */
static void karras_sigmas(double *sg, int32_t N, double first, double last)
{
    const double rho = 7.0, last_inv = pow(last, 1.0 / rho), first_inv = pow(first, 1.0 / rho);
    for (int32_t i = 0; i < N; i++) sg[i] = pow(first_inv + np_linspace_at(1.0, N, i) * (last_inv - first_inv), rho);
}

/* _sigma_to_t (Euler's, Heun's and DPM-Solver's are one copied function) under NumPy 1.x's
 * casting: the float64 log sigma meets the float32 log_sigmas as float32 (value-based casting of
 * a scalar), w is float32, and (1 - w) * low_idx + w * high_idx is float64 (a float32 array times
 * an int64 array). */
static double sigma_to_t(double sigma, const float *log_sigmas, int64_t T)
{
    const float ls = (float)log(sigma);
    int64_t low = 0;
    for (int64_t i = 0; i < T; i++)  /* argmax of cumsum(dists >= 0): the last index with dists >= 0 */
        if (ls - log_sigmas[i] >= 0.0f) low = i;
    if (low > T - 2) low = T - 2;
    const float lo = log_sigmas[low], hi = log_sigmas[low + 1];
    float w = (lo - ls) / (lo - hi);
    w = w < 0.0f ? 0.0f : w > 1.0f ? 1.0f : w;  /* np.clip (NaN passes) */
    return (double)(1.0f - w) * (double)low + (double)w * (double)(low + 1);
}

/* The timesteps of Karras sigmas: _sigma_to_t against log(training sigmas) (numpy's float32 log). */
static ngpt_status karras_timesteps(const ngpt_scheduler *s, const double *sigmas, int32_t N, double *ts)
{
    float *log_sigmas = nx_malloc((size_t)s->T * sizeof *log_sigmas);
    if (!log_sigmas) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_set_timesteps: out of memory");
    for (int64_t i = 0; i < s->T; i++) log_sigmas[i] = logf(s->train_sigma[i]);
    for (int32_t i = 0; i < N; i++) ts[i] = sigma_to_t(sigmas[i], log_sigmas, s->T);
    nx_free(log_sigmas);
    /* a noise schedule with betas outside (0, 1), or one whose alphas_cumprod falls below float32's
     * range, has NaN or infinite sigmas (diffusers: NaN timesteps that no step can find) */
    for (int32_t i = 0; i < N; i++)
        if (!isfinite(ts[i]))
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_set_timesteps: Karras sigma %g maps to timestep %g: "
                          "the noise schedule is unusable (betas outside (0, 1), or alphas_cumprod below "
                          "float32's range)", sigmas[i], ts[i]);
    return NGPT_OK;
}

/* Euler's N timesteps and sigmas; Heun's are the same with each after the first taken twice:
 * timesteps [t0, t1, t1, ..., tN-1, tN-1], sigmas [s0, s1, s1, ..., sN-1, sN-1, 0]. */
static ngpt_status set_euler(ngpt_scheduler *s, int32_t N)
{
    const bool heun = s->kind == NGPT_SCHEDULER_HEUN;
    const size_t n = heun ? 2 * (size_t)N - 1 : (size_t)N;
    const int64_t T = s->T;
    double *t = nx_malloc((size_t)N * sizeof *t), *sg = nx_malloc((size_t)N * sizeof *sg);
    ngpt_status st = t && sg ? ts_alloc(s, n) : nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_set_timesteps: out of memory");
    if (st == NGPT_OK) {
        for (int32_t i = 0; i < N; i++) t[i] = np_linspace_at((double)(T - 1), N, N - 1 - i);  /* [::-1] */
        for (int32_t i = 0; i < N; i++) sg[i] = np_interp_arange(t[i], s->train_sigma, T);
        if (s->karras) {  /* Karras sigmas between the interpolated ones' ends, the timesteps back from them */
            karras_sigmas(sg, N, sg[0], sg[N - 1]);
            st = karras_timesteps(s, sg, N, t);
        }
    }
    if (st == NGPT_OK) {
        for (size_t k = 0; k < n; k++) {
            const size_t i = heun ? (k + 1) / 2 : k;
            s->tsf[k] = t[i];
            s->sigmas[k] = (float)sg[i];
            s->ts[k] = 0;  /* unused: ngpt_scheduler_timesteps refuses these kinds */
        }
        s->sigmas[n] = 0.0f;
        if (heun) {  /* HeunDiscreteScheduler.set_timesteps sets init_noise_sigma = sigmas.max() */
            s->init_sigma = 0.0f;
            for (size_t k = 0; k <= n; k++)
                if (s->sigmas[k] > s->init_sigma || isnan(s->sigmas[k])) s->init_sigma = s->sigmas[k];
        }
    }
    nx_free(t);
    nx_free(sg);
    return st;
}

NGPT_API ngpt_status ngpt_scheduler_set_timesteps(ngpt_scheduler *s, int32_t n)
{
    if (!s) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_set_timesteps: s is NULL");
    if (n < 1 || (int64_t)n > s->T)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_set_timesteps: num_inference_steps %d must be in "
                      "[1, num_train_timesteps = %lld]", n, (long long)s->T);
    ngpt_status st;
    switch (s->kind) {
    case NGPT_SCHEDULER_DDIM: st = set_ddim(s, n); break;
    case NGPT_SCHEDULER_PNDM: st = set_pndm(s, n); break;
    case NGPT_SCHEDULER_DPMSOLVER_MULTISTEP:
    case NGPT_SCHEDULER_UNIPC_MULTISTEP: st = set_dpm(s, n); break;  /* (UniPC: no clipping, no Karras) */
    default: st = set_euler(s, n); break;
    }
    if (!is_kdiffusion(s))
        for (size_t i = 0; st == NGPT_OK && i < s->n_ts; i++) s->tsf[i] = (double)s->ts[i];
    /* steps_offset can push the largest timesteps past the schedule (diffusers fails at the step,
     * indexing alphas_cumprod; python's negative indices reach back to -T) */
    for (size_t i = 0; st == NGPT_OK && !is_kdiffusion(s) && i < s->n_ts; i++)
        if (s->ts[i] < -s->T || s->ts[i] >= s->T)
            st = nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_set_timesteps: %d steps with steps_offset %lld give "
                        "timestep %lld, outside the %lld of alphas_cumprod", n, (long long)s->steps_offset,
                        (long long)s->ts[i], (long long)s->T);
    if (st != NGPT_OK) { s->n_inference = 0; s->n_ts = 0; return st; }
    s->n_inference = n;
    free_state(s);
    reset_state(s);
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_scheduler_timesteps(const ngpt_scheduler *s, const int64_t **ts, size_t *n)
{
    if (!s || !ts || !n) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_timesteps: NULL argument");
    if (!s->n_inference) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_timesteps: call ngpt_scheduler_set_timesteps first");
    if (is_kdiffusion(s))
        return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_scheduler_timesteps: %s's timesteps are fractional: use "
                      "ngpt_scheduler_timesteps_f64", kind_class(s->kind));
    *ts = s->ts;
    *n = s->n_ts;
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_scheduler_timesteps_f64(const ngpt_scheduler *s, const double **ts, size_t *n)
{
    if (!s || !ts || !n) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_timesteps_f64: NULL argument");
    if (!s->n_inference)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_timesteps_f64: call ngpt_scheduler_set_timesteps first");
    *ts = s->tsf;
    *n = s->n_ts;
    return NGPT_OK;
}

/* The first index of timestep t in the schedule, as diffusers' (timesteps == t).nonzero() (PNDM
 * repeats one), or n_ts. */
static size_t first_step(const ngpt_scheduler *s, double t)
{
    size_t i = 0;
    while (i < s->n_ts && s->tsf[i] != t) i++;
    return i;
}

/* A k-diffusion sampler's index of timestep t (Euler: the expected next step first, as Karras
 * timesteps may repeat; Heun: its index_for_timestep rule), or n_ts. */
static size_t find_step(const ngpt_scheduler *s, double t)
{
    if (s->kind == NGPT_SCHEDULER_HEUN) {  /* index_for_timestep: the last match in the first-order state, else the first */
        size_t idx = s->n_ts;
        for (size_t i = 0; i < s->n_ts; i++)
            if (s->tsf[i] == t) {
                idx = i;
                if (s->heun_second) break;
            }
        return idx;
    }
    if (s->next < s->n_ts && s->tsf[s->next] == t) return s->next;
    return first_step(s, t);
}

static ngpt_status not_in_schedule(const ngpt_scheduler *s, const char *fn, double t)
{
    return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: timestep %.10g is not in the schedule (%zu timesteps from %.10g)", fn, t,
                  s->n_ts, s->n_ts ? s->tsf[0] : -1.0);
}

/* A k-diffusion step's sigma from its timestep (Euler, Euler ancestral, Heun). */
static ngpt_status kdiffusion_sigma(const ngpt_scheduler *s, const char *fn, double t, float *sigma)
{
    if (!s->n_inference) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: call ngpt_scheduler_set_timesteps first", fn);
    size_t idx = find_step(s, t);
    if (idx == s->n_ts) return not_in_schedule(s, fn, t);
    *sigma = s->sigmas[idx];
    return NGPT_OK;
}

float nx_sched_input_divisor(const ngpt_scheduler *s, size_t k)
{
    if (!is_kdiffusion(s) || k >= s->n_ts) return 0.0f;
    const float sg = s->sigmas[k];
    return sqrtf(sg * sg + 1.0f);
}

bool nx_sched_needs_noise(const ngpt_scheduler *s)
{
    switch (s->kind) {
    case NGPT_SCHEDULER_DDIM: return s->eta > 0.0f;
    case NGPT_SCHEDULER_DPMSOLVER_MULTISTEP: return s->algo == NGPT_DPM_SDE_DPMSOLVER_PP || s->algo == NGPT_DPM_SDE_DPMSOLVER;
    case NGPT_SCHEDULER_EULER_ANCESTRAL: return true;
    default: return false;
    }
}

NGPT_API ngpt_status ngpt_scheduler_reset(ngpt_scheduler *s)
{
    if (!s) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_reset: s is NULL");
    free_state(s);  /* a new trajectory may have another size */
    reset_state(s);
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_scheduler_alphas_cumprod(const ngpt_scheduler *s, const float **acp, size_t *n)
{
    if (!s || !acp || !n) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_alphas_cumprod: NULL argument");
    *acp = s->acp;
    *n = (size_t)s->T;
    return NGPT_OK;
}

NGPT_API float ngpt_scheduler_init_noise_sigma(const ngpt_scheduler *s)
{
    return s && is_kdiffusion(s) ? s->init_sigma : 1.0f;
}

NGPT_API ngpt_status ngpt_scheduler_scale_model_input_f64(const ngpt_scheduler *s, float *sample, size_t n,
                                                          double timestep)
{
    static const char fn[] = "ngpt_scheduler_scale_model_input";
    if (!s || (n && !sample)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!is_kdiffusion(s)) return NGPT_OK;
    float sigma;
    NX_TRY(kdiffusion_sigma(s, fn, timestep, &sigma));
    const float c = sqrtf(sigma * sigma + 1.0f);  /* sample / ((sigma**2 + 1) ** 0.5) */
    for (size_t i = 0; i < n; i++) sample[i] = sample[i] / c;
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_scheduler_scale_model_input(const ngpt_scheduler *s, float *sample, size_t n, int64_t timestep)
{
    return ngpt_scheduler_scale_model_input_f64(s, sample, n, (double)timestep);
}

NGPT_API ngpt_status ngpt_scheduler_add_noise_f64(const ngpt_scheduler *s, float *out, const float *original,
                                                  const float *noise, size_t n, double timestep)
{
    static const char fn[] = "ngpt_scheduler_add_noise";
    if (!s || (n && (!out || !original || !noise))) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (is_kdiffusion(s)) {
        float sigma;
        NX_TRY(kdiffusion_sigma(s, fn, timestep, &sigma));
        for (size_t i = 0; i < n; i++) out[i] = original[i] + noise[i] * sigma;
        return NGPT_OK;
    }
    if (!(timestep >= 0.0 && timestep < (double)s->T) || timestep != floor(timestep))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: timestep %.10g is not an integer in [0, %lld)", fn, timestep,
                      (long long)s->T);
    return ngpt_scheduler_add_noise(s, out, original, noise, n, (int64_t)timestep);
}

NGPT_API ngpt_status ngpt_scheduler_add_noise(const ngpt_scheduler *s, float *out, const float *original,
                                              const float *noise, size_t n, int64_t t)
{
    if (!s || (n && (!out || !original || !noise)))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_add_noise: NULL argument");
    if (is_kdiffusion(s)) return ngpt_scheduler_add_noise_f64(s, out, original, noise, n, (double)t);
    if (t < 0 || t >= s->T)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_add_noise: timestep %lld outside [0, %lld)", (long long)t, (long long)s->T);
    const float a = s->acp[t];
    const float sa = sqrtf(a), sb = sqrtf(1.0f - a);
    for (size_t i = 0; i < n; i++) out[i] = sa * original[i] + sb * noise[i];
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * step
 * ------------------------------------------------------------------------------------------- */

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
static int ets_push(ngpt_scheduler *s)
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
            p->push = ets_push(s);
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
        p->push = ets_push(s);
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
static int mo_push(ngpt_scheduler *s, int64_t t)
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

static ngpt_status plan_dpm(ngpt_scheduler *s, int64_t t, size_t idx, bool have_noise, nx_sched_step *p)
{
    const bool sde = s->algo == NGPT_DPM_SDE_DPMSOLVER_PP || s->algo == NGPT_DPM_SDE_DPMSOLVER;
    if (sde && !have_noise)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: the SDE DPM-Solver variants need variance_noise");
    p->noise = sde;
    const size_t last = s->n_ts - 1;
    const int64_t prev_t = idx == last ? 0 : s->ts[idx + 1];
    const bool low_final = idx == last && s->lower_order_final && s->n_ts < 15;
    const bool low_second = s->n_ts >= 2 && idx == last - 1 && s->lower_order_final && s->n_ts < 15;

    mo_push(s, t);

    int order;
    if (s->order == 1 || s->lower_order_nums < 1 || low_final) order = 1;
    else if (s->order == 2 || s->lower_order_nums < 2 || low_second) order = 2;
    else order = 3;
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

enum { SLOT_HEUN_DERIV = 0, SLOT_HEUN_SAMPLE = 1 };

static ngpt_status plan_euler(ngpt_scheduler *s, size_t idx, bool have_noise, nx_sched_step *p)
{
    nx_euler_coef *c = &p->c.euler;
    const bool second = s->kind == NGPT_SCHEDULER_HEUN && s->heun_second;
    if (second && idx == 0)  /* diffusers would read sigmas[-1] */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: Heun's second-order step at the first "
                      "timestep: take the steps in order");
    const float sigma = s->sigmas[second ? idx - 1 : idx], sigma_next = s->sigmas[second ? idx : idx + 1];
    /* the x0 prediction's sigma: sigma_hat (= sigma, gamma 0), for Heun's second step sigma_next */
    const float si = second ? sigma_next : sigma;
    c->pred = s->pred;
    c->sigma = si;
    c->v_skip_div = si * si + 1.0f;
    c->v_out = -si / sqrtf(si * si + 1.0f);
    if (s->kind == NGPT_SCHEDULER_HEUN) {
        c->heun = second ? NX_HEUN_SECOND : NX_HEUN_FIRST;
        p->m[0] = SLOT_HEUN_DERIV;
        p->m[1] = SLOT_HEUN_SAMPLE;
        if (!second) s->heun_dt = sigma_next - sigma;
        c->dt = s->heun_dt;
        s->heun_second = !second;
    } else if (s->kind == NGPT_SCHEDULER_EULER_ANCESTRAL) {
        if (!have_noise)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_step: EulerAncestralDiscreteScheduler needs "
                          "variance_noise");
        const float to2 = sigma_next * sigma_next, from2 = sigma * sigma;
        c->sigma_up = sqrtf(to2 * (from2 - to2) / from2);
        /* sigma_to**2 - sigma_up**2 is sigma_to**4 / sigma_from**2 >= 0; rounding could make it
         * negative where sigma_to << sigma_from (diffusers: NaN), so it is held at 0 */
        float down2 = to2 - c->sigma_up * c->sigma_up;
        float down = sqrtf(down2 > 0.0f ? down2 : 0.0f);
        if (!isfinite(c->sigma_up) || !isfinite(down)) {
            /* sigmas past ~1e9 (thousands of training steps) overflow these float32 products
             * (diffusers: inf and NaN latents); in double they are finite */
            const double t2 = (double)sigma_next * sigma_next, f2 = (double)sigma * sigma, up = sqrt(t2 * (f2 - t2) / f2);
            c->sigma_up = (float)up;
            down = (float)sqrt(fmax(t2 - up * up, 0.0));
        }
        c->dt = down - sigma;
        c->ancestral = true;
        p->noise = true;
    } else {
        c->dt = sigma_next - sigma;
    }
    s->next = idx + 1;
    return NGPT_OK;
}

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
static ngpt_status plan_unipc(ngpt_scheduler *s, int64_t t, size_t idx, nx_sched_step *p)
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
    p->push = mo_push(s, t);
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
static void plan_lms(ngpt_scheduler *s, size_t idx, nx_sched_step *p)
{
    nx_lms_coef *c = &p->c.lms;
    const float sigma = s->sigmas[idx];
    c->pred = s->pred;
    c->sigma = sigma;
    c->v_skip_div = sigma * sigma + 1.0f;
    c->v_out = -sigma / sqrtf(sigma * sigma + 1.0f);
    for (int j = 0; j < 3; j++) p->e[j] = j < s->n_ets ? s->ets[j] : -1;
    p->push = ets_push(s);
    /* order = min(step_index + 1, 4); zip() with the derivatives kept stops at the shorter */
    const int order = idx + 1 < 4 ? (int)idx + 1 : 4;
    c->order = order < s->n_ets ? order : s->n_ets;
    for (int k = 0; k < c->order; k++) c->c[k] = (float)lms_coefficient(s->sigmas, order, idx, k);
    s->next = idx + 1;
}

int nx_sched_slots(const ngpt_scheduler *s)
{
    switch (s->kind) {
    case NGPT_SCHEDULER_DDIM: return 0;
    case NGPT_SCHEDULER_PNDM: return NX_SCHED_SLOTS;
    case NGPT_SCHEDULER_DPMSOLVER_MULTISTEP: return s->order;
    case NGPT_SCHEDULER_HEUN: return 2;
    case NGPT_SCHEDULER_UNIPC_MULTISTEP: return s->order + 1;  /* model_outputs, then last_sample */
    case NGPT_SCHEDULER_LMS: return 4;                          /* the derivatives */
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
    const bool kd = is_kdiffusion(s);
    const size_t idx = kd ? find_step(s, ts_f) : first_step(s, ts_f);
    /* DDIM trailing can end at -1 (diffusers indexes from the end) */
    if (idx == s->n_ts || (!kd && (ts_f < (double)-s->T || ts_f >= (double)s->T)))
        return not_in_schedule(s, "ngpt_scheduler_step", ts_f);
    const int64_t timestep = kd ? 0 : s->ts[idx];
    memset(p, 0, sizeof *p);
    p->n = (int64_t)n;
    p->push = p->save_x = p->acc = p->xin = -1;
    for (int j = 0; j < 4; j++) p->e[j] = -1;
    for (int j = 0; j < 3; j++) p->m[j] = -1;
    ngpt_status st;
    switch (s->kind) {
    case NGPT_SCHEDULER_DDIM: p->kind = NX_SCHED_KIND_DDIM; st = plan_ddim(s, timestep, have_noise, p); break;
    case NGPT_SCHEDULER_PNDM: p->kind = NX_SCHED_KIND_PNDM; st = plan_pndm(s, timestep, p); break;
    case NGPT_SCHEDULER_DPMSOLVER_MULTISTEP: p->kind = NX_SCHED_KIND_DPM; st = plan_dpm(s, timestep, idx, have_noise, p); break;
    case NGPT_SCHEDULER_UNIPC_MULTISTEP: p->kind = NX_SCHED_KIND_UNIPC; st = plan_unipc(s, timestep, idx, p); break;
    case NGPT_SCHEDULER_LMS: p->kind = NX_SCHED_KIND_LMS; plan_lms(s, idx, p); st = NGPT_OK; break;
    default: p->kind = NX_SCHED_KIND_EULER; st = plan_euler(s, idx, have_noise, p); break;
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
