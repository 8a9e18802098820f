/*
 * nextgpt.h — the public C ABI of libnextgpt, an embeddable runtime for NExT-GPT
 * (any-to-any multimodal: text, image, audio and video in; text, image, audio and video out).
 *
 * This is the only installed header. Every exported symbol is `ngpt_*`, every macro `NGPT_*`.
 *
 * Basic usage
 * -----------
 *     ngpt_context_params cp;
 *     ngpt_context_params_default(&cp, sizeof cp);
 *     cp.device = NGPT_DEVICE_AUTO;           // CUDA when a usable GPU is present, else CPU
 *     ngpt_context *ctx = NULL;
 *     if (ngpt_context_create(&ctx, &cp) != NGPT_OK) {
 *         fprintf(stderr, "%s\n", ngpt_last_error());
 *         return 1;
 *     }
 *     printf("backend: %s (%s)\n", ngpt_backend_name(ngpt_context_backend(ctx)),
 *            ngpt_context_device_name(ctx));
 *     ... create stage handles from ctx, run them ...
 *     ngpt_context_free(ctx);
 *
 * Conventions (the same for every function in this header)
 * ----------------------------------------------------------
 * - Functions that can fail return `ngpt_status`: NGPT_OK (0) or a negative code. On failure the
 *   calling thread's `ngpt_last_error()` holds a message naming what failed and where (file,
 *   tensor name, expected vs actual shape). Out parameters come first and are written only on
 *   success (on failure they are set to NULL / 0 where that is meaningful).
 * - Handles are opaque. Each `*_create` has a `*_free`; `*_free(NULL)` is a harmless no-op.
 *   A handle created from a context must be freed before that context.
 * - Params structs are passed by pointer, begin with `struct_size`, and are filled by
 *   `*_params_default(p, sizeof *p)`. Fields are only ever appended, so an application built
 *   against an older header keeps working with a newer library (the library reads only the
 *   first `struct_size` bytes and uses defaults for the rest).
 * - Memory the library returns is freed by the library (`ngpt_*_free`). Pointers returned by
 *   getters are borrowed from the handle they came from and live as long as it does.
 * - Threads: `ngpt_version`, `ngpt_status_string`, `ngpt_last_error` and the `*_params_default`
 *   functions may be called from any thread at any time. A handle may be used from any thread
 *   but by one thread at a time (the caller serialises); different handles may be used
 *   concurrently, including handles created from the same context. The error message is
 *   thread-local.
 * - The library never writes to stdout, never calls exit() or abort(), and writes to stderr
 *   only through the default log callback (replace it in `ngpt_context_params`).
 */
#ifndef NEXTGPT_H
#define NEXTGPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define NGPT_API __declspec(dllimport)
#elif defined(__GNUC__)
#  define NGPT_API __attribute__((visibility("default")))
#else
#  define NGPT_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Versions
 * ------------------------------------------------------------------------------------------- */

#define NGPT_VERSION_MAJOR 0
#define NGPT_VERSION_MINOR 1
#define NGPT_VERSION_PATCH 0
#define NGPT_VERSION_NUMBER (NGPT_VERSION_MAJOR * 10000 + NGPT_VERSION_MINOR * 100 + NGPT_VERSION_PATCH)
#define NGPT_VERSION_STRING "0.1.0"
/* Bumped on every incompatible ABI change; equals the soname's number (libnextgpt.so.0). */
#define NGPT_ABI_VERSION 0

/* "0.1.0": the version of the library actually loaded, to compare with NGPT_VERSION_STRING. */
NGPT_API const char *ngpt_version(void);
/* NGPT_VERSION_NUMBER of the library actually loaded. */
NGPT_API int32_t ngpt_version_number(void);
/* NGPT_ABI_VERSION of the library actually loaded. */
NGPT_API int32_t ngpt_abi_version(void);

