/* Generation speed: prefill and decode tokens/s with the KV cache, batch 1 and batched, for a
   few small model shapes (random weights: speed does not depend on the values), plus the real
   stories260K when ../shared/data is present.

     make bench-generate            (or: build/bench/bench_generate [new_tokens] [prompt_len])

   Decode tokens/s counts generated tokens of all sequences per wall second; prefill tokens/s
   counts prompt tokens. Greedy, no stop tokens, so every sequence makes exactly N tokens.

   The memory-bandwidth bound of batch-1 decoding: each token streams every weight the step
   reads once (layers, final norm, LM head; the embedding only one row), W bytes, so at a
   bandwidth of G bytes/s no implementation exceeds G / W tokens/s. G is measured here, on the
   pool's threads, two ways (median of 5, arrays of 96 MB, far beyond the caches):
     triad   a[i] = b[i] + s c[i], counted as 4 streams (2 reads, the write and the read the
             write-allocate makes), the figure the bound uses;
     read    sum of a[i] (the access pattern of a matrix-vector product over the weights).
   The table prints, for B = 1, tokens/s / bound as "of bound" against the triad figure. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include <stdlib.h>

typedef struct { const char *name; int V, C, L, NH, NKV, F; } shape;

/* ---- memory bandwidth on the pool's threads ------------------------------------------- */
#define BW_N ((int64_t)24 << 20)   /* floats per array: 96 MB */
typedef struct { float *a; const float *b, *c, *ones; double *part; int read_only; } bw_ctx;
static void bw_task(void *p, int64_t b0, int64_t e0, int th) {
    const bw_ctx *x = (const bw_ctx *)p;
    int64_t blk, i;
    (void)th;
    for (blk = b0; blk < e0; blk++) {
        int64_t i0 = blk * (BW_N / 64), i1 = i0 + BW_N / 64;
        if (x->read_only) {   /* SIMD dot products with a vector of ones that stays in L1 */
            double sum = 0.0;
            for (i = i0; i < i1; i += 1024) sum += distill_vec_dot(x->a + i, x->ones, 1024);
            x->part[blk] = sum;
        } else {
            for (i = i0; i < i1; i++) x->a[i] = x->b[i] + 1.5f * x->c[i];
        }
    }
}
static double cmp_median(double *v, int n) {
    int i, j;
    for (i = 1; i < n; i++) for (j = i; j > 0 && v[j] < v[j - 1]; j--) { double t = v[j]; v[j] = v[j - 1]; v[j - 1] = t; }
    return v[n / 2];
}
/* GB/s: triad (4 streams) and read-only, median of 5 after a first touch */
static void bandwidth(double *triad, double *read) {
    float *a = (float *)malloc(sizeof(float) * BW_N), *b = (float *)malloc(sizeof(float) * BW_N);
    float *c = (float *)malloc(sizeof(float) * BW_N);
    static double part[64];
    static float ones[1024];
    double vt[5], vr[5];
    bw_ctx x;
    int64_t i;
    int r;
    if (!a || !b || !c) { printf("bandwidth: out of memory\n"); exit(1); }
    for (i = 0; i < BW_N; i++) { a[i] = 0.0f; b[i] = 1.0f; c[i] = (float)(i & 7); }
    for (i = 0; i < 1024; i++) ones[i] = 1.0f;   /* the read pass: a . ones, one 4 KB block reused */
    x.a = a; x.b = b; x.c = c; x.ones = ones; x.part = part;
    for (r = 0; r < 6; r++) {
        double t0;
        x.read_only = 0;
        t0 = distill_time_seconds();
        distill_parallel_for(64, 1, bw_task, &x);
        if (r) vt[r - 1] = 4.0 * 4.0 * BW_N / (distill_time_seconds() - t0) / 1e9;
        x.read_only = 1;
        t0 = distill_time_seconds();
        distill_parallel_for(64, 1, bw_task, &x);
        if (r) vr[r - 1] = 4.0 * BW_N / (distill_time_seconds() - t0) / 1e9;
    }
    *triad = cmp_median(vt, 5);
    *read = cmp_median(vr, 5);
    free(a); free(b); free(c);
}

/* One measurement: B sequences, prompt P tokens each (different prompts, so no prefill is
   shared), N new tokens each. */
