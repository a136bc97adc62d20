/* kd.c - logit (token-level) distillation from a top-k teacher cache: the teacher runs ONCE over
   the data, its k most likely next tokens and their log-probabilities are stored per supervised
   position, and the student then trains against them as often as you like.

       cc -O2 -march=x86-64-v3 -o kd examples/kd.c -lm -lpthread
       ./kd ../shared/data/stories260K/stories260K.bin ../shared/data/stories260K/tok512.bin \
            stories.jsonl out/                              (stories.jsonl: {"text": "..."} lines)

   The one thing to learn here: teacher and student must share the tokenizer (same vocabulary),
   and the loss is a divergence between their next-token distributions instead of CE on one
   target: here forward KL at temperature 2 (Hinton's tau^2 scaling keeps gradients comparable),
   mixed with 10% of the ordinary cross-entropy. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"

int main(int argc, char **argv) {
    distill_error err;
    distill_tokenizer *tok;
    distill_dataset *ds;
    distill_loader *loader;
    distill_loader_source src;
    distill_loader_options lo = distill_loader_options_default();
    distill_data_options dopt = distill_data_options_default();
    distill_train_config tc = distill_train_default();
    distill_model *teacher, *student;
    distill_topk_cache *cache;
    distill_trainer *trainer;
    distill_config mc;
    char cache_path[1024];
    int rc = 1;
    if (argc != 5) { fprintf(stderr, "usage: kd TEACHER TOKENIZER DATA.jsonl OUT_DIR\n"); return 2; }

    teacher = distill_model_load(argv[1], 8, 512, NULL, &err);      /* any model file distill reads */
    tok = teacher ? distill_tokenizer_load(argv[2], NULL, &err) : NULL;
    if (!teacher || !tok) { fprintf(stderr, "%s\n", err.msg); return 1; }
    dopt.max_seq = 512;
    dopt.truncate = 1;
    ds = distill_dataset_load(argv[3], &dopt, tok, &err);
    if (!ds) { fprintf(stderr, "%s\n", err.msg); return 1; }

    /* 1. the teacher's cost, paid once: top-32 per supervised position */
    snprintf(cache_path, sizeof cache_path, "%s.top32", argv[3]);
    if (distill_topk_cache_build(teacher, ds, 32, 8, cache_path, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    distill_model_free(teacher);
    cache = distill_topk_cache_open(cache_path, 0, distill_dataset_size(ds), &err);   /* validated */
    if (!cache) { fprintf(stderr, "%s\n", err.msg); return 1; }

    /* 2. a student half the teacher's width, same vocabulary */
    mc = distill_config_default();
    mc.vocab_size = distill_topk_cache_vocab(cache);
    mc.dim = 32; mc.n_layers = 2; mc.n_heads = 4; mc.n_kv_heads = 2; mc.hidden_dim = 96;
    student = distill_model_create(&mc, 8, 512, 7, &err);
    lo.batch_rows = 8;
    loader = student ? distill_loader_create(ds, &lo, &err) : NULL;
    if (!loader) { fprintf(stderr, "%s\n", err.msg); return 1; }
    distill_loader_source_init(&src, loader, ds);

    /* 3. train against the cache */
    tc.kd = 1;
    tc.kdc.beta = 0.0f;          /* forward KL(teacher || student) */
    tc.kdc.temperature = 2.0f;
    tc.kdc.alpha = 0.9f;         /* 0.9 * tau^2 * KL + 0.1 * CE */
    tc.epochs = 1;
    tc.optim.lr = 3e-3f;
    tc.out_dir = argv[4];
    trainer = distill_trainer_create(student, &src.src, NULL, &tc, &err);
    if (trainer && distill_trainer_set_cache(trainer, cache, &err) == 0 && distill_trainer_run(trainer, &err) == 0) rc = 0;
    else fprintf(stderr, "%s\n", err.msg);

    distill_trainer_free(trainer);
    distill_model_free(student);
    distill_topk_cache_free(cache);
    distill_loader_free(loader);
    distill_dataset_free(ds);
    distill_tokenizer_free(tok);
    return rc;
}
