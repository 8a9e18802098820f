/* sched_timesteps.c — set_timesteps of each kind (integer timesteps, the k-diffusion samplers'
 * fractional ones with their sigmas, Karras noise levels), the lookup of a step by its
 * timestep, scale_model_input, add_noise and init_noise_sigma.
 */
#include "sched_impl.h"
#include "../core/alloc.h"
#include "../core/error.h"

#include <math.h>
#include <string.h>


void nx_sched_free_timesteps(ngpt_scheduler *s)
{
    nx_free(s->ts);
    nx_free(s->tsf);
    nx_free(s->sigmas);
    nx_free(s->sigmas_interp);
    nx_free(s->sigmas_up);
    nx_free(s->sigmas_down);
}

static ngpt_status ts_alloc(ngpt_scheduler *s, size_t n)
{
    /* the k-diffusion samplers' sigmas: n + 1 of each kind the sampler has */
    const int n_sg = !nx_sched_is_kdiffusion(s) ? 0 : s->kind == NGPT_SCHEDULER_KDPM2 ? 2
                   : s->kind == NGPT_SCHEDULER_KDPM2_ANCESTRAL ? 4 : 1;
    int64_t *ts = nx_malloc((n ? n : 1) * sizeof *ts);
    double *tsf = nx_malloc((n ? n : 1) * sizeof *tsf);
    float *sg[4] = {NULL, NULL, NULL, NULL};
    bool ok = ts && tsf;
    for (int j = 0; j < n_sg; j++) ok &= (sg[j] = nx_malloc((n + 1) * sizeof(float))) != NULL;
    if (!ok) {
        nx_free(ts);
        nx_free(tsf);
        for (int j = 0; j < 4; j++) nx_free(sg[j]);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_set_timesteps: out of memory");
    }
    nx_sched_free_timesteps(s);
    s->ts = ts;
    s->tsf = tsf;
    s->sigmas = sg[0];
    s->sigmas_interp = sg[1];
    s->sigmas_up = sg[2];
    s->sigmas_down = sg[3];
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

/* Append t to the first *k timesteps unless it is there (np.unique's first occurrences, in order);
 * DPM-Solver singlestep's set_timesteps keeps duplicates. */
static void ts_push_unique(ngpt_scheduler *s, size_t *k, int64_t t)
{
    for (size_t q = 0; q < *k && s->kind != NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP; q++)
        if (s->ts[q] == t) return;
    s->ts[(*k)++] = t;
}

/* DPMSolverSinglestepScheduler.get_order_list: the steps in groups of 1, 2 or 3 (the solver order),
 * ending in lower orders with lower_order_final, which set_timesteps turns on for good when the
 * steps are no multiple of the order. */
static ngpt_status singlestep_orders(ngpt_scheduler *s, int32_t N)
{
    if (!s->lower_order_final && N % s->order != 0) s->lower_order_final = true;
    int8_t *o = nx_malloc((size_t)N * sizeof *o);
    if (!o) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_set_timesteps: out of memory");
    const int k = s->order;
    int32_t full = N / k, i = 0;  /* whole groups, then the tail */
    if (s->lower_order_final && k == 3 && N % 3 == 0) full--;
    for (int32_t g = 0; g < full; g++)
        for (int j = 1; j <= k; j++) o[i++] = (int8_t)j;
    if (s->lower_order_final && k == 3 && N % 3 == 0) o[i++] = 1, o[i++] = 2, o[i++] = 1;
    for (int j = 1; i < N; j++) o[i++] = (int8_t)j;  /* the rest: [1], [1, 2] */
    nx_free(s->order_list);
    s->order_list = o;
    return NGPT_OK;
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

/* The interpolation of _sigma_to_t and KDPM2's sigma_to_t (log sigma ls against the float32
 * log training sigmas): the index low of the last log sigma <= ls (argmax of cumsum(dists >= 0)),
 * at most T - 2, and the float32 weight w of low + 1, clipped to [0, 1] (NaN passes). */
static float sigma_weight(float ls, const float *log_sigmas, int64_t T, int64_t *low_out)
{
    int64_t low = 0;
    for (int64_t i = 0; i < T; i++)
        if (ls - log_sigmas[i] >= 0.0f) low = i;
    if (low > T - 2) low = T - 2;
    const float lo = log_sigmas[low], hi = log_sigmas[low + 1];
    float w = (lo - ls) / (lo - hi);
    *low_out = low;
    return w < 0.0f ? 0.0f : w > 1.0f ? 1.0f : w;
}

/* _sigma_to_t (Euler's, Heun's and DPM-Solver's are one copied function) under NumPy 1.x's
 * casting: the float64 log sigma meets the float32 log_sigmas as float32 (value-based casting of
 * a scalar), w is float32, and (1 - w) * low_idx + w * high_idx is float64 (a float32 array times
 * an int64 array). */
static double sigma_to_t(double sigma, const float *log_sigmas, int64_t T)
{
    int64_t low;
    const float w = sigma_weight((float)log(sigma), log_sigmas, T, &low);
    return (double)(1.0f - w) * (double)low + (double)w * (double)(low + 1);
}

float nx_sched_np_logf(float x)
{
    /* numpy 1.24's simd_log_FLOAT (AVX2 + FMA3 and AVX-512F builds; its SIMD code serves single
     * elements too): x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) as a 5/5 rational function
     * of m - 1 (Remez; at most 3.83 ulp), plus e ln 2, each step fused as numpy's */
    static const float p[6] = {0.000000000000000000000e+00f, 9.999999999999998702752e-01f,
                               2.112677543073053063722e+00f, 1.480000633576506585156e+00f,
                               3.808837741388407920751e-01f, 2.589979117907922693523e-02f};
    static const float q[6] = {1.000000000000000000000e+00f, 2.612677543073109236779e+00f,
                               2.453006071784736363091e+00f, 9.864942958519418960339e-01f,
                               1.546476374983906719538e-01f, 5.875095403124574342950e-03f};
    if (isnan(x)) return x;
    if (x < 0.0f) return -NAN;
    if (x == 0.0f) return -INFINITY;
    if (isinf(x)) return INFINITY;
    int e;
    float m = frexpf(x, &e);  /* [0.5, 1), denormals included (numpy scales them by 2^100) */
    float ex = (float)e;
    if (m <= 0.707106781186547524400844362104849039f) {
        m = m + m;
        ex = ex - 1.0f;
    }
    m = m - 1.0f;
    float num = fmaf(p[5], m, p[4]), den = fmaf(q[5], m, q[4]);
    for (int k = 3; k >= 0; k--) {
        num = fmaf(num, m, p[k]);
        den = fmaf(den, m, q[k]);
    }
    return fmaf(ex, 0.693147180559945309417232121458176568f, num / den);
}

/* np.log of the training sigmas (a float32 array: numpy's own float32 log), or NULL. */
static float *log_train_sigmas(const ngpt_scheduler *s)
{
    float *ls = nx_malloc((size_t)s->T * sizeof *ls);
    if (ls)
        for (int64_t i = 0; i < s->T; i++) ls[i] = nx_sched_np_logf(s->train_sigma[i]);
    return ls;
}

/* The timesteps of Karras sigmas: _sigma_to_t against log(training sigmas) (numpy's float32 log). */
static ngpt_status karras_timesteps(const ngpt_scheduler *s, const double *sigmas, int32_t N, double *ts)
{
    float *log_sigmas = log_train_sigmas(s);
    if (!log_sigmas) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_set_timesteps: out of memory");
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

/* init_noise_sigma = sigmas.max() over the n + 1 step sigmas, as Heun's and KDPM2's set_timesteps
 * set it (torch.max: NaN wins) */
static void set_init_sigma_max(ngpt_scheduler *s, size_t n)
{
    s->init_sigma = 0.0f;
    for (size_t k = 0; k <= n; k++)
        if (s->sigmas[k] > s->init_sigma || isnan(s->sigmas[k])) s->init_sigma = s->sigmas[k];
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
        if (heun) set_init_sigma_max(s, n);
    }
    nx_free(t);
    nx_free(sg);
    return st;
}

/* torch.lerp(a, b, 0.5) on float32: b - (b - a) * 0.5 (its formula for weights >= 0.5; the
 * product is exact, so a fused multiply-add would round the same) */
static float lerp_half(float a, float b)
{
    return b - (b - a) * 0.5f;
}

/* KDPM2's sigma_to_t: _sigma_to_t's interpolation in torch float32 tensor ops (log sigma,
 * log_sigmas and the weights float32, the final sum float32 too). */
static double kdpm2_sigma_to_t(float sigma, const float *log_sigmas, int64_t T)
{
    int64_t low;
    const float w = sigma_weight(logf(sigma), log_sigmas, T, &low);
    return (double)((1.0f - w) * (float)low + w * (float)(low + 1));
}

/* KDPM2's and KDPM2 ancestral's N sigmas (np.interp, as Euler's) + 0 and their midpoints
 * sigmas_interpol (exp of the lerp of the logs: with the previous sigma, or for the ancestral
 * sampler with sigma_down, its sigmas_up and sigmas_down as Euler ancestral's), each repeated as
 * [v0, v1, v1, ..., vN, vN]; the 2N - 1 timesteps interleave the N timesteps with the midpoints'
 * (sigma_to_t): [t0, ti1, t1, ..., ti(N-1), t(N-1)], the ancestral sampler's from ti0 to ti(N-2). */
static ngpt_status set_kdpm2(ngpt_scheduler *s, int32_t N)
{
    const bool anc = s->kind == NGPT_SCHEDULER_KDPM2_ANCESTRAL;
    const size_t n = 2 * (size_t)N - 1, m = (size_t)N + 1;
    const int64_t T = s->T;
    double *t = nx_malloc((size_t)N * sizeof *t);
    float *v = nx_malloc(4 * m * sizeof *v);  /* sigmas, sigmas_interpol, sigmas_up, sigmas_down */
    float *log_sigmas = log_train_sigmas(s);
    ngpt_status st = t && v && log_sigmas ? ts_alloc(s, n)
                                          : nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_scheduler_set_timesteps: out of memory");
    if (st == NGPT_OK) {
        float *sg = v, *si = v + m, *up = v + 2 * m, *down = v + 3 * m;
        for (int32_t i = 0; i < N; i++) t[i] = np_linspace_at((double)(T - 1), N, N - 1 - i);  /* [::-1] */
        for (int32_t i = 0; i < N; i++) sg[i] = (float)np_interp_arange(t[i], s->train_sigma, T);
        sg[N] = 0.0f;
        for (size_t i = 0; i < m; i++) {
            if (!anc) {  /* sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp() */
                si[i] = expf(lerp_half(logf(sg[i]), logf(sg[(i + m - 1) % m])));
                continue;
            }
            /* sigmas_next = sigmas.roll(-1) with its last 0; sigmas_down[-1] = 0 */
            nx_sched_ancestral_sigmas(sg[i], i + 1 < m ? sg[i + 1] : 0.0f, &up[i], &down[i]);
            if (i + 1 == m) down[i] = 0.0f;
            else if (down[i] == 0.0f && sg[i + 1] > 0.0f)  /* float32 lost sigma_down = to^2 / from (a cosine
                                                             schedule's first step; diffusers: log(0), NaN timesteps) */
                down[i] = (float)((double)sg[i + 1] * sg[i + 1] / sg[i]);
            si[i] = i + 2 >= m ? 0.0f : expf(lerp_half(logf(sg[i]), logf(down[i])));  /* [-2:] = 0 */
        }
        float *dst[4] = {s->sigmas, s->sigmas_interp, s->sigmas_up, s->sigmas_down};
        for (int a = 0; a < (anc ? 4 : 2); a++)
            for (size_t k = 0; k <= n; k++) dst[a][k] = v[(size_t)a * m + (k + 1) / 2];
        for (size_t k = 0; k < n; k++) {
            const size_t j = (k + 1) / 2;  /* k = 2j: timestep j; k = 2j - 1: a midpoint's */
            s->tsf[k] = k % 2 == 0 ? t[j] : kdpm2_sigma_to_t(si[anc ? j - 1 : j], log_sigmas, T);
            s->ts[k] = 0;  /* unused: ngpt_scheduler_timesteps refuses these kinds */
            if (!isfinite(s->tsf[k])) {
                st = nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_set_timesteps: %s's sigma %g maps to timestep %g: "
                            "the noise schedule is unusable (betas outside (0, 1), or alphas_cumprod below float32's "
                            "range)", nx_sched_class_name(s->kind), (double)si[anc ? j - 1 : j], s->tsf[k]);
                break;
            }
        }
        set_init_sigma_max(s, n);
    }
    nx_free(t);
    nx_free(v);
    nx_free(log_sigmas);
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
    case NGPT_SCHEDULER_DDIM:
    case NGPT_SCHEDULER_DDPM: st = set_ddim(s, n); break;  /* (DDPM: leading, no steps_offset) */
    case NGPT_SCHEDULER_PNDM: st = set_pndm(s, n); break;
    case NGPT_SCHEDULER_DPMSOLVER_MULTISTEP:
    case NGPT_SCHEDULER_UNIPC_MULTISTEP:
    case NGPT_SCHEDULER_DEIS_MULTISTEP: st = set_dpm(s, n); break;  /* (UniPC, DEIS: no clipping, no Karras) */
    case NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP:
        st = set_dpm(s, n);
        if (st == NGPT_OK) st = singlestep_orders(s, n);
        break;
    case NGPT_SCHEDULER_KDPM2:
    case NGPT_SCHEDULER_KDPM2_ANCESTRAL: st = set_kdpm2(s, n); break;
    default: st = set_euler(s, n); break;
    }
    if (!nx_sched_is_kdiffusion(s))
        for (size_t i = 0; st == NGPT_OK && i < s->n_ts; i++) s->tsf[i] = (double)s->ts[i];
    /* steps_offset can push the largest timesteps past the schedule (diffusers fails at the step,
     * indexing alphas_cumprod; python's negative indices reach back to -T) */
    for (size_t i = 0; st == NGPT_OK && !nx_sched_is_kdiffusion(s) && i < s->n_ts; i++)
        if (s->ts[i] < -s->T || s->ts[i] >= s->T)
            st = nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_set_timesteps: %d steps with steps_offset %lld give "
                        "timestep %lld, outside the %lld of alphas_cumprod", n, (long long)s->steps_offset,
                        (long long)s->ts[i], (long long)s->T);
    if (st != NGPT_OK) { s->n_inference = 0; s->n_ts = 0; return st; }
    s->n_inference = n;
    nx_sched_free_state(s);
    nx_sched_reset_state(s);
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_scheduler_timesteps(const ngpt_scheduler *s, const int64_t **ts, size_t *n)
{
    if (!s || !ts || !n) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_timesteps: NULL argument");
    if (!s->n_inference) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_timesteps: call ngpt_scheduler_set_timesteps first");
    if (nx_sched_is_kdiffusion(s))
        return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_scheduler_timesteps: %s's timesteps are fractional: use "
                      "ngpt_scheduler_timesteps_f64", nx_sched_class_name(s->kind));
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
size_t nx_sched_first_step(const ngpt_scheduler *s, double t)
{
    size_t i = 0;
    while (i < s->n_ts && s->tsf[i] != t) i++;
    return i;
}

