// Quantised matrix products for prefill and decode alike: int8 activations × packed 4/8-bit
// weights, integer dot products with AVX2 `vpmaddubsw`, float scales per block of 32.
//
// Why one kernel for every batch size: each output element C[m][n] is computed by the same
// sequence of operations whatever M is, whatever tile row it lands in and however many threads
// share the work (integer sums are exact; the float accumulation runs over blocks in order).
// So a token's numbers are bitwise the same whether it is prefilled alone, in a batch of 29 or of
// 2000, or decoded: exact prefix reuse gives exactly the baseline's logits.
//
// Weight layout: output rows in groups of 8 (one ymm lane per row); per group, per block of 32
// inputs:
//   KV_Q4: 4 × 32 bytes of codes, then 8 f16 scales d, then 8 f16 offsets m   (160 bytes)
//          word q (q = 0..3), lane r, byte j: low nibble = code(r, 4q + j), high = code(r, 16 + 4q + j)
//          value = d · code + m   (Q4_1 as stored in GGUF; Q4_0 has m = -8 d)
//   KV_Q8: 8 × 32 bytes of signed codes, then 8 f16 scales d                    (272 bytes)
//          word q (q = 0..7), lane r, byte j: code(r, 4q + j); value = d · code
// Activations: per row, per block of 32: int8 codes qa, scale da = max|x|/127, and
// sa = da · Σ qa (for the offsets of Q4 weights), as llama.cpp's q8_1.
#include "ckernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define KV_AVX2 1
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define KV_NEON 1
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
static int kv_cpu_has_dotprod(void) { return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0; }
#elif defined(__APPLE__)
#include <sys/sysctl.h>
static int kv_cpu_has_dotprod(void) {
    int v = 0; size_t len = sizeof v;
    return sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &len, NULL, 0) == 0 && v != 0;
}
#else
static int kv_cpu_has_dotprod(void) { return 0; }
#endif
#endif

static inline float h2f(uint16_t h) {
#ifdef KV_AVX2
    return _cvtsh_ss(h);
#elif defined(KV_NEON)
    __fp16 x; memcpy(&x, &h, 2); return (float)x;
#else
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { exp = 127 - 15 + 1; while (!(man & 0x400)) { man <<= 1; exp--; } man &= 0x3ff; bits = sign | (exp << 23) | (man << 13); }
    } else if (exp == 31) bits = sign | 0x7f800000 | (man << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f; memcpy(&f, &bits, 4); return f;
#endif
}

static inline uint16_t f2h(float f) {
#ifdef KV_AVX2
    return _cvtss_sh(f, 0);
#elif defined(KV_NEON)
    __fp16 x = (__fp16)f; uint16_t h; memcpy(&h, &x, 2); return h;
#else
    // IEEE binary16, round to nearest even, subnormals included (as F16C and NEON convert).
    uint32_t x; memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));   // inf, nan
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00);                                      // rounds past 65504
    int e = (int)(ax >> 23) - 127 + 15;
    uint32_t man = (ax & 0x7fffff) | 0x800000, shift = 13;
    if (e <= 0) {                                                                               // subnormal or zero
        if (e < -10) return (uint16_t)sign;
        shift = (uint32_t)(14 - e);
        e = 0;
    } else man &= 0x7fffff;
    uint32_t h = ((uint32_t)e << 10) + (man >> shift);
    const uint32_t rest = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1))) h++;   // a carry into the exponent is still right
    return (uint16_t)(sign | h);
#endif
}

size_t kv_qpack_group_bytes(int format, int k) {
    return (size_t)(k / 32) * (format == KV_Q4 ? 160 : 272);
}

void kv_qpack_q4_1(const uint8_t *src, size_t src_row_bytes, int rows, int k, int offset_is_minus8d, uint8_t *dst) {
    // src rows are Q4_1 blocks (f16 d, f16 m, 16 bytes) or, with offset_is_minus8d, Q4_0 (f16 d, 16 bytes).
    const int nb = k / 32, groups = (rows + 7) / 8, bsz = offset_is_minus8d ? 18 : 20, qoff = offset_is_minus8d ? 2 : 4;
    for (int g = 0; g < groups; g++)
        for (int b = 0; b < nb; b++) {
            uint8_t *o = dst + ((size_t)g * nb + b) * 160;
            uint16_t *d = (uint16_t *)(o + 128), *m = (uint16_t *)(o + 144);
            for (int r = 0; r < 8; r++) {
                int row = g * 8 + r;
                if (row >= rows) {
                    for (int q = 0; q < 4; q++) memset(o + 32 * q + 4 * r, 0, 4);
                    d[r] = 0; m[r] = 0;
                    continue;
                }
                const uint8_t *blk = src + (size_t)row * src_row_bytes + (size_t)b * bsz;
                for (int q = 0; q < 4; q++) memcpy(o + 32 * q + 4 * r, blk + qoff + 4 * q, 4);
                memcpy(&d[r], blk, 2);
                if (offset_is_minus8d) {
                    m[r] = f2h(-8.0f * h2f(d[r]));
                } else memcpy(&m[r], blk + 2, 2);
            }
        }
}

