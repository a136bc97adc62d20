/* Interop: llama2.c import (greedy decoding of stories260K must match llama2.c's run.c output),
   safetensors and llama2.c export/import round trips, own checkpoints, hostile files, and the
   C forward against a PyTorch reference on a safetensors fixture (tests/gen_safetensors_check.py). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <stdlib.h>
#include <sys/stat.h>

#define STORIES "../shared/data/stories260K/stories260K.bin"
#define TOK512 "../shared/data/stories260K/tok512.bin"

/* llama2.c's test_all.py: `run stories260K.bin -z tok512.bin -t 0.0 -n 200`, stdout minus the
   final newline. */
static const char *expected_story =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. "
    "She said, \"I want to play with your ball, but I can't find it.\"\n"
    "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\n"
    "Lily didn't want to help her mom, so she";

/* llama2.c tokenizer.bin, read here independently of the library's tokenizer code:
   int32 max_token_length, then per token: float score, int32 len, len bytes. */
static char **read_tok512(int n, size_t *total) {
    size_t size, off = 4;
    unsigned char *b = (unsigned char *)distill_read_file(TOK512, &size, NULL);
    char **v;
    int i;
    if (!b) return NULL;
    v = (char **)calloc((size_t)n, sizeof *v);
    for (i = 0; i < n; i++) {
        int32_t len;
        if (off + 8 > size) break;
        memcpy(&len, b + off + 4, 4);
        off += 8;
        if (len < 0 || off + (size_t)len > size) break;
        v[i] = (char *)calloc((size_t)len + 1, 1);
        memcpy(v[i], b + off, (size_t)len);
        off += (size_t)len;
    }
    *total = size;
    free(b);
    return v;
}

/* run.c's decode: strip the leading space after BOS; "<0xXX>" is a raw byte */
static void append_piece(char *out, size_t cap, char **vocab, int prev, int tok) {
    const char *p = vocab[tok];
    unsigned int byte;
    char one[2];
    if (prev == 1 && p[0] == ' ') p++;
    if (sscanf(p, "<0x%02X>", &byte) == 1) { one[0] = (char)byte; one[1] = 0; p = one; }
    if (strlen(out) + strlen(p) < cap) strcat(out, p);
}

static void test_stories260k_greedy_matches_run_c(void) {
    distill_error err;
    distill_model *m;
    char **vocab, text[4096] = "";
    size_t tsz;
    int32_t toks[256];
    float *logits;
    int n = 1, i, V, steps = getenv("DISTILL_TEST_LONG") ? 200 : 48;
    FILE *f = fopen(STORIES, "rb");
    if (!f) SKIP("%s absent (see ../shared/data/README.md)", STORIES);
    fclose(f);
    m = distill_model_load(STORIES, 1, 256, NULL, &err);
    CHECK(m != NULL, "load: %s", err.msg);
    if (!m) return;
    V = m->cfg.vocab_size;
    CHECK(V == 512 && m->cfg.dim == 64 && m->cfg.n_layers == 5 && m->cfg.n_heads == 8 && m->cfg.n_kv_heads == 4 &&
          m->cfg.hidden_dim == 172 && m->cfg.tie_embeddings == 1, "config read from the header");
    vocab = read_tok512(V, &tsz);
    if (!vocab) { distill_model_free(m); SKIP("%s absent", TOK512); }
    logits = (float *)malloc(sizeof(float) * 256 * (size_t)V);
    toks[0] = 1;   /* BOS; run.c with an empty prompt */
    /* run.c -n 200: 200 forward steps from BOS, each printing the argmax token. Full recompute
       each step (forward the whole prefix, argmax at the last position): quadratic, so the default
       suite checks the first 48 tokens and DISTILL_TEST_LONG=1 all 200. */
    for (i = 0; i < steps; i++) {
        distill_batch b;
        int j, best = 0;
        memset(&b, 0, sizeof b);
        b.B = 1; b.T = n; b.tokens = toks;
        if (distill_model_forward(m, &b, NULL, 0.0f, NULL, &err) != 0) { CHECK(0, "forward: %s", err.msg); break; }
        distill_model_logits(m, 0, logits);
        for (j = 1; j < V; j++) if (logits[(size_t)(n - 1) * V + j] > logits[(size_t)(n - 1) * V + best]) best = j;
        if (best == 1) break;
        append_piece(text, sizeof text, vocab, toks[n - 1], best);
        toks[n++] = best;
    }
    if (steps < 200) CHECK(strlen(text) > 100 && !strncmp(text, expected_story, strlen(text)), "greedy story differs from llama2.c run.c:\n--- got ---\n%s\n--- want ---\n%s", text, expected_story);
    else CHECK(!strcmp(text, expected_story), "greedy story differs from llama2.c run.c:\n--- got ---\n%s\n--- want ---\n%s", text, expected_story);
    for (i = 0; i < V; i++) free(vocab[i]);
    free(vocab);
    free(logits);
    distill_model_free(m);
}

