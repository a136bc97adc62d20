/* distill generate: continue a prompt with a model, streaming the text.

     distill generate --model FILE [--tokenizer FILE] --prompt TEXT [--raw] [--system TEXT]
                      [--template chatml] [--temperature T] [--top-p P] [--top-k K] [--seed S]
                      [--max-new-tokens N] [--stop STR]... [--ctx N] [--ids]

   Without --raw the prompt is the user turn of a conversation rendered by the chat template
   the trainer uses (the data part's distill_chat_prompt_ids), and generation stops at the
   template's end-of-turn token or the tokenizer's EOS. With --raw the text is fed as it is,
   after BOS when the tokenizer has one (llama2.c models), and generation stops at EOS (and at
   BOS, which starts the next document in llama2.c's data). --ids prints the generated ids as a
   JSON array instead of the text. The finish reason and speed go to stderr. */
#include "cli.h"
#include <stdlib.h>
#include <string.h>

static void generate_usage(FILE *f) {
    fprintf(f,
        "usage: distill generate --model FILE [--tokenizer FILE] --prompt TEXT [--raw]\n"
        "                        [--system TEXT] [--template NAME] [--temperature T] [--top-p P]\n"
        "                        [--top-k K] [--seed S] [--max-new-tokens N] [--stop STR]...\n"
        "                        [--ctx N] [--ids]\n"
        "\n"
        "  --model FILE        distill checkpoint, safetensors (+config.json) or llama2.c .bin\n"
        "  --tokenizer FILE    tokenizer (default: the one a distill checkpoint carries, else tokenizer.json/.bin next to the model)\n"
        "  --raw               no chat template: the prompt as is, after BOS if the tokenizer has one\n"
        "  --template NAME     chat template (default: the checkpoint's, else chatml; see distill_chat_template_get)\n"
        "  --temperature T     0 = greedy (default 0)\n"
        "  --top-p P, --top-k K  nucleus / top-k sampling (default off)\n"
        "  --seed S            sampling seed (default 1)\n"
        "  --max-new-tokens N  default 256\n"
        "  --stop STR          stop when the text contains STR (repeatable)\n"
        "  --ctx N             context size in tokens (default prompt + max new tokens)\n"
        "  --ids               print the generated token ids as a JSON array instead of text\n"
        "  --precision fp32|bf16  bf16: the prompt's prefill matmuls with BF16 inputs, FP32 sums (the\n"
        "                      decode steps and the weights in memory stay FP32)\n");
}

static void stream_piece(void *ctx, int sample, int32_t id, const char *piece, size_t len) {
    (void)ctx; (void)sample; (void)id;
    if (len) { fwrite(piece, 1, len, stdout); fflush(stdout); }
}