/* ---------------------------------------------------------------------------------------------
 * Status codes and errors
 * ------------------------------------------------------------------------------------------- */

typedef enum ngpt_status {
    NGPT_OK                   = 0,
    NGPT_ERR_INVALID_ARGUMENT = -1,  /* a NULL where a pointer is required, a bad enum, size 0 ... */
    NGPT_ERR_NOT_FOUND        = -2,  /* a file, tensor or key that should exist does not */
    NGPT_ERR_IO               = -3,  /* open/read/write/mmap failed */
    NGPT_ERR_BAD_FORMAT       = -4,  /* a file exists but is corrupt, truncated or not what it claims */
    NGPT_ERR_SHAPE_MISMATCH   = -5,  /* a tensor has the wrong shape (message: expected vs actual) */
    NGPT_ERR_DTYPE_MISMATCH   = -6,  /* a tensor has the wrong element type */
    NGPT_ERR_UNSUPPORTED      = -7,  /* valid input that this build or version cannot handle */
    NGPT_ERR_OUT_OF_MEMORY    = -8,  /* allocation failed or the context's allocation limit was hit */
    NGPT_ERR_DEVICE           = -9,  /* CUDA / cuBLAS / cuDNN reported an error, or no device */
    NGPT_ERR_CANCELLED        = -10, /* a callback asked to stop */
    NGPT_ERR_UNEXPECTED_TENSOR= -11, /* a checkpoint holds a tensor the model does not use */
    NGPT_ERR_BUFFER_TOO_SMALL = -12, /* a caller buffer is too short; the size needed is reported */
    NGPT_ERR_UNIMPLEMENTED    = -13, /* the feature is planned but not in this version */
    NGPT_ERR_INTERNAL         = -14  /* a bug in libnextgpt: please report the message */
} ngpt_status;

/* Static name of a status ("NGPT_ERR_NOT_FOUND"); "NGPT_UNKNOWN_STATUS" for unknown values. */
NGPT_API const char *ngpt_status_string(ngpt_status status);
/* The calling thread's message for the last failed call. Never NULL ("" when none).
 * Owned by the library; valid until the next libnextgpt call on this thread. */
NGPT_API const char *ngpt_last_error(void);
/* Forget the calling thread's last error. */
NGPT_API void ngpt_clear_error(void);

/* ---------------------------------------------------------------------------------------------
 * Logging
 * ------------------------------------------------------------------------------------------- */

typedef enum ngpt_log_level {
    NGPT_LOG_DEBUG = 0,
    NGPT_LOG_INFO  = 1,
    NGPT_LOG_WARN  = 2,
    NGPT_LOG_ERROR = 3,
    NGPT_LOG_NONE  = 4
} ngpt_log_level;

/* Receives one message (no trailing newline). May be called from any library thread. */
typedef void (*ngpt_log_fn)(ngpt_log_level level, const char *message, void *user_data);

/* ---------------------------------------------------------------------------------------------
 * Tensors crossing the ABI
 * ------------------------------------------------------------------------------------------- */

typedef enum ngpt_dtype {
    NGPT_DTYPE_F32  = 0,
    NGPT_DTYPE_F16  = 1,
    NGPT_DTYPE_BF16 = 2,
    NGPT_DTYPE_I64  = 3,
    NGPT_DTYPE_I32  = 4,
    NGPT_DTYPE_U8   = 5,
    NGPT_DTYPE_BOOL = 6,
    NGPT_DTYPE_F64  = 7,
    NGPT_DTYPE_I16  = 8,
    NGPT_DTYPE_I8   = 9
} ngpt_dtype;

#define NGPT_MAX_DIMS 8

/* A view of a dense, row-major (C order, last dimension contiguous) array in host memory.
 * `owner` says who frees `data`: NULL means the caller (the library only borrows it for the
 * duration of the call); non-NULL means the library allocated it and `ngpt_tensor_free()`
 * releases it. Tensors the library returns are always library-owned. */
