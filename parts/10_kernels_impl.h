/* ===================================================================================== */
/* THREADS AND KERNELS                                                                    */
/* ===================================================================================== */
/* Nearly all the FLOPs of training are three matrix products per linear layer (forward, dX,
   dW). This part makes them fast on an ordinary CPU:

     1. a thread pool (the only mutable global state of the library),
     2. a small vector-macro layer (AVX-512, AVX2+FMA, NEON, scalar) over which each SIMD kernel
        is written once and instantiated per instruction set,
     3. a blocked, packed matrix product with a register-blocked micro-kernel, threaded over
        output tiles so that every output element is computed by the same sequence of
        floating-point operations whatever the number of threads (bit-identical results),
     4. the vector primitives the model's ops are written with (dot, axpy, max, exp-sum),
     5. an optional OpenBLAS path (DISTILL_OPENBLAS).

   The instruction set is chosen once at run time (CPUID through __builtin_cpu_supports), so a
   binary built with plain -O2 uses AVX2/AVX-512 where the CPU has them and never executes an
   instruction the CPU lacks. The environment variable DISTILL_SIMD=scalar|avx2|avx512|neon
   forces a kernel set (for benchmarks and tests), as does distill_set_simd(). */

#if !defined(DISTILL_NO_THREADS)
#include <pthread.h>
#endif
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define DISTILL__X86 1
#include <immintrin.h>
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define DISTILL__NEON 1
#include <arm_neon.h>
#endif
#ifdef DISTILL_OPENBLAS
#include <cblas.h>
#endif

#define DISTILL__MAX_THREADS 64

/* ------------------------------------------------------------------------------------- */
/* Atomics. GCC and clang have __atomic builtins in every language mode (C99 -pedantic and  */
/* C++ included); other compilers get a mutex-protected fallback.                          */
/* ------------------------------------------------------------------------------------- */
#if !defined(DISTILL_NO_THREADS) && !(defined(__GNUC__) || defined(__clang__))
static pthread_mutex_t distill__atomic_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t distill__atomic_rmw(int64_t *p, int64_t add, int store, int64_t v) {
    int64_t old;
    pthread_mutex_lock(&distill__atomic_mu);
    old = *p;
    *p = store ? v : old + add;
    pthread_mutex_unlock(&distill__atomic_mu);
    return old;
}
#define DISTILL__LOAD(p) distill__atomic_rmw((p), 0, 0, 0)
#define DISTILL__STORE(p, v) ((void)distill__atomic_rmw((p), 0, 1, (v)))
#define DISTILL__FETCH_ADD(p, v) distill__atomic_rmw((p), (v), 0, 0)
#define DISTILL__PAUSE() ((void)0)
#else
#define DISTILL__LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define DISTILL__STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define DISTILL__FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#if defined(DISTILL__X86)
#define DISTILL__PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define DISTILL__PAUSE() __asm__ __volatile__("yield")
#else
#define DISTILL__PAUSE() ((void)0)
#endif
#endif

/* ------------------------------------------------------------------------------------- */
/* The pool.                                                                               */
/*                                                                                         */
/* Workers 1..n-1 are persistent threads; the calling thread is worker 0. A job is          */
/* published by bumping `gen`; every worker then takes chunk indices from the shared atomic */
/* counter `next` until they run out and decrements `pending`. Waiting is a short spin      */
/* (consecutive jobs of a training step follow each other within microseconds) and then a  */
/* sleep on a condition variable, so an idle pool costs nothing.                            */
/*                                                                                         */
/* Thread safety: distill_parallel_for (and everything built on it: the matmuls, the model) */
/* may be called from one user thread at a time. A parallel_for issued from inside a task   */
/* (nested) runs serially on the worker that issued it, passing that worker's index, so it  */
/* never deadlocks and per-thread scratch stays private.                                    */
/* ------------------------------------------------------------------------------------- */
typedef struct distill__isa_ops distill__isa_ops;

#if defined(__GNUC__) || defined(__clang__)
#define DISTILL__ALIGN64 __attribute__((aligned(64)))
#else
#define DISTILL__ALIGN64
#endif

typedef struct distill__pool {
    int n_threads;                  /* resolved thread count, 0 = not yet resolved */
    int running;                    /* workers 1..running-1 exist */
    const distill__isa_ops *ops;    /* chosen kernel set, NULL = not yet chosen */
    int blas_init;
    int no_blas;                    /* 1: distill_set_blas(0), use our kernels */
    /* per-thread packing scratch of the matmul (each thread only touches its own slot) */
    float *scratch[DISTILL__MAX_THREADS];
    size_t scratch_floats[DISTILL__MAX_THREADS];
#if !defined(DISTILL_NO_THREADS)
    pthread_t tid[DISTILL__MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    /* the current job (written by worker 0 before `gen` is bumped) */
    distill_task_fn fn;
    void *ctx;
    int64_t n, chunk, n_chunks;
    int64_t start_gen;              /* gen when the workers were created */
    int atfork_registered;
    int scratch_reserved;           /* slots 0..scratch_reserved-1 hold full-size scratch */
    /* the counters the workers hammer, each on its own cache line. They must also be 8-byte
       aligned: on i386 an int64_t member may sit at 4 mod 8, and a 64-bit atomic that
       straddles a cache line is not atomic there (the -m32 build deadlocked). */
    char pad0[64];
    DISTILL__ALIGN64 int64_t next;
    DISTILL__ALIGN64 int64_t pending;
    DISTILL__ALIGN64 int64_t gen;
    DISTILL__ALIGN64 int64_t busy;  /* 1 while a job runs: parallel_for calls now are nested */
    int64_t quit;
#endif
} distill__pool;

static distill__pool distill__the_pool;

static int distill__default_threads(void) {
    int n = 1;
    const char *env = getenv("DISTILL_THREADS");
    if (env && *env) {
        n = atoi(env);
    } else {
#if defined(_SC_NPROCESSORS_ONLN) && !defined(DISTILL_NO_THREADS)
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)(c < DISTILL__MAX_THREADS ? c : DISTILL__MAX_THREADS) : 1;
#endif
    }
    if (n < 1) n = 1;
    if (n > DISTILL__MAX_THREADS) n = DISTILL__MAX_THREADS;
    return n;
}

#if !defined(DISTILL_NO_THREADS)
#define DISTILL__SPIN 20000

static void distill__run_chunks(distill__pool *P, int thread) {
    for (;;) {
        int64_t i = DISTILL__FETCH_ADD(&P->next, 1), b, e;
        if (i >= P->n_chunks) break;
        b = i * P->chunk;
        e = b + P->chunk < P->n ? b + P->chunk : P->n;
        P->fn(P->ctx, b, e, thread);
    }
}

static void *distill__worker(void *arg) {
    distill__pool *P = &distill__the_pool;
    int id = (int)(intptr_t)arg;
    int64_t seen = P->start_gen;
    for (;;) {
        int64_t g;
        int spins = 0;
        while ((g = DISTILL__LOAD(&P->gen)) == seen && spins < DISTILL__SPIN) {
            DISTILL__PAUSE();
            spins++;
        }
        if (g == seen) {
            pthread_mutex_lock(&P->mu);
            while ((g = DISTILL__LOAD(&P->gen)) == seen) pthread_cond_wait(&P->wake, &P->mu);
            pthread_mutex_unlock(&P->mu);
        }
        seen = g;
        if (DISTILL__LOAD(&P->quit)) break;
        distill__run_chunks(P, id);
        if (DISTILL__FETCH_ADD(&P->pending, -1) == 1) {
            pthread_mutex_lock(&P->mu);
            pthread_cond_signal(&P->done);
            pthread_mutex_unlock(&P->mu);
        }
    }
    return NULL;
}

/* Publish a job to the workers (call with the job fields set). */
static void distill__publish(distill__pool *P) {
    pthread_mutex_lock(&P->mu);
    DISTILL__STORE(&P->gen, DISTILL__LOAD(&P->gen) + 1);
    pthread_cond_broadcast(&P->wake);
    pthread_mutex_unlock(&P->mu);
}

static void distill__wait_workers(distill__pool *P) {
    int spins = 0;
    while (DISTILL__LOAD(&P->pending) != 0 && spins < DISTILL__SPIN) {
        DISTILL__PAUSE();
        spins++;
    }
    if (DISTILL__LOAD(&P->pending) != 0) {
        pthread_mutex_lock(&P->mu);
        while (DISTILL__LOAD(&P->pending) != 0) pthread_cond_wait(&P->done, &P->mu);
        pthread_mutex_unlock(&P->mu);
    }
}

static void distill__pool_stop(distill__pool *P) {
    int i;
    if (P->running <= 1) { P->running = 0; return; }
    DISTILL__STORE(&P->quit, 1);
    DISTILL__STORE(&P->pending, (int64_t)(P->running - 1));
    distill__publish(P);
    for (i = 1; i < P->running; i++) pthread_join(P->tid[i], NULL);
    DISTILL__STORE(&P->quit, 0);
    pthread_cond_destroy(&P->wake);
    pthread_cond_destroy(&P->done);
    pthread_mutex_destroy(&P->mu);
    P->running = 0;
}

/* A child created by fork() has only the thread that called fork: forget the parent's
   workers (without joining them) so the child's first parallel_for starts its own. */
static void distill__pool_atfork_child(void) {
    distill__pool *P = &distill__the_pool;
    P->running = 0;
    DISTILL__STORE(&P->busy, 0);
}

