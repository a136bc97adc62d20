/* distill sweep: the Valley of Code Reasoning experiment design (arXiv 2510.06101) over any
   dataset, model and verifier -- and, with --preset demo|valley|smoke, over the miniature world.

   The design, run by one process, MPI ranks or a Slurm job array (docs/cluster.md):
     stage 0    the non-reasoning student: --init MODEL as it is, or a fresh model trained on
                --stage0-data (direct answers, no <think>)
     sweep      for every seed and size, a nested subset of the teacher's traces (--data; the
                subset of size n is a prefix of the seed's permutation, so it lies inside every
                larger one) fine-tuned from stage 0 for --epochs or a --token-budget
     second     at equal size (--split-size), traces filtered by --easy/--hard and by
                --correct/--incorrect, from stage 0 and/or the largest subset's model; by
                default (--second-pool disjoint) drawn only from rows no sweep subset used
     eval       every model on --eval-data: --eval-n samples per problem, scored by the verifier
                (--verifier world or --verifier-cmd CMD): pass@k, completion and think-tag rates,
                truncation rate, per difficulty; runs/<run>/generations.jsonl keeps every sample
     report     results.{csv,json,md} with paired bootstrap intervals, and valley.svg

   Each run is the library's trainer (distill_trainer: checkpoints, resume inside a run, NaN
   stop, metrics.jsonl) followed by the library's evaluator (distill_eval_model with the verifier
   as its callback). This file only decides what to train on, from what, and writes the report.
   The miniature world (world.c) is one data provider: it writes train/direct/eval JSONL files in
   the shape real datasets have and the generic path runs on them. */
#define _POSIX_C_SOURCE 200809L   /* mkdir, opendir, nanosleep */
#include "../cli/cli.h"
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
#define SWEEP_MAX_LIST CLI_LIST_MAX    /* --map, --filter */
#define SWEEP_STR 1200
#define CW 160               /* report cell width */

typedef struct sweep_cfg {
    char out[1024];
    /* data (a world preset fills these with the files it generates) */
    char data[SWEEP_STR], eval_data[SWEEP_STR], tokenizer[SWEEP_STR], init[SWEEP_STR], stage0_data[SWEEP_STR];
    char verifier[32], verifier_cmd[SWEEP_STR];
    double verifier_timeout;
    char format[32], tmpl[32], loss[16];
    cli_strlist maps, filters;
    int max_seq, truncate, normalize_think;
    /* second-stage experiments */
    char easy[256], hard[256], correct[256], incorrect[256];
    char second_from[16], second_pool[16];
    int64_t split_size;
    int second_seeds;          /* run them for the first k seeds */
    /* controls, for the first arm_seeds seeds */
    int64_t budget_arm;        /* > 0: every size also trained on this many tokens */
    cli_strlist control_maps;   /* the same rows seen through these maps (answers only) */
    int arm_seeds;
    /* the world (a preset's data provider) */
    int world;                 /* 1: generate OUT/world/{train,direct,eval}.jsonl and a tokenizer */
    int64_t n_train, n_direct, n_eval;
    uint64_t world_seed;
    double error_rate;
    int vocab;
    /* a fresh stage-0 model */
    int dim, layers, heads, kv_heads, hidden;
    /* training (the same meaning as in distill train) */
    int batch_rows, grad_accum, pack;
    int64_t batch_tokens, token_budget, save_every;
    double save_every_minutes;
    double lr, warmup_ratio, weight_decay, epochs, stage0_epochs, stage0_lr;
    /* the sweep */
    cli_intlist sizes;         /* at most SWEEP_MAX_SIZES, increasing */
    cli_intlist seeds;         /* at most SWEEP_MAX_SEEDS */
    /* evaluation */
    int eval_n, top_k, max_new, gen_batch, nk, eval_greedy;
    int ks[DISTILL_EVAL_MAX_K];   /* from k (sweep_lists_check) */
    cli_intlist k;
    double temperature, top_p;
    int64_t eval_max_problems;
    /* process */
    int threads, report_only, task_id, num_tasks, merge, plan;
    char preset[16];           /* --preset (read first, by sweep_pick_preset) */
    double wait_timeout;
    char precision[8];         /* --precision fp32|bf16: every run's training */
} sweep_cfg;

/* ---- presets ----------------------------------------------------------------------------- */
static void sweep_defaults(sweep_cfg *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->out, sizeof c->out, "build/sweep");
    snprintf(c->tmpl, sizeof c->tmpl, "chatml");
    snprintf(c->second_from, sizeof c->second_from, "both");
    snprintf(c->precision, sizeof c->precision, "fp32");
    snprintf(c->second_pool, sizeof c->second_pool, "disjoint");
    c->verifier_timeout = 30;
    c->max_seq = 512;
    c->split_size = 0; c->second_seeds = 1; c->arm_seeds = 1;
    c->n_train = 4000; c->n_direct = 3000; c->n_eval = 200; c->world_seed = 1; c->error_rate = 0.3; c->vocab = 512;
    c->dim = 96; c->layers = 3; c->heads = 4; c->kv_heads = 2; c->hidden = 256;
    c->batch_rows = 8; c->grad_accum = 1; c->save_every_minutes = 10;
    c->lr = 1e-4; c->warmup_ratio = 0.1; c->weight_decay = 0.01; c->epochs = 5; c->stage0_epochs = 3; c->stage0_lr = 1e-3;
    c->sizes.v[0] = 1000; c->sizes.n = 1;
    c->seeds.v[0] = 1; c->seeds.n = 1;
    c->eval_n = 1; c->top_p = 1; c->max_new = 512; c->gen_batch = 32; c->k.v[0] = 1; c->k.n = 1;
    c->threads = 0;
    c->task_id = -1; c->wait_timeout = 86400;
}

/* The world presets: the generic path on the miniature world's files. */
static void sweep_preset(sweep_cfg *c, const char *name) {
    sweep_defaults(c);
    if (!strcmp(name, "custom")) return;
    c->world = 1;
    c->maps.v[0] = "question=prompt";
    c->maps.v[1] = "response=response";
    c->maps.n = 2;
    snprintf(c->loss, sizeof c->loss, "last");
    snprintf(c->verifier, sizeof c->verifier, "world");
    snprintf(c->easy, sizeof c->easy, "difficulty_label == \"EASY\"");
    snprintf(c->hard, sizeof c->hard, "difficulty_label == \"HARD\"");
    snprintf(c->correct, sizeof c->correct, "judgement == \"right\"");
    snprintf(c->incorrect, sizeof c->incorrect, "judgement == \"wrong\"");
    c->max_seq = 320; c->pack = 1; c->batch_rows = 4;
    c->lr = 1e-3; c->stage0_epochs = 6; c->stage0_lr = 3e-3;
    c->max_new = 192; c->gen_batch = 50;
    /* One thread: these students are so small (B*T*C ~ 10^5) that a second worker mostly waits
       at barriers (measured: the smoke preset 14.2 s with 2 threads vs 1.9 s with 1 at load 11). */
    c->threads = 1;
    c->second_seeds = 1;
    c->control_maps.v[0] = "question=prompt";
    c->control_maps.v[1] = "answer_only=response";
    c->control_maps.n = 2;
    /* the second-stage pools are disjoint from every sweep subset: n_train leaves room for them
       (a quarter to a third of the traces are wrong, two fifths easy) */
    if (!strcmp(name, "smoke")) {           /* CI: seconds */
        snprintf(c->out, sizeof c->out, "build/sweep-smoke");
        c->n_train = 160; c->n_direct = 120; c->n_eval = 10; c->vocab = 300;
        c->dim = 32; c->layers = 1; c->heads = 2; c->kv_heads = 1; c->hidden = 64;
        c->stage0_epochs = 1; c->epochs = 1; c->max_new = 64;
        c->sizes.v[0] = 10; c->sizes.v[1] = 40; c->sizes.n = 2;
        c->split_size = 10;
        c->control_maps.n = 0;   /* no controls: the CI smoke checks the table's shape */
    } else if (!strcmp(name, "valley")) {   /* the full miniature: 2.5 decades of data, 3 seeds */
        snprintf(c->out, sizeof c->out, "build/valley");
        c->n_train = 20000; c->n_direct = 12000; c->n_eval = 400; c->stage0_epochs = 3;
        /* the student of the pilot (docs/valley-pilot): 0.8 M parameters fit the traces (final
           loss 0.30 at 10,000 traces, against 0.51 for dim 96 / 3 layers) */
        c->dim = 128; c->layers = 4; c->heads = 4; c->kv_heads = 2; c->hidden = 352;
        c->sizes.v[0] = 30; c->sizes.v[1] = 100; c->sizes.v[2] = 300; c->sizes.v[3] = 1000; c->sizes.v[4] = 3000;
        c->sizes.v[5] = 10000; c->sizes.n = 6;
        c->seeds.v[0] = 1; c->seeds.v[1] = 2; c->seeds.v[2] = 3; c->seeds.n = 3;
        c->split_size = 300; c->second_seeds = 3;
        /* sampled evaluation (4 samples at 0.7: pass@1, pass@4) and greedy beside it */
        c->eval_n = 4; c->temperature = 0.7; c->top_p = 1; c->k.v[0] = 1; c->k.v[1] = 4; c->k.n = 2; c->eval_greedy = 1;
        c->max_new = 384;
        c->budget_arm = 1000000;
    } else {                                /* demo: <= 5 min */
        snprintf(c->out, sizeof c->out, "build/demo");
        c->n_train = 1500; c->n_direct = 800; c->n_eval = 100; c->stage0_epochs = 5;
        c->sizes.v[0] = 30; c->sizes.v[1] = 100; c->sizes.v[2] = 300; c->sizes.v[3] = 1000; c->sizes.n = 4;
        c->split_size = 100;
    }
}

#define CLI_T sweep_cfg
static const cli_opt sweep_options[] = {
    CLI_BUF_ENUM("preset", preset, "smoke|demo|valley|custom", "the miniature world's sweeps (custom: your --data; default demo without --data)"),
    CLI_SECTION("data (as in distill train)"),
    CLI_BUF("data", data, "FILE", "teacher traces (any format distill data reads)"),
    CLI_LIST("map", maps, "SRC=DST", "field mapping (repeatable)"),
    CLI_LIST("filter", filters, "EXPR", "keep rows matching (repeatable)"),
    CLI_BUF_ENUM("format", format, CLI_FORMATS, "the data's layout (auto)"),
    CLI_BUF_ENUM("template", tmpl, CLI_TEMPLATES, "chat template"),
    CLI_BUF_ENUM("loss", loss, CLI_LOSSES, "supervised tokens"),
    CLI_INT("max-seq", max_seq, 16, 1 << 20, "longest row in tokens"),
    CLI_BOOL("truncate", truncate, "cut long rows instead of dropping them"),
    CLI_BOOL("normalize-think", normalize_think, "<|begin_of_thought|> tags -> <think>"),
    CLI_BUF("tokenizer", tokenizer, "FILE", "any tokenizer format the library reads"),
    CLI_SECTION("stage 0 (one of the two)"),
    CLI_BUF("init", init, "MODEL", "the non-reasoning student (own checkpoint, safetensors, llama2.c .bin)"),
    CLI_BUF("stage0-data", stage0_data, "FILE", "train a fresh student on it first"),
    CLI_INT("dim", dim, 8, 16384, "the fresh student: width"),
    CLI_INT("layers", layers, 1, 256, "layers"),
    CLI_INT("heads", heads, 1, 256, "attention heads"),
    CLI_INT("kv-heads", kv_heads, 1, 256, "key/value heads"),
    CLI_INT("hidden", hidden, 8, 65536, "MLP width"),
    CLI_DBL("stage0-epochs", stage0_epochs, 1e-3, 1e5, "epochs of stage 0"),
    CLI_DBL("stage0-lr", stage0_lr, 1e-9, 1, "learning rate of stage 0"),
    CLI_SECTION("the sweep"),
    CLI_INTS("sizes", sizes, 1, 1e15, "nested subset sizes, increasing (at most 32)"),
    CLI_INTS("seeds", seeds, 0, 9e15, "permutation seeds (at most 16)"),
    CLI_DBL("epochs", epochs, 1e-3, 1e5, "epochs per run"),
    CLI_INT64("token-budget", token_budget, 0, 1e15, "or tokens per run (0: --epochs)"),
    CLI_DBL("lr", lr, 1e-9, 1, "peak learning rate"),
    CLI_DBL("warmup-ratio", warmup_ratio, 0, 0.9, "warmup share of the steps"),
    CLI_DBL("weight-decay", weight_decay, 0, 10, "AdamW weight decay"),
    CLI_INT("batch-rows", batch_rows, 1, 65536, "rows per micro-batch"),
    CLI_INT64("batch-tokens", batch_tokens, 0, 1e9, "or a token budget per micro-batch (0: off)"),
    CLI_INT("grad-accum", grad_accum, 1, 65536, "micro-batches per step"),
    CLI_BOOL("pack", pack, "pack rows into sequences of --max-seq tokens"),
    CLI_INT64("save-every", save_every, 0, 1e12, "checkpoint period in steps inside a run (0: at the end)"),
    CLI_DBL("save-every-minutes", save_every_minutes, 0, 1e7, "also a checkpoint every M minutes: a killed run resumes there"),
    CLI_SECTION("second-stage experiments (filter expressions as in --filter)"),
    CLI_BUF("easy", easy, "EXPR", "the easy traces"),
    CLI_BUF("hard", hard, "EXPR", "the hard traces"),
    CLI_BUF("correct", correct, "EXPR", "the traces whose code is right"),
    CLI_BUF("incorrect", incorrect, "EXPR", "the traces whose code is wrong"),
    CLI_INT64("split-size", split_size, 0, 1e9, "rows per second-stage run (0: none)"),
    CLI_BUF_ENUM("second-from", second_from, "largest|stage0|both", "start from the largest subset's model, stage 0, or both"),
    CLI_INT("second-seeds", second_seeds, 0, 16, "run them for the first K seeds"),
    CLI_BUF_ENUM("second-pool", second_pool, "disjoint|overlap", "disjoint: only rows no sweep subset used"),
    CLI_SECTION("controls (for the first --arm-seeds K seeds)"),
    CLI_INT("arm-seeds", arm_seeds, 0, 16, "seeds with control runs"),
    CLI_INT64("budget-arm", budget_arm, 0, 1e15, "every size also trained on N tokens (runs s<seed>_n<size>_budget; 0: off)"),
    CLI_LIST("control-map", control_maps, "SRC=DST", "the same rows seen through other maps, e.g. answers only (runs s<seed>_n<size>_direct; repeatable)"),
    CLI_SECTION("evaluation"),
    CLI_BUF("eval-data", eval_data, "FILE", "held-out problems (the prompt found as distill eval --model finds it)"),
    CLI_BUF_ENUM("verifier", verifier, "world", "the miniature world's verifier"),
    CLI_BUF("verifier-cmd", verifier_cmd, "CMD", "an external verifier (protocol of distill eval)"),
    CLI_DBL("verifier-timeout", verifier_timeout, 1e-3, 1e6, "seconds per verifier run"),
    CLI_INT("eval-n", eval_n, 1, 100000, "samples per problem"),
    CLI_DBL("temperature", temperature, 0, 100, "sampling temperature (0: greedy)"),
    CLI_DBL("top-p", top_p, 1e-6, 1, "nucleus sampling"),
    CLI_INT("top-k", top_k, 0, 1 << 20, "top-k sampling (0: off)"),
    CLI_INTS("k", k, 1, 100000, "pass@k for these k (at most 16)"),
    CLI_INT("max-new-tokens", max_new, 1, 1 << 20, "tokens generated per sample at most"),
    CLI_INT64("eval-max-problems", eval_max_problems, 0, 1e12, "the first N problems only (0: all)"),
    CLI_INT("gen-batch", gen_batch, 1, 4096, "sequences generated together"),
    CLI_BOOL("eval-greedy", eval_greedy, "with sampling: also one greedy sample per problem (pass_at_1_greedy)"),
    CLI_SECTION("the world (presets)"),
    CLI_INT64("train", n_train, 1, 1e7, "teacher traces"),
    CLI_INT64("direct", n_direct, 1, 1e7, "direct answers (stage-0 data)"),
    CLI_INT64("eval", n_eval, 1, 1e6, "held-out problems"),
    CLI_DBL("error-rate", error_rate, 0, 1, "share of traces ending in wrong code"),
    CLI_U64("world-seed", world_seed, 0, 9e15, "the world's seed"),
    CLI_INT("vocab", vocab, 260, 65536, "the world tokenizer's vocabulary"),
    CLI_SECTION("process"),
    CLI_BUF("out", out, "DIR", "the sweep's folder"),
    CLI_INT("threads", threads, 0, 1024, "worker threads (0: one per core)"),
    CLI_BUF_ENUM("precision", precision, "fp32|bf16", "products of the linear layers (and attention blocks): fp32, or bf16 inputs with FP32 sums"),
    CLI_BOOL("report-only", report_only, "the report from the finished runs, no training"),
    CLI_SECTION("distributed (docs/cluster.md; OUT on a filesystem every worker shares)"),
    CLI_INT("task-id", task_id, 0, 1000000, "task K's share (default from SLURM_ARRAY_TASK_ID), no report"),
    CLI_INT("num-tasks", num_tasks, 1, 1000000, "N tasks (default from SLURM_ARRAY_TASK_COUNT)"),
    CLI_BOOL("merge", merge, "the report from every run's result.json (options from OUT/sweep-config.json)"),
    CLI_BOOL("plan", plan, "print which task does which run and stop"),
    CLI_DBL("wait-timeout", wait_timeout, 0, 1e9, "seconds a task waits for the runs it starts from"),
    CLI_SECTION("other names (kept from earlier versions)"),
    CLI_ALIAS("seq", "max-seq"),
    CLI_ALIAS("batch", "batch-rows"),
    CLI_ALIAS("max-new", "max-new-tokens"),
    CLI_ALIAS("warmup", "warmup-ratio"),
};
#undef CLI_T