static distill_config tiny_config(int qwen) {
    distill_config c = distill_config_default();
    c.vocab_size = 64; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 48;
    c.qkv_bias = qwen; c.tie_embeddings = !qwen; c.rope_theta = qwen ? 1000000.0f : 10000.0f;
    c.norm_eps = qwen ? 1e-6f : 1e-5f;
    c.init_std = 0.2f;
    return c;
}

static void randomize(distill_model *m, uint64_t seed) {
    distill_rng r;
    int i;
    size_t k;
    distill_rng_seed(&r, seed);
    for (i = 0; i < m->n_tensors; i++)
        for (k = 0; k < m->tensors[i].numel; k++)
            m->params[m->tensors[i].offset + k] = (float)(0.3 * distill_rng_normal(&r)) + (m->tensors[i].ndim == 1 ? 1.0f : 0.0f);
}

static int same_params(const distill_model *a, const distill_model *b) {
    int i;
    if (a->n_tensors != b->n_tensors) return 0;
    for (i = 0; i < a->n_tensors; i++)
        if (strcmp(a->tensors[i].name, b->tensors[i].name) || a->tensors[i].numel != b->tensors[i].numel ||
            memcmp(a->params + a->tensors[i].offset, b->params + b->tensors[i].offset, 4 * a->tensors[i].numel))
            return 0;
    return 1;
}

