/* Generation speed: prefill and decode tokens/s with the KV cache, batch 1 and batched, for a
   few small model shapes (random weights: speed does not depend on the values), plus the real
   stories260K when ../shared/data is present.

     make bench-generate            (or: build/bench/bench_generate [new_tokens] [prompt_len])

   Decode tokens/s counts generated tokens of all sequences per wall second; prefill tokens/s
   counts prompt tokens. Greedy, no stop tokens, so every sequence makes exactly N tokens. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include <stdlib.h>

typedef struct { const char *name; int V, C, L, NH, NKV, F; } shape;

/* One measurement: B sequences, prompt P tokens each (different prompts, so no prefill is
   shared), N new tokens each. */
static void run(distill_model *m, const char *name, int B, int P, int N) {
    distill_error err;
    distill_generator *g = distill_generator_create(m, B, P + N + 1, &err);
    distill_gen_options o = distill_gen_options_default();
    distill_gen_result *res = (distill_gen_result *)malloc(sizeof *res * (size_t)B);
    int32_t **pr = (int32_t **)malloc(sizeof *pr * (size_t)B);
    int *lens = (int *)malloc(sizeof *lens * (size_t)B);
    int *seq = (int *)malloc(sizeof *seq * (size_t)P);
    distill_rng r;
    double t0, t_prefill, t_total;
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
    printf("| %-26s | %2d | %3d | %3d | %9.0f | %9.1f | %8.2f |\n", name, B, P, N,
           (double)B * P / t_prefill, (double)B * N / (t_total - t_prefill > 0 ? t_total - t_prefill : t_total),
           1e3 * (t_total - t_prefill) / N);
    for (b = 0; b < B; b++) { distill_gen_result_free(&res[b]); free(pr[b]); }
    free(res); free(pr); free(lens); free(seq);
    distill_generator_free(g);
}

int main(int argc, char **argv) {
    static const shape shapes[] = {
        {"llama2.c 15M (288/6L, V32000)", 32000, 288, 6, 6, 6, 768},
        {"Qwen-like 40M (512/8L, GQA 8/2)", 16384, 512, 8, 8, 2, 1408},
    };
    int N = argc > 1 ? atoi(argv[1]) : 128, P = argc > 2 ? atoi(argv[2]) : 64;
    size_t s;
    distill_error err;
    printf("threads: %d\n\n", distill_get_threads());
    printf("| model                      |  B |   P |   N | prefill tok/s | decode tok/s | ms/step |\n");
    printf("|---|---|---|---|---|---|---|\n");
    {
        distill_tokenizer *tok = NULL;
        distill_model *m = distill_model_load("../shared/data/stories260K/stories260K.bin", 1, 1, NULL, &err);
        (void)tok;
        if (m) {
            run(m, "stories260K (64/5L, GQA 8/4)", 1, P, N);
            run(m, "stories260K (64/5L, GQA 8/4)", 8, P, N);
            distill_model_free(m);
        } else {
            printf("(stories260K skipped: %s)\n", err.msg);
        }
    }
    for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        distill_config c = distill_config_default();
        distill_model *m;
        c.vocab_size = shapes[s].V; c.dim = shapes[s].C; c.n_layers = shapes[s].L;
        c.n_heads = shapes[s].NH; c.n_kv_heads = shapes[s].NKV; c.hidden_dim = shapes[s].F;
        m = distill_model_create(&c, 1, 1, 1, &err);
        if (!m) { printf("%s\n", err.msg); return 1; }
        run(m, shapes[s].name, 1, P, N);
        run(m, shapes[s].name, 8, P, N);
        distill_model_free(m);
    }
    return 0;
}
