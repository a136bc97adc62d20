/* distill train / export / import / info from the command line (the flags are a public
   contract): a tiny SFT run with a --config file, resume, export and info agreeing on the
   weights' SHA-256, and clear exits on bad input. Needs ./distill (make builds it) and the
   stories260K tokenizer (skips when absent). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "cli_harness.h"
#include <stdlib.h>
#include <sys/stat.h>

#define TOK "../shared/data/stories260K/tok512.bin"
#define D "build/test_trainer_cli"

static char *slurp(const char *path) { return (char *)distill_read_file(path, NULL, NULL); }

static void test_train_export_info(void) {
    FILE *f;
    int i;
    char *a, *b, *ha, *hb;
    if (!(f = fopen(TOK, "rb"))) SKIP("%s absent", TOK);
    fclose(f);
    if (!have_cli()) SKIP("./distill not built (make)");
    REQUIRE(sh("rm -rf " D " && mkdir -p " D) == 0, "cannot clear " D);
    f = fopen(D "/d.jsonl", "w");
    for (i = 0; i < 12; i++) fprintf(f, "{\"prompt\": \"Tell me a story %d.\", \"completion\": \"Once upon a time there was a cat number %d.\"}\n", i, i);
    fclose(f);
    f = fopen(D "/cfg.json", "w");
    fprintf(f, "{\"data\": \"" D "/d.jsonl\", \"tokenizer\": \"" TOK "\", \"template\": \"plain\", \"dim\": 32, "
               "\"layers\": 1, \"heads\": 2, \"kv-heads\": 1, \"hidden\": 64, \"batch-rows\": 4, \"lr\": 0.003, "
               "\"save-every\": 2, \"filter\": [\"prompt != \\\"x\\\"\"]}\n");
    fclose(f);
    CHECK(sh("./distill train --config " D "/cfg.json --out " D "/o --steps 4 > " D "/log1.txt 2>&1") == 0, "train run");
    a = slurp(D "/log1.txt");
    CHECK(a && strstr(a, "step 4/4") && strstr(a, "loss"), "progress lines: %s", a ? a : "(none)");
    distill_free(a);
    CHECK(sh("./distill train --config " D "/cfg.json --out " D "/o --steps 6 --resume > " D "/log2.txt 2>&1") == 0, "resume");
    a = slurp(D "/log2.txt");
    CHECK(a && strstr(a, "resumed at step 4") && strstr(a, "step 6/6"), "resume output: %s", a ? a : "(none)");
    distill_free(a);
    CHECK(sh("./distill export " D "/o/model.dstl --format safetensors -o " D "/m.safetensors > /dev/null") == 0, "export");
    CHECK(sh("./distill info " D "/o/model.dstl > " D "/i1.txt && ./distill info " D "/m.safetensors > " D "/i2.txt") == 0, "info");
    a = slurp(D "/i1.txt"); b = slurp(D "/i2.txt");
    ha = a ? strstr(a, "sha256") : NULL; hb = b ? strstr(b, "sha256") : NULL;
    CHECK(ha && hb && !strncmp(ha, hb, 64 + 12), "same weights, same SHA-256 across formats");
    distill_free(a); distill_free(b);
    CHECK(sh("./distill train --help > /dev/null") == 0, "--help exits 0");
    CHECK(sh("./distill train --no-such-flag 2> /dev/null") == 2, "unknown flag exits 2");
    CHECK(sh("./distill train --config " D "/cfg.json --out " D "/o2 --teacher-cache " D "/d.jsonl > /dev/null 2> " D "/e.txt") == 1, "bad cache exits 1");
    a = slurp(D "/e.txt");
    CHECK(a && strstr(a, "d.jsonl") && strstr(a, "top-k"), "bad cache message: %s", a ? a : "");
    distill_free(a);
    CHECK(sh("./distill info " D "/d.jsonl 2> /dev/null") == 1, "info on a non-model exits 1");
}

int main(void) {
    RUN(test_train_export_info);
    return harness_done("test_trainer_cli");
}
