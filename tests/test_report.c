/* Reports (distill.h, reports section): CSV quoting per RFC 4180, Markdown escaping and alignment, JSON
   output parsed back by the JSON part, and SVG plots checked for well-formed XML and for the
   pixel positions of known points computed independently here. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

static char *slurp(FILE *f, size_t *n) {
    char *buf;
    long sz;
    fflush(f);
    sz = ftell(f);
    rewind(f);
    buf = (char *)malloc((size_t)sz + 1);
    *n = fread(buf, 1, (size_t)sz, f);
    buf[*n] = 0;
    return buf;
}

static void make_table(distill_table *t) {
    static const char *hdr[3] = {"run", "size", "pass@1"};
    static const char *r1[3] = {"plain", "100", "0.25"};
    static const char *r2[3] = {"has,comma \"q\"", "1000", "-0.5e-3"};
    static const char *r3[3] = {"pipe|and\nnewline", "", "nan"};
    CHECK(distill_table_init(t, hdr, 3) == 0, "init");
    CHECK(distill_table_add_row(t, r1) == 0 && distill_table_add_row(t, r2) == 0 && distill_table_add_row(t, r3) == 0, "rows");
}

static void test_csv(void) {
    distill_table t;
    FILE *f = tmpfile();
    char *s;
    size_t n;
    REQUIRE(f != NULL, "no tmpfile");
    make_table(&t);
    distill_table_write_csv(f, &t);
    s = slurp(f, &n);
    CHECK(!strcmp(s, "run,size,pass@1\nplain,100,0.25\n\"has,comma \"\"q\"\"\",1000,-0.5e-3\n\"pipe|and\nnewline\",,nan\n"),
          "csv:\n%s", s);
    CHECK(!strcmp(distill_table_cell(&t, 1, 1), "1000") && distill_table_cell(&t, 3, 0) == NULL, "cell access");
    free(s);
    fclose(f);
    distill_table_free(&t);
}

static void test_markdown(void) {
    distill_table t;
    FILE *f = tmpfile();
    char *s;
    size_t n;
    REQUIRE(f != NULL, "no tmpfile");
    make_table(&t);
    distill_table_write_markdown(f, &t);
    s = slurp(f, &n);
    /* 'size' is all numbers (or empty): right-aligned; 'pass@1' has "nan": left-aligned */
    CHECK(strstr(s, "| run ") == s, "header first:\n%s", s);
    CHECK(strstr(s, "pipe\\|and newline") != NULL, "pipe escaped, newline flattened:\n%s", s);
    CHECK(strstr(s, "| ---: |") != NULL, "numeric column right-aligned:\n%s", s);
    {   /* every line has the same number of unescaped '|' */
        const char *p = s;
        int line = 0, first = -1;
        while (*p) {
            int bars = 0;
            for (; *p && *p != '\n'; p++) if (*p == '|' && (p == s || p[-1] != '\\')) bars++;
            if (*p) p++;
            if (first < 0) first = bars;
            CHECK(bars == first && bars == 4, "line %d has %d bars", line, bars);
            line++;
        }
        CHECK(line == 5, "%d lines", line);
    }
    free(s);
    fclose(f);
    distill_table_free(&t);
}

