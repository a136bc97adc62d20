/* The option layer of the distill tool (examples/cli/cli_opts.c), through ./distill.

   The option tables are read from the sources here (every `static const cli_opt NAME[] = {`
   block in examples/cli and examples/valley), not asked of the tool, and mapped to commands by
   the list below: a table this test does not know is a failure. Then:
   1. every command's --help lists every flag its table holds;
   2. bad numbers (text, fractions, overflow, every numeric flag's bounds +- 1), unknown flags
      (with a near suggestion), missing required flags: exit 2 and one line on stderr naming
      the flag (and the range, or the accepted values);
   3. --config and flags give the same run (the recorded OUT/train-config.json and the losses),
      a flag overrides the same key of the file, unknown keys and wrong types name file and key,
      the sweep's older snake_case config keys still load;
   4. distill train's OUT/loss.svg: an SVG document whose train-loss and LR lines have one point
      per line of OUT/metrics.jsonl and whose eval markers are the logged evaluations; redrawn
      at checkpoints while the run goes on, and after a resume or a SIGTERM. */
#include "harness.h"
#include "cli_harness.h"
#include "../distill.h"   /* DISTILL_VERSION only (no implementation) */
#include <string.h>
#include <stdlib.h>
#include <math.h>

#define D "build/test_options"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *s;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    s = (char *)malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

/* Run `./distill ARGS` with stderr to D/err.txt; its exit status. *err gets stderr (free it). */
static int run(const char *args, char **err) {
    char cmd[4096];
    int rc;
    snprintf(cmd, sizeof cmd, "./distill %s > " D "/out.txt 2> " D "/err.txt", args);
    rc = sh(cmd);
    if (err) *err = slurp(D "/err.txt");
    return rc;
}

/* ---- the tables, from the sources --------------------------------------------------------- */
typedef struct { char name[48]; char macro[24]; double lo, hi; int required; } opt_row;
typedef struct { char table[48]; opt_row rows[128]; int n; } opt_table;
static opt_table tables[32];
static int n_tables;

/* "1 << 20", "1e12", "18446744073709551615.0", "-1" */
static double eval_bound(const char *s) {
    const char *sh_ = strstr(s, "<<");
    if (sh_) return ldexp(strtod(s, NULL), atoi(sh_ + 2));
    return strtod(s, NULL);
}

/* The i-th top-level comma-separated argument of the macro call starting at p (after '('). */
static void macro_arg(const char *p, int i, char *out, size_t cap) {
    int depth = 0, k = 0, in_str = 0;
    size_t n = 0;
    for (; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1]) { if (k == i && n + 2 < cap) { out[n++] = p[0]; out[n++] = p[1]; } p++; continue; }
            if (*p == '"') in_str = 0;
        } else if (*p == '"') in_str = 1;
        else if (*p == '(') depth++;
        else if (*p == ')') { if (depth == 0) break; depth--; }
        else if (*p == ',' && depth == 0) { k++; continue; }
        if (k == i && n + 1 < cap) out[n++] = *p;
    }
    out[n] = 0;
}

