/* test_convert.c — ngpt-convert (argv[1]) on the golden NExT-GPT delta: pytorch_model.pt (a
 * torch zip read by the restricted pickle reader) converted to safetensors must hold exactly
 * the tensors of delta.safetensors (names, dtypes, shapes, bytes); --dtype f32, --only and
 * --prefix-strip; converting a file onto itself; a failed write leaving the old file (and no
 * temporary) behind; bad input and usage errors. The golden folder is
 * $NGPT_SOURCE_ROOT/../shared/golden (NGPT_GOLDEN_DIR overrides); without it the test skips. */
#include "nextgpt.h"
#include "test.h"

#include "core/dtype.h"
#include "core/weights.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __clang__ /* a gcc-only warning */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char g_tool[1024], g_tmp[256], g_pt[1200], g_ref[1200];

static int run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>/dev/null", g_tool, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_keep(void)
{
    char out[512], args[3000];
    snprintf(out, sizeof out, "%s/delta.safetensors", g_tmp);
    snprintf(args, sizeof args, "'%s' '%s'", g_pt, out);
    CHECK(run(args) == 0);
    nx_weights *a = NULL, *b = NULL;
    CHECK_OK(nx_weights_open(&a, out));
    CHECK_OK(nx_weights_open(&b, g_ref));
    if (!a || !b) goto done;
    CHECK_MSG(nx_weights_count(a) == nx_weights_count(b), "%zu tensors, expected %zu", nx_weights_count(a),
              nx_weights_count(b));
    int bad = 0;
    for (size_t i = 0; i < nx_weights_count(b); i++) {
        const nx_wtensor *r = nx_weights_at(b, i);
        const nx_wtensor *t = nx_weights_find(a, r->name);
        int ok = t && t->dtype == r->dtype && t->rank == r->rank && t->nbytes == r->nbytes &&
                 memcmp(t->shape, r->shape, sizeof(int64_t) * (size_t)r->rank) == 0 &&
                 memcmp(t->data, r->data, r->nbytes) == 0;
        if (!ok && bad++ < 5) fprintf(stderr, "tensor %s differs or is missing\n", r->name);
    }
    CHECK_MSG(bad == 0, "%d tensors differ", bad);
done:
    nx_weights_close(a);
    nx_weights_close(b);
}

static void test_options(void)
{
    nx_weights *ref = NULL;
    CHECK_OK(nx_weights_open(&ref, g_ref));
    if (!ref) return;
    const nx_wtensor *r0 = nx_weights_at(ref, 0);
    /* the first tensor's name prefix up to its first '.', e.g. "gen_text_hidden_fcs." */
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s", r0->name);
    char *dot = strchr(prefix, '.');
    if (dot) dot[1] = 0;
    size_t expect = 0;
    for (size_t i = 0; i < nx_weights_count(ref); i++)
        expect += strncmp(nx_weights_at(ref, i)->name, prefix, strlen(prefix)) == 0;
    char out[512], args[3000];
    snprintf(out, sizeof out, "%s/f32.safetensors", g_tmp);
    snprintf(args, sizeof args, "'%s' '%s' --dtype f32 --only '%s' --prefix-strip '%s'", g_pt, out, prefix, prefix);
    CHECK(run(args) == 0);
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, out));
    if (w) {
        CHECK_MSG(nx_weights_count(w) == expect, "%zu tensors, expected %zu", nx_weights_count(w), expect);
        const nx_wtensor *t = nx_weights_find(w, r0->name + strlen(prefix));
        CHECK(t && t->dtype == NGPT_DTYPE_F32);
        if (t) {
            size_t n = t->nbytes / 4;
            float *x = malloc(n * 4 + 4);
            nx_wtensor_to_f32(r0, x);
            CHECK(memcmp(x, t->data, n * 4) == 0);
            free(x);
        }
        nx_weights_close(w);
    }
    nx_weights_close(ref);
    /* errors */
    snprintf(args, sizeof args, "'%s/missing.pt' '%s'", g_tmp, out);
    CHECK(run(args) == 1);
    snprintf(args, sizeof args, "'%s' '%s' --dtype f8", g_pt, out);
    CHECK(run(args) == 2);
    CHECK(run("only-one-arg") == 2);
    snprintf(args, sizeof args, "'%s' '%s' --only no.such.prefix", g_pt, out);
    CHECK(run(args) == 1);
    snprintf(args, sizeof args, "'%s' '%s/no/such/dir/x.safetensors'", g_pt, g_tmp);
    CHECK(run(args) == 1);
}

