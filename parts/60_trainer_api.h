/* ===================================================================================== */
/* PUBLIC API: trainer, distillation losses, checkpoints, interop  (owner: trainer issue; */
/* the declarations here are the contract other parts code against.)                      */
/* ===================================================================================== */

/* Load any model file the library reads, format detected from the content: the library's own
   checkpoint, safetensors (+ config.json beside it), or a llama2.c .bin. The model is created
   with the given capacity. If tok_out is non-NULL and the format carries or implies a tokenizer
   (e.g. tokenizer.bin / tokenizer.json next to the model), it is loaded too, else *tok_out = NULL. */
DISTILL_API distill_model *distill_model_load(const char *path, int max_batch, int max_seq,
                                              distill_tokenizer **tok_out, distill_error *err);

/* ---- checksums ------------------------------------------------------------------------- */
/* CRC-32 (IEEE 802.3, the zlib/PNG one), incremental: crc = distill_crc32(0, p, n) then feed
   more with the returned value. SHA-256 (FIPS 180-4) for `distill info`. */
DISTILL_API uint32_t distill_crc32(uint32_t crc, const void *data, size_t n);
typedef struct distill_sha256 {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    unsigned char buf[64];
    size_t fill;
} distill_sha256;
DISTILL_API void distill_sha256_init(distill_sha256 *s);
DISTILL_API void distill_sha256_update(distill_sha256 *s, const void *data, size_t n);
DISTILL_API void distill_sha256_final(distill_sha256 *s, unsigned char out[32]);
/* out: 65 bytes, lowercase hex + NUL */
DISTILL_API void distill_sha256_hex(const void *data, size_t n, char out[65]);

/* ---- logit (token-level) distillation -----------------------------------------------------

   Per supervised position with student logits s (V) and teacher logits t (V), temperature tau:
       q = softmax(s / tau)   p = softmax(t / tau)
       D_beta(p, q) = KL(p || q)                                  beta = 0  (forward KL)
                    = KL(q || p)                                  beta = 1  (reverse KL)
                    = beta KL(p || m) + (1-beta) KL(q || m),      m = beta p + (1-beta) q
   the generalised Jensen-Shannon divergence of GKD (Agarwal et al. 2024) with TRL's convention
   (GKDTrainer: beta = 0 is forward KL, beta = 1 reverse KL, beta = 0.5 the symmetric JSD).
       loss = alpha * tau^2 * D_beta  +  (1 - alpha) * CE(softmax(s), target)
   tau^2 keeps the gradient scale of the soft term independent of tau (Hinton et al. 2015); the
   CE term always uses tau = 1. alpha = 1 is pure distillation, alpha = 0 plain SFT.

   From a top-k teacher cache the teacher is known only on k tokens plus the tail mass; the
   divergence is then taken between the two distributions collapsed onto k + 1 bins (the k
   tokens and "everything else"). At tau = 1 that is exact for the coarse-grained distributions;
   at tau != 1 the teacher's tail is treated as one pseudo-token of log-probability log(tail). */
typedef struct distill_kd_config {
    float alpha;          /* weight of the distillation term, in [0, 1] (default 1) */
    float beta;           /* 0 forward KL ... 1 reverse KL (default 0)             */
    float temperature;    /* tau > 0 (default 1)                                    */
} distill_kd_config;
DISTILL_API distill_kd_config distill_kd_default(void);
DISTILL_API int distill_kd_validate(const distill_kd_config *kc, distill_error *err);

/* What one position contributes (before its loss weight). */
typedef struct distill_kd_result {
    double loss;          /* alpha tau^2 D + (1-alpha) CE */
    double kd;            /* D_beta (without tau^2)       */
    double ce;            /* -log softmax(s)[target]      */
    double entropy;       /* entropy of softmax(s), nats  */
    int argmax;           /* argmax of s                  */
} distill_kd_result;

/* The loss of ONE position, in double, with its gradient d loss / d s written to grad (V
   doubles, may be NULL). The teacher is either full logits t (V) with topk_ids == NULL, or a
   top-k entry: topk_ids (k), topk_logp (k log-probabilities at tau = 1), tail_logp = log of the
   remaining mass (-INFINITY when none), k <= 4096. target < 0 drops the CE term. scratch is
   unused (kept for compatibility; may be NULL): the function allocates its work space.
   This is the reference the fused chunked head and the gradient checks build on. */
