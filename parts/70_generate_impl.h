/* ===================================================================================== */
/* GENERATION AND EVALUATION (owner: generation issue)                                    */
/* ===================================================================================== */

/* ---- Evaluation metrics ---------------------------------------------------------------- */

DISTILL_API const char *distill_finish_name(distill_finish f) {
    switch (f) {
    case DISTILL_FINISH_STOP: return "stop";
    case DISTILL_FINISH_LENGTH: return "length";
    default: return "unknown";
    }
}

DISTILL_API distill_finish distill_finish_parse(const char *s) {
    if (!s) return DISTILL_FINISH_UNKNOWN;
    if (!strcmp(s, "stop") || !strcmp(s, "eos") || !strcmp(s, "end_turn") ||
        !strcmp(s, "stop_sequence") || !strcmp(s, "eos_token"))
        return DISTILL_FINISH_STOP;
    if (!strcmp(s, "length") || !strcmp(s, "max_tokens") || !strcmp(s, "max_length"))
        return DISTILL_FINISH_LENGTH;
    return DISTILL_FINISH_UNKNOWN;
}

/* pass@k = 1 - C(n-c,k)/C(n,k). Writing both binomials as falling factorials and cancelling,
   C(n-c,k)/C(n,k) = prod_{i=n-c+1..n} (i-k)/i = prod (1 - k/i): c factors, each in (0,1],
   accumulated in double. No factorials, no overflow. */
DISTILL_API double distill_pass_at_k(int64_t n, int64_t c, int64_t k) {
    double prod = 1.0;
    int64_t i;
    if (k < 1 || k > n || c < 0 || c > n) return NAN;
    if (n - c < k) return 1.0;            /* every k-subset contains a passing sample */
    for (i = n - c + 1; i <= n; i++) prod *= 1.0 - (double)k / (double)i;
    return 1.0 - prod;
}

/* Find needle in hay[from..len); returns its offset or (size_t)-1. */
static size_t distill__find(const char *hay, size_t len, size_t from, const char *needle) {
    size_t nl = strlen(needle), i;
    if (nl == 0 || len < nl) return (size_t)-1;
    for (i = from; i + nl <= len; i++)
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, nl)) return i;
    return (size_t)-1;
}

/* The two spellings of the think markers. */
static const char *const distill__think_open[2] = {"<think>", "<|begin_of_thought|>"};
static const char *const distill__think_close[2] = {"</think>", "<|end_of_thought|>"};

/* Earliest (last = 0) or latest (last = 1) occurrence of any of the two markers in
   s[from..len); sets *mlen to the marker's length. (size_t)-1 when none. */
static size_t distill__find_marker(const char *s, size_t len, size_t from,
                                   const char *const *markers, int last, size_t *mlen) {
    size_t best = (size_t)-1, at;
    int j;
    *mlen = 0;
    for (j = 0; j < 2; j++) {
        size_t pos = from;
        while ((at = distill__find(s, len, pos, markers[j])) != (size_t)-1) {
            if (best == (size_t)-1 || (last ? at > best : at < best)) {
                best = at;
                *mlen = strlen(markers[j]);
            }
            if (!last) break;
            pos = at + 1;
        }
    }
    return best;
}

/* Does the prompt leave a think block open? (its last opening marker is not closed after it) */
static int distill__prompt_opens_think(const char *prompt, size_t plen) {
    size_t ml, mo, mc;
    if (!prompt || plen == 0) return 0;
    mo = distill__find_marker(prompt, plen, 0, distill__think_open, 1, &ml);
    if (mo == (size_t)-1) return 0;
    mc = distill__find_marker(prompt, plen, 0, distill__think_close, 1, &ml);
    return mc == (size_t)-1 || mc < mo;
}

/* Is s[i..) at the start of a line a code fence (``` after at most 3 spaces)? Returns the offset
   just after the backticks, or (size_t)-1. */
static size_t distill__fence_at(const char *s, size_t len, size_t i) {
    int sp = 0;
    while (i < len && s[i] == ' ' && sp < 3) { i++; sp++; }
    if (i + 3 <= len && s[i] == '`' && s[i + 1] == '`' && s[i + 2] == '`') {
        i += 3;
        while (i < len && s[i] == '`') i++;
        return i;
    }
    return (size_t)-1;
}

/* Scan s[from..len) line by line for fenced blocks and report the LAST one. */
static int distill__last_fenced_block(const char *s, size_t len, size_t from, size_t *begin,
                                      size_t *end, int *closed, size_t *lang_b, size_t *lang_e) {
    size_t i = from, cb = 0, lb = 0, le = 0;
    int inside = 0, found = 0;
    /* `from` may be mid-line (just after "</think>"): a fence can start right there too. */
    while (i < len) {
        size_t eol = i, f;
        while (eol < len && s[eol] != '\n') eol++;
        f = distill__fence_at(s, eol, i);
        if (f != (size_t)-1) {
            if (!inside) {
                /* opening fence: the rest of the line is the language tag */
                size_t a = f, b = eol;
                while (a < b && (s[a] == ' ' || s[a] == '\t')) a++;
                while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r')) b--;
                lb = a; le = b;
                cb = eol < len ? eol + 1 : len;
                inside = 1;
            } else {
                /* closing fence: the content ends before the newline that precedes it */
                size_t e = i > cb ? i - 1 : cb;
                if (e > cb && s[e - 1] == '\r') e--;
                *begin = cb; *end = e < cb ? cb : e; *closed = 1;
                *lang_b = lb; *lang_e = le;
                found = 1;
                inside = 0;
            }
        }
        i = eol < len ? eol + 1 : len;
    }
    if (inside) {
        /* no closing fence line: accept "code```" ending the last non-blank line, else the
           block is unclosed (truncated) and runs to the end of the text */
        size_t e = len;
        while (e > cb && (s[e - 1] == ' ' || s[e - 1] == '\n' || s[e - 1] == '\r' || s[e - 1] == '\t')) e--;
        *begin = cb; *lang_b = lb; *lang_e = le;
        if (e >= cb + 3 && s[e - 1] == '`' && s[e - 2] == '`' && s[e - 3] == '`') {
            e -= 3;
            while (e > cb && s[e - 1] == '`') e--;
            *end = e; *closed = 1;
        } else {
            *end = len; *closed = 0;
        }
        found = 1;
    }
    return found;
}

DISTILL_API void distill_analyze_generation(const char *prompt, size_t prompt_len,
                                            const char *text, size_t len,
                                            distill_gen_analysis *out) {
    size_t ml = 0, open_at, close_at, last_close, search_from = 0, cb = 0, ce = 0, lb = 0, le = 0;
    int closed = 0, code_allowed = 1;
    memset(out, 0, sizeof *out);
    if (!text) len = 0;
    out->open_in_prompt = distill__prompt_opens_think(prompt, prompt_len);
    if (out->open_in_prompt) {
        out->think_open = 1;
        out->think_begin = 0;
    } else if ((open_at = distill__find_marker(text, len, 0, distill__think_open, 0, &ml)) != (size_t)-1) {
        out->think_open = 1;
        out->think_begin = open_at + ml;
    }
    last_close = distill__find_marker(text, len, 0, distill__think_close, 1, &ml);
    out->think_close = last_close != (size_t)-1;
    if (out->think_open) {
        close_at = distill__find_marker(text, len, out->think_begin, distill__think_close, 0, &ml);
        out->think_both = close_at != (size_t)-1;
        out->think_end = out->think_both ? close_at : len;
    }
    /* where the answer may be: after the last closing marker; nowhere while a think block is
       still open; the whole text for a model that does not think */
    if (out->think_close) {
        distill__find_marker(text, len, last_close, distill__think_close, 0, &ml);
        search_from = last_close + ml;
    } else if (out->think_open) {
        code_allowed = 0;
    }
    if (code_allowed && distill__last_fenced_block(text, len, search_from, &cb, &ce, &closed, &lb, &le)) {
        out->has_code = 1;
        out->code_closed = closed;
        out->code_begin = cb; out->code_end = ce;
        out->lang_begin = lb; out->lang_end = le;
    }
    out->strict = out->think_close && out->has_code && out->code_closed;
}

DISTILL_API int distill_extract_code(const char *prompt, size_t prompt_len, const char *text,
                                     size_t len, size_t *begin, size_t *end, int *closed) {
    distill_gen_analysis a;
    distill_analyze_generation(prompt, prompt_len, text, len, &a);
    *begin = a.code_begin; *end = a.code_end;
    if (closed) *closed = a.code_closed;
    return a.has_code;
}

DISTILL_API int64_t distill_count_tokens(const distill_tokenizer *tok, const char *text, size_t len) {
    int64_t words = 0;
    size_t i;
    int in_word = 0;
    if (tok) {
        distill_ids ids;
        int64_t n;
        memset(&ids, 0, sizeof ids);
        if (distill_tokenizer_encode(tok, text, len, 1, &ids, NULL) == 0) {
            n = (int64_t)ids.n;
            distill_ids_free(&ids);
            return n;
        }
        distill_ids_free(&ids);   /* fall back to words on an encoding error */
    }
    for (i = 0; i < len; i++) {
        int ws = text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r';
        if (!ws && !in_word) words++;
        in_word = !ws;
    }
    return words;
}

DISTILL_API void distill_sample_result_from_analysis(distill_sample_result *r,
                                                     const distill_gen_analysis *a) {
    r->think_open = a->think_open;
    r->think_close = a->think_close;
    r->think_both = a->think_both;
    r->strict = a->strict;
}

static int distill__cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}
static int distill__cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static double distill__ratio(int64_t num, int64_t den) {
    return den > 0 ? (double)num / (double)den : NAN;
}

