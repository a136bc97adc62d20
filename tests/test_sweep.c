/* distill sweep end to end, through the ./distill tool.

   1. The generic path on a dataset in a schema the world does not write (a tiny "colour of item
      k" task with <think> traces, fields problem/solution/level/verdict; eval: id/problem/answer/difficulty), a verifier that is a
      shell script (tests/sweep_verifier.sh), stage 0 from --init (a safetensors file written
      here) and from --stage0-data. Every run's pass@1 in results.csv is checked against a
      recomputation from its generations.jsonl that applies the task's rule itself (the answer
      occurs in the text), and each sample's stored verdict against the same rule.
   2. --second-pool disjoint: no second-stage manifest shares a row with any sweep manifest (of
      any seed); a pool too small for --split-size fails before training, with a message.
   3. The world preset (smoke) through the same path: the table's shape, the report, and a killed
      sweep that resumes by reusing finished runs and recreating a missing one identically.
   4. Bad configurations are refused with exit status 2. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "cli_harness.h"
#include <string.h>

#define GEN "build/test_sweep_gen"
#define OUT "build/test_sweep"

static const char *const colours[5] = {"RED", "GREEN", "BLUE", "BLACK", "WHITE"};

static char *read_all(const char *path, size_t *n) {
    distill_error err;
    return (char *)distill_read_file(path, n, &err);
}

/* The task's files: traces (30 % of them "bad": a wrong colour), direct answers, eval problems. */
static int write_task(void) {
    FILE *tr = fopen(GEN "/train.jsonl", "wb"), *di = fopen(GEN "/direct.jsonl", "wb"), *ev = fopen(GEN "/eval.jsonl", "wb");
    int i;
    if (!tr || !di || !ev) { if (tr) fclose(tr); if (di) fclose(di); if (ev) fclose(ev); return -1; }
    for (i = 0; i < 220; i++) {
        int k = (i * 37 + 11) % 400, bad = i % 10 < 3;
        const char *ans = colours[k % 5], *said = bad ? colours[(k + 1) % 5] : ans;
        fprintf(tr, "{\"problem\": \"What colour is item %d?\", \"solution\": \"<think>\\nitem %d: %d mod 5 = %d, so %s\\n</think>\\n\\n```\\n%s\\n```\", "
                    "\"answer\": \"```\\n%s\\n```\", \"level\": \"%s\", \"verdict\": \"%s\"}\n", k, k, k, bad ? (k + 1) % 5 : k % 5, said, said,
                said, k < 200 ? "easy" : "hard", bad ? "bad" : "ok");
    }
    for (i = 0; i < 120; i++) {
        int k = 400 + i;
        fprintf(di, "{\"problem\": \"What colour is item %d?\", \"solution\": \"```\\n%s\\n```\"}\n", k, colours[k % 5]);
    }
    for (i = 0; i < 12; i++) {
        int k = 600 + 7 * i;
        fprintf(ev, "{\"id\": \"q%d\", \"problem\": \"What colour is item %d?\", \"answer\": \"%s\", \"difficulty\": \"%s\"}\n", i, k,
                colours[k % 5], i % 2 ? "hard" : "easy");
    }
    fclose(tr);
    fclose(di);
    fclose(ev);
    return 0;
}

/* needle in text[0..len) (the text may hold NUL bytes: a model can generate them) */
static int contains(const char *text, size_t len, const char *needle) {
    size_t i, m = strlen(needle);
    for (i = 0; i + m <= len; i++) if (!memcmp(text + i, needle, m)) return 1;
    return 0;
}

/* pass@1 of a run recomputed from its generations.jsonl: per problem, the share of samples whose
   text holds the eval record's answer; then the mean over problems. Also checks every stored
   verdict against that rule. -1 when the file is unreadable. */
