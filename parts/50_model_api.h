/* ===================================================================================== */
/* PUBLIC API: model forward/backward, losses, optimizer  (owner: core issue. These       */
/* declarations are the contract other parts code against; the owner may add fields and  */
/* functions but not rename or change the meaning of what is here.)                       */
/* ===================================================================================== */

/* Model hyper-parameters: a Llama / Qwen2-style decoder. */
typedef struct distill_config {
    int vocab_size;        /* V */
    int dim;               /* C */
    int n_layers;          /* L */
    int n_heads;           /* NH; head size HS = C / NH */
    int n_kv_heads;        /* grouped-query attention: divides n_heads */
    int hidden_dim;        /* SwiGLU FFN width */
    float rope_theta;      /* 10000 for Llama, 1e6 for Qwen2 */
    float norm_eps;        /* RMSNorm epsilon */
    int qkv_bias;          /* 1: q/k/v projections have a bias (Qwen2) */
    int tie_embeddings;    /* 1: the LM head is the token embedding */
    float init_std;        /* normal(0, init_std) initialisation, 0.02 by default */
    int scale_residual_init; /* 1: residual projections (o, down) get init_std/sqrt(2L) */
} distill_config;

DISTILL_API distill_config distill_config_default(void);
/* 0 if valid, else -1 with a message naming the field, e.g.
   "n_heads (6) must be divisible by n_kv_heads (4)". */
DISTILL_API int distill_config_validate(const distill_config *cfg, distill_error *err);

/* One parameter tensor of the size table. Every tensor is a slice of one aligned buffer; the
   gradients and the AdamW moments use the same layout (same offsets). */
typedef struct distill_tensor_info {
    char name[64];         /* Hugging Face Llama/Qwen2 name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    int ndim;
    int shape[2];
    size_t offset, numel;  /* in floats, into params/grads/m/v */
    int decay;             /* 1: AdamW applies weight decay to this tensor */
} distill_tensor_info;

/* A batch. tokens and targets are (B,T) row-major; a target < 0 is not supervised. weights
   (B,T) is the per-token loss weight (NULL: 1 where target >= 0). lengths (B) is the number of
   valid positions per row (NULL: all T); positions past it are ignored entirely. For packing,
   segments (B,T) gives a segment id per position (NULL: one segment per row): attention never
   crosses a segment boundary, and positions (B,T) (NULL: 0..T-1) feed RoPE. */
typedef struct distill_batch {
    int B, T;
    const int32_t *tokens;
    const int32_t *targets;
    const float *weights;
    const int *lengths;
    const int32_t *segments;
    const int32_t *positions;
} distill_batch;

/* What a forward pass reports over the supervised positions. */
typedef struct distill_stats {
    double loss;           /* sum(w * loss_token) / sum(w) */
    double weight_sum;     /* sum of loss weights = supervised tokens for 0/1 masks */
    double accuracy;       /* share of supervised tokens where argmax(logits) == target */
    double entropy;        /* mean predictive entropy (nats) over supervised tokens */
    int64_t tokens;        /* valid positions in the batch */
} distill_stats;

/* The fused LM head processes positions in chunks: logits for `n` positions (n,V) are computed,
   handed to a loss, and the loss writes dlogits (n,V) in place before the chunk is discarded, so
   B*T*V is never resident. The default loss is weighted cross-entropy; the trainer plugs in
   logit distillation here. `pos` lists the flat indices (b*T+t) of the n positions. The loss
   adds its contributions (unnormalised sums) to *stats and scales dlogits by `grad_scale`
   (1/total weight of the whole accumulated batch). Called from worker threads: must only touch
   its own chunk and per-thread accumulators. */
typedef struct distill_head_loss {
    void (*fn)(void *ctx, const int64_t *pos, int n, float *logits_to_dlogits, int V,
               const int32_t *targets, const float *weights, float grad_scale,
               int compute_grad, distill_stats *stats_acc, int thread);
    void *ctx;
} distill_head_loss;

/* Views of one layer's tensors inside distill_model.params (NULL where absent, e.g. biases
   without qkv_bias). A top-level type (not nested in distill_model) so C++ can name it. */
