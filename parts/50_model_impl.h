/* ===================================================================================== */
/* MODEL: a Llama / Qwen2-style decoder with a hand-written backward pass, AdamW           */
/* (owner: core issue)                                                                    */
/* ===================================================================================== */
/*
   The network, for tokens (B,T):

       x_0      = tok_emb[tokens]                                   (B,T,C)
       for each layer l:
           a    = rmsnorm(x_l) * attn_norm
           q,k,v= a Wq^T (+bq), a Wk^T (+bk), a Wv^T (+bv)          (B,T,NH,HS) (B,T,NKV,HS)
           q,k  = rope(q), rope(k)                                   rotate_half convention
           o    = causal_gqa_attention(q, k, v)                      (B,T,NH,HS)
           h    = x_l + o Wo^T                                       (B,T,C)
           f    = rmsnorm(h) * ffn_norm
           x_l+1= h + (silu(f Wg^T) * (f Wu^T)) Wd^T                 (B,T,C)
       logits   = rmsnorm(x_L) * final_norm . lm_head^T              (B,T,V), never all resident

   RoPE follows Hugging Face's "rotate_half" convention (the one in modeling_llama.py and
   modeling_qwen2.py): in each head, dimension i < HS/2 is paired with dimension i + HS/2, with
   angle pos * theta^(-2i/HS). Weights exported by PyTorch/HF therefore load unpermuted.
   (Meta's original checkpoints and llama2.c pair interleaved dims 2i, 2i+1 instead; a loader of
   those must permute the rows of Wq and Wk.)

   ACTIVATION MEMORY of a training step, in bytes, with BT = B*T, KVD = NKV*HS,
   K = min(DISTILL_HEAD_CHUNK, BT) positions per LM-head chunk:

       4 * [ L * (BT*(6C + 2*KVD + 2F + 2) + B*NH*T)      saved per layer: x, attn-norm out, q,
                                                          k, v, attention out, residual h,
                                                          ffn-norm out, gate, up (6C + 2KVD + 2F),
                                                          two rstd (2), the attention
                                                          log-sum-exp (NH per position)
           + BT*(2C + 1)                                  x_L, final-norm out, its rstd
           + BT*(2C + max(2F, C + 2*KVD))                 backward scratch: d(residual), one
                                                          (BT,C) buffer reused for dnorm/datt,
                                                          and dh/dgate/dup or dq/dk/dv
           + K*(V + 2C) ]                                 one chunk of logits/dlogits and its
                                                          gathered inputs and their gradient
       + 20*BT + 4*B                                      RoPE positions, masked tokens, segment
                                                          starts (int32 each), the supervised
                                                          position list (int64); lengths (B)
       + 40*ceil(K/4)                                     loss-statistics slots (fixed order)

   No term is quadratic in T (the attention keeps only the per-row log-sum-exp and recomputes
   the probabilities in the backward pass) and none is B*T*V (the LM head runs in chunks).
   Everything is allocated once by distill_model_create at capacity (max_batch, max_seq);
   distill_model_activation_bytes() evaluates the formula and a test checks it against the
   bytes the implementation really allocates. The parameters, gradients and AdamW moments add
   4 * num_params bytes each.

   DETERMINISM. Every parallel loop writes disjoint outputs (rows, (batch, kv-head) pairs,
   columns), and every reduction over rows runs in a fixed order that does not depend on the
   number of threads, so 1 and N threads give bit-identical losses and gradients.
*/

/* ---- config ----------------------------------------------------------------------- */

DISTILL_API distill_config distill_config_default(void) {
    distill_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 32000;
    c.dim = 512;
    c.n_layers = 8;
    c.n_heads = 8;
    c.n_kv_heads = 8;
    c.hidden_dim = 1408;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.qkv_bias = 0;
    c.tie_embeddings = 1;
    c.init_std = 0.02f;
    c.scale_residual_init = 1;
    return c;
}

/* Limits that keep every derived count well inside int and size_t. */
#define DISTILL__MAX_DIM (1 << 20)
#define DISTILL__MAX_VOCAB (1 << 26)
#define DISTILL__MAX_LAYERS 4096
#define DISTILL__MAX_HIDDEN (1 << 30)

/* The parameter count of a (valid-looking) config, 0 on size_t overflow. */
static size_t distill__count_params(const distill_config *c, size_t *padded) {
    size_t C = (size_t)c->dim, V = (size_t)c->vocab_size, F = (size_t)c->hidden_dim;
    size_t HS = C / (size_t)c->n_heads, QD = HS * (size_t)c->n_heads, KVD = HS * (size_t)c->n_kv_heads;
    size_t per_layer = 0, total = 0, pad = 0, t = 0, parts[16];
    int n = 0, i;
    /* the per-layer tensors, in table order */
    parts[n++] = C; parts[n++] = QD * C; parts[n++] = KVD * C; parts[n++] = KVD * C; parts[n++] = C * QD;
    if (c->qkv_bias) { parts[n++] = QD; parts[n++] = KVD; parts[n++] = KVD; }
    parts[n++] = C; parts[n++] = F * C; parts[n++] = F * C; parts[n++] = C * F;
    if (F != 0 && C > SIZE_MAX / F) return 0;
    if (C > SIZE_MAX / C) return 0;
    if (V != 0 && C > SIZE_MAX / V) return 0;
    for (i = 0; i < n; i++) {
        size_t r = (parts[i] + 15) / 16 * 16;
        if (!distill__add_size(per_layer, parts[i], &per_layer)) return 0;
        if (!distill__add_size(pad, r, &pad)) return 0;
    }
    if (!distill__mul_size(per_layer, (size_t)c->n_layers, &total)) return 0;
    if (!distill__mul_size(pad, (size_t)c->n_layers, &pad)) return 0;
    t = V * C + C + (c->tie_embeddings ? 0 : V * C);
    if (!distill__add_size(total, t, &total)) return 0;
    if (!distill__add_size(pad, (V * C + 15) / 16 * 16 + (C + 15) / 16 * 16, &pad)) return 0;
    if (!c->tie_embeddings && !distill__add_size(pad, (V * C + 15) / 16 * 16, &pad)) return 0;
    /* params, grads, m and v must all be addressable in bytes */
    if (pad > SIZE_MAX / 16) return 0;
    if (padded) *padded = pad;
    return total;
}

