/* Tokenizer files: minimind's tokenizer.json against Hugging Face's implementation (fixture made by
   tests/gen_minimind_fixture.js), llama2.c's tok512.bin against a literal re-implementation of
   run.c's encode(), and hostile files of every supported format (clear error naming the file,
   never a crash). Tests that need ../shared/data skip without it. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

#define MINIMIND "../shared/data/minimind/tokenizer.json"
#define TOK512 "../shared/data/stories260K/tok512.bin"
#define GPT2_DIR "../shared/data/gpt2/"

static int have(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static void test_minimind(void) {
    distill_error err;
    distill_tokenizer *t;
    size_t size, off = 0;
    char *data;
    int line = 0, ok = 0, n = 0;
    if (!have(MINIMIND)) SKIP("../shared/data/minimind not present");
    t = distill_tokenizer_load(MINIMIND, NULL, &err);
    CHECK(t != NULL, "load: %s", err.msg);
    if (!t) return;
    CHECK(distill_tokenizer_vocab_size(t) == 6400, "vocab %d", distill_tokenizer_vocab_size(t));
    CHECK(distill_tokenizer_token_id(t, "<|endoftext|>") == 0 && distill_tokenizer_token_id(t, "<|im_start|>") == 1 &&
          distill_tokenizer_token_id(t, "<|im_end|>") == 2 && distill_tokenizer_token_id(t, "<think>") == 25 &&
          distill_tokenizer_token_id(t, "</think>") == 26, "chat token ids");
    CHECK(distill_tokenizer_pattern(t) == DISTILL_PATTERN_GPT2, "ByteLevel pre-tokenizer -> gpt2 pattern");
    data = (char *)distill_read_file("tests/fixtures/tokenizer_minimind_hf.jsonl", &size, &err);
    CHECK(data != NULL, "%s", err.msg);
    while (data && off < size) {
        char *nl = (char *)memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off, i;
        distill_json *j = distill_json_parse(data + off, len, "minimind fixture", ++line, &err);
        const distill_json *text = distill_json_get(j, "text"), *ids = distill_json_get(j, "ids");
        distill_ids got = {NULL, 0, 0};
        int same;
        distill_tokenizer_encode(t, text->str, text->len, 1, &got, &err);
        same = got.n == ids->len;
        for (i = 0; same && i < got.n; i++) same = got.ids[i] == (int32_t)ids->items[i].i64;
        if (same) ok++;
        else printf("    differs: \"%s\"\n", text->str);
        {   /* and back */
            size_t blen;
            char *back = distill_tokenizer_decode(t, got.ids, got.n, &blen);
            CHECK(blen == text->len && !memcmp(back, text->str, blen), "round trip \"%s\"", text->str);
            free(back);
        }
        n++;
        distill_ids_free(&got);
        distill_json_free(j);
        off += len + 1;
    }
    printf("    minimind: %d of %d identical to Hugging Face tokenizers.js\n", ok, n);
    CHECK(ok == n && n > 20, "%d of %d", ok, n);
    distill_free(data);
    distill_tokenizer_free(t);
}

/* ---- llama2.c: run.c's encode, written out literally (quadratic, linear lookups) ---------- */
typedef struct ref_tok { char **piece; float *score; int n; } ref_tok;

static int ref_load(ref_tok *r, const char *path) {
    FILE *f = fopen(path, "rb");
    int maxlen, len, cap = 1024;
    float sc;
    if (!f) return -1;
    if (fread(&maxlen, 4, 1, f) != 1) { fclose(f); return -1; }
    r->piece = (char **)malloc(sizeof(char *) * (size_t)cap);
    r->score = (float *)malloc(sizeof(float) * (size_t)cap);
    r->n = 0;
    while (fread(&sc, 4, 1, f) == 1 && fread(&len, 4, 1, f) == 1 && r->n < cap) {
        r->piece[r->n] = (char *)malloc((size_t)len + 1);
        if (fread(r->piece[r->n], 1, (size_t)len, f) != (size_t)len) break;
        r->piece[r->n][len] = 0;
        r->score[r->n++] = sc;
    }
    fclose(f);
    return 0;
}

static int ref_lookup(const ref_tok *r, const char *s) {
    int i;
    for (i = 0; i < r->n; i++) if (!strcmp(r->piece[i], s)) return i;
    return -1;
}

