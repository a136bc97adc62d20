/* The option layer (cli_opts.h): one table per command drives the command line, --config and
   --help. Every message is one line on stderr and every usage error returns 2. */
#include "cli.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>

/* ---- the config documents the parsed strings point into ------------------------------------ */
static distill_json **kept;
static int n_kept, cap_kept;

static int keep_doc(distill_json *j) {
    if (n_kept == cap_kept) {
        int nc = cap_kept ? 2 * cap_kept : 8;
        distill_json **p = (distill_json **)realloc(kept, (size_t)nc * sizeof *p);
        if (!p) return -1;
        kept = p;
        cap_kept = nc;
    }
    kept[n_kept++] = j;
    return 0;
}

void cli_opts_release(void) {
    int i;
    for (i = 0; i < n_kept; i++) distill_json_free(kept[i]);
    free(kept);
    kept = NULL;
    n_kept = cap_kept = 0;
}

/* ---- messages ------------------------------------------------------------------------------ */
int cli_usage_error(const cli_cmd *c, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "distill %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

static void fmt_bound(char *buf, size_t cap, const cli_opt *o, double v) {
    if (o->kind == CLI_K_U64 && v >= 1.8e19) snprintf(buf, cap, "18446744073709551615");
    else if (v == floor(v) && fabs(v) < 1e18) snprintf(buf, cap, "%.0f", v);
    else snprintf(buf, cap, "%.15g", v);
}

/* What a value of option o must be, e.g. "an integer in [0, 100]". */
static void expected(const cli_opt *o, char *buf, size_t cap) {
    char lo[40], hi[40];
    fmt_bound(lo, sizeof lo, o, o->min);
    fmt_bound(hi, sizeof hi, o, o->max);
    switch (o->kind) {
    case CLI_K_INT: case CLI_K_INT64: case CLI_K_U64: snprintf(buf, cap, "an integer in [%s, %s]", lo, hi); break;
    case CLI_K_DOUBLE: snprintf(buf, cap, "a number in [%s, %s]", lo, hi); break;
    case CLI_K_ENUM: snprintf(buf, cap, "one of %s", o->meta); break;
    case CLI_K_BUF:
        if (o->min == 1) snprintf(buf, cap, "one of %s", o->meta);
        else snprintf(buf, cap, "a string of at most %d bytes", (int)o->max - 1);
        break;
    case CLI_K_BOOL: snprintf(buf, cap, "true or false (or 1/0)"); break;
    case CLI_K_LIST: snprintf(buf, cap, "a string or an array of strings"); break;
    case CLI_K_INTS: snprintf(buf, cap, "a list of integers in [%s, %s] (at most %d)", lo, hi, CLI_LIST_MAX); break;
    case CLI_K_OPTVAL: snprintf(buf, cap, "true, false or a path"); break;
    default: snprintf(buf, cap, "a string"); break;
    }
}

static const char *json_type_name(const distill_json *v) {
    switch (v->type) {
    case DISTILL_JSON_NULL: return "null";
    case DISTILL_JSON_TRUE: case DISTILL_JSON_FALSE: return "a boolean";
    case DISTILL_JSON_NUMBER: return v->is_int ? "an integer" : "a number";
    case DISTILL_JSON_STRING: return "a string";
    case DISTILL_JSON_ARRAY: return "an array";
    default: return "an object";
    }
}

/* ---- names --------------------------------------------------------------------------------- */
int cli_edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), i, j, d[64];
    if (la > 62 || lb > 62) return 99;
    for (j = 0; j <= lb; j++) d[j] = j;
    for (i = 1; i <= la; i++) {
        int prev = d[0];   /* d[i-1][j-1] */
        d[0] = i;
        for (j = 1; j <= lb; j++) {
            int cur = d[j], best = prev + (a[i - 1] != b[j - 1]);
            if (d[j] + 1 < best) best = d[j] + 1;
            if (d[j - 1] + 1 < best) best = d[j - 1] + 1;
            d[j] = best;
            prev = cur;
        }
    }
    return d[lb];
}

