/* The training loop: gradient accumulation equals one big batch, exact resume after kill -9,
   NaN/Inf stops naming the step, logit distillation through the trainer (in-process teacher and
   top-k cache) against the per-position reference, checkpoint rotation and corruption. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <stdlib.h>
#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>

/* ---- a synthetic batch source with an exact, saveable position ---- */
#define SR 24   /* rows */
#define ST 12   /* max row length */
typedef struct {
    int B;
    int32_t tok[SR][ST];
    int len[SR];
    int64_t epoch, pos, perm[SR];
    int32_t bt[SR * ST], btg[SR * ST];
    float bw[SR * ST];
    int bl[SR];
    int64_t rows[SR];
    int fixed_order;   /* 1: rows in order, no shuffle */
} src;

static void src_perm(src *s) {
    distill_rng r;
    int i;
    for (i = 0; i < SR; i++) s->perm[i] = i;
    if (s->fixed_order) return;
    distill_rng_seed(&r, 1000 + (uint64_t)s->epoch);
    for (i = SR - 1; i > 0; i--) { int j = (int)distill_rng_below(&r, (uint64_t)i + 1); int64_t x = s->perm[i]; s->perm[i] = s->perm[j]; s->perm[j] = x; }
}

static void src_init(src *s, int B, int V, uint64_t seed) {
    distill_rng r;
    int i, t;
    memset(s, 0, sizeof *s);
    s->B = B;
    distill_rng_seed(&r, seed);
    for (i = 0; i < SR; i++) {
        s->len[i] = 4 + (int)distill_rng_below(&r, ST - 3);
        for (t = 0; t < ST; t++) s->tok[i][t] = (int32_t)((i * 3 + t * t) % V);   /* learnable pattern */
    }
    src_perm(s);
}

static int src_next(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err) {
    src *s = (src *)ctx;
    int i, t;
    (void)err;
    if (s->pos + s->B > SR) { s->epoch++; s->pos = 0; src_perm(s); }
    for (i = 0; i < s->B; i++) {
        int64_t r = s->perm[s->pos + i];
        s->rows[i] = r;
        s->bl[i] = s->len[r];
        for (t = 0; t < ST; t++) {
            size_t p = (size_t)i * ST + t;
            s->bt[p] = s->tok[r][t];
            /* a 2-token "prompt" is unsupervised; weights vary by row */
            s->btg[p] = t >= 2 && t + 1 < s->len[r] ? s->tok[r][t + 1] : -1;
            s->bw[p] = s->btg[p] >= 0 ? 0.5f + 0.5f * (float)(r % 3) : 0.0f;
        }
    }
    s->pos += s->B;
    memset(b, 0, sizeof *b);
    b->B = s->B; b->T = ST; b->tokens = s->bt; b->targets = s->btg; b->weights = s->bw; b->lengths = s->bl;
    *rows = s->rows;
    *n_rows = s->B;
    return 0;
}
static void src_get(void *ctx, int64_t st[3]) { src *s = (src *)ctx; st[0] = s->epoch; st[1] = s->pos; st[2] = 4242; }
static int src_set(void *ctx, const int64_t st[3], distill_error *err) {
    src *s = (src *)ctx;
    if (st[2] != 4242 && st[2] != 0) return distill__err(err, "source fingerprint mismatch");
    s->epoch = st[0]; s->pos = st[1];
    src_perm(s);
    return 0;
}
static double src_epoch(void *ctx) { src *s = (src *)ctx; return (double)s->epoch + (double)s->pos / SR; }

static distill_batch_source src_source(src *s) {
    distill_batch_source bs;
    bs.ctx = s; bs.next = src_next; bs.get_state = src_get; bs.set_state = src_set; bs.epoch = src_epoch;
    bs.rows_per_epoch = SR;
    return bs;
}

static distill_config tiny(void) {
    distill_config c = distill_config_default();
    c.vocab_size = 32; c.dim = 16; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 24;
    return c;
}