static void read_tables(const char *path) {
    char *src = slurp(path), *p;
    if (!src) return;
    for (p = src; (p = strstr(p, "static const cli_opt ")) != NULL;) {
        opt_table *t = &tables[n_tables];
        char *end = strstr(p, "\n};"), *q;
        int k = 0;
        p += strlen("static const cli_opt ");
        while (p[k] && p[k] != '[' && k < 47) { t->table[k] = p[k]; k++; }
        t->table[k] = 0;
        t->n = 0;
        if (!end) break;
        for (q = strstr(p, "CLI_"); q && q < end; q = strstr(q + 4, "CLI_")) {
            opt_row *r = &t->rows[t->n];
            char arg[256];
            int m = 0;
            while (q[m] && q[m] != '(' && m < 23) { r->macro[m] = q[m]; m++; }
            r->macro[m] = 0;
            if (q[m] != '(' || !strcmp(r->macro, "CLI_SECTION") || !strcmp(r->macro, "CLI_T") || t->n == 127) continue;
            macro_arg(q + m + 1, 0, arg, sizeof arg);
            if (arg[0] != '"') continue;
            snprintf(r->name, sizeof r->name, "%.*s", (int)strlen(arg) - 2, arg + 1);
            r->required = strstr(r->macro, "_REQ") != NULL;
            r->lo = r->hi = 0;
            if (!strcmp(r->macro, "CLI_INT") || !strcmp(r->macro, "CLI_INT64") || !strcmp(r->macro, "CLI_U64") ||
                !strcmp(r->macro, "CLI_DBL") || !strcmp(r->macro, "CLI_INTS")) {
                macro_arg(q + m + 1, 2, arg, sizeof arg);
                r->lo = eval_bound(arg);
                macro_arg(q + m + 1, 3, arg, sizeof arg);
                r->hi = eval_bound(arg);
            }
            t->n++;
        }
        n_tables++;
        p = end;
    }
    free(src);
}

/* Which command each table belongs to (the arguments before the flags). */
static const struct { const char *table, *cmd; } table_cmd[] = {
    {"train_options", "train"},
    {"bench_options", "bench train"},
    {"data_options", "data stats"},
    {"eval_options", "eval"},
    {"export_options", "export"},
    {"import_options", "import"},
    {"info_options", "info"},
    {"json_options", "json"},
    {"generate_options", "generate"},
    {"tok_train_options", "tokenizer train"},
    {"tok_codec_options", "tokenizer encode"},
    {"world_generate_options", "world generate"},
    {"world_verify_options", "world verify"},
    {"world_show_options", "world show"},
    {"world_run_options", "world run"},
    {"sweep_options", "sweep"},
};

static const char *cmd_of(const char *table) {
    size_t i;
    for (i = 0; i < sizeof table_cmd / sizeof table_cmd[0]; i++)
        if (!strcmp(table_cmd[i].table, table)) return table_cmd[i].cmd;
    return NULL;
}

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), i, j, d[64][64];
    for (i = 0; i <= la; i++) d[i][0] = i;
    for (j = 0; j <= lb; j++) d[0][j] = j;
    for (i = 1; i <= la; i++)
        for (j = 1; j <= lb; j++) {
            int x = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < x) x = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < x) x = d[i][j - 1] + 1;
            d[i][j] = x;
        }
    return d[la][lb];
}

