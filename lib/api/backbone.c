/* backbone.c — ngpt_backbone (weights, shared, read-only) and ngpt_backbone_session (one
 * sequence: KV cache, scratch, outputs) behind nextgpt.h, over lib/models/llama.c. */
#include "backbone_impl.h"
#include "context.h"

#include "../core/alloc.h"
#include "../core/error.h"
#include "../core/params.h"
#include "../models/llama.h"
#include "../models/sampler.h"
#include "../ops/cpu/cpu_ops.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NGPT_DELTA_PREFIX "llama_model.base_model.model."

/* ---- backbone ---- */

/* The tokenizer that goes with the weights: the delta folder's (it has the added tokens) when a
 * delta is given and its folder has tokenizer.model, else the model folder's, else none. Its
 * vocabulary must fit the embedding rows; with a delta it must equal them (V + 38). */
static ngpt_status open_tokenizer(ngpt_backbone *bb, const char *model_dir, const char *delta_path)
{
    char dir[4096], file[4200];
    struct stat sb;
    dir[0] = 0;
    if (delta_path) {
        snprintf(dir, sizeof dir, "%s", delta_path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
        snprintf(file, sizeof file, "%s/tokenizer.model", dir);
        if (stat(file, &sb) != 0) dir[0] = 0;
    }
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", model_dir);
        snprintf(file, sizeof file, "%s/tokenizer.model", dir);
        if (stat(file, &sb) != 0) return NGPT_OK;
    }
    NX_TRY(ngpt_tokenizer_create(&bb->tok, dir));
    int32_t tv = ngpt_tokenizer_vocab_size(bb->tok), mv = bb->m->cfg.vocab;
    if (tv > mv || (delta_path && tv != mv))
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: the tokenizer has %d tokens but the model's embed_tokens/lm_head "
                      "have %d rows (vocab mismatch%s)", dir, tv, mv,
                      delta_path ? ": the delta's added tokens must be exactly its extra rows" : "");
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_backbone_params_default(ngpt_backbone_params *p, size_t struct_size)
{
    ngpt_backbone_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.lora_merge = -1;
    d.compute_dtype = NGPT_DTYPE_F32;
    return nx_params_default(p, struct_size, &d, sizeof d, "ngpt_backbone_params_default");
}

NGPT_API ngpt_status ngpt_backbone_create(ngpt_backbone **out, ngpt_context *ctx, const char *model_dir,
                                          const ngpt_backbone_params *params)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_create: out is NULL");
    *out = NULL;
    if (!ctx) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_create: ctx is NULL");
    if (!model_dir) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_create: model_dir is NULL");
    NX_HOLD_DEVICE(ctx);
    ngpt_backbone_params d, p;
    ngpt_backbone_params_default(&d, sizeof d);
    NX_TRY(nx_params_read(&p, params, &d, sizeof d, "ngpt_backbone_create"));
    if (p.n_ctx < 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_create: n_ctx %d < 0", p.n_ctx);
    if (p.flags & ~NGPT_BACKBONE_FLAG_CUDA_GRAPH)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_create: unknown flag bits 0x%x",
                      p.flags & ~NGPT_BACKBONE_FLAG_CUDA_GRAPH);
    if (p.lora_r < 0 || !(p.lora_alpha >= 0 && p.lora_alpha < 1e30f))  /* NaN and inf too */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_create: lora_r %d / lora_alpha %g: not >= 0 and "
                      "finite", p.lora_r, (double)p.lora_alpha);
    if (p.lora_merge < -1 || p.lora_merge > 1)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_create: lora_merge %d is not -1, 0 or 1", p.lora_merge);

    nx_llama_load_params lp;
    memset(&lp, 0, sizeof lp);
    lp.delta_path = p.delta_path;
    lp.delta_prefix = p.delta_key_prefix ? p.delta_key_prefix : NGPT_DELTA_PREFIX;
    lp.lora_r = p.lora_r;
    lp.lora_alpha = p.lora_alpha;
    /* auto: unmerged on the CPU, where merging would own an F32 copy of every q/k/v/o (8 GiB for
     * Vicuna-7B) next to the mapped checkpoint, for two rank-32 linears per projection (~1 %);
     * merged on CUDA, where the weights are uploaded anyway */
    lp.lora_merge = p.lora_merge < 0 ? ctx->be->kind != NGPT_BACKEND_CPU : p.lora_merge != 0;
    lp.progress = p.progress;
    lp.progress_user = p.progress_user_data;
    lp.compute_dtype = p.compute_dtype;
    lp.decode_graph = (p.flags & NGPT_BACKBONE_FLAG_CUDA_GRAPH) != 0;

    ngpt_backbone *bb = nx_calloc(1, sizeof *bb);
    if (!bb) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_backbone_create: out of memory");
    bb->ctx = ctx;
    if (pthread_mutex_init(&bb->mu, NULL) != 0) {
        nx_free(bb);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_backbone_create: cannot create a mutex");
    }
    ngpt_status st = nx_llama_load(&bb->m, ctx->be, ctx->cpu, model_dir, &lp);
    if (!st) st = open_tokenizer(bb, model_dir, p.delta_path);
    if (st) {
        ngpt_backbone_free(bb);
        return st;
    }
    bb->n_ctx = p.n_ctx ? p.n_ctx : bb->m->cfg.max_pos;
    *out = bb;
    return NGPT_OK;
}