static distill_train_config quiet_config(void) {
    distill_train_config tc = distill_train_default();
    tc.progress = 0;
    tc.optim.lr = 1e-2f;
    tc.optim.warmup_steps = 0;
    return tc;
}

static void test_grad_accumulation_equals_big_batch(void) {
    distill_config c = tiny();
    distill_error err;
    distill_model *a = distill_model_create(&c, 4, ST, 7, &err), *b = distill_model_create(&c, 4, ST, 7, &err);
    src sa, sb;
    distill_batch_source qa, qb;
    distill_train_config ta = quiet_config(), tb = quiet_config();
    distill_trainer *TA, *TB;
    distill_step_info ia, ib;
    double maxd = 0, maxg = 0;
    size_t i;
    src_init(&sa, 4, c.vocab_size, 3); sa.fixed_order = 1; src_perm(&sa);
    src_init(&sb, 2, c.vocab_size, 3); sb.fixed_order = 1; src_perm(&sb);
    /* rows 0-1 and 2-3 have different supervised weight totals, so a mean of per-micro-batch
       means would differ from the mean over all four rows */
    ta.max_steps = 1; ta.grad_accum = 1; ta.optim.grad_clip = 0;
    tb.max_steps = 1; tb.grad_accum = 2; tb.optim.grad_clip = 0;
    qa = src_source(&sa); qb = src_source(&sb);
    TA = distill_trainer_create(a, &qa, NULL, &ta, &err);
    TB = distill_trainer_create(b, &qb, NULL, &tb, &err);
    CHECK(TA && TB, "create: %s", err.msg);
    if (!TA || !TB) return;
    CHECK(distill_trainer_step(TA, &ia, &err) == 0, "step: %s", err.msg);
    CHECK(distill_trainer_step(TB, &ib, &err) == 0, "step: %s", err.msg);
    CHECK_CLOSE(ib.loss, ia.loss, 1e-6, 0, "loss: accumulated vs one batch");
    for (i = 0; i < a->num_floats; i++) {
        double d = fabs((double)a->grads[i] - (double)b->grads[i]);
        if (d > maxd) maxd = d;
        if (fabs(a->grads[i]) > maxg) maxg = fabs(a->grads[i]);
    }
    CHECK(maxd <= 1e-5 * maxg && maxg > 0, "gradients: accumulated vs one batch differ by %g (max |g| %g)", maxd, maxg);
    distill_trainer_free(TA); distill_trainer_free(TB);
    distill_model_free(a); distill_model_free(b);
}

/* The trainer's step is the documented model-level step: zero the gradients, forward+backward
   with grad_scale 1/(sum of weights), then distill_adamw_step with the step index counted from 0
   (which sets AdamW's bias correction). Three trainer steps against three hand-driven ones on
   the same batches; a constant schedule, so the index matters only through AdamW. */
static void test_step_is_model_step(void) {
    distill_config c = tiny();
    distill_error err;
    distill_model *a = distill_model_create(&c, 4, ST, 11, &err), *b = distill_model_create(&c, 4, ST, 11, &err);
    src sa, sb;
    distill_batch_source qa;
    distill_train_config ta = quiet_config();
    distill_trainer *TA;
    double maxd = 0, maxp = 0;
    size_t i;
    int step;
    REQUIRE(a && b, "create: %s", err.msg);
    src_init(&sa, 4, c.vocab_size, 5); sa.fixed_order = 1; src_perm(&sa);
    src_init(&sb, 4, c.vocab_size, 5); sb.fixed_order = 1; src_perm(&sb);
    ta.max_steps = 3; ta.grad_accum = 1; ta.optim.schedule = DISTILL_SCHED_CONSTANT;
    qa = src_source(&sa);
    TA = distill_trainer_create(a, &qa, NULL, &ta, &err);
    REQUIRE(TA != NULL, "create: %s", err.msg);
    for (step = 0; step < 3; step++) {
        distill_batch bt;
        const int64_t *rows;
        int n_rows, k;
        double wsum = 0.0;
        CHECK(distill_trainer_step(TA, NULL, &err) == 0, "trainer step %d: %s", step, err.msg);
        src_next(&sb, &bt, &rows, &n_rows, &err);
        for (k = 0; k < bt.B * bt.T; k++) if (bt.targets[k] >= 0) wsum += bt.weights[k];
        distill_model_zero_grad(b);
        CHECK(distill_model_forward_backward(b, &bt, NULL, (float)(1.0 / wsum), NULL, &err) == 0, "%s", err.msg);
        distill_adamw_step(b, &ta.optim, step);
    }
    for (i = 0; i < a->num_floats; i++) {
        double d = fabs((double)a->params[i] - (double)b->params[i]);
        if (d > maxd) maxd = d;
        if (fabs(b->params[i]) > maxp) maxp = fabs(b->params[i]);
    }
    CHECK(maxd <= 1e-6 * maxp, "weights after 3 trainer steps differ from 3 model steps by %g (max |w| %g)", maxd, maxp);
    distill_trainer_free(TA);
    distill_model_free(a); distill_model_free(b);
}

