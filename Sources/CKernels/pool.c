// A small persistent worker pool for the forward pass's many short parallel regions.
// Workers spin briefly on a generation counter, then park on a futex; the caller runs index 0.
#define _GNU_SOURCE
#include "ckernels.h"
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define KV_PAUSE() _mm_pause()
#else
#define KV_PAUSE() ((void)0)
#endif

// Spin iterations before parking (a few microseconds: on a loaded machine spinning steals the CPU
// the other participant needs).
#define KV_SPIN 1000

// Tasks are claimed dynamically (like Dispatch's concurrentPerform): the caller keeps claiming
// until none are left, so a worker that is descheduled or slow to wake costs at most its own task.
// `work` packs gen (32 bits) | n (16) | next (16); a claim is a CAS on it, so it cannot leak into
// the next run, and fn/ctx stay valid while a claimed task is unfinished.
struct kv_pool {
    int workers;
    pthread_t *threads;
    _Atomic uint64_t work;
    _Atomic unsigned gen;        // futex word for parked workers, bumped once per run
    _Atomic unsigned done;       // tasks finished in the current run (futex word for the caller)
    _Atomic int sleepers;        // workers parked on gen
    _Atomic int caller_parked;
    _Atomic int stop;
    kv_task_fn fn;
    void *ctx;
};

static void wait_on(_Atomic unsigned *addr, unsigned seen) {
#if defined(__linux__)
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
#else
    (void)addr; (void)seen; sched_yield();
#endif
}
static void wake_all(void *addr) {
#if defined(__linux__)
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

/// Claims and runs tasks of the current run until none are left.
static void drain(kv_pool *pool) {
    uint64_t w = atomic_load(&pool->work);
    for (;;) {
        unsigned n = (unsigned)(w >> 16) & 0xffff, next = (unsigned)w & 0xffff;
        if (next >= n) return;
        if (!atomic_compare_exchange_weak(&pool->work, &w, w + 1)) continue;
        pool->fn(pool->ctx, (int)next);
        if (atomic_fetch_add(&pool->done, 1) + 1 == n && atomic_load(&pool->caller_parked)) wake_all(&pool->done);
        w = atomic_load(&pool->work);
    }
}

static void *worker_main(void *p) {
    kv_pool *pool = p;
    unsigned seen = 0;   // gen at creation: a worker that starts late still sees the first run
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->gen, memory_order_acquire)) == seen) {
            if (++spins < KV_SPIN) { KV_PAUSE(); continue; }
            atomic_fetch_add(&pool->sleepers, 1);
            if (atomic_load(&pool->gen) == seen) wait_on(&pool->gen, seen);
            atomic_fetch_sub(&pool->sleepers, 1);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&pool->stop)) return NULL;
        drain(pool);
    }
}

kv_pool *kv_pool_create(int workers) {
    kv_pool *pool = calloc(1, sizeof(kv_pool));
    pool->workers = workers;
    pool->threads = calloc((size_t)(workers > 0 ? workers : 1), sizeof(pthread_t));
    for (int i = 0; i < workers; i++) pthread_create(&pool->threads[i], NULL, worker_main, pool);
    return pool;
}

void kv_pool_destroy(kv_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->gen, 1);
    wake_all(&pool->gen);
    for (int i = 0; i < pool->workers; i++) pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    free(pool);
}

void kv_pool_run(kv_pool *pool, int n, kv_task_fn fn, void *ctx) {
    if (n <= 1 || pool->workers == 0 || n > 0xffff) { for (int i = 0; i < n; i++) fn(ctx, i); return; }
    pool->fn = fn; pool->ctx = ctx;
    atomic_store(&pool->done, 0);
    unsigned g = atomic_load(&pool->gen) + 1;
    atomic_store(&pool->work, ((uint64_t)g << 32) | ((uint64_t)n << 16));
    atomic_store(&pool->gen, g);                     // seq_cst: publishes fn/ctx/work
    if (atomic_load(&pool->sleepers) > 0) wake_all(&pool->gen);
    drain(pool);
    int spins = 0;
    unsigned d;
    while ((d = atomic_load_explicit(&pool->done, memory_order_acquire)) != (unsigned)n) {
        if (++spins < KV_SPIN) { KV_PAUSE(); continue; }
        atomic_store(&pool->caller_parked, 1);
        d = atomic_load(&pool->done);
        if (d != (unsigned)n) wait_on(&pool->done, d);
        atomic_store(&pool->caller_parked, 0);
        spins = 0;
    }
}
