/* The miniature programming world (examples/valley/world.c): interpreter semantics against
   hand-computed values, safety limits, parse errors, generator determinism, the teacher's
   traces re-checked line by line against real execution, and the right/wrong labels against an
   independent re-run of the final code. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
/* linked with examples/valley/world.c (see the Makefile) */
#include "../examples/valley/world.h"

/* 1 when p produces the test's output on its input (errors count as a mismatch) */
static int world__passes(const world_program *p, const world_test *t) {
    world_value got;
    if (world_run(p, &t->in, &got, NULL, NULL, 0) != 0) return 0;
    return world_value_equal(&got, &t->out);
}

/* Run program text on input text; returns the formatted result or "ERR". */
static const char *run_text(const char *prog, const char *input, char *out, size_t cap) {
    world_program p;
    world_value in, res;
    char err[160];
    if (world_parse(prog, strlen(prog), &p, err, sizeof err) != 0) { snprintf(out, cap, "PARSE"); return out; }
    if (world_parse_value(input, strlen(input), &in, err, sizeof err) != 0) { snprintf(out, cap, "VALUE"); return out; }
    if (world_run(&p, &in, &res, NULL, err, sizeof err) != 0) { snprintf(out, cap, "ERR"); return out; }
    world_format_value(&res, out, cap);
    return out;
}

static void test_semantics(void) {
    /* expected values worked out by hand */
    static const char *cases[][3] = {
        {"map +2", "[1,5,0]", "[3,7,2]"},          {"map -3", "[1,5]", "[-2,2]"},
        {"map *3", "[1,-2,0]", "[3,-6,0]"},        {"filter odd", "[1,2,3,-3,4]", "[1,3,-3]"},
        {"filter even", "[1,2,3,-4,0]", "[2,-4,0]"}, {"filter >4", "[4,5,9,1]", "[5,9]"},
        {"filter <4", "[4,5,3,-1]", "[3,-1]"},     {"sort", "[3,1,2,1]", "[1,1,2,3]"},
        {"rsort", "[3,1,2,1]", "[3,2,1,1]"},       {"reverse", "[1,2,3]", "[3,2,1]"},
        {"uniq", "[3,1,3,2,1]", "[3,1,2]"},        {"take 2", "[7,8,9]", "[7,8]"},
        {"take 5", "[7,8]", "[7,8]"},              {"drop 1", "[7,8,9]", "[8,9]"},
        {"drop 4", "[7,8,9]", "[]"},               {"scan", "[1,2,3,4]", "[1,3,6,10]"},
        {"sum", "[1,2,3,4]", "10"},                {"sum", "[]", "0"},
        {"max", "[3,9,2]", "9"},                   {"min", "[3,9,2]", "2"},
        {"len", "[3,9,2]", "3"},                   {"first", "[3,9,2]", "3"},
        {"last", "[3,9,2]", "2"},                  {"max", "[]", "ERR"},
        {"filter odd | sort | take 2 | sum", "[5,3,8,1]", "4"},
        {"  map+1|rsort  |first ", "[1,2]", "3"},
        {"scan | filter >3 | len", "[1,2,3,4]", "2"},
        {"map *99 | map *99 | map *99", "[99]", "ERR"},    /* overflow beyond WORLD_MAX_ABS */
        {"filter >-2", "[-3,-1,0]", "[-1,0]"},
    };
    size_t i;
    char got[256];
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_text(cases[i][0], cases[i][1], got, sizeof got);
        CHECK(!strcmp(got, cases[i][2]), "'%s' on %s: got %s, want %s", cases[i][0], cases[i][1], got, cases[i][2]);
    }
}

static void test_parse_errors(void) {
    static const char *bad[] = {
        "", "   ", "|", "sum |", "| sum", "mapp +1", "map", "map +", "map ^2", "filter", "filter odd2",
        "take", "take -1", "take 100", "sum | sort", "max | min", "sort sort", "filter >", "map +12345678",
        "sort | sort | sort | sort | sort | sort | sort | sort | sort",   /* 9 steps */
        "sort \xff", "sort;", "take 2x",
    };
    size_t i;
    world_program p;
    char err[160], longp[WORLD_MAX_PROGRAM_TEXT + 40];
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK(world_parse(bad[i], strlen(bad[i]), &p, err, sizeof err) == -1, "'%s' should not parse", bad[i]);
        CHECK(err[0] != 0, "'%s': no error message", bad[i]);
    }
    /* a message names the position and the operation */
    world_parse("sort | mapp +1", 14, &p, err, sizeof err);
    CHECK(strstr(err, "at 8") && strstr(err, "mapp"), "message: %s", err);
    memset(longp, ' ', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    memcpy(longp, "sum", 3);
    CHECK(world_parse(longp, strlen(longp), &p, err, sizeof err) == -1, "over-long program text accepted");
    /* values */
    {
        static const char *badv[] = {"", "[", "[1,", "[1,,2]", "[1 2]", "x", "[1]]", "99999999", "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33]"};
        world_value v;
        for (i = 0; i < sizeof badv / sizeof badv[0]; i++)
            CHECK(world_parse_value(badv[i], strlen(badv[i]), &v, err, sizeof err) == -1, "value '%s' accepted", badv[i]);
    }
}

