/* A distill checkpoint carries its tokenizer and chat template name: distill_model_load gives
   them back (generate, eval, export and info need no --tokenizer), --tokenizer still
   overrides, and checkpoints written before (no such sections) load as they did. The
   reference is the tokenizer loaded from its original file: the carried copy must encode and
   decode identically. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "cli_harness.h"
#include <sys/stat.h>

#define MINIMIND "../shared/data/minimind/tokenizer.json"
#define TOK512 "../shared/data/stories260K/tok512.bin"
#define D "build/test_ckpt_tokenizer"

static const char *sample = "Hello <|im_start|>user\nWhat is 12*12? <think>144</think> \xc3\xa9t\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 done.<|im_end|>";

static int exists(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static distill_model *tiny(int vocab, distill_error *err) {
    distill_config c = distill_config_default();
    c.vocab_size = vocab; c.dim = 16; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 24;
    return distill_model_create(&c, 1, 8, 1, err);
}

/* the carried tokenizer encodes (specials allowed) and decodes as the original */
static void same_tokenizer(const distill_tokenizer *a, const distill_tokenizer *b, const char *what) {
    distill_ids x, y;
    distill_error err;
    char *da, *db;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    CHECK(distill_tokenizer_vocab_size(a) == distill_tokenizer_vocab_size(b), "%s: vocab %d vs %d", what,
          distill_tokenizer_vocab_size(a), distill_tokenizer_vocab_size(b));
    distill_tokenizer_encode(a, sample, strlen(sample), 1, &x, &err);
    distill_tokenizer_encode(b, sample, strlen(sample), 1, &y, &err);
    CHECK(x.n > 5 && x.n == y.n && !memcmp(x.ids, y.ids, x.n * 4), "%s: ids differ (%zu vs %zu)", what, x.n, y.n);
    da = distill_tokenizer_decode(a, x.ids, x.n, NULL);
    db = distill_tokenizer_decode(b, y.ids, y.n, NULL);
    CHECK(da && db && !strcmp(da, db), "%s: decodes differ", what);
    CHECK(distill_tokenizer_eos_id(a) == distill_tokenizer_eos_id(b) && distill_tokenizer_bos_id(a) == distill_tokenizer_bos_id(b),
          "%s: bos/eos differ", what);
    distill_free(da);
    distill_free(db);
    distill_ids_free(&x);
    distill_ids_free(&y);
}

static void roundtrip(const char *tok_path, const char *tmpl, const char *ck) {
    distill_error err;
    distill_tokenizer *tok = distill_tokenizer_load(tok_path, NULL, &err), *back = NULL;
    distill_model *m, *r, *r2;
    char sha_a[65], sha_b[65];
    CHECK(tok != NULL, "%s", err.msg);
    if (!tok) return;
    m = tiny(distill_tokenizer_vocab_size(tok), &err);
    CHECK(m && distill_model_set_tokenizer(m, tok, tmpl, &err) == 0, "%s", err.msg);
    CHECK(distill_checkpoint_write(ck, m, 0, NULL, NULL, 0, &err) == 0, "%s", err.msg);
    r = distill_model_load(ck, 1, 8, &back, &err);
    CHECK(r && back, "%s: %s", ck, err.msg);
    if (r && back) {
        same_tokenizer(tok, back, tok_path);
        CHECK(distill_model_chat_template(r) && !strcmp(distill_model_chat_template(r), tmpl), "template name");
        distill_model_sha256(m, sha_a);
        distill_model_sha256(r, sha_b);
        CHECK(!strcmp(sha_a, sha_b), "weights unchanged");
        /* a model loaded from it carries them on into its own checkpoints */
        CHECK(distill_checkpoint_write(D "/again.dstl", r, 0, NULL, NULL, 0, &err) == 0, "%s", err.msg);
        distill_tokenizer_free(back);
        back = NULL;
        r2 = distill_model_load(D "/again.dstl", 1, 8, &back, &err);
        CHECK(r2 && back && distill_model_has_tokenizer(r2) && !strcmp(distill_model_chat_template(r2), tmpl), "re-saved: %s", err.msg);
        if (back) same_tokenizer(tok, back, "re-saved");
        distill_model_free(r2);
    }
    distill_tokenizer_free(back);
    distill_model_free(r);
    distill_model_free(m);
    distill_tokenizer_free(tok);
}

