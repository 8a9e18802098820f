/* decoder_text.c — the decoder's CLIP text encoder and tokenizer (text_encoder/, tokenizer/):
 * prompt -> ids -> last_hidden_state, as the diffusers pipelines' _encode_prompt computes it,
 * and the cached embedding of "" that ngpt_decoder_generate uses as the unconditional input. */
#include "bridge.h"
#include "context.h"
#include "decoder.h"

#include "../core/alloc.h"

#include <string.h>

static ngpt_status need_text(const ngpt_decoder *d, const char *fn)
{
    if (!d) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: decoder is NULL", fn);
    if (!d->text_encoder || !d->tokenizer)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no text encoder loaded (text_encoder/ and tokenizer/)", d->dir);
    return NGPT_OK;
}

NGPT_API int32_t ngpt_decoder_text_max_length(const ngpt_decoder *d)
{
    if (!d || !d->text_encoder || !d->tokenizer) return 0;
    int32_t ml = nx_clip_bpe_model_max_length(d->tokenizer), mp = nx_clip_text_max_positions(d->text_encoder);
    return ml > 0 && ml < mp ? ml : mp;
}

NGPT_API int32_t ngpt_decoder_text_hidden_size(const ngpt_decoder *d)
{
    return d && d->text_encoder ? nx_clip_text_hidden(d->text_encoder) : 0;
}

NGPT_API ngpt_status ngpt_decoder_tokenize_text(ngpt_decoder *d, int32_t *ids, int32_t n_ids, const char *prompt,
                                                int32_t *n_tokens)
{
    NX_TRY(need_text(d, "ngpt_decoder_tokenize_text"));
    if (!ids || !prompt) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_tokenize_text: ids or prompt is NULL");
    int32_t mp = nx_clip_text_max_positions(d->text_encoder);
    if (n_ids < 2 || n_ids > mp)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_tokenize_text: n_ids %d outside 2..%d (the text encoder's "
                      "max_position_embeddings)", (int)n_ids, (int)mp);
    return nx_clip_bpe_tokenize(d->tokenizer, prompt, ids, n_ids, n_tokens);
}

/* host ids [B * S] -> *out F32 [B, S, hidden] (library-owned). */
static ngpt_status encode_ids(ngpt_decoder *d, ngpt_tensor *out, const int32_t *ids, int64_t B, int64_t S)
{
    int32_t V = nx_clip_text_vocab_size(d->text_encoder);
    for (int64_t i = 0; i < B * S; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: input_ids[%lld] = %d is outside the vocabulary [0, %d)", d->dir,
                          (long long)i, (int)ids[i], (int)V);
    nx_tensor y = {0};
    int64_t shape[3] = {B, S, nx_clip_text_hidden(d->text_encoder)};
    ngpt_status s = nx_tensor_alloc(&y, d->ctx->be, nx_clip_text_dtype(d->text_encoder), 3, shape);
    if (s == NGPT_OK) s = nx_clip_text_forward(d->text_encoder, &y, ids, B, S);
    if (s == NGPT_OK) s = nx_api_download(out, &y, NGPT_DTYPE_F32);
    nx_tensor_free(&y);
    return s;
}

NGPT_API ngpt_status ngpt_decoder_encode_text_ids(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *input_ids)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_encode_text_ids: out is NULL");
    memset(out, 0, sizeof *out);
    NX_TRY(need_text(d, "ngpt_decoder_encode_text_ids"));
    NX_TRY(nx_api_check_tensor(input_ids, "input_ids", 2));
    if (input_ids->dtype != NGPT_DTYPE_I32 && input_ids->dtype != NGPT_DTYPE_I64)
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "ngpt_decoder_encode_text_ids: input_ids must be I32 or I64, got %s",
                      ngpt_dtype_name(input_ids->dtype));
    int64_t B = input_ids->shape[0], S = input_ids->shape[1];
    int32_t mp = nx_clip_text_max_positions(d->text_encoder);
    if (B < 1 || S < 1 || S > mp)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_decoder_encode_text_ids: input_ids [%lld, %lld]: need B >= 1 and "
                      "1 <= S <= %d", (long long)B, (long long)S, (int)mp);
    int32_t *ids = nx_malloc((size_t)(B * S) * sizeof *ids);
    if (!ids) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_encode_text_ids: out of memory");
    ngpt_status s = NGPT_OK;
    for (int64_t i = 0; i < B * S; i++) {
        int64_t v = input_ids->dtype == NGPT_DTYPE_I32 ? ((const int32_t *)input_ids->data)[i]
                                                        : ((const int64_t *)input_ids->data)[i];
        ids[i] = v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : (int32_t)v;  /* range-checked below */
    }
    s = encode_ids(d, out, ids, B, S);
    nx_free(ids);
    return s;
}

NGPT_API ngpt_status ngpt_decoder_encode_text(ngpt_decoder *d, ngpt_tensor *out, const char *prompt)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_encode_text: out is NULL");
    memset(out, 0, sizeof *out);
    NX_TRY(need_text(d, "ngpt_decoder_encode_text"));
    if (!prompt) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_encode_text: prompt is NULL");
    int32_t S = ngpt_decoder_text_max_length(d);
    int32_t *ids = nx_malloc((size_t)S * sizeof *ids);
    if (!ids) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_encode_text: out of memory");
    ngpt_status s = nx_clip_bpe_tokenize(d->tokenizer, prompt, ids, S, NULL);
    if (s == NGPT_OK) s = encode_ids(d, out, ids, 1, S);
    nx_free(ids);
    return s;
}

ngpt_status nx_decoder_uncond(ngpt_decoder *d, int64_t S, const float **emb)
{
    *emb = NULL;
    NX_TRY(need_text(d, "ngpt_decoder_generate"));
    if (d->uncond && d->uncond_len == S) {
        *emb = d->uncond;
        return NGPT_OK;
    }
    int32_t mp = nx_clip_text_max_positions(d->text_encoder);
    if (S < 2 || S > mp)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: cond has %lld tokens; the unconditional embedding can be computed "
                      "for 2..%d (the text encoder's max_position_embeddings)", d->dir, (long long)S, (int)mp);
    int32_t *ids = nx_malloc((size_t)S * sizeof *ids);
    if (!ids) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_generate: out of memory");
    ngpt_tensor t = {0};
    ngpt_status s = nx_clip_bpe_tokenize(d->tokenizer, "", ids, (int32_t)S, NULL);
    if (s == NGPT_OK) s = encode_ids(d, &t, ids, 1, S);
    nx_free(ids);
    float *host = NULL;
    if (s == NGPT_OK) s = nx_api_read_f32(&t, &host, NULL, "uncond");
    ngpt_tensor_free(&t);
    if (s != NGPT_OK) return s;
    nx_free(d->uncond);
    d->uncond = host;
    d->uncond_len = S;
    *emb = host;
    return NGPT_OK;
}
