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
 *   concurrently, including handles created from the same context: on the CPU backend their
 *   computations take turns on the context's thread pool; on the CUDA backend each call that
 *   computes, loads or frees holds the context's device for its whole duration (a pipeline
 *   turn: the whole turn), and calls from other threads wait for it. Callbacks run inside the
 *   call: from the callback's own thread, the same context's other handles may be called, but
 *   not the handle whose call is running, except its getters (a pipeline or session refuses
 *   such a call with NGPT_ERR_INVALID_ARGUMENT; it must not be freed there); a callback that
 *   waits for another thread's call into the same CUDA context deadlocks. The error message
 *   is thread-local.
 * - The library never writes to stdout, never calls exit() or abort(), and writes to stderr
 *   only through the default log callback (replace it in `ngpt_context_params`).
 */
#ifndef NEXTGPT_H
#define NEXTGPT_H

#include <stdbool.h>
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
 * releases it. Tensors the library returns are always library-owned.
 * Inputs: a tensor argument documented as F32 (pixels, latents, embeddings, conditioning, mel,
 * timesteps) may hold any numeric dtype; it is converted as a C cast would (F16/BF16 widened,
 * integers to their value). Where a function names the dtypes it takes (token ids I32/I64,
 * the postprocess functions' F32, video frames' U8), others are NGPT_ERR_DTYPE_MISMATCH. */
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
/* Number of elements (product of the shape; 1 for rank 0); -1 for a negative dimension or a
 * product that overflows int64, 0 for NULL or a bad rank. */
NGPT_API int64_t ngpt_tensor_numel(const ngpt_tensor *t);
/* Bytes of the data (numel * dtype size); 0 when that is not a size. */
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
    NGPT_DEVICE_CUDA = 2   /* CUDA required: creation fails with NGPT_ERR_DEVICE without a usable
                            * GPU, NGPT_ERR_UNSUPPORTED in a build without CUDA */
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
 *    threads, may share one backbone (their evals take turns on the context's compute
 *    resources: the library serialises them). On the CPU the weights stay in the checkpoint's
 *    memory map (zero copy); on CUDA they are uploaded once.
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
    int32_t     lora_merge;      /* -1 (default): 0 on the CPU, 1 on CUDA;
                                  * 1: W + (alpha/r) B A merged at load, in F32 (on the CPU an
                                  * owned copy of q/k/v/o beside the mapped checkpoint);
                                  * 0: LoRA run unmerged as extra linears (as PEFT does) */
    ngpt_dtype  compute_dtype;   /* activations, KV cache and logits: NGPT_DTYPE_F32 (default, any
                                  * device, weights of any dtype), or F16 / BF16 on CUDA
                                  * (weights converted to it at load so GEMMs run on tensor
                                  * cores; outputs still handed back as F32). BF16 on the CPU:
                                  * activations, KV cache and logits stay F32, the linears of
                                  * prompts (more than 4 tokens) take BF16 inputs with F32
                                  * accumulation (oneDNN: fast where the CPU has AMX; on
                                  * AVX512-BF16 alone slower than F32); decode steps read the
                                  * weights in their own dtype as with F32. F16 on the CPU:
                                  * NGPT_ERR_UNSUPPORTED. */
    ngpt_progress_fn progress;   /* NULL = none; called once per layer */
    void       *progress_user_data;
    /* Appended in 0.x (an older caller's shorter struct reads as 0): */
    uint32_t    flags;           /* NGPT_BACKBONE_FLAG_* bits, default 0 */
} ngpt_backbone_params;

/* ngpt_backbone_params.flags: on a CUDA context, a session's decode steps (one token, last
 * logits) are recorded once as a CUDA graph and replayed: the new key and value rows go into the
 * cache at a position, and the attention reads the length, from device memory, so one recording
 * serves every step until the cache or the scratch buffers are reallocated (then the next steps
 * record again). The step's ~400 kernel launches become one (LLaMA-7B: 32 layers). Where a step
 * cannot be recorded it runs op by op and the reason is logged at INFO. Head dims 16, 32, 64, 80,
 * 96, 128. On the CPU the decode steps take the same path without recording (same results as
 * without the flag). Off by default (set it for CUDA: an H200 decoded LLaMA-7B-sized steps at 183
 * tok/s with it, 167 without; bench/RESULTS.md, GPU run 7; NGPT_PIPELINE_CUDA_GRAPHS sets it on
 * CUDA, and the nextgpt CLI by default). */
#define NGPT_BACKBONE_FLAG_CUDA_GRAPH 0x1u

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
    int32_t n_ctx;               /* positions of the KV cache, at most the backbone's n_ctx; 0 = that */
} ngpt_backbone_session_params;

NGPT_API ngpt_status ngpt_backbone_session_params_default(ngpt_backbone_session_params *p, size_t struct_size);
/* A session on `bb`; params may be NULL. Its KV cache grows with the conversation, doubling, up
 * to 2 * n_layer * n_ctx * n_kv_heads * head_dim elements (n_embd for Vicuna-7B) of the
 * activations' dtype (F32 unless the backbone computes in F16 / BF16 on CUDA): 2 GiB for
 * Vicuna-7B in F32 at n_ctx 2048, so set n_ctx to what the conversation may need. */
NGPT_API ngpt_status ngpt_backbone_session_create(ngpt_backbone_session **out, ngpt_backbone *bb,
                                                  const ngpt_backbone_session_params *params);
/* NULL is a no-op. */
NGPT_API void ngpt_backbone_session_free(ngpt_backbone_session *s);
/* Positions in the KV cache. */
NGPT_API int32_t ngpt_backbone_session_n_past(const ngpt_backbone_session *s);
/* Positions the KV cache can hold: the n_ctx it was created with (0 there: the backbone's), 0 for
 * NULL. A pipeline's session (ngpt_pipeline_session) has the pipeline's n_ctx. */
NGPT_API int32_t ngpt_backbone_session_n_ctx(const ngpt_backbone_session *s);
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
 * eval/generate/truncate/reset/free: logits [n_rows, n_vocab] (lm_head output) and hidden states
 * [n_rows, n_embd] (after the final RMSNorm: what NExT-GPT's output projectors read). *n_rows
 * (may be NULL) receives 1 (LAST), n_tokens (ALL) or 0 (NONE, and after a truncate: the pointer
 * is NULL). */
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
    /* sampling (ngpt_backbone_generate; ngpt_backbone_generate_greedy ignores these). Applied as
     * transformers does: repetition penalty, then temperature, top-k, top-p, then a draw. */
    float          temperature;   /* 0 (default) = greedy argmax */
    int32_t        top_k;         /* keep the k most likely; 0 (default) = all */
    float          top_p;         /* keep the smallest set with probability >= top_p, in (0, 1]; 1
                                  * (default) = all */
    float          repetition_penalty; /* CTRL-style on the tokens generated in this call (a
                                        * logit l becomes l / p if l > 0 else l * p); 1 = off */
    uint64_t       seed;          /* the draws are reproducible for a seed on one backend */
} ngpt_generate_params;

NGPT_API ngpt_status ngpt_generate_params_default(ngpt_generate_params *p, size_t struct_size);
/* Generation continuing from the session's last eval, which must have produced outputs
 * (NGPT_OUTPUT_LAST or ALL). ids: [max_new_tokens] (NULL only when that is 0); hidden: NULL or
 * [max_new_tokens, n_embd] — row j = the final-norm state of the position whose logits chose
 * ids[j] (row 0: the last prompt position; what NExT-GPT's output projectors read). Each chosen token is fed back unless it is
 * a stop id or the last allowed. *n_out = tokens generated; also set (with ids/hidden filled so
 * far) when the callback cancels (NGPT_ERR_CANCELLED) or the context fills up
 * (NGPT_ERR_INVALID_ARGUMENT). */
NGPT_API ngpt_status ngpt_backbone_generate(int32_t *n_out, ngpt_backbone_session *s,
                                            const ngpt_generate_params *params, int32_t *ids, float *hidden);
/* The same with greedy decoding (argmax, first index on ties) whatever the sampling fields say. */
NGPT_API ngpt_status ngpt_backbone_generate_greedy(int32_t *n_out, ngpt_backbone_session *s,
                                                   const ngpt_generate_params *params, int32_t *ids,
                                                   float *hidden);

/* Chat turns on a session (ngpt_backbone_turn, ngpt_turn_params, ngpt_turn_result): section
 * "Chat turns" after the Projector section, where ngpt_modality is declared. */

/* ---------------------------------------------------------------------------------------------
 * Diffusion schedulers
 *
 * The samplers of the three decoders, ported from diffusers 0.17: DDIM (NExT-GPT's image, audio
 * and video decoders), DDPM, PNDM/PLMS (Stable Diffusion 1.5's shipped scheduler), DPM-Solver(++)
 * multistep and singlestep, UniPC multistep, DEIS multistep, and the k-diffusion samplers Euler,
 * Euler ancestral, Heun, LMS, KDPM2 and KDPM2 ancestral. A scheduler is built from a
 * diffusers `scheduler_config.json` (any of these classes can be asked for on another's config,
 * as diffusers' `from_config` does); it holds the noise schedule (alphas_cumprod in float32, as
 * diffusers computes it), the timesteps and, for PNDM, DPM-Solver, UniPC, DEIS, Heun, LMS and
 * KDPM2, the history of previous steps (DPM-Solver singlestep: its group's outputs and sample).
 * It computes on host float32 arrays.
 *
 *     ngpt_scheduler *s = NULL;
 *     if (ngpt_scheduler_create(&s, "sd/scheduler/scheduler_config.json", NULL) != NGPT_OK) ...
 *     ngpt_scheduler_set_timesteps(s, 50);
 *     const double *ts; size_t nt;
 *     ngpt_scheduler_timesteps_f64(s, &ts, &nt);
 *     latents *= ngpt_scheduler_init_noise_sigma(s);
 *     for (size_t k = 0; k < nt; k++) {
 *         in = latents; ngpt_scheduler_scale_model_input_f64(s, in, n, ts[k]);
 *         ... eps = unet(in, (float)ts[k]) ...
 *         ngpt_scheduler_step_f64(s, eps, ts[k], latents, n, NULL);   // latents updated in place
 *     }
 *
 * Timesteps: DDIM, DDPM, PNDM, DPM-Solver, UniPC and DEIS use integer timesteps, which the int64
 * calls (ngpt_scheduler_timesteps, _step, ...) take; the k-diffusion samplers' are fractional
 * (float64, as diffusers' numpy linspace gives them), so they need the _f64 calls, which serve
 * every kind (the int64 _step, _scale_model_input and _add_noise take the timestep as its float64
 * value: a k-diffusion timestep that is whole, like the first, 999, is found; the others are not
 * in the schedule, NGPT_ERR_INVALID_ARGUMENT). Randomness: the library draws no random numbers. Where diffusers would draw noise
 * (DDPM, DDIM with eta > 0, the SDE variants of DPM-Solver, Euler ancestral, KDPM2 ancestral),
 * the caller passes it as `variance_noise` (standard normal, one value per sample element, a
 * fresh draw per step).
 * Threads: a scheduler is stateful; use it from one thread at a time. Different schedulers are
 * independent. Errors: NGPT_ERR_BAD_FORMAT (not JSON, a key of the wrong type),
 * NGPT_ERR_UNSUPPORTED (an unknown _class_name / beta_schedule / prediction_type / algorithm,
 * or a diffusers option not ported: thresholding, learned variance, Euler's log_linear
 * interpolation; ngpt_scheduler_timesteps of a k-diffusion sampler), NGPT_ERR_INVALID_ARGUMENT
 * (NULL pointers, steps out of range, a timestep not in the schedule, step before
 * set_timesteps, missing noise), NGPT_ERR_SHAPE_MISMATCH (n changed between steps).
 * DPM-Solver, Euler, Heun and LMS take use_karras_sigmas (Karras et al.'s rho-7 noise levels).
 * UniPC keeps the previous step's sample to correct it: take its steps in order. It runs on
 * samples of any shape (diffusers 0.17's einsum accepts only 4-D ones from the second step on).
 * Heun, KDPM2 and KDPM2 ancestral keep their first-order result between a timestep's two steps:
 * take their steps in order.
 * ------------------------------------------------------------------------------------------- */

typedef struct ngpt_scheduler ngpt_scheduler;  /* opaque */

typedef enum ngpt_scheduler_kind {
    NGPT_SCHEDULER_AUTO                 = 0,  /* from the config's "_class_name" */
    NGPT_SCHEDULER_DDIM                 = 1,  /* DDIMScheduler */
    NGPT_SCHEDULER_PNDM                 = 2,  /* PNDMScheduler (PRK + PLMS, or PLMS only with skip_prk_steps) */
    NGPT_SCHEDULER_DPMSOLVER_MULTISTEP  = 3,  /* DPMSolverMultistepScheduler */
    NGPT_SCHEDULER_EULER                = 4,  /* EulerDiscreteScheduler (s_churn 0; Karras sigmas
                                                 with the config's use_karras_sigmas) */
    NGPT_SCHEDULER_EULER_ANCESTRAL      = 5,  /* EulerAncestralDiscreteScheduler: needs
                                                 variance_noise every step */
    NGPT_SCHEDULER_HEUN                 = 6,  /* HeunDiscreteScheduler (2nd order: 2n - 1 steps,
                                                 each timestep after the first twice) */
    NGPT_SCHEDULER_UNIPC_MULTISTEP      = 7,  /* UniPCMultistepScheduler: each step corrects the
                                                 previous one (UniC) with the new model output,
                                                 then predicts (UniP); solver_order 1-3, B(h)
                                                 bh1 or bh2, predict_x0, disable_corrector */
    NGPT_SCHEDULER_LMS                  = 8,  /* LMSDiscreteScheduler (k-diffusion's linear
                                                 multistep, order 4; Karras sigmas with the
                                                 config's use_karras_sigmas) */
    NGPT_SCHEDULER_KDPM2                = 9,  /* KDPM2DiscreteScheduler (DPM-Solver-2: 2n - 1
                                                 steps, a first-order step to the log-midpoint
                                                 sigma and back from there) */
    NGPT_SCHEDULER_KDPM2_ANCESTRAL      = 10, /* KDPM2AncestralDiscreteScheduler: KDPM2 with
                                                 ancestral noise; needs variance_noise on its
                                                 second-order steps (the even ones, counting from
                                                 1) */
    NGPT_SCHEDULER_DEIS_MULTISTEP       = 11, /* DEISMultistepScheduler (log-rho multistep DEIS,
                                                 solver_order 1-3) */
    NGPT_SCHEDULER_DDPM                 = 12, /* DDPMScheduler (ancestral sampling: needs
                                                 variance_noise at every step but the last;
                                                 variance_type fixed_small, fixed_small_log or
                                                 fixed_large) */
    NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP = 13  /* DPMSolverSinglestepScheduler (dpmsolver++ or
                                                 dpmsolver, midpoint or heun, orders 1-3 in
                                                 groups: each group's steps start from its first
                                                 sample) */
} ngpt_scheduler_kind;

typedef enum ngpt_prediction_type {
    NGPT_PREDICTION_FROM_CONFIG = 0,
    NGPT_PREDICTION_EPSILON     = 1,  /* the model predicts the noise */
    NGPT_PREDICTION_V           = 2,  /* v-prediction */
    NGPT_PREDICTION_SAMPLE      = 3   /* the model predicts x0 (not PNDM, Euler ancestral, Heun,
                                         KDPM2, KDPM2 ancestral) */
} ngpt_prediction_type;

