/* distill data stats|render|select: look at a distillation dataset the way the trainer will.
     distill data stats  --data FILE [--format F] [--tokenizer FILE] [--map a=b ...] [--policy strict|skip] ...
     distill data render --data FILE --tokenizer FILE --row N [--ids]
     distill data select --data FILE --n N [--seed S] [--splits K --split I] --manifest OUT.json */
#include "cli.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *data, *tokenizer, *merges, *manifest, *format, *policy, *loss, *tmpl;
    cli_strlist map, filters;
    distill_data_options opt;
    int max_seq, truncate, normalize_think;
    int64_t row, n;
    uint64_t seed;
    int ids, splits, split;
} cli_data_args;

#define CLI_T cli_data_args
static const cli_opt data_options[] = {
    CLI_PATH_REQ("data", data, "FILE", ".jsonl (one record per line) or .json (one array of records)"),
    CLI_ENUM("format", format, CLI_FORMATS, "the records' layout (auto: detected from the first record)"),
    CLI_PATH("tokenizer", tokenizer, "FILE", "tokenizer.json, vocab.json (+ --merges merges.txt), tokenizer.bin, own format"),
    CLI_PATH("merges", merges, "FILE", "merges.txt of a GPT-2 vocab.json (default: the one beside it)"),
    CLI_LIST("map", map, "SRC=DST", "field mapping, DST in prompt|response|think|system|messages|conversations|text (repeatable)"),
    CLI_LIST("filter", filters, "EXPR", "keep rows where EXPR holds, e.g. 'difficulty in {EASY, MEDIUM}' (repeatable)"),
    CLI_ENUM("policy", policy, "strict|skip", "stop at the first bad row (strict, default) or count and skip bad rows"),
    CLI_INT("max-seq", max_seq, 0, 1 << 30, "longest row in tokens; longer rows are dropped (or --truncate; 0: no limit)"),
    CLI_BOOL("truncate", truncate, "cut rows longer than --max-seq instead of dropping them"),
    CLI_BOOL("normalize-think", normalize_think, "<|begin_of_thought|>...<|end_of_thought|> -> <think>...</think>"),
    CLI_ENUM("template", tmpl, CLI_TEMPLATES, "chat template (chatml)"),
    CLI_ENUM("loss", loss, CLI_LOSSES, "supervised tokens: every assistant turn (default), the last one, all"),
    CLI_SECTION("render"),
    CLI_INT64("row", row, 0, 1e15, "the N-th usable row (0-based; required)"),
    CLI_BOOL("ids", ids, "one line per token: position, id, weight, bytes"),
    CLI_SECTION("select"),
    CLI_INT64("n", n, 0, 1e15, "rows in the subset (0: all)"),
    CLI_U64("seed", seed, 0, 18446744073709551615.0, "permutation seed"),
    CLI_INT("splits", splits, 0, 1 << 20, "cut the permutation into K disjoint splits"),
    CLI_INT("split", split, 0, 1 << 20, "the split to take (0-based)"),
    CLI_PATH("manifest", manifest, "OUT", "the subset's row ids as JSON (required)"),
};
#undef CLI_T

static const cli_cmd data_cmd = {
    "data",
    "usage: distill data stats  --data FILE [options]      one JSON object of counts\n"
    "       distill data render --data FILE --tokenizer FILE --row N [--ids]\n"
    "       distill data select --data FILE --n N [--seed S] [--splits K --split I] --manifest OUT\n",
    NULL, data_options, CLI_N(data_options), NULL, 0};

static void cli_data_defaults(cli_data_args *a) {
    memset(a, 0, sizeof *a);
    a->row = -1;
    a->seed = 1;
}

static void cli_data_usage(FILE *f) {
    cli_data_args a;
    cli_data_defaults(&a);
    cli_help(&data_cmd, &a, f);
}

/* 0, CLI_HELP or 2 */
static int cli_data_parse(const cli_cmd *c, int argc, char **argv, cli_data_args *a) {
    int rc;
    cli_data_defaults(a);
    rc = cli_parse(c, a, argc, argv, NULL, NULL);
    if (rc != 0) return rc;
    a->opt = distill_data_options_default();
    if (a->format) distill_data_format_parse(a->format, &a->opt.format);
    if (a->policy) a->opt.policy = !strcmp(a->policy, "skip") ? DISTILL_POLICY_SKIP : DISTILL_POLICY_STRICT;
    if (a->loss) a->opt.loss = !strcmp(a->loss, "last") ? DISTILL_LOSS_LAST : !strcmp(a->loss, "all") ? DISTILL_LOSS_ALL : DISTILL_LOSS_ASSISTANT;
    if (a->tmpl) a->opt.tmpl = distill_chat_template_get(a->tmpl);
    a->opt.max_seq = a->max_seq;
    a->opt.truncate = a->truncate;
    a->opt.normalize_think = a->normalize_think;
    a->opt.map = a->map.v;
    a->opt.n_map = a->map.n;
    a->opt.filters = a->filters.v;
    a->opt.n_filters = a->filters.n;
    return 0;
}

