/* Data-parallel training over MPI (make test-mpi runs this with mpirun -np 2).

   Every rank trains the same model data-parallel; rank 0 also trains a reference model in one
   process on the same global batches, and the weights are compared:
     - P ranks with global batch B  vs  one process with batch B: equal within 1e-5 relative
       (the sums of the gradient are grouped differently: (rows of rank 0) + (rows of rank 1));
     - P ranks vs one process with grad_accum P and B/P rows per micro-batch: the same grouping;
     - bucketed all-reduce during backward vs one all-reduce after it: bit-identical;
     - every rank holds bit-identical weights after every step;
     - the same for logit distillation from an in-process teacher;
     - unequal supervised tokens per shard: the loss is normalised over the global batch (a
       mean of per-rank means would fail the comparison);
     - rank 0 writes the checkpoint; resuming it on every rank continues bit-identically;
     - a callback stopping one rank stops all; ranks with different weights are refused. */
#define DISTILL_IMPLEMENTATION
#include "../../distill.h"
#include "../harness.h"
#include <stdlib.h>

#define V 61
#define TT 12
#define NROWS 40

/* An in-memory batch source: NROWS rows of TT tokens, each with its own length and a masked
   prompt of varying size, served in order, `rows` per batch, wrapping around. */
typedef struct {
    int32_t tok[NROWS][TT], tgt[NROWS][TT];
    float w[NROWS][TT];
    int len[NROWS];
    int rows, pos;
    int64_t served;
    int32_t btok[NROWS * TT], btgt[NROWS * TT];
    float bw[NROWS * TT];
    int blen[NROWS];
    int64_t brows[NROWS];
} mem_src;

static void mem_init(mem_src *s, int rows) {
    distill_rng r;
    int i, t;
    memset(s, 0, sizeof *s);
    distill_rng_seed(&r, 77);
    s->rows = rows;
    for (i = 0; i < NROWS; i++) {
        /* early rows are long and fully supervised, late rows short with long prompts: shards
           of one batch carry very different numbers of supervised tokens */
        int prompt = (int)distill_rng_below(&r, (uint64_t)(i < NROWS / 2 ? 2 : 8));
        s->len[i] = i < NROWS / 2 ? TT : 4 + (int)distill_rng_below(&r, TT - 4);
        for (t = 0; t < TT; t++) {
            s->tok[i][t] = (int32_t)distill_rng_below(&r, V);
            s->tgt[i][t] = t < prompt ? -1 : (int32_t)((s->tok[i][t] * 7 + t) % V);
            s->w[i][t] = (t % 3 == 0) ? 0.5f : 1.0f;
        }
    }
}
static int mem_next(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err) {
    mem_src *s = (mem_src *)ctx;
    int i;
    (void)err;
    for (i = 0; i < s->rows; i++) {
        int r = (s->pos + i) % NROWS;
        memcpy(s->btok + i * TT, s->tok[r], sizeof s->tok[r]);
        memcpy(s->btgt + i * TT, s->tgt[r], sizeof s->tgt[r]);
        memcpy(s->bw + i * TT, s->w[r], sizeof s->w[r]);
        s->blen[i] = s->len[r];
        s->brows[i] = r;
    }
    s->pos = (s->pos + s->rows) % NROWS;
    s->served += s->rows;
    memset(b, 0, sizeof *b);
    b->B = s->rows; b->T = TT;
    b->tokens = s->btok; b->targets = s->btgt; b->weights = s->bw; b->lengths = s->blen;
    *rows = s->brows;
    *n_rows = s->rows;
    return 0;
}
static void mem_get(void *ctx, int64_t st[3]) {
    mem_src *s = (mem_src *)ctx;
    st[0] = s->served; st[1] = s->pos; st[2] = 12345;
}
static int mem_set(void *ctx, const int64_t st[3], distill_error *err) {
    mem_src *s = (mem_src *)ctx;
    if (st[2] != 12345) return distill__err(err, "mem source: wrong fingerprint");
    s->served = st[0]; s->pos = (int)st[1];
    return 0;
}
static double mem_epoch(void *ctx) { return (double)((mem_src *)ctx)->served / NROWS; }

