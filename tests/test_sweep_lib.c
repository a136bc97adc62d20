/* The library pieces the generic sweep stands on: disjoint pools (distill_dataset_select with an
   exclude list), exact batches per epoch for packed schedules (distill_loader_epoch_batches and
   the trainer's step estimate), and distill_eval_model's metrics output checked against the
   verdicts its verifier gave, counted independently. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <string.h>
#include <sys/stat.h>

#define DATA "build/test_sweep_lib.jsonl"
#define EVAL "build/test_sweep_lib_eval.jsonl"

static distill_tokenizer *tiny_tokenizer(void) {
    static const char *texts[3] = {"the cat sat on the mat and the dog ran", "one two three four five six",
                                   "<think>a b c</think> ```x```"};
    distill_error err;
    int ns;
    const char *const *specials = distill_tokenizer_default_specials(&ns);
    distill_tokenizer *t = distill_tokenizer_train(texts, NULL, 3, 300, DISTILL_PATTERN_NONE, specials, ns, &err);
    CHECK(t != NULL, "tokenizer: %s", err.msg);
    return t;
}

/* 50 rows: prompt/response of varied length, record ids 0..49 */
static distill_dataset *rows50(distill_tokenizer *tok) {
    distill_error err;
    distill_dataset *ds;
    FILE *f;
    int i, k;
    mkdir("build", 0755);
    f = fopen(DATA, "wb");
    CHECK(f != NULL, "cannot write " DATA);
    if (!f) return NULL;
    for (i = 0; i < 50; i++) {
        fprintf(f, "{\"prompt\": \"row %d\", \"completion\": \"", i);
        for (k = 0; k < 1 + i % 7; k++) fputs("the cat sat on the mat ", f);
        fputs("\"}\n", f);
    }
    fclose(f);
    ds = distill_dataset_load(DATA, NULL, tok, &err);
    CHECK(ds != NULL, "%s", err.msg);
    return ds;
}

static int64_t row_id(const distill_dataset *ds, int64_t i) {
    distill_row r;
    distill_dataset_row(ds, i, &r);
    return r.id;
}

static void test_select_exclude(void) {
    distill_tokenizer *tok = tiny_tokenizer();
    distill_dataset *ds = tok ? rows50(tok) : NULL, *all, *a, *b;
    distill_select_options so;
    distill_error err;
    int64_t ex[25], i, j, odd = 0;
    if (!ds) { distill_tokenizer_free(tok); return; }
    for (i = 0; i < 25; i++) ex[i] = 48 - 2 * i;   /* every even id, unsorted */
    memset(&so, 0, sizeof so);
    so.exclude = ex;
    so.n_exclude = 25;
    all = distill_dataset_select(ds, &so, &err);
    CHECK(all && distill_dataset_size(all) == 25, "pool without the evens: %lld rows", all ? (long long)distill_dataset_size(all) : -1LL);
    for (i = 0; all && i < distill_dataset_size(all); i++) odd += row_id(all, i) % 2 == 1;
    CHECK(odd == 25, "%lld of 25 rows are odd ids", (long long)odd);
    so.seed = 3;
    so.n = 5;
    a = distill_dataset_select(ds, &so, &err);
    so.n = 10;
    b = distill_dataset_select(ds, &so, &err);
    CHECK(a && b && distill_dataset_size(a) == 5 && distill_dataset_size(b) == 10, "subset sizes");
    for (i = 0; a && b && i < 5; i++) {   /* nested: the 5 lie inside the 10, and none is excluded */
        int found = 0;
        CHECK(row_id(a, i) % 2 == 1, "excluded row %lld selected", (long long)row_id(a, i));
        for (j = 0; j < 10; j++) found += row_id(b, j) == row_id(a, i);
        CHECK(found == 1, "row %lld of the 5-subset is not in the 10-subset", (long long)row_id(a, i));
    }
    so.n = 26;
    distill_dataset_free(distill_dataset_select(ds, &so, &err));
    CHECK(strstr(err.msg, "26") && strstr(err.msg, "25") && strstr(err.msg, "excluded"), "error: %s", err.msg);
    so.n_exclude = -1;
    CHECK(distill_dataset_select(ds, &so, &err) == NULL, "a negative exclude count was accepted");
    distill_dataset_free(a);
    distill_dataset_free(b);
    distill_dataset_free(all);
    distill_dataset_free(ds);
    distill_tokenizer_free(tok);
}

