/* Nothing lost on interrupt (issue 17).
     - two ranks joined by pipes (a communicator without MPI): a signal on either rank stops
       both after the same step, rank 0 saves, and resuming ends with the unbroken run's weights;
     - the folder lock: a second locker is refused naming the holder's pid, a killed holder
       leaves no stale lock;
     - ./distill train is sent SIGINT, SIGTERM, SIGUSR1 and double SIGINTs at random moments:
       exit 130/143/138, the line naming the saved checkpoint, every checkpoint intact, and the
       resumed run ends bit-identical to an unbroken one;
     - a second trainer on the same --out is refused;
     - ./distill eval --model interrupted at random moments (and with a torn samples file)
       resumes to the same results.json and generations.jsonl as an uninterrupted evaluation.
   The CLI parts need ./distill and the stories260K tokenizer (skipped when absent). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "cli_harness.h"
#include <stdlib.h>
#include <errno.h>
#include <unistd.h>
#include <signal.h>
#include <time.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define TOK "../shared/data/stories260K/tok512.bin"
static char D[64];   /* per process: concurrent make test / make asan do not share it */

static long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static void nap(long us) {
    struct timespec ts;
    ts.tv_sec = us / 1000000; ts.tv_nsec = (us % 1000000) * 1000;
    nanosleep(&ts, NULL);
}

static void sleep_ms(double ms) {
    double until = distill_time_seconds() + ms / 1000.0;
    while (distill_time_seconds() < until) nap(200);
}

/* Start `cmd` under /bin/sh (which execs it: the pid is the command's). */
static pid_t spawn(const char *cmd) {
    pid_t pid;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Exit status, or -signal when the process died of one. */
static int wait_status(pid_t pid) {
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1000;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? -WTERMSIG(st) : -1000;
}

/* Wait until `path` is larger than `than` bytes or the process has exited (returns 1 then,
   with its status in *st). */
static int wait_growth(pid_t pid, const char *path, long than, int *st) {
    double end = distill_time_seconds() + 60.0;
    while (distill_time_seconds() < end) {
        int s = 0;
        if (waitpid(pid, &s, WNOHANG) == pid) { *st = WIFEXITED(s) ? WEXITSTATUS(s) : -WTERMSIG(s); return 1; }
        if (file_size(path) > than) return 0;
        nap(1000);
    }
    return 0;
}

/* Every checkpoint file of dir (temporaries aside) reads back intact; returns the bad ones. */
static int bad_checkpoints(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int bad = 0;
    while (d && (e = readdir(d)) != NULL) {
        char p[512];
        distill_error err;
        distill_checkpoint *ck;
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".dstl") != 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        ck = distill_checkpoint_read(p, &err);
        if (!ck) { printf("    corrupt: %s\n", err.msg); bad++; }
        distill_checkpoint_free(ck);
    }
    if (d) closedir(d);
    return bad;
}

static int model_sha(const char *path, char sha[65]) {
    distill_error err;
    distill_model *m = distill_model_load(path, 1, 8, NULL, &err);
    if (!m) { printf("    %s\n", err.msg); sha[0] = 0; return -1; }
    distill_model_sha256(m, sha);
    distill_model_free(m);
    return 0;
}

