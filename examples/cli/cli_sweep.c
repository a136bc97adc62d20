/* distill sweep: the Valley of Code Reasoning experiment (arXiv 2510.06101) in miniature.

   Steps, each skipped when its output already exists (a killed sweep resumes where it stopped):
     1. the world: OUT/world/{train,direct,eval}.jsonl                      (examples/cli/world.c)
     2. a byte-level BPE tokenizer trained on the world's text: OUT/tokenizer.bin
     3. stage 0, the non-reasoning "instruct" student: a fresh model trained on question -> direct
        answer pairs (no <think>): OUT/runs/stage0/{model.ckpt,result.json}
     4. the data-quantity sweep: for every seed and size, a nested random subset of the teacher's
        traces (the subset of size n is inside the one of size 2n), fine-tuned from stage 0 for a
        fixed number of epochs (as the paper) or a fixed token budget: OUT/runs/s<seed>_n<size>/
     5. the second experiments at equal size, each from stage 0 and from the largest checkpoint:
        easy (levels 1-2) vs hard (3-5) questions, traces whose code passed vs failed the tests
     6. every model is evaluated on the held-out problems: greedy decoding, the answer extracted
        after </think> and run on the hidden tests (pass@1), completion rate (ended before the
        token cap), think-tag rate (<think> ... </think> both present)
     7. OUT/results.{csv,json,md} and OUT/valley.svg

   Distributed (docs/cluster.md): the runs of steps 3-5 are a fixed list that MPI ranks or job
   array tasks share (--task-id/--num-tasks); rank 0 or a `--merge` step writes step 7.

   Training uses the data layer's loader (packed sequences) and the core's distill_train_step
   with AdamW, linear warmup (10%) and cosine decay; checkpoints through the trainer part. */
#define _POSIX_C_SOURCE 200809L   /* mkdir, opendir, nanosleep */
#include "cli.h"
#include "world.h"
#include <string.h>
#include <stdlib.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <time.h>

#define SWEEP_MAX_SIZES 32
#define SWEEP_MAX_SEEDS 16
#define CW 112   /* report cell width */

typedef struct sweep_cfg {
    char out[1024];
    /* the world */
    int64_t n_train, n_direct, n_eval;
    uint64_t world_seed;
    double error_rate;
    /* tokenizer and model */
    int vocab, dim, layers, heads, kv_heads, hidden, seq;
    /* training */
    int batch;                 /* packed sequences of `seq` tokens per step */
    double lr, warmup;
    int epochs;                /* fixed epochs (the paper: 5) ... */
    int64_t token_budget;      /* ... or, when > 0, a fixed number of training tokens per run */
    int stage0_epochs;
    double stage0_lr;
    /* the sweep */
    int64_t sizes[SWEEP_MAX_SIZES];
    int n_sizes;
    uint64_t seeds[SWEEP_MAX_SEEDS];
    int n_seeds;
    int64_t split_size;        /* easy/hard and right/wrong subsets; 0: no second experiments */
    int second_seeds;          /* run the second experiments for the first k seeds */
    int report_only;           /* 1: train nothing; report the runs that have finished */
    /* distributed sweeps (docs/cluster.md) */
    int task_id, num_tasks;    /* this worker, of how many (-1, 0: unset; Slurm's array or 0 of 1) */
    int merge;                 /* 1: train nothing; report, every run must have finished */
    int plan;                  /* 1: print which task does which run, and stop */
    double wait_timeout;       /* seconds to wait for a run another worker owns */
    /* evaluation */
    int eval_n, max_new, gen_batch;
    int threads;
} sweep_cfg;

/* ---- presets ----------------------------------------------------------------------------- */
static void sweep_preset(sweep_cfg *c, const char *name) {
    memset(c, 0, sizeof *c);
    snprintf(c->out, sizeof c->out, "build/sweep");
    c->n_train = 4000; c->n_direct = 3000; c->n_eval = 200; c->world_seed = 1; c->error_rate = 0.3;
    c->vocab = 512; c->dim = 96; c->layers = 3; c->heads = 4; c->kv_heads = 2; c->hidden = 256; c->seq = 320;
    c->batch = 4; c->lr = 1e-3; c->warmup = 0.1; c->epochs = 5; c->token_budget = 0;
    c->stage0_epochs = 6; c->stage0_lr = 3e-3;
    c->eval_n = 200; c->max_new = 192; c->gen_batch = 50;
    /* One thread by default: these students are so small (B*T*C ~ 10^5) that a second worker
       mostly waits at barriers, and on a busy machine it made the sweep ~7x slower (measured:
       the smoke preset 14.2 s with 2 threads vs 1.9 s with 1 at load 11). --threads 0 uses the
       library default (one per core). */
    c->threads = 1;
    c->split_size = 500; c->second_seeds = 1;
    c->task_id = -1; c->num_tasks = 0; c->wait_timeout = 86400;
    if (!strcmp(name, "smoke")) {           /* CI: seconds */
        snprintf(c->out, sizeof c->out, "build/sweep-smoke");
        c->n_train = 120; c->n_direct = 120; c->n_eval = 10; c->vocab = 300;
        c->dim = 32; c->layers = 1; c->heads = 2; c->kv_heads = 1; c->hidden = 64;
        c->stage0_epochs = 1; c->epochs = 1; c->eval_n = 10; c->max_new = 64;
        c->sizes[0] = 10; c->sizes[1] = 40; c->n_sizes = 2;
        c->seeds[0] = 1; c->n_seeds = 1;
        c->split_size = 10;
    } else if (!strcmp(name, "valley")) {   /* the full miniature: <= 60 min on 2 cores */
        snprintf(c->out, sizeof c->out, "build/valley");
        c->n_train = 2100; c->n_direct = 2000; c->n_eval = 200; c->eval_n = 200;
        c->sizes[0] = 20; c->sizes[1] = 50; c->sizes[2] = 100; c->sizes[3] = 200; c->sizes[4] = 500;
        c->sizes[5] = 1000; c->sizes[6] = 2000; c->n_sizes = 7;
        c->seeds[0] = 1; c->seeds[1] = 2; c->seeds[2] = 3; c->n_seeds = 3;
        c->split_size = 200; c->second_seeds = 3;
    } else {                                /* demo: <= 5 min */
        snprintf(c->out, sizeof c->out, "build/demo");
        c->n_train = 1100; c->n_direct = 1500; c->n_eval = 100; c->eval_n = 100; c->stage0_epochs = 5;
        c->sizes[0] = 30; c->sizes[1] = 100; c->sizes[2] = 300; c->sizes[3] = 1000; c->n_sizes = 4;
        c->seeds[0] = 1; c->n_seeds = 1;
        c->split_size = 100; c->second_seeds = 1;
    }
}

static void sweep_usage(FILE *f) {
    fprintf(f,
        "usage: distill sweep [--preset smoke|demo|valley] [--config FILE.json] [options]\n"
        "  The Valley of Code Reasoning in miniature (see docs/valley.md). Resumable: rerun the same\n"
        "  command after a kill and finished steps are reused.\n"
        "  --out DIR             results directory (preset: build/demo, build/valley, build/sweep-smoke)\n"
        "  --sizes 30,100,300    nested subset sizes of the teacher traces\n"
        "  --seeds 1,2,3         subset/shuffle seeds (one line per seed in the plot)\n"
        "  --epochs N            fixed epochs per run (the paper: 5)\n"
        "  --token-budget N      instead: a fixed number of training tokens per run\n"
        "  --split-size N        easy/hard and correct/incorrect subsets (0: skip these)\n"
        "  --second-seeds K      run the second experiments for the first K seeds\n"
        "  --train N --direct N --eval N --error-rate R --world-seed S   the world\n"
        "  --dim C --layers L --heads NH --kv-heads NKV --hidden F --seq T --vocab V   the student\n"
        "  --batch B --lr X --stage0-epochs N --stage0-lr X   training\n"
        "  --eval-n N --max-new N --gen-batch N   evaluation\n"
        "  --threads N           worker threads (default 1; 0: one per core)\n"
        "  --report-only 1       train nothing: write the report from the runs finished so far\n"
        "  A config file is one JSON object with the same names (underscores), e.g.\n"
        "  {\"sizes\": [30, 100, 300], \"seeds\": [1, 2], \"epochs\": 5, \"dim\": 96}\n"
        "Distributed (docs/cluster.md; OUT on a filesystem every worker shares):\n"
        "  mpirun -np N distill sweep ...   (built with make MPI=1) ranks share the runs; rank 0 writes\n"
        "                        the report when every run has finished\n"
        "  --task-id K --num-tasks N   run task K's share of the runs (0 <= K < N) and no report;\n"
        "                        defaults: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN and\n"
        "                        SLURM_ARRAY_TASK_COUNT in a Slurm job array, else 0 and 1\n"
        "  --merge               after every task: write the report from OUT/runs/*/result.json, with\n"
        "                        the options the sweep recorded in OUT/sweep-config.json (only --out\n"
        "                        is needed; flags override); fails, naming them, if runs are missing\n"
        "  --plan                print which task does which run (with --num-tasks N) and stop\n"
        "  --wait-timeout S      an array task gives up after S seconds waiting for a run that\n"
        "                        another task owns (default 86400)\n"
        "  Every worker skips finished runs, so rerunning a killed task (or the whole job) resumes.\n");

}

/* Parse a comma-separated list of integers. */
static int sweep_parse_list(const char *s, int64_t *out, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0 || n == cap) return -1;
        out[n++] = v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return n;
}

