/* Blocked flash attention (distill_flash_attention_forward/backward) against a plain
   softmax attention and its analytic gradient computed here in double precision, with GQA,
   per-row lengths, packed segments (kstart), sizes that are not multiples of the 64-blocks;
   for every SIMD kernel set; and bit-identical for 1 and 2 threads. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

typedef struct {
    int B, T, NH, NKV, HS;
    int lengths[4];
    int *kstart;
    float *q, *k, *v, *dout;
} att_case;

static float *rnd(distill_rng *r, size_t n) {
    float *p = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) p[i] = (float)distill_rng_normal(r);
    return p;
}

/* Reference forward + backward in double. Outputs as double arrays. */
static void reference(const att_case *c, double *out, double *lse, double *dq, double *dk, double *dv) {
    int B = c->B, T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV, b, h, t, j, d;
    double scale = 1.0 / sqrt((double)HS), *p = (double *)malloc((size_t)T * sizeof(double));
    size_t qs = (size_t)NH * HS, ks = (size_t)NKV * HS;
    memset(out, 0, sizeof(double) * (size_t)B * T * qs);
    memset(dq, 0, sizeof(double) * (size_t)B * T * qs);
    memset(dk, 0, sizeof(double) * (size_t)B * T * ks);
    memset(dv, 0, sizeof(double) * (size_t)B * T * ks);
    for (b = 0; b < B; b++)
        for (h = 0; h < NH; h++) {
            int g = h / rep;
            for (t = 0; t < T; t++) {
                const float *qr = c->q + ((size_t)b * T + t) * qs + (size_t)h * HS;
                const float *go = c->dout + ((size_t)b * T + t) * qs + (size_t)h * HS;
                int j0 = c->kstart ? c->kstart[b * T + t] : 0;
                double mx = -INFINITY, sum = 0, D = 0;
                lse[((size_t)b * NH + h) * T + t] = 0;
                if (t >= c->lengths[b]) continue;
                for (j = j0; j <= t; j++) {
                    const float *kr = c->k + ((size_t)b * T + j) * ks + (size_t)g * HS;
                    double s = 0;
                    for (d = 0; d < HS; d++) s += (double)qr[d] * kr[d];
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (j = j0; j <= t; j++) { p[j] = exp(p[j] - mx); sum += p[j]; }
                lse[((size_t)b * NH + h) * T + t] = mx + log(sum);
                for (j = j0; j <= t; j++) {
                    const float *vr = c->v + ((size_t)b * T + j) * ks + (size_t)g * HS;
                    p[j] /= sum;
                    for (d = 0; d < HS; d++) out[((size_t)b * T + t) * qs + (size_t)h * HS + d] += p[j] * vr[d];
                }
                for (d = 0; d < HS; d++) D += (double)go[d] * out[((size_t)b * T + t) * qs + (size_t)h * HS + d];
                for (j = j0; j <= t; j++) {
                    const float *kr = c->k + ((size_t)b * T + j) * ks + (size_t)g * HS;
                    const float *vr = c->v + ((size_t)b * T + j) * ks + (size_t)g * HS;
                    double dp = 0, ds;
                    for (d = 0; d < HS; d++) dp += (double)go[d] * vr[d];
                    ds = p[j] * (dp - D) * scale;
                    for (d = 0; d < HS; d++) {
                        dq[((size_t)b * T + t) * qs + (size_t)h * HS + d] += ds * kr[d];
                        dk[((size_t)b * T + j) * ks + (size_t)g * HS + d] += ds * qr[d];
                        dv[((size_t)b * T + j) * ks + (size_t)g * HS + d] += p[j] * go[d];
                    }
                }
            }
        }
    free(p);
}

static double max_err(const float *got, const double *want, size_t n) {
    double worst = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / (1.0 + fabs(want[i]));
        if (!(e <= worst)) worst = e; /* NaN sticks */
    }
    return worst;
}