/* A k-diffusion or DPM singlestep sampler's index of timestep t (the expected next step first, as
 * their timesteps may repeat; Heun and KDPM2: Heun's index_for_timestep rule), or n_ts. */
size_t nx_sched_find_step(const ngpt_scheduler *s, double t)
{
    if (s->kind == NGPT_SCHEDULER_HEUN || nx_sched_is_kdpm2(s)) {  /* index_for_timestep: the last match in the first-order state, else the first */
        size_t idx = s->n_ts;
        for (size_t i = 0; i < s->n_ts; i++)
            if (s->tsf[i] == t) {
                idx = i;
                if (s->second_order) break;
            }
        return idx;
    }
    if (s->next < s->n_ts && s->tsf[s->next] == t) return s->next;
    return nx_sched_first_step(s, t);
}

ngpt_status nx_sched_not_in_schedule(const ngpt_scheduler *s, const char *fn, double t)
{
    return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: timestep %.10g is not in the schedule (%zu timesteps from %.10g)", fn, t,
                  s->n_ts, s->n_ts ? s->tsf[0] : -1.0);
}

/* A k-diffusion step's index from its timestep. */
static ngpt_status kdiffusion_step(const ngpt_scheduler *s, const char *fn, double t, size_t *idx)
{
    if (!s->n_inference) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: call ngpt_scheduler_set_timesteps first", fn);
    *idx = nx_sched_find_step(s, t);
    if (*idx == s->n_ts) return nx_sched_not_in_schedule(s, fn, t);
    return NGPT_OK;
}

