/* An independent double-precision re-implementation of the model's forward pass and loss,
   written naively (full softmax over explicit masks, angles recomputed per element), used by
   the model tests as the reference for finite differences. It shares no code with the
   implementation: it reads the parameters by their Hugging Face names only. */
#ifndef TEST_MODEL_REF_H
#define TEST_MODEL_REF_H
#include <stdlib.h>
#include <string.h>
#include <math.h>

typedef struct {
    double loss, wsum, acc, ent;
} ref_out;

static const double *ref_w(const distill_model *m, const double *P, const char *fmt, int l) {
    char name[96];
    int i;
    snprintf(name, sizeof name, fmt, l);
    i = distill_model_find_tensor(m, name);
    if (i < 0) return NULL;
    return P + m->tensors[i].offset;
}

/* 1: ref_linear rounds x and W to BF16 (nearest, ties to even; the reference of BF16 mode) */
static int ref_bf16_inputs;
/* v rounded to the nearest BF16 (8 significant bits), ties to the even significand, computed
   on the value (frexp/ldexp), not on the bit pattern; float's normal range only */
static double ref_bf16(double v) {
    int e;
    double f, t, r;
    if (v == 0.0 || fabs(v) < 1.1754943508222875e-38) return v == v ? 0.0 * v : v;
    f = frexp(v, &e);           /* v = f 2^e, 0.5 <= |f| < 1 */
    t = f * 256.0;              /* 8 significant bits before the point */
    r = floor(t);
    if (t - r > 0.5 || (t - r == 0.5 && fmod(r, 2.0) != 0.0)) r += 1.0;
    return ldexp(r / 256.0, e);
}
/* y (N,O) = x (N,I) W^T (O,I) + b */
static void ref_linear(double *y, const double *x, const double *W, const double *b, int N, int I, int O) {
    int n, o, i;
    for (n = 0; n < N; n++)
        for (o = 0; o < O; o++) {
            double s = b ? b[o] : 0.0;
            if (ref_bf16_inputs)
                for (i = 0; i < I; i++) s += ref_bf16(x[n * I + i]) * ref_bf16(W[o * I + i]);
            else
                for (i = 0; i < I; i++) s += x[n * I + i] * W[o * I + i];
            y[n * O + o] = s;
        }
}
static void ref_rmsnorm(double *y, const double *x, const double *w, int N, int C, double eps) {
    int n, i;
    for (n = 0; n < N; n++) {
        double ss = 0.0;
        for (i = 0; i < C; i++) ss += x[n * C + i] * x[n * C + i];
        ss = 1.0 / sqrt(ss / C + eps);
        for (i = 0; i < C; i++) y[n * C + i] = x[n * C + i] * ss * w[i];
    }
}
/* The inverse frequency of pair i, as transformers' rope initialisation functions define it
   (default; "linear": divided by factor; "llama3": low frequencies divided by factor, high ones
   kept, a smooth blend in between), written out here from their definitions. */
static double ref_inv_freq(const distill_config *c, int i, int hs, double theta) {
    double inv = 1.0 / pow(theta, (2.0 * i) / hs);
    if (c && c->rope_scaling == DISTILL_ROPE_LINEAR) return inv / c->rope_factor;
    if (c && c->rope_scaling == DISTILL_ROPE_LLAMA3) {
        double wavelen = 2.0 * 3.14159265358979323846 / inv, old = c->rope_original_max_pos;
        double low_wl = old / c->rope_low_freq_factor, high_wl = old / c->rope_high_freq_factor;
        double smooth = (old / wavelen - c->rope_low_freq_factor) / (c->rope_high_freq_factor - c->rope_low_freq_factor);
        if (wavelen < high_wl) return inv;
        if (wavelen > low_wl) return inv / c->rope_factor;
        return (1.0 - smooth) * inv / c->rope_factor + smooth * inv;
    }
    return inv;
}
/* rotate_half RoPE on x (N, nh, hs) with positions pos (N); c (may be NULL) for rope scaling */
static void ref_rope_cfg(double *x, const int *pos, int N, int nh, int hs, double theta, const distill_config *c) {
    int n, h, i, half = hs / 2;
    for (n = 0; n < N; n++)
        for (h = 0; h < nh; h++) {
            double *v = x + ((size_t)n * nh + h) * hs, tmp[512];
            for (i = 0; i < hs; i++) tmp[i] = v[i];
            for (i = 0; i < half; i++) {
                double inv = ref_inv_freq(c, i, hs, theta), a = pos[n] * inv;
                v[i] = tmp[i] * cos(a) - tmp[i + half] * sin(a);
                v[i + half] = tmp[i + half] * cos(a) + tmp[i] * sin(a);
            }
        }
}
static void ref_rope(double *x, const int *pos, int N, int nh, int hs, double theta) {
    ref_rope_cfg(x, pos, N, nh, hs, theta, NULL);
}
/* attention for one row of T positions: key j visible to query t iff j <= t, j < len and
   seg[j] == seg[t]. q (T,NH,HS), k/v (T,NKV,HS) -> o (T,NH,HS). */
