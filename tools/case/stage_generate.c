/* stage_generate.c — the whole decoder pipelines through ngpt_decoder_generate: the case gives
 * the initial latents, prompt_embeds and negative_prompt_embeds, and the pipeline parameters
 * (num_inference_steps, guidance_scale, scheduler, size / length / frames, eta). A parameter the
 * case leaves out takes the default of the pipeline's __call__, not the API's (which are
 * NExT-GPT's call sites'): custom_sd 50 steps, guidance 7.5; custom_vd 50, 9.0, 16 frames;
 * custom_ad 10, 2.5; sizes and the audio length from the UNet's sample_size x the VAE's scale
 * (x the vocoder's hop).
 *
 * Inputs: latents (F32 or F16, read as F32; the initial noise), prompt_embeds,
 * negative_prompt_embeds (optional: without it the decoder computes it, or guidance <= 1 needs
 * none), and, for image-to-image / video-to-video / audio-to-audio, init_latents (the latents'
 * shape): with it the case sets p.init_latents and p.strength from param "strength" (a JSON
 * number, read as the double the API takes; default 0.8, diffusers' img2img default), and
 * `latents` is the noise add_noise mixes in (diffusers' randn_tensor draw) instead of the start
 * scaled by init_noise_sigma. Without init_latents a "strength" param is an error (it would do
 * nothing). */
#include "stage_generate.h"
#include "stage_safety.h"

#include "api/decoder.h"
#include "core/alloc.h"

#include <math.h>
#include <string.h>

static ngpt_status num(const case_ctx *c, const char *key, double def, double *v)
{
    return nx_json_num_opt(c->params, key, "case.json params", def, v);
}

/* A case input as a caller-owned F32 ngpt_tensor view (data from case_input_f32, nx_free'd by
 * the caller). */
static ngpt_status input(const case_ctx *c, const char *name, ngpt_tensor *t)
{
    memset(t, 0, sizeof *t);
    int rank = 0;
    float *data = NULL;
    NX_TRY(case_input_f32(c, name, &data, &rank, t->shape));
    t->dtype = NGPT_DTYPE_F32;
    t->rank = rank;
    t->data = data;
    return NGPT_OK;
}

