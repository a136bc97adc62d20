/* Matmul GFLOP/s on transformer shapes: our kernels (each SIMD set the CPU has) against
   OpenBLAS (when built with DISTILL_OPENBLAS), 1 and 2 threads, in one run. One JSON line per
   measurement; the median of `reps` runs (the machine is shared and noisy).
     make bench        (builds with BLAS=1 and runs bench/run.sh)
     build/bench_kernels [reps [max_threads [shape_index, 99 = attention only]]]
   gflops is by wall time; gflops_per_cpu_s by process CPU time times the thread count (what
   the threads achieve while they run; equal to gflops on an idle machine). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"

typedef struct { const char *name; int BT, C, OC; } shape;
/* (BT, C, OC): forward is (BT x OC) = (BT x C) . (C x OC), i.e. M x N x K = BT x OC x C */
static const shape shapes[] = {
    {"S ffn up   2048x768x256", 2048, 256, 768},
    {"S lm head  2048x4096x256", 2048, 256, 4096},
    {"M ffn up   2048x1408x512", 2048, 512, 1408},
    {"big        2048x2048x512", 2048, 512, 2048},
    {"per-head   512x512x64", 512, 64, 512},
};

/* CPU time of the process: unlike wall time, not inflated when the shared machine preempts
   us; with 1 thread GFLOP/s by CPU time is the kernel's own speed. */
static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Attention forward + backward: the model part's kernel (one dot product per query/key pair)
   against the blocked flash kernel of the kernels part, on the S and M shapes. */
