/* llama_tokenizer.h — the LLaMA tokenizer as NExT-GPT runs it: transformers 4.29's slow
 * LlamaTokenizer (use_fast=False) over a SentencePiece BPE model, plus the added tokens of
 * added_tokens.json (NExT-GPT's 38 signal tokens <Img>, </Img>, [IMG0..3], [VID0..23], [AUD0..7]).
 *
 * Encode (tokenize + convert_tokens_to_ids + build_inputs_with_special_tokens):
 *   1. split the text at every no-split token (the special tokens' strings and every added
 *      token; leftmost match, longest at that position);
 *   2. next to an added token the neighbouring text is stripped of (Python) whitespace: the text
 *      on its left rstrip(), on its right lstrip(); special tokens strip nothing;
 *   3. empty text pieces are dropped, each other piece is encoded separately by SentencePiece;
 *   4. with add_special: BOS first (if add_bos_token), EOS last (if add_eos_token).
 * Decode (PreTrainedTokenizer._decode, spaces_between_special_tokens=True, no clean-up):
 *   ids -> tokens (skip_special drops the special tokens' ids); each added token is its own group,
 *   runs of other tokens are turned into text by LlamaTokenizer.convert_tokens_to_string; groups
 *   are joined with " ".
 *
 * A loaded tokenizer is immutable; encode/decode may run concurrently. */
#ifndef NX_LLAMA_TOKENIZER_H
#define NX_LLAMA_TOKENIZER_H

#include "tokenizer/sentencepiece.h"

typedef struct nx_llama_tok nx_llama_tok;

/* Load <dir>/tokenizer.model (required) and, when present, added_tokens.json,
 * special_tokens_map.json and tokenizer_config.json. Errors name the file. */
ngpt_status nx_llama_tok_load(nx_llama_tok **out, const char *dir);
void nx_llama_tok_free(nx_llama_tok *t);

/* Append the ids of `text` (any bytes; invalid UTF-8 as sentencepiece handles it). */
ngpt_status nx_llama_tok_encode(const nx_llama_tok *t, const char *text, size_t len, bool add_special,
                                nx_i32vec *out);
/* Append the text of `ids`; an id outside [0, vocab size) is NGPT_ERR_INVALID_ARGUMENT. */
ngpt_status nx_llama_tok_decode(const nx_llama_tok *t, const int32_t *ids, size_t n, bool skip_special,
                                nx_strbuf *out);

/* SentencePiece pieces + added tokens. */
int32_t nx_llama_tok_vocab_size(const nx_llama_tok *t);
/* The piece (sentencepiece piece or added token), borrowed; NULL when out of range. */
const char *nx_llama_tok_id_to_piece(const nx_llama_tok *t, int32_t id);
/* Exact lookup over added tokens and pieces; -1 when absent. */
int32_t nx_llama_tok_piece_to_id(const nx_llama_tok *t, const char *piece, size_t len);
int32_t nx_llama_tok_bos_id(const nx_llama_tok *t);
int32_t nx_llama_tok_eos_id(const nx_llama_tok *t);
int32_t nx_llama_tok_unk_id(const nx_llama_tok *t);
/* The first added token's id and the number of added tokens (0 when none). */
int32_t nx_llama_tok_n_added(const nx_llama_tok *t);
const nx_sp_model *nx_llama_tok_sp(const nx_llama_tok *t);

#endif
