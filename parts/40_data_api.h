/* ===================================================================================== */
/* PUBLIC API: data: readers, schema adapters, chat template, loss weights, selection,    */
/* iteration  (owner: data issue)                                                         */
/* ===================================================================================== */
/* The path of a training row, in the order the code below follows it:

     file (.jsonl, or .json holding one array)          distill_dataset_load
       -> JSON record                                    (20_json)
       -> filters ("difficulty in {EASY, MEDIUM}")       distill_data_options.filters
       -> conversation: system/user/assistant messages   distill_conv_from_json (schema adapters)
       -> tokens + per-token loss weights                distill_chat_encode (chat template)
       -> length policy (max_seq: drop or truncate)
       -> rows of a dataset; nested seeded subsets       distill_dataset_select
       -> batches (tokens, next-token targets, weights)  distill_loader_next

   One template function renders both a training row and a generation prompt, so training and
   inference cannot disagree: the prompt of a conversation is exactly the prefix of its
   training row that precedes the first supervised token of the final assistant turn. */

/* ---- conversations ---------------------------------------------------------------------- */
typedef enum distill_role {
    DISTILL_ROLE_SYSTEM, DISTILL_ROLE_USER, DISTILL_ROLE_ASSISTANT,
    DISTILL_ROLE_TEXT   /* plain text: no template around it, every token supervised */
} distill_role;

typedef struct distill_message {
    distill_role role;
    const char *content;    /* UTF-8, NUL-terminated */
    size_t len;
    float loss_weight;      /* from the data's "loss_weight"/"weight"; < 0: the default (1) */
} distill_message;

/* A conversation; the strings live in `buf` (owned) or in the JSON document it came from. */
typedef struct distill_conv {
    distill_message *msgs;
    int n, cap;
    char **owned;           /* strings this conversation allocated */
    int n_owned, cap_owned;
} distill_conv;
DISTILL_API int  distill_conv_add(distill_conv *c, distill_role role, const char *content, size_t len,
                                  float loss_weight);   /* copies content; 0 ok, -1 out of memory */
DISTILL_API void distill_conv_free(distill_conv *c);

/* ---- schema adapters ----------------------------------------------------------------------- */
typedef enum distill_data_format {
    DISTILL_FORMAT_AUTO,               /* detected from the first record                     */
    DISTILL_FORMAT_MESSAGES,           /* {"messages": [{"role", "content"}]}; content a string
                                          or a list of {"type": "text", "text": ...} parts;
                                          an assistant "reasoning_content"/"reasoning" field is
                                          wrapped in <think>...</think> before the content      */
    DISTILL_FORMAT_CONVERSATIONS,      /* {"conversations": [{"from", "value"}]}: human/user,
                                          gpt/assistant, system (ShareGPT, OpenThoughts)       */
    DISTILL_FORMAT_PROMPT_COMPLETION,  /* {"prompt", "completion"} strings or message lists (TRL) */
    DISTILL_FORMAT_ALPACA,             /* {"instruction", "input", "output"[, "system"]}       */
    DISTILL_FORMAT_TEXT,               /* {"text"}: raw text, every token supervised           */
    DISTILL_FORMAT_MAPPED              /* fields named by --map (see distill_data_options.map) */
} distill_data_format;
/* "auto", "messages", "conversations", "prompt-completion", "alpaca", "text", "mapped". */
DISTILL_API const char *distill_data_format_name(distill_data_format f);
DISTILL_API int distill_data_format_parse(const char *name, distill_data_format *out);

typedef enum distill_loss_mode {
    DISTILL_LOSS_ASSISTANT,   /* every assistant turn (multi-turn), incl. its end-of-turn token */
    DISTILL_LOSS_LAST,        /* only the last assistant turn (completion-only)               */
    DISTILL_LOSS_ALL          /* every token (language modelling on the rendered text)        */
} distill_loss_mode;

typedef enum distill_data_policy {
    DISTILL_POLICY_STRICT,    /* the first bad row is an error (file:line:col and field)     */
    DISTILL_POLICY_SKIP       /* bad rows are counted and skipped; zero usable rows is an error */
} distill_data_policy;

