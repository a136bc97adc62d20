/* distill tokenizer train|encode|decode   (owner: tokenizer issue)

   train   reads a JSONL file, takes one string field of every line and learns a byte-level BPE
   encode  JSONL {"text": ...} on stdin -> {"ids": [...]} on stdout, one line per line
   decode  JSONL {"ids": [...]} on stdin -> {"text": ...} on stdout                           */
#include "cli.h"
#include <stdlib.h>
#include <string.h>

static void tok_usage(FILE *f) {
    fprintf(f,
        "usage: distill tokenizer train  --data FILE.jsonl --field text --vocab-size N --out FILE\n"
        "                                [--pattern gpt2|cl100k|qwen2|none] [--special LIST | --no-special]\n"
        "       distill tokenizer encode --tokenizer FILE [--merges FILE] [--allow-special]\n"
        "                                [--field text] [--bos] [--eos]\n"
        "       distill tokenizer decode --tokenizer FILE [--merges FILE]\n"
        "\n"
        "train    learn a byte-level BPE from the string at --field (a dotted path such as\n"
        "         meta.text is allowed) of every line of FILE.jsonl and save it in distill's\n"
        "         text format. --vocab-size counts the 256 bytes, the merges and the special\n"
        "         tokens. The pattern (pre-tokenizer regex) defaults to gpt2. Special tokens,\n"
        "         comma-separated, get the last ids in order; the default is\n"
        "         <|endoftext|>,<|im_start|>,<|im_end|>,<think>,</think>. Chunks are counted on\n"
        "         all threads (DISTILL_THREADS); the result does not depend on the thread count.\n"
        "encode   read JSONL lines {\"text\": \"...\"} on stdin, write {\"ids\": [...]} per line.\n"
        "         FILE is detected: distill's format, a Hugging Face tokenizer.json, a GPT-2\n"
        "         vocab.json (give --merges merges.txt) or a llama2.c tokenizer.bin.\n"
        "         --allow-special turns special tokens written in the text (\"<|im_end|>\") into\n"
        "         their ids; without it they are encoded as ordinary text. --bos/--eos add the\n"
        "         tokenizer's BOS/EOS ids (llama2.c: 1 and 2; BPE: EOS is <|endoftext|>).\n"
        "decode   read JSONL lines {\"ids\": [...]} on stdin, write {\"text\": \"...\"} per line.\n"
        "\n"
        "Errors name the file (or stdin) and line; exit status 1 on bad input, 2 on bad usage.\n");
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
    const char *data = NULL, *field = "text", *out = NULL, *special = NULL, *pattern_name = "gpt2";
    int vocab = 0, no_special = 0, i, pattern, n_special = 0, rc = 1;
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
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-special")) no_special = 1;
        else if (i + 1 < argc && !strcmp(a, "--data")) data = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--field")) field = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--out")) out = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--special")) special = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--pattern")) pattern_name = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--vocab-size")) vocab = atoi(argv[++i]);
        else { fprintf(stderr, "distill tokenizer train: unknown or incomplete option '%s'\n\n", a); tok_usage(stderr); return 2; }
    }
    if (!data || !out || vocab <= 0) {
        fprintf(stderr, "distill tokenizer train: --data, --vocab-size and --out are required\n\n");
        tok_usage(stderr);
        return 2;
    }
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
    const char *path = NULL, *merges = NULL, *field = "text";
    int flags = 0, i, rc = 0;
    distill_error err;
    distill_tokenizer *tok;
    char *buf = NULL;
    size_t cap = 0;
    long n;
    int line = 0;
    distill_ids ids = {NULL, 0, 0};
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--allow-special")) flags |= DISTILL_ENC_ALLOW_SPECIAL;
        else if (!strcmp(a, "--bos")) flags |= DISTILL_ENC_BOS;
        else if (!strcmp(a, "--eos")) flags |= DISTILL_ENC_EOS;
        else if (i + 1 < argc && !strcmp(a, "--tokenizer")) path = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--merges")) merges = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--field")) field = argv[++i];
        else { fprintf(stderr, "distill tokenizer %s: unknown or incomplete option '%s'\n\n", argv[0], a); tok_usage(stderr); return 2; }
    }
    if (!path) { fprintf(stderr, "distill tokenizer %s: --tokenizer is required\n\n", argv[0]); tok_usage(stderr); return 2; }
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
        tok_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    {
        int i;
        for (i = 2; i < argc; i++)
            if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { tok_usage(stdout); return 0; }
    }
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "encode")) return cmd_codec(argc - 1, argv + 1, 0);
    if (!strcmp(argv[1], "decode")) return cmd_codec(argc - 1, argv + 1, 1);
    fprintf(stderr, "distill tokenizer: unknown subcommand '%s'\n\n", argv[1]);
    tok_usage(stderr);
    return 2;
}
