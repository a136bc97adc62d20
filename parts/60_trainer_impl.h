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
