/* sentencepiece.h — a SentencePiece BPE model in plain C: the tokenizer.model reader (a small,
 * bounded protobuf decoder for ModelProto), encoding as sentencepiece's C++ library does it
 * (identity normalization, character split, best-score pair merging, byte fallback) and decoding
 * (▁ -> space, byte pieces -> UTF-8 with U+FFFD per invalid byte, dummy-prefix removal).
 *
 * Reference behaviour: sentencepiece 0.1.97 (src/normalizer.cc, src/bpe_model.cc,
 * src/sentencepiece_processor.cc). Only model_type BPE and identity normalization are supported;
 * other models are rejected at load with NGPT_ERR_UNSUPPORTED.
 *
 * A loaded model is immutable: encode/decode may run concurrently on one model. */
#ifndef NX_SENTENCEPIECE_H
#define NX_SENTENCEPIECE_H

#include "nextgpt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ModelProto.SentencePiece.Type (values as in sentencepiece_model.proto). */
typedef enum nx_sp_type {
    NX_SP_NORMAL       = 1,
    NX_SP_UNKNOWN      = 2,
    NX_SP_CONTROL      = 3,
    NX_SP_USER_DEFINED = 4,
    NX_SP_UNUSED       = 5,
    NX_SP_BYTE         = 6
} nx_sp_type;

/* Growable id list / byte string (append-only; free with nx_free on .v / .s). */
typedef struct nx_i32vec {
    int32_t *v;
    size_t   n, cap;
} nx_i32vec;

typedef struct nx_strbuf {
    char  *s;     /* always NUL-terminated once anything was appended */
    size_t n, cap;
} nx_strbuf;

ngpt_status nx_i32vec_push(nx_i32vec *v, int32_t x);
ngpt_status nx_strbuf_append(nx_strbuf *b, const char *s, size_t n);

typedef struct nx_sp_model nx_sp_model;

/* Parse a ModelProto. `label` names the source in error messages ("<label>: piece 17: truncated
 * field"). NGPT_ERR_BAD_FORMAT for a corrupt file, NGPT_ERR_UNSUPPORTED for a valid model this
 * reader cannot run (UNIGRAM/WORD/CHAR, a normalization charsmap, whitespace-as-suffix). */
ngpt_status nx_sp_load_buf(nx_sp_model **out, const uint8_t *buf, size_t len, const char *label);
/* Read and parse a file (label = path). */
ngpt_status nx_sp_load_file(nx_sp_model **out, const char *path);
void nx_sp_free(nx_sp_model *m);

int32_t nx_sp_size(const nx_sp_model *m);
/* The piece text (NUL-terminated, borrowed), or NULL when id is out of range. */
const char *nx_sp_id_to_piece(const nx_sp_model *m, int32_t id, size_t *len);
nx_sp_type nx_sp_id_type(const nx_sp_model *m, int32_t id);
float nx_sp_id_score(const nx_sp_model *m, int32_t id);
/* Exact lookup: the id of `piece`, or -1 when absent (sentencepiece's PieceToId gives unk). */
int32_t nx_sp_find(const nx_sp_model *m, const char *piece, size_t len);
/* The unk id (the UNKNOWN piece) and trainer_spec bos/eos/pad ids (-1 = none). */
int32_t nx_sp_unk_id(const nx_sp_model *m);
int32_t nx_sp_bos_id(const nx_sp_model *m);
int32_t nx_sp_eos_id(const nx_sp_model *m);
int32_t nx_sp_pad_id(const nx_sp_model *m);

/* SentencePieceProcessor::EncodeAsIds(text) for any bytes: ids are appended to `out`.
 * Invalid UTF-8 is handled as sentencepiece does: each invalid byte becomes U+FFFD (which then
 * usually falls back to the bytes <0xEF><0xBF><0xBD>). Empty text gives no ids. */
ngpt_status nx_sp_encode(const nx_sp_model *m, const char *text, size_t len, nx_i32vec *out);

/* SentencePieceProcessor::DecodeIds(ids): the text is appended to `out`. Every id must be in
 * [0, size) (NGPT_ERR_INVALID_ARGUMENT otherwise). */
ngpt_status nx_sp_decode(const nx_sp_model *m, const int32_t *ids, size_t n, nx_strbuf *out);

#endif
