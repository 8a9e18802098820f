/* test_sched.c — the diffusion schedulers (DDIM, PNDM, DPM-Solver multistep) against every
 * golden case of stages scheduler.ddim / scheduler.pndm / scheduler.dpmsolver (the shared set
 * and tests/golden), plus error paths and reset. Reads safetensors with a tiny reader of its own
 * (F32 / I64 only). */
#include "nextgpt.h"
#include "core/alloc.h"
#include "ops/backend.h"
#include "sched/sched.h"
#include "test.h"

#include <dirent.h>
#include <jansson.h>

/* ---- tiny safetensors reader ---- */
typedef struct st_file { unsigned char *buf; size_t len; json_t *hdr; } st_file;

static int st_open(st_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->buf = malloc((size_t)len);
    f->len = (size_t)len;
    size_t got = fread(f->buf, 1, (size_t)len, fp);
    fclose(fp);
    if (got != (size_t)len || len < 8) return 0;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | f->buf[i];
    f->hdr = json_loadb((const char *)f->buf + 8, (size_t)hl, 0, NULL);
    return f->hdr != NULL;
}

static void st_close(st_file *f)
{
    json_decref(f->hdr);
    free(f->buf);
}

/* Pointer to tensor `name` (NULL if absent), its dtype string, numel and shape. */
static const void *st_get(const st_file *f, const char *name, const char **dtype, size_t *numel, int64_t *shape, int *rank)
{
    json_t *t = json_object_get(f->hdr, name);
    if (!t) return NULL;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | f->buf[i];
    *dtype = json_string_value(json_object_get(t, "dtype"));
    json_t *sh = json_object_get(t, "shape");
    size_t n = 1;
    *rank = (int)json_array_size(sh);
    for (size_t i = 0; i < json_array_size(sh); i++) {
        shape[i] = json_integer_value(json_array_get(sh, i));
        n *= (size_t)shape[i];
    }
    *numel = n;
    size_t off = (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
    return f->buf + 8 + hl + off;
}

static float *st_f32(const st_file *f, const char *name, size_t *numel, int64_t *shape, int *rank)
{
    const char *dt;
    const void *p = st_get(f, name, &dt, numel, shape, rank);
    if (!p || strcmp(dt, "F32")) return NULL;
    float *out = malloc(*numel * sizeof *out + 1);
    memcpy(out, p, *numel * sizeof *out);
    return out;
}

/* ---- golden cases ---- */
static int n_cases, n_passed;

static void run_case(const char *dir, const char *stage)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/case.json", dir);
    json_t *cj = json_load_file(path, 0, NULL);
    CHECK_MSG(cj != NULL, "%s", path);
    if (!cj) return;
    n_cases++;
    const int before = t_failed;
    json_t *params = json_object_get(cj, "params");
    const double atol = json_number_value(json_object_get(cj, "atol"));
    const double rtol = json_number_value(json_object_get(cj, "rtol"));
    char *txt = json_dumps(params, 0);
    ngpt_scheduler_params p;
    ngpt_scheduler_params_default(&p, sizeof p);
    p.kind = !strcmp(stage, "scheduler.ddim") ? NGPT_SCHEDULER_DDIM
           : !strcmp(stage, "scheduler.pndm") ? NGPT_SCHEDULER_PNDM
           : !strcmp(stage, "scheduler.euler") ? NGPT_SCHEDULER_EULER
           : !strcmp(stage, "scheduler.euler_ancestral") ? NGPT_SCHEDULER_EULER_ANCESTRAL
           : !strcmp(stage, "scheduler.heun") ? NGPT_SCHEDULER_HEUN
           : !strcmp(stage, "scheduler.unipc") ? NGPT_SCHEDULER_UNIPC_MULTISTEP
           : !strcmp(stage, "scheduler.lms") ? NGPT_SCHEDULER_LMS
           : !strcmp(stage, "scheduler.kdpm2") ? NGPT_SCHEDULER_KDPM2
           : !strcmp(stage, "scheduler.kdpm2_ancestral") ? NGPT_SCHEDULER_KDPM2_ANCESTRAL
           : !strcmp(stage, "scheduler.deis") ? NGPT_SCHEDULER_DEIS_MULTISTEP
           : !strcmp(stage, "scheduler.ddpm") ? NGPT_SCHEDULER_DDPM
           : !strcmp(stage, "scheduler.dpmsolver_singlestep") ? NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP
           : NGPT_SCHEDULER_DPMSOLVER_MULTISTEP;
    const bool euler = p.kind == NGPT_SCHEDULER_EULER || p.kind == NGPT_SCHEDULER_EULER_ANCESTRAL || p.kind == NGPT_SCHEDULER_HEUN ||
                       p.kind == NGPT_SCHEDULER_LMS || p.kind == NGPT_SCHEDULER_KDPM2 ||
                       p.kind == NGPT_SCHEDULER_KDPM2_ANCESTRAL;
    json_t *eta = json_object_get(params, "eta");
    if (eta) p.eta = (float)json_number_value(eta);
    p.use_clipped_model_output = json_is_true(json_object_get(params, "use_clipped_model_output"));
    ngpt_scheduler *s = NULL;
    CHECK_OK(ngpt_scheduler_create_from_json(&s, txt, strlen(txt), &p));
    free(txt);
    st_file in, ex;
    snprintf(path, sizeof path, "%s/inputs.safetensors", dir);
    CHECK(st_open(&in, path));
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    CHECK(st_open(&ex, path));
    if (!s || !in.hdr || !ex.hdr) goto done;
    CHECK_OK(ngpt_scheduler_set_timesteps(s, (int32_t)json_integer_value(json_object_get(params, "num_inference_steps"))));

    size_t n0, nm, ne, nacp, nts;
    int64_t sh[8];
    int rank;
    float *x = st_f32(&in, "sample0", &n0, sh, &rank);
    float *mo = st_f32(&in, "model_outputs", &nm, sh, &rank);
    size_t nn = 0;
    float *noise = st_f32(&in, "variance_noise", &nn, sh, &rank);
    float *exp_s = st_f32(&ex, "samples", &ne, sh, &rank);
    float *exp_acp = st_f32(&ex, "alphas_cumprod", &nacp, sh, &rank);
    size_t n_in = 0, n_sig = 0;
    float *exp_in = euler ? st_f32(&ex, "model_inputs", &n_in, sh, &rank) : NULL;
    float *exp_sig = euler ? st_f32(&ex, "init_noise_sigma", &n_sig, sh, &rank) : NULL;
    const char *dt;
    const void *exp_ts = st_get(&ex, "timesteps", &dt, &nts, sh, &rank);
    CHECK(x && mo && exp_s && exp_acp && exp_ts && (!euler || (exp_in && exp_sig)));
    CHECK(exp_ts && !strcmp(dt, euler ? "F64" : "I64"));
    if (!x || !mo || !exp_s || !exp_acp || !exp_ts || (euler && (!exp_in || !exp_sig))) goto done2;

    const double *ts;
    size_t T;
    CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &T));
    CHECK_MSG(T == nts, "%s: %zu timesteps, expected %zu", dir, T, nts);
    if (euler) {
        const int64_t *ti;
        size_t Ti;
        CHECK_ERR(ngpt_scheduler_timesteps(s, &ti, &Ti), NGPT_ERR_UNSUPPORTED, "ngpt_scheduler_timesteps_f64");
        CHECK(ngpt_scheduler_init_noise_sigma(s) == exp_sig[0]);
    } else {
        const int64_t *ti;
        size_t Ti;
        CHECK_OK(ngpt_scheduler_timesteps(s, &ti, &Ti));
        CHECK(Ti == T);
        for (size_t k = 0; k < T && k < Ti; k++) CHECK(ts[k] == (double)ti[k]);
    }
    for (size_t k = 0; k < T && k < nts; k++) {
        const double e = euler ? ((const double *)exp_ts)[k] : (double)((const int64_t *)exp_ts)[k];
        /* KDPM2's midpoint timesteps go through torch's log (Sleef's SIMD code, not libm's) */
        const double tol = euler ? atol + rtol * fabs(e) : 0.0;
        CHECK_MSG(fabs(ts[k] - e) <= tol, "%s: timestep %zu: %.17g vs %.17g", dir, k, ts[k], e);
    }
    const float *acp;
    size_t na;
    CHECK_OK(ngpt_scheduler_alphas_cumprod(s, &acp, &na));
    CHECK(na == nacp);
    if (na == nacp) test_close("alphas_cumprod", acp, exp_acp, na, 0.0f, 0.0f);  /* bit exact */
    if (T == nts && nm == T * n0 && ne == T * n0) {
        for (int pass = 0; pass < 2; pass++) {  /* pass 1: after reset, the same trajectory */
            float *cur = malloc(n0 * sizeof *cur);
            memcpy(cur, x, n0 * sizeof *cur);
            double worst = 0;
            for (size_t k = 0; k < T; k++) {
                char what[8192];
                if (euler && n_in == T * n0) {
                    float *in = malloc(n0 * sizeof *in);
                    memcpy(in, cur, n0 * sizeof *in);
                    CHECK_OK(ngpt_scheduler_scale_model_input_f64(s, in, n0, ts[k]));
                    snprintf(what, sizeof what, "%s model input %zu", dir, k);
                    test_close(what, in, exp_in + k * n0, n0, (float)atol, (float)rtol);
                    free(in);
                }
                CHECK_OK(ngpt_scheduler_step_f64(s, mo + k * n0, ts[k], cur, n0, noise ? noise + k * n0 : NULL));
                snprintf(what, sizeof what, "%s step %zu", dir, k);
                test_close(what, cur, exp_s + k * n0, n0, (float)atol, (float)rtol);
                for (size_t i = 0; i < n0; i++) {
                    double d = fabs((double)cur[i] - exp_s[k * n0 + i]);
                    if (d > worst) worst = d;
                }
            }
            if (pass == 0) fprintf(stderr, "  %s: max |diff| %.3g (atol %g)\n", dir, worst, atol);
            free(cur);
            CHECK_OK(ngpt_scheduler_reset(s));
        }
    } else {
        CHECK_MSG(0, "%s: sizes: sample %zu, model_outputs %zu, samples %zu, T %zu", dir, n0, nm, ne, T);
    }
done2:
    free(x); free(mo); free(noise); free(exp_s); free(exp_acp); free(exp_in); free(exp_sig);
done:
    if (in.hdr || in.buf) st_close(&in);
    if (ex.hdr || ex.buf) st_close(&ex);
    ngpt_scheduler_free(s);
    json_decref(cj);
    if (t_failed == before) n_passed++;
}

