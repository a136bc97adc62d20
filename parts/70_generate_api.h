/* ===================================================================================== */
/* PUBLIC API: generation and evaluation (owner: generation issue)                        */
/* ===================================================================================== */

/* ---- Evaluation metrics -----------------------------------------------------------------

   The paper's questions are "did the model finish?", "did it think?", "is the code right?".
   Every metric below is defined on one generation (the text the model produced after the
   prompt) and then averaged; the same definitions serve generations made here and generations
   made elsewhere (vLLM, transformers) read from JSONL, so models can be compared fairly.

   Think markers recognised: <think> ... </think> and <|begin_of_thought|> ... <|end_of_thought|>.
   Some chat templates put the opening tag in the PROMPT ("<|im_start|>assistant\n<think>\n");
   the analysis therefore also looks at the prompt: an opening tag in the prompt that the prompt
   does not close counts as opened. */

/* Why a generation ended. STOP: end-of-turn, EOS or a stop string before the token cap.
   LENGTH: it hit the cap (max new tokens or the context). UNKNOWN: read from a file that did
   not say (such samples are left out of completion_rate's denominator). */
typedef enum distill_finish {
    DISTILL_FINISH_UNKNOWN = 0, DISTILL_FINISH_STOP = 1, DISTILL_FINISH_LENGTH = 2
} distill_finish;
DISTILL_API const char *distill_finish_name(distill_finish f);   /* "unknown" "stop" "length" */
/* "stop", "eos", "end_turn", "stop_sequence" -> STOP; "length", "max_tokens" -> LENGTH;
   anything else (or NULL) -> UNKNOWN. */
DISTILL_API distill_finish distill_finish_parse(const char *s);

/* Unbiased pass@k for one problem with n samples of which c pass (Chen et al. 2021):
       pass@k = 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1..n} (1 - k/i)
   The product form needs no big binomials. When n - c < k every k-subset holds a pass: 1.
   Returns NaN for invalid input (k < 1, k > n, c < 0, c > n). */
DISTILL_API double distill_pass_at_k(int64_t n, int64_t c, int64_t k);

/* The structure of one generation. Offsets are bytes into the generated text. */
typedef struct distill_gen_analysis {
    int think_open;         /* an opening marker in the text, or left open by the prompt      */
    int think_close;        /* a closing marker in the text                                   */
    int think_both;         /* an opening marker followed (later) by a closing marker         */
    int open_in_prompt;     /* the opening marker came from the prompt                        */
    size_t think_begin, think_end; /* the think span [begin,end): after the opening marker up
                               to the closing one, or to the end of the text when unclosed;
                               0,0 when think_open == 0                                     */
    int has_code;           /* a fenced code block was found (see distill_extract_code)       */
    int code_closed;        /* ...and it has its closing fence                               */
    size_t code_begin, code_end;   /* the block's content, fences and language tag excluded   */
    size_t lang_begin, lang_end;   /* the language tag after the opening fence ("python")     */
    int strict;             /* a closing think marker followed by a complete fenced block     */
} distill_gen_analysis;

/* Analyse text[0..len) generated after prompt[0..prompt_len) (prompt may be NULL). */
DISTILL_API void distill_analyze_generation(const char *prompt, size_t prompt_len,
                                            const char *text, size_t len,
                                            distill_gen_analysis *out);

/* Code extraction as LiveCodeBench does it for reasoning models: the LAST fenced block after the
   LAST closing think marker. Without any think marker the whole text is searched; with a think
   block that never closes there is no answer yet, so no code. A fence is a line starting with
   ``` (up to 3 spaces of indent); the rest of that line is the language tag; the block ends at
   the next line starting with ``` or at a ``` ending the last line. An unclosed final block
   (truncated output) yields its content to the end of the text with *closed = 0.
   Returns 1 and the content span [*begin, *end) if a block was found, else 0. */
DISTILL_API int distill_extract_code(const char *prompt, size_t prompt_len, const char *text,
                                     size_t len, size_t *begin, size_t *end, int *closed);

/* Length of a span in tokens: with a tokenizer, the number of ids text[0..len) encodes to
   (special tokens allowed); without one (tok == NULL) the fallback is the number of
   whitespace-separated words, and the results say "think_tokens_unit": "words". */
DISTILL_API int64_t distill_count_tokens(const distill_tokenizer *tok, const char *text, size_t len);

