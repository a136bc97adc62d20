/* A threaded training step, built for ThreadSanitizer by `make tsan` (and run as a normal test by
   `make test`): SFT steps and a logit-distillation step (in-process teacher, whose per-thread
   accumulators run on the pool) on a small model with 4 threads, checked bit-identical to the
   same steps on 1 thread. Under TSan any data race in the pool, the kernels, the fused LM head
   or the KD head aborts the binary. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

#define B_ 2
#define T_ 24

static distill_config cfg(void) {
    distill_config c = distill_config_default();
    c.vocab_size = 96; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 48;
    return c;
}

static void make_batch(distill_batch *b, int32_t *tok, int32_t *tg, int V) {
    int i;
    for (i = 0; i < B_ * T_; i++) {
        tok[i] = (int32_t)((i * 7 + 3) % V);
        tg[i] = (i % T_) < 4 ? -1 : (int32_t)((i * 11 + 5) % V);
    }
    memset(b, 0, sizeof *b);
    b->B = B_; b->T = T_; b->tokens = tok; b->targets = tg;
}

/* Three SFT steps then one KD step; returns the losses and a hash of the final weights. */
static int run(int threads, double loss[4], char sha[65], distill_error *err) {
    distill_config c = cfg();
    distill_model *m, *te;
    distill_optim_config oc = distill_optim_default();
    distill_batch b;
    static int32_t tok[B_ * T_], tg[B_ * T_];
    distill_stats st;
    distill_kd_config kc = distill_kd_default();
    distill_kd_head *h;
    distill_head_loss hl;
    int s, rc = -1;
    distill_set_threads(threads);
    m = distill_model_create(&c, B_, T_, 11, err);
    te = distill_model_create(&c, B_, T_, 12, err);
    if (!m || !te) goto done;
    make_batch(&b, tok, tg, c.vocab_size);
    oc.lr = 1e-2f; oc.warmup_steps = 0;
    for (s = 0; s < 3; s++) {
        if (distill_train_step(m, &b, &oc, s, &st, NULL, err) != 0) goto done;
        loss[s] = st.loss;
    }
    kc.alpha = 0.5f; kc.temperature = 2.0f; kc.beta = 0.5f;
    h = distill_kd_head_create(&kc, c.vocab_size, err);
    if (!h) goto done;
    if (distill_kd_head_run_teacher(h, te, &b, err) != 0) { distill_kd_head_free(h); goto done; }
    hl = distill_kd_head_loss(h);
    distill_model_zero_grad(m);
    if (distill_model_forward_backward(m, &b, &hl, 0.0f, &st, err) != 0) { distill_kd_head_free(h); goto done; }
    distill_adamw_step(m, &oc, 3);
    loss[3] = st.loss;
    distill_kd_head_free(h);
    distill_model_sha256(m, sha);
    rc = 0;
done:
    distill_model_free(m);
    distill_model_free(te);
    return rc;
}

static void test_threaded_steps_match_one_thread(void) {
    double l1[4], l4[4];
    char s1[65], s4[65];
    distill_error err;
    int i;
    CHECK(run(1, l1, s1, &err) == 0, "1 thread: %s", err.msg);
    CHECK(run(4, l4, s4, &err) == 0, "4 threads: %s", err.msg);
    for (i = 0; i < 4; i++) CHECK(l1[i] == l4[i] && l1[i] == l1[i], "step %d loss: 1 thread %.17g, 4 threads %.17g", i, l1[i], l4[i]);
    CHECK(!strcmp(s1, s4), "weights after the steps differ between 1 and 4 threads");
    CHECK(l1[2] < l1[0], "SFT steps lower the loss (%g -> %g)", l1[0], l1[2]);
    distill_set_threads(0);
}

int main(void) {
    RUN(test_threaded_steps_match_one_thread);
    return harness_done("test_tsan_step");
}
