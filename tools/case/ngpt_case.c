/* ngpt-case — run golden cases (../shared/golden/FORMAT.md) through libnextgpt.
 *
 *   ngpt-case run   CASE_DIR OUT.safetensors [--device auto|cpu|cuda]
 *   ngpt-case check CASE_DIR OUT.safetensors
 *   ngpt-case all   ROOT... [--device auto|cpu|cuda] [--keep DIR] [--filter SUBSTRING]
 *
 * `run` computes the case's stage and writes its outputs; `check` compares an output file with
 * the case's expected.safetensors; `all` finds every case.json below the roots and runs + checks
 * each, printing one line per case and a summary "N passed, N failed, N unimplemented".
 *
 * Exit status: 0 success (`all`: no case failed, and on the CPU backend, the reference that
 * implements every stage, none unimplemented; on CUDA unimplemented stages alone are not failures),
 * 1 a wrong output or a case that could not be run or read, 2 usage, 3 (`run` only) the stage
 * is not implemented yet.
 */
#include "compare.h"
#include "stage.h"

#include "api/context.h"
#include "core/alloc.h"
#include "ops/cpu/cpu_ops.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * Outputs
 * ------------------------------------------------------------------------------------------- */

typedef struct out_tensor {
    char      *name;
    ngpt_dtype dtype;
    int        rank;
    int64_t    shape[NGPT_MAX_DIMS];
    void      *data;
} out_tensor;

struct case_out {
    out_tensor *t;
    size_t      n, cap;
};

ngpt_status case_out_add(case_out *out, const char *name, ngpt_dtype dtype, int rank, const int64_t *shape,
                         const void *data)
{
    if (rank < 0 || rank > NGPT_MAX_DIMS) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "output '%s': rank %d", name, rank);
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 8;
        out_tensor *t = nx_realloc(out->t, cap * sizeof *t);
        if (!t) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "output '%s': out of memory", name);
        out->t = t;
        out->cap = cap;
    }
    size_t bytes = nx_dtype_size(dtype);
    for (int i = 0; i < rank; i++) bytes *= (size_t)shape[i];
    out_tensor *o = &out->t[out->n];
    memset(o, 0, sizeof *o);
    o->name = nx_strdup(name);
    o->data = nx_malloc(bytes ? bytes : 1);
    if (!o->name || !o->data) {
        nx_free(o->name);
        nx_free(o->data);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "output '%s': out of memory", name);
    }
    if (bytes) memcpy(o->data, data, bytes);
    o->dtype = dtype;
    o->rank = rank;
    for (int i = 0; i < rank; i++) o->shape[i] = shape[i];
    out->n++;
    return NGPT_OK;
}

static void case_out_clear(case_out *out)
{
    for (size_t i = 0; i < out->n; i++) {
        nx_free(out->t[i].name);
        nx_free(out->t[i].data);
    }
    nx_free(out->t);
    memset(out, 0, sizeof *out);
}

static ngpt_status case_out_write(const case_out *out, const char *path)
{
    nx_st_entry *e = nx_calloc(out->n ? out->n : 1, sizeof *e);
    if (!e) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; i < out->n; i++) {
        e[i].name = out->t[i].name;
        e[i].dtype = out->t[i].dtype;
        e[i].rank = out->t[i].rank;
        e[i].shape = out->t[i].shape;
        e[i].data = out->t[i].data;
    }
    ngpt_status s = nx_safetensors_write(path, e, out->n, NULL, 0);
    nx_free(e);
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * Inputs
 * ------------------------------------------------------------------------------------------- */

static ngpt_status input_get(const case_ctx *c, const char *name, const nx_wtensor **t, int *rank, int64_t *shape)
{
    if (!c->inputs) return nx_err(NGPT_ERR_NOT_FOUND, "%s: the case has no inputs.safetensors (wanted '%s')", c->case_dir, name);
    *t = nx_weights_find(c->inputs, name);
    if (!*t) return nx_err(NGPT_ERR_NOT_FOUND, "%s/inputs.safetensors: no tensor '%s'", c->case_dir, name);
    *rank = (*t)->rank;
    for (int i = 0; i < (*t)->rank; i++) shape[i] = (*t)->shape[i];
    return NGPT_OK;
}

