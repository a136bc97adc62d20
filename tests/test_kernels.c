/* Kernels: every SIMD kernel set this CPU has (scalar, avx2, avx512, neon) against references
   computed here in double precision; matmuls bit-identical for 1, 2 and 3 threads; the
   vectorised exp against the C library's exp over the whole float range; OpenBLAS against our
   kernels when built with BLAS=1. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

static const char *const isas[] = {"scalar", "avx2", "avx512", "neon"};
#define N_ISAS 4

static float *rand_buf(distill_rng *r, size_t n) {
    float *p = (float *)malloc(n * sizeof(float) + 1);
    size_t i;
    for (i = 0; i < n; i++) p[i] = (float)(distill_rng_uniform(r) * 2.0 - 1.0);
    return p;
}

/* |got - want| <= tol * scale, the scale being the sum of |terms| of the dot product: the
   bound of a float accumulation of K terms is about K * 2^-24 * scale; blocked summation as
   used here stays far below 1e-5 * scale for K up to a few thousand. */
static int close_to(double got, double want, double scale) {
    return fabs(got - want) <= 1e-5 * scale + 1e-6 && got == got;
}

/* Forward and the three backward outputs on one shape, against double references. */
static int check_matmul_shape(int BT, int C, int OC, int with_bias, distill_rng *r, const char *what) {
    float *x = rand_buf(r, (size_t)BT * C), *w = rand_buf(r, (size_t)OC * C);
    float *b = rand_buf(r, (size_t)OC), *dout = rand_buf(r, (size_t)BT * OC);
    float *out = rand_buf(r, (size_t)BT * OC);   /* garbage: forward must overwrite */
    float *dx = rand_buf(r, (size_t)BT * C), *dw = rand_buf(r, (size_t)OC * C), *db = rand_buf(r, (size_t)OC);
    float *dx0 = (float *)malloc((size_t)BT * C * sizeof(float) + 1);
    float *dw0 = (float *)malloc((size_t)OC * C * sizeof(float) + 1);
    float *db0 = (float *)malloc((size_t)OC * sizeof(float) + 1);
    int t, o, i, bad = 0;
    memcpy(dx0, dx, (size_t)BT * C * sizeof(float));
    memcpy(dw0, dw, (size_t)OC * C * sizeof(float));
    memcpy(db0, db, (size_t)OC * sizeof(float));
    distill_matmul_forward(out, x, w, with_bias ? b : NULL, BT, C, OC);
    distill_matmul_backward(dx, dw, with_bias ? db : NULL, dout, x, w, BT, C, OC);
    for (t = 0; t < BT && bad < 3; t++)
        for (o = 0; o < OC && bad < 3; o++) {
            double s = with_bias ? b[o] : 0.0, sc = fabs(s);
            for (i = 0; i < C; i++) { s += (double)x[(size_t)t * C + i] * w[(size_t)o * C + i];
                                      sc += fabs((double)x[(size_t)t * C + i] * w[(size_t)o * C + i]); }
            if (!close_to(out[(size_t)t * OC + o], s, sc)) {
                bad++;
                CHECK(0, "%s forward BT=%d C=%d OC=%d at (%d,%d): got %.9g want %.9g", what, BT, C, OC, t, o,
                      out[(size_t)t * OC + o], s);
            }
        }
    for (t = 0; t < BT && bad < 3; t++)
        for (i = 0; i < C && bad < 3; i++) {
            double s = dx0[(size_t)t * C + i], sc = fabs(s);
            for (o = 0; o < OC; o++) { double v = (double)dout[(size_t)t * OC + o] * w[(size_t)o * C + i];
                                       s += v; sc += fabs(v); }
            if (!close_to(dx[(size_t)t * C + i], s, sc)) {
                bad++;
                CHECK(0, "%s dinp BT=%d C=%d OC=%d at (%d,%d): got %.9g want %.9g", what, BT, C, OC, t, i,
                      dx[(size_t)t * C + i], s);
            }
        }
    for (o = 0; o < OC && bad < 3; o++)
        for (i = 0; i < C && bad < 3; i++) {
            double s = dw0[(size_t)o * C + i], sc = fabs(s);
            for (t = 0; t < BT; t++) { double v = (double)dout[(size_t)t * OC + o] * x[(size_t)t * C + i];
                                       s += v; sc += fabs(v); }
            if (!close_to(dw[(size_t)o * C + i], s, sc)) {
                bad++;
                CHECK(0, "%s dweight BT=%d C=%d OC=%d at (%d,%d): got %.9g want %.9g", what, BT, C, OC, o, i,
                      dw[(size_t)o * C + i], s);
            }
        }
    if (with_bias)
        for (o = 0; o < OC && bad < 3; o++) {
            double s = db0[o], sc = fabs(s);
            for (t = 0; t < BT; t++) { s += dout[(size_t)t * OC + o]; sc += fabs(dout[(size_t)t * OC + o]); }
            if (!close_to(db[o], s, sc)) { bad++; CHECK(0, "%s dbias at %d: got %.9g want %.9g", what, o, db[o], s); }
        }
    else
        for (o = 0; o < OC; o++) if (db[o] != db0[o]) { bad++; CHECK(0, "%s dbias touched though NULL", what); break; }
    free(x); free(w); free(b); free(dout); free(out); free(dx); free(dw); free(db); free(dx0); free(dw0); free(db0);
    return bad == 0;
}

