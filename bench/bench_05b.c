/* A 0.5B-class model end to end: a randomly initialised checkpoint with the exact shapes of
   Qwen2.5-0.5B (24 layers, hidden 896, 14 heads, 2 KV heads, FFN 4864, vocab 151,936, tied
   head, q/k/v bias, rope_theta 1e6) written as a sharded BF16 Hugging Face folder, then
   loaded from the folder, generated from (greedy, KV cache), trained for a few AdamW steps
   and exported as a sharded BF16 folder again (re-loaded: the same tensors).

     make bench-05b        (or: build/bench/bench_05b [dir] [train_T] [steps] [reuse])

   Prints one JSON object: load seconds, peak RSS after load / generation / training against
   params x 4 bytes, decode tokens/s, training tokens/s. Needs ~10 GB of RAM (parameters,
   gradients and both AdamW moments in float32) and ~2 GB of disk. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include <stdlib.h>

static double peak_rss_mb(void) {   /* VmHWM: the process's peak resident set */
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024.0;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/bench_05b";
    int T = argc > 2 ? atoi(argv[2]) : 128, steps = argc > 3 ? atoi(argv[3]) : 3, i, n_new = 32, P = 16;
    char out[512], sha_a[65], sha_b[65];
    distill_config c = distill_config_default();
    distill_error err;
    distill_model *m;
    double t0, t_write, t_load, rss_load, t_gen, rss_gen, t_train = 0, rss_train, t_export, tok_s_gen, tok_s_train;
    c.vocab_size = 151936; c.dim = 896; c.n_layers = 24; c.n_heads = 14; c.n_kv_heads = 2; c.hidden_dim = 4864;
    c.qkv_bias = 1; c.tie_embeddings = 1; c.rope_theta = 1000000.0f; c.norm_eps = 1e-6f;
    /* 1. the checkpoint, as a test helper would write it ("reuse" as 4th argument: keep the one there) */
    t0 = distill_time_seconds();
    t_write = 0;
    if (!(argc > 4 && !strcmp(argv[4], "reuse"))) {
        m = distill_model_create(&c, 1, 1, 42, &err);
        if (!m || distill_safetensors_save_sharded(m, dir, "BF16", (int64_t)400 << 20, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        t_write = distill_time_seconds() - t0;
        fprintf(stderr, "wrote %s (%zu parameters) in %.1f s\n", dir, m->num_params, t_write);
        distill_model_free(m);
    }
    /* 2. load the folder */
    t0 = distill_time_seconds();
    m = distill_model_load(dir, 1, T, NULL, &err);
    if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
    t_load = distill_time_seconds() - t0;
    rss_load = peak_rss_mb();
    distill_model_sha256(m, sha_a);
    fprintf(stderr, "loaded in %.1f s, peak RSS %.0f MB\n", t_load, rss_load);
    /* 3. greedy generation with the KV cache: P prompt tokens, n_new new ones */
    {
        distill_generator *g = distill_generator_create(m, 1, P + n_new + 1, &err);
        distill_gen_options o = distill_gen_options_default();
        distill_gen_result res;
        int32_t prompt[16];
        const int32_t *pp = prompt;
        int plen = P;
        for (i = 0; i < P; i++) prompt[i] = (int32_t)(1000 + 37 * i);
        o.max_new_tokens = n_new;
        o.temperature = 0.0f;
        memset(&res, 0, sizeof res);
        if (!g) { fprintf(stderr, "%s\n", err.msg); return 1; }
        t0 = distill_time_seconds();
        if (distill_generate(g, NULL, &pp, &plen, 1, &o, &res, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        t_gen = distill_time_seconds() - t0;
        tok_s_gen = (double)res.n / t_gen;
        distill_gen_result_free(&res);
        distill_generator_free(g);
    }
    rss_gen = peak_rss_mb();
    fprintf(stderr, "generated %d tokens at %.2f tokens/s (incl. prefill of %d), peak RSS %.0f MB\n", n_new, tok_s_gen, P, rss_gen);
    /* 4. a few training steps (AdamW, batch 1 x T) */
    {
        int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)T), *tgt = (int32_t *)malloc(sizeof(int32_t) * (size_t)T);
        distill_optim_config oc = distill_optim_default();
        distill_batch b;
        distill_stats st;
        double gn;
        distill_rng r;
        distill_rng_seed(&r, 7);
        for (i = 0; i < T; i++) tok[i] = (int32_t)distill_rng_below(&r, 151936);
        for (i = 0; i < T; i++) tgt[i] = i + 1 < T ? tok[i + 1] : -1;
        memset(&b, 0, sizeof b);
        b.B = 1; b.T = T; b.tokens = tok; b.targets = tgt;
        oc.lr = 1e-4f;
        for (i = 0; i < steps; i++) {
            double s0 = distill_time_seconds();
            if (distill_train_step(m, &b, &oc, i, &st, &gn, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
            if (i > 0) t_train += distill_time_seconds() - s0;   /* the first step allocates AdamW's moments */
            fprintf(stderr, "step %d: loss %.4f, %.1f s\n", i, st.loss, distill_time_seconds() - s0);
        }
        tok_s_train = steps > 1 ? (double)T * (steps - 1) / t_train : 0;
        free(tok);
        free(tgt);
    }
    rss_train = peak_rss_mb();
    /* 5. export as a sharded BF16 folder and read it back: the trained weights, rounded to BF16 */
    snprintf(out, sizeof out, "%s_export", dir);
    t0 = distill_time_seconds();
    if (distill_safetensors_save_sharded(m, out, "BF16", (int64_t)400 << 20, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    t_export = distill_time_seconds() - t0;
    {   /* the reference: the trained weights rounded to BF16 in memory, as the export stores them */
        size_t k;
        for (k = 0; k < m->num_floats; k++) {
            uint32_t u;
            memcpy(&u, &m->params[k], 4);
            u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
            memcpy(&m->params[k], &u, 4);
        }
        distill_model_sha256(m, sha_a);
    }
    distill_model_free(m);
    m = distill_model_load(out, 1, 1, NULL, &err);
    if (m) distill_model_sha256(m, sha_b);
    else fprintf(stderr, "%s\n", err.msg);
    printf("{\"params\": %zu, \"params_x4_mb\": %.0f, \"write_s\": %.2f, \"load_s\": %.2f, \"peak_rss_load_mb\": %.0f, "
           "\"decode_tokens_per_s\": %.2f, \"peak_rss_generate_mb\": %.0f, \"train_T\": %d, \"train_tokens_per_s\": %.1f, "
           "\"peak_rss_train_mb\": %.0f, \"export_s\": %.2f, \"reload_identical\": %s, \"threads\": %d}\n",
           m ? m->num_params : (size_t)0, m ? m->num_params * 4.0 / (1 << 20) : 0.0, t_write, t_load, rss_load, tok_s_gen,
           rss_gen, T, tok_s_train, rss_train, t_export, m && !strcmp(sha_a, sha_b) ? "true" : "false", distill_get_threads());
    distill_model_free(m);
    return 0;
}