/* scale_model_input's sigma at step idx, second: in the second-order state. KDPM2 scales its
 * second-order steps by the interpolated sigma (ancestral: the one of the step before). */
static float input_sigma(const ngpt_scheduler *s, size_t idx, bool second)
{
    if (second && s->kind == NGPT_SCHEDULER_KDPM2) return s->sigmas_interp[idx];
    if (second && s->kind == NGPT_SCHEDULER_KDPM2_ANCESTRAL) return s->sigmas_interp[idx - 1];
    return s->sigmas[idx];
}

float nx_sched_input_divisor(const ngpt_scheduler *s, size_t k)
{
    if (!nx_sched_is_kdiffusion(s) || k >= s->n_ts) return 0.0f;
    /* KDPM2's steps alternate first-order (even k) and second-order (odd k) */
    const float sg = input_sigma(s, k, nx_sched_is_kdpm2(s) && k % 2 == 1);
    return sqrtf(sg * sg + 1.0f);
}

int nx_sched_order(const ngpt_scheduler *s)
{
    return s->kind == NGPT_SCHEDULER_HEUN || nx_sched_is_kdpm2(s) ? 2 : 1;
}

bool nx_sched_needs_noise(const ngpt_scheduler *s)
{
    switch (s->kind) {
    case NGPT_SCHEDULER_DDIM: return s->eta > 0.0f;
    case NGPT_SCHEDULER_DDPM: return true;
    case NGPT_SCHEDULER_DPMSOLVER_MULTISTEP: return s->algo == NGPT_DPM_SDE_DPMSOLVER_PP || s->algo == NGPT_DPM_SDE_DPMSOLVER;
    case NGPT_SCHEDULER_EULER_ANCESTRAL:
    case NGPT_SCHEDULER_KDPM2_ANCESTRAL: return true;
    default: return false;
    }
}

