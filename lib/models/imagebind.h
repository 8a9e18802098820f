/* imagebind.h — ImageBind's vision and audio branches (facebookresearch/ImageBind
 * imagebind/models/imagebind_model.py, transformer.py, multimodal_preprocessors.py, helpers.py),
 * as NExT-GPT's copy runs them: per clip stem -> CLS + pos -> [pre-LN] -> pre-LN blocks ->
 * head (LN, token 0, Linear) -> L2 normalise [-> x logit scale, upstream audio only] ->
 * mean over the clips of an item (not re-normalised).
 *
 * Loaded from a folder (config.json = ImageBindModel constructor arguments + model.safetensors
 * or model.safetensors.index.json) or from one checkpoint file (the official imagebind_huge.pth,
 * a torch.save state dict, or a .safetensors): a file alone gets imagebind_huge's sizes
 * (nx_imagebind_config_huge). Tensor names are the upstream ones. */
#ifndef NX_IMAGEBIND_H
#define NX_IMAGEBIND_H

#include "../ops/backend.h"

typedef enum nx_ib_modality {
    NX_IB_VISION = 0,
    NX_IB_AUDIO  = 1,
    NX_IB_N      = 2
} nx_ib_modality;
#define NX_IB_BIT(m) (1u << (m))

typedef struct nx_imagebind_config {
    int   out_embed_dim;                /* 1024 */
    int   embed_dim[NX_IB_N];           /* vision 1280, audio 768 */
    int   num_blocks[NX_IB_N];          /* 32, 12 */
    int   num_heads[NX_IB_N];           /* 16, 12 */
    bool  pre_transformer_ln[NX_IB_N];  /* true, false */
    bool  add_bias_kv[NX_IB_N];         /* false, true */
    int   video_frames;                 /* 2: PadIm2Video repeats an image to this many frames */
    int   kernel_size[3];               /* (2, 14, 14): Conv3d kernel = stride */
    int   image_size;                   /* 224 */
    int   audio_kernel_size;            /* 16 */
    int   audio_stride;                 /* 10 */
    int   audio_num_mel_bins;           /* 128 */
    int   audio_target_len;             /* 204 */
    int   mlp_ratio;                    /* 4 */
    float layer_norm_eps;               /* 1e-6: blocks, pre-LN, heads */
    float audio_stem_layer_norm_eps;    /* 1e-5: nn.LayerNorm default on the audio patch tokens */
    bool  audio_logit_scale_applied;    /* false in NExT-GPT's copy; upstream ImageBind: x20 */
} nx_imagebind_config;

typedef struct nx_imagebind nx_imagebind;

/* imagebind_huge's constructor (what a checkpoint without config.json is taken to be). */
void nx_imagebind_config_huge(nx_imagebind_config *c);
/* The config nx_imagebind_load would use for `path`: a folder's config.json (absent keys, or no
 * config.json: imagebind_huge), or imagebind_huge's for a checkpoint file. No weights are read. */
ngpt_status nx_imagebind_read_config(nx_imagebind_config *c, const char *path);

/* Load the branches in `modalities` (NX_IB_BIT set; 0 = every vision/audio branch stored).
 * Tensors of the other ImageBind modalities (text, depth, thermal, imu) and of branches not
 * asked for are skipped; any other tensor is NGPT_ERR_UNEXPECTED_TENSOR. */
/* act_dtype: F32 (any backend; matrices kept as stored), or F16/BF16 (CUDA: matrices, embeddings
 * and activations in that dtype; the caller checks the backend). mat_dtype: the matrices' dtype
 * when it is not act_dtype's (F32: act_dtype's rule): BF16 with F32 activations is the CPU's BF16
 * compute, whose GEMMs then take the weights as they are instead of rounding them per call. */
ngpt_status nx_imagebind_load(nx_imagebind **out, nx_backend *be, const char *path, unsigned modalities,
                              ngpt_dtype act_dtype, ngpt_dtype mat_dtype);
void nx_imagebind_free(nx_imagebind *m);  /* NULL is a no-op */
const nx_imagebind_config *nx_imagebind_get_config(const nx_imagebind *m);
bool nx_imagebind_has(const nx_imagebind *m, nx_ib_modality mod);

/* y [N, out_embed_dim] (F32, allocated by the caller) from x (F32, backend memory) holding
 * N * clips clips, item-major:
 *   vision: [N*clips, 3, image, image] (an image, repeated to video_frames frames) or
 *           [N*clips, 3, T, image, image] with T = 1 (repeated) or T = video_frames;
 *   audio:  [N*clips, 1, audio_num_mel_bins, audio_target_len].
 * Each clip's embedding is L2-normalised; the clips of an item are averaged (clips == 1: as is).
 * Shapes are the caller's to check (nx_imagebind_encode re-checks and names them). */
ngpt_status nx_imagebind_encode(nx_imagebind *m, nx_ib_modality mod, nx_tensor *y, const nx_tensor *x,
                                int64_t clips);

#endif
