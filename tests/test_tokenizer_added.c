/* Added tokens of a tokenizer.json as Hugging Face tokenizers treat them: tokens marked
   "special": false (minimind's and Qwen's <think>, <tool_call>) become their ids in any text,
   also where special tokens are encoded as ordinary text (allow_special = 0, transformers'
   split_special_tokens), and are not reported as special. The reference ids come from npm
   @huggingface/tokenizers (tests/gen_added_tokens_fixture.js). The distinction survives the own
   text format and a checkpoint's copy of the tokenizer. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

#define MINIMIND "../shared/data/minimind/tokenizer.json"
#define FIXTURE "tests/fixtures/tokenizer_minimind_added.jsonl"

static int ids_equal(const distill_ids *a, const distill_json *want) {
    size_t i;
    if (!want || want->type != DISTILL_JSON_ARRAY || want->len != a->n) return 0;
    for (i = 0; i < a->n; i++) if (want->items[i].i64 != a->ids[i]) return 0;
    return 1;
}

static void check_tokenizer(const distill_tokenizer *tok, const char *what) {
    distill_error err;
    distill_line_reader *r = distill_line_reader_open(FIXTURE, 0, &err);
    const char *line;
    size_t len;
    int64_t no;
    int n = 0;
    CHECK(r != NULL, "%s", err.msg);
    if (!r) return;
    while (distill_line_reader_next(r, &line, &len, &no, &err) == 1) {
        distill_json *j = distill_json_parse(line, len, FIXTURE, (int)no, &err);
        const distill_json *text = j ? distill_json_get(j, "text") : NULL;
        if (text) {
            distill_ids a, b;
            memset(&a, 0, sizeof a);
            memset(&b, 0, sizeof b);
            CHECK(distill_tokenizer_encode(tok, text->str, text->len, 1, &a, &err) == 0, "%s", err.msg);
            CHECK(distill_tokenizer_encode(tok, text->str, text->len, 0, &b, &err) == 0, "%s", err.msg);
            CHECK(ids_equal(&a, distill_json_get(j, "ids")), "%s: allow_special=1 differs on '%s'", what, text->str);
            CHECK(ids_equal(&b, distill_json_get(j, "ids_split")), "%s: allow_special=0 differs on '%s'", what, text->str);
            distill_ids_free(&a);
            distill_ids_free(&b);
            n++;
        } else if (j) {
            const distill_json *sp = distill_json_get(j, "special"), *ns = distill_json_get(j, "not_special");
            size_t i;
            for (i = 0; sp && i < sp->len; i++)
                CHECK(distill_tokenizer_is_special(tok, (int32_t)sp->items[i].i64), "%s: id %lld is special", what, (long long)sp->items[i].i64);
            for (i = 0; ns && i < ns->len; i++)
                CHECK(!distill_tokenizer_is_special(tok, (int32_t)ns->items[i].i64), "%s: id %lld is not special", what, (long long)ns->items[i].i64);
            CHECK(ns && ns->len >= 6, "%s: the fixture lists non-special added tokens", what);
        }
        distill_json_free(j);
    }
    distill_line_reader_close(r);
    CHECK(n >= 7, "%s: %d texts", what, n);
}

static void test_added_tokens(void) {
    distill_error err;
    distill_tokenizer *tok, *back;
    FILE *f = fopen(MINIMIND, "rb");
    if (!f) SKIP("%s absent", MINIMIND);
    fclose(f);
    tok = distill_tokenizer_load(MINIMIND, NULL, &err);
    CHECK(tok != NULL, "%s", err.msg);
    if (!tok) return;
    check_tokenizer(tok, "tokenizer.json");
    /* the own text format keeps the distinction ("added N" section) */
    CHECK(distill_tokenizer_save(tok, "build/test_tokenizer_added.txt", &err) == 0, "%s", err.msg);
    back = distill_tokenizer_load("build/test_tokenizer_added.txt", NULL, &err);
    CHECK(back != NULL, "%s", err.msg);
    if (back) check_tokenizer(back, "own format");
    distill_tokenizer_free(back);
    distill_tokenizer_free(tok);
}

int main(void) {
    RUN(test_added_tokens);
    return harness_done("test_tokenizer_added");
}
