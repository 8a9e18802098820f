/* test_compare.c — the golden comparison itself must be able to fail: outputs off by more than
 * the tolerance, NaN, a wrong shape, a missing tensor, mismatching integers, and floats where
 * integers are expected all FAIL; within tolerance and extra outputs PASS. */
#include "compare.h"
#include "core/alloc.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/ngpt-compare-XXXXXX";

typedef struct {
    const char *name;
    ngpt_dtype dt;
    int rank;
    int64_t shape[2];
    const void *data;
} spec;

static nx_weights *write_open(const char *fname, const spec *s, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, fname);
    nx_st_entry e[8];
    for (size_t i = 0; i < n; i++) {
        e[i].name = s[i].name;
        e[i].dtype = s[i].dt;
        e[i].rank = s[i].rank;
        e[i].shape = s[i].shape;
        e[i].data = s[i].data;
    }
    CHECK_OK(nx_safetensors_write(path, e, n, NULL, 0));
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, path));
    return w;
}

static int compare_with(const spec *out, size_t n)
{
    static const float x[4] = {1.0f, -2.0f, 3.0f, 100.0f};
    static const int32_t ids[3] = {1, 29871, 2};
    spec exp[2] = {
        {"x", NGPT_DTYPE_F32, 2, {2, 2}, x},
        {"ids", NGPT_DTYPE_I32, 1, {3, 0}, ids},
    };
    nx_weights *we = write_open("exp.safetensors", exp, 2);
    nx_weights *wo = write_open("out.safetensors", out, n);
    int passed = -1;
    if (we && wo) CHECK_OK(case_compare(we, wo, 1e-4, 1e-3, NULL, &passed));
    nx_weights_close(we);
    nx_weights_close(wo);
    return passed;
}

static void test_rules(void)
{
    const int32_t ids_ok[3] = {1, 29871, 2}, ids_bad[3] = {1, 29872, 2};
    const int64_t ids64[3] = {1, 29871, 2};
    const float ids_f[3] = {1, 29871, 2};
    /* tolerance: |d| <= 1e-4 + 1e-3*|e|: for 100 that is 0.1001 */
    const float near[4] = {1.00005f, -2.0f, 3.0f, 100.09f};
    const float far[4] = {1.0f, -2.0f, 3.0f, 100.2f};
    const float nan_[4] = {1.0f, NAN, 3.0f, 100.0f};
    const float extra[1] = {0};
    const int32_t x_int[4] = {1, -2, 3, 100};
    const uint16_t half[4] = {0x3c00, 0xc000, 0x4200, 0x5640}; /* 1, -2, 3, 100 in F16 */

    CHECK(compare_with((spec[]){{"x", NGPT_DTYPE_F32, 2, {2, 2}, near}, {"ids", NGPT_DTYPE_I32, 1, {3, 0}, ids_ok}}, 2) == 1);
    CHECK(compare_with((spec[]){{"x", NGPT_DTYPE_F32, 2, {2, 2}, near}, {"ids", NGPT_DTYPE_I64, 1, {3, 0}, ids64},
                                {"more", NGPT_DTYPE_F32, 1, {1, 0}, extra}}, 3) == 1);
    CHECK(compare_with((spec[]){{"x", NGPT_DTYPE_F16, 2, {2, 2}, half}, {"ids", NGPT_DTYPE_I32, 1, {3, 0}, ids_ok}}, 2) == 1);
    CHECK(compare_with((spec[]){{"x", NGPT_DTYPE_F32, 2, {2, 2}, far}, {"ids", NGPT_DTYPE_I32, 1, {3, 0}, ids_ok}}, 2) == 0);
    CHECK(compare_with((spec[]){{"x", NGPT_DTYPE_F32, 2, {2, 2}, nan_}, {"ids", NGPT_DTYPE_I32, 1, {3, 0}, ids_ok}}, 2) == 0);
    CHECK(compare_with((spec[]){{"x", NGPT_DTYPE_F32, 2, {4, 1}, near}, {"ids", NGPT_DTYPE_I32, 1, {3, 0}, ids_ok}}, 2) == 0);
    CHECK(compare_with((spec[]){{"x", NGPT_DTYPE_F32, 1, {4, 0}, near}, {"ids", NGPT_DTYPE_I32, 1, {3, 0}, ids_ok}}, 2) == 0);
    CHECK(compare_with((spec[]){{"ids", NGPT_DTYPE_I32, 1, {3, 0}, ids_ok}}, 1) == 0);
    CHECK(compare_with((spec[]){{"x", NGPT_DTYPE_F32, 2, {2, 2}, near}, {"ids", NGPT_DTYPE_I32, 1, {3, 0}, ids_bad}}, 2) == 0);
    CHECK(compare_with((spec[]){{"x", NGPT_DTYPE_F32, 2, {2, 2}, near}, {"ids", NGPT_DTYPE_F32, 1, {3, 0}, ids_f}}, 2) == 0);
    CHECK(compare_with((spec[]){{"x", NGPT_DTYPE_I32, 2, {2, 2}, x_int}, {"ids", NGPT_DTYPE_I32, 1, {3, 0}, ids_ok}}, 2) == 0);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    RUN(test_rules);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_done();
}
