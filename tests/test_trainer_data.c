/* The trainer on the data layer: a top-k cache built over a dataset matches the loader's
   shuffled batches row by row, and resuming through the loader's cursor is exact. Uses the
   stories260K tokenizer from ../shared/data (skips when absent). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <stdlib.h>
#include <sys/stat.h>

#define TOK "../shared/data/stories260K/tok512.bin"

static const char *stories[] = {
    "Once upon a time, there was a little dog named Max.", "Tom liked to play with his red ball in the park.",
    "The sun was hot and the children went to the lake.", "Lily found a shiny stone under the big old tree.",
    "One day, a bird sang a happy song to the cat.", "Mom made a cake and everyone was very happy.",
    "The little boat sailed far away on the blue sea.", "Sam and Sue built a tall tower with their blocks.",
    "A small frog jumped into the pond with a splash.", "The girl said thank you and gave her friend a hug."};

/* The dataset: 30 rows pairing two stories; `shift` changes the second story of each row (another
   dataset with as many rows). */
static distill_dataset *load_variant(distill_tokenizer **tok, int shift) {
    distill_error err;
    FILE *f;
    size_t i;
    distill_dataset *ds;
    *tok = NULL;
    if (!harness_have(TOK)) return NULL;   /* the caller skips */
    *tok = distill_tokenizer_load(TOK, NULL, &err);
    CHECK(*tok != NULL, "%s is present but does not load: %s", TOK, err.msg);
    if (!*tok) return NULL;
    mkdir("build", 0755);
    f = fopen("build/test_trainer_data.jsonl", "w");
    CHECK(f != NULL, "cannot write build/test_trainer_data.jsonl");
    if (!f) return NULL;
    for (i = 0; i < 3 * sizeof stories / sizeof stories[0]; i++)
        fprintf(f, "{\"text\": \"%s %s\"}\n", stories[i % 10], stories[(i * 7 + 3 + shift) % 10]);
    fclose(f);
    ds = distill_dataset_load("build/test_trainer_data.jsonl", NULL, *tok, &err);
    if (!ds) printf("    %s\n", err.msg);
    return ds;
}
static distill_dataset *load(distill_tokenizer **tok) { return load_variant(tok, 0); }

static void test_cache_over_dataset_matches_loader(void) {
    distill_error err;
    distill_tokenizer *tok;
    distill_dataset *ds = load(&tok);
    distill_config c = distill_config_default();
    distill_model *teacher, *student;
    distill_loader_options lo = distill_loader_options_default();
    distill_loader *L;
    distill_loader_source src;
    distill_train_config tc = distill_train_default();
    distill_trainer *T;
    distill_topk_cache *cache;
    if (!tok) SKIP("%s absent", TOK);
    CHECK(ds != NULL, "dataset");
    if (!ds) { distill_tokenizer_free(tok); return; }
    c.vocab_size = distill_tokenizer_vocab_size(tok); c.dim = 32; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 64;
    teacher = distill_model_create(&c, 4, 128, 1, &err);
    student = distill_model_create(&c, 4, 128, 2, &err);
    CHECK(distill_topk_cache_build(teacher, ds, 8, 4, "build/test_trainer_data.top8", &err) == 0, "build: %s", err.msg);
    cache = distill_topk_cache_open("build/test_trainer_data.top8", c.vocab_size, distill_dataset_size(ds), &err);
    CHECK(cache != NULL, "open: %s", err.msg);
    lo.batch_rows = 4;
    L = distill_loader_create(ds, &lo, &err);
    distill_loader_source_init(&src, L, ds);
    tc.progress = 0; tc.kd = 1; tc.max_steps = 12;   /* more than an epoch: reshuffled rows too */
    T = distill_trainer_create(student, &src.src, NULL, &tc, &err);
    CHECK(T && cache && distill_trainer_set_cache(T, cache, &err) == 0, "set cache: %s", err.msg);
    CHECK(T && cache && distill_trainer_run(T, &err) == 0, "train from the cache: %s", err.msg);
    distill_trainer_free(T);
    distill_topk_cache_free(cache);
    distill_loader_free(L);
    distill_model_free(teacher);
    distill_model_free(student);
    distill_dataset_free(ds);
    distill_tokenizer_free(tok);
}

/* The check behind the test above: a cache built over another dataset of as many rows opens,
   but training from it stops at the first row whose tokens differ, naming the row. */