static void test_json(void) {
    distill_table t;
    FILE *f = tmpfile();
    char *s;
    size_t n;
    distill_json *j;
    distill_error err;
    REQUIRE(f != NULL, "no tmpfile");
    make_table(&t);
    distill_table_write_json(f, &t);
    s = slurp(f, &n);
    j = distill_json_parse(s, n, "table.json", 1, &err);
    CHECK(j != NULL, "not JSON: %s\n%s", j ? "" : err.msg, s);
    if (j) {
        const distill_json *r0 = distill_json_at(j, 0), *r1 = distill_json_at(j, 1), *r2 = distill_json_at(j, 2);
        CHECK(j->type == DISTILL_JSON_ARRAY && j->len == 3, "3 rows");
        CHECK(distill_json_get(r0, "size")->type == DISTILL_JSON_NUMBER && distill_json_get(r0, "size")->i64 == 100, "number stays number");
        CHECK(distill_json_get(r1, "pass@1")->type == DISTILL_JSON_NUMBER && distill_json_get(r1, "pass@1")->num == -0.5e-3, "exponent");
        CHECK(!strcmp(distill_json_get(r1, "run")->str, "has,comma \"q\""), "string escaped");
        CHECK(distill_json_get(r2, "size")->type == DISTILL_JSON_NULL, "empty cell -> null");
        CHECK(distill_json_get(r2, "pass@1")->type == DISTILL_JSON_NULL, "nan -> null");
        distill_json_free(j);
    }
    free(s);
    fclose(f);
    distill_table_free(&t);
}

/* Minimal XML well-formedness: tags balance, attributes are quoted, no raw '<' or '&' in text. */
static int xml_ok(const char *s, char *why, size_t cap) {
    char stack[64][32];
    int depth = 0;
    while (*s) {
        if (*s == '<') {
            const char *e = strchr(s, '>');
            char name[32];
            size_t k = 0;
            int closing = s[1] == '/', selfclose;
            const char *q;
            if (!e) { snprintf(why, cap, "unterminated tag"); return 0; }
            selfclose = e[-1] == '/';
            for (q = s + 1 + closing; q < e && *q != ' ' && *q != '/' && k + 1 < sizeof name; q++) name[k++] = *q;
            name[k] = 0;
            {   /* quotes balance inside the tag */
                int quotes = 0;
                for (q = s; q < e; q++) quotes += *q == '"';
                if (quotes % 2) { snprintf(why, cap, "odd quotes in <%s>", name); return 0; }
            }
            if (closing) {
                if (depth == 0 || strcmp(stack[depth - 1], name)) { snprintf(why, cap, "</%s> closes nothing", name); return 0; }
                depth--;
            } else if (!selfclose) {
                if (depth == 64) { snprintf(why, cap, "too deep"); return 0; }
                snprintf(stack[depth++], 32, "%s", name);
            }
            s = e + 1;
        } else if (*s == '&') {
            if (strncmp(s, "&lt;", 4) && strncmp(s, "&gt;", 4) && strncmp(s, "&amp;", 5) && strncmp(s, "&quot;", 6)) {
                snprintf(why, cap, "raw &");
                return 0;
            }
            s++;
        } else if (*s == '>') { snprintf(why, cap, "raw >"); return 0; }
        else s++;
    }
    if (depth) { snprintf(why, cap, "<%s> not closed", stack[depth - 1]); return 0; }
    return 1;
}