static size_t wt_numel(const nx_wtensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= (size_t)t->shape[i];
    return n;
}

ngpt_status case_input_f32(const case_ctx *c, const char *name, float **data, int *rank, int64_t *shape)
{
    const nx_wtensor *t;
    NX_TRY(input_get(c, name, &t, rank, shape));
    size_t n = wt_numel(t);
    *data = nx_malloc((n ? n : 1) * sizeof(float));
    if (!*data) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "input '%s': out of memory", name);
    nx_wtensor_to_f32(t, *data);
    return NGPT_OK;
}

ngpt_status case_input_i32(const case_ctx *c, const char *name, int32_t **data, int *rank, int64_t *shape)
{
    const nx_wtensor *t;
    NX_TRY(input_get(c, name, &t, rank, shape));
    size_t n = wt_numel(t);
    *data = nx_malloc((n ? n : 1) * sizeof(int32_t));
    if (!*data) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "input '%s': out of memory", name);
    if (t->dtype != NGPT_DTYPE_I32 && t->dtype != NGPT_DTYPE_I64 && t->dtype != NGPT_DTYPE_U8 && t->dtype != NGPT_DTYPE_BOOL) {
        nx_free(*data);
        *data = NULL;
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "%s/inputs.safetensors: '%s' is %s, expected an integer tensor",
                      c->case_dir, name, nx_dtype_name(t->dtype));
    }
    for (size_t i = 0; i < n; i++) (*data)[i] = (int32_t)nx_dtype_get_i64(t->data, t->dtype, i);
    return NGPT_OK;
}

