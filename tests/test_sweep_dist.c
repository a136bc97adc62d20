/* Distributed sweeps without MPI (docs/cluster.md): the tiny sweep run as one process, then as
   two array tasks started at the same time on one directory (--task-id/--num-tasks, and
   Slurm's SLURM_ARRAY_TASK_* variables with an array that starts at 1), each merged with
   `--merge` (the second time given only --out), must give the same table: every column but the two timings of results.csv and
   results.json, results.md byte for byte, and every run's generations.jsonl byte for byte.
   Also: --merge on an unfinished sweep fails naming the missing runs and their task, a task
   waiting for a run that never comes gives up after --wait-timeout naming it, a run left
   half-done by a killed task is redone cleanly, and bad task ids are refused. Runs ./distill. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "cli_harness.h"
#include <stdlib.h>

#define DIR_ "build/test_sweep_dist"
#define ARGS "--preset smoke --dim 16 --hidden 32 --seq 256 --train 80 --direct 60 --eval 8 --max-new 40 " \
             "--sizes 8,16 --split-size 6"
#define SWEEP "./distill sweep " ARGS " --out "

/* the runs of this configuration, in the table's order */
static const char *const runs[] = {"stage0", "s1_n8", "s1_n16", "s1_easy_from0", "s1_hard_from0", "s1_correct_from0",
                                   "s1_incorrect_from0", "s1_easy_fromL", "s1_hard_fromL", "s1_correct_fromL", "s1_incorrect_fromL"};
#define N_RUNS (int)(sizeof runs / sizeof runs[0])

static char *slurp(const char *path, size_t *n) {
    distill_error err;
    size_t k;
    char *s = (char *)distill_read_file(path, n ? n : &k, &err);
    return s;
}

static int exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* A CSV line without its last two fields (train_seconds, eval_seconds). */
static void strip_timings(char *line) {
    char *c1 = strrchr(line, ','), *c2;
    if (!c1) return;
    *c1 = 0;
    c2 = strrchr(line, ',');
    if (c2) *c2 = 0;
}

/* The next line of *s (cut in place), NULL at the end. */
static char *next_line(char **s) {
    char *l = *s, *nl;
    if (!l || !*l) return NULL;
    nl = strchr(l, '\n');
    if (nl) { *nl = 0; *s = nl + 1; }
    else *s = l + strlen(l);
    return l;
}

static int same_csv(const char *a_path, const char *b_path) {
    char *a = slurp(a_path, NULL), *b = slurp(b_path, NULL), *sa = a, *sb = b, *la, *lb;
    int ok = a && b, lines = 0;
    if (!ok) { printf("    cannot read %s or %s\n", a_path, b_path); goto out; }
    la = next_line(&sa);
    lb = next_line(&sb);
    while (la || lb) {
        if (!la || !lb) { printf("    %s and %s differ in length\n", a_path, b_path); ok = 0; break; }
        strip_timings(la);
        strip_timings(lb);
        if (strcmp(la, lb)) { printf("    line %d differs:\n      %s\n      %s\n", lines + 1, la, lb); ok = 0; }
        lines++;
        la = next_line(&sa);
        lb = next_line(&sb);
    }
    if (lines != 1 + N_RUNS) { printf("    %s: %d lines, want %d\n", a_path, lines, 1 + N_RUNS); ok = 0; }
out:
    distill_free(a);
    distill_free(b);
    return ok;
}

/* Every field of every row equal, but the timings. */
static int same_json(const char *a_path, const char *b_path) {
    distill_error err;
    distill_json *a = distill_json_parse_file(a_path, &err), *b = distill_json_parse_file(b_path, &err);
    int ok = a && b && a->type == DISTILL_JSON_ARRAY && b->type == DISTILL_JSON_ARRAY && a->len == b->len &&
             a->len == (size_t)N_RUNS;
    size_t i, k;
    for (i = 0; ok && i < a->len; i++) {
        const distill_json *ra = &a->items[i], *rb = &b->items[i];
        if (ra->type != DISTILL_JSON_OBJECT || rb->type != DISTILL_JSON_OBJECT || ra->len != rb->len) { ok = 0; break; }
        for (k = 0; k < ra->len; k++) {
            const distill_json *va = &ra->items[k], *vb = distill_json_get(rb, ra->keys[k]);
            if (strstr(ra->keys[k], "seconds")) continue;
            if (!vb || va->type != vb->type ||
                (va->type == DISTILL_JSON_NUMBER && va->num != vb->num) ||
                (va->type == DISTILL_JSON_STRING && strcmp(va->str, vb->str))) {
                printf("    row %d field %s differs\n", (int)i, ra->keys[k]);
                ok = 0;
            }
        }
    }
    if (!a || !b) printf("    %s\n", err.msg);
    else if (!ok && a->len != b->len) printf("    %s: %d rows, %s: %d\n", a_path, (int)a->len, b_path, (int)b->len);
    distill_json_free(a);
    distill_json_free(b);
    return ok;
}