/* Random bytes and random token soups never crash the parser; whatever parses also runs within
   the limits (or reports an error) on a maximal input. */
static void test_fuzz(void) {
    static const char *toks[] = {"map", "filter", "+", "-", "*", ">", "<", "odd", "even", "sort", "rsort",
                                 "reverse", "uniq", "take", "drop", "scan", "sum", "max", "min", "len",
                                 "first", "last", "|", "99", "3", "0", " ", "-7"};
    distill_rng r;
    int it, parsed = 0;
    world_value in, out;
    char txt[256], err[160];
    distill_rng_seed(&r, 42);
    memset(&in, 0, sizeof in);
    in.n = WORLD_MAX_LIST;
    for (it = 0; it < WORLD_MAX_LIST; it++) in.v[it] = 999 - 61 * it;
    for (it = 0; it < 20000; it++) {
        world_program p;
        size_t n = 0;
        int k, nt = 1 + (int)distill_rng_below(&r, 12);
        if (it % 2) {
            for (k = 0; k < nt; k++) n += (size_t)snprintf(txt + n, sizeof txt - n, "%s ", toks[distill_rng_below(&r, sizeof toks / sizeof toks[0])]);
        } else {
            n = distill_rng_below(&r, 40);
            for (k = 0; k < (int)n; k++) txt[k] = (char)(distill_rng_below(&r, 256));
        }
        if (world_parse(txt, n, &p, err, sizeof err) == 0) {
            parsed++;
            CHECK(p.n >= 1 && p.n <= WORLD_MAX_OPS, "steps %d", p.n);
            if (world_run(&p, &in, &out, NULL, err, sizeof err) == 0)
                CHECK(out.is_int || (out.n >= 0 && out.n <= WORLD_MAX_LIST), "bad output size");
        }
    }
    CHECK(parsed > 100, "the token soup should sometimes parse (%d)", parsed);
}

static void test_generator_deterministic(void) {
    int lv;
    for (lv = 1; lv <= WORLD_N_LEVELS; lv++) {
        world_problem a, b, c;
        world_generate(&a, 1234, lv);
        world_generate(&b, 1234, lv);
        world_generate(&c, 1235, lv);
        CHECK(!memcmp(&a, &b, sizeof a), "level %d: same seed, different problem", lv);
        CHECK(strcmp(a.question, c.question) != 0, "level %d: seeds 1234 and 1235 give the same question", lv);
        CHECK(a.level == lv, "level %d stored as %d", lv, a.level);
    }
    {
        world_problem z;
        CHECK(world_generate(&z, 1, 0) == -1 && world_generate(&z, 1, 6) == -1, "bad levels accepted");
    }
}

/* Vague steps per level, as documented: 0, 0, 1, 2, 2; and the examples really decide. */
static void test_generator_levels(void) {
    int lv, s, i;
    static const int want_vague[6] = {0, 0, 0, 1, 2, 2};
    for (lv = 1; lv <= WORLD_N_LEVELS; lv++)
        for (s = 0; s < 200; s++) {
            world_problem pr;
            int nv = 0;
            world_generate(&pr, (uint64_t)s, lv);
            for (i = 0; i < pr.truth.n; i++) nv += pr.vague[i];
            CHECK(nv == want_vague[lv], "level %d seed %d: %d vague steps", lv, s, nv);
            for (i = 0; i < WORLD_N_PUBLIC; i++) CHECK(world__passes(&pr.truth, &pr.pub[i]), "truth fails public %d", i);
            for (i = 0; i < WORLD_N_HIDDEN; i++) CHECK(world__passes(&pr.truth, &pr.hid[i]), "truth fails hidden %d", i);
            CHECK(!strcmp(world_difficulty_label(lv), lv <= 2 ? "EASY" : "HARD"), "label");
        }
}