static const cli_cmd sweep_cmd = {
    "sweep",
    "usage: distill sweep --data TRACES --eval-data PROBLEMS --tokenizer TOK (--init MODEL | --stage0-data FILE)\n"
    "                     (--verifier-cmd CMD | --verifier world) [options]\n"
    "       distill sweep --preset demo|valley|smoke [options]    (the miniature world, docs/valley.md)\n",
    "  The Valley of Code Reasoning design: stage 0, a data-quantity sweep of nested subsets, second-stage\n"
    "  experiments (easy/hard, correct/incorrect), every model evaluated with a verifier. Resumable: rerun\n"
    "  the same command after a kill; finished runs are reused, an unfinished one resumes from its checkpoint.\n"
    "  Ctrl-C, SIGTERM or SIGUSR1 (Slurm --signal=USR1@90) finish the step (or the problems being\n"
    "  evaluated), save, and exit 130/143/138; one process per run folder (a lock names the holder).\n"
    "  Options apply in this order: the preset's values, --config FILE.json (keys: the flag names;\n"
    "  the older snake_case keys such as max_seq are read as the same names), then the flags.\n"
    "  Lists in a config file are arrays: {\"sizes\": [30, 100], \"map\": [\"question=prompt\"]}.\n",
    sweep_options, CLI_N(sweep_options),
    "mpirun -np N distill sweep ...   ranks share the runs; rank 0 writes the report.\n"
    "outputs: OUT/results.{csv,json,md} (pass@k, completion, think tags, truncation, paired 95% bootstrap\n"
    "  intervals), OUT/valley.svg, OUT/sweep-config.json (the options, in the --config format),\n"
    "  OUT/runs/<run>/{result.json,generations.jsonl,manifest.json,metrics.jsonl}\n",
    0};

static void sweep_usage(FILE *f) {
    static sweep_cfg c;   /* large: not on the stack */
    sweep_preset(&c, "custom");
    cli_help(&sweep_cmd, &c, f);
}

static int sweep_load_config(sweep_cfg *c, const char *path) { return cli_config_load(&sweep_cmd, c, path) ? -1 : 0; }

/* The command line's options over *c (after the preset and config file). 0, or 2 after a message. */
static int sweep_flags(sweep_cfg *c, int argc, char **argv) { return cli_args_apply(&sweep_cmd, c, argc, argv, NULL, NULL); }

/* The lists' own rules, after every layer is read: at most SWEEP_MAX_SIZES increasing sizes,
   SWEEP_MAX_SEEDS seeds, DISTILL_EVAL_MAX_K values of k (copied to ks). 0, or 2 after a message. */
static int sweep_lists_check(sweep_cfg *c) {
    int i;
    if (c->sizes.n > SWEEP_MAX_SIZES) return cli_usage_error(&sweep_cmd, "--sizes: at most %d sizes", SWEEP_MAX_SIZES);
    for (i = 1; i < c->sizes.n; i++)
        if (c->sizes.v[i] <= c->sizes.v[i - 1])
            return cli_usage_error(&sweep_cmd, "--sizes must increase (%lld after %lld)", (long long)c->sizes.v[i], (long long)c->sizes.v[i - 1]);
    if (c->seeds.n > SWEEP_MAX_SEEDS) return cli_usage_error(&sweep_cmd, "--seeds: at most %d seeds", SWEEP_MAX_SEEDS);
    if (c->k.n > DISTILL_EVAL_MAX_K) return cli_usage_error(&sweep_cmd, "--k: at most %d values", DISTILL_EVAL_MAX_K);
    for (i = 0; i < c->k.n; i++) c->ks[i] = (int)c->k.v[i];
    c->nk = c->k.n;
    if (c->data[0]) c->world = 0;   /* the user's data: no world (a preset fills data later) */
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

/* OUT/world/world-stamp.json: the generator's version and the options the world was made with.
   A world made by another generator version (or with other world options) is not reused: its
   files may lack fields the runs now read, and runs trained on it do not belong to the new
   world. The text is compared whole. */
static void sweep_world_stamp(const sweep_cfg *c, char *out, size_t cap) {
    snprintf(out, cap, "{\"world-version\": %d, \"train\": %lld, \"direct\": %lld, \"eval\": %lld, "
             "\"world-seed\": %llu, \"error-rate\": %.17g}\n", WORLD_VERSION, (long long)c->n_train,
             (long long)c->n_direct, (long long)c->n_eval, (unsigned long long)c->world_seed, c->error_rate);
}

/* Before a world sweep uses OUT: if OUT/world holds a world without this stamp, one process
   moves the whole folder aside (OUT.old-1, -2, ...: nothing is deleted) and starts again;
   several workers (array tasks, MPI ranks) cannot agree on who moves it, so they stop and say
   so. 0 go on, -1 stop. */
static int sweep_check_world(const sweep_cfg *c, const char *world_dir, int nw) {
    char path[1200], want[512], aside[1200];
    size_t n = 0;
    char *have;
    int k;
    snprintf(path, sizeof path, "%s/eval.jsonl", world_dir);
    if (!sweep_exists(path)) return 0;   /* no world yet */
    sweep_world_stamp(c, want, sizeof want);
    snprintf(path, sizeof path, "%s/world-stamp.json", world_dir);
    have = distill_read_file(path, &n, NULL);
    if (have && n == strlen(want) && !memcmp(have, want, n)) { free(have); return 0; }
    free(have);
    if (nw > 1) {
        fprintf(stderr, "distill sweep: %s was made by another version of the world generator or with other world options "
                        "(%s differs from %s); move %s away and start the workers again\n", world_dir, path, want, c->out);
        return -1;
    }
    for (k = 1; k < 1000; k++) {
        snprintf(aside, sizeof aside, "%s.old-%d", c->out, k);
        if (!sweep_exists(aside)) break;
    }
    if (k == 1000 || rename(c->out, aside) != 0) {
        fprintf(stderr, "distill sweep: %s was made by another world generator version or options, and it could not be "
                        "moved aside to %s: move it away\n", c->out, aside);
        return -1;
    }
    printf("world: %s was made by another world generator version or with other options: moved %s to %s, starting again\n",
           world_dir, c->out, aside);
    return 0;
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

static int sweep_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}
static int sweep_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the shared state of the sweep --------------------------------------------------------- */
#define SWEEP_MAX_LEVELS 8
typedef struct sweep_ctx {
    sweep_cfg cfg;
    distill_tokenizer *tok;
    const distill_chat_template *tmpl;
    distill_data_options dopt;
    const char *maps[SWEEP_MAX_LIST], *filters[SWEEP_MAX_LIST + 2];
    distill_dataset *train_all, *stage0_ds, *control_all;
    distill_dataset *pools[4];          /* easy, hard, correct, incorrect (loaded on first use) */
    int64_t *used_ids;                  /* ids of the rows any sweep subset trains on (sorted) */
    int64_t n_used;
    cli_verifier cv;
    distill_verifier verifier;
    char world_dir[1100], tok_path[SWEEP_STR], runs_dir[1100];
    double t_start;
    char who[32];                      /* "" or "task K: " before each progress line */
    const char *unit;                  /* "task" or, under MPI, "rank" */
} sweep_ctx;

/* One run's numbers (runs/<run>/result.json). */
typedef struct sweep_result {
    char name[96], group[32], from[32];
    int64_t seed, size;
    int64_t eval_problems, eval_samples;
    double pass1, pass_k[DISTILL_EVAL_MAX_K], completion, strict_completion, think_rate, think_open, think_tokens;
    double truncation, pass1_greedy, truncation_greedy;
    int n_levels;
    char level_name[SWEEP_MAX_LEVELS][32];
    double level_pass[SWEEP_MAX_LEVELS];
    double train_loss, train_seconds, eval_seconds;
    int64_t train_tokens, train_steps;
    int ok;
} sweep_result;

/* Per-problem outcomes of a run, from its generations.jsonl (sorted by question id). */
typedef struct sweep_outcome { char *qid, *level; int n, pass; } sweep_outcome;
typedef struct sweep_outcomes { sweep_outcome *p; int n; } sweep_outcomes;

static const char *const sweep_groups[4] = {"easy", "hard", "correct", "incorrect"};

static const char *sweep_group_expr(const sweep_cfg *c, int g) {
    const char *e = g == 0 ? c->easy : g == 1 ? c->hard : g == 2 ? c->correct : c->incorrect;
    return e[0] ? e : NULL;
}

static distill_dataset *sweep_load2(sweep_ctx *x, const char *path, const char *filter, const char *filter2) {
    distill_data_options o = x->dopt;
    distill_error err;
    distill_dataset *ds;
    o.n_filters = x->cfg.filters.n;
    if (filter) x->filters[o.n_filters++] = filter;
    if (filter2) x->filters[o.n_filters++] = filter2;
    ds = distill_dataset_load(path, &o, x->tok, &err);
    if (!ds) fprintf(stderr, "distill sweep: %s\n", err.msg);
    return ds;
}
static distill_dataset *sweep_load(sweep_ctx *x, const char *path, const char *filter) {
    return sweep_load2(x, path, filter, NULL);
}

/* The data options of distill train, from the sweep's flags. 0, or -1 after a message. */
static int sweep_data_options(sweep_ctx *x) {
    const sweep_cfg *c = &x->cfg;
    int i;
    x->dopt = distill_data_options_default();
    if (c->format[0] && distill_data_format_parse(c->format, &x->dopt.format) != 0) {
        fprintf(stderr, "distill sweep: unknown --format '%s'\n", c->format);
        return -1;
    }
    x->tmpl = distill_chat_template_get(c->tmpl);
    if (!x->tmpl) { fprintf(stderr, "distill sweep: unknown --template '%s'\n", c->tmpl); return -1; }
    x->dopt.tmpl = x->tmpl;
    if (c->loss[0]) {
        if (!strcmp(c->loss, "assistant")) x->dopt.loss = DISTILL_LOSS_ASSISTANT;
        else if (!strcmp(c->loss, "last")) x->dopt.loss = DISTILL_LOSS_LAST;
        else if (!strcmp(c->loss, "all")) x->dopt.loss = DISTILL_LOSS_ALL;
        else { fprintf(stderr, "distill sweep: --loss must be assistant, last or all\n"); return -1; }
    }
    for (i = 0; i < c->maps.n; i++) x->maps[i] = c->maps.v[i];
    for (i = 0; i < c->filters.n; i++) x->filters[i] = c->filters.v[i];
    x->dopt.map = x->maps;
    x->dopt.n_map = c->maps.n;
    x->dopt.filters = x->filters;
    x->dopt.n_filters = c->filters.n;
    x->dopt.max_seq = c->max_seq;
    x->dopt.truncate = c->truncate;
    x->dopt.normalize_think = c->normalize_think;
    return 0;
}

/* ---- the world as a data provider ------------------------------------------------------------ */
/* The world's tokenizer: a byte-level BPE trained on the questions and responses of its
   train.jsonl and direct.jsonl (a user brings a tokenizer with --tokenizer). */
static int sweep_world_tokenizer(sweep_ctx *x) {
    static const char *files[2] = {"train.jsonl", "direct.jsonl"};
    char **texts = NULL, path[1200];
    size_t n = 0, cap = 0, i;
    int f, ns, rc = -1;
    distill_tokenizer *tok = NULL;
    distill_error err;
    const char *const *specials = distill_tokenizer_default_specials(&ns);
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
    tok = distill_tokenizer_train((const char *const *)texts, NULL, n, x->cfg.vocab, DISTILL_PATTERN_NONE,
                                     specials, ns, &err);
    if (!tok || distill_tokenizer_save(tok, x->tok_path, &err) != 0) {
        fprintf(stderr, "distill sweep: tokenizer: %s\n", err.msg);
        goto done;
    }
    printf("tokenizer: trained %d tokens on the world's text -> %s\n", distill_tokenizer_vocab_size(tok), x->tok_path);
    rc = 0;
done:
    if (tok) distill_tokenizer_free(tok);
    for (i = 0; i < n; i++) free(texts[i]);
    free(texts);
    return rc;
}

/* ---- one run: the library's trainer, then the library's evaluator ---------------------------- */
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

/* 1 if dir holds a trainer checkpoint (ckpt-<step>.dstl); remove = 1 deletes them instead. */
static int sweep_ckpts(const char *dir, int remove_them) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1600];
    int n = 0;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 10 && !strncmp(e->d_name, "ckpt-", 5) && !strcmp(e->d_name + l - 5, ".dstl")) {
            n++;
            if (remove_them) { snprintf(p, sizeof p, "%s/%s", dir, e->d_name); remove(p); }
        }
    }
    closedir(d);
    return n;
}

/* The training loss a run ends with: the mean over the last quarter of the steps in its
   metrics.jsonl (the trainer keeps that file consistent with the checkpoint it resumed from);
   *tokens gets the tokens trained on. */
static double sweep_final_loss(const char *dir, int64_t *tokens) {
    char p[1400];
    distill_line_reader *rd;
    distill_error err;
    const char *line;
    size_t len, n = 0, cap = 0, i;
    int64_t ln;
    double *v = NULL, s = 0;
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    if (!(rd = distill_line_reader_open(p, 0, &err))) return NAN;
    while (distill_line_reader_next(rd, &line, &len, &ln, &err) == 1) {
        distill_json *j = distill_json_parse(line, len, p, (int)ln, &err);
        const distill_json *l = j ? distill_json_get(j, "loss") : NULL, *t = j ? distill_json_get(j, "tokens") : NULL;
        if (t && t->type == DISTILL_JSON_NUMBER) *tokens = (int64_t)t->num;
        if (l && l->type == DISTILL_JSON_NUMBER) {
            if (n == cap) {
                double *nv = (double *)realloc(v, (cap = cap ? 2 * cap : 256) * sizeof *v);
                if (!nv) { distill_json_free(j); break; }
                v = nv;
            }
            v[n++] = l->num;
        }
        distill_json_free(j);
    }
    distill_line_reader_close(rd);
    for (i = n - (n + 3) / 4; i < n; i++) s += v[i];
    free(v);
    return n ? s / (double)((n + 3) / 4) : NAN;
}

/* Train on ds from init_path (NULL: a fresh model seeded with `seed`) for `epochs`, or for
   `budget` tokens when budget > 0, with the trainer writing checkpoints and metrics into dir (a
   killed run resumes from its newest checkpoint). Returns the model, or NULL after a message. */
