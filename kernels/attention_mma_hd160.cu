// attention_mma_hd160.cu — tensor-core attention forward for head dim 160 (F16, BF16); see attention_mma.cuh.
#include "attention_mma.cuh"

namespace nxk {
namespace attn_mma {
cudaError_t fwd_hd160(const nxk_attn_params &p, cudaStream_t s) { return dispatch_dtype<160>(p, s); }
}  // namespace attn_mma
}  // namespace nxk
