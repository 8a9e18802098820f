/* decoder_generate.c — ngpt_decoder_generate: the three diffusers pipelines NExT-GPT calls
 * (StableDiffusionPipeline, AudioLDMPipeline, TextToVideoSDPipeline with prompt_embeds), read top
 * to bottom: initial noise, the denoising loop with classifier-free guidance, the decode.
 *
 * Everything per step runs on the context's backend: the UNet, then the guidance combine fused
 * with the scheduler step (nx_op_sched_step over the plan lib/sched computes on the host), the
 * latents and the scheduler's history staying in backend memory from the first step to the
 * decode. The host only sends the step's timesteps (and the noise of DDIM eta > 0). */
#include "bridge.h"
#include "decoder.h"

#include "../core/alloc.h"
#include "../core/log.h"
#include "../core/params.h"
#include "../models/mweights.h"
#include "../models/sampler.h"
#include "../sched/sched.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const ngpt_decode_params k_defaults = {
    .struct_size = sizeof(ngpt_decode_params),
    .scheduler = NGPT_SCHEDULER_AUTO,
    .strength = 0.8,
};

NGPT_API ngpt_status ngpt_decode_params_default(ngpt_decode_params *p, size_t struct_size)
{
    return nx_params_default(p, struct_size, &k_defaults, sizeof k_defaults, "ngpt_decode_params_default");
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void nx_decoder_gaussian_fill(float *x, size_t n, uint64_t seed)
{
    nx_rng r;
    nx_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i += 2) {
        double u1 = nx_rng_uniform(&r), u2 = nx_rng_uniform(&r);
        double rad = sqrt(-2.0 * log(1.0 - u1)); /* 1 - u1 in (0, 1] */
        x[i] = (float)(rad * cos(2.0 * M_PI * u2));
        if (i + 1 < n) x[i + 1] = (float)(rad * sin(2.0 * M_PI * u2));
    }
}

/* What one generate call works with, resolved from the params and the loaded configs. */
typedef struct plan {
    int      rank;         /* latents rank: 4, or 5 for video */
    int64_t  shape[5];     /* latents [B, C, (F,) h, w] */
    int64_t  n_wave;       /* audio: samples kept */
    int      steps;
    float    guidance;
    bool     cfg;
    const float *init;     /* image-to-image: init_latents (host F32, the latents' shape), or NULL */
} plan;


static ngpt_status make_plan(const ngpt_decoder *d, const ngpt_decode_params *p, const ngpt_tensor *cond, plan *pl)
{
    memset(pl, 0, sizeof *pl);
    pl->steps = p->num_inference_steps ? p->num_inference_steps : 50;
    pl->guidance = p->guidance_scale != 0.0f ? p->guidance_scale : 7.5f;
    pl->cfg = pl->guidance > 1.0f;
    if (pl->steps < 1 || pl->steps > 1000)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_generate: num_inference_steps %d out of [1, 1000]", pl->steps);
    if (!isfinite(pl->guidance)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_generate: guidance_scale is not finite");
    if (p->init_latents && !(p->strength > 0.0 && p->strength <= 1.0))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_generate: strength %g out of (0, 1]", p->strength);
    int64_t B = cond->shape[0];
    int64_t lc = nx_unet_in_channels(d->unet);
    int64_t sc = nx_vae_scale(d->vae);
    if (d->kind == NGPT_DECODER_AUDIO) {
        double secs = p->audio_length_s != 0.0 ? p->audio_length_s : 5.0;
        if (!(secs > 0.0) || secs > 60.0)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_generate: audio_length_s %g out of (0, 60]", (double)secs);
        /* custom_ad.AudioLDMPipeline: hop = prod(upsample_rates) / sampling_rate (float64); height =
         * int(len / hop) rounded up to a multiple of the VAE scale; n = int(len * sampling_rate);
         * check_inputs refuses len < hop * scale and mel bins that the scale does not divide. */
        const double hop = nx_hifigan_hop_s(d->vocoder);
        int64_t height = (int64_t)(secs / hop);
        if (height % sc) height = (height + sc - 1) / sc * sc;
        pl->n_wave = (int64_t)(secs * (double)nx_hifigan_sampling_rate(d->vocoder));
        int64_t n_mels = nx_hifigan_n_mels(d->vocoder);
        if (secs < hop * (double)sc)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_generate: audio_length_s %g is below the shortest, %g s",
                          (double)secs, hop * (double)sc);
        if (n_mels % sc)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: the vocoder's %lld mel bins are not a multiple of the VAE's scale %lld",
                          d->dir, (long long)n_mels, (long long)sc);
        pl->rank = 4;
        int64_t s[4] = {B, lc, height / sc, n_mels / sc};
        memcpy(pl->shape, s, sizeof s);
    } else {
        bool video = d->kind == NGPT_DECODER_VIDEO;
        int64_t h = p->height ? p->height : (video ? 320 : d->sample_size * sc);
        int64_t w = p->width ? p->width : (video ? 576 : d->sample_size * sc);
        int64_t f = p->num_frames ? p->num_frames : 24;
        const ngpt_tensor *init = p->init_latents;
        if (init && !p->height && !p->width && init->rank == (video ? 5 : 4)) {
            /* the img2img pipelines take the size from the image */
            h = init->shape[init->rank - 2] * sc;
            w = init->shape[init->rank - 1] * sc;
            if (video && !p->num_frames) f = init->shape[2];
        }
        if (h <= 0 || w <= 0 || h % 8 || w % 8 || h > NX_DECODE_MAX_SIDE || w > NX_DECODE_MAX_SIDE)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_generate: size %lldx%lld: not multiples of 8 in [8, %d]",
                          (long long)h, (long long)w, NX_DECODE_MAX_SIDE);
        if (video) {
            if (f < 1 || f > 256) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_generate: num_frames %lld out of [1, 256]", (long long)f);
            pl->rank = 5;
            int64_t s[5] = {B, lc, f, h / sc, w / sc};
            memcpy(pl->shape, s, sizeof s);
        } else {
            pl->rank = 4;
            int64_t s[4] = {B, lc, h / sc, w / sc};
            memcpy(pl->shape, s, sizeof s);
        }
    }
    return NGPT_OK;
}

