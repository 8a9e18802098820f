/* llama.c — LLaMA / Vicuna-7B (the NExT-GPT backbone) against the op layer: config, weights
 * (+ the NExT-GPT delta: full embed_tokens/lm_head for V+38 tokens and LoRA on q/k/v/o), load
 * with every name resolved and every shape checked, the per-sequence state (KV cache +
 * scratch), and one flat forward used for prefill and decode alike. Reads top to bottom:
 *
 *   config  ->  weights (load, delta, LoRA merge)  ->  state  ->  forward
 *
 * Choices (docs/architecture.md, "Backbone"):
 *  - CPU: weights stay in the checkpoint's mmap (views, any of F32/F16/BF16 straight into
 *    nx_op_linear). CUDA: each tensor uploaded once.
 *  - gate/up: on the CPU two linears + silu(gate) * up (nx_op_unary + nx_op_binary): one
 *    [2I, H] matrix would cost a copy of both (they are separate tensors in the file), and the
 *    two read the same bytes. On CUDA, where every weight is uploaded anyway, they are one [gate;
 *    up] matrix and the MLP is one linear + nx_op_glu: 2 of a layer's 16 launches fewer (a decode
 *    step is ~500 small launches; bench/RESULTS.md).
 *  - LoRA merged at load by default: W' = W + (alpha/r) B@A computed in F32 (nx_op_matmul on
 *    the CPU backend) into owned memory; unmerged (flag) runs y += s * B(A x) as two extra
 *    linears per projection, like PEFT.
 */
#include "llama.h"
#include "mweights.h"

#include "../core/alloc.h"
#include "../core/error.h"
#include "../core/json.h"
#include "../ops/backend.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_CAP 4096

static const char *const k_proj_names[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};

/* Tensors of a NExT-GPT delta that belong to the projector stage, not the backbone: accepted
 * (and left for the projector loader) instead of reported as unexpected. */
static const char *const k_projector_prefixes[] = {
    "llama_proj.",
    "gen_text_hidden_fcs.",
    "gen_text_hidden_fcs_video.",
    "gen_text_hidden_fcs_audio.",
};

static nx_weights *base_for(const nx_llama *m, const char *name);

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static ngpt_status join(char *buf, const char *dir, const char *name)
{
    int n = snprintf(buf, PATH_CAP, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_CAP) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "path too long: %s/%s", dir, name);
    return NGPT_OK;
}

/* ------------------------------------------------------------------------------------------
 * config
 * ---------------------------------------------------------------------------------------- */

ngpt_status nx_llama_read_config(nx_llama_config *c, const char *dir)
{
    char path[PATH_CAP];
    NX_TRY(join(path, dir, "config.json"));
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    int64_t hidden = 0, ffn = 0, nh = 0, nkv = 0, nl = 0, vocab = 0, maxpos = 0;
    double eps = 0, theta = 0;
    const char *dt = NULL;
    ngpt_status st = NGPT_OK;
    if (!st) st = nx_json_int(j, "hidden_size", path, &hidden);
    if (!st) st = nx_json_int(j, "intermediate_size", path, &ffn);
    if (!st) st = nx_json_int(j, "num_attention_heads", path, &nh);
    if (!st) st = nx_json_int_opt(j, "num_key_value_heads", path, nh, &nkv);
    if (!st) st = nx_json_int(j, "num_hidden_layers", path, &nl);
    if (!st) st = nx_json_num_opt(j, "rms_norm_eps", path, 1e-6, &eps);
    if (!st) st = nx_json_num_opt(j, "rope_theta", path, 10000.0, &theta);
    if (!st) st = nx_json_int(j, "vocab_size", path, &vocab);
    if (!st) st = nx_json_int_opt(j, "max_position_embeddings", path, 2048, &maxpos);
    if (!st) st = nx_json_str_opt(j, "torch_dtype", path, "float32", &dt);
    bool tie = false, attn_bias = false, mlp_bias = false;
    const char *act = NULL, *type = NULL;
    int64_t head_dim = 0;
    if (!st) st = nx_json_bool_opt(j, "tie_word_embeddings", path, false, &tie);
    if (!st) st = nx_json_bool_opt(j, "attention_bias", path, false, &attn_bias);
    if (!st) st = nx_json_bool_opt(j, "mlp_bias", path, false, &mlp_bias);
    if (!st) st = nx_json_str_opt(j, "hidden_act", path, "silu", &act);
    if (!st) st = nx_json_str_opt(j, "model_type", path, "llama", &type);
    if (!st) st = nx_json_int_opt(j, "head_dim", path, 0, &head_dim);
    /* what LlamaForCausalLM could be configured to do that this forward does not: refused by
     * name rather than run as plain LLaMA (a silently different model gives garbage text) */
    const json_t *scaling = st ? NULL : json_object_get(j, "rope_scaling");
    if (!st && scaling && !json_is_null(scaling))
        st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: rope_scaling is not supported (only plain RoPE with rope_theta)", path);
    if (!st && strcmp(act, "silu") != 0)
        st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (LLaMA's MLP is SiLU-gated)", path, act);
    if (!st && strcmp(type, "llama") != 0)
        st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported (LLaMA / Vicuna only)", path, type);
    if (!st && (attn_bias || mlp_bias))
        st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: %s is not supported (LLaMA's projections have no bias)", path,
                    attn_bias ? "attention_bias" : "mlp_bias");
    if (!st && head_dim && nh > 0 && (hidden % nh != 0 || head_dim != hidden / nh))
        st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: head_dim %lld with %lld heads is not hidden_size %lld / heads", path,
                    (long long)head_dim, (long long)nh, (long long)hidden);
    if (!st) {
        if (!strcmp(dt, "float32")) c->wdtype = NGPT_DTYPE_F32;
        else if (!strcmp(dt, "float16")) c->wdtype = NGPT_DTYPE_F16;
        else if (!strcmp(dt, "bfloat16")) c->wdtype = NGPT_DTYPE_BF16;
        else st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: torch_dtype '%s' (expected float32, float16 or bfloat16)", path, dt);
    }
    json_decref(j);
    if (st) return st;
    const int64_t big = 1 << 24;
    if (hidden < 1 || hidden > big || ffn < 1 || ffn > big || nh < 1 || nh > 4096 || nkv < 1 || nl < 1 || nl > 4096 ||
        vocab < 1 || vocab > big || maxpos < 1 || maxpos > big)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: a size is out of range (hidden %lld, intermediate %lld, heads %lld, "
                      "kv heads %lld, layers %lld, vocab %lld, max positions %lld)", path, (long long)hidden,
                      (long long)ffn, (long long)nh, (long long)nkv, (long long)nl, (long long)vocab, (long long)maxpos);
    if (hidden % nh != 0 || nh % nkv != 0 || (hidden / nh) % 2 != 0)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: hidden_size %lld, num_attention_heads %lld and num_key_value_heads %lld "
                      "do not give an even head size shared by the KV heads", path, (long long)hidden, (long long)nh, (long long)nkv);
    if (!(eps > 0) || !(theta > 0))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: rms_norm_eps %g and rope_theta %g must be > 0", path, eps, theta);
    c->hidden = (int32_t)hidden;
    c->ffn = (int32_t)ffn;
    c->n_heads = (int32_t)nh;
    c->n_kv_heads = (int32_t)nkv;
    c->head_dim = (int32_t)(hidden / nh);
    c->n_layers = (int32_t)nl;
    c->vocab = c->vocab_base = (int32_t)vocab;
    c->max_pos = (int32_t)maxpos;
    c->eps = (float)eps;
    c->rope_theta = (float)theta;
    c->tie_embeddings = tie;
    return NGPT_OK;
}

