/* distill world ...: the miniature competitive-programming world (see world.h).
     generate  write train.jsonl (teacher traces), direct.jsonl (direct answers), eval.jsonl
     verify    check each record's response (or another field) against its hidden tests
     show      print one problem and the teacher's trace
     run       run a program on an input and print every intermediate value */
#include "cli.h"
#include "world.h"
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

/* A seed per (run seed, stream, index): train, direct and eval problems never share seeds. */
static uint64_t world_seed(uint64_t s, uint64_t stream, uint64_t i) {
    uint64_t z = s * 0x9E3779B97F4A7C15ull ^ (stream << 56) ^ (i * 0xBF58476D1CE4E5B9ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t world_fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1;
}

/* Open-addressing set of question hashes, so eval questions never appear in train/direct. */
typedef struct world_set { uint64_t *h; size_t cap; } world_set;
static int world_set_has(const world_set *s, uint64_t h) {
    size_t i = (size_t)(h % s->cap);
    while (s->h[i]) { if (s->h[i] == h) return 1; i = (i + 1) % s->cap; }
    return 0;
}
static void world_set_add(world_set *s, uint64_t h) {
    size_t i = (size_t)(h % s->cap);
    while (s->h[i]) { if (s->h[i] == h) return; i = (i + 1) % s->cap; }
    s->h[i] = h;
}

static int world_generate_cmd(int argc, char **argv) {
    const char *out = NULL;
    uint64_t n_train = 2000, n_eval = 200, n_direct = (uint64_t)-1, seed = 1;
    double error_rate = 0.3;
    int a, lv, kind_count[3] = {0, 0, 0};
    char path[4096], id[64], resp[8192];
    distill_atomic_file af;
    distill_error err;
    world_set seen;
    long long level_count[3][WORLD_N_LEVELS + 1];
    double resp_chars = 0, q_chars = 0;
    int64_t right_count = 0;
    double t0 = distill_time_seconds();
    memset(level_count, 0, sizeof level_count);
    for (a = 1; a < argc; a++) {
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!strcmp(argv[a], "--out") && v) { out = v; a++; }
        else if (!strcmp(argv[a], "--train")) { if (world_flag_u64("--train", v, 0, 10000000, &n_train)) return 2; a++; }
        else if (!strcmp(argv[a], "--eval")) { if (world_flag_u64("--eval", v, 0, 1000000, &n_eval)) return 2; a++; }
        else if (!strcmp(argv[a], "--direct")) { if (world_flag_u64("--direct", v, 0, 10000000, &n_direct)) return 2; a++; }
        else if (!strcmp(argv[a], "--seed")) { if (world_flag_u64("--seed", v, 0, UINT64_MAX, &seed)) return 2; a++; }
        else if (!strcmp(argv[a], "--error-rate") && v) {
            char *end;
            error_rate = strtod(v, &end);
            if (*end || !(error_rate >= 0 && error_rate <= 1)) {
                fprintf(stderr, "distill world: --error-rate: '%s' is not a number in [0, 1]\n", v);
                return 2;
            }
            a++;
        } else if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) { world_usage(stdout); return 0; }
        else { fprintf(stderr, "distill world generate: unknown or incomplete option '%s'\n", argv[a]); world_usage(stderr); return 2; }
    }
    if (!out) { fprintf(stderr, "distill world generate: --out DIR is required\n"); return 2; }
    if (n_direct == (uint64_t)-1) n_direct = n_train;
    {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", out);
        if (strchr(out, '\'') || system(cmd) != 0) { fprintf(stderr, "distill world: cannot create directory %s\n", out); return 1; }
    }
    seen.cap = (size_t)(n_train + n_direct) * 2 + 17;
    seen.h = (uint64_t *)calloc(seen.cap, sizeof(uint64_t));
    if (!seen.h) { fprintf(stderr, "distill world: out of memory\n"); return 1; }

    /* train: teacher traces; direct: direct answers on other problems; eval: held out */
    for (a = 0; a < 3; a++) {
        static const char *names[3] = {"train.jsonl", "direct.jsonl", "eval.jsonl"};
        uint64_t n = a == 0 ? n_train : a == 1 ? n_direct : n_eval, made = 0, k = 0;
        snprintf(path, sizeof path, "%s/%s", out, names[a]);
        if (distill_atomic_open(&af, path, &err) != 0) { fprintf(stderr, "%s\n", err.msg); free(seen.h); return 1; }
        for (k = 0; made < n; k++) {
            world_problem pr;
            uint64_t ps = world_seed(seed, (uint64_t)a + 1, k);
            uint64_t h;
            if (k > 100 * (n + 10)) { fprintf(stderr, "distill world: cannot find %llu unseen eval problems\n", (unsigned long long)n); break; }
            /* levels: uniform at random for train/direct, balanced round robin for eval */
            lv = a == 2 ? (int)(made % WORLD_N_LEVELS) + 1 : (int)(ps % WORLD_N_LEVELS) + 1;
            if (world_generate(&pr, ps, lv) != 0) { fprintf(stderr, "distill world: generator failed\n"); distill_atomic_abort(&af); free(seen.h); return 1; }
            h = world_fnv(pr.question);
            if (a < 2) world_set_add(&seen, h);
            else if (world_set_has(&seen, h)) continue;   /* eval questions are unseen */
            snprintf(id, sizeof id, "%s-%06llu", a == 0 ? "train" : a == 1 ? "direct" : "eval", (unsigned long long)made);
            if (a == 0) {
                world_program fin;
                world_teacher_kind kind;
                distill_rng r;
                int hasty, passed;
                distill_rng_seed(&r, ps ^ 0xE220Full);
                hasty = distill_rng_uniform(&r) < error_rate;
                if (!world_teacher(&pr, ps, hasty, resp, sizeof resp, &fin, &kind)) { fprintf(stderr, "distill world: trace too long\n"); continue; }
                /* the label comes from running the final code, not from the teacher's intent */
                passed = world_score_text(resp, strlen(resp), pr.hid, WORLD_N_HIDDEN, NULL, 0);
                world_write_record(af.f, &pr, id, resp, (double)passed / WORLD_N_HIDDEN, passed == WORLD_N_HIDDEN,
                                   kind == WORLD_TEACHER_CAREFUL ? "careful" : kind == WORLD_TEACHER_HASTY ? "hasty" : "slip");
                right_count += passed == WORLD_N_HIDDEN;
                kind_count[kind]++;
                resp_chars += (double)strlen(resp);
            } else if (a == 1) {
                world_direct(&pr, resp, sizeof resp);
                world_write_record(af.f, &pr, id, resp, 1.0, 1, "direct");
            } else {
                /* the teacher's careful trace is kept as a reference response */
                world_teacher(&pr, ps, 0, resp, sizeof resp, NULL, NULL);
                world_write_record(af.f, &pr, id, resp, 1.0, 1, "careful");
            }
            fputc('\n', af.f);
            q_chars += (double)strlen(pr.question);
            level_count[a][lv]++;
            made++;
        }
        if (distill_atomic_commit(&af, &err) != 0) { fprintf(stderr, "%s\n", err.msg); free(seen.h); return 1; }
        printf("%-13s %6llu records  levels 1..5: %lld %lld %lld %lld %lld\n", names[a], (unsigned long long)made,
               level_count[a][1], level_count[a][2], level_count[a][3], level_count[a][4], level_count[a][5]);
    }
    free(seen.h);
    if (n_train)
        printf("train traces: %lld right, %lld wrong (careful %d, hasty %d, slip %d); mean response %.0f chars\n",
               (long long)right_count, (long long)(n_train - (uint64_t)right_count), kind_count[0], kind_count[1],
               kind_count[2], resp_chars / (double)n_train);
    printf("wrote %s/{train,direct,eval}.jsonl in %.2f s\n", out, distill_time_seconds() - t0);
    (void)q_chars;
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
           kind == WORLD_TEACHER_CAREFUL ? "careful" : kind == WORLD_TEACHER_HASTY ? "hasty" : "slip",
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
