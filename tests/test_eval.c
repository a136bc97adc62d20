/* Evaluation metrics: pass@k, think-tag analysis, code extraction, completion rates, the results
   JSON, and scoring a generations JSONL file. Every expected value is worked out by hand in the
   comments (never taken from the code under test). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

static void test_pass_at_k(void) {
    /* 1 - C(n-c,k)/C(n,k) */
    CHECK_CLOSE(distill_pass_at_k(10, 0, 1), 0.0, 0, 1e-15, "n=10 c=0 k=1");
    CHECK_CLOSE(distill_pass_at_k(5, 1, 1), 0.2, 0, 1e-15, "n=5 c=1 k=1 = c/n");
    CHECK_CLOSE(distill_pass_at_k(5, 2, 2), 0.7, 0, 1e-15, "n=5 c=2 k=2 = 1 - 3/10");
    CHECK_CLOSE(distill_pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0, 0, 1e-15, "n=10 c=3 k=5 = 1 - C(7,5)/C(10,5)");
    CHECK_CLOSE(distill_pass_at_k(200, 1, 100), 0.5, 0, 1e-12, "n=200 c=1 k=100 = 1 - 100/200");
    CHECK_CLOSE(distill_pass_at_k(20, 7, 3), 1.0 - 286.0 / 1140.0, 0, 1e-15, "n=20 c=7 k=3 = 1 - C(13,3)/C(20,3)");
    /* n - c < k: every subset of k samples holds a pass */
    CHECK(distill_pass_at_k(4, 2, 3) == 1.0, "n=4 c=2 k=3 must be exactly 1, got %g", distill_pass_at_k(4, 2, 3));
    CHECK(distill_pass_at_k(10, 10, 5) == 1.0, "n=c=10 k=5 must be 1");
    CHECK(distill_pass_at_k(5, 5, 5) == 1.0, "n=c=k must be 1");
    CHECK(distill_pass_at_k(5, 0, 5) == 0.0, "c=0 must be 0");
    /* large n: the product form stays finite where binomials overflow a double */
    CHECK_CLOSE(distill_pass_at_k(2000, 1000, 1), 0.5, 0, 1e-12, "n=2000 c=1000 k=1");
    /* invalid input */
    CHECK(isnan(distill_pass_at_k(5, 1, 0)), "k=0 is invalid");
    CHECK(isnan(distill_pass_at_k(5, 1, 6)), "k>n is invalid");
    CHECK(isnan(distill_pass_at_k(5, 6, 1)), "c>n is invalid");
    CHECK(isnan(distill_pass_at_k(5, -1, 1)), "c<0 is invalid");
}

/* Extract the code of text (no prompt) into buf; returns has_code. */
static int code_of(const char *prompt, const char *text, char *buf, size_t cap, int *closed) {
    size_t b = 0, e = 0;
    int ok = distill_extract_code(prompt, prompt ? strlen(prompt) : 0, text, strlen(text), &b, &e, closed);
    buf[0] = 0;
    if (ok) {
        size_t n = e - b < cap - 1 ? e - b : cap - 1;
        memcpy(buf, text + b, n);
        buf[n] = 0;
    }
    return ok;
}

