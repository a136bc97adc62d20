/* A tiny test harness: no framework, one closing line "N passed, N failed, N skipped", exit
   status 1 on any failure. Usage:

       static void test_something(void) { CHECK(1 + 1 == 2, "arithmetic: got %d", 1 + 1); }
       int main(void) { RUN(test_something); return harness_done("test_example"); }

   A test passes when none of its CHECKs failed; SKIP("why") marks it skipped and returns;
   REQUIRE(cond, ...) is a CHECK that returns from the test when it fails (a failed setup).
   With DISTILL_TEST_STRICT=1 in the environment (CI, which has ../shared/data) every SKIP is a
   failure. A test may skip only when an optional file is absent (harness_have(path) == 0); a
   file that is present but fails to load is a failed CHECK. */
#ifndef DISTILL_TEST_HARNESS_H
#define DISTILL_TEST_HARNESS_H
#include <stdio.h>
#include <string.h>
#include <math.h>
#include <stdlib.h>

static int harness_passed, harness_failed, harness_skipped;
static int harness_cur_failed, harness_cur_skipped;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            harness_cur_failed++;                                          \
            printf("    FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
            fflush(stdout);                                                \
        }                                                                  \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, rtol, atol, what)                                          \
    do {                                                                             \
        double ca_ = (double)(a), cb_ = (double)(b);                                 \
        CHECK(fabs(ca_ - cb_) <= (atol) + (rtol) * fabs(cb_) && ca_ == ca_,          \
              "%s: got %.9g, want %.9g (diff %.3g)", (what), ca_, cb_, fabs(ca_ - cb_)); \
    } while (0)

/* CHECK that returns from the test on failure; cond is evaluated once */
#define REQUIRE(cond, ...)                                                 \
    do {                                                                   \
        if (!(cond)) {                                                     \
            harness_cur_failed++;                                          \
            printf("    FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
            fflush(stdout);                                                \
            return;                                                        \
        }                                                                  \
    } while (0)

/* 1 under DISTILL_TEST_STRICT=1: a skip is a failure */
static int harness_strict(void) {
    const char *s = getenv("DISTILL_TEST_STRICT");
    return s && s[0] && strcmp(s, "0") != 0;
}

/* 1 if path can be opened for reading (an optional input such as ../shared/data/...) */
static int harness_have(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

#define SKIP(...)                                                          \
    do {                                                                   \
        harness_cur_skipped = 1;                                           \
        if (harness_strict()) harness_cur_failed++;                        \
        printf(harness_strict() ? "    FAIL (DISTILL_TEST_STRICT) skip: " : "    skip: "); \
        printf(__VA_ARGS__);                                               \
        printf("\n");                                                      \
        return;                                                            \
    } while (0)

#define RUN(fn)                                                            \
    do {                                                                   \
        harness_cur_failed = 0;                                            \
        harness_cur_skipped = 0;                                           \
        printf("  %s\n", #fn);                                             \
        fflush(stdout);                                                    \
        fn();                                                              \
        if (harness_cur_failed) harness_failed++;                          \
        else if (harness_cur_skipped) harness_skipped++;                   \
        else harness_passed++;                                             \
    } while (0)

static int harness_done(const char *name) {
    (void)harness_have;   /* not every test needs an optional file or skips */
    (void)harness_strict;
    printf("%s: %d passed, %d failed, %d skipped\n", name, harness_passed, harness_failed,
           harness_skipped);
    return harness_failed ? 1 : 0;
}
#endif