DISTILL_API int distill_eval_compute(const distill_sample_result *s, size_t n, const int *ks,
                                     int nk, distill_eval_metrics *out, distill_error *err) {
    int64_t stop = 0, length = 0, strict = 0, topen = 0, tclose = 0, tboth = 0;
    int64_t verified = 0, pass_c = 0, pass_t = 0;
    double *think = NULL;
    int64_t *order = NULL;
    size_t i, nthink = 0;
    int j;
    memset(out, 0, sizeof *out);
    if (nk < 0 || nk > DISTILL_EVAL_MAX_K)
        return distill__err(err, "eval: %d values of k (at most %d)", nk, DISTILL_EVAL_MAX_K);
    for (j = 0; j < nk; j++)
        if (ks[j] < 1) return distill__err(err, "eval: k must be >= 1 (got %d)", ks[j]);
    for (i = 0; i < n; i++) {
        if (s[i].problem < 0) return distill__err(err, "eval: sample %zu: negative problem index", i);
        if (s[i].pass >= 0) verified++;
    }
    if (verified != 0 && verified != (int64_t)n)
        return distill__err(err, "eval: %lld of %zu samples verified; verify all or none",
                            (long long)verified, n);
    out->n = (int64_t)n;
    out->nk = nk;
    for (j = 0; j < nk; j++) out->k[j] = ks[j];
    if (n > 0) {
        think = (double *)DISTILL_MALLOC(n * sizeof *think);
        order = (int64_t *)DISTILL_MALLOC(n * 2 * sizeof *order);
        if (!think || !order) {
            DISTILL_FREE(think); DISTILL_FREE(order);
            return distill__err(err, "eval: out of memory");
        }
    }
    for (i = 0; i < n; i++) {
        const distill_sample_result *r = &s[i];
        if (r->finish == DISTILL_FINISH_STOP) { stop++; if (r->pass > 0) pass_c++; }
        if (r->finish == DISTILL_FINISH_LENGTH) { length++; if (r->pass > 0) pass_t++; }
        if (r->finish != DISTILL_FINISH_LENGTH && r->strict) strict++;
        topen += r->think_open != 0;
        tclose += r->think_close != 0;
        tboth += r->think_both != 0;
        if (r->think_open && r->think_tokens >= 0) think[nthink++] = r->think_tokens;
        /* (problem, pass) pairs, sorted below to group the samples of each problem */
        order[2 * i] = r->problem;
        order[2 * i + 1] = r->pass > 0;
    }
    out->n_finish_known = stop + length;
    out->n_completed = stop;
    out->n_truncated = length;
    out->completion_rate = distill__ratio(stop, stop + length);
    out->strict_completion_rate = distill__ratio(strict, (int64_t)n);
    out->think_open_rate = distill__ratio(topen, (int64_t)n);
    out->think_close_rate = distill__ratio(tclose, (int64_t)n);
    out->think_both_rate = distill__ratio(tboth, (int64_t)n);
    out->n_think = (int64_t)nthink;
    out->think_tokens_mean = out->think_tokens_median = NAN;
    if (nthink > 0) {
        double sum = 0.0;
        for (i = 0; i < nthink; i++) sum += think[i];
        out->think_tokens_mean = sum / (double)nthink;
        qsort(think, nthink, sizeof *think, distill__cmp_double);
        out->think_tokens_median = nthink % 2 ? think[nthink / 2]
                                              : 0.5 * (think[nthink / 2 - 1] + think[nthink / 2]);
    }
    /* per-problem counts: sort the pairs by problem, then walk the runs */
    if (n > 0) qsort(order, n, 2 * sizeof *order, distill__cmp_i64);
    {
        int64_t problems = 0;
        double sum1 = 0.0, sumk[DISTILL_EVAL_MAX_K];
        int64_t cntk[DISTILL_EVAL_MAX_K];
        for (j = 0; j < nk; j++) { sumk[j] = 0.0; cntk[j] = 0; }
        i = 0;
        while (i < n) {
            size_t e = i;
            int64_t np = 0, cp = 0;
            while (e < n && order[2 * e] == order[2 * i]) { np++; cp += order[2 * e + 1]; e++; }
            problems++;
            sum1 += (double)cp / (double)np;
            for (j = 0; j < nk; j++)
                if (np >= ks[j]) { sumk[j] += distill_pass_at_k(np, cp, ks[j]); cntk[j]++; }
            i = e;
        }
        out->n_problems = problems;
        out->verified = verified > 0;
        out->pass_at_1 = problems > 0 ? sum1 / (double)problems : NAN;
        for (j = 0; j < nk; j++) {
            out->pass_at_k[j] = cntk[j] > 0 ? sumk[j] / (double)cntk[j] : NAN;
            out->pass_at_k_problems[j] = cntk[j];
        }
    }
    out->accuracy_completed = distill__ratio(pass_c, stop);
    out->accuracy_truncated = distill__ratio(pass_t, length);
    DISTILL_FREE(think);
    DISTILL_FREE(order);
    return 0;
}

/* A JSON number, or null for NaN/inf (JSON has neither). */
static void distill__json_num(FILE *f, double x) {
    if (x != x || x > DBL_MAX || x < -DBL_MAX) fputs("null", f);
    else if (x == floor(x) && fabs(x) < 1e15) fprintf(f, "%.0f", x);
    else fprintf(f, "%.10g", x);
}

static void distill__eval_write_members(FILE *f, const distill_eval_metrics *m,
                                        const char *think_unit) {
    int j;
    fprintf(f, "\"n\":%lld,\"n_problems\":%lld", (long long)m->n, (long long)m->n_problems);
    fputs(",\"completion_rate\":", f); distill__json_num(f, m->completion_rate);
    fputs(",\"strict_completion_rate\":", f); distill__json_num(f, m->strict_completion_rate);
    fputs(",\"think_open_rate\":", f); distill__json_num(f, m->think_open_rate);
    fputs(",\"think_close_rate\":", f); distill__json_num(f, m->think_close_rate);
    fputs(",\"think_both_rate\":", f); distill__json_num(f, m->think_both_rate);
    fputs(",\"think_tokens_mean\":", f); distill__json_num(f, m->think_tokens_mean);
    fputs(",\"think_tokens_median\":", f); distill__json_num(f, m->think_tokens_median);
    fprintf(f, ",\"think_tokens_unit\":\"%s\"", think_unit ? think_unit : "tokens");
    fprintf(f, ",\"n_completed\":%lld,\"n_truncated\":%lld,\"n_finish_known\":%lld,\"n_think\":%lld",
            (long long)m->n_completed, (long long)m->n_truncated, (long long)m->n_finish_known,
            (long long)m->n_think);
    if (m->verified) {
        fputs(",\"pass_at_1\":", f); distill__json_num(f, m->pass_at_1);
        fputs(",\"pass_at_k\":{", f);
        for (j = 0; j < m->nk; j++) {
            fprintf(f, "%s\"%d\":", j ? "," : "", m->k[j]);
            distill__json_num(f, m->pass_at_k[j]);
        }
        fputs("}", f);
        fputs(",\"accuracy_completed\":", f); distill__json_num(f, m->accuracy_completed);
        fputs(",\"accuracy_truncated\":", f); distill__json_num(f, m->accuracy_truncated);
    }
}

DISTILL_API int distill_eval_write_json(FILE *f, const distill_sample_result *s, size_t n,
                                        const char *const *difficulty, size_t n_difficulty,
                                        const int *ks, int nk, const char *think_unit,
                                        distill_error *err) {
    distill_eval_metrics m;
    distill_sample_result *sub = NULL;
    const char **labels = NULL;
    size_t i, nl = 0;
    int rc = 0;
    if (distill_eval_compute(s, n, ks, nk, &m, err)) return -1;
    fputc('{', f);
    distill__eval_write_members(f, &m, think_unit);
    if (difficulty) {
        /* distinct labels in order of first appearance among the samples */
        sub = n ? (distill_sample_result *)DISTILL_MALLOC(n * sizeof *sub) : NULL;
        labels = n ? (const char **)DISTILL_MALLOC(n * sizeof *labels) : NULL;
        if (n && (!sub || !labels)) { rc = distill__err(err, "eval: out of memory"); goto done; }
        for (i = 0; i < n; i++) {
            const char *d;
            size_t j;
            if ((size_t)s[i].problem >= n_difficulty) {
                rc = distill__err(err, "eval: sample %zu: problem %lld has no difficulty entry",
                                  i, (long long)s[i].problem);
                goto done;
            }
            d = difficulty[s[i].problem];
            if (!d) continue;
            for (j = 0; j < nl; j++) if (!strcmp(labels[j], d)) break;
            if (j == nl) labels[nl++] = d;
        }
        if (nl > 0) {
            fputs(",\"per_difficulty\":{", f);
            for (i = 0; i < nl; i++) {
                size_t j, ns = 0;
                distill_eval_metrics md;
                for (j = 0; j < n; j++) {
                    const char *d = difficulty[s[j].problem];
                    if (d && !strcmp(d, labels[i])) sub[ns++] = s[j];
                }
                if (distill_eval_compute(sub, ns, ks, nk, &md, err)) { rc = -1; goto done; }
                if (i) fputc(',', f);
                distill_json_write_string(f, labels[i], strlen(labels[i]));
                fputs(":{", f);
                distill__eval_write_members(f, &md, think_unit);
                fputc('}', f);
            }
            fputc('}', f);
        }
    }
    fputs("}\n", f);
done:
    DISTILL_FREE(sub);
    DISTILL_FREE(labels);
    return rc;
}

static void distill__json_str_or_null(FILE *f, const char *s) {
    if (s) distill_json_write_string(f, s, strlen(s));
    else fputs("null", f);
}