static void test_roundtrips(void) {
    int qwen;
    mkdir("build", 0755);
    mkdir("build/test_interop", 0755);
    for (qwen = 0; qwen < 2; qwen++) {
        distill_config c = tiny_config(qwen);
        distill_error err;
        distill_model *m = distill_model_create(&c, 2, 16, 1, &err), *r;
        char h1[65], h2[65];
        const char *fmt;
        if (!m) { CHECK(0, "create: %s", err.msg); return; }
        randomize(m, 5 + (uint64_t)qwen);
        distill_model_sha256(m, h1);
        /* safetensors + config.json */
        CHECK(distill_safetensors_save(m, "build/test_interop/model.safetensors", &err) == 0, "save: %s", err.msg);
        fmt = distill_model_file_format("build/test_interop/model.safetensors", &err);
        CHECK(fmt && !strcmp(fmt, "safetensors"), "detected as %s", fmt ? fmt : err.msg);
        r = distill_model_load("build/test_interop/model.safetensors", 2, 16, NULL, &err);
        CHECK(r != NULL, "load safetensors: %s", err.msg);
        if (r) {
            distill_model_sha256(r, h2);
            CHECK(same_params(m, r) && !strcmp(h1, h2), "safetensors round trip (qkv_bias %d)", qwen);
            CHECK(r->cfg.qkv_bias == c.qkv_bias && r->cfg.tie_embeddings == c.tie_embeddings &&
                  r->cfg.n_kv_heads == c.n_kv_heads && r->cfg.rope_theta == c.rope_theta && r->cfg.norm_eps == c.norm_eps,
                  "config.json round trip");
            distill_model_free(r);
        }
        /* own checkpoint */
        CHECK(distill_checkpoint_write("build/test_interop/model.dstl", m, 0, NULL, NULL, 0, &err) == 0, "ckpt: %s", err.msg);
        r = distill_model_load("build/test_interop/model.dstl", 1, 8, NULL, &err);
        CHECK(r && same_params(m, r), "checkpoint round trip: %s", r ? "" : err.msg);
        distill_model_free(r);
        /* llama2.c (Llama only) */
        if (!qwen) {
            CHECK(distill_llama2c_save(m, "build/test_interop/model.bin", &err) == 0, "llama2c save: %s", err.msg);
            r = distill_model_load("build/test_interop/model.bin", 1, 8, NULL, &err);
            CHECK(r && same_params(m, r), "llama2.c round trip: %s", r ? "" : err.msg);
            distill_model_free(r);
        } else {
            CHECK(distill_llama2c_save(m, "build/test_interop/q.bin", &err) != 0 && strstr(err.msg, "qkv"), "qwen to llama2.c refused");
        }
        distill_model_free(m);
    }
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);   /* a hostile file never written would "fail to load" */
    if (f) { CHECK(fwrite(p, 1, n, f) == n, "short write to %s", path); fclose(f); }
}

static void test_hostile_model_files(void) {
    distill_config c = tiny_config(0);
    distill_error err;
    distill_model *m = distill_model_create(&c, 1, 8, 3, &err), *r;
    unsigned char *b;
    size_t n;
    REQUIRE(m != NULL, "create: %s", err.msg);
    distill_checkpoint_write("build/test_interop/h.dstl", m, 0, NULL, NULL, 0, &err);
    b = (unsigned char *)distill_read_file("build/test_interop/h.dstl", &n, &err);
    b[n - 5] ^= 1;
    write_bytes("build/test_interop/h_bad.dstl", b, n);
    r = distill_model_load("build/test_interop/h_bad.dstl", 1, 8, NULL, &err);
    CHECK(!r && strstr(err.msg, "h_bad.dstl") && strstr(err.msg, "checksum"), "bit flip in a checkpoint: %s", err.msg);
    write_bytes("build/test_interop/h_bad.dstl", b, n / 2);
    r = distill_model_load("build/test_interop/h_bad.dstl", 1, 8, NULL, &err);
    CHECK(!r && strstr(err.msg, "truncated"), "truncated checkpoint: %s", err.msg);
    distill_free(b);
    /* llama2.c: truncated, absurd header */
    distill_llama2c_save(m, "build/test_interop/h.bin", &err);
    b = (unsigned char *)distill_read_file("build/test_interop/h.bin", &n, &err);
    write_bytes("build/test_interop/h_bad.bin", b, n - 4);
    r = distill_model_load("build/test_interop/h_bad.bin", 1, 8, NULL, &err);
    CHECK(!r && strstr(err.msg, "bytes"), "truncated llama2.c: %s", err.msg);
    memset(b, 0x7f, 8);
    write_bytes("build/test_interop/h_bad.bin", b, n);
    r = distill_model_load("build/test_interop/h_bad.bin", 1, 8, NULL, &err);
    CHECK(!r && strstr(err.msg, "header"), "absurd llama2.c header: %s", err.msg);
    distill_free(b);
    /* safetensors: offsets beyond the data, and a header length beyond the file */
    distill_safetensors_save(m, "build/test_interop/h.safetensors", &err);
    b = (unsigned char *)distill_read_file("build/test_interop/h.safetensors", &n, &err);
    write_bytes("build/test_interop/h_bad.safetensors", b, n - 16);
    r = distill_model_load("build/test_interop/h_bad.safetensors", 1, 8, NULL, &err);
    CHECK(!r && strstr(err.msg, "data_offsets"), "truncated safetensors: %s", err.msg);
    b[0] = 0xff; b[1] = 0xff;
    write_bytes("build/test_interop/h_bad.safetensors", b, n);
    r = distill_model_load("build/test_interop/h_bad.safetensors", 1, 8, NULL, &err);
    CHECK(!r, "safetensors header length beyond the file accepted");
    distill_free(b);
    write_bytes("build/test_interop/tiny.bin", "abc", 3);
    r = distill_model_load("build/test_interop/tiny.bin", 1, 8, NULL, &err);
    CHECK(!r && strstr(err.msg, "unrecognised"), "3-byte file: %s", err.msg);
    distill_model_free(m);
}