void kv_qpack_q8_0(const uint8_t *src, size_t src_row_bytes, int rows, int k, uint8_t *dst) {
    const int nb = k / 32, groups = (rows + 7) / 8;
    for (int g = 0; g < groups; g++)
        for (int b = 0; b < nb; b++) {
            uint8_t *o = dst + ((size_t)g * nb + b) * 272;
            uint16_t *d = (uint16_t *)(o + 256);
            for (int r = 0; r < 8; r++) {
                int row = g * 8 + r;
                if (row >= rows) {
                    for (int q = 0; q < 8; q++) memset(o + 32 * q + 4 * r, 0, 4);
                    d[r] = 0;
                    continue;
                }
                const uint8_t *blk = src + (size_t)row * src_row_bytes + (size_t)b * 34;
                for (int q = 0; q < 8; q++) memcpy(o + 32 * q + 4 * r, blk + 2 + 4 * q, 4);
                memcpy(&d[r], blk, 2);
            }
        }
}

#ifdef KV_AVX2
// roundf for 8 floats: truncate, then step away from zero when the dropped part is ≥ 1/2
// (x − trunc(x) is exact in float).
static inline __m256 roundf8(__m256 x) {
    const __m256 t = _mm256_round_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f);
    const __m256 away = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(x, t)), half, _CMP_GE_OQ);
    const __m256 step = _mm256_or_ps(_mm256_and_ps(x, sign), _mm256_set1_ps(1.0f));   // ±1 with x's sign
    return _mm256_add_ps(t, _mm256_and_ps(away, step));
}
#endif

// One block of 32 activations to int8: scale d = max|x|/127, codes roundf(x · (1/d)) (halves away
// from zero); returns Σ codes. llama.cpp's AVX2 q8_1 multiplies by 127/max|x| and rounds halves to
// even instead: that agreed with its logits slightly *less* on the golden prompts (KL 0.0112 vs
// 0.0068 on france-chat), the rest of its arithmetic (f16 K/V, Q and softmax) differing anyway.
static inline int quantize_block(const float *xb, int8_t *q, float *d_out) {
#ifdef KV_AVX2
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8), v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
    __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                              _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    const __m256 mul = _mm256_set1_ps(id);
    __m256i i0 = _mm256_cvtps_epi32(roundf8(_mm256_mul_ps(v0, mul)));
    __m256i i1 = _mm256_cvtps_epi32(roundf8(_mm256_mul_ps(v1, mul)));
    __m256i i2 = _mm256_cvtps_epi32(roundf8(_mm256_mul_ps(v2, mul)));
    __m256i i3 = _mm256_cvtps_epi32(roundf8(_mm256_mul_ps(v3, mul)));
    __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    // int32 → int8, restoring element order after the in-lane packs.
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p);
    *d_out = d;
    return _mm_cvtsi128_si32(s4);
#elif defined(KV_NEON)
    float32x4_t v[8], mx = vdupq_n_f32(0);
    for (int i = 0; i < 8; i++) { v[i] = vld1q_f32(xb + 4 * i); mx = vmaxq_f32(mx, vabsq_f32(v[i])); }
    const float amax = vmaxvq_f32(mx);
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    int32x4_t sum = vdupq_n_s32(0);
    int16x8_t h[4];
    for (int i = 0; i < 8; i += 2) {
        // vcvta: round to nearest, halves away from zero, as roundf.
        const int32x4_t c0 = vcvtaq_s32_f32(vmulq_n_f32(v[i], id)), c1 = vcvtaq_s32_f32(vmulq_n_f32(v[i + 1], id));
        sum = vaddq_s32(sum, vaddq_s32(c0, c1));
        h[i / 2] = vcombine_s16(vqmovn_s32(c0), vqmovn_s32(c1));
    }
    vst1q_s8(q, vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1])));
    vst1q_s8(q + 16, vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3])));
    *d_out = d;
    return vaddvq_s32(sum);
