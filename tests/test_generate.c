/* Generation: the KV-cached forward against the model's own full forward (independent path:
   the training forward recomputes everything from scratch), greedy decoding against a naive
   recompute-everything loop, seeded reproducibility, batch independence, stop tokens and
   limits, and the sampler's support (top-k / top-p) checked statistically with a fixed seed. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

static distill_config small_config(int NH, int NKV, int bias, int tie) {
    distill_config c = distill_config_default();
    c.vocab_size = 61;
    c.dim = 32;
    c.n_layers = 2;
    c.n_heads = NH;
    c.n_kv_heads = NKV;
    c.hidden_dim = 48;
    c.rope_theta = 10000.0f;
    c.qkv_bias = bias;
    c.tie_embeddings = tie;
    c.init_std = 0.2f;   /* large enough that logits differ clearly between positions */
    return c;
}

/* Randomise what the default init leaves constant (norm weights 1, biases 0), so that a cached
   path that skipped a bias or a norm weight would be caught. */
static void perturb(distill_model *m, uint64_t seed) {
    distill_rng r;
    int l, i, C = m->cfg.dim, HS = C / m->cfg.n_heads, KVD = m->cfg.n_kv_heads * HS;
    distill_rng_seed(&r, seed);
    for (l = 0; l < m->cfg.n_layers; l++) {
        for (i = 0; i < C; i++) {
            m->layers[l].attn_norm[i] = 1.0f + 0.3f * (float)distill_rng_normal(&r);
            m->layers[l].ffn_norm[i] = 1.0f + 0.3f * (float)distill_rng_normal(&r);
        }
        if (m->layers[l].bq) {
            for (i = 0; i < C; i++) m->layers[l].bq[i] = 0.3f * (float)distill_rng_normal(&r);
            for (i = 0; i < KVD; i++) m->layers[l].bk[i] = 0.3f * (float)distill_rng_normal(&r);
            for (i = 0; i < KVD; i++) m->layers[l].bv[i] = 0.3f * (float)distill_rng_normal(&r);
        }
    }
    for (i = 0; i < C; i++) m->final_norm[i] = 1.0f + 0.3f * (float)distill_rng_normal(&r);
}

/* Full (uncached) logits (T,V) of one sequence through the training forward. */
static int full_logits(distill_model *m, const int32_t *toks, int T, float *out) {
    distill_batch b;
    distill_error err;
    memset(&b, 0, sizeof b);
    b.B = 1; b.T = T; b.tokens = toks;
    if (distill_model_forward(m, &b, NULL, 0.0f, NULL, &err)) { printf("    forward: %s\n", err.msg); return -1; }
    distill_model_logits(m, 0, out);
    return 0;
}

static double max_abs_diff(const float *a, const float *b, size_t n, double *scale) {
    double d = 0.0, s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (e > d || e != e) d = e != e ? 1e30 : e;
        if (fabs((double)b[i]) > s) s = fabs((double)b[i]);
    }
    if (scale) *scale = s;
    return d;
}

/* One configuration: a sequence of T tokens fed to the cache in uneven pieces (a prefill of 5,
   single tokens, then a long chunk crossing the 64-row chunk and 64-key attention blocks),
   interleaved with a second sequence; every row's logits must match the full forward. */
