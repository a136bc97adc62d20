/* distill import: bring a model from another format into a distill checkpoint. */
#include "cli.h"
#include <string.h>

typedef struct { const char *out; } import_opts;

#define CLI_T import_opts
static const cli_opt import_options[] = {
    CLI_PATH_REQ("out", out, "OUT.dstl", "the distill checkpoint to write"),
    CLI_ALIAS("o", "out"),
};
#undef CLI_T

static const cli_cmd import_cmd = {
    "import", "usage: distill import FILE -o OUT.dstl\n",
    "  FILE: safetensors (config.json beside it; F32/F16/BF16), a llama2.c .bin (RoPE rows are\n"
    "  permuted to the rotate-half convention), or a distill checkpoint (weights only are kept).\n",
    import_options, CLI_N(import_options), NULL, 1};

int cli_import(int argc, char **argv) {
    const char *in = NULL, *out;
    distill_error err;
    distill_model *m;
    char sha[65];
    int npos = 0, rc;
    import_opts o;
    o.out = NULL;
    rc = cli_parse(&import_cmd, &o, argc, argv, &in, &npos);
    if (rc != 0) return rc == CLI_HELP ? 0 : 2;
    if (!npos) return cli_usage_error(&import_cmd, "FILE is required: distill import FILE -o OUT.dstl");
    out = o.out;
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
