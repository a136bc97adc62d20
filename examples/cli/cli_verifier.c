/* The verifiers of `distill eval` and `distill sweep`: the miniature world's (--verifier world)
   and an external command (--verifier-cmd CMD).

   External verifiers: for every sample, CMD runs under /bin/sh -c with one JSON object on its
   stdin,
       {"record": <the eval record or generations line>, "text": "<generated text>",
        "code": "<last fenced block after </think>>" or null}
   and must print one JSON object on stdout, {"pass": true|false, "reason": "..."}. A command
   that exits non-zero, prints no such object, or runs longer than the timeout (it is then
   killed with its process group) counts as a fail with that reason. */
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

#include "../valley/world.h"   /* world_verify_text: the miniature programming world's verifier */

/* ---- the external-command verifier -------------------------------------------------------- */

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

int cli_verifier_run(void *ctx, const distill_json *record, const char *text, size_t len,
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

int cli_verifier_setup(cli_verifier *cv, distill_verifier *v, const char *name, const char *cmd, double timeout,
                       const char *who) {
    memset(cv, 0, sizeof *cv);
    memset(v, 0, sizeof *v);
    if (name && cmd) { fprintf(stderr, "%s: give --verifier or --verifier-cmd, not both\n", who); return 2; }
    if (!(timeout > 0 && timeout <= 1e6)) { fprintf(stderr, "%s: --verifier-timeout must be in (0, 1e6] seconds\n", who); return 2; }
    cv->timeout = timeout;
    if (name) {
        if (strcmp(name, "world")) { fprintf(stderr, "%s: unknown verifier '%s' (known: world; or --verifier-cmd CMD)\n", who, name); return 2; }
        cv->kind = 1;
    } else if (cmd) {
        if (!cmd[0]) { fprintf(stderr, "%s: --verifier-cmd is empty\n", who); return 2; }
        cv->kind = 2;
        cv->cmd = cmd;
        signal(SIGPIPE, SIG_IGN);   /* a verifier that exits without reading must not kill us */
    }
    if (cv->kind) { v->fn = cli_verifier_run; v->ctx = cv; }
    return 0;
}