static void run_root(const char *root)
{
    DIR *d = opendir(root);
    if (!d) { fprintf(stderr, "  (no %s)\n", root); return; }
    struct dirent *fam;
    while ((fam = readdir(d))) {
        if (fam->d_name[0] == '.') continue;
        const char *stages[] = {"scheduler.ddim", "scheduler.pndm", "scheduler.dpmsolver", "scheduler.euler",
                                "scheduler.euler_ancestral", "scheduler.heun", "scheduler.unipc",
                                "scheduler.lms", "scheduler.kdpm2", "scheduler.kdpm2_ancestral", "scheduler.deis",
                                "scheduler.ddpm", "scheduler.dpmsolver_singlestep"};
        for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
            char sdir[4096];
            snprintf(sdir, sizeof sdir, "%s/%s/%s", root, fam->d_name, stages[i]);
            DIR *sd = opendir(sdir);
            if (!sd) continue;
            struct dirent *c;
            while ((c = readdir(sd))) {
                if (c->d_name[0] == '.') continue;
                char cdir[4096 + 256];
                snprintf(cdir, sizeof cdir, "%s/%s", sdir, c->d_name);
                run_case(cdir, stages[i]);
            }
            closedir(sd);
        }
    }
    closedir(d);
}

static void test_golden(void)
{
    const char *src = getenv("NGPT_SOURCE_ROOT");
    const char *shared = getenv("NGPT_GOLDEN_DIR");
    char a[4096], b[4096];
    if (!src) src = ".";
    if (shared) snprintf(a, sizeof a, "%s", shared);
    else snprintf(a, sizeof a, "%s/../shared/golden", src);
    snprintf(b, sizeof b, "%s/tests/golden", src);
    run_root(a);
    run_root(b);
    const char *models[3] = {"sd-a", "audioldm-a", "zeroscope-a"};
    const ngpt_scheduler_kind kinds[3] = {NGPT_SCHEDULER_PNDM, NGPT_SCHEDULER_DDIM, NGPT_SCHEDULER_DDIM};
    for (int i = 0; i < 3; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/models/%s/scheduler/scheduler_config.json", a, models[i]);
        ngpt_scheduler *s = NULL;
        CHECK_OK(ngpt_scheduler_create(&s, path, NULL));
        CHECK(ngpt_scheduler_get_kind(s) == kinds[i]);
        ngpt_scheduler_free(s);
    }
    fprintf(stderr, "  golden scheduler cases: %d passed of %d\n", n_passed, n_cases);
    CHECK(n_cases > 0);
}

/* ---- errors ---- */
static const char *k_sd = "{\"_class_name\": \"PNDMScheduler\", \"beta_start\": 0.00085, \"beta_end\": 0.012, "
                          "\"beta_schedule\": \"scaled_linear\", \"num_train_timesteps\": 1000, \"skip_prk_steps\": true, "
                          "\"steps_offset\": 1, \"set_alpha_to_one\": false, \"clip_sample\": false}";

static ngpt_status from(const char *json, ngpt_scheduler_kind kind, ngpt_scheduler **s)
{
    ngpt_scheduler_params p;
    ngpt_scheduler_params_default(&p, sizeof p);
    p.kind = kind;
    return ngpt_scheduler_create_from_json(s, json, strlen(json), &p);
}

static void test_errors(void)
{
    ngpt_scheduler *s = NULL;
    CHECK_ERR(from("{\"beta_schedule\": \"cubic\"}", NGPT_SCHEDULER_DDIM, &s), NGPT_ERR_UNSUPPORTED, "cubic");
    CHECK(s == NULL);
    CHECK_ERR(from("{\"_class_name\": \"ScoreSdeVeScheduler\"}", NGPT_SCHEDULER_AUTO, &s), NGPT_ERR_UNSUPPORTED, "ScoreSdeVeScheduler");
    CHECK_ERR(from("{}", NGPT_SCHEDULER_AUTO, &s), NGPT_ERR_INVALID_ARGUMENT, "_class_name");
    CHECK_ERR(from("{\"beta_start\": ", NGPT_SCHEDULER_DDIM, &s), NGPT_ERR_BAD_FORMAT, "scheduler config:1:15");
    CHECK_ERR(from("{\"beta_start\": \"x\"}", NGPT_SCHEDULER_DDIM, &s), NGPT_ERR_BAD_FORMAT, "beta_start");
    CHECK_ERR(from("{\"prediction_type\": \"flow\"}", NGPT_SCHEDULER_DDIM, &s), NGPT_ERR_UNSUPPORTED, "flow");
    CHECK_ERR(from("{\"thresholding\": true}", NGPT_SCHEDULER_DDIM, &s), NGPT_ERR_UNSUPPORTED, "thresholding");
    CHECK_ERR(from("{\"algorithm_type\": \"foo\"}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, &s), NGPT_ERR_UNSUPPORTED, "foo");
    CHECK_ERR(from("{\"use_karras_sigmas\": \"yes\"}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, &s), NGPT_ERR_BAD_FORMAT, "karras");
    CHECK_ERR(from("{\"solver_order\": 4}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, &s), NGPT_ERR_UNSUPPORTED, "solver_order");
    CHECK_ERR(ngpt_scheduler_create(&s, "/nonexistent/scheduler_config.json", NULL), NGPT_ERR_NOT_FOUND, "nonexistent");
    /* Python's json writes -Infinity (DPM-Solver's lambda_min_clipped); strings keep the token */
    CHECK_OK(from("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"lambda_min_clipped\": -Infinity, "
                  "\"variance_type\": \"NaN Infinity\"}", NGPT_SCHEDULER_AUTO, &s));
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 10));
    ngpt_scheduler_free(s);
    s = NULL;
    CHECK_ERR(from("{\"lambda_min_clipped\": -Inf}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, &s), NGPT_ERR_BAD_FORMAT, "scheduler config:1:24");
    CHECK_ERR(ngpt_scheduler_create_from_json(NULL, "{}", 2, NULL), NGPT_ERR_INVALID_ARGUMENT, "");
    ngpt_scheduler_free(NULL);

    CHECK_OK(from(k_sd, NGPT_SCHEDULER_AUTO, &s));
    CHECK(ngpt_scheduler_get_kind(s) == NGPT_SCHEDULER_PNDM);
    float x[4] = {0}, m[4] = {0};
    CHECK_ERR(ngpt_scheduler_step(s, m, 1, x, 4, NULL), NGPT_ERR_INVALID_ARGUMENT, "set_timesteps");
    CHECK_ERR(ngpt_scheduler_set_timesteps(s, 0), NGPT_ERR_INVALID_ARGUMENT, "num_inference_steps");
    CHECK_ERR(ngpt_scheduler_set_timesteps(s, 1001), NGPT_ERR_INVALID_ARGUMENT, "num_inference_steps");
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 10));
    CHECK_ERR(ngpt_scheduler_step(s, m, 500, x, 4, NULL), NGPT_ERR_INVALID_ARGUMENT, "not in the schedule");
    CHECK_OK(ngpt_scheduler_step(s, m, 901, x, 4, NULL));
    CHECK_ERR(ngpt_scheduler_step(s, m, 801, x, 3, NULL), NGPT_ERR_SHAPE_MISMATCH, "n = 3, but earlier steps had 4");
    ngpt_scheduler_free(s);

    /* DDIM eta > 0 needs noise */
    const int64_t *ts_ddim;
    size_t n_ddim;
    ngpt_scheduler_params p;
    ngpt_scheduler_params_default(&p, sizeof p);
    p.kind = NGPT_SCHEDULER_DDIM;
    p.eta = 0.5f;
    CHECK_OK(ngpt_scheduler_create_from_json(&s, k_sd, strlen(k_sd), &p));
    CHECK(ngpt_scheduler_get_kind(s) == NGPT_SCHEDULER_DDIM);
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 10));
    CHECK_ERR(ngpt_scheduler_step(s, m, 901, x, 4, NULL), NGPT_ERR_INVALID_ARGUMENT, "variance_noise");
    CHECK_OK(ngpt_scheduler_step(s, m, 901, x, 4, m));
    ngpt_scheduler_free(s);

    /* eta = 1 runs a whole schedule with finite samples; eta = 2 is refused at the first step
     * whose (1 - alphas_cumprod[prev] - std_dev^2) ** 0.5 would be NaN, before touching x */
    for (int e = 1; e <= 2; e++) {
        p.eta = (float)e;
        CHECK_OK(ngpt_scheduler_create_from_json(&s, k_sd, strlen(k_sd), &p));
        CHECK_OK(ngpt_scheduler_set_timesteps(s, 50));
        CHECK_OK(ngpt_scheduler_timesteps(s, &ts_ddim, &n_ddim));
        float xs[4] = {1, -1, 0.5f, 2};
        ngpt_status st = NGPT_OK;
        size_t k = 0;
        for (; k < n_ddim && st == NGPT_OK; k++) {
            float before[4];
            memcpy(before, xs, sizeof xs);
            st = ngpt_scheduler_step(s, m, ts_ddim[k], xs, 4, m);
            if (st != NGPT_OK) {
                CHECK(strstr(ngpt_last_error(), "eta = 2") != NULL);
                CHECK(memcmp(before, xs, sizeof xs) == 0);
            }
            for (int i = 0; i < 4; i++) CHECK(isfinite(xs[i]));
        }
        CHECK_MSG(e == 1 ? st == NGPT_OK : st == NGPT_ERR_INVALID_ARGUMENT, "eta %d: %s after %zu steps", e,
                  ngpt_status_string(st), k);
        ngpt_scheduler_free(s);
    }

    /* steps_offset past num_train_timesteps: refused at create; one that pushes the largest
     * timestep past the schedule: refused at set_timesteps (diffusers: IndexError at the step) */
    CHECK_ERR(from("{\"_class_name\": \"PNDMScheduler\", \"skip_prk_steps\": true, \"steps_offset\": 1555555555555555}",
                   NGPT_SCHEDULER_AUTO, &s), NGPT_ERR_BAD_FORMAT, "steps_offset");
    CHECK_OK(from("{\"_class_name\": \"DDIMScheduler\", \"steps_offset\": 99}", NGPT_SCHEDULER_AUTO, &s));
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 10));                                      /* 900 + 99 is in, */
    CHECK_ERR(ngpt_scheduler_set_timesteps(s, 1000), NGPT_ERR_INVALID_ARGUMENT, "1098"); /* 999 + 99 is not */
    ngpt_scheduler_free(s);

    /* DPM-Solver stepped twice at its first timestep: no out-of-bounds history read (ASan) */
    CHECK_OK(from("{\"solver_order\": 3}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, &s));
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 5));
    const int64_t *ts;
    size_t nts;
    CHECK_OK(ngpt_scheduler_timesteps(s, &ts, &nts));
    for (int k = 0; k < 3; k++) CHECK_OK(ngpt_scheduler_step(s, m, ts[0], x, 4, NULL));
    ngpt_scheduler_free(s);

    /* an older, shorter params struct is accepted; unknown flags are not */
    p.flags = 1;
    CHECK_ERR(ngpt_scheduler_create_from_json(&s, k_sd, strlen(k_sd), &p), NGPT_ERR_INVALID_ARGUMENT, "flags");
}