/* Odd edges around the micro-tile sizes (6 rows, 2..32 columns) and the block sizes (96, 256);
   the last two are wider than 4,096 columns; the last one's dW (K = 1,100 tokens, 5 K blocks) is
   cut along K, after the third block (BT, C, OC). */
static const int shapes[][3] = {
    {1, 1, 1}, {1, 7, 5}, {5, 3, 17}, {6, 16, 16}, {7, 33, 31}, {13, 64, 48}, {37, 300, 53},
    {97, 257, 65}, {64, 513, 40}, {130, 40, 290}, {2, 600, 3}, {300, 17, 9}, {9, 20, 4133}, {50, 4100, 70}, {1100, 70, 19}};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

static void test_matmul_every_isa(void) {
    int k, s, tried = 0;
    distill_rng r;
    distill_rng_seed(&r, 42);
    distill_set_blas(0);
    for (k = 0; k < N_ISAS; k++) {
        if (distill_set_simd(isas[k]) != 0) continue;
        tried++;
        for (s = 0; s < N_SHAPES; s++)
            if (!check_matmul_shape(shapes[s][0], shapes[s][1], shapes[s][2], s & 1, &r, isas[k])) break;
    }
    distill_set_simd(NULL);
    distill_set_blas(1);
    CHECK(tried >= 1, "no kernel set available");
    printf("    kernel sets tested: %d, default: %s\n", tried, distill_simd_name());
}

static void test_matmul_ref_matches_double(void) {
    /* the _ref functions are the tests' oracle elsewhere: check them too */
    int BT = 11, C = 29, OC = 13, t, o, i;
    distill_rng r;
    float *x, *w, *b, *out;
    distill_rng_seed(&r, 7);
    x = rand_buf(&r, (size_t)BT * C); w = rand_buf(&r, (size_t)OC * C); b = rand_buf(&r, OC);
    out = rand_buf(&r, (size_t)BT * OC);
    distill_matmul_forward_ref(out, x, w, b, BT, C, OC);
    for (t = 0; t < BT; t++)
        for (o = 0; o < OC; o++) {
            double s = b[o];
            for (i = 0; i < C; i++) s += (double)x[t * C + i] * w[o * C + i];
            CHECK_CLOSE(out[t * OC + o], s, 1e-5, 1e-5, "forward_ref");
        }
    free(x); free(w); free(b); free(out);
}

static void test_matmul_zero_sizes(void) {
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 1, 1}, b[2] = {0.5f, -1}, out[4] = {9, 9, 9, 9};
    float dx[4] = {1, 1, 1, 1};
    distill_matmul_forward(out, x, w, b, 2, 0, 2); /* C = 0: out = bias */
    CHECK(out[0] == 0.5f && out[1] == -1 && out[2] == 0.5f && out[3] == -1, "C=0 forward: %g %g", out[0], out[1]);
    distill_matmul_forward(out, x, w, NULL, 0, 2, 2);
    distill_matmul_backward(dx, NULL, NULL, x, x, w, 0, 2, 2);
    CHECK(dx[0] == 1 && dx[3] == 1, "BT=0 backward touched dinp");
}

/* The same product with 1, 2 and 3 threads must give identical bits. 301 x 520 x 203 takes the
   shared-B path (several row tasks per thread; forward, dX and dW with 2 K blocks); the other
   two take the per-task path (one row task per thread; a B block under 16,384 floats); in the
   fourth, dW (K = 1,100 tokens, longer than both sides of dW) is cut along K into two halves. */
