/* ===================================================================================== */
/* PUBLIC API: tokenizer  (owner: tokenizer issue. These declarations are the contract   */
/* other parts code against; the owner may add to them but not rename or change them.)   */
/* ===================================================================================== */

/* A growable array of token ids. Encoding appends to it. */
typedef struct distill_ids {
    int32_t *ids;
    size_t n, cap;
} distill_ids;
DISTILL_API int  distill_ids_push(distill_ids *a, int32_t id);   /* 0 ok, -1 out of memory */
DISTILL_API void distill_ids_free(distill_ids *a);

typedef struct distill_tokenizer distill_tokenizer;   /* opaque */

/* Load any supported file, format detected from the content: the library's own text format,
   Hugging Face tokenizer.json, GPT-2 vocab.json (merges_path = merges.txt, else NULL), or a
   llama2.c tokenizer.bin. */
DISTILL_API distill_tokenizer *distill_tokenizer_load(const char *path, const char *merges_path,
                                                      distill_error *err);
DISTILL_API int  distill_tokenizer_save(const distill_tokenizer *tok, const char *path,
                                        distill_error *err);   /* own format, atomic write */
DISTILL_API void distill_tokenizer_free(distill_tokenizer *tok);

DISTILL_API int distill_tokenizer_vocab_size(const distill_tokenizer *tok);

/* Id of a token given by its text (special tokens such as "<|im_end|>", "<think>", or an
   ordinary token's bytes), or -1 when the vocabulary has no such single token. */
DISTILL_API int32_t distill_tokenizer_token_id(const distill_tokenizer *tok, const char *text);

/* Encode text[0..len) and append the ids to out. With allow_special != 0, special tokens written
   literally in the text ("<|im_end|>") become their ids; with 0 they are encoded as ordinary
   text. Safe to call from several threads on the same tokenizer. 0 ok, -1 error. */
DISTILL_API int distill_tokenizer_encode(const distill_tokenizer *tok, const char *text, size_t len,
                                         int allow_special, distill_ids *out, distill_error *err);

/* The bytes of one token (not NUL-terminated), or NULL for an invalid id. */
DISTILL_API const char *distill_tokenizer_token_bytes(const distill_tokenizer *tok, int32_t id,
                                                      size_t *len);

/* Decode ids to a newly allocated NUL-terminated string (free with distill_free); *len gets its
   byte length. Bytes are returned as they are, which may be invalid UTF-8 for arbitrary ids. */
DISTILL_API char *distill_tokenizer_decode(const distill_tokenizer *tok, const int32_t *ids,
                                           size_t n, size_t *len);

/* ---- additions by the tokenizer part ------------------------------------------------ */

/* Pre-tokenizer patterns: how text is cut into chunks before BPE (merges never cross a chunk).
   All are hand-written equivalents of the regexes, exact on all of Unicode:
     GPT2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
     CL100K  '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*
             |\s*[\r\n]|\s+(?!\S)|\s+          (GPT-4's cl100k_base, Llama 3)
     QWEN2   as CL100K but single digits \p{N}  (Qwen2/2.5/3)
     NONE    the whole text is one chunk (llama2.c / SentencePiece style)                     */
enum { DISTILL_PATTERN_NONE = 0, DISTILL_PATTERN_GPT2 = 1, DISTILL_PATTERN_CL100K = 2,
       DISTILL_PATTERN_QWEN2 = 3 };
DISTILL_API const char *distill_pattern_name(int pattern);      /* "gpt2", ...; NULL if unknown */
DISTILL_API int distill_pattern_from_name(const char *name);    /* -1 if unknown */

/* The default chat special tokens: <|endoftext|> <|im_start|> <|im_end|> <think> </think>. */
DISTILL_API const char *const *distill_tokenizer_default_specials(int *n);

/* Train a byte-level BPE (minbpe semantics: ids 0..255 are the bytes, merge r creates id 256+r,
   then the special tokens get the next ids in the order given). vocab_size counts all three;
   training stops early if the text runs out of pairs. Ties between equally frequent pairs go to
   the smallest (left, right) pair, so the result depends only on the texts, never on the thread
   count. Occurrences of the special tokens in the texts are cut out, not learned from.
   lens may be NULL (NUL-terminated texts). Chunks are counted in parallel. */
