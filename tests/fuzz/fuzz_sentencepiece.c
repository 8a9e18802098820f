/* fuzz_sentencepiece.c — tokenizer.model files: our bounded protobuf reader (ModelProto, its
 * pieces, trainer and normalizer specs), then a model that loads must encode and decode text. */
#include "fuzz.h"

#include "tokenizer/sentencepiece.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *texts[] = {"Hello world", "  leading\tand\n\nnewlines  ", "数字 123 and emoji 🙂",
                                  "\xff\xfe broken \xc3 utf-8", ""};
    const int64_t blocks = nx_alloc_blocks();
    nx_sp_model *sp = NULL;
    const ngpt_status st = nx_sp_load_buf(&sp, data, size, "fuzz tokenizer.model");
    fuzz_status("nx_sp_load_buf", st);
    if (sp) {
        const int32_t n = nx_sp_size(sp);
        for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
            nx_i32vec ids = {0};
            const ngpt_status se = nx_sp_encode(sp, texts[k], strlen(texts[k]), &ids);
            fuzz_status("nx_sp_encode", se);
            if (se == NGPT_OK) fuzz_check_ids("nx_sp_encode", ids.v, ids.n, n);
            nx_strbuf out = {0};
            if (se == NGPT_OK) fuzz_status("nx_sp_decode", nx_sp_decode(sp, ids.v, ids.n, &out));
            const int32_t bad[2] = {-1, n};
            FUZZ_REQUIRE(nx_sp_decode(sp, bad, 2, &out) == NGPT_ERR_INVALID_ARGUMENT, "bad ids decoded");
            nx_free(ids.v);
            nx_free(out.s);
        }
        for (int32_t id = 0; id < n && id < 64; id++) {
            size_t len = 0;
            FUZZ_REQUIRE(nx_sp_id_to_piece(sp, id, &len) != NULL, "piece %d missing", id);
        }
        nx_sp_free(sp);
    }
    fuzz_no_leak("nx_sp_load_buf", blocks);
    return 0;
}
