#include "ckernels.h"
#include <math.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define KV_AVX2 1
#endif

static inline float f16_to_f32(const uint8_t *p) {
    uint16_t h; memcpy(&h, p, 2);
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

void kv_quantize_q8(const float *x, int n, int8_t *q, float *scale, float *sum) {
    for (int b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) { float a = fabsf(xb[j]); if (a > amax) amax = a; }
        const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        int s = 0;
        for (int j = 0; j < 32; j++) { int v = (int)nearbyintf(xb[j] * id); q[b * 32 + j] = (int8_t)v; s += v; }
        scale[b] = d;
        sum[b] = d * (float)s;
    }
}

void kv_gemv_q4_1(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb,
                  const int8_t *xq, const float *xs, const float *xsum, float *out) {
    for (int r = row0; r < row1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
#ifdef KV_AVX2
        __m256 acc = _mm256_setzero_ps();
        float accm = 0;
        const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 20;
            // 16 bytes hold 32 nibbles: low nibbles are elements 0..15, high nibbles 16..31.
            __m128i raw = _mm_loadu_si128((const __m128i *)(blk + 4));
            __m256i qw = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low);
            __m256i qa = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            __m256i p16 = _mm256_maddubs_epi16(qw, qa);            // u8 × i8 → i16 pairs
            __m256i p32 = _mm256_madd_epi16(p16, ones);            // → i32
            __m256 pf = _mm256_cvtepi32_ps(p32);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(blk) * xs[b]), pf, acc);
            accm += f16_to_f32(blk + 2) * xsum[b];
        }
        out[r] = hsum8(acc) + accm;
#else
        float acc = 0;
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 20, *q = blk + 4;
            const int8_t *a = xq + b * 32;
            int s = 0;
            for (int j = 0; j < 16; j++) s += (q[j] & 0x0f) * a[j] + (q[j] >> 4) * a[j + 16];
            acc += f16_to_f32(blk) * xs[b] * (float)s + f16_to_f32(blk + 2) * xsum[b];
        }
        out[r] = acc;
#endif
    }
}

void kv_gemv_q8_0(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb,
                  const int8_t *xq, const float *xs, float *out) {
    for (int r = row0; r < row1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
#ifdef KV_AVX2
        __m256 acc = _mm256_setzero_ps();
        const __m256i ones = _mm256_set1_epi16(1);
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 34;
            __m256i qw = _mm256_loadu_si256((const __m256i *)(blk + 2));
            __m256i qa = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            // i8 × i8 via maddubs: |w| × sign(w)·a.
            __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qa, qw));
            __m256 pf = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(blk) * xs[b]), pf, acc);
        }
        out[r] = hsum8(acc);
#else
        float acc = 0;
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 34;
            const int8_t *q = (const int8_t *)(blk + 2), *a = xq + b * 32;
            int s = 0;
            for (int j = 0; j < 32; j++) s += q[j] * a[j];
            acc += f16_to_f32(blk) * xs[b] * (float)s;
        }
        out[r] = acc;
#endif
    }
}

void kv_gemv_q8_0_f32(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb, const float *x, float *out) {
    for (int r = row0; r < row1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
#ifdef KV_AVX2
        __m256 acc = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 34;
            const float *xb = x + b * 32;
            __m128i q0 = _mm_loadu_si128((const __m128i *)(blk + 2)), q1 = _mm_loadu_si128((const __m128i *)(blk + 18));
            __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0));
            __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8)));
            __m256 w2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1));
            __m256 w3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8)));
            __m256 s = _mm256_mul_ps(w0, _mm256_loadu_ps(xb));
            s = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xb + 8), s);
            s = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xb + 16), s);
            s = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xb + 24), s);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(blk)), s, acc);
        }
        out[r] = hsum8(acc);
#else
        float acc = 0;
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 34;
            const int8_t *q = (const int8_t *)(blk + 2);
            float s = 0;
            for (int j = 0; j < 32; j++) s += q[j] * x[b * 32 + j];
            acc += f16_to_f32(blk) * s;
        }
        out[r] = acc;
#endif
    }
}

void kv_block_sums(const float *x, int n, float *xsum) {
    for (int b = 0; b < n / 32; b++) {
        float s = 0;
        for (int j = 0; j < 32; j++) s += x[b * 32 + j];
        xsum[b] = s;
    }
}