static int64_t numel(int rank, const int64_t *s)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= s[i];
    return n;
}

/* Concatenate [uncond; cond] (or cond alone) along the batch into one backend tensor. */
static ngpt_status upload_conditioning(ngpt_decoder *d, nx_tensor *out, const ngpt_tensor *cond, const ngpt_tensor *uncond,
                                       bool cfg)
{
    int64_t per = ngpt_tensor_numel(cond);
    int64_t shape[NGPT_MAX_DIMS];
    for (int i = 0; i < cond->rank; i++) shape[i] = cond->shape[i];
    if (cfg) shape[0] *= 2;
    float *host = nx_malloc((size_t)(per * (cfg ? 2 : 1)) * sizeof(float));
    if (!host) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_generate: out of memory");
    float *c = NULL, *u = NULL;
    ngpt_status s = nx_api_read_f32(cond, &c, NULL, "cond");
    if (s == NGPT_OK && cfg) s = nx_api_read_f32(uncond, &u, NULL, "uncond");
    if (s == NGPT_OK) {
        if (cfg) {
            memcpy(host, u, (size_t)per * sizeof(float));
            memcpy(host + per, c, (size_t)per * sizeof(float));
        } else {
            memcpy(host, c, (size_t)per * sizeof(float));
        }
        s = nx_upload_f32_as(out, d->ctx->be, d->dt, cond->rank, shape, host);  /* in the UNet's dtype */
    }
    nx_free(host);
    nx_free(c);
    nx_free(u);
    return s;
}

/* The scheduler of the decoder's folder (scheduler/scheduler_config.json), kind overridable; the
 * image decoder's with custom_sd's fix-ups (steps_offset 1, clip_sample false). */
static ngpt_status open_scheduler(const char *dir, ngpt_decoder_kind kind, const ngpt_decode_params *p,
                                  ngpt_scheduler **out)
{
    size_t n = strlen(dir) + 40;
    char *path = nx_malloc(n);
    if (!path) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_generate: out of memory");
    snprintf(path, n, "%s/scheduler/scheduler_config.json", dir);
    ngpt_scheduler_params sp;
    ngpt_scheduler_params_default(&sp, sizeof sp);
    sp.kind = p->scheduler;
    sp.eta = p->eta;
    ngpt_status s = kind == NGPT_DECODER_IMAGE ? nx_sched_create_sd(out, path, &sp) : ngpt_scheduler_create(out, path, &sp);
    nx_free(path);
    return s;
}

ngpt_status nx_decoder_check_schedule(const char *dir, ngpt_decoder_kind kind, const ngpt_decode_params *p)
{
    ngpt_scheduler *sch = NULL;
    ngpt_status s = open_scheduler(dir, kind, p, &sch);
    if (s == NGPT_OK) s = ngpt_scheduler_set_timesteps(sch, p->num_inference_steps ? p->num_inference_steps : 50);
    ngpt_scheduler_free(sch);
    return s;
}

