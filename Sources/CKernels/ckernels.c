#include "ckernels.h"
#include <math.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define KV_AVX2 1
#endif

const char *kv_kernel_path(void) {
#ifdef KV_AVX2
    return "avx2-fma-f16c";
#else
    return "portable-c";
#endif
}


#ifdef KV_AVX2
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
// exp for 8 floats (Cephes polynomial, relative error ~2e-7), inputs clamped to [-88, 88].
static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.0f)), _mm256_set1_ps(88.0f));
    __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
    fx = _mm256_floor_ps(fx);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    __m256 xx = _mm256_mul_ps(x, x);
    y = _mm256_fmadd_ps(y, xx, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}
#endif




void kv_silu_mul(float *g, const float *u, size_t n) {
    size_t i = 0;
#ifdef KV_AVX2
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
#endif
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void kv_softmax(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) return;
    float sum = 0;
    int i = 0;
#ifdef KV_AVX2
    __m256 vs = _mm256_setzero_ps(), vm = _mm256_set1_ps(mx);
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        // exp8 clamps -inf to -88; masked entries must be exactly 0.
        e = _mm256_and_ps(e, _mm256_cmp_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(-INFINITY), _CMP_NEQ_OQ));
        _mm256_storeu_ps(x + i, e);
        vs = _mm256_add_ps(vs, e);
    }
    sum = hsum8(vs);
#endif
    for (; i < n; i++) { float e = expf(x[i] - mx); x[i] = e; sum += e; }
    const float inv = 1.0f / sum;
    for (i = 0; i < n; i++) x[i] *= inv;
}

void kv_rmsnorm(const float *x, const float *w, float *y, int n, float eps) {
    // Σx² in double, in 8 interleaved partial sums added in a fixed order.
    double part[8] = {0};
    int i = 0;
#ifdef KV_AVX2
    __m256d s0 = _mm256_setzero_pd(), s1 = s0;
    for (; i + 8 <= n; i += 8) {
        const __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), b = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        s0 = _mm256_add_pd(s0, _mm256_mul_pd(a, a));
        s1 = _mm256_add_pd(s1, _mm256_mul_pd(b, b));
    }
    _mm256_storeu_pd(part, s0); _mm256_storeu_pd(part + 4, s1);
#else
    for (; i + 8 <= n; i += 8) for (int j = 0; j < 8; j++) part[j] += (double)x[i + j] * x[i + j];
#endif
    double ss = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
    for (; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    i = 0;
#ifdef KV_AVX2
    const __m256 vs = _mm256_set1_ps(scale);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
#endif
    for (; i < n; i++) y[i] = x[i] * scale * w[i];
}

// Attention of several query heads that share one K/V head, over cache slots: scores, softmax,
// weighted sum of values. Query i sees slots [0, n[i]) except those after its position.
//
// The arithmetic for a (query, key) pair does not depend on the other queries, on n or on the
// blocking: each score is its own lanes of a fixed reduction tree, and values are summed in slot
// order (partial sums pass through memory between key chunks, which is exact). So a token's
// attention output is the same whether it is prefilled in any batch or decoded.
#define KV_KEY_CHUNK 64    // keys per pass: a chunk of K or V (for one head) stays in L1

#ifdef KV_AVX2
// Per key: ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)) of its accumulator, for 4 keys at once.
static inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

// Stores the scores r of keys j..j+3 for a query at qpos that sees n slots: -inf where a slot's
// position is after the query's, nothing past n.
static inline void store_scores4(__m128 r, float *s, const int32_t *slot_pos, int j, int n, int32_t qpos) {
    if (j + 4 <= n) {   // the common case: mask by position in registers
        const __m128i sp = _mm_loadu_si128((const __m128i *)(slot_pos + j));
        _mm_storeu_ps(s + j, _mm_blendv_ps(r, _mm_set1_ps(-INFINITY), _mm_castsi128_ps(_mm_cmpgt_epi32(sp, _mm_set1_epi32(qpos)))));
        return;
    }
    float t[4];
    _mm_storeu_ps(t, r);
    for (int i = 0; i < 4 && j + i < n; i++) s[j + i] = slot_pos[j + i] <= qpos ? t[i] : -INFINITY;
}
#endif