static void test_extract_code(void) {
    char buf[256];
    int closed = -1;
    CHECK(code_of(NULL, "```python\na = 1\n```\nthen\n```\nb = 2\n```\n", buf, sizeof buf, &closed) &&
          !strcmp(buf, "b = 2") && closed == 1, "last block of two: got '%s'", buf);
    CHECK(code_of(NULL, "<think>\n```\nx\n```\n", buf, sizeof buf, &closed) == 0,
          "inside an unclosed think block there is no answer yet: got '%s'", buf);
    CHECK(code_of(NULL, "<think>```\nthought\n```</think>\nno code here", buf, sizeof buf, &closed) == 0,
          "code only inside the think block does not count: got '%s'", buf);
    CHECK(code_of(NULL, "<think>```\nthought\n```</think>\n```cpp\nint main(){}\n```", buf, sizeof buf, &closed) &&
          !strcmp(buf, "int main(){}"), "block after </think>: got '%s'", buf);
    CHECK(code_of(NULL, "</think>```python\nx\n```", buf, sizeof buf, &closed) && !strcmp(buf, "x"),
          "fence right after </think> on the same line: got '%s'", buf);
    CHECK(code_of(NULL, "</think>\n```python\ndef f():\n    return 1```", buf, sizeof buf, &closed) &&
          !strcmp(buf, "def f():\n    return 1") && closed == 1, "closing ``` ending the last line: got '%s'", buf);
    CHECK(code_of(NULL, "```python\r\nx=1\r\n```\r\n", buf, sizeof buf, &closed) && !strcmp(buf, "x=1"),
          "CRLF line ends: got '%s'", buf);
    CHECK(code_of(NULL, "done\n```python\nwhile True:\n    pass\n", buf, sizeof buf, &closed) &&
          !strcmp(buf, "while True:\n    pass\n") && closed == 0, "unclosed block runs to the end: got '%s' closed %d", buf, closed);
    CHECK(code_of(NULL, "no fences at all", buf, sizeof buf, &closed) == 0, "no block");
    CHECK(code_of(NULL, "a `inline` and ``double``", buf, sizeof buf, &closed) == 0, "inline code is not a block");
    CHECK(code_of(NULL, "```\n```", buf, sizeof buf, &closed) == 1 && !strcmp(buf, "") && closed == 1,
          "empty block: got '%s'", buf);
    CHECK(code_of("<|im_start|>assistant\n<think>\n", "reasoning...</think>\n```py\nok\n```", buf, sizeof buf, &closed) &&
          !strcmp(buf, "ok"), "think opened by the prompt: got '%s'", buf);
    CHECK(code_of(NULL, "<|begin_of_thought|>t<|end_of_thought|>\n   ```rust\nfn main(){}\n   ```", buf, sizeof buf, &closed) &&
          !strcmp(buf, "fn main(){}"), "thought markers, indented fences: got '%s'", buf);
    CHECK(code_of(NULL, "</think>\n````\na ``` b\n````\n", buf, sizeof buf, &closed) &&
          closed == 1, "four-backtick fence: got '%s'", buf);
    {
        distill_gen_analysis a;
        const char *t = "``` python \nx\n```";
        distill_analyze_generation(NULL, 0, t, strlen(t), &a);
        CHECK(a.lang_end - a.lang_begin == 6 && !memcmp(t + a.lang_begin, "python", 6), "language tag trimmed");
    }
}

static void test_think_analysis(void) {
    distill_gen_analysis a;
    const char *t;
    t = "<think>\nhmm\n</think>\n```python\nprint(1)\n```\n";
    distill_analyze_generation(NULL, 0, t, strlen(t), &a);
    CHECK(a.think_open && a.think_close && a.think_both && !a.open_in_prompt && a.strict, "complete trace");
    CHECK(a.think_begin == 7 && a.think_end == 12, "think span [7,12): got [%zu,%zu)", a.think_begin, a.think_end);

    t = "</think> then <think> reopened";
    distill_analyze_generation(NULL, 0, t, strlen(t), &a);
    CHECK(a.think_open && a.think_close && !a.think_both, "close before open is not 'both in order'");
    CHECK(a.think_end == strlen(t), "unclosed think span runs to the end");

    t = "</think>\nanswer";
    distill_analyze_generation(NULL, 0, t, strlen(t), &a);
    CHECK(!a.think_open && a.think_close && !a.think_both, "close only, no prompt");
    distill_analyze_generation("user: hi\nassistant: <think>\n", 28, t, strlen(t), &a);
    CHECK(a.think_open && a.open_in_prompt && a.think_both && a.think_begin == 0 && a.think_end == 0,
          "opened by the prompt: open %d both %d span [%zu,%zu)", a.think_open, a.think_both, a.think_begin, a.think_end);
    /* a prompt that opens AND closes its think block (e.g. a few-shot example) leaves none open */
    distill_analyze_generation("<think>x</think>", 16, "plain", 5, &a);
    CHECK(!a.think_open && !a.open_in_prompt, "closed think in the prompt");
    t = "<|begin_of_thought|>a b<|end_of_thought|>";
    distill_analyze_generation(NULL, 0, t, strlen(t), &a);
    CHECK(a.think_both && a.think_begin == 20 && a.think_end == 23, "thought markers: [%zu,%zu)", a.think_begin, a.think_end);
    /* strict needs a COMPLETE fence after the close */
    t = "<think>x</think>\n```python\nunfinished";
    distill_analyze_generation(NULL, 0, t, strlen(t), &a);
    CHECK(!a.strict && a.has_code && !a.code_closed, "unclosed fence is not strict");
    t = "```python\nx\n```";
    distill_analyze_generation(NULL, 0, t, strlen(t), &a);
    CHECK(!a.strict && a.has_code, "no </think>: not strict");
}

