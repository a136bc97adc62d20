/* distill bench train: training throughput on random tokens, one JSON line, so the same shapes
   can be compared against another framework (bench/torch_ref.py does it for PyTorch).

     distill bench train --vocab 4096 --dim 256 --layers 4 --heads 4 --kv-heads 4 --ffn 768 \
                         --seq 256 --batch 8 --steps 10 --threads 2 [--blas] [--simd avx2]

   Prints tokens_per_s (B*T / median step), step_ms (median of the timed steps, after warm-up),
   mfu (model FLOPs per second / the FMA peak measured here on the same threads and SIMD
   width, or --peak-gflops), peak_rss_mib (getrusage) next to the memory formula (parameters,
   gradients, AdamW moments + distill_model_activation_bytes). Model FLOPs per token follow the
   PaLM formula 6*N + 12*L*T*C with N the matmul parameters including the LM head.
   tokens_per_s_cpu divides by the process CPU time / threads instead of the wall time: what
   the step achieves while it runs, on a shared machine where we get preempted (the pool's
   workers spin between jobs, so on an idle machine the two agree).
   --profile: after the JSON line, the op profile of the timed steps (distill_profile_print:
   per op and shape, its share of the step and each thread's busy and waiting time). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getrusage */
#include "cli.h"
#include <string.h>
#include <stdlib.h>
#include <time.h>
#if !defined(_WIN32)
#include <sys/resource.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BENCH_X86 1
#endif

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- FMA peak: 12 independent FMA chains per thread, in registers --------------------- */
#ifdef BENCH_X86
__attribute__((target("avx2,fma"))) static float chains8(long n) {
    /* twelve named accumulators with distinct values (else the compiler merges the chains) */
    __m256 a0 = _mm256_set1_ps(0.50f), a1 = _mm256_set1_ps(0.51f), a2 = _mm256_set1_ps(0.52f), a3 = _mm256_set1_ps(0.53f), a4 = _mm256_set1_ps(0.54f);
    __m256 a5 = _mm256_set1_ps(0.55f), a6 = _mm256_set1_ps(0.56f), a7 = _mm256_set1_ps(0.57f), a8 = _mm256_set1_ps(0.58f), a9 = _mm256_set1_ps(0.59f);
    __m256 a10 = _mm256_set1_ps(0.60f), a11 = _mm256_set1_ps(0.61f), m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    float out[8];
    long i;
    for (i = 0; i < n; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c); a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c); a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c); a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c); a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
    }
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)), _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    _mm256_storeu_ps(out, a0);
    return out[0];
}
__attribute__((target("avx512f"))) static float chains16(long n) {
    /* twelve named accumulators with distinct values (else the compiler merges the chains) */
    __m512 a0 = _mm512_set1_ps(0.50f), a1 = _mm512_set1_ps(0.51f), a2 = _mm512_set1_ps(0.52f), a3 = _mm512_set1_ps(0.53f), a4 = _mm512_set1_ps(0.54f);
    __m512 a5 = _mm512_set1_ps(0.55f), a6 = _mm512_set1_ps(0.56f), a7 = _mm512_set1_ps(0.57f), a8 = _mm512_set1_ps(0.58f), a9 = _mm512_set1_ps(0.59f);
    __m512 a10 = _mm512_set1_ps(0.60f), a11 = _mm512_set1_ps(0.61f), m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    float out[16];
    long i;
    for (i = 0; i < n; i++) {
        a0 = _mm512_fmadd_ps(a0, m, c); a1 = _mm512_fmadd_ps(a1, m, c); a2 = _mm512_fmadd_ps(a2, m, c);
        a3 = _mm512_fmadd_ps(a3, m, c); a4 = _mm512_fmadd_ps(a4, m, c); a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c); a7 = _mm512_fmadd_ps(a7, m, c); a8 = _mm512_fmadd_ps(a8, m, c);
        a9 = _mm512_fmadd_ps(a9, m, c); a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)), _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    _mm512_storeu_ps(out, a0);
    return out[0];
}
static double thread_cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
/* GFLOP/s of one core running FMA chains, timed by its own CPU time (robust to preemption on
   a shared machine), median of 5, times the thread count: the peak the step is compared to. */
static double measure_peak(int lanes) {
    double v[5];
    float sink = 0;
    int r;
    long n = 2000000;
    sink += lanes == 16 ? chains16(n / 10) : chains8(n / 10); /* warm up the wide units */
    for (r = 0; r < 5; r++) {
        double t0 = thread_cpu_seconds();
        sink += lanes == 16 ? chains16(n) : chains8(n);
        v[r] = 24.0 * lanes * (double)n / (thread_cpu_seconds() - t0) / 1e9;
    }
    qsort(v, 5, sizeof(double), cmp_double);
    return v[2] * distill_get_threads() + (sink == 12345.0f ? 1e-9 : 0.0);
}
#endif

