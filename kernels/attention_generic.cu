// attention_generic.cu — attention forward for any head dim <= NXK_ATTN_MAX_D (run-time D);
// see attention.cuh.
#include "attention.cuh"

namespace nxk {
namespace attn {
cudaError_t fwd_generic(const nxk_attn_params &p, cudaStream_t s) { return dispatch_dtype<NXK_ATTN_MAX_D, false>(p, s); }
}  // namespace attn
}  // namespace nxk
