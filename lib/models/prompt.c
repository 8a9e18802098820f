/* prompt.c — the NExT-GPT Vicuna-v0 prompt as ids + soft-token rows (see prompt.h). */
#include "models/prompt.h"

#include "core/alloc.h"
#include "core/error.h"
#include "tokenizer/llama_tokenizer.h"

#include <string.h>

struct nx_prompt {
    nx_prompt_item *items;
    size_t          n_items, cap_items;
    nx_i32vec       ids;       /* every id item's ids, back to back */
    size_t         *id_off;    /* (cap_items) offset of item i's ids in `ids` */
    float         **owned;     /* summed rows */
    size_t          n_owned, cap_owned;
    size_t          n_positions;
};

/* The builder: pending text of the current segment + "drop one leading space" after a tag. */
typedef struct builder {
    nx_prompt          *p;
    const nx_llama_tok *tok;
    int64_t             n_embd;
    nx_strbuf           pend;
    bool                skip_space;
    bool                cont;      /* the next text segment continues the cached history */
    int32_t             bos, img_open, img_close;
} builder;

void nx_prompt_free(nx_prompt *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_owned; i++) nx_free(p->owned[i]);
    nx_free(p->owned);
    nx_free(p->items);
    nx_free(p->id_off);
    nx_free(p->ids.v);
    nx_free(p);
}

static ngpt_status oom(void) { return nx_err(NGPT_ERR_OUT_OF_MEMORY, "prompt: out of memory"); }

/* A new item, or the last one when both are id runs. */
static ngpt_status item_for(nx_prompt *p, nx_prompt_item_kind kind, nx_prompt_item **it)
{
    if (kind == NX_PROMPT_IDS && p->n_items && p->items[p->n_items - 1].kind == NX_PROMPT_IDS) {
        *it = &p->items[p->n_items - 1];
        return NGPT_OK;
    }
    if (p->n_items == p->cap_items) {
        size_t nc = p->cap_items ? p->cap_items * 2 : 8;
        nx_prompt_item *ni = nx_realloc(p->items, nc * sizeof *ni);
        if (!ni) return oom();
        p->items = ni;
        size_t *no = nx_realloc(p->id_off, nc * sizeof *no);
        if (!no) return oom();
        p->id_off = no;
        p->cap_items = nc;
    }
    *it = &p->items[p->n_items];
    memset(*it, 0, sizeof **it);
    (*it)->kind = kind;
    p->id_off[p->n_items] = p->ids.n;
    p->n_items++;
    return NGPT_OK;
}

static ngpt_status push_id(builder *b, int32_t id)
{
    nx_prompt_item *it = NULL;
    NX_TRY(item_for(b->p, NX_PROMPT_IDS, &it));
    NX_TRY(nx_i32vec_push(&b->p->ids, id));
    it->n_ids++;
    b->p->n_positions++;
    return NGPT_OK;
}

ngpt_status nx_prompt_encode_continuation(const nx_llama_tok *tok, const char *text, size_t len, nx_i32vec *out)
{
    /* "\n" is a byte-fallback piece that no merge involves, so the text after it is split as
     * inside one longer string; drop the "\n" and the dummy-prefix "▁" before it. */
    nx_strbuf t = {0};
    nx_i32vec v = {0};
    ngpt_status st = nx_strbuf_append(&t, "\n", 1);
    if (st == NGPT_OK && len) st = nx_strbuf_append(&t, text, len);
    if (st == NGPT_OK) st = nx_llama_tok_encode(tok, t.s, t.n, false, &v);
    size_t skip = 0;
    if (st == NGPT_OK) {
        int32_t nl = nx_llama_tok_piece_to_id(tok, "<0x0A>", 6);
        int32_t sp = nx_llama_tok_piece_to_id(tok, "\xe2\x96\x81", 3);
        if (v.n >= 1 && v.v[0] == nl) skip = 1;
        else if (v.n >= 2 && v.v[0] == sp && v.v[1] == nl) skip = 2;
    }
    if (st == NGPT_OK && skip == 0) {  /* an unusual vocabulary: plain encode */
        v.n = 0;
        st = nx_llama_tok_encode(tok, text, len, false, &v);
    }
    for (size_t i = skip; st == NGPT_OK && i < v.n; i++) st = nx_i32vec_push(out, v.v[i]);
    nx_free(t.s);
    nx_free(v.v);
    return st;
}

/* Flush the pending text as [BOS] + tokens (nothing when empty); a continuation segment has no
 * BOS and no dummy-prefix space. */