static void bench_attention(int reps, int max_threads) {
    static const int cfgs[2][5] = {{8, 256, 4, 4, 64}, {4, 512, 8, 8, 64}}; /* B T NH NKV HS */
    int ci, nt, impl, r;
    distill_rng rng;
    distill_rng_seed(&rng, 9);
    for (ci = 0; ci < 2; ci++) {
        int B = cfgs[ci][0], T = cfgs[ci][1], NH = cfgs[ci][2], NKV = cfgs[ci][3], HS = cfgs[ci][4];
        size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * NKV * HS, i;
        float *q = (float *)malloc(nq * 4), *k = (float *)malloc(nk * 4), *v = (float *)malloc(nk * 4);
        float *o = (float *)malloc(nq * 4), *l = (float *)malloc((size_t)B * NH * T * 4), *d = (float *)malloc(nq * 4);
        float *dq = (float *)malloc(nq * 4), *dk = (float *)malloc(nk * 4), *dv = (float *)malloc(nk * 4);
        /* causal: QK^T and PV over ~T/2 keys each, forward 2 products, backward 5 */
        double flops = 2.0 * B * NH * (double)T * (T + 1) / 2 * HS * 7;
        for (i = 0; i < nq; i++) { q[i] = (float)distill_rng_normal(&rng); d[i] = (float)distill_rng_normal(&rng); }
        for (i = 0; i < nk; i++) { k[i] = (float)distill_rng_normal(&rng); v[i] = (float)distill_rng_normal(&rng); }
        for (nt = 1; nt <= max_threads; nt++) {
            distill_set_threads(nt);
            for (impl = 0; impl < 2; impl++) {
                double t[99];
                for (r = 0; r < reps + 1; r++) {
                    double t0 = distill_time_seconds();
                    if (impl == 0) {
                        distill_attention_forward(o, l, q, k, v, NULL, NULL, B, T, NH, NKV, HS);
                        distill_attention_backward(dq, dk, dv, d, q, k, v, o, l, NULL, NULL, B, T, NH, NKV, HS);
                    } else {
                        distill_flash_attention_forward(o, l, q, k, v, NULL, NULL, B, T, NH, NKV, HS);
                        distill_flash_attention_backward(dq, dk, dv, d, q, k, v, o, l, NULL, NULL, B, T, NH, NKV, HS);
                    }
                    if (r > 0) t[r - 1] = distill_time_seconds() - t0;
                }
                qsort(t, (size_t)reps, sizeof(double), cmp_d);
                printf("{\"bench\":\"attention_fwd_bwd\",\"shape\":\"B%d T%d NH%d HS%d\",\"impl\":\"%s\",\"threads\":%d,"
                       "\"ms_median\":%.2f,\"gflops\":%.1f}\n", B, T, NH, HS, impl ? "flash (kernels part)" : "model part",
                       nt, 1e3 * t[reps / 2], flops / t[reps / 2] / 1e9);
                fflush(stdout);
            }
        }
        free(q); free(k); free(v); free(o); free(l); free(d); free(dq); free(dk); free(dv);
    }
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 7, s, nt, impl, op, r;
    int max_threads = argc > 2 ? atoi(argv[2]) : 2, only_shape = argc > 3 ? atoi(argv[3]) : -1;
    static const char *const impls[] = {"avx2", "avx512", "neon", "scalar", "openblas"};
    distill_rng rng;
    distill_rng_seed(&rng, 1);
    if (reps < 1 || reps > 99) reps = 7;
    if (only_shape == 99) { bench_attention(reps, max_threads); return 0; }
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        const shape *sh = &shapes[s];
        if (only_shape >= 0 && s != only_shape) continue;
        size_t nx = (size_t)sh->BT * sh->C, nw = (size_t)sh->OC * sh->C, no = (size_t)sh->BT * sh->OC, i;
        float *x = (float *)distill_alloc_aligned(nx * 4, 64), *w = (float *)distill_alloc_aligned(nw * 4, 64);
        float *o = (float *)distill_alloc_aligned(no * 4, 64), *dx = (float *)distill_alloc_aligned(nx * 4, 64);
        float *dw = (float *)distill_alloc_aligned(nw * 4, 64);
        double flops = 2.0 * sh->BT * sh->C * sh->OC;
        for (i = 0; i < nx; i++) x[i] = (float)distill_rng_normal(&rng);
        for (i = 0; i < nw; i++) w[i] = 0.02f * (float)distill_rng_normal(&rng);
        for (i = 0; i < no; i++) o[i] = (float)distill_rng_normal(&rng);
        for (nt = 1; nt <= max_threads; nt++) {
            distill_set_threads(nt);
            for (impl = 0; impl < 5; impl++) {
                if (impl == 4) { if (distill_set_blas(1) != 0) continue; }
                else {
                    distill_set_blas(0);
                    if (distill_set_simd(impls[impl]) != 0) continue;
                    if (impl == 3) continue; /* scalar: far too slow to be interesting */
                }
                for (op = 0; op < 3; op++) {
                    double t[99], c[99];
                    for (r = 0; r < reps + 1; r++) {
                        double t0 = distill_time_seconds(), c0 = cpu_seconds();
                        if (op == 0) distill_matmul_forward(o, x, w, NULL, sh->BT, sh->C, sh->OC);
                        else if (op == 1) distill_matmul_backward(dx, NULL, NULL, o, x, w, sh->BT, sh->C, sh->OC);
                        else distill_matmul_backward(NULL, dw, NULL, o, x, w, sh->BT, sh->C, sh->OC);
                        if (r > 0) { /* first run: warm-up */
                            t[r - 1] = distill_time_seconds() - t0;
                            c[r - 1] = cpu_seconds() - c0;
                        }
                    }
                    qsort(t, (size_t)reps, sizeof(double), cmp_d);
                    qsort(c, (size_t)reps, sizeof(double), cmp_d);
                    printf("{\"bench\":\"matmul\",\"shape\":\"%s\",\"op\":\"%s\",\"impl\":\"%s\",\"threads\":%d,"
                           "\"ms_median\":%.3f,\"gflops\":%.1f,\"gflops_per_cpu_s\":%.1f}\n", sh->name,
                           op == 0 ? "fwd" : op == 1 ? "dX" : "dW", impls[impl], nt, 1e3 * t[reps / 2],
                           flops / t[reps / 2] / 1e9, flops / c[reps / 2] / 1e9 * nt);
                    fflush(stdout);
                }
            }
        }
        distill_set_simd(NULL);
        distill_free_aligned(x); distill_free_aligned(w); distill_free_aligned(o);
        distill_free_aligned(dx); distill_free_aligned(dw);
    }
    if (only_shape < 0) bench_attention(reps, max_threads);
    return 0;
}
