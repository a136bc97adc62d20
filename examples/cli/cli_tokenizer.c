/* distill tokenizer train|encode|decode   (owner: tokenizer issue)

   train   reads a JSONL file, takes one string field of every line and learns a byte-level BPE
   encode  JSONL {"text": ...} on stdin -> {"ids": [...]} on stdout, one line per line
   decode  JSONL {"ids": [...]} on stdin -> {"text": ...} on stdout                           */
#include "cli.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *data, *field, *out, *special, *pattern, *tokenizer, *merges;
    int vocab, no_special, allow_special, bos, eos;
} tok_opts;

#define CLI_T tok_opts
static const cli_opt tok_train_options[] = {
    CLI_PATH_REQ("data", data, "FILE.jsonl", "the texts, one JSON object per line"),
    CLI_STR("field", field, "PATH", "the string to learn from (a dotted path such as meta.text is allowed)"),
    CLI_INT("vocab-size", vocab, 1, 1 << 24, "the 256 bytes + the merges + the special tokens (required)"),
    CLI_PATH_REQ("out", out, "FILE", "the tokenizer, in distill's text format"),
    CLI_ENUM("pattern", pattern, "gpt2|cl100k|qwen2|none", "the pre-tokenizer regex"),
    CLI_STR("special", special, "LIST", "special tokens, comma-separated; they get the last ids in order (default <|endoftext|>,<|im_start|>,<|im_end|>,<think>,</think>)"),
    CLI_BOOL("no-special", no_special, "no special tokens"),
};
static const cli_opt tok_codec_options[] = {
    CLI_PATH_REQ("tokenizer", tokenizer, "FILE", "distill's format, a Hugging Face tokenizer.json, a GPT-2 vocab.json (with --merges) or a llama2.c tokenizer.bin"),
    CLI_PATH("merges", merges, "FILE", "merges.txt of a GPT-2 vocab.json"),
    CLI_STR("field", field, "PATH", "encode: the string field of each line"),
    CLI_BOOL("allow-special", allow_special, "encode: special tokens written in the text (\"<|im_end|>\") become their ids"),
    CLI_BOOL("bos", bos, "encode: add the tokenizer's BOS id (llama2.c: 1)"),
    CLI_BOOL("eos", eos, "encode: add the tokenizer's EOS id (llama2.c: 2; BPE: <|endoftext|>)"),
};
#undef CLI_T

static const cli_cmd tok_train_cmd = {
    "tokenizer train",
    "usage: distill tokenizer train  --data FILE.jsonl --field text --vocab-size N --out FILE\n"
    "                                [--pattern gpt2|cl100k|qwen2|none] [--special LIST | --no-special]\n",
    "  Learn a byte-level BPE from the string at --field of every line of FILE.jsonl and save it\n"
    "  in distill's text format. Chunks are counted on all threads (DISTILL_THREADS); the result\n"
    "  does not depend on the thread count. Errors name the file and line.\n",
    tok_train_options, CLI_N(tok_train_options), NULL, 0};
static const cli_cmd tok_codec_cmd = {
    "tokenizer encode",
    "usage: distill tokenizer encode --tokenizer FILE [--merges FILE] [--allow-special]\n"
    "                                [--field text] [--bos] [--eos]\n"
    "       distill tokenizer decode --tokenizer FILE [--merges FILE]\n",
    "  encode: JSONL lines {\"text\": \"...\"} on stdin -> {\"ids\": [...]} per line on stdout.\n"
    "  decode: JSONL lines {\"ids\": [...]} on stdin -> {\"text\": \"...\"} per line on stdout.\n"
    "  Errors name stdin and the line; exit status 1 on bad input.\n",
    tok_codec_options, CLI_N(tok_codec_options), NULL, 0};

static void tok_defaults(tok_opts *o) {
    memset(o, 0, sizeof *o);
    o->field = "text";
    o->pattern = "gpt2";
}

static void tok_usage(FILE *f) {
    tok_opts o;
    tok_defaults(&o);
    cli_help(&tok_train_cmd, &o, f);
    fputc('\n', f);
    cli_help(&tok_codec_cmd, &o, f);
}

/* Read one line from f into a growing buffer; returns its length or -1 at end of input. */
static long read_line(FILE *f, char **buf, size_t *cap) {
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (n + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            char *b = (char *)realloc(*buf, nc);
            if (!b) return -1;
            *buf = b;
            *cap = nc;
        }
        if (c == '\n') break;
        (*buf)[n++] = (char)c;
    }
    if (c == EOF && n == 0) return -1;
    if (n && (*buf)[n - 1] == '\r') n--;
    (*buf)[n] = 0;
    return (long)n;
}

