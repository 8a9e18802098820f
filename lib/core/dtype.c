/* dtype.c — dtype table and IEEE half conversions (bit-exact, no F16C dependency: the scalar
 * forms are the reference; the bulk forms are what hot loops call, with AVX-512 and F16C paths
 * chosen at run time that give the same bits as the scalar forms, NaN payloads included). */
#include "dtype.h"

#include "cpu_isa.h"

#if defined(__x86_64__) || defined(__i386__)
#  define NX_X86 1
#  include <immintrin.h>
#  include <stdbool.h>
#endif

static const struct {
    const char *name;
    size_t size;
} k_dtypes[] = {
    [NGPT_DTYPE_F32] = {"F32", 4},  [NGPT_DTYPE_F16] = {"F16", 2}, [NGPT_DTYPE_BF16] = {"BF16", 2},
    [NGPT_DTYPE_I64] = {"I64", 8},  [NGPT_DTYPE_I32] = {"I32", 4}, [NGPT_DTYPE_U8] = {"U8", 1},
    [NGPT_DTYPE_BOOL] = {"BOOL", 1}, [NGPT_DTYPE_F64] = {"F64", 8}, [NGPT_DTYPE_I16] = {"I16", 2},
    [NGPT_DTYPE_I8] = {"I8", 1},
};
#define N_DTYPES (sizeof k_dtypes / sizeof k_dtypes[0])

size_t nx_dtype_size(ngpt_dtype dt)
{
    return (unsigned)dt < N_DTYPES ? k_dtypes[dt].size : 0;
}

const char *nx_dtype_name(ngpt_dtype dt)
{
    return (unsigned)dt < N_DTYPES ? k_dtypes[dt].name : "?";
}

bool nx_dtype_parse(const char *s, ngpt_dtype *out)
{
    for (unsigned i = 0; i < N_DTYPES; i++) {
        if (strcmp(s, k_dtypes[i].name) == 0) {
            *out = (ngpt_dtype)i;
            return true;
        }
    }
    return false;
}

float nx_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else {  /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ffu;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0u);  /* NaN comes out quiet (as F16C) */
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t nx_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((absu >> 13) & 0x3ffu)); /* NaN: quiet, payload kept (as F16C) */
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          /* overflow -> inf */
    if (absu < 0x38800000u) {                                            /* subnormal or zero */
        if (absu < 0x33000000u) return (uint16_t)sign;                   /* < half the min subnormal */
        uint32_t e = absu >> 23;
        uint32_t m = (absu & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;  /* value = m * 2^(e-150); in units of 2^-24 that is m >> shift */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = absu - 0x38000000u;  /* rebias exponent by 112 */
    uint32_t rem = r & 0x1fffu;
    r >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (uint16_t)(sign | r);
}

/* ---- bulk conversions ---- */

static void f16_to_f32_c(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = nx_f16_to_f32(src[i]);
}

static void bf16_to_f32_c(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = nx_bf16_to_f32(src[i]);
}

static void f32_to_f16_c(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = nx_f32_to_f16(src[i]);
}

static void f32_to_bf16_c(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = nx_f32_to_bf16(src[i]);
}

#ifdef NX_X86
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define F16C __attribute__((target("avx,f16c")))

AVX512 static inline __mmask16 tail16(size_t left) { return (__mmask16)((1u << left) - 1u); }

AVX512 static void f16_to_f32_avx512(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    if (i < n) {
        __mmask16 k = tail16(n - i);
        _mm512_mask_storeu_ps(dst + i, k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, src + i)));
    }
}

AVX512 static void f32_to_f16_avx512(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) {
        __mmask16 k = tail16(n - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(dst + i, k, h);
    }
}

AVX512 static void bf16_to_f32_avx512(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail16(n - i);
        __m512i u = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, src + i)), 16);
        _mm512_mask_storeu_ps(dst + i, k, _mm512_castsi512_ps(u));
    }
}