typedef struct ngpt_tensor {
    ngpt_dtype dtype;
    int32_t    rank;                   /* 0..NGPT_MAX_DIMS */
    int64_t    shape[NGPT_MAX_DIMS];   /* shape[0] outermost; entries past rank are ignored */
    void      *data;
    void      *owner;                  /* NULL: caller-owned; else library-owned */
} ngpt_tensor;

/* Bytes of one element (1 for BOOL/U8/I8); 0 for an unknown dtype. */
NGPT_API size_t ngpt_dtype_size(ngpt_dtype dtype);
/* "F32", "F16", ... as safetensors spells them; "?" for unknown. */
NGPT_API const char *ngpt_dtype_name(ngpt_dtype dtype);
/* Number of elements (product of the shape; 1 for rank 0). */
NGPT_API int64_t ngpt_tensor_numel(const ngpt_tensor *t);
/* Bytes of the data (numel * dtype size). */
NGPT_API size_t ngpt_tensor_nbytes(const ngpt_tensor *t);
/* Allocate a zero-filled library-owned tensor. */
NGPT_API ngpt_status ngpt_tensor_create(ngpt_tensor *out, ngpt_dtype dtype, int32_t rank,
                                        const int64_t *shape);
/* Free the data of a library-owned tensor and reset *t to an empty rank-0 view. A caller-owned
 * view (owner == NULL) is only reset. NULL is a no-op. */
NGPT_API void ngpt_tensor_free(ngpt_tensor *t);

/* ---------------------------------------------------------------------------------------------
 * Context: device, threads, logging, memory accounting
 * ------------------------------------------------------------------------------------------- */

typedef struct ngpt_context ngpt_context;

typedef enum ngpt_device_kind {
    NGPT_DEVICE_AUTO = 0,  /* CUDA if a usable GPU is found, else CPU (never an error) */
    NGPT_DEVICE_CPU  = 1,
    NGPT_DEVICE_CUDA = 2   /* CUDA required: creation fails with NGPT_ERR_DEVICE without one */
} ngpt_device_kind;

typedef enum ngpt_backend {
    NGPT_BACKEND_CPU  = 1,
    NGPT_BACKEND_CUDA = 2
} ngpt_backend;

typedef struct ngpt_context_params {
    size_t           struct_size;     /* sizeof(ngpt_context_params), set by _default */
    ngpt_device_kind device;          /* default NGPT_DEVICE_AUTO */
    int32_t          device_index;    /* CUDA device ordinal; default 0 */
    int32_t          n_threads;       /* CPU worker threads; 0 = number of online CPUs */
    ngpt_log_level   log_level;       /* messages below this level are dropped; default WARN */
    ngpt_log_fn      log_callback;    /* NULL = write to stderr */
    void            *log_user_data;
    uint64_t         memory_limit;    /* bytes of tensor memory this context may hold; 0 = no limit */
} ngpt_context_params;

/* Fill *p with defaults. struct_size is the caller's sizeof(ngpt_context_params). */
NGPT_API ngpt_status ngpt_context_params_default(ngpt_context_params *p, size_t struct_size);
/* Create a context. `params` may be NULL (all defaults). Free with ngpt_context_free. */
NGPT_API ngpt_status ngpt_context_create(ngpt_context **out, const ngpt_context_params *params);
/* Free a context. Every handle created from it must have been freed. NULL is a no-op. */
NGPT_API void ngpt_context_free(ngpt_context *ctx);
/* The backend this context runs on (CPU when AUTO found no usable GPU). */
NGPT_API ngpt_backend ngpt_context_backend(const ngpt_context *ctx);
/* "cpu" or "cuda". */
NGPT_API const char *ngpt_backend_name(ngpt_backend backend);
/* Human-readable device: the CPU model, or the GPU name. Borrowed from ctx. */
NGPT_API const char *ngpt_context_device_name(const ngpt_context *ctx);
/* Why AUTO chose the CPU ("no CUDA device: cudaGetDeviceCount: ..."), or "" when on CUDA or
 * when the CPU was asked for. Borrowed from ctx. */
