/* distill train: supervised fine-tuning on teacher traces (sequence-level distillation) or logit
   distillation from a teacher model / a top-k teacher cache. Every option is a flag; a JSON
   config file (--config) gives the same options by name, and flags after it override it. */
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

static void train_usage(FILE *f) {
    fprintf(f,
"usage: distill train --data FILE.jsonl --tokenizer TOK --out DIR [options]\n"
"\n"
"  --config FILE.json     options as {\"name\": value} (flag names without --); flags override\n"
"data\n"
"  --data FILE            training data (.jsonl or .json array; messages, conversations,\n"
"                         prompt/completion, alpaca, text: see distill data --help)\n"
"  --eval-data FILE       held-out data for periodic evaluation\n"
"  --tokenizer FILE       tokenizer (tokenizer.json, vocab.json, tokenizer.bin, own format)\n"
"  --format NAME          auto|messages|conversations|prompt-completion|alpaca|text (auto)\n"
"  --template NAME        chatml|chatml-prefill|plain (chatml)\n"
"  --loss MODE            assistant|last|all: which tokens are supervised (assistant)\n"
"  --map SRC=DST          field mapping, e.g. question=prompt response=response (repeatable)\n"
"  --filter EXPR          keep rows matching, e.g. \"difficulty in {EASY, MEDIUM}\" (repeatable)\n"
"  --max-seq N            longest row in tokens (default 512); longer rows are dropped\n"
"  --truncate             cut long rows to --max-seq instead of dropping them\n"
"  --subset N             train on N rows of a seeded permutation (nested across N)\n"
"  --subset-seed S        permutation seed for --subset (1)\n"
"  --manifest FILE        write the chosen subset's row ids there\n"
"model\n"
"  --init FILE            start from a model file (own checkpoint, safetensors, llama2.c .bin)\n"
"  --dim N --layers N --heads N --kv-heads N --hidden N   a new model (defaults 128 4 4 4 352)\n"
"  --qkv-bias --untied --rope-theta X                      Qwen2-style options\n"
"batches and optimisation\n"
"  --batch-rows B         rows per micro-batch (8)      --batch-tokens N   or a token budget\n"
"  --pack                 pack several rows per sequence of --max-seq tokens\n"
"  --grad-accum K         micro-batches per step (1)    --seed S           data order seed (1)\n"
"  --steps N | --epochs E training length (1 epoch)\n"
"  --lr X (3e-4) --min-lr-ratio X (0.1) --warmup N (or --warmup-ratio X) --schedule cosine|linear|constant\n"
"  --weight-decay X (0.1) --grad-clip X (1.0) --beta1 X --beta2 X\n"
"  --threads N            worker threads (default: all cores)\n"
"  --precision fp32|bf16  linear layers' products: fp32 (default) or bf16 inputs with FP32 sums;\n"
"                         weights, gradients, optimizer, norms, attention stay FP32 (also the teacher's)\n");
    fprintf(f,
"evaluation, checkpoints, logs\n"
"  --out DIR              checkpoints ckpt-<step>.dstl, metrics.jsonl, final model.dstl\n"
"  --eval-every N (0) --eval-batches N (16) --save-every N (0: at the end) --keep K (3)\n"
"  --save-every-minutes M  also a checkpoint when M minutes passed since the last (10; 0: off)\n"
"  --log-every N          plain progress line period when stdout is not a terminal (10)\n"
"  --resume [DIR|FILE]    continue exactly from the newest checkpoint in --out (or the given one);\n"
"                         bare --resume with no checkpoint in --out yet starts from scratch\n"
"  --quiet                no progress output\n"
"  Ctrl-C, SIGTERM or SIGUSR1 (Slurm --signal=USR1@90): finish the step, save a checkpoint,\n"
"  exit 130 / 143 / 138; a second Ctrl-C or SIGTERM exits at once. One trainer per --out:\n"
"  a second one is refused, naming the holder's pid.\n"
"data parallel (a build with `make MPI=1`, started by mpirun/srun; see docs/cluster.md)\n"
"  mpirun -np P distill train ...   each rank takes B/P rows of every --batch-rows B batch;\n"
"                         gradients are summed with MPI_Allreduce; rank 0 writes the files\n"
"  --overlap              all-reduce the gradient in buckets while the backward pass runs\n"
"                         (default: one all-reduce after it; see docs/cluster.md)\n"
"  --bucket-mb X          bucket size in MiB for --overlap (4)\n"
"logit distillation (teacher and student share the tokenizer)\n"
"  --teacher FILE         teacher model in process      --teacher-cache FILE   or a top-k cache\n"
"  --kd-loss fkl|rkl|jsd  forward KL, reverse KL, JSD (sets --kd-beta 0, 1, 0.5)\n"
"  --kd-beta X            generalised JSD: 0 forward KL ... 1 reverse KL (TRL GKD convention)\n"
"  --kd-temperature X (1) --kd-alpha X (1: pure KD; loss = a*T^2*D + (1-a)*CE)\n"
"  --build-cache FILE     compute the teacher's top-k cache over --data and exit (under\n"
"                         mpirun the ranks share the rows; the file is the same)\n"
"  --top-k K              entries per position in the cache (32)\n");
}

