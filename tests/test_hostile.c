/* Hostile model files: every crash, unbounded allocation or silently wrong result the fuzzers
   (tests/fuzz/, make fuzz-all) or the loader review found becomes a test here. The allocator is
   replaced by one that refuses any single allocation above HOSTILE_CAP and records the largest
   request, so "never allocates more than the file could justify" is checked directly and a
   regression fails fast instead of eating the machine's memory. */
#define _POSIX_C_SOURCE 200809L   /* as distill.h would, since system headers come first here */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define HOSTILE_CAP ((size_t)64 << 20)
static size_t hostile_largest;
static void *hostile_malloc(size_t n) {
    if (n > hostile_largest) hostile_largest = n;
    return n > HOSTILE_CAP ? NULL : malloc(n);
}
static void *hostile_realloc(void *p, size_t n) {
    if (n > hostile_largest) hostile_largest = n;
    return n > HOSTILE_CAP ? NULL : realloc(p, n);
}
#define DISTILL_MALLOC(n) hostile_malloc(n)
#define DISTILL_REALLOC(p, n) hostile_realloc(p, n)
#define DISTILL_FREE(p) free(p)
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <sys/stat.h>

static int put_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    if (n && fwrite(p, 1, n, f) != n) { fclose(f); return -1; }
    return fclose(f);
}

/* A checkpoint written by hand: the given header JSON and `data_len` bytes of data, with
   correct checksums, so only the content is hostile. */
static int write_raw_checkpoint(const char *path, const char *json, size_t data_len) {
    size_t jl = strlen(json), n = DISTILL__CKPT_HDR + jl + data_len;
    unsigned char *b = (unsigned char *)calloc(n, 1);
    int rc;
    memcpy(b, DISTILL__CKPT_MAGIC, 8);
    distill__put_u32(b + 8, DISTILL__CKPT_VERSION);
    distill__put_u64(b + 16, jl);
    distill__put_u64(b + 24, data_len);
    memcpy(b + DISTILL__CKPT_HDR, json, jl);
    distill__put_u32(b + 32, distill_crc32(0, b + DISTILL__CKPT_HDR, n - DISTILL__CKPT_HDR));
    distill__put_u32(b + 36, distill_crc32(0, b, 36));
    rc = put_file(path, b, n);
    free(b);
    return rc;
}

/* A checkpoint whose config claims a 2.6-billion-parameter model but whose params section is
   16 bytes: loading it must fail on the size mismatch before allocating the model (found in the
   loader review: distill_model_load created the model from the config first). */
static void test_checkpoint_huge_config_small_file(void) {
    const char *path = "build/hostile/huge.dstl";
    const char *json =
        "{\"format\": \"distill-checkpoint\", \"version\": 1, \"config\": {\"vocab_size\": 32000, \"dim\": 2048, "
        "\"n_layers\": 48, \"n_heads\": 16, \"n_kv_heads\": 16, \"hidden_dim\": 5632, \"rope_theta\": 10000, "
        "\"norm_eps\": 1e-5, \"qkv_bias\": 0, \"tie_embeddings\": 1}, \"num_params\": 4, "
        "\"sections\": [{\"name\": \"params\", \"offset\": 0, \"size\": 16}], \"train\": null}";
    distill_error err;
    distill_model *m;
    distill_checkpoint *ck;
    CHECK(write_raw_checkpoint(path, json, 16) == 0, "write %s", path);
    ck = distill_checkpoint_read(path, &err);
    CHECK(ck != NULL, "the file itself is well-formed: %s", err.msg);
    distill_checkpoint_free(ck);
    hostile_largest = 0;
    m = distill_model_load(path, 1, 8, NULL, &err);
    CHECK(m == NULL, "a 16-byte params section cannot fill a 2.6B-parameter model");
    CHECK(strstr(err.msg, "params") != NULL && strstr(err.msg, path) != NULL, "message names the file and section: %s", err.msg);
    CHECK(hostile_largest < ((size_t)16 << 20), "largest allocation %zu bytes for a %zu-byte file", hostile_largest,
          strlen(json) + 56);
    distill_model_free(m);
}

/* safetensors: config.json claims a big model, the tensor file is a few bytes. The load must
   fail before allocating the model. */
