#include "ckernels.h"
#include <math.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define KV_AVX2 1
#endif
// aarch64: NEON versions of the AVX2 code, operation for operation (8 lanes as two halves, the
// same fused multiply-adds, the same reduction trees), so they give the AVX2 path's bits
// (Tests/ckernels checks it under QEMU). Built with -ffp-contract=off, as everything here is.
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define KV_NEON 1
typedef struct { float32x4_t lo, hi; } f32x8;
static inline f32x8 ld8(const float *p) { return (f32x8){ vld1q_f32(p), vld1q_f32(p + 4) }; }
static inline void st8(float *p, f32x8 v) { vst1q_f32(p, v.lo); vst1q_f32(p + 4, v.hi); }
static inline f32x8 dup8(float x) { return (f32x8){ vdupq_n_f32(x), vdupq_n_f32(x) }; }
// a·b + c, fused
static inline f32x8 fma8(f32x8 a, f32x8 b, f32x8 c) { return (f32x8){ vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi) }; }
static inline f32x8 mul8(f32x8 a, f32x8 b) { return (f32x8){ vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi) }; }
static inline f32x8 add8(f32x8 a, f32x8 b) { return (f32x8){ vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi) }; }
// As hsum8: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
static inline float hsum8n(f32x8 v) {
    const float32x4_t s = vaddq_f32(v.lo, v.hi);
    return (vgetq_lane_f32(s, 0) + vgetq_lane_f32(s, 2)) + (vgetq_lane_f32(s, 1) + vgetq_lane_f32(s, 3));
}
static inline float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-88.0f)), vdupq_n_f32(88.0f));
    float32x4_t fx = vrndmq_f32(vfmaq_f32(vdupq_n_f32(0.5f), x, vdupq_n_f32(1.44269504088896341f)));
    x = vfmsq_f32(x, fx, vdupq_n_f32(0.693359375f));
    x = vfmsq_f32(x, fx, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t y = vdupq_n_f32(1.9875691500e-4f);
    y = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), y, x);
    y = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), y, x);
    y = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), y, x);
    y = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), y, x);
    y = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), y, x);
    y = vfmaq_f32(vaddq_f32(x, vdupq_n_f32(1.0f)), y, vmulq_f32(x, x));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(fx), vdupq_n_s32(127)), 23);
    return vmulq_f32(y, vreinterpretq_f32_s32(e));
}
static inline f32x8 exp8n(f32x8 x) { return (f32x8){ exp4(x.lo), exp4(x.hi) }; }
// 8 stored f16 values as floats (exact).
static inline f32x8 ldh8n(const uint16_t *p) {
    const uint16x8_t u = vld1q_u16(p);
    return (f32x8){ vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(u))), vcvt_high_f32_f16(vreinterpretq_f16_u16(u)) };
}
#endif


#ifdef KV_AVX2
// 8 stored f16 values as floats (exact).
static inline __m256 ldh8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
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




// v3: the live KV cache holds f16 (v2: float32).
const char *kv_build_identity(void) {
#if defined(KV_AVX2)
    return "x86_64+avx2+fma+f16c/ckernels-v3";
#elif defined(KV_NEON)
    return "aarch64+neon/ckernels-v3";
#elif defined(__x86_64__)
    return "x86_64+portable/ckernels-v3";
#else
    return "portable/ckernels-v3";
#endif
}