static int ref_encode(const ref_tok *r, const char *text, int bos, int eos, int *tokens) {
    char buf[512];
    size_t blen = 0;
    int n = 0;
    const char *c;
    if (bos) tokens[n++] = 1;
    if (text[0]) tokens[n++] = ref_lookup(r, " ");
    for (c = text; *c; c++) {
        if ((*c & 0xC0) != 0x80) blen = 0;
        buf[blen++] = *c;
        buf[blen] = 0;
        if ((c[1] & 0xC0) == 0x80 && blen < 4) continue;
        {
            int id = ref_lookup(r, buf);
            size_t i;
            if (id != -1) tokens[n++] = id;
            else for (i = 0; i < blen; i++) tokens[n++] = (unsigned char)buf[i] + 3;
        }
        blen = 0;
    }
    for (;;) {
        float best = -1e10f;
        int best_id = -1, best_i = -1, i;
        for (i = 0; i < n - 1; i++) {
            char cat[512];
            int id;
            snprintf(cat, sizeof cat, "%s%s", r->piece[tokens[i]], r->piece[tokens[i + 1]]);
            id = ref_lookup(r, cat);
            if (id != -1 && r->score[id] > best) { best = r->score[id]; best_id = id; best_i = i; }
        }
        if (best_i == -1) break;
        tokens[best_i] = best_id;
        for (i = best_i + 1; i < n - 1; i++) tokens[i] = tokens[i + 1];
        n--;
    }
    if (eos) tokens[n++] = 2;
    return n;
}

static void test_llama2c(void) {
    /* the story run.c prints for stories260K at temperature 0 (llama2.c's README and test_all.py) */
    static const char *story =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
        "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
        "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do.";
    const char *texts[8];
    char rnd[200];
    ref_tok r;
    distill_error err;
    distill_tokenizer *t;
    distill_rng rng;
    int k, i, ok = 0, ntexts = 0;
    if (!have(TOK512)) SKIP("../shared/data/stories260K not present");
    t = distill_tokenizer_load(TOK512, NULL, &err);
    CHECK(t != NULL, "load: %s", err.msg);
    if (!t || ref_load(&r, TOK512)) return;
    CHECK(distill_tokenizer_vocab_size(t) == 512 && r.n == 512, "vocab %d", distill_tokenizer_vocab_size(t));
    CHECK(distill_tokenizer_is_llama(t) && distill_tokenizer_bos_id(t) == 1 && distill_tokenizer_eos_id(t) == 2, "bos/eos");
    distill_rng_seed(&rng, 3);
    for (i = 0; i < (int)sizeof rnd - 1; i++) rnd[i] = (char)(32 + distill_rng_below(&rng, 95));
    rnd[sizeof rnd - 1] = 0;
    texts[ntexts++] = story;
    texts[ntexts++] = "Once upon a time";
    texts[ntexts++] = "";
    texts[ntexts++] = "x";
    texts[ntexts++] = "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 (byte fallback)";
    texts[ntexts++] = "  double  spaces\nand\ttabs  ";
    texts[ntexts++] = rnd;
    for (k = 0; k < ntexts; k++) {
        int want[1024], n = ref_encode(&r, texts[k], 1, 1, want), same;
        distill_ids got = {NULL, 0, 0};
        char *back;
        size_t blen;
        distill_tokenizer_encode_ex(t, texts[k], strlen(texts[k]), DISTILL_ENC_BOS | DISTILL_ENC_EOS, &got, &err);
        same = (int)got.n == n;
        for (i = 0; same && i < n; i++) same = got.ids[i] == want[i];
        if (same) ok++;
        else printf("    differs from run.c's algorithm: \"%s\"\n", texts[k]);
        /* run.c prints pieces after BOS with the dummy-prefix space removed */
        back = distill_tokenizer_decode(t, got.ids, got.n, &blen);
        CHECK(blen == strlen(texts[k]) && !memcmp(back, texts[k], blen), "decode \"%s\" -> \"%s\"", texts[k], back);
        free(back);
        distill_ids_free(&got);
    }
    printf("    tok512.bin: %d of %d encodings identical to run.c's algorithm\n", ok, ntexts);
    CHECK(ok == ntexts, "%d of %d", ok, ntexts);
    for (i = 0; i < r.n; i++) free(r.piece[i]);
    free(r.piece); free(r.score);
    distill_tokenizer_free(t);
}

/* ---- hostile files ------------------------------------------------------------------------ */
static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);   /* a hostile file never written would "fail to load" */
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n, "short write to %s", path);
    fclose(f);
}

