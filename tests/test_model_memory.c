/* Activation memory: the formula in the header (distill_model_activation_bytes) against what
   the implementation really allocates, counted through a DISTILL_MALLOC that records every
   byte; and a check that forward/backward/train steps allocate nothing beyond the AdamW moments
   on the first optimizer step. */
#define _POSIX_C_SOURCE 200809L /* before any system header, as distill.h requires */
#include <stdlib.h>
#include <string.h>

static size_t mem_live, mem_total, mem_calls;
static void *mem_malloc(size_t n) {
    size_t *p = (size_t *)malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    mem_live += n; mem_total += n; mem_calls++;
    return (char *)p + 16;
}
static void mem_free(void *q) {
    size_t *p;
    if (!q) return;
    p = (size_t *)((char *)q - 16);
    mem_live -= p[0];
    free(p);
}
static void *mem_realloc(void *q, size_t n) {
    void *r = mem_malloc(n);
    if (r && q) {
        size_t old = ((size_t *)((char *)q - 16))[0];
        memcpy(r, q, old < n ? old : n);
        mem_free(q);
    }
    return r;
}
#define DISTILL_MALLOC(sz) mem_malloc(sz)
#define DISTILL_REALLOC(p, sz) mem_realloc(p, sz)
#define DISTILL_FREE(p) mem_free(p)
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <sys/stat.h>

static void check_config(const char *what, distill_config c, int B, int T) {
    distill_error e;
    distill_model *m;
    size_t before = mem_live, created, formula = distill_model_activation_bytes(&c, B, T), params, acts, calls;
    distill_optim_config o = distill_optim_default();
    distill_batch b;
    distill_stats st;
    int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * T), *tgt = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * T);
    int i;
    double gn;
    m = distill_model_create(&c, B, T, 1, &e);
    CHECK(m != NULL, "%s: create: %s", what, e.msg);
    if (!m) { free(tok); free(tgt); return; }
    created = mem_live - before;
    params = 2 * (m->num_floats * sizeof(float) + 64 + sizeof(void *));
    acts = created - params;
    /* the rest: the activation block (+ its 64-byte alignment slack and 64-byte rounding of each
       of ~30 sub-buffers) plus the size table, layer views and norm partials (small) */
    printf("    %s: formula %.3f MB, allocated for activations %.3f MB (params+grads %.3f MB)\n", what,
           formula / 1e6, acts / 1e6, params / 1e6);
    CHECK(acts >= formula, "%s: allocation %zu below the formula %zu", what, acts, formula);
    CHECK(acts - formula <= 32 * 64 + 64 + (size_t)m->n_tensors * sizeof(distill_tensor_info) +
                            (size_t)c.n_layers * sizeof(distill_layer_params) + 4096 + sizeof(double) * (m->num_floats / 65536 + 1),
          "%s: allocation %zu exceeds the formula %zu by %zu bytes", what, acts, formula, acts - formula);
    /* running steps allocates only the AdamW moments, once */
    for (i = 0; i < B * T; i++) { tok[i] = i % c.vocab_size; tgt[i] = (i * 7) % c.vocab_size; }
    memset(&b, 0, sizeof b);
    b.B = B; b.T = T; b.tokens = tok; b.targets = tgt;
    /* the first pass may size the kernels' per-thread matmul scratch (distill.h's kernels section, persistent);
       the model itself allocates nothing after create */
    CHECK(distill_model_forward(m, &b, NULL, 0, &st, &e) == 0, "forward: %s", e.msg);
    distill_model_backward(m);
    calls = mem_calls; before = mem_live;
    CHECK(distill_model_forward(m, &b, NULL, 0, &st, &e) == 0, "forward: %s", e.msg);
    distill_model_backward(m);
    CHECK(mem_calls == calls, "%s: forward/backward allocated %zu times", what, mem_calls - calls);
    CHECK(distill_train_step(m, &b, &o, 0, &st, &gn, &e) == 0, "train step: %s", e.msg);
    CHECK(mem_live - before == 2 * (m->num_floats * sizeof(float) + 64 + sizeof(void *)),
          "%s: first step allocates exactly m and v (%zu bytes)", what, mem_live - before);
    calls = mem_calls;
    CHECK(distill_train_step(m, &b, &o, 1, &st, &gn, &e) == 0, "train step: %s", e.msg);
    CHECK(mem_calls == calls, "%s: later steps allocate nothing", what);
    distill_model_free(m);
    free(tok); free(tgt);
}

static distill_config cfg(int V, int C, int L, int NH, int NKV, int F, int bias, int tie) {
    distill_config c = distill_config_default();
    c.vocab_size = V; c.dim = C; c.n_layers = L; c.n_heads = NH; c.n_kv_heads = NKV; c.hidden_dim = F;
    c.qkv_bias = bias; c.tie_embeddings = tie;
    return c;
}

static void test_formula_matches_allocation(void) {
    check_config("tiny", cfg(50, 16, 2, 4, 2, 24, 1, 0), 2, 8);
    check_config("small gqa", cfg(300, 64, 3, 8, 2, 160, 0, 1), 3, 100);
    check_config("wide ffn, chunked head", cfg(1000, 32, 1, 2, 1, 200, 1, 1), 2, 300);
    {   /* Qwen3: head size decoupled (NH*HS = 96 > C), q/k norm buffers */
        distill_config q3 = cfg(300, 64, 2, 8, 2, 48, 0, 1);
        q3.head_dim = 12; q3.qk_norm = 1;
        check_config("qwen3 head_dim 12, qk norm", q3, 2, 50);
    }
}