static void test_count_tokens_fallback(void) {
    CHECK(distill_count_tokens(NULL, "  a bb\n\tccc  ", 13) == 3, "three words");
    CHECK(distill_count_tokens(NULL, "", 0) == 0, "empty");
    CHECK(distill_count_tokens(NULL, "one", 3) == 1, "one word");
}

/* Six hand-written generations over three problems:
     g0 p0 easy  "<think>\nlet me think\n</think>\n```python\nprint(1)\n```\n"  stop    pass
     g1 p0 easy  "<think>\nhmm hmm hmm hmm"                                    length  fail
     g2 p1 hard  "```\nx = 1\n```"                                             stop    pass
     g3 p1 hard  prompt opens <think>; "</think>\n```py\ncode\n"               length  pass
     g4 p2 easy  "<|begin_of_thought|>a b<|end_of_thought|>\n```cpp\nint main(){}\n```" stop fail
     g5 p2 easy  "answer is 42"                                                unknown fail
   open: g0 g1 g3 g4 = 4/6; close: g0 g3 g4 = 3/6; both: g0 g3 g4 = 3/6;
   strict (not cut, </think> + complete fence): g0 g4 = 2/6; completion: stop 3 / known 5 = 0.6;
   think words: g0 3 ("let me think"), g1 4, g3 0, g4 2 -> mean 9/4 = 2.25, median (2+3)/2 = 2.5;
   pass@1 = mean(1/2, 2/2, 0/2) = 0.5; pass@2 = mean(1, 1, 0) = 2/3 (n-c = 1 < 2 for p0);
   accuracy_completed = (g0 g2 g4) 2/3; accuracy_truncated = (g1 g3) 1/2.
   easy = p0 p2 (g0 g1 g4 g5): completion 2/3, pass@1 = mean(0.5, 0) = 0.25. */
static const char *const gens[6] = {
    "<think>\nlet me think\n</think>\n```python\nprint(1)\n```\n",
    "<think>\nhmm hmm hmm hmm",
    "```\nx = 1\n```",
    "</think>\n```py\ncode\n",
    "<|begin_of_thought|>a b<|end_of_thought|>\n```cpp\nint main(){}\n```",
    "answer is 42"};
static const distill_finish fins[6] = {DISTILL_FINISH_STOP, DISTILL_FINISH_LENGTH, DISTILL_FINISH_STOP,
                                       DISTILL_FINISH_LENGTH, DISTILL_FINISH_STOP, DISTILL_FINISH_UNKNOWN};
static const int passes[6] = {1, 0, 1, 1, 0, 0};

static void fill_samples(distill_sample_result *s, int with_pass) {
    int i;
    for (i = 0; i < 6; i++) {
        distill_gen_analysis a;
        const char *prompt = i == 3 ? "<|im_start|>assistant\n<think>\n" : NULL;
        distill_analyze_generation(prompt, prompt ? strlen(prompt) : 0, gens[i], strlen(gens[i]), &a);
        memset(&s[i], 0, sizeof s[i]);
        distill_sample_result_from_analysis(&s[i], &a);
        s[i].problem = i / 2;
        s[i].finish = fins[i];
        s[i].pass = with_pass ? passes[i] : -1;
        s[i].think_tokens = a.think_open ? (double)distill_count_tokens(NULL, gens[i] + a.think_begin,
                                                                         a.think_end - a.think_begin) : -1;
    }
}

