/* tokenizer.c — the public ngpt_tokenizer handle over lib/tokenizer (nx_llama_tok). */
#include "nextgpt.h"

#include "core/alloc.h"
#include "core/error.h"
#include "tokenizer/llama_tokenizer.h"

#include <string.h>

struct ngpt_tokenizer {
    nx_llama_tok *impl;
};

NGPT_API ngpt_status ngpt_tokenizer_create(ngpt_tokenizer **out, const char *model_dir)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_tokenizer_create: out is NULL");
    *out = NULL;
    if (!model_dir) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_tokenizer_create: model_dir is NULL");
    ngpt_tokenizer *t = nx_calloc(1, sizeof *t);
    if (!t) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_tokenizer_create: out of memory");
    ngpt_status s = nx_llama_tok_load(&t->impl, model_dir);
    if (s != NGPT_OK) {
        nx_free(t);
        return s;
    }
    *out = t;
    return NGPT_OK;
}

NGPT_API void ngpt_tokenizer_free(ngpt_tokenizer *tok)
{
    if (!tok) return;
    nx_llama_tok_free(tok->impl);
    nx_free(tok);
}

NGPT_API ngpt_status ngpt_tokenizer_encode(const ngpt_tokenizer *tok, const char *text, size_t text_len,
                                           int32_t add_bos, int32_t *ids, size_t cap, size_t *n_out)
{
    if (!tok || !n_out || (!text && text_len))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_tokenizer_encode: NULL argument");
    nx_i32vec v = {0};
    ngpt_status s = nx_llama_tok_encode(tok->impl, text, text_len, add_bos != 0, &v);
    if (s == NGPT_OK) {
        *n_out = v.n;
        if (!ids || cap < v.n)
            s = nx_err(NGPT_ERR_BUFFER_TOO_SMALL, "ngpt_tokenizer_encode: %zu ids, room for %zu", v.n,
                       ids ? cap : 0);
        else if (v.n)
            memcpy(ids, v.v, v.n * sizeof *ids);
    }
    nx_free(v.v);
    return s;
}

NGPT_API ngpt_status ngpt_tokenizer_decode(const ngpt_tokenizer *tok, const int32_t *ids, size_t n,
                                           int32_t skip_special_tokens, char *text, size_t cap, size_t *len_out)
{
    if (!tok || !len_out || (!ids && n))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_tokenizer_decode: NULL argument");
    nx_strbuf b = {0};
    ngpt_status s = nx_llama_tok_decode(tok->impl, ids, n, skip_special_tokens != 0, &b);
    if (s == NGPT_OK) {
        *len_out = b.n;
        if (!text || cap < b.n) {
            s = nx_err(NGPT_ERR_BUFFER_TOO_SMALL, "ngpt_tokenizer_decode: %zu bytes of text, room for %zu", b.n,
                       text ? cap : 0);
        } else {
            if (b.n) memcpy(text, b.s, b.n);
            if (cap > b.n) text[b.n] = '\0';
        }
    }
    nx_free(b.s);
    return s;
}

NGPT_API int32_t ngpt_tokenizer_vocab_size(const ngpt_tokenizer *tok)
{
    return tok ? nx_llama_tok_vocab_size(tok->impl) : 0;
}

NGPT_API const char *ngpt_tokenizer_token_to_piece(const ngpt_tokenizer *tok, int32_t id)
{
    return tok ? nx_llama_tok_id_to_piece(tok->impl, id) : NULL;
}

NGPT_API int32_t ngpt_tokenizer_piece_to_id(const ngpt_tokenizer *tok, const char *piece)
{
    return (tok && piece) ? nx_llama_tok_piece_to_id(tok->impl, piece, strlen(piece)) : -1;
}

NGPT_API int32_t ngpt_tokenizer_bos_id(const ngpt_tokenizer *tok) { return tok ? nx_llama_tok_bos_id(tok->impl) : -1; }
NGPT_API int32_t ngpt_tokenizer_eos_id(const ngpt_tokenizer *tok) { return tok ? nx_llama_tok_eos_id(tok->impl) : -1; }

const nx_llama_tok *nx_tokenizer_impl(const ngpt_tokenizer *t);
const nx_llama_tok *nx_tokenizer_impl(const ngpt_tokenizer *t) { return t ? t->impl : NULL; }