static char *join_path(const char *dir, const char *rel)
{
    if (rel[0] == '/') return nx_strdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = nx_malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

ngpt_status case_param_path(const case_ctx *c, const char *key, char **path)
{
    const char *rel;
    NX_TRY(nx_json_str(c->params, key, "case.json params", &rel));
    *path = join_path(c->case_dir, rel);
    if (!*path) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Running a case
 * ------------------------------------------------------------------------------------------- */

typedef enum { R_PASS, R_FAIL, R_UNIMPL } result;

typedef struct case_file {
    json_t     *json;
    const char *stage;
    char       *model_dir;
    double      atol, rtol;
} case_file;

static void case_file_free(case_file *cf)
{
    json_decref(cf->json);
    nx_free(cf->model_dir);
    memset(cf, 0, sizeof *cf);
}

static ngpt_status case_file_read(case_file *cf, const char *case_dir)
{
    memset(cf, 0, sizeof *cf);
    char *path = join_path(case_dir, "case.json");
    if (!path) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    ngpt_status s = nx_json_load_file(&cf->json, path);
    if (s == NGPT_OK && !json_is_object(cf->json)) s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: not a JSON object", path);
    if (s == NGPT_OK) s = nx_json_str(cf->json, "stage", path, &cf->stage);
    const char *model = NULL;
    if (s == NGPT_OK) s = nx_json_str_opt(cf->json, "model", path, NULL, &model);
    if (s == NGPT_OK) s = nx_json_num_opt(cf->json, "atol", path, 1e-4, &cf->atol);
    if (s == NGPT_OK) s = nx_json_num_opt(cf->json, "rtol", path, 1e-3, &cf->rtol);
    if (s == NGPT_OK && model) {
        cf->model_dir = join_path(case_dir, model);
        if (!cf->model_dir) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    const json_t *params = json_object_get(cf->json, "params");
    if (s == NGPT_OK && params && !json_is_object(params))
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: \"params\" is not an object", path);
    nx_free(path);
    if (s != NGPT_OK) case_file_free(cf);
    return s;
}

static const case_stage *find_stage(const char *name)
{
    for (const case_stage *st = case_stages; st->name; st++)
        if (strcmp(st->name, name) == 0) return st;
    return NULL;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Run the stage of case_dir and write OUT; R_UNIMPL when the stage has no implementation. */
static result run_case(const char *case_dir, const char *out_path, ngpt_context *ctx, const char **stage_out)
{
    static _Thread_local char stage_name[128];
    case_file cf;
    *stage_out = "?";
    if (case_file_read(&cf, case_dir) != NGPT_OK) return R_FAIL;
    snprintf(stage_name, sizeof stage_name, "%s", cf.stage);
    *stage_out = stage_name;
    const case_stage *st = find_stage(cf.stage);
    if (!st) {
        nx_err(NGPT_ERR_BAD_FORMAT, "%s/case.json: unknown stage '%s'", case_dir, cf.stage);
        case_file_free(&cf);
        return R_FAIL;
    }
    if (!st->run) {
        nx_err(NGPT_ERR_UNIMPLEMENTED, "stage '%s' is not implemented yet", cf.stage);
        case_file_free(&cf);
        return R_UNIMPL;
    }
    json_t *empty = json_object();
    const json_t *params = json_object_get(cf.json, "params");
    case_ctx c = {.case_dir = case_dir, .model_dir = cf.model_dir, .params = params ? params : empty, .ctx = ctx};
    case_out out = {0};
    result r = R_FAIL;
    ngpt_status s = NGPT_OK;
    char *in_path = join_path(case_dir, "inputs.safetensors");
    if (!in_path) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    if (s == NGPT_OK && file_exists(in_path)) s = nx_weights_open(&c.inputs, in_path);
    if (s == NGPT_OK) {
        s = st->run(&c, &out);
        if (s == NGPT_ERR_UNIMPLEMENTED) r = R_UNIMPL;
        else if (s == NGPT_OK) r = case_out_write(&out, out_path) == NGPT_OK ? R_PASS : R_FAIL;
    }
    nx_free(in_path);
    nx_weights_close(c.inputs);
    case_out_clear(&out);
    json_decref(empty);
    case_file_free(&cf);
    return r;
}

/* Compare OUT with the case's expected.safetensors. */
static result check_case(const char *case_dir, const char *out_path, FILE *report)
{
    case_file cf;
    if (case_file_read(&cf, case_dir) != NGPT_OK) return R_FAIL;
    nx_weights *exp = NULL, *out = NULL;
    char *exp_path = join_path(case_dir, "expected.safetensors");
    int passed = 0;
    ngpt_status s = exp_path ? nx_weights_open(&exp, exp_path) : nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    if (s == NGPT_OK) s = nx_weights_open(&out, out_path);
    if (s == NGPT_OK) s = case_compare(exp, out, cf.atol, cf.rtol, report, &passed);
    nx_weights_close(exp);
    nx_weights_close(out);
    nx_free(exp_path);
    case_file_free(&cf);
    return s == NGPT_OK && passed ? R_PASS : R_FAIL;
}

/* ---------------------------------------------------------------------------------------------
 * Finding cases
 * ------------------------------------------------------------------------------------------- */

typedef struct str_list {
    char **v;
    size_t n, cap;
} str_list;

static int push(str_list *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = nx_realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = nx_strdup(s))) return -1;
    l->n++;
    return 0;
}

static void list_free(str_list *l)
{
    for (size_t i = 0; i < l->n; i++) nx_free(l->v[i]);
    nx_free(l->v);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every folder below dir holding a case.json (the models/ folders are skipped). */
static int find_cases(const char *dir, str_list *out, int depth)
{
    if (depth > 12) return 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    char path[4096];
    snprintf(path, sizeof path, "%s/case.json", dir);
    if (file_exists(path)) push(out, dir);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "models") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) find_cases(path, out, depth + 1);
    }
    closedir(d);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr,
            "usage: ngpt-case run   CASE_DIR OUT.safetensors [--device auto|cpu|cuda]\n"
            "       ngpt-case check CASE_DIR OUT.safetensors\n"
            "       ngpt-case all   ROOT... [--device auto|cpu|cuda] [--keep DIR] [--filter SUBSTRING]\n");
    return 2;
}

