/* llama.h — the LLaMA / Vicuna language model (the NExT-GPT backbone), written once against the
 * op layer (lib/ops/ops.h) so it runs on every backend.
 *
 * Two objects, as in llama.cpp's model/context split:
 *  - nx_llama: config + weights. Read-only after nx_llama_load, so one nx_llama may serve any
 *    number of states on any threads. On the CPU the weights are views into the checkpoint's
 *    mmap (zero copy, F32/F16/BF16 as stored: nx_op_linear reads them directly); on CUDA they are
 *    uploaded once. LoRA merged at load (W' = W + s·B@A) lives in owned F32 memory.
 *  - nx_llama_state: one sequence's KV cache + scratch + the position counter.
 *
 * Forward (nx_llama_eval): a batch of n positions appended at state->n_past, each row either a
 * token id (its embed_tokens row) or a caller-provided embedding row (a soft token). Batched
 * prefill and one-token decode are the same code; the KV cache makes decode equal to full
 * recomputation.
 */
#ifndef NX_MODELS_LLAMA_H
#define NX_MODELS_LLAMA_H

#include "../ops/backend.h"
#include "../core/weights.h"

#include <stdbool.h>
#include <stdint.h>

#define NX_LLAMA_MAX_SHARDS 64

typedef struct nx_llama_config {
    int32_t hidden;         /* hidden_size (H)                      4096 for 7B */
    int32_t ffn;            /* intermediate_size (I)                11008 */
    int32_t n_heads;        /* num_attention_heads                  32 */
    int32_t n_kv_heads;     /* num_key_value_heads (default n_heads) */
    int32_t head_dim;       /* H / n_heads                          128 */
    int32_t n_layers;       /* num_hidden_layers (L)                32 */
    int32_t vocab;          /* rows of embed_tokens / lm_head (V): config, or the delta's */
    int32_t vocab_base;     /* config.json vocab_size of the base folder */
    int32_t max_pos;        /* max_position_embeddings              2048 */
    float   eps;            /* rms_norm_eps                         1e-6 */
    float   rope_theta;     /* rope_theta (default 10000) */
    ngpt_dtype wdtype;      /* torch_dtype (F32/F16/BF16): informative; tensors keep their own */
    bool    tie_embeddings; /* tie_word_embeddings: lm_head is embed_tokens (default false) */
} nx_llama_config;

/* LoRA of one projection: y += scale * B @ (A @ x). Only used when the delta is kept unmerged. */
typedef struct nx_lora {
    nx_tensor a;            /* (r, in)  lora_A */
    nx_tensor b;            /* (out, r) lora_B */
} nx_lora;

typedef struct nx_llama_layer {
    nx_tensor attn_norm;    /* (H)             input_layernorm.weight */
    nx_tensor wq;           /* (nh*hd, H)      self_attn.q_proj.weight */
    nx_tensor wk;           /* (nkv*hd, H)     self_attn.k_proj.weight */
    nx_tensor wv;           /* (nkv*hd, H)     self_attn.v_proj.weight */
    nx_tensor wo;           /* (H, nh*hd)      self_attn.o_proj.weight */
    nx_tensor ffn_norm;     /* (H)             post_attention_layernorm.weight */
    nx_tensor w_gate;       /* (I, H)          mlp.gate_proj.weight (CPU) */
    nx_tensor w_up;         /* (I, H)          mlp.up_proj.weight (CPU) */
    nx_tensor w_gu;         /* (2 I, H)        [gate; up] in one matrix (CUDA: w_gate, w_up empty) */
    nx_tensor w_down;       /* (H, I)          mlp.down_proj.weight */
    nx_lora   lq, lk, lv, lo; /* unmerged LoRA (a.data == NULL: none) */
} nx_llama_layer;

typedef struct nx_llama {
    nx_llama_config cfg;
    nx_backend     *be;     /* computes here (borrowed from the context) */
    nx_backend     *cpu;    /* host work: the LoRA merge (borrowed) */
    nx_tensor       embed;  /* (V, H)  model.embed_tokens.weight (the delta's when one is given):
                             * a host view of the mapped checkpoint on every backend */
    nx_llama_layer *layers; /* [L] */
    nx_tensor       norm;   /* (H)     model.norm.weight */
    nx_tensor       lm_head;/* (V, H)  lm_head.weight (the delta's when one is given) */
    float           lora_scale; /* alpha / r of an unmerged delta */
    int32_t         lora_r;     /* 0: no delta */
    bool            lora_merged;
    nx_weights     *base[NX_LLAMA_MAX_SHARDS]; /* the base checkpoint (one file, a safetensors index,
                             * or the shards of a pytorch_model.bin index), kept open: CPU
                             * weights point into its mmap */
    int             n_base;
    nx_weights     *delta;  /* the NExT-GPT delta, kept open (embed/lm_head/LoRA views) */
    ngpt_dtype      cdt;    /* compute dtype: activations, KV cache and (on CUDA) the weights */
    bool            cpu_bf16; /* compute dtype BF16 on the CPU: cdt F32, the linears in BF16 (the
                               * caller's eval runs under nx_cpu_bf16_scope_begin) */
    bool            decode_dyn;   /* decode steps append to the cache and attend by device-held
                                   * position and length (nx_op_set_rows, nx_op_attention_len) */
    bool            decode_graph; /* ... and are recorded as a graph where the backend can */
} nx_llama;

typedef bool (*nx_progress_fn)(float done, void *user);

