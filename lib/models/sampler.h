/* sampler.h — choosing the next token from one row of logits, on the host.
 *
 * The backbone downloads the last position's logits (F32, n_vocab) and calls nx_sampler_sample.
 * Sampling always runs here, on the CPU, over the downloaded row, so for the same logits and the
 * same seed the chosen ids are identical whatever backend produced the logits.
 *
 * Processors, in the order transformers 4.29 `generate` applies them (logits processors, then
 * warpers), each skipped at its neutral value:
 *   1. repetition penalty (RepetitionPenaltyLogitsProcessor, CTRL): for every DISTINCT id in the
 *      context, logit = logit > 0 ? logit / p : logit * p                      (p == 1: off)
 *   2. temperature (TemperatureLogitsWarper): logit /= t                        (t == 0: greedy)
 *   3. top-k (TopKLogitsWarper): keep every id whose logit >= the k-th largest logit (ties with
 *      the k-th are kept, as torch.topk + `<` does)                            (k == 0: off)
 *   4. top-p (TopPLogitsWarper): softmax over the kept ids; walking them by probability
 *      descending, keep an id while the mass of the ids strictly before it is < top_p; at least
 *      one id is always kept. This is HF's "remove ascending-cumulative <= 1 - top_p" up to float
 *      rounding at the boundary (we sum in double).                         (top_p >= 1: off)
 * Greedy (temperature 0) = argmax after the repetition penalty, first index on ties (torch.argmax).
 *
 * The draw (documented so that any implementation reproduces it bit for bit):
 *   - RNG: xoshiro256** 1.0 (Blackman & Vigna), state seeded from the uint64 seed by four
 *     successive splitmix64 outputs. One draw per sampled token (greedy draws none).
 *   - u = (next() >> 11) * 2^-53, uniform in [0, 1).
 *   - probabilities: p_i = exp((double)l_i - (double)l_max) over the kept ids, in double.
 *   - order: kept ids by probability descending, equal probabilities by id ascending.
 *   - inverse CDF: target = u * sum(p_i) (the unnormalised total, summed in that order); the chosen
 *     id is the first whose running sum (same order) is > target; the last kept id if rounding
 *     leaves none.
 *
 * Cost for vocab 32038: O(n) for penalty/temperature/max; top-k uses quickselect (O(n)) and
 * sorts only the k survivors; top-p without top-k selects the best 64, 256, ... ids by
 * quickselect until their mass reaches top_p (rarely more than one round), never a full sort
 * unless the distribution is that flat.
 *
 * A sampler is used by one thread at a time (it holds the RNG and scratch). */
#ifndef NX_SAMPLER_H
#define NX_SAMPLER_H

#include "nextgpt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xoshiro256** state. */
typedef struct nx_rng {
    uint64_t s[4];
} nx_rng;

void     nx_rng_seed(nx_rng *r, uint64_t seed);  /* splitmix64 x4 */
uint64_t nx_rng_next(nx_rng *r);                 /* xoshiro256** */
double   nx_rng_uniform(nx_rng *r);              /* (next >> 11) * 2^-53, in [0, 1) */

typedef struct nx_sampler_params {
    float    temperature;        /* 0 = greedy (argmax); > 0 divides the logits. Default 1 */
    int32_t  top_k;              /* 0 = off. Default 0 */
    float    top_p;              /* >= 1 = off, (0, 1) nucleus. Default 1 */
    float    repetition_penalty; /* 1 = off; > 0. Default 1 */
    uint64_t seed;               /* Default 0 */
} nx_sampler_params;

/* temperature 1, top_k 0, top_p 1, repetition_penalty 1, seed 0 (pure sampling from softmax). */
void nx_sampler_params_default(nx_sampler_params *p);

typedef struct nx_sampler nx_sampler;

/* Validates the params (temperature >= 0 and finite, top_k >= 0, top_p > 0, penalty > 0;
 * NGPT_ERR_INVALID_ARGUMENT naming the field) and allocates scratch for `n_vocab` ids. */
ngpt_status nx_sampler_create(nx_sampler **out, const nx_sampler_params *p, int32_t n_vocab);
void nx_sampler_free(nx_sampler *s);  /* NULL is a no-op */

/* Re-seed the RNG (as if created with `seed`). */
void nx_sampler_reseed(nx_sampler *s, uint64_t seed);

/* Choose the next id from `logits` (n == the n_vocab given at creation; not modified).
 * `context` (may be NULL when n_context is 0) holds the ids the repetition penalty looks at;
 * ids outside [0, n) are NGPT_ERR_INVALID_ARGUMENT. A NaN logit, or a row without any finite
 * logit, is NGPT_ERR_INVALID_ARGUMENT naming the id. */
ngpt_status nx_sampler_sample(nx_sampler *s, const float *logits, int32_t n, const int32_t *context,
                              size_t n_context, int32_t *out_id);

/* Greedy argmax of a row (first index on ties); -1 when n <= 0 or no logit is finite or +inf. */
int32_t nx_argmax(const float *logits, int32_t n);

#endif
