/* test_json.c — nx_json_*: parsing files and buffers, error positions, typed getters. */
#include "test.h"

#include "core/json.h"

#include <unistd.h>

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_good(void)
{
    json_t *j = NULL;
    const char *txt = "{\"hidden_size\": 64, \"eps\": 1e-6, \"f\": 4096.0, \"act\": \"silu\", \"tie\": false,"
                      " \"dims\": [1, 2, 3], \"n\": null}";
    CHECK_OK(nx_json_load_buf(&j, txt, strlen(txt), "config.json"));
    int64_t i = 0;
    double d = 0;
    bool b = true;
    const char *s = NULL;
    CHECK_OK(nx_json_int(j, "hidden_size", "config.json", &i));
    CHECK(i == 64);
    CHECK_OK(nx_json_int(j, "f", "config.json", &i));
    CHECK(i == 4096);
    CHECK_OK(nx_json_num(j, "eps", "config.json", &d));
    CHECK(d == 1e-6);
    CHECK_OK(nx_json_num(j, "hidden_size", "config.json", &d));
    CHECK(d == 64.0);
    CHECK_OK(nx_json_str(j, "act", "config.json", &s));
    CHECK(s && strcmp(s, "silu") == 0);
    CHECK_OK(nx_json_bool_opt(j, "tie", "config.json", true, &b));
    CHECK(!b);
    CHECK_OK(nx_json_int_opt(j, "missing", "config.json", 7, &i));
    CHECK(i == 7);
    CHECK_OK(nx_json_int_opt(j, "n", "config.json", 9, &i));  /* null = not set */
    CHECK(i == 9);
    CHECK_OK(nx_json_num_opt(j, "missing", "config.json", 0.5, &d));
    CHECK(d == 0.5);
    CHECK_OK(nx_json_str_opt(j, "missing", "config.json", "gelu", &s));
    CHECK(strcmp(s, "gelu") == 0);
    int64_t v[4];
    size_t n = 0;
    CHECK_OK(nx_json_int_array(j, "dims", "config.json", v, 4, &n));
    CHECK(n == 3 && v[0] == 1 && v[2] == 3);
    CHECK_ERR(nx_json_int_array(j, "dims", "config.json", v, 2, &n), NGPT_ERR_BAD_FORMAT, "'dims' has 3 entries");
    json_decref(j);
}

static void test_wrong_types(void)
{
    json_t *j = NULL;
    const char *txt = "{\"hidden_size\": \"64\", \"eps\": \"x\", \"act\": 3, \"tie\": 1, \"half\": 0.5, \"arr\": [1, \"a\"],"
                      " \"huge\": 1.0e44, \"neg\": -1.0e300}";
    CHECK_OK(nx_json_load_buf(&j, txt, strlen(txt), "config.json"));
    int64_t i;
    double d;
    bool b;
    const char *s;
    size_t n;
    CHECK_ERR(nx_json_int(j, "hidden_size", "config.json", &i), NGPT_ERR_BAD_FORMAT,
              "config.json: 'hidden_size' is a string, expected an integer");
    CHECK_ERR(nx_json_int(j, "half", "config.json", &i), NGPT_ERR_BAD_FORMAT, "'half' is a number");
    /* whole reals beyond int64: refused, the range tested before the cast (UBSan: fuzz_tokenizer_files) */
    CHECK_ERR(nx_json_int(j, "huge", "config.json", &i), NGPT_ERR_BAD_FORMAT, "'huge' is a number");
    CHECK_ERR(nx_json_int(j, "neg", "config.json", &i), NGPT_ERR_BAD_FORMAT, "'neg' is a number");
    CHECK_ERR(nx_json_num(j, "eps", "config.json", &d), NGPT_ERR_BAD_FORMAT, "'eps' is a string");
    CHECK_ERR(nx_json_str(j, "act", "config.json", &s), NGPT_ERR_BAD_FORMAT, "'act' is an integer, expected a string");
    CHECK_ERR(nx_json_bool_opt(j, "tie", "config.json", false, &b), NGPT_ERR_BAD_FORMAT, "'tie'");
    CHECK_ERR(nx_json_int(j, "nope", "config.json", &i), NGPT_ERR_NOT_FOUND, "'nope'");
    CHECK_ERR(nx_json_str(j, "nope", "config.json", &s), NGPT_ERR_NOT_FOUND, "config.json");
    CHECK_ERR(nx_json_int_array(j, "arr", "config.json", &i, 1, &n), NGPT_ERR_BAD_FORMAT, "'arr' has 2");
    int64_t v[4];
    CHECK_ERR(nx_json_int_array(j, "arr", "config.json", v, 4, &n), NGPT_ERR_BAD_FORMAT, "'arr'[1] is a string");
    json_t *arr = json_object_get(j, "arr");
    CHECK_ERR(nx_json_int(arr, "x", "config.json", &i), NGPT_ERR_BAD_FORMAT, "not an object");
    json_decref(j);
}

static void test_files(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char good[512], broken[512], missing[512];
    snprintf(good, sizeof good, "%s/ngpt_test_json_good_%d.json", tmp, (int)getpid());
    snprintf(broken, sizeof broken, "%s/ngpt_test_json_broken_%d.json", tmp, (int)getpid());
    snprintf(missing, sizeof missing, "%s/ngpt_test_json_missing_%d.json", tmp, (int)getpid());
    write_file(good, "{\n  \"a\": [1, 2]\n}\n");
    write_file(broken, "{\n  \"a\": 1,\n  \"b\": [1, 2\n}\n");
    json_t *j = NULL;
    CHECK_OK(nx_json_load_file(&j, good));
    CHECK(json_is_object(j));
    json_decref(j);
    j = NULL;
    char needle[600];
    snprintf(needle, sizeof needle, "%s:4:", broken);
    const char *np = needle, *mp = missing;
    CHECK_ERR(nx_json_load_file(&j, broken), NGPT_ERR_BAD_FORMAT, np);
    CHECK(j == NULL);
    CHECK_ERR(nx_json_load_file(&j, missing), NGPT_ERR_NOT_FOUND, mp);
    const char *dup = "{\"a\": 1, \"a\": 2}";
    CHECK_ERR(nx_json_load_buf(&j, dup, strlen(dup), "dup.json"), NGPT_ERR_BAD_FORMAT, "dup.json:1:");
    CHECK_ERR(nx_json_load_buf(&j, "", 0, "empty.json"), NGPT_ERR_BAD_FORMAT, "empty.json:");
    remove(good);
    remove(broken);
}

int main(void)
{
    RUN(test_good);
    RUN(test_wrong_types);
    RUN(test_files);
    return test_done();
}
