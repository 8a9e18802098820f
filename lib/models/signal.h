/* signal.h — NExT-GPT's signal-token groups during generation.
 *
 * Groups (nextgpt-facts.md §2): image [IMG0]..[IMG3] (4), video [VID0]..[VID23] (24), audio
 * [AUD0]..[AUD7] (8), plus the input markers <Img>, </Img>. Ids come from the tokenizer
 * (nx_signal_ids_from_tokenizer looks the pieces up), never hard-coded.
 *
 * Generator loop (one call each per generated position):
 *     id = nx_signal_forced(sm);                  -1: the sampler chooses
 *     if (id < 0) sample id from the logits;
 *     nx_signal_feed(sm, id, hidden_row, &action);
 *     NX_SIGNAL_TEXT -> decode, feed to stops; on a stop: id = nx_signal_on_stop(sm), and while
 *                       it is >= 0 keep going with forced ids (the stop token itself is not fed
 *                       to the model), then end;
 *     otherwise      -> nothing reaches the text.
 *
 * Rules (our policy; the official code differs where noted):
 *  - The first token of a group ([IMG0], [VID0], [AUD0]) starts the group; the remaining N-1
 *    tokens are FORCED in order (the sampler is bypassed). The official code takes whatever the
 *    sampler emits and asserts that the next N ids are exactly the group, crashing on a partial
 *    group (NExT-GPT issue #46: [VID0..VID10] then text). We always complete the group.
 *  - A stray signal token outside a group (a non-first group token such as [IMG2] without
 *    [IMG0], <Img> or </Img>, or a first token of a modality that already produced max_groups
 *    groups) starts nothing and is dropped from the text (NX_SIGNAL_DROPPED). This is what the
 *    official detection does (it only looks for the first token, up to max_num_{imgs,vids,auds})
 *    except that the official text keeps such pieces; we never show them. Rationale: strays come
 *    from degenerate output (issue #68: "[IMG3] [VID8] </Img> [VID20]"), where starting groups
 *    would turn noise into media. nx_signal_suppress() can instead mask them out of the logits.
 *  - Required modalities: when the text answer stops (EOS, stop id/string, max tokens) and a
 *    required modality has no group yet, nx_signal_on_stop() returns its first token, to be fed
 *    in place of the stop token; the rest is forced as usual. Several required modalities are
 *    forced one after the other, in the order image, video, audio.
 *  - Hidden states (§2 "Which hidden states", and golden STAGES.md llama.generate_greedy): the
 *    projector reads, for each group token X_k, the final-layer, post-final-RMSNorm state of the
 *    position whose logits PREDICTED X_k, i.e. the state at the input token just before X_k
 *    (official: raw = E[g-1 : g-1+N]). So `hidden_row` passed with a token is the state that
 *    chose it: for the first generated token the last prompt position, for token j >= 1 the
 *    step whose input was token j-1 — not the state computed AT the signal token (that is what
 *    training used; the released inference code is one position earlier and is what we match).
 *    For a group that starts at the first generated token (g = 0), the official slice is empty
 *    (a bug); we use the last prompt position's state, which is the state that predicted it.
 *    For a forced token the state is the one whose logits we ignored.
 *    The projector then adds the input-embedding rows of X_0..X_{N-1} (§3); not done here.
 *
 * One machine per generation, one thread at a time. */
#ifndef NX_SIGNAL_H
#define NX_SIGNAL_H

#include "nextgpt.h"
#include "models/modality.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nx_llama_tok nx_llama_tok;

#define NX_SIGNAL_MAX_GROUP 24

typedef struct nx_signal_ids {
    int32_t img_open;                               /* <Img> */
    int32_t img_close;                              /* </Img> */
    int32_t n[NX_MODALITY_COUNT];                   /* 4, 24, 8 (by nx_modality) */
    int32_t tok[NX_MODALITY_COUNT][NX_SIGNAL_MAX_GROUP]; /* [IMGk], [VIDk], [AUDk] */
} nx_signal_ids;

/* piece_to_id of "<Img>", "</Img>", "[IMG0]".."[IMG3]", "[VID0]".."[VID23]", "[AUD0]".."[AUD7]";
 * NGPT_ERR_NOT_FOUND naming the first missing piece. */
ngpt_status nx_signal_ids_from_tokenizer(nx_signal_ids *out, const nx_llama_tok *tok);

typedef struct nx_signal_params {
    int64_t n_embd;                         /* hidden size of the rows fed */
    int32_t max_groups[NX_MODALITY_COUNT];  /* per modality; 0 = no limit (demo: 1 each) */
    bool    required[NX_MODALITY_COUNT];    /* force a group at the end if none was generated */
} nx_signal_params;

typedef enum nx_signal_action {
    NX_SIGNAL_TEXT    = 0, /* an ordinary token: it belongs to the text */
    NX_SIGNAL_GROUP   = 1, /* part of a signal group (not text) */
    NX_SIGNAL_DROPPED = 2  /* a stray signal/marker token: neither text nor group */
} nx_signal_action;

typedef struct nx_signal_group {
    nx_modality modality;
    int32_t     n_tokens;    /* 4, 24 or 8 */
    int32_t     first_step;  /* index (among fed tokens) of the group's first token */
    bool        required;    /* forced by nx_signal_on_stop rather than chosen by the model */
    float      *hidden;      /* (n_tokens, n_embd) owned by the machine */
} nx_signal_group;

typedef struct nx_signal nx_signal;

ngpt_status nx_signal_create(nx_signal **out, const nx_signal_ids *ids, const nx_signal_params *p);
void nx_signal_free(nx_signal *sm);  /* NULL is a no-op */

/* The id the next position must take (-1 = sample). */
int32_t nx_signal_forced(const nx_signal *sm);

/* Feed the id chosen (or forced) for the next position and the hidden row of the position whose
 * logits chose it (n_embd floats, copied when it belongs to a group; may be NULL only for text
 * and dropped tokens). Feeding another id while one is forced is NGPT_ERR_INVALID_ARGUMENT. */
ngpt_status nx_signal_feed(nx_signal *sm, int32_t id, const float *hidden_row, nx_signal_action *action);

/* The text answer stopped: the first token of a required modality still without a group (it
 * becomes the forced id), or -1 when nothing is left to force. Call again after that group. */
int32_t nx_signal_on_stop(nx_signal *sm);

/* Positions still to be fed before every required modality has its group: the rest of the group
 * in progress, and each required modality without a group (its full length). The generator
 * stops the text this many positions before the end of the context. */
int32_t nx_signal_reserve(const nx_signal *sm);

/* While required groups are still to come (a reserve): set to -inf the first token of every
 * modality whose group, started at this position, would leave the required ones no room within
 * `room` positions (n_ctx - n_past); starting it would cut it or them off at the context's end. */
void nx_signal_block_unfit(const nx_signal *sm, float *logits, int32_t n, int32_t room);

/* True for every group token and the <Img>/</Img> markers. */
bool nx_signal_is_signal(const nx_signal *sm, int32_t id);

/* Optional: set to -inf the logits of ids that would be dropped as strays in the current state
 * (non-first group tokens, markers, first tokens of exhausted modalities). Ids >= n are skipped. */
void nx_signal_suppress(const nx_signal *sm, float *logits, int32_t n);

/* Completed groups, in generation order (borrowed from the machine). */
size_t nx_signal_n_groups(const nx_signal *sm);
const nx_signal_group *nx_signal_group_at(const nx_signal *sm, size_t i);

#endif
