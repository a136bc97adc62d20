/* world.c - the miniature competitive-programming world: language, interpreter, problem
   generator, teacher, verifier. See world.h for the overview. */
#include "world.h"
#include <string.h>
#include <stdarg.h>
#include <stdlib.h>

/* ===================================================================================== */
/* The language                                                                           */
/* ===================================================================================== */

/* One row per opcode: its spelling, whether it takes an argument, the argument range the
   parser accepts, and whether it is a reduction (list -> int, only allowed as the last step). */
typedef struct world__opinfo {
    const char *word;   /* "map", "filter", "sort", ... */
    const char *sym;    /* map/filter selector: "+", "-", "*", "odd", "even", ">", "<", or "" */
    int has_arg, arg_min, arg_max, reduction;
} world__opinfo;

static const world__opinfo world__ops[WORLD_OP_COUNT] = {
    {"map", "+", 1, 0, 99, 0},      {"map", "-", 1, 0, 99, 0},     {"map", "*", 1, 0, 99, 0},
    {"filter", "odd", 0, 0, 0, 0},  {"filter", "even", 0, 0, 0, 0},
    {"filter", ">", 1, -99, 99, 0}, {"filter", "<", 1, -99, 99, 0},
    {"sort", "", 0, 0, 0, 0},       {"rsort", "", 0, 0, 0, 0},     {"reverse", "", 0, 0, 0, 0},
    {"uniq", "", 0, 0, 0, 0},       {"take", "", 1, 0, 99, 0},     {"drop", "", 1, 0, 99, 0},
    {"scan", "", 0, 0, 0, 0},
    {"sum", "", 0, 0, 0, 1},        {"max", "", 0, 0, 0, 1},       {"min", "", 0, 0, 0, 1},
    {"len", "", 0, 0, 0, 1},        {"first", "", 0, 0, 0, 1},     {"last", "", 0, 0, 0, 1},
};

static void world__msg(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    if (!buf || cap == 0) return;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

static int world__is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int world__is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int world__is_digit(char c) { return c >= '0' && c <= '9'; }

/* A small cursor over the program text. */
typedef struct world__cur { const char *s; size_t n, i; } world__cur;
static void world__skip(world__cur *c) { while (c->i < c->n && world__is_space(c->s[c->i])) c->i++; }

/* Read an optionally signed decimal integer (at most 6 digits, so it cannot overflow). */
static int world__read_int(world__cur *c, int64_t *out) {
    int neg = 0, digits = 0;
    int64_t v = 0;
    if (c->i < c->n && (c->s[c->i] == '-' || c->s[c->i] == '+')) { neg = c->s[c->i] == '-'; c->i++; }
    while (c->i < c->n && world__is_digit(c->s[c->i])) {
        if (++digits > 7) return -1;
        v = v * 10 + (c->s[c->i] - '0');
        c->i++;
    }
    if (digits == 0) return -1;
    *out = neg ? -v : v;
    return 0;
}

int world_parse(const char *text, size_t len, world_program *p, char *err, size_t err_cap) {
    world__cur c;
    c.s = text; c.n = len; c.i = 0;
    p->n = 0;
    if (len > WORLD_MAX_PROGRAM_TEXT) {
        world__msg(err, err_cap, "program too long (%zu bytes, limit %d)", len, WORLD_MAX_PROGRAM_TEXT);
        return -1;
    }
    for (;;) {
        char word[16], sym[8];
        size_t wn = 0, sn = 0, at;
        int code = -1, k;
        int64_t arg = 0;
        world__skip(&c);
        at = c.i;
        while (c.i < c.n && world__is_alpha(c.s[c.i])) {
            if (wn + 1 >= sizeof word) break;
            word[wn++] = c.s[c.i++];
        }
        word[wn] = 0;
        if (wn == 0) {
            world__msg(err, err_cap, "parse error at %zu: expected an operation", at + 1);
            return -1;
        }
        sym[0] = 0;
        if (!strcmp(word, "map") || !strcmp(word, "filter")) {
            world__skip(&c);
            if (c.i < c.n && strchr("+-*<>", c.s[c.i]) && c.s[c.i]) { sym[0] = c.s[c.i++]; sym[1] = 0; sn = 1; }
            else {
                while (c.i < c.n && world__is_alpha(c.s[c.i]) && sn + 1 < sizeof sym) sym[sn++] = c.s[c.i++];
                sym[sn] = 0;
            }
        }
        for (k = 0; k < WORLD_OP_COUNT; k++)
            if (!strcmp(world__ops[k].word, word) && !strcmp(world__ops[k].sym, sym)) { code = k; break; }
        if (code < 0) {
            if (sym[0]) world__msg(err, err_cap, "parse error at %zu: unknown operation '%s %s'", at + 1, word, sym);
            else world__msg(err, err_cap, "parse error at %zu: unknown operation '%s'", at + 1, word);
            return -1;
        }
        if (world__ops[code].has_arg) {
            world__skip(&c);
            if (world__read_int(&c, &arg) != 0 || arg < world__ops[code].arg_min || arg > world__ops[code].arg_max) {
                world__msg(err, err_cap, "parse error at %zu: '%s%s%s' needs a number in [%d, %d]", at + 1,
                           word, sym[0] ? " " : "", sym, world__ops[code].arg_min, world__ops[code].arg_max);
                return -1;
            }
        }
        if (p->n == WORLD_MAX_OPS) {
            world__msg(err, err_cap, "parse error at %zu: more than %d steps", at + 1, WORLD_MAX_OPS);
            return -1;
        }
        if (p->n > 0 && world__ops[p->ops[p->n - 1].code].reduction) {
            world__msg(err, err_cap, "parse error at %zu: '%s' follows a reduction, which must be the last step",
                       at + 1, word);
            return -1;
        }
        p->ops[p->n].code = code;
        p->ops[p->n].arg = (int)arg;
        p->n++;
        world__skip(&c);
        if (c.i == c.n) return 0;
        if (c.s[c.i] != '|') {
            world__msg(err, err_cap, "parse error at %zu: expected '|' or the end", c.i + 1);
            return -1;
        }
        c.i++;
    }
}

size_t world_format_program(const world_program *p, char *buf, size_t cap) {
    size_t n = 0;
    int i;
    if (cap) buf[0] = 0;
    for (i = 0; i < p->n; i++) {
        const world__opinfo *o = &world__ops[p->ops[i].code];
        char step[32];
        if (o->has_arg && o->sym[0]) snprintf(step, sizeof step, "%s %s%d", o->word, o->sym, p->ops[i].arg);
        else if (o->has_arg) snprintf(step, sizeof step, "%s %d", o->word, p->ops[i].arg);
        else if (o->sym[0]) snprintf(step, sizeof step, "%s %s", o->word, o->sym);
        else snprintf(step, sizeof step, "%s", o->word);
        if (n < cap) n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? " | " : "", step);
    }
    return n < cap ? n : (cap ? cap - 1 : 0);
}

size_t world_format_value(const world_value *v, char *buf, size_t cap) {
    size_t n = 0;
    int i;
    if (cap == 0) return 0;
    if (v->is_int) n = (size_t)snprintf(buf, cap, "%lld", (long long)v->v[0]);
    else {
        n = (size_t)snprintf(buf, cap, "[");
        for (i = 0; i < v->n && n < cap; i++)
            n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? "," : "", (long long)v->v[i]);
        if (n < cap) n += (size_t)snprintf(buf + n, cap - n, "]");
    }
    return n < cap ? n : cap - 1;
}

