/* distill export: write a model in the formats other tools read. */
#include "cli.h"
#include <stdlib.h>
#include <string.h>

int cli_export(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *fmt = "safetensors", *dtype = "f32", *st_dtype = NULL, *shard = NULL;
    int64_t shard_bytes = 0;
    distill_error err;
    distill_model *m;
    int i, rc;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: distill export MODEL --format safetensors|llama2c [--dtype f32|bf16|f16] [--max-shard-size 2GB] -o OUT\n"
                   "  safetensors: OUT gets the tensors with Hugging Face Llama/Qwen2 names and config.json is\n"
                   "               written beside it (LlamaForCausalLM or Qwen2ForCausalLM, torch_dtype set),\n"
                   "               so transformers' from_pretrained(dir) loads it. --dtype bf16 or f16 halves\n"
                   "               the file (rounded to nearest even; f16 refuses weights beyond 65504).\n"
                   "               --max-shard-size N[KB|MB|GB]: OUT is a folder in Hugging Face's sharded layout\n"
                   "               (model-0000i-of-0000N.safetensors + model.safetensors.index.json + config.json)\n"
                   "  llama2c:     llama2.c's .bin (run.c reads it); needs a Llama model with rope_theta 10000.\n");
            return 0;
        } else if (!strcmp(argv[i], "--format") && i + 1 < argc) fmt = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dtype = argv[++i];
        else if (!strcmp(argv[i], "--max-shard-size") && i + 1 < argc) shard = argv[++i];
        else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) && i + 1 < argc) out = argv[++i];
        else if (argv[i][0] != '-' && !in) in = argv[i];
        else { fprintf(stderr, "distill export: unexpected argument '%s' (see --help)\n", argv[i]); return 2; }
    }
    if (!in || !out) { fprintf(stderr, "usage: distill export MODEL --format safetensors|llama2c -o OUT\n"); return 2; }
    if (strcmp(fmt, "safetensors") != 0 && strcmp(fmt, "llama2c") != 0) {
        fprintf(stderr, "distill export: --format must be safetensors or llama2c\n");
        return 2;
    }
    if (!strcmp(dtype, "f32") || !strcmp(dtype, "float32")) st_dtype = "F32";
    else if (!strcmp(dtype, "bf16") || !strcmp(dtype, "bfloat16")) st_dtype = "BF16";
    else if (!strcmp(dtype, "f16") || !strcmp(dtype, "fp16") || !strcmp(dtype, "float16")) st_dtype = "F16";
    if (!st_dtype || (strcmp(st_dtype, "F32") && strcmp(fmt, "safetensors"))) {
        fprintf(stderr, "distill export: --dtype must be f32, bf16 or f16 (bf16/f16: safetensors only)\n");
        return 2;
    }
    if (shard) {   /* N, NKB, NMB, NGB (powers of 1000, as transformers counts them) */
        char *end;
        double v = strtod(shard, &end);
        double mul = !strcmp(end, "") || !strcmp(end, "B") ? 1 : !strcmp(end, "KB") ? 1e3 : !strcmp(end, "MB") ? 1e6 : !strcmp(end, "GB") ? 1e9 : -1;
        if (end == shard || mul < 0 || !(v * mul >= 1) || v * mul > 1e15 || strcmp(fmt, "safetensors") != 0) {
            fprintf(stderr, "distill export: --max-shard-size '%s': expected a size like 2GB or 500MB (safetensors only)\n", shard);
            return 2;
        }
        shard_bytes = (int64_t)(v * mul);
    }
    m = distill_model_load(in, 1, 256, NULL, &err);
    if (!m) { fprintf(stderr, "distill export: %s\n", err.msg); return 1; }
    if (shard_bytes) rc = distill_safetensors_save_sharded(m, out, st_dtype, shard_bytes, &err);
    else rc = !strcmp(fmt, "safetensors") ? distill_safetensors_save_as(m, out, st_dtype, &err) : distill_llama2c_save(m, out, &err);
    if (rc != 0) fprintf(stderr, "distill export: %s\n", err.msg);
    else printf("wrote %s (%s %s, %zu parameters)%s\n", out, fmt, st_dtype, m->num_params,
                shard_bytes ? " as a sharded folder with its index and config.json" :
                !strcmp(fmt, "safetensors") ? " and config.json beside it" : "");
    distill_model_free(m);
    return rc ? 1 : 0;
}
