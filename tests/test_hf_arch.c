/* The Hugging Face architecture options against PyTorch: tests/gen_hf_arch_fixtures.py wrote a
   Qwen3 checkpoint (decoupled head_dim, q/k norm; sharded), a Llama with llama3 RoPE scaling and
   head_dim, and a Qwen2 with linear RoPE scaling, each with float64 logits, the mean
   cross-entropy and every gradient from a PyTorch forward written from transformers' modeling
   code. Loaded through config.json and the (sharded) safetensors loader, our float32 model must
   reproduce them; exporting and reloading must give the same config and logits. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <stdlib.h>

typedef struct {
    unsigned char *buf;
    size_t size;
    int B, T, V, n;
    const int32_t *tokens, *pos;
    const unsigned char *logits, *grads;
    double loss;
} reference;

static int32_t rd_i32(const unsigned char *p) { int32_t v; memcpy(&v, p, 4); return v; }
static double rd_f64(const unsigned char *p) { double v; memcpy(&v, p, 8); return v; }

static int ref_load(reference *r, const char *dir) {
    char path[256];
    distill_error err;
    size_t off;
    snprintf(path, sizeof path, "%s/reference.bin", dir);
    memset(r, 0, sizeof *r);
    r->buf = (unsigned char *)distill_read_file(path, &r->size, &err);
    if (!r->buf || r->size < 12) return -1;
    r->B = rd_i32(r->buf); r->T = rd_i32(r->buf + 4); r->V = rd_i32(r->buf + 8);
    if (r->B < 1 || r->T < 2 || r->V < 1 || r->B * r->T > 4096 || r->V > 4096) return -1;
    off = 12;
    r->tokens = (const int32_t *)(r->buf + off); off += 4 * (size_t)r->B * r->T;
    r->pos = (const int32_t *)(r->buf + off); off += 4 * (size_t)r->B * r->T;
    r->logits = r->buf + off; off += 8 * (size_t)r->B * r->T * r->V;
    if (off + 12 > r->size) return -1;
    r->loss = rd_f64(r->buf + off); off += 8;
    r->n = rd_i32(r->buf + off); off += 4;
    r->grads = r->buf + off;
    return 0;
}

/* logits of the batch from our model (B,T,V) */
static int our_logits(distill_model *m, const reference *r, float *out, distill_stats *st, int32_t *targets) {
    distill_batch b;
    distill_error err;
    int i;
    memset(&b, 0, sizeof b);
    b.B = r->B; b.T = r->T; b.tokens = r->tokens; b.positions = r->pos; b.targets = targets;
    distill_model_zero_grad(m);
    if (distill_model_forward_backward(m, &b, NULL, 0.0f, st, &err) != 0) { printf("    %s\n", err.msg); return -1; }
    for (i = 0; i < r->B; i++) distill_model_logits(m, i, out + (size_t)i * r->T * r->V);
    return 0;
}