/* Train 2N steps straight; separately train with checkpoints every N, kill -9 the process
   after step N+1, resume from the directory, finish: the weights must be bit-identical. */
#define NSTEP 6
static const char *self_path = "build/tests/test_trainer";
static void run_child(const char *dir) {
    distill_config c = tiny();
    distill_error err;
    distill_model *m = distill_model_create(&c, 4, ST, 11, &err);
    src s;
    distill_batch_source q;
    distill_train_config tc = quiet_config();
    distill_trainer *T;
    int i;
    src_init(&s, 3, c.vocab_size, 5);
    q = src_source(&s);
    tc.max_steps = 2 * NSTEP; tc.out_dir = dir; tc.save_every = NSTEP; tc.grad_accum = 2;
    tc.optim.schedule = DISTILL_SCHED_COSINE; tc.optim.warmup_steps = 2;
    T = distill_trainer_create(m, &q, NULL, &tc, &err);
    if (!T) _exit(3);
    for (i = 0; i < 2 * NSTEP; i++) {
        if (distill_trainer_step(T, NULL, &err) != 0) _exit(4);
        if (distill_trainer_steps_done(T) == NSTEP) {
            char p[256];
            snprintf(p, sizeof p, "%s/ckpt-%09d.dstl", dir, NSTEP);
            if (distill_trainer_save(T, p, &err) != 0) _exit(5);
        }
        if (distill_trainer_steps_done(T) == NSTEP + 1) kill(getpid(), SIGKILL);
    }
    _exit(6);
}

static void test_exact_resume_after_kill(void) {
    const char *dir = "build/test_trainer_resume";
    distill_config c = tiny();
    distill_error err;
    distill_model *a = distill_model_create(&c, 4, ST, 11, &err), *b = distill_model_create(&c, 4, ST, 11, &err);
    src sa, sb;
    distill_batch_source qa, qb;
    distill_train_config tc = quiet_config();
    distill_trainer *T;
    pid_t pid;
    int status = 0;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {}
    mkdir("build", 0755);
    mkdir(dir, 0755);
    /* straight */
    src_init(&sa, 3, c.vocab_size, 5);
    qa = src_source(&sa);
    tc.max_steps = 2 * NSTEP; tc.grad_accum = 2;
    tc.optim.schedule = DISTILL_SCHED_COSINE; tc.optim.warmup_steps = 2;
    T = distill_trainer_create(a, &qa, NULL, &tc, &err);
    CHECK(T && distill_trainer_run(T, &err) == 0, "straight run: %s", err.msg);
    distill_trainer_free(T);
    /* killed child: a fresh process (exec of this binary), since fork() of a process whose
       thread pool is running would leave the child without its workers */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execl(self_path, self_path, "--resume-child", dir, (char *)NULL);
        _exit(7);
    }
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child should die by SIGKILL (status %d)", status);
    /* resume in this process with a fresh model and source */
    src_init(&sb, 3, c.vocab_size, 5);
    qb = src_source(&sb);
    T = distill_trainer_create(b, &qb, NULL, &tc, &err);
    CHECK(T && distill_trainer_resume(T, dir, &err) == 0, "resume: %s", err.msg);
    if (!T) return;
    CHECK(distill_trainer_steps_done(T) == NSTEP, "resumed at step %lld", (long long)distill_trainer_steps_done(T));
    CHECK(distill_trainer_run(T, &err) == 0, "resumed run: %s", err.msg);
    CHECK(memcmp(a->params, b->params, a->num_floats * sizeof(float)) == 0, "weights after resume are not bit-identical");
    CHECK(a->m && b->m && memcmp(a->m, b->m, a->num_floats * sizeof(float)) == 0, "AdamW moments differ after resume");
    distill_trainer_free(T);
    distill_model_free(a); distill_model_free(b);
}

