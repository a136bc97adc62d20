/* KD step cost: one logit-distillation step (teacher forward + student step with the KD head)
   against its parts (a teacher forward, an SFT student step), and the top-k cache path.
       cc -O2 -march=x86-64-v3 -o build/bench_kd bench/bench_kd.c -lm -lpthread && build/bench_kd */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include <stdlib.h>
#include <string.h>

#define NB 4
#define NT 128
#define REPS 5

static double median(double *x, int n) {
    int i, j;
    for (i = 1; i < n; i++) for (j = i; j > 0 && x[j] < x[j - 1]; j--) { double t = x[j]; x[j] = x[j - 1]; x[j - 1] = t; }
    return x[n / 2];
}

int main(int argc, char **argv) {
    distill_config tcfg = distill_config_default(), scfg;
    distill_optim_config oc = distill_optim_default();
    distill_kd_config kc = distill_kd_default();
    distill_error err;
    distill_model *teacher, *student;
    distill_kd_head *kd;
    distill_head_loss hl;
    distill_batch b;
    distill_topk_cache *cache;
    distill_topk_writer *w;
    static int32_t tok[NB * NT], tgt[NB * NT];
    int64_t rows[NB];
    double tf[REPS], tfl[REPS], ss[REPS], kds[REPS], kdc[REPS];
    float *lg;
    int i, r, pass, V = argc > 1 ? atoi(argv[1]) : 4096, k = 32;
    distill_rng rng;
    tcfg.vocab_size = V; tcfg.dim = 256; tcfg.n_layers = 4; tcfg.n_heads = 8; tcfg.n_kv_heads = 4; tcfg.hidden_dim = 688;
    scfg = tcfg;
    scfg.dim = 128; scfg.n_layers = 2; scfg.n_heads = 4; scfg.n_kv_heads = 2; scfg.hidden_dim = 344;
    teacher = distill_model_create(&tcfg, NB, NT, 1, &err);
    student = distill_model_create(&scfg, NB, NT, 2, &err);
    kd = distill_kd_head_create(&kc, V, &err);
    if (!teacher || !student || !kd) { fprintf(stderr, "%s\n", err.msg); return 1; }
    distill_rng_seed(&rng, 3);
    for (i = 0; i < NB * NT; i++) tok[i] = (int32_t)distill_rng_below(&rng, (uint64_t)V);
    for (i = 0; i < NB * NT; i++) tgt[i] = (i % NT) < NT / 4 || (i % NT) == NT - 1 ? -1 : tok[i + 1];   /* a prompt, then supervised */
    memset(&b, 0, sizeof b);
    b.B = NB; b.T = NT; b.tokens = tok; b.targets = tgt;
    /* the cache for this batch */
    lg = (float *)malloc(sizeof(float) * NT * (size_t)V);
    w = distill_topk_writer_open("build/bench_kd.topk", k, V, &err);
    distill_model_forward(teacher, &b, NULL, 0.0f, NULL, &err);
    for (r = 0; r < NB; r++) {
        distill_model_logits(teacher, r, lg);
        distill_topk_writer_add_row(w, tok + r * NT, tgt + r * NT, NT, lg, &err);
        rows[r] = r;
    }
    if (!w || distill_topk_writer_close(w, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    cache = distill_topk_cache_open("build/bench_kd.topk", V, NB, &err);
    if (!cache) { fprintf(stderr, "%s\n", err.msg); return 1; }
    hl = distill_kd_head_loss(kd);
    /* pass 1: the same teacher with its weights held in BF16 (distill_model_to_bf16): FP32
       products of the widened weights, half the weight memory */
    for (pass = 0; pass < 2; pass++) {
        if (pass == 1 && distill_model_to_bf16(teacher, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        for (i = 0; i < REPS + 1; i++) {
            double t0;
            distill_stats st;
            int j = i > 0 ? i - 1 : 0;
            /* teacher forward alone, as the KD step runs it (logits of supervised positions captured) */
            t0 = distill_time_seconds();
            distill_kd_head_run_teacher(kd, teacher, &b, &err);
            tf[j] = distill_time_seconds() - t0;
            /* teacher forward with its logits: layers, LM head and loss over the supervised
               positions (what a teacher run on its own computes to have logits to hand over) */
            t0 = distill_time_seconds();
            distill_model_forward(teacher, &b, NULL, 0.0f, &st, &err);
            tfl[j] = distill_time_seconds() - t0;
            /* SFT student step */
            t0 = distill_time_seconds();
            distill_model_zero_grad(student);
            distill_model_forward_backward(student, &b, NULL, 0.0f, &st, &err);
            distill_adamw_step(student, &oc, i);
            ss[j] = distill_time_seconds() - t0;
            /* KD step, in-process teacher */
            t0 = distill_time_seconds();
            distill_kd_head_run_teacher(kd, teacher, &b, &err);
            distill_model_zero_grad(student);
            distill_model_forward_backward(student, &b, &hl, 0.0f, &st, &err);
            distill_adamw_step(student, &oc, i);
            kds[j] = distill_time_seconds() - t0;
            /* KD step from the top-k cache */
            t0 = distill_time_seconds();
            distill_kd_head_set_cache_rows(kd, cache, rows, &b, &err);
            distill_model_zero_grad(student);
            distill_model_forward_backward(student, &b, &hl, 0.0f, &st, &err);
            distill_adamw_step(student, &oc, i);
            kdc[j] = distill_time_seconds() - t0;
        }
        {
            double a = median(tf, REPS), al = median(tfl, REPS), s = median(ss, REPS), kk = median(kds, REPS), kc2 = median(kdc, REPS);
            printf("bench_kd: NB %d NT %d V %d threads %d; teacher %zu params (%s weights, %.1f MB), student %zu params (median of %d)\n",
                   NB, NT, V, distill_get_threads(), teacher->num_params, pass ? "BF16" : "FP32",
                   (double)teacher->num_params * (pass ? 2 : 4) / 1e6, student->num_params, REPS);
            printf("  teacher forward, layers only %8.1f ms\n", 1e3 * a);
            printf("  teacher forward with logits  %8.1f ms  (layers, LM head and loss on the supervised positions)\n", 1e3 * al);
            printf("  student SFT step             %8.1f ms\n", 1e3 * s);
            printf("  sum: layers-only teacher + student %8.1f ms; with-logits teacher + student %8.1f ms\n", 1e3 * (a + s), 1e3 * (al + s));
            printf("  KD step, in-process teacher  %8.1f ms  (%.2fx the with-logits sum, %.2fx the layers-only sum)\n",
                   1e3 * kk, kk / (al + s), kk / (a + s));
            printf("  KD step, top-%d cache        %8.1f ms  (%.2fx the in-process KD step)\n", k, 1e3 * kc2, kc2 / kk);
        }
    }
    free(lg);
    distill_topk_cache_free(cache);
    distill_kd_head_free(kd);
    distill_model_free(teacher);
    distill_model_free(student);
    return 0;
}
