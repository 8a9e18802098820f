/* turn.c — ngpt_backbone_turn: one NExT-GPT chat turn on a backbone session.
 *
 * The loop of docs/architecture.md "Generation", over the internal modules:
 *   prompt.h  the turn's template part (first turn: the opening; later: "\n###" + " Human: ...")
 *   sampler.h the next id from a downloaded logits row
 *   signal.h  groups: forced completion, required modalities, hidden rows
 *   stops.h   stop ids / strings across tokens, streamable bytes
 * plus an incremental detokenizer (each token's bytes, as the full decode would produce them)
 * and the bookkeeping that keeps the KV cache equal to the answer's text: after the answer ends
 * the cache is rolled back past tokens whose text is not part of the answer (a stop string, the
 * whitespace before it, a half UTF-8 character) and the answer text not in the cache is kept as
 * `pending` and fed first (before a forced group, or with the next turn's "\n###"). */
#include "backbone_impl.h"

#include "../core/alloc.h"
#include "../core/error.h"
#include "../core/params.h"
#include "../models/prompt.h"
#include "../models/sampler.h"
#include "../models/signal.h"
#include "../models/stops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Test hook (tests/unit/test_turn.c): called on the copy of each logits row before sampling. */
void (*nx_turn_logits_hook)(float *logits, int32_t n, int32_t step, void *user);
void *nx_turn_logits_hook_user;

typedef struct turn_group {
    ngpt_modality modality;
    int32_t       n_tokens;
    int32_t       required;
    float        *hidden;     /* [n_tokens, H] */
    float        *input_embs; /* [n_tokens, H] */
} turn_group;

struct ngpt_turn_result {
    char            *text;
    size_t           len;
    int32_t         *ids;
    int32_t          n_ids;
    turn_group      *groups;
    int32_t          n_groups;
    ngpt_stop_reason reason;
    int32_t          n_prompt;
    double           prompt_ms, gen_ms;
};

/* ngpt_modality (IMAGE 1, AUDIO 2, VIDEO 3) <-> nx_modality (IMAGE 0, VIDEO 1, AUDIO 2) */
static bool is_media_modality(ngpt_modality m)
{
    return m == NGPT_MODALITY_IMAGE || m == NGPT_MODALITY_AUDIO || m == NGPT_MODALITY_VIDEO;
}
static nx_modality to_nx(ngpt_modality m)
{
    return m == NGPT_MODALITY_IMAGE ? NX_MODALITY_IMAGE : m == NGPT_MODALITY_VIDEO ? NX_MODALITY_VIDEO : NX_MODALITY_AUDIO;
}

/* The prompt builder's view of a turn's media: in stack (8 entries) when they fit, else on the
 * heap (the caller frees it when it is not stack). NULL: out of memory. */
static nx_prompt_media *prompt_media(const ngpt_turn_media *media, size_t n_media, nx_prompt_media stack[8])
{
    nx_prompt_media *v = n_media <= 8 ? stack : nx_malloc(n_media * sizeof *v);
    if (!v) return NULL;
    for (size_t i = 0; i < n_media; i++) {
        v[i].modality = to_nx(media[i].modality);
        v[i].rows = media[i].soft_rows;
        v[i].n_rows = media[i].n_rows;
    }
    return v;
}
static ngpt_modality from_nx(nx_modality m)
{
    return m == NX_MODALITY_IMAGE ? NGPT_MODALITY_IMAGE : m == NX_MODALITY_VIDEO ? NGPT_MODALITY_VIDEO : NGPT_MODALITY_AUDIO;
}
#define MEDIA_BITS (NGPT_MODALITY_BIT(NGPT_MODALITY_IMAGE) | NGPT_MODALITY_BIT(NGPT_MODALITY_AUDIO) | \
                    NGPT_MODALITY_BIT(NGPT_MODALITY_VIDEO))

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- params ---- */

NGPT_API ngpt_status ngpt_turn_params_default(ngpt_turn_params *p, size_t struct_size)
{
    ngpt_turn_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.temperature = 1.0f;
    d.top_p = 0.01f;
    d.repetition_penalty = 1.0f;
    d.max_new_tokens = 246;
    for (int i = 0; i < 4; i++) d.max_groups[i] = 1;
    return nx_params_default(p, struct_size, &d, sizeof d, "ngpt_turn_params_default");
}