#else
    float amax = 0;
    for (int j = 0; j < 32; j++) { float v = fabsf(xb[j]); amax = v > amax ? v : amax; }
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) { int v = (int)roundf(xb[j] * id); q[j] = (int8_t)v; sum += v; }
    *d_out = d;
    return sum;
#endif
}

void kv_quantize_rows(const float *x, size_t ldx, int rows, int k, int8_t *qa, float *da, float *sa,
                      int8_t *lo, float *dlo, float *slo) {
    const int nb = k / 32;
    for (int m = 0; m < rows; m++) {
        const float *xr = x + (size_t)m * ldx;
        int8_t *qr = qa + (size_t)m * k;
        for (int b = 0; b < nb; b++) {
            const float *xb = xr + b * 32;
            float d;
            const int sum = quantize_block(xb, qr + b * 32, &d);
            if (lo) {
                // The rounding residual x - d·q, quantised again with scale d/254.
                const float dl = h2f(f2h(d)) / 254.0f, idl = dl > 0 ? 1.0f / dl : 0.0f;
                int suml = 0;
                for (int j = 0; j < 32; j++) {
                    // x − d·q as one fused operation, written out so every compiler and CPU agrees.
                    int q = (int)roundf(fmaf(-h2f(f2h(d)), (float)qr[b * 32 + j], xb[j]) * idl);
                    q = q > 127 ? 127 : q < -127 ? -127 : q;
                    lo[(size_t)m * k + b * 32 + j] = (int8_t)q; suml += q;
                }
                dlo[(size_t)m * nb + b] = dl;
                slo[(size_t)m * nb + b] = dl * (float)suml;
            }
            // Scale and scaled sum rounded to f16, as llama.cpp's q8_1 stores them.
            da[(size_t)m * nb + b] = h2f(f2h(d));
            sa[(size_t)m * nb + b] = h2f(f2h(d * (float)sum));
        }
    }
}

#ifdef KV_AVX2
#define KV_ALWAYS static inline __attribute__((always_inline))
#ifndef KV_MR
#define KV_MR 4   // activation rows per tile
#endif

// Row r of a tile's results into c[r][0 .. ncols).
KV_ALWAYS void store_tile(const int MR, const __m256 *acc, float *const *c, int ncols) {
    for (int r = 0; r < MR; r++) {
        if (ncols == 8) _mm256_storeu_ps(c[r], acc[r]);
        else { float t[8]; _mm256_storeu_ps(t, acc[r]); for (int j = 0; j < ncols; j++) c[r][j] = t[j]; }
    }
}

// MR activation rows × one group of 8 output rows, Q4 weights.
KV_ALWAYS void tile_q4(const int MR, int nb, const uint8_t *w, const int8_t *const *a, const float *const *da,
                       const float *const *sa, float *const *c, int ncols) {
    __m256 acc[KV_MR];
    for (int r = 0; r < MR; r++) acc[r] = _mm256_setzero_ps();
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < nb; b++, w += 160) {
        __m256i s[KV_MR];
        for (int r = 0; r < MR; r++) s[r] = _mm256_setzero_si256();
        for (int q = 0; q < 4; q++) {
            const __m256i p = _mm256_loadu_si256((const __m256i *)(w + 32 * q));
            const __m256i lo = _mm256_and_si256(p, low), hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), low);
            for (int r = 0; r < MR; r++) {
                const int8_t *ab = a[r] + b * 32;
                int32_t x0, x1;
                memcpy(&x0, ab + 4 * q, 4); memcpy(&x1, ab + 16 + 4 * q, 4);
                s[r] = _mm256_add_epi16(s[r], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(x0)));
                s[r] = _mm256_add_epi16(s[r], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(x1)));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 128)));
        const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 144)));
        for (int r = 0; r < MR; r++) {
            const __m256 isum = _mm256_cvtepi32_ps(_mm256_madd_epi16(s[r], ones));
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(da[r][b])), isum, acc[r]);
            acc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(sa[r][b]), acc[r]);
        }
    }
    store_tile(MR, acc, c, ncols);
}