/* Set one option by name (flag name without "--", '-' and '_' equivalent) from text or JSON. */
static int sweep_set(sweep_cfg *c, const char *key, const char *val, const distill_json *jv) {
    char k[64];
    size_t i;
    double d = 0;
    char *end = NULL;
    for (i = 0; key[i] && i + 1 < sizeof k; i++) k[i] = key[i] == '-' ? '_' : key[i];
    k[i] = 0;
    if (!strcmp(k, "out")) {
        if (jv && jv->type != DISTILL_JSON_STRING) return -1;
        snprintf(c->out, sizeof c->out, "%s", jv ? jv->str : val);
        return 0;
    }
    if (!strcmp(k, "sizes") || !strcmp(k, "seeds")) {
        int64_t tmp[SWEEP_MAX_SIZES];
        int n, cap = !strcmp(k, "sizes") ? SWEEP_MAX_SIZES : SWEEP_MAX_SEEDS, j;
        if (jv) {
            if (jv->type != DISTILL_JSON_ARRAY || jv->len > (size_t)cap) return -1;
            for (n = 0; n < (int)jv->len; n++) {
                if (!jv->items[n].is_int || jv->items[n].i64 < 0) return -1;
                tmp[n] = jv->items[n].i64;
            }
        } else if ((n = sweep_parse_list(val, tmp, cap)) < 0) return -1;
        if (n < 1) return -1;
        if (k[1] == 'i') { for (j = 0; j < n; j++) { if (tmp[j] < 1) return -1; c->sizes[j] = tmp[j]; } c->n_sizes = n; }
        else { for (j = 0; j < n; j++) c->seeds[j] = (uint64_t)tmp[j]; c->n_seeds = n; }
        return 0;
    }
    if (jv) {
        if (jv->type != DISTILL_JSON_NUMBER) return -1;
        d = jv->num;
    } else {
        d = strtod(val, &end);
        if (!val[0] || *end) return -1;
    }
#define SWEEP_INT(name, field, lo, hi) if (!strcmp(k, name)) { if (d != floor(d) || d < (lo) || d > (hi)) return -1; c->field = (int)d; return 0; }
#define SWEEP_I64(name, field, lo, hi) if (!strcmp(k, name)) { if (d != floor(d) || d < (lo) || d > (hi)) return -1; c->field = (int64_t)d; return 0; }
#define SWEEP_DBL(name, field, lo, hi) if (!strcmp(k, name)) { if (!(d >= (lo) && d <= (hi))) return -1; c->field = d; return 0; }
    SWEEP_I64("train", n_train, 1, 1e7) SWEEP_I64("direct", n_direct, 1, 1e7) SWEEP_I64("eval", n_eval, 1, 1e6)
    SWEEP_DBL("error_rate", error_rate, 0, 1)
    SWEEP_INT("vocab", vocab, 260, 65536) SWEEP_INT("dim", dim, 8, 4096) SWEEP_INT("layers", layers, 1, 64)
    SWEEP_INT("heads", heads, 1, 64) SWEEP_INT("kv_heads", kv_heads, 1, 64) SWEEP_INT("hidden", hidden, 8, 16384)
    SWEEP_INT("seq", seq, 32, 8192) SWEEP_INT("batch", batch, 1, 4096) SWEEP_DBL("lr", lr, 1e-7, 1)
    SWEEP_DBL("warmup", warmup, 0, 0.9) SWEEP_INT("epochs", epochs, 1, 1000) SWEEP_I64("token_budget", token_budget, 0, 1e12)
    SWEEP_INT("stage0_epochs", stage0_epochs, 1, 1000) SWEEP_DBL("stage0_lr", stage0_lr, 1e-7, 1)
    SWEEP_I64("split_size", split_size, 0, 1e7) SWEEP_INT("second_seeds", second_seeds, 0, SWEEP_MAX_SEEDS)
    SWEEP_INT("eval_n", eval_n, 1, 1000000) SWEEP_INT("max_new", max_new, 8, 8192)
    SWEEP_INT("gen_batch", gen_batch, 1, 1024) SWEEP_INT("threads", threads, 0, 256)
    SWEEP_INT("report_only", report_only, 0, 1)
    SWEEP_INT("task_id", task_id, 0, 1000000) SWEEP_INT("num_tasks", num_tasks, 1, 1000000)
    SWEEP_INT("merge", merge, 0, 1) SWEEP_INT("plan", plan, 0, 1) SWEEP_DBL("wait_timeout", wait_timeout, 0, 1e9)
    if (!strcmp(k, "world_seed")) { if (d != floor(d) || d < 0) return -1; c->world_seed = (uint64_t)d; return 0; }
#undef SWEEP_INT
#undef SWEEP_I64
#undef SWEEP_DBL
    return -2;   /* unknown */
}

static int sweep_load_config(sweep_cfg *c, const char *path) {
    distill_error err;
    distill_json *j = distill_json_parse_file(path, &err);
    size_t i;
    if (!j) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    if (j->type != DISTILL_JSON_OBJECT) { fprintf(stderr, "distill sweep: %s: expected a JSON object\n", path); distill_json_free(j); return -1; }
    for (i = 0; i < j->len; i++) {
        int rc;
        if (!strcmp(j->keys[i], "preset")) continue;
        rc = sweep_set(c, j->keys[i], NULL, &j->items[i]);
        if (rc) {
            fprintf(stderr, "distill sweep: %s:%d:%d: field '%s': %s\n", path, j->items[i].line, j->items[i].col,
                    j->keys[i], rc == -2 ? "unknown option" : "invalid value");
            distill_json_free(j);
            return -1;
        }
    }
    distill_json_free(j);
    return 0;
}

/* ---- small file helpers -------------------------------------------------------------------- */
static int sweep_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}
static int sweep_mkdir(const char *path) {
    return mkdir(path, 0777) == 0 || errno == EEXIST ? 0 : -1;
}

/* A run redone after a kill: drop what the killed process left (temporary files of atomic
   writes, a failure note); a half-written model.ckpt cannot exist, it is renamed into place whole. */
static void sweep_clean_run_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1600];
    if (!d) return;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.") || !strcmp(e->d_name, "failed.txt")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
    closedir(d);
}

