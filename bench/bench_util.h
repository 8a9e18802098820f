/* bench_util.h — timing, machine description and backend setup shared by the benchmarks. */
#ifndef NX_BENCH_UTIL_H
#define NX_BENCH_UTIL_H

#include "core/pool.h"
#include "ops/backend.h"
#include "ops/cpu/cpu_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void bench_cpu_model(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    int fam = -1, model = -1;
    char name[256] = "";
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (!c) continue;
        if (!name[0] && strncmp(line, "model name", 10) == 0) {
            snprintf(name, sizeof name, "%s", c + 2);
            name[strcspn(name, "\n")] = 0;
        } else if (fam < 0 && strncmp(line, "cpu family", 10) == 0) {
            fam = atoi(c + 1);
        } else if (model < 0 && strncmp(line, "model\t", 6) == 0) {
            model = atoi(c + 1);
        }
    }
    fclose(f);
    snprintf(buf, cap, "%s (family %d model %d), %d online CPUs", name, fam, model, nx_cpu_count());
}

static inline void bench_header(const char *what)
{
    char cpu[400];
    bench_cpu_model(cpu, sizeof cpu);
    const char *ct = getenv("OPENBLAS_CORETYPE"), *ot = getenv("OMP_NUM_THREADS");
    printf("# %s\n# cpu: %s\n# env: OPENBLAS_CORETYPE=%s OMP_NUM_THREADS=%s NGPT_BENCH_FULL=%s\n", what, cpu,
           ct ? ct : "(unset)", ot ? ot : "(unset)", getenv("NGPT_BENCH_FULL") ? getenv("NGPT_BENCH_FULL") : "(unset)");
}

/* "1/5/15-minute load averages" (the host is shared: every figure is printed next to its load).
 * Returns a static buffer. */
static inline const char *bench_load(void)
{
    static char buf[64];
    double l[3] = {0, 0, 0};
    if (getloadavg(l, 3) != 3) return "?";
    snprintf(buf, sizeof buf, "%.2f %.2f %.2f", l[0], l[1], l[2]);
    return buf;
}

/* The 1-minute load average alone (-1 when unknown), for table columns. */
static inline double bench_load1(void)
{
    double l = -1;
    return getloadavg(&l, 1) == 1 ? l : -1;
}

/* NGPT_BENCH_WINOGRAD=off|always (default auto): the CPU backend's Winograd mode for 3x3 and
 * one-axis convolutions; NGPT_BENCH_DFT1D=off|always: the DFT conv1d's (fftconv1d.c); for A/B
 * runs of the same binary. */
static inline void bench_winograd_env(nx_backend *be)
{
    const char *v = getenv("NGPT_BENCH_WINOGRAD");
    if (v) {
        nx_cpu_set_conv_winograd(be, nx_cpu_conv_mode_from_name(v));
        fprintf(stderr, "# NGPT_BENCH_WINOGRAD=%s\n", v);
    }
    if ((v = getenv("NGPT_BENCH_DFT1D"))) {
        nx_cpu_set_conv_fft1d(be, nx_cpu_conv_mode_from_name(v));
        fprintf(stderr, "# NGPT_BENCH_DFT1D=%s\n", v);
    }
}

static inline int bench_full(void) { return getenv("NGPT_BENCH_FULL") && atoi(getenv("NGPT_BENCH_FULL")) != 0; }

/* NGPT_BENCH_CHANNELS_LAST=1: the diffusion models loaded channels last (NGPT_DECODER_FLAG_CHANNELS_LAST) */
static inline bool bench_channels_last(void)
{
    return getenv("NGPT_BENCH_CHANNELS_LAST") && atoi(getenv("NGPT_BENCH_CHANNELS_LAST")) != 0;
}

/* Threads: NGPT_BENCH_THREADS or all online CPUs. */
static inline int bench_threads(void)
{
    const char *t = getenv("NGPT_BENCH_THREADS");
    return t && atoi(t) > 0 ? atoi(t) : nx_cpu_count();
}

#endif
