/* release_text.h — the check of NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER shared by test_clip and
 * test_clap: on decoder folder `dir`, unknown flag bits are refused; with the flag the embedding
 * of "" is kept (text_hidden_size / text_max_length as the encoder reported them), the text
 * calls say the encoder was released, and generate with uncond NULL equals generate with the
 * kept embedding passed in (bit for bit). `empty` has uncond's shape and is overwritten. */
#ifndef NX_TEST_RELEASE_TEXT_H
#define NX_TEST_RELEASE_TEXT_H

#include "test.h"
#include "api/decoder.h"

#include <string.h>

static inline void test_release_text_encoder(ngpt_context *ctx, const char *dir, int32_t hidden, int32_t max_len,
                                             const ngpt_tensor *cond, ngpt_tensor *empty, const ngpt_decode_params *p)
{
    ngpt_decoder_params dp;
    ngpt_decoder_params_default(&dp, sizeof dp);
    dp.flags = NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER | 0x80u;
    ngpt_decoder *r = NULL;
    CHECK_ERR(ngpt_decoder_create(&r, ctx, dir, &dp), NGPT_ERR_INVALID_ARGUMENT, "flag bits");
    dp.flags = NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER;
    CHECK_OK(ngpt_decoder_create(&r, ctx, dir, &dp));
    if (!r) return;
    CHECK(ngpt_decoder_text_hidden_size(r) == hidden && ngpt_decoder_text_max_length(r) == max_len);
    CHECK(r->text_released && !r->tokenizer && r->uncond);
    ngpt_tensor t = {0}, x = {0}, y = {0};
    CHECK_ERR(ngpt_decoder_encode_text(r, &t, "a cat"), NGPT_ERR_UNSUPPORTED, "released");
    if (r->uncond) memcpy(empty->data, r->uncond, ngpt_tensor_nbytes(empty));
    CHECK_OK(ngpt_decoder_generate(r, &x, NULL, cond, NULL, p));
    CHECK_OK(ngpt_decoder_generate(r, &y, NULL, cond, empty, p));
    CHECK(x.data && y.data && ngpt_tensor_nbytes(&x) == ngpt_tensor_nbytes(&y) &&
          memcmp(x.data, y.data, ngpt_tensor_nbytes(&x)) == 0);
    ngpt_tensor_free(&x);
    ngpt_tensor_free(&y);
    ngpt_decoder_free(r);
}

#endif
