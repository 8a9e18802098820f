/* stage_llama.c — ngpt-case stages of the backbone (shared/golden/llm/STAGES.md), through the
 * public ngpt_backbone_* API:
 *
 *   llama.logits           inputs ids I32 [n]                 -> logits [n, V], hidden [n, H]
 *   llama.logits_embeds    inputs embeds F32 [n, H]           -> logits [n, V], hidden [n, H]
 *   llama.generate_greedy  inputs ids | embeds; params max_new_tokens, stop_ids
 *                                                             -> ids I32 [m], hidden F32 [m, H]
 *   llama.lora             params delta, lora_r, lora_alpha, target_modules, key_prefix;
 *                          inputs ids                         -> logits [n, V+38], hidden [n, H]
 */
#include "stage_llama.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

typedef struct llama_run {
    ngpt_backbone         *bb;
    ngpt_backbone_session *s;
    int32_t               *ids;
    float                 *embeds;
    int32_t                n;
    char                  *delta;
} llama_run;

static void run_free(llama_run *r)
{
    ngpt_backbone_session_free(r->s);
    ngpt_backbone_free(r->bb);
    nx_free(r->ids);
    nx_free(r->embeds);
    nx_free(r->delta);
    memset(r, 0, sizeof *r);
}

static ngpt_status run_open(llama_run *r, const case_ctx *c, const ngpt_backbone_params *bp)
{
    if (!c->model_dir)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s/case.json: \"model\" (the checkpoint folder) is missing", c->case_dir);
    NX_TRY(ngpt_backbone_create(&r->bb, c->ctx, c->model_dir, bp));
    return ngpt_backbone_session_create(&r->s, r->bb, NULL);
}

/* The prompt: inputs "ids" I32 [n] or "embeds" F32 [n, H] (exactly one). */
static ngpt_status run_inputs(llama_run *r, const case_ctx *c)
{
    bool has_ids = c->inputs && nx_weights_find(c->inputs, "ids");
    bool has_emb = c->inputs && nx_weights_find(c->inputs, "embeds");
    if (has_ids == has_emb)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: inputs must hold exactly one of 'ids' and 'embeds'", c->case_dir);
    int rank;
    int64_t shape[NGPT_MAX_DIMS];
    if (has_ids) {
        NX_TRY(case_input_i32(c, "ids", &r->ids, &rank, shape));
        if (rank != 1) return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: input 'ids' must be [n]", c->case_dir);
    } else {
        NX_TRY(case_input_f32(c, "embeds", &r->embeds, &rank, shape));
        if (rank != 2 || shape[1] != ngpt_backbone_n_embd(r->bb))
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: input 'embeds' must be [n, %d]", c->case_dir,
                          ngpt_backbone_n_embd(r->bb));
    }
    if (shape[0] < 1 || shape[0] > INT32_MAX) return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: empty prompt", c->case_dir);
    r->n = (int32_t)shape[0];
    return NGPT_OK;
}

static ngpt_status run_eval(llama_run *r, ngpt_output_mode mode)
{
    ngpt_backbone_batch b;
    ngpt_backbone_batch_default(&b, sizeof b);
    b.n_tokens = r->n;
    b.ids = r->ids;
    b.embeds = r->embeds;
    b.output = mode;
    return ngpt_backbone_eval(r->s, &b);
}

/* logits [n, V] and hidden [n, H] of every prompt position. */
static ngpt_status logits_stage(const case_ctx *c, case_out *out, const ngpt_backbone_params *bp)
{
    llama_run r;
    memset(&r, 0, sizeof r);
    ngpt_status st = run_open(&r, c, bp);
    if (!st) st = run_inputs(&r, c);
    if (!st) st = run_eval(&r, NGPT_OUTPUT_ALL);
    if (!st) {
        int32_t rows;
        const float *lg = ngpt_backbone_get_logits(r.s, &rows);
        const float *hd = ngpt_backbone_get_hidden(r.s, &rows);
        int64_t ls[2] = {rows, ngpt_backbone_n_vocab(r.bb)}, hs[2] = {rows, ngpt_backbone_n_embd(r.bb)};
        st = case_out_add(out, "logits", NGPT_DTYPE_F32, 2, ls, lg);
        if (!st) st = case_out_add(out, "hidden", NGPT_DTYPE_F32, 2, hs, hd);
    }
    run_free(&r);
    return st;
}

ngpt_status case_llama_logits(const case_ctx *c, case_out *out) { return logits_stage(c, out, NULL); }

ngpt_status case_llama_logits_embeds(const case_ctx *c, case_out *out) { return logits_stage(c, out, NULL); }