static void sweep_sleep(double seconds) {
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ---- one trained student: the shared state of the sweep -------------------------------------- */
typedef struct sweep_ctx {
    sweep_cfg cfg;
    distill_tokenizer *tok;
    const distill_chat_template *tmpl;
    distill_dataset *train_all, *train_easy, *train_hard, *train_right, *train_wrong, *direct;
    distill_json **eval_recs;          /* eval problems (parsed records) */
    int n_eval;
    distill_ids *prompt_ids;           /* their generation prompts */
    int32_t **prompts;
    int *prompt_lens;
    int32_t eot;
    char world_dir[1100], tok_path[1100], runs_dir[1100];
    double t_start;
    char who[32];                      /* "" or "task K: " before each progress line */
    const char *unit;                  /* "task" or, under MPI, "rank" */
} sweep_ctx;

typedef struct sweep_result {
    char name[96], group[32], from[32];
    int64_t seed, size;
    double pass1, pass_easy, pass_hard, completion, think_rate, think_open, strict_completion, think_tokens;
    double train_loss, train_seconds, eval_seconds;
    int64_t train_tokens, train_steps;
    int ok;
} sweep_result;

static distill_dataset *sweep_load_data(sweep_ctx *x, const char *file, const char *filter) {
    static const char *map[2] = {"question=prompt", "response=response"};
    const char *filters[1];
    char path[1200];
    distill_data_options o = distill_data_options_default();
    distill_error err;
    distill_dataset *ds;
    o.map = map;
    o.n_map = 2;
    o.loss = DISTILL_LOSS_LAST;
    o.max_seq = x->cfg.seq;
    o.truncate = 0;   /* a trace that does not fit is dropped (and counted), never cut */
    o.tmpl = x->tmpl;
    if (filter) { filters[0] = filter; o.filters = filters; o.n_filters = 1; }
    snprintf(path, sizeof path, "%s/%s", x->world_dir, file);
    ds = distill_dataset_load(path, &o, x->tok, &err);
    if (!ds) fprintf(stderr, "distill sweep: %s\n", err.msg);
    return ds;
}

/* Train the tokenizer on the questions and responses of train.jsonl and direct.jsonl. */
static int sweep_tokenizer(sweep_ctx *x) {
    static const char *files[2] = {"train.jsonl", "direct.jsonl"};
    char **texts = NULL, path[1200];
    size_t n = 0, cap = 0, i;
    int f, ns, rc = -1;
    distill_error err;
    const char *const *specials = distill_tokenizer_default_specials(&ns);
    if (sweep_exists(x->tok_path)) {
        x->tok = distill_tokenizer_load(x->tok_path, NULL, &err);
        if (!x->tok) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
        return 0;
    }
    for (f = 0; f < 2; f++) {
        distill_line_reader *rd;
        const char *line;
        size_t len;
        int64_t ln;
        snprintf(path, sizeof path, "%s/%s", x->world_dir, files[f]);
        rd = distill_line_reader_open(path, 0, &err);
        if (!rd) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
        while (distill_line_reader_next(rd, &line, &len, &ln, &err) == 1) {
            distill_json *j = distill_json_parse(line, len, path, (int)ln, &err);
            const distill_json *q, *r;
            if (!j) { fprintf(stderr, "distill sweep: %s\n", err.msg); distill_line_reader_close(rd); goto done; }
            q = distill_json_get(j, "question");
            r = distill_json_get(j, "response");
            if (q && r && q->type == DISTILL_JSON_STRING && r->type == DISTILL_JSON_STRING) {
                if (n == cap) {
                    char **nt;
                    cap = cap ? cap * 2 : 1024;
                    nt = (char **)realloc(texts, cap * sizeof(char *));
                    if (!nt) { distill_json_free(j); distill_line_reader_close(rd); goto done; }
                    texts = nt;
                }
                texts[n] = (char *)malloc(q->len + r->len + 2);
                if (!texts[n]) { distill_json_free(j); distill_line_reader_close(rd); goto done; }
                memcpy(texts[n], q->str, q->len);
                texts[n][q->len] = '\n';
                memcpy(texts[n] + q->len + 1, r->str, r->len + 1);
                n++;
            }
            distill_json_free(j);
        }
        distill_line_reader_close(rd);
    }
    /* No pre-split pattern: merges may cross spaces and punctuation, which suits this small,
       regular language (traces are ~2x shorter than with the GPT-2 split). */
    x->tok = distill_tokenizer_train((const char *const *)texts, NULL, n, x->cfg.vocab, DISTILL_PATTERN_NONE,
                                     specials, ns, &err);
    if (!x->tok || distill_tokenizer_save(x->tok, x->tok_path, &err) != 0) {
        fprintf(stderr, "distill sweep: tokenizer: %s\n", err.msg);
        goto done;
    }
    rc = 0;
done:
    for (i = 0; i < n; i++) free(texts[i]);
    free(texts);
    return rc;
}

static int sweep_load_eval(sweep_ctx *x) {
    char path[1200];
    distill_line_reader *rd;
    distill_error err;
    const char *line;
    size_t len;
    int64_t ln;
    snprintf(path, sizeof path, "%s/eval.jsonl", x->world_dir);
    rd = distill_line_reader_open(path, 0, &err);
    if (!rd) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    x->eval_recs = (distill_json **)calloc((size_t)x->cfg.eval_n, sizeof(distill_json *));
    x->prompts = (int32_t **)calloc((size_t)x->cfg.eval_n, sizeof(int32_t *));
    x->prompt_ids = (distill_ids *)calloc((size_t)x->cfg.eval_n, sizeof(distill_ids));
    x->prompt_lens = (int *)calloc((size_t)x->cfg.eval_n, sizeof(int));
    if (!x->eval_recs || !x->prompts || !x->prompt_lens || !x->prompt_ids) { distill_line_reader_close(rd); return -1; }
    while (x->n_eval < x->cfg.eval_n && distill_line_reader_next(rd, &line, &len, &ln, &err) == 1) {
        distill_json *j = distill_json_parse(line, len, path, (int)ln, &err);
        const distill_json *q;
        distill_ids ids;
        if (!j) { fprintf(stderr, "distill sweep: %s\n", err.msg); distill_line_reader_close(rd); return -1; }
        q = distill_json_get(j, "question");
        if (!q || q->type != DISTILL_JSON_STRING) {
            fprintf(stderr, "distill sweep: %s:%lld: field 'question': expected a string\n", path, (long long)ln);
            distill_json_free(j);
            distill_line_reader_close(rd);
            return -1;
        }
        memset(&ids, 0, sizeof ids);
        if (distill_chat_prompt_ids(x->tmpl, x->tok, NULL, q->str, &ids, &err) != 0) {
            fprintf(stderr, "distill sweep: %s\n", err.msg);
            distill_json_free(j);
            distill_line_reader_close(rd);
            return -1;
        }
        x->eval_recs[x->n_eval] = j;
        x->prompt_ids[x->n_eval] = ids;
        x->prompts[x->n_eval] = ids.ids;
        x->prompt_lens[x->n_eval] = (int)ids.n;
        x->n_eval++;
    }
    distill_line_reader_close(rd);
    return x->n_eval > 0 ? 0 : -1;
}

static distill_config sweep_model_config(const sweep_ctx *x) {
    distill_config mc = distill_config_default();
    mc.vocab_size = distill_tokenizer_vocab_size(x->tok);
    mc.dim = x->cfg.dim;
    mc.n_layers = x->cfg.layers;
    mc.n_heads = x->cfg.heads;
    mc.n_kv_heads = x->cfg.kv_heads;
    mc.hidden_dim = x->cfg.hidden;
    mc.tie_embeddings = 1;
    return mc;
}

/* Train on ds starting from init_path (NULL: a fresh model seeded with `seed`). Fixed epochs or
   (cfg.token_budget > 0 and use_budget) a fixed token budget. Saves to save_path when given. */
static distill_model *sweep_train(sweep_ctx *x, const distill_dataset *ds, const char *init_path, uint64_t seed,
                                  int epochs, double lr, int use_budget, sweep_result *res) {
    const sweep_cfg *c = &x->cfg;
    distill_error err;
    distill_model *m;
    distill_loader *L = NULL, *count = NULL;
    distill_loader_options lo = distill_loader_options_default();
    distill_optim_config oc = distill_optim_default();
    distill_batch b;
    int64_t per_epoch = 0, epoch_tokens = 0, steps, s;
    double loss_sum = 0, t0 = distill_time_seconds();
    int loss_n = 0;
    if (init_path) m = distill_model_load(init_path, c->batch, c->seq, NULL, &err);
    else {
        distill_config mc = sweep_model_config(x);
        m = distill_model_create(&mc, c->batch, c->seq, seed, &err);
    }
    if (!m) { fprintf(stderr, "distill sweep: model: %s\n", err.msg); return NULL; }
    lo.batch_rows = c->batch;
    lo.seq_len = c->seq;
    lo.pack = 1;
    lo.shuffle = 1;
    lo.seed = seed;
    /* Count the packed batches of one epoch, to size the schedule. */
    count = distill_loader_create(ds, &lo, &err);
    if (!count) { fprintf(stderr, "distill sweep: loader: %s\n", err.msg); distill_model_free(m); return NULL; }
    {   /* rows are never split across batches: an epoch ends when every row was served once */
        int64_t rows = 0, n_rows = distill_dataset_size(ds);
        while (rows < n_rows) {
            int i, nb = 0;
            if (distill_loader_next(count, &b, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); break; }
            (void)distill_loader_last_rows(count, &nb);
            if (nb <= 0) break;
            rows += nb;
            per_epoch++;
            for (i = 0; i < b.B; i++) epoch_tokens += b.lengths ? b.lengths[i] : b.T;
        }
    }
    distill_loader_free(count);
    if (per_epoch < 1) per_epoch = 1;
    if (use_budget && c->token_budget > 0)
        steps = (int64_t)ceil((double)c->token_budget / ((double)epoch_tokens / (double)per_epoch));
    else steps = per_epoch * epochs;
    if (steps < 1) steps = 1;
    oc.lr = (float)lr;
    oc.warmup_steps = -1;
    oc.warmup_ratio = (float)c->warmup;
    oc.total_steps = steps;
    oc.schedule = DISTILL_SCHED_COSINE;
    oc.min_lr_ratio = 0.1f;
    oc.weight_decay = 0.01f;
    L = distill_loader_create(ds, &lo, &err);
    if (!L) { fprintf(stderr, "distill sweep: loader: %s\n", err.msg); distill_model_free(m); return NULL; }
    res->train_tokens = 0;
    for (s = 0; s < steps; s++) {
        distill_stats st;
        double gn;
        int i;
        if (distill_loader_next(L, &b, &err) != 0 ||
            distill_train_step(m, &b, &oc, s, &st, &gn, &err) != 0) {
            fprintf(stderr, "distill sweep: step %lld: %s\n", (long long)s, err.msg);
            distill_loader_free(L);
            distill_model_free(m);
            return NULL;
        }
        for (i = 0; i < b.B; i++) res->train_tokens += b.lengths ? b.lengths[i] : b.T;
        /* the reported loss: mean over the last quarter of the steps */
        if (s >= steps - (steps + 3) / 4) { loss_sum += st.loss; loss_n++; }
    }
    distill_loader_free(L);
    res->train_steps = steps;
    res->train_loss = loss_n ? loss_sum / loss_n : NAN;
    res->train_seconds = distill_time_seconds() - t0;
    return m;
}

/* Greedy decoding on the eval problems; pass@1 via the world verifier. */
static int sweep_eval(sweep_ctx *x, distill_model *m, const char *gen_path, sweep_result *res) {
    const sweep_cfg *c = &x->cfg;
    distill_error err;
    distill_generator *g;
    distill_gen_options o = distill_gen_options_default();
    distill_gen_result *out;
    distill_sample_result *sr;
    distill_eval_metrics em;
    distill_atomic_file af;
    int i, max_prompt = 0, ks[1] = {1}, pe = 0, ne = 0, ph = 0, nh = 0;
    double t0 = distill_time_seconds();
    for (i = 0; i < x->n_eval; i++) if (x->prompt_lens[i] > max_prompt) max_prompt = x->prompt_lens[i];
    g = distill_generator_create(m, c->gen_batch, max_prompt + c->max_new, &err);
    if (!g) { fprintf(stderr, "distill sweep: generator: %s\n", err.msg); return -1; }
    o.max_new_tokens = c->max_new;
    o.temperature = 0;
    o.stop_ids = &x->eot;
    o.n_stop_ids = 1;
    out = (distill_gen_result *)calloc((size_t)x->n_eval, sizeof *out);
    sr = (distill_sample_result *)calloc((size_t)x->n_eval, sizeof *sr);
    if (!out || !sr || distill_generate(g, x->tok, (const int32_t *const *)x->prompts, x->prompt_lens, x->n_eval, &o, out, &err) != 0) {
        fprintf(stderr, "distill sweep: generate: %s\n", err.msg);
        distill_generator_free(g);
        free(out);
        free(sr);
        return -1;
    }
    distill_generator_free(g);
    if (distill_atomic_open(&af, gen_path, &err) != 0) af.f = NULL;
    for (i = 0; i < x->n_eval; i++) {
        distill_gen_analysis an;
        distill_generation_record gr;
        const distill_json *idj = distill_json_get(x->eval_recs[i], "id");
        const distill_json *dl = distill_json_get(x->eval_recs[i], "difficulty_label");
        const char *text = out[i].text ? out[i].text : "";
        char reason[256];
        int easy = dl && dl->type == DISTILL_JSON_STRING && !strcmp(dl->str, "EASY");
        distill_analyze_generation(NULL, 0, text, out[i].len, &an);
        distill_sample_result_from_analysis(&sr[i], &an);
        sr[i].problem = i;
        sr[i].finish = out[i].finish;
        sr[i].think_tokens = an.think_open ? (double)distill_count_tokens(x->tok, text + an.think_begin, an.think_end - an.think_begin) : -1;
        sr[i].pass = world_verify_text(x->eval_recs[i], text, out[i].len, reason, sizeof reason);
        if (easy) { ne++; pe += sr[i].pass; } else { nh++; ph += sr[i].pass; }
        if (af.f) {
            memset(&gr, 0, sizeof gr);
            gr.question_id = idj && idj->type == DISTILL_JSON_STRING ? idj->str : NULL;
            gr.difficulty = dl && dl->type == DISTILL_JSON_STRING ? dl->str : NULL;
            gr.text = text;
            gr.text_len = out[i].len;
            gr.finish = out[i].finish;
            gr.pass = sr[i].pass;
            gr.reason = reason;
            gr.output_tokens = (int64_t)out[i].n;
            gr.think_tokens = sr[i].think_tokens;
            distill_write_generation_jsonl(af.f, &gr);
        }
        distill_gen_result_free(&out[i]);
    }
    if (af.f && distill_atomic_commit(&af, &err) != 0) fprintf(stderr, "distill sweep: %s\n", err.msg);
    free(out);
    if (distill_eval_compute(sr, (size_t)x->n_eval, ks, 1, &em, &err) != 0) {
        fprintf(stderr, "distill sweep: metrics: %s\n", err.msg);
        free(sr);
        return -1;
    }
    free(sr);
    res->pass1 = em.pass_at_1;
    res->pass_easy = ne ? (double)pe / ne : NAN;
    res->pass_hard = nh ? (double)ph / nh : NAN;
    res->completion = em.completion_rate;
    res->strict_completion = em.strict_completion_rate;
    res->think_rate = em.think_both_rate;
    res->think_open = em.think_open_rate;
    res->think_tokens = em.think_tokens_mean;
    res->eval_seconds = distill_time_seconds() - t0;
    return 0;
}

static void sweep_num(FILE *f, const char *key, double v, int last) {
    fprintf(f, "\"%s\": ", key);
    if (v == v) fprintf(f, "%.6g", v);
    else fputs("null", f);
    fputs(last ? "" : ", ", f);
}

static int sweep_write_result(const char *path, const sweep_result *r) {
    distill_atomic_file af;
    distill_error err;
    if (distill_atomic_open(&af, path, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    fprintf(af.f, "{\"name\": \"%s\", \"group\": \"%s\", \"from\": \"%s\", \"seed\": %lld, \"size\": %lld, ",
            r->name, r->group, r->from, (long long)r->seed, (long long)r->size);
    sweep_num(af.f, "pass_at_1", r->pass1, 0);
    sweep_num(af.f, "pass_at_1_easy", r->pass_easy, 0);
    sweep_num(af.f, "pass_at_1_hard", r->pass_hard, 0);
    sweep_num(af.f, "completion_rate", r->completion, 0);
    sweep_num(af.f, "strict_completion_rate", r->strict_completion, 0);
    sweep_num(af.f, "think_rate", r->think_rate, 0);
    sweep_num(af.f, "think_open_rate", r->think_open, 0);
    sweep_num(af.f, "think_tokens_mean", r->think_tokens, 0);
    sweep_num(af.f, "train_loss", r->train_loss, 0);
    fprintf(af.f, "\"train_tokens\": %lld, \"train_steps\": %lld, ", (long long)r->train_tokens, (long long)r->train_steps);
    sweep_num(af.f, "train_seconds", r->train_seconds, 0);
    sweep_num(af.f, "eval_seconds", r->eval_seconds, 1);
    fputs("}\n", af.f);
    if (distill_atomic_commit(&af, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    return 0;
}

static double sweep_jnum(const distill_json *j, const char *k) {
    const distill_json *v = distill_json_get(j, k);
    return v && v->type == DISTILL_JSON_NUMBER ? v->num : NAN;
}

static int sweep_read_result(const char *path, sweep_result *r) {
    distill_error err;
    distill_json *j = distill_json_parse_file(path, &err);
    const distill_json *v;
    if (!j) return -1;
    memset(r, 0, sizeof *r);
    if ((v = distill_json_get(j, "name")) && v->type == DISTILL_JSON_STRING) snprintf(r->name, sizeof r->name, "%s", v->str);
    if ((v = distill_json_get(j, "group")) && v->type == DISTILL_JSON_STRING) snprintf(r->group, sizeof r->group, "%s", v->str);
    if ((v = distill_json_get(j, "from")) && v->type == DISTILL_JSON_STRING) snprintf(r->from, sizeof r->from, "%s", v->str);
    r->seed = (int64_t)sweep_jnum(j, "seed");
    r->size = (int64_t)sweep_jnum(j, "size");
    r->pass1 = sweep_jnum(j, "pass_at_1");
    r->pass_easy = sweep_jnum(j, "pass_at_1_easy");
    r->pass_hard = sweep_jnum(j, "pass_at_1_hard");
    r->completion = sweep_jnum(j, "completion_rate");
    r->strict_completion = sweep_jnum(j, "strict_completion_rate");
    r->think_rate = sweep_jnum(j, "think_rate");
    r->think_open = sweep_jnum(j, "think_open_rate");
    r->think_tokens = sweep_jnum(j, "think_tokens_mean");
    r->train_loss = sweep_jnum(j, "train_loss");
    r->train_tokens = (int64_t)sweep_jnum(j, "train_tokens");
    r->train_steps = (int64_t)sweep_jnum(j, "train_steps");
    r->train_seconds = sweep_jnum(j, "train_seconds");
    r->eval_seconds = sweep_jnum(j, "eval_seconds");
    r->ok = 1;
    distill_json_free(j);
    return 0;
}

/* One run: reuse its result when present (and its checkpoint, when one is needed later). */
static int sweep_run(sweep_ctx *x, const char *name, const char *group, const char *from, int64_t seed, int64_t size,
                     const distill_dataset *ds, const char *init_path, int epochs, double lr, int use_budget,
                     int keep_ckpt, sweep_result *res) {
    char dir[1300], rpath[1400], cpath[1400], gpath[1400];
    distill_model *m;
    distill_error err;
    snprintf(dir, sizeof dir, "%s/%s", x->runs_dir, name);
    snprintf(rpath, sizeof rpath, "%s/result.json", dir);
    snprintf(cpath, sizeof cpath, "%s/model.ckpt", dir);
    snprintf(gpath, sizeof gpath, "%s/generations.jsonl", dir);
    if (sweep_exists(rpath) && (!keep_ckpt || sweep_exists(cpath)) && sweep_read_result(rpath, res) == 0) {
        printf("  %s%-22s reused (%s)\n", x->who, name, rpath);
        return 0;
    }
    memset(res, 0, sizeof *res);
    snprintf(res->name, sizeof res->name, "%s", name);
    snprintf(res->group, sizeof res->group, "%s", group);
    snprintf(res->from, sizeof res->from, "%s", from);
    res->seed = seed;
    res->size = size;
    if (sweep_mkdir(dir) != 0) { fprintf(stderr, "distill sweep: cannot create %s\n", dir); return -1; }
    sweep_clean_run_dir(dir);
    if (ds) {
        m = sweep_train(x, ds, init_path, (uint64_t)seed * 1000003u + (uint64_t)size, epochs, lr, use_budget, res);
    } else {
        /* no training: evaluate the starting model as it is */
        m = distill_model_load(init_path, x->cfg.batch, x->cfg.seq, NULL, &err);
        if (!m) fprintf(stderr, "distill sweep: %s\n", err.msg);
        res->train_loss = NAN;
    }
    if (!m) return -1;
    if (keep_ckpt && distill_checkpoint_write(cpath, m, 0, NULL, NULL, 0, &err) != 0) {
        fprintf(stderr, "distill sweep: %s\n", err.msg);
        distill_model_free(m);
        return -1;
    }
    if (sweep_eval(x, m, gpath, res) != 0) { distill_model_free(m); return -1; }
    distill_model_free(m);
    res->ok = 1;
    printf("  %s%-22s %5lld rows %5lld steps %8lld tok  loss %.3f  %5.1fs | pass@1 %.3f (easy %.2f hard %.2f)  "
           "complete %.2f  think %.2f  %4.1fs   [%.0fs]\n",
           x->who, name, (long long)(ds ? distill_dataset_size(ds) : 0), (long long)res->train_steps, (long long)res->train_tokens,
           res->train_loss, res->train_seconds, res->pass1, res->pass_easy, res->pass_hard, res->completion,
           res->think_rate, res->eval_seconds, distill_time_seconds() - x->t_start);
    fflush(stdout);
    return sweep_write_result(rpath, res);
}

/* ---- the report -------------------------------------------------------------------------- */
static double sweep_mean(const double *v, int n, double *sd) {
    double s = 0, q = 0;
    int i, k = 0;
    for (i = 0; i < n; i++) if (v[i] == v[i]) { s += v[i]; k++; }
    if (!k) { if (sd) *sd = NAN; return NAN; }
    s /= k;
    for (i = 0; i < n; i++) if (v[i] == v[i]) q += (v[i] - s) * (v[i] - s);
    if (sd) *sd = k > 1 ? sqrt(q / (k - 1)) : 0;
    return s;
}

static void sweep_fmt(char *buf, size_t cap, double v, int digits) {
    if (v == v) snprintf(buf, cap, "%.*f", digits, v);
    else snprintf(buf, cap, "nan");
}

static int sweep_report(sweep_ctx *x, const sweep_result *r, int nr, const sweep_result *stage0) {
    const sweep_cfg *c = &x->cfg;
    static const char *hdr[17] = {"run", "group", "from", "seed", "size", "pass_at_1", "pass_at_1_easy",
                                  "pass_at_1_hard", "completion_rate", "strict_completion_rate", "think_rate",
                                  "think_tokens_mean", "train_loss", "train_tokens", "train_steps",
                                  "train_seconds", "eval_seconds"};
    distill_table t, agg;
    distill_error err;
    distill_atomic_file af;
    char path[1200], cells[17][CW];
    const char *cp[17];
    int i, j, k, s, n_pts = c->n_sizes + 1;
    /* per-seed curves and the mean, the stage-0 student at x = 0 */
    double xs[SWEEP_MAX_SIZES + 1], ys[SWEEP_MAX_SEEDS][SWEEP_MAX_SIZES + 1], mean[SWEEP_MAX_SIZES + 1],
           sd[SWEEP_MAX_SIZES + 1], comp[SWEEP_MAX_SIZES + 1], think[SWEEP_MAX_SIZES + 1], tmp[SWEEP_MAX_SEEDS],
           compsd[SWEEP_MAX_SIZES + 1], thinksd[SWEEP_MAX_SIZES + 1], tmp2[SWEEP_MAX_SEEDS];
    distill_plot_series ser[SWEEP_MAX_SEEDS + 3];
    distill_plot_panel pan[2];
    char labels[SWEEP_MAX_SEEDS][32], title[256];

    for (i = 0; i < 17; i++) cp[i] = cells[i];
    if (distill_table_init(&t, hdr, 17) != 0) return -1;
    for (i = 0; i < nr; i++) {
        snprintf(cells[0], CW, "%s", r[i].name);
        snprintf(cells[1], CW, "%s", r[i].group);
        snprintf(cells[2], CW, "%s", r[i].from);
        snprintf(cells[3], CW, "%lld", (long long)r[i].seed);
        snprintf(cells[4], CW, "%lld", (long long)r[i].size);
        sweep_fmt(cells[5], CW, r[i].pass1, 4);
        sweep_fmt(cells[6], CW, r[i].pass_easy, 4);
        sweep_fmt(cells[7], CW, r[i].pass_hard, 4);
        sweep_fmt(cells[8], CW, r[i].completion, 4);
        sweep_fmt(cells[9], CW, r[i].strict_completion, 4);
        sweep_fmt(cells[10], CW, r[i].think_rate, 4);
        sweep_fmt(cells[11], CW, r[i].think_tokens, 1);
        sweep_fmt(cells[12], CW, r[i].train_loss, 4);
        snprintf(cells[13], CW, "%lld", (long long)r[i].train_tokens);
        snprintf(cells[14], CW, "%lld", (long long)r[i].train_steps);
        sweep_fmt(cells[15], CW, r[i].train_seconds, 1);
        sweep_fmt(cells[16], CW, r[i].eval_seconds, 1);
        distill_table_add_row(&t, cp);
    }
    snprintf(path, sizeof path, "%s/results.csv", c->out);
    if (distill_atomic_open(&af, path, &err) == 0) { distill_table_write_csv(af.f, &t); distill_atomic_commit(&af, &err); }
    snprintf(path, sizeof path, "%s/results.json", c->out);
    if (distill_atomic_open(&af, path, &err) == 0) { distill_table_write_json(af.f, &t); distill_atomic_commit(&af, &err); }

    /* the aggregated sweep table: mean +- sd over seeds per size */
    {
        static const char *ah[7] = {"data size", "seeds", "pass@1 mean ± sd", "per seed", "easy / hard",
                                    "completion", "think tags"};
        distill_table_init(&agg, ah, 7);
        xs[0] = 0;
        mean[0] = stage0->pass1; sd[0] = 0; comp[0] = stage0->completion; think[0] = stage0->think_rate;
        compsd[0] = thinksd[0] = 0;
        for (s = 0; s < c->n_seeds; s++) ys[s][0] = stage0->pass1;
        snprintf(cells[0], CW, "0 (stage 0)");
        snprintf(cells[1], CW, "-");
        snprintf(cells[2], CW, "%.3f", stage0->pass1);
        snprintf(cells[3], CW, "-");
        snprintf(cells[4], CW, "%.2f / %.2f", stage0->pass_easy, stage0->pass_hard);
        snprintf(cells[5], CW, "%.2f", stage0->completion);
        snprintf(cells[6], CW, "%.2f", stage0->think_rate);
        distill_table_add_row(&agg, cp);
        for (k = 0; k < c->n_sizes; k++) {
            double easy[SWEEP_MAX_SEEDS], hard[SWEEP_MAX_SEEDS];
            size_t off = 0;
            int got = 0;
            xs[k + 1] = (double)c->sizes[k];
            for (s = 0; s < c->n_seeds; s++) {
                tmp[s] = tmp2[s] = easy[s] = hard[s] = ys[s][k + 1] = NAN;
                for (i = 0; i < nr; i++)
                    if (!strcmp(r[i].group, "sweep") && r[i].seed == (int64_t)c->seeds[s] && r[i].size == c->sizes[k]) {
                        ys[s][k + 1] = tmp[s] = r[i].pass1;
                        easy[s] = r[i].pass_easy;
                        hard[s] = r[i].pass_hard;
                        got++;
                    }
            }
            mean[k + 1] = sweep_mean(tmp, c->n_seeds, &sd[k + 1]);
            for (s = 0; s < c->n_seeds; s++) {
                tmp[s] = tmp2[s] = NAN;
                for (i = 0; i < nr; i++)
                    if (!strcmp(r[i].group, "sweep") && r[i].seed == (int64_t)c->seeds[s] && r[i].size == c->sizes[k]) {
                        tmp[s] = r[i].completion;
                        tmp2[s] = r[i].think_rate;
                    }
            }
            comp[k + 1] = sweep_mean(tmp, c->n_seeds, &compsd[k + 1]);
            think[k + 1] = sweep_mean(tmp2, c->n_seeds, &thinksd[k + 1]);
            snprintf(cells[0], CW, "%lld", (long long)c->sizes[k]);
            snprintf(cells[1], CW, "%d", got);
            /* a standard deviation needs two seeds: with one, print the value alone */
            if (got > 1) snprintf(cells[2], CW, "%.3f ± %.3f", mean[k + 1], sd[k + 1]);
            else snprintf(cells[2], CW, "%.3f", mean[k + 1]);
            cells[3][0] = 0;
            for (s = 0; s < c->n_seeds && off + 8 < CW; s++)
                off += (size_t)snprintf(cells[3] + off, CW - off, "%s%.2f", s ? " " : "", ys[s][k + 1]);
            snprintf(cells[4], CW, "%.2f / %.2f", sweep_mean(easy, c->n_seeds, NULL), sweep_mean(hard, c->n_seeds, NULL));
            if (got > 1) {
                snprintf(cells[5], CW, "%.2f ± %.2f", comp[k + 1], compsd[k + 1]);
                snprintf(cells[6], CW, "%.2f ± %.2f", think[k + 1], thinksd[k + 1]);
            } else {
                snprintf(cells[5], CW, "%.2f", comp[k + 1]);
                snprintf(cells[6], CW, "%.2f", think[k + 1]);
            }
            distill_table_add_row(&agg, cp);
        }
    }

    /* the plot */
    memset(ser, 0, sizeof ser);
    memset(pan, 0, sizeof pan);
    for (s = 0; s < c->n_seeds; s++) {
        snprintf(labels[s], sizeof labels[s], "seed %llu", (unsigned long long)c->seeds[s]);
        ser[s].label = labels[s];
        ser[s].x = xs; ser[s].y = ys[s]; ser[s].n = n_pts;
        ser[s].width = 1; ser[s].opacity = 0.55; ser[s].markers = 1;
    }
    ser[c->n_seeds].label = c->n_seeds > 1 ? "mean ± sd" : "pass@1";
    ser[c->n_seeds].x = xs; ser[c->n_seeds].y = mean; ser[c->n_seeds].y_err = c->n_seeds > 1 ? sd : NULL;
    ser[c->n_seeds].n = n_pts; ser[c->n_seeds].width = 3; ser[c->n_seeds].color = "#111111"; ser[c->n_seeds].markers = 1;
    pan[0].title = "pass@1 on held-out problems";
    pan[0].xlabel = "teacher traces in the fine-tuning set (log; 0 = stage-0 student)";
    pan[0].ylabel = "pass@1";
    pan[0].log_x = 1;
    pan[0].series = ser;
    pan[0].n_series = c->n_seeds + 1;
    pan[0].legend_pos = DISTILL_LEGEND_TOP_CENTER;   /* the valley is below it, the climb to the right */
    {   /* pass@1 from 0 to a tenth above the highest point (bars may be clipped at 0) */
        double top = 0;
        for (k = 0; k < n_pts; k++) {
            if (mean[k] == mean[k] && mean[k] + (sd[k] == sd[k] ? sd[k] : 0) > top) top = mean[k] + (sd[k] == sd[k] ? sd[k] : 0);
            for (s = 0; s < c->n_seeds; s++) if (ys[s][k] == ys[s][k] && ys[s][k] > top) top = ys[s][k];
        }
        pan[0].y_min = 0;
        pan[0].y_max = top > 0.9 ? 1 : ceil(top * 10 + 1e-9) / 10 + (top * 10 - floor(top * 10) > 0.7 ? 0.1 : 0);
        if (pan[0].y_max <= 0) pan[0].y_max = 0.1;
    }
    ser[c->n_seeds + 1].label = "completion rate";
    ser[c->n_seeds + 1].x = xs; ser[c->n_seeds + 1].y = comp; ser[c->n_seeds + 1].y_err = c->n_seeds > 1 ? compsd : NULL;
    ser[c->n_seeds + 1].n = n_pts; ser[c->n_seeds + 1].width = 2.5; ser[c->n_seeds + 1].color = "#2ca02c"; ser[c->n_seeds + 1].markers = 1;
    ser[c->n_seeds + 2].label = "think-tag rate";
    ser[c->n_seeds + 2].x = xs; ser[c->n_seeds + 2].y = think; ser[c->n_seeds + 2].y_err = c->n_seeds > 1 ? thinksd : NULL;
    ser[c->n_seeds + 2].n = n_pts; ser[c->n_seeds + 2].width = 2.5; ser[c->n_seeds + 2].color = "#9467bd";
    ser[c->n_seeds + 2].dashed = 1; ser[c->n_seeds + 2].markers = 1;
    pan[1].title = "completion and think-tag rates (mean over seeds)";
    pan[1].xlabel = pan[0].xlabel;
    pan[1].ylabel = "rate";
    pan[1].log_x = 1;
    pan[1].y_min = 0; pan[1].y_max = 1;
    pan[1].series = ser + c->n_seeds + 1;
    pan[1].n_series = 2;
    pan[1].legend_pos = DISTILL_LEGEND_BOTTOM_RIGHT;
    snprintf(title, sizeof title, "Valley of Code Reasoning, miniature: %d seed%s, %s", c->n_seeds, c->n_seeds > 1 ? "s" : "",
             c->token_budget > 0 ? "fixed token budget" : "fixed epochs");
    snprintf(path, sizeof path, "%s/valley.svg", c->out);
    if (distill_svg_save(path, title, pan, 2, 520, 380, &err) != 0) fprintf(stderr, "distill sweep: %s\n", err.msg);

    /* the Markdown report: the sweep, then the second experiments */
    snprintf(path, sizeof path, "%s/results.md", c->out);
    if (distill_atomic_open(&af, path, &err) == 0) {
        fprintf(af.f, "# Valley of Code Reasoning in miniature: results\n\n");
        fprintf(af.f, "Student: %d layers, dim %d, %d heads (%d kv), FFN %d, vocab %d, context %d. "
                      "Training: %s, batch %d packed sequences, AdamW lr %g (warmup %.0f%%, cosine). "
                      "Stage 0: %d epochs on %lld direct answers. Eval: %d held-out problems, greedy, "
                      "at most %d new tokens.\n\n",
                c->layers, c->dim, c->heads, c->kv_heads, c->hidden, distill_tokenizer_vocab_size(x->tok), c->seq,
                c->token_budget > 0 ? "fixed token budget" : "fixed epochs", c->batch, c->lr, c->warmup * 100,
                c->stage0_epochs, (long long)c->n_direct, x->n_eval, c->max_new);
        if (c->token_budget > 0) fprintf(af.f, "Token budget per run: %lld.\n\n", (long long)c->token_budget);
        else fprintf(af.f, "Epochs per run: %d.\n\n", c->epochs);
        fprintf(af.f, "## Data-quantity sweep (nested subsets; mean ± sample sd over seeds)\n\n");
        distill_table_write_markdown(af.f, &agg);
        fprintf(af.f, "\n## Second experiments (equal size)\n\n");
        {
            static const char *sh[8] = {"subset", "from", "seed", "size", "pass@1", "easy / hard", "completion", "think tags"};
            distill_table st;
            distill_table_init(&st, sh, 8);
            for (i = 0; i < nr; i++) {
                if (strcmp(r[i].group, "easy") && strcmp(r[i].group, "hard") && strcmp(r[i].group, "right") && strcmp(r[i].group, "wrong")) continue;
                snprintf(cells[0], CW, "%s", r[i].group);
                snprintf(cells[1], CW, "%s", r[i].from);
                snprintf(cells[2], CW, "%lld", (long long)r[i].seed);
                snprintf(cells[3], CW, "%lld", (long long)r[i].size);
                snprintf(cells[4], CW, "%.3f", r[i].pass1);
                snprintf(cells[5], CW, "%.2f / %.2f", r[i].pass_easy, r[i].pass_hard);
                snprintf(cells[6], CW, "%.2f", r[i].completion);
                snprintf(cells[7], CW, "%.2f", r[i].think_rate);
                distill_table_add_row(&st, cp);
            }
            if (st.nrow) distill_table_write_markdown(af.f, &st);
            else fprintf(af.f, "(not run)\n");
            /* means per (subset, from) over seeds */
            if (st.nrow) {
                static const char *groups[4] = {"easy", "hard", "right", "wrong"};
                static const char *froms[2] = {"stage0", "largest"};
                fprintf(af.f, "\nMeans over seeds:\n\n");
                for (j = 0; j < 2; j++)
                    for (k = 0; k < 4; k++) {
                        double v[SWEEP_MAX_SEEDS], m, sdv;
                        int nv = 0;
                        for (i = 0; i < nr && nv < SWEEP_MAX_SEEDS; i++)
                            if (!strcmp(r[i].group, groups[k]) && !strcmp(r[i].from, froms[j])) v[nv++] = r[i].pass1;
                        if (!nv) continue;
                        m = sweep_mean(v, nv, &sdv);
                        fprintf(af.f, "- %-5s traces from %-7s: pass@1 %.3f ± %.3f (%d seed%s)\n", groups[k], froms[j], m, sdv,
                                nv, nv > 1 ? "s" : "");
                    }
            }
            distill_table_free(&st);
        }
        fprintf(af.f, "\nPer-run numbers: results.csv / results.json; generations: runs/*/generations.jsonl.\n");
        distill_atomic_commit(&af, &err);
    }
    printf("\n");
    distill_table_write_markdown(stdout, &agg);
    distill_table_free(&agg);
    distill_table_free(&t);
    return 0;
}

/* ---- the run list, and which worker runs what -------------------------------------------------
   The sweep is a fixed list of runs derived from the configuration alone: stage 0, then every
   seed x size, then the second experiments. A run starts from at most one other run's checkpoint
   (stage 0's, or the largest subset of its seed). Each worker w of n (an MPI rank, or a Slurm
   array task) runs the runs assigned to it, in list order, and before a run whose checkpoint
   comes from another worker it waits for that run's result.json (written last, atomically).

   The assignment is a greedy list schedule over estimated costs (training tokens plus
   generation). Runs are placed stage 0 first, then the runs that start from stage 0 (largest
   first), then those that start from a largest subset; each goes to the worker that would finish
   it first, among the workers whose id is not below its dependency's owner. Stage 0 therefore
   goes to worker 0, and a worker only ever waits for workers with a lower id: no cycle of
   waits, and when a job array is throttled (Slurm starts array tasks in id order) the lowest
   running task never waits for a task that has not started, so the sweep always progresses.
   Each worker runs its share in the order of the simulated start times. The estimates only
   balance the work: the results do not depend on the assignment (each run is deterministic
   given its inputs, whichever process runs it). */
enum { SWEEP_STAGE0, SWEEP_SUBSET, SWEEP_SECOND };

typedef struct sweep_job {
    char name[96];
    const char *group, *from;
    int kind, s, k, g, from_largest;   /* seed index, size index, second-experiment group */
    int64_t seed, size;
    int keep_ckpt;                     /* a later run starts from its checkpoint */
    int dep;                           /* the run whose checkpoint it starts from; -1: none */
    int owner;                         /* the worker that runs it */
    int level;                         /* 0 stage 0, 1 starts from stage 0, 2 from a largest subset */
    int64_t cost, start, end;          /* estimated work; its span in the simulated schedule */
} sweep_job;

static const char *const sweep_groups[4] = {"easy", "hard", "right", "wrong"};
static const char *const sweep_filters[4] = {"difficulty_label == \"EASY\"", "difficulty_label == \"HARD\"",
                                             "judgement == \"right\"", "judgement == \"wrong\""};

/* Rough work of one run in tokens: training (a direct answer ~50 tokens, a trace ~100) plus
   greedy generation (a generated token costs ~4 trained ones: one row at a time). */
static int64_t sweep_cost(const sweep_cfg *c, int64_t rows, int tokens_per_row, int epochs, int use_budget) {
    int64_t train = use_budget && c->token_budget > 0 ? c->token_budget : rows * tokens_per_row * epochs;
    return train + 4 * (int64_t)c->eval_n * c->max_new;
}

/* Sort idx[0..n) by key(a) < key(b) (insertion sort: a sweep has at most a few hundred runs). */
static int sweep_sched_before(const sweep_job *jb, int a, int b) {   /* the order runs are placed in */
    if (jb[a].level != jb[b].level) return jb[a].level < jb[b].level;
    if (jb[a].cost != jb[b].cost) return jb[a].cost > jb[b].cost;
    return a < b;
}
static int sweep_exec_before(const sweep_job *jb, int a, int b) {    /* the order a worker runs them */
    if (jb[a].start != jb[b].start) return jb[a].start < jb[b].start;
    return a < b;
}
static void sweep_sort(const sweep_job *jb, int *idx, int n, int (*before)(const sweep_job *, int, int)) {
    int i, j, v;
    for (i = 1; i < n; i++) {
        v = idx[i];
        for (j = i; j > 0 && before(jb, v, idx[j - 1]); j--) idx[j] = idx[j - 1];
        idx[j] = v;
    }
}

/* The run list (in report order) with each run's worker; *order gets the execution order. */
static sweep_job *sweep_plan(const sweep_cfg *c, int n_workers, int *n_jobs, int **order) {
    int cap = 1 + c->n_seeds * (c->n_sizes + 8), n = 0, s, k, g, from, w, i, j;
    sweep_job *jb = (sweep_job *)calloc((size_t)cap, sizeof *jb);
    int64_t *busy = (int64_t *)calloc((size_t)n_workers, sizeof(int64_t));
    int *idx = (int *)calloc((size_t)cap, sizeof(int));
    if (!jb || !busy || !idx) { free(jb); free(busy); free(idx); return NULL; }
    snprintf(jb[0].name, sizeof jb[0].name, "stage0");
    jb[0].group = "stage0"; jb[0].from = "scratch"; jb[0].kind = SWEEP_STAGE0;
    jb[0].keep_ckpt = 1; jb[0].dep = -1;
    jb[0].cost = sweep_cost(c, c->n_direct, 50, c->stage0_epochs, 0);
    n = 1;
    for (s = 0; s < c->n_seeds; s++)
        for (k = 0; k < c->n_sizes; k++, n++) {
            snprintf(jb[n].name, sizeof jb[n].name, "s%llu_n%lld", (unsigned long long)c->seeds[s], (long long)c->sizes[k]);
            jb[n].group = "sweep"; jb[n].from = "stage0"; jb[n].kind = SWEEP_SUBSET;
            jb[n].s = s; jb[n].k = k; jb[n].seed = (int64_t)c->seeds[s]; jb[n].size = c->sizes[k];
            jb[n].keep_ckpt = k == c->n_sizes - 1 && c->split_size > 0 && s < c->second_seeds;
            jb[n].dep = 0; jb[n].level = 1;
            jb[n].cost = sweep_cost(c, c->sizes[k], 100, c->epochs, 1);
        }
    if (c->split_size > 0)
        for (s = 0; s < c->n_seeds && s < c->second_seeds; s++)
            for (from = 0; from < 2; from++)
                for (g = 0; g < 4; g++, n++) {
                    snprintf(jb[n].name, sizeof jb[n].name, "s%llu_%s_from%s", (unsigned long long)c->seeds[s],
                             sweep_groups[g], from ? "L" : "0");
                    jb[n].group = sweep_groups[g]; jb[n].from = from ? "largest" : "stage0"; jb[n].kind = SWEEP_SECOND;
                    jb[n].s = s; jb[n].g = g; jb[n].from_largest = from;
                    jb[n].seed = (int64_t)c->seeds[s]; jb[n].size = c->split_size;
                    jb[n].dep = from ? 1 + s * c->n_sizes + c->n_sizes - 1 : 0;
                    jb[n].level = 1 + from;
                    jb[n].cost = sweep_cost(c, c->split_size, 100, c->epochs, 1);
                }
    for (i = 0; i < n; i++) idx[i] = i;
    sweep_sort(jb, idx, n, sweep_sched_before);
    for (i = 0; i < n; i++) {
        sweep_job *r = &jb[idx[i]];
        int64_t ready = r->dep >= 0 ? jb[r->dep].end : 0, best_end = 0;
        int lo = r->dep >= 0 ? jb[r->dep].owner : 0, best = -1;
        for (w = lo; w < n_workers; w++) {
            int64_t e = (busy[w] > ready ? busy[w] : ready) + r->cost;
            if (best < 0 || e < best_end) { best = w; best_end = e; }
        }
        r->owner = best;
        r->start = best_end - r->cost;
        r->end = busy[best] = best_end;
    }
    for (j = 0; j < n; j++) idx[j] = j;
    if (n_workers > 1) sweep_sort(jb, idx, n, sweep_exec_before);   /* one process: the list order */
    free(busy);
    *n_jobs = n;
    *order = idx;
    return jb;
}

static void sweep_run_path(const sweep_ctx *x, const sweep_job *jb, const char *file, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s/%s", x->runs_dir, jb->name, file);
}

/* Finished: its result.json, and its checkpoint when a later run starts from it. */
static int sweep_done(const sweep_ctx *x, const sweep_job *jb) {
    char p[1400];
    sweep_run_path(x, jb, "result.json", p, sizeof p);
    if (!sweep_exists(p)) return 0;
    sweep_run_path(x, jb, "model.ckpt", p, sizeof p);
    return !jb->keep_ckpt || sweep_exists(p);
}

/* Wait (polling once a second) until a run another worker owns has finished. Array tasks
   (mpi == 0) give up after --wait-timeout, or at once when the owner left a failure note; MPI
   ranks wait as long as it takes (a rank that fails ends the whole job). */
static int sweep_wait(const sweep_ctx *x, const sweep_job *jb, int mpi) {
    double t0 = distill_time_seconds();
    int said = 0;
    char note[1400], rpath[1400];
    sweep_run_path(x, jb, "failed.txt", note, sizeof note);
    sweep_run_path(x, jb, "result.json", rpath, sizeof rpath);
    while (!sweep_done(x, jb)) {
        if (!mpi && sweep_exists(note)) {
            fprintf(stderr, "distill sweep: %srun %s failed on task %d (see %s and that task's log); fix that, then "
                            "rerun task %d and this task (finished runs are reused)\n", x->who, jb->name, jb->owner, note, jb->owner);
            return -1;
        }
        if (!mpi && distill_time_seconds() - t0 > x->cfg.wait_timeout) {
            fprintf(stderr, "distill sweep: %sgave up after %.0f s waiting for run %s (%s %d): %s%s does not exist. "
                            "Is %s %d running? Run it (finished runs are reused), or raise --wait-timeout.\n",
                    x->who, x->cfg.wait_timeout, jb->name, x->unit, jb->owner, rpath, jb->keep_ckpt ? " or its model.ckpt" : "",
                    x->unit, jb->owner);
            return -1;
        }
        if (!said) { printf("  %swaiting for run %s (%s %d)\n", x->who, jb->name, x->unit, jb->owner); said = 1; }
        sweep_sleep(1.0);
    }
    if (said) printf("  %s%s is done (waited %.0f s)\n", x->who, jb->name, distill_time_seconds() - t0);
    return 0;
}

/* Run job j: its training set, the checkpoint it starts from, then sweep_run. The second
   experiments' filtered sets are loaded on first use (gds[g]). */
static int sweep_do(sweep_ctx *x, const sweep_job *jobs, int j, distill_dataset **gds) {
    const sweep_cfg *c = &x->cfg;
    const sweep_job *jb = &jobs[j];
    distill_select_options so;
    distill_dataset *sub;
    distill_error err;
    sweep_result r;
    char ck[1400];
    int rc;
    if (jb->kind == SWEEP_STAGE0)
        return sweep_run(x, jb->name, jb->group, jb->from, 0, 0, x->direct, NULL, c->stage0_epochs, c->stage0_lr, 0, 1, &r);
    sweep_run_path(x, &jobs[jb->dep], "model.ckpt", ck, sizeof ck);
    if (jb->kind == SWEEP_SECOND && !gds[jb->g]) {
        gds[jb->g] = sweep_load_data(x, "train.jsonl", sweep_filters[jb->g]);
        if (!gds[jb->g]) return -1;
        if (distill_dataset_size(gds[jb->g]) < c->split_size) {
            fprintf(stderr, "distill sweep: only %lld '%s' traces for split size %lld\n",
                    (long long)distill_dataset_size(gds[jb->g]), jb->group, (long long)c->split_size);
            return -1;
        }
    }
    memset(&so, 0, sizeof so);
    so.seed = (uint64_t)jb->seed;
    so.n = jb->size;
    sub = distill_dataset_select(jb->kind == SWEEP_SUBSET ? x->train_all : gds[jb->g], &so, &err);
    if (!sub) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    rc = sweep_run(x, jb->name, jb->group, jb->from, jb->seed, jb->size, sub, ck, c->epochs, c->lr, 1, jb->keep_ckpt, &r);
    distill_dataset_free(sub);
    return rc;
}

/* Leave a note in a failed run's directory, for the array tasks waiting for it. */
static void sweep_note_failure(const sweep_ctx *x, const sweep_job *jb) {
    char p[1400], msg[160];
    distill_error err;
    sweep_run_path(x, jb, "failed.txt", p, sizeof p);
    snprintf(msg, sizeof msg, "task %d failed in this run; see its log\n", jb->owner);
    (void)distill_write_file_atomic(p, msg, strlen(msg), &err);
}

/* The workers: MPI ranks, or array tasks (--task-id/--num-tasks, by default from Slurm's
   SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN, over SLURM_ARRAY_TASK_STEP, of
   SLURM_ARRAY_TASK_COUNT). Returns 0, or 2 after a message. */
static int sweep_env(const char *name, long *v) {
    const char *s = getenv(name);
    char *end;
    if (!s || !*s) return 0;
    *v = strtol(s, &end, 10);
    if (*end) {
        fprintf(stderr, "distill sweep: %s=%s is not an integer\n", name, s);
        return -1;
    }
    return 1;
}

static int sweep_workers(sweep_cfg *c, const distill_comm *comm, int *w, int *n) {
    long id = 0, min = 0, step = 1, count = 0;
    int got;
    char origin[200] = "";
    if (comm->size > 1) {
        if (c->task_id >= 0 || c->num_tasks > 1) {
            fprintf(stderr, "distill sweep: under mpirun the ranks are the workers: no --task-id/--num-tasks\n");
            return 2;
        }
        if (c->merge || c->report_only || c->plan) {
            fprintf(stderr, "distill sweep: --merge, --report-only and --plan run as one process, not under mpirun\n");
            return 2;
        }
        *w = comm->rank;
        *n = comm->size;
        return 0;
    }
    if (!c->merge && !c->report_only) {   /* a report is one process: Slurm's array variables do not apply */
        if (c->num_tasks <= 0) {
            if ((got = sweep_env("SLURM_ARRAY_TASK_COUNT", &count)) < 0) return 2;
            if (got && (count < 1 || count > 1000000)) {
                fprintf(stderr, "distill sweep: SLURM_ARRAY_TASK_COUNT=%ld\n", count);
                return 2;
            }
            if (got) c->num_tasks = (int)count;
        }
        if (c->task_id < 0) {
            if ((got = sweep_env("SLURM_ARRAY_TASK_ID", &id)) < 0 || sweep_env("SLURM_ARRAY_TASK_MIN", &min) < 0 ||
                sweep_env("SLURM_ARRAY_TASK_STEP", &step) < 0)
                return 2;
            if (step < 1) step = 1;
            if (got && (id < min || (id - min) % step || (id - min) / step > 1000000)) {
                fprintf(stderr, "distill sweep: SLURM_ARRAY_TASK_ID=%ld is not MIN + k * STEP (MIN %ld, STEP %ld): "
                                "use a regular array (--array=0-7) or pass --task-id/--num-tasks\n", id, min, step);
                return 2;
            }
            if (got) {
                c->task_id = (int)((id - min) / step);
                snprintf(origin, sizeof origin, " (from SLURM_ARRAY_TASK_ID=%ld, SLURM_ARRAY_TASK_MIN=%ld)", id, min);
            }
        }
    }
    if (c->num_tasks <= 0) c->num_tasks = 1;
    if (c->task_id < 0) {
        if (c->num_tasks > 1 && !c->merge && !c->report_only && !c->plan) {
            fprintf(stderr, "distill sweep: --num-tasks %d needs --task-id K (0 <= K < %d), one per task\n", c->num_tasks, c->num_tasks);
            return 2;
        }
        c->task_id = 0;
    }
    if (c->task_id >= c->num_tasks) {
        fprintf(stderr, "distill sweep: task id %d%s is out of range for %d task%s (ids 0..%d)\n", c->task_id, origin,
                c->num_tasks, c->num_tasks > 1 ? "s" : "", c->num_tasks - 1);
        return 2;
    }
    *w = c->task_id;
    *n = c->num_tasks;
    return 0;
}

/* The command an array task prints for the merge step: its own, without the task options. */
static void sweep_print_merge(int argc, char **argv) {
    int a;
    printf("when every task has finished:\n  distill sweep");
    for (a = 1; a < argc; a++) {
        const char *p;
        if ((!strcmp(argv[a], "--task-id") || !strcmp(argv[a], "--num-tasks")) && a + 1 < argc) { a++; continue; }
        for (p = argv[a]; *p && (isalnum((unsigned char)*p) || strchr("_./,=:+-", *p)); p++) {}
        printf(*p || !argv[a][0] ? " '%s'" : " %s", argv[a]);
    }
    printf(" --merge\n");
}

/* The command line's options over *c (after the preset and config file). 0, or 2 after a message. */
static int sweep_flags(sweep_cfg *c, int argc, char **argv) {
    int a, rc;
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--preset") || !strcmp(argv[a], "--config")) { a++; continue; }
        if (!strcmp(argv[a], "--merge") || !strcmp(argv[a], "--plan")) {   /* switches; "--merge 1" works too */
            int v = a + 1 < argc && (!strcmp(argv[a + 1], "0") || !strcmp(argv[a + 1], "1"));
            (void)sweep_set(c, argv[a] + 2, v ? argv[a + 1] : "1", NULL);
            a += v;
            continue;
        }
        if (strncmp(argv[a], "--", 2) || a + 1 >= argc) {
            fprintf(stderr, "distill sweep: unexpected argument '%s'\n", argv[a]);
            sweep_usage(stderr);
            return 2;
        }
        rc = sweep_set(c, argv[a] + 2, argv[a + 1], NULL);
        if (rc) {
            if (rc == -2) fprintf(stderr, "distill sweep: unknown option '%s' (see distill sweep --help)\n", argv[a]);
            else fprintf(stderr, "distill sweep: %s: invalid value '%s'\n", argv[a], argv[a + 1]);
            return 2;
        }
        a++;
    }
    return 0;
}

/* v with the fewest digits that read back exactly (%.17g always would, but prints 0.1 as
   0.10000000000000001). */
static void sweep_put_num(FILE *f, const char *key, double v, const char *after) {
    char buf[64];
    int digits;
    for (digits = 15; digits < 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (digits == 17) snprintf(buf, sizeof buf, "%.17g", v);
    fprintf(f, "\"%s\": %s%s", key, buf, after);
}

/* OUT/sweep-config.json: every option that shapes the runs and the report, in the config-file
   format, so that `--merge` and `--report-only` need only --out. */
static int sweep_save_config(const sweep_cfg *c, const char *path) {
    distill_atomic_file af;
    distill_error err;
    int i;
    if (distill_atomic_open(&af, path, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    fprintf(af.f, "{\"train\": %lld, \"direct\": %lld, \"eval\": %lld, ", (long long)c->n_train, (long long)c->n_direct,
            (long long)c->n_eval);
    sweep_put_num(af.f, "error_rate", c->error_rate, ", ");
    fprintf(af.f, "\"world_seed\": %llu,\n", (unsigned long long)c->world_seed);
    fprintf(af.f, " \"vocab\": %d, \"dim\": %d, \"layers\": %d, \"heads\": %d, \"kv_heads\": %d, \"hidden\": %d, \"seq\": %d,\n",
            c->vocab, c->dim, c->layers, c->heads, c->kv_heads, c->hidden, c->seq);
    fprintf(af.f, " \"batch\": %d, ", c->batch);
    sweep_put_num(af.f, "lr", c->lr, ", ");
    sweep_put_num(af.f, "warmup", c->warmup, ", ");
    fprintf(af.f, "\"epochs\": %d, \"token_budget\": %lld, \"stage0_epochs\": %d, ", c->epochs, (long long)c->token_budget,
            c->stage0_epochs);
    sweep_put_num(af.f, "stage0_lr", c->stage0_lr, ",\n");
    fprintf(af.f, " \"sizes\": [");
    for (i = 0; i < c->n_sizes; i++) fprintf(af.f, "%s%lld", i ? ", " : "", (long long)c->sizes[i]);
    fprintf(af.f, "], \"seeds\": [");
    for (i = 0; i < c->n_seeds; i++) fprintf(af.f, "%s%llu", i ? ", " : "", (unsigned long long)c->seeds[i]);
    fprintf(af.f, "], \"split_size\": %lld, \"second_seeds\": %d,\n", (long long)c->split_size, c->second_seeds);
    fprintf(af.f, " \"eval_n\": %d, \"max_new\": %d, \"gen_batch\": %d}\n", c->eval_n, c->max_new, c->gen_batch);
    if (distill_atomic_commit(&af, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    return 0;
}

/* ---- the driver ----------------------------------------------------------------------------- */
int cli_sweep(int argc, char **argv) {
    sweep_ctx x;
    sweep_cfg *c = &x.cfg;
    sweep_result *res = NULL, stage0;
    sweep_job *jobs = NULL;
    int *order = NULL;
    distill_dataset *gds[4] = {NULL, NULL, NULL, NULL};
    distill_error err;
    const distill_comm *comm;
    const char *preset = "demo", *config = NULL;
    char path[1200];
    int a, j, nr = 0, nj = 0, rc = 1, w = 0, nw = 1, mpi, reporting, mine = 0, done_before = 0, missing = 0;
    int said[3] = {0, 0, 0};
    memset(&x, 0, sizeof x);
    x.t_start = distill_time_seconds();
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress lines appear as they happen, also in logs */
    /* preset first, then the config file, then flags */
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) { sweep_usage(stdout); return 0; }
        if (!strcmp(argv[a], "--preset") && a + 1 < argc) preset = argv[a + 1];
        if (!strcmp(argv[a], "--config") && a + 1 < argc) config = argv[a + 1];
    }
    if (strcmp(preset, "smoke") && strcmp(preset, "demo") && strcmp(preset, "valley")) {
        fprintf(stderr, "distill sweep: unknown preset '%s' (smoke, demo, valley)\n", preset);
        return 2;
    }
    sweep_preset(c, preset);
    if ((config && sweep_load_config(c, config) != 0) || sweep_flags(c, argc, argv) != 0) return 2;
    if ((c->merge || c->report_only) && !c->plan) {
        /* a report takes the options the sweep recorded (the merge step then needs only --out);
           a config file and flags still override them */
        char saved[1100];
        snprintf(saved, sizeof saved, "%s/sweep-config.json", c->out);
        if (sweep_exists(saved)) {
            sweep_preset(c, preset);
            if (sweep_load_config(c, saved) != 0 || (config && sweep_load_config(c, config) != 0) ||
                sweep_flags(c, argc, argv) != 0)
                return 2;
            printf("options: %s, then the command line\n", saved);
            preset = "as recorded";
        }
    }
    if (c->heads % c->kv_heads || c->dim % c->heads) {
        fprintf(stderr, "distill sweep: dim (%d) must divide by heads (%d), heads by kv_heads (%d)\n", c->dim, c->heads, c->kv_heads);
        return 2;
    }
    for (a = 0; a < c->n_sizes; a++)
        if (c->sizes[a] > c->n_train || (a && c->sizes[a] <= c->sizes[a - 1])) {
            fprintf(stderr, "distill sweep: sizes must increase and not exceed --train (%lld)\n", (long long)c->n_train);
            return 2;
        }
    if (c->eval_n > c->n_eval) c->eval_n = (int)c->n_eval;
#ifdef DISTILL_MPI
    comm = cli_comm();
#else
    comm = distill_comm_local();   /* without MPI cli_comm() is always this one */
#endif
    mpi = comm->size > 1;
    if (sweep_workers(c, comm, &w, &nw) != 0) return 2;
    reporting = c->merge || c->report_only;
    jobs = sweep_plan(c, nw, &nj, &order);
    if (!jobs) { fprintf(stderr, "distill sweep: out of memory\n"); return 1; }
    if (c->plan) {
        int64_t total = 0;
        printf("%d runs over %d task%s (work in estimated tokens):\n  %-22s %5s  %-22s %10s %10s %10s\n", nj, nw,
               nw > 1 ? "s" : "", "run", "task", "starts from", "work", "start", "end");
        for (j = 0; j < nj; j++) {
            printf("  %-22s %5d  %-22s %10lld %10lld %10lld\n", jobs[j].name, jobs[j].owner,
                   jobs[j].dep >= 0 ? jobs[jobs[j].dep].name : "-", (long long)jobs[j].cost, (long long)jobs[j].start,
                   (long long)jobs[j].end);
            total += jobs[j].cost;
        }
        for (a = 0; a < nw; a++) {
            int64_t sum = 0, end = 0;
            for (j = 0; j < nj; j++)
                if (jobs[j].owner == a) { sum += jobs[j].cost; mine++; if (jobs[j].end > end) end = jobs[j].end; }
            printf("task %d: %d runs, work %lld, done at %lld\n", a, mine, (long long)sum, (long long)end);
            mine = 0;
        }
        printf("one process: %lld\n", (long long)total);
        free(jobs);
        free(order);
        return 0;
    }
    if (c->threads > 0) distill_set_threads(c->threads);
    x.tmpl = distill_chat_template_get("chatml");
    snprintf(x.world_dir, sizeof x.world_dir, "%s/world", c->out);
    snprintf(x.tok_path, sizeof x.tok_path, "%s/tokenizer.bin", c->out);
    snprintf(x.runs_dir, sizeof x.runs_dir, "%s/runs", c->out);
    x.unit = mpi ? "rank" : "task";
    if (nw > 1) snprintf(x.who, sizeof x.who, "%s %d: ", x.unit, w);
    for (j = 0; j < nj; j++) mine += jobs[j].owner == w;
    if (reporting) {
        snprintf(path, sizeof path, "%s/eval.jsonl", x.world_dir);
        if (!sweep_exists(path) || !sweep_exists(x.tok_path)) {
            fprintf(stderr, "distill sweep: %s: no sweep to report (no %s or %s): run the sweep first\n", c->out, path, x.tok_path);
            goto done;
        }
    } else if (sweep_mkdir(c->out) || sweep_mkdir(x.world_dir) || sweep_mkdir(x.runs_dir)) {
        fprintf(stderr, "distill sweep: cannot create %s\n", c->out);
        goto done;
    } else if (w == 0) {
        snprintf(path, sizeof path, "%s/sweep-config.json", c->out);
        if (sweep_save_config(c, path) != 0) goto done;
    }
    printf("distill sweep -> %s  (preset %s; %d sizes x %d seeds, %s, %d threads)\n", c->out, preset, c->n_sizes,
           c->n_seeds, c->token_budget > 0 ? "fixed token budget" : "fixed epochs", distill_get_threads());
    if (nw > 1 && !reporting)
        printf("%s %d of %d%s: %d of the %d runs\n", mpi ? "rank" : "task", w, nw, mpi ? " (MPI)" : "", mine, nj);
    if (nw > 1 && !mpi && !reporting && mine == 0) {
        printf("task %d: no runs for this task (%d runs over %d tasks)\n", w, nj, nw);
        sweep_print_merge(argc, argv);
        rc = 0;
        goto done;
    }
    if (nw > 1 && !mpi && !reporting)   /* notes from an earlier attempt of this task's runs */
        for (j = 0; j < nj; j++)
            if (jobs[j].owner == w) { sweep_run_path(&x, &jobs[j], "failed.txt", path, sizeof path); remove(path); }

    /* 1. the world and 2. the tokenizer: worker 0 makes them; the others wait for the tokenizer,
       written last (every file is renamed into place whole) */
    snprintf(path, sizeof path, "%s/eval.jsonl", x.world_dir);
    if (reporting) {
        /* checked above: both exist */
    } else if (w > 0) {
        if (!sweep_exists(x.tok_path)) printf("%swaiting for %s 0 to write the world and %s\n", x.who, x.unit, x.tok_path);
        while (!sweep_exists(x.tok_path)) {
            if (!mpi && distill_time_seconds() - x.t_start > c->wait_timeout) {
                fprintf(stderr, "distill sweep: %sgave up after %.0f s waiting for %s (%s 0 writes it). Is %s 0 running?\n",
                        x.who, c->wait_timeout, x.tok_path, x.unit, x.unit);
                goto done;
            }
            sweep_sleep(1.0);
        }
    } else if (!sweep_exists(path)) {
        world_gen_options wo = world_gen_options_default();
        world_gen_summary sum;
        wo.n_train = (uint64_t)c->n_train;
        wo.n_direct = (uint64_t)c->n_direct;
        wo.n_eval = (uint64_t)c->n_eval;
        wo.seed = c->world_seed;
        wo.error_rate = c->error_rate;
        if (world_write_files(x.world_dir, &wo, &sum, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
        world_print_summary(stdout, &wo, &sum);
    } else printf("world: reusing %s\n", x.world_dir);
    if (sweep_tokenizer(&x) != 0) goto done;
    x.eot = distill_chat_eot_id(x.tmpl, x.tok);
    printf("tokenizer: %d tokens (%s)  [%.0fs]\n", distill_tokenizer_vocab_size(x.tok), x.tok_path, distill_time_seconds() - x.t_start);

    /* data */
    if (sweep_load_eval(&x) != 0) goto done;
    if (!reporting && mine > 0) {
        const distill_data_stats *st, *sd;
        x.train_all = sweep_load_data(&x, "train.jsonl", NULL);
        x.direct = sweep_load_data(&x, "direct.jsonl", NULL);
        if (!x.train_all || !x.direct) goto done;
        st = distill_dataset_stats(x.train_all);
        sd = distill_dataset_stats(x.direct);
        printf("data: %lld traces (%.1f tokens/row, max %lld, %lld dropped > %d), %lld direct answers (%.1f tokens/row), %d eval problems\n",
               (long long)st->rows, (double)st->tokens / (double)(st->rows ? st->rows : 1), (long long)st->max_len,
               (long long)st->dropped, c->seq, (long long)sd->rows, (double)sd->tokens / (double)(sd->rows ? sd->rows : 1), x.n_eval);
        if (distill_dataset_size(x.train_all) < c->sizes[c->n_sizes - 1]) {
            fprintf(stderr, "distill sweep: only %lld traces fit in %d tokens; the largest size is %lld\n",
                    (long long)distill_dataset_size(x.train_all), c->seq, (long long)c->sizes[c->n_sizes - 1]);
            goto done;
        }
    }

    /* 3.-5. this worker's runs: stage 0, the data-quantity sweep, the second experiments */
    for (a = 0; a < nj && !reporting; a++) {
        const sweep_job *jb = &jobs[order[a]];
        if (jb->owner != w) continue;
        if (!said[jb->kind]) {
            said[jb->kind] = 1;
            if (jb->kind == SWEEP_STAGE0) printf("stage 0: training the direct-answer student\n");
            else if (jb->kind == SWEEP_SUBSET) printf("sweep: nested subsets of the teacher's traces, fine-tuned from stage 0\n");
            else printf("second experiments: %lld traces per subset, from stage 0 and from the largest\n", (long long)c->split_size);
        }
        done_before += sweep_done(&x, jb);
        if (jb->dep >= 0 && jobs[jb->dep].owner != w && sweep_wait(&x, &jobs[jb->dep], mpi) != 0) goto done;
        if (sweep_do(&x, jobs, order[a], gds) != 0) {
            fprintf(stderr, "distill sweep: %srun %s failed\n", x.who, jb->name);
            if (nw > 1 && !mpi) sweep_note_failure(&x, jb);
            goto done;
        }
    }
    if (nw > 1 && !mpi && !reporting) {   /* an array task: no report; the merge step writes it */
        printf("\n%sdone: %d runs (%d finished earlier)  (%.0f s)\n", x.who, mine, done_before, distill_time_seconds() - x.t_start);
        sweep_print_merge(argc, argv);
        rc = 0;
        goto done;
    }
    if (mpi) {   /* every rank waits (sleeping, not spinning in MPI) for all runs, then one barrier */
        for (j = 0; j < nj; j++)
            if (jobs[j].owner != w && sweep_wait(&x, &jobs[j], 1) != 0) goto done;
        if (comm->barrier(comm, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
        if (w != 0) { rc = 0; goto done; }
    }

    /* 6. the report (one process: the single sweep, MPI rank 0, or --merge / --report-only),
       from every run's result.json so that it never depends on who ran what */
    res = (sweep_result *)calloc((size_t)nj, sizeof *res);
    if (!res) goto done;
    if (c->merge) printf("merge: %d runs in %s\n", nj, x.runs_dir);
    for (j = 0; j < nj; j++) {
        sweep_run_path(&x, &jobs[j], "result.json", path, sizeof path);
        if (sweep_read_result(path, &res[nr]) == 0) { nr++; continue; }
        if (!missing++ && c->merge) fprintf(stderr, "distill sweep: unfinished runs (no %s/<run>/result.json):\n", x.runs_dir);
        if (c->merge) {
            if (nw > 1) fprintf(stderr, "  %s (task %d)\n", jobs[j].name, jobs[j].owner);
            else fprintf(stderr, "  %s\n", jobs[j].name);
        } else if (c->report_only) printf("  %-22s not finished: left out of the report\n", jobs[j].name);
        else fprintf(stderr, "distill sweep: run %s has no result (%s)\n", jobs[j].name, path);
        if (j == 0 && !c->merge) { fprintf(stderr, "distill sweep: no stage-0 student\n"); goto done; }
    }
    if (missing && !c->report_only) {
        if (c->merge)
            fprintf(stderr, "distill sweep: %d of %d runs are not finished: run (or rerun) the tasks that own them, then "
                            "--merge again\n", missing, nj);
        goto done;
    }
    stage0 = res[0];
    if (sweep_report(&x, res, nr, &stage0) != 0) goto done;
    printf("\nresults: %s/results.md  %s/results.csv  %s/results.json  plot: %s/valley.svg  (%.0f s)\n", c->out, c->out,
           c->out, c->out, distill_time_seconds() - x.t_start);
    rc = 0;
done:
    free(res);
    free(jobs);
    free(order);
    for (a = 0; a < 4; a++) if (gds[a]) distill_dataset_free(gds[a]);
    if (x.eval_recs) { for (a = 0; a < x.n_eval; a++) { distill_json_free(x.eval_recs[a]); distill_ids_free(&x.prompt_ids[a]); } }
    free(x.eval_recs);
    free(x.prompts);
    free(x.prompt_ids);
    free(x.prompt_lens);
    if (x.train_all) distill_dataset_free(x.train_all);
    if (x.direct) distill_dataset_free(x.direct);
    if (x.tok) distill_tokenizer_free(x.tok);
    return rc;
}