static distill_batch_source mem_source(mem_src *s) {
    distill_batch_source b;
    memset(&b, 0, sizeof b);
    b.ctx = s; b.next = mem_next; b.get_state = mem_get; b.set_state = mem_set; b.epoch = mem_epoch;
    b.rows_per_epoch = NROWS;
    return b;
}

static distill_config cfg(void) {
    distill_config c = distill_config_default();
    c.vocab_size = V; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 64;
    c.qkv_bias = 1; c.tie_embeddings = 0;
    return c;
}

static distill_train_config tcfg(int64_t steps, int accum, int rows) {
    distill_train_config tc = distill_train_default();
    tc.max_steps = steps;
    tc.grad_accum = accum;
    tc.batch_rows = rows;
    tc.progress = 0;
    tc.optim.lr = 3e-3f;
    tc.optim.warmup_steps = 2;
    tc.optim.schedule = DISTILL_SCHED_CONSTANT;   /* so 6 steps then 2 more == 8 steps */
    tc.optim.grad_clip = 1.0f;
    tc.comm_bucket_bytes = 4096;   /* several buckets even for this small model */
    return tc;
}

/* Train `steps` steps with `rows` rows per micro-batch and `accum` micro-batches per step over
   communicator c; returns the model (NULL on error). */
static distill_model *kd_teacher;   /* non-NULL: logit distillation from this teacher (forward KL + CE) */

static distill_model *train(const distill_comm *c, int rows, int accum, int64_t steps, int overlap, const char *out_dir,
                            const char *resume, distill_trainer **keep) {
    distill_config mc = cfg();
    distill_error err;
    static mem_src src;
    distill_batch_source bs;
    distill_train_config tc = tcfg(steps, accum, rows);
    distill_model *m = distill_model_create(&mc, (rows + c->size - 1) / c->size, TT, 5, &err);
    distill_trainer *t;
    if (!m) { fprintf(stderr, "%s\n", err.msg); return NULL; }
    mem_init(&src, rows);
    bs = mem_source(&src);
    tc.comm_overlap = overlap;
    tc.out_dir = out_dir;
    tc.save_every = out_dir ? 3 : 0;
    if (kd_teacher) {
        tc.kd = 1;
        tc.kdc.alpha = 0.7f;
        tc.kdc.temperature = 2.0f;
    }
    t = distill_trainer_create(m, &bs, NULL, &tc, &err);
    if (!t || distill_trainer_set_comm(t, c, &err) != 0 || (kd_teacher && distill_trainer_set_teacher(t, kd_teacher, &err) != 0) || (resume && distill_trainer_resume(t, resume, &err) != 0) ||
        distill_trainer_run(t, &err) != 0) {
        fprintf(stderr, "rank %d: %s\n", c->rank, err.msg);
        distill_trainer_free(t);
        distill_model_free(m);
        return NULL;
    }
    if (keep) *keep = t;
    else distill_trainer_free(t);
    return m;
}

static double max_rel_diff(const distill_model *a, const distill_model *b) {
    double mx = 0.0, scale = 0.0;
    size_t i;
    for (i = 0; i < a->num_floats; i++) {
        double d = fabs((double)a->params[i] - (double)b->params[i]);
        if (d > mx) mx = d;
        if (fabs((double)a->params[i]) > scale) scale = fabs((double)a->params[i]);
    }
    return mx / (scale > 0 ? scale : 1.0);
}

/* 1 when every rank's parameters equal rank 0's bit for bit */
static int same_on_all_ranks(const distill_comm *c, const distill_model *m) {
    uint64_t crc[2];
    int64_t bad;
    crc[0] = crc[1] = distill_crc32(0, m->params, m->num_floats * sizeof(float));
    c->bcast(c, &crc[0], sizeof crc[0], 0, NULL);
    bad = crc[0] != crc[1];
    c->allreduce(c, &bad, 1, DISTILL_I64, NULL);
    return bad == 0;
}