static void check_cached_cfg(distill_config cfg, const char *what) {
    enum { T = 150, T2 = 23 };
    distill_error err;
    distill_model *m = distill_model_create(&cfg, 1, T, 7, &err);
    distill_generator *g;
    int32_t toks[T], toks2[T2];
    float *ref, *ref2, *got;
    int seq[T], i, V = cfg.vocab_size;
    double d, s, worst = 0.0, scale = 0.0;
    distill_rng r;
    CHECK(m != NULL, "%s: create: %s", what, err.msg);
    if (!m) return;
    perturb(m, 11);
    distill_rng_seed(&r, 3);
    for (i = 0; i < T; i++) toks[i] = (int32_t)distill_rng_below(&r, (uint64_t)V);
    for (i = 0; i < T2; i++) toks2[i] = (int32_t)distill_rng_below(&r, (uint64_t)V);
    ref = (float *)malloc(sizeof(float) * T * V);
    ref2 = (float *)malloc(sizeof(float) * T2 * V);
    got = (float *)malloc(sizeof(float) * T * V);
    if (full_logits(m, toks, T, ref) || full_logits(m, toks2, T2, ref2)) { CHECK(0, "%s: full forward", what); goto out; }
    g = distill_generator_create(m, 3, T, &err);
    CHECK(g != NULL, "%s: generator: %s", what, err.msg);
    if (!g) goto out;
    for (i = 0; i < T; i++) seq[i] = 1;   /* use sequence slot 1, slot 2 for the other */
    /* prefill 5 rows of seq 1 and all T2 rows of seq 2 in ONE call (rows of two sequences) */
    {
        int sq[5 + T2];
        int32_t tk[5 + T2];
        float *lg = (float *)malloc(sizeof(float) * (5 + T2) * V);
        for (i = 0; i < 5; i++) { sq[i] = 1; tk[i] = toks[i]; }
        for (i = 0; i < T2; i++) { sq[5 + i] = 2; tk[5 + i] = toks2[i]; }
        CHECK(distill_generator_forward(g, sq, tk, 5 + T2, lg, 1, &err) == 0, "%s: forward: %s", what, err.msg);
        memcpy(got, lg, sizeof(float) * 5 * V);
        d = max_abs_diff(lg + 5 * V, ref2, (size_t)T2 * V, &s);
        if (d > worst) worst = d;
        if (s > scale) scale = s;
        free(lg);
    }
    /* single tokens: positions 5..19 */
    for (i = 5; i < 20; i++)
        CHECK(distill_generator_forward(g, seq, toks + i, 1, got + (size_t)i * V, 1, &err) == 0, "%s: step: %s", what, err.msg);
    /* one long chunk: 20..T-1 (130 rows: three internal chunks, keys across three blocks) */
    CHECK(distill_generator_forward(g, seq, toks + 20, T - 20, got + (size_t)20 * V, 1, &err) == 0, "%s: chunk: %s", what, err.msg);
    CHECK(distill_generator_length(g, 1) == T && distill_generator_length(g, 2) == T2 && distill_generator_length(g, 0) == 0,
          "%s: lengths %d %d %d", what, distill_generator_length(g, 1), distill_generator_length(g, 2), distill_generator_length(g, 0));
    d = max_abs_diff(got, ref, (size_t)T * V, &s);
    if (d > worst) worst = d;
    if (s > scale) scale = s;
    printf("    %s: max |cached - full| = %.3g (logits up to %.3g)\n", what, worst, scale);
    CHECK(worst <= 2e-5 * (scale > 1 ? scale : 1), "%s: cached logits differ from the full forward by %.3g", what, worst);
    CHECK(scale > 0.5, "%s: logits too small (%.3g) for the comparison to mean anything", what, scale);
    /* the last-row-only mode gives the same last row; a full sequence is refused */
    {
        float *last = (float *)malloc(sizeof(float) * V);
        int one = 0;
        distill_generator_reset(g, 0);
        CHECK(distill_generator_forward(g, seq, toks, 40, last, 0, &err) == -1, "%s: slot 1 is full: refuse", what);
        for (i = 0; i < 40; i++) seq[i] = 0;
        CHECK(distill_generator_forward(g, seq, toks, 40, last, 0, &err) == 0, "%s: %s", what, err.msg);
        d = max_abs_diff(last, ref + 39 * V, (size_t)V, NULL);
        CHECK(d <= 2e-5 * (scale > 1 ? scale : 1), "%s: last-row logits differ by %.3g", what, d);
        /* copy: slot 2 becomes a copy of slot 0, then both continue identically */
        distill_generator_copy(g, 2, 0);
        CHECK(distill_generator_length(g, 2) == 40, "copy length");
        one = 2;
        CHECK(distill_generator_forward(g, &one, toks + 40, 1, last, 1, &err) == 0, "%s", err.msg);
        d = max_abs_diff(last, ref + 40 * V, (size_t)V, NULL);
        CHECK(d <= 2e-5 * (scale > 1 ? scale : 1), "%s: copied cache continues with diff %.3g", what, d);
        /* a bad token id is an error and leaves the cache alone */
        {
            int32_t bad = V;
            CHECK(distill_generator_forward(g, &one, &bad, 1, last, 1, &err) == -1 && strstr(err.msg, "token"), "bad id: %s", err.msg);
            CHECK(distill_generator_length(g, 2) == 41, "cache unchanged after an error");
        }
        free(last);
    }
    distill_generator_free(g);
out:
    free(ref); free(ref2); free(got);
    distill_model_free(m);
}

