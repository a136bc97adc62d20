/* distill eval: score generations with the completion, think-tag and pass@k metrics.

     distill eval --generations FILE.jsonl [--field text] [--prompt-field prompt]
                  [--think-in-prompt] [--tokenizer FILE] [--k 1,5]
                  [--verifier NAME | --verifier-cmd CMD] [--verifier-timeout SEC] [--out DIR]
     distill eval --model FILE --data EVAL.jsonl [--n N] [--k 1,5] [--max-new-tokens N]
                  [--temperature T] [--top-p P] [--top-k K] [--seed S] [--batch B] [--raw]
                  [--tokenizer FILE] [--template NAME] [--system TEXT] [--prompt-field F]
                  [--max-problems N] [--quiet] [--verifier NAME | --verifier-cmd CMD] [--out DIR]
                  [--resume]

   The results JSON object goes to stdout (and DIR/results.json with --out); the scored samples
   go to DIR/generations.jsonl. With --model, the samples are appended problem by problem to
   DIR/generations.jsonl.partial (renamed to generations.jsonl at the end); Ctrl-C, SIGTERM or
   SIGUSR1 finish the problems being generated and exit 130/143/138, and --resume continues
   after the last problem whose samples are all written, with the same final results.

   External verifiers (--verifier-cmd CMD): for every sample, CMD runs under /bin/sh -c with
   one JSON object on its stdin,
       {"record": <the eval record or generations line>, "text": "<generated text>",
        "code": "<last fenced block after </think>>" or null}
   and must print one JSON object on stdout, {"pass": true|false, "reason": "..."}. A command
   that exits non-zero, prints no such object, or runs longer than --verifier-timeout seconds
   (default 30; it is then killed with its process group) counts as a fail with that reason. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <poll.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

/* mkdir -p */
static int mkdir_p(const char *dir, distill_error *err) {
    char path[4096];
    size_t i, n = strlen(dir);
    if (n == 0 || n >= sizeof path) return snprintf(err->msg, sizeof err->msg, "bad directory '%.300s'", dir), -1;
    memcpy(path, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (path[i] == '/' || path[i] == 0) {
            char c = path[i];
            path[i] = 0;
            if (mkdir(path, 0777) && errno != EEXIST) {
                snprintf(err->msg, sizeof err->msg, "cannot create directory '%.300s': %s", path, strerror(errno));
                return -1;
            }
            path[i] = c;
        }
    }
    return 0;
}

/* Copy a file to stdout. */
static void cat_file(const char *path) {
    size_t n = 0;
    char *p = (char *)distill_read_file(path, &n, NULL);
    if (p) { fwrite(p, 1, n, stdout); distill_free(p); }
}

typedef struct {
    const char *gens, *field, *prompt_field, *tok_path, *verifier, *verifier_cmd, *out_dir;
    const char *model_path, *data_path, *tmpl_name, *system, *weights;
    int think_in_prompt, raw, quiet, resume, n, batch, max_new, top_k;
    int64_t max_problems;
    uint64_t seed;
    double timeout, temperature, top_p;
    cli_intlist k;
} eval_opts;

