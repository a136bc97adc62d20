/* Platform layer: RNG determinism and distribution, aligned allocation, atomic file writes. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

static void test_rng(void) {
    distill_rng a, b;
    double s = 0, s2 = 0;
    int i, n = 200000, same = 1;
    distill_rng_seed(&a, 42);
    distill_rng_seed(&b, 42);
    for (i = 0; i < 1000; i++) same &= distill_rng_u64(&a) == distill_rng_u64(&b);
    CHECK(same, "same seed must give the same stream");
    distill_rng_seed(&b, 43);
    CHECK(distill_rng_u64(&a) != distill_rng_u64(&b), "different seeds should differ");
    for (i = 0; i < n; i++) { double x = distill_rng_normal(&a); s += x; s2 += x * x; }
    CHECK(fabs(s / n) < 0.01, "normal mean %g", s / n);
    CHECK(fabs(s2 / n - 1.0) < 0.02, "normal variance %g", s2 / n);
    for (i = 0; i < 1000; i++) { uint64_t k = distill_rng_below(&a, 7); if (k >= 7) { CHECK(0, "below(7) gave %llu", (unsigned long long)k); break; } }
}

static void test_aligned(void) {
    int i;
    for (i = 0; i < 50; i++) {
        size_t al = (size_t)1 << (i % 8 + 3);
        unsigned char *p = (unsigned char *)distill_alloc_aligned((size_t)i * 13 + 1, al);
        CHECK(p != NULL, "alloc");
        CHECK(((uintptr_t)p & (al - 1)) == 0, "alignment %zu", al);
        CHECK(p[0] == 0, "zeroed");
        distill_free_aligned(p);
    }
    CHECK(distill_alloc_aligned((size_t)-1, 64) == NULL, "overflow must fail");
}

static void test_atomic_file(void) {
    distill_error err;
    size_t n = 0;
    char *back;
    const char *path = "build/test_platform_atomic.txt";
    CHECK(distill_write_file_atomic(path, "hello", 5, &err) == 0, "%s", err.msg);
    back = (char *)distill_read_file(path, &n, &err);
    CHECK(back && n == 5 && memcmp(back, "hello", 5) == 0, "read back");
    distill_free(back);
    CHECK(distill_write_file_atomic("/nonexistent-dir/x", "a", 1, &err) != 0, "must fail");
    CHECK(strstr(err.msg, "/nonexistent-dir/x") != NULL, "error names the file: %s", err.msg);
    CHECK(distill_read_file("/nonexistent-file", &n, &err) == NULL, "must fail");
    CHECK(strstr(err.msg, "/nonexistent-file") != NULL, "error names the file: %s", err.msg);
    remove(path);
}

int main(void) {
    RUN(test_rng);
    RUN(test_aligned);
    RUN(test_atomic_file);
    return harness_done("test_platform");
}