int cli_generate(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *prompt = NULL, *system = NULL;
    const char *tmpl_name = NULL;   /* --template, else the model's, else chatml */
    const char *stops[16];
    int n_stops = 0, raw = 0, ids_out = 0, ctx = 0, i, rc = 1;
    int precision = DISTILL_PRECISION_FP32;
    distill_gen_options o = distill_gen_options_default();
    distill_error err;
    distill_model *m = NULL;
    distill_tokenizer *tok = NULL;
    distill_generator *g = NULL;
    distill_ids ids;
    distill_gen_result res;
    int32_t stop_ids[4];
    int n_stop_ids = 0, plen;
    const int32_t *pp;
    double t0, dt;

    memset(&ids, 0, sizeof ids);
    memset(&res, 0, sizeof res);
    err.msg[0] = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { generate_usage(stdout); return 0; }
        else if (!strcmp(a, "--raw")) { raw = 1; takes = 0; }
        else if (!strcmp(a, "--ids")) { ids_out = 1; takes = 0; }
        else if (!val) { fprintf(stderr, "distill generate: %s needs a value\n", a); return 2; }
        else if (!strcmp(a, "--model")) model_path = val;
        else if (!strcmp(a, "--tokenizer")) tok_path = val;
        else if (!strcmp(a, "--prompt")) prompt = val;
        else if (!strcmp(a, "--system")) system = val;
        else if (!strcmp(a, "--template")) tmpl_name = val;
        else if (!strcmp(a, "--temperature")) o.temperature = (float)atof(val);
        else if (!strcmp(a, "--top-p")) o.top_p = (float)atof(val);
        else if (!strcmp(a, "--top-k")) o.top_k = atoi(val);
        else if (!strcmp(a, "--seed")) o.seed = strtoull(val, NULL, 10);
        else if (!strcmp(a, "--max-new-tokens")) o.max_new_tokens = atoi(val);
        else if (!strcmp(a, "--ctx")) ctx = atoi(val);
        else if (!strcmp(a, "--precision") && (!strcmp(val, "fp32") || !strcmp(val, "bf16")))
            precision = !strcmp(val, "bf16") ? DISTILL_PRECISION_BF16 : DISTILL_PRECISION_FP32;
        else if (!strcmp(a, "--precision")) { fprintf(stderr, "distill generate: --precision must be fp32 or bf16\n"); return 2; }
        else if (!strcmp(a, "--stop")) {
            if (n_stops == 16) { fprintf(stderr, "distill generate: at most 16 --stop strings\n"); return 2; }
            stops[n_stops++] = val;
        } else { fprintf(stderr, "distill generate: unknown option '%s'\n\n", a); generate_usage(stderr); return 2; }
        i += takes;
    }
    if (!model_path || !prompt) { generate_usage(stderr); return 2; }
    if (o.max_new_tokens < 0 || o.max_new_tokens > (1 << 24)) { fprintf(stderr, "distill generate: --max-new-tokens out of range\n"); return 2; }
    if (o.temperature < 0 || o.top_k < 0 || !(o.top_p > 0 && o.top_p <= 1)) {
        fprintf(stderr, "distill generate: need --temperature >= 0, --top-k >= 0, 0 < --top-p <= 1\n");
        return 2;
    }

    m = distill_model_load(model_path, 1, 1, tok_path ? NULL : &tok, &err);
    if (!m) goto fail;
    distill_model_set_precision(m, precision);
    if (tok_path) {
        tok = distill_tokenizer_load(tok_path, NULL, &err);
        if (!tok) goto fail;
    }
    if (!tok) {
        snprintf(err.msg, sizeof err.msg, "no tokenizer: give --tokenizer FILE (none in the model file or next to %.300s)", model_path);
        goto fail;
    }
    if (!tmpl_name) tmpl_name = distill_model_chat_template(m) ? distill_model_chat_template(m) : "chatml";
    if (distill_tokenizer_vocab_size(tok) > m->cfg.vocab_size)
        fprintf(stderr, "distill generate: warning: the tokenizer has %d tokens, the model %d\n",
                distill_tokenizer_vocab_size(tok), m->cfg.vocab_size);

    /* the prompt ids, and the tokens that end the answer */
    if (raw) {
        int flags = distill_tokenizer_bos_id(tok) >= 0 ? DISTILL_ENC_BOS : 0;
        if (distill_tokenizer_encode_ex(tok, prompt, strlen(prompt), flags, &ids, &err)) goto fail;
        if (distill_tokenizer_bos_id(tok) >= 0) stop_ids[n_stop_ids++] = distill_tokenizer_bos_id(tok);
    } else {
        const distill_chat_template *tmpl = distill_chat_template_get(tmpl_name);
        int32_t eot;
        if (!tmpl) { snprintf(err.msg, sizeof err.msg, "unknown chat template '%.100s'", tmpl_name); goto fail; }
        if (distill_chat_prompt_ids(tmpl, tok, system, prompt, &ids, &err)) goto fail;
        eot = distill_chat_eot_id(tmpl, tok);
        if (eot >= 0) stop_ids[n_stop_ids++] = eot;
        else if (tmpl->end_of_turn && tmpl->end_of_turn[0] && n_stops < 16) stops[n_stops++] = tmpl->end_of_turn;
    }
    if (distill_tokenizer_eos_id(tok) >= 0) stop_ids[n_stop_ids++] = distill_tokenizer_eos_id(tok);
    if (ids.n == 0) { snprintf(err.msg, sizeof err.msg, "the prompt encodes to no tokens"); goto fail; }
    if (ids.n > (1u << 24)) { snprintf(err.msg, sizeof err.msg, "the prompt is too long (%zu tokens)", ids.n); goto fail; }
    if (ctx <= 0) ctx = (int)ids.n + o.max_new_tokens;
    if (ctx <= (int)ids.n) {
        snprintf(err.msg, sizeof err.msg, "the prompt has %zu tokens; --ctx %d leaves no room", ids.n, ctx);
        goto fail;
    }
    g = distill_generator_create(m, 1, ctx, &err);
    if (!g) goto fail;

    o.stop_ids = stop_ids; o.n_stop_ids = n_stop_ids;
    o.stop_strings = stops; o.n_stop_strings = n_stops;
    if (!ids_out) { o.on_token = stream_piece; o.on_token_ctx = NULL; }
    pp = ids.ids;
    plen = (int)ids.n;
    t0 = distill_time_seconds();
    if (distill_generate(g, tok, &pp, &plen, 1, &o, &res, &err)) goto fail;
    dt = distill_time_seconds() - t0;
    if (ids_out) {
        size_t k;
        printf("[");
        for (k = 0; k < res.n; k++) printf("%s%d", k ? "," : "", (int)res.ids[k]);
        printf("]\n");
    } else {
        printf("\n");
    }
    fflush(stdout);
    fprintf(stderr, "[finish: %s, %d prompt + %zu new tokens, %.1f tok/s]\n",
            distill_finish_name(res.finish), plen, res.n, dt > 0 ? (double)res.n / dt : 0.0);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "distill generate: %s\n", err.msg);
done:
    distill_gen_result_free(&res);
    distill_ids_free(&ids);
    distill_generator_free(g);
    distill_tokenizer_free(tok);
    distill_model_free(m);
    return rc;
}