/* added_tokens.json (if the folder has one): every id must be a row of the vocabulary and the
 * highest one its last row (the added tokens are appended at V..V+37). *n_added = count. */
static ngpt_status check_added_tokens(const char *dir, int32_t vocab, int32_t *n_added)
{
    char path[PATH_CAP];
    *n_added = 0;
    NX_TRY(join(path, dir, "added_tokens.json"));
    if (!file_exists(path)) return NGPT_OK;
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    if (!json_is_object(j)) {
        json_decref(j);
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: expected an object of token -> id", path);
    }
    const char *key;
    json_t *v;
    json_int_t max_id = -1;
    ngpt_status st = NGPT_OK;
    json_object_foreach(j, key, v) {
        if (!json_is_integer(v)) {
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: the id of '%s' is not an integer", path, key);
            break;
        }
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= vocab) {
            st = nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: added token '%s' has id %lld, outside the vocabulary of %d rows "
                        "(embed_tokens/lm_head)", path, key, (long long)id, vocab);
            break;
        }
        if (id > max_id) max_id = id;
        (*n_added)++;
    }
    json_decref(j);
    if (st) return st;
    if (*n_added > 0 && max_id + 1 != vocab)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: the highest added token id is %lld but the vocabulary has %d rows "
                      "(vocab mismatch between the tokenizer and the weights)", path, (long long)max_id, vocab);
    return NGPT_OK;
}

/* ------------------------------------------------------------------------------------------
 * weights
 * ---------------------------------------------------------------------------------------- */

/* A checkpoint tensor as an op tensor: a view of the mapping on the CPU, an upload on CUDA —
 * converted there once to an F16/BF16 compute dtype, so that every GEMM runs with one dtype on
 * tensor cores instead of widening the weight per call (nx_weight_fetch). */
static ngpt_status to_backend(const nx_llama *m, const nx_wtensor *wt, nx_tensor *t)
{
    ngpt_status st = nx_weight_fetch(t, m->be, wt, wt->rank, wt->shape, m->cdt);
    return st ? nx_err_wrap(st, "uploading %s: ", wt->name) : NGPT_OK;
}

static ngpt_status get_w(nx_weights *w, const char *name, int rank, int64_t d0, int64_t d1, const nx_wtensor **out)
{
    int64_t shape[2] = {d0, d1};
    return nx_weights_get(w, name, NX_FLOAT_DTYPES, rank, shape, out);
}

static ngpt_status bind(const nx_llama *m, nx_weights *w, const char *name, int rank, int64_t d0, int64_t d1,
                        nx_tensor *t)
{
    const nx_wtensor *wt;
    NX_TRY(get_w(w, name, rank, d0, d1, &wt));
    return to_backend(m, wt, t);
}

static ngpt_status host_f32(nx_backend *cpu, const nx_wtensor *wt, nx_tensor *t)
{
    NX_TRY(nx_tensor_alloc(t, cpu, NGPT_DTYPE_F32, wt->rank, wt->shape));
    nx_wtensor_to_f32(wt, t->data);
    return NGPT_OK;
}

/* W' = W + scale * B @ A in F32 (CPU), then on the compute backend. */
static ngpt_status merge_lora(nx_llama *m, const nx_wtensor *w, const nx_wtensor *a, const nx_wtensor *b, float scale,
                              nx_tensor *out)
{
    nx_tensor w32 = {0}, a32 = {0}, b32 = {0};
    ngpt_status st = host_f32(m->cpu, w, &w32);
    if (!st) st = host_f32(m->cpu, a, &a32);
    if (!st) st = host_f32(m->cpu, b, &b32);
    if (!st) st = nx_op_matmul(m->cpu, &w32, &b32, &a32, false, false, scale, 1.0f);
    nx_tensor_free(&a32);
    nx_tensor_free(&b32);
    if (st) {
        nx_tensor_free(&w32);
        return nx_err_wrap(st, "merging the LoRA of %s: ", w->name);
    }
    w32.name = w->name;
    if (m->be == m->cpu || m->be->kind == NGPT_BACKEND_CPU) {
        *out = w32;
        return NGPT_OK;
    }
    st = nx_upload_f32_as(out, m->be, m->cdt, w32.rank, w32.ne, w32.data);
    nx_tensor_free(&w32);
    if (st) return nx_err_wrap(st, "uploading %s: ", w->name);
    out->name = w->name;
    return NGPT_OK;
}

/* One of q/k/v/o of layer l: the base matrix [out, in], plus the delta's LoRA when present. */
static ngpt_status load_proj(nx_llama *m, const nx_llama_load_params *p, int l, int which, int64_t n_out, int64_t n_in,
                             nx_tensor *w, nx_lora *lora)
{
    char name[512];
    const nx_wtensor *wt, *at, *bt;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.%s.weight", l, k_proj_names[which]);
    NX_TRY(get_w(base_for(m, name), name, 2, n_out, n_in, &wt));
    if (!m->delta) return to_backend(m, wt, w);
    snprintf(name, sizeof name, "%smodel.layers.%d.self_attn.%s.lora_A.default.weight", p->delta_prefix, l,
             k_proj_names[which]);
    NX_TRY(get_w(m->delta, name, 2, m->lora_r, n_in, &at));
    snprintf(name, sizeof name, "%smodel.layers.%d.self_attn.%s.lora_B.default.weight", p->delta_prefix, l,
             k_proj_names[which]);
    NX_TRY(get_w(m->delta, name, 2, n_out, m->lora_r, &bt));
    if (m->lora_merged) {
        float s = p->lora_alpha > 0 ? p->lora_alpha / (float)m->lora_r : 1.0f;
        return merge_lora(m, wt, at, bt, s, w);
    }
    NX_TRY(to_backend(m, wt, w));
    NX_TRY(to_backend(m, at, &lora->a));
    return to_backend(m, bt, &lora->b);
}