static void test_add_noise(void)
{
    ngpt_scheduler *s = NULL;
    CHECK_OK(from(k_sd, NGPT_SCHEDULER_AUTO, &s));
    const float *acp;
    size_t n;
    CHECK_OK(ngpt_scheduler_alphas_cumprod(s, &acp, &n));
    CHECK(n == 1000);
    float o[3] = {1, 2, 3}, e[3] = {0.5f, -1, 2}, out[3];
    CHECK_OK(ngpt_scheduler_add_noise(s, out, o, e, 3, 500));
    for (int i = 0; i < 3; i++) CHECK(out[i] == sqrtf(acp[500]) * o[i] + sqrtf(1.0f - acp[500]) * e[i]);
    CHECK_ERR(ngpt_scheduler_add_noise(s, out, o, e, 3, 1000), NGPT_ERR_INVALID_ARGUMENT, "timestep");
    CHECK(ngpt_scheduler_init_noise_sigma(s) == 1.0f);
    CHECK_OK(ngpt_scheduler_scale_model_input(s, out, 3, 500));
    ngpt_scheduler_free(s);
}

/* The Euler kinds: what the golden cases do not reach (errors, the int64 calls, add_noise). */
static void test_euler(void)
{
    ngpt_scheduler *s = NULL;
    static const char sd_euler[] = "{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_start\": 0.00085, "
                                   "\"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\"}";
    CHECK_OK(from(sd_euler, NGPT_SCHEDULER_AUTO, &s));
    CHECK(ngpt_scheduler_get_kind(s) == NGPT_SCHEDULER_EULER);
    /* SD 1.5's init_noise_sigma: ((1 - acp[999]) / acp[999]) ** 0.5 */
    const float *acp;
    size_t na;
    CHECK_OK(ngpt_scheduler_alphas_cumprod(s, &acp, &na));
    CHECK(ngpt_scheduler_init_noise_sigma(s) == sqrtf((1.0f - acp[999]) / acp[999]));
    CHECK(fabsf(ngpt_scheduler_init_noise_sigma(s) - 14.6146f) < 1e-3f);
    float x[4] = {1, 2, 3, 4}, m[4] = {0.5f, 0.5f, 0.5f, 0.5f}, out[4];
    const double *ts;
    size_t n;
    CHECK_ERR(ngpt_scheduler_timesteps_f64(s, &ts, &n), NGPT_ERR_INVALID_ARGUMENT, "set_timesteps");
    CHECK_ERR(ngpt_scheduler_step_f64(s, m, 999.0, x, 4, NULL), NGPT_ERR_INVALID_ARGUMENT, "set_timesteps");
    CHECK_ERR(ngpt_scheduler_scale_model_input_f64(s, x, 4, 999.0), NGPT_ERR_INVALID_ARGUMENT, "set_timesteps");
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 12));
    CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &n));
    /* np.linspace(0, 999, 12)[::-1]: i * (999 / 11), reversed */
    CHECK(n == 12 && ts[0] == 999.0 && ts[11] == 0.0 && ts[1] == 10.0 * (999.0 / 11.0));
    CHECK(ts[1] > 908.18 && ts[1] < 908.19);
    const int64_t *ti;
    size_t nti;
    CHECK_ERR(ngpt_scheduler_timesteps(s, &ti, &nti), NGPT_ERR_UNSUPPORTED, "fractional");
    /* a fractional timestep not in the schedule; the int64 calls work where the value is one */
    CHECK_ERR(ngpt_scheduler_step_f64(s, m, 908.0, x, 4, NULL), NGPT_ERR_INVALID_ARGUMENT, "not in the schedule");
    CHECK_ERR(ngpt_scheduler_scale_model_input(s, x, 4, 500), NGPT_ERR_INVALID_ARGUMENT, "not in the schedule");
    float a[4], b[4];
    memcpy(a, x, sizeof x);
    memcpy(b, x, sizeof x);
    CHECK_OK(ngpt_scheduler_scale_model_input(s, a, 4, 999));
    CHECK_OK(ngpt_scheduler_scale_model_input_f64(s, b, 4, 999.0));
    const float sig = ngpt_scheduler_init_noise_sigma(s);  /* sigmas[0] is the largest */
    for (int i = 0; i < 4; i++) CHECK(a[i] == x[i] / sqrtf(sig * sig + 1.0f) && a[i] == b[i]);
    /* add_noise: original + sigma(t) * noise, at a schedule timestep only */
    CHECK_OK(ngpt_scheduler_add_noise_f64(s, out, x, m, 4, ts[1]));
    CHECK_ERR(ngpt_scheduler_add_noise(s, out, x, m, 4, 500), NGPT_ERR_INVALID_ARGUMENT, "not in the schedule");
    CHECK_OK(ngpt_scheduler_add_noise(s, a, x, m, 4, 999));
    for (int i = 0; i < 4; i++) CHECK(a[i] == x[i] + m[i] * sig);
    /* one step at 999 by the int64 call = by the f64 call */
    memcpy(a, x, sizeof x);
    memcpy(b, x, sizeof x);
    CHECK_OK(ngpt_scheduler_step(s, m, 999, a, 4, NULL));
    CHECK_OK(ngpt_scheduler_reset(s));
    CHECK_OK(ngpt_scheduler_step_f64(s, m, 999.0, b, 4, NULL));
    CHECK(memcmp(a, b, sizeof a) == 0);
    ngpt_scheduler_free(s);
    s = NULL;

    /* the ancestral sampler draws noise; it has no x0 prediction */
    CHECK_OK(from("{}", NGPT_SCHEDULER_EULER_ANCESTRAL, &s));
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 5));
    CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &n));
    CHECK_ERR(ngpt_scheduler_step_f64(s, m, ts[0], x, 4, NULL), NGPT_ERR_INVALID_ARGUMENT, "variance_noise");
    for (size_t k = 0; k < n; k++) CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[k], x, 4, m));
    for (int i = 0; i < 4; i++) CHECK(isfinite(x[i]));
    ngpt_scheduler_free(s);
    s = NULL;
    CHECK_ERR(from("{\"prediction_type\": \"sample\"}", NGPT_SCHEDULER_EULER_ANCESTRAL, &s), NGPT_ERR_UNSUPPORTED, "sample");
    CHECK_ERR(from("{\"_class_name\": \"EulerDiscreteScheduler\", \"interpolation_type\": \"log_linear\"}",
                   NGPT_SCHEDULER_AUTO, &s), NGPT_ERR_UNSUPPORTED, "log_linear");
    CHECK_ERR(from("{\"use_karras_sigmas\": 1}", NGPT_SCHEDULER_EULER, &s), NGPT_ERR_BAD_FORMAT, "use_karras_sigmas");
    CHECK_ERR(from("{\"_class_name\": \"ScoreSdeVeScheduler\"}", NGPT_SCHEDULER_AUTO, &s), NGPT_ERR_UNSUPPORTED,
              "EulerAncestralDiscreteScheduler");
    CHECK_ERR(from("{}", (ngpt_scheduler_kind)14, &s), NGPT_ERR_INVALID_ARGUMENT, "kind 14");
    CHECK_ERR(from("{\"prediction_type\": \"sample\"}", NGPT_SCHEDULER_HEUN, &s), NGPT_ERR_UNSUPPORTED, "HeunDiscreteScheduler");
    /* Heun: timesteps [t0, t1, t1, ...]; each step's sigma follows its state (first order: the
     * last match of the timestep, second order: the first); a second-order step at t0 is refused */
    CHECK_OK(from("{}", NGPT_SCHEDULER_HEUN, &s));
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 3));
    CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &n));
    CHECK(n == 5 && ts[0] == 999.0 && ts[1] == ts[2] && ts[3] == ts[4] && ts[4] == 0.0);
    CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[0], x, 4, NULL));  /* first order */
    CHECK_ERR(ngpt_scheduler_step_f64(s, m, ts[0], x, 4, NULL), NGPT_ERR_INVALID_ARGUMENT, "in order");
    float h1[4] = {1, 1, 1, 1}, h2[4] = {1, 1, 1, 1};
    CHECK_OK(ngpt_scheduler_scale_model_input_f64(s, h1, 4, ts[1]));  /* second order: sigmas[1] */
    CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[1], x, 4, NULL));
    CHECK_OK(ngpt_scheduler_scale_model_input_f64(s, h2, 4, ts[2]));  /* first order: sigmas[2] = sigmas[1] */
    CHECK(h1[0] == h2[0] && h1[0] < 1.0f);
    for (int i = 0; i < 4; i++) CHECK(isfinite(x[i]));
    ngpt_scheduler_free(s);
    s = NULL;
    /* EulerAncestral ignores use_karras_sigmas (not a key of its class in diffusers 0.17) */
    CHECK_OK(from("{\"use_karras_sigmas\": true}", NGPT_SCHEDULER_EULER_ANCESTRAL, &s));
    ngpt_scheduler_free(s);
    s = NULL;
    /* Karras sigmas with one training step cannot map back to timesteps (diffusers: IndexError) */
    CHECK_ERR(from("{\"use_karras_sigmas\": true, \"num_train_timesteps\": 1}", NGPT_SCHEDULER_EULER, &s),
              NGPT_ERR_UNSUPPORTED, "Karras");
    CHECK_ERR(from("{\"use_karras_sigmas\": true, \"num_train_timesteps\": 1}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, &s),
              NGPT_ERR_UNSUPPORTED, "Karras");
    /* sigmas past ~4e9 overflow Euler ancestral's float32 sigma_up (diffusers: inf): computed in
     * double then, the step stays finite */
    CHECK_OK(from("{\"num_train_timesteps\": 8000, \"beta_start\": 0.00085, \"beta_end\": 0.02, "
                  "\"beta_schedule\": \"scaled_linear\"}", NGPT_SCHEDULER_EULER_ANCESTRAL, &s));
    CHECK(ngpt_scheduler_init_noise_sigma(s) > 1e10f);
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 20));
    CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &n));
    float big[4] = {1, 1, 1, 1}, zero[4] = {0}, one[4] = {1, 1, 1, 1};
    CHECK_OK(ngpt_scheduler_step_f64(s, zero, ts[0], big, 4, one));
    for (int i = 0; i < 4; i++) CHECK(isfinite(big[i]) && big[i] > 1.0f);
    ngpt_scheduler_free(s);
    /* DPM-Solver with Karras sigmas ends with a step from t = 0 to 0 (h = 0): the identity, not
     * diffusers' 0/0 of the third-order update (found by fuzz_sched) */
    static const char *const dpm_k[2] = {"{\"use_karras_sigmas\": true, \"solver_order\": 3}",
                                         "{\"use_karras_sigmas\": true, \"solver_type\": \"heun\"}"};
    for (int c = 0; c < 2; c++) {
        CHECK_OK(from(dpm_k[c], NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, &s));
        CHECK_OK(ngpt_scheduler_set_timesteps(s, 20));
        CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &n));
        CHECK(n >= 15 && ts[n - 1] == 0.0);
        float xk[4] = {1, -1, 0.5f, 2}, before[4];
        for (size_t k = 0; k < n; k++) {
            memcpy(before, xk, sizeof xk);
            CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[k], xk, 4, NULL));
        }
        for (int i = 0; i < 4; i++) CHECK(isfinite(xk[i]) && xk[i] == before[i]);
        ngpt_scheduler_free(s);
    }
    /* betas past 1: NaN sigmas, which Karras maps to no timestep (found by fuzz_sched) */
    CHECK_OK(from("{\"beta_end\": 1000, \"use_karras_sigmas\": true}", NGPT_SCHEDULER_EULER, &s));
    CHECK_ERR(ngpt_scheduler_set_timesteps(s, 9), NGPT_ERR_INVALID_ARGUMENT, "unusable");
    ngpt_scheduler_free(s);
    CHECK_OK(from("{\"beta_end\": 1000, \"use_karras_sigmas\": true}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, &s));
    CHECK_ERR(ngpt_scheduler_set_timesteps(s, 9), NGPT_ERR_INVALID_ARGUMENT, "unusable");
    ngpt_scheduler_free(s);
    CHECK_OK(from("{\"num_train_timesteps\": 1}", NGPT_SCHEDULER_EULER, &s));  /* one step, sigma of t = 0 */
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 1));
    CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &n));
    CHECK(n == 1 && ts[0] == 0.0);
    ngpt_scheduler_free(s);
    /* the other kinds: the f64 calls take their integer timesteps */
    CHECK_OK(from(k_sd, NGPT_SCHEDULER_AUTO, &s));
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 10));
    CHECK_ERR(ngpt_scheduler_step_f64(s, m, 901.5, x, 4, NULL), NGPT_ERR_INVALID_ARGUMENT, "901.5");
    CHECK_OK(ngpt_scheduler_step_f64(s, m, 901.0, x, 4, NULL));
    CHECK_OK(ngpt_scheduler_add_noise_f64(s, out, x, m, 4, 500.0));
    CHECK_ERR(ngpt_scheduler_add_noise_f64(s, out, x, m, 4, 500.5), NGPT_ERR_INVALID_ARGUMENT, "integer");
    CHECK_OK(ngpt_scheduler_scale_model_input_f64(s, x, 4, 123.25));  /* the identity, any timestep */
    CHECK(ngpt_scheduler_init_noise_sigma(NULL) == 1.0f);
    ngpt_scheduler_free(s);
}