/* '_' and '-' are the same in names (max_seq is max-seq); len < 0: the whole string */
static int name_eq(const char *a, const char *b, int len) {
    int i;
    for (i = 0; len < 0 || i < len; i++) {
        char x = a[i] == '_' ? '-' : a[i], y = b[i] == '_' ? '-' : b[i];
        if (len >= 0 && !b[i]) return 0;
        if (x != y) return 0;
        if (!x) return 1;
    }
    return b[i] == 0;
}

/* The option named `name` (first len chars; len < 0: all), aliases resolved; NULL if none. */
static const cli_opt *find_opt(const cli_cmd *c, const char *name, int len) {
    int i, depth;
    for (i = 0; i < c->n_opts; i++) {
        const cli_opt *o = &c->opts[i];
        if (o->kind == CLI_K_SECTION || !name_eq(name, o->name, len)) continue;
        for (depth = 0; o && o->kind == CLI_K_ALIAS && depth < 4; depth++) o = find_opt(c, o->meta, -1);
        return o;
    }
    return NULL;
}

/* The nearest known name to `name` (NULL if none is close): a typo of one or two letters. */
static const char *suggest(const cli_cmd *c, const char *name) {
    const char *best = NULL;
    int i, bd = 99, lim;
    char norm[64];
    size_t k;
    for (k = 0; name[k] && k + 1 < sizeof norm; k++) norm[k] = name[k] == '_' ? '-' : name[k];
    norm[k] = 0;
    lim = k <= 3 ? 1 : k <= 8 ? 2 : 3;
    for (i = -2; i < c->n_opts; i++) {
        const char *n = i == -2 ? "config" : i == -1 ? "help" : c->opts[i].name;
        int d;
        if (i >= 0 && c->opts[i].kind == CLI_K_SECTION) continue;
        d = cli_edit_distance(norm, n);
        if (d < bd) { bd = d; best = n; }
    }
    return bd <= lim ? best : NULL;
}

/* "--name" (a flag is also accepted with one dash); the one-letter aliases (-o for --out) are
   shown with one */
static const char *dashes(const char *name) { (void)name; return "--"; }

/* ---- setting values ------------------------------------------------------------------------ */
#define AT(s, o, T) ((T *)((char *)(s) + (o)->off))

/* An integer from text: the whole string, exact up to 2^63 (or 2^64 unsigned); "1e3" is taken
   when it is an exact integer below 2^53. 0 ok, -1 not an integer, -2 out of the type's range. */
static int parse_integer(const char *t, int is_unsigned, int64_t *i, uint64_t *u, double *as_double) {
    char *end;
    double d;
    if (!t || !*t) return -1;
    errno = 0;
    if (is_unsigned && *t != '-') {
        unsigned long long x = strtoull(t, &end, 10);
        if (end != t && !*end) {
            if (errno == ERANGE) return -2;
            *u = x;
            *as_double = (double)x;
            return 0;
        }
    } else {
        long long x = strtoll(t, &end, 10);
        if (end != t && !*end) {
            if (errno == ERANGE) return -2;
            *i = x;
            *as_double = (double)x;
            return 0;
        }
    }
    errno = 0;
    d = strtod(t, &end);
    if (end == t || *end) return -1;
    if (errno == ERANGE || !(fabs(d) < 9.0e15)) return d == floor(d) || !(d == d) ? -2 : -1;
    if (d != floor(d)) return -1;
    if (is_unsigned && d < 0) return -2;
    *i = (int64_t)d;
    *u = (uint64_t)(d < 0 ? 0 : d);
    *as_double = d;
    return 0;
}

static int in_list(const char *vals, const char *v) {
    size_t n = strlen(v);
    const char *p = vals;
    while (p && *p) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !strncmp(p, v, n)) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static int store_number(const cli_opt *o, void *s, int64_t i, uint64_t u, double d) {
    if (!(d >= o->min && d <= o->max)) return -1;
    if (o->kind == CLI_K_INT) *AT(s, o, int) = (int)i;
    else if (o->kind == CLI_K_INT64) *AT(s, o, int64_t) = i;
    else if (o->kind == CLI_K_U64) *AT(s, o, uint64_t) = u;
    else *AT(s, o, double) = d;
    return 0;
}

