/* A tiny test harness: no framework, one closing line "N passed, N failed, N skipped", exit
   status 1 on any failure. Usage:

       static void test_something(void) { CHECK(1 + 1 == 2, "arithmetic: got %d", 1 + 1); }
       int main(void) { RUN(test_something); return harness_done("test_example"); }

   A test passes when none of its CHECKs failed; SKIP("why") marks it skipped and returns. */
#ifndef DISTILL_TEST_HARNESS_H
#define DISTILL_TEST_HARNESS_H
#include <stdio.h>
#include <string.h>
#include <math.h>

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

#define SKIP(...)                                                          \
    do {                                                                   \
        harness_cur_skipped = 1;                                           \
        printf("    skip: ");                                              \
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
    printf("%s: %d passed, %d failed, %d skipped\n", name, harness_passed, harness_failed,
           harness_skipped);
    return harness_failed ? 1 : 0;
}
#endif