// MR activation rows × one group of 8 output rows, Q8 weights (sign trick: |w| · (a · sign w)).
KV_ALWAYS void tile_q8(const int MR, int nb, const uint8_t *w, const int8_t *const *a, const float *const *da,
                       float *const *c, int ncols) {
    __m256 acc[KV_MR];
    for (int r = 0; r < MR; r++) acc[r] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < nb; b++, w += 272) {
        __m256i s[KV_MR];
        for (int r = 0; r < MR; r++) s[r] = _mm256_setzero_si256();
        for (int q = 0; q < 8; q++) {
            const __m256i p = _mm256_loadu_si256((const __m256i *)(w + 32 * q));
            const __m256i ap = _mm256_sign_epi8(p, p);
            for (int r = 0; r < MR; r++) {
                int32_t x0;
                memcpy(&x0, a[r] + b * 32 + 4 * q, 4);
                const __m256i t = _mm256_maddubs_epi16(ap, _mm256_sign_epi8(_mm256_set1_epi32(x0), p));
                s[r] = _mm256_add_epi32(s[r], _mm256_madd_epi16(t, ones));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 256)));
        for (int r = 0; r < MR; r++)
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(da[r][b])), _mm256_cvtepi32_ps(s[r]), acc[r]);
    }
    store_tile(MR, acc, c, ncols);
}
#endif

// ---- Other instruction sets: the same per-element sequence, so the same bits. -------------------
//
// VNNI (`vpdpbusd`) and the NEON dot product sum four u8×s8 (or s8×s8) products straight into
// int32, where AVX2 goes through int16 pair sums first; every partial sum is an exact integer
// (|Σ| ≤ 8 · 3810 for Q4, 8 · 32512 for Q8), so the integer block sum is the same number, and the
// float part (scale products, fused multiply-adds over blocks in order) is the same sequence of
// IEEE operations. `Tests/ckernels` checks every path this CPU (or QEMU) runs against the portable
// one, bit for bit.

#if defined(KV_AVX2) && (defined(__GNUC__) || defined(__clang__))
#define KV_X86_VNNI 1
#define KV_VNNI512 __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))
#define KV_VNNIAVX __attribute__((target("avx2,fma,f16c,avxvnni")))

// `DP` is the dot-product instruction: vpdpbusd in its AVX-512VL or its AVX-VNNI encoding.
#define KV_VNNI_TILES(SUFFIX, ATTR, DP)                                                                   \
static inline __attribute__((always_inline)) ATTR void tile_q4_##SUFFIX(const int MR, int nb, const uint8_t *w, \
        const int8_t *const *a, const float *const *da, const float *const *sa, float *const *c, int ncols) { \
    __m256 acc[KV_MR];                                                                                    \
    for (int r = 0; r < MR; r++) acc[r] = _mm256_setzero_ps();                                            \
    const __m256i low = _mm256_set1_epi8(0x0f);                                                           \
    for (int b = 0; b < nb; b++, w += 160) {                                                              \
        __m256i s[KV_MR];                                                                                 \
        for (int r = 0; r < MR; r++) s[r] = _mm256_setzero_si256();                                       \
        for (int q = 0; q < 4; q++) {                                                                     \
            const __m256i p = _mm256_loadu_si256((const __m256i *)(w + 32 * q));                          \
            const __m256i lo = _mm256_and_si256(p, low), hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), low); \
            for (int r = 0; r < MR; r++) {                                                                \
                const int8_t *ab = a[r] + b * 32;                                                         \
                int32_t x0, x1;                                                                           \
                memcpy(&x0, ab + 4 * q, 4); memcpy(&x1, ab + 16 + 4 * q, 4);                              \
                s[r] = DP(s[r], lo, _mm256_set1_epi32(x0));                                               \
                s[r] = DP(s[r], hi, _mm256_set1_epi32(x1));                                               \
            }                                                                                             \
        }                                                                                                 \
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 128)));                    \
        const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 144)));                    \
        for (int r = 0; r < MR; r++) {                                                                    \
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(da[r][b])), _mm256_cvtepi32_ps(s[r]), acc[r]); \
            acc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(sa[r][b]), acc[r]);                                \
        }                                                                                                 \
    }                                                                                                     \
    store_tile(MR, acc, c, ncols);                                                                        \
}                                                                                                         \
static inline __attribute__((always_inline)) ATTR void tile_q8_##SUFFIX(const int MR, int nb, const uint8_t *w, \
        const int8_t *const *a, const float *const *da, float *const *c, int ncols) {                     \
    __m256 acc[KV_MR];                                                                                    \
    for (int r = 0; r < MR; r++) acc[r] = _mm256_setzero_ps();                                            \
    for (int b = 0; b < nb; b++, w += 272) {                                                              \
        __m256i s[KV_MR];                                                                                 \
        for (int r = 0; r < MR; r++) s[r] = _mm256_setzero_si256();                                       \
        for (int q = 0; q < 8; q++) {                                                                     \
            const __m256i p = _mm256_loadu_si256((const __m256i *)(w + 32 * q));                          \
            const __m256i ap = _mm256_sign_epi8(p, p);                                                    \
            for (int r = 0; r < MR; r++) {                                                                \
                int32_t x0;                                                                               \
                memcpy(&x0, a[r] + b * 32 + 4 * q, 4);                                                    \
                s[r] = DP(s[r], ap, _mm256_sign_epi8(_mm256_set1_epi32(x0), p));                          \
            }                                                                                             \
        }                                                                                                 \
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 256)));                    \
        for (int r = 0; r < MR; r++)                                                                      \
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(da[r][b])), _mm256_cvtepi32_ps(s[r]), acc[r]); \
    }                                                                                                     \
    store_tile(MR, acc, c, ncols);                                                                        \
}
KV_VNNI_TILES(vnni512, KV_VNNI512, _mm256_dpbusd_epi32)
KV_VNNI_TILES(avxvnni, KV_VNNIAVX, _mm256_dpbusd_avx_epi32)
#endif

