/* Disk errors in every file the library writes (issue 17). Built with DISTILL_TEST_FAULTS: the
   library asks distill_test_fault() below before each open, write, fsync and rename of a file,
   and this test makes the N-th such operation on a chosen file fail with EROFS, ENOSPC or EIO
   (a "write" fault sends the bytes to /dev/full, so stdio itself sees a full disk). Each writer
   must then return an error naming the file and the error, leave the previous version of the
   file byte-identical, and leave no temporary file behind. A training run whose third
   checkpoint hits a full disk stops naming the last good checkpoint, and resuming from it ends
   bit-identical to an unbroken run. */
#define DISTILL_TEST_FAULTS
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>
#include <dirent.h>
#include <sys/stat.h>

/* the fault plan: the nth `op` on a path containing `sub` fails with `err` */
static struct { const char *op, *sub; int nth, err, count, fired; } F;
int distill_test_fault(const char *op, const char *path) {
    if (!F.op || strcmp(op, F.op) != 0 || !strstr(path, F.sub)) return 0;
    if (++F.count != F.nth) return 0;
    F.fired++;
    return F.err;
}
static void fault(const char *op, const char *sub, int nth, int err) {
    F.op = op; F.sub = sub; F.nth = nth; F.err = err; F.count = 0; F.fired = 0;
}

static char D[64];

static int tmp_files(void) {
    DIR *d = opendir(D);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    return n;
}

/* A writer under test: writes a different content at every call. */
typedef int (*writer_fn)(const char *path, distill_error *err);

/* Write once for real, then fail each operation in turn: error names the file and the errno
   text, the file keeps its bytes, no temporary is left. `sub` picks the file the fault hits
   (a writer may write more than one) and `kept` is that file. */
static void check_writer2(const char *name, const char *path, const char *sub, const char *kept, writer_fn fn) {
    static const char *ops[4] = {"open", "write", "fsync", "rename"};
    static const int errs[4] = {EROFS, ENOSPC, EIO, EIO};
    distill_error err;
    size_t n0, n1;
    char *before, *after;
    int i;
    fault(NULL, "", 0, 0);
    if (fn(path, &err) != 0) { CHECK(0, "%s: first write: %s", name, err.msg); return; }
    before = (char *)distill_read_file(kept, &n0, NULL);
    for (i = 0; i < 4; i++) {
        int rc;
        err.msg[0] = 0;
        fault(ops[i], sub, 1, errs[i]);
        rc = fn(path, &err);
        CHECK(F.fired == 1, "%s: the %s fault was not reached", name, ops[i]);
        CHECK(rc != 0, "%s: a failed %s must be an error", name, ops[i]);
        CHECK(strstr(err.msg, sub) && strstr(err.msg, strerror(errs[i])), "%s, %s fault: message '%s' should name %s and '%s'",
              name, ops[i], err.msg, sub, strerror(errs[i]));
        after = (char *)distill_read_file(kept, &n1, NULL);
        CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0, "%s, %s fault: the previous file changed", name, ops[i]);
        distill_free(after);
        CHECK(tmp_files() == 0, "%s, %s fault: %d temporary files left", name, ops[i], tmp_files());
    }
    fault(NULL, "", 0, 0);
    distill_free(before);
}
static void check_writer(const char *name, const char *path, const char *sub, writer_fn fn) {
    check_writer2(name, path, sub, path, fn);
}

/* ---- the writers ------------------------------------------------------------------------------ */
static distill_model *model;
static distill_tokenizer *tok;
static int version;

static distill_model *tiny_model(int seed) {
    distill_config c = distill_config_default();
    distill_error err;
    c.vocab_size = tok ? distill_tokenizer_vocab_size(tok) : 32;
    c.dim = 16; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 24;
    return distill_model_create(&c, 3, 64, (uint64_t)seed, &err);
}