static double recompute_pass1(const char *gens, int *bad_verdicts, int *samples) {
    distill_error err;
    distill_line_reader *rd = distill_line_reader_open(gens, 0, &err);
    const char *line;
    size_t len;
    int64_t ln;
    int pass[12] = {0}, n[12] = {0}, i, np = 0;
    double sum = 0;
    if (!rd) return -1;
    *bad_verdicts = 0;
    *samples = 0;
    while (distill_line_reader_next(rd, &line, &len, &ln, &err) == 1) {
        distill_json *j = distill_json_parse(line, len, gens, (int)ln, &err);
        const distill_json *q = j ? distill_json_get(j, "question_id") : NULL, *t = j ? distill_json_get(j, "text") : NULL;
        const distill_json *p = j ? distill_json_get(j, "pass") : NULL;
        int qi, ok;
        if (!q || !t || q->type != DISTILL_JSON_STRING || t->type != DISTILL_JSON_STRING || q->str[0] != 'q') {
            distill_json_free(j);
            distill_line_reader_close(rd);
            return -1;
        }
        qi = atoi(q->str + 1);
        if (qi < 0 || qi >= 12) { distill_json_free(j); distill_line_reader_close(rd); return -1; }
        ok = contains(t->str, t->len, colours[(600 + 7 * qi) % 5]);
        if (!p || p->type != (ok ? DISTILL_JSON_TRUE : DISTILL_JSON_FALSE)) (*bad_verdicts)++;
        pass[qi] += ok;
        n[qi]++;
        (*samples)++;
        distill_json_free(j);
    }
    distill_line_reader_close(rd);
    for (i = 0; i < 12; i++) if (n[i]) { sum += (double)pass[i] / n[i]; np++; }
    return np ? sum / np : -1;
}

/* Check every row of results.csv against its run's generations. Returns the number of runs. */
static int check_results(const char *out, int want_samples_per_problem) {
    char path[512], *csv, *p;
    size_t n;
    int runs = 0, col_pass = -1, col_run = -1, col_samples = -1, c;
    snprintf(path, sizeof path, "%s/results.csv", out);
    csv = read_all(path, &n);
    CHECK(csv != NULL, "no %s", path);
    if (!csv) return 0;
    /* header: find the columns */
    {
        char *line = csv, *e = strchr(csv, '\n'), *tok;
        if (e) *e = 0;
        for (c = 0, tok = strtok(line, ","); tok; tok = strtok(NULL, ","), c++) {
            if (!strcmp(tok, "pass_at_1")) col_pass = c;
            if (!strcmp(tok, "run")) col_run = c;
            if (!strcmp(tok, "eval_samples")) col_samples = c;
        }
        p = e ? e + 1 : csv + n;
    }
    CHECK(col_pass >= 0 && col_run >= 0 && col_samples >= 0, "results.csv lacks run/pass_at_1/eval_samples");
    while (col_pass >= 0 && col_run >= 0 && col_samples >= 0 && p < csv + n && *p) {
        char *e = strchr(p, '\n'), *cell[64], gens[512];
        int nc = 0, bad = -1, samples = -1;
        double want;
        if (e) *e = 0;
        cell[nc++] = p;
        for (; *p && nc < 64; p++) if (*p == ',') { *p = 0; cell[nc++] = p + 1; }
        if (nc > col_pass) {
            snprintf(gens, sizeof gens, "%s/runs/%s/generations.jsonl", out, cell[col_run]);
            want = recompute_pass1(gens, &bad, &samples);
            CHECK(want >= 0, "%s: cannot recompute", gens);
            CHECK(fabs(atof(cell[col_pass]) - want) < 1e-4, "%s: pass_at_1 %s, recomputed %.4f", cell[col_run], cell[col_pass], want);
            CHECK(bad == 0, "%s: %d stored verdicts disagree with the task's rule", cell[col_run], bad);
            CHECK(samples == 12 * want_samples_per_problem && atoi(cell[col_samples]) == samples,
                  "%s: %d samples (results say %s)", cell[col_run], samples, cell[col_samples]);
            runs++;
        }
        p = e ? e + 1 : csv + n;
    }
    distill_free(csv);
    return runs;
}

/* The row ids of a manifest. */
static int manifest_ids(const char *path, int64_t *ids, int cap) {
    distill_error err;
    distill_json *j = distill_json_parse_file(path, &err);
    const distill_json *rows = j ? distill_json_get(j, "rows") : NULL;
    int n = 0;
    size_t i;
    if (!rows || rows->type != DISTILL_JSON_ARRAY) { distill_json_free(j); return -1; }
    for (i = 0; i < rows->len && n < cap; i++) ids[n++] = rows->items[i].i64;
    distill_json_free(j);
    return n;
}

