/* unet.h — the diffusion denoisers: diffusers' UNet2DConditionModel (Stable Diffusion 1.5;
 * AudioLDM with class_embed_type "simple_projection") and UNet3DConditionModel (Zeroscope),
 * loaded from a diffusers unet/ folder (config.json + diffusion_pytorch_model.safetensors or
 * .bin), computed through the op layer. */
#ifndef NX_UNET_H
#define NX_UNET_H

#include "../ops/backend.h"

typedef struct nx_unet nx_unet;

/* Load unet_dir onto `be`; every size from config.json; every tensor's shape checked and every
 * tensor used (else NGPT_ERR_UNEXPECTED_TENSOR naming them). dt: the compute dtype; F16/BF16
 * (backends with those activation dtypes only) convert every weight to it at load, F32 keeps
 * the checkpoint's dtype. channels_last: a 2-D UNet runs its activations [N, H, W, C] inside
 * the forward (its conv filters permuted once here; the sample and the output stay NCHW); the
 * 3-D UNet [B*F, h, w, C]. */
ngpt_status nx_unet_load(nx_unet **out, nx_backend *be, const char *unet_dir, ngpt_dtype dt, bool channels_last);
void nx_unet_free(nx_unet *u);

/* True for UNet3DConditionModel (sample [B, C, F, h, w]). */
bool nx_unet_is_3d(const nx_unet *u);
int  nx_unet_in_channels(const nx_unet *u);
int  nx_unet_out_channels(const nx_unet *u);
/* cross_attention_dim (0 when the model has no cross-attention input, e.g. AudioLDM). */
int  nx_unet_cross_attention_dim(const nx_unet *u);
/* The class-embedding input width (AudioLDM: projection_class_embeddings_input_dim), else 0. */
int  nx_unet_class_embed_dim(const nx_unet *u);

/* out = unet(sample, timesteps, encoder_hidden_states, class_labels).sample, computed in
 * sample's dtype (the load's dt; sample, out, ehs and class_labels share it).
 * sample: backend tensor [B, C, h, w] (3-D: [B, C, F, h, w]); timesteps: B host floats;
 * ehs: [B, S, cross_attention_dim] or NULL; class_labels: [B, D] or NULL. out has sample's
 * shape with out_channels and is allocated by the caller. */
ngpt_status nx_unet_forward(nx_unet *u, nx_tensor *out, const nx_tensor *sample, const float *timesteps,
                            const nx_tensor *ehs, const nx_tensor *class_labels);

/* nx_unet_forward in two parts, for a step recorded once and replayed (nx_backend_capture_begin),
 * which must not copy from the host: the sinusoidal timestep input of B timesteps ([B,
 * nx_unet_time_channels] in sample's dtype) is made either on the host by nx_unet_time_input (F32,
 * for the caller to upload) or on the device by nx_op_timestep_embedding with
 * nx_unet_time_params, and nx_unet_forward_t runs the network from it. Same result as
 * nx_unet_forward, which is exactly this. */
int64_t nx_unet_time_channels(const nx_unet *u);
void nx_unet_time_params(const nx_unet *u, nx_timestep_params *p);
void nx_unet_time_input(const nx_unet *u, const float *timesteps, int64_t B, float *host);
ngpt_status nx_unet_forward_t(nx_unet *u, nx_tensor *out, const nx_tensor *sample, const nx_tensor *tin,
                              const nx_tensor *ehs, const nx_tensor *class_labels);

/* The tensors a UNet with this config.json has (name, rank, shape, in load order), without any
 * weights file: for generators of random-weight models (bench/, tests). Config errors as for
 * nx_unet_load. */
typedef ngpt_status (*nx_unet_tensor_fn)(void *user, const char *name, int rank, const int64_t *shape);
ngpt_status nx_unet_list_tensors(const char *config_path, nx_unet_tensor_fn fn, void *user);

#endif