DISTILL_API distill_kd_result distill_kd_position(const double *s, int V, const double *t,
                                                  const int32_t *topk_ids, const float *topk_logp,
                                                  int k, float tail_logp, int32_t target,
                                                  const distill_kd_config *kc, double *grad,
                                                  double *scratch);

/* ---- top-k teacher cache --------------------------------------------------------------------
   A file of the teacher's k most likely tokens and their log-probabilities at every supervised
   position (target >= 0) of every row of a dataset, plus the tail mass, computed once and used by
   many student runs. Layout (little-endian):
       "DSTLTOPK" | u32 version (1) | u32 k | u32 vocab_size | u32 reserved
       | u64 n_rows | u64 n_positions
       | n_rows x { u64 first_position, u32 n_positions, u32 n_tokens, u64 row_hash }
       | n_positions x { i32 ids[k], f32 logp[k], f32 tail_logp }
       | u32 crc32 of everything before it
   row_hash is FNV-1a 64 over the row's tokens and targets, so a cache used with another dataset
   (or a reordered one) is refused row by row. */
typedef struct distill_topk_writer distill_topk_writer;
typedef struct distill_topk_cache distill_topk_cache;

DISTILL_API distill_topk_writer *distill_topk_writer_open(const char *path, int k, int vocab_size,
                                                          distill_error *err);
/* Append one row: tokens/targets (T), the teacher's logits (T,V) for it (rows of unsupervised
   positions are ignored). Rows must come in dataset order. */
DISTILL_API int distill_topk_writer_add_row(distill_topk_writer *w, const int32_t *tokens,
                                            const int32_t *targets, int T, const float *logits,
                                            distill_error *err);
DISTILL_API int distill_topk_writer_close(distill_topk_writer *w, distill_error *err); /* commits atomically */
DISTILL_API void distill_topk_writer_abort(distill_topk_writer *w);

/* Open and validate a cache (sizes against the file size, checksum, vocab). expect_vocab and
   expect_rows are checked when > 0. */
DISTILL_API distill_topk_cache *distill_topk_cache_open(const char *path, int expect_vocab,
                                                        int64_t expect_rows, distill_error *err);
DISTILL_API void distill_topk_cache_free(distill_topk_cache *c);
DISTILL_API int  distill_topk_cache_k(const distill_topk_cache *c);
DISTILL_API int  distill_topk_cache_vocab(const distill_topk_cache *c);
DISTILL_API int64_t distill_topk_cache_rows(const distill_topk_cache *c);
/* Check row `row` against the tokens/targets the trainer is about to use; 0 ok, -1 with a
   message naming the row when the cache was made for different data. */
DISTILL_API int distill_topk_cache_check_row(const distill_topk_cache *c, int64_t row,
                                             const int32_t *tokens, const int32_t *targets, int T,
                                             distill_error *err);

/* ---- the distillation head loss -------------------------------------------------------------
   A distill_head_loss (see the model part) that computes the loss above chunk by chunk inside
   the student's fused LM head. The teacher signal for a batch is set before each forward:
   - in-process teacher: distill_kd_head_run_teacher() runs the teacher on the batch and keeps
     its logits for the supervised positions only (captured through the teacher's own fused
     head, so unsupervised prompt positions cost nothing); memory n_supervised * V floats per
     micro-batch: the trainer bounds it by splitting a batch into micro-batches;
   - cache: distill_kd_head_set_cache_rows() gives the dataset row of each batch row. */
typedef struct distill_kd_head distill_kd_head;
DISTILL_API distill_kd_head *distill_kd_head_create(const distill_kd_config *kc, int V,
                                                    distill_error *err);
DISTILL_API void distill_kd_head_free(distill_kd_head *h);
DISTILL_API distill_head_loss distill_kd_head_loss(distill_kd_head *h);
/* Fails with a clear message when the teacher's vocabulary differs from the student's. */
DISTILL_API int distill_kd_head_run_teacher(distill_kd_head *h, distill_model *teacher,
                                            const distill_batch *batch, distill_error *err);
DISTILL_API int distill_kd_head_set_cache_rows(distill_kd_head *h, const distill_topk_cache *c,
                                               const int64_t *rows, const distill_batch *batch,
                                               distill_error *err);

/* ---- model files ----------------------------------------------------------------------------
   Own checkpoint format (".dstl"): "DSTLCKPT" | u32 version | u32 0 | u64 json_len | u64 data_len
   | u32 crc32(json + data) | u32 crc32(the 36 bytes before it) | json | data. The JSON holds the
   model config, the list of binary sections {name, offset, size} into data, and (for training
   checkpoints) the whole training state; sections hold the parameters ("params"), AdamW moments
   ("adam_m", "adam_v") and opaque blobs such as the data loader's cursor. */
