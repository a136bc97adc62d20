/* distill world ...: the miniature competitive-programming world (see world.h).
     generate  write train.jsonl (teacher traces), direct.jsonl (direct answers), eval.jsonl
     verify    check each record's response (or another field) against its hidden tests
     show      print one problem and the teacher's trace
     run       run a program on an input and print every intermediate value */
#define _POSIX_C_SOURCE 200809L   /* mkdir */
#include "../cli/cli.h"
#include "world.h"
#include <sys/stat.h>
#include <sys/types.h>
#include <string.h>
#include <stdlib.h>
#include <errno.h>

static void world_usage(FILE *f) {
    fprintf(f,
        "usage: distill world <generate|verify|show|run> [options]\n"
        "  generate --out DIR [--train N] [--eval M] [--direct D] [--seed S] [--error-rate R]\n"
        "           writes DIR/train.jsonl (think traces; a share R of them end in wrong code),\n"
        "           DIR/direct.jsonl (question -> fenced answer, no <think>: the stage-0 data) and\n"
        "           DIR/eval.jsonl (held-out problems). Defaults: N 2000, M 200, D = N, S 1, R 0.3.\n"
        "  verify   --data FILE [--field response]   run each record's FIELD on its hidden tests\n"
        "  show     [--seed S] [--level 1..5] [--hasty]   one problem and its teacher trace\n"
        "  run      PROGRAM INPUT    e.g. distill world run 'filter odd | sum' '[3,8,1]'\n");
}