/* ---- incremental detokenizer ----
 * Gives, per id, the bytes that tokenizer.decode(answer_ids, skip_special_tokens=True) adds for
 * it (signal tokens are never given here): "▁" -> " ", the first piece's dummy-prefix "▁"
 * dropped, byte pieces gathered into UTF-8 characters (an invalid or cut sequence becomes
 * U+FFFD per byte, as nx_sp_decode does), control/unknown pieces dropped (they are special). */
typedef struct detok {
    const nx_llama_tok *tok;
    const nx_sp_model  *sp;
    int32_t             n_sp;
    bool                started;    /* the dummy-prefix rule has been applied */
    bool                after_added;/* an added token was the last: next run starts after " " */
    uint8_t             pb[4];
    int                 npb;
    nx_strbuf           out;        /* this token's bytes */
} detok;

/* Length of the UTF-8 sequence a lead byte starts, 0 if it cannot start one. */
static int utf8_len(uint8_t c)
{
    return c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
}

/* Is b[i] (i >= 1) a valid continuation of the sequence led by b[0]? */
static bool utf8_cont_ok(const uint8_t *b, int i)
{
    uint8_t c = b[i];
    if (i == 1) {
        if (b[0] == 0xE0) return c >= 0xA0 && c <= 0xBF;
        if (b[0] == 0xED) return c >= 0x80 && c <= 0x9F;
        if (b[0] == 0xF0) return c >= 0x90 && c <= 0xBF;
        if (b[0] == 0xF4) return c >= 0x80 && c <= 0x8F;
    }
    return c >= 0x80 && c <= 0xBF;
}

static ngpt_status detok_emit(detok *d, const char *s, size_t n)
{
    if (n) d->started = true;
    return nx_strbuf_append(&d->out, s, n);
}

/* Emit what the pending bytes decide; `final`: nothing more will complete them. */
static ngpt_status detok_drain(detok *d, bool final)
{
    while (d->npb > 0) {
        int need = utf8_len(d->pb[0]);
        int ok = 1;
        while (need && ok < need && ok < d->npb && utf8_cont_ok(d->pb, ok)) ok++;
        if (need && ok == need) {
            NX_TRY(detok_emit(d, (const char *)d->pb, (size_t)need));
        } else if (need && ok == d->npb && !final) {
            return NGPT_OK; /* a valid prefix: wait for more bytes */
        } else {
            NX_TRY(detok_emit(d, "\xEF\xBF\xBD", 3));
            need = 1;
        }
        memmove(d->pb, d->pb + need, (size_t)(d->npb - need));
        d->npb -= need;
    }
    return NGPT_OK;
}

static ngpt_status detok_feed(detok *d, int32_t id)
{
    d->out.n = 0;
    if (id >= d->n_sp) { /* an added token that is not a signal token: its own group */
        NX_TRY(detok_drain(d, true));
        if (d->started) NX_TRY(detok_emit(d, " ", 1));
        const char *a = nx_llama_tok_id_to_piece(d->tok, id);
        if (a) NX_TRY(detok_emit(d, a, strlen(a)));
        d->after_added = true;
        return NGPT_OK;
    }
    nx_sp_type ty = nx_sp_id_type(d->sp, id);
    if (ty == NX_SP_BYTE) {
        const char *piece = nx_sp_id_to_piece(d->sp, id, NULL);
        unsigned v = 0;
        if (piece && sscanf(piece, "<0x%2X>", &v) == 1) d->pb[d->npb++] = (uint8_t)v;
        if (d->after_added) {
            d->after_added = false;
            NX_TRY(detok_emit(d, " ", 1));
        }
        return detok_drain(d, false);
    }
    NX_TRY(detok_drain(d, true));
    if (ty == NX_SP_CONTROL || ty == NX_SP_UNKNOWN) return NGPT_OK; /* special: skipped */
    size_t n = 0;
    const char *t = nx_sp_id_to_piece(d->sp, id, &n);
    bool first = !d->started || d->after_added;
    if (d->after_added) NX_TRY(detok_emit(d, " ", 1));
    d->after_added = false;
    if (first && n >= 3 && memcmp(t, "\xE2\x96\x81", 3) == 0) t += 3, n -= 3;
    d->started = true;
    while (n) {
        if (n >= 3 && memcmp(t, "\xE2\x96\x81", 3) == 0) {
            NX_TRY(nx_strbuf_append(&d->out, " ", 1));
            t += 3, n -= 3;
        } else {
            NX_TRY(nx_strbuf_append(&d->out, t, 1));
            t++, n--;
        }
    }
    return NGPT_OK;
}

/* ---- the turn ---- */