/* "--name" (one-letter aliases: "-o") appears in text as a whole flag */
static int has_flag(const char *text, const char *name, int short_alias) {
    char f[64];
    const char *p;
    size_t n;
    snprintf(f, sizeof f, "%s%s", short_alias ? "-" : "--", name);
    n = strlen(f);
    for (p = text; (p = strstr(p, f)) != NULL; p++) {
        char c = p[n];
        if ((p == text || p[-1] == ' ' || p[-1] == '\n' || p[-1] == '[' || p[-1] == '(') &&
            !(c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return 1;
    }
    return 0;
}

static void load_all_tables(void) {
    static const char *const files[] = {
        "examples/cli/cli_train.c", "examples/cli/cli_bench.c", "examples/cli/cli_data.c", "examples/cli/cli_eval.c",
        "examples/cli/cli_export.c", "examples/cli/cli_import.c", "examples/cli/cli_info.c", "examples/cli/cli_json.c",
        "examples/cli/cli_generate.c", "examples/cli/cli_tokenizer.c", "examples/valley/cli_world.c",
        "examples/valley/sweep.c"};
    size_t i;
    if (n_tables) return;
    for (i = 0; i < sizeof files / sizeof files[0]; i++) read_tables(files[i]);
}

/* 1. --help lists every flag of the table; every command of `distill --help` has a table. */
static void test_help_lists_every_flag(void) {
    int t, i, total = 0;
    char *top, args[256];
    size_t k;
    if (!have_cli()) SKIP("./distill not built (make)");
    load_all_tables();
    CHECK(n_tables >= 16, "found %d option tables in the sources", n_tables);
    for (t = 0; t < n_tables; t++) {
        const char *cmd = cmd_of(tables[t].table);
        char *help = NULL;
        CHECK(cmd != NULL, "option table %s belongs to no command this test knows", tables[t].table);
        if (!cmd) continue;
        snprintf(args, sizeof args, "%s --help", cmd);
        CHECK(run(args, NULL) == 0, "distill %s exits 0", args);
        help = slurp(D "/out.txt");
        CHECK(help && strstr(help, "exit status: 0 ok, 1 failure, 2 usage error"), "distill %s: exit codes documented", args);
        for (i = 0; help && i < tables[t].n; i++, total++)
            CHECK(has_flag(help, tables[t].rows[i].name, !strcmp(tables[t].rows[i].macro, "CLI_ALIAS") && !tables[t].rows[i].name[1]),
                  "distill %s: --help lacks %s", cmd, tables[t].rows[i].name);
        free(help);
    }
    CHECK(total > 150, "only %d flags in the tables", total);
    CHECK(run("--help", NULL) == 0, "distill --help");
    top = slurp(D "/out.txt");
    CHECK(top && strstr(top, "exit status: 0 ok, 1 failure, 2 usage error") && strstr(top, "--config"), "distill --help: exit codes, --config");
    for (k = 0; k < sizeof table_cmd / sizeof table_cmd[0]; k++) {
        char first[32];
        int found = 0;
        sscanf(table_cmd[k].cmd, "%31s", first);
        for (t = 0; t < n_tables; t++) found |= !strcmp(tables[t].table, table_cmd[k].table);
        CHECK(found, "table %s (distill %s) not found in the sources", table_cmd[k].table, table_cmd[k].cmd);
        CHECK(top && strstr(top, first), "distill --help does not list %s", first);
    }
    free(top);
    CHECK(run("--version", NULL) == 0, "distill --version");
    top = slurp(D "/out.txt");
    CHECK(top && !strncmp(top, "distill " DISTILL_VERSION "\n", strlen("distill " DISTILL_VERSION "\n")) && count_lines(top) == 1, "--version: %s", top ? top : "(none)");
    free(top);
}

/* exit 2, one line on stderr, holding every needle */
static void expect_usage_error(const char *args, const char *n1, const char *n2) {
    char *err = NULL;
    int rc = run(args, &err);
    CHECK(rc == 2, "distill %s: exit %d, not 2", args, rc);
    CHECK(err && count_lines(err) == 1, "distill %s: stderr is not one line: %s", args, err ? err : "(none)");
    CHECK(err && (!n1 || strstr(err, n1)) && (!n2 || strstr(err, n2)), "distill %s: message lacks '%s' / '%s': %s", args,
          n1 ? n1 : "", n2 ? n2 : "", err ? err : "(none)");
    free(err);
}

/* 2. bad values, unknown flags, missing required flags */
static void test_bad_input(void) {
    int t, i;
    char args[512], flag[64], range[128];
    if (!have_cli()) SKIP("./distill not built (make)");
    load_all_tables();
    expect_usage_error("train --steps abc", "--steps", "[0, 1000000000000]");
    expect_usage_error("train --steps 1.5", "--steps", "'1.5'");
    expect_usage_error("train --steps 99999999999999999999", "--steps", "[0, ");
    expect_usage_error("train --steps -3", "--steps", "[0, ");
    expect_usage_error("train --lr x", "--lr", "a number in [");
    expect_usage_error("train --lr 1e999", "--lr", "a number in [");
    expect_usage_error("train --seed 18446744073709551616", "--seed", "18446744073709551615");
    expect_usage_error("train --loss everything", "--loss", "assistant|last|all");
    expect_usage_error("train --kd-loss kl", "--kd-loss", "fkl|rkl|jsd");
    expect_usage_error("export m.dstl --format onnx -o x", "--format", "safetensors|llama2c");
    expect_usage_error("train --max-sq 5", "unknown option '--max-sq'", "did you mean --max-seq?");
    expect_usage_error("train --data d --tokenizer t --out o --max-sq 5", "did you mean --max-seq?", NULL);
    expect_usage_error("train --steps", "--steps needs a value", NULL);
    expect_usage_error("train", "--data and --tokenizer are required", NULL);
    expect_usage_error("train --data d --tokenizer t", "--out", "required");
    expect_usage_error("eval --k 1,x --generations g", "--k", NULL);
    expect_usage_error("sweep --preset smoke --sizes 16,8", "--sizes", NULL);
    expect_usage_error("sweep --data x.jsonl", "required", NULL);
    expect_usage_error("trian", "did you mean train?", NULL);
    /* every numeric flag just outside each bound; every table's required flags; a misspelling */
    for (t = 0; t < n_tables; t++) {
        const char *cmd = cmd_of(tables[t].table);
        const char *req[8];
        int n_req = 0, longest = -1;
        if (!cmd) continue;
        for (i = 0; i < tables[t].n; i++) {
            const opt_row *r = &tables[t].rows[i];
            int is_int = strcmp(r->macro, "CLI_DBL") != 0;
            if (r->required && n_req < 8) req[n_req++] = r->name;
            if (strcmp(r->macro, "CLI_ALIAS") && (longest < 0 || strlen(r->name) > strlen(tables[t].rows[longest].name)))
                longest = i;
            if (strcmp(r->macro, "CLI_INT") && strcmp(r->macro, "CLI_INT64") && strcmp(r->macro, "CLI_U64") &&
                strcmp(r->macro, "CLI_DBL") && strcmp(r->macro, "CLI_INTS"))
                continue;
            snprintf(flag, sizeof flag, "--%s", r->name);
            if (r->hi < 1e15) {
                if (is_int) snprintf(args, sizeof args, "%s --%s %.0f", cmd, r->name, r->hi + 1);
                else snprintf(args, sizeof args, "%s --%s %.17g", cmd, r->name, r->hi * 2 + 1);
                expect_usage_error(args, flag, "[");
            }
            if (is_int) snprintf(args, sizeof args, "%s --%s %.0f", cmd, r->name, r->lo - 1);
            else snprintf(args, sizeof args, "%s --%s %.17g", cmd, r->name, r->lo - 1);
            snprintf(range, sizeof range, "[%.0f, ", r->lo);
            expect_usage_error(args, flag, is_int ? range : "[");
            if (is_int && strcmp(r->macro, "CLI_INTS")) {
                snprintf(args, sizeof args, "%s --%s 2.5", cmd, r->name);
                expect_usage_error(args, flag, "an integer");
            }
            snprintf(args, sizeof args, "%s --%s abc", cmd, r->name);
            expect_usage_error(args, flag, "[");
        }
        if (n_req) {   /* nothing given: one line naming every required flag of the table */
            char *err = NULL;
            int rc = run(cmd, &err);
            CHECK(rc == 2 && err && count_lines(err) == 1 && strstr(err, "required"), "distill %s: exit %d: %s", cmd, rc,
                  err ? err : "(none)");
            for (i = 0; err && i < n_req; i++) CHECK(strstr(err, req[i]) != NULL, "distill %s: message lacks --%s: %s", cmd, req[i], err);
            free(err);
        }
        if (longest >= 0 && strlen(tables[t].rows[longest].name) >= 5) {   /* a typo: the last letter dropped */
            const char *name = tables[t].rows[longest].name;
            char typo[64], *err = NULL, *sugg;
            int rc;
            snprintf(typo, sizeof typo, "%.*s", (int)strlen(name) - 1, name);
            snprintf(args, sizeof args, "%s --%s 1", cmd, typo);
            rc = run(args, &err);
            sugg = err ? strstr(err, "did you mean --") : NULL;
            CHECK(rc == 2 && err && count_lines(err) == 1 && sugg, "distill %s: exit %d: %s", args, rc, err ? err : "(none)");
            if (sugg) {
                char got[64];
                sscanf(sugg + strlen("did you mean --"), "%63[a-z0-9-]", got);
                CHECK(edit_distance(got, typo) <= 1, "distill %s suggests --%s", args, got);
            }
            free(err);
        }
    }
    expect_usage_error("json", "FILE", "required");
    expect_usage_error("info", "FILE", "required");
    expect_usage_error("world run x", "PROGRAM", "required");
    expect_usage_error("import --out x.dstl", "FILE", "required");
}

/* ---- a tiny training setup ----------------------------------------------------------------- */
static int setup_data(void) {
    FILE *f;
    int i;
    if (sh("rm -rf " D " && mkdir -p " D) != 0) return -1;
    f = fopen(D "/d.jsonl", "w");
    if (!f) return -1;
    for (i = 0; i < 24; i++)
        fprintf(f, "{\"prompt\": \"Add %d and %d.\", \"completion\": \"%d plus %d is %d.\"}\n", i, i + 1, i, i + 1, 2 * i + 1);
    fclose(f);
    f = fopen(D "/e.jsonl", "w");
    if (!f) return -1;
    for (i = 0; i < 6; i++) fprintf(f, "{\"prompt\": \"Add %d and 2.\", \"completion\": \"%d plus 2 is %d.\"}\n", i, i, i + 2);
    fclose(f);
    f = fopen(D "/t.jsonl", "w");
    if (!f) return -1;
    for (i = 0; i < 24; i++) fprintf(f, "{\"text\": \"Add %d and %d. %d plus %d is %d.\"}\n", i, i + 1, i, i + 1, 2 * i + 1);
    fclose(f);
    return sh("./distill tokenizer train --data " D "/t.jsonl --vocab-size 300 --out " D "/tok.txt 2> /dev/null");
}

#define MODEL_FLAGS "--dim 16 --layers 1 --heads 2 --kv-heads 1 --hidden 32 --threads 1 --quiet"

/* the "loss" values of a metrics.jsonl, concatenated */
static void losses(const char *path, char *out, size_t cap) {
    char *s = slurp(path), *p;
    size_t n = 0;
    out[0] = 0;
    for (p = s; p && (p = strstr(p, "\"loss\": ")) != NULL; p += 8) {
        int k = 0;
        while (p[8 + k] && p[8 + k] != ',' && n + 1 < cap) out[n++] = p[8 + k++];
        if (n + 1 < cap) out[n++] = ' ';
        out[n] = 0;
    }
    free(s);
}

/* train-config.json without its "out" line */
static char *recorded(const char *dir) {
    char path[256], *s, *o, *e;
    snprintf(path, sizeof path, "%s/train-config.json", dir);
    s = slurp(path);
    if (s && (o = strstr(s, "\n  \"out\": ")) != NULL && (e = strchr(o + 1, '\n')) != NULL) memmove(o, e, strlen(e) + 1);
    return s;
}

/* 3. --config and flags */
static void test_config_and_flags(void) {
    FILE *f;
    char la[4096], lb[4096], *a, *b, *err = NULL;
    int rc;
    if (!have_cli()) SKIP("./distill not built (make)");
    REQUIRE(setup_data() == 0, "cannot set up " D);
    CHECK(sh("./distill train --data " D "/d.jsonl --tokenizer " D "/tok.txt --out " D "/A --steps 3 --lr 0.002 "
             "--batch-rows 4 --max-seq 64 --seed 7 --template plain --filter 'prompt != \"x\"' " MODEL_FLAGS " 2> " D "/errA.txt") == 0,
          "train with flags");
    f = fopen(D "/cfg.json", "w");
    REQUIRE(f != NULL, "cannot write a config");
    fprintf(f, "{\"data\": \"" D "/d.jsonl\", \"tokenizer\": \"" D "/tok.txt\", \"steps\": 3, \"lr\": 0.002, \"batch-rows\": 4,\n"
               " \"max_seq\": 64, \"seed\": 7, \"template\": \"plain\", \"filter\": [\"prompt != \\\"x\\\"\"],\n"
               " \"dim\": 16, \"layers\": 1, \"heads\": 2, \"kv-heads\": 1, \"hidden\": 32, \"threads\": 1, \"quiet\": true}\n");
    fclose(f);
    CHECK(sh("./distill train --config " D "/cfg.json --out " D "/B 2> " D "/errB.txt") == 0, "train with --config");
    a = recorded(D "/A");
    b = recorded(D "/B");
    CHECK(a && b && !strcmp(a, b), "the recorded settings differ:\n%s\n---\n%s", a ? a : "(none)", b ? b : "(none)");
    CHECK(a && strstr(a, "\"steps\": 3") && strstr(a, "\"max-seq\": 64") && strstr(a, "\"lr\": 0.002"), "recorded: %s", a ? a : "");
    free(a);
    free(b);
    losses(D "/A/metrics.jsonl", la, sizeof la);
    losses(D "/B/metrics.jsonl", lb, sizeof lb);
    CHECK(la[0] && !strcmp(la, lb), "losses differ: %s / %s", la, lb);
    /* the recorded file repeats the run */
    CHECK(sh("./distill train --config " D "/A/train-config.json --out " D "/A2 2> /dev/null") == 0, "train --config train-config.json");
    losses(D "/A2/metrics.jsonl", lb, sizeof lb);
    CHECK(!strcmp(la, lb), "the recorded config does not repeat the run: %s / %s", la, lb);
    /* a flag wins over the same key of the file */
    CHECK(sh("./distill train --config " D "/cfg.json --steps 2 --out " D "/C 2> /dev/null") == 0, "flag over config");
    a = recorded(D "/C");
    b = slurp(D "/C/metrics.jsonl");
    CHECK(a && strstr(a, "\"steps\": 2") && count_lines(b) == 2, "--steps 2 after a config with steps 3: %s", a ? a : "");
    free(a);
    free(b);
    /* unknown keys and wrong types name the file and the key */
    f = fopen(D "/bad1.json", "w");
    fprintf(f, "{\"data\": \"x\",\n \"max_sq\": 5}\n");
    fclose(f);
    expect_usage_error("train --config " D "/bad1.json", D "/bad1.json:2", "'max_sq'");
    f = fopen(D "/bad2.json", "w");
    fprintf(f, "{\"steps\": \"abc\"}\n");
    fclose(f);
    expect_usage_error("train --config " D "/bad2.json", D "/bad2.json", "'steps' expects an integer");
    f = fopen(D "/bad3.json", "w");
    fprintf(f, "{\"filter\": 3}\n");
    fclose(f);
    expect_usage_error("train --config " D "/bad3.json", "'filter' expects a string or an array of strings", "got 3");
    f = fopen(D "/bad4.json", "w");
    fprintf(f, "{\"steps\": 2.5}\n");
    fclose(f);
    expect_usage_error("train --config " D "/bad4.json", "'steps'", "2.5");
    f = fopen(D "/bad5.json", "w");
    fprintf(f, "{\"quiet\": \"yes\"}\n");
    fclose(f);
    expect_usage_error("train --config " D "/bad5.json", "'quiet'", "true or false");
    expect_usage_error("train --config " D "/missing.json", "missing.json", NULL);
    /* the sweep: the committed config (snake_case keys) loads, and means what the flag names mean */
    rc = run("sweep --config docs/valley-run/sweep-config.json --out " D "/sw --plan", &err);
    CHECK(rc == 0, "docs/valley-run/sweep-config.json: exit %d: %s", rc, err ? err : "");
    free(err);
    a = slurp(D "/out.txt");
    {
        char *cfg = slurp("docs/valley-run/sweep-config.json"), *p;
        int in_key = 0;
        for (p = cfg; p && *p; p++) {   /* the same file with the flag names: '_' -> '-' in keys */
            if (*p == '"') { in_key = !in_key && (p[-1] == '{' || p[-1] == ' ' || p[-1] == '\n'); continue; }
            if (in_key && *p == '_' ) *p = '-';
        }
        f = fopen(D "/sweep-flagnames.json", "w");
        if (f && cfg) fputs(cfg, f);
        if (f) fclose(f);
        CHECK(cfg && strstr(cfg, "\"max-seq\": 320") && !strstr(cfg, "max_seq"), "rewritten keys");
        free(cfg);
    }
    CHECK(run("sweep --config " D "/sweep-flagnames.json --out " D "/sw --plan", NULL) == 0, "flag-name sweep config");
    b = slurp(D "/out.txt");
    CHECK(a && b && !strcmp(a, b) && strstr(a, "55 runs"), "snake_case and flag-name configs plan differently");
    free(a);
    free(b);
    CHECK(run("sweep --preset smoke --seq 64 --plan --out " D "/sw2", NULL) == 0, "the alias --seq");
}

/* count "x,y" pairs in the i-th polyline's points (0-based); -1 if none */
static int polyline_points(const char *svg, int i) {
    const char *p = svg, *q;
    int n = 0;
    for (;;) {
        p = strstr(p, "<polyline");
        if (!p) return -1;
        if (i-- == 0) break;
        p++;
    }
    p = strstr(p, "points=\"");
    if (!p) return -1;
    p += 8;
    q = strchr(p, '"');
    if (!q) return -1;
    for (; p < q; p++) n += *p == ',';
    return n;
}

/* the document is balanced: every '<' closes with '>', <svg> and <g> open as often as they close */
static int svg_wellformed(const char *s) {
    const char *p;
    int g = 0, lt = 0;
    if (strncmp(s, "<svg", 4) != 0 || !strstr(s, "</svg>\n") || strstr(s, "</svg>\n")[7] != 0) return 0;
    for (p = s; *p; p++) {
        if (*p == '<') { if (lt) return 0; lt = 1; if (!strncmp(p, "<g ", 3) || !strncmp(p, "<g>", 3)) g++; if (!strncmp(p, "</g>", 4)) g--; }
        else if (*p == '>') { if (!lt) return 0; lt = 0; }
        if (g < 0) return 0;
    }
    return !lt && g == 0;
}

/* 4. loss.svg */
static void test_loss_svg(void) {
    char *svg, *metrics;
    int n, n_eval = 0;
    const char *p;
    if (!have_cli()) SKIP("./distill not built (make)");
    if (setup_data() != 0) SKIP("no tokenizer");
    CHECK(sh("./distill train --data " D "/d.jsonl --eval-data " D "/e.jsonl --eval-every 2 --tokenizer " D "/tok.txt --out " D "/P "
             "--steps 5 --save-every 2 --lr 0.003 --batch-rows 4 --max-seq 64 " MODEL_FLAGS " 2> /dev/null") == 0, "train");
    svg = slurp(D "/P/loss.svg");
    metrics = slurp(D "/P/metrics.jsonl");
    REQUIRE(svg && metrics, "no loss.svg or metrics.jsonl");
    n = count_lines(metrics);
    for (p = metrics; (p = strstr(p, "\"eval_loss\"")) != NULL; p++) n_eval++;
    CHECK(n == 5 && n_eval == 3, "metrics: %d lines, %d evaluations", n, n_eval);
    CHECK(svg_wellformed(svg), "loss.svg is not a balanced SVG document");
    CHECK(polyline_points(svg, 0) == n, "train loss: %d points for %d logged steps", polyline_points(svg, 0), n);
    CHECK(polyline_points(svg, 1) == n_eval, "eval loss: %d points for %d evaluations", polyline_points(svg, 1), n_eval);
    CHECK(polyline_points(svg, 2) == n, "lr: %d points for %d logged steps", polyline_points(svg, 2), n);
    CHECK(polyline_points(svg, 3) == -1, "more lines than train loss, eval loss, lr");
    CHECK(strstr(svg, "learning rate") && strstr(svg, "train loss") && strstr(svg, "eval loss"), "labels");
    free(svg);
    free(metrics);
    /* resumed: the plot holds the whole history of metrics.jsonl */
    CHECK(sh("./distill train --data " D "/d.jsonl --eval-data " D "/e.jsonl --eval-every 2 --tokenizer " D "/tok.txt --out " D "/P "
             "--steps 7 --save-every 2 --lr 0.003 --batch-rows 4 --max-seq 64 --resume " MODEL_FLAGS " 2> /dev/null") == 0, "resume");
    svg = slurp(D "/P/loss.svg");
    metrics = slurp(D "/P/metrics.jsonl");
    n = count_lines(metrics);
    CHECK(n == 7 && svg && polyline_points(svg, 0) == n && polyline_points(svg, 2) == n, "after resume: %d lines, %d points", n,
          svg ? polyline_points(svg, 0) : -1);
    free(svg);
    free(metrics);
}

/* 5. the plot is drawn at checkpoints, while the run goes on: a long run is watched until
   loss.svg appears, which is read while the run still trains; then SIGTERM stops it (it saves
   and exits 143) and the final plot has every logged step. */
static void test_loss_svg_during_run(void) {
    char *svg = NULL;
    int i, pts = -1, rc;
    if (!have_cli()) SKIP("./distill not built (make)");
    if (setup_data() != 0) SKIP("no tokenizer");
    rc = sh("./distill train --data " D "/d.jsonl --tokenizer " D "/tok.txt --out " D "/R --steps 1000000 --save-every 3 "
            "--batch-rows 4 --max-seq 64 " MODEL_FLAGS " > /dev/null 2>&1 & echo $! > " D "/R.pid");
    REQUIRE(rc == 0, "cannot start distill train");
    /* only the checkpoint hook draws the plot before the run ends */
    for (i = 0; i < 400 && sh("test -f " D "/R/loss.svg") != 0; i++) sh("sleep 0.05");
    CHECK(i < 400, "no loss.svg after 20 s of training");
    svg = slurp(D "/R/loss.svg");
    if (svg) pts = polyline_points(svg, 0);
    CHECK(sh("kill -0 $(cat " D "/R.pid)") == 0, "the run ended by itself");
    CHECK(svg && pts >= 3, "loss.svg during the run has %d points (a checkpoint every 3 steps)", pts);
    CHECK(svg && svg_wellformed(svg), "loss.svg during the run is not a whole SVG document");
    free(svg);
    sh("kill -TERM $(cat " D "/R.pid); while kill -0 $(cat " D "/R.pid) 2> /dev/null; do sleep 0.05; done");
    svg = slurp(D "/R/loss.svg");
    {
        char *m = slurp(D "/R/metrics.jsonl");
        CHECK(svg && m && polyline_points(svg, 0) == count_lines(m), "after SIGTERM: %d points, %d logged steps",
              svg ? polyline_points(svg, 0) : -1, count_lines(m));
        free(m);
    }
    free(svg);
}

int main(void) {
    sh("mkdir -p " D);
    RUN(test_help_lists_every_flag);
    RUN(test_bad_input);
    RUN(test_config_and_flags);
    RUN(test_loss_svg);
    RUN(test_loss_svg_during_run);
    return harness_done("test_options");
}