int world_parse_value(const char *text, size_t len, world_value *v, char *err, size_t err_cap) {
    world__cur c;
    int64_t x;
    c.s = text; c.n = len; c.i = 0;
    memset(v, 0, sizeof *v);
    world__skip(&c);
    if (c.i < c.n && c.s[c.i] == '[') {
        c.i++;
        world__skip(&c);
        if (c.i < c.n && c.s[c.i] == ']') c.i++;
        else for (;;) {
            world__skip(&c);
            if (world__read_int(&c, &x) != 0 || x > WORLD_MAX_ABS || x < -WORLD_MAX_ABS) {
                world__msg(err, err_cap, "value: bad number at %zu", c.i + 1);
                return -1;
            }
            if (v->n == WORLD_MAX_LIST) {
                world__msg(err, err_cap, "value: more than %d items", WORLD_MAX_LIST);
                return -1;
            }
            v->v[v->n++] = x;
            world__skip(&c);
            if (c.i < c.n && c.s[c.i] == ',') { c.i++; continue; }
            if (c.i < c.n && c.s[c.i] == ']') { c.i++; break; }
            world__msg(err, err_cap, "value: expected ',' or ']' at %zu", c.i + 1);
            return -1;
        }
    } else {
        if (world__read_int(&c, &x) != 0 || x > WORLD_MAX_ABS || x < -WORLD_MAX_ABS) {
            world__msg(err, err_cap, "value: expected a list or an integer");
            return -1;
        }
        v->is_int = 1; v->n = 1; v->v[0] = x;
    }
    world__skip(&c);
    if (c.i != c.n) {
        world__msg(err, err_cap, "value: unexpected text at %zu", c.i + 1);
        return -1;
    }
    return 0;
}

int world_value_equal(const world_value *a, const world_value *b) {
    int i;
    if (a->is_int != b->is_int || a->n != b->n) return 0;
    for (i = 0; i < a->n; i++) if (a->v[i] != b->v[i]) return 0;
    return 1;
}

static int world__in_range(int64_t x) { return x <= WORLD_MAX_ABS && x >= -WORLD_MAX_ABS; }

/* The interpreter: one switch per step on a fixed-size value. Every element operation is
   charged to a step budget so that, whatever the program, a run is bounded. */
int world_run(const world_program *p, const world_value *in, world_value *out, world_value *trace,
              char *err, size_t err_cap) {
    world_value cur = *in, nxt;
    long steps = 0;
    int s, i, j;
    if (in->is_int) { world__msg(err, err_cap, "input must be a list"); return -1; }
    if (in->n < 0 || in->n > WORLD_MAX_LIST) { world__msg(err, err_cap, "input too long"); return -1; }
    for (s = 0; s < p->n; s++) {
        const world_op *op = &p->ops[s];
        int64_t k = op->arg, acc;
        if (op->code < 0 || op->code >= WORLD_OP_COUNT) { world__msg(err, err_cap, "step %d: bad opcode", s + 1); return -1; }
        if (cur.is_int) {
            world__msg(err, err_cap, "step %d: '%s' applied to a number", s + 1, world__ops[op->code].word);
            return -1;
        }
        steps += 1 + (long)cur.n * (long)cur.n;   /* the quadratic bound covers sort and uniq */
        if (steps > WORLD_MAX_STEPS) { world__msg(err, err_cap, "step budget exceeded"); return -1; }
        memset(&nxt, 0, sizeof nxt);
        switch (op->code) {
        case WORLD_MAP_ADD: case WORLD_MAP_SUB: case WORLD_MAP_MUL:
            for (i = 0; i < cur.n; i++) {
                int64_t x = cur.v[i];
                x = op->code == WORLD_MAP_ADD ? x + k : op->code == WORLD_MAP_SUB ? x - k : x * k;
                if (!world__in_range(x)) { world__msg(err, err_cap, "step %d: overflow", s + 1); return -1; }
                nxt.v[nxt.n++] = x;
            }
            break;
        case WORLD_FILTER_ODD: case WORLD_FILTER_EVEN: case WORLD_FILTER_GT: case WORLD_FILTER_LT:
            for (i = 0; i < cur.n; i++) {
                int64_t x = cur.v[i];
                int keep = op->code == WORLD_FILTER_ODD ? (x % 2 != 0) : op->code == WORLD_FILTER_EVEN ? (x % 2 == 0)
                         : op->code == WORLD_FILTER_GT ? (x > k) : (x < k);
                if (keep) nxt.v[nxt.n++] = x;
            }
            break;
        case WORLD_SORT: case WORLD_RSORT:   /* insertion sort: stable, n <= WORLD_MAX_LIST */
            nxt = cur;
            for (i = 1; i < nxt.n; i++) {
                int64_t x = nxt.v[i];
                for (j = i - 1; j >= 0 && (op->code == WORLD_SORT ? nxt.v[j] > x : nxt.v[j] < x); j--) nxt.v[j + 1] = nxt.v[j];
                nxt.v[j + 1] = x;
            }
            break;
        case WORLD_REVERSE:
            for (i = cur.n - 1; i >= 0; i--) nxt.v[nxt.n++] = cur.v[i];
            break;
        case WORLD_UNIQ:   /* keep the first occurrence of each value */
            for (i = 0; i < cur.n; i++) {
                for (j = 0; j < nxt.n && nxt.v[j] != cur.v[i]; j++) {}
                if (j == nxt.n) nxt.v[nxt.n++] = cur.v[i];
            }
            break;
        case WORLD_TAKE:
            for (i = 0; i < cur.n && i < k; i++) nxt.v[nxt.n++] = cur.v[i];
            break;
        case WORLD_DROP:
            for (i = (int)(k < cur.n ? k : cur.n); i < cur.n; i++) nxt.v[nxt.n++] = cur.v[i];
            break;
        case WORLD_SCAN:
            for (acc = 0, i = 0; i < cur.n; i++) {
                acc += cur.v[i];
                if (!world__in_range(acc)) { world__msg(err, err_cap, "step %d: overflow", s + 1); return -1; }
                nxt.v[nxt.n++] = acc;
            }
            break;
        case WORLD_SUM: case WORLD_LEN:
            for (acc = 0, i = 0; i < cur.n; i++) acc += op->code == WORLD_SUM ? cur.v[i] : 1;
            if (!world__in_range(acc)) { world__msg(err, err_cap, "step %d: overflow", s + 1); return -1; }
            nxt.is_int = 1; nxt.n = 1; nxt.v[0] = acc;
            break;
        default:   /* max, min, first, last: undefined on an empty list */
            if (cur.n == 0) {
                world__msg(err, err_cap, "step %d: '%s' of an empty list", s + 1, world__ops[op->code].word);
                return -1;
            }
            acc = op->code == WORLD_LAST ? cur.v[cur.n - 1] : cur.v[0];
            for (i = 1; i < cur.n; i++) {
                if (op->code == WORLD_MAX && cur.v[i] > acc) acc = cur.v[i];
                if (op->code == WORLD_MIN && cur.v[i] < acc) acc = cur.v[i];
            }
            nxt.is_int = 1; nxt.n = 1; nxt.v[0] = acc;
            break;
        }
        cur = nxt;
        if (trace) trace[s] = cur;
    }
    *out = cur;
    return 0;
}