static void test_matmul_threads_bit_exact_shape(int BT, int C, int OC) {
    int nt, k;
    size_t n_out = (size_t)BT * OC, n_dx = (size_t)BT * C, n_dw = (size_t)OC * C;
    distill_rng r;
    float *x, *w, *b, *dout, *ref[4], *got[4];
    distill_rng_seed(&r, 3);
    x = rand_buf(&r, n_dx); w = rand_buf(&r, n_dw); b = rand_buf(&r, OC); dout = rand_buf(&r, n_out);
    for (k = 0; k < 4; k++) {
        size_t n = k == 0 ? n_out : k == 1 ? n_dx : k == 2 ? n_dw : (size_t)OC;
        ref[k] = (float *)calloc(n, sizeof(float));
        got[k] = (float *)calloc(n, sizeof(float));
    }
    for (nt = 1; nt <= 3; nt++) {
        float **dst = nt == 1 ? ref : got;
        distill_set_threads(nt);
        /* accumulating products start from the same nonzero values (x, w, b: any data will do) */
        memcpy(dst[1], x, n_dx * sizeof(float));
        memcpy(dst[2], w, n_dw * sizeof(float));
        memcpy(dst[3], b, (size_t)OC * sizeof(float));
        distill_matmul_forward(dst[0], x, w, b, BT, C, OC);
        distill_matmul_backward(dst[1], dst[2], dst[3], dout, x, w, BT, C, OC);
        if (nt > 1) {
            CHECK(memcmp(ref[0], got[0], n_out * sizeof(float)) == 0, "forward differs with %d threads", nt);
            CHECK(memcmp(ref[1], got[1], n_dx * sizeof(float)) == 0, "dinp differs with %d threads", nt);
            CHECK(memcmp(ref[2], got[2], n_dw * sizeof(float)) == 0, "dweight differs with %d threads", nt);
            CHECK(memcmp(ref[3], got[3], (size_t)OC * sizeof(float)) == 0, "dbias differs with %d threads", nt);
        }
    }
    distill_set_threads(0);
    for (k = 0; k < 4; k++) { free(ref[k]); free(got[k]); }
    free(x); free(w); free(b); free(dout);
}
static void test_matmul_threads_bit_exact(void) {
    test_matmul_threads_bit_exact_shape(301, 520, 203);
    test_matmul_threads_bit_exact_shape(37, 70, 4203);
    test_matmul_threads_bit_exact_shape(200, 16, 64);   /* below the sharing threshold */
    test_matmul_threads_bit_exact_shape(1100, 70, 203);
}

/* OpenBLAS (BLAS=1 builds) against our kernels: same products within float rounding. */
static void test_blas_matches_own(void) {
    int BT = 200, C = 129, OC = 77;
    size_t i;
    distill_rng r;
    float *x, *w, *b, *dout, *o1, *o2, *dx1, *dx2, *dw1, *dw2;
    double worst = 0;
#ifndef DISTILL_OPENBLAS
    /* not a BLAS build (make test-blas runs the comparison): asking for BLAS is refused */
    CHECK(distill_set_blas(1) != 0, "distill_set_blas(1) accepted without DISTILL_OPENBLAS");
    return;
#endif
    REQUIRE(distill_set_blas(1) == 0, "distill_set_blas(1) refused in a DISTILL_OPENBLAS build");
    distill_rng_seed(&r, 5);
    x = rand_buf(&r, (size_t)BT * C); w = rand_buf(&r, (size_t)OC * C); b = rand_buf(&r, OC);
    dout = rand_buf(&r, (size_t)BT * OC);
    o1 = (float *)calloc((size_t)BT * OC, 4); o2 = (float *)calloc((size_t)BT * OC, 4);
    dx1 = (float *)calloc((size_t)BT * C, 4); dx2 = (float *)calloc((size_t)BT * C, 4);
    dw1 = (float *)calloc((size_t)OC * C, 4); dw2 = (float *)calloc((size_t)OC * C, 4);
    distill_matmul_forward(o1, x, w, b, BT, C, OC);
    distill_matmul_backward(dx1, dw1, NULL, dout, x, w, BT, C, OC);
    distill_set_blas(0);
    distill_matmul_forward(o2, x, w, b, BT, C, OC);
    distill_matmul_backward(dx2, dw2, NULL, dout, x, w, BT, C, OC);
    distill_set_blas(1);
    /* |x|,|w| <= 1: every sum has at most K terms of magnitude <= 1, tolerance 1e-5 * K */
    for (i = 0; i < (size_t)BT * OC; i++) if (fabs(o1[i] - o2[i]) > worst) worst = fabs(o1[i] - o2[i]);
    CHECK(worst <= 1e-5 * C, "forward: BLAS vs own max diff %g", worst);
    worst = 0;
    for (i = 0; i < (size_t)BT * C; i++) if (fabs(dx1[i] - dx2[i]) > worst) worst = fabs(dx1[i] - dx2[i]);
    CHECK(worst <= 1e-5 * OC, "dinp: BLAS vs own max diff %g", worst);
    worst = 0;
    for (i = 0; i < (size_t)OC * C; i++) if (fabs(dw1[i] - dw2[i]) > worst) worst = fabs(dw1[i] - dw2[i]);
    CHECK(worst <= 1e-5 * BT, "dweight: BLAS vs own max diff %g", worst);
    free(x); free(w); free(b); free(dout); free(o1); free(o2); free(dx1); free(dx2); free(dw1); free(dw2);
}