/* One UNet evaluation of the denoising loop on device buffers that stay put across steps: the
 * latents (F32) doubled into x for CFG ([lat; lat]; without CFG x is the latents), divided by the
 * scheduler's input scale (Euler: scale_model_input) and cast to the compute dtype, the
 * sinusoidal time input tin made from the timesteps ts, the UNet, its output cast back to F32
 * eps. Everything here stays on the device, so it can be recorded as a graph. */
typedef struct unet_step {
    nx_unet *unet;
    nx_backend *be;
    bool narrow;                      /* compute dtype F16/BF16: xc, epsc used */
    bool cfg;                         /* x = [lat; lat] */
    const nx_tensor *lat;             /* the latents */
    const nx_tensor *div;             /* F32 [1]: this step's input divisor, or NULL (x = lat without CFG) */
    nx_tensor *x, *xc, *eps, *epsc;
    const nx_tensor *ts;              /* F32 [B * mult]: this step's timestep per batch row */
    nx_tensor *tin;                   /* [B * mult, time channels] in the compute dtype */
    nx_timestep_params tp;
    const nx_tensor *ehs, *cls;
} unet_step;

static ngpt_status step_run(void *arg)
{
    const unet_step *u = arg;
    ngpt_status s = NGPT_OK;
    if (u->cfg) s = nx_op_concat(u->be, u->x, u->lat, u->lat, 0);
    if (s == NGPT_OK && u->div) s = nx_op_binary(u->be, u->x, u->cfg ? u->x : u->lat, u->div, NX_BINARY_DIV);
    if (s == NGPT_OK && u->narrow) s = nx_op_cast(u->be, u->xc, u->x);
    if (s == NGPT_OK) s = nx_op_timestep_embedding(u->be, u->tin, u->ts, &u->tp);
    if (s == NGPT_OK)
        s = nx_unet_forward_t(u->unet, u->narrow ? u->epsc : u->eps, u->narrow ? u->xc : u->x, u->tin, u->ehs, u->cls);
    if (s == NGPT_OK && u->narrow) s = nx_op_cast(u->be, u->eps, u->epsc);
    return s;
}

/* The SD 1.x latent-to-RGB approximation (rows: latent channels; columns: R, G, B), the linear
 * map preview tools fit to the VAE's output: x_rgb = latents . M, then [-1, 1] -> [0, 1]. */
static const float k_latent_rgb[4][3] = {
    {0.3512f, 0.2297f, 0.3227f},
    {0.3250f, 0.4974f, 0.2350f},
    {-0.2829f, 0.1762f, 0.2721f},
    {-0.2120f, -0.2616f, -0.7177f},
};

/* on_preview: the latents (downloaded into lat) and, for 4 channels, their RGB approximation
 * [B, (F,) h, w, 3] in [0, 1]. */
static ngpt_status preview(const plan *pl, const ngpt_decode_params *p, const nx_tensor *latd, float *lat, int32_t step,
                           int32_t total)
{
    const int64_t n = numel(pl->rank, pl->shape);
    NX_TRY(nx_tensor_download(latd, lat, (size_t)n * sizeof(float)));
    ngpt_tensor lt = {.dtype = NGPT_DTYPE_F32, .rank = pl->rank, .data = lat};
    memcpy(lt.shape, pl->shape, sizeof pl->shape);
    ngpt_tensor rgb = {0};
    const int64_t B = pl->shape[0], C = pl->shape[1], pix = n / (B * C);
    if (C == 4) {
        int64_t s[5] = {B, 0, 0, 0, 3};
        int r = 0;
        for (int i = 2; i < pl->rank; i++) s[1 + r++] = pl->shape[i];
        s[1 + r] = 3;
        NX_TRY(ngpt_tensor_create(&rgb, NGPT_DTYPE_F32, pl->rank, s));
        float *o = rgb.data;
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < pix; i++)
                for (int k = 0; k < 3; k++) {
                    float v = 0.0f;
                    for (int c = 0; c < 4; c++) v += lat[(b * 4 + c) * pix + i] * k_latent_rgb[c][k];
                    v = v * 0.5f + 0.5f;
                    o[(b * pix + i) * 3 + k] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                }
    }
    const bool go = p->on_preview(step, total, &lt, C == 4 ? &rgb : NULL, p->user_data);
    ngpt_tensor_free(&rgb);
    return go ? NGPT_OK : nx_err(NGPT_ERR_CANCELLED, "ngpt_decoder_generate: cancelled by on_preview after step %d of %d",
                                 step, total);
}