/* ---- two ranks over pipes ------------------------------------------------------------------ */
typedef struct { int rd, wr; } pipe_ctx;
static int io_all(int fd, void *p, size_t n, int wr) {
    char *c = (char *)p;
    while (n > 0) {
        ssize_t k = wr ? write(fd, c, n) : read(fd, c, n);
        if (k < 0 && errno == EINTR) continue;   /* the signal under test */
        if (k <= 0) return -1;
        c += k; n -= (size_t)k;
    }
    return 0;
}
/* rank 0 writes first, rank 1 reads first: no deadlock whatever the size */
static int pc_swap(const distill_comm *c, const void *mine, void *theirs, size_t bytes) {
    pipe_ctx *x = (pipe_ctx *)c->ctx;
    if (c->rank == 0) return io_all(x->wr, (void *)mine, bytes, 1) || io_all(x->rd, theirs, bytes, 0) ? -1 : 0;
    return io_all(x->rd, theirs, bytes, 0) || io_all(x->wr, (void *)mine, bytes, 1) ? -1 : 0;
}
static int pc_allreduce(const distill_comm *c, void *buf, size_t n, distill_dtype type, distill_error *err) {
    size_t es = type == DISTILL_F32 ? 4 : 8, i;
    void *o = malloc(n * es + 1);
    if (!o || pc_swap(c, buf, o, n * es)) { free(o); return distill__err(err, "pipe communicator: peer gone"); }
    for (i = 0; i < n; i++) {   /* rank 0's value first on both ranks: the same sums */
        if (type == DISTILL_F32) { float *b = (float *)buf, *q = (float *)o; b[i] = c->rank == 0 ? b[i] + q[i] : q[i] + b[i]; }
        else if (type == DISTILL_F64) { double *b = (double *)buf, *q = (double *)o; b[i] = c->rank == 0 ? b[i] + q[i] : q[i] + b[i]; }
        else { int64_t *b = (int64_t *)buf, *q = (int64_t *)o; b[i] += q[i]; }
    }
    free(o);
    return 0;
}
static int pc_barrier(const distill_comm *c, distill_error *err) { int64_t x = 0; return pc_allreduce(c, &x, 1, DISTILL_I64, err); }
static int pc_bcast(const distill_comm *c, void *buf, size_t bytes, int root, distill_error *err) {
    pipe_ctx *x = (pipe_ctx *)c->ctx;
    if ((c->rank == root ? io_all(x->wr, buf, bytes, 1) : io_all(x->rd, buf, bytes, 0)) != 0)
        return distill__err(err, "pipe communicator: peer gone");
    return 0;
}
static void pc_abort(const distill_comm *c, int code) { (void)c; _exit(code); }

#define RB 4
#define RT 10
#include "synth_source.h"   /* the batch source: row r is a function of r */

static volatile sig_atomic_t rank_stop;
static void on_usr1(int sig) { rank_stop = sig; }

#define RSTEPS 400
/* One rank: train to RSTEPS in dir (resuming when there is a checkpoint), then write
   "<steps done> <stopped> <sha>" to report. */
static void rank_main(int rank, int rd, int wr, const char *dir, const char *report) {
    distill_config c = distill_config_default();
    distill_train_config tc = distill_train_default();
    distill_batch_source q;
    distill_comm comm;
    pipe_ctx px;
    distill_error err;
    synth_src s;
    distill_model *m;
    distill_trainer *T;
    struct sigaction sa;
    char sha[65], buf[256];
    int n;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a failed peer shows as an error message, not a silent death */
    distill_set_threads(1);
    px.rd = rd; px.wr = wr;
    memset(&comm, 0, sizeof comm);
    comm.rank = rank; comm.size = 2; comm.ctx = &px; comm.name = "pipes";
    comm.allreduce = pc_allreduce; comm.barrier = pc_barrier; comm.bcast = pc_bcast; comm.abort = pc_abort;
    c.vocab_size = 32; c.dim = 16; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 24;
    synth_source_init(&q, &s, RB, RT, 0);
    tc.max_steps = RSTEPS; tc.out_dir = dir; tc.save_every = 0; tc.save_every_seconds = 0; tc.progress = 0;
    tc.optim.lr = 1e-2f; tc.optim.warmup_steps = 0; tc.seed = 5;
    tc.stop_flag = &rank_stop;
    m = distill_model_create(&c, RB / 2, RT, 3, &err);
    T = m ? distill_trainer_create(m, &q, NULL, &tc, &err) : NULL;
    if (!T || distill_trainer_set_comm(T, &comm, &err) != 0) { fprintf(stderr, "    rank %d: %s\n", rank, err.msg); _exit(3); }
    snprintf(buf, sizeof buf, "%s/ckpt-", dir);
    {
        DIR *d = opendir(dir);
        struct dirent *e;
        int have = 0;
        while (d && (e = readdir(d)) != NULL) have |= !strncmp(e->d_name, "ckpt-", 5) && !strstr(e->d_name, ".tmp");
        if (d) closedir(d);
        if (have && distill_trainer_resume(T, dir, &err) != 0) { fprintf(stderr, "    rank %d: %s\n", rank, err.msg); _exit(4); }
    }
    if (distill_trainer_run(T, &err) != 0) { fprintf(stderr, "    rank %d: %s\n", rank, err.msg); _exit(5); }
    distill_model_sha256(m, sha);
    n = snprintf(buf, sizeof buf, "%lld %d %s\n", (long long)distill_trainer_steps_done(T), distill_trainer_stopped(T), sha);
    distill_write_file_atomic(report, buf, (size_t)n, NULL);
    distill_trainer_free(T);
    distill_model_free(m);
    _exit(0);
}