static void test_nan_stops_naming_step(void) {
    distill_config c = tiny();
    distill_error err;
    distill_model *m = distill_model_create(&c, 4, ST, 1, &err);
    src s;
    distill_batch_source q;
    distill_train_config tc = quiet_config();
    distill_trainer *T;
    float before;
    src_init(&s, 2, c.vocab_size, 1);
    q = src_source(&s);
    tc.max_steps = 5;
    T = distill_trainer_create(m, &q, NULL, &tc, &err);
    CHECK(distill_trainer_step(T, NULL, &err) == 0 && distill_trainer_step(T, NULL, &err) == 0, "two good steps");
    m->final_norm[0] = NAN;
    before = m->tok_emb[5];
    CHECK(distill_trainer_run(T, &err) != 0 && strstr(err.msg, "step 3") && strstr(err.msg, "NaN"), "NaN message: %s", err.msg);
    CHECK(m->tok_emb[5] == before, "a NaN step must not update the weights");
    distill_trainer_free(T);
    distill_model_free(m);
}

/* The KD loss the trainer reports equals sum_w(kd_position(student, teacher)) / sum_w, with
   teacher and student logits recomputed here through the public forward. */
static void test_kd_in_process_and_cache(void) {
    distill_config c = tiny();
    distill_error err;
    distill_model *st = distill_model_create(&c, 4, ST, 21, &err), *te = distill_model_create(&c, 4, ST, 22, &err);
    distill_model *st2 = distill_model_create(&c, 4, ST, 21, &err);
    src s, s2;
    distill_batch_source q, q2;
    distill_train_config tc = quiet_config();
    distill_trainer *T, *T2;
    distill_step_info in, in2;
    distill_batch b;
    const int64_t *rows;
    int nr, r, t, j, V = c.vocab_size;
    static float lt[ST * 32], ls[ST * 32];
    double num = 0, den = 0, sd[32], td[32], scratch[9 * 32];
    distill_topk_writer *w;
    distill_topk_cache *cache;
    distill_model *bad;
    distill_config c2 = c;
    src_init(&s, 3, V, 9); s.fixed_order = 1; src_perm(&s);
    /* reference on the first batch, before training */
    src_next(&s, &b, &rows, &nr, &err);
    tc.kd = 1; tc.kdc.alpha = 0.7f; tc.kdc.beta = 0.3f; tc.kdc.temperature = 1.5f; tc.max_steps = 1;
    distill_model_forward(te, &b, NULL, 0.0f, NULL, &err);
    for (r = 0; r < b.B; r++) {
        distill_model_logits(te, r, lt);
        for (t = 0; t < ST * V; t++) ls[t] = 0;
        distill_model_forward(st, &b, NULL, 0.0f, NULL, &err);
        distill_model_logits(st, r, ls);
        distill_model_forward(te, &b, NULL, 0.0f, NULL, &err);
        for (t = 0; t < b.lengths[r]; t++) {
            size_t p = (size_t)r * ST + t;
            if (b.targets[p] < 0) continue;
            for (j = 0; j < V; j++) { sd[j] = ls[t * V + j]; td[j] = lt[t * V + j]; }
            num += b.weights[p] * distill_kd_position(sd, V, td, NULL, NULL, 0, 0.0f, b.targets[p], &tc.kdc, NULL, scratch).loss;
            den += b.weights[p];
        }
    }
    s.pos = 0;
    q = src_source(&s);
    T = distill_trainer_create(st, &q, NULL, &tc, &err);
    CHECK(T && distill_trainer_set_teacher(T, te, &err) == 0, "teacher: %s", err.msg);
    CHECK(distill_trainer_step(T, &in, &err) == 0, "kd step: %s", err.msg);
    CHECK_CLOSE(in.loss, num / den, 1e-5, 1e-7, "in-process KD loss vs reference");
    /* top-k cache with k = V-1 and tau = 1: the same divergence up to float rounding */
    w = distill_topk_writer_open("build/test_trainer.topk", V - 1, V, &err);
    src_init(&s2, 3, V, 9); s2.fixed_order = 1; src_perm(&s2);
    for (r = 0; r < SR / 3; r++) {
        int i;
        src_next(&s2, &b, &rows, &nr, &err);
        distill_model_forward(te, &b, NULL, 0.0f, NULL, &err);
        for (i = 0; i < b.B; i++) {
            distill_model_logits(te, i, lt);
            distill_topk_writer_add_row(w, b.tokens + (size_t)i * ST, b.targets + (size_t)i * ST, b.lengths[i], lt, &err);
        }
    }
    CHECK(distill_topk_writer_close(w, &err) == 0, "cache write: %s", err.msg);
    cache = distill_topk_cache_open("build/test_trainer.topk", V, SR, &err);
    CHECK(cache != NULL, "cache open: %s", err.msg);
    if (cache) {
        distill_trainer *T3;
        distill_model *st3 = distill_model_create(&c, 4, ST, 21, &err), *te3 = distill_model_create(&c, 4, ST, 22, &err);
        distill_step_info i3;
        src s3;
        distill_batch_source q3;
        tc.kdc.temperature = 1.0f;
        src_init(&s2, 3, V, 9); s2.fixed_order = 1; src_perm(&s2);
        q2 = src_source(&s2);
        T2 = distill_trainer_create(st2, &q2, NULL, &tc, &err);
        CHECK(distill_trainer_set_cache(T2, cache, &err) == 0, "set cache: %s", err.msg);
        CHECK(distill_trainer_step(T2, &in2, &err) == 0, "cache step: %s", err.msg);
        src_init(&s3, 3, V, 9); s3.fixed_order = 1; src_perm(&s3);
        q3 = src_source(&s3);
        T3 = distill_trainer_create(st3, &q3, NULL, &tc, &err);
        distill_trainer_set_teacher(T3, te3, &err);
        CHECK(distill_trainer_step(T3, &i3, &err) == 0, "teacher step: %s", err.msg);
        CHECK_CLOSE(in2.loss, i3.loss, 1e-4, 1e-6, "top-(V-1) cache loss vs in-process teacher");
        distill_trainer_free(T2); distill_trainer_free(T3);
        distill_model_free(st3); distill_model_free(te3);
        distill_topk_cache_free(cache);
    }
    /* different vocabularies are refused */
    c2.vocab_size = V + 1;
    bad = distill_model_create(&c2, 1, ST, 1, &err);
    CHECK(distill_trainer_set_teacher(T, bad, &err) != 0 && strstr(err.msg, "vocabulary"), "vocab mismatch: %s", err.msg);
    distill_model_free(bad);
    distill_trainer_free(T);
    distill_model_free(st); distill_model_free(st2); distill_model_free(te);
}