static int cmd_train(int argc, char **argv) {
    const char *data, *field, *out, *special, *pattern_name;
    int vocab, no_special, i, pattern, n_special = 0, rc = 1;
    tok_opts o;
    const char *specials[256];
    char *special_copy = NULL;
    distill_error err;
    distill_line_reader *lr = NULL;
    distill_bpe_trainer *tr = NULL;
    distill_tokenizer *tok = NULL;
    const char *line;
    size_t len, n_texts = 0, n_bytes = 0;
    int64_t line_no;
    double t0 = distill_time_seconds();
    tok_defaults(&o);
    i = cli_parse(&tok_train_cmd, &o, argc, argv, NULL, NULL);
    if (i != 0) return i == CLI_HELP ? 0 : 2;
    if (o.vocab <= 0) return cli_usage_error(&tok_train_cmd, "--vocab-size N is required (see distill tokenizer --help)");
    data = o.data; field = o.field; out = o.out; special = o.special; pattern_name = o.pattern;
    vocab = o.vocab; no_special = o.no_special;
    pattern = distill_pattern_from_name(pattern_name);
    if (pattern < 0) { fprintf(stderr, "distill tokenizer train: unknown --pattern '%s'\n", pattern_name); return 2; }
    if (special && !no_special) {
        char *p;
        special_copy = (char *)malloc(strlen(special) + 1);
        if (!special_copy) return 1;
        strcpy(special_copy, special);
        for (p = strtok(special_copy, ","); p && n_special < 256; p = strtok(NULL, ",")) specials[n_special++] = p;
    } else if (!no_special) {
        const char *const *d = distill_tokenizer_default_specials(&n_special);
        for (i = 0; i < n_special; i++) specials[i] = d[i];
    }
    tr = distill_bpe_trainer_new(pattern, specials, n_special, &err);
    lr = tr ? distill_line_reader_open(data, 0, &err) : NULL;
    if (!tr || !lr) goto fail;
    {
        /* batches of texts are counted in parallel */
        enum { BATCH = 4096 };
        char **texts = (char **)calloc(BATCH, sizeof(char *));
        size_t *lens = (size_t *)calloc(BATCH, sizeof(size_t)), nb = 0, k;
        int r;
        if (!texts || !lens) { free(texts); free(lens); snprintf(err.msg, sizeof err.msg, "out of memory"); goto fail; }
        while ((r = distill_line_reader_next(lr, &line, &len, &line_no, &err)) == 1) {
            distill_json *j;
            const distill_json *v;
            if (len == 0) continue;
            j = distill_json_parse(line, len, data, (int)line_no, &err);
            if (!j) { r = -1; break; }
            v = distill_json_path(j, field);
            if (!v || v->type != DISTILL_JSON_STRING) {
                snprintf(err.msg, sizeof err.msg, "%s:%lld: field '%s': %s", data, (long long)line_no, field,
                             v ? "expected a string" : "missing");
                distill_json_free(j);
                r = -1;
                break;
            }
            texts[nb] = (char *)malloc(v->len + 1);
            if (!texts[nb]) { distill_json_free(j); snprintf(err.msg, sizeof err.msg, "out of memory"); r = -1; break; }
            memcpy(texts[nb], v->str, v->len + 1);
            lens[nb++] = v->len;
            n_bytes += v->len;
            n_texts++;
            distill_json_free(j);
            if (nb == BATCH) {
                if (distill_bpe_trainer_add_batch(tr, (const char *const *)texts, lens, nb, &err)) { r = -1; break; }
                for (k = 0; k < nb; k++) free(texts[k]);
                nb = 0;
            }
        }
        if (r == 0 && nb && distill_bpe_trainer_add_batch(tr, (const char *const *)texts, lens, nb, &err)) r = -1;
        for (k = 0; k < nb; k++) free(texts[k]);
        free(texts);
        free(lens);
        if (r < 0) goto fail;
    }
    fprintf(stderr, "distill tokenizer train: %zu texts, %.1f MB from %s, counted in %.2f s\n", n_texts,
            (double)n_bytes / 1e6, data, distill_time_seconds() - t0);
    tok = distill_bpe_trainer_finish(tr, vocab, &err);
    if (!tok || distill_tokenizer_save(tok, out, &err)) goto fail;
    fprintf(stderr, "distill tokenizer train: vocab %d (%d merges, %d special), pattern %s, %.2f s total -> %s\n",
            distill_tokenizer_vocab_size(tok), distill_tokenizer_n_merges(tok), n_special, pattern_name,
            distill_time_seconds() - t0, out);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "distill tokenizer train: %s\n", err.msg);
done:
    distill_line_reader_close(lr);
    distill_bpe_trainer_free(tr);
    distill_tokenizer_free(tok);
    free(special_copy);
    return rc;
}