/* outcomes.csv (run,decoding,problem_id,difficulty,level,samples,passes): per run, the mean over
   problems of passes / samples (sampled rows) must equal pass@1 recomputed from the generations
   with the task's own rule; manifests/<run>.txt must list the ids of runs/<run>/manifest.json.
   Returns the number of runs checked. */
static int check_outcomes(const char *out, const char *const *runs, int nruns) {
    char path[512], *csv, *p;
    size_t n;
    int r, checked = 0;
    snprintf(path, sizeof path, "%s/outcomes.csv", out);
    csv = read_all(path, &n);
    CHECK(csv != NULL && !strncmp(csv, "run,decoding,problem_id,difficulty,level,samples,passes\n", 56), "%s: missing or bad header", path);
    if (!csv) return 0;
    for (r = 0; r < nruns; r++) {
        double sum = 0, want;
        int probs = 0, bad = -1, samples = -1, nm, nt = 0, same = 1;
        char gens[512], line[256];
        int64_t ids[64];
        FILE *f;
        for (p = strchr(csv, '\n') + 1; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
            char run[64], dec[16], qid[32], diff[32];
            int lvl_len = 0, smp = 0, pas = 0;
            if (sscanf(p, "%63[^,],%15[^,],%31[^,],%31[^,],%n", run, dec, qid, diff, &lvl_len) < 4) continue;
            if (strcmp(run, runs[r]) || strcmp(dec, "sampled")) continue;
            if (sscanf(strchr(p + lvl_len, ',') + 1, "%d,%d", &smp, &pas) != 2 || smp <= 0) continue;
            sum += (double)pas / smp;
            probs++;
        }
        snprintf(gens, sizeof gens, "%s/runs/%s/generations.jsonl", out, runs[r]);
        want = recompute_pass1(gens, &bad, &samples);
        CHECK(probs == 12 && fabs(sum / probs - want) < 1e-9, "%s: outcomes.csv gives %d problems, pass@1 %.4f; recomputed %.4f",
              runs[r], probs, probs ? sum / probs : -1.0, want);
        snprintf(path, sizeof path, "%s/runs/%s/manifest.json", out, runs[r]);
        nm = manifest_ids(path, ids, 64);
        snprintf(path, sizeof path, "%s/manifests/%s.txt", out, runs[r]);
        f = fopen(path, "r");
        if (f) {
            while (fgets(line, sizeof line, f)) { same &= nt < nm && atoll(line) == ids[nt]; nt++; }
            fclose(f);
        }
        CHECK(nm > 0 && nt == nm && same, "%s: %d ids, manifest.json has %d (same: %d)", path, nt, nm, same);
        checked += probs == 12 && nt == nm && same;
    }
    distill_free(csv);
    return checked;
}

#define SWEEP_ARGS "./distill sweep --data " GEN "/train.jsonl --map problem=prompt --map solution=response " \
    "--eval-data " GEN "/eval.jsonl --tokenizer " GEN "/tok.json --verifier-cmd 'sh tests/sweep_verifier.sh' " \
    "--sizes 20,60 --seeds 1,2 --epochs 2 --lr 3e-3 --batch-rows 4 --max-seq 96 --dim 32 --layers 1 --heads 2 " \
    "--kv-heads 1 --hidden 64 --easy 'level == \"easy\"' --hard 'level == \"hard\"' --correct 'verdict == \"ok\"' " \
    "--incorrect 'verdict == \"bad\"' --split-size 8 --second-seeds 2 --eval-n 2 --temperature 1 --k 1,2 " \
    "--max-new-tokens 24 --threads 1"