static ngpt_status flush_text(builder *b)
{
    if (b->pend.n == 0) {
        b->cont = false;
        return NGPT_OK;
    }
    if (!b->cont) NX_TRY(push_id(b, b->bos));
    nx_prompt_item *it;
    NX_TRY(item_for(b->p, NX_PROMPT_IDS, &it));
    size_t before = b->p->ids.n;
    ngpt_status st = b->cont ? nx_prompt_encode_continuation(b->tok, b->pend.s, b->pend.n, &b->p->ids)
                             : nx_llama_tok_encode(b->tok, b->pend.s, b->pend.n, false, &b->p->ids);
    b->cont = false;
    if (st != NGPT_OK) return nx_err_wrap(st, "prompt: tokenizing a text segment: ");
    it = &b->p->items[b->p->n_items - 1];
    it->n_ids += b->p->ids.n - before;
    b->p->n_positions += b->p->ids.n - before;
    b->pend.n = 0;
    if (b->pend.s) b->pend.s[0] = 0;
    return NGPT_OK;
}

static ngpt_status text(builder *b, const char *s)
{
    if (!s || !*s) return NGPT_OK;
    if (b->skip_space && *s == ' ') s++;
    b->skip_space = false;
    if (*s && nx_strbuf_append(&b->pend, s, strlen(s)) != NGPT_OK) return oom();
    return NGPT_OK;
}

static ngpt_status media(builder *b, const nx_prompt_media *m, size_t turn, const char *side, size_t k)
{
    if (!m->rows || m->n_rows < 1)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "prompt: turn %zu %s medium %zu has no rows (n_rows %d)", turn, side,
                      k, m->n_rows);
    if ((unsigned)m->modality >= NX_MODALITY_COUNT)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "prompt: turn %zu %s medium %zu has modality %d", turn, side, k,
                      (int)m->modality);
    /* the tag takes the space before it (" <") ... */
    if (b->pend.n && b->pend.s[b->pend.n - 1] == ' ') b->pend.s[--b->pend.n] = 0;
    NX_TRY(flush_text(b));
    NX_TRY(push_id(b, b->img_open));

    const float *row = m->rows;
    if (m->n_rows > 1) {
        nx_prompt *p = b->p;
        if (p->n_owned == p->cap_owned) {
            size_t nc = p->cap_owned ? p->cap_owned * 2 : 4;
            float **no = nx_realloc(p->owned, nc * sizeof *no);
            if (!no) return oom();
            p->owned = no;
            p->cap_owned = nc;
        }
        size_t ne = (size_t)b->n_embd;
        float *sum = nx_malloc(ne * sizeof *sum);
        if (!sum) return oom();
        p->owned[p->n_owned++] = sum;
        memcpy(sum, m->rows, ne * sizeof *sum);
        for (int32_t r = 1; r < m->n_rows; r++)
            for (size_t j = 0; j < ne; j++) sum[j] += m->rows[(size_t)r * ne + j];
        row = sum;
    }
    nx_prompt_item *it;
    NX_TRY(item_for(b->p, NX_PROMPT_EMBED, &it));
    it->row = row;
    it->modality = m->modality;
    b->p->n_positions++;
    NX_TRY(push_id(b, b->img_close));
    /* ... and the space after it ("> ") */
    b->skip_space = true;
    return NGPT_OK;
}

static ngpt_status build(builder *b, const char *system, const nx_prompt_turn *turns, size_t n_turns)
{
    if (system && *system) {
        NX_TRY(text(b, system));
        NX_TRY(text(b, "\n"));
    }
    for (size_t i = 0; i < n_turns; i++) {
        const nx_prompt_turn *t = &turns[i];
        const bool last = i + 1 == n_turns;
        if (!last && !t->assistant)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "prompt: turn %zu of %zu has no answer; only the last may lack one",
                          i, n_turns);
        if (last && t->assistant)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "prompt: the last turn (%zu) already has an answer", i);
        if ((t->n_user_media && !t->user_media) || (t->n_assistant_media && !t->assistant_media))
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "prompt: turn %zu: NULL media with a nonzero count", i);
        if (last && t->n_assistant_media)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "prompt: the last turn (%zu) cannot have assistant media", i);

        NX_TRY(text(b, i == 0 ? "### Human: " : " Human: "));
        for (size_t k = 0; k < t->n_user_media; k++) {
            NX_TRY(media(b, &t->user_media[k], i, "user", k));
            NX_TRY(text(b, " "));
        }
        if (last) {
            NX_TRY(text(b, " "));
            NX_TRY(text(b, t->user));
            NX_TRY(text(b, "\n### Assistant:"));
        } else {
            NX_TRY(text(b, t->user));
            NX_TRY(text(b, "\n### Assistant: "));
            for (size_t k = 0; k < t->n_assistant_media; k++) {
                NX_TRY(media(b, &t->assistant_media[k], i, "assistant", k));
                NX_TRY(text(b, " "));
            }
            NX_TRY(text(b, t->assistant));
            NX_TRY(text(b, "\n###"));
        }
    }
    return flush_text(b);
}

