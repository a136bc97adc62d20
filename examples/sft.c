/* sft.c - sequence-level distillation, the method of "The Valley of Code Reasoning": fine-tune a
   small student on a teacher's reasoning traces with plain cross-entropy on the assistant tokens.

       cc -O2 -march=x86-64-v3 -o sft examples/sft.c -lm -lpthread
       ./sft traces.jsonl tokenizer.json out/          (any JSONL the data layer reads)

   The one thing to learn here: the four objects of a training run and their order:
   tokenizer -> dataset (rows with loss weights) -> loader (batches) -> trainer (steps). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"

int main(int argc, char **argv) {
    distill_error err;
    distill_tokenizer *tok;
    distill_dataset *ds;
    distill_loader *loader;
    distill_loader_source src;
    distill_loader_options lo = distill_loader_options_default();
    distill_train_config tc = distill_train_default();
    distill_config mc = distill_config_default();
    distill_model *student;
    distill_trainer *trainer;
    int rc = 1;
    if (argc != 4) { fprintf(stderr, "usage: sft TRACES.jsonl TOKENIZER OUT_DIR\n"); return 2; }

    tok = distill_tokenizer_load(argv[2], NULL, &err);                 /* 1. tokenizer */
    if (!tok) { fprintf(stderr, "%s\n", err.msg); return 1; }
    ds = distill_dataset_load(argv[1], NULL, tok, &err);               /* 2. rows: the chat template
                                                                             supervises assistant tokens */
    if (!ds) { fprintf(stderr, "%s\n", err.msg); return 1; }
    lo.batch_rows = 8;
    loader = distill_loader_create(ds, &lo, &err);                     /* 3. shuffled batches */
    if (!loader) { fprintf(stderr, "%s\n", err.msg); return 1; }
    distill_loader_source_init(&src, loader, ds);

    mc.vocab_size = distill_tokenizer_vocab_size(tok);                 /* a small Llama-style student */
    mc.dim = 128; mc.n_layers = 4; mc.n_heads = 4; mc.n_kv_heads = 2; mc.hidden_dim = 352;
    student = distill_model_create(&mc, lo.batch_rows, 1024, 42, &err);
    if (!student) { fprintf(stderr, "%s\n", err.msg); return 1; }

    tc.epochs = 2;                                                     /* 4. train */
    tc.optim.lr = 1e-3f;
    tc.out_dir = argv[3];          /* checkpoints + metrics.jsonl; rerun with distill_trainer_resume */
    trainer = distill_trainer_create(student, &src.src, NULL, &tc, &err);
    if (trainer && distill_trainer_run(trainer, &err) == 0) rc = 0;
    else fprintf(stderr, "%s\n", err.msg);

    distill_trainer_free(trainer);
    distill_model_free(student);
    distill_loader_free(loader);
    distill_dataset_free(ds);
    distill_tokenizer_free(tok);
    return rc;
}
