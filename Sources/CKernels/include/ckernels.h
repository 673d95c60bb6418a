#ifndef KVDUEL_CKERNELS_H
#define KVDUEL_CKERNELS_H
// The innermost loops of the forward pass, where Swift's auto-vectoriser gave up: quantised
// matrix products (qgemm.c), a vectorised exp, and a worker pool (pool.c). Everything else is Swift.
// AVX2/FMA/F16C intrinsics when compiled for them, portable C otherwise.
#include <stddef.h>
#include <stdint.h>



/// The instruction set every kv_qgemm call uses: "avx512-vnni", "avx-vnni", "avx2", "neon-dotprod",
/// "neon" or "portable". The best one this CPU supports, unless the environment variable
/// KVDUEL_KERNEL names another it supports. All give the same bits (Tests/ckernels checks it).
const char *kv_qgemm_path(void);
/// The paths this CPU supports, best first, comma-separated.
const char *kv_qgemm_paths(void);
/// Switches every later kv_qgemm call to the named path (NULL: the best); -1 if unsupported.
/// For tests and benchmarks that compare paths in one run; not while a product is running.
int kv_qgemm_select(const char *name);

/// Packed weight formats for kv_qgemm (see qgemm.c for the layout).
enum { KV_Q4 = 0, KV_Q8 = 1 };
/// Bytes of one group of 8 packed rows of `k` inputs.
size_t kv_qpack_group_bytes(int format, int k);
/// Packs Q4_1 rows (or Q4_0 rows when `offset_is_minus8d`) into KV_Q4 groups; rows past `rows` are zero.
void kv_qpack_q4_1(const uint8_t *src, size_t src_row_bytes, int rows, int k, int offset_is_minus8d, uint8_t *dst);
/// Packs Q8_0 rows into KV_Q8 groups.
void kv_qpack_q8_0(const uint8_t *src, size_t src_row_bytes, int rows, int k, uint8_t *dst);
/// Quantises `rows` activation rows (ldx apart) to int8 per block of 32: codes qa [rows, k],
/// scales da and scaled code sums sa [rows, k/32]. With `lo` non-null, also the rounding residual,
/// quantised the same way (codes lo, scales dlo = da/254, sums slo): two passes of kv_qgemm then
/// give about 15 bits of activation precision.
void kv_quantize_rows(const float *x, size_t ldx, int rows, int k, int8_t *qa, float *da, float *sa,
                      int8_t *lo, float *dlo, float *slo);
/// C[m, 8g .. 8g+7] = W[8g .., :] · x_m for groups g in [g0, g1) and m < rows, from quantised
/// activations. Every element is computed by the same operations whatever `rows` is.
void kv_qgemm(int format, const uint8_t *w, int n, int k, int g0, int g1,
              const int8_t *qa, const float *da, const float *sa, int rows, float *c, size_t ldc);

/// Which arithmetic this build computes with (instruction set family of the non-matrix kernels and
/// of the Swift code around them, and a version of the kernels' operation order). Builds with the
/// same identity give the same bits; the model identity includes it, so stored KV never crosses it.
const char *kv_build_identity(void);

/// g[i] = silu(g[i]) * u[i]
void kv_silu_mul(float *g, const float *u, size_t n);
/// In-place softmax of x[n]; -inf entries become 0.
void kv_softmax(float *x, int n);
/// IEEE half precision (binary16) from float, rounded to nearest even (F16C, AArch64 fcvtn, or
/// portable C: the same bits), and back (exact). The live KV cache is stored this way.
void kv_f32_to_f16(const float *x, uint16_t *y, size_t n);
void kv_f16_to_f32(const uint16_t *x, float *y, size_t n);
/// x[i] = f16(x[i]) as a float, in place.
void kv_round_f16(float *x, size_t n);
/// Attention of `nq` query heads sharing one K/V head: query i (`dh` floats at q[i], position
/// qpos[i]) over cache slots [0, n[i]), K and V rows of f16 values `ld` apart, slot positions
/// `slot_pos`; slots after the query's position are masked. `scores` is scratch [nq, ld_scores ≥ max n].
/// Writes out[i][0..dh). The result for a query does not depend on the other queries.
void kv_attend(int nq, const float *const *q, const int32_t *qpos, const int32_t *n, const uint16_t *K, const uint16_t *V,
               size_t ld, const int32_t *slot_pos, float scale, int dh, float *scores, size_t ld_scores,
               float *const *out);
/// kv_attend in three phases, for one decode step to share out by keys, heads and output lanes.
/// kv_attend_scores writes scores[i][j] for keys j in [j0, min(j1, n[i])) (j0 and j1 multiples of
/// 8, or j1 ≥ max n); kv_attend_weights turns a row of n scores into attention weights;
/// kv_attend_values writes out[i][e0..e1) (e0 and e1 multiples of 16 for the vector path) from
/// all the weights. Run in that order over the same arguments they give kv_attend's bits.
void kv_attend_scores(int nq, const float *const *q, const int32_t *qpos, const int32_t *n, const uint16_t *K, size_t ld,
                      const int32_t *slot_pos, float scale, int dh, int j0, int j1, float *scores, size_t ld_scores);
void kv_attend_weights(float *scores, int n);
void kv_attend_values(int nq, const float *scores, size_t ld_scores, const int32_t *n, const uint16_t *V, size_t ld,
                      int dh, int e0, int e1, float *const *out);
/// `iters` rounds of attention's arithmetic as kv_attend does it, on 4 slices of 8 lanes of K or V
/// rows shared by `g` query heads (1-8): each slice converted from f16 to float once, then `g`
/// fused multiply-adds with it (8 lanes wide on every path). This CPU's rate for that mix bounds
/// how fast attention can go when its rows are in cache. Returns a sum that depends on all of
/// them, so that none is optimised away.
float kv_attend_mix_burst(long iters, int g);
/// The wrapping sum of n 64-bit words: a pass that reads memory as fast as the CPU can stream it
/// (the integer adds vectorise and cost next to nothing).
uint64_t kv_stream_sum(const uint64_t *x, size_t n);
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
