/* distill tokenizer train|encode|decode from the command line: a JSONL round trip through all
   three subcommands, the GPT-2 files, and the error paths (bad JSON, wrong field types, ids out
   of range, bad options). Runs the ./distill binary that `make test` builds. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "cli_harness.h"
#include <stdlib.h>

static int have(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(s, f); fclose(f); }
}

static char *slurp(const char *path) {
    distill_error err;
    size_t n;
    return (char *)distill_read_file(path, &n, &err);
}

static const char *input =
    "{\"text\": \"Hello world, hello tokenizer! It's 2024.\"}\n"
    "{\"text\": \"<|im_start|>user\\nWhat is 2+2?<|im_end|>\\n<|im_start|>assistant\\n<think>2+2=4</think>4<|im_end|>\"}\n"
    "{\"text\": \"\\u4f60\\u597d\\uff0c\\u4e16\\u754c \\ud83d\\ude00 caf\\u00e9\"}\n"
    "{\"text\": \"\"}\n"
    "{\"text\": \"def f(x):\\n    return x * 2\\n\"}\n";

static void test_train_encode_decode(void) {
    char *a, *b;
    if (!have_cli()) SKIP("./distill not built (make)");
    write_text("build/tokcli_in.jsonl", input);
    CHECK(sh("./distill tokenizer train --data build/tokcli_in.jsonl --field text --vocab-size 300 "
             "--out build/tokcli_tok.txt 2> build/tokcli_train.log") == 0, "train failed");
    a = slurp("build/tokcli_tok.txt");
    CHECK(a && !strncmp(a, "distill-tokenizer 1\npattern gpt2\nvocab_size 300\n", 48), "saved file header");
    distill_free(a);
    CHECK(sh("./distill tokenizer encode --tokenizer build/tokcli_tok.txt --allow-special "
             "< build/tokcli_in.jsonl > build/tokcli_ids.jsonl") == 0, "encode failed");
    CHECK(sh("./distill tokenizer decode --tokenizer build/tokcli_tok.txt "
             "< build/tokcli_ids.jsonl > build/tokcli_out.jsonl") == 0, "decode failed");
    /* the decoded texts equal the input texts (compared parsed: escapes may be spelled differently) */
    a = slurp("build/tokcli_in.jsonl");
    b = slurp("build/tokcli_out.jsonl");
    CHECK(a && b, "build/tokcli_in.jsonl or build/tokcli_out.jsonl missing");
    if (a && b) {
        char *p = a, *q = b;
        int line = 0;
        while (*p && *q) {
            char *pe = strchr(p, '\n'), *qe = strchr(q, '\n');
            distill_error err;
            distill_json *x, *y;
            const distill_json *tx, *ty;
            line++;
            if (!pe || !qe) break;
            x = distill_json_parse(p, (size_t)(pe - p), "in", line, &err);
            y = distill_json_parse(q, (size_t)(qe - q), "out", line, &err);
            tx = distill_json_get(x, "text");
            ty = distill_json_get(y, "text");
            CHECK(tx && ty && tx->len == ty->len && !memcmp(tx->str, ty->str, tx->len), "line %d differs", line);
            distill_json_free(x);
            distill_json_free(y);
            p = pe + 1;
            q = qe + 1;
        }
        CHECK(line == 5, "lines %d", line);
    }
    distill_free(a);
    distill_free(b);
    /* with --allow-special the chat tokens are single ids: <|im_start|> = 300 - 5 + 1 */
    a = slurp("build/tokcli_ids.jsonl");
    CHECK(a && strstr(a, "\n{\"ids\": [296, "), "allowed special token id 296 missing: %.200s", a ? a : "");
    distill_free(a);
}

static void test_gpt2_files(void) {
    char *a;
    if (!have_cli()) SKIP("./distill not built (make)");
    if (!have("../shared/data/gpt2/vocab.json")) SKIP("../shared/data/gpt2 not present");
    write_text("build/tokcli_gpt2.jsonl", "{\"text\": \"Hello world<|endoftext|>\"}\n");
    CHECK(sh("./distill tokenizer encode --tokenizer ../shared/data/gpt2/vocab.json --merges "
             "../shared/data/gpt2/merges.txt --allow-special < build/tokcli_gpt2.jsonl > build/tokcli_gpt2_ids.jsonl") == 0,
          "encode");
    a = slurp("build/tokcli_gpt2_ids.jsonl");
    CHECK(a && !strcmp(a, "{\"ids\": [15496, 995, 50256]}\n"), "got %s", a ? a : "(none)");
    distill_free(a);
}

static void test_errors(void) {
    if (!have_cli()) SKIP("./distill not built (make)");
    write_text("build/tokcli_bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": 5}\n");
    CHECK(sh("./distill tokenizer encode --tokenizer build/tokcli_tok.txt < build/tokcli_bad.jsonl "
             "> /dev/null 2> build/tokcli_err.log") == 1, "non-string text must fail with 1");
    CHECK(sh("grep -q 'stdin:2' build/tokcli_err.log") == 0, "error names the line");
    write_text("build/tokcli_bad.jsonl", "{\"text\": \"ok\"\n");
    CHECK(sh("./distill tokenizer encode --tokenizer build/tokcli_tok.txt < build/tokcli_bad.jsonl "
             "> /dev/null 2> /dev/null") == 1, "bad JSON must fail with 1");
    write_text("build/tokcli_bad.jsonl", "{\"ids\": [1, 2, 300]}\n");
    CHECK(sh("./distill tokenizer decode --tokenizer build/tokcli_tok.txt < build/tokcli_bad.jsonl "
             "> /dev/null 2> /dev/null") == 1, "id out of range must fail with 1");
    write_text("build/tokcli_bad.jsonl", "{\"other\": \"x\"}\n");
    CHECK(sh("./distill tokenizer train --data build/tokcli_bad.jsonl --field text --vocab-size 300 "
             "--out build/tokcli_never.txt 2> build/tokcli_err.log") == 1, "missing field must fail with 1");
    CHECK(sh("grep -q 'tokcli_bad.jsonl:1' build/tokcli_err.log") == 0, "train error names file and line");
    CHECK(!have("build/tokcli_never.txt"), "no output on failure");
    CHECK(sh("./distill tokenizer train --data x.jsonl 2> /dev/null") == 2, "missing options: exit 2");
    CHECK(sh("./distill tokenizer frobnicate 2> /dev/null") == 2, "unknown subcommand: exit 2");
    CHECK(sh("./distill tokenizer encode --tokenizer build/nonexistent.txt < /dev/null 2> /dev/null") == 1, "missing file");
    CHECK(sh("./distill tokenizer --help > /dev/null") == 0 && sh("./distill tokenizer encode --help > /dev/null") == 0, "--help");
}

int main(void) {
    RUN(test_train_encode_decode);
    RUN(test_gpt2_files);
    RUN(test_errors);
    return harness_done("test_tokenizer_cli");
}