typedef struct tok_info {
    int32_t id;
    bool    fed;    /* in the KV cache */
    bool    clean;  /* no UTF-8 bytes pending after it */
    size_t  cov;    /* answer bytes decoded after it */
} tok_info;

typedef struct turn {
    ngpt_backbone_session *s;
    const nx_llama_tok    *tok;
    ngpt_turn_params       p;
    int32_t                V, H;
    nx_prompt             *prompt;
    nx_sampler            *sampler;
    nx_stops              *stops;
    nx_signal             *sig;
    nx_signal_ids          sid;
    detok                  dt;
    tok_info              *ti;
    int32_t                n_ti, cap_ti;
    int32_t               *ctx_ids;   /* ids chosen so far (repetition penalty context) */
    float                 *row;       /* [V] logits scratch */
    size_t                 streamed;  /* bytes given to on_text */
    size_t                 floor;     /* answer bytes before the last group: never trimmed */
    bool                   quiet;     /* no more on_text calls */
    ngpt_turn_result      *r;
} turn;

static ngpt_status oom(void) { return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_backbone_turn: out of memory"); }

static bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* Hand on_text the bytes that can no longer be cut: not held by the stops matcher, and not a
 * trailing whitespace run (it would be trimmed if a stop came next). */
static void stream(turn *t, size_t avail, bool keep_ws)
{
    if (t->quiet || !t->p.on_text) return;
    size_t len;
    const char *text = nx_stops_text(t->stops, &len);
    size_t end = avail < len ? avail : len;
    if (!keep_ws)
        while (end > t->streamed && end > t->floor && is_ws(text[end - 1])) end--;
    if (end <= t->streamed) return;
    if (!t->p.on_text(text + t->streamed, end - t->streamed, t->p.user_data)) {
        t->quiet = true;
        t->r->reason = NGPT_STOP_CANCELLED;
    }
    t->streamed = end;
}

static ngpt_status push_info(turn *t, int32_t id)
{
    if (t->n_ti == t->cap_ti) {
        int32_t nc = t->cap_ti ? t->cap_ti * 2 : 64;
        tok_info *ni = nx_realloc(t->ti, (size_t)nc * sizeof *ni);
        if (!ni) return oom();
        t->ti = ni;
        int32_t *nid = nx_realloc(t->ctx_ids, (size_t)nc * sizeof *nid);
        if (!nid) return oom();
        t->ctx_ids = nid;
        t->cap_ti = nc;
    }
    tok_info *x = &t->ti[t->n_ti];
    x->id = id;
    x->fed = false;
    x->clean = t->dt.npb == 0;
    x->cov = t->n_ti ? t->ti[t->n_ti - 1].cov : 0;
    t->ctx_ids[t->n_ti++] = id;
    return NGPT_OK;
}

/* The answer's length: the matcher's text, less trailing whitespace before a stop. */
static size_t answer_len(turn *t)
{
    size_t len;
    const char *text = nx_stops_text(t->stops, &len);
    if (t->r->reason == NGPT_STOP_ID || t->r->reason == NGPT_STOP_STRING)
        while (len > t->floor && is_ws(text[len - 1])) len--;
    return len;
}

/* Make the cache hold exactly the answer so far: roll back tokens whose text is not (wholly) in
 * the answer, then either feed the answer text not in the cache (need_out: a group is forced
 * next and needs the hidden state that predicts it) or leave it in s->pending for the next turn. */
static ngpt_status sync_cache(turn *t, size_t a_len, int32_t answer_start, bool need_out)
{
    ngpt_backbone_session *s = t->s;
    int32_t j = 0;
    while (j < t->n_ti && t->ti[j].fed) j++;
    const int32_t fed = j;
    while (j > 0 && !(t->ti[j - 1].cov <= a_len && t->ti[j - 1].clean)) j--;
    size_t cov = j ? t->ti[j - 1].cov : 0;
    for (int32_t k = j; k < fed; k++) t->ti[k].fed = false;
    if (j < fed) NX_TRY(nx_session_truncate(s, answer_start + j));
    const char *text = nx_stops_text(t->stops, NULL);
    if (!need_out) {
        if (a_len > cov && nx_strbuf_append(&s->pending, text + cov, a_len - cov) != NGPT_OK) return oom();
        return NGPT_OK;
    }
    if (a_len > cov) {
        nx_i32vec v = {0};
        ngpt_status st = nx_prompt_encode_continuation(t->tok, text + cov, a_len - cov, &v);
        if (st == NGPT_OK && v.n)
            st = nx_backbone_eval_locked(s, (int32_t)v.n, v.v, NULL, NULL, NX_LLAMA_OUT_LAST);
        nx_free(v.v);
        return st;
    }
    if (j < fed || s->st->n_out == 0) { /* outputs of the last kept position: evaluate it again */
        int32_t last = s->st->n_past > 0 ? s->hist[s->st->n_past - 1] : -1;
        if (last < 0) return nx_err(NGPT_ERR_INTERNAL, "ngpt_backbone_turn: no token to continue from");
        NX_TRY(nx_session_truncate(s, s->st->n_past - 1));
        NX_TRY(nx_backbone_eval_locked(s, 1, &last, NULL, NULL, NX_LLAMA_OUT_LAST));
    }
    return NGPT_OK;
}

static ngpt_stop_reason map_reason(nx_stop_reason r)
{
    return r == NX_STOP_ID ? NGPT_STOP_ID : r == NX_STOP_STRING ? NGPT_STOP_STRING : NGPT_STOP_MAX_TOKENS;
}

/* Generation after the prompt: the loop of docs/architecture.md "Generation". */
static ngpt_status generate(turn *t)
{
    ngpt_backbone_session *s = t->s;
    nx_llama_state *st = s->st;
    const int32_t answer_start = st->n_past;
    bool text_done = false, synced = false;
    bool room_kept = false; /* the text stopped early to leave the required groups room */
    int32_t n_sampled = 0;
    for (;;) {
        int32_t id = t->sig ? nx_signal_forced(t->sig) : -1;
        if (id < 0 && text_done) {
            if (t->r->reason == NGPT_STOP_CANCELLED || (t->r->reason == NGPT_STOP_CONTEXT_FULL && !room_kept) || !t->sig)
                break;
            id = nx_signal_on_stop(t->sig);
            if (id < 0) break;
            if (!synced) {
                NX_TRY(sync_cache(t, answer_len(t), answer_start, true));
                synced = true;
            }
        }
        if (id < 0) {
            if (t->p.cancel && *t->p.cancel) {
                t->r->reason = NGPT_STOP_CANCELLED;
                text_done = true;
                continue;
            }
            if (n_sampled >= t->p.max_new_tokens) {
                t->r->reason = NGPT_STOP_MAX_TOKENS;
                text_done = true;
                continue;
            }
            /* one more text token must leave room for the required groups still to come */
            const int32_t reserve = t->sig ? nx_signal_reserve(t->sig) : 0;
            if (reserve > 0 && st->n_past + 1 + reserve > st->n_ctx) {
                t->r->reason = NGPT_STOP_CONTEXT_FULL;
                text_done = true;
                /* force the required groups only where they fit whole (the prompt may already
                 * leave less room than they need: then they are not met) */
                room_kept = st->n_past + reserve <= st->n_ctx;
                continue;
            }
            memcpy(t->row, st->h_logits + (size_t)(st->n_out - 1) * (size_t)t->V, (size_t)t->V * sizeof(float));
            if (nx_turn_logits_hook) nx_turn_logits_hook(t->row, t->V, n_sampled, nx_turn_logits_hook_user);
            if (t->sig && t->p.suppress_strays) nx_signal_suppress(t->sig, t->row, t->V);
            if (t->sig) nx_signal_block_unfit(t->sig, t->row, t->V, st->n_ctx - st->n_past);
            NX_TRY(nx_sampler_sample(t->sampler, t->row, t->V, t->ctx_ids, (size_t)t->n_ti, &id));
            n_sampled++;
        }
        const float *hidden = st->h_hidden + (size_t)(st->n_out - 1) * (size_t)t->H;
        nx_signal_action act = NX_SIGNAL_TEXT;
        if (t->sig) NX_TRY(nx_signal_feed(t->sig, id, hidden, &act));
        NX_TRY(push_info(t, id));
        tok_info *x = &t->ti[t->n_ti - 1];
        if (act == NX_SIGNAL_TEXT && !text_done) {
            NX_TRY(detok_feed(&t->dt, id));
            nx_stop_reason sr = NX_STOP_NONE;
            NX_TRY(nx_stops_feed(t->stops, id, t->dt.out.s ? t->dt.out.s : "", t->dt.out.n, &sr));
            x->cov += t->dt.out.n;
            x->clean = t->dt.npb == 0;
            size_t len;
            nx_stops_text(t->stops, &len);
            if (sr != NX_STOP_NONE) {
                t->r->reason = map_reason(sr);
                text_done = true;
                continue; /* the stop token is not fed */
            }
            stream(t, len - nx_stops_held(t->stops), false);
            if (t->r->reason == NGPT_STOP_CANCELLED) {
                text_done = true;
                continue; /* cancelled by on_text: this token's text stays in the answer */
            }
        } else if (act == NX_SIGNAL_GROUP && !text_done) {
            /* text before a group is never trimmed: let the stream have it */
            size_t len;
            nx_stops_text(t->stops, &len);
            t->floor = x->cov;
            stream(t, len - nx_stops_held(t->stops), true);
        }
        if (st->n_past >= st->n_ctx) {
            t->r->reason = NGPT_STOP_CONTEXT_FULL;
            break;
        }
        NX_TRY(nx_backbone_eval_locked(s, 1, &id, NULL, NULL, NX_LLAMA_OUT_LAST));
        x->fed = true;
        if (t->r->reason == NGPT_STOP_CANCELLED) text_done = true; /* on_text said stop before a group */
    }
    /* the answer text */
    if (t->r->reason != NGPT_STOP_ID && t->r->reason != NGPT_STOP_STRING) {
        if (t->dt.npb) { /* a character cut by the end: U+FFFD per byte, as the full decode */
            t->dt.out.n = 0;
            NX_TRY(detok_drain(&t->dt, true));
            nx_stop_reason sr;
            NX_TRY(nx_stops_feed(t->stops, -1, t->dt.out.s, t->dt.out.n, &sr));
        }
        nx_stops_finish(t->stops);
    }
    size_t a_len = answer_len(t);
    if (!synced) NX_TRY(sync_cache(t, a_len, answer_start, false));
    const char *text = nx_stops_text(t->stops, NULL);
    if (t->r->reason != NGPT_STOP_CANCELLED) stream(t, a_len, true);
    ngpt_turn_result *r = t->r;
    r->text = nx_malloc(a_len + 1);
    if (!r->text) return oom();
    if (a_len) memcpy(r->text, text, a_len);
    r->text[a_len] = 0;
    r->len = a_len;
    s->answer.n = 0;
    if (nx_strbuf_append(&s->answer, r->text, a_len) != NGPT_OK) return oom();
    s->answer_start = answer_start;
    return NGPT_OK;
}

static ngpt_status collect(turn *t)
{
    ngpt_turn_result *r = t->r;
    r->ids = nx_malloc((size_t)(t->n_ti ? t->n_ti : 1) * sizeof *r->ids);
    if (!r->ids) return oom();
    for (int32_t i = 0; i < t->n_ti; i++) r->ids[i] = t->ti[i].id;
    r->n_ids = t->n_ti;
    size_t ng = t->sig ? nx_signal_n_groups(t->sig) : 0;
    if (!ng) return NGPT_OK;
    r->groups = nx_calloc(ng, sizeof *r->groups);
    if (!r->groups) return oom();
    for (size_t g = 0; g < ng; g++) {
        const nx_signal_group *sg = nx_signal_group_at(t->sig, g);
        turn_group *o = &r->groups[g];
        r->n_groups++;
        o->modality = from_nx(sg->modality);
        o->n_tokens = sg->n_tokens;
        o->required = sg->required;
        size_t n = (size_t)sg->n_tokens * (size_t)t->H;
        o->hidden = nx_malloc(n * sizeof(float));
        o->input_embs = nx_malloc(n * sizeof(float));
        if (!o->hidden || !o->input_embs) return oom();
        memcpy(o->hidden, sg->hidden, n * sizeof(float));
        NX_TRY(ngpt_backbone_embed_tokens(o->input_embs, t->s->bb, t->sid.tok[sg->modality], sg->n_tokens));
    }
    return NGPT_OK;
}

/* Evaluate the prompt's items as one batch (ids and soft-token rows mixed). */
static ngpt_status eval_prompt(turn *t)
{
    const size_t n = nx_prompt_n_positions(t->prompt);
    if (n == 0 || n > (size_t)INT32_MAX) return nx_err(NGPT_ERR_INTERNAL, "ngpt_backbone_turn: empty prompt");
    int32_t *ids = nx_malloc(n * sizeof *ids);
    uint8_t *is_embed = nx_calloc(n, 1);
    float *emb = NULL;
    bool any = false;
    for (size_t i = 0; i < nx_prompt_n_items(t->prompt); i++) any |= nx_prompt_item_at(t->prompt, i)->kind == NX_PROMPT_EMBED;
    if (any) emb = nx_calloc(n * (size_t)t->H, sizeof *emb);
    ngpt_status st = NGPT_OK;
    if (!ids || !is_embed || (any && !emb)) st = oom();
    size_t k = 0;
    for (size_t i = 0; st == NGPT_OK && i < nx_prompt_n_items(t->prompt); i++) {
        const nx_prompt_item *it = nx_prompt_item_at(t->prompt, i);
        if (it->kind == NX_PROMPT_IDS) {
            memcpy(ids + k, it->ids, it->n_ids * sizeof *ids);
            k += it->n_ids;
        } else {
            ids[k] = 0;
            is_embed[k] = 1;
            memcpy(emb + k * (size_t)t->H, it->row, (size_t)t->H * sizeof *emb);
            k++;
        }
    }
    if (st == NGPT_OK)
        st = nx_backbone_eval_locked(t->s, (int32_t)n, ids, emb, any ? is_embed : NULL, NX_LLAMA_OUT_LAST);
    nx_free(ids);
    nx_free(is_embed);
    nx_free(emb);
    return st;
}

static ngpt_status check_media(const ngpt_turn_media *media, size_t n_media, const char *fn)
{
    if (n_media && !media) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: media is NULL with n_media %zu", fn, n_media);
    for (size_t i = 0; i < n_media; i++) {
        if (!is_media_modality(media[i].modality))
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: media[%zu].modality %d is not an image/audio/video modality", fn, i,
                          (int)media[i].modality);
        if (!media[i].soft_rows || media[i].n_rows < 1)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: media[%zu] has no soft rows (soft_rows %s, n_rows %d)", fn, i,
                          media[i].soft_rows ? "set" : "NULL", media[i].n_rows);
    }
    return NGPT_OK;
}