ngpt_status case_llama_generate_greedy(const case_ctx *c, case_out *out)
{
    int64_t max_new = 16, stops64[64];
    size_t n_stops = 0;
    const char *file = "case.json params";
    NX_TRY(nx_json_int_opt(c->params, "max_new_tokens", file, 16, &max_new));
    if (json_object_get(c->params, "stop_ids")) NX_TRY(nx_json_int_array(c->params, "stop_ids", file, stops64, 64, &n_stops));
    if (max_new < 0 || max_new > 1 << 20) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: max_new_tokens %lld", c->case_dir, (long long)max_new);
    int32_t stops[64];
    for (size_t i = 0; i < n_stops; i++) stops[i] = (int32_t)stops64[i];

    llama_run r;
    memset(&r, 0, sizeof r);
    int32_t *gen = NULL;
    float *hid = NULL;
    ngpt_status st = run_open(&r, c, NULL);
    if (!st) st = run_inputs(&r, c);
    if (!st) st = run_eval(&r, NGPT_OUTPUT_LAST);
    const int32_t H = ngpt_backbone_n_embd(r.bb);
    if (!st) {
        gen = nx_malloc((size_t)(max_new ? max_new : 1) * sizeof *gen);
        hid = nx_malloc((size_t)(max_new ? max_new : 1) * (size_t)H * sizeof *hid);
        if (!gen || !hid) st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "llama.generate_greedy: out of memory");
    }
    int32_t m = 0;
    if (!st) {
        ngpt_generate_params gp;
        ngpt_generate_params_default(&gp, sizeof gp);
        gp.max_new_tokens = (int32_t)max_new;
        gp.stop_ids = stops;
        gp.n_stop_ids = (int32_t)n_stops;
        st = ngpt_backbone_generate_greedy(&m, r.s, &gp, gen, hid);
    }
    if (!st) {
        int64_t is[1] = {m}, hs[2] = {m, H};
        st = case_out_add(out, "ids", NGPT_DTYPE_I32, 1, is, gen);
        if (!st) st = case_out_add(out, "hidden", NGPT_DTYPE_F32, 2, hs, hid);
    }
    nx_free(gen);
    nx_free(hid);
    run_free(&r);
    return st;
}

/* target_modules must be q/k/v/o (what the backbone's LoRA covers). */
static ngpt_status check_targets(const case_ctx *c)
{
    const json_t *t = json_object_get(c->params, "target_modules");
    if (!t) return NGPT_OK;
    static const char *const want[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    bool seen[4] = {false, false, false, false};
    if (!json_is_array(t) || json_array_size(t) != 4)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: target_modules: only [q_proj, k_proj, v_proj, o_proj] is supported",
                      c->case_dir);
    for (size_t i = 0; i < 4; i++) {
        const char *s = json_string_value(json_array_get(t, i));
        bool ok = false;
        for (int k = 0; s && k < 4; k++)
            if (!strcmp(s, want[k]) && !seen[k]) ok = seen[k] = true;
        if (!ok)
            return nx_err(NGPT_ERR_UNSUPPORTED, "%s: target_modules: '%s' is not supported (q_proj, k_proj, v_proj, "
                          "o_proj only)", c->case_dir, s ? s : "(not a string)");
    }
    return NGPT_OK;
}

ngpt_status case_llama_lora(const case_ctx *c, case_out *out)
{
    const char *file = "case.json params";
    int64_t r = 0;
    double alpha = 0;
    const char *prefix = NULL;
    NX_TRY(check_targets(c));
    NX_TRY(nx_json_int_opt(c->params, "lora_r", file, 0, &r));
    NX_TRY(nx_json_num_opt(c->params, "lora_alpha", file, 0.0, &alpha));
    NX_TRY(nx_json_str_opt(c->params, "key_prefix", file, NULL, &prefix));
    if (prefix && strcmp(prefix, "llama_model.base_model.model."))
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: key_prefix '%s' (only NExT-GPT's 'llama_model.base_model.model.')",
                      c->case_dir, prefix);
    if (r < 0 || r > 65536 || alpha < 0)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: lora_r %lld / lora_alpha %g", c->case_dir, (long long)r, alpha);
    char *delta = NULL;
    NX_TRY(case_param_path(c, "delta", &delta));
    ngpt_backbone_params bp;
    ngpt_backbone_params_default(&bp, sizeof bp);
    bp.delta_path = delta;
    bp.delta_key_prefix = prefix;
    bp.lora_r = (int32_t)r;
    bp.lora_alpha = (float)alpha;
    ngpt_status st = logits_stage(c, out, &bp);
    nx_free(delta);
    return st;
}