static void ref_attention(double *o, const double *q, const double *k, const double *v, const int *seg,
                          int len, int T, int NH, int NKV, int HS) {
    int t, h, j, i, rep = NH / NKV;
    double *p = (double *)malloc(sizeof(double) * (size_t)T);
    for (t = 0; t < T; t++)
        for (h = 0; h < NH; h++) {
            double mx = -1e300, sum = 0.0;
            int g = h / rep;
            for (i = 0; i < HS; i++) o[(t * NH + h) * HS + i] = 0.0;
            if (t >= len) continue;
            for (j = 0; j <= t; j++) {
                double s = 0.0;
                p[j] = -1e300;
                if (seg && seg[j] != seg[t]) continue;
                if (ref_bf16_inputs)   /* BF16 mode: the block products round their inputs too */
                    for (i = 0; i < HS; i++) s += ref_bf16(q[(t * NH + h) * HS + i]) * ref_bf16(k[(j * NKV + g) * HS + i]);
                else
                    for (i = 0; i < HS; i++) s += q[(t * NH + h) * HS + i] * k[(j * NKV + g) * HS + i];
                p[j] = s / sqrt((double)HS);
                if (p[j] > mx) mx = p[j];
            }
            for (j = 0; j <= t; j++) { p[j] = p[j] > -1e299 ? exp(p[j] - mx) : 0.0; sum += p[j]; }
            /* BF16 mode: the unnormalised exp(s - max) and v rounded (exact for T <= 64, one key
               block of the flash kernel, where its running max is the row's max) */
            for (j = 0; j <= t; j++)
                for (i = 0; i < HS; i++)
                    o[(t * NH + h) * HS + i] += ref_bf16_inputs ? ref_bf16(p[j]) / sum * ref_bf16(v[(j * NKV + g) * HS + i])
                                                                : p[j] / sum * v[(j * NKV + g) * HS + i];
        }
    free(p);
}

/* The whole model on one batch, in double: weighted CE normalised by the weight sum.
   logits_out (B,T,V) optional. */