static int same_file(const char *a_path, const char *b_path, size_t *n_out) {
    size_t na = 0, nb = 0;
    char *a = slurp(a_path, &na), *b = slurp(b_path, &nb);
    int ok = a && b && na == nb && !memcmp(a, b, na);
    if (!ok) printf("    %s and %s differ\n", a_path, b_path);
    if (n_out) *n_out = na;
    distill_free(a);
    distill_free(b);
    return ok;
}

/* B's report and runs against A's (the single-process sweep). */
static void check_same(const char *a, const char *b) {
    char pa[256], pb[256];
    int r, gen_ok = 1;
    size_t gen_bytes = 0, n;
    snprintf(pa, sizeof pa, "%s/results.csv", a);
    snprintf(pb, sizeof pb, "%s/results.csv", b);
    CHECK(same_csv(pa, pb), "%s: results.csv differs from the single-process sweep's", b);
    snprintf(pa, sizeof pa, "%s/results.json", a);
    snprintf(pb, sizeof pb, "%s/results.json", b);
    CHECK(same_json(pa, pb), "%s: results.json differs", b);
    snprintf(pa, sizeof pa, "%s/results.md", a);
    snprintf(pb, sizeof pb, "%s/results.md", b);
    CHECK(same_file(pa, pb, NULL), "%s: results.md differs", b);
    for (r = 0; r < N_RUNS; r++) {
        snprintf(pa, sizeof pa, "%s/runs/%s/generations.jsonl", a, runs[r]);
        snprintf(pb, sizeof pb, "%s/runs/%s/generations.jsonl", b, runs[r]);
        if (!same_file(pa, pb, &n)) gen_ok = 0;
        gen_bytes += n;
    }
    CHECK(gen_ok && gen_bytes > 0, "%s: generations differ (%d bytes)", b, (int)gen_bytes);
}

static void test_arrays_match_one_process(void) {
    if (!have_cli()) SKIP("./distill not built");
    if (sh("rm -rf " DIR_ " && mkdir -p " DIR_) != 0) SKIP("cannot clear " DIR_);
    CHECK(sh(SWEEP DIR_ "/A > " DIR_ "/A.log 2>&1") == 0, "the single-process sweep failed (" DIR_ "/A.log)");

    /* two tasks at once, by flags */
    CHECK(sh("( " SWEEP DIR_ "/B --task-id 0 --num-tasks 2 > " DIR_ "/B0.log 2>&1 & p=$!; "
             SWEEP DIR_ "/B --task-id 1 --num-tasks 2 > " DIR_ "/B1.log 2>&1; r1=$?; wait $p; r0=$?; exit $((r0 * 16 + r1)) )") == 0,
          "an array task failed (" DIR_ "/B0.log, B1.log)");
    CHECK(!exists(DIR_ "/B/results.csv"), "an array task wrote the report");
    CHECK(sh(SWEEP DIR_ "/B --merge > " DIR_ "/Bm.log 2>&1") == 0, "--merge failed (" DIR_ "/Bm.log)");
    check_same(DIR_ "/A", DIR_ "/B");

    /* two tasks at once, from Slurm's variables, with an array that starts at 1 (--array=1-2) */
    CHECK(sh("( export SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=2; "
             "SLURM_ARRAY_TASK_ID=1 " SWEEP DIR_ "/C > " DIR_ "/C0.log 2>&1 & p=$!; "
             "SLURM_ARRAY_TASK_ID=2 " SWEEP DIR_ "/C > " DIR_ "/C1.log 2>&1; r1=$?; wait $p; r0=$?; exit $((r0 * 16 + r1)) )") == 0,
          "a Slurm array task failed (" DIR_ "/C0.log, C1.log)");
    CHECK(sh("grep -q 'task 1 of 2' " DIR_ "/C1.log") == 0, "SLURM_ARRAY_TASK_ID=2 with MIN=1 is not task 1");
    /* the merge step needs only --out: the options come from OUT/sweep-config.json (and the
       array's variables do not apply to it) */
    CHECK(sh("SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_COUNT=9 ./distill sweep --out " DIR_ "/C --merge > " DIR_ "/Cm.log 2>&1") == 0,
          "--merge with only --out failed (" DIR_ "/Cm.log)");
    check_same(DIR_ "/A", DIR_ "/C");
}

