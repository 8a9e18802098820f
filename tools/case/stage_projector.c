/* stage_projector.c — the projector stages through the public API: the model is a projector
 * folder or a NExT-GPT delta (folder or file); params "modality" (projector.output) and the
 * optional "nhead" (an ngpt_projector_params override). */
#include "stage_projector.h"

#include "core/alloc.h"

#include <string.h>

static ngpt_status create(const case_ctx *c, uint32_t modalities, ngpt_projector **pj)
{
    if (!c->model_dir) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: case.json has no \"model\"", c->case_dir);
    ngpt_projector_params p;
    NX_TRY(ngpt_projector_params_default(&p, sizeof p));
    p.modalities = modalities;
    int64_t nhead = 0;
    NX_TRY(nx_json_int_opt(c->params, "nhead", "case.json params", 0, &nhead));
    p.nhead = (int32_t)nhead;
    return ngpt_projector_create(pj, c->ctx, c->model_dir, &p);
}

/* Input `name` as a caller-owned ngpt_tensor over host F32 data (freed with nx_free). */
static ngpt_status input(const case_ctx *c, const char *name, ngpt_tensor *t)
{
    float *data = NULL;
    int rank = 0;
    int64_t shape[NGPT_MAX_DIMS];
    NX_TRY(case_input_f32(c, name, &data, &rank, shape));
    memset(t, 0, sizeof *t);
    t->dtype = NGPT_DTYPE_F32;
    t->rank = rank;
    t->data = data;
    for (int i = 0; i < rank && i < NGPT_MAX_DIMS; i++) t->shape[i] = shape[i];
    return NGPT_OK;
}

ngpt_status case_projector_input(const case_ctx *c, case_out *out)
{
    ngpt_projector *pj = NULL;
    NX_TRY(create(c, NGPT_PROJECTOR_INPUT, &pj));
    ngpt_tensor f = {0}, y = {0};
    ngpt_status st = input(c, "feature", &f);
    if (st == NGPT_OK) st = ngpt_projector_input(pj, &y, &f);
    if (st == NGPT_OK) st = case_out_add(out, "embeds", y.dtype, y.rank, y.shape, y.data);
    ngpt_tensor_free(&y);
    nx_free(f.data);
    ngpt_projector_free(pj);
    return st;
}

ngpt_status case_projector_output(const case_ctx *c, case_out *out)
{
    const char *m = NULL;
    NX_TRY(nx_json_str(c->params, "modality", "case.json params", &m));
    ngpt_modality mod;
    if (strcmp(m, "image") == 0) mod = NGPT_MODALITY_IMAGE;
    else if (strcmp(m, "audio") == 0) mod = NGPT_MODALITY_AUDIO;
    else if (strcmp(m, "video") == 0) mod = NGPT_MODALITY_VIDEO;
    else return nx_err(NGPT_ERR_BAD_FORMAT, "case.json params: unknown modality '%s'", m);
    ngpt_projector *pj = NULL;
    NX_TRY(create(c, 1u << mod, &pj));
    ngpt_tensor h = {0}, e = {0}, y = {0};
    ngpt_status st = input(c, "hidden", &h);
    if (st == NGPT_OK) st = input(c, "input_embs", &e);
    if (st == NGPT_OK) st = ngpt_projector_output(pj, &y, mod, &h, &e);
    if (st == NGPT_OK) st = case_out_add(out, "conditioning", y.dtype, y.rank, y.shape, y.data);
    ngpt_tensor_free(&y);
    nx_free(h.data);
    nx_free(e.data);
    ngpt_projector_free(pj);
    return st;
}
