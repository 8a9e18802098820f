// attention.cu — nxk_attention: picks the tensor-core kernel (attention_mma.cuh) where it applies,
// else the compile-time head-dim instantiation of the CUDA-core kernel (attention.cuh).
#include "attention.cuh"
#include "attention_mma.cuh"

namespace nxk {
namespace attn_mma {

// The mma kernel needs: F16/BF16 (the tensor cores' inputs), no additive mask (not implemented
// there), 16-byte aligned q/k/v/out (rows are moved in 16-byte cp.async chunks; D is a multiple
// of 8, so every row then starts aligned too) and an sm_80+ device (mma.sync bf16, cp.async,
// ldmatrix). The head dim is checked by the caller's switch.
bool usable(const nxk_attn_params &p)
{
    if ((p.dt != NXK_F16 && p.dt != NXK_BF16) || p.mask) return false;
    if (((uintptr_t)p.q | (uintptr_t)p.k | (uintptr_t)p.v | (uintptr_t)p.out) & 15) return false;
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
        return false;
    return major >= 8;
}

}  // namespace attn_mma
}  // namespace nxk

extern "C" cudaError_t nxk_attention(const nxk_attn_params *p, cudaStream_t s)
{
    using namespace nxk;
    if (p->B <= 0 || p->Sq <= 0 || p->H <= 0) return cudaSuccess;
    const bool mma = attn_mma::usable(*p);
    switch (p->D) {
    case 40: return mma ? attn_mma::fwd_hd40(*p, s) : attn::fwd_hd40(*p, s);
    case 64: return mma ? attn_mma::fwd_hd64(*p, s) : attn::fwd_hd64(*p, s);
    case 80: return mma ? attn_mma::fwd_hd80(*p, s) : attn::fwd_hd80(*p, s);
    case 128: return mma ? attn_mma::fwd_hd128(*p, s) : attn::fwd_hd128(*p, s);
    case 160: return mma ? attn_mma::fwd_hd160(*p, s) : attn::fwd_hd160(*p, s);
    default: return p->D > 0 && p->D <= NXK_ATTN_MAX_D ? attn::fwd_generic(*p, s) : cudaErrorInvalidValue;
    }
}
