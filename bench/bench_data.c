/* Data loading throughput: JSONL -> JSON -> conversation -> chat template -> token ids + loss
   weights, in MB/s of JSONL, and the share of the time the JSON layer (reading + parsing) takes.

     make bench-data        (or: build/bench/bench_data [MB] [tokenizer.json])

   The input is a synthetic distillation file written once to build/bench/data_<MB>mb.jsonl:
   ShareGPT-style records whose assistant turn is a long <think> trace of English-like words and
   code, about 6 KB per record (the shape of OpenThoughts / R1 traces). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include <sys/stat.h>

static const char *words[] = {
    "the", "list", "is", "sorted", "so", "we", "can", "binary", "search", "for", "target", "value",
    "first", "check", "edge", "case", "when", "array", "empty", "return", "minus", "one", "otherwise",
    "loop", "while", "low", "high", "mid", "compute", "index", "wait", "let", "me", "verify", "again",
    "def", "solve(nums):", "for", "i", "in", "range(len(nums)):", "if", "nums[i]", "==", "x:", "count",
    "+=", "1", "Hmm,", "that", "gives", "42.", "Actually", "recheck", "the", "constraint", "n", "<=", "10^5",
};

static void make_corpus(const char *path, double mb) {
    FILE *f = fopen(path, "wb");
    distill_rng r;
    size_t target = (size_t)(mb * 1048576.0), written = 0;
    int rec = 0;
    if (!f) { fprintf(stderr, "cannot write %s\n", path); exit(1); }
    distill_rng_seed(&r, 1);
    while (written < target) {
        char buf[16384];
        size_t n = 0;
        int k, len = 600 + (int)distill_rng_below(&r, 900);
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "{\"conversations\": [{\"from\": \"human\", \"value\": \"Problem %d: given a list of integers, "
                              "count how many equal x.\\nInput: n, then the list.\"}, {\"from\": \"gpt\", \"value\": \"<think>\\n",
                              rec++);
        for (k = 0; k < len && n < sizeof buf - 200; k++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", words[distill_rng_below(&r, sizeof words / sizeof words[0])],
                                  k % 17 == 16 ? "\\n" : " ");
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\\n</think>\\n\\n```python\\nprint(sum(1 for v in a if v == x))\\n```\"}], "
                                                       "\"difficulty\": \"MEDIUM\", \"pass_rate\": 1}\n");
        fwrite(buf, 1, n, f);
        written += n;
    }
    fclose(f);
}

int main(int argc, char **argv) {
    double mb = argc > 1 ? atof(argv[1]) : 32.0;
    const char *tokpath = argc > 2 ? argv[2] : "../shared/data/gpt2/tokenizer.json";
    char path[256];
    struct stat st;
    distill_error err;
    distill_tokenizer *tok;
    distill_dataset *ds;
    distill_line_reader *r;
    const char *line;
    size_t len;
    int64_t no, bytes = 0, records = 0;
    double t0, t_json, t_read;
    const distill_data_stats *s;
    if (mb <= 0) mb = 32;
    snprintf(path, sizeof path, "build/bench/data_%gmb.jsonl", mb);
    if (stat(path, &st) != 0) {
        mkdir("build", 0755);
        mkdir("build/bench", 0755);
        make_corpus(path, mb);
    }
    /* 1. reading lines only, then reading + parsing JSON */
    t0 = distill_time_seconds();
    r = distill_line_reader_open(path, 0, &err);
    if (!r) { fprintf(stderr, "%s\n", err.msg); return 1; }
    while (distill_line_reader_next(r, &line, &len, &no, &err) == 1) bytes += (int64_t)len + 1;
    distill_line_reader_close(r);
    t_read = distill_time_seconds() - t0;
    t0 = distill_time_seconds();
    r = distill_line_reader_open(path, 0, &err);
    while (distill_line_reader_next(r, &line, &len, &no, &err) == 1) {
        distill_json *j = distill_json_parse(line, len, path, (int)no, &err);
        if (!j) { fprintf(stderr, "%s\n", err.msg); return 1; }
        distill_json_free(j);
        records++;
    }
    distill_line_reader_close(r);
    t_json = distill_time_seconds() - t0;
    printf("file %s: %.1f MB, %lld records\n", path, (double)bytes / 1048576.0, (long long)records);
    printf("read lines:            %8.1f MB/s\n", (double)bytes / 1048576.0 / t_read);
    printf("read + parse JSON:     %8.1f MB/s\n", (double)bytes / 1048576.0 / t_json);
    /* 2. the whole load without a tokenizer (adapters, filters, validation) */
    t0 = distill_time_seconds();
    ds = distill_dataset_load(path, NULL, NULL, &err);
    if (!ds) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("load, no tokenizer:    %8.1f MB/s\n", (double)bytes / 1048576.0 / (distill_time_seconds() - t0));
    distill_dataset_free(ds);
    /* 3. load + tokenise */
    tok = distill_tokenizer_load(tokpath, NULL, &err);
    if (!tok) { printf("(no tokenizer: %s)\n", err.msg); return 0; }
    ds = distill_dataset_load(path, NULL, tok, &err);
    if (!ds) { fprintf(stderr, "%s\n", err.msg); return 1; }
    s = distill_dataset_stats(ds);
    printf("load + tokenise (%s): %8.2f MB/s, %.2f M tokens/s, %lld tokens; JSON share of the time %.1f%%\n", tokpath,
           (double)bytes / 1048576.0 / s->seconds, (double)s->tokens / 1e6 / s->seconds, (long long)s->tokens,
           100.0 * s->json_seconds / s->seconds);
    distill_dataset_free(ds);
    distill_tokenizer_free(tok);
    return 0;
}