/* Parse a non-negative integer flag value; -1 on error (message printed). */
static int world_flag_u64(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    unsigned long long x;
    errno = 0;
    if (!v || !*v || *v == '-') { fprintf(stderr, "distill world: %s needs a number\n", flag); return -1; }
    x = strtoull(v, &end, 10);
    if (errno || *end || x < lo || x > hi) {
        fprintf(stderr, "distill world: %s: '%s' is not an integer in [%llu, %llu]\n", flag, v,
                (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int world_generate_cmd(int argc, char **argv) {
    world_gen_options o;
    world_gen_summary sum;
    distill_error err;
    const char *out = NULL;
    int a;
    double t0 = distill_time_seconds();
    o = world_gen_options_default();
    for (a = 1; a < argc; a++) {
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!strcmp(argv[a], "--out") && v) { out = v; a++; }
        else if (!strcmp(argv[a], "--train")) { if (world_flag_u64("--train", v, 0, 10000000, &o.n_train)) return 2; a++; }
        else if (!strcmp(argv[a], "--eval")) { if (world_flag_u64("--eval", v, 0, 1000000, &o.n_eval)) return 2; a++; }
        else if (!strcmp(argv[a], "--direct")) { if (world_flag_u64("--direct", v, 0, 10000000, &o.n_direct)) return 2; a++; }
        else if (!strcmp(argv[a], "--seed")) { if (world_flag_u64("--seed", v, 0, UINT64_MAX, &o.seed)) return 2; a++; }
        else if (!strcmp(argv[a], "--error-rate") && v) {
            char *end;
            o.error_rate = strtod(v, &end);
            if (*end || !(o.error_rate >= 0 && o.error_rate <= 1)) {
                fprintf(stderr, "distill world: --error-rate: '%s' is not a number in [0, 1]\n", v);
                return 2;
            }
            a++;
        } else if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) { world_usage(stdout); return 0; }
        else { fprintf(stderr, "distill world generate: unknown or incomplete option '%s'\n", argv[a]); world_usage(stderr); return 2; }
    }
    if (!out) { fprintf(stderr, "distill world generate: --out DIR is required\n"); return 2; }
    if (o.n_direct == (uint64_t)-1) o.n_direct = o.n_train;
    if (mkdir(out, 0777) != 0 && errno != EEXIST) { fprintf(stderr, "distill world: cannot create directory %s\n", out); return 1; }
    if (world_write_files(out, &o, &sum, &err) != 0) { fprintf(stderr, "distill world: %s\n", err.msg); return 1; }
    world_print_summary(stdout, &o, &sum);
    printf("wrote %s/{train,direct,eval}.jsonl in %.2f s\n", out, distill_time_seconds() - t0);
    return 0;
}

static int world_verify_cmd(int argc, char **argv) {
    const char *data = NULL, *field = "response", *line;
    distill_line_reader *rd;
    distill_error err;
    size_t len;
    int64_t line_no, n = 0, pass = 0, missing = 0;
    int a, rc, verbose = 0;
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--data") && a + 1 < argc) data = argv[++a];
        else if (!strcmp(argv[a], "--field") && a + 1 < argc) field = argv[++a];
        else if (!strcmp(argv[a], "-v")) verbose = 1;
        else { fprintf(stderr, "distill world verify: unknown or incomplete option '%s'\n", argv[a]); world_usage(stderr); return 2; }
    }
    if (!data) { fprintf(stderr, "distill world verify: --data FILE is required\n"); return 2; }
    rd = distill_line_reader_open(data, 0, &err);
    if (!rd) { fprintf(stderr, "%s\n", err.msg); return 1; }
    while ((rc = distill_line_reader_next(rd, &line, &len, &line_no, &err)) == 1) {
        distill_json *rec;
        const distill_json *resp;
        char reason[256];
        int ok;
        if (len == 0) continue;
        rec = distill_json_parse(line, len, data, (int)line_no, &err);
        if (!rec) { fprintf(stderr, "%s\n", err.msg); distill_line_reader_close(rd); return 1; }
        resp = distill_json_get(rec, field);
        if (!resp || resp->type != DISTILL_JSON_STRING) { missing++; distill_json_free(rec); continue; }
        ok = world_verify_text(rec, resp->str, resp->len, reason, sizeof reason);
        n++;
        pass += ok;
        if (verbose || (!ok && n - pass <= 5)) printf("%s:%lld: %s: %s\n", data, (long long)line_no, ok ? "pass" : "FAIL", reason);
        distill_json_free(rec);
    }
    distill_line_reader_close(rd);
    if (rc < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("%s: %lld/%lld records pass their hidden tests (%.1f%%)", data, (long long)pass, (long long)n,
           n ? 100.0 * (double)pass / (double)n : 0.0);
    if (missing) printf("; %lld records have no string field '%s'", (long long)missing, field);
    printf("\n");
    return 0;
}

static int world_show_cmd(int argc, char **argv) {
    uint64_t seed = 1, level = 4;
    int a, hasty = 0, passed;
    world_problem pr;
    world_program fin;
    world_teacher_kind kind;
    char resp[8192], direct[1024];
    for (a = 1; a < argc; a++) {
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!strcmp(argv[a], "--seed")) { if (world_flag_u64("--seed", v, 0, UINT64_MAX, &seed)) return 2; a++; }
        else if (!strcmp(argv[a], "--level")) { if (world_flag_u64("--level", v, 1, 5, &level)) return 2; a++; }
        else if (!strcmp(argv[a], "--hasty")) hasty = 1;
        else { fprintf(stderr, "distill world show: unknown option '%s'\n", argv[a]); return 2; }
    }
    world_generate(&pr, seed, (int)level);
    world_teacher(&pr, seed, hasty, resp, sizeof resp, &fin, &kind);
    world_direct(&pr, direct, sizeof direct);
    passed = world_score_text(resp, strlen(resp), pr.hid, WORLD_N_HIDDEN, NULL, 0);
    printf("== question (level %d, %s)\n%s\n== teacher (%s): passes %d/%d hidden tests\n%s\n== direct answer\n%s\n",
           pr.level, world_difficulty_label(pr.level), pr.question,
           world_teacher_kind_name(kind),
           passed, WORLD_N_HIDDEN, resp, direct);
    return 0;
}

static int world_run_cmd(int argc, char **argv) {
    world_program p;
    world_value in, out, trace[WORLD_MAX_OPS];
    char err[160], txt[512];
    int s;
    if (argc != 3) { world_usage(stderr); return 2; }
    if (world_parse(argv[1], strlen(argv[1]), &p, err, sizeof err) != 0) { fprintf(stderr, "program: %s\n", err); return 1; }
    if (world_parse_value(argv[2], strlen(argv[2]), &in, err, sizeof err) != 0) { fprintf(stderr, "input: %s\n", err); return 1; }
    if (world_run(&p, &in, &out, trace, err, sizeof err) != 0) { fprintf(stderr, "run: %s\n", err); return 1; }
    world_format_value(&in, txt, sizeof txt);
    printf("%s", txt);
    for (s = 0; s < p.n; s++) { world_format_value(&trace[s], txt, sizeof txt); printf(" -> %s", txt); }
    printf("\n");
    return 0;
}

int cli_world(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        world_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "generate")) return world_generate_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify")) return world_verify_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[1], "show")) return world_show_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run")) return world_run_cmd(argc - 1, argv + 1);
    fprintf(stderr, "distill world: unknown subcommand '%s'\n", argv[1]);
    world_usage(stderr);
    return 2;
}