typedef struct distill_ckpt_section {
    const char *name;
    const void *data;
    size_t size;
} distill_ckpt_section;

/* Write m (parameters; with_optimizer: also m->m and m->v when allocated), the JSON object text
   `train_json` (or NULL) stored under "train", and extra sections, atomically. */
DISTILL_API int distill_checkpoint_write(const char *path, const distill_model *m, int with_optimizer,
                                         const char *train_json, const distill_ckpt_section *extra,
                                         int n_extra, distill_error *err);

/* A checkpoint read back and verified (magic, version, sizes against the file size, checksums). */
typedef struct distill_checkpoint {
    char *path;
    unsigned char *file;
    size_t file_size;
    distill_json *json;                 /* the whole header document */
    const distill_json *train;          /* its "train" member or NULL */
    distill_config cfg;
    const unsigned char *data;
    size_t data_size;
} distill_checkpoint;
DISTILL_API distill_checkpoint *distill_checkpoint_read(const char *path, distill_error *err);
DISTILL_API void distill_checkpoint_free(distill_checkpoint *ck);
/* A section's bytes (NULL when absent). */
DISTILL_API const void *distill_checkpoint_section(const distill_checkpoint *ck, const char *name,
                                                   size_t *size);
/* Copy params (and with_optimizer: the AdamW moments, allocating m->m/m->v) into a model of the
   same config. */
DISTILL_API int distill_checkpoint_restore(const distill_checkpoint *ck, distill_model *m,
                                           int with_optimizer, distill_error *err);

/* Hugging Face safetensors: <path> gets the tensors (F32, HF Llama/Qwen2 names) and config.json
   is written beside it (LlamaForCausalLM, or Qwen2ForCausalLM when qkv_bias). Import reads
   F32/F16/BF16 and config.json from the same directory (through distill_model_load). */
DISTILL_API int distill_safetensors_save(const distill_model *m, const char *path, distill_error *err);
/* llama2.c legacy .bin (7 x int32 header, weights in llama2.c order, RoPE rows permuted back to
   the interleaved-pairs convention). Needs rope_theta 10000, norm_eps 1e-5, no qkv bias. */
DISTILL_API int distill_llama2c_save(const distill_model *m, const char *path, distill_error *err);
/* "checkpoint", "safetensors", "llama2c" or NULL (with a message) for an unreadable file. */
DISTILL_API const char *distill_model_file_format(const char *path, distill_error *err);
/* SHA-256 (hex) of the parameter buffer as little-endian float32 in size-table order. */
DISTILL_API void distill_model_sha256(const distill_model *m, char out[65]);
/* Write cfg as a JSON object (no trailing newline). */
DISTILL_API void distill_config_write_json(FILE *f, const distill_config *cfg);

/* ---- the training loop ------------------------------------------------------------------------
   A batch source hands the trainer batches and can save/restore its position exactly (the data
   layer's loader is one; tests and custom pipelines write their own). */
typedef struct distill_batch_source {
    void *ctx;
    /* Next batch (arrays valid until the next call). *rows / *n_rows (may be left NULL/0): the
       dataset rows of the batch, for the top-k cache. 0 ok, -1 error. */
    int (*next)(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err);
    /* Position in the data as three integers (e.g. epoch, rows served, a data fingerprint). */
    void (*get_state)(void *ctx, int64_t state[3]);
    int  (*set_state)(void *ctx, const int64_t state[3], distill_error *err);
    /* Epochs completed so far, fractional (for epoch-based stopping and logs). */
    double (*epoch)(void *ctx);
    int64_t rows_per_epoch;          /* for estimating the number of steps of an epoch run */
} distill_batch_source;

