/* libFuzzer harness for the JSON parser (make fuzz). Any input must give a tree or a
   "name:line:col: message" error, never a crash, hang, leak or sanitizer report. Accepted
   strings must be valid UTF-8, and writing a string back and parsing it again must give the
   same bytes. */
#define DISTILL_IMPLEMENTATION
#include "../../distill.h"

static void check_value(const distill_json *v, int depth) {
    size_t i;
    if (depth > DISTILL_JSON_MAX_DEPTH + 1) __builtin_trap();
    if (v->type == DISTILL_JSON_STRING) {
        if (distill__utf8_check(v->str, v->len) != v->len || v->str[v->len] != 0) __builtin_trap();
    }
    if (v->type == DISTILL_JSON_ARRAY || v->type == DISTILL_JSON_OBJECT)
        for (i = 0; i < v->len; i++) {
            if (v->type == DISTILL_JSON_OBJECT && distill__utf8_check(v->keys[i], v->key_lens[i]) != v->key_lens[i]) __builtin_trap();
            check_value(&v->items[i], depth + 1);
        }
    if (v->type == DISTILL_JSON_OBJECT && v->len > 0 && distill_json_get(v, v->keys[0]) == NULL &&
        strlen(v->keys[0]) == v->key_lens[0])
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    distill_error err;
    distill_json *j = distill_json_parse((const char *)data, size, "fuzz", 1, &err);
    if (!j) {
        /* errors always carry the position */
        if (strncmp(err.msg, "fuzz:", 5) != 0) __builtin_trap();
        return 0;
    }
    check_value(j, 0);
    if (j->type == DISTILL_JSON_STRING) {
        /* round trip through the writer */
        char *buf = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&buf, &n);
        distill_json *k;
        if (f) {
            distill_json_write_string(f, j->str, j->len);
            fclose(f);
            k = distill_json_parse(buf, n, "rt", 1, &err);
            if (!k || k->len != j->len || memcmp(k->str, j->str, j->len) != 0) __builtin_trap();
            distill_json_free(k);
            free(buf);
        }
    }
    distill_json_path(j, "a.0.b");
    distill_json_free(j);
    return 0;
}