/* Image-to-image: the timesteps to skip, order x t_start (diffusers' get_timesteps), and the
 * starting latents add_noise(init, noise, the first timestep run) over the noise in lat. */
static ngpt_status start_from_init(ngpt_scheduler *sch, const plan *pl, double strength, const double *ts, size_t nts,
                                   float *lat, size_t *skip)
{
    const int init_steps = (int)fmin((double)pl->steps * strength, (double)pl->steps);  /* int(): toward 0 */
    if (init_steps < 1)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_generate: strength %g x %d steps runs no step "
                      "(int(steps x strength) must be at least 1)", strength, pl->steps);
    *skip = (size_t)(pl->steps - init_steps) * (size_t)nx_sched_order(sch);
    if (*skip >= nts)  /* not reached: every kind has order x steps - (order - 1) timesteps or more */
        return nx_err(NGPT_ERR_INTERNAL, "ngpt_decoder_generate: strength skips all %zu timesteps", nts);
    return ngpt_scheduler_add_noise_f64(sch, lat, pl->init, lat, (size_t)numel(pl->rank, pl->shape), ts[*skip]);
}

/* The latents after the denoising loop (host F32, numel(pl) floats, in place). */
static ngpt_status denoise(ngpt_decoder *d, const plan *pl, const ngpt_decode_params *p, const nx_tensor *cond_be,
                           float *lat)
{
    nx_backend *be = d->ctx->be;
    int64_t n = numel(pl->rank, pl->shape);
    int64_t B = pl->shape[0];
    int mult = pl->cfg ? 2 : 1;
    int64_t ushape[5];
    memcpy(ushape, pl->shape, sizeof ushape);
    ushape[0] = B * mult;

    ngpt_scheduler *sch = NULL;
    /* latd: the latents (F32, updated in place by each step); x2: the UNet's F32 input, [latd;
     * latd] with CFG, latd / scale with an input-scaling scheduler (else latd itself is the
     * input); divd: that scale; eps: the UNet's F32 output; xc, epsc: the same in the compute
     * dtype when that is F16/BF16; slot: the scheduler's history; noise: for the schedulers that
     * draw it (DDIM eta > 0, SDE DPM-Solver, Euler ancestral) */
    nx_tensor latd = {0}, x2 = {0}, divd = {0}, eps = {0}, xc = {0}, epsc = {0}, noise_d = {0};
    nx_tensor slot_t[NX_SCHED_SLOTS] = {{0}};
    nx_tensor *slot[NX_SCHED_SLOTS] = {0};
    int n_slots = 0;
    bool narrow = d->dt != NGPT_DTYPE_F32;
    float *noise = NULL;
    float *ts_b = nx_malloc((size_t)(B * mult) * sizeof(float));
    ngpt_status s = ts_b ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_generate: out of memory");
    if (s == NGPT_OK) s = open_scheduler(d->dir, d->kind, p, &sch);
    if (s == NGPT_OK && nx_sched_needs_noise(sch) && !(noise = nx_malloc((size_t)n * sizeof(float))))
        s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_generate: out of memory");
    if (s == NGPT_OK) s = ngpt_scheduler_set_timesteps(sch, pl->steps);
    const double *ts = NULL;
    size_t nts = 0;
    if (s == NGPT_OK) s = ngpt_scheduler_timesteps_f64(sch, &ts, &nts);
    const bool scaled = s == NGPT_OK && nx_sched_input_divisor(sch, 0) > 0.0f;
    size_t skip = 0;  /* image-to-image: the schedule's first timesteps, not run */
    if (s == NGPT_OK && pl->init) {
        s = start_from_init(sch, pl, p->strength, ts, nts, lat, &skip);
    } else if (s == NGPT_OK) {
        float sigma = ngpt_scheduler_init_noise_sigma(sch);
        for (int64_t i = 0; i < n; i++) lat[i] *= sigma;
    }
    if (s == NGPT_OK) {
        ts += skip;
        nts -= skip;
    }
    /* the timesteps (F32, one per batch row) -> the sinusoidal time input tin, on the device */
    int64_t tshape[2] = {B * mult, nx_unet_time_channels(d->unet)};
    nx_tensor tsd = {0}, tin = {0};
    if (s == NGPT_OK) s = nx_tensor_alloc(&latd, be, NGPT_DTYPE_F32, pl->rank, pl->shape);
    if (s == NGPT_OK && (pl->cfg || scaled)) s = nx_tensor_alloc(&x2, be, NGPT_DTYPE_F32, pl->rank, ushape);
    const int64_t one[1] = {1};
    if (s == NGPT_OK && scaled) s = nx_tensor_alloc(&divd, be, NGPT_DTYPE_F32, 1, one);
    if (s == NGPT_OK) s = nx_tensor_alloc(&eps, be, NGPT_DTYPE_F32, pl->rank, ushape);
    if (s == NGPT_OK && narrow) s = nx_tensor_alloc(&xc, be, d->dt, pl->rank, ushape);
    if (s == NGPT_OK && narrow) s = nx_tensor_alloc(&epsc, be, d->dt, pl->rank, ushape);
    if (s == NGPT_OK) s = nx_tensor_alloc(&tsd, be, NGPT_DTYPE_F32, 1, tshape);
    if (s == NGPT_OK) s = nx_tensor_alloc(&tin, be, d->dt, 2, tshape);
    if (s == NGPT_OK && noise) s = nx_tensor_alloc(&noise_d, be, NGPT_DTYPE_F32, pl->rank, pl->shape);
    if (s == NGPT_OK) n_slots = nx_sched_slots(sch);
    for (int j = 0; s == NGPT_OK && j < n_slots; j++) {
        s = nx_tensor_alloc(&slot_t[j], be, NGPT_DTYPE_F32, pl->rank, pl->shape);
        slot[j] = &slot_t[j];
    }
    if (s == NGPT_OK) s = nx_tensor_upload(&latd, lat, (size_t)n * sizeof(float));
    const nx_tensor *ehs = d->kind == NGPT_DECODER_AUDIO ? NULL : cond_be;
    const nx_tensor *cls = d->kind == NGPT_DECODER_AUDIO ? cond_be : NULL;
    unet_step st = {d->unet, be, narrow, pl->cfg, &latd, scaled ? &divd : NULL, pl->cfg || scaled ? &x2 : &latd,
                    &xc, &eps, &epsc, &tsd, &tin, {0}, ehs, cls};
    nx_unet_time_params(d->unet, &st.tp);
    /* NGPT_DECODER_FLAG_CUDA_GRAPH: the step (concat, casts, time input, UNet) recorded at
     * step 2 — step 1 has made the convolution plans, pools and constants the recording must
     * find — and replayed. The scheduler step stays outside: its coefficients change every step. */
    bool want_graph = d->cuda_graph && be->v->capture_begin;
    nx_graph *graph = NULL;
    double t0 = now_s();
    uint64_t noise_seed = p->seed ^ 0x9e3779b97f4a7c15ull;
    for (size_t k = 0; s == NGPT_OK && k < nts; k++) {
        for (int64_t i = 0; i < B * mult; i++) ts_b[i] = (float)ts[k];  /* the time projection's .float() */
        s = nx_tensor_upload(&tsd, ts_b, nx_nbytes(&tsd));
        if (s == NGPT_OK && scaled) {
            const float dv = nx_sched_input_divisor(sch, skip + k);
            s = nx_tensor_upload(&divd, &dv, sizeof dv);
        }
        if (s == NGPT_OK && graph) {
            s = nx_backend_replay(be, &graph, step_run, &st, "ngpt_decoder_generate: the denoising step");
        } else if (s == NGPT_OK && want_graph && k >= 1) {
            want_graph = false;  /* one attempt */
            s = nx_backend_record(be, step_run, &st, &graph, "ngpt_decoder_generate: the denoising step");
            /* the replays allocate from the graph's own memory: the activations step 1 left
             * cached in the default pool would otherwise be held twice through the loop */
            if (s == NGPT_OK && graph) nx_backend_trim(be);
        } else if (s == NGPT_OK) {
            nx_cpu_bf16_scope prev = nx_decoder_bf16_begin(d);
            s = step_run(&st);
            nx_decoder_bf16_end(d, prev);
        }
        if (s == NGPT_OK && noise) {
            nx_decoder_gaussian_fill(noise, (size_t)n, noise_seed + k);
            s = nx_tensor_upload(&noise_d, noise, (size_t)n * sizeof(float));
        }
        nx_sched_step plan;
        if (s == NGPT_OK) s = nx_sched_plan(sch, ts[k], (size_t)n, noise != NULL, &plan);
        if (s == NGPT_OK) {
            plan.cfg = pl->cfg; /* eps = u + g (c - u), in the same pass */
            plan.guidance = pl->guidance;
            s = nx_op_sched_step(be, &plan, &latd, &eps, noise ? &noise_d : NULL, slot, n_slots);
        }
        if (s == NGPT_OK && p->on_step) {
            s = be->v->sync(be);  /* the step's time, and cancellation, after its work is done */
            if (s == NGPT_OK && !p->on_step((int32_t)(k + 1), (int32_t)nts, (float)(now_s() - t0), p->user_data))
                s = nx_err(NGPT_ERR_CANCELLED, "ngpt_decoder_generate: cancelled after step %zu of %zu", k + 1, nts);
        }
        if (s == NGPT_OK && p->on_preview) s = preview(pl, p, &latd, lat, (int32_t)(k + 1), (int32_t)nts);
    }
    if (s == NGPT_OK) s = nx_tensor_download(&latd, lat, (size_t)n * sizeof(float));
    nx_backend_graph_free(be, graph);
    nx_tensor_free(&latd);
    nx_tensor_free(&x2);
    nx_tensor_free(&divd);
    nx_tensor_free(&eps);
    nx_tensor_free(&xc);
    nx_tensor_free(&epsc);
    nx_tensor_free(&tsd);
    nx_tensor_free(&tin);
    nx_tensor_free(&noise_d);
    for (int j = 0; j < NX_SCHED_SLOTS; j++) nx_tensor_free(&slot_t[j]);
    ngpt_scheduler_free(sch);
    nx_free(noise);
    nx_free(ts_b);
    return s;
}