typedef enum ngpt_dpm_algorithm {
    NGPT_DPM_ALGORITHM_FROM_CONFIG = 0,
    NGPT_DPM_DPMSOLVER_PP          = 1,  /* "dpmsolver++" (data prediction) */
    NGPT_DPM_DPMSOLVER             = 2,  /* "dpmsolver" (noise prediction) */
    NGPT_DPM_SDE_DPMSOLVER_PP      = 3,  /* "sde-dpmsolver++": needs variance_noise every step */
    NGPT_DPM_SDE_DPMSOLVER         = 4   /* "sde-dpmsolver": needs variance_noise every step */
} ngpt_dpm_algorithm;

typedef enum ngpt_dpm_solver_type {
    NGPT_DPM_SOLVER_TYPE_FROM_CONFIG = 0,
    NGPT_DPM_SOLVER_MIDPOINT         = 1,
    NGPT_DPM_SOLVER_HEUN             = 2,
    NGPT_DPM_SOLVER_BH1              = 3,  /* UniPC's B(h) = h; DPM-Solver takes it as midpoint */
    NGPT_DPM_SOLVER_BH2              = 4   /* UniPC's B(h) = e^h - 1 (its default); DPM-Solver:
                                              midpoint. UniPC takes midpoint and heun as bh1,
                                              as diffusers does */
} ngpt_dpm_solver_type;

typedef struct ngpt_scheduler_params {
    size_t               struct_size;   /* sizeof(ngpt_scheduler_params), set by _default */
    ngpt_scheduler_kind  kind;          /* default AUTO: from "_class_name" (then required) */
    ngpt_prediction_type prediction_type; /* 0 = from config ("prediction_type", default epsilon) */
    ngpt_dpm_algorithm   algorithm_type;  /* DPM-Solver only; 0 = from config (default dpmsolver++;
                                             singlestep: no SDE variants) */
    ngpt_dpm_solver_type solver_type;     /* DPM-Solver and UniPC; 0 = from config (default
                                             midpoint; UniPC: bh2; DEIS takes every type as its
                                             one, logrho) */
    int32_t              solver_order;    /* DPM-Solver, UniPC and DEIS, 1..3; 0 = from config
                                             (default 2) */
    float                eta;             /* DDIM only: 0 = deterministic (default); > 0 needs
                                             variance_noise in every step; NaN = 0; negative
                                             is refused; above 1 a step whose square-root term
                                             goes negative is refused (diffusers: NaN) */
    int32_t              use_clipped_model_output; /* DDIM only: 1 = re-derive eps from the
                                             clipped x0 (diffusers' use_clipped_model_output) */
    uint32_t             flags;           /* reserved, must be 0 */
} ngpt_scheduler_params;

/* Fill *p with defaults. struct_size is the caller's sizeof(ngpt_scheduler_params). */
NGPT_API ngpt_status ngpt_scheduler_params_default(ngpt_scheduler_params *p, size_t struct_size);
/* Create a scheduler from a diffusers scheduler_config.json (`p` may be NULL: all defaults).
 * Keys absent from the config take the diffusers 0.17 defaults of the chosen class; keys a class
 * does not know are ignored, as diffusers does. Free with ngpt_scheduler_free. */
NGPT_API ngpt_status ngpt_scheduler_create(ngpt_scheduler **out, const char *scheduler_config_json_path,
                                           const ngpt_scheduler_params *p);
/* The same from JSON text of `len` bytes (need not be NUL-terminated). */
NGPT_API ngpt_status ngpt_scheduler_create_from_json(ngpt_scheduler **out, const char *json_text, size_t len,
                                                     const ngpt_scheduler_params *p);
/* NULL is a no-op. */
NGPT_API void ngpt_scheduler_free(ngpt_scheduler *s);
/* The kind in use (never AUTO). */
NGPT_API ngpt_scheduler_kind ngpt_scheduler_get_kind(const ngpt_scheduler *s);
/* Compute the timesteps for n inference steps (1 <= n <= num_train_timesteps) and reset the
 * stepping state. PNDM with skip_prk_steps gives n+1 timesteps (the second one repeated), PNDM
 * with PRK steps more; DPM-Solver multistep, UniPC and DEIS may give fewer (duplicates removed;
 * singlestep keeps them, as diffusers, and steps through them in order); Euler and LMS give n,
 * Heun, KDPM2 and KDPM2 ancestral 2n - 1. */
NGPT_API ngpt_status ngpt_scheduler_set_timesteps(ngpt_scheduler *s, int32_t n);
/* The timesteps, in stepping order (borrowed; valid until the next set_timesteps or free).
 * Before set_timesteps: NGPT_ERR_INVALID_ARGUMENT. The k-diffusion samplers (Euler, Euler
 * ancestral, Heun, LMS, KDPM2, KDPM2 ancestral): NGPT_ERR_UNSUPPORTED (their timesteps are
 * fractional: use ngpt_scheduler_timesteps_f64). */
NGPT_API ngpt_status ngpt_scheduler_timesteps(const ngpt_scheduler *s, const int64_t **ts, size_t *n);
/* One denoising step: sample (n floats, in/out) becomes the sample at the previous timestep.
 * model_output: the model's prediction at `timestep` (n floats); timestep must be one of the
 * schedule's (steps are taken in the schedule's order: PNDM, DPM-Solver, UniPC, DEIS and LMS
 * remember previous outputs). variance_noise: n standard-normal floats for DDPM (but at
 * timestep 0), DDIM with eta > 0, the SDE DPM-Solver variants, every Euler ancestral step and
 * KDPM2 ancestral's second-order steps, else NULL (ignored). n must stay the same until
 * set_timesteps/reset. */
NGPT_API ngpt_status ngpt_scheduler_step(ngpt_scheduler *s, const float *model_output, int64_t timestep,
                                         float *sample, size_t n, const float *variance_noise);
/* Forget the stepping history (the previous outputs of the multistep samplers, Heun's and KDPM2's
 * first-order step) but keep the timesteps: the next step starts the trajectory again. */
NGPT_API ngpt_status ngpt_scheduler_reset(ngpt_scheduler *s);
/* alphas_cumprod, float32 [num_train_timesteps] (borrowed; lives as long as s). */
NGPT_API ngpt_status ngpt_scheduler_alphas_cumprod(const ngpt_scheduler *s, const float **acp, size_t *n);
/* The standard deviation of the initial noise: 1.0, or for Euler, Euler ancestral and LMS the largest
 * sigma of the training schedule (diffusers' init_noise_sigma, ~14.6 for SD 1.5), for Heun, KDPM2
 * and KDPM2 ancestral the largest of the last set_timesteps' sigmas (before it: the training
 * schedule's); 1.0 for s NULL. */
NGPT_API float ngpt_scheduler_init_noise_sigma(const ngpt_scheduler *s);
/* scale_model_input, sample (n floats) in place: the identity for DDIM, DDPM, PNDM, DPM-Solver,
 * UniPC and DEIS (checks its arguments, changes nothing); the k-diffusion samplers divide by
 * (sigma^2 + 1)^0.5 at the timestep, which must be one of the schedule's. Call it on the model's
 * input every step, before that step's ngpt_scheduler_step (Heun's and KDPM2's sigmas depend on
 * their state: KDPM2 scales its second-order steps by the interpolated sigma). */
NGPT_API ngpt_status ngpt_scheduler_scale_model_input(const ngpt_scheduler *s, float *sample, size_t n,
                                                      int64_t timestep);
/* add_noise (img2img): out = sqrt(acp[t]) * original + sqrt(1 - acp[t]) * noise, 0 <= t <
 * num_train_timesteps; the k-diffusion samplers: out = original + sigma(t) * noise, t one of
 * the schedule's timesteps. out may alias original or noise. */
NGPT_API ngpt_status ngpt_scheduler_add_noise(const ngpt_scheduler *s, float *out, const float *original,
                                              const float *noise, size_t n, int64_t timestep);
/* The timesteps as float64, in stepping order (borrowed, as ngpt_scheduler_timesteps), for every
 * kind: the integer ones exactly, the k-diffusion samplers' fractional ones as diffusers computes
 * them. The model sees them rounded to float32, as diffusers' time projection does. */
NGPT_API ngpt_status ngpt_scheduler_timesteps_f64(const ngpt_scheduler *s, const double **ts, size_t *n);
/* ngpt_scheduler_step, _scale_model_input and _add_noise with a float64 timestep (for every
 * kind; one of ngpt_scheduler_timesteps_f64's, compared exactly). */
NGPT_API ngpt_status ngpt_scheduler_step_f64(ngpt_scheduler *s, const float *model_output, double timestep,
                                             float *sample, size_t n, const float *variance_noise);
NGPT_API ngpt_status ngpt_scheduler_scale_model_input_f64(const ngpt_scheduler *s, float *sample, size_t n,
                                                          double timestep);
NGPT_API ngpt_status ngpt_scheduler_add_noise_f64(const ngpt_scheduler *s, float *out, const float *original,
                                                  const float *noise, size_t n, double timestep);

/* ---------------------------------------------------------------------------------------------
 * Media preprocessing
 *
 * Decoded media and ImageBind's input transforms, reproducing NExT-GPT's Python pipeline
 * (ImageBind data.py with Pillow 9.4, torchvision 0.14, torchaudio 0.13, pytorchvideo):
 *
 *     ngpt_image *img = NULL;
 *     if (ngpt_image_load(&img, "cat.jpg") != NGPT_OK) { ... ngpt_last_error() ... }
 *     ngpt_tensor pixels;                        // F32 [3,224,224], library-owned
 *     ngpt_image_preprocess(&pixels, img);
 *     ... feed to the vision encoder ...
 *     ngpt_tensor_free(&pixels);
 *     ngpt_image_free(img);
 *
 * Images: JPEG (baseline, progressive, grayscale, CMYK; libjpeg-turbo), PNG (every colour
 * type and bit depth, interlaced; libpng), WebP (lossy, lossless, alpha; the first frame of
 * an animation; libwebp), GIF (the first image, laid out as Pillow does; giflib), BMP
 * (1 to 32 bits, RLE4/RLE8, bitfields, OS/2 headers), TIFF (uncompressed, LZW, Deflate,
 * PackBits, CCITT, JPEG; strips or tiles; gray, RGB(A), palette, CMYK, YCbCr JPEG; 1 to 16
 * bits) and Netpbm (PBM/PGM/PPM, raw and plain, any maxval) through libavcodec, and ICO (the
 * entry Pillow opens: the largest, then the deepest; PNG or DIB), recognised by their first
 * bytes, not by the file name. Old-style JPEG TIFF, BigTIFF and HEIF/AVIF are refused
 * (NGPT_ERR_UNSUPPORTED).
 * Pixels are RGB8 as Pillow's convert("RGB") gives them: alpha is dropped (not composited),
 * palettes looked up, 16-bit samples reduced as Pillow does; EXIF orientation (JPEG, PNG,
 * WebP) NOT applied, a TIFF's Orientation tag applied: Pillow 9.4 does the same on open.
 * Images larger than 65535 pixels a side or 178956970 pixels (where Pillow 9.4 raises
 * DecompressionBombError) are refused (NGPT_ERR_UNSUPPORTED).
 * Audio: whatever libsndfile reads (WAV, FLAC, OGG/Vorbis, Opus, AIFF, ...) and MP3 (through
 * FFmpeg); samples are float as torchaudio.load gives them: integer PCM scaled by 1/2^(bits-1),
 * float data clipped to [-1, 1] (NaN to -1), Vorbis rounded to 16-bit values (sox's decoder),
 * Opus decoded at 48 kHz, MP3 decoded by FFmpeg and not clipped (torchaudio 0.12+ reads it so).
 * Files libsndfile cannot open (AAC/M4A, WMA, AC-3, a video's sound track, ...) are decoded by
 * FFmpeg, as torchaudio.load falls back to it: the best audio stream, samples not clipped; a
 * non-finite sample is NGPT_ERR_BAD_FORMAT. Video: whatever libavformat/libavcodec read.
 * Errors: NGPT_ERR_NOT_FOUND / NGPT_ERR_IO (the file cannot be read), NGPT_ERR_BAD_FORMAT
 * (empty, truncated, corrupt or not a supported media file), NGPT_ERR_UNSUPPORTED (a known but
 * unsupported format, or too large); the message names the file (or the `name` given for a
 * memory buffer) and what is wrong. The decoders never print.
 * Handles are independent of any context and may be used from any thread, one at a time.
 * ------------------------------------------------------------------------------------------- */

typedef struct ngpt_image ngpt_image;  /* opaque: a decoded RGB8 image */
typedef struct ngpt_audio ngpt_audio;  /* opaque: decoded float samples */

/* Decode the image file at `path`. Free with ngpt_image_free. */
NGPT_API ngpt_status ngpt_image_load(ngpt_image **out, const char *path);
/* Decode an image held in memory (`size` bytes, copied as needed; the caller keeps `data`).
 * `name` labels error messages; NULL = "<memory>". */
NGPT_API ngpt_status ngpt_image_load_memory(ngpt_image **out, const void *data, size_t size,
                                            const char *name);
/* Wrap packed RGB8 pixels (copied): `height` rows of `width` x 3 bytes, `stride` bytes apart
 * (0 = width * 3). */
NGPT_API ngpt_status ngpt_image_from_rgb8(ngpt_image **out, const uint8_t *rgb, int32_t width,
                                          int32_t height, size_t stride);
/* Size in pixels (0 for NULL). */
NGPT_API int32_t ngpt_image_width(const ngpt_image *img);
NGPT_API int32_t ngpt_image_height(const ngpt_image *img);
/* Packed RGB8, row-major, width * 3 bytes per row, no padding. Borrowed from img. */
NGPT_API const uint8_t *ngpt_image_pixels(const ngpt_image *img);
/* NULL is a no-op. */
NGPT_API void ngpt_image_free(ngpt_image *img);

/* ImageBind's vision transform: Resize(224, bicubic; Pillow's exact fixed-point filter, short
 * side 224), CenterCrop(224), ToTensor, Normalize(CLIP mean/std). *out becomes a library-owned
 * F32 [3,224,224] tensor (free with ngpt_tensor_free). */
NGPT_API ngpt_status ngpt_image_preprocess(ngpt_tensor *out, const ngpt_image *img);

/* The Stable Diffusion pipeline's last step: F32 [B,3,H,W] (a VAE output, nominally [-1,1]) ->
 * library-owned U8 [B,H,W,3] = round_half_even(clamp(x / 2 + 0.5, 0, 1) * 255). */
NGPT_API ngpt_status ngpt_image_postprocess(ngpt_tensor *out, const ngpt_tensor *image);

/* Decode the audio file at `path`. Free with ngpt_audio_free. */
NGPT_API ngpt_status ngpt_audio_load(ngpt_audio **out, const char *path);
/* Decode audio held in memory; `name` labels error messages (NULL = "<memory>"). */
NGPT_API ngpt_status ngpt_audio_load_memory(ngpt_audio **out, const void *data, size_t size,
                                            const char *name);
/* Wrap float samples (copied), interleaved [n_frames][channels], nominally in [-1, 1]. */
NGPT_API ngpt_status ngpt_audio_from_pcm(ngpt_audio **out, const float *samples, int64_t n_frames,
                                         int32_t channels, int32_t sample_rate);
/* Sample rate in Hz, channel count, frames (samples per channel); 0 for NULL. */
NGPT_API int32_t ngpt_audio_sample_rate(const ngpt_audio *a);
NGPT_API int32_t ngpt_audio_channels(const ngpt_audio *a);
NGPT_API int64_t ngpt_audio_frames(const ngpt_audio *a);
/* Interleaved float samples [frames][channels]. Borrowed from a. */
NGPT_API const float *ngpt_audio_samples(const ngpt_audio *a);
/* NULL is a no-op. */
NGPT_API void ngpt_audio_free(ngpt_audio *a);