DISTILL_API int distill_config_validate(const distill_config *c, distill_error *err) {
    if (!c) return distill__err(err, "config: NULL");
    if (c->vocab_size < 1 || c->vocab_size > DISTILL__MAX_VOCAB)
        return distill__err(err, "config: vocab_size (%d) must be in [1, %d]", c->vocab_size, DISTILL__MAX_VOCAB);
    if (c->dim < 1 || c->dim > DISTILL__MAX_DIM)
        return distill__err(err, "config: dim (%d) must be in [1, %d]", c->dim, DISTILL__MAX_DIM);
    if (c->n_layers < 1 || c->n_layers > DISTILL__MAX_LAYERS)
        return distill__err(err, "config: n_layers (%d) must be in [1, %d]", c->n_layers, DISTILL__MAX_LAYERS);
    if (c->n_heads < 1 || c->n_heads > c->dim)
        return distill__err(err, "config: n_heads (%d) must be in [1, dim (%d)]", c->n_heads, c->dim);
    if (c->n_kv_heads < 1 || c->n_kv_heads > c->n_heads)
        return distill__err(err, "config: n_kv_heads (%d) must be in [1, n_heads (%d)]", c->n_kv_heads, c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return distill__err(err, "config: n_heads (%d) must be divisible by n_kv_heads (%d)", c->n_heads, c->n_kv_heads);
    if (c->dim % c->n_heads != 0)
        return distill__err(err, "config: dim (%d) must be divisible by n_heads (%d)", c->dim, c->n_heads);
    if ((c->dim / c->n_heads) % 2 != 0)
        return distill__err(err, "config: head size dim/n_heads (%d) must be even for rotary embeddings", c->dim / c->n_heads);
    if (c->hidden_dim < 1 || c->hidden_dim > DISTILL__MAX_HIDDEN)
        return distill__err(err, "config: hidden_dim (%d) must be in [1, %d]", c->hidden_dim, DISTILL__MAX_HIDDEN);
    if (!(c->rope_theta > 1.0f) || !(c->rope_theta < FLT_MAX))
        return distill__err(err, "config: rope_theta (%g) must be a finite number > 1", (double)c->rope_theta);
    if (!(c->norm_eps > 0.0f) || !(c->norm_eps < 1.0f))
        return distill__err(err, "config: norm_eps (%g) must be in (0, 1)", (double)c->norm_eps);
    if (c->qkv_bias != 0 && c->qkv_bias != 1)
        return distill__err(err, "config: qkv_bias (%d) must be 0 or 1", c->qkv_bias);
    if (c->tie_embeddings != 0 && c->tie_embeddings != 1)
        return distill__err(err, "config: tie_embeddings (%d) must be 0 or 1", c->tie_embeddings);
    if (c->scale_residual_init != 0 && c->scale_residual_init != 1)
        return distill__err(err, "config: scale_residual_init (%d) must be 0 or 1", c->scale_residual_init);
    if (!(c->init_std >= 0.0f) || !(c->init_std <= 10.0f))
        return distill__err(err, "config: init_std (%g) must be in [0, 10]", (double)c->init_std);
    if (distill__count_params(c, NULL) == 0)
        return distill__err(err, "config: parameter count overflows (vocab_size %d, dim %d, n_layers %d, hidden_dim %d)",
                            c->vocab_size, c->dim, c->n_layers, c->hidden_dim);
    return 0;
}

/* ===================================================================================== */
/* Level 3: the ops, each forward next to its backward                                    */
/* ===================================================================================== */

/* ---- embedding ----------------------------------------------------------------------
   tokens (N), table (V,C), out (N,C):  out[n] = table[tokens[n]].  A token < 0 marks a
   position that is not part of the sequence (past its row's length): its row is zero.
   backward: dtable[tokens[n]] += dout[n]. Parallel over column blocks, each summing over n
   in order, so repeated tokens accumulate deterministically. */
typedef struct { float *out; const float *table, *dout; const int32_t *tok; int N, C; } distill__emb_ctx;

static void distill__emb_fwd_task(void *p, int64_t b, int64_t e, int th) {
    distill__emb_ctx *c = (distill__emb_ctx *)p;
    int64_t n;
    (void)th;
    for (n = b; n < e; n++) {
        float *o = c->out + (size_t)n * c->C;
        if (c->tok[n] < 0) memset(o, 0, sizeof(float) * (size_t)c->C);
        else memcpy(o, c->table + (size_t)c->tok[n] * c->C, sizeof(float) * (size_t)c->C);
    }
}
DISTILL_API void distill_embedding_forward(float *out, const int32_t *tokens, const float *table, int N, int C) {
    distill__emb_ctx c;
    c.out = out; c.table = table; c.dout = NULL; c.tok = tokens; c.N = N; c.C = C;
    distill_parallel_for(N, 64, distill__emb_fwd_task, &c);
}
static void distill__emb_bwd_task(void *p, int64_t b, int64_t e, int th) {
    distill__emb_ctx *c = (distill__emb_ctx *)p;
    int n;
    (void)th;
    for (n = 0; n < c->N; n++) {
        int64_t i;
        float *d;
        const float *g;
        if (c->tok[n] < 0) continue;
        d = c->out + (size_t)c->tok[n] * c->C;
        g = c->dout + (size_t)n * c->C;
        for (i = b; i < e; i++) d[i] += g[i];
    }
}
DISTILL_API void distill_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int C) {
    distill__emb_ctx c;
    c.out = dtable; c.table = NULL; c.dout = dout; c.tok = tokens; c.N = N; c.C = C;
    distill_parallel_for(C, 32, distill__emb_bwd_task, &c);
}

/* ---- RMSNorm ------------------------------------------------------------------------
   inp (N,C), weight (C), out (N,C), rstd (N):
       rstd = 1 / sqrt(mean_i x_i^2 + eps),    out_i = x_i * rstd * w_i
   backward, with g_i = dout_i * w_i (accumulates into dinp and dweight):
       dx_i += rstd * g_i - x_i * rstd^3 * (sum_j g_j x_j) / C
       dw_i += sum over rows of dout_i * x_i * rstd
   dinp is split by rows, dweight by column blocks (each sums its rows in order). */
typedef struct {
    float *out, *rstd, *dinp, *dweight;
    const float *inp, *weight, *dout, *crstd;
    int C; float eps;
} distill__rms_ctx;

static void distill__rms_fwd_task(void *p, int64_t b, int64_t e, int th) {
    distill__rms_ctx *c = (distill__rms_ctx *)p;
    int64_t n;
    int i, C = c->C;
    (void)th;
    for (n = b; n < e; n++) {
        const float *x = c->inp + (size_t)n * C;
        float *o = c->out + (size_t)n * C;
        float r = 1.0f / sqrtf(distill_vec_dot(x, x, C) / (float)C + c->eps);
        for (i = 0; i < C; i++) o[i] = x[i] * r * c->weight[i];
        if (c->rstd) c->rstd[n] = r;
    }
}
DISTILL_API void distill_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
    distill__rms_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out; c.rstd = rstd; c.inp = inp; c.weight = weight; c.C = C; c.eps = eps;
    distill_parallel_for(N, 16, distill__rms_fwd_task, &c);
}
static void distill__rms_bwd_dx_task(void *p, int64_t b, int64_t e, int th) {
    distill__rms_ctx *c = (distill__rms_ctx *)p;
    int64_t n;
    int i, C = c->C;
    (void)th;
    for (n = b; n < e; n++) {
        const float *x = c->inp + (size_t)n * C, *g = c->dout + (size_t)n * C;
        float *dx = c->dinp + (size_t)n * C;
        float r = c->crstd[n], gx = 0.0f, k;
        for (i = 0; i < C; i++) gx += g[i] * c->weight[i] * x[i];
        k = r * r * r * gx / (float)C;
        for (i = 0; i < C; i++) dx[i] += r * g[i] * c->weight[i] - k * x[i];
    }
}
typedef struct { const distill__rms_ctx *c; int N; } distill__rms_dw_ctx;
static void distill__rms_bwd_dw_task(void *p, int64_t b, int64_t e, int th) {
    const distill__rms_dw_ctx *d = (const distill__rms_dw_ctx *)p;
    const distill__rms_ctx *c = d->c;
    int n;
    int64_t i;
    (void)th;
    for (n = 0; n < d->N; n++) {
        const float *x = c->inp + (size_t)n * c->C, *g = c->dout + (size_t)n * c->C;
        float r = c->crstd[n];
        for (i = b; i < e; i++) c->dweight[i] += g[i] * x[i] * r;
    }
}
DISTILL_API void distill_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                                          const float *weight, const float *rstd, int N, int C) {
    distill__rms_ctx c;
    distill__rms_dw_ctx d;
    memset(&c, 0, sizeof c);
    c.dinp = dinp; c.dweight = dweight; c.dout = dout; c.inp = inp; c.weight = weight; c.crstd = rstd; c.C = C;
    if (dinp) distill_parallel_for(N, 16, distill__rms_bwd_dx_task, &c);
    d.c = &c; d.N = N;
    if (dweight) distill_parallel_for(C, 16, distill__rms_bwd_dw_task, &d);
}

/* ---- RoPE ---------------------------------------------------------------------------
   x (N,nh,hs) in place, pos (N) (NULL: n). For each head, i < hs/2 pairs with j = i + hs/2:
       a = pos * theta^(-2i/hs)
       y_i = x_i cos a - x_j sin a,     y_j = x_j cos a + x_i sin a
   A rotation, so the backward is the transposed rotation (angle -a):
       dx_i = dy_i cos a + dy_j sin a,  dx_j = dy_j cos a - dy_i sin a
   Angles are formed in double (positions up to millions stay accurate). The frequencies
   theta^(-2i/hs) are computed once per task chunk, sin/cos once per (position, i) into a small
   stack table, and the rotation then runs over every head as contiguous loops. Pairs are taken
   in blocks of DISTILL__ROPE_BLOCK so any head size works without allocating. */
#define DISTILL__ROPE_BLOCK 64
typedef struct { float *x; const int32_t *pos; int nh, hs; double theta; float sign; } distill__rope_ctx;

static void distill__rope_task(void *p, int64_t b, int64_t e, int th) {
    const distill__rope_ctx *c = (const distill__rope_ctx *)p;
    double freq[DISTILL__ROPE_BLOCK];
    float cs[DISTILL__ROPE_BLOCK], sn[DISTILL__ROPE_BLOCK];
    int half = c->hs / 2, h, i, i0, nb;
    int64_t n;
    (void)th;
    for (i0 = 0; i0 < half; i0 += nb) {
        nb = half - i0 < DISTILL__ROPE_BLOCK ? half - i0 : DISTILL__ROPE_BLOCK;
        for (i = 0; i < nb; i++) freq[i] = pow(c->theta, -2.0 * (double)(i0 + i) / (double)c->hs);
        for (n = b; n < e; n++) {
            double pos = c->pos ? (double)c->pos[n] : (double)n;
            for (i = 0; i < nb; i++) {
                double a = pos * freq[i];
                cs[i] = (float)cos(a);
                sn[i] = c->sign * (float)sin(a);
            }
            for (h = 0; h < c->nh; h++) {
                float *xi = c->x + ((size_t)n * c->nh + h) * c->hs + i0, *xj = xi + half;
                for (i = 0; i < nb; i++) {
                    float u = xi[i], v = xj[i];
                    xi[i] = u * cs[i] - v * sn[i];
                    xj[i] = v * cs[i] + u * sn[i];
                }
            }
        }
    }
}
DISTILL_API void distill_rope_forward(float *x, const int32_t *pos, int N, int nh, int hs, float theta) {
    distill__rope_ctx c;
    c.x = x; c.pos = pos; c.nh = nh; c.hs = hs; c.theta = theta; c.sign = 1.0f;
    distill_parallel_for(N, 16, distill__rope_task, &c);
}
DISTILL_API void distill_rope_backward(float *dx, const int32_t *pos, int N, int nh, int hs, float theta) {
    distill__rope_ctx c;
    c.x = dx; c.pos = pos; c.nh = nh; c.hs = hs; c.theta = theta; c.sign = -1.0f;
    distill_parallel_for(N, 16, distill__rope_task, &c);
}

