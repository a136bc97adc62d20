/* Logit-distillation losses: values against direct formulas, gradients against central finite
   differences in double for forward KL, reverse KL and JSD at several beta and tau, full teacher
   and top-k teacher; plus the checksums the file formats rely on. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <stdlib.h>

#define VV 11

static void rand_logits(distill_rng *r, double *x, int n, double scale) {
    int i;
    for (i = 0; i < n; i++) x[i] = scale * distill_rng_normal(r);
}

/* independent reference: the formulas written out naively */
static double ref_loss(const double *s, const double *t, int V, int target, double alpha,
                       double beta, double tau) {
    double q[64], p[64], q1[64], zs = 0, zt = 0, z1 = 0, D = 0;
    int j;
    for (j = 0; j < V; j++) { q[j] = exp(s[j] / tau); p[j] = exp(t[j] / tau); q1[j] = exp(s[j]); zs += q[j]; zt += p[j]; z1 += q1[j]; }
    for (j = 0; j < V; j++) { q[j] /= zs; p[j] /= zt; q1[j] /= z1; }
    for (j = 0; j < V; j++) {
        if (beta == 0.0) D += p[j] * log(p[j] / q[j]);
        else if (beta == 1.0) D += q[j] * log(q[j] / p[j]);
        else {
            double m = beta * p[j] + (1 - beta) * q[j];
            D += beta * p[j] * log(p[j] / m) + (1 - beta) * q[j] * log(q[j] / m);
        }
    }
    return alpha * tau * tau * D + (1 - alpha) * (target >= 0 ? -log(q1[target]) : 0.0);
}

static void test_values_match_formulas(void) {
    static const double betas[] = {0.0, 0.1, 0.5, 0.9, 1.0}, taus[] = {0.5, 1.0, 2.0}, alphas[] = {1.0, 0.3};
    double s[VV], t[VV], scratch[9 * VV];
    distill_rng r;
    size_t bi, ti, ai;
    distill_rng_seed(&r, 7);
    for (bi = 0; bi < 5; bi++) for (ti = 0; ti < 3; ti++) for (ai = 0; ai < 2; ai++) {
        distill_kd_config kc;
        distill_kd_result res;
        rand_logits(&r, s, VV, 2.0);
        rand_logits(&r, t, VV, 2.0);
        kc.alpha = (float)alphas[ai]; kc.beta = (float)betas[bi]; kc.temperature = (float)taus[ti];
        res = distill_kd_position(s, VV, t, NULL, NULL, 0, 0.0f, 3, &kc, NULL, scratch);
        CHECK_CLOSE(res.loss, ref_loss(s, t, VV, 3, kc.alpha, kc.beta, kc.temperature), 1e-10, 1e-12, "loss");
        CHECK(res.kd >= -1e-12, "divergence must be >= 0, got %g", res.kd);
    }
    /* identical distributions: zero divergence for every beta */
    {
        distill_kd_config kc = distill_kd_default();
        for (bi = 0; bi < 5; bi++) {
            distill_kd_result res;
            kc.beta = (float)betas[bi];
            res = distill_kd_position(s, VV, s, NULL, NULL, 0, 0.0f, -1, &kc, NULL, scratch);
            CHECK(fabs(res.kd) < 1e-12, "D(p,p) = %g at beta %g", res.kd, betas[bi]);
        }
    }
}

