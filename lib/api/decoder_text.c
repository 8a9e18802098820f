/* decoder_text.c — the decoder's text encoder and tokenizer (text_encoder/, tokenizer/): prompt
 * -> ids -> embedding, as the diffusers pipelines' _encode_prompt computes it, and the cached
 * embedding of "" that ngpt_decoder_generate uses as the unconditional input.
 *   IMAGE, VIDEO: CLIPTokenizer + CLIPTextModel -> last_hidden_state [B, S, hidden]
 *   AUDIO:        RobertaTokenizer + ClapTextModelWithProjection -> F.normalize(text_embeds)
 *                 [B, projection_dim] (AudioLDMPipeline._encode_prompt, with the attention mask) */
#include "bridge.h"
#include "context.h"
#include "decoder.h"

#include "../core/alloc.h"
#include "../core/l2norm.h"

#include <string.h>

static ngpt_status need_text(const ngpt_decoder *d, const char *fn)
{
    if (!d) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: decoder is NULL", fn);
    if (d->text_released)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: the text encoder was released at create "
                      "(NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER); only the embedding of \"\" for %d tokens is kept",
                      d->dir, (int)d->text_max_len);
    if ((!d->text_encoder && !d->clap) || !d->tokenizer)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no text encoder loaded (text_encoder/ and tokenizer/)", d->dir);
    return NGPT_OK;
}

/* The longest id sequence the text encoder takes. */
static int32_t max_tokens(const ngpt_decoder *d)
{
    return d->clap ? nx_clap_text_max_tokens(d->clap) : nx_clip_text_max_positions(d->text_encoder);
}

NGPT_API int32_t ngpt_decoder_text_max_length(const ngpt_decoder *d)
{
    if (d && d->text_released) return d->text_max_len;
    if (!d || (!d->text_encoder && !d->clap) || !d->tokenizer) return 0;
    int32_t ml = nx_clip_bpe_model_max_length(d->tokenizer), mp = max_tokens(d);
    return ml > 0 && ml < mp ? ml : mp;
}

NGPT_API int32_t ngpt_decoder_text_hidden_size(const ngpt_decoder *d)
{
    if (!d) return 0;
    if (d->text_released) return d->text_hidden;
    if (d->clap) return nx_clap_text_projection_dim(d->clap);
    return d->text_encoder ? nx_clip_text_hidden(d->text_encoder) : 0;
}

NGPT_API ngpt_status ngpt_decoder_tokenize_text(ngpt_decoder *d, int32_t *ids, int32_t n_ids, const char *prompt,
                                                int32_t *n_tokens)
{
    NX_TRY(need_text(d, "ngpt_decoder_tokenize_text"));
    if (!ids || !prompt) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_tokenize_text: ids or prompt is NULL");
    int32_t mp = max_tokens(d);
    if (n_ids < 2 || n_ids > mp)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_tokenize_text: n_ids %d outside 2..%d (what the text "
                      "encoder's position table allows)", (int)n_ids, (int)mp);
    return nx_clip_bpe_tokenize(d->tokenizer, prompt, ids, n_ids, n_tokens);
}

/* host ids [B * S] (+ mask [B * S] or NULL, AUDIO only) -> *out F32 (library-owned):
 * CLIP [B, S, hidden]; CLAP [B, projection_dim], L2-normalised. */