/* Where the clips of a media item start: pytorchvideo's ConstantClipsPerVideoSampler places
 * clip k of n at k * max(duration - clip, 0) / DIV. */
typedef enum ngpt_clip_rule {
    NGPT_CLIP_RULE_PYTORCHVIDEO_0_1_5 = 0, /* DIV = n (PyPI 0.1.5, pinned by NExT-GPT; default) */
    NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED = 1  /* DIV = n - 1 (the later fix that ImageBind pins) */
} ngpt_clip_rule;

typedef struct ngpt_audio_preprocess_params {
    size_t         struct_size; /* sizeof(ngpt_audio_preprocess_params), set by _default */
    ngpt_clip_rule clip_rule;   /* default NGPT_CLIP_RULE_PYTORCHVIDEO_0_1_5 */
    uint32_t       flags;       /* reserved, 0 */
} ngpt_audio_preprocess_params;

/* Fill *p with defaults. struct_size is the caller's sizeof(ngpt_audio_preprocess_params). */
NGPT_API ngpt_status ngpt_audio_preprocess_params_default(ngpt_audio_preprocess_params *p,
                                                          size_t struct_size);
/* ImageBind's audio transform: resample to 16 kHz (torchaudio's windowed sinc), 3 clips of 2 s,
 * per clip mean removal and Kaldi fbank of the first channel (128 mel bins, 25 ms / 10 ms,
 * Hann, HTK mel), padded or cropped to 204 frames, normalised (x + 4.268) / 9.138.
 * *out becomes a library-owned F32 [3,1,128,204] tensor. `p` may be NULL (defaults).
 * A sound shorter than one fbank window (400 samples at 16 kHz, 25 ms) has no such transform
 * (upstream's Kaldi fbank raises): NGPT_ERR_INVALID_ARGUMENT. */
NGPT_API ngpt_status ngpt_audio_preprocess(ngpt_tensor *out, const ngpt_audio *a,
                                           const ngpt_audio_preprocess_params *p);

typedef struct ngpt_video_preprocess_params {
    size_t         struct_size; /* sizeof(ngpt_video_preprocess_params), set by _default */
    ngpt_clip_rule clip_rule;   /* default NGPT_CLIP_RULE_PYTORCHVIDEO_0_1_5 */
    uint32_t       flags;       /* reserved, 0 */
} ngpt_video_preprocess_params;

/* Fill *p with defaults. struct_size is the caller's sizeof(ngpt_video_preprocess_params). */
NGPT_API ngpt_status ngpt_video_preprocess_params_default(ngpt_video_preprocess_params *p,
                                                          size_t struct_size);
/* ImageBind's video transform of the video file at `path` (any container and codec this
 * build's FFmpeg decodes; the best video stream, audio ignored): 5 clips of 2 s (frame indices
 * as decord + pytorchvideo 0.1.5 compute them), the first and last frame of each, RGB (BT.601,
 * limited range), turned upright for a 90/180/270 degree rotation tag or display matrix (as
 * decord does), short side scaled to 224 (bilinear), Normalize(CLIP mean/std), 3 crops
 * (left/centre/right; top/centre/bottom for portrait). *out becomes a library-owned F32
 * [15,3,2,224,224] tensor: index 3 * clip + crop, then channel, frame, y, x. `p` may be NULL.
 * FFmpeg's log level is process-wide: the first call sets it to AV_LOG_QUIET if it is still
 * FFmpeg's default, so that the library prints nothing. */
NGPT_API ngpt_status ngpt_video_preprocess(ngpt_tensor *out, const char *path,
                                           const ngpt_video_preprocess_params *p);
/* The same for a video held in memory; `name` labels error messages (NULL = "<memory>"). */
NGPT_API ngpt_status ngpt_video_preprocess_memory(ngpt_tensor *out, const void *data, size_t size,
                                                  const char *name,
                                                  const ngpt_video_preprocess_params *p);

/* ---------------------------------------------------------------------------------------------
 * Decoders: conditioning -> image (Stable Diffusion 1.5), audio (AudioLDM), video (Zeroscope)
 *
 * A decoder is loaded from a diffusers pipeline folder (model_index.json + unet/, vae/,
 * scheduler/, and vocoder/ for AudioLDM; text_encoder/ + tokenizer/ when present). The kind
 * comes from model_index.json's "_class_name" (StableDiffusionPipeline -> IMAGE,
 * AudioLDMPipeline -> AUDIO, TextToVideoSDPipeline -> VIDEO) unless the params name one: for a
 * folder without model_index.json, or with a pipeline class not listed here; one that names a
 * listed class of another kind is NGPT_ERR_BAD_FORMAT.
 * Every size is read from the components' config.json files.
 *
 * Stage by stage (all tensors host memory; outputs library-owned F32, free with
 * ngpt_tensor_free):
 *   ngpt_decoder_unet        one denoiser evaluation (UNet2DConditionModel / UNet3DConditionModel)
 *   ngpt_decoder_vae_decode  latents (already divided by the VAE's scaling factor) -> pixels/mel
 *   ngpt_decoder_vocoder     mel spectrogram -> waveform (AudioLDM's SpeechT5HifiGan)
 *   ngpt_decoder_safety_check  images -> SD's safety-checker verdicts (NGPT_DECODER_FLAG_SAFETY_CHECKER)
 *
 * Threads: one thread at a time per decoder; weights are read-only after create.
 * ------------------------------------------------------------------------------------------- */

typedef enum ngpt_decoder_kind {
    NGPT_DECODER_AUTO  = 0,  /* from model_index.json */
    NGPT_DECODER_IMAGE = 1,  /* Stable Diffusion (UNet2DConditionModel + AutoencoderKL) */
    NGPT_DECODER_AUDIO = 2,  /* AudioLDM (UNet2D with class embedding + mel VAE + HiFi-GAN) */
    NGPT_DECODER_VIDEO = 3   /* Zeroscope (UNet3DConditionModel + frame-wise AutoencoderKL) */
} ngpt_decoder_kind;

/* Components to load (bit set); 0 = every component the folder has (the safety checker loads
 * only on NGPT_DECODER_FLAG_SAFETY_CHECKER). */
#define NGPT_DECODER_UNET         0x1u
#define NGPT_DECODER_VAE          0x2u
#define NGPT_DECODER_VOCODER      0x4u
#define NGPT_DECODER_TEXT_ENCODER 0x8u

/* ngpt_decoder_params.flags: compute the text encoder's embedding of "" (the unconditional input
 * of classifier-free guidance: [1, ngpt_decoder_text_max_length, hidden], AUDIO [1, projection
 * dim]) at create, then free the text encoder and tokenizer. For callers that condition on
 * embeddings only, as the pipeline does: the text encoder's memory (CLIP-L: 0.23 GiB in F16) is
 * not held. ngpt_decoder_generate with uncond NULL then works for conditioning of that token
 * count; the text calls return NGPT_ERR_UNSUPPORTED; text_max_length and text_hidden_size keep
 * describing the kept embedding. No effect on a decoder without a text encoder. */
#define NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER 0x1u
/* ngpt_decoder_params.flags: on a CUDA context, record one denoising step (the UNet and its
 * dtype casts) as a CUDA graph at the second step of each ngpt_decoder_generate and replay it for
 * the rest, instead of launching its ~1000 operations one by one. Same results as without (the
 * same kernels on the same buffers). Where the step cannot be recorded it runs as without the
 * flag and the reason is logged at INFO. No effect on the CPU. Off by default (set it for CUDA:
 * on an H200, AudioLDM 9 s 0.78 -> 0.57 s, SD 1.5 50 steps 0.75 -> 0.69 s; bench/RESULTS.md, GPU
 * run 7; NGPT_PIPELINE_CUDA_GRAPHS sets it on CUDA, and the nextgpt CLI by default). */
#define NGPT_DECODER_FLAG_CUDA_GRAPH 0x2u
/* ngpt_decoder_params.flags: run the UNet's and the VAE's activations channels last
 * ([N, H, W, C] inside; every tensor across this API keeps its NCHW layout) with their conv
 * filters permuted once at create. On CUDA that is the layout cuDNN's tensor-core convolutions
 * work in (no transposes around each of a step's ~60 convolutions) and the UNet's transformers
 * then need no permutes. Same results as without within rounding. On the CPU it works too, but
 * the permuted filters are copies (not mapped from the file) and in F32 the NCHW paths are the
 * faster ones there; a decoder with compute_dtype BF16 on a CPU with AMX-BF16 runs channels last
 * inside with or without this flag (its convolutions' layout). VIDEO's 3-D UNet too (its
 * temporal convolutions and GroupNorms then need no permutes). A decoder with compute_dtype F16
 * or BF16 on CUDA runs channels last with or without this flag (an H200's SD 1.5 UNet step: 13.3
 * ms against 19.5 NCHW; bench/RESULTS.md, GPU run 7); the flag matters for F32 on CUDA and on the
 * CPU. */
#define NGPT_DECODER_FLAG_CHANNELS_LAST 0x4u
/* ngpt_decoder_params.flags (IMAGE): also load Stable Diffusion's safety checker,
 * safety_checker/ (a CLIP ViT vision tower + concept embeddings: 1.2 GB in F32 for SD 1.5's) and
 * feature_extractor/ (NGPT_ERR_NOT_FOUND without them). ngpt_decoder_generate then runs it on
 * its images and blacks out the flagged ones, as NExT-GPT's pipeline does (it loads SD 1.5 with
 * its checker); ngpt_decoder_safety_check runs it on any image. Off by default: the library's
 * reference outputs, like the golden cases, are the unfiltered images. */
#define NGPT_DECODER_FLAG_SAFETY_CHECKER 0x8u

typedef struct ngpt_decoder_params {
    size_t            struct_size;  /* sizeof(ngpt_decoder_params), set by _default */
    ngpt_decoder_kind kind;         /* default AUTO */
    uint32_t          components;   /* NGPT_DECODER_* bits; 0 = all present */
    uint32_t          flags;        /* NGPT_DECODER_FLAG_* bits, default 0 */
    ngpt_dtype        compute_dtype; /* activations of the UNet, VAE and text encoder, and the dtype
                                      * their weights are converted to once at create:
                                      * NGPT_DTYPE_F32 (default), or NGPT_DTYPE_F16 / NGPT_DTYPE_BF16
                                      * on the CUDA backend (tensor-core GEMMs and convolutions).
                                      * BF16 on the CPU: activations stay F32; the UNet's and VAE's
                                      * matrices and conv filters are converted to BF16 at create
                                      * (owned copies, half the bytes of F32 ones), and their
                                      * linears and convolutions take BF16 inputs with F32
                                      * accumulation (oneDNN's bf16 kernels: fast where the CPU has
                                      * AVX512-BF16 or AMX; without AVX-512 the convolutions stay
                                      * F32; with AMX the UNet and VAE run channels last inside,
                                      * as NGPT_DECODER_FLAG_CHANNELS_LAST, for oneDNN's AMX
                                      * convolutions). Scoped to this decoder's calls. The text
                                      * encoder stays F32 there. F16 on the CPU:
                                      * NGPT_ERR_UNSUPPORTED. Scheduler math, the guidance
                                      * combine and every tensor across this API stay F32. The
                                      * vocoder (AUDIO) computes in F32, except BF16 on a CPU
                                      * with AMX: BF16 filters, channels last inside (5 s of
                                      * AudioLDM audio 1.21 s -> 0.43 s on 2 cores). */
} ngpt_decoder_params;

/* Fill *p with defaults. struct_size is the caller's sizeof(ngpt_decoder_params). */
NGPT_API ngpt_status ngpt_decoder_params_default(ngpt_decoder_params *p, size_t struct_size);
/* Load the decoder in folder `model_dir` onto ctx's backend (`p` may be NULL). Errors name the
 * component folder and the file, tensor and shapes. Free with ngpt_decoder_free before ctx. */
NGPT_API ngpt_status ngpt_decoder_create(ngpt_decoder **out, ngpt_context *ctx, const char *model_dir,
                                         const ngpt_decoder_params *p);
/* NULL is a no-op. */
NGPT_API void ngpt_decoder_free(ngpt_decoder *d);
/* The kind in use (never AUTO); AUTO for NULL. */
NGPT_API ngpt_decoder_kind ngpt_decoder_get_kind(const ngpt_decoder *d);

/* One denoiser evaluation: sample F32 [B, C, h, w] (IMAGE, AUDIO) or [B, C, F, h, w] (VIDEO);
 * timesteps [B] or [1] (I64 or float; a single timestep is broadcast over the batch);
 * encoder_hidden_states [B, S, cross_attention_dim] for IMAGE and VIDEO (NULL for AUDIO);
 * class_labels [B, D] for AUDIO (the projected CLAP/NExT-GPT embedding; NULL otherwise).
 * *out: F32 with the shape of sample. NGPT_ERR_UNSUPPORTED without a loaded UNet. */
NGPT_API ngpt_status ngpt_decoder_unet(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *sample,
                                       const ngpt_tensor *timesteps,
                                       const ngpt_tensor *encoder_hidden_states,
                                       const ngpt_tensor *class_labels);
/* VAE decode: latents F32 [B, latent_channels, h, w] ALREADY divided by the scaling factor
 * (VIDEO: [B, C, F, h, w], decoded frame by frame) -> *out F32 [B, out_channels, 8h, 8w]
 * (VIDEO [B, 3, F, 8h, 8w]), unclamped. */
NGPT_API ngpt_status ngpt_decoder_vae_decode(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *latents);
/* The factor ngpt_decoder_generate divides the final latents by before the VAE: IMAGE 0.18215
 * whatever vae/config.json says (NExT-GPT's custom_sd.decode_latents hard-codes SD 1.5's value);
 * AUDIO and VIDEO vae/config.json's scaling_factor (default 0.18215). 0 without a VAE. */
NGPT_API float ngpt_decoder_vae_scaling_factor(const ngpt_decoder *d);
/* AUDIO: the vocoder's sampling_rate (vocoder/config.json, Hz: 16000 for AudioLDM), the rate of
 * ngpt_decoder_generate's waveform; 0 for other kinds or without a vocoder. */
NGPT_API int32_t ngpt_decoder_sample_rate(const ngpt_decoder *d);
/* AUDIO only: mel F32 [B, T, n_mels] (or [T, n_mels], or the VAE's [B, 1, T, n_mels]) -> *out F32
 * [B, L] (or [L]) waveform,
 * L = the exact ConvTranspose1d length of the vocoder: 160 T + 32 for AudioLDM's (T * hop
 * when every upsample kernel minus its rate is even). Not cropped. */
NGPT_API ngpt_status ngpt_decoder_vocoder(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *mel);
/* VAE encode (image-to-image, round trips): image F32 [B, in_channels, H, W] (pixels in [-1, 1];
 * H, W multiples of the VAE's scale, 8 for SD) -> *mean F32 [B, latent_channels, H/8, W/8], the
 * mean of AutoencoderKL.encode(image).latent_dist, NOT multiplied by the scaling factor (for
 * latents as the UNet sees them: mean * ngpt_decoder_vae_scaling_factor). logvar may be NULL;
 * else *logvar gets the distribution's log-variance, clamped to [-30, 20] as diffusers does
 * (sample = mean + exp(0.5 * logvar) * noise). The encoder's weights are resolved on the first
 * call (the decoder's VAE folder must hold them: NGPT_ERR_NOT_FOUND naming the tensor if not).
 * Any decoder kind with a VAE (VIDEO: pass frames as the batch). */
NGPT_API ngpt_status ngpt_decoder_vae_encode(ngpt_decoder *d, ngpt_tensor *mean, ngpt_tensor *logvar,
                                             const ngpt_tensor *image);
