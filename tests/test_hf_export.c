/* The exported Hugging Face folder (distill export --format safetensors): config.json, weights
   (sharded above a size), tokenizer.json, tokenizer_config.json with the chat template as Jinja,
   generation_config.json.
   References: fixtures/hf_export/chat_templates.json holds the strings npm @huggingface/jinja
   renders from the exported chat_template, and tokenizer_ids.json the ids npm
   @huggingface/tokenizers encodes with the exported tokenizer.json (tests/gen_hf_export_fixture.js);
   minimind's fixtures (gen_minimind_fixture.js, gen_added_tokens_fixture.js) check a real
   tokenizer after export and reload. Weights: export -> load gives the same logits bit for bit;
   an HF folder loaded and exported again has the same tensor bytes. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "cli_harness.h"
#include <sys/stat.h>

#define D "build/test_hf_export"
#define FIX "tests/fixtures/hf_export/"
#define SMALL FIX "tokenizer_small.txt"
#define MINIMIND "../shared/data/minimind/tokenizer.json"
#define GPT2 "../shared/data/gpt2/tokenizer.json"

static void setup(void) {
    mkdir("build", 0755);
    mkdir(D, 0755);
}

/* the ids a JSON array holds */
static int json_ids(const distill_json *a, distill_ids *out) {
    size_t i;
    if (!a || a->type != DISTILL_JSON_ARRAY) return -1;
    for (i = 0; i < a->len; i++) distill_ids_push(out, (int32_t)a->items[i].i64);
    return 0;
}

static distill_role role_of(const char *r) {
    return !strcmp(r, "system") ? DISTILL_ROLE_SYSTEM : !strcmp(r, "user") ? DISTILL_ROLE_USER : DISTILL_ROLE_ASSISTANT;
}

/* ---- the chat template ---------------------------------------------------------------------- */
/* Not built in: a bos, a default system turn with quotes and a backslash, a pre-filled prompt
   (the same struct as in tests/gen_hf_export_fixture.js) */
static const distill_chat_template custom = {"custom", "<s>", {"<<SYS>>\n", "[INST] ", "[/INST] "}, "</s>", "\n",
                                             "Be helpful; don't say \"no\" \\ ever.", "<think>\n"};

/* For each built-in template and a custom one: the library writes the same Jinja text the
   fixture was made from, and distill_chat_render gives what @huggingface/jinja rendered from it. */
static void test_chat_template_matches_jinja(void) {
    distill_error err;
    distill_json *fx = distill_json_parse_file(FIX "chat_templates.json", &err);
    const distill_json *convs, *tmpls, *rend;
    size_t t, c;
    REQUIRE(fx != NULL, "%s", err.msg);
    convs = distill_json_get(fx, "conversations");
    tmpls = distill_json_get(fx, "templates");
    rend = distill_json_get(fx, "rendered");
    REQUIRE(convs && tmpls && rend && convs->len >= 8 && tmpls->len == 4, "fixture layout");
    for (t = 0; t < tmpls->len; t++) {
        const distill_chat_template *tp = strcmp(tmpls->keys[t], "custom") ? distill_chat_template_get(tmpls->keys[t]) : &custom;
        const distill_json *outs = distill_json_get(rend, tmpls->keys[t]);
        char *j;
        REQUIRE(tp && outs && outs->len == convs->len, "template %s", tmpls->keys[t]);
        j = distill_chat_template_jinja(tp);
        CHECK(j && !strcmp(j, tmpls->items[t].str), "%s: the Jinja text differs from the fixture's (regenerate it: "
              "node tests/gen_hf_export_fixture.js)\n%s", tmpls->keys[t], j ? j : "");
        distill_free(j);
        for (c = 0; c < convs->len; c++) {
            const distill_json *cv = &convs->items[c], *msgs = distill_json_get(cv, "messages");
            int add_gen = distill_json_get(cv, "add_generation_prompt")->type == DISTILL_JSON_TRUE;
            distill_conv conv;
            size_t k, n = 0;
            char *s;
            memset(&conv, 0, sizeof conv);
            for (k = 0; k < msgs->len; k++) {
                const distill_json *ct = distill_json_get(&msgs->items[k], "content");
                distill_conv_add(&conv, role_of(distill_json_get(&msgs->items[k], "role")->str), ct->str, ct->len, -1.0f);
            }
            s = distill_chat_render(tp, &conv, add_gen, &n);
            CHECK(s && n == outs->items[c].len && !memcmp(s, outs->items[c].str, n),
                  "%s, conversation %zu: library\n[%s]\njinja\n[%s]", tmpls->keys[t], c, s ? s : "", outs->items[c].str);
            distill_free(s);
            distill_conv_free(&conv);
        }
    }
    distill_json_free(fx);
}

