/* distill_eval_model end to end on a tiny random model with a freshly trained tokenizer:
   prompts from string fields and from conversations, n samples per problem, results that do
   not depend on the batch size, a verifier callback, the per-sample JSONL, and the agreement of
   the training rendering with the generation prompt (the prompt is exactly the prefix of the
   training row before its first supervised token). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

static distill_tokenizer *tok;
static distill_model *model;

static int setup(void) {
    static const char *texts[] = {
        "add one to 3", "hi there, how are you", "what is 2+2", "<think>x</think> ok",
        "the quick brown fox jumps over the lazy dog", "one two three four five six seven",
        "def f(x):\n    return x + 1\n", "```python\nprint(1)\n```"};
    int n_sp = 0;
    const char *const *sp = distill_tokenizer_default_specials(&n_sp);
    distill_error err;
    distill_config c = distill_config_default();
    if (tok && model) return 0;
    tok = distill_tokenizer_train(texts, NULL, 8, 300, DISTILL_PATTERN_GPT2, sp, n_sp, &err);
    if (!tok) { printf("    tokenizer: %s\n", err.msg); return -1; }
    c.vocab_size = distill_tokenizer_vocab_size(tok);
    c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 64;
    c.init_std = 0.3f;
    c.qkv_bias = 1;
    model = distill_model_create(&c, 1, 256, 123, &err);
    if (!model) { printf("    model: %s\n", err.msg); return -1; }
    return 0;
}

static const char *eval_lines =
    "{\"id\":\"a\",\"prompt\":\"add one to 3\",\"difficulty\":\"easy\"}\n"
    "\n"
    "{\"id\":\"b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi there\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>x</think> ok\"}],\"difficulty\":\"hard\"}\n"
    "{\"id\":7,\"question\":\"what is 2+2\",\"difficulty\":3}\n";

/* A deterministic stand-in for a real checker: passes texts of even byte length. */
static int verify_even(void *ctx, const distill_json *rec, const char *text, size_t len,
                       char *reason, size_t cap) {
    int *calls = (int *)ctx;
    (*calls)++;
    (void)text;
    snprintf(reason, cap, "len %zu", len);
    return rec && rec->type == DISTILL_JSON_OBJECT && len % 2 == 0;
}

static char *slurp(const char *path) {
    size_t n;
    return (char *)distill_read_file(path, &n, NULL);
}

static int run_eval(int batch, int n, float temp, const char *jsonl, const char *results, int *calls) {
    distill_eval_model_options o = distill_eval_model_options_default();
    distill_verifier v;
    distill_error err;
    int ks[2] = {1, 2}, rc;
    FILE *f = fopen(results, "wb");
    if (!f) return -1;
    v.fn = verify_even; v.ctx = calls;
    o.n_samples = n; o.batch = batch; o.ks = ks; o.nk = 2;
    o.gen.temperature = temp; o.gen.top_p = 0.9f; o.gen.max_new_tokens = 12; o.gen.seed = 5;
    o.verifier = &v;
    o.out_jsonl = jsonl;
    rc = distill_eval_model(model, tok, "build/test_generate_eval.jsonl", &o, f, &err);
    fclose(f);
    if (rc) printf("    eval: %s\n", err.msg);
    return rc;
}