/* ---- causal grouped-query attention, flash style ------------------------------------
   q (B,T,NH,HS), k,v (B,T,NKV,HS), out (B,T,NH,HS), lse (B,NH,T). Query head h reads kv
   head g = h / (NH/NKV) (Hugging Face's repeat_kv). Query t of row b sees keys j with
   kstart[b,t] <= j <= t (kstart: start of its packed segment, 0 without packing); positions
   t >= lengths[b] are outside the sequence and get out = 0.
       s_j = q . k_j / sqrt(HS),   p_j = exp(s_j - lse),   lse = log sum_j exp(s_j)
       out = sum_j p_j v_j
   The forward streams over blocks of keys with an online softmax (running max m, running sum
   l, rescaling the accumulator when m grows) and stores only lse: no (T,T) matrix exists.
   backward, with D = dout . out (= sum_j p_j dp_j), recomputing p_j from lse:
       dp_j = dout . v_j,   ds_j = p_j (dp_j - D)
       dq  = sum_j ds_j k_j / sqrt(HS),   dk_j += ds_j q / sqrt(HS),   dv_j += p_j dout
   dq, dk, dv are overwritten. Work is split by (b, kv head), which owns its dk/dv rows and the
   dq rows of its query heads: no two tasks write the same float. */
#define DISTILL__ATT_BLOCK 64
typedef struct {
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *cout, *clse;
    const int *lengths, *kstart;
    int B, T, NH, NKV, HS;
} distill__att_ctx;

static void distill__att_fwd_task(void *p, int64_t b0, int64_t e0, int th) {
    const distill__att_ctx *c = (const distill__att_ctx *)p;
    int T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS), s[DISTILL__ATT_BLOCK];
    int64_t task;
    (void)th;
    for (task = b0; task < e0; task++) {
        int b = (int)(task / NH), h = (int)(task % NH), g = h / rep, t, j0, jj;
        int len = c->lengths ? c->lengths[b] : T;
        for (t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            float *o = c->out + (n * NH + h) * HS;
            const float *qr = c->q + (n * NH + h) * HS;
            float m = -INFINITY, l = 0.0f;
            int ks = c->kstart ? c->kstart[n] : 0;
            memset(o, 0, sizeof(float) * (size_t)HS);
            if (t >= len) { c->lse[((size_t)b * NH + h) * T + t] = 0.0f; continue; }
            for (j0 = ks; j0 <= t; j0 += DISTILL__ATT_BLOCK) {
                int nb = t + 1 - j0 < DISTILL__ATT_BLOCK ? t + 1 - j0 : DISTILL__ATT_BLOCK;
                float mb;
                for (jj = 0; jj < nb; jj++)
                    s[jj] = scale * distill_vec_dot(qr, c->k + (((size_t)b * T + j0 + jj) * NKV + g) * HS, HS);
                mb = distill_vec_max(s, nb);
                if (mb > m) {  /* rescale what was accumulated under the old max */
                    float corr = expf(m - mb);
                    distill_vec_scale(o, corr, HS);
                    l *= corr;
                    m = mb;
                }
                l += distill_vec_exp_sum(s, s, m, nb);
                for (jj = 0; jj < nb; jj++)
                    distill_vec_axpy(o, s[jj], c->v + (((size_t)b * T + j0 + jj) * NKV + g) * HS, HS);
            }
            distill_vec_scale(o, 1.0f / l, HS);
            c->lse[((size_t)b * NH + h) * T + t] = m + logf(l);
        }
    }
}
DISTILL_API void distill_attention_forward(float *out, float *lse, const float *q, const float *k,
                                           const float *v, const int *lengths, const int *kstart,
                                           int B, int T, int NH, int NKV, int HS) {
    distill__att_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out; c.lse = lse; c.q = q; c.k = k; c.v = v; c.lengths = lengths; c.kstart = kstart;
    c.B = B; c.T = T; c.NH = NH; c.NKV = NKV; c.HS = HS;
    distill_parallel_for((int64_t)B * NH, 1, distill__att_fwd_task, &c);
}

static void distill__att_bwd_task(void *p, int64_t b0, int64_t e0, int th) {
    const distill__att_ctx *c = (const distill__att_ctx *)p;
    int T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
    int64_t task;
    (void)th;
    for (task = b0; task < e0; task++) {
        int b = (int)(task / NKV), g = (int)(task % NKV), h, t, j;
        int len = c->lengths ? c->lengths[b] : T;
        for (t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            memset(c->dk + (n * NKV + g) * HS, 0, sizeof(float) * (size_t)HS);
            memset(c->dv + (n * NKV + g) * HS, 0, sizeof(float) * (size_t)HS);
        }
        for (h = g * rep; h < (g + 1) * rep; h++) {
            for (t = 0; t < T; t++) {
                size_t n = (size_t)b * T + t;
                const float *qr = c->q + (n * NH + h) * HS, *go = c->dout + (n * NH + h) * HS;
                float *dq = c->dq + (n * NH + h) * HS;
                float lse, D;
                int ks = c->kstart ? c->kstart[n] : 0;
                memset(dq, 0, sizeof(float) * (size_t)HS);
                if (t >= len) continue;
                lse = c->clse[((size_t)b * NH + h) * T + t];
                D = distill_vec_dot(go, c->cout + (n * NH + h) * HS, HS);
                for (j = ks; j <= t; j++) {
                    size_t kv = (((size_t)b * T + j) * NKV + g) * HS;
                    float pj = expf(scale * distill_vec_dot(qr, c->k + kv, HS) - lse);
                    float ds = pj * (distill_vec_dot(go, c->v + kv, HS) - D) * scale;
                    distill_vec_axpy(c->dv + kv, pj, go, HS);
                    distill_vec_axpy(dq, ds, c->k + kv, HS);
                    distill_vec_axpy(c->dk + kv, ds, qr, HS);
                }
            }
        }
    }
}
DISTILL_API void distill_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                            const float *q, const float *k, const float *v,
                                            const float *out, const float *lse, const int *lengths,
                                            const int *kstart, int B, int T, int NH, int NKV, int HS) {
    distill__att_ctx c;
    memset(&c, 0, sizeof c);
    c.dq = dq; c.dk = dk; c.dv = dv; c.dout = dout; c.q = q; c.k = k; c.v = v; c.cout = out; c.clse = lse;
    c.lengths = lengths; c.kstart = kstart; c.B = B; c.T = T; c.NH = NH; c.NKV = NKV; c.HS = HS;
    distill_parallel_for((int64_t)B * NKV, 1, distill__att_bwd_task, &c);
}

/* ---- SwiGLU -------------------------------------------------------------------------
   gate, up, out (n):  out = silu(gate) * up,  silu(g) = g * sigmoid(g)
   backward (overwrites; dup may alias dout, dgate may not alias gate/up/dout):
       dgate = dout * up * sigmoid(g) * (1 + g * (1 - sigmoid(g)))
       dup   = dout * silu(g)
   Each task hands its chunk to the SIMD kernel (vectorised sigmoid, relative error ~1e-7);
   chunks are fixed by n alone, so the result does not depend on the thread count. */
typedef struct { float *out, *dgate, *dup; const float *gate, *up, *dout; } distill__swiglu_ctx;

static void distill__swiglu_fwd_task(void *p, int64_t b, int64_t e, int th) {
    const distill__swiglu_ctx *c = (const distill__swiglu_ctx *)p;
    (void)th;
    distill_vec_swiglu_forward(c->out + b, c->gate + b, c->up + b, (int)(e - b));
}
DISTILL_API void distill_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    distill__swiglu_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out; c.gate = gate; c.up = up;
    distill_parallel_for((int64_t)n, 4096, distill__swiglu_fwd_task, &c);
}
static void distill__swiglu_bwd_task(void *p, int64_t b, int64_t e, int th) {
    const distill__swiglu_ctx *c = (const distill__swiglu_ctx *)p;
    (void)th;
    distill_vec_swiglu_backward(c->dgate + b, c->dup + b, c->dout + b, c->gate + b, c->up + b, (int)(e - b));
}
DISTILL_API void distill_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                                         const float *up, size_t n) {
    distill__swiglu_ctx c;
    memset(&c, 0, sizeof c);
    c.dgate = dgate; c.dup = dup; c.dout = dout; c.gate = gate; c.up = up;
    distill_parallel_for((int64_t)n, 4096, distill__swiglu_bwd_task, &c);
}