DISTILL_API void distill_write_generation_jsonl(FILE *f, const distill_generation_record *g) {
    distill_gen_analysis a;
    const char *text = g->text ? g->text : "";
    distill_analyze_generation(g->prompt, g->prompt_len, text, g->text ? g->text_len : 0, &a);
    fputs("{\"question_id\":", f); distill__json_str_or_null(f, g->question_id);
    fprintf(f, ",\"sample\":%lld", (long long)g->sample);
    fputs(",\"difficulty\":", f); distill__json_str_or_null(f, g->difficulty);
    fprintf(f, ",\"finish_reason\":\"%s\"", distill_finish_name(g->finish));
    fprintf(f, ",\"pass\":%s", g->pass < 0 ? "null" : g->pass ? "true" : "false");
    fputs(",\"reason\":", f); distill__json_str_or_null(f, g->reason);
    fputs(",\"code\":", f);
    if (a.has_code) distill_json_write_string(f, text + a.code_begin, a.code_end - a.code_begin);
    else fputs("null", f);
    fputs(",\"lang\":", f);
    if (a.has_code) distill_json_write_string(f, text + a.lang_begin, a.lang_end - a.lang_begin);
    else fputs("null", f);
    fprintf(f, ",\"code_closed\":%s,\"think_open\":%s,\"think_close\":%s,\"strict\":%s",
            a.has_code && a.code_closed ? "true" : "false", a.think_open ? "true" : "false",
            a.think_close ? "true" : "false", a.strict ? "true" : "false");
    fputs(",\"think_tokens\":", f);
    distill__json_num(f, g->think_tokens >= 0 ? g->think_tokens : NAN);
    fputs(",\"output_tokens\":", f);
    if (g->output_tokens >= 0) fprintf(f, "%lld", (long long)g->output_tokens);
    else fputs("null", f);
    fputs(",\"text\":", f);
    distill_json_write_string(f, text, g->text ? g->text_len : 0);
    fputs("}\n", f);
}

/* ---- Scoring a generations file ---------------------------------------------------------- */

/* A string -> index map (open addressing, FNV-1a) for question ids. */
typedef struct distill__strmap {
    char **keys;
    int64_t *vals;
    size_t n, cap;   /* cap: power of two slots */
} distill__strmap;