static distill_tokenizer *cli_data_tokenizer(const cli_data_args *a) {
    distill_error err;
    distill_tokenizer *tok;
    char merges[4096];
    const char *m = a->merges;
    size_t n = strlen(a->tokenizer);
    if (!m && n >= 10 && !strcmp(a->tokenizer + n - 10, "vocab.json") && n < sizeof merges - 16) {
        /* GPT-2 style vocab.json: use the merges.txt beside it */
        memcpy(merges, a->tokenizer, n - 10);
        strcpy(merges + n - 10, "merges.txt");
        m = merges;
    }
    tok = distill_tokenizer_load(a->tokenizer, m, &err);
    if (!tok) fprintf(stderr, "%s\n", err.msg);
    return tok;
}

/* render: the row's text with the supervised tokens inside [[ ]] (or one token per line). */
static int cli_data_render(const cli_data_args *a, const distill_dataset *ds, const distill_tokenizer *tok) {
    distill_row r;
    int i, in_sup = 0;
    if (a->row < 0 || a->row >= distill_dataset_size(ds)) {
        fprintf(stderr, "distill data render: --row %lld out of range (the dataset has %lld usable rows)\n",
                (long long)a->row, (long long)distill_dataset_size(ds));
        return 1;
    }
    distill_dataset_row(ds, a->row, &r);
    printf("# row %lld (record %lld, %s line %lld): %d tokens, %d supervised%s%s%s\n", (long long)a->row, (long long)r.id,
           a->data, (long long)r.line, r.n, r.n_supervised, r.flags & DISTILL_ROW_TRUNCATED ? ", truncated" : "",
           r.flags & DISTILL_ROW_LOST_THINK ? " (lost </think>)" : "", r.flags & DISTILL_ROW_EOT ? ", ends with end-of-turn" : "");
    if (a->ids) {
        printf("# pos id weight bytes\n");
        for (i = 0; i < r.n; i++) {
            size_t len = 0;
            const char *b = distill_tokenizer_token_bytes(tok, r.tokens[i], &len);
            printf("%d %d %g ", i, r.tokens[i], (double)r.weights[i]);
            distill_json_write_string(stdout, b ? b : "", b ? len : 0);
            printf("\n");
        }
        return 0;
    }
    printf("# supervised tokens (the targets of the loss) are inside [[ ]]\n");
    for (i = 0; i < r.n; i++) {
        size_t len = 0;
        const char *b = distill_tokenizer_token_bytes(tok, r.tokens[i], &len);
        int sup = i > 0 && r.weights[i] > 0;
        if (sup && !in_sup) fputs("[[", stdout);
        if (!sup && in_sup) fputs("]]", stdout);
        in_sup = sup;
        if (b) fwrite(b, 1, len, stdout);
    }
    if (in_sup) fputs("]]", stdout);
    printf("\n");
    return 0;
}

int cli_data(int argc, char **argv) {
    cli_data_args a;
    distill_tokenizer *tok = NULL;
    distill_dataset *ds;
    distill_error err;
    int rc = 0;
    cli_cmd sub;
    const char *cmd = argc >= 2 ? argv[1] : NULL;
    if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        cli_data_usage(cmd ? stdout : stderr);
        return cmd ? 0 : 2;
    }
    if (strcmp(cmd, "stats") != 0 && strcmp(cmd, "render") != 0 && strcmp(cmd, "select") != 0) {
        fprintf(stderr, "distill data: unknown subcommand '%s' (stats, render, select; see distill data --help)\n", cmd);
        return 2;
    }
    sub = data_cmd;
    sub.name = !strcmp(cmd, "stats") ? "data stats" : !strcmp(cmd, "render") ? "data render" : "data select";
    rc = cli_data_parse(&sub, argc - 1, argv + 1, &a);
    if (rc != 0) return rc == CLI_HELP ? 0 : 2;
    if (!strcmp(cmd, "render") && (!a.tokenizer || a.row < 0))
        return cli_usage_error(&sub, "%s required (see distill data --help)",
                               !a.tokenizer && a.row < 0 ? "--tokenizer FILE and --row N are" : !a.tokenizer ? "--tokenizer FILE is" : "--row N is");
    if (!strcmp(cmd, "select") && !a.manifest) return cli_usage_error(&sub, "--manifest OUT is required (see distill data --help)");
    if (a.tokenizer && !(tok = cli_data_tokenizer(&a))) return 1;
    ds = distill_dataset_load(a.data, &a.opt, tok, &err);
    if (!ds) {
        fprintf(stderr, "%s\n", err.msg);
        distill_tokenizer_free(tok);
        return 1;
    }
    if (!strcmp(cmd, "stats")) {
        distill_data_stats_write_json(stdout, distill_dataset_stats(ds), tok != NULL);
    } else if (!strcmp(cmd, "render")) {
        rc = cli_data_render(&a, ds, tok);
    } else {
        distill_select_options s;
        distill_dataset *sub;
        memset(&s, 0, sizeof s);
        s.seed = a.seed;
        s.n = a.n;
        s.n_splits = a.splits;
        s.split = a.split;
        s.manifest = a.manifest;
        sub = distill_dataset_select(ds, &s, &err);
        if (!sub) { fprintf(stderr, "%s\n", err.msg); rc = 1; }
        else {
            distill_data_stats_write_json(stdout, distill_dataset_stats(sub), tok != NULL);
            distill_dataset_free(sub);
        }
    }
    distill_dataset_free(ds);
    distill_tokenizer_free(tok);
    return rc;
}
