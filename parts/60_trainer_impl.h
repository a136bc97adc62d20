/* ===================================================================================== */
/* TRAINER: checksums, logit distillation, top-k teacher cache, model files, checkpoints, */
/* the training loop                                                                      */
/* ===================================================================================== */

/* ---- CRC-32 ------------------------------------------------------------------------------
   The reflected IEEE polynomial 0xEDB88320, bitwise: 8 shifts per byte is slow next to a table,
   but checksums here run once per file, and no table means no global state. */
DISTILL_API uint32_t distill_crc32(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    size_t i;
    int b;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------------------------ */
static const uint32_t distill__sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t distill__ror32(uint32_t x, int k) { return (x >> k) | (x << (32 - k)); }

static void distill__sha256_block(distill_sha256 *s, const unsigned char *p) {
    uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
               ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = distill__ror32(w[i - 15], 7) ^ distill__ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = distill__ror32(w[i - 2], 17) ^ distill__ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
    e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];
    for (i = 0; i < 64; i++) {
        t1 = h + (distill__ror32(e, 6) ^ distill__ror32(e, 11) ^ distill__ror32(e, 25)) +
             ((e & f) ^ (~e & g)) + distill__sha256_k[i] + w[i];
        t2 = (distill__ror32(a, 2) ^ distill__ror32(a, 13) ^ distill__ror32(a, 22)) +
             ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
    s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

DISTILL_API void distill_sha256_init(distill_sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->fill = 0;
}

DISTILL_API void distill_sha256_update(distill_sha256 *s, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    s->len += n;
    while (n > 0) {
        size_t take = 64 - s->fill;
        if (take > n) take = n;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take; p += take; n -= take;
        if (s->fill == 64) { distill__sha256_block(s, s->buf); s->fill = 0; }
    }
}

DISTILL_API void distill_sha256_final(distill_sha256 *s, unsigned char out[32]) {
    /* pad: 0x80, zeros to 56 mod 64, then the bit length big-endian */
    uint64_t bits = s->len * 8;
    unsigned char pad = 0x80, zero = 0, lenb[8];
    int i;
    distill_sha256_update(s, &pad, 1);
    while (s->fill != 56) distill_sha256_update(s, &zero, 1);
    for (i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    distill_sha256_update(s, lenb, 8);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24); out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8); out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

DISTILL_API void distill_sha256_hex(const void *data, size_t n, char out[65]) {
    distill_sha256 s;
    unsigned char d[32];
    int i;
    distill_sha256_init(&s);
    distill_sha256_update(&s, data, n);
    distill_sha256_final(&s, d);
    for (i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- little-endian helpers for our file formats ----------------------------------------- */
DISTILL__UNUSED static void distill__put_u32(unsigned char *p, uint32_t x) {
    p[0] = (unsigned char)x; p[1] = (unsigned char)(x >> 8); p[2] = (unsigned char)(x >> 16); p[3] = (unsigned char)(x >> 24);
}
DISTILL__UNUSED static void distill__put_u64(unsigned char *p, uint64_t x) {
    distill__put_u32(p, (uint32_t)x); distill__put_u32(p + 4, (uint32_t)(x >> 32));
}
DISTILL__UNUSED static uint32_t distill__get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
DISTILL__UNUSED static uint64_t distill__get_u64(const unsigned char *p) {
    return (uint64_t)distill__get_u32(p) | ((uint64_t)distill__get_u32(p + 4) << 32);
}
DISTILL__UNUSED static float distill__get_f32(const unsigned char *p) {
    uint32_t u = distill__get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
DISTILL__UNUSED static void distill__put_f32(unsigned char *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    distill__put_u32(p, u);
}

/* FNV-1a 64 over a row's tokens and targets: identifies the row a cache entry was made for. */
DISTILL__UNUSED static uint64_t distill__row_hash(const int32_t *tokens, const int32_t *targets, int T) {
    uint64_t h = 0xcbf29ce484222325ull;
    int t, b;
    for (t = 0; t < T; t++) {
        uint32_t x = (uint32_t)tokens[t], y = (uint32_t)(targets ? targets[t] : -1);
        for (b = 0; b < 4; b++) { h ^= (x >> (8 * b)) & 0xff; h *= 0x100000001b3ull; }
        for (b = 0; b < 4; b++) { h ^= (y >> (8 * b)) & 0xff; h *= 0x100000001b3ull; }
    }
    return h;
}

/* ======================================================================================= */
/* LOGIT DISTILLATION                                                                       */
/* ======================================================================================= */

DISTILL_API distill_kd_config distill_kd_default(void) {
    distill_kd_config kc;
    kc.alpha = 1.0f;
    kc.beta = 0.0f;
    kc.temperature = 1.0f;
    return kc;
}

DISTILL_API int distill_kd_validate(const distill_kd_config *kc, distill_error *err) {
    if (!(kc->alpha >= 0.0f && kc->alpha <= 1.0f))
        return distill__err(err, "kd alpha (%g) must be in [0, 1]", (double)kc->alpha);
    if (!(kc->beta >= 0.0f && kc->beta <= 1.0f))
        return distill__err(err, "kd beta (%g) must be in [0, 1] (0 forward KL, 1 reverse KL)", (double)kc->beta);
    if (!(kc->temperature > 0.0f && kc->temperature <= 1000.0f))
        return distill__err(err, "kd temperature (%g) must be in (0, 1000]", (double)kc->temperature);
    return 0;
}

static double distill__lse(const double *x, int n) {
    double mx = -INFINITY, s = 0.0;
    int i;
    for (i = 0; i < n; i++) if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) return -INFINITY;
    for (i = 0; i < n; i++) s += exp(x[i] - mx);
    return mx + log(s);
}

/* The divergence over nb bins given log q (student) and log p (teacher), and for each bin
   r_b = q_b * dD/dq_b, from which the logit gradient follows (see distill_kd_position):
     forward KL  D = sum p (log p - log q)                 r_b = -p_b
     reverse KL  D = sum q (log q - log p)                 r_b = q_b (log q_b - log p_b + 1)
     JSD_beta    D = beta sum p log(p/m) + (1-beta) sum q log(q/m),   m = beta p + (1-beta) q
                 dD/dq_b = (1-beta) log(q_b/m_b)  (the other terms cancel since sum m = 1)
                                                           r_b = (1-beta) q_b log(q_b/m_b)
   Everything is in log space, so a probability that underflows never gives 0 * log 0. */
static double distill__kd_bins(const double *lq, const double *lp, int nb, double beta, double *r) {
    double D = 0.0;
    int b;
    if (beta <= 0.0) {
        for (b = 0; b < nb; b++) {
            double p = exp(lp[b]);
            D += p > 0.0 ? p * (lp[b] - lq[b]) : 0.0;
            r[b] = -p;
        }
    } else if (beta >= 1.0) {
        for (b = 0; b < nb; b++) {
            double q = exp(lq[b]);
            D += q > 0.0 ? q * (lq[b] - lp[b]) : 0.0;
            r[b] = q > 0.0 ? q * (lq[b] - lp[b] + 1.0) : 0.0;
        }
    } else {
        double lb = log(beta), l1b = log(1.0 - beta);
        for (b = 0; b < nb; b++) {
            double x = lb + lp[b], y = l1b + lq[b];
            double mx = x > y ? x : y;
            double lm = mx == -INFINITY ? -INFINITY : mx + log(exp(x - mx) + exp(y - mx));
            double p = exp(lp[b]), q = exp(lq[b]);
            if (p > 0.0) D += beta * p * (lp[b] - lm);
            if (q > 0.0) D += (1.0 - beta) * q * (lq[b] - lm);
            r[b] = q > 0.0 ? (1.0 - beta) * q * (lq[b] - lm) : 0.0;
        }
    }
    return D;
}

static int distill__cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* Gradient with respect to the student logits. With z = s/tau, q_j = softmax(z)_j, and bins B
   (token j lies in bin b(j), q_B = sum of q_j over B):
       dq_B/dz_j = q_j (1[j in B] - q_B)
       dD/dz_j  = sum_B dD/dq_B dq_B/dz_j = (q_j / q_b(j)) r_b(j) - q_j R,    R = sum_B r_B
   and dD/ds_j = dD/dz_j / tau. With one token per bin q_j/q_b(j) = 1. The CE term adds
   (1-alpha)(softmax(s)_j - 1[j = target]). */
DISTILL_API distill_kd_result distill_kd_position(const double *s, int V, const double *t,
                                                  const int32_t *topk_ids, const float *topk_logp,
                                                  int k, float tail_logp, int32_t target,
                                                  const distill_kd_config *kc, double *grad,
                                                  double *scratch) {
    distill_kd_result res;
    double alpha = kc->alpha, beta = kc->beta, tau = kc->temperature;
    double *z = scratch, *lq = scratch + V, *lp = scratch + 2 * (size_t)V, *r = scratch + 3 * (size_t)V;
    double lse1, mx = -INFINITY, ent = 0.0;
    int j, b;

    /* CE, entropy and argmax of the untempered student distribution */
    res.argmax = 0;
    for (j = 0; j < V; j++) if (s[j] > mx) { mx = s[j]; res.argmax = j; }
    lse1 = distill__lse(s, V);
    for (j = 0; j < V; j++) {
        double pj = exp(s[j] - lse1);
        ent -= pj > 0.0 ? pj * (s[j] - lse1) : 0.0;
        if (grad) grad[j] = 0.0;
    }
    res.entropy = ent;
    res.ce = target >= 0 && target < V ? lse1 - s[target] : 0.0;
    res.kd = 0.0;
    if (grad && alpha < 1.0 && target >= 0 && target < V) {
        for (j = 0; j < V; j++) grad[j] = (1.0 - alpha) * exp(s[j] - lse1);
        grad[target] -= 1.0 - alpha;
    }

    if (alpha > 0.0) {
        double lse_s, R = 0.0, D, c = alpha * tau; /* alpha tau^2 * (1/tau) */
        for (j = 0; j < V; j++) z[j] = s[j] / tau;
        lse_s = distill__lse(z, V);
        if (!topk_ids) {
            /* full teacher: one bin per token */
            double lse_t;
            for (j = 0; j < V; j++) lp[j] = t[j] / tau;
            lse_t = distill__lse(lp, V);
            for (j = 0; j < V; j++) { lp[j] -= lse_t; lq[j] = z[j] - lse_s; }
            D = distill__kd_bins(lq, lp, V, beta, r);
            for (j = 0; j < V; j++) R += r[j];
            if (grad)
                for (j = 0; j < V; j++) grad[j] += c * (r[j] - exp(lq[j]) * R);
        } else {
            /* top-k teacher: bins 0..k-1 are the listed tokens, bin k the tail */
            int32_t *sorted = (int32_t *)(void *)(scratch + 4 * (size_t)V);
            double lse_t, tail = 0.0, ltail;
            int si = 0;
            for (b = 0; b < k; b++) {
                sorted[b] = topk_ids[b];
                lq[b] = z[topk_ids[b]] - lse_s;
                lp[b] = (double)topk_logp[b] / tau;
            }
            lp[k] = (tail_logp > -87.0f ? (double)tail_logp : -87.0) / tau;
            lse_t = distill__lse(lp, k + 1);
            for (b = 0; b <= k; b++) lp[b] -= lse_t;
            qsort(sorted, (size_t)k, sizeof *sorted, distill__cmp_i32);
            for (j = 0; j < V; j++) {
                if (si < k && sorted[si] == j) { si++; continue; }
                tail += exp(z[j] - lse_s);
            }
            ltail = tail > 0.0 ? log(tail) : -700.0;
            lq[k] = ltail;
            D = distill__kd_bins(lq, lp, k + 1, beta, r);
            for (b = 0; b <= k; b++) R += r[b];
            if (grad) {
                /* r of the listed tokens lands on their ids; tail tokens share r_tail by q_j/q_tail */
                for (j = 0; j < V; j++) grad[j] -= c * exp(z[j] - lse_s) * R;
                for (b = 0; b < k; b++) grad[topk_ids[b]] += c * r[b];
                si = 0;
                for (j = 0; j < V; j++) {
                    if (si < k && sorted[si] == j) { si++; continue; }
                    grad[j] += c * exp(z[j] - lse_s - ltail) * r[k];
                }
            }
        }
        res.kd = D;
    }
    res.loss = alpha * tau * tau * res.kd + (1.0 - alpha) * res.ce;
    return res;
}

/* ======================================================================================= */
/* TOP-K TEACHER CACHE                                                                      */
/* ======================================================================================= */
#define DISTILL__TOPK_MAGIC "DSTLTOPK"
#define DISTILL__TOPK_VERSION 1u
#define DISTILL__TOPK_HDR 40   /* magic 8, version, k, vocab, reserved, n_rows 8, n_positions 8 */
#define DISTILL__TOPK_ROW 24   /* first_position 8, n_positions 4, n_tokens 4, row_hash 8 */

struct distill_topk_writer {
    char *path;
    int k, V;
    unsigned char *rows, *entries;          /* the row table and the entries, little-endian */
    size_t rows_len, rows_cap, ent_len, ent_cap;
    uint64_t n_rows, n_positions;
    double *lp;                              /* scratch: V log-probabilities */
    int32_t *ids;                            /* scratch: k ids */
};

struct distill_topk_cache {
    unsigned char *data;                     /* the whole file */
    size_t size;
    int k, V;
    int64_t n_rows, n_positions;
    const unsigned char *rows, *entries;
    size_t entry_bytes;
};

static int distill__grow(unsigned char **buf, size_t *cap, size_t need) {
    size_t ncap = *cap ? *cap : 4096;
    unsigned char *nb;
    if (need <= *cap) return 0;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return -1;
        ncap *= 2;
    }
    nb = (unsigned char *)DISTILL_REALLOC(*buf, ncap);
    if (!nb) return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

DISTILL_API distill_topk_writer *distill_topk_writer_open(const char *path, int k, int vocab_size,
                                                          distill_error *err) {
    distill_topk_writer *w;
    if (k < 1 || vocab_size < 2 || k >= vocab_size || k > 4096) {
        distill__err(err, "%s: top-k cache: k (%d) must be in [1, min(4096, vocab_size-1)] (vocab_size %d)", path, k, vocab_size);
        return NULL;
    }
    w = (distill_topk_writer *)DISTILL_MALLOC(sizeof *w);
    if (!w) { distill__err(err, "%s: out of memory", path); return NULL; }
    memset(w, 0, sizeof *w);
    w->path = distill__strdup(path);
    w->k = k;
    w->V = vocab_size;
    w->lp = (double *)DISTILL_MALLOC(sizeof(double) * (size_t)vocab_size);
    w->ids = (int32_t *)DISTILL_MALLOC(sizeof(int32_t) * (size_t)k);
    if (!w->path || !w->lp || !w->ids) {
        distill_topk_writer_abort(w);
        distill__err(err, "%s: out of memory", path);
        return NULL;
    }
    return w;
}

DISTILL_API void distill_topk_writer_abort(distill_topk_writer *w) {
    if (!w) return;
    DISTILL_FREE(w->path); DISTILL_FREE(w->rows); DISTILL_FREE(w->entries);
    DISTILL_FREE(w->lp); DISTILL_FREE(w->ids);
    DISTILL_FREE(w);
}

/* Top k of x (n) by a min-heap of the k best seen so far: O(n log k). Ties go to the lower id
   so the cache is deterministic. ids comes out sorted by decreasing value. */
static int distill__topk_better(const double *x, int32_t a, int32_t b) {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
}
static void distill__topk_sift(const double *x, int32_t *h, int k, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && distill__topk_better(x, h[m], h[l])) m = l;
        if (r < k && distill__topk_better(x, h[m], h[r])) m = r;
        if (m == i) return;
        { int32_t t = h[i]; h[i] = h[m]; h[m] = t; }
        i = m;
    }
}
static void distill__topk_select(const double *x, int n, int k, int32_t *ids) {
    int i;
    for (i = 0; i < k; i++) ids[i] = i;
    for (i = k / 2 - 1; i >= 0; i--) distill__topk_sift(x, ids, k, i);
    for (i = k; i < n; i++)
        if (distill__topk_better(x, i, ids[0])) { ids[0] = i; distill__topk_sift(x, ids, k, 0); }
    /* heap sort: repeatedly move the worst to the end */
    for (i = k - 1; i > 0; i--) {
        int32_t t = ids[0]; ids[0] = ids[i]; ids[i] = t;
        distill__topk_sift(x, ids, i, 0);
    }
}

DISTILL_API int distill_topk_writer_add_row(distill_topk_writer *w, const int32_t *tokens,
                                            const int32_t *targets, int T, const float *logits,
                                            distill_error *err) {
    int t, j, V = w->V, k = w->k, npos = 0;
    size_t eb = (size_t)k * 8 + 4;
    unsigned char *rp;
    for (t = 0; t < T; t++) {
        const float *x = logits + (size_t)t * V;
        double mx = -INFINITY, s = 0.0, top = 0.0, tail;
        unsigned char *e;
        if (targets[t] < 0) continue;
        for (j = 0; j < V; j++) if ((double)x[j] > mx) mx = x[j];
        for (j = 0; j < V; j++) s += exp((double)x[j] - mx);
        for (j = 0; j < V; j++) w->lp[j] = (double)x[j] - mx - log(s);
        if (!(mx > -INFINITY && mx < INFINITY))
            return distill__err(err, "%s: row %llu position %d: teacher logits are not finite", w->path, (unsigned long long)w->n_rows, t);
        distill__topk_select(w->lp, V, k, w->ids);
        for (j = 0; j < k; j++) top += exp(w->lp[w->ids[j]]);
        /* the tail summed directly (not 1 - top) so a tiny tail keeps its digits */
        tail = 0.0;
        {
            double lim = w->lp[w->ids[k - 1]];
            for (j = 0; j < V; j++) if (w->lp[j] < lim) tail += exp(w->lp[j]);
            /* tokens tied with the k-th but not selected also belong to the tail */
            for (j = 0; j < V; j++) if (w->lp[j] == lim) tail += exp(w->lp[j]);
            for (j = 0; j < k; j++) if (w->lp[w->ids[j]] == lim) tail -= exp(lim);
            if (tail < 0.0) tail = 0.0;
        }
        (void)top;
        if (distill__grow(&w->entries, &w->ent_cap, w->ent_len + eb) != 0)
            return distill__err(err, "%s: out of memory", w->path);
        e = w->entries + w->ent_len;
        for (j = 0; j < k; j++) distill__put_u32(e + 4 * (size_t)j, (uint32_t)w->ids[j]);
        for (j = 0; j < k; j++) distill__put_f32(e + 4 * (size_t)(k + j), (float)w->lp[w->ids[j]]);
        distill__put_f32(e + 8 * (size_t)k, tail > 0.0 ? (float)log(tail) : -INFINITY);
        w->ent_len += eb;
        npos++;
    }
    if (distill__grow(&w->rows, &w->rows_cap, w->rows_len + DISTILL__TOPK_ROW) != 0)
        return distill__err(err, "%s: out of memory", w->path);
    rp = w->rows + w->rows_len;
    distill__put_u64(rp, w->n_positions);
    distill__put_u32(rp + 8, (uint32_t)npos);
    distill__put_u32(rp + 12, (uint32_t)T);
    distill__put_u64(rp + 16, distill__row_hash(tokens, targets, T));
    w->rows_len += DISTILL__TOPK_ROW;
    w->n_rows++;
    w->n_positions += (uint64_t)npos;
    return 0;
}

DISTILL_API int distill_topk_writer_close(distill_topk_writer *w, distill_error *err) {
    distill_atomic_file af;
    unsigned char hdr[DISTILL__TOPK_HDR], tail[4];
    uint32_t crc;
    int rc = -1;
    memcpy(hdr, DISTILL__TOPK_MAGIC, 8);
    distill__put_u32(hdr + 8, DISTILL__TOPK_VERSION);
    distill__put_u32(hdr + 12, (uint32_t)w->k);
    distill__put_u32(hdr + 16, (uint32_t)w->V);
    distill__put_u32(hdr + 20, 0);
    distill__put_u64(hdr + 24, w->n_rows);
    distill__put_u64(hdr + 32, w->n_positions);
    crc = distill_crc32(0, hdr, sizeof hdr);
    crc = distill_crc32(crc, w->rows, w->rows_len);
    crc = distill_crc32(crc, w->entries, w->ent_len);
    distill__put_u32(tail, crc);
    if (distill_atomic_open(&af, w->path, err) == 0) {
        if (fwrite(hdr, 1, sizeof hdr, af.f) != sizeof hdr ||
            (w->rows_len && fwrite(w->rows, 1, w->rows_len, af.f) != w->rows_len) ||
            (w->ent_len && fwrite(w->entries, 1, w->ent_len, af.f) != w->ent_len) ||
            fwrite(tail, 1, 4, af.f) != 4) {
            distill__err(err, "%s: write failed: %s", w->path, strerror(errno));
            distill_atomic_abort(&af);
        } else rc = distill_atomic_commit(&af, err);
    }
    distill_topk_writer_abort(w);
    return rc;
}

DISTILL_API distill_topk_cache *distill_topk_cache_open(const char *path, int expect_vocab,
                                                        int64_t expect_rows, distill_error *err) {
    distill_topk_cache *c = (distill_topk_cache *)DISTILL_MALLOC(sizeof *c);
    uint64_t nr, np, i, expect_first = 0;
    size_t need, tmp;
    if (!c) { distill__err(err, "%s: out of memory", path); return NULL; }
    memset(c, 0, sizeof *c);
    c->data = (unsigned char *)distill_read_file(path, &c->size, err);
    if (!c->data) goto fail_quiet;
    if (c->size < DISTILL__TOPK_HDR + 4 || memcmp(c->data, DISTILL__TOPK_MAGIC, 8) != 0) {
        distill__err(err, "%s: not a distill top-k teacher cache (bad magic or too short)", path);
        goto fail_quiet;
    }
    if (distill__get_u32(c->data + 8) != DISTILL__TOPK_VERSION) {
        distill__err(err, "%s: top-k cache version %u is not supported (this build reads %u)", path,
                     distill__get_u32(c->data + 8), DISTILL__TOPK_VERSION);
        goto fail_quiet;
    }
    c->k = (int)distill__get_u32(c->data + 12);
    c->V = (int)distill__get_u32(c->data + 16);
    nr = distill__get_u64(c->data + 24);
    np = distill__get_u64(c->data + 32);
    if (c->k < 1 || c->k > 4096 || c->V < 2 || c->k >= c->V) {
        distill__err(err, "%s: field 'k' (%d) / 'vocab_size' (%d) out of range", path, c->k, c->V);
        goto fail_quiet;
    }
    c->entry_bytes = (size_t)c->k * 8 + 4;
    /* every count is checked against the file size before it is used */
    if (nr > (uint64_t)(c->size / DISTILL__TOPK_ROW) || np > (uint64_t)(c->size / c->entry_bytes)) {
        distill__err(err, "%s: header claims %llu rows and %llu positions, more than a %zu-byte file holds",
                     path, (unsigned long long)nr, (unsigned long long)np, c->size);
        goto fail_quiet;
    }
    need = DISTILL__TOPK_HDR + 4 + (size_t)nr * DISTILL__TOPK_ROW;
    if (!distill__mul_size((size_t)np, c->entry_bytes, &tmp) || !distill__add_size(need, tmp, &need) || need != c->size) {
        distill__err(err, "%s: file is %zu bytes but its header implies %zu (truncated or corrupt)", path, c->size, need);
        goto fail_quiet;
    }
    if (distill_crc32(0, c->data, c->size - 4) != distill__get_u32(c->data + c->size - 4)) {
        distill__err(err, "%s: checksum mismatch: the cache is corrupt; recompute it", path);
        goto fail_quiet;
    }
    c->n_rows = (int64_t)nr;
    c->n_positions = (int64_t)np;
    c->rows = c->data + DISTILL__TOPK_HDR;
    c->entries = c->rows + (size_t)nr * DISTILL__TOPK_ROW;
    for (i = 0; i < nr; i++) {
        const unsigned char *rp = c->rows + i * DISTILL__TOPK_ROW;
        if (distill__get_u64(rp) != expect_first || distill__get_u32(rp + 8) > distill__get_u32(rp + 12)) {
            distill__err(err, "%s: row %llu: inconsistent position table", path, (unsigned long long)i);
            goto fail_quiet;
        }
        expect_first += distill__get_u32(rp + 8);
    }
    if (expect_first != np) {
        distill__err(err, "%s: rows hold %llu positions but the header says %llu", path,
                     (unsigned long long)expect_first, (unsigned long long)np);
        goto fail_quiet;
    }
    for (i = 0; i < np; i++) {
        const unsigned char *e = c->entries + i * c->entry_bytes;
        int j;
        for (j = 0; j < c->k; j++) {
            uint32_t id = distill__get_u32(e + 4 * (size_t)j);
            float lp = distill__get_f32(e + 4 * (size_t)(c->k + j));
            if (id >= (uint32_t)c->V || !(lp <= 0.0f) || lp != lp) {
                distill__err(err, "%s: position %llu: entry %d (id %u, log-prob %g) is invalid", path,
                             (unsigned long long)i, j, id, (double)lp);
                goto fail_quiet;
            }
        }
    }
    if (expect_vocab > 0 && expect_vocab != c->V) {
        distill__err(err, "%s: the cache was made with a vocabulary of %d tokens, the student has %d: "
                     "teacher and student must share the tokenizer", path, c->V, expect_vocab);
        goto fail_quiet;
    }
    if (expect_rows > 0 && expect_rows != c->n_rows) {
        distill__err(err, "%s: the cache holds %lld rows, the dataset has %lld: it was made for other data",
                     path, (long long)c->n_rows, (long long)expect_rows);
        goto fail_quiet;
    }
    return c;
fail_quiet:
    distill_topk_cache_free(c);
    return NULL;
}

DISTILL_API void distill_topk_cache_free(distill_topk_cache *c) {
    if (!c) return;
    DISTILL_FREE(c->data);
    DISTILL_FREE(c);
}
DISTILL_API int distill_topk_cache_k(const distill_topk_cache *c) { return c->k; }
DISTILL_API int distill_topk_cache_vocab(const distill_topk_cache *c) { return c->V; }
DISTILL_API int64_t distill_topk_cache_rows(const distill_topk_cache *c) { return c->n_rows; }

DISTILL_API int distill_topk_cache_check_row(const distill_topk_cache *c, int64_t row,
                                             const int32_t *tokens, const int32_t *targets, int T,
                                             distill_error *err) {
    const unsigned char *rp;
    int t, n = 0;
    if (row < 0 || row >= c->n_rows)
        return distill__err(err, "top-k cache: row %lld out of range (the cache holds %lld rows)", (long long)row, (long long)c->n_rows);
    rp = c->rows + (size_t)row * DISTILL__TOPK_ROW;
    for (t = 0; t < T; t++) n += targets[t] >= 0;
    if ((int)distill__get_u32(rp + 12) != T || (int)distill__get_u32(rp + 8) != n ||
        distill__get_u64(rp + 16) != distill__row_hash(tokens, targets, T))
        return distill__err(err, "top-k cache: row %lld does not match the data (cache: %u tokens, %u supervised; "
                            "data: %d tokens, %d supervised, or different token ids): it was made for another dataset",
                            (long long)row, distill__get_u32(rp + 12), distill__get_u32(rp + 8), T, n);
    return 0;
}

/* ======================================================================================= */
/* THE DISTILLATION HEAD LOSS                                                               */
/* ======================================================================================= */
struct distill_kd_head {
    distill_kd_config kc;
    int V, nthreads;
    double *scratch;                /* per thread: s (V), t (V), grad (V), position scratch (5V) */
    const float *teacher;           /* full teacher logits (B*T, V), or NULL */
    const distill_topk_cache *cache;
    int64_t *entry;                 /* cache mode: entry index per flat position, -1 if none */
    size_t entry_cap;
};

static int distill__kd_head_threads(distill_kd_head *h) {
    int nt = distill_get_threads();
    if (nt < 1) nt = 1;
    if (nt > h->nthreads) {
        size_t n;
        double *s;
        if (!distill__mul_size((size_t)nt * 8, (size_t)h->V, &n)) return -1;
        s = (double *)distill_alloc_aligned(n * sizeof(double), 64);
        if (!s) return -1;
        distill_free_aligned(h->scratch);
        h->scratch = s;
        h->nthreads = nt;
    }
    return 0;
}

DISTILL_API distill_kd_head *distill_kd_head_create(const distill_kd_config *kc, int V,
                                                    distill_error *err) {
    distill_kd_head *h;
    if (distill_kd_validate(kc, err) != 0) return NULL;
    h = (distill_kd_head *)DISTILL_MALLOC(sizeof *h);
    if (!h) { distill__err(err, "out of memory"); return NULL; }
    memset(h, 0, sizeof *h);
    h->kc = *kc;
    h->V = V;
    if (distill__kd_head_threads(h) != 0) {
        distill_kd_head_free(h);
        distill__err(err, "out of memory for the distillation scratch (V = %d)", V);
        return NULL;
    }
    return h;
}

DISTILL_API void distill_kd_head_free(distill_kd_head *h) {
    if (!h) return;
    distill_free_aligned(h->scratch);
    DISTILL_FREE(h->entry);
    DISTILL_FREE(h);
}

/* The chunk callback: for each position of the chunk, the per-position loss of
   distill_kd_position, weighted by w and written back as dlogits * w * grad_scale. */
static void distill__kd_head_fn(void *ctx, const int64_t *pos, int n, float *lg, int V,
                                const int32_t *targets, const float *weights, float grad_scale,
                                int compute_grad, distill_stats *st, int thread) {
    distill_kd_head *h = (distill_kd_head *)ctx;
    double *s = h->scratch + (size_t)thread * 8 * (size_t)V, *t = s + V, *g = t + V, *scr = g + V;
    int i, j;
    for (i = 0; i < n; i++) {
        int64_t p = pos[i];
        float *row = lg + (size_t)i * V;
        int32_t tgt = targets[p];
        double w = tgt < 0 ? 0.0 : weights ? (double)weights[p] : 1.0;
        distill_kd_result res;
        if (w == 0.0) {
            if (compute_grad) memset(row, 0, sizeof(float) * (size_t)V);
            continue;
        }
        for (j = 0; j < V; j++) s[j] = row[j];
        if (h->cache) {
            const unsigned char *e = h->cache->entries + (size_t)h->entry[p] * h->cache->entry_bytes;
            int k = h->cache->k;
            /* the entry is little-endian int32/float32; copy out to aligned arrays */
            int32_t *ids = (int32_t *)(void *)t;
            float *lp = (float *)(void *)(ids + k);
            for (j = 0; j < k; j++) { ids[j] = (int32_t)distill__get_u32(e + 4 * (size_t)j); lp[j] = distill__get_f32(e + 4 * (size_t)(k + j)); }
            res = distill_kd_position(s, V, NULL, ids, lp, k, distill__get_f32(e + 8 * (size_t)k), tgt, &h->kc,
                                      compute_grad ? g : NULL, scr);
        } else {
            const float *tl = h->teacher + (size_t)p * V;
            for (j = 0; j < V; j++) t[j] = tl[j];
            res = distill_kd_position(s, V, t, NULL, NULL, 0, 0.0f, tgt, &h->kc, compute_grad ? g : NULL, scr);
        }
        st->loss += w * res.loss;
        st->weight_sum += w;
        st->accuracy += res.argmax == tgt ? 1.0 : 0.0;
        st->entropy += res.entropy;
        if (compute_grad)
            for (j = 0; j < V; j++) row[j] = (float)(g[j] * w * (double)grad_scale);
    }
}

DISTILL_API distill_head_loss distill_kd_head_loss(distill_kd_head *h) {
    distill_head_loss hl;
    hl.fn = distill__kd_head_fn;
    hl.ctx = h;
    return hl;
}

DISTILL_API void distill_kd_head_set_teacher_logits(distill_kd_head *h, const float *logits, int T) {
    (void)T;
    distill__kd_head_threads(h);
    h->teacher = logits;
    h->cache = NULL;
}

DISTILL_API int distill_kd_head_set_cache_rows(distill_kd_head *h, const distill_topk_cache *c,
                                               const int64_t *rows, const distill_batch *batch,
                                               distill_error *err) {
    size_t BT = (size_t)batch->B * (size_t)batch->T;
    int b, t;
    if (c->V != h->V)
        return distill__err(err, "top-k cache vocabulary (%d) differs from the student's (%d)", c->V, h->V);
    if (c->k * 2 > 8 * h->V) return distill__err(err, "top-k cache: k too large");
    if (distill__kd_head_threads(h) != 0) return distill__err(err, "out of memory");
    if (BT > h->entry_cap) {
        int64_t *e = (int64_t *)DISTILL_REALLOC(h->entry, BT * sizeof(int64_t));
        if (!e) return distill__err(err, "out of memory");
        h->entry = e;
        h->entry_cap = BT;
    }
    for (b = 0; b < batch->B; b++) {
        int T = batch->lengths ? batch->lengths[b] : batch->T;
        const int32_t *tok = batch->tokens + (size_t)b * batch->T, *tg = batch->targets + (size_t)b * batch->T;
        uint64_t first;
        if (distill_topk_cache_check_row(c, rows[b], tok, tg, T, err) != 0) return -1;
        first = distill__get_u64(c->rows + (size_t)rows[b] * DISTILL__TOPK_ROW);
        for (t = 0; t < batch->T; t++) {
            size_t p = (size_t)b * batch->T + t;
            h->entry[p] = t < T && tg[t] >= 0 ? (int64_t)first++ : -1;
        }
    }
    h->cache = c;
    h->teacher = NULL;
    return 0;
}