/* The base shard holding `name` (the first one when none does, so that nx_weights_get reports
 * the missing tensor). */
static nx_weights *base_for(const nx_llama *m, const char *name)
{
    for (int i = 0; i < m->n_base; i++)
        if (nx_weights_find(m->base[i], name)) return m->base[i];
    return m->base[0];
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Open the checkpoint. nx_weights reads a safetensors index itself; a pytorch_model.bin index
 * (HF's sharded torch format, e.g. Vicuna's pytorch_model-0000N-of-0000M.bin) is read here and
 * each shard opened through the restricted pickle reader. */
static ngpt_status open_base(nx_llama *m, const char *path)
{
    if (!ends_with(path, ".bin.index.json")) {
        NX_TRY(nx_weights_open(&m->base[0], path));
        m->n_base = 1;
        return NGPT_OK;
    }
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    json_t *wm = json_object_get(j, "weight_map");
    ngpt_status st = NGPT_OK;
    if (!json_is_object(wm) || json_object_size(wm) == 0)
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: no \"weight_map\" object", path);
    char dir[PATH_CAP], full[PATH_CAP];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    const char *key;
    json_t *v;
    const char *seen[NX_LLAMA_MAX_SHARDS];
    int n_seen = 0;
    json_object_foreach(wm, key, v) {
        if (st) break;
        const char *f = json_string_value(v);
        if (!f || strchr(f, '/') || !strcmp(f, "..")) {
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: the shard of '%s' is not a file name", path, key);
            break;
        }
        int k = 0;
        while (k < n_seen && strcmp(seen[k], f)) k++;
        if (k < n_seen) continue;
        if (n_seen == NX_LLAMA_MAX_SHARDS) {
            st = nx_err(NGPT_ERR_UNSUPPORTED, "%s: more than %d shards", path, NX_LLAMA_MAX_SHARDS);
            break;
        }
        seen[n_seen++] = f;
        st = join(full, dir, f);
        if (!st) st = nx_weights_open(&m->base[m->n_base], full);
        if (!st) m->n_base++;
    }
    /* every tensor the index names must be in the shard it names */
    json_object_foreach(wm, key, v) {
        if (st) break;
        nx_weights *w = base_for(m, key);
        const nx_wtensor *t = nx_weights_find(w, key);
        if (!t) st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s' is listed in '%s' but not found there", path, key,
                            json_string_value(v));
    }
    json_decref(j);
    return st;
}

static ngpt_status find_checkpoint(char *path, const char *dir)
{
    static const char *const names[] = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                         "pytorch_model.bin.index.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        NX_TRY(join(path, dir, names[i]));
        if (file_exists(path)) return NGPT_OK;
    }
    return nx_err(NGPT_ERR_NOT_FOUND, "%s: no model.safetensors, model.safetensors.index.json, pytorch_model.bin "
                  "or pytorch_model.bin.index.json", dir);
}

/* CUDA: [w_gate; w_up] as one (2I, H) matrix, the two uploads freed (the MLP's two linears become
 * one; see the header) */
static ngpt_status fuse_gate_up(nx_llama *m, nx_llama_layer *L)
{
    const int64_t ne[2] = {2 * L->w_gate.ne[0], L->w_gate.ne[1]};
    NX_TRY(nx_tensor_alloc(&L->w_gu, m->be, L->w_gate.dtype, 2, ne));
    L->w_gu.name = "mlp.gate_proj + up_proj";
    NX_TRY(nx_op_concat(m->be, &L->w_gu, &L->w_gate, &L->w_up, 0));
    nx_tensor_free(&L->w_gate);
    nx_tensor_free(&L->w_up);
    return NGPT_OK;
}

/* The delta's embed_tokens/lm_head (V' rows) and its LoRA rank; checks V' against the base and
 * the delta folder's added_tokens.json. */
static ngpt_status open_delta(nx_llama *m, const nx_llama_load_params *p, const nx_wtensor **emb, const nx_wtensor **head)
{
    const nx_llama_config *c = &m->cfg;
    char name[512];
    NX_TRY(nx_weights_open(&m->delta, p->delta_path));
    snprintf(name, sizeof name, "%smodel.embed_tokens.weight", p->delta_prefix);
    NX_TRY(get_w(m->delta, name, 2, -1, c->hidden, emb));
    int64_t v = (*emb)->shape[0];
    snprintf(name, sizeof name, "%slm_head.weight", p->delta_prefix);
    NX_TRY(get_w(m->delta, name, 2, v, c->hidden, head));
    if (v < c->vocab_base || v > (1 << 24))
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: the delta's vocabulary (%lld rows) is smaller than the base "
                      "model's (%d): vocab mismatch", p->delta_path, (long long)v, c->vocab_base);
    m->cfg.vocab = (int32_t)v;
    /* tokenizer files next to the delta */
    char dir[PATH_CAP];
    snprintf(dir, sizeof dir, "%s", p->delta_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    int32_t n_added = 0;
    NX_TRY(check_added_tokens(dir, m->cfg.vocab, &n_added));
    if (n_added > 0 && c->vocab_base + n_added != m->cfg.vocab)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: base vocabulary %d + %d added tokens != the delta's %d rows "
                      "(vocab mismatch)", p->delta_path, c->vocab_base, n_added, m->cfg.vocab);
    /* LoRA rank from layer 0's q_proj lora_A */
    snprintf(name, sizeof name, "%smodel.layers.0.self_attn.q_proj.lora_A.default.weight", p->delta_prefix);
    const nx_wtensor *a = nx_weights_find(m->delta, name);
    if (!a) return nx_err(NGPT_ERR_NOT_FOUND, "%s: tensor '%s' not found (no LoRA in the delta?)", p->delta_path, name);
    if (a->rank != 2 || a->shape[0] < 1 || a->shape[0] > 65536)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: '%s' is not an [r, hidden] matrix", p->delta_path, name);
    if (p->lora_r > 0 && p->lora_r != a->shape[0])
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: lora_r is %d but '%s' has rank %lld", p->delta_path, p->lora_r,
                      name, (long long)a->shape[0]);
    m->lora_r = (int32_t)a->shape[0];
    m->lora_scale = p->lora_alpha > 0 ? p->lora_alpha / (float)m->lora_r : 1.0f;
    /* projector tensors: not ours, accepted */
    for (size_t i = 0; i < nx_weights_count(m->delta); i++) {
        const nx_wtensor *t = nx_weights_at(m->delta, i);
        for (size_t k = 0; k < sizeof k_projector_prefixes / sizeof *k_projector_prefixes; k++)
            if (starts_with(t->name, k_projector_prefixes[k])) nx_weights_mark_used(m->delta, t->name);
    }
    return NGPT_OK;
}