/* Start the workers; on failure the pool runs with as many as could be created. */
static void distill__pool_start(distill__pool *P) {
    int i;
    P->running = 1;
    if (P->n_threads <= 1) return;
    if (!P->atfork_registered) {
        pthread_atfork(NULL, NULL, distill__pool_atfork_child);
        P->atfork_registered = 1;
    }
    pthread_mutex_init(&P->mu, NULL);
    pthread_cond_init(&P->wake, NULL);
    pthread_cond_init(&P->done, NULL);
    P->start_gen = DISTILL__LOAD(&P->gen);
    for (i = 1; i < P->n_threads; i++) {
        if (pthread_create(&P->tid[i], NULL, distill__worker, (void *)(intptr_t)i) != 0) break;
        P->running = i + 1;
    }
}

/* Index of the calling thread in the pool (0 for the user thread). */
static int distill__self_index(distill__pool *P) {
    int i;
    pthread_t me = pthread_self();
    for (i = 1; i < P->running; i++)
        if (pthread_equal(P->tid[i], me)) return i;
    return 0;
}
#endif /* !DISTILL_NO_THREADS */

static void distill__blas_init(void);
static void distill__reserve_scratch(distill__pool *P);

DISTILL_API void distill_set_threads(int n) {
    distill__pool *P = &distill__the_pool;
#if !defined(DISTILL_NO_THREADS)
    if (P->running) distill__pool_stop(P);
#endif
    if (n <= 0) n = distill__default_threads();
#if defined(DISTILL_NO_THREADS)
    n = 1;
#endif
    P->n_threads = n > DISTILL__MAX_THREADS ? DISTILL__MAX_THREADS : n;
}

DISTILL_API int distill_get_threads(void) {
    distill__pool *P = &distill__the_pool;
    if (P->n_threads == 0) distill_set_threads(0);
    return P->n_threads;
}

DISTILL_API void distill_parallel_for(int64_t n, int64_t chunk, distill_task_fn fn, void *ctx) {
    distill__pool *P = &distill__the_pool;
    int64_t n_chunks, b;
    if (n <= 0) return;
    if (chunk < 1) chunk = 1;
    n_chunks = (n - 1) / chunk + 1;
    if (P->n_threads == 0) distill_set_threads(0);
    distill__blas_init();
#if !defined(DISTILL_NO_THREADS)
    if (!DISTILL__LOAD(&P->busy) && P->scratch_reserved < P->n_threads) distill__reserve_scratch(P);
    if (DISTILL__LOAD(&P->busy)) { /* nested: run serially on this worker */
        int self = distill__self_index(P);
        for (b = 0; b < n; b += chunk) fn(ctx, b, b + chunk < n ? b + chunk : n, self);
        return;
    }
    if (P->n_threads > 1 && n_chunks > 1) {
        if (!P->running) distill__pool_start(P);
        if (P->running > 1) {
            P->fn = fn;
            P->ctx = ctx;
            P->n = n;
            P->chunk = chunk;
            P->n_chunks = n_chunks;
            DISTILL__STORE(&P->busy, 1);
            DISTILL__STORE(&P->next, 0);
            DISTILL__STORE(&P->pending, (int64_t)(P->running - 1));
            distill__publish(P);
            distill__run_chunks(P, 0);
            distill__wait_workers(P);
            DISTILL__STORE(&P->busy, 0);
            return;
        }
    }
    DISTILL__STORE(&P->busy, 1);
    for (b = 0; b < n; b += chunk) fn(ctx, b, b + chunk < n ? b + chunk : n, 0);
    DISTILL__STORE(&P->busy, 0);
#else
    (void)n_chunks;
    if (P->scratch_reserved < 1) distill__reserve_scratch(P);
    for (b = 0; b < n; b += chunk) fn(ctx, b, b + chunk < n ? b + chunk : n, 0);
#endif
}

/* Per-thread scratch of at least `floats` floats (64-byte aligned), or NULL when out of
   memory. Only thread `thread` ever touches slot `thread`, so no locking is needed. */
static float *distill__thread_scratch(int thread, size_t floats) {
    distill__pool *P = &distill__the_pool;
    if (thread < 0 || thread >= DISTILL__MAX_THREADS) return NULL;
    if (P->scratch_floats[thread] < floats) {
        distill_free_aligned(P->scratch[thread]);
        P->scratch[thread] = (float *)distill_alloc_aligned(floats * sizeof(float), 64);
        P->scratch_floats[thread] = P->scratch[thread] ? floats : 0;
    }
    return P->scratch[thread];
}

/* ===================================================================================== */
/* The vector-macro layer                                                                 */
/* ===================================================================================== */
/* A kernel is written once against these macros (DV_ = "distill vector"):
     DV_T             the vector type, DV_W floats wide      DVI_T   a vector of int32
     DV_LOAD/STORE    unaligned load / store                 DV_SET1 broadcast, DV_ZERO()
     DV_FMA(a,b,c)    a*b + c (fused where the ISA has it)   DV_ADD, DV_SUB, DV_MUL, DV_MAX, DV_MIN
     DV_HSUM, DV_HMAX horizontal reductions to a float       DV_ROUND to nearest integer value
     DV_CVTI, DVI_ADD, DVI_SUB, DVI_SET1, DVI_SRA1 (>> 1), DVI_SHL23 (<< 23), DV_CASTI (bits as float)
   and DISTILL__SIMD_TEMPLATE(suffix, attributes) stamps out the kernels for the current
   definitions. The macros are #undef'd after each instantiation. */

/* exp(x) for a vector (used by the softmax primitives):
     x = n ln2 + r, n = round(x / ln2), |r| <= ln2/2, r computed with ln2 split in a high part
     exact in float and a low part (Cody-Waite), so r carries no cancellation error;
     exp(r) by its Taylor polynomial of degree 7 (truncation error r^8/8! < 6e-9 relative);
     2^n built in the exponent field, in two halves 2^(n>>1) * 2^(n - (n>>1)) so that every
     n in [-150, 128] works (denormal results and overflow to +inf come out right).
   Inputs are clamped to [-104, 89] (exp is 0 resp. +inf beyond); NaN propagates.
   Max relative error vs exp() in double over [-87.3, 88.7]: 1.0e-7 measured (about 1.7 ulp),
   tested < 2e-7 in tests/test_kernels.c. */
#define DISTILL__SIMD_TEMPLATE(SFX, ATTR)                                                    \
DISTILL__UNUSED static ATTR DV_T distill__vexp_##SFX(DV_T x) {                               \
    DV_T n, r, p;                                                                            \
    DVI_T ni, n1, n2;                                                                        \
    x = DV_MAX(DV_SET1(-104.0f), x);                                                         \
    x = DV_MIN(DV_SET1(89.0f), x);                                                           \
    n = DV_ROUND(DV_MUL(x, DV_SET1(1.44269504088896341f)));                                  \
    r = DV_FMA(n, DV_SET1(-0.693145751953125f), x);                                          \
    r = DV_FMA(n, DV_SET1(-1.428606765330187e-06f), r);                                      \
    p = DV_SET1(1.0f / 5040.0f);                                                             \
    p = DV_FMA(p, r, DV_SET1(1.0f / 720.0f));                                                \
    p = DV_FMA(p, r, DV_SET1(1.0f / 120.0f));                                                \
    p = DV_FMA(p, r, DV_SET1(1.0f / 24.0f));                                                 \
    p = DV_FMA(p, r, DV_SET1(1.0f / 6.0f));                                                  \
    p = DV_FMA(p, r, DV_SET1(0.5f));                                                         \
    p = DV_FMA(p, r, DV_SET1(1.0f));                                                         \
    p = DV_FMA(p, r, DV_SET1(1.0f));                                                         \
    ni = DV_CVTI(n);                                                                         \
    n1 = DVI_SRA1(ni);                                                                       \
    n2 = DVI_SUB(ni, n1);                                                                    \
    p = DV_MUL(p, DV_CASTI(DVI_SHL23(DVI_ADD(n1, DVI_SET1(127)))));                          \
    return DV_MUL(p, DV_CASTI(DVI_SHL23(DVI_ADD(n2, DVI_SET1(127)))));                       \
}                                                                                            \
                                                                                             \
/* The micro-kernel: a 6 x (2 DV_W) tile of C in 12 vector registers.                       \
     c (6, 2W) (+)= a (6, kc) . b (kc, 2W)                                                   \
   a is a packed panel (for each p, the 6 values of column p), b likewise (for each p, the   \
   2W values of row p). Per step: 2 loads of b, 6 broadcasts of a, 12 FMAs. acc: 0 stores    \
   the product, 1 adds it to c. ldc is the row stride of c. */                               \