/* ---- weighted cross-entropy, the default head loss ----------------------------------
   For each of the n positions (logits z (V), target y, weight w):
       lse = m + log sum_j exp(z_j - m)   (m = max z)
       loss = lse - z_y,   entropy = lse - sum_j p_j z_j,   p = softmax(z)
       dz_j = grad_scale * w * (p_j - [j == y])
   The logits row is overwritten by its gradient (or by exp(z - m) when no gradient is asked).
   exp is the vectorised one (relative error ~1e-7); the sums are accumulated in double. */
#define DISTILL__CE_EXP_BLOCK 256
DISTILL_API void distill_ce_head_loss(void *ctx, const int64_t *pos, int n, float *z, int V,
                                      const int32_t *targets, const float *weights, float grad_scale,
                                      int compute_grad, distill_stats *acc, int thread) {
    float ex[DISTILL__CE_EXP_BLOCK];
    int i, j, j0, nb;
    (void)ctx; (void)thread;
    for (i = 0; i < n; i++) {
        float *row = z + (size_t)i * V;
        int y = targets[pos[i]], am = 0;
        float w = weights ? weights[pos[i]] : 1.0f;
        float m = distill_vec_max(row, V), zy = row[y];
        double s = 0.0, sz = 0.0, lse;
        for (j = 0; j < V; j++) if (row[j] == m) { am = j; break; }
        /* exps by the SIMD kernel into a small stack block (the block still needs z - m for the
           entropy), then one pass accumulating in double and writing exp(z - m) back */
        for (j0 = 0; j0 < V; j0 += nb) {
            nb = V - j0 < DISTILL__CE_EXP_BLOCK ? V - j0 : DISTILL__CE_EXP_BLOCK;
            distill_vec_exp_sum(ex, row + j0, m, nb);
            for (j = 0; j < nb; j++) {
                s += ex[j];
                sz += (double)ex[j] * (row[j0 + j] - m);
                row[j0 + j] = ex[j];
            }
        }
        lse = (double)m + log(s);
        acc->loss += (double)w * (lse - zy);
        acc->weight_sum += w;
        acc->accuracy += am == y ? (double)w : 0.0;
        acc->entropy += (double)w * (log(s) - sz / s);
        if (compute_grad) {
            distill_vec_scale(row, (float)((double)grad_scale * w / s), V);
            row[y] -= grad_scale * w;
        }
    }
}

/* ===================================================================================== */
/* The model: size table, create/free, init                                               */
/* ===================================================================================== */

/* Private state: activations saved for the backward pass, scratch, and the last batch. */
typedef struct distill__state {
    void *block;           /* the one activation allocation */
    size_t bytes;          /* its size (what distill_model_activation_bytes predicts) */
    size_t cap;            /* max_batch * max_seq */
    size_t head_k;         /* positions per head chunk */
    /* per layer (stride cap*width): */
    float *x, *ln1, *q, *k, *v, *att, *lse, *xmid, *ln2, *gate, *up, *rstd1, *rstd2;
    float *xL, *lnf, *rstdf;
    float *dres, *buf_a, *buf_w;     /* backward scratch; buf_a also holds dlnf */
    float *head_logits, *head_x, *head_dx;
    int32_t *pos, *tok;              /* RoPE positions; tokens with -1 past the length */
    int *kstart, *len;
    int64_t *sup;                    /* flat indices of the positions the loss sees */
    distill_stats *slots;            /* loss-statistics slots of one head chunk */
    double *norm_parts;              /* AdamW: per-block squared-norm partials */
    size_t n_norm_parts;
    /* the last forward */
    int B, T, have_fwd, have_loss, head_grads_done;
    int64_t n_sup;
    distill_batch batch;
    distill_head_loss hl;
    float grad_scale;
} distill__state;

#define DISTILL__CE_BLOCK 4          /* rows per loss-callback call (one statistics slot each) */
#define DISTILL__NORM_BLOCK 65536    /* floats per partial of the gradient norm */

/* Carve `count` elements of `size` bytes, 64-byte aligned, from a running offset; with
   base == NULL only the offset advances (the sizing pass). */
static void *distill__carve(char *base, size_t *off, size_t count, size_t size) {
    void *p = base ? (void *)(base + *off) : NULL;
    *off += (count * size + 63) / 64 * 64;
    return p;
}

/* Lay out (or, with base NULL, measure) the activation block for capacity B*T. */
static size_t distill__layout(distill__state *s, char *base, const distill_config *c, int B, int T) {
    size_t off = 0, BT = (size_t)B * T, L = (size_t)c->n_layers, C = (size_t)c->dim, F = (size_t)c->hidden_dim;
    size_t HS = C / (size_t)c->n_heads, KVD = HS * (size_t)c->n_kv_heads, V = (size_t)c->vocab_size;
    size_t K = BT < DISTILL_HEAD_CHUNK ? BT : DISTILL_HEAD_CHUNK, W = 2 * F > C + 2 * KVD ? 2 * F : C + 2 * KVD;
    s->cap = BT;
    s->head_k = K;
    s->x = (float *)distill__carve(base, &off, L * BT * C, 4);
    s->ln1 = (float *)distill__carve(base, &off, L * BT * C, 4);
    s->q = (float *)distill__carve(base, &off, L * BT * C, 4);
    s->k = (float *)distill__carve(base, &off, L * BT * KVD, 4);
    s->v = (float *)distill__carve(base, &off, L * BT * KVD, 4);
    s->att = (float *)distill__carve(base, &off, L * BT * C, 4);
    s->lse = (float *)distill__carve(base, &off, L * BT * (size_t)c->n_heads, 4);
    s->xmid = (float *)distill__carve(base, &off, L * BT * C, 4);
    s->ln2 = (float *)distill__carve(base, &off, L * BT * C, 4);
    s->gate = (float *)distill__carve(base, &off, L * BT * F, 4);
    s->up = (float *)distill__carve(base, &off, L * BT * F, 4);
    s->rstd1 = (float *)distill__carve(base, &off, L * BT, 4);
    s->rstd2 = (float *)distill__carve(base, &off, L * BT, 4);
    s->xL = (float *)distill__carve(base, &off, BT * C, 4);
    s->lnf = (float *)distill__carve(base, &off, BT * C, 4);
    s->rstdf = (float *)distill__carve(base, &off, BT, 4);
    s->dres = (float *)distill__carve(base, &off, BT * C, 4);
    s->buf_a = (float *)distill__carve(base, &off, BT * C, 4);
    s->buf_w = (float *)distill__carve(base, &off, BT * W, 4);
    s->head_logits = (float *)distill__carve(base, &off, K * V, 4);
    s->head_x = (float *)distill__carve(base, &off, K * C, 4);
    s->head_dx = (float *)distill__carve(base, &off, K * C, 4);
    s->pos = (int32_t *)distill__carve(base, &off, BT, 4);
    s->tok = (int32_t *)distill__carve(base, &off, BT, 4);
    s->kstart = (int *)distill__carve(base, &off, BT, sizeof(int));
    s->len = (int *)distill__carve(base, &off, (size_t)B, sizeof(int));
    s->sup = (int64_t *)distill__carve(base, &off, BT, 8);
    s->slots = (distill_stats *)distill__carve(base, &off, (K + DISTILL__CE_BLOCK - 1) / DISTILL__CE_BLOCK, sizeof(distill_stats));
    return off;
}

DISTILL_API size_t distill_model_activation_bytes(const distill_config *c, int B, int T) {
    double BT = (double)B * T, L = c->n_layers, C = c->dim, F = c->hidden_dim, V = c->vocab_size;
    double NH = c->n_heads, HS = C / NH, KVD = HS * c->n_kv_heads;
    double K = BT < DISTILL_HEAD_CHUNK ? BT : DISTILL_HEAD_CHUNK;
    double W = 2 * F > C + 2 * KVD ? 2 * F : C + 2 * KVD;
    double floats = L * (BT * (6 * C + 2 * KVD + 2 * F + 2) + B * NH * T)
                  + BT * (2 * C + 1)
                  + BT * (2 * C + W)
                  + K * (V + 2 * C);
    double bytes = 4 * floats + 20 * BT + 4.0 * B + (double)sizeof(distill_stats) * ceil(K / DISTILL__CE_BLOCK);
    return bytes >= (double)SIZE_MAX ? SIZE_MAX : (size_t)bytes;
}