static ngpt_status load_all(nx_llama *m, const char *dir, const nx_llama_load_params *p)
{
    nx_llama_config *c = &m->cfg;
    NX_TRY(nx_llama_read_config(c, dir));
    char path[PATH_CAP], name[512];
    NX_TRY(find_checkpoint(path, dir));
    NX_TRY(open_base(m, path));

    const int64_t H = c->hidden, I = c->ffn, HD = c->head_dim;
    const int64_t QD = (int64_t)c->n_heads * HD, KVD = (int64_t)c->n_kv_heads * HD;

    const nx_wtensor *emb, *head, *base_emb, *base_head;
    NX_TRY(get_w(base_for(m, "model.embed_tokens.weight"), "model.embed_tokens.weight", 2, c->vocab_base, H, &base_emb));
    if (c->tie_embeddings) { /* transformers ties lm_head to embed_tokens; a saved copy is not read */
        base_head = base_emb;
        nx_weights_mark_used(base_for(m, "lm_head.weight"), "lm_head.weight");
    } else {
        NX_TRY(get_w(base_for(m, "lm_head.weight"), "lm_head.weight", 2, c->vocab_base, H, &base_head));
    }
    emb = base_emb;
    head = base_head;
    if (p->delta_path) {
        m->lora_merged = p->lora_merge;
        NX_TRY(open_delta(m, p, &emb, &head)); /* replaces both matrices entirely */
    } else {
        int32_t n_added = 0;
        NX_TRY(check_added_tokens(dir, c->vocab, &n_added));
    }
    /* embed_tokens stays in host memory on every backend: an eval reads n of its V rows, so a GPU
     * keeps V x H of memory (0.24 GiB for NExT-GPT's 32038 x 4096 F16) for the price of uploading
     * n x H F32 per eval; on the CPU it is the view it always was */
    m->embed = nx_view(emb->dtype, 2, emb->shape, (void *)emb->data, NULL);
    m->embed.name = emb->name;
    NX_TRY(to_backend(m, head, &m->lm_head));
    NX_TRY(bind(m, base_for(m, "model.norm.weight"), "model.norm.weight", 1, H, 0, &m->norm));

    m->layers = nx_calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "llama: out of memory for %d layers", c->n_layers);
    for (int l = 0; l < c->n_layers; l++) {
        nx_llama_layer *L = &m->layers[l];
#define LW(field, fmt, rank, d0, d1)                                  \
        snprintf(name, sizeof name, "model.layers.%d." fmt, l);       \
        NX_TRY(bind(m, base_for(m, name), name, rank, d0, d1, &L->field))
        LW(attn_norm, "input_layernorm.weight", 1, H, 0);
        NX_TRY(load_proj(m, p, l, 0, QD, H, &L->wq, &L->lq));
        NX_TRY(load_proj(m, p, l, 1, KVD, H, &L->wk, &L->lk));
        NX_TRY(load_proj(m, p, l, 2, KVD, H, &L->wv, &L->lv));
        NX_TRY(load_proj(m, p, l, 3, H, QD, &L->wo, &L->lo));
        LW(ffn_norm, "post_attention_layernorm.weight", 1, H, 0);
        LW(w_gate, "mlp.gate_proj.weight", 2, I, H);
        LW(w_up, "mlp.up_proj.weight", 2, I, H);
        LW(w_down, "mlp.down_proj.weight", 2, H, I);
#undef LW
        if (m->be->kind != NGPT_BACKEND_CPU) NX_TRY(fuse_gate_up(m, L));
        /* transformers 4.29 saves the RoPE buffer in .bin checkpoints: accept it (recomputed) */
        snprintf(name, sizeof name, "model.layers.%d.self_attn.rotary_emb.inv_freq", l);
        if (nx_weights_find(base_for(m, name), name)) {
            const nx_wtensor *t;
            NX_TRY(get_w(base_for(m, name), name, 1, HD / 2, 0, &t));
        }
        if (p->progress && !p->progress((float)(l + 1) / (float)c->n_layers, p->progress_user))
            return nx_err(NGPT_ERR_CANCELLED, "llama: loading cancelled by the progress callback after layer %d", l);
    }
    for (int i = 0; i < m->n_base; i++) NX_TRY(nx_weights_check_unused(m->base[i]));
    if (m->delta) NX_TRY(nx_weights_check_unused(m->delta));
    return NGPT_OK;
}

static void free_lora(nx_lora *l)
{
    nx_tensor_free(&l->a);
    nx_tensor_free(&l->b);
}

void nx_llama_free(nx_llama *m)
{
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            nx_llama_layer *L = &m->layers[l];
            nx_tensor *ts[] = {&L->attn_norm, &L->wq,   &L->wk, &L->wv,    &L->wo,
                               &L->ffn_norm,  &L->w_gate, &L->w_up, &L->w_gu, &L->w_down};
            for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) nx_tensor_free(ts[i]);
            free_lora(&L->lq);
            free_lora(&L->lk);
            free_lora(&L->lv);
            free_lora(&L->lo);
        }
        nx_free(m->layers);
    }
    nx_tensor_free(&m->embed);
    nx_tensor_free(&m->norm);
    nx_tensor_free(&m->lm_head);
    nx_weights_close(m->delta);
    for (int i = 0; i < m->n_base; i++) nx_weights_close(m->base[i]);
    nx_free(m);
}

ngpt_status nx_llama_load(nx_llama **out, nx_backend *be, nx_backend *cpu, const char *dir, const nx_llama_load_params *p)
{
    *out = NULL;
    nx_llama *m = nx_calloc(1, sizeof *m);
    if (!m) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "llama: out of memory");
    m->be = be;
    m->cpu = cpu;
    m->cdt = p->compute_dtype;
    m->decode_graph = p->decode_graph;
    ngpt_status st = NGPT_OK;
    if (m->cdt != NGPT_DTYPE_F32 && m->cdt != NGPT_DTYPE_F16 && m->cdt != NGPT_DTYPE_BF16)
        st = nx_err(NGPT_ERR_INVALID_ARGUMENT, "llama: compute dtype %s (expected F32, F16 or BF16)",
                    nx_dtype_name(m->cdt));
    else if (m->cdt == NGPT_DTYPE_F16 && be->kind == NGPT_BACKEND_CPU)
        st = nx_err(NGPT_ERR_UNSUPPORTED, "llama: compute dtype F16 needs the CUDA backend (the CPU backend computes "
                    "in F32, or with BF16 GEMM inputs, from weights of any dtype)");
    /* BF16 on the CPU: F32 activations, KV cache and logits; the linears take BF16 inputs (oneDNN's
     * bf16 GEMMs, AMX where the CPU has it) under the caller's scope (nx_backbone_eval_locked) */
    if (!st && m->cdt == NGPT_DTYPE_BF16 && be->kind == NGPT_BACKEND_CPU) {
        m->cpu_bf16 = true;
        m->cdt = NGPT_DTYPE_F32;
    }
    if (!st) st = load_all(m, dir, p);
    if (st) {
        nx_llama_free(m);
        return st;
    }
    /* the graph's decode path, where the backend's length-reading attention takes the head dim */
    const int hd = m->cfg.head_dim;
    m->decode_dyn = m->decode_graph && (be->kind == NGPT_BACKEND_CPU || nx_cuda_attention_len_head_dim(hd));
    if (m->decode_graph && !m->decode_dyn)
        nx_log(&be->log, NGPT_LOG_INFO, "llama: decode steps are not recorded as a graph: the CUDA decode attention "
               "kernel has no code for head dim %d", hd);
    m->decode_graph = m->decode_dyn && be->v->capture_begin;
    *out = m;
    return NGPT_OK;
}