static ATTR void distill__ukernel_##SFX(int kc, const float *a, const float *b, float *c,    \
                                        size_t ldc, int acc) {                               \
    DV_T c00 = DV_ZERO(), c01 = DV_ZERO(), c10 = DV_ZERO(), c11 = DV_ZERO();                 \
    DV_T c20 = DV_ZERO(), c21 = DV_ZERO(), c30 = DV_ZERO(), c31 = DV_ZERO();                 \
    DV_T c40 = DV_ZERO(), c41 = DV_ZERO(), c50 = DV_ZERO(), c51 = DV_ZERO();                 \
    DV_T b0, b1, av;                                                                         \
    int p;                                                                                   \
    for (p = 0; p < kc; p++) {                                                               \
        b0 = DV_LOAD(b);                                                                     \
        b1 = DV_LOAD(b + DV_W);                                                              \
        av = DV_SET1(a[0]); c00 = DV_FMA(av, b0, c00); c01 = DV_FMA(av, b1, c01);            \
        av = DV_SET1(a[1]); c10 = DV_FMA(av, b0, c10); c11 = DV_FMA(av, b1, c11);            \
        av = DV_SET1(a[2]); c20 = DV_FMA(av, b0, c20); c21 = DV_FMA(av, b1, c21);            \
        av = DV_SET1(a[3]); c30 = DV_FMA(av, b0, c30); c31 = DV_FMA(av, b1, c31);            \
        av = DV_SET1(a[4]); c40 = DV_FMA(av, b0, c40); c41 = DV_FMA(av, b1, c41);            \
        av = DV_SET1(a[5]); c50 = DV_FMA(av, b0, c50); c51 = DV_FMA(av, b1, c51);            \
        a += 6;                                                                              \
        b += 2 * DV_W;                                                                       \
    }                                                                                        \
    if (acc) {                                                                               \
        c00 = DV_ADD(c00, DV_LOAD(c + 0 * ldc)); c01 = DV_ADD(c01, DV_LOAD(c + 0 * ldc + DV_W)); \
        c10 = DV_ADD(c10, DV_LOAD(c + 1 * ldc)); c11 = DV_ADD(c11, DV_LOAD(c + 1 * ldc + DV_W)); \
        c20 = DV_ADD(c20, DV_LOAD(c + 2 * ldc)); c21 = DV_ADD(c21, DV_LOAD(c + 2 * ldc + DV_W)); \
        c30 = DV_ADD(c30, DV_LOAD(c + 3 * ldc)); c31 = DV_ADD(c31, DV_LOAD(c + 3 * ldc + DV_W)); \
        c40 = DV_ADD(c40, DV_LOAD(c + 4 * ldc)); c41 = DV_ADD(c41, DV_LOAD(c + 4 * ldc + DV_W)); \
        c50 = DV_ADD(c50, DV_LOAD(c + 5 * ldc)); c51 = DV_ADD(c51, DV_LOAD(c + 5 * ldc + DV_W)); \
    }                                                                                        \
    DV_STORE(c + 0 * ldc, c00); DV_STORE(c + 0 * ldc + DV_W, c01);                           \
    DV_STORE(c + 1 * ldc, c10); DV_STORE(c + 1 * ldc + DV_W, c11);                           \
    DV_STORE(c + 2 * ldc, c20); DV_STORE(c + 2 * ldc + DV_W, c21);                           \
    DV_STORE(c + 3 * ldc, c30); DV_STORE(c + 3 * ldc + DV_W, c31);                           \
    DV_STORE(c + 4 * ldc, c40); DV_STORE(c + 4 * ldc + DV_W, c41);                           \
    DV_STORE(c + 5 * ldc, c50); DV_STORE(c + 5 * ldc + DV_W, c51);                           \
}                                                                                            \
                                                                                             \
/* sum a[i]*b[i]: four independent vector accumulators, combined in a fixed order. */        \
static ATTR float distill__dot_##SFX(const float *a, const float *b, int n) {                \
    DV_T s0 = DV_ZERO(), s1 = DV_ZERO(), s2 = DV_ZERO(), s3 = DV_ZERO();                     \
    int i = 0;                                                                               \
    float s;                                                                                 \
    for (; i + 4 * DV_W <= n; i += 4 * DV_W) {                                               \
        s0 = DV_FMA(DV_LOAD(a + i), DV_LOAD(b + i), s0);                                     \
        s1 = DV_FMA(DV_LOAD(a + i + DV_W), DV_LOAD(b + i + DV_W), s1);                       \
        s2 = DV_FMA(DV_LOAD(a + i + 2 * DV_W), DV_LOAD(b + i + 2 * DV_W), s2);               \
        s3 = DV_FMA(DV_LOAD(a + i + 3 * DV_W), DV_LOAD(b + i + 3 * DV_W), s3);               \
    }                                                                                        \
    for (; i + DV_W <= n; i += DV_W) s0 = DV_FMA(DV_LOAD(a + i), DV_LOAD(b + i), s0);        \
    s = DV_HSUM(DV_ADD(DV_ADD(s0, s1), DV_ADD(s2, s3)));                                     \
    for (; i < n; i++) s += a[i] * b[i];                                                     \
    return s;                                                                                \
}                                                                                            \
                                                                                             \
/* y += a*x */                                                                               \
static ATTR void distill__axpy_##SFX(float *y, float a, const float *x, int n) {             \
    DV_T av = DV_SET1(a);                                                                    \
    int i = 0;                                                                               \
    for (; i + DV_W <= n; i += DV_W) DV_STORE(y + i, DV_FMA(av, DV_LOAD(x + i), DV_LOAD(y + i))); \
    for (; i < n; i++) y[i] += a * x[i];                                                     \
}                                                                                            \
                                                                                             \
/* y *= a */                                                                                 \
static ATTR void distill__scale_##SFX(float *y, float a, int n) {                            \
    DV_T av = DV_SET1(a);                                                                    \
    int i = 0;                                                                               \
    for (; i + DV_W <= n; i += DV_W) DV_STORE(y + i, DV_MUL(av, DV_LOAD(y + i)));            \
    for (; i < n; i++) y[i] *= a;                                                            \
}                                                                                            \
                                                                                             \
/* max x[i] (-INFINITY for n == 0) */                                                        \
static ATTR float distill__max_##SFX(const float *x, int n) {                                \
    DV_T m = DV_SET1(-INFINITY);                                                             \
    int i = 0;                                                                               \
    float s;                                                                                 \
    for (; i + DV_W <= n; i += DV_W) m = DV_MAX(m, DV_LOAD(x + i));                          \
    s = DV_HMAX(m);                                                                          \
    for (; i < n; i++) s = x[i] > s ? x[i] : s;                                              \
    return s;                                                                                \
}                                                                                            \
                                                                                             \
/* y[i] = exp(x[i] - shift), returns sum y[i]. The tail goes through the same vector exp   \
   (via a small buffer), so every element gets the same approximation. */                    \
static ATTR float distill__exp_sum_##SFX(float *y, const float *x, float shift, int n) {     \
    DV_T sh = DV_SET1(shift), acc = DV_ZERO(), e;                                            \
    float buf[DV_W], s;                                                                      \
    int i = 0, j;                                                                            \
    for (; i + DV_W <= n; i += DV_W) {                                                       \
        e = distill__vexp_##SFX(DV_SUB(DV_LOAD(x + i), sh));                                 \
        DV_STORE(y + i, e);                                                                  \
        acc = DV_ADD(acc, e);                                                                \
    }                                                                                        \
    s = DV_HSUM(acc);                                                                        \
    if (i < n) {                                                                             \
        for (j = 0; j < DV_W; j++) buf[j] = i + j < n ? x[i + j] : shift;                    \
        DV_STORE(buf, distill__vexp_##SFX(DV_SUB(DV_LOAD(buf), sh)));                        \
        for (j = 0; i + j < n; j++) { y[i + j] = buf[j]; s += buf[j]; }                      \
    }                                                                                        \
    return s;                                                                                \
}                                                                                            \
                                                                                             \
/* SwiGLU on n floats: out = silu(g) u, silu(g) = g sigmoid(g), sigmoid(g) = 1/(1 + exp(-g)) \
   backward: dg = d u s (1 + g (1 - s)), du = d g s   (du may alias d). Tails go through a    \
   small buffer so every element sees the same arithmetic. */                                \