#ifdef KV_NEON
#define KV_MR 4
#define KV_DOTPROD_ATTR __attribute__((target("arch=armv8.2-a+dotprod")))

static inline float32x4_t h2f4(const uint8_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p))); }

static inline void store_tile_neon(const int MR, const float32x4_t (*acc)[2], float *const *c, int ncols) {
    for (int r = 0; r < MR; r++) {
        if (ncols == 8) { vst1q_f32(c[r], acc[r][0]); vst1q_f32(c[r] + 4, acc[r][1]); }
        else { float t[8]; vst1q_f32(t, acc[r][0]); vst1q_f32(t + 4, acc[r][1]); for (int j = 0; j < ncols; j++) c[r][j] = t[j]; }
    }
}

// Σ_j w[row][j] · x[j] for the 4 rows of 4 bytes in `w`: plain NEON (widening multiply, pairwise adds).
static inline int32x4_t dot4_neon(int32x4_t s, int8x16_t w, int8x16_t x) {
    const int32x4_t p01 = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(x)));     // r0 j01, r0 j23, r1 j01, r1 j23
    const int32x4_t p23 = vpaddlq_s16(vmull_s8(vget_high_s8(w), vget_high_s8(x)));   // r2 …, r3 …
    return vaddq_s32(s, vpaddq_s32(p01, p23));
}
KV_DOTPROD_ATTR static inline int32x4_t dot4_dotprod(int32x4_t s, int8x16_t w, int8x16_t x) { return vdotq_s32(s, w, x); }

