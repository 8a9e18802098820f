/* dtype.h — element types: sizes, names, and exact fp16/bf16 <-> fp32 conversion. */
#ifndef NX_DTYPE_H
#define NX_DTYPE_H

#include "nextgpt.h"

#include <stdbool.h>
#include <string.h>

/* A set of dtypes as a bit mask (bit i = ngpt_dtype i). */
#define NX_DTYPE_BIT(dt) (1u << (unsigned)(dt))
#define NX_FLOAT_DTYPES (NX_DTYPE_BIT(NGPT_DTYPE_F32) | NX_DTYPE_BIT(NGPT_DTYPE_F16) | NX_DTYPE_BIT(NGPT_DTYPE_BF16))

size_t nx_dtype_size(ngpt_dtype dt);          /* 0 for unknown */
const char *nx_dtype_name(ngpt_dtype dt);     /* "F32" ...; "?" for unknown */
/* Parse a safetensors dtype name ("F32", "BF16", ...); false if unknown. */
bool nx_dtype_parse(const char *s, ngpt_dtype *out);

static inline float nx_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t nx_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);  /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float    nx_f16_to_f32(uint16_t h);
uint16_t nx_f32_to_f16(float f);

/* Element i of an array of dtype dt, as a double / an int64 (floats truncated toward zero;
 * BOOL as 0/1). Unknown dtypes read as 0. For generic, not hot, code. */
double  nx_dtype_get(const void *base, ngpt_dtype dt, size_t i);
int64_t nx_dtype_get_i64(const void *base, ngpt_dtype dt, size_t i);
/* n elements of any dtype to F32 (the F32/F16/BF16 paths are the vectorised bulk ones). */
void nx_dtype_to_f32_n(const void *src, ngpt_dtype dt, float *dst, size_t n);

/* Bulk conversions (vectorised where the CPU allows). */
void nx_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void nx_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void nx_f32_to_f16_n(const float *src, uint16_t *dst, size_t n);
void nx_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n);

#endif
