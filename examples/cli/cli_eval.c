/* distill eval: score generations with the completion, think-tag and pass@k metrics.

     distill eval --generations FILE.jsonl [--field text] [--prompt-field prompt]
                  [--think-in-prompt] [--tokenizer FILE] [--k 1,5]
                  [--verifier NAME | --verifier-cmd CMD] [--verifier-timeout SEC] [--out DIR]
     distill eval --model FILE --data EVAL.jsonl [--n N] [--k 1,5] [--max-new-tokens N]
                  [--temperature T] [--top-p P] [--top-k K] [--seed S] [--batch B] [--raw]
                  [--tokenizer FILE] [--template NAME] [--system TEXT] [--prompt-field F]
                  [--max-problems N] [--quiet] [--verifier NAME | --verifier-cmd CMD] [--out DIR]

   The results JSON object goes to stdout (and DIR/results.json with --out); the scored samples
   go to DIR/generations.jsonl.

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

#include "world.h"   /* world_verify_text: the miniature programming world's verifier */

/* ---- the external-command verifier -------------------------------------------------------- */

typedef struct cli_verifier {
    int kind;             /* 1 world, 2 command */
    const char *cmd;
    double timeout;
    const char *prompt;   /* the prompt the text answers (think markers), may be NULL */
    size_t prompt_len;
} cli_verifier;

