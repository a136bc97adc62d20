/* distill train: supervised fine-tuning on teacher traces (sequence-level distillation) or logit
   distillation from a teacher model / a top-k teacher cache. The options are one table
   (train_options, parsed by cli_opts.c: flags, --config FILE.json, --help); OUT/loss.svg is
   redrawn from OUT/metrics.jsonl at every checkpoint and at the end. */
#define _POSIX_C_SOURCE 200809L   /* opendir */
#include "cli.h"
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <errno.h>
#include <dirent.h>
#include <sys/stat.h>

/* 1 if dir holds a checkpoint file (ckpt-<step>.dstl), intact or not */
static int has_checkpoint(const char *dir) {
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    int n = 0;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        n += l > 10 && !strncmp(e->d_name, "ckpt-", 5) && !strcmp(e->d_name + l - 5, ".dstl");
    }
    closedir(d);
    return n > 0;
}

/* Options gathered from the config file and the command line (last one wins). */
typedef struct {
    const char *data, *eval_data, *tokenizer, *format, *tmpl, *loss, *manifest, *init, *out;
    const char *teacher, *teacher_cache, *build_cache, *schedule, *kd_loss, *precision, *teacher_weights;
    cli_strlist filters, maps;
    cli_optval resume;
    int max_seq, truncate, pack, grad_accum, batch_rows, threads, keep, quiet, top_k;
    int dim, layers, heads, kv_heads, hidden, qkv_bias, untied, overlap, no_overlap;
    int64_t subset, steps, batch_tokens, warmup, eval_every, eval_batches, save_every, log_every;
    uint64_t seed, subset_seed;
    double epochs, lr, min_lr_ratio, warmup_ratio, weight_decay, grad_clip, beta1, beta2, rope_theta;
    double kd_beta, kd_temperature, kd_alpha, bucket_mb, save_every_minutes;
} train_opts;

