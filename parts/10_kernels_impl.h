/* ===================================================================================== */
/* THREADS AND KERNELS  (owner: kernels issue; this is the initial serial scalar version)  */
/* ===================================================================================== */

DISTILL_API void distill_set_threads(int n) { (void)n; }
DISTILL_API int  distill_get_threads(void) { return 1; }

DISTILL_API void distill_parallel_for(int64_t n, int64_t chunk, distill_task_fn fn, void *ctx) {
    int64_t b;
    if (chunk < 1) chunk = 1;
    for (b = 0; b < n; b += chunk) fn(ctx, b, b + chunk < n ? b + chunk : n, 0);
}

DISTILL_API void distill_matmul_forward_ref(float *out, const float *inp, const float *weight,
                                            const float *bias, int BT, int C, int OC) {
    int t, o, i;
    for (t = 0; t < BT; t++) {
        const float *x = inp + (size_t)t * C;
        for (o = 0; o < OC; o++) {
            const float *w = weight + (size_t)o * C;
            float s = bias ? bias[o] : 0.0f;
            for (i = 0; i < C; i++) s += x[i] * w[i];
            out[(size_t)t * OC + o] = s;
        }
    }
}

DISTILL_API void distill_matmul_backward_ref(float *dinp, float *dweight, float *dbias,
                                             const float *dout, const float *inp,
                                             const float *weight, int BT, int C, int OC) {
    int t, o, i;
    for (t = 0; t < BT; t++) {
        const float *g = dout + (size_t)t * OC;
        for (o = 0; o < OC; o++) {
            float d = g[o];
            if (dinp) { float *dx = dinp + (size_t)t * C; const float *w = weight + (size_t)o * C;
                        for (i = 0; i < C; i++) dx[i] += d * w[i]; }
            if (dweight) { float *dw = dweight + (size_t)o * C; const float *x = inp + (size_t)t * C;
                           for (i = 0; i < C; i++) dw[i] += d * x[i]; }
            if (dbias) dbias[o] += d;
        }
    }
}

DISTILL_API void distill_matmul_forward(float *out, const float *inp, const float *weight,
                                        const float *bias, int BT, int C, int OC) {
    distill_matmul_forward_ref(out, inp, weight, bias, BT, C, OC);
}

DISTILL_API void distill_matmul_backward(float *dinp, float *dweight, float *dbias,
                                         const float *dout, const float *inp,
                                         const float *weight, int BT, int C, int OC) {
    distill_matmul_backward_ref(dinp, dweight, dbias, dout, inp, weight, BT, C, OC);
}

DISTILL_API float distill_vec_dot(const float *a, const float *b, int n) {
    float s = 0.0f; int i;
    for (i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
DISTILL_API void distill_vec_axpy(float *y, float a, const float *x, int n) {
    int i; for (i = 0; i < n; i++) y[i] += a * x[i];
}
DISTILL_API void distill_vec_scale(float *y, float a, int n) {
    int i; for (i = 0; i < n; i++) y[i] *= a;
}
DISTILL_API float distill_vec_max(const float *x, int n) {
    float m = -INFINITY; int i;
    for (i = 0; i < n; i++) if (x[i] > m) m = x[i];
    return m;
}
DISTILL_API float distill_vec_exp_sum(float *y, const float *x, float shift, int n) {
    float s = 0.0f; int i;
    for (i = 0; i < n; i++) { y[i] = expf(x[i] - shift); s += y[i]; }
    return s;
}
