// attention.cu — nxk_attention: picks the compile-time head-dim instantiation.
#include "attention.cuh"

extern "C" cudaError_t nxk_attention(const nxk_attn_params *p, cudaStream_t s)
{
    using namespace nxk::attn;
    if (p->B <= 0 || p->Sq <= 0 || p->H <= 0) return cudaSuccess;
    switch (p->D) {
    case 40: return fwd_hd40(*p, s);
    case 64: return fwd_hd64(*p, s);
    case 80: return fwd_hd80(*p, s);
    case 128: return fwd_hd128(*p, s);
    case 160: return fwd_hd160(*p, s);
    default: return p->D > 0 && p->D <= NXK_ATTN_MAX_D ? fwd_generic(*p, s) : cudaErrorInvalidValue;
    }
}