#define KV_NEON_TILES(SUFFIX, ATTR, DOT)                                                                  \
ATTR static inline __attribute__((always_inline)) void tile_q4_##SUFFIX(const int MR, int nb, const uint8_t *w, \
        const int8_t *const *a, const float *const *da, const float *const *sa, float *const *c, int ncols) { \
    float32x4_t acc[KV_MR][2];                                                                            \
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = vdupq_n_f32(0);                                  \
    const uint8x16_t low = vdupq_n_u8(0x0f);                                                              \
    for (int b = 0; b < nb; b++, w += 160) {                                                              \
        int32x4_t s[KV_MR][2];                                                                            \
        for (int r = 0; r < MR; r++) s[r][0] = s[r][1] = vdupq_n_s32(0);                                  \
        for (int q = 0; q < 4; q++) {                                                                     \
            const uint8x16_t p0 = vld1q_u8(w + 32 * q), p1 = vld1q_u8(w + 32 * q + 16);                   \
            const int8x16_t lo0 = vreinterpretq_s8_u8(vandq_u8(p0, low)), hi0 = vreinterpretq_s8_u8(vshrq_n_u8(p0, 4)); \
            const int8x16_t lo1 = vreinterpretq_s8_u8(vandq_u8(p1, low)), hi1 = vreinterpretq_s8_u8(vshrq_n_u8(p1, 4)); \
            for (int r = 0; r < MR; r++) {                                                                \
                const int8_t *ab = a[r] + b * 32;                                                         \
                int32_t x0, x1;                                                                           \
                memcpy(&x0, ab + 4 * q, 4); memcpy(&x1, ab + 16 + 4 * q, 4);                              \
                const int8x16_t v0 = vreinterpretq_s8_s32(vdupq_n_s32(x0)), v1 = vreinterpretq_s8_s32(vdupq_n_s32(x1)); \
                s[r][0] = DOT(DOT(s[r][0], lo0, v0), hi0, v1);                                            \
                s[r][1] = DOT(DOT(s[r][1], lo1, v0), hi1, v1);                                            \
            }                                                                                             \
        }                                                                                                 \
        const float32x4_t d0 = h2f4(w + 128), d1 = h2f4(w + 136), m0 = h2f4(w + 144), m1 = h2f4(w + 152); \
        for (int r = 0; r < MR; r++) {                                                                    \
            const float32x4_t dr = vdupq_n_f32(da[r][b]), sr = vdupq_n_f32(sa[r][b]);                     \
            acc[r][0] = vfmaq_f32(acc[r][0], vmulq_f32(d0, dr), vcvtq_f32_s32(s[r][0]));                  \
            acc[r][1] = vfmaq_f32(acc[r][1], vmulq_f32(d1, dr), vcvtq_f32_s32(s[r][1]));                  \
            acc[r][0] = vfmaq_f32(acc[r][0], m0, sr);                                                     \
            acc[r][1] = vfmaq_f32(acc[r][1], m1, sr);                                                     \
        }                                                                                                 \
    }                                                                                                     \
    store_tile_neon(MR, (const float32x4_t (*)[2])acc, c, ncols);                                         \
}                                                                                                         \
ATTR static inline __attribute__((always_inline)) void tile_q8_##SUFFIX(const int MR, int nb, const uint8_t *w, \
        const int8_t *const *a, const float *const *da, float *const *c, int ncols) {                     \
    float32x4_t acc[KV_MR][2];                                                                            \
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = vdupq_n_f32(0);                                  \
    for (int b = 0; b < nb; b++, w += 272) {                                                              \
        int32x4_t s[KV_MR][2];                                                                            \
        for (int r = 0; r < MR; r++) s[r][0] = s[r][1] = vdupq_n_s32(0);                                  \
        for (int q = 0; q < 8; q++) {                                                                     \
            const int8x16_t p0 = vld1q_s8((const int8_t *)w + 32 * q), p1 = vld1q_s8((const int8_t *)w + 32 * q + 16); \
            for (int r = 0; r < MR; r++) {                                                                \
                int32_t x0;                                                                               \
                memcpy(&x0, a[r] + b * 32 + 4 * q, 4);                                                    \
                const int8x16_t v = vreinterpretq_s8_s32(vdupq_n_s32(x0));                                \
                s[r][0] = DOT(s[r][0], p0, v);                                                            \
                s[r][1] = DOT(s[r][1], p1, v);                                                            \
            }                                                                                             \
        }                                                                                                 \
        const float32x4_t d0 = h2f4(w + 256), d1 = h2f4(w + 264);                                         \
        for (int r = 0; r < MR; r++) {                                                                    \
            const float32x4_t dr = vdupq_n_f32(da[r][b]);                                                 \
            acc[r][0] = vfmaq_f32(acc[r][0], vmulq_f32(d0, dr), vcvtq_f32_s32(s[r][0]));                  \
            acc[r][1] = vfmaq_f32(acc[r][1], vmulq_f32(d1, dr), vcvtq_f32_s32(s[r][1]));                  \
        }                                                                                                 \
    }                                                                                                     \
    store_tile_neon(MR, (const float32x4_t (*)[2])acc, c, ncols);                                         \
}
KV_NEON_TILES(neon, , dot4_neon)
KV_NEON_TILES(dotprod, KV_DOTPROD_ATTR, dot4_dotprod)
#endif

// ---- Path selection --------------------------------------------------------------------------

enum { KV_PATH_PORTABLE, KV_PATH_AVX2, KV_PATH_AVXVNNI, KV_PATH_VNNI512, KV_PATH_NEON, KV_PATH_DOTPROD, KV_PATH_COUNT };
static const char *const kv_path_names[KV_PATH_COUNT] = {
    "portable", "avx2", "avx-vnni", "avx512-vnni", "neon", "neon-dotprod" };