NGPT_API const char *ngpt_context_backend_note(const ngpt_context *ctx);
/* The number of CPU worker threads in use. */
NGPT_API int32_t ngpt_context_n_threads(const ngpt_context *ctx);
/* Bytes of tensor memory the context holds now, and the most it has held. */
NGPT_API uint64_t ngpt_context_memory_used(const ngpt_context *ctx);
NGPT_API uint64_t ngpt_context_memory_peak(const ngpt_context *ctx);
/* 1 when this build contains the CUDA backend (whether or not a GPU is present), else 0. */
NGPT_API int32_t ngpt_has_cuda_build(void);

/* ---------------------------------------------------------------------------------------------
 * Stage handles (their functions arrive stage by stage)
 *
 * ngpt_encoder   media -> ImageBind embedding (1024 per item)
 * ngpt_backbone  the language model (tokenizer + Vicuna/LLaMA + NExT-GPT delta)
 * ngpt_projector embeddings <-> language-model space (input and output projectors)
 * ngpt_decoder   conditioning -> image / audio / video
 * ngpt_pipeline  all of the above, one conversation
 *
 * Ownership: each handle is created from an ngpt_context and must be freed before it. Weights
 * are read-only once loaded; one handle may be used by one thread at a time.
 * ------------------------------------------------------------------------------------------- */

typedef struct ngpt_encoder   ngpt_encoder;
typedef struct ngpt_backbone  ngpt_backbone;
typedef struct ngpt_projector ngpt_projector;
typedef struct ngpt_decoder   ngpt_decoder;
typedef struct ngpt_pipeline  ngpt_pipeline;

/* ---------------------------------------------------------------------------------------------
 * Tokenizer: the LLaMA tokenizer of NExT-GPT's language model
 *
 * Reads a tokenizer folder in the Hugging Face layout: tokenizer.model (a SentencePiece BPE
 * model, required) and, when present, added_tokens.json (NExT-GPT's 38 signal tokens <Img>,
 * </Img>, [IMG0]..[IMG3], [VID0]..[VID23], [AUD0]..[AUD7], ids after the SentencePiece pieces),
 * special_tokens_map.json and tokenizer_config.json (bos/eos/unk/pad strings, add_bos_token,
 * add_eos_token). The result is identical to transformers 4.29's slow LlamaTokenizer
 * (use_fast=False, as NExT-GPT loads it) over sentencepiece 0.1.97:
 *
 *     ngpt_tokenizer *tok = NULL;
 *     if (ngpt_tokenizer_create(&tok, "models/nextgpt/tokenizer") != NGPT_OK) ... ngpt_last_error()
 *     size_t n = 0;
 *     ngpt_tokenizer_encode(tok, text, strlen(text), 1, NULL, 0, &n);  // BUFFER_TOO_SMALL, n = count
 *     int32_t *ids = malloc(n * sizeof *ids);
 *     ngpt_tokenizer_encode(tok, text, strlen(text), 1, ids, n, &n);   // NGPT_OK
 *     ...
 *     ngpt_tokenizer_free(tok);
 *
 * Encoding splits the text at the special tokens' strings ("<s>", "</s>", "<unk>") and the added
 * tokens (leftmost, longest), strips whitespace next to added tokens (so "a [IMG0] [IMG1]\n###"
 * gives ids for "a", [IMG0], [IMG1], "###"), and encodes each remaining piece separately with
 * SentencePiece (a dummy-prefix space in front of each piece; characters outside the vocabulary
 * fall back to byte tokens <0xNN>). Text is UTF-8; invalid bytes are not an error: like
 * sentencepiece, each invalid byte is read as U+FFFD.
 * Decoding is transformers' _decode with skip_special_tokens as given,
 * spaces_between_special_tokens=True and no clean-up: added tokens are joined to the
 * neighbouring text with one space ("text [IMG0] [IMG1]"); byte tokens that do not form valid
 * UTF-8 become U+FFFD, one per byte.
 *
 * A tokenizer does not need a context. It is immutable once created: encode, decode and the
 * getters may be called on one tokenizer from several threads at the same time.
 * ------------------------------------------------------------------------------------------- */