static ngpt_status check_params(const ngpt_turn_params *p)
{
    const char *fn = "ngpt_backbone_turn";
    if (p->max_new_tokens < 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: max_new_tokens %d < 0", fn, p->max_new_tokens);
    if (p->n_stop_strings < 0 || p->n_stop_ids < 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: n_stop_strings %d / n_stop_ids %d < 0", fn, p->n_stop_strings,
                      p->n_stop_ids);
    for (int32_t i = 0; p->stop_strings && i < p->n_stop_strings; i++)
        if (!p->stop_strings[i] || !p->stop_strings[i][0])
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: stop_strings[%d] is NULL or empty", fn, i);
    if (p->require_modalities & ~MEDIA_BITS)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: require_modalities 0x%x has bits other than the image, audio and "
                      "video NGPT_MODALITY_BIT (0x%x)", fn, p->require_modalities, MEDIA_BITS);
    for (int i = 0; i < 4; i++)
        if (p->max_groups[i] < 0)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: max_groups[%d] %d < 0", fn, i, p->max_groups[i]);
    return NGPT_OK;
}

static void turn_free(turn *t)
{
    nx_prompt_free(t->prompt);
    nx_sampler_free(t->sampler);
    nx_stops_free(t->stops);
    nx_signal_free(t->sig);
    nx_free(t->dt.out.s);
    nx_free(t->ti);
    nx_free(t->ctx_ids);
    nx_free(t->row);
}

