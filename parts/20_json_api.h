/* ===================================================================================== */
/* PUBLIC API: JSON  (owner: data issue. These declarations are the contract other parts */
/* code against; the owner may add to them but not rename or change what is here.)       */
/* ===================================================================================== */

/* A parsed JSON value. A document is a tree of these in one arena; everything in it lives until
   distill_json_free(root). Strings are decoded UTF-8 (escapes resolved, validated), always
   NUL-terminated, and carry their byte length because "\u0000" is legal JSON. */
typedef enum distill_json_type {
    DISTILL_JSON_NULL, DISTILL_JSON_FALSE, DISTILL_JSON_TRUE, DISTILL_JSON_NUMBER,
    DISTILL_JSON_STRING, DISTILL_JSON_ARRAY, DISTILL_JSON_OBJECT
} distill_json_type;

typedef struct distill_json distill_json;
struct distill_json {
    distill_json_type type;
    int line, col;          /* 1-based source position of the value, for error messages     */
    size_t len;             /* STRING: bytes; ARRAY: items; OBJECT: members                  */
    const char *str;        /* STRING: the decoded text                                      */
    double num;             /* NUMBER: the value as a double                                 */
    int64_t i64;            /* NUMBER: the exact value when is_int (no precision loss)       */
    int is_int;             /* NUMBER written without fraction/exponent and fits in int64   */
    distill_json *items;    /* ARRAY: the items; OBJECT: the member values                   */
    const char **keys;      /* OBJECT: the member names (decoded, NUL-terminated)           */
    size_t *key_lens;       /* OBJECT: their byte lengths                                    */
};

/* Parse one JSON document from text[0..len). `name` (a file name) and `first_line` (the line of
   the text within that file, 1 for a whole file) only label error messages, which look like
   "data.jsonl:17:5: expected ',' or '}' after object member". Returns NULL on error. */
DISTILL_API distill_json *distill_json_parse(const char *text, size_t len, const char *name,
                                             int first_line, distill_error *err);
DISTILL_API void distill_json_free(distill_json *root);

/* Member lookup: the value of key in an object, or NULL (missing key or v not an object). */
DISTILL_API const distill_json *distill_json_get(const distill_json *v, const char *key);
/* Dotted path lookup, e.g. "meta.difficulty" or "conversations.0.value". NULL if absent. */
DISTILL_API const distill_json *distill_json_path(const distill_json *v, const char *path);

/* Write s[0..len) as a JSON string literal (quotes and escapes) to f. */
DISTILL_API void distill_json_write_string(FILE *f, const char *s, size_t len);

/* ---- additions (owner: data issue) ------------------------------------------------------

   Choices where RFC 8259 leaves room (the conformance tests in tests/test_json.c pin them):
   - strict RFC 8259: no comments, no trailing commas, no single quotes, no NaN/Infinity, no
     leading '+' or zeros, no unescaped control characters in strings, one value per document
     (anything but whitespace after it is an error);
   - the text must be valid UTF-8: overlong forms, UTF-8-encoded surrogates (ED A0..BF) and code
     points above U+10FFFF are rejected, also inside strings;
   - \u escapes: a surrogate pair becomes one 4-byte character; a LONE surrogate (\uD800 not
     followed by \uDC00..\uDFFF, or a stray \uDC00) is REJECTED, so every decoded string is
     valid UTF-8 and re-encodes losslessly. "\u0000" is accepted (hence the `len` fields);
   - numbers: integers that fit in int64 are exact in `i64` (is_int = 1); other numbers only
     in `num` (correctly rounded by strtod). A number whose magnitude overflows a double
     (1e400) is rejected; one that underflows (1e-400) becomes 0;
   - duplicate object keys are kept; distill_json_get returns the LAST one (as Python and jq);
   - a UTF-8 byte order mark at the very start of the text is skipped;
   - nesting deeper than DISTILL_JSON_MAX_DEPTH arrays/objects is an error;
   - error columns count bytes from 1. */
#ifndef DISTILL_JSON_MAX_DEPTH
#define DISTILL_JSON_MAX_DEPTH 512
#endif

/* Read and parse a whole file (one JSON document, e.g. tokenizer.json or a .json array). */
DISTILL_API distill_json *distill_json_parse_file(const char *path, distill_error *err);

/* Item i of an array (NULL when out of range or v is not an array). */
DISTILL_API const distill_json *distill_json_at(const distill_json *v, size_t i);
/* "null", "false", "true", "number", "string", "array", "object". */
DISTILL_API const char *distill_json_type_name(distill_json_type t);
/* Number of bytes the document's arena holds (tests, benchmarks). */
DISTILL_API size_t distill_json_arena_bytes(const distill_json *root);

/* Streaming line reader for JSONL: memory is one chunk plus the longest line, whatever the file
   size; lines may be of any length up to max_line bytes (0: 1 GiB). A trailing "\r" is removed.
   next() returns 1 with a line (valid until the next call, NUL-terminated), 0 at end of file,
   -1 on a read error or a line longer than max_line (err says which line). */
typedef struct distill_line_reader distill_line_reader;
DISTILL_API distill_line_reader *distill_line_reader_open(const char *path, size_t max_line,
                                                          distill_error *err);
DISTILL_API int  distill_line_reader_next(distill_line_reader *r, const char **line, size_t *len,
                                          int64_t *line_no, distill_error *err);
/* Byte offset in the file of the start of the next line (progress reports). */
DISTILL_API int64_t distill_line_reader_offset(const distill_line_reader *r);
DISTILL_API void distill_line_reader_close(distill_line_reader *r);