static void test_vec_primitives(void) {
    int k, n, i, tried = 0;
    distill_rng r;
    float *a, *b, *y, *y2;
    distill_rng_seed(&r, 11);
    a = rand_buf(&r, 1100); b = rand_buf(&r, 1100); y = rand_buf(&r, 1100); y2 = rand_buf(&r, 1100);
    for (i = 0; i < 1100; i++) a[i] *= 5.0f; /* exp inputs in [-5, 5] */
    for (k = 0; k < N_ISAS; k++) {
        if (distill_set_simd(isas[k]) != 0) continue;
        tried++;
        for (n = 0; n <= 1100; n += (n < 70 ? 1 : 343)) {
            double dot = 0, sc = 0, mx = -INFINITY, es = 0;
            float got, shift = 1.5f;
            for (i = 0; i < n; i++) { dot += (double)a[i] * b[i]; sc += fabs((double)a[i] * b[i]);
                                      if (a[i] > mx) mx = a[i]; }
            got = distill_vec_dot(a, b, n);
            CHECK(close_to(got, dot, sc), "%s dot n=%d: %.9g vs %.9g", isas[k], n, got, dot);
            got = distill_vec_max(a, n);
            CHECK(got == (float)mx, "%s max n=%d: %g vs %g", isas[k], n, got, mx);
            memcpy(y2, y, (size_t)n * sizeof(float));
            distill_vec_axpy(y2, 0.75f, a, n);
            for (i = 0; i < n; i++) if (fabs(y2[i] - (y[i] + 0.75 * a[i])) > 1e-6 * (1 + fabs(y2[i]))) break;
            CHECK(i == n, "%s axpy n=%d wrong at %d", isas[k], n, i);
            memcpy(y2, y, (size_t)n * sizeof(float));
            distill_vec_scale(y2, -3.0f, n);
            for (i = 0; i < n; i++) if (y2[i] != y[i] * -3.0f) break;
            CHECK(i == n, "%s scale n=%d wrong at %d", isas[k], n, i);
            got = distill_vec_exp_sum(y2, a, shift, n);
            for (i = 0; i < n; i++) {
                double e = exp((double)a[i] - shift);
                es += e;
                if (fabs(y2[i] - e) > 3e-7 * e) break;
            }
            CHECK(i == n, "%s exp_sum n=%d element %d: %.9g vs %.9g", isas[k], n, i, i < n ? y2[i] : 0.0,
                  i < n ? exp((double)a[i] - shift) : 0.0);
            CHECK(fabs(got - es) <= 1e-6 * es + 1e-30, "%s exp_sum n=%d sum %.9g vs %.9g", isas[k], n, got, es);
            /* in place (y == x) */
            memcpy(y2, a, (size_t)n * sizeof(float));
            got = distill_vec_exp_sum(y2, y2, shift, n);
            CHECK(fabs(got - es) <= 1e-6 * es + 1e-30, "%s exp_sum in place n=%d", isas[k], n);
        }
        CHECK(distill_vec_max(a, 0) == -INFINITY, "%s max of nothing", isas[k]);
    }
    distill_set_simd(NULL);
    CHECK(tried >= 1, "no kernel set");
    free(a); free(b); free(y); free(y2);
}

