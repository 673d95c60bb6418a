// Every kv_qgemm path this CPU runs gives the portable path's bits, at every batch size, and a
// row's results do not depend on the batch it is in. Prints one digest line per check, so that
// builds for other CPUs (aarch64 under QEMU, x86 without AVX2) can be compared with this one, and
// ends with "N passed, N failed".
//
//   cc -O3 [-mavx2 -mfma -mf16c] -ISources/CKernels/include Tests/ckernels/qgemm_paths.c \
//      Sources/CKernels/qgemm.c -lm -o qgemm_paths && ./qgemm_paths
//
// `./qgemm_paths --bench` also times each path on one thread (512 rows × 576 inputs × 1536
// outputs, Q4_1 and Q8_0; median of 7) and prints the ratio to the first path listed.
#include "ckernels.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {   // SplitMix64
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float uniform(void) { return (float)((next() >> 40) * (1.0 / 16777216.0)) * 2 - 1; }
// An f16 bit pattern of a scale in about [2^-14, 2^-4), sign random: normal, as real scales are.
static uint16_t f16_scale(void) { return (uint16_t)(((next() & 1) << 15) | ((1 + next() % 10) << 10) | (next() & 0x3ff)); }

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    return h;
}

static int passed = 0, failed = 0;
static void check(int ok, const char *what) {
    if (ok) passed++; else { failed++; printf("FAIL %s\n", what); }
}