static double process_cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double peak_rss_mib(void) {
#if !defined(_WIN32)
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
#endif
    return 0.0;
}

typedef struct {
    int vocab, dim, layers, heads, kv_heads, ffn, seq, batch, steps, warmup, threads, blas, profile;
    const char *simd, *precision;
    double peak;
} bench_opts;

#define CLI_T bench_opts
static const cli_opt bench_options[] = {
    CLI_SECTION("model (the \"S\" config by default)"),
    CLI_INT("vocab", vocab, 1, 1 << 22, "vocabulary size"),
    CLI_INT("dim", dim, 1, 65536, "width"),
    CLI_INT("layers", layers, 1, 4096, "layers"),
    CLI_INT("heads", heads, 1, 4096, "attention heads"),
    CLI_INT("kv-heads", kv_heads, 1, 4096, "key/value heads"),
    CLI_INT("ffn", ffn, 1, 1 << 22, "MLP width"),
    CLI_SECTION("run"),
    CLI_INT("seq", seq, 1, 1 << 20, "sequence length T"),
    CLI_INT("batch", batch, 1, 1 << 20, "rows per step B"),
    CLI_INT("steps", steps, 1, 100000, "timed steps"),
    CLI_INT("warmup", warmup, 0, 100000, "untimed steps first"),
    CLI_INT("threads", threads, 0, 4096, "worker threads (0: all cores)"),
    CLI_BOOL("blas", blas, "matrix products through BLAS (a build with BLAS=1)"),
    CLI_STR("simd", simd, "NAME", "force a kernel ISA (scalar, avx2, avx512, neon; default: the best here)"),
    CLI_DBL("peak-gflops", peak, 0, 1e9, "the peak for MFU (0: measured here with FMA chains)"),
    CLI_BOOL("profile", profile, "then each op's share of a step, per thread (busy / waiting)"),
    CLI_ENUM("precision", precision, "fp32|bf16", "bf16: BF16 matmul inputs, FP32 sums (the JSON says which path ran; mfu stays against the FP32 peak)"),
};
#undef CLI_T

static const cli_cmd bench_cmd = {
    "bench train", "usage: distill bench train [options]\n",
    "  Train on random tokens; print one JSON line with tokens_per_s, step_ms (median),\n"
    "  mfu and peak_rss_mib.\n",
    bench_options, CLI_N(bench_options), NULL, 0};

static void bench_defaults(bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->vocab = 4096; o->dim = 256; o->layers = 4; o->heads = 4; o->kv_heads = 4; o->ffn = 768;
    o->seq = 256; o->batch = 8; o->steps = 10; o->warmup = 2;
}