/* Start both ranks; signal rank `victim` (-1: none) after `delay_ms`; collect their reports. */
static int run_ranks(const char *dir, int victim, double delay_ms, long long done[2], int stopped[2], char sha[2][65]) {
    int a[2], b[2], r, ok = 1;
    pid_t pid[2];
    char rep[2][128];
    if (pipe(a) || pipe(b)) return -1;
    for (r = 0; r < 2; r++) {
        snprintf(rep[r], sizeof rep[r], "%s.rank%d", dir, r);
        remove(rep[r]);
        fflush(stdout);
        pid[r] = fork();
        if (pid[r] == 0) {   /* rank 0 reads a, writes b; rank 1 the other way round */
            if (r == 0) { close(a[1]); close(b[0]); rank_main(0, a[0], b[1], dir, rep[0]); }
            else { close(b[1]); close(a[0]); rank_main(1, b[0], a[1], dir, rep[1]); }
        }
    }
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    if (victim >= 0) {   /* a random moment once this run has trained a step */
        char mp[160];
        long before;
        double end = distill_time_seconds() + 30.0;
        snprintf(mp, sizeof mp, "%s/metrics.jsonl", dir);
        before = file_size(mp);
        while (file_size(mp) <= (before > 0 ? before : 0) && distill_time_seconds() < end) nap(1000);
        sleep_ms(delay_ms);
        kill(pid[victim], SIGUSR1);
    }
    for (r = 0; r < 2; r++) {
        char *t;
        int st = wait_status(pid[r]);
        if (st != 0) { printf("    rank %d exited with %d\n", r, st); ok = 0; continue; }
        t = (char *)distill_read_file(rep[r], NULL, NULL);
        if (!t || sscanf(t, "%lld %d %64s", &done[r], &stopped[r], sha[r]) != 3) ok = 0;
        distill_free(t);
        remove(rep[r]);
    }
    return ok ? 0 : -1;
}

static void test_two_ranks_stop_together(void) {
    char ref_dir[96], dir[96], sha[2][65], ref[65];
    long long done[2];
    int stopped[2], k;
    distill_rng rng;
    snprintf(ref_dir, sizeof ref_dir, "%s/ranks_ref", D);
    snprintf(dir, sizeof dir, "%s/ranks", D);
    mkdir(ref_dir, 0755);
    mkdir(dir, 0755);
    distill_rng_seed(&rng, (uint64_t)getpid());
    if (run_ranks(ref_dir, -1, 0, done, stopped, sha) != 0) { CHECK(0, "unbroken 2-rank run failed"); return; }
    CHECK(done[0] == RSTEPS && done[1] == RSTEPS && !strcmp(sha[0], sha[1]), "unbroken: %lld/%lld steps", done[0], done[1]);
    memcpy(ref, sha[0], 65);
    for (k = 0; k < 2; k++) {   /* rank 1 signalled, then rank 0 */
        char ck[160];
        if (run_ranks(dir, 1 - k, 40.0 * distill_rng_uniform(&rng), done, stopped, sha) != 0) { CHECK(0, "interrupted run %d failed", k); return; }
        CHECK(done[0] == done[1], "signal on rank %d: ranks stopped at steps %lld and %lld", 1 - k, done[0], done[1]);
        if (done[0] >= RSTEPS) { printf("    (signal %d came after the last step)\n", k); continue; }
        CHECK(stopped[0] && stopped[1], "both ranks report a stop (%d %d)", stopped[0], stopped[1]);
        snprintf(ck, sizeof ck, "%s/ckpt-%09lld.dstl", dir, done[0]);
        CHECK(file_size(ck) > 0, "rank 0 saved %s", ck);
        printf("    signal on rank %d: both ranks stopped after step %lld, rank 0 saved it\n", 1 - k, done[0]);
    }
    if (run_ranks(dir, -1, 0, done, stopped, sha) != 0) { CHECK(0, "resumed 2-rank run failed"); return; }
    CHECK(done[0] == RSTEPS && !strcmp(sha[0], ref) && !strcmp(sha[1], ref), "resumed weights differ from the unbroken run");
}

