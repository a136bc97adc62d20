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

/* Softmax in log space with one exp per element: lp[j] = x[j]/tau - logsumexp(x/tau) and
   p[j] = exp(lp[j]) (p may be NULL). Returns the logsumexp. */
static double distill__log_softmax(const double *x, int n, double tau, double *lp, double *p) {
    double mx = -INFINITY, sum = 0.0, lse;
    int i;
    for (i = 0; i < n; i++) if (x[i] / tau > mx) mx = x[i] / tau;
    if (mx == -INFINITY || mx == INFINITY || mx != mx) mx = 0.0;
    for (i = 0; i < n; i++) {
        double e = exp(x[i] / tau - mx);
        if (p) p[i] = e;
        sum += e;
    }
    lse = mx + log(sum);
    for (i = 0; i < n; i++) {
        lp[i] = x[i] / tau - lse;
        if (p) p[i] /= sum;
    }
    return lse;
}

/* The divergence over nb bins given log q, q (student) and log p, p (teacher), and for each bin
   r_b = q_b * dD/dq_b, from which the logit gradient follows (see distill_kd_position):
     forward KL  D = sum p (log p - log q)                 r_b = -p_b
     reverse KL  D = sum q (log q - log p)                 r_b = q_b (log q_b - log p_b + 1)
     JSD_beta    D = beta sum p log(p/m) + (1-beta) sum q log(q/m),   m = beta p + (1-beta) q
                 dD/dq_b = (1-beta) log(q_b/m_b)  (the other terms cancel since sum m = 1)
                                                           r_b = (1-beta) q_b log(q_b/m_b)
   Terms with a zero probability contribute 0 (the limit of x log x), never 0 * log 0. */
