/* PyTorch parity: tests/gen_reference.py builds the same tiny Llama- and Qwen2-style models in
   PyTorch (float64, autograd, torch.optim.AdamW) and writes tests/fixtures/model_*.bin. Here the
   C model loads those weights by name and must reproduce the logits, loss, accuracy, entropy,
   every gradient, and the loss / gradient norm / lr of 10 AdamW steps plus the final weights.

   Tolerances: the C side runs in float32 against a float64 reference. Forward quantities agree
   to ~1e-6 relative; gradients to ~1e-5 of the largest entry of each tensor; after 10 Adam steps
   (lr 1e-2) parameters differ by a few 1e-6 (Adam divides by sqrt(v), so float noise in tiny
   gradients moves weights by at most ~lr * noise/|g|). A single wrong backward formula moves
   gradients by O(max|g|) and the training curve within a step or two. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

typedef struct {
    char name[96];
    int dtype, ndim, dims[4];
    size_t count;
    const unsigned char *data;
} fx_entry;

typedef struct {
    unsigned char *buf;
    size_t size;
    int n;
    fx_entry e[256];
} fixture;

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Parse, checking every length against the file size. */
static int fx_load(fixture *f, const char *path) {
    size_t off = 12, i;
    uint32_t n;
    distill_error err;
    memset(f, 0, sizeof *f);
    f->buf = (unsigned char *)distill_read_file(path, &f->size, &err);
    if (!f->buf) { printf("    %s\n", err.msg); return -1; }
    if (f->size < 12 || memcmp(f->buf, "DSTLFIX1", 8) != 0) { printf("    %s: bad magic\n", path); return -1; }
    n = rd32(f->buf + 8);
    if (n > 256) return -1;
    for (i = 0; i < n; i++) {
        fx_entry *e = &f->e[i];
        uint32_t nl, k;
        size_t esz;
        if (off + 4 > f->size) return -1;
        nl = rd32(f->buf + off); off += 4;
        if (nl >= sizeof e->name || off + nl + 8 > f->size) return -1;
        memcpy(e->name, f->buf + off, nl); e->name[nl] = 0; off += nl;
        e->dtype = (int)rd32(f->buf + off); e->ndim = (int)rd32(f->buf + off + 4); off += 8;
        if (e->ndim > 4 || e->dtype < 0 || e->dtype > 2 || off + 4 * (size_t)e->ndim > f->size) return -1;
        e->count = 1;
        for (k = 0; k < (uint32_t)e->ndim; k++) { e->dims[k] = (int)rd32(f->buf + off); off += 4; e->count *= (size_t)e->dims[k]; }
        esz = e->dtype == 2 ? 8 : 4;
        if (e->count > (f->size - off) / esz) return -1;
        e->data = f->buf + off;
        off += e->count * esz;
    }
    f->n = (int)n;
    return 0;
}

static const fx_entry *fx_get(const fixture *f, const char *name) {
    int i;
    for (i = 0; i < f->n; i++) if (strcmp(f->e[i].name, name) == 0) return &f->e[i];
    return NULL;
}
static double fx_num(const fx_entry *e, size_t i) {
    if (e->dtype == 0) { float v; memcpy(&v, e->data + 4 * i, 4); return v; }
    if (e->dtype == 1) { int32_t v; memcpy(&v, e->data + 4 * i, 4); return v; }
    { double v; memcpy(&v, e->data + 8 * i, 8); return v; }
}
static void fx_ints(const fx_entry *e, int32_t *out) { size_t i; for (i = 0; i < e->count; i++) out[i] = (int32_t)fx_num(e, i); }
static void fx_floats(const fx_entry *e, float *out) { size_t i; for (i = 0; i < e->count; i++) out[i] = (float)fx_num(e, i); }

typedef struct {
    distill_config c;
    distill_optim_config o;
    int B, T;
    int32_t tokens[256], targets[256], segments[256], positions[256];
    float weights[256];
    int lengths[8];
    distill_batch b;
} parity_case;

