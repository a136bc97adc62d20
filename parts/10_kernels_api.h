/* ===================================================================================== */
/* PUBLIC API: threads and kernels                                                        */
/* (owner: kernels issue. The signatures are the contract the model code relies on.)      */
/*  model code relies on.)                                                               */
/* ===================================================================================== */

/* Thread pool. The default is one worker per core (DISTILL_THREADS overrides); the caller is
   worker 0. Under DISTILL_NO_THREADS everything runs on the calling thread. The pool is created
   lazily on the first parallel job; distill_set_threads(n) (n <= 0: the default) stops the
   workers and takes effect at the next job. Call the library from one user thread at a time
   (the pool is shared by the whole process); a parallel_for called from inside a task runs
   serially on that worker instead of deadlocking. Results never depend on the thread count. */
DISTILL_API void distill_set_threads(int n);
DISTILL_API int  distill_get_threads(void);

/* SIMD kernel set: chosen once at run time from the CPU ("avx512", "avx2", "neon" or
   "scalar"); the environment variable DISTILL_SIMD or distill_set_simd(name) forces one
   (NULL or "" = the best available). distill_set_simd returns -1 if this build or CPU lacks
   it. Not thread-safe: call it between jobs. */
DISTILL_API int         distill_set_simd(const char *name);
DISTILL_API const char *distill_simd_name(void);

/* Run fn(ctx, begin, end, thread) over [0, n) in chunks of `chunk` items, on all workers.
   Returns when every chunk is done. */
typedef void (*distill_task_fn)(void *ctx, int64_t begin, int64_t end, int thread);
DISTILL_API void distill_parallel_for(int64_t n, int64_t chunk, distill_task_fn fn, void *ctx);

/* out (BT,OC) = inp (BT,C) . weight (OC,C)^T + bias (OC)      bias may be NULL */
DISTILL_API void distill_matmul_forward(float *out, const float *inp, const float *weight,
                                        const float *bias, int BT, int C, int OC);
/* Accumulating backward of the above (any of dinp, dweight, dbias may be NULL):
     dinp    (BT,C)  += dout . weight
     dweight (OC,C)  += dout^T . inp
     dbias   (OC)    += sum over BT of dout                                                  */
DISTILL_API void distill_matmul_backward(float *dinp, float *dweight, float *dbias,
                                         const float *dout, const float *inp,
                                         const float *weight, int BT, int C, int OC);
/* With DISTILL_OPENBLAS the three products go through cblas_sgemm, OpenBLAS single-threaded
   inside our workers (one thread pool on the cores, never two). distill_set_blas(0) switches
   back to the built-in kernels at run time (benchmarks, tests); returns -1 when asked for BLAS
   in a build without it. */
DISTILL_API int distill_set_blas(int on);
/* Scalar references of the two, always compiled, used by the tests. */
DISTILL_API void distill_matmul_forward_ref(float *out, const float *inp, const float *weight,
                                            const float *bias, int BT, int C, int OC);
DISTILL_API void distill_matmul_backward_ref(float *dinp, float *dweight, float *dbias,
                                             const float *dout, const float *inp,
                                             const float *weight, int BT, int C, int OC);

/* Vector primitives the model's ops are written with (SIMD; summation order is fixed, so results
   are deterministic, but they differ from a plain scalar loop in the last bits). */
DISTILL_API float distill_vec_dot(const float *a, const float *b, int n);          /* sum a[i]*b[i] */
DISTILL_API void  distill_vec_axpy(float *y, float a, const float *x, int n);      /* y += a*x */
DISTILL_API void  distill_vec_scale(float *y, float a, int n);                     /* y *= a */
DISTILL_API float distill_vec_max(const float *x, int n);                          /* -INFINITY if n == 0 */
/* SwiGLU on n floats, serial (for the model's per-chunk tasks):
     out = silu(gate) * up,  silu(g) = g * sigmoid(g)
     dgate = dout * up * s * (1 + g * (1 - s)),  dup = dout * g * s,  s = sigmoid(g)
   dup may alias dout. sigmoid uses the vectorised exp (relative error ~1e-7). */
DISTILL_API void  distill_vec_swiglu_forward(float *out, const float *gate, const float *up, int n);
DISTILL_API void  distill_vec_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                                              const float *up, int n);
/* y[i] = exp(x[i] - shift); returns the sum of the y[i] (y may equal x). exp is a polynomial
   approximation with max relative error < 2e-7 (measured 1.0e-7) for results >= FLT_MIN. */
DISTILL_API float distill_vec_exp_sum(float *y, const float *x, float shift, int n);

/* Blocked flash attention: the same contract as distill_attention_forward/backward (causal
   grouped-query attention; q (B,T,NH,HS), k/v (B,T,NKV,HS), out (B,T,NH,HS), lse (B,NH,T);
   lengths (B) or NULL; kstart (B,T) or NULL = first key a query may see; dq/dk/dv overwritten),
   computed on 64x64 blocks with the matmul micro-kernel. */
DISTILL_API void distill_flash_attention_forward(float *out, float *lse, const float *q, const float *k,
                                                 const float *v, const int *lengths, const int *kstart,
                                                 int B, int T, int NH, int NKV, int HS);
DISTILL_API void distill_flash_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                                  const float *q, const float *k, const float *v,
                                                  const float *out, const float *lse, const int *lengths,
                                                  const int *kstart, int B, int T, int NH, int NKV, int HS);