static double distill__kd_bins(const double *lq, const double *q, const double *lp, const double *p,
                               int nb, double beta, double *r) {
    double D = 0.0;
    int b;
    if (beta <= 0.0) {
        for (b = 0; b < nb; b++) {
            D += p[b] > 0.0 ? p[b] * (lp[b] - lq[b]) : 0.0;
            r[b] = -p[b];
        }
    } else if (beta >= 1.0) {
        for (b = 0; b < nb; b++) {
            D += q[b] > 0.0 ? q[b] * (lq[b] - lp[b]) : 0.0;
            r[b] = q[b] > 0.0 ? q[b] * (lq[b] - lp[b] + 1.0) : 0.0;
        }
    } else {
        double lb = log(beta), l1b = log(1.0 - beta);
        for (b = 0; b < nb; b++) {
            double lm, m = beta * p[b] + (1.0 - beta) * q[b];
            if (m > 0.0 && m < INFINITY) lm = log(m);
            else {   /* both underflowed: log-space logaddexp */
                double x = lb + lp[b], y = l1b + lq[b], mx = x > y ? x : y;
                lm = mx == -INFINITY ? -INFINITY : mx + log(exp(x - mx) + exp(y - mx));
            }
            if (p[b] > 0.0) D += beta * p[b] * (lp[b] - lm);
            if (q[b] > 0.0) D += (1.0 - beta) * q[b] * (lq[b] - lm);
            r[b] = q[b] > 0.0 ? (1.0 - beta) * q[b] * (lq[b] - lm) : 0.0;
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
   (1-alpha)(softmax(s)_j - 1[j = target]). Cost: about three exp per vocabulary entry. */
static distill_kd_result distill__kd_position(const double *s, int V, const double *t,
                                             const int32_t *topk_ids, const float *topk_logp,
                                             int k, float tail_logp, int32_t target,
                                             const distill_kd_config *kc, double *grad,
                                             double *scratch /* 9*V */) {
    distill_kd_result res;
    double alpha = kc->alpha, beta = kc->beta, tau = kc->temperature;
    size_t Vz = (size_t)V;
    double *ls1 = scratch, *p1 = scratch + Vz;              /* log softmax(s), softmax(s) */
    double *lq = scratch + 2 * Vz, *q = scratch + 3 * Vz;    /* at temperature tau         */
    double *lp = scratch + 4 * Vz, *p = scratch + 5 * Vz;    /* teacher (or its k+1 bins)  */
    double *r = grad ? grad : scratch + 6 * Vz;              /* bins' r, reused as output  */
    double lse1, mx = -INFINITY, ent = 0.0;
    int j, b;

    /* CE, entropy and argmax of the untempered student distribution */
    res.argmax = 0;
    for (j = 0; j < V; j++) if (s[j] > mx) { mx = s[j]; res.argmax = j; }
    lse1 = distill__log_softmax(s, V, 1.0, ls1, p1);
    for (j = 0; j < V; j++) ent -= p1[j] > 0.0 ? p1[j] * ls1[j] : 0.0;
    (void)lse1;
    res.entropy = ent;
    res.ce = target >= 0 && target < V ? -ls1[target] : 0.0;
    res.kd = 0.0;

    if (alpha > 0.0) {
        double R = 0.0, D, c = alpha * tau; /* alpha tau^2 * (1/tau) */
        if (tau == 1.0) { lq = ls1; q = p1; }
        else distill__log_softmax(s, V, tau, lq, q);
        if (!topk_ids) {
            /* full teacher: one bin per token; r lives in the gradient array */
            distill__log_softmax(t, V, tau, lp, p);
            D = distill__kd_bins(lq, q, lp, p, V, beta, r);
            for (j = 0; j < V; j++) R += r[j];
            if (grad)
                for (j = 0; j < V; j++) grad[j] = c * (r[j] - q[j] * R);
        } else if (k < 1 || k > 4096 || k >= V) {
            D = NAN;   /* not a valid top-k entry */
        } else {
            /* top-k teacher: bins 0..k-1 are the listed tokens, bin k the tail */
            int32_t sorted[4096];
            double *blq = scratch + 6 * Vz, *bq_all = scratch + 7 * Vz, *rb = scratch + 8 * Vz, tail = 0.0, ltail;
            int si = 0;
            for (b = 0; b < k; b++) {
                sorted[b] = topk_ids[b];
                blq[b] = lq[topk_ids[b]];
                bq_all[b] = q[topk_ids[b]];
                lp[b] = (double)topk_logp[b] / tau;
            }
            lp[k] = (tail_logp > -87.0f ? (double)tail_logp : -87.0) / tau;
            distill__log_softmax(lp, k + 1, 1.0, lp, p);   /* renormalise the k+1 teacher bins */
            qsort(sorted, (size_t)k, sizeof *sorted, distill__cmp_i32);
            for (j = 0; j < V; j++) {
                if (si < k && sorted[si] == j) { si++; continue; }
                tail += q[j];
            }
            ltail = tail > 0.0 ? log(tail) : -700.0;
            blq[k] = ltail;
            bq_all[k] = tail;
            D = distill__kd_bins(blq, bq_all, lp, p, k + 1, beta, rb);
            for (b = 0; b <= k; b++) R += rb[b];
            if (grad) {
                /* r of the listed tokens lands on their ids; tail tokens share r_tail by q_j/q_tail */
                double share = tail > 0.0 ? rb[k] / tail : 0.0;
                si = 0;
                for (j = 0; j < V; j++) {
                    if (si < k && sorted[si] == j) { si++; grad[j] = -c * q[j] * R; continue; }
                    grad[j] = c * (q[j] * share - q[j] * R);
                }
                for (b = 0; b < k; b++) grad[topk_ids[b]] += c * rb[b];
            }
        }
        res.kd = D;
    } else if (grad) {
        for (j = 0; j < V; j++) grad[j] = 0.0;
    }
    if (grad && alpha < 1.0 && target >= 0 && target < V) {
        for (j = 0; j < V; j++) grad[j] += (1.0 - alpha) * p1[j];
        grad[target] -= 1.0 - alpha;
    }
    res.loss = alpha * tau * tau * res.kd + (1.0 - alpha) * res.ce;
    return res;
}

DISTILL_API distill_kd_result distill_kd_position(const double *s, int V, const double *t,
                                                  const int32_t *topk_ids, const float *topk_logp,
                                                  int k, float tail_logp, int32_t target,
                                                  const distill_kd_config *kc, double *grad,
                                                  double *scratch) {
    /* the reference entry point allocates its own 9*V work space (the fused head keeps one per
       thread); `scratch` is accepted for compatibility and not used */
    double *w = (double *)DISTILL_MALLOC(sizeof(double) * 9 * (size_t)(V > 0 ? V : 1));
    distill_kd_result res;
    (void)scratch;
    if (!w) {
        memset(&res, 0, sizeof res);
        res.loss = res.kd = NAN;
        return res;
    }
    res = distill__kd_position(s, V, t, topk_ids, topk_logp, k, tail_logp, target, kc, grad, w);
    DISTILL_FREE(w);
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
        {
            /* the tail is a log-probability too (NaN or > 0 would make the loss NaN or wrong),
               and the k ids are distinct (a repeated id would count twice in the loss) */
            int32_t sorted[4096];   /* k <= 4096, checked above */
            float tl = distill__get_f32(e + 8 * (size_t)c->k);
            for (j = 0; j < c->k; j++) sorted[j] = (int32_t)distill__get_u32(e + 4 * (size_t)j);
            qsort(sorted, (size_t)c->k, sizeof sorted[0], distill__cmp_i32);
            for (j = 1; j < c->k && sorted[j] != sorted[j - 1]; j++) {}
            if (!(tl <= 0.0f) || j < c->k) {
                distill__err(err, "%s: position %llu: %s", path, (unsigned long long)i,
                             j < c->k ? "an id is listed twice in its top-k" : "the tail log-probability is not <= 0");
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
    double *scratch;                /* per thread: s (V), t (V), grad (V), position scratch (9V) */
    float *teacher;                 /* in-process teacher: logits (n_supervised, V), or NULL */
    size_t teacher_cap;             /* floats allocated */
    int64_t n_captured;
    const distill_topk_cache *cache;
    int64_t *entry;                 /* per flat position b*T+t: the row in `teacher` or the cache
                                       entry, -1 if unsupervised */
    size_t entry_cap;
};

static int distill__kd_head_threads(distill_kd_head *h) {
    int nt = distill_get_threads();
    if (nt < 1) nt = 1;
    if (nt > h->nthreads) {
        size_t n;
        double *s;
        if (!distill__mul_size((size_t)nt * 12, (size_t)h->V, &n)) return -1;
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
    distill_free_aligned(h->teacher);
    DISTILL_FREE(h->entry);
    DISTILL_FREE(h);
}

/* The chunk callback: for each position of the chunk, the per-position loss of
   distill_kd_position, weighted by w and written back as dlogits * w * grad_scale. */
static void distill__kd_head_fn(void *ctx, const int64_t *pos, int n, float *lg, int V,
                                const int32_t *targets, const float *weights, float grad_scale,
                                int compute_grad, distill_stats *st, int thread) {
    distill_kd_head *h = (distill_kd_head *)ctx;
    double *s = h->scratch + (size_t)thread * 12 * (size_t)V, *t = s + V, *g = t + V, *scr = g + V;
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
            res = distill__kd_position(s, V, NULL, ids, lp, k, distill__get_f32(e + 8 * (size_t)k), tgt, &h->kc,
                                      compute_grad ? g : NULL, scr);
        } else {
            const float *tl = h->teacher + (size_t)h->entry[p] * V;
            for (j = 0; j < V; j++) t[j] = tl[j];
            res = distill__kd_position(s, V, t, NULL, NULL, 0, 0.0f, tgt, &h->kc, compute_grad ? g : NULL, scr);
        }
        st->loss += w * res.loss;
        st->weight_sum += w;
        st->accuracy += res.argmax == tgt ? w : 0.0;   /* weighted, as the core's CE head */
        st->entropy += w * res.entropy;
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
    return 0;
}

/* Entry map of a batch: supervised positions (target >= 0, weight > 0, inside the row's
   length) get consecutive indices in row-major order; returns their count or -1. */
static int64_t distill__kd_map(distill_kd_head *h, const distill_batch *batch) {
    size_t BT = (size_t)batch->B * (size_t)batch->T;
    int64_t n = 0;
    int b, t;
    if (BT > h->entry_cap) {
        int64_t *e = (int64_t *)DISTILL_REALLOC(h->entry, BT * sizeof(int64_t));
        if (!e) return -1;
        h->entry = e;
        h->entry_cap = BT;
    }
    for (b = 0; b < batch->B; b++) {
        int len = batch->lengths ? batch->lengths[b] : batch->T;
        for (t = 0; t < batch->T; t++) {
            size_t p = (size_t)b * batch->T + t;
            int sup = t < len && batch->targets[p] >= 0 && (!batch->weights || batch->weights[p] > 0.0f);
            h->entry[p] = sup ? n++ : -1;
        }
    }
    return n;
}

/* The teacher's head hands us its logits chunk by chunk: keep them (no gradient). */
static void distill__kd_capture_fn(void *ctx, const int64_t *pos, int n, float *lg, int V,
                                   const int32_t *targets, const float *weights, float grad_scale,
                                   int compute_grad, distill_stats *st, int thread) {
    distill_kd_head *h = (distill_kd_head *)ctx;
    int i;
    (void)targets; (void)weights; (void)grad_scale; (void)compute_grad; (void)st; (void)thread;
    for (i = 0; i < n; i++) {
        int64_t e = h->entry[pos[i]];
        if (e >= 0 && e < h->n_captured)
            memcpy(h->teacher + (size_t)e * V, lg + (size_t)i * V, sizeof(float) * (size_t)V);
    }
}

DISTILL_API int distill_kd_head_run_teacher(distill_kd_head *h, distill_model *teacher,
                                            const distill_batch *batch, distill_error *err) {
    distill_head_loss cap;
    size_t need;
    int64_t n;
    if (teacher->cfg.vocab_size != h->V)
        return distill__err(err, "teacher vocabulary (%d tokens) differs from the student's (%d): logit "
                            "distillation needs a shared tokenizer (use sequence-level distillation, i.e. "
                            "SFT on the teacher's outputs, instead)", teacher->cfg.vocab_size, h->V);
    if (!batch->targets) return distill__err(err, "distill_kd_head_run_teacher: the batch has no targets");
    if (distill__kd_head_threads(h) != 0 || (n = distill__kd_map(h, batch)) < 0)
        return distill__err(err, "out of memory");
    if (!distill__mul_size((size_t)n, (size_t)h->V, &need)) return distill__err(err, "teacher logits: size overflow");
    if (need > h->teacher_cap) {
        float *t = (float *)distill_alloc_aligned(need * sizeof(float), 64);
        if (!t) return distill__err(err, "out of memory for the teacher's logits (%lld positions x %d); use smaller micro-batches",
                                    (long long)n, h->V);
        distill_free_aligned(h->teacher);
        h->teacher = t;
        h->teacher_cap = need;
    }
    h->n_captured = n;
    h->cache = NULL;
    cap.fn = distill__kd_capture_fn;
    cap.ctx = h;
    return distill_model_forward(teacher, batch, &cap, 0.0f, NULL, err);
}

/* ======================================================================================= */
/* MODEL FILES: own checkpoints, safetensors, llama2.c                                      */
/* ======================================================================================= */
#define DISTILL__CKPT_MAGIC "DSTLCKPT"
#define DISTILL__CKPT_VERSION 1u
#define DISTILL__CKPT_HDR 40

DISTILL_API void distill_config_write_json(FILE *f, const distill_config *c) {
    fprintf(f, "{\"vocab_size\": %d, \"dim\": %d, \"n_layers\": %d, \"n_heads\": %d, \"n_kv_heads\": %d, "
               "\"hidden_dim\": %d, \"rope_theta\": %.9g, \"norm_eps\": %.9g, \"qkv_bias\": %d, "
               "\"tie_embeddings\": %d, \"init_std\": %.9g, \"scale_residual_init\": %d}",
            c->vocab_size, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim,
            (double)c->rope_theta, (double)c->norm_eps, c->qkv_bias, c->tie_embeddings,
            (double)c->init_std, c->scale_residual_init);
}

/* Integer field of a JSON object, range-checked; a missing field keeps *out when optional. */
static int distill__json_int(const distill_json *o, const char *key, int *out, int optional,
                             int lo, int hi, const char *file, distill_error *err) {
    const distill_json *v = distill_json_get(o, key);
    if (!v) return optional ? 0 : distill__err(err, "%s: missing field '%s'", file, key);
    if (v->type == DISTILL_JSON_TRUE || v->type == DISTILL_JSON_FALSE) {
        *out = v->type == DISTILL_JSON_TRUE;
        return 0;
    }
    if (v->type != DISTILL_JSON_NUMBER || !v->is_int || v->i64 < lo || v->i64 > hi)
        return distill__err(err, "%s:%d: field '%s': expected an integer in [%d, %d]", file, v->line, key, lo, hi);
    *out = (int)v->i64;
    return 0;
}
static int distill__json_float(const distill_json *o, const char *key, float *out, int optional,
                               const char *file, distill_error *err) {
    const distill_json *v = distill_json_get(o, key);
    if (!v) return optional ? 0 : distill__err(err, "%s: missing field '%s'", file, key);
    if (v->type != DISTILL_JSON_NUMBER || !(fabs(v->num) < 1e30))
        return distill__err(err, "%s:%d: field '%s': expected a number", file, v->line, key);
    *out = (float)v->num;
    return 0;
}

static int distill__config_from_json(const distill_json *o, distill_config *c, const char *file,
                                     distill_error *err) {
    *c = distill_config_default();
    if (!o || o->type != DISTILL_JSON_OBJECT) return distill__err(err, "%s: field 'config': expected an object", file);
    if (distill__json_int(o, "vocab_size", &c->vocab_size, 0, 1, 1 << 24, file, err) ||
        distill__json_int(o, "dim", &c->dim, 0, 1, 1 << 16, file, err) ||
        distill__json_int(o, "n_layers", &c->n_layers, 0, 1, 1024, file, err) ||
        distill__json_int(o, "n_heads", &c->n_heads, 0, 1, 4096, file, err) ||
        distill__json_int(o, "n_kv_heads", &c->n_kv_heads, 0, 1, 4096, file, err) ||
        distill__json_int(o, "hidden_dim", &c->hidden_dim, 0, 1, 1 << 20, file, err) ||
        distill__json_float(o, "rope_theta", &c->rope_theta, 0, file, err) ||
        distill__json_float(o, "norm_eps", &c->norm_eps, 0, file, err) ||
        distill__json_int(o, "qkv_bias", &c->qkv_bias, 0, 0, 1, file, err) ||
        distill__json_int(o, "tie_embeddings", &c->tie_embeddings, 0, 0, 1, file, err) ||
        distill__json_float(o, "init_std", &c->init_std, 1, file, err) ||
        distill__json_int(o, "scale_residual_init", &c->scale_residual_init, 1, 0, 1, file, err))
        return -1;
    if (distill_config_validate(c, err) != 0) {
        char tmp[sizeof err->msg];
        snprintf(tmp, sizeof tmp, "%.200s: %.300s", file, err->msg);
        memcpy(err->msg, tmp, sizeof tmp);
        return -1;
    }
    return 0;
}

static int distill__fwrite_all(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1; }

DISTILL_API int distill_checkpoint_write(const char *path, const distill_model *m, int with_optimizer,
                                         const char *train_json, const distill_ckpt_section *extra,
                                         int n_extra, distill_error *err) {
    /* The JSON header is built in memory first (its length goes in the fixed header), then the
       sections stream out in order while the CRC is updated. */
    distill_ckpt_section secs[64];
    int ns = 0, i;
    char *json = NULL;
    size_t json_len = 0, off = 0;
    FILE *mf;
    unsigned char hdr[DISTILL__CKPT_HDR];
    uint32_t crc;
    distill_atomic_file af;
    if (n_extra < 0 || n_extra > 60) return distill__err(err, "%s: too many checkpoint sections", path);
    secs[ns].name = "params"; secs[ns].data = m->params; secs[ns].size = m->num_floats * sizeof(float); ns++;
    if (with_optimizer && m->m && m->v) {
        secs[ns].name = "adam_m"; secs[ns].data = m->m; secs[ns].size = m->num_floats * sizeof(float); ns++;
        secs[ns].name = "adam_v"; secs[ns].data = m->v; secs[ns].size = m->num_floats * sizeof(float); ns++;
    }
    for (i = 0; i < n_extra; i++) secs[ns++] = extra[i];
    mf = tmpfile();
    if (!mf) return distill__err(err, "%s: cannot create a temporary buffer: %s", path, strerror(errno));
    fprintf(mf, "{\"format\": \"distill-checkpoint\", \"version\": %u, \"config\": ", DISTILL__CKPT_VERSION);
    distill_config_write_json(mf, &m->cfg);
    fprintf(mf, ", \"num_params\": %llu, \"sections\": [", (unsigned long long)m->num_params);
    for (i = 0; i < ns; i++) {
        fprintf(mf, "%s{\"name\": ", i ? ", " : "");
        distill_json_write_string(mf, secs[i].name, strlen(secs[i].name));
        fprintf(mf, ", \"offset\": %llu, \"size\": %llu}", (unsigned long long)off, (unsigned long long)secs[i].size);
        off += secs[i].size;
    }
    fprintf(mf, "], \"train\": %s}\n", train_json ? train_json : "null");
    if (ferror(mf)) { fclose(mf); return distill__err(err, "%s: cannot format the header", path); }
    json_len = (size_t)ftell(mf);
    json = (char *)DISTILL_MALLOC(json_len + 1);
    rewind(mf);
    if (!json || fread(json, 1, json_len, mf) != json_len) {
        fclose(mf); DISTILL_FREE(json);
        return distill__err(err, "%s: out of memory for the header", path);
    }
    fclose(mf);
    crc = distill_crc32(0, json, json_len);
    for (i = 0; i < ns; i++) crc = distill_crc32(crc, secs[i].data, secs[i].size);
    memcpy(hdr, DISTILL__CKPT_MAGIC, 8);
    distill__put_u32(hdr + 8, DISTILL__CKPT_VERSION);
    distill__put_u32(hdr + 12, 0);
    distill__put_u64(hdr + 16, json_len);
    distill__put_u64(hdr + 24, off);
    distill__put_u32(hdr + 32, crc);
    distill__put_u32(hdr + 36, distill_crc32(0, hdr, 36));
    if (distill_atomic_open(&af, path, err) != 0) { DISTILL_FREE(json); return -1; }
    if (distill__fwrite_all(af.f, hdr, sizeof hdr) || distill__fwrite_all(af.f, json, json_len)) goto wfail;
    for (i = 0; i < ns; i++) if (distill__fwrite_all(af.f, secs[i].data, secs[i].size)) goto wfail;
    DISTILL_FREE(json);
    return distill_atomic_commit(&af, err);
wfail:
    distill__err(err, "%s: write failed: %s", path, strerror(errno));
    distill_atomic_abort(&af);
    DISTILL_FREE(json);
    return -1;
}

DISTILL_API void distill_checkpoint_free(distill_checkpoint *ck) {
    if (!ck) return;
    distill_json_free(ck->json);
    DISTILL_FREE(ck->file);
    DISTILL_FREE(ck->path);
    DISTILL_FREE(ck);
}

DISTILL_API distill_checkpoint *distill_checkpoint_read(const char *path, distill_error *err) {
    distill_checkpoint *ck = (distill_checkpoint *)DISTILL_MALLOC(sizeof *ck);
    uint64_t jl, dl;
    const distill_json *secs, *tr;
    size_t i;
    if (!ck) { distill__err(err, "%s: out of memory", path); return NULL; }
    memset(ck, 0, sizeof *ck);
    ck->path = distill__strdup(path);
    ck->file = (unsigned char *)distill_read_file(path, &ck->file_size, err);
    if (!ck->file || !ck->path) goto fail;
    if (ck->file_size < DISTILL__CKPT_HDR || memcmp(ck->file, DISTILL__CKPT_MAGIC, 8) != 0) {
        distill__err(err, "%s: not a distill checkpoint (bad magic or shorter than its header)", path);
        goto fail;
    }
    if (distill_crc32(0, ck->file, 36) != distill__get_u32(ck->file + 36)) {
        distill__err(err, "%s: header checksum mismatch: the checkpoint is corrupt", path);
        goto fail;
    }
    if (distill__get_u32(ck->file + 8) != DISTILL__CKPT_VERSION) {
        distill__err(err, "%s: checkpoint version %u is not supported (this build reads %u)", path,
                     distill__get_u32(ck->file + 8), DISTILL__CKPT_VERSION);
        goto fail;
    }
    jl = distill__get_u64(ck->file + 16);
    dl = distill__get_u64(ck->file + 24);
    if (jl > ck->file_size - DISTILL__CKPT_HDR || dl != ck->file_size - DISTILL__CKPT_HDR - jl) {
        distill__err(err, "%s: file is %zu bytes but its header says %llu + %llu (truncated?)", path,
                     ck->file_size, (unsigned long long)jl, (unsigned long long)dl);
        goto fail;
    }
    if (distill_crc32(0, ck->file + DISTILL__CKPT_HDR, ck->file_size - DISTILL__CKPT_HDR) != distill__get_u32(ck->file + 32)) {
        distill__err(err, "%s: checksum mismatch: the checkpoint is corrupt", path);
        goto fail;
    }
    ck->json = distill_json_parse((const char *)ck->file + DISTILL__CKPT_HDR, (size_t)jl, path, 1, err);
    if (!ck->json) goto fail;
    ck->data = ck->file + DISTILL__CKPT_HDR + jl;
    ck->data_size = (size_t)dl;
    if (distill__config_from_json(distill_json_get(ck->json, "config"), &ck->cfg, path, err) != 0) goto fail;
    secs = distill_json_get(ck->json, "sections");
    if (!secs || secs->type != DISTILL_JSON_ARRAY) { distill__err(err, "%s: field 'sections': expected an array", path); goto fail; }
    for (i = 0; i < secs->len; i++) {
        const distill_json *s = &secs->items[i], *o = distill_json_get(s, "offset"), *z = distill_json_get(s, "size"),
                           *n = distill_json_get(s, "name");
        if (!n || n->type != DISTILL_JSON_STRING || !o || !o->is_int || !z || !z->is_int || o->i64 < 0 || z->i64 < 0 ||
            (uint64_t)o->i64 > dl || (uint64_t)z->i64 > dl - (uint64_t)o->i64) {
            distill__err(err, "%s: section %zu: bad name, offset or size (data is %llu bytes)", path, i, (unsigned long long)dl);
            goto fail;
        }
    }
    tr = distill_json_get(ck->json, "train");
    ck->train = tr && tr->type == DISTILL_JSON_OBJECT ? tr : NULL;
    return ck;
fail:
    distill_checkpoint_free(ck);
    return NULL;
}

DISTILL_API const void *distill_checkpoint_section(const distill_checkpoint *ck, const char *name,
                                                   size_t *size) {
    const distill_json *secs = distill_json_get(ck->json, "sections");
    size_t i;
    for (i = 0; secs && i < secs->len; i++) {
        const distill_json *n = distill_json_get(&secs->items[i], "name");
        if (n && !strcmp(n->str, name)) {
            if (size) *size = (size_t)distill_json_get(&secs->items[i], "size")->i64;
            return ck->data + distill_json_get(&secs->items[i], "offset")->i64;
        }
    }
    if (size) *size = 0;
    return NULL;
}

static int distill__ensure_moments(distill_model *m) {
    if (!m->m) m->m = (float *)distill_alloc_aligned(m->num_floats * sizeof(float), 64);
    if (!m->v) m->v = (float *)distill_alloc_aligned(m->num_floats * sizeof(float), 64);
    return m->m && m->v ? 0 : -1;
}

DISTILL_API int distill_checkpoint_restore(const distill_checkpoint *ck, distill_model *m,
                                           int with_optimizer, distill_error *err) {
    size_t n, want = m->num_floats * sizeof(float);
    const void *p = distill_checkpoint_section(ck, "params", &n);
    if (memcmp(&ck->cfg, &m->cfg, sizeof m->cfg) != 0 &&
        (ck->cfg.vocab_size != m->cfg.vocab_size || ck->cfg.dim != m->cfg.dim || ck->cfg.n_layers != m->cfg.n_layers ||
         ck->cfg.n_heads != m->cfg.n_heads || ck->cfg.n_kv_heads != m->cfg.n_kv_heads ||
         ck->cfg.hidden_dim != m->cfg.hidden_dim || ck->cfg.qkv_bias != m->cfg.qkv_bias ||
         ck->cfg.tie_embeddings != m->cfg.tie_embeddings))
        return distill__err(err, "%s: the checkpoint's model config differs from the model's", ck->path);
    if (!p || n != want)
        return distill__err(err, "%s: section 'params' is %zu bytes, the model needs %zu", ck->path, n, want);
    memcpy(m->params, p, want);
    if (with_optimizer) {
        const void *pm = distill_checkpoint_section(ck, "adam_m", &n);
        size_t nv;
        const void *pv = distill_checkpoint_section(ck, "adam_v", &nv);
        if (pm && pv) {
            if (n != want || nv != want) return distill__err(err, "%s: AdamW moment sections have the wrong size", ck->path);
            if (distill__ensure_moments(m) != 0) return distill__err(err, "out of memory for AdamW moments");
            memcpy(m->m, pm, want);
            memcpy(m->v, pv, want);
        }
    }
    return 0;
}

/* ---- safetensors --------------------------------------------------------------------------
   <u64 header length N> <N bytes of JSON: name -> {dtype, shape, data_offsets [begin, end)}>
   <data>. Offsets are relative to the start of data. */

/* path of a file next to `path` (same directory) */
static char *distill__sibling(const char *path, const char *name) {
    const char *slash = strrchr(path, '/');
    size_t d = slash ? (size_t)(slash - path) + 1 : 0, n = d + strlen(name) + 1;
    char *s = (char *)DISTILL_MALLOC(n);
    if (!s) return NULL;
    memcpy(s, path, d);
    memcpy(s + d, name, strlen(name) + 1);
    return s;
}

static int distill__write_hf_config(const distill_model *m, const char *path, distill_error *err) {
    const distill_config *c = &m->cfg;
    char *cp = distill__sibling(path, "config.json");
    distill_atomic_file af;
    int rc;
    if (!cp) return distill__err(err, "out of memory");
    if (distill_atomic_open(&af, cp, err) != 0) { DISTILL_FREE(cp); return -1; }
    fprintf(af.f,
            "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n  \"hidden_size\": %d,\n"
            "  \"intermediate_size\": %d,\n  \"num_attention_heads\": %d,\n  \"num_hidden_layers\": %d,\n"
            "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"vocab_size\": %d,\n  \"rms_norm_eps\": %.9g,\n"
            "  \"rope_theta\": %.9g,\n  \"tie_word_embeddings\": %s,\n  \"max_position_embeddings\": %d,\n"
            "  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"torch_dtype\": \"float32\"\n}\n",
            c->qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM", c->qkv_bias ? "qwen2" : "llama",
            c->dim, c->hidden_dim, c->n_heads, c->n_layers, c->n_kv_heads, c->dim / c->n_heads,
            c->vocab_size, (double)c->norm_eps, (double)c->rope_theta,
            c->tie_embeddings ? "true" : "false", m->max_seq > 0 ? m->max_seq : 2048);
    rc = distill_atomic_commit(&af, err);
    DISTILL_FREE(cp);
    return rc;
}

DISTILL_API int distill_safetensors_save(const distill_model *m, const char *path, distill_error *err) {
    FILE *mf = tmpfile();
    char *hj;
    size_t hl, padded, off = 0;
    unsigned char n8[8];
    distill_atomic_file af;
    int i, first = 1;
    if (!mf) return distill__err(err, "%s: cannot create a temporary buffer", path);
    fprintf(mf, "{\"__metadata__\": {\"format\": \"pt\"}");
    for (i = 0; i < m->n_tensors; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        fprintf(mf, ", \"%s\": {\"dtype\": \"F32\", \"shape\": [%d", t->name, t->shape[0]);
        if (t->ndim == 2) fprintf(mf, ", %d", t->shape[1]);
        fprintf(mf, "], \"data_offsets\": [%llu, %llu]}", (unsigned long long)off,
                (unsigned long long)(off + t->numel * 4));
        off += t->numel * 4;
        first = 0;
    }
    (void)first;
    fprintf(mf, "}");
    hl = (size_t)ftell(mf);
    padded = (hl + 7) & ~(size_t)7;     /* data 8-byte aligned, padding with spaces as the spec allows */
    hj = (char *)DISTILL_MALLOC(padded);
    rewind(mf);
    if (!hj || fread(hj, 1, hl, mf) != hl) { fclose(mf); DISTILL_FREE(hj); return distill__err(err, "%s: out of memory", path); }
    fclose(mf);
    memset(hj + hl, ' ', padded - hl);
    distill__put_u64(n8, padded);
    if (distill_atomic_open(&af, path, err) != 0) { DISTILL_FREE(hj); return -1; }
    if (distill__fwrite_all(af.f, n8, 8) || distill__fwrite_all(af.f, hj, padded)) goto wfail;
    for (i = 0; i < m->n_tensors; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        if (distill__fwrite_all(af.f, m->params + t->offset, t->numel * sizeof(float))) goto wfail;
    }
    DISTILL_FREE(hj);
    if (distill_atomic_commit(&af, err) != 0) return -1;
    return distill__write_hf_config(m, path, err);
wfail:
    distill__err(err, "%s: write failed: %s", path, strerror(errno));
    distill_atomic_abort(&af);
    DISTILL_FREE(hj);
    return -1;
}

static int distill__hf_config(const char *path, distill_config *c, distill_error *err) {
    distill_json *j = distill_json_parse_file(path, err);
    const distill_json *mt, *hd;
    int bias = 0, head_dim = 0;
    if (!j) return -1;
    *c = distill_config_default();
    c->n_kv_heads = -1;
    c->tie_embeddings = 0;
    c->rope_theta = 10000.0f;
    if (distill__json_int(j, "vocab_size", &c->vocab_size, 0, 1, 1 << 24, path, err) ||
        distill__json_int(j, "hidden_size", &c->dim, 0, 1, 1 << 16, path, err) ||
        distill__json_int(j, "num_hidden_layers", &c->n_layers, 0, 1, 1024, path, err) ||
        distill__json_int(j, "num_attention_heads", &c->n_heads, 0, 1, 4096, path, err) ||
        distill__json_int(j, "num_key_value_heads", &c->n_kv_heads, 1, 1, 4096, path, err) ||
        distill__json_int(j, "intermediate_size", &c->hidden_dim, 0, 1, 1 << 20, path, err) ||
        distill__json_float(j, "rms_norm_eps", &c->norm_eps, 1, path, err) ||
        distill__json_float(j, "rope_theta", &c->rope_theta, 1, path, err) ||
        distill__json_int(j, "tie_word_embeddings", &c->tie_embeddings, 1, 0, 1, path, err) ||
        distill__json_int(j, "attention_bias", &bias, 1, 0, 1, path, err) ||
        distill__json_int(j, "head_dim", &head_dim, 1, 0, 1 << 16, path, err)) {
        distill_json_free(j);
        return -1;
    }
    if (c->n_kv_heads < 0) c->n_kv_heads = c->n_heads;
    mt = distill_json_get(j, "model_type");
    if (mt && mt->type == DISTILL_JSON_STRING && !strcmp(mt->str, "qwen2")) c->qkv_bias = 1;
    else if (mt && mt->type == DISTILL_JSON_STRING && strcmp(mt->str, "llama") != 0) {
        distill__err(err, "%s: model_type '%s' is not supported (llama or qwen2)", path, mt->str);
        distill_json_free(j);
        return -1;
    }
    hd = distill_json_get(j, "hidden_act");
    if ((hd && hd->type == DISTILL_JSON_STRING && strcmp(hd->str, "silu") != 0) || bias) {
        distill__err(err, "%s: %s is not supported (only SiLU activations, no attention_bias on Llama)", path,
                     bias ? "attention_bias" : "hidden_act");
        distill_json_free(j);
        return -1;
    }
    distill_json_free(j);
    if (head_dim && head_dim * c->n_heads != c->dim)
        return distill__err(err, "%s: head_dim %d != hidden_size / num_attention_heads", path, head_dim);
    if (distill_config_validate(c, err) != 0) {
        char tmp[sizeof err->msg];
        snprintf(tmp, sizeof tmp, "%.200s: %.300s", path, err->msg);
        memcpy(err->msg, tmp, sizeof tmp);
        return -1;
    }
    return 0;
}

static float distill__half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, f = h & 0x3ff, u;
    float out;
    if (e == 0) { /* zero or subnormal: value f * 2^-24 */
        out = (float)f * 5.9604644775390625e-8f;
        return s ? -out : out;
    }
    if (e == 31) u = s | 0x7f800000u | (f << 13);
    else u = s | ((e + 112) << 23) | (f << 13);
    memcpy(&out, &u, 4);
    return out;
}

static distill_model *distill__load_safetensors(const unsigned char *buf, size_t size, const char *path,
                                                int max_batch, int max_seq, distill_error *err) {
    distill_config cfg;
    char *cp = distill__sibling(path, "config.json");
    distill_json *h = NULL;
    distill_model *m = NULL;
    uint64_t hl;
    const unsigned char *data;
    size_t dsize;
    int i, have_lm = 0;
    if (!cp) { distill__err(err, "out of memory"); return NULL; }
    if (distill__hf_config(cp, &cfg, err) != 0) { DISTILL_FREE(cp); return NULL; }
    DISTILL_FREE(cp);
    hl = distill__get_u64(buf);
    if (hl > size - 8) { distill__err(err, "%s: header length %llu exceeds the file size %zu", path, (unsigned long long)hl, size); return NULL; }
    h = distill_json_parse((const char *)buf + 8, (size_t)hl, path, 1, err);
    if (!h) return NULL;
    if (h->type != DISTILL_JSON_OBJECT) { distill__err(err, "%s: safetensors header is not an object", path); goto fail; }
    data = buf + 8 + hl;
    dsize = size - 8 - (size_t)hl;
    have_lm = distill_json_get(h, "lm_head.weight") != NULL;
    if (!have_lm) cfg.tie_embeddings = 1;   /* HF omits lm_head when tied */
    else cfg.tie_embeddings = 0;
    /* at 2 bytes a value (F16/BF16) at least, the data must hold config.json's parameters
       before the model is allocated */
    if (dsize / 2 < distill__count_params(&cfg, NULL)) {
        distill__err(err, "%s: %zu bytes of tensor data cannot hold the %zu parameters config.json describes",
                     path, dsize, distill__count_params(&cfg, NULL));
        goto fail;
    }
    m = distill_model_create(&cfg, max_batch, max_seq, 0, err);
    if (!m) goto fail;
    for (i = 0; i < m->n_tensors; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        const distill_json *e = distill_json_get(h, t->name), *dt, *sh, *of;
        int64_t b, en;
        size_t esz, k;
        float *dst = m->params + t->offset;
        if (!e) { distill__err(err, "%s: tensor '%s' is missing", path, t->name); goto fail; }
        dt = distill_json_get(e, "dtype"); sh = distill_json_get(e, "shape"); of = distill_json_get(e, "data_offsets");
        if (!dt || dt->type != DISTILL_JSON_STRING || !sh || sh->type != DISTILL_JSON_ARRAY || !of ||
            of->type != DISTILL_JSON_ARRAY || of->len != 2 || !of->items[0].is_int || !of->items[1].is_int) {
            distill__err(err, "%s: tensor '%s': malformed entry (dtype, shape, data_offsets)", path, t->name);
            goto fail;
        }
        if ((int)sh->len != t->ndim || !sh->items[0].is_int || sh->items[0].i64 != t->shape[0] ||
            (t->ndim == 2 && (!sh->items[1].is_int || sh->items[1].i64 != t->shape[1]))) {
            distill__err(err, "%s: tensor '%s' has the wrong shape for config.json (expected [%d%s%d])", path, t->name,
                         t->shape[0], t->ndim == 2 ? ", " : "", t->ndim == 2 ? t->shape[1] : 0);
            goto fail;
        }
        esz = !strcmp(dt->str, "F32") ? 4 : (!strcmp(dt->str, "F16") || !strcmp(dt->str, "BF16")) ? 2 : 0;
        if (!esz) { distill__err(err, "%s: tensor '%s': dtype %s is not supported (F32, F16, BF16)", path, t->name, dt->str); goto fail; }
        b = of->items[0].i64; en = of->items[1].i64;
        if (b < 0 || en < b || (uint64_t)en > dsize || (uint64_t)(en - b) != t->numel * esz) {
            distill__err(err, "%s: tensor '%s': data_offsets [%lld, %lld] do not fit the data (%zu bytes) or the shape",
                         path, t->name, (long long)b, (long long)en, dsize);
            goto fail;
        }
        for (k = 0; k < t->numel; k++) {
            const unsigned char *p = data + b + k * esz;
            if (esz == 4) dst[k] = distill__get_f32(p);
            else if (dt->str[0] == 'B') { uint32_t u = (uint32_t)(p[0] | (p[1] << 8)) << 16; memcpy(&dst[k], &u, 4); }
            else dst[k] = distill__half_to_float((uint16_t)(p[0] | (p[1] << 8)));
        }
    }
    distill_json_free(h);
    return m;
fail:
    distill_json_free(h);
    distill_model_free(m);
    return NULL;
}

/* ---- llama2.c ------------------------------------------------------------------------------
   Header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: separate
   classifier), seq_len as int32. Then float32: token_embedding (V,C), rms_att (L,C), wq (L,C,C),
   wk (L,KV,C), wv (L,KV,C), wo (L,C,C), rms_ffn (L,C), w1 (L,F,C), w2 (L,C,F), w3 (L,F,C),
   rms_final (C), freq_cis_real and _imag (seq_len, HS/2) (unused), wcls (V,C) if unshared.
   llama2.c rotates interleaved pairs (x[2i], x[2i+1]); HF Llama rotates halves (x[i], x[i+HS/2]).
   Row 2i+h of a head in llama2.c's wq/wk becomes row h*HS/2 + i here (as HF's conversion does),
   which makes q.k identical under the two conventions. */
static void distill__rope_permute(float *dst, const float *src, int n_heads, int hs, int C, int to_hf) {
    int h, i, half;
    for (h = 0; h < n_heads; h++)
        for (half = 0; half < 2; half++)
            for (i = 0; i < hs / 2; i++) {
                size_t hf = (size_t)h * hs + (size_t)half * (hs / 2) + i, il = (size_t)h * hs + 2 * (size_t)i + half;
                if (to_hf) memcpy(dst + hf * C, src + il * C, sizeof(float) * (size_t)C);
                else memcpy(dst + il * C, src + hf * C, sizeof(float) * (size_t)C);
            }
}

static distill_model *distill__load_llama2c(const unsigned char *buf, size_t size, const char *path,
                                            int max_batch, int max_seq, distill_error *err) {
    int hdr[7], i, l, shared;
    distill_config cfg;
    distill_model *m;
    size_t C, F, V, L, KV, HS, need = 0, seq, off = 28, per;
    const float *w;
    for (i = 0; i < 7; i++) hdr[i] = (int)distill__get_u32(buf + 4 * i);
    shared = hdr[5] > 0;
    cfg = distill_config_default();
    cfg.dim = hdr[0]; cfg.hidden_dim = hdr[1]; cfg.n_layers = hdr[2]; cfg.n_heads = hdr[3];
    cfg.n_kv_heads = hdr[4]; cfg.vocab_size = hdr[5] < -(1 << 24) ? 0 : hdr[5] < 0 ? -hdr[5] : hdr[5];   /* -INT_MIN overflows */
    cfg.rope_theta = 10000.0f; cfg.norm_eps = 1e-5f; cfg.qkv_bias = 0; cfg.tie_embeddings = shared;
    if (hdr[0] <= 0 || hdr[1] <= 0 || hdr[2] <= 0 || hdr[3] <= 0 || hdr[4] <= 0 || hdr[5] == 0 || hdr[6] <= 0 ||
        hdr[0] > 65536 || hdr[1] > (1 << 20) || hdr[2] > 1024 || hdr[3] > 4096 || hdr[5] < -(1 << 24) ||
        hdr[5] > (1 << 24) || hdr[6] > (1 << 24) || hdr[0] % hdr[3] != 0 || (hdr[0] / hdr[3]) % 2 != 0) {
        distill__err(err, "%s: unrecognised model file: not a distill checkpoint or safetensors, and not a llama2.c .bin either (implausible header: dim %d, hidden %d, layers %d, "
                     "heads %d, kv_heads %d, vocab %d, seq_len %d)", path, hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], hdr[6]);
        return NULL;
    }
    if (distill_config_validate(&cfg, err) != 0) return NULL;
    C = (size_t)cfg.dim; F = (size_t)cfg.hidden_dim; V = (size_t)cfg.vocab_size; L = (size_t)cfg.n_layers;
    HS = C / (size_t)cfg.n_heads; KV = HS * (size_t)cfg.n_kv_heads; seq = (size_t)hdr[6];
    /* every size in double first so absurd headers cannot overflow the check */
    {
        double dn = (double)V * C + (double)L * (2.0 * C + 2.0 * C * C + 2.0 * KV * C + 3.0 * F * C) + C +
                    (double)seq * HS + (shared ? 0.0 : (double)V * C);
        if (dn * 4.0 != (double)(size - 28)) {
            distill__err(err, "%s: a llama2.c model with this header needs %.0f bytes of weights, the file has %zu "
                         "(truncated, or not a llama2.c .bin)", path, dn * 4.0, size - 28);
            return NULL;
        }
        need = (size_t)dn;
    }
    (void)need;
    m = distill_model_create(&cfg, max_batch, max_seq, 0, err);
    if (!m) return NULL;
    w = (const float *)(const void *)(buf + off);   /* read through memcpy below: alignment */
    (void)w;
#define DISTILL__L2C_READ(dst, n) do { memcpy((dst), buf + off, sizeof(float) * (n)); off += sizeof(float) * (n); } while (0)
    DISTILL__L2C_READ(m->tok_emb, V * C);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].attn_norm, C);
    per = C * C;
    {
        float *tmp = (float *)DISTILL_MALLOC(sizeof(float) * (per > F * C ? per : F * C));
        if (!tmp) { distill_model_free(m); distill__err(err, "out of memory"); return NULL; }
        for (l = 0; l < (int)L; l++) { DISTILL__L2C_READ(tmp, C * C); distill__rope_permute(m->layers[l].wq, tmp, cfg.n_heads, (int)HS, (int)C, 1); }
        for (l = 0; l < (int)L; l++) { DISTILL__L2C_READ(tmp, KV * C); distill__rope_permute(m->layers[l].wk, tmp, cfg.n_kv_heads, (int)HS, (int)C, 1); }
        DISTILL_FREE(tmp);
    }
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].wv, KV * C);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].wo, C * C);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].ffn_norm, C);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].w_gate, F * C);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].w_down, C * F);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].w_up, F * C);
    DISTILL__L2C_READ(m->final_norm, C);
    off += 2 * sizeof(float) * seq * (HS / 2);   /* freq_cis: recomputed by the model */
    if (!shared) DISTILL__L2C_READ(m->lm_head, V * C);
