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
   remaining mass (-INFINITY when none). target < 0 drops the CE term. scratch: 4*V doubles.
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
