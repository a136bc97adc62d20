/* distill eval from the command line: --generations scoring, the external-command verifier
   protocol (verdicts, non-zero exits, garbage output, timeouts) and error messages. Runs the
   ./distill binary that `make test` builds. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "cli_harness.h"
#include <stdlib.h>

static distill_json *load(const char *path) {
    distill_error err;
    distill_json *j = distill_json_parse_file(path, &err);
    if (!j) printf("    %s\n", err.msg);
    return j;
}

static double num(const distill_json *root, const char *path) {
    const distill_json *v = distill_json_path(root, path);
    return v && v->type == DISTILL_JSON_NUMBER ? v->num : -12345.0;
}

static const char *str_of_line(const char *path, int line, const char *key, char *buf, size_t cap) {
    distill_error err;
    distill_line_reader *lr = distill_line_reader_open(path, 0, &err);
    const char *l;
    size_t len;
    int64_t no;
    buf[0] = 0;
    if (!lr) return buf;
    while (distill_line_reader_next(lr, &l, &len, &no, &err) == 1) {
        if (no == line) {
            distill_json *j = distill_json_parse(l, len, path, (int)no, &err);
            const distill_json *v = j ? distill_json_get(j, key) : NULL;
            if (v && v->type == DISTILL_JSON_STRING) snprintf(buf, cap, "%s", v->str);
            distill_json_free(j);
        }
    }
    distill_line_reader_close(lr);
    return buf;
}

static void test_generations(void) {
    distill_json *r;
    if (!have_cli()) SKIP("./distill not built");
    CHECK(sh("./distill eval --generations tests/fixtures/eval/generations.jsonl --k 1,2 "
             "--out build/test_eval_cli >/dev/null") == 0, "exit status");
    r = load("build/test_eval_cli/results.json");
    CHECK(r != NULL, "results.json");
    if (!r) return;
    /* hand-computed in tests/test_eval.c */
    CHECK_CLOSE(num(r, "completion_rate"), 0.6, 0, 1e-9, "completion_rate");
    CHECK_CLOSE(num(r, "pass_at_k.2"), 2.0 / 3, 0, 1e-9, "pass_at_k.2 from the file's pass fields");
    CHECK_CLOSE(num(r, "think_tokens_median"), 2.5, 0, 1e-9, "think median in words");
    distill_json_free(r);
    /* --think-in-prompt: every sample's think block was opened by the prompt */
    remove("build/test_eval_cli/results.json");   /* not the previous run's */
    CHECK(sh("./distill eval --generations tests/fixtures/eval/generations.jsonl --think-in-prompt "
             "--out build/test_eval_cli >/dev/null") == 0, "exit status");
    r = load("build/test_eval_cli/results.json");
    REQUIRE(r != NULL, "build/test_eval_cli/results.json with --think-in-prompt: missing or not JSON");
    CHECK_CLOSE(num(r, "think_open_rate"), 1.0, 0, 1e-9, "think_open_rate with --think-in-prompt");
    distill_json_free(r);
}

static void test_verifier_cmd(void) {
    distill_json *r;
    char buf[256];
    if (!have_cli()) SKIP("./distill not built");
    /* passes when the extracted code mentions print: only sample 0 (p0) -> pass@1 = (1/2)/3 */
    CHECK(sh("./distill eval --generations tests/fixtures/eval/generations.jsonl --verifier-cmd "
             "'grep -q \"\\\"code\\\":\\\"print\" && echo \"{\\\"pass\\\": true}\" || echo \"{\\\"pass\\\": false, \\\"reason\\\": \\\"no print\\\"}\"' "
             "--out build/test_eval_cli >/dev/null") == 0, "exit status");
    r = load("build/test_eval_cli/results.json");
    CHECK(r != NULL, "results");
    if (r) {
        CHECK_CLOSE(num(r, "pass_at_1"), 1.0 / 6, 0, 1e-9, "pass_at_1 from the command's verdicts");
        distill_json_free(r);
    }
    CHECK(!strcmp(str_of_line("build/test_eval_cli/generations.jsonl", 2, "reason", buf, sizeof buf), "no print"),
          "reason of sample 1: '%s'", buf);
    /* failures of the command are fails with a reason, not a crash or a hang */
    sh("head -n 2 tests/fixtures/eval/generations.jsonl > build/test_eval_cli_2.jsonl");
    CHECK(sh("./distill eval --generations build/test_eval_cli_2.jsonl --verifier-cmd 'exit 3' "
             "--out build/test_eval_cli >/dev/null") == 0, "exit status");
    str_of_line("build/test_eval_cli/generations.jsonl", 1, "reason", buf, sizeof buf);
    CHECK(strstr(buf, "status 3") != NULL, "non-zero exit: '%s'", buf);
    CHECK(sh("./distill eval --generations build/test_eval_cli_2.jsonl --verifier-cmd 'cat >/dev/null; echo hello' "
             "--out build/test_eval_cli >/dev/null") == 0, "exit status");
    str_of_line("build/test_eval_cli/generations.jsonl", 1, "reason", buf, sizeof buf);
    CHECK(strstr(buf, "no JSON verdict") != NULL, "garbage output: '%s'", buf);
    {
        double t0 = distill_time_seconds();
        CHECK(sh("./distill eval --generations build/test_eval_cli_2.jsonl --verifier-cmd 'sleep 30' "
                 "--verifier-timeout 0.3 --out build/test_eval_cli >/dev/null") == 0, "exit status");
        str_of_line("build/test_eval_cli/generations.jsonl", 1, "reason", buf, sizeof buf);
        CHECK(strstr(buf, "timed out") != NULL, "timeout: '%s'", buf);
        CHECK(distill_time_seconds() - t0 < 20, "the timeout did not stop the verifier");
    }
    r = load("build/test_eval_cli/results.json");
    if (r) {
        CHECK(num(r, "pass_at_1") == 0.0, "timed-out samples fail");
        distill_json_free(r);
    }
}

static void test_errors(void) {
    if (!have_cli()) SKIP("./distill not built");
    CHECK(sh("./distill eval --generations build/does_not_exist.jsonl 2>build/test_eval_cli.err >/dev/null") == 1, "missing file");
    CHECK(sh("grep -q does_not_exist build/test_eval_cli.err") == 0, "message names the file");
    CHECK(sh("./distill eval --generations tests/fixtures/eval/generations.jsonl --field nope 2>build/test_eval_cli.err >/dev/null") == 1, "missing field");
    CHECK(sh("grep -q \"generations.jsonl:1: field 'nope'\" build/test_eval_cli.err") == 0, "message names file, line, field");
    CHECK(sh("./distill eval --generations x --k 0 2>/dev/null") == 2, "bad --k");
    CHECK(sh("./distill eval --bogus 2>/dev/null") == 2, "unknown option");
    CHECK(sh("./distill eval --generations x --verifier nope 2>/dev/null") == 2, "unknown verifier");
}

int main(void) {
    RUN(test_generations);
    RUN(test_verifier_cmd);
    RUN(test_errors);
    return harness_done("test_eval_cli");
}