#undef DISTILL__L2C_READ
    return m;
}

DISTILL_API int distill_llama2c_save(const distill_model *m, const char *path, distill_error *err) {
    const distill_config *c = &m->cfg;
    size_t C = (size_t)c->dim, F = (size_t)c->hidden_dim, V = (size_t)c->vocab_size, HS = C / (size_t)c->n_heads;
    size_t KV = HS * (size_t)c->n_kv_heads, seq = m->max_seq > 0 ? (size_t)m->max_seq : 256, p, i;
    int hdr[7], l;
    unsigned char hb[28];
    float *tmp;
    distill_atomic_file af;
    if (c->qkv_bias || c->rope_theta != 10000.0f || fabsf(c->norm_eps - 1e-5f) > 1e-9f || (HS * (size_t)c->n_heads) != C)
        return distill__err(err, "%s: llama2.c format needs no qkv bias, rope_theta 10000 and norm_eps 1e-5 "
                            "(this model: qkv_bias %d, rope_theta %g, norm_eps %g)", path, c->qkv_bias,
                            (double)c->rope_theta, (double)c->norm_eps);
    hdr[0] = c->dim; hdr[1] = c->hidden_dim; hdr[2] = c->n_layers; hdr[3] = c->n_heads; hdr[4] = c->n_kv_heads;
    hdr[5] = c->tie_embeddings ? c->vocab_size : -c->vocab_size; hdr[6] = (int)seq;
    for (i = 0; i < 7; i++) distill__put_u32(hb + 4 * i, (uint32_t)hdr[i]);
    tmp = (float *)DISTILL_MALLOC(sizeof(float) * (C * C > seq * HS ? C * C : seq * HS));
    if (!tmp) return distill__err(err, "out of memory");
    if (distill_atomic_open(&af, path, err) != 0) { DISTILL_FREE(tmp); return -1; }
#define DISTILL__L2C_W(src, n) do { if (distill__fwrite_all(af.f, (src), sizeof(float) * (n))) goto wfail; } while (0)
    if (distill__fwrite_all(af.f, hb, 28)) goto wfail;
    DISTILL__L2C_W(m->tok_emb, V * C);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].attn_norm, C);
    for (l = 0; l < c->n_layers; l++) { distill__rope_permute(tmp, m->layers[l].wq, c->n_heads, (int)HS, (int)C, 0); DISTILL__L2C_W(tmp, C * C); }
    for (l = 0; l < c->n_layers; l++) { distill__rope_permute(tmp, m->layers[l].wk, c->n_kv_heads, (int)HS, (int)C, 0); DISTILL__L2C_W(tmp, KV * C); }
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].wv, KV * C);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].wo, C * C);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].ffn_norm, C);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].w_gate, F * C);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].w_down, C * F);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].w_up, F * C);
    DISTILL__L2C_W(m->final_norm, C);
    for (i = 0; i < 2; i++) {   /* freq_cis real, imag: cos/sin(pos * theta^(-2j/HS)) */
        for (p = 0; p < seq; p++) {
            size_t j;
            for (j = 0; j < HS / 2; j++) {
                double a = (double)p * pow(10000.0, -2.0 * (double)j / (double)HS);
                tmp[p * (HS / 2) + j] = (float)(i == 0 ? cos(a) : sin(a));
            }
        }
        DISTILL__L2C_W(tmp, seq * (HS / 2));
    }
    if (!c->tie_embeddings) DISTILL__L2C_W(m->lm_head, V * C);
