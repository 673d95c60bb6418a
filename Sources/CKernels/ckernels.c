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