// IEEE binary16 <-> binary32, as F16C's vcvtps2ph (round to nearest even) / vcvtph2ps and
// AArch64's fcvtn / fcvtl do it: overflow to infinity, subnormals kept, a NaN quieted with the
// top of its payload. The portable build's conversions; the vector builds use the instructions
// (Tests/ckernels checks that all of them give the same bits).
static inline uint16_t f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));   // NaN
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00);        // ≥ 65520 (or inf): infinity
    if (ax >= 0x38800000) {                                        // normal: rebias, round
        const uint32_t r = ax - 0x38000000 + 0xfff + ((ax >> 13) & 1);
        return (uint16_t)(sign | (r >> 13));
    }
    if (ax < 0x33000000) return (uint16_t)sign;                    // ≤ 2^-25: zero
    // Subnormal: the value in units of 2^-24 is m >> (126 - e), rounded to nearest even.
    const uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000, sh = 126 - e;
    uint32_t q = m >> sh;
    const uint32_t rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
}
static inline float h2f(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    uint32_t x;
    if (e == 0x1f) x = sign | 0x7f800000 | (m ? 0x400000 | (m << 13) : 0);   // inf; NaN quieted
    else if (e != 0) x = sign | ((e + 112) << 23) | (m << 13);
    else if (m == 0) x = sign;
    else {                                                                    // subnormal: m · 2^-24
        uint32_t mm = m, sh = 0;
        while (!(mm & 0x400)) { mm <<= 1; sh++; }
        x = sign | ((113 - sh) << 23) | ((mm & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

void kv_f32_to_f16(const float *x, uint16_t *y, size_t n) {
    size_t i = 0;
#if defined(KV_AVX2)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {   // the tail through the same instruction
        float t[8] = {0};
        uint16_t u[8];
        memcpy(t, x + i, (n - i) * sizeof(float));
        _mm_storeu_si128((__m128i *)u, _mm256_cvtps_ph(_mm256_loadu_ps(t), _MM_FROUND_TO_NEAREST_INT));
        memcpy(y + i, u, (n - i) * sizeof(uint16_t));
    }
#elif defined(KV_NEON)
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    if (i < n) {
        float t[4] = {0};
        uint16_t u[4];
        memcpy(t, x + i, (n - i) * sizeof(float));
        vst1_u16(u, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(t))));
        memcpy(y + i, u, (n - i) * sizeof(uint16_t));
    }
#else
    for (; i < n; i++) y[i] = f2h(x[i]);
#endif
}

void kv_round_f16(float *x, size_t n) {
    uint16_t t[64];
    for (size_t i = 0; i < n; i += 64) {
        const size_t m = n - i < 64 ? n - i : 64;
        kv_f32_to_f16(x + i, t, m);
        kv_f16_to_f32(t, x + i, m);
    }
}

void kv_f16_to_f32(const uint16_t *x, float *y, size_t n) {
    size_t i = 0;
#if defined(KV_AVX2)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, ldh8(x + i));
    if (i < n) {
        uint16_t u[8] = {0};
        float t[8];
        memcpy(u, x + i, (n - i) * sizeof(uint16_t));
        _mm256_storeu_ps(t, ldh8(u));
        memcpy(y + i, t, (n - i) * sizeof(float));
    }
#elif defined(KV_NEON)
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))));
    if (i < n) {
        uint16_t u[4] = {0};
        float t[4];
        memcpy(u, x + i, (n - i) * sizeof(uint16_t));
        vst1q_f32(t, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(u))));
        memcpy(y + i, t, (n - i) * sizeof(float));
    }
#else
    for (; i < n; i++) y[i] = h2f(x[i]);
#endif
}

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
#elif defined(KV_NEON)
    for (; i + 8 <= n; i += 8) {
        const f32x8 x = ld8(g + i), e = exp8n((f32x8){ vsubq_f32(vdupq_n_f32(0), x.lo), vsubq_f32(vdupq_n_f32(0), x.hi) });
        const f32x8 sg = { vdivq_f32(x.lo, vaddq_f32(vdupq_n_f32(1.0f), e.lo)), vdivq_f32(x.hi, vaddq_f32(vdupq_n_f32(1.0f), e.hi)) };
        st8(g + i, mul8(sg, ld8(u + i)));
    }
#endif
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

// x[i] = exp(x[i] - max x) in place; returns 1 / Σ, or 0 when every entry is -inf (x untouched).
static float softmax_exp(float *x, int n) {
    float mx = -INFINITY;
    int k = 0;
#ifdef KV_AVX2
    if (n >= 8) {   // max is exact in any order
        __m256 vm = _mm256_set1_ps(-INFINITY);
        for (; k + 8 <= n; k += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + k));
        float t[8];
        _mm256_storeu_ps(t, vm);
        for (int l = 0; l < 8; l++) if (t[l] > mx) mx = t[l];
    }
#endif
    for (; k < n; k++) if (x[k] > mx) mx = x[k];
    if (mx == -INFINITY) return 0;
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
#elif defined(KV_NEON)
    f32x8 vs = dup8(0);
    const f32x8 vm = dup8(mx);
    for (; i + 8 <= n; i += 8) {
        const f32x8 xi = ld8(x + i);
        f32x8 e = exp8n((f32x8){ vsubq_f32(xi.lo, vm.lo), vsubq_f32(xi.hi, vm.hi) });
        const float32x4_t ninf = vdupq_n_f32(-INFINITY);
        e.lo = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(e.lo), vmvnq_u32(vceqq_f32(xi.lo, ninf))));
        e.hi = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(e.hi), vmvnq_u32(vceqq_f32(xi.hi, ninf))));
        st8(x + i, e);
        vs = add8(vs, e);
    }
    sum = hsum8n(vs);