static void check_fixture(const char *dir, const char *what, int want_qk_norm, int want_head_dim, int want_rope) {
    reference r;
    distill_error err;
    distill_model *m;
    float *lg;
    int32_t *tg;
    distill_stats st;
    double worst = 0, scale = 0, gworst = 0;
    const char *gname = "";
    size_t i, off;
    int k, b, t;
    if (ref_load(&r, dir) != 0) { CHECK(0, "%s: no reference.bin (run tests/gen_hf_arch_fixtures.py)", dir); distill_free(r.buf); return; }
    m = distill_model_load(dir, r.B, r.T, NULL, &err);
    CHECK(m != NULL, "%s: %s", dir, err.msg);
    if (!m) { distill_free(r.buf); return; }
    CHECK(m->cfg.qk_norm == want_qk_norm && distill_config_head_dim(&m->cfg) == want_head_dim && m->cfg.rope_scaling == want_rope,
          "%s: config parsed (qk_norm %d, head_dim %d, rope_scaling %d)", what, m->cfg.qk_norm, distill_config_head_dim(&m->cfg),
          m->cfg.rope_scaling);
    lg = (float *)malloc(sizeof(float) * (size_t)r.B * r.T * r.V);
    tg = (int32_t *)malloc(sizeof(int32_t) * (size_t)r.B * r.T);
    for (b = 0; b < r.B; b++)
        for (t = 0; t < r.T; t++) tg[b * r.T + t] = t + 1 < r.T ? r.tokens[b * r.T + t + 1] : -1;
    if (our_logits(m, &r, lg, &st, tg) == 0) {
        for (i = 0; i < (size_t)r.B * r.T * r.V; i++) {
            double want = rd_f64(r.logits + 8 * i), d = fabs((double)lg[i] - want);
            if (d > worst) worst = d;
            if (fabs(want) > scale) scale = fabs(want);
        }
        CHECK(worst <= 2e-5 * scale + 1e-5, "%s: logits differ by %.3g (scale %.3g)", what, worst, scale);
        CHECK_CLOSE(st.loss, r.loss, 1e-5, 1e-6, "loss");
        /* gradients, tensor by tensor, relative to the largest entry of each */
        for (k = 0, off = 0; k < r.n; k++) {
            int nl = rd_i32(r.grads + off), numel, idx;
            char name[128];
            double gmax = 0, gd = 0;
            if (nl <= 0 || nl >= (int)sizeof name) { CHECK(0, "bad reference"); break; }
            memcpy(name, r.grads + off + 4, (size_t)nl);
            name[nl] = 0;
            numel = rd_i32(r.grads + off + 4 + nl);
            idx = distill_model_find_tensor(m, name);
            CHECK(idx >= 0 && m->tensors[idx].numel == (size_t)numel, "%s: tensor %s", what, name);
            if (idx >= 0 && m->tensors[idx].numel == (size_t)numel) {
                const float *g = m->grads + m->tensors[idx].offset;
                for (i = 0; i < (size_t)numel; i++) {
                    double want = rd_f64(r.grads + off + 8 + nl + 8 * i);
                    if (fabs(want) > gmax) gmax = fabs(want);
                    if (fabs(g[i] - want) > gd) gd = fabs(g[i] - want);
                }
                if (gd / (gmax + 1e-30) > gworst) { gworst = gd / (gmax + 1e-30); gname = m->tensors[idx].name; }
                CHECK(gd <= 1e-4 * gmax + 1e-7, "%s: gradient of %s differs by %.3g (max %.3g)", what, name, gd, gmax);
            }
            off += 8 + (size_t)nl + 8 * (size_t)numel;
        }
        printf("    %s: max |logits - torch| %.2g (of %.2g), loss %.6f vs %.6f, worst gradient %.2g (%s)\n", what, worst,
               scale, st.loss, r.loss, gworst, gname);
    }
    {   /* export as safetensors + config.json, load again: the same architecture and logits */
        char out[256];
        distill_model *e;
        float *lg2 = (float *)malloc(sizeof(float) * (size_t)r.B * r.T * r.V);
        distill_stats st2;
        snprintf(out, sizeof out, "build/test_hf_arch_%s", strrchr(dir, '/') + 1);
        CHECK(distill_safetensors_save_sharded(m, out, "F32", 4096, &err) == 0, "%s: export: %s", what, err.msg);
        e = distill_model_load(out, r.B, r.T, NULL, &err);
        CHECK(e != NULL, "%s: reload: %s", what, err.msg);
        if (e) {
            CHECK(!memcmp(&e->cfg.head_dim, &m->cfg.head_dim, sizeof(int) * 3) && e->cfg.rope_factor == m->cfg.rope_factor &&
                  e->cfg.rope_original_max_pos == m->cfg.rope_original_max_pos, "%s: config round trip", what);
            if (our_logits(e, &r, lg2, &st2, tg) == 0)
                CHECK(!memcmp(lg, lg2, sizeof(float) * (size_t)r.B * r.T * r.V), "%s: exported logits identical", what);
        }
        distill_model_free(e);
        free(lg2);
    }
    free(lg);
    free(tg);
    distill_model_free(m);
    distill_free(r.buf);
}

static void test_qwen3_sharded(void) { check_fixture("tests/fixtures/hf_qwen3", "Qwen3 (sharded)", 1, 16, DISTILL_ROPE_DEFAULT); }
static void test_llama3_rope(void) { check_fixture("tests/fixtures/hf_llama3_rope", "Llama, llama3 RoPE, head_dim 16", 0, 16, DISTILL_ROPE_LLAMA3); }
static void test_linear_rope(void) { check_fixture("tests/fixtures/hf_linear_rope", "Qwen2, linear RoPE", 0, 8, DISTILL_ROPE_LINEAR); }

int main(void) {
    RUN(test_qwen3_sharded);
    RUN(test_llama3_rope);
    RUN(test_linear_rope);
    return harness_done("test_hf_arch");
}
