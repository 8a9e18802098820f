/* stage_clap.c — see stage_clap.h; through the public decoder API (ngpt_decoder_tokenize_text,
 * ngpt_decoder_encode_text_masked) on an AUDIO decoder that loads only the text encoder and
 * tokenizer. */
#include "stage_clap.h"
#include "core/alloc.h"

#include <string.h>

static ngpt_status open_text(const case_ctx *c, ngpt_decoder **d)
{
    char *dir = NULL;
    ngpt_status s = case_open_decoder(c, d, NGPT_DECODER_AUDIO, NGPT_DECODER_TEXT_ENCODER, &dir);
    nx_free(dir);
    return s;
}

/* params.text and params.max_length (default: the decoder's text_max_length) -> ids, mask [n]. */
static ngpt_status tokenize(const case_ctx *c, ngpt_decoder *d, int32_t **ids, int32_t **mask, int32_t *n)
{
    json_t *t = c->params ? json_object_get(c->params, "text") : NULL;
    if (!json_is_string(t)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: params.text missing", c->case_dir);
    int64_t ml = 0;
    NX_TRY(nx_json_int_opt(c->params, "max_length", "case.json params", ngpt_decoder_text_max_length(d), &ml));
    if (ml < 2 || ml > 1 << 20) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: params.max_length %lld", c->case_dir, (long long)ml);
    *n = (int32_t)ml;
    *ids = nx_malloc((size_t)ml * sizeof **ids);
    *mask = nx_malloc((size_t)ml * sizeof **mask);
    if (!*ids || !*mask) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    int32_t nt = 0;
    NX_TRY(ngpt_decoder_tokenize_text(d, *ids, *n, json_string_value(t), &nt));
    for (int32_t i = 0; i < *n; i++) (*mask)[i] = i < nt;
    return NGPT_OK;
}

ngpt_status case_roberta_tokenize(const case_ctx *c, case_out *out)
{
    ngpt_decoder *d = NULL;
    NX_TRY(open_text(c, &d));
    int32_t *ids = NULL, *mask = NULL, n = 0;
    int64_t *v = NULL;
    ngpt_status s = tokenize(c, d, &ids, &mask, &n);
    if (s == NGPT_OK && !(v = nx_malloc((size_t)n * sizeof *v))) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    int64_t shape[2] = {1, n};
    for (int32_t i = 0; s == NGPT_OK && i < n; i++) v[i] = ids[i];
    if (s == NGPT_OK) s = case_out_add(out, "input_ids", NGPT_DTYPE_I64, 2, shape, v);
    for (int32_t i = 0; s == NGPT_OK && i < n; i++) v[i] = mask[i];
    if (s == NGPT_OK) s = case_out_add(out, "attention_mask", NGPT_DTYPE_I64, 2, shape, v);
    nx_free(v);
    nx_free(ids);
    nx_free(mask);
    ngpt_decoder_free(d);
    return s;
}

ngpt_status case_clap_text_encoder(const case_ctx *c, case_out *out)
{
    ngpt_decoder *d = NULL;
    NX_TRY(open_text(c, &d));
    ngpt_tensor y = {0};
    int32_t *ids = NULL, *mask = NULL;
    ngpt_tensor ti = {.dtype = NGPT_DTYPE_I32}, tm = {.dtype = NGPT_DTYPE_I32};
    ngpt_status s = NGPT_OK;
    bool has_mask = false;
    if (c->inputs) {
        s = case_input_i32(c, "input_ids", &ids, &ti.rank, ti.shape);
        has_mask = s == NGPT_OK && nx_weights_find(c->inputs, "attention_mask") != NULL;
        if (has_mask) s = case_input_i32(c, "attention_mask", &mask, &tm.rank, tm.shape);
    } else {
        int32_t n = 0;
        s = tokenize(c, d, &ids, &mask, &n);
        has_mask = true;
        ti.rank = tm.rank = 2;
        ti.shape[0] = tm.shape[0] = 1;
        ti.shape[1] = tm.shape[1] = n;
    }
    ti.data = ids;
    tm.data = mask;
    if (s == NGPT_OK) s = ngpt_decoder_encode_text_masked(d, &y, &ti, has_mask ? &tm : NULL);
    if (s == NGPT_OK) s = case_out_add(out, "prompt_embeds", y.dtype, y.rank, y.shape, y.data);
    ngpt_tensor_free(&y);
    nx_free(ids);
    nx_free(mask);
    ngpt_decoder_free(d);
    return s;
}