/* ---- tokenizer.json --------------------------------------------------------------------------- */
/* Same vocabulary (bytes and special/added flags of every id), merges and bos/eos. */
static void same_tokens(const distill_tokenizer *a, const distill_tokenizer *b, const char *what) {
    int32_t id, l1, r1, o1, l2, r2, o2;
    int k, bad = 0;
    REQUIRE(distill_tokenizer_vocab_size(a) == distill_tokenizer_vocab_size(b), "%s: vocab %d vs %d", what,
            distill_tokenizer_vocab_size(a), distill_tokenizer_vocab_size(b));
    for (id = 0; id < distill_tokenizer_vocab_size(a); id++) {
        size_t na, nb;
        const char *pa = distill_tokenizer_token_bytes(a, id, &na), *pb = distill_tokenizer_token_bytes(b, id, &nb);
        if (!pa || !pb || na != nb || memcmp(pa, pb, na) || distill_tokenizer_is_special(a, id) != distill_tokenizer_is_special(b, id) ||
            a->tok_flag[id] != b->tok_flag[id]) {
            if (bad++ < 3) CHECK(0, "%s: token %d differs (flags %d %d)", what, (int)id, a->tok_flag[id], b->tok_flag[id]);
        }
    }
    CHECK(bad == 0, "%s: %d tokens differ", what, bad);
    REQUIRE(distill_tokenizer_n_merges(a) == distill_tokenizer_n_merges(b), "%s: merges %d vs %d", what,
            distill_tokenizer_n_merges(a), distill_tokenizer_n_merges(b));
    for (k = 0, bad = 0; k < distill_tokenizer_n_merges(a); k++) {
        distill_tokenizer_merge(a, k, &l1, &r1, &o1);
        distill_tokenizer_merge(b, k, &l2, &r2, &o2);
        bad += l1 != l2 || r1 != r2 || o1 != o2;
    }
    CHECK(bad == 0, "%s: %d merges differ", what, bad);
    CHECK(distill_tokenizer_eos_id(a) == distill_tokenizer_eos_id(b) && distill_tokenizer_bos_id(a) == distill_tokenizer_bos_id(b) &&
          distill_tokenizer_pattern(a) == distill_tokenizer_pattern(b), "%s: eos/bos/pattern differ", what);
    CHECK(a->whole_first == b->whole_first && a->nfc == b->nfc, "%s: ignore_merges %d/%d, nfc %d/%d", what, a->whole_first,
          b->whole_first, a->nfc, b->nfc);
}

static const char *const texts[] = {
    "Hello <|im_start|>user\nWhat is 12*12? <think>144</think> \xc3\xa9t\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 done.<|im_end|>",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call><|endoftext|>",
    "  spaces   and\ttabs\r\n 3.14159 2718 1000000 'quotes' \"double\" \\backslash\\ emoji \xf0\x9f\x8e\x89 \xd0\xbf\xd1\x80\xd0\xb8",
    "raw bytes \xff\xfe\x80 and <|im_end without the bar",
    "",
};