NGPT_API void ngpt_backbone_free(ngpt_backbone *bb)
{
    if (!bb) return;
    NX_HOLD_DEVICE(bb->ctx); /* the context outlives its handles */
    ngpt_tokenizer_free(bb->tok);
    nx_llama_free(bb->m);
    pthread_mutex_destroy(&bb->mu);
    nx_free(bb);
}

NGPT_API int32_t ngpt_backbone_n_vocab(const ngpt_backbone *bb) { return bb ? bb->m->cfg.vocab : 0; }
NGPT_API int32_t ngpt_backbone_n_embd(const ngpt_backbone *bb) { return bb ? bb->m->cfg.hidden : 0; }
NGPT_API int32_t ngpt_backbone_n_layer(const ngpt_backbone *bb) { return bb ? bb->m->cfg.n_layers : 0; }
NGPT_API int32_t ngpt_backbone_n_ctx(const ngpt_backbone *bb) { return bb ? bb->n_ctx : 0; }
NGPT_API const ngpt_tokenizer *ngpt_backbone_tokenizer(const ngpt_backbone *bb) { return bb ? bb->tok : NULL; }

NGPT_API ngpt_status ngpt_backbone_embed_tokens(float *rows, const ngpt_backbone *bb, const int32_t *ids, int32_t n)
{
    if (!rows || !bb || (!ids && n > 0) || n < 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_embed_tokens: NULL argument or n %d < 0", n);
    const nx_llama *m = bb->m;
    const int32_t V = m->cfg.vocab;
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_embed_tokens: token id %d at position %d is outside "
                          "the vocabulary [0, %d)", ids[i], i, V);
    if (n == 0) return NGPT_OK;
    /* embed_tokens is a host view on every backend: read-only, no lock needed */
    int64_t ne_i[1] = {n}, ne_y[2] = {n, m->cfg.hidden};
    nx_tensor tid = nx_view(NGPT_DTYPE_I32, 1, ne_i, (void *)ids, NULL), y = nx_view(NGPT_DTYPE_F32, 2, ne_y, rows, NULL);
    return nx_op_get_rows(m->cpu, &y, &m->embed, &tid);
}

/* ---- session ---- */

