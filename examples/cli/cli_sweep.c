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

   Training uses the data layer's loader (packed sequences) and the core's distill_train_step
   with AdamW, linear warmup (10%) and cosine decay; checkpoints through the trainer part. */
#define _POSIX_C_SOURCE 200809L   /* mkdir */
#include "cli.h"
#include "world.h"
#include <string.h>
#include <stdlib.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/types.h>

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
        "  {\"sizes\": [30, 100, 300], \"seeds\": [1, 2], \"epochs\": 5, \"dim\": 96}\n");
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
        printf("  %-22s reused (%s)\n", name, rpath);
        return 0;
    }
    if (x->cfg.report_only) {
        printf("  %-22s not finished: left out of the report\n", name);
        return 1;
    }
    memset(res, 0, sizeof *res);
    snprintf(res->name, sizeof res->name, "%s", name);
    snprintf(res->group, sizeof res->group, "%s", group);
    snprintf(res->from, sizeof res->from, "%s", from);
    res->seed = seed;
    res->size = size;
    if (sweep_mkdir(dir) != 0) { fprintf(stderr, "distill sweep: cannot create %s\n", dir); return -1; }
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
    printf("  %-22s %5lld rows %5lld steps %8lld tok  loss %.3f  %5.1fs | pass@1 %.3f (easy %.2f hard %.2f)  "
           "complete %.2f  think %.2f  %4.1fs   [%.0fs]\n",
           name, (long long)(ds ? distill_dataset_size(ds) : 0), (long long)res->train_steps, (long long)res->train_tokens,
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

/* ---- the driver ----------------------------------------------------------------------------- */
int cli_sweep(int argc, char **argv) {
    sweep_ctx x;
    sweep_cfg *c = &x.cfg;
    sweep_result *res = NULL, stage0;
    distill_error err;
    const char *preset = "demo", *config = NULL;
    char path[1200], ck0[1300], cklast[1300], name[96], filt[64];
    int a, s, k, nr = 0, cap, rc = 1;
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
    if (config && sweep_load_config(c, config) != 0) return 2;
    for (a = 1; a < argc; a++) {
        int r2;
        if (!strcmp(argv[a], "--preset") || !strcmp(argv[a], "--config")) { a++; continue; }
        if (strncmp(argv[a], "--", 2) || a + 1 >= argc) {
            fprintf(stderr, "distill sweep: unexpected argument '%s'\n", argv[a]);
            sweep_usage(stderr);
            return 2;
        }
        r2 = sweep_set(c, argv[a] + 2, argv[a + 1], NULL);
        if (r2) {
            if (r2 == -2) fprintf(stderr, "distill sweep: unknown option '%s' (see distill sweep --help)\n", argv[a]);
            else fprintf(stderr, "distill sweep: %s: invalid value '%s'\n", argv[a], argv[a + 1]);
            return 2;
        }
        a++;
    }
    if (c->heads % c->kv_heads || c->dim % c->heads) {
        fprintf(stderr, "distill sweep: dim (%d) must divide by heads (%d), heads by kv_heads (%d)\n", c->dim, c->heads, c->kv_heads);
        return 2;
    }
    for (k = 0; k < c->n_sizes; k++)
        if (c->sizes[k] > c->n_train || (k && c->sizes[k] <= c->sizes[k - 1])) {
            fprintf(stderr, "distill sweep: sizes must increase and not exceed --train (%lld)\n", (long long)c->n_train);
            return 2;
        }
    if (c->eval_n > c->n_eval) c->eval_n = (int)c->n_eval;
    if (c->threads > 0) distill_set_threads(c->threads);
    x.tmpl = distill_chat_template_get("chatml");
    snprintf(x.world_dir, sizeof x.world_dir, "%s/world", c->out);
    snprintf(x.tok_path, sizeof x.tok_path, "%s/tokenizer.bin", c->out);
    snprintf(x.runs_dir, sizeof x.runs_dir, "%s/runs", c->out);
    if (sweep_mkdir(c->out) || sweep_mkdir(x.world_dir) || sweep_mkdir(x.runs_dir)) {
        fprintf(stderr, "distill sweep: cannot create %s\n", c->out);
        return 1;
    }
    printf("distill sweep -> %s  (preset %s; %d sizes x %d seeds, %s, %d threads)\n", c->out, preset, c->n_sizes,
           c->n_seeds, c->token_budget > 0 ? "fixed token budget" : "fixed epochs", distill_get_threads());

    /* 1. the world */
    snprintf(path, sizeof path, "%s/eval.jsonl", x.world_dir);
    if (!sweep_exists(path)) {
        world_gen_options wo = world_gen_options_default();
        world_gen_summary sum;
        wo.n_train = (uint64_t)c->n_train;
        wo.n_direct = (uint64_t)c->n_direct;
        wo.n_eval = (uint64_t)c->n_eval;
        wo.seed = c->world_seed;
        wo.error_rate = c->error_rate;
        if (world_write_files(x.world_dir, &wo, &sum, &err) != 0) { fprintf(stderr, "distill sweep: %s\n", err.msg); return 1; }
        world_print_summary(stdout, &wo, &sum);
    } else printf("world: reusing %s\n", x.world_dir);

    /* 2. the tokenizer */
    if (sweep_tokenizer(&x) != 0) return 1;
    x.eot = distill_chat_eot_id(x.tmpl, x.tok);
    printf("tokenizer: %d tokens (%s)  [%.0fs]\n", distill_tokenizer_vocab_size(x.tok), x.tok_path, distill_time_seconds() - x.t_start);

    /* data */
    x.train_all = sweep_load_data(&x, "train.jsonl", NULL);
    x.direct = sweep_load_data(&x, "direct.jsonl", NULL);
    if (!x.train_all || !x.direct || sweep_load_eval(&x) != 0) goto done;
    {
        const distill_data_stats *st = distill_dataset_stats(x.train_all), *sd = distill_dataset_stats(x.direct);
        printf("data: %lld traces (%.1f tokens/row, max %lld, %lld dropped > %d), %lld direct answers (%.1f tokens/row), %d eval problems\n",
               (long long)st->rows, (double)st->tokens / (double)(st->rows ? st->rows : 1), (long long)st->max_len,
               (long long)st->dropped, c->seq, (long long)sd->rows, (double)sd->tokens / (double)(sd->rows ? sd->rows : 1), x.n_eval);
    }
    if (distill_dataset_size(x.train_all) < c->sizes[c->n_sizes - 1]) {
        fprintf(stderr, "distill sweep: only %lld traces fit in %d tokens; the largest size is %lld\n",
                (long long)distill_dataset_size(x.train_all), c->seq, (long long)c->sizes[c->n_sizes - 1]);
        goto done;
    }
    cap = 2 + c->n_seeds * (c->n_sizes + 8);
    res = (sweep_result *)calloc((size_t)cap, sizeof *res);
    if (!res) goto done;

    /* 3. stage 0: the non-reasoning student */
    printf("stage 0: training the direct-answer student\n");
    if (sweep_run(&x, "stage0", "stage0", "scratch", 0, 0, x.direct, NULL, c->stage0_epochs, c->stage0_lr, 0, 1, &stage0) != 0) {
        fprintf(stderr, "distill sweep: no stage-0 student\n");
        goto done;
    }
    res[nr++] = stage0;
    snprintf(ck0, sizeof ck0, "%s/stage0/model.ckpt", x.runs_dir);

    /* 4. the data-quantity sweep */
    printf("sweep: nested subsets of the teacher's traces, fine-tuned from stage 0\n");
    for (s = 0; s < c->n_seeds; s++) {
        for (k = 0; k < c->n_sizes; k++) {
            distill_select_options so;
            distill_dataset *sub;
            memset(&so, 0, sizeof so);
            so.seed = c->seeds[s];
            so.n = c->sizes[k];
            sub = distill_dataset_select(x.train_all, &so, &err);
            if (!sub) { fprintf(stderr, "distill sweep: %s\n", err.msg); goto done; }
            snprintf(name, sizeof name, "s%llu_n%lld", (unsigned long long)c->seeds[s], (long long)c->sizes[k]);
            rc = sweep_run(&x, name, "sweep", "stage0", (int64_t)c->seeds[s], c->sizes[k], sub, ck0, c->epochs, c->lr, 1,
                           k == c->n_sizes - 1 && c->split_size > 0 && s < c->second_seeds, &res[nr]);
            distill_dataset_free(sub);
            if (rc < 0) { rc = 1; goto done; }
            if (rc == 0) nr++;
            rc = 1;
        }
    }

    /* 5. the second experiments: easy vs hard, right vs wrong, from stage 0 and from the largest */
    if (c->split_size > 0 && c->second_seeds > 0) {
        static const char *groups[4] = {"easy", "hard", "right", "wrong"};
        static const char *filters[4] = {"difficulty_label == \"EASY\"", "difficulty_label == \"HARD\"",
                                         "judgement == \"right\"", "judgement == \"wrong\""};
        distill_dataset *gds[4];
        int g;
        printf("second experiments: %lld traces per subset\n", (long long)c->split_size);
        for (g = 0; g < 4; g++) {
            gds[g] = sweep_load_data(&x, "train.jsonl", filters[g]);
            if (!gds[g]) { while (g-- > 0) distill_dataset_free(gds[g]); goto done; }
            if (distill_dataset_size(gds[g]) < c->split_size) {
                fprintf(stderr, "distill sweep: only %lld '%s' traces for split size %lld\n",
                        (long long)distill_dataset_size(gds[g]), groups[g], (long long)c->split_size);
                for (; g >= 0; g--) distill_dataset_free(gds[g]);
                goto done;
            }
        }
        (void)filt;
        for (s = 0; s < c->n_seeds && s < c->second_seeds; s++) {
            int from;
            snprintf(cklast, sizeof cklast, "%s/s%llu_n%lld/model.ckpt", x.runs_dir, (unsigned long long)c->seeds[s],
                     (long long)c->sizes[c->n_sizes - 1]);
            for (from = 0; from < 2; from++)
                for (g = 0; g < 4; g++) {
                    distill_select_options so;
                    distill_dataset *sub;
                    memset(&so, 0, sizeof so);
                    so.seed = c->seeds[s];
                    so.n = c->split_size;
                    sub = distill_dataset_select(gds[g], &so, &err);
                    if (!sub) { fprintf(stderr, "distill sweep: %s\n", err.msg); break; }
                    snprintf(name, sizeof name, "s%llu_%s_from%s", (unsigned long long)c->seeds[s], groups[g], from ? "L" : "0");
                    if (sweep_run(&x, name, groups[g], from ? "largest" : "stage0", (int64_t)c->seeds[s], c->split_size, sub,
                                  from ? cklast : ck0, c->epochs, c->lr, 1, 0, &res[nr]) == 0) nr++;
                    distill_dataset_free(sub);
                }
        }
        for (g = 0; g < 4; g++) distill_dataset_free(gds[g]);
    }

    /* 6. the report */
    if (sweep_report(&x, res, nr, &stage0) != 0) goto done;
    printf("\nresults: %s/results.md  %s/results.csv  %s/results.json  plot: %s/valley.svg  (%.0f s)\n", c->out, c->out,
           c->out, c->out, distill_time_seconds() - x.t_start);
    rc = 0;
done:
    free(res);
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
