/* A full training step (forward, backward, AdamW) through the public model API gives the same
   bits for 1, 2 and 3 threads: loss, gradient norm and every parameter after the steps. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

typedef struct { double loss, gnorm; float *params; size_t n; int ok; } run_result;

static run_result train(int threads, int use_flash_sizes) {
    distill_config cfg = distill_config_default();
    distill_optim_config oc = distill_optim_default();
    distill_error err;
    distill_model *m;
    distill_batch bt;
    distill_rng r;
    run_result res;
    int32_t tokens[2 * 70], targets[2 * 70];
    int lengths[2], B = 2, T = use_flash_sizes ? 70 : 37, i, step;
    memset(&res, 0, sizeof res);
    cfg.vocab_size = 300; cfg.dim = 64; cfg.n_layers = 2; cfg.n_heads = 4; cfg.n_kv_heads = 2;
    cfg.hidden_dim = 96;
    distill_set_threads(threads);
    m = distill_model_create(&cfg, B, T, 7, &err);
    if (!m) { printf("    model_create: %s\n", err.msg); return res; }
    distill_rng_seed(&r, 99);
    for (i = 0; i < B * T; i++) {
        tokens[i] = (int32_t)distill_rng_below(&r, 300);
        targets[i] = i % 5 == 0 ? -1 : (int32_t)distill_rng_below(&r, 300);
    }
    lengths[0] = T; lengths[1] = T - 9;
    memset(&bt, 0, sizeof bt);
    bt.B = B; bt.T = T; bt.tokens = tokens; bt.targets = targets; bt.lengths = lengths;
    for (step = 0; step < 2; step++) {
        distill_stats st;
        if (distill_train_step(m, &bt, &oc, step, &st, &res.gnorm, &err) != 0) {
            printf("    train_step: %s\n", err.msg);
            distill_model_free(m);
            return res;
        }
        res.loss = st.loss;
    }
    res.n = m->num_params;
    res.params = (float *)malloc(res.n * sizeof(float));
    memcpy(res.params, m->params, res.n * sizeof(float));
    res.ok = 1;
    distill_model_free(m);
    distill_set_threads(0);
    return res;
}

static void check_threads(int flash_sizes) {
    run_result a = train(1, flash_sizes), b;
    int nt;
    CHECK(a.ok, "training with 1 thread failed");
    if (!a.ok) return;
    CHECK(a.loss == a.loss && a.loss > 0, "loss %g", a.loss);
    for (nt = 2; nt <= 3; nt++) {
        b = train(nt, flash_sizes);
        CHECK(b.ok, "training with %d threads failed", nt);
        if (!b.ok) continue;
        CHECK(a.loss == b.loss, "%d threads: loss %.17g vs %.17g", nt, b.loss, a.loss);
        CHECK(a.gnorm == b.gnorm, "%d threads: grad norm %.17g vs %.17g", nt, b.gnorm, a.gnorm);
        CHECK(a.n == b.n && !memcmp(a.params, b.params, a.n * sizeof(float)),
              "%d threads: parameters differ after 2 steps", nt);
        free(b.params);
    }
    free(a.params);
}

static void test_train_step_bit_exact_T37(void) { check_threads(0); }
static void test_train_step_bit_exact_T70(void) { check_threads(1); }

int main(void) {
    RUN(test_train_step_bit_exact_T37);
    RUN(test_train_step_bit_exact_T70);
    return harness_done("test_threads_train");
}