#endif
    for (; i < n; i++) { float e = expf(x[i] - mx); x[i] = e; sum += e; }
    return 1.0f / sum;
}

void kv_softmax(float *x, int n) {
    const float inv = softmax_exp(x, n);
    if (inv == 0) return;
    for (int i = 0; i < n; i++) x[i] *= inv;
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
#elif defined(KV_NEON)
    float64x2_t p0 = vdupq_n_f64(0), p1 = p0, p2 = p0, p3 = p0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
        const float64x2_t a0 = vcvt_f64_f32(vget_low_f32(a)), a1 = vcvt_high_f64_f32(a);
        const float64x2_t b0 = vcvt_f64_f32(vget_low_f32(b)), b1 = vcvt_high_f64_f32(b);
        p0 = vaddq_f64(p0, vmulq_f64(a0, a0)); p1 = vaddq_f64(p1, vmulq_f64(a1, a1));
        p2 = vaddq_f64(p2, vmulq_f64(b0, b0)); p3 = vaddq_f64(p3, vmulq_f64(b1, b1));
    }
    vst1q_f64(part, p0); vst1q_f64(part + 2, p1); vst1q_f64(part + 4, p2); vst1q_f64(part + 6, p3);
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
#elif defined(KV_NEON)
    for (; i + 8 <= n; i += 8) st8(y + i, mul8(mul8(ld8(x + i), dup8(scale)), ld8(w + i)));
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
// Keys per pass: a chunk of K or V (for one K/V head), converted to floats, stays in L1 (16 KiB:
// 64 keys of 64 values). A multiple of 8; the chunking changes no result.
#define KV_BUF_FLOATS 4096
static inline int kv_chunk_keys(int dh) { const int c = (KV_BUF_FLOATS / dh) & ~7; return c > 8 ? c : 8; }

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