/* custom_sd.run_safety_checker on the decoded images (F32 [B, H, W, 3]): flagged ones become
 * black; *aux (when given) gets the flags, BOOL [B] (the pipeline's has_nsfw_concept). */
static ngpt_status run_safety_checker(ngpt_decoder *d, ngpt_tensor *img, ngpt_tensor *aux)
{
    const int64_t B = img->shape[0], H = img->shape[1], W = img->shape[2];
    ngpt_tensor flags = {0};
    int64_t fs[1] = {B};
    NX_TRY(nx_api_tensor_new(&flags, NGPT_DTYPE_BOOL, 1, fs));
    bool *nsfw = flags.data;
    ngpt_status s = nx_decoder_safety_run(d, img->data, NULL, B, H, W, nsfw, NULL, NULL);
    for (int64_t b = 0; s == NGPT_OK && b < B; b++)
        if (nsfw[b]) memset((float *)img->data + b * H * W * 3, 0, (size_t)(H * W * 3) * sizeof(float));
    if (s == NGPT_OK && aux) *aux = flags;
    else ngpt_tensor_free(&flags);
    return s;
}

/* Decode the final latents into the kind's output. */
static ngpt_status finish(ngpt_decoder *d, const plan *pl, const float *lat, ngpt_tensor *out, ngpt_tensor *aux)
{
    /* 1 / factor in double, the product in float32: torch's `1 / sf * latents` */
    const float inv = (float)(1.0 / nx_decoder_latent_scale(d));
    int64_t n = numel(pl->rank, pl->shape);
    float *scaled = nx_malloc((size_t)n * sizeof(float));
    if (!scaled) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_generate: out of memory");
    for (int64_t i = 0; i < n; i++) scaled[i] = lat[i] * inv;
    ngpt_tensor lt = {.dtype = NGPT_DTYPE_F32, .rank = pl->rank, .data = scaled};
    memcpy(lt.shape, pl->shape, sizeof pl->shape);
    ngpt_tensor dec = {0};
    ngpt_status s = ngpt_decoder_vae_decode(d, &dec, &lt);
    nx_free(scaled);
    if (s != NGPT_OK) return s;

    if (d->kind == NGPT_DECODER_IMAGE) { /* clamp(x / 2 + 0.5, 0, 1), NCHW -> NHWC */
        int64_t B = dec.shape[0], C = dec.shape[1], H = dec.shape[2], W = dec.shape[3];
        int64_t os[4] = {B, H, W, C};
        s = ngpt_tensor_create(out, NGPT_DTYPE_F32, 4, os);
        const float *src = dec.data;
        float *dst = s == NGPT_OK ? out->data : NULL;
        for (int64_t b = 0; dst && b < B; b++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < H * W; i++) {
                    float v = src[(b * C + c) * H * W + i] * 0.5f + 0.5f;
                    dst[(b * H * W + i) * C + c] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                }
        ngpt_tensor_free(&dec);
        if (s == NGPT_OK && d->safety) s = run_safety_checker(d, out, aux);
        if (s != NGPT_OK) ngpt_tensor_free(out);
        return s;
    }
    if (d->kind == NGPT_DECODER_VIDEO) {
        *out = dec;
        return NGPT_OK;
    }
    /* AUDIO: mel [B, 1, T, n_mels] -> vocoder(mel.squeeze(1))[:, :n] */
    ngpt_tensor mel3 = dec;
    mel3.rank = 3;
    mel3.shape[1] = dec.shape[2];
    mel3.shape[2] = dec.shape[3];
    ngpt_tensor wave = {0};
    s = ngpt_decoder_vocoder(d, &wave, &mel3);
    int64_t B = dec.shape[0], L = s == NGPT_OK ? wave.shape[1] : 0;
    /* Python's slice: when int(len / hop) truncates onto a multiple of the scale (0.41 s at hop
     * 0.002: 204.99999999999997 -> 204 frames), the vocoder gives fewer samples than
     * int(len * rate) and all of them are kept */
    const int64_t keep = L < pl->n_wave ? L : pl->n_wave;
    if (s == NGPT_OK) {
        int64_t os[2] = {B, keep};
        s = ngpt_tensor_create(out, NGPT_DTYPE_F32, 2, os);
        for (int64_t b = 0; s == NGPT_OK && b < B; b++)
            memcpy((float *)out->data + b * keep, (const float *)wave.data + b * L, (size_t)keep * sizeof(float));
    }
    ngpt_tensor_free(&wave);
    if (s == NGPT_OK && aux) {
        *aux = dec;
        return NGPT_OK;
    }
    ngpt_tensor_free(&dec);
    return s;
}