typedef struct distill_train_config {
    int64_t max_steps;        /* > 0: optimizer steps to train; else `epochs` decides        */
    double epochs;            /* used when max_steps <= 0 (default 1)                         */
    int batch_rows;           /* rows per micro-batch, for the step estimate of epoch runs    */
    int grad_accum;           /* micro-batches per optimizer step (default 1); the loss is
                                 normalised over the supervised weight of all of them          */
    distill_optim_config optim; /* total_steps is set by the trainer                          */
    int64_t eval_every;       /* evaluate on the held-out source every N steps (0: never)     */
    int64_t eval_batches;     /* batches per evaluation (default 16)                         */
    const char *out_dir;      /* checkpoints ckpt-<step>.dstl and metrics.jsonl (NULL: none)  */
    int64_t save_every;       /* checkpoint period in steps (0: only at the end)              */
    int keep_last;            /* checkpoints kept (default 3)                                 */
    const char *metrics_path; /* JSONL metrics (NULL: <out_dir>/metrics.jsonl if out_dir)     */
    int progress;             /* 1 (default): progress bar on a TTY, plain lines otherwise    */
    int64_t log_every;        /* plain-line period when stdout is not a TTY (default 10)      */
    int kd;                   /* 0: SFT (cross-entropy); 1: logit distillation                */
    distill_kd_config kdc;
    uint64_t seed;            /* the trainer's RNG (saved and restored with checkpoints)      */
    const char *config_json;  /* the whole run's configuration as a JSON object, stored in
                                 every checkpoint (NULL: none)                                 */
    const char *manifest_json;/* the subset manifest as JSON, stored in checkpoints           */
} distill_train_config;
DISTILL_API distill_train_config distill_train_default(void);

/* What the per-step callback and the metrics log see. */
typedef struct distill_step_info {
    int64_t step, total_steps;      /* step counts completed optimizer steps (1-based here) */
    double epoch, loss, accuracy, entropy, grad_norm, lr;
    int64_t tokens_seen;            /* valid positions processed so far */
    double tokens_per_sec, elapsed, eta;
    double eval_loss;               /* NAN unless this step evaluated */
} distill_step_info;
/* Return nonzero to stop training after this step. */
typedef int (*distill_step_callback)(void *ctx, const distill_step_info *info);

typedef struct distill_trainer distill_trainer;
DISTILL_API distill_trainer *distill_trainer_create(distill_model *student, const distill_batch_source *train,
                                                    const distill_batch_source *eval,
                                                    const distill_train_config *tc, distill_error *err);
DISTILL_API void distill_trainer_free(distill_trainer *t);
/* Logit distillation from a teacher in process, or from a top-k cache (one of the two). */
DISTILL_API int  distill_trainer_set_teacher(distill_trainer *t, distill_model *teacher, distill_error *err);
DISTILL_API int  distill_trainer_set_cache(distill_trainer *t, const distill_topk_cache *c, distill_error *err);
DISTILL_API void distill_trainer_set_callback(distill_trainer *t, distill_step_callback fn, void *ctx);
/* Restore from a checkpoint file, or from the newest checkpoint in a directory. A corrupt one
   is refused with a message naming it and the previous intact checkpoint, if any. */
DISTILL_API int  distill_trainer_resume(distill_trainer *t, const char *path, distill_error *err);
/* One optimizer step (grad_accum micro-batches). *info may be NULL. */
DISTILL_API int  distill_trainer_step(distill_trainer *t, distill_step_info *info, distill_error *err);
/* Train to the end (max_steps or epochs), with evaluation, checkpoints, logs and callback. */
DISTILL_API int  distill_trainer_run(distill_trainer *t, distill_error *err);
/* Mean cross-entropy over up to eval_batches batches of the eval source (from its start). */
DISTILL_API int  distill_trainer_evaluate(distill_trainer *t, distill_stats *out, distill_error *err);
/* Write a full training checkpoint (atomically) to path. */
DISTILL_API int  distill_trainer_save(distill_trainer *t, const char *path, distill_error *err);
DISTILL_API int64_t distill_trainer_steps_done(const distill_trainer *t);
DISTILL_API int64_t distill_trainer_total_steps(const distill_trainer *t);

/* The data layer's loader as a batch source (its cursor is the saved position; the dataset
   row indices of each batch feed the top-k cache). s must outlive the trainer. */
typedef struct distill_loader_source {
    distill_batch_source src;   /* pass &s.src to distill_trainer_create */
    distill_loader *loader;
    int64_t n_rows;
} distill_loader_source;
DISTILL_API void distill_loader_source_init(distill_loader_source *s, distill_loader *L,
                                            const distill_dataset *ds);

/* Compute a top-k teacher cache for every row of a dataset, in dataset order (rows as the loader
   builds them: targets are the next supervised tokens). batch_rows rows per teacher forward. */
DISTILL_API int distill_topk_cache_build(distill_model *teacher, const distill_dataset *ds, int k,
                                         int batch_rows, const char *path, distill_error *err);