NGPT_API ngpt_status ngpt_scheduler_reset(ngpt_scheduler *s)
{
    if (!s) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_reset: s is NULL");
    nx_sched_free_state(s);  /* a new trajectory may have another size */
    nx_sched_reset_state(s);
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
    return s && nx_sched_is_kdiffusion(s) ? s->init_sigma : 1.0f;
}

NGPT_API ngpt_status ngpt_scheduler_scale_model_input_f64(const ngpt_scheduler *s, float *sample, size_t n,
                                                          double timestep)
{
    static const char fn[] = "ngpt_scheduler_scale_model_input";
    if (!s || (n && !sample)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!nx_sched_is_kdiffusion(s)) return NGPT_OK;
    size_t idx = 0;
    NX_TRY(kdiffusion_step(s, fn, timestep, &idx));
    if (idx == 0 && s->second_order && nx_sched_is_kdpm2(s))  /* diffusers would read sigmas_interpol[-1] */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: %s's second-order step at the first timestep: take the steps "
                      "in order", fn, nx_sched_class_name(s->kind));
    const float sigma = input_sigma(s, idx, s->second_order);
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
    if (nx_sched_is_kdiffusion(s)) {
        size_t idx = 0;
        NX_TRY(kdiffusion_step(s, fn, timestep, &idx));
        const float sigma = s->sigmas[idx];
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
    if (nx_sched_is_kdiffusion(s)) return ngpt_scheduler_add_noise_f64(s, out, original, noise, n, (double)t);
    if (t < 0 || t >= s->T)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_scheduler_add_noise: timestep %lld outside [0, %lld)", (long long)t, (long long)s->T);
    const float a = s->acp[t];
    const float sa = sqrtf(a), sb = sqrtf(1.0f - a);
    for (size_t i = 0; i < n; i++) out[i] = sa * original[i] + sb * noise[i];
    return NGPT_OK;
}