static distill_comm world;

static void test_equivalence(void) {
    const int P = world.size;
    int rows;
    int list[3], k;
    list[0] = 1;           /* fewer rows than ranks: rank 0 has none and must still join every bucket */
    list[1] = 2 * P;       /* shards of equal size */
    list[2] = 2 * P + 1;   /* and of unequal size */
    for (k = 0; k < 3; k++) {
        distill_model *dp, *dp_sync;
        rows = list[k];
        dp = train(&world, rows, 1, 6, 1, NULL, NULL, NULL);
        dp_sync = train(&world, rows, 1, 6, 0, NULL, NULL, NULL);
        CHECK(dp && dp_sync, "data-parallel runs, B %d", rows);
        if (!dp || !dp_sync) { distill_model_free(dp); distill_model_free(dp_sync); continue; }
        CHECK(same_on_all_ranks(&world, dp), "B %d: every rank holds the same weights", rows);
        CHECK(!memcmp(dp->params, dp_sync->params, dp->num_floats * sizeof(float)),
              "B %d: all-reduce in buckets during backward == one all-reduce after it, bit for bit", rows);
        if (world.rank == 0) {
            distill_model *one = train(distill_comm_local(), rows, 1, 6, 1, NULL, NULL, NULL);
            double d = one ? max_rel_diff(dp, one) : 1.0;
            printf("  B %d: %d ranks vs one process with batch %d: max |dw| / max |w| = %.3g\n", rows, P, rows, d);
            CHECK(one && d < 1e-5, "B %d: %d ranks == one process with batch %d within 1e-5 (got %.3g)", rows, P, rows, d);
            if (rows % P == 0) {
                distill_model *acc = train(distill_comm_local(), rows / P, P, 6, 1, NULL, NULL, NULL);
                double d2 = acc ? max_rel_diff(dp, acc) : 1.0;
                printf("  B %d: %d ranks vs one process with grad_accum %d x %d rows: max rel diff %.3g (%s)\n", rows, P, P,
                       rows / P, d2, acc && !memcmp(dp->params, acc->params, dp->num_floats * sizeof(float)) ? "bit-identical" : "not bit-identical");
                CHECK(acc && d2 < 1e-5, "B %d: %d ranks == grad_accum %d in one process within 1e-5 (got %.3g)", rows, P, P, d2);
                distill_model_free(acc);
            }
            distill_model_free(one);
        }
        distill_model_free(dp);
        distill_model_free(dp_sync);
    }
}

/* Gradient accumulation on top of data parallelism: the all-reduce happens once, after the last
   micro-batch, and the loss is normalised over all micro-batches of all ranks. */
static void test_accumulation(void) {
    int rows = 2 * world.size;
    distill_model *dp = train(&world, rows, 3, 4, 0, NULL, NULL, NULL);
    CHECK(dp && same_on_all_ranks(&world, dp), "grad_accum 3 data parallel");
    if (world.rank == 0 && dp) {
        distill_model *one = train(distill_comm_local(), rows, 3, 4, 0, NULL, NULL, NULL);
        double d = one ? max_rel_diff(dp, one) : 1.0;
        printf("  grad_accum 3 x B %d: %d ranks vs one process: max rel diff %.3g\n", rows, world.size, d);
        CHECK(one && d < 1e-5, "grad_accum 3: %d ranks == one process within 1e-5 (got %.3g)", world.size, d);
        distill_model_free(one);
    }
    distill_model_free(dp);
}