static void test_cache_for_another_dataset_is_refused(void) {
    distill_error err;
    distill_tokenizer *tok, *tok2 = NULL;
    distill_dataset *ds = load(&tok), *other;
    distill_config c = distill_config_default();
    distill_model *teacher, *student;
    distill_loader_options lo = distill_loader_options_default();
    distill_loader *L;
    distill_loader_source src;
    distill_train_config tc = distill_train_default();
    distill_trainer *T;
    distill_topk_cache *cache;
    if (!tok) SKIP("%s absent", TOK);
    CHECK(ds != NULL, "dataset");
    if (!ds) { distill_tokenizer_free(tok); return; }
    c.vocab_size = distill_tokenizer_vocab_size(tok); c.dim = 32; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 64;
    teacher = distill_model_create(&c, 4, 128, 1, &err);
    student = distill_model_create(&c, 4, 128, 2, &err);
    CHECK(distill_topk_cache_build(teacher, ds, 8, 4, "build/test_trainer_data_other.top8", &err) == 0, "build: %s", err.msg);
    other = load_variant(&tok2, 1);
    CHECK(other && distill_dataset_size(other) == distill_dataset_size(ds), "the other dataset has as many rows");
    cache = other ? distill_topk_cache_open("build/test_trainer_data_other.top8", c.vocab_size, distill_dataset_size(other), &err) : NULL;
    CHECK(cache != NULL, "open: %s", err.msg);
    lo.batch_rows = 4;
    L = other ? distill_loader_create(other, &lo, &err) : NULL;
    if (L) distill_loader_source_init(&src, L, other);
    tc.progress = 0; tc.kd = 1; tc.max_steps = 4;
    T = L ? distill_trainer_create(student, &src.src, NULL, &tc, &err) : NULL;
    CHECK(T && cache && distill_trainer_set_cache(T, cache, &err) == 0, "set cache: %s", err.msg);
    err.msg[0] = 0;
    CHECK(T && cache && distill_trainer_run(T, &err) != 0, "training from a cache of another dataset succeeded");
    CHECK(strstr(err.msg, "does not match the data") != NULL, "error: %s", err.msg);
    distill_trainer_free(T);
    distill_topk_cache_free(cache);
    distill_loader_free(L);
    distill_model_free(teacher);
    distill_model_free(student);
    distill_dataset_free(other);
    distill_dataset_free(ds);
    distill_tokenizer_free(tok2);
    distill_tokenizer_free(tok);
}

static void run(distill_dataset *ds, distill_model *m, int steps, const char *resume, const char *save) {
    distill_error err;
    distill_loader_options lo = distill_loader_options_default();
    distill_loader *L;
    distill_loader_source src;
    distill_train_config tc = distill_train_default();
    distill_trainer *T;
    int i;
    lo.batch_rows = 3;
    L = distill_loader_create(ds, &lo, &err);
    distill_loader_source_init(&src, L, ds);
    tc.progress = 0; tc.max_steps = 8; tc.optim.lr = 1e-2f; tc.grad_accum = 2;
    T = distill_trainer_create(m, &src.src, NULL, &tc, &err);
    if (resume) CHECK(distill_trainer_resume(T, resume, &err) == 0, "resume: %s", err.msg);
    for (i = 0; i < steps; i++) CHECK(distill_trainer_step(T, NULL, &err) == 0, "step: %s", err.msg);
    if (save) CHECK(distill_trainer_save(T, save, &err) == 0, "save: %s", err.msg);
    distill_trainer_free(T);
    distill_loader_free(L);
}

static void test_resume_through_loader_cursor(void) {
    distill_error err;
    distill_tokenizer *tok;
    distill_dataset *ds = load(&tok);
    distill_config c = distill_config_default();
    distill_model *a, *b;
    if (!tok) SKIP("%s absent", TOK);
    CHECK(ds != NULL, "dataset");
    if (!ds) { distill_tokenizer_free(tok); return; }
    c.vocab_size = distill_tokenizer_vocab_size(tok); c.dim = 32; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 64;
    a = distill_model_create(&c, 3, 128, 5, &err);
    b = distill_model_create(&c, 3, 128, 5, &err);
    run(ds, a, 8, NULL, NULL);
    run(ds, b, 4, NULL, "build/test_trainer_data.dstl");
    distill_model_init_params(b, 99);   /* the resume must restore everything */
    run(ds, b, 4, "build/test_trainer_data.dstl", NULL);
    CHECK(memcmp(a->params, b->params, sizeof(float) * a->num_floats) == 0, "resume through the loader cursor is not exact");
    distill_model_free(a);
    distill_model_free(b);
    distill_dataset_free(ds);
    distill_tokenizer_free(tok);
}

int main(void) {
    RUN(test_cache_over_dataset_matches_loader);
    RUN(test_cache_for_another_dataset_is_refused);
    RUN(test_resume_through_loader_cursor);
    return harness_done("test_trainer_data");
}
