/* stage.h — how ngpt-case runs one golden case's stage.
 *
 * ngpt-case (tools/case/ngpt_case.c) reads CASE_DIR/case.json and inputs.safetensors, finds the
 * stage by name in the table in stages.c, calls it, and writes what the stage added to `out`
 * as OUT.safetensors. A stage computes through the PUBLIC API (include/nextgpt.h) only; it may
 * use the internal readers (nx_weights, nx_json) to read its inputs.
 *
 * A stage returns NGPT_OK, NGPT_ERR_UNIMPLEMENTED (counted as "unimplemented", not a failure),
 * or another status (a failure; the message says why).
 */
#ifndef NGPT_CASE_STAGE_H
#define NGPT_CASE_STAGE_H

#include "nextgpt.h"
#include "core/json.h"
#include "core/weights.h"

typedef struct case_out case_out;

typedef struct case_ctx {
    const char   *case_dir;   /* the case folder */
    const char   *model_dir;  /* case.json "model" resolved against case_dir; NULL if absent */
    const json_t *params;     /* case.json "params" (an object, possibly empty) */
    nx_weights   *inputs;     /* inputs.safetensors; NULL when the case has none */
    ngpt_context *ctx;        /* created by ngpt-case (device from --device) */
} case_ctx;

/* Add an output tensor (data copied). */
ngpt_status case_out_add(case_out *out, const char *name, ngpt_dtype dtype, int rank,
                         const int64_t *shape, const void *data);

/* Fetch input `name` as F32 (any float/int dtype converted) / as I32 (integer dtypes);
 * *data is allocated with nx_malloc and freed by the caller with nx_free. */
ngpt_status case_input_f32(const case_ctx *c, const char *name, float **data, int *rank, int64_t *shape);
ngpt_status case_input_i32(const case_ctx *c, const char *name, int32_t **data, int *rank, int64_t *shape);

/* Path of a file named by a params string, resolved against the case folder (caller frees with
 * nx_free). */
ngpt_status case_param_path(const case_ctx *c, const char *key, char **path);

/* A decoder on the pipeline folder of c->model_dir (which may name the pipeline folder or one of
 * its component subfolders), loading the `comp` components (NGPT_DECODER_* bits); *dir receives
 * the pipeline folder (nx_free). Defined in stage_vae.c. */
ngpt_status case_open_decoder(const case_ctx *c, ngpt_decoder **d, ngpt_decoder_kind kind, uint32_t comp, char **dir);
/* The same with ngpt_decoder_params.flags bits added (NGPT_DECODER_FLAG_SAFETY_CHECKER). */
ngpt_status case_open_decoder_flags(const case_ctx *c, ngpt_decoder **d, ngpt_decoder_kind kind, uint32_t comp,
                                    uint32_t flags, char **dir);

/* Decoder flags every stage adds (ngpt_decoder_params.flags): NGPT_DECODER_FLAG_CHANNELS_LAST
 * when the environment has NGPT_CASE_CHANNELS_LAST=1, so that the decoder cases also run
 * through the channels-last UNet and VAE. Defined in stage_vae.c. */
uint32_t case_decoder_flags(void);

typedef ngpt_status (*case_stage_fn)(const case_ctx *c, case_out *out);

typedef struct case_stage {
    const char   *name;  /* "llama.logits" as in case.json */
    case_stage_fn run;   /* NULL = not implemented yet */
} case_stage;

/* The table (stages.c), terminated by {NULL, NULL}. */
extern const case_stage case_stages[];

#endif