static int cmd_codec(int argc, char **argv, int decode) {
    const char *path, *merges, *field;
    int flags, i, rc = 0;
    tok_opts o;
    cli_cmd cmd;
    distill_error err;
    distill_tokenizer *tok;
    char *buf = NULL;
    size_t cap = 0;
    long n;
    int line = 0;
    distill_ids ids = {NULL, 0, 0};
    cmd = tok_codec_cmd;
    cmd.name = decode ? "tokenizer decode" : "tokenizer encode";
    tok_defaults(&o);
    i = cli_parse(&cmd, &o, argc, argv, NULL, NULL);
    if (i != 0) return i == CLI_HELP ? 0 : 2;
    path = o.tokenizer; merges = o.merges; field = o.field;
    flags = (o.allow_special ? DISTILL_ENC_ALLOW_SPECIAL : 0) | (o.bos ? DISTILL_ENC_BOS : 0) | (o.eos ? DISTILL_ENC_EOS : 0);
    tok = distill_tokenizer_load(path, merges, &err);
    if (!tok) { fprintf(stderr, "distill tokenizer %s: %s\n", argv[0], err.msg); return 1; }
    while ((n = read_line(stdin, &buf, &cap)) >= 0) {
        distill_json *j;
        const distill_json *v;
        line++;
        if (n == 0) continue;
        j = distill_json_parse(buf, (size_t)n, "stdin", line, &err);
        if (!j) { fprintf(stderr, "distill tokenizer %s: %s\n", argv[0], err.msg); rc = 1; break; }
        v = distill_json_path(j, decode ? "ids" : field);
        if (!decode) {
            size_t k;
            if (!v || v->type != DISTILL_JSON_STRING) {
                fprintf(stderr, "distill tokenizer encode: stdin:%d: field '%s': %s\n", line, field, v ? "expected a string" : "missing");
                distill_json_free(j); rc = 1; break;
            }
            ids.n = 0;
            if (distill_tokenizer_encode_ex(tok, v->str, v->len, flags, &ids, &err)) {
                fprintf(stderr, "distill tokenizer encode: stdin:%d: %s\n", line, err.msg);
                distill_json_free(j); rc = 1; break;
            }
            fputs("{\"ids\": [", stdout);
            for (k = 0; k < ids.n; k++) printf(k ? ", %d" : "%d", (int)ids.ids[k]);
            fputs("]}\n", stdout);
        } else {
            size_t k, len;
            char *text;
            int bad = 0;
            if (!v || v->type != DISTILL_JSON_ARRAY) {
                fprintf(stderr, "distill tokenizer decode: stdin:%d: field 'ids': %s\n", line, v ? "expected an array" : "missing");
                distill_json_free(j); rc = 1; break;
            }
            ids.n = 0;
            for (k = 0; k < v->len && !bad; k++) {
                const distill_json *x = &v->items[k];
                if (x->type != DISTILL_JSON_NUMBER || !x->is_int || x->i64 < 0 ||
                    x->i64 >= distill_tokenizer_vocab_size(tok) || !distill_tokenizer_token_bytes(tok, (int32_t)x->i64, NULL)) {
                    fprintf(stderr, "distill tokenizer decode: stdin:%d:%d: ids[%zu]: not a token id of this "
                            "tokenizer (0..%d)\n", line, x->col, k, distill_tokenizer_vocab_size(tok) - 1);
                    bad = 1;
                } else distill_ids_push(&ids, (int32_t)x->i64);
            }
            if (bad) { distill_json_free(j); rc = 1; break; }
            text = distill_tokenizer_decode(tok, ids.ids, ids.n, &len);
            fputs("{\"text\": ", stdout);
            distill_json_write_string(stdout, text, len);
            fputs("}\n", stdout);
            distill_free(text);
        }
        distill_json_free(j);
    }
    free(buf);
    distill_ids_free(&ids);
    distill_tokenizer_free(tok);
    if (fflush(stdout) != 0) { fprintf(stderr, "distill tokenizer: write error on stdout\n"); rc = 1; }
    return rc;
}

int cli_tokenizer(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (argc < 2) { fprintf(stderr, "distill tokenizer: give a subcommand: train, encode or decode (see distill tokenizer --help)\n"); return 2; }
        tok_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "encode")) return cmd_codec(argc - 1, argv + 1, 0);
    if (!strcmp(argv[1], "decode")) return cmd_codec(argc - 1, argv + 1, 1);
    fprintf(stderr, "distill tokenizer: unknown subcommand '%s' (train, encode, decode; see distill tokenizer --help)\n", argv[1]);
    return 2;
}
