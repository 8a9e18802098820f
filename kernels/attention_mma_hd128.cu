// attention_mma_hd128.cu — tensor-core attention forward for head dim 128 (F16, BF16); see attention_mma.cuh.
#include "attention_mma.cuh"

namespace nxk {
namespace attn_mma {
cudaError_t fwd_hd128(const nxk_attn_params &p, cudaStream_t s) { return dispatch_dtype<128>(p, s); }
}  // namespace attn_mma
}  // namespace nxk