/* Logit distillation from an in-process teacher: the teacher runs on each rank's rows only. */
static void test_kd_equivalence(void) {
    distill_config mc = cfg();
    distill_error err;
    int rows = 2 * world.size + 1;
    distill_model *dp, *one;
    mc.dim = 48;   /* a bigger teacher, same vocabulary */
    kd_teacher = distill_model_create(&mc, rows, TT, 99, &err);
    CHECK(kd_teacher != NULL, "teacher: %s", err.msg);
    if (!kd_teacher) return;
    dp = train(&world, rows, 1, 5, 1, NULL, NULL, NULL);
    CHECK(dp && same_on_all_ranks(&world, dp), "KD data-parallel run, same weights on every rank");
    if (world.rank == 0 && dp) {
        double d;
        one = train(distill_comm_local(), rows, 1, 5, 1, NULL, NULL, NULL);
        d = one ? max_rel_diff(dp, one) : 1.0;
        printf("  KD B %d: %d ranks vs one process: max rel diff %.3g\n", rows, world.size, d);
        CHECK(one && d < 1e-5, "KD: %d ranks == one process within 1e-5 (got %.3g)", world.size, d);
        distill_model_free(one);
    }
    distill_model_free(dp);
    distill_model_free(kd_teacher);
    kd_teacher = NULL;
}

/* Wrong normalisation would show here: a mean of per-rank means weights the ranks' few and many
   supervised tokens equally. The reported loss of a data-parallel step must equal the one-process
   loss of the same global batch. */
static void test_loss_normalisation(void) {
    distill_config mc = cfg();
    distill_error err;
    static mem_src a, b;
    distill_batch_source sa, sb;
    distill_train_config tc = tcfg(1, 1, 2 * world.size);
    distill_model *m1 = distill_model_create(&mc, 2, TT, 5, &err), *m2 = distill_model_create(&mc, 2 * world.size, TT, 5, &err);
    distill_trainer *t1, *t2;
    distill_step_info i1, i2;
    mem_init(&a, 2 * world.size);
    mem_init(&b, 2 * world.size);
    a.pos = b.pos = NROWS / 2 - world.size;   /* a batch that straddles long and short rows */
    sa = mem_source(&a);
    sb = mem_source(&b);
    t1 = distill_trainer_create(m1, &sa, NULL, &tc, &err);
    t2 = distill_trainer_create(m2, &sb, NULL, &tc, &err);
    CHECK(t1 && t2 && distill_trainer_set_comm(t1, &world, &err) == 0, "trainers");
    if (!t1 || !t2) return;
    CHECK(distill_trainer_step(t1, &i1, &err) == 0 && distill_trainer_step(t2, &i2, &err) == 0, "steps: %s", err.msg);
    CHECK(fabs(i1.loss - i2.loss) < 1e-6 * fabs(i2.loss), "global loss %.9f == one-process loss %.9f", i1.loss, i2.loss);
    CHECK(fabs(i1.grad_norm - i2.grad_norm) < 1e-5 * i2.grad_norm, "grad norm %.9f == %.9f", i1.grad_norm, i2.grad_norm);
    CHECK(i1.tokens_seen == i2.tokens_seen, "tokens %lld == %lld", (long long)i1.tokens_seen, (long long)i2.tokens_seen);
    distill_trainer_free(t1); distill_trainer_free(t2);
    distill_model_free(m1); distill_model_free(m2);
}

/* Rank 0 writes the checkpoints; a resumed job continues exactly where it stopped. */
static void test_checkpoint_resume(void) {
    const char *dir = "build/mpi/dp_out";
    distill_model *full, *part, *resumed;
    char cmd[256];
    FILE *f;
    if (world.rank == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) {}
    }
    world.barrier(&world, NULL);
    full = train(&world, 2 * world.size, 1, 8, 1, NULL, NULL, NULL);
    part = train(&world, 2 * world.size, 1, 6, 1, dir, NULL, NULL);   /* checkpoints at 3 and 6 */
    world.barrier(&world, NULL);
    f = fopen("build/mpi/dp_out/metrics.jsonl", "r");
    if (f) fclose(f);
    if (world.rank == 0) CHECK(f != NULL, "rank 0 writes metrics.jsonl");
    resumed = train(&world, 2 * world.size, 1, 8, 1, dir, dir, NULL);
    CHECK(full && part && resumed, "runs");
    if (full && resumed)
        CHECK(!memcmp(full->params, resumed->params, full->num_floats * sizeof(float)),
              "6 steps + checkpoint + resume to 8 == 8 steps straight, bit for bit");
    if (world.rank == 0) {
        f = fopen("build/mpi/dp_out/ckpt-000000008.dstl", "rb");
        CHECK(f != NULL, "rank 0 wrote ckpt-000000008.dstl");
        if (f) fclose(f);
    }
    distill_model_free(full); distill_model_free(part); distill_model_free(resumed);
}