// Scores of two query heads (q0 at qpos0 seeing n0 slots, q1 likewise) for keys [j0, j1);
// `last` is the last valid slot (keys past it are read clamped and never stored).
static void scores_chunk2(const float *q0, const float *q1, const float *K, size_t ld, const int32_t *slot_pos,
                          int j0, int j1, int last, int32_t qpos0, int32_t qpos1, int n0, int n1, float scale, int dh,
                          float *s0, float *s1) {
#ifdef KV_AVX2
    const __m128 vs = _mm_set1_ps(scale);
    for (; j0 < j1; j0 += 4) {
        const float *k0 = K + (size_t)(j0 < last ? j0 : last) * ld, *k1 = K + (size_t)(j0 + 1 < last ? j0 + 1 : last) * ld;
        const float *k2 = K + (size_t)(j0 + 2 < last ? j0 + 2 : last) * ld, *k3 = K + (size_t)(j0 + 3 < last ? j0 + 3 : last) * ld;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int d = 0; d < dh; d += 8) {
            const __m256 x0 = _mm256_loadu_ps(q0 + d), x1 = _mm256_loadu_ps(q1 + d);
            __m256 kk = _mm256_loadu_ps(k0 + d); a0 = _mm256_fmadd_ps(x0, kk, a0); b0 = _mm256_fmadd_ps(x1, kk, b0);
            kk = _mm256_loadu_ps(k1 + d); a1 = _mm256_fmadd_ps(x0, kk, a1); b1 = _mm256_fmadd_ps(x1, kk, b1);
            kk = _mm256_loadu_ps(k2 + d); a2 = _mm256_fmadd_ps(x0, kk, a2); b2 = _mm256_fmadd_ps(x1, kk, b2);
            kk = _mm256_loadu_ps(k3 + d); a3 = _mm256_fmadd_ps(x0, kk, a3); b3 = _mm256_fmadd_ps(x1, kk, b3);
        }
        store_scores4(_mm_mul_ps(reduce4(a0, a1, a2, a3), vs), s0, slot_pos, j0, n0, qpos0);
        store_scores4(_mm_mul_ps(reduce4(b0, b1, b2, b3), vs), s1, slot_pos, j0, n1, qpos1);
    }
#else
    (void)last;
    for (int j = j0; j < j1; j++) {
        const float *kj = K + (size_t)j * ld;
        float a = 0, b = 0;
        for (int d = 0; d < dh; d++) { a += q0[d] * kj[d]; b += q1[d] * kj[d]; }
        if (j < n0) s0[j] = slot_pos[j] <= qpos0 ? a * scale : -INFINITY;
        if (j < n1) s1[j] = slot_pos[j] <= qpos1 ? b * scale : -INFINITY;
    }
#endif
}

// Scores of one query head for keys [j0, j1): per key exactly the arithmetic of scores_chunk2's
// first head (same lanes, same reduction tree), without computing a twin.
static void scores_chunk1(const float *q0, const float *K, size_t ld, const int32_t *slot_pos, int j0, int j1,
                          int last, int32_t qpos0, int n0, float scale, int dh, float *s0) {
#ifdef KV_AVX2
    const __m128 vs = _mm_set1_ps(scale);
    for (; j0 < j1; j0 += 8) {
        const float *k[8];
        for (int i = 0; i < 8; i++) k[i] = K + (size_t)(j0 + i < last ? j0 + i : last) * ld;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int d = 0; d < dh; d += 8) {
            const __m256 x0 = _mm256_loadu_ps(q0 + d);
            a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k[0] + d), a0); a1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k[1] + d), a1);
            a2 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k[2] + d), a2); a3 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k[3] + d), a3);
            a4 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k[4] + d), a4); a5 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k[5] + d), a5);
            a6 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k[6] + d), a6); a7 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k[7] + d), a7);
        }
        store_scores4(_mm_mul_ps(reduce4(a0, a1, a2, a3), vs), s0, slot_pos, j0, n0, qpos0);
        store_scores4(_mm_mul_ps(reduce4(a4, a5, a6, a7), vs), s0, slot_pos, j0 + 4, n0, qpos0);
    }
#else
    scores_chunk2(q0, q0, K, ld, slot_pos, j0, j1, last, qpos0, qpos0, n0, 0, scale, dh, s0, s0);
#endif
}

