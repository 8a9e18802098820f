/* fuzz.h — what every fuzz target in tests/fuzz shares: the contract a parser must keep on any
 * input, checked so that a breach stops the run (libFuzzer then saves the input).
 *
 * Each target defines LLVMFuzzerTestOneInput. It is built twice: with clang's libFuzzer
 * (meson -Dfuzz=true, coverage-guided search) and with replay_main.c, which runs the files of a
 * corpus through it once (the meson tests fuzz_*: CI replays the seeds and every input that once
 * broke a parser, under ASan/UBSan too). */
#ifndef NX_FUZZ_H
#define NX_FUZZ_H

#include "nextgpt.h"

#include "core/alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken contract is a crash on purpose: libFuzzer keeps the input, replay names the file. */
#define FUZZ_REQUIRE(cond, ...)                                              \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: fuzz contract broken: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* Every error carries a message (the ABI's promise: the file, tensor and shapes are named). */
static inline void fuzz_status(const char *what, ngpt_status st)
{
    if (st == NGPT_OK) return;
    const char *m = ngpt_last_error();
    FUZZ_REQUIRE(m && m[0], "%s: %s without a message", what, ngpt_status_string(st));
}

/* No block of ours outlives a call, on success or failure. */
static inline void fuzz_no_leak(const char *what, int64_t blocks_before)
{
    const int64_t now = nx_alloc_blocks();
    FUZZ_REQUIRE(now == blocks_before, "%s: %lld blocks leaked", what, (long long)(now - blocks_before));
}

/* The input as a file the path-taking loaders can open (no disk, no clean-up on a crash):
 * a memfd, named /proc/self/fd/N in *path. Returns the fd (close it) or -1. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t cap)
{
    const int fd = memfd_create("ngpt_fuzz", MFD_CLOEXEC);
    if (fd < 0) return -1;
    for (size_t off = 0; off < size;) {
        const ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* A bundle folder (the tiny bundle the build generates): NGPT_TINY_BUNDLE, else the build's own. */
static inline const char *fuzz_tiny_bundle(void)
{
    const char *env = getenv("NGPT_TINY_BUNDLE");
#ifdef NGPT_FUZZ_TINY
    return env && env[0] ? env : NGPT_FUZZ_TINY;
#else
    return env;
#endif
}

/* Every token id a tokenizer gave lies in [0, vocab). */
static inline void fuzz_check_ids(const char *what, const int32_t *ids, size_t n, int32_t vocab)
{
    for (size_t i = 0; i < n; i++)
        FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < vocab, "%s: id %d outside [0, %d)", what, ids[i], vocab);
}

/* Reads n bytes of the input as an integer (little endian) and advances; 0 past the end. */
static inline uint32_t fuzz_take(const uint8_t **data, size_t *size, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n && *size > 0; i++, (*data)++, (*size)--) v |= (uint32_t)**data << (8 * i);
    return v;
}

#endif
