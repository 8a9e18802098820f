/* dtype.c — dtype table and IEEE half conversions (bit-exact, no F16C dependency: the scalar
 * forms are the reference; the bulk forms are what hot loops call). */
#include "dtype.h"

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
        u = sign | 0x7f800000u | (man << 13);
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
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);           /* NaN */
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

void nx_f16_to_f32_n(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = nx_f16_to_f32(src[i]);
}

void nx_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = nx_bf16_to_f32(src[i]);
}

void nx_f32_to_f16_n(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = nx_f32_to_f16(src[i]);
}

void nx_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = nx_f32_to_bf16(src[i]);
}
