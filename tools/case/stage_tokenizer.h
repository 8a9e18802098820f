/* stage_tokenizer.h — ngpt-case stages tokenizer.encode and tokenizer.decode. */
#ifndef NGPT_CASE_STAGE_TOKENIZER_H
#define NGPT_CASE_STAGE_TOKENIZER_H

#include "stage.h"

ngpt_status case_tokenizer_encode(const case_ctx *c, case_out *out);
ngpt_status case_tokenizer_decode(const case_ctx *c, case_out *out);

#endif