/* Parse "1,5,10" into the list, each in [min, max]. 0 or -1. */
static int set_ints_text(const cli_opt *o, void *s, const char *t) {
    cli_intlist *L = AT(s, o, cli_intlist), tmp;
    char item[64];
    tmp.n = 0;
    while (t && *t) {
        const char *e = strchr(t, ',');
        size_t l = e ? (size_t)(e - t) : strlen(t);
        int64_t i = 0;
        uint64_t u = 0;
        double d = 0;
        if (l == 0 || l >= sizeof item || tmp.n == CLI_LIST_MAX) return -1;
        memcpy(item, t, l);
        item[l] = 0;
        if (parse_integer(item, 0, &i, &u, &d) != 0 || !(d >= o->min && d <= o->max)) return -1;
        tmp.v[tmp.n++] = i;
        t = e ? e + 1 : NULL;
    }
    if (tmp.n == 0) return -1;
    *L = tmp;
    return 0;
}

/* Set option o from command-line text t (NULL for a switch given alone). 0 or -1. */
static int set_text(const cli_opt *o, void *s, const char *t) {
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    char *end;
    switch (o->kind) {
    case CLI_K_INT: case CLI_K_INT64: case CLI_K_U64:
        if (parse_integer(t, o->kind == CLI_K_U64, &i, &u, &d) != 0) return -1;
        return store_number(o, s, i, u, d);
    case CLI_K_DOUBLE:
        if (!t || !*t) return -1;
        errno = 0;
        d = strtod(t, &end);
        if (end == t || *end || errno == ERANGE) return -1;
        return store_number(o, s, 0, 0, d);
    case CLI_K_STRING: case CLI_K_PATH:
        if (!t || (o->kind == CLI_K_PATH && !*t)) return -1;
        *AT(s, o, const char *) = t;
        return 0;
    case CLI_K_ENUM:
        if (!t || !in_list(o->meta, t)) return -1;
        *AT(s, o, const char *) = t;
        return 0;
    case CLI_K_BUF:
        /* "" is "not set" (a saved sweep config writes unset names as "") */
        if (!t || strlen(t) >= (size_t)o->max || (o->min == 1 && *t && !in_list(o->meta, t))) return -1;
        memcpy(AT(s, o, char), t, strlen(t) + 1);
        return 0;
    case CLI_K_BOOL:
        if (!t || !strcmp(t, "1") || !strcmp(t, "true")) *AT(s, o, int) = 1;
        else if (!strcmp(t, "0") || !strcmp(t, "false")) *AT(s, o, int) = 0;
        else return -1;
        return 0;
    case CLI_K_LIST: {
        cli_strlist *L = AT(s, o, cli_strlist);
        if (!t || L->n == CLI_LIST_MAX) return -1;
        L->v[L->n++] = t;
        return 0;
    }
    case CLI_K_INTS: return set_ints_text(o, s, t);
    case CLI_K_OPTVAL:
        AT(s, o, cli_optval)->on = 1;
        AT(s, o, cli_optval)->value = t;
        return 0;
    default: return -1;
    }
}