/* ===================================================================================== */
/* Problems                                                                               */
/* ===================================================================================== */

/* Precise descriptions of each step. %d is the argument. */
static const char *world__phrase[WORLD_OP_COUNT] = {
    "add %d to each number", "subtract %d from each number", "multiply each number by %d",
    "keep the odd numbers", "keep the even numbers", "keep numbers above %d", "keep numbers below %d",
    "sort them ascending", "sort them descending", "reverse the list", "remove repeats",
    "keep the first %d", "drop the first %d", "take running totals",
    "add them up", "take the largest", "take the smallest", "count them", "take the first one",
    "take the last one",
};

/* Vague descriptions: a phrase and the two readings it admits. The examples decide. */
typedef struct world__vague { const char *phrase; world_op a, b; int reduction; } world__vague;
static const world__vague world__vagues[] = {
    {"put them in order", {WORLD_SORT, 0}, {WORLD_RSORT, 0}, 0},
    {"keep one parity", {WORLD_FILTER_ODD, 0}, {WORLD_FILTER_EVEN, 0}, 0},
    {"keep the first few", {WORLD_TAKE, 2}, {WORLD_TAKE, 3}, 0},
    {"shift each number up", {WORLD_MAP_ADD, 1}, {WORLD_MAP_ADD, 2}, 0},
    {"scale each number", {WORLD_MAP_MUL, 2}, {WORLD_MAP_MUL, 3}, 0},
    {"keep the big numbers", {WORLD_FILTER_GT, 4}, {WORLD_FILTER_GT, 6}, 0},
    {"skip a few at the start", {WORLD_DROP, 1}, {WORLD_DROP, 2}, 0},
    {"take an extreme", {WORLD_MAX, 0}, {WORLD_MIN, 0}, 1},
    {"take an end", {WORLD_FIRST, 0}, {WORLD_LAST, 0}, 1},
};
#define WORLD__N_VAGUE ((int)(sizeof world__vagues / sizeof world__vagues[0]))

const char *world_difficulty_label(int level) { return level <= 2 ? "EASY" : "HARD"; }

static int world__rand(distill_rng *r, int lo, int hi) { return lo + (int)distill_rng_below(r, (uint64_t)(hi - lo + 1)); }

/* A precise transform or reduction with an argument from the generator's small ranges. */
static world_op world__random_op(distill_rng *r, int reduction) {
    world_op op;
    if (reduction) { op.code = world__rand(r, WORLD_SUM, WORLD_LAST); op.arg = 0; return op; }
    op.code = world__rand(r, WORLD_MAP_ADD, WORLD_SCAN);
    switch (op.code) {
    case WORLD_MAP_ADD: case WORLD_MAP_SUB: op.arg = world__rand(r, 1, 3); break;
    case WORLD_MAP_MUL: op.arg = world__rand(r, 2, 3); break;
    case WORLD_FILTER_GT: op.arg = world__rand(r, 2, 6); break;
    case WORLD_FILTER_LT: op.arg = world__rand(r, 3, 7); break;
    case WORLD_TAKE: op.arg = world__rand(r, 1, 3); break;
    case WORLD_DROP: op.arg = world__rand(r, 1, 2); break;
    default: op.arg = 0;
    }
    return op;
}

/* Steps that would make a program silly: the same opcode twice, or two opposite sorts/filters. */
static int world__clashes(const world_program *p, int upto, world_op op) {
    int i;
    for (i = 0; i < upto; i++) {
        int c = p->ops[i].code;
        if (c == op.code) return 1;
        if ((c == WORLD_SORT || c == WORLD_RSORT || c == WORLD_REVERSE) &&
            (op.code == WORLD_SORT || op.code == WORLD_RSORT || op.code == WORLD_REVERSE)) return 1;
        if ((c == WORLD_FILTER_ODD || c == WORLD_FILTER_EVEN) && (op.code == WORLD_FILTER_ODD || op.code == WORLD_FILTER_EVEN)) return 1;
        if ((c == WORLD_TAKE || c == WORLD_DROP) && (op.code == WORLD_TAKE || op.code == WORLD_DROP)) return 1;
    }
    /* sum/len/max/min after a sort or reverse is fine; a scan right before len is not interesting */
    return 0;
}

static void world__random_list(distill_rng *r, world_value *v) {
    int i;
    memset(v, 0, sizeof *v);
    v->n = world__rand(r, 3, 5);
    for (i = 0; i < v->n; i++) v->v[i] = world__rand(r, 0, 9);
}

/* The program obtained by reading every vague step i as reading[i] (0: a, 1: b). */
static void world__reading(const world_problem *pr, const int *cls, const int *reading, world_program *out) {
    int i;
    *out = pr->truth;
    for (i = 0; i < pr->truth.n; i++)
        if (pr->vague[i]) out->ops[i] = reading[i] ? world__vagues[cls[i]].b : world__vagues[cls[i]].a;
}

/* Which vague class (and which reading) a step of the truth is, or -1. */
static int world__vague_class(world_op op, int *which) {
    int c;
    for (c = 0; c < WORLD__N_VAGUE; c++) {
        if (world__vagues[c].a.code == op.code && world__vagues[c].a.arg == op.arg) { *which = 0; return c; }
        if (world__vagues[c].b.code == op.code && world__vagues[c].b.arg == op.arg) { *which = 1; return c; }
    }
    return -1;
}

static int world__count_readings(const world_problem *pr) {
    int i, n = 1;
    for (i = 0; i < pr->truth.n; i++) if (pr->vague[i]) n *= 2;
    return n;
}

/* Decode reading number `idx` (bits over the vague steps, last vague step = lowest bit). */
static void world__decode_reading(const world_problem *pr, int idx, int *reading) {
    int i;
    for (i = pr->truth.n - 1; i >= 0; i--) {
        reading[i] = 0;
        if (pr->vague[i]) { reading[i] = idx & 1; idx >>= 1; }
    }
}

/* 1 when p produces want on in (errors count as a mismatch). */
static int world__passes(const world_program *p, const world_test *t) {
    world_value got;
    if (world_run(p, &t->in, &got, NULL, NULL, 0) != 0) return 0;
    return world_value_equal(&got, &t->out);
}

static int world__count_pass(const world_program *p, const world_test *t, int n) {
    int i, k = 0;
    for (i = 0; i < n; i++) k += world__passes(p, &t[i]);
    return k;
}

/* Fill in the tests for pr->truth; 0 when acceptable:
   - the truth runs without error on every input and public outputs are not empty lists;
   - the hidden outputs are varied (at least 3 distinct), so a constant answer cannot pass;
   - every other reading of the vague phrases fails some public example: the examples decide. */
