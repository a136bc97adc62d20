/* Tokenizer speed: GPT-2 encode throughput (single thread, cold and warm chunk cache; batched on
   the thread pool) and BPE training time. Compare with bench/tiktoken_bench.js on the same file.

     python3 bench/make_tokenizer_corpus.py --mb 4 --out build/bench/tok_corpus.jsonl
     python3 bench/make_tokenizer_corpus.py --mb 10 --out build/bench/tok_corpus10.jsonl
     make bench-tokenizer        (or: cc -O2 -march=x86-64-v3 bench/bench_tokenizer.c -lm -lpthread)
     build/bench/bench_tokenizer encode build/bench/tok_corpus.jsonl ../shared/data/gpt2/tokenizer.json
     build/bench/bench_tokenizer train build/bench/tok_corpus10.jsonl 8192
*/
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include <stdlib.h>
#include <string.h>

typedef struct corpus { char **text; size_t *len; size_t n, bytes; } corpus;

static int load_corpus(const char *path, corpus *c) {
    distill_error err;
    size_t size, off = 0;
    char *data = (char *)distill_read_file(path, &size, &err);
    int line = 0;
    memset(c, 0, sizeof *c);
    if (!data) { fprintf(stderr, "%s\n", err.msg); return -1; }
    c->text = (char **)malloc(sizeof(char *) * (size / 2 + 1));
    c->len = (size_t *)malloc(sizeof(size_t) * (size / 2 + 1));
    while (off < size) {
        char *nl = (char *)memchr(data + off, '\n', size - off);
        size_t n = nl ? (size_t)(nl - (data + off)) : size - off;
        if (n) {
            distill_json *j = distill_json_parse(data + off, n, path, ++line, &err);
            const distill_json *t = j ? distill_json_get(j, "text") : NULL;
            if (!t || t->type != DISTILL_JSON_STRING) { fprintf(stderr, "%s: bad line %d\n", path, line); return -1; }
            c->text[c->n] = (char *)malloc(t->len + 1);
            memcpy(c->text[c->n], t->str, t->len + 1);
            c->len[c->n++] = t->len;
            c->bytes += t->len;
            distill_json_free(j);
        }
        off += n + 1;
    }
    distill_free(data);
    return 0;
}

static int bench_encode(const char *corpus_path, const char *tok_path, int reps) {
    corpus c;
    distill_error err;
    distill_tokenizer *tok;
    distill_ids ids = {NULL, 0, 0};
    distill_ids *outs;
    size_t i, tokens = 0;
    int r, th, max_threads = distill_get_threads();
    double best = 1e30, cold = 0;
    if (load_corpus(corpus_path, &c)) return 1;
    tok = distill_tokenizer_load(tok_path, NULL, &err);
    if (!tok) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (r = 0; r < reps; r++) {
        double t0 = distill_time_seconds(), dt;
        tokens = 0;
        for (i = 0; i < c.n; i++) {
            ids.n = 0;
            distill_tokenizer_encode(tok, c.text[i], c.len[i], 0, &ids, &err);
            tokens += ids.n;
        }
        dt = distill_time_seconds() - t0;
        if (r == 0) cold = dt;
        if (dt < best) best = dt;
    }
    printf("distill.h gpt2, 1 thread:  %zu docs, %.2f MB, %zu tokens; first pass (cold cache) %.3f s = %.2f MB/s; "
           "best of %d: %.3f s = %.2f MB/s, %.2f M tokens/s\n", c.n, c.bytes / 1e6, tokens, cold, c.bytes / 1e6 / cold,
           reps, best, c.bytes / 1e6 / best, tokens / 1e6 / best);
    outs = (distill_ids *)calloc(c.n, sizeof(distill_ids));
    for (th = 1; th <= max_threads; th++) {
        distill_set_threads(th);
        best = 1e30;
        for (r = 0; r < reps; r++) {
            double t0 = distill_time_seconds(), dt;
            for (i = 0; i < c.n; i++) outs[i].n = 0;
            distill_tokenizer_encode_batch(tok, (const char *const *)c.text, c.len, c.n, 0, outs, &err);
            dt = distill_time_seconds() - t0;
            if (dt < best) best = dt;
        }
        tokens = 0;
        for (i = 0; i < c.n; i++) tokens += outs[i].n;
        printf("distill.h gpt2, batch on %d thread%s: best of %d: %.3f s = %.2f MB/s (%zu tokens)\n", th,
               th > 1 ? "s" : " ", reps, best, c.bytes / 1e6 / best, tokens);
    }
    distill_set_threads(max_threads);
    for (i = 0; i < c.n; i++) { distill_ids_free(&outs[i]); free(c.text[i]); }
    free(outs); free(c.text); free(c.len);
    distill_ids_free(&ids);
    distill_tokenizer_free(tok);
    return 0;
}

static int bench_train(const char *corpus_path, int vocab) {
    corpus c;
    distill_error err;
    size_t i, n, step;
    int ns;
    const char *const *sp = distill_tokenizer_default_specials(&ns);
    if (load_corpus(corpus_path, &c)) return 1;
    /* the growth with corpus size: the first quarter, half, and all of the documents */
    for (step = 1; step <= 3; step++) {
        n = step == 1 ? c.n / 4 : step == 2 ? c.n / 2 : c.n;
        size_t bytes = 0;
        double t0 = distill_time_seconds();
        distill_tokenizer *t;
        for (i = 0; i < n; i++) bytes += c.len[i];
        t = distill_tokenizer_train((const char *const *)c.text, c.len, n, vocab, DISTILL_PATTERN_GPT2, sp, ns, &err);
        if (!t) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("train vocab %d (gpt2 pattern, %d threads for counting): %.2f MB in %.2f s\n", vocab,
               distill_get_threads(), bytes / 1e6, distill_time_seconds() - t0);
        distill_tokenizer_free(t);
    }
    for (i = 0; i < c.n; i++) free(c.text[i]);
    free(c.text); free(c.len);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "encode")) return bench_encode(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 3);
    if (argc >= 3 && !strcmp(argv[1], "train")) return bench_train(argv[2], argc > 3 ? atoi(argv[3]) : 8192);
    fprintf(stderr, "usage: bench_tokenizer encode CORPUS.jsonl TOKENIZER [reps]\n"
                    "       bench_tokenizer train CORPUS.jsonl [vocab]\n");
    return 2;
}