static int w_bytes(const char *path, distill_error *err) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, "version %d\n", ++version);
    return distill_write_file_atomic(path, buf, (size_t)n, err);
}
static int w_checkpoint(const char *path, distill_error *err) {
    model->params[0] += 1.0f;
    return distill_checkpoint_write(path, model, 0, NULL, NULL, 0, err);
}
static int w_safetensors(const char *path, distill_error *err) {
    model->params[0] += 1.0f;
    return distill_safetensors_save(model, path, err);
}
static int w_llama2c(const char *path, distill_error *err) {
    model->params[0] += 1.0f;
    return distill_llama2c_save(model, path, err);
}
static int w_tokenizer(const char *path, distill_error *err) {
    (void)version;
    return distill_tokenizer_save(tok, path, err);
}
static int w_tokenizer_hf(const char *path, distill_error *err) {
    return distill_tokenizer_save_hf(tok, path, err);
}
/* the tokenizer half of an HF folder; the template alternates so the files change */
static char hf_dir[128];
static int w_hf_tokenizer_files(const char *path, distill_error *err) {
    (void)path;
    return distill_hf_save_tokenizer(tok, distill_chat_template_get(++version % 2 ? "chatml" : "plain"), hf_dir, err);
}
static int w_sharded(const char *path, distill_error *err) {
    (void)path;
    model->params[0] += 1.0f;
    return distill_safetensors_save_sharded(model, hf_dir, "F32", 4096, err);
}
static int w_svg(const char *path, distill_error *err) {
    double x[2] = {1, 2}, y[2] = {0, 0};
    distill_plot_series s;
    distill_plot_panel p;
    memset(&s, 0, sizeof s); memset(&p, 0, sizeof p);
    y[1] = ++version;
    s.x = x; s.y = y; s.n = 2; s.label = "loss";
    p.title = "t"; p.series = &s; p.n_series = 1;
    return distill_svg_save(path, "plot", &p, 1, 200, 150, err);
}
static distill_dataset *data;
static int w_manifest(const char *path, distill_error *err) {
    distill_select_options so;
    distill_dataset *sub;
    memset(&so, 0, sizeof so);
    so.seed = (uint64_t)++version; so.n = 3; so.manifest = path;
    sub = distill_dataset_select(data, &so, err);
    distill_dataset_free(sub);
    return sub ? 0 : -1;
}
static int w_topk(const char *path, distill_error *err) {
    model->params[5] += 0.5f;
    return distill_topk_cache_build(model, data, 4, 2, path, err);
}
static char gens_in[128];
static int w_gens_file(const char *path, distill_error *err) {
    distill_eval_file_options o;
    FILE *res = tmpfile();
    char line[128];
    int rc;
    snprintf(line, sizeof line, "{\"question_id\": \"a\", \"text\": \"v%d\"}\n", ++version);
    if (distill_write_file_atomic(gens_in, line, strlen(line), err) != 0) { fclose(res); return -1; }
    memset(&o, 0, sizeof o);
    o.out_jsonl = path;
    rc = distill_eval_generations_file(gens_in, &o, res, err);
    fclose(res);
    return rc;
}
static char eval_data[128];
static int w_eval_model(const char *path, distill_error *err) {
    distill_eval_model_options o = distill_eval_model_options_default();
    FILE *res = tmpfile();
    int rc;
    o.out_jsonl = path;
    o.gen.max_new_tokens = 4;
    o.gen.temperature = 1.0f;
    o.gen.seed = (uint64_t)++version;
    o.raw = 1;
    rc = distill_eval_model(model, tok, eval_data, &o, res, err);
    fclose(res);
    return rc;
}

/* N of hf_dir's model-00001-of-N.safetensors */
static int shard_n(void) {
    char q[192];
    int n;
    for (n = 2; n < 1000; n++) {
        snprintf(q, sizeof q, "%s/model-00001-of-%05d.safetensors", hf_dir, n);
        if (access(q, F_OK) == 0) return n;
    }
    return 0;
}