/* uncond = the text encoder's embedding of "" padded to cond's token count, repeated over cond's
 * batch (the pipelines' negative prompt when NExT-GPT passes only prompt_embeds). */
static ngpt_status make_uncond(ngpt_decoder *d, const ngpt_tensor *cond, ngpt_tensor *out)
{
    /* AUDIO: the normalised CLAP text_embeds of "" [1, P] (S = 1); else [1, S, D] for cond's S */
    const bool audio = d->kind == NGPT_DECODER_AUDIO;
    int64_t B = cond->shape[0], S = audio ? 1 : cond->shape[1], D = cond->shape[cond->rank - 1];
    if (ngpt_decoder_text_hidden_size(d) != D)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: the text encoder's %s %d differs from cond's width %lld", d->dir,
                      audio ? "projection_dim" : "hidden size", (int)ngpt_decoder_text_hidden_size(d), (long long)D);
    const float *e = NULL;
    NX_TRY(nx_decoder_uncond(d, S, &e));
    NX_TRY(nx_api_tensor_new(out, NGPT_DTYPE_F32, cond->rank, cond->shape));
    for (int64_t b = 0; b < B; b++) memcpy((float *)out->data + b * S * D, e, (size_t)(S * D) * sizeof(float));
    return NGPT_OK;
}