/* central differences of the loss against the analytic gradient */
static void fd_check(const double *s0, const double *t, int V, const int32_t *ids, const float *lp,
                     int k, float tail, int target, const distill_kd_config *kc, const char *what) {
    double s[VV], g[VV], scratch[9 * VV], h = 1e-5, maxerr = 0, maxg = 0;
    int j;
    memcpy(s, s0, sizeof(double) * V);
    distill_kd_position(s, V, t, ids, lp, k, tail, target, kc, g, scratch);
    for (j = 0; j < V; j++) {
        double lpv, lmv, num;
        s[j] = s0[j] + h;
        lpv = distill_kd_position(s, V, t, ids, lp, k, tail, target, kc, NULL, scratch).loss;
        s[j] = s0[j] - h;
        lmv = distill_kd_position(s, V, t, ids, lp, k, tail, target, kc, NULL, scratch).loss;
        s[j] = s0[j];
        num = (lpv - lmv) / (2 * h);
        if (fabs(num - g[j]) > maxerr) maxerr = fabs(num - g[j]);
        if (fabs(g[j]) > maxg) maxg = fabs(g[j]);
    }
    CHECK(maxerr < 1e-7 * (1 + maxg), "%s beta %g tau %g alpha %g: max |fd - analytic| = %.3g (max |g| %.3g)",
          what, (double)kc->beta, (double)kc->temperature, (double)kc->alpha, maxerr, maxg);
    CHECK(maxg > 1e-4, "%s: gradient suspiciously small", what);
}

static void test_gradients_full_teacher(void) {
    static const double betas[] = {0.0, 0.25, 0.5, 0.75, 1.0}, taus[] = {0.7, 1.0, 2.0, 4.0};
    double s[VV], t[VV];
    distill_rng r;
    size_t bi, ti;
    distill_rng_seed(&r, 11);
    for (bi = 0; bi < 5; bi++) for (ti = 0; ti < 4; ti++) {
        distill_kd_config kc;
        rand_logits(&r, s, VV, 1.5);
        rand_logits(&r, t, VV, 1.5);
        kc.alpha = 1.0f; kc.beta = (float)betas[bi]; kc.temperature = (float)taus[ti];
        fd_check(s, t, VV, NULL, NULL, 0, 0.0f, 2, &kc, "full");
        kc.alpha = 0.5f;
        fd_check(s, t, VV, NULL, NULL, 0, 0.0f, 2, &kc, "full+ce");
    }
}

static void test_gradients_topk_teacher(void) {
    static const double betas[] = {0.0, 0.5, 1.0, 0.2}, taus[] = {1.0, 2.0};
    double s[VV], t[VV], lse = 0;
    int32_t ids[4] = {5, 1, 9, 0};
    float lp[4], tail;
    distill_rng r;
    size_t bi, ti;
    int j;
    double sum = 0;
    distill_rng_seed(&r, 12);
    rand_logits(&r, t, VV, 1.5);
    for (j = 0; j < VV; j++) lse += exp(t[j]);
    lse = log(lse);
    for (j = 0; j < 4; j++) { lp[j] = (float)(t[ids[j]] - lse); sum += exp((double)lp[j]); }
    tail = (float)log(1.0 - sum);
    for (bi = 0; bi < 4; bi++) for (ti = 0; ti < 2; ti++) {
        distill_kd_config kc;
        rand_logits(&r, s, VV, 1.5);
        kc.alpha = 1.0f; kc.beta = (float)betas[bi]; kc.temperature = (float)taus[ti];
        fd_check(s, NULL, VV, ids, lp, 4, tail, 3, &kc, "topk");
        kc.alpha = 0.7f;
        fd_check(s, NULL, VV, ids, lp, 4, tail, 3, &kc, "topk+ce");
    }
    /* k = V - 1 plus a tail holding exactly one token equals the full-teacher loss at tau = 1 */
    {
        int32_t all[VV - 1];
        float lpa[VV - 1];
        double scratch[9 * VV];
        distill_kd_config kc = distill_kd_default();
        for (j = 0; j < VV - 1; j++) { all[j] = VV - 1 - j; lpa[j] = (float)(t[all[j]] - lse); }
        for (bi = 0; bi < 4; bi++) {
            double a, b;
            kc.beta = (float)betas[bi];
            a = distill_kd_position(s, VV, t, NULL, NULL, 0, 0.0f, -1, &kc, NULL, scratch).kd;
            b = distill_kd_position(s, VV, NULL, all, lpa, VV - 1, (float)(t[0] - lse), -1, &kc, NULL, scratch).kd;
            CHECK_CLOSE(b, a, 1e-5, 1e-7, "top-(V-1) cache vs full teacher");
        }
    }
}