static void test_metrics(void) {
    distill_sample_result s[6];
    distill_eval_metrics m;
    distill_error err;
    int ks[2] = {1, 2};
    fill_samples(s, 1);
    CHECK(distill_eval_compute(s, 6, ks, 2, &m, &err) == 0, "compute: %s", err.msg);
    CHECK(m.n == 6 && m.n_problems == 3, "n %lld problems %lld", (long long)m.n, (long long)m.n_problems);
    CHECK_CLOSE(m.completion_rate, 0.6, 0, 1e-12, "completion_rate");
    CHECK_CLOSE(m.strict_completion_rate, 2.0 / 6, 0, 1e-12, "strict_completion_rate");
    CHECK_CLOSE(m.think_open_rate, 4.0 / 6, 0, 1e-12, "think_open_rate");
    CHECK_CLOSE(m.think_close_rate, 3.0 / 6, 0, 1e-12, "think_close_rate");
    CHECK_CLOSE(m.think_both_rate, 3.0 / 6, 0, 1e-12, "think_both_rate");
    CHECK_CLOSE(m.think_tokens_mean, 2.25, 0, 1e-12, "think_tokens_mean");
    CHECK_CLOSE(m.think_tokens_median, 2.5, 0, 1e-12, "think_tokens_median");
    CHECK(m.verified == 1, "verified");
    CHECK_CLOSE(m.pass_at_1, 0.5, 0, 1e-12, "pass_at_1");
    CHECK_CLOSE(m.pass_at_k[0], 0.5, 0, 1e-12, "pass_at_k[1]");
    CHECK_CLOSE(m.pass_at_k[1], 2.0 / 3, 0, 1e-12, "pass_at_k[2]");
    CHECK_CLOSE(m.accuracy_completed, 2.0 / 3, 0, 1e-12, "accuracy_completed");
    CHECK_CLOSE(m.accuracy_truncated, 0.5, 0, 1e-12, "accuracy_truncated");
    /* order of samples does not matter */
    {
        distill_sample_result r[6];
        distill_eval_metrics m2;
        int i;
        for (i = 0; i < 6; i++) r[i] = s[5 - i];
        distill_eval_compute(r, 6, ks, 2, &m2, &err);
        CHECK(m2.pass_at_k[1] == m.pass_at_k[1] && m2.think_tokens_median == m.think_tokens_median, "order independence");
    }
    /* a strict trace cut by the cap is not a strict completion: g0 (strict) marked as cut leaves
       g4 alone, 1/6; its completion moves to truncated: stop 2 / known 5 = 0.4 */
    {
        distill_sample_result r[6];
        distill_eval_metrics m2;
        memcpy(r, s, sizeof r);
        r[0].finish = DISTILL_FINISH_LENGTH;
        CHECK(distill_eval_compute(r, 6, ks, 2, &m2, &err) == 0, "compute: %s", err.msg);
        CHECK_CLOSE(m2.strict_completion_rate, 1.0 / 6, 0, 1e-12, "strict_completion_rate with g0 cut");
        CHECK_CLOSE(m2.completion_rate, 0.4, 0, 1e-12, "completion_rate with g0 cut");
    }
    /* k larger than every problem's n: no problem enters, NaN (null in JSON) */
    {
        int k3 = 3;
        CHECK(distill_eval_compute(s, 6, &k3, 1, &m, &err) == 0 && isnan(m.pass_at_k[0]) &&
              m.pass_at_k_problems[0] == 0, "pass@3 with n=2 per problem is undefined");
    }
    /* mixing verified and unverified samples is an error */
    s[2].pass = -1;
    CHECK(distill_eval_compute(s, 6, ks, 2, &m, &err) == -1, "partly verified must fail");
    CHECK(strstr(err.msg, "verif") != NULL, "message: %s", err.msg);
    /* empty set: every rate is NaN, no crash */
    CHECK(distill_eval_compute(s, 0, ks, 2, &m, &err) == 0 && isnan(m.completion_rate) && m.n == 0, "empty set");
}

/* Read a whole small file into a static buffer. */
static const char *slurp(const char *path) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n = 0;
    buf[0] = 0;
    if (!f) return buf;
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static double num_at(const distill_json *root, const char *path) {
    const distill_json *v = distill_json_path(root, path);
    return v && v->type == DISTILL_JSON_NUMBER ? v->num : -12345.0;
}