/* The caller's latents or init_latents as host F32 (*out, nx_free'd by the caller), of the
 * shape the params give. init_latents may have fewer rows, a divisor of the batch: they are
 * repeated over it as diffusers' prepare_latents does (torch.cat([init] * k)). */
static ngpt_status read_latents(const ngpt_tensor *t, const char *what, const plan *pl, float **out)
{
    const bool init = strcmp(what, "init_latents") == 0;
    NX_TRY(nx_api_check_tensor(t, what, pl->rank));
    const int64_t B = pl->shape[0], b0 = t->shape[0];
    for (int i = 0; i < pl->rank; i++) {
        bool repeats = i == 0 && init && b0 > 0 && b0 < B && B % b0 == 0;
        if (t->shape[i] != pl->shape[i] && !repeats) {
            char got[160], exp[160];
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_decoder_generate: %s %s, expected %s for these params%s", what,
                          nx_shape_str(got, sizeof got, t->rank, t->shape), nx_shape_str(exp, sizeof exp, pl->rank, pl->shape),
                          init ? " (set the size, frames or audio length to the input's; its batch may also divide cond's)"
                               : "");
        }
    }
    float *rows = NULL;
    int64_t n = 0;
    NX_TRY(nx_api_read_f32(t, &rows, &n, what));
    if (b0 == B) {
        *out = rows;
        return NGPT_OK;
    }
    float *all = nx_malloc((size_t)(n / b0 * B) * sizeof(float));
    if (!all) {
        nx_free(rows);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_generate: out of memory for %s", what);
    }
    for (int64_t k = 0; k < B / b0; k++) memcpy(all + k * n, rows, (size_t)n * sizeof(float));
    nx_free(rows);
    *out = all;
    return NGPT_OK;
}

/* The audio output projector's [B, 1, D] as the UNet's class-embedding input [B, D] (a view: a
 * borrowed copy of the struct; `t` may be NULL). */
