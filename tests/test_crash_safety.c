/* Crash safety: a child process trains with a checkpoint every 2 steps, a metrics log and a
   results file rewritten every step; the parent kills it with SIGKILL at a random moment,
   checks the directory, and starts it again (the child resumes from the newest checkpoint), in a
   loop. After every kill: every checkpoint reads back intact (magic, sizes, CRCs), the results
   file parses, the metrics log has no torn line except possibly the last, resume succeeds, and
   at most the steps since the last checkpoint are lost. At the end the run completes without a
   kill and its weights must be bit-identical to an uninterrupted run's. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <stdlib.h>
#include <unistd.h>
#include <signal.h>
#include <dirent.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/select.h>
#include <sys/time.h>

/* per process, so concurrent make test / make asan runs do not share it */
static char DIR_[64], RESULTS_[96], REF_[96];
#define STEPS 60
#define SAVE_EVERY 2
#define KILLS 8
#define CB 3
#define CT 10
#include "synth_source.h"   /* the batch source: row r is a function of r */

typedef struct { int fd; } cs_cb;
/* every step: rewrite results.json atomically, then tell the parent the step is done */
static int cs_callback(void *ctx, const distill_step_info *in) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, "{\"step\": %lld, \"loss\": %.9g}\n", (long long)in->step, in->loss);
    distill_write_file_atomic(RESULTS_, buf, (size_t)n, NULL);
    n = snprintf(buf, sizeof buf, "%lld\n", (long long)in->step);
    if (write(((cs_cb *)ctx)->fd, buf, (size_t)n) < 0) return 1;
    return 0;
}

/* Train to STEPS in `dir` (resuming when a checkpoint is there); returns 0 and the weights' hash. */
static int cs_train(const char *dir, int fd, char sha[65], distill_error *err) {
    distill_config c = distill_config_default();
    distill_train_config tc = distill_train_default();
    distill_batch_source q;
    synth_src s;
    cs_cb cb;
    distill_model *m;
    distill_trainer *T;
    int rc = -1;
    c.vocab_size = 32; c.dim = 16; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 24;
    synth_source_init(&q, &s, CB, CT, 77);
    tc.max_steps = STEPS; tc.out_dir = dir; tc.save_every = SAVE_EVERY; tc.keep_last = 3; tc.progress = 0;
    tc.optim.lr = 1e-2f; tc.optim.warmup_steps = 0; tc.seed = 5;
    m = distill_model_create(&c, CB, CT, 3, err);
    T = m ? distill_trainer_create(m, &q, NULL, &tc, err) : NULL;
    if (T) {
        DIR *d = opendir(dir);
        struct dirent *e;
        int have = 0;
        while (d && (e = readdir(d)) != NULL) have |= strncmp(e->d_name, "ckpt-", 5) == 0 && strstr(e->d_name, ".tmp") == NULL;
        if (d) closedir(d);
        cb.fd = fd;
        if (fd >= 0) distill_trainer_set_callback(T, cs_callback, &cb);
        if ((!have || distill_trainer_resume(T, dir, err) == 0) && distill_trainer_run(T, err) == 0) {
            distill_model_sha256(m, sha);
            rc = 0;
        }
    }
    distill_trainer_free(T);
    distill_model_free(m);
    return rc;
}

static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        remove(p);
    }
    if (d) closedir(d);
}

/* The directory after a kill: returns the newest checkpoint's step (-1: none), counts problems. */
static int64_t check_dir(int *bad, int *tmp_files) {
    DIR *d = opendir(DIR_);
    struct dirent *e;
    char p[512];
    int64_t newest = -1;
    while (d && (e = readdir(d)) != NULL) {
        long long s;
        if (strstr(e->d_name, ".tmp.")) { (*tmp_files)++; continue; }
        snprintf(p, sizeof p, "%s/%s", DIR_, e->d_name);
        if (sscanf(e->d_name, "ckpt-%lld.dstl", &s) == 1) {
            distill_error err;
            distill_checkpoint *ck = distill_checkpoint_read(p, &err);
            if (!ck) { printf("    corrupt checkpoint: %s\n", err.msg); (*bad)++; }
            distill_checkpoint_free(ck);
            if (s > newest) newest = s;
        } else if (!strcmp(e->d_name, "results.json")) {
            distill_error err;
            distill_json *j = distill_json_parse_file(p, &err);
            if (!j) { printf("    torn results file: %s\n", err.msg); (*bad)++; }
            distill_json_free(j);
        } else if (!strcmp(e->d_name, "metrics.jsonl")) {
            size_t n, i, start = 0;
            char *b = (char *)distill_read_file(p, &n, NULL);
            for (i = 0; b && i < n; i++)
                if (b[i] == '\n') {
                    distill_error err;
                    distill_json *j = distill_json_parse(b + start, i - start, "metrics", 1, &err);
                    if (!j) { printf("    torn metrics line: %s\n", err.msg); (*bad)++; }
                    distill_json_free(j);
                    start = i + 1;
                }
            distill_free(b);
        }
    }
    if (d) closedir(d);
    return newest;
}

