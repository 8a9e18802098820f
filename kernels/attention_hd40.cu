// attention_hd40.cu — attention forward for head dim 40 (F32, F16, BF16); see attention.cuh.
#include "attention.cuh"

namespace nxk {
namespace attn {
cudaError_t fwd_hd40(const nxk_attn_params &p, cudaStream_t s) { return dispatch_dtype<40, true>(p, s); }
}  // namespace attn
}  // namespace nxk