/* The vectorised exp over the float range, against exp() in double. Reports the measured max
   relative error; the stated bound is 2e-7 (measured 1.0e-7) for results >= FLT_MIN. */
static void test_exp_error_bound(void) {
    int k, i, tried = 0;
    enum { N = 1 << 16 };
    static float x[N], y[N];
    for (k = 0; k < N_ISAS; k++) {
        double worst = 0, worst_x = 0;
        int pass;
        if (distill_set_simd(isas[k]) != 0) continue;
        tried++;
        for (pass = 0; pass < 32; pass++) { /* 2M points over [-87.3, 88.7] */
            for (i = 0; i < N; i++) x[i] = -87.3f + 176.0f * (float)((double)(pass * N + i) / (32.0 * N));
            distill_vec_exp_sum(y, x, 0.0f, N);
            for (i = 0; i < N; i++) {
                double e = exp((double)x[i]), rel = fabs(y[i] - e) / e;
                if (rel > worst) { worst = rel; worst_x = x[i]; }
            }
        }
        printf("    %s exp: max relative error %.3g (at x = %.6g) over [-87.3, 88.7]\n", isas[k], worst, worst_x);
        CHECK(worst < 2e-7, "%s exp max relative error %g at %g", isas[k], worst, worst_x);
        /* special values */
        x[0] = -INFINITY; x[1] = 0.0f; x[2] = -200.0f; x[3] = 100.0f; x[4] = NAN; x[5] = 88.72f;
        x[6] = -100.0f; x[7] = 1.0f; x[8] = -0.5f;
        distill_vec_exp_sum(y, x, 0.0f, 9);
        CHECK(y[0] == 0.0f, "%s exp(-inf) = %g", isas[k], y[0]);
        CHECK(y[1] == 1.0f, "%s exp(0) = %.9g", isas[k], y[1]);
        CHECK(y[2] == 0.0f, "%s exp(-200) = %g", isas[k], y[2]);
        CHECK(isinf(y[3]) && y[3] > 0, "%s exp(100) = %g", isas[k], y[3]);
        CHECK(y[4] != y[4], "%s exp(nan) = %g", isas[k], y[4]);
        CHECK(fabs(y[5] - exp((double)x[5])) < 2e-7 * exp((double)x[5]), "%s exp(88.72) = %g", isas[k], y[5]);
        CHECK(fabs(y[6] - exp(-100.0)) < 0.02 * exp(-100.0), "%s exp(-100) (denormal) = %g", isas[k], y[6]);
    }
    distill_set_simd(NULL);
    CHECK(tried >= 1, "no kernel set");
}

/* SwiGLU primitives against the formulas in double, every kernel set, tails, dup aliasing dout. */
static void test_vec_swiglu(void) {
    int k, n, i, tried = 0;
    distill_rng r;
    float *g, *u, *d, *o, *dg, *du;
    distill_rng_seed(&r, 12);
    g = rand_buf(&r, 1100); u = rand_buf(&r, 1100); d = rand_buf(&r, 1100);
    o = rand_buf(&r, 1100); dg = rand_buf(&r, 1100); du = rand_buf(&r, 1100);
    for (i = 0; i < 1100; i++) g[i] *= 12.0f; /* sigmoid saturating both ways */
    for (k = 0; k < N_ISAS; k++) {
        if (distill_set_simd(isas[k]) != 0) continue;
        tried++;
        for (n = 0; n <= 1100; n += (n < 40 ? 1 : 353)) {
            int bad = 0, alias;
            distill_vec_swiglu_forward(o, g, u, n);
            for (i = 0; i < n && !bad; i++) {
                double s = 1.0 / (1.0 + exp(-(double)g[i])), want = g[i] * s * u[i];
                if (fabs(o[i] - want) > 1e-6 * (1 + fabs(want))) {
                    bad = 1;
                    CHECK(0, "%s swiglu fwd n=%d i=%d: %.9g vs %.9g", isas[k], n, i, o[i], want);
                }
            }
            for (alias = 0; alias < 2; alias++) {
                float *dd = alias ? du : d;
                if (alias) memcpy(du, d, (size_t)n * sizeof(float));
                distill_vec_swiglu_backward(dg, du, dd, g, u, n);
                for (i = 0; i < n && !bad; i++) {
                    double s = 1.0 / (1.0 + exp(-(double)g[i]));
                    double wg = d[i] * u[i] * s * (1 + g[i] * (1 - s)), wu = d[i] * g[i] * s;
                    if (fabs(dg[i] - wg) > 1e-6 * (1 + fabs(wg)) || fabs(du[i] - wu) > 1e-6 * (1 + fabs(wu))) {
                        bad = 1;
                        CHECK(0, "%s swiglu bwd n=%d i=%d alias=%d: %.9g %.9g vs %.9g %.9g", isas[k], n, i, alias,
                              dg[i], du[i], wg, wu);
                    }
                }
            }
        }
    }
    distill_set_simd(NULL);
    CHECK(tried >= 1, "no kernel set");
    free(g); free(u); free(d); free(o); free(dg); free(du);
}

