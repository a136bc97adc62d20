/* distill info FILE: what a model file holds (any format distill_model_load reads).
   distill info A --diff B: how far apart two models' weights are. */
#include "cli.h"
#include <string.h>
#include <math.h>

/* The largest absolute weight difference, where it is, and relative to the largest weight. */
static int info_diff(const char *a, const char *b) {
    distill_error err;
    distill_model *ma = distill_model_load(a, 1, 1, NULL, &err), *mb = NULL;
    double mx = 0.0, scale = 0.0;
    int i, worst = -1;
    if (!ma) { fprintf(stderr, "distill info: %s\n", err.msg); return 1; }
    mb = distill_model_load(b, 1, 1, NULL, &err);
    if (!mb) { fprintf(stderr, "distill info: %s\n", err.msg); distill_model_free(ma); return 1; }
    if (memcmp(&ma->cfg, &mb->cfg, sizeof ma->cfg) != 0 || ma->num_floats != mb->num_floats) {
        fprintf(stderr, "distill info: %s and %s have different configs\n", a, b);
        distill_model_free(ma); distill_model_free(mb);
        return 1;
    }
    for (i = 0; i < ma->n_tensors; i++) {
        const distill_tensor_info *ti = &ma->tensors[i];
        size_t k;
        for (k = 0; k < ti->numel; k++) {
            double x = ma->params[ti->offset + k], y = mb->params[ti->offset + k], d = fabs(x - y);
            if (!(d <= mx)) { mx = d; worst = i; }
            if (fabs(y) > scale) scale = fabs(y);
        }
    }
    printf("max_abs_diff %.9g\nmax_rel_diff %.9g\nworst_tensor %s\nidentical    %s\n", mx, scale > 0 ? mx / scale : mx,
           worst >= 0 && mx > 0 ? ma->tensors[worst].name : "-", mx == 0 ? "yes" : "no");
    distill_model_free(ma);
    distill_model_free(mb);
    return 0;
}

typedef struct { const char *diff; } info_opts;

#define CLI_T info_opts
static const cli_opt info_options[] = {
    CLI_PATH("diff", diff, "OTHER", "the largest absolute weight difference to OTHER (and relative to its largest weight), the tensor where it is, and whether the weights are identical"),
};
#undef CLI_T

static const cli_cmd info_cmd = {
    "info", "usage: distill info FILE            distill info FILE --diff OTHER\n",
    "  FILE: a distill checkpoint (.dstl), a safetensors file (config.json beside it), a sharded\n"
    "  Hugging Face folder (or its model.safetensors.index.json, or one shard) or a llama2.c .bin.\n"
    "  Prints the format, the model config, the parameter count and the SHA-256 of the weights\n"
    "  (float32 little-endian, tensors in size-table order: equal weights give equal hashes\n"
    "  whatever the file format).\n",
    info_options, CLI_N(info_options), NULL, 1};

int cli_info(int argc, char **argv) {
    distill_error err;
    distill_model *m;
    const char *fmt, *file = NULL;
    char sha[65];
    const distill_config *c;
    distill_tokenizer *tok = NULL;
    info_opts o;
    int npos = 0, rc;
    o.diff = NULL;
    rc = cli_parse(&info_cmd, &o, argc, argv, &file, &npos);
    if (rc != 0) return rc == CLI_HELP ? 0 : 2;
    if (!npos) return cli_usage_error(&info_cmd, "FILE is required: distill info FILE (see distill info --help)");
    if (o.diff) return info_diff(file, o.diff);
    fmt = distill_model_file_format(file, &err);
    if (!fmt) { fprintf(stderr, "distill info: %s\n", err.msg); return 1; }
    m = distill_model_load(file, 1, 1, &tok, &err);
    if (!m) { fprintf(stderr, "distill info: %s\n", err.msg); return 1; }
    c = &m->cfg;
    distill_model_sha256(m, sha);
    printf("file        %s\nformat      %s\narchitecture %s\n", file, fmt,
           c->qk_norm ? "Qwen3 (q/k norm)" : c->qkv_bias ? "Qwen2 (q/k/v bias)" : "Llama");
    if (c->head_dim) printf("head_dim    %d (decoupled from dim / n_heads)\n", c->head_dim);
    if (c->rope_scaling)
        printf("rope scaling %s, factor %g\n", c->rope_scaling == DISTILL_ROPE_LLAMA3 ? "llama3" : "linear", (double)c->rope_factor);
    printf("vocab_size  %d\ndim         %d\nn_layers    %d\nn_heads     %d\nn_kv_heads  %d\nhidden_dim  %d\n",
           c->vocab_size, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim);
    printf("rope_theta  %g\nnorm_eps    %g\ntied head   %s\nparameters  %zu\nsha256      %s\n", (double)c->rope_theta,
           (double)c->norm_eps, c->tie_embeddings ? "yes" : "no", m->num_params, sha);
    if (tok) printf("tokenizer   %d tokens, %s\n", distill_tokenizer_vocab_size(tok),
                    distill_model_has_tokenizer(m) ? "carried in the file" : "found beside the file");
    else printf("tokenizer   none (give --tokenizer to generate/eval)\n");
    if (distill_model_chat_template(m)) printf("template    %s\n", distill_model_chat_template(m));
    distill_tokenizer_free(tok);
    if (!strcmp(fmt, "checkpoint")) {
        distill_checkpoint *ck = distill_checkpoint_read(file, &err);
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