/* Set option o from a config file's value. 0 or -1 (wrong type or out of range). */
static int set_json(const cli_opt *o, void *s, const distill_json *v) {
    size_t k;
    switch (o->kind) {
    case CLI_K_INT: case CLI_K_INT64: case CLI_K_U64: {
        double d;
        if (v->type != DISTILL_JSON_NUMBER) return -1;
        if (v->is_int) {
            if (o->kind == CLI_K_U64 && v->i64 < 0) return -1;
            return store_number(o, s, v->i64, (uint64_t)v->i64, (double)v->i64);
        }
        d = v->num;
        if (d != floor(d) || !(fabs(d) < 9.0e15)) return -1;
        return store_number(o, s, (int64_t)d, (uint64_t)(d < 0 ? 0 : d), d);
    }
    case CLI_K_DOUBLE:
        if (v->type != DISTILL_JSON_NUMBER) return -1;
        return store_number(o, s, 0, 0, v->is_int ? (double)v->i64 : v->num);
    case CLI_K_STRING: case CLI_K_PATH: case CLI_K_ENUM: case CLI_K_BUF:
        if (v->type != DISTILL_JSON_STRING) return -1;
        return set_text(o, s, v->str);
    case CLI_K_BOOL:
        if (v->type == DISTILL_JSON_TRUE || v->type == DISTILL_JSON_FALSE) { *AT(s, o, int) = v->type == DISTILL_JSON_TRUE; return 0; }
        if (v->type == DISTILL_JSON_NUMBER && v->is_int && (v->i64 == 0 || v->i64 == 1)) { *AT(s, o, int) = (int)v->i64; return 0; }
        return -1;
    case CLI_K_LIST: {
        cli_strlist *L = AT(s, o, cli_strlist);
        if (v->type == DISTILL_JSON_STRING) { L->n = 0; return set_text(o, s, v->str); }
        if (v->type != DISTILL_JSON_ARRAY || v->len > CLI_LIST_MAX) return -1;
        for (k = 0; k < v->len; k++) if (v->items[k].type != DISTILL_JSON_STRING) return -1;
        L->n = 0;
        for (k = 0; k < v->len; k++) L->v[L->n++] = v->items[k].str;
        return 0;
    }
    case CLI_K_INTS: {
        cli_intlist *L = AT(s, o, cli_intlist), tmp;
        if (v->type == DISTILL_JSON_STRING) return set_ints_text(o, s, v->str);
        if (v->type != DISTILL_JSON_ARRAY || v->len > CLI_LIST_MAX || v->len == 0) return -1;
        for (k = 0; k < v->len; k++) {
            const distill_json *x = &v->items[k];
            if (x->type != DISTILL_JSON_NUMBER || !x->is_int || !((double)x->i64 >= o->min && (double)x->i64 <= o->max)) return -1;
            tmp.v[k] = x->i64;
        }
        tmp.n = (int)v->len;
        *L = tmp;
        return 0;
    }
    case CLI_K_OPTVAL:
        if (v->type == DISTILL_JSON_TRUE || v->type == DISTILL_JSON_FALSE) {
            AT(s, o, cli_optval)->on = v->type == DISTILL_JSON_TRUE;
            AT(s, o, cli_optval)->value = NULL;
            return 0;
        }
        if (v->type != DISTILL_JSON_STRING || !v->str[0]) return -1;
        AT(s, o, cli_optval)->on = 1;
        AT(s, o, cli_optval)->value = v->str;
        return 0;
    default: return -1;
    }
}

/* ---- the config file ----------------------------------------------------------------------- */
int cli_config_load(const cli_cmd *c, void *s, const char *path) {
    distill_error err;
    distill_json *j = distill_json_parse_file(path, &err);
    size_t i;
    if (!j) return cli_usage_error(c, "--config: %s", err.msg);
    if (j->type != DISTILL_JSON_OBJECT) {
        distill_json_free(j);
        return cli_usage_error(c, "%s: expected a JSON object {\"flag-name\": value, ...}", path);
    }
    if (keep_doc(j) != 0) { distill_json_free(j); return cli_usage_error(c, "out of memory"); }
    for (i = 0; i < j->len; i++) {
        const distill_json *v = &j->items[i];
        const cli_opt *o = find_opt(c, j->keys[i], -1);
        char want[160];
        if (name_eq(j->keys[i], "config", -1) || name_eq(j->keys[i], "help", -1))
            return cli_usage_error(c, "%s:%d:%d: key '%s' has no meaning in a config file", path, v->line, v->col, j->keys[i]);
        if (!o) {
            const char *near = suggest(c, j->keys[i]);
            if (near) return cli_usage_error(c, "%s:%d:%d: unknown key '%s' (did you mean \"%s\"?)", path, v->line, v->col, j->keys[i], near);
            return cli_usage_error(c, "%s:%d:%d: unknown key '%s' (the keys are the flag names of distill %s --help)", path,
                                   v->line, v->col, j->keys[i], c->name);
        }
        if (set_json(o, s, v) != 0) {
            expected(o, want, sizeof want);
            if (v->type == DISTILL_JSON_STRING)
                return cli_usage_error(c, "%s:%d:%d: key '%s' expects %s, got \"%.60s\"", path, v->line, v->col, j->keys[i], want, v->str);
            if (v->type == DISTILL_JSON_NUMBER)
                return cli_usage_error(c, "%s:%d:%d: key '%s' expects %s, got %.17g", path, v->line, v->col, j->keys[i], want,
                                       v->is_int ? (double)v->i64 : v->num);
            return cli_usage_error(c, "%s:%d:%d: key '%s' expects %s, got %s", path, v->line, v->col, j->keys[i], want,
                                   json_type_name(v));
        }
    }
    return 0;
}