static void check_cached_equals_full(int NH, int NKV, int bias, int tie, const char *what) {
    check_cached_cfg(small_config(NH, NKV, bias, tie), what);
}
/* the Hugging Face options: decoupled head size, Qwen3's q/k norm, RoPE scaling */
static void test_cached_qwen3(void) {
    distill_config c = small_config(4, 2, 0, 1);
    c.head_dim = 12; c.qk_norm = 1;
    check_cached_cfg(c, "Qwen3: head_dim 12 (C/NH 8), q/k norm");
}
static void test_cached_rope_scaling(void) {
    distill_config c = small_config(4, 2, 1, 0);
    c.head_dim = 16; c.rope_scaling = DISTILL_ROPE_LLAMA3; c.rope_factor = 8.0f; c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f; c.rope_original_max_pos = 64;
    check_cached_cfg(c, "llama3 rope scaling, head_dim 16");
    c.rope_scaling = DISTILL_ROPE_LINEAR; c.rope_factor = 4.0f;
    check_cached_cfg(c, "linear rope scaling");
}
static void test_cached_mha(void) { check_cached_equals_full(4, 4, 0, 1, "MHA, tied head"); }
static void test_cached_gqa_bias(void) { check_cached_equals_full(4, 2, 1, 0, "GQA 4/2, qkv bias, untied"); }
static void test_cached_mqa(void) { check_cached_equals_full(8, 1, 1, 1, "MQA 8/1, qkv bias"); }

/* Greedy decoding the slow way: recompute the full forward for the whole sequence each step. */
static int naive_greedy(distill_model *m, const int32_t *prompt, int np, int steps, int32_t *out) {
    int V = m->cfg.vocab_size, T = np, i, j;
    int32_t seqbuf[256];
    float *lg = (float *)malloc(sizeof(float) * 256 * V);
    memcpy(seqbuf, prompt, sizeof(int32_t) * np);
    for (i = 0; i < steps; i++) {
        const float *row;
        int32_t best = 0;
        if (full_logits(m, seqbuf, T, lg)) { free(lg); return -1; }
        row = lg + (size_t)(T - 1) * V;
        for (j = 1; j < V; j++) if (row[j] > row[best]) best = j;
        out[i] = best;
        seqbuf[T++] = best;
    }
    free(lg);
    return 0;
}