/* Every allocation failure is reported as OUT_OF_MEMORY and frees what was held. */
/* UniPC: its options and refusals, the params' solver types, and the corner where diffusers
 * divides 0 by 0 */
static ngpt_status unipc_run(const char *json, ngpt_dpm_solver_type stype, int32_t order, int steps, float *x)
{
    ngpt_scheduler_params p;
    ngpt_scheduler_params_default(&p, sizeof p);
    p.kind = NGPT_SCHEDULER_UNIPC_MULTISTEP;
    p.solver_type = stype;
    p.solver_order = order;
    ngpt_scheduler *s = NULL;
    ngpt_status st = ngpt_scheduler_create_from_json(&s, json, strlen(json), &p);
    if (st == NGPT_OK) st = ngpt_scheduler_set_timesteps(s, steps);
    const int64_t *ts = NULL;
    size_t n = 0;
    if (st == NGPT_OK) st = ngpt_scheduler_timesteps(s, &ts, &n);
    test_rng rng = {7};
    for (size_t k = 0; st == NGPT_OK && k < n; k++) {
        float m[6];
        for (int i = 0; i < 6; i++) m[i] = test_rng_f(&rng, -1.0f, 1.0f) + 0.1f * x[i];
        st = ngpt_scheduler_step(s, m, ts[k], x, 6, NULL);
    }
    ngpt_scheduler_free(s);
    return st;
}

static void test_unipc(void)
{
    ngpt_scheduler *s = NULL;
    CHECK_OK(from("{\"_class_name\": \"UniPCMultistepScheduler\"}", NGPT_SCHEDULER_AUTO, &s));
    CHECK(ngpt_scheduler_get_kind(s) == NGPT_SCHEDULER_UNIPC_MULTISTEP);
    CHECK(ngpt_scheduler_init_noise_sigma(s) == 1.0f);
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 10));
    const int64_t *ts = NULL;
    size_t n = 0;
    CHECK_OK(ngpt_scheduler_timesteps(s, &ts, &n));
    CHECK(n == 10 && ts[0] == 999 && ts[9] == 100);  /* linspace(0, 999, 11).round()[::-1][:-1] */
    float x[4] = {1, 2, 3, 4}, m[4] = {0.5f, -0.5f, 0.25f, 0};
    CHECK_OK(ngpt_scheduler_scale_model_input(s, x, 4, ts[0]));
    CHECK(x[0] == 1 && x[3] == 4);
    CHECK_ERR(ngpt_scheduler_step(s, m, 998, x, 4, NULL), NGPT_ERR_INVALID_ARGUMENT, "not in the schedule");
    CHECK_OK(ngpt_scheduler_step(s, m, ts[0], x, 4, NULL));
    CHECK_ERR(ngpt_scheduler_step(s, m, ts[1], x, 5, NULL), NGPT_ERR_SHAPE_MISMATCH, "earlier steps");
    ngpt_scheduler_free(s);
    s = NULL;

    CHECK_ERR(from("{\"solver_order\": 4}", NGPT_SCHEDULER_UNIPC_MULTISTEP, &s), NGPT_ERR_UNSUPPORTED, "solver_order 4");
    CHECK_ERR(from("{\"solver_order\": 0}", NGPT_SCHEDULER_UNIPC_MULTISTEP, &s), NGPT_ERR_UNSUPPORTED, "solver_order 0");
    CHECK_ERR(from("{\"thresholding\": true}", NGPT_SCHEDULER_UNIPC_MULTISTEP, &s), NGPT_ERR_UNSUPPORTED, "thresholding");
    CHECK_ERR(from("{\"solver_type\": \"bh3\"}", NGPT_SCHEDULER_UNIPC_MULTISTEP, &s), NGPT_ERR_UNSUPPORTED, "bh3");
    CHECK_ERR(from("{\"predict_x0\": \"yes\"}", NGPT_SCHEDULER_UNIPC_MULTISTEP, &s), NGPT_ERR_BAD_FORMAT, "predict_x0");
    CHECK_ERR(from("{\"disable_corrector\": 1}", NGPT_SCHEDULER_UNIPC_MULTISTEP, &s), NGPT_ERR_BAD_FORMAT, "disable_corrector");
    CHECK_ERR(from("{\"disable_corrector\": [0, 1.5]}", NGPT_SCHEDULER_UNIPC_MULTISTEP, &s), NGPT_ERR_BAD_FORMAT,
              "'disable_corrector'[1]");
    CHECK(s == NULL);
    float y[6];
    CHECK_ERR(unipc_run("{}", (ngpt_dpm_solver_type)5, 0, 4, y), NGPT_ERR_INVALID_ARGUMENT, "solver_type 5");
    CHECK_ERR(unipc_run("{}", NGPT_DPM_SOLVER_TYPE_FROM_CONFIG, 4, 4, y), NGPT_ERR_UNSUPPORTED, "solver_order 4");

    /* bh1 by config, by DPM-Solver's names and by params agree; bh2 (the default) differs */
    float a[6] = {1, -1, 0.5f, 2, -2, 0}, b[6], c[6], d[6], e[6];
    memcpy(b, a, sizeof a); memcpy(c, a, sizeof a); memcpy(d, a, sizeof a); memcpy(e, a, sizeof a);
    CHECK_OK(unipc_run("{\"solver_type\": \"bh1\"}", NGPT_DPM_SOLVER_TYPE_FROM_CONFIG, 3, 8, a));
    CHECK_OK(unipc_run("{\"solver_type\": \"heun\"}", NGPT_DPM_SOLVER_TYPE_FROM_CONFIG, 3, 8, b));
    CHECK_OK(unipc_run("{}", NGPT_DPM_SOLVER_BH1, 3, 8, c));
    CHECK_OK(unipc_run("{\"solver_type\": \"bh1\"}", NGPT_DPM_SOLVER_BH2, 3, 8, d));
    CHECK_OK(unipc_run("{}", NGPT_DPM_SOLVER_TYPE_FROM_CONFIG, 3, 8, e));
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(a, c, sizeof a) == 0);
    CHECK(memcmp(d, e, sizeof d) == 0 && memcmp(a, d, sizeof a) != 0);
    /* DPM-Solver takes bh1 / bh2 as midpoint, as diffusers does */
    ngpt_scheduler_params p;
    ngpt_scheduler_params_default(&p, sizeof p);
    p.kind = NGPT_SCHEDULER_DPMSOLVER_MULTISTEP;
    p.solver_type = NGPT_DPM_SOLVER_BH2;
    CHECK_OK(ngpt_scheduler_create_from_json(&s, "{}", 2, &p));
    ngpt_scheduler_free(s);
    s = NULL;

    /* Two timesteps with one noise level (betas[1] too small to move alphas_cumprod in float32):
     * diffusers' order-3 UniP and order-2 UniC divide 0 by 0 there; the update takes its limit.
     * T 4, 4 steps: timesteps 3, 2, 1 (deduplicated), the last stepping to 0, whose lambda equals
     * timestep 1's. */
    float z[6] = {1, -1, 0.5f, 2, -2, 0};
    const char *flat = "{\"num_train_timesteps\": 4, \"trained_betas\": [0.1, 1e-9, 0.2, 0.3], "
                       "\"lower_order_final\": false}";
    CHECK_OK(unipc_run(flat, NGPT_DPM_SOLVER_TYPE_FROM_CONFIG, 3, 4, z));
    for (int i = 0; i < 6; i++) CHECK_MSG(isfinite(z[i]), "sample %d is %g", i, (double)z[i]);
}