static void test_generic_sweep(void) {
    distill_error err;
    distill_tokenizer *tok;
    distill_model *m;
    distill_config mc = distill_config_default();
    int runs, s, g, a, b, shared = 0, nsweep = 0;
    int64_t sweep_ids[4][64], ids[64];
    int nsw[4];
    static const char *const sweep_runs[4] = {"s1_n20", "s1_n60", "s2_n20", "s2_n60"};
    static const char *const groups[4] = {"easy", "hard", "correct", "incorrect"};
    if (!have_cli()) { CHECK(0, "./distill is not built"); return; }
    CHECK(sh("rm -rf " GEN " && mkdir -p " GEN) == 0, "cannot make " GEN);
    CHECK(write_task() == 0, "cannot write the task's files");
    CHECK(sh("./distill tokenizer train --data " GEN "/train.jsonl --field solution --vocab-size 300 --pattern none --out "
             GEN "/tok.json 2> " GEN "/tok.log") == 0, "tokenizer training failed (" GEN "/tok.log)");
    /* the user's non-reasoning student, as a safetensors file */
    tok = distill_tokenizer_load(GEN "/tok.json", NULL, &err);
    CHECK(tok != NULL, "tokenizer: %s", err.msg);
    if (!tok) return;
    mc.vocab_size = distill_tokenizer_vocab_size(tok);
    mc.dim = 32; mc.n_layers = 1; mc.n_heads = 2; mc.n_kv_heads = 1; mc.hidden_dim = 64;
    distill_tokenizer_free(tok);
    m = distill_model_create(&mc, 1, 32, 7, &err);
    CHECK(m && sh("mkdir -p " GEN "/init") == 0 && distill_safetensors_save(m, GEN "/init/model.safetensors", &err) == 0,
          "init model: %s", err.msg);
    distill_model_free(m);

    /* stage 0 from --init */
    CHECK(sh(SWEEP_ARGS " --init " GEN "/init/model.safetensors --out " GEN "/A > " GEN "/A.log 2>&1") == 0,
          "the generic sweep with --init failed (" GEN "/A.log)");
    runs = check_results(GEN "/A", 2);
    /* stage 0 + 2 seeds x 2 sizes + 2 seeds x 2 froms x 4 groups */
    CHECK(runs == 1 + 4 + 16, "results.csv has %d runs", runs);
    {
        size_t n;
        char *md = read_all(GEN "/A/results.md", &n), *csv = read_all(GEN "/A/results.csv", &n);
        CHECK(md && strstr(md, "easy minus hard") && strstr(md, "correct minus incorrect") && strstr(md, "paired bootstrap"),
              "results.md lacks the paired comparisons");
        CHECK(csv && strstr(csv, "truncation_rate") && strstr(csv, "ci_low") && strstr(csv, "ci_high") &&
              strstr(csv, "pass_at_2") && strstr(csv, "pass_at_1_easy") && strstr(csv, "eval_problems"),
              "results.csv lacks columns");
        distill_free(md);
        distill_free(csv);
    }

    {
        static const char *const some[3] = {"s1_n20", "s2_n60", "s2_incorrect_fromL"};
        CHECK(check_outcomes(GEN "/A", some, 3) == 3, "outcomes.csv / manifests disagree with the runs");
    }
    {   /* pooled over the 2 seeds: the mean over problems of the seed-mean difference, which (equal
           samples everywhere) is the mean over seeds of the pass@1 differences, recomputed here */
        size_t n;
        char *cmp = read_all(GEN "/A/comparisons.csv", &n), *row = cmp ? strstr(cmp, "\ncorrect minus incorrect,largest,") : NULL;
        double want = 0, d = NAN, lo = NAN, hi = NAN;
        int seeds = 0, probs = 0, bad, smp;
        for (s = 1; s <= 2; s++) {
            char pa[256], pb[256];
            snprintf(pa, sizeof pa, GEN "/A/runs/s%d_correct_fromL/generations.jsonl", s);
            snprintf(pb, sizeof pb, GEN "/A/runs/s%d_incorrect_fromL/generations.jsonl", s);
            want += (recompute_pass1(pa, &bad, &smp) - recompute_pass1(pb, &bad, &smp)) / 2;
        }
        CHECK(row && sscanf(row, "\ncorrect minus incorrect,largest,%d,%d,%lf,%lf,%lf", &seeds, &probs, &d, &lo, &hi) == 5,
              "comparisons.csv lacks the pooled correct/incorrect row");
        CHECK(seeds == 2 && probs == 12 && fabs(d - want) < 1e-6 && lo <= d && d <= hi,
              "pooled correct minus incorrect: %d seeds, %d problems, %.4f [%.4f, %.4f]; recomputed %.4f", seeds, probs, d, lo, hi, want);
        distill_free(cmp);
    }

    /* disjoint pools: no second-stage row was in any sweep subset (of either seed) */
    for (s = 0; s < 4; s++) {
        char p[256];
        snprintf(p, sizeof p, GEN "/A/runs/%s/manifest.json", sweep_runs[s]);
        nsw[s] = manifest_ids(p, sweep_ids[s], 64);
        CHECK(nsw[s] == (s % 2 ? 60 : 20), "%s: %d manifest rows", p, nsw[s]);
        nsweep += nsw[s] > 0;
    }
    for (s = 1; s <= 2; s++)
        for (g = 0; g < 4; g++)
            for (a = 0; a < 2; a++) {
                char p[256];
                int n;
                snprintf(p, sizeof p, GEN "/A/runs/s%d_%s_from%s/manifest.json", s, groups[g], a ? "L" : "0");
                n = manifest_ids(p, ids, 64);
                CHECK(n == 8, "%s: %d rows", p, n);
                for (b = 0; b < n; b++) {
                    int t, q;
                    for (t = 0; t < 4; t++)
                        for (q = 0; q < nsw[t]; q++) shared += ids[b] == sweep_ids[t][q];
                }
            }
    CHECK(nsweep == 4 && shared == 0, "%d second-stage rows were in sweep subsets", shared);

    /* stage 0 trained on --stage0-data, one seed, no second stage; the controls: a token-budget
       arm and the same problems seen as answers only */
    CHECK(sh(SWEEP_ARGS " --stage0-data " GEN "/direct.jsonl --stage0-epochs 2 --seeds 1 --split-size 0 --budget-arm 3000 "
             "--control-map problem=prompt --control-map answer=response --out " GEN "/B > " GEN "/B.log 2>&1") == 0,
          "the generic sweep with --stage0-data failed (" GEN "/B.log)");
    runs = check_results(GEN "/B", 2);
    CHECK(runs == 3 + 2 + 2, "results.csv (stage0-data, controls) has %d runs", runs);
    {
        int64_t sw[64], ctl[64];
        int nsw_ = manifest_ids(GEN "/B/runs/s1_n60/manifest.json", sw, 64), nct = manifest_ids(GEN "/B/runs/s1_n60_direct/manifest.json", ctl, 64);
        distill_json *bj = distill_json_parse_file(GEN "/B/runs/s1_n60_budget/result.json", &err);
        const distill_json *tt = bj ? distill_json_get(bj, "train_tokens") : NULL;
        CHECK(nsw_ == 60 && nct == 60 && !memcmp(sw, ctl, sizeof(int64_t) * 60), "the control did not train on the sweep run's rows");
        /* 3000 tokens, overshooting by less than one batch (4 rows of at most 96 tokens) */
        CHECK(tt && tt->num >= 3000 && tt->num < 3000 + 4 * 96, "budget arm trained on %g tokens", tt ? tt->num : -1.0);
        distill_json_free(bj);
    }

    /* a disjoint pool too small for --split-size: refused before any training */
    CHECK(sh(SWEEP_ARGS " --init " GEN "/init/model.safetensors --split-size 500 --out " GEN "/C > " GEN "/C.log 2>&1") == 1,
          "an impossible --split-size was accepted");
    {
        size_t n;
        char *log = read_all(GEN "/C.log", &n);
        CHECK(log && strstr(log, "pool") && strstr(log, "--split-size"), "no clear message for a small pool");
        CHECK(!log || !strstr(log, "stage0 "), "training started before the pool check");
        distill_free(log);
    }
}