/* One scored sample, the input of the aggregate metrics. */
typedef struct distill_sample_result {
    int64_t problem;        /* index of the problem this sample answers (0-based)            */
    distill_finish finish;
    int think_open, think_close, think_both, strict;  /* from distill_gen_analysis           */
    double think_tokens;    /* length of the think span; < 0 when think_open == 0            */
    int pass;               /* 1 pass, 0 fail, -1 not verified                                */
} distill_sample_result;

/* Fill a sample result from an analysis (problem, finish, think_tokens, pass set by caller). */
DISTILL_API void distill_sample_result_from_analysis(distill_sample_result *r,
                                                     const distill_gen_analysis *a);

/* Aggregates over a set of samples. A rate whose denominator is 0 is NaN (written as null).
     completion_rate        STOP / (STOP + LENGTH)        (UNKNOWN samples left out)
     strict_completion_rate share of all samples not cut by the cap (finish != LENGTH) whose
                            text has a closing think marker followed by a complete fenced block
     think_open_rate        share with an opening marker (prompt or text)
     think_close_rate       share with a closing marker
     think_both_rate        share with an opening marker followed by a closing marker
     think_tokens_mean/median  over the samples with an opening marker: the tokens from the
                            opening marker to the closing one (or to the end when unclosed)
   With a verifier (every sample has pass >= 0):
     pass_at_1              mean over problems of c/n
     pass_at_k[j]           mean over problems with n >= k[j] of the unbiased pass@k[j]
     accuracy_completed     passes / samples with finish == STOP
     accuracy_truncated     passes / samples with finish == LENGTH                        */
#define DISTILL_EVAL_MAX_K 16
typedef struct distill_eval_metrics {
    int64_t n, n_problems, n_finish_known, n_completed, n_truncated, n_think;
    double completion_rate, strict_completion_rate;
    double think_open_rate, think_close_rate, think_both_rate;
    double think_tokens_mean, think_tokens_median;
    int verified;
    double pass_at_1;
    int nk;
    int k[DISTILL_EVAL_MAX_K];
    double pass_at_k[DISTILL_EVAL_MAX_K];
    int64_t pass_at_k_problems[DISTILL_EVAL_MAX_K];   /* problems with n >= k that entered it */
    double accuracy_completed, accuracy_truncated;
} distill_eval_metrics;

/* Compute the aggregates of samples s[0..n) (in any order; problem ids need not be dense).
   ks[0..nk) are the k of pass@k (nk <= DISTILL_EVAL_MAX_K). 0 ok, -1 on invalid input. */
DISTILL_API int distill_eval_compute(const distill_sample_result *s, size_t n, const int *ks,
                                     int nk, distill_eval_metrics *out, distill_error *err);

/* Write the results as ONE JSON object (then a newline):
     {"n":..,"n_problems":..,"completion_rate":..,"strict_completion_rate":..,
      "think_open_rate":..,"think_close_rate":..,"think_both_rate":..,
      "think_tokens_mean":..,"think_tokens_median":..,"think_tokens_unit":"tokens"|"words",
      "n_completed":..,"n_truncated":..,"n_finish_known":..,"n_think":..,
      [with a verifier] "pass_at_1":..,"pass_at_k":{"1":..,"5":..},"accuracy_completed":..,
                        "accuracy_truncated":..,
      [when difficulties are given] "per_difficulty":{"easy":{same keys},"hard":{...}}}
   difficulty[p] is the difficulty label of problem p (NULL entries / NULL array: none); p
   ranges over the problem indices used in s, which must then be < n_difficulty.
   0 ok, -1 error. */
DISTILL_API int distill_eval_write_json(FILE *f, const distill_sample_result *s, size_t n,
                                        const char *const *difficulty, size_t n_difficulty,
                                        const int *ks, int nk, const char *think_unit,
                                        distill_error *err);

/* A verifier decides whether a generation solves its problem. It receives the eval record (the
   JSONL object the prompt came from, carrying whatever the check needs: tests, answer, ...)
   and the generated text; it returns 1 pass, 0 fail, -1 could not run (counted as a fail with
   the reason), and may write a short reason (NUL-terminated, at most reason_cap bytes).
   distill_extract_code gives the code the way graders read it. Called from one thread. */
typedef struct distill_verifier {
    int (*fn)(void *ctx, const distill_json *record, const char *text, size_t len,
              char *reason, size_t reason_cap);
    void *ctx;
} distill_verifier;

