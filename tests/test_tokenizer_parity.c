/* Tokenizer parity with references:
   - pre-tokenizer splits (GPT-2, cl100k, Qwen2) against JavaScript's regex engine,
   - GPT-2 ids against OpenAI's tiktoken (npm), for the three file forms of GPT-2's tokenizer,
     with <|endoftext|> allowed and not allowed,
   - minimind's tokenizer.json (chat and <think> tokens),
   - llama2.c's tok512.bin, checked against run.c's algorithm (see test_llama2c).
   - GPT-2 ids of strings with pre-tokenizer chunks over 24 bytes (distill.h merges those with a
     heap, shorter ones with a scan) against tiktoken: words, URLs, base64, digit, whitespace and
     punctuation runs, code identifiers, ties (test_gpt2_long_chunks).
   Fixtures: tests/fixtures/tokenizer_gpt2_tiktoken.jsonl and tokenizer_gpt2_long.jsonl, made once
   by tests/gen_tiktoken_fixture.js and tests/gen_long_chunks_fixture.js.
   The real tokenizer files come from ../shared/data; tests that need them skip without it. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

#define FIXTURE "tests/fixtures/tokenizer_gpt2_tiktoken.jsonl"
#define GPT2_DIR "../shared/data/gpt2/"
#define LONG_FIXTURE "tests/fixtures/tokenizer_gpt2_long.jsonl"

typedef struct rec { char *text; size_t len; distill_ids ids, ids_special, split[4]; int has_split; } rec;
static rec recs[512];
static int n_recs;

static void read_int_array(const distill_json *a, distill_ids *out) {
    size_t i;
    for (i = 0; a && i < a->len; i++) distill_ids_push(out, (int32_t)a->items[i].i64);
}

static int load_fixture(void) {
    distill_error err;
    size_t size, off = 0;
    char *data = (char *)distill_read_file(FIXTURE, &size, &err);
    int line = 0;
    if (!data) { printf("    %s\n", err.msg); return -1; }
    while (off < size && n_recs < 512) {
        char *nl = (char *)memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
        distill_json *j = distill_json_parse(data + off, len, FIXTURE, ++line, &err);
        const distill_json *t, *sp;
        rec *r = &recs[n_recs];
        memset(r, 0, sizeof *r);
        if (!j) { printf("    %s\n", err.msg); distill_free(data); return -1; }
        t = distill_json_get(j, "text");
        r->len = t->len;
        r->text = (char *)malloc(t->len + 1);
        memcpy(r->text, t->str, t->len + 1);
        read_int_array(distill_json_get(j, "ids"), &r->ids);
        read_int_array(distill_json_get(j, "ids_special"), &r->ids_special);
        sp = distill_json_get(j, "split");
        if (sp) {
            r->has_split = 1;
            read_int_array(distill_json_get(sp, "gpt2"), &r->split[DISTILL_PATTERN_GPT2]);
            read_int_array(distill_json_get(sp, "cl100k"), &r->split[DISTILL_PATTERN_CL100K]);
            read_int_array(distill_json_get(sp, "qwen2"), &r->split[DISTILL_PATTERN_QWEN2]);
        }
        distill_json_free(j);
        n_recs++;
        off += len + 1;
    }
    distill_free(data);
    return 0;
}

static int same_ids(const distill_ids *a, const int32_t *b, size_t n) {
    return a->n == n && (n == 0 || !memcmp(a->ids, b, n * sizeof(int32_t)));
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    size_t i;
    printf("      %s:", what);
    for (i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
    printf("\n");
}

/* The hand-written pre-tokenizers (internal distill__tk_pretok, visible because the test
   includes the implementation) cut every string exactly where the JavaScript regexes do. */
static void test_splits(void) {
    int p, i, bad = 0, checked = 0;
    for (p = DISTILL_PATTERN_GPT2; p <= DISTILL_PATTERN_QWEN2; p++)
        for (i = 0; i < n_recs; i++) {
            const rec *r = &recs[i];
            size_t pos = 0, k = 0;
            int ok = 1;
            if (!r->has_split) continue;
            checked++;
            while (pos < r->len) {
                size_t e = distill__tk_pretok(p, (const unsigned char *)r->text, r->len, pos);
                if (k >= r->split[p].n || (size_t)r->split[p].ids[k] != e - pos) { ok = 0; break; }
                pos = e;
                k++;
            }
            if (k != r->split[p].n) ok = 0;
            if (!ok && bad++ < 8) {
                printf("    %s split differs for string %d: \"%s\"\n", distill_pattern_name(p), i, r->text);
                print_ids("want", r->split[p].ids, r->split[p].n);
            }
        }
    CHECK(bad == 0, "%d of %d splits differ", bad, checked);
    printf("    splits: %d of %d identical (gpt2, cl100k, qwen2)\n", checked - bad, checked);
}