/* Re-read a trace as text and re-execute every claim in it. Returns the number of claims
   checked, or -1 on the first inconsistency (message printed). */
static int check_trace(const world_problem *pr, const char *resp, int *n_try) {
    const char *p = resp, *nl;
    world_program cur;
    int have = 0, claims = 0;
    char line[1024];
    *n_try = 0;
    if (strncmp(p, "<think>\n", 8) != 0) { printf("    no <think>\n"); return -1; }
    p += 8;
    while ((nl = strchr(p, '\n')) != NULL) {
        size_t n = (size_t)(nl - p);
        if (n >= sizeof line) return -1;
        memcpy(line, p, n);
        line[n] = 0;
        p = nl + 1;
        if (!strcmp(line, "</think>")) break;
        if (!strncmp(line, "try ", 4)) {
            char err[160];
            if (world_parse(line + 4, n - 4, &cur, err, sizeof err) != 0) { printf("    bad try: %s\n", line); return -1; }
            have = 1;
            (*n_try)++;
        } else if (line[0] == '[') {
            /* "IN -> s1 -> ... -> OUT ok"  or  "IN -> ... -> OUT, want W, no" */
            char *parts[16], *q = line, *end;
            int np = 0, ok_claim, s, e, matched = -1;
            world_value in, states[WORLD_MAX_OPS], out, claimed;
            char err[160], buf[256];
            if (!have) { printf("    check before any try\n"); return -1; }
            ok_claim = (n > 3 && !strcmp(line + n - 3, " ok"));
            if (ok_claim) line[n - 3] = 0;
            else if (n > 10 && !strcmp(line + n - 10, " error, no")) line[n - 4] = 0;
            else {
                end = strstr(line, ", want ");
                if (!end || strcmp(line + n - 4, ", no")) { printf("    bad check line: %s\n", line); return -1; }
                *end = 0;
            }
            while (np < 16) {
                parts[np++] = q;
                end = strstr(q, " -> ");
                if (!end) break;
                *end = 0;
                q = end + 4;
            }
            if (world_parse_value(parts[0], strlen(parts[0]), &in, err, sizeof err) != 0) { printf("    bad input\n"); return -1; }
            for (e = 0; e < WORLD_N_PUBLIC; e++) if (world_value_equal(&in, &pr->pub[e].in)) matched = e;
            if (matched < 0) { printf("    check on an input that is not an example\n"); return -1; }
            if (world_run(&cur, &in, &out, states, err, sizeof err) != 0) {
                /* the states before the failing step are shown, then "error" */
                if (strcmp(parts[np - 1], "error") || np - 2 >= cur.n) { printf("    run error not reported\n"); return -1; }
                for (s = 0; s < np - 2; s++) {
                    world_format_value(&states[s], buf, sizeof buf);
                    if (strcmp(buf, parts[s + 1])) { printf("    state %d before error differs\n", s); return -1; }
                }
                {   /* and the step after them really fails */
                    world_program pre = cur;
                    pre.n = np - 1;
                    if (world_run(&pre, &in, &out, NULL, NULL, 0) == 0) { printf("    claimed error does not happen\n"); return -1; }
                }
                claims++;
                continue;
            }
            if (!strcmp(parts[np - 1], "error")) { printf("    error claimed for a run that works\n"); return -1; }
            if (np != cur.n + 1) { printf("    %d states shown for %d steps\n", np - 1, cur.n); return -1; }
            for (s = 0; s < cur.n; s++) {
                world_format_value(&states[s], buf, sizeof buf);
                if (strcmp(buf, parts[s + 1])) { printf("    state %d: trace says %s, run gives %s\n", s, parts[s + 1], buf); return -1; }
            }
            world_parse_value(parts[np - 1], strlen(parts[np - 1]), &claimed, err, sizeof err);
            if (ok_claim != world_value_equal(&claimed, &pr->pub[matched].out)) { printf("    ok/no claim wrong\n"); return -1; }
            claims++;
        }
    }
    return claims;
}

