// Attention, softmax, SiLU and RMSNorm kernels (ckernels.c): a query head's attention output has
// the same bits alone or in any group of heads, and the printed digests let builds for other CPUs
// be compared with this one (the AVX2 and NEON paths must agree bit for bit; the portable C path
// sums in another order). The f16 conversions of the KV cache (F16C, AArch64 fcvtn/fcvtl, portable
// C) are checked against a reference here and, through their digest, across every build.
// Ends with "N passed, N failed".
#include "ckernels.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next(void) {   // SplitMix64
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float uniform(void) { return (float)((next() >> 40) * (1.0 / 16777216.0)) * 2 - 1; }
static uint64_t fnv(const void *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    return h;
}
static int passed = 0, failed = 0;
static void check(int ok, const char *what) { if (ok) passed++; else { failed++; printf("FAIL %s\n", what); } }

// Reference conversions, by arithmetic on doubles rather than on bits.
static uint32_t bits(float f) { uint32_t x; memcpy(&x, &f, 4); return x; }
static float from_bits(uint32_t x) { float f; memcpy(&f, &x, 4); return f; }
static uint16_t ref_f2h(float f) {
    const uint32_t x = bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    if (isnan(f)) return sign | 0x7e00 | ((x >> 13) & 0x3ff);   // quieted, top of the payload
    const double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00;                       // rounds past 65504: infinity
    if (a == 0) return sign;
    int e;
    frexp(a, &e);                                                  // 2^(e-1) ≤ a < 2^e
    const int ex = e - 1;
    const double quantum = ex < -14 ? ldexp(1, -24) : ldexp(1, ex - 10);
    int r = (int)nearbyint(a / quantum);                           // to nearest even (exact quotient)
    if (ex < -14) return sign | (uint16_t)r;                      // subnormal (1024: the least normal)
    int E = ex + 15;
    if (r == 2048) { r = 1024; E++; }
    return sign | (uint16_t)(E << 10) | (uint16_t)(r - 1024);
}
static uint32_t ref_h2f_bits(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 31) return sign | 0x7f800000 | (m ? 0x400000 | (m << 13) : 0);
    const double a = e == 0 ? ldexp((double)m, -24) : ldexp((double)(1024 + m), (int)e - 25);
    return sign | bits((float)a);
}

// kv_f16_to_f32 on all 65536 patterns, kv_f32_to_f16 on every tie and its neighbours, a stride
// through all 2^32 floats, and the edges; lengths 1..19 exercise the vector tails.
static void check_f16(void) {
    static uint16_t h[65536];
    static float f[65536];
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    kv_f16_to_f32(h, f, 65536);
    int bad = 0;
    for (int i = 0; i < 65536; i++) bad += bits(f[i]) != ref_h2f_bits((uint16_t)i);
    check(bad == 0, "f16 -> f32: all 65536 values exact, NaNs quieted");
    printf("digest f16-to-f32 %016" PRIx64 "\n", fnv(f, sizeof f, 0xcbf29ce484222325ull));

    enum { N = 6 * 0x7c00 + 65536 + 64 };
    static float x[N];
    static uint16_t y[N];
    int m = 0;
    for (uint32_t i = 0; i < 0x7c00; i++) {         // finite f16 values and the midpoints above them
        const float lo = from_bits(ref_h2f_bits((uint16_t)i)), hi = from_bits(ref_h2f_bits((uint16_t)(i + 1)));
        const float mid = lo + (hi - lo) / 2;         // exact: one bit more than f16 has
        x[m++] = mid; x[m++] = nextafterf(mid, 0); x[m++] = nextafterf(mid, INFINITY);
        x[m++] = -mid; x[m++] = -lo; x[m++] = nextafterf(lo, INFINITY);
    }
    for (uint64_t i = 0; i < 65536; i++) x[m++] = from_bits((uint32_t)(i * 65537u + (uint32_t)(i >> 3)));   // all exponents
    const float edges[] = { 0.0f, -0.0f, 65504.0f, 65519.996f, 65520.0f, -65520.0f, 1e30f, INFINITY, -INFINITY,
                            5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 1e-40f, -1e-45f, 6.1035156e-5f, 6.1035152e-5f,
                            from_bits(0x7fc00000), from_bits(0xffc01234), from_bits(0x7f800001), from_bits(0x7fa5a5a5) };
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) x[m++] = edges[i];
    kv_f32_to_f16(x, y, (size_t)m);
    bad = 0;
    for (int i = 0; i < m; i++) if (y[i] != ref_f2h(x[i])) { if (bad++ < 5) printf("  f32 %08x -> f16 %04x, expected %04x\n", bits(x[i]), y[i], ref_f2h(x[i])); }
    check(bad == 0, "f32 -> f16: ties to even, subnormals, overflow, NaNs");
    printf("digest f32-to-f16 %016" PRIx64 "\n", fnv(y, sizeof(uint16_t) * (size_t)m, 0xcbf29ce484222325ull));
    bad = 0;
    for (int len = 1; len < 20; len++) {
        uint16_t t[20];
        float back[20];
        kv_f32_to_f16(x + 7 * len, t, (size_t)len);
        kv_f16_to_f32(t, back, (size_t)len);
        for (int i = 0; i < len; i++) bad += t[i] != y[7 * len + i] || bits(back[i]) != ref_h2f_bits(t[i]);
    }
    check(bad == 0, "conversions of 1..19 values (vector tails) equal the long ones");
}