/* Image-to-image from a picture (IMAGE decoders): ngpt_decode_params.init_latents as diffusers
 * 0.17's StableDiffusionImg2ImgPipeline makes them from a PIL image. VaeImageProcessor.preprocess:
 * each side cut down to a multiple of the VAE's scale (8), the picture resized to that by
 * Pillow's Lanczos filter (left as it is when both sides already are multiples), pixels
 * u8 / 255 x 2 - 1 in float32; then vae.encode(x).latent_dist.sample(): *out F32
 * [1, latent_channels, H/8, W/8] = (mean + exp(logvar / 2) x noise) x the scaling factor
 * (ngpt_decoder_vae_scaling_factor), the noise standard normal from `seed` by the generator
 * ngpt_decoder_generate documents (pass the generate call another seed, or its noise is this
 * draw again); sample = 0: mean x the scaling factor (the distribution's mode, no noise).
 * Pass *out as init_latents with the size left 0 (ngpt_decoder_generate takes it from there).
 * Sides under 8 pixels, or over NGPT_DECODE_MAX_SIDE after the cut: NGPT_ERR_INVALID_ARGUMENT. */
NGPT_API ngpt_status ngpt_decoder_image_latents(ngpt_decoder *d, ngpt_tensor *out, const ngpt_image *img,
                                                int32_t sample, uint64_t seed);
/* Video-to-video from frames (VIDEO decoders): init_latents as diffusers 0.18's
 * VideoToVideoSDPipeline makes them from a list of frames. preprocess_video: frames U8
 * [F, H, W, 3] RGB (/ 255 in float32) or F32 in [0, 1], not resized (H and W multiples of the
 * VAE's scale, as the pipeline requires), x 2 - 1; the frames through the VAE encoder as a
 * batch (here one frame per call: the same values, one frame's memory), sample() or the mean as
 * ngpt_decoder_image_latents says, the noise one draw over [F, latent_channels, H/8, W/8] in that
 * order; x the scaling factor; *out F32 [1, latent_channels, F, H/8, W/8] (the pipeline's
 * permute back). F in [1, 256]. Pass *out as init_latents with the size and num_frames left 0. */
NGPT_API ngpt_status ngpt_decoder_video_latents(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *frames,
                                                int32_t sample, uint64_t seed);

/* Called after every denoising step (step = 1..total, elapsed seconds since the call began);
 * return false to cancel (the call then returns NGPT_ERR_CANCELLED). total counts the UNet
 * evaluations of the schedule: num_inference_steps, but one more for PNDM (diffusers repeats
 * its first timestep). */
typedef bool (*ngpt_step_fn)(int32_t step, int32_t total, float elapsed_s, void *user_data);

/* A cheap look at the denoising in progress, after step `step` of `total`: `latents` F32 (the
 * current latents, shaped as ngpt_decode_params.latents) and, for the 4-channel latents of
 * IMAGE/VIDEO decoders, `rgb` F32 [B, h, w, 3] (VIDEO: [B, F, h, w, 3]) in [0, 1] at the latent
 * resolution (h = height / 8): a fixed linear map of the 4 latent channels to RGB (the SD 1.x
 * latent-to-RGB approximation preview tools use; no VAE run), NULL for AUDIO. Both are borrowed
 * for the duration of the call. Return false to cancel (NGPT_ERR_CANCELLED). Setting it costs one
 * download of the latents per step. */
typedef bool (*ngpt_preview_fn)(int32_t step, int32_t total, const ngpt_tensor *latents, const ngpt_tensor *rgb,
                                void *user_data);

/* The largest image / video side (pixels) ngpt_decoder_generate and the pipeline take. */
#define NGPT_DECODE_MAX_SIDE 4096

typedef struct ngpt_decode_params {
    size_t              struct_size;         /* sizeof(ngpt_decode_params), set by _default */
    int32_t             num_inference_steps; /* 0 = 50 (NExT-GPT's setting) */
    float               guidance_scale;      /* 0 = 7.5 (NExT-GPT's); <= 1 runs without guidance */
    ngpt_scheduler_kind scheduler;           /* AUTO = the folder's scheduler_config.json class;
                                                another kind runs on that config (from_config) */
    float               eta;                 /* DDIM eta (0 = deterministic; > 0 draws noise from seed) */
    int32_t             height, width;       /* pixels; 0 = defaults: image 512x512 (unet sample_size x 8),
                                                video 320x576; multiples of 8, at most
                                                NGPT_DECODE_MAX_SIDE */
    int32_t             num_frames;          /* video; 0 = 24 */
    double              audio_length_s;      /* audio; 0 = 5 s; at most 60 s, at least the vocoder's hop
                                                x the VAE's scale (0.04 s for AudioLDM); double, as the
                                                pipeline's Python float: int(0.32 * 16000) must be 5120 */
    uint64_t            seed;                /* initial noise when `latents` is NULL (see below) */
    const ngpt_tensor  *latents;             /* the caller's initial noise, or NULL; shape
                                                image [B, 4, h/8, w/8], audio [B, 8, frames/4, 16],
                                                video [B, 4, F, h/8, w/8] (8, 4: the VAE's scale
                                                of SD / AudioLDM; other VAEs, theirs) */
    ngpt_step_fn        on_step;             /* NULL = none */
    void               *user_data;           /* on_step's and on_preview's */
    /* Appended in 0.x (an older caller's shorter struct reads as NULL): */
    ngpt_preview_fn     on_preview;          /* NULL = none; after on_step when both are set */
    /* Appended in 0.x (an older caller's shorter struct reads as NULL / 0.8): image-to-image,
     * and video-to-video / audio-to-audio the same way (see ngpt_decoder_generate): */
    const ngpt_tensor  *init_latents;        /* NULL = from noise alone. Else the latents to start
                                                from, F32, shaped as `latents`: diffusers'
                                                init_latents, vae.encode(x).latent_dist.sample() (or
                                                its mean) x the VAE's scaling factor, i.e.
                                                ngpt_decoder_vae_encode's mean (+ exp(logvar / 2) x
                                                noise) x ngpt_decoder_vae_scaling_factor */
    double              strength;            /* with init_latents: the part of the schedule that
                                                runs, in (0, 1]; default 0.8 (diffusers'). 1 runs
                                                every step from init_latents fully noised. double,
                                                as Python's float: int(10 x 0.7) must be 7 */
} ngpt_decode_params;

/* Fill *p with defaults. struct_size is the caller's sizeof(ngpt_decode_params). */
NGPT_API ngpt_status ngpt_decode_params_default(ngpt_decode_params *p, size_t struct_size);

/* The diffusers pipeline of the decoder's kind, as NExT-GPT calls it with prompt_embeds:
 * latents (given, or standard-normal noise from `seed` — xoshiro256** seeded by splitmix64,
 * Box-Muller pairs, in row-major order, generated on the host so CPU and CUDA start from the same
 * latents) x init_noise_sigma; per timestep the UNet on [uncond; cond] (through the scheduler's
 * scale_model_input, at the timestep rounded to float32; classifier-free guidance
 * eps = u + g (c - u); the conditional batch only when g <= 1) and a scheduler step, both on the
 * context's device in F32 (the latents come back to the host once, for the decode); then
 *   IMAGE: *out F32 [B, H, W, 3] = clamp(vae.decode(latents / scaling) / 2 + 0.5, 0, 1); with
 *          the safety checker loaded (NGPT_DECODER_FLAG_SAFETY_CHECKER) each image it flags is
 *          all zeros (black) and *aux gets the flags, BOOL [B] (the pipeline's
 *          nsfw_content_detected);
 *   AUDIO: *out F32 [B, n] = vocoder(mel)[:, :int(audio_length_s * sample rate)] (n: that
 *          length, or the vocoder's when the mel frames give fewer samples), with
 *          mel = vae.decode(latents / scaling) F32 [B, 1, frames, n_mels] returned in *aux;
 *   VIDEO: *out F32 [B, 3, F, H, W] = vae.decode of each frame (unclamped, as the pipeline).
 * cond: IMAGE/VIDEO [B, 77, cross_attention_dim] (the output projector's result), AUDIO [B, D]
 * (the audio output projector's [B, 1, D] is taken as that).
 * uncond: the same shape: the text encoder's embedding of "" (NExT-GPT's negative prompt); NULL
 * = computed by the decoder's text encoder (see "Text" below; NGPT_ERR_UNSUPPORTED without
 * one), or not needed when guidance_scale <= 1. aux may be NULL (AUDIO; IMAGE with the safety
 * checker; else left empty). The noise a
 * scheduler draws each step (DDPM, DDIM eta > 0, SDE DPM-Solver, Euler and KDPM2 ancestral) comes
 * from `seed` too, so a seed gives the same output on every run. scaling: see
 * ngpt_decoder_vae_scaling_factor. The IMAGE decoder reads its scheduler config as custom_sd's
 * constructor leaves it: steps_offset 1 and clip_sample false, whatever the file says.
 * With init_latents (image-to-image; diffusers 0.17's StableDiffusionImg2ImgPipeline.get_timesteps
 * and prepare_latents, the rest as above): init = min(int(steps x strength), steps) steps run, the
 * schedule's last ones (timesteps[(steps - init) x order:], order 2 for Heun and KDPM2, else 1;
 * on_step's total counts them), starting from scheduler.add_noise(init_latents, noise, first
 * of those timesteps) instead of noise x init_noise_sigma; the noise is `latents` or drawn from
 * `seed` as above. The size comes from the params as without it, and must match init_latents;
 * IMAGE/VIDEO with height and width 0 take it from init_latents (VIDEO: num_frames 0 too). An
 * init_latents batch that divides cond's is repeated over it (diffusers' torch.cat([init] x k));
 * strength x steps < 1 runs no step: NGPT_ERR_INVALID_ARGUMENT. */
NGPT_API ngpt_status ngpt_decoder_generate(ngpt_decoder *d, ngpt_tensor *out, ngpt_tensor *aux,
                                           const ngpt_tensor *cond, const ngpt_tensor *uncond,
                                           const ngpt_decode_params *p);

/* The safety checker (IMAGE decoders created with NGPT_DECODER_FLAG_SAFETY_CHECKER) as
 * diffusers 0.17's StableDiffusionSafetyChecker runs inside NExT-GPT's pipeline: images F32
 * [B, H, W, 3] in [0, 1] (ngpt_decoder_generate's output; rounded to 8 bits as the pipeline's
 * numpy_to_pil does) or U8 [B, H, W, 3] ([H, W, 3]: one image) -> CLIPImageProcessor
 * (feature_extractor/preprocessor_config.json) -> CLIP vision tower + projection -> cosine
 * similarity with each concept embedding minus its threshold, rounded to 3 decimals
 * (+ 0.01 for every later score once a "special care" concept scores above 0). Outputs,
 * library-owned: *nsfw BOOL [B] (some concept scores above 0: the images the pipeline blacks
 * out); *special_scores F32 [B, 3] and *concept_scores F32 [B, 17] (SD 1.5's counts; the
 * pipeline's result dicts), each may be NULL. The images are not changed.
 * NGPT_ERR_UNSUPPORTED without a checker; F32 values outside [0, 1] are
 * NGPT_ERR_INVALID_ARGUMENT. */
NGPT_API ngpt_status ngpt_decoder_safety_check(ngpt_decoder *d, ngpt_tensor *nsfw, ngpt_tensor *special_scores,
                                               ngpt_tensor *concept_scores, const ngpt_tensor *images);

/* Text (decoders with text_encoder/ + tokenizer/, loaded by default when the folder has both,
 * or on NGPT_DECODER_TEXT_ENCODER):
 *  - IMAGE, VIDEO: the pipelines' CLIPTokenizer (vocab.json + merges.txt; transformers 4.29's
 *    slow tokenizer without ftfy: control characters dropped, whitespace collapsed, CJK
 *    ideographs split, NFC, lower-cased, CLIP's regex, byte-level BPE) and CLIPTextModel
 *    (last_hidden_state [B, S, hidden]).
 *  - AUDIO: AudioLDM's RobertaTokenizer (GPT-2's byte-level BPE, no normalisation) and CLAP's
 *    text branch, ClapTextModelWithProjection (RoBERTa, pooler, projection): the embedding is
 *    AudioLDMPipeline._encode_prompt's F.normalize(text_embeds, dim=-1), [B, projection_dim]
 *    (512), computed with the tokenizer's attention mask. The embedding of "" is computed once,
 *    at ngpt_decoder_create.
 * With them, ngpt_decoder_generate computes `uncond` itself when it is NULL: the text encoder's
 * output for "" (padded to cond's token count for CLIP), computed once per decoder (NExT-GPT's
 * negative prompt) — and a plain text prompt works:
 *
 *     ngpt_tensor cond;                                    // F32 [1, 77, hidden] ([1, 512] audio)
 *     ngpt_decoder_encode_text(dec, &cond, "a photo of a cat");
 *     ngpt_decoder_generate(dec, &image, NULL, &cond, NULL, &params);
 *     ngpt_tensor_free(&cond);
 *
 * Without a text encoder these calls return NGPT_ERR_UNSUPPORTED. Text is NUL-terminated UTF-8
 * (else NGPT_ERR_INVALID_ARGUMENT). */

/* The padded token count the pipelines use: tokenizer_config.json's model_max_length (77; 512
 * for AudioLDM), at most what the text encoder's position table allows; 0 without a text
 * encoder. */
NGPT_API int32_t ngpt_decoder_text_max_length(const ngpt_decoder *d);
/* The width of the text embedding: hidden_size (768 for SD 1.5, 1024 for Zeroscope), AUDIO
 * projection_dim (512); 0 without a text encoder. */
NGPT_API int32_t ngpt_decoder_text_hidden_size(const ngpt_decoder *d);
/* tokenizer(prompt, padding="max_length", max_length=n_ids, truncation=True).input_ids:
 * ids[0..n_ids) = [bos] + tokens[:n_ids - 2] + [eos] + [pad]... (pad as the tokenizer files
 * name it: "<|endoftext|>" for SD 1.5, "!" for OpenCLIP's; RoBERTa: <s> ... </s> <pad>...).
 * n_ids: 2..max_position_embeddings (AUDIO: max_position_embeddings - pad_token_id - 1)
 * (usually ngpt_decoder_text_max_length). *n_tokens (may be NULL): the count before padding
 * (the tokenizer's attention_mask is 1 for these). */
NGPT_API ngpt_status ngpt_decoder_tokenize_text(ngpt_decoder *d, int32_t *ids, int32_t n_ids, const char *prompt,
                                                int32_t *n_tokens);
/* The text encoder on the tokenized prompt: *out F32 [1, ngpt_decoder_text_max_length, hidden]
 * (AUDIO: [1, projection_dim], normalised: the pipeline's prompt_embeds, usable as `cond`). */
NGPT_API ngpt_status ngpt_decoder_encode_text(ngpt_decoder *d, ngpt_tensor *out, const char *prompt);
/* The text encoder on ids: input_ids I32/I64 [B, S] (S <= max_position_embeddings, ids in the
 * vocabulary) -> *out F32 [B, S, hidden] (last_hidden_state; causal mask, no padding mask, as
 * the pipelines call it; AUDIO: [B, projection_dim], normalised, every token attended). */
NGPT_API ngpt_status ngpt_decoder_encode_text_ids(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *input_ids);
/* The same with attention_mask I32/I64 [B, S] of 0/1 (AUDIO only: transformers' additive mask;
 * NULL = all ones, as transformers defaults it) -> AUDIO *out F32 [B, projection_dim]
 * (normalised). A mask on a CLIP text encoder is NGPT_ERR_UNSUPPORTED. */