#define CLI_T eval_opts
static const cli_opt eval_options[] = {
    CLI_SECTION("what to score (one of the two)"),
    CLI_PATH("generations", gens, "FILE.jsonl", "generations made elsewhere, one JSON object per line"),
    CLI_PATH("model", model_path, "FILE", "generate with this model on --data's problems, then score"),
    CLI_SECTION("--generations"),
    CLI_STR("field", field, "NAME", "the text's field (text)"),
    CLI_BOOL("think-in-prompt", think_in_prompt, "every prompt opened <think>"),
    CLI_SECTION("--model"),
    CLI_PATH("data", data_path, "EVAL.jsonl", "the problems"),
    CLI_INT("n", n, 1, 1000000, "samples per problem"),
    CLI_INT("max-new-tokens", max_new, 1, 1 << 24, "tokens generated per sample at most"),
    CLI_DBL("temperature", temperature, 0, 100, "0: greedy"),
    CLI_DBL("top-p", top_p, 1e-12, 1, "nucleus sampling (1: off)"),
    CLI_INT("top-k", top_k, 0, 1 << 24, "top-k sampling (0: off)"),
    CLI_U64("seed", seed, 0, 18446744073709551615.0, "sampling seed"),
    CLI_INT("batch", batch, 1, 65536, "sequences generated together"),
    CLI_ENUM("template", tmpl_name, CLI_TEMPLATES, "chat template (default: the checkpoint's, else chatml)"),
    CLI_STR("system", system, "TEXT", "a system turn before each prompt"),
    CLI_BOOL("raw", raw, "no chat template: the prompt as is after BOS"),
    CLI_INT64("max-problems", max_problems, 0, 1e15, "the first N problems only (0: all)"),
    CLI_BOOL("quiet", quiet, "no progress output"),
    CLI_BOOL("resume", resume, "continue an interrupted evaluation in --out (same options, same results)"),
    CLI_ENUM("weights", weights, "fp32|bf16", "bf16: hold the model's matrices in BF16 (half the memory, faster decoding)"),
    CLI_SECTION("both"),
    CLI_STR("prompt-field", prompt_field, "NAME", "the prompt's field"),
    CLI_PATH("tokenizer", tok_path, "FILE", "tokenizer (think lengths in tokens; --model: default the checkpoint's)"),
    CLI_INTS("k", k, 1, 1000000, "pass@k for these k (at most 16 values)"),
    CLI_ENUM("verifier", verifier, "world", "a built-in verifier: the miniature programming world's hidden tests"),
    CLI_STR("verifier-cmd", verifier_cmd, "CMD", "an external verifier, run under /bin/sh per sample"),
    CLI_DBL("verifier-timeout", timeout, 1e-6, 1e6, "seconds per verifier run (then a fail)"),
    CLI_PATH("out", out_dir, "DIR", "DIR/results.json and DIR/generations.jsonl (one process per folder)"),
};
#undef CLI_T

static const cli_cmd eval_cmd = {
    "eval",
    "usage: distill eval --generations FILE.jsonl [--field text] [--prompt-field prompt]\n"
    "                    [--think-in-prompt] [--tokenizer FILE] [--k 1,5]\n"
    "                    [--verifier NAME | --verifier-cmd CMD] [--verifier-timeout SEC] [--out DIR]\n"
    "       distill eval --model FILE --data EVAL.jsonl [--tokenizer FILE] [--n N] [--k 1,5]\n"
    "                    [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]\n"
    "                    [--batch B] [--template NAME] [--system TEXT] [--prompt-field F] [--raw]\n"
    "                    [--max-problems N] [--quiet] [--weights fp32|bf16]\n"
    "                    [--verifier NAME | --verifier-cmd CMD] [--verifier-timeout SEC] [--out DIR]\n"
    "                    [--resume]\n",
    "Scores generations with the same definitions for any model: completion_rate,\n"
    "strict_completion_rate, think_open/close/both_rate, think_tokens_mean/median, and with a\n"
    "verifier pass_at_1, pass_at_k, accuracy_completed/truncated (per difficulty too).\n"
    "The results JSON goes to stdout (and DIR/results.json); the samples to DIR/generations.jsonl.\n",
    eval_options, CLI_N(eval_options),
    "--generations: one JSON object per line with the text in --field (default text); read when\n"
    "  present: finish_reason, question_id (or id, task_id), difficulty, pass, and the prompt in\n"
    "  --prompt-field (its think tag counts). --think-in-prompt: every prompt opened <think>.\n"
    "  Think lengths are tokens with --tokenizer, else whitespace-separated words.\n"
    "--model: the prompt is --prompt-field or the first of prompt/question/problem/instruction\n"
    "  (rendered by the chat template, or as is after BOS with --raw), else the record's\n"
    "  conversation up to its final assistant turn.\n"
    "  Samples are saved problem by problem (DIR/generations.jsonl.partial until the end).\n"
    "  Ctrl-C/SIGTERM/SIGUSR1 finish the current problems and exit 130/143/138; --resume\n"
    "  continues after the last complete problem (same options, same results). One\n"
    "  process per --out folder.\n"
    "Verifiers: --verifier world (the miniature programming world: record's hidden_tests),\n"
    "  --verifier-cmd CMD (run under /bin/sh per sample; reads {\"record\",\"text\",\"code\"} JSON on\n"
    "  stdin, prints {\"pass\": bool, \"reason\": str}; non-zero exit, no verdict or more than\n"
    "  --verifier-timeout seconds = fail). Without a verifier, --generations uses a\n"
    "  boolean \"pass\" field when every line has one.\n",
    0};