static void test_teacher_traces_consistent(void) {
    int s, lv, hasty, n_try, claims, total = 0, backtracks = 0, exec_slips = 0, misreads = 0;
    char resp[8192];
    for (hasty = 0; hasty <= 1; hasty++)
        for (lv = 1; lv <= WORLD_N_LEVELS; lv++)
            for (s = 0; s < 150; s++) {
                world_problem pr;
                world_program fin, code;
                world_teacher_kind kind;
                const char *c;
                size_t cl;
                char err[160];
                world_generate(&pr, (uint64_t)(s * 7 + lv), lv);
                CHECK(world_teacher(&pr, (uint64_t)s, hasty, resp, sizeof resp, &fin, &kind) > 0, "trace too long");
                claims = check_trace(&pr, resp, &n_try);
                /* an execution slip is a wrong value in a check line: the checker must catch it */
                if (kind == WORLD_TEACHER_EXEC_SLIP) { CHECK(claims == -1, "level %d seed %d: slip not visible:\n%s", lv, s, resp); exec_slips++; continue; }
                CHECK(claims > 0, "level %d seed %d: inconsistent trace:\n%s", lv, s, resp);
                misreads += kind == WORLD_TEACHER_MISREAD;
                total += claims > 0 ? claims : 0;
                backtracks += n_try > 1;
                CHECK(world_extract_code(resp, strlen(resp), &c, &cl), "no code in trace");
                CHECK(world_parse(c, cl, &code, err, sizeof err) == 0, "code does not parse: %s", err);
                CHECK(!memcmp(&code.ops, &fin.ops, sizeof(world_op) * (size_t)fin.n) && code.n == fin.n, "fenced code != final");
                if (!hasty) CHECK(kind == WORLD_TEACHER_CAREFUL, "kind");
            }
    CHECK(total > 1500, "only %d claims checked", total);
    CHECK(backtracks > 100, "only %d traces backtrack", backtracks);
    CHECK(exec_slips > 5 && misreads > 5, "the erring teacher made %d execution slips and %d misreads", exec_slips, misreads);
}

/* The checker above can fail: a trace with one state or verdict altered is rejected. */
static void test_trace_checker_catches_tampering(void) {
    world_problem pr;
    char resp[8192], *arrow, *ok;
    int n_try;
    world_generate(&pr, 5, 2);
    world_teacher(&pr, 5, 0, resp, sizeof resp, NULL, NULL);
    CHECK(check_trace(&pr, resp, &n_try) > 0, "untouched trace rejected");
    arrow = strstr(resp, "] -> [");
    if (arrow) { arrow[6] = arrow[6] == '9' ? '8' : (char)(arrow[6] + 1); }
    CHECK(arrow == NULL || check_trace(&pr, resp, &n_try) == -1, "altered state accepted:\n%s", resp);
    world_teacher(&pr, 5, 0, resp, sizeof resp, NULL, NULL);
    ok = strstr(resp, " ok\n");
    if (ok) {
        /* turn "X ok" into "X, want X, no": a false claim of a mismatch */
        char tail[4096], val[256], *start = ok;
        while (start > resp && start[-1] != ' ') start--;
        snprintf(val, sizeof val, "%.*s", (int)(ok - start), start);
        snprintf(tail, sizeof tail, "%s", ok + 3);
        snprintf(ok, sizeof resp - (size_t)(ok - resp), ", want %s, no%s", val, tail);
        CHECK(check_trace(&pr, resp, &n_try) == -1, "false verdict accepted:\n%s", resp);
    }
}

/* The labels: a careful trace always passes the hidden tests, a hasty or slipping one never
   does, and world_score_text agrees with an independent re-run of the code. The share of wrong
   traces follows the error rate. */
static void test_error_labels(void) {
    int s, wrong = 0, n = 2000;
    char resp[8192];
    distill_rng r;
    distill_rng_seed(&r, 9);
    for (s = 0; s < n; s++) {
        world_problem pr;
        world_program fin;
        world_teacher_kind kind;
        int hasty = distill_rng_uniform(&r) < 0.3, passed, i, indep = 0;
        world_generate(&pr, (uint64_t)s + 100000, 1 + s % 5);
        world_teacher(&pr, (uint64_t)s, hasty, resp, sizeof resp, &fin, &kind);
        passed = world_score_text(resp, strlen(resp), pr.hid, WORLD_N_HIDDEN, NULL, 0);
        for (i = 0; i < WORLD_N_HIDDEN; i++) {
            world_value out;
            if (world_run(&fin, &pr.hid[i].in, &out, NULL, NULL, 0) == 0 && world_value_equal(&out, &pr.hid[i].out)) indep++;
        }
        CHECK(passed == indep, "score %d vs re-run %d", passed, indep);
        CHECK(kind != WORLD_TEACHER_CAREFUL ? passed < WORLD_N_HIDDEN : passed == WORLD_N_HIDDEN, "seed %d kind %d passed %d", s, (int)kind, passed);
        CHECK(hasty || kind == WORLD_TEACHER_CAREFUL, "careful teacher erred");
        wrong += passed < WORLD_N_HIDDEN;
    }
    CHECK(wrong > 0.25 * n && wrong < 0.35 * n, "wrong share %d/%d for error rate 0.3", wrong, n);
}

