// Attention, softmax, SiLU and RMSNorm kernels (ckernels.c): a query head's attention output has
// the same bits alone or in any group of heads, and the printed digests let builds for other CPUs
// be compared with this one (the AVX2 and NEON paths must agree bit for bit; the portable C path
// sums in another order). Ends with "N passed, N failed".
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

int main(void) {
    enum { NQ = 5, DH = 64, SLOTS = 300 };
    const size_t ld = DH;
    float *K = malloc(sizeof(float) * SLOTS * ld), *V = malloc(sizeof(float) * SLOTS * ld);
    for (int i = 0; i < SLOTS * DH; i++) { K[i] = uniform(); V[i] = uniform(); }
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