#undef DISTILL__L2C_W
    DISTILL_FREE(tmp);
    return distill_atomic_commit(&af, err);
wfail:
    distill__err(err, "%s: write failed: %s", path, strerror(errno));
    distill_atomic_abort(&af);
    DISTILL_FREE(tmp);
    return -1;
}

/* ---- format detection and the one loader ---------------------------------------------------- */
static const char *distill__detect(const unsigned char *b, size_t n) {
    if (n >= DISTILL__CKPT_HDR && !memcmp(b, DISTILL__CKPT_MAGIC, 8)) return "checkpoint";
    if (n >= 10 && distill__get_u64(b) <= n - 8 && b[8] == '{') return "safetensors";
    if (n >= 28) return "llama2c";
    return NULL;
}

DISTILL_API const char *distill_model_file_format(const char *path, distill_error *err) {
    unsigned char b[40];
    size_t n;
    FILE *f = fopen(path, "rb");
    const char *fmt;
    if (!f) { distill__err(err, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    n = fread(b, 1, sizeof b, f);
    fseek(f, 0, SEEK_END);
    {
        long sz = ftell(f);
        fclose(f);
        fmt = distill__detect(b, sz > 0 ? (size_t)sz : n);
        if (fmt && !strcmp(fmt, "safetensors") && n < 9) fmt = NULL;
    }
    if (!fmt) distill__err(err, "%s: unrecognised model file (not a distill checkpoint, safetensors or llama2.c .bin)", path);
    return fmt;
}

DISTILL_API distill_model *distill_model_load(const char *path, int max_batch, int max_seq,
                                              distill_tokenizer **tok_out, distill_error *err) {
    size_t size;
    unsigned char *buf;
    const char *fmt;
    distill_model *m = NULL;
    if (tok_out) *tok_out = NULL;
    buf = (unsigned char *)distill_read_file(path, &size, err);
    if (!buf) return NULL;
    fmt = distill__detect(buf, size);
    if (!fmt) {
        distill__err(err, "%s: unrecognised model file (%zu bytes; not a distill checkpoint, safetensors or llama2.c .bin)", path, size);
    } else if (!strcmp(fmt, "checkpoint")) {
        distill_checkpoint *ck;
        DISTILL_FREE(buf);
        buf = NULL;
        ck = distill_checkpoint_read(path, err);
        if (ck) {
            /* the params section must hold the config's parameters before the model is
               allocated: a small file claiming a huge model is refused without the allocation */
            size_t have = 0;
            if (!distill_checkpoint_section(ck, "params", &have) || have / sizeof(float) < distill__count_params(&ck->cfg, NULL))
                distill__err(err, "%s: section 'params' is %zu bytes, too small for the model in its config (%zu parameters)",
                             path, have, distill__count_params(&ck->cfg, NULL));
            else
                m = distill_model_create(&ck->cfg, max_batch, max_seq, 0, err);
            if (m && distill_checkpoint_restore(ck, m, 0, err) != 0) { distill_model_free(m); m = NULL; }
            distill_checkpoint_free(ck);
        }
    } else if (!strcmp(fmt, "safetensors")) {
        m = distill__load_safetensors(buf, size, path, max_batch, max_seq, err);
    } else {
        m = distill__load_llama2c(buf, size, path, max_batch, max_seq, err);
    }
    DISTILL_FREE(buf);
    if (m && tok_out) {
        /* a tokenizer beside the model, by the names each ecosystem uses */
        static const char *names[] = {"tokenizer.json", "tokenizer.bin", "tokenizer.txt"};
        size_t i;
        for (i = 0; i < sizeof names / sizeof names[0] && !*tok_out; i++) {
            char *tp = distill__sibling(path, names[i]);
            FILE *f = tp ? fopen(tp, "rb") : NULL;
            if (f) {
                fclose(f);
                *tok_out = distill_tokenizer_load(tp, NULL, err);
                if (!*tok_out) { DISTILL_FREE(tp); distill_model_free(m); return NULL; }
            }
            DISTILL_FREE(tp);
        }
    }
    return m;
}

DISTILL_API void distill_model_sha256(const distill_model *m, char out[65]) {
    distill_sha256 s;
    unsigned char d[32], le[4 * 256];
    size_t i, j;
    int k;
    distill_sha256_init(&s);
    for (k = 0; k < m->n_tensors; k++) {
        const float *p = m->params + m->tensors[k].offset;
        size_t numel = m->tensors[k].numel;
        for (i = 0; i < numel; i += 256) {
            size_t n = numel - i < 256 ? numel - i : 256;
            for (j = 0; j < n; j++) distill__put_f32(le + 4 * j, p[i + j]);
            distill_sha256_update(&s, le, 4 * n);
        }
    }
    distill_sha256_final(&s, d);
    for (k = 0; k < 32; k++) snprintf(out + 2 * k, 3, "%02x", d[k]);
}

/* ======================================================================================= */
/* THE TRAINING LOOP                                                                        */
/* ======================================================================================= */
#if !defined(_WIN32)
#include <sys/stat.h>
#include <dirent.h>
#endif

DISTILL_API distill_train_config distill_train_default(void) {
    distill_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.epochs = 1.0;
    tc.batch_rows = 8;
    tc.grad_accum = 1;
    tc.optim = distill_optim_default();
    tc.eval_batches = 16;
    tc.keep_last = 3;
    tc.progress = 1;
    tc.log_every = 10;
    tc.kdc = distill_kd_default();
    tc.seed = 1;
    return tc;
}

/* One micro-batch copied out of the source (sources reuse their arrays between calls, and a
   whole accumulated step must be in hand before its first forward to know its total weight). */
typedef struct distill__mb {
    distill_batch b;
    int32_t *tokens, *targets, *segments, *positions;
    float *weights;
    int *lengths;
    int64_t *rows;
    int n_rows;
    size_t cap, rows_cap;
} distill__mb;

struct distill_trainer {
    distill_model *m, *teacher;
    const distill_topk_cache *cache;
    distill_batch_source train, eval;
    int has_eval;
    distill_train_config tc;
    distill_kd_head *kd;
    distill__mb *mbs;
    int64_t step, total, tokens_seen;
    double elapsed, t_start, elapsed_at_start;
    int64_t tokens_at_start, step_at_start;
    distill_rng rng;
    distill_step_callback cb;
    void *cb_ctx;
    FILE *metrics;
    char metrics_path[1024];
    int tty;
    double last_eval;
};

static int distill__mb_copy(distill__mb *d, const distill_batch *b, const int64_t *rows, int n_rows) {
    size_t n = (size_t)b->B * (size_t)b->T;
    if (n > d->cap) {
        DISTILL_FREE(d->tokens); DISTILL_FREE(d->targets); DISTILL_FREE(d->segments);
        DISTILL_FREE(d->positions); DISTILL_FREE(d->weights);
        d->tokens = (int32_t *)DISTILL_MALLOC(n * sizeof(int32_t));
        d->targets = (int32_t *)DISTILL_MALLOC(n * sizeof(int32_t));
        d->segments = (int32_t *)DISTILL_MALLOC(n * sizeof(int32_t));
        d->positions = (int32_t *)DISTILL_MALLOC(n * sizeof(int32_t));
        d->weights = (float *)DISTILL_MALLOC(n * sizeof(float));
        d->cap = n;
        if (!d->tokens || !d->targets || !d->segments || !d->positions || !d->weights) { d->cap = 0; return -1; }
    }
    if ((size_t)b->B > d->rows_cap || !d->lengths) {
        DISTILL_FREE(d->lengths); DISTILL_FREE(d->rows);
        d->rows_cap = (size_t)b->B;
        d->lengths = (int *)DISTILL_MALLOC(d->rows_cap * sizeof(int));
        d->rows = (int64_t *)DISTILL_MALLOC(d->rows_cap * sizeof(int64_t));
        if (!d->lengths || !d->rows) { d->rows_cap = 0; return -1; }
    }
    d->b = *b;
    memcpy(d->tokens, b->tokens, n * sizeof(int32_t));
    d->b.tokens = d->tokens;
    if (b->targets) { memcpy(d->targets, b->targets, n * sizeof(int32_t)); d->b.targets = d->targets; }
    if (b->weights) { memcpy(d->weights, b->weights, n * sizeof(float)); d->b.weights = d->weights; }
    if (b->segments) { memcpy(d->segments, b->segments, n * sizeof(int32_t)); d->b.segments = d->segments; }
    if (b->positions) { memcpy(d->positions, b->positions, n * sizeof(int32_t)); d->b.positions = d->positions; }
    if (b->lengths) { memcpy(d->lengths, b->lengths, (size_t)b->B * sizeof(int)); d->b.lengths = d->lengths; }
    d->n_rows = rows && n_rows > 0 ? (n_rows < b->B ? n_rows : b->B) : 0;
    if (d->n_rows) memcpy(d->rows, rows, (size_t)d->n_rows * sizeof(int64_t));
    return 0;
}

static void distill__mb_free(distill__mb *d) {
    DISTILL_FREE(d->tokens); DISTILL_FREE(d->targets); DISTILL_FREE(d->segments);
    DISTILL_FREE(d->positions); DISTILL_FREE(d->weights); DISTILL_FREE(d->lengths); DISTILL_FREE(d->rows);
}

/* Total loss weight of a micro-batch: what the model's head will sum (target >= 0, w > 0, inside
   the row's length). */
static double distill__mb_weight(const distill_batch *b) {
    double w = 0.0;
    int r, t;
    if (!b->targets) return 0.0;
    for (r = 0; r < b->B; r++) {
        int len = b->lengths ? b->lengths[r] : b->T;
        for (t = 0; t < len && t < b->T; t++) {
            size_t p = (size_t)r * b->T + t;
            float wt = b->weights ? b->weights[p] : 1.0f;
            if (b->targets[p] >= 0 && wt > 0.0f) w += wt;
        }
    }
    return w;
}

static int64_t distill__estimate_steps(const distill_trainer *t) {
    const distill_train_config *tc = &t->tc;
    double per, n;
    if (tc->max_steps > 0) return tc->max_steps;
    per = (double)(tc->batch_rows > 0 ? tc->batch_rows : 1) * (double)(tc->grad_accum > 0 ? tc->grad_accum : 1);
    n = ceil(tc->epochs * (double)(t->train.rows_per_epoch > 0 ? t->train.rows_per_epoch : 1) / per);
    return n < 1 ? 1 : (int64_t)n;
}

DISTILL_API distill_trainer *distill_trainer_create(distill_model *student, const distill_batch_source *train,
                                                    const distill_batch_source *eval,
                                                    const distill_train_config *tc, distill_error *err) {
    distill_trainer *t;
    if (!student || !train || !train->next || !tc) { distill__err(err, "distill_trainer_create: missing model, source or config"); return NULL; }
    if (tc->grad_accum < 1 || tc->grad_accum > 65536) { distill__err(err, "grad_accum (%d) must be in [1, 65536]", tc->grad_accum); return NULL; }
    if (tc->max_steps <= 0 && !(tc->epochs > 0.0 && tc->epochs < 1e6)) { distill__err(err, "give max_steps > 0 or epochs in (0, 1e6) (epochs %g)", tc->epochs); return NULL; }
    if (tc->kd && distill_kd_validate(&tc->kdc, err) != 0) return NULL;
    t = (distill_trainer *)DISTILL_MALLOC(sizeof *t);
    if (!t) { distill__err(err, "out of memory"); return NULL; }
    memset(t, 0, sizeof *t);
    t->m = student;
    t->train = *train;
    if (eval && eval->next) { t->eval = *eval; t->has_eval = 1; }
    t->tc = *tc;
    if (t->tc.keep_last < 1) t->tc.keep_last = 1;
    if (t->tc.log_every < 1) t->tc.log_every = 10;
    if (t->tc.eval_batches < 1) t->tc.eval_batches = 16;
    t->total = distill__estimate_steps(t);
    t->tc.optim.total_steps = t->total;
    if (distill_optim_validate(&t->tc.optim, err) != 0) { DISTILL_FREE(t); return NULL; }
    t->mbs = (distill__mb *)DISTILL_MALLOC(sizeof(distill__mb) * (size_t)tc->grad_accum);
    if (!t->mbs) { DISTILL_FREE(t); distill__err(err, "out of memory"); return NULL; }
    memset(t->mbs, 0, sizeof(distill__mb) * (size_t)tc->grad_accum);
    distill_rng_seed(&t->rng, tc->seed);
    if (tc->kd) {
        t->kd = distill_kd_head_create(&tc->kdc, student->cfg.vocab_size, err);
        if (!t->kd) { distill_trainer_free(t); return NULL; }
    }
#if !defined(_WIN32)
    t->tty = isatty(fileno(stdout));
    if (tc->out_dir && mkdir(tc->out_dir, 0755) != 0 && errno != EEXIST) {
        distill__err(err, "%s: cannot create the output directory: %s", tc->out_dir, strerror(errno));
        distill_trainer_free(t);
        return NULL;
    }
#endif
    if (tc->metrics_path || tc->out_dir) {
        char buf[1024];
        const char *mp = tc->metrics_path;
        if (!mp) { snprintf(buf, sizeof buf, "%s/metrics.jsonl", tc->out_dir); mp = buf; }
        snprintf(t->metrics_path, sizeof t->metrics_path, "%s", mp);
        t->metrics = fopen(mp, "a");
        if (!t->metrics) {
            distill__err(err, "%s: cannot open the metrics log: %s", mp, strerror(errno));
            distill_trainer_free(t);
            return NULL;
        }
    }
    t->last_eval = NAN;
    return t;
}

DISTILL_API void distill_trainer_free(distill_trainer *t) {
    int i;
    if (!t) return;
    if (t->mbs) for (i = 0; i < t->tc.grad_accum; i++) distill__mb_free(&t->mbs[i]);
    DISTILL_FREE(t->mbs);
    distill_kd_head_free(t->kd);
    if (t->metrics) fclose(t->metrics);
    DISTILL_FREE(t);
}

DISTILL_API int distill_trainer_set_teacher(distill_trainer *t, distill_model *teacher, distill_error *err) {
    if (!t->kd) return distill__err(err, "set_teacher: the trainer was created without kd = 1");
    if (teacher->cfg.vocab_size != t->m->cfg.vocab_size)
        return distill__err(err, "teacher vocabulary (%d tokens) differs from the student's (%d): logit "
                            "distillation needs a shared tokenizer", teacher->cfg.vocab_size, t->m->cfg.vocab_size);
    t->teacher = teacher;
    t->cache = NULL;
    return 0;
}

DISTILL_API int distill_trainer_set_cache(distill_trainer *t, const distill_topk_cache *c, distill_error *err) {
    if (!t->kd) return distill__err(err, "set_cache: the trainer was created without kd = 1");
    if (c->V != t->m->cfg.vocab_size)
        return distill__err(err, "top-k cache vocabulary (%d) differs from the student's (%d)", c->V, t->m->cfg.vocab_size);
    t->cache = c;
    t->teacher = NULL;
    return 0;
}

DISTILL_API void distill_trainer_set_callback(distill_trainer *t, distill_step_callback fn, void *ctx) {
    t->cb = fn;
    t->cb_ctx = ctx;
}
DISTILL_API int64_t distill_trainer_steps_done(const distill_trainer *t) { return t->step; }
DISTILL_API int64_t distill_trainer_total_steps(const distill_trainer *t) { return t->total; }

/* Global L2 norm of the gradient, in double, in a fixed order. */
static double distill__grad_norm(const distill_model *m) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < m->num_floats; i++) s += (double)m->grads[i] * (double)m->grads[i];
    return sqrt(s);
}