static double run(distill_model *m, const char *name, int B, int P, int N) {
    distill_error err;
    distill_generator *g = distill_generator_create(m, B, P + N + 1, &err);
    distill_gen_options o = distill_gen_options_default();
    distill_gen_result *res = (distill_gen_result *)malloc(sizeof *res * (size_t)B);
    int32_t **pr = (int32_t **)malloc(sizeof *pr * (size_t)B);
    int *lens = (int *)malloc(sizeof *lens * (size_t)B);
    int *seq = (int *)malloc(sizeof *seq * (size_t)P);
    distill_rng r;
    double t0, t_prefill, t_total, dec;
    int b, i;
    if (!g || !res || !pr || !lens || !seq) { printf("%s: %s\n", name, g ? "out of memory" : err.msg); exit(1); }
    distill_rng_seed(&r, 42);
    for (b = 0; b < B; b++) {
        pr[b] = (int32_t *)malloc(sizeof(int32_t) * (size_t)P);
        for (i = 0; i < P; i++) pr[b][i] = (int32_t)distill_rng_below(&r, (uint64_t)m->cfg.vocab_size);
        lens[b] = P;
    }
    /* prefill alone: the prompt of every sequence through the cache */
    t0 = distill_time_seconds();
    for (b = 0; b < B; b++) {
        for (i = 0; i < P; i++) seq[i] = b;
        if (distill_generator_forward(g, seq, pr[b], P, NULL, 0, &err)) { printf("%s\n", err.msg); exit(1); }
    }
    t_prefill = distill_time_seconds() - t0;
    /* the whole generation: prefill + N decode steps */
    o.max_new_tokens = N;
    t0 = distill_time_seconds();
    if (distill_generate(g, NULL, (const int32_t *const *)pr, lens, B, &o, res, &err)) { printf("%s\n", err.msg); exit(1); }
    t_total = distill_time_seconds() - t0;
    dec = (double)B * N / (t_total - t_prefill > 0 ? t_total - t_prefill : t_total);
    printf("| %-32s | %2d | %3d | %3d | %9.0f | %9.1f | %8.2f |", name, B, P, N,
           (double)B * P / t_prefill, dec, 1e3 * (t_total - t_prefill) / N);
    for (b = 0; b < B; b++) { distill_gen_result_free(&res[b]); free(pr[b]); }
    free(res); free(pr); free(lens); free(seq);
    distill_generator_free(g);
    return dec;
}

/* bytes one decode step of one sequence reads from the weights: all parameters but the
   embedding table, of which one row (the LM head is the table itself when tied) */
static double streamed_bytes(const distill_model *m) {
    double emb = (double)m->cfg.vocab_size * m->cfg.dim;
    return 4.0 * ((double)m->num_params - (m->cfg.tie_embeddings ? 0.0 : emb) + m->cfg.dim);
}

int main(int argc, char **argv) {
    static const shape shapes[] = {
        {"llama2.c 15M (288/6L/6H, V32000)", 32000, 288, 6, 6, 6, 768},
        {"Qwen-like 40M (512/8L, GQA 8/2)", 16384, 512, 8, 8, 2, 1408},
    };
    static const int batches[2][4] = {{1, 8, 32, 0}, {1, 8, 0, 0}};
    int N = argc > 1 ? atoi(argv[1]) : 128, P = argc > 2 ? atoi(argv[2]) : 64;
    int only = argc > 3 ? atoi(argv[3]) : -1;   /* 0: the 15M shape only (for quick runs) */
    double triad, rd;
    size_t s;
    distill_error err;
    bandwidth(&triad, &rd);
    printf("threads: %d, simd %s; memory bandwidth (median of 5): triad %.1f GB/s, read %.1f GB/s\n\n",
           distill_get_threads(), distill_simd_name(), triad, rd);
    printf("| model                            |  B |   P |   N | prefill tok/s | decode tok/s | ms/step | "
           "weights/token | bound tok/s (triad, read) | of bound |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    if (only < 0) {
        distill_model *m = distill_model_load("../shared/data/stories260K/stories260K.bin", 1, 1, NULL, &err);
        if (m) {
            run(m, "stories260K (64/5L, GQA 8/4)", 1, P, N);
            printf("\n");
            run(m, "stories260K (64/5L, GQA 8/4)", 8, P, N);
            printf("\n");
            distill_model_free(m);
        } else {
            printf("(stories260K skipped: %s)\n", err.msg);
        }
    }
    for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        distill_config c = distill_config_default();
        distill_model *m;
        int bi;
        if (only >= 0 && (int)s != only) continue;
        c.vocab_size = shapes[s].V; c.dim = shapes[s].C; c.n_layers = shapes[s].L;
        c.n_heads = shapes[s].NH; c.n_kv_heads = shapes[s].NKV; c.hidden_dim = shapes[s].F;
        m = distill_model_create(&c, 1, 1, 1, &err);
        if (!m) { printf("%s\n", err.msg); return 1; }
        for (bi = 0; bi < 4 && batches[s][bi]; bi++) {
            double W = streamed_bytes(m), tps = run(m, shapes[s].name, batches[s][bi], P, N);
            if (batches[s][bi] == 1)
                printf(" %.1f MB | %.0f, %.0f | %.0f%% |\n", W / 1e6, triad * 1e9 / W, rd * 1e9 / W, 100.0 * tps / (triad * 1e9 / W));
            else
                printf(" | | |\n");
        }
        distill_model_free(m);
    }
    return 0;
}