static distill_model *sweep_train(sweep_ctx *x, const distill_dataset *ds, const char *init_path, uint64_t seed,
                                  double epochs, double lr, int64_t budget, const char *dir, sweep_result *res) {
    const sweep_cfg *c = &x->cfg;
    distill_error err;
    distill_model *m = NULL;
    distill_loader *L = NULL;
    distill_loader_source ls;
    distill_loader_options lo = distill_loader_options_default();
    distill_train_config tc = distill_train_default();
    distill_trainer *T = NULL;
    const distill_data_stats *st = distill_dataset_stats(ds);
    int seq = c->pack ? c->max_seq : (int)(st->max_len > 0 ? st->max_len : 1);
    char cj[512];
    double t0 = distill_time_seconds();
    if (init_path) m = distill_model_load(init_path, c->batch_rows, seq, NULL, &err);
    else {
        distill_config mc = sweep_model_config(x);
        m = distill_model_create(&mc, c->batch_rows, seq, seed, &err);
    }
    if (!m) { fprintf(stderr, "distill sweep: model: %s\n", err.msg); return NULL; }
    if (m->cfg.vocab_size < distill_tokenizer_vocab_size(x->tok)) {
        fprintf(stderr, "distill sweep: the model's vocabulary (%d) is smaller than the tokenizer's (%d)\n",
                m->cfg.vocab_size, distill_tokenizer_vocab_size(x->tok));
        goto fail;
    }
    lo.batch_rows = c->batch_rows;
    lo.token_budget = c->batch_tokens;
    lo.seq_len = c->pack ? c->max_seq : 0;
    lo.pack = c->pack;
    lo.shuffle = 1;
    lo.seed = seed;
    if (!(L = distill_loader_create(ds, &lo, &err))) { fprintf(stderr, "distill sweep: loader: %s\n", err.msg); goto fail; }
    distill_loader_source_init(&ls, L, ds);
    if (budget > 0) {
        /* a fixed number of training tokens: steps of the epoch's mean tokens per batch */
        double per_batch = (double)st->tokens / (double)(ls.src.batches_per_epoch > 0 ? ls.src.batches_per_epoch : 1);
        tc.max_steps = (int64_t)ceil((double)budget / (per_batch * c->grad_accum));
        if (tc.max_steps < 1) tc.max_steps = 1;
    } else tc.epochs = epochs;
    tc.batch_rows = c->batch_rows;
    tc.grad_accum = c->grad_accum;
    tc.precision = !strcmp(c->precision, "bf16") ? DISTILL_PRECISION_BF16 : DISTILL_PRECISION_FP32;
    tc.optim.lr = (float)lr;
    tc.optim.warmup_steps = -1;
    tc.optim.warmup_ratio = (float)c->warmup_ratio;
    tc.optim.schedule = DISTILL_SCHED_COSINE;
    tc.optim.min_lr_ratio = 0.1f;
    tc.optim.weight_decay = (float)c->weight_decay;
    tc.out_dir = dir;
    tc.save_every = c->save_every;
    tc.save_every_seconds = c->save_every_minutes * 60.0;
    tc.no_lock = 1;                     /* the sweep holds the run folder's lock (sweep_do) */
    tc.stop_flag = cli_stop_flag();
    tc.keep_last = 1;
    tc.progress = 0;
    tc.seed = seed;
    snprintf(cj, sizeof cj, "{\"sweep_run\": \"%s\", \"rows\": %lld, \"epochs\": %.9g, \"token_budget\": %lld, \"lr\": %.9g}",
             res->name, (long long)distill_dataset_size(ds), epochs, (long long)budget, lr);
    tc.config_json = cj;
    if (!(T = distill_trainer_create(m, &ls.src, NULL, &tc, &err))) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto fail; }
    if (sweep_ckpts(dir, 0)) {
        if (distill_trainer_resume(T, dir, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto fail; }
        printf("  %s%-22s resumed at step %lld of %lld\n", x->who, res->name, (long long)distill_trainer_steps_done(T),
               (long long)distill_trainer_total_steps(T));
    }
    if (distill_trainer_run(T, &err) != 0) { fprintf(stderr, "distill sweep: %s: %s\n", res->name, err.msg); goto fail; }
    if (distill_trainer_stopped(T)) {
        fprintf(stderr, "interrupted in run %s at step %lld: saved %s; run the same command to continue\n", res->name,
                (long long)distill_trainer_steps_done(T), distill_trainer_last_checkpoint(T));
        goto fail;
    }
    res->train_steps = distill_trainer_steps_done(T);
    distill_trainer_free(T);
    distill_loader_free(L);
    res->train_loss = sweep_final_loss(dir, &res->train_tokens);
    res->train_seconds = distill_time_seconds() - t0;
    return m;
fail:
    distill_trainer_free(T);
    distill_loader_free(L);
    distill_model_free(m);
    return NULL;
}

/* ---- per-problem outcomes (runs/<run>/generations.jsonl) ------------------------------------- */
static int sweep_outcome_cmp(const void *a, const void *b) {
    return strcmp(((const sweep_outcome *)a)->qid, ((const sweep_outcome *)b)->qid);
}

static void sweep_outcomes_free(sweep_outcomes *o) {
    int i;
    for (i = 0; i < o->n; i++) { free(o->p[i].qid); free(o->p[i].level); }
    free(o->p);
    o->p = NULL;
    o->n = 0;
}

static char *sweep_dup(const char *s) {
    char *d = (char *)malloc(strlen(s) + 1);
    if (d) memcpy(d, s, strlen(s) + 1);
    return d;
}

/* One entry per problem (samples n, passes), sorted by question id. 0, or -1 after a message. */
static int sweep_read_outcomes(const char *path, sweep_outcomes *o) {
    distill_line_reader *rd;
    distill_error err;
    const char *line;
    size_t len;
    int64_t ln;
    int cap = 0, i, k;
    memset(o, 0, sizeof *o);
    if (!(rd = distill_line_reader_open(path, 0, &err))) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    while (distill_line_reader_next(rd, &line, &len, &ln, &err) == 1) {
        distill_json *j = distill_json_parse(line, len, path, (int)ln, &err);
        const distill_json *q, *d, *p;
        char buf[32];
        if (!j) { fprintf(stderr, "distill sweep: %s\n", err.msg); distill_line_reader_close(rd); sweep_outcomes_free(o); return -1; }
        q = distill_json_get(j, "question_id");
        d = distill_json_get(j, "difficulty");
        p = distill_json_get(j, "pass");
        if (o->n == cap) {
            sweep_outcome *np = (sweep_outcome *)realloc(o->p, (size_t)(cap = cap ? 2 * cap : 256) * sizeof *np);
            if (!np) { distill_json_free(j); break; }
            o->p = np;
        }
        snprintf(buf, sizeof buf, "line%lld", (long long)ln);
        o->p[o->n].qid = sweep_dup(q && q->type == DISTILL_JSON_STRING ? q->str : buf);
        o->p[o->n].level = sweep_dup(d && d->type == DISTILL_JSON_STRING ? d->str : "");
        o->p[o->n].n = 1;
        o->p[o->n].pass = p && p->type == DISTILL_JSON_TRUE;
        o->n++;
        distill_json_free(j);
    }
    distill_line_reader_close(rd);
    qsort(o->p, (size_t)o->n, sizeof *o->p, sweep_outcome_cmp);
    for (i = 0, k = 0; i < o->n; i++) {   /* the samples of one problem into one entry */
        if (k > 0 && !strcmp(o->p[k - 1].qid, o->p[i].qid)) {
            o->p[k - 1].n += o->p[i].n;
            o->p[k - 1].pass += o->p[i].pass;
            free(o->p[i].qid);
            free(o->p[i].level);
        } else o->p[k++] = o->p[i];
    }
    o->n = k;
    return 0;
}

/* Paired bootstrap over problems: mean over the problems both runs answered of
   (passes_a / n_a - passes_b / n_b), and the 2.5 % and 97.5 % quantiles of that mean over
   `reps` resamples of the problems with replacement (fixed seed: the report is reproducible).
   Returns the number of problems paired (0: *diff etc. are NaN). */
static int sweep_paired_bootstrap(const sweep_outcomes *a, const sweep_outcomes *b, int reps, double *diff,
                                  double *lo, double *hi) {
    double *d = (double *)malloc((size_t)(a->n ? a->n : 1) * sizeof *d), *means, s = 0;
    int n = 0, i, r;
    uint64_t state = 0x9E3779B97F4A7C15ull;
    *diff = *lo = *hi = NAN;
    if (!d) return 0;
    for (i = 0; i < a->n; i++) {
        sweep_outcome key, *m;
        key.qid = a->p[i].qid;
        m = (sweep_outcome *)bsearch(&key, b->p, (size_t)b->n, sizeof *b->p, sweep_outcome_cmp);
        if (m && m->n > 0 && a->p[i].n > 0) d[n++] = (double)a->p[i].pass / a->p[i].n - (double)m->pass / m->n;
    }
    if (n == 0 || !(means = (double *)malloc((size_t)reps * sizeof *means))) { free(d); return 0; }
    for (i = 0; i < n; i++) s += d[i];
    *diff = s / n;
    for (r = 0; r < reps; r++) {
        double t = 0;
        for (i = 0; i < n; i++) {
            /* splitmix64 */
            uint64_t z = (state += 0x9E3779B97F4A7C15ull);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            t += d[z % (uint64_t)n];
        }
        means[r] = t / n;
    }
    qsort(means, (size_t)reps, sizeof *means, sweep_cmp_double);
    *lo = means[(int)floor(0.025 * (reps - 1))];
    *hi = means[(int)ceil(0.975 * (reps - 1))];
    free(means);
    free(d);
    return n;
}

/* ---- evaluation: distill_eval_model with the sweep's verifier ------------------------------- */
/* 1 when an earlier evaluation left path.partial (problems already scored: resume after them). */
static int sweep_partial(const char *path) {
    char p[1500];
    snprintf(p, sizeof p, "%s.partial", path);
    return sweep_exists(p);
}

static int sweep_eval(sweep_ctx *x, distill_model *m, const char *dir, sweep_result *res) {
    const sweep_cfg *c = &x->cfg;
    distill_eval_model_options eo = distill_eval_model_options_default();
    distill_eval_metrics em;
    distill_error err;
    sweep_outcomes oc;
    char gpath[1400];
    double t0 = distill_time_seconds(), sum[SWEEP_MAX_LEVELS];
    int cnt[SWEEP_MAX_LEVELS], i, j;
    snprintf(gpath, sizeof gpath, "%s/generations.jsonl", dir);
    eo.tmpl = x->tmpl;
    eo.n_samples = c->eval_n;
    eo.ks = c->ks;
    eo.nk = c->nk;
    eo.batch = c->gen_batch;
    eo.gen.max_new_tokens = c->max_new;
    eo.gen.temperature = (float)c->temperature;
    eo.gen.top_p = (float)c->top_p;
    eo.gen.top_k = c->top_k;
    eo.gen.seed = 1;
    eo.verifier = x->verifier.fn ? &x->verifier : NULL;
    eo.out_jsonl = gpath;
    eo.max_problems = c->eval_max_problems;
    eo.metrics = &em;
    eo.stop_flag = cli_stop_flag();
    res->pass1_greedy = res->truncation_greedy = NAN;
    if (c->eval_greedy && c->temperature > 0) {
        /* the same problems, one greedy sample each, beside the sampled ones */
        distill_eval_model_options go = eo;
        char gg[1400];
        snprintf(gg, sizeof gg, "%s/generations-greedy.jsonl", dir);
        go.n_samples = 1;
        go.nk = 1;
        go.gen.temperature = 0;
        go.out_jsonl = gg;
        go.resume = sweep_partial(gg);
        if (distill_eval_model(m, x->tok, c->eval_data, &go, NULL, &err) != 0) {
            fprintf(stderr, "distill sweep: eval (greedy): %s\n", err.msg);
            return -1;
        }
        res->pass1_greedy = em.verified ? em.pass_at_1 : NAN;
        res->truncation_greedy = em.n ? (double)em.n_truncated / (double)em.n : NAN;
    }
    eo.resume = sweep_partial(gpath);   /* an evaluation a signal or a kill cut short continues */
    if (distill_eval_model(m, x->tok, c->eval_data, &eo, NULL, &err) != 0) {
        fprintf(stderr, "distill sweep: eval: %s\n", err.msg);
        return -1;
    }
    res->pass1 = em.verified ? em.pass_at_1 : NAN;
    for (i = 0; i < em.nk && i < DISTILL_EVAL_MAX_K; i++) res->pass_k[i] = em.verified ? em.pass_at_k[i] : NAN;
    res->completion = em.completion_rate;
    res->strict_completion = em.strict_completion_rate;
    res->think_rate = em.think_both_rate;
    res->think_open = em.think_open_rate;
    res->think_tokens = em.think_tokens_mean;
    res->eval_problems = em.n_problems;
    res->eval_samples = em.n;
    res->truncation = em.n ? (double)em.n_truncated / (double)em.n : NAN;
    /* pass@1 per difficulty: the mean over that level's problems of passes / samples */
    if (sweep_read_outcomes(gpath, &oc) != 0) return -1;
    res->n_levels = 0;
    for (i = 0; i < oc.n; i++) {
        if (!oc.p[i].level[0]) continue;
        for (j = 0; j < res->n_levels && strcmp(res->level_name[j], oc.p[i].level); j++) {}
        if (j == res->n_levels) {
            if (j == SWEEP_MAX_LEVELS) continue;
            snprintf(res->level_name[j], sizeof res->level_name[j], "%s", oc.p[i].level);
            sum[j] = 0;
            cnt[j] = 0;
            res->n_levels++;
        }
        sum[j] += (double)oc.p[i].pass / oc.p[i].n;
        cnt[j]++;
    }
    for (j = 0; j < res->n_levels; j++) res->level_pass[j] = em.verified ? sum[j] / cnt[j] : NAN;
    sweep_outcomes_free(&oc);
    res->eval_seconds = distill_time_seconds() - t0;
    return 0;
}

/* ---- result.json ------------------------------------------------------------------------------ */
static void sweep_num(FILE *f, const char *key, double v, int last) {
    fprintf(f, "\"%s\": ", key);
    if (v == v) fprintf(f, "%.6g", v);
    else fputs("null", f);
    fputs(last ? "" : ", ", f);
}

