/* stage_encoder.c — the ImageBind encoder stages of ngpt-case (see stage_encoder.h). */
#include "stage_encoder.h"

#include "core/alloc.h"

/* Load the case's model with `modalities`, read input `name`, run `fn`, add "embedding". */
static ngpt_status run(const case_ctx *c, case_out *out, uint32_t modalities, const char *name,
                       ngpt_status (*fn)(ngpt_encoder *, ngpt_tensor *, const ngpt_tensor *))
{
    if (!c->model_dir) return nx_err(NGPT_ERR_BAD_FORMAT, "case.json: no \"model\"");
    float *data = NULL;
    int rank = 0;
    int64_t shape[NGPT_MAX_DIMS];
    NX_TRY(case_input_f32(c, name, &data, &rank, shape));
    ngpt_tensor in = {.dtype = NGPT_DTYPE_F32, .rank = rank, .data = data};
    for (int i = 0; i < rank && i < NGPT_MAX_DIMS; i++) in.shape[i] = shape[i];
    ngpt_encoder_params p;
    ngpt_encoder *enc = NULL;
    ngpt_tensor emb = {0};
    ngpt_status st = ngpt_encoder_params_default(&p, sizeof p);
    p.modalities = modalities;
    if (st == NGPT_OK) st = ngpt_encoder_create(&enc, c->ctx, c->model_dir, &p);
    if (st == NGPT_OK) st = fn(enc, &emb, &in);
    if (st == NGPT_OK) st = case_out_add(out, "embedding", emb.dtype, emb.rank, emb.shape, emb.data);
    ngpt_tensor_free(&emb);
    ngpt_encoder_free(enc);
    nx_free(data);
    return st;
}

ngpt_status case_imagebind_vision(const case_ctx *c, case_out *out)
{
    return run(c, out, NGPT_ENCODER_IMAGE, "pixels", ngpt_encoder_encode_pixels);
}

ngpt_status case_imagebind_audio(const case_ctx *c, case_out *out)
{
    return run(c, out, NGPT_ENCODER_AUDIO, "fbank", ngpt_encoder_encode_fbank);
}

ngpt_status case_imagebind_video(const case_ctx *c, case_out *out)
{
    return run(c, out, NGPT_ENCODER_VIDEO, "pixels", ngpt_encoder_encode_pixels);
}