static ATTR void distill__swiglu_fwd_##SFX(float *out, const float *gate, const float *up, int n) { \
    float bg[DV_W], bu[DV_W];                                                                \
    int i = 0, j;                                                                            \
    for (;; i += DV_W) {                                                                     \
        const float *g = gate + i, *u = up + i;                                              \
        float *o = out + i;                                                                  \
        DV_T gv, s;                                                                          \
        int m = n - i < DV_W ? n - i : DV_W;                                                 \
        if (m <= 0) break;                                                                   \
        if (m < DV_W) {                                                                      \
            for (j = 0; j < DV_W; j++) { bg[j] = j < m ? g[j] : 0.0f; bu[j] = j < m ? u[j] : 0.0f; } \
            g = bg; u = bu; o = bg;                                                          \
        }                                                                                    \
        gv = DV_LOAD(g);                                                                     \
        s = DV_ADD(DV_SET1(1.0f), distill__vexp_##SFX(DV_SUB(DV_ZERO(), gv)));               \
        DV_STORE(o, DV_MUL(DV_MUL(gv, DV_LOAD(u)), DV_DIVONE(s)));                           \
        if (m < DV_W) { for (j = 0; j < m; j++) out[i + j] = bg[j]; break; }                 \
    }                                                                                        \
}                                                                                            \
static ATTR void distill__swiglu_bwd_##SFX(float *dgate, float *dup, const float *dout,     \
                                           const float *gate, const float *up, int n) {     \
    float bg[DV_W], bu[DV_W], bd[DV_W], bdg[DV_W];                                           \
    int i = 0, j;                                                                            \
    for (;; i += DV_W) {                                                                     \
        const float *g = gate + i, *u = up + i, *d = dout + i;                               \
        float *dg = dgate + i, *du = dup + i;                                                \
        DV_T gv, uv, dv, s, one = DV_SET1(1.0f);                                             \
        int m = n - i < DV_W ? n - i : DV_W;                                                 \
        if (m <= 0) break;                                                                   \
        if (m < DV_W) {                                                                      \
            for (j = 0; j < DV_W; j++) { bg[j] = j < m ? g[j] : 0.0f; bu[j] = j < m ? u[j] : 0.0f; \
                                         bd[j] = j < m ? d[j] : 0.0f; }                      \
            g = bg; u = bu; d = bd; dg = bdg; du = bd;                                       \
        }                                                                                    \
        gv = DV_LOAD(g); uv = DV_LOAD(u); dv = DV_LOAD(d);                                   \
        s = DV_DIVONE(DV_ADD(one, distill__vexp_##SFX(DV_SUB(DV_ZERO(), gv))));              \
        DV_STORE(dg, DV_MUL(DV_MUL(DV_MUL(dv, uv), s), DV_FMA(gv, DV_SUB(one, s), one)));    \
        DV_STORE(du, DV_MUL(DV_MUL(dv, gv), s));                                             \
        if (m < DV_W) { for (j = 0; j < m; j++) { dgate[i + j] = bdg[j]; dup[i + j] = bd[j]; } break; } \
    }                                                                                        \
}

/* The table of one kernel set. nr = 2 * DV_W columns per micro-tile, 6 rows. */
struct distill__isa_ops {
    const char *name;
    int mr, nr;
    void (*ukernel)(int kc, const float *a, const float *b, float *c, size_t ldc, int acc);
    float (*dot)(const float *a, const float *b, int n);
    void (*axpy)(float *y, float a, const float *x, int n);
    void (*scale)(float *y, float a, int n);
    float (*max)(const float *x, int n);
    float (*exp_sum)(float *y, const float *x, float shift, int n);
    void (*swiglu_fwd)(float *out, const float *gate, const float *up, int n);
    void (*swiglu_bwd)(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n);
};
#define DISTILL__OPS_TABLE(SFX, NAME) { NAME, 6, 2 * DV_W, distill__ukernel_##SFX, distill__dot_##SFX, \
    distill__axpy_##SFX, distill__scale_##SFX, distill__max_##SFX, distill__exp_sum_##SFX, \
    distill__swiglu_fwd_##SFX, distill__swiglu_bwd_##SFX }

/* --- scalar: always compiled; the fallback on CPUs without SIMD, and for other compilers - */
static float distill__i2f(int32_t i) { float f; memcpy(&f, &i, sizeof f); return f; }
static int32_t distill__sra1(int32_t i) { return i >= 0 ? i / 2 : -((1 - i) / 2); } /* floor(i/2) */
static int32_t distill__f2i(float v) { return v == v ? (int32_t)v : 0; } /* NaN: any value will do */
#define DV_T float
#define DVI_T int32_t
#define DV_W 1
#define DV_LOAD(p) (*(p))
#define DV_STORE(p, v) (*(p) = (v))
#define DV_SET1(x) (x)
#define DV_ZERO() 0.0f
#define DV_FMA(a, b, c) ((a) * (b) + (c))
#define DV_ADD(a, b) ((a) + (b))
#define DV_SUB(a, b) ((a) - (b))
#define DV_MUL(a, b) ((a) * (b))
#define DV_MAX(a, b) ((a) > (b) ? (a) : (b)) /* NaN in b propagates, as in SSE/AVX */
#define DV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DV_HSUM(v) (v)
#define DV_HMAX(v) (v)
#define DV_ROUND(v) rintf(v)
#define DV_CVTI(v) distill__f2i(v)
#define DVI_ADD(a, b) ((a) + (b))
#define DVI_SUB(a, b) ((a) - (b))
#define DVI_SET1(x) ((int32_t)(x))
#define DVI_SRA1(a) distill__sra1(a)
#define DVI_SHL23(a) ((int32_t)((uint32_t)(a) << 23))
#define DV_CASTI(i) distill__i2f(i)
#define DV_DIVONE(x) (1.0f / (x))
DISTILL__SIMD_TEMPLATE(scalar, )
static const distill__isa_ops distill__ops_scalar = DISTILL__OPS_TABLE(scalar, "scalar");
#undef DV_T
#undef DVI_T
#undef DV_W
#undef DV_LOAD
#undef DV_STORE
#undef DV_SET1
#undef DV_ZERO
#undef DV_FMA
#undef DV_ADD
#undef DV_SUB
#undef DV_MUL
#undef DV_MAX
#undef DV_MIN
#undef DV_HSUM
#undef DV_HMAX
#undef DV_ROUND
#undef DV_CVTI
#undef DVI_ADD
#undef DVI_SUB
#undef DVI_SET1
#undef DVI_SRA1
#undef DVI_SHL23
#undef DV_CASTI
#undef DV_DIVONE

#if defined(DISTILL__X86)
/* --- AVX2 + FMA (x86-64-v3), compiled with a per-function target attribute ----------- */
#define DISTILL__AVX2_ATTR __attribute__((target("avx2,fma")))
static DISTILL__AVX2_ATTR float distill__hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static DISTILL__AVX2_ATTR float distill__hmax_avx2(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
#define DV_T __m256
#define DVI_T __m256i
#define DV_W 8
#define DV_LOAD(p) _mm256_loadu_ps(p)
#define DV_STORE(p, v) _mm256_storeu_ps((p), (v))
#define DV_SET1(x) _mm256_set1_ps(x)
#define DV_ZERO() _mm256_setzero_ps()
#define DV_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define DV_ADD(a, b) _mm256_add_ps((a), (b))
#define DV_SUB(a, b) _mm256_sub_ps((a), (b))
#define DV_MUL(a, b) _mm256_mul_ps((a), (b))
#define DV_MAX(a, b) _mm256_max_ps((a), (b))
#define DV_MIN(a, b) _mm256_min_ps((a), (b))
#define DV_HSUM(v) distill__hsum_avx2(v)
#define DV_HMAX(v) distill__hmax_avx2(v)
#define DV_ROUND(v) _mm256_round_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define DV_CVTI(v) _mm256_cvtps_epi32(v)
#define DVI_ADD(a, b) _mm256_add_epi32((a), (b))
#define DVI_SUB(a, b) _mm256_sub_epi32((a), (b))
#define DVI_SET1(x) _mm256_set1_epi32(x)
#define DVI_SRA1(a) _mm256_srai_epi32((a), 1)
#define DVI_SHL23(a) _mm256_slli_epi32((a), 23)
#define DV_CASTI(i) _mm256_castsi256_ps(i)
#define DV_DIVONE(x) _mm256_div_ps(_mm256_set1_ps(1.0f), (x))
DISTILL__SIMD_TEMPLATE(avx2, DISTILL__AVX2_ATTR)
static const distill__isa_ops distill__ops_avx2 = DISTILL__OPS_TABLE(avx2, "avx2");
#undef DV_T
#undef DVI_T
#undef DV_W
#undef DV_LOAD
#undef DV_STORE
#undef DV_SET1
#undef DV_ZERO
#undef DV_FMA
#undef DV_ADD
#undef DV_SUB
#undef DV_MUL
#undef DV_MAX
#undef DV_MIN
#undef DV_HSUM
#undef DV_HMAX
#undef DV_ROUND
#undef DV_CVTI
#undef DVI_ADD
#undef DVI_SUB
#undef DVI_SET1
#undef DVI_SRA1
#undef DVI_SHL23
#undef DV_CASTI
#undef DV_DIVONE

/* --- AVX-512F ------------------------------------------------------------------------ */
#define DISTILL__AVX512_ATTR __attribute__((target("avx512f")))
/* The masked forms with an all-ones mask below, and reductions through memory: GCC 12's
   unmasked AVX-512 intrinsics (max, min, roundscale, cvt, shifts, reduce) warn under
   -Wuninitialized in C++ (their _mm512_undefined_ps). Same instructions. */
#define DISTILL__K16 ((__mmask16)0xFFFF)
/* Reductions through memory: GCC 12's _mm512_reduce_add_ps and shuffles warn under
   -Wuninitialized in C++ (their _mm512_undefined_ps), and this runs once per call anyway. */
static DISTILL__AVX512_ATTR float distill__hsum_avx512(__m512 v) {
    float t[16];
    int i;
    _mm512_storeu_ps(t, v);
    for (i = 0; i < 8; i++) t[i] += t[i + 8];
    for (i = 0; i < 4; i++) t[i] += t[i + 4];
    return (t[0] + t[2]) + (t[1] + t[3]);
}
static DISTILL__AVX512_ATTR float distill__hmax_avx512(__m512 v) {
    float t[16], m;
    int i;
    _mm512_storeu_ps(t, v);
    m = t[0];
    for (i = 1; i < 16; i++) m = t[i] > m ? t[i] : m;
    return m;
}
#define DV_T __m512
#define DVI_T __m512i
#define DV_W 16
#define DV_LOAD(p) _mm512_loadu_ps(p)
#define DV_STORE(p, v) _mm512_storeu_ps((p), (v))
#define DV_SET1(x) _mm512_set1_ps(x)
#define DV_ZERO() _mm512_setzero_ps()
#define DV_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define DV_ADD(a, b) _mm512_add_ps((a), (b))
#define DV_SUB(a, b) _mm512_sub_ps((a), (b))
#define DV_MUL(a, b) _mm512_mul_ps((a), (b))
#define DV_MAX(a, b) _mm512_mask_max_ps((a), DISTILL__K16, (a), (b))
#define DV_MIN(a, b) _mm512_mask_min_ps((a), DISTILL__K16, (a), (b))
#define DV_HSUM(v) distill__hsum_avx512(v)
#define DV_HMAX(v) distill__hmax_avx512(v)
#define DV_ROUND(v) _mm512_mask_roundscale_ps((v), DISTILL__K16, (v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define DV_CVTI(v) _mm512_mask_cvtps_epi32(_mm512_setzero_si512(), DISTILL__K16, (v))
#define DVI_ADD(a, b) _mm512_add_epi32((a), (b))
#define DVI_SUB(a, b) _mm512_sub_epi32((a), (b))
#define DVI_SET1(x) _mm512_set1_epi32(x)
#define DVI_SRA1(a) _mm512_mask_srai_epi32((a), DISTILL__K16, (a), 1)
#define DVI_SHL23(a) _mm512_mask_slli_epi32((a), DISTILL__K16, (a), 23)
#define DV_CASTI(i) _mm512_castsi512_ps(i)
#define DV_DIVONE(x) _mm512_div_ps(_mm512_set1_ps(1.0f), (x))
DISTILL__SIMD_TEMPLATE(avx512, DISTILL__AVX512_ATTR)
static const distill__isa_ops distill__ops_avx512 = DISTILL__OPS_TABLE(avx512, "avx512");
#undef DV_T
#undef DVI_T
#undef DV_W
#undef DV_LOAD
#undef DV_STORE
#undef DV_SET1
#undef DV_ZERO
#undef DV_FMA
#undef DV_ADD
#undef DV_SUB
#undef DV_MUL
#undef DV_MAX
#undef DV_MIN
#undef DV_HSUM
#undef DV_HMAX
#undef DV_ROUND
#undef DV_CVTI
#undef DVI_ADD
#undef DVI_SUB
#undef DVI_SET1
#undef DVI_SRA1
#undef DVI_SHL23
#undef DV_CASTI
#undef DV_DIVONE
#undef DISTILL__K16
#endif /* DISTILL__X86 */

#if defined(DISTILL__NEON)
/* --- NEON (aarch64: always present, no run-time check needed) ------------------------- */
#define DV_T float32x4_t
#define DVI_T int32x4_t
#define DV_W 4
#define DV_LOAD(p) vld1q_f32(p)
#define DV_STORE(p, v) vst1q_f32((p), (v))
#define DV_SET1(x) vdupq_n_f32(x)
#define DV_ZERO() vdupq_n_f32(0.0f)
#define DV_FMA(a, b, c) vfmaq_f32((c), (a), (b))
#define DV_ADD(a, b) vaddq_f32((a), (b))
#define DV_SUB(a, b) vsubq_f32((a), (b))
#define DV_MUL(a, b) vmulq_f32((a), (b))
#define DV_MAX(a, b) vmaxq_f32((a), (b))
#define DV_MIN(a, b) vminq_f32((a), (b))
#define DV_HSUM(v) vaddvq_f32(v)
#define DV_HMAX(v) vmaxvq_f32(v)
#define DV_ROUND(v) vrndnq_f32(v)
#define DV_CVTI(v) vcvtq_s32_f32(v)
#define DVI_ADD(a, b) vaddq_s32((a), (b))
#define DVI_SUB(a, b) vsubq_s32((a), (b))
#define DVI_SET1(x) vdupq_n_s32(x)
#define DVI_SRA1(a) vshrq_n_s32((a), 1)
#define DVI_SHL23(a) vshlq_n_s32((a), 23)
#define DV_CASTI(i) vreinterpretq_f32_s32(i)
#define DV_DIVONE(x) vdivq_f32(vdupq_n_f32(1.0f), (x))
DISTILL__SIMD_TEMPLATE(neon, )
static const distill__isa_ops distill__ops_neon = DISTILL__OPS_TABLE(neon, "neon");
#undef DV_T
#undef DVI_T
#undef DV_W
#undef DV_LOAD
#undef DV_STORE
#undef DV_SET1
#undef DV_ZERO
#undef DV_FMA
#undef DV_ADD
#undef DV_SUB
#undef DV_MUL
#undef DV_MAX
#undef DV_MIN
#undef DV_HSUM
#undef DV_HMAX
#undef DV_ROUND
#undef DV_CVTI
#undef DVI_ADD
#undef DVI_SUB
#undef DVI_SET1
#undef DVI_SRA1
#undef DVI_SHL23
#undef DV_CASTI
#undef DV_DIVONE
#endif /* DISTILL__NEON */

/* Kernel set by name if this build and this CPU support it, else NULL. */
static const distill__isa_ops *distill__ops_by_name(const char *name) {
    if (!strcmp(name, "scalar")) return &distill__ops_scalar;
#if defined(DISTILL__X86)
    __builtin_cpu_init();
    if (!strcmp(name, "avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &distill__ops_avx2;
    if (!strcmp(name, "avx512") && __builtin_cpu_supports("avx512f")) return &distill__ops_avx512;
#endif
#if defined(DISTILL__NEON)
    if (!strcmp(name, "neon")) return &distill__ops_neon;
#endif
    return NULL;
}

/* The best kernel set: DISTILL_SIMD if set and usable, else the widest the CPU has. */
static const distill__isa_ops *distill__ops_best(void) {
    static const char *const order[] = {"avx512", "avx2", "neon", "scalar"};
    const distill__isa_ops *o;
    const char *env = getenv("DISTILL_SIMD");
    size_t i;
    if (env && *env && (o = distill__ops_by_name(env)) != NULL) return o;
    for (i = 0; i < sizeof order / sizeof order[0]; i++)
        if ((o = distill__ops_by_name(order[i])) != NULL) return o;
    return &distill__ops_scalar;
}

static const distill__isa_ops *distill__ops(void) {
    const distill__isa_ops *o = distill__the_pool.ops;
    if (!o) distill__the_pool.ops = o = distill__ops_best();
    return o;
}

DISTILL_API int distill_set_simd(const char *name) {
    const distill__isa_ops *o = (name && *name) ? distill__ops_by_name(name) : distill__ops_best();
    if (!o) return -1;
    distill__the_pool.ops = o;
    return 0;
}

DISTILL_API const char *distill_simd_name(void) { return distill__ops()->name; }

/* ===================================================================================== */
/* Vector primitives                                                                      */
/* ===================================================================================== */
DISTILL_API float distill_vec_dot(const float *a, const float *b, int n) {
    return distill__ops()->dot(a, b, n);
}
DISTILL_API void distill_vec_axpy(float *y, float a, const float *x, int n) {
    distill__ops()->axpy(y, a, x, n);
}
DISTILL_API void distill_vec_scale(float *y, float a, int n) { distill__ops()->scale(y, a, n); }
DISTILL_API float distill_vec_max(const float *x, int n) { return distill__ops()->max(x, n); }
DISTILL_API float distill_vec_exp_sum(float *y, const float *x, float shift, int n) {
    return distill__ops()->exp_sum(y, x, shift, n);
}

/* SwiGLU on a range (call it from the model's tasks on their chunk), see the template. */
DISTILL_API void distill_vec_swiglu_forward(float *out, const float *gate, const float *up, int n) {
    distill__ops()->swiglu_fwd(out, gate, up, n);
}
DISTILL_API void distill_vec_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                                             const float *up, int n) {
    distill__ops()->swiglu_bwd(dgate, dup, dout, gate, up, n);
}

/* ===================================================================================== */
/* Matrix products                                                                        */
/* ===================================================================================== */
/* The scalar references: the definitions, written as plainly as possible. */
DISTILL_API void distill_matmul_forward_ref(float *out, const float *inp, const float *weight,
                                            const float *bias, int BT, int C, int OC) {
    int t, o, i;
    for (t = 0; t < BT; t++) {
        const float *x = inp + (size_t)t * C;
        for (o = 0; o < OC; o++) {
            const float *w = weight + (size_t)o * C;
            float s = bias ? bias[o] : 0.0f;
            for (i = 0; i < C; i++) s += x[i] * w[i];
            out[(size_t)t * OC + o] = s;
        }
    }
}

DISTILL_API void distill_matmul_backward_ref(float *dinp, float *dweight, float *dbias,
                                             const float *dout, const float *inp,
                                             const float *weight, int BT, int C, int OC) {
    int t, o, i;
    for (t = 0; t < BT; t++) {
        const float *g = dout + (size_t)t * OC;
        for (o = 0; o < OC; o++) {
            float d = g[o];
            if (dinp) { float *dx = dinp + (size_t)t * C; const float *w = weight + (size_t)o * C;
                        for (i = 0; i < C; i++) dx[i] += d * w[i]; }
            if (dweight) { float *dw = dweight + (size_t)o * C; const float *x = inp + (size_t)t * C;
                           for (i = 0; i < C; i++) dw[i] += d * x[i]; }
            if (dbias) dbias[o] += d;
        }
    }
}

/* One general product, the engine under all three:
     C (M,N) = A (M,K) . B (K,N)   [+ bias (N) on every row]     (accumulate = 0)
     C (M,N) += A (M,K) . B (K,N)                                (accumulate = 1)
   with element (i,k) of A at a[i*rsa + k*csa] and (k,j) of B at b[k*rsb + j*csb], so the
   transposes the three matmuls need are just strides:
     forward  out = inp . W^T:   M=BT N=OC K=C   A=inp (C,1)     B=W^T  (1,C)
     dX      dinp += dout . W:   M=BT N=C  K=OC  A=dout (OC,1)   B=W    (C,1)
     dW        dW += dout^T.inp: M=OC N=C  K=BT  A=dout^T (1,OC) B=inp  (C,1)

   Blocking (the classic Goto/BLIS scheme): the output is cut into tasks of mc x nc; a task
   walks K in blocks of KC, packs the B block (KC x nc) into nr-column panels once, then for
   each MC-row block packs A (MC x KC, stays in L2) into 6-row panels and runs the micro-kernel
   over all (6 x nr) tiles: one B panel (KC x nr) stays in L1 while the A panels stream past. Packing also handles the
   strides and zero-pads the edges, so the micro-kernel only ever sees full tiles.

   Determinism: the value of C(i,j) is fixed by the K blocking (KC, the same everywhere) and
   the micro-kernel's order over k inside a block; the tile sizes and which thread computes
   which tile do not change it. So results are bit-identical for any thread count. */
#define DISTILL__KC 256
#define DISTILL__MC 96   /* multiple of 6 */
#define DISTILL__NC 1024 /* multiple of every nr (2, 8, 16, 32); the B block (KC x NC, 1 MB) sits in L2/L3 */

typedef struct distill__gemm {
    int M, N, K;
    const float *a; size_t rsa, csa;
    const float *b; size_t rsb, csb;
    float *c; size_t ldc;
    const float *bias;
    int accumulate;
    int mc, nc, tiles_n;
    const distill__isa_ops *ops;
} distill__gemm;

/* dst[k*w + r] = src[r*rs + k*cs] for r < h, and 0 for h <= r < w (the zero padding).
   Packing is pure data movement, but with the small K of attention blocks it costs about as
   much as the FMAs, so the common cases get loops the compiler turns into plain copies:
   writes always go sequentially through dst. */
static void distill__pack(float *dst, const float *src, size_t rs, size_t cs, int h, int w, int kb) {
    int r, k;
    if (cs == 1 && h == 6) {            /* 6 source rows, each contiguous along k (A panels) */
        const float *s0 = src, *s1 = src + rs, *s2 = src + 2 * rs, *s3 = src + 3 * rs;
        const float *s4 = src + 4 * rs, *s5 = src + 5 * rs;
        for (k = 0; k < kb; k++, dst += w) {
            dst[0] = s0[k]; dst[1] = s1[k]; dst[2] = s2[k]; dst[3] = s3[k]; dst[4] = s4[k]; dst[5] = s5[k];
            for (r = 6; r < w; r++) dst[r] = 0.0f;
        }
    } else if (cs == 1) {               /* a transpose: gather across rows, write sequentially */
        for (k = 0; k < kb; k++, dst += w) {
            for (r = 0; r < h; r++) dst[r] = src[(size_t)r * rs + k];
            for (; r < w; r++) dst[r] = 0.0f;
        }
    } else if (rs == 1 && h == 6 && w == 6) { /* 6 contiguous floats per k (A panels of dW) */
        for (k = 0; k < kb; k++, dst += 6) {
            const float *s = src + (size_t)k * cs;
            dst[0] = s[0]; dst[1] = s[1]; dst[2] = s[2]; dst[3] = s[3]; dst[4] = s[4]; dst[5] = s[5];
        }
    } else if (rs == 1 && h == w) {     /* contiguous rows of w floats: copies */
        for (k = 0; k < kb; k++, dst += w) memcpy(dst, src + (size_t)k * cs, sizeof(float) * (size_t)w);
    } else {
        for (k = 0; k < kb; k++, dst += w) {
            const float *s = src + (size_t)k * cs;
            for (r = 0; r < h; r++) dst[r] = s[(size_t)r * rs];
            for (; r < w; r++) dst[r] = 0.0f;
        }
    }
}

/* The tile without packing (only if the scratch could not be allocated): same math, slower. */
static void distill__gemm_tile_naive(const distill__gemm *g, int i0, int j0, int mb, int nb) {
    int i, j, k;
    for (i = i0; i < i0 + mb; i++)
        for (j = j0; j < j0 + nb; j++) {
            float s = 0.0f, *c = g->c + (size_t)i * g->ldc + j;
            for (k = 0; k < g->K; k++) s += g->a[i * g->rsa + k * g->csa] * g->b[k * g->rsb + j * g->csb];
            *c = g->accumulate ? *c + s : s + (g->bias ? g->bias[j] : 0.0f);
        }
}

static void distill__gemm_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__gemm *g = (const distill__gemm *)ctx;
    const int MR = g->ops->mr, NR = g->ops->nr, MC = DISTILL__MC;
    size_t a_floats = (size_t)MC * DISTILL__KC;
    size_t b_floats = (size_t)((g->nc + NR - 1) / NR * NR) * DISTILL__KC;
    float *pa = distill__thread_scratch(thread, a_floats + b_floats + (size_t)MR * NR);
    float *pb = pa + a_floats, *tmp = pb + b_floats;
    int64_t t;
    for (t = begin; t < end; t++) {
        /* task t: rows [r0, r1) x columns [j0, j0 + nb) of C */
        int r0 = (int)(t / g->tiles_n) * g->mc, j0 = (int)(t % g->tiles_n) * g->nc;
        int r1 = g->M - r0 < g->mc ? g->M : r0 + g->mc;
        int nb = g->N - j0 < g->nc ? g->N - j0 : g->nc;
        int p0, i0, ir, jr, i, j;
        if (!pa) { distill__gemm_tile_naive(g, r0, j0, r1 - r0, nb); continue; }
        for (p0 = 0; p0 < g->K; p0 += DISTILL__KC) {
            int kb = g->K - p0 < DISTILL__KC ? g->K - p0 : DISTILL__KC;
            int acc = g->accumulate || p0 > 0;
            /* the B block (kb x nb) once per task and K block, shared by all row blocks */
            for (jr = 0; jr < nb; jr += NR)
                distill__pack(pb + (size_t)jr * kb, g->b + (size_t)p0 * g->rsb + (size_t)(j0 + jr) * g->csb,
                              g->csb, g->rsb, nb - jr < NR ? nb - jr : NR, NR, kb);
            for (i0 = r0; i0 < r1; i0 += MC) {
                int mb = r1 - i0 < MC ? r1 - i0 : MC;
                for (ir = 0; ir < mb; ir += MR)
                    distill__pack(pa + (size_t)ir * kb, g->a + (size_t)(i0 + ir) * g->rsa + (size_t)p0 * g->csa,
                                  g->rsa, g->csa, mb - ir < MR ? mb - ir : MR, MR, kb);
                for (jr = 0; jr < nb; jr += NR)
                    for (ir = 0; ir < mb; ir += MR) {
                        float *c = g->c + (size_t)(i0 + ir) * g->ldc + (j0 + jr);
                        int h = mb - ir < MR ? mb - ir : MR, w = nb - jr < NR ? nb - jr : NR;
                        if (h == MR && w == NR) {
                            g->ops->ukernel(kb, pa + (size_t)ir * kb, pb + (size_t)jr * kb, c, g->ldc, acc);
                        } else { /* edge: compute the full tile aside, keep the valid part */
                            g->ops->ukernel(kb, pa + (size_t)ir * kb, pb + (size_t)jr * kb, tmp, (size_t)NR, 0);
                            for (i = 0; i < h; i++)
                                for (j = 0; j < w; j++)
                                    c[(size_t)i * g->ldc + j] = acc ? tmp[i * NR + j] + c[(size_t)i * g->ldc + j]
                                                                    : tmp[i * NR + j];
                        }
                    }
            }
        }
        if (!g->accumulate && (g->bias || g->K == 0))
            for (i = r0; i < r1; i++)
                for (j = j0; j < j0 + nb; j++) {
                    float *c = g->c + (size_t)i * g->ldc + j;
                    float bj = g->bias ? g->bias[j] : 0.0f;
                    *c = g->K == 0 ? bj : *c + bj;
                }
    }
}

/* Every thread's packing scratch is sized once for the largest tile (an A panel MC x KC, a B
   block NC x KC, one MR x NR tile), on the calling thread before the first job, so no worker
   ever allocates inside a training step (which thread meets the largest tile first depends on
   scheduling, and the model promises no allocation after create + one warm-up step). */
static void distill__reserve_scratch(distill__pool *P) {
    size_t need = (size_t)DISTILL__MC * DISTILL__KC + (size_t)DISTILL__NC * DISTILL__KC + 64 * 64;
    int t;
    for (t = 0; t < P->n_threads && t < DISTILL__MAX_THREADS; t++) distill__thread_scratch(t, need);
    P->scratch_reserved = P->n_threads;
}

/* Split C into tasks of (mc rows) x (nc columns), mc a multiple of MC: few big tasks (the B
   block is packed once per task) but at least ~3 per thread so the threads finish together. */
static void distill__gemm_run(distill__gemm *g) {
    int nth = distill_get_threads(), blocks_m, blocks_n, per, tasks;
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K <= 0 && g->accumulate) return;
    g->ops = distill__ops();
    g->nc = DISTILL__NC;
    blocks_m = (g->M + DISTILL__MC - 1) / DISTILL__MC;
    while (nth > 1 && g->nc > 64 && blocks_m * ((g->N + g->nc - 1) / g->nc) < 3 * nth) g->nc /= 2;
    blocks_n = (g->N + g->nc - 1) / g->nc;
    per = nth == 1 ? blocks_m : (blocks_m * blocks_n) / (3 * nth);
    if (per < 1) per = 1;
    if (per > blocks_m) per = blocks_m;
    g->mc = per * DISTILL__MC;
    g->tiles_n = blocks_n;
    tasks = ((g->M + g->mc - 1) / g->mc) * blocks_n;
    distill_parallel_for((int64_t)tasks, 1, distill__gemm_task, g);
}

/* The same product on the calling thread only (from inside a task; `thread` picks the
   scratch). Used by the attention kernels on their small blocks. */
static void distill__gemm_serial(int M, int N, int K, const float *a, size_t rsa, size_t csa,
                                 const float *b, size_t rsb, size_t csb, float *c, size_t ldc,
                                 int accumulate, int thread) {
    distill__gemm g;
    if (M <= 0 || N <= 0 || (K <= 0 && accumulate)) return;
    memset(&g, 0, sizeof g);
    g.M = M; g.N = N; g.K = K;
    g.a = a; g.rsa = rsa; g.csa = csa;
    g.b = b; g.rsb = rsb; g.csb = csb;
    g.c = c; g.ldc = ldc;
    g.accumulate = accumulate;
    g.ops = distill__ops();
    g.nc = DISTILL__NC;
    g.mc = (M + DISTILL__MC - 1) / DISTILL__MC * DISTILL__MC;
    g.tiles_n = (N + g.nc - 1) / g.nc;
    distill__gemm_task(&g, 0, (int64_t)g.tiles_n, thread);
}

/* dbias (OC) += sum over BT of dout (BT,OC), columns split across threads, rows summed in
   order, so the result does not depend on the thread count. */
typedef struct { float *dbias; const float *dout; int BT, OC; } distill__dbias_ctx;
static void distill__dbias_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__dbias_ctx *d = (const distill__dbias_ctx *)ctx;
    int t, o;
    (void)thread;
    for (t = 0; t < d->BT; t++) {
        const float *g = d->dout + (size_t)t * d->OC;
        for (o = (int)begin; o < (int)end; o++) d->dbias[o] += g[o];
    }
}

#ifdef DISTILL_OPENBLAS
/* OpenBLAS path. OpenBLAS runs single-threaded (openblas_set_num_threads(1), set once before
   the first job) INSIDE our workers: each task multiplies one fixed block of rows, so there
   is exactly one pool on the cores and the blocks (hence the bits) do not depend on the
   thread count. */
typedef struct {
    int which; /* 0 forward, 1 dX, 2 dW */
    float *out; const float *inp, *weight, *bias, *dout;
    int BT, C, OC;
} distill__blas_ctx;
#define DISTILL__BLAS_ROWS 128
static void distill__blas_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__blas_ctx *b = (const distill__blas_ctx *)ctx;
    int64_t blk;
    (void)thread;
    for (blk = begin; blk < end; blk++) {
        int r0 = (int)blk * DISTILL__BLAS_ROWS, rows, r, o;
        if (b->which == 0) {
            rows = b->BT - r0 < DISTILL__BLAS_ROWS ? b->BT - r0 : DISTILL__BLAS_ROWS;
            if (b->bias)
                for (r = r0; r < r0 + rows; r++)
                    for (o = 0; o < b->OC; o++) b->out[(size_t)r * b->OC + o] = b->bias[o];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, b->OC, b->C, 1.0f,
                        b->inp + (size_t)r0 * b->C, b->C, b->weight, b->C, b->bias ? 1.0f : 0.0f,
                        b->out + (size_t)r0 * b->OC, b->OC);
        } else if (b->which == 1) {
            rows = b->BT - r0 < DISTILL__BLAS_ROWS ? b->BT - r0 : DISTILL__BLAS_ROWS;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, b->C, b->OC, 1.0f,
                        b->dout + (size_t)r0 * b->OC, b->OC, b->weight, b->C, 1.0f,
                        b->out + (size_t)r0 * b->C, b->C);
        } else {
            rows = b->OC - r0 < DISTILL__BLAS_ROWS ? b->OC - r0 : DISTILL__BLAS_ROWS;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, b->C, b->BT, 1.0f,
                        b->dout + r0, b->OC, b->inp, b->C, 1.0f, b->out + (size_t)r0 * b->C, b->C);
        }
    }
}
static void distill__blas_run(distill__blas_ctx *b, int rows_total) {
    if (rows_total <= 0 || b->C <= 0 || b->OC <= 0) return;
    distill_parallel_for((int64_t)((rows_total + DISTILL__BLAS_ROWS - 1) / DISTILL__BLAS_ROWS), 1,
                         distill__blas_task, b);
}
static void distill__blas_init(void) {
    if (!distill__the_pool.blas_init) {
        openblas_set_num_threads(1);
        distill__the_pool.blas_init = 1;
    }
}
#else
static void distill__blas_init(void) {}
#endif