DISTILL_API distill_tokenizer *distill_tokenizer_train(const char *const *texts, const size_t *lens,
                                                       size_t n_texts, int vocab_size, int pattern,
                                                       const char *const *specials, int n_specials,
                                                       distill_error *err);

/* The same from a stream: new, add texts one by one (e.g. JSONL fields), finish, free. */
typedef struct distill_bpe_trainer distill_bpe_trainer;
DISTILL_API distill_bpe_trainer *distill_bpe_trainer_new(int pattern, const char *const *specials,
                                                         int n_specials, distill_error *err);
DISTILL_API int distill_bpe_trainer_add(distill_bpe_trainer *tr, const char *text, size_t len,
                                        distill_error *err);
/* Add n texts at once, counted in parallel on the thread pool (lens may be NULL). */
DISTILL_API int distill_bpe_trainer_add_batch(distill_bpe_trainer *tr, const char *const *texts,
                                              const size_t *lens, size_t n, distill_error *err);
DISTILL_API distill_tokenizer *distill_bpe_trainer_finish(distill_bpe_trainer *tr, int vocab_size,
                                                          distill_error *err);
DISTILL_API void distill_bpe_trainer_free(distill_bpe_trainer *tr);

/* Encoding with flags: DISTILL_ENC_ALLOW_SPECIAL as above; DISTILL_ENC_BOS / DISTILL_ENC_EOS add
   the tokenizer's bos/eos ids (llama2.c tokenizers: 1 and 2, like run.c's encode(bos, eos)). */
enum { DISTILL_ENC_ALLOW_SPECIAL = 1, DISTILL_ENC_BOS = 2, DISTILL_ENC_EOS = 4 };
DISTILL_API int distill_tokenizer_encode_ex(const distill_tokenizer *tok, const char *text,
                                            size_t len, int flags, distill_ids *out,
                                            distill_error *err);
/* Encode n texts on the thread pool (distill_parallel_for); outs[i] gets text i's ids appended.
   lens may be NULL. Same ids as n calls of distill_tokenizer_encode. */
DISTILL_API int distill_tokenizer_encode_batch(const distill_tokenizer *tok,
                                               const char *const *texts, const size_t *lens,
                                               size_t n, int allow_special, distill_ids *outs,
                                               distill_error *err);

/* Special tokens: add one (a new id at the end, or the existing id if the text already is a
   special token); query. Adding is not thread-safe against concurrent encoding. */
DISTILL_API int32_t distill_tokenizer_add_special(distill_tokenizer *tok, const char *text,
                                                  distill_error *err);
DISTILL_API int distill_tokenizer_is_special(const distill_tokenizer *tok, int32_t id);
DISTILL_API int distill_tokenizer_pattern(const distill_tokenizer *tok);
DISTILL_API int distill_tokenizer_n_merges(const distill_tokenizer *tok);
/* Merge r as (left, right) -> result ids; 0 ok, -1 out of range. */
DISTILL_API int distill_tokenizer_merge(const distill_tokenizer *tok, int r, int32_t *left,
                                        int32_t *right, int32_t *result);
/* bos/eos ids: llama2.c tokenizers 1 and 2; BPE tokenizers: bos -1, eos "<|endoftext|>" or -1. */
DISTILL_API int32_t distill_tokenizer_bos_id(const distill_tokenizer *tok);
DISTILL_API int32_t distill_tokenizer_eos_id(const distill_tokenizer *tok);
/* 1 for a llama2.c tokenizer.bin (score-based merges, byte fallback), else 0. */
DISTILL_API int distill_tokenizer_is_llama(const distill_tokenizer *tok);

/* Streaming decoder for generation: push ids one at a time and get back only complete UTF-8
   characters (an incomplete sequence is held until its last byte arrives; bytes that can never
   form a valid character come out as U+FFFD). The returned pointer is valid until the next call.
   For valid UTF-8 the concatenated output equals distill_tokenizer_decode of all ids. */
typedef struct distill_decoder {
    const distill_tokenizer *tok;
    char *buf;
    size_t cap;
    unsigned char pend[4];
    int npend;
    int32_t prev;
} distill_decoder;
DISTILL_API void distill_decoder_init(distill_decoder *d, const distill_tokenizer *tok);
DISTILL_API const char *distill_decoder_push(distill_decoder *d, int32_t id, size_t *len);
DISTILL_API const char *distill_decoder_flush(distill_decoder *d, size_t *len);
DISTILL_API void distill_decoder_free(distill_decoder *d);