DISTILL_API int distill_trainer_step(distill_trainer *t, distill_step_info *info, distill_error *err) {
    double wsum = 0.0, loss = 0.0, acc = 0.0, ent = 0.0, w_seen = 0.0, gn;
    int64_t tokens = 0;
    float grad_scale;
    int a;
    double t0 = distill_time_seconds();
    if (t->kd && !t->teacher && !t->cache)
        return distill__err(err, "kd = 1 but neither a teacher nor a top-k cache is set");
    /* 1. the whole accumulated batch, copied */
    for (a = 0; a < t->tc.grad_accum; a++) {
        distill_batch b;
        const int64_t *rows = NULL;
        int n_rows = 0;
        memset(&b, 0, sizeof b);
        if (t->train.next(t->train.ctx, &b, &rows, &n_rows, err) != 0) return -1;
        if (distill__mb_copy(&t->mbs[a], &b, rows, n_rows) != 0) return distill__err(err, "out of memory copying a batch");
        wsum += distill__mb_weight(&t->mbs[a].b);
    }
    /* 2. every micro-batch's loss is a sum scaled by 1/(total weight of the whole step), so the
          accumulated gradient is that of the mean over all supervised tokens, however the tokens
          fall into micro-batches (not a mean of per-micro-batch means) */
    grad_scale = wsum > 0.0 ? (float)(1.0 / wsum) : 0.0f;
    distill_model_zero_grad(t->m);
    for (a = 0; a < t->tc.grad_accum && wsum > 0.0; a++) {
        distill__mb *mb = &t->mbs[a];
        distill_stats st;
        distill_head_loss hl;
        const distill_head_loss *hlp = NULL;
        if (t->kd) {
            if (t->teacher) {
                if (distill_kd_head_run_teacher(t->kd, t->teacher, &mb->b, err) != 0) return -1;
            } else {
                if (mb->n_rows != mb->b.B)
                    return distill__err(err, "top-k cache: the batch source does not report dataset rows (packing is not supported with a cache)");
                if (distill_kd_head_set_cache_rows(t->kd, t->cache, mb->rows, &mb->b, err) != 0) return -1;
            }
            hl = distill_kd_head_loss(t->kd);
            hlp = &hl;
        }
        if (distill_model_forward_backward(t->m, &mb->b, hlp, grad_scale, &st, err) != 0) return -1;
        loss += st.loss;
        acc += st.accuracy * st.weight_sum;
        ent += st.entropy * st.weight_sum;
        w_seen += st.weight_sum;
        tokens += st.tokens;
    }
    if (wsum <= 0.0)
        for (a = 0; a < t->tc.grad_accum; a++) {
            const distill_batch *b = &t->mbs[a].b;
            int r;
            for (r = 0; r < b->B; r++) tokens += b->lengths ? b->lengths[r] : b->T;
        }
    /* 3. stop before a non-finite update reaches the weights */
    gn = distill__grad_norm(t->m);
    if (!(loss == loss && fabs(loss) < INFINITY) || !(gn == gn && gn < INFINITY)) {
        /* name the first tensor (in table order) whose weights, else whose gradient, is not finite */
        const distill_tensor_info *bad = NULL;
        int pass, ti;
        size_t k;
        for (pass = 0; pass < 2 && !bad; pass++)
            for (ti = 0; ti < t->m->n_tensors && !bad; ti++) {
                const float *x = (pass ? t->m->grads : t->m->params) + t->m->tensors[ti].offset;
                for (k = 0; k < t->m->tensors[ti].numel && !bad; k++)
                    if (!(fabsf(x[k]) < INFINITY)) bad = &t->m->tensors[ti];
            }
        return distill__err(err, "step %lld: %s is %s (first non-finite tensor: %s %s); training stopped before the update "
                            "(the weights are those after step %lld; lower the learning rate or check the data)", (long long)(t->step + 1),
                            !(loss == loss && fabs(loss) < INFINITY) ? "the loss" : "the gradient norm",
                            (loss != loss || gn != gn) ? "NaN" : "infinite", bad ? bad->name : "none",
                            !bad ? "" : pass == 1 ? "(weights)" : "(gradient)", (long long)t->step);
    }
    if (info) info->lr = distill_lr_at(&t->tc.optim, t->step);
    if (wsum > 0.0) distill_adamw_step(t->m, &t->tc.optim, t->step);
    t->step++;
    t->tokens_seen += tokens;
    t->elapsed += distill_time_seconds() - t0;
    if (info) {
        double rate;
        info->step = t->step;
        info->total_steps = t->total;
        info->epoch = t->train.epoch ? t->train.epoch(t->train.ctx) : 0.0;
        info->loss = loss;
        info->accuracy = w_seen > 0 ? acc / w_seen : 0.0;
        info->entropy = w_seen > 0 ? ent / w_seen : 0.0;
        info->grad_norm = gn;
        info->tokens_seen = t->tokens_seen;
        info->elapsed = t->elapsed;
        rate = t->elapsed - t->elapsed_at_start > 0 ? (double)(t->tokens_seen - t->tokens_at_start) / (t->elapsed - t->elapsed_at_start) : 0.0;
        info->tokens_per_sec = rate;
        info->eta = t->step > t->step_at_start && t->step < t->total
                        ? (t->elapsed - t->elapsed_at_start) / (double)(t->step - t->step_at_start) * (double)(t->total - t->step)
                        : 0.0;
        info->eval_loss = NAN;
    }
    return 0;
}