DISTILL_API int distill_set_blas(int on) {
#ifdef DISTILL_OPENBLAS
    distill__the_pool.no_blas = !on;
    return 0;
#else
    return on ? -1 : 0;
#endif
}

DISTILL_API void distill_matmul_forward(float *out, const float *inp, const float *weight,
                                        const float *bias, int BT, int C, int OC) {
#ifdef DISTILL_OPENBLAS
    if (C > 0 && !distill__the_pool.no_blas) {
        distill__blas_ctx b;
        memset(&b, 0, sizeof b);
        b.which = 0; b.out = out; b.inp = inp; b.weight = weight; b.bias = bias;
        b.BT = BT; b.C = C; b.OC = OC;
        distill__blas_init();
        distill__blas_run(&b, BT);
        return;
    }
#endif
    {
        distill__gemm g;
        memset(&g, 0, sizeof g);
        g.M = BT; g.N = OC; g.K = C;
        g.a = inp; g.rsa = (size_t)C; g.csa = 1;
        g.b = weight; g.rsb = 1; g.csb = (size_t)C;
        g.c = out; g.ldc = (size_t)OC;
        g.bias = bias;
        distill__gemm_run(&g);
    }
}

DISTILL_API void distill_matmul_backward(float *dinp, float *dweight, float *dbias,
                                         const float *dout, const float *inp,
                                         const float *weight, int BT, int C, int OC) {
    if (BT <= 0 || OC <= 0) return;
#ifdef DISTILL_OPENBLAS
    if (!distill__the_pool.no_blas) {
        distill__blas_ctx b;
        memset(&b, 0, sizeof b);
        b.inp = inp; b.weight = weight; b.dout = dout; b.BT = BT; b.C = C; b.OC = OC;
        distill__blas_init();
        if (dinp) { b.which = 1; b.out = dinp; distill__blas_run(&b, BT); }
        if (dweight) { b.which = 2; b.out = dweight; distill__blas_run(&b, OC); }
        dinp = dweight = NULL; /* done */
    }
#endif
    if (dinp) { /* dinp (BT,C) += dout (BT,OC) . W (OC,C) */
        distill__gemm g;
        memset(&g, 0, sizeof g);
        g.M = BT; g.N = C; g.K = OC;
        g.a = dout; g.rsa = (size_t)OC; g.csa = 1;
        g.b = weight; g.rsb = (size_t)C; g.csb = 1;
        g.c = dinp; g.ldc = (size_t)C;
        g.accumulate = 1;
        distill__gemm_run(&g);
    }
    if (dweight) { /* dW (OC,C) += dout^T (OC,BT) . inp (BT,C) */
        distill__gemm g;
        memset(&g, 0, sizeof g);
        g.M = OC; g.N = C; g.K = BT;
        g.a = dout; g.rsa = 1; g.csa = (size_t)OC;
        g.b = inp; g.rsb = (size_t)C; g.csb = 1;
        g.c = dweight; g.ldc = (size_t)C;
        g.accumulate = 1;
        distill__gemm_run(&g);
    }
    if (dbias) {
        distill__dbias_ctx d;
        d.dbias = dbias; d.dout = dout; d.BT = BT; d.OC = OC;
        distill_parallel_for((int64_t)OC, 256, distill__dbias_task, &d);
    }
}