void kv_gemv_q4_1_f32(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb,
                      const float *x, const float *xsum, float *out) {
    for (int r = row0; r < row1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
#ifdef KV_AVX2
        if (r + 2 < row1) {
            const uint8_t *next = row + 2 * row_bytes;
            for (size_t o = 0; o < row_bytes; o += 64) _mm_prefetch((const char *)(next + o), _MM_HINT_T0);
        }
        __m256 acc = _mm256_setzero_ps();
        float accm = 0;
        const __m128i low = _mm_set1_epi8(0x0f);
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 20;
            const float *xb = x + b * 32;
            __m128i raw = _mm_loadu_si128((const __m128i *)(blk + 4));
            __m128i lo = _mm_and_si128(raw, low), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), low);
            __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
            __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
            __m256 w2 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
            __m256 w3 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
            __m256 sacc = _mm256_mul_ps(w0, _mm256_loadu_ps(xb));
            sacc = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xb + 8), sacc);
            sacc = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xb + 16), sacc);
            sacc = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xb + 24), sacc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(blk)), sacc, acc);
            accm += f16_to_f32(blk + 2) * xsum[b];
        }
        out[r] = hsum8(acc) + accm;
#else
        float acc = 0;
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + b * 20, *q = blk + 4;
            const float *xb = x + b * 32;
            float s = 0;
            for (int j = 0; j < 16; j++) s += (float)(q[j] & 0x0f) * xb[j] + (float)(q[j] >> 4) * xb[j + 16];
            acc += f16_to_f32(blk) * s + f16_to_f32(blk + 2) * xsum[b];
        }
        out[r] = acc;
#endif
    }
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

float kv_dot(const float *a, const float *b, int n) {
    int i = 0;
    float s = 0;
#ifdef KV_AVX2
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    s = hsum8(_mm256_add_ps(acc0, acc1));
#endif
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

void kv_axpy(float a, const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

void kv_rmsnorm(const float *x, const float *w, float *y, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

/* ---------------------------------------------------------------------------------------------
 * Decode layouts repacked at load (see ckernels.h): Q4_1 "pair" rows and Q8_0 rows with f32 scales.
 * ------------------------------------------------------------------------------------------- */

void kv_repack_q4_1(const uint8_t *src, uint8_t *dst, int rows, int nb) {
    for (int r = 0; r < rows; r++) {
        const uint8_t *s = src + (size_t)r * nb * 20;
        uint8_t *d = dst + (size_t)r * nb * 20;
        uint8_t *dd = d, *dm = d + 2 * nb, *dq = d + 4 * nb;
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = s + b * 20;
            memcpy(dd + 2 * b, blk, 2);
            memcpy(dm + 2 * b, blk + 2, 2);
            memcpy(dq + (b / 2) * 32 + (b % 2) * 16, blk + 4, 16);
        }
    }
}

void kv_repack_q8_0(const uint8_t *src, uint8_t *dst, int rows, int nb) {
    for (int r = 0; r < rows; r++) {
        const uint8_t *s = src + (size_t)r * nb * 34;
        uint8_t *d = dst + (size_t)r * nb * 36;
        float *ds = (float *)d;
        for (int b = 0; b < nb; b++) {
            float f = f16_to_f32(s + b * 34);
            memcpy(ds + b, &f, 4);
            memcpy(d + 4 * nb + 32 * b, s + b * 34 + 2, 32);
        }
    }
}

// Per block of 32: d = max|x| / 127, q = round(x / d). Pair order: blocks 2p, 2p+1 are stored as
// [x_2p[0..15] x_2p+1[0..15] x_2p[16..31] x_2p+1[16..31]] to match the repacked Q4_1 nibbles.
void kv_quantize_q8p(const float *x, int n, int8_t *q, float *scale, float *sum) {
    for (int b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) { float a = fabsf(xb[j]); if (a > amax) amax = a; }
        const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        int8_t *o = q + (b / 2) * 64 + (b % 2) * 16;
        int s = 0;
        for (int j = 0; j < 32; j++) {
            int v = (int)nearbyintf(xb[j] * id);
            o[j < 16 ? j : j + 16] = (int8_t)v;
            s += v;
        }
        scale[b] = d;
        sum[b] = d * (float)s;
    }
}

void kv_quantize_q16(const float *x, int n, int16_t *q, float *scale) {
    for (int b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) { float a = fabsf(xb[j]); if (a > amax) amax = a; }
        const float d = amax / 32767.0f, id = d > 0 ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) q[b * 32 + j] = (int16_t)nearbyintf(xb[j] * id);
        scale[b] = d;
    }
}