typedef struct ngpt_tokenizer ngpt_tokenizer;  /* opaque */

/* Load the tokenizer in folder `model_dir`. NGPT_ERR_NOT_FOUND without tokenizer.model;
 * NGPT_ERR_BAD_FORMAT for a corrupt file ("<dir>/tokenizer.model: piece 17: truncated field");
 * NGPT_ERR_UNSUPPORTED for a SentencePiece model that is not BPE with identity normalization.
 * Free with ngpt_tokenizer_free. */
NGPT_API ngpt_status ngpt_tokenizer_create(ngpt_tokenizer **out, const char *model_dir);
/* NULL is a no-op. */
NGPT_API void ngpt_tokenizer_free(ngpt_tokenizer *tok);

/* Token ids of `text` (text_len bytes, need not be NUL-terminated; NULL allowed when text_len
 * is 0). add_bos nonzero = transformers' add_special_tokens=True: BOS first (when
 * tokenizer_config.json's add_bos_token, default true) and EOS last (when add_eos_token,
 * default false). Two-call sizing: *n_out always receives the number of ids; when `ids` is NULL
 * or `cap` is smaller, nothing is written and NGPT_ERR_BUFFER_TOO_SMALL is returned. Empty text
 * gives no ids (or just BOS). */
NGPT_API ngpt_status ngpt_tokenizer_encode(const ngpt_tokenizer *tok, const char *text, size_t text_len,
                                           int32_t add_bos, int32_t *ids, size_t cap, size_t *n_out);

/* UTF-8 text of `n` ids. skip_special_tokens nonzero drops the ids of BOS, EOS, UNK (and PAD
 * when the folder sets one); added tokens are never dropped. An id outside
 * [0, ngpt_tokenizer_vocab_size) is NGPT_ERR_INVALID_ARGUMENT. Two-call sizing: *len_out always
 * receives the length in bytes, not counting a terminator; when `text` is NULL or cap < length,
 * nothing is written and NGPT_ERR_BUFFER_TOO_SMALL is returned. A NUL is appended when
 * cap > length (pass length + 1 to get a C string). The text may itself contain NUL bytes (from
 * the byte token <0x00>); *len_out is the authority. */
NGPT_API ngpt_status ngpt_tokenizer_decode(const ngpt_tokenizer *tok, const int32_t *ids, size_t n,
                                           int32_t skip_special_tokens, char *text, size_t cap,
                                           size_t *len_out);

/* Number of token ids: SentencePiece pieces + added tokens (32000 + 38 for NExT-GPT). */
NGPT_API int32_t ngpt_tokenizer_vocab_size(const ngpt_tokenizer *tok);
/* The piece of `id` as stored ("▁the", "<0x0A>", "<s>", "[IMG0]"), borrowed from tok; NULL when id
 * is out of range. For text use ngpt_tokenizer_decode. */
NGPT_API const char *ngpt_tokenizer_token_to_piece(const ngpt_tokenizer *tok, int32_t id);
/* The id whose piece is exactly `piece` (added tokens included), or -1 when there is none. */
NGPT_API int32_t ngpt_tokenizer_piece_to_id(const ngpt_tokenizer *tok, const char *piece);
/* Ids of the BOS ("<s>", 1) and EOS ("</s>", 2) tokens; -1 when not defined. */
NGPT_API int32_t ngpt_tokenizer_bos_id(const ngpt_tokenizer *tok);
NGPT_API int32_t ngpt_tokenizer_eos_id(const ngpt_tokenizer *tok);

