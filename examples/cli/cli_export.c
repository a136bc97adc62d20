/* distill export: write a model in the formats other tools read. */
#include "cli.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *out, *fmt, *dtype, *shard, *tok_path, *tmpl_name;
    int no_tok;
} export_opts;

#define CLI_T export_opts
static const cli_opt export_options[] = {
    CLI_ENUM("format", fmt, "safetensors|llama2c", "the output format"),
    CLI_ENUM("dtype", dtype, "f32|float32|bf16|bfloat16|f16|fp16|float16", "safetensors weights' type"),
    CLI_STR("max-shard-size", shard, "SIZE", "shard above this size, e.g. 2GB or 500MB (default 2GB for a folder)"),
    CLI_PATH("tokenizer", tok_path, "FILE", "the tokenizer to write (default: the model's, else tokenizer.json/.bin beside it)"),
    CLI_ENUM("template", tmpl_name, CLI_TEMPLATES, "chat template for tokenizer_config.json (default: the model's, else chatml)"),
    CLI_BOOL("no-tokenizer", no_tok, "weights and config.json only"),
    CLI_PATH_REQ("out", out, "OUT", "the folder (or OUT.safetensors, or OUT.bin for llama2c)"),
    CLI_ALIAS("o", "out"),
};
#undef CLI_T

static const cli_cmd export_cmd = {
    "export",
    "usage: distill export MODEL --format safetensors|llama2c [--dtype f32|bf16|f16] [--max-shard-size 2GB]\n"
    "                      [--tokenizer FILE] [--template NAME] [--no-tokenizer] -o OUT\n",
    "  safetensors: a Hugging Face model folder, in the layout transformers' from_pretrained(OUT)\n"
    "               and AutoTokenizer.from_pretrained(OUT) read:\n"
    "                 config.json             LlamaForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM, torch_dtype\n"
    "                 model.safetensors       tensors with HF names; above --max-shard-size (default 2GB)\n"
    "                                         model-0000i-of-0000N.safetensors + model.safetensors.index.json\n"
    "                 tokenizer.json          the model's tokenizer (byte-level BPE, added and special tokens)\n"
    "                 tokenizer_config.json   eos/pad tokens and the chat template as Jinja (apply_chat_template\n"
    "                                         renders what distill's template renders)\n"
    "                 generation_config.json  eos_token_id: the template's end of turn and the tokenizer's eos\n"
    "               OUT ending in .safetensors keeps the older layout: that one file (never sharded\n"
    "               unless --max-shard-size is given, which makes OUT a folder) with the other files\n"
    "               beside it. --dtype bf16 or f16 halves the weights (rounded to nearest even; f16\n"
    "               refuses weights beyond 65504).\n"
    "  llama2c:     llama2.c's .bin (run.c reads it); needs a Llama model with rope_theta 10000.\n",
    export_options, CLI_N(export_options), NULL, 1};