static int kv_path_supported(int p) {
    switch (p) {
    case KV_PATH_PORTABLE: return 1;
#ifdef KV_AVX2
    case KV_PATH_AVX2: return 1;
#endif
#ifdef KV_X86_VNNI
    case KV_PATH_AVXVNNI: __builtin_cpu_init(); return __builtin_cpu_supports("avxvnni");
    case KV_PATH_VNNI512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#endif
#ifdef KV_NEON
    case KV_PATH_NEON: return 1;
    case KV_PATH_DOTPROD: return kv_cpu_has_dotprod();
#endif
    default: return 0;
    }
}

// -1 until first use; then the path every kv_qgemm call takes (KVDUEL_KERNEL may name one).
static int kv_path = -1;

static int kv_best_path(void) {
    const int order[] = { KV_PATH_VNNI512, KV_PATH_AVXVNNI, KV_PATH_AVX2, KV_PATH_DOTPROD, KV_PATH_NEON };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) if (kv_path_supported(order[i])) return order[i];
    return KV_PATH_PORTABLE;
}

static int kv_path_named(const char *name) {
    for (int p = 0; p < KV_PATH_COUNT; p++) if (name && strcmp(name, kv_path_names[p]) == 0) return p;
    return -1;
}

static int kv_current_path(void) {
    int p = __atomic_load_n(&kv_path, __ATOMIC_ACQUIRE);
    if (p >= 0) return p;
    p = kv_path_named(getenv("KVDUEL_KERNEL"));
    if (p < 0 || !kv_path_supported(p)) p = kv_best_path();
    __atomic_store_n(&kv_path, p, __ATOMIC_RELEASE);
    return p;
}

const char *kv_qgemm_path(void) { return kv_path_names[kv_current_path()]; }

int kv_qgemm_select(const char *name) {
    const int p = name ? kv_path_named(name) : kv_best_path();
    if (p < 0 || !kv_path_supported(p)) return -1;
    __atomic_store_n(&kv_path, p, __ATOMIC_RELEASE);
    return 0;
}

const char *kv_qgemm_paths(void) {
    static char buf[128];
    static int done = 0;
    if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        char tmp[128] = "";
        for (int p = KV_PATH_COUNT - 1; p >= 0; p--)
            if (kv_path_supported(p)) { if (tmp[0]) strcat(tmp, ","); strcat(tmp, kv_path_names[p]); }
        memcpy(buf, tmp, sizeof buf);
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
    return buf;
}

// Rows in tiles of KV_MR (the tail in tiles of 1), groups inner so a tile's activations stay in L1
// and each group's weights stream once per tile from L2. TQ4 / TQ8 are one instruction set's tiles.
#define KV_QGEMM_TILED(TQ4, TQ8)                                                                          \
    for (int m0 = 0; m0 < rows; ) {                                                                       \
        const int mr = rows - m0 >= KV_MR ? KV_MR : 1;                                                    \
        const int8_t *a[KV_MR]; const float *d[KV_MR], *s[KV_MR]; float *cr[KV_MR];                       \
        for (int r = 0; r < KV_MR; r++) {                                                                 \
            const int mm = m0 + (r < mr ? r : 0);                                                         \
            a[r] = qa + (size_t)mm * k; d[r] = da + (size_t)mm * nb; s[r] = sa + (size_t)mm * nb;         \
        }                                                                                                 \
        for (int g = g0; g < g1; g++) {                                                                   \
            const uint8_t *wg = w + (size_t)g * gbytes;                                                   \
            const int ncols = n - g * 8 < 8 ? n - g * 8 : 8;                                              \
            for (int r = 0; r < KV_MR; r++) cr[r] = c + (size_t)(m0 + (r < mr ? r : 0)) * ldc + g * 8;    \
            if (format == KV_Q4) { if (mr == KV_MR) TQ4(KV_MR, nb, wg, a, d, s, cr, ncols); else TQ4(1, nb, wg, a, d, s, cr, ncols); } \
            else { if (mr == KV_MR) TQ8(KV_MR, nb, wg, a, d, cr, ncols); else TQ8(1, nb, wg, a, d, cr, ncols); } \
        }                                                                                                 \
        m0 += mr;                                                                                         \
    }

#define KV_QGEMM_ARGS int format, const uint8_t *w, int n, int k, int g0, int g1, const int8_t *qa, \
                      const float *da, const float *sa, int rows, float *c, size_t ldc, int nb, size_t gbytes