/* Fill the size table (names, shapes, offsets, decay flags) and the views into params. */
static int distill__build_table(distill_model *m, distill_error *err) {
    const distill_config *c = &m->cfg;
    int C = c->dim, V = c->vocab_size, F = c->hidden_dim, L = c->n_layers, l;
    int HS = C / c->n_heads, QD = HS * c->n_heads, KVD = HS * c->n_kv_heads;
    int cap = 2 + L * (c->qkv_bias ? 12 : 9) + 1, n = 0;
    size_t off = 0;
    m->tensors = (distill_tensor_info *)DISTILL_MALLOC(sizeof(distill_tensor_info) * (size_t)cap);
    m->layers = (distill_layer_params *)DISTILL_MALLOC(sizeof(distill_layer_params) * (size_t)L);
    if (!m->tensors || !m->layers) return distill__err(err, "distill_model_create: out of memory for the size table");
    memset(m->layers, 0, sizeof(distill_layer_params) * (size_t)L);
#define DISTILL__T(nm_fmt, lay, d0, d1, dec)                                              \
    do {                                                                                   \
        distill_tensor_info *ti = &m->tensors[n++];                                       \
        memset(ti, 0, sizeof *ti);                                                         \
        snprintf(ti->name, sizeof ti->name, nm_fmt, lay);                                  \
        ti->ndim = (d1) > 0 ? 2 : 1;                                                       \
        ti->shape[0] = (d0); ti->shape[1] = (d1) > 0 ? (d1) : 0;                          \
        ti->numel = (size_t)(d0) * (size_t)((d1) > 0 ? (d1) : 1);                         \
        ti->offset = off; off += (ti->numel + 15) / 16 * 16;                              \
        ti->decay = (dec);                                                                 \
    } while (0)
    DISTILL__T("model.embed_tokens.weight%.0d", 0, V, C, 1);
    for (l = 0; l < L; l++) {
        DISTILL__T("model.layers.%d.input_layernorm.weight", l, C, 0, 0);
        DISTILL__T("model.layers.%d.self_attn.q_proj.weight", l, QD, C, 1);
        if (c->qkv_bias) DISTILL__T("model.layers.%d.self_attn.q_proj.bias", l, QD, 0, 0);
        DISTILL__T("model.layers.%d.self_attn.k_proj.weight", l, KVD, C, 1);
        if (c->qkv_bias) DISTILL__T("model.layers.%d.self_attn.k_proj.bias", l, KVD, 0, 0);
        DISTILL__T("model.layers.%d.self_attn.v_proj.weight", l, KVD, C, 1);
        if (c->qkv_bias) DISTILL__T("model.layers.%d.self_attn.v_proj.bias", l, KVD, 0, 0);
        DISTILL__T("model.layers.%d.self_attn.o_proj.weight", l, C, QD, 1);
        DISTILL__T("model.layers.%d.post_attention_layernorm.weight", l, C, 0, 0);
        DISTILL__T("model.layers.%d.mlp.gate_proj.weight", l, F, C, 1);
        DISTILL__T("model.layers.%d.mlp.up_proj.weight", l, F, C, 1);
        DISTILL__T("model.layers.%d.mlp.down_proj.weight", l, C, F, 1);
    }
    DISTILL__T("model.norm.weight%.0d", 0, C, 0, 0);
    if (!c->tie_embeddings) DISTILL__T("lm_head.weight%.0d", 0, V, C, 1);
#undef DISTILL__T
    m->n_tensors = n;
    m->num_floats = off;
    m->num_params = 0;
    for (l = 0; l < n; l++) m->num_params += m->tensors[l].numel;
    return 0;
}

/* Point tok_emb, layers[], final_norm, lm_head into params (by walking the table in order). */
static void distill__bind_views(distill_model *m) {
    const distill_config *c = &m->cfg;
    int i = 0, l;
    m->tok_emb = m->params + m->tensors[i++].offset;
    for (l = 0; l < c->n_layers; l++) {
        distill_layer_params *p = &m->layers[l];
        p->attn_norm = m->params + m->tensors[i++].offset;
        p->wq = m->params + m->tensors[i++].offset;
        if (c->qkv_bias) p->bq = m->params + m->tensors[i++].offset;
        p->wk = m->params + m->tensors[i++].offset;
        if (c->qkv_bias) p->bk = m->params + m->tensors[i++].offset;
        p->wv = m->params + m->tensors[i++].offset;
        if (c->qkv_bias) p->bv = m->params + m->tensors[i++].offset;
        p->wo = m->params + m->tensors[i++].offset;
        p->ffn_norm = m->params + m->tensors[i++].offset;
        p->w_gate = m->params + m->tensors[i++].offset;
        p->w_up = m->params + m->tensors[i++].offset;
        p->w_down = m->params + m->tensors[i++].offset;
    }
    m->final_norm = m->params + m->tensors[i++].offset;
    m->lm_head = c->tie_embeddings ? m->tok_emb : m->params + m->tensors[i++].offset;
}

