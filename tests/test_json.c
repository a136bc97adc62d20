/* JSON parser conformance in the style of JSONTestSuite (y_ must accept, n_ must reject,
   i_ implementation-defined with our documented choice), exact values, error positions, the
   JSONL line reader. Expected values are written by hand from RFC 8259 / RFC 3629. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

typedef struct { const char *name; const char *text; size_t len; } jcase; /* len 0: strlen */

static distill_json *parse_case(const jcase *c, distill_error *err) {
    size_t n = c->len ? c->len : strlen(c->text);
    return distill_json_parse(c->text, n, c->name, 1, err);
}

/* must accept */
static const jcase y_cases[] = {
    {"y_array_empty", "[]", 0},
    {"y_array_nested", "[[[]],[{}]]", 0},
    {"y_array_ws", " \t\r\n[ 1 , 2 ]\n", 0},
    {"y_object_empty", "{}", 0},
    {"y_object_basic", "{\"a\":1,\"b\":[true,false,null]}", 0},
    {"y_object_empty_key", "{\"\":0}", 0},
    {"y_string_empty", "\"\"", 0},
    {"y_string_escapes", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 0},
    {"y_string_u_escape", "\"\\u00e9\\u4e2d\"", 0},
    {"y_string_surrogate_pair", "\"\\ud83d\\ude00\"", 0},
    {"y_string_u0000", "\"a\\u0000b\"", 0},
    {"y_string_utf8_2", "\"\xC3\xA9\"", 0},
    {"y_string_utf8_3", "\"\xE4\xB8\xAD\"", 0},
    {"y_string_utf8_4", "\"\xF0\x9F\x98\x80\"", 0},
    {"y_string_utf8_max", "\"\xF4\x8F\xBF\xBF\"", 0},
    {"y_string_del", "\"\x7F\"", 0},
    {"y_number_zero", "0", 0},
    {"y_number_neg_zero", "-0", 0},
    {"y_number_frac", "1.5", 0},
    {"y_number_exp", "1e10", 0},
    {"y_number_exp_plus", "1E+2", 0},
    {"y_number_exp_minus", "-1.25e-3", 0},
    {"y_number_big_int", "123456789012345678901234567890", 0},
    {"y_number_underflow", "1e-400", 0},
    {"y_literals", "[true,false,null]", 0},
    {"y_scalar_top", "\"top\"", 0},
    {"y_long_string", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", 0},
    {"y_deep_ok", "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]", 0},
};

/* must reject */
static const jcase n_cases[] = {
    {"n_empty", "", 0},
    {"n_ws_only", " \n ", 0},
    {"n_trailing_comma_array", "[1,]", 0},
    {"n_trailing_comma_object", "{\"a\":1,}", 0},
    {"n_missing_comma", "[1 2]", 0},
    {"n_unclosed_array", "[1", 0},
    {"n_unclosed_object", "{\"a\":1", 0},
    {"n_unclosed_string", "\"abc", 0},
    {"n_single_quote", "['a']", 0},
    {"n_comment", "[1] // c", 0},
    {"n_block_comment", "/* c */ [1]", 0},
    {"n_nan", "NaN", 0},
    {"n_infinity", "[Infinity]", 0},
    {"n_plus", "+1", 0},
    {"n_leading_zero", "01", 0},
    {"n_neg_leading_zero", "-01", 0},
    {"n_dot_start", ".5", 0},
    {"n_dot_end", "1.", 0},
    {"n_exp_empty", "1e", 0},
    {"n_exp_sign_only", "1e+", 0},
    {"n_minus_only", "-", 0},
    {"n_hex", "0x10", 0},
    {"n_number_overflow", "1e400", 0},
    {"n_neg_number_overflow", "-1e400", 0},
    {"n_true_caps", "True", 0},
    {"n_tru", "tru", 0},
    {"n_nul_literal", "nul", 0},
    {"n_two_values", "1 2", 0},
    {"n_trailing_garbage", "{}x", 0},
    {"n_key_unquoted", "{a:1}", 0},
    {"n_key_number", "{1:1}", 0},
    {"n_missing_colon", "{\"a\" 1}", 0},
    {"n_control_in_string", "\"a\nb\"", 0},
    {"n_tab_in_string", "\"a\tb\"", 0},
    {"n_nul_in_string", "\"a\0b\"", 5},
    {"n_nul_outside", "[1]\0", 4},
    {"n_bad_escape", "\"\\x41\"", 0},
    {"n_escape_at_end", "\"\\", 0},
    {"n_u_short", "\"\\u12\"", 0},
    {"n_u_nonhex", "\"\\u12G4\"", 0},
    {"n_utf8_overlong_2", "\"\xC0\xAF\"", 0},
    {"n_utf8_overlong_3", "\"\xE0\x80\xAF\"", 0},
    {"n_utf8_overlong_4", "\"\xF0\x80\x80\xAF\"", 0},
    {"n_utf8_surrogate", "\"\xED\xA0\x80\"", 0},
    {"n_utf8_above_max", "\"\xF4\x90\x80\x80\"", 0},
    {"n_utf8_f5", "\"\xF5\x80\x80\x80\"", 0},
    {"n_utf8_lone_cont", "\"\x80\"", 0},
    {"n_utf8_truncated", "\"\xE4\xB8\"", 0},
    {"n_utf8_ff", "\"\xFF\"", 0},
    {"n_utf8_in_escaped_string", "\"\\n\xC0\xAF\"", 0},
    {"n_bare_utf8_outside_string", "[\xC3\xA9]", 0},
    {"n_array_colon", "[1:2]", 0},
    {"n_object_in_key", "{{}:1}", 0},
    {"n_close_mismatch", "[}", 0},
    {"n_double_comma", "[1,,2]", 0},
    {"n_leading_comma", "[,1]", 0},
    {"n_not_json", "hello world", 0},
};

/* implementation-defined: what we accept (1) or reject (0), as documented in distill.h (API 3, "what the parser accepts") */
static const struct { jcase c; int accept; } i_cases[] = {
    {{"i_lone_high_surrogate", "\"\\ud800\"", 0}, 0},
    {{"i_lone_low_surrogate", "\"\\udc00\"", 0}, 0},
    {{"i_high_then_text", "\"\\ud800abc\"", 0}, 0},
    {{"i_two_high", "\"\\ud800\\ud800\"", 0}, 0},
    {{"i_bom", "\xEF\xBB\xBF[1]", 0}, 1},
    {{"i_duplicate_keys", "{\"a\":1,\"a\":2}", 0}, 1},
    {{"i_huge_int_as_double", "[-123456789012345678901234567890]", 0}, 1},
    {{"i_tiny_exp", "0e-99999", 0}, 1},
    {{"i_noncharacter", "\"\\uffff\xEF\xBF\xBF\"", 0}, 1},
};

static void test_must_accept(void) {
    size_t i;
    for (i = 0; i < sizeof y_cases / sizeof y_cases[0]; i++) {
        distill_error err;
        distill_json *j;
        err.msg[0] = 0;
        j = parse_case(&y_cases[i], &err);
        CHECK(j != NULL, "%s rejected: %s", y_cases[i].name, err.msg);
        distill_json_free(j);
    }
}

static void test_must_reject(void) {
    size_t i;
    for (i = 0; i < sizeof n_cases / sizeof n_cases[0]; i++) {
        distill_error err;
        distill_json *j;
        err.msg[0] = 0;
        j = parse_case(&n_cases[i], &err);
        CHECK(j == NULL, "%s accepted", n_cases[i].name);
        /* every error names the document, a line and a column */
        CHECK(j != NULL || strncmp(err.msg, n_cases[i].name, strlen(n_cases[i].name)) == 0,
              "%s: message does not start with the name: %s", n_cases[i].name, err.msg);
        CHECK(j != NULL || strstr(err.msg, ":1:") != NULL || strstr(err.msg, ":2:") != NULL, "%s: no line:col: %s", n_cases[i].name, err.msg);
        distill_json_free(j);
    }
}

static void test_implementation_defined(void) {
    size_t i;
    for (i = 0; i < sizeof i_cases / sizeof i_cases[0]; i++) {
        distill_error err;
        distill_json *j;
        err.msg[0] = 0;
        j = parse_case(&i_cases[i].c, &err);
        CHECK((j != NULL) == i_cases[i].accept, "%s: accepted=%d, documented %d (%s)",
              i_cases[i].c.name, j != NULL, i_cases[i].accept, err.msg);
        distill_json_free(j);
    }
}

static void test_values(void) {
    const char *t = "{\"s\":\"a\\u00e9\\ud83d\\ude00\\u0000z\",\"i\":-9223372036854775808,"
                    "\"m\":9223372036854775807,\"o\":9223372036854775808,\"f\":0.1,\"e\":-2.5E2,"
                    "\"a\":[1,[2,{\"k\":\"v\"}]],\"n\":null,\"t\":true,\"x\":false,\"d\":1,\"d\":2}";
    distill_error err;
    distill_json *j = distill_json_parse(t, strlen(t), "v", 1, &err);
    const distill_json *v;
    CHECK(j != NULL, "%s", err.msg);
    if (!j) return;
    CHECK(j->type == DISTILL_JSON_OBJECT && j->len == 12, "object of 12 members, got %d/%zu", (int)j->type, j->len);
    v = distill_json_get(j, "s");
    /* a, e-acute (C3 A9), U+1F600 (F0 9F 98 80), NUL, z */
    CHECK(v && v->type == DISTILL_JSON_STRING && v->len == 9 &&
          memcmp(v->str, "a\xC3\xA9\xF0\x9F\x98\x80\0z", 9) == 0 && v->str[9] == 0, "decoded string");
    v = distill_json_get(j, "i");
    CHECK(v && v->is_int && v->i64 == INT64_MIN, "INT64_MIN exact");
    v = distill_json_get(j, "m");
    CHECK(v && v->is_int && v->i64 == INT64_MAX, "INT64_MAX exact");
    v = distill_json_get(j, "o");
    CHECK(v && !v->is_int && v->num == 9223372036854775808.0, "2^63 is not an int64");
    v = distill_json_get(j, "f");
    CHECK(v && !v->is_int && v->num == 0.1, "0.1 correctly rounded");
    v = distill_json_get(j, "e");
    CHECK(v && !v->is_int && v->num == -250.0, "-2.5E2");
    v = distill_json_path(j, "a.1.1.k");
    CHECK(v && v->type == DISTILL_JSON_STRING && strcmp(v->str, "v") == 0, "path a.1.1.k");
    CHECK(distill_json_path(j, "a.5") == NULL && distill_json_path(j, "a.x") == NULL &&
          distill_json_path(j, "zz") == NULL && distill_json_path(j, "s.0") == NULL, "absent paths");
    v = distill_json_at(distill_json_get(j, "a"), 0);
    CHECK(v && v->is_int && v->i64 == 1, "at(0)");
    CHECK(distill_json_get(j, "n")->type == DISTILL_JSON_NULL && distill_json_get(j, "t")->type == DISTILL_JSON_TRUE &&
          distill_json_get(j, "x")->type == DISTILL_JSON_FALSE, "literals");
    v = distill_json_get(j, "d");
    CHECK(v && v->i64 == 2, "duplicate key: last wins");
    CHECK(distill_json_get(j, "missing") == NULL && distill_json_get(v, "x") == NULL, "missing key / not an object");
    distill_json_free(j);
}

/* Every escape decodes to the bytes RFC 8259 gives it (literal expectations, one escape per
   case, framed by letters so a byte lost or added at either side shows). */
static void test_escape_values(void) {
    static const struct { const char *json; const char *want; size_t n; } cases[] = {
        {"\"a\\\"b\"", "a\"b", 3},
        {"\"a\\\\b\"", "a\\b", 3},
        {"\"a\\/b\"", "a/b", 3},
        {"\"a\\bb\"", "a\bb", 3},
        {"\"a\\fb\"", "a\fb", 3},
        {"\"a\\nb\"", "a\nb", 3},
        {"\"a\\rb\"", "a\rb", 3},
        {"\"a\\tb\"", "a\tb", 3},
        {"\"a\\u0000b\"", "a\0b", 3},
        {"\"a\\u001fb\"", "a\x1f" "b", 3},
        {"\"a\\u0041b\"", "aAb", 3},
        {"\"a\\u007Fb\"", "a\x7f" "b", 3},
        {"\"a\\u0080b\"", "a\xC2\x80" "b", 4},              /* first 2-byte code point */
        {"\"a\\u00e9b\"", "a\xC3\xA9" "b", 4},
        {"\"a\\u07FFb\"", "a\xDF\xBF" "b", 4},              /* last 2-byte */
        {"\"a\\u0800b\"", "a\xE0\xA0\x80" "b", 5},          /* first 3-byte */
        {"\"a\\u4E2Db\"", "a\xE4\xB8\xAD" "b", 5},
        {"\"a\\uD7FFb\"", "a\xED\x9F\xBF" "b", 5},          /* below the surrogates */
        {"\"a\\uE000b\"", "a\xEE\x80\x80" "b", 5},          /* above them */
        {"\"a\\uFFFDb\"", "a\xEF\xBF\xBD" "b", 5},
        {"\"a\\uffffb\"", "a\xEF\xBF\xBF" "b", 5},
        {"\"a\\uD800\\uDC00b\"", "a\xF0\x90\x80\x80" "b", 6},   /* U+10000, first pair */
        {"\"a\\ud83d\\ude00b\"", "a\xF0\x9F\x98\x80" "b", 6},   /* U+1F600 */
        {"\"a\\uD83C\\uDDEBb\"", "a\xF0\x9F\x87\xAB" "b", 6},   /* U+1F1EB */
        {"\"a\\uDBFF\\uDFFFb\"", "a\xF4\x8F\xBF\xBF" "b", 6},   /* U+10FFFF, last pair */
        {"\"\\r\\n\\t\\\"\\\\\"", "\r\n\t\"\\", 5},      /* escapes back to back */
        {"\"\\u00e9\\u00E9\"", "\xC3\xA9\xC3\xA9", 4},             /* either case of hex */
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        distill_error err;
        distill_json *j = distill_json_parse(cases[i].json, strlen(cases[i].json), "esc", 1, &err);
        size_t k;
        char got[64] = "";
        CHECK(j != NULL, "%s rejected: %s", cases[i].json, err.msg);
        if (!j) continue;
        for (k = 0; k < j->len && k < 16; k++) sprintf(got + 3 * k, "%02x ", (unsigned char)j->str[k]);
        CHECK(j->type == DISTILL_JSON_STRING && j->len == cases[i].n && memcmp(j->str, cases[i].want, cases[i].n) == 0 &&
              j->str[j->len] == 0, "%s decodes to %zu bytes: %s", cases[i].json, j->len, got);
        distill_json_free(j);
    }
}

static void test_error_positions(void) {
    static const struct { const char *text; const char *want; } cases[] = {
        {"{\"a\": 1,\n \"b\" 2}", "f:2:6: expected ':' after object key"},
        {"[1,\n\n   x]", "f:3:4: unexpected 'x', expected a value"},
        {"[\"ok\",\n\"bad\xC0\xAF\"]", "f:2:5: invalid UTF-8 in string"},
        {"{\"a\":[1,2}", "f:1:10: expected ',' or ']' after array item, found '}'"},
        {"[1] 2", "f:1:5: unexpected '2' after the JSON value"},
        {"\"\\ud800\"", "f:1:2: lone high surrogate"},
        {"[01]", "f:1:2: leading zeros"},
        {"", "f:1:1: unexpected end of input"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        distill_error err;
        distill_json *j = distill_json_parse(cases[i].text, strlen(cases[i].text), "f", 1, &err);
        CHECK(j == NULL && strncmp(err.msg, cases[i].want, strlen(cases[i].want)) == 0,
              "case %zu: got '%s', want prefix '%s'", i, j ? "(accepted)" : err.msg, cases[i].want);
        distill_json_free(j);
    }
    {   /* first_line offsets the line numbers (JSONL) */
        distill_error err;
        distill_json *j = distill_json_parse("{]", 2, "d.jsonl", 17, &err);
        CHECK(j == NULL && strncmp(err.msg, "d.jsonl:17:2:", 13) == 0, "first_line: %s", err.msg);
    }
    {   /* positions of values */
        distill_error err;
        distill_json *j = distill_json_parse("{\n  \"a\": [1,\n    true]}", 23, "p", 1, &err);
        const distill_json *t = j ? distill_json_path(j, "a.1") : NULL;
        CHECK(t && t->line == 2 + 1 && t->col == 5, "value position %d:%d", t ? t->line : 0, t ? t->col : 0);
        distill_json_free(j);
    }
}

static void test_depth_limit(void) {
    size_t n = DISTILL_JSON_MAX_DEPTH, i;
    char *s = (char *)malloc(2 * (n + 1) + 1);
    distill_error err;
    distill_json *j;
    for (i = 0; i < n; i++) { s[i] = '['; s[2 * n - 1 - i] = ']'; }
    j = distill_json_parse(s, 2 * n, "deep", 1, &err);
    CHECK(j != NULL, "depth %zu must parse: %s", n, err.msg);
    distill_json_free(j);
    for (i = 0; i <= n; i++) { s[i] = '['; s[2 * (n + 1) - 1 - i] = ']'; }
    j = distill_json_parse(s, 2 * (n + 1), "deep", 1, &err);
    CHECK(j == NULL && strstr(err.msg, "nesting deeper") != NULL, "depth %zu must fail: %s", n + 1, j ? "ok" : err.msg);
    distill_json_free(j);
    /* 100k unclosed brackets: an error, not a stack overflow */
    free(s);
    s = (char *)malloc(100000);
    memset(s, '[', 100000);
    j = distill_json_parse(s, 100000, "deep", 1, &err);
    CHECK(j == NULL, "100k brackets");
    free(s);
}

static void test_not_nul_terminated(void) {
    /* the parser must respect len: the bytes after it are junk that would change the result */
    const char *t = "[12345]6789";
    distill_error err;
    distill_json *j = distill_json_parse(t, 6, "n", 1, &err);
    CHECK(j == NULL, "truncated array must fail");
    distill_json_free(j);
    j = distill_json_parse("1.5e3xyz", 5, "n", 1, &err);   /* "1.5e3" */
    CHECK(j && j->num == 1500.0, "number cut by len: %s", j ? "" : err.msg);
    distill_json_free(j);
    j = distill_json_parse("1.5e3xyz", 4, "n", 1, &err);   /* "1.5e" */
    CHECK(j == NULL, "number cut inside exponent must fail");
    distill_json_free(j);
}

static void test_big_document(void) {
    /* 50k-entry vocab-like object, built here, values checked */
    size_t n = 50000, i, cap = n * 32, len = 0;
    char *s = (char *)malloc(cap);
    distill_error err;
    distill_json *j;
    int ok = 1;
    len += (size_t)sprintf(s + len, "{");
    for (i = 0; i < n; i++) len += (size_t)sprintf(s + len, "%s\"tok%zu\":%zu", i ? "," : "", i, i);
    len += (size_t)sprintf(s + len, "}");
    j = distill_json_parse(s, len, "vocab", 1, &err);
    CHECK(j && j->len == n, "parsed %zu members", j ? j->len : 0);
    for (i = 0; j && i < n; i++) {
        char k[32];
        sprintf(k, "tok%zu", i);
        if (strcmp(j->keys[i], k) != 0 || j->items[i].i64 != (int64_t)i) ok = 0;
    }
    CHECK(ok, "members in order with exact values");
    distill_json_free(j);
    free(s);
}

static void test_write_string(void) {
    const char *path = "build/test_json_write.txt";
    FILE *f = fopen(path, "wb");
    char buf[256];
    size_t n;
    distill_error err;
    distill_json *j;
    const char in[] = "q\"b\\\n\t\x01\xC3\xA9\xFFz\0end";
    REQUIRE(f != NULL, "cannot write %s", path);
    distill_json_write_string(f, in, sizeof in - 1);
    fclose(f);
    f = fopen(path, "rb");
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    CHECK(strcmp(buf, "\"q\\\"b\\\\\\n\\t\\u0001\xC3\xA9\\ufffdz\\u0000end\"") == 0, "escaped: %s", buf);
    /* round trip through the parser (with the invalid byte replaced) */
    j = distill_json_parse(buf, n, "w", 1, &err);
    CHECK(j && j->len == sizeof in - 1 + 2 && memcmp(j->str, "q\"b\\\n\t\x01\xC3\xA9\xEF\xBF\xBDz\0end", j->len) == 0,
          "round trip: %s", j ? "" : err.msg);
    distill_json_free(j);
    /* the other short escapes, literally */
    f = fopen(path, "wb");
    REQUIRE(f != NULL, "cannot write %s", path);
    distill_json_write_string(f, "a\rb\bc\fd/e\x1f", 10);
    fclose(f);
    f = fopen(path, "rb");
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    CHECK(strcmp(buf, "\"a\\rb\\bc\\fd/e\\u001f\"") == 0, "escaped: %s", buf);
}

static void test_line_reader(void) {
    const char *path = "build/test_json_lines.jsonl";
    FILE *f = fopen(path, "wb");
    distill_error err;
    distill_line_reader *r;
    const char *line;
    size_t len, big = (size_t)3 << 20, i;   /* a 3 MiB line: longer than the 1 MiB chunk */
    int64_t no;
    int rc, ok = 1;
    REQUIRE(f != NULL, "cannot write %s", path);
    fputs("{\"a\":1}\r\n\n", f);
    fputc('"', f);
    for (i = 0; i < big; i++) fputc('a' + (int)(i % 26), f);
    fputs("\"\n", f);
    fputs("last", f);                        /* no final newline */
    fclose(f);
    r = distill_line_reader_open(path, 0, &err);
    CHECK(r != NULL, "%s", err.msg);
    if (!r) return;
    rc = distill_line_reader_next(r, &line, &len, &no, &err);
    CHECK(rc == 1 && len == 7 && strcmp(line, "{\"a\":1}") == 0 && no == 1, "line 1 (CR stripped)");
    rc = distill_line_reader_next(r, &line, &len, &no, &err);
    CHECK(rc == 1 && len == 0 && no == 2, "empty line 2");
    rc = distill_line_reader_next(r, &line, &len, &no, &err);
    CHECK(rc == 1 && len == big + 2 && no == 3, "long line 3: len %zu", len);
    for (i = 0; rc == 1 && i < big; i++) if (line[i + 1] != 'a' + (int)(i % 26)) { ok = 0; break; }
    CHECK(ok, "long line content");
    {
        distill_json *j = distill_json_parse(line, len, path, (int)no, &err);
        CHECK(j && j->len == big, "long line parses");
        distill_json_free(j);
    }
    rc = distill_line_reader_next(r, &line, &len, &no, &err);
    CHECK(rc == 1 && len == 4 && strcmp(line, "last") == 0 && no == 4, "last line without newline");
    CHECK(distill_line_reader_offset(r) == (int64_t)(9 + 1 + big + 3 + 4), "offset at end");
    rc = distill_line_reader_next(r, &line, &len, &no, &err);
    CHECK(rc == 0, "EOF");
    distill_line_reader_close(r);
    /* max_line enforced */
    r = distill_line_reader_open(path, 1000, &err);
    rc = distill_line_reader_next(r, &line, &len, &no, &err);
    rc = distill_line_reader_next(r, &line, &len, &no, &err);
    rc = distill_line_reader_next(r, &line, &len, &no, &err);
    CHECK(rc == -1 && strstr(err.msg, ":3: line longer than 1000 bytes") != NULL, "max_line: %s", err.msg);
    distill_line_reader_close(r);
    CHECK(distill_line_reader_open("build/does/not/exist.jsonl", 0, &err) == NULL &&
          strstr(err.msg, "cannot open") != NULL, "missing file: %s", err.msg);
}

static void test_parse_file(void) {
    distill_error err;
    distill_json *j;
    distill_write_file_atomic("build/test_json_file.json", "[{\"x\": [1, 2]}, 3]\n", 19, &err);
    j = distill_json_parse_file("build/test_json_file.json", &err);
    CHECK(j && j->len == 2 && distill_json_path(j, "0.x.1")->i64 == 2, "parse_file: %s", j ? "" : err.msg);
    distill_json_free(j);
    j = distill_json_parse_file("build/nope.json", &err);
    CHECK(j == NULL && strstr(err.msg, "build/nope.json") != NULL, "missing file: %s", err.msg);
}

int main(void) {
    RUN(test_must_accept);
    RUN(test_must_reject);
    RUN(test_implementation_defined);
    RUN(test_values);
    RUN(test_escape_values);
    RUN(test_error_positions);
    RUN(test_depth_limit);
    RUN(test_not_nul_terminated);
    RUN(test_big_document);
    RUN(test_write_string);
    RUN(test_line_reader);
    RUN(test_parse_file);
    return harness_done("test_json");
}