static void test_eval_model_batches(void) {
    FILE *f;
    char *a, *b, *c, *res;
    int calls = 0;
    distill_json *root;
    distill_error err;
    if (setup()) { CHECK(0, "setup"); return; }
    f = fopen("build/test_generate_eval.jsonl", "wb");
    if (!f) { CHECK(0, "open"); return; }
    fputs(eval_lines, f);
    fclose(f);
    CHECK(run_eval(4, 3, 1.0f, "build/tge_a.jsonl", "build/tge_a.json", &calls) == 0, "batch 4");
    CHECK(calls == 9, "verifier called once per sample: %d", calls);
    CHECK(run_eval(1, 3, 1.0f, "build/tge_b.jsonl", "build/tge_b.json", &calls) == 0, "batch 1");
    CHECK(run_eval(9, 3, 1.0f, "build/tge_c.jsonl", "build/tge_c.json", &calls) == 0, "batch 9");
    a = slurp("build/tge_a.jsonl"); b = slurp("build/tge_b.jsonl"); c = slurp("build/tge_c.jsonl");
    CHECK(a && b && c && !strcmp(a, b) && !strcmp(a, c), "generations differ between batch sizes 4, 1, 9");
    /* recompute pass@1 and completion from the JSONL, independently of the aggregation code */
    if (a) {
        distill_line_reader *lr = distill_line_reader_open("build/tge_a.jsonl", 0, &err);
        const char *line;
        size_t len;
        int64_t ln;
        int n = 0, passes[3] = {0, 0, 0}, stops = 0, known = 0, pi = -1;
        const char *ids[3] = {"a", "b", "7"};
        while (lr && distill_line_reader_next(lr, &line, &len, &ln, &err) == 1) {
            distill_json *r = distill_json_parse(line, len, "jsonl", (int)ln, &err);
            const distill_json *q = r ? distill_json_get(r, "question_id") : NULL;
            const distill_json *p = r ? distill_json_get(r, "pass") : NULL;
            const distill_json *fr = r ? distill_json_get(r, "finish_reason") : NULL;
            const distill_json *s = r ? distill_json_get(r, "sample") : NULL;
            int k;
            CHECK(q && p && fr && s, "fields on line %lld", (long long)ln);
            if (q && p && fr && s) {
                for (k = 0; k < 3; k++) if (!strcmp(q->str, ids[k])) pi = k;
                CHECK(pi == n / 3 && s->i64 == n % 3, "line %d: question %s sample %lld", n, q->str, (long long)s->i64);
                if (pi >= 0) passes[pi] += p->type == DISTILL_JSON_TRUE;
                stops += !strcmp(fr->str, "stop");
                known++;
            }
            distill_json_free(r);
            n++;
        }
        if (lr) distill_line_reader_close(lr);
        CHECK(n == 9, "9 samples, got %d", n);
        res = slurp("build/tge_a.json");
        root = res ? distill_json_parse(res, strlen(res), "results", 1, &err) : NULL;
        CHECK(root != NULL, "results JSON");
        if (root) {
            double want = (passes[0] + passes[1] + passes[2]) / 9.0;
            const distill_json *v = distill_json_get(root, "pass_at_1");
            CHECK(v && fabs(v->num - want) < 1e-9, "pass_at_1 %g, recomputed %g", v ? v->num : -1, want);
            v = distill_json_get(root, "completion_rate");
            CHECK(v && (v->type == DISTILL_JSON_NULL ? stops == 0 && known == 0 : fabs(v->num - stops / (double)known) < 1e-9),
                  "completion_rate");
            CHECK(distill_json_path(root, "per_difficulty.easy.n") && distill_json_path(root, "per_difficulty.hard.n") &&
                  distill_json_path(root, "per_difficulty.3.n"), "difficulties easy, hard and 3 (a number)");
            CHECK(distill_json_path(root, "n_problems")->num == 3, "3 problems");
            distill_json_free(root);
        }
        distill_free(res);
    }
    distill_free(a); distill_free(b); distill_free(c);
}

/* Greedy eval of the conversation record equals greedy generation from the training row's
   prefix: the two renderings agree token for token. */
static void test_training_and_generation_renderings_agree(void) {
    const distill_chat_template *tmpl = distill_chat_template_get("chatml");
    distill_data_options dopt = distill_data_options_default();
    distill_data_format fmt = DISTILL_FORMAT_AUTO;
    distill_conv conv;
    distill_ids row, prompt;
    distill_floats w;
    distill_error err;
    distill_json *rec;
    const char *recb = "{\"id\":\"b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi there\"},"
                       "{\"role\":\"assistant\",\"content\":\"<think>x</think> ok\"}]}";
    size_t first = 0, i;
    int calls = 0;
    if (setup()) { CHECK(0, "setup"); return; }
    memset(&conv, 0, sizeof conv); memset(&row, 0, sizeof row); memset(&prompt, 0, sizeof prompt); memset(&w, 0, sizeof w);
    rec = distill_json_parse(recb, strlen(recb), "rec", 1, &err);
    CHECK(rec && distill_conv_from_json(rec, &dopt, &fmt, "rec", &conv, &err) == 0, "conv: %s", err.msg);
    CHECK(distill_chat_encode(tmpl, tok, &conv, DISTILL_LOSS_LAST, 0, &row, &w, &err) == 0, "training row: %s", err.msg);
    while (first < w.n && !(w.v[first] > 0)) first++;
    CHECK(first > 0 && first < row.n, "the row has a supervised answer (first at %zu of %zu)", first, row.n);
    conv.n--;   /* drop the assistant turn */
    CHECK(distill_chat_encode(tmpl, tok, &conv, DISTILL_LOSS_LAST, 1, &prompt, NULL, &err) == 0, "prompt: %s", err.msg);
    CHECK(prompt.n == first, "prompt has %zu tokens, the training row's unsupervised prefix %zu", prompt.n, first);
    for (i = 0; i < first && i < prompt.n; i++)
        if (prompt.ids[i] != row.ids[i]) { CHECK(0, "token %zu differs: %d vs %d", i, prompt.ids[i], row.ids[i]); break; }
    /* greedy generation from the training prefix == greedy eval of the record */
    {
        distill_generator *g = distill_generator_create(model, 1, 128, &err);
        distill_gen_options o = distill_gen_options_default();
        distill_gen_result r;
        int32_t stops[2];
        const int32_t *pp = row.ids;
        int pl = (int)first, ns = 0;
        char *jsonl;
        FILE *f = fopen("build/test_generate_eval.jsonl", "wb");
        if (f) { fprintf(f, "%s\n", recb); fclose(f); }
        if (distill_chat_eot_id(tmpl, tok) >= 0) stops[ns++] = distill_chat_eot_id(tmpl, tok);
        if (distill_tokenizer_eos_id(tok) >= 0) stops[ns++] = distill_tokenizer_eos_id(tok);
        o.stop_ids = stops; o.n_stop_ids = ns; o.max_new_tokens = 12;
        CHECK(g && distill_generate(g, tok, &pp, &pl, 1, &o, &r, &err) == 0, "generate: %s", err.msg);
        CHECK(run_eval(1, 1, 0.0f, "build/tge_d.jsonl", "build/tge_d.json", &calls) == 0, "greedy eval");
        jsonl = slurp("build/tge_d.jsonl");
        if (jsonl && r.text) {
            distill_json *j = distill_json_parse(jsonl, strlen(jsonl), "tge_d", 1, &err);
            const distill_json *t = j ? distill_json_get(j, "text") : NULL;
            CHECK(t && t->len == r.len && !memcmp(t->str, r.text, r.len), "eval text differs from generation from the training prefix");
            distill_json_free(j);
        }
        distill_free(jsonl);
        distill_gen_result_free(&r);
        distill_generator_free(g);
    }
    distill_json_free(rec);
    distill_conv_free(&conv);
    distill_ids_free(&row); distill_ids_free(&prompt); distill_floats_free(&w);
}