/* ------------------------------------------------------------------------------------------
 * state: KV cache + scratch
 * ---------------------------------------------------------------------------------------- */

static void free_scratch(nx_llama_state *s)
{
    nx_tensor *ts[] = {&s->x,      &s->xn,     &s->q,   &s->att, &s->proj, &s->gate,  &s->up,
                       &s->lora_t, &s->lora_y, &s->pos, &s->emb32, &s->k1, &s->v1, &s->kv_len};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) nx_tensor_free(ts[i]);
    s->n_cap = 0;
}

static void free_out(nx_llama_state *s)
{
    nx_tensor_free(&s->logits);
    nx_tensor_free(&s->hidden);
    nx_tensor_free(&s->logits_c);
    nx_tensor_free(&s->hidden_c);
    s->o_cap = 0;
}

void nx_llama_state_free(nx_llama_state *s)
{
    if (!s) return;
    nx_backend_graph_free(s->m->be, s->graph);
    free_scratch(s);
    free_out(s);
    nx_tensor_free(&s->k_cache);
    nx_tensor_free(&s->v_cache);
    nx_free(s->h_logits);
    nx_free(s->h_hidden);
    nx_free(s);
}

/* The KV cache grows with the session, doubling in steps of KV_STEP positions up to n_ctx: a
 * session that may reach 2k positions but answers a 300-position turn holds 512 rows, not 2k
 * (for Vicuna-7B in F32, 0.5 GiB instead of 2). Growing copies the filled rows, layer by layer,
 * once per doubling. */
enum { KV_STEP = 256 };

static ngpt_status kv_reserve(nx_llama_state *s, int64_t need)
{
    if (need <= s->kv_cap) return NGPT_OK;
    const nx_llama *m = s->m;
    const int64_t L = m->cfg.n_layers, KVD = (int64_t)m->cfg.n_kv_heads * m->cfg.head_dim;
    int64_t cap = s->kv_cap ? 2 * (int64_t)s->kv_cap : KV_STEP;
    while (cap < need) cap *= 2;
    cap = (cap + KV_STEP - 1) / KV_STEP * KV_STEP;
    if (cap > s->n_ctx) cap = s->n_ctx;
    if (cap < need) cap = need;
    nx_tensor k = {0}, v = {0};
    int64_t ne[3] = {L, cap, KVD};
    ngpt_status st = nx_tensor_alloc(&k, m->be, m->cdt, 3, ne);
    if (!st) st = nx_tensor_alloc(&v, m->be, m->cdt, 3, ne);
    const size_t es = nx_dtype_size(m->cdt);
    for (int64_t l = 0; !st && s->n_past > 0 && l < L; l++) {
        int64_t rows[2] = {s->n_past, KVD};
        for (int kv = 0; !st && kv < 2; kv++) {
            const nx_tensor *from = kv ? &s->v_cache : &s->k_cache;
            nx_tensor *to = kv ? &v : &k;
            nx_tensor src = nx_view(m->cdt, 2, rows, (char *)from->data + (size_t)(l * s->kv_cap * KVD) * es, m->be);
            nx_tensor dst = nx_view(m->cdt, 2, rows, (char *)to->data + (size_t)(l * cap * KVD) * es, m->be);
            st = nx_op_cast(m->be, &dst, &src);
        }
    }
    if (st) {
        nx_tensor_free(&k);
        nx_tensor_free(&v);
        return nx_err_wrap(st, "llama: KV cache for %lld positions: ", (long long)cap);
    }
    nx_tensor_free(&s->k_cache);
    nx_tensor_free(&s->v_cache);
    s->k_cache = k;
    s->v_cache = v;
    s->kv_cap = (int32_t)cap;
    s->buf_gen++;
    return NGPT_OK;
}

ngpt_status nx_llama_state_create(nx_llama_state **out, const nx_llama *m, int32_t n_ctx)
{
    *out = NULL;
    nx_llama_state *s = nx_calloc(1, sizeof *s);
    if (!s) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "llama: out of memory for a session");
    s->m = m;
    s->n_ctx = n_ctx;
    ngpt_status st = kv_reserve(s, n_ctx < KV_STEP ? n_ctx : KV_STEP);
    if (st) {
        nx_llama_state_free(s);
        return st;
    }
    *out = s;
    return NGPT_OK;
}

static ngpt_status alloc2(nx_backend *be, nx_tensor *t, ngpt_dtype dt, int64_t d0, int64_t d1)
{
    int64_t ne[2] = {d0, d1};
    return nx_tensor_alloc(t, be, dt, d1 > 0 ? 2 : 1, ne);
}