static int same_tensors(const char *path, const char *ref_path)
{
    nx_weights *a = NULL, *b = NULL;
    int ok = nx_weights_open(&a, path) == NGPT_OK && nx_weights_open(&b, ref_path) == NGPT_OK &&
             nx_weights_count(a) == nx_weights_count(b);
    for (size_t i = 0; ok && i < nx_weights_count(b); i++) {
        const nx_wtensor *r = nx_weights_at(b, i), *t = nx_weights_find(a, r->name);
        ok = t && t->dtype == r->dtype && t->nbytes == r->nbytes && memcmp(t->data, r->data, r->nbytes) == 0;
    }
    nx_weights_close(a);
    nx_weights_close(b);
    return ok;
}

static size_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (size_t)sb.st_size : 0;
}

/* names in g_tmp containing ".tmp-" (a temporary the writer left behind) */
static int leftovers(void)
{
    DIR *d = opendir(g_tmp);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return n;
}

/* The output is the input: the tensors kept are mapped from the file being replaced (before, it
 * was emptied under its own mapping: SIGBUS, and the checkpoint lost). A write that fails (a
 * file-size limit, SIGXFSZ ignored) leaves the old file as it was and no temporary. */
static void test_in_place(void)
{
    char same[512], args[3000], cmd[4096];
    snprintf(same, sizeof same, "%s/same.safetensors", g_tmp);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", g_ref, same);
    CHECK(system(cmd) == 0);
    snprintf(args, sizeof args, "'%s' '%s'", same, same);
    CHECK(run(args) == 0);
    CHECK_MSG(same_tensors(same, g_ref), "%s: not the tensors of %s after converting it onto itself", same, g_ref);
    const size_t before = file_size(same);
    snprintf(cmd, sizeof cmd, "ulimit -f 1; trap '' XFSZ; exec '%s' '%s' '%s' --dtype f32 2>/dev/null", g_tool, same,
             same);
    int rc = system(cmd);
    CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "a write over the file-size limit: exit %d", WEXITSTATUS(rc));
    CHECK(file_size(same) == before && same_tensors(same, g_ref));
    CHECK_MSG(leftovers() == 0, "a temporary file was left in %s", g_tmp);
    unlink(same);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_convert PATH/TO/ngpt-convert\n");
        return 1;
    }
    snprintf(g_tool, sizeof g_tool, "%s", argv[1]);
    const char *gd = getenv("NGPT_GOLDEN_DIR");
    const char *src = getenv("NGPT_SOURCE_ROOT");
    char golden[1024];
    if (gd) snprintf(golden, sizeof golden, "%s", gd);
    else snprintf(golden, sizeof golden, "%s/../shared/golden", src ? src : ".");
    snprintf(g_pt, sizeof g_pt, "%s/models/nextgpt-delta-a/pytorch_model.pt", golden);
    snprintf(g_ref, sizeof g_ref, "%s/models/nextgpt-delta-a/delta.safetensors", golden);
    struct stat sb;
    if (stat(g_pt, &sb) != 0 || stat(g_ref, &sb) != 0) {
        fprintf(stderr, "SKIP: %s not found (set NGPT_GOLDEN_DIR)\n", g_pt);
        return TEST_SKIP;
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ngpt_convert_XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;
    RUN(test_keep);
    RUN(test_options);
    RUN(test_in_place);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_done();
}