/* Options gathered from the config file and the command line (last one wins). */
typedef struct {
    const char *data, *eval_data, *tokenizer, *format, *tmpl, *loss, *manifest, *init, *out, *resume;
    const char *teacher, *teacher_cache, *build_cache, *schedule, *kd_loss;
    const char *precision;
    const char *filters[32], *maps[32];
    int n_filters, n_maps, max_seq, truncate, pack, grad_accum, batch_rows, threads, keep, quiet, top_k;
    int dim, layers, heads, kv_heads, hidden, qkv_bias, untied, resume_flag, overlap, no_overlap;
    int64_t subset, steps, batch_tokens, warmup, eval_every, eval_batches, save_every, log_every;
    uint64_t seed, subset_seed;
    double epochs, lr, min_lr_ratio, warmup_ratio, weight_decay, grad_clip, beta1, beta2, rope_theta;
    double kd_beta, kd_temperature, kd_alpha, bucket_mb, save_every_minutes;
} train_opts;

static int parse_opt(train_opts *o, const char *name, const char *val, int *used_val) {
#define S(n, f) if (!strcmp(name, n)) { o->f = val; *used_val = 1; return val ? 0 : -1; }
#define I(n, f) if (!strcmp(name, n)) { *used_val = 1; if (!val) return -1; o->f = atoi(val); return 0; }
#define L(n, f) if (!strcmp(name, n)) { *used_val = 1; if (!val) return -1; o->f = (int64_t)strtoll(val, NULL, 10); return 0; }
#define D(n, f) if (!strcmp(name, n)) { *used_val = 1; if (!val) return -1; o->f = strtod(val, NULL); return 0; }
#define F(n, f) if (!strcmp(name, n)) { *used_val = 0; o->f = 1; return 0; }
    *used_val = 0;
    S("data", data) S("eval-data", eval_data) S("tokenizer", tokenizer) S("format", format)
    S("template", tmpl) S("loss", loss) S("manifest", manifest) S("init", init) S("out", out)
    S("teacher", teacher) S("teacher-cache", teacher_cache) S("build-cache", build_cache)
    S("schedule", schedule) S("kd-loss", kd_loss)
    S("precision", precision)
    I("max-seq", max_seq) I("grad-accum", grad_accum) I("batch-rows", batch_rows) I("threads", threads)
    I("keep", keep) I("top-k", top_k) I("dim", dim) I("layers", layers) I("heads", heads)
    I("kv-heads", kv_heads) I("hidden", hidden)
    L("subset", subset) L("steps", steps) L("batch-tokens", batch_tokens) L("warmup", warmup)
    L("eval-every", eval_every) L("eval-batches", eval_batches) L("save-every", save_every) L("log-every", log_every)
    D("epochs", epochs) D("lr", lr) D("min-lr-ratio", min_lr_ratio) D("warmup-ratio", warmup_ratio)
    D("weight-decay", weight_decay) D("grad-clip", grad_clip) D("beta1", beta1) D("beta2", beta2)
    D("save-every-minutes", save_every_minutes) D("rope-theta", rope_theta) D("kd-beta", kd_beta) D("kd-temperature", kd_temperature) D("kd-alpha", kd_alpha) D("bucket-mb", bucket_mb)
    F("truncate", truncate) F("pack", pack) F("qkv-bias", qkv_bias) F("untied", untied) F("quiet", quiet) F("overlap", overlap) F("no-overlap", no_overlap)
    if (!strcmp(name, "seed")) { *used_val = 1; if (!val) return -1; o->seed = strtoull(val, NULL, 10); return 0; }
    if (!strcmp(name, "subset-seed")) { *used_val = 1; if (!val) return -1; o->subset_seed = strtoull(val, NULL, 10); return 0; }
    if (!strcmp(name, "map")) {
        *used_val = 1;
        if (!val || o->n_maps == 32) return -1;
        o->maps[o->n_maps++] = val;
        return 0;
    }
    if (!strcmp(name, "filter")) {
        *used_val = 1;
        if (!val || o->n_filters == 32) return -1;
        o->filters[o->n_filters++] = val;
        return 0;
    }
    if (!strcmp(name, "resume")) {   /* optional value */
        o->resume_flag = 1;
        if (val && strncmp(val, "--", 2) != 0) { o->resume = val; *used_val = 1; }
        return 0;
    }
#undef S
#undef I
#undef L
#undef D
#undef F
    return -2;
}