/* ---- time-based checkpoints ----------------------------------------------------------------- */
static int count_ckpts(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL) n += !strncmp(e->d_name, "ckpt-", 5) && !strstr(e->d_name, ".tmp");
    if (d) closedir(d);
    return n;
}

static void test_save_every_seconds(void) {
    distill_config c = distill_config_default();
    distill_train_config tc = distill_train_default();
    distill_batch_source q;
    distill_error err;
    synth_src s;
    distill_model *m;
    distill_trainer *T;
    char dir[96];
    CHECK(tc.save_every_seconds == 600.0, "default: a checkpoint every 10 minutes (got %g s)", tc.save_every_seconds);
    snprintf(dir, sizeof dir, "%s/timed", D);
    c.vocab_size = 32; c.dim = 16; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 24;
    synth_source_init(&q, &s, RB, RT, 0);
    tc.max_steps = 6; tc.out_dir = dir; tc.save_every = 0; tc.keep_last = 100; tc.progress = 0;
    tc.save_every_seconds = 1e-9;   /* due after every step */
    m = distill_model_create(&c, RB, RT, 3, &err);
    T = m ? distill_trainer_create(m, &q, NULL, &tc, &err) : NULL;
    CHECK(T && distill_trainer_run(T, &err) == 0, "run: %s", err.msg);
    CHECK(count_ckpts(dir) == 6, "a checkpoint after each of 6 steps when due by time (got %d)", count_ckpts(dir));
    distill_trainer_free(T);
    distill_model_free(m);
}