NGPT_API ngpt_status ngpt_decoder_encode_text_masked(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *input_ids,
                                                     const ngpt_tensor *attention_mask);

/* ---------------------------------------------------------------------------------------------
 * Projector: ImageBind embeddings -> LLM tokens (input), LLM hidden states -> decoder
 * conditioning (output)
 *
 * NExT-GPT's trained glue, from the released delta: the input projector `llama_proj`
 * (Linear 1024 -> 4096 with bias: one soft token per media item) and three output projectors
 * (TextFcLayer, mode "transformer": Linear 4096 -> 512, nn.Transformer with 4 encoder + 4
 * decoder pre-norm layers, 4 heads, FFN 2048, ReLU, learned query tokens, Linear 512 -> out):
 * image -> [77, 768] (SD 1.5), audio -> [1, 512] (AudioLDM), video -> [77, 1024] (Zeroscope).
 *
 * `path` is either
 *  - a projector folder: config.json (model_type "nextgpt_projectors", every size stated) +
 *    model.safetensors with the delta's tensor names (llama_proj.*, gen_text_hidden_fcs.0.*,
 *    gen_text_hidden_fcs_audio.0.*, gen_text_hidden_fcs_video.0.*); or
 *  - the NExT-GPT delta itself: pytorch_model.pt (read without executing pickle code) or
 *    delta.safetensors, or a folder holding one (delta.safetensors preferred). Only the
 *    projector tensors are used; the LLM part (llama_model.*: LoRA, embed_tokens, lm_head) is
 *    skipped. Sizes come from the tensor shapes; what shapes cannot tell is NExT-GPT's constant
 *    unless the params say otherwise: 4 attention heads, 4 / 8 / 24 signal tokens.
 * Any other tensor in the file is NGPT_ERR_UNEXPECTED_TENSOR (named) unless
 * NGPT_PROJECTOR_ALLOW_UNKNOWN_TENSORS is set; a missing or misshaped tensor is
 * NGPT_ERR_NOT_FOUND / NGPT_ERR_SHAPE_MISMATCH naming the file, tensor and shapes.
 *
 *     ngpt_projector *pj = NULL;
 *     if (ngpt_projector_create(&pj, ctx, "nextgpt_7b_tiva_v0/pytorch_model.pt", NULL) != NGPT_OK) ...
 *     ngpt_tensor tok;                                      // [n, 4096], one row per media item
 *     ngpt_projector_input(pj, &tok, &imagebind_embeddings); // [n, 1024]
 *     ngpt_tensor cond;                                     // [1, 77, 768]
 *     ngpt_projector_output(pj, &cond, NGPT_MODALITY_IMAGE, &hidden, &input_embs);  // [1, 4, 4096] each
 *     ngpt_tensor_free(&tok); ngpt_tensor_free(&cond);
 *     ngpt_projector_free(pj);
 *
 * Threads: one thread at a time per projector; weights are read-only after create.
 * ------------------------------------------------------------------------------------------- */

typedef enum ngpt_modality {
    NGPT_MODALITY_TEXT  = 0,
    NGPT_MODALITY_IMAGE = 1,
    NGPT_MODALITY_AUDIO = 2,
    NGPT_MODALITY_VIDEO = 3
} ngpt_modality;

/* Projectors to load (bit set); 0 = every projector the file holds. */
#define NGPT_PROJECTOR_INPUT  0x1u                                /* llama_proj */
#define NGPT_PROJECTOR_IMAGE  (1u << NGPT_MODALITY_IMAGE)         /* 0x2: gen_text_hidden_fcs.0 */
#define NGPT_PROJECTOR_AUDIO  (1u << NGPT_MODALITY_AUDIO)         /* 0x4: gen_text_hidden_fcs_audio.0 */
#define NGPT_PROJECTOR_VIDEO  (1u << NGPT_MODALITY_VIDEO)         /* 0x8: gen_text_hidden_fcs_video.0 */

/* flags */
#define NGPT_PROJECTOR_ALLOW_UNKNOWN_TENSORS 0x1u  /* tensors no projector uses are not an error */

typedef struct ngpt_projector_params {
    size_t   struct_size;                   /* sizeof(ngpt_projector_params), set by _default */
    uint32_t modalities;                    /* NGPT_PROJECTOR_* bits; 0 = all present */
    int32_t  nhead;                         /* attention heads of the output projectors;
                                             * 0 = config.json, or NExT-GPT's 4 for a delta */
    int32_t  image_num_input_tokens;        /* signal tokens; 0 = config.json / NExT-GPT's 4 */
    int32_t  audio_num_input_tokens;        /* 0 = config.json / 8 */
    int32_t  video_num_input_tokens;        /* 0 = config.json / 24 */
    int32_t  image_num_output_tokens;       /* query tokens expected; 0 = from query_embs (77);
                                             * else must equal it (NGPT_ERR_SHAPE_MISMATCH) */
    int32_t  audio_num_output_tokens;       /* 0 = from query_embs (1) */
    int32_t  video_num_output_tokens;       /* 0 = from query_embs (77) */
    uint32_t flags;                         /* NGPT_PROJECTOR_* flags; default 0 */
} ngpt_projector_params;

/* Fill *p with defaults. struct_size is the caller's sizeof(ngpt_projector_params). */
NGPT_API ngpt_status ngpt_projector_params_default(ngpt_projector_params *p, size_t struct_size);
/* Load the projectors at `path` (folder or delta file, see above) onto ctx's backend; `p` may
 * be NULL. Free with ngpt_projector_free before ctx. */
NGPT_API ngpt_status ngpt_projector_create(ngpt_projector **out, ngpt_context *ctx, const char *path,
                                           const ngpt_projector_params *p);
/* NULL is a no-op. */
NGPT_API void ngpt_projector_free(ngpt_projector *proj);

/* Input projection, one row per media item: features [n, input_dim] (or [input_dim] for one
 * item) -> *out F32 [n, llm_hidden] (= llama_proj(features)). NExT-GPT inserts each row as one
 * soft token; NGPT_ERR_UNSUPPORTED without an input projector. */
NGPT_API ngpt_status ngpt_projector_input(ngpt_projector *proj, ngpt_tensor *out, const ngpt_tensor *features);
/* Several media of one modality inside one <Image>...</Image> segment, as NExT-GPT combines
 * them: each item projected (bias included), then the projections summed in order
 * (torch.cat(features).sum(dim=0)): features [n, input_dim], n >= 1 -> *out F32 [1, llm_hidden].
 * Note this is NOT llama_proj(sum of features): the bias counts n times. */
NGPT_API ngpt_status ngpt_projector_input_sum(ngpt_projector *proj, ngpt_tensor *out, const ngpt_tensor *features);
/* Output projection (TextFcLayer.forward): hidden [B, n_in, llm_hidden] = the final (post-norm)
 * LLM hidden states of the signal positions, input_embs [B, n_in, llm_hidden] = the input
 * embedding rows of [X0..X(n_in-1)] (n_in = ngpt_projector_num_input_tokens) ->
 * *out F32 [B, n_out, out_dim] (audio: [B, 1, out_dim]; NExT-GPT views it as [B, out_dim]).
 * NGPT_ERR_UNSUPPORTED when that modality's projector is not loaded. */
NGPT_API ngpt_status ngpt_projector_output(ngpt_projector *proj, ngpt_tensor *out, ngpt_modality modality,
                                           const ngpt_tensor *hidden, const ngpt_tensor *input_embs);

/* Nonzero when the input projector / the output projector of `modality` is loaded. */
NGPT_API int32_t ngpt_projector_has_input(const ngpt_projector *proj);
NGPT_API int32_t ngpt_projector_has_output(const ngpt_projector *proj, ngpt_modality modality);
/* The LLM hidden size (4096 for NExT-GPT); 0 for NULL. */
NGPT_API int32_t ngpt_projector_llm_hidden_size(const ngpt_projector *proj);
/* The input projector's input width (1024); 0 without one. */
NGPT_API int32_t ngpt_projector_input_dim(const ngpt_projector *proj);
/* Per output projector (0 when not loaded): conditioning width (768 / 512 / 1024), signal
 * tokens in (4 / 8 / 24), query tokens out (77 / 1 / 77), transformer width (512) and heads (4). */
NGPT_API int32_t ngpt_projector_output_dim(const ngpt_projector *proj, ngpt_modality modality);
NGPT_API int32_t ngpt_projector_num_input_tokens(const ngpt_projector *proj, ngpt_modality modality);
NGPT_API int32_t ngpt_projector_num_output_tokens(const ngpt_projector *proj, ngpt_modality modality);
NGPT_API int32_t ngpt_projector_d_model(const ngpt_projector *proj, ngpt_modality modality);
NGPT_API int32_t ngpt_projector_nhead(const ngpt_projector *proj, ngpt_modality modality);

/* ---------------------------------------------------------------------------------------------
 * Chat turns: NExT-GPT chat on a backbone session (template, sampling, stops, signal groups)
 *
 * ngpt_backbone_turn answers one user turn on a session: it appends the turn to the session's
 * KV cache with NExT-GPT's Vicuna-v0 template (nextgpt-facts.md §1.4), generates, and returns
 * the text and the signal groups. The first turn after create/reset writes the template's
 * opening, "### Human: " {media " "} " " text "\n### Assistant:", as the demo does:
 *     [BOS]"### Human:  describe\n### Assistant:"                           (no media)
 *     [BOS]"### Human:" <Img> soft </Img> [BOS]" describe\n### Assistant:"  (one image)
 * (a [BOS] before every text segment, as the released inference code does); a later turn
 * appends only its own part, "\n### Human: " {media} " " text "\n### Assistant:" (the previous
 * answer's "\n###" included): the history stays in the KV cache and is not re-run. The cached
 * answer is the answer's text tokens as generated (signal groups included, stop string and the
 * whitespace before it rolled back), so the next turn continues exactly where the official
 * history string "{a}\n###" would. Differences from the official demo, which re-tokenizes and
 * re-runs the whole history string each turn: (1) turn 1 stays as it was fed ("### Human:  q",
 * two spaces) where the official history rewrites it as "### Human: q"; (2) the answer keeps the
 * ids it was generated with (the official re-tokenizes its text, which can split differently);
 * (3) the answer's signal groups stay in the cache (the official history keeps only the text,
 * see ngpt_backbone_add_assistant_media); (4) the joint "\n###" continuation is tokenized as
 * it would be inside one string (no dummy-prefix space), which equals the official tokens.
 *
 *     ngpt_turn_params tp;
 *     ngpt_turn_params_default(&tp, sizeof tp);
 *     tp.require_modalities = NGPT_MODALITY_BIT(NGPT_MODALITY_IMAGE);  // "force" an image
 *     ngpt_turn_result *r = NULL;
 *     ngpt_backbone_turn(&r, s, "draw a cat", NULL, 0, &tp);
 *     size_t len; const char *text = ngpt_turn_result_text(r, &len);
 *     for (int32_t g = 0; g < ngpt_turn_result_n_groups(r); g++) {
 *         ngpt_modality m; int32_t n; const float *hidden, *embs;
 *         ngpt_turn_result_group(r, g, &m, &n, &hidden, &embs);  // -> the output projector
 *     }
 *     ngpt_turn_result_free(r);
 *
 * Threads: one turn at a time per session (the session's rule); on_text runs on the calling
 * thread; `cancel` may be set from any thread.
 * ------------------------------------------------------------------------------------------- */

/* ngpt_modality (Projector section): IMAGE [IMG0..3] 4 signal tokens, AUDIO [AUD0..7] 8,
 * VIDEO [VID0..23] 24; TEXT is not a group. Bit of a modality in require_modalities (the same
 * bits as NGPT_PROJECTOR_IMAGE/AUDIO/VIDEO): */
#define NGPT_MODALITY_BIT(m) (1u << (uint32_t)(m))

/* A medium of the user turn: its soft tokens as projected rows (the projector stage's output,
 * n_rows x n_embd F32; several rows are summed into one soft token, as the official
 * torch.cat(features).sum(0)). Borrowed during the call only. Layout frozen (an array element). */
typedef struct ngpt_turn_media {
    ngpt_modality modality;
    const float  *soft_rows;   /* [n_rows, n_embd] */
    int32_t       n_rows;      /* >= 1 */
} ngpt_turn_media;

/* Streamed answer text: UTF-8, whole characters, never a signal token, a stop string or a
 * prefix of one, nor the whitespace right before a stop (held back until the next text shows it
 * is not trailing). Return false to cancel. The concatenation of all calls is a prefix of the
 * result's text (equal to it unless the turn was cancelled). */
typedef bool (*ngpt_text_fn)(const char *utf8, size_t len, void *user_data);

typedef struct ngpt_turn_params {
    size_t      struct_size;        /* sizeof(ngpt_turn_params), set by _default */
    /* sampling, as ngpt_generate_params (lib/models/sampler.h order). Defaults: the demo's */
    float       temperature;        /* default 1.0; 0 = greedy argmax */
    int32_t     top_k;              /* default 0 = off */
    float       top_p;              /* in (0, 1]; default 0.01 (demo_app.py); 1 = off */
    float       repetition_penalty; /* default 1 = off; over the ids generated in this turn */
    uint64_t    seed;               /* default 0 */
    int32_t     max_new_tokens;     /* sampled tokens; default 246 (demo). The forced rest of a group
                                     * the model starts, and required groups, come on top */
    const char *const *stop_strings;/* matched on the text across tokens; NULL = {"###"} */
    int32_t     n_stop_strings;     /* with stop_strings != NULL; 0 = none */
    const int32_t *stop_ids;        /* NULL = {EOS}; their text never reaches the answer */
    int32_t     n_stop_ids;         /* with stop_ids != NULL; 0 = none */
    uint32_t    require_modalities; /* NGPT_MODALITY_BIT mask: a modality without a group when the
                                     * text ends gets one forced there (image, video, audio order);
                                     * NGPT_MODALITY_BIT(NGPT_MODALITY_TEXT) is invalid */
    int32_t     max_groups[4];      /* indexed by ngpt_modality ([NGPT_MODALITY_TEXT] unused): groups
                                     * per modality; default 1 each (demo); 0 = no limit. Further
                                     * first tokens are dropped as strays */
    int32_t     suppress_strays;    /* 1 = mask tokens that would be dropped (stray group tokens,
                                     * <Img>, </Img>) out of the logits; default 0 */
    const char *system;             /* first turn only: text before "### Human:" (our extension;
                                     * NExT-GPT has none); NULL (default) = none */
    ngpt_text_fn on_text;           /* NULL = no streaming */
    void       *user_data;
    const volatile int32_t *cancel; /* NULL = none; nonzero = stop before the next sampled token
                                     * (a started group is completed first) */
} ngpt_turn_params;

NGPT_API ngpt_status ngpt_turn_params_default(ngpt_turn_params *p, size_t struct_size);

typedef struct ngpt_turn_result ngpt_turn_result;  /* opaque; ngpt_turn_result_free */

typedef enum ngpt_stop_reason {
    NGPT_STOP_NONE         = 0,
    NGPT_STOP_ID           = 1,  /* a stop id (EOS) */
    NGPT_STOP_STRING       = 2,  /* a stop string ("###") */
    NGPT_STOP_MAX_TOKENS   = 3,  /* max_new_tokens */
    NGPT_STOP_CANCELLED    = 4,  /* on_text returned false or *cancel was set */
    NGPT_STOP_CONTEXT_FULL = 5   /* the session's n_ctx was reached. With required modalities the
                                    text stops early enough to leave their groups room, and they
                                    are forced; one the prompt itself leaves no room for is not */
} ngpt_stop_reason;