#define CLI_T train_opts
static const cli_opt train_options[] = {
    CLI_SECTION("data"),
    CLI_PATH_REQ("data", data, "FILE", "training data (.jsonl or .json array; messages, conversations, prompt/completion, alpaca, text)"),
    CLI_PATH("eval-data", eval_data, "FILE", "held-out data for periodic evaluation"),
    CLI_PATH_REQ("tokenizer", tokenizer, "FILE", "tokenizer (tokenizer.json, vocab.json, tokenizer.bin, own format)"),
    CLI_ENUM("format", format, CLI_FORMATS, "the data's layout (auto: detected)"),
    CLI_ENUM("template", tmpl, CLI_TEMPLATES, "chat template (chatml)"),
    CLI_ENUM("loss", loss, CLI_LOSSES, "which tokens are supervised (assistant)"),
    CLI_LIST("map", maps, "SRC=DST", "field mapping, e.g. question=prompt (repeatable)"),
    CLI_LIST("filter", filters, "EXPR", "keep rows matching, e.g. \"difficulty in {EASY, MEDIUM}\" (repeatable)"),
    CLI_INT("max-seq", max_seq, 2, 1 << 20, "longest row in tokens; longer rows are dropped"),
    CLI_BOOL("truncate", truncate, "cut long rows to --max-seq instead of dropping them"),
    CLI_INT64("subset", subset, 0, 1e15, "train on N rows of a seeded permutation (nested across N; 0: all)"),
    CLI_U64("subset-seed", subset_seed, 0, 18446744073709551615.0, "permutation seed for --subset"),
    CLI_PATH("manifest", manifest, "FILE", "write the chosen subset's row ids there"),
    CLI_SECTION("model"),
    CLI_PATH("init", init, "FILE", "start from a model file (own checkpoint, safetensors, llama2.c .bin)"),
    CLI_INT("dim", dim, 1, 65536, "a new model: width"),
    CLI_INT("layers", layers, 1, 4096, "a new model: layers"),
    CLI_INT("heads", heads, 1, 4096, "a new model: attention heads"),
    CLI_INT("kv-heads", kv_heads, 1, 4096, "a new model: key/value heads"),
    CLI_INT("hidden", hidden, 1, 1 << 22, "a new model: MLP width"),
    CLI_BOOL("qkv-bias", qkv_bias, "Qwen2-style q/k/v biases"),
    CLI_BOOL("untied", untied, "an LM head apart from the embedding"),
    CLI_DBL("rope-theta", rope_theta, 1, 1e12, "RoPE base"),
    CLI_SECTION("batches and optimisation"),
    CLI_INT("batch-rows", batch_rows, 0, 1 << 20, "rows per micro-batch (the cap on rows with --batch-tokens)"),
    CLI_INT64("batch-tokens", batch_tokens, 0, 1e12, "or a token budget per micro-batch (0: off)"),
    CLI_BOOL("pack", pack, "pack several rows per sequence of --max-seq tokens"),
    CLI_INT("grad-accum", grad_accum, 1, 1 << 20, "micro-batches per step"),
    CLI_U64("seed", seed, 0, 18446744073709551615.0, "data order and initialisation seed"),
    CLI_INT64("steps", steps, 0, 1e12, "optimizer steps (0: --epochs decides)"),
    CLI_DBL("epochs", epochs, 1e-6, 1e6, "training length in epochs when --steps is 0"),
    CLI_DBL("lr", lr, 0, 10, "peak learning rate"),
    CLI_DBL("min-lr-ratio", min_lr_ratio, 0, 1, "final learning rate / peak"),
    CLI_INT64("warmup", warmup, -1, 1e12, "warmup steps (-1: --warmup-ratio, else 5% of the steps)"),
    CLI_DBL("warmup-ratio", warmup_ratio, 0, 1, "warmup as a share of the steps"),
    CLI_ENUM("schedule", schedule, "cosine|linear|constant", "learning-rate schedule (cosine)"),
    CLI_DBL("weight-decay", weight_decay, 0, 100, "AdamW weight decay"),
    CLI_DBL("grad-clip", grad_clip, 0, 1e9, "gradient norm clip (0: off)"),
    CLI_DBL("beta1", beta1, 0, 1, "AdamW beta1"),
    CLI_DBL("beta2", beta2, 0, 1, "AdamW beta2"),
    CLI_INT("threads", threads, 0, 4096, "worker threads (0: all cores)"),
    CLI_ENUM("precision", precision, "fp32|bf16", "products of the linear layers (and attention blocks): fp32, or bf16 inputs with FP32 sums" " (the teacher's too)"),
    CLI_SECTION("evaluation, checkpoints, logs"),
    CLI_PATH("out", out, "DIR", "checkpoints ckpt-<step>.dstl, metrics.jsonl, loss.svg, train-config.json, final model.dstl (required unless --build-cache)"),
    CLI_INT64("eval-every", eval_every, 0, 1e12, "evaluate on --eval-data every N steps (0: never)"),
    CLI_INT64("eval-batches", eval_batches, 1, 1e12, "batches per evaluation"),
    CLI_INT64("save-every", save_every, 0, 1e12, "checkpoint period in steps (0: at the end)"),
    CLI_DBL("save-every-minutes", save_every_minutes, 0, 1e7, "also a checkpoint when X minutes passed since the last (0: off)"),
    CLI_INT("keep", keep, 0, 1000000, "checkpoints kept"),
    CLI_INT64("log-every", log_every, 1, 1e12, "plain progress line period when stdout is not a terminal"),
    CLI_OPTVAL("resume", resume, "DIR|FILE", "continue from the newest checkpoint in --out (or the given one); bare --resume with none yet starts from scratch"),
    CLI_BOOL("quiet", quiet, "no progress output"),
    CLI_SECTION("data parallel (a build with `make MPI=1`, started by mpirun/srun; see docs/cluster.md)"),
    CLI_BOOL("overlap", overlap, "all-reduce the gradient in buckets while the backward pass runs"),
    CLI_BOOL("no-overlap", no_overlap, "one all-reduce after the backward pass (the default)"),
    CLI_DBL("bucket-mb", bucket_mb, 0, 65536, "bucket size in MiB for --overlap (0: 4)"),
    CLI_SECTION("logit distillation (teacher and student share the tokenizer)"),
    CLI_PATH("teacher", teacher, "FILE", "teacher model in process"),
    CLI_ENUM("teacher-weights", teacher_weights, "fp32|bf16", "bf16: hold the teacher's matrices in BF16 (half its memory)"),
    CLI_PATH("teacher-cache", teacher_cache, "FILE", "or a top-k cache of its logits"),
    CLI_ENUM("kd-loss", kd_loss, "fkl|rkl|jsd", "forward KL, reverse KL, JSD (sets --kd-beta 0, 1, 0.5)"),
    CLI_DBL("kd-beta", kd_beta, 0, 1, "generalised JSD: 0 forward KL ... 1 reverse KL (TRL GKD convention)"),
    CLI_DBL("kd-temperature", kd_temperature, 1e-3, 1e3, "softmax temperature of both models"),
    CLI_DBL("kd-alpha", kd_alpha, 0, 1, "loss = a*T^2*D + (1-a)*CE (1: pure KD)"),
    CLI_PATH("build-cache", build_cache, "FILE", "compute the teacher's top-k cache over --data and exit (under mpirun the ranks share the rows)"),
    CLI_INT("top-k", top_k, 1, 1 << 20, "entries per position in the cache"),
};
#undef CLI_T

