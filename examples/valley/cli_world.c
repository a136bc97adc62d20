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

typedef struct {
    world_gen_options g;
    const char *out, *data, *field;
    int verbose, hasty, level;
    uint64_t seed;
} world_cli_opts;

#define CLI_T world_cli_opts
static const cli_opt world_generate_options[] = {
    CLI_PATH_REQ("out", out, "DIR", "writes DIR/train.jsonl, DIR/direct.jsonl, DIR/eval.jsonl"),
    CLI_U64("train", g.n_train, 0, 10000000, "teacher traces (think traces; a share --error-rate of them end in wrong code)"),
    CLI_U64("eval", g.n_eval, 0, 1000000, "held-out problems"),
    CLI_U64("direct", g.n_direct, 0, 10000000, "direct answers, no <think> (the stage-0 data; default: as --train)"),
    CLI_U64("seed", g.seed, 0, 18446744073709551615.0, "the world's seed"),
    CLI_DBL("error-rate", g.error_rate, 0, 1, "share of traces that end in wrong code"),
};
static const cli_opt world_verify_options[] = {
    CLI_PATH_REQ("data", data, "FILE", "records with hidden tests"),
    CLI_STR("field", field, "NAME", "the field holding the answer to run"),
    CLI_BOOL("verbose", verbose, "one line per record (else the first 5 failures)"),
    CLI_ALIAS("v", "verbose"),
};
static const cli_opt world_show_options[] = {
    CLI_U64("seed", seed, 0, 18446744073709551615.0, "the problem's seed"),
    CLI_INT("level", level, 1, 5, "difficulty level"),
    CLI_BOOL("hasty", hasty, "the hasty teacher (may end in wrong code)"),
};
static const cli_opt world_run_options[] = {
    CLI_SECTION("  (none: PROGRAM and INPUT are the two arguments)"),
};
#undef CLI_T

static const cli_cmd world_generate_c = {
    "world generate", "usage: distill world generate --out DIR [--train N] [--eval M] [--direct D] [--seed S] [--error-rate R]\n",
    NULL, world_generate_options, CLI_N(world_generate_options), NULL, 0};
static const cli_cmd world_verify_c = {
    "world verify", "usage: distill world verify --data FILE [--field response] [-v]\n",
    "  Run each record's FIELD on its hidden tests.\n", world_verify_options, CLI_N(world_verify_options), NULL, 0};
static const cli_cmd world_show_c = {
    "world show", "usage: distill world show [--seed S] [--level 1..5] [--hasty]\n",
    "  One problem and its teacher trace.\n", world_show_options, CLI_N(world_show_options), NULL, 0};
static const cli_cmd world_run_c = {
    "world run", "usage: distill world run PROGRAM INPUT    e.g. distill world run 'filter odd | sum' '[3,8,1]'\n",
    "  Run a program on an input and print every intermediate value.\n", world_run_options, CLI_N(world_run_options), NULL, 2};

static void world_defaults(world_cli_opts *o) {
    memset(o, 0, sizeof *o);
    o->g = world_gen_options_default();
    o->field = "response";
    o->seed = 1;
    o->level = 4;
}

static void world_usage(FILE *f) {
    world_cli_opts o;
    world_defaults(&o);
    fprintf(f, "usage: distill world <generate|verify|show|run> [options]   the miniature programming world\n\n");
    cli_help(&world_generate_c, &o, f);
    fputc('\n', f);
    cli_help(&world_verify_c, &o, f);
    fputc('\n', f);
    cli_help(&world_show_c, &o, f);
    fputc('\n', f);
    cli_help(&world_run_c, &o, f);
}

static int world_generate_cmd(int argc, char **argv) {
    world_gen_options o;
    world_gen_summary sum;
    distill_error err;
    const char *out;
    world_cli_opts w;
    int a;
    double t0 = distill_time_seconds();
    world_defaults(&w);
    a = cli_parse(&world_generate_c, &w, argc, argv, NULL, NULL);
    if (a != 0) return a == CLI_HELP ? 0 : 2;
    o = w.g;
    out = w.out;
    if (o.n_direct == (uint64_t)-1) o.n_direct = o.n_train;
    if (mkdir(out, 0777) != 0 && errno != EEXIST) { fprintf(stderr, "distill world: cannot create directory %s\n", out); return 1; }
    if (world_write_files(out, &o, &sum, &err) != 0) { fprintf(stderr, "distill world: %s\n", err.msg); return 1; }
    world_print_summary(stdout, &o, &sum);
    printf("wrote %s/{train,direct,eval}.jsonl in %.2f s\n", out, distill_time_seconds() - t0);
    return 0;
}

static int world_verify_cmd(int argc, char **argv) {
    const char *data, *field, *line;
    world_cli_opts w;
    distill_line_reader *rd;
    distill_error err;
    size_t len;
    int64_t line_no, n = 0, pass = 0, missing = 0;
    int a, rc, verbose;
    world_defaults(&w);
    a = cli_parse(&world_verify_c, &w, argc, argv, NULL, NULL);
    if (a != 0) return a == CLI_HELP ? 0 : 2;
    data = w.data; field = w.field; verbose = w.verbose;
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
    uint64_t seed, level;
    int a, hasty, passed;
    world_cli_opts w;
    world_problem pr;
    world_program fin;
    world_teacher_kind kind;
    char resp[8192], direct[1024];
    world_defaults(&w);
    a = cli_parse(&world_show_c, &w, argc, argv, NULL, NULL);
    if (a != 0) return a == CLI_HELP ? 0 : 2;
    seed = w.seed; level = (uint64_t)w.level; hasty = w.hasty;
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
    const char *pos[2];
    int s, npos = 0;
    world_cli_opts w;
    world_defaults(&w);
    s = cli_parse(&world_run_c, &w, argc, argv, pos, &npos);
    if (s != 0) return s == CLI_HELP ? 0 : 2;
    if (npos != 2) return cli_usage_error(&world_run_c, "PROGRAM and INPUT are required: distill world run 'filter odd | sum' '[3,8,1]'");
    if (world_parse(pos[0], strlen(pos[0]), &p, err, sizeof err) != 0) { fprintf(stderr, "program: %s\n", err); return 1; }
    if (world_parse_value(pos[1], strlen(pos[1]), &in, err, sizeof err) != 0) { fprintf(stderr, "input: %s\n", err); return 1; }
    if (world_run(&p, &in, &out, trace, err, sizeof err) != 0) { fprintf(stderr, "run: %s\n", err); return 1; }
    world_format_value(&in, txt, sizeof txt);
    printf("%s", txt);
    for (s = 0; s < p.n; s++) { world_format_value(&trace[s], txt, sizeof txt); printf(" -> %s", txt); }
    printf("\n");
    return 0;
}

int cli_world(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (argc < 2) { fprintf(stderr, "distill world: give a subcommand: generate, verify, show or run (see distill world --help)\n"); return 2; }
        world_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "generate")) return world_generate_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify")) return world_verify_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[1], "show")) return world_show_cmd(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run")) return world_run_cmd(argc - 1, argv + 1);
    fprintf(stderr, "distill world: unknown subcommand '%s' (generate, verify, show, run; see distill world --help)\n", argv[1]);
    return 2;
}