/* Answer one user turn (see above). user_text: UTF-8, NULL = "". media: [n_media] (NULL when 0),
 * spliced in order before the text. params may be NULL (defaults). On NGPT_OK *out is a result
 * to free with ngpt_turn_result_free, also when the turn was cancelled (stop reason
 * NGPT_STOP_CANCELLED: the partial answer is kept in the session). On an error *out is NULL and,
 * when the prompt could not be evaluated, the session is as before. Errors:
 * NGPT_ERR_INVALID_ARGUMENT (NULL, a bad modality/row count/param, the prompt does not fit n_ctx),
 * NGPT_ERR_UNSUPPORTED (no tokenizer; require_modalities without the signal tokens),
 * NGPT_ERR_OUT_OF_MEMORY. */
NGPT_API ngpt_status ngpt_backbone_turn(ngpt_turn_result **out, ngpt_backbone_session *s, const char *user_text,
                                        const ngpt_turn_media *media, size_t n_media, const ngpt_turn_params *params);

/* Getters borrow from the result (valid until it is freed); NULL results give 0 / NULL. */
/* The answer: UTF-8, signal groups removed, stop string and the whitespace before it removed,
 * the dummy-prefix space of the first token removed (as tokenizer.decode(skip_special_tokens)). */
NGPT_API const char *ngpt_turn_result_text(const ngpt_turn_result *r, size_t *len);
NGPT_API int32_t ngpt_turn_result_n_groups(const ngpt_turn_result *r);
/* Group i (generation order): modality, n_tokens (4/24/8), hidden [n_tokens, n_embd] (the
 * final-norm states of the positions that predicted [X0]..[X(n-1)], as the released code reads
 * them: lib/models/signal.h) and input_embs [n_tokens, n_embd] (embed_tokens rows of
 * [X0]..[X(n-1)], the projector's other input). Any out pointer may be NULL. */
NGPT_API ngpt_status ngpt_turn_result_group(const ngpt_turn_result *r, int32_t i, ngpt_modality *modality,
                                            int32_t *n_tokens, const float **hidden, const float **input_embs);
/* 1 when group i was forced by require_modalities, 0 when the model started it. */
NGPT_API int32_t ngpt_turn_result_group_required(const ngpt_turn_result *r, int32_t i);
NGPT_API ngpt_stop_reason ngpt_turn_result_stop_reason(const ngpt_turn_result *r);
/* Every id chosen in this turn, in order (text, group tokens, and the stop token last when the
 * turn ended on a stop id or stop string): [*n]. */
NGPT_API const int32_t *ngpt_turn_result_ids(const ngpt_turn_result *r, int32_t *n);
/* Positions of this turn's prompt (template + media). */
NGPT_API int32_t ngpt_turn_result_n_prompt(const ngpt_turn_result *r);
/* Wall-clock milliseconds: prompt evaluation, generation (any pointer may be NULL). */
NGPT_API void ngpt_turn_result_timings(const ngpt_turn_result *r, double *prompt_ms, double *generate_ms);
/* NULL is a no-op. */
NGPT_API void ngpt_turn_result_free(ngpt_turn_result *r);

/* Generated media re-entering the history (§1.4: the demo saves them and re-encodes them as
 * input). After a turn, re-writes the cached answer as the official history holds it:
 *     "### Assistant:" {<Img> soft </Img>} [BOS] answer-text
 * i.e. the KV cache is rolled back to the start of the answer (the history before it is kept)
 * and the media rows (encoded by the caller with ImageBind + the input projector) and the answer
 * text (signal groups removed) are evaluated again; the next turn then continues with "\n###".
 * Only right after a turn, with nothing evaluated or generated since (else
 * NGPT_ERR_INVALID_ARGUMENT: the re-write would drop those positions). n_media >= 1. */
NGPT_API ngpt_status ngpt_backbone_add_assistant_media(ngpt_backbone_session *s, const ngpt_turn_media *media,
                                                       size_t n_media);
/* ngpt_backbone_session_reset (above) also starts a new conversation for ngpt_backbone_turn. */

/* ---------------------------------------------------------------------------------------------
 * Encoder (ImageBind): media -> one embedding per item
 *
 * The vision and audio branches of ImageBind-huge as NExT-GPT runs them (facebookresearch/
 * ImageBind, NExT-GPT's copy): per clip a ViT (vision: Conv3d patch stem over 2 frames, 32
 * blocks of width 1280; audio: Conv2d stem over the fbank, 12 blocks of width 768), head
 * LayerNorm -> CLS -> Linear -> L2-normalised; the clips of one item (video: 15, audio: 3) are
 * averaged and the mean is NOT re-normalised. NExT-GPT's copy does not multiply audio by
 * ImageBind's logit scale 20 (a config.json with "audio_logit_scale_applied": true restores it).
 *
 *     ngpt_encoder *enc = NULL;
 *     if (ngpt_encoder_create(&enc, ctx, "models/imagebind_huge.pth", NULL) != NGPT_OK) ... ngpt_last_error()
 *     ngpt_image *img = NULL;
 *     ngpt_image_load(&img, "cat.jpg");
 *     ngpt_tensor emb;                              // F32 [1, 1024], library-owned
 *     ngpt_encoder_encode_image(enc, &emb, img);
 *     ...
 *     ngpt_tensor_free(&emb);
 *     ngpt_image_free(img);
 *     ngpt_encoder_free(enc);
 *
 * `path` is a folder with config.json (ImageBindModel's constructor arguments: out_embed_dim,
 * vision_embed_dim, vision_num_blocks, ...; absent keys take imagebind_huge's values) and
 * model.safetensors (or model.safetensors.index.json, or imagebind_huge.pth), or one checkpoint
 * file: the official imagebind_huge.pth (a torch.save state dict, read without executing
 * pickle code) or a .safetensors with the same tensor names; a file alone is taken to be
 * imagebind_huge (out 1024; vision 1280 / 32 blocks / 16 heads; audio 768 / 12 / 12).
 * Only the branches asked for are loaded; the checkpoint's text, depth, thermal and IMU
 * tensors are skipped, any other unknown tensor is NGPT_ERR_UNEXPECTED_TENSOR.
 *
 * Outputs are library-owned F32 [N, embed_dim] tensors (free with ngpt_tensor_free); inputs
 * are borrowed for the call (any numeric dtype, converted to F32). Errors: NGPT_ERR_UNSUPPORTED
 * (a modality whose branch was not loaded), NGPT_ERR_SHAPE_MISMATCH (the message gives the
 * expected and the actual shape); create: NGPT_ERR_NOT_FOUND (file, or a tensor), _SHAPE_MISMATCH
 * / _DTYPE_MISMATCH (a tensor, with both shapes), _UNEXPECTED_TENSOR, _BAD_FORMAT.
 * Threads: weights are read-only after create; one thread at a time per encoder (scratch memory
 * is per call, but the context's backend is shared). Free the encoder before its context.
 * ------------------------------------------------------------------------------------------- */

/* Modalities to load (bit set); IMAGE and VIDEO share the vision branch (either bit loads it
 * and enables both); 0 = every branch the checkpoint stores. */
#define NGPT_ENCODER_IMAGE 0x1u
#define NGPT_ENCODER_AUDIO 0x2u
#define NGPT_ENCODER_VIDEO 0x4u

/* ngpt_encoder_params.flags: on a CUDA context, the second encode call in a row with the same
 * modality and input shape is recorded as a CUDA graph (ImageBind-huge vision: ~500 operations)
 * and later calls of that shape replay it, the input copied into a buffer the encoder keeps (for
 * repeated calls: batches of images, video clips; a new shape drops the recording). Same results
 * as without (the same kernels on the same buffers). Where the call cannot be recorded it runs as
 * without the flag and the reason is logged at INFO. No effect on the CPU. Off by default (set it
 * for CUDA: ImageBind-huge vision F16 at batch 1 on an H200 took 3.39 ms with it, 4.08 without;
 * bench/RESULTS.md, GPU run 7; NGPT_PIPELINE_CUDA_GRAPHS sets it on CUDA, and the nextgpt CLI by
 * default). */
#define NGPT_ENCODER_FLAG_CUDA_GRAPH 0x1u

typedef struct ngpt_encoder_params {
    size_t   struct_size;  /* sizeof(ngpt_encoder_params), set by _default */
    uint32_t modalities;   /* NGPT_ENCODER_* bits; 0 = all stored */
    uint32_t flags;        /* NGPT_ENCODER_FLAG_* bits, default 0 */
    /* Appended in 0.x (callers built against the older struct get F32): */
    ngpt_dtype compute_dtype; /* the encoder's GEMMs: NGPT_DTYPE_F32 (default), or NGPT_DTYPE_BF16
                                 on the CPU backend (inputs of the linear layers rounded to BF16,
                                 F32 accumulation; embeddings within cosine 0.99 of F32; fast where
                                 the CPU has AVX512-BF16/AMX). Scoped to this encoder's calls: other
                                 handles on the same context are unaffected. On CUDA: F16 or
                                 BF16 = weights and activations in that dtype (tensor cores; the
                                 embedding is still returned as F32). Anything else:
                                 NGPT_ERR_UNSUPPORTED at create. */
} ngpt_encoder_params;

/* Fill *p with defaults. struct_size is the caller's sizeof(ngpt_encoder_params). */
NGPT_API ngpt_status ngpt_encoder_params_default(ngpt_encoder_params *p, size_t struct_size);
/* Load ImageBind from `path` (above) onto ctx's backend; `p` may be NULL (all defaults). */
NGPT_API ngpt_status ngpt_encoder_create(ngpt_encoder **out, ngpt_context *ctx, const char *path,
                                         const ngpt_encoder_params *p);
/* NULL is a no-op. */
NGPT_API void ngpt_encoder_free(ngpt_encoder *enc);
/* The embedding size (out_embed_dim: 1024 for imagebind_huge); 0 for NULL. */
NGPT_API int32_t ngpt_encoder_embed_dim(const ngpt_encoder *enc);
/* The NGPT_ENCODER_* bits usable with this encoder (IMAGE | VIDEO when the vision branch is
 * loaded, AUDIO when the audio branch is); 0 for NULL. */
NGPT_API uint32_t ngpt_encoder_modalities(const ngpt_encoder *enc);

/* Vision branch on preprocessed pixels (ngpt_image_preprocess / ngpt_video_preprocess output):
 *   [N, 3, 224, 224]            N images (each repeated to 2 frames)     -> [N, D]
 *   [N, 3, 2, 224, 224]         N single clips (T = 1 is repeated too)  -> [N, D], no averaging
 *   [N, S, 3, 2, 224, 224]      N videos of S clips, averaged          -> [N, D]
 * (224 and 2 are the config's image_size and video_frames.) A batch runs as one batch. */
NGPT_API ngpt_status ngpt_encoder_encode_pixels(ngpt_encoder *enc, ngpt_tensor *out, const ngpt_tensor *pixels);
/* Audio branch on fbank clips (ngpt_audio_preprocess output):
 *   [N, S, 1, 128, 204]  N sounds of S clips, averaged -> [N, D]
 *   [S, 1, 128, 204]     one sound of S clips          -> [1, D]
 * N may be 0 (-> [0, D], as an empty pixel batch); S may not (a mean over no clips is undefined:
 * NGPT_ERR_SHAPE_MISMATCH), nor may a video's clip count above. */
NGPT_API ngpt_status ngpt_encoder_encode_fbank(ngpt_encoder *enc, ngpt_tensor *out, const ngpt_tensor *fbank);
/* One decoded image: ngpt_image_preprocess + encode_pixels -> [1, D]. */
NGPT_API ngpt_status ngpt_encoder_encode_image(ngpt_encoder *enc, ngpt_tensor *out, const ngpt_image *img);
/* One decoded sound: ngpt_audio_preprocess(a, pp) (pp may be NULL) + encode_fbank -> [1, D]. */
NGPT_API ngpt_status ngpt_encoder_encode_audio(ngpt_encoder *enc, ngpt_tensor *out, const ngpt_audio *a,
                                               const ngpt_audio_preprocess_params *pp);
/* One video file: ngpt_video_preprocess(path, pp) (15 clips: 5 times x 3 crops; pp may be NULL)
 * + the vision branch, averaged over the 15 clips -> [1, D]. */
NGPT_API ngpt_status ngpt_encoder_encode_video_file(ngpt_encoder *enc, ngpt_tensor *out, const char *path,
                                                    const ngpt_video_preprocess_params *pp);

/* ---------------------------------------------------------------------------------------------
 * Media output
 *
 * Encoded files for what the decoders produce: images as PNG or JPEG, sound as WAV, FLAC or
 * OGG/Vorbis, video as MP4 or WebM, either in memory (an ngpt_blob: library-owned bytes) or
 * written to a file:
 *
 *     ngpt_tensor u8;                                // U8 [1,H,W,3] from ngpt_image_postprocess
 *     ngpt_tensor hw3 = {NGPT_DTYPE_U8, 3, {u8.shape[1], u8.shape[2], 3}, u8.data, NULL}; // a view
 *     ngpt_image *img = NULL;
 *     ngpt_image_from_tensor(&img, &hw3);            // copies the pixels
 *     ngpt_image_save(img, "out.png", NGPT_IMAGE_FORMAT_AUTO, 0, 0);  // format from ".png"
 *     ngpt_blob *jpg = NULL;
 *     ngpt_image_encode(&jpg, img, NGPT_IMAGE_FORMAT_JPEG, 90, 0);
 *     fwrite(ngpt_blob_data(jpg), 1, ngpt_blob_size(jpg), f);
 *     ngpt_blob_free(jpg);
 *
 *     ngpt_tensor frames;                            // U8 [F,H,W,3] from ngpt_video_postprocess
 *     ngpt_video_save(&frames, "out.mp4", 8.0f, NGPT_VIDEO_FORMAT_AUTO);   // NExT-GPT's 8 fps
 *
 * Codecs: PNG through libpng (8-bit RGB, zlib level 6); JPEG through libjpeg-turbo (baseline,
 * 4:2:0 chroma unless NGPT_ENCODE_JPEG_444). Audio through libsndfile: WAV 16-bit PCM or
 * 32-bit float, FLAC 16-bit, OGG/Vorbis (quality 0.4); integer formats clip to [-1, 1].
 * Video through libavformat/libavcodec, yuv420p (BT.601, limited range), constant frame rate:
 * MP4 uses H.264 (libx264, CRF 23) when this FFmpeg has that encoder, else MPEG-4 part 2
 * ("mpeg4"); WebM uses VP9 (libvpx-vp9, CRF 32), else VP8 (libvpx). When no encoder of a
 * format exists the call fails with NGPT_ERR_UNSUPPORTED naming the encoders it looked for.
 * ngpt_media_video_codec() says which encoder a format will use.
 * Errors: NGPT_ERR_INVALID_ARGUMENT (NULL, bad enum, quality or fps out of range, 0 frames,
 * a format AUTO cannot resolve from the file name), NGPT_ERR_DTYPE_MISMATCH /
 * NGPT_ERR_SHAPE_MISMATCH (tensors), NGPT_ERR_UNSUPPORTED (no encoder; odd video sizes, since
 * yuv420p needs even ones: nothing is padded or cropped), NGPT_ERR_IO (the file cannot be
 * written), NGPT_ERR_OUT_OF_MEMORY. Nothing prints; FFmpeg's process-wide log level is set to
 * AV_LOG_QUIET once, only if it is still FFmpeg's default. Files are written whole: encoded in
 * memory, then written to `path` (an existing file is replaced).
 * All functions may be called from any thread; blobs, like other handles, one thread at a time.
 * ------------------------------------------------------------------------------------------- */

typedef struct ngpt_blob ngpt_blob;  /* opaque: encoded bytes owned by the library */