/* ---- the command line ---------------------------------------------------------------------- */
static int is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

/* Split argument a into a flag name (name, len) and an inline "=value"; 0 if a is not a flag. */
static int flag_name(const char *a, const char **name, int *len, const char **inl) {
    const char *eq;
    if (a[0] != '-' || !a[1] || (a[1] >= '0' && a[1] <= '9') || a[1] == '.') return 0;   /* "-", "-3": values */
    *name = a[1] == '-' ? a + 2 : a + 1;
    eq = strchr(*name, '=');
    *len = eq ? (int)(eq - *name) : (int)strlen(*name);
    *inl = eq ? eq + 1 : NULL;
    return 1;
}

int cli_args_apply(const cli_cmd *c, void *s, int argc, char **argv, const char **pos, int *n_pos) {
    int a;
    if (n_pos) *n_pos = 0;
    for (a = 1; a < argc; a++) {
        const char *arg = argv[a], *name, *inl, *val;
        const cli_opt *o;
        char want[160];
        int len;
        if (!flag_name(arg, &name, &len, &inl)) {
            if (!pos || !n_pos || *n_pos >= c->max_pos)
                return cli_usage_error(c, "unexpected argument '%s' (see distill %s --help)", arg, c->name);
            pos[(*n_pos)++] = arg;
            continue;
        }
        if (name_eq(name, "config", len)) { if (!inl) a++; continue; }   /* read before */
        o = find_opt(c, name, len);
        if (!o) {
            char nm[64];
            const char *near;
            snprintf(nm, sizeof nm, "%.*s", len, name);
            near = suggest(c, nm);
            if (near) return cli_usage_error(c, "unknown option '%.*s' (did you mean %s%s?)", (int)(name - arg) + len, arg, dashes(near), near);
            return cli_usage_error(c, "unknown option '%.*s' (see distill %s --help)", (int)(name - arg) + len, arg, c->name);
        }
        expected(o, want, sizeof want);
        if (o->kind == CLI_K_BOOL || o->kind == CLI_K_OPTVAL) {
            /* a switch: alone, =VALUE, or followed by 0/1 (a bool) or a value not starting with
               "-" (--resume DIR) */
            val = inl;
            if (!val && a + 1 < argc) {
                const char *nx = argv[a + 1];
                if (o->kind == CLI_K_BOOL ? (!strcmp(nx, "0") || !strcmp(nx, "1")) : nx[0] != '-') val = argv[++a];
            }
        } else {
            val = inl;
            if (!val) {
                if (a + 1 >= argc) return cli_usage_error(c, "%s%s needs a value (%s)", dashes(o->name), o->name, want);
                val = argv[++a];
            }
        }
        if (set_text(o, s, val) != 0) {
            if (o->kind == CLI_K_LIST) return cli_usage_error(c, "%s%s: at most %d values", dashes(o->name), o->name, CLI_LIST_MAX);
            if (o->kind == CLI_K_PATH && val && !*val) return cli_usage_error(c, "%s%s expects a path, got ''", dashes(o->name), o->name);
            return cli_usage_error(c, "%s%s expects %s, got '%s'", dashes(o->name), o->name, want, val ? val : "");
        }
    }
    return 0;
}

int cli_args_have(const cli_cmd *c, int argc, char **argv, const char *name) {
    const cli_opt *want = find_opt(c, name, -1);
    int a;
    for (a = 1; a < argc; a++) {
        const char *n, *inl;
        int len;
        if (flag_name(argv[a], &n, &len, &inl) && find_opt(c, n, len) == want && want) return 1;
    }
    return 0;
}