static void test_kill_during_training_loop(void) {
    char ref[65], got[65];
    distill_error err;
    distill_rng r;
    int k, bad = 0, tmp_files = 0, resumed_ok = 0, lost_max = 0;
    mkdir("build", 0755);
    snprintf(DIR_, sizeof DIR_, "build/crash_safety.%ld", (long)getpid());
    snprintf(RESULTS_, sizeof RESULTS_, "%s/results.json", DIR_);
    snprintf(REF_, sizeof REF_, "%s/ref", DIR_);
    mkdir(DIR_, 0755);
    rm_dir(DIR_);
    /* the parent must not start the thread pool before forking: a forked child has no pool
       workers (only the forking thread survives fork) and its first parallel job would wait
       for them forever, so the reference run comes after the kills */
    distill_rng_seed(&r, (uint64_t)getpid());
    for (k = 0; k < KILLS; k++) {
        int pfd[2];
        pid_t pid;
        long long last = -1;
        char buf[256];
        ssize_t n;
        int64_t newest, floor_step;
        if (pipe(pfd) != 0) { CHECK(0, "pipe"); return; }
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            char sha[65];
            close(pfd[0]);
            _exit(cs_train(DIR_, pfd[1], sha, &err) == 0 ? 0 : 3);
        }
        close(pfd[1]);
        /* read step reports until a random step past the resume point (or a random moment
           inside it), then SIGKILL: the kill lands anywhere in a step, a save or a results write */
        {
            double t_end = distill_time_seconds() + 10.0, extra = 0.03 * distill_rng_uniform(&r);
            long long first = -1, target = 1 + (long long)distill_rng_below(&r, 6);
            while (distill_time_seconds() < t_end) {
                if (first < 0 && last >= 0) first = last;
                if (first >= 0 && last >= first + target) {
                    double until = distill_time_seconds() + extra;
                    while (distill_time_seconds() < until) {}
                    break;
                }
                fd_set fs;
                struct timeval tv;
                FD_ZERO(&fs); FD_SET(pfd[0], &fs);
                tv.tv_sec = 0; tv.tv_usec = 2000;
                if (select(pfd[0] + 1, &fs, NULL, NULL, &tv) > 0) {
                    n = read(pfd[0], buf, sizeof buf - 1);
                    if (n <= 0) break;
                    buf[n] = 0;
                    { char *p = buf, *q; while ((q = strchr(p, '\n')) != NULL) { *q = 0; if (*p) last = atoll(p); p = q + 1; } }
                }
            }
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        while ((n = read(pfd[0], buf, sizeof buf - 1)) > 0) {
            char *p = buf, *q;
            buf[n] = 0;
            while ((q = strchr(p, '\n')) != NULL) { *q = 0; if (*p) last = atoll(p); p = q + 1; }
        }
        close(pfd[0]);
        newest = check_dir(&bad, &tmp_files);
        /* the child reported step `last` done; every save of a step before it has completed */
        floor_step = last > 0 ? (last - 1) / SAVE_EVERY * SAVE_EVERY : 0;
        CHECK(newest >= floor_step || (floor_step == 0 && newest < 0),
              "kill %d: step %lld was reported, but the newest checkpoint is step %lld", k, last, (long long)newest);
        if (last >= 0 && newest >= 0 && last - newest > lost_max) lost_max = (int)(last - newest);
        if (newest >= 0) resumed_ok++;
        if (newest >= STEPS) break;
    }
    CHECK(bad == 0, "%d corrupt or torn files after the kills", bad);
    /* finish without a kill: resumes from the newest checkpoint; must equal the uninterrupted run */
    {   /* and one planted for sure: what a save killed before its rename leaves */
        char stale[600];
        FILE *sf;
        snprintf(stale, sizeof stale, "%s/ckpt-000000001.dstl.tmp.999999999", DIR_);
        if ((sf = fopen(stale, "wb")) != NULL) { fputs("half a checkpoint", sf); fclose(sf); }
    }
    CHECK(cs_train(DIR_, -1, got, &err) == 0, "final resume: %s", err.msg);
    {   /* the next run removes checkpoint temp files left by killed saves */
        DIR *d = opendir(DIR_);
        struct dirent *e;
        int left = 0;
        while (d && (e = readdir(d)) != NULL) left += !strncmp(e->d_name, "ckpt-", 5) && strstr(e->d_name, ".tmp.") != NULL;
        if (d) closedir(d);
        CHECK(left == 0, "%d checkpoint temp files left after the final run's saves", left);
    }
    mkdir(REF_, 0755);
    rm_dir(REF_);
    CHECK(cs_train(REF_, -1, ref, &err) == 0, "uninterrupted run: %s", err.msg);
    CHECK(!strcmp(ref, got), "weights after %d kills and resumes differ from the uninterrupted run", KILLS);
    if (!harness_cur_failed) { rm_dir(REF_); remove(REF_); rm_dir(DIR_); remove(DIR_); }   /* kept for a look when failing */
    printf("    %d kills, %d with a checkpoint to resume, at most %d steps lost, %d temp files left by killed writes\n",
           KILLS, resumed_ok, lost_max, tmp_files);
}

int main(void) {
    RUN(test_kill_during_training_loop);
    return harness_done("test_crash_safety");
}