static int bench_train(int argc, char **argv) {
    distill_config cfg = distill_config_default();
    distill_optim_config oc = distill_optim_default();
    distill_model *m;
    distill_error err;
    distill_batch bt;
    distill_rng rng;
    bench_opts o;
    int B, T, steps, warmup, threads, blas, profile, i, s, precision;
    const char *simd;
    double peak, *times, cpu_total = 0, wall_total = 0, n_matmul, flops_tok, median, tps, rss, formula;
    int32_t *tokens, *targets;
    size_t ntok;
    bench_defaults(&o);
    i = cli_parse(&bench_cmd, &o, argc, argv, NULL, NULL);
    if (i != 0) return i == CLI_HELP ? 0 : 2;
    cfg.vocab_size = o.vocab; cfg.dim = o.dim; cfg.n_layers = o.layers; cfg.n_heads = o.heads; cfg.n_kv_heads = o.kv_heads;
    cfg.hidden_dim = o.ffn;
    B = o.batch; T = o.seq; steps = o.steps; warmup = o.warmup; threads = o.threads; blas = o.blas; profile = o.profile;
    simd = o.simd; peak = o.peak;
    precision = o.precision && !strcmp(o.precision, "bf16") ? DISTILL_PRECISION_BF16 : DISTILL_PRECISION_FP32;
    if (distill_config_validate(&cfg, &err) != 0) { fprintf(stderr, "distill bench train: %s\n", err.msg); return 2; }
    if (distill_set_blas(blas) != 0) { fprintf(stderr, "distill bench train: --blas: not built with BLAS=1\n"); return 2; }
    if (simd && distill_set_simd(simd) != 0) {
        fprintf(stderr, "distill bench train: --simd %s: not available on this build/CPU\n", simd);
        return 2;
    }
    distill_set_threads(threads);
#ifdef BENCH_X86
    if (peak <= 0) {
        const char *isa = distill_simd_name();
        if (!strcmp(isa, "avx512")) peak = measure_peak(16);
        else if (!strcmp(isa, "avx2")) peak = measure_peak(8);
    }
#endif
    m = distill_model_create(&cfg, B, T, 1234, &err);
    if (!m) { fprintf(stderr, "distill bench train: %s\n", err.msg); return 1; }
    distill_model_set_precision(m, precision);
    ntok = (size_t)B * T;
    tokens = (int32_t *)malloc(ntok * sizeof(int32_t));
    targets = (int32_t *)malloc(ntok * sizeof(int32_t));
    times = (double *)malloc((size_t)steps * sizeof(double));
    if (!tokens || !targets || !times) { fprintf(stderr, "distill bench train: out of memory\n"); return 1; }
    distill_rng_seed(&rng, 42);
    memset(&bt, 0, sizeof bt);
    bt.B = B; bt.T = T; bt.tokens = tokens; bt.targets = targets;
    oc.lr = 1e-4f;
    for (s = 0; s < warmup + steps; s++) {
        distill_stats st;
        double gn, t0, c0;
        size_t k;
        for (k = 0; k < ntok; k++) {
            tokens[k] = (int32_t)distill_rng_below(&rng, (uint64_t)cfg.vocab_size);
            targets[k] = (int32_t)distill_rng_below(&rng, (uint64_t)cfg.vocab_size);
        }
        if (profile && s == warmup) distill_profile_start();
        t0 = distill_time_seconds();
        c0 = process_cpu_seconds();
        if (distill_train_step(m, &bt, &oc, s, &st, &gn, &err) != 0) {
            fprintf(stderr, "distill bench train: %s\n", err.msg);
            return 1;
        }
        if (s >= warmup) {
            times[s - warmup] = distill_time_seconds() - t0;
            wall_total += times[s - warmup];
            cpu_total += process_cpu_seconds() - c0;
        }
    }
    if (profile) distill_profile_stop();
    qsort(times, (size_t)steps, sizeof(double), cmp_double);
    median = times[steps / 2];
    {   /* matmul parameters: q, k, v, o, gate, up, down per layer, and the LM head */
        double C = cfg.dim, HS = C / cfg.n_heads, KVD = HS * cfg.n_kv_heads, F = cfg.hidden_dim;
        n_matmul = cfg.n_layers * (C * C + 2 * C * KVD + C * C + 3 * C * F) + (double)cfg.vocab_size * C;
        flops_tok = 6 * n_matmul + 12.0 * cfg.n_layers * T * C;
    }
    tps = (double)ntok / median;
    rss = peak_rss_mib();
    formula = (4.0 * 4.0 * (double)m->num_params + (double)distill_model_activation_bytes(&cfg, B, T)) / 1048576.0;
    printf("{\"bench\":\"train\",\"vocab\":%d,\"dim\":%d,\"layers\":%d,\"heads\":%d,\"kv_heads\":%d,\"ffn\":%d,"
           "\"seq\":%d,\"batch\":%d,\"steps\":%d,\"threads\":%d,\"simd\":\"%s\",\"blas\":%d,"
           "\"tokens_per_s\":%.1f,\"tokens_per_s_cpu\":%.1f,\"step_ms\":%.2f,\"step_ms_min\":%.2f,\"mflop_per_token\":%.2f,"
           "\"achieved_gflops\":%.1f,\"peak_gflops\":%.1f,\"mfu\":%.3f,\"peak_rss_mib\":%.1f,"
           "\"formula_mib\":%.1f,\"rss_over_formula\":%.2f,\"precision\":\"%s\",\"bf16_path\":\"%s\"}\n",
           cfg.vocab_size, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.hidden_dim, T, B, steps,
           distill_get_threads(), distill_simd_name(), blas, tps,
           (double)ntok * steps / (cpu_total / distill_get_threads()), 1e3 * median, 1e3 * times[0], flops_tok / 1e6,
           tps * flops_tok / 1e9, peak, peak > 0 ? tps * flops_tok / 1e9 / peak : 0.0, rss, formula,
           formula > 0 ? rss / formula : 0.0, precision == DISTILL_PRECISION_BF16 ? "bf16" : "fp32",
           precision == DISTILL_PRECISION_BF16 ? distill_bf16_path() : "none");
    if (profile) distill_profile_print(stdout, wall_total, steps);
    free(tokens); free(targets); free(times);
    distill_model_free(m);
    return 0;
}

int cli_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (argc < 2) { fprintf(stderr, "distill bench: give a subcommand: distill bench train [options] (see --help)\n"); return 2; }
        bench_opts o;
        bench_defaults(&o);
        cli_help(&bench_cmd, &o, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "train")) return bench_train(argc - 1, argv + 1);
    fprintf(stderr, "distill bench: unknown subcommand '%s' (train)\n", argv[1]);
    return 2;
}
