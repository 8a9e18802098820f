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

static cudaError_t attention_one(const nxk_attn_params *p, cudaStream_t s)
{
    using namespace nxk;
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

extern "C" cudaError_t nxk_attention(const nxk_attn_params *p, cudaStream_t s)
{
    if (p->B <= 0 || p->Sq <= 0 || p->H <= 0) return cudaSuccess;
    // Both kernels put the batch on gridDim.z, at most 65535. The UNet3D's temporal attention has
    // a batch of 2 x latent pixels (CFG): over 65535 from ~2.1 Mpx frames, which the decoders
    // accept. Such a batch runs in chunks; the tensors are contiguous [B, S, H, D].
    constexpr int kMaxB = 65535;
    if (p->B <= kMaxB) return attention_one(p, s);
    const int64_t es = p->dt == NXK_F32 ? 4 : 2;
    const int64_t qb = (int64_t)p->Sq * p->H * p->D * es, kb = (int64_t)p->Skv * p->Hkv * p->D * es;
    nxk_attn_params c = *p;
    for (int b0 = 0; b0 < p->B; b0 += kMaxB) {
        c.B = p->B - b0 < kMaxB ? p->B - b0 : kMaxB;
        c.q = (const char *)p->q + b0 * qb;
        c.k = (const char *)p->k + b0 * kb;
        c.v = (const char *)p->v + b0 * kb;
        c.out = (char *)p->out + b0 * qb;
        c.mask = p->mask ? p->mask + b0 * p->mask_bstride : NULL;
        const cudaError_t e = attention_one(&c, s);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}