static ref_out ref_model_loss(const distill_model *m, const double *P, const distill_batch *bt, double *logits_out) {
    const distill_config *c = &m->cfg;
    int B = bt->B, T = bt->T, C = c->dim, V = c->vocab_size, F = c->hidden_dim, NH = c->n_heads;
    int NKV = c->n_kv_heads, HS = c->head_dim ? c->head_dim : C / NH, QD = NH * HS, KVD = NKV * HS, b, t, l, i;
    size_t TC = (size_t)T * C;
    double *x = (double *)calloc(TC, sizeof(double)), *a = (double *)calloc(TC, sizeof(double));
    double *q = (double *)calloc((size_t)T * QD, sizeof(double)), *k = (double *)calloc((size_t)T * KVD, sizeof(double));
    double *v = (double *)calloc((size_t)T * KVD, sizeof(double)), *o = (double *)calloc((size_t)T * QD, sizeof(double));
    double *y = (double *)calloc(TC, sizeof(double)), *g = (double *)calloc((size_t)T * F, sizeof(double));
    double *u = (double *)calloc((size_t)T * F, sizeof(double)), *lg = (double *)calloc((size_t)T * V, sizeof(double));
    int *pos = (int *)calloc((size_t)T, sizeof(int)), *seg = (int *)calloc((size_t)T, sizeof(int));
    const double *emb = ref_w(m, P, "model.embed_tokens.weight%.0d", 0);
    const double *head = c->tie_embeddings ? emb : ref_w(m, P, "lm_head.weight%.0d", 0);
    ref_out r;
    memset(&r, 0, sizeof r);
    for (b = 0; b < B; b++) {
        int len = bt->lengths ? bt->lengths[b] : T;
        for (t = 0; t < T; t++) {
            pos[t] = bt->positions ? bt->positions[b * T + t] : t;
            seg[t] = bt->segments ? bt->segments[b * T + t] : 0;
            for (i = 0; i < C; i++) x[t * C + i] = t < len ? emb[(size_t)bt->tokens[b * T + t] * C + i] : 0.0;
        }
        for (l = 0; l < c->n_layers; l++) {
            ref_rmsnorm(a, x, ref_w(m, P, "model.layers.%d.input_layernorm.weight", l), T, C, c->norm_eps);
            ref_linear(q, a, ref_w(m, P, "model.layers.%d.self_attn.q_proj.weight", l), ref_w(m, P, "model.layers.%d.self_attn.q_proj.bias", l), T, C, QD);
            ref_linear(k, a, ref_w(m, P, "model.layers.%d.self_attn.k_proj.weight", l), ref_w(m, P, "model.layers.%d.self_attn.k_proj.bias", l), T, C, KVD);
            ref_linear(v, a, ref_w(m, P, "model.layers.%d.self_attn.v_proj.weight", l), ref_w(m, P, "model.layers.%d.self_attn.v_proj.bias", l), T, C, KVD);
            if (ref_w(m, P, "model.layers.%d.self_attn.q_norm.weight", l)) {   /* Qwen3: RMSNorm per head */
                ref_rmsnorm(q, q, ref_w(m, P, "model.layers.%d.self_attn.q_norm.weight", l), T * NH, HS, c->norm_eps);
                ref_rmsnorm(k, k, ref_w(m, P, "model.layers.%d.self_attn.k_norm.weight", l), T * NKV, HS, c->norm_eps);
            }
            ref_rope_cfg(q, pos, T, NH, HS, c->rope_theta, c);
            ref_rope_cfg(k, pos, T, NKV, HS, c->rope_theta, c);
            ref_attention(o, q, k, v, seg, len, T, NH, NKV, HS);
            ref_linear(y, o, ref_w(m, P, "model.layers.%d.self_attn.o_proj.weight", l), NULL, T, QD, C);
            for (i = 0; i < T * C; i++) x[i] += y[i];
            ref_rmsnorm(a, x, ref_w(m, P, "model.layers.%d.post_attention_layernorm.weight", l), T, C, c->norm_eps);
            ref_linear(g, a, ref_w(m, P, "model.layers.%d.mlp.gate_proj.weight", l), NULL, T, C, F);
            ref_linear(u, a, ref_w(m, P, "model.layers.%d.mlp.up_proj.weight", l), NULL, T, C, F);
            for (i = 0; i < T * F; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            ref_linear(y, g, ref_w(m, P, "model.layers.%d.mlp.down_proj.weight", l), NULL, T, F, C);
            for (i = 0; i < T * C; i++) x[i] += y[i];
        }
        ref_rmsnorm(a, x, ref_w(m, P, "model.norm.weight%.0d", 0), T, C, c->norm_eps);
        ref_linear(lg, a, head, NULL, T, C, V);
        if (logits_out) memcpy(logits_out + (size_t)b * T * V, lg, sizeof(double) * (size_t)T * V);
        for (t = 0; t < len && bt->targets; t++) {
            int yt = bt->targets[b * T + t], am = 0;
            double w = bt->weights ? bt->weights[b * T + t] : 1.0, mx = -1e300, s = 0.0, sz = 0.0, lse;
            if (yt < 0 || w == 0.0) continue;
            for (i = 0; i < V; i++) if (lg[t * V + i] > mx) { mx = lg[t * V + i]; am = i; }
            for (i = 0; i < V; i++) { double e = exp(lg[t * V + i] - mx); s += e; sz += e * lg[t * V + i]; }
            lse = mx + log(s);
            r.loss += w * (lse - lg[t * V + yt]);
            r.wsum += w;
            r.acc += am == yt ? w : 0.0;
            r.ent += w * (lse - sz / s);
        }
    }
    if (r.wsum > 0) { r.loss /= r.wsum; r.acc /= r.wsum; r.ent /= r.wsum; }
    free(x); free(a); free(q); free(k); free(v); free(o); free(y); free(g); free(u); free(lg); free(pos); free(seg);
    return r;
}
#endif