static void test_safetensors_huge_config_small_file(void) {
    const char *cfg =
        "{\"model_type\": \"llama\", \"hidden_size\": 2048, \"intermediate_size\": 5632, \"num_attention_heads\": 16,"
        " \"num_hidden_layers\": 48, \"num_key_value_heads\": 16, \"vocab_size\": 32000, \"rms_norm_eps\": 1e-5,"
        " \"tie_word_embeddings\": true}";
    const char *hdr = "{\"model.embed_tokens.weight\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    unsigned char buf[256];
    size_t hl = strlen(hdr);
    distill_error err;
    distill_model *m;
    distill__put_u64(buf, hl);
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, 0, 4);
    CHECK(put_file("build/hostile/config.json", cfg, strlen(cfg)) == 0 &&
          put_file("build/hostile/model.safetensors", buf, 8 + hl + 4) == 0, "write files");
    hostile_largest = 0;
    m = distill_model_load("build/hostile/model.safetensors", 1, 8, NULL, &err);
    CHECK(m == NULL, "4 bytes of tensor data cannot fill a 2.6B-parameter model");
    CHECK(strstr(err.msg, "model.safetensors") != NULL, "message names the file: %s", err.msg);
    CHECK(hostile_largest < ((size_t)16 << 20), "largest allocation %zu bytes for a %zu-byte file", hostile_largest, 8 + hl + 4);
    distill_model_free(m);
}

/* llama2.c: a header with absurd (but individually in-range) sizes on a short file is refused by
   the exact size check, without allocating. */
static void test_llama2c_huge_header_small_file(void) {
    int32_t h[7 + 16] = {4096, 11008, 32, 32, 32, 32000, 2048};
    distill_error err;
    distill_model *m;
    CHECK(put_file("build/hostile/huge.bin", h, sizeof h) == 0, "write");
    hostile_largest = 0;
    m = distill_model_load("build/hostile/huge.bin", 1, 8, NULL, &err);
    CHECK(m == NULL && strstr(err.msg, "huge.bin") != NULL, "refused: %s", err.msg);
    CHECK(hostile_largest < ((size_t)1 << 20), "largest allocation %zu bytes", hostile_largest);
    distill_model_free(m);
}

/* llama2.c vocab_size INT_MIN (negative means an unshared classifier): negating it overflowed
   before the range check (UBSan in make asan; found by fuzz_llama2c). */
static void test_llama2c_vocab_int_min(void) {
    int32_t h[7] = {8, 8, 1, 2, 2, (int32_t)(-2147483647 - 1), 8};
    distill_error err;
    distill_model *m;
    CHECK(put_file("build/hostile/intmin.bin", h, sizeof h) == 0, "write");
    m = distill_model_load("build/hostile/intmin.bin", 1, 8, NULL, &err);
    CHECK(m == NULL && strstr(err.msg, "intmin.bin") != NULL, "refused: %s", err.msg);
    distill_model_free(m);
}

/* ---- top-k teacher cache: values the loss cannot use ---- */
#define HV 11
#define HK 3
static int write_cache(const char *path) {
    int32_t tok[5] = {1, 2, 3, 4, 5}, tg[5] = {-1, 3, 4, 5, 6};
    float lg[5 * HV];
    int i;
    distill_error err;
    distill_topk_writer *w = distill_topk_writer_open(path, HK, HV, &err);
    if (!w) return -1;
    for (i = 0; i < 5 * HV; i++) lg[i] = (float)((i * 7) % 13) * 0.25f;
    if (distill_topk_writer_add_row(w, tok, tg, 5, lg, &err) != 0) return -1;
    return distill_topk_writer_close(w, &err);
}

/* Patch the cache file: `what` 0 sets the tail log-prob of entry 0 to v, 1 sets the first
   log-prob to v, 2 duplicates id 0 into slot 1. The CRC is recomputed so only the value is bad. */
static int patch_cache(const char *path, int what, float v) {
    size_t n;
    unsigned char *b = (unsigned char *)distill_read_file(path, &n, NULL);
    unsigned char *e;
    int rc;
    if (!b) return -1;
    e = b + DISTILL__TOPK_HDR + DISTILL__TOPK_ROW;   /* one row, then the entries */
    if (what == 0) distill__put_f32(e + 8 * HK, v);
    else if (what == 1) distill__put_f32(e + 4 * HK, v);
    else memcpy(e + 4, e, 4);
    distill__put_u32(b + n - 4, distill_crc32(0, b, n - 4));
    rc = put_file(path, b, n);
    distill_free(b);
    return rc;
}

