/* distill info FILE: what a model file holds (any format distill_model_load reads). */
#include "cli.h"
#include <string.h>

int cli_info(int argc, char **argv) {
    distill_error err;
    distill_model *m;
    const char *fmt;
    char sha[65];
    const distill_config *c;
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc == 2 ? stdout : stderr,
                "usage: distill info FILE\n"
                "  FILE: a distill checkpoint (.dstl), a safetensors file (config.json beside it) or a llama2.c .bin.\n"
                "  Prints the format, the model config, the parameter count and the SHA-256 of the weights\n"
                "  (float32 little-endian, tensors in size-table order: equal weights give equal hashes\n"
                "  whatever the file format).\n");
        return argc == 2 ? 0 : 2;
    }
    fmt = distill_model_file_format(argv[1], &err);
    if (!fmt) { fprintf(stderr, "distill info: %s\n", err.msg); return 1; }
    m = distill_model_load(argv[1], 1, 1, NULL, &err);
    if (!m) { fprintf(stderr, "distill info: %s\n", err.msg); return 1; }
    c = &m->cfg;
    distill_model_sha256(m, sha);
    printf("file        %s\nformat      %s\narchitecture %s\n", argv[1], fmt, c->qkv_bias ? "Qwen2 (q/k/v bias)" : "Llama");
    printf("vocab_size  %d\ndim         %d\nn_layers    %d\nn_heads     %d\nn_kv_heads  %d\nhidden_dim  %d\n",
           c->vocab_size, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim);
    printf("rope_theta  %g\nnorm_eps    %g\ntied head   %s\nparameters  %zu\nsha256      %s\n", (double)c->rope_theta,
           (double)c->norm_eps, c->tie_embeddings ? "yes" : "no", m->num_params, sha);
    if (!strcmp(fmt, "checkpoint")) {
        distill_checkpoint *ck = distill_checkpoint_read(argv[1], &err);
        if (ck && ck->train) {
            const distill_json *st = distill_json_get(ck->train, "step");
            printf("training    step %lld (resumable: AdamW moments and data position included)\n",
                   st && st->is_int ? (long long)st->i64 : -1LL);
        }
        distill_checkpoint_free(ck);
    }
    distill_model_free(m);
    return 0;
}