DISTILL_API int distill_trainer_evaluate(distill_trainer *t, distill_stats *out, distill_error *err) {
    int64_t saved[3], zero[3] = {0, 0, 0}, i;
    double lsum = 0.0, wsum = 0.0, acc = 0.0, ent = 0.0;
    int64_t tok = 0;
    if (!t->has_eval) return distill__err(err, "no evaluation data");
    /* always the same batches: from the source's start, its position restored afterwards */
    t->eval.get_state(t->eval.ctx, saved);
    zero[2] = saved[2];
    if (t->eval.set_state(t->eval.ctx, zero, err) != 0) return -1;
    for (i = 0; i < t->tc.eval_batches; i++) {
        distill_batch b;
        const int64_t *rows = NULL;
        int n_rows = 0;
        distill_stats st;
        memset(&b, 0, sizeof b);
        if (i > 0 && t->eval.epoch && t->eval.epoch(t->eval.ctx) >= 1.0) break;
        if (t->eval.next(t->eval.ctx, &b, &rows, &n_rows, err) != 0) return -1;
        if (distill_model_forward(t->m, &b, NULL, 0.0f, &st, err) != 0) return -1;
        lsum += st.loss * st.weight_sum;   /* forward reports the mean over this batch */
        wsum += st.weight_sum;
        acc += st.accuracy * st.weight_sum;
        ent += st.entropy * st.weight_sum;
        tok += st.tokens;
    }
    if (t->eval.set_state(t->eval.ctx, saved, err) != 0) return -1;
    memset(out, 0, sizeof *out);
    out->loss = wsum > 0 ? lsum / wsum : 0.0;
    out->weight_sum = wsum;
    out->accuracy = wsum > 0 ? acc / wsum : 0.0;
    out->entropy = wsum > 0 ? ent / wsum : 0.0;
    out->tokens = tok;
    return 0;
}