/* LMS: Euler's schedule and input scaling; its fourth-order history restarts after reset */
static void test_lms(void)
{
    ngpt_scheduler *s = NULL, *e = NULL;
    CHECK_OK(from("{\"_class_name\": \"LMSDiscreteScheduler\", \"beta_schedule\": \"scaled_linear\", "
                  "\"beta_start\": 0.00085, \"beta_end\": 0.012}", NGPT_SCHEDULER_AUTO, &s));
    CHECK_OK(from("{\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012}",
                  NGPT_SCHEDULER_EULER, &e));
    if (!s || !e) { ngpt_scheduler_free(s); ngpt_scheduler_free(e); return; }
    CHECK(ngpt_scheduler_get_kind(s) == NGPT_SCHEDULER_LMS);
    CHECK(ngpt_scheduler_init_noise_sigma(s) == ngpt_scheduler_init_noise_sigma(e));
    CHECK_OK(ngpt_scheduler_set_timesteps(s, 6));
    CHECK_OK(ngpt_scheduler_set_timesteps(e, 6));
    const double *ts, *te;
    size_t n, ne;
    CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &n));
    CHECK_OK(ngpt_scheduler_timesteps_f64(e, &te, &ne));
    CHECK(n == 6 && ne == 6 && memcmp(ts, te, n * sizeof *ts) == 0);
    const int64_t *ti;
    CHECK_ERR(ngpt_scheduler_timesteps(s, &ti, &n), NGPT_ERR_UNSUPPORTED, "_f64");
    float a[3] = {1, 2, 3}, b[3] = {1, 2, 3};
    CHECK_OK(ngpt_scheduler_scale_model_input_f64(s, a, 3, ts[2]));
    CHECK_OK(ngpt_scheduler_scale_model_input_f64(e, b, 3, ts[2]));
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* the first step is Euler's (order 1: the integral of 1 is sigma_next - sigma, the same
     * float32 as Euler's dt here); a trajectory after reset repeats */
    float x1[3] = {1, -1, 0.5f}, x2[3] = {1, -1, 0.5f}, m[3] = {0.3f, 0.2f, -0.1f};
    CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[0], x1, 3, NULL));
    CHECK_OK(ngpt_scheduler_step_f64(e, m, ts[0], x2, 3, NULL));
    CHECK(memcmp(x1, x2, sizeof x1) == 0);
    float traj[2][3];
    for (int pass = 0; pass < 2; pass++) {
        CHECK_OK(ngpt_scheduler_reset(s));
        float x[3] = {1, -1, 0.5f};
        for (size_t k = 0; k < 6; k++) CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[k], x, 3, NULL));
        memcpy(traj[pass], x, sizeof x);
    }
    CHECK(memcmp(traj[0], traj[1], sizeof traj[0]) == 0);
    CHECK_ERR(ngpt_scheduler_step_f64(s, m, ts[0] + 0.5, x1, 3, NULL), NGPT_ERR_INVALID_ARGUMENT, "not in the schedule");
    ngpt_scheduler_free(s);
    ngpt_scheduler_free(e);
    s = NULL;
    CHECK_ERR(from("{\"use_karras_sigmas\": \"no\"}", NGPT_SCHEDULER_LMS, &s), NGPT_ERR_BAD_FORMAT, "use_karras_sigmas");
    CHECK_ERR(from("{\"prediction_type\": \"flow\"}", NGPT_SCHEDULER_LMS, &s), NGPT_ERR_UNSUPPORTED, "flow");
    CHECK(s == NULL);
}

/* KDPM2 and KDPM2 ancestral: Euler's timesteps at the even steps, the midpoints' between them;
 * the state rule of Heun; the interpolated sigma scales the second-order steps' input */
static void test_kdpm2(void)
{
    static const char *const names[2] = {"KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler"};
    for (int a = 0; a < 2; a++) {
        char cfg[200];
        snprintf(cfg, sizeof cfg, "{\"_class_name\": \"%s\"}", names[a]);
        ngpt_scheduler *s = NULL, *e = NULL;
        CHECK_OK(from(cfg, NGPT_SCHEDULER_AUTO, &s));
        /* the class's own defaults: SD's beta range, linear */
        CHECK_OK(from("{\"beta_start\": 0.00085, \"beta_end\": 0.012}", NGPT_SCHEDULER_EULER, &e));
        if (!s || !e) { ngpt_scheduler_free(s); ngpt_scheduler_free(e); continue; }
        CHECK(ngpt_scheduler_get_kind(s) == (a ? NGPT_SCHEDULER_KDPM2_ANCESTRAL : NGPT_SCHEDULER_KDPM2));
        const float *acp_s, *acp_e;
        size_t na, ne;
        CHECK_OK(ngpt_scheduler_alphas_cumprod(s, &acp_s, &na));
        CHECK_OK(ngpt_scheduler_alphas_cumprod(e, &acp_e, &ne));
        CHECK(na == ne && memcmp(acp_s, acp_e, na * sizeof *acp_s) == 0);
        CHECK_OK(ngpt_scheduler_set_timesteps(s, 5));
        CHECK_OK(ngpt_scheduler_set_timesteps(e, 5));
        const double *ts, *te;
        size_t n;
        CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &n));
        CHECK_OK(ngpt_scheduler_timesteps_f64(e, &te, &ne));
        CHECK(n == 9 && ne == 5);
        for (size_t k = 0; n == 9 && k < n; k++) {
            if (k % 2 == 0) CHECK_MSG(ts[k] == te[k / 2], "%s: timestep %zu: %g vs Euler's %g", names[a], k, ts[k], te[k / 2]);
            else CHECK_MSG(ts[k] < ts[k - 1] && ts[k] >= ts[k + 1], "%s: midpoint %zu: %g", names[a], k, ts[k]);
        }
        CHECK(ngpt_scheduler_init_noise_sigma(s) == ngpt_scheduler_init_noise_sigma(e));
        const int64_t *ti;
        CHECK_ERR(ngpt_scheduler_timesteps(s, &ti, &n), NGPT_ERR_UNSUPPORTED, "_f64");
        /* first-order input scale: Euler's; second order: the interpolated sigma (KDPM2's the
         * geometric mean of the step's two sigmas; the ancestral one's sqrt(sigma sigma_down),
         * which is the next sigma up to rounding) */
        float in0[2] = {1, -2}, e0[2] = {1, -2}, in1[2] = {1, 1}, in1b[2] = {1, 1}, next[2] = {1, 1};
        CHECK_OK(ngpt_scheduler_scale_model_input_f64(s, in0, 2, ts[0]));
        CHECK_OK(ngpt_scheduler_scale_model_input_f64(e, e0, 2, te[0]));
        CHECK(memcmp(in0, e0, sizeof in0) == 0);
        CHECK_OK(ngpt_scheduler_scale_model_input_f64(s, in1, 2, ts[1]));  /* first-order state */
        float x[2] = {0.5f, -0.25f}, m[2] = {0.1f, 0.2f}, nz[2] = {0.3f, -0.3f};
        CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[0], x, 2, NULL));  /* first order: no noise needed */
        CHECK_OK(ngpt_scheduler_scale_model_input_f64(s, in1b, 2, ts[1]));
        CHECK_OK(ngpt_scheduler_scale_model_input_f64(e, next, 2, te[1]));
        CHECK(in1[0] == next[0]);
        if (!a) CHECK(in1b[0] < next[0]);
        CHECK(fabsf(in1b[0] * nx_sched_input_divisor(s, 1) - 1.0f) < 1e-6f);
        CHECK_ERR(ngpt_scheduler_step_f64(s, m, ts[0], x, 2, NULL), NGPT_ERR_INVALID_ARGUMENT, "in order");
        if (a) CHECK_ERR(ngpt_scheduler_step_f64(s, m, ts[1], x, 2, NULL), NGPT_ERR_INVALID_ARGUMENT, "variance_noise");
        for (size_t k = 1; k < 9; k++) CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[k], x, 2, a ? nz : NULL));
        CHECK(isfinite(x[0]) && isfinite(x[1]));
        /* a trajectory after reset repeats */
        float traj[2][2];
        for (int pass = 0; pass < 2; pass++) {
            CHECK_OK(ngpt_scheduler_reset(s));
            float y[2] = {0.5f, -0.25f};
            for (size_t k = 0; k < 9; k++) CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[k], y, 2, nz));
            memcpy(traj[pass], y, sizeof y);
        }
        CHECK(memcmp(traj[0], traj[1], sizeof traj[0]) == 0);
        ngpt_scheduler_free(s);
        ngpt_scheduler_free(e);
        s = NULL;
        CHECK_ERR(from("{\"prediction_type\": \"sample\"}", a ? NGPT_SCHEDULER_KDPM2_ANCESTRAL : NGPT_SCHEDULER_KDPM2, &s),
                  NGPT_ERR_UNSUPPORTED, names[a]);
        /* one step: straight to sigma 0 */
        CHECK_OK(from(cfg, NGPT_SCHEDULER_AUTO, &s));
        if (s) {
            CHECK_OK(ngpt_scheduler_set_timesteps(s, 1));
            CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &n));
            CHECK(n == 1 && ts[0] == 0.0);
            float y[2] = {0.5f, -0.25f};
            CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[0], y, 2, NULL));
            CHECK(isfinite(y[0]) && isfinite(y[1]));
        }
        ngpt_scheduler_free(s);
        s = NULL;
    }
    /* KDPM2 ancestral on a cosine schedule (sigma_max ~2e4): float32 rounds the first step's
     * sigma_down to 0, where diffusers' log(0) gives NaN timesteps; here it is to^2 / from */
    ngpt_scheduler *s = NULL;
    CHECK_OK(from("{\"beta_schedule\": \"squaredcos_cap_v2\"}", NGPT_SCHEDULER_KDPM2_ANCESTRAL, &s));
    if (s) {
        CHECK_OK(ngpt_scheduler_set_timesteps(s, 6));
        const double *ts;
        size_t n;
        CHECK_OK(ngpt_scheduler_timesteps_f64(s, &ts, &n));
        for (size_t k = 0; k < n; k++) CHECK_MSG(isfinite(ts[k]) && (k == 0 || ts[k] <= ts[k - 1]), "timestep %zu: %g", k, ts[k]);
        float y[2] = {0.5f, -0.25f}, m[2] = {0.1f, 0.2f}, nz[2] = {0.3f, -0.3f};
        for (size_t k = 0; k < n; k++) CHECK_OK(ngpt_scheduler_step_f64(s, m, ts[k], y, 2, nz));
        CHECK(isfinite(y[0]) && isfinite(y[1]));
    }
    ngpt_scheduler_free(s);
}

/* DEIS: DPM-Solver's timesteps; DPM-Solver's names for its one algorithm and solver type; the
 * first step is DPM-Solver's first-order 'dpmsolver' update on the re-derived noise prediction */