static ngpt_status turn_run(turn *t, const char *user_text, const ngpt_turn_media *media, size_t n_media)
{
    ngpt_backbone_session *s = t->s;
    const ngpt_turn_params *p = &t->p;
    /* modules */
    bool have_sig = nx_signal_ids_from_tokenizer(&t->sid, t->tok) == NGPT_OK;
    if (!have_sig && p->require_modalities)
        return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_backbone_turn: require_modalities needs the signal tokens "
                      "([IMG0]...), which this tokenizer lacks: load the NExT-GPT delta");
    ngpt_clear_error();
    nx_sampler_params sp;
    nx_sampler_params_default(&sp);
    sp.temperature = p->temperature;
    sp.top_k = p->top_k;
    sp.top_p = p->top_p;
    sp.repetition_penalty = p->repetition_penalty;
    sp.seed = p->seed;
    ngpt_status st = nx_sampler_create(&t->sampler, &sp, t->V);
    if (st) return nx_err_wrap(st, "ngpt_backbone_turn: ");
    static const char *const k_default_stop[1] = {"###"};
    int32_t eos = nx_llama_tok_eos_id(t->tok);
    nx_stops_params stp;
    memset(&stp, 0, sizeof stp);
    stp.stop_strings = p->stop_strings ? p->stop_strings : k_default_stop;
    stp.n_stop_strings = p->stop_strings ? (size_t)p->n_stop_strings : 1;
    stp.stop_ids = p->stop_ids ? p->stop_ids : &eos;
    stp.n_stop_ids = p->stop_ids ? (size_t)p->n_stop_ids : eos >= 0 ? 1 : 0;
    NX_TRY(nx_stops_create(&t->stops, &stp));
    if (have_sig) {
        nx_signal_params sgp;
        memset(&sgp, 0, sizeof sgp);
        sgp.n_embd = t->H;
        for (int i = 0; i < NX_MODALITY_COUNT; i++) {
            ngpt_modality m = from_nx((nx_modality)i);
            sgp.max_groups[i] = p->max_groups[m];
            sgp.required[i] = (p->require_modalities & NGPT_MODALITY_BIT(m)) != 0;
        }
        NX_TRY(nx_signal_create(&t->sig, &t->sid, &sgp));
    }
    t->dt.tok = t->tok;
    t->dt.sp = nx_llama_tok_sp(t->tok);
    t->dt.n_sp = nx_sp_size(t->dt.sp);
    t->row = nx_malloc((size_t)t->V * sizeof *t->row);
    if (!t->row) return oom();
    /* the prompt: the template's opening, or the continuation after the cached history */
    nx_prompt_media pm[8];
    nx_prompt_media *pmv = prompt_media(media, n_media, pm);
    if (!pmv) return oom();
    nx_prompt_turn pt;
    memset(&pt, 0, sizeof pt);
    pt.user = user_text ? user_text : "";
    pt.user_media = n_media ? pmv : NULL;
    pt.n_user_media = n_media;
    if (s->n_turns == 0) {
        st = nx_prompt_build(&t->prompt, t->tok, t->H, p->system, &pt, 1);
    } else {
        nx_strbuf prefix = {0};
        st = nx_strbuf_append(&prefix, s->pending.s ? s->pending.s : "", s->pending.n);
        if (st == NGPT_OK) st = nx_strbuf_append(&prefix, "\n###", 4);
        if (st == NGPT_OK) st = nx_prompt_build_next(&t->prompt, t->tok, t->H, prefix.s, &pt);
        nx_free(prefix.s);
    }
    if (pmv != pm) nx_free(pmv);
    if (st) return st;
    t->r->n_prompt = (int32_t)nx_prompt_n_positions(t->prompt);
    double t0 = now_ms();
    NX_TRY(eval_prompt(t));
    double t1 = now_ms();
    t->r->prompt_ms = t1 - t0;
    /* the prompt is in the cache: the conversation moves on */
    s->pending.n = 0;
    s->n_turns++;
    s->answer_start = -1;
    st = generate(t);
    if (st == NGPT_OK) st = collect(t);
    t->r->gen_ms = now_ms() - t1;
    return st;
}

