/* Model tests: config validation, the size table, finite-difference gradient checks of every
   op and of the whole model against an independent double-precision reference
   (tests/test_model_ref.h), 1-vs-N-thread determinism, AdamW and the schedules against
   hand-written references, and an overfit run.

   Tolerances. The reference gradients are central differences of a double-precision forward
   with h = 1e-5: truncation error ~h^2 * |f'''| ~ 1e-10 and rounding ~1e-16/h ~ 1e-11, so the
   reference is exact to ~1e-9. The implementation runs in float (unit roundoff 6e-8); through
   a few dozen accumulated operations its gradients carry relative errors of ~1e-6..1e-5 of the
   largest gradient in a tensor (the worst we observe is 5e-6). We therefore require, per
   tensor,
       max_i |g_i - g_fd_i| <= 5e-5 * max_i |g_fd_i| + 5e-9,
   ten times looser than the float noise we observe and far tighter than any formula error
   (a wrong sign or a missing factor gives errors of order max|g|; a 1% error in one term
   is still 100x over the bound). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "test_model_ref.h"

#define FD_H 1e-5
#define GRAD_RTOL 5e-5

static distill_rng trng;
static double rnd(void) { return distill_rng_normal(&trng); }

/* ---- per-op checks: analytic float backward vs central differences of a double forward --- */

/* Compare the float gradient g (n) to the double reference r (n). */
static double rel_err(const float *g, const double *r, size_t n) {
    double mx = 0.0, err = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (fabs(r[i]) > mx) mx = fabs(r[i]);
        if (fabs(g[i] - r[i]) > err) err = fabs(g[i] - r[i]);
    }
    return err / (mx + 1e-4);
}

/* The scalar probed everywhere: L = sum_i R_i * out_i with fixed random R, so dout = R. */
static double dotR(const double *o, const double *R, size_t n) {
    double s = 0.0; size_t i;
    for (i = 0; i < n; i++) s += o[i] * R[i];
    return s;
}

static void test_rmsnorm_grad(void) {
    enum { N = 5, C = 12 };
    float x[N * C], w[C], out[N * C], rstd[N], R[N * C], dx[N * C], dw[C];
    double xd[N * C], wd[C], od[N * C], Rd[N * C], gx[N * C], gw[C];
    int i;
    for (i = 0; i < N * C; i++) { x[i] = (float)rnd(); xd[i] = x[i]; R[i] = (float)rnd(); Rd[i] = R[i]; dx[i] = 0.0f; }
    for (i = 0; i < C; i++) { w[i] = (float)(1.0 + 0.3 * rnd()); wd[i] = w[i]; dw[i] = 0.0f; }
    distill_rmsnorm_forward(out, rstd, x, w, N, C, 1e-5f);
    ref_rmsnorm(od, xd, wd, N, C, 1e-5f);
    for (i = 0; i < N * C; i++) CHECK_CLOSE(out[i], od[i], 1e-5, 1e-6, "rmsnorm forward");
    distill_rmsnorm_backward(dx, dw, R, x, w, rstd, N, C);
    for (i = 0; i < N * C; i++) {
        double s = xd[i], lp, lm;
        xd[i] = s + FD_H; ref_rmsnorm(od, xd, wd, N, C, 1e-5f); lp = dotR(od, Rd, N * C);
        xd[i] = s - FD_H; ref_rmsnorm(od, xd, wd, N, C, 1e-5f); lm = dotR(od, Rd, N * C);
        xd[i] = s; gx[i] = (lp - lm) / (2 * FD_H);
    }
    for (i = 0; i < C; i++) {
        double s = wd[i], lp, lm;
        wd[i] = s + FD_H; ref_rmsnorm(od, xd, wd, N, C, 1e-5f); lp = dotR(od, Rd, N * C);
        wd[i] = s - FD_H; ref_rmsnorm(od, xd, wd, N, C, 1e-5f); lm = dotR(od, Rd, N * C);
        wd[i] = s; gw[i] = (lp - lm) / (2 * FD_H);
    }
    CHECK(rel_err(dx, gx, N * C) < GRAD_RTOL, "rmsnorm dx rel err %.3g", rel_err(dx, gx, N * C));
    CHECK(rel_err(dw, gw, C) < GRAD_RTOL, "rmsnorm dw rel err %.3g", rel_err(dw, gw, C));
    /* backward accumulates: a second call doubles the gradients */
    distill_rmsnorm_backward(dx, dw, R, x, w, rstd, N, C);
    for (i = 0; i < C; i++) gw[i] *= 2.0;
    CHECK(rel_err(dw, gw, C) < GRAD_RTOL, "rmsnorm dw accumulates");
}

static void test_rope_grad(void) {
    enum { N = 6, NHD = 3, HS = 8 };
    float x[N * NHD * HS], R[N * NHD * HS];
    double xd[N * NHD * HS], od[N * NHD * HS], Rd[N * NHD * HS], gx[N * NHD * HS];
    int32_t pos[N] = {0, 1, 5, 17, 1000, 123456};
    int posi[N] = {0, 1, 5, 17, 1000, 123456}, i, n = N * NHD * HS;
    for (i = 0; i < n; i++) { x[i] = (float)rnd(); xd[i] = x[i]; R[i] = (float)rnd(); Rd[i] = R[i]; }
    distill_rope_forward(x, pos, N, NHD, HS, 10000.0f);
    memcpy(od, xd, sizeof od);
    ref_rope(od, posi, N, NHD, HS, 10000.0);
    for (i = 0; i < n; i++) CHECK_CLOSE(x[i], od[i], 1e-5, 1e-5, "rope forward");
    distill_rope_backward(R, pos, N, NHD, HS, 10000.0f);
    for (i = 0; i < n; i++) {
        double s = xd[i], lp, lm;
        xd[i] = s + FD_H; memcpy(od, xd, sizeof od); ref_rope(od, posi, N, NHD, HS, 10000.0); lp = dotR(od, Rd, n);
        xd[i] = s - FD_H; memcpy(od, xd, sizeof od); ref_rope(od, posi, N, NHD, HS, 10000.0); lm = dotR(od, Rd, n);
        xd[i] = s; gx[i] = (lp - lm) / (2 * FD_H);
    }
    CHECK(rel_err(R, gx, n) < GRAD_RTOL, "rope dx rel err %.3g", rel_err(R, gx, n));
    /* NULL positions mean 0..N-1 */
    {
        float a[4 * 2 * 4], bb[4 * 2 * 4];
        int32_t p4[4] = {0, 1, 2, 3};
        for (i = 0; i < 32; i++) a[i] = bb[i] = (float)rnd();
        distill_rope_forward(a, NULL, 4, 2, 4, 500.0f);
        distill_rope_forward(bb, p4, 4, 2, 4, 500.0f);
        CHECK(memcmp(a, bb, sizeof a) == 0, "rope with NULL positions == 0..N-1");
    }
    /* a head size whose hs/2 pairs span several blocks of the implementation's sin/cos table
       (100 = 64 + 36), forward against the double reference */
    {
        enum { N2 = 3, NH2 = 2, HS2 = 200 };
        static float xb[N2 * NH2 * HS2];
        static double xr[N2 * NH2 * HS2];
        int32_t p3[N2] = {3, 77, 40000};
        int pi3[N2] = {3, 77, 40000};
        for (i = 0; i < N2 * NH2 * HS2; i++) { xb[i] = (float)rnd(); xr[i] = xb[i]; }
        distill_rope_forward(xb, p3, N2, NH2, HS2, 10000.0f);
        ref_rope(xr, pi3, N2, NH2, HS2, 10000.0);
        for (i = 0; i < N2 * NH2 * HS2; i++) CHECK_CLOSE(xb[i], xr[i], 1e-5, 1e-5, "rope forward, hs 200");
    }
}