/* ===================================================================================== */
/* Blocked flash attention                                                                */
/* ===================================================================================== */
/* Same contract as distill_attention_forward/backward in the model part (causal GQA, lengths,
   kstart for packed segments, lse saved, dq/dk/dv overwritten), but computed on blocks of 64
   queries x 64 keys with the matmul engine, so the FLOPs run in the FMA micro-kernel instead
   of one dot product per (query, key) pair:
     forward, per (b, h, query block):   for each key block
         S = Q K^T * scale   (masked: j < kstart[t] or j > t  ->  -inf)
         online softmax per row: m' = max(m, rowmax S), O *= exp(m - m'), l = l exp(m - m') + sum P,
         P = exp(S - m'),  O += P V
       then O /= l, lse = m + log l.
     backward, per (b, kv head g) (the task owns dk, dv of g and dq of g's query heads),
       D_t = dout_t . out_t, and for each query block and each key block before it:
         P = exp(S - lse),  dP = dO V^T,  dS = P (dP - D) * scale
         dV += P^T dO,  dK += dS^T Q,  dQ += dS K
   Every float is produced by one task in a fixed order: identical for any thread count. */
#define DISTILL__FA_Q 64
#define DISTILL__FA_K 64

typedef struct {
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *cout, *clse;
    const int *lengths, *kstart;
    int B, T, NH, NKV, HS;
} distill__fa_ctx;