static void test_every_writer(void) {
    char p[160];
    static const char *texts[] = {"the cat sat on the mat", "a dog ran far away", "one two three four"};
    distill_error err;
    FILE *f;
    int i;
    tok = distill_tokenizer_train(texts, NULL, 3, 280, DISTILL_PATTERN_GPT2, NULL, 0, &err);
    if (!tok) { CHECK(0, "tokenizer: %s", err.msg); return; }
    model = tiny_model(7);
    if (!model) { CHECK(0, "model"); return; }
    snprintf(p, sizeof p, "%s/d.jsonl", D);
    f = fopen(p, "w");
    for (i = 0; i < 6; i++) fprintf(f, "{\"text\": \"the cat sat %d times on the mat\"}\n", i);
    fclose(f);
    data = distill_dataset_load(p, NULL, tok, &err);
    if (!data) { CHECK(0, "data: %s", err.msg); return; }
    snprintf(eval_data, sizeof eval_data, "%s/e.jsonl", D);
    f = fopen(eval_data, "w");
    for (i = 0; i < 3; i++) fprintf(f, "{\"id\": \"q%d\", \"prompt\": \"the cat %d\"}\n", i, i);
    fclose(f);
    snprintf(gens_in, sizeof gens_in, "%s/gens_in.jsonl", D);

    snprintf(p, sizeof p, "%s/file.bin", D);           check_writer("distill_write_file_atomic", p, "file.bin", w_bytes);
    snprintf(p, sizeof p, "%s/model.dstl", D);         check_writer("checkpoint / model.dstl", p, "model.dstl", w_checkpoint);
    snprintf(p, sizeof p, "%s/m.safetensors", D);      check_writer("safetensors", p, "m.safetensors", w_safetensors);
    snprintf(p, sizeof p, "%s/m.safetensors", D);
    {
        char cfg[160];
        snprintf(cfg, sizeof cfg, "%s/config.json", D);
        check_writer2("safetensors config.json", p, "config.json", cfg, w_safetensors);
    }
    snprintf(p, sizeof p, "%s/m.bin", D);              check_writer("llama2.c", p, "m.bin", w_llama2c);
    snprintf(p, sizeof p, "%s/tok.txt", D);            check_writer("tokenizer", p, "tok.txt", w_tokenizer);
    snprintf(p, sizeof p, "%s/tokenizer.json", D);     check_writer("HF tokenizer.json", p, "tokenizer.json", w_tokenizer_hf);
    snprintf(hf_dir, sizeof hf_dir, "%s/hf", D);
    mkdir(hf_dir, 0755);
    {   /* each file of an exported HF folder, hit in turn */
        static const char *const files[] = {"tokenizer_config.json", "generation_config.json", "model.safetensors.index.json",
                                            "model-00002-of-"};
        char kept[192];
        int k;
        for (k = 0; k < 4; k++) {
            if (k < 3) snprintf(kept, sizeof kept, "%s/%s", hf_dir, files[k]);
            else snprintf(kept, sizeof kept, "%s/model-00002-of-%05d.safetensors", hf_dir, w_sharded(p, &err) == 0 ? shard_n() : 0);
            check_writer2(files[k], hf_dir, files[k], kept, k < 2 ? w_hf_tokenizer_files : w_sharded);
        }
    }
    snprintf(p, sizeof p, "%s/plot.svg", D);           check_writer("svg plot", p, "plot.svg", w_svg);
    snprintf(p, sizeof p, "%s/manifest.json", D);      check_writer("subset manifest", p, "manifest.json", w_manifest);
    snprintf(p, sizeof p, "%s/topk.bin", D);           check_writer("top-k teacher cache", p, "topk.bin", w_topk);
    snprintf(p, sizeof p, "%s/scored.jsonl", D);       check_writer("scored generations", p, "scored.jsonl", w_gens_file);
    snprintf(p, sizeof p, "%s/generations.jsonl", D);  check_writer("eval samples", p, "generations.jsonl", w_eval_model);
    {   /* a failed evaluation keeps its .partial file (the complete problems) for resume */
        char part[160];
        snprintf(part, sizeof part, "%s/generations.jsonl.partial", D);
        fault("fsync", "generations.jsonl", 1, EIO);
        CHECK(w_eval_model(p, &err) != 0, "eval with a failing fsync");
        fault(NULL, "", 0, 0);
        {
            char *kept = (char *)distill_read_file(part, NULL, NULL);
            CHECK(kept && strstr(kept, "\"question_id\":\"q2\""), "%s is kept with every problem", part);
            distill_free(kept);
        }
        remove(part);
    }
    distill_dataset_free(data);
    distill_model_free(model);
    distill_tokenizer_free(tok);
}