#ifdef KV_NEON
// As reduce4: per key ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)).
static inline float32x4_t reduce4n(const f32x8 *a) {
    const float32x4_t lo = vpaddq_f32(vpaddq_f32(a[0].lo, a[1].lo), vpaddq_f32(a[2].lo, a[3].lo));
    const float32x4_t hi = vpaddq_f32(vpaddq_f32(a[0].hi, a[1].hi), vpaddq_f32(a[2].hi, a[3].hi));
    return vaddq_f32(lo, hi);
}
static inline void store_scores4n(float32x4_t r, float *s, const int32_t *slot_pos, int j, int n, int32_t qpos) {
    float t[4];
    vst1q_f32(t, r);
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
#elif defined(KV_NEON)
    const float32x4_t vs = vdupq_n_f32(scale);
    for (; j0 < j1; j0 += 4) {
        const float *k[4];
        for (int i = 0; i < 4; i++) k[i] = K + (size_t)(j0 + i < last ? j0 + i : last) * ld;
        f32x8 a[4], b[4];
        for (int i = 0; i < 4; i++) a[i] = b[i] = dup8(0);
        for (int d = 0; d < dh; d += 8) {
            const f32x8 x0 = ld8(q0 + d), x1 = ld8(q1 + d);
            for (int i = 0; i < 4; i++) { const f32x8 kk = ld8(k[i] + d); a[i] = fma8(x0, kk, a[i]); b[i] = fma8(x1, kk, b[i]); }
        }
        store_scores4n(vmulq_f32(reduce4n(a), vs), s0, slot_pos, j0, n0, qpos0);
        store_scores4n(vmulq_f32(reduce4n(b), vs), s1, slot_pos, j0, n1, qpos1);
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
#elif defined(KV_NEON)
    const float32x4_t vs = vdupq_n_f32(scale);
    for (; j0 < j1; j0 += 4) {
        const float *k[4];
        for (int i = 0; i < 4; i++) k[i] = K + (size_t)(j0 + i < last ? j0 + i : last) * ld;
        f32x8 a[4];
        for (int i = 0; i < 4; i++) a[i] = dup8(0);
        for (int d = 0; d < dh; d += 8) {
            const f32x8 x0 = ld8(q0 + d);
            for (int i = 0; i < 4; i++) a[i] = fma8(x0, ld8(k[i] + d), a[i]);
        }
        store_scores4n(vmulq_f32(reduce4n(a), vs), s0, slot_pos, j0, n0, qpos0);
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
#elif defined(KV_NEON)
    if (w % 8 == 0) {
        for (int e = d0; e < d0 + w; e += 8) {
            f32x8 a = ld8(o0 + e), b = ld8(o1 + e);
            for (int j = j0; j < j1; j++) {
                const f32x8 v = ld8(V + (size_t)j * ld + e);
                if (j < n0) a = fma8(dup8(p0[j]), v, a);
                if (j < n1) b = fma8(dup8(p1[j]), v, b);
            }
            st8(o0 + e, a); st8(o1 + e, b);
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

// rows × dh stored values, rows ld apart, as floats in buf [rows, dh].
static inline void to_f32_rows(const uint16_t *x, size_t ld, int rows, int dh, float *buf) {
    if (ld == (size_t)dh) { kv_f16_to_f32(x, buf, (size_t)rows * dh); return; }
    for (int r = 0; r < rows; r++) kv_f16_to_f32(x + (size_t)r * ld, buf + (size_t)r * dh, (size_t)dh);
}

#ifdef KV_AVX2
// The decode-sized path: up to KV_DIRECT_HEADS query heads read K and V straight from the f16
// cache, each row converted in registers once for all of them (B ≤ 3 heads at a time), with no
// float copy through memory. On CPUs whose stores are narrow (Zen 1 stores 128 bits a cycle),
// writing the converted chunk and reading it back cost more than the arithmetic. Per key and per
// output lane the operations are exactly those of scores_chunk2 / values_chunk2 (the same lanes,
// the same reduction tree, values in slot order), and the conversion is exact, so a head's bits
// are the same on either path.
#define KV_DIRECT_HEADS 4
// Rows read this many keys ahead are asked for early: a decode step streams every layer's K and V
// from memory once (46 MB a token at 2000 keys for SmolLM2-135M), faster than the hardware
// prefetcher alone brings them in on Zen 1 (measured: 52 → 47 µs for the scores of a K/V head
// and 52 → 44 µs for its values, one thread, 2000 keys).
#define KV_PREFETCH_KEYS 128

// Scores of B heads for keys [j0, j1) (j0 a multiple of 4), rows clamped to `last`.
static inline __attribute__((always_inline)) void scores_direct(const int B, const float *const *q, const int32_t *qpos,
        const int32_t *n, const uint16_t *K, size_t ld, const int32_t *slot_pos, int j0, int j1, int last, float scale,
        int dh, float *const *s) {
    const __m128 vs = _mm_set1_ps(scale);
    for (; j0 < j1; j0 += 4) {
        const uint16_t *k[4];
        for (int i = 0; i < 4; i++) k[i] = K + (size_t)(j0 + i < last ? j0 + i : last) * ld;
        {   // (a prefetch never faults, so rows past the end need no check)
            const char *pf = (const char *)(K + (size_t)(j0 + KV_PREFETCH_KEYS) * ld);
            for (int i = 0; i < 4; i++)
                for (int b = 0; b < dh * 2; b += 64) _mm_prefetch(pf + (size_t)i * ld * 2 + b, _MM_HINT_T0);
        }
        // Keys in two pairs, each pair's lanes folded (the first hadd of reduce4) before the next
        // pair: 6 accumulators, 3 queries and a row in registers, where 4 keys at once needed 16
        // and spilled one on every step (Zen 1, one thread, the scores of a K/V head at 2000 keys:
        // 45-46 → 43-44 µs in cache, 47-49 → 45-46 µs streamed from memory; the same bits).
        __m256 h[3][2];
        for (int pair = 0; pair < 2; pair++) {
            __m256 a[3][2];
            for (int b = 0; b < B; b++) a[b][0] = a[b][1] = _mm256_setzero_ps();
            const uint16_t *k0 = k[2 * pair], *k1 = k[2 * pair + 1];
            for (int d = 0; d < dh; d += 8) {
                const __m256 x0 = ldh8(k0 + d), x1 = ldh8(k1 + d);
                for (int b = 0; b < B; b++) {
                    const __m256 qq = _mm256_loadu_ps(q[b] + d);
                    a[b][0] = _mm256_fmadd_ps(qq, x0, a[b][0]);
                    a[b][1] = _mm256_fmadd_ps(qq, x1, a[b][1]);
                }
            }
            for (int b = 0; b < B; b++) h[b][pair] = _mm256_hadd_ps(a[b][0], a[b][1]);
        }
        for (int b = 0; b < B; b++) {
            const __m256 t = _mm256_hadd_ps(h[b][0], h[b][1]);
            const __m128 r = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
            store_scores4(_mm_mul_ps(r, vs), s[b], slot_pos, j0, n[b], qpos[b]);
        }
    }
}

// o[b][e .. e+16) += Σ p[b][j] · V[j][e .. e+16) for j in [j0, j1), j < n[b], in slot order.
static inline __attribute__((always_inline)) void values_direct(const int B, const float *const *p, const int32_t *n,
        const uint16_t *V, size_t ld, int j0, int j1, int e, float *const *o) {
    __m256 a[3][2];
    int all = j1;   // below it every head takes every key
    for (int b = 0; b < B; b++) {
        a[b][0] = _mm256_loadu_ps(o[b] + e); a[b][1] = _mm256_loadu_ps(o[b] + e + 8);
        if (n[b] < all) all = n[b];
    }
    int j = j0;
    for (; j < all; j++) {
        const uint16_t *vj = V + (size_t)j * ld + e;
        // The line holding these lanes, KV_PREFETCH_KEYS rows on (a prefetch never faults, so
        // rows past the end need no check).
        _mm_prefetch((const char *)(vj + (size_t)KV_PREFETCH_KEYS * ld), _MM_HINT_T0);
        const __m256 v0 = ldh8(vj), v1 = ldh8(vj + 8);
        for (int b = 0; b < B; b++) {
            const __m256 pp = _mm256_set1_ps(p[b][j]);
            a[b][0] = _mm256_fmadd_ps(pp, v0, a[b][0]); a[b][1] = _mm256_fmadd_ps(pp, v1, a[b][1]);
        }
    }
    for (; j < j1; j++) {
        const uint16_t *vj = V + (size_t)j * ld + e;
        const __m256 v0 = ldh8(vj), v1 = ldh8(vj + 8);
        for (int b = 0; b < B; b++) if (j < n[b]) {
            const __m256 pp = _mm256_set1_ps(p[b][j]);
            a[b][0] = _mm256_fmadd_ps(pp, v0, a[b][0]); a[b][1] = _mm256_fmadd_ps(pp, v1, a[b][1]);
        }
    }
    for (int b = 0; b < B; b++) { _mm256_storeu_ps(o[b] + e, a[b][0]); _mm256_storeu_ps(o[b] + e + 8, a[b][1]); }
}
#endif


// The three phases of kv_attend, callable on their own so that one decode step can share them
// out differently: keys for the scores, query heads for the weights, output lanes for the values.
// Each gives exactly the bits kv_attend gives.

void kv_attend_scores(int nq, const float *const *q, const int32_t *qpos, const int32_t *n, const uint16_t *K, size_t ld,
                      const int32_t *slot_pos, float scale, int dh, int j0, int j1, float *scores, size_t ld_scores) {
    int m = 0;
    for (int i = 0; i < nq; i++) m = n[i] > m ? n[i] : m;
    if (j1 > m) j1 = m;
    if (j0 >= j1) return;
#ifdef KV_AVX2
    if (nq <= KV_DIRECT_HEADS && dh % 8 == 0) {
        for (int i = 0; i < nq; i += 3) {
            float *s[3];
            for (int b = 0; b < 3 && i + b < nq; b++) s[b] = scores + (size_t)(i + b) * ld_scores;
            switch (nq - i) {
            case 1: scores_direct(1, q + i, qpos + i, n + i, K, ld, slot_pos, j0, j1, m - 1, scale, dh, s); break;
            case 2: scores_direct(2, q + i, qpos + i, n + i, K, ld, slot_pos, j0, j1, m - 1, scale, dh, s); break;
            default: scores_direct(3, q + i, qpos + i, n + i, K, ld, slot_pos, j0, j1, m - 1, scale, dh, s); break;
            }
        }
        return;
    }
#endif
    // Through a float copy of each chunk of keys (j0 a multiple of 8, chunks of a multiple of 8
    // keys), converted once (exactly) for every head of the call: query heads go in pairs, an odd
    // one out gets the one-head kernel (the same arithmetic). The kernels read rows up to the
    // chunk's end, clamped to m - 1, all of them converted.
    float buf[KV_BUF_FLOATS];
    const int chunk = kv_chunk_keys(dh);
    for (int c0 = j0; c0 < j1; c0 += chunk) {
        const int rows = c0 + chunk < m ? chunk : m - c0;
        to_f32_rows(K + (size_t)c0 * ld, ld, rows, dh, buf);
        const float *Kc = buf - (ptrdiff_t)c0 * dh;
        const int c1 = c0 + chunk < j1 ? c0 + chunk : j1;
        for (int i = 0; i < nq; i += 2) {
            const int i1 = i + 1 < nq ? i + 1 : i;
            const int mm = n[i] > n[i1] ? n[i] : n[i1];
            const int e = c1 < mm ? c1 : mm;
            if (c0 >= e) continue;
            if (i1 == i)
                scores_chunk1(q[i], Kc, (size_t)dh, slot_pos, c0, e, m - 1, qpos[i], n[i], scale, dh, scores + (size_t)i * ld_scores);
            else
                scores_chunk2(q[i], q[i1], Kc, (size_t)dh, slot_pos, c0, e, m - 1, qpos[i], qpos[i1], n[i], n[i1],
                              scale, dh, scores + (size_t)i * ld_scores, scores + (size_t)i1 * ld_scores);
        }
    }
}

void kv_attend_weights(float *scores, int n) {
#ifdef KV_AVX2
    // kv_softmax then kv_round_f16 (weights in f16, as llama.cpp's), the last two passes as one.
    const float inv = softmax_exp(scores, n);
    int i = 0;
    if (inv != 0) {
        const __m256 vi = _mm256_set1_ps(inv);
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(scores + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(scores + i), vi), _MM_FROUND_TO_NEAREST_INT)));
        for (int j = i; j < n; j++) scores[j] *= inv;
    }
    kv_round_f16(scores + i, (size_t)(n - i));
#else
    kv_softmax(scores, n);
    kv_round_f16(scores, (size_t)n);   // weights in f16, as llama.cpp's
#endif
}

void kv_attend_values(int nq, const float *scores, size_t ld_scores, const int32_t *n, const uint16_t *V, size_t ld,
                      int dh, int e0, int e1, float *const *out) {
    int m = 0;
    for (int i = 0; i < nq; i++) {
        m = n[i] > m ? n[i] : m;
        for (int d = e0; d < e1; d++) out[i][d] = 0;
    }
    if (m == 0) return;
    const int chunk = kv_chunk_keys(dh);
#ifdef KV_AVX2
    if (nq <= KV_DIRECT_HEADS && (e1 - e0) % 16 == 0 && e0 % 8 == 0) {
        for (int i = 0; i < nq; i += 3) {
            const float *p[3];
            for (int b = 0; b < 3 && i + b < nq; b++) p[b] = scores + (size_t)(i + b) * ld_scores;
            for (int j0 = 0; j0 < m; j0 += chunk) {   // a chunk of V stays in L1 across the passes
                const int j1 = j0 + chunk < m ? j0 + chunk : m;
                for (int e = e0; e < e1; e += 16) switch (nq - i) {
                case 1: values_direct(1, p, n + i, V, ld, j0, j1, e, out + i); break;
                case 2: values_direct(2, p, n + i, V, ld, j0, j1, e, out + i); break;
                default: values_direct(3, p, n + i, V, ld, j0, j1, e, out + i); break;
                }
            }
        }
        return;
    }
#endif
    float buf[KV_BUF_FLOATS];
    float twin[512];   // the odd query head's discarded twin (dh ≤ 512)
    for (int d = 0; d < dh && d < 512; d++) twin[d] = 0;
    for (int j0 = 0; j0 < m; j0 += chunk) {
        const int rows = j0 + chunk < m ? chunk : m - j0;
        to_f32_rows(V + (size_t)j0 * ld, ld, rows, dh, buf);
        const float *Vc = buf - (ptrdiff_t)j0 * dh;
        for (int i = 0; i < nq; i += 2) {
            const int i1 = i + 1 < nq ? i + 1 : i;
            const int mm = n[i] > n[i1] ? n[i] : n[i1];
            const int j1 = j0 + chunk < mm ? j0 + chunk : mm;
            if (j0 < j1)
                values_chunk2(scores + (size_t)i * ld_scores, scores + (size_t)i1 * ld_scores, n[i], i1 == i ? 0 : n[i1],
                              Vc, (size_t)dh, j0, j1, e0, e1 - e0, out[i], i1 == i ? twin : out[i1]);
        }
    }
}

// Attention's arithmetic for one 8-lane slice of a K or V row shared by G query heads: convert
// the slice from f16, then G fused multiply-adds with it (the query or weight from L1). Four
// slices a round, from a 16-slice ring in L1, into 8 accumulators (each takes G/2 FMAs a round,
// so the rate is throughput, not latency).
#ifdef KV_AVX2
static inline __attribute__((always_inline)) float mix_burst(const int G, long iters, const uint16_t *ring, const float *q) {
    __m256 a[8];
    for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
    for (long k = 0; k < iters; k++)
        for (int r = 0; r < 4; r++) {
            const __m256 x = ldh8(ring + (size_t)((k * 4 + r) & 15) * 8);
            for (int b = 0; b < G; b++) a[(r * G + b) & 7] = _mm256_fmadd_ps(_mm256_loadu_ps(q + b * 8), x, a[(r * G + b) & 7]);
        }
    float sum = 0;
    for (int i = 0; i < 8; i++) sum += hsum8(a[i]);
    return sum;
}
#elif defined(KV_NEON)
static inline __attribute__((always_inline)) float mix_burst(const int G, long iters, const uint16_t *ring, const float *q) {
    f32x8 a[8];
    for (int i = 0; i < 8; i++) a[i] = dup8(0);
    for (long k = 0; k < iters; k++)
        for (int r = 0; r < 4; r++) {
            const f32x8 x = ldh8n(ring + (size_t)((k * 4 + r) & 15) * 8);
            for (int b = 0; b < G; b++) a[(r * G + b) & 7] = fma8(ld8(q + b * 8), x, a[(r * G + b) & 7]);
        }
    float sum = 0;
    for (int i = 0; i < 8; i++) sum += hsum8n(a[i]);
    return sum;
}
#else
static inline float mix_burst(const int G, long iters, const uint16_t *ring, const float *q) {
    float a[8][8] = { { 0 } };
    for (long k = 0; k < iters; k++)
        for (int r = 0; r < 4; r++) {
            const uint16_t *h = ring + (size_t)((k * 4 + r) & 15) * 8;
            for (int b = 0; b < G; b++) for (int l = 0; l < 8; l++) a[(r * G + b) & 7][l] = fmaf(q[b * 8 + l], h2f(h[l]), a[(r * G + b) & 7][l]);
        }
    float sum = 0;
    for (int i = 0; i < 8; i++) for (int l = 0; l < 8; l++) sum += a[i][l];
    return sum;
}
#endif

float kv_attend_mix_burst(long iters, int g) {
    uint16_t ring[16 * 8];
    float q[8 * 8];
    for (int i = 0; i < 16 * 8; i++) { const float f = 0.001f * (float)(i % 61); ring[i] = f2h(f); }
    for (int i = 0; i < 8 * 8; i++) q[i] = 0.01f * (float)(i % 7);
    switch (g < 1 ? 1 : g > 8 ? 8 : g) {
    case 1: return mix_burst(1, iters, ring, q);
    case 2: return mix_burst(2, iters, ring, q);
    case 3: return mix_burst(3, iters, ring, q);
    case 4: return mix_burst(4, iters, ring, q);
    case 5: return mix_burst(5, iters, ring, q);
    case 6: return mix_burst(6, iters, ring, q);
    case 7: return mix_burst(7, iters, ring, q);
    default: return mix_burst(8, iters, ring, q);
    }
}

uint64_t kv_stream_sum(const uint64_t *x, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

void kv_attend(int nq, const float *const *q, const int32_t *qpos, const int32_t *n, const uint16_t *K, const uint16_t *V,
               size_t ld, const int32_t *slot_pos, float scale, int dh, float *scores, size_t ld_scores,
               float *const *out) {
    // The softmax weights are rounded to f16 before they weight V, as llama.cpp's f16 cache does
    // (its matrix product converts them to f16); so are the queries, by the caller. Products are
    // summed in float.
    int m = 0;
    for (int i = 0; i < nq; i++) m = n[i] > m ? n[i] : m;
    kv_attend_scores(nq, q, qpos, n, K, ld, slot_pos, scale, dh, 0, m, scores, ld_scores);
    for (int i = 0; i < nq; i++) kv_attend_weights(scores + (size_t)i * ld_scores, n[i]);
    kv_attend_values(nq, scores, ld_scores, n, V, ld, dh, 0, dh, out);
}