typedef struct distill_layer_params {
    float *attn_norm;              /* (C) */
    float *wq, *wk, *wv, *wo;      /* (NH*HS,C) (NKV*HS,C) (NKV*HS,C) (C,NH*HS) */
    float *bq, *bk, *bv;           /* (NH*HS) (NKV*HS) (NKV*HS) */
    float *ffn_norm;               /* (C) */
    float *w_gate, *w_up, *w_down; /* (F,C) (F,C) (C,F) */
} distill_layer_params;

typedef struct distill_model distill_model;
struct distill_model {
    distill_config cfg;
    int max_batch, max_seq;            /* capacity given at creation */
    int n_tensors;
    distill_tensor_info *tensors;      /* the size table */
    size_t num_params;                 /* sum of numel over the table (the parameter count) */
    size_t num_floats;                 /* length of params/grads/m/v incl. 64-byte alignment padding
                                          between tensors (the padding stays zero) */
    float *params, *grads, *m, *v;     /* one layout; m/v allocated on the first optimizer step */
    float *tok_emb;                    /* (V,C) */
    float *lm_head;                    /* (V,C); == tok_emb when tied */
    float *final_norm;                 /* (C) */
    distill_layer_params *layers;      /* (L) */
    void *internal;                    /* activations and scratch: private to the implementation */
};

/* Create with explicit capacity: forward accepts any B <= max_batch, T <= max_seq. Parameters
   are initialised from `seed` (normal(0, init_std), residual projections scaled). */
DISTILL_API distill_model *distill_model_create(const distill_config *cfg, int max_batch,
                                                int max_seq, uint64_t seed, distill_error *err);
DISTILL_API void distill_model_free(distill_model *m);
DISTILL_API void distill_model_init_params(distill_model *m, uint64_t seed);
/* Bytes of activation memory a training step at capacity allocates (the header's formula). */
DISTILL_API size_t distill_model_activation_bytes(const distill_config *cfg, int B, int T);

/* Level 2: the separate lifecycle.
   forward: runs the model on the batch and, when batch->targets is non-NULL, the loss
   (head_loss NULL = weighted cross-entropy), filling *stats (may be NULL). grad_scale is
   1/(total loss weight of the accumulated batch); pass 0 to use this batch's own weight sum.
   backward: accumulates into m->grads the gradient of the last forward's loss.
   Gradient accumulation = forward+backward per micro-batch with the same grad_scale. */
DISTILL_API int  distill_model_forward(distill_model *m, const distill_batch *batch,
                                       const distill_head_loss *head_loss, float grad_scale,
                                       distill_stats *stats, distill_error *err);
DISTILL_API void distill_model_zero_grad(distill_model *m);
DISTILL_API void distill_model_backward(distill_model *m);
/* Logits (T,V) of the positions of row b of the last forward, recomputed for the caller
   (inference, tests). out must hold T*V floats. */
DISTILL_API void distill_model_logits(distill_model *m, int b, float *out);

/* AdamW and learning-rate schedules. */
typedef enum distill_schedule { DISTILL_SCHED_CONSTANT, DISTILL_SCHED_LINEAR, DISTILL_SCHED_COSINE } distill_schedule;
typedef struct distill_optim_config {
    float lr, beta1, beta2, eps, weight_decay;
    int decay_embeddings;      /* 1: weight decay also on the token embedding */
    float grad_clip;           /* global-norm clipping threshold; <= 0 disables */
    distill_schedule schedule;
    int64_t warmup_steps;      /* or warmup_ratio of total_steps when warmup_steps < 0 */
    float warmup_ratio;
    int64_t total_steps;
    float min_lr_ratio;        /* the floor: lr never decays below lr * min_lr_ratio */
} distill_optim_config;
DISTILL_API distill_optim_config distill_optim_default(void);
DISTILL_API float distill_lr_at(const distill_optim_config *oc, int64_t step); /* step from 0 */
/* One AdamW update of m->params from m->grads at `step` (0-based; bias correction uses step+1).
   Clips first when grad_clip > 0. Returns the global gradient norm before clipping. */
DISTILL_API double distill_adamw_step(distill_model *m, const distill_optim_config *oc, int64_t step);

/* Level 1: one call. zero_grad, forward, backward, AdamW. */
DISTILL_API int distill_train_step(distill_model *m, const distill_batch *batch,
                                   const distill_optim_config *oc, int64_t step,
                                   distill_stats *stats, double *grad_norm, distill_error *err);