static void test_topk_cache_bad_values_refused(void) {
    const char *path = "build/hostile/c.topk";
    static const float bad_tail[] = {INFINITY, NAN, 0.5f};
    distill_error err;
    distill_topk_cache *c;
    size_t i;
    CHECK(write_cache(path) == 0, "write the cache");
    c = distill_topk_cache_open(path, HV, 1, &err);
    CHECK(c != NULL, "the unpatched cache opens: %s", err.msg);
    distill_topk_cache_free(c);
    /* a tail log-probability that is +inf, NaN or positive makes the divergence NaN (the
       loss normalises over k + 1 bins with the tail as one of them) */
    for (i = 0; i < sizeof bad_tail / sizeof bad_tail[0]; i++) {
        CHECK(write_cache(path) == 0 && patch_cache(path, 0, bad_tail[i]) == 0, "patch");
        c = distill_topk_cache_open(path, HV, 1, &err);
        CHECK(c == NULL, "tail log-prob %g must be refused", (double)bad_tail[i]);
        if (c) {
            double s[HV], g[HV], scratch[5 * HV];
            int32_t ids[HK];
            float lp[HK];
            const unsigned char *e = c->entries;
            int j;
            distill_kd_config kc = distill_kd_default();
            for (j = 0; j < HV; j++) s[j] = 0.1 * j;
            for (j = 0; j < HK; j++) { ids[j] = (int32_t)distill__get_u32(e + 4 * j); lp[j] = distill__get_f32(e + 4 * (HK + j)); }
            printf("    (accepted; the loss from it is %g)\n",
                   distill_kd_position(s, HV, NULL, ids, lp, HK, distill__get_f32(e + 8 * HK), 2, &kc, g, scratch).loss);
            distill_topk_cache_free(c);
        } else {
            CHECK(strstr(err.msg, path) != NULL, "message names the file: %s", err.msg);
        }
    }
    /* the same id listed twice in one position's top-k */
    CHECK(write_cache(path) == 0 && patch_cache(path, 2, 0.0f) == 0, "patch");
    c = distill_topk_cache_open(path, HV, 1, &err);
    CHECK(c == NULL, "duplicate ids in one position must be refused");
    distill_topk_cache_free(c);
    /* and the existing check on the listed log-probs still holds */
    CHECK(write_cache(path) == 0 && patch_cache(path, 1, 0.25f) == 0, "patch");
    c = distill_topk_cache_open(path, HV, 1, &err);
    CHECK(c == NULL, "a positive log-prob is refused");
    distill_topk_cache_free(c);
}

/* Checkpoint sections outside the data, negative or overflowing offsets. */
static void test_checkpoint_bad_sections(void) {
    static const char *secs[] = {
        "[{\"name\": \"params\", \"offset\": 8, \"size\": 16}]",
        "[{\"name\": \"params\", \"offset\": -8, \"size\": 16}]",
        "[{\"name\": \"params\", \"offset\": 9223372036854775807, \"size\": 9223372036854775807}]",
        "[{\"name\": \"params\", \"offset\": 0, \"size\": 1e3}]",
        "[{\"name\": 7, \"offset\": 0, \"size\": 4}]",
        "[7]",
        "{}",
    };
    char json[1024];
    size_t i;
    distill_error err;
    for (i = 0; i < sizeof secs / sizeof secs[0]; i++) {
        distill_checkpoint *ck;
        snprintf(json, sizeof json,
                 "{\"format\": \"distill-checkpoint\", \"version\": 1, \"config\": {\"vocab_size\": 8, \"dim\": 4, "
                 "\"n_layers\": 1, \"n_heads\": 1, \"n_kv_heads\": 1, \"hidden_dim\": 4, \"rope_theta\": 10000, "
                 "\"norm_eps\": 1e-5, \"qkv_bias\": 0, \"tie_embeddings\": 1}, \"sections\": %s, \"train\": null}", secs[i]);
        CHECK(write_raw_checkpoint("build/hostile/s.dstl", json, 16) == 0, "write");
        ck = distill_checkpoint_read("build/hostile/s.dstl", &err);
        CHECK(ck == NULL, "sections %s must be refused", secs[i]);
        distill_checkpoint_free(ck);
    }
}

