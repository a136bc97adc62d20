/* FMA peak of this machine: independent FMA chains in registers (no memory traffic), on 1..N
   threads at once. 2 FMAs per cycle per core with latency 4 need >= 8 independent chains;
   we run 12 (with distinct values, or the compiler merges them into one chain). Each thread
   times itself by its own CPU time, so the result is the machine's peak even when the shared
   machine preempts us (it says nothing about whether 2 cores were free). Prints GFLOP/s (1 FMA = 2 FLOPs) for AVX2 (8 lanes) and AVX-512 (16 lanes).
     cc -O2 bench/fma_peak.c -o build/fma_peak -lpthread && build/fma_peak [threads] [seconds] */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define REPS 100000
/* Thread CPU time: on a shared machine the wall clock also counts time we were preempted. */
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

__attribute__((target("avx2,fma"))) static float chains_avx2(long iters) {
    /* distinct starting values, or the compiler merges the chains into one */
    __m256 a0 = _mm256_set1_ps(0.50f), a1 = _mm256_set1_ps(0.51f), a2 = _mm256_set1_ps(0.52f), a3 = _mm256_set1_ps(0.53f), a4 = _mm256_set1_ps(0.54f);
    __m256 a5 = _mm256_set1_ps(0.55f), a6 = _mm256_set1_ps(0.56f), a7 = _mm256_set1_ps(0.57f), a8 = _mm256_set1_ps(0.58f), a9 = _mm256_set1_ps(0.59f);
    __m256 a10 = _mm256_set1_ps(0.60f), a11 = _mm256_set1_ps(0.61f);
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    long i;
    float out[8];
    for (i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c); a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c); a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c); a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c); a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
    }
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    _mm256_storeu_ps(out, a0);
    return out[0];
}
__attribute__((target("avx512f"))) static float chains_avx512(long iters) {
    /* distinct starting values, or the compiler merges the chains into one */
    __m512 a0 = _mm512_set1_ps(0.50f), a1 = _mm512_set1_ps(0.51f), a2 = _mm512_set1_ps(0.52f), a3 = _mm512_set1_ps(0.53f), a4 = _mm512_set1_ps(0.54f);
    __m512 a5 = _mm512_set1_ps(0.55f), a6 = _mm512_set1_ps(0.56f), a7 = _mm512_set1_ps(0.57f), a8 = _mm512_set1_ps(0.58f), a9 = _mm512_set1_ps(0.59f);
    __m512 a10 = _mm512_set1_ps(0.60f), a11 = _mm512_set1_ps(0.61f);
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    long i;
    float out[16];
    for (i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, m, c); a1 = _mm512_fmadd_ps(a1, m, c); a2 = _mm512_fmadd_ps(a2, m, c);
        a3 = _mm512_fmadd_ps(a3, m, c); a4 = _mm512_fmadd_ps(a4, m, c); a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c); a7 = _mm512_fmadd_ps(a7, m, c); a8 = _mm512_fmadd_ps(a8, m, c);
        a9 = _mm512_fmadd_ps(a9, m, c); a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    _mm512_storeu_ps(out, a0);
    return out[0];
}

typedef struct { int isa; long iters; double secs; volatile float sink; } job;
static void *run(void *p) {
    job *j = (job *)p;
    double t = now();
    j->sink = j->isa == 512 ? chains_avx512(j->iters) : chains_avx2(j->iters);
    j->secs = now() - t;
    return NULL;
}

/* GFLOP/s of `nt` threads running the chains together (sum over threads). */
static double peak(int isa, int nt, double seconds) {
    job jobs[64];
    pthread_t th[64];
    double lanes = isa == 512 ? 16 : 8, total = 0, t0;
    long iters = 1000000;
    int i;
    job probe;
    probe.isa = isa; probe.iters = iters;
    run(&probe);                                   /* warm up and calibrate */
    iters = (long)(iters * seconds / (probe.secs > 1e-4 ? probe.secs : 1e-4));
    t0 = now();
    for (i = 0; i < nt; i++) { jobs[i].isa = isa; jobs[i].iters = iters; pthread_create(&th[i], NULL, run, &jobs[i]); }
    for (i = 0; i < nt; i++) pthread_join(th[i], NULL);
    (void)t0;
    for (i = 0; i < nt; i++) total += 12.0 * lanes * 2.0 * (double)iters / jobs[i].secs;
    return total / 1e9;
}

int main(int argc, char **argv) {
    int max_t = argc > 1 ? atoi(argv[1]) : 2, nt, reps = 5, r, isa_i;
    double seconds = argc > 2 ? atof(argv[2]) : 0.3;
    static const int isas[2] = {256, 512};
    __builtin_cpu_init();
    for (isa_i = 0; isa_i < 2; isa_i++) {
        int isa = isas[isa_i];
        if (isa == 256 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) continue;
        if (isa == 512 && !__builtin_cpu_supports("avx512f")) continue;
        for (nt = 1; nt <= max_t && nt <= 64; nt++) {
            double v[16], tmp;
            int a, b;
            for (r = 0; r < reps; r++) v[r] = peak(isa, nt, seconds);
            for (a = 0; a < reps; a++) for (b = a + 1; b < reps; b++) if (v[b] < v[a]) { tmp = v[a]; v[a] = v[b]; v[b] = tmp; }
            printf("{\"bench\":\"fma_peak\",\"isa\":\"%s\",\"threads\":%d,\"gflops_median\":%.1f,\"gflops_max\":%.1f}\n",
                   isa == 512 ? "avx512" : "avx2", nt, v[reps / 2], v[reps - 1]);
            fflush(stdout);
        }
    }
    return 0;
}
#else
int main(void) { printf("fma_peak: x86-64 with GCC/clang only\n"); return 0; }
#endif