NGPT_API ngpt_status ngpt_backbone_turn(ngpt_turn_result **out, ngpt_backbone_session *s, const char *user_text,
                                        const ngpt_turn_media *media, size_t n_media, const ngpt_turn_params *params)
{
    const char *fn = "ngpt_backbone_turn";
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!s) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: s is NULL", fn);
    NX_TRY(nx_session_check_idle(s, fn));
    NX_TRY(check_media(media, n_media, fn));
    turn t;
    memset(&t, 0, sizeof t);
    t.s = s;
    ngpt_turn_params d;
    ngpt_turn_params_default(&d, sizeof d);
    NX_TRY(nx_params_read(&t.p, params, &d, sizeof d, fn));
    NX_TRY(check_params(&t.p));
    t.tok = nx_tokenizer_impl(s->bb->tok);
    if (!t.tok)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: the backbone has no tokenizer (no tokenizer.model next to the weights "
                      "or the delta)", fn);
    t.V = s->bb->m->cfg.vocab;
    t.H = s->bb->m->cfg.hidden;
    t.r = nx_calloc(1, sizeof *t.r);
    if (!t.r) return oom();
    s->in_call = fn; /* on_text may not re-enter the session */
    ngpt_status st = turn_run(&t, user_text, media, n_media);
    s->in_call = NULL;
    turn_free(&t);
    if (st != NGPT_OK) {
        ngpt_turn_result_free(t.r);
        return st;
    }
    *out = t.r;
    return NGPT_OK;
}