/* Streaming: the pieces handed to on_token concatenate to the final text, stop strings are cut
   and never streamed. */
typedef struct { char buf[4096]; size_t n; int last_id_seen; } stream_acc;
static void on_tok(void *ctx, int sample, int32_t id, const char *piece, size_t len) {
    stream_acc *a = (stream_acc *)ctx;
    (void)sample;
    if (a->n + len < sizeof a->buf) { memcpy(a->buf + a->n, piece, len); a->n += len; }
    if (id == -1) a->last_id_seen = 1;
}

static void test_streaming_and_stop_strings(void) {
    distill_generator *g;
    distill_gen_options o = distill_gen_options_default();
    distill_gen_result r, r2;
    distill_error err;
    distill_ids p;
    const int32_t *pp;
    int pl;
    stream_acc acc;
    char stop[8];
    if (setup()) { CHECK(0, "setup"); return; }
    memset(&p, 0, sizeof p);
    distill_tokenizer_encode(tok, "the quick", 9, 0, &p, &err);
    pp = p.ids; pl = (int)p.n;
    g = distill_generator_create(model, 1, 128, &err);
    if (!g) { CHECK(0, "%s", err.msg); return; }
    memset(&acc, 0, sizeof acc);
    o.max_new_tokens = 40; o.temperature = 1.0f; o.seed = 3;
    o.on_token = on_tok; o.on_token_ctx = &acc;
    CHECK(distill_generate(g, tok, &pp, &pl, 1, &o, &r, &err) == 0, "%s", err.msg);
    CHECK(r.text && acc.n == r.len && !memcmp(acc.buf, r.text, r.len), "streamed %zu bytes, text %zu", acc.n, r.len);
    /* stop at a string taken from the middle of that text (3 bytes at a third of it) */
    if (r.text && r.len >= 9) {
        size_t at = r.len / 3, first;
        memcpy(stop, r.text + at, 3); stop[3] = 0;
        first = (size_t)(strstr(r.text, stop) - r.text);
        {
            const char *ss[1];
            ss[0] = stop;
            memset(&acc, 0, sizeof acc);
            o.stop_strings = ss; o.n_stop_strings = 1;
            CHECK(distill_generate(g, tok, &pp, &pl, 1, &o, &r2, &err) == 0, "%s", err.msg);
            CHECK(r2.finish == DISTILL_FINISH_STOP && r2.len == first && !memcmp(r2.text, r.text, first),
                  "stop string '%s': finish %d len %zu want %zu", stop, (int)r2.finish, r2.len, first);
            CHECK(acc.n == r2.len && !memcmp(acc.buf, r2.text, r2.len), "the stream holds the stop string back");
            distill_gen_result_free(&r2);
        }
    }
    distill_gen_result_free(&r);
    distill_ids_free(&p);
    distill_generator_free(g);
}

int main(void) {
    RUN(test_eval_model_batches);
    RUN(test_training_and_generation_renderings_agree);
    RUN(test_streaming_and_stop_strings);
    distill_model_free(model);
    distill_tokenizer_free(tok);
    return harness_done("test_generate_eval");
}
