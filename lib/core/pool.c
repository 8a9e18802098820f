/* pool.c — pthread workers that sleep on a condition variable between jobs. A job is one
 * parallel-for; workers and the caller pull task indices from a shared atomic counter. */
#include "pool.h"

#include "alloc.h"
#include "error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

struct nx_pool {
    int              n_threads;   /* including the caller */
    pthread_t       *threads;
    int              n_started;
    pthread_mutex_t  run_mu;      /* one job at a time: callers on different threads queue */
    pthread_mutex_t  mu;
    pthread_cond_t   wake;
    pthread_cond_t   done;
    uint64_t         generation;  /* bumped per job */
    int              quit;
    int              busy;        /* workers still inside the current job */
    nx_pool_fn       fn;
    void            *arg;
    int64_t          n_tasks;
    _Atomic int64_t  next;
};

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
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(p);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
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
        for (int i = 0; i < n_threads - 1; i++) {
            if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
                nx_pool_free(p);
                return nx_err(NGPT_ERR_INTERNAL, "thread pool: pthread_create failed for thread %d", i + 1);
            }
            p->n_started++;
        }
    }
    *out = p;
    return NGPT_OK;
}

void nx_pool_free(nx_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->threads[i], NULL);
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
    if (!p || p->n_started == 0 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(t, n_tasks, arg);
        return;
    }
    pthread_mutex_lock(&p->run_mu);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->busy = p->n_started;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_mu);
}
