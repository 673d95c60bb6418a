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
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define KV_AVX2 1

#endif

static inline float h2f(uint16_t h) {
#ifdef KV_AVX2
    return _cvtsh_ss(h);
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
#else
    // Round to nearest even, normals and zero only (activation scales are never subnormal in f16
    // range for real models; tiny values flush to zero).
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000; int e = (int)((x >> 23) & 0xff) - 127 + 15; uint32_t man = x & 0x7fffff;
    if (e <= 0) return (uint16_t)sign;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13), rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
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
                    int q = (int)roundf((xb[j] - h2f(f2h(d)) * (float)qr[b * 32 + j]) * idl);
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

void kv_qgemm(int format, const uint8_t *w, int n, int k, int g0, int g1,
              const int8_t *qa, const float *da, const float *sa, int rows, float *c, size_t ldc) {
    const int nb = k / 32;
    const size_t gbytes = kv_qpack_group_bytes(format, k);
#ifdef KV_AVX2
    // Rows in tiles of KV_MR (the tail in tiles of 1), groups inner so a tile's activations stay in L1
    // and each group's weights stream once per tile from L2.
    for (int m0 = 0; m0 < rows; ) {
        const int mr = rows - m0 >= KV_MR ? KV_MR : 1;
        const int8_t *a[KV_MR]; const float *d[KV_MR], *s[KV_MR]; float *cr[KV_MR];
        for (int r = 0; r < KV_MR; r++) {
            const int mm = m0 + (r < mr ? r : 0);
            a[r] = qa + (size_t)mm * k; d[r] = da + (size_t)mm * nb; s[r] = sa + (size_t)mm * nb;
        }
        for (int g = g0; g < g1; g++) {
            const uint8_t *wg = w + (size_t)g * gbytes;
            const int ncols = n - g * 8 < 8 ? n - g * 8 : 8;
            for (int r = 0; r < KV_MR; r++) cr[r] = c + (size_t)(m0 + (r < mr ? r : 0)) * ldc + g * 8;
            if (format == KV_Q4) { if (mr == KV_MR) tile_q4(KV_MR, nb, wg, a, d, s, cr, ncols); else tile_q4(1, nb, wg, a, d, s, cr, ncols); }
            else { if (mr == KV_MR) tile_q8(KV_MR, nb, wg, a, d, cr, ncols); else tile_q8(1, nb, wg, a, d, cr, ncols); }
        }
        m0 += mr;
    }
#else
    // Portable: the same per-element sequence, in scalar float (bitwise equal to the AVX2 path
    // is not promised; invariance across batch sizes holds within one build).
    for (int m = 0; m < rows; m++)
        for (int g = g0; g < g1; g++) {
            const uint8_t *wg = w + (size_t)g * gbytes;
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
#endif
}