/* ---- result ---- */

NGPT_API const char *ngpt_turn_result_text(const ngpt_turn_result *r, size_t *len)
{
    if (len) *len = r ? r->len : 0;
    return r ? r->text : NULL;
}
NGPT_API int32_t ngpt_turn_result_n_groups(const ngpt_turn_result *r) { return r ? r->n_groups : 0; }

NGPT_API ngpt_status ngpt_turn_result_group(const ngpt_turn_result *r, int32_t i, ngpt_modality *modality,
                                            int32_t *n_tokens, const float **hidden, const float **input_embs)
{
    if (!r || i < 0 || i >= r->n_groups)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_turn_result_group: %s group %d (of %d)", r ? "no" : "NULL result,",
                      i, r ? r->n_groups : 0);
    const turn_group *g = &r->groups[i];
    if (modality) *modality = g->modality;
    if (n_tokens) *n_tokens = g->n_tokens;
    if (hidden) *hidden = g->hidden;
    if (input_embs) *input_embs = g->input_embs;
    return NGPT_OK;
}

NGPT_API int32_t ngpt_turn_result_group_required(const ngpt_turn_result *r, int32_t i)
{
    return r && i >= 0 && i < r->n_groups ? r->groups[i].required : 0;
}
NGPT_API ngpt_stop_reason ngpt_turn_result_stop_reason(const ngpt_turn_result *r) { return r ? r->reason : NGPT_STOP_NONE; }
NGPT_API const int32_t *ngpt_turn_result_ids(const ngpt_turn_result *r, int32_t *n)
{
    if (n) *n = r ? r->n_ids : 0;
    return r ? r->ids : NULL;
}
NGPT_API int32_t ngpt_turn_result_n_prompt(const ngpt_turn_result *r) { return r ? r->n_prompt : 0; }
NGPT_API void ngpt_turn_result_timings(const ngpt_turn_result *r, double *prompt_ms, double *generate_ms)
{
    if (prompt_ms) *prompt_ms = r ? r->prompt_ms : 0;
    if (generate_ms) *generate_ms = r ? r->gen_ms : 0;
}