static void run_case(int B, int T, int NH, int NKV, int HS, int packed, int ragged, uint64_t seed) {
    static const char *const isas[] = {"scalar", "avx2", "avx512", "neon"};
    att_case c;
    distill_rng r;
    size_t nq, nk;
    double *out, *lse, *dq, *dk, *dv;
    float *o, *l, *gq, *gk, *gv, *o2, *gq2, *gk2, *gv2;
    int b, t, k;
    memset(&c, 0, sizeof c);
    c.B = B; c.T = T; c.NH = NH; c.NKV = NKV; c.HS = HS;
    distill_rng_seed(&r, seed);
    nq = (size_t)B * T * NH * HS; nk = (size_t)B * T * NKV * HS;
    c.q = rnd(&r, nq); c.k = rnd(&r, nk); c.v = rnd(&r, nk); c.dout = rnd(&r, nq);
    for (b = 0; b < B; b++) c.lengths[b] = ragged && b == 1 ? T - T / 3 : T;
    if (packed) { /* segments of varying length: a new one every 37 + 11*b positions */
        c.kstart = (int *)malloc(sizeof(int) * (size_t)B * T);
        for (b = 0; b < B; b++)
            for (t = 0; t < T; t++) c.kstart[b * T + t] = t - t % (37 + 11 * b);
    }
    out = (double *)malloc(nq * sizeof(double)); dq = (double *)malloc(nq * sizeof(double));
    dk = (double *)malloc(nk * sizeof(double)); dv = (double *)malloc(nk * sizeof(double));
    lse = (double *)malloc((size_t)B * NH * T * sizeof(double));
    reference(&c, out, lse, dq, dk, dv);
    o = (float *)malloc(nq * 4); gq = (float *)malloc(nq * 4); gk = (float *)malloc(nk * 4); gv = (float *)malloc(nk * 4);
    o2 = (float *)malloc(nq * 4); gq2 = (float *)malloc(nq * 4); gk2 = (float *)malloc(nk * 4); gv2 = (float *)malloc(nk * 4);
    l = (float *)malloc((size_t)B * NH * T * 4);
    for (k = 0; k < 4; k++) {
        double eo, el = 0, eq, ek, ev;
        size_t i;
        if (distill_set_simd(isas[k]) != 0) continue;
        memset(o, 0x7f, nq * 4); memset(gq, 0x7f, nq * 4); memset(gk, 0x7f, nk * 4); memset(gv, 0x7f, nk * 4);
        distill_set_threads(1);
        distill_flash_attention_forward(o, l, c.q, c.k, c.v, c.lengths, c.kstart, B, T, NH, NKV, HS);
        distill_flash_attention_backward(gq, gk, gv, c.dout, c.q, c.k, c.v, o, l, c.lengths, c.kstart, B, T, NH, NKV, HS);
        eo = max_err(o, out, nq);
        for (i = 0; i < (size_t)B * NH * T; i++) if (fabs(l[i] - lse[i]) > el) el = fabs(l[i] - lse[i]);
        eq = max_err(gq, dq, nq); ek = max_err(gk, dk, nk); ev = max_err(gv, dv, nk);
        CHECK(eo < 2e-5 && el < 2e-5 && eq < 1e-4 && ek < 1e-4 && ev < 1e-4,
              "%s B=%d T=%d NH=%d NKV=%d HS=%d packed=%d ragged=%d: errors out %.3g lse %.3g dq %.3g dk %.3g dv %.3g",
              isas[k], B, T, NH, NKV, HS, packed, ragged, eo, el, eq, ek, ev);
        /* 2 threads: the same bits */
        distill_set_threads(2);
        distill_flash_attention_forward(o2, l, c.q, c.k, c.v, c.lengths, c.kstart, B, T, NH, NKV, HS);
        distill_flash_attention_backward(gq2, gk2, gv2, c.dout, c.q, c.k, c.v, o2, l, c.lengths, c.kstart, B, T, NH, NKV, HS);
        CHECK(!memcmp(o, o2, nq * 4) && !memcmp(gq, gq2, nq * 4) && !memcmp(gk, gk2, nk * 4) && !memcmp(gv, gv2, nk * 4),
              "%s: 1 and 2 threads differ", isas[k]);
    }
    distill_set_simd(NULL);
    distill_set_threads(0);
    free(c.q); free(c.k); free(c.v); free(c.dout); free(c.kstart);
    free(out); free(lse); free(dq); free(dk); free(dv);
    free(o); free(l); free(gq); free(gk); free(gv); free(o2); free(gq2); free(gk2); free(gv2);
}

static void test_small_odd(void) { run_case(2, 7, 2, 1, 5, 0, 1, 1); }
static void test_blocks_exact(void) { run_case(1, 128, 2, 2, 64, 0, 0, 2); }
static void test_gqa_ragged_odd(void) { run_case(2, 150, 4, 2, 24, 0, 1, 3); }
static void test_packed_segments(void) { run_case(3, 141, 4, 1, 16, 1, 1, 4); }

int main(void) {
    RUN(test_small_odd);
    RUN(test_blocks_exact);
    RUN(test_gqa_ragged_odd);
    RUN(test_packed_segments);
    return harness_done("test_kernels_attention");
}
