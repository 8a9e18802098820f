/* fuzz_text.c — any bytes as the text a user types, through every tokenizer the pipeline runs on
 * it: the LLaMA tokenizer (added tokens split out, SentencePiece with byte fallback), the prompt's
 * continuation encoding, and the byte-level BPEs of the decoders' text encoders (CLIP for SD and
 * Zeroscope, RoBERTa for AudioLDM's CLAP); then the same bytes read as token ids to decode.
 * Tokenizers come from the tiny bundle (NGPT_TINY_BUNDLE); they are loaded once. */
#include "fuzz.h"

#include "models/prompt.h"
#include "tokenizer/clip_bpe.h"
#include "tokenizer/llama_tokenizer.h"

static nx_llama_tok *g_llama;
static nx_clip_bpe *g_clip, *g_roberta;

static void load_once(void)
{
    static int done;
    if (done++) return;
    const char *root = fuzz_tiny_bundle();
    FUZZ_REQUIRE(root, "no tiny bundle: set NGPT_TINY_BUNDLE");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/llm", root);
    FUZZ_REQUIRE(nx_llama_tok_load(&g_llama, dir) == NGPT_OK, "%s", ngpt_last_error());
    snprintf(dir, sizeof dir, "%s/decoders/image/tokenizer", root);
    FUZZ_REQUIRE(nx_bpe_load(&g_clip, dir, NX_BPE_CLIP) == NGPT_OK, "%s", ngpt_last_error());
    snprintf(dir, sizeof dir, "%s/decoders/audio/tokenizer", root);
    FUZZ_REQUIRE(nx_bpe_load(&g_roberta, dir, NX_BPE_ROBERTA) == NGPT_OK, "%s", ngpt_last_error());
}

static void llama_text(const uint8_t *data, size_t size)
{
    const int32_t vocab = nx_llama_tok_vocab_size(g_llama);
    for (int special = 0; special < 2; special++) {
        nx_i32vec ids = {0};
        ngpt_status st = nx_llama_tok_encode(g_llama, (const char *)data, size, special, &ids);
        fuzz_status("llama encode", st);
        if (st == NGPT_OK) {
            fuzz_check_ids("llama encode", ids.v, ids.n, vocab);
            nx_strbuf out = {0};
            fuzz_status("llama decode", nx_llama_tok_decode(g_llama, ids.v, ids.n, special, &out));
            nx_free(out.s);
        }
        nx_free(ids.v);
    }
    nx_i32vec ids = {0};
    ngpt_status st = nx_prompt_encode_continuation(g_llama, (const char *)data, size, &ids);
    fuzz_status("prompt continuation", st);
    if (st == NGPT_OK) fuzz_check_ids("prompt continuation", ids.v, ids.n, vocab);
    nx_free(ids.v);
}

/* The bytes as ids: some in range, some not; out-of-range ids must be refused by name. */
static void llama_ids(const uint8_t *data, size_t size)
{
    const int32_t vocab = nx_llama_tok_vocab_size(g_llama);
    const size_t n = size / 2;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return;
    bool in_range = true;
    for (size_t i = 0; i < n; i++) {
        const uint16_t v = (uint16_t)(data[2 * i] | data[2 * i + 1] << 8);
        ids[i] = v == 0xffff ? -1 : (int32_t)(v % (uint32_t)(vocab + 2));
        in_range &= ids[i] >= 0 && ids[i] < vocab;
    }
    for (int skip = 0; skip < 2; skip++) {
        nx_strbuf out = {0};
        const ngpt_status st = nx_llama_tok_decode(g_llama, ids, n, skip, &out);
        fuzz_status("llama decode(ids)", st);
        FUZZ_REQUIRE((st == NGPT_OK) == in_range, "decode of %s ids gave %s", in_range ? "valid" : "invalid",
                     ngpt_status_string(st));
        nx_free(out.s);
    }
    free(ids);
}

static void bpe_text(const char *what, const nx_clip_bpe *t, const char *text)
{
    nx_i32vec ids = {0};
    const ngpt_status st = nx_clip_bpe_encode(t, text, &ids);
    fuzz_status(what, st);
    if (st == NGPT_OK) fuzz_check_ids(what, ids.v, ids.n, nx_clip_bpe_vocab_size(t));
    nx_free(ids.v);
    int32_t padded[16], n_tok = 0;
    const ngpt_status sp = nx_clip_bpe_tokenize(t, text, padded, 16, &n_tok);
    fuzz_status(what, sp);
    FUZZ_REQUIRE((sp == NGPT_OK) == (st == NGPT_OK), "%s: encode %s but tokenize %s", what, ngpt_status_string(st),
                 ngpt_status_string(sp));
    if (sp == NGPT_OK) {
        FUZZ_REQUIRE(n_tok >= 2 && n_tok <= 16, "%s: %d tokens in 16", what, n_tok);
        FUZZ_REQUIRE(padded[0] == nx_clip_bpe_bos(t) && padded[n_tok - 1] == nx_clip_bpe_eos(t),
                     "%s: not framed by bos/eos", what);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_once();
    const int64_t blocks = nx_alloc_blocks();
    llama_text(data, size);
    llama_ids(data, size);
    char *text = malloc(size + 1); /* the BPEs take NUL-terminated text: up to the first NUL */
    if (text) {
        memcpy(text, data, size);
        text[size] = 0;
        bpe_text("clip", g_clip, text);
        bpe_text("roberta", g_roberta, text);
        free(text);
    }
    fuzz_no_leak("text", blocks);
    return 0;
}