static void test_extract(void) {
    const char *c;
    size_t n;
    static const char *t1 = "<think>\n```\nsort\n```\n</think>\n```\nsum\n```";
    static const char *t2 = "```\nsort\n```\ntext\n```python\nmax\n```\n";
    static const char *t3 = "<think>\n```\nsort\n```\n</think>\nno code";
    static const char *t4 = "<think>\n</think>\n```\nsum\n```\n```\nmin";   /* unterminated last */
    CHECK(world_extract_code(t1, strlen(t1), &c, &n) && n == 4 && !memcmp(c, "sum\n", 4), "after </think>");
    CHECK(world_extract_code(t2, strlen(t2), &c, &n) && n == 4 && !memcmp(c, "max\n", 4), "last block, tag line skipped");
    CHECK(!world_extract_code(t3, strlen(t3), &c, &n), "code only inside think must not count");
    CHECK(world_extract_code(t4, strlen(t4), &c, &n) && !memcmp(c, "sum", 3), "unterminated fence ignored");
    CHECK(!world_extract_code("", 0, &c, &n), "empty");
    CHECK(!world_extract_code("<think>\nabc", 11, &c, &n), "truncated think");
}

/* A record written by world_write_record, parsed by the JSON part, verified through the public
   verifier entry point. */
static void test_record_roundtrip(void) {
    world_problem pr;
    char resp[8192], reason[256];
    FILE *f;
    char *text;
    size_t len;
    distill_json *rec;
    distill_error err;
    world_generate(&pr, 77, 4);
    world_teacher(&pr, 77, 0, resp, sizeof resp, NULL, NULL);
    f = tmpfile();
    if (!f) SKIP("no tmpfile");
    world_write_record(f, &pr, "x-1", resp, 1.0, 1, "careful");
    len = (size_t)ftell(f);
    rewind(f);
    text = (char *)malloc(len + 1);
    CHECK(fread(text, 1, len, f) == len, "read back");
    fclose(f);
    rec = distill_json_parse(text, len, "record", 1, &err);
    CHECK(rec != NULL, "record is not JSON: %s", rec ? "" : err.msg);
    if (rec) {
        const distill_json *q = distill_json_get(rec, "question"), *d = distill_json_get(rec, "difficulty");
        CHECK(q && q->type == DISTILL_JSON_STRING && !strcmp(q->str, pr.question), "question round trip");
        CHECK(d && d->is_int && d->i64 == 4, "difficulty");
        CHECK(world_verify_text(rec, resp, strlen(resp), reason, sizeof reason) == 1, "teacher fails: %s", reason);
        CHECK(world_verify_text(rec, "```\nlen\n```", 11, reason, sizeof reason) == 0 && reason[0], "len should fail");
        CHECK(world_verify_text(rec, "<think>\nhmm", 11, reason, sizeof reason) == 0 && strstr(reason, "no fenced"), "reason: %s", reason);
        CHECK(world_verify_text(rec, "```\nmapp\n```", 12, reason, sizeof reason) == 0 && strstr(reason, "parse error"), "reason: %s", reason);
        distill_json_free(rec);
    }
    rec = distill_json_parse("{\"question\": \"q\"}", 17, "x", 1, &err);
    if (rec) {
        CHECK(world_verify_text(rec, resp, strlen(resp), reason, sizeof reason) == 0 && strstr(reason, "hidden_tests"), "%s", reason);
        distill_json_free(rec);
    }
    rec = distill_json_parse("{\"hidden_tests\": [{\"input\": \"[1,\", \"output\": \"1\"}]}", 51, "x", 1, &err);
    if (rec) {
        CHECK(world_verify_text(rec, "```\nsum\n```", 11, reason, sizeof reason) == 0 && strstr(reason, "hidden_tests[0]"), "%s", reason);
        distill_json_free(rec);
    }
    free(text);
}


/* The files: eval problems share neither program (the "solution" field) nor statement (the
   question's first line) with any train/direct row; stage 0's file holds no <think>; it holds
   execution rows whose states are the interpreter's, and description rows. Checked by reading
   the files back, independently of the generator's bookkeeping. */
