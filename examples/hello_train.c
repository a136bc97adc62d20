/* hello_train.c - the smallest training loop: a tiny Llama-style model memorises one line of
   text, byte by byte, with the one-call API (distill_train_step = zero grad, forward, backward,
   AdamW). The one thing to learn here: a batch is tokens + next-token targets.

       cc -O2 -o hello_train examples/hello_train.c -lm -lpthread && ./hello_train */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"

int main(void) {
    const char *text = "hello, distill.h! hello, distill.h! hello, distill.h!";
    int32_t tok[64], tgt[64];
    int T = (int)strlen(text) - 1, t;
    int64_t step;
    distill_error err;
    distill_batch batch;
    distill_model *m;
    distill_config cfg = distill_config_default();      /* Llama-style; shrink it: */
    distill_optim_config opt = distill_optim_default();  /* AdamW, cosine schedule, clipping */
    cfg.vocab_size = 256; cfg.dim = 64; cfg.n_layers = 2;
    cfg.n_heads = 4; cfg.n_kv_heads = 2; cfg.hidden_dim = 176;
    m = distill_model_create(&cfg, /*max_batch*/ 1, /*max_seq*/ 64, /*seed*/ 42, &err);
    if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (t = 0; t < T; t++) { tok[t] = (unsigned char)text[t]; tgt[t] = (unsigned char)text[t + 1]; }
    memset(&batch, 0, sizeof batch);
    batch.B = 1; batch.T = T; batch.tokens = tok; batch.targets = tgt;
    opt.lr = 3e-3f; opt.warmup_steps = 10; opt.total_steps = 150;
    for (step = 0; step < 150; step++) {
        distill_stats st;
        double gnorm;
        if (distill_train_step(m, &batch, &opt, step, &st, &gnorm, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        if (step % 30 == 0 || step == 149)
            printf("step %3d  loss %.4f  accuracy %.2f  grad norm %.3f\n", (int)step, st.loss, st.accuracy, gnorm);
    }
    distill_model_free(m);
    return 0;
}