#ifdef KV_AVX2
static void qgemm_avx2(KV_QGEMM_ARGS) { KV_QGEMM_TILED(tile_q4, tile_q8) }
#endif
#ifdef KV_X86_VNNI
KV_VNNI512 static void qgemm_vnni512(KV_QGEMM_ARGS) { KV_QGEMM_TILED(tile_q4_vnni512, tile_q8_vnni512) }
KV_VNNIAVX static void qgemm_avxvnni(KV_QGEMM_ARGS) { KV_QGEMM_TILED(tile_q4_avxvnni, tile_q8_avxvnni) }
#endif
#ifdef KV_NEON
static void qgemm_neon(KV_QGEMM_ARGS) { KV_QGEMM_TILED(tile_q4_neon, tile_q8_neon) }
KV_DOTPROD_ATTR static void qgemm_dotprod(KV_QGEMM_ARGS) { KV_QGEMM_TILED(tile_q4_dotprod, tile_q8_dotprod) }
#endif

// Portable: the same per-element sequence, in scalar float (fmaf is the fused multiply-add the
// vector paths use), so it gives the same bits as they do.
static void qgemm_portable(KV_QGEMM_ARGS) {
    (void)gbytes;
    for (int m = 0; m < rows; m++)
        for (int g = g0; g < g1; g++) {
            const uint8_t *wg = w + (size_t)g * kv_qpack_group_bytes(format, k);
            for (int r = 0; r < 8 && g * 8 + r < n; r++) {
                float acc = 0;
                for (int b = 0; b < nb; b++) {
                    const uint8_t *blk = wg + (size_t)b * (format == KV_Q4 ? 160 : 272);
                    const int8_t *ab = qa + (size_t)m * k + b * 32;
                    int isum = 0;
                    if (format == KV_Q4) {
                        for (int q = 0; q < 4; q++) for (int j = 0; j < 4; j++) {
                            uint8_t byte = blk[32 * q + 4 * r + j];
                            isum += (byte & 15) * ab[4 * q + j] + (byte >> 4) * ab[16 + 4 * q + j];
                        }
                        uint16_t dh, mh; memcpy(&dh, blk + 128 + 2 * r, 2); memcpy(&mh, blk + 144 + 2 * r, 2);
                        acc = fmaf(h2f(dh) * da[(size_t)m * nb + b], (float)isum, acc);
                        acc = fmaf(h2f(mh), sa[(size_t)m * nb + b], acc);
                    } else {
                        for (int q = 0; q < 8; q++) for (int j = 0; j < 4; j++)
                            isum += (int8_t)blk[32 * q + 4 * r + j] * ab[4 * q + j];
                        uint16_t dh; memcpy(&dh, blk + 256 + 2 * r, 2);
                        acc = fmaf(h2f(dh) * da[(size_t)m * nb + b], (float)isum, acc);
                    }
                }
                c[(size_t)m * ldc + g * 8 + r] = acc;
            }
        }
}

void kv_qgemm(int format, const uint8_t *w, int n, int k, int g0, int g1,
              const int8_t *qa, const float *da, const float *sa, int rows, float *c, size_t ldc) {
    const int nb = k / 32;
    const size_t gbytes = kv_qpack_group_bytes(format, k);
    switch (kv_current_path()) {
#ifdef KV_X86_VNNI
    case KV_PATH_VNNI512: qgemm_vnni512(format, w, n, k, g0, g1, qa, da, sa, rows, c, ldc, nb, gbytes); return;
    case KV_PATH_AVXVNNI: qgemm_avxvnni(format, w, n, k, g0, g1, qa, da, sa, rows, c, ldc, nb, gbytes); return;
#endif
#ifdef KV_AVX2
    case KV_PATH_AVX2: qgemm_avx2(format, w, n, k, g0, g1, qa, da, sa, rows, c, ldc, nb, gbytes); return;
#endif
#ifdef KV_NEON
    case KV_PATH_DOTPROD: qgemm_dotprod(format, w, n, k, g0, g1, qa, da, sa, rows, c, ldc, nb, gbytes); return;
    case KV_PATH_NEON: qgemm_neon(format, w, n, k, g0, g1, qa, da, sa, rows, c, ldc, nb, gbytes); return;
#endif
    default: qgemm_portable(format, w, n, k, g0, g1, qa, da, sa, rows, c, ldc, nb, gbytes); return;
    }
}