static const cli_cmd train_cmd = {
    "train", "usage: distill train --data FILE.jsonl --tokenizer TOK --out DIR [options]\n",
    "  Supervised fine-tuning on teacher traces (sequence-level distillation), or logit\n"
    "  distillation from --teacher / --teacher-cache. --out gets metrics.jsonl and loss.svg\n"
    "  (train and eval loss and the learning rate against the step, redrawn at every checkpoint)\n"
    "  and train-config.json (every option as resolved: --config train-config.json repeats the run).\n",
    train_options, CLI_N(train_options),
    "Ctrl-C, SIGTERM or SIGUSR1 (Slurm --signal=USR1@90): finish the step, save a checkpoint,\n"
    "exit 130 / 143 / 138; a second Ctrl-C or SIGTERM exits at once. One trainer per --out:\n"
    "a second one is refused, naming the holder's pid.\n"
    "Data parallel: mpirun -np P distill train ... : each rank takes B/P rows of every --batch-rows B\n"
    "batch; gradients are summed with MPI_Allreduce; rank 0 writes the files.\n",
    0};

/* The resolved configuration as JSON, stored in every checkpoint. */
static char *config_json(const train_opts *o, const distill_config *mc) {
    FILE *f = tmpfile();
    char *s;
    long n;
    int i;
    if (!f) return NULL;
    fprintf(f, "{\"data\": ");
    distill_json_write_string(f, o->data ? o->data : "", o->data ? strlen(o->data) : 0);
    fprintf(f, ", \"tokenizer\": ");
    distill_json_write_string(f, o->tokenizer ? o->tokenizer : "", o->tokenizer ? strlen(o->tokenizer) : 0);
    fprintf(f, ", \"filters\": [");
    for (i = 0; i < o->filters.n; i++) {
        if (i) fprintf(f, ", ");
        distill_json_write_string(f, o->filters.v[i], strlen(o->filters.v[i]));
    }
    fprintf(f, "], \"max_seq\": %d, \"subset\": %lld, \"subset_seed\": %llu, \"batch_rows\": %d, \"batch_tokens\": %lld, "
               "\"pack\": %d, \"grad_accum\": %d, \"seed\": %llu, \"steps\": %lld, \"epochs\": %.9g, \"lr\": %.9g, "
               "\"kd\": %d, \"kd_beta\": %.9g, \"kd_temperature\": %.9g, \"kd_alpha\": %.9g, \"model\": ",
            o->max_seq, (long long)o->subset, (unsigned long long)o->subset_seed, o->batch_rows, (long long)o->batch_tokens,
            o->pack, o->grad_accum, (unsigned long long)o->seed, (long long)o->steps, o->epochs, o->lr,
            o->teacher || o->teacher_cache, o->kd_beta, o->kd_temperature, o->kd_alpha);
    distill_config_write_json(f, mc);
    fprintf(f, "}");
    n = ftell(f);
    s = (char *)malloc((size_t)n + 1);
    rewind(f);
    if (s && fread(s, 1, (size_t)n, f) == (size_t)n) s[n] = 0;
    else { free(s); s = NULL; }
    fclose(f);
    return s;
}

/* ---- loss.svg: the run's curves, redrawn from metrics.jsonl ----------------------------------
   The trainer logs one line per step to OUT/metrics.jsonl (step, loss, lr, and eval_loss on the
   steps that evaluated). The plot is drawn from that log rather than from the step callback's
   values, so that a resumed run's plot holds its whole history (resume truncates the log to the
   checkpoint). The log is read incrementally: each redraw parses only the lines appended since
   the last one. A log that restarts at a lower step (a new run in an old --out, without
   --resume) is plotted from the restart on. Every point is drawn: the train-loss and LR lines
   have one point per logged step. */
typedef struct {
    double *step, *loss, *lr, *estep, *eloss;
    int n, ne, cap;
    long offset;         /* bytes of metrics.jsonl read so far (whole lines) */
    const char *out;
} train_curves;

