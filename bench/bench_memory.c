/* Peak RSS of one training step next to the header's activation-memory formula.

       cc -std=c99 -O2 -march=x86-64-v3 bench/bench_memory.c -o build/bench_memory -lm -lpthread
       /usr/bin/time -v build/bench_memory [B T n_kv_heads dim layers vocab ffn]

   defaults: B 4, T 1024, kv 4, dim 512, 8 layers, V 32000, FFN 1408 (8 heads). Prints the
   formula (distill_model_activation_bytes), the parameter memory (params, grads, AdamW m, v),
   and the peak resident set size (getrusage ru_maxrss) after create and after one step, plus
   the step time. */
#define _POSIX_C_SOURCE 200809L
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include <stdlib.h>
#include <sys/resource.h>

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;   /* Linux: kilobytes */
}

int main(int argc, char **argv) {
    distill_config c = distill_config_default();
    distill_optim_config o = distill_optim_default();
    distill_error e;
    distill_model *m;
    distill_batch b;
    distill_stats st;
    int B = argc > 1 ? atoi(argv[1]) : 4, T = argc > 2 ? atoi(argv[2]) : 1024, i;
    int32_t *tok, *tgt;
    double rss0 = peak_rss_mb(), rss1, rss2, t0, gn, formula, pmem;
    c.n_kv_heads = argc > 3 ? atoi(argv[3]) : 4;
    if (argc > 4) c.dim = atoi(argv[4]);
    if (argc > 5) c.n_layers = atoi(argv[5]);
    if (argc > 6) c.vocab_size = atoi(argv[6]);
    if (argc > 7) c.hidden_dim = atoi(argv[7]);
    m = distill_model_create(&c, B, T, 1, &e);
    if (!m) { fprintf(stderr, "%s\n", e.msg); return 1; }
    rss1 = peak_rss_mb();
    tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * T);
    tgt = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * T);
    for (i = 0; i < B * T; i++) { tok[i] = (int32_t)((i * 2654435761u) % (unsigned)c.vocab_size); tgt[i] = (int32_t)((i * 40503u + 7) % (unsigned)c.vocab_size); }
    memset(&b, 0, sizeof b);
    b.B = B; b.T = T; b.tokens = tok; b.targets = tgt;
    t0 = distill_time_seconds();
    if (distill_train_step(m, &b, &o, 0, &st, &gn, &e) != 0) { fprintf(stderr, "%s\n", e.msg); return 1; }
    t0 = distill_time_seconds() - t0;
    rss2 = peak_rss_mb();
    formula = (double)distill_model_activation_bytes(&c, B, T) / (1024.0 * 1024.0);
    pmem = 4.0 * (double)m->num_floats * 4.0 / (1024.0 * 1024.0);
    printf("config: B %d T %d dim %d layers %d heads %d kv %d ffn %d vocab %d, %zu params, %d threads\n", B, T, c.dim,
           c.n_layers, c.n_heads, c.n_kv_heads, c.hidden_dim, c.vocab_size, m->num_params, distill_get_threads());
    printf("activation formula:            %8.1f MiB\n", formula);
    printf("params+grads+AdamW m,v:        %8.1f MiB\n", pmem);
    printf("formula + parameter memory:    %8.1f MiB\n", formula + pmem);
    printf("peak RSS at start:             %8.1f MiB\n", rss0);
    printf("peak RSS after create:         %8.1f MiB\n", rss1);
    printf("peak RSS after one train step: %8.1f MiB\n", rss2);
    printf("step: loss %.4f, grad norm %.3f, %.2f s (%.0f tokens/s)\n", st.loss, gn, t0, B * T / t0);
    distill_model_free(m);
    free(tok);
    free(tgt);
    return 0;
}
