// attention_hd160.cu — attention forward for head dim 160 (F32, F16, BF16); see attention.cuh.
#include "attention.cuh"

namespace nxk {
namespace attn {
cudaError_t fwd_hd160(const nxk_attn_params &p, cudaStream_t s) { return dispatch_dtype<160, true>(p, s); }
}  // namespace attn
}  // namespace nxk
