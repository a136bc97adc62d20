/* Data-parallel training step over MPI: step time, all-reduce time and bytes per step, for the
   same global batch on 1 rank and on P ranks (make bench-mpi runs 1 and 2 ranks).

     build/bench/bench_dp CONFIG STEPS [overlap 0|1]        CONFIG: tiny | S | M
     mpirun -np 2 build/bench/bench_dp S 5 1

   One JSON line per run (rank 0): median step seconds, tokens/s, all-reduce seconds per step
   (exposed: the time the rank spent inside MPI calls), the bytes each rank all-reduces per step,
   and a bare MPI_Allreduce of the same buffer (its bus bandwidth, the ring formula
   2 (P-1)/P x bytes / time). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include <stdlib.h>
#include <string.h>

typedef struct { int B, T, V; int32_t *tok, *tgt; distill_rng r; int64_t n; } rnd_src;
static int rnd_next(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err) {
    rnd_src *s = (rnd_src *)ctx;
    int i;
    (void)err;
    for (i = 0; i < s->B * s->T; i++) s->tok[i] = (int32_t)distill_rng_below(&s->r, (uint64_t)s->V);
    for (i = 0; i < s->B * s->T; i++) s->tgt[i] = i % s->T == s->T - 1 ? -1 : s->tok[i + 1];
    memset(b, 0, sizeof *b);
    b->B = s->B; b->T = s->T; b->tokens = s->tok; b->targets = s->tgt;
    *rows = NULL; *n_rows = 0;
    s->n++;
    return 0;
}
static void rnd_get(void *ctx, int64_t st[3]) { st[0] = ((rnd_src *)ctx)->n; st[1] = st[2] = 0; }
static int rnd_set(void *ctx, const int64_t st[3], distill_error *err) { (void)ctx; (void)st; (void)err; return 0; }

static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    distill_comm c;
    distill_error err;
    distill_config mc = distill_config_default();
    distill_train_config tc = distill_train_default();
    distill_batch_source bs;
    rnd_src src;
    distill_model *m;
    distill_trainer *t;
    const char *name = argc > 1 ? argv[1] : "S";
    int steps = argc > 2 ? atoi(argv[2]) : 5, overlap = argc > 3 ? atoi(argv[3]) : 1, i, B, T;
    double *st, ar0, ar1, w0, w1, bare[5], flop_tok;
    size_t bytes;
    float *buf;
    if (distill_mpi_init(&argc, &argv, &c, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (steps < 1 || steps > 1000) steps = 5;
    mc.vocab_size = 4096;
    if (!strcmp(name, "tiny")) {   /* the sweep's student */
        mc.vocab_size = 512; mc.dim = 96; mc.n_layers = 3; mc.n_heads = 4; mc.n_kv_heads = 2; mc.hidden_dim = 256; B = 16; T = 256;
    } else if (!strcmp(name, "M")) {
        mc.dim = 512; mc.n_layers = 8; mc.n_heads = 8; mc.n_kv_heads = 8; mc.hidden_dim = 1408; B = 4; T = 256;
    } else {
        name = "S"; mc.dim = 256; mc.n_layers = 4; mc.n_heads = 4; mc.n_kv_heads = 4; mc.hidden_dim = 768; B = 8; T = 256;
    }
    m = distill_model_create(&mc, (B + c.size - 1) / c.size, T, 1, &err);
    if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
    memset(&src, 0, sizeof src);
    src.B = B; src.T = T; src.V = mc.vocab_size;
    src.tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * T);
    src.tgt = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * T);
    distill_rng_seed(&src.r, 9);
    memset(&bs, 0, sizeof bs);
    bs.ctx = &src; bs.next = rnd_next; bs.get_state = rnd_get; bs.set_state = rnd_set;
    tc.max_steps = steps + 1;
    tc.progress = 0;
    tc.comm_overlap = overlap;
    t = distill_trainer_create(m, &bs, NULL, &tc, &err);
    if (!t || distill_trainer_set_comm(t, &c, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (distill_trainer_step(t, NULL, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }   /* warm-up */
    st = (double *)malloc(sizeof(double) * (size_t)steps);
    distill_trainer_comm_stats(t, &ar0, &w0, &bytes);
    for (i = 0; i < steps; i++) {
        double t0;
        c.barrier(&c, NULL);
        t0 = distill_time_seconds();
        if (distill_trainer_step(t, NULL, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        st[i] = distill_time_seconds() - t0;
    }
    distill_trainer_comm_stats(t, &ar1, &w1, &bytes);
    qsort(st, (size_t)steps, sizeof *st, cmp_d);
    /* the bare collective on a buffer of the gradient's size */
    buf = (float *)calloc(m->num_floats, sizeof(float));
    for (i = 0; i < 5; i++) {
        double t0;
        c.barrier(&c, NULL);
        t0 = distill_time_seconds();
        c.allreduce(&c, buf, m->num_floats, DISTILL_F32, NULL);
        bare[i] = distill_time_seconds() - t0;
    }
    qsort(bare, 5, sizeof *bare, cmp_d);
    /* FLOPs per token: 6 x params (matmuls, forward + backward) + attention 12 L T C / 2 (causal) */
    flop_tok = 6.0 * (double)m->num_params + 6.0 * mc.n_layers * (double)T * mc.dim;
    if (c.rank == 0)
        printf("{\"bench\": \"dp_step\", \"config\": \"%s\", \"ranks\": %d, \"threads_per_rank\": %d, \"simd\": \"%s\", "
               "\"overlap\": %d, \"params\": %zu, \"global_batch\": [%d, %d], \"step_s_median\": %.4f, \"step_s_min\": %.4f, "
               "\"tokens_per_s\": %.0f, \"gflops\": %.1f, \"allreduce_s_per_step\": %.4f, \"wait_after_backward_s_per_step\": %.4f, "
               "\"allreduce_share\": %.3f, \"bytes_per_step\": %zu, \"bare_allreduce_s\": %.5f, \"bare_busbw_GBps\": %.2f}\n",
               name, c.size, distill_get_threads(), distill_simd_name(), overlap, m->num_params, B, T, st[steps / 2], st[0],
               (double)B * T / st[steps / 2], flop_tok * B * T / st[steps / 2] / 1e9, (ar1 - ar0) / steps, (w1 - w0) / steps,
               (ar1 - ar0) / steps / st[steps / 2], c.size > 1 ? bytes : m->num_floats * sizeof(float), bare[2],
               c.size > 1 ? 2.0 * (c.size - 1) / c.size * (double)m->num_floats * 4.0 / bare[2] / 1e9 : 0.0);
    free(buf); free(st); free(src.tok); free(src.tgt);
    distill_trainer_free(t);
    distill_model_free(m);
    distill_mpi_finalize();
    return 0;
}