/* ---- checkpoints of the whole training state ---------------------------------------------- */
static char *distill__train_json(const distill_trainer *t) {
    FILE *f = tmpfile();
    int64_t st[3] = {0, 0, 0}, es[3] = {0, 0, 0};
    const distill_optim_config *o = &t->tc.optim;
    char *s = NULL;
    long n;
    int i;
    if (!f) return NULL;
    t->train.get_state(t->train.ctx, st);
    if (t->has_eval) t->eval.get_state(t->eval.ctx, es);
    fprintf(f, "{\"step\": %lld, \"total_steps\": %lld, \"tokens_seen\": %lld, \"elapsed\": %.17g, "
               "\"source_state\": [%lld, %lld, %lld], \"eval_source_state\": [%lld, %lld, %lld], \"rng\": [",
            (long long)t->step, (long long)t->total, (long long)t->tokens_seen, t->elapsed,
            (long long)st[0], (long long)st[1], (long long)st[2], (long long)es[0], (long long)es[1], (long long)es[2]);
    for (i = 0; i < 4; i++) fprintf(f, "%s\"%016llx\"", i ? ", " : "", (unsigned long long)t->rng.s[i]);
    fprintf(f, "], \"optim\": {\"lr\": %.9g, \"beta1\": %.9g, \"beta2\": %.9g, \"eps\": %.9g, \"weight_decay\": %.9g, "
               "\"decay_embeddings\": %d, \"grad_clip\": %.9g, \"schedule\": %d, \"warmup_steps\": %lld, "
               "\"warmup_ratio\": %.9g, \"total_steps\": %lld, \"min_lr_ratio\": %.9g}, ",
            (double)o->lr, (double)o->beta1, (double)o->beta2, (double)o->eps, (double)o->weight_decay,
            o->decay_embeddings, (double)o->grad_clip, (int)o->schedule, (long long)o->warmup_steps,
            (double)o->warmup_ratio, (long long)o->total_steps, (double)o->min_lr_ratio);
    fprintf(f, "\"grad_accum\": %d, \"kd\": %d, \"kd_alpha\": %.9g, \"kd_beta\": %.9g, \"kd_temperature\": %.9g, "
               "\"seed\": %llu, \"config\": %s, \"manifest\": %s}",
            t->tc.grad_accum, t->tc.kd, (double)t->tc.kdc.alpha, (double)t->tc.kdc.beta, (double)t->tc.kdc.temperature,
            (unsigned long long)t->tc.seed, t->tc.config_json ? t->tc.config_json : "null",
            t->tc.manifest_json ? t->tc.manifest_json : "null");
    n = ftell(f);
    if (n > 0) {
        s = (char *)DISTILL_MALLOC((size_t)n + 1);
        rewind(f);
        if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { DISTILL_FREE(s); s = NULL; }
        if (s) s[n] = 0;
    }
    fclose(f);
    return s;
}

DISTILL_API int distill_trainer_save(distill_trainer *t, const char *path, distill_error *err) {
    char *js = distill__train_json(t);
    int rc;
    if (!js) return distill__err(err, "%s: out of memory formatting the training state", path);
    rc = distill_checkpoint_write(path, t->m, 1, js, NULL, 0, err);
    DISTILL_FREE(js);
    return rc;
}

/* Checkpoints in a directory, newest first: ckpt-<step>.dstl. Returns the count (<= cap). */
static int distill__list_ckpts(const char *dir, int64_t *steps, int cap) {
    int n = 0;
#if !defined(_WIN32)
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        long long s;
        char tail[8];
        if (sscanf(e->d_name, "ckpt-%lld.dst%1s", &s, tail) == 2 && tail[0] == 'l' && strlen(e->d_name) > 10 &&
            !strcmp(e->d_name + strlen(e->d_name) - 5, ".dstl")) {
            int i;
            if (n < cap) steps[n++] = s;
            else continue;
            for (i = n - 1; i > 0 && steps[i] > steps[i - 1]; i--) { int64_t x = steps[i]; steps[i] = steps[i - 1]; steps[i - 1] = x; }
        }
    }
    closedir(d);
#else
    (void)dir; (void)steps; (void)cap;
#endif
    return n;
}

static void distill__ckpt_name(char *buf, size_t cap, const char *dir, int64_t step) {
    snprintf(buf, cap, "%s/ckpt-%09lld.dstl", dir, (long long)step);
}

static int distill__save_rotate(distill_trainer *t, distill_error *err) {
    char path[1024];
    int64_t steps[256];
    int n, i;
    distill__ckpt_name(path, sizeof path, t->tc.out_dir, t->step);
    if (distill_trainer_save(t, path, err) != 0) return -1;
    n = distill__list_ckpts(t->tc.out_dir, steps, 256);
    for (i = t->tc.keep_last; i < n; i++) {
        distill__ckpt_name(path, sizeof path, t->tc.out_dir, steps[i]);
        remove(path);
    }
    return 0;
}

static int distill__json_i64(const distill_json *o, const char *key, int64_t *out) {
    const distill_json *v = distill_json_get(o, key);
    if (!v || v->type != DISTILL_JSON_NUMBER || !v->is_int) return -1;
    *out = v->i64;
    return 0;
}

/* After a resume the log may hold steps past the checkpoint (written before the process died):
   drop them so the log reads as one run. */
static void distill__metrics_truncate(distill_trainer *t) {
    size_t n;
    char *buf, *line, *out;
    size_t o = 0;
    if (!t->metrics || !t->metrics_path[0]) return;
    fclose(t->metrics);
    t->metrics = NULL;
    buf = (char *)distill_read_file(t->metrics_path, &n, NULL);
    out = buf ? (char *)DISTILL_MALLOC(n + 1) : NULL;
    if (buf && out) {
        for (line = buf; line < buf + n;) {
            char *nl = strchr(line, '\n');
            size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
            long long st = -1;
            if (sscanf(line, "{\"step\": %lld", &st) != 1 || st <= (long long)t->step) {
                memcpy(out + o, line, len);
                o += len;
            }
            line += len;
        }
        distill_write_file_atomic(t->metrics_path, out, o, NULL);
    }
    DISTILL_FREE(out);
    DISTILL_FREE(buf);
    t->metrics = fopen(t->metrics_path, "a");
}

static int distill__resume_file(distill_trainer *t, const char *path, distill_error *err) {
    distill_checkpoint *ck = distill_checkpoint_read(path, err);
    const distill_json *tr, *ss, *rng, *el;
    int64_t st[3];
    int i;
    if (!ck) return -1;
    tr = ck->train;
    if (!tr) { distill_checkpoint_free(ck); return distill__err(err, "%s: a model checkpoint without training state: cannot resume (load it as initial weights instead)", path); }
    if (distill_checkpoint_restore(ck, t->m, 1, err) != 0) { distill_checkpoint_free(ck); return -1; }
    ss = distill_json_get(tr, "source_state");
    rng = distill_json_get(tr, "rng");
    if (distill__json_i64(tr, "step", &t->step) != 0 || distill__json_i64(tr, "tokens_seen", &t->tokens_seen) != 0 ||
        !ss || ss->type != DISTILL_JSON_ARRAY || ss->len != 3 || !rng || rng->type != DISTILL_JSON_ARRAY || rng->len != 4) {
        distill_checkpoint_free(ck);
        return distill__err(err, "%s: field 'train': malformed training state", path);
    }
    for (i = 0; i < 3; i++) {
        if (!ss->items[i].is_int) { distill_checkpoint_free(ck); return distill__err(err, "%s: field 'train.source_state': expected integers", path); }
        st[i] = ss->items[i].i64;
    }
    for (i = 0; i < 4; i++) {
        unsigned long long x;
        if (rng->items[i].type != DISTILL_JSON_STRING || sscanf(rng->items[i].str, "%llx", &x) != 1) {
            distill_checkpoint_free(ck);
            return distill__err(err, "%s: field 'train.rng': expected 4 hex strings", path);
        }
        t->rng.s[i] = (uint64_t)x;
    }
    el = distill_json_get(tr, "elapsed");
    t->elapsed = el && el->type == DISTILL_JSON_NUMBER ? el->num : 0.0;
    if (t->train.set_state(t->train.ctx, st, err) != 0) { distill_checkpoint_free(ck); return -1; }
    t->elapsed_at_start = t->elapsed;
    t->tokens_at_start = t->tokens_seen;
    t->step_at_start = t->step;
    distill_checkpoint_free(ck);
    distill__metrics_truncate(t);
    return 0;
}