static void test_deis(void)
{
    ngpt_scheduler *s = NULL, *d = NULL;
    CHECK_OK(from("{\"_class_name\": \"DEISMultistepScheduler\", \"solver_order\": 3, \"beta_schedule\": \"scaled_linear\", "
                  "\"beta_start\": 0.00085, \"beta_end\": 0.012}", NGPT_SCHEDULER_AUTO, &s));
    CHECK_OK(from("{\"algorithm_type\": \"dpmsolver\", \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, "
                  "\"beta_end\": 0.012}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, &d));
    if (s && d) {
        CHECK(ngpt_scheduler_get_kind(s) == NGPT_SCHEDULER_DEIS_MULTISTEP);
        CHECK(ngpt_scheduler_init_noise_sigma(s) == 1.0f);
        CHECK_OK(ngpt_scheduler_set_timesteps(s, 12));
        CHECK_OK(ngpt_scheduler_set_timesteps(d, 12));
        const int64_t *ts, *td;
        size_t n, nd;
        CHECK_OK(ngpt_scheduler_timesteps(s, &ts, &n));
        CHECK_OK(ngpt_scheduler_timesteps(d, &td, &nd));
        CHECK(n == 12 && nd == 12 && memcmp(ts, td, n * sizeof *ts) == 0);
        float a[3] = {1, 2, 3};
        CHECK_OK(ngpt_scheduler_scale_model_input(s, a, 3, ts[0]));
        CHECK(a[0] == 1 && a[1] == 2 && a[2] == 3);
        float x1[3] = {1, -1, 0.5f}, x2[3] = {1, -1, 0.5f}, m[3] = {0.3f, 0.25f, -0.5f};
        CHECK_OK(ngpt_scheduler_step(s, m, ts[0], x1, 3, NULL));
        CHECK_OK(ngpt_scheduler_step(d, m, td[0], x2, 3, NULL));
        for (int i = 0; i < 3; i++) CHECK_MSG(fabsf(x1[i] - x2[i]) <= 1e-5f * fabsf(x2[i]) + 1e-6f, "%d: %g vs %g", i, x1[i], x2[i]);
        /* the whole trajectory, again after reset */
        float traj[2][3];
        for (int pass = 0; pass < 2; pass++) {
            CHECK_OK(ngpt_scheduler_reset(s));
            float x[3] = {1, -1, 0.5f};
            for (size_t k = 0; k < n; k++) CHECK_OK(ngpt_scheduler_step(s, m, ts[k], x, 3, NULL));
            memcpy(traj[pass], x, sizeof x);
            for (int i = 0; i < 3; i++) CHECK(isfinite(x[i]));
        }
        CHECK(memcmp(traj[0], traj[1], sizeof traj[0]) == 0);
        CHECK_ERR(ngpt_scheduler_step(s, m, 12345, x1, 3, NULL), NGPT_ERR_INVALID_ARGUMENT, "not in the schedule");
    }
    ngpt_scheduler_free(s);
    ngpt_scheduler_free(d);
    s = NULL;
    /* DPM-Solver's names stand for DEIS's algorithm and solver type; others are refused */
    CHECK_OK(from("{\"algorithm_type\": \"dpmsolver++\", \"solver_type\": \"bh2\"}", NGPT_SCHEDULER_DEIS_MULTISTEP, &s));
    ngpt_scheduler_free(s);
    s = NULL;
    CHECK_ERR(from("{\"algorithm_type\": \"sde-dpmsolver++\"}", NGPT_SCHEDULER_DEIS_MULTISTEP, &s), NGPT_ERR_UNSUPPORTED,
              "sde-dpmsolver++");
    CHECK_ERR(from("{\"solver_type\": \"taylor\"}", NGPT_SCHEDULER_DEIS_MULTISTEP, &s), NGPT_ERR_UNSUPPORTED, "taylor");
    CHECK_ERR(from("{\"solver_order\": 4}", NGPT_SCHEDULER_DEIS_MULTISTEP, &s), NGPT_ERR_UNSUPPORTED, "DEIS solver_order 4");
    CHECK_ERR(from("{\"thresholding\": true}", NGPT_SCHEDULER_DEIS_MULTISTEP, &s), NGPT_ERR_UNSUPPORTED, "thresholding");
    CHECK_ERR(from("{\"lower_order_final\": 1}", NGPT_SCHEDULER_DEIS_MULTISTEP, &s), NGPT_ERR_BAD_FORMAT, "lower_order_final");
    CHECK(s == NULL);
    /* two history timesteps with one noise level (a zero beta): diffusers divides by log(rho_s0) -
     * log(rho_s1) = 0; the update drops to the order whose history is distinct */
    float z[6] = {1, -1, 0.5f, 2, -2, 0};
    const char *flat = "{\"num_train_timesteps\": 6, \"trained_betas\": [0.1, 0.2, 0.0, 0.3, 0.0, 0.2], "
                       "\"solver_order\": 3, \"lower_order_final\": false}";
    CHECK_OK(from(flat, NGPT_SCHEDULER_DEIS_MULTISTEP, &s));
    if (s) {
        CHECK_OK(ngpt_scheduler_set_timesteps(s, 6));
        const int64_t *ts;
        size_t n;
        CHECK_OK(ngpt_scheduler_timesteps(s, &ts, &n));
        for (size_t k = 0; k < n; k++) {
            float m[6];
            for (int i = 0; i < 6; i++) m[i] = 0.1f * z[i] + 0.05f;
            CHECK_OK(ngpt_scheduler_step(s, m, ts[k], z, 6, NULL));
        }
        for (int i = 0; i < 6; i++) CHECK_MSG(isfinite(z[i]), "sample %d is %g", i, (double)z[i]);
    }
    ngpt_scheduler_free(s);
}

/* DDPM: DDIM's leading timesteps without steps_offset; noise at every step but timestep 0; the
 * variance types diffusers samples with */
static void test_ddpm(void)
{
    ngpt_scheduler *s = NULL;
    CHECK_OK(from("{\"_class_name\": \"DDPMScheduler\", \"steps_offset\": 1}", NGPT_SCHEDULER_AUTO, &s));
    if (s) {
        CHECK(ngpt_scheduler_get_kind(s) == NGPT_SCHEDULER_DDPM);
        CHECK(ngpt_scheduler_init_noise_sigma(s) == 1.0f);
        CHECK_OK(ngpt_scheduler_set_timesteps(s, 4));
        const int64_t *ts;
        size_t n;
        CHECK_OK(ngpt_scheduler_timesteps(s, &ts, &n));
        CHECK(n == 4 && ts[0] == 750 && ts[1] == 500 && ts[2] == 250 && ts[3] == 0);  /* (steps_offset: DDIM's key) */
        float x[3] = {0.5f, -0.25f, 2.0f}, m[3] = {0.1f, -0.2f, 0.3f}, nz[3] = {1, -1, 0.5f}, a[3] = {1, 2, 3};
        CHECK_OK(ngpt_scheduler_scale_model_input(s, a, 3, ts[1]));
        CHECK(a[0] == 1 && a[1] == 2 && a[2] == 3);
        CHECK_ERR(ngpt_scheduler_step(s, m, ts[0], x, 3, NULL), NGPT_ERR_INVALID_ARGUMENT, "variance_noise");
        for (size_t k = 0; k + 1 < n; k++) CHECK_OK(ngpt_scheduler_step(s, m, ts[k], x, 3, nz));
        /* the last step (t = 0) draws no noise: x0's clip decides it (clip_sample defaults to true) */
        CHECK_OK(ngpt_scheduler_step(s, m, ts[3], x, 3, NULL));
        for (int i = 0; i < 3; i++) CHECK_MSG(fabsf(x[i]) <= 1.0f, "sample %d: %g past clip_sample_range", i, x[i]);
    }
    ngpt_scheduler_free(s);
    s = NULL;
    CHECK_ERR(from("{\"variance_type\": \"fixed_large_log\"}", NGPT_SCHEDULER_DDPM, &s), NGPT_ERR_UNSUPPORTED, "NaN");
    CHECK_ERR(from("{\"variance_type\": \"learned_range\"}", NGPT_SCHEDULER_DDPM, &s), NGPT_ERR_UNSUPPORTED, "learned");
    CHECK_ERR(from("{\"variance_type\": \"tiny\"}", NGPT_SCHEDULER_DDPM, &s), NGPT_ERR_UNSUPPORTED, "tiny");
    CHECK_ERR(from("{\"variance_type\": 2}", NGPT_SCHEDULER_DDPM, &s), NGPT_ERR_BAD_FORMAT, "variance_type");
    CHECK_ERR(from("{\"thresholding\": true}", NGPT_SCHEDULER_DDPM, &s), NGPT_ERR_UNSUPPORTED, "DDPMScheduler 'thresholding'");
    CHECK_ERR(from("{\"clip_sample\": \"yes\"}", NGPT_SCHEDULER_DDPM, &s), NGPT_ERR_BAD_FORMAT, "clip_sample");
    /* sigmoid betas are DDPM's alone in diffusers 0.17 */
    CHECK_ERR(from("{\"beta_schedule\": \"sigmoid\"}", NGPT_SCHEDULER_DDIM, &s), NGPT_ERR_UNSUPPORTED, "sigmoid");
    CHECK_OK(from("{\"beta_schedule\": \"sigmoid\"}", NGPT_SCHEDULER_DDPM, &s));
    if (s) {
        const float *acp;
        size_t na;
        CHECK_OK(ngpt_scheduler_alphas_cumprod(s, &acp, &na));
        CHECK(na == 1000 && acp[0] < 1.0f && acp[999] > 0.0f && acp[999] < acp[0]);
    }
    ngpt_scheduler_free(s);
}

/* Run a DPM-Solver singlestep config over its whole schedule; the final sample in x[4]. */
static ngpt_status single_run(const char *json, int32_t order, int steps, float *x)
{
    ngpt_scheduler_params p;
    ngpt_scheduler_params_default(&p, sizeof p);
    p.kind = NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP;
    p.solver_order = order;
    ngpt_scheduler *s = NULL;
    ngpt_status st = ngpt_scheduler_create_from_json(&s, json, strlen(json), &p);
    if (st == NGPT_OK) st = ngpt_scheduler_set_timesteps(s, steps);
    const int64_t *ts = NULL;
    size_t n = 0;
    if (st == NGPT_OK) st = ngpt_scheduler_timesteps(s, &ts, &n);
    for (size_t k = 0; st == NGPT_OK && k < n; k++) {
        float m[4];
        for (int i = 0; i < 4; i++) m[i] = 0.1f * x[i] + 0.05f * (float)(i - 2);
        st = ngpt_scheduler_step(s, m, ts[k], x, 4, NULL);
    }
    ngpt_scheduler_free(s);
    return st;
}

/* DPM-Solver singlestep: DPM-Solver's timesteps, duplicates kept; groups of steps; the order-1
 * step is DPM-Solver's first-order one */
static void test_dpm_single(void)
{
    ngpt_scheduler *s = NULL, *d = NULL;
    CHECK_OK(from("{\"_class_name\": \"DPMSolverSinglestepScheduler\", \"beta_schedule\": \"scaled_linear\", "
                  "\"beta_start\": 0.00085, \"beta_end\": 0.012}", NGPT_SCHEDULER_AUTO, &s));
    CHECK_OK(from("{\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012}",
                  NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, &d));
    if (s && d) {
        CHECK(ngpt_scheduler_get_kind(s) == NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP);
        CHECK(ngpt_scheduler_init_noise_sigma(s) == 1.0f);
        CHECK_OK(ngpt_scheduler_set_timesteps(s, 8));
        CHECK_OK(ngpt_scheduler_set_timesteps(d, 8));
        const int64_t *ts, *td;
        size_t n, nd;
        CHECK_OK(ngpt_scheduler_timesteps(s, &ts, &n));
        CHECK_OK(ngpt_scheduler_timesteps(d, &td, &nd));
        CHECK(n == 8 && nd == 8 && memcmp(ts, td, n * sizeof *ts) == 0);
        /* the first step (order 1) is the multistep solver's first step, bit for bit */
        float x1[4] = {1, -1, 0.5f, 2}, x2[4] = {1, -1, 0.5f, 2}, m[4] = {0.3f, 0.25f, -0.5f, 0.1f};
        CHECK_OK(ngpt_scheduler_step(s, m, ts[0], x1, 4, NULL));
        CHECK_OK(ngpt_scheduler_step(d, m, td[0], x2, 4, NULL));
        CHECK(memcmp(x1, x2, sizeof x1) == 0);
        float traj[2][4];
        for (int pass = 0; pass < 2; pass++) {
            CHECK_OK(ngpt_scheduler_reset(s));
            float x[4] = {1, -1, 0.5f, 2};
            for (size_t k = 0; k < n; k++) CHECK_OK(ngpt_scheduler_step(s, m, ts[k], x, 4, NULL));
            memcpy(traj[pass], x, sizeof x);
        }
        CHECK(memcmp(traj[0], traj[1], sizeof traj[0]) == 0);
    }
    ngpt_scheduler_free(s);
    ngpt_scheduler_free(d);
    s = NULL;
    /* as many steps as training steps: np.linspace(0, T - 1, T + 1).round() repeats timesteps, which
     * singlestep keeps (diffusers' (timesteps == t).item() fails on them); a repeated timestep's
     * second step is found as the expected next one, and a group over one noise level takes the
     * first-order update instead of dividing by zero */
    float x[4] = {1, -1, 0.5f, 2};
    CHECK_OK(from("{\"num_train_timesteps\": 40, \"solver_order\": 3}", NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, &s));
    if (s) {
        CHECK_OK(ngpt_scheduler_set_timesteps(s, 40));
        const int64_t *ts;
        size_t n;
        CHECK_OK(ngpt_scheduler_timesteps(s, &ts, &n));
        bool dup = false;
        for (size_t k = 1; k < n; k++) dup |= ts[k] == ts[k - 1];
        CHECK(n == 40 && dup);
    }
    ngpt_scheduler_free(s);
    s = NULL;
    for (int32_t order = 1; order <= 6; order++) {  /* orders 1-3, midpoint then heun (whose third
                                                      order divides by r0 - r1 = 0 at the repeat) */
        float y[4] = {1, -1, 0.5f, 2};
        CHECK_OK(single_run(order > 3 ? "{\"num_train_timesteps\": 40, \"solver_type\": \"heun\"}"
                                      : "{\"num_train_timesteps\": 40}", (order - 1) % 3 + 1, 40, y));
        for (int i = 0; i < 4; i++) CHECK_MSG(isfinite(y[i]), "run %d: sample %d is %g", order, i, (double)y[i]);
    }
    /* lower_order_final false with 7 steps of order 3: set_timesteps turns it on (the last group
     * shorter); with 6 it stays off */
    CHECK_OK(single_run("{\"lower_order_final\": false}", 3, 7, x));
    CHECK_OK(single_run("{\"lower_order_final\": false}", 3, 6, x));
    for (int i = 0; i < 4; i++) CHECK(isfinite(x[i]));
    CHECK_ERR(from("{\"algorithm_type\": \"sde-dpmsolver++\"}", NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, &s),
              NGPT_ERR_UNSUPPORTED, "SDE");
    CHECK_ERR(from("{\"algorithm_type\": \"unipc\"}", NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, &s), NGPT_ERR_UNSUPPORTED,
              "DPMSolverSinglestepScheduler");
    CHECK_ERR(from("{\"solver_order\": 4}", NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, &s), NGPT_ERR_UNSUPPORTED, "solver_order");
    CHECK(s == NULL);
}

static void test_alloc_failures(void)
{
    const char *cfgs[14] = {k_sd, "{\"_class_name\": \"DDIMScheduler\"}",
                           "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"solver_order\": 3}",
                           "{\"_class_name\": \"EulerDiscreteScheduler\", \"use_karras_sigmas\": true}",
                           "{\"_class_name\": \"EulerAncestralDiscreteScheduler\"}",
                           "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"use_karras_sigmas\": true}",
                           "{\"_class_name\": \"HeunDiscreteScheduler\", \"use_karras_sigmas\": true}",
                           "{\"_class_name\": \"UniPCMultistepScheduler\", \"disable_corrector\": [0], \"solver_order\": 3}",
                           "{\"_class_name\": \"LMSDiscreteScheduler\", \"use_karras_sigmas\": true}",
                           "{\"_class_name\": \"KDPM2DiscreteScheduler\"}",
                           "{\"_class_name\": \"KDPM2AncestralDiscreteScheduler\"}",
                           "{\"_class_name\": \"DEISMultistepScheduler\", \"solver_order\": 3}",
                           "{\"_class_name\": \"DDPMScheduler\", \"beta_schedule\": \"sigmoid\"}",
                           "{\"_class_name\": \"DPMSolverSinglestepScheduler\", \"solver_order\": 3}"};
    float x[16] = {0}, m[16] = {0};
    for (int c = 0; c < 14; c++) {
        for (int64_t nth = 1; nth < 40; nth++) {
            const int64_t blocks = nx_alloc_blocks();
            nx_alloc_fail_at(nth);
            ngpt_scheduler *s = NULL;
            ngpt_status st = from(cfgs[c], NGPT_SCHEDULER_AUTO, &s);
            if (st == NGPT_OK) st = ngpt_scheduler_set_timesteps(s, 10);
            const double *ts = NULL;
            size_t n = 0;
            if (st == NGPT_OK) st = ngpt_scheduler_timesteps_f64(s, &ts, &n);
            for (size_t k = 0; st == NGPT_OK && k < 3; k++) st = ngpt_scheduler_step_f64(s, m, ts[k], x, 16, m);
            const int fired = nx_alloc_fail_fired();
            nx_alloc_fail_at(0);
            CHECK_MSG(st == NGPT_OK || st == NGPT_ERR_OUT_OF_MEMORY, "config %d, failing allocation %lld: %s", c,
                      (long long)nth, ngpt_status_string(st));
            CHECK(fired || st == NGPT_OK);
            ngpt_scheduler_free(s);
            CHECK_MSG(nx_alloc_blocks() == blocks, "config %d, failing allocation %lld: leak", c, (long long)nth);
            if (!fired) break;
        }
    }
}

/* ---- the device step: nx_sched_plan + nx_op_sched_step (the decoder's loop) ---- */

/* Configs that reach every branch of the plan: PNDM with and without PRK, DDIM with noise,
 * clipping and v-prediction, DPM-Solver of each order, algorithm, solver type and prediction. */
typedef struct dev_case {
    const char *json;
    ngpt_scheduler_kind kind;
    float eta;
    int steps;
} dev_case;

static const dev_case k_dev_cases[] = {
    {"{\"_class_name\": \"PNDMScheduler\", \"skip_prk_steps\": true, \"steps_offset\": 1}", NGPT_SCHEDULER_AUTO, 0, 8},
    {"{\"_class_name\": \"PNDMScheduler\", \"skip_prk_steps\": false}", NGPT_SCHEDULER_AUTO, 0, 6},
    {"{\"_class_name\": \"PNDMScheduler\", \"prediction_type\": \"v_prediction\"}", NGPT_SCHEDULER_AUTO, 0, 5},
    {"{\"_class_name\": \"DDIMScheduler\"}", NGPT_SCHEDULER_AUTO, 0, 5},
    {"{\"_class_name\": \"DDIMScheduler\", \"clip_sample\": true, \"prediction_type\": \"v_prediction\"}",
     NGPT_SCHEDULER_AUTO, 0.7f, 5},
    {"{\"_class_name\": \"DDIMScheduler\", \"prediction_type\": \"sample\"}", NGPT_SCHEDULER_AUTO, 0, 4},
    {"{\"solver_order\": 1}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 4},
    {"{\"solver_order\": 2}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 6},
    {"{\"solver_order\": 3, \"solver_type\": \"heun\"}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 7},
    {"{\"solver_order\": 3, \"algorithm_type\": \"dpmsolver\"}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 7},
    {"{\"solver_order\": 2, \"algorithm_type\": \"sde-dpmsolver++\"}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 5},
    {"{\"solver_order\": 2, \"algorithm_type\": \"dpmsolver\", \"prediction_type\": \"v_prediction\"}",
     NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 5},
    {"{\"solver_order\": 3, \"prediction_type\": \"sample\"}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 6},
    {"{\"solver_order\": 3, \"use_karras_sigmas\": true}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 8},
    {"{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_schedule\": \"scaled_linear\"}", NGPT_SCHEDULER_AUTO, 0, 6},
    {"{\"use_karras_sigmas\": true, \"prediction_type\": \"v_prediction\"}", NGPT_SCHEDULER_EULER, 0, 5},
    {"{\"prediction_type\": \"original_sample\"}", NGPT_SCHEDULER_EULER, 0, 4},
    {"{\"_class_name\": \"EulerAncestralDiscreteScheduler\"}", NGPT_SCHEDULER_AUTO, 0, 6},
    {"{\"prediction_type\": \"v_prediction\"}", NGPT_SCHEDULER_EULER_ANCESTRAL, 0, 5},
    {"{\"_class_name\": \"HeunDiscreteScheduler\"}", NGPT_SCHEDULER_AUTO, 0, 5},
    {"{\"use_karras_sigmas\": true, \"prediction_type\": \"v_prediction\"}", NGPT_SCHEDULER_HEUN, 0, 4},
    {"{\"_class_name\": \"UniPCMultistepScheduler\"}", NGPT_SCHEDULER_AUTO, 0, 7},
    {"{\"solver_order\": 3, \"solver_type\": \"bh1\", \"lower_order_final\": false}", NGPT_SCHEDULER_UNIPC_MULTISTEP, 0, 7},
    {"{\"solver_order\": 3, \"predict_x0\": false, \"prediction_type\": \"v_prediction\"}",
     NGPT_SCHEDULER_UNIPC_MULTISTEP, 0, 6},
    {"{\"solver_order\": 1, \"prediction_type\": \"sample\", \"disable_corrector\": [1]}",
     NGPT_SCHEDULER_UNIPC_MULTISTEP, 0, 5},
    {"{\"_class_name\": \"LMSDiscreteScheduler\", \"beta_schedule\": \"scaled_linear\"}", NGPT_SCHEDULER_AUTO, 0, 7},
    {"{\"use_karras_sigmas\": true, \"prediction_type\": \"v_prediction\"}", NGPT_SCHEDULER_LMS, 0, 6},
    {"{\"prediction_type\": \"sample\"}", NGPT_SCHEDULER_LMS, 0, 3},
    {"{\"_class_name\": \"KDPM2DiscreteScheduler\", \"beta_schedule\": \"scaled_linear\"}", NGPT_SCHEDULER_AUTO, 0, 5},
    {"{\"prediction_type\": \"v_prediction\"}", NGPT_SCHEDULER_KDPM2, 0, 4},
    {"{\"_class_name\": \"KDPM2AncestralDiscreteScheduler\"}", NGPT_SCHEDULER_AUTO, 0, 6},
    {"{\"prediction_type\": \"v_prediction\", \"beta_schedule\": \"squaredcos_cap_v2\"}",
     NGPT_SCHEDULER_KDPM2_ANCESTRAL, 0, 3},
    {"{\"_class_name\": \"DEISMultistepScheduler\", \"beta_schedule\": \"scaled_linear\"}", NGPT_SCHEDULER_AUTO, 0, 6},
    {"{\"solver_order\": 3, \"prediction_type\": \"v_prediction\"}", NGPT_SCHEDULER_DEIS_MULTISTEP, 0, 7},
    {"{\"solver_order\": 3, \"prediction_type\": \"sample\", \"lower_order_final\": false}",
     NGPT_SCHEDULER_DEIS_MULTISTEP, 0, 5},
    {"{\"solver_order\": 1}", NGPT_SCHEDULER_DEIS_MULTISTEP, 0, 4},
    {"{\"_class_name\": \"DDPMScheduler\"}", NGPT_SCHEDULER_AUTO, 0, 5},
    {"{\"variance_type\": \"fixed_small_log\", \"prediction_type\": \"v_prediction\", \"clip_sample\": false}",
     NGPT_SCHEDULER_DDPM, 0, 4},
    {"{\"variance_type\": \"fixed_large\", \"prediction_type\": \"sample\", \"beta_schedule\": \"sigmoid\"}",
     NGPT_SCHEDULER_DDPM, 0, 6},
    {"{\"_class_name\": \"DPMSolverSinglestepScheduler\"}", NGPT_SCHEDULER_AUTO, 0, 7},
    {"{\"solver_order\": 3, \"solver_type\": \"heun\", \"prediction_type\": \"v_prediction\"}",
     NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, 0, 9},
    {"{\"solver_order\": 3, \"algorithm_type\": \"dpmsolver\", \"lower_order_final\": false}",
     NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, 0, 6},
    {"{\"solver_order\": 2, \"algorithm_type\": \"dpmsolver\", \"solver_type\": \"heun\", \"prediction_type\": "
     "\"sample\", \"use_karras_sigmas\": true}", NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, 0, 5},
};

static ngpt_status dev_sched(const dev_case *c, ngpt_scheduler **s)
{
    ngpt_scheduler_params p;
    ngpt_scheduler_params_default(&p, sizeof p);
    p.kind = c->kind;
    p.eta = c->eta;
    ngpt_status st = ngpt_scheduler_create_from_json(s, c->json, strlen(c->json), &p);
    if (st == NGPT_OK) st = ngpt_scheduler_set_timesteps(*s, c->steps);
    return st;
}

/* Each config stepped two ways from the same latents and model outputs ([uncond; cond], guidance
 * 5.5): the host API on the guided output, and the plan + nx_op_sched_step on the CPU backend
 * with the combine fused. They run the same element function, so they must agree bit for bit. */
static void test_device_step(void)
{
    nx_pool *pool = NULL;
    nx_backend *be = NULL;
    CHECK_OK(nx_pool_create(&pool, 1));
    CHECK_OK(nx_cpu_backend_create(&be, pool, NULL));
    if (!be) { nx_pool_free(pool); return; }
    enum { N = 37 };
    const float g = 5.5f;
    test_rng rng = {42};
    for (size_t ci = 0; ci < sizeof k_dev_cases / sizeof k_dev_cases[0]; ci++) {
        const dev_case *c = &k_dev_cases[ci];
        ngpt_scheduler *sh = NULL, *sd = NULL;
        CHECK_OK(dev_sched(c, &sh));
        CHECK_OK(dev_sched(c, &sd));
        if (!sh || !sd) { ngpt_scheduler_free(sh); ngpt_scheduler_free(sd); continue; }
        const bool noisy = nx_sched_needs_noise(sd);
        const ngpt_scheduler_kind kd = ngpt_scheduler_get_kind(sd);
        CHECK(noisy == (c->eta > 0 || strstr(c->json, "sde-") || kd == NGPT_SCHEDULER_EULER_ANCESTRAL ||
                        kd == NGPT_SCHEDULER_KDPM2_ANCESTRAL || kd == NGPT_SCHEDULER_DDPM));
        float xh[N], eps[2 * N], guided[N], noise[N], xd[N];
        for (int i = 0; i < N; i++) xh[i] = test_rng_f(&rng, -2.0f, 2.0f);
        const int64_t ne1[1] = {N}, ne2[1] = {2 * N};
        nx_tensor x = {0}, e = {0}, nz = {0}, slot_t[NX_SCHED_SLOTS] = {{0}};
        nx_tensor *slot[NX_SCHED_SLOTS] = {0};
        const int n_slots = nx_sched_slots(sd);
        CHECK_OK(nx_tensor_alloc(&x, be, NGPT_DTYPE_F32, 1, ne1));
        CHECK_OK(nx_tensor_alloc(&e, be, NGPT_DTYPE_F32, 1, ne2));
        CHECK_OK(nx_tensor_alloc(&nz, be, NGPT_DTYPE_F32, 1, ne1));
        for (int j = 0; j < n_slots; j++) {
            CHECK_OK(nx_tensor_alloc(&slot_t[j], be, NGPT_DTYPE_F32, 1, ne1));
            slot[j] = &slot_t[j];
        }
        CHECK_OK(nx_tensor_upload(&x, xh, sizeof xh));
        const double *ts = NULL;
        size_t nts = 0;
        CHECK_OK(ngpt_scheduler_timesteps_f64(sh, &ts, &nts));
        bool same = true;
        for (size_t k = 0; k < nts; k++) {
            for (int i = 0; i < 2 * N; i++) eps[i] = test_rng_f(&rng, -2.0f, 2.0f);
            for (int i = 0; i < N; i++) {
                guided[i] = eps[i] + g * (eps[N + i] - eps[i]);
                noise[i] = test_rng_f(&rng, -2.0f, 2.0f);
            }
            CHECK_OK(ngpt_scheduler_step_f64(sh, guided, ts[k], xh, N, noisy ? noise : NULL));
            nx_sched_step plan;
            CHECK_OK(nx_sched_plan(sd, ts[k], N, noisy, &plan));
            plan.cfg = true;
            plan.guidance = g;
            CHECK_OK(nx_tensor_upload(&e, eps, sizeof eps));
            CHECK_OK(nx_tensor_upload(&nz, noise, sizeof noise));
            CHECK_OK(nx_op_sched_step(be, &plan, &x, &e, noisy ? &nz : NULL, slot, n_slots));
            CHECK_OK(nx_tensor_download(&x, xd, sizeof xd));
            same &= memcmp(xh, xd, sizeof xd) == 0;
        }
        CHECK_MSG(same, "config %zu (%s): the op's steps differ from ngpt_scheduler_step's", ci, c->json);

        /* the op's checks, on the last plan's shape */
        nx_sched_step plan;
        ngpt_scheduler_free(sd);
        sd = NULL;
        CHECK_OK(dev_sched(c, &sd));
        CHECK_OK(nx_sched_plan(sd, ts[0], N, noisy, &plan));
        CHECK_ERR(nx_op_sched_step(be, &plan, &x, &e, NULL, slot, n_slots), NGPT_ERR_SHAPE_MISMATCH, "plan of 37");
        plan.cfg = true;
        if (n_slots) CHECK_ERR(nx_op_sched_step(be, &plan, &x, &e, &nz, slot, 0), NGPT_ERR_INVALID_ARGUMENT, "slot");
        if (plan.noise) CHECK_ERR(nx_op_sched_step(be, &plan, &x, &e, NULL, slot, n_slots), NGPT_ERR_INVALID_ARGUMENT, "noise");
        CHECK_ERR(nx_op_sched_step(be, &plan, &x, &e, &nz, slot, NX_SCHED_SLOTS + 1), NGPT_ERR_INVALID_ARGUMENT, "slots");
        if (n_slots) {
            nx_tensor *alias[NX_SCHED_SLOTS] = {0};
            for (int j = 0; j < n_slots; j++) alias[j] = &x;
            CHECK_ERR(nx_op_sched_step(be, &plan, &x, &e, &nz, alias, n_slots), NGPT_ERR_INVALID_ARGUMENT, "alias");
        }
        for (int j = 0; j < NX_SCHED_SLOTS; j++) nx_tensor_free(&slot_t[j]);
        nx_tensor_free(&x);
        nx_tensor_free(&e);
        nx_tensor_free(&nz);
        ngpt_scheduler_free(sh);
        ngpt_scheduler_free(sd);
    }
    /* a plan the scheduler's own checks refuse leaves the state alone */
    ngpt_scheduler *s = NULL;
    CHECK_OK(dev_sched(&k_dev_cases[4], &s)); /* DDIM eta 0.7 */
    nx_sched_step plan;
    const int64_t *ts = NULL;
    size_t nts = 0;
    CHECK_OK(ngpt_scheduler_timesteps(s, &ts, &nts));
    CHECK_ERR(nx_sched_plan(s, ts[0], N, false, &plan), NGPT_ERR_INVALID_ARGUMENT, "variance_noise");
    CHECK_ERR(nx_sched_plan(s, 12345, N, true, &plan), NGPT_ERR_INVALID_ARGUMENT, "not in the schedule");
    CHECK_OK(nx_sched_plan(s, ts[0], N, true, &plan));
    CHECK_ERR(nx_sched_plan(s, ts[1], N + 1, true, &plan), NGPT_ERR_SHAPE_MISMATCH, "earlier steps");
    /* reset starts a trajectory of any size */
    CHECK_OK(ngpt_scheduler_reset(s));
    CHECK_OK(nx_sched_plan(s, ts[0], N + 1, true, &plan));
    ngpt_scheduler_free(s);
    nx_backend_free(be);
    nx_pool_free(pool);
}

int main(void)
{
    RUN(test_golden);
    RUN(test_device_step);
    RUN(test_errors);
    RUN(test_add_noise);
    RUN(test_euler);
    RUN(test_unipc);
    RUN(test_lms);
    RUN(test_kdpm2);
    RUN(test_deis);
    RUN(test_ddpm);
    RUN(test_dpm_single);
    RUN(test_alloc_failures);
    return test_done();
}