/* ---------------------------------------------------------------------------------------------
 * Backbone (language model)
 *
 * The LLaMA / Vicuna language model at the centre of NExT-GPT, with the NExT-GPT delta (full
 * embed_tokens + lm_head for the 38 added tokens, LoRA on q/k/v/o). Two objects, as llama.h's
 * model/context split:
 *  - ngpt_backbone: config + weights, read-only once created. Any number of sessions, on any
 *    threads, may share one backbone concurrently. On the CPU the weights stay in the
 *    checkpoint's memory map (zero copy); on CUDA they are uploaded once.
 *  - ngpt_backbone_session: one sequence's KV cache, scratch and outputs. One thread at a time.
 *    A session must be freed before its backbone.
 *
 *     ngpt_backbone_params bp;
 *     ngpt_backbone_params_default(&bp, sizeof bp);
 *     bp.delta_path = "nextgpt_7b_tiva_v0/pytorch_model.pt";   // or NULL for plain LLaMA
 *     ngpt_backbone *bb = NULL;
 *     ngpt_backbone_create(&bb, ctx, "vicuna-7b-v0", &bp);
 *     ngpt_backbone_session *s = NULL;
 *     ngpt_backbone_session_create(&s, bb, NULL);
 *     ngpt_backbone_batch b;
 *     ngpt_backbone_batch_default(&b, sizeof b);
 *     b.n_tokens = n; b.ids = prompt_ids;                     // and/or b.embeds + b.is_embed
 *     ngpt_backbone_eval(s, &b);                              // logits of the last position
 *     ngpt_generate_params gp;
 *     ngpt_generate_params_default(&gp, sizeof gp);
 *     int32_t n_gen = 0;
 *     ngpt_backbone_generate_greedy(&n_gen, s, &gp, out_ids, out_hidden);
 *     ngpt_backbone_session_free(s);
 *     ngpt_backbone_free(bb);
 * ------------------------------------------------------------------------------------------- */

#include <stdbool.h>

/* Load progress in [0, 1]; return false to cancel (create then fails with NGPT_ERR_CANCELLED). */
typedef bool (*ngpt_progress_fn)(float done, void *user_data);

typedef struct ngpt_backbone_params {
    size_t      struct_size;     /* sizeof(ngpt_backbone_params), set by _default */
    int32_t     n_ctx;           /* default (and largest) session context; 0 = max_position_embeddings */
    const char *delta_path;      /* NExT-GPT delta: pytorch_model.pt or delta.safetensors; NULL = none.
                                  * Its folder's added_tokens.json (if any) must agree with its vocab. */
    const char *delta_key_prefix;/* prefix of the backbone's tensors in the delta; NULL =
                                  * "llama_model.base_model.model." (NExT-GPT, peft 0.3) */
    int32_t     lora_r;          /* 0 = from the delta's lora_A shapes; else must match them */
    float       lora_alpha;      /* 0 = lora_r (scaling alpha/r = 1, NExT-GPT's r = alpha = 32) */
    int32_t     lora_merge;      /* 1 (default): W + (alpha/r) B A merged at load, in F32;
                                  * 0: LoRA run unmerged as extra linears (as PEFT does) */
    ngpt_dtype  compute_dtype;   /* activations and KV cache; only NGPT_DTYPE_F32 in this version */
    ngpt_progress_fn progress;   /* NULL = none; called once per layer */
    void       *progress_user_data;
} ngpt_backbone_params;

NGPT_API ngpt_status ngpt_backbone_params_default(ngpt_backbone_params *p, size_t struct_size);

