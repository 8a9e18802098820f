/* signal.c — the signal-token group state machine (see signal.h for the rules). */
#include "models/signal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "tokenizer/llama_tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const int32_t group_size[NX_MODALITY_COUNT] = {4, 24, 8};
static const char *const group_prefix[NX_MODALITY_COUNT] = {"IMG", "VID", "AUD"};

struct nx_signal {
    nx_signal_ids    ids;
    nx_signal_params p;
    /* group in progress */
    int              cur_mod;    /* -1 = none */
    int32_t          cur_pos;    /* tokens of the group fed so far */
    int32_t          pending;    /* forced first token from on_stop, -1 = none */
    bool             cur_required;
    float           *cur_hidden; /* (n, n_embd) being filled */
    int32_t          cur_first;
    int32_t          n_fed;
    int32_t          count[NX_MODALITY_COUNT];
    nx_signal_group *groups;
    size_t           n_groups, cap_groups;
};

ngpt_status nx_signal_ids_from_tokenizer(nx_signal_ids *out, const nx_llama_tok *tok)
{
    if (!out || !tok) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_signal_ids_from_tokenizer: NULL argument");
    memset(out, 0, sizeof *out);
    out->img_open = nx_llama_tok_piece_to_id(tok, "<Img>", 5);
    if (out->img_open < 0) return nx_err(NGPT_ERR_NOT_FOUND, "signal tokens: the tokenizer has no \"<Img>\"");
    out->img_close = nx_llama_tok_piece_to_id(tok, "</Img>", 6);
    if (out->img_close < 0) return nx_err(NGPT_ERR_NOT_FOUND, "signal tokens: the tokenizer has no \"</Img>\"");
    for (int m = 0; m < NX_MODALITY_COUNT; m++) {
        out->n[m] = group_size[m];
        for (int k = 0; k < group_size[m]; k++) {
            char piece[16];
            int len = snprintf(piece, sizeof piece, "[%s%d]", group_prefix[m], k);
            int32_t id = nx_llama_tok_piece_to_id(tok, piece, (size_t)len);
            if (id < 0) return nx_err(NGPT_ERR_NOT_FOUND, "signal tokens: the tokenizer has no \"%s\"", piece);
            out->tok[m][k] = id;
        }
    }
    return NGPT_OK;
}

ngpt_status nx_signal_create(nx_signal **out, const nx_signal_ids *ids, const nx_signal_params *p)
{
    if (!out || !ids || !p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_signal_create: NULL argument");
    *out = NULL;
    if (p->n_embd <= 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "signal: n_embd %lld must be > 0", (long long)p->n_embd);
    for (int m = 0; m < NX_MODALITY_COUNT; m++) {
        if (ids->n[m] < 1 || ids->n[m] > NX_SIGNAL_MAX_GROUP)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "signal: %s group size %d outside [1, %d]",
                          nx_modality_name((nx_modality)m), ids->n[m], NX_SIGNAL_MAX_GROUP);
        if (p->max_groups[m] < 0)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "signal: max_groups for %s is %d, must be >= 0",
                          nx_modality_name((nx_modality)m), p->max_groups[m]);
    }
    nx_signal *sm = nx_calloc(1, sizeof *sm);
    if (!sm) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "signal: out of memory");
    sm->ids = *ids;
    sm->p = *p;
    sm->cur_mod = -1;
    sm->pending = -1;
    *out = sm;
    return NGPT_OK;
}

void nx_signal_free(nx_signal *sm)
{
    if (!sm) return;
    for (size_t i = 0; i < sm->n_groups; i++) nx_free(sm->groups[i].hidden);
    nx_free(sm->groups);
    nx_free(sm->cur_hidden);
    nx_free(sm);
}

int32_t nx_signal_forced(const nx_signal *sm)
{
    if (sm->pending >= 0) return sm->pending;
    if (sm->cur_mod >= 0) return sm->ids.tok[sm->cur_mod][sm->cur_pos];
    return -1;
}

/* Which group token id is: modality and index, or -1. */
static int find_group_token(const nx_signal *sm, int32_t id, int32_t *k)
{
    for (int m = 0; m < NX_MODALITY_COUNT; m++)
        for (int32_t j = 0; j < sm->ids.n[m]; j++)
            if (sm->ids.tok[m][j] == id) {
                *k = j;
                return m;
            }
    return -1;
}

bool nx_signal_is_signal(const nx_signal *sm, int32_t id)
{
    int32_t k;
    return id == sm->ids.img_open || id == sm->ids.img_close || find_group_token(sm, id, &k) >= 0;
}

static bool exhausted(const nx_signal *sm, int m)
{
    return sm->p.max_groups[m] > 0 && sm->count[m] >= sm->p.max_groups[m];
}