// o0[d0 .. d0+w) += Σ_{j < n0, j in [j0, j1)} p0_j · V_j, and the same for the second query head,
// in slot order.
static void values_chunk2(const float *p0, const float *p1, int n0, int n1, const float *V, size_t ld, int j0, int j1,
                          int d0, int w, float *o0, float *o1) {
#ifdef KV_AVX2
    if (w % 32 == 0) {
        for (int e = d0; e < d0 + w; e += 32) {
            __m256 a0 = _mm256_loadu_ps(o0 + e), a1 = _mm256_loadu_ps(o0 + e + 8), a2 = _mm256_loadu_ps(o0 + e + 16), a3 = _mm256_loadu_ps(o0 + e + 24);
            __m256 b0 = _mm256_loadu_ps(o1 + e), b1 = _mm256_loadu_ps(o1 + e + 8), b2 = _mm256_loadu_ps(o1 + e + 16), b3 = _mm256_loadu_ps(o1 + e + 24);
            for (int j = j0; j < j1; j++) {
                const float *vj = V + (size_t)j * ld + e;
                const __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8), v2 = _mm256_loadu_ps(vj + 16), v3 = _mm256_loadu_ps(vj + 24);
                if (j < n0) {
                    const __m256 p = _mm256_set1_ps(p0[j]);
                    a0 = _mm256_fmadd_ps(p, v0, a0); a1 = _mm256_fmadd_ps(p, v1, a1);
                    a2 = _mm256_fmadd_ps(p, v2, a2); a3 = _mm256_fmadd_ps(p, v3, a3);
                }
                if (j < n1) {
                    const __m256 p = _mm256_set1_ps(p1[j]);
                    b0 = _mm256_fmadd_ps(p, v0, b0); b1 = _mm256_fmadd_ps(p, v1, b1);
                    b2 = _mm256_fmadd_ps(p, v2, b2); b3 = _mm256_fmadd_ps(p, v3, b3);
                }
            }
            _mm256_storeu_ps(o0 + e, a0); _mm256_storeu_ps(o0 + e + 8, a1); _mm256_storeu_ps(o0 + e + 16, a2); _mm256_storeu_ps(o0 + e + 24, a3);
            _mm256_storeu_ps(o1 + e, b0); _mm256_storeu_ps(o1 + e + 8, b1); _mm256_storeu_ps(o1 + e + 16, b2); _mm256_storeu_ps(o1 + e + 24, b3);
        }
        return;
    }
#endif
    for (int j = j0; j < j1; j++) {
        const float *vj = V + (size_t)j * ld;
        for (int d = d0; d < d0 + w; d++) {
            if (j < n0) o0[d] = fmaf(p0[j], vj[d], o0[d]);
            if (j < n1) o1[d] = fmaf(p1[j], vj[d], o1[d]);
        }
    }
}

void kv_attend(int nq, const float *const *q, const int32_t *qpos, const int32_t *n, const float *K, const float *V,
               size_t ld, const int32_t *slot_pos, float scale, int dh, float *scores, size_t ld_scores,
               float *const *out) {
    // Query heads go in pairs; an odd one out gets the one-head kernel (the same arithmetic).
    int nmax = 0;
    for (int i = 0; i < nq; i++) nmax = n[i] > nmax ? n[i] : nmax;
    if (nmax == 0) { for (int i = 0; i < nq; i++) for (int d = 0; d < dh; d++) out[i][d] = 0; return; }
    for (int j0 = 0; j0 < nmax; j0 += KV_KEY_CHUNK)
        for (int i = 0; i < nq; i += 2) {
            const int i1 = i + 1 < nq ? i + 1 : i;
            const int m = n[i] > n[i1] ? n[i] : n[i1];
            const int j1 = j0 + KV_KEY_CHUNK < m ? j0 + KV_KEY_CHUNK : m;
            if (j0 >= j1) continue;
            if (i1 == i)
                scores_chunk1(q[i], K, ld, slot_pos, j0, j1, nmax - 1, qpos[i], n[i], scale, dh, scores + (size_t)i * ld_scores);
            else
                scores_chunk2(q[i], q[i1], K, ld, slot_pos, j0, j1, nmax - 1, qpos[i], qpos[i1], n[i], n[i1],
                              scale, dh, scores + (size_t)i * ld_scores, scores + (size_t)i1 * ld_scores);
        }
    for (int i = 0; i < nq; i++) {
        kv_softmax(scores + (size_t)i * ld_scores, n[i]);
        for (int d = 0; d < dh; d++) out[i][d] = 0;
    }
    float twin[512];   // the odd query head's discarded twin (dh ≤ 512)
    for (int d = 0; d < dh && d < 512; d++) twin[d] = 0;
    for (int j0 = 0; j0 < nmax; j0 += KV_KEY_CHUNK)
        for (int i = 0; i < nq; i += 2) {
            const int i1 = i + 1 < nq ? i + 1 : i;
            const int m = n[i] > n[i1] ? n[i] : n[i1];
            const int j1 = j0 + KV_KEY_CHUNK < m ? j0 + KV_KEY_CHUNK : m;
            if (j0 < j1)
                values_chunk2(scores + (size_t)i * ld_scores, scores + (size_t)i1 * ld_scores, n[i], i1 == i ? 0 : n[i1],
                              V, ld, j0, j1, 0, dh, out[i], i1 == i ? twin : out[i1]);
        }
}