NGPT_API void ngpt_turn_result_free(ngpt_turn_result *r)
{
    if (!r) return;
    for (int32_t g = 0; g < r->n_groups; g++) {
        nx_free(r->groups[g].hidden);
        nx_free(r->groups[g].input_embs);
    }
    nx_free(r->groups);
    nx_free(r->ids);
    nx_free(r->text);
    nx_free(r);
}

/* ---- conversation ---- */

void nx_backbone_session_forget_turns(ngpt_backbone_session *s)
{
    s->n_turns = 0;
    s->pending.n = 0;
    s->answer.n = 0;
    s->answer_start = -1;
}

NGPT_API ngpt_status ngpt_backbone_add_assistant_media(ngpt_backbone_session *s, const ngpt_turn_media *media,
                                                       size_t n_media)
{
    const char *fn = "ngpt_backbone_add_assistant_media";
    if (!s) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: s is NULL", fn);
    NX_TRY(nx_session_check_idle(s, fn));
    if (n_media == 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: n_media is 0", fn);
    NX_TRY(check_media(media, n_media, fn));
    if (s->answer_start < 0 || s->answer_start > s->st->n_past)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: only right after ngpt_backbone_turn (once per answer)", fn);
    const nx_llama_tok *tok = nx_tokenizer_impl(s->bb->tok);
    nx_prompt_media pm[8];
    nx_prompt_media *pmv = prompt_media(media, n_media, pm);
    if (!pmv) return oom();
    nx_prompt_turn pt;
    memset(&pt, 0, sizeof pt);
    pt.assistant = s->answer.s ? s->answer.s : "";
    pt.assistant_media = pmv;
    pt.n_assistant_media = n_media;
    turn t;
    memset(&t, 0, sizeof t);
    t.s = s;
    t.H = s->bb->m->cfg.hidden;
    ngpt_status st = nx_prompt_build_answer(&t.prompt, tok, t.H, &pt);
    if (pmv != pm) nx_free(pmv);
    if (st == NGPT_OK && s->answer_start + (int64_t)nx_prompt_n_positions(t.prompt) > s->st->n_ctx)
        st = nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: the re-written answer does not fit n_ctx %d", fn, s->st->n_ctx);
    if (st == NGPT_OK) {
        /* from here a failure leaves the cache ending where the answer began */
        st = nx_session_truncate(s, s->answer_start);
        if (st == NGPT_OK) st = eval_prompt(&t);
    }
    nx_prompt_free(t.prompt);
    if (st != NGPT_OK) return st;
    s->pending.n = 0;
    s->answer_start = -1;
    return NGPT_OK;
}
