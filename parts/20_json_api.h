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