/* Results to stdout, and atomically to results_path when given. */
typedef int (*results_fn)(void *ctx, FILE *f, distill_error *err);
static int write_results(const char *results_path, results_fn fn, void *ctx, distill_error *err) {
    distill_atomic_file af;
    if (!results_path) return fn(ctx, stdout, err);
    if (distill_atomic_open(&af, results_path, err)) return -1;
    if (fn(ctx, af.f, err)) { distill_atomic_abort(&af); return -1; }
    if (distill_atomic_commit(&af, err)) return -1;
    cat_file(results_path);
    return 0;
}

typedef struct gens_job { const char *path; distill_eval_file_options o; } gens_job;
static int gens_results(void *ctx, FILE *f, distill_error *err) {
    gens_job *j = (gens_job *)ctx;
    return distill_eval_generations_file(j->path, &j->o, f, err);
}

typedef struct model_job {
    distill_model *m;
    const distill_tokenizer *tok;
    const char *data;
    distill_eval_model_options o;
} model_job;
static int model_results(void *ctx, FILE *f, distill_error *err) {
    model_job *j = (model_job *)ctx;
    return distill_eval_model(j->m, j->tok, j->data, &j->o, f, err);
}

int cli_eval(int argc, char **argv) {
    const char *gens, *field, *prompt_field, *tok_path, *verifier, *verifier_cmd, *out_dir;
    const char *model_path, *data_path, *tmpl_name, *system;
    int think_in_prompt, ks[DISTILL_EVAL_MAX_K], nk, i, rc = 1, raw, quiet, lock = -1;
    distill_eval_model_options mo = distill_eval_model_options_default();
    double timeout;
    distill_error err;
    distill_tokenizer *tok = NULL;
    cli_verifier cv;
    distill_verifier v;
    char results_path[4096], gens_path[4096];
    eval_opts o;

    memset(&o, 0, sizeof o);
    o.n = mo.n_samples; o.batch = mo.batch; o.max_new = mo.gen.max_new_tokens; o.temperature = mo.gen.temperature;
    o.top_p = mo.gen.top_p; o.top_k = mo.gen.top_k; o.seed = mo.gen.seed; o.timeout = 30.0;
    o.k.v[0] = 1; o.k.n = 1;
    err.msg[0] = 0;
    i = cli_parse(&eval_cmd, &o, argc, argv, NULL, NULL);
    if (i != 0) return i == CLI_HELP ? 0 : 2;
    if (o.k.n > DISTILL_EVAL_MAX_K) return cli_usage_error(&eval_cmd, "--k: at most %d values", DISTILL_EVAL_MAX_K);
    for (nk = 0; nk < o.k.n; nk++) ks[nk] = (int)o.k.v[nk];
    gens = o.gens; field = o.field; prompt_field = o.prompt_field; tok_path = o.tok_path; verifier = o.verifier;
    verifier_cmd = o.verifier_cmd; out_dir = o.out_dir; model_path = o.model_path; data_path = o.data_path;
    tmpl_name = o.tmpl_name; system = o.system; think_in_prompt = o.think_in_prompt; raw = o.raw; quiet = o.quiet;
    timeout = o.timeout;
    mo.resume = o.resume; mo.n_samples = o.n; mo.batch = o.batch; mo.max_problems = o.max_problems;
    mo.gen.max_new_tokens = o.max_new; mo.gen.temperature = (float)o.temperature; mo.gen.top_p = (float)o.top_p;
    mo.gen.top_k = o.top_k; mo.gen.seed = o.seed;
    if (!gens && !model_path) return cli_usage_error(&eval_cmd, "--generations FILE or --model FILE is required (see distill eval --help)");
    if (gens && model_path) { fprintf(stderr, "distill eval: give --generations or --model, not both\n"); return 2; }
    if (verifier && verifier_cmd) { fprintf(stderr, "distill eval: give --verifier or --verifier-cmd, not both\n"); return 2; }
    if (!(timeout > 0)) { fprintf(stderr, "distill eval: --verifier-timeout must be > 0\n"); return 2; }
    if (mo.resume && (!model_path || !out_dir)) { fprintf(stderr, "distill eval: --resume needs --model and --out DIR\n"); return 2; }
    if (cli_verifier_setup(&cv, &v, verifier, verifier_cmd, timeout, "distill eval") != 0) return 2;
    if (out_dir) {
        if (mkdir_p(out_dir, &err)) { fprintf(stderr, "distill eval: %s\n", err.msg); return 1; }
        snprintf(results_path, sizeof results_path, "%s/results.json", out_dir);
        snprintf(gens_path, sizeof gens_path, "%s/generations.jsonl", out_dir);
        lock = distill_dir_lock(out_dir, &err);   /* one evaluation per folder */
        if (lock < 0) { fprintf(stderr, "distill eval: %s\n", err.msg); return 1; }
    }
    if (tok_path) {
        tok = distill_tokenizer_load(tok_path, NULL, &err);
        if (!tok) { fprintf(stderr, "distill eval: %s\n", err.msg); distill_dir_unlock(lock); return 1; }
    }
    if (gens) {
        gens_job j;
        memset(&j, 0, sizeof j);
        j.path = gens;
        j.o.field = field;
        j.o.prompt_field = prompt_field;
        j.o.think_in_prompt = think_in_prompt;
        j.o.tok = tok;
        j.o.ks = ks; j.o.nk = nk;
        j.o.verifier = cv.kind ? &v : NULL;
        j.o.out_jsonl = out_dir ? gens_path : NULL;
        rc = write_results(out_dir ? results_path : NULL, gens_results, &j, &err);
    } else {
        model_job j;
        distill_tokenizer *mtok = NULL;
        memset(&j, 0, sizeof j);
        rc = -1;
        if (!data_path) { fprintf(stderr, "distill eval: --model needs --data EVAL.jsonl\n"); distill_tokenizer_free(tok); distill_dir_unlock(lock); return 2; }
        if (mo.n_samples < 1 || mo.batch < 1 || mo.gen.max_new_tokens < 1 || mo.gen.temperature < 0 ||
            mo.gen.top_k < 0 || !(mo.gen.top_p > 0 && mo.gen.top_p <= 1)) {
            fprintf(stderr, "distill eval: need --n >= 1, --batch >= 1, --max-new-tokens >= 1, --temperature >= 0, --top-k >= 0, 0 < --top-p <= 1\n");
            distill_tokenizer_free(tok);
            distill_dir_unlock(lock);
            return 2;
        }
        for (i = 0; i < nk; i++)
            if (ks[i] > mo.n_samples)
                fprintf(stderr, "distill eval: warning: pass@%d needs --n >= %d (it will be null)\n", ks[i], ks[i]);
        mo.tmpl = distill_chat_template_get(tmpl_name ? tmpl_name : "chatml");
        if (!mo.tmpl) { fprintf(stderr, "distill eval: unknown chat template '%s'\n", tmpl_name); distill_tokenizer_free(tok); distill_dir_unlock(lock); return 2; }
        mo.raw = raw;
        mo.system = system;
        mo.prompt_field = prompt_field;
        mo.ks = ks; mo.nk = nk;
        mo.verifier = cv.kind ? &v : NULL;
        mo.out_jsonl = out_dir ? gens_path : NULL;
        mo.progress = !quiet;
        if (out_dir && !mo.resume) {   /* work that --resume would have kept */
            char part[4200];
            struct stat sb;
            snprintf(part, sizeof part, "%s.partial", gens_path);
            if (stat(part, &sb) == 0)
                fprintf(stderr, "distill eval: starting over: %s held an interrupted evaluation (--resume continues it)\n", part);
        }
        cli_catch_stop_signals();
        mo.stop_flag = cli_stop_flag();
        j.m = distill_model_load(model_path, 1, 1, tok ? NULL : &mtok, &err);
        if (j.m && o.weights && !strcmp(o.weights, "bf16") && distill_model_to_bf16(j.m, &err) != 0) {
            distill_model_free(j.m);
            j.m = NULL;
        }
        if (j.m && !tok && !mtok)
            snprintf(err.msg, sizeof err.msg, "no tokenizer: give --tokenizer FILE (none in the model file or next to %.300s)", model_path);
        else if (j.m) {
            /* no --template: the one the checkpoint carries */
            if (!tmpl_name && distill_model_chat_template(j.m) && distill_chat_template_get(distill_model_chat_template(j.m)))
                mo.tmpl = distill_chat_template_get(distill_model_chat_template(j.m));
            j.tok = tok ? tok : mtok;
            j.data = data_path;
            j.o = mo;
            rc = write_results(out_dir ? results_path : NULL, model_results, &j, &err);
        }
        distill_model_free(j.m);
        distill_tokenizer_free(mtok);
    }
    distill_tokenizer_free(tok);
    distill_dir_unlock(lock);
    if (*cli_stop_flag()) {   /* the problems done are saved: say where, exit as the signal asks */
        if (rc) fprintf(stderr, "interrupted: %s; continue with --resume\n", err.msg);
        return cli_stop_status(*cli_stop_flag());
    }
    if (rc) fprintf(stderr, "distill eval: %s\n", err.msg);
    return rc ? 1 : 0;
}
