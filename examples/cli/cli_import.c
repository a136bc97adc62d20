/* distill import: bring a model from another format into a distill checkpoint. */
#include "cli.h"
#include <string.h>

int cli_import(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    distill_error err;
    distill_model *m;
    char sha[65];
    int i;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: distill import FILE -o OUT.dstl\n"
                   "  FILE: safetensors (config.json beside it; F32/F16/BF16), a llama2.c .bin (RoPE rows are\n"
                   "  permuted to the rotate-half convention), or a distill checkpoint (weights only are kept).\n");
            return 0;
        } else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) && i + 1 < argc) out = argv[++i];
        else if (argv[i][0] != '-' && !in) in = argv[i];
        else { fprintf(stderr, "distill import: unexpected argument '%s' (see --help)\n", argv[i]); return 2; }
    }
    if (!in || !out) { fprintf(stderr, "usage: distill import FILE -o OUT.dstl\n"); return 2; }
    m = distill_model_load(in, 1, 1, NULL, &err);
    if (!m) { fprintf(stderr, "distill import: %s\n", err.msg); return 1; }
    if (distill_checkpoint_write(out, m, 0, NULL, NULL, 0, &err) != 0) {
        fprintf(stderr, "distill import: %s\n", err.msg);
        distill_model_free(m);
        return 1;
    }
    distill_model_sha256(m, sha);
    printf("wrote %s: %zu parameters, weights sha256 %s\n", out, m->num_params, sha);
    distill_model_free(m);
    return 0;
}