static void test_swiglu_grad(void) {
    enum { N = 40 };
    float g[N], u[N], out[N], R[N], dg[N], du[N];
    int i;
    for (i = 0; i < N; i++) { g[i] = (float)(2.0 * rnd()); u[i] = (float)rnd(); R[i] = (float)rnd(); }
    distill_swiglu_forward(out, g, u, N);
    distill_swiglu_backward(dg, du, R, g, u, N);
    for (i = 0; i < N; i++) {
        double gd = g[i], ud = u[i], f = gd / (1 + exp(-gd)) * ud;
        double fg = ((gd + FD_H) / (1 + exp(-(gd + FD_H))) - (gd - FD_H) / (1 + exp(-(gd - FD_H)))) * ud / (2 * FD_H);
        double fu = gd / (1 + exp(-gd));
        CHECK_CLOSE(out[i], f, 1e-5, 1e-6, "swiglu forward");
        CHECK_CLOSE(dg[i], R[i] * fg, 1e-4, 1e-6, "swiglu dgate");
        CHECK_CLOSE(du[i], R[i] * fu, 1e-4, 1e-6, "swiglu dup");
    }
    /* dup may alias dout */
    memcpy(du, R, sizeof R);
    distill_swiglu_backward(dg, du, du, g, u, N);
    for (i = 0; i < N; i++) CHECK_CLOSE(du[i], R[i] * (g[i] / (1 + exp(-(double)g[i]))), 1e-4, 1e-6, "swiglu aliased dup");
}

static void test_embedding(void) {
    enum { V = 7, C = 5, N = 6 };
    float table[V * C], out[N * C], dt[V * C], dout[N * C];
    int32_t tok[N] = {3, 0, 3, -1, 6, 3};
    int i, j;
    for (i = 0; i < V * C; i++) { table[i] = (float)rnd(); dt[i] = 0.0f; }
    for (i = 0; i < N * C; i++) dout[i] = (float)rnd();
    distill_embedding_forward(out, tok, table, N, C);
    for (i = 0; i < N; i++)
        for (j = 0; j < C; j++) CHECK(out[i * C + j] == (tok[i] < 0 ? 0.0f : table[tok[i] * C + j]), "embedding row %d", i);
    distill_embedding_backward(dt, dout, tok, N, C);
    for (j = 0; j < C; j++) {
        CHECK_CLOSE(dt[3 * C + j], (double)dout[0 * C + j] + dout[2 * C + j] + dout[5 * C + j], 1e-6, 1e-7, "embedding grad, repeated token");
        CHECK(dt[1 * C + j] == 0.0f, "untouched row stays zero");
        CHECK(dt[6 * C + j] == dout[4 * C + j], "embedding grad");
    }
}

/* Attention on B rows with lengths and packed segments, GQA. */
static void ref_att_batch(double *o, const double *q, const double *k, const double *v, const int *lens,
                          const int *seg, int B, int T, int NH, int NKV, int HS) {
    int b;
    for (b = 0; b < B; b++)
        ref_attention(o + (size_t)b * T * NH * HS, q + (size_t)b * T * NH * HS, k + (size_t)b * T * NKV * HS,
                      v + (size_t)b * T * NKV * HS, seg + b * T, lens[b], T, NH, NKV, HS);
}

static void test_attention_grad(void) {
    enum { B = 2, T = 70, NH = 4, NKV = 2, HS = 4 };   /* T > the 64-key block: two blocks */
    enum { NQ = B * T * NH * HS, NK = B * T * NKV * HS };
    static float q[NQ], k[NK], v[NK], out[NQ], lse[B * NH * T], R[NQ], dq[NQ], dk[NK], dv[NK];
    static double qd[NQ], kd[NK], vd[NK], od[NQ], Rd[NQ], gq[NQ], gk[NK], gv[NK];
    int lens[B] = {T, 50}, seg[B * T], kstart[B * T], i, t;
    for (t = 0; t < T; t++) {
        seg[t] = 0; seg[T + t] = t < 20 ? 7 : (t < 33 ? 8 : 9);
        kstart[t] = 0; kstart[T + t] = t < 20 ? 0 : (t < 33 ? 20 : 33);
    }
    for (i = 0; i < NQ; i++) { q[i] = (float)(1.5 * rnd()); qd[i] = q[i]; R[i] = (float)rnd(); Rd[i] = R[i]; }
    for (i = 0; i < NK; i++) { k[i] = (float)(1.5 * rnd()); kd[i] = k[i]; v[i] = (float)rnd(); vd[i] = v[i]; }
    /* the reference ignores rows past the length: zero R there so the probe matches */
    for (t = lens[1]; t < T; t++) for (i = 0; i < NH * HS; i++) { R[(T + t) * NH * HS + i] = 0.0f; Rd[(T + t) * NH * HS + i] = 0.0; }
    distill_attention_forward(out, lse, q, k, v, lens, kstart, B, T, NH, NKV, HS);
    ref_att_batch(od, qd, kd, vd, lens, seg, B, T, NH, NKV, HS);
    for (i = 0; i < NQ; i++) CHECK_CLOSE(out[i], od[i], 1e-5, 1e-6, "attention forward");
    distill_attention_backward(dq, dk, dv, R, q, k, v, out, lse, lens, kstart, B, T, NH, NKV, HS);
    /* central differences on every 3rd entry (coprime with HS, so every row, head and dim is
       sampled) keep the test fast under sanitizers; the others are compared as zero-vs-zero */
#define ATT_FD(arr, g, n)                                                                   \
    for (i = 0; i < (n); i++) g[i] = 0.0;                                                   \
    for (i = 0; i < (n); i += 3) {                                                          \
        double s = arr[i], lp, lm;                                                          \
        arr[i] = s + FD_H; ref_att_batch(od, qd, kd, vd, lens, seg, B, T, NH, NKV, HS); lp = dotR(od, Rd, NQ); \
        arr[i] = s - FD_H; ref_att_batch(od, qd, kd, vd, lens, seg, B, T, NH, NKV, HS); lm = dotR(od, Rd, NQ); \
        arr[i] = s; g[i] = (lp - lm) / (2 * FD_H);                                          \
    }
    ATT_FD(qd, gq, NQ)
    ATT_FD(kd, gk, NK)
    ATT_FD(vd, gv, NK)
#undef ATT_FD
    for (i = 0; i < NQ; i++) if (i % 3) dq[i] = 0.0f;
    for (i = 0; i < NK; i++) if (i % 3) { dk[i] = 0.0f; dv[i] = 0.0f; }
    CHECK(rel_err(dq, gq, NQ) < GRAD_RTOL, "attention dq rel err %.3g", rel_err(dq, gq, NQ));
    CHECK(rel_err(dk, gk, NK) < GRAD_RTOL, "attention dk rel err %.3g", rel_err(dk, gk, NK));
    CHECK(rel_err(dv, gv, NK) < GRAD_RTOL, "attention dv rel err %.3g", rel_err(dv, gv, NK));
}