int main(void) {
    enum { NQ = 5, DH = 64, SLOTS = 300 };
    const size_t ld = DH;
    check_f16();
    // K and V as the cache holds them: f16.
    float *Kf = malloc(sizeof(float) * SLOTS * ld), *Vf = malloc(sizeof(float) * SLOTS * ld);
    uint16_t *K = malloc(sizeof(uint16_t) * SLOTS * ld), *V = malloc(sizeof(uint16_t) * SLOTS * ld);
    for (int i = 0; i < SLOTS * DH; i++) { Kf[i] = uniform(); Vf[i] = uniform(); }
    kv_f32_to_f16(Kf, K, SLOTS * ld);
    kv_f32_to_f16(Vf, V, SLOTS * ld);
    int32_t slot_pos[SLOTS];
    for (int j = 0; j < SLOTS; j++) slot_pos[j] = j < 200 ? j : 400 + (j - 200);   // a moved block after a gap
    slot_pos[17] = 250;                                                              // one key from the future
    float q[NQ][DH];
    for (int i = 0; i < NQ; i++) for (int d = 0; d < DH; d++) q[i][d] = uniform() * 2;
    const float *qp[NQ]; for (int i = 0; i < NQ; i++) qp[i] = q[i];
    const int32_t qpos[NQ] = { 5, 199, 420, 498, 120 };
    const int32_t n[NQ] = { 6, 200, 221, 300, 121 };
    float scores[NQ * SLOTS], all[NQ][DH], one[DH];
    float *outs[NQ]; for (int i = 0; i < NQ; i++) outs[i] = all[i];
    kv_attend(NQ, qp, qpos, n, K, V, ld, slot_pos, 0.125f, DH, scores, SLOTS, outs);
    uint64_t h = fnv(all, sizeof all, 0xcbf29ce484222325ull);
    printf("digest-simd attend %016" PRIx64 "\n", h);
    for (int i = 0; i < NQ; i++) {
        float *o1[1] = { one };
        kv_attend(1, &qp[i], &qpos[i], &n[i], K, V, ld, slot_pos, 0.125f, DH, scores, SLOTS, o1);
        char what[96]; snprintf(what, sizeof what, "query head %d alone equals it in a group of %d", i, NQ);
        check(memcmp(one, all[i], sizeof one) == 0, what);
    }
    // Pairs in another order: head 3 with head 0.
    { const float *qq[2] = { qp[3], qp[0] }; const int32_t pp[2] = { qpos[3], qpos[0] }, nn[2] = { n[3], n[0] };
      float a[DH], b[DH]; float *o2[2] = { a, b };
      kv_attend(2, qq, pp, nn, K, V, ld, slot_pos, 0.125f, DH, scores, SLOTS, o2);
      check(memcmp(a, all[3], sizeof a) == 0 && memcmp(b, all[0], sizeof b) == 0, "heads 3 and 0 as a pair"); }

    // The three phases, shared out as one decode step shares them: scores by key ranges (cut at
    // multiples of 8, in reverse order), weights per head, values by 16-lane ranges.
    for (int nq = 1; nq <= NQ; nq++) {
        float ph[NQ][DH], sc[NQ * SLOTS];
        float *po[NQ]; for (int i = 0; i < NQ; i++) po[i] = ph[i];
        const int cuts[] = { 296, 104, 8, 0 };
        int hi = SLOTS;
        for (int c = 0; c < 4; c++) { kv_attend_scores(nq, qp, qpos, n, K, ld, slot_pos, 0.125f, DH, cuts[c], hi, sc, SLOTS); hi = cuts[c]; }
        for (int i = 0; i < nq; i++) kv_attend_weights(sc + i * SLOTS, n[i]);
        for (int e = DH - 16; e >= 0; e -= 16) kv_attend_values(nq, sc, SLOTS, n, V, ld, DH, e, e + 16, po);
        float whole[NQ][DH];
        float *wo[NQ]; for (int i = 0; i < NQ; i++) wo[i] = whole[i];
        kv_attend(nq, qp, qpos, n, K, V, ld, slot_pos, 0.125f, DH, scores, SLOTS, wo);
        char what[96]; snprintf(what, sizeof what, "%d heads: the three phases, split by keys and lanes, equal kv_attend", nq);
        check(memcmp(ph, whole, sizeof(float) * DH * (size_t)nq) == 0 && memcmp(whole[nq - 1], all[nq - 1], sizeof one) == 0, what);
    }

    float x[1000], u[1000], w[1000], y[1000];
    for (int i = 0; i < 1000; i++) { x[i] = uniform() * 8; u[i] = uniform(); w[i] = uniform() + 1; }
    x[3] = -INFINITY;
    float sm[1000]; memcpy(sm, x, sizeof sm);
    kv_softmax(sm, 576);
    float sum = 0; for (int i = 0; i < 576; i++) sum += sm[i];
    check(sm[3] == 0 && fabsf(sum - 1) < 1e-4f, "softmax sums to 1 and -inf gives 0");
    printf("digest-simd softmax %016" PRIx64 "\n", fnv(sm, sizeof(float) * 576, 0xcbf29ce484222325ull));
    memcpy(sm, x, sizeof sm); sm[3] = 1;
    kv_silu_mul(sm, u, 576);
    printf("digest-simd silu %016" PRIx64 "\n", fnv(sm, sizeof(float) * 576, 0xcbf29ce484222325ull));
    kv_rmsnorm(x + 4, w, y, 576, 1e-5f);
    printf("digest rmsnorm %016" PRIx64 "\n", fnv(y, sizeof(float) * 576, 0xcbf29ce484222325ull));
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