/* The decoding matrix-vector kernel (distill__gemv): every row's value is the same whether the
   row is computed in a group of four or alone (so the thread split never changes it), the BF16
   weight variant (gemv16) gives the bits gemv gives for the FP32 values of those weights, and
   matches a double-precision dot product within 1e-5 relative to sum |x w|, for sizes around
   every vector width (n 1..70, 288, 768) and row counts that leave remainders. */
static void test_gemv_grouping_invariant(void) {
    static const char *isas[] = {"scalar", "avx2", "avx512", "neon"};
    static const int ns[] = {1, 3, 15, 16, 17, 31, 33, 47, 64, 70, 288, 768};
    static float w[13 * 768], wr[13 * 768], x[768], y[13], y16[13], y1[1];
    static uint16_t w16[13 * 768];   /* w as BF16 (the top half of its bits), wr its exact value */
    distill_rng r;
    size_t k, ni;
    int o, j, checked = 0;
    distill_rng_seed(&r, 5);
    for (j = 0; j < 13 * 768; j++) {
        uint32_t u;
        w[j] = (float)distill_rng_normal(&r);
        memcpy(&u, &w[j], 4);
        w16[j] = (uint16_t)(u >> 16);
        u &= 0xFFFF0000u;
        memcpy(&wr[j], &u, 4);
    }
    for (j = 0; j < 768; j++) x[j] = (float)distill_rng_normal(&r);
    for (k = 0; k < sizeof isas / sizeof isas[0]; k++) {
        const distill__isa_ops *ops;
        if (distill_set_simd(isas[k]) != 0) continue;
        ops = distill__ops();
        for (ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int n = ns[ni];
            ops->gemv(y, x, w, (size_t)n, 13, n);
            ops->gemv16(y16, x, w16, (size_t)n, 13, n);
            for (o = 0; o < 13; o++) {
                double ref = 0.0, mag = 0.0;
                ops->gemv(y1, x, w + (size_t)o * n, (size_t)n, 1, n);
                for (j = 0; j < n; j++) { ref += (double)x[j] * w[(size_t)o * n + j]; mag += fabs((double)x[j] * w[(size_t)o * n + j]); }
                CHECK(memcmp(&y[o], &y1[0], sizeof(float)) == 0, "%s n %d row %d: %.9g in a group, %.9g alone", isas[k], n, o, y[o], y1[0]);
                ops->gemv16(y1, x, w16 + (size_t)o * n, (size_t)n, 1, n);
                CHECK(memcmp(&y16[o], &y1[0], sizeof(float)) == 0, "%s n %d row %d: BF16 weights %.9g in a group, %.9g alone", isas[k], n, o, y16[o], y1[0]);
                ops->gemv(y1, x, wr + (size_t)o * n, (size_t)n, 1, n);
                CHECK(memcmp(&y16[o], &y1[0], sizeof(float)) == 0, "%s n %d row %d: BF16 weights %.9g, their FP32 values %.9g", isas[k], n, o, y16[o], y1[0]);
                CHECK(fabs(y[o] - ref) <= 1e-5 * mag + 1e-30, "%s n %d row %d: %.9g vs %.9g", isas[k], n, o, y[o], ref);
                checked++;
            }
        }
    }
    distill_set_simd(NULL);
    CHECK(checked >= 13 * 12, "only %d rows checked", checked);
}

int main(void) {
    RUN(test_matmul_ref_matches_double);
    RUN(test_matmul_every_isa);
    RUN(test_matmul_zero_sizes);
    RUN(test_matmul_threads_bit_exact);
    RUN(test_blas_matches_own);
    RUN(test_vec_primitives);
    RUN(test_vec_swiglu);
    RUN(test_gemv_grouping_invariant);
    RUN(test_exp_error_bound);
    return harness_done("test_kernels");
}