static int world__make_tests(world_problem *pr, distill_rng *r) {
    int i, j, distinct, cls[WORLD_MAX_OPS], reading[WORLD_MAX_OPS], truth_idx = 0, nr, which;
    for (i = 0; i < WORLD_N_PUBLIC + WORLD_N_HIDDEN; i++) {
        world_test *t = i < WORLD_N_PUBLIC ? &pr->pub[i] : &pr->hid[i - WORLD_N_PUBLIC];
        world__random_list(r, &t->in);
        if (world_run(&pr->truth, &t->in, &t->out, NULL, NULL, 0) != 0) return -1;
        if (i < WORLD_N_PUBLIC && !t->out.is_int && t->out.n == 0) return -1;
    }
    for (distinct = 0, i = 0; i < WORLD_N_HIDDEN; i++) {
        for (j = 0; j < i && !world_value_equal(&pr->hid[i].out, &pr->hid[j].out); j++) {}
        if (j == i) distinct++;
    }
    if (distinct < 3) return -1;
    for (i = 0; i < pr->truth.n; i++) {
        cls[i] = -1;
        if (pr->vague[i]) {
            cls[i] = world__vague_class(pr->truth.ops[i], &which);
            truth_idx = truth_idx * 2 + which;
        }
    }
    nr = world__count_readings(pr);
    for (i = 0; i < nr; i++) {
        world_program alt;
        if (i == truth_idx) continue;
        world__decode_reading(pr, i, reading);
        world__reading(pr, cls, reading, &alt);
        if (world__count_pass(&alt, pr->pub, WORLD_N_PUBLIC) == WORLD_N_PUBLIC) return -1;
    }
    return 0;
}

static void world__build_question(world_problem *pr) {
    size_t n = 0, cap = sizeof pr->question;
    int i, which;
    for (i = 0; i < pr->truth.n; i++) {
        char step[64];
        world_op op = pr->truth.ops[i];
        if (pr->vague[i]) snprintf(step, sizeof step, "%s", world__vagues[world__vague_class(op, &which)].phrase);
        else snprintf(step, sizeof step, world__phrase[op.code], op.arg);
        if (i == 0 && step[0] >= 'a' && step[0] <= 'z') step[0] = (char)(step[0] - 'a' + 'A');
        n += (size_t)snprintf(pr->question + n, cap - n, "%s%s", i ? ", then " : "", step);
    }
    n += (size_t)snprintf(pr->question + n, cap - n, ".\n");
    for (i = 0; i < WORLD_N_PUBLIC; i++) {
        char a[256], b[256];
        world_format_value(&pr->pub[i].in, a, sizeof a);
        world_format_value(&pr->pub[i].out, b, sizeof b);
        n += (size_t)snprintf(pr->question + n, cap - n, "%s -> %s%s", a, b, i + 1 < WORLD_N_PUBLIC ? "\n" : "");
    }
}

/* Number of steps and vague steps per level:  1: 1/0  2: 2/0  3: 2-3/1  4: 3/2  5: 4/2. */
int world_generate(world_problem *pr, uint64_t seed, int level) {
    distill_rng r;
    int attempt;
    memset(pr, 0, sizeof *pr);
    if (level < 1 || level > WORLD_N_LEVELS) return -1;
    distill_rng_seed(&r, seed * 0x9E3779B97F4A7C15ull + (uint64_t)level);
    pr->seed = seed;
    pr->level = level;
    for (attempt = 0;; attempt++) {
        int n = level == 1 ? 1 : level == 2 ? 2 : level == 3 ? world__rand(&r, 2, 3) : level == 4 ? 3 : 4;
        int nv = level <= 2 ? 0 : level == 3 ? 1 : 2;
        int reduce = (int)distill_rng_below(&r, 2), i, tries;
        memset(pr->vague, 0, sizeof pr->vague);
        /* choose the vague steps */
        for (i = 0; i < nv;) {
            int s = world__rand(&r, 0, n - 1);
            if (!pr->vague[s]) { pr->vague[s] = 1; i++; }
        }
        pr->truth.n = n;
        for (i = 0; i < n; i++) {
            int last_reduce = reduce && i == n - 1;
            world_op op;
            for (tries = 0; tries < 50; tries++) {
                if (pr->vague[i]) {
                    /* a vague class of the right kind (transform, or reduction for the last step) */
                    const world__vague *v;
                    do v = &world__vagues[world__rand(&r, 0, WORLD__N_VAGUE - 1)];
                    while (v->reduction != last_reduce);
                    op = distill_rng_below(&r, 2) ? v->b : v->a;
                } else op = world__random_op(&r, last_reduce);
                if (!world__clashes(&pr->truth, i, op)) break;
            }
            pr->truth.ops[i] = op;
        }
        /* reject programs with clashes left over after the tries */
        for (i = 1; i < n; i++) if (world__clashes(&pr->truth, i, pr->truth.ops[i])) break;
        if (i < n) continue;
        for (tries = 0; tries < 30; tries++)
            if (world__make_tests(pr, &r) == 0) { world__build_question(pr); return 0; }
        if (attempt > 100000) return -1;   /* cannot happen with these tables; a guard */
    }
}

/* ===================================================================================== */
/* The teacher                                                                            */
/* ===================================================================================== */

typedef struct world__buf { char *s; size_t n, cap; int overflow; } world__buf;
#if defined(__GNUC__) || defined(__clang__)
static void world__put(world__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
static void world__put(world__buf *b, const char *fmt, ...) {
    va_list ap;
    int k;
    if (b->overflow) return;
    va_start(ap, fmt);
    k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= b->cap - b->n) { b->overflow = 1; return; }
    b->n += (size_t)k;
}

/* "[3,8,1] -> [3,1] -> 4 ok" or "... -> 3, want 4, no". Returns 1 on a match. The states are
   the interpreter's real intermediate values. */
static int world__check_line(world__buf *b, const world_program *p, const world_test *t) {
    world_value trace[WORLD_MAX_OPS], got;
    char txt[256], err[128];
    int s, ok;
    world_format_value(&t->in, txt, sizeof txt);
    world__put(b, "%s", txt);
    if (world_run(p, &t->in, &got, trace, err, sizeof err) != 0) {
        /* show the states up to the step that failed (found by running prefixes), then "error" */
        world_program prefix = *p;
        for (prefix.n = 1; prefix.n < p->n; prefix.n++)
            if (world_run(&prefix, &t->in, &got, NULL, NULL, 0) != 0) break;
        for (s = 0; s + 1 < prefix.n; s++) {
            world_format_value(&trace[s], txt, sizeof txt);
            world__put(b, " -> %s", txt);
        }
        world__put(b, " -> error, no\n");
        return 0;
    }
    for (s = 0; s < p->n; s++) {
        world_format_value(&trace[s], txt, sizeof txt);
        world__put(b, " -> %s", txt);
    }
    ok = world_value_equal(&got, &t->out);
    if (ok) world__put(b, " ok\n");
    else {
        world_format_value(&t->out, txt, sizeof txt);
        world__put(b, ", want %s, no\n", txt);
    }
    return ok;
}