int cli_check_required(const cli_cmd *c, const void *s) {
    char msg[512];
    int i, n = 0, total = 0;
    size_t at = 0;
    msg[0] = 0;
    for (i = 0; i < c->n_opts; i++) {
        const cli_opt *o = &c->opts[i];
        if ((o->flags & CLI_REQUIRED) && (o->kind == CLI_K_BUF ? !*AT(s, o, const char) : !*AT(s, o, const char *const))) total++;
    }
    for (i = 0; i < c->n_opts; i++) {
        const cli_opt *o = &c->opts[i];
        int missing;
        if (!(o->flags & CLI_REQUIRED)) continue;
        missing = o->kind == CLI_K_BUF ? !*AT(s, o, const char) : !*AT(s, o, const char *const);
        if (!missing) continue;
        at += (size_t)snprintf(msg + at, at < sizeof msg ? sizeof msg - at : 0, "%s%s%s",
                               !n ? "" : n == total - 1 ? " and " : ", ", dashes(o->name), o->name);
        if (at >= sizeof msg) at = sizeof msg - 1;
        n++;
    }
    if (!n) return 0;
    return cli_usage_error(c, "%s %s required (see distill %s --help)", msg, n > 1 ? "are" : "is", c->name);
}

int cli_parse(const cli_cmd *c, void *s, int argc, char **argv, const char **pos, int *n_pos) {
    int a;
    for (a = 1; a < argc; a++)
        if (is_help(argv[a])) { cli_help(c, s, stdout); return CLI_HELP; }
    for (a = 1; a < argc; a++) {
        const char *name, *inl, *path;
        int len;
        if (!flag_name(argv[a], &name, &len, &inl) || !name_eq(name, "config", len)) continue;
        path = inl;
        if (!path) {
            if (a + 1 >= argc) return cli_usage_error(c, "--config needs a value (a JSON file)");
            path = argv[++a];
        }
        if (cli_config_load(c, s, path) != 0) return 2;
    }
    if (cli_args_apply(c, s, argc, argv, pos, n_pos) != 0) return 2;
    return cli_check_required(c, s);
}

/* ---- --help -------------------------------------------------------------------------------- */
/* The default as --help shows it. A number outside the accepted range is a sentinel ("-1: as
   --train") that the help text explains: not shown. */
static void default_text(const cli_opt *o, const void *s, char *buf, size_t cap) {
    double d;
    buf[0] = 0;
    if (!s) return;
    switch (o->kind) {
    case CLI_K_INT: d = *AT(s, o, const int); if (d >= o->min && d <= o->max) snprintf(buf, cap, "%d", *AT(s, o, const int)); break;
    case CLI_K_INT64:
        d = (double)*AT(s, o, const int64_t);
        if (d >= o->min && d <= o->max) snprintf(buf, cap, "%lld", (long long)*AT(s, o, const int64_t));
        break;
    case CLI_K_U64:
        d = (double)*AT(s, o, const uint64_t);
        if (d >= o->min && d <= o->max) snprintf(buf, cap, "%llu", (unsigned long long)*AT(s, o, const uint64_t));
        break;
    case CLI_K_DOUBLE: d = *AT(s, o, const double); if (d >= o->min && d <= o->max) snprintf(buf, cap, "%g", d); break;
    case CLI_K_STRING: case CLI_K_PATH: case CLI_K_ENUM: {
        const char *v = *AT(s, o, const char *const);
        if (v && *v) snprintf(buf, cap, "%s", v);
        break;
    }
    case CLI_K_BUF: if (*AT(s, o, const char)) snprintf(buf, cap, "%s", AT(s, o, const char)); break;
    case CLI_K_INTS: {
        const cli_intlist *L = AT(s, o, const cli_intlist);
        size_t at = 0;
        int i;
        for (i = 0; i < L->n && at + 24 < cap; i++) at += (size_t)snprintf(buf + at, cap - at, "%s%lld", i ? "," : "", (long long)L->v[i]);
        break;
    }
    default: break;
    }
}