ngpt_status nx_backbone_eval_locked(ngpt_backbone_session *s, int32_t n, const int32_t *ids, const float *embeds,
                                    const uint8_t *is_embed, nx_llama_out out)
{
    const int32_t p0 = s->st->n_past;
    NX_HOLD_DEVICE(s->bb->ctx); /* before bb->mu, as every caller that takes both */
    pthread_mutex_lock(&s->bb->mu);
    /* compute dtype BF16 on the CPU: this thread's linears in BF16 for this call only */
    const bool scoped = s->bb->m->cpu_bf16;
    nx_cpu_bf16_scope prev = {0};
    if (scoped) prev = nx_cpu_bf16_scope_begin(s->bb->m->be, true);
    ngpt_status st = nx_llama_eval(s->st, n, ids, embeds, is_embed, out);
    if (scoped) nx_cpu_bf16_scope_end(prev);
    pthread_mutex_unlock(&s->bb->mu);
    if (st == NGPT_OK) /* what the cache holds: ids, -1 for embedding rows */
        for (int32_t i = 0; i < n && p0 + i < s->st->n_ctx; i++)
            s->hist[p0 + i] = (!ids || (is_embed && is_embed[i])) ? -1 : ids[i];
    return st;
}
#define eval_locked nx_backbone_eval_locked

NGPT_API ngpt_status ngpt_backbone_session_params_default(ngpt_backbone_session_params *p, size_t struct_size)
{
    ngpt_backbone_session_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    return nx_params_default(p, struct_size, &d, sizeof d, "ngpt_backbone_session_params_default");
}

NGPT_API ngpt_status ngpt_backbone_session_create(ngpt_backbone_session **out, ngpt_backbone *bb,
                                                  const ngpt_backbone_session_params *params)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_session_create: out is NULL");
    *out = NULL;
    if (!bb) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_session_create: bb is NULL");
    NX_HOLD_DEVICE(bb->ctx);
    ngpt_backbone_session_params d, p;
    ngpt_backbone_session_params_default(&d, sizeof d);
    NX_TRY(nx_params_read(&p, params, &d, sizeof d, "ngpt_backbone_session_create"));
    if (p.n_ctx < 0 || p.n_ctx > bb->n_ctx)  /* the backbone's n_ctx is the largest (header) */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_session_create: n_ctx %d is not in 0..%d (the "
                      "backbone's n_ctx)", p.n_ctx, bb->n_ctx);
    ngpt_backbone_session *s = nx_calloc(1, sizeof *s);
    if (!s) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_backbone_session_create: out of memory");
    s->bb = bb;
    s->answer_start = -1;
    pthread_mutex_lock(&bb->mu);
    ngpt_status st = nx_llama_state_create(&s->st, bb->m, p.n_ctx ? p.n_ctx : bb->n_ctx);
    pthread_mutex_unlock(&bb->mu);
    if (!st) {
        s->hist = nx_malloc((size_t)s->st->n_ctx * sizeof *s->hist);
        if (!s->hist) st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_backbone_session_create: out of memory");
    }
    if (st) {
        pthread_mutex_lock(&bb->mu);
        nx_llama_state_free(s->st);
        pthread_mutex_unlock(&bb->mu);
        nx_free(s);
        return st;
    }
    *out = s;
    return NGPT_OK;
}

NGPT_API void ngpt_backbone_session_free(ngpt_backbone_session *s)
{
    if (!s) return;
    NX_HOLD_DEVICE(s->bb->ctx);
    pthread_mutex_lock(&s->bb->mu);
    nx_llama_state_free(s->st);
    pthread_mutex_unlock(&s->bb->mu);
    nx_free(s->hist);
    nx_free(s->pending.s);
    nx_free(s->answer.s);
    nx_free(s);
}

NGPT_API int32_t ngpt_backbone_session_n_past(const ngpt_backbone_session *s) { return s ? s->st->n_past : 0; }

NGPT_API int32_t ngpt_backbone_session_n_ctx(const ngpt_backbone_session *s) { return s ? s->st->n_ctx : 0; }