/* ---- chat templates --------------------------------------------------------------------- */
/* A turn renders as  role_prefix[role] + content + end_of_turn + turn_sep.  For assistant turns
   the content and end_of_turn are supervised (so the student learns to stop); prefixes and
   separators never are. A generation prompt is the turns so far + role_prefix[ASSISTANT] +
   gen_prefill. All strings are encoded with special tokens allowed (as Hugging Face tokenizers
   do), each piece separately, so piece boundaries are token boundaries in training and at
   generation alike. */
typedef struct distill_chat_template {
    const char *name;
    const char *bos;              /* once at the start of every row/prompt ("" for none) */
    const char *role_prefix[3];   /* SYSTEM, USER, ASSISTANT */
    const char *end_of_turn;      /* e.g. "<|im_end|>": generation stops at this token */
    const char *turn_sep;         /* e.g. "\n" */
    const char *default_system;   /* inserted when a conversation has no system turn (NULL: none) */
    const char *gen_prefill;      /* e.g. "<think>\n": ends every generation prompt; in training
                                     a leading copy is cut from assistant content and left
                                     unsupervised ("" or NULL: none) */
} distill_chat_template;

/* Built-in templates by name: "chatml" (the default: Qwen-style ChatML, the assistant writes
   "<think>\n...\n</think>\n\nanswer<|im_end|>"), "chatml-prefill" (the same with "<think>\n"
   pre-filled in prompts, DeepSeek-R1-distill style), "plain" ("User:\n...<|endoftext|>\n\nAssistant:\n...",
   end of turn "<|endoftext|>", for tokenizers without chat tokens). NULL if unknown. */
DISTILL_API const distill_chat_template *distill_chat_template_get(const char *name);

/* Render a conversation as text (for display). add_generation_prompt != 0 appends the
   assistant prefix + gen_prefill: the text the model continues from. Returns a NUL-terminated
   string to free with distill_free (NULL on out of memory). */
DISTILL_API char *distill_chat_render(const distill_chat_template *tmpl, const distill_conv *conv,
                                      int add_generation_prompt, size_t *len);

/* Encode a conversation: ids (appended to `ids`) and one loss weight per id (appended to
   `weights`, may be NULL): weight[i] > 0 means "token i is a training target", i.e. the model
   is trained to predict token i from tokens 0..i-1. With add_generation_prompt the result is a
   prompt for generation (all weights 0); then the model must generate the assistant content
   and finally the end_of_turn token (stop there: distill_chat_eot_id). */
typedef struct distill_floats { float *v; size_t n, cap; } distill_floats;
DISTILL_API void distill_floats_free(distill_floats *a);
DISTILL_API int distill_chat_encode(const distill_chat_template *tmpl, const distill_tokenizer *tok,
                                    const distill_conv *conv, distill_loss_mode mode,
                                    int add_generation_prompt, distill_ids *ids,
                                    distill_floats *weights, distill_error *err);
/* The prompt for generation from a system text (may be NULL) and a user text: equal to
   distill_chat_encode on that two-turn conversation with add_generation_prompt = 1. */
DISTILL_API int distill_chat_prompt_ids(const distill_chat_template *tmpl, const distill_tokenizer *tok,
                                        const char *system, const char *user, distill_ids *ids,
                                        distill_error *err);
DISTILL_API char *distill_chat_render_prompt(const distill_chat_template *tmpl, const char *system,
                                             const char *user, size_t *len);
/* The end-of-turn token id (generation stops there), or -1 when end_of_turn is not a single
   token of this vocabulary (then it is encoded as several ordinary tokens). */
DISTILL_API int32_t distill_chat_eot_id(const distill_chat_template *tmpl, const distill_tokenizer *tok);