void cli_help(const cli_cmd *c, const void *defaults, FILE *f) {
    int i;
    fputs(c->usage, f);
    if (c->about) { fputc('\n', f); fputs(c->about, f); }
    fprintf(f, "\noptions (--config FILE.json gives them as {\"flag-name\": value}; a flag on the command line wins):\n");
    for (i = 0; i < c->n_opts; i++) {
        const cli_opt *o = &c->opts[i];
        char left[96], def[128];
        const char *meta = o->kind == CLI_K_ENUM || (o->kind == CLI_K_BUF && o->min == 1) ? o->meta : o->meta ? o->meta : "";
        if (o->kind == CLI_K_SECTION) { fprintf(f, "%s\n", o->name); continue; }
        if (o->kind == CLI_K_ALIAS) {
            fprintf(f, "  %s%-*s the same as --%s\n", o->name[1] ? "--" : "-", o->name[1] ? 22 : 23, o->name, o->meta);
            continue;
        }
        if (o->kind == CLI_K_OPTVAL) snprintf(left, sizeof left, "%s%s [%s]", dashes(o->name), o->name, meta);
        else snprintf(left, sizeof left, "%s%s%s%s", dashes(o->name), o->name, *meta ? " " : "", meta);
        default_text(o, defaults, def, sizeof def);
        if (strlen(left) > 24) fprintf(f, "  %s\n  %-24s %s", left, "", o->help ? o->help : "");
        else fprintf(f, "  %-24s %s", left, o->help ? o->help : "");
        if (o->flags & CLI_REQUIRED) fputs(" (required)", f);
        else if (def[0]) fprintf(f, " (default %s)", def);
        fputc('\n', f);
    }
    fprintf(f, "  %-24s %s\n  %-24s %s\n", "--config FILE.json", "read options from a JSON file (keys: the flag names)",
            "--help", "this text");
    if (c->notes) { fputc('\n', f); fputs(c->notes, f); }
    fputs(CLI_EXIT_STATUS_TEXT, f);
}

/* ---- the resolved options as a config file -------------------------------------------------- */
static void put_str(FILE *f, const char *v) { distill_json_write_string(f, v, strlen(v)); }

void cli_opts_write_json(const cli_cmd *c, const void *s, FILE *f) {
    int i, k, n = 0;
    fputc('{', f);
    for (i = 0; i < c->n_opts; i++) {
        const cli_opt *o = &c->opts[i];
        const char *str = NULL;
        if (o->kind == CLI_K_SECTION || o->kind == CLI_K_ALIAS) continue;
        if (o->kind == CLI_K_STRING || o->kind == CLI_K_PATH || o->kind == CLI_K_ENUM) {
            str = *AT(s, o, const char *const);
            if (!str) continue;
        }
        fprintf(f, "%s\n  ", n++ ? "," : "");
        put_str(f, o->name);
        fputs(": ", f);
        switch (o->kind) {
        case CLI_K_INT: fprintf(f, "%d", *AT(s, o, const int)); break;
        case CLI_K_INT64: fprintf(f, "%lld", (long long)*AT(s, o, const int64_t)); break;
        case CLI_K_U64: fprintf(f, "%llu", (unsigned long long)*AT(s, o, const uint64_t)); break;
        case CLI_K_DOUBLE: fprintf(f, "%.17g", *AT(s, o, const double)); break;
        case CLI_K_BOOL: fputs(*AT(s, o, const int) ? "true" : "false", f); break;
        case CLI_K_BUF: put_str(f, AT(s, o, const char)); break;
        case CLI_K_LIST: {
            const cli_strlist *L = AT(s, o, const cli_strlist);
            fputc('[', f);
            for (k = 0; k < L->n; k++) { if (k) fputs(", ", f); put_str(f, L->v[k]); }
            fputc(']', f);
            break;
        }
        case CLI_K_INTS: {
            const cli_intlist *L = AT(s, o, const cli_intlist);
            fputc('[', f);
            for (k = 0; k < L->n; k++) fprintf(f, "%s%lld", k ? ", " : "", (long long)L->v[k]);
            fputc(']', f);
            break;
        }
        case CLI_K_OPTVAL: {
            const cli_optval *v = AT(s, o, const cli_optval);
            if (v->on && v->value) put_str(f, v->value);
            else fputs(v->on ? "true" : "false", f);
            break;
        }
        default: put_str(f, str ? str : ""); break;
        }
    }
    fputs("\n}\n", f);
}
