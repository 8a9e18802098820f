// attention_mma_hd80.cu — tensor-core attention forward for head dim 80 (F16, BF16); see attention_mma.cuh.
#include "attention_mma.cuh"

namespace nxk {
namespace attn_mma {
cudaError_t fwd_hd80(const nxk_attn_params &p, cudaStream_t s) { return dispatch_dtype<80>(p, s); }
}  // namespace attn_mma
}  // namespace nxk