static void test_validate(void) {
    distill_kd_config kc = distill_kd_default();
    distill_error err;
    CHECK(distill_kd_validate(&kc, &err) == 0, "default config must be valid");
    kc.beta = 1.5f;
    CHECK(distill_kd_validate(&kc, &err) != 0 && strstr(err.msg, "beta"), "beta 1.5 accepted");
    kc = distill_kd_default();
    kc.temperature = 0.0f;
    CHECK(distill_kd_validate(&kc, &err) != 0 && strstr(err.msg, "temperature"), "tau 0 accepted");
}

static void test_sha256_crc32_vectors(void) {
    char hex[65];
    static const char *abc448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    distill_sha256 s;
    unsigned char d[32], chunk[1001];
    int i;
    distill_sha256_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha256('') = %s", hex);
    distill_sha256_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256(abc) = %s", hex);
    distill_sha256_hex(abc448, strlen(abc448), hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "sha256(448 bits) = %s", hex);
    /* one million 'a', fed in uneven pieces */
    memset(chunk, 'a', sizeof chunk);
    distill_sha256_init(&s);
    for (i = 0; i < 1000; i++) distill_sha256_update(&s, chunk, i % 2 ? 999 : 1001);
    distill_sha256_final(&s, d);
    for (i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256(1M a) = %s", hex);
    CHECK(distill_crc32(0, "123456789", 9) == 0xCBF43926u, "crc32 check value: %08x", distill_crc32(0, "123456789", 9));
    CHECK(distill_crc32(distill_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u, "incremental crc32");
}

/* The head's float fast path (distill__kd_position_fast: SIMD exps and dots, float blocks
   summed in double) against the double-precision distill_kd_position on the same logits, for
   every kernel set this CPU has. V = 1003 (not a multiple of any vector width or of the
   512-entry block), logits of spread 3 (and a peaked student/teacher of spread 12, where the
   top-k tail holds ~1e-6 of the mass). Tolerances: loss, divergence, CE and entropy within
   2e-5 relative + 1e-6; every gradient entry within tol (max |entry| + alpha tau + 1 - alpha)
   with tol 2e-6 for the forward KL and 2e-5 for the others, where float exps of ~|z| = 40 are
   multiplied by log-ratios that nearly cancel (largest seen: 7e-6). */
#define FV 1003
static void test_fast_path_matches_double(void) {
    static const char *sets[] = {"scalar", "avx2", "avx512", "neon"};
    static const float betas[] = {0.0f, 1.0f, 0.5f}, taus[] = {1.0f, 2.0f, 0.7f}, alphas[] = {1.0f, 0.4f, 0.0f};
    static float sf[FV], tf[FV], g32[FV], fscr[4 * FV];
    static double sd[FV], td[FV], gd[FV], dscr[5 * (FV + 1)], scratch[9 * FV];
    int32_t ids[32];
    float lp[32];
    size_t si, bi, ti, ai;
    int j, spread, n_sets = 0, n_cases = 0;
    double worst[2] = {0, 0};   /* largest gradient error / tolerance: forward KL, others */
    for (si = 0; si < sizeof sets / sizeof sets[0]; si++) {
        distill_rng r;
        if (distill_set_simd(sets[si]) != 0) continue;
        n_sets++;
        distill_rng_seed(&r, 31);
        for (spread = 3; spread <= 12; spread += 9)
        for (bi = 0; bi < 3; bi++) for (ti = 0; ti < 3; ti++) for (ai = 0; ai < 3; ai++) {
            distill_kd_config kc;
            int topk, target = (int)(distill_rng_u64(&r) % FV);
            double lse = 0, mass = 0, mx = -1e300;
            kc.alpha = alphas[ai]; kc.beta = betas[bi]; kc.temperature = taus[ti];
            for (j = 0; j < FV; j++) {
                sf[j] = (float)(spread * distill_rng_normal(&r)); sd[j] = sf[j];
                tf[j] = (float)(spread * distill_rng_normal(&r)); td[j] = tf[j];
                if (td[j] > mx) mx = td[j];
            }
            for (j = 0; j < FV; j++) lse += exp(td[j] - mx);
            lse = mx + log(lse);
            /* the teacher's 32 largest as a top-k entry (selection by repeated max) */
            for (j = 0; j < 32; j++) {
                int a, best = -1;
                for (a = 0; a < FV; a++) {
                    int b, used = 0;
                    for (b = 0; b < j; b++) used |= ids[b] == a;
                    if (!used && (best < 0 || td[a] > td[best])) best = a;
                }
                ids[j] = best;
                lp[j] = (float)(td[best] - lse);
                mass += exp(td[best] - lse);
            }
            for (topk = 0; topk <= 1; topk++) {
                distill_kd_result a, b;
                double gmax = 0, gerr = 0, tol;
                float tail = (float)log(1.0 - mass > 1e-30 ? 1.0 - mass : 1e-30);
                if (!topk && !(kc.beta <= 0.0f || kc.beta >= 1.0f || kc.alpha == 0.0f)) continue;
                memcpy(g32, sf, sizeof sf);
                a = topk ? distill_kd_position(sd, FV, NULL, ids, lp, 32, tail, target, &kc, gd, scratch)
                         : distill_kd_position(sd, FV, td, NULL, NULL, 0, 0.0f, target, &kc, gd, scratch);
                b = distill__kd_position_fast(g32, FV, topk ? NULL : tf, topk ? ids : NULL, topk ? lp : NULL,
                                              topk ? 32 : 0, tail, target, &kc, 1, fscr, dscr);
                for (j = 0; j < FV; j++) {
                    if (fabs(gd[j]) > gmax) gmax = fabs(gd[j]);
                    if (fabs(gd[j] - g32[j]) > gerr) gerr = fabs(gd[j] - g32[j]);
                }
                n_cases++;
                CHECK(a.argmax == b.argmax, "%s argmax %d vs %d", sets[si], a.argmax, b.argmax);
                CHECK(fabs(a.loss - b.loss) <= 2e-5 * fabs(a.loss) + 1e-6 && fabs(a.kd - b.kd) <= 2e-5 * fabs(a.kd) + 1e-6 &&
                      fabs(a.ce - b.ce) <= 2e-5 * fabs(a.ce) + 1e-6 && fabs(a.entropy - b.entropy) <= 2e-5 * fabs(a.entropy) + 1e-6,
                      "%s %s spread %d beta %g tau %g alpha %g: loss %.9g vs %.9g, kd %.9g vs %.9g, ce %.9g vs %.9g, H %.9g vs %.9g",
                      sets[si], topk ? "top-k" : "full", spread, (double)kc.beta, (double)kc.temperature, (double)kc.alpha,
                      a.loss, b.loss, a.kd, b.kd, a.ce, b.ce, a.entropy, b.entropy);
                tol = (kc.beta > 0.0f ? 2e-5 : 2e-6) * (gmax + kc.alpha * kc.temperature + 1.0 - kc.alpha);
                if (gerr / tol > worst[kc.beta > 0.0f]) worst[kc.beta > 0.0f] = gerr / tol;
                CHECK(gerr <= tol && gmax > 0, "%s %s spread %d beta %g tau %g alpha %g: max |g err| %.3g of max |g| %.3g",
                      sets[si], topk ? "top-k" : "full", spread, (double)kc.beta, (double)kc.temperature, (double)kc.alpha, gerr, gmax);
            }
        }
    }
    distill_set_simd(NULL);
    printf("    %d kernel sets, %d cases; largest gradient error / tolerance: forward KL %.2f, others %.2f\n",
           n_sets, n_cases, worst[0], worst[1]);
    CHECK(n_sets >= 1 && n_cases > 100, "%d kernel sets, %d cases", n_sets, n_cases);
}

int main(void) {
    RUN(test_values_match_formulas);
    RUN(test_gradients_full_teacher);
    RUN(test_gradients_topk_teacher);
    RUN(test_fast_path_matches_double);
    RUN(test_validate);
    RUN(test_sha256_crc32_vectors);
    return harness_done("test_kd");
}