static void test_svg(void) {
    double x[4] = {0, 10, 100, 1000}, y[4] = {0.5, 0.25, NAN, 0.75}, e[4] = {0.1, 0, 0, 0.05};
    double x2[2] = {10, 1000}, y2[2] = {1, 0};
    distill_plot_series se[2];
    distill_plot_panel pn[2];
    FILE *f = tmpfile();
    char *s, why[128], want[64];
    size_t n;
    distill_error err;
    REQUIRE(f != NULL, "no tmpfile");
    memset(se, 0, sizeof se);
    memset(pn, 0, sizeof pn);
    se[0].label = "seed <1> & mean"; se[0].x = x; se[0].y = y; se[0].y_err = e; se[0].n = 4; se[0].markers = 1;
    se[1].label = "other"; se[1].x = x2; se[1].y = y2; se[1].n = 2; se[1].dashed = 1;
    pn[0].title = "pass@1"; pn[0].xlabel = "examples"; pn[0].ylabel = "rate"; pn[0].log_x = 1;
    pn[0].y_min = 0; pn[0].y_max = 1; pn[0].series = se; pn[0].n_series = 2;
    pn[1] = pn[0];
    pn[1].log_x = 0; pn[1].y_min = pn[1].y_max = 0; pn[1].n_series = 1;
    CHECK(distill_svg_write(f, "A & B", pn, 2, 400, 300, &err) == 0, "write: %s", err.msg);
    s = slurp(f, &n);
    CHECK(xml_ok(s, why, sizeof why), "not well-formed: %s", why);
    CHECK(strstr(s, "seed &lt;1&gt; &amp; mean") && strstr(s, "A &amp; B"), "text escaped");
    /* Panel 0: the data span decades 1..3 (10..1000), padded by 6% (0.12 decade) each side, on
       pixels [62+40, 400-16] = [102, 384]; y in [0, 1] on [34, 300-46] = [34, 254].
       x=10 -> 102 + 0.12/2.24*282 = 117.1, x=1000 -> 102 + 2.12/2.24*282 = 368.9;
       y=0.25 -> 34 + 0.75*220 = 199; the x=0 point sits at 62 + 12 = 74, y=0.5 -> 144. */
    snprintf(want, sizeof want, "74.0,144.0 117.1,199.0\"");
    CHECK(strstr(s, want) != NULL, "first segment (break at NaN) '%s' missing", want);
    CHECK(strstr(s, "points=\"368.9,89.0\"") != NULL, "segment after the NaN gap (y=.75 -> 89)");
    CHECK(strstr(s, "stroke-dasharray") != NULL, "dashed series");
    CHECK(strstr(s, ">0</text>") != NULL, "zero tick label");
    CHECK_CLOSE(distill_plot_px_x(100, 1, 3, 1, 400), 243.0, 0, 1e-9, "log x of 100");
    CHECK(strstr(s, ">10</text>") && strstr(s, ">1000</text>") && !strstr(s, ">10000</text>"), "decade labels inside the span only");
    CHECK_CLOSE(distill_plot_px_x(5, 0, 10, 0, 400), 62 + 0.5 * 322, 0, 1e-9, "linear x");
    CHECK_CLOSE(distill_plot_px_y(0.25, 0, 1, 300), 199.0, 0, 1e-9, "y");
    free(s);
    fclose(f);
    /* invalid input is an error, not a crash */
    CHECK(distill_svg_write(stdout, "x", pn, 0, 400, 300, &err) == -1, "0 panels accepted");
    se[0].y = NULL;
    CHECK(distill_svg_write(stdout, "x", pn, 1, 400, 300, &err) == -1, "missing y accepted");
}

/* Degenerate data: no points, one point, constant y, all NaN. Must stay well-formed. */
static void test_svg_degenerate(void) {
    double x[1] = {5}, y[1] = {0.3}, yn[2] = {NAN, NAN}, x2[2] = {1, 2};
    distill_plot_series se[3];
    distill_plot_panel pn;
    distill_error err;
    FILE *f = tmpfile();
    char *s, why[128];
    size_t n;
    REQUIRE(f != NULL, "no tmpfile");
    memset(se, 0, sizeof se);
    memset(&pn, 0, sizeof pn);
    se[0].x = x; se[0].y = y; se[0].n = 1;
    se[1].x = x2; se[1].y = yn; se[1].n = 2; se[1].label = "nan";
    se[2].n = 0; se[2].label = "empty";
    pn.series = se; pn.n_series = 3; pn.log_x = 1;
    CHECK(distill_svg_write(f, NULL, &pn, 1, 300, 200, &err) == 0, "%s", err.msg);
    s = slurp(f, &n);
    CHECK(xml_ok(s, why, sizeof why), "%s", why);
    CHECK(!strstr(s, "nan,") && !strstr(s, "inf"), "no NaN/inf coordinates:\n%s", s);
    free(s);
    fclose(f);
}

int main(void) {
    RUN(test_csv);
    RUN(test_markdown);
    RUN(test_json);
    RUN(test_svg);
    RUN(test_svg_degenerate);
    return harness_done("test_report");
}