static int load_case(const fixture *f, parity_case *pc) {
    const fx_entry *cf = fx_get(f, "config"), *cff = fx_get(f, "config_f"), *op = fx_get(f, "optim");
    int32_t ci[13], len32[8];
    int i;
    if (!cf || cf->count != 13 || !cff || !op) return -1;
    fx_ints(cf, ci);
    memset(pc, 0, sizeof *pc);
    pc->c = distill_config_default();
    pc->c.vocab_size = ci[0]; pc->c.dim = ci[1]; pc->c.n_layers = ci[2]; pc->c.n_heads = ci[3];
    pc->c.n_kv_heads = ci[4]; pc->c.hidden_dim = ci[5]; pc->c.qkv_bias = ci[6]; pc->c.tie_embeddings = ci[7];
    pc->c.rope_theta = (float)fx_num(cff, 0); pc->c.norm_eps = (float)fx_num(cff, 1);
    pc->B = ci[8]; pc->T = ci[9];
    if (pc->B * pc->T > 256 || pc->B > 8) return -1;
    fx_ints(fx_get(f, "tokens"), pc->tokens);
    fx_ints(fx_get(f, "targets"), pc->targets);
    fx_ints(fx_get(f, "segments"), pc->segments);
    fx_ints(fx_get(f, "positions"), pc->positions);
    fx_floats(fx_get(f, "weights"), pc->weights);
    fx_ints(fx_get(f, "lengths"), len32);
    for (i = 0; i < pc->B; i++) pc->lengths[i] = len32[i];
    pc->b.B = pc->B; pc->b.T = pc->T; pc->b.tokens = pc->tokens; pc->b.targets = pc->targets;
    pc->b.lengths = pc->lengths;
    pc->b.weights = ci[12] ? pc->weights : NULL;
    pc->b.segments = ci[11] ? pc->segments : NULL;
    pc->b.positions = ci[11] ? pc->positions : NULL;
    pc->o = distill_optim_default();
    pc->o.lr = (float)fx_num(op, 0); pc->o.beta1 = (float)fx_num(op, 1); pc->o.beta2 = (float)fx_num(op, 2);
    pc->o.eps = (float)fx_num(op, 3); pc->o.weight_decay = (float)fx_num(op, 4); pc->o.grad_clip = (float)fx_num(op, 5);
    pc->o.warmup_steps = (int64_t)fx_num(op, 6); pc->o.total_steps = (int64_t)fx_num(op, 7);
    pc->o.min_lr_ratio = (float)fx_num(op, 8); pc->o.schedule = DISTILL_SCHED_COSINE;
    pc->o.decay_embeddings = ci[10];
    return 0;
}

/* Load every tensor of the model from entries "<prefix><HF name>"; all must be present. */
static int load_weights(distill_model *m, const fixture *f, const char *prefix) {
    int i;
    for (i = 0; i < m->n_tensors; i++) {
        char key[128];
        const fx_entry *e;
        snprintf(key, sizeof key, "%s%s", prefix, m->tensors[i].name);
        e = fx_get(f, key);
        if (!e || e->count != m->tensors[i].numel) { printf("    missing or mis-sized %s\n", key); return -1; }
        fx_floats(e, m->params + m->tensors[i].offset);
    }
    return 0;
}

