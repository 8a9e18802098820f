/* stage_media.c — the media preprocessing stages of ngpt-case (see stage_media.h). */
#include "stage_media.h"

#include "core/alloc.h"

#include <string.h>

ngpt_status case_image_preprocess(const case_ctx *c, case_out *out)
{
    char *path = NULL;
    NX_TRY(case_param_path(c, "file", &path));
    ngpt_image *img = NULL;
    ngpt_tensor t = {0};
    ngpt_status st = ngpt_image_load(&img, path);
    if (st == NGPT_OK) st = ngpt_image_preprocess(&t, img);
    if (st == NGPT_OK) st = case_out_add(out, "pixels", t.dtype, t.rank, t.shape, t.data);
    ngpt_tensor_free(&t);
    ngpt_image_free(img);
    nx_free(path);
    return st;
}

ngpt_status case_audio_fbank(const case_ctx *c, case_out *out)
{
    ngpt_audio_preprocess_params p;
    NX_TRY(ngpt_audio_preprocess_params_default(&p, sizeof p));
    const char *rule;
    NX_TRY(nx_json_str_opt(c->params, "clip_rule", "case.json params", "pytorchvideo-0.1.5", &rule));
    if (strcmp(rule, "pytorchvideo-0.1.5") == 0)
        p.clip_rule = NGPT_CLIP_RULE_PYTORCHVIDEO_0_1_5;
    else if (strcmp(rule, "pytorchvideo-fixed") == 0)
        p.clip_rule = NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED;
    else
        return nx_err(NGPT_ERR_BAD_FORMAT, "case.json params: unknown clip_rule '%s'", rule);
    char *path = NULL;
    NX_TRY(case_param_path(c, "file", &path));
    ngpt_audio *a = NULL;
    ngpt_tensor t = {0};
    ngpt_status st = ngpt_audio_load(&a, path);
    if (st == NGPT_OK) st = ngpt_audio_preprocess(&t, a, &p);
    if (st == NGPT_OK) st = case_out_add(out, "fbank", t.dtype, t.rank, t.shape, t.data);
    ngpt_tensor_free(&t);
    ngpt_audio_free(a);
    nx_free(path);
    return st;
}

ngpt_status case_image_postprocess(const case_ctx *c, case_out *out)
{
    float *data = NULL;
    int rank = 0;
    int64_t shape[NGPT_MAX_DIMS];
    NX_TRY(case_input_f32(c, "image", &data, &rank, shape));
    ngpt_tensor in = {.dtype = NGPT_DTYPE_F32, .rank = rank, .data = data};
    for (int i = 0; i < rank && i < NGPT_MAX_DIMS; i++) in.shape[i] = shape[i];
    ngpt_tensor t = {0};
    ngpt_status st = ngpt_image_postprocess(&t, &in);
    if (st == NGPT_OK) st = case_out_add(out, "image_u8", t.dtype, t.rank, t.shape, t.data);
    ngpt_tensor_free(&t);
    nx_free(data);
    return st;
}

ngpt_status case_video_postprocess(const case_ctx *c, case_out *out)
{
    float *data = NULL;
    int rank = 0;
    int64_t shape[NGPT_MAX_DIMS];
    NX_TRY(case_input_f32(c, "video", &data, &rank, shape));
    ngpt_tensor in = {.dtype = NGPT_DTYPE_F32, .rank = rank, .data = data};
    for (int i = 0; i < rank && i < NGPT_MAX_DIMS; i++) in.shape[i] = shape[i];
    ngpt_tensor t = {0};
    ngpt_status st = ngpt_video_postprocess(&t, &in);
    if (st == NGPT_OK) st = case_out_add(out, "frames_u8", t.dtype, t.rank, t.shape, t.data);
    ngpt_tensor_free(&t);
    nx_free(data);
    return st;
}

static ngpt_status clip_rule_param(const case_ctx *c, ngpt_clip_rule *out)
{
    const char *rule;
    NX_TRY(nx_json_str_opt(c->params, "clip_rule", "case.json params", "pytorchvideo-0.1.5", &rule));
    if (strcmp(rule, "pytorchvideo-0.1.5") == 0)
        *out = NGPT_CLIP_RULE_PYTORCHVIDEO_0_1_5;
    else if (strcmp(rule, "pytorchvideo-fixed") == 0)
        *out = NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED;
    else
        return nx_err(NGPT_ERR_BAD_FORMAT, "case.json params: unknown clip_rule '%s'", rule);
    return NGPT_OK;
}

ngpt_status case_video_preprocess(const case_ctx *c, case_out *out)
{
    ngpt_video_preprocess_params p;
    NX_TRY(ngpt_video_preprocess_params_default(&p, sizeof p));
    NX_TRY(clip_rule_param(c, &p.clip_rule));
    char *path = NULL;
    NX_TRY(case_param_path(c, "file", &path));
    ngpt_tensor t = {0};
    ngpt_status st = ngpt_video_preprocess(&t, path, &p);
    if (st == NGPT_OK) st = case_out_add(out, "pixels", t.dtype, t.rank, t.shape, t.data);
    ngpt_tensor_free(&t);
    nx_free(path);
    return st;
}