DISTILL_API int distill_model_find_tensor(const distill_model *m, const char *name) {
    int i;
    for (i = 0; i < m->n_tensors; i++) if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

/* Initialisation: matrices ~ normal(0, init_std) drawn in table order from one xoshiro256**
   stream seeded with `seed`; o_proj and down_proj (the projections that write into the residual
   stream) use init_std / sqrt(2L) when scale_residual_init; norms are 1, biases 0. */
DISTILL_API void distill_model_init_params(distill_model *m, uint64_t seed) {
    distill_rng rng;
    int i;
    float rstd = m->cfg.init_std / sqrtf(2.0f * (float)m->cfg.n_layers);
    distill_rng_seed(&rng, seed);
    memset(m->params, 0, sizeof(float) * m->num_floats);
    for (i = 0; i < m->n_tensors; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        float *p = m->params + t->offset, std = m->cfg.init_std;
        size_t j;
        if (t->ndim == 1) {
            if (strstr(t->name, "norm")) for (j = 0; j < t->numel; j++) p[j] = 1.0f;
            continue;
        }
        if (m->cfg.scale_residual_init && (strstr(t->name, "o_proj") || strstr(t->name, "down_proj"))) std = rstd;
        for (j = 0; j < t->numel; j++) p[j] = (float)(distill_rng_normal(&rng) * std);
    }
}

DISTILL_API void distill_model_free(distill_model *m) {
    distill__state *s;
    if (!m) return;
    s = (distill__state *)m->internal;
    if (s) {
        distill_free_aligned(s->block);
        DISTILL_FREE(s->norm_parts);
        DISTILL_FREE(s);
    }
    distill_free_aligned(m->params);
    distill_free_aligned(m->grads);
    distill_free_aligned(m->m);
    distill_free_aligned(m->v);
    DISTILL_FREE(m->tensors);
    DISTILL_FREE(m->layers);
    DISTILL_FREE(m);
}

DISTILL_API distill_model *distill_model_create(const distill_config *cfg, int max_batch, int max_seq,
                                                uint64_t seed, distill_error *err) {
    distill_model *m;
    distill__state *s;
    size_t bytes, pbytes;
    if (distill_config_validate(cfg, err) != 0) return NULL;
    if (max_batch < 1 || max_seq < 1 || (size_t)max_batch * (size_t)max_seq > (size_t)INT_MAX / 2) {
        distill__err(err, "distill_model_create: max_batch (%d) and max_seq (%d) must be >= 1 with a product below 2^30",
                     max_batch, max_seq);
        return NULL;
    }
    m = (distill_model *)DISTILL_MALLOC(sizeof *m);
    if (!m) { distill__err(err, "distill_model_create: out of memory"); return NULL; }
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->max_batch = max_batch;
    m->max_seq = max_seq;
    s = (distill__state *)DISTILL_MALLOC(sizeof *s);
    if (!s) { distill__err(err, "distill_model_create: out of memory"); DISTILL_FREE(m); return NULL; }
    memset(s, 0, sizeof *s);
    m->internal = s;
    if (distill__build_table(m, err) != 0) { distill_model_free(m); return NULL; }
    pbytes = m->num_floats * sizeof(float);
    m->params = (float *)distill_alloc_aligned(pbytes, 64);
    m->grads = (float *)distill_alloc_aligned(pbytes, 64);
    if (!m->params || !m->grads) {
        distill__err(err, "distill_model_create: out of memory for %zu parameters (%zu bytes each for params and grads)",
                     m->num_params, pbytes);
        distill_model_free(m);
        return NULL;
    }
    s->n_norm_parts = (m->num_floats + DISTILL__NORM_BLOCK - 1) / DISTILL__NORM_BLOCK;
    s->norm_parts = (double *)DISTILL_MALLOC(sizeof(double) * s->n_norm_parts);
    bytes = distill__layout(s, NULL, cfg, max_batch, max_seq);
    s->block = distill_alloc_aligned(bytes, 64);
    if (!s->block || !s->norm_parts) {
        distill__err(err, "distill_model_create: out of memory for %zu bytes of activations (max_batch %d, max_seq %d)",
                     bytes, max_batch, max_seq);
        distill_model_free(m);
        return NULL;
    }
    s->bytes = bytes;
    distill__layout(s, (char *)s->block, cfg, max_batch, max_seq);
    distill__bind_views(m);
    distill_model_init_params(m, seed);
    return m;
}

DISTILL_API void distill_model_zero_grad(distill_model *m) {
    memset(m->grads, 0, sizeof(float) * m->num_floats);
}

/* The gradient buffer slice that mirrors a parameter view. */
static float *distill__grad_of(distill_model *m, const float *p) {
    return p ? m->grads + (p - m->params) : NULL;
}

/* ===================================================================================== */
/* Forward                                                                                */
/* ===================================================================================== */

/* x += y over n floats, in row blocks. */
typedef struct { float *x; const float *y; int C; } distill__add_ctx;
static void distill__add_task(void *p, int64_t b, int64_t e, int th) {
    const distill__add_ctx *c = (const distill__add_ctx *)p;
    (void)th;
    distill_vec_axpy(c->x + (size_t)b * c->C, 1.0f, c->y + (size_t)b * c->C, (int)(e - b) * c->C);
}
static void distill__residual_add(float *x, const float *y, int N, int C) {
    distill__add_ctx c;
    c.x = x; c.y = y; c.C = C;
    distill_parallel_for(N, 16, distill__add_task, &c);
}

/* Check the batch against the model and derive lengths, RoPE positions, segment starts,
   masked tokens and the list of supervised positions. */
static int distill__prepare_batch(distill_model *m, const distill_batch *bt, distill_error *err) {
    distill__state *s = (distill__state *)m->internal;
    int B = bt->B, T = bt->T, b, t, V = m->cfg.vocab_size;
    if (B < 1 || B > m->max_batch) return distill__err(err, "batch: B (%d) must be in [1, max_batch (%d)]", B, m->max_batch);
    if (T < 1 || T > m->max_seq) return distill__err(err, "batch: T (%d) must be in [1, max_seq (%d)]", T, m->max_seq);
    if (!bt->tokens) return distill__err(err, "batch: tokens is NULL");
    s->n_sup = 0;
    for (b = 0; b < B; b++) {
        int len = bt->lengths ? bt->lengths[b] : T;
        if (len < 0 || len > T) return distill__err(err, "batch: lengths[%d] (%d) must be in [0, T (%d)]", b, len, T);
        s->len[b] = len;
        for (t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            if (t >= len) { s->tok[n] = -1; s->pos[n] = 0; s->kstart[n] = t; continue; }
            if (bt->tokens[n] < 0 || bt->tokens[n] >= V)
                return distill__err(err, "batch: tokens[%d][%d] (%d) is outside the vocabulary [0, %d)", b, t, (int)bt->tokens[n], V);
            s->tok[n] = bt->tokens[n];
            s->pos[n] = bt->positions ? bt->positions[n] : t;
            if (s->pos[n] < 0) return distill__err(err, "batch: positions[%d][%d] (%d) is negative", b, t, (int)s->pos[n]);
            /* a segment is a maximal run of equal ids: keys start where the run starts */
            s->kstart[n] = (bt->segments && t > 0 && bt->segments[n] == bt->segments[n - 1]) ? s->kstart[n - 1]
                         : (bt->segments ? t : 0);
            if (bt->targets) {
                int32_t y = bt->targets[n];
                float w = bt->weights ? bt->weights[n] : 1.0f;
                if (y >= V) return distill__err(err, "batch: targets[%d][%d] (%d) is outside the vocabulary [0, %d)", b, t, (int)y, V);
                if (!(w >= 0.0f && w < FLT_MAX)) return distill__err(err, "batch: weights[%d][%d] (%g) must be finite and >= 0", b, t, (double)w);
                if (y >= 0 && w > 0.0f) s->sup[s->n_sup++] = (int64_t)n;
            }
        }
    }
    return 0;
}

/* The fused LM head over the supervised positions, DISTILL_HEAD_CHUNK at a time:
   gather their final-norm outputs, logits = x W^T (K,V), hand them to the loss (which may turn
   them into dlogits), then dx = dlogits W (scattered into dlnf) and dW += dlogits^T x. */
typedef struct {
    const distill_head_loss *hl;
    const distill_batch *bt;
    const int64_t *pos;
    float *logits;
    distill_stats *slots;
    int n, V, compute_grad;
    float grad_scale;
} distill__head_ctx;

static void distill__head_task(void *p, int64_t b, int64_t e, int th) {
    const distill__head_ctx *c = (const distill__head_ctx *)p;
    int64_t blk;
    for (blk = b; blk < e; blk++) {
        int r0 = (int)blk * DISTILL__CE_BLOCK, nr = c->n - r0 < DISTILL__CE_BLOCK ? c->n - r0 : DISTILL__CE_BLOCK;
        memset(&c->slots[blk], 0, sizeof(distill_stats));
        c->hl->fn(c->hl->ctx, c->pos + r0, nr, c->logits + (size_t)r0 * c->V, c->V, c->bt->targets,
                  c->bt->weights, c->grad_scale, c->compute_grad, &c->slots[blk], th);
    }
}

static void distill__head(distill_model *m, int compute_grad, distill_stats *acc) {
    distill__state *s = (distill__state *)m->internal;
    int C = m->cfg.dim, V = m->cfg.vocab_size;
    int64_t c0;
    float *dW = compute_grad ? distill__grad_of(m, m->lm_head) : NULL;
    if (compute_grad) memset(s->buf_a, 0, sizeof(float) * (size_t)s->B * s->T * C);
    for (c0 = 0; c0 < s->n_sup; c0 += (int64_t)s->head_k) {
        distill__head_ctx hc;
        int n = s->n_sup - c0 < (int64_t)s->head_k ? (int)(s->n_sup - c0) : (int)s->head_k, i, nb;
        for (i = 0; i < n; i++)
            memcpy(s->head_x + (size_t)i * C, s->lnf + (size_t)s->sup[c0 + i] * C, sizeof(float) * (size_t)C);
        distill_matmul_forward(s->head_logits, s->head_x, m->lm_head, NULL, n, C, V);
        hc.hl = &s->hl; hc.bt = &s->batch; hc.pos = s->sup + c0; hc.logits = s->head_logits;
        hc.slots = s->slots; hc.n = n; hc.V = V; hc.compute_grad = compute_grad; hc.grad_scale = s->grad_scale;
        nb = (n + DISTILL__CE_BLOCK - 1) / DISTILL__CE_BLOCK;
        distill_parallel_for(nb, 1, distill__head_task, &hc);
        for (i = 0; i < nb; i++) {   /* fixed order: identical for any thread count */
            acc->loss += s->slots[i].loss;
            acc->weight_sum += s->slots[i].weight_sum;
            acc->accuracy += s->slots[i].accuracy;
            acc->entropy += s->slots[i].entropy;
        }
        if (compute_grad) {
            memset(s->head_dx, 0, sizeof(float) * (size_t)n * C);
            distill_matmul_backward(s->head_dx, dW, NULL, s->head_logits, s->head_x, m->lm_head, n, C, V);
            for (i = 0; i < n; i++)
                memcpy(s->buf_a + (size_t)s->sup[c0 + i] * C, s->head_dx + (size_t)i * C, sizeof(float) * (size_t)C);
        }
    }
}

static int distill__forward(distill_model *m, const distill_batch *bt, const distill_head_loss *hl,
                            float grad_scale, int fuse_head_grad, distill_stats *stats, distill_error *err) {
    distill__state *s = (distill__state *)m->internal;
    const distill_config *c = &m->cfg;
    int B, T, C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = C / NH, KVD = NKV * HS, l;
    size_t BT, cap = s->cap;
    int64_t ntok = 0;
    distill_stats acc;
    s->have_fwd = 0;
    s->have_loss = 0;
    if (!bt) return distill__err(err, "distill_model_forward: batch is NULL");
    if (distill__prepare_batch(m, bt, err) != 0) return -1;
    B = bt->B; T = bt->T; BT = (size_t)B * T;
    s->B = B; s->T = T; s->batch = *bt;

    distill_embedding_forward(s->x, s->tok, m->tok_emb, (int)BT, C);
    for (l = 0; l < c->n_layers; l++) {
        const distill_layer_params *p = &m->layers[l];
        float *x = s->x + l * cap * C, *ln1 = s->ln1 + l * cap * C, *q = s->q + l * cap * C;
        float *k = s->k + l * cap * KVD, *v = s->v + l * cap * KVD, *att = s->att + l * cap * C;
        float *lse = s->lse + l * cap * NH, *xmid = s->xmid + l * cap * C, *ln2 = s->ln2 + l * cap * C;
        float *gate = s->gate + l * cap * F, *up = s->up + l * cap * F;
        float *xout = l + 1 < c->n_layers ? s->x + (l + 1) * cap * C : s->xL;
        /* attention block */
        distill_rmsnorm_forward(ln1, s->rstd1 + l * cap, x, p->attn_norm, (int)BT, C, c->norm_eps);
        distill_matmul_forward(q, ln1, p->wq, p->bq, (int)BT, C, NH * HS);
        distill_matmul_forward(k, ln1, p->wk, p->bk, (int)BT, C, KVD);
        distill_matmul_forward(v, ln1, p->wv, p->bv, (int)BT, C, KVD);
        distill_rope_forward(q, s->pos, (int)BT, NH, HS, c->rope_theta);
        distill_rope_forward(k, s->pos, (int)BT, NKV, HS, c->rope_theta);
        /* the blocked kernel of 10_kernels: same contract and math as distill_attention_forward
           above (the readable version, checked against finite differences in the tests) */
        distill_flash_attention_forward(att, lse, q, k, v, s->len, s->kstart, B, T, NH, NKV, HS);
        distill_matmul_forward(xmid, att, p->wo, NULL, (int)BT, NH * HS, C);
        distill__residual_add(xmid, x, (int)BT, C);
        /* MLP block; h = silu(gate)*up lives in scratch (recomputed in the backward) */
        distill_rmsnorm_forward(ln2, s->rstd2 + l * cap, xmid, p->ffn_norm, (int)BT, C, c->norm_eps);
        distill_matmul_forward(gate, ln2, p->w_gate, NULL, (int)BT, C, F);
        distill_matmul_forward(up, ln2, p->w_up, NULL, (int)BT, C, F);
        distill_swiglu_forward(s->buf_w, gate, up, BT * F);
        distill_matmul_forward(xout, s->buf_w, p->w_down, NULL, (int)BT, F, C);
        distill__residual_add(xout, xmid, (int)BT, C);
    }
    distill_rmsnorm_forward(s->lnf, s->rstdf, s->xL, m->final_norm, (int)BT, C, c->norm_eps);
    s->have_fwd = 1;

    memset(&acc, 0, sizeof acc);
    for (l = 0; l < B; l++) ntok += s->len[l];
    acc.tokens = ntok;
    s->head_grads_done = 0;
    if (bt->targets) {
        double wsum = 0.0;
        int64_t i;
        for (i = 0; i < s->n_sup; i++) wsum += bt->weights ? bt->weights[s->sup[i]] : 1.0;
        s->hl.fn = distill_ce_head_loss;
        s->hl.ctx = NULL;
        if (hl && hl->fn) s->hl = *hl;
        s->grad_scale = grad_scale > 0.0f ? grad_scale : (wsum > 0.0 ? (float)(1.0 / wsum) : 0.0f);
        distill__head(m, fuse_head_grad, &acc);
        s->head_grads_done = fuse_head_grad;
        s->have_loss = 1;
        if (acc.weight_sum > 0.0) {
            acc.accuracy /= acc.weight_sum;
            acc.entropy /= acc.weight_sum;
        }
        acc.loss *= (double)s->grad_scale;
    }
    if (stats) *stats = acc;
    return 0;
}

DISTILL_API int distill_model_forward(distill_model *m, const distill_batch *batch, const distill_head_loss *head_loss,
                                      float grad_scale, distill_stats *stats, distill_error *err) {
    return distill__forward(m, batch, head_loss, grad_scale, 0, stats, err);
}

DISTILL_API void distill_model_logits(distill_model *m, int b, float *out) {
    distill__state *s = (distill__state *)m->internal;
    if (!s->have_fwd || b < 0 || b >= s->B) {
        memset(out, 0, sizeof(float) * (size_t)(s->have_fwd ? s->T : 0) * m->cfg.vocab_size);
        return;
    }
    distill_matmul_forward(out, s->lnf + (size_t)b * s->T * m->cfg.dim, m->lm_head, NULL, s->T, m->cfg.dim,
                           m->cfg.vocab_size);
}

/* ===================================================================================== */
/* Backward: the forward in reverse, accumulating into m->grads                           */
/* ===================================================================================== */

DISTILL_API void distill_model_backward(distill_model *m) {
    distill__state *s = (distill__state *)m->internal;
    const distill_config *c = &m->cfg;
    int C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = C / NH, KVD = NKV * HS, l;
    int B = s->B, T = s->T;
    size_t BT = (size_t)B * T, cap = s->cap;
    float *dres = s->dres, *A = s->buf_a;
    if (!s->have_fwd || !s->have_loss) return;
    if (!s->head_grads_done) {   /* recompute the logits chunk by chunk, this time with dlogits */
        distill_stats dummy;
        memset(&dummy, 0, sizeof dummy);
        distill__head(m, 1, &dummy);
    }
    s->head_grads_done = 0;   /* a second backward would recompute rather than reuse */
    /* A holds dlnf (BT,C): rows of unsupervised positions are zero */
    memset(dres, 0, sizeof(float) * BT * C);
    distill_rmsnorm_backward(dres, distill__grad_of(m, m->final_norm), A, s->xL, m->final_norm, s->rstdf, (int)BT, C);
    for (l = c->n_layers - 1; l >= 0; l--) {
        const distill_layer_params *p = &m->layers[l];
        distill_layer_params g;
        float *x = s->x + l * cap * C, *ln1 = s->ln1 + l * cap * C, *q = s->q + l * cap * C;
        float *k = s->k + l * cap * KVD, *v = s->v + l * cap * KVD, *att = s->att + l * cap * C;
        float *lse = s->lse + l * cap * NH, *xmid = s->xmid + l * cap * C, *ln2 = s->ln2 + l * cap * C;
        float *gate = s->gate + l * cap * F, *up = s->up + l * cap * F;
        float *H = s->buf_w, *DH = s->buf_w + BT * F;
        float *DQ = s->buf_w, *DK = s->buf_w + BT * C, *DV = DK + BT * KVD;
        g.attn_norm = distill__grad_of(m, p->attn_norm); g.ffn_norm = distill__grad_of(m, p->ffn_norm);
        g.wq = distill__grad_of(m, p->wq); g.wk = distill__grad_of(m, p->wk); g.wv = distill__grad_of(m, p->wv);
        g.wo = distill__grad_of(m, p->wo); g.bq = distill__grad_of(m, p->bq); g.bk = distill__grad_of(m, p->bk);
        g.bv = distill__grad_of(m, p->bv); g.w_gate = distill__grad_of(m, p->w_gate);
        g.w_up = distill__grad_of(m, p->w_up); g.w_down = distill__grad_of(m, p->w_down);
        /* MLP: dres is d(x_l+1); x_l+1 = xmid + down(h) */
        distill_swiglu_forward(H, gate, up, BT * F);
        memset(DH, 0, sizeof(float) * BT * F);
        distill_matmul_backward(DH, g.w_down, NULL, dres, H, p->w_down, (int)BT, F, C);
        distill_swiglu_backward(H, DH, DH, gate, up, BT * F);   /* H := dgate, DH := dup */
        memset(A, 0, sizeof(float) * BT * C);
        distill_matmul_backward(A, g.w_gate, NULL, H, ln2, p->w_gate, (int)BT, C, F);
        distill_matmul_backward(A, g.w_up, NULL, DH, ln2, p->w_up, (int)BT, C, F);
        distill_rmsnorm_backward(dres, g.ffn_norm, A, xmid, p->ffn_norm, s->rstd2 + l * cap, (int)BT, C);
        /* attention: dres is now d(xmid); xmid = x + o(att) */
        memset(A, 0, sizeof(float) * BT * C);
        distill_matmul_backward(A, g.wo, NULL, dres, att, p->wo, (int)BT, NH * HS, C);
        distill_flash_attention_backward(DQ, DK, DV, A, q, k, v, att, lse, s->len, s->kstart, B, T, NH, NKV, HS);
        distill_rope_backward(DQ, s->pos, (int)BT, NH, HS, c->rope_theta);
        distill_rope_backward(DK, s->pos, (int)BT, NKV, HS, c->rope_theta);
        memset(A, 0, sizeof(float) * BT * C);
        distill_matmul_backward(A, g.wq, g.bq, DQ, ln1, p->wq, (int)BT, C, NH * HS);
        distill_matmul_backward(A, g.wk, g.bk, DK, ln1, p->wk, (int)BT, C, KVD);
        distill_matmul_backward(A, g.wv, g.bv, DV, ln1, p->wv, (int)BT, C, KVD);
        distill_rmsnorm_backward(dres, g.attn_norm, A, x, p->attn_norm, s->rstd1 + l * cap, (int)BT, C);
    }
    distill_embedding_backward(distill__grad_of(m, m->tok_emb), dres, s->tok, (int)BT, C);
}

DISTILL_API int distill_model_forward_backward(distill_model *m, const distill_batch *batch,
                                               const distill_head_loss *head_loss, float grad_scale,
                                               distill_stats *stats, distill_error *err) {
    if (distill__forward(m, batch, head_loss, grad_scale, 1, stats, err) != 0) return -1;
    distill_model_backward(m);
    return 0;
}

/* ===================================================================================== */
/* AdamW and learning-rate schedules                                                      */
/* ===================================================================================== */

DISTILL_API distill_optim_config distill_optim_default(void) {
    distill_optim_config o;
    memset(&o, 0, sizeof o);
    o.lr = 3e-4f;
    o.beta1 = 0.9f;
    o.beta2 = 0.95f;
    o.eps = 1e-8f;
    o.weight_decay = 0.1f;
    o.decay_embeddings = 1;
    o.grad_clip = 1.0f;
    o.schedule = DISTILL_SCHED_COSINE;
    o.warmup_steps = 0;
    o.warmup_ratio = 0.0f;
    o.total_steps = 0;      /* 0: no decay after warmup until the trainer sets the run length */
    o.min_lr_ratio = 0.1f;
    return o;
}

DISTILL_API int distill_optim_validate(const distill_optim_config *o, distill_error *err) {
    if (!o) return distill__err(err, "optimizer: NULL");
    if (!(o->lr >= 0.0f && o->lr < 1e3f)) return distill__err(err, "optimizer: lr (%g) must be in [0, 1000)", (double)o->lr);
    if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f)) return distill__err(err, "optimizer: beta1 (%g) must be in [0, 1)", (double)o->beta1);
    if (!(o->beta2 >= 0.0f && o->beta2 < 1.0f)) return distill__err(err, "optimizer: beta2 (%g) must be in [0, 1)", (double)o->beta2);
    if (!(o->eps > 0.0f && o->eps < 1.0f)) return distill__err(err, "optimizer: eps (%g) must be in (0, 1)", (double)o->eps);
    if (!(o->weight_decay >= 0.0f && o->weight_decay < 1e3f))
        return distill__err(err, "optimizer: weight_decay (%g) must be in [0, 1000)", (double)o->weight_decay);
    if (o->decay_embeddings != 0 && o->decay_embeddings != 1)
        return distill__err(err, "optimizer: decay_embeddings (%d) must be 0 or 1", o->decay_embeddings);
    if (!(o->grad_clip == o->grad_clip) || o->grad_clip >= FLT_MAX)
        return distill__err(err, "optimizer: grad_clip (%g) must be finite (<= 0 disables)", (double)o->grad_clip);
    if (o->schedule != DISTILL_SCHED_CONSTANT && o->schedule != DISTILL_SCHED_LINEAR && o->schedule != DISTILL_SCHED_COSINE)
        return distill__err(err, "optimizer: schedule (%d) must be constant, linear or cosine", (int)o->schedule);
    if (o->warmup_steps < 0 && !(o->warmup_ratio >= 0.0f && o->warmup_ratio <= 1.0f))
        return distill__err(err, "optimizer: warmup_ratio (%g) must be in [0, 1]", (double)o->warmup_ratio);
    if (o->total_steps < 0) return distill__err(err, "optimizer: total_steps (%lld) must be >= 0", (long long)o->total_steps);
    if (!(o->min_lr_ratio >= 0.0f && o->min_lr_ratio <= 1.0f))
        return distill__err(err, "optimizer: min_lr_ratio (%g) must be in [0, 1]", (double)o->min_lr_ratio);
    return 0;
}

