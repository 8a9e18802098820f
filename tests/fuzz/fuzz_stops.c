/* fuzz_stops.c — the stop matcher against a plain re-statement of its rules (stops.h), on
 * stop strings, stop ids, max_tokens and token texts drawn from the input:
 *   - a stop id ends generation and adds no text; else the token's bytes join the text;
 *   - then the leftmost occurrence of any stop string in the whole text ends it, the answer cut
 *     there, the stop token being the one that holds the match's first byte;
 *   - then reaching max_tokens ends it;
 *   - what was streamed is always a prefix of the final answer, and all of it once ended. */
#include "fuzz.h"

#include "models/stops.h"

enum { MAX_STRS = 3, MAX_IDS = 3, MAX_TOKENS = 512 };

typedef struct ref {
    char    text[MAX_TOKENS * 8 + 1];
    size_t  len;
    size_t  tok_end[MAX_TOKENS];
    int32_t n_tokens;
} ref;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* header: strings (count, then length + bytes each), ids, max_tokens */
    char strs[MAX_STRS][9];
    size_t max_len = 0;
    const char *str_ptr[MAX_STRS];
    size_t n_strs = fuzz_take(&data, &size, 1) % (MAX_STRS + 1);
    for (size_t i = 0; i < n_strs; i++) {
        const size_t L = 1 + fuzz_take(&data, &size, 1) % 8;
        for (size_t k = 0; k < L; k++) {
            const uint8_t c = (uint8_t)fuzz_take(&data, &size, 1);
            strs[i][k] = (char)(c ? c : '#');
        }
        strs[i][L] = 0;
        if (L > max_len) max_len = L;
        str_ptr[i] = strs[i];
    }
    int32_t ids[MAX_IDS];
    const size_t n_ids = fuzz_take(&data, &size, 1) % (MAX_IDS + 1);
    for (size_t i = 0; i < n_ids; i++) ids[i] = (int32_t)(fuzz_take(&data, &size, 1) % 16);
    const int32_t max_tokens = (int32_t)(fuzz_take(&data, &size, 1) % 24);

    const int64_t blocks = nx_alloc_blocks();
    nx_stops_params p = {ids, n_ids, str_ptr, n_strs, max_tokens};
    nx_stops *s = NULL;
    ngpt_status st = nx_stops_create(&s, &p);
    fuzz_status("nx_stops_create", st);
    if (st != NGPT_OK) {
        fuzz_no_leak("nx_stops_create", blocks);
        return 0;
    }
    static ref r;
    r.len = 0;
    r.n_tokens = 0;
    char streamed[sizeof r.text];
    size_t n_streamed = 0;
    nx_stop_reason want = NX_STOP_NONE;
    int32_t want_stop_token = -1;

    while (size > 0 && want == NX_STOP_NONE && r.n_tokens < MAX_TOKENS) {
        const int32_t id = (int32_t)(fuzz_take(&data, &size, 1) % 16);
        size_t n = fuzz_take(&data, &size, 1) % 8;
        if (n > size) n = size;
        const uint8_t *bytes = data;
        data += n, size -= n;

        bool is_id = false;
        for (size_t i = 0; i < n_ids; i++) is_id |= ids[i] == id;
        memcpy(r.text + r.len, bytes, is_id ? 0 : n);
        r.len += is_id ? 0 : n;
        r.tok_end[r.n_tokens++] = r.len;
        if (is_id) {
            want = NX_STOP_ID;
        } else {
            for (size_t pos = 0; pos < r.len && want == NX_STOP_NONE; pos++)
                for (size_t i = 0; i < n_strs && want == NX_STOP_NONE; i++) {
                    const size_t L = strlen(strs[i]);
                    if (pos + L <= r.len && memcmp(r.text + pos, strs[i], L) == 0) {
                        want = NX_STOP_STRING;
                        want_stop_token = 0;
                        while (r.tok_end[want_stop_token] <= pos) want_stop_token++;
                        r.len = pos;
                    }
                }
            if (want == NX_STOP_NONE && max_tokens > 0 && r.n_tokens >= max_tokens) want = NX_STOP_MAX_TOKENS;
        }

        nx_stop_reason got = NX_STOP_NONE;
        st = nx_stops_feed(s, id, (const char *)bytes, n, &got);
        fuzz_status("nx_stops_feed", st);
        FUZZ_REQUIRE(st == NGPT_OK, "feed failed: %s", ngpt_last_error());
        FUZZ_REQUIRE(got == want, "token %d: reason %d, expected %d", r.n_tokens - 1, (int)got, (int)want);
        size_t k = 0;
        const char *out = nx_stops_take(s, &k);
        FUZZ_REQUIRE(n_streamed + k <= r.len, "streamed %zu bytes of a %zu-byte answer", n_streamed + k, r.len);
        memcpy(streamed + n_streamed, out, k);
        n_streamed += k;
        FUZZ_REQUIRE(memcmp(streamed, r.text, n_streamed) == 0, "the stream is not a prefix of the answer");
        FUZZ_REQUIRE(nx_stops_held(s) == r.len - n_streamed, "held %zu, expected %zu", nx_stops_held(s),
                     r.len - n_streamed);
        /* what stays back is a possible stop-string start or a split UTF-8 character, no more */
        if (want == NX_STOP_NONE)
            FUZZ_REQUIRE(nx_stops_held(s) <= (max_len > 4 ? max_len - 1 : 3), "%zu bytes held back", nx_stops_held(s));
    }
    if (want == NX_STOP_NONE) {
        nx_stops_finish(s);
        size_t k = 0;
        const char *out = nx_stops_take(s, &k);
        memcpy(streamed + n_streamed, out, k);
        n_streamed += k;
    } else {
        nx_stop_reason again = NX_STOP_NONE;
        FUZZ_REQUIRE(nx_stops_feed(s, 0, "x", 1, &again) == NGPT_ERR_INVALID_ARGUMENT, "fed after the stop");
        FUZZ_REQUIRE(again == want, "the reason changed after the stop");
    }
    size_t len = 0;
    const char *text = nx_stops_text(s, &len);
    FUZZ_REQUIRE(len == r.len && memcmp(text, r.text, len) == 0 && text[len] == 0, "answer differs");
    FUZZ_REQUIRE(n_streamed == r.len, "streamed %zu of %zu bytes at the end", n_streamed, r.len);
    FUZZ_REQUIRE(nx_stops_n_tokens(s) == r.n_tokens, "%d tokens, expected %d", nx_stops_n_tokens(s), r.n_tokens);
    FUZZ_REQUIRE(nx_stops_stop_token(s) == want_stop_token, "stop token %d, expected %d", nx_stops_stop_token(s),
                 want_stop_token);
    FUZZ_REQUIRE(nx_stops_reason(s) == want, "final reason %d", (int)nx_stops_reason(s));
    nx_stops_free(s);
    fuzz_no_leak("stops", blocks);
    return 0;
}
