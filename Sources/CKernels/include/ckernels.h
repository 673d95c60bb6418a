#ifndef KVDUEL_CKERNELS_H
#define KVDUEL_CKERNELS_H
// The innermost loops of the forward pass, where Swift's auto-vectoriser gave up: matrix-vector
// products over quantised blocks, a vectorised exp, and a worker pool. Everything else is Swift.
// AVX2/FMA/F16C intrinsics when compiled for them, portable C otherwise.
#include <stddef.h>
#include <stdint.h>



/// out[r] = W[r,:] · x for r in [row0, row1), W rows of `nb` Q8_0 blocks (34 bytes), float activations.
void kv_gemv_q8_0_f32(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb, const float *x, float *out);

/// The same for Q4_1 rows (20-byte blocks) as stored in the file; `xsum[b]` = Σ x over block b.
/// Activations stay float: no activation rounding, so tiny input differences stay tiny.
void kv_gemv_q4_1_f32(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb,
                      const float *x, const float *xsum, float *out);
/// xsum[b] = Σ_j x[32 b + j], in a fixed order.
void kv_block_sums(const float *x, int n, float *xsum);

/// g[i] = silu(g[i]) * u[i]
void kv_silu_mul(float *g, const float *u, size_t n);
/// In-place softmax of x[n]; -inf entries become 0.
void kv_softmax(float *x, int n);
/// Σ a[i] b[i]
float kv_dot(const float *a, const float *b, int n);
/// y[i] += a * x[i]
void kv_axpy(float a, const float *x, float *y, int n);
/// y = x / sqrt(mean(x²) + eps) * w
void kv_rmsnorm(const float *x, const float *w, float *y, int n, float eps);


/// A persistent pool of worker threads: run(n, fn, ctx) calls fn(ctx, i) for i in 0..<n, i = 0 on
/// the caller, the others on parked-or-spinning workers; returns when all are done.
typedef void (*kv_task_fn)(void *ctx, int index);
typedef struct kv_pool kv_pool;
kv_pool *kv_pool_create(int workers);
void kv_pool_destroy(kv_pool *pool);
void kv_pool_run(kv_pool *pool, int n, kv_task_fn fn, void *ctx);

#endif
