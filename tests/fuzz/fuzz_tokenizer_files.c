/* fuzz_tokenizer_files.c — the JSON and text files of a tokenizer folder, one mutated at a time
 * beside the tiny bundle's others: the LLaMA tokenizer's added_tokens.json,
 * special_tokens_map.json and tokenizer_config.json; the CLIP and RoBERTa BPEs' vocab.json,
 * merges.txt, special_tokens_map.json and tokenizer_config.json. A folder that loads must then
 * tokenize text into ids inside its vocabulary.
 * Input: one byte choosing the file (its index in k_files, modulo), then the file's bytes. */
#include "fuzz.h"

#include "tokenizer/clip_bpe.h"
#include "tokenizer/llama_tokenizer.h"

#include <sys/stat.h>

static const struct {
    const char *dir;  /* under the tiny bundle */
    const char *file;
    int kind;         /* 0 LLaMA, 1 CLIP, 2 RoBERTa */
} k_files[] = {
    {"llm", "added_tokens.json", 0},
    {"llm", "special_tokens_map.json", 0},
    {"llm", "tokenizer_config.json", 0},
    {"decoders/image/tokenizer", "vocab.json", 1},
    {"decoders/image/tokenizer", "merges.txt", 1},
    {"decoders/image/tokenizer", "special_tokens_map.json", 1},
    {"decoders/image/tokenizer", "tokenizer_config.json", 1},
    {"decoders/audio/tokenizer", "vocab.json", 2},
    {"decoders/audio/tokenizer", "merges.txt", 2},
    {"decoders/audio/tokenizer", "special_tokens_map.json", 2},
    {"decoders/audio/tokenizer", "tokenizer_config.json", 2},
};
enum { N_FILES = sizeof k_files / sizeof k_files[0] };

static char g_base[200], g_work[3][240]; /* a private copy of each tokenizer folder */
static const char *k_names[] = {"tokenizer.model", "added_tokens.json", "special_tokens_map.json",
                                "tokenizer_config.json", "vocab.json", "merges.txt"};

static bool copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    bool ok = in && out;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out) ok &= fclose(out) == 0;
    return ok;
}

static void remove_work(void)
{
    for (int k = 0; k < 3; k++) {
        for (size_t f = 0; f < sizeof k_names / sizeof k_names[0]; f++) {
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", g_work[k], k_names[f]);
            unlink(p);
            snprintf(p, sizeof p, "%s/%s.orig", g_work[k], k_names[f]);
            unlink(p);
        }
        rmdir(g_work[k]);
    }
    rmdir(g_base);
}

static void setup_once(void)
{
    static int done;
    if (done++) return;
    const char *root = fuzz_tiny_bundle();
    FUZZ_REQUIRE(root, "no tiny bundle: set NGPT_TINY_BUNDLE");
    const char *tmp = getenv("TMPDIR");
    snprintf(g_base, sizeof g_base, "%s/ngpt_fuzz_tok_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    FUZZ_REQUIRE(mkdtemp(g_base), "mkdtemp %s failed", g_base);
    atexit(remove_work);
    char *base = g_base;
    static const char *k_dirs[3] = {"llm", "decoders/image/tokenizer", "decoders/audio/tokenizer"};
    for (int k = 0; k < 3; k++) {
        snprintf(g_work[k], sizeof g_work[k], "%s/%d", base, k);
        FUZZ_REQUIRE(mkdir(g_work[k], 0700) == 0, "mkdir %s", g_work[k]);
        for (size_t f = 0; f < sizeof k_names / sizeof k_names[0]; f++) {
            char from[4096], to[1024];
            snprintf(from, sizeof from, "%s/%s/%s", root, k_dirs[k], k_names[f]);
            snprintf(to, sizeof to, "%s/%s", g_work[k], k_names[f]);
            if (access(from, R_OK) == 0) FUZZ_REQUIRE(copy_file(from, to), "cannot copy %s", from);
        }
    }
}

static bool write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, size, f) == size;
    return (fclose(f) == 0) & ok;
}

static const char *k_text = "Hello <Img>[IMG0]</Img> world </s> <s> 数字 42 <mask> <|endoftext|>  ";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    const size_t which = fuzz_take(&data, &size, 1) % N_FILES;
    const int kind = k_files[which].kind;
    char path[1024], saved[1100];
    snprintf(path, sizeof path, "%s/%s", g_work[kind], k_files[which].file);
    snprintf(saved, sizeof saved, "%s.orig", path);
    if (access(saved, F_OK) != 0) FUZZ_REQUIRE(rename(path, saved) == 0 && copy_file(saved, path), "cannot keep %s", path);
    if (!write_file(path, data, size)) return 0;

    const int64_t blocks = nx_alloc_blocks();
    if (kind == 0) {
        nx_llama_tok *t = NULL;
        const ngpt_status st = nx_llama_tok_load(&t, g_work[0]);
        fuzz_status("nx_llama_tok_load", st);
        if (t) {
            nx_i32vec ids = {0};
            const ngpt_status se = nx_llama_tok_encode(t, k_text, strlen(k_text), true, &ids);
            fuzz_status("llama encode", se);
            if (se == NGPT_OK) {
                fuzz_check_ids("llama encode", ids.v, ids.n, nx_llama_tok_vocab_size(t));
                nx_strbuf out = {0};
                fuzz_status("llama decode", nx_llama_tok_decode(t, ids.v, ids.n, false, &out));
                nx_free(out.s);
            }
            nx_free(ids.v);
            nx_llama_tok_free(t);
        }
    } else {
        nx_clip_bpe *t = NULL;
        const ngpt_status st = nx_bpe_load(&t, g_work[kind], kind == 1 ? NX_BPE_CLIP : NX_BPE_ROBERTA);
        fuzz_status("nx_bpe_load", st);
        if (t) {
            nx_i32vec ids = {0};
            const ngpt_status se = nx_clip_bpe_encode(t, k_text, &ids);
            fuzz_status("bpe encode", se);
            if (se == NGPT_OK) fuzz_check_ids("bpe encode", ids.v, ids.n, nx_clip_bpe_vocab_size(t));
            nx_free(ids.v);
            int32_t padded[12], n_tok = 0;
            fuzz_status("bpe tokenize", nx_clip_bpe_tokenize(t, k_text, padded, 12, &n_tok));
            nx_clip_bpe_free(t);
        }
    }
    fuzz_no_leak("tokenizer files", blocks);
    /* the next input starts from the original folder */
    FUZZ_REQUIRE(copy_file(saved, path), "cannot restore %s", path);
    return 0;
}