/* Scale row i of the S block, mask keys outside [kstart, t], return 0 if none is visible. */
static int distill__fa_mask_row(float *srow, int nk, int j0, int ks, int t, float scale) {
    int j, lo = ks - j0, hi = t - j0;
    if (lo < 0) lo = 0;
    if (hi > nk - 1) hi = nk - 1;
    if (lo > hi) return 0;
    for (j = 0; j < lo; j++) srow[j] = -INFINITY;
    for (j = lo; j <= hi; j++) srow[j] *= scale;
    for (j = hi + 1; j < nk; j++) srow[j] = -INFINITY;
    return 1;
}

static void distill__fa_fwd_task(void *p, int64_t b0, int64_t e0, int th) {
    const distill__fa_ctx *c = (const distill__fa_ctx *)p;
    const int T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV;
    const int nqb = (T + DISTILL__FA_Q - 1) / DISTILL__FA_Q;
    const size_t qs = (size_t)NH * HS, ks = (size_t)NKV * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    float S[DISTILL__FA_Q * DISTILL__FA_K], mrow[DISTILL__FA_Q], lrow[DISTILL__FA_Q]; /* 16.5 KB of stack */
    int64_t task;
    for (task = b0; task < e0; task++) {
        int b = (int)(task / ((int64_t)NH * nqb)), h = (int)(task / nqb % NH), qb = (int)(task % nqb);
        int g = h / rep, t0 = qb * DISTILL__FA_Q, t1 = t0 + DISTILL__FA_Q < T ? t0 + DISTILL__FA_Q : T;
        int len = c->lengths ? c->lengths[b] : T, tv1 = t1 < len ? t1 : len, nq = tv1 - t0, i, j0, ksmin;
        const float *qblk = c->q + ((size_t)b * T + t0) * qs + (size_t)h * HS;
        float *oblk = c->out + ((size_t)b * T + t0) * qs + (size_t)h * HS;
        float *lse = c->lse + ((size_t)b * NH + h) * T;
        for (i = 0; i < t1 - t0; i++) memset(oblk + (size_t)i * qs, 0, sizeof(float) * (size_t)HS);
        for (i = (nq > 0 ? nq : 0); i < t1 - t0; i++) lse[t0 + i] = 0.0f;   /* past the length */
        if (nq <= 0) continue;
        ksmin = tv1 - 1;
        for (i = 0; i < nq; i++) {
            int kst = c->kstart ? c->kstart[(size_t)b * T + t0 + i] : 0;
            if (kst < ksmin) ksmin = kst;
            mrow[i] = -INFINITY;
            lrow[i] = 0.0f;
        }
        for (j0 = ksmin; j0 < tv1; j0 += DISTILL__FA_K) {
            int nk = tv1 - j0 < DISTILL__FA_K ? tv1 - j0 : DISTILL__FA_K;
            const float *kblk = c->k + ((size_t)b * T + j0) * ks + (size_t)g * HS;
            const float *vblk = c->v + ((size_t)b * T + j0) * ks + (size_t)g * HS;
            /* S (nq, nk) = Q (nq, HS) . K (nk, HS)^T */
            distill__gemm_serial(nq, nk, HS, qblk, qs, 1, kblk, 1, ks, S, DISTILL__FA_K, 0, th);
            for (i = 0; i < nq; i++) {
                float *srow = S + (size_t)i * DISTILL__FA_K, mb;
                int t = t0 + i, kst = c->kstart ? c->kstart[(size_t)b * T + t] : 0;
                if (!distill__fa_mask_row(srow, nk, j0, kst, t, scale)) {
                    memset(srow, 0, sizeof(float) * (size_t)nk);
                    continue;
                }
                mb = distill_vec_max(srow, nk);
                if (mb > mrow[i]) { /* rescale what was accumulated under the old max */
                    float corr = expf(mrow[i] - mb);
                    distill_vec_scale(oblk + (size_t)i * qs, corr, HS);
                    lrow[i] *= corr;
                    mrow[i] = mb;
                }
                lrow[i] += distill_vec_exp_sum(srow, srow, mrow[i], nk);
            }
            /* O (nq, HS) += P (nq, nk) . V (nk, HS) */
            distill__gemm_serial(nq, HS, nk, S, DISTILL__FA_K, 1, vblk, ks, 1, oblk, qs, 1, th);
        }
        for (i = 0; i < nq; i++) {
            distill_vec_scale(oblk + (size_t)i * qs, 1.0f / lrow[i], HS);
            lse[t0 + i] = mrow[i] + logf(lrow[i]);
        }
    }
}