static double seconds(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static void bench(void) {
    const int m = 512, k = 576, n = 1536, nb = k / 32, groups = n / 8;
    uint8_t *src = malloc((size_t)n * nb * 34), *w4 = malloc(groups * kv_qpack_group_bytes(KV_Q4, k)),
            *w8 = malloc(groups * kv_qpack_group_bytes(KV_Q8, k));
    for (size_t i = 0; i < (size_t)n * nb * 34; i++) src[i] = (uint8_t)next();
    for (int i = 0; i < n * nb; i++) { uint16_t d = f16_scale(); memcpy(src + 34 * i, &d, 2); }
    kv_qpack_q8_0(src, (size_t)nb * 34, n, k, w8);
    for (int i = 0; i < n * nb; i++) { uint16_t d = f16_scale(), mm = f16_scale(); memcpy(src + 20 * i, &d, 2); memcpy(src + 20 * i + 2, &mm, 2); }
    kv_qpack_q4_1(src, (size_t)nb * 20, n, k, 0, w4);
    float *x = malloc(sizeof(float) * m * k), *c = malloc(sizeof(float) * m * n);
    for (int i = 0; i < m * k; i++) x[i] = uniform();
    int8_t *qa = malloc((size_t)m * k); float *da = malloc(sizeof(float) * m * nb), *sa = malloc(sizeof(float) * m * nb);
    kv_quantize_rows(x, k, m, k, qa, da, sa, NULL, NULL, NULL);
    char paths[128]; snprintf(paths, sizeof paths, "%s", kv_qgemm_paths());
    double first[2] = { 0, 0 };
    for (char *path = strtok(paths, ","); path; path = strtok(NULL, ",")) {
        if (strcmp(path, "portable") == 0) continue;
        kv_qgemm_select(path);
        for (int f = 0; f < 2; f++) {
            double t[7];
            for (int r = 0; r < 7; r++) {
                const double t0 = seconds();
                kv_qgemm(f ? KV_Q8 : KV_Q4, f ? w8 : w4, n, k, 0, groups, qa, da, sa, m, c, n);
                t[r] = seconds() - t0;
            }
            qsort(t, 7, sizeof t[0], cmpd);
            const double gops = 2.0 * m * n * k / t[3] / 1e9;
            if (first[f] == 0) first[f] = t[3];
            printf("bench %-12s %s  %7.2f ms  %6.1f GOP/s  (range %.2f–%.2f ms)  %.2fx the first path\n", path,
                   f ? "q8_0" : "q4_1", t[3] * 1e3, gops, t[0] * 1e3, t[6] * 1e3, first[f] / t[3]);
        }
    }
    kv_qgemm_select(NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) { bench(); return 0; }
    const int n = 44, k = 320, nb = k / 32, groups = (n + 7) / 8, maxrows = 29;
    // GGUF-layout Q4_1, Q4_0 and Q8_0 rows, packed.
    uint8_t *q41 = malloc((size_t)n * nb * 20), *q40 = malloc((size_t)n * nb * 18), *q80 = malloc((size_t)n * nb * 34);
    for (int i = 0; i < n * nb; i++) {
        uint8_t *b = q41 + 20 * i; uint16_t d = f16_scale(), m = f16_scale();
        memcpy(b, &d, 2); memcpy(b + 2, &m, 2); for (int j = 4; j < 20; j++) b[j] = (uint8_t)next();
        b = q40 + 18 * i; d = f16_scale(); memcpy(b, &d, 2); for (int j = 2; j < 18; j++) b[j] = (uint8_t)next();
        b = q80 + 34 * i; d = f16_scale(); memcpy(b, &d, 2); for (int j = 2; j < 34; j++) b[j] = (uint8_t)next();
    }
    uint8_t *w[3];
    w[0] = malloc(groups * kv_qpack_group_bytes(KV_Q4, k)); kv_qpack_q4_1(q41, (size_t)nb * 20, n, k, 0, w[0]);
    w[1] = malloc(groups * kv_qpack_group_bytes(KV_Q4, k)); kv_qpack_q4_1(q40, (size_t)nb * 18, n, k, 1, w[1]);
    w[2] = malloc(groups * kv_qpack_group_bytes(KV_Q8, k)); kv_qpack_q8_0(q80, (size_t)nb * 34, n, k, w[2]);
    const int fmt[3] = { KV_Q4, KV_Q4, KV_Q8 };
    const char *fname[3] = { "q4_1", "q4_0", "q8_0" };

    // Activations with outliers, an all-zero block, exact halves; quantised plainly and precisely.
    float *x = malloc(sizeof(float) * maxrows * k);
    for (int i = 0; i < maxrows * k; i++) x[i] = uniform() * 3;
    for (int i = 0; i < maxrows * k; i += 97) x[i] *= 40;
    for (int i = 64; i < 96; i++) x[i] = 0;
    for (int i = 0; i < 32; i++) x[k + i] = (float)(i - 16) + 0.5f;
    int8_t *qa = malloc(maxrows * k), *lo = malloc(maxrows * k);
    float *da = malloc(sizeof(float) * maxrows * nb), *sa = malloc(sizeof(float) * maxrows * nb);
    float *dl = malloc(sizeof(float) * maxrows * nb), *sl = malloc(sizeof(float) * maxrows * nb);
    kv_quantize_rows(x, k, maxrows, k, qa, da, sa, lo, dl, sl);
    uint64_t hq = fnv(qa, maxrows * k, 0xcbf29ce484222325ull);
    hq = fnv(da, sizeof(float) * maxrows * nb, hq); hq = fnv(sa, sizeof(float) * maxrows * nb, hq);
    hq = fnv(lo, maxrows * k, hq); hq = fnv(dl, sizeof(float) * maxrows * nb, hq); hq = fnv(sl, sizeof(float) * maxrows * nb, hq);
    printf("digest quantize %016" PRIx64 "\n", hq);

    // Reference: the portable path, all rows in one batch.
    float *ref = malloc(sizeof(float) * 3 * maxrows * n), *got = malloc(sizeof(float) * maxrows * n);
    check(kv_qgemm_select("portable") == 0, "portable path selectable");
    for (int f = 0; f < 3; f++) {
        kv_qgemm(fmt[f], w[f], n, k, 0, groups, qa, da, sa, maxrows, ref + (size_t)f * maxrows * n, n);
        uint64_t h = fnv(ref + (size_t)f * maxrows * n, sizeof(float) * maxrows * n, 0xcbf29ce484222325ull);
        printf("digest qgemm %s %016" PRIx64 "\n", fname[f], h);
    }
    char paths[128]; snprintf(paths, sizeof paths, "%s", kv_qgemm_paths());
    printf("paths %s\n", paths);
    const int batches[] = { 1, 3, 4, 5, 8, 29 };
    for (char *path = strtok(paths, ","); path; path = strtok(NULL, ",")) {
        char what[160];
        snprintf(what, sizeof what, "%s selectable", path);
        check(kv_qgemm_select(path) == 0 && strcmp(kv_qgemm_path(), path) == 0, what);
        for (int f = 0; f < 3; f++)
            for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
                const int rows = batches[bi];
                // Rows [m0, m0 + rows) as one batch, all groups split in two calls as the workers do.
                for (int m0 = 0; m0 + rows <= maxrows; m0 += rows) {
                    kv_qgemm(fmt[f], w[f], n, k, 0, groups / 2, qa + (size_t)m0 * k, da + (size_t)m0 * nb,
                             sa + (size_t)m0 * nb, rows, got + (size_t)m0 * n, n);
                    kv_qgemm(fmt[f], w[f], n, k, groups / 2, groups, qa + (size_t)m0 * k, da + (size_t)m0 * nb,
                             sa + (size_t)m0 * nb, rows, got + (size_t)m0 * n, n);
                }
                const int covered = maxrows / rows * rows;
                int bad = -1;
                for (int i = 0; i < covered * n && bad < 0; i++)
                    if (memcmp(&got[i], &ref[(size_t)f * maxrows * n + i], 4) != 0) bad = i;
                snprintf(what, sizeof what, "%s %s batch %d equals portable bit for bit", path, fname[f], rows);
                if (bad >= 0)
                    printf("  first mismatch: row %d col %d: %.9g vs portable %.9g\n", bad / n, bad % n,
                           got[bad], ref[(size_t)f * maxrows * n + bad]);
                check(bad < 0, what);
            }
    }
    kv_qgemm_select(NULL);
    printf("best %s\n", kv_qgemm_path());
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