/* Truncated and bit-flipped copies of a valid checkpoint: each is refused with a message (the
   header CRC or the data CRC catches every single-byte change). */
static void test_checkpoint_truncations_and_flips(void) {
    distill_config c = distill_config_default();
    distill_error err;
    distill_model *m;
    unsigned char *b;
    size_t n, cut;
    int refused = 0, total = 0;
    c.vocab_size = 16; c.dim = 8; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 2; c.hidden_dim = 12;
    m = distill_model_create(&c, 1, 4, 3, &err);
    CHECK(m && distill_checkpoint_write("build/hostile/ok.dstl", m, 0, "{\"step\": 1}", NULL, 0, &err) == 0, "write: %s", err.msg);
    distill_model_free(m);
    b = (unsigned char *)distill_read_file("build/hostile/ok.dstl", &n, &err);
    CHECK(b != NULL, "read back");
    if (!b) return;
    for (cut = 0; cut < n; cut += 1 + cut / 3) {
        distill_checkpoint *ck;
        put_file("build/hostile/t.dstl", b, cut);
        ck = distill_checkpoint_read("build/hostile/t.dstl", &err);
        total++; refused += ck == NULL && err.msg[0] != 0;
        distill_checkpoint_free(ck);
    }
    for (cut = 0; cut < n; cut += 1 + cut / 5) {
        distill_checkpoint *ck;
        b[cut] ^= 0x20;
        put_file("build/hostile/t.dstl", b, n);
        b[cut] ^= 0x20;
        ck = distill_checkpoint_read("build/hostile/t.dstl", &err);
        total++; refused += ck == NULL && err.msg[0] != 0;
        distill_checkpoint_free(ck);
    }
    CHECK(refused == total, "%d of %d damaged copies refused", refused, total);
    distill_free(b);
}

/* An exported Hugging Face folder with a damaged tokenizer_config.json or tokenizer.json (cut
   short, one byte flipped): loading it ends in a model or in an error naming the damaged file,
   never a crash or a wrong template name; the allocator cap holds. */
static void test_hf_folder_side_files_damaged(void) {
    static const char *const names[] = {"tokenizer_config.json", "tokenizer.json"};
    distill_config c = distill_config_default();
    distill_error err;
    distill_model *m;
    distill_tokenizer *tok;
    static const char *texts[] = {"hello world, hello <|im_end|> 12 34"};
    const char *const *sp;
    int nsp, f, loaded = 0, refused = 0, total = 0;
    sp = distill_tokenizer_default_specials(&nsp);
    tok = distill_tokenizer_train(texts, NULL, 1, 256 + 8 + nsp, DISTILL_PATTERN_QWEN2, sp, nsp, &err);
    REQUIRE(tok != NULL, "%s", err.msg);
    c.vocab_size = distill_tokenizer_vocab_size(tok); c.dim = 8; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 2; c.hidden_dim = 12;
    m = distill_model_create(&c, 1, 4, 3, &err);
    REQUIRE(m != NULL, "%s", err.msg);
    mkdir("build/hostile/hf", 0755);
    CHECK(distill_safetensors_save_sharded(m, "build/hostile/hf", "F32", 2000000000, &err) == 0 &&
          distill_hf_save_tokenizer(tok, distill_chat_template_get("chatml-prefill"), "build/hostile/hf", &err) == 0, "%s", err.msg);
    distill_model_free(m);
    for (f = 0; f < 2; f++) {
        char path[128];
        unsigned char *b;
        size_t n, at;
        snprintf(path, sizeof path, "build/hostile/hf/%s", names[f]);
        b = (unsigned char *)distill_read_file(path, &n, &err);
        REQUIRE(b != NULL, "%s", err.msg);
        for (at = 0; at < 2 * n; at += 1 + at / 7) {   /* first cuts at `at`, then flips byte at - n */
            distill_tokenizer *back = NULL;
            if (at < n) put_file(path, b, at);
            else { b[at - n] ^= 0x21; put_file(path, b, n); b[at - n] ^= 0x21; }
            err.msg[0] = 0;
            m = distill_model_load("build/hostile/hf", 1, 4, &back, &err);
            total++;
            if (m) {
                const char *tn = distill_model_chat_template(m);
                loaded++;
                CHECK(!tn || !strcmp(tn, "chatml-prefill"), "%s damaged at %zu: template '%s'", names[f], at, tn);
            } else {
                refused++;
                CHECK(strstr(err.msg, names[f]) != NULL, "%s damaged at %zu: the error names it: %s", names[f], at, err.msg);
            }
            distill_model_free(m);
            distill_tokenizer_free(back);
        }
        put_file(path, b, n);
        distill_free(b);
    }
    CHECK(loaded > 0 && refused > 0 && hostile_largest <= HOSTILE_CAP, "%d loaded, %d refused of %d", loaded, refused, total);
    distill_tokenizer_free(tok);
}

