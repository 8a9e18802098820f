/* bench_safetensors — time to first tensor when opening a 2 GiB safetensors checkpoint, and the
 * bytes copied to get there (must be 0 on the CPU: tensors are views into the mmap).
 *
 *   bench_safetensors [SIZE_MIB] [PATH]     default 2048 MiB in /tmp (the file is created once)
 *
 * Baseline in the same run: read()ing the whole file into memory, which is what a loader without
 * mmap does before it can hand out the first tensor. */
#include "core/alloc.h"
#include "core/weights.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* 64 tensors of equal size: like a checkpoint of many layers. */
static int make_file(const char *path, size_t total)
{
    enum { N = 64 };
    size_t per = total / N / 2 * 2;
    int64_t shape[1] = {(int64_t)(per / 2)};
    uint16_t *buf = malloc(per);
    if (!buf) return -1;
    for (size_t i = 0; i < per / 2; i++) buf[i] = (uint16_t)(i * 2654435761u >> 16);
    nx_st_entry e[N];
    char names[N][64];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "model.layers.%d.mlp.up_proj.weight", i);
        e[i] = (nx_st_entry){.name = names[i], .dtype = NGPT_DTYPE_F16, .rank = 1, .shape = shape, .data = buf};
    }
    ngpt_status s = nx_safetensors_write(path, e, N, NULL, 0);
    free(buf);
    if (s != NGPT_OK) fprintf(stderr, "write %s: %s\n", path, ngpt_last_error());
    return s == NGPT_OK ? 0 : -1;
}

/* Is p inside a mapping of the file `path` (per /proc/self/maps)? */
static int in_file_mapping(const void *p, const char *path)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    uintptr_t u = (uintptr_t)p;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char name[4000] = "";
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %3999s", &lo, &hi, name) >= 2 && u >= lo && u < hi)
            found = strcmp(name, path) == 0;
    }
    fclose(f);
    return found;
}

static void drop_page_cache_hint(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 2048;
    const char *path = argc > 2 ? argv[2] : "/tmp/ngpt_bench_2g.safetensors";
    struct stat sb;
    if (stat(path, &sb) != 0 || (size_t)sb.st_size < mib << 20) {
        fprintf(stderr, "creating %s (%zu MiB)...\n", path, mib);
        if (make_file(path, mib << 20) != 0) return 1;
    }
    stat(path, &sb);
    static char abs_path[4096];
    if (realpath(path, abs_path)) path = abs_path;
    printf("file: %s, %.1f MiB\n", path, (double)sb.st_size / (1 << 20));

    for (int cold = 1; cold >= 0; cold--) {
        if (cold) drop_page_cache_hint(path);
        uint64_t heap0 = nx_alloc_bytes();
        double t0 = now();
        nx_weights *w = NULL;
        if (nx_weights_open(&w, path) != NGPT_OK) {
            fprintf(stderr, "open: %s\n", ngpt_last_error());
            return 1;
        }
        const nx_wtensor *t = nx_weights_at(w, 0);
        volatile uint16_t first = ((const uint16_t *)t->data)[0]; /* touch the first page */
        (void)first;
        double t1 = now();
        uint64_t heap = nx_alloc_bytes() - heap0;
        /* bytes copied: tensor bytes that do not live in a mapping of the file */
        uint64_t copied = 0;
        for (size_t i = 0; i < nx_weights_count(w); i++) {
            const nx_wtensor *ti = nx_weights_at(w, i);
            if (!in_file_mapping(ti->data, path)) copied += ti->nbytes;
        }
        printf("%s open + first tensor: %8.3f ms   heap used by the index: %llu bytes   tensor bytes copied: %llu\n",
               cold ? "cold" : "warm", (t1 - t0) * 1e3, (unsigned long long)heap, (unsigned long long)copied);
        nx_weights_close(w);
    }

    /* baseline: read the whole file */
    drop_page_cache_hint(path);
    double t0 = now();
    int fd = open(path, O_RDONLY);
    char *buf = malloc((size_t)sb.st_size);
    size_t got = 0;
    while (fd >= 0 && buf && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    double t1 = now();
    if (fd >= 0) close(fd);
    free(buf);
    printf("baseline read() of the whole file: %8.3f ms (%.2f GB/s)\n", (t1 - t0) * 1e3, (double)got / (t1 - t0) / 1e9);
    return 0;
}