static const ngpt_tensor *squeeze_audio_tokens(const ngpt_tensor *t, ngpt_tensor *view)
{
    if (!t || t->rank != 3 || t->shape[1] != 1) return t;
    *view = *t;
    view->rank = 2;
    view->shape[1] = t->shape[2];
    view->owner = NULL;  /* the view does not own what t owns */
    return view;
}

NGPT_API ngpt_status ngpt_decoder_generate(ngpt_decoder *d, ngpt_tensor *out, ngpt_tensor *aux, const ngpt_tensor *cond,
                                           const ngpt_tensor *uncond, const ngpt_decode_params *params)
{
    if (!d || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_generate: decoder or out is NULL");
    NX_HOLD_DEVICE(d->ctx);
    memset(out, 0, sizeof *out);
    if (aux) memset(aux, 0, sizeof *aux);
    ngpt_decode_params p;
    NX_TRY(nx_params_read(&p, params, &k_defaults, sizeof p, "ngpt_decoder_generate"));
    if (!d->unet || !d->vae || (d->kind == NGPT_DECODER_AUDIO && !d->vocoder))
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: generate needs the UNet, the VAE%s loaded: %s/ was not (the folder "
                      "has none, or the decoder's components left it out)", d->dir,
                      d->kind == NGPT_DECODER_AUDIO ? " and the vocoder" : "",
                      !d->unet ? "unet" : !d->vae ? "vae" : "vocoder");
    bool audio = d->kind == NGPT_DECODER_AUDIO;
    ngpt_tensor cond_2d, uncond_2d;
    if (audio) {
        cond = squeeze_audio_tokens(cond, &cond_2d);
        uncond = squeeze_audio_tokens(uncond, &uncond_2d);
    }
    NX_TRY(nx_api_check_tensor(cond, "cond", audio ? 2 : 3));
    int64_t want = audio ? nx_unet_class_embed_dim(d->unet) : nx_unet_cross_attention_dim(d->unet);
    if (cond->shape[cond->rank - 1] != want || cond->shape[0] < 1) {
        char got[160];
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: cond %s: the last dimension must be %lld (%s)", d->dir,
                      nx_shape_str(got, sizeof got, cond->rank, cond->shape), (long long)want,
                      audio ? "the UNet's class-embedding input" : "the UNet's cross_attention_dim");
    }
    plan pl;
    NX_TRY(make_plan(d, &p, cond, &pl));
    ngpt_tensor own_uncond = {0};  /* the text encoder's "" embedding, repeated over the batch */
    if (pl.cfg && !uncond) {
        if (!d->text_released && (audio ? !d->clap : !d->text_encoder))
            return nx_err(NGPT_ERR_UNSUPPORTED,
                          "ngpt_decoder_generate: guidance %g needs the unconditional embedding: pass uncond (this "
                          "decoder has no text_encoder/ and tokenizer/ loaded)", (double)pl.guidance);
        NX_TRY(make_uncond(d, cond, &own_uncond));
        uncond = &own_uncond;
    }
    if (pl.cfg) {
        NX_TRY(nx_api_check_tensor(uncond, "uncond", cond->rank));
        for (int i = 0; i < cond->rank; i++)
            if (uncond->shape[i] != cond->shape[i])
                return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_decoder_generate: uncond and cond differ in shape");
    }
    int64_t n = numel(pl.rank, pl.shape);
    float *lat = NULL;
    ngpt_status s = NGPT_OK;
    float *init = NULL;
    if (p.latents) {
        s = read_latents(p.latents, "latents", &pl, &lat);
    } else {
        lat = nx_malloc((size_t)n * sizeof(float));
        if (!lat) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_generate: out of memory");
        else nx_decoder_gaussian_fill(lat, (size_t)n, p.seed);
    }
    if (s == NGPT_OK && p.init_latents) s = read_latents(p.init_latents, "init_latents", &pl, &init);
    pl.init = init;
    nx_tensor cond_be = {0};
    if (s == NGPT_OK) s = upload_conditioning(d, &cond_be, cond, uncond, pl.cfg);
    if (s == NGPT_OK) s = denoise(d, &pl, &p, &cond_be, lat);
    nx_tensor_free(&cond_be);
    if (s == NGPT_OK) s = finish(d, &pl, lat, out, audio || d->kind == NGPT_DECODER_IMAGE ? aux : NULL);
    nx_free(lat);
    nx_free(init);
    ngpt_tensor_free(&own_uncond);
    nx_backend_trim(d->ctx->be);  /* the steps' and the VAE's activations, kept for reuse until here */
    return s;
}