#define SMOKE "./distill sweep --preset smoke --out " OUT " --dim 16 --hidden 32 --seq 256 --train 100 --direct 60 " \
              "--eval 6 --max-new 40 --sizes 8,16 --split-size 6"

static void test_world_preset(void) {
    size_t n;
    char *csv, *svg, *md, *before, *again, *other_before, *other_after;
    distill_json *j;
    distill_error err;
    int rows = 0, i;
    if (!have_cli()) { CHECK(0, "./distill is not built"); return; }
    CHECK(sh("rm -rf " OUT) == 0, "cannot clear " OUT);
    CHECK(sh(SMOKE " > " OUT ".log 2>&1") == 0, "the smoke sweep failed (" OUT ".log)");
    csv = read_all(OUT "/results.csv", &n);
    CHECK(csv != NULL, "no results.csv");
    if (csv) {
        for (i = 0; i < (int)n; i++) rows += csv[i] == '\n';
        /* header + stage 0 + 2 sizes + (easy, hard, correct, incorrect) x (from stage 0, from largest) */
        CHECK(rows == 1 + 1 + 2 + 8, "results.csv has %d lines", rows);
        CHECK(strstr(csv, "s1_n16") && strstr(csv, "s1_incorrect_fromL"), "run names");
        distill_free(csv);
    }
    j = distill_json_parse_file(OUT "/results.json", &err);
    CHECK(j && j->type == DISTILL_JSON_ARRAY && j->len == 11, "results.json: %s", j ? "wrong shape" : err.msg);
    distill_json_free(j);
    svg = read_all(OUT "/valley.svg", &n);
    CHECK(svg && strstr(svg, "<svg") && strstr(svg, "</svg>") && strstr(svg, "pass@1"), "valley.svg");
    distill_free(svg);
    md = read_all(OUT "/results.md", &n);
    CHECK(md && strstr(md, "Data-quantity sweep") && strstr(md, "0 (stage 0)") && strstr(md, "Second-stage"), "results.md");
    distill_free(md);

    /* A killed sweep: one finished run lost its result; rerunning reuses everything else (the
       files are untouched) and recreates the missing run with the same numbers (training and
       greedy evaluation are deterministic). */
    before = read_all(OUT "/runs/s1_n8/result.json", &n);
    other_before = read_all(OUT "/runs/s1_easy_from0/result.json", &n);
    CHECK(before && other_before, "run results missing");
    remove(OUT "/runs/s1_n8/result.json");
    remove(OUT "/results.csv");
    CHECK(sh(SMOKE " > " OUT ".log2 2>&1") == 0, "resumed sweep failed");
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
    csv = read_all(OUT "/results.csv", &n);
    CHECK(csv != NULL, "report not rewritten");
    distill_free(csv);

    /* A world made by another generator version (here: a stamp that does not match) is not
       reused: the folder is moved aside whole, and the sweep starts again in a fresh one. */
    {
        char *log, *kept, *stamp = read_all(OUT "/world/world-stamp.json", &n);
        CHECK(stamp && strstr(stamp, "\"world-version\": ") && strstr(stamp, "\"world-seed\": "), "world stamp: %s", stamp ? stamp : "missing");
        distill_free(stamp);
        CHECK(sh("rm -rf " OUT ".old-1 && echo '{\"world-version\": 1}' > " OUT "/world/world-stamp.json") == 0, "tamper the stamp");
        CHECK(sh(SMOKE " > " OUT ".log3 2>&1") == 0, "the sweep after a stale world failed (" OUT ".log3)");
        log = read_all(OUT ".log3", &n);
        CHECK(log && strstr(log, "moved " OUT " to " OUT ".old-1"), "the stale folder was moved aside: %s", log ? log : "no log");
        distill_free(log);
        kept = read_all(OUT ".old-1/runs/s1_easy_from0/result.json", &n);
        CHECK(kept && other_after && !strcmp(kept, other_after), "the old runs are kept in " OUT ".old-1");
        distill_free(kept);
        stamp = read_all(OUT "/world/world-stamp.json", &n);
        CHECK(stamp && strstr(stamp, "\"world-version\": ") && !strstr(stamp, "\"world-version\": 1}"), "a fresh stamp");
        distill_free(stamp);
        csv = read_all(OUT "/results.csv", &n);
        CHECK(csv != NULL, "the fresh sweep wrote its table");
        distill_free(csv);
        CHECK(sh("rm -rf " OUT ".old-1") == 0, "clean up");
    }
    distill_free(before);
    distill_free(again);
    distill_free(other_before);
    distill_free(other_after);
}


