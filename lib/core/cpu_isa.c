/* cpu_isa.c — CPU feature detection behind nx_cpu_isa (cpuid + XGETBV: the OS must save the
 * wide registers too, which __builtin_cpu_supports checks on gcc but not on every clang). */
#include "cpu_isa.h"

#include <stdbool.h>

#ifdef __linux__
#  include <sys/syscall.h>
#  include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#  include <cpuid.h>
#  define NX_X86 1
#endif

static int g_cap = NX_ISA_AVX512;

#ifdef NX_X86
static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static nx_isa detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return NX_ISA_PORTABLE;
    const bool osxsave = c & bit_OSXSAVE, fma = c & bit_FMA, f16c = c & bit_F16C, avx = c & bit_AVX;
    if (!osxsave || !avx) return NX_ISA_PORTABLE;
    const unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return NX_ISA_PORTABLE; /* XMM and YMM state */
    if (__get_cpuid_max(0, 0) < 7) return NX_ISA_PORTABLE;
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = b & bit_AVX2;
    if (!avx2 || !fma || !f16c) return NX_ISA_PORTABLE;
    const bool z512 = (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512VL) && (b & bit_AVX512DQ);
    if (z512 && (xcr0 & 0xe6) == 0xe6) return NX_ISA_AVX512; /* + opmask, ZMM0-15 hi, ZMM16-31 */
    return NX_ISA_AVX2;
}
#else
static nx_isa detect(void) { return NX_ISA_PORTABLE; }
#endif

nx_isa nx_cpu_isa(void)
{
    static int cached = -1; /* a benign race: every thread computes the same value */
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        c = (int)detect();
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    int cap = __atomic_load_n(&g_cap, __ATOMIC_RELAXED);
    return (nx_isa)(c < cap ? c : cap);
}

/* Linux (5.16 on) hands a process the AMX tile data state only on request: without it the first
 * tile instruction faults. Granted once for the whole process (oneDNN asks too). */
static bool amx_permitted(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

/* The BF16 extensions beyond the AVX-512 base: bit 0 AVX512-BF16, bit 1 AMX-BF16 with AMX-TILE,
 * the OS managing the tile state (XCR0 bits 17, 18) and granting it to this process. Cached
 * after the first call. */
static int bf16_features(void)
{
    static int cached = -1;
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        c = 0;
#ifdef NX_X86
        unsigned a, b, cc, d;
        if (detect() == NX_ISA_AVX512 && __get_cpuid_max(0, 0) >= 7) {
            __cpuid_count(7, 1, a, b, cc, d);
            c |= (a >> 5) & 1; /* CPUID.(7, 1):EAX[5] */
            __cpuid_count(7, 0, a, b, cc, d);
            if (((d >> 22) & 1) && ((d >> 24) & 1) && (xgetbv0() & 0x60000) == 0x60000 && amx_permitted()) c |= 2;
        }
#endif
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    return nx_cpu_has_avx512() ? c : 0;
}

int nx_cpu_has_avx512_bf16(void) { return bf16_features() & 1; }

static int g_amx_off;

int nx_cpu_has_amx_bf16(void) { return !__atomic_load_n(&g_amx_off, __ATOMIC_RELAXED) && ((bf16_features() >> 1) & 1); }

bool nx_cpu_set_amx(bool on) { return !__atomic_exchange_n(&g_amx_off, on ? 0 : 1, __ATOMIC_RELAXED); }

nx_isa nx_isa_limit(nx_isa cap)
{
    return (nx_isa)__atomic_exchange_n(&g_cap, (int)cap, __ATOMIC_RELAXED);
}

const char *nx_isa_name(nx_isa isa)
{
    switch (isa) {
    case NX_ISA_AVX2: return "AVX2";
    case NX_ISA_AVX512: return "AVX-512";
    default: return "portable";
    }
}