static int first_line_eq(const char *a, const char *b) {
    while (*a && *a != '\n' && *a == *b) { a++; b++; }
    return (*a == 0 || *a == '\n') && (*b == 0 || *b == '\n');
}
static void test_files_disjoint(void) {
    static const char *const files[3] = {"build/test_world_files/train.jsonl", "build/test_world_files/direct.jsonl",
                                         "build/test_world_files/eval.jsonl"};
    world_gen_options o = world_gen_options_default();
    world_gen_summary sum;
    distill_error err;
    distill_json *rows[3][1200];
    int n[3] = {0, 0, 0}, f, i, j, shared_prog = 0, shared_stmt = 0, think = 0, exec_ok = 0, exec_rows = 0, desc_rows = 0;
    o.n_train = 300; o.n_direct = 300; o.n_eval = 100;
    CHECK(system("mkdir -p build/test_world_files") == 0, "mkdir");
    CHECK(world_write_files("build/test_world_files", &o, &sum, &err) == 0, "%s", err.msg);
    for (f = 0; f < 3; f++) {
        distill_line_reader *rd = distill_line_reader_open(files[f], 0, &err);
        const char *line;
        size_t len;
        int64_t ln;
        CHECK(rd != NULL, "%s", err.msg);
        if (!rd) return;
        while (n[f] < 1200 && distill_line_reader_next(rd, &line, &len, &ln, &err) == 1)
            rows[f][n[f]++] = distill_json_parse(line, len, files[f], (int)ln, &err);
        distill_line_reader_close(rd);
    }
    CHECK(n[0] == 300 && n[1] == 900 && n[2] == 100, "rows %d %d %d", n[0], n[1], n[2]);
    for (i = 0; i < n[2]; i++) {
        const distill_json *es = distill_json_get(rows[2][i], "solution"), *eq = distill_json_get(rows[2][i], "question");
        for (f = 0; f < 2; f++)
            for (j = 0; j < n[f]; j++) {
                const distill_json *ts = distill_json_get(rows[f][j], "solution"), *tq = distill_json_get(rows[f][j], "question");
                shared_prog += !strcmp(es->str, ts->str);
                shared_stmt += first_line_eq(eq->str, tq->str);
            }
    }
    CHECK(shared_prog == 0 && shared_stmt == 0, "eval shares %d programs and %d statements with training rows", shared_prog, shared_stmt);
    for (j = 0; j < n[1]; j++) {
        const distill_json *r = distill_json_get(rows[1][j], "response"), *k = distill_json_get(rows[1][j], "teacher");
        const distill_json *sol = distill_json_get(rows[1][j], "solution"), *q = distill_json_get(rows[1][j], "question");
        think += strstr(r->str, "<think>") != NULL;
        if (!strcmp(k->str, "execution")) {
            /* "Run this program on IN:" ... the response's states must be the interpreter's */
            world_program p;
            world_value in, out, trace[WORLD_MAX_OPS];
            char want[1024], e[128], *colon = strstr(q->str, ":\n");
            size_t m = 0;
            int s2;
            exec_rows++;
            if (colon && world_parse(sol->str, sol->len, &p, e, sizeof e) == 0 &&
                world_parse_value(q->str + 20, (size_t)(colon - q->str - 20), &in, e, sizeof e) == 0 &&
                world_run(&p, &in, &out, trace, NULL, 0) == 0) {
                m += world_format_value(&in, want, sizeof want);
                for (s2 = 0; s2 < p.n; s2++) { m += (size_t)snprintf(want + m, sizeof want - m, " -> "); m += world_format_value(&trace[s2], want + m, sizeof want - m); }
                exec_ok += !strcmp(want, r->str);
            }
        }
        desc_rows += !strcmp(k->str, "describe");
    }
    CHECK(think == 0, "%d stage-0 rows hold <think>", think);
    CHECK(exec_rows == 300 && exec_ok == 300, "%d of %d execution rows match the interpreter", exec_ok, exec_rows);
    CHECK(desc_rows == 300, "%d description rows", desc_rows);
    for (f = 0; f < 3; f++) for (i = 0; i < n[f]; i++) distill_json_free(rows[f][i]);
}

int main(void) {
    RUN(test_semantics);
    RUN(test_parse_errors);
    RUN(test_fuzz);
    RUN(test_generator_deterministic);
    RUN(test_generator_levels);
    RUN(test_teacher_traces_consistent);
    RUN(test_trace_checker_catches_tampering);
    RUN(test_error_labels);
    RUN(test_extract);
    RUN(test_record_roundtrip);
    RUN(test_files_disjoint);
    return harness_done("test_world");
}