/* lr(step), step from 0. W warmup steps (warmup_steps, or warmup_ratio * total_steps when
   warmup_steps < 0): lr * (step+1)/W for step < W, so the first step already moves and step
   W-1 reaches the peak. After warmup, progress p = (step - W) / (total_steps - W) in [0, 1]
   and lr * (floor + (1 - floor) * d(p)) with d = 1 (constant), 1 - p (linear) or
   (1 + cos(pi p)) / 2 (cosine), floor = min_lr_ratio. total_steps 0: no decay. */
DISTILL_API float distill_lr_at(const distill_optim_config *o, int64_t step) {
    int64_t W = o->warmup_steps >= 0 ? o->warmup_steps : (int64_t)floor((double)o->warmup_ratio * (double)o->total_steps + 0.5);
    double d = 1.0, p, fl = o->min_lr_ratio;
    if (step < 0) step = 0;
    if (step < W) return (float)((double)o->lr * (double)(step + 1) / (double)W);
    if (o->total_steps <= 0 || o->schedule == DISTILL_SCHED_CONSTANT) return o->lr;
    p = o->total_steps > W ? (double)(step - W) / (double)(o->total_steps - W) : 1.0;
    if (p > 1.0) p = 1.0;
    if (o->schedule == DISTILL_SCHED_LINEAR) d = 1.0 - p;
    else d = 0.5 * (1.0 + cos(M_PI * p));
    return (float)((double)o->lr * (fl + (1.0 - fl) * d));
}