/* A signal in the middle of a sweep: SIGTERM once stage 0 has finished ends the sweep with 143
   (the run in progress checkpointed, or its evaluation saved problem by problem); the same
   command continues, and the table equals an uninterrupted sweep's (timings aside). */
static void strip_timings(char *csv) {   /* drop the last two columns of every line, in place */
    char *r = csv, *w = csv;
    while (*r) {
        char *e = strchr(r, '\n'), *c2, *c1;
        size_t n = e ? (size_t)(e - r) : strlen(r);
        c2 = NULL; c1 = NULL;
        {
            size_t i;
            for (i = 0; i < n; i++) if (r[i] == ',') { c2 = c1; c1 = r + i; }
        }
        n = c2 ? (size_t)(c2 - r) : n;
        memmove(w, r, n);
        w += n;
        *w++ = '\n';
        r = e ? e + 1 : r + strlen(r);
    }
    *w = 0;
}

#define SIGARGS " --preset smoke --dim 16 --hidden 32 --seq 256 --train 160 --direct 60 --eval 6 --max-new 40 " \
                "--sizes 20,60 --split-size 6 --epochs 4"
static void test_signal_and_resume(void) {
    size_t n;
    char *a, *b;
    int st, i;
    if (!have_cli()) { CHECK(0, "./distill is not built"); return; }
    CHECK(sh("rm -rf " OUT "_ref " OUT "_sig") == 0, "cannot clear");
    CHECK(sh("./distill sweep" SIGARGS " --out " OUT "_ref > " OUT "_ref.log 2>&1") == 0, "reference sweep failed");
    st = sh("./distill sweep" SIGARGS " --out " OUT "_sig > " OUT "_sig.log 2>&1 & pid=$!; "
            "i=0; while [ ! -f " OUT "_sig/runs/stage0/result.json ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; "
            "kill -TERM $pid; wait $pid");
    CHECK(st == 143, "the signalled sweep exited with %d, not 143 (SIGTERM)", st);
    CHECK(sh("grep -q 'stopped by a signal' " OUT "_sig.log") == 0, "no message about the signal");
    CHECK(sh("./distill sweep" SIGARGS " --out " OUT "_sig > " OUT "_sig2.log 2>&1") == 0, "the continued sweep failed");
    a = read_all(OUT "_ref/results.csv", &n);
    b = read_all(OUT "_sig/results.csv", &n);
    CHECK(a && b, "results missing");
    if (a && b) {
        strip_timings(a);
        strip_timings(b);
        CHECK(!strcmp(a, b), "interrupted + continued sweep differs from an unbroken one:\n%s\n%s", a, b);
        for (i = 0, n = 0; a[i]; i++) n += a[i] == '\n';
        CHECK(n == 12, "%d lines", (int)n);
    }
    distill_free(a);
    distill_free(b);
}