/* The bytes (borrowed from b, valid until ngpt_blob_free; NULL for NULL) and their count. */
NGPT_API const uint8_t *ngpt_blob_data(const ngpt_blob *b);
NGPT_API size_t ngpt_blob_size(const ngpt_blob *b);
/* NULL is a no-op. */
NGPT_API void ngpt_blob_free(ngpt_blob *b);

typedef enum ngpt_image_format {
    NGPT_IMAGE_FORMAT_AUTO = 0,  /* save: from the extension (.png, .jpg/.jpeg); encode: PNG */
    NGPT_IMAGE_FORMAT_PNG  = 1,
    NGPT_IMAGE_FORMAT_JPEG = 2
} ngpt_image_format;

/* Flags of ngpt_image_encode / ngpt_image_save. */
#define NGPT_ENCODE_JPEG_444 1u  /* JPEG: full-resolution chroma (4:4:4) instead of 4:2:0 */

/* Encode img. quality: JPEG 1..100 (0 = 90); ignored for PNG (lossless). flags: NGPT_ENCODE_*
 * bits (0 = defaults). *out is a new blob (free with ngpt_blob_free). */
NGPT_API ngpt_status ngpt_image_encode(ngpt_blob **out, const ngpt_image *img, ngpt_image_format fmt,
                                       int32_t quality, uint32_t flags);
/* Encode img and write it to path (AUTO: the format from path's extension). */
NGPT_API ngpt_status ngpt_image_save(const ngpt_image *img, const char *path, ngpt_image_format fmt,
                                     int32_t quality, uint32_t flags);
/* An image from a tensor: U8 [H,W,3] (copied), or F32 [H,W,3] in [0,1] converted as diffusers'
 * numpy_to_pil does: round_half_even(clamp(x, 0, 1) * 255). Free with ngpt_image_free. */
NGPT_API ngpt_status ngpt_image_from_tensor(ngpt_image **out, const ngpt_tensor *pixels);

typedef enum ngpt_audio_format {
    NGPT_AUDIO_FORMAT_AUTO      = 0,  /* save: from the extension (.wav -> WAV16, .flac, .ogg/.oga);
                                         encode: WAV16 */
    NGPT_AUDIO_FORMAT_WAV16     = 1,  /* WAV, 16-bit PCM */
    NGPT_AUDIO_FORMAT_WAV_FLOAT = 2,  /* WAV, 32-bit IEEE float (lossless for float PCM; loading
                                         clips to [-1, 1], as torchaudio.load does) */
    NGPT_AUDIO_FORMAT_FLAC      = 3,  /* FLAC, 16-bit */
    NGPT_AUDIO_FORMAT_OGG       = 4   /* OGG/Vorbis */
} ngpt_audio_format;

/* Encode a's samples at its rate and channel count. *out is a new blob. */
NGPT_API ngpt_status ngpt_audio_encode(ngpt_blob **out, const ngpt_audio *a, ngpt_audio_format fmt);
/* Encode a and write it to path (AUTO: the format from path's extension). */
NGPT_API ngpt_status ngpt_audio_save(const ngpt_audio *a, const char *path, ngpt_audio_format fmt);

typedef enum ngpt_video_format {
    NGPT_VIDEO_FORMAT_AUTO = 0,  /* save: from the extension (.mp4, .webm); encode: MP4 */
    NGPT_VIDEO_FORMAT_MP4  = 1,  /* H.264 (libx264), else MPEG-4 part 2 */
    NGPT_VIDEO_FORMAT_WEBM = 2   /* VP9 (libvpx-vp9), else VP8 (libvpx) */
} ngpt_video_format;

/* Zeroscope's last step, diffusers' tensor2vid: F32 [B,3,F,H,W] (a VAE output, nominally
 * [-1,1]) -> library-owned U8 [F,H,B*W,3] = trunc(clamp(x * 0.5 + 0.5, 0, 1) * 255) in float32
 * (truncation, not rounding, as the pipeline does; a batch is laid side by side along the
 * width). */
NGPT_API ngpt_status ngpt_video_postprocess(ngpt_tensor *out, const ngpt_tensor *video);

/* Encode frames U8 [F,H,W,3] (RGB, F >= 1, H and W even) at `fps` frames per second (0 < fps
 * <= 1000; NExT-GPT saves 8). *out is a new blob. */
NGPT_API ngpt_status ngpt_video_encode(ngpt_blob **out, const ngpt_tensor *frames_u8, float fps,
                                       ngpt_video_format fmt);
/* Encode frames and write them to path (AUTO: the format from path's extension). */
NGPT_API ngpt_status ngpt_video_save(const ngpt_tensor *frames_u8, const char *path, float fps,
                                     ngpt_video_format fmt);
/* The FFmpeg encoder fmt uses in this build ("libx264", "mpeg4", "libvpx-vp9", "libvpx"), or
 * NULL when it has none (or fmt is unknown; AUTO means MP4). Static string. */
NGPT_API const char *ngpt_media_video_codec(ngpt_video_format fmt);

/* ---------------------------------------------------------------------------------------------
 * Pipeline: one NExT-GPT conversation, every stage loaded once
 *
 * An ngpt_pipeline runs NExT-GPT end to end: media in -> ImageBind (ngpt_encoder) -> input
 * projector (the items of one modality summed into one soft token, ngpt_projector_input_sum) ->
 * the language model with NExT-GPT's prompt template (ngpt_backbone) -> for each signal group
 * the output projector -> the decoder of its modality (ngpt_decoder_generate) -> encoded media
 * (PNG images, WAV sound, MP4 video) in the result, with the answer text.
 *
 *     ngpt_pipeline *p = NULL;
 *     if (ngpt_pipeline_create(&p, ctx, "models/nextgpt", NULL) != NGPT_OK) ... ngpt_last_error()
 *     ngpt_pipeline_media m = {NGPT_MODALITY_IMAGE, "cat.jpg", NULL, 0, NULL, NULL};
 *     ngpt_pipeline_turn_params tp;
 *     ngpt_pipeline_turn_params_default(&tp, sizeof tp);
 *     tp.force = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE);      // always answer with an image
 *     ngpt_pipeline_result *r = NULL;
 *     if (ngpt_pipeline_turn(&r, p, "draw it in the snow", &m, 1, &tp) != NGPT_OK) ...
 *     printf("%s\n", ngpt_pipeline_result_text(r, NULL));
 *     for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r); i++) {
 *         const uint8_t *bytes; size_t n; const char *ext;
 *         if (ngpt_pipeline_result_output(r, i, NULL, &bytes, &n, &ext) == NGPT_OK) ... write bytes
 *         else ... ngpt_pipeline_result_output_message(r, i)      // e.g. no video decoder
 *     }
 *     ngpt_pipeline_result_free(r);
 *     ngpt_pipeline_free(p);
 *
 * The bundle folder holds bundle.json, naming the parts by paths relative to the folder:
 *     {"format": "nextgpt-bundle", "version": 1,
 *      "llm": "vicuna-7b-v0",                    ngpt_backbone_create's model_dir
 *      "delta": "nextgpt_7b_tiva_v0/pytorch_model.pt",   or null (a merged LLM folder)
 *      "imagebind": "imagebind_huge.pth",        ngpt_encoder_create's path
 *      "projectors": "nextgpt_7b_tiva_v0/pytorch_model.pt",   a projector folder or the delta;
 *                                                null/absent = the delta
 *      "decoders": {"image": "stable-diffusion-v1-5", "audio": "audioldm-l-full",
 *                   "video": "zeroscope_v2_576w"},          diffusers folders; null/absent = none
 *      "audio_uncond": "audio_uncond.safetensors",          optional: tensor "uncond" [1, D], the
 *                                                AudioLDM negative embedding (CLAP of ""), used when
 *                                                the audio decoder has no text_encoder/ + tokenizer/
 *                                                to compute it; with neither, no guidance
 *      "random_weights": false}                  true marks a test model
 * For the official release these are: Vicuna-7B v0 in Hugging Face format (LLaMA-7B +
 * lmsys/vicuna-7b-delta-v0 merged with FastChat's apply_delta); imagebind_huge.pth from
 * dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth; pytorch_model.pt (+ tokenizer.model,
 * added_tokens.json) from huggingface.co/ChocoWu/nextgpt_7b_tiva_v0; the diffusers folders of
 * runwayml/stable-diffusion-v1-5, cvssp/audioldm-l-full and cerspense/zeroscope_v2_576w (or
 * the same parts converted to safetensors by ngpt-convert). libnextgpt installs a tiny bundle
 * with random weights in <prefix>/share/libnextgpt/tiny (see README).
 *
 * Loading: the language model, ImageBind (vision and audio branches) and the projectors load at
 * create; a decoder loads on its first use unless `preload` names it, and stays loaded until
 * ngpt_pipeline_release_decoder or free. Conversation: turns accumulate in the backbone
 * session's KV cache; ngpt_pipeline_reset starts over. Generated media re-enter the history as
 * the official demo puts them there (nextgpt-facts §1.4: it saves each output to a file and its
 * next prompt holds "### Assistant: <Image>temp/x.jpg</Image> answer", re-encoded by ImageBind):
 * after a turn whose outputs were produced, each produced output is re-encoded from the file the
 * demo would write (image: JPEG at PIL's default quality 75; audio: the float samples, as its
 * float WAV; video: the MP4 bytes of the result) by ImageBind and the input projector, and the
 * cached answer is re-written as "{<Img> soft </Img>} [BOS] answer-text" in output order
 * (ngpt_backbone_add_assistant_media; the answer's signal tokens leave the cache).
 * NGPT_PIPELINE_NO_MEDIA_HISTORY keeps the answer as generated instead; a turn without produced
 * outputs (none asked for, all failed, cancelled) keeps it too. ngpt_pipeline_result_history
 * says what happened. A modality whose decoder is not in the
 * bundle (or fails to load) does not fail the turn: its output carries the status and message
 * and the text is still returned.
 * Threads: one thread at a time per pipeline; `cancel` may be set from any thread.
 * ------------------------------------------------------------------------------------------- */

/* A turn's media item; exactly one source is set: a file path, encoded bytes in memory, or
 * decoded pixels / samples. Borrowed during the call. Layout frozen (an array element). */
typedef struct ngpt_pipeline_media {
    ngpt_modality     modality;  /* IMAGE, AUDIO or VIDEO */
    const char       *path;      /* a file, or NULL */
    const void       *data;      /* encoded bytes (IMAGE, AUDIO), or NULL */
    size_t            size;
    const ngpt_image *image;     /* IMAGE: decoded pixels, or NULL */
    const ngpt_audio *audio;     /* AUDIO: decoded samples, or NULL */
} ngpt_pipeline_media;

typedef enum ngpt_pipeline_event_kind {
    NGPT_PIPELINE_EVENT_LOAD    = 0,  /* a component is being loaded (name: "image decoder" ...) */
    NGPT_PIPELINE_EVENT_ENCODE  = 1,  /* `step` of the `total` media items encoded so far (in
                                       * modality order: images, sounds, videos; `modality` is the
                                       * item's). Cancelled here: the language model does not run,
                                       * the conversation is as before, forced outputs are listed
                                       * as cancelled */
    NGPT_PIPELINE_EVENT_TOKEN   = 2,  /* answer text streamed: text/text_len (a token's piece) */
    NGPT_PIPELINE_EVENT_DENOISE = 3,  /* denoising step `step` of `total` of `modality` (total
                                       * as ngpt_step_fn's: steps + 1 for PNDM) */
    NGPT_PIPELINE_EVENT_OUTPUT  = 4   /* output `step` (0-based) of `modality` is finished */
} ngpt_pipeline_event_kind;

typedef struct ngpt_pipeline_event {
    ngpt_pipeline_event_kind kind;
    ngpt_modality modality;      /* DENOISE, OUTPUT, ENCODE, and LOAD of a decoder; TEXT otherwise */
    int32_t       step, total;
    const char   *text;          /* TOKEN: the piece (not NUL-terminated); LOAD: the component */
    size_t        text_len;
    double        elapsed_s;     /* since the call began */
} ngpt_pipeline_event;

/* One callback for every stage; return false to cancel (see ngpt_pipeline_turn). */
typedef bool (*ngpt_pipeline_event_fn)(const ngpt_pipeline_event *ev, void *user_data);

/* Bit of a modality in `force` / `preload`. */
#define NGPT_PIPELINE_FORCE(m) (1u << (uint32_t)(m))

/* ngpt_pipeline_params.flags bits. */
#define NGPT_PIPELINE_NO_MEDIA_HISTORY 1u  /* generated media do not re-enter the history (the
                                              cached answer keeps its signal tokens) */
#define NGPT_PIPELINE_CUDA_GRAPHS 2u       /* each stage's CUDA graph flag: the backbone's decode
                                              steps, the encoder's repeated calls and the
                                              decoders' denoising steps recorded and replayed
                                              (NGPT_BACKBONE_FLAG_CUDA_GRAPH and the others; no
                                              effect on results; on CUDA contexts only; off by
                                              default here, on in the nextgpt CLI) */
#define NGPT_PIPELINE_CHANNELS_LAST 4u     /* the decoders with NGPT_DECODER_FLAG_CHANNELS_LAST
                                              (UNets and VAEs NHWC inside: cuDNN's layout; results
                                              equal within rounding; CUDA in F16/BF16 runs so
                                              without it) */
#define NGPT_PIPELINE_SAFETY_CHECKER 8u    /* the image decoder with its safety checker
                                              (NGPT_DECODER_FLAG_SAFETY_CHECKER), as NExT-GPT runs
                                              SD 1.5: a flagged image comes out black (also in
                                              the history); ngpt_pipeline_result_output_nsfw */

typedef struct ngpt_pipeline_params {
    size_t   struct_size;   /* sizeof(ngpt_pipeline_params), set by _default */
    int32_t  n_ctx;         /* the conversation's KV cache; 0 = min(2048, the model's) */
    uint32_t preload;       /* NGPT_PIPELINE_FORCE bits of decoders loaded at create; 0 = lazy */
    uint32_t flags;         /* NGPT_PIPELINE_* bits (0 = the demo's behaviour); others invalid */
    ngpt_pipeline_event_fn on_event;  /* load events during create; NULL = none */
    void    *user_data;
    /* Appended in 0.x (callers built against the older struct get F32): */
    ngpt_dtype compute_dtype; /* NGPT_DTYPE_F32 (default), or F16 / BF16 on a CUDA context: the
                                 backbone, ImageBind and the decoders compute in it (weights
                                 converted once at load); the vocoder stays F32 there. BF16 on
                                 a CPU context: each handle's CPU BF16 (see their compute_dtype:
                                 BF16 GEMM and convolution inputs, F32 activations). F16 on a
                                 CPU context: NGPT_ERR_UNSUPPORTED at create. */
} ngpt_pipeline_params;

NGPT_API ngpt_status ngpt_pipeline_params_default(ngpt_pipeline_params *p, size_t struct_size);
/* Load the bundle in `bundle_dir` (bundle.json, above) on ctx's backend; params may be NULL.
 * Errors: NGPT_ERR_NOT_FOUND (bundle.json, a part), NGPT_ERR_BAD_FORMAT (bundle.json), and those
 * of the stage creates (their message prefixed with the part). Free with ngpt_pipeline_free. */
NGPT_API ngpt_status ngpt_pipeline_create(ngpt_pipeline **out, ngpt_context *ctx, const char *bundle_dir,
                                          const ngpt_pipeline_params *params);