/* Load a Hugging Face LLaMA folder (config.json + model.safetensors, a sharded
 * model.safetensors.index.json, or pytorch_model.bin read without executing pickle code), in
 * F32, F16 or BF16, plus the optional delta. Every tensor's shape is checked; a tensor of the
 * base or the delta that the model does not use is NGPT_ERR_UNEXPECTED_TENSOR naming it (the
 * delta's projector tensors llama_proj.* and gen_text_hidden_fcs*.* are accepted: they belong
 * to ngpt_projector). `params` may be NULL (defaults). Errors: NGPT_ERR_NOT_FOUND (file or
 * tensor), NGPT_ERR_SHAPE_MISMATCH (incl. vocab mismatch), NGPT_ERR_UNEXPECTED_TENSOR,
 * NGPT_ERR_BAD_FORMAT, NGPT_ERR_OUT_OF_MEMORY, NGPT_ERR_CANCELLED. */
NGPT_API ngpt_status ngpt_backbone_create(ngpt_backbone **out, ngpt_context *ctx, const char *model_dir,
                                          const ngpt_backbone_params *params);
/* Free a backbone (after all its sessions). NULL is a no-op. */
NGPT_API void ngpt_backbone_free(ngpt_backbone *bb);

/* Model facts (0 for a NULL handle). n_vocab includes the delta's added tokens. */
NGPT_API int32_t ngpt_backbone_n_vocab(const ngpt_backbone *bb);
NGPT_API int32_t ngpt_backbone_n_embd(const ngpt_backbone *bb);   /* hidden size */
NGPT_API int32_t ngpt_backbone_n_layer(const ngpt_backbone *bb);
NGPT_API int32_t ngpt_backbone_n_ctx(const ngpt_backbone *bb);    /* default session context */
/* The tokenizer that goes with the weights (borrowed; lives as long as bb): the delta folder's
 * when it has tokenizer.model, else model_dir's; NULL when neither has one. create checks that
 * its vocabulary fits the embedding rows (and equals them with a delta: V + 38). */
NGPT_API const ngpt_tokenizer *ngpt_backbone_tokenizer(const ngpt_backbone *bb);

/* ids -> their embedding rows (F32, [n, n_embd] into `rows`), so a caller can build prompts of
 * token rows and soft tokens. An id outside [0, n_vocab) is NGPT_ERR_INVALID_ARGUMENT. */
NGPT_API ngpt_status ngpt_backbone_embed_tokens(float *rows, const ngpt_backbone *bb, const int32_t *ids,
                                                int32_t n);

typedef struct ngpt_backbone_session ngpt_backbone_session;

typedef struct ngpt_backbone_session_params {
    size_t  struct_size;         /* sizeof(ngpt_backbone_session_params), set by _default */
    int32_t n_ctx;               /* positions of the KV cache; 0 = the backbone's n_ctx */
} ngpt_backbone_session_params;

NGPT_API ngpt_status ngpt_backbone_session_params_default(ngpt_backbone_session_params *p, size_t struct_size);
/* A session (KV cache of n_ctx positions, F32) on `bb`; params may be NULL. */
NGPT_API ngpt_status ngpt_backbone_session_create(ngpt_backbone_session **out, ngpt_backbone *bb,
                                                  const ngpt_backbone_session_params *params);
/* NULL is a no-op. */
NGPT_API void ngpt_backbone_session_free(ngpt_backbone_session *s);
/* Positions in the KV cache. */
NGPT_API int32_t ngpt_backbone_session_n_past(const ngpt_backbone_session *s);
/* Forget everything (n_past = 0). */
NGPT_API ngpt_status ngpt_backbone_session_reset(ngpt_backbone_session *s);
/* Keep the first n_past positions (0 <= n_past <= current), e.g. to rewind a turn. */
NGPT_API ngpt_status ngpt_backbone_session_truncate(ngpt_backbone_session *s, int32_t n_past);

typedef enum ngpt_output_mode {
    NGPT_OUTPUT_NONE = 0,        /* fill the KV cache only */
    NGPT_OUTPUT_LAST = 1,        /* logits + hidden state of the batch's last position (default) */
    NGPT_OUTPUT_ALL  = 2         /* logits + hidden states of every position of the batch */
} ngpt_output_mode;

