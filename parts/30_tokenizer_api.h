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