/* the same ids, with special tokens matched (1) and as text (0) */
static void same_encodings(const distill_tokenizer *a, const distill_tokenizer *b, const char *what) {
    size_t i;
    int allow;
    for (i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (allow = 0; allow < 2; allow++) {
            distill_ids x, y;
            distill_error e1, e2;
            int ra, rb;
            memset(&x, 0, sizeof x);
            memset(&y, 0, sizeof y);
            ra = distill_tokenizer_encode(a, texts[i], strlen(texts[i]), allow, &x, &e1);
            rb = distill_tokenizer_encode(b, texts[i], strlen(texts[i]), allow, &y, &e2);
            CHECK(ra == rb && x.n == y.n && (x.n == 0 || !memcmp(x.ids, y.ids, x.n * 4)), "%s: text %zu (allow_special %d): "
                  "%zu vs %zu ids", what, i, allow, x.n, y.n);
            distill_ids_free(&x);
            distill_ids_free(&y);
        }
}

/* save_hf -> load: the same tokenizer; returns the reloaded one */
static distill_tokenizer *roundtrip(const distill_tokenizer *t, const char *path, const char *what) {
    distill_error err;
    distill_tokenizer *u;
    if (distill_tokenizer_save_hf(t, path, &err) != 0) { CHECK(0, "%s: save_hf: %s", what, err.msg); return NULL; }
    u = distill_tokenizer_load(path, NULL, &err);
    CHECK(u != NULL, "%s: reload: %s", what, err.msg);
    if (!u) return NULL;
    same_tokens(t, u, what);
    same_encodings(t, u, what);
    return u;
}

static void test_tokenizer_roundtrip_small(void) {
    distill_error err;
    distill_tokenizer *t = distill_tokenizer_load(SMALL, NULL, &err), *u;
    REQUIRE(t != NULL, "%s", err.msg);
    setup();
    CHECK(distill_tokenizer_token_id(t, "<tool_call>") >= 0 && !distill_tokenizer_is_special(t, distill_tokenizer_token_id(t, "<tool_call>")),
          "the fixture has a non-special added token");
    u = roundtrip(t, D "/small.json", "small");
    distill_tokenizer_free(u);
    distill_tokenizer_free(t);
}

/* The exported file is the one @huggingface/tokenizers read (same sha256), and the library
   encodes the fixture's texts to the ids it gave, before and after a reload of that file. */
static void test_tokenizer_ids_match_hf(void) {
    distill_error err;
    distill_tokenizer *t = distill_tokenizer_load(SMALL, NULL, &err), *u = NULL;
    distill_json *fx = distill_json_parse_file(FIX "tokenizer_ids.json", &err);
    const distill_json *tx, *ids;
    unsigned char *file = NULL, d[32];
    size_t n = 0, i;
    char hex[65];
    distill_sha256 s;
    int k;
    REQUIRE(t && fx, "%s", err.msg);
    setup();
    REQUIRE(distill_tokenizer_save_hf(t, D "/ids.json", &err) == 0, "%s", err.msg);
    file = (unsigned char *)distill_read_file(D "/ids.json", &n, &err);
    REQUIRE(file != NULL, "%s", err.msg);
    distill_sha256_init(&s);
    distill_sha256_update(&s, file, n);
    distill_sha256_final(&s, d);
    for (k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", d[k]);
    CHECK(!strcmp(hex, distill_json_get(fx, "tokenizer_json_sha256")->str), "the exported tokenizer.json is not the one "
          "the fixture was made from (regenerate: node tests/gen_hf_export_fixture.js)");
    u = distill_tokenizer_load(D "/ids.json", NULL, &err);
    REQUIRE(u != NULL, "%s", err.msg);
    tx = distill_json_get(fx, "texts");
    ids = distill_json_get(fx, "ids");
    REQUIRE(tx && ids && tx->len == ids->len && tx->len >= 20, "fixture layout");
    for (i = 0; i < tx->len; i++) {
        distill_ids want, a, b;
        memset(&want, 0, sizeof want);
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        json_ids(&ids->items[i], &want);
        CHECK(distill_tokenizer_encode(t, tx->items[i].str, tx->items[i].len, 1, &a, &err) == 0, "%s", err.msg);
        CHECK(distill_tokenizer_encode(u, tx->items[i].str, tx->items[i].len, 1, &b, &err) == 0, "%s", err.msg);
        CHECK(a.n == want.n && (!a.n || !memcmp(a.ids, want.ids, a.n * 4)), "text %zu: library %zu ids, HF %zu", i, a.n, want.n);
        CHECK(b.n == want.n && (!b.n || !memcmp(b.ids, want.ids, b.n * 4)), "text %zu after reload: %zu ids, HF %zu", i, b.n, want.n);
        distill_ids_free(&want);
        distill_ids_free(&a);
        distill_ids_free(&b);
    }
    distill_free(file);
    distill_json_free(fx);
    distill_tokenizer_free(t);
    distill_tokenizer_free(u);
}

/* The small tokenizer's merges under the gpt2, cl100k and none pre-tokenizers (its "pattern"
   line changed): the exported file is the one @huggingface/tokenizers read, and the library
   encodes the texts to the ids it gave, so Hugging Face cuts text as the library does. */
static void test_tokenizer_patterns_match_hf(void) {
    static const char *const pats[] = {"gpt2", "cl100k", "none"};
    distill_error err;
    distill_json *fx = distill_json_parse_file(FIX "tokenizer_ids.json", &err);
    char *src = (char *)distill_read_file(SMALL, NULL, &err);
    const distill_json *tx;
    size_t p, i;
    REQUIRE(fx && src, "%s", err.msg);
    setup();
    tx = distill_json_get(fx, "texts");
    for (p = 0; p < 3; p++) {
        const distill_json *v = distill_json_get(distill_json_get(fx, "patterns"), pats[p]);
        char path[128], out[128], *q, hex[65];
        unsigned char *file, d[32];
        distill_tokenizer *t;
        distill_sha256 sh;
        size_t n = 0;
        FILE *f;
        int k;
        REQUIRE(v, "fixture has pattern %s", pats[p]);
        snprintf(path, sizeof path, D "/small_%s.txt", pats[p]);
        snprintf(out, sizeof out, D "/small_%s.json", pats[p]);
        q = strstr(src, "\npattern qwen2\n");
        REQUIRE(q && (f = fopen(path, "wb")) != NULL, "variant of %s", SMALL);
        fwrite(src, 1, (size_t)(q - src), f);
        fprintf(f, "\npattern %s\n%s", pats[p], q + 15);
        fclose(f);
        t = distill_tokenizer_load(path, NULL, &err);
        REQUIRE(t && distill_tokenizer_pattern(t) == distill_pattern_from_name(pats[p]), "%s: %s", path, err.msg);
        CHECK(distill_tokenizer_save_hf(t, out, &err) == 0, "%s", err.msg);
        file = (unsigned char *)distill_read_file(out, &n, &err);
        REQUIRE(file != NULL, "%s", err.msg);
        distill_sha256_init(&sh);
        distill_sha256_update(&sh, file, n);
        distill_sha256_final(&sh, d);
        for (k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", d[k]);
        CHECK(!strcmp(hex, distill_json_get(v, "tokenizer_json_sha256")->str), "%s: not the file the fixture was made from", pats[p]);
        for (i = 0; i < tx->len; i++) {
            distill_ids want, got;
            memset(&want, 0, sizeof want);
            memset(&got, 0, sizeof got);
            json_ids(&distill_json_get(v, "ids")->items[i], &want);
            CHECK(distill_tokenizer_encode(t, tx->items[i].str, tx->items[i].len, 1, &got, &err) == 0, "%s", err.msg);
            CHECK(got.n == want.n && (!got.n || !memcmp(got.ids, want.ids, got.n * 4)), "%s, text %zu: %zu ids, HF %zu", pats[p], i,
                  got.n, want.n);
            distill_ids_free(&want);
            distill_ids_free(&got);
        }
        distill_free(file);
        distill_tokenizer_free(t);
    }
    distill_free(src);
    distill_json_free(fx);
}

/* apply_chat_template(tokenize=True) of the exported folder gives the ids the library trains
   on: distill_chat_encode of each conversation equals @huggingface/tokenizers' encoding of the
   string @huggingface/jinja rendered (chatml and plain; the fixture encodes those). */
static void test_chat_encode_matches_hf_tokenize(void) {
    distill_error err;
    distill_tokenizer *t = distill_tokenizer_load(SMALL, NULL, &err);
    distill_json *ct = distill_json_parse_file(FIX "chat_templates.json", &err);
    distill_json *ti = distill_json_parse_file(FIX "tokenizer_ids.json", &err);
    static const char *const names[2] = {"chatml", "plain"};
    const distill_json *convs, *tx, *ids;
    size_t c, i;
    int k, checked = 0;
    REQUIRE(t && ct && ti, "%s", err.msg);
    convs = distill_json_get(ct, "conversations");
    tx = distill_json_get(ti, "texts");
    ids = distill_json_get(ti, "ids");
    for (k = 0; k < 2; k++)
        for (c = 0; c < convs->len; c++) {
            const distill_json *msgs = distill_json_get(&convs->items[c], "messages");
            const distill_json *r = &distill_json_get(distill_json_get(ct, "rendered"), names[k])->items[c];
            int add = distill_json_get(&convs->items[c], "add_generation_prompt")->type == DISTILL_JSON_TRUE;
            distill_conv conv;
            distill_ids x, want;
            memset(&conv, 0, sizeof conv);
            memset(&x, 0, sizeof x);
            memset(&want, 0, sizeof want);
            for (i = 0; i < tx->len && !(tx->items[i].len == r->len && !memcmp(tx->items[i].str, r->str, r->len)); i++) {}
            REQUIRE(i < tx->len, "%s conversation %zu: its rendering is not in tokenizer_ids.json", names[k], c);
            json_ids(&ids->items[i], &want);
            for (i = 0; i < msgs->len; i++) {
                const distill_json *co = distill_json_get(&msgs->items[i], "content");
                distill_conv_add(&conv, role_of(distill_json_get(&msgs->items[i], "role")->str), co->str, co->len, -1.0f);
            }
            CHECK(distill_chat_encode(distill_chat_template_get(names[k]), t, &conv, DISTILL_LOSS_ASSISTANT, add, &x, NULL, &err) == 0,
                  "%s", err.msg);
            CHECK(x.n == want.n && (!x.n || !memcmp(x.ids, want.ids, x.n * 4)), "%s conversation %zu: %zu ids, HF %zu", names[k], c,
                  x.n, want.n);
            checked++;
            distill_ids_free(&x);
            distill_ids_free(&want);
            distill_conv_free(&conv);
        }
    CHECK(checked == 18, "%d conversations checked", checked);
    distill_json_free(ct);
    distill_json_free(ti);
    distill_tokenizer_free(t);
}

/* A real tokenizer (Qwen-style specials, non-special added tokens): export, reload, and the
   reloaded one still gives the ids of the committed @huggingface/tokenizers fixtures. */
static void check_jsonl_ids(const distill_tokenizer *t, const char *fixture, const char *key, int allow) {
    distill_error err;
    distill_line_reader *r = distill_line_reader_open(fixture, 1 << 20, &err);
    const char *line;
    size_t len;
    int64_t ln;
    int n = 0;
    REQUIRE(r != NULL, "%s", err.msg);
    while (distill_line_reader_next(r, &line, &len, &ln, &err) == 1) {
        distill_json *j = distill_json_parse(line, len, fixture, 1, &err);
        const distill_json *text = j ? distill_json_get(j, "text") : NULL;
        if (text && distill_json_get(j, key)) {
            distill_ids want, got;
            memset(&want, 0, sizeof want);
            memset(&got, 0, sizeof got);
            json_ids(distill_json_get(j, key), &want);
            distill_tokenizer_encode(t, text->str, text->len, allow, &got, &err);
            CHECK(got.n == want.n && (!got.n || !memcmp(got.ids, want.ids, got.n * 4)), "%s:%lld: %zu ids vs HF %zu", fixture,
                  (long long)ln, got.n, want.n);
            distill_ids_free(&want);
            distill_ids_free(&got);
            n++;
        }
        distill_json_free(j);
    }
    distill_line_reader_close(r);
    CHECK(n >= 5, "%s: only %d lines checked", fixture, n);
}

static void test_tokenizer_roundtrip_real(void) {
    distill_error err;
    distill_tokenizer *t, *u;
    if (!harness_have(MINIMIND)) SKIP("%s absent", MINIMIND);
    setup();
    t = distill_tokenizer_load(MINIMIND, NULL, &err);
    REQUIRE(t != NULL, "%s", err.msg);
    u = roundtrip(t, D "/minimind.json", "minimind");
    if (u) {
        check_jsonl_ids(u, "tests/fixtures/tokenizer_minimind_hf.jsonl", "ids", 1);
        check_jsonl_ids(u, "tests/fixtures/tokenizer_minimind_added.jsonl", "ids", 1);
        check_jsonl_ids(u, "tests/fixtures/tokenizer_minimind_added.jsonl", "ids_split", 0);
    }
    distill_tokenizer_free(u);
    distill_tokenizer_free(t);
    if (harness_have(GPT2)) {   /* the GPT-2 pattern (ByteLevel's own regex), <|endoftext|> in the vocab too */
        t = distill_tokenizer_load(GPT2, NULL, &err);
        CHECK(t != NULL, "%s", err.msg);
        if (t) {
            u = roundtrip(t, D "/gpt2.json", "gpt2");
            if (u) {   /* tiktoken's "ids" have <|endoftext|> as text, "ids_special" as the token */
                check_jsonl_ids(u, "tests/fixtures/tokenizer_gpt2_tiktoken.jsonl", "ids", 0);
                check_jsonl_ids(u, "tests/fixtures/tokenizer_gpt2_tiktoken.jsonl", "ids_special", 1);
            }
            distill_tokenizer_free(u);
        }
        distill_tokenizer_free(t);
    }
}

/* A tokenizer trained with each pattern (none, gpt2, cl100k, qwen2) survives the round trip. */
static void test_tokenizer_roundtrip_patterns(void) {
    static const char *train[] = {"Hello world, hello world! 123 4567 \xc3\xa9t\xc3\xa9 'quotes' don't\n\n  x",
                                  "def f(x):\n    return x * 2  # twice\n", "aaaa bbbb aaaa bbbb abab"};
    const char *const *sp;
    int nsp, p;
    setup();
    sp = distill_tokenizer_default_specials(&nsp);
    for (p = 0; p <= DISTILL_PATTERN_QWEN2; p++) {
        distill_error err;
        char path[128], what[32];
        distill_tokenizer *t = distill_tokenizer_train(train, NULL, 3, 300 + nsp, p, sp, nsp, &err), *u;
        CHECK(t != NULL, "%s", err.msg);
        if (!t) continue;
        snprintf(path, sizeof path, D "/pattern%d.json", p);
        snprintf(what, sizeof what, "pattern %s", distill_pattern_name(p));
        /* Hugging Face's ignore_merges and NFC normalizer (Llama 3, Qwen2) travel too */
        t->whole_first = p == DISTILL_PATTERN_CL100K;
        t->nfc = p == DISTILL_PATTERN_QWEN2;
        u = roundtrip(t, path, what);
        distill_tokenizer_free(u);
        distill_tokenizer_free(t);
    }
}

/* What tokenizer.json cannot hold is refused with a message, and nothing is written. */
static void test_tokenizer_refusals(void) {
    distill_error err;
    FILE *f;
    distill_tokenizer *t;
    setup();
    /* merges 256 ("ab" + "c") and 258 ("a" + "bc") both make "abc" */
    f = fopen(D "/dup.txt", "w");
    REQUIRE(f != NULL, "cannot write " D "/dup.txt");
    fputs("distill-tokenizer 1\npattern none\nvocab_size 260\nbytes identity\nmerges 4\n97 98 256\n256 99 257\n"
          "98 99 258\n97 258 259\nspecials 0\nplain 0\nend\n", f);
    fclose(f);
    t = distill_tokenizer_load(D "/dup.txt", NULL, &err);
    REQUIRE(t != NULL, "%s", err.msg);
    remove(D "/dup.json");
    CHECK(distill_tokenizer_save_hf(t, D "/dup.json", &err) != 0 && strstr(err.msg, "257") && strstr(err.msg, "259") &&
          strstr(err.msg, "same bytes"), "duplicate bytes refused: %s", err.msg);
    CHECK(!harness_have(D "/dup.json"), "nothing written");
    distill_tokenizer_free(t);
    t = distill_tokenizer_load(SMALL, NULL, &err);
    REQUIRE(t != NULL, "%s", err.msg);
    CHECK(distill_tokenizer_save_hf(t, D "/no/such/dir/tokenizer.json", &err) != 0 && strstr(err.msg, D "/no/such/dir/tokenizer.json"),
          "a missing folder names the file: %s", err.msg);
    CHECK(distill_hf_save_tokenizer(t, NULL, D "/no/such/dir", &err) != 0 && strstr(err.msg, "no/such/dir"),
          "a missing folder names it: %s", err.msg);
    distill_tokenizer_free(t);
    if (harness_have("../shared/data/stories260K/tok512.bin")) {
        t = distill_tokenizer_load("../shared/data/stories260K/tok512.bin", NULL, &err);
        CHECK(t && distill_tokenizer_save_hf(t, D "/l2c.json", &err) != 0 && strstr(err.msg, "llama2.c"), "llama2.c refused: %s", err.msg);
        distill_tokenizer_free(t);
    }
}

/* ---- the whole folder --------------------------------------------------------------------------- */
static distill_model *tiny(int vocab, int qwen3, int tied, distill_error *err) {
    distill_config c = distill_config_default();
    c.vocab_size = vocab; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 48;
    c.tie_embeddings = tied;
    if (qwen3) { c.qk_norm = 1; c.head_dim = 12; c.rope_theta = 1e6f; }
    return distill_model_create(&c, 1, 16, 7, err);
}

/* logits (T,V) of one fixed row */
static float *logits_of(distill_model *m, int T) {
    int32_t tok[16];
    int len = T, t;
    distill_batch b;
    distill_error err;
    float *out = (float *)malloc(sizeof(float) * (size_t)T * (size_t)m->cfg.vocab_size);
    for (t = 0; t < T; t++) tok[t] = (int32_t)((t * 37 + 5) % m->cfg.vocab_size);
    memset(&b, 0, sizeof b);
    b.B = 1; b.T = T; b.tokens = tok; b.lengths = &len;
    if (!out || distill_model_forward(m, &b, NULL, 0, NULL, &err) != 0) { free(out); return NULL; }
    distill_model_logits(m, 0, out);
    return out;
}

static void export_load_case(int qwen3, int tied, int64_t shard, const char *tmpl, const char *dir) {
    distill_error err;
    distill_tokenizer *tok = distill_tokenizer_load(SMALL, NULL, &err), *back = NULL;
    distill_model *m, *r;
    float *a, *b;
    size_t n;
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    char p[256];
    REQUIRE(tok != NULL, "%s", err.msg);
    m = tiny(distill_tokenizer_vocab_size(tok), qwen3, tied, &err);
    REQUIRE(m != NULL, "%s", err.msg);
    CHECK(distill_model_set_tokenizer(m, tok, tmpl, &err) == 0, "%s", err.msg);
    CHECK(distill_safetensors_save_sharded(m, dir, "F32", shard, &err) == 0, "%s", err.msg);
    CHECK(distill_hf_save_tokenizer(tok, distill_chat_template_get(tmpl), dir, &err) == 0, "%s", err.msg);
    for (n = 0; n < sizeof files / sizeof files[0]; n++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[n]);
        CHECK(harness_have(p), "%s written", p);
    }
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(harness_have(p) == (shard < 1000000), "%s: an index exactly when sharded", dir);
    r = distill_model_load(dir, 1, 16, &back, &err);
    REQUIRE(r != NULL, "%s: %s", dir, err.msg);
    CHECK(back != NULL, "%s: the tokenizer is found beside the weights", dir);
    if (back) { same_tokens(tok, back, dir); same_encodings(tok, back, dir); }
    CHECK(distill_model_chat_template(r) && !strcmp(distill_model_chat_template(r), tmpl),
          "%s: the template name comes back from tokenizer_config.json (%s)", dir, distill_model_chat_template(r) ? distill_model_chat_template(r) : "none");
    CHECK(r->cfg.qk_norm == m->cfg.qk_norm && distill_config_head_dim(&r->cfg) == distill_config_head_dim(&m->cfg) && r->cfg.tie_embeddings == tied,
          "%s: config", dir);
    a = logits_of(m, 12);
    b = logits_of(r, 12);
    CHECK(a && b && !memcmp(a, b, sizeof(float) * 12 * (size_t)m->cfg.vocab_size), "%s: logits differ", dir);
    free(a);
    free(b);
    distill_model_free(r);
    distill_model_free(m);
    distill_tokenizer_free(back);
    distill_tokenizer_free(tok);
}

static void test_export_load_same_logits(void) {
    setup();
    export_load_case(1, 1, 2000000000, "chatml", D "/q3_one");
    export_load_case(1, 0, 20000, "chatml-prefill", D "/q3_shards");
    export_load_case(0, 0, 2000000000, "plain", D "/llama_one");
}

/* generation_config.json and tokenizer_config.json name the right tokens */
static void test_config_tokens(void) {
    distill_error err;
    distill_tokenizer *tok = distill_tokenizer_load(SMALL, NULL, &err);
    distill_json *g, *c;
    const distill_json *eos, *dec;
    REQUIRE(tok != NULL, "%s", err.msg);
    setup();
    mkdir(D "/cfg", 0755);
    REQUIRE(distill_hf_save_tokenizer(tok, distill_chat_template_get("chatml"), D "/cfg", &err) == 0, "%s", err.msg);
    g = distill_json_parse_file(D "/cfg/generation_config.json", &err);
    c = distill_json_parse_file(D "/cfg/tokenizer_config.json", &err);
    REQUIRE(g && c, "%s", err.msg);
    eos = distill_json_get(g, "eos_token_id");
    CHECK(eos && eos->type == DISTILL_JSON_ARRAY && eos->len == 2 && eos->items[0].i64 == distill_tokenizer_token_id(tok, "<|im_end|>") &&
          eos->items[1].i64 == distill_tokenizer_token_id(tok, "<|endoftext|>"), "eos ids: end of turn, then end of text");
    CHECK(distill_json_get(g, "pad_token_id")->i64 == distill_tokenizer_token_id(tok, "<|endoftext|>"), "pad id");
    CHECK(!strcmp(distill_json_get(c, "eos_token")->str, "<|im_end|>") && !strcmp(distill_json_get(c, "pad_token")->str, "<|endoftext|>") &&
          distill_json_get(c, "bos_token")->type == DISTILL_JSON_NULL, "eos/pad/bos tokens");
    dec = distill_json_get(c, "added_tokens_decoder");
    CHECK(dec && dec->len == 7, "7 added tokens (5 special, 2 not): %zu", dec ? dec->len : 0);
    CHECK(distill_json_path(c, "added_tokens_decoder.417.special")->type == DISTILL_JSON_TRUE &&
          !strcmp(distill_json_path(c, "added_tokens_decoder.417.content")->str, "<|im_end|>") &&
          distill_json_path(c, "added_tokens_decoder.420.special")->type == DISTILL_JSON_FALSE, "special flags");
    distill_json_free(g);
    distill_json_free(c);
    distill_tokenizer_free(tok);
}

/* tensor name -> its bytes in a folder's safetensors files */
static int tensor_bytes(const char *dir, const char *name, unsigned char **out, size_t *n, char *dtype) {
    static const char *const files[] = {"model.safetensors", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                        "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                        "model-00003-of-00003.safetensors"};
    size_t f;
    for (f = 0; f < sizeof files / sizeof files[0]; f++) {
        char p[256];
        size_t size = 0;
        unsigned char *buf;
        uint64_t hl;
        distill_json *h;
        const distill_json *t;
        snprintf(p, sizeof p, "%s/%s", dir, files[f]);
        if (!harness_have(p) || !(buf = (unsigned char *)distill_read_file(p, &size, NULL))) continue;
        hl = distill__get_u64(buf);
        h = distill_json_parse((const char *)buf + 8, (size_t)hl, p, 1, NULL);
        t = h ? distill_json_get(h, name) : NULL;
        if (t) {
            const distill_json *off = distill_json_get(t, "data_offsets");
            size_t b0 = (size_t)off->items[0].i64, b1 = (size_t)off->items[1].i64;
            *n = b1 - b0;
            *out = (unsigned char *)malloc(*n + 1);
            memcpy(*out, buf + 8 + hl + b0, *n);
            snprintf(dtype, 8, "%s", distill_json_get(t, "dtype")->str);
        }
        distill_json_free(h);
        distill_free(buf);
        if (t) return 0;
    }
    return -1;
}

/* Every tensor of src is in dst with the same dtype and bytes. */
static void same_tensors(const char *src, const char *dst, const distill_model *m) {
    int i, bad = 0;
    for (i = 0; i < m->n_tensors; i++) {
        unsigned char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        char da[8] = "", db[8] = "";
        int ra = tensor_bytes(src, m->tensors[i].name, &a, &na, da), rb = tensor_bytes(dst, m->tensors[i].name, &b, &nb, db);
        if (ra || rb || na != nb || strcmp(da, db) || memcmp(a, b, na)) {
            if (bad++ < 3) CHECK(0, "%s -> %s: tensor %s differs (%s %zu bytes vs %s %zu)", src, dst, m->tensors[i].name, da, na, db, nb);
        }
        free(a);
        free(b);
    }
    CHECK(bad == 0 && m->n_tensors > 5, "%s -> %s: %d of %d tensors differ", src, dst, bad, m->n_tensors);
}

static void reexport(const char *src, const char *dst, const char *dtype, int64_t shard) {
    distill_error err;
    distill_model *m = distill_model_load(src, 1, 8, NULL, &err);
    REQUIRE(m != NULL, "%s: %s", src, err.msg);
    CHECK(distill_safetensors_save_sharded(m, dst, dtype, shard, &err) == 0, "%s", err.msg);
    same_tensors(src, dst, m);
    distill_model_free(m);
}

/* HF folders (F32 from PyTorch; a BF16 one made here) loaded and exported again: same bytes */
static void test_hf_folder_reexport_same_tensors(void) {
    distill_error err;
    distill_model *m;
    setup();
    reexport("tests/fixtures/hf_qwen3", D "/re_qwen3", "F32", 60000);
    reexport("tests/fixtures/hf_llama3_rope", D "/re_llama3", "F32", 2000000000);
    reexport("tests/fixtures/hf_linear_rope", D "/re_linear", "F32", 2000000000);
    m = distill_model_load("tests/fixtures/hf_qwen3", 1, 8, NULL, &err);
    REQUIRE(m != NULL, "%s", err.msg);
    CHECK(distill_safetensors_save_sharded(m, D "/bf16_src", "BF16", 2000000000, &err) == 0, "%s", err.msg);
    distill_model_free(m);
    reexport(D "/bf16_src", D "/bf16_again", "BF16", 2000000000);
}

/* N of the index's model-00001-of-N, and the number of model-*-of-*.safetensors files */
static int shard_count(const char *dir) {
    int n;
    char p[256];
    for (n = 1; n < 100; n++) {
        snprintf(p, sizeof p, "%s/model-00001-of-%05d.safetensors", dir, n);
        if (harness_have(p)) return n;
    }
    return 0;
}
static int shard_files(const char *dir) {
    int i, n, count = 0;
    char p[256];
    for (n = 1; n < 20; n++)
        for (i = 1; i <= n; i++) {
            snprintf(p, sizeof p, "%s/model-%05d-of-%05d.safetensors", dir, i, n);
            count += harness_have(p);
        }
    return count;
}

/* Exporting a single file where a sharded export was (and back) leaves one layout: the folder
   loads what was written last. */
static void test_reexport_replaces_layout(void) {
    distill_error err;
    distill_model *m = tiny(64, 0, 1, &err), *r;
    char a[65], b[65];
    REQUIRE(m != NULL, "%s", err.msg);
    setup();
    CHECK(distill_safetensors_save_sharded(m, D "/layout", "F32", 20000, &err) == 0, "%s", err.msg);
    CHECK(harness_have(D "/layout/model.safetensors.index.json"), "sharded first");
    distill_model_init_params(m, 99);
    CHECK(distill_safetensors_save_sharded(m, D "/layout", "F32", 2000000000, &err) == 0, "%s", err.msg);
    CHECK(!harness_have(D "/layout/model.safetensors.index.json"), "the stale index is gone");
    r = distill_model_load(D "/layout", 1, 8, NULL, &err);
    REQUIRE(r != NULL, "%s", err.msg);
    distill_model_sha256(m, a);
    distill_model_sha256(r, b);
    CHECK(!strcmp(a, b), "the folder loads the last export");
    distill_model_free(r);
    distill_model_init_params(m, 100);
    CHECK(distill_safetensors_save_sharded(m, D "/layout", "F32", 20000, &err) == 0, "%s", err.msg);
    CHECK(!harness_have(D "/layout/model.safetensors"), "the stale single file is gone");
    {   /* another shard count: the older shards go */
        int n1 = shard_count(D "/layout"), n2;
        CHECK(distill_safetensors_save_sharded(m, D "/layout", "F32", 40000, &err) == 0, "%s", err.msg);
        n2 = shard_count(D "/layout");
        CHECK(n1 > 2 && n2 >= 2 && n2 < n1 && shard_files(D "/layout") == n2, "%d shards, then %d: %d shard files", n1, n2,
              shard_files(D "/layout"));
        CHECK(distill_safetensors_save_sharded(m, D "/layout", "F32", 2000000000, &err) == 0, "%s", err.msg);
        CHECK(shard_files(D "/layout") == 0 && harness_have(D "/layout/model.safetensors"), "one file: no shard left");
    }
    r = distill_model_load(D "/layout", 1, 8, NULL, &err);
    REQUIRE(r != NULL, "%s", err.msg);
    distill_model_sha256(r, b);
    distill_model_sha256(m, a);
    CHECK(!strcmp(a, b), "the folder loads the last (sharded) export");
    distill_model_free(r);
    distill_model_free(m);
}

/* Write D/tc/tokenizer_config.json with `json`, then load the folder. */
static distill_model *load_with_tokenizer_config(const char *json, distill_error *err) {
    FILE *f = fopen(D "/tc/tokenizer_config.json", "w");
    if (!f) { snprintf(err->msg, sizeof err->msg, "cannot write " D "/tc/tokenizer_config.json"); return NULL; }
    fputs(json, f);
    fclose(f);
    return distill_model_load(D "/tc", 1, 8, NULL, err);
}

/* A tokenizer_config.json beside a model: not JSON is an error naming it; a chat_template that
   is not a built-in's (or not a string) leaves the model without a template name. */
static void test_tokenizer_config_read(void) {
    distill_error err;
    distill_model *m = tiny(64, 0, 1, &err), *r;
    REQUIRE(m != NULL, "%s", err.msg);
    setup();
    REQUIRE(distill_safetensors_save_sharded(m, D "/tc", "F32", 2000000000, &err) == 0, "%s", err.msg);
    r = load_with_tokenizer_config("{\"chat_template\": \"{% for m in messages %}{{ m.content }}{% endfor %}\"}", &err);
    CHECK(r && !distill_model_chat_template(r), "another template: no name");
    distill_model_free(r);
    r = load_with_tokenizer_config("{\"chat_template\": [{\"name\": \"default\", \"template\": \"x\"}]}", &err);
    CHECK(r && !distill_model_chat_template(r), "a list of templates: no name");
    distill_model_free(r);
    r = load_with_tokenizer_config("{\"chat_template\": ", &err);
    CHECK(!r && strstr(err.msg, "tokenizer_config.json"), "broken JSON names the file: %s", err.msg);
    distill_model_free(r);
    distill_model_free(m);
}

/* ---- the command --------------------------------------------------------------------------- */
static char *slurp(const char *p) { return (char *)distill_read_file(p, NULL, NULL); }

static void test_cli_export_folder(void) {
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                                        "generation_config.json"};
    distill_error err;
    distill_tokenizer *tok;
    distill_model *m;
    char *s, p[256];
    size_t i;
    if (!have_cli()) SKIP("./distill not built (make)");
    setup();
    REQUIRE(sh("rm -rf " D "/cli && mkdir -p " D "/cli") == 0, "scratch folder");
    tok = distill_tokenizer_load(SMALL, NULL, &err);
    REQUIRE(tok != NULL, "%s", err.msg);
    m = tiny(distill_tokenizer_vocab_size(tok), 1, 1, &err);
    REQUIRE(m != NULL, "%s", err.msg);
    distill_model_set_tokenizer(m, tok, "chatml-prefill", &err);
    CHECK(distill_checkpoint_write(D "/cli/m.dstl", m, 0, NULL, NULL, 0, &err) == 0, "%s", err.msg);
    /* a checkpoint that carries its tokenizer and template: a complete folder, no flags needed */
    CHECK(sh("./distill export " D "/cli/m.dstl --format safetensors -o " D "/cli/out > " D "/cli/out.txt 2>&1") == 0, "export");
    s = slurp(D "/cli/out.txt");
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, D "/cli/out/%s", files[i]);
        CHECK(harness_have(p), "%s written", p);
        CHECK(s && strstr(s, files[i]), "the output lists %s: %s", files[i], s ? s : "");
    }
    CHECK(s && strstr(s, "chat template chatml-prefill"), "%s", s ? s : "");
    distill_free(s);
    s = slurp(D "/cli/out/tokenizer_config.json");
    {
        char *j = distill_chat_template_jinja(distill_chat_template_get("chatml-prefill"));
        distill_json *cfg = s ? distill_json_parse(s, strlen(s), "tokenizer_config.json", 1, &err) : NULL;
        CHECK(cfg && j && !strcmp(distill_json_get(cfg, "chat_template")->str, j), "the carried template is exported");
        distill_json_free(cfg);
        distill_free(j);
    }
    distill_free(s);
    /* the old layout: OUT.safetensors + the other files beside it; sharded with --max-shard-size */
    CHECK(sh("./distill export " D "/cli/m.dstl --format safetensors -o " D "/cli/m.safetensors > /dev/null 2>&1") == 0, "file export");
    CHECK(harness_have(D "/cli/m.safetensors") && harness_have(D "/cli/tokenizer.json") && harness_have(D "/cli/generation_config.json"),
          "tokenizer files beside the .safetensors file");
    CHECK(sh("./distill export " D "/cli/m.dstl --max-shard-size 20KB --template plain -o " D "/cli/sh > " D "/cli/sh.txt 2>&1") == 0, "sharded");
    s = slurp(D "/cli/sh.txt");
    CHECK(s && strstr(s, "model-00001-of-0000") && strstr(s, "model.safetensors.index.json") && strstr(s, "chat template plain"),
          "lists the shards: %s", s ? s : "");
    distill_free(s);
    {
        distill_tokenizer *back = NULL;
        distill_model *r = distill_model_load(D "/cli/sh", 1, 8, &back, &err);
        CHECK(r && back && distill_model_chat_template(r) && !strcmp(distill_model_chat_template(r), "plain"), "reload: %s", err.msg);
        distill_model_free(r);
        distill_tokenizer_free(back);
    }
    /* --no-tokenizer; bad paths and names get clear errors */
    CHECK(sh("./distill export " D "/cli/m.dstl --no-tokenizer -o " D "/cli/nt > /dev/null 2>&1") == 0 &&
          harness_have(D "/cli/nt/model.safetensors") && !harness_have(D "/cli/nt/tokenizer.json"), "--no-tokenizer");
    CHECK(sh("./distill export " D "/cli/m.dstl -o " D "/cli/missing/dir/m.safetensors 2> " D "/cli/e1.txt") == 1, "missing folder");
    s = slurp(D "/cli/e1.txt");
    CHECK(s && strstr(s, "does not exist") && strstr(s, D "/cli/missing/dir"), "%s", s ? s : "");
    distill_free(s);
    CHECK(sh("./distill export " D "/cli/m.dstl -o " D "/cli/out.txt 2> " D "/cli/e4.txt") == 1, "OUT is a file");
    s = slurp(D "/cli/e4.txt");
    CHECK(s && strstr(s, "not a folder"), "%s", s ? s : "");
    distill_free(s);
    CHECK(sh("./distill export " D "/cli/nothing.dstl -o " D "/cli/x 2> " D "/cli/e2.txt") == 1, "missing model");
    s = slurp(D "/cli/e2.txt");
    CHECK(s && strstr(s, D "/cli/nothing.dstl"), "%s", s ? s : "");
    distill_free(s);
    CHECK(sh("./distill export " D "/cli/m.dstl --template nope -o " D "/cli/x 2> /dev/null") == 2, "unknown template");
    CHECK(sh("./distill export " D "/cli/m.dstl --tokenizer " D "/cli/none.json -o " D "/cli/x 2> " D "/cli/e3.txt") == 1, "missing tokenizer");
    s = slurp(D "/cli/e3.txt");
    CHECK(s && strstr(s, D "/cli/none.json"), "%s", s ? s : "");
    distill_free(s);
    distill_model_free(m);
    distill_tokenizer_free(tok);
}

int main(void) {
    RUN(test_chat_template_matches_jinja);
    RUN(test_tokenizer_roundtrip_small);
    RUN(test_tokenizer_ids_match_hf);
    RUN(test_tokenizer_patterns_match_hf);
    RUN(test_chat_encode_matches_hf_tokenize);
    RUN(test_tokenizer_roundtrip_real);
    RUN(test_tokenizer_roundtrip_patterns);
    RUN(test_tokenizer_refusals);
    RUN(test_export_load_same_logits);
    RUN(test_config_tokens);
    RUN(test_hf_folder_reexport_same_tensors);
    RUN(test_reexport_replaces_layout);
    RUN(test_tokenizer_config_read);
    RUN(test_cli_export_folder);
    return harness_done("test_hf_export");
}