ngpt_status nx_signal_feed(nx_signal *sm, int32_t id, const float *hidden_row, nx_signal_action *action)
{
    if (!sm || !action) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_signal_feed: NULL argument");
    const int32_t forced = nx_signal_forced(sm);
    if (forced >= 0 && id != forced)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "signal: token %d fed where the group forces token %d", id, forced);
    const size_t row = (size_t)sm->p.n_embd;

    if (sm->cur_mod < 0) {
        int32_t k;
        int m = find_group_token(sm, id, &k);
        if (m < 0) {
            sm->n_fed++;
            *action = (id == sm->ids.img_open || id == sm->ids.img_close) ? NX_SIGNAL_DROPPED : NX_SIGNAL_TEXT;
            return NGPT_OK;
        }
        if (k != 0 || (exhausted(sm, m) && sm->pending < 0)) {
            sm->n_fed++;
            *action = NX_SIGNAL_DROPPED;
            return NGPT_OK;
        }
        if (!hidden_row)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "signal: %s group token %d fed without its hidden row",
                          nx_modality_name((nx_modality)m), id);
        sm->cur_hidden = nx_malloc((size_t)sm->ids.n[m] * row * sizeof(float));
        if (!sm->cur_hidden)
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "signal: out of memory for a %s group of %d x %zu", 
                          nx_modality_name((nx_modality)m), sm->ids.n[m], row);
        sm->cur_mod = m;
        sm->cur_pos = 0;
        sm->cur_first = sm->n_fed;
        sm->cur_required = sm->pending >= 0;
        sm->pending = -1;
    } else if (!hidden_row) {
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "signal: %s group token %d fed without its hidden row",
                      nx_modality_name((nx_modality)sm->cur_mod), id);
    }

    memcpy(sm->cur_hidden + (size_t)sm->cur_pos * row, hidden_row, row * sizeof(float));
    sm->cur_pos++;
    sm->n_fed++;
    *action = NX_SIGNAL_GROUP;
    const int m = sm->cur_mod;
    if (sm->cur_pos == sm->ids.n[m]) {
        if (sm->n_groups == sm->cap_groups) {
            size_t nc = sm->cap_groups ? sm->cap_groups * 2 : 4;
            nx_signal_group *ng = nx_realloc(sm->groups, nc * sizeof *ng);
            if (!ng) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "signal: out of memory for %zu groups", nc);
            sm->groups = ng;
            sm->cap_groups = nc;
        }
        sm->groups[sm->n_groups++] = (nx_signal_group){
            .modality = (nx_modality)m,
            .n_tokens = sm->ids.n[m],
            .first_step = sm->cur_first,
            .required = sm->cur_required,
            .hidden = sm->cur_hidden,
        };
        sm->cur_hidden = NULL;
        sm->cur_mod = -1;
        sm->cur_pos = 0;
        sm->count[m]++;
    }
    return NGPT_OK;
}

int32_t nx_signal_reserve(const nx_signal *sm)
{
    int32_t n = sm->cur_mod >= 0 ? sm->ids.n[sm->cur_mod] - sm->cur_pos : 0;
    for (int m = 0; m < NX_MODALITY_COUNT; m++)
        if (sm->p.required[m] && sm->count[m] == 0 && m != sm->cur_mod) n += sm->ids.n[m];
    return n;
}

void nx_signal_block_unfit(const nx_signal *sm, float *logits, int32_t n, int32_t room)
{
    if (sm->cur_mod >= 0 || sm->pending >= 0) return; /* forced: the logits are not used */
    const int32_t reserve = nx_signal_reserve(sm);
    if (reserve <= 0) return;
    for (int m = 0; m < NX_MODALITY_COUNT; m++) {
        const int32_t first = sm->ids.n[m] > 0 ? sm->ids.tok[m][0] : -1;
        if (first < 0 || first >= n) continue;
        /* a required modality's own group takes its share of the reserve */
        const int32_t rest = reserve - (sm->p.required[m] && sm->count[m] == 0 ? sm->ids.n[m] : 0);
        if ((int64_t)sm->ids.n[m] + rest > room) logits[first] = -INFINITY;
    }
}

int32_t nx_signal_on_stop(nx_signal *sm)
{
    if (sm->cur_mod >= 0 || sm->pending >= 0) return nx_signal_forced(sm);
    for (int m = 0; m < NX_MODALITY_COUNT; m++)
        if (sm->p.required[m] && sm->count[m] == 0) {
            sm->pending = sm->ids.tok[m][0];
            return sm->pending;
        }
    return -1;
}

void nx_signal_suppress(const nx_signal *sm, float *logits, int32_t n)
{
    if (sm->cur_mod >= 0 || sm->pending >= 0) return; /* forced: the logits are not used */
    if (sm->ids.img_open >= 0 && sm->ids.img_open < n) logits[sm->ids.img_open] = -INFINITY;
    if (sm->ids.img_close >= 0 && sm->ids.img_close < n) logits[sm->ids.img_close] = -INFINITY;
    for (int m = 0; m < NX_MODALITY_COUNT; m++)
        for (int32_t k = exhausted(sm, m) ? 0 : 1; k < sm->ids.n[m]; k++)
            if (sm->ids.tok[m][k] >= 0 && sm->ids.tok[m][k] < n) logits[sm->ids.tok[m][k]] = -INFINITY;
}

size_t nx_signal_n_groups(const nx_signal *sm) { return sm->n_groups; }

const nx_signal_group *nx_signal_group_at(const nx_signal *sm, size_t i)
{
    return i < sm->n_groups ? &sm->groups[i] : NULL;
}
