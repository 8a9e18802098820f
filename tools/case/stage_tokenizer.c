/* stage_tokenizer.c — ngpt-case stages tokenizer.encode and tokenizer.decode
 * (shared/golden/llm/STAGES.md), through the public ngpt_tokenizer_* API.
 *
 *   tokenizer.encode  params text (string), add_bos (bool)          -> ids I32 [n]
 *   tokenizer.decode  params skip_special_tokens (bool), inputs ids -> text_utf8 U8 [bytes]
 */
#include "stage_tokenizer.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

static ngpt_status param_bool(const case_ctx *c, const char *key, bool def, int32_t *v)
{
    const json_t *j = c->params ? json_object_get(c->params, key) : NULL;
    if (!j) {
        *v = def;
        return NGPT_OK;
    }
    if (!json_is_boolean(j)) return nx_err(NGPT_ERR_BAD_FORMAT, "%s/case.json: params.%s is not a boolean", c->case_dir, key);
    *v = json_is_true(j);
    return NGPT_OK;
}

static ngpt_status open_tokenizer(const case_ctx *c, ngpt_tokenizer **tok)
{
    if (!c->model_dir)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s/case.json: \"model\" (the tokenizer folder) is missing", c->case_dir);
    return ngpt_tokenizer_create(tok, c->model_dir);
}

ngpt_status case_tokenizer_encode(const case_ctx *c, case_out *out)
{
    const json_t *jt = c->params ? json_object_get(c->params, "text") : NULL;
    if (!json_is_string(jt))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s/case.json: params.text is missing or not a string", c->case_dir);
    const char *text = json_string_value(jt);
    size_t text_len = json_string_length(jt);
    int32_t add_bos = 0;
    NX_TRY(param_bool(c, "add_bos", true, &add_bos));
    ngpt_tokenizer *tok = NULL;
    NX_TRY(open_tokenizer(c, &tok));
    size_t n = 0;
    int32_t *ids = NULL;
    ngpt_status s = ngpt_tokenizer_encode(tok, text, text_len, add_bos, NULL, 0, &n);
    if (s == NGPT_ERR_BUFFER_TOO_SMALL || s == NGPT_OK) {
        ids = nx_malloc((n ? n : 1) * sizeof *ids);
        s = ids ? ngpt_tokenizer_encode(tok, text, text_len, add_bos, ids, n, &n)
                : nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer.encode: out of memory");
    }
    if (s == NGPT_OK) {
        int64_t shape[1] = {(int64_t)n};
        s = case_out_add(out, "ids", NGPT_DTYPE_I32, 1, shape, ids);
    }
    nx_free(ids);
    ngpt_tokenizer_free(tok);
    return s;
}

ngpt_status case_tokenizer_decode(const case_ctx *c, case_out *out)
{
    int32_t skip = 0;
    NX_TRY(param_bool(c, "skip_special_tokens", false, &skip));
    int32_t *ids = NULL;
    int rank = 0;
    int64_t shape[NGPT_MAX_DIMS] = {0};
    NX_TRY(case_input_i32(c, "ids", &ids, &rank, shape));
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)shape[i];
    ngpt_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    ngpt_status s = open_tokenizer(c, &tok);
    if (s == NGPT_OK) {
        s = ngpt_tokenizer_decode(tok, ids, n, skip, NULL, 0, &len);
        if (s == NGPT_ERR_BUFFER_TOO_SMALL || s == NGPT_OK) {
            text = nx_malloc(len + 1);
            s = text ? ngpt_tokenizer_decode(tok, ids, n, skip, text, len + 1, &len)
                     : nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer.decode: out of memory");
        }
    }
    if (s == NGPT_OK) {
        int64_t oshape[1] = {(int64_t)len};
        s = case_out_add(out, "text_utf8", NGPT_DTYPE_U8, 1, oshape, text);
    }
    nx_free(text);
    nx_free(ids);
    ngpt_tokenizer_free(tok);
    return s;
}