/* A data-parallel trainer over its own in-memory source (src must outlive it): the model from
   `seed`, `steps` steps of 2P rows. */
static distill_trainer *small_trainer(uint64_t seed, int64_t steps, distill_model **m, mem_src *src, distill_error *err) {
    distill_config mc = cfg();
    distill_batch_source bs;
    distill_train_config tc = tcfg(steps, 1, 2 * world.size);
    distill_trainer *t;
    *m = distill_model_create(&mc, 2, TT, seed, err);
    if (!*m) return NULL;
    mem_init(src, 2 * world.size);
    bs = mem_source(src);
    t = distill_trainer_create(*m, &bs, NULL, &tc, err);
    if (t && distill_trainer_set_comm(t, &world, err) != 0) { distill_trainer_free(t); t = NULL; }
    return t;
}

/* A callback that stops training on one rank stops every rank (no rank left in a collective). */
static int stop_on_last_rank(void *ctx, const distill_step_info *in) {
    (void)ctx;
    return world.rank == world.size - 1 && in->step == 2;
}
static void test_callback_stop(void) {
    distill_error err;
    static mem_src a;
    distill_model *m = NULL;
    distill_trainer *t = small_trainer(5, 10, &m, &a, &err);
    CHECK(t != NULL, "trainer: %s", err.msg);
    if (!t) { distill_model_free(m); return; }
    distill_trainer_set_callback(t, stop_on_last_rank, NULL);
    CHECK(distill_trainer_run(t, &err) == 0, "run: %s", err.msg);
    CHECK(distill_trainer_steps_done(t) == 2, "rank %d stopped after step %lld (want 2)", world.rank,
          (long long)distill_trainer_steps_done(t));
    CHECK(same_on_all_ranks(&world, m), "same weights after the stop");
    distill_trainer_free(t);
    distill_model_free(m);
}

/* Ranks that start from different weights are refused before the first update. */
static void test_mismatch_refused(void) {
    distill_error err;
    static mem_src a;
    distill_model *m = NULL;
    distill_trainer *t = small_trainer((uint64_t)(5 + world.rank), 1, &m, &a, &err);
    int rc;
    CHECK(t != NULL, "trainer: %s", err.msg);
    if (!t) { distill_model_free(m); return; }
    err.msg[0] = 0;
    rc = distill_trainer_step(t, NULL, &err);
    CHECK(rc == -1 && strstr(err.msg, "differ from rank 0"), "different initial weights refused: %s", err.msg);
    distill_trainer_free(t);
    distill_model_free(m);
}

int main(int argc, char **argv) {
    distill_error err;
    if (distill_mpi_init(&argc, &argv, &world, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (world.size < 2 && world.rank == 0) printf("note: run under mpirun -np 2 (one rank tests nothing distributed)\n");
    distill_set_threads(1);
    RUN(test_equivalence);
    RUN(test_accumulation);
    RUN(test_kd_equivalence);
    RUN(test_loss_normalisation);
    RUN(test_checkpoint_resume);
    RUN(test_callback_stop);
    RUN(test_mismatch_refused);
    {   /* the suite passes only if it passed on every rank */
        int64_t fails = harness_failed;
        world.allreduce(&world, &fails, 1, DISTILL_I64, NULL);
        if (world.rank == 0) { harness_failed = (int)fails; }
        else { distill_mpi_finalize(); return fails ? 1 : 0; }
    }
    distill_mpi_finalize();
    return harness_done("test_mpi_dp");
}