/* Single-step mutations of a program: argument +-1, a sibling operation, a dropped step. */
static int world__mutations(const world_program *p, world_program *out, int cap) {
    static const int sib[][2] = {
        {WORLD_FILTER_ODD, WORLD_FILTER_EVEN}, {WORLD_FILTER_GT, WORLD_FILTER_LT}, {WORLD_SORT, WORLD_RSORT},
        {WORLD_TAKE, WORLD_DROP}, {WORLD_MAP_ADD, WORLD_MAP_SUB}, {WORLD_MAX, WORLD_MIN},
        {WORLD_FIRST, WORLD_LAST}, {WORLD_SUM, WORLD_LEN}, {WORLD_REVERSE, WORLD_SORT},
    };
    int i, j, d, n = 0;
    for (i = 0; i < p->n; i++) {
        const world__opinfo *o = &world__ops[p->ops[i].code];
        if (o->has_arg)
            for (d = -1; d <= 1; d += 2) {
                int a = p->ops[i].arg + d;
                if (a < o->arg_min || a > o->arg_max || (p->ops[i].code == WORLD_MAP_MUL && a < 1)) continue;
                if (n < cap) { out[n] = *p; out[n].ops[i].arg = a; n++; }
            }
        for (j = 0; j < (int)(sizeof sib / sizeof sib[0]); j++) {
            int to = sib[j][0] == p->ops[i].code ? sib[j][1] : sib[j][1] == p->ops[i].code ? sib[j][0] : -1;
            if (to < 0 || n >= cap) continue;
            out[n] = *p; out[n].ops[i].code = to;
            if (!world__ops[to].has_arg) out[n].ops[i].arg = 0;
            else if (!o->has_arg) out[n].ops[i].arg = 1;
            n++;
        }
        if (p->n > 1 && n < cap) {
            out[n] = *p;
            for (j = i; j + 1 < p->n; j++) out[n].ops[j] = out[n].ops[j + 1];
            out[n].n--;
            n++;
        }
    }
    return n;
}

static void world__shuffle(distill_rng *r, world_program *a, int n) {
    int i;
    for (i = n - 1; i > 0; i--) {
        int j = (int)distill_rng_below(r, (uint64_t)(i + 1));
        world_program t = a[i]; a[i] = a[j]; a[j] = t;
    }
}

const char *world_teacher_kind_name(world_teacher_kind k) {
    static const char *const names[WORLD_N_TEACHER_KINDS] = {"careful", "hasty", "slip", "misread", "exec_slip"};
    return (int)k >= 0 && (int)k < WORLD_N_TEACHER_KINDS ? names[k] : "?";
}

/* The search of a careful teacher over the readings of prog (whose vague steps are those of pr),
   in the teacher's order: the first reading that fits every public example, and how many were
   tried (*tried). With slip_at >= 0 the teacher instead accepts the first wrong reading that fits
   all but one example, by a slip in that example's check; *slipped says whether it happened.
   Writes the "try" and check lines when b is given. Returns 1 if a reading was accepted. */
static int world__search(world__buf *b, const world_problem *pr, const world_program *prog, const int *cls,
                         const int *flip, int slip, world_program *accepted, int *tried, int *slipped) {
    world_problem q = *pr;
    world_program hyp;
    world_value scratch;
    int reading[WORLD_MAX_OPS], h, i, e, nr = world__count_readings(pr);
    char txt[WORLD_MAX_PROGRAM_TEXT];
    q.truth = *prog;
    if (slipped) *slipped = 0;
    for (h = 0; h < nr; h++) {
        int fails = 0, bad = -1;
        world__decode_reading(&q, h, reading);
        for (i = 0; i < q.truth.n; i++) reading[i] ^= q.vague[i] ? flip[i] : 0;
        world__reading(&q, cls, reading, &hyp);
        for (e = 0; e < WORLD_N_PUBLIC; e++) if (!world__passes(&hyp, &pr->pub[e])) { fails++; bad = e; }
        if (tried) *tried = h + 1;
        if (b) {
            world_format_program(&hyp, txt, sizeof txt);
            world__put(b, "try %s\n", txt);
        }
        if (slip && fails == 1 && world__count_pass(&hyp, pr->hid, WORLD_N_HIDDEN) < WORLD_N_HIDDEN &&
            world_run(&hyp, &pr->pub[bad].in, &scratch, NULL, NULL, 0) == 0) {
            /* the slip: every check line is the real run, except the last value of the failing
               example's, which the teacher gets wrong as exactly the wanted output */
            for (e = 0; e < WORLD_N_PUBLIC && b; e++) {
                if (e != bad) { world__check_line(b, &hyp, &pr->pub[e]); continue; }
                {
                    world_value trace[WORLD_MAX_OPS], got;
                    char v[256];
                    int s2;
                    world_format_value(&pr->pub[e].in, v, sizeof v);
                    world__put(b, "%s", v);
                    if (world_run(&hyp, &pr->pub[e].in, &got, trace, NULL, 0) != 0) break;
                    for (s2 = 0; s2 + 1 < hyp.n; s2++) { world_format_value(&trace[s2], v, sizeof v); world__put(b, " -> %s", v); }
                    world_format_value(&pr->pub[e].out, v, sizeof v);
                    world__put(b, " -> %s ok\n", v);
                }
            }
            if (slipped) *slipped = 1;
            *accepted = hyp;
            return 1;
        }
        if (b) for (e = 0; e < WORLD_N_PUBLIC; e++) if (!world__check_line(b, &hyp, &pr->pub[e])) break;
        if (!fails) { *accepted = hyp; return 1; }
    }
    return 0;
}

/* The trace of one mode: want -1 careful, 0 misread, 1 execution slip, 2 hasty, 3 code slip.
   Returns 0 when that mode cannot make this problem's code wrong (or buf is too small). */
