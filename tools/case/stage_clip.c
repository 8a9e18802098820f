/* stage_clip.c — see stage_clip.h; through the public decoder API (ngpt_decoder_tokenize_text,
 * ngpt_decoder_encode_text, ngpt_decoder_encode_text_ids) on a decoder that loads only the text
 * encoder and tokenizer. */
#include "stage_clip.h"
#include "core/alloc.h"

#include <string.h>

static ngpt_status open_text(const case_ctx *c, ngpt_decoder **d)
{
    char *dir = NULL;
    ngpt_status s = case_open_decoder(c, d, NGPT_DECODER_IMAGE, NGPT_DECODER_TEXT_ENCODER, &dir);
    nx_free(dir);
    return s;
}

static ngpt_status param_text(const case_ctx *c, const char **text)
{
    json_t *t = c->params ? json_object_get(c->params, "text") : NULL;
    if (!json_is_string(t)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: params.text missing", c->case_dir);
    *text = json_string_value(t);
    return NGPT_OK;
}

ngpt_status case_clip_tokenize(const case_ctx *c, case_out *out)
{
    const char *text = NULL;
    NX_TRY(param_text(c, &text));
    ngpt_decoder *d = NULL;
    NX_TRY(open_text(c, &d));
    int32_t n = ngpt_decoder_text_max_length(d);
    int32_t *ids = nx_malloc((size_t)n * sizeof *ids);
    int64_t *ids64 = nx_malloc((size_t)n * sizeof *ids64);
    ngpt_status s = ids && ids64 ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    if (s == NGPT_OK) s = ngpt_decoder_tokenize_text(d, ids, n, text, NULL);
    if (s == NGPT_OK) {
        for (int32_t i = 0; i < n; i++) ids64[i] = ids[i];
        int64_t shape[2] = {1, n};
        s = case_out_add(out, "input_ids", NGPT_DTYPE_I64, 2, shape, ids64);
    }
    nx_free(ids);
    nx_free(ids64);
    ngpt_decoder_free(d);
    return s;
}

ngpt_status case_clip_text_encoder(const case_ctx *c, case_out *out)
{
    ngpt_decoder *d = NULL;
    NX_TRY(open_text(c, &d));
    ngpt_tensor y = {0};
    ngpt_status s = NGPT_OK;
    if (c->inputs) {
        int32_t *ids = NULL;
        int rank = 0;
        int64_t shape[NGPT_MAX_DIMS];
        s = case_input_i32(c, "input_ids", &ids, &rank, shape);
        if (s == NGPT_OK) {
            ngpt_tensor t = {.dtype = NGPT_DTYPE_I32, .rank = rank, .data = ids};
            memcpy(t.shape, shape, sizeof shape);
            s = ngpt_decoder_encode_text_ids(d, &y, &t);
        }
        nx_free(ids);
    } else {
        const char *text = NULL;
        s = param_text(c, &text);
        if (s == NGPT_OK) s = ngpt_decoder_encode_text(d, &y, text);
    }
    if (s == NGPT_OK) s = case_out_add(out, "last_hidden_state", y.dtype, y.rank, y.shape, y.data);
    ngpt_tensor_free(&y);
    ngpt_decoder_free(d);
    return s;
}
