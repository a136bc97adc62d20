/* The sweep end to end in miniature (the CI smoke version of `make demo`): a world, a
   tokenizer, a stage-0 student, two nested subset sizes and the second experiments, with tiny
   models and few eval problems. Checks the outputs a person reads, that a killed sweep resumes
   by reusing finished runs and re-creates a missing one identically, and that bad
   configurations are refused with a message. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "../examples/cli/world.c"
#include "../examples/cli/cli_sweep.c"
#ifdef DISTILL_MPI   /* the tool's main() provides these; this test runs the sweep in one process */
const distill_comm *cli_comm(void) { return distill_comm_local(); }
void cli_fail_all(int code) { (void)code; }
#endif

#define OUT "build/test_sweep"

static int run_sweep(const char *extra_key, const char *extra_val) {
    const char *argv[40];
    int argc = 0;
    argv[argc++] = "sweep";
    argv[argc++] = "--preset"; argv[argc++] = "smoke";
    argv[argc++] = "--out"; argv[argc++] = OUT;
    argv[argc++] = "--dim"; argv[argc++] = "16";
    argv[argc++] = "--hidden"; argv[argc++] = "32";
    argv[argc++] = "--seq"; argv[argc++] = "256";
    argv[argc++] = "--train"; argv[argc++] = "80";
    argv[argc++] = "--direct"; argv[argc++] = "60";
    argv[argc++] = "--eval"; argv[argc++] = "6";
    argv[argc++] = "--max-new"; argv[argc++] = "40";
    argv[argc++] = "--sizes"; argv[argc++] = "8,16";
    argv[argc++] = "--split-size"; argv[argc++] = "6";
    if (extra_key) { argv[argc++] = extra_key; argv[argc++] = extra_val; }
    fflush(stdout);
    return cli_sweep(argc, (char **)argv);
}

static char *read_all(const char *path, size_t *n) {
    distill_error err;
    return (char *)distill_read_file(path, n, &err);
}

static void test_sweep_end_to_end(void) {
    size_t n;
    char *csv, *svg, *md, *before, *again, *other_before, *other_after;
    distill_json *j;
    distill_error err;
    int rows = 0, i;
    if (system("rm -rf " OUT) != 0) SKIP("cannot clear " OUT);
    CHECK(run_sweep(NULL, NULL) == 0, "the smoke sweep failed");
    csv = read_all(OUT "/results.csv", &n);
    CHECK(csv != NULL, "no results.csv");
    if (csv) {
        for (i = 0; i < (int)n; i++) rows += csv[i] == '\n';
        /* header + stage 0 + 2 sizes + (easy, hard, right, wrong) x (from stage 0, from largest) */
        CHECK(rows == 1 + 1 + 2 + 8, "results.csv has %d lines", rows);
        CHECK(strstr(csv, "s1_n16") && strstr(csv, "s1_wrong_fromL"), "run names");
        distill_free(csv);
    }
    j = distill_json_parse_file(OUT "/results.json", &err);
    CHECK(j && j->type == DISTILL_JSON_ARRAY && j->len == 11, "results.json: %s", j ? "wrong shape" : err.msg);
    if (j) {
        for (i = 0; i < (int)j->len; i++) {
            const distill_json *p = distill_json_get(&j->items[i], "pass_at_1");
            const distill_json *c = distill_json_get(&j->items[i], "completion_rate");
            CHECK(p && p->type == DISTILL_JSON_NUMBER && p->num >= 0 && p->num <= 1, "row %d pass_at_1", i);
            CHECK(c && (c->type == DISTILL_JSON_NULL || (c->num >= 0 && c->num <= 1)), "row %d completion", i);
        }
        distill_json_free(j);
    }
    svg = read_all(OUT "/valley.svg", &n);
    CHECK(svg && strstr(svg, "<svg") && strstr(svg, "</svg>") && strstr(svg, "pass@1"), "valley.svg");
    distill_free(svg);
    md = read_all(OUT "/results.md", &n);
    CHECK(md && strstr(md, "Data-quantity sweep") && strstr(md, "0 (stage 0)") && strstr(md, "Second experiments"), "results.md");
    distill_free(md);

    /* A killed sweep: one finished run lost its result; rerunning reuses everything else (the
       files are untouched) and recreates the missing run with the same numbers (training and
       greedy evaluation are deterministic). */
    before = read_all(OUT "/runs/s1_n8/result.json", &n);
    other_before = read_all(OUT "/runs/s1_easy_from0/result.json", &n);
    CHECK(before && other_before, "run results missing");
    remove(OUT "/runs/s1_n8/result.json");
    remove(OUT "/results.csv");
    CHECK(run_sweep(NULL, NULL) == 0, "resumed sweep failed");
    again = read_all(OUT "/runs/s1_n8/result.json", &n);
    other_after = read_all(OUT "/runs/s1_easy_from0/result.json", &n);
    CHECK(again != NULL, "run not recreated");
    if (before && again) {
        /* everything but the timings must agree */
        const char *p1 = strstr(before, "\"train_seconds\""), *p2 = strstr(again, "\"train_seconds\"");
        CHECK(p1 && p2 && p1 - before == p2 - again && !memcmp(before, again, (size_t)(p1 - before)),
              "recreated run differs:\n%s\n%s", before, again);
    }
    CHECK(other_before && other_after && !strcmp(other_before, other_after), "a finished run was redone");
    CHECK(sweep_exists(OUT "/results.csv"), "report not rewritten");
    distill_free(before);
    distill_free(again);
    distill_free(other_before);
    distill_free(other_after);
}

static void test_sweep_bad_config(void) {
    FILE *f;
    const char *argv[4];
    CHECK(run_sweep("--sizes", "16,8") == 2, "decreasing sizes accepted");
    CHECK(run_sweep("--sizes", "8,1000") == 2, "size above --train accepted");
    CHECK(run_sweep("--dim", "-3") == 2, "negative dim accepted");
    CHECK(run_sweep("--bogus", "1") == 2, "unknown flag accepted");
    CHECK(run_sweep("--heads", "3") == 2, "dim 16 with 3 heads accepted");
    f = fopen("build/test_sweep_bad.json", "wb");
    if (!f) SKIP("cannot write a config file");
    fputs("{\"sizes\": [10, 20], \"epochs\": \"five\"}", f);
    fclose(f);
    argv[0] = "sweep"; argv[1] = "--config"; argv[2] = "build/test_sweep_bad.json";
    CHECK(cli_sweep(3, (char **)argv) == 2, "string epochs accepted");
    f = fopen("build/test_sweep_bad.json", "wb");
    fputs("{\"sizes\": [10, 20], \"epochz\": 3}", f);
    fclose(f);
    CHECK(cli_sweep(3, (char **)argv) == 2, "unknown key accepted");
    f = fopen("build/test_sweep_bad.json", "wb");
    fputs("{\"sizes\": [10, 20", f);
    fclose(f);
    CHECK(cli_sweep(3, (char **)argv) == 2, "truncated JSON accepted");
}

int main(void) {
    RUN(test_sweep_end_to_end);
    RUN(test_sweep_bad_config);
    return harness_done("test_sweep");
}