static size_t world__teacher_mode(const world_problem *pr, uint64_t seed, int want, char *buf, size_t cap,
                                  world_program *final, world_teacher_kind *kind) {
    distill_rng r;
    world__buf b;
    int cls[WORLD_MAX_OPS], flip[WORLD_MAX_OPS], i, which, nm, slipped = 0;
    world_program muts[64], answer, misread, searched;
    int have_misread = 0;
    world_teacher_kind k = WORLD_TEACHER_CAREFUL;
    char txt[WORLD_MAX_PROGRAM_TEXT];
    b.s = buf; b.n = 0; b.cap = cap; b.overflow = 0;
    if (cap) buf[0] = 0;
    distill_rng_seed(&r, seed ^ 0x7EAC4E5ull);
    /* The teacher's prior: for each vague step, which reading it tries first. */
    for (i = 0; i < pr->truth.n; i++) {
        cls[i] = pr->vague[i] ? world__vague_class(pr->truth.ops[i], &which) : -1;
        flip[i] = (int)distill_rng_below(&r, 2);
    }
    nm = world__mutations(&pr->truth, muts, 64);
    world__shuffle(&r, muts, nm);
    searched = pr->truth;
    if (want >= 0) {
        int m = want;
        if (m == 0) {
            /* a precise step misread: the careful search over the misread program must accept
               a reading that fails the hidden tests */
            for (i = 0; i < nm && !have_misread; i++) {
                int s2, same_vague = muts[i].n == pr->truth.n;
                world_program acc;
                for (s2 = 0; s2 < pr->truth.n && same_vague; s2++)
                    if (pr->vague[s2] && memcmp(&muts[i].ops[s2], &pr->truth.ops[s2], sizeof(world_op))) same_vague = 0;
                if (!same_vague) continue;
                if (world__search(NULL, pr, &muts[i], cls, flip, 0, &acc, NULL, NULL) &&
                    world__count_pass(&acc, pr->hid, WORLD_N_HIDDEN) < WORLD_N_HIDDEN) {
                    searched = muts[i];
                    have_misread = 1;
                    k = WORLD_TEACHER_MISREAD;
                }
            }
        } else if (m == 1) {
            world_program acc;
            if (world__search(NULL, pr, &pr->truth, cls, flip, 1, &acc, NULL, &slipped) && slipped) k = WORLD_TEACHER_EXEC_SLIP;
        } else if (m == 2) {
            for (i = 0; i < nm && !have_misread; i++)
                if (world__passes(&muts[i], &pr->pub[0]) && world__count_pass(&muts[i], pr->hid, WORLD_N_HIDDEN) < WORLD_N_HIDDEN) {
                    misread = muts[i];
                    have_misread = 1;
                    k = WORLD_TEACHER_HASTY;
                }
        } else {
            for (i = 0; i < nm; i++)
                if (world__count_pass(&muts[i], pr->hid, WORLD_N_HIDDEN) < WORLD_N_HIDDEN) { k = WORLD_TEACHER_SLIP; break; }
        }
        if (k == WORLD_TEACHER_CAREFUL) return 0;   /* not possible here */
    }
    world__put(&b, "<think>\n");
    for (i = 0; i < pr->truth.n; i++)
        if (pr->vague[i]) {
            world_program one;
            char ta[64], tb[64];
            const world__vague *v = &world__vagues[cls[i]];
            one.n = 1; one.ops[0] = flip[i] ? v->b : v->a; world_format_program(&one, ta, sizeof ta);
            one.ops[0] = flip[i] ? v->a : v->b; world_format_program(&one, tb, sizeof tb);
            world__put(&b, "\"%s\": %s or %s?\n", v->phrase, ta, tb);
        }
    answer = pr->truth;
    if (k == WORLD_TEACHER_HASTY) {
        world_format_program(&misread, txt, sizeof txt);
        world__put(&b, "try %s\n", txt);
        world__check_line(&b, &misread, &pr->pub[0]);   /* fits by construction; stops here */
        answer = misread;
    } else {
        /* Enumerate readings in the teacher's order; check each against the examples in turn and
           backtrack on the first mismatch. The generator guarantees one reading of the truth fits
           both; a misread program's search was checked above to accept one. */
        (void)world__search(&b, pr, &searched, cls, flip, k == WORLD_TEACHER_EXEC_SLIP, &answer, NULL, &slipped);
        if (k == WORLD_TEACHER_SLIP) {
            /* The reasoning was right; the code written down differs from it. */
            for (i = 0; i < nm; i++)
                if (world__count_pass(&muts[i], pr->hid, WORLD_N_HIDDEN) < WORLD_N_HIDDEN) { answer = muts[i]; break; }
        }
    }
    world_format_program(&answer, txt, sizeof txt);
    world__put(&b, "</think>\n```\n%s\n```", txt);
    if (final) *final = answer;
    if (kind) *kind = k;
    return b.overflow ? 0 : b.n;
}

/* The erring teacher's mode is drawn (misread 40 %, execution slip 30 %, hasty 15 %, code slip
   15 %); a mode that cannot make this problem's code wrong, or whose trace would be much shorter
   than the careful trace of the same problem (under 70 % of its length: an early acceptance),
   gives way to the next in the order misread, execution slip, code slip, hasty. So wrong traces
   are as long as right ones on the same problems (the sweep reports the lengths per difficulty
   and correctness), and their errors are of the kinds real teachers make. */
size_t world_teacher(const world_problem *pr, uint64_t seed, int hasty, char *buf, size_t cap,
                     world_program *final, world_teacher_kind *kind) {
    static const int order[4] = {0, 1, 3, 2};
    distill_rng r;
    char careful[8192];
    size_t lc, n = 0, best_n = 0;
    int start, j, best = -1;
    if (!hasty) return world__teacher_mode(pr, seed, -1, buf, cap, final, kind);
    distill_rng_seed(&r, seed ^ 0x5EED5ull);
    {
        double u = distill_rng_uniform(&r);
        start = u < 0.40 ? 0 : u < 0.70 ? 1 : u < 0.85 ? 3 : 2;   /* positions in `order` */
    }
    lc = world__teacher_mode(pr, seed, -1, careful, sizeof careful, NULL, NULL);
    for (j = 0; j < 4; j++) {
        int m = order[(start + j) % 4];
        n = world__teacher_mode(pr, seed, m, buf, cap, final, kind);
        if (n == 0) continue;
        if (best < 0) { best = m; best_n = n; }
        if ((double)n >= 0.7 * (double)lc) return n;
    }
    /* no mode keeps the length: the first applicable one (or the careful trace) */
    if (best < 0) return world__teacher_mode(pr, seed, -1, buf, cap, final, kind);
    return world__teacher_mode(pr, seed, best, buf, cap, final, kind) ? best_n : 0;
}

size_t world_execution_text(const world_program *p, const world_value *in, char *buf, size_t cap) {
    world_value trace[WORLD_MAX_OPS], out;
    size_t n = 0;
    int s;
    if (!cap) return 0;
    buf[0] = 0;
    n += world_format_value(in, buf, cap);
    if (world_run(p, in, &out, trace, NULL, 0) != 0) {
        n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, " -> error");
        return n < cap ? n : 0;
    }
    for (s = 0; s < p->n && n < cap; s++) {
        n += (size_t)snprintf(buf + n, cap - n, " -> ");
        if (n < cap) n += world_format_value(&trace[s], buf + n, cap - n);
    }
    return n < cap ? n : 0;
}

size_t world_describe(const world_program *p, char *buf, size_t cap) {
    size_t n = 0;
    int i;
    if (!cap) return 0;
    buf[0] = 0;
    for (i = 0; i < p->n && n < cap; i++) {
        char step[64];
        snprintf(step, sizeof step, world__phrase[p->ops[i].code], p->ops[i].arg);
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", then " : "", step);
    }
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, ".");
    return n < cap ? n : 0;
}