static int parse_device(const char *s, ngpt_device_kind *d)
{
    if (strcmp(s, "auto") == 0) *d = NGPT_DEVICE_AUTO;
    else if (strcmp(s, "cpu") == 0) *d = NGPT_DEVICE_CPU;
    else if (strcmp(s, "cuda") == 0) *d = NGPT_DEVICE_CUDA;
    else return -1;
    return 0;
}

/* NGPT_CASE_WINOGRAD=off|always (default auto): the CPU backend's Winograd mode (2-D 3x3 and 1-D
 * one-axis convolutions); NGPT_CASE_DFT1D=off|always: the DFT conv1d's (fftconv1d.c); so the
 * golden cases can be run through every path whatever the rules in conv.c pick for their sizes.
 * NGPT_CASE_CHANNELS_LAST=1: every decoder with NGPT_DECODER_FLAG_CHANNELS_LAST (stage.h). */
static void force_winograd(ngpt_context *ctx)
{
    const char *v = getenv("NGPT_CASE_WINOGRAD");
    if (v && ctx->cpu) {
        nx_cpu_set_conv_winograd(ctx->cpu, nx_cpu_conv_mode_from_name(v));
        fprintf(stderr, "ngpt-case: NGPT_CASE_WINOGRAD=%s\n", v);
    }
    if (case_decoder_flags()) fprintf(stderr, "ngpt-case: NGPT_CASE_CHANNELS_LAST: decoders run channels last\n");
    if ((v = getenv("NGPT_CASE_DFT1D")) && ctx->cpu) {
        nx_cpu_set_conv_fft1d(ctx->cpu, nx_cpu_conv_mode_from_name(v));
        fprintf(stderr, "ngpt-case: NGPT_CASE_DFT1D=%s\n", v);
    }
}

static ngpt_context *make_context(ngpt_device_kind dev)
{
    ngpt_context_params p;
    ngpt_context_params_default(&p, sizeof p);
    p.device = dev;
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &p) != NGPT_OK) {
        fprintf(stderr, "ngpt-case: %s\n", ngpt_last_error());
        return NULL;
    }
    force_winograd(ctx);
    return ctx;
}

