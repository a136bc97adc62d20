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

typedef struct {
    const char *model, *tokenizer, *prompt, *system, *tmpl, *precision, *weights;
    cli_strlist stops;
    int raw, ids, ctx, top_k, max_new;
    double temperature, top_p;
    uint64_t seed;
} generate_opts;

#define CLI_T generate_opts
static const cli_opt generate_options[] = {
    CLI_PATH_REQ("model", model, "FILE", "distill checkpoint, safetensors (+config.json) or llama2.c .bin"),
    CLI_PATH("tokenizer", tokenizer, "FILE", "tokenizer (default: the one a distill checkpoint carries, else tokenizer.json/.bin next to the model)"),
    CLI_STR("prompt", prompt, "TEXT", "the user turn (or, with --raw, the text to continue) (required)"),
    CLI_BOOL("raw", raw, "no chat template: the prompt as is, after BOS if the tokenizer has one"),
    CLI_STR("system", system, "TEXT", "a system turn before the prompt"),
    CLI_ENUM("template", tmpl, CLI_TEMPLATES, "chat template (default: the checkpoint's, else chatml)"),
    CLI_DBL("temperature", temperature, 0, 100, "0 = greedy"),
    CLI_DBL("top-p", top_p, 1e-12, 1, "nucleus sampling (1: off)"),
    CLI_INT("top-k", top_k, 0, 1 << 24, "top-k sampling (0: off)"),
    CLI_U64("seed", seed, 0, 18446744073709551615.0, "sampling seed"),
    CLI_INT("max-new-tokens", max_new, 0, 1 << 24, "tokens generated at most"),
    CLI_LIST("stop", stops, "STR", "stop when the text contains STR (repeatable, at most 15)"),
    CLI_INT("ctx", ctx, 0, 1 << 24, "context size in tokens (0: prompt + max new tokens)"),
    CLI_BOOL("ids", ids, "print the generated token ids as a JSON array instead of text"),
    CLI_ENUM("precision", precision, "fp32|bf16", "bf16: the prefill's matrix products with BF16 inputs, FP32 sums"),
    CLI_ENUM("weights", weights, "fp32|bf16", "bf16: hold the matrices in BF16 (half the memory; each token streams half the bytes)"),
};
#undef CLI_T

static const cli_cmd generate_cmd = {
    "generate",
    "usage: distill generate --model FILE [--tokenizer FILE] --prompt TEXT [--raw]\n"
    "                        [--system TEXT] [--template NAME] [--temperature T] [--top-p P]\n"
    "                        [--top-k K] [--seed S] [--max-new-tokens N] [--stop STR]...\n"
    "                        [--ctx N] [--ids] [--precision fp32|bf16] [--weights fp32|bf16]\n",
    NULL, generate_options, CLI_N(generate_options),
    "The text streams to stdout; the finish reason and speed go to stderr.\n", 0};

static void stream_piece(void *ctx, int sample, int32_t id, const char *piece, size_t len) {
    (void)ctx; (void)sample; (void)id;
    if (len) { fwrite(piece, 1, len, stdout); fflush(stdout); }
}

int cli_generate(int argc, char **argv) {
    const char *model_path, *tok_path, *prompt, *system;
    const char *tmpl_name;   /* --template, else the model's, else chatml */
    generate_opts go;
    const char *stops[16];
    int n_stops = 0, raw, ids_out, ctx, i, rc = 1, precision;
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
    memset(&go, 0, sizeof go);
    go.temperature = o.temperature; go.top_p = o.top_p; go.top_k = o.top_k; go.seed = o.seed; go.max_new = o.max_new_tokens;
    i = cli_parse(&generate_cmd, &go, argc, argv, NULL, NULL);
    if (i != 0) return i == CLI_HELP ? 0 : 2;
    if (!go.prompt) return cli_usage_error(&generate_cmd, "--prompt TEXT is required (see distill generate --help)");
    if (go.stops.n > 15) return cli_usage_error(&generate_cmd, "at most 15 --stop strings");
    model_path = go.model; tok_path = go.tokenizer; prompt = go.prompt; system = go.system; tmpl_name = go.tmpl;
    raw = go.raw; ids_out = go.ids; ctx = go.ctx;
    precision = go.precision && !strcmp(go.precision, "bf16") ? DISTILL_PRECISION_BF16 : DISTILL_PRECISION_FP32;
    o.temperature = (float)go.temperature; o.top_p = (float)go.top_p; o.top_k = go.top_k; o.seed = go.seed;
    o.max_new_tokens = go.max_new;
    for (n_stops = 0; n_stops < go.stops.n; n_stops++) stops[n_stops] = go.stops.v[n_stops];
    if (o.max_new_tokens < 0 || o.max_new_tokens > (1 << 24)) { fprintf(stderr, "distill generate: --max-new-tokens out of range\n"); return 2; }
    if (o.temperature < 0 || o.top_k < 0 || !(o.top_p > 0 && o.top_p <= 1)) {
        fprintf(stderr, "distill generate: need --temperature >= 0, --top-k >= 0, 0 < --top-p <= 1\n");
        return 2;
    }

    m = distill_model_load(model_path, 1, 1, tok_path ? NULL : &tok, &err);
    if (!m) goto fail;
    if (go.weights && !strcmp(go.weights, "bf16") && distill_model_to_bf16(m, &err) != 0) goto fail;
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