#ifndef KV_PF_GROUPS
#define KV_PF_GROUPS 4
#endif
#ifdef KV_AVX2
// One pair of Q4_1 blocks of one row against the pair-ordered activations; returns the updated acc.
#define Q41R_PAIR(rowq, rowd, acc)                                                                  \
    do {                                                                                            \
        __m256i w_ = _mm256_loadu_si256((const __m256i *)((rowq) + p * 32));                        \
        __m256i lo_ = _mm256_and_si256(w_, low), hi_ = _mm256_and_si256(_mm256_srli_epi16(w_, 4), low); \
        __m256i s16_ = _mm256_add_epi16(_mm256_maddubs_epi16(lo_, alo), _mm256_maddubs_epi16(hi_, ahi)); \
        __m256 pf_ = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16_, ones));                             \
        __m128 d2_ = _mm_cvtph_ps(_mm_cvtsi32_si128(*(const int *)((rowd) + p * 4)));               \
        __m256 d8_ = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d2_), perm);                   \
        acc = _mm256_fmadd_ps(_mm256_mul_ps(d8_, xs8), pf_, acc);                                   \
    } while (0)

static inline float q41r_min_term(const uint8_t *rowm, const float *xsum, int nb) {
    __m256 a = _mm256_setzero_ps();
    int b = 0;
    for (; b + 8 <= nb; b += 8)
        a = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rowm + 2 * b))), _mm256_loadu_ps(xsum + b), a);
    float s = hsum8(a);
    for (; b < nb; b++) s += f16_to_f32(rowm + 2 * b) * xsum[b];
    return s;
}
#endif

void kv_gemv_q4_1r(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb,
                   const int8_t *xq, const float *xs, const float *xsum, float *out) {
    const int np = nb / 2;
#ifdef KV_AVX2
    const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    const __m256i perm = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    const size_t pf_step = ((4 * row_bytes + np - 1) / np + 63) & ~(size_t)63;
    int r = row0;
    for (; r + 4 <= row1; r += 4) {
        const uint8_t *r0 = w + (size_t)r * row_bytes, *r1 = r0 + row_bytes, *r2 = r1 + row_bytes, *r3 = r2 + row_bytes;
        const uint8_t *q0 = r0 + 4 * nb, *q1 = r1 + 4 * nb, *q2 = r2 + 4 * nb, *q3 = r3 + 4 * nb;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int p = 0; p < np; p++) {
            const __m256i alo = _mm256_loadu_si256((const __m256i *)(xq + p * 64));
            const __m256i ahi = _mm256_loadu_si256((const __m256i *)(xq + p * 64 + 32));
            __m128 x2 = _mm_castpd_ps(_mm_load_sd((const double *)(xs + 2 * p)));
            const __m256 xs8 = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(x2), perm);
            // The 4-row group is contiguous: prefetch the group KV_PF_GROUPS ahead, spread over the pairs.
            const uint8_t *pf = r0 + KV_PF_GROUPS * 4 * row_bytes + (size_t)p * pf_step;
            for (size_t o = 0; o < pf_step; o += 64) _mm_prefetch((const char *)(pf + o), _MM_HINT_T0);
            Q41R_PAIR(q0, r0, a0);
            Q41R_PAIR(q1, r1, a1);
            Q41R_PAIR(q2, r2, a2);
            Q41R_PAIR(q3, r3, a3);
        }
        out[r] = hsum8(a0) + q41r_min_term(r0 + 2 * nb, xsum, nb);
        out[r + 1] = hsum8(a1) + q41r_min_term(r1 + 2 * nb, xsum, nb);
        out[r + 2] = hsum8(a2) + q41r_min_term(r2 + 2 * nb, xsum, nb);
        out[r + 3] = hsum8(a3) + q41r_min_term(r3 + 2 * nb, xsum, nb);
    }
    for (; r < row1; r++) {
        const uint8_t *r0 = w + (size_t)r * row_bytes, *q0 = r0 + 4 * nb;
        __m256 a0 = _mm256_setzero_ps();
        for (int p = 0; p < np; p++) {
            const __m256i alo = _mm256_loadu_si256((const __m256i *)(xq + p * 64));
            const __m256i ahi = _mm256_loadu_si256((const __m256i *)(xq + p * 64 + 32));
            __m128 x2 = _mm_castpd_ps(_mm_load_sd((const double *)(xs + 2 * p)));
            const __m256 xs8 = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(x2), perm);
            Q41R_PAIR(q0, r0, a0);
        }
        out[r] = hsum8(a0) + q41r_min_term(r0 + 2 * nb, xsum, nb);
    }