ngpt_status nx_session_check_idle(const ngpt_backbone_session *s, const char *fn)
{
    if (!s->in_call) return NGPT_OK;
    return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: called from inside this session's %s (its callback); the session "
                  "is in use until that call returns", fn, s->in_call);
}

NGPT_API ngpt_status ngpt_backbone_session_reset(ngpt_backbone_session *s)
{
    if (!s) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_session_reset: s is NULL");
    NX_TRY(nx_session_check_idle(s, "ngpt_backbone_session_reset"));
    NX_TRY(nx_session_truncate(s, 0));
    nx_backbone_session_forget_turns(s);
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_backbone_session_truncate(ngpt_backbone_session *s, int32_t n_past)
{
    if (!s) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_session_truncate: s is NULL");
    NX_TRY(nx_session_check_idle(s, "ngpt_backbone_session_truncate"));
    return nx_session_truncate(s, n_past);
}

ngpt_status nx_session_truncate(ngpt_backbone_session *s, int32_t n_past)
{
    if (n_past < 0 || n_past > s->st->n_past)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_session_truncate: n_past %d outside [0, %d]", n_past,
                      s->st->n_past);
    s->st->n_past = n_past;
    s->st->n_out = 0;
    if (n_past < s->answer_start) s->answer_start = -1; /* the answer add_assistant_media would re-write */
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_backbone_batch_default(ngpt_backbone_batch *b, size_t struct_size)
{
    ngpt_backbone_batch d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.output = NGPT_OUTPUT_LAST;
    return nx_params_default(b, struct_size, &d, sizeof d, "ngpt_backbone_batch_default");
}

NGPT_API ngpt_status ngpt_backbone_eval(ngpt_backbone_session *s, const ngpt_backbone_batch *batch)
{
    if (!s || !batch) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_backbone_eval: %s is NULL", s ? "batch" : "s");
    NX_TRY(nx_session_check_idle(s, "ngpt_backbone_eval"));
    ngpt_backbone_batch d, b;
    ngpt_backbone_batch_default(&d, sizeof d);
    NX_TRY(nx_params_read(&b, batch, &d, sizeof d, "ngpt_backbone_eval"));
    const int32_t n_past = s->st->n_past;
    ngpt_status st = eval_locked(s, b.n_tokens, b.ids, b.embeds, b.is_embed, (nx_llama_out)b.output);
    if (s->st->n_past != n_past) s->answer_start = -1; /* add_assistant_media would drop what followed the answer */
    return st;
}

NGPT_API const float *ngpt_backbone_get_logits(const ngpt_backbone_session *s, int32_t *n_rows)
{
    int32_t n = s ? s->st->n_out : 0;
    if (n_rows) *n_rows = n;
    return n ? s->st->h_logits : NULL;
}

NGPT_API const float *ngpt_backbone_get_hidden(const ngpt_backbone_session *s, int32_t *n_rows)
{
    int32_t n = s ? s->st->n_out : 0;
    if (n_rows) *n_rows = n;
    return n ? s->st->h_hidden : NULL;
}

/* ---- generation ---- */

NGPT_API ngpt_status ngpt_generate_params_default(ngpt_generate_params *p, size_t struct_size)
{
    ngpt_generate_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.max_new_tokens = 16;
    d.temperature = 0.0f;
    d.top_k = 0;
    d.top_p = 1.0f;
    d.repetition_penalty = 1.0f;
    return nx_params_default(p, struct_size, &d, sizeof d, "ngpt_generate_params_default");
}

static ngpt_status generate(int32_t *n_out, ngpt_backbone_session *s, const ngpt_generate_params *params, int32_t *ids,
                            float *hidden, bool greedy, const char *fn)
{
    if (n_out) *n_out = 0;  /* outputs are zero on every failure */
    if (!n_out || !s || !params) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    ngpt_generate_params d, p;
    ngpt_generate_params_default(&d, sizeof d);
    NX_TRY(nx_params_read(&p, params, &d, sizeof d, fn));
    if (!ids && p.max_new_tokens > 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: ids is NULL", fn);
    if (p.max_new_tokens < 0 || p.n_stop_ids < 0 || (p.n_stop_ids > 0 && !p.stop_ids))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: max_new_tokens %d / n_stop_ids %d", fn, p.max_new_tokens,
                      p.n_stop_ids);
    if (greedy) p.temperature = 0.0f, p.repetition_penalty = 1.0f;
    nx_llama_state *st = s->st;
    if (p.max_new_tokens > 0 && st->n_out == 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: no logits to start from (eval a prompt with NGPT_OUTPUT_LAST or "
                      "ALL first)", fn);
    const int32_t V = s->bb->m->cfg.vocab, H = s->bb->m->cfg.hidden;
    /* the shared host sampler (lib/models/sampler.h): transformers' processor order, seeded
     * xoshiro256**; it validates the sampling fields */
    nx_sampler_params sp;
    nx_sampler_params_default(&sp);
    sp.temperature = p.temperature;
    sp.top_k = p.top_k;
    sp.top_p = p.top_p;
    sp.repetition_penalty = p.repetition_penalty;
    sp.seed = p.seed;
    nx_sampler *sm = NULL;
    ngpt_status ret = nx_sampler_create(&sm, &sp, V);
    if (ret) return nx_err_wrap(ret, "%s: ", fn);
    for (int32_t j = 0; j < p.max_new_tokens; j++) {
        const int32_t last = st->n_out - 1;
        int32_t tok = -1;
        ret = nx_sampler_sample(sm, st->h_logits + (size_t)last * (size_t)V, V, ids, (size_t)j, &tok);
        if (ret) break;
        ids[j] = tok;
        if (hidden) memcpy(hidden + (size_t)j * (size_t)H, st->h_hidden + (size_t)last * (size_t)H, (size_t)H * sizeof(float));
        *n_out = j + 1;
        if (p.on_token && !p.on_token(tok, p.user_data)) {
            ret = nx_err(NGPT_ERR_CANCELLED, "%s: cancelled by the token callback after %d tokens", fn, j + 1);
            break;
        }
        bool stop = false;
        for (int32_t k = 0; k < p.n_stop_ids; k++) stop = stop || p.stop_ids[k] == tok;
        if (stop || j + 1 == p.max_new_tokens) break;
        ret = eval_locked(s, 1, &tok, NULL, NULL, NX_LLAMA_OUT_LAST);
        if (ret) break;
    }
    nx_sampler_free(sm);
    return ret;
}

/* generate() with the session marked in use for its token callback's duration. */
static ngpt_status generate_marked(int32_t *n_out, ngpt_backbone_session *s, const ngpt_generate_params *params,
                                   int32_t *ids, float *hidden, bool greedy, const char *fn)
{
    if (s) {
        NX_TRY(nx_session_check_idle(s, fn));
        s->in_call = fn;
    }
    const int32_t n_past = s ? s->st->n_past : 0;
    ngpt_status st = generate(n_out, s, params, ids, hidden, greedy, fn);
    if (s) {
        s->in_call = NULL;
        if (s->st->n_past != n_past) s->answer_start = -1; /* as ngpt_backbone_eval */
    }
    return st;
}

NGPT_API ngpt_status ngpt_backbone_generate(int32_t *n_out, ngpt_backbone_session *s, const ngpt_generate_params *params,
                                            int32_t *ids, float *hidden)
{
    return generate_marked(n_out, s, params, ids, hidden, false, "ngpt_backbone_generate");
}

NGPT_API ngpt_status ngpt_backbone_generate_greedy(int32_t *n_out, ngpt_backbone_session *s,
                                                   const ngpt_generate_params *params, int32_t *ids, float *hidden)
{
    return generate_marked(n_out, s, params, ids, hidden, true, "ngpt_backbone_generate_greedy");
}
