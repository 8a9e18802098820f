/* pool.c — the CPU backend's parallel-for. A job is one parallel-for; its threads pull task
 * indices from a shared atomic counter.
 *
 * Two sets of threads. Within QUIET_NS of a oneDNN call (nx_pool_park) jobs run on the calling
 * thread's OpenMP team, the threads oneDNN (OpenMP-built in Debian) has just run on: libgomp's
 * team spins for milliseconds after each parallel region (GOMP_SPINCOUNT; OMP_WAIT_POLICY is
 * the application's to set), so pthread workers of our own shared the cores with a spinning
 * team there: ImageBind-huge's attention and GELU, between its GEMMs, took 1.5-2x as long as
 * with OMP_WAIT_POLICY=passive (BF16, 2 cores: 98 -> 63 ms and 42 -> 22 ms an image). On the
 * team they find it awake instead. Elsewhere (a decode's GEMV-only jobs) the pthread workers
 * below: running every job as an OpenMP region left the team spinning for milliseconds after
 * each, and two such processes on 2 cores (the test suite under ASan) slowed each other ~15x.
 * A caller already inside a parallel region (an application's, where ours would run on one
 * thread) gets the pthread workers too.
 *
 * pthread workers (started on first use):
 * Between jobs a worker spins for a short while before it sleeps on a condition variable, and
 * the caller spins the same way for the workers to finish. A decoded token is a few dozen small
 * jobs back to back; waking a sleeping worker through the kernel cost ~55 us a job on a KVM
 * guest (futex wake plus reschedule), against a few hundred us of work each. The spin is
 * bounded in time (SPIN_NS), so an idle pool costs nothing after it, and nx_pool_park ends it
 * at once, and keeps it off for QUIET_NS, before work that needs the cores for other threads
 * (oneDNN's OpenMP team). */
#include "pool.h"

#include "alloc.h"
#include "error.h"

#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

/* How long a worker polls for the next job, and the caller for the last worker, before
 * falling back to the condition variables (nx_pool_set_spin changes it). Covers the serial
 * gaps between a token's ops. */
#define SPIN_NS 200000
/* After nx_pool_park (a oneDNN call), no polling for this long. libgomp's team keeps spinning
 * for milliseconds after each parallel region (GOMP_SPINCOUNT), and a pool polling on the same
 * cores then fights it for them: the embedded model's turn, a stream of small oneDNN convs and
 * pool jobs, took 1.1-1.4 s with the pool polling throughout against 0.45 s without. */
#define QUIET_NS 20000000

struct nx_pool {
    int              n_threads;   /* including the caller */
    _Atomic bool     omp;         /* jobs on the caller's OpenMP team (nx_pool_set_omp) */
    pthread_t       *threads;     /* n_threads - 1, started on first use (start_workers) */
    _Atomic int      n_started;   /* written under run_mu; nx_pool_park reads it without */
    bool             workers_tried; /* start_workers ran (under run_mu) */
    pthread_mutex_t  run_mu;      /* one job at a time: callers on different threads queue */
    pthread_mutex_t  mu;          /* guards the sleeping side: sleepers, caller_waiting */
    pthread_cond_t   wake;
    pthread_cond_t   done;
    _Atomic uint64_t generation;  /* bumped per job (release: publishes fn, arg, n_tasks) */
    _Atomic int      quit;
    _Atomic int      busy;        /* workers still inside the current job */
    _Atomic int64_t  spin_ns;
    _Atomic int      park;        /* set by nx_pool_park: stop polling, sleep until the next job */
    _Atomic int64_t  quiet_until; /* CLOCK_MONOTONIC ns: no polling before then (nx_pool_park) */
    int              sleepers;    /* workers blocked on wake (under mu) */
    int              caller_waiting; /* the caller blocked on done (under mu) */
    nx_pool_fn       fn;
    void            *arg;
    int64_t          n_tasks;
    _Atomic int64_t  next;
};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Polls until cond(p, v) holds or spin_ns pass; the clock is read every 64 polls. */
static int spin_until(nx_pool *p, uint64_t v, int (*cond)(nx_pool *, uint64_t))
{
    const int64_t spin = atomic_load_explicit(&p->spin_ns, memory_order_relaxed);
    if (spin <= 0 || now_ns() < atomic_load_explicit(&p->quiet_until, memory_order_relaxed)) return cond(p, v);
    int64_t deadline = 0;
    for (int i = 1;; i++) {
        if (cond(p, v)) return 1;
        cpu_relax();
        if ((i & 63) == 0) {
            int64_t t = now_ns();
            if (!deadline) deadline = t + spin;
            else if (t >= deadline) return 0;
        }
    }
}

static int job_posted(nx_pool *p, uint64_t seen)
{
    return atomic_load_explicit(&p->quit, memory_order_acquire) ||
           atomic_load_explicit(&p->generation, memory_order_acquire) != seen;
}

