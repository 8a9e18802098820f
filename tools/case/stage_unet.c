/* stage_unet.c — one UNet evaluation (2-D, or 3-D for Zeroscope: sample [B, 4, F, h, w]) through the public API: ngpt_decoder_create(the pipeline
 * folder, components = NGPT_DECODER_UNET) + ngpt_decoder_unet. case.json "model" may name the
 * pipeline folder (with model_index.json) or its unet/ subfolder. */
#include "stage_unet.h"
#include "core/alloc.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The pipeline folder for case.json's "model" (caller frees with nx_free). */
static ngpt_status pipeline_dir(const case_ctx *c, char **dir)
{
    *dir = NULL;
    if (!c->model_dir) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: case.json has no \"model\"", c->case_dir);
    size_t n = strlen(c->model_dir);
    char *p = nx_malloc(n + 32);
    if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    snprintf(p, n + 32, "%s/model_index.json", c->model_dir);
    bool pipeline = access(p, R_OK) == 0;
    memcpy(p, c->model_dir, n + 1);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    if (!pipeline) {  /* the unet/ folder itself: its parent is the pipeline */
        char *slash = strrchr(p, '/');
        if (slash && slash != p) *slash = 0;
        else snprintf(p, n + 32, "%s/..", c->model_dir);
    }
    *dir = p;
    return NGPT_OK;
}

/* Borrow input `name` as an ngpt_tensor (NULL-safe: *t zeroed when absent and !required). */
static ngpt_status input(const case_ctx *c, const char *name, bool required, ngpt_tensor *t, bool *present)
{
    memset(t, 0, sizeof *t);
    *present = false;
    const nx_wtensor *w = c->inputs ? nx_weights_find(c->inputs, name) : NULL;
    if (!w) return required ? nx_err(NGPT_ERR_NOT_FOUND, "%s: input '%s' missing", c->case_dir, name) : NGPT_OK;
    t->dtype = w->dtype;
    t->rank = w->rank;
    for (int i = 0; i < w->rank; i++) t->shape[i] = w->shape[i];
    t->data = (void *)w->data;
    *present = true;
    return NGPT_OK;
}

static ngpt_status run(const case_ctx *c, case_out *out, const char *cond_name)
{
    char *dir = NULL;
    NX_TRY(pipeline_dir(c, &dir));
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.components = NGPT_DECODER_UNET;
    p.flags = case_decoder_flags();
    ngpt_decoder *d = NULL;
    ngpt_tensor y = {0}, sample, ts, cond;
    bool has_s, has_t, has_c;
    ngpt_status s = ngpt_decoder_create(&d, c->ctx, dir, &p);
    if (s == NGPT_OK) s = input(c, "sample", true, &sample, &has_s);
    if (s == NGPT_OK) s = input(c, "timestep", true, &ts, &has_t);
    if (s == NGPT_OK) s = input(c, cond_name, true, &cond, &has_c);
    if (s == NGPT_OK) {
        bool audio = !strcmp(cond_name, "class_labels");
        s = ngpt_decoder_unet(d, &y, &sample, &ts, audio ? NULL : &cond, audio ? &cond : NULL);
    }
    if (s == NGPT_OK) s = case_out_add(out, "out", y.dtype, y.rank, y.shape, y.data);
    ngpt_tensor_free(&y);
    ngpt_decoder_free(d);
    nx_free(dir);
    return s;
}

ngpt_status case_unet2d(const case_ctx *c, case_out *out) { return run(c, out, "encoder_hidden_states"); }
ngpt_status case_audioldm_unet(const case_ctx *c, case_out *out) { return run(c, out, "class_labels"); }
ngpt_status case_zeroscope_unet3d(const case_ctx *c, case_out *out) { return run(c, out, "encoder_hidden_states"); }