/* A run of positions appended at the session's n_past: each a token id or an embedding row (a
 * "soft token", e.g. a projected image). Caller-owned arrays, read during the call only. */
typedef struct ngpt_backbone_batch {
    size_t           struct_size; /* sizeof(ngpt_backbone_batch), set by _default */
    int32_t          n_tokens;    /* positions in this batch (>= 1) */
    const int32_t   *ids;         /* [n_tokens] token ids; NULL when every row is an embedding */
    const float     *embeds;      /* [n_tokens, n_embd] F32 rows; NULL when every row is an id */
    const uint8_t   *is_embed;    /* [n_tokens] 1 = take row i of embeds, 0 = ids[i]; required when
                                   * both ids and embeds are given, else NULL */
    ngpt_output_mode output;      /* default NGPT_OUTPUT_LAST */
} ngpt_backbone_batch;

NGPT_API ngpt_status ngpt_backbone_batch_default(ngpt_backbone_batch *b, size_t struct_size);
/* Run the batch (one prefill, or a decode step of one position). Validates everything before
 * touching the cache (ids in range, n_past + n_tokens <= n_ctx: else NGPT_ERR_INVALID_ARGUMENT);
 * on failure n_past is unchanged. */
NGPT_API ngpt_status ngpt_backbone_eval(ngpt_backbone_session *s, const ngpt_backbone_batch *batch);
/* The last eval's outputs, row-major F32, borrowed from the session and valid until its next
 * eval/generate/reset/free: logits [n_rows, n_vocab] (lm_head output) and hidden states
 * [n_rows, n_embd] (after the final RMSNorm: what NExT-GPT's output projectors read). *n_rows
 * (may be NULL) receives 1 (LAST), n_tokens (ALL) or 0 (NONE: the pointer is NULL). */
NGPT_API const float *ngpt_backbone_get_logits(const ngpt_backbone_session *s, int32_t *n_rows);
NGPT_API const float *ngpt_backbone_get_hidden(const ngpt_backbone_session *s, int32_t *n_rows);

/* Called with each generated token (before it is fed back); return false to stop:
 * generation then ends with NGPT_ERR_CANCELLED (the tokens so far are kept, see below). May be
 * used to cancel from another thread by checking a flag the caller owns. */
typedef bool (*ngpt_token_fn)(int32_t token, void *user_data);

typedef struct ngpt_generate_params {
    size_t         struct_size;   /* sizeof(ngpt_generate_params), set by _default */
    int32_t        max_new_tokens;/* default 16; the capacity of the out arrays */
    const int32_t *stop_ids;      /* tokens that end generation (included in the output); NULL = none */
    int32_t        n_stop_ids;
    ngpt_token_fn  on_token;      /* NULL = none */
    void          *user_data;
} ngpt_generate_params;

NGPT_API ngpt_status ngpt_generate_params_default(ngpt_generate_params *p, size_t struct_size);
/* Greedy decoding (argmax, first index on ties) continuing from the session's last eval, which
 * must have produced outputs (NGPT_OUTPUT_LAST or ALL). ids: [max_new_tokens]; hidden: NULL or
 * [max_new_tokens, n_embd] — row j = the final-norm state of the position whose logits chose
 * ids[j] (row 0: the last prompt position). Each chosen token is fed back unless it is a stop
 * id or the last allowed. *n_out = tokens generated; also set (with ids/hidden filled so far)
 * when the callback cancels (NGPT_ERR_CANCELLED) or the context fills up (INVALID_ARGUMENT). */
NGPT_API ngpt_status ngpt_backbone_generate_greedy(int32_t *n_out, ngpt_backbone_session *s,
                                                   const ngpt_generate_params *params, int32_t *ids,
                                                   float *hidden);

#ifdef __cplusplus
}
#endif

#endif /* NEXTGPT_H */