/* The PyTorch reference: tests/gen_safetensors_check.py wrote a random model as safetensors
   (HF names) and the float64 logits of a batch; our import + forward must agree. */
static void test_forward_matches_torch_fixture(void) {
    static const char *dirs[] = {"tests/fixtures/trainer_llama", "tests/fixtures/trainer_qwen2"};
    int d;
    for (d = 0; d < 2; d++) {
        char path[256];
        distill_error err;
        distill_model *m;
        size_t n;
        unsigned char *fx;
        int32_t B, T, V, b, i;
        snprintf(path, sizeof path, "%s/logits.bin", dirs[d]);
        fx = (unsigned char *)distill_read_file(path, &n, &err);
        if (!fx) SKIP("%s absent: run make fixtures", path);
        memcpy(&B, fx, 4); memcpy(&T, fx + 4, 4); memcpy(&V, fx + 8, 4);
        snprintf(path, sizeof path, "%s/model.safetensors", dirs[d]);
        m = distill_model_load(path, B, T, NULL, &err);
        CHECK(m != NULL, "load %s: %s", path, err.msg);
        if (m && n == 12 + 4 * (size_t)B * T + 4 * (size_t)B * T * V) {
            distill_batch bt;
            float *lg = (float *)malloc(sizeof(float) * (size_t)T * V);
            const unsigned char *want = fx + 12 + 4 * (size_t)B * T;
            double maxd = 0;
            memset(&bt, 0, sizeof bt);
            bt.B = B; bt.T = T; bt.tokens = (const int32_t *)(const void *)(fx + 12);
            CHECK(distill_model_forward(m, &bt, NULL, 0.0f, NULL, &err) == 0, "forward: %s", err.msg);
            for (b = 0; b < B; b++) {
                distill_model_logits(m, b, lg);
                for (i = 0; i < T * V; i++) {
                    float w;
                    memcpy(&w, want + 4 * ((size_t)b * T * V + i), 4);
                    if (fabs((double)lg[i] - w) > maxd) maxd = fabs((double)lg[i] - w);
                }
            }
            CHECK(maxd < 2e-4, "%s: max |logit - torch| = %g", dirs[d], maxd);
            free(lg);
        } else if (m) CHECK(0, "%s: fixture size mismatch", dirs[d]);
        distill_model_free(m);
        distill_free(fx);
    }
}

/* The export direction: write our safetensors of a random model and the logits of a batch; the
   check script (make fixtures) reads both with torch and compares. Here: both files are complete,
   and the safetensors read back gives the model whose logits the file holds, bit for bit. */