/* ---- numerical faults: a NaN stops training naming the step, the tensor and the checkpoint ---- */
typedef struct { distill_model *m; int calls; int32_t tok[2 * 8], tg[2 * 8]; int64_t pos; } nan_src;
static int nan_next(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err) {
    nan_src *s = (nan_src *)ctx;
    int i;
    (void)err;
    /* the 3rd batch arrives with a corrupted weight, as a bad kernel or a cosmic ray would leave it */
    if (++s->calls == 3) s->m->layers[0].w_up[5] = NAN;
    for (i = 0; i < 16; i++) { s->tok[i] = (int32_t)((i * 3 + s->calls) % 16); s->tg[i] = i % 8 == 0 ? -1 : (int32_t)((i * 5) % 16); }
    memset(b, 0, sizeof *b);
    b->B = 2; b->T = 8; b->tokens = s->tok; b->targets = s->tg;
    *rows = NULL; *n_rows = 0;
    s->pos++;
    return 0;
}
static void nan_get(void *ctx, int64_t st[3]) { st[0] = ((nan_src *)ctx)->pos; st[1] = st[2] = 0; }
static int nan_set(void *ctx, const int64_t st[3], distill_error *err) { (void)err; ((nan_src *)ctx)->pos = st[0]; return 0; }

static void test_nan_names_step_tensor_and_checkpoint(void) {
    distill_config c = distill_config_default();
    distill_train_config tc = distill_train_default();
    distill_batch_source q;
    distill_error err;
    distill_trainer *T;
    nan_src s;
    c.vocab_size = 16; c.dim = 8; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 2; c.hidden_dim = 12;
    memset(&s, 0, sizeof s);
    s.m = distill_model_create(&c, 2, 8, 1, &err);
    CHECK(s.m != NULL, "model: %s", err.msg);
    if (!s.m) return;
    memset(&q, 0, sizeof q);
    q.ctx = &s; q.next = nan_next; q.get_state = nan_get; q.set_state = nan_set;
    mkdir("build/hostile/nan", 0755);
    remove("build/hostile/nan/ckpt-000000001.dstl");
    remove("build/hostile/nan/ckpt-000000002.dstl");
    tc.max_steps = 6; tc.save_every = 1; tc.out_dir = "build/hostile/nan"; tc.progress = 0;
    T = distill_trainer_create(s.m, &q, NULL, &tc, &err);
    CHECK(T != NULL, "trainer: %s", err.msg);
    if (T) {
        CHECK(distill_trainer_run(T, &err) != 0, "training must stop at the NaN");
        printf("    %s\n", err.msg);
        CHECK(strstr(err.msg, "step 3") != NULL, "names the step: %s", err.msg);
        CHECK(strstr(err.msg, "model.layers.0.mlp.up_proj.weight") != NULL, "names the tensor: %s", err.msg);
        CHECK(strstr(err.msg, "ckpt-000000002.dstl") != NULL, "names the last good checkpoint: %s", err.msg);
        CHECK(distill_trainer_steps_done(T) == 2, "no step after the NaN (%lld done)", (long long)distill_trainer_steps_done(T));
    }
    distill_trainer_free(T);
    distill_model_free(s.m);
}

int main(void) {
    mkdir("build", 0755);
    mkdir("build/hostile", 0755);
    RUN(test_checkpoint_huge_config_small_file);
    RUN(test_safetensors_huge_config_small_file);
    RUN(test_llama2c_huge_header_small_file);
    RUN(test_llama2c_vocab_int_min);
    RUN(test_topk_cache_bad_values_refused);
    RUN(test_checkpoint_bad_sections);
    RUN(test_checkpoint_truncations_and_flips);
    RUN(test_hf_folder_side_files_damaged);
    RUN(test_nan_names_step_tensor_and_checkpoint);
    return harness_done("test_hostile");
}