/* Modes of build_any: the whole prompt, the next turn after a cached history, or a re-written
 * answer with assistant media. */
typedef enum build_mode { MODE_FULL, MODE_NEXT, MODE_ANSWER } build_mode;

static ngpt_status build_next(builder *b, const char *prefix, const nx_prompt_turn *t)
{
    if (t->n_user_media && !t->user_media)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "prompt: NULL media with a nonzero count");
    b->cont = true;
    NX_TRY(text(b, prefix));
    NX_TRY(text(b, " Human: "));
    for (size_t k = 0; k < t->n_user_media; k++) {
        NX_TRY(media(b, &t->user_media[k], 0, "user", k));
        NX_TRY(text(b, " "));
    }
    NX_TRY(text(b, " "));
    NX_TRY(text(b, t->user));
    NX_TRY(text(b, "\n### Assistant:"));
    return flush_text(b);
}

static ngpt_status build_answer(builder *b, const nx_prompt_turn *t)
{
    if (!t->n_assistant_media || !t->assistant_media)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "prompt: no assistant media");
    NX_TRY(text(b, " "));
    for (size_t k = 0; k < t->n_assistant_media; k++) {
        NX_TRY(media(b, &t->assistant_media[k], 0, "assistant", k));
        NX_TRY(text(b, " "));
    }
    NX_TRY(text(b, t->assistant));
    return flush_text(b);
}

static ngpt_status build_any(nx_prompt **out, const nx_llama_tok *tok, int64_t n_embd, const char *system,
                             const nx_prompt_turn *turns, size_t n_turns, build_mode mode)
{
    if (!out || !tok || !turns) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_prompt_build: NULL argument");
    *out = NULL;
    if (n_turns == 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "prompt: no turns");
    if (n_embd <= 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "prompt: n_embd %lld must be > 0", (long long)n_embd);
    builder b = {.tok = tok, .n_embd = n_embd};
    b.bos = nx_llama_tok_bos_id(tok);
    b.img_open = nx_llama_tok_piece_to_id(tok, "<Img>", 5);
    b.img_close = nx_llama_tok_piece_to_id(tok, "</Img>", 6);
    if (b.bos < 0) return nx_err(NGPT_ERR_NOT_FOUND, "prompt: the tokenizer has no BOS token");
    bool any_media = false;
    for (size_t i = 0; i < n_turns; i++) any_media |= turns[i].n_user_media || turns[i].n_assistant_media;
    if (any_media && (b.img_open < 0 || b.img_close < 0))
        return nx_err(NGPT_ERR_NOT_FOUND, "prompt: media given but the tokenizer has no \"<Img>\"/\"</Img>\" tokens");
    b.p = nx_calloc(1, sizeof *b.p);
    if (!b.p) return oom();
    ngpt_status st = mode == MODE_FULL ? build(&b, system, turns, n_turns)
                   : mode == MODE_NEXT ? build_next(&b, system, turns) : build_answer(&b, turns);
    nx_free(b.pend.s);
    if (st != NGPT_OK) {
        nx_prompt_free(b.p);
        return st;
    }
    for (size_t i = 0; i < b.p->n_items; i++)
        if (b.p->items[i].kind == NX_PROMPT_IDS) b.p->items[i].ids = b.p->ids.v + b.p->id_off[i];
    *out = b.p;
    return NGPT_OK;
}

ngpt_status nx_prompt_build(nx_prompt **out, const nx_llama_tok *tok, int64_t n_embd, const char *system,
                            const nx_prompt_turn *turns, size_t n_turns)
{
    return build_any(out, tok, n_embd, system, turns, n_turns, MODE_FULL);
}

ngpt_status nx_prompt_build_next(nx_prompt **out, const nx_llama_tok *tok, int64_t n_embd, const char *prefix,
                                 const nx_prompt_turn *turn)
{
    return build_any(out, tok, n_embd, prefix ? prefix : "", turn, 1, MODE_NEXT);
}

ngpt_status nx_prompt_build_answer(nx_prompt **out, const nx_llama_tok *tok, int64_t n_embd,
                                   const nx_prompt_turn *turn)
{
    return build_any(out, tok, n_embd, NULL, turn, 1, MODE_ANSWER);
}

size_t nx_prompt_n_items(const nx_prompt *p) { return p->n_items; }
const nx_prompt_item *nx_prompt_item_at(const nx_prompt *p, size_t i) { return i < p->n_items ? &p->items[i] : NULL; }
size_t nx_prompt_n_positions(const nx_prompt *p) { return p->n_positions; }
