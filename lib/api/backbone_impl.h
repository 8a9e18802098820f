/* backbone_impl.h — the structs behind ngpt_backbone / ngpt_backbone_session, shared by
 * backbone.c (load, eval, generate) and turn.c (ngpt_backbone_turn). */
#ifndef NX_BACKBONE_IMPL_H
#define NX_BACKBONE_IMPL_H

#include "nextgpt.h"

#include "../models/llama.h"
#include "../tokenizer/llama_tokenizer.h"

#include <pthread.h>
#include <stdbool.h>

struct ngpt_backbone {
    ngpt_context *ctx;
    nx_llama     *m;
    ngpt_tokenizer *tok;   /* the delta folder's tokenizer, else the model folder's; may be NULL */
    int32_t       n_ctx;
    /* Serialises the compute of sessions sharing this backbone: the context's CPU thread pool
     * (nx_pool_run) and the backend's memory accounting take one caller at a time. */
    pthread_mutex_t mu;
};

struct ngpt_backbone_session {
    ngpt_backbone  *bb;
    nx_llama_state *st;
    int32_t        *hist;        /* [n_ctx] what the cache holds: position p's id, -1 = a row */
    /* conversation state of ngpt_backbone_turn */
    int32_t         n_turns;     /* turns answered since create/reset */
    nx_strbuf       pending;     /* answer text not in the cache (fed at the next turn) */
    nx_strbuf       answer;      /* the last answer's text (for add_assistant_media) */
    int32_t         answer_start;/* n_past where the last answer began; -1 = no answer to re-write */
    const char     *in_call;     /* the generate or turn in progress (its callback may not re-enter) */
};

/* NGPT_ERR_INVALID_ARGUMENT when s is inside its own generate or turn (fn called from their
 * token/text callback would change the cache they are feeding). */
ngpt_status nx_session_check_idle(const ngpt_backbone_session *s, const char *fn);
/* ngpt_backbone_session_truncate without that check: for the turn's own use. */
ngpt_status nx_session_truncate(ngpt_backbone_session *s, int32_t n_past);

/* nx_llama_eval under the backbone's mutex; records the positions in s->hist. */
ngpt_status nx_backbone_eval_locked(ngpt_backbone_session *s, int32_t n, const int32_t *ids, const float *embeds,
                                    const uint8_t *is_embed, nx_llama_out out);
/* The tokenizer's internal handle (tokenizer.c). */
const nx_llama_tok *nx_tokenizer_impl(const ngpt_tokenizer *t);
/* Start a new conversation (turn.c). */
void nx_backbone_session_forget_turns(ngpt_backbone_session *s);

#endif