static void test_rotation_metrics_and_corruption(void) {
    const char *dir = "build/test_trainer_rot";
    distill_config c = tiny();
    distill_error err;
    distill_model *m = distill_model_create(&c, 4, ST, 2, &err);
    src s, se;
    distill_batch_source q, qe;
    distill_train_config tc = quiet_config();
    distill_trainer *T;
    char cmd[256], p[256];
    size_t n;
    char *log;
    unsigned char *buf;
    FILE *f;
    int lines = 0;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {}
    src_init(&s, 2, c.vocab_size, 4);
    src_init(&se, 4, c.vocab_size, 99);
    q = src_source(&s); qe = src_source(&se);
    tc.max_steps = 10; tc.out_dir = dir; tc.save_every = 2; tc.keep_last = 2; tc.eval_every = 5; tc.eval_batches = 2;
    tc.config_json = "{\"lr\": 0.01, \"note\": \"test\"}";
    T = distill_trainer_create(m, &q, &qe, &tc, &err);
    CHECK(T && distill_trainer_run(T, &err) == 0, "run: %s", err.msg);
    distill_trainer_free(T);
    snprintf(p, sizeof p, "%s/ckpt-%09d.dstl", dir, 6);
    f = fopen(p, "rb");
    CHECK(f == NULL, "old checkpoint %s should be rotated away", p);
    if (f) fclose(f);
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    log = (char *)distill_read_file(p, &n, &err);
    CHECK(log != NULL, "metrics: %s", err.msg);
    if (log) {
        char *x;
        for (x = log; *x; x++) lines += *x == '\n';
        CHECK(lines == 10 && strstr(log, "\"eval_loss\"") && strstr(log, "\"tokens_per_sec\"") && strstr(log, "\"grad_norm\""),
              "metrics.jsonl: %d lines", lines);
        distill_free(log);
    }
    /* corrupt the newest: resume names it and offers ckpt 8 */
    snprintf(p, sizeof p, "%s/ckpt-%09d.dstl", dir, 10);
    buf = (unsigned char *)distill_read_file(p, &n, &err);
    if (buf) {
        buf[n - 3] ^= 0x10;
        f = fopen(p, "wb"); fwrite(buf, 1, n, f); fclose(f);
        distill_free(buf);
    }
    T = distill_trainer_create(m, &q, NULL, &tc, &err);
    CHECK(distill_trainer_resume(T, dir, &err) != 0 && strstr(err.msg, "ckpt-000000010.dstl") &&
          strstr(err.msg, "ckpt-000000008.dstl"), "corrupt newest: %s", err.msg);
    snprintf(p, sizeof p, "%s/ckpt-%09d.dstl", dir, 8);
    CHECK(distill_trainer_resume(T, p, &err) == 0 && distill_trainer_steps_done(T) == 8, "explicit resume: %s", err.msg);
    distill_trainer_free(T);
    /* the log lost the lines of steps 9 and 10, which the resumed run will write again */
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    log = (char *)distill_read_file(p, &n, &err);
    lines = 0;
    if (log) {
        char *x;
        for (x = log; *x; x++) lines += *x == '\n';
        distill_free(log);
    }
    CHECK(lines == 8, "metrics.jsonl after resuming at step 8 has %d lines", lines);
    /* more checkpoints than the listing holds (256): resume still finds the newest */
    {
        int k;
        snprintf(p, sizeof p, "%s/ckpt-%09d.dstl", dir, 8);
        buf = (unsigned char *)distill_read_file(p, &n, &err);
        for (k = 20; buf && k < 320; k++) {   /* decoys with higher numbers than 8, but corrupt */
            snprintf(p, sizeof p, "%s/ckpt-%09d.dstl", dir, k);
            f = fopen(p, "wb");
            if (f) { fwrite(buf, 1, k == 319 ? n : n / 2, f); fclose(f); }
        }
        distill_free(buf);
        T = distill_trainer_create(m, &q, NULL, &tc, &err);
        CHECK(T && distill_trainer_resume(T, dir, &err) == 0 && distill_trainer_steps_done(T) == 8,
              "300 checkpoints: resume takes the newest, ckpt-000000319 (a copy of step 8): %s", err.msg);
        distill_trainer_free(T);
    }
    distill_model_free(m);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--resume-child")) run_child(argv[2]);
    self_path = argv[0];
    RUN(test_grad_accumulation_equals_big_batch);
    RUN(test_step_is_model_step);
    RUN(test_exact_resume_after_kill);
    RUN(test_nan_stops_naming_step);
    RUN(test_kd_in_process_and_cache);
    RUN(test_rotation_metrics_and_corruption);
    return harness_done("test_trainer");
}