static void expect_fail(const char *path, const char *merges, const char *what, const char *needle) {
    distill_error err;
    distill_tokenizer *t;
    err.msg[0] = 0;
    t = distill_tokenizer_load(path, merges, &err);
    CHECK(t == NULL, "%s: loaded although broken", what);
    CHECK(strstr(err.msg, merges && needle && !strcmp(needle, "MERGES") ? merges : path) != NULL,
          "%s: error does not name the file: %s", what, err.msg);
    if (needle && strcmp(needle, "MERGES")) CHECK(strstr(err.msg, needle) != NULL, "%s: '%s' not in: %s", what, needle, err.msg);
    distill_tokenizer_free(t);
}

static const char *own_ok =
    "distill-tokenizer 1\npattern gpt2\nvocab_size 259\nbytes identity\nmerges 2\n"
    "97 97 256  # \"aa\"\n256 98 257\nspecials 1\n258 <|endoftext|>\nplain 0\nend\n";

static void own_variant(const char *from, const char *to, const char *what, const char *needle) {
    char buf[1024];
    const char *p = strstr(own_ok, from);
    size_t a = (size_t)(p - own_ok);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)a, own_ok, to, p + strlen(from));
    write_file("build/hostile_own.txt", buf, strlen(buf));
    expect_fail("build/hostile_own.txt", NULL, what, needle);
}

static void test_hostile_own(void) {
    distill_error err;
    distill_tokenizer *t;
    size_t i;
    write_file("build/hostile_own.txt", own_ok, strlen(own_ok));
    t = distill_tokenizer_load("build/hostile_own.txt", NULL, &err);
    CHECK(t != NULL, "the good file must load: %s", err.msg);
    distill_tokenizer_free(t);
    for (i = 1; i + 1 < strlen(own_ok); i += 3) {   /* every truncation fails cleanly */
        write_file("build/hostile_own.txt", own_ok, i);
        expect_fail("build/hostile_own.txt", NULL, "truncated own format", NULL);
    }
    own_variant("merges 2", "merges 3", "too many merges announced", ":8: expected");
    own_variant("merges 2", "merges 1", "too few merges announced", NULL);
    own_variant("256 98 257", "97 97 257", "duplicate merge", "duplicate merge");
    own_variant("256 98 257", "256 98 999", "id out of range", "vocab_size");
    own_variant("256 98 257", "300 98 257", "merge of undefined token", NULL);
    own_variant("merges 2", "merges 99999999999", "huge count", "out of range");
    own_variant("vocab_size 259", "vocab_size 4000000000", "huge vocab", "out of range");
    own_variant("distill-tokenizer 1", "distill-tokenizer 2", "future version", "version");
    own_variant("pattern gpt2", "pattern perl", "unknown pattern", "perl");
    own_variant("258 <|endoftext|>", "257 <|endoftext|>", "id defined twice", "twice");
    own_variant("258 <|endoftext|>", "258 bad\\q", "bad escape", NULL);
    own_variant("vocab_size 259", "vocab_size 300", "vocab_size larger than the ids", "vocab_size");
    own_variant("97 97 256", "257 97 256", "merges forming a cycle", "cycle");
    {   /* a merge may use the result of a later line (files converted from elsewhere) */
        const char *fwd = "distill-tokenizer 1\npattern gpt2\nvocab_size 258\nbytes identity\nmerges 2\n"
                          "256 98 257\n97 97 256\nspecials 0\nplain 0\nend\n";
        distill_ids ids = {NULL, 0, 0};
        write_file("build/hostile_own.txt", fwd, strlen(fwd));
        t = distill_tokenizer_load("build/hostile_own.txt", NULL, &err);
        CHECK(t != NULL, "forward reference: %s", err.msg);
        if (t) {
            distill_tokenizer_encode(t, "aab", 3, 0, &ids, &err);
            CHECK(ids.n == 1 && ids.ids[0] == 257, "aab -> 257 (aa first, then (aa)b)");
        }
        distill_ids_free(&ids);
        distill_tokenizer_free(t);
    }
}

static void put_i32(unsigned char *p, int32_t v) { memcpy(p, &v, 4); }

