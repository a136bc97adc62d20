/* Peak memory of loading a model for inference: FP32 weights (distill_model_load) against BF16
   weights (distill_model_load_bf16, read straight into BF16) and the FP32 load converted after
   the fact (distill_model_load + distill_model_to_bf16), each in its own process.

       cc -std=c99 -O2 bench/bench_load_bf16.c -o build/bench_load_bf16 -lm -lpthread
       build/bench_load_bf16 [dir]        (default build/bench_load_model: made on the first run)

   The model: dim 768, 12 layers, 12 heads (4 kv heads), FFN 2048, vocab 32000, untied (about
   124M parameters), random weights, written as a sharded BF16 folder (shards of 100 MB). Each
   child prints its peak resident set size (getrusage ru_maxrss), the load time, and one decode
   step's time (batch 1, 64 prompt tokens), so the saving is seen with the model in use. */
#define _POSIX_C_SOURCE 200809L
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;   /* Linux: kilobytes */
}

static int child(const char *dir, int mode) {
    static const char *const names[] = {"distill_model_load (FP32)", "distill_model_load_bf16",
                                        "distill_model_load + distill_model_to_bf16"};
    distill_error err;
    distill_model *m;
    distill_generator *g;
    double t0 = distill_time_seconds(), t_load, t_step;
    int32_t tok[64];
    int seq[64], i;
    float *lg;
    m = mode == 1 ? distill_model_load_bf16(dir, 1, 1, NULL, &err) : distill_model_load(dir, 1, 1, NULL, &err);
    if (m && mode == 2 && distill_model_to_bf16(m, &err) != 0) { distill_model_free(m); m = NULL; }
    if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
    t_load = distill_time_seconds() - t0;
    g = distill_generator_create(m, 1, 80, &err);
    lg = (float *)malloc(sizeof(float) * (size_t)m->cfg.vocab_size);
    if (!g || !lg) { fprintf(stderr, "generator: %s\n", g ? "out of memory" : err.msg); return 1; }
    for (i = 0; i < 64; i++) { tok[i] = (int32_t)(i * 37 % m->cfg.vocab_size); seq[i] = 0; }
    distill_generator_forward(g, seq, tok, 64, lg, 0, &err);
    t0 = distill_time_seconds();
    for (i = 0; i < 8; i++) distill_generator_forward(g, seq, tok + i, 1, lg, 1, &err);
    t_step = (distill_time_seconds() - t0) / 8;
    printf("| %-44s | %8.0f | %6.2f | %6.1f |\n", names[mode], peak_rss_mb(), t_load, 1e3 * t_step);
    free(lg);
    distill_generator_free(g);
    distill_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/bench_load_model";
    char idx[1024];
    struct stat sb;
    int mode;
    if (argc > 2) return child(dir, atoi(argv[2]));   /* one measurement, in this process */
    snprintf(idx, sizeof idx, "%s/config.json", dir);
    if (stat(idx, &sb) != 0) {
        distill_config c = distill_config_default();
        distill_error err;
        distill_model *m;
        c.vocab_size = 32000; c.dim = 768; c.n_layers = 12; c.n_heads = 12; c.n_kv_heads = 4; c.hidden_dim = 2048;
        c.tie_embeddings = 0;
        m = distill_model_create(&c, 1, 1, 1, &err);
        if (!m || distill_safetensors_save_sharded(m, dir, "BF16", (int64_t)100 << 20, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        printf("made %s: %zu parameters, BF16 shards\n", dir, m->num_params);
        distill_model_free(m);
    }
    printf("| load | peak RSS MB | load s | decode ms/token |\n|---|---|---|---|\n");
    fflush(stdout);
    for (mode = 0; mode < 3; mode++) {
        char m_arg[8];
        pid_t pid;
        int st;
        snprintf(m_arg, sizeof m_arg, "%d", mode);
        pid = fork();
        if (pid == 0) {
            execl(argv[0], argv[0], dir, m_arg, (char *)NULL);
            _exit(127);
        }
        if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "measurement %d failed\n", mode);
            return 1;
        }
    }
    return 0;
}