/* ---- the folder lock ------------------------------------------------------------------------ */
static void test_dir_lock(void) {
    char dir[96], want[64];
    distill_error err;
    int a, b, st = 0;
    pid_t pid;
    int pfd[2];
    snprintf(dir, sizeof dir, "%s/lock", D);
    mkdir(dir, 0755);
    a = distill_dir_lock(dir, &err);
    CHECK(a >= 0, "first lock: %s", err.msg);
    b = distill_dir_lock(dir, &err);
    snprintf(want, sizeof want, "pid %ld", (long)getpid());
    CHECK(b < 0 && strstr(err.msg, want) && strstr(err.msg, dir), "second lock refused naming the holder: %s", b < 0 ? err.msg : "(taken)");
    distill_dir_unlock(a);
    b = distill_dir_lock(dir, &err);
    CHECK(b >= 0, "after unlock: %s", err.msg);
    distill_dir_unlock(b);
    /* a holder killed with SIGKILL leaves no stale lock */
    if (pipe(pfd) != 0) return;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        char c = distill_dir_lock(dir, NULL) >= 0 ? 'y' : 'n';
        if (write(pfd[1], &c, 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    {
        char c = 0;
        CHECK(read(pfd[0], &c, 1) == 1 && c == 'y', "child took the lock");
    }
    b = distill_dir_lock(dir, &err);
    snprintf(want, sizeof want, "pid %ld", (long)pid);
    CHECK(b < 0 && strstr(err.msg, want), "held by the child: %s", b < 0 ? err.msg : "(taken)");
    if (b >= 0) distill_dir_unlock(b);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    b = distill_dir_lock(dir, &err);
    CHECK(b >= 0, "after kill -9 of the holder: %s", err.msg);
    distill_dir_unlock(b);
    close(pfd[0]); close(pfd[1]);
}

/* ---- distill train under signals ------------------------------------------------------------ */
static int cli_ready(void) {
    FILE *f = fopen(TOK, "rb");
    if (!f) return 0;
    fclose(f);
    return have_cli();
}

static void write_data(void) {
    char p[128];
    FILE *f;
    int i;
    snprintf(p, sizeof p, "%s/d.jsonl", D);
    f = fopen(p, "w");
    for (i = 0; i < 40; i++)
        fprintf(f, "{\"prompt\": \"Tell me a story %d.\", \"completion\": \"Once upon a time there was a cat number %d who liked fish.\"}\n", i, i);
    fclose(f);
    snprintf(p, sizeof p, "%s/e.jsonl", D);
    f = fopen(p, "w");
    for (i = 0; i < 24; i++)
        fprintf(f, "{\"id\": \"q%d\", \"prompt\": \"Tell me a story %d.\", \"difficulty\": \"%s\"}\n", i, i, i % 2 ? "HARD" : "EASY");
    fclose(f);
}

#define TRAIN_ARGS "--data %s/d.jsonl --tokenizer " TOK " --template plain --dim 32 --layers 1 --heads 2 --kv-heads 1 " \
                   "--hidden 64 --batch-rows 4 --lr 0.003 --quiet"

static void test_train_signals(void) {
    char cmd[1024], ref[65], got[65], run[96], metrics[128], model[128], errp[128];
    distill_rng rng;
    int k, saved = 0, exits[3] = {0, 0, 0};
    const int K = 9;
    if (!cli_ready()) SKIP("./distill or %s absent", TOK);
    snprintf(run, sizeof run, "%s/run", D);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    snprintf(model, sizeof model, "%s/model.dstl", run);
    snprintf(errp, sizeof errp, "%s/err.txt", D);
    snprintf(cmd, sizeof cmd, "./distill train " TRAIN_ARGS " --steps 300 --out %s/ref", D, D);
    if (sh(cmd) != 0) { CHECK(0, "unbroken run: %s", cmd); return; }
    distill_rng_seed(&rng, (uint64_t)getpid() * 7919u);
    for (k = 0; k < K; k++) {
        /* SIGINT, SIGTERM, a double SIGINT, ... and one SIGUSR1 */
        int sig = k == 4 ? SIGUSR1 : k % 3 == 1 ? SIGTERM : SIGINT, twice = k % 3 == 2, st = 0, want = 128 + sig;
        long before = file_size(metrics);
        pid_t pid;
        char *msg;
        snprintf(cmd, sizeof cmd, "exec ./distill train " TRAIN_ARGS " --steps 300 --out %s --resume > /dev/null 2> %s", D, run, errp);
        pid = spawn(cmd);
        /* a random moment once this run has trained: inside a step, a save or a log write */
        if (wait_growth(pid, metrics, before > 0 ? before : 0, &st)) { CHECK(st == 0, "run %d ended with %d", k, st); break; }
        sleep_ms(30.0 * distill_rng_uniform(&rng));
        kill(pid, sig);
        if (twice) { sleep_ms(1.0 * distill_rng_uniform(&rng)); kill(pid, sig); }
        st = wait_status(pid);
        msg = (char *)distill_read_file(errp, NULL, NULL);
        CHECK(st == want || (st == 0 && file_size(model) > 0), "signal %d: exit status %d, want %d (%s)", sig, st, want, msg ? msg : "");
        if (st == want) exits[sig == SIGINT ? 0 : sig == SIGTERM ? 1 : 2]++;
        if (st == want && msg && strstr(msg, "interrupted at step")) {
            long long step = -1;
            char path[300] = "", tail[64] = "";
            int got_fields = sscanf(strstr(msg, "interrupted at step"), "interrupted at step %lld: saved %299[^;]; %63[^\n]", &step, path, tail);
            char want_path[200];
            distill_error err;
            distill_checkpoint *ck;
            snprintf(want_path, sizeof want_path, "%s/ckpt-%09lld.dstl", run, step);
            CHECK(got_fields == 3 && !strcmp(path, want_path) && !strcmp(tail, "continue with --resume"), "message: %s", msg);
            ck = distill_checkpoint_read(path, &err);
            CHECK(ck != NULL, "the named checkpoint reads back: %s", ck ? "" : err.msg);
            distill_checkpoint_free(ck);
            saved++;
        } else if (st == want && !twice && file_size(model) < 0) {
            CHECK(0, "a single signal during training must name the checkpoint: %s", msg ? msg : "(no stderr)");
        }
        distill_free(msg);
        CHECK(bad_checkpoints(run) == 0, "after signal %d (x%d): corrupt checkpoint", sig, twice + 1);
        if (file_size(model) > 0) break;
    }
    snprintf(cmd, sizeof cmd, "./distill train " TRAIN_ARGS " --steps 300 --out %s --resume > /dev/null", D, run);
    CHECK(sh(cmd) == 0, "final resumed run");
    snprintf(cmd, sizeof cmd, "%s/ref/model.dstl", D);
    CHECK(model_sha(cmd, ref) == 0 && model_sha(model, got) == 0 && !strcmp(ref, got),
          "weights after %d interrupts differ from the unbroken run", saved);
    CHECK(saved >= 4, "only %d of %d signals stopped a run with a checkpoint", saved, K);
    CHECK(exits[0] > 0 && exits[1] > 0 && exits[2] > 0, "exit statuses seen: 130 x%d, 143 x%d, 138 x%d", exits[0], exits[1], exits[2]);
    {
        DIR *d = opendir(run);
        struct dirent *e;
        int tmp = 0;
        while (d && (e = readdir(d)) != NULL) tmp += strstr(e->d_name, ".tmp.") != NULL;
        if (d) closedir(d);
        CHECK(tmp == 0, "%d temporary files left after the final run", tmp);
    }
    printf("    %d signals: %d saved and resumed (130 x%d, 143 x%d, 138 x%d); final weights == unbroken run\n", k, saved,
           exits[0], exits[1], exits[2]);
}

static void test_train_one_writer(void) {
    char cmd[1024], dir[96], metrics[128], want[64], errp[128], *msg;
    pid_t pid;
    int st = 0;
    if (!cli_ready()) SKIP("./distill or %s absent", TOK);
    snprintf(dir, sizeof dir, "%s/one", D);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    snprintf(errp, sizeof errp, "%s/one_err.txt", D);
    snprintf(cmd, sizeof cmd, "exec ./distill train " TRAIN_ARGS " --steps 1000000 --out %s > /dev/null 2>&1", D, dir);
    pid = spawn(cmd);
    if (wait_growth(pid, metrics, 0, &st)) { CHECK(0, "the first trainer ended (%d)", st); return; }
    snprintf(cmd, sizeof cmd, "./distill train " TRAIN_ARGS " --steps 5 --out %s 2> %s", D, dir, errp);
    CHECK(sh(cmd) == 1, "a second trainer on the same --out exits 1");
    msg = (char *)distill_read_file(errp, NULL, NULL);
    snprintf(want, sizeof want, "pid %ld", (long)pid);
    CHECK(msg && strstr(msg, want) && strstr(msg, dir), "refusal names the holder: %s", msg ? msg : "");
    distill_free(msg);
    kill(pid, SIGKILL);
    wait_status(pid);
    snprintf(cmd, sizeof cmd, "./distill train " TRAIN_ARGS " --steps 5 --out %s --resume > /dev/null", D, dir);
    CHECK(sh(cmd) == 0, "after kill -9 of the holder, a new trainer takes the folder");
}

/* ---- distill eval --model, interrupted and resumed ------------------------------------------ */
#define EVAL_ARGS "--model %s/m/model.dstl --tokenizer " TOK " --data %s/e.jsonl --n 2 --k 1,2 --temperature 0.8 " \
                  "--max-new-tokens 40 --batch 4 --template plain --quiet --verifier-cmd " \
                  "'grep -q cat && echo {\\\"pass\\\":true} || echo {\\\"pass\\\":false}'"

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = (char *)distill_read_file(a, &na, NULL), *y = (char *)distill_read_file(b, &nb, NULL);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    distill_free(x);
    distill_free(y);
    return same;
}

static void test_eval_resume(void) {
    char cmd[2048], part[128], p1[128], p2[128];
    distill_rng rng;
    int k, stops = 0, st = 0;
    if (!cli_ready()) SKIP("./distill or %s absent", TOK);
    snprintf(cmd, sizeof cmd, "./distill train " TRAIN_ARGS " --steps 60 --out %s/m", D, D);
    if (sh(cmd) != 0) { CHECK(0, "training the model to evaluate"); return; }
    snprintf(cmd, sizeof cmd, "./distill eval " EVAL_ARGS " --out %s/evref > %s/evref.json", D, D, D, D);
    if (sh(cmd) != 0) { CHECK(0, "uninterrupted eval: %s", cmd); return; }
    snprintf(part, sizeof part, "%s/ev/generations.jsonl.partial", D);
    distill_rng_seed(&rng, (uint64_t)getpid() * 31u);
    for (k = 0; k < 6; k++) {
        int sig = k % 2 ? SIGTERM : SIGINT;
        long before = file_size(part);
        pid_t pid;
        snprintf(cmd, sizeof cmd, "exec ./distill eval " EVAL_ARGS " --out %s/ev --resume > %s/ev.json 2> %s/ev_err.txt", D, D, D, D, D);
        pid = spawn(cmd);
        if (wait_growth(pid, part, before > 0 ? before : 0, &st)) { CHECK(st == 0, "eval run %d ended with %d", k, st); break; }
        sleep_ms(40.0 * distill_rng_uniform(&rng));
        kill(pid, sig);
        st = wait_status(pid);
        CHECK(st == 128 + sig || st == 0, "eval: signal %d, exit status %d", sig, st);
        if (st == 0) break;
        stops++;
        if (k == 2) {   /* what a kill in the middle of a line leaves */
            FILE *f = fopen(part, "ab");
            if (f) { fputs("{\"question_id\":\"q", f); fclose(f); }
        }
    }
    snprintf(cmd, sizeof cmd, "./distill eval " EVAL_ARGS " --out %s/ev --resume > %s/ev.json", D, D, D, D);
    CHECK(sh(cmd) == 0, "final resumed eval");
    snprintf(p1, sizeof p1, "%s/ev.json", D); snprintf(p2, sizeof p2, "%s/evref.json", D);
    CHECK(same_file(p1, p2), "results after %d interrupts differ from the uninterrupted eval", stops);
    snprintf(p1, sizeof p1, "%s/ev/results.json", D); snprintf(p2, sizeof p2, "%s/evref/results.json", D);
    CHECK(same_file(p1, p2), "results.json differs");
    snprintf(p1, sizeof p1, "%s/ev/generations.jsonl", D); snprintf(p2, sizeof p2, "%s/evref/generations.jsonl", D);
    CHECK(same_file(p1, p2), "generations.jsonl differs");
    CHECK(file_size(part) < 0, "the .partial file is renamed at the end");
    /* resuming a finished evaluation generates nothing and scores the same */
    snprintf(cmd, sizeof cmd, "./distill eval " EVAL_ARGS " --out %s/ev --resume > %s/ev2.json", D, D, D, D);
    CHECK(sh(cmd) == 0, "resume of a finished eval");
    snprintf(p1, sizeof p1, "%s/ev2.json", D); snprintf(p2, sizeof p2, "%s/evref.json", D);
    CHECK(same_file(p1, p2), "re-scored finished eval differs");
    /* a samples file of another evaluation is refused, naming it */
    {
        char *msg;
        FILE *f;
        int i;
        snprintf(p1, sizeof p1, "%s/e2.jsonl", D);
        f = fopen(p1, "w");
        for (i = 0; i < 4; i++) fprintf(f, "{\"id\": \"other%d\", \"prompt\": \"Hello %d.\"}\n", i, i);
        fclose(f);
        snprintf(cmd, sizeof cmd, "./distill eval --model %s/m/model.dstl --tokenizer " TOK " --data %s --n 2 --template plain "
                 "--max-new-tokens 8 --quiet --out %s/ev --resume > /dev/null 2> %s/ev3.txt", D, p1, D, D);
        CHECK(sh(cmd) == 1, "resume on other data exits 1");
        snprintf(p2, sizeof p2, "%s/ev3.txt", D);
        msg = (char *)distill_read_file(p2, NULL, NULL);
        CHECK(msg && strstr(msg, "generations.jsonl") && strstr(msg, "another evaluation"), "message: %s", msg ? msg : "");
        distill_free(msg);
    }
    printf("    %d interrupts; resumed results and samples == uninterrupted\n", stops);
}

int main(void) {
    char cmd[160];
    /* one worker thread in every ./distill started here: these models are too small for threads
       to help, and spinning pool workers on a machine shared with other jobs cost 10x */
    setenv("DISTILL_THREADS", "1", 1);
    mkdir("build", 0755);
    snprintf(D, sizeof D, "build/test_interrupt.%ld", (long)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", D, D);
    if (sh(cmd) != 0) return 1;
    write_data();
    RUN(test_two_ranks_stop_together);   /* first: it forks, before this process starts threads */
    RUN(test_dir_lock);
    RUN(test_save_every_seconds);
    RUN(test_train_signals);
    RUN(test_train_one_writer);
    RUN(test_eval_resume);
    if (harness_failed == 0) { snprintf(cmd, sizeof cmd, "rm -rf %s", D); sh(cmd); }
    return harness_done("test_interrupt");
}
