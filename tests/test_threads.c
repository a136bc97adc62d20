/* The thread pool: every index exactly once for any n/chunk/thread count, thread indices in
   range, nested parallel_for runs serially on the calling worker (no deadlock), the pool
   restarts after distill_set_threads, and many tiny jobs in a row (the spin/sleep handoff). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

typedef struct {
    int *hits;
    int max_thread;
    int bad_thread;
    int n_threads;
} cover_ctx;

static void cover_task(void *vctx, int64_t b, int64_t e, int thread) {
    cover_ctx *c = (cover_ctx *)vctx;
    int64_t i;
    if (thread < 0 || thread >= c->n_threads) c->bad_thread = 1; /* benign race: only ever set to 1 */
    for (i = b; i < e; i++) c->hits[i]++;
}

static void test_cover_exactly_once(void) {
    static const int64_t ns[] = {0, 1, 2, 3, 7, 64, 1000, 4099};
    static const int64_t chunks[] = {0, 1, 3, 64, 5000};
    int nt;
    size_t a, b;
    int *hits = (int *)calloc(4099, sizeof(int));
    for (nt = 1; nt <= 4; nt++) {
        distill_set_threads(nt);
        CHECK(distill_get_threads() == nt, "get_threads %d after set %d", distill_get_threads(), nt);
        for (a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (b = 0; b < sizeof chunks / sizeof chunks[0]; b++) {
                cover_ctx c;
                int64_t i;
                memset(hits, 0, 4099 * sizeof(int));
                c.hits = hits; c.bad_thread = 0; c.n_threads = nt; c.max_thread = 0;
                distill_parallel_for(ns[a], chunks[b], cover_task, &c);
                for (i = 0; i < ns[a]; i++) if (hits[i] != 1) break;
                CHECK(i == ns[a], "threads=%d n=%lld chunk=%lld: index %lld hit %d times", nt,
                      (long long)ns[a], (long long)chunks[b], (long long)i, i < ns[a] ? hits[i] : 0);
                CHECK(!c.bad_thread, "thread index out of range");
            }
    }
    distill_set_threads(0);
    free(hits);
}

/* A task that itself calls parallel_for: the inner loop must run (serially) and finish. */
typedef struct { int *hits; int inner_n; int bad; } nest_ctx;
typedef struct { int *row; int outer_thread; int *bad; } inner_ctx;
static void inner_task(void *vctx, int64_t b, int64_t e, int thread) {
    inner_ctx *c = (inner_ctx *)vctx;
    int64_t i;
    if (thread != c->outer_thread) *c->bad = 1;
    for (i = b; i < e; i++) c->row[i]++;
}
static void outer_task(void *vctx, int64_t b, int64_t e, int thread) {
    nest_ctx *c = (nest_ctx *)vctx;
    int64_t i;
    for (i = b; i < e; i++) {
        inner_ctx in;
        in.row = c->hits + i * c->inner_n;
        in.outer_thread = thread;
        in.bad = &c->bad;
        distill_parallel_for(c->inner_n, 3, inner_task, &in);
    }
}
static void test_nested_runs_serially(void) {
    nest_ctx c;
    int i, n = 16 * 10;
    c.inner_n = 10; c.bad = 0;
    c.hits = (int *)calloc((size_t)n, sizeof(int));
    distill_set_threads(2);
    distill_parallel_for(16, 1, outer_task, &c);
    for (i = 0; i < n; i++) if (c.hits[i] != 1) break;
    CHECK(i == n, "nested: index %d hit %d times", i, i < n ? c.hits[i] : 0);
    CHECK(!c.bad, "nested call did not run on the worker that issued it");
    distill_set_threads(0);
    free(c.hits);
}

/* Many tiny jobs back to back, with pauses long enough for the workers to fall asleep. */
typedef struct { int64_t sum[64]; } sum_ctx;
static void sum_task(void *vctx, int64_t b, int64_t e, int thread) {
    sum_ctx *c = (sum_ctx *)vctx;
    int64_t i;
    for (i = b; i < e; i++) c->sum[thread] += i;
}
static void test_many_small_jobs(void) {
    int job, t;
    int64_t total = 0;
    distill_set_threads(2);
    for (job = 0; job < 20000; job++) {
        sum_ctx c;
        memset(&c, 0, sizeof c);
        distill_parallel_for(8, 1, sum_task, &c);
        for (t = 0, total = 0; t < 64; t++) total += c.sum[t];
        if (total != 28) break;
        if (job % 5000 == 4999) { /* let the workers go to sleep, then wake them */
            struct timespec ts;
            ts.tv_sec = 0; ts.tv_nsec = 20 * 1000 * 1000;
            nanosleep(&ts, NULL);
        }
    }
    CHECK(job == 20000, "job %d: sum %lld, want 28", job, (long long)total);
    distill_set_threads(0);
}

static void test_env_and_default(void) {
    distill_set_threads(0);
    CHECK(distill_get_threads() >= 1 && distill_get_threads() <= 64, "default threads %d", distill_get_threads());
    distill_set_threads(1000);
    CHECK(distill_get_threads() == 64, "clamped to 64, got %d", distill_get_threads());
    distill_set_threads(0);
}

#if !defined(DISTILL_NO_THREADS)
#include <sys/wait.h>
/* A child forked after the pool started must start its own workers (the parent's do not exist
   in the child): before the pthread_atfork handler its first parallel_for hung forever. */
static void fork_sum_task(void *ctx, int64_t b, int64_t e, int th) {
    int64_t *acc = (int64_t *)ctx, i, s = 0;
    (void)th;
    for (i = b; i < e; i++) s += i;
    __atomic_fetch_add(acc, s, __ATOMIC_RELAXED);
}
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
static void test_fork_after_start(void) {
    int64_t acc = 0;
    pid_t pid;
    int status = 0, waited = 0;
#ifdef UNDER_TSAN
    SKIP("ThreadSanitizer does not support starting threads after a multi-threaded fork");
#endif
    if (getenv("DISTILL_TEST_NO_FORK"))
        SKIP("DISTILL_TEST_NO_FORK is set (qemu-user cannot start threads after a threaded fork)");
    distill_set_threads(2);
    distill_parallel_for(1000, 10, fork_sum_task, &acc);
    CHECK(acc == 499500, "parent sum %lld", (long long)acc);
    pid = fork();
    if (pid == 0) {
        int64_t a2 = 0;
        alarm(20); /* a hang becomes a failure */
        distill_parallel_for(1000, 10, fork_sum_task, &a2);
        _exit(a2 == 499500 ? 0 : 3);
    }
    CHECK(pid > 0, "fork failed");
    if (pid > 0) { waitpid(pid, &status, 0); waited = 1; }
    CHECK(waited && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    distill_set_threads(0);
}
#endif

/* The op profile: counts each op by name and shape, leaves the results bit-identical, and
   prints one row per op and per family (no timing is asserted). */
static void test_profile_counts_ops(void) {
    enum { M = 37, N = 19, K = 23 };
    static float a[M * K], w[N * K], o1[M * N], o2[M * N];
    char buf[8192], line[256];
    FILE *f;
    size_t len;
    int i, found = 0, fam = 0;
    for (i = 0; i < M * K; i++) a[i] = (float)((i * 7) % 11) - 5.0f;
    for (i = 0; i < N * K; i++) w[i] = (float)((i * 5) % 13) - 6.0f;
    distill_set_threads(2);
    distill_matmul_forward(o1, a, w, NULL, M, K, N);
    distill_profile_start();
    for (i = 0; i < 3; i++) distill_matmul_forward(o2, a, w, NULL, M, K, N);
    distill_profile_stop();
    distill_matmul_forward(o2, a, w, NULL, M, K, N);   /* stopped: not counted */
    CHECK(memcmp(o1, o2, sizeof o1) == 0, "profiling changed the result");
    f = tmpfile();
    CHECK(f != NULL, "tmpfile");
    if (!f) return;
    distill_profile_print(f, 1.0, 1);
    rewind(f);
    len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = 0;
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "matmul fwd [37x19x23]", 21)) found = strstr(line, " 3.0 ") != NULL;
        if (!strncmp(line, "matmul fwd ", 11) && line[11] == ' ') fam = 1;
    }
    fclose(f);
    CHECK(found, "no row 'matmul fwd [37x19x23]' with 3 calls in:\n%s", buf);
    CHECK(fam, "no family row 'matmul fwd' in:\n%s", buf);
    distill_set_threads(0);
}

int main(void) {
    RUN(test_cover_exactly_once);
    RUN(test_nested_runs_serially);
    RUN(test_many_small_jobs);
    RUN(test_profile_counts_ops);
    RUN(test_env_and_default);
#if !defined(DISTILL_NO_THREADS)
    RUN(test_fork_after_start);
#endif
    return harness_done("test_threads");
}