/* Scratch for n positions (kept between calls; regrown for a bigger batch). */
static ngpt_status ensure_scratch(nx_llama_state *s, int32_t n)
{
    if (n <= s->n_cap) return NGPT_OK;
    free_scratch(s);
    const nx_llama *m = s->m;
    const nx_llama_config *c = &m->cfg;
    nx_backend *be = m->be;
    const int64_t QD = (int64_t)c->n_heads * c->head_dim, KVD = (int64_t)c->n_kv_heads * c->head_dim;
    const ngpt_dtype f = m->cdt;
    ngpt_status st = NGPT_OK;
    if (!st) st = alloc2(be, &s->x, f, n, c->hidden);
    if (!st) st = alloc2(be, &s->xn, f, n, c->hidden);
    if (!st) st = alloc2(be, &s->q, f, n, QD);
    if (!st) st = alloc2(be, &s->att, f, n, QD);
    if (!st) st = alloc2(be, &s->proj, f, n, c->hidden);
    const bool gu = m->layers && m->layers[0].w_gu.data; /* [gate | up] from one linear */
    if (!st) st = alloc2(be, &s->gate, f, n, gu ? 2 * c->ffn : c->ffn);
    if (!st) st = alloc2(be, &s->up, f, n, c->ffn);
    if (!st && m->lora_r && !m->lora_merged) st = alloc2(be, &s->lora_t, f, n, m->lora_r);
    if (!st && m->lora_r && !m->lora_merged) st = alloc2(be, &s->lora_y, f, n, c->hidden > KVD ? c->hidden : KVD);
    if (!st) st = alloc2(be, &s->pos, NGPT_DTYPE_I32, n, 0);
    if (!st && f != NGPT_DTYPE_F32) st = alloc2(be, &s->emb32, NGPT_DTYPE_F32, n, c->hidden);
    if (!st && m->decode_dyn) st = alloc2(be, &s->k1, f, 1, KVD);
    if (!st && m->decode_dyn) st = alloc2(be, &s->v1, f, 1, KVD);
    if (!st && m->decode_dyn) st = alloc2(be, &s->kv_len, NGPT_DTYPE_I32, 1, 0);
    if (st) {
        free_scratch(s);
        return nx_err_wrap(st, "llama: scratch for a batch of %d: ", n);
    }
    s->n_cap = n;
    s->buf_gen++;
    return NGPT_OK;
}

/* Backend and host buffers for the logits/hidden of `rows` positions (grown on demand, so a
 * long prefill asking for the last row only does not hold [n, V] logits). */
static ngpt_status ensure_out(nx_llama_state *s, int32_t rows)
{
    if (rows <= s->o_cap) return NGPT_OK;
    free_out(s);
    const nx_llama_config *c = &s->m->cfg;
    ngpt_status st = alloc2(s->m->be, &s->logits, NGPT_DTYPE_F32, rows, c->vocab);
    if (!st) st = alloc2(s->m->be, &s->hidden, NGPT_DTYPE_F32, rows, c->hidden);
    if (!st && s->m->cdt != NGPT_DTYPE_F32) st = alloc2(s->m->be, &s->logits_c, s->m->cdt, rows, c->vocab);
    if (!st && s->m->cdt != NGPT_DTYPE_F32) st = alloc2(s->m->be, &s->hidden_c, s->m->cdt, rows, c->hidden);
    if (st) {
        free_out(s);
        return nx_err_wrap(st, "llama: outputs of %d positions: ", rows);
    }
    s->o_cap = rows;
    s->buf_gen++;
    return NGPT_OK;
}

static ngpt_status ensure_host_out(nx_llama_state *s, int32_t rows)
{
    if (rows <= s->h_cap) return NGPT_OK;
    const nx_llama_config *c = &s->m->cfg;
    float *l = nx_malloc((size_t)rows * (size_t)c->vocab * sizeof(float));
    float *h = nx_malloc((size_t)rows * (size_t)c->hidden * sizeof(float));
    if (!l || !h) {
        nx_free(l);
        nx_free(h);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "llama: out of memory for the logits of %d positions", rows);
    }
    nx_free(s->h_logits);
    nx_free(s->h_hidden);
    s->h_logits = l;
    s->h_hidden = h;
    s->h_cap = rows;
    return NGPT_OK;
}

/* ------------------------------------------------------------------------------------------
 * forward
 * ---------------------------------------------------------------------------------------- */

/* The first n rows of a scratch tensor [cap, d] (or rows [r0, r0 + n) of it). */
static nx_tensor rows(const nx_tensor *t, int64_t r0, int64_t n)
{
    int64_t d = t->rank > 1 ? t->ne[1] : 1;
    int64_t ne[2] = {n, d};
    return nx_view(t->dtype, t->rank, ne, (char *)t->data + r0 * d * (int64_t)nx_dtype_size(t->dtype), t->be);
}

/* [n, a*b] seen as [1, n, a, b] (the attention/RoPE layout). */
static nx_tensor heads4(const nx_tensor *t, int64_t a, int64_t b)
{
    int64_t ne[4] = {1, t->ne[0], a, b};
    return nx_view(t->dtype, 4, ne, t->data, t->be);
}

/* y[n, out] = x @ W^T (+ scale * B (A x) when the LoRA is kept unmerged). */
static ngpt_status proj(nx_llama_state *s, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_lora *lora)
{
    nx_backend *be = s->m->be;
    NX_TRY(nx_op_linear(be, y, x, w, NULL));
    if (!lora->a.data) return NGPT_OK;
    int64_t n = x->ne[0];
    nx_tensor t = rows(&s->lora_t, 0, n);
    nx_tensor u = nx_view(s->lora_y.dtype, 2, (int64_t[]){n, y->ne[1]}, s->lora_y.data, s->lora_y.be);
    NX_TRY(nx_op_linear(be, &t, x, &lora->a, NULL));
    NX_TRY(nx_op_linear(be, &u, &t, &lora->b, NULL));
    NX_TRY(nx_op_scale(be, &u, &u, s->m->lora_scale, 0.0f));
    return nx_op_binary(be, y, y, &u, NX_BINARY_ADD);
}

/* Rows [r0, r0 + n) of x = F32 host rows (through the F32 staging buffer and a cast when the
 * compute dtype is F16/BF16). */
static ngpt_status put_embeds(nx_llama_state *s, const nx_tensor *x, int32_t r0, int32_t n, const float *src)
{
    nx_tensor dst = rows(x, r0, n);
    size_t nb = (size_t)n * (size_t)s->m->cfg.hidden * sizeof(float);
    if (x->dtype == NGPT_DTYPE_F32) return nx_tensor_upload(&dst, src, nb);
    nx_tensor stage = rows(&s->emb32, r0, n);
    NX_TRY(nx_tensor_upload(&stage, src, nb));
    return nx_op_cast(s->m->be, &dst, &stage);
}

/* x = embed_tokens[ids] with the caller's rows over the soft-token positions. embed_tokens is in
 * host memory (see load_all): the rows are gathered on the host by the CPU backend's get_rows
 * (F16/BF16 widened) — straight into x when x is host F32 — and uploaded once. */