static void test_ce_grad(void) {
    enum { N = 5, V = 9 };
    float z[N * V], zc[N * V];
    int32_t tgt[N] = {0, 4, 8, 2, 2};
    float w[N] = {1.0f, 0.5f, 2.0f, 0.25f, 1.0f};
    int64_t pos[N] = {0, 1, 2, 3, 4};
    distill_stats st;
    double L0 = 0.0, wsum = 0.0, acc = 0.0, ent = 0.0;
    float gs = 0.3f;
    int i, j;
    for (i = 0; i < N * V; i++) z[i] = (float)(2.0 * rnd());
    z[3 * V + 2] = 50.0f; /* a confident correct row */
    memcpy(zc, z, sizeof z);
    memset(&st, 0, sizeof st);
    distill_ce_head_loss(NULL, pos, N, zc, V, tgt, w, gs, 1, &st, 0);
    for (i = 0; i < N; i++) {
        double mx = -1e300, s = 0.0, sz = 0.0, lse;
        int am = 0;
        for (j = 0; j < V; j++) if (z[i * V + j] > mx) { mx = z[i * V + j]; am = j; }
        for (j = 0; j < V; j++) { double e = exp(z[i * V + j] - mx); s += e; sz += e * z[i * V + j]; }
        lse = mx + log(s);
        L0 += w[i] * (lse - z[i * V + tgt[i]]); wsum += w[i]; acc += am == tgt[i] ? w[i] : 0; ent += w[i] * (lse - sz / s);
        for (j = 0; j < V; j++) {
            double p = exp(z[i * V + j] - lse), want = gs * w[i] * (p - (j == tgt[i]));
            CHECK_CLOSE(zc[i * V + j], want, 1e-5, 1e-7, "CE dlogits");
        }
    }
    CHECK_CLOSE(st.loss, L0, 1e-6, 1e-6, "CE loss sum");
    CHECK_CLOSE(st.weight_sum, wsum, 1e-7, 0, "CE weight sum");
    CHECK_CLOSE(st.accuracy, acc, 1e-7, 0, "CE accuracy sum");
    CHECK_CLOSE(st.entropy, ent, 1e-5, 1e-6, "CE entropy sum");
}

/* ---- config and size table ------------------------------------------------------------ */