static int curves_push(train_curves *c, double step, double loss, double lr, double eloss) {
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 256, k;
        double **a[5];
        a[0] = &c->step; a[1] = &c->loss; a[2] = &c->lr; a[3] = &c->estep; a[4] = &c->eloss;
        for (k = 0; k < 5; k++) {
            double *p = (double *)realloc(*a[k], (size_t)nc * sizeof(double));
            if (!p) return -1;
            *a[k] = p;
        }
        c->cap = nc;
    }
    if (c->n && step <= c->step[c->n - 1]) c->n = c->ne = 0;   /* the log restarted */
    c->step[c->n] = step; c->loss[c->n] = loss; c->lr[c->n] = lr;
    c->n++;
    if (eloss == eloss) { c->estep[c->ne] = step; c->eloss[c->ne] = eloss; c->ne++; }
    return 0;
}

static void curves_free(train_curves *c) {
    free(c->step); free(c->loss); free(c->lr); free(c->estep); free(c->eloss);
    memset(c, 0, sizeof *c);
}

/* Read the whole lines appended to OUT/metrics.jsonl since the last call. 0, or -1 (err set). */
static int curves_update(train_curves *c, distill_error *err) {
    char path[1200], line[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->out);
    f = fopen(path, "rb");
    if (!f) return 0;   /* nothing logged yet */
    if (fseek(f, c->offset, SEEK_SET) != 0) { fclose(f); return 0; }
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        distill_json *j;
        const distill_json *st, *lo, *lr, *ev;
        if (len == 0 || line[len - 1] != '\n') break;   /* a line being written: next time */
        c->offset += (long)len;
        j = distill_json_parse(line, len - 1, path, 0, NULL);
        st = j ? distill_json_get(j, "step") : NULL;
        lo = j ? distill_json_get(j, "loss") : NULL;
        lr = j ? distill_json_get(j, "lr") : NULL;
        ev = j ? distill_json_get(j, "eval_loss") : NULL;
        if (st && lo && lr && st->type == DISTILL_JSON_NUMBER && lo->type == DISTILL_JSON_NUMBER && lr->type == DISTILL_JSON_NUMBER &&
            curves_push(c, st->num, lo->num, lr->num, ev && ev->type == DISTILL_JSON_NUMBER ? ev->num : NAN) != 0) {
            distill_json_free(j);
            fclose(f);
            snprintf(err->msg, sizeof err->msg, "out of memory");
            return -1;
        }
        distill_json_free(j);
    }
    fclose(f);
    return 0;
}

/* Write OUT/loss.svg (atomically, through the library's SVG writer): the train loss and the eval
   loss (markers) against the step in one panel, the learning rate in the other. */
static int train_plot(train_curves *c, distill_error *err) {
    char path[1200], title[1200];
    distill_plot_series ls[2], lrs;
    distill_plot_panel pn[2];
    if (curves_update(c, err) != 0) return -1;
    if (c->n == 0) return 0;
    memset(ls, 0, sizeof ls);
    memset(&lrs, 0, sizeof lrs);
    memset(pn, 0, sizeof pn);
    ls[0].label = "train loss"; ls[0].x = c->step; ls[0].y = c->loss; ls[0].n = c->n;
    ls[1].label = "eval loss"; ls[1].x = c->estep; ls[1].y = c->eloss; ls[1].n = c->ne; ls[1].markers = 1;
    lrs.label = "learning rate"; lrs.x = c->step; lrs.y = c->lr; lrs.n = c->n; lrs.color = "#2ca02c";
    pn[0].title = "loss"; pn[0].xlabel = "step"; pn[0].ylabel = "cross-entropy (nats/token)";
    pn[0].series = ls; pn[0].n_series = 2;
    pn[1].title = "learning rate"; pn[1].xlabel = "step"; pn[1].ylabel = "lr";
    pn[1].series = &lrs; pn[1].n_series = 1;
    snprintf(title, sizeof title, "distill train: %s", c->out);
    snprintf(path, sizeof path, "%s/loss.svg", c->out);
    return distill_svg_save(path, title, pn, 2, 520, 360, err);
}

/* The step callback: when the trainer has written a new checkpoint since the last call, the
   plot is redrawn (metrics.jsonl then holds every step up to that checkpoint). */
typedef struct { distill_trainer *T; train_curves curves; char last[1200]; int warned; } train_plotter;
static int train_plot_on_step(void *ctx, const distill_step_info *in) {
    train_plotter *p = (train_plotter *)ctx;
    const char *ck = distill_trainer_last_checkpoint(p->T);
    distill_error err;
    (void)in;
    if (!ck[0] || !strcmp(ck, p->last)) return 0;
    snprintf(p->last, sizeof p->last, "%s", ck);
    if (train_plot(&p->curves, &err) != 0 && !p->warned) {
        fprintf(stderr, "distill train: warning: loss.svg: %s\n", err.msg);
        p->warned = 1;
    }
    return 0;
}