/* The formula has no T^2 and no B*T*V term: doubling T at most doubles it. And it does grow with
   T, by the same bytes per position from 1024 to 2048 as from 2048 to 8192 (affine in T): a
   formula that stopped counting the per-position buffers would pass the upper bounds alone. */
static void test_formula_scaling(void) {
    distill_config c = cfg(32000, 512, 8, 8, 4, 1408, 0, 1);
    double a = (double)distill_model_activation_bytes(&c, 4, 1024), b2 = (double)distill_model_activation_bytes(&c, 4, 2048);
    double c8 = (double)distill_model_activation_bytes(&c, 4, 8192);
    printf("    dim 512, 8 layers, V 32000, B 4: T 1024 %.1f MB, T 2048 %.1f MB, T 8192 %.1f MB\n", a / 1e6, b2 / 1e6, c8 / 1e6);
    CHECK(b2 <= 2.0 * a, "linear in T");
    CHECK(c8 <= 8.0 * a, "linear in T up to 8192");
    CHECK(b2 >= 1.5 * a, "doubling T from 1024 adds at least half: %.0f -> %.0f bytes", a, b2);
    CHECK(fabs((c8 - b2) / 6144.0 - (b2 - a) / 1024.0) <= 1e-3 * (b2 - a) / 1024.0,
          "bytes per position: %.1f (1024..2048), %.1f (2048..8192)", (b2 - a) / 1024.0, (c8 - b2) / 6144.0);
    /* llm.c-style attention would add L*B*NH*T*T*4 bytes twice: 2 * 8*4*8*8192^2*4 = 69 GB */
}

/* A loaded model (generate, eval, export, a KD teacher) does not allocate its gradient buffer:
   it holds exactly one parameter-sized buffer less than a created one of the same capacity. A
   forward without targets keeps it that way; the first forward with targets allocates it, and the
   gradient is the one a created model with the same weights computes. */
static void test_loaded_model_has_no_gradient_buffer(void) {
    static const char *const files[] = {"build/test_model_memory/m.safetensors", "build/test_model_memory/m.dstl",
                                        "build/test_model_memory/m.bin"};
    distill_config c = cfg(40, 16, 2, 4, 2, 24, 0, 1);
    distill_error e;
    distill_model *ref, *m;
    size_t before, created, one, f;
    int32_t tok[2 * 8], tgt[2 * 8];
    distill_batch b;
    distill_stats st;
    int i;
    mkdir("build", 0755);
    mkdir("build/test_model_memory", 0755);
    before = mem_live;
    ref = distill_model_create(&c, 2, 8, 5, &e);
    REQUIRE(ref != NULL, "%s", e.msg);
    created = mem_live - before;
    one = ref->num_floats * sizeof(float) + 64 + sizeof(void *);   /* one aligned parameter-sized buffer */
    REQUIRE(distill_safetensors_save(ref, files[0], &e) == 0 && distill_checkpoint_write(files[1], ref, 0, NULL, NULL, 0, &e) == 0 &&
            distill_llama2c_save(ref, files[2], &e) == 0, "%s", e.msg);
    for (i = 0; i < 16; i++) { tok[i] = (i * 3) % 40; tgt[i] = (i * 7 + 1) % 40; }
    memset(&b, 0, sizeof b);
    b.B = 2; b.T = 8; b.tokens = tok; b.targets = tgt;
    CHECK(distill_model_forward_backward(ref, &b, NULL, 0, &st, &e) == 0, "%s", e.msg);
    for (f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t loaded, after;
        before = mem_live;
        m = distill_model_load(files[f], 2, 8, NULL, &e);
        CHECK(m != NULL, "%s: %s", files[f], e.msg);
        if (!m) continue;
        loaded = mem_live - before;
        CHECK(m->grads == NULL && created - loaded == one, "%s: a created model holds %zu bytes, the loaded one %zu (want %zu less)",
              files[f], created, loaded, one);
        b.targets = NULL;
        CHECK(distill_model_forward(m, &b, NULL, 0, NULL, &e) == 0 && m->grads == NULL, "%s: inference keeps no gradient", files[f]);
        b.targets = tgt;
        after = mem_live;
        CHECK(distill_model_forward_backward(m, &b, NULL, 0, &st, &e) == 0, "%s", e.msg);
        CHECK(m->grads != NULL && mem_live - after == one, "%s: the first training pass allocates the gradient (%zu bytes)",
              files[f], mem_live - after);
        CHECK(m->grads && !memcmp(m->grads, ref->grads, sizeof(float) * m->num_floats), "%s: gradient differs from the created model's",
              files[f]);
        distill_model_free(m);
    }
    distill_model_free(ref);
}

int main(void) {
    RUN(test_formula_matches_allocation);
    RUN(test_formula_scaling);
    RUN(test_loaded_model_has_no_gradient_buffer);
    return harness_done("test_model_memory");
}