DISTILL_API void distill_flash_attention_forward(float *out, float *lse, const float *q, const float *k,
                                                 const float *v, const int *lengths, const int *kstart,
                                                 int B, int T, int NH, int NKV, int HS) {
    distill__fa_ctx c;
    int64_t nqb = (T + DISTILL__FA_Q - 1) / DISTILL__FA_Q;
    if (B <= 0 || T <= 0 || NH <= 0 || NKV <= 0 || HS <= 0 || NH % NKV) return;
    memset(&c, 0, sizeof c);
    c.out = out; c.lse = lse; c.q = q; c.k = k; c.v = v; c.lengths = lengths; c.kstart = kstart;
    c.B = B; c.T = T; c.NH = NH; c.NKV = NKV; c.HS = HS;
    distill_parallel_for((int64_t)B * NH * nqb, 1, distill__fa_fwd_task, &c);
}

static void distill__fa_bwd_task(void *p, int64_t b0, int64_t e0, int th) {
    const distill__fa_ctx *c = (const distill__fa_ctx *)p;
    const int T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV;
    const size_t qs = (size_t)NH * HS, ks = (size_t)NKV * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    float P[DISTILL__FA_Q * DISTILL__FA_K], dS[DISTILL__FA_Q * DISTILL__FA_K], D[DISTILL__FA_Q]; /* 33 KB */
    int64_t task;
    for (task = b0; task < e0; task++) {
        int b = (int)(task / NKV), g = (int)(task % NKV), h, t, t0, j0, i, j;
        int len = c->lengths ? c->lengths[b] : T;
        for (t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            memset(c->dk + n * ks + (size_t)g * HS, 0, sizeof(float) * (size_t)HS);
            memset(c->dv + n * ks + (size_t)g * HS, 0, sizeof(float) * (size_t)HS);
            for (h = g * rep; h < (g + 1) * rep; h++) memset(c->dq + n * qs + (size_t)h * HS, 0, sizeof(float) * (size_t)HS);
        }
        for (h = g * rep; h < (g + 1) * rep; h++) {
            const float *lse = c->clse + ((size_t)b * NH + h) * T;
            for (t0 = 0; t0 < len && t0 < T; t0 += DISTILL__FA_Q) {
                int tv1 = t0 + DISTILL__FA_Q < len ? t0 + DISTILL__FA_Q : len, nq, ksmin = tv1 - 1;
                const float *qblk, *doblk;
                float *dqblk;
                if (tv1 > T) tv1 = T;
                nq = tv1 - t0;
                qblk = c->q + ((size_t)b * T + t0) * qs + (size_t)h * HS;
                doblk = c->dout + ((size_t)b * T + t0) * qs + (size_t)h * HS;
                dqblk = c->dq + ((size_t)b * T + t0) * qs + (size_t)h * HS;
                for (i = 0; i < nq; i++) {
                    int kst = c->kstart ? c->kstart[(size_t)b * T + t0 + i] : 0;
                    if (kst < ksmin) ksmin = kst;
                    D[i] = distill_vec_dot(doblk + (size_t)i * qs, c->cout + ((size_t)b * T + t0 + i) * qs + (size_t)h * HS, HS);
                }
                for (j0 = ksmin; j0 < tv1; j0 += DISTILL__FA_K) {
                    int nk = tv1 - j0 < DISTILL__FA_K ? tv1 - j0 : DISTILL__FA_K;
                    size_t kvoff = ((size_t)b * T + j0) * ks + (size_t)g * HS;
                    /* P = exp(Q K^T * scale - lse), dP = dO V^T */
                    distill__gemm_serial(nq, nk, HS, qblk, qs, 1, c->k + kvoff, 1, ks, P, DISTILL__FA_K, 0, th);
                    distill__gemm_serial(nq, nk, HS, doblk, qs, 1, c->v + kvoff, 1, ks, dS, DISTILL__FA_K, 0, th);
                    for (i = 0; i < nq; i++) {
                        float *prow = P + (size_t)i * DISTILL__FA_K, *drow = dS + (size_t)i * DISTILL__FA_K;
                        int tt = t0 + i, kst = c->kstart ? c->kstart[(size_t)b * T + tt] : 0;
                        if (!distill__fa_mask_row(prow, nk, j0, kst, tt, scale)) {
                            memset(prow, 0, sizeof(float) * (size_t)nk);
                            memset(drow, 0, sizeof(float) * (size_t)nk);
                            continue;
                        }
                        distill_vec_exp_sum(prow, prow, lse[tt], nk);
                        /* dS = P (dP - D) * scale; masked entries have P = 0 */
                        for (j = 0; j < nk; j++) drow[j] = prow[j] * (drow[j] - D[i]) * scale;
                    }
                    /* dV (nk, HS) += P^T dO;  dK (nk, HS) += dS^T Q;  dQ (nq, HS) += dS K */
                    distill__gemm_serial(nk, HS, nq, P, 1, DISTILL__FA_K, doblk, qs, 1, c->dv + kvoff, ks, 1, th);
                    distill__gemm_serial(nk, HS, nq, dS, 1, DISTILL__FA_K, qblk, qs, 1, c->dk + kvoff, ks, 1, th);
                    distill__gemm_serial(nq, HS, nk, dS, DISTILL__FA_K, 1, c->k + kvoff, ks, 1, dqblk, qs, 1, th);
                }
            }
        }
    }
}

DISTILL_API void distill_flash_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                                  const float *q, const float *k, const float *v,
                                                  const float *out, const float *lse, const int *lengths,
                                                  const int *kstart, int B, int T, int NH, int NKV, int HS) {
    distill__fa_ctx c;
    if (B <= 0 || T <= 0 || NH <= 0 || NKV <= 0 || HS <= 0 || NH % NKV) return;
    memset(&c, 0, sizeof c);
    c.dq = dq; c.dk = dk; c.dv = dv; c.dout = dout; c.q = q; c.k = k; c.v = v; c.cout = out; c.clse = lse;
    c.lengths = lengths; c.kstart = kstart; c.B = B; c.T = T; c.NH = NH; c.NKV = NKV; c.HS = HS;
    distill_parallel_for((int64_t)B * NKV, 1, distill__fa_bwd_task, &c);
}
