// sched.cu — the diffusion scheduler step fused with the classifier-free guidance combine: one
// pass over the latents per denoising step, the state buffers (PNDM's eps history, DPM-Solver's
// model outputs) kept on the device. The math is lib/sched/sched_math.h's nx_sched_elem, the
// same function the host and the CPU backend run. This file is compiled with --fmad=false
// (kernels/meson.build): with nvcc's default FMA contraction the trajectories drift apart by up
// to ~2e-4 relative over 8-50 steps with guidance 7.5 (PNDM, DPM-Solver); without it the three
// agree bit for bit (C11 mode does not contract either; division is IEEE on both).
#include "common.cuh"

using namespace nxk;

namespace {

constexpr int kBlock = 256;

struct slots {
    float *s[NX_SCHED_SLOTS];
};

// Only x is promised not to alias: the op layer checks that, not whether eps or noise is a slot.
__global__ void sched_step_kernel(nx_sched_step p, const float *eps, float *__restrict__ x, const float *noise, slots st)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.n; i += (int64_t)gridDim.x * blockDim.x)
        nx_sched_elem(&p, eps, x, noise, st.s, i);
}

}  // namespace

extern "C" cudaError_t nxk_sched_step(const nx_sched_step *p, const float *eps, float *x, const float *noise,
                                      float *const *slot, cudaStream_t s)
{
    if (p->n <= 0) return cudaSuccess;
    slots st;
    for (int j = 0; j < NX_SCHED_SLOTS; j++) st.s[j] = slot[j];
    sched_step_kernel<<<grid_for(p->n, kBlock), kBlock, 0, s>>>(*p, eps, x, noise, st);
    return cudaGetLastError();
}