static ngpt_status encode_ids(ngpt_decoder *d, ngpt_tensor *out, const int32_t *ids, const int32_t *mask, int64_t B,
                              int64_t S)
{
    NX_HOLD_DEVICE(d->ctx);
    int32_t V = d->clap ? nx_clap_text_vocab_size(d->clap) : nx_clip_text_vocab_size(d->text_encoder);
    for (int64_t i = 0; i < B * S; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: input_ids[%lld] = %d is outside the vocabulary [0, %d)", d->dir,
                          (long long)i, (int)ids[i], (int)V);
    nx_tensor y = {0};
    ngpt_status s;
    if (d->clap) {
        int64_t shape[2] = {B, nx_clap_text_projection_dim(d->clap)};
        s = nx_tensor_alloc(&y, d->ctx->be, NGPT_DTYPE_F32, 2, shape);
        if (s == NGPT_OK) s = nx_clap_text_forward(d->clap, &y, ids, mask, B, S);
        if (s == NGPT_OK) s = nx_api_download(out, &y, NGPT_DTYPE_F32);
        if (s == NGPT_OK) nx_l2_normalize_rows(out->data, B, shape[1]);
    } else {
        int64_t shape[3] = {B, S, nx_clip_text_hidden(d->text_encoder)};
        s = nx_tensor_alloc(&y, d->ctx->be, nx_clip_text_dtype(d->text_encoder), 3, shape);
        if (s == NGPT_OK) s = nx_clip_text_forward(d->text_encoder, &y, ids, B, S);
        if (s == NGPT_OK) s = nx_api_download(out, &y, NGPT_DTYPE_F32);
    }
    nx_tensor_free(&y);
    return s;
}

/* An I32/I64 [B, S] host tensor -> int32 copy (values clamped into int32; range-checked later). */
static ngpt_status read_ids(const ngpt_tensor *t, const char *what, int32_t **out)
{
    int64_t n = t->shape[0] * t->shape[1];
    int32_t *v = nx_malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    for (int64_t i = 0; i < n; i++) {
        int64_t x = t->dtype == NGPT_DTYPE_I32 ? ((const int32_t *)t->data)[i] : ((const int64_t *)t->data)[i];
        v[i] = x < INT32_MIN ? INT32_MIN : x > INT32_MAX ? INT32_MAX : (int32_t)x;
    }
    *out = v;
    return NGPT_OK;
}

/* ngpt_decoder_encode_text_masked and _ids; fn names the call in messages. */
static ngpt_status encode_id_tensor(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *input_ids,
                                    const ngpt_tensor *attention_mask, const char *fn)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    NX_TRY(need_text(d, fn));
    NX_TRY(nx_api_check_tensor(input_ids, "input_ids", 2));
    if (input_ids->dtype != NGPT_DTYPE_I32 && input_ids->dtype != NGPT_DTYPE_I64)
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "%s: input_ids must be I32 or I64, got %s", fn,
                      ngpt_dtype_name(input_ids->dtype));
    int64_t B = input_ids->shape[0], S = input_ids->shape[1];
    int32_t mp = max_tokens(d);
    if (B < 1 || S < 1 || S > mp)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: input_ids [%lld, %lld]: need B >= 1 and "
                      "1 <= S <= %d", fn, (long long)B, (long long)S, (int)mp);
    if (attention_mask) {
        if (!d->clap)
            return nx_err(NGPT_ERR_UNSUPPORTED, "%s: the CLIP text encoder takes no attention mask (the pipelines pass "
                          "none)", d->dir);
        NX_TRY(nx_api_check_tensor(attention_mask, "attention_mask", 2));
        if (attention_mask->dtype != NGPT_DTYPE_I32 && attention_mask->dtype != NGPT_DTYPE_I64)
            return nx_err(NGPT_ERR_DTYPE_MISMATCH, "%s: attention_mask must be I32 or I64, got %s", fn,
                          ngpt_dtype_name(attention_mask->dtype));
        if (attention_mask->shape[0] != B || attention_mask->shape[1] != S)
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: attention_mask [%lld, %lld] differs from "
                          "input_ids [%lld, %lld]", fn, (long long)attention_mask->shape[0],
                          (long long)attention_mask->shape[1], (long long)B, (long long)S);
    }
    int32_t *ids = NULL, *mask = NULL;
    ngpt_status s = read_ids(input_ids, fn, &ids);
    if (s == NGPT_OK && attention_mask) s = read_ids(attention_mask, fn, &mask);
    for (int64_t i = 0; s == NGPT_OK && mask && i < B * S; i++)
        if (mask[i] != 0 && mask[i] != 1)
            s = nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: attention_mask[%lld] = %d (0 or 1)", fn,
                       (long long)i, (int)mask[i]);
    if (s == NGPT_OK) s = encode_ids(d, out, ids, mask, B, S);
    nx_free(ids);
    nx_free(mask);
    return s;
}