static void check_gpt2(const char *path, const char *merges) {
    distill_error err;
    distill_tokenizer *t;
    int i, ok = 0, ok_sp = 0;
    t = distill_tokenizer_load(path, merges, &err);
    CHECK(t != NULL, "load: %s", err.msg);
    if (!t) return;
    CHECK(distill_tokenizer_vocab_size(t) == 50257, "vocab %d", distill_tokenizer_vocab_size(t));
    CHECK(distill_tokenizer_token_id(t, "<|endoftext|>") == 50256, "eot");
    for (i = 0; i < n_recs; i++) {
        const rec *r = &recs[i];
        distill_ids a = {NULL, 0, 0}, b = {NULL, 0, 0};
        distill_tokenizer_encode(t, r->text, r->len, 0, &a, &err);
        distill_tokenizer_encode(t, r->text, r->len, 1, &b, &err);
        if (same_ids(&a, r->ids.ids, r->ids.n)) ok++;
        else if (i - ok < 5) {
            printf("    ids differ for string %d: \"%s\"\n", i, r->text);
            print_ids("want", r->ids.ids, r->ids.n);
            print_ids("got ", a.ids, a.n);
        }
        if (same_ids(&b, r->ids_special.ids, r->ids_special.n)) ok_sp++;
        distill_ids_free(&a);
        distill_ids_free(&b);
    }
    printf("    %s: %d of %d identical to tiktoken (<|endoftext|> not allowed), %d of %d (allowed)\n",
           path, ok, n_recs, ok_sp, n_recs);
    CHECK(ok == n_recs && ok_sp == n_recs, "parity %d/%d, %d/%d", ok, n_recs, ok_sp, n_recs);
    distill_tokenizer_free(t);
}

static int have(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static void test_gpt2_tokenizer_json(void) {
    if (!have(GPT2_DIR "tokenizer.json")) SKIP("../shared/data/gpt2 not present");
    check_gpt2(GPT2_DIR "tokenizer.json", NULL);
}
static void test_gpt2_vocab_merges(void) {
    if (!have(GPT2_DIR "vocab.json")) SKIP("../shared/data/gpt2 not present");
    check_gpt2(GPT2_DIR "vocab.json", GPT2_DIR "merges.txt");
}
static void test_gpt2_own_format(void) {
    distill_error err;
    distill_tokenizer *t;
    if (!have(GPT2_DIR "tokenizer.json")) SKIP("../shared/data/gpt2 not present");
    t = distill_tokenizer_load(GPT2_DIR "tokenizer.json", NULL, &err);
    CHECK(t && distill_tokenizer_save(t, "build/test_tok_gpt2_own.txt", &err) == 0, "%s", err.msg);
    distill_tokenizer_free(t);
    check_gpt2("build/test_tok_gpt2_own.txt", NULL);
}

/* Long chunks: every fixture string has a GPT-2 chunk over 24 bytes (our pre-tokenizer must find
   the same longest chunk, so the heap path runs), and its ids are tiktoken's. */
static void check_long_chunks(const char *path, const char *merges) {
    distill_error err;
    distill_tokenizer *t;
    size_t size, off = 0;
    char *data;
    int line = 0, ok = 0, over64 = 0, split_ok = 0;
    data = (char *)distill_read_file(LONG_FIXTURE, &size, &err);
    REQUIRE(data != NULL, "%s", err.msg);
    t = distill_tokenizer_load(path, merges, &err);
    CHECK(t != NULL, "load %s: %s", path, err.msg);
    while (t && off < size) {
        char *nl = (char *)memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off, pos = 0, longest = 0;
        distill_json *j = distill_json_parse(data + off, len, LONG_FIXTURE, ++line, &err);
        const distill_json *tx = j ? distill_json_get(j, "text") : NULL, *lg = j ? distill_json_get(j, "longest") : NULL;
        distill_ids want = {NULL, 0, 0}, got = {NULL, 0, 0};
        off += len + 1;
        CHECK(tx && lg, "%s:%d: %s", LONG_FIXTURE, line, j ? "no text or longest" : err.msg);
        if (!tx || !lg) { distill_json_free(j); break; }
        while (pos < tx->len) {
            size_t e = distill__tk_pretok(DISTILL_PATTERN_GPT2, (const unsigned char *)tx->str, tx->len, pos);
            if (e - pos > longest) longest = e - pos;
            pos = e;
        }
        split_ok += (int64_t)longest == lg->i64 && longest > 24;
        over64 += longest > 64;
        read_int_array(distill_json_get(j, "ids"), &want);
        distill_tokenizer_encode(t, tx->str, tx->len, 0, &got, &err);
        if (same_ids(&got, want.ids, want.n)) ok++;
        else if (line - ok <= 5) {
            printf("    ids differ for line %d: \"%.80s\"\n", line, tx->str);
            print_ids("want", want.ids, want.n);
            print_ids("got ", got.ids, got.n);
        }
        distill_ids_free(&want);
        distill_ids_free(&got);
        distill_json_free(j);
    }
    printf("    %s: %d of %d long-chunk strings identical to tiktoken (%d with a chunk over 64 bytes)\n",
           path, ok, line, over64);
    CHECK(line >= 80 && over64 >= 40, "the fixture has %d strings, %d with a chunk over 64 bytes", line, over64);
    CHECK(split_ok == line, "%d of %d strings: our longest chunk is not the fixture's (or not over 24 bytes)",
          line - split_ok, line);
    CHECK(ok == line, "long-chunk parity %d/%d", ok, line);
    distill_tokenizer_free(t);
    distill_free(data);
}

static void test_gpt2_long_chunks(void) {
    if (!have(GPT2_DIR "tokenizer.json")) SKIP("../shared/data/gpt2 not present");
    check_long_chunks(GPT2_DIR "tokenizer.json", NULL);
    check_long_chunks(GPT2_DIR "vocab.json", GPT2_DIR "merges.txt");
}

int main(void) {
    if (load_fixture()) {
        CHECK(0, "cannot read fixture %s", FIXTURE);
        return harness_done("test_tokenizer_parity");
    }
    RUN(test_splits);
    RUN(test_gpt2_tokenizer_json);
    RUN(test_gpt2_vocab_merges);
    RUN(test_gpt2_own_format);
    RUN(test_gpt2_long_chunks);
    return harness_done("test_tokenizer_parity");
}