static uint64_t distill__fnv1a(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    size_t i;
    for (i = 0; i < len; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h;
}

static void distill__strmap_free(distill__strmap *m) {
    size_t i;
    for (i = 0; i < m->cap; i++) DISTILL_FREE(m->keys[i]);
    DISTILL_FREE(m->keys);
    DISTILL_FREE(m->vals);
    memset(m, 0, sizeof *m);
}

/* Look s up; if absent insert it with value `val_if_new`. Returns the value, -1 out of memory. */
static int64_t distill__strmap_get_or_add(distill__strmap *m, const char *s, int64_t val_if_new) {
    size_t len = strlen(s), i;
    if (2 * (m->n + 1) > m->cap) {   /* keep the load under one half */
        distill__strmap big;
        big.cap = m->cap ? 2 * m->cap : 64;
        big.n = 0;
        big.keys = (char **)DISTILL_MALLOC(big.cap * sizeof *big.keys);
        big.vals = (int64_t *)DISTILL_MALLOC(big.cap * sizeof *big.vals);
        if (!big.keys || !big.vals) { DISTILL_FREE(big.keys); DISTILL_FREE(big.vals); return -1; }
        memset(big.keys, 0, big.cap * sizeof *big.keys);
        for (i = 0; i < m->cap; i++) {
            if (m->keys[i]) {
                size_t j = (size_t)distill__fnv1a(m->keys[i], strlen(m->keys[i])) & (big.cap - 1);
                while (big.keys[j]) j = (j + 1) & (big.cap - 1);
                big.keys[j] = m->keys[i];
                big.vals[j] = m->vals[i];
                big.n++;
            }
        }
        DISTILL_FREE(m->keys);
        DISTILL_FREE(m->vals);
        *m = big;
    }
    i = (size_t)distill__fnv1a(s, len) & (m->cap - 1);
    while (m->keys[i]) {
        if (!strcmp(m->keys[i], s)) return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = distill__strdup(s);
    if (!m->keys[i]) return -1;
    m->vals[i] = val_if_new;
    m->n++;
    return val_if_new;
}

/* A string or integer JSON value as text in buf ("" when it is neither). */
static const char *distill__json_scalar_text(const distill_json *v, char *buf, size_t cap) {
    buf[0] = 0;
    if (!v) return NULL;
    if (v->type == DISTILL_JSON_STRING) return v->str;
    if (v->type == DISTILL_JSON_NUMBER) {
        if (v->is_int) snprintf(buf, cap, "%lld", (long long)v->i64);
        else snprintf(buf, cap, "%.17g", v->num);
        return buf;
    }
    return NULL;
}

/* The difficulty label of a record: "difficulty_label", "difficulty" (string, or a number
   written as text) or "meta.difficulty"; NULL when none. */
static const char *distill__record_difficulty(const distill_json *rec, char *buf, size_t cap) {
    const distill_json *v = distill_json_get(rec, "difficulty_label");
    if (!v || v->type != DISTILL_JSON_STRING) v = distill_json_get(rec, "difficulty");
    if (!v) v = distill_json_path(rec, "meta.difficulty");
    return distill__json_scalar_text(v, buf, cap);
}

/* The question id of a record, or NULL. */
static const char *distill__record_id(const distill_json *rec, char *buf, size_t cap) {
    const char *q = distill__json_scalar_text(distill_json_get(rec, "question_id"), buf, cap);
    if (!q) q = distill__json_scalar_text(distill_json_get(rec, "id"), buf, cap);
    if (!q) q = distill__json_scalar_text(distill_json_get(rec, "task_id"), buf, cap);
    return q;
}

DISTILL_API int distill_eval_generations_file(const char *path, const distill_eval_file_options *o,
                                              FILE *results, distill_error *err) {
    static const int k1 = 1;
    const char *field = o && o->field ? o->field : "text";
    const char *prompt_field = o && o->prompt_field ? o->prompt_field : "prompt";
    const int *ks = o && o->ks ? o->ks : &k1;
    int nk = o && o->ks ? o->nk : 1;
    distill_line_reader *lr = NULL;
    distill_sample_result *res = NULL;
    char **diff = NULL;          /* difficulty label per problem (owned) */
    int64_t *seen = NULL;        /* samples so far per problem */
    size_t nres = 0, capres = 0, ndiff = 0, capdiff = 0, i;
    int64_t nprob = 0, line_no = 0;
    distill__strmap ids;
    distill_atomic_file af;
    int have_af = 0, rc = -1;
    const char *line;
    size_t len;
    int r;

    memset(&ids, 0, sizeof ids);
    lr = distill_line_reader_open(path, 0, err);
    if (!lr) return -1;
    if (o && o->out_jsonl) {
        if (distill_atomic_open(&af, o->out_jsonl, err)) goto done;
        have_af = 1;
    }
    while ((r = distill_line_reader_next(lr, &line, &len, &line_no, err)) == 1) {
        distill_json *rec;
        const distill_json *t, *v;
        distill_gen_analysis a;
        distill_sample_result *s;
        distill_generation_record g;
        char idbuf[64], diffbuf[64], reason[512];
        const char *qid, *d = NULL, *prompt = NULL;
        size_t plen = 0, k;
        int64_t prob;
        int blank = 1;
        for (k = 0; k < len; k++)
            if (line[k] != ' ' && line[k] != '\t' && line[k] != '\r') { blank = 0; break; }
        if (blank) continue;
        rec = distill_json_parse(line, len, path, (int)line_no, err);
        if (!rec) goto done;
        if (rec->type != DISTILL_JSON_OBJECT) {
            distill__err(err, "%s:%lld: expected a JSON object per line, got %s", path,
                         (long long)line_no, distill_json_type_name(rec->type));
            distill_json_free(rec);
            goto done;
        }
        t = distill_json_path(rec, field);
        if (!t || t->type != DISTILL_JSON_STRING) {
            distill__err(err, "%s:%lld: field '%s': %s", path, (long long)line_no, field,
                         t ? "expected a string" : "missing");
            distill_json_free(rec);
            goto done;
        }
        /* the problem this sample answers */
        qid = distill__record_id(rec, idbuf, sizeof idbuf);
        if (qid) {
            prob = distill__strmap_get_or_add(&ids, qid, nprob);
            if (prob < 0) { distill__err(err, "eval: out of memory"); distill_json_free(rec); goto done; }
        } else {
            prob = nprob;
        }
        d = distill__record_difficulty(rec, diffbuf, sizeof diffbuf);
        if (prob == nprob) {   /* a new problem: remember its difficulty */
            if (ndiff == capdiff) {
                size_t nc = capdiff ? 2 * capdiff : 64;
                char **nd = (char **)DISTILL_REALLOC(diff, nc * sizeof *nd);
                int64_t *ns;
                if (nd) diff = nd;
                ns = nd ? (int64_t *)DISTILL_REALLOC(seen, nc * sizeof *ns) : NULL;
                if (!ns) { distill__err(err, "eval: out of memory"); distill_json_free(rec); goto done; }
                seen = ns; capdiff = nc;
            }
            diff[ndiff] = d ? distill__strdup(d) : NULL;
            seen[ndiff] = 0;
            ndiff++;
            nprob++;
        }
        v = distill_json_path(rec, prompt_field);
        if (v && v->type == DISTILL_JSON_STRING) { prompt = v->str; plen = v->len; }
        if (o && o->think_in_prompt) { prompt = "<think>"; plen = 7; }
        distill_analyze_generation(prompt, plen, t->str, t->len, &a);

        if (nres == capres) {
            size_t nc = capres ? 2 * capres : 256;
            distill_sample_result *nr = (distill_sample_result *)DISTILL_REALLOC(res, nc * sizeof *nr);
            if (!nr) { distill__err(err, "eval: out of memory"); distill_json_free(rec); goto done; }
            res = nr; capres = nc;
        }
        s = &res[nres++];
        memset(s, 0, sizeof *s);
        distill_sample_result_from_analysis(s, &a);
        s->problem = prob;
        v = distill_json_get(rec, "finish_reason");
        s->finish = distill_finish_parse(v && v->type == DISTILL_JSON_STRING ? v->str : NULL);
        s->think_tokens = a.think_open ? (double)distill_count_tokens(o ? o->tok : NULL,
                              t->str + a.think_begin, a.think_end - a.think_begin) : -1.0;
        s->pass = -1;
        reason[0] = 0;
        if (o && o->verifier && o->verifier->fn) {
            int p = o->verifier->fn(o->verifier->ctx, rec, t->str, t->len, reason, sizeof reason);
            reason[sizeof reason - 1] = 0;
            s->pass = p == 1;
        } else {
            v = distill_json_get(rec, "pass");
            if (v && (v->type == DISTILL_JSON_TRUE || v->type == DISTILL_JSON_FALSE))
                s->pass = v->type == DISTILL_JSON_TRUE;
        }
        if (have_af) {
            memset(&g, 0, sizeof g);
            g.question_id = qid;
            g.sample = seen[prob];
            g.difficulty = d;
            g.prompt = prompt; g.prompt_len = plen;
            g.text = t->str; g.text_len = t->len;
            g.finish = s->finish;
            g.pass = s->pass;
            g.reason = reason[0] ? reason : NULL;
            g.output_tokens = -1;
            g.think_tokens = s->think_tokens;
            distill_write_generation_jsonl(af.f, &g);
        }
        seen[prob]++;
        distill_json_free(rec);
    }
    if (r < 0) goto done;
    for (i = 0; i < nres; i++) {
        if ((res[i].pass >= 0) != (res[0].pass >= 0)) {
            distill__err(err, "%s: some lines have a boolean \"pass\" and others do not", path);
            goto done;
        }
    }
    if (distill_eval_write_json(results, res, nres, (const char *const *)diff, ndiff, ks, nk,
                                o && o->tok ? "tokens" : "words", err))
        goto done;
    if (have_af) { have_af = 0; if (distill_atomic_commit(&af, err)) goto done; }
    rc = 0;
done:
    if (have_af) distill_atomic_abort(&af);
    distill_line_reader_close(lr);
    for (i = 0; i < ndiff; i++) DISTILL_FREE(diff[i]);
    DISTILL_FREE(diff);
    DISTILL_FREE(seen);
    DISTILL_FREE(res);
    distill__strmap_free(&ids);
    return rc;
}

/* ---- Inference with a KV cache ----------------------------------------------------------- */

/* Rows per forward chunk: prompts are prefilled this many tokens at a time, which bounds the
   scratch memory whatever the prompt length. */
#define DISTILL__GEN_CHUNK 64

struct distill_generator {
    const distill_model *m;
    int B, S, R;               /* sequences, positions per sequence, rows per chunk */
    int *len;                  /* (B) cached positions per sequence */
    float *kc, *vc;            /* (L,B,S,KVD) */
    /* scratch for R rows */
    float *x, *xb, *q, *k, *v, *att, *gate, *up, *tmp, *rstd, *lg;
    int32_t *pos;
    int *rowseq;
};

DISTILL_API void distill_generator_free(distill_generator *g) {
    if (!g) return;
    distill_free_aligned(g->kc); distill_free_aligned(g->vc);
    distill_free_aligned(g->x); distill_free_aligned(g->xb); distill_free_aligned(g->q);
    distill_free_aligned(g->k); distill_free_aligned(g->v); distill_free_aligned(g->att);
    distill_free_aligned(g->gate); distill_free_aligned(g->up); distill_free_aligned(g->tmp);
    distill_free_aligned(g->rstd); distill_free_aligned(g->lg);
    DISTILL_FREE(g->pos); DISTILL_FREE(g->rowseq); DISTILL_FREE(g->len);
    DISTILL_FREE(g);
}

/* rows * cols floats, aligned, or NULL on overflow/failure */
static float *distill__gen_alloc(size_t rows, size_t cols) {
    size_t n, bytes;
    if (!distill__mul_size(rows, cols, &n) || !distill__mul_size(n, sizeof(float), &bytes)) return NULL;
    return (float *)distill_alloc_aligned(bytes ? bytes : sizeof(float), 64);
}

DISTILL_API distill_generator *distill_generator_create(const distill_model *m, int max_batch,
                                                        int max_seq, distill_error *err) {
    distill_generator *g;
    const distill_config *c;
    size_t kvd, cache;
    if (!m) { distill__err(err, "generator: model is NULL"); return NULL; }
    c = &m->cfg;
    if (distill_config_validate(c, err)) return NULL;
    if (max_batch < 1 || max_batch > (1 << 16)) { distill__err(err, "generator: max_batch (%d) must be in 1..65536", max_batch); return NULL; }
    if (max_seq < 1 || max_seq > (1 << 24)) { distill__err(err, "generator: max_seq (%d) must be in 1..16777216", max_seq); return NULL; }
    g = (distill_generator *)DISTILL_MALLOC(sizeof *g);
    if (!g) { distill__err(err, "generator: out of memory"); return NULL; }
    memset(g, 0, sizeof *g);
    g->m = m; g->B = max_batch; g->S = max_seq;
    g->R = max_batch > DISTILL__GEN_CHUNK ? max_batch : DISTILL__GEN_CHUNK;
    kvd = (size_t)c->n_kv_heads * (size_t)(c->dim / c->n_heads);
    /* the cache: L * B * S * KVD floats, twice */
    if (!distill__mul_size((size_t)c->n_layers * (size_t)max_batch, (size_t)max_seq, &cache) ||
        !distill__mul_size(cache, kvd, &cache)) {
        distill__err(err, "generator: KV cache size overflows");
        distill_generator_free(g);
        return NULL;
    }
    g->kc = distill__gen_alloc(cache, 1);
    g->vc = distill__gen_alloc(cache, 1);
    g->x = distill__gen_alloc((size_t)g->R, (size_t)c->dim);
    g->xb = distill__gen_alloc((size_t)g->R, (size_t)c->dim);
    g->q = distill__gen_alloc((size_t)g->R, (size_t)c->dim);
    g->k = distill__gen_alloc((size_t)g->R, kvd);
    g->v = distill__gen_alloc((size_t)g->R, kvd);
    g->att = distill__gen_alloc((size_t)g->R, (size_t)c->dim);
    g->gate = distill__gen_alloc((size_t)g->R, (size_t)c->hidden_dim);
    g->up = distill__gen_alloc((size_t)g->R, (size_t)c->hidden_dim);
    g->tmp = distill__gen_alloc((size_t)g->R, (size_t)c->dim);
    g->rstd = distill__gen_alloc((size_t)g->R, 1);
    g->lg = distill__gen_alloc((size_t)g->R, (size_t)c->vocab_size);
    g->pos = (int32_t *)DISTILL_MALLOC((size_t)g->R * sizeof *g->pos);
    g->rowseq = (int *)DISTILL_MALLOC((size_t)g->R * sizeof *g->rowseq);
    g->len = (int *)DISTILL_MALLOC((size_t)max_batch * sizeof *g->len);
    if (!g->kc || !g->vc || !g->x || !g->xb || !g->q || !g->k || !g->v || !g->att || !g->gate ||
        !g->up || !g->tmp || !g->rstd || !g->lg || !g->pos || !g->rowseq || !g->len) {
        distill__err(err, "generator: out of memory (KV cache of %zu MiB)",
                     2 * cache * sizeof(float) >> 20);
        distill_generator_free(g);
        return NULL;
    }
    memset(g->len, 0, (size_t)max_batch * sizeof *g->len);
    return g;
}

DISTILL_API void distill_generator_reset(distill_generator *g, int b) {
    if (b < 0) memset(g->len, 0, (size_t)g->B * sizeof *g->len);
    else if (b < g->B) g->len[b] = 0;
}

DISTILL_API int distill_generator_length(const distill_generator *g, int b) {
    return b >= 0 && b < g->B ? g->len[b] : 0;
}

DISTILL_API void distill_generator_copy(distill_generator *g, int dst, int src) {
    const distill_config *c = &g->m->cfg;
    size_t kvd = (size_t)c->n_kv_heads * (size_t)(c->dim / c->n_heads), l;
    if (dst < 0 || src < 0 || dst >= g->B || src >= g->B || dst == src) return;
    for (l = 0; l < (size_t)c->n_layers; l++) {
        size_t so = ((l * (size_t)g->B + (size_t)src) * (size_t)g->S) * kvd;
        size_t d0 = ((l * (size_t)g->B + (size_t)dst) * (size_t)g->S) * kvd;
        memcpy(g->kc + d0, g->kc + so, (size_t)g->len[src] * kvd * sizeof(float));
        memcpy(g->vc + d0, g->vc + so, (size_t)g->len[src] * kvd * sizeof(float));
    }
    g->len[dst] = g->len[src];
}

/* Attention of the chunk's rows over the cache, the same arithmetic as the model's
   distill_attention_forward (blocks of DISTILL__ATT_BLOCK keys with an online softmax), so the
   cached path reproduces the full forward:
       s_j = q . k_j / sqrt(HS) for j = 0..pos,   out = sum_j softmax(s)_j v_j
   q (R,NH,HS), out (R,NH,HS), cache (B,S,NKV,HS) of this layer. Query head h reads kv head
   h / (NH/NKV). One task per (row, head). */
#define DISTILL__GEN_ATT_BLOCK 64
typedef struct {
    float *out;
    const float *q, *kc, *vc;
    const int32_t *pos;
    const int *seq;
    int NH, NKV, HS, S;
} distill__gen_att_ctx;

static void distill__gen_att_task(void *p, int64_t b0, int64_t e0, int th) {
    const distill__gen_att_ctx *c = (const distill__gen_att_ctx *)p;
    int NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS), s[DISTILL__GEN_ATT_BLOCK];
    int64_t task;
    (void)th;
    for (task = b0; task < e0; task++) {
        int r = (int)(task / NH), h = (int)(task % NH), g = h / rep, t = c->pos[r], j0, jj;
        const float *qr = c->q + ((size_t)r * NH + h) * HS;
        const float *kb = c->kc + (size_t)c->seq[r] * c->S * NKV * HS;
        const float *vb = c->vc + (size_t)c->seq[r] * c->S * NKV * HS;
        float *o = c->out + ((size_t)r * NH + h) * HS;
        float m = -INFINITY, l = 0.0f;
        memset(o, 0, sizeof(float) * (size_t)HS);
        for (j0 = 0; j0 <= t; j0 += DISTILL__GEN_ATT_BLOCK) {
            int nb = t + 1 - j0 < DISTILL__GEN_ATT_BLOCK ? t + 1 - j0 : DISTILL__GEN_ATT_BLOCK;
            float mb;
            for (jj = 0; jj < nb; jj++)
                s[jj] = scale * distill_vec_dot(qr, kb + ((size_t)(j0 + jj) * NKV + g) * HS, HS);
            mb = distill_vec_max(s, nb);
            if (mb > m) {   /* rescale what was accumulated under the old max */
                float corr = expf(m - mb);
                distill_vec_scale(o, corr, HS);
                l *= corr;
                m = mb;
            }
            l += distill_vec_exp_sum(s, s, m, nb);
            for (jj = 0; jj < nb; jj++)
                distill_vec_axpy(o, s[jj], vb + ((size_t)(j0 + jj) * NKV + g) * HS, HS);
        }
        distill_vec_scale(o, 1.0f / l, HS);
    }
}

/* Matrix-vector products for decoding: out (r,OC) = inp (r,C) . weight (OC,C)^T + bias, for a
   few rows. The general matmul packs the weight for its blocked kernel, which pays off for
   many rows but for one row per sequence costs more than the product itself; here each weight
   row is streamed once and dotted with the r inputs, split over threads by output columns
   (each output written by one thread: the same result for any thread count). */
#define DISTILL__GEN_GEMV_ROWS 16
typedef struct {
    float *out;
    const float *inp, *weight, *bias;
    int r, C, OC;
} distill__gemv_ctx;
static void distill__gemv_task(void *p, int64_t b, int64_t e, int th) {
    const distill__gemv_ctx *c = (const distill__gemv_ctx *)p;
    int64_t o;
    int i;
    (void)th;
    for (o = b; o < e; o++) {
        const float *w = c->weight + (size_t)o * c->C;
        float bo = c->bias ? c->bias[o] : 0.0f;
        for (i = 0; i < c->r; i++)
            c->out[(size_t)i * c->OC + o] = distill_vec_dot(c->inp + (size_t)i * c->C, w, c->C) + bo;
    }
}
static void distill__gen_matmul(float *out, const float *inp, const float *weight, const float *bias,
                                int r, int C, int OC) {
    distill__gemv_ctx c;
    if (r > DISTILL__GEN_GEMV_ROWS) {
        distill_matmul_forward(out, inp, weight, bias, r, C, OC);
        return;
    }
    c.out = out; c.inp = inp; c.weight = weight; c.bias = bias; c.r = r; c.C = C; c.OC = OC;
    distill_parallel_for(OC, 64, distill__gemv_task, &c);
}

/* One chunk of r rows whose positions and sequences are in g->pos / g->rowseq and whose
   embeddings are in g->x. Leaves the final-norm output in g->xb. */
static void distill__gen_chunk(distill_generator *g, int r) {
    const distill_model *m = g->m;
    const distill_config *c = &m->cfg;
    int C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = C / NH;
    int KVD = NKV * HS, l, i;
    distill__gen_att_ctx ac;
    for (l = 0; l < c->n_layers; l++) {
        const struct distill_layer_params *p = &m->layers[l];
        float *kc = g->kc + (size_t)l * g->B * g->S * KVD, *vc = g->vc + (size_t)l * g->B * g->S * KVD;
        /* attention block: x += Wo . attention(rope(Wq a), rope(Wk a), Wv a),  a = rmsnorm(x) */
        distill_rmsnorm_forward(g->xb, g->rstd, g->x, p->attn_norm, r, C, c->norm_eps);
        distill__gen_matmul(g->q, g->xb, p->wq, p->bq, r, C, NH * HS);
        distill__gen_matmul(g->k, g->xb, p->wk, p->bk, r, C, KVD);
        distill__gen_matmul(g->v, g->xb, p->wv, p->bv, r, C, KVD);
        distill_rope_forward(g->q, g->pos, r, NH, HS, c->rope_theta);
        distill_rope_forward(g->k, g->pos, r, NKV, HS, c->rope_theta);
        for (i = 0; i < r; i++) {   /* append this chunk's keys and values to the cache */
            size_t at = ((size_t)g->rowseq[i] * g->S + (size_t)g->pos[i]) * KVD;
            memcpy(kc + at, g->k + (size_t)i * KVD, sizeof(float) * (size_t)KVD);
            memcpy(vc + at, g->v + (size_t)i * KVD, sizeof(float) * (size_t)KVD);
        }
        ac.out = g->att; ac.q = g->q; ac.kc = kc; ac.vc = vc; ac.pos = g->pos; ac.seq = g->rowseq;
        ac.NH = NH; ac.NKV = NKV; ac.HS = HS; ac.S = g->S;
        distill_parallel_for((int64_t)r * NH, 1, distill__gen_att_task, &ac);
        distill__gen_matmul(g->tmp, g->att, p->wo, NULL, r, NH * HS, C);
        distill_vec_axpy(g->x, 1.0f, g->tmp, r * C);   /* x = o + x, the model's residual order */
        /* MLP block: x += Wd (silu(Wg f) * (Wu f)),  f = rmsnorm(x) */
        distill_rmsnorm_forward(g->xb, g->rstd, g->x, p->ffn_norm, r, C, c->norm_eps);
        distill__gen_matmul(g->gate, g->xb, p->w_gate, NULL, r, C, F);
        distill__gen_matmul(g->up, g->xb, p->w_up, NULL, r, C, F);
        distill_swiglu_forward(g->gate, g->gate, g->up, (size_t)r * F);
        distill__gen_matmul(g->tmp, g->gate, p->w_down, NULL, r, F, C);
        distill_vec_axpy(g->x, 1.0f, g->tmp, r * C);
    }
    distill_rmsnorm_forward(g->xb, g->rstd, g->x, m->final_norm, r, C, c->norm_eps);
}

DISTILL_API int distill_generator_forward(distill_generator *g, const int *seq,
                                          const int32_t *tokens, int n, float *logits,
                                          int all_rows, distill_error *err) {
    const distill_model *m = g->m;
    int C = m->cfg.dim, V = m->cfg.vocab_size, i, i0;
    /* validate everything before touching the cache */
    for (i = 0; i < n; i++) {
        if (seq[i] < 0 || seq[i] >= g->B)
            return distill__err(err, "generator: row %d: sequence %d out of range 0..%d", i, seq[i], g->B - 1);
        if (tokens[i] < 0 || tokens[i] >= V)
            return distill__err(err, "generator: row %d: token id %d out of range 0..%d", i, (int)tokens[i], V - 1);
    }
    {
        /* capacity: count rows per sequence */
        int b;
        for (b = 0; b < g->B; b++) {
            int add = 0;
            for (i = 0; i < n; i++) add += seq[i] == b;
            if (add && g->len[b] + add > g->S)
                return distill__err(err, "generator: sequence %d: %d + %d positions exceed the context of %d",
                                    b, g->len[b], add, g->S);
        }
    }
    for (i0 = 0; i0 < n; i0 += g->R) {
        int r = n - i0 < g->R ? n - i0 : g->R;
        for (i = 0; i < r; i++) {
            int b = seq[i0 + i];
            g->rowseq[i] = b;
            g->pos[i] = g->len[b]++;
            memcpy(g->x + (size_t)i * C, m->tok_emb + (size_t)tokens[i0 + i] * C, sizeof(float) * (size_t)C);
        }
        distill__gen_chunk(g, r);
        if (logits && all_rows) {
            distill__gen_matmul(logits + (size_t)i0 * V, g->xb, m->lm_head, NULL, r, C, V);
        } else if (logits && i0 + r == n) {
            distill__gen_matmul(logits, g->xb + (size_t)(r - 1) * C, m->lm_head, NULL, 1, C, V);
        }
    }
    return 0;
}

/* ---- Sampling ---------------------------------------------------------------------------- */

/* Order of candidates: higher probability first, ties to the lower id, so the result never
   depends on the sort's stability. worse(a, b): a comes after b. */
static int distill__worse(const float *w, int32_t a, int32_t b) {
    return w[a] < w[b] || (w[a] == w[b] && a > b);
}
/* Sift down in a heap whose root is the WORST element. */
static void distill__heap_sift(int32_t *idx, int n, int i, const float *w) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, c = i;
        if (l < n && distill__worse(w, idx[l], idx[c])) c = l;
        if (r < n && distill__worse(w, idx[r], idx[c])) c = r;
        if (c == i) return;
        { int32_t t = idx[i]; idx[i] = idx[c]; idx[c] = t; }
        i = c;
    }
}
/* Heapsort idx[0..n) best first. */
static void distill__sort_desc(int32_t *idx, int n, const float *w) {
    int i;
    for (i = n / 2 - 1; i >= 0; i--) distill__heap_sift(idx, n, i, w);
    for (i = n - 1; i > 0; i--) {
        int32_t t = idx[0]; idx[0] = idx[i]; idx[i] = t;
        distill__heap_sift(idx, i, 0, w);
    }
}