static void test_results_json(void) {
    distill_sample_result s[6];
    const char *diff[3] = {"easy", "hard", "easy"};
    int ks[2] = {1, 2};
    distill_error err;
    distill_json *root;
    const char *text;
    FILE *f;
    fill_samples(s, 1);
    f = fopen("build/test_eval_results.json", "wb");
    CHECK(f != NULL, "open build/");
    if (!f) return;
    CHECK(distill_eval_write_json(f, s, 6, diff, 3, ks, 2, "words", &err) == 0, "write: %s", err.msg);
    fclose(f);
    text = slurp("build/test_eval_results.json");
    root = distill_json_parse(text, strlen(text), "results.json", 1, &err);
    CHECK(root != NULL, "results must be valid JSON: %s\n%s", err.msg, text);
    if (!root) return;
    CHECK(num_at(root, "n") == 6, "n");
    CHECK_CLOSE(num_at(root, "completion_rate"), 0.6, 0, 1e-9, "completion_rate");
    CHECK_CLOSE(num_at(root, "strict_completion_rate"), 1.0 / 3, 0, 1e-9, "strict_completion_rate");
    CHECK_CLOSE(num_at(root, "think_open_rate"), 2.0 / 3, 0, 1e-9, "think_open_rate");
    CHECK_CLOSE(num_at(root, "think_close_rate"), 0.5, 0, 1e-9, "think_close_rate");
    CHECK_CLOSE(num_at(root, "think_both_rate"), 0.5, 0, 1e-9, "think_both_rate");
    CHECK_CLOSE(num_at(root, "think_tokens_mean"), 2.25, 0, 1e-9, "think_tokens_mean");
    CHECK_CLOSE(num_at(root, "think_tokens_median"), 2.5, 0, 1e-9, "think_tokens_median");
    CHECK_CLOSE(num_at(root, "pass_at_1"), 0.5, 0, 1e-9, "pass_at_1");
    CHECK_CLOSE(num_at(root, "pass_at_k.1"), 0.5, 0, 1e-9, "pass_at_k.1");
    CHECK_CLOSE(num_at(root, "pass_at_k.2"), 2.0 / 3, 0, 1e-9, "pass_at_k.2");
    CHECK_CLOSE(num_at(root, "accuracy_completed"), 2.0 / 3, 0, 1e-9, "accuracy_completed");
    CHECK_CLOSE(num_at(root, "accuracy_truncated"), 0.5, 0, 1e-9, "accuracy_truncated");
    CHECK_CLOSE(num_at(root, "per_difficulty.easy.completion_rate"), 2.0 / 3, 0, 1e-9, "easy completion");
    CHECK_CLOSE(num_at(root, "per_difficulty.easy.pass_at_1"), 0.25, 0, 1e-9, "easy pass@1");
    CHECK_CLOSE(num_at(root, "per_difficulty.hard.pass_at_1"), 1.0, 0, 1e-9, "hard pass@1");
    CHECK(num_at(root, "per_difficulty.hard.n") == 2, "hard n");
    distill_json_free(root);

    /* without a verifier the pass keys are absent, null where undefined */
    fill_samples(s, 0);
    f = fopen("build/test_eval_results.json", "wb");
    REQUIRE(f != NULL, "cannot write build/test_eval_results.json");
    distill_eval_write_json(f, s, 1, NULL, 0, ks, 2, "tokens", &err);   /* only g0 */
    fclose(f);
    text = slurp("build/test_eval_results.json");
    root = distill_json_parse(text, strlen(text), "results.json", 1, &err);
    CHECK(root != NULL, "valid JSON: %s", text);
    if (!root) return;
    CHECK(distill_json_get(root, "pass_at_1") == NULL && distill_json_get(root, "pass_at_k") == NULL,
          "no pass keys without a verifier");
    CHECK(distill_json_get(root, "accuracy_truncated") == NULL, "no accuracy without a verifier");
    CHECK(num_at(root, "completion_rate") == 1.0, "one stop of one");
    distill_json_free(root);
}