/* ---- loading ------------------------------------------------------------------------------ */
typedef struct distill_data_options {
    distill_data_format format;        /* AUTO */
    /* Field-path mapping "src=dst", dst one of prompt, response (= completion), think, system,
       messages, conversations, text. E.g. {"question=prompt", "r1_generation=response",
       "reasoning=think"}: the reasoning field is wrapped in <think>\n...\n</think>\n\n before
       the response. src is a dotted path ("meta.question", "turns.0"). Implies MAPPED. */
    const char *const *map;
    int n_map;
    /* Filters, all must hold: "FIELD OP VALUE", OP one of == != < <= > >= in, VALUE a JSON
       value or a bare word, for `in` a set {A, B} or [A, B]. E.g. "difficulty in {EASY, MEDIUM}",
       "pass_rate == 1", "judgement == \"right\"", "meta.len < 4000". A row whose field is missing
       does not match. Filtered rows are counted, not errors. Filters run while loading (the
       records are not kept); load again with other filters for another split. */
    const char *const *filters;
    int n_filters;
    int normalize_think;               /* 1: <|begin_of_thought|>..<|end_of_thought|> -> <think>..</think>,
                                          <|begin_of_solution|>/<|end_of_solution|> markers removed */
    distill_loss_mode loss;            /* ASSISTANT */
    distill_data_policy policy;        /* STRICT */
    int max_seq;                       /* max tokens per row; 0: no limit */
    int truncate;                      /* rows over max_seq: 0 drop (counted), 1 keep the first max_seq tokens */
    const distill_chat_template *tmpl; /* NULL: "chatml" */
    int64_t max_rows;                  /* stop after this many usable rows; 0: all */
    size_t max_line;                   /* longest JSONL line accepted; 0: 1 GiB */
} distill_data_options;
DISTILL_API distill_data_options distill_data_options_default(void);

/* Convert one record into a conversation with the options' format/map/normalisation. `name`
   (the file name) prefixes error messages, which give the line and column of the offending
   value and name the field, e.g.
   "d.jsonl:17:12: field 'messages.1.content': expected a string or a list of parts, got number".
   *format (may be NULL) gets the format used (AUTO resolves from the record). A conversation
   without an assistant turn is returned as it is (a prompt for evaluation); the dataset loader
   rejects it as a training row. */
DISTILL_API int distill_conv_from_json(const distill_json *row, const distill_data_options *opt,
                                       distill_data_format *format, const char *name,
                                       distill_conv *out, distill_error *err);
/* Does `row` satisfy the filter expression? 1 yes, 0 no, -1 malformed expression. */
DISTILL_API int distill_data_filter_match(const distill_json *row, const char *expr, distill_error *err);

/* Length histogram buckets: bucket b counts rows of [2^b, 2^(b+1)) tokens (bucket 0: 0-1). */
#define DISTILL_DATA_HIST 24
typedef struct distill_data_stats {
    distill_data_format format;
    int64_t records;            /* records read (lines or array items, blank lines excluded) */
    int64_t rows;               /* usable rows in the dataset */
    int64_t skipped;            /* bad rows skipped (policy skip), incl. rows with no supervised token */
    int64_t filtered;           /* rows the filters removed */
    int64_t dropped;            /* rows over max_seq removed (truncate = 0) */
    int64_t truncated;          /* rows cut to max_seq (truncate = 1) */
    int64_t lost_think;         /* truncated rows whose cut removed their "</think>" */
    int64_t tokens, supervised_tokens;
    int64_t think_rows;         /* rows whose assistant text has a <think> block */
    int64_t eot_rows;           /* rows whose supervised part ends with the end-of-turn token(s) */
    int64_t min_len, max_len;
    int64_t hist[DISTILL_DATA_HIST];
    double seconds, json_seconds; /* load time; the part spent reading + parsing JSON */
    int64_t bytes;              /* bytes of input read */
    char first_error[512];      /* the first skipped row's message ("" if none) */
} distill_data_stats;

/* A tokenised dataset. Rows are stored in file order; `id` is the 0-based index of the record
   in the file (lines for JSONL, blank lines not counted; items for a .json array), stable
   across filters and subsets and used by manifests. */
typedef struct distill_dataset distill_dataset;
enum { DISTILL_ROW_THINK = 1, DISTILL_ROW_TRUNCATED = 2, DISTILL_ROW_EOT = 4, DISTILL_ROW_LOST_THINK = 8 };
typedef struct distill_row {
    const int32_t *tokens;       /* n ids */
    const float *weights;        /* n loss weights (see distill_chat_encode) */
    int n, n_supervised;
    int64_t id, line;            /* record index; 1-based line in the file */
    int flags;                   /* DISTILL_ROW_* */
} distill_row;

/* Load and tokenise a .jsonl file or a .json array (detected by the first byte). tok may be
   NULL: records are then only parsed, validated and counted (rows have no tokens). opt NULL:
   defaults. Errors: "file:line:col: field 'x': ...". */