static int sweep_write_result(const sweep_ctx *x, const char *path, const sweep_result *r) {
    distill_atomic_file af;
    distill_error err;
    int i;
    if (distill_atomic_open(&af, path, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    fprintf(af.f, "{\"name\": \"%s\", \"group\": \"%s\", \"from\": \"%s\", \"seed\": %lld, \"size\": %lld, "
                  "\"eval_problems\": %lld, \"eval_samples\": %lld, ",
            r->name, r->group, r->from, (long long)r->seed, (long long)r->size, (long long)r->eval_problems,
            (long long)r->eval_samples);
    sweep_num(af.f, "pass_at_1", r->pass1, 0);
    fputs("\"pass_at_k\": {", af.f);
    for (i = 0; i < x->cfg.nk; i++) {
        char k[32];
        snprintf(k, sizeof k, "%d", x->cfg.ks[i]);
        sweep_num(af.f, k, r->pass_k[i], i == x->cfg.nk - 1);
    }
    fputs("}, \"pass_at_1_by_difficulty\": {", af.f);
    for (i = 0; i < r->n_levels; i++) {
        distill_json_write_string(af.f, r->level_name[i], strlen(r->level_name[i]));
        fprintf(af.f, ": ");
        if (r->level_pass[i] == r->level_pass[i]) fprintf(af.f, "%.6g", r->level_pass[i]);
        else fputs("null", af.f);
        if (i + 1 < r->n_levels) fputs(", ", af.f);
    }
    fputs("}, ", af.f);
    sweep_num(af.f, "completion_rate", r->completion, 0);
    sweep_num(af.f, "strict_completion_rate", r->strict_completion, 0);
    sweep_num(af.f, "think_rate", r->think_rate, 0);
    sweep_num(af.f, "think_open_rate", r->think_open, 0);
    sweep_num(af.f, "think_tokens_mean", r->think_tokens, 0);
    sweep_num(af.f, "truncation_rate", r->truncation, 0);
    sweep_num(af.f, "pass_at_1_greedy", r->pass1_greedy, 0);
    sweep_num(af.f, "truncation_rate_greedy", r->truncation_greedy, 0);
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

static int sweep_read_result(const sweep_ctx *x, const char *path, sweep_result *r) {
    distill_error err;
    distill_json *j = distill_json_parse_file(path, &err);
    const distill_json *v;
    size_t i;
    if (!j) return -1;
    memset(r, 0, sizeof *r);
    if ((v = distill_json_get(j, "name")) && v->type == DISTILL_JSON_STRING) snprintf(r->name, sizeof r->name, "%s", v->str);
    if ((v = distill_json_get(j, "group")) && v->type == DISTILL_JSON_STRING) snprintf(r->group, sizeof r->group, "%s", v->str);
    if ((v = distill_json_get(j, "from")) && v->type == DISTILL_JSON_STRING) snprintf(r->from, sizeof r->from, "%s", v->str);
    r->seed = (int64_t)sweep_jnum(j, "seed");
    r->size = (int64_t)sweep_jnum(j, "size");
    r->eval_problems = (int64_t)sweep_jnum(j, "eval_problems");
    r->eval_samples = (int64_t)sweep_jnum(j, "eval_samples");
    r->pass1 = sweep_jnum(j, "pass_at_1");
    for (i = 0; i < (size_t)x->cfg.nk; i++) {
        char k[32];
        snprintf(k, sizeof k, "%d", x->cfg.ks[i]);
        r->pass_k[i] = (v = distill_json_get(j, "pass_at_k")) ? sweep_jnum(v, k) : NAN;
    }
    if ((v = distill_json_get(j, "pass_at_1_by_difficulty")) && v->type == DISTILL_JSON_OBJECT)
        for (i = 0; i < v->len && r->n_levels < SWEEP_MAX_LEVELS; i++, r->n_levels++) {
            snprintf(r->level_name[r->n_levels], sizeof r->level_name[0], "%s", v->keys[i]);
            r->level_pass[r->n_levels] = v->items[i].type == DISTILL_JSON_NUMBER ? v->items[i].num : NAN;
        }
    r->completion = sweep_jnum(j, "completion_rate");
    r->strict_completion = sweep_jnum(j, "strict_completion_rate");
    r->think_rate = sweep_jnum(j, "think_rate");
    r->think_open = sweep_jnum(j, "think_open_rate");
    r->think_tokens = sweep_jnum(j, "think_tokens_mean");
    r->truncation = sweep_jnum(j, "truncation_rate");
    r->pass1_greedy = sweep_jnum(j, "pass_at_1_greedy");
    r->truncation_greedy = sweep_jnum(j, "truncation_rate_greedy");
    r->train_loss = sweep_jnum(j, "train_loss");
    r->train_tokens = (int64_t)sweep_jnum(j, "train_tokens");
    r->train_steps = (int64_t)sweep_jnum(j, "train_steps");
    r->train_seconds = sweep_jnum(j, "train_seconds");
    r->eval_seconds = sweep_jnum(j, "eval_seconds");
    r->ok = 1;
    distill_json_free(j);
    return 0;
}

/* ---- the run list, and which worker runs what -------------------------------------------------
   The sweep is a fixed list of runs derived from the configuration alone: stage 0, then every
   seed x size, then the second experiments. A run starts from at most one other run's model
   (stage 0's, or the largest subset of its seed). Each worker w of n (an MPI rank, or a Slurm
   array task) runs the runs assigned to it, in list order, and before a run whose model comes
   from another worker it waits for that run's result.json (written last, atomically).

   The assignment is a greedy list schedule over estimated costs (training tokens plus
   generation). Runs are placed stage 0 first, then the runs that start from stage 0 (largest
   first), then those that start from a largest subset; each goes to the worker that would finish
   it first, among the workers whose id is not below its dependency's owner. Stage 0 therefore
   goes to worker 0, and a worker only ever waits for workers with a lower id: no cycle of
   waits, and when a job array is throttled (Slurm starts array tasks in id order) the lowest
   running task never waits for a task that has not started, so the sweep always progresses.
   The estimates only balance the work: the results do not depend on the assignment (each run
   is deterministic given its inputs, whichever process runs it). */
enum { SWEEP_STAGE0, SWEEP_SUBSET, SWEEP_SECOND, SWEEP_BUDGET, SWEEP_CONTROL };

typedef struct sweep_job {
    char name[96];
    const char *group, *from;
    int kind, s, k, g, from_largest;   /* seed index, size index, second-experiment group */
    int64_t seed, size;
    int keep_model;                    /* a later run starts from its model.dstl */
    int dep;                           /* the run whose model it starts from; -1: none */
    int owner;                         /* the worker that runs it */
    int level;                         /* 0 stage 0, 1 starts from stage 0, 2 from a largest subset */
    int64_t cost, start, end;          /* estimated work; its span in the simulated schedule */
} sweep_job;

/* Stage 0 is trained (from --stage0-data) or is the --init model as it is. */
static int sweep_stage0_trained(const sweep_cfg *c) { return c->stage0_data[0] != 0; }

/* The second-stage groups that run: both members of a pair must be given. */
static int sweep_group_on(const sweep_cfg *c, int g) {
    return c->split_size > 0 && sweep_group_expr(c, g) && sweep_group_expr(c, g ^ 1);
}

/* Rough work of one run in tokens: training (a trace ~100 tokens) plus generation (a generated
   token costs ~4 trained ones). */
static int64_t sweep_cost(const sweep_cfg *c, int64_t rows, double epochs, int64_t budget) {
    double train = budget > 0 ? (double)budget : (double)rows * 100.0 * epochs;
    double problems = c->eval_max_problems > 0 ? (double)c->eval_max_problems : (double)c->n_eval;
    return (int64_t)(train + 4.0 * problems * c->eval_n * c->max_new);
}

/* The order runs are placed in, and the order a worker runs them (insertion sorts: a sweep has
   at most a few hundred runs). */
static int sweep_sched_before(const sweep_job *jb, int a, int b) {
    if (jb[a].level != jb[b].level) return jb[a].level < jb[b].level;
    if (jb[a].cost != jb[b].cost) return jb[a].cost > jb[b].cost;
    return a < b;
}
static int sweep_exec_before(const sweep_job *jb, int a, int b) {
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
    int cap = 1 + c->seeds.n * (3 * c->sizes.n + 8), n = 0, s, k, g, from, w, i, j;
    sweep_job *jb = (sweep_job *)calloc((size_t)cap, sizeof *jb);
    int64_t *busy = (int64_t *)calloc((size_t)n_workers, sizeof(int64_t));
    int *idx = (int *)calloc((size_t)cap, sizeof(int));
    int from_lo = strcmp(c->second_from, "largest") ? 0 : 1, from_hi = strcmp(c->second_from, "stage0") ? 1 : 0;
    if (!jb || !busy || !idx) { free(jb); free(busy); free(idx); return NULL; }
    snprintf(jb[0].name, sizeof jb[0].name, "stage0");
    jb[0].group = "stage0"; jb[0].from = sweep_stage0_trained(c) ? "scratch" : "init"; jb[0].kind = SWEEP_STAGE0;
    jb[0].keep_model = sweep_stage0_trained(c); jb[0].dep = -1;
    jb[0].cost = sweep_stage0_trained(c) ? sweep_cost(c, c->n_direct / 2, c->stage0_epochs, 0) : sweep_cost(c, 0, 0, 0);
    n = 1;
    for (s = 0; s < c->seeds.n; s++)
        for (k = 0; k < c->sizes.n; k++, n++) {
            snprintf(jb[n].name, sizeof jb[n].name, "s%llu_n%lld", (unsigned long long)c->seeds.v[s], (long long)c->sizes.v[k]);
            jb[n].group = "sweep"; jb[n].from = "stage0"; jb[n].kind = SWEEP_SUBSET;
            jb[n].s = s; jb[n].k = k; jb[n].seed = (int64_t)c->seeds.v[s]; jb[n].size = c->sizes.v[k];
            jb[n].keep_model = k == c->sizes.n - 1 && from_hi == 1 && s < c->second_seeds &&
                               (sweep_group_on(c, 0) || sweep_group_on(c, 2));
            jb[n].dep = 0; jb[n].level = 1;
            jb[n].cost = sweep_cost(c, c->sizes.v[k], c->epochs, c->token_budget);
        }
    for (s = 0; s < c->seeds.n && s < c->second_seeds; s++)
        for (from = from_lo; from <= from_hi; from++)
            for (g = 0; g < 4; g++) {
                if (!sweep_group_on(c, g)) continue;
                snprintf(jb[n].name, sizeof jb[n].name, "s%llu_%s_from%s", (unsigned long long)c->seeds.v[s],
                         sweep_groups[g], from ? "L" : "0");
                jb[n].group = sweep_groups[g]; jb[n].from = from ? "largest" : "stage0"; jb[n].kind = SWEEP_SECOND;
                jb[n].s = s; jb[n].g = g; jb[n].from_largest = from;
                jb[n].seed = (int64_t)c->seeds.v[s]; jb[n].size = c->split_size;
                jb[n].dep = from ? 1 + s * c->sizes.n + c->sizes.n - 1 : 0;
                jb[n].level = 1 + from;
                jb[n].cost = sweep_cost(c, c->split_size, c->epochs, c->token_budget);
                n++;
            }
    /* the controls: the same subsets trained on a fixed token budget, and seen as answers only */
    for (s = 0; s < c->seeds.n && s < c->arm_seeds; s++)
        for (g = 0; g < 2; g++)
            for (k = 0; k < c->sizes.n; k++) {
                if (g == 0 ? c->budget_arm <= 0 : c->control_maps.n == 0) continue;
                snprintf(jb[n].name, sizeof jb[n].name, "s%llu_n%lld_%s", (unsigned long long)c->seeds.v[s],
                         (long long)c->sizes.v[k], g ? "direct" : "budget");
                jb[n].group = g ? "direct" : "budget"; jb[n].from = "stage0"; jb[n].kind = g ? SWEEP_CONTROL : SWEEP_BUDGET;
                jb[n].s = s; jb[n].k = k; jb[n].seed = (int64_t)c->seeds.v[s]; jb[n].size = c->sizes.v[k];
                jb[n].dep = 0; jb[n].level = 1;
                jb[n].cost = g ? sweep_cost(c, c->sizes.v[k] / 5, c->epochs, 0) : sweep_cost(c, 0, 0, c->budget_arm);
                n++;
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

/* Finished: its result.json, and its model when a later run starts from it. */
static int sweep_done(const sweep_ctx *x, const sweep_job *jb) {
    char p[1400];
    sweep_run_path(x, jb, "result.json", p, sizeof p);
    if (!sweep_exists(p)) return 0;
    sweep_run_path(x, jb, "model.dstl", p, sizeof p);
    return !jb->keep_model || sweep_exists(p);
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
                    x->who, x->cfg.wait_timeout, jb->name, x->unit, jb->owner, rpath, jb->keep_model ? " or its model.dstl" : "",
                    x->unit, jb->owner);
            return -1;
        }
        if (!said) { printf("  %swaiting for run %s (%s %d)\n", x->who, jb->name, x->unit, jb->owner); said = 1; }
        sweep_sleep(1.0);
    }
    if (said) printf("  %s%s is done (waited %.0f s)\n", x->who, jb->name, distill_time_seconds() - t0);
    return 0;
}

static int64_t sweep_row_id(const distill_dataset *ds, int64_t i) {
    distill_row r;
    distill_dataset_row(ds, i, &r);
    return r.id;
}

/* The rows every sweep subset trains on (the largest subset of each seed holds all smaller
   ones): the second stage's disjoint pools leave them out. */
static int sweep_used_ids(sweep_ctx *x) {
    const sweep_cfg *c = &x->cfg;
    distill_error err;
    int s;
    int64_t i, n = 0, k = 0, max = c->sizes.v[c->sizes.n - 1];
    if (x->used_ids) return 0;
    x->used_ids = (int64_t *)malloc((size_t)(max * c->seeds.n + 1) * sizeof(int64_t));
    if (!x->used_ids) return -1;
    for (s = 0; s < c->seeds.n; s++) {
        distill_select_options so;
        distill_dataset *sub;
        memset(&so, 0, sizeof so);
        so.seed = c->seeds.v[s];
        so.n = max;
        if (!(sub = distill_dataset_select(x->train_all, &so, &err))) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
        for (i = 0; i < distill_dataset_size(sub); i++) {
            distill_row row;
            distill_dataset_row(sub, i, &row);
            x->used_ids[n++] = row.id;
        }
        distill_dataset_free(sub);
    }
    /* sorted, each id once */
    qsort(x->used_ids, (size_t)n, sizeof(int64_t), sweep_cmp_i64);
    for (i = 0; i < n; i++) if (k == 0 || x->used_ids[k - 1] != x->used_ids[i]) x->used_ids[k++] = x->used_ids[i];
    x->n_used = k;
    return 0;
}

/* A second-stage pool: the rows of --data matching the group's expression, minus the rows the
   sweep used when --second-pool disjoint. Checks it holds --split-size rows. */
static int sweep_pool(sweep_ctx *x, int g) {
    const sweep_cfg *c = &x->cfg;
    distill_select_options so;
    distill_dataset *avail;
    distill_error err;
    int disjoint = !strcmp(c->second_pool, "disjoint");
    int64_t n;
    if (x->pools[g]) return 0;
    if (!(x->pools[g] = sweep_load(x, c->data, sweep_group_expr(c, g)))) return -1;
    if (disjoint && sweep_used_ids(x) != 0) return -1;
    memset(&so, 0, sizeof so);
    so.exclude = disjoint ? x->used_ids : NULL;
    so.n_exclude = disjoint ? x->n_used : 0;
    if (!(avail = distill_dataset_select(x->pools[g], &so, &err))) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    n = distill_dataset_size(avail);
    distill_dataset_free(avail);
    if (n < c->split_size) {
        fprintf(stderr, "distill sweep: the '%s' pool (%s) has %lld traces%s, fewer than --split-size %lld. Give more data, "
                        "smaller --sizes or --split-size%s.\n", sweep_groups[g], sweep_group_expr(c, g), (long long)n,
                disjoint ? " that no sweep subset uses (--second-pool disjoint)" : "", (long long)c->split_size,
                disjoint ? ", or --second-pool overlap" : "");
        return -1;
    }
    return 0;
}

/* The model a run starts from. */
static void sweep_init_path(const sweep_ctx *x, const sweep_job *jobs, const sweep_job *jb, char *out, size_t cap) {
    if (jb->kind == SWEEP_STAGE0) snprintf(out, cap, "%s", x->cfg.init);
    else if (jb->dep > 0 || sweep_stage0_trained(&x->cfg)) sweep_run_path(x, &jobs[jb->dep], "model.dstl", out, cap);
    else snprintf(out, cap, "%s", x->cfg.init);
}

/* The direct-answer control's rows: the records of the sweep subset (seed, size), read through
   --control-map (the same ids; a record whose control view was dropped is missing). */
static distill_dataset *sweep_control_rows(sweep_ctx *x, const sweep_job *jb, const char *manifest) {
    distill_select_options so;
    distill_dataset *sub, *out;
    distill_error err;
    int64_t *keep, *ex, i, n_keep, n_ex = 0, n_all;
    if (!x->control_all) {
        distill_data_options o = x->dopt;
        const char *maps[SWEEP_MAX_LIST];
        int q;
        for (q = 0; q < x->cfg.control_maps.n; q++) maps[q] = x->cfg.control_maps.v[q];
        o.map = maps;
        o.n_map = x->cfg.control_maps.n;
        if (!(x->control_all = distill_dataset_load(x->cfg.data, &o, x->tok, &err))) {
            fprintf(stderr, "distill sweep: --control-map: %s\n", err.msg);
            return NULL;
        }
    }
    memset(&so, 0, sizeof so);
    so.seed = (uint64_t)jb->seed;
    so.n = jb->size;
    if (!(sub = distill_dataset_select(x->train_all, &so, &err))) { fprintf(stderr, "distill sweep: %s\n", err.msg); return NULL; }
    n_keep = distill_dataset_size(sub);
    n_all = distill_dataset_size(x->control_all);
    keep = (int64_t *)malloc((size_t)(n_keep + 1) * sizeof *keep);
    ex = (int64_t *)malloc((size_t)(n_all + 1) * sizeof *ex);
    if (!keep || !ex) { free(keep); free(ex); distill_dataset_free(sub); return NULL; }
    for (i = 0; i < n_keep; i++) keep[i] = sweep_row_id(sub, i);
    distill_dataset_free(sub);
    qsort(keep, (size_t)n_keep, sizeof *keep, sweep_cmp_i64);
    for (i = 0; i < n_all; i++) {
        int64_t id = sweep_row_id(x->control_all, i);
        if (!bsearch(&id, keep, (size_t)n_keep, sizeof *keep, sweep_cmp_i64)) ex[n_ex++] = id;
    }
    memset(&so, 0, sizeof so);
    so.exclude = ex;
    so.n_exclude = n_ex;
    so.manifest = manifest;
    out = distill_dataset_select(x->control_all, &so, &err);
    if (!out) fprintf(stderr, "distill sweep: %s\n", err.msg);
    free(keep);
    free(ex);
    return out;
}

/* Run job j (or reuse its result): its training set, the model it starts from, the trainer,
   the evaluator, result.json. */
static int sweep_do(sweep_ctx *x, const sweep_job *jobs, int j, sweep_result *res) {
    const sweep_cfg *c = &x->cfg;
    const sweep_job *jb = &jobs[j];
    distill_dataset *sub = NULL;
    distill_model *m = NULL;
    distill_error err;
    char dir[1300], rpath[1400], mpath[1400], mani[1400], init[1400];
    int rc = -1, train = jb->kind != SWEEP_STAGE0 || sweep_stage0_trained(c), lock = -1;
    snprintf(dir, sizeof dir, "%s/%s", x->runs_dir, jb->name);
    snprintf(rpath, sizeof rpath, "%s/result.json", dir);
    snprintf(mpath, sizeof mpath, "%s/model.dstl", dir);
    snprintf(mani, sizeof mani, "%s/manifest.json", dir);
    if (sweep_done(x, jb) && sweep_read_result(x, rpath, res) == 0) {
        printf("  %s%-22s reused (%s)\n", x->who, jb->name, rpath);
        return 0;
    }
    memset(res, 0, sizeof *res);
    snprintf(res->name, sizeof res->name, "%s", jb->name);
    snprintf(res->group, sizeof res->group, "%s", jb->group);
    snprintf(res->from, sizeof res->from, "%s", jb->from);
    res->seed = jb->seed;
    res->size = jb->kind == SWEEP_STAGE0 ? 0 : jb->size;
    res->train_loss = NAN;
    if (sweep_mkdir(dir) != 0) { fprintf(stderr, "distill sweep: cannot create %s\n", dir); return -1; }
    /* one process per run: array tasks and ranks share the sweep folder, never a run */
    if ((lock = distill_dir_lock(dir, &err)) < 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    sweep_clean_run_dir(dir);
    sweep_init_path(x, jobs, jb, init, sizeof init);
    if (jb->kind == SWEEP_CONTROL) {
        if (!(sub = sweep_control_rows(x, jb, mani))) goto done;
    } else if (jb->kind != SWEEP_STAGE0) {
        distill_select_options so;
        int disjoint = jb->kind == SWEEP_SECOND && !strcmp(c->second_pool, "disjoint");
        if (jb->kind == SWEEP_SECOND && sweep_pool(x, jb->g) != 0) goto done;
        memset(&so, 0, sizeof so);
        so.seed = (uint64_t)jb->seed;
        so.n = jb->size;
        so.manifest = mani;
        so.exclude = disjoint ? x->used_ids : NULL;
        so.n_exclude = disjoint ? x->n_used : 0;
        sub = distill_dataset_select(jb->kind == SWEEP_SECOND ? x->pools[jb->g] : x->train_all, &so, &err);
        if (!sub) { fprintf(stderr, "distill sweep: %s: %s\n", jb->name, err.msg); goto done; }
    }
    if (train)
        m = sweep_train(x, sub ? sub : x->stage0_ds, jb->kind == SWEEP_STAGE0 ? NULL : init,
                        (uint64_t)jb->seed * 1000003u + (uint64_t)jb->size, jb->kind == SWEEP_STAGE0 ? c->stage0_epochs : c->epochs,
                        jb->kind == SWEEP_STAGE0 ? c->stage0_lr : c->lr,
                        jb->kind == SWEEP_STAGE0 || jb->kind == SWEEP_CONTROL ? 0 : jb->kind == SWEEP_BUDGET ? c->budget_arm : c->token_budget,
                        dir, res);
    else if (!(m = distill_model_load(init, 1, 1, NULL, &err)))
        fprintf(stderr, "distill sweep: --init: %s\n", err.msg);
    if (!m) goto done;
    /* the run's model carries its tokenizer and template: `distill eval/generate --model` need nothing else */
    if (distill_model_set_tokenizer(m, x->tok, c->tmpl, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
    if (jb->keep_model && distill_checkpoint_write(mpath, m, 0, NULL, NULL, 0, &err) != 0) {
        fprintf(stderr, "distill sweep: %s\n", err.msg);
        goto done;
    }
    if (sweep_eval(x, m, dir, res) != 0 || sweep_write_result(x, rpath, res) != 0) goto done;
    sweep_ckpts(dir, 1);   /* the run is finished: its training checkpoints are not needed */
    res->ok = 1;
    printf("  %s%-22s %6lld rows %6lld steps %9lld tok  loss %.3f %6.1fs | pass@1 %.3f  complete %.2f  think %.2f  "
           "trunc %.2f %5.1fs  [%.0fs]\n",
           x->who, jb->name, (long long)(sub ? distill_dataset_size(sub) : train ? distill_dataset_size(x->stage0_ds) : 0),
           (long long)res->train_steps, (long long)res->train_tokens, res->train_loss, res->train_seconds, res->pass1,
           res->completion, res->think_rate, res->truncation, res->eval_seconds, distill_time_seconds() - x->t_start);
    fflush(stdout);
    rc = 0;
done:
    distill_model_free(m);
    distill_dataset_free(sub);
    distill_dir_unlock(lock);
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

#define SWEEP_BOOT 2000
/* A paired comparison as text: "+0.120 [+0.050, +0.190] resolved" (the interval excludes 0). */
static void sweep_cmp_text(char *buf, size_t cap, double d, double lo, double hi) {
    if (d != d) { snprintf(buf, cap, "-"); return; }
    snprintf(buf, cap, "%+.3f [%+.3f, %+.3f]%s", d, lo, hi, lo > 0 || hi < 0 ? " resolved" : "");
}

/* Outcomes pooled over runs (the seeds of one arm): per problem, the samples and passes summed,
   so a problem's pass rate is its mean over the seeds (each seed has the same samples). A paired
   bootstrap over these pooled problems resamples problems, keeping each problem's seeds together. */
static int sweep_pool_outcomes(const sweep_outcomes *const *runs, int n, sweep_outcomes *out) {
    int i, k, m, cap = 0;
    memset(out, 0, sizeof *out);
    for (i = 0; i < n; i++) cap += runs[i]->n;
    if (!(out->p = (sweep_outcome *)calloc((size_t)(cap ? cap : 1), sizeof *out->p))) return -1;
    for (i = 0; i < n; i++)
        for (k = 0; k < runs[i]->n; k++) {
            for (m = 0; m < out->n && strcmp(out->p[m].qid, runs[i]->p[k].qid); m++) {}
            if (m == out->n) {
                out->p[m].qid = sweep_dup(runs[i]->p[k].qid);
                out->p[m].level = sweep_dup(runs[i]->p[k].level);
                if (!out->p[m].qid || !out->p[m].level) { out->n++; sweep_outcomes_free(out); return -1; }
                out->n++;
            }
            out->p[m].n += runs[i]->p[k].n;
            out->p[m].pass += runs[i]->p[k].pass;
        }
    qsort(out->p, (size_t)out->n, sizeof *out->p, sweep_outcome_cmp);
    return 0;
}

typedef struct sweep_report_in {
    const sweep_result *r;
    sweep_outcomes *oc;          /* per run */
    double *delta, *lo, *hi;     /* per run: pass@1 minus stage 0's, paired 95 % interval */
    double *pd, *plo, *phi;      /* easy and correct runs: minus their hard / incorrect partner */
    int *partner;                /* that partner's index, or -1 */
    int nr;
} sweep_report_in;

static int sweep_find(const sweep_report_in *in, const char *group, const char *from, int64_t seed) {
    int i;
    for (i = 0; i < in->nr; i++)
        if (!strcmp(in->r[i].group, group) && !strcmp(in->r[i].from, from) && in->r[i].seed == seed) return i;
    return -1;
}

/* A dashed control line with markers. */
static void sweep_dashed(distill_plot_series *s, const char *label, const double *x, const double *y, int n,
                         const char *color) {
    memset(s, 0, sizeof *s);
    s->label = label;
    s->x = x;
    s->y = y;
    s->n = n;
    s->width = 2;
    s->color = color;
    s->dashed = 1;
    s->markers = 1;
}

static int sweep_find_size(const sweep_report_in *in, const char *group, int64_t seed, int64_t size) {
    int i;
    for (i = 0; i < in->nr; i++)
        if (!strcmp(in->r[i].group, group) && in->r[i].seed == seed && in->r[i].size == size) return i;
    return -1;
}

/* OUT/outcomes.csv (run, decoding, problem, difficulty label, numeric level when the eval data
   has one, samples, passes: every comparison re-analysable without the generations) and
   OUT/manifests/<run>.txt (the record ids each run trained on, one per line: distill_row.id, the
   0-based record index in --data). */
static int sweep_write_outcomes(sweep_ctx *x, const sweep_result *r, int nr) {
    const sweep_cfg *c = &x->cfg;
    distill_atomic_file af, lf;
    distill_error err;
    distill_line_reader *rd;
    const char *line;
    size_t len;
    int64_t ln;
    char path[1400], **qid = NULL;
    int *lvl = NULL, nq = 0, cap = 0, i, d, k, have_lf = 0, rc = -1;
    /* numeric levels from the eval data ("difficulty": 3), when it has them */
    if ((rd = distill_line_reader_open(c->eval_data, 0, &err))) {
        while (distill_line_reader_next(rd, &line, &len, &ln, &err) == 1) {
            distill_json *j = distill_json_parse(line, len, c->eval_data, (int)ln, &err);
            const distill_json *q = j ? distill_json_get(j, "id") : NULL, *v = j ? distill_json_get(j, "difficulty") : NULL;
            if (j && q && q->type == DISTILL_JSON_STRING && v && v->type == DISTILL_JSON_NUMBER) {
                if (nq == cap) {
                    char **nqid = (char **)realloc(qid, (size_t)(cap = cap ? 2 * cap : 256) * sizeof *qid);
                    int *nl = nqid ? (int *)realloc(lvl, (size_t)cap * sizeof *lvl) : NULL;
                    if (nqid) qid = nqid;
                    if (!nqid || !nl) { distill_json_free(j); break; }
                    lvl = nl;
                }
                qid[nq] = sweep_dup(q->str);
                lvl[nq++] = (int)v->num;
            }
            distill_json_free(j);
        }
        distill_line_reader_close(rd);
    }
    snprintf(path, sizeof path, "%s/outcomes.csv", c->out);
    if (distill_atomic_open(&af, path, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
    fprintf(af.f, "run,decoding,problem_id,difficulty,level,samples,passes\n");
    /* and, when the eval data has numeric levels, pass@1 per level (sampled) in OUT/levels.md */
    if (nq > 0) {
        snprintf(path, sizeof path, "%s/levels.md", c->out);
        if (distill_atomic_open(&lf, path, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); distill_atomic_abort(&af); goto done; }
        have_lf = 1;
        fprintf(lf.f, "# pass@1 by level (sampled decoding; from outcomes.csv)\n\n| run | level 1 | level 2 | level 3 | level 4 | level 5 |\n|---|---|---|---|---|---|\n");
    }
    for (i = 0; i < nr; i++)
        for (d = 0; d < 2; d++) {   /* each generations file read once: its outcome rows, its level sums */
            sweep_outcomes oc;
            char gp[1400];
            double ps[6] = {0}, ns[6] = {0};
            snprintf(gp, sizeof gp, "%s/%s/%s", x->runs_dir, r[i].name, d ? "generations-greedy.jsonl" : "generations.jsonl");
            if (!sweep_exists(gp) || sweep_read_outcomes(gp, &oc) != 0) continue;
            for (k = 0; k < oc.n; k++) {
                int q, level = -1;
                for (q = 0; q < nq; q++) if (!strcmp(qid[q], oc.p[k].qid)) { level = lvl[q]; break; }
                fprintf(af.f, "%s,%s,%s,%s,", r[i].name, d ? "greedy" : "sampled", oc.p[k].qid, oc.p[k].level);
                if (level >= 0) fprintf(af.f, "%d", level);
                fprintf(af.f, ",%d,%d\n", oc.p[k].n, oc.p[k].pass);
                if (level >= 1 && level <= 5) { ps[level] += oc.p[k].pass; ns[level] += oc.p[k].n; }
            }
            if (have_lf && d == 0) {
                fprintf(lf.f, "| %s |", r[i].name);
                for (k = 1; k <= 5; k++) {
                    if (ns[k] > 0) fprintf(lf.f, " %.3f |", ps[k] / ns[k]);
                    else fprintf(lf.f, " - |");
                }
                fputc('\n', lf.f);
            }
            sweep_outcomes_free(&oc);
        }
    if (have_lf && distill_atomic_commit(&lf, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); distill_atomic_abort(&af); goto done; }
    if (distill_atomic_commit(&af, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
    snprintf(path, sizeof path, "%s/manifests", c->out);
    if (sweep_mkdir(path) != 0) { fprintf(stderr, "distill sweep: cannot create %s\n", path); goto done; }
    for (i = 0; i < nr; i++) {
        char mp[1400];
        distill_json *m;
        const distill_json *rows;
        snprintf(mp, sizeof mp, "%s/%s/manifest.json", x->runs_dir, r[i].name);
        if (!sweep_exists(mp)) continue;
        if (!(m = distill_json_parse_file(mp, &err))) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
        rows = distill_json_get(m, "rows");
        snprintf(path, sizeof path, "%s/manifests/%s.txt", c->out, r[i].name);
        if (rows && rows->type == DISTILL_JSON_ARRAY && distill_atomic_open(&af, path, &err) == 0) {
            for (k = 0; k < (int)rows->len; k++) fprintf(af.f, "%lld\n", (long long)rows->items[k].i64);
            if (distill_atomic_commit(&af, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); distill_json_free(m); goto done; }
        }
        distill_json_free(m);
    }
    rc = 0;
done:
    for (i = 0; i < nq; i++) free(qid[i]);
    free(qid);
    free(lvl);
    return rc;
}

static int sweep_report(sweep_ctx *x, const sweep_result *r, int nr) {
    const sweep_cfg *c = &x->cfg;
    sweep_report_in in;
    distill_table t, agg;
    distill_error err;
    distill_atomic_file af;
    char path[1200], (*cells)[CW] = NULL, hdr_buf[64][48];
    const char *cp[64], *hdr[64];
    int i, j, k, s, g, ncol = 0, n_pts = c->sizes.n + 1, rc = -1;
    const sweep_result *stage0 = &r[0];
    double xs[SWEEP_MAX_SIZES + 1], ys[SWEEP_MAX_SEEDS][SWEEP_MAX_SIZES + 1], mean[SWEEP_MAX_SIZES + 1],
           sd[SWEEP_MAX_SIZES + 1], comp[SWEEP_MAX_SIZES + 1], think[SWEEP_MAX_SIZES + 1], tmp[SWEEP_MAX_SEEDS],
           compsd[SWEEP_MAX_SIZES + 1], thinksd[SWEEP_MAX_SIZES + 1], tmp2[SWEEP_MAX_SEEDS];
    distill_plot_series ser[SWEEP_MAX_SEEDS + 3], ser0[SWEEP_MAX_SEEDS + 3];
    double ybud[SWEEP_MAX_SIZES + 1], ydir[SWEEP_MAX_SIZES + 1];
    int nser0, have_bud = 0, have_dir = 0;
    distill_plot_panel pan[2];
    char labels[SWEEP_MAX_SEEDS][32], title[256];

    memset(&in, 0, sizeof in);
    in.r = r;
    in.nr = nr;
    in.oc = (sweep_outcomes *)calloc((size_t)nr, sizeof *in.oc);
    in.delta = (double *)calloc((size_t)nr * 6, sizeof(double));
    in.partner = (int *)calloc((size_t)nr, sizeof(int));
    cells = (char (*)[CW])calloc(64, CW);
    if (!in.oc || !in.delta || !in.partner || !cells) goto done;
    in.lo = in.delta + nr;
    in.hi = in.delta + 2 * nr;
    in.pd = in.delta + 3 * nr;
    in.plo = in.delta + 4 * nr;
    in.phi = in.delta + 5 * nr;
    for (i = 0; i < nr; i++) {
        snprintf(path, sizeof path, "%s/%s/generations.jsonl", x->runs_dir, r[i].name);
        if (sweep_read_outcomes(path, &in.oc[i]) != 0) goto done;
    }
    for (i = 0; i < nr; i++) {
        sweep_paired_bootstrap(&in.oc[i], &in.oc[0], SWEEP_BOOT, &in.delta[i], &in.lo[i], &in.hi[i]);
        /* the second stage's pairs: easy minus hard, correct minus incorrect (same seed and start) */
        in.partner[i] = -1;
        in.pd[i] = in.plo[i] = in.phi[i] = NAN;
        for (g = 0; g < 4; g += 2)
            if (!strcmp(r[i].group, sweep_groups[g])) in.partner[i] = sweep_find(&in, sweep_groups[g + 1], r[i].from, r[i].seed);
        if (in.partner[i] >= 0)
            sweep_paired_bootstrap(&in.oc[i], &in.oc[in.partner[i]], SWEEP_BOOT, &in.pd[i], &in.plo[i], &in.phi[i]);
    }
    for (i = 0; i < 64; i++) cp[i] = cells[i];

    /* results.csv / results.json: one row per run */
    {
        static const char *const head[] = {"run", "group", "from", "seed", "size", "eval_problems", "eval_samples", "pass_at_1"};
        static const char *const tail[] = {"completion_rate", "strict_completion_rate", "think_rate", "think_open_rate",
                                           "think_tokens_mean", "truncation_rate", "delta_vs_stage0", "ci_low", "ci_high",
                                           "pair", "pair_delta", "pair_ci_low", "pair_ci_high", "train_loss", "train_tokens", "train_steps", "train_seconds", "eval_seconds"};
        for (i = 0; i < 8; i++) hdr[ncol++] = head[i];
        for (i = 0; i < c->nk; i++) if (c->ks[i] != 1) { snprintf(hdr_buf[ncol], 48, "pass_at_%d", c->ks[i]); hdr[ncol] = hdr_buf[ncol]; ncol++; }
        if (c->eval_greedy) { hdr[ncol++] = "pass_at_1_greedy"; hdr[ncol++] = "truncation_rate_greedy"; }
        for (i = 0; i < stage0->n_levels && ncol < 24; i++) {
            size_t q;
            snprintf(hdr_buf[ncol], 48, "pass_at_1_%s", stage0->level_name[i]);
            for (q = 0; hdr_buf[ncol][q]; q++) hdr_buf[ncol][q] = (char)tolower((unsigned char)hdr_buf[ncol][q]);
            hdr[ncol] = hdr_buf[ncol];
            ncol++;
        }
        for (i = 0; i < 18; i++) hdr[ncol++] = tail[i];
    }
    if (distill_table_init(&t, hdr, ncol) != 0) goto done;
    for (i = 0; i < nr; i++) {
        int col = 0, l;
        snprintf(cells[col++], CW, "%s", r[i].name);
        snprintf(cells[col++], CW, "%s", r[i].group);
        snprintf(cells[col++], CW, "%s", r[i].from);
        snprintf(cells[col++], CW, "%lld", (long long)r[i].seed);
        snprintf(cells[col++], CW, "%lld", (long long)r[i].size);
        snprintf(cells[col++], CW, "%lld", (long long)r[i].eval_problems);
        snprintf(cells[col++], CW, "%lld", (long long)r[i].eval_samples);
        sweep_fmt(cells[col++], CW, r[i].pass1, 4);
        for (j = 0; j < c->nk; j++) if (c->ks[j] != 1) sweep_fmt(cells[col++], CW, r[i].pass_k[j], 4);
        if (c->eval_greedy) { sweep_fmt(cells[col++], CW, r[i].pass1_greedy, 4); sweep_fmt(cells[col++], CW, r[i].truncation_greedy, 4); }
        for (l = 0; l < stage0->n_levels && col < 24; l++) {
            double v = NAN;
            for (k = 0; k < r[i].n_levels; k++) if (!strcmp(r[i].level_name[k], stage0->level_name[l])) v = r[i].level_pass[k];
            sweep_fmt(cells[col++], CW, v, 4);
        }
        sweep_fmt(cells[col++], CW, r[i].completion, 4);
        sweep_fmt(cells[col++], CW, r[i].strict_completion, 4);
        sweep_fmt(cells[col++], CW, r[i].think_rate, 4);
        sweep_fmt(cells[col++], CW, r[i].think_open, 4);
        sweep_fmt(cells[col++], CW, r[i].think_tokens, 1);
        sweep_fmt(cells[col++], CW, r[i].truncation, 4);
        sweep_fmt(cells[col++], CW, i ? in.delta[i] : NAN, 4);
        sweep_fmt(cells[col++], CW, i ? in.lo[i] : NAN, 4);
        sweep_fmt(cells[col++], CW, i ? in.hi[i] : NAN, 4);
        snprintf(cells[col++], CW, "%s", in.partner[i] >= 0 ? r[in.partner[i]].name : "");
        sweep_fmt(cells[col++], CW, in.pd[i], 4);
        sweep_fmt(cells[col++], CW, in.plo[i], 4);
        sweep_fmt(cells[col++], CW, in.phi[i], 4);
        sweep_fmt(cells[col++], CW, r[i].train_loss, 4);
        snprintf(cells[col++], CW, "%lld", (long long)r[i].train_tokens);
        snprintf(cells[col++], CW, "%lld", (long long)r[i].train_steps);
        sweep_fmt(cells[col++], CW, r[i].train_seconds, 1);
        sweep_fmt(cells[col++], CW, r[i].eval_seconds, 1);
        distill_table_add_row(&t, cp);
    }
    snprintf(path, sizeof path, "%s/results.csv", c->out);
    if (distill_atomic_open(&af, path, &err) == 0) { distill_table_write_csv(af.f, &t); distill_atomic_commit(&af, &err); }
    snprintf(path, sizeof path, "%s/results.json", c->out);
    if (distill_atomic_open(&af, path, &err) == 0) { distill_table_write_json(af.f, &t); distill_atomic_commit(&af, &err); }

    /* the aggregated sweep table: mean +- sd over seeds per size */
    {
        static const char *ah[9] = {"data size", "seeds", "pass@1 mean ± sd", "per seed", "Δ vs stage 0 [95% CI] (seed 1)",
                                    "by difficulty", "completion", "think tags", "truncated"};
        distill_table_init(&agg, ah, 9);
        xs[0] = 0;
        mean[0] = stage0->pass1; sd[0] = 0; comp[0] = stage0->completion; think[0] = stage0->think_rate;
        compsd[0] = thinksd[0] = 0;
        for (s = 0; s < c->seeds.n; s++) ys[s][0] = stage0->pass1;
        for (k = -1; k < c->sizes.n; k++) {
            size_t off = 0;
            int got = 0, first = -1;
            double tr[SWEEP_MAX_SEEDS];
            if (k >= 0) {
                xs[k + 1] = (double)c->sizes.v[k];
                for (s = 0; s < c->seeds.n; s++) {
                    tmp[s] = tmp2[s] = tr[s] = ys[s][k + 1] = NAN;
                    for (i = 0; i < nr; i++)
                        if (!strcmp(r[i].group, "sweep") && r[i].seed == (int64_t)c->seeds.v[s] && r[i].size == c->sizes.v[k]) {
                            ys[s][k + 1] = r[i].pass1;
                            got++;
                            if (first < 0) first = i;
                        }
                }
                for (s = 0; s < c->seeds.n; s++) tmp[s] = ys[s][k + 1];
                mean[k + 1] = sweep_mean(tmp, c->seeds.n, &sd[k + 1]);
                for (s = 0; s < c->seeds.n; s++) {
                    tmp[s] = tmp2[s] = tr[s] = NAN;
                    for (i = 0; i < nr; i++)
                        if (!strcmp(r[i].group, "sweep") && r[i].seed == (int64_t)c->seeds.v[s] && r[i].size == c->sizes.v[k]) {
                            tmp[s] = r[i].completion;
                            tmp2[s] = r[i].think_rate;
                            tr[s] = r[i].truncation;
                        }
                }
                comp[k + 1] = sweep_mean(tmp, c->seeds.n, &compsd[k + 1]);
                think[k + 1] = sweep_mean(tmp2, c->seeds.n, &thinksd[k + 1]);
                snprintf(cells[0], CW, "%lld", (long long)c->sizes.v[k]);
                snprintf(cells[1], CW, "%d", got);
                /* a standard deviation needs two seeds: with one, print the value alone */
                if (got > 1) snprintf(cells[2], CW, "%.3f ± %.3f", mean[k + 1], sd[k + 1]);
                else snprintf(cells[2], CW, "%.3f", mean[k + 1]);
                cells[3][0] = 0;
                for (s = 0; s < c->seeds.n && off + 8 < CW; s++)
                    off += (size_t)snprintf(cells[3] + off, CW - off, "%s%.2f", s ? " " : "", ys[s][k + 1]);
                if (first >= 0) sweep_cmp_text(cells[4], CW, in.delta[first], in.lo[first], in.hi[first]);
                else snprintf(cells[4], CW, "-");
            } else {
                first = 0;
                snprintf(cells[0], CW, "0 (stage 0)");
                snprintf(cells[1], CW, "-");
                snprintf(cells[2], CW, "%.3f", stage0->pass1);
                snprintf(cells[3], CW, "-");
                snprintf(cells[4], CW, "-");
            }
            off = 0;
            cells[5][0] = 0;
            if (first >= 0)
                for (j = 0; j < r[first].n_levels && off + 24 < CW; j++)
                    off += (size_t)snprintf(cells[5] + off, CW - off, "%s%s %.2f", j ? ", " : "", r[first].level_name[j],
                                            r[first].level_pass[j]);
            if (k >= 0 && got > 1) {
                snprintf(cells[6], CW, "%.2f ± %.2f", comp[k + 1], compsd[k + 1]);
                snprintf(cells[7], CW, "%.2f ± %.2f", think[k + 1], thinksd[k + 1]);
                snprintf(cells[8], CW, "%.2f", sweep_mean(tr, c->seeds.n, NULL));
            } else {
                snprintf(cells[6], CW, "%.2f", k >= 0 ? comp[k + 1] : stage0->completion);
                snprintf(cells[7], CW, "%.2f", k >= 0 ? think[k + 1] : stage0->think_rate);
                snprintf(cells[8], CW, "%.2f", first >= 0 ? r[first].truncation : NAN);
            }
            distill_table_add_row(&agg, cp);
        }
    }

    /* the plot */
    memset(ser, 0, sizeof ser);
    memset(pan, 0, sizeof pan);
    for (s = 0; s < c->seeds.n; s++) {
        snprintf(labels[s], sizeof labels[s], "seed %llu", (unsigned long long)c->seeds.v[s]);
        ser[s].label = labels[s];
        ser[s].x = xs; ser[s].y = ys[s]; ser[s].n = n_pts;
        ser[s].width = 1; ser[s].opacity = 0.55; ser[s].markers = 1;
    }
    ser[c->seeds.n].label = c->seeds.n > 1 ? "mean ± sd" : "pass@1";
    ser[c->seeds.n].x = xs; ser[c->seeds.n].y = mean; ser[c->seeds.n].y_err = c->seeds.n > 1 ? sd : NULL;
    ser[c->seeds.n].n = n_pts; ser[c->seeds.n].width = 3; ser[c->seeds.n].color = "#111111"; ser[c->seeds.n].markers = 1;
    pan[0].title = "pass@1 on held-out problems";
    pan[0].xlabel = "teacher traces in the fine-tuning set (log; 0 = stage-0 student)";
    pan[0].ylabel = "pass@1";
    pan[0].log_x = 1;
    /* panel 0: the seeds, their mean, and the controls of the first seed (when run) */
    memcpy(ser0, ser, sizeof(distill_plot_series) * (size_t)(c->seeds.n + 1));
    nser0 = c->seeds.n + 1;
    ybud[0] = ydir[0] = stage0->pass1;
    for (k = 0; k < c->sizes.n; k++) {
        int b = sweep_find_size(&in, "budget", (int64_t)c->seeds.v[0], c->sizes.v[k]);
        int d2 = sweep_find_size(&in, "direct", (int64_t)c->seeds.v[0], c->sizes.v[k]);
        ybud[k + 1] = b >= 0 ? r[b].pass1 : NAN;
        ydir[k + 1] = d2 >= 0 ? r[d2].pass1 : NAN;
        have_bud |= b >= 0;
        have_dir |= d2 >= 0;
    }
    if (have_bud) sweep_dashed(&ser0[nser0++], "same tokens per size", xs, ybud, n_pts, "#d62728");
    if (have_dir) sweep_dashed(&ser0[nser0++], "answers only (control)", xs, ydir, n_pts, "#ff7f0e");
    pan[0].series = ser0;
    pan[0].n_series = nser0;
    pan[0].legend_pos = DISTILL_LEGEND_TOP_CENTER;   /* the valley is below it, the climb to the right */
    {   /* pass@1 from 0 to a tenth above the highest point (bars may be clipped at 0) */
        double top = 0;
        for (k = 0; k < n_pts; k++) {
            if (mean[k] == mean[k] && mean[k] + (sd[k] == sd[k] ? sd[k] : 0) > top) top = mean[k] + (sd[k] == sd[k] ? sd[k] : 0);
            for (s = 0; s < c->seeds.n; s++) if (ys[s][k] == ys[s][k] && ys[s][k] > top) top = ys[s][k];
        }
        pan[0].y_min = 0;
        pan[0].y_max = top > 0.9 ? 1 : ceil(top * 10 + 1e-9) / 10 + (top * 10 - floor(top * 10) > 0.7 ? 0.1 : 0);
        if (pan[0].y_max <= 0) pan[0].y_max = 0.1;
    }
    ser[c->seeds.n + 1].label = "completion rate";
    ser[c->seeds.n + 1].x = xs; ser[c->seeds.n + 1].y = comp; ser[c->seeds.n + 1].y_err = c->seeds.n > 1 ? compsd : NULL;
    ser[c->seeds.n + 1].n = n_pts; ser[c->seeds.n + 1].width = 2.5; ser[c->seeds.n + 1].color = "#2ca02c"; ser[c->seeds.n + 1].markers = 1;
    ser[c->seeds.n + 2].label = "think-tag rate";
    ser[c->seeds.n + 2].x = xs; ser[c->seeds.n + 2].y = think; ser[c->seeds.n + 2].y_err = c->seeds.n > 1 ? thinksd : NULL;
    ser[c->seeds.n + 2].n = n_pts; ser[c->seeds.n + 2].width = 2.5; ser[c->seeds.n + 2].color = "#9467bd";
    ser[c->seeds.n + 2].dashed = 1; ser[c->seeds.n + 2].markers = 1;
    pan[1].title = "completion and think-tag rates (mean over seeds)";
    pan[1].xlabel = pan[0].xlabel;
    pan[1].ylabel = "rate";
    pan[1].log_x = 1;
    pan[1].y_min = 0; pan[1].y_max = 1;
    pan[1].series = ser + c->seeds.n + 1;
    pan[1].n_series = 2;
    pan[1].legend_pos = DISTILL_LEGEND_BOTTOM_RIGHT;
    snprintf(title, sizeof title, "Valley of Code Reasoning%s: %d seed%s, %s", c->world ? ", miniature" : "", c->seeds.n,
             c->seeds.n > 1 ? "s" : "", c->token_budget > 0 ? "fixed token budget" : "fixed epochs");
    snprintf(path, sizeof path, "%s/valley.svg", c->out);
    if (distill_svg_save(path, title, pan, 2, 520, 380, &err) != 0) fprintf(stderr, "distill sweep: %s\n", err.msg);

    /* the Markdown report */
    snprintf(path, sizeof path, "%s/results.md", c->out);
    if (distill_atomic_open(&af, path, &err) == 0) {
        FILE *f = af.f;
        int n_res = 0, n_cmp = 0;
        fprintf(f, "# Valley of Code Reasoning%s: results\n\n", c->world ? " in miniature" : "");
        fprintf(f, "Data: %s (%s). Eval: %s, %lld problems x %d sample%s (%s), at most %d new tokens, verifier %s.\n",
                c->world ? "world/train.jsonl" : c->data, c->world ? "the miniature world's teacher traces" : "teacher traces",
                c->world ? "world/eval.jsonl" : c->eval_data,
                (long long)stage0->eval_problems, c->eval_n, c->eval_n > 1 ? "s" : "",
                c->temperature > 0 ? "sampled" : "greedy", c->max_new, c->verifier_cmd[0] ? c->verifier_cmd : c->verifier[0] ? c->verifier : "none");
        fprintf(f, "Stage 0: %s. Training: %s (%s), batch %d rows%s, AdamW lr %g (warmup %.0f%%, cosine).\n\n",
                sweep_stage0_trained(c) ? "a fresh student trained on the stage-0 data" : c->init,
                c->token_budget > 0 ? "fixed token budget" : "fixed epochs",
                c->token_budget > 0 ? "see train_tokens" : "see train_steps", c->batch_rows, c->pack ? " (packed)" : "",
                c->lr, c->warmup_ratio * 100);
        fprintf(f, "Intervals: 95 %% paired bootstrap over problems (%d resamples) of the difference in per-problem pass "
                   "rate; \"resolved\" when the interval excludes 0.\n\n", SWEEP_BOOT);
        {   /* the training traces' lengths, measured before training */
            size_t tl_n;
            char tl_path[1200], *tl;
            snprintf(tl_path, sizeof tl_path, "%s/trace-lengths.md", c->out);
            if ((tl = (char *)distill_read_file(tl_path, &tl_n, &err)) != NULL) {
                fprintf(f, "## Trace lengths\n\n%s\n", tl);
                distill_free(tl);
            }
        }
        fprintf(f, "## Data-quantity sweep (nested subsets; mean ± sample sd over seeds)\n\n");
        distill_table_write_markdown(f, &agg);
        fprintf(f, "\n## Second-stage experiments (equal size, %s pools)\n\n", c->second_pool);
        {
            static const char *sh[8] = {"run", "subset", "from", "seed", "size", "pass@1", "Δ vs stage 0 [95% CI]", "think tags"};
            distill_table st;
            distill_table_init(&st, sh, 8);
            for (i = 0; i < nr; i++) {
                for (g = 0; g < 4 && strcmp(r[i].group, sweep_groups[g]); g++) {}
                if (g == 4) continue;
                snprintf(cells[0], CW, "%s", r[i].name);
                snprintf(cells[1], CW, "%s", r[i].group);
                snprintf(cells[2], CW, "%s", r[i].from);
                snprintf(cells[3], CW, "%lld", (long long)r[i].seed);
                snprintf(cells[4], CW, "%lld", (long long)r[i].size);
                snprintf(cells[5], CW, "%.3f", r[i].pass1);
                sweep_cmp_text(cells[6], CW, in.delta[i], in.lo[i], in.hi[i]);
                snprintf(cells[7], CW, "%.2f", r[i].think_rate);
                distill_table_add_row(&st, cp);
            }
            if (st.nrow) distill_table_write_markdown(f, &st);
            else fprintf(f, "(not run)\n");
            distill_table_free(&st);
        }
        {   /* the controls, beside the sweep run of the same seed and size */
            static const char *ch[5] = {"seed", "size", "sweep (epochs)", "same tokens for every size", "answers only"};
            distill_table ct;
            distill_table_init(&ct, ch, 5);
            for (i = 0; i < nr; i++) {
                int b, d2;
                if (strcmp(r[i].group, "sweep")) continue;
                b = sweep_find_size(&in, "budget", r[i].seed, r[i].size);
                d2 = sweep_find_size(&in, "direct", r[i].seed, r[i].size);
                if (b < 0 && d2 < 0) continue;
                snprintf(cells[0], CW, "%lld", (long long)r[i].seed);
                snprintf(cells[1], CW, "%lld", (long long)r[i].size);
                snprintf(cells[2], CW, "%.3f (%+.3f [%+.3f, %+.3f])", r[i].pass1, in.delta[i], in.lo[i], in.hi[i]);
                if (b >= 0) snprintf(cells[3], CW, "%.3f (%+.3f [%+.3f, %+.3f]), %lld tokens", r[b].pass1, in.delta[b], in.lo[b], in.hi[b], (long long)r[b].train_tokens);
                else snprintf(cells[3], CW, "-");
                if (d2 >= 0) snprintf(cells[4], CW, "%.3f (%+.3f [%+.3f, %+.3f])", r[d2].pass1, in.delta[d2], in.lo[d2], in.hi[d2]);
                else snprintf(cells[4], CW, "-");
                distill_table_add_row(&ct, cp);
            }
            if (ct.nrow) {
                fprintf(f, "\n## Controls (pass@1, and its difference from stage 0 [95%% CI])\n\n");
                distill_table_write_markdown(f, &ct);
            }
            distill_table_free(&ct);
        }
        fprintf(f, "\n## Paired comparisons\n\n");
        for (i = 1; i < nr; i++) {   /* every run against stage 0 */
            if (in.delta[i] != in.delta[i]) continue;
            n_cmp++;
            n_res += in.lo[i] > 0 || in.hi[i] < 0;
        }
        fprintf(f, "- Against stage 0: %d of %d runs differ by an interval that excludes 0.\n", n_res, n_cmp);
        for (s = 0; s < c->seeds.n; s++)
            for (j = 0; j < 2; j++)
                for (k = 0; k < 4; k += 2) {
                    const char *from = j ? "largest" : "stage0";
                    int a = sweep_find(&in, sweep_groups[k], from, (int64_t)c->seeds.v[s]);
                    double d, lo, hi;
                    char txt[CW];
                    if (a < 0 || in.partner[a] < 0) continue;
                    d = in.pd[a];
                    lo = in.plo[a];
                    hi = in.phi[a];
                    sweep_cmp_text(txt, CW, d, lo, hi);
                    fprintf(f, "- %s minus %s, from %s, seed %llu: %s — %s\n", sweep_groups[k], sweep_groups[k + 1], from,
                            (unsigned long long)c->seeds.v[s], txt,
                            lo > 0 || hi < 0 ? "the interval resolves the difference"
                                             : "not resolved: the interval includes 0 (no claim either way)");
                }
        /* pooled over seeds: each arm's seeds together against its partner's (or stage 0) */
        if (c->seeds.n > 1) {
            const sweep_outcomes *ra[SWEEP_MAX_SEEDS], *rb[SWEEP_MAX_SEEDS];
            sweep_outcomes pa, pb;
            int na;
            double d, lo, hi;
            char txt[CW];
            distill_atomic_file cf;
            snprintf(path, sizeof path, "%s/comparisons.csv", c->out);
            if (distill_atomic_open(&cf, path, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); distill_atomic_abort(&af); goto done; }
            fprintf(cf.f, "comparison,from,seeds,problems,delta,ci_low,ci_high\n");
            fprintf(f, "\nPooled over seeds (per problem, the mean over the seeds that ran both arms; the bootstrap "
                       "resamples problems):\n\n");
            for (k = 0; k < c->sizes.n; k++) {   /* each size against stage 0 */
                for (na = 0, s = 0; s < c->seeds.n; s++) {
                    int a = sweep_find_size(&in, "sweep", (int64_t)c->seeds.v[s], c->sizes.v[k]);
                    if (a >= 0) { ra[na] = &in.oc[a]; rb[na] = &in.oc[0]; na++; }
                }
                if (na < 1 || sweep_pool_outcomes(ra, na, &pa) != 0) continue;
                if (sweep_pool_outcomes(rb, na, &pb) != 0) { sweep_outcomes_free(&pa); continue; }
                g = sweep_paired_bootstrap(&pa, &pb, SWEEP_BOOT, &d, &lo, &hi);
                sweep_cmp_text(txt, CW, d, lo, hi);
                fprintf(f, "- %lld traces minus stage 0, %d seed%s: %s\n", (long long)c->sizes.v[k], na, na > 1 ? "s" : "", txt);
                fprintf(cf.f, "n%lld minus stage0,stage0,%d,%d,%.6f,%.6f,%.6f\n", (long long)c->sizes.v[k], na, g, d, lo, hi);
                sweep_outcomes_free(&pa);
                sweep_outcomes_free(&pb);
            }
            for (j = 0; j < 2; j++)
                for (k = 0; k < 4; k += 2) {
                    const char *from = j ? "largest" : "stage0";
                    for (na = 0, s = 0; s < c->seeds.n; s++) {
                        int a = sweep_find(&in, sweep_groups[k], from, (int64_t)c->seeds.v[s]);
                        if (a >= 0 && in.partner[a] >= 0) { ra[na] = &in.oc[a]; rb[na] = &in.oc[in.partner[a]]; na++; }
                    }
                    if (na < 1 || sweep_pool_outcomes(ra, na, &pa) != 0) continue;
                    if (sweep_pool_outcomes(rb, na, &pb) != 0) { sweep_outcomes_free(&pa); continue; }
                    g = sweep_paired_bootstrap(&pa, &pb, SWEEP_BOOT, &d, &lo, &hi);
                    sweep_cmp_text(txt, CW, d, lo, hi);
                    fprintf(f, "- %s minus %s, from %s, %d seed%s: %s — %s\n", sweep_groups[k], sweep_groups[k + 1], from, na,
                            na > 1 ? "s" : "", txt, lo > 0 || hi < 0 ? "the interval resolves the difference"
                                                                   : "not resolved: the interval includes 0 (no claim either way)");
                    fprintf(cf.f, "%s minus %s,%s,%d,%d,%.6f,%.6f,%.6f\n", sweep_groups[k], sweep_groups[k + 1], from, na, g, d, lo, hi);
                    sweep_outcomes_free(&pa);
                    sweep_outcomes_free(&pb);
                }
            if (distill_atomic_commit(&cf, &err) != 0) fprintf(stderr, "distill sweep: %s\n", err.msg);
        }
        fprintf(f, "\nPer-run numbers: results.csv / results.json; per-sample outcomes: runs/<run>/generations.jsonl; "
                   "training rows: runs/<run>/manifest.json.\n");
        distill_atomic_commit(&af, &err);
    }
    printf("\n");
    distill_table_write_markdown(stdout, &agg);
    distill_table_free(&agg);
    distill_table_free(&t);
    rc = 0;
done:
    if (in.oc) for (i = 0; i < nr; i++) sweep_outcomes_free(&in.oc[i]);
    free(in.oc);
    free(in.delta);
    free(in.partner);
    free(cells);
    return rc;
}

/* OUT/sweep-config.json: every option that shapes the runs and the report, in the config-file
   format (keys: the flag names), so that `--merge` and `--report-only` need only --out. Files
   written before the flag names became the keys (max_seq) still load: '_' reads as '-'. */
static void sweep_put_str(FILE *f, const char *key, const char *v) {
    fprintf(f, "\"%s\": ", key);
    distill_json_write_string(f, v, strlen(v));
    fputs(", ", f);
}

static int sweep_save_config(const sweep_cfg *c, const char *preset, const char *path) {
    distill_atomic_file af;
    distill_error err;
    FILE *f;
    int i;
    if (distill_atomic_open(&af, path, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    f = af.f;
    fputs("{", f);
    sweep_put_str(f, "preset", preset);
    if (!c->world) {   /* a world preset derives these from --out */
        sweep_put_str(f, "data", c->data); sweep_put_str(f, "eval-data", c->eval_data);
        sweep_put_str(f, "tokenizer", c->tokenizer); sweep_put_str(f, "stage0-data", c->stage0_data);
    }
    sweep_put_str(f, "init", c->init);
    sweep_put_str(f, "verifier", c->verifier); sweep_put_str(f, "verifier-cmd", c->verifier_cmd);
    sweep_put_str(f, "format", c->format); sweep_put_str(f, "template", c->tmpl); sweep_put_str(f, "loss", c->loss);
    sweep_put_str(f, "easy", c->easy); sweep_put_str(f, "hard", c->hard); sweep_put_str(f, "correct", c->correct);
    sweep_put_str(f, "incorrect", c->incorrect); sweep_put_str(f, "second-from", c->second_from);
    sweep_put_str(f, "second-pool", c->second_pool);
    fputs("\n \"map\": [", f);
    for (i = 0; i < c->maps.n; i++) { if (i) fputs(", ", f); distill_json_write_string(f, c->maps.v[i], strlen(c->maps.v[i])); }
    fputs("], \"filter\": [", f);
    for (i = 0; i < c->filters.n; i++) { if (i) fputs(", ", f); distill_json_write_string(f, c->filters.v[i], strlen(c->filters.v[i])); }
    fprintf(f, "],\n \"train\": %lld, \"direct\": %lld, \"eval\": %lld, \"error-rate\": %.17g, \"world-seed\": %llu, \"vocab\": %d,\n",
            (long long)c->n_train, (long long)c->n_direct, (long long)c->n_eval, c->error_rate,
            (unsigned long long)c->world_seed, c->vocab);
    fprintf(f, " \"dim\": %d, \"layers\": %d, \"heads\": %d, \"kv-heads\": %d, \"hidden\": %d, \"max-seq\": %d, \"truncate\": %d, "
               "\"normalize-think\": %d,\n", c->dim, c->layers, c->heads, c->kv_heads, c->hidden, c->max_seq, c->truncate,
            c->normalize_think);
    fprintf(f, " \"batch-rows\": %d, \"batch-tokens\": %lld, \"grad-accum\": %d, \"pack\": %d, \"lr\": %.17g, \"warmup-ratio\": %.17g, "
               "\"weight-decay\": %.17g, \"epochs\": %.17g, \"token-budget\": %lld, \"stage0-epochs\": %.17g, \"stage0-lr\": %.17g,\n",
            c->batch_rows, (long long)c->batch_tokens, c->grad_accum, c->pack, c->lr, c->warmup_ratio, c->weight_decay,
            c->epochs, (long long)c->token_budget, c->stage0_epochs, c->stage0_lr);
    fprintf(f, " \"sizes\": [");
    for (i = 0; i < c->sizes.n; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)c->sizes.v[i]);
    fprintf(f, "], \"seeds\": [");
    for (i = 0; i < c->seeds.n; i++) fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)c->seeds.v[i]);
    fprintf(f, "], \"k\": [");
    for (i = 0; i < c->nk; i++) fprintf(f, "%s%d", i ? ", " : "", c->ks[i]);
    fprintf(f, "], \"split-size\": %lld, \"second-seeds\": %d, \"eval-greedy\": %d,\n", (long long)c->split_size, c->second_seeds,
            c->eval_greedy);
    fprintf(f, " \"eval-n\": %d, \"temperature\": %.17g, \"top-p\": %.17g, \"top-k\": %d, \"max-new-tokens\": %d, "
               "\"eval-max-problems\": %lld, \"gen-batch\": %d, \"verifier-timeout\": %.17g}\n",
            c->eval_n, c->temperature, c->top_p, c->top_k, c->max_new, (long long)c->eval_max_problems, c->gen_batch,
            c->verifier_timeout);
    if (distill_atomic_commit(&af, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    return 0;
}

/* The preset a command line asks for: --preset, else "custom" when the data is the user's
   (--data on the command line or in the config file), else "demo". */
static const char *sweep_pick_preset(int argc, char **argv) {
    const char *config = NULL;
    int a;
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--preset") && a + 1 < argc) return argv[a + 1];
        if (!strncmp(argv[a], "--preset=", 9)) return argv[a] + 9;
        if (!strcmp(argv[a], "--config") && a + 1 < argc) config = argv[a + 1];
        if (!strncmp(argv[a], "--config=", 9)) config = argv[a] + 9;
    }
    if (cli_args_have(&sweep_cmd, argc, argv, "data")) return "custom";
    if (config) {
        distill_error err;
        distill_json *j = distill_json_parse_file(config, &err);
        const distill_json *p = j ? distill_json_get(j, "preset") : NULL;
        const char *r = p && p->type == DISTILL_JSON_STRING ? (!strcmp(p->str, "smoke") ? "smoke" : !strcmp(p->str, "valley") ? "valley"
                        : !strcmp(p->str, "custom") ? "custom" : "demo")
                        : j && distill_json_get(j, "data") ? "custom" : "demo";
        distill_json_free(j);
        return r;
    }
    return "demo";
}

/* The configuration is usable: the inputs a custom sweep needs, shapes, sizes. 0 or 2. */
static int sweep_check(const sweep_cfg *c) {
    if (c->world) return c->heads % c->kv_heads || c->dim % c->heads
        ? (fprintf(stderr, "distill sweep: dim (%d) must divide by heads (%d), heads by kv_heads (%d)\n", c->dim, c->heads, c->kv_heads), 2)
        : c->sizes.v[c->sizes.n - 1] > c->n_train
        ? (fprintf(stderr, "distill sweep: the largest size (%lld) exceeds --train (%lld)\n", (long long)c->sizes.v[c->sizes.n - 1], (long long)c->n_train), 2)
        : 0;
    if (!c->data[0] || !c->eval_data[0] || !c->tokenizer[0]) {
        fprintf(stderr, "distill sweep: --data, --eval-data and --tokenizer are required (or --preset demo|valley|smoke)\n");
        return 2;
    }
    if (!c->init[0] == !c->stage0_data[0]) {
        fprintf(stderr, "distill sweep: give one of --init MODEL (stage 0 as it is) and --stage0-data FILE (train stage 0)\n");
        return 2;
    }
    if (c->stage0_data[0] && (c->heads % c->kv_heads || c->dim % c->heads)) {
        fprintf(stderr, "distill sweep: dim (%d) must divide by heads (%d), heads by kv_heads (%d)\n", c->dim, c->heads, c->kv_heads);
        return 2;
    }
    if (!c->verifier_cmd[0] && !c->verifier[0])
        fprintf(stderr, "distill sweep: warning: no --verifier-cmd or --verifier: pass@k will be null\n");
    return 0;
}

/* ---- trace lengths ------------------------------------------------------------------------------
   OUT/trace-lengths.md: tokens per training row (prompt and trace, as trained) for all traces
   and per difficulty x correctness, so a reader can see whether wrong traces differ from right
   ones in length, and what --max-new-tokens must allow. */
static int sweep_cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

static void sweep_length_row(FILE *f, const char *name, const distill_dataset *ds) {
    int64_t n = ds ? distill_dataset_size(ds) : 0, i;
    int *len = (int *)malloc((size_t)(n ? n : 1) * sizeof(int));
    double sum = 0;
    if (!len) return;
    for (i = 0; i < n; i++) {
        distill_row r;
        distill_dataset_row(ds, i, &r);
        len[i] = r.n;
        sum += r.n;
    }
    qsort(len, (size_t)n, sizeof *len, sweep_cmp_int);
    if (n) fprintf(f, "| %s | %lld | %.1f | %d | %d | %d |\n", name, (long long)n, sum / (double)n, len[n / 2],
                   len[(int64_t)ceil(0.99 * (double)n) - 1], len[n - 1]);
    else fprintf(f, "| %s | 0 | - | - | - | - |\n", name);
    free(len);
}

static int sweep_trace_lengths(sweep_ctx *x) {
    const sweep_cfg *c = &x->cfg;
    char path[1200];
    distill_atomic_file af;
    distill_error err;
    int d, k;
    snprintf(path, sizeof path, "%s/trace-lengths.md", c->out);
    if (distill_atomic_open(&af, path, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    fprintf(af.f, "Training rows in tokens (prompt + trace, as trained; rows over --max-seq %d %s):\n\n"
                  "| traces | rows | mean | median | p99 | max |\n|---|---:|---:|---:|---:|---:|\n", c->max_seq,
            c->truncate ? "cut" : "dropped");
    sweep_length_row(af.f, "all", x->train_all);
    for (d = 0; d < 4; d++)
        if (sweep_group_expr(c, d)) {
            distill_dataset *ds = sweep_load(x, c->data, sweep_group_expr(c, d));
            sweep_length_row(af.f, sweep_groups[d], ds);
            distill_dataset_free(ds);
        }
    if (sweep_group_expr(c, 0) && sweep_group_expr(c, 1) && sweep_group_expr(c, 2) && sweep_group_expr(c, 3))
        for (d = 0; d < 2; d++)
            for (k = 2; k < 4; k++) {
                char name[64];
                distill_dataset *ds = sweep_load2(x, c->data, sweep_group_expr(c, d), sweep_group_expr(c, k));
                snprintf(name, sizeof name, "%s and %s", sweep_groups[d], sweep_groups[k]);
                sweep_length_row(af.f, name, ds);
                distill_dataset_free(ds);
            }
    if (distill_atomic_commit(&af, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return -1; }
    return 0;
}

/* ---- the driver ----------------------------------------------------------------------------- */
int cli_sweep(int argc, char **argv) {
    sweep_ctx x;
    sweep_cfg *c = &x.cfg;
    sweep_result *res = NULL, r;
    sweep_job *jobs = NULL;
    int *order = NULL;
    distill_error err;
    const distill_comm *comm;
    const char *preset, *config = NULL;
    char path[1200];
    int a, j, g, nr = 0, nj = 0, rc = 1, w = 0, nw = 1, mpi, reporting, mine = 0, done_before = 0, missing = 0;
    int said[5] = {0, 0, 0, 0, 0};
    memset(&x, 0, sizeof x);
    x.t_start = distill_time_seconds();
    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress lines appear as they happen, also in logs */
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) { sweep_usage(stdout); return 0; }
        if (!strcmp(argv[a], "--config") && a + 1 < argc) config = argv[a + 1];
        if (!strncmp(argv[a], "--config=", 9)) config = argv[a] + 9;
    }
    /* preset, then the config file, then flags */
    preset = sweep_pick_preset(argc, argv);
    if (strcmp(preset, "smoke") && strcmp(preset, "demo") && strcmp(preset, "valley") && strcmp(preset, "custom")) {
        fprintf(stderr, "distill sweep: --preset expects one of smoke|demo|valley|custom, got '%s'\n", preset);
        return 2;
    }
    sweep_preset(c, preset);
    if ((config && sweep_load_config(c, config) != 0) || sweep_flags(c, argc, argv) != 0 || sweep_lists_check(c) != 0) return 2;
    if ((c->merge || c->report_only) && !c->plan) {
        /* a report takes the options the sweep recorded (the merge step then needs only --out);
           a config file and flags still override them */
        char saved[1100];
        snprintf(saved, sizeof saved, "%s/sweep-config.json", c->out);
        if (sweep_exists(saved)) {
            static char saved_preset[16];
            distill_json *sj = distill_json_parse_file(saved, &err);
            const distill_json *p = sj ? distill_json_get(sj, "preset") : NULL;
            snprintf(saved_preset, sizeof saved_preset, "%s", p && p->type == DISTILL_JSON_STRING ? p->str : "demo");
            distill_json_free(sj);
            preset = saved_preset;
            sweep_preset(c, preset);
            if (sweep_load_config(c, saved) != 0 || (config && sweep_load_config(c, config) != 0) ||
                sweep_flags(c, argc, argv) != 0 || sweep_lists_check(c) != 0)
                return 2;
            printf("options: %s, then the command line\n", saved);
        }
    }
    reporting = c->merge || c->report_only;
    snprintf(x.runs_dir, sizeof x.runs_dir, "%s/runs", c->out);
    snprintf(x.world_dir, sizeof x.world_dir, "%s/world", c->out);
    if (c->world) {
        /* the miniature world as a data provider: its files, then the generic path */
        snprintf(c->eval_data, sizeof c->eval_data, "%s/world/eval.jsonl", c->out);
        snprintf(c->stage0_data, sizeof c->stage0_data, "%s/world/direct.jsonl", c->out);
        snprintf(c->data, sizeof c->data, "%s/world/train.jsonl", c->out);
        if (!c->tokenizer[0]) snprintf(c->tokenizer, sizeof c->tokenizer, "%s/tokenizer.bin", c->out);
    }
    snprintf(x.tok_path, sizeof x.tok_path, "%s", c->tokenizer);
    if (!reporting && sweep_check(c) != 0) return 2;
#ifdef DISTILL_MPI
    comm = cli_comm();
#else
    comm = distill_comm_local();   /* without MPI cli_comm() is always this one */
#endif
    mpi = comm->size > 1;
    if (sweep_workers(c, comm, &w, &nw) != 0) return 2;
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
    if (!reporting) cli_catch_stop_signals();   /* a signal ends the current step or problems, saved */
    x.unit = mpi ? "rank" : "task";
    if (nw > 1) snprintf(x.who, sizeof x.who, "%s %d: ", x.unit, w);
    for (j = 0; j < nj; j++) mine += jobs[j].owner == w;
    if (reporting) {
        snprintf(path, sizeof path, "%s/stage0/result.json", x.runs_dir);
        if (!sweep_exists(path)) {
            fprintf(stderr, "distill sweep: %s: no sweep to report (no %s): run the sweep first\n", c->out, path);
            goto done;
        }
    } else if (c->world && sweep_check_world(c, x.world_dir, nw) != 0) {
        goto done;
    } else if (sweep_mkdir(c->out) || sweep_mkdir(x.runs_dir) || (c->world && sweep_mkdir(x.world_dir))) {
        fprintf(stderr, "distill sweep: cannot create %s\n", c->out);
        goto done;
    } else if (w == 0) {
        snprintf(path, sizeof path, "%s/sweep-config.json", c->out);
        if (sweep_save_config(c, preset, path) != 0) goto done;
    }
    printf("distill sweep -> %s  (%s%s; %d sizes x %d seeds, %s, %d threads)\n", c->out,
           strcmp(preset, "custom") ? "preset " : "", strcmp(preset, "custom") ? preset : c->data, c->sizes.n, c->seeds.n,
           c->token_budget > 0 ? "fixed token budget" : "fixed epochs", distill_get_threads());
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

    /* the world's files and tokenizer: worker 0 makes them; the others wait for the tokenizer,
       written last (every file is renamed into place whole) */
    if (c->world && !reporting) {
        if (w > 0) {
            if (!sweep_exists(x.tok_path)) printf("%swaiting for %s 0 to write the world and %s\n", x.who, x.unit, x.tok_path);
            while (!sweep_exists(x.tok_path)) {
                if (!mpi && distill_time_seconds() - x.t_start > c->wait_timeout) {
                    fprintf(stderr, "distill sweep: %sgave up after %.0f s waiting for %s (%s 0 writes it). Is %s 0 running?\n",
                            x.who, c->wait_timeout, x.tok_path, x.unit, x.unit);
                    goto done;
                }
                sweep_sleep(1.0);
            }
        } else if (!sweep_exists(c->eval_data)) {
            world_gen_options wo = world_gen_options_default();
            world_gen_summary sum;
            wo.n_train = (uint64_t)c->n_train;
            wo.n_direct = (uint64_t)c->n_direct;
            wo.n_eval = (uint64_t)c->n_eval;
            wo.seed = c->world_seed;
            wo.error_rate = c->error_rate;
            char stamp[512];
            if (world_write_files(x.world_dir, &wo, &sum, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
            snprintf(path, sizeof path, "%s/world-stamp.json", x.world_dir);
            sweep_world_stamp(c, stamp, sizeof stamp);
            if (distill_write_file_atomic(path, stamp, strlen(stamp), &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
            world_print_summary(stdout, &wo, &sum);
        } else printf("world: reusing %s\n", x.world_dir);
        if (w == 0 && !sweep_exists(x.tok_path) && sweep_world_tokenizer(&x) != 0) goto done;
    }

    /* the inputs of this worker's runs */
    if (!reporting && mine > 0) {
        const distill_data_stats *st;
        if (!(x.tok = distill_tokenizer_load(c->tokenizer, NULL, &err))) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
        printf("tokenizer: %d tokens (%s)\n", distill_tokenizer_vocab_size(x.tok), c->tokenizer);
        if (sweep_data_options(&x) != 0) goto done;
        if (cli_verifier_setup(&x.cv, &x.verifier, c->verifier[0] ? c->verifier : NULL,
                               c->verifier_cmd[0] ? c->verifier_cmd : NULL, c->verifier_timeout, "distill sweep") != 0) {
            rc = 2;
            goto done;
        }
        if (!(x.train_all = sweep_load(&x, c->data, NULL))) goto done;
        st = distill_dataset_stats(x.train_all);
        printf("data: %s: %lld traces (%.1f tokens/row, max %lld; %lld filtered, %lld dropped > %d tokens)\n", c->data,
               (long long)st->rows, (double)st->tokens / (double)(st->rows ? st->rows : 1), (long long)st->max_len,
               (long long)st->filtered, (long long)st->dropped, c->max_seq);
        if (distill_dataset_size(x.train_all) < c->sizes.v[c->sizes.n - 1]) {
            fprintf(stderr, "distill sweep: %s: only %lld usable traces (of at most %d tokens); the largest size is %lld\n",
                    c->data, (long long)distill_dataset_size(x.train_all), c->max_seq, (long long)c->sizes.v[c->sizes.n - 1]);
            goto done;
        }
        if (sweep_stage0_trained(c)) {
            if (!(x.stage0_ds = sweep_load(&x, c->stage0_data, NULL))) goto done;
            st = distill_dataset_stats(x.stage0_ds);
            printf("stage-0 data: %s: %lld examples (%.1f tokens each)\n", c->stage0_data, (long long)st->rows,
                   (double)st->tokens / (double)(st->rows ? st->rows : 1));
        }
        /* second-stage pools: checked before any training, so a too-small pool fails at once */
        for (g = 0; g < 4; g++)
            if (sweep_group_on(c, g) && sweep_pool(&x, g) != 0) goto done;
        snprintf(path, sizeof path, "%s/trace-lengths.md", c->out);
        if (w == 0 && !sweep_exists(path) && sweep_trace_lengths(&x) != 0) goto done;
    }

    /* this worker's runs: stage 0, the data-quantity sweep, the second experiments */
    for (a = 0; a < nj && !reporting; a++) {
        const sweep_job *jb = &jobs[order[a]];
        if (jb->owner != w) continue;
        if (!said[jb->kind]) {
            said[jb->kind] = 1;
            if (jb->kind == SWEEP_STAGE0)
                printf("stage 0: %s\n", sweep_stage0_trained(c) ? "training the direct-answer student" : "evaluating --init as it is");
            else if (jb->kind == SWEEP_SUBSET) printf("sweep: nested subsets of the teacher's traces, fine-tuned from stage 0\n");
            else if (jb->kind == SWEEP_SECOND) printf("second stage: %lld traces per subset (%s pools)\n", (long long)c->split_size, c->second_pool);
            else if (jb->kind == SWEEP_BUDGET) printf("control: every size trained on %lld tokens\n", (long long)c->budget_arm);
            else printf("control: the same problems with answers only (no reasoning)\n");
        }
        done_before += sweep_done(&x, jb);
        if (jb->dep >= 0 && jobs[jb->dep].owner != w && sweep_wait(&x, &jobs[jb->dep], mpi) != 0) goto done;
        if (*cli_stop_flag() || sweep_do(&x, jobs, order[a], &r) != 0) {
            if (*cli_stop_flag()) {   /* interrupted: the run's checkpoint or partial eval is saved */
                fprintf(stderr, "distill sweep: %sstopped by a signal in run %s; run the same command to continue\n",
                        x.who, jb->name);
                rc = cli_stop_status(*cli_stop_flag());
                goto done;
            }
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

    /* the report (one process: the single sweep, MPI rank 0, or --merge / --report-only), from
       every run's result.json and generations.jsonl, so it never depends on who ran what */
    res = (sweep_result *)calloc((size_t)nj, sizeof *res);
    if (!res) goto done;
    if (c->merge) printf("merge: %d runs in %s\n", nj, x.runs_dir);
    for (j = 0; j < nj; j++) {
        sweep_run_path(&x, &jobs[j], "result.json", path, sizeof path);
        if (sweep_read_result(&x, path, &res[nr]) == 0) { nr++; continue; }
        if (!missing++ && c->merge) fprintf(stderr, "distill sweep: unfinished runs (no %s/<run>/result.json):\n", x.runs_dir);
        if (c->merge) {
            if (nw > 1) fprintf(stderr, "  %s (task %d)\n", jobs[j].name, jobs[j].owner);
            else fprintf(stderr, "  %s\n", jobs[j].name);
        } else if (c->report_only) printf("  %-22s not finished: left out of the report\n", jobs[j].name);
        else fprintf(stderr, "distill sweep: run %s has no result (%s)\n", jobs[j].name, path);
        if (j == 0 && !c->merge) { fprintf(stderr, "distill sweep: no stage-0 result\n"); goto done; }
    }
    if (missing && !c->report_only) {
        if (c->merge)
            fprintf(stderr, "distill sweep: %d of %d runs are not finished: run (or rerun) the tasks that own them, then "
                            "--merge again\n", missing, nj);
        goto done;
    }
    if (sweep_report(&x, res, nr) != 0 || sweep_write_outcomes(&x, res, nr) != 0) goto done;
    printf("\nresults: %s/results.md  %s/results.csv  %s/results.json  plot: %s/valley.svg  (%.0f s)\n", c->out, c->out,
           c->out, c->out, distill_time_seconds() - x.t_start);
    rc = 0;
done:
    free(res);
    free(jobs);
    free(order);
    for (g = 0; g < 4; g++) distill_dataset_free(x.pools[g]);
    free(x.used_ids);
    distill_dataset_free(x.train_all);
    distill_dataset_free(x.stage0_ds);
    distill_dataset_free(x.control_all);
    if (x.tok) distill_tokenizer_free(x.tok);
    return rc;
}