static void test_sweep_bad_config(void) {
    FILE *f;
    if (!have_cli()) { CHECK(0, "./distill is not built"); return; }
    CHECK(sh(SMOKE " --sizes 16,8 > /dev/null 2>&1") == 2, "decreasing sizes accepted");
    CHECK(sh(SMOKE " --sizes 8,1000 > /dev/null 2>&1") == 2, "size above --train accepted");
    CHECK(sh(SMOKE " --dim -3 > /dev/null 2>&1") == 2, "negative dim accepted");
    CHECK(sh(SMOKE " --bogus 1 > /dev/null 2>&1") == 2, "unknown flag accepted");
    CHECK(sh(SMOKE " --heads 3 > /dev/null 2>&1") == 2, "dim 16 with 3 heads accepted");
    CHECK(sh(SMOKE " --second-pool sideways > /dev/null 2>&1") == 2, "unknown --second-pool accepted");
    CHECK(sh("./distill sweep --data x.jsonl --eval-data y.jsonl --tokenizer t.json --verifier world > /dev/null 2>&1") == 2,
          "a custom sweep without --init or --stage0-data accepted");
    CHECK(sh("./distill sweep --data x.jsonl > /dev/null 2>&1") == 2, "a custom sweep without --eval-data accepted");
    f = fopen("build/test_sweep_bad.json", "wb");
    CHECK(f != NULL, "cannot write a config file");
    if (!f) return;
    fputs("{\"sizes\": [10, 20], \"epochs\": \"five\"}", f);
    fclose(f);
    CHECK(sh("./distill sweep --config build/test_sweep_bad.json > /dev/null 2>&1") == 2, "string epochs accepted");
    f = fopen("build/test_sweep_bad.json", "wb");
    fputs("{\"sizes\": [10, 20], \"epochz\": 3}", f);
    fclose(f);
    CHECK(sh("./distill sweep --config build/test_sweep_bad.json > /dev/null 2>&1") == 2, "unknown key accepted");
    f = fopen("build/test_sweep_bad.json", "wb");
    fputs("{\"sizes\": [10, 20", f);
    fclose(f);
    CHECK(sh("./distill sweep --config build/test_sweep_bad.json > /dev/null 2>&1") == 2, "truncated JSON accepted");
}

int main(void) {
    RUN(test_generic_sweep);
    RUN(test_world_preset);
    RUN(test_signal_and_resume);
    RUN(test_sweep_bad_config);
    return harness_done("test_sweep");
}