/* One line of the generations JSONL (the fields LiveCodeBench-style graders read):
     {"question_id":..,"sample":..,"difficulty":..,"finish_reason":"stop"|"length"|"unknown",
      "pass":true|false|null,"reason":..,"code":..,"lang":..,"code_closed":..,
      "think_open":..,"think_close":..,"think_tokens":..,"output_tokens":..,"text":..}
   question_id, difficulty, reason may be NULL (null); output_tokens < 0 is written null. */
typedef struct distill_generation_record {
    const char *question_id;
    int64_t sample;
    const char *difficulty;
    const char *prompt; size_t prompt_len;   /* for think markers left open by the prompt */
    const char *text; size_t text_len;
    distill_finish finish;
    int pass;                                 /* -1: not verified */
    const char *reason;
    int64_t output_tokens;
    double think_tokens;                      /* < 0: none */
} distill_generation_record;
DISTILL_API void distill_write_generation_jsonl(FILE *f, const distill_generation_record *g);

/* Score generations made elsewhere (or earlier): a JSONL file, one object per sample, with the
   generated text in the field `field` (dotted path, default "text"). Read when present:
   "finish_reason" (see distill_finish_parse), "question_id" (or "id", "task_id": samples of
   one problem share it; without one every line is its own problem), "difficulty" (or
   "meta.difficulty"), "pass" (true/false, used when no verifier is given), and the prompt in
   `prompt_field` (default "prompt") for think markers the prompt opened. With a verifier each
   line (the whole object) is the record it receives. Writes the results JSON object to
   `results` and, if out_jsonl is non-NULL, the scored samples as generations JSONL. */
typedef struct distill_eval_file_options {
    const char *field;             /* NULL: "text" */
    const char *prompt_field;      /* NULL: "prompt" */
    int think_in_prompt;           /* 1: every prompt opened a think block (e.g. R1 templates) */
    const distill_tokenizer *tok;  /* think lengths in tokens; NULL: words */
    const int *ks; int nk;         /* pass@k values (NULL: k = 1) */
    const distill_verifier *verifier;   /* NULL: use the "pass" field when present */
    const char *out_jsonl;         /* NULL: no per-sample output */
} distill_eval_file_options;
DISTILL_API int distill_eval_generations_file(const char *path, const distill_eval_file_options *o,
                                              FILE *results, distill_error *err);

/* ---- Inference with a KV cache ------------------------------------------------------------

   Generation runs the same network as distill_model_forward, one new token per sequence per
   step, keeping every layer's keys and values so each step costs O(context) instead of
   O(context^2). The cache is grouped-query aware: it stores NKV heads, not NH.

       cache_k, cache_v   (L, B, S, NKV*HS)    B sequences of at most S positions

   A forward call takes rows (seq[i], token[i]): each row is appended to its sequence at the
   next free position; all rows' keys and values are written first, so rows of one sequence
   given together (a prompt) attend causally to each other exactly as in training. */
typedef struct distill_generator distill_generator;

/* A generator for model m (which must outlive it) with room for max_batch sequences of
   max_seq positions each. */
DISTILL_API distill_generator *distill_generator_create(const distill_model *m, int max_batch,
                                                        int max_seq, distill_error *err);
DISTILL_API void distill_generator_free(distill_generator *g);
/* Forget sequence b (its length becomes 0); b < 0 resets all. */
DISTILL_API void distill_generator_reset(distill_generator *g, int b);
DISTILL_API int  distill_generator_length(const distill_generator *g, int b);
/* Copy sequence src's cache into dst (dst takes src's length): n samples of one prompt share
   a single prefill. */
DISTILL_API void distill_generator_copy(distill_generator *g, int dst, int src);
/* Run n rows (seq[i], tokens[i]) through the model with the cache. With all_rows, logits (n,V)
   receives every row's next-token logits; with all_rows 0 only the last row's, logits (V)
   (a prefill). logits may be NULL. 0 ok, -1 (sequence full, bad id, ...) with err, and then
   the cache is unchanged. */
DISTILL_API int distill_generator_forward(distill_generator *g, const int *seq,
                                          const int32_t *tokens, int n, float *logits,
                                          int all_rows, distill_error *err);

/* ---- Sampling ---------------------------------------------------------------------------
   temperature <= 0: greedy (the arg max; ties go to the lowest id). Otherwise
       p_i = softmax(logits / temperature)
   restricted to the top_k largest (top_k > 0) and then to the smallest set of most likely tokens
   whose probability reaches top_p (0 < top_p < 1; nucleus sampling), renormalised, and one
   token drawn with rng. work must hold V floats and idx V ints. */
DISTILL_API int32_t distill_sample_token(const float *logits, int V, float temperature, int top_k,
                                         float top_p, distill_rng *rng, float *work, int32_t *idx);

