/* pool.h — a fixed thread pool for the CPU backend: parallel-for over task indices. */
#ifndef NX_POOL_H
#define NX_POOL_H

#include "nextgpt.h"

#include <stdbool.h>

typedef struct nx_pool nx_pool;

/* fn(task, n_tasks, arg) is called once for every task in [0, n_tasks). */
typedef void (*nx_pool_fn)(int64_t task, int64_t n_tasks, void *arg);

/* n_threads >= 1; the calling thread counts as one worker (n_threads - 1 threads are started). */
ngpt_status nx_pool_create(nx_pool **out, int n_threads);
void nx_pool_free(nx_pool *p);
int nx_pool_threads(const nx_pool *p);
/* Run fn over [0, n_tasks) on all workers and wait. Tasks are handed out dynamically (an atomic
 * counter), so uneven tasks balance. Safe to call with p == NULL (runs on the caller).
 * Callers on different threads are served one job at a time (the others wait), so handles
 * sharing a context may be used concurrently. Not re-entrant: fn must not call nx_pool_run on
 * the same pool. */
void nx_pool_run(nx_pool *p, int64_t n_tasks, nx_pool_fn fn, void *arg);

/* Between jobs the workers poll for a while before they sleep (see pool.c). Call this before
 * handing the cores to other threads, e.g. an OpenMP region, so that they sleep now; for the
 * next 20 ms jobs run on the caller's OpenMP team (nx_pool_set_omp). The next nx_pool_run wakes
 * them. Safe with p == NULL. */
void nx_pool_park(nx_pool *p);

/* How long workers and the caller poll before they sleep, in ns (default 200 us; 0: sleep at
 * once, a condition-variable round trip per job). Returns the previous value (0 for NULL).
 * For benchmarks and tests. */
int64_t nx_pool_set_spin(nx_pool *p, int64_t ns);

/* Jobs within 20 ms of an nx_pool_park on the calling thread's OpenMP team (true, the default;
 * see pool.c), or always on the pool's own pthread workers (false). Returns the previous setting
 * (false for NULL). For benchmarks and tests. */
bool nx_pool_set_omp(nx_pool *p, bool on);

/* Online CPUs (>= 1). */
int nx_cpu_count(void);

#endif