static void test_write_export_for_python(void) {
    distill_config c = tiny_config(1);
    distill_error err;
    distill_model *m = distill_model_create(&c, 2, 12, 9, &err), *r;
    int32_t toks[24];
    int i;
    FILE *f;
    float *lg, *lr;
    unsigned char *fx;
    size_t n, nlg = 12 * (size_t)c.vocab_size;
    distill_batch bt;
    REQUIRE(m != NULL, "create: %s", err.msg);
    randomize(m, 77);
    mkdir("build/test_interop/export", 0755);
    CHECK(distill_safetensors_save(m, "build/test_interop/export/model.safetensors", &err) == 0, "%s", err.msg);
    for (i = 0; i < 24; i++) toks[i] = (i * 7 + 3) % c.vocab_size;
    memset(&bt, 0, sizeof bt);
    bt.B = 2; bt.T = 12; bt.tokens = toks;
    CHECK(distill_model_forward(m, &bt, NULL, 0.0f, NULL, &err) == 0, "forward: %s", err.msg);
    lg = (float *)malloc(sizeof(float) * nlg);
    lr = (float *)malloc(sizeof(float) * nlg);
    f = fopen("build/test_interop/export/logits.bin", "wb");
    CHECK(f != NULL, "cannot write build/test_interop/export/logits.bin");
    if (f) {
        int32_t hdr[3];
        hdr[0] = 2; hdr[1] = 12; hdr[2] = c.vocab_size;
        fwrite(hdr, 4, 3, f);
        fwrite(toks, 4, 24, f);
        for (i = 0; i < 2; i++) { distill_model_logits(m, i, lg); fwrite(lg, 4, nlg, f); }
        CHECK(fclose(f) == 0, "write logits.bin");
    }
    /* read both back the way the check script does */
    fx = (unsigned char *)distill_read_file("build/test_interop/export/logits.bin", &n, &err);
    CHECK(fx && n == 12 + 4 * 24 + 2 * 4 * nlg, "logits.bin: %zu bytes", fx ? n : 0);
    r = distill_model_load("build/test_interop/export/model.safetensors", 2, 12, NULL, &err);
    CHECK(r != NULL, "read back the safetensors: %s", err.msg);
    if (fx && r && n == 12 + 4 * 24 + 2 * 4 * nlg) {
        CHECK(memcmp(fx + 12, toks, sizeof toks) == 0, "tokens in logits.bin");
        CHECK(distill_model_forward(r, &bt, NULL, 0.0f, NULL, &err) == 0, "forward of the read-back model: %s", err.msg);
        for (i = 0; i < 2; i++) {
            distill_model_logits(r, i, lr);
            CHECK(memcmp(fx + 12 + 4 * 24 + (size_t)i * 4 * nlg, lr, 4 * nlg) == 0,
                  "row %d: logits of the read-back model differ from logits.bin", i);
        }
    }
    distill_model_free(r);
    distill_free(fx);
    free(lg);
    free(lr);
    distill_model_free(m);
}

/* The nearest value of a 16-bit float format, by double arithmetic (independent of the bit
   tricks of the exporter): mbits mantissa bits, smallest normal exponent emin; ties to even via
   nearbyint in the default rounding mode. */
static double nearest16(double x, int mbits, int emin) {
    int e;
    double ulp;
    if (x == 0.0) return 0.0;
    e = (int)floor(log2(fabs(x)));
    if (e < emin) e = emin;                         /* subnormal range: fixed spacing */
    ulp = ldexp(1.0, e - mbits);
    return nearbyint(x / ulp) * ulp;
}

