/* distill data stats|render|select: look at a distillation dataset the way the trainer will.
     distill data stats  --data FILE [--format F] [--tokenizer FILE] [--map a=b ...] [--policy strict|skip] ...
     distill data render --data FILE --tokenizer FILE --row N [--ids]
     distill data select --data FILE --n N [--seed S] [--splits K --split I] --manifest OUT.json */
#include "cli.h"
#include <stdlib.h>
#include <string.h>

#define CLI_DATA_MAX_LIST 64

typedef struct {
    const char *data, *tokenizer, *merges, *manifest;
    const char *map[CLI_DATA_MAX_LIST], *filters[CLI_DATA_MAX_LIST];
    distill_data_options opt;
    int64_t row, n;
    uint64_t seed;
    int ids, splits, split;
} cli_data_args;

static void cli_data_usage(FILE *f) {
    fprintf(f,
            "usage: distill data stats  --data FILE [options]      one JSON object of counts\n"
            "       distill data render --data FILE --tokenizer FILE --row N [--ids]\n"
            "       distill data select --data FILE --n N [--seed S] [--splits K --split I] --manifest OUT\n"
            "options:\n"
            "  --data FILE            .jsonl (one record per line) or .json (one array of records)\n"
            "  --format F             auto|messages|conversations|prompt-completion|alpaca|text|mapped\n"
            "  --tokenizer FILE       tokenizer.json, vocab.json (+ --merges merges.txt), tokenizer.bin, own format\n"
            "  --map SRC=DST          field mapping, DST in prompt|response|think|system|messages|conversations|text\n"
            "  --filter EXPR          keep rows where EXPR holds, e.g. 'difficulty in {EASY, MEDIUM}', 'pass_rate == 1'\n"
            "  --policy strict|skip   stop at the first bad row (default) or count and skip bad rows\n"
            "  --max-seq N            longest row in tokens; longer rows are dropped (or --truncate)\n"
            "  --truncate             cut rows longer than --max-seq instead of dropping them\n"
            "  --normalize-think      <|begin_of_thought|>...<|end_of_thought|> -> <think>...</think>\n"
            "  --template NAME        chatml (default) | chatml-prefill | plain\n"
            "  --loss MODE            assistant (every assistant turn, default) | last | all\n"
            "  --row N                render: the N-th usable row (0-based)\n"
            "  --ids                  render: one line per token: position, id, weight, bytes\n");
}

static int cli_data_parse(int argc, char **argv, cli_data_args *a) {
    int i, n_map = 0, n_filters = 0;
    memset(a, 0, sizeof *a);
    a->opt = distill_data_options_default();
    a->row = -1;
    a->seed = 1;
    for (i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(k, "--truncate")) { a->opt.truncate = 1; takes = 0; }
        else if (!strcmp(k, "--normalize-think")) { a->opt.normalize_think = 1; takes = 0; }
        else if (!strcmp(k, "--ids")) { a->ids = 1; takes = 0; }
        else if (!strcmp(k, "--help") || !strcmp(k, "-h")) { cli_data_usage(stdout); exit(0); }
        else if (!v) { fprintf(stderr, "distill data: %s needs a value\n", k); return -1; }
        else if (!strcmp(k, "--data")) a->data = v;
        else if (!strcmp(k, "--tokenizer")) a->tokenizer = v;
        else if (!strcmp(k, "--merges")) a->merges = v;
        else if (!strcmp(k, "--manifest")) a->manifest = v;
        else if (!strcmp(k, "--format")) {
            if (distill_data_format_parse(v, &a->opt.format) != 0) { fprintf(stderr, "distill data: unknown format '%s'\n", v); return -1; }
        } else if (!strcmp(k, "--map")) {
            if (n_map == CLI_DATA_MAX_LIST) { fprintf(stderr, "distill data: too many --map\n"); return -1; }
            a->map[n_map++] = v;
        } else if (!strcmp(k, "--filter")) {
            if (n_filters == CLI_DATA_MAX_LIST) { fprintf(stderr, "distill data: too many --filter\n"); return -1; }
            a->filters[n_filters++] = v;
        } else if (!strcmp(k, "--policy")) {
            if (!strcmp(v, "strict")) a->opt.policy = DISTILL_POLICY_STRICT;
            else if (!strcmp(v, "skip")) a->opt.policy = DISTILL_POLICY_SKIP;
            else { fprintf(stderr, "distill data: --policy is strict or skip, not '%s'\n", v); return -1; }
        } else if (!strcmp(k, "--loss")) {
            if (!strcmp(v, "assistant")) a->opt.loss = DISTILL_LOSS_ASSISTANT;
            else if (!strcmp(v, "last")) a->opt.loss = DISTILL_LOSS_LAST;
            else if (!strcmp(v, "all")) a->opt.loss = DISTILL_LOSS_ALL;
            else { fprintf(stderr, "distill data: --loss is assistant, last or all, not '%s'\n", v); return -1; }
        } else if (!strcmp(k, "--template")) {
            a->opt.tmpl = distill_chat_template_get(v);
            if (!a->opt.tmpl) { fprintf(stderr, "distill data: unknown template '%s' (chatml, chatml-prefill, plain)\n", v); return -1; }
        } else if (!strcmp(k, "--max-seq") || !strcmp(k, "--row") || !strcmp(k, "--n") || !strcmp(k, "--seed") ||
                   !strcmp(k, "--splits") || !strcmp(k, "--split")) {
            char *end;
            long long x = strtoll(v, &end, 10);
            if (*v == 0 || *end != 0 || x < 0 || (!strcmp(k, "--max-seq") && x > 1 << 30)) {
                fprintf(stderr, "distill data: %s expects a non-negative integer, got '%s'\n", k, v);
                return -1;
            }
            if (!strcmp(k, "--max-seq")) a->opt.max_seq = (int)x;
            else if (!strcmp(k, "--row")) a->row = x;
            else if (!strcmp(k, "--n")) a->n = x;
            else if (!strcmp(k, "--seed")) a->seed = (uint64_t)x;
            else if (!strcmp(k, "--splits")) a->splits = (int)(x > 1 << 20 ? 1 << 20 : x);
            else a->split = (int)(x > 1 << 20 ? 1 << 20 : x);
        } else {
            fprintf(stderr, "distill data: unknown option '%s'\n", k);
            return -1;
        }
        i += takes;
    }
    a->opt.map = a->map;
    a->opt.n_map = n_map;
    a->opt.filters = a->filters;
    a->opt.n_filters = n_filters;
    if (!a->data) { fprintf(stderr, "distill data: --data FILE is required\n"); return -1; }
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
    const char *cmd = argc >= 2 ? argv[1] : NULL;
    if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        cli_data_usage(cmd ? stdout : stderr);
        return cmd ? 0 : 2;
    }
    if (strcmp(cmd, "stats") != 0 && strcmp(cmd, "render") != 0 && strcmp(cmd, "select") != 0) {
        fprintf(stderr, "distill data: unknown subcommand '%s' (stats, render, select)\n", cmd);
        return 2;
    }
    if (cli_data_parse(argc, argv, &a) != 0) return 2;
    if (!strcmp(cmd, "render") && (!a.tokenizer || a.row < 0)) {
        fprintf(stderr, "distill data render: --tokenizer FILE and --row N are required\n");
        return 2;
    }
    if (!strcmp(cmd, "select") && !a.manifest) {
        fprintf(stderr, "distill data select: --manifest OUT is required\n");
        return 2;
    }
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
