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
   The table prints, for B = 1, tokens/s / bound as "of bound" against the triad figure.
   Each shape runs twice: FP32 weights, then the same model after distill_model_to_bf16 (the
   matrices held in BF16: half the bytes per token, so the bound doubles); "held" is the memory
   the weights take in each form. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include <stdlib.h>

typedef struct { const char *name; int V, C, L, NH, NKV, F; } shape;

/* ---- memory bandwidth on the pool's threads ------------------------------------------- */
#define BW_N ((int64_t)24 << 20)   /* floats per array: 96 MB */
typedef struct { float *a; const float *b, *c; double *part; int read_only; } bw_ctx;
/* The two loops in AVX2 on x86 (GCC 12 at -O2 leaves them scalar, which measures the core, not
   the memory; eight independent sums so the adds never wait), plain C elsewhere. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
__attribute__((target("avx2"))) static double bw_read(const float *a, int64_t n) {
    __m256 s[8];
    float t[8];
    double sum = 0.0;
    int64_t i;
    int j;
    for (j = 0; j < 8; j++) s[j] = _mm256_setzero_ps();
    for (i = 0; i + 64 <= n; i += 64)
        for (j = 0; j < 8; j++) s[j] = _mm256_add_ps(s[j], _mm256_loadu_ps(a + i + 8 * j));
    for (j = 1; j < 8; j++) s[0] = _mm256_add_ps(s[0], s[j]);
    _mm256_storeu_ps(t, s[0]);
    for (j = 0; j < 8; j++) sum += t[j];
    return sum;
}
__attribute__((target("avx2"))) static void bw_triad(float *a, const float *b, const float *c, int64_t n) {
    __m256 k = _mm256_set1_ps(1.5f);
    int64_t i;
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(a + i, _mm256_add_ps(_mm256_loadu_ps(b + i), _mm256_mul_ps(k, _mm256_loadu_ps(c + i))));
}
#else
static double bw_read(const float *a, int64_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i;
    int j;
    for (i = 0; i + 8 <= n; i += 8) for (j = 0; j < 8; j++) s[j] += a[i + j];
    return (double)s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}
static void bw_triad(float *a, const float *b, const float *c, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) a[i] = b[i] + 1.5f * c[i];
}
#endif
static void bw_task(void *p, int64_t b0, int64_t e0, int th) {
    const bw_ctx *x = (const bw_ctx *)p;
    int64_t blk;
    (void)th;
    for (blk = b0; blk < e0; blk++) {
        int64_t i0 = blk * (BW_N / 64);
        if (x->read_only) x->part[blk] = bw_read(x->a + i0, BW_N / 64);
        else bw_triad(x->a + i0, x->b + i0, x->c + i0, BW_N / 64);
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
    double vt[5], vr[5];
    bw_ctx x;
    int64_t i;
    int r;
    if (!a || !b || !c) { printf("bandwidth: out of memory\n"); exit(1); }
    for (i = 0; i < BW_N; i++) { a[i] = 0.0f; b[i] = 1.0f; c[i] = (float)(i & 7); }
    x.a = a; x.b = b; x.c = c; x.part = part;
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
   embedding table, of which one row (the LM head is the table itself when tied); BF16 weights:
   2 bytes per matrix element (the norms, a few thousand floats, are counted at 2 as well) */
static double streamed_bytes(const distill_model *m) {
    double emb = (double)m->cfg.vocab_size * m->cfg.dim;
    return (distill_model_is_bf16(m) ? 2.0 : 4.0) * ((double)m->num_params - (m->cfg.tie_embeddings ? 0.0 : emb) + m->cfg.dim);
}
/* bytes the weights hold: FP32 4 per parameter; BF16 2 per matrix element + 4 per vector element */
static double held_bytes(const distill_model *m) {
    double b = 0.0;
    int i;
    for (i = 0; i < m->n_tensors; i++)
        b += (double)m->tensors[i].numel * (!distill_model_is_bf16(m) || m->tensors[i].ndim == 1 ? 4.0 : 2.0);
    return b;
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
    printf("| model                                |  B |   P |   N | prefill tok/s | decode tok/s | ms/step | "
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
        double held[2], dec1[2] = {0.0, 0.0};
        int bi, w;
        if (only >= 0 && (int)s != only) continue;
        c.vocab_size = shapes[s].V; c.dim = shapes[s].C; c.n_layers = shapes[s].L;
        c.n_heads = shapes[s].NH; c.n_kv_heads = shapes[s].NKV; c.hidden_dim = shapes[s].F;
        m = distill_model_create(&c, 1, 1, 1, &err);
        if (!m) { printf("%s\n", err.msg); return 1; }
        for (w = 0; w < 2; w++) {   /* FP32 weights, then BF16 */
            char name[96];
            if (w == 1 && distill_model_to_bf16(m, &err) != 0) { printf("%s\n", err.msg); return 1; }
            held[w] = held_bytes(m);
            snprintf(name, sizeof name, "%s %s", shapes[s].name, w ? "bf16" : "fp32");
            for (bi = 0; bi < 4 && batches[s][bi]; bi++) {
                double W = streamed_bytes(m), tps = run(m, name, batches[s][bi], P, N);
                if (batches[s][bi] == 1) {
                    dec1[w] = tps;
                    printf(" %.1f MB | %.0f, %.0f | %.0f%% |\n", W / 1e6, triad * 1e9 / W, rd * 1e9 / W, 100.0 * tps / (triad * 1e9 / W));
                } else {
                    printf(" | | |\n");
                }
            }
        }
        printf("(%s: weights held %.1f MB FP32, %.1f MB BF16 (%.2fx); batch-1 decode BF16 / FP32 %.2fx)\n\n",
               shapes[s].name, held[0] / 1e6, held[1] / 1e6, held[1] / held[0], dec1[0] > 0 ? dec1[1] / dec1[0] : 0.0);
        distill_model_free(m);
    }
    return 0;
}