/* Integer round-to-nearest-even like nx_f32_to_bf16 (the BF16 instructions flush subnormals). */
AVX512 static void f32_to_bf16_avx512(const float *src, uint16_t *dst, size_t n)
{
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i qnan = _mm512_set1_epi32(0x40);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail16(n - i);
        __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(k, src + i));
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absmask), inf);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
        r = _mm512_srli_epi32(r, 16);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), qnan));
        _mm256_mask_storeu_epi16(dst + i, k, _mm512_cvtepi32_epi16(r));
    }
}

F16C static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    f16_to_f32_c(src + i, dst + i, n - i);
}

F16C static void f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    f32_to_f16_c(src + i, dst + i, n - i);
}

#endif

void nx_f16_to_f32_n(const uint16_t *src, float *dst, size_t n)
{
#ifdef NX_X86
    nx_isa c = nx_cpu_isa();
    if (c == NX_ISA_AVX512) {
        f16_to_f32_avx512(src, dst, n);
        return;
    }
    if (c == NX_ISA_AVX2) {
        f16_to_f32_f16c(src, dst, n);
        return;
    }
#endif
    f16_to_f32_c(src, dst, n);
}

void nx_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n)
{
#ifdef NX_X86
    if (nx_cpu_isa() == NX_ISA_AVX512) {
        bf16_to_f32_avx512(src, dst, n);
        return;
    }
#endif
    bf16_to_f32_c(src, dst, n);  /* a shift: the compiler vectorises it */
}

void nx_f32_to_f16_n(const float *src, uint16_t *dst, size_t n)
{
#ifdef NX_X86
    nx_isa c = nx_cpu_isa();
    if (c == NX_ISA_AVX512) {
        f32_to_f16_avx512(src, dst, n);
        return;
    }
    if (c == NX_ISA_AVX2) {
        f32_to_f16_f16c(src, dst, n);
        return;
    }
#endif
    f32_to_f16_c(src, dst, n);
}

void nx_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n)
{
#ifdef NX_X86
    if (nx_cpu_isa() == NX_ISA_AVX512) {
        f32_to_bf16_avx512(src, dst, n);
        return;
    }
#endif
    f32_to_bf16_c(src, dst, n);
}


double nx_dtype_get(const void *base, ngpt_dtype dt, size_t i)
{
    const unsigned char *p = base;
    switch (dt) {
    case NGPT_DTYPE_F32: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case NGPT_DTYPE_F64: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    case NGPT_DTYPE_F16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return nx_f16_to_f32(v); }
    case NGPT_DTYPE_BF16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return nx_bf16_to_f32(v); }
    default: return (double)nx_dtype_get_i64(base, dt, i);
    }
}

int64_t nx_dtype_get_i64(const void *base, ngpt_dtype dt, size_t i)
{
    const unsigned char *p = base;
    switch (dt) {
    case NGPT_DTYPE_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); return v; }
    case NGPT_DTYPE_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case NGPT_DTYPE_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case NGPT_DTYPE_I8: return (int8_t)p[i];
    case NGPT_DTYPE_U8: return p[i];
    case NGPT_DTYPE_BOOL: return p[i] != 0;
    case NGPT_DTYPE_F32: case NGPT_DTYPE_F64: case NGPT_DTYPE_F16: case NGPT_DTYPE_BF16:
        return (int64_t)nx_dtype_get(base, dt, i);
    }
    return 0;
}

void nx_dtype_to_f32_n(const void *src, ngpt_dtype dt, float *dst, size_t n)
{
    switch (dt) {
    case NGPT_DTYPE_F32: if (n) memcpy(dst, src, n * 4); break;  /* empty: src may be NULL */
    case NGPT_DTYPE_F16: nx_f16_to_f32_n(src, dst, n); break;
    case NGPT_DTYPE_BF16: nx_bf16_to_f32_n(src, dst, n); break;
    default:
        for (size_t i = 0; i < n; i++) dst[i] = (float)nx_dtype_get(src, dt, i);
    }
}