static void test_hostile_llama(void) {
    unsigned char buf[64];
    size_t n = 0;
    float sc = 0.5f;
    int k;
    /* a valid 3-token file: max_len 4, then (score, len, bytes) x3 */
    put_i32(buf, 4); n = 4;
    for (k = 0; k < 3; k++) {
        memcpy(buf + n, &sc, 4); put_i32(buf + n + 4, 1); buf[n + 8] = (unsigned char)('a' + k); n += 9;
    }
    write_file("build/hostile_llama.bin", buf, n);
    {
        distill_error err;
        distill_tokenizer *t = distill_tokenizer_load("build/hostile_llama.bin", NULL, &err);
        CHECK(t != NULL, "the good file must load: %s", err.msg);
        distill_tokenizer_free(t);
    }
    for (k = 1; k < (int)n; k++) {
        if ((k - 4) % 9 == 0) continue;        /* record boundaries are valid shorter files... */
        write_file("build/hostile_llama.bin", buf, (size_t)k);
        expect_fail("build/hostile_llama.bin", NULL, "truncated llama2.c file", NULL);
    }
    put_i32(buf + 8, 1 << 30);
    write_file("build/hostile_llama.bin", buf, n);
    expect_fail("build/hostile_llama.bin", NULL, "huge token length", "length");
    put_i32(buf + 8, -5);
    write_file("build/hostile_llama.bin", buf, n);
    expect_fail("build/hostile_llama.bin", NULL, "negative token length", "length");
    put_i32(buf + 8, 1);
    put_i32(buf, 0);
    write_file("build/hostile_llama.bin", buf, n);
    expect_fail("build/hostile_llama.bin", NULL, "max_token_length 0", "max_token_length");
    write_file("build/hostile_llama.bin", "", 0);
    expect_fail("build/hostile_llama.bin", NULL, "empty file", NULL);
    {   /* found by the fuzzer: every piece empty (a NULL pool once) */
        unsigned char e[4 + 8 * 4];
        distill_error err;
        distill_tokenizer *t;
        distill_ids ids = {NULL, 0, 0};
        memset(e, 0, sizeof e);
        put_i32(e, 4);
        write_file("build/hostile_llama.bin", e, sizeof e);
        t = distill_tokenizer_load("build/hostile_llama.bin", NULL, &err);
        if (t) distill_tokenizer_encode(t, "abc", 3, 1, &ids, &err);
        distill_ids_free(&ids);
        distill_tokenizer_free(t);
    }
}