int cli_train(int argc, char **argv) {
    train_opts o;
    distill_error err;
    distill_tokenizer *tok = NULL;
    distill_dataset *ds = NULL, *full = NULL, *eds = NULL;
    distill_loader *L = NULL, *EL = NULL;
    distill_loader_source ls, els;
    distill_model *m = NULL, *teacher = NULL;
    distill_topk_cache *cache = NULL;
    distill_trainer *T = NULL;
    distill_data_options dopt;
    distill_loader_options lopt;
    distill_train_config tc;
    char *cj = NULL, path[1024];
    int i, rc = 1, shard_rows, lock = -1, run_rc;
    const distill_comm *comm = cli_comm();
    train_plotter plotter;

    memset(&o, 0, sizeof o);
    memset(&plotter, 0, sizeof plotter);
    o.max_seq = 512; o.grad_accum = 1; o.batch_rows = 8; o.keep = 3; o.top_k = 32;
    o.dim = 128; o.layers = 4; o.heads = 4; o.kv_heads = 4; o.hidden = 352;
    o.eval_batches = 16; o.log_every = 10; o.seed = 1; o.subset_seed = 1; o.epochs = 1.0;
    o.lr = 3e-4; o.min_lr_ratio = 0.1; o.warmup = -1; o.warmup_ratio = 0.0; o.weight_decay = 0.1; o.grad_clip = 1.0;
    o.save_every_minutes = 10.0;
    o.beta1 = 0.9; o.beta2 = 0.95; o.rope_theta = 10000.0; o.kd_beta = 0.0; o.kd_temperature = 1.0; o.kd_alpha = 1.0;
    i = cli_parse(&train_cmd, &o, argc, argv, NULL, NULL);
    if (i != 0) return i == CLI_HELP ? 0 : 2;
    if (o.kd_loss) o.kd_beta = !strcmp(o.kd_loss, "fkl") ? 0.0 : !strcmp(o.kd_loss, "rkl") ? 1.0 : 0.5;
    if (!o.out && !o.build_cache) return cli_usage_error(&train_cmd, "--out is required (or --build-cache FILE) (see distill train --help)");
    if (o.threads > 0) distill_set_threads(o.threads);
    /* one trainer per --out (rank 0 writes there): refused at once, before the data is loaded */
    if (o.out && !o.build_cache && comm->rank == 0) {
        if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "distill train: %s: cannot create the output directory: %s\n", o.out, strerror(errno));
            goto done;
        }
        lock = distill_dir_lock(o.out, &err);
        if (lock < 0) { fprintf(stderr, "distill train: %s\n", err.msg); cli_fail_all(1); goto done; }
    }
    if (lock >= 0) {   /* OUT/train-config.json: the resolved options, a --config file that repeats the run */
        distill_atomic_file af;
        snprintf(path, sizeof path, "%s/train-config.json", o.out);
        if (distill_atomic_open(&af, path, &err) != 0) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
        cli_opts_write_json(&train_cmd, &o, af.f);
        if (distill_atomic_commit(&af, &err) != 0) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    }
    cli_catch_stop_signals();
    if (comm->size > 1) {
        if (o.batch_rows < comm->size) {
            fprintf(stderr, "distill train: --batch-rows (%d) must be at least the number of ranks (%d): every rank "
                            "takes its share of each batch\n", o.batch_rows, comm->size);
            goto done2;
        }
        if (!(o.bucket_mb >= 0.0 && o.bucket_mb <= 65536.0)) { fprintf(stderr, "distill train: --bucket-mb must be in [0, 65536]\n"); goto done2; }
        if (comm->rank != 0) o.quiet = 1;   /* rank 0 speaks for the job */
    }
    /* the model holds activations for this rank's share of a batch only */
    shard_rows = ((o.batch_rows > 0 ? o.batch_rows : 64) + comm->size - 1) / comm->size;

    /* data */
    tok = distill_tokenizer_load(o.tokenizer, NULL, &err);
    if (!tok) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    dopt = distill_data_options_default();
    if (o.format && distill_data_format_parse(o.format, &dopt.format) != 0) { fprintf(stderr, "distill train: unknown --format '%s'\n", o.format); goto done; }
    if (o.tmpl && !(dopt.tmpl = distill_chat_template_get(o.tmpl))) { fprintf(stderr, "distill train: unknown --template '%s'\n", o.tmpl); goto done; }
    if (o.loss) {
        if (!strcmp(o.loss, "assistant")) dopt.loss = DISTILL_LOSS_ASSISTANT;
        else if (!strcmp(o.loss, "last")) dopt.loss = DISTILL_LOSS_LAST;
        else if (!strcmp(o.loss, "all")) dopt.loss = DISTILL_LOSS_ALL;
        else { fprintf(stderr, "distill train: --loss must be assistant, last or all\n"); goto done; }
    }
    dopt.filters = o.filters.v; dopt.n_filters = o.filters.n;
    dopt.map = o.maps.v; dopt.n_map = o.maps.n;
    dopt.max_seq = o.max_seq; dopt.truncate = o.truncate;
    full = distill_dataset_load(o.data, &dopt, tok, &err);
    if (!full) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    if (o.subset > 0) {
        distill_select_options so;
        memset(&so, 0, sizeof so);
        so.seed = o.subset_seed; so.n = o.subset; so.manifest = comm->rank == 0 ? o.manifest : NULL;
        ds = distill_dataset_select(full, &so, &err);
        if (!ds) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    } else ds = full;
    if (!o.quiet) printf("data: %s: %lld rows, %lld tokens (%lld supervised)\n", o.data, (long long)distill_dataset_size(ds),
                         (long long)distill_dataset_stats(full)->tokens, (long long)distill_dataset_stats(full)->supervised_tokens);

    /* teacher */
    if (o.teacher) {
        teacher = distill_model_load(o.teacher, o.batch_rows > 0 ? shard_rows : 8, o.max_seq, NULL, &err);
        if (teacher && o.teacher_weights && !strcmp(o.teacher_weights, "bf16") && distill_model_to_bf16(teacher, &err) != 0) {
            distill_model_free(teacher);
            teacher = NULL;
        }
        if (!teacher) { fprintf(stderr, "distill train: teacher: %s\n", err.msg); goto done; }
        if (teacher->cfg.vocab_size != distill_tokenizer_vocab_size(tok) && teacher->cfg.vocab_size < distill_tokenizer_vocab_size(tok)) {
            fprintf(stderr, "distill train: the teacher's vocabulary (%d) is smaller than the tokenizer's (%d)\n",
                    teacher->cfg.vocab_size, distill_tokenizer_vocab_size(tok));
            goto done;
        }
    }
    if (o.build_cache) {
        double t0 = distill_time_seconds();
        if (!teacher) { fprintf(stderr, "distill train: --build-cache needs --teacher\n"); goto done; }
        /* under mpirun each rank computes every P-th block of rows; rank 0 joins them */
        if (distill_topk_cache_build_comm(teacher, ds, o.top_k, o.batch_rows, o.build_cache, comm, &err) != 0) {
            fprintf(stderr, "distill train: %s\n", err.msg);
            goto done;
        }
        if (comm->rank == 0)
            printf("wrote %s: top-%d teacher cache for %lld rows in %.1fs%s\n", o.build_cache, o.top_k,
                   (long long)distill_dataset_size(ds), distill_time_seconds() - t0, comm->size > 1 ? " (all ranks)" : "");
        rc = 0;
        goto done;
    }

    /* student */
    if (o.init) {
        m = distill_model_load(o.init, shard_rows, o.max_seq, NULL, &err);
        if (!m) { fprintf(stderr, "distill train: --init: %s\n", err.msg); goto done; }
    } else {
        distill_config mc = distill_config_default();
        mc.vocab_size = teacher ? teacher->cfg.vocab_size : distill_tokenizer_vocab_size(tok);
        mc.dim = o.dim; mc.n_layers = o.layers; mc.n_heads = o.heads; mc.n_kv_heads = o.kv_heads; mc.hidden_dim = o.hidden;
        mc.qkv_bias = o.qkv_bias; mc.tie_embeddings = !o.untied; mc.rope_theta = (float)o.rope_theta;
        m = distill_model_create(&mc, shard_rows, o.max_seq, o.seed, &err);
        if (!m) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    }
    if (m->cfg.vocab_size < distill_tokenizer_vocab_size(tok)) {
        fprintf(stderr, "distill train: the model's vocabulary (%d) is smaller than the tokenizer's (%d)\n",
                m->cfg.vocab_size, distill_tokenizer_vocab_size(tok));
        goto done;
    }
    /* checkpoints carry the tokenizer and the template name: generate/eval/export need no --tokenizer */
    if (distill_model_set_tokenizer(m, tok, o.tmpl ? o.tmpl : "chatml", &err) != 0) {
        fprintf(stderr, "distill train: %s\n", err.msg);
        goto done;
    }
    if (o.teacher_cache) {
        cache = distill_topk_cache_open(o.teacher_cache, m->cfg.vocab_size, distill_dataset_size(ds), &err);
        if (!cache) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    }

    /* loaders */
    lopt = distill_loader_options_default();
    lopt.batch_rows = o.batch_rows;   /* also the cap on rows when --batch-tokens is given */
    lopt.token_budget = o.batch_tokens;
    lopt.seq_len = o.pack ? o.max_seq : 0;
    lopt.pack = o.pack;
    lopt.seed = o.seed;
    if (cache && o.pack) { fprintf(stderr, "distill train: --pack cannot be used with --teacher-cache\n"); goto done; }
    L = distill_loader_create(ds, &lopt, &err);
    if (!L) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    distill_loader_source_init(&ls, L, ds);
    if (o.eval_data) {
        distill_loader_options eo = lopt;
        eds = distill_dataset_load(o.eval_data, &dopt, tok, &err);
        if (!eds) { fprintf(stderr, "distill train: --eval-data: %s\n", err.msg); goto done; }
        eo.shuffle = 0;
        EL = distill_loader_create(eds, &eo, &err);
        if (!EL) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
        distill_loader_source_init(&els, EL, eds);
    }

    /* trainer */
    tc = distill_train_default();
    tc.max_steps = o.steps;
    tc.epochs = o.epochs;
    tc.batch_rows = o.batch_rows > 0 ? o.batch_rows : 8;
    tc.grad_accum = o.grad_accum;
    tc.optim.lr = (float)o.lr; tc.optim.min_lr_ratio = (float)o.min_lr_ratio; tc.optim.weight_decay = (float)o.weight_decay;
    tc.optim.grad_clip = (float)o.grad_clip; tc.optim.beta1 = (float)o.beta1; tc.optim.beta2 = (float)o.beta2;
    tc.optim.warmup_steps = o.warmup; tc.optim.warmup_ratio = (float)o.warmup_ratio;
    if (o.warmup < 0 && o.warmup_ratio <= 0.0) { tc.optim.warmup_steps = -1; tc.optim.warmup_ratio = 0.05f; }
    if (o.schedule) {
        if (!strcmp(o.schedule, "cosine")) tc.optim.schedule = DISTILL_SCHED_COSINE;
        else if (!strcmp(o.schedule, "linear")) tc.optim.schedule = DISTILL_SCHED_LINEAR;
        else if (!strcmp(o.schedule, "constant")) tc.optim.schedule = DISTILL_SCHED_CONSTANT;
        else { fprintf(stderr, "distill train: --schedule must be cosine, linear or constant\n"); goto done; }
    }
    if (o.precision) {
        if (!strcmp(o.precision, "fp32")) tc.precision = DISTILL_PRECISION_FP32;
        else if (!strcmp(o.precision, "bf16")) tc.precision = DISTILL_PRECISION_BF16;
        else { fprintf(stderr, "distill train: --precision must be fp32 or bf16\n"); goto done; }
        if (teacher) distill_model_set_precision(teacher, tc.precision);
    }
    tc.eval_every = o.eval_every; tc.eval_batches = o.eval_batches;
    tc.out_dir = o.out; tc.save_every = o.save_every; tc.keep_last = o.keep; tc.log_every = o.log_every;
    tc.save_every_seconds = o.save_every_minutes * 60.0;
    tc.no_lock = 1;   /* held above */
    tc.stop_flag = cli_stop_flag();
    tc.progress = !o.quiet;
    tc.kd = teacher || cache;
    tc.kdc.alpha = (float)o.kd_alpha; tc.kdc.beta = (float)o.kd_beta; tc.kdc.temperature = (float)o.kd_temperature;
    tc.seed = o.seed;
    tc.comm_overlap = o.overlap && !o.no_overlap;
    tc.comm_bucket_bytes = (size_t)(o.bucket_mb * 1048576.0);
    cj = config_json(&o, &m->cfg);
    tc.config_json = cj;
    T = distill_trainer_create(m, &ls.src, EL ? &els.src : NULL, &tc, &err);
    if (!T) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    if (distill_trainer_set_comm(T, comm, &err) != 0) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    if (comm->size > 1 && !o.quiet)
        printf("data parallel: %d ranks (%s), %d rows per batch = %d..%d per rank, %d threads per rank\n", comm->size,
               comm->name, o.batch_rows, o.batch_rows / comm->size, shard_rows, distill_get_threads());
    if (teacher && distill_trainer_set_teacher(T, teacher, &err) != 0) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    if (cache && distill_trainer_set_cache(T, cache, &err) != 0) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    if (o.resume.on) {
        /* bare --resume in a job script that both starts and continues a run: with no checkpoint
           in --out yet, start from scratch; an explicit --resume PATH must exist */
        if (!o.resume.value && !has_checkpoint(o.out)) {
            if (!o.quiet) printf("no checkpoint in %s yet: starting from scratch\n", o.out);
        } else {
            if (distill_trainer_resume(T, o.resume.value ? o.resume.value : o.out, &err) != 0) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
            if (!o.quiet) printf("resumed at step %lld\n", (long long)distill_trainer_steps_done(T));
        }
    }
    if (!o.quiet)
        printf("model: %zu parameters (dim %d, layers %d, heads %d/%d, vocab %d); %s; %lld steps\n", m->num_params,
               m->cfg.dim, m->cfg.n_layers, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.vocab_size,
               teacher ? "logit distillation from an in-process teacher" : cache ? "logit distillation from a top-k cache"
                                                                         : "SFT on the data (sequence-level distillation)",
               (long long)distill_trainer_total_steps(T));
    if (*cli_stop_flag() && comm->size == 1) {   /* while loading: nothing trained, nothing to save
                                                    (ranks instead stop together after one step) */
        fprintf(stderr, "interrupted before the first step: nothing new to save\n");
        rc = cli_stop_status(*cli_stop_flag());
        goto done;
    }
    plotter.T = T;
    plotter.curves.out = o.out;
    snprintf(plotter.last, sizeof plotter.last, "%s", distill_trainer_last_checkpoint(T));
    /* under MPI a callback costs an all-reduce per step: rank 0 plots at the end only */
    if (comm->size == 1 && o.out) distill_trainer_set_callback(T, train_plot_on_step, &plotter);
    run_rc = distill_trainer_run(T, &err);
    if (comm->rank == 0 && o.out) {   /* the whole run, also when it stopped early or failed */
        distill_error perr;
        if (train_plot(&plotter.curves, &perr) != 0) fprintf(stderr, "distill train: warning: loss.svg: %s\n", perr.msg);
    }
    if (run_rc != 0) {
        if (comm->size > 1) fprintf(stderr, "distill train: rank %d: %s\n", comm->rank, err.msg);
        else fprintf(stderr, "distill train: %s\n", err.msg);
        goto done;
    }
    if (distill_trainer_stopped(T)) {
        /* a signal, here or on another rank (the step's all-reduce carried it) */
        if (comm->rank == 0)
            fprintf(stderr, "interrupted at step %lld: saved %s; continue with --resume\n",
                    (long long)distill_trainer_steps_done(T), distill_trainer_last_checkpoint(T));
        /* no rank exits before rank 0 has saved: a launcher ends the whole job at the first
           non-zero exit */
        if (comm->size > 1 && comm->barrier) comm->barrier(comm, &err);
        rc = cli_stop_status(*cli_stop_flag());
        goto done;
    }
    if (comm->size > 1 && !o.quiet) {
        double ar, wait;
        size_t bytes;
        distill_trainer_comm_stats(T, &ar, &wait, &bytes);
        printf("all-reduce: %.2f MB per step, %.3f s in all-reduce (%.3f s waiting after backward) over %lld steps\n",
               (double)bytes / 1e6, ar, wait, (long long)distill_trainer_steps_done(T));
    }
    snprintf(path, sizeof path, "%s/model.dstl", o.out);
    if (comm->rank == 0 && distill_checkpoint_write(path, m, 0, NULL, NULL, 0, &err) != 0) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
    if (!o.quiet) printf("wrote %s\n", path);
    /* a signal that came while the last steps or the model were being written: the work is
       complete, but the caller asked to stop, so say so with the status (scripts stop too) */
    rc = *cli_stop_flag() ? cli_stop_status(*cli_stop_flag()) : 0;
done:
    curves_free(&plotter.curves);
    distill_trainer_free(T);
    distill_topk_cache_free(cache);
    distill_model_free(m);
    distill_model_free(teacher);
    distill_loader_free(L);
    distill_loader_free(EL);
    if (ds && ds != full) distill_dataset_free(ds);
    distill_dataset_free(full);
    distill_dataset_free(eds);
    distill_tokenizer_free(tok);
    free(cj);
    distill_dir_unlock(lock);
    return rc;
done2:
    distill_dir_unlock(lock);
    return 2;
}