static void test_config_validation(void) {
    distill_config c = distill_config_default(), b;
    distill_error e;
    CHECK(distill_config_validate(&c, &e) == 0, "default config valid: %s", e.msg);
#define BAD(field, val, needle)                                                              \
    do {                                                                                     \
        b = c; b.field = val; e.msg[0] = 0;                                                  \
        CHECK(distill_config_validate(&b, &e) == -1 && strstr(e.msg, needle) != NULL,        \
              "%s = %s: got '%s'", #field, #val, e.msg);                                     \
    } while (0)
    BAD(vocab_size, 0, "vocab_size");
    BAD(vocab_size, -5, "vocab_size");
    BAD(dim, 0, "dim");
    BAD(dim, -512, "dim");
    BAD(n_layers, 0, "n_layers");
    BAD(n_heads, 0, "n_heads");
    b = c; b.n_heads = 6; b.n_kv_heads = 4;
    CHECK(distill_config_validate(&b, &e) == -1 && strstr(e.msg, "n_heads (6) must be divisible by n_kv_heads (4)"), "6 heads, 4 kv: %s", e.msg);
    BAD(n_kv_heads, 3, "n_heads (8) must be divisible by n_kv_heads (3)");
    BAD(n_kv_heads, 0, "n_kv_heads");
    BAD(n_kv_heads, 16, "n_kv_heads");
    BAD(hidden_dim, 0, "hidden_dim");
    BAD(rope_theta, 0.0f, "rope_theta");
    BAD(rope_theta, (float)NAN, "rope_theta");
    BAD(norm_eps, -1.0f, "norm_eps");
    BAD(init_std, -0.1f, "init_std");
    BAD(qkv_bias, 2, "qkv_bias");
    BAD(tie_embeddings, -1, "tie_embeddings");
    b = c; b.n_heads = 4; b.n_kv_heads = 4; b.dim = 12;   /* head size 3: odd */
    CHECK(distill_config_validate(&b, &e) == -1 && strstr(e.msg, "even"), "odd head size: %s", e.msg);
    b = c; b.dim = 520; b.n_heads = 8; b.n_kv_heads = 8;  /* 520/8 = 65 odd */
    CHECK(distill_config_validate(&b, &e) == -1 && strstr(e.msg, "even"), "odd head size 65: %s", e.msg);
    b = c; b.dim = 510;
    CHECK(distill_config_validate(&b, &e) == -1 && strstr(e.msg, "divisible by n_heads"), "dim %% heads: %s", e.msg);
    /* huge sizes: product overflows on 32-bit, refused as absurd on 64-bit */
    b = c; b.vocab_size = 1 << 26; b.dim = 1 << 20; b.n_heads = 1 << 10; b.n_kv_heads = 1 << 10;
    b.hidden_dim = 1 << 30; b.n_layers = 4096;
    CHECK(distill_config_validate(&b, &e) == -1 && strstr(e.msg, "overflow"), "overflowing params: %s", e.msg);
    b = c; b.dim = 1 << 21;
    CHECK(distill_config_validate(&b, &e) == -1 && strstr(e.msg, "dim"), "absurd dim: %s", e.msg);
    CHECK(distill_config_validate(NULL, &e) == -1, "NULL config");
    CHECK(distill_model_create(&b, 1, 1, 1, &e) == NULL, "create refuses a bad config");
    CHECK(distill_model_create(&c, 0, 16, 1, &e) == NULL && strstr(e.msg, "max_batch"), "max_batch 0: %s", e.msg);
    CHECK(distill_model_create(&c, 1 << 16, 1 << 16, 1, &e) == NULL && strstr(e.msg, "max_seq"), "capacity overflow: %s", e.msg);
#undef BAD
}

static distill_config tiny_config(int V, int C, int L, int NH, int NKV, int F, int bias, int tie) {
    distill_config c = distill_config_default();
    c.vocab_size = V; c.dim = C; c.n_layers = L; c.n_heads = NH; c.n_kv_heads = NKV; c.hidden_dim = F;
    c.qkv_bias = bias; c.tie_embeddings = tie; c.rope_theta = 100.0f;
    return c;
}

static void test_size_table(void) {
    distill_config c = tiny_config(50, 16, 2, 4, 2, 24, 1, 0);
    distill_error e;
    distill_model *m = distill_model_create(&c, 2, 8, 7, &e);
    size_t total = 0;
    int i, HS = 4, KVD = 8;
    CHECK(m != NULL, "create: %s", e.msg);
    if (!m) return;
    CHECK(m->n_tensors == 2 + 2 * 12 + 1, "tensor count %d", m->n_tensors);
    CHECK(strcmp(m->tensors[0].name, "model.embed_tokens.weight") == 0, "first name %s", m->tensors[0].name);
    CHECK(strcmp(m->tensors[m->n_tensors - 1].name, "lm_head.weight") == 0, "last name %s", m->tensors[m->n_tensors - 1].name);
    CHECK(distill_model_find_tensor(m, "model.layers.1.self_attn.k_proj.bias") >= 0, "k bias present");
    CHECK(distill_model_find_tensor(m, "model.norm.weight") >= 0, "final norm present");
    i = distill_model_find_tensor(m, "model.layers.1.self_attn.k_proj.weight");
    CHECK(i >= 0 && m->tensors[i].shape[0] == KVD && m->tensors[i].shape[1] == 16 && m->tensors[i].decay == 1, "k_proj shape/decay");
    CHECK(m->params + m->tensors[i].offset == m->layers[1].wk, "views point into the table");
    i = distill_model_find_tensor(m, "model.layers.0.mlp.down_proj.weight");
    CHECK(i >= 0 && m->tensors[i].shape[0] == 16 && m->tensors[i].shape[1] == 24, "down_proj shape");
    for (i = 0; i < m->n_tensors; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        int is_1d = t->ndim == 1;
        total += t->numel;
        CHECK(t->offset % 16 == 0, "%s offset aligned", t->name);
        CHECK(t->decay == !is_1d, "%s decay flag %d", t->name, t->decay);
        if (i > 0) CHECK(t->offset >= m->tensors[i - 1].offset + m->tensors[i - 1].numel, "no overlap at %s", t->name);
    }
    CHECK(total == m->num_params, "num_params %zu vs %zu", m->num_params, total);
    CHECK(m->num_params == (size_t)(50 * 16 * 2 + 16 + 2 * (16 + 16 * 16 + 2 * KVD * 16 + 16 * 16 + 16 + 2 * KVD + 16 + 3 * 24 * 16)),
          "parameter count formula %zu", m->num_params);
    CHECK(m->lm_head != m->tok_emb, "untied head is its own tensor");
    (void)HS;
    /* init: norms 1, biases 0, residual projections scaled */
    {
        double s1 = 0, s2 = 0;
        size_t j;
        const distill_tensor_info *q = &m->tensors[distill_model_find_tensor(m, "model.layers.0.self_attn.q_proj.weight")];
        const distill_tensor_info *o = &m->tensors[distill_model_find_tensor(m, "model.layers.0.self_attn.o_proj.weight")];
        for (j = 0; j < q->numel; j++) s1 += (double)m->params[q->offset + j] * m->params[q->offset + j];
        for (j = 0; j < o->numel; j++) s2 += (double)m->params[o->offset + j] * m->params[o->offset + j];
        s1 = sqrt(s1 / q->numel); s2 = sqrt(s2 / o->numel);
        CHECK(s1 > 0.016 && s1 < 0.024, "q_proj std %.4f ~ 0.02", s1);
        CHECK(s2 > 0.016 / 2 && s2 < 0.024 / 2, "o_proj std %.4f ~ 0.02/sqrt(2L) = 0.01", s2);
        CHECK(m->layers[1].attn_norm[3] == 1.0f && m->layers[0].bq[2] == 0.0f, "norm 1, bias 0");
    }
    /* seeded: same seed, same weights; other seed differs */
    {
        distill_model *m2 = distill_model_create(&c, 1, 4, 7, &e), *m3 = distill_model_create(&c, 1, 4, 8, &e);
        CHECK(m2 && memcmp(m->params, m2->params, sizeof(float) * m->num_floats) == 0, "reproducible init");
        CHECK(m3 && memcmp(m->params, m3->params, sizeof(float) * m->num_floats) != 0, "seed matters");
        distill_model_free(m2);
        distill_model_free(m3);
    }
    distill_model_free(m);
}

/* ---- whole-model gradient check -------------------------------------------------------- */

/* Give every parameter an O(1) random value so all paths carry signal (init_std 0.02 would
   leave attention nearly uniform and norms at exactly 1). */
static void randomise(distill_model *m, double scale) {
    int i;
    for (i = 0; i < m->n_tensors; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        size_t j;
        for (j = 0; j < t->numel; j++) {
            float *p = m->params + t->offset + j;
            if (strstr(t->name, "norm")) *p = (float)(1.0 + 0.3 * rnd());
            else *p = (float)(scale * rnd());
        }
    }
}

typedef struct {
    int B, T;
    int32_t tokens[64], targets[64], segments[64], positions[64];
    float weights[64];
    int lengths[4];
    distill_batch b;
} test_batch;

/* Row 0: length T-2 (padding), row 1 (if any): two packed segments with restarting positions
   and fractional weights; some targets unsupervised. */
static void make_batch(test_batch *tb, int B, int T, int V, int packed, int fractional) {
    int b, t;
    memset(tb, 0, sizeof *tb);
    tb->B = B; tb->T = T;
    for (b = 0; b < B; b++) {
        tb->lengths[b] = b == 0 ? T - 2 : T;
        for (t = 0; t < T; t++) {
            int n = b * T + t, cut = T / 2 - 1;
            tb->tokens[n] = (int32_t)distill_rng_below(&trng, (uint64_t)V);
            tb->targets[n] = (t % 4 == 1) ? -1 : (int32_t)distill_rng_below(&trng, (uint64_t)V);
            tb->weights[n] = fractional ? (float)(0.25 + 0.25 * (t % 3)) : 1.0f;
            tb->segments[n] = (b == 1 && t >= cut) ? 1 : 0;
            tb->positions[n] = (b == 1 && t >= cut) ? t - cut : t;
        }
    }
    tb->b.B = B; tb->b.T = T; tb->b.tokens = tb->tokens; tb->b.targets = tb->targets;
    tb->b.weights = fractional ? tb->weights : NULL;
    tb->b.lengths = tb->lengths;
    tb->b.segments = packed ? tb->segments : NULL;
    tb->b.positions = packed ? tb->positions : NULL;
}

static void check_model_grads(const char *what, distill_config c, int B, int T, int packed, int fractional, int fused) {
    distill_error e;
    distill_model *m = distill_model_create(&c, B, T + 3, 11, &e);
    test_batch tb;
    distill_stats st;
    double *P, worst = 0.0;
    const char *worst_name = "";
    ref_out r0;
    int i;
    CHECK(m != NULL, "%s: create: %s", what, e.msg);
    if (!m) return;
    randomise(m, 0.5);
    make_batch(&tb, B, T, c.vocab_size, packed, fractional);
    distill_model_zero_grad(m);
    if (fused) CHECK(distill_model_forward_backward(m, &tb.b, NULL, 0.0f, &st, &e) == 0, "%s: fwd/bwd: %s", what, e.msg);
    else {
        CHECK(distill_model_forward(m, &tb.b, NULL, 0.0f, &st, &e) == 0, "%s: forward: %s", what, e.msg);
        distill_model_backward(m);
    }
    P = (double *)malloc(sizeof(double) * m->num_floats);
    for (i = 0; i < (int)m->num_floats; i++) P[i] = m->params[i];
    r0 = ref_model_loss(m, P, &tb.b, NULL);
    CHECK_CLOSE(st.loss, r0.loss, 2e-6, 1e-7, "model loss vs double reference");
    CHECK_CLOSE(st.weight_sum, r0.wsum, 1e-7, 0, "weight sum");
    CHECK_CLOSE(st.accuracy, r0.acc, 1e-7, 1e-12, "accuracy");
    CHECK_CLOSE(st.entropy, r0.ent, 1e-5, 1e-7, "entropy");
    for (i = 0; i < m->n_tensors; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        double *g = (double *)malloc(sizeof(double) * t->numel), err;
        float *ga = (float *)malloc(sizeof(float) * t->numel);
        size_t j, stride = t->numel > 64 ? 3 : 1;   /* sample big tensors (fast under ASan) */
        for (j = 0; j < t->numel; j++) { g[j] = 0.0; ga[j] = j % stride ? 0.0f : m->grads[t->offset + j]; }
        for (j = 0; j < t->numel; j += stride) {
            double s = P[t->offset + j], lp, lm;
            P[t->offset + j] = s + FD_H; lp = ref_model_loss(m, P, &tb.b, NULL).loss;
            P[t->offset + j] = s - FD_H; lm = ref_model_loss(m, P, &tb.b, NULL).loss;
            P[t->offset + j] = s;
            g[j] = (lp - lm) / (2 * FD_H);
        }
        err = rel_err(ga, g, t->numel);
        free(ga);
        if (err > worst) { worst = err; worst_name = t->name; }
        CHECK(err < GRAD_RTOL, "%s: %s rel err %.3g", what, t->name, err);
        free(g);
    }
    printf("    %s: loss %.6f, worst gradient rel err %.2g (%s)\n", what, st.loss, worst, worst_name);
    free(P);
    distill_model_free(m);
}

static void test_model_grad_llama(void) {
    /* tied head, no bias, MHA, padding in row 0 */
    check_model_grads("llama tied", tiny_config(13, 8, 2, 2, 2, 12, 0, 1), 2, 7, 0, 0, 0);
}
static void test_model_grad_qwen(void) {
    /* GQA 4:2, qkv bias, untied head, packed segments, fractional weights, fused fwd+bwd */
    check_model_grads("qwen gqa bias untied packed", tiny_config(11, 16, 2, 4, 2, 20, 1, 0), 2, 8, 1, 1, 1);
}
static void test_model_grad_mqa(void) {
    /* multi-query (1 kv head), one layer, batch of one */
    check_model_grads("mqa", tiny_config(9, 8, 1, 2, 1, 8, 1, 1), 1, 6, 0, 1, 0);
}

/* Hugging Face architecture options against the double reference (test_model_ref.h), which
   implements them from transformers' definitions: a head size decoupled from C/NH (larger and
   smaller), Qwen3's per-head q/k RMSNorm, and RoPE scaling (llama3 with frequencies in all
   three of its regimes for HS 8, theta 100, original context 32; linear). */
static void test_model_grad_head_dim(void) {
    distill_config c = tiny_config(13, 8, 2, 2, 1, 12, 1, 1);
    c.head_dim = 6;    /* NH*HS = 12 > C = 8 */
    check_model_grads("head_dim 6 > C/NH 4, GQA, bias", c, 2, 7, 0, 0, 0);
    c = tiny_config(11, 16, 1, 4, 2, 12, 0, 0);
    c.head_dim = 2;    /* NH*HS = 8 < C = 16 */
    check_model_grads("head_dim 2 < C/NH 4, untied, packed", c, 2, 8, 1, 1, 1);
}
static void test_model_grad_qwen3(void) {
    distill_config c = tiny_config(13, 8, 2, 4, 2, 12, 0, 1);
    c.head_dim = 4; c.qk_norm = 1;
    check_model_grads("qwen3: q/k norm, head_dim 4, GQA 4/2", c, 2, 7, 0, 1, 0);
    c.head_dim = 6;
    check_model_grads("qwen3: q/k norm, head_dim 6, packed, fused", c, 2, 8, 1, 1, 1);
}
static void test_model_grad_rope_scaling(void) {
    distill_config c = tiny_config(13, 8, 1, 1, 1, 12, 0, 1);
    c.rope_scaling = DISTILL_ROPE_LLAMA3; c.rope_factor = 8.0f; c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f; c.rope_original_max_pos = 32;
    check_model_grads("llama3 rope scaling", c, 2, 7, 0, 0, 0);
    c.rope_scaling = DISTILL_ROPE_LINEAR; c.rope_factor = 2.5f;
    check_model_grads("linear rope scaling", c, 2, 7, 1, 0, 0);
}
/* distill_rope_inv_freq against the reference for Llama 3.1's own values (theta 500000, HS 128,
   factor 8, low 1, high 4, original context 8192), and the scaled rotation's gradient. */
static void test_rope_scaling_freqs(void) {
    distill_config c = distill_config_default();
    double inv[64];
    int i, regimes[3] = {0, 0, 0};
    c.dim = 4096; c.n_heads = 32; c.rope_theta = 500000.0f;
    c.rope_scaling = DISTILL_ROPE_LLAMA3; c.rope_factor = 8.0f; c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f; c.rope_original_max_pos = 8192;
    distill_rope_inv_freq(&c, inv);
    for (i = 0; i < 64; i++) {
        double plain = 1.0 / pow(500000.0, 2.0 * i / 128.0), want = ref_inv_freq(&c, i, 128, 500000.0);
        CHECK_CLOSE(inv[i], want, 1e-12, 0, "llama3 inv_freq");
        regimes[inv[i] == plain ? 0 : fabs(inv[i] - plain / 8) < 1e-15 * plain ? 2 : 1]++;
    }
    CHECK(regimes[0] > 0 && regimes[1] > 0 && regimes[2] > 0, "llama3: kept %d, blended %d, divided %d", regimes[0], regimes[1], regimes[2]);
    c.rope_scaling = DISTILL_ROPE_LINEAR; c.rope_factor = 4.0f;
    distill_rope_inv_freq(&c, inv);
    for (i = 0; i < 64; i++) CHECK_CLOSE(inv[i], 0.25 / pow(500000.0, 2.0 * i / 128.0), 1e-12, 0, "linear inv_freq");
    {   /* the rotation with given frequencies: forward against the reference, backward = transpose */
        enum { N = 5, NHD = 2, HS = 8 };
        float x[N * NHD * HS], R[N * NHD * HS];
        double xd[N * NHD * HS], od[N * NHD * HS], Rd[N * NHD * HS], gx[N * NHD * HS], f[HS / 2];
        int32_t pos[N] = {0, 3, 40, 700, 9000};
        int posi[N] = {0, 3, 40, 700, 9000}, n = N * NHD * HS;
        distill_config s = tiny_config(13, 8, 1, 1, 1, 12, 0, 1);
        s.rope_scaling = DISTILL_ROPE_LLAMA3; s.rope_factor = 8.0f; s.rope_low_freq_factor = 1.0f;
        s.rope_high_freq_factor = 4.0f; s.rope_original_max_pos = 32;
        distill_rope_inv_freq(&s, f);
        for (i = 0; i < n; i++) { x[i] = (float)rnd(); xd[i] = x[i]; R[i] = (float)rnd(); Rd[i] = R[i]; }
        distill_rope_forward_freqs(x, pos, N, NHD, HS, f);
        memcpy(od, xd, sizeof od);
        ref_rope_cfg(od, posi, N, NHD, HS, 100.0, &s);
        for (i = 0; i < n; i++) CHECK_CLOSE(x[i], od[i], 1e-5, 1e-5, "scaled rope forward");
        distill_rope_backward_freqs(R, pos, N, NHD, HS, f);
        for (i = 0; i < n; i++) {
            double sv = xd[i], lp, lm;
            xd[i] = sv + FD_H; memcpy(od, xd, sizeof od); ref_rope_cfg(od, posi, N, NHD, HS, 100.0, &s); lp = dotR(od, Rd, n);
            xd[i] = sv - FD_H; memcpy(od, xd, sizeof od); ref_rope_cfg(od, posi, N, NHD, HS, 100.0, &s); lm = dotR(od, Rd, n);
            xd[i] = sv; gx[i] = (lp - lm) / (2 * FD_H);
        }
        CHECK(rel_err(R, gx, n) < GRAD_RTOL, "scaled rope dx rel err %.3g", rel_err(R, gx, n));
    }
}

/* forward then backward == forward_backward; logits match the double reference; gradient
   accumulation with an explicit grad_scale equals one pass over the concatenated batch. */
static void test_lifecycle(void) {
    distill_config c = tiny_config(17, 16, 2, 4, 2, 24, 1, 0);
    distill_error e;
    distill_model *m = distill_model_create(&c, 2, 8, 3, &e);
    test_batch tb, t0, t1;
    distill_stats s1, s2, sa, sb;
    float *g1, *logits;
    double *P, *ref;
    size_t n, i;
    if (!m) { CHECK(0, "create: %s", e.msg); return; }
    randomise(m, 0.3);
    n = m->num_floats;
    make_batch(&tb, 2, 8, 17, 1, 1);
    distill_model_zero_grad(m);
    distill_model_forward(m, &tb.b, NULL, 0.0f, &s1, &e);
    distill_model_backward(m);
    g1 = (float *)malloc(sizeof(float) * n);
    memcpy(g1, m->grads, sizeof(float) * n);
    distill_model_zero_grad(m);
    distill_model_forward_backward(m, &tb.b, NULL, 0.0f, &s2, &e);
    CHECK(s1.loss == s2.loss, "same loss both ways");
    for (i = 0; i < n; i++) if (fabsf(g1[i] - m->grads[i]) > 1e-6f * (1.0f + fabsf(g1[i]))) break;
    CHECK(i == n, "forward+backward == forward_backward (first difference at %zu)", i);
    CHECK(s1.tokens == 6 + 8, "valid tokens %lld", (long long)s1.tokens);
    /* logits of row 1 vs the reference */
    logits = (float *)malloc(sizeof(float) * 8 * 17);
    ref = (double *)malloc(sizeof(double) * 2 * 8 * 17);
    P = (double *)malloc(sizeof(double) * n);
    for (i = 0; i < n; i++) P[i] = m->params[i];
    ref_model_loss(m, P, &tb.b, ref);
    distill_model_logits(m, 1, logits);
    for (i = 0; i < 8 * 17; i++) CHECK_CLOSE(logits[i], ref[8 * 17 + i], 1e-4, 1e-5, "logits row 1");
    /* accumulation: two single-row micro-batches with grad_scale 1/total weight */
    make_batch(&t0, 2, 8, 17, 1, 1);
    memcpy(&t1, &tb, sizeof tb);
    {
        distill_batch b0 = tb.b, b1 = tb.b;
        float gs = (float)(1.0 / s1.weight_sum);
        b0.B = 1; b1.B = 1;
        b1.tokens += 8; b1.targets += 8; b1.weights += 8; b1.lengths += 1; b1.segments += 8; b1.positions += 8;
        distill_model_zero_grad(m);
        distill_model_forward_backward(m, &b0, NULL, gs, &sa, &e);
        distill_model_forward_backward(m, &b1, NULL, gs, &sb, &e);
        CHECK_CLOSE(sa.loss + sb.loss, s1.loss, 1e-6, 1e-7, "accumulated loss");
        for (i = 0; i < n; i++) if (fabsf(g1[i] - m->grads[i]) > 1e-5f * (1.0f + fabsf(g1[i]))) break;
        CHECK(i == n, "accumulated gradients equal the full batch's (first difference at %zu)", i);
    }
    (void)t0; (void)t1;
    /* bad batches are refused with the field named */
    {
        distill_batch bad = tb.b;
        int32_t badtok[16];
        memcpy(badtok, tb.tokens, sizeof badtok);
        badtok[3] = 17;
        bad.tokens = badtok;
        CHECK(distill_model_forward(m, &bad, NULL, 0, NULL, &e) == -1 && strstr(e.msg, "tokens[0][3]"), "bad token: %s", e.msg);
        bad = tb.b; bad.B = 3;
        CHECK(distill_model_forward(m, &bad, NULL, 0, NULL, &e) == -1 && strstr(e.msg, "max_batch"), "B too big: %s", e.msg);
        bad = tb.b; bad.T = 9;
        CHECK(distill_model_forward(m, &bad, NULL, 0, NULL, &e) == -1 && strstr(e.msg, "max_seq"), "T too big: %s", e.msg);
        bad = tb.b; badtok[3] = tb.tokens[3]; bad.targets = badtok; badtok[10] = 99;
        CHECK(distill_model_forward(m, &bad, NULL, 0, NULL, &e) == -1 && strstr(e.msg, "targets[1][2]"), "bad target: %s", e.msg);
    }
    free(g1); free(logits); free(ref); free(P);
    distill_model_free(m);
}

/* 1 thread vs N threads: bit-identical loss and gradients. */
static void test_threads_deterministic(void) {
    distill_config c = tiny_config(300, 32, 2, 4, 2, 48, 1, 1);
    distill_error e;
    distill_model *m = distill_model_create(&c, 2, 40, 5, &e);
    distill_stats s1, s4;
    int32_t tok[80], tgt[80];
    int lens[2] = {40, 29}, i, nt0 = distill_get_threads();
    float *g1;
    distill_batch b;
    if (!m) { CHECK(0, "create: %s", e.msg); return; }
    for (i = 0; i < 80; i++) { tok[i] = (int32_t)distill_rng_below(&trng, 300); tgt[i] = (int32_t)distill_rng_below(&trng, 300); }
    memset(&b, 0, sizeof b);
    b.B = 2; b.T = 40; b.tokens = tok; b.targets = tgt; b.lengths = lens;
    distill_set_threads(1);
    distill_model_zero_grad(m);
    distill_model_forward_backward(m, &b, NULL, 0, &s1, &e);
    g1 = (float *)malloc(sizeof(float) * m->num_floats);
    memcpy(g1, m->grads, sizeof(float) * m->num_floats);
    distill_set_threads(4);
    distill_model_zero_grad(m);
    distill_model_forward_backward(m, &b, NULL, 0, &s4, &e);
    CHECK(s1.loss == s4.loss && s1.entropy == s4.entropy, "loss 1 thread %.17g vs 4 threads %.17g", s1.loss, s4.loss);
    CHECK(memcmp(g1, m->grads, sizeof(float) * m->num_floats) == 0, "gradients bit-identical across thread counts");
    distill_set_threads(nt0);
    free(g1);
    distill_model_free(m);
}

/* ---- AdamW and schedules against hand-written references ------------------------------- */

static void test_schedules(void) {
    distill_optim_config o = distill_optim_default();
    distill_error e;
    o.lr = 1.0f; o.warmup_steps = 10; o.total_steps = 110; o.min_lr_ratio = 0.1f;
    o.schedule = DISTILL_SCHED_COSINE;
    CHECK_CLOSE(distill_lr_at(&o, 0), 0.1, 1e-6, 0, "warmup step 0");
    CHECK_CLOSE(distill_lr_at(&o, 9), 1.0, 1e-6, 0, "warmup end");
    CHECK_CLOSE(distill_lr_at(&o, 10), 1.0, 1e-6, 0, "cosine start");
    CHECK_CLOSE(distill_lr_at(&o, 60), 0.1 + 0.9 * 0.5, 1e-6, 0, "cosine half way");
    CHECK_CLOSE(distill_lr_at(&o, 110), 0.1, 1e-6, 0, "cosine floor");
    CHECK_CLOSE(distill_lr_at(&o, 500), 0.1, 1e-6, 0, "past the end stays at the floor");
    o.schedule = DISTILL_SCHED_LINEAR;
    CHECK_CLOSE(distill_lr_at(&o, 35), 0.1 + 0.9 * 0.75, 1e-6, 0, "linear quarter");
    o.schedule = DISTILL_SCHED_CONSTANT;
    CHECK_CLOSE(distill_lr_at(&o, 80), 1.0, 1e-6, 0, "constant");
    o.warmup_steps = -1; o.warmup_ratio = 0.2f; o.total_steps = 50;
    CHECK_CLOSE(distill_lr_at(&o, 4), 0.5, 1e-6, 0, "warmup by ratio: 10 steps");
    CHECK(distill_optim_validate(&o, &e) == 0, "valid optimizer config");
    o.beta2 = 1.0f;
    CHECK(distill_optim_validate(&o, &e) == -1 && strstr(e.msg, "beta2"), "beta2 = 1: %s", e.msg);
    o = distill_optim_default(); o.lr = -1.0f;
    CHECK(distill_optim_validate(&o, &e) == -1 && strstr(e.msg, "lr"), "negative lr: %s", e.msg);
    o = distill_optim_default(); o.min_lr_ratio = 2.0f;
    CHECK(distill_optim_validate(&o, &e) == -1 && strstr(e.msg, "min_lr_ratio"), "floor > 1: %s", e.msg);
}

/* Three AdamW steps on random gradients vs a double reference of the PyTorch algorithm. */
static void test_adamw(void) {
    distill_config c = tiny_config(10, 8, 1, 2, 1, 8, 1, 1);
    distill_error e;
    distill_model *m = distill_model_create(&c, 1, 4, 1, &e);
    distill_optim_config o = distill_optim_default();
    double *p, *mm, *vv;
    size_t n, i;
    int step, t;
    if (!m) { CHECK(0, "create: %s", e.msg); return; }
    n = m->num_floats;
    p = (double *)calloc(n, sizeof(double)); mm = (double *)calloc(n, sizeof(double)); vv = (double *)calloc(n, sizeof(double));
    for (i = 0; i < n; i++) p[i] = m->params[i];
    o.lr = 0.01f; o.weight_decay = 0.5f; o.grad_clip = 0.5f; o.decay_embeddings = 0;
    o.warmup_steps = 2; o.total_steps = 3;
    for (step = 0; step < 3; step++) {
        double norm = 0.0, clip = 1.0, lr = distill_lr_at(&o, step), gn;
        for (i = 0; i < n; i++) m->grads[i] = 0.0f;
        for (t = 0; t < m->n_tensors; t++)
            for (i = 0; i < m->tensors[t].numel; i++) m->grads[m->tensors[t].offset + i] = (float)(0.1 * rnd());
        for (i = 0; i < n; i++) norm += (double)m->grads[i] * m->grads[i];
        norm = sqrt(norm);
        if (norm > o.grad_clip) clip = o.grad_clip / (norm + 1e-6);
        for (t = 0; t < m->n_tensors; t++) {
            const distill_tensor_info *ti = &m->tensors[t];
            int decay = ti->ndim == 2 && strstr(ti->name, "embed") == NULL;
            for (i = ti->offset; i < ti->offset + ti->numel; i++) {
                double g = m->grads[i] * clip, bc1 = 1 - pow(0.9, step + 1), bc2 = 1 - pow(0.95, step + 1);
                mm[i] = 0.9 * mm[i] + 0.1 * g;
                vv[i] = 0.95 * vv[i] + 0.05 * g * g;
                if (decay) p[i] *= 1 - lr * 0.5;
                p[i] -= lr / bc1 * mm[i] / (sqrt(vv[i]) / sqrt(bc2) + 1e-8);
            }
        }
        gn = distill_adamw_step(m, &o, step);
        CHECK_CLOSE(gn, norm, 1e-9, 0, "returned gradient norm");
    }
    for (i = 0; i < n; i++) if (fabs(m->params[i] - p[i]) > 1e-6 * (1 + fabs(p[i]))) break;
    CHECK(i == n, "AdamW matches the reference (first difference at %zu: %.9g vs %.9g)", i,
          i < n ? m->params[i] : 0.0, i < n ? p[i] : 0.0);
    /* a NaN gradient skips the update */
    memcpy(mm, m->params, 0);
    {
        float *save = (float *)malloc(sizeof(float) * n);
        double gn;
        memcpy(save, m->params, sizeof(float) * n);
        m->grads[5] = NAN;
        gn = distill_adamw_step(m, &o, 3);
        CHECK(gn != gn && memcmp(save, m->params, sizeof(float) * n) == 0, "NaN gradient: no update");
        free(save);
    }
    free(p); free(mm); free(vv);
    distill_model_free(m);
}

/* A small model memorises four sequences. */
static void test_overfit(void) {
    distill_config c = tiny_config(32, 32, 2, 4, 2, 64, 0, 1);
    distill_error e;
    distill_model *m = distill_model_create(&c, 4, 16, 42, &e);
    distill_optim_config o = distill_optim_default();
    int32_t tok[64], tgt[64];
    distill_batch b;
    distill_stats st;
    double gn, t0 = distill_time_seconds();
    int i, step;
    if (!m) { CHECK(0, "create: %s", e.msg); return; }
    for (i = 0; i < 64; i++) tok[i] = (int32_t)distill_rng_below(&trng, 32);
    for (i = 0; i < 64; i++) tgt[i] = (i % 16 == 15) ? -1 : tok[i + 1];
    memset(&b, 0, sizeof b);
    b.B = 4; b.T = 16; b.tokens = tok; b.targets = tgt;
    o.lr = 3e-3f; o.weight_decay = 0.0f; o.warmup_steps = 10;
    for (step = 0; step < 300; step++) {
        CHECK(distill_train_step(m, &b, &o, step, &st, &gn, &e) == 0, "train step: %s", e.msg);
        if (st.loss < 0.02) break;
    }
    printf("    overfit: loss %.4f, accuracy %.3f after %d steps (%.2f s)\n", st.loss, st.accuracy, step + 1,
           distill_time_seconds() - t0);
    CHECK(st.loss < 0.05, "memorised: loss %.4f", st.loss);
    CHECK(st.accuracy == 1.0, "accuracy %.3f", st.accuracy);
    distill_model_free(m);
}

int main(void) {
    distill_rng_seed(&trng, 1234);
    RUN(test_config_validation);
    RUN(test_size_table);
    RUN(test_embedding);
    RUN(test_rmsnorm_grad);
    RUN(test_rope_grad);
    RUN(test_swiglu_grad);
    RUN(test_attention_grad);
    RUN(test_ce_grad);
    RUN(test_model_grad_llama);
    RUN(test_model_grad_qwen);
    RUN(test_model_grad_mqa);
    RUN(test_lifecycle);
    RUN(test_threads_deterministic);
    RUN(test_schedules);
    RUN(test_adamw);
    RUN(test_overfit);
    /* after the others: they draw from the shared test RNG, whose sequence test_overfit's data depends on */
    RUN(test_model_grad_head_dim);
    RUN(test_model_grad_qwen3);
    RUN(test_model_grad_rope_scaling);
    RUN(test_rope_scaling_freqs);
    return harness_done("test_model");
}