/* The same six generations as a JSONL file in the formats other tools write. */
static void test_generations_file(void) {
    distill_eval_file_options o;
    distill_error err;
    distill_json *root;
    const char *text;
    int ks[2] = {1, 2};
    FILE *f = fopen("build/test_eval_results.json", "wb");
    if (!f) { CHECK(0, "open"); return; }
    memset(&o, 0, sizeof o);
    o.ks = ks; o.nk = 2;
    o.out_jsonl = "build/test_eval_scored.jsonl";
    CHECK(distill_eval_generations_file("tests/fixtures/eval/generations.jsonl", &o, f, &err) == 0,
          "score fixture: %s", err.msg);
    fclose(f);
    text = slurp("build/test_eval_results.json");
    root = distill_json_parse(text, strlen(text), "results.json", 1, &err);
    CHECK(root != NULL, "valid JSON: %s", text);
    if (!root) return;
    CHECK(num_at(root, "n") == 6 && num_at(root, "n_problems") == 3, "n, problems");
    CHECK_CLOSE(num_at(root, "completion_rate"), 0.6, 0, 1e-9, "completion_rate");
    CHECK_CLOSE(num_at(root, "strict_completion_rate"), 1.0 / 3, 0, 1e-9, "strict");
    CHECK_CLOSE(num_at(root, "think_open_rate"), 2.0 / 3, 0, 1e-9, "open");
    CHECK_CLOSE(num_at(root, "think_tokens_mean"), 2.25, 0, 1e-9, "think mean");
    CHECK_CLOSE(num_at(root, "pass_at_k.2"), 2.0 / 3, 0, 1e-9, "pass@2");
    CHECK_CLOSE(num_at(root, "per_difficulty.easy.pass_at_1"), 0.25, 0, 1e-9, "easy pass@1");
    distill_json_free(root);
    /* the scored JSONL: one object per sample with the grader fields */
    {
        distill_line_reader *lr = distill_line_reader_open("build/test_eval_scored.jsonl", 0, &err);
        const char *line;
        size_t len;
        int64_t ln;
        int n = 0;
        CHECK(lr != NULL, "scored jsonl: %s", err.msg);
        while (lr && distill_line_reader_next(lr, &line, &len, &ln, &err) == 1) {
            distill_json *r = distill_json_parse(line, len, "scored", (int)ln, &err);
            CHECK(r != NULL, "line %d: %s", n, err.msg);
            if (r) {
                const distill_json *code = distill_json_get(r, "code");
                CHECK(distill_json_get(r, "question_id") && distill_json_get(r, "finish_reason") &&
                      distill_json_get(r, "pass") && code, "grader fields on line %d", n);
                if (n == 0) CHECK(code && code->type == DISTILL_JSON_STRING && !strcmp(code->str, "print(1)"), "code of g0");
                if (n == 4) CHECK(code && code->type == DISTILL_JSON_STRING && !strcmp(code->str, "int main(){}"), "code of g4");
                if (n == 5) CHECK(code && code->type == DISTILL_JSON_NULL, "g5 has no code");
                distill_json_free(r);
            }
            n++;
        }
        CHECK(n == 6, "6 scored lines, got %d", n);
        if (lr) distill_line_reader_close(lr);
    }
    /* bad input: a missing field names file, line and field */
    f = fopen("build/test_eval_bad.jsonl", "wb");
    if (f) { fputs("{\"text\":\"ok\"}\n{\"output\":\"x\"}\n", f); fclose(f); }
    f = fopen("build/test_eval_results.json", "wb");
    memset(&o, 0, sizeof o);
    CHECK(distill_eval_generations_file("build/test_eval_bad.jsonl", &o, f, &err) == -1, "missing field fails");
    CHECK(strstr(err.msg, ":2") && strstr(err.msg, "text"), "message names line and field: %s", err.msg);
    f = freopen("build/test_eval_results.json", "wb", f);
    o.field = "output";
    CHECK(distill_eval_generations_file("build/test_eval_bad.jsonl", &o, f, &err) == -1, "first line lacks 'output'");
    if (f) fclose(f);
    f = fopen("build/test_eval_bad.jsonl", "wb");
    if (f) { fputs("{\"text\":\"ok\"}\n{\"text\": tru}\n", f); fclose(f); }
    f = fopen("build/test_eval_results.json", "wb");
    memset(&o, 0, sizeof o);
    CHECK(distill_eval_generations_file("build/test_eval_bad.jsonl", &o, f, &err) == -1, "malformed JSON fails");
    CHECK(strstr(err.msg, "test_eval_bad.jsonl:2") != NULL, "message names the line: %s", err.msg);
    if (f) fclose(f);
}