/* NULL is a no-op. */
NGPT_API void ngpt_pipeline_free(ngpt_pipeline *p);
/* Forget the conversation (the next turn is a first turn again). */
NGPT_API ngpt_status ngpt_pipeline_reset(ngpt_pipeline *p);
/* Free a loaded decoder (it reloads on its next use). */
NGPT_API ngpt_status ngpt_pipeline_release_decoder(ngpt_pipeline *p, ngpt_modality modality);
/* 1 when bundle.json says "random_weights": true (a test model), else 0. */
NGPT_API int32_t ngpt_pipeline_is_test_model(const ngpt_pipeline *p);
/* The stage handles, borrowed from p (NULL when absent; decoder: NULL until loaded). */
NGPT_API ngpt_backbone  *ngpt_pipeline_backbone(const ngpt_pipeline *p);
NGPT_API ngpt_encoder   *ngpt_pipeline_encoder(const ngpt_pipeline *p);
NGPT_API ngpt_projector *ngpt_pipeline_projector(const ngpt_pipeline *p);
NGPT_API ngpt_decoder   *ngpt_pipeline_decoder(const ngpt_pipeline *p, ngpt_modality modality);
/* Absolute path of the bundle's decoder folder for modality, or NULL when it has none (a relative
 * bundle_dir is made absolute against the working directory at create, not resolved: decoders
 * loaded later are found after a chdir). */
NGPT_API const char *ngpt_pipeline_decoder_path(const ngpt_pipeline *p, ngpt_modality modality);
/* The conversation's backbone session, borrowed from p, for inspection (n_past, logits and
 * hidden rows of the last evaluated position); running turns or evals on it directly desyncs
 * the pipeline. */
NGPT_API ngpt_backbone_session *ngpt_pipeline_session(const ngpt_pipeline *p);

typedef struct ngpt_pipeline_turn_params {
    size_t      struct_size;        /* sizeof(ngpt_pipeline_turn_params), set by _default */
    uint32_t    force;              /* NGPT_PIPELINE_FORCE bits: answer with these modalities even
                                     * when the model emits no signal tokens for them (the text
                                     * stops early enough to leave their groups room; one the
                                     * conversation leaves no room in the context is an output
                                     * that failed: NGPT_ERR_INVALID_ARGUMENT, message why) */
    /* the language model's sampling (defaults: NExT-GPT's demo) */
    float       temperature;        /* default 1.0; 0 = greedy */
    int32_t     top_k;              /* default 0 = off */
    float       top_p;              /* in (0, 1]; default 0.01 */
    float       repetition_penalty; /* default 1 = off */
    int32_t     max_new_tokens;     /* default 246 */
    uint64_t    seed;               /* sampling and the decoders' initial noise; default 0 */
    /* the decoders (0 = the decoder's default, as ngpt_decode_params) */
    int32_t     steps;              /* denoising steps; 0 = 50 */
    float       guidance_scale;     /* 0 = 7.5 */
    ngpt_scheduler_kind scheduler;  /* AUTO = the folder's */
    int32_t     height, width;      /* image/video pixels; 0 = the decoder's (SD: sample_size x 8) */
    int32_t     num_frames;         /* video; 0 = 24 */
    double      audio_length_s;     /* audio; 0 = 5 */
    float       video_fps;          /* MP4 frame rate in 0..1000; 0 = 8 (NExT-GPT's) */
    ngpt_pipeline_event_fn on_event;/* NULL = none */
    void       *user_data;
    const volatile int32_t *cancel; /* NULL = none; nonzero = stop at the next token or step */
} ngpt_pipeline_turn_params;

NGPT_API ngpt_status ngpt_pipeline_turn_params_default(ngpt_pipeline_turn_params *p, size_t struct_size);

typedef struct ngpt_pipeline_result ngpt_pipeline_result;  /* opaque; ngpt_pipeline_result_free */

/* One user turn: text (UTF-8; NULL = "") and n media items. On NGPT_OK *out is a result, also
 * when outputs failed (their status says why) or the turn was cancelled by the callback or
 * `cancel` (ngpt_pipeline_result_cancelled; outputs not produced get NGPT_ERR_CANCELLED).
 * Errors (no result, the conversation unchanged): NGPT_ERR_INVALID_ARGUMENT (also for a media
 * item of no input modality and for decoder settings out of range, checked before anything
 * runs), media that cannot be read or encoded (the message names the file),
 * NGPT_ERR_UNSUPPORTED (a modality the encoder or input projector lacks; a forced output when the
 * language model has no signal tokens, as a plain LLaMA), errors of the
 * language model. */
NGPT_API ngpt_status ngpt_pipeline_turn(ngpt_pipeline_result **out, ngpt_pipeline *p, const char *text,
                                        const ngpt_pipeline_media *media, size_t n_media,
                                        const ngpt_pipeline_turn_params *tp);

/* The answer text (borrowed from r; *len may be NULL). */
NGPT_API const char *ngpt_pipeline_result_text(const ngpt_pipeline_result *r, size_t *len);
/* 1 when the turn was cancelled. */
NGPT_API int32_t ngpt_pipeline_result_cancelled(const ngpt_pipeline_result *r);
/* Media outputs (one per signal group, forced ones included). */
NGPT_API int32_t ngpt_pipeline_result_n_outputs(const ngpt_pipeline_result *r);
/* Output i: its modality, and (when it was produced) its encoded bytes (borrowed from r) and
 * format extension ("png", "wav", "mp4"). Returns the output's status: NGPT_OK, or why it is
 * missing (NGPT_ERR_NOT_FOUND: no decoder for the modality in the bundle; NGPT_ERR_CANCELLED;
 * a decoder error) with *bytes = NULL, *size = 0. Any out pointer may be NULL. */
NGPT_API ngpt_status ngpt_pipeline_result_output(const ngpt_pipeline_result *r, int32_t i, ngpt_modality *modality,
                                                 const uint8_t **bytes, size_t *size, const char **format);
/* 1 when output i is an image the safety checker flagged and blacked out
 * (NGPT_PIPELINE_SAFETY_CHECKER), else 0. */
NGPT_API int32_t ngpt_pipeline_result_output_nsfw(const ngpt_pipeline_result *r, int32_t i);
/* The message of output i's failure ("" when it succeeded). */
NGPT_API const char *ngpt_pipeline_result_output_message(const ngpt_pipeline_result *r, int32_t i);
/* Generated media re-entering the history (see the section's text): *n_media (may be NULL) = how
 * many of the turn's outputs are now in the conversation's history as media (0 when none were
 * produced or NGPT_PIPELINE_NO_MEDIA_HISTORY is set). Returns NGPT_OK, or the error that kept
 * them out (a produced output that could not be re-encoded, the re-written answer not fitting
 * n_ctx; message in ngpt_last_error()): the cached answer then stays as generated, except after
 * a failure while the re-written answer was being evaluated, when the cache ends where the
 * answer began (ngpt_pipeline_reset to start clean). */
NGPT_API ngpt_status ngpt_pipeline_result_history(const ngpt_pipeline_result *r, int32_t *n_media);

typedef enum ngpt_pipeline_stage {
    NGPT_PIPELINE_STAGE_LOAD      = 0,  /* decoders loaded during the turn */
    NGPT_PIPELINE_STAGE_ENCODE    = 1,  /* media decoding + ImageBind */
    NGPT_PIPELINE_STAGE_PROJECT   = 2,  /* input and output projectors */
    NGPT_PIPELINE_STAGE_LLM       = 3,  /* prompt + generation */
    NGPT_PIPELINE_STAGE_DECODE    = 4,  /* diffusion + VAE (+ vocoder) */
    NGPT_PIPELINE_STAGE_MEDIA_OUT = 5,  /* PNG / WAV / MP4 encoding */
    NGPT_PIPELINE_STAGE_COUNT     = 6
} ngpt_pipeline_stage;

/* Wall-clock milliseconds the turn spent in a stage (0 for unknown stages). */
NGPT_API double ngpt_pipeline_result_stage_ms(const ngpt_pipeline_result *r, ngpt_pipeline_stage stage);
/* Peak tensor memory, in bytes, the context held during a stage of the turn (the high-water mark
 * over the stage's intervals): on the host (the CPU backend's allocations; weights the CPU reads
 * straight from the mmapped checkpoint are not allocations and are not counted) and on the device
 * (0 on a CPU context). Everything the context holds counts — the loaded stages' weights on CUDA,
 * the KV cache — and, when other handles of the context work at the same time, their tensors too.
 * Unknown stages (or r NULL) give 0. Either pointer may be NULL. */
NGPT_API void ngpt_pipeline_result_stage_memory(const ngpt_pipeline_result *r, ngpt_pipeline_stage stage,
                                                uint64_t *host_bytes, uint64_t *device_bytes);
/* NULL is a no-op. */
NGPT_API void ngpt_pipeline_result_free(ngpt_pipeline_result *r);

/* ---------------------------------------------------------------------------------------------
 * Memory estimate: what a pipeline turn needs, from a bundle's configs alone
 *
 * ngpt_pipeline_estimate_memory reads the config files of a bundle (bundle.json, the language
 * model's config.json, ImageBind's config.json (none or a checkpoint file: imagebind_huge), the
 * projector config (none: NExT-GPT 7b_tiva_v0's sizes), each decoder's unet/, vae/,
 * text_encoder/ and vocoder/ config.json) — no weights are opened, so it works on a folder of
 * configs and before a download — and returns, per part of the pipeline, the bytes of its weights
 * in the form the backend holds them, its KV cache, and its peak working memory (activations and
 * scratch while it computes), and per pipeline stage the tensor memory the context holds at that
 * stage's peak: the same accounting as ngpt_pipeline_result_stage_memory (host bytes on a CPU
 * backend, device bytes on CUDA), so the estimate is an upper bound of what a turn reports. The
 * formulas and their assumptions are in docs/architecture.md ("Memory estimate").
 *
 *     ngpt_memory_params mp;
 *     ngpt_memory_params_default(&mp, sizeof mp);
 *     mp.backend = NGPT_BACKEND_CUDA;
 *     mp.compute_dtype = NGPT_DTYPE_F16;
 *     ngpt_memory_estimate *e = NULL;
 *     if (ngpt_pipeline_estimate_memory(&e, "models/nextgpt", &mp) != NGPT_OK) ... ngpt_last_error()
 *     uint64_t peak;
 *     ngpt_memory_estimate_peak(e, &peak, NULL, NULL);
 *     ngpt_memory_estimate_free(e);
 * ------------------------------------------------------------------------------------------- */

typedef enum ngpt_memory_part {
    NGPT_MEMORY_BACKBONE      = 0,  /* the language model and its session */
    NGPT_MEMORY_ENCODER       = 1,  /* ImageBind, vision + audio branches */
    NGPT_MEMORY_PROJECTOR     = 2,  /* input and output projectors */
    NGPT_MEMORY_IMAGE_DECODER = 3,  /* UNet + VAE decoder + text encoder (+ vocoder: audio) */
    NGPT_MEMORY_AUDIO_DECODER = 4,
    NGPT_MEMORY_VIDEO_DECODER = 5,
    NGPT_MEMORY_PART_COUNT    = 6
} ngpt_memory_part;

typedef struct ngpt_memory_params {
    size_t       struct_size;   /* sizeof(ngpt_memory_params), set by _default */
    ngpt_backend backend;       /* where the pipeline runs: NGPT_BACKEND_CPU (default) or CUDA; no
                                   device is needed to estimate either */
    ngpt_dtype   compute_dtype; /* as ngpt_pipeline_params: F32 (default); F16 / BF16 with CUDA,
                                   BF16 on the CPU (the decoders' and ImageBind's matrices then
                                   owned BF16 copies) */
    int32_t      n_ctx;         /* as ngpt_pipeline_params: 0 = min(2048, the model's) */
    int32_t      n_batch;       /* positions of the longest single language-model evaluation (the
                                   turn's prompt, or the answer re-written with generated media);
                                   0 = 512; at most n_ctx */
    uint32_t     inputs;        /* NGPT_PIPELINE_FORCE bits of the media the turn encodes;
                                   default image */
    uint32_t     outputs;       /* NGPT_PIPELINE_FORCE bits of the decoders the turn runs (their
                                   outputs re-enter the history through ImageBind); default image */
    uint32_t     preload;       /* as ngpt_pipeline_params: decoders held from create (counted in
                                   every stage); decoders in `outputs` are counted too, since a
                                   lazily loaded decoder stays loaded */
    int32_t      height, width; /* as ngpt_pipeline_turn_params: 0 = the decoder's default */
    int32_t      num_frames;    /* video; 0 = 24 */
    double       audio_length_s;/* audio; 0 = 5 */
    /* Appended in 0.x (an older caller's shorter struct reads as 0): */
    uint32_t     flags;         /* ngpt_pipeline_params.flags bits that change memory:
                                   NGPT_PIPELINE_SAFETY_CHECKER counts the image decoder's safety
                                   checker (its folder must then exist); others are ignored */
} ngpt_memory_params;

typedef struct ngpt_memory_estimate ngpt_memory_estimate;  /* opaque; ngpt_memory_estimate_free */

NGPT_API ngpt_status ngpt_memory_params_default(ngpt_memory_params *p, size_t struct_size);
/* Estimate the memory of a pipeline turn on bundle_dir (params may be NULL: defaults). Errors:
 * NGPT_ERR_INVALID_ARGUMENT (params), NGPT_ERR_NOT_FOUND (bundle.json, a part's folder or
 * config.json; the message names the file), NGPT_ERR_BAD_FORMAT / NGPT_ERR_UNSUPPORTED (a config
 * the loaders would refuse, named as they name it). Free with ngpt_memory_estimate_free. */
NGPT_API ngpt_status ngpt_pipeline_estimate_memory(ngpt_memory_estimate **out, const char *bundle_dir,
                                                   const ngpt_memory_params *params);
/* 1 when the bundle has the part (a decoder named in bundle.json), else 0. */
NGPT_API int32_t ngpt_memory_estimate_has_part(const ngpt_memory_estimate *e, ngpt_memory_part part);
/* A part's bytes: weights as the backend holds them (CPU: views of the mmapped checkpoint in its
 * stored dtype, except what the loaders copy; CUDA: uploaded, in compute_dtype), of which
 * `mapped` are views of the files (not allocations: not counted by the context); the KV cache
 * (backbone only); and the peak working memory while the part computes (the backbone's scratch
 * stays allocated between evaluations). Unknown parts (or e NULL) give 0. Any pointer may be NULL. */
NGPT_API void ngpt_memory_estimate_part(const ngpt_memory_estimate *e, ngpt_memory_part part, uint64_t *weight_bytes,
                                        uint64_t *mapped_bytes, uint64_t *kv_bytes, uint64_t *work_bytes);
/* The tensor memory the context holds at the peak of a stage of a turn (the accounting of
 * ngpt_pipeline_result_stage_memory: host bytes on CPU, device bytes on CUDA): everything resident
 * (the parts' allocated weights, the KV cache and scratch, the decoders in preload | outputs) plus
 * the stage's working memory. 0 for unknown stages. */
NGPT_API uint64_t ngpt_memory_estimate_stage(const ngpt_memory_estimate *e, ngpt_pipeline_stage stage);
/* The turn: *peak = the largest stage + *overhead, the memory no tensor accounts for (CUDA: an
 * allowance of 1 GiB for the CUDA context, cuBLAS/cuDNN workspaces and memory-pool slack; CPU: 0);
 * *mapped = the weights read from the mmapped files on the CPU (resident only when touched, not
 * in *peak). Any pointer may be NULL. */
NGPT_API void ngpt_memory_estimate_peak(const ngpt_memory_estimate *e, uint64_t *peak, uint64_t *overhead,
                                        uint64_t *mapped);
/* NULL is a no-op. */
NGPT_API void ngpt_memory_estimate_free(ngpt_memory_estimate *e);

#ifdef __cplusplus
}
#endif

#endif /* NEXTGPT_H */
