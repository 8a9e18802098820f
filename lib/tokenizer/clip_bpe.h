/* clip_bpe.h — CLIP's byte-level BPE tokenizer, as transformers 4.29's slow CLIPTokenizer runs it
 * without ftfy (the diffusers pipelines' tokenizer/ folder: vocab.json, merges.txt,
 * special_tokens_map.json, tokenizer_config.json).
 *
 *   text -> split on the special tokens (bos, eos, unk, pad: PreTrainedTokenizer.tokenize's trie)
 *   -> per other chunk: BasicTokenizer(strip_accents=False, do_split_on_punc=False): drop NUL,
 *      U+FFFD and control/format/unassigned characters (\p{C} but \t \n \r), whitespace -> " ",
 *      spaces around CJK ideographs, NFC, split on whitespace, str.lower() (ICU: full mapping,
 *      final sigma), " ".join
 *   -> the CLIP regex (PCRE2, UTF + UCP + CASELESS)
 *   -> each piece's UTF-8 bytes through bytes_to_unicode -> bpe() with merges.txt's ranks and
 *      "</w>" on the last symbol -> vocab ids (unknown pieces -> unk).
 * Not covered: the ftfy path (ftfy.fix_text + whitespace_clean), added_tokens.json. Unicode
 * tables are PCRE2's and ICU's, Python's may be a version apart.
 */
#ifndef NX_CLIP_BPE_H
#define NX_CLIP_BPE_H

#include "sentencepiece.h"  /* nx_i32vec */

typedef struct nx_clip_bpe nx_clip_bpe;

/* Which byte-level BPE tokenizer the folder holds. */
typedef enum nx_bpe_flavour {
    NX_BPE_CLIP    = 0,  /* CLIPTokenizer, as above */
    NX_BPE_ROBERTA = 1   /* RobertaTokenizer (GPT-2's BPE; AudioLDM's CLAP text branch): no
                          * normalisation, GPT-2's pattern
                          *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
                          * (case-sensitive), no "</w>", merges.txt read as split("\n")[1:-1];
                          * specials <s> </s> <unk> <pad> <mask> (mask lstrip: the whitespace
                          * before it is dropped); tokenize() gives <s> ... </s> <pad>... */
} nx_bpe_flavour;

/* Load from a tokenizer/ folder. Errors name the file (NGPT_ERR_NOT_FOUND, NGPT_ERR_BAD_FORMAT). */
ngpt_status nx_clip_bpe_load(nx_clip_bpe **out, const char *dir);  /* NX_BPE_CLIP */
ngpt_status nx_bpe_load(nx_clip_bpe **out, const char *dir, nx_bpe_flavour flavour);
void nx_clip_bpe_free(nx_clip_bpe *t);

/* Token ids of `text` (NUL-terminated UTF-8), without bos/eos, appended to *out.
 * NGPT_ERR_INVALID_ARGUMENT for text that is not valid UTF-8. */
ngpt_status nx_clip_bpe_encode(const nx_clip_bpe *t, const char *text, nx_i32vec *out);

/* The pipelines' call: tokenizer(text, padding="max_length", max_length=n, truncation=True):
 * ids[0..n) = [bos] + encode(text)[:n-2] + [eos] + [pad]...; n >= 2 (RoBERTa: cls and sep,
 * i.e. <s> and </s>; its attention_mask is 1 for the first *n_tokens). *n_tokens (may be NULL)
 * receives the count before padding (bos and eos included). */
ngpt_status nx_clip_bpe_tokenize(const nx_clip_bpe *t, const char *text, int32_t *ids, int32_t n, int32_t *n_tokens);

int32_t nx_clip_bpe_vocab_size(const nx_clip_bpe *t);  /* the largest id + 1 */
int32_t nx_clip_bpe_bos(const nx_clip_bpe *t);
int32_t nx_clip_bpe_eos(const nx_clip_bpe *t);
int32_t nx_clip_bpe_pad(const nx_clip_bpe *t);
/* tokenizer_config.json's model_max_length (77), 0 when absent or not a sane length. */
int32_t nx_clip_bpe_model_max_length(const nx_clip_bpe *t);

#endif