/* Level 3: the per-op kernels on raw float* (forward next to backward). Shapes in comments
   at the definitions. */
DISTILL_API void distill_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
DISTILL_API void distill_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, const float *rstd, int N, int C);
DISTILL_API void distill_rope_forward(float *x, const int32_t *pos, int N, int nh, int hs, float theta);   /* in place */
DISTILL_API void distill_rope_backward(float *dx, const int32_t *pos, int N, int nh, int hs, float theta); /* in place */
DISTILL_API void distill_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
DISTILL_API void distill_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);

/* ---- additions by the core part (beyond the integrator's contract) ---- */

/* Notes on the contract above, as implemented:
   - The LM head (and so the head_loss callback) runs only on the positions that can carry
     loss: t < lengths[b], targets >= 0 and weight > 0. `pos` lists them in increasing order;
     the callback is invoked on blocks of 4 positions, each with its own zeroed stats slot, and
     the slots are summed in a fixed order (so 1 and N threads agree bit for bit). `thread` is
     in [0, distill_get_threads()).
   - stats: accuracy and entropy are weighted by the loss weights (for 0/1 masks: the share /
     mean over supervised tokens). With grad_scale > 0, loss = sum(w * loss_token) * grad_scale,
     i.e. this micro-batch's share of the accumulated mean.
   - backward reads the batch's arrays again (targets, weights for the recomputed head): keep
     them alive and unchanged between forward and backward.
   - A segment (packing) is a maximal run of equal segment ids within a row. */

/* Positions per chunk of the fused LM head: the head holds (DISTILL_HEAD_CHUNK, V) logits at a
   time. Define before including the implementation to trade memory for fewer, larger GEMMs. */
#ifndef DISTILL_HEAD_CHUNK
#define DISTILL_HEAD_CHUNK 128
#endif

/* 0 if the optimizer config is usable, else -1 with a message naming the field. */
DISTILL_API int distill_optim_validate(const distill_optim_config *oc, distill_error *err);
/* Index of the tensor with this Hugging Face name in m->tensors, or -1. */
DISTILL_API int distill_model_find_tensor(const distill_model *m, const char *name);
/* forward + backward in one call, accumulating into m->grads (the LM head's gradient is formed
   while the logits are in hand, so they are not recomputed: cheaper than the two calls).
   Use it for gradient accumulation: zero_grad once, then one call per micro-batch. */
DISTILL_API int distill_model_forward_backward(distill_model *m, const distill_batch *batch,
                                               const distill_head_loss *head_loss, float grad_scale,
                                               distill_stats *stats, distill_error *err);
/* The default head loss (weighted cross-entropy) as a distill_head_loss callback, so custom
   losses can call it and add their own terms. ctx is unused. Per position i with target y,
   weight w, logits z, p = softmax(z):  loss += w * (logsumexp(z) - z[y]),
   dlogits = grad_scale * w * (p - onehot(y)); stats get w*loss, w, w*[argmax==y], w*entropy. */
DISTILL_API void distill_ce_head_loss(void *ctx, const int64_t *pos, int n, float *logits_to_dlogits,
                                      int V, const int32_t *targets, const float *weights,
                                      float grad_scale, int compute_grad, distill_stats *stats_acc,
                                      int thread);

/* Level 3, continued (shapes at the definitions). */
DISTILL_API void distill_embedding_forward(float *out, const int32_t *tokens, const float *table, int N, int C);
DISTILL_API void distill_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int C);
/* Causal grouped-query attention with online softmax. q (B,T,NH,HS), k/v (B,T,NKV,HS),
   out (B,T,NH,HS), lse (B,NH,T). lengths (B) or NULL; kstart (B,T) or NULL: the first key
   position a query may see (the start of its packed segment). */
DISTILL_API void distill_attention_forward(float *out, float *lse, const float *q, const float *k,
                                           const float *v, const int *lengths, const int *kstart,
                                           int B, int T, int NH, int NKV, int HS);
DISTILL_API void distill_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                            const float *q, const float *k, const float *v,
                                            const float *out, const float *lse, const int *lengths,
                                            const int *kstart, int B, int T, int NH, int NKV, int HS);