static void test_greedy_matches_naive(void) {
    distill_config cfg = small_config(4, 2, 1, 1);
    distill_error err;
    distill_model *m = distill_model_create(&cfg, 1, 128, 5, &err);
    distill_generator *g;
    int32_t p0[3] = {1, 2, 3}, p1[7] = {9, 8, 7, 6, 5, 4, 3}, p2[1] = {42};
    const int32_t *prompts[4];
    int lens[4] = {3, 7, 1, 3}, i, j;
    int32_t want[4][20];
    distill_gen_result res[4], one;
    distill_gen_options o = distill_gen_options_default();
    if (!m) { CHECK(0, "%s", err.msg); return; }
    perturb(m, 2);
    prompts[0] = p0; prompts[1] = p1; prompts[2] = p2; prompts[3] = p0;   /* a repeated prompt */
    for (i = 0; i < 4; i++) CHECK(naive_greedy(m, prompts[i], lens[i], 20, want[i]) == 0, "naive %d", i);
    g = distill_generator_create(m, 2, 64, &err);   /* 4 prompts, 2 at a time */
    if (!g) { CHECK(0, "%s", err.msg); distill_model_free(m); return; }
    o.max_new_tokens = 20;
    CHECK(distill_generate(g, NULL, prompts, lens, 4, &o, res, &err) == 0, "generate: %s", err.msg);
    for (i = 0; i < 4; i++) {
        int same = res[i].n == 20;
        for (j = 0; j < 20 && same; j++) same = res[i].ids[j] == want[i][j];
        CHECK(same, "prompt %d: cached greedy differs from the naive loop (n %zu)", i, res[i].n);
        CHECK(res[i].finish == DISTILL_FINISH_LENGTH && res[i].stop_id == -1 && res[i].prompt_tokens == lens[i],
              "prompt %d: finish %d", i, (int)res[i].finish);
        CHECK(res[i].text == NULL, "no tokenizer, no text");
    }
    /* stop token: the 6th greedy token of prompt 1 ends it after 5 tokens (unless it came earlier) */
    {
        int32_t stop = want[1][5];
        int first = 0;
        while (want[1][first] != stop) first++;
        o.stop_ids = &stop; o.n_stop_ids = 1;
        CHECK(distill_generate(g, NULL, prompts + 1, lens + 1, 1, &o, &one, &err) == 0, "%s", err.msg);
        CHECK(one.finish == DISTILL_FINISH_STOP && one.stop_id == stop && (int)one.n == first,
              "stop id: finish %d n %zu want %d", (int)one.finish, one.n, first);
        distill_gen_result_free(&one);
        o.stop_ids = NULL; o.n_stop_ids = 0;
    }
    /* the context cap: 64 positions, prompt 7 -> positions 7..63 take 57 generated tokens as
       input, and the token predicted at position 63 is the 58th; then LENGTH */
    o.max_new_tokens = 1000;
    CHECK(distill_generate(g, NULL, prompts + 1, lens + 1, 1, &o, &one, &err) == 0, "%s", err.msg);
    CHECK(one.n == 58 && one.finish == DISTILL_FINISH_LENGTH, "context cap: n %zu", one.n);
    distill_gen_result_free(&one);
    o.max_new_tokens = 0;
    CHECK(distill_generate(g, NULL, prompts, lens, 1, &o, &one, &err) == 0 && one.n == 0 &&
          one.finish == DISTILL_FINISH_LENGTH, "max_new_tokens 0");
    distill_gen_result_free(&one);
    /* bad input */
    lens[0] = 0;
    CHECK(distill_generate(g, NULL, prompts, lens, 1, &o, &one, &err) == -1 && strstr(err.msg, "empty"), "empty prompt: %s", err.msg);
    for (i = 0; i < 4; i++) distill_gen_result_free(&res[i]);
    distill_generator_free(g);
    distill_model_free(m);
}

/* Sampled generation is a function of (seed, sample index) only: the same in any batch size. */
static void test_sampling_reproducible(void) {
    distill_config cfg = small_config(4, 2, 0, 1);
    distill_error err;
    distill_model *m = distill_model_create(&cfg, 1, 64, 9, &err);
    distill_generator *g1, *g3;
    int32_t p[2] = {3, 4};
    const int32_t *prompts[3];
    int lens[3] = {2, 2, 2}, i, diff = 0;
    distill_gen_result a[3], b[3], c[3];
    distill_gen_options o = distill_gen_options_default();
    if (!m) { CHECK(0, "%s", err.msg); return; }
    prompts[0] = prompts[1] = prompts[2] = p;
    g1 = distill_generator_create(m, 1, 64, &err);
    g3 = distill_generator_create(m, 3, 64, &err);
    o.temperature = 1.0f; o.top_p = 0.95f; o.top_k = 40; o.max_new_tokens = 30; o.seed = 1234;
    CHECK(distill_generate(g3, NULL, prompts, lens, 3, &o, a, &err) == 0, "%s", err.msg);
    CHECK(distill_generate(g1, NULL, prompts, lens, 3, &o, b, &err) == 0, "%s", err.msg);
    for (i = 0; i < 3; i++)
        CHECK(a[i].n == b[i].n && !memcmp(a[i].ids, b[i].ids, a[i].n * sizeof(int32_t)),
              "sample %d: batch of 3 and batch of 1 differ", i);
    /* the three samples of one prompt differ from each other (independent streams) */
    diff = a[0].n != a[1].n || memcmp(a[0].ids, a[1].ids, a[0].n * sizeof(int32_t));
    CHECK(diff, "samples 0 and 1 are identical: the streams are not independent");
    o.seed = 1235;
    CHECK(distill_generate(g3, NULL, prompts, lens, 3, &o, c, &err) == 0, "%s", err.msg);
    diff = c[0].n != a[0].n || memcmp(c[0].ids, a[0].ids, a[0].n * sizeof(int32_t));
    CHECK(diff, "another seed gives the same sample");
    for (i = 0; i < 3; i++) { distill_gen_result_free(&a[i]); distill_gen_result_free(&b[i]); distill_gen_result_free(&c[i]); }
    distill_generator_free(g1);
    distill_generator_free(g3);
    distill_model_free(m);
}