size_t world_direct(const world_problem *pr, char *buf, size_t cap) {
    char txt[WORLD_MAX_PROGRAM_TEXT];
    int n;
    world_format_program(&pr->truth, txt, sizeof txt);
    n = snprintf(buf, cap, "```\n%s\n```", txt);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* ===================================================================================== */
/* Verification                                                                           */
/* ===================================================================================== */

static const char *world__find_last(const char *s, size_t n, const char *pat, size_t from) {
    size_t m = strlen(pat), i;
    const char *last = NULL;
    if (n < m) return NULL;
    for (i = from; i + m <= n; i++) if (!memcmp(s + i, pat, m)) last = s + i;
    return last;
}

int world_extract_code(const char *text, size_t len, const char **code, size_t *code_len) {
    const char *end_think = world__find_last(text, len, "</think>", 0);
    size_t from = end_think ? (size_t)(end_think - text) + 8 : 0, i = from;
    int found = 0;
    /* walk the fences in order: open, (language tag to end of line), body, close */
    while (i + 3 <= len) {
        const char *open = NULL, *body, *close = NULL;
        size_t j;
        for (j = i; j + 3 <= len; j++) if (!memcmp(text + j, "```", 3)) { open = text + j; break; }
        if (!open) break;
        j = (size_t)(open - text) + 3;
        while (j < len && text[j] != '\n') j++;   /* the tag line */
        if (j >= len) break;
        body = text + j + 1;
        for (j = j + 1; j + 3 <= len; j++) if (!memcmp(text + j, "```", 3)) { close = text + j; break; }
        if (!close) break;
        *code = body;
        *code_len = (size_t)(close - body);
        found = 1;
        i = (size_t)(close - text) + 3;
    }
    return found;
}

int world_score_text(const char *text, size_t len, const world_test *tests, int n, char *reason,
                     size_t reason_cap) {
    const char *code;
    size_t code_len;
    world_program p;
    char err[160];
    int i, passed = 0, reported = 0;
    if (reason && reason_cap) reason[0] = 0;
    if (!world_extract_code(text, len, &code, &code_len)) {
        world__msg(reason, reason_cap, "%s", world__find_last(text, len, "</think>", 0)
                   ? "no fenced code block after </think>" : "no fenced code block");
        return 0;
    }
    if (world_parse(code, code_len, &p, err, sizeof err) != 0) {
        world__msg(reason, reason_cap, "%s", err);
        return 0;
    }
    for (i = 0; i < n; i++) {
        world_value got;
        char a[256], b[256];
        if (world_run(&p, &tests[i].in, &got, NULL, err, sizeof err) != 0) {
            if (!reported++) world__msg(reason, reason_cap, "test %d: %s", i + 1, err);
            continue;
        }
        if (world_value_equal(&got, &tests[i].out)) { passed++; continue; }
        if (!reported++) {
            world_format_value(&got, a, sizeof a);
            world_format_value(&tests[i].out, b, sizeof b);
            world__msg(reason, reason_cap, "test %d: got %s, want %s", i + 1, a, b);
        }
    }
    return passed;
}

int world_verify_text(const distill_json *record, const char *text, size_t len, char *reason,
                      size_t reason_cap) {
    const distill_json *ht = distill_json_get(record, "hidden_tests");
    world_test tests[64];
    char err[160];
    size_t i, n;
    int passed;
    if (!ht || ht->type != DISTILL_JSON_ARRAY || ht->len == 0) {
        world__msg(reason, reason_cap, "record has no 'hidden_tests' array");
        return 0;
    }
    n = ht->len < 64 ? ht->len : 64;
    for (i = 0; i < n; i++) {
        const distill_json *t = &ht->items[i];
        const distill_json *in = distill_json_get(t, "input"), *out = distill_json_get(t, "output");
        if (!in || !out || in->type != DISTILL_JSON_STRING || out->type != DISTILL_JSON_STRING) {
            world__msg(reason, reason_cap, "hidden_tests[%zu]: needs string fields 'input' and 'output'", i);
            return 0;
        }
        if (world_parse_value(in->str, in->len, &tests[i].in, err, sizeof err) != 0 ||
            world_parse_value(out->str, out->len, &tests[i].out, err, sizeof err) != 0) {
            world__msg(reason, reason_cap, "hidden_tests[%zu]: %s", i, err);
            return 0;
        }
    }
    passed = world_score_text(text, len, tests, (int)n, reason, reason_cap);
    if (passed == (int)n) {
        world__msg(reason, reason_cap, "passed %d/%zu hidden tests", passed, n);
        return 1;
    }
    if (reason && reason_cap && reason[0] && passed > 0) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s (passed %d/%zu)", reason, passed, n);
        world__msg(reason, reason_cap, "%s", tmp);
    }
    return 0;
}

/* ===================================================================================== */
/* Records                                                                                */
/* ===================================================================================== */

/* JSON string literal (our texts are ASCII; control characters are escaped). */
static void world__json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void world__json_tests(FILE *f, const world_test *t, int n) {
    int i;
    char a[256], b[256];
    fputc('[', f);
    for (i = 0; i < n; i++) {
        world_format_value(&t[i].in, a, sizeof a);
        world_format_value(&t[i].out, b, sizeof b);
        fprintf(f, "%s{\"input\": ", i ? ", " : "");
        world__json_str(f, a);
        fputs(", \"output\": ", f);
        world__json_str(f, b);
        fputc('}', f);
    }
    fputc(']', f);
}

void world_write_record(FILE *f, const world_problem *pr, const char *id, const char *response,
                        double pass_rate, int right, const char *kind) {
    char sol[WORLD_MAX_PROGRAM_TEXT];
    world_format_program(&pr->truth, sol, sizeof sol);
    fputs("{\"id\": ", f);
    world__json_str(f, id);
    fputs(", \"question\": ", f);
    world__json_str(f, pr->question);
    if (response) {
        fputs(", \"response\": ", f);
        world__json_str(f, response);
    }
    fputs(", \"solution\": ", f);
    world__json_str(f, sol);
    fprintf(f, ", \"difficulty\": %d, \"difficulty_label\": \"%s\"", pr->level, world_difficulty_label(pr->level));
    if (response && strstr(response, "</think>\n")) {
        /* the same final answer without the reasoning: the direct-answer control's response */
        fputs(", \"answer_only\": ", f);
        world__json_str(f, strstr(response, "</think>\n") + 9);
    }
    if (response) {
        fprintf(f, ", \"pass_rate\": %.4g, \"judgement\": \"%s\", \"teacher\": ", pass_rate, right ? "right" : "wrong");
        world__json_str(f, kind ? kind : "careful");
    }
    fputs(", \"public_tests\": ", f);
    world__json_tests(f, pr->pub, WORLD_N_PUBLIC);
    fputs(", \"hidden_tests\": ", f);
    world__json_tests(f, pr->hid, WORLD_N_HIDDEN);
    fputc('}', f);
}

/* ===================================================================================== */
/* Data sets                                                                              */
/* ===================================================================================== */

world_gen_options world_gen_options_default(void) {
    world_gen_options o;
    o.n_train = 2000;
    o.n_direct = (uint64_t)-1;
    o.n_eval = 200;
    o.seed = 1;
    o.error_rate = 0.3;
    o.stage0_extra = 1;
    return o;
}

