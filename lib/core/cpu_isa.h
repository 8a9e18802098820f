/* cpu_isa.h — the one place that decides which SIMD kernels the CPU code may run.
 *
 * Every hand-vectorised kernel has three forms chosen at run time by nx_cpu_isa(): portable C
 * (the reference), AVX2 (with FMA and F16C: Haswell and later, every AMD Zen) and AVX-512
 * (F+BW+VL+DQ: Skylake-SP and later, Zen 4). The library is built for baseline x86-64, so one
 * binary runs everywhere and takes the widest form the CPU has. */
#ifndef NX_CPU_ISA_H
#define NX_CPU_ISA_H

#include <stdbool.h>

typedef enum nx_isa {
    NX_ISA_PORTABLE = 0,
    NX_ISA_AVX2 = 1,    /* AVX2 + FMA + F16C */
    NX_ISA_AVX512 = 2,  /* AVX-512 F, BW, VL, DQ (and the AVX2 set) */
} nx_isa;

/* The widest level this CPU (and OS) supports, lowered to the cap of nx_isa_limit. Cached
 * after the first call; cheap. */
nx_isa nx_cpu_isa(void);

/* Test hook: cap nx_cpu_isa() at `cap` (NX_ISA_AVX512: no cap), so that one machine exercises
 * the narrower kernels too. Returns the previous cap. Not to be changed while ops run on other
 * threads: a kernel may see the old level for the part of its work already dispatched. */
nx_isa nx_isa_limit(nx_isa cap);

static inline int nx_cpu_has_avx2(void) { return nx_cpu_isa() >= NX_ISA_AVX2; }
static inline int nx_cpu_has_avx512(void) { return nx_cpu_isa() >= NX_ISA_AVX512; }

/* AVX-512 (as nx_cpu_has_avx512, so under the test cap too) with the AVX512-BF16 dot products
 * (vdpbf16ps: Cooper Lake, Sapphire Rapids, Zen 4): the CPU BF16 compute's own kernels. */
int nx_cpu_has_avx512_bf16(void);

/* AMX with BF16 tiles (Sapphire Rapids and later), granted to the process by the OS and not
 * turned off by nx_cpu_set_amx: BF16 compute then takes the tile unit's paths (oneDNN's AMX
 * convolutions channels last, the attention tiles on TDPBF16PS; bench/RESULTS.md, session 29). */
int nx_cpu_has_amx_bf16(void);
/* Off: nx_cpu_has_amx_bf16 says no, so BF16 compute takes the AVX512-BF16 paths (benchmarks'
 * before/after on an AMX CPU: NGPT_BENCH_AMX=0). Process-wide; set it before creating handles
 * (a BF16 decoder's layout is chosen at create). Returns the previous setting. */
bool nx_cpu_set_amx(bool on);

/* "portable", "AVX2", "AVX-512". */
const char *nx_isa_name(nx_isa isa);

#endif