NGPT_API ngpt_status ngpt_decoder_encode_text_masked(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *input_ids,
                                                     const ngpt_tensor *attention_mask)
{
    return encode_id_tensor(d, out, input_ids, attention_mask, "ngpt_decoder_encode_text_masked");
}

NGPT_API ngpt_status ngpt_decoder_encode_text_ids(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *input_ids)
{
    return encode_id_tensor(d, out, input_ids, NULL, "ngpt_decoder_encode_text_ids");
}

NGPT_API ngpt_status ngpt_decoder_encode_text(ngpt_decoder *d, ngpt_tensor *out, const char *prompt)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_encode_text: out is NULL");
    memset(out, 0, sizeof *out);
    NX_TRY(need_text(d, "ngpt_decoder_encode_text"));
    if (!prompt) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_encode_text: prompt is NULL");
    int32_t S = ngpt_decoder_text_max_length(d), n = 0;
    int32_t *ids = nx_malloc((size_t)S * sizeof *ids), *mask = nx_malloc((size_t)S * sizeof *mask);
    ngpt_status s = ids && mask ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_encode_text: out of memory");
    if (s == NGPT_OK) s = nx_clip_bpe_tokenize(d->tokenizer, prompt, ids, S, &n);
    for (int32_t i = 0; s == NGPT_OK && i < S; i++) mask[i] = i < n;  /* the tokenizer's attention_mask */
    if (s == NGPT_OK) s = encode_ids(d, out, ids, d->clap ? mask : NULL, 1, S);
    nx_free(ids);
    nx_free(mask);
    return s;
}

ngpt_status nx_decoder_uncond(ngpt_decoder *d, int64_t S, const float **emb)
{
    *emb = NULL;
    if (d && d->kind == NGPT_DECODER_AUDIO) S = 1;  /* one [1, P] embedding whatever the padding (see decoder.h) */
    if (d && d->uncond && d->uncond_len == S) {
        *emb = d->uncond;
        return NGPT_OK;
    }
    NX_TRY(need_text(d, "ngpt_decoder_generate"));
    int32_t mp = max_tokens(d);
    if (!d->clap && (S < 2 || S > mp))
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: cond has %lld tokens; the unconditional embedding can be computed "
                      "for 2..%d (the text encoder's max_position_embeddings)", d->dir, (long long)S, (int)mp);
    int32_t n_ids = d->clap ? 2 : (int32_t)S, n = 0;
    int32_t *ids = nx_malloc((size_t)n_ids * sizeof *ids);
    if (!ids) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_generate: out of memory");
    ngpt_tensor t = {0};
    /* CLAP: "" is <s> </s>; the pipeline's padding to prompt_embeds.shape[1] tokens sits under
     * the attention mask, so the unpadded pair gives the same first-token output. */
    ngpt_status s = nx_clip_bpe_tokenize(d->tokenizer, "", ids, n_ids, &n);
    if (s == NGPT_OK) s = encode_ids(d, &t, ids, NULL, 1, d->clap ? n : S);
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

ngpt_status nx_decoder_release_text(ngpt_decoder *d)
{
    if ((!d->text_encoder && !d->clap) || !d->tokenizer) return NGPT_OK;
    const int32_t S = ngpt_decoder_text_max_length(d), hidden = ngpt_decoder_text_hidden_size(d);
    const float *e = NULL;
    NX_TRY(nx_decoder_uncond(d, S, &e));
    nx_clip_text_free(d->text_encoder);
    nx_clap_text_free(d->clap);
    nx_clip_bpe_free(d->tokenizer);
    d->text_encoder = NULL;
    d->clap = NULL;
    d->tokenizer = NULL;
    d->text_released = true;
    d->text_max_len = S;
    d->text_hidden = hidden;
    return NGPT_OK;
}