static void run_parity(const char *path) {
    fixture *f = (fixture *)calloc(1, sizeof(fixture));
    parity_case pc;
    distill_model *m;
    distill_error err;
    distill_stats st;
    const fx_entry *lg, *stats, *losses, *norms, *lrs;
    float *row;
    int i, b, t, step;
    if (fx_load(f, path) != 0 || load_case(f, &pc) != 0) {
        CHECK(0, "%s: cannot load the fixture (regenerate with make fixtures)", path);
        free(f);
        return;
    }
    m = distill_model_create(&pc.c, pc.B, pc.T, 1, &err);
    CHECK(m != NULL, "create: %s", err.msg);
    if (!m || load_weights(m, f, "w.") != 0) { CHECK(0, "weights"); distill_model_free(m); distill_free(f->buf); free(f); return; }

    /* forward + backward */
    distill_model_zero_grad(m);
    CHECK(distill_model_forward(m, &pc.b, NULL, 0.0f, &st, &err) == 0, "forward: %s", err.msg);
    distill_model_backward(m);
    stats = fx_get(f, "stats");
    CHECK_CLOSE(st.loss, fx_num(stats, 0), 2e-6, 0, "loss");
    CHECK_CLOSE(st.accuracy, fx_num(stats, 1), 1e-9, 1e-12, "accuracy");
    CHECK_CLOSE(st.entropy, fx_num(stats, 2), 2e-6, 0, "entropy");
    CHECK_CLOSE(st.weight_sum, fx_num(stats, 3), 1e-9, 0, "weight sum");
    printf("    %s: loss C %.7f torch %.7f\n", path, st.loss, fx_num(stats, 0));
    lg = fx_get(f, "logits");
    double worst_g = 0.0, worst_w = 0.0, worst_l = 0.0;
    row = (float *)malloc(sizeof(float) * (size_t)pc.T * pc.c.vocab_size);
    for (b = 0; b < pc.B; b++) {
        distill_model_logits(m, b, row);
        for (t = 0; t < pc.lengths[b]; t++)
            for (i = 0; i < pc.c.vocab_size; i++) {
                size_t k = ((size_t)b * pc.T + t) * pc.c.vocab_size + i;
                double d = fabs(row[(size_t)t * pc.c.vocab_size + i] - fx_num(lg, k));
                if (d > worst_l) worst_l = d;
                CHECK_CLOSE(row[(size_t)t * pc.c.vocab_size + i], fx_num(lg, k), 1e-5, 1e-5, "logit");
            }
    }
    free(row);
    for (i = 0; i < m->n_tensors; i++) {
        char key[128];
        const fx_entry *g;
        double mx = 0.0, err_max = 0.0;
        size_t j;
        snprintf(key, sizeof key, "g.%s", m->tensors[i].name);
        g = fx_get(f, key);
        if (!g || g->count != m->tensors[i].numel) { CHECK(0, "missing %s", key); continue; }
        for (j = 0; j < g->count; j++) {
            double want = fx_num(g, j), got = m->grads[m->tensors[i].offset + j];
            if (fabs(want) > mx) mx = fabs(want);
            if (fabs(got - want) > err_max) err_max = fabs(got - want);
        }
        if (err_max / (mx + 1e-12) > worst_g) worst_g = err_max / (mx + 1e-12);
        CHECK(err_max <= 5e-5 * mx + 1e-8, "%s: gradient max err %.3g (max |g| %.3g)", m->tensors[i].name, err_max, mx);
    }

    /* 10 AdamW steps from the same weights */
    losses = fx_get(f, "train_losses"); norms = fx_get(f, "train_norms"); lrs = fx_get(f, "train_lrs");
    for (step = 0; step < 10; step++) {
        double gn;
        CHECK(distill_train_step(m, &pc.b, &pc.o, step, &st, &gn, &err) == 0, "train step: %s", err.msg);
        CHECK_CLOSE(st.loss, fx_num(losses, step), 2e-5, 0, "loss before AdamW step");
        CHECK_CLOSE(gn, fx_num(norms, step), 1e-4, 0, "gradient norm");
        CHECK_CLOSE(distill_lr_at(&pc.o, step), fx_num(lrs, step), 1e-6, 0, "learning rate");
    }
    CHECK(distill_model_forward(m, &pc.b, NULL, 0.0f, &st, &err) == 0, "forward: %s", err.msg);
    CHECK_CLOSE(st.loss, fx_num(losses, 10), 2e-5, 0, "loss after 10 AdamW steps");
    printf("    after 10 steps: loss C %.7f torch %.7f\n", st.loss, fx_num(losses, 10));
    for (i = 0; i < m->n_tensors; i++) {
        char key[128];
        const fx_entry *w;
        double err_max = 0.0;
        size_t j;
        snprintf(key, sizeof key, "final.%s", m->tensors[i].name);
        w = fx_get(f, key);
        if (!w || w->count != m->tensors[i].numel) { CHECK(0, "missing %s", key); continue; }
        for (j = 0; j < w->count; j++) {
            double d = fabs(m->params[m->tensors[i].offset + j] - fx_num(w, j));
            if (d > err_max) err_max = d;
        }
        if (err_max > worst_w) worst_w = err_max;
        CHECK(err_max <= 5e-5, "%s: final weight max err %.3g", m->tensors[i].name, err_max);
    }
    printf("    worst: logit abs err %.2g, gradient rel err %.2g, final weight abs err %.2g\n", worst_l, worst_g, worst_w);
    distill_model_free(m);
    distill_free(f->buf);
    free(f);
}

static void test_parity_llama(void) { run_parity("tests/fixtures/model_llama.bin"); }
static void test_parity_qwen(void) { run_parity("tests/fixtures/model_qwen.bin"); }

int main(void) {
    RUN(test_parity_llama);
    RUN(test_parity_qwen);
    return harness_done("test_model_torch");
}