#else
    for (int r = row0; r < row1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes, *rm = row + 2 * nb, *rq = row + 4 * nb;
        float acc = 0;
        for (int b = 0; b < nb; b++) {
            const int p = b / 2, h = b % 2;
            const uint8_t *qs = rq + p * 32 + h * 16;
            const int8_t *alo = xq + p * 64 + h * 16, *ahi = alo + 32;
            int s = 0;
            for (int j = 0; j < 16; j++) s += (qs[j] & 0x0f) * alo[j] + (qs[j] >> 4) * ahi[j];
            acc += f16_to_f32(row + 2 * b) * xs[b] * (float)s + f16_to_f32(rm + 2 * b) * xsum[b];
        }
        out[r] = acc;
    }
    (void)np;
#endif
}

void kv_gemv_q8_0r(const uint8_t *w, size_t row_bytes, int row0, int row1, int nb,
                   const int16_t *x, const float *xs, float *out) {
#ifdef KV_AVX2
    const size_t pf_step = ((4 * row_bytes + nb - 1) / nb + 63) & ~(size_t)63;
    int r = row0;
#define Q80R_BLK(row, acc)                                                                          \
    do {                                                                                            \
        const uint8_t *qb_ = (row) + 4 * nb + 32 * b;                                               \
        __m256i w0_ = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)qb_));                 \
        __m256i w1_ = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(qb_ + 16)));           \
        __m256i s_ = _mm256_add_epi32(_mm256_madd_epi16(w0_, x0), _mm256_madd_epi16(w1_, x1));      \
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss((const float *)(row) + b),                        \
                              _mm256_mul_ps(_mm256_cvtepi32_ps(s_), xsb), acc);                     \
    } while (0)
    for (; r + 4 <= row1; r += 4) {
        const uint8_t *r0 = w + (size_t)r * row_bytes, *r1 = r0 + row_bytes, *r2 = r1 + row_bytes, *r3 = r2 + row_bytes;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(x + b * 32));
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)(x + b * 32 + 16));
            const __m256 xsb = _mm256_broadcast_ss(xs + b);
            const uint8_t *pf = r0 + KV_PF_GROUPS * 4 * row_bytes + (size_t)b * pf_step;
            for (size_t o = 0; o < pf_step; o += 64) _mm_prefetch((const char *)(pf + o), _MM_HINT_T0);
            Q80R_BLK(r0, a0);
            Q80R_BLK(r1, a1);
            Q80R_BLK(r2, a2);
            Q80R_BLK(r3, a3);
        }
        out[r] = hsum8(a0); out[r + 1] = hsum8(a1); out[r + 2] = hsum8(a2); out[r + 3] = hsum8(a3);
    }
    for (; r < row1; r++) {
        const uint8_t *r0 = w + (size_t)r * row_bytes;
        __m256 a0 = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(x + b * 32));
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)(x + b * 32 + 16));
            const __m256 xsb = _mm256_broadcast_ss(xs + b);
            Q80R_BLK(r0, a0);
        }
        out[r] = hsum8(a0);
    }
#undef Q80R_BLK
#else
    for (int r = row0; r < row1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        float acc = 0;
        for (int b = 0; b < nb; b++) {
            const int8_t *q = (const int8_t *)(row + 4 * nb + 32 * b);
            int s = 0;
            for (int j = 0; j < 32; j++) s += q[j] * x[b * 32 + j];
            float d; memcpy(&d, row + 4 * b, 4);
            acc += d * ((float)s * xs[b]);
        }
        out[r] = acc;
    }
#endif
}