/* A verifier callback sees the record and the text. */
static int verify_contains_answer(void *ctx, const distill_json *record, const char *text, size_t len,
                                  char *reason, size_t cap) {
    const distill_json *ans = distill_json_get(record, "answer");
    int *calls = (int *)ctx;
    (*calls)++;
    (void)len;
    if (!ans || ans->type != DISTILL_JSON_STRING) { snprintf(reason, cap, "no answer"); return -1; }
    if (strstr(text, ans->str)) { snprintf(reason, cap, "found %s", ans->str); return 1; }
    snprintf(reason, cap, "missing %s", ans->str);
    return 0;
}

static void test_verifier_callback(void) {
    distill_eval_file_options o;
    distill_verifier v;
    distill_error err;
    distill_json *root;
    const char *text;
    int calls = 0;
    FILE *f = fopen("build/test_eval_v.jsonl", "wb");
    if (!f) { CHECK(0, "open"); return; }
    /* q1: 2 samples, 1 right; q2: 1 sample, right; q3: answer missing -> fail (error) */
    fputs("{\"question_id\":\"q1\",\"answer\":\"42\",\"text\":\"it is 42\",\"finish_reason\":\"stop\"}\n"
          "{\"question_id\":\"q1\",\"answer\":\"42\",\"text\":\"it is 41\",\"finish_reason\":\"stop\"}\n"
          "{\"question_id\":7,\"answer\":\"x\",\"text\":\"x\",\"finish_reason\":\"length\"}\n"
          "{\"question_id\":\"q3\",\"text\":\"?\",\"pass\":true}\n", f);
    fclose(f);
    memset(&o, 0, sizeof o);
    v.fn = verify_contains_answer; v.ctx = &calls;
    o.verifier = &v;
    o.out_jsonl = "build/test_eval_v_scored.jsonl";
    f = fopen("build/test_eval_results.json", "wb");
    REQUIRE(f != NULL, "cannot write build/test_eval_results.json");
    CHECK(distill_eval_generations_file("build/test_eval_v.jsonl", &o, f, &err) == 0, "%s", err.msg);
    fclose(f);
    CHECK(calls == 4, "called once per sample, got %d", calls);
    text = slurp("build/test_eval_results.json");
    root = distill_json_parse(text, strlen(text), "r", 1, &err);
    CHECK(root != NULL, "%s", text);
    if (!root) return;
    /* pass@1 = mean(1/2, 1/1, 0/1) = 0.5 (the verifier overrides the file's "pass") */
    CHECK_CLOSE(num_at(root, "pass_at_1"), 0.5, 0, 1e-12, "pass_at_1");
    CHECK_CLOSE(num_at(root, "accuracy_completed"), 0.5, 0, 1e-12, "accuracy_completed (1 of 2 stop)");
    CHECK_CLOSE(num_at(root, "accuracy_truncated"), 1.0, 0, 1e-12, "accuracy_truncated (1 of 1)");
    distill_json_free(root);
    text = slurp("build/test_eval_v_scored.jsonl");
    CHECK(strstr(text, "\"reason\":\"missing 42\"") != NULL, "reason recorded: %s", text);
    CHECK(strstr(text, "\"question_id\":\"7\"") != NULL, "numeric ids become strings");
}

int main(void) {
    RUN(test_pass_at_k);
    RUN(test_extract_code);
    RUN(test_think_analysis);
    RUN(test_count_tokens_fallback);
    RUN(test_metrics);
    RUN(test_results_json);
    RUN(test_generations_file);
    RUN(test_verifier_callback);
    return harness_done("test_eval");
}
