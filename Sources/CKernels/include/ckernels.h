#ifndef KVDUEL_CKERNELS_H
#define KVDUEL_CKERNELS_H
// The innermost loops of the forward pass, where Swift's auto-vectoriser gives up on int8 work:
// quantised matrix-vector products and a vectorised exp. Everything else is Swift.
// AVX2/FMA/F16C intrinsics when compiled for them, portable C otherwise.
#include <stddef.h>
#include <stdint.h>

/// x[n] (n % 32 == 0) -> int8 blocks of 32: q, scale d = max|x|/127, sum = d * Σq.
void kv_quantize_q8(const float *x, int n, int8_t *q, float *scale, float *sum);

/// out[r] = W[r,:] · x for r in [row0, row1). W rows are `nb` blocks of Q4_1 (20 bytes) or Q8_0 (34 bytes).
void kv_gemv_q4_1(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb,
                  const int8_t *xq, const float *xs, const float *xsum, float *out);
void kv_gemv_q8_0(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb,
                  const int8_t *xq, const float *xs, float *out);

/// The same for Q8_0 weights with float activations (the output head: logits keep full precision).
void kv_gemv_q8_0_f32(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb, const float *x, float *out);

/// Decode with float activations (no activation quantisation, so tiny input differences stay
/// tiny): Q4_1 rows as stored in the file; `xsum[b]` = Σ x over block b.
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

/// Decode layouts repacked once at load.
/// Q4_1 "pair" rows (nb even): [d f16 × nb][m f16 × nb][for each pair p: qs(2p) 16 B, qs(2p+1) 16 B]; nb·20 bytes.
void kv_repack_q4_1(const uint8_t *src, uint8_t *dst, int rows, int nb);
/// Q8_0 rows with f32 scales: [d f32 × nb][qs 32 B × nb]; nb·36 bytes.
void kv_repack_q8_0(const uint8_t *src, uint8_t *dst, int rows, int nb);
/// Activations for the pair rows: int8 blocks of 32 in pair order (n % 64 == 0), scale and scale·Σq per block.
void kv_quantize_q8p(const float *x, int n, int8_t *q, float *scale, float *sum);
/// Activations as int16 blocks of 32 (scale = max|x|/32767), for the Q8_0 output head.
void kv_quantize_q16(const float *x, int n, int16_t *q, float *scale);
void kv_gemv_q4_1r(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb,
                   const int8_t *xq, const float *xs, const float *xsum, float *out);
void kv_gemv_q8_0r(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb,
                   const int16_t *x, const float *xs, float *out);

/// A persistent pool of worker threads: run(n, fn, ctx) calls fn(ctx, i) for i in 0..<n, i = 0 on
/// the caller, the others on parked-or-spinning workers; returns when all are done.
typedef void (*kv_task_fn)(void *ctx, int index);
typedef struct kv_pool kv_pool;
kv_pool *kv_pool_create(int workers);
void kv_pool_destroy(kv_pool *pool);
void kv_pool_run(kv_pool *pool, int n, kv_task_fn fn, void *ctx);

#endif