static ngpt_status run(const case_ctx *c, case_out *out, ngpt_decoder_kind kind, const char *out_name)
{
    ngpt_decoder *d = NULL;
    char *dir = NULL;
    ngpt_tensor lat = {0}, init = {0}, cond = {0}, uncond = {0}, res = {0}, aux = {0};
    ngpt_decode_params p;
    ngpt_decode_params_default(&p, sizeof p);
    const bool video = kind == NGPT_DECODER_VIDEO, audio = kind == NGPT_DECODER_AUDIO;
    bool safety = false;  /* custom_sd with its safety checker (NExT-GPT's SD 1.5 folder has one) */
    ngpt_status s = nx_json_bool_opt(c->params, "safety_checker", "case.json params", false, &safety);
    if (s == NGPT_OK)
        s = case_open_decoder_flags(c, &d, kind, 0, safety ? NGPT_DECODER_FLAG_SAFETY_CHECKER : 0, &dir);
    double sample = 0, secs = 0;  /* the pipelines' default latent size in pixels, audio length */
    if (s == NGPT_OK && d->vae) {
        sample = (double)(d->sample_size * nx_vae_scale(d->vae));
        if (audio && d->vocoder)
            secs = sample * nx_hifigan_hop_s(d->vocoder);
    }
    double steps, g, h, w, frames, eta, strength;
    const char *sched = NULL;
    if (s == NGPT_OK) s = num(c, "num_inference_steps", audio ? 10 : 50, &steps);
    if (s == NGPT_OK) s = num(c, "guidance_scale", audio ? 2.5 : video ? 9.0 : 7.5, &g);
    if (s == NGPT_OK) s = num(c, "height", sample, &h);
    if (s == NGPT_OK) s = num(c, "width", sample, &w);
    if (s == NGPT_OK) s = num(c, "num_frames", 16, &frames);
    if (s == NGPT_OK) s = num(c, "audio_length_in_s", secs, &secs);
    if (s == NGPT_OK) s = num(c, "eta", 0, &eta);
    if (s == NGPT_OK) s = num(c, "strength", 0.8, &strength);
    const bool img2img = s == NGPT_OK && c->inputs && nx_weights_find(c->inputs, "init_latents");
    if (s == NGPT_OK && !img2img && c->params && json_object_get(c->params, "strength"))
        s = nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: param strength without an init_latents input", c->case_dir);
    if (s == NGPT_OK) s = nx_json_str_opt(c->params, "scheduler", "case.json params", "", &sched);
    if (s == NGPT_OK) {
        p.num_inference_steps = (int32_t)steps;
        /* the pipelines guide only when g > 1; 0, which the API reads as "default 7.5", is 1 here */
        p.guidance_scale = g == 0.0 ? 1.0f : (float)g;
        p.height = (int32_t)h;
        p.width = (int32_t)w;
        p.num_frames = (int32_t)frames;
        p.audio_length_s = secs;
        p.eta = (float)eta;
        if (strcmp(sched, "pndm") == 0) p.scheduler = NGPT_SCHEDULER_PNDM;
        else if (strcmp(sched, "ddim") == 0) p.scheduler = NGPT_SCHEDULER_DDIM;
        else if (strcmp(sched, "dpmsolver") == 0) p.scheduler = NGPT_SCHEDULER_DPMSOLVER_MULTISTEP;
        else if (strcmp(sched, "euler") == 0) p.scheduler = NGPT_SCHEDULER_EULER;
        else if (strcmp(sched, "heun") == 0) p.scheduler = NGPT_SCHEDULER_HEUN;
        else if (strcmp(sched, "unipc") == 0) p.scheduler = NGPT_SCHEDULER_UNIPC_MULTISTEP;
        else if (strcmp(sched, "lms") == 0) p.scheduler = NGPT_SCHEDULER_LMS;
        else if (strcmp(sched, "kdpm2") == 0) p.scheduler = NGPT_SCHEDULER_KDPM2;
        else if (strcmp(sched, "deis") == 0) p.scheduler = NGPT_SCHEDULER_DEIS_MULTISTEP;
        else if (strcmp(sched, "ddpm") == 0) p.scheduler = NGPT_SCHEDULER_DDPM;
        else if (strcmp(sched, "dpmsolver_singlestep") == 0) p.scheduler = NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP;
        else if (sched[0]) s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: scheduler '%s'", c->case_dir, sched);
    }
    if (s == NGPT_OK) s = input(c, "latents", &lat);
    if (s == NGPT_OK && img2img) s = input(c, "init_latents", &init);
    if (s == NGPT_OK) s = input(c, "prompt_embeds", &cond);
    if (s == NGPT_OK && c->inputs && nx_weights_find(c->inputs, "negative_prompt_embeds"))
        s = input(c, "negative_prompt_embeds", &uncond);
    if (s == NGPT_OK) {
        p.latents = &lat;
        if (img2img) {
            p.init_latents = &init;
            p.strength = strength;
        }
        s = ngpt_decoder_generate(d, &res, audio || safety ? &aux : NULL, &cond, uncond.data ? &uncond : NULL, &p);
    }
    if (s == NGPT_OK) s = case_out_add(out, out_name, NGPT_DTYPE_F32, res.rank, res.shape, res.data);
    if (s == NGPT_OK && audio) s = case_out_add(out, "mel", NGPT_DTYPE_F32, aux.rank, aux.shape, aux.data);
    if (s == NGPT_OK && safety) s = case_out_flags(out, "has_nsfw_concepts", &aux);
    ngpt_tensor_free(&res);
    ngpt_tensor_free(&aux);
    nx_free(lat.data);
    nx_free(init.data);
    nx_free(cond.data);
    nx_free(uncond.data);
    ngpt_decoder_free(d);
    nx_free(dir);
    return s;
}

ngpt_status case_sd_generate(const case_ctx *c, case_out *out) { return run(c, out, NGPT_DECODER_IMAGE, "image"); }
ngpt_status case_audioldm_generate(const case_ctx *c, case_out *out) { return run(c, out, NGPT_DECODER_AUDIO, "waveform"); }
ngpt_status case_zeroscope_generate(const case_ctx *c, case_out *out) { return run(c, out, NGPT_DECODER_VIDEO, "frames"); }