static void test_sampler_greedy(void) {
    float lg[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.0f}, work[6];
    int32_t idx[6];
    distill_rng r;
    distill_rng_seed(&r, 1);
    CHECK(distill_sample_token(lg, 6, 0.0f, 0, 1.0f, &r, work, idx) == 1, "greedy ties go to the lowest id");
    CHECK(distill_sample_token(lg, 6, 0.7f, 1, 1.0f, &r, work, idx) == 1, "top_k 1 is greedy");
}

/* Draw N tokens; count them. */
static void draw(const float *lg, int V, float temp, int k, float p, uint64_t seed, int N, int *count) {
    float work[16];
    int32_t idx[16];
    distill_rng r;
    int i;
    distill_rng_seed(&r, seed);
    for (i = 0; i < V; i++) count[i] = 0;
    for (i = 0; i < N; i++) {
        int32_t t = distill_sample_token(lg, V, temp, k, p, &r, work, idx);
        if (t >= 0 && t < V) count[t]++;
        else count[0] = -1000000;
    }
}

/* Probabilities p = (0.05, 0.4, 0.1, 0.25, 0.15, 0.05) as logits log p (temperature 1).
   top_k = 3 keeps ids {1, 3, 4}: renormalised 0.4/0.8, 0.25/0.8, 0.15/0.8.
   top_p = 0.6: sorted 0.4, 0.25 -> 0.65 >= 0.6, nucleus {1, 3}: 0.4/0.65, 0.25/0.65.
   top_k = 4 and top_p = 0.9: top 4 {1, 3, 4, 2} mass 0.9, renormalised 0.444, 0.278, 0.167,
   0.111; the nucleus of 0.9 of that: 0.444 + 0.278 + 0.167 = 0.889 < 0.9, so all four. */
/* Tied candidates are ordered by id ("higher probability first, ties to the lower id"), so a draw
   u maps to a known token: with 8 equal logits, top_k = 4 keeps ids 0..3 and returns floor(4u);
   top_p = 0.99 keeps all 8 and returns floor(8u). u is read from a copy of the generator. */
static void test_sampler_ties_in_id_order(void) {
    float logits[8] = {0, 0, 0, 0, 0, 0, 0, 0}, work[8];
    int32_t idx[8];
    int seed, bad_k = 0, bad_p = 0;
    for (seed = 1; seed <= 200; seed++) {
        distill_rng r, copy;
        double u;
        distill_rng_seed(&r, (uint64_t)seed);
        copy = r;
        u = distill_rng_uniform(&copy);
        if (distill_sample_token(logits, 8, 1.0f, 4, 0.0f, &r, work, idx) != (int32_t)(4.0 * u)) bad_k++;
        distill_rng_seed(&r, (uint64_t)seed);
        if (distill_sample_token(logits, 8, 1.0f, 0, 0.99f, &r, work, idx) != (int32_t)(8.0 * u)) bad_p++;
    }
    CHECK(bad_k == 0, "top_k = 4 over 8 tied logits: %d of 200 draws not floor(4u)", bad_k);
    CHECK(bad_p == 0, "top_p = 0.99 over 8 tied logits: %d of 200 draws not floor(8u)", bad_p);
}