static int cmd_all(int argc, char **argv, ngpt_device_kind dev, const char *keep, const char *filter)
{
    str_list cases = {0};
    for (int i = 0; i < argc; i++) {
        if (find_cases(argv[i], &cases, 0) != 0) {
            fprintf(stderr, "ngpt-case: cannot read %s: %s\n", argv[i], strerror(errno));
            list_free(&cases);
            return 1;
        }
    }
    qsort(cases.v, cases.n, sizeof *cases.v, cmp_str);
    ngpt_context *ctx = make_context(dev);
    if (!ctx) {
        list_free(&cases);
        return 1;
    }
    char tmpdir[] = "/tmp/ngpt-case-XXXXXX";
    if (!keep && !mkdtemp(tmpdir)) {
        fprintf(stderr, "ngpt-case: mkdtemp: %s\n", strerror(errno));
        ngpt_context_free(ctx);
        list_free(&cases);
        return 1;
    }
    if (keep) mkdir(keep, 0755);
    const char *outdir = keep ? keep : tmpdir;
    int n_pass = 0, n_fail = 0, n_unimpl = 0;
    str_list unimpl_stages = {0}, failed = {0};
    for (size_t i = 0; i < cases.n; i++) {
        const char *cd = cases.v[i];
        if (filter && !strstr(cd, filter)) continue;
        char out_path[4096];
        snprintf(out_path, sizeof out_path, "%s/case%04zu.safetensors", outdir, i);
        const char *stage;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        result r = run_case(cd, out_path, ctx, &stage);
        char *report = NULL;
        size_t report_len = 0;
        if (r == R_PASS) {
            FILE *rf = open_memstream(&report, &report_len);
            r = check_case(cd, out_path, rf);
            if (rf) fclose(rf);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (r == R_PASS) {
            n_pass++;
            printf("PASS          %-22s %s (%.0f ms)\n", stage, cd, ms);
        } else if (r == R_UNIMPL) {
            n_unimpl++;
            printf("UNIMPLEMENTED %-22s %s\n", stage, cd);
            bool seen = false;
            for (size_t k = 0; k < unimpl_stages.n; k++) seen |= strcmp(unimpl_stages.v[k], stage) == 0;
            if (!seen) push(&unimpl_stages, stage);
        } else {
            n_fail++;
            printf("FAIL          %-22s %s\n", stage, cd);
            if (report && report_len) printf("%s", report);
            else printf("  %s\n", ngpt_last_error());
            push(&failed, cd);
        }
        free(report);
        if (!keep) unlink(out_path);
        fflush(stdout);
    }
    if (!keep) rmdir(tmpdir);
    if (unimpl_stages.n) {
        printf("unimplemented stages (%zu):", unimpl_stages.n);
        for (size_t k = 0; k < unimpl_stages.n; k++) printf(" %s", unimpl_stages.v[k]);
        printf("\n");
    }
    if (failed.n) {
        printf("failed cases:\n");
        for (size_t k = 0; k < failed.n; k++) printf("  %s\n", failed.v[k]);
    }
    printf("golden: %d passed, %d failed, %d unimplemented (backend %s)\n", n_pass, n_fail, n_unimpl,
           ngpt_backend_name(ngpt_context_backend(ctx)));
    const bool cpu = ngpt_context_backend(ctx) == NGPT_BACKEND_CPU;
    list_free(&unimpl_stages);
    list_free(&failed);
    list_free(&cases);
    ngpt_context_free(ctx);
    if (n_pass + n_fail + n_unimpl == 0) {
        fprintf(stderr, "ngpt-case: no cases found\n");
        return 1;
    }
    return n_fail || (cpu && n_unimpl) ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    const char *cmd = argv[1];
    ngpt_device_kind dev = NGPT_DEVICE_AUTO;
    const char *keep = NULL, *filter = NULL;
    char *pos[256];
    int npos = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            if (parse_device(argv[++i], &dev) != 0) return usage();
        } else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc) {
            keep = argv[++i];
        } else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            filter = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return usage();
        } else if (npos < 256) {
            pos[npos++] = argv[i];
        }
    }
    if (strcmp(cmd, "all") == 0) return npos >= 1 ? cmd_all(npos, pos, dev, keep, filter) : usage();
    if (npos != 2) return usage();
    if (strcmp(cmd, "run") == 0) {
        ngpt_context *ctx = make_context(dev);
        if (!ctx) return 1;
        const char *stage;
        result r = run_case(pos[0], pos[1], ctx, &stage);
        ngpt_context_free(ctx);
        if (r == R_PASS) return 0;
        fprintf(stderr, "ngpt-case: %s: %s: %s\n", pos[0], r == R_UNIMPL ? "unimplemented" : "failed", ngpt_last_error());
        return r == R_UNIMPL ? 3 : 1;
    }
    if (strcmp(cmd, "check") == 0) {
        result r = check_case(pos[0], pos[1], stdout);
        if (r != R_PASS && ngpt_last_error()[0]) fprintf(stderr, "ngpt-case: %s\n", ngpt_last_error());
        printf("%s\n", r == R_PASS ? "PASS" : "FAIL");
        return r == R_PASS ? 0 : 1;
    }
    return usage();
}