static void test_unfinished_and_resume(void) {
    char *log;
    char path[256];
    int r, named = 0, missing = 0;
    if (!have_cli()) SKIP("./distill not built");
    if (!exists(DIR_ "/A/results.csv")) SKIP("no single-process sweep to compare with");
    /* task 0 alone: it never waits (a task only waits for lower ones), and leaves task 1's runs */
    CHECK(sh(SWEEP DIR_ "/D --task-id 0 --num-tasks 2 > " DIR_ "/D0.log 2>&1") == 0, "task 0 alone failed");
    CHECK(sh(SWEEP DIR_ "/D --merge --num-tasks 2 > " DIR_ "/Dm.log 2> " DIR_ "/Dm.err") == 1, "--merge of half a sweep succeeded");
    log = slurp(DIR_ "/Dm.err", NULL);
    for (r = 0; r < N_RUNS; r++) {
        snprintf(path, sizeof path, DIR_ "/D/runs/%s/result.json", runs[r]);
        if (exists(path)) continue;
        missing++;
        named += log && strstr(log, runs[r]) != NULL;
    }
    CHECK(missing > 0 && named == missing && strstr(log, "(task 1)"), "--merge named %d of %d missing runs:\n%s", named,
          missing, log ? log : "");
    CHECK(!exists(DIR_ "/D/results.csv"), "a failed merge wrote a report");
    distill_free(log);

    /* a task waiting for a run that does not come gives up, naming it and its task */
    CHECK(rename(DIR_ "/D/runs/stage0/result.json", DIR_ "/D/stage0.json") == 0, "stage 0 not run by task 0");
    CHECK(sh(SWEEP DIR_ "/D --task-id 1 --num-tasks 2 --wait-timeout 1 > " DIR_ "/D1.log 2> " DIR_ "/D1.err") == 1,
          "a task waiting for a missing run did not fail");
    log = slurp(DIR_ "/D1.err", NULL);
    CHECK(log && strstr(log, "run stage0 (task 0)"), "timeout message: %s", log ? log : "");
    distill_free(log);
    CHECK(rename(DIR_ "/D/stage0.json", DIR_ "/D/runs/stage0/result.json") == 0, "cannot restore stage 0");

    /* task 1 killed in the middle of a run: a checkpoint and temporary files without a result */
    CHECK(sh("mkdir -p " DIR_ "/D/runs/s1_n8 " DIR_ "/D/runs/s1_easy_fromL && "
             "echo garbage > " DIR_ "/D/runs/s1_n8/model.ckpt && echo gar > " DIR_ "/D/runs/s1_n8/result.json.tmp.99999 && "
             "echo bage > " DIR_ "/D/runs/s1_easy_fromL/generations.jsonl.tmp.12345") == 0, "cannot plant leftovers");
    CHECK(sh(SWEEP DIR_ "/D --task-id 1 --num-tasks 2 > " DIR_ "/D1.log 2>&1") == 0, "task 1 failed (" DIR_ "/D1.log)");
    CHECK(!exists(DIR_ "/D/runs/s1_n8/result.json.tmp.99999") && !exists(DIR_ "/D/runs/s1_easy_fromL/generations.jsonl.tmp.12345"),
          "leftover temporary files were not cleared");
    /* a rerun of a finished task reuses everything */
    CHECK(sh(SWEEP DIR_ "/D --task-id 1 --num-tasks 2 > " DIR_ "/D1b.log 2>&1") == 0, "task 1 rerun failed");
    CHECK(sh("grep -q ' rows ' " DIR_ "/D1b.log") != 0, "a finished task's rerun trained again");
    CHECK(sh(SWEEP DIR_ "/D --merge > " DIR_ "/Dm.log 2>&1") == 0, "--merge failed (" DIR_ "/Dm.log)");
    check_same(DIR_ "/A", DIR_ "/D");
}

static void test_bad_task_ids(void) {
    char *log;
    if (!have_cli()) SKIP("./distill not built");
    CHECK(sh(SWEEP DIR_ "/E --task-id 2 --num-tasks 2 > /dev/null 2> " DIR_ "/E.err") == 2, "--task-id 2 of 2 accepted");
    log = slurp(DIR_ "/E.err", NULL);
    CHECK(log && strstr(log, "out of range"), "message: %s", log ? log : "");
    distill_free(log);
    CHECK(sh(SWEEP DIR_ "/E --task-id 1 > /dev/null 2>&1") == 2, "--task-id 1 without --num-tasks accepted");
    CHECK(sh(SWEEP DIR_ "/E --num-tasks 3 > /dev/null 2>&1") == 2, "--num-tasks without --task-id accepted");
    CHECK(sh(SWEEP DIR_ "/E --task-id -1 --num-tasks 2 > /dev/null 2>&1") == 2, "--task-id -1 accepted");
    CHECK(sh("SLURM_ARRAY_TASK_ID=4 SLURM_ARRAY_TASK_COUNT=4 " SWEEP DIR_ "/E > /dev/null 2> " DIR_ "/E.err") == 2,
          "SLURM_ARRAY_TASK_ID=4 of 4 accepted");
    log = slurp(DIR_ "/E.err", NULL);
    CHECK(log && strstr(log, "SLURM_ARRAY_TASK_ID=4"), "message: %s", log ? log : "");
    distill_free(log);
    CHECK(sh(SWEEP DIR_ "/nothing_here --merge > /dev/null 2>&1") == 1, "--merge of an empty directory succeeded");
    CHECK(!exists(DIR_ "/E/world"), "a refused task started working");
}

int main(void) {
    RUN(test_arrays_match_one_process);
    RUN(test_unfinished_and_resume);
    RUN(test_bad_task_ids);
    return harness_done("test_sweep_dist");
}
