// attention_mma_hd64.cu — tensor-core attention forward for head dim 64 (F16, BF16); see attention_mma.cuh.
#include "attention_mma.cuh"

namespace nxk {
namespace attn_mma {
cudaError_t fwd_hd64(const nxk_attn_params &p, cudaStream_t s) { return dispatch_dtype<64>(p, s); }
}  // namespace attn_mma
}  // namespace nxk