/* A growable byte buffer. */
typedef struct cli_buf { char *p; size_t n, cap; } cli_buf;
static int buf_put(cli_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        char *np;
        while (nc < b->n + n + 1) nc *= 2;
        np = (char *)realloc(b->p, nc);
        if (!np) return -1;
        b->p = np; b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* Serialise a parsed JSON value back to text (for the verifier's stdin). Written through a
   memory FILE would need open_memstream; a temporary buffer keeps this portable. */
static void json_emit(FILE *f, const distill_json *v) {
    size_t i;
    switch (v->type) {
    case DISTILL_JSON_NULL: fputs("null", f); break;
    case DISTILL_JSON_FALSE: fputs("false", f); break;
    case DISTILL_JSON_TRUE: fputs("true", f); break;
    case DISTILL_JSON_NUMBER:
        if (v->is_int) fprintf(f, "%lld", (long long)v->i64);
        else fprintf(f, "%.17g", v->num);
        break;
    case DISTILL_JSON_STRING: distill_json_write_string(f, v->str, v->len); break;
    case DISTILL_JSON_ARRAY:
        fputc('[', f);
        for (i = 0; i < v->len; i++) { if (i) fputc(',', f); json_emit(f, &v->items[i]); }
        fputc(']', f);
        break;
    case DISTILL_JSON_OBJECT:
        fputc('{', f);
        for (i = 0; i < v->len; i++) {
            if (i) fputc(',', f);
            distill_json_write_string(f, v->keys[i], v->key_lens[i]);
            fputc(':', f);
            json_emit(f, &v->items[i]);
        }
        fputc('}', f);
        break;
    }
}

/* Run cmd under /bin/sh with `in` on stdin; collect stdout (at most 1 MiB) into out. Returns the
   exit status (>= 0), -2 on timeout (the process group is killed), -1 if it could not run. */
static int run_with_timeout(const char *cmd, const char *in, size_t in_len, cli_buf *out,
                            double timeout) {
    int pin[2], pout[2], status = 0, rc = -1;
    size_t written = 0;
    pid_t pid;
    double t0 = distill_time_seconds();
    if (pipe(pin)) return -1;
    if (pipe(pout)) { close(pin[0]); close(pin[1]); return -1; }
    pid = fork();
    if (pid < 0) { close(pin[0]); close(pin[1]); close(pout[0]); close(pout[1]); return -1; }
    if (pid == 0) {
        setpgid(0, 0);   /* its own process group, so a timeout kills its children too */
        dup2(pin[0], 0); dup2(pout[1], 1);
        close(pin[0]); close(pin[1]); close(pout[0]); close(pout[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    close(pin[0]); close(pout[1]);
    fcntl(pin[1], F_SETFL, fcntl(pin[1], F_GETFL) | O_NONBLOCK);
    if (in_len == 0) { close(pin[1]); pin[1] = -1; }
    for (;;) {
        struct pollfd fds[2];
        int nf = 0, ms;
        double left = timeout - (distill_time_seconds() - t0);
        if (left <= 0) { rc = -2; break; }
        fds[nf].fd = pout[0]; fds[nf].events = POLLIN; fds[nf].revents = 0; nf++;
        if (pin[1] >= 0) { fds[nf].fd = pin[1]; fds[nf].events = POLLOUT; fds[nf].revents = 0; nf++; }
        ms = (int)(left * 1000) + 1;
        if (poll(fds, (nfds_t)nf, ms) < 0) { if (errno == EINTR) continue; break; }
        if (nf == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(pin[1], in + written, in_len - written);
            if (w > 0) written += (size_t)w;
            if (w < 0 && errno != EAGAIN && errno != EINTR) written = in_len;   /* reader gone */
            if (written == in_len) { close(pin[1]); pin[1] = -1; }
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[4096];
            ssize_t r = read(pout[0], chunk, sizeof chunk);
            if (r > 0) { if (out->n < (1u << 20)) buf_put(out, chunk, (size_t)r); }
            else if (r == 0) { rc = 0; break; }   /* EOF: the command closed its stdout */
            else if (errno != EINTR && errno != EAGAIN) break;
        }
    }
    if (pin[1] >= 0) close(pin[1]);
    close(pout[0]);
    if (rc == 0) {
        /* stdout closed; give the process the rest of the time to exit */
        for (;;) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
            if (w < 0) return -1;
            if (distill_time_seconds() - t0 > timeout) break;
            {
                struct timespec ts;
                ts.tv_sec = 0; ts.tv_nsec = 2000000;
                nanosleep(&ts, NULL);
            }
        }
        rc = -2;
    }
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return rc;
}

static int cli_verifier_run(void *ctx, const distill_json *record, const char *text, size_t len,
                            char *reason, size_t reason_cap) {
    cli_verifier *cv = (cli_verifier *)ctx;
    cli_buf in, out;
    FILE *tmp;
    size_t cb, ce;
    int st, pass = -1;
    distill_json *res;
    distill_error err;
    if (cv->kind == 1) return world_verify_text(record, text, len, reason, reason_cap);
    /* build {"record":...,"text":...,"code":...} through a temporary file (portable C99) */
    memset(&in, 0, sizeof in);
    memset(&out, 0, sizeof out);
    tmp = tmpfile();
    if (!tmp) { snprintf(reason, reason_cap, "verifier: cannot create a temporary file"); return -1; }
    fputs("{\"record\":", tmp);
    if (record) json_emit(tmp, record); else fputs("null", tmp);
    fputs(",\"text\":", tmp);
    distill_json_write_string(tmp, text, len);
    fputs(",\"code\":", tmp);
    if (distill_extract_code(cv->prompt, cv->prompt_len, text, len, &cb, &ce, NULL))
        distill_json_write_string(tmp, text + cb, ce - cb);
    else
        fputs("null", tmp);
    fputs("}\n", tmp);
    rewind(tmp);
    {
        char chunk[4096];
        size_t r;
        while ((r = fread(chunk, 1, sizeof chunk, tmp)) > 0) buf_put(&in, chunk, r);
    }
    fclose(tmp);
    st = run_with_timeout(cv->cmd, in.p ? in.p : "", in.n, &out, cv->timeout);
    if (st == -2) snprintf(reason, reason_cap, "verifier timed out after %g s", cv->timeout);
    else if (st < 0) snprintf(reason, reason_cap, "verifier could not be run");
    else if (st != 0) snprintf(reason, reason_cap, "verifier exited with status %d", st);
    else {
        /* the last non-empty line of stdout holds the verdict */
        size_t e = out.n, b;
        while (e > 0 && (out.p[e - 1] == '\n' || out.p[e - 1] == '\r' || out.p[e - 1] == ' ')) e--;
        b = e;
        while (b > 0 && out.p[b - 1] != '\n') b--;
        res = e > b ? distill_json_parse(out.p + b, e - b, "verifier stdout", 1, &err) : NULL;
        if (!res) snprintf(reason, reason_cap, "verifier printed no JSON verdict");
        else {
            const distill_json *p = distill_json_get(res, "pass"), *r = distill_json_get(res, "reason");
            if (!p || (p->type != DISTILL_JSON_TRUE && p->type != DISTILL_JSON_FALSE))
                snprintf(reason, reason_cap, "verifier verdict lacks a boolean \"pass\"");
            else {
                pass = p->type == DISTILL_JSON_TRUE;
                snprintf(reason, reason_cap, "%s", r && r->type == DISTILL_JSON_STRING ? r->str : "");
            }
            distill_json_free(res);
        }
    }
    free(in.p);
    free(out.p);
    return pass;
}

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

static void eval_usage(FILE *f) {
    fprintf(f,
        "usage: distill eval --generations FILE.jsonl [--field text] [--prompt-field prompt]\n"
        "                    [--think-in-prompt] [--tokenizer FILE] [--k 1,5]\n"
        "                    [--verifier NAME | --verifier-cmd CMD] [--verifier-timeout SEC] [--out DIR]\n"
        "       distill eval --model FILE --data EVAL.jsonl [--tokenizer FILE] [--n N] [--k 1,5]\n"
        "                    [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]\n"
        "                    [--batch B] [--template NAME] [--system TEXT] [--prompt-field F] [--raw]\n"
        "                    [--max-problems N] [--quiet]\n"
        "                    [--verifier NAME | --verifier-cmd CMD] [--verifier-timeout SEC] [--out DIR]\n"
        "\n"
        "Scores generations with the same definitions for any model: completion_rate,\n"
        "strict_completion_rate, think_open/close/both_rate, think_tokens_mean/median, and with a\n"
        "verifier pass_at_1, pass_at_k, accuracy_completed/truncated (per difficulty too).\n"
        "The results JSON goes to stdout (and DIR/results.json); the samples to DIR/generations.jsonl.\n"
        "\n"
        "--generations: one JSON object per line with the text in --field (default text); read when\n"
        "  present: finish_reason, question_id (or id, task_id), difficulty, pass, and the prompt in\n"
        "  --prompt-field (its think tag counts). --think-in-prompt: every prompt opened <think>.\n"
        "  Think lengths are tokens with --tokenizer, else whitespace-separated words.\n"
        "--model: the prompt is --prompt-field or the first of prompt/question/problem/instruction\n"
        "  (rendered by the chat template, or as is after BOS with --raw), else the record's\n"
        "  conversation up to its final assistant turn. Defaults: --n 1, --k 1, --max-new-tokens 512,\n"
        "  --temperature 0 (greedy), --batch 8, --seed 1.\n"
        "Verifiers: --verifier world (the miniature programming world: record's hidden_tests),\n"
        "  --verifier-cmd CMD (run under /bin/sh per sample; reads {\"record\",\"text\",\"code\"} JSON on\n"
        "  stdin, prints {\"pass\": bool, \"reason\": str}; non-zero exit, no verdict or more than\n"
        "  --verifier-timeout seconds (default 30) = fail). Without a verifier, --generations uses a\n"
        "  boolean \"pass\" field when every line has one.\n");
}

/* Parse "1,5,10" into ks; returns the count or -1. */
static int parse_ks(const char *s, int *ks, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1000000 || n >= cap) return -1;
        ks[n++] = (int)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return n;
}

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
    const char *gens = NULL, *field = NULL, *prompt_field = NULL, *tok_path = NULL;
    const char *verifier = NULL, *verifier_cmd = NULL, *out_dir = NULL;
    const char *model_path = NULL, *data_path = NULL, *tmpl_name = NULL, *system = NULL;
    int think_in_prompt = 0, ks[DISTILL_EVAL_MAX_K], nk = 1, i, rc = 1, raw = 0, quiet = 0;
    distill_eval_model_options mo = distill_eval_model_options_default();
    double timeout = 30.0;
    distill_error err;
    distill_tokenizer *tok = NULL;
    cli_verifier cv;
    distill_verifier v;
    char results_path[4096], gens_path[4096];

    ks[0] = 1;
    err.msg[0] = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { eval_usage(stdout); return 0; }
        else if (!strcmp(a, "--think-in-prompt")) { think_in_prompt = 1; takes = 0; }
        else if (!strcmp(a, "--raw")) { raw = 1; takes = 0; }
        else if (!strcmp(a, "--quiet")) { quiet = 1; takes = 0; }
        else if (!val) { fprintf(stderr, "distill eval: %s needs a value\n", a); return 2; }
        else if (!strcmp(a, "--generations")) gens = val;
        else if (!strcmp(a, "--field")) field = val;
        else if (!strcmp(a, "--prompt-field")) prompt_field = val;
        else if (!strcmp(a, "--tokenizer")) tok_path = val;
        else if (!strcmp(a, "--verifier")) verifier = val;
        else if (!strcmp(a, "--verifier-cmd")) verifier_cmd = val;
        else if (!strcmp(a, "--verifier-timeout")) timeout = atof(val);
        else if (!strcmp(a, "--out")) out_dir = val;
        else if (!strcmp(a, "--model")) model_path = val;
        else if (!strcmp(a, "--data")) data_path = val;
        else if (!strcmp(a, "--template")) tmpl_name = val;
        else if (!strcmp(a, "--system")) system = val;
        else if (!strcmp(a, "--n")) mo.n_samples = atoi(val);
        else if (!strcmp(a, "--batch")) mo.batch = atoi(val);
        else if (!strcmp(a, "--max-problems")) mo.max_problems = atoll(val);
        else if (!strcmp(a, "--max-new-tokens")) mo.gen.max_new_tokens = atoi(val);
        else if (!strcmp(a, "--temperature")) mo.gen.temperature = (float)atof(val);
        else if (!strcmp(a, "--top-p")) mo.gen.top_p = (float)atof(val);
        else if (!strcmp(a, "--top-k")) mo.gen.top_k = atoi(val);
        else if (!strcmp(a, "--seed")) mo.gen.seed = strtoull(val, NULL, 10);
        else if (!strcmp(a, "--k")) {
            nk = parse_ks(val, ks, DISTILL_EVAL_MAX_K);
            if (nk < 1) { fprintf(stderr, "distill eval: --k wants a list like 1,5,10 (at most %d values)\n", DISTILL_EVAL_MAX_K); return 2; }
        } else { fprintf(stderr, "distill eval: unknown option '%s'\n\n", a); eval_usage(stderr); return 2; }
        i += takes;
    }
    if (!gens && !model_path) { eval_usage(stderr); return 2; }
    if (gens && model_path) { fprintf(stderr, "distill eval: give --generations or --model, not both\n"); return 2; }
    if (verifier && verifier_cmd) { fprintf(stderr, "distill eval: give --verifier or --verifier-cmd, not both\n"); return 2; }
    if (!(timeout > 0)) { fprintf(stderr, "distill eval: --verifier-timeout must be > 0\n"); return 2; }
    memset(&cv, 0, sizeof cv);
    cv.timeout = timeout;
    if (verifier) {
        if (strcmp(verifier, "world")) { fprintf(stderr, "distill eval: unknown verifier '%s' (known: world)\n", verifier); return 2; }
        cv.kind = 1;
    } else if (verifier_cmd) {
        cv.kind = 2;
        cv.cmd = verifier_cmd;
        signal(SIGPIPE, SIG_IGN);   /* a verifier that exits without reading must not kill us */
    }
    v.fn = cli_verifier_run;
    v.ctx = &cv;
    if (out_dir) {
        if (mkdir_p(out_dir, &err)) { fprintf(stderr, "distill eval: %s\n", err.msg); return 1; }
        snprintf(results_path, sizeof results_path, "%s/results.json", out_dir);
        snprintf(gens_path, sizeof gens_path, "%s/generations.jsonl", out_dir);
    }
    if (tok_path) {
        tok = distill_tokenizer_load(tok_path, NULL, &err);
        if (!tok) { fprintf(stderr, "distill eval: %s\n", err.msg); return 1; }
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
        if (!data_path) { fprintf(stderr, "distill eval: --model needs --data EVAL.jsonl\n"); distill_tokenizer_free(tok); return 2; }
        if (mo.n_samples < 1 || mo.batch < 1 || mo.gen.max_new_tokens < 1 || mo.gen.temperature < 0 ||
            mo.gen.top_k < 0 || !(mo.gen.top_p > 0 && mo.gen.top_p <= 1)) {
            fprintf(stderr, "distill eval: need --n >= 1, --batch >= 1, --max-new-tokens >= 1, --temperature >= 0, --top-k >= 0, 0 < --top-p <= 1\n");
            distill_tokenizer_free(tok);
            return 2;
        }
        for (i = 0; i < nk; i++)
            if (ks[i] > mo.n_samples)
                fprintf(stderr, "distill eval: warning: pass@%d needs --n >= %d (it will be null)\n", ks[i], ks[i]);
        mo.tmpl = distill_chat_template_get(tmpl_name ? tmpl_name : "chatml");
        if (!mo.tmpl) { fprintf(stderr, "distill eval: unknown chat template '%s'\n", tmpl_name); distill_tokenizer_free(tok); return 2; }
        mo.raw = raw;
        mo.system = system;
        mo.prompt_field = prompt_field;
        mo.ks = ks; mo.nk = nk;
        mo.verifier = cv.kind ? &v : NULL;
        mo.out_jsonl = out_dir ? gens_path : NULL;
        mo.progress = !quiet;
        j.m = distill_model_load(model_path, 1, 1, tok ? NULL : &mtok, &err);
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
    if (rc) fprintf(stderr, "distill eval: %s\n", err.msg);
    distill_tokenizer_free(tok);
    return rc ? 1 : 0;
}