/* N, NKB, NMB, NGB (powers of 1000, as transformers counts them); -1 if malformed */
static int64_t parse_size(const char *s) {
    char *end;
    double v = strtod(s, &end);
    double mul = !strcmp(end, "") || !strcmp(end, "B") ? 1 : !strcmp(end, "KB") ? 1e3 : !strcmp(end, "MB") ? 1e6 : !strcmp(end, "GB") ? 1e9 : -1;
    if (end == s || mul < 0 || !(v * mul >= 1) || v * mul > 1e15) return -1;
    return (int64_t)(v * mul);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* The folder of a file path (malloc'ed): "." for a bare name. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    char *d = (char *)malloc(n + 1);
    if (!d) return NULL;
    if (slash && n == 0) n = 1;                 /* "/model.safetensors" */
    memcpy(d, slash ? path : ".", n);
    d[n] = 0;
    return d;
}

/* The files the export wrote, one per line, as the folder now holds them. */
static void list_files(const char *dir, const char *weights_file, int with_tok) {
    char p[4096];
    distill_json *ix;
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (!weights_file && (ix = distill_json_parse_file(p, NULL)) != NULL) {
        const distill_json *wm = distill_json_get(ix, "weight_map");
        size_t i, k;
        for (i = 0; wm && i < wm->len; i++) {   /* each shard once, in the index's order */
            for (k = 0; k < i && strcmp(wm->items[k].str, wm->items[i].str); k++) {}
            if (k == i) printf("  %s\n", wm->items[i].str);
        }
        printf("  model.safetensors.index.json\n");
        distill_json_free(ix);
    } else {
        printf("  %s\n", weights_file ? weights_file : "model.safetensors");
    }
    printf("  config.json\n");
    if (with_tok) printf("  tokenizer.json\n  tokenizer_config.json\n  generation_config.json\n");
}

int cli_export(int argc, char **argv) {
    const char *in = NULL, *out, *fmt, *dtype, *st_dtype = NULL, *shard;
    const char *tok_path, *tmpl_name;
    export_opts o;
    const distill_chat_template *tmpl = NULL;
    int64_t shard_bytes = 0;
    distill_error err;
    distill_model *m;
    distill_tokenizer *tok = NULL;
    int i, rc, no_tok, folder, with_tok = 0, npos = 0;
    char *dir = NULL;
    memset(&o, 0, sizeof o);
    o.fmt = "safetensors";
    o.dtype = "f32";
    i = cli_parse(&export_cmd, &o, argc, argv, &in, &npos);
    if (i != 0) return i == CLI_HELP ? 0 : 2;
    if (!npos) return cli_usage_error(&export_cmd, "MODEL is required: distill export MODEL -o OUT (see distill export --help)");
    out = o.out; fmt = o.fmt; dtype = o.dtype; shard = o.shard; tok_path = o.tok_path; tmpl_name = o.tmpl_name; no_tok = o.no_tok;
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
    if (shard && ((shard_bytes = parse_size(shard)) < 0 || strcmp(fmt, "safetensors") != 0)) {
        fprintf(stderr, "distill export: --max-shard-size '%s': expected a size like 2GB or 500MB (safetensors only)\n", shard);
        return 2;
    }
    if (tmpl_name && !distill_chat_template_get(tmpl_name)) {
        fprintf(stderr, "distill export: --template '%s': unknown (chatml, chatml-prefill, plain)\n", tmpl_name);
        return 2;
    }
    if (strcmp(fmt, "safetensors") != 0 && (tok_path || tmpl_name)) {
        fprintf(stderr, "distill export: --tokenizer and --template are for --format safetensors\n");
        return 2;
    }
    /* a folder unless OUT names the one .safetensors file (the older layout) */
    folder = !strcmp(fmt, "safetensors") && (shard || !ends_with(out, ".safetensors"));
    if (folder && !shard) shard_bytes = 2000000000;
    dir = folder ? NULL : dir_of(out);
    {   /* say which folder is wrong rather than which temp file failed */
        struct stat st;
        if (!folder && dir && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
            fprintf(stderr, "distill export: -o %s: the folder '%s' does not exist\n", out, dir);
            free(dir);
            return 1;
        }
        if (folder && stat(out, &st) == 0 && !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "distill export: -o %s: a file, not a folder (an OUT ending in .safetensors writes one file)\n", out);
            return 1;
        }
    }
    m = distill_model_load(in, 1, 256, !strcmp(fmt, "safetensors") && !no_tok && !tok_path ? &tok : NULL, &err);
    if (!m) { fprintf(stderr, "distill export: %s\n", err.msg); free(dir); return 1; }
    if (tok_path && !no_tok && !(tok = distill_tokenizer_load(tok_path, NULL, &err))) {
        fprintf(stderr, "distill export: %s\n", err.msg);
        distill_model_free(m);
        free(dir);
        return 1;
    }
    if (!tmpl_name) tmpl_name = distill_model_chat_template(m) ? distill_model_chat_template(m) : "chatml";
    tmpl = distill_chat_template_get(tmpl_name);
    if (!tmpl) {   /* a carried name this build does not know */
        fprintf(stderr, "distill export: the model's chat template '%s' is unknown: give --template NAME\n", tmpl_name);
        rc = -1;
        goto done;
    }
    if (folder) rc = distill_safetensors_save_sharded(m, out, st_dtype, shard_bytes, &err);
    else rc = !strcmp(fmt, "safetensors") ? distill_safetensors_save_as(m, out, st_dtype, &err) : distill_llama2c_save(m, out, &err);
    if (rc != 0) { fprintf(stderr, "distill export: %s\n", err.msg); goto done; }
    if (!strcmp(fmt, "llama2c")) {
        printf("wrote %s (llama2c F32, %zu parameters)\n", out, m->num_params);
        goto done;
    }
    if (tok && distill_tokenizer_is_llama(tok)) {
        fprintf(stderr, "distill export: warning: a llama2.c tokenizer has no tokenizer.json form: tokenizer files not written\n");
    } else if (tok) {
        if (distill_tokenizer_vocab_size(tok) > m->cfg.vocab_size)
            fprintf(stderr, "distill export: warning: the tokenizer has %d tokens, the model %d\n",
                    distill_tokenizer_vocab_size(tok), m->cfg.vocab_size);
        rc = distill_hf_save_tokenizer(tok, tmpl, folder ? out : dir, &err);
        if (rc != 0) {
            fprintf(stderr, "distill export: %s (--no-tokenizer writes the weights and config.json only)\n", err.msg);
            goto done;
        }
        with_tok = 1;
    } else if (!no_tok) {
        fprintf(stderr, "distill export: warning: no tokenizer (none in %s or next to it; give --tokenizer FILE): "
                        "tokenizer files not written\n", in);
    }
    printf("wrote %s (safetensors %s, %zu parameters%s%s):\n", folder ? out : dir, st_dtype, m->num_params,
           with_tok ? ", chat template " : "", with_tok ? tmpl_name : "");
    list_files(folder ? out : dir, folder ? NULL : (strrchr(out, '/') ? strrchr(out, '/') + 1 : out), with_tok);
done:
    distill_tokenizer_free(tok);
    distill_model_free(m);
    free(dir);
    return rc ? 1 : 0;
}
