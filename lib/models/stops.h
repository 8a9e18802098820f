/* stops.h — when generation ends, and which text may be streamed before it does.
 *
 * Three conditions, checked on every fed token:
 *   - a stop id (EOS, NExT-GPT's 835 "▁###", any caller id): generation stops; the token's text
 *     is NOT added (HF keeps the id in `sequences`, but its text never reaches the answer);
 *   - a stop string (NExT-GPT's "###"), matched on the decoded text ACROSS token boundaries: it may
 *     arrive as "#" + "##", as "a#" + "##b", or inside one token "x###y". The answer is cut
 *     right before the leftmost match (bytes after it, in the same token, are dropped too);
 *   - max tokens: the count of fed tokens reaches max_tokens (the token that reaches it is kept).
 *
 * Streaming: after each feed, nx_stops_take() hands out the bytes that can no longer become part
 * of a stop string. The held-back tail is the longest suffix of the text that is a proper prefix
 * of some stop string, extended to cover an incomplete UTF-8 sequence at the end (a character
 * split across byte-fallback tokens is never streamed in halves). The streamed bytes are always a
 * prefix of the final answer: a stop string never reaches the stream. When generation ends for a
 * reason other than a stop string, the held-back bytes belong to the answer and nx_stops_take
 * releases them (nx_stops_finish).
 *
 * Signal tokens are not fed here: the generator feeds only text tokens (signal.h removes groups).
 *
 * One matcher per generation, one thread at a time. */
#ifndef NX_STOPS_H
#define NX_STOPS_H

#include "nextgpt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum nx_stop_reason {
    NX_STOP_NONE       = 0, /* keep generating */
    NX_STOP_ID         = 1, /* a stop id (e.g. EOS) was fed */
    NX_STOP_STRING     = 2, /* the text now contains a stop string */
    NX_STOP_MAX_TOKENS = 3  /* max_tokens tokens were fed */
} nx_stop_reason;

typedef struct nx_stops_params {
    const int32_t     *stop_ids;       /* (n_stop_ids), copied; the caller includes EOS */
    size_t             n_stop_ids;
    const char *const *stop_strings;   /* (n_stop_strings) NUL-terminated, non-empty; copied */
    size_t             n_stop_strings;
    int32_t            max_tokens;     /* 0 = no limit */
} nx_stops_params;

typedef struct nx_stops nx_stops;

ngpt_status nx_stops_create(nx_stops **out, const nx_stops_params *p);
void nx_stops_free(nx_stops *s);  /* NULL is a no-op */

/* Feed one generated token: its id and the bytes its decoding adds to the text (may be empty,
 * may be part of a UTF-8 character). *reason says whether to stop. Feeding after a stop is
 * NGPT_ERR_INVALID_ARGUMENT. */
ngpt_status nx_stops_feed(nx_stops *s, int32_t id, const char *bytes, size_t n, nx_stop_reason *reason);

/* Declare the end (cancellation, the caller's own limit): held-back bytes become streamable. */
void nx_stops_finish(nx_stops *s);

/* The bytes that became streamable since the previous take (borrowed until the next feed). */
const char *nx_stops_take(nx_stops *s, size_t *len);

/* Bytes held back right now (text length minus streamable length). */
size_t nx_stops_held(const nx_stops *s);

/* The answer so far: after a stop string, the text before it; otherwise all fed text. Borrowed,
 * NUL-terminated. */
const char *nx_stops_text(const nx_stops *s, size_t *len);

/* Tokens fed so far (the stop-id token included), and the index of the token in which the stop
 * string began (a backbone may roll its KV cache back to there); -1 when no stop string. */
int32_t nx_stops_n_tokens(const nx_stops *s);
int32_t nx_stops_stop_token(const nx_stops *s);
nx_stop_reason nx_stops_reason(const nx_stops *s);

#endif
