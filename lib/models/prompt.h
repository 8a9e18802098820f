/* prompt.h — NExT-GPT's Vicuna-v0 prompt, built as the sequence of token ids and soft-token rows
 * that the backbone evaluates (nextgpt-facts.md §1.4, `prepare_generation_embedding` + demo_app.py).
 *
 * The official code builds one string with inline media tags and splits it with the regex
 * ' <|> '. We build the same segments from structured input (so user text containing " <" or
 * "> " cannot break the parse, NExT-GPT issue #73). The virtual string, as demo_app.py writes it:
 *
 *   [system "\n"]                                    (our extension; NExT-GPT has no system prompt)
 *   turn 0 answered:   "### Human: " {M " "} q "\n### Assistant: " {M " "} a "\n###"
 *   turn i>0 answered: " Human: "    {M " "} q "\n### Assistant: " {M " "} a "\n###"
 *   last (to answer):  ("### Human: " | " Human: ") {M " "} " " q "\n### Assistant:"
 *
 * where M is one media tag. A tag is cut out together with the one space before it (" <") and
 * the one space after it ("> "). Each text segment between tags becomes
 *     [BOS] + tokenize(segment, add_special_tokens=False)
 * (a BOS before EVERY text segment, as the released inference code does; training used one), and
 * each media item becomes [<Img>] [soft row] [</Img>] (the <Img> markers for all three
 * modalities, issue #15). So the first turn with one image is
 *     [BOS]"### Human:" <Img> soft </Img> [BOS]" describe this\n### Assistant:"
 * (the golden llama.logits_embeds nextgpt_splice layout), and without media
 *     [BOS]"### Human:  describe this\n### Assistant:"   (two spaces, as the demo writes it).
 *
 * Deliberate differences from the official string split:
 *  - several tags in a row ("<Image>a</Image> <Audio>b</Audio> ") are each spliced; the official
 *    regex consumes the space between them with the first "> " match, so the second tag starts
 *    with "<" and is tokenized as literal TEXT. We give every media item its own
 *    <Img> row </Img> with no text segment between them.
 *  - a media item may carry several rows (the official "<Image>a</Image><Image>b</Image>" run
 *    inside one segment): they are SUMMED, in order, into one soft token, as
 *    `torch.cat(features).sum(dim=0)` does on llama_proj outputs. Summing is done here (in f32),
 *    so callers pass the projected rows of each medium.
 *  - media order is the caller's: the demo writes the current turn's tags image, audio, video
 *    and the history's (parse_text prepends) audio, video, image; pass them in that order for
 *    parity.
 * Generated media re-enter the history as assistant media (the demo saves them to temp files and
 * re-encodes them with ImageBind): the caller encodes them and passes the rows; the assistant text
 * is the answer with signal tokens removed and without the trailing "\n###".
 *
 * Rows are borrowed (a single-row medium's pointer is returned as is): keep them alive while
 * the prompt is used. */
#ifndef NX_PROMPT_H
#define NX_PROMPT_H

#include "nextgpt.h"
#include "models/modality.h"
#include "tokenizer/sentencepiece.h"

#include <stddef.h>
#include <stdint.h>

typedef struct nx_llama_tok nx_llama_tok;

typedef struct nx_prompt_media {
    nx_modality  modality;
    const float *rows;    /* (n_rows, n_embd) projected soft tokens, summed into one */
    int32_t      n_rows;  /* >= 1 */
} nx_prompt_media;

typedef struct nx_prompt_turn {
    const char            *user;            /* NUL-terminated (NULL = "") */
    const nx_prompt_media *user_media;
    size_t                 n_user_media;
    const char            *assistant;       /* NULL: this is the turn to answer (only the last) */
    const nx_prompt_media *assistant_media; /* generated media of an answered turn */
    size_t                 n_assistant_media;
} nx_prompt_turn;

typedef enum nx_prompt_item_kind {
    NX_PROMPT_IDS   = 0, /* token ids, looked up in embed_tokens */
    NX_PROMPT_EMBED = 1  /* one soft-token row of n_embd floats */
} nx_prompt_item_kind;

typedef struct nx_prompt_item {
    nx_prompt_item_kind kind;
    const int32_t      *ids;   /* IDS: (n_ids), owned by the prompt */
    size_t              n_ids;
    const float        *row;   /* EMBED: (n_embd), borrowed or owned (summed) */
    nx_modality         modality; /* EMBED only */
} nx_prompt_item;

typedef struct nx_prompt nx_prompt;

/* Build the prompt. `turns` ends with the turn to answer (assistant == NULL); every earlier turn
 * must have an answer. NGPT_ERR_INVALID_ARGUMENT names the bad turn/medium. Adjacent id runs are
 * merged into one item (e.g. [</Img>, BOS, ...]). */
ngpt_status nx_prompt_build(nx_prompt **out, const nx_llama_tok *tok, int64_t n_embd, const char *system,
                            const nx_prompt_turn *turns, size_t n_turns);
void nx_prompt_free(nx_prompt *p);  /* NULL is a no-op */

/* The next turn of a conversation whose history is already in a KV cache (ngpt_backbone_turn):
 *     prefix " Human: " {M " "} " " q "\n### Assistant:"
 * from turn->user / user_media (its assistant fields are ignored). The first text segment
 * continues the cached text segment: no [BOS] and no dummy-prefix space (encoded with
 * nx_prompt_encode_continuation); later segments (after media) are [BOS] + ids as usual.
 * prefix: e.g. "\n###" closing the previous answer (NULL = ""). */
ngpt_status nx_prompt_build_next(nx_prompt **out, const nx_llama_tok *tok, int64_t n_embd, const char *prefix,
                                 const nx_prompt_turn *turn);
/* An answer re-written with assistant media, as the official history holds it after
 * "### Assistant:": {<Img> row </Img>} [BOS] ids(assistant). turn->assistant_media must be
 * non-empty; the user fields are ignored. */
ngpt_status nx_prompt_build_answer(nx_prompt **out, const nx_llama_tok *tok, int64_t n_embd,
                                   const nx_prompt_turn *turn);
/* Append the ids of `text` as they come inside a longer string after a non-space character:
 * without SentencePiece's dummy-prefix "▁" (encodes "\n" + text and drops the leading
 * ["▁"] "<0x0A>"; falls back to a plain encode for a vocabulary without them). */
ngpt_status nx_prompt_encode_continuation(const nx_llama_tok *tok, const char *text, size_t len, nx_i32vec *out);

size_t nx_prompt_n_items(const nx_prompt *p);
const nx_prompt_item *nx_prompt_item_at(const nx_prompt *p, size_t i);
/* Total positions (ids + rows). */
size_t nx_prompt_n_positions(const nx_prompt *p);

#endif
