/* Tokenizer: training (minbpe toy, determinism, thread independence), encode/decode round trips,
   special tokens, streaming decoder, own-format save/load. Needs no external files. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

/* A small corpus with English, code, numbers, CJK, emoji and chat markup. */
static const char *corpus[] = {
    "The quick brown fox jumps over the lazy dog. It's 2024, and we'll see what they've done.",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; i++) { printf(\"%d\\n\", i * i); }",
    "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n<think>12 + 30 = 42</think>42<|im_end|>",
    "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c\xef\xbc\x81 \xe8\xbf\x99\xe6\x98\xaf\xe4\xb8\x80\xe4\xb8\xaa\xe6\xb5\x8b\xe8\xaf\x95\xe3\x80\x82",
    "Family: \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 and flags \xf0\x9f\x87\xab\xf0\x9f\x87\xb7!",
    "    indented\tlines\r\n\r\n  with   many    spaces   ",
    "Numbers 3.14159 2718281828 1,000,000 and 0x1F; CAPS LOCK and MiXeD case.",
};
#define N_CORPUS (sizeof corpus / sizeof corpus[0])

static char *big_corpus(size_t *len) {   /* the corpus repeated with variations, ~60 KB */
    size_t cap = 1 << 17, n = 0, i, r;
    char *s = (char *)malloc(cap);
    for (r = 0; r < 60 && n + 2048 < cap; r++)
        for (i = 0; i < N_CORPUS && n + 1024 < cap; i++)
            n += (size_t)snprintf(s + n, cap - n, "%s %u\n", corpus[i], (unsigned)(r * 7919 % 1000));
    *len = n;
    return s;
}

static distill_tokenizer *train_default(int vocab, int pattern) {
    distill_error err;
    int ns;
    const char *const *sp = distill_tokenizer_default_specials(&ns);
    size_t len;
    char *text = big_corpus(&len);
    const char *texts[1];
    distill_tokenizer *t;
    texts[0] = text;
    t = distill_tokenizer_train(texts, &len, 1, vocab, pattern, sp, ns, &err);
    free(text);
    CHECK(t != NULL, "train: %s", err.msg);
    return t;
}

/* Wikipedia's/minbpe's toy: with ties broken by the smallest pair, "aaabdaaabac" learns
   aa -> 256, then ab -> 257 (tied with (256, a) at count 2; (97, 98) < (256, 97)), then
   (256, 257) -> 258 = "aaab", and encodes to [258, 'd', 258, 'a', 'c']. */
static void test_minbpe_toy(void) {
    distill_error err;
    const char *texts[1] = {"aaabdaaabac"};
    distill_tokenizer *t = distill_tokenizer_train(texts, NULL, 1, 259, DISTILL_PATTERN_NONE, NULL, 0, &err);
    int32_t want[3][3] = {{97, 97, 256}, {97, 98, 257}, {256, 257, 258}};
    int32_t want_ids[5] = {258, 100, 258, 97, 99};
    distill_ids ids = {NULL, 0, 0};
    int r;
    size_t i;
    CHECK(t != NULL, "train: %s", err.msg);
    if (!t) return;
    CHECK(distill_tokenizer_n_merges(t) == 3, "merges %d", distill_tokenizer_n_merges(t));
    for (r = 0; r < 3; r++) {
        int32_t a = -1, b = -1, c = -1;
        distill_tokenizer_merge(t, r, &a, &b, &c);
        CHECK(a == want[r][0] && b == want[r][1] && c == want[r][2], "merge %d: (%d,%d)->%d", r, a, b, c);
    }
    CHECK(distill_tokenizer_encode(t, texts[0], 11, 0, &ids, &err) == 0, "%s", err.msg);
    CHECK(ids.n == 5, "n %zu", ids.n);
    for (i = 0; i < ids.n && i < 5; i++) CHECK(ids.ids[i] == want_ids[i], "id %zu = %d", i, ids.ids[i]);
    CHECK(distill_tokenizer_vocab_size(t) == 259, "vocab %d", distill_tokenizer_vocab_size(t));
    {   /* asking for more merges than the text has pairs stops early */
        distill_tokenizer *t2 = distill_tokenizer_train(texts, NULL, 1, 1000, DISTILL_PATTERN_NONE, NULL, 0, &err);
        CHECK(t2 && distill_tokenizer_n_merges(t2) < 20, "early stop");
        distill_tokenizer_free(t2);
    }
    distill_ids_free(&ids);
    distill_tokenizer_free(t);
}

static int same_merges(const distill_tokenizer *a, const distill_tokenizer *b) {
    int r;
    if (distill_tokenizer_n_merges(a) != distill_tokenizer_n_merges(b)) return 0;
    if (distill_tokenizer_vocab_size(a) != distill_tokenizer_vocab_size(b)) return 0;
    for (r = 0; r < distill_tokenizer_n_merges(a); r++) {
        int32_t x[3], y[3];
        distill_tokenizer_merge(a, r, &x[0], &x[1], &x[2]);
        distill_tokenizer_merge(b, r, &y[0], &y[1], &y[2]);
        if (memcmp(x, y, sizeof x)) return 0;
    }
    return 1;
}

static void test_determinism_and_threads(void) {
    distill_error err;
    size_t len, i;
    char *text = big_corpus(&len);
    /* split the corpus into many texts so that the parallel counting really splits work */
    const char *texts[64];
    size_t lens[64];
    distill_tokenizer *t1, *t2, *t3;
    int saved = distill_get_threads();
    for (i = 0; i < 64; i++) {
        texts[i] = text + len * i / 64;
        lens[i] = len * (i + 1) / 64 - len * i / 64;
    }
    distill_set_threads(1);
    t1 = distill_tokenizer_train(texts, lens, 64, 600, DISTILL_PATTERN_GPT2, NULL, 0, &err);
    t2 = distill_tokenizer_train(texts, lens, 64, 600, DISTILL_PATTERN_GPT2, NULL, 0, &err);
    distill_set_threads(2);
    t3 = distill_tokenizer_train(texts, lens, 64, 600, DISTILL_PATTERN_GPT2, NULL, 0, &err);
    distill_set_threads(saved);
    CHECK(t1 && t2 && t3, "train: %s", err.msg);
    if (t1 && t2 && t3) {
        CHECK(distill_tokenizer_n_merges(t1) == 600 - 256, "merges %d", distill_tokenizer_n_merges(t1));
        CHECK(same_merges(t1, t2), "training twice gives different merges");
        CHECK(same_merges(t1, t3), "1 and 2 threads give different merges");
    }
    {   /* the streaming trainer on the same texts agrees with the array trainer */
        distill_bpe_trainer *tr = distill_bpe_trainer_new(DISTILL_PATTERN_GPT2, NULL, 0, &err);
        distill_tokenizer *t4;
        for (i = 0; i < 64; i++) distill_bpe_trainer_add(tr, texts[i], lens[i], &err);
        t4 = distill_bpe_trainer_finish(tr, 600, &err);
        distill_bpe_trainer_free(tr);
        CHECK(t4 && t1 && same_merges(t1, t4), "streaming trainer differs");
        distill_tokenizer_free(t4);
    }
    distill_tokenizer_free(t1); distill_tokenizer_free(t2); distill_tokenizer_free(t3);
    free(text);
}

/* Every merge must be the most frequent pair at its time (brute-force recount, independent of
   the incremental bookkeeping), with ties going to the smallest pair. Pairs are counted
   overlapping ("aaa" has two (a, a)), as minbpe's get_stats does. */
static void test_merges_are_argmax(void) {
    distill_error err;
    const char *texts[3] = {"abababcabcabcd xyxyxyxyz abab", "hello hello help helm yellow", "aaaa bbbb aaaa"};
    distill_tokenizer *t = distill_tokenizer_train(texts, NULL, 3, 256 + 12, DISTILL_PATTERN_NONE, NULL, 0, &err);
    int32_t seq[3][64];
    int len[3], r, k, i;
    CHECK(t != NULL, "%s", err.msg);
    if (!t) return;
    for (k = 0; k < 3; k++) {
        len[k] = (int)strlen(texts[k]);
        for (i = 0; i < len[k]; i++) seq[k][i] = (unsigned char)texts[k][i];
    }
    for (r = 0; r < distill_tokenizer_n_merges(t); r++) {
        int32_t a, b, c, ba = -1, bb = -1;
        long best = 0;
        distill_tokenizer_merge(t, r, &a, &b, &c);
        /* brute force: count every pair, pick max count then smallest pair */
        {
            int x, y;
            for (x = 0; x < 256 + r; x++)
                for (y = 0; y < 256 + r; y++) {
                    long cnt = 0;
                    for (k = 0; k < 3; k++)
                        for (i = 0; i + 1 < len[k]; i++)
                            if (seq[k][i] == x && seq[k][i + 1] == y) cnt++;   /* overlapping, as minbpe's get_stats */
                    if (cnt > best) { best = cnt; ba = x; bb = y; }
                }
        }
        CHECK(a == ba && b == bb && c == 256 + r, "merge %d: got (%d,%d) want (%d,%d)", r, a, b, ba, bb);
        for (k = 0; k < 3; k++) {   /* apply it */
            int j = 0;
            for (i = 0; i < len[k];) {
                if (i + 1 < len[k] && seq[k][i] == a && seq[k][i + 1] == b) { seq[k][j++] = c; i += 2; }
                else seq[k][j++] = seq[k][i++];
            }
            len[k] = j;
        }
    }
    distill_tokenizer_free(t);
}

static void check_round_trip(const distill_tokenizer *t, const char *s, size_t n, int allow, const char *what) {
    distill_error err;
    distill_ids ids = {NULL, 0, 0};
    char *back;
    size_t blen = 0;
    CHECK(distill_tokenizer_encode(t, s, n, allow, &ids, &err) == 0, "%s: %s", what, err.msg);
    back = distill_tokenizer_decode(t, ids.ids, ids.n, &blen);
    CHECK(back && blen == n && memcmp(back, s, n) == 0, "%s: round trip differs (%zu vs %zu bytes)", what, blen, n);
    CHECK(n == 0 || ids.n > 0, "%s: no ids", what);
    free(back);
    distill_ids_free(&ids);
}

static void test_round_trips(void) {
    int pattern;
    distill_rng rng;
    char rnd[4096];
    size_t i;
    distill_rng_seed(&rng, 7);
    for (i = 0; i < sizeof rnd; i++) rnd[i] = (char)distill_rng_below(&rng, 256);
    for (pattern = 0; pattern <= DISTILL_PATTERN_QWEN2; pattern++) {
        distill_tokenizer *t = train_default(1200, pattern);
        size_t len;
        char *longtext = big_corpus(&len);
        if (!t) { free(longtext); return; }
        check_round_trip(t, "", 0, 0, "empty");
        check_round_trip(t, "a", 1, 0, "one byte");
        check_round_trip(t, "\xff", 1, 0, "one invalid byte");
        check_round_trip(t, "\x00", 1, 0, "NUL byte");
        check_round_trip(t, corpus[4], strlen(corpus[4]), 0, "CJK");
        check_round_trip(t, corpus[5], strlen(corpus[5]), 0, "emoji ZWJ");
        check_round_trip(t, rnd, sizeof rnd, 0, "random bytes");
        check_round_trip(t, rnd, sizeof rnd, 1, "random bytes, specials allowed");
        check_round_trip(t, "\xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 \xe2\x82", 15, 0, "surrogate, overlong, >U+10FFFF, truncated");
        check_round_trip(t, longtext, len, 0, "long text");
        check_round_trip(t, longtext, len, 1, "long text, specials allowed");
        check_round_trip(t, "   \n\n\t  x  \r\n ", 14, 0, "white space");
        free(longtext);
        distill_tokenizer_free(t);
    }
}

static void test_specials(void) {
    distill_tokenizer *t = train_default(500, DISTILL_PATTERN_GPT2);
    distill_error err;
    distill_ids ids = {NULL, 0, 0};
    const char *s = "<|im_start|>user\nhi<|im_end|>";
    int32_t im_start, im_end, think, eot;
    size_t i;
    int found = 0;
    if (!t) return;
    eot = distill_tokenizer_token_id(t, "<|endoftext|>");
    im_start = distill_tokenizer_token_id(t, "<|im_start|>");
    im_end = distill_tokenizer_token_id(t, "<|im_end|>");
    think = distill_tokenizer_token_id(t, "<think>");
    CHECK(eot == 495 && im_start == 496 && im_end == 497 && think == 498 &&
          distill_tokenizer_token_id(t, "</think>") == 499, "special ids %d %d %d %d", eot, im_start, im_end, think);
    CHECK(distill_tokenizer_vocab_size(t) == 500, "vocab %d", distill_tokenizer_vocab_size(t));
    CHECK(distill_tokenizer_is_special(t, im_end) && !distill_tokenizer_is_special(t, 65), "is_special");
    CHECK(distill_tokenizer_token_id(t, "a") == 'a', "token_id of a byte");
    CHECK(distill_tokenizer_token_id(t, "<|nope|>") == -1, "unknown token");
    CHECK(distill_tokenizer_eos_id(t) == eot, "eos");
    distill_tokenizer_encode(t, s, strlen(s), 1, &ids, &err);
    CHECK(ids.n >= 4 && ids.ids[0] == im_start && ids.ids[ids.n - 1] == im_end, "allowed specials become ids");
    ids.n = 0;
    distill_tokenizer_encode(t, s, strlen(s), 0, &ids, &err);
    for (i = 0; i < ids.n; i++) if (distill_tokenizer_is_special(t, ids.ids[i])) found = 1;
    CHECK(!found, "specials matched in text although not allowed");
    check_round_trip(t, s, strlen(s), 0, "specials as text");
    {   /* a user-added special token */
        int32_t id = distill_tokenizer_add_special(t, "<tool_call>", &err);
        CHECK(id == 500 && distill_tokenizer_token_id(t, "<tool_call>") == 500, "add_special %d", id);
        CHECK(distill_tokenizer_add_special(t, "<think>", &err) == think, "add existing");
        ids.n = 0;
        distill_tokenizer_encode(t, "a<tool_call>b", 13, 1, &ids, &err);
        CHECK(ids.n == 3 && ids.ids[1] == 500, "added special used");
    }
    distill_ids_free(&ids);
    distill_tokenizer_free(t);
}

static void test_save_load(void) {
    distill_tokenizer *t = train_default(1500, DISTILL_PATTERN_CL100K), *u;
    distill_error err;
    size_t len, n1, n2;
    char *text = big_corpus(&len), *f1, *f2;
    distill_ids a = {NULL, 0, 0}, b = {NULL, 0, 0};
    if (!t) { free(text); return; }
    CHECK(distill_tokenizer_save(t, "build/test_tok_own.txt", &err) == 0, "save: %s", err.msg);
    u = distill_tokenizer_load("build/test_tok_own.txt", NULL, &err);
    CHECK(u != NULL, "load: %s", err.msg);
    if (u) {
        CHECK(same_merges(t, u), "merges differ after load");
        CHECK(distill_tokenizer_pattern(u) == DISTILL_PATTERN_CL100K, "pattern");
        distill_tokenizer_encode(t, text, len, 1, &a, &err);
        distill_tokenizer_encode(u, text, len, 1, &b, &err);
        CHECK(a.n == b.n && a.n > 0 && !memcmp(a.ids, b.ids, a.n * sizeof(int32_t)), "ids differ after load");
        CHECK(distill_tokenizer_save(u, "build/test_tok_own2.txt", &err) == 0, "save 2");
        f1 = (char *)distill_read_file("build/test_tok_own.txt", &n1, &err);
        f2 = (char *)distill_read_file("build/test_tok_own2.txt", &n2, &err);
        CHECK(f1 && f2 && n1 == n2 && !memcmp(f1, f2, n1), "save -> load -> save is not byte-identical");
        distill_free(f1); distill_free(f2);
        distill_tokenizer_free(u);
    }
    free(text);
    distill_ids_free(&a); distill_ids_free(&b);
    distill_tokenizer_free(t);
}

static int valid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0, j;
        if (!k || i + k > n) return 0;
        for (j = 1; j < k; j++) if (((unsigned char)s[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

static void test_stream_decoder(void) {
    /* trained without merges, so multi-byte characters are split across byte tokens */
    const char *texts[1] = {"x"};
    distill_error err;
    distill_tokenizer *t = distill_tokenizer_train(texts, NULL, 1, 256, DISTILL_PATTERN_GPT2, NULL, 0, &err);
    const char *s = "a\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 \xc3\xa9!";
    distill_ids ids = {NULL, 0, 0};
    distill_decoder d;
    char out[256];
    size_t n = 0, k, i;
    int all_valid = 1;
    const char *p;
    if (!t) return;
    distill_tokenizer_encode(t, s, strlen(s), 0, &ids, &err);
    CHECK(ids.n == strlen(s), "one id per byte");
    distill_decoder_init(&d, t);
    for (i = 0; i < ids.n; i++) {
        p = distill_decoder_push(&d, ids.ids[i], &k);
        if (!valid_utf8(p, k)) all_valid = 0;
        memcpy(out + n, p, k);
        n += k;
    }
    p = distill_decoder_flush(&d, &k);
    memcpy(out + n, p, k);
    n += k;
    CHECK(all_valid, "a push emitted part of a character");
    CHECK(n == strlen(s) && !memcmp(out, s, n), "stream differs from the text");
    /* invalid bytes come out as U+FFFD; a dangling lead byte is flushed as U+FFFD */
    {
        int32_t bad[3] = {0xff, 'a', 0xe4};
        n = 0;
        for (i = 0; i < 3; i++) { p = distill_decoder_push(&d, bad[i], &k); memcpy(out + n, p, k); n += k; }
        p = distill_decoder_flush(&d, &k);
        memcpy(out + n, p, k);
        n += k;
        CHECK(n == 7 && !memcmp(out, "\xef\xbf\xbd" "a" "\xef\xbf\xbd", 7), "replacement (%zu bytes)", n);
    }
    distill_decoder_free(&d);
    distill_ids_free(&ids);
    distill_tokenizer_free(t);
}

static void test_batch_matches_single(void) {
    distill_tokenizer *t = train_default(800, DISTILL_PATTERN_GPT2);
    distill_error err;
    distill_ids outs[N_CORPUS];
    size_t i;
    int saved = distill_get_threads();
    if (!t) return;
    memset(outs, 0, sizeof outs);
    distill_set_threads(2);
    CHECK(distill_tokenizer_encode_batch(t, corpus, NULL, N_CORPUS, 1, outs, &err) == 0, "%s", err.msg);
    distill_set_threads(saved);
    for (i = 0; i < N_CORPUS; i++) {
        distill_ids one = {NULL, 0, 0};
        distill_tokenizer_encode(t, corpus[i], strlen(corpus[i]), 1, &one, &err);
        CHECK(one.n == outs[i].n && !memcmp(one.ids, outs[i].ids, one.n * sizeof(int32_t)), "text %zu", i);
        distill_ids_free(&one);
        distill_ids_free(&outs[i]);
    }
    distill_tokenizer_free(t);
}

#ifndef DISTILL_NO_THREADS
#include <pthread.h>
typedef struct enc_job { const distill_tokenizer *t; const char *s; size_t n; distill_ids ids; } enc_job;
static void *enc_thread(void *arg) {
    enc_job *j = (enc_job *)arg;
    distill_error err;
    int r;
    for (r = 0; r < 3; r++) { j->ids.n = 0; distill_tokenizer_encode(j->t, j->s, j->n, 1, &j->ids, &err); }
    return NULL;
}
#endif

/* Four threads encode the same text at once on one tokenizer (shared chunk cache, cold at first):
   every thread gets the ids a lone encode gets. */
static void test_concurrent_encode(void) {
#ifndef DISTILL_NO_THREADS
    distill_tokenizer *t = train_default(800, DISTILL_PATTERN_CL100K), *u;
    distill_error err;
    size_t len;
    char *text = big_corpus(&len);
    enc_job jobs[4];
    pthread_t th[4];
    distill_ids ref = {NULL, 0, 0};
    int k;
    if (!t) { free(text); return; }
    /* the reference from a fresh copy, so its cache is independent */
    distill_tokenizer_save(t, "build/test_tok_conc.txt", &err);
    u = distill_tokenizer_load("build/test_tok_conc.txt", NULL, &err);
    CHECK(u != NULL, "%s", err.msg);
    if (u) distill_tokenizer_encode(u, text, len, 1, &ref, &err);
    for (k = 0; k < 4; k++) {
        jobs[k].t = t; jobs[k].s = text; jobs[k].n = len;
        memset(&jobs[k].ids, 0, sizeof jobs[k].ids);
        pthread_create(&th[k], NULL, enc_thread, &jobs[k]);
    }
    for (k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        CHECK(jobs[k].ids.n == ref.n && ref.n > 0 && !memcmp(jobs[k].ids.ids, ref.ids, ref.n * sizeof(int32_t)),
              "thread %d got different ids", k);
        distill_ids_free(&jobs[k].ids);
    }
    distill_ids_free(&ref);
    distill_tokenizer_free(u);
    distill_tokenizer_free(t);
    free(text);
#else
    SKIP("DISTILL_NO_THREADS");
#endif
}

static void test_bad_arguments(void) {
    distill_error err;
    const char *texts[1] = {"abc"};
    const char *dup[2] = {"<a>", "<a>"};
    err.msg[0] = 0;
    CHECK(distill_tokenizer_train(texts, NULL, 1, 100, DISTILL_PATTERN_GPT2, NULL, 0, &err) == NULL &&
          strstr(err.msg, "vocab_size"), "small vocab: %s", err.msg);
    CHECK(distill_tokenizer_train(texts, NULL, 1, 300, 99, NULL, 0, &err) == NULL && strstr(err.msg, "pattern"),
          "bad pattern: %s", err.msg);
    CHECK(distill_tokenizer_train(texts, NULL, 1, 300, 1, dup, 2, &err) == NULL && strstr(err.msg, "twice"),
          "duplicate special: %s", err.msg);
    CHECK(distill_pattern_from_name("cl100k") == DISTILL_PATTERN_CL100K && distill_pattern_from_name("x") == -1, "names");
}

int main(void) {
    RUN(test_minbpe_toy);
    RUN(test_merges_are_argmax);
    RUN(test_determinism_and_threads);
    RUN(test_round_trips);
    RUN(test_specials);
    RUN(test_save_load);
    RUN(test_stream_decoder);
    RUN(test_batch_matches_single);
    RUN(test_concurrent_encode);
    RUN(test_bad_arguments);
    return harness_done("test_tokenizer");
}