static void test_safetensors_half_exports(void) {
    distill_config c = distill_config_default();
    distill_error err;
    distill_model *m, *b16, *f16;
    size_t i, bad_b = 0, bad_h = 0, nsub = 0;
    char *cfg;
    c.vocab_size = 64; c.dim = 32; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 48; c.qkv_bias = 1;
    m = distill_model_create(&c, 1, 8, 3, &err);
    CHECK(m != NULL, "model: %s", err.msg);
    if (!m) return;
    mkdir("build", 0755);
    /* edge values among the weights: ties, the f16 subnormal range and its limits */
    m->params[0] = 1.0f + 1.0f / 2048.0f;            /* f16 tie between 1 and 1+2^-10: to even (1) */
    m->params[1] = 1.0f + 3.0f / 2048.0f;            /* tie: to even (1 + 2^-9) */
    m->params[2] = 65504.0f;                          /* largest f16 */
    m->params[3] = 3.0e-6f;                           /* f16 subnormal */
    m->params[4] = -2.9802322e-8f;                    /* exactly 2^-25: tie between 0 and 2^-24, to even (0) */
    m->params[5] = 6.1e-5f;                           /* just below the smallest f16 normal */
    m->params[6] = 1.0f + 1.0f / 256.0f;             /* bf16 tie: to even (1) */
    m->params[7] = 1.0e4f;
    m->params[8] = 8.940696716308594e-08f;           /* 1.5 x 2^-24: subnormal tie, to even (2^-23) */
    CHECK(distill_safetensors_save_as(m, "build/half_bf16.safetensors", "BF16", &err) == 0, "BF16 export: %s", err.msg);
    b16 = distill_model_load("build/half_bf16.safetensors", 1, 8, NULL, &err);
    CHECK(b16 != NULL, "BF16 import: %s", err.msg);
    CHECK(distill_safetensors_save_as(m, "build/half_f16.safetensors", "F16", &err) == 0, "F16 export: %s", err.msg);
    cfg = (char *)distill_read_file("build/config.json", NULL, NULL);
    CHECK(cfg && strstr(cfg, "\"torch_dtype\": \"float16\""), "config.json says float16");
    distill_free(cfg);
    f16 = distill_model_load("build/half_f16.safetensors", 1, 8, NULL, &err);
    CHECK(f16 != NULL, "F16 import: %s", err.msg);
    if (!b16 || !f16) { distill_model_free(b16); distill_model_free(f16); distill_model_free(m); return; }
    for (i = 0; i < m->num_floats; i++) {
        double w = m->params[i];
        if ((double)b16->params[i] != nearest16(w, 7, -126)) {
            if (bad_b++ < 3) printf("    bf16 [%zu] %.9g -> %.9g, want %.9g\n", i, w, (double)b16->params[i], nearest16(w, 7, -126));
        }
        if ((double)f16->params[i] != nearest16(w, 10, -14)) {
            if (bad_h++ < 3) printf("    f16 [%zu] %.9g -> %.9g, want %.9g\n", i, w, (double)f16->params[i], nearest16(w, 10, -14));
        }
        nsub += w != 0.0 && fabs(w) < 6.103515625e-05;
    }
    CHECK(bad_b == 0, "%zu of %zu weights not the nearest bfloat16", bad_b, m->num_floats);
    CHECK(bad_h == 0, "%zu of %zu weights not the nearest float16 (%zu in its subnormal range)", bad_h, m->num_floats, nsub);
    CHECK(f16->params[0] == 1.0f && f16->params[1] == 1.0f + 2.0f / 1024.0f && f16->params[4] == 0.0f &&
          f16->params[2] == 65504.0f && b16->params[6] == 1.0f && f16->params[8] == 1.1920928955078125e-07f, "ties to even");
    m->params[9] = 70000.0f;
    CHECK(distill_safetensors_save_as(m, "build/half_f16b.safetensors", "F16", &err) != 0 && strstr(err.msg, "float16's range") &&
          strstr(err.msg, "model.embed_tokens.weight"), "F16 overflow refused naming the tensor: %s", err.msg);
    CHECK(distill_safetensors_save_as(m, "build/half_x.safetensors", "F8", &err) != 0 && strstr(err.msg, "F8"), "unknown dtype: %s", err.msg);
    distill_model_free(b16);
    distill_model_free(f16);
    distill_model_free(m);
}

int main(void) {
    RUN(test_safetensors_half_exports);
    RUN(test_stories260k_greedy_matches_run_c);
    RUN(test_roundtrips);
    RUN(test_hostile_model_files);
    RUN(test_forward_matches_torch_fixture);
    RUN(test_write_export_for_python);
    return harness_done("test_interop");
}