static void test_hf_bpe_tokenizer(void) {
    if (!exists(MINIMIND)) SKIP("%s absent", MINIMIND);
    mkdir("build", 0755);
    mkdir(D, 0755);
    roundtrip(MINIMIND, "chatml-prefill", D "/bpe.dstl");
}

static void test_llama2c_tokenizer(void) {
    if (!exists(TOK512)) SKIP("%s absent", TOK512);
    mkdir(D, 0755);
    roundtrip(TOK512, "plain", D "/llama.dstl");
}

/* a checkpoint without the sections: no tokenizer unless one is beside it, no template */
static void test_old_checkpoints(void) {
    distill_error err;
    distill_tokenizer *tok = NULL;
    distill_model *m = tiny(64, &err), *r;
    size_t n;
    unsigned char *b;
    mkdir(D, 0755);
    mkdir(D "/old", 0755);
    CHECK(distill_checkpoint_write(D "/old/model.dstl", m, 1, "{\"step\": 1}", NULL, 0, &err) == 0, "%s", err.msg);
    r = distill_model_load(D "/old/model.dstl", 1, 8, &tok, &err);
    CHECK(r && !tok && !distill_model_has_tokenizer(r) && !distill_model_chat_template(r), "no sections: %s", err.msg);
    distill_model_free(r);
    distill_model_free(m);
    /* a checkpoint file committed before this change (the fuzz seed, after its mode byte) */
    b = (unsigned char *)distill_read_file("tests/fuzz/corpus/checkpoint/tiny_llama.dstl", &n, &err);
    CHECK(b != NULL, "%s", err.msg);
    if (!b) return;
    CHECK(distill_write_file_atomic(D "/old/seed.dstl", b + 1, n - 1, &err) == 0, "%s", err.msg);
    distill_free(b);
    r = distill_model_load(D "/old/seed.dstl", 1, 8, &tok, &err);
    CHECK(r && !tok, "old checkpoint: %s", err.msg);
    distill_model_free(r);
}

/* the CLI: train, then generate/info/export without --tokenizer; --tokenizer overrides */
static void test_cli_without_tokenizer(void) {
    FILE *f;
    int i;
    char *s;
    if (!exists(MINIMIND)) SKIP("%s absent", MINIMIND);
    if (!have_cli()) SKIP("./distill not built (make)");
    if (sh("rm -rf " D "/cli && mkdir -p " D "/cli") != 0) return;
    f = fopen(D "/cli/d.jsonl", "w");
    for (i = 0; i < 8; i++) fprintf(f, "{\"prompt\": \"Count to %d.\", \"completion\": \"1 2 3 %d\"}\n", i, i);
    fclose(f);
    CHECK(sh("./distill train --data " D "/cli/d.jsonl --tokenizer " MINIMIND " --template chatml-prefill --out " D "/cli/o "
             "--dim 32 --layers 1 --heads 2 --kv-heads 1 --hidden 64 --batch-rows 4 --steps 2 > " D "/cli/train.txt 2>&1") == 0,
          "train");
    CHECK(sh("./distill generate --model " D "/cli/o/model.dstl --prompt hi --max-new-tokens 3 > " D "/cli/gen.txt 2>&1") == 0,
          "generate without --tokenizer");
    CHECK(sh("./distill generate --model " D "/cli/o/model.dstl --tokenizer " MINIMIND " --prompt hi --max-new-tokens 3 --ids "
             "> /dev/null 2>&1") == 0, "--tokenizer overrides");
    CHECK(sh("./distill generate --model " D "/cli/o/model.dstl --tokenizer " D "/cli/d.jsonl --prompt hi > /dev/null 2>&1") != 0,
          "--tokenizer is really used (a bad one fails)");
    CHECK(sh("./distill info " D "/cli/o/model.dstl > " D "/cli/info.txt") == 0, "info");
    s = (char *)distill_read_file(D "/cli/info.txt", NULL, NULL);
    CHECK(s && strstr(s, "tokenizer   6400 tokens, carried in the file") && strstr(s, "template    chatml-prefill"), "info: %s", s ? s : "");
    distill_free(s);
    CHECK(sh("./distill export " D "/cli/o/model.dstl --format safetensors -o " D "/cli/m.safetensors > /dev/null") == 0, "export");
}

int main(void) {
    RUN(test_hf_bpe_tokenizer);
    RUN(test_llama2c_tokenizer);
    RUN(test_old_checkpoints);
    RUN(test_cli_without_tokenizer);
    return harness_done("test_ckpt_tokenizer");
}