DISTILL_API distill_dataset *distill_dataset_load(const char *path, const distill_data_options *opt,
                                                  const distill_tokenizer *tok, distill_error *err);
DISTILL_API void distill_dataset_free(distill_dataset *ds);
DISTILL_API int64_t distill_dataset_size(const distill_dataset *ds);
DISTILL_API int  distill_dataset_row(const distill_dataset *ds, int64_t i, distill_row *row);
DISTILL_API const distill_data_stats *distill_dataset_stats(const distill_dataset *ds);
/* Write the stats as one JSON object (rows, skipped, format, tokens, ...) followed by "\n". */
DISTILL_API void distill_data_stats_write_json(FILE *f, const distill_data_stats *s, int with_tokens);

/* ---- selection for experiments ----------------------------------------------------------- */
typedef struct distill_select_options {
    uint64_t seed;        /* the permutation: the same seed gives NESTED subsets (the first 1K
                             of the permutation is inside the first 10K) */
    int64_t n;            /* rows to take (0: all); more than available is an error */
    int n_splits, split;  /* > 0: cut the permutation into n_splits equal parts (the remainder
                             is left out) and take part `split` (0-based) before applying n */
    const char *manifest; /* non-NULL: write {"seed", "n", "rows": [ids]} there, atomically */
} distill_select_options;
/* A new dataset holding the chosen rows (in file order; sharing the parent's tokens, so free
   both, in any order). */
DISTILL_API distill_dataset *distill_dataset_select(const distill_dataset *ds, const distill_select_options *sel,
                                                    distill_error *err);

/* ---- iteration ----------------------------------------------------------------------------- */
typedef struct distill_loader_options {
    int batch_rows;        /* B: sequences per batch (packing: packed sequences per batch) */
    int64_t token_budget;  /* > 0: batches hold at most this many B*T positions (B <= batch_rows
                              when batch_rows > 0); rows are never split */
    int seq_len;           /* T capacity; 0: the longest row. Rows longer than this are an error */
    int pack;              /* 1: several rows per sequence, segments/positions filled (T = seq_len) */
    int shuffle;           /* 1: seeded shuffle, a new permutation every epoch */
    uint64_t seed;
} distill_loader_options;
DISTILL_API distill_loader_options distill_loader_options_default(void); /* B 8, shuffle, seed 1 */

/* Where the loader is: saved in checkpoints, restored for an exact resume. The fingerprint
   identifies the dataset and options, so resuming on other data is an error. */
typedef struct distill_loader_cursor {
    int64_t epoch;         /* 0-based */
    int64_t pos;           /* rows of this epoch's permutation already served */
    uint64_t fingerprint;
} distill_loader_cursor;

typedef struct distill_loader distill_loader;
DISTILL_API distill_loader *distill_loader_create(const distill_dataset *ds, const distill_loader_options *o,
                                                  distill_error *err);
/* Fill *b with the next batch (arrays owned by the loader, valid until the next call). targets
   are next tokens: targets[t] = tokens[t+1] within a row, -1 where unsupervised, at the last
   position of a row and in padding; weights likewise (0 where target is -1). lengths[b] = valid
   positions; with packing, segments (0, 1, 2... per row in a sequence) and positions (restarting
   at 0 per row). When an epoch ends the next call starts the next one (reshuffled); the last
   batch of an epoch may be smaller. Sets B, T, tokens, targets, weights, lengths, segments and
   positions (NULL without packing); other fields of *b are left as they are. 0, or -1 with err. */
struct distill_batch;   /* declared in the model part (50_model_api.h), which comes later */
DISTILL_API int distill_loader_next(distill_loader *L, struct distill_batch *b, distill_error *err);
DISTILL_API distill_loader_cursor distill_loader_get_cursor(const distill_loader *L);
DISTILL_API int distill_loader_set_cursor(distill_loader *L, const distill_loader_cursor *c, distill_error *err);
/* Dataset rows (indices into the dataset) of the last batch, in order; *n gets the count. */
DISTILL_API const int64_t *distill_loader_last_rows(const distill_loader *L, int *n);
DISTILL_API void distill_loader_free(distill_loader *L);