static ngpt_status embed_input(nx_llama_state *s, const nx_tensor *x, int32_t n, const int32_t *ids,
                               const float *embeds, const uint8_t *is_embed)
{
    if (!ids) return put_embeds(s, x, 0, n, embeds);  /* every row an embedding */
    const nx_llama *m = s->m;
    const int64_t H = m->cfg.hidden;
    const size_t row = (size_t)H * sizeof(float);
    const bool direct = m->be->kind == NGPT_BACKEND_CPU && x->dtype == NGPT_DTYPE_F32;
    float *h = direct ? x->data : nx_malloc((size_t)n * row);
    int32_t *tid = nx_malloc((size_t)n * sizeof *tid);
    ngpt_status st = h && tid ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "llama: out of memory for %d input rows", n);
    for (int32_t i = 0; st == NGPT_OK && i < n; i++) tid[i] = is_embed && is_embed[i] ? 0 : ids[i];
    if (st == NGPT_OK) {
        int64_t ne_h[2] = {n, H}, ne_i[1] = {n};
        nx_tensor hv = nx_view(NGPT_DTYPE_F32, 2, ne_h, h, NULL), iv = nx_view(NGPT_DTYPE_I32, 1, ne_i, tid, NULL);
        st = nx_op_get_rows(m->cpu, &hv, &m->embed, &iv);
    }
    for (int32_t i = 0; st == NGPT_OK && embeds && is_embed && i < n; i++)
        if (is_embed[i]) memcpy(h + (size_t)i * (size_t)H, embeds + (size_t)i * (size_t)H, row);
    if (st == NGPT_OK && !direct) st = put_embeds(s, x, 0, n, h);
    if (!direct) nx_free(h);
    nx_free(tid);
    return st;
}

/* The device half of a forward over n positions starting at p0: the layers, then the final norm
 * and lm_head over the last r rows (r = 0: none) into s->hidden / s->logits. The input rows are
 * in s->x and the positions in s->pos already. With dyn (a decode step, n = 1) the step's key and
 * value go to the cache at the position in s->pos and the attention reads its length from
 * s->kv_len, so nothing here depends on p0 and the same recording serves every step. */
typedef struct fwd_body {
    nx_llama_state *s;
    int32_t n, p0, r;
    bool dyn;
} fwd_body;

static ngpt_status forward_body(void *arg)
{
    const fwd_body *a = arg;
    nx_llama_state *s = a->s;
    const int32_t n = a->n, p0 = a->p0;
    const nx_llama *m = s->m;
    const nx_llama_config *c = &m->cfg;
    nx_backend *be = m->be;
    const int64_t HD = c->head_dim, NH = c->n_heads, NKV = c->n_kv_heads, KVD = NKV * HD;
    nx_tensor x = rows(&s->x, 0, n), xn = rows(&s->xn, 0, n), q = rows(&s->q, 0, n), att = rows(&s->att, 0, n);
    nx_tensor pr = rows(&s->proj, 0, n), gate = rows(&s->gate, 0, n), up = rows(&s->up, 0, n);
    nx_tensor tpos = rows(&s->pos, 0, n);
    tpos.rank = 1;

    const float scale = 1.0f / sqrtf((float)HD);
    const ngpt_dtype cdt = m->cdt;
    const size_t es = nx_dtype_size(cdt);
    /* each residual add is fused with the norm that reads its result (nx_op_rms_norm_add): the
     * attention block's with ffn_norm, the MLP's with the next layer's input norm */
    if (c->n_layers > 0) NX_TRY(nx_op_rms_norm(be, &xn, &x, &m->layers[0].attn_norm, c->eps));
    for (int l = 0; l < c->n_layers; l++) {
        const nx_llama_layer *L = &m->layers[l];
        /* this layer's cache, and the rows p0 .. p0 + n - 1 this batch writes (dyn: written
         * through k1/v1 at the position in tpos, the whole cache attended up to kv_len) */
        char *kc = (char *)s->k_cache.data + (size_t)l * (size_t)s->kv_cap * (size_t)KVD * es;
        char *vc = (char *)s->v_cache.data + (size_t)l * (size_t)s->kv_cap * (size_t)KVD * es;
        int64_t new_ne[2] = {n, KVD}, all_ne[4] = {1, a->dyn ? s->kv_cap : p0 + n, NKV, HD};
        nx_tensor k_new = a->dyn ? rows(&s->k1, 0, 1) : nx_view(cdt, 2, new_ne, kc + (size_t)p0 * KVD * es, be);
        nx_tensor v_new = a->dyn ? rows(&s->v1, 0, 1) : nx_view(cdt, 2, new_ne, vc + (size_t)p0 * KVD * es, be);
        nx_tensor k_all = nx_view(cdt, 4, all_ne, kc, be);
        nx_tensor v_all = nx_view(cdt, 4, all_ne, vc, be);
        nx_tensor q4 = heads4(&q, NH, HD), k4 = heads4(&k_new, NKV, HD), att4 = heads4(&att, NH, HD);

        /* attention block (xn = attn_norm(x), made above) */
        NX_TRY(proj(s, &q, &xn, &L->wq, &L->lq));
        NX_TRY(proj(s, &k_new, &xn, &L->wk, &L->lk));
        NX_TRY(proj(s, &v_new, &xn, &L->wv, &L->lv));
        NX_TRY(nx_op_rope(be, &q4, &q4, &tpos, (int)HD, c->rope_theta, NX_ROPE_HALF));
        NX_TRY(nx_op_rope(be, &k4, &k4, &tpos, (int)HD, c->rope_theta, NX_ROPE_HALF));
        if (a->dyn) {
            const int64_t cache_ne[2] = {s->kv_cap, KVD};
            nx_tensor kcache = nx_view(cdt, 2, cache_ne, kc, be), vcache = nx_view(cdt, 2, cache_ne, vc, be);
            NX_TRY(nx_op_set_rows(be, &kcache, &k_new, &tpos));
            NX_TRY(nx_op_set_rows(be, &vcache, &v_new, &tpos));
            NX_TRY(nx_op_attention_len(be, &att4, &q4, &k_all, &v_all, &s->kv_len, scale));
        } else {
            NX_TRY(nx_op_attention(be, &att4, &q4, &k_all, &v_all, NULL, scale, true));
        }
        NX_TRY(proj(s, &pr, &att, &L->wo, &L->lo));

        /* MLP block: x += attention; down(silu(gate(xn)) * up(xn)) with xn = ffn_norm(x) */
        NX_TRY(nx_op_rms_norm_add(be, &xn, &x, &pr, &L->ffn_norm, c->eps));
        if (L->w_gu.data) { /* CUDA: [gate | up] = xn [gate; up]^T, up = silu(gate) * up */
            NX_TRY(nx_op_linear(be, &gate, &xn, &L->w_gu, NULL));
            NX_TRY(nx_op_glu(be, &up, &gate, NX_UNARY_SILU, true));
            NX_TRY(nx_op_linear(be, &pr, &up, &L->w_down, NULL));
        } else {
            NX_TRY(nx_op_linear(be, &gate, &xn, &L->w_gate, NULL));
            NX_TRY(nx_op_linear(be, &up, &xn, &L->w_up, NULL));
            NX_TRY(nx_op_unary(be, &gate, &gate, NX_UNARY_SILU, 0.0f));
            NX_TRY(nx_op_binary(be, &gate, &gate, &up, NX_BINARY_MUL));
            NX_TRY(nx_op_linear(be, &pr, &gate, &L->w_down, NULL));
        }
        if (l + 1 < c->n_layers) /* x += MLP; the next layer's xn = attn_norm(x) */
            NX_TRY(nx_op_rms_norm_add(be, &xn, &x, &pr, &m->layers[l + 1].attn_norm, c->eps));
        else
            NX_TRY(nx_op_binary(be, &x, &x, &pr, NX_BINARY_ADD));
    }
    if (a->r == 0) return NGPT_OK;

    /* final norm + lm_head over the rows asked for */
    const int32_t r = a->r;
    nx_tensor xs = rows(&x, n - r, r), hid = rows(&s->hidden, 0, r), lg = rows(&s->logits, 0, r);
    if (cdt == NGPT_DTYPE_F32) {
        NX_TRY(nx_op_rms_norm(be, &hid, &xs, &m->norm, c->eps));
        return nx_op_linear(be, &lg, &hid, &m->lm_head, NULL);
    }
    /* computed in the compute dtype (as PyTorch's half model does), widened for the caller */
    nx_tensor hid_c = rows(&s->hidden_c, 0, r), lg_c = rows(&s->logits_c, 0, r);
    NX_TRY(nx_op_rms_norm(be, &hid_c, &xs, &m->norm, c->eps));
    NX_TRY(nx_op_linear(be, &lg_c, &hid_c, &m->lm_head, NULL));
    NX_TRY(nx_op_cast(be, &hid, &hid_c));
    return nx_op_cast(be, &lg, &lg_c);
}