static void test_sampler_support(void) {
    const double p[6] = {0.05, 0.4, 0.1, 0.25, 0.15, 0.05};
    float lg[6];
    int cnt[6], i, N = 40000;
    double sd = 0.5 / sqrt((double)N) * 5;   /* 5 standard deviations of a proportion */
    for (i = 0; i < 6; i++) lg[i] = (float)log(p[i]);
    draw(lg, 6, 1.0f, 3, 1.0f, 77, N, cnt);
    CHECK(cnt[0] == 0 && cnt[2] == 0 && cnt[5] == 0, "top_k 3 drew outside {1,3,4}: %d %d %d", cnt[0], cnt[2], cnt[5]);
    CHECK_CLOSE(cnt[1] / (double)N, 0.5, 0, sd, "top_k 3: share of id 1");
    CHECK_CLOSE(cnt[3] / (double)N, 0.3125, 0, sd, "top_k 3: share of id 3");
    CHECK_CLOSE(cnt[4] / (double)N, 0.1875, 0, sd, "top_k 3: share of id 4");
    draw(lg, 6, 1.0f, 0, 0.6f, 78, N, cnt);
    CHECK(cnt[0] + cnt[2] + cnt[4] + cnt[5] == 0, "top_p 0.6 drew outside {1,3}");
    CHECK_CLOSE(cnt[1] / (double)N, 0.4 / 0.65, 0, sd, "top_p 0.6: share of id 1");
    draw(lg, 6, 1.0f, 4, 0.9f, 79, N, cnt);
    CHECK(cnt[0] == 0 && cnt[5] == 0, "top_k 4 + top_p 0.9 drew outside the top 4");
    CHECK_CLOSE(cnt[2] / (double)N, 0.1 / 0.9, 0, sd, "top_k 4 + top_p 0.9: share of id 2");
    /* no restriction: every token appears with its probability */
    draw(lg, 6, 1.0f, 0, 1.0f, 80, N, cnt);
    for (i = 0; i < 6; i++) CHECK_CLOSE(cnt[i] / (double)N, p[i], 0, sd, "plain sampling share");
    /* temperature 0.5 squares the probabilities: p_i^2 / sum p_j^2 */
    {
        double s2 = 0.0;
        for (i = 0; i < 6; i++) s2 += p[i] * p[i];
        draw(lg, 6, 0.5f, 0, 1.0f, 81, N, cnt);
        CHECK_CLOSE(cnt[1] / (double)N, 0.16 / s2, 0, sd, "temperature 0.5: share of id 1");
    }
    /* the same seed gives the same draws */
    {
        int c2[6];
        draw(lg, 6, 1.0f, 0, 0.9f, 5, 1000, cnt);
        draw(lg, 6, 1.0f, 0, 0.9f, 5, 1000, c2);
        CHECK(!memcmp(cnt, c2, sizeof cnt), "same seed, same counts");
    }
}

/* Decoding's matrix-vector path (distill__gen_matmul_n) splits weight rows over the threads:
   the logits of a prefill (5 rows) and of single-row decode steps are bit-identical for 1 and
   3 threads, with q/k biases (Qwen2) so the bias path runs too. */
static void test_gen_threads_bit_identical(void) {
    distill_config c = distill_config_default();
    distill_error err;
    distill_model *m;
    static float lg[2][8][300];
    int32_t tok[5] = {3, 17, 42, 7, 99};
    int seq[5] = {0, 0, 0, 0, 0}, pass, i;
    c.vocab_size = 300; c.dim = 48; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 100;
    c.qkv_bias = 1;
    m = distill_model_create(&c, 1, 16, 3, &err);
    CHECK(m != NULL, "create: %s", err.msg);
    if (!m) return;
    for (pass = 0; pass < 2; pass++) {
        distill_generator *g;
        distill_set_threads(pass == 0 ? 1 : 3);
        g = distill_generator_create(m, 1, 16, &err);
        CHECK(g != NULL, "generator: %s", err.msg);
        if (!g) break;
        CHECK(distill_generator_forward(g, seq, tok, 5, lg[pass][0], 1, &err) == 0, "prefill: %s", err.msg);
        for (i = 0; i < 3; i++)
            CHECK(distill_generator_forward(g, seq, &tok[i], 1, lg[pass][5 + i], 0, &err) == 0, "step: %s", err.msg);
        distill_generator_free(g);
    }
    distill_set_threads(0);
    CHECK(memcmp(lg[0], lg[1], sizeof lg[0]) == 0, "logits differ between 1 and 3 threads");
    distill_model_free(m);
}

int main(void) {
    RUN(test_gen_threads_bit_identical);
    RUN(test_cached_mha);
    RUN(test_cached_gqa_bias);
    RUN(test_cached_mqa);
    RUN(test_cached_qwen3);
    RUN(test_cached_rope_scaling);
    RUN(test_greedy_matches_naive);
    RUN(test_sampling_reproducible);
    RUN(test_sampler_greedy);
    RUN(test_sampler_ties_in_id_order);
    RUN(test_sampler_support);
    return harness_done("test_generate");
}