/* ---- the trainer: checkpoints and the metrics log ------------------------------------------- */
#define CB 3
#define CT 10
#include "synth_source.h"   /* the batch source: row r is a function of r */

/* Train to 12 steps with a checkpoint every 2 in dir (resuming when asked); the weights' hash. */
static int train(const char *dir, int resume, char sha[65], distill_error *err) {
    distill_train_config tc = distill_train_default();
    distill_batch_source q;
    synth_src s;
    distill_model *m;
    distill_trainer *T;
    int rc = -1;
    tok = NULL;
    synth_source_init(&q, &s, CB, CT, 0);
    tc.max_steps = 12; tc.out_dir = dir; tc.save_every = 2; tc.progress = 0;
    tc.optim.lr = 1e-2f; tc.optim.warmup_steps = 0;
    m = tiny_model(3);
    T = m ? distill_trainer_create(m, &q, NULL, &tc, err) : NULL;
    if (T && (!resume || distill_trainer_resume(T, dir, err) == 0) && distill_trainer_run(T, err) == 0) {
        distill_model_sha256(m, sha);
        rc = 0;
    }
    distill_trainer_free(T);
    distill_model_free(m);
    return rc;
}

static void test_trainer_disk_full(void) {
    char ref[65], got[65], dir[96], ref_dir[96], want[160], last[160];
    distill_error err;
    distill_checkpoint *ck;
    snprintf(ref_dir, sizeof ref_dir, "%s/ref", D);
    snprintf(dir, sizeof dir, "%s/run", D);
    fault(NULL, "", 0, 0);
    CHECK(train(ref_dir, 0, ref, &err) == 0, "unbroken run: %s", err.msg);
    /* the third checkpoint (step 6) meets a full disk */
    fault("write", "ckpt-", 3, ENOSPC);
    CHECK(train(dir, 0, got, &err) != 0, "a failed checkpoint must stop the run");
    snprintf(want, sizeof want, "%s/ckpt-000000006.dstl", dir);
    snprintf(last, sizeof last, "the last checkpoint is %s/ckpt-000000004.dstl", dir);
    CHECK(strstr(err.msg, want) && strstr(err.msg, strerror(ENOSPC)) && strstr(err.msg, last),
          "message should name the file, the error and the last good checkpoint: %s", err.msg);
    ck = distill_checkpoint_read(last + strlen("the last checkpoint is "), &err);
    CHECK(ck != NULL, "the last good checkpoint is intact: %s", ck ? "" : err.msg);
    distill_checkpoint_free(ck);
    {
        FILE *f = fopen(want, "rb");
        CHECK(!f, "no half-written %s", want);
        if (f) fclose(f);
    }
    CHECK(tmp_files() == 0, "temporary files left in %s", D);
    /* and a rename that fails (EIO) the same way, at step 8 after resuming */
    fault("rename", "ckpt-", 2, EIO);
    CHECK(train(dir, 1, got, &err) != 0 && strstr(err.msg, "ckpt-000000008.dstl") && strstr(err.msg, strerror(EIO)),
          "failed rename: %s", err.msg);
    fault(NULL, "", 0, 0);
    CHECK(train(dir, 1, got, &err) == 0, "resume after the disk errors: %s", err.msg);
    CHECK(!strcmp(ref, got), "weights after disk errors and resumes differ from the unbroken run");
    /* the metrics log on a full disk: the run stops naming it */
    fault("write", "metrics.jsonl", 1, ENOSPC);
    snprintf(dir, sizeof dir, "%s/run2", D);
    CHECK(train(dir, 0, got, &err) != 0 && strstr(err.msg, "metrics.jsonl") && strstr(err.msg, strerror(ENOSPC)),
          "metrics on a full disk: %s", err.msg);
    fault(NULL, "", 0, 0);
}

int main(void) {
    char cmd[160];
    mkdir("build", 0755);
    snprintf(D, sizeof D, "build/test_faults.%ld", (long)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", D, D);
    if (system(cmd) != 0) return 1;
    RUN(test_every_writer);
    RUN(test_trainer_disk_full);
    if (harness_failed == 0) { snprintf(cmd, sizeof cmd, "rm -rf %s", D); if (system(cmd) != 0) {} }
    return harness_done("test_faults");
}