typedef struct nx_llama_load_params {
    const char *delta_path;   /* NULL = none */
    const char *delta_prefix; /* key prefix of the backbone's tensors in the delta */
    int32_t     lora_r;       /* 0 = from the delta's lora_A shapes */
    float       lora_alpha;   /* 0 = r (scaling 1, NExT-GPT's r = alpha = 32) */
    bool        lora_merge;   /* merge at load (default) or run the LoRA as extra linears */
    nx_progress_fn progress;  /* may be NULL; returning false cancels */
    void       *progress_user;
    ngpt_dtype  compute_dtype; /* F32 (0, any backend); F16/BF16 on CUDA only */
    bool        decode_graph;  /* NGPT_BACKBONE_FLAG_CUDA_GRAPH */
} nx_llama_load_params;

/* config.json of a Hugging Face LLaMA folder (transformers 4.29 LlamaConfig; the checks of
 * nx_llama_load): no weights are read. vocab = vocab_base = config's vocab_size. */
ngpt_status nx_llama_read_config(nx_llama_config *c, const char *dir);

/* Load a Hugging Face LLaMA folder (config.json + model.safetensors | model.safetensors.index.json
 * | pytorch_model.bin | pytorch_model.bin.index.json) and optionally a NExT-GPT delta. */
ngpt_status nx_llama_load(nx_llama **out, nx_backend *be, nx_backend *cpu, const char *dir,
                          const nx_llama_load_params *p);
void nx_llama_free(nx_llama *m);

/* ---- per-sequence state ---- */

typedef enum nx_llama_out {
    NX_LLAMA_OUT_NONE = 0,  /* fill the KV cache only */
    NX_LLAMA_OUT_LAST = 1,  /* logits + hidden of the batch's last position */
    NX_LLAMA_OUT_ALL  = 2   /* logits + hidden of every position of the batch */
} nx_llama_out;

typedef struct nx_llama_state {
    const nx_llama *m;
    int32_t   n_ctx;        /* positions the KV cache can grow to */
    int32_t   n_past;       /* positions already in the cache */
    int32_t   kv_cap;       /* positions allocated (grows with the session, see kv_reserve) */
    nx_tensor k_cache;      /* (L, kv_cap, nkv*hd) in the compute dtype */
    nx_tensor v_cache;      /* (L, kv_cap, nkv*hd) in the compute dtype */
    /* scratch for up to n_cap positions (regrown when a bigger batch comes) */
    int32_t   n_cap;
    nx_tensor x;            /* (n, H)     the residual stream */
    nx_tensor xn;           /* (n, H)     normed input of a block */
    nx_tensor q;            /* (n, nh*hd) */
    nx_tensor att;          /* (n, nh*hd) attention output */
    nx_tensor proj;         /* (n, H)     o_proj / down_proj output */
    nx_tensor gate;         /* (n, I); (n, 2 I) with w_gu: [gate | up] */
    nx_tensor up;           /* (n, I); with w_gu: silu(gate) * up */
    nx_tensor lora_t;       /* (n, r)     A x (unmerged LoRA) */
    nx_tensor lora_y;       /* (n, max(H, nkv*hd)) B A x */
    nx_tensor pos;          /* (n) I32 */
    int32_t   o_cap;        /* rows of logits/hidden */
    nx_tensor logits;       /* (o_cap, V) */
    nx_tensor hidden;       /* (o_cap, H) final-norm output */
    nx_tensor logits_c;     /* (o_cap, V) and (o_cap, H) in the compute dtype when it is not */
    nx_tensor hidden_c;     /*   F32 (cast to logits/hidden for the download); else unused */
    nx_tensor emb32;        /* (n_cap, H) F32 staging of input rows (compute dtype != F32) */
    /* host copies of the last eval's outputs */
    float    *h_logits;     /* [n_out, V] */
    float    *h_hidden;     /* [n_out, H] */
    int32_t   n_out;        /* rows in h_logits / h_hidden */
    int32_t   h_cap;        /* rows allocated in h_logits / h_hidden */
    /* decode steps by device-held position and length (m->decode_dyn) */
    nx_tensor k1, v1;       /* (1, nkv*hd) this step's key and value before the cache append */
    nx_tensor kv_len;       /* (1) I32: positions the step attends to (n_past + 1) */
    struct nx_graph *graph; /* the recorded decode step (m->decode_graph), or NULL */
    uint32_t  buf_gen;      /* bumped whenever the cache, scratch or output buffers are reallocated */
    uint32_t  graph_gen;    /* the buf_gen the graph was recorded on; another drops it */
    int32_t   graph_steps;  /* decode steps run since graph_gen was set */
    bool      graph_failed; /* recording failed for this key: op by op until it changes */
} nx_llama_state;

ngpt_status nx_llama_state_create(nx_llama_state **out, const nx_llama *m, int32_t n_ctx);
void nx_llama_state_free(nx_llama_state *s);

/* Append n positions. ids: [n] (may be NULL when every row is an embedding); embeds: [n, H] F32
 * host rows (may be NULL when every row is an id); is_embed: [n] (NULL: all rows from whichever
 * of ids/embeds is given). Validates everything (ids in range, n_past + n <= n_ctx) before
 * touching the cache; on a compute error the cache is rolled back to the old n_past. */
ngpt_status nx_llama_eval(nx_llama_state *s, int32_t n, const int32_t *ids, const float *embeds,
                          const uint8_t *is_embed, nx_llama_out out);

#endif