/* A seed per (run seed, stream, index): train, direct and eval problems never share seeds. */
static uint64_t world__seed(uint64_t s, uint64_t stream, uint64_t i) {
    uint64_t z = s * 0x9E3779B97F4A7C15ull ^ (stream << 56) ^ (i * 0xBF58476D1CE4E5B9ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Eval problems are disjoint from every training row by program and by statement. A program
   is reserved for evaluation when the hash of its text falls in one eighth of the hash space:
   train and direct rows never use a reserved program, eval problems only reserved ones (whole
   programs; their single steps occur in training, as in real held-out problems). */
static int world__reserved(const world_program *p) {
    char txt[WORLD_MAX_PROGRAM_TEXT];
    uint64_t h = 1469598103934665603ull;
    const char *c;
    world_format_program(p, txt, sizeof txt);
    for (c = txt; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    return (h >> 29) % 8 == 0;
}

/* The statement of a question: its first line (the description, without the examples). */
static uint64_t world__statement_hash(const char *q) {
    uint64_t h = 1469598103934665603ull;
    for (; *q && *q != '\n'; q++) h = (h ^ (unsigned char)*q) * 1099511628211ull;
    return h ? h : 1;
}

/* Open-addressing set of statement hashes, so eval statements never appear in train/direct. */
typedef struct world__set { uint64_t *h; size_t cap; } world__set;
static int world__set_has(const world__set *s, uint64_t h) {
    size_t i = (size_t)(h % s->cap);
    while (s->h[i]) { if (s->h[i] == h) return 1; i = (i + 1) % s->cap; }
    return 0;
}
static void world__set_add(world__set *s, uint64_t h) {
    size_t i = (size_t)(h % s->cap);
    while (s->h[i]) { if (s->h[i] == h) return; i = (i + 1) % s->cap; }
    s->h[i] = h;
}

int world_write_files(const char *dir, const world_gen_options *o, world_gen_summary *sum,
                      distill_error *err) {
    static const char *names[3] = {"train.jsonl", "direct.jsonl", "eval.jsonl"};
    uint64_t n_direct = o->n_direct == (uint64_t)-1 ? o->n_train : o->n_direct;
    char path[4096], id[64], resp[8192];
    distill_atomic_file af;
    world__set seen;
    int a;
    memset(sum, 0, sizeof *sum);
    if (o->n_train > 100000000 || n_direct > 100000000 || o->n_eval > 100000000 ||
        !(o->error_rate >= 0 && o->error_rate <= 1)) {
        if (err) snprintf(err->msg, sizeof err->msg, "world: absurd sizes or error rate");
        return -1;
    }
    seen.cap = (size_t)(o->n_train + n_direct) * 2 + 17;
    seen.h = (uint64_t *)calloc(seen.cap, sizeof(uint64_t));
    if (!seen.h) { if (err) snprintf(err->msg, sizeof err->msg, "world: out of memory"); return -1; }
    for (a = 0; a < 3; a++) {
        uint64_t n = a == 0 ? o->n_train : a == 1 ? n_direct : o->n_eval, made = 0, k;
        snprintf(path, sizeof path, "%s/%s", dir, names[a]);
        if (distill_atomic_open(&af, path, err) != 0) { free(seen.h); return -1; }
        for (k = 0; made < n; k++) {
            world_problem pr;
            uint64_t ps = world__seed(o->seed, (uint64_t)a + 1, k), h;
            /* levels: uniform at random for train/direct, balanced round robin for eval */
            int lv = a == 2 ? (int)(made % WORLD_N_LEVELS) + 1 : (int)(ps % WORLD_N_LEVELS) + 1;
            if (k > 100 * (n + 10) || world_generate(&pr, ps, lv) != 0) {
                if (err) snprintf(err->msg, sizeof err->msg, "world: cannot generate %s", names[a]);
                distill_atomic_abort(&af);
                free(seen.h);
                return -1;
            }
            if (world__reserved(&pr.truth) != (a == 2)) continue;   /* disjoint by program */
            h = world__statement_hash(pr.question);
            if (a < 2) world__set_add(&seen, h);
            else if (world__set_has(&seen, h)) continue;   /* ... and by statement */
            snprintf(id, sizeof id, "%s-%06llu", a == 0 ? "train" : a == 1 ? "direct" : "eval", (unsigned long long)made);
            if (a == 0) {
                world_program fin;
                world_teacher_kind kind;
                distill_rng r;
                int hasty, passed;
                distill_rng_seed(&r, ps ^ 0xE220Full);
                hasty = distill_rng_uniform(&r) < o->error_rate;
                if (!world_teacher(&pr, ps, hasty, resp, sizeof resp, &fin, &kind)) continue;
                /* the label comes from running the final code, not from the teacher's intent */
                passed = world_score_text(resp, strlen(resp), pr.hid, WORLD_N_HIDDEN, NULL, 0);
                world_write_record(af.f, &pr, id, resp, (double)passed / WORLD_N_HIDDEN,
                                   passed == WORLD_N_HIDDEN, world_teacher_kind_name(kind));
                sum->right += passed == WORLD_N_HIDDEN;
                sum->kinds[kind]++;
                sum->resp_chars += (double)strlen(resp);
            } else if (a == 1) {
                /* the instruct analog's data: the direct answer, and (stage0_extra) the same
                   program run on an input with its intermediate states, and written from a
                   precise description -- never a <think> trace */
                world_direct(&pr, resp, sizeof resp);
                world_write_record(af.f, &pr, id, resp, 1.0, 1, "direct");
                if (o->stage0_extra) {
                    world_problem q = pr;
                    char prog[WORLD_MAX_PROGRAM_TEXT], desc[400], in_txt[200];
                    world_format_program(&pr.truth, prog, sizeof prog);
                    fputc('\n', af.f);
                    world_format_value(&pr.hid[0].in, in_txt, sizeof in_txt);
                    snprintf(q.question, sizeof q.question, "Run this program on %s:\n```\n%s\n```", in_txt, prog);
                    world_execution_text(&pr.truth, &pr.hid[0].in, resp, sizeof resp);
                    snprintf(id, sizeof id, "exec-%06llu", (unsigned long long)made);
                    world_write_record(af.f, &q, id, resp, 1.0, 1, "execution");
                    fputc('\n', af.f);
                    world_describe(&pr.truth, desc, sizeof desc);
                    world__set_add(&seen, world__statement_hash(desc));
                    snprintf(q.question, sizeof q.question, "Write a program that does this: %s", desc);
                    snprintf(resp, sizeof resp, "```\n%s\n```", prog);
                    snprintf(id, sizeof id, "describe-%06llu", (unsigned long long)made);
                    world_write_record(af.f, &q, id, resp, 1.0, 1, "describe");
                    sum->extra += 2;
                }
            } else {
                /* the teacher's careful trace is kept as a reference response */
                world_teacher(&pr, ps, 0, resp, sizeof resp, NULL, NULL);
                world_write_record(af.f, &pr, id, resp, 1.0, 1, "careful");
            }
            fputc('\n', af.f);
            sum->levels[a][lv]++;
            made++;
        }
        sum->made[a] = made;
        if (distill_atomic_commit(&af, err) != 0) { free(seen.h); return -1; }
    }
    free(seen.h);
    return 0;
}

void world_print_summary(FILE *f, const world_gen_options *o, const world_gen_summary *sum) {
    static const char *names[3] = {"train.jsonl", "direct.jsonl", "eval.jsonl"};
    int a;
    for (a = 0; a < 3; a++)
        fprintf(f, "%-13s %6llu problems levels 1..5: %lld %lld %lld %lld %lld\n", names[a],
                (unsigned long long)sum->made[a], sum->levels[a][1], sum->levels[a][2], sum->levels[a][3],
                sum->levels[a][4], sum->levels[a][5]);
    if (sum->extra)
        fprintf(f, "direct.jsonl: also %lld execution and description rows (stage 0 never sees a <think> trace)\n", sum->extra);
    if (sum->made[0])
        fprintf(f, "train traces: %lld right, %lld wrong (error rate %.2f: careful %lld, misread %lld, exec_slip %lld, "
                "hasty %lld, slip %lld); mean response %.0f chars\n", sum->right, (long long)sum->made[0] - sum->right,
                o->error_rate, sum->kinds[WORLD_TEACHER_CAREFUL], sum->kinds[WORLD_TEACHER_MISREAD],
                sum->kinds[WORLD_TEACHER_EXEC_SLIP], sum->kinds[WORLD_TEACHER_HASTY], sum->kinds[WORLD_TEACHER_SLIP],
                sum->resp_chars / (double)sum->made[0]);
}