static int job_posted_or_parked(nx_pool *p, uint64_t seen)
{
    return job_posted(p, seen) || atomic_load_explicit(&p->park, memory_order_relaxed);
}

static int job_finished(nx_pool *p, uint64_t unused)
{
    (void)unused;
    return atomic_load_explicit(&p->busy, memory_order_acquire) == 0;
}

static void drain(nx_pool *p)
{
    for (;;) {
        int64_t t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks) break;
        p->fn(t, p->n_tasks, p->arg);
    }
}

static void *worker(void *vp)
{
    nx_pool *p = vp;
    uint64_t seen = 0;
    for (;;) {
        if (!spin_until(p, seen, job_posted_or_parked) || !job_posted(p, seen)) {
            /* sleepers is raised before the re-check under mu, and the caller reads it under mu
             * after publishing the job, so a job posted in between is never missed. */
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while (!job_posted(p, seen)) pthread_cond_wait(&p->wake, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->quit, memory_order_acquire)) break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        drain(p);
        if (atomic_fetch_sub_explicit(&p->busy, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            if (p->caller_waiting) pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

int nx_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

ngpt_status nx_pool_create(nx_pool **out, int n_threads)
{
    *out = NULL;
    if (n_threads < 1) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "thread pool: n_threads %d < 1", n_threads);
    nx_pool *p = nx_calloc(1, sizeof *p);
    if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
    p->n_threads = n_threads;
    atomic_store(&p->omp, true);
    atomic_store(&p->spin_ns, SPIN_NS);
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->threads = nx_calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) {
            nx_pool_free(p);
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "thread pool: out of memory");
        }
    }
    *out = p;
    return NGPT_OK;
}

/* Under run_mu: the pthread workers, once. As many as start (a failed pthread_create leaves
 * fewer: the jobs still run, on fewer threads). */
static void start_workers(nx_pool *p)
{
    if (p->workers_tried || !p->threads) return;
    p->workers_tried = true;
    for (int i = 0; i < p->n_threads - 1; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) break;
        atomic_fetch_add_explicit(&p->n_started, 1, memory_order_relaxed);
    }
}

/* A job on the calling thread's OpenMP team (see the top of the file). */
static void run_omp(nx_pool *p, int64_t n_tasks, nx_pool_fn fn, void *arg)
{
    _Atomic int64_t next = 0;
    const int nt = n_tasks < p->n_threads ? (int)n_tasks : p->n_threads;
#pragma omp parallel num_threads(nt)
    for (;;) {
        const int64_t t = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
        if (t >= n_tasks) break;
        fn(t, n_tasks, arg);
    }
}

void nx_pool_free(nx_pool *p)
{
    if (!p) return;
    atomic_store_explicit(&p->quit, 1, memory_order_release);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < atomic_load(&p->n_started); i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->run_mu);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    nx_free(p->threads);
    nx_free(p);
}

int nx_pool_threads(const nx_pool *p) { return p ? p->n_threads : 1; }

void nx_pool_run(nx_pool *p, int64_t n_tasks, nx_pool_fn fn, void *arg)
{
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(t, n_tasks, arg);
        return;
    }
    pthread_mutex_lock(&p->run_mu);
    if (atomic_load_explicit(&p->omp, memory_order_relaxed) &&
        now_ns() < atomic_load_explicit(&p->quiet_until, memory_order_relaxed) && !omp_in_parallel()) {
        run_omp(p, n_tasks, fn, arg);
        pthread_mutex_unlock(&p->run_mu);
        return;
    }
    start_workers(p);
    if (p->n_started == 0) {
        pthread_mutex_unlock(&p->run_mu);
        for (int64_t t = 0; t < n_tasks; t++) fn(t, n_tasks, arg);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->busy, p->n_started, memory_order_relaxed);
    atomic_store_explicit(&p->park, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_seq_cst);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p);
    if (!spin_until(p, 0, job_finished)) {
        pthread_mutex_lock(&p->mu);
        p->caller_waiting = 1;
        while (!job_finished(p, 0)) pthread_cond_wait(&p->done, &p->mu);
        p->caller_waiting = 0;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->run_mu);
}

void nx_pool_park(nx_pool *p)
{
    if (!p) return;
    atomic_store_explicit(&p->quiet_until, now_ns() + QUIET_NS, memory_order_relaxed);
    if (atomic_load_explicit(&p->n_started, memory_order_relaxed) > 0) atomic_store_explicit(&p->park, 1, memory_order_relaxed);
}

int64_t nx_pool_set_spin(nx_pool *p, int64_t ns)
{
    return p ? atomic_exchange_explicit(&p->spin_ns, ns < 0 ? 0 : ns, memory_order_relaxed) : 0;
}

bool nx_pool_set_omp(nx_pool *p, bool on)
{
    return p ? atomic_exchange_explicit(&p->omp, on, memory_order_relaxed) : false;
}