typedef struct { const float *g; double *parts; size_t n; } distill__norm_ctx;
static void distill__norm_task(void *p, int64_t b, int64_t e, int th) {
    const distill__norm_ctx *c = (const distill__norm_ctx *)p;
    int64_t blk;
    (void)th;
    for (blk = b; blk < e; blk++) {
        size_t i0 = (size_t)blk * DISTILL__NORM_BLOCK, i1 = i0 + DISTILL__NORM_BLOCK, i;
        double s = 0.0;
        if (i1 > c->n) i1 = c->n;
        for (i = i0; i < i1; i++) s += (double)c->g[i] * c->g[i];
        c->parts[blk] = s;
    }
}

/* AdamW (Loshchilov & Hutter), the PyTorch formulation:
       g = grad * clip,  m = b1 m + (1-b1) g,  v = b2 v + (1-b2) g^2
       p -= lr * wd * p                               (decoupled decay, flagged tensors only)
       p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc_i = 1 - b_i^(step+1) */
typedef struct {
    float *p, *g, *m, *v;
    float b1, b2, eps, step_size, decay_mul, clip, inv_sqrt_bc2;
} distill__adam_ctx;
static void distill__adam_task(void *p, int64_t b, int64_t e, int th) {
    const distill__adam_ctx *c = (const distill__adam_ctx *)p;
    int64_t i;
    (void)th;
    for (i = b; i < e; i++) {
        float g = c->g[i] * c->clip;
        float mi = c->b1 * c->m[i] + (1.0f - c->b1) * g;
        float vi = c->b2 * c->v[i] + (1.0f - c->b2) * g * g;
        c->m[i] = mi;
        c->v[i] = vi;
        c->p[i] = c->p[i] * c->decay_mul - c->step_size * mi / (sqrtf(vi) * c->inv_sqrt_bc2 + c->eps);
    }
}

DISTILL_API double distill_adamw_step(distill_model *m, const distill_optim_config *o, int64_t step) {
    distill__state *s = (distill__state *)m->internal;
    distill__norm_ctx nc;
    double norm2 = 0.0, norm, bc1, bc2, lr;
    float clip = 1.0f;
    size_t i;
    int t;
    if (!m->m || !m->v) {
        if (!m->m) m->m = (float *)distill_alloc_aligned(sizeof(float) * m->num_floats, 64);
        if (!m->v) m->v = (float *)distill_alloc_aligned(sizeof(float) * m->num_floats, 64);
        if (!m->m || !m->v) return -1.0;
    }
    nc.g = m->grads; nc.parts = s->norm_parts; nc.n = m->num_floats;
    distill_parallel_for((int64_t)s->n_norm_parts, 1, distill__norm_task, &nc);
    for (i = 0; i < s->n_norm_parts; i++) norm2 += s->norm_parts[i];
    norm = sqrt(norm2);
    if (!(norm < HUGE_VAL)) return norm;   /* inf/nan gradient: skip the update, report it */
    if (o->grad_clip > 0.0f && norm > o->grad_clip) clip = (float)(o->grad_clip / (norm + 1e-6));
    if (step < 0) step = 0;
    bc1 = 1.0 - pow((double)o->beta1, (double)(step + 1));
    bc2 = 1.0 - pow((double)o->beta2, (double)(step + 1));
    lr = distill_lr_at(o, step);
    for (t = 0; t < m->n_tensors; t++) {
        const distill_tensor_info *ti = &m->tensors[t];
        distill__adam_ctx c;
        int decay = ti->decay && (t != 0 || o->decay_embeddings);   /* tensor 0 is the embedding */
        c.p = m->params + ti->offset; c.g = m->grads + ti->offset; c.m = m->m + ti->offset; c.v = m->v + ti->offset;
        c.b1 = o->beta1; c.b2 = o->beta2; c.eps = o->eps; c.clip = clip;
        c.step_size = (float)(lr / bc1);
        c.inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
        c.decay_mul = decay ? (float)(1.0 - lr * o->weight_decay) : 1.0f;
        distill_parallel_for((int64_t)ti->numel, 16384, distill__adam_task, &c);
    }
    return norm;
}

DISTILL_API int distill_train_step(distill_model *m, const distill_batch *batch, const distill_optim_config *oc,
                                   int64_t step, distill_stats *stats, double *grad_norm, distill_error *err) {
    double gn;
    if (distill_optim_validate(oc, err) != 0) return -1;
    if (!batch || !batch->targets) return distill__err(err, "distill_train_step: the batch has no targets");
    distill_model_zero_grad(m);
    if (distill_model_forward_backward(m, batch, NULL, 0.0f, stats, err) != 0) return -1;
    gn = distill_adamw_step(m, oc, step);
    if (grad_norm) *grad_norm = gn;
    if (gn < 0.0) return distill__err(err, "distill_train_step: out of memory for the AdamW moments");
    return 0;
}