/* A decode step of m->decode_graph: the second step on a set of buffers is recorded, later ones
 * replay it; a new cache, scratch or output buffer (buf_gen moved) starts over. */
static ngpt_status decode_graph_step(nx_llama_state *s, fwd_body *a)
{
    nx_backend *be = s->m->be;
    if (s->graph_gen != s->buf_gen) {
        nx_backend_graph_free(be, s->graph);
        s->graph = NULL;
        s->graph_gen = s->buf_gen;
        s->graph_steps = 0;
        s->graph_failed = false;
    }
    ngpt_status st;
    if (s->graph) st = nx_backend_replay(be, &s->graph, forward_body, a, "llama: the decode step");
    /* the first step makes the pools and constants a recording must find already there */
    else if (s->graph_steps++ == 0 || s->graph_failed) return forward_body(a);
    else st = nx_backend_record(be, forward_body, a, &s->graph, "llama: the decode step");
    if (!s->graph) s->graph_failed = true; /* ran op by op: not recorded again on these buffers */
    return st;
}

static ngpt_status forward(nx_llama_state *s, int32_t n, const int32_t *ids, const float *embeds, const uint8_t *is_embed,
                           nx_llama_out out)
{
    const nx_llama *m = s->m;
    const int32_t p0 = s->n_past;
    const bool dyn = m->decode_dyn && n == 1;

    NX_TRY(ensure_scratch(s, n));
    nx_tensor x = rows(&s->x, 0, n);
    nx_tensor tpos = rows(&s->pos, 0, n);
    tpos.rank = 1;
    const int32_t r = out == NX_LLAMA_OUT_NONE ? 0 : out == NX_LLAMA_OUT_ALL ? n : 1;
    if (r) NX_TRY(ensure_out(s, r));
    if (r) NX_TRY(ensure_host_out(s, r));

    /* positions p0 .. p0 + n - 1; a decode step's attention length p0 + 1 */
    int32_t *hpos = nx_malloc((size_t)n * sizeof *hpos);
    if (!hpos) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "llama: out of memory for %d positions", n);
    for (int32_t i = 0; i < n; i++) hpos[i] = p0 + i;
    ngpt_status st = nx_tensor_upload(&tpos, hpos, (size_t)n * sizeof(int32_t));
    nx_free(hpos);
    NX_TRY(st);
    if (dyn) {
        const int32_t len = p0 + 1;
        NX_TRY(nx_tensor_upload(&s->kv_len, &len, sizeof len));
    }
    NX_TRY(embed_input(s, &x, n, ids, embeds, is_embed));

    fwd_body a = {s, n, p0, r, dyn};
    s->n_out = 0;
    NX_TRY(dyn && r == 1 && m->decode_graph ? decode_graph_step(s, &a) : forward_body(&a));
    if (!r) return NGPT_OK;
    nx_tensor hid = rows(&s->hidden, 0, r), lg = rows(&s->logits, 0, r);
    NX_TRY(nx_tensor_download(&hid, s->h_hidden, nx_nbytes(&hid)));
    NX_TRY(nx_tensor_download(&lg, s->h_logits, nx_nbytes(&lg)));
    s->n_out = r;
    return NGPT_OK;
}

ngpt_status nx_llama_eval(nx_llama_state *s, int32_t n, const int32_t *ids, const float *embeds, const uint8_t *is_embed,
                          nx_llama_out out)
{
    const nx_llama_config *c = &s->m->cfg;
    if (n < 1) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "llama eval: a batch of %d positions", n);
    if (!ids && !embeds) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "llama eval: neither ids nor embeddings given");
    if (ids && embeds && !is_embed)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "llama eval: ids and embeddings both given without is_embed");
    if (out != NX_LLAMA_OUT_NONE && out != NX_LLAMA_OUT_LAST && out != NX_LLAMA_OUT_ALL)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "llama eval: unknown output mode %d", (int)out);
    if ((int64_t)s->n_past + n > s->n_ctx)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "llama eval: %d positions after %d would exceed the context of %d "
                      "(n_ctx overflow)", n, s->n_past, s->n_ctx);
    for (int32_t i = 0; i < n; i++) {
        bool e = is_embed ? is_embed[i] != 0 : ids == NULL;
        if (e && !embeds)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "llama eval: position %d is an embedding row but embeds is NULL", i);
        if (!e && !ids)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "llama eval: position %d is a token id but ids is NULL", i);
        if (!e && (ids[i] < 0 || ids[i] >= c->vocab))
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "llama eval: token id %d at position %d is outside the vocabulary "
                          "[0, %d)", ids[i], i, c->vocab);
    }
    ngpt_status st = kv_reserve(s, (int64_t)s->n_past + n);
    if (st) return st;
    st = forward(s, n, ids, embeds, is_embed, out);
    if (st) {
        s->n_out = 0; /* the cache rows past n_past are garbage but unused */
        return st;
    }
    s->n_past += n;
    return NGPT_OK;
}