/* The config file: every member becomes an option; numbers and strings as their text. The JSON
   document is kept alive (strings point into it). */
static int load_config(train_opts *o, const char *path, distill_json **keep) {
    distill_error err;
    distill_json *j = distill_json_parse_file(path, &err);
    size_t i;
    static char numbuf[64][32];
    int nb = 0;
    if (!j) { fprintf(stderr, "distill train: %s\n", err.msg); return -1; }
    if (j->type != DISTILL_JSON_OBJECT) { fprintf(stderr, "distill train: %s: expected a JSON object\n", path); distill_json_free(j); return -1; }
    for (i = 0; i < j->len; i++) {
        const distill_json *v = &j->items[i];
        const char *val = NULL;
        int used, rc;
        size_t a;
        if (v->type == DISTILL_JSON_STRING) val = v->str;
        else if (v->type == DISTILL_JSON_NUMBER && nb < 64) {
            if (v->is_int) snprintf(numbuf[nb], 32, "%lld", (long long)v->i64);
            else snprintf(numbuf[nb], 32, "%.17g", v->num);
            val = numbuf[nb++];
        } else if (v->type == DISTILL_JSON_FALSE) continue;
        else if (v->type == DISTILL_JSON_ARRAY) {
            for (a = 0; a < v->len; a++) {
                if (v->items[a].type != DISTILL_JSON_STRING || parse_opt(o, j->keys[i], v->items[a].str, &used) != 0) {
                    fprintf(stderr, "distill train: %s:%d: option '%s': bad list item\n", path, v->line, j->keys[i]);
                    distill_json_free(j);
                    return -1;
                }
            }
            continue;
        }
        rc = parse_opt(o, j->keys[i], val, &used);
        if (rc == -2) { fprintf(stderr, "distill train: %s:%d: unknown option '%s'\n", path, v->line, j->keys[i]); distill_json_free(j); return -1; }
        if (rc != 0) { fprintf(stderr, "distill train: %s:%d: option '%s': bad value\n", path, v->line, j->keys[i]); distill_json_free(j); return -1; }
    }
    *keep = j;
    return 0;
}

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
    for (i = 0; i < o->n_filters; i++) {
        if (i) fprintf(f, ", ");
        distill_json_write_string(f, o->filters[i], strlen(o->filters[i]));
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

int cli_train(int argc, char **argv) {
    train_opts o;
    distill_json *cfg_doc = NULL;
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
    int i, rc = 1, shard_rows, lock = -1;
    const distill_comm *comm = cli_comm();

    memset(&o, 0, sizeof o);
    o.max_seq = 512; o.grad_accum = 1; o.batch_rows = 8; o.keep = 3; o.top_k = 32;
    o.dim = 128; o.layers = 4; o.heads = 4; o.kv_heads = 4; o.hidden = 352;
    o.eval_batches = 16; o.log_every = 10; o.seed = 1; o.subset_seed = 1; o.epochs = 1.0;
    o.lr = 3e-4; o.min_lr_ratio = 0.1; o.warmup = -1; o.warmup_ratio = 0.0; o.weight_decay = 0.1; o.grad_clip = 1.0;
    o.save_every_minutes = 10.0;
    o.beta1 = 0.9; o.beta2 = 0.95; o.rope_theta = 10000.0; o.kd_beta = 0.0; o.kd_temperature = 1.0; o.kd_alpha = 1.0;
    for (i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { train_usage(stdout); return 0; }
    for (i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config") && i + 1 < argc && load_config(&o, argv[i + 1], &cfg_doc) != 0) return 2;
    for (i = 1; i < argc; i++) {
        int used, r;
        if (!strcmp(argv[i], "--config")) { i++; continue; }
        if (strncmp(argv[i], "--", 2) != 0) { fprintf(stderr, "distill train: unexpected argument '%s' (see --help)\n", argv[i]); goto done2; }
        r = parse_opt(&o, argv[i] + 2, i + 1 < argc ? argv[i + 1] : NULL, &used);
        if (r == -2) { fprintf(stderr, "distill train: unknown option '%s' (see --help)\n", argv[i]); goto done2; }
        if (r != 0) { fprintf(stderr, "distill train: option '%s' needs a value\n", argv[i]); goto done2; }
        i += used;
    }
    if (o.kd_loss) {
        if (!strcmp(o.kd_loss, "fkl")) o.kd_beta = 0.0;
        else if (!strcmp(o.kd_loss, "rkl")) o.kd_beta = 1.0;
        else if (!strcmp(o.kd_loss, "jsd")) o.kd_beta = 0.5;
        else { fprintf(stderr, "distill train: --kd-loss must be fkl, rkl or jsd\n"); goto done2; }
    }
    if (!o.data || !o.tokenizer || (!o.out && !o.build_cache)) {
        fprintf(stderr, "distill train: --data, --tokenizer and --out are required (see --help)\n");
        goto done2;
    }
    if (!(o.save_every_minutes >= 0.0)) { fprintf(stderr, "distill train: --save-every-minutes must be >= 0\n"); goto done2; }
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
    dopt.filters = o.filters; dopt.n_filters = o.n_filters;
    dopt.map = o.maps; dopt.n_map = o.n_maps;
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
    if (o.resume_flag) {
        /* bare --resume in a job script that both starts and continues a run: with no checkpoint
           in --out yet, start from scratch; an explicit --resume PATH must exist */
        if (!o.resume && !has_checkpoint(o.out)) {
            if (!o.quiet) printf("no checkpoint in %s yet: starting from scratch\n", o.out);
        } else {
            if (distill_trainer_resume(T, o.resume ? o.resume : o.out, &err) != 0) { fprintf(stderr, "distill train: %s\n", err.msg); goto done; }
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
    if (distill_trainer_run(T, &err) != 0) {
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
    distill_json_free(cfg_doc);
    distill_dir_unlock(lock);
    return rc;
done2:
    distill_json_free(cfg_doc);
    distill_dir_unlock(lock);
    return 2;
}