static void test_hostile_json(void) {
    static const char *vocab = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|endoftext|>\": 3}";
    static const char *hf_head = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": ";
    char buf[512];
    distill_error err;
    distill_tokenizer *t;
    write_file("build/hostile_vocab.json", vocab, strlen(vocab));
    write_file("build/hostile_merges.txt", "#version: 0.2\na b\n", 18);
    t = distill_tokenizer_load("build/hostile_vocab.json", "build/hostile_merges.txt", &err);
    CHECK(t != NULL && distill_tokenizer_token_id(t, "<|endoftext|>") == 3, "good vocab+merges: %s", t ? "" : err.msg);
    distill_tokenizer_free(t);
    write_file("build/hostile_merges.txt", "a b\na b\n", 8);
    expect_fail("build/hostile_vocab.json", "build/hostile_merges.txt", "duplicate merge", "MERGES");
    write_file("build/hostile_merges.txt", "a c\n", 4);
    expect_fail("build/hostile_vocab.json", "build/hostile_merges.txt", "unknown token in merge", "MERGES");
    write_file("build/hostile_merges.txt", "a b c\n", 6);
    expect_fail("build/hostile_vocab.json", "build/hostile_merges.txt", "three tokens on a line", "MERGES");
    write_file("build/hostile_merges.txt", "a b\n", 4);
    write_file("build/hostile_vocab.json", vocab, 20);
    expect_fail("build/hostile_vocab.json", "build/hostile_merges.txt", "truncated vocab.json", NULL);
    write_file("build/hostile_vocab.json", "{\"a\": 0, \"b\": 0}", 16);
    expect_fail("build/hostile_vocab.json", "build/hostile_merges.txt", "duplicate id", "twice");
    write_file("build/hostile_vocab.json", "{\"a\": 0, \"b\": 99999999999}", 26);
    expect_fail("build/hostile_vocab.json", "build/hostile_merges.txt", "id out of range", NULL);
    write_file("build/hostile_vocab.json", "{\"a\": 0, \"b\": 2}", 16);
    write_file("build/hostile_merges.txt", "", 0);
    expect_fail("build/hostile_vocab.json", "build/hostile_merges.txt", "hole in ids", NULL);
    expect_fail("build/hostile_vocab.json", NULL, "vocab.json without merges", "merges");

    snprintf(buf, sizeof buf, "%s[\"a b\"]}}", hf_head);
    write_file("build/hostile_tok.json", buf, strlen(buf));
    t = distill_tokenizer_load("build/hostile_tok.json", NULL, &err);
    CHECK(t != NULL, "good tokenizer.json: %s", err.msg);
    distill_tokenizer_free(t);
    snprintf(buf, sizeof buf, "%s[[\"a\", \"b\"]]}}", hf_head);
    write_file("build/hostile_tok.json", buf, strlen(buf));
    t = distill_tokenizer_load("build/hostile_tok.json", NULL, &err);
    CHECK(t != NULL, "pair-form merges: %s", err.msg);
    distill_tokenizer_free(t);
    snprintf(buf, sizeof buf, "%s[\"a b\", \"a b\"]}}", hf_head);
    write_file("build/hostile_tok.json", buf, strlen(buf));
    expect_fail("build/hostile_tok.json", NULL, "duplicate merge", "duplicate");
    snprintf(buf, sizeof buf, "%s7}}", hf_head);
    write_file("build/hostile_tok.json", buf, strlen(buf));
    expect_fail("build/hostile_tok.json", NULL, "merges not an array", "merges");
    snprintf(buf, sizeof buf, "%s[\"a b\"]}", hf_head);
    write_file("build/hostile_tok.json", buf, strlen(buf));
    expect_fail("build/hostile_tok.json", NULL, "truncated tokenizer.json", NULL);
    write_file("build/hostile_tok.json", "{\"model\": {\"type\": \"WordPiece\"}}", 32);
    expect_fail("build/hostile_tok.json", NULL, "WordPiece", "WordPiece");
    snprintf(buf, sizeof buf, "{\"normalizer\": {\"type\": \"NFKC\"}, %s[]}}", hf_head + 1);
    write_file("build/hostile_tok.json", buf, strlen(buf));
    expect_fail("build/hostile_tok.json", NULL, "normalizer", "NFKC");
    {   /* NFC (Qwen2): accepted, and encode refuses text it cannot prove to be NFC */
        distill_ids ids = {NULL, 0, 0};
        distill_tokenizer *u;
        snprintf(buf, sizeof buf, "{\"normalizer\": {\"type\": \"NFC\"}, %s[\"a b\"]}}", hf_head + 1);
        write_file("build/hostile_tok.json", buf, strlen(buf));
        t = distill_tokenizer_load("build/hostile_tok.json", NULL, &err);
        CHECK(t != NULL, "NFC normalizer: %s", err.msg);
        if (t) {
            CHECK(distill_tokenizer_encode(t, "abba", 4, 0, &ids, &err) == 0, "ASCII is NFC: %s", err.msg);
            err.msg[0] = 0;
            CHECK(distill_tokenizer_encode(t, "ab\xcc\x81", 4, 0, &ids, &err) == -1 && strstr(err.msg, "U+0301"),
                  "combining acute must be refused: %s", err.msg);
            CHECK(distill_tokenizer_save(t, "build/hostile_nfc.txt", &err) == 0, "save");
            u = distill_tokenizer_load("build/hostile_nfc.txt", NULL, &err);
            CHECK(u && distill_tokenizer_encode(u, "a\xcc\x81", 3, 0, &ids, &err) == -1, "NFC flag survives save/load");
            distill_tokenizer_free(u);
        }
        distill_ids_free(&ids);
        distill_tokenizer_free(t);
    }
    snprintf(buf, sizeof buf, "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, "
             "\"behavior\": \"Isolated\"}, %s[]}}", hf_head + 1);
    write_file("build/hostile_tok.json", buf, strlen(buf));
    expect_fail("build/hostile_tok.json", NULL, "unsupported regex", "regex");
    snprintf(buf, sizeof buf, "{\"added_tokens\": [{\"id\": 1, \"content\": \"<x>\"}], %s[]}}", hf_head + 1);
    write_file("build/hostile_tok.json", buf, strlen(buf));
    t = distill_tokenizer_load("build/hostile_tok.json", NULL, &err);
    CHECK(t == NULL || distill_tokenizer_token_id(t, "<x>") == 1, "added token overriding a vocab id");
    distill_tokenizer_free(t);
    expect_fail("build/does_not_exist.json", NULL, "missing file", NULL);
}

int main(void) {
    RUN(test_minimind);
    RUN(test_llama2c);
    RUN(test_hostile_own);
    RUN(test_hostile_llama);
    RUN(test_hostile_json);
    return harness_done("test_tokenizer_files");
}