DISTILL_API int32_t distill_sample_token(const float *logits, int V, float temperature, int top_k,
                                         float top_p, distill_rng *rng, float *work, int32_t *idx) {
    float mx;
    double total = 0.0, u, cum = 0.0, mass;
    int i, n;
    if (V <= 0) return -1;
    if (!(temperature > 0.0f) || top_k == 1) {   /* greedy; NaN temperature too */
        int32_t best = 0;
        for (i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
    /* p_i proportional to exp((z_i - max z) / temperature) */
    mx = distill_vec_max(logits, V);
    for (i = 0; i < V; i++) {
        work[i] = expf((logits[i] - mx) / temperature);
        total += work[i];
    }
    if (top_k > 0 && top_k < V) {
        /* keep the top_k best in a heap whose root is the worst kept */
        n = 0;
        for (i = 0; i < V; i++) {
            if (n < top_k) {
                int j = n++;
                idx[j] = i;
                while (j > 0 && distill__worse(work, idx[j], idx[(j - 1) / 2])) {   /* sift up */
                    int32_t t = idx[j]; idx[j] = idx[(j - 1) / 2]; idx[(j - 1) / 2] = t;
                    j = (j - 1) / 2;
                }
            } else if (distill__worse(work, idx[0], i)) {
                idx[0] = i;
                distill__heap_sift(idx, n, 0, work);
            }
        }
        distill__sort_desc(idx, n, work);
        total = 0.0;
        for (i = 0; i < n; i++) total += work[idx[i]];
    } else if (top_p > 0.0f && top_p < 1.0f) {
        /* A token with p < (1 - top_p) / (V - 1) cannot be in the nucleus: all such tokens
           together hold less than 1 - top_p. Dropping them first keeps the sort short. */
        double cutoff = V > 1 ? (1.0 - top_p) / (double)(V - 1) * total : 0.0;
        n = 0;
        for (i = 0; i < V; i++) if ((double)work[i] >= cutoff) idx[n++] = i;
        distill__sort_desc(idx, n, work);
    } else {
        /* plain sampling from all V: inverse CDF in id order */
        u = distill_rng_uniform(rng) * total;
        for (i = 0; i < V; i++) {
            cum += work[i];
            if (u < cum) return i;
        }
        for (i = V - 1; i > 0 && work[i] == 0.0f; i--) {}
        return i;   /* rounding at the very end */
    }
    /* nucleus: the shortest best-first prefix whose mass reaches top_p of the total */
    mass = total;
    if (top_p > 0.0f && top_p < 1.0f) {
        double target = (double)top_p * total;
        cum = 0.0;
        for (i = 0; i < n; i++) {
            cum += work[idx[i]];
            if (cum >= target) { n = i + 1; break; }
        }
        mass = cum;
    }
    u = distill_rng_uniform(rng) * mass;
    cum = 0.0;
    for (i = 0; i < n; i++) {
        cum += work[idx[i]];
        if (u < cum) return idx[i];
    }
    return idx[n - 1];
}

/* ---- The generation loop ------------------------------------------------------------------ */

DISTILL_API distill_gen_options distill_gen_options_default(void) {
    distill_gen_options o;
    memset(&o, 0, sizeof o);
    o.max_new_tokens = 256;
    o.temperature = 0.0f;
    o.top_k = 0;
    o.top_p = 1.0f;
    o.seed = 1;
    return o;
}

DISTILL_API void distill_gen_result_free(distill_gen_result *r) {
    if (!r) return;
    DISTILL_FREE(r->ids);
    DISTILL_FREE(r->text);
    memset(r, 0, sizeof *r);
    r->stop_id = -1;
}

/* Append bytes to a result's text (keeps it NUL-terminated). */
static int distill__gen_text_append(distill_gen_result *r, size_t *cap, const char *s, size_t n) {
    if (r->len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        char *p;
        while (nc < r->len + n + 1) nc *= 2;
        p = (char *)DISTILL_REALLOC(r->text, nc);
        if (!p) return -1;
        r->text = p;
        *cap = nc;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = 0;
    return 0;
}

typedef struct distill__gen_slot {
    int sample;               /* index into the caller's prompts/out */
    int active;
    distill_rng rng;
    distill_decoder dec;
    size_t text_cap, ids_cap;
    size_t streamed;          /* bytes of text handed to on_token so far */
} distill__gen_slot;

/* Length of the longest suffix of text[0..len) that is a proper prefix of a stop string: those
   bytes are not streamed yet because the next token may complete the stop string. */
static size_t distill__stop_prefix_tail(const char *text, size_t len, const char *const *stops, int n) {
    size_t best = 0;
    int k;
    for (k = 0; k < n; k++) {
        size_t sl = strlen(stops[k]), t;
        for (t = sl > 0 ? sl - 1 : 0; t > best; t--)
            if (t <= len && !memcmp(text + len - t, stops[k], t)) { best = t; break; }
    }
    return best;
}

DISTILL_API int distill_generate(distill_generator *g, const distill_tokenizer *tok,
                                 const int32_t *const *prompts, const int *prompt_lens, int n,
                                 const distill_gen_options *opt, distill_gen_result *out,
                                 distill_error *err) {
    distill_gen_options o = opt ? *opt : distill_gen_options_default();
    int V = g->m->cfg.vocab_size, i, b0, rc = 0;
    distill__gen_slot *slot = NULL;
    float *work = NULL;
    int32_t *idx = NULL, *feed = NULL;
    int *feed_seq = NULL;
    for (i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].stop_id = -1;
    }
    if (o.max_new_tokens < 0) return distill__err(err, "generate: max_new_tokens (%d) < 0", o.max_new_tokens);
    if (o.top_k < 0) return distill__err(err, "generate: top_k (%d) < 0", o.top_k);
    if (!(o.temperature >= 0.0f) || o.temperature > 1e4f) return distill__err(err, "generate: temperature %g out of range", (double)o.temperature);
    if (!(o.top_p > 0.0f) || o.top_p > 1.0f) return distill__err(err, "generate: top_p %g must be in (0, 1]", (double)o.top_p);
    for (i = 0; i < n; i++) {
        if (prompt_lens[i] < 1) return distill__err(err, "generate: prompt %d is empty (give at least one token, e.g. BOS)", i);
        if (prompt_lens[i] >= g->S)
            return distill__err(err, "generate: prompt %d has %d tokens; the context holds %d", i, prompt_lens[i], g->S);
    }
    slot = (distill__gen_slot *)DISTILL_MALLOC((size_t)g->B * sizeof *slot);
    work = (float *)DISTILL_MALLOC((size_t)V * sizeof *work);
    idx = (int32_t *)DISTILL_MALLOC((size_t)V * sizeof *idx);
    feed = (int32_t *)DISTILL_MALLOC((size_t)g->B * sizeof *feed);
    feed_seq = (int *)DISTILL_MALLOC((size_t)g->B * sizeof *feed_seq);
    if (!slot || !work || !idx || !feed || !feed_seq) { rc = distill__err(err, "generate: out of memory"); goto done; }
    memset(slot, 0, (size_t)g->B * sizeof *slot);

    for (b0 = 0; b0 < n && rc == 0; b0 += g->B) {
        int nb = n - b0 < g->B ? n - b0 : g->B, b, nactive = 0, step;
        distill_generator_reset(g, -1);
        /* prefill: one forward per distinct prompt, copies for repeats (n samples per problem) */
        for (b = 0; b < nb; b++) {
            int s = b0 + b, j;
            distill__gen_slot *sl = &slot[b];
            memset(sl, 0, sizeof *sl);
            sl->sample = s;
            sl->active = 1;
            distill_rng_seed(&sl->rng, o.seed + 0x9E3779B97F4A7C15ull * ((o.seeds ? o.seeds[s] : (uint64_t)s) + 1));
            if (tok) distill_decoder_init(&sl->dec, tok);
            out[s].prompt_tokens = prompt_lens[s];
            for (j = 0; j < b; j++)
                if (prompt_lens[b0 + j] == prompt_lens[s] &&
                    !memcmp(prompts[b0 + j], prompts[s], (size_t)prompt_lens[s] * sizeof(int32_t)))
                    break;
            if (j < b) {
                distill_generator_copy(g, b, j);
                memcpy(g->lg + (size_t)b * V, g->lg + (size_t)j * V, sizeof(float) * (size_t)V);
            } else {
                int *sq = (int *)DISTILL_MALLOC((size_t)prompt_lens[s] * sizeof *sq), t;
                if (!sq) { rc = distill__err(err, "generate: out of memory"); goto done; }
                for (t = 0; t < prompt_lens[s]; t++) sq[t] = b;
                rc = distill_generator_forward(g, sq, prompts[s], prompt_lens[s], g->lg + (size_t)b * V, 0, err);
                DISTILL_FREE(sq);
                if (rc) goto done;
            }
            nactive++;
        }
        /* decode: every active sequence samples from its logits row, then all are fed at once */
        for (step = 0; nactive > 0; step++) {
            int nfeed = 0;
            for (b = 0; b < nb; b++) {
                distill__gen_slot *sl = &slot[b];
                distill_gen_result *r = &out[sl->sample];
                int32_t id;
                int k, stop = 0;
                if (!sl->active) continue;
                if ((int)r->n >= o.max_new_tokens) {   /* max_new_tokens == 0 */
                    r->finish = DISTILL_FINISH_LENGTH;
                    sl->active = 0; nactive--;
                    continue;
                }
                id = distill_sample_token(g->lg + (size_t)b * V, V, o.temperature, o.top_k, o.top_p,
                                          &sl->rng, work, idx);
                for (k = 0; k < o.n_stop_ids; k++) if (id == o.stop_ids[k]) stop = 1;
                if (stop) {
                    r->finish = DISTILL_FINISH_STOP;
                    r->stop_id = id;
                    sl->active = 0; nactive--;
                    continue;
                }
                if (r->n == sl->ids_cap) {
                    size_t nc = sl->ids_cap ? 2 * sl->ids_cap : 64;
                    int32_t *np = (int32_t *)DISTILL_REALLOC(r->ids, nc * sizeof *np);
                    if (!np) { rc = distill__err(err, "generate: out of memory"); goto done; }
                    r->ids = np; sl->ids_cap = nc;
                }
                r->ids[r->n++] = id;
                if (tok) {
                    size_t plen = 0, before = r->len, safe;
                    const char *piece = distill_decoder_push(&sl->dec, id, &plen);
                    if (plen && distill__gen_text_append(r, &sl->text_cap, piece, plen)) {
                        rc = distill__err(err, "generate: out of memory"); goto done;
                    }
                    /* a stop string may span tokens: look where it could end in the new bytes */
                    for (k = 0; k < o.n_stop_strings && !stop; k++) {
                        size_t sl_len = strlen(o.stop_strings[k]), from;
                        if (sl_len == 0 || r->len < sl_len) continue;
                        from = before + 1 > sl_len ? before + 1 - sl_len : 0;
                        from = distill__find(r->text, r->len, from, o.stop_strings[k]);
                        if (from != (size_t)-1) {
                            r->len = from;
                            r->text[from] = 0;
                            stop = 1;
                        }
                    }
                    /* stream what is final: hold back a tail that could still become a stop string */
                    safe = stop ? r->len : r->len - distill__stop_prefix_tail(r->text, r->len, o.stop_strings, o.n_stop_strings);
                    if (o.on_token) {
                        o.on_token(o.on_token_ctx, sl->sample, id, r->text ? r->text + sl->streamed : "",
                                   safe > sl->streamed ? safe - sl->streamed : 0);
                        if (safe > sl->streamed) sl->streamed = safe;
                    }
                } else if (o.on_token) {
                    o.on_token(o.on_token_ctx, sl->sample, id, "", 0);
                }
                if (stop) r->finish = DISTILL_FINISH_STOP;
                else if ((int)r->n >= o.max_new_tokens || g->len[b] >= g->S) r->finish = DISTILL_FINISH_LENGTH;
                else { feed[nfeed] = id; feed_seq[nfeed] = b; nfeed++; continue; }
                sl->active = 0; nactive--;
            }
            if (nfeed == 0) break;
            rc = distill_generator_forward(g, feed_seq, feed, nfeed, g->lg, 1, err);
            if (rc) goto done;
            /* logits came back in feed order: move row i to its sequence's row */
            for (i = nfeed - 1; i >= 0; i--)
                if (feed_seq[i] != i)
                    memcpy(g->lg + (size_t)feed_seq[i] * V, g->lg + (size_t)i * V, sizeof(float) * (size_t)V);
        }
        for (b = 0; b < nb; b++) {
            distill_gen_result *r = &out[slot[b].sample];
            if (tok) {
                size_t fl = 0;
                const char *tail = distill_decoder_flush(&slot[b].dec, &fl);
                if (fl && r->finish != DISTILL_FINISH_STOP) distill__gen_text_append(r, &slot[b].text_cap, tail, fl);
                if (o.on_token && r->len > slot[b].streamed)   /* the held-back tail, id -1 */
                    o.on_token(o.on_token_ctx, slot[b].sample, -1, r->text + slot[b].streamed, r->len - slot[b].streamed);
                distill_decoder_free(&slot[b].dec);
                memset(&slot[b].dec, 0, sizeof slot[b].dec);
                if (!r->text) distill__gen_text_append(r, &slot[b].text_cap, "", 0);
            }
        }
    }
done:
    if (rc) {
        for (i = 0; i < n; i++) distill_gen_result_free(&out[i]);
        /* decoders of an interrupted batch */
        if (slot && tok) for (i = 0; i < g->B && i < n; i++) if (slot[i].dec.tok) distill_decoder_free(&slot[i].dec);
    }
    DISTILL_FREE(slot); DISTILL_FREE(work); DISTILL_FREE(idx); DISTILL_FREE(feed); DISTILL_FREE(feed_seq);
    return rc;
}

/* ---- Evaluating a model on an eval set ---------------------------------------------------- */

DISTILL_API distill_eval_model_options distill_eval_model_options_default(void) {
    distill_eval_model_options o;
    memset(&o, 0, sizeof o);
    o.n_samples = 1;
    o.batch = 8;
    o.gen = distill_gen_options_default();
    o.gen.max_new_tokens = 512;
    return o;
}

typedef struct distill__eval_problem {
    distill_json *rec;
    char *qid, *diff;
    distill_ids ids;
    char *prompt_text;
    size_t prompt_len;
    int64_t index;
} distill__eval_problem;

static void distill__eval_problem_free(distill__eval_problem *p) {
    distill_json_free(p->rec);
    DISTILL_FREE(p->qid);
    DISTILL_FREE(p->diff);
    distill_ids_free(&p->ids);
    DISTILL_FREE(p->prompt_text);
    memset(p, 0, sizeof *p);
}

/* Build the prompt ids of one record (see distill_eval_model). */
static int distill__eval_prompt(const distill_json *rec, const distill_tokenizer *tok,
                                const distill_eval_model_options *o,
                                const distill_chat_template *tmpl, const char *where,
                                distill_ids *ids, distill_error *err) {
    static const char *const fields[4] = {"prompt", "question", "problem", "instruction"};
    const distill_json *v = NULL;
    int i;
    if (o->prompt_field) {
        v = distill_json_path(rec, o->prompt_field);
        if (!v || v->type != DISTILL_JSON_STRING)
            return distill__err(err, "%s: field '%s': %s", where, o->prompt_field, v ? "expected a string" : "missing");
    } else {
        for (i = 0; i < 4 && !(v && v->type == DISTILL_JSON_STRING); i++) v = distill_json_get(rec, fields[i]);
        if (v && v->type != DISTILL_JSON_STRING) v = NULL;
    }
    if (v && o->raw) {
        int flags = DISTILL_ENC_ALLOW_SPECIAL | (distill_tokenizer_bos_id(tok) >= 0 ? DISTILL_ENC_BOS : 0);
        if (distill_tokenizer_encode_ex(tok, v->str, v->len, flags, ids, err)) return -1;
    } else if (v) {
        if (distill_chat_prompt_ids(tmpl, tok, o->system, v->str, ids, err)) return -1;
    } else {
        /* a conversation: everything before the final assistant turn(s) */
        distill_data_options dopt = distill_data_options_default();
        distill_data_format fmt = DISTILL_FORMAT_AUTO;
        distill_conv conv;
        int rc;
        memset(&conv, 0, sizeof conv);
        dopt.tmpl = tmpl;
        if (distill_conv_from_json(rec, &dopt, &fmt, where, &conv, err)) {
            distill_conv_free(&conv);
            return -1;
        }
        while (conv.n > 0 && conv.msgs[conv.n - 1].role == DISTILL_ROLE_ASSISTANT) conv.n--;
        if (conv.n == 0) {
            distill_conv_free(&conv);
            return distill__err(err, "%s: no prompt: no \"prompt\"/\"question\" field and no user turn", where);
        }
        if (o->raw) {
            /* raw: the concatenated turn texts, as plain text */
            int flags = DISTILL_ENC_ALLOW_SPECIAL | (distill_tokenizer_bos_id(tok) >= 0 ? DISTILL_ENC_BOS : 0);
            rc = distill_tokenizer_encode_ex(tok, conv.msgs[conv.n - 1].content, conv.msgs[conv.n - 1].len, flags, ids, err);
        } else {
            rc = distill_chat_encode(tmpl, tok, &conv, DISTILL_LOSS_LAST, 1, ids, NULL, err);
        }
        distill_conv_free(&conv);
        if (rc) return -1;
    }
    if (ids->n == 0) return distill__err(err, "%s: the prompt encodes to no tokens", where);
    return 0;
}

/* Grow-only array of sample results. */
static int distill__push_result(distill_sample_result **a, size_t *n, size_t *cap,
                                const distill_sample_result *r) {
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 256;
        distill_sample_result *p = (distill_sample_result *)DISTILL_REALLOC(*a, nc * sizeof *p);
        if (!p) return -1;
        *a = p; *cap = nc;
    }
    (*a)[(*n)++] = *r;
    return 0;
}

DISTILL_API int distill_eval_model(distill_model *m, const distill_tokenizer *tok,
                                   const char *data_path, const distill_eval_model_options *opt,
                                   FILE *results, distill_error *err) {
    static const int k1 = 1;
    distill_eval_model_options o = opt ? *opt : distill_eval_model_options_default();
    const distill_chat_template *tmpl = o.tmpl ? o.tmpl : distill_chat_template_get("chatml");
    distill_line_reader *lr = NULL;
    distill__eval_problem *pend = NULL;
    distill_generator *g = NULL;
    distill_sample_result *res = NULL;
    char **diffs = NULL;
    const int32_t **prompts = NULL;
    int *lens = NULL;
    uint64_t *seeds = NULL;
    distill_gen_result *out = NULL;
    int32_t stop_ids[3];
    const char *stop_str[1];
    size_t nres = 0, capres = 0, ndiffs = 0, capdiffs = 0, i;
    int npend = 0, cap_pend, n = o.n_samples, g_seq = 0, at_eof = 0, rc = -1, r;
    int64_t nprob = 0, line_no = 0, gen_tokens = 0;
    distill_atomic_file af;
    int have_af = 0;
    double t0 = distill_time_seconds();

    if (!tok) return distill__err(err, "eval: a tokenizer is needed");
    if (!tmpl) return distill__err(err, "eval: no chat template");
    if (n < 1 || n > 100000) return distill__err(err, "eval: n_samples (%d) must be in 1..100000", n);
    if (o.batch < 1 || o.batch > 65536) return distill__err(err, "eval: batch (%d) must be in 1..65536", o.batch);
    if (!o.ks) { o.ks = &k1; o.nk = 1; }
    /* stop tokens: end of turn (a token, or its text) and EOS; raw prompts also BOS */
    o.gen.n_stop_ids = 0;
    o.gen.n_stop_strings = 0;
    if (!o.raw) {
        int32_t eot = distill_chat_eot_id(tmpl, tok);
        if (eot >= 0) stop_ids[o.gen.n_stop_ids++] = eot;
        else if (tmpl->end_of_turn && tmpl->end_of_turn[0]) stop_str[o.gen.n_stop_strings++] = tmpl->end_of_turn;
    } else if (distill_tokenizer_bos_id(tok) >= 0) {
        stop_ids[o.gen.n_stop_ids++] = distill_tokenizer_bos_id(tok);
    }
    if (distill_tokenizer_eos_id(tok) >= 0) stop_ids[o.gen.n_stop_ids++] = distill_tokenizer_eos_id(tok);
    o.gen.stop_ids = stop_ids;
    o.gen.stop_strings = stop_str;

    cap_pend = o.batch / n > 1 ? o.batch / n : 1;   /* problems per generation call */
    pend = (distill__eval_problem *)DISTILL_MALLOC((size_t)cap_pend * sizeof *pend);
    prompts = (const int32_t **)DISTILL_MALLOC((size_t)cap_pend * n * sizeof *prompts);
    lens = (int *)DISTILL_MALLOC((size_t)cap_pend * n * sizeof *lens);
    seeds = (uint64_t *)DISTILL_MALLOC((size_t)cap_pend * n * sizeof *seeds);
    out = (distill_gen_result *)DISTILL_MALLOC((size_t)cap_pend * n * sizeof *out);
    if (!pend || !prompts || !lens || !seeds || !out) { distill__err(err, "eval: out of memory"); goto done; }
    memset(pend, 0, (size_t)cap_pend * sizeof *pend);
    lr = distill_line_reader_open(data_path, 0, err);
    if (!lr) goto done;
    if (o.out_jsonl) {
        if (distill_atomic_open(&af, o.out_jsonl, err)) goto done;
        have_af = 1;
    }

    while (!at_eof) {
        const char *line;
        size_t len;
        int maxlen = 0, j, ns;
        /* gather up to cap_pend problems */
        while (npend < cap_pend && !(o.max_problems > 0 && nprob + npend >= o.max_problems)) {
            distill__eval_problem *p = &pend[npend];
            char where[512], buf[64];
            const char *s;
            size_t k;
            int blank = 1;
            r = distill_line_reader_next(lr, &line, &len, &line_no, err);
            if (r < 0) goto done;
            if (r == 0) break;
            for (k = 0; k < len && blank; k++) blank = line[k] == ' ' || line[k] == '\t' || line[k] == '\r';
            if (blank) continue;
            snprintf(where, sizeof where, "%s:%lld", data_path, (long long)line_no);
            memset(p, 0, sizeof *p);
            p->rec = distill_json_parse(line, len, data_path, (int)line_no, err);
            if (!p->rec) goto done;
            if (p->rec->type != DISTILL_JSON_OBJECT) {
                distill__err(err, "%s: expected a JSON object per line", where);
                distill__eval_problem_free(p);
                goto done;
            }
            if (distill__eval_prompt(p->rec, tok, &o, tmpl, where, &p->ids, err)) {
                distill__eval_problem_free(p);
                goto done;
            }
            s = distill__record_id(p->rec, buf, sizeof buf);
            if (s) p->qid = distill__strdup(s);
            else { snprintf(buf, sizeof buf, "line%lld", (long long)line_no); p->qid = distill__strdup(buf); }
            s = distill__record_difficulty(p->rec, buf, sizeof buf);
            p->diff = s ? distill__strdup(s) : NULL;
            p->prompt_text = distill_tokenizer_decode(tok, p->ids.ids, p->ids.n, &p->prompt_len);
            p->index = nprob + npend;
            if (!p->qid || !p->prompt_text || (s && !p->diff)) {
                distill__eval_problem_free(p);
                distill__err(err, "eval: out of memory");
                goto done;
            }
            if (p->ids.n > (size_t)(1 << 24)) {
                distill__eval_problem_free(p);
                distill__err(err, "%s: prompt too long (%zu tokens)", where, p->ids.n);
                goto done;
            }
            npend++;
        }
        if (npend < cap_pend) at_eof = 1;
        if (npend == 0) break;
        /* the generator: room for the longest prompt of this chunk + the new tokens */
        for (j = 0; j < npend; j++) if ((int)pend[j].ids.n > maxlen) maxlen = (int)pend[j].ids.n;
        if (!g || maxlen + o.gen.max_new_tokens + 1 > g_seq) {
            distill_generator_free(g);
            g_seq = maxlen + o.gen.max_new_tokens + 1;
            if (g_seq < 64) g_seq = 64;
            g = distill_generator_create(m, o.batch < npend * n ? o.batch : npend * n, g_seq, err);
            if (!g) goto done;
        }
        ns = npend * n;
        for (j = 0; j < ns; j++) {
            const distill__eval_problem *p = &pend[j / n];
            prompts[j] = p->ids.ids;
            lens[j] = (int)p->ids.n;
            seeds[j] = (uint64_t)p->index * (uint64_t)n + (uint64_t)(j % n);
        }
        o.gen.seeds = seeds;
        if (distill_generate(g, tok, prompts, lens, ns, &o.gen, out, err)) goto done;
        for (j = 0; j < ns; j++) {
            const distill__eval_problem *p = &pend[j / n];
            distill_gen_result *gr = &out[j];
            distill_gen_analysis a;
            distill_sample_result sr;
            char reason[512];
            const char *text = gr->text ? gr->text : "";
            memset(&sr, 0, sizeof sr);
            reason[0] = 0;
            distill_analyze_generation(p->prompt_text, p->prompt_len, text, gr->len, &a);
            distill_sample_result_from_analysis(&sr, &a);
            sr.problem = p->index;
            sr.finish = gr->finish;
            sr.think_tokens = a.think_open ? (double)distill_count_tokens(tok, text + a.think_begin, a.think_end - a.think_begin) : -1.0;
            sr.pass = -1;
            if (o.verifier && o.verifier->fn) {
                int v = o.verifier->fn(o.verifier->ctx, p->rec, text, gr->len, reason, sizeof reason);
                reason[sizeof reason - 1] = 0;
                sr.pass = v == 1;
            }
            gen_tokens += (int64_t)gr->n;
            if (distill__push_result(&res, &nres, &capres, &sr)) { distill__err(err, "eval: out of memory"); goto done; }
            if (have_af) {
                distill_generation_record rec;
                memset(&rec, 0, sizeof rec);
                rec.question_id = p->qid;
                rec.sample = j % n;
                rec.difficulty = p->diff;
                rec.prompt = p->prompt_text; rec.prompt_len = p->prompt_len;
                rec.text = text; rec.text_len = gr->len;
                rec.finish = gr->finish;
                rec.pass = sr.pass;
                rec.reason = reason[0] ? reason : NULL;
                rec.output_tokens = (int64_t)gr->n;
                rec.think_tokens = sr.think_tokens;
                distill_write_generation_jsonl(af.f, &rec);
            }
            distill_gen_result_free(gr);
        }
        /* keep each problem's difficulty (indexed by problem) for the per-difficulty split */
        for (j = 0; j < npend; j++) {
            if (ndiffs == capdiffs) {
                size_t nc = capdiffs ? 2 * capdiffs : 64;
                char **nd = (char **)DISTILL_REALLOC(diffs, nc * sizeof *nd);
                if (!nd) { distill__err(err, "eval: out of memory"); goto done; }
                diffs = nd; capdiffs = nc;
            }
            diffs[ndiffs++] = pend[j].diff;
            pend[j].diff = NULL;
            distill__eval_problem_free(&pend[j]);
        }
        nprob += npend;
        npend = 0;
        if (o.progress) {
            double dt = distill_time_seconds() - t0;
            int64_t pass = 0;
            for (i = 0; i < nres; i++) pass += res[i].pass > 0;
            fprintf(stderr, "eval: %lld problems, %zu samples, %.1f s, %.1f tok/s%s",
                    (long long)nprob, nres, dt, dt > 0 ? (double)gen_tokens / dt : 0.0,
                    o.verifier ? "" : "\n");
            if (o.verifier) fprintf(stderr, ", %lld passed\n", (long long)pass);
        }
        if (o.max_problems > 0 && nprob >= o.max_problems) break;
    }
    if (nres == 0) { distill__err(err, "%s: no records", data_path); goto done; }
    if (distill_eval_write_json(results, res, nres, (const char *const *)diffs, ndiffs, o.ks, o.nk,
                                "tokens", err))
        goto done;
    if (have_af) { have_af = 0; if (distill_atomic_commit(&af, err)) goto done; }
    rc = 0;
done:
    if (have_af) distill_atomic_abort(&af);
    if (pend) for (r = 0; r < npend; r++) distill__eval_problem_free(&pend[r]);
    for (i = 0; i < ndiffs; i++) DISTILL_FREE(diffs[i]);
    DISTILL_FREE(diffs);
    DISTILL_FREE(pend); DISTILL_FREE(prompts); DISTILL_FREE(lens); DISTILL_FREE(seeds); DISTILL_FREE(out);
    DISTILL_FREE(res);
    distill_generator_free(g);
    if (lr) distill_line_reader_close(lr);
    return rc;
}