typedef struct distill_gen_options {
    int max_new_tokens;          /* 256; generation also stops when the context is full */
    float temperature;           /* 0: greedy */
    int top_k;                   /* 0: off */
    float top_p;                 /* 1: off */
    uint64_t seed;               /* sample i draws from an RNG seeded with (seed, seeds[i] or i) */
    const uint64_t *seeds;       /* optional per-prompt stream ids (eval: problem, sample) */
    const int32_t *stop_ids;     /* tokens that end a sample (EOS, end-of-turn); not output */
    int n_stop_ids;
    const char *const *stop_strings;   /* texts that end a sample (need a tokenizer); the text
                                          is cut before the stop string */
    int n_stop_strings;
    /* streaming: called for every generated token (not for a stop token) with the text bytes
       that became final (complete UTF-8 characters, never part of a stop string; may be
       empty, as a tail that could still grow into a stop string is held back), and once at
       the end with id -1 for any held-back rest. From the calling thread. The concatenated
       pieces equal the result's text. */
    void (*on_token)(void *ctx, int sample, int32_t id, const char *piece, size_t len);
    void *on_token_ctx;
} distill_gen_options;
DISTILL_API distill_gen_options distill_gen_options_default(void);

typedef struct distill_gen_result {
    int32_t *ids;                /* the generated ids (stop token excluded) */
    size_t n;
    char *text;                  /* their text (NULL without a tokenizer), NUL-terminated */
    size_t len;
    distill_finish finish;       /* STOP (stop id or string) or LENGTH (max_new_tokens/context) */
    int32_t stop_id;             /* the stop token that ended it, or -1 */
    int prompt_tokens;
} distill_gen_result;
DISTILL_API void distill_gen_result_free(distill_gen_result *r);

/* Generate a continuation for each of n prompts (token ids; prompts[i] of prompt_lens[i] ids),
   g->max_batch at a time, sequences in a batch advancing together. Identical prompts in a batch
   are prefilled once. tok (may be NULL) turns ids into text and enables stop strings. out[i]
   receives sample i. 0 ok, -1 on error (out entries then freed). */
DISTILL_API int distill_generate(distill_generator *g, const distill_tokenizer *tok,
                                 const int32_t *const *prompts, const int *prompt_lens, int n,
                                 const distill_gen_options *o, distill_gen_result *out,
                                 distill_error *err);

/* ---- Evaluating a model on an eval set ----------------------------------------------------

   For every record of a JSONL eval set: build the prompt, generate n samples, verify each, and
   score them all with the metrics above. The prompt is, in this order:
     - the string field `prompt_field` if given, else the first string among "prompt",
       "question", "problem", "instruction": the user turn, rendered by the chat template
       (distill_chat_prompt_ids, the trainer's own rendering) or fed as is with `raw`;
     - else a conversation (messages / conversations / ...: distill_conv_from_json) whose
       trailing assistant turns are dropped and the rest rendered with add_generation_prompt,
       i.e. exactly the prefix of the training row that precedes the answer.
   Generation stops at the template's end-of-turn token and the tokenizer's EOS (raw: EOS and
   BOS). Sample j of problem p draws from the RNG stream p*n + j, so results do not depend on
   the batch size. Record fields read: "question_id"/"id"/"task_id", "difficulty_label" or
   "difficulty" (string or number) or "meta.difficulty". */
typedef struct distill_eval_model_options {
    const distill_chat_template *tmpl;  /* NULL: "chatml" */
    int raw;                            /* 1: no chat template */
    const char *prompt_field;           /* NULL: automatic (see above) */
    const char *system;                 /* system text for string prompts (NULL: none) */
    int n_samples;                      /* samples per problem (>= 1) */
    const int *ks; int nk;              /* pass@k (NULL: k = 1) */
    int batch;                          /* sequences generated together (>= 1) */
    distill_gen_options gen;            /* max_new_tokens, temperature, top_p, top_k, seed */
    const distill_verifier *verifier;   /* NULL: no pass metrics */
    const char *out_jsonl;              /* NULL: no per-sample output */
    int64_t max_problems;               /* 0: all */
    int progress;                       /* 1: a progress line per batch on stderr */
} distill_eval_model_options;
DISTILL_API distill_eval_model_options distill_eval_model_options_default(void);
DISTILL_API int distill_eval_model(distill_model *m, const distill_tokenizer *tok,
                                   const char *data_path, const distill_eval_model_options *o,
                                   FILE *results, distill_error *err);