DISTILL_API int distill_trainer_resume(distill_trainer *t, const char *path, distill_error *err) {
    struct stat sb;
    int64_t steps[256];
    int n, i;
    char p[1024];
    if (stat(path, &sb) != 0) return distill__err(err, "%s: cannot resume: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return distill__resume_file(t, path, err);
    n = distill__list_ckpts(path, steps, 256);
    if (n == 0) return distill__err(err, "%s: no checkpoint (ckpt-<step>.dstl) to resume from", path);
    distill__ckpt_name(p, sizeof p, path, steps[0]);
    if (distill__resume_file(t, p, err) == 0) return 0;
    /* the newest is unusable: name it and offer the newest intact one, without silently
       training from an older state */
    for (i = 1; i < n; i++) {
        char q[1024];
        distill_error e2;
        distill_checkpoint *ck;
        distill__ckpt_name(q, sizeof q, path, steps[i]);
        ck = distill_checkpoint_read(q, &e2);
        if (ck) {
            char msg[2048];
            distill_checkpoint_free(ck);
            snprintf(msg, sizeof msg, "%s; the previous checkpoint %s is intact: resume from it explicitly", err->msg, q);
            memcpy(err->msg, msg, sizeof err->msg - 1);
            err->msg[sizeof err->msg - 1] = 0;
            return -1;
        }
    }
    return -1;
}

/* ---- progress and metrics ------------------------------------------------------------------- */
static void distill__fmt_dur(char *b, size_t n, double s) {
    long x = (long)(s + 0.5);
    if (x >= 3600) snprintf(b, n, "%ldh%02ldm", x / 3600, (x / 60) % 60);
    else if (x >= 60) snprintf(b, n, "%ldm%02lds", x / 60, x % 60);
    else snprintf(b, n, "%lds", x);
}

static void distill__progress(distill_trainer *t, const distill_step_info *in, int last) {
    char eta[32], el[32];
    distill__fmt_dur(eta, sizeof eta, in->eta);
    distill__fmt_dur(el, sizeof el, in->elapsed);
    if (t->tty) {
        int w = 24, fill = (int)((double)w * (double)in->step / (double)(in->total_steps > 0 ? in->total_steps : 1)), i;
        char bar[32];
        if (fill > w) fill = w;
        for (i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
        bar[w] = 0;
        printf("\rstep %lld/%lld [%s] loss %.4f lr %.2e %.0f tok/s ETA %s   ", (long long)in->step,
               (long long)in->total_steps, bar, in->loss, in->lr, in->tokens_per_sec, eta);
        if (last) printf("\n");
        fflush(stdout);
    } else if (last || in->step % t->tc.log_every == 0 || in->step == 1) {
        printf("step %lld/%lld epoch %.2f loss %.4f acc %.3f lr %.2e gnorm %.3f %.0f tok/s elapsed %s ETA %s\n",
               (long long)in->step, (long long)in->total_steps, in->epoch, in->loss, in->accuracy, in->lr,
               in->grad_norm, in->tokens_per_sec, el, eta);
        fflush(stdout);
    }
}

static void distill__metrics_line(distill_trainer *t, const distill_step_info *in) {
    if (!t->metrics) return;
    fprintf(t->metrics, "{\"step\": %lld, \"epoch\": %.6g, \"loss\": %.9g, \"accuracy\": %.6g, \"entropy\": %.6g, "
                        "\"grad_norm\": %.6g, \"lr\": %.6g, \"tokens\": %lld, \"tokens_per_sec\": %.1f, \"elapsed\": %.3f",
            (long long)in->step, in->epoch, in->loss, in->accuracy, in->entropy, in->grad_norm, in->lr,
            (long long)in->tokens_seen, in->tokens_per_sec, in->elapsed);
    if (in->eval_loss == in->eval_loss) fprintf(t->metrics, ", \"eval_loss\": %.9g", in->eval_loss);
    fprintf(t->metrics, "}\n");
    fflush(t->metrics);
}

DISTILL_API int distill_trainer_run(distill_trainer *t, distill_error *err) {
    distill_step_info in;
    int stop = 0;
    memset(&in, 0, sizeof in);
    t->elapsed_at_start = t->elapsed;
    t->tokens_at_start = t->tokens_seen;
    t->step_at_start = t->step;
    while (t->step < t->total && !stop) {
        int last;
        if (distill_trainer_step(t, &in, err) != 0) {
            int64_t saved[256];
            if (t->tc.progress && t->tty) printf("\n");
            /* name the newest checkpoint: the state to resume from after fixing the cause */
            if (err && t->tc.out_dir && distill__list_ckpts(t->tc.out_dir, saved, 256) > 0) {
                char p[1024], msg[sizeof err->msg + 1100];
                distill__ckpt_name(p, sizeof p, t->tc.out_dir, saved[0]);
                snprintf(msg, sizeof msg, "%s; the last checkpoint is %s", err->msg, p);
                memcpy(err->msg, msg, sizeof err->msg - 1);
                err->msg[sizeof err->msg - 1] = 0;
            }
            return -1;
        }
        if (t->tc.max_steps <= 0 && t->train.epoch && t->train.epoch(t->train.ctx) >= t->tc.epochs - 1e-12) {
            t->total = t->step;   /* the epoch estimate was off: the data decides */
            in.total_steps = t->total;
        }
        last = t->step >= t->total;
        if (t->has_eval && t->tc.eval_every > 0 && (t->step % t->tc.eval_every == 0 || last)) {
            distill_stats es;
            if (distill_trainer_evaluate(t, &es, err) != 0) return -1;
            in.eval_loss = es.loss;
            if (t->tc.progress) {
                if (t->tty) printf("\n");
                printf("eval at step %lld: loss %.4f accuracy %.3f (%.0f tokens)\n", (long long)t->step, es.loss,
                       es.accuracy, es.weight_sum);
            }
        }
        if (t->cb && t->cb(t->cb_ctx, &in) != 0) { stop = 1; last = 1; }
        if (t->tc.progress) distill__progress(t, &in, last);
        distill__metrics_line(t, &in);
        if (t->tc.out_dir && ((t->tc.save_every > 0 && t->step % t->tc.save_every == 0) || last))
            if (distill__save_rotate(t, err) != 0) return -1;
    }
    return 0;
}

/* ---- the data layer's loader as a batch source ---------------------------------------------- */
static int distill__ls_next(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err) {
    distill_loader_source *s = (distill_loader_source *)ctx;
    if (distill_loader_next(s->loader, b, err) != 0) return -1;
    *rows = distill_loader_last_rows(s->loader, n_rows);
    return 0;
}
static void distill__ls_get(void *ctx, int64_t st[3]) {
    distill_loader_source *s = (distill_loader_source *)ctx;
    distill_loader_cursor c = distill_loader_get_cursor(s->loader);
    st[0] = c.epoch;
    st[1] = c.pos;
    st[2] = (int64_t)c.fingerprint;
}
static int distill__ls_set(void *ctx, const int64_t st[3], distill_error *err) {
    distill_loader_source *s = (distill_loader_source *)ctx;
    distill_loader_cursor c;
    c.epoch = st[0];
    c.pos = st[1];
    c.fingerprint = (uint64_t)st[2];
    return distill_loader_set_cursor(s->loader, &c, err);
}
static double distill__ls_epoch(void *ctx) {
    distill_loader_source *s = (distill_loader_source *)ctx;
    distill_loader_cursor c = distill_loader_get_cursor(s->loader);
    return (double)c.epoch + (s->n_rows > 0 ? (double)c.pos / (double)s->n_rows : 0.0);
}

DISTILL_API void distill_loader_source_init(distill_loader_source *s, distill_loader *L,
                                            const distill_dataset *ds) {
    memset(s, 0, sizeof *s);
    s->loader = L;
    s->n_rows = distill_dataset_size(ds);
    s->src.ctx = s;
    s->src.next = distill__ls_next;
    s->src.get_state = distill__ls_get;
    s->src.set_state = distill__ls_set;
    s->src.epoch = distill__ls_epoch;
    s->src.rows_per_epoch = s->n_rows;
}

DISTILL_API int distill_topk_cache_build(distill_model *teacher, const distill_dataset *ds, int k,
                                         int batch_rows, const char *path, distill_error *err) {
    int64_t n = distill_dataset_size(ds), r0;
    int V = teacher->cfg.vocab_size, Tm = teacher->max_seq, Bm = teacher->max_batch;
    distill_topk_writer *w = distill_topk_writer_open(path, k, V, err);
    int32_t *tok = NULL, *tgt = NULL;
    int *len = NULL;
    float *lg = NULL;
    if (!w) return -1;
    if (batch_rows < 1) batch_rows = 1;
    if (batch_rows > Bm) batch_rows = Bm;
    tok = (int32_t *)DISTILL_MALLOC(sizeof(int32_t) * (size_t)batch_rows * Tm);
    tgt = (int32_t *)DISTILL_MALLOC(sizeof(int32_t) * (size_t)batch_rows * Tm);
    len = (int *)DISTILL_MALLOC(sizeof(int) * (size_t)batch_rows);
    lg = (float *)DISTILL_MALLOC(sizeof(float) * (size_t)Tm * V);
    if (!tok || !tgt || !len || !lg) { distill__err(err, "out of memory"); goto fail; }
    for (r0 = 0; r0 < n; r0 += batch_rows) {
        int B = (int)(n - r0 < batch_rows ? n - r0 : batch_rows), T = 1, b, t;
        distill_batch bt;
        for (b = 0; b < B; b++) {
            distill_row row;
            if (distill_dataset_row(ds, r0 + b, &row) != 0) { distill__err(err, "row %lld: not in the dataset", (long long)(r0 + b)); goto fail; }
            if (row.n > Tm) { distill__err(err, "row %lld has %d tokens, more than the teacher's capacity %d", (long long)(r0 + b), row.n, Tm); goto fail; }
            if (row.n > T) T = row.n;
        }
        for (b = 0; b < B; b++) {
            distill_row row;
            if (distill_dataset_row(ds, r0 + b, &row) != 0) { distill__err(err, "row %lld: not in the dataset", (long long)(r0 + b)); goto fail; }
            len[b] = row.n;
            /* as the loader places a row: target = next token where that token is supervised */
            for (t = 0; t < T; t++) {
                size_t p = (size_t)b * T + t;
                tok[p] = t < row.n ? row.tokens[t] : 0;
                tgt[p] = t + 1 < row.n && row.weights[t + 1] > 0 ? row.tokens[t + 1] : -1;
            }
        }
        memset(&bt, 0, sizeof bt);
        bt.B = B; bt.T = T; bt.tokens = tok; bt.lengths = len;
        if (distill_model_forward(teacher, &bt, NULL, 0.0f, NULL, err) != 0) goto fail;
        for (b = 0; b < B; b++) {
            distill_model_logits(teacher, b, lg);
            if (distill_topk_writer_add_row(w, tok + (size_t)b * T, tgt + (size_t)b * T, len[b], lg, err) != 0) goto fail;
        }
    }
    DISTILL_FREE(tok); DISTILL_FREE(tgt); DISTILL_FREE(len); DISTILL_FREE(lg);
    return distill_topk_writer_close(w, err);
fail:
    DISTILL_FREE(tok); DISTILL_FREE(tgt); DISTILL_FREE(len); DISTILL_FREE(lg);
    distill_topk_writer_abort(w);
    return -1;
}