static void test_epoch_batches(void) {
    distill_tokenizer *tok = tiny_tokenizer();
    distill_dataset *ds = tok ? rows50(tok) : NULL;
    distill_loader_options lo = distill_loader_options_default();
    distill_error err;
    int64_t tokens = 0, batches, T_steps;
    const distill_data_stats *st;
    if (!ds) { distill_tokenizer_free(tok); return; }
    st = distill_dataset_stats(ds);
    lo.batch_rows = 4;
    batches = distill_loader_epoch_batches(ds, &lo, &tokens);
    CHECK(batches == 13, "unpacked: %lld batches of 4 rows for 50 rows, want 13", (long long)batches);
    CHECK(tokens == st->tokens, "unpacked epoch: %lld tokens, the dataset has %lld", (long long)tokens, (long long)st->tokens);
    lo.pack = 1;
    lo.seq_len = 128;
    lo.batch_rows = 2;
    batches = distill_loader_epoch_batches(ds, &lo, &tokens);
    CHECK(tokens == st->tokens, "packed epoch: %lld tokens, the dataset has %lld", (long long)tokens, (long long)st->tokens);
    CHECK(batches > 0 && batches * 2 * 128 >= tokens && batches < 13 * 2, "packed: %lld batches for %lld tokens",
          (long long)batches, (long long)tokens);
    {   /* the trainer's schedule for one epoch is exactly those batches (not rows / batch_rows) */
        distill_config mc = distill_config_default();
        distill_model *m;
        distill_loader *L;
        distill_loader_source ls;
        distill_train_config tc = distill_train_default();
        distill_trainer *T;
        mc.vocab_size = distill_tokenizer_vocab_size(tok);
        mc.dim = 16; mc.n_layers = 1; mc.n_heads = 2; mc.n_kv_heads = 1; mc.hidden_dim = 32;
        m = distill_model_create(&mc, 2, 128, 1, &err);
        L = m ? distill_loader_create(ds, &lo, &err) : NULL;
        CHECK(L != NULL, "%s", err.msg);
        if (L) {
            distill_loader_source_init(&ls, L, ds);
            CHECK(ls.src.batches_per_epoch == batches, "source: %lld batches per epoch", (long long)ls.src.batches_per_epoch);
            tc.epochs = 2;
            tc.batch_rows = 2;
            tc.progress = 0;
            T = distill_trainer_create(m, &ls.src, NULL, &tc, &err);
            T_steps = T ? distill_trainer_total_steps(T) : -1;
            CHECK(T_steps == 2 * batches, "2 epochs: %lld steps planned, want %lld", (long long)T_steps, (long long)(2 * batches));
            distill_trainer_free(T);
            distill_loader_free(L);
        }
        distill_model_free(m);
    }
    distill_dataset_free(ds);
    distill_tokenizer_free(tok);
}

/* A verifier whose verdict depends on the text (odd byte count passes), counting per problem. */
typedef struct { int pass[4], n[4]; } tally;
static int odd_verifier(void *ctx, const distill_json *rec, const char *text, size_t len, char *reason, size_t cap) {
    tally *t = (tally *)ctx;
    const distill_json *id = distill_json_get(rec, "id");
    int p = (int)(len % 2), q = id && id->is_int ? (int)id->i64 : 0;
    (void)text;
    if (q >= 0 && q < 4) { t->pass[q] += p; t->n[q]++; }
    snprintf(reason, cap, "%s", p ? "odd" : "even");
    return p;
}

static void test_eval_metrics_out(void) {
    distill_tokenizer *tok = tiny_tokenizer();
    distill_config mc = distill_config_default();
    distill_model *m;
    distill_error err;
    distill_eval_model_options o = distill_eval_model_options_default();
    distill_eval_metrics em;
    distill_verifier v;
    tally t;
    FILE *f;
    int i, ks[2] = {1, 2}, np = 0;
    double want = 0;
    if (!tok) return;
    f = fopen(EVAL, "wb");
    CHECK(f != NULL, "cannot write " EVAL);
    if (!f) { distill_tokenizer_free(tok); return; }
    for (i = 0; i < 4; i++) fprintf(f, "{\"id\": %d, \"question\": \"the cat %d\"}\n", i, i);
    fclose(f);
    mc.vocab_size = distill_tokenizer_vocab_size(tok);
    mc.dim = 16; mc.n_layers = 1; mc.n_heads = 2; mc.n_kv_heads = 1; mc.hidden_dim = 32;
    m = distill_model_create(&mc, 1, 64, 5, &err);
    memset(&t, 0, sizeof t);
    memset(&em, 0, sizeof em);
    v.fn = odd_verifier;
    v.ctx = &t;
    o.n_samples = 4;
    o.ks = ks;
    o.nk = 2;
    o.gen.temperature = 1.0f;
    o.gen.max_new_tokens = 9;
    o.verifier = &v;
    o.metrics = &em;
    CHECK(m && distill_eval_model(m, tok, EVAL, &o, NULL, &err) == 0, "eval: %s", err.msg);
    for (i = 0; i < 4; i++) if (t.n[i]) { want += (double)t.pass[i] / t.n[i]; np++; }
    CHECK(np == 4 && t.n[0] == 4 && t.n[3] == 4, "the verifier saw %d problems", np);
    CHECK(em.verified && em.n == 16 && em.n_problems == 4, "metrics: n %lld problems %lld", (long long)em.n, (long long)em.n_problems);
    CHECK_CLOSE(em.pass_at_1, want / 4, 1e-12, 1e-12, "pass@1 against the verifier's own tally");
    CHECK(em.nk == 2 && em.pass_at_k[1] >= em.pass_at_1 - 1e-12, "pass@2 %g < pass@1 %g", em.pass_at_k[1], em.pass_at_1);
    CHECK(em.n_truncated + em.n_completed == em.n_finish_known, "finish counts");
    distill_model_free(m);
    distill_tokenizer_free(tok);
}

int main(void) {
    RUN(test_select_exclude);
    RUN(test_epoch_batches);
    RUN(test_eval_metrics_out);
    return harness_done("test_sweep_lib");
}
