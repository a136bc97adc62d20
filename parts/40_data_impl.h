/* ===================================================================================== */
/* DATA (owner: data issue): schema adapters, filters, chat template, loss weights,       */
/* datasets, selection, batches                                                           */
/* ===================================================================================== */

/* ---- a growable byte string for building message contents -------------------------- */
typedef struct distill__data_sb {
    char *s;
    size_t n, cap;
    int oom;
} distill__data_sb;

static void distill__data_sb_put(distill__data_sb *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->cap - b->n < n + 1) {
        size_t nc = b->cap ? b->cap : 256;
        char *ns;
        while (nc - b->n < n + 1) {
            if (nc > SIZE_MAX / 2) { b->oom = 1; return; }
            nc *= 2;
        }
        ns = (char *)DISTILL_REALLOC(b->s, nc);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = nc;
    }
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void distill__data_sb_puts(distill__data_sb *b, const char *s) { if (s) distill__data_sb_put(b, s, strlen(s)); }

/* memmem is not C99 */
static const char *distill__data_find(const char *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle), i;
    if (nn == 0 || hn < nn) return NULL;
    for (i = 0; i + nn <= hn; i++) {
        const char *p = (const char *)memchr(h + i, needle[0], hn - nn + 1 - i);
        if (!p) return NULL;
        if (memcmp(p, needle, nn) == 0) return p;
        i = (size_t)(p - h);
    }
    return NULL;
}
static const char *distill__data_find_last(const char *h, size_t hn, const char *needle) {
    const char *last = NULL, *p = h;
    size_t nn = strlen(needle);
    while ((p = distill__data_find(p, hn - (size_t)(p - h), needle)) != NULL) { last = p; p += nn; }
    return last;
}

/* ---- conversations ------------------------------------------------------------------------ */
static int distill__data_conv_push(distill_conv *c, distill_role role, const char *s, size_t n, float w) {
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 8;
        distill_message *nm = (distill_message *)DISTILL_REALLOC(c->msgs, (size_t)nc * sizeof *nm);
        if (!nm) return -1;
        c->msgs = nm;
        c->cap = nc;
    }
    c->msgs[c->n].role = role;
    c->msgs[c->n].content = s;
    c->msgs[c->n].len = n;
    c->msgs[c->n].loss_weight = w;
    c->n++;
    return 0;
}

/* Take ownership of a malloc'ed string. */
static int distill__data_conv_own(distill_conv *c, char *s) {
    if (c->n_owned == c->cap_owned) {
        int nc = c->cap_owned ? c->cap_owned * 2 : 4;
        char **no = (char **)DISTILL_REALLOC(c->owned, (size_t)nc * sizeof *no);
        if (!no) return -1;
        c->owned = no;
        c->cap_owned = nc;
    }
    c->owned[c->n_owned++] = s;
    return 0;
}

DISTILL_API int distill_conv_add(distill_conv *c, distill_role role, const char *content, size_t len,
                                 float loss_weight) {
    char *s = (char *)DISTILL_MALLOC(len + 1);
    if (!s) return -1;
    if (len) memcpy(s, content, len);
    s[len] = 0;
    if (distill__data_conv_own(c, s) != 0) { DISTILL_FREE(s); return -1; }
    return distill__data_conv_push(c, role, s, len, loss_weight);
}

DISTILL_API void distill_conv_free(distill_conv *c) {
    int i;
    if (!c) return;
    for (i = 0; i < c->n_owned; i++) DISTILL_FREE(c->owned[i]);
    DISTILL_FREE(c->owned);
    DISTILL_FREE(c->msgs);
    memset(c, 0, sizeof *c);
}

/* ---- formats --------------------------------------------------------------------------------- */
static const char *const distill__data_format_names[] = {
    "auto", "messages", "conversations", "prompt-completion", "alpaca", "text", "mapped"
};

DISTILL_API const char *distill_data_format_name(distill_data_format f) {
    if ((int)f < 0 || (int)f > (int)DISTILL_FORMAT_MAPPED) return "?";
    return distill__data_format_names[f];
}

DISTILL_API int distill_data_format_parse(const char *name, distill_data_format *out) {
    int i;
    for (i = 0; i <= (int)DISTILL_FORMAT_MAPPED; i++)
        if (!strcmp(name, distill__data_format_names[i])) { *out = (distill_data_format)i; return 0; }
    return -1;
}

DISTILL_API distill_data_options distill_data_options_default(void) {
    distill_data_options o;
    memset(&o, 0, sizeof o);
    o.format = DISTILL_FORMAT_AUTO;
    o.loss = DISTILL_LOSS_ASSISTANT;
    o.policy = DISTILL_POLICY_STRICT;
    return o;
}

/* ---- schema adapters ------------------------------------------------------------------------ */
/* Errors point at a JSON value (its line and column) and name the field by its path. */
static int distill__data_field_err(distill_error *err, const char *name, const distill_json *at,
                              const char *field, const char *fmt, ...) DISTILL__PRINTF(5, 6);
static int distill__data_field_err(distill_error *err, const char *name, const distill_json *at,
                              const char *field, const char *fmt, ...) {
    if (err) {
        char msg[320];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (field)
            distill__err(err, "%s:%d:%d: field '%s': %s", name ? name : "<data>", at ? at->line : 0,
                         at ? at->col : 0, field, msg);
        else
            distill__err(err, "%s:%d:%d: %s", name ? name : "<data>", at ? at->line : 0, at ? at->col : 0, msg);
    }
    return -1;
}

typedef struct distill__data_adapt {
    const distill_data_options *opt;
    const char *name;
    const distill_json *row;
    distill_error *err;
    distill_conv *conv;
} distill__data_adapt;

/* The text of a content value: a string, or a list of parts (strings or {"type": "text",
   "text": ...}) concatenated. Returns a pointer into the JSON document, or a string the
   conversation owns. */
static int distill__data_content(distill__data_adapt *a, const distill_json *v, const char *field,
                            const char **out, size_t *out_len) {
    size_t i;
    distill__data_sb sb;
    if (!v) return distill__data_field_err(a->err, a->name, a->row, field, "missing");
    if (v->type == DISTILL_JSON_STRING) { *out = v->str; *out_len = v->len; return 0; }
    if (v->type != DISTILL_JSON_ARRAY)
        return distill__data_field_err(a->err, a->name, v, field, "expected a string or a list of parts, got %s",
                                  distill_json_type_name(v->type));
    memset(&sb, 0, sizeof sb);
    distill__data_sb_put(&sb, "", 0);
    for (i = 0; i < v->len; i++) {
        const distill_json *p = &v->items[i], *t;
        if (p->type == DISTILL_JSON_STRING) { distill__data_sb_put(&sb, p->str, p->len); continue; }
        t = distill_json_get(p, "type");
        if (p->type != DISTILL_JSON_OBJECT || (t && (t->type != DISTILL_JSON_STRING || strcmp(t->str, "text") != 0))) {
            DISTILL_FREE(sb.s);
            return distill__data_field_err(a->err, a->name, p, field, "part %zu: only text parts are supported (got %s%s%s)", i,
                                      t && t->type == DISTILL_JSON_STRING ? "type '" : distill_json_type_name(p->type),
                                      t && t->type == DISTILL_JSON_STRING ? t->str : "",
                                      t && t->type == DISTILL_JSON_STRING ? "'" : "");
        }
        t = distill_json_get(p, "text");
        if (!t || t->type != DISTILL_JSON_STRING) {
            DISTILL_FREE(sb.s);
            return distill__data_field_err(a->err, a->name, t ? t : p, field, "part %zu: 'text' must be a string", i);
        }
        distill__data_sb_put(&sb, t->str, t->len);
    }
    if (sb.oom || distill__data_conv_own(a->conv, sb.s) != 0) {
        DISTILL_FREE(sb.s);
        return distill__data_field_err(a->err, a->name, v, field, "out of memory");
    }
    *out = sb.s;
    *out_len = sb.n;
    return 0;
}

static int distill__data_string_field(distill__data_adapt *a, const distill_json *v, const char *field, int required,
                                 const char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (!v || (!required && v->type == DISTILL_JSON_NULL)) {
        if (required) return distill__data_field_err(a->err, a->name, a->row, field, "missing");
        return 0;
    }
    if (v->type != DISTILL_JSON_STRING)
        return distill__data_field_err(a->err, a->name, v, field, "expected a string, got %s", distill_json_type_name(v->type));
    *out = v->str;
    *out_len = v->len;
    return 0;
}

/* Add a turn. Assistant turns get their reasoning (if any) wrapped as
   "<think>\n" reasoning "\n</think>\n\n" before the answer, and, when asked, other reasoning
   markers rewritten to <think>...</think>. */
static int distill__data_add_turn(distill__data_adapt *a, distill_role role, const char *s, size_t n,
                             const char *think, size_t think_n, float w, const distill_json *at) {
    int need_norm = 0;
    distill__data_sb sb;
    if (role == DISTILL_ROLE_ASSISTANT && a->opt && a->opt->normalize_think &&
        (distill__data_find(s, n, "<|begin_of_thought|>") || distill__data_find(s, n, "<|end_of_thought|>") ||
         distill__data_find(s, n, "<|begin_of_solution|>") || distill__data_find(s, n, "<|end_of_solution|>")))
        need_norm = 1;
    if (!think && !need_norm) {
        if (distill__data_conv_push(a->conv, role, s, n, w) != 0)
            return distill__data_field_err(a->err, a->name, at, NULL, "out of memory");
        return 0;
    }
    memset(&sb, 0, sizeof sb);
    if (think) {
        distill__data_sb_puts(&sb, "<think>\n");
        distill__data_sb_put(&sb, think, think_n);
        distill__data_sb_puts(&sb, "\n</think>\n\n");
    }
    if (!need_norm) {
        distill__data_sb_put(&sb, s, n);
    } else {
        /* OpenThoughts / Bespoke style: <|begin_of_thought|> T <|end_of_thought|>
           <|begin_of_solution|> S <|end_of_solution|>  ->  <think> T </think> S. The solution
           markers go with the whitespace on their inner side. */
        size_t i = 0;
        while (i < n) {
            const char *rest = s + i;
            size_t rn = n - i;
            if (rn >= 20 && memcmp(rest, "<|begin_of_thought|>", 20) == 0) { distill__data_sb_puts(&sb, "<think>"); i += 20; }
            else if (rn >= 18 && memcmp(rest, "<|end_of_thought|>", 18) == 0) { distill__data_sb_puts(&sb, "</think>"); i += 18; }
            else if (rn >= 21 && memcmp(rest, "<|begin_of_solution|>", 21) == 0) {
                i += 21;
                while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
            } else if (rn >= 19 && memcmp(rest, "<|end_of_solution|>", 19) == 0) {
                while (sb.n > 0 && (sb.s[sb.n - 1] == ' ' || sb.s[sb.n - 1] == '\n' || sb.s[sb.n - 1] == '\r' ||
                                    sb.s[sb.n - 1] == '\t'))
                    sb.s[--sb.n] = 0;
                i += 19;
            } else {
                distill__data_sb_put(&sb, rest, 1);
                i++;
            }
        }
    }
    if (sb.oom || !sb.s || distill__data_conv_own(a->conv, sb.s) != 0) {
        DISTILL_FREE(sb.s);
        return distill__data_field_err(a->err, a->name, at, NULL, "out of memory");
    }
    if (distill__data_conv_push(a->conv, role, sb.s, sb.n, w) != 0)
        return distill__data_field_err(a->err, a->name, at, NULL, "out of memory");
    return 0;
}

static int distill__data_role_parse(const char *r, distill_role *out) {
    static const struct { const char *name; distill_role role; } roles[] = {
        {"system", DISTILL_ROLE_SYSTEM}, {"developer", DISTILL_ROLE_SYSTEM},
        {"user", DISTILL_ROLE_USER}, {"human", DISTILL_ROLE_USER},
        {"assistant", DISTILL_ROLE_ASSISTANT}, {"gpt", DISTILL_ROLE_ASSISTANT},
        {"chatgpt", DISTILL_ROLE_ASSISTANT}, {"model", DISTILL_ROLE_ASSISTANT},
    };
    size_t i;
    for (i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(r, roles[i].name)) { *out = roles[i].role; return 0; }
    return -1;
}

/* A list of turns: "messages" ({role, content}) or "conversations" ({from, value}). */
static int distill__data_turns(distill__data_adapt *a, const distill_json *list, const char *field,
                          const char *role_key, const char *content_key) {
    size_t i;
    char path[160];
    if (!list) return distill__data_field_err(a->err, a->name, a->row, field, "missing");
    if (list->type != DISTILL_JSON_ARRAY)
        return distill__data_field_err(a->err, a->name, list, field, "expected an array of turns, got %s",
                                  distill_json_type_name(list->type));
    if (list->len == 0) return distill__data_field_err(a->err, a->name, list, field, "empty conversation");
    for (i = 0; i < list->len; i++) {
        const distill_json *m = &list->items[i], *r, *c, *w, *th = NULL;
        const char *text, *think = NULL;
        size_t text_n, think_n = 0;
        distill_role role;
        float lw = -1.0f;
        if (m->type != DISTILL_JSON_OBJECT) {
            snprintf(path, sizeof path, "%s.%zu", field, i);
            return distill__data_field_err(a->err, a->name, m, path, "expected an object, got %s", distill_json_type_name(m->type));
        }
        r = distill_json_get(m, role_key);
        snprintf(path, sizeof path, "%s.%zu.%s", field, i, role_key);
        if (!r) return distill__data_field_err(a->err, a->name, m, path, "missing");
        if (r->type != DISTILL_JSON_STRING)
            return distill__data_field_err(a->err, a->name, r, path, "expected a string, got %s", distill_json_type_name(r->type));
        if (distill__data_role_parse(r->str, &role) != 0)
            return distill__data_field_err(a->err, a->name, r, path, "unsupported role '%.40s' (use system, user/human, assistant/gpt)", r->str);
        c = distill_json_get(m, content_key);
        snprintf(path, sizeof path, "%s.%zu.%s", field, i, content_key);
        if (!c) return distill__data_field_err(a->err, a->name, m, path, "missing");
        if (distill__data_content(a, c, path, &text, &text_n) != 0) return -1;
        w = distill_json_get(m, "loss_weight");
        if (!w) w = distill_json_get(m, "weight");
        if (w && w->type != DISTILL_JSON_NULL) {
            snprintf(path, sizeof path, "%s.%zu.%s", field, i, distill_json_get(m, "loss_weight") ? "loss_weight" : "weight");
            if (w->type == DISTILL_JSON_NUMBER && w->num >= 0 && w->num <= 1e6) lw = (float)w->num;
            else if (w->type == DISTILL_JSON_TRUE) lw = 1.0f;
            else if (w->type == DISTILL_JSON_FALSE) lw = 0.0f;
            else return distill__data_field_err(a->err, a->name, w, path, "expected a number >= 0");
        }
        if (role == DISTILL_ROLE_ASSISTANT) {
            th = distill_json_get(m, "reasoning_content");
            if (!th) th = distill_json_get(m, "reasoning");
            if (!th) th = distill_json_get(m, "thinking");
            if (th && th->type == DISTILL_JSON_STRING && th->len > 0) { think = th->str; think_n = th->len; }
            else if (th && th->type != DISTILL_JSON_NULL && th->type != DISTILL_JSON_STRING) {
                snprintf(path, sizeof path, "%s.%zu.reasoning", field, i);
                return distill__data_field_err(a->err, a->name, th, path, "expected a string, got %s", distill_json_type_name(th->type));
            }
        }
        if (distill__data_add_turn(a, role, text, text_n, think, think_n, lw, m) != 0) return -1;
    }
    return 0;
}

static distill_data_format distill__data_detect(const distill_json *row) {
    if (distill_json_get(row, "messages")) return DISTILL_FORMAT_MESSAGES;
    if (distill_json_get(row, "conversations")) return DISTILL_FORMAT_CONVERSATIONS;
    if (distill_json_get(row, "prompt") && distill_json_get(row, "completion")) return DISTILL_FORMAT_PROMPT_COMPLETION;
    if (distill_json_get(row, "instruction") && distill_json_get(row, "output")) return DISTILL_FORMAT_ALPACA;
    if (distill_json_get(row, "text")) return DISTILL_FORMAT_TEXT;
    return DISTILL_FORMAT_AUTO;
}

/* prompt or completion of TRL's format: a string, or a list of messages. */
static int distill__data_pc_side(distill__data_adapt *a, const char *field, distill_role role) {
    const distill_json *v = distill_json_get(a->row, field);
    const char *s;
    size_t n;
    if (v && v->type == DISTILL_JSON_ARRAY) return distill__data_turns(a, v, field, "role", "content");
    if (distill__data_string_field(a, v, field, 1, &s, &n) != 0) return -1;
    return distill__data_add_turn(a, role, s, n, NULL, 0, -1.0f, v);
}

static int distill__data_system_field(distill__data_adapt *a, const char *field) {
    const char *s;
    size_t n;
    if (distill__data_string_field(a, distill_json_get(a->row, field), field, 0, &s, &n) != 0) return -1;
    if (s && n) return distill__data_add_turn(a, DISTILL_ROLE_SYSTEM, s, n, NULL, 0, -1.0f, a->row);
    return 0;
}

static int distill__data_alpaca(distill__data_adapt *a) {
    const distill_json *h = distill_json_get(a->row, "history");
    const char *ins, *inp, *out;
    size_t ins_n, inp_n, out_n, i;
    if (distill__data_system_field(a, "system") != 0) return -1;
    /* LLaMA-Factory's optional history: [[user, assistant], ...] before the instruction */
    if (h && h->type == DISTILL_JSON_ARRAY) {
        for (i = 0; i < h->len; i++) {
            const distill_json *pair = &h->items[i];
            if (pair->type != DISTILL_JSON_ARRAY || pair->len != 2 || pair->items[0].type != DISTILL_JSON_STRING ||
                pair->items[1].type != DISTILL_JSON_STRING)
                return distill__data_field_err(a->err, a->name, pair, "history", "item %zu: expected [user, assistant] strings", i);
            if (distill__data_add_turn(a, DISTILL_ROLE_USER, pair->items[0].str, pair->items[0].len, NULL, 0, -1.0f, pair) != 0 ||
                distill__data_add_turn(a, DISTILL_ROLE_ASSISTANT, pair->items[1].str, pair->items[1].len, NULL, 0, -1.0f, pair) != 0)
                return -1;
        }
    } else if (h && h->type != DISTILL_JSON_NULL) {
        return distill__data_field_err(a->err, a->name, h, "history", "expected an array, got %s", distill_json_type_name(h->type));
    }
    if (distill__data_string_field(a, distill_json_get(a->row, "instruction"), "instruction", 1, &ins, &ins_n) != 0 ||
        distill__data_string_field(a, distill_json_get(a->row, "input"), "input", 0, &inp, &inp_n) != 0 ||
        distill__data_string_field(a, distill_json_get(a->row, "output"), "output", 1, &out, &out_n) != 0)
        return -1;
    if (inp && inp_n) {
        /* instruction + blank line + input, as in the Alpaca prompt */
        distill__data_sb sb;
        memset(&sb, 0, sizeof sb);
        distill__data_sb_put(&sb, ins, ins_n);
        distill__data_sb_puts(&sb, "\n\n");
        distill__data_sb_put(&sb, inp, inp_n);
        if (sb.oom || distill__data_conv_own(a->conv, sb.s) != 0) {
            DISTILL_FREE(sb.s);
            return distill__data_field_err(a->err, a->name, a->row, NULL, "out of memory");
        }
        if (distill__data_add_turn(a, DISTILL_ROLE_USER, sb.s, sb.n, NULL, 0, -1.0f, a->row) != 0) return -1;
    } else if (distill__data_add_turn(a, DISTILL_ROLE_USER, ins, ins_n, NULL, 0, -1.0f, a->row) != 0) {
        return -1;
    }
    return distill__data_add_turn(a, DISTILL_ROLE_ASSISTANT, out, out_n, NULL, 0, -1.0f, a->row);
}

/* --map src=dst: find the source path mapped to dst (the last one given wins). */
static const char *distill__data_mapped(const distill_data_options *o, const char *dst, size_t *src_len) {
    int i;
    const char *found = NULL;
    for (i = 0; o && i < o->n_map; i++) {
        const char *m = o->map[i], *eq = m ? strchr(m, '=') : NULL;
        if (eq && !strcmp(eq + 1, dst)) { found = m; *src_len = (size_t)(eq - m); }
    }
    return found;
}

static const distill_json *distill__data_mapped_value(distill__data_adapt *a, const char *dst, char *path, size_t cap) {
    size_t n = 0;
    const char *src = distill__data_mapped(a->opt, dst, &n);
    if (!src) return NULL;
    if (n >= cap) n = cap - 1;
    memcpy(path, src, n);
    path[n] = 0;
    return distill_json_path(a->row, path);
}

static int distill__data_map_check(const distill_data_options *o, distill_error *err) {
    static const char *const dsts[] = {"prompt", "response", "completion", "think", "system", "messages", "conversations", "text"};
    int i;
    size_t k;
    for (i = 0; o && i < o->n_map; i++) {
        const char *eq = o->map[i] ? strchr(o->map[i], '=') : NULL;
        int ok = 0;
        if (!eq || eq == o->map[i]) return distill__err(err, "--map '%s': expected SRC=DST", o->map[i] ? o->map[i] : "(null)");
        for (k = 0; k < sizeof dsts / sizeof dsts[0]; k++) if (!strcmp(eq + 1, dsts[k])) ok = 1;
        if (!ok)
            return distill__err(err, "--map '%s': unknown target '%s' (prompt, response, think, system, messages, conversations, text)",
                                o->map[i], eq + 1);
    }
    return 0;
}

/* A source value for target dst: the mapped path when there is one, else the field named
   `fallback` (NULL: none). `path` receives the field name for messages. */
static const distill_json *distill__data_source(distill__data_adapt *a, const char *dst, const char *fallback,
                                           char *path, size_t cap, int *mapped) {
    size_t n = 0;
    *mapped = distill__data_mapped(a->opt, dst, &n) != NULL;
    if (*mapped) return distill__data_mapped_value(a, dst, path, cap);
    snprintf(path, cap, "%s", fallback ? fallback : dst);
    return fallback ? distill_json_get(a->row, fallback) : NULL;
}

static int distill__data_adapt_mapped(distill__data_adapt *a) {
    char path[128];
    const distill_json *v;
    const char *p, *r, *t = NULL;
    size_t pn, rn, tn = 0;
    int m;
    v = distill__data_source(a, "messages", NULL, path, sizeof path, &m);
    if (m) return distill__data_turns(a, v, path, "role", "content");
    v = distill__data_source(a, "conversations", NULL, path, sizeof path, &m);
    if (m) return distill__data_turns(a, v, path, "from", "value");
    v = distill__data_source(a, "text", NULL, path, sizeof path, &m);
    if (m) {
        if (distill__data_string_field(a, v, path, 1, &p, &pn) != 0) return -1;
        return distill__data_add_turn(a, DISTILL_ROLE_TEXT, p, pn, NULL, 0, -1.0f, v);
    }
    v = distill__data_source(a, "system", "system", path, sizeof path, &m);
    if (distill__data_string_field(a, v, path, 0, &p, &pn) != 0) return -1;
    if (p && pn && distill__data_add_turn(a, DISTILL_ROLE_SYSTEM, p, pn, NULL, 0, -1.0f, v) != 0) return -1;
    v = distill__data_source(a, "prompt", "prompt", path, sizeof path, &m);
    if (distill__data_content(a, v, path, &p, &pn) != 0) return -1;
    if (distill__data_add_turn(a, DISTILL_ROLE_USER, p, pn, NULL, 0, -1.0f, v) != 0) return -1;
    v = distill__data_source(a, "think", NULL, path, sizeof path, &m);
    if (m) {
        if (distill__data_string_field(a, v, path, 0, &t, &tn) != 0) return -1;
        if (t && tn == 0) t = NULL;
    }
    v = distill__data_source(a, "completion", NULL, path, sizeof path, &m);
    if (!m) v = distill__data_source(a, "response", "response", path, sizeof path, &m);
    if (distill__data_content(a, v, path, &r, &rn) != 0) return -1;
    return distill__data_add_turn(a, DISTILL_ROLE_ASSISTANT, r, rn, t, tn, -1.0f, v ? v : a->row);
}

DISTILL_API int distill_conv_from_json(const distill_json *row, const distill_data_options *opt,
                                       distill_data_format *format, const char *name,
                                       distill_conv *out, distill_error *err) {
    distill__data_adapt a;
    distill_data_format f = opt ? opt->format : DISTILL_FORMAT_AUTO;
    int rc = -1;
    a.opt = opt;
    a.name = name;
    a.row = row;
    a.err = err;
    a.conv = out;
    if (!row || row->type != DISTILL_JSON_OBJECT)
        return distill__data_field_err(err, name, row, NULL, "expected a JSON object per record, got %s",
                                  row ? distill_json_type_name(row->type) : "nothing");
    if (opt && opt->n_map > 0) {
        if (distill__data_map_check(opt, err) != 0) return -1;
        if (f == DISTILL_FORMAT_AUTO) f = DISTILL_FORMAT_MAPPED;
    }
    if (f == DISTILL_FORMAT_AUTO) {
        f = distill__data_detect(row);
        if (f == DISTILL_FORMAT_AUTO) {
            char keys[200];
            size_t k, used = 0;
            keys[0] = 0;
            for (k = 0; k < row->len && used + 40 < sizeof keys; k++)
                used += (size_t)snprintf(keys + used, sizeof keys - used, "%s'%.30s'", k ? ", " : "", row->keys[k]);
            return distill__data_field_err(err, name, row, NULL,
                                      "cannot detect the format from the keys (%s): expected messages, conversations, "
                                      "prompt+completion, instruction+output or text; use --format or --map", keys);
        }
    }
    if (format) *format = f;
    switch (f) {
    case DISTILL_FORMAT_MESSAGES: rc = distill__data_turns(&a, distill_json_get(row, "messages"), "messages", "role", "content"); break;
    case DISTILL_FORMAT_CONVERSATIONS: rc = distill__data_turns(&a, distill_json_get(row, "conversations"), "conversations", "from", "value"); break;
    case DISTILL_FORMAT_PROMPT_COMPLETION:
        rc = distill__data_system_field(&a, "system");
        if (rc == 0) rc = distill__data_pc_side(&a, "prompt", DISTILL_ROLE_USER);
        if (rc == 0) rc = distill__data_pc_side(&a, "completion", DISTILL_ROLE_ASSISTANT);
        break;
    case DISTILL_FORMAT_ALPACA: rc = distill__data_alpaca(&a); break;
    case DISTILL_FORMAT_TEXT: {
        const char *s;
        size_t n;
        rc = distill__data_string_field(&a, distill_json_get(row, "text"), "text", 1, &s, &n);
        if (rc == 0) rc = distill__data_add_turn(&a, DISTILL_ROLE_TEXT, s, n, NULL, 0, -1.0f, row);
        break;
    }
    case DISTILL_FORMAT_MAPPED: rc = distill__data_adapt_mapped(&a); break;
    default: rc = distill__err(err, "%s: unknown format %d", name ? name : "<data>", (int)f);
    }
    return rc != 0 ? -1 : 0;
}

/* ---- filters ------------------------------------------------------------------------------ */
/* "FIELD OP VALUE": compiled once into a path, an operator and a small JSON array of values. */
enum { DISTILL__OP_EQ, DISTILL__OP_NE, DISTILL__OP_LT, DISTILL__OP_LE, DISTILL__OP_GT, DISTILL__OP_GE, DISTILL__OP_IN };
typedef struct distill__data_filter {
    char *path;
    int op;
    distill_json *values;     /* an array; one item except for `in` */
} distill__data_filter;

static void distill__data_filter_free(distill__data_filter *f) {
    DISTILL_FREE(f->path);
    distill_json_free(f->values);
    f->path = NULL;
    f->values = NULL;
}

/* One element of a value: a JSON scalar as written, or a bare word taken as a string. */
static void distill__data_filter_elem(distill__data_sb *sb, const char *s, size_t n) {
    distill_json *j;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    while (n && (*s == ' ' || *s == '\t')) { s++; n--; }
    j = distill_json_parse(s, n, "filter", 1, NULL);
    if (j && j->type != DISTILL_JSON_ARRAY && j->type != DISTILL_JSON_OBJECT) {
        distill__data_sb_put(sb, s, n);
    } else {
        size_t i;
        distill__data_sb_puts(sb, "\"");
        for (i = 0; i < n; i++) {
            if (s[i] == '"' || s[i] == '\\') distill__data_sb_puts(sb, "\\");
            distill__data_sb_put(sb, s + i, 1);
        }
        distill__data_sb_puts(sb, "\"");
    }
    distill_json_free(j);
}

static int distill__data_filter_compile(const char *expr, distill__data_filter *f, distill_error *err) {
    static const char *const ops[] = {"==", "!=", "<=", ">=", "<", ">", " in "};
    static const int opv[] = {DISTILL__OP_EQ, DISTILL__OP_NE, DISTILL__OP_LE, DISTILL__OP_GE, DISTILL__OP_LT, DISTILL__OP_GT, DISTILL__OP_IN};
    const char *best = NULL, *val, *fe;
    size_t i, bl = 0, pn;
    distill__data_sb sb;
    distill_error jerr;
    memset(f, 0, sizeof *f);
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        const char *p = strstr(expr, ops[i]);
        if (p && (!best || p < best)) { best = p; bl = strlen(ops[i]); f->op = opv[i]; }
    }
    if (!best) return distill__err(err, "filter '%s': expected FIELD OP VALUE with OP one of == != < <= > >= in", expr);
    fe = best;
    while (fe > expr && (fe[-1] == ' ' || fe[-1] == '\t')) fe--;
    while (*expr == ' ' || *expr == '\t') expr++;
    if (fe <= expr) return distill__err(err, "filter '%s': missing field name", expr);
    pn = (size_t)(fe - expr);
    f->path = (char *)DISTILL_MALLOC(pn + 1);
    if (!f->path) return distill__err(err, "out of memory");
    memcpy(f->path, expr, pn);
    f->path[pn] = 0;
    val = best + bl;
    while (*val == ' ' || *val == '\t') val++;
    memset(&sb, 0, sizeof sb);
    distill__data_sb_puts(&sb, "[");
    if (f->op == DISTILL__OP_IN) {
        size_t vn = strlen(val);
        const char *s;
        while (vn && (val[vn - 1] == ' ' || val[vn - 1] == '\t')) vn--;
        if (vn < 2 || !((val[0] == '{' && val[vn - 1] == '}') || (val[0] == '[' && val[vn - 1] == ']'))) {
            DISTILL_FREE(sb.s);
            distill__data_filter_free(f);
            return distill__err(err, "filter '%s': 'in' takes a set {A, B} or [A, B]", expr);
        }
        s = val + 1;
        vn -= 2;
        /* split at commas outside quotes */
        while (vn > 0 || s == val + 1) {
            size_t k = 0;
            int q = 0;
            while (k < vn && (q || s[k] != ',')) {
                if (s[k] == '"' && (k == 0 || s[k - 1] != '\\')) q = !q;
                k++;
            }
            if (sb.n > 1) distill__data_sb_puts(&sb, ",");
            distill__data_filter_elem(&sb, s, k);
            if (k >= vn) break;
            s += k + 1;
            vn -= k + 1;
        }
    } else {
        distill__data_filter_elem(&sb, val, strlen(val));
    }
    distill__data_sb_puts(&sb, "]");
    if (sb.oom) { DISTILL_FREE(sb.s); distill__data_filter_free(f); return distill__err(err, "out of memory"); }
    f->values = distill_json_parse(sb.s, sb.n, "filter", 1, &jerr);
    DISTILL_FREE(sb.s);
    if (!f->values) { distill__data_filter_free(f); return distill__err(err, "filter '%s': bad value (%s)", expr, jerr.msg); }
    return 0;
}

/* -1, 0, 1 for ordered comparison, 2 when the values are not comparable. */
static int distill__data_json_cmp(const distill_json *a, const distill_json *b) {
    if (a->type == DISTILL_JSON_NUMBER && b->type == DISTILL_JSON_NUMBER) {
        if (a->is_int && b->is_int) return a->i64 < b->i64 ? -1 : a->i64 > b->i64;
        return a->num < b->num ? -1 : a->num > b->num ? 1 : a->num == b->num ? 0 : 2;
    }
    if (a->type == DISTILL_JSON_STRING && b->type == DISTILL_JSON_STRING) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->str, b->str, n);
        if (c) return c < 0 ? -1 : 1;
        return a->len < b->len ? -1 : a->len > b->len;
    }
    if (a->type == b->type && (a->type == DISTILL_JSON_NULL || a->type == DISTILL_JSON_TRUE || a->type == DISTILL_JSON_FALSE))
        return 0;
    return 2;
}

static int distill__data_filter_match(const distill__data_filter *f, const distill_json *row) {
    const distill_json *v = distill_json_path(row, f->path);
    size_t i;
    int c;
    if (!v) return 0;
    if (f->op == DISTILL__OP_IN) {
        for (i = 0; i < f->values->len; i++)
            if (distill__data_json_cmp(v, &f->values->items[i]) == 0) return 1;
        return 0;
    }
    c = distill__data_json_cmp(v, &f->values->items[0]);
    switch (f->op) {
    case DISTILL__OP_EQ: return c == 0;
    case DISTILL__OP_NE: return c != 0;        /* incomparable types count as different */
    case DISTILL__OP_LT: return c == -1;
    case DISTILL__OP_LE: return c == -1 || c == 0;
    case DISTILL__OP_GT: return c == 1;
    case DISTILL__OP_GE: return c == 1 || c == 0;
    }
    return 0;
}

DISTILL_API int distill_data_filter_match(const distill_json *row, const char *expr, distill_error *err) {
    distill__data_filter f;
    int m;
    if (distill__data_filter_compile(expr, &f, err) != 0) return -1;
    m = distill__data_filter_match(&f, row);
    distill__data_filter_free(&f);
    return m;
}

/* ---- chat templates ----------------------------------------------------------------------- */
static const distill_chat_template distill__data_templates[] = {
    {"chatml", "", {"<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"},
     "<|im_end|>", "\n", NULL, ""},
    {"chatml-prefill", "", {"<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"},
     "<|im_end|>", "\n", NULL, "<think>\n"},
    {"plain", "", {"System:\n", "User:\n", "Assistant:\n"}, "<|endoftext|>", "\n\n", NULL, ""},
};

DISTILL_API const distill_chat_template *distill_chat_template_get(const char *name) {
    size_t i;
    if (!name) name = "chatml";
    for (i = 0; i < sizeof distill__data_templates / sizeof distill__data_templates[0]; i++)
        if (!strcmp(name, distill__data_templates[i].name)) return &distill__data_templates[i];
    return NULL;
}

/* The one walk over a conversation that both training rows and generation prompts come from.
   It emits pieces of text, each with the loss weight of its tokens:
       bos, [default system turn], for each turn: prefix(0) content(w) end_of_turn(w) sep(0),
       [generation prompt: assistant prefix(0) + gen_prefill(0)]
   where w is the turn's weight when it is supervised and 0 otherwise. */
typedef int (*distill__data_emit_fn)(void *ctx, const char *s, size_t n, float w, int is_content);

static int distill__data_walk(const distill_chat_template *t, const distill_conv *c, distill_loss_mode mode,
                              int add_gen, distill__data_emit_fn emit, void *ctx) {
    int i, last_asst = -1;
    float all = mode == DISTILL_LOSS_ALL ? 1.0f : 0.0f;   /* weight of template text */
    const char *prefill = t->gen_prefill ? t->gen_prefill : "";
    size_t pn = strlen(prefill);
    for (i = 0; i < c->n; i++) if (c->msgs[i].role == DISTILL_ROLE_ASSISTANT) last_asst = i;
    if (t->bos && t->bos[0] && emit(ctx, t->bos, strlen(t->bos), all, 0) != 0) return -1;
    if (t->default_system && (c->n == 0 || c->msgs[0].role != DISTILL_ROLE_SYSTEM)) {
        const char *p = t->role_prefix[DISTILL_ROLE_SYSTEM];
        if (emit(ctx, p, strlen(p), all, 0) || emit(ctx, t->default_system, strlen(t->default_system), all, 1) ||
            emit(ctx, t->end_of_turn, strlen(t->end_of_turn), all, 0) || emit(ctx, t->turn_sep, strlen(t->turn_sep), all, 0))
            return -1;
    }
    for (i = 0; i < c->n; i++) {
        const distill_message *m = &c->msgs[i];
        float lw = m->loss_weight < 0 ? 1.0f : m->loss_weight, w = all;
        const char *s = m->content;
        size_t n = m->len;
        if (m->role == DISTILL_ROLE_TEXT) {      /* raw text: no template, always supervised */
            if (emit(ctx, s, n, lw, 1) != 0) return -1;
            continue;
        }
        if (m->role == DISTILL_ROLE_ASSISTANT && (mode == DISTILL_LOSS_ASSISTANT || i == last_asst)) w = lw;
        if (mode == DISTILL_LOSS_ALL) w = lw;
        if (emit(ctx, t->role_prefix[m->role], strlen(t->role_prefix[m->role]), all, 0) != 0) return -1;
        if (m->role == DISTILL_ROLE_ASSISTANT && pn && n >= pn && memcmp(s, prefill, pn) == 0) {
            /* the pre-filled opening is part of the prompt at generation time: not a target */
            if (emit(ctx, prefill, pn, all, 0) != 0) return -1;
            s += pn;
            n -= pn;
        }
        if (emit(ctx, s, n, m->role == DISTILL_ROLE_ASSISTANT ? w : all, 1) != 0 ||
            emit(ctx, t->end_of_turn, strlen(t->end_of_turn), m->role == DISTILL_ROLE_ASSISTANT ? w : all, 0) != 0 ||
            emit(ctx, t->turn_sep, strlen(t->turn_sep), all, 0) != 0)
            return -1;
    }
    if (add_gen) {
        const char *p = t->role_prefix[DISTILL_ROLE_ASSISTANT];
        if (emit(ctx, p, strlen(p), 0, 0) != 0 || (pn && emit(ctx, prefill, pn, 0, 0) != 0)) return -1;
    }
    return 0;
}

static int distill__data_emit_text(void *ctx, const char *s, size_t n, float w, int is_content) {
    (void)w;
    (void)is_content;
    distill__data_sb_put((distill__data_sb *)ctx, s, n);
    return ((distill__data_sb *)ctx)->oom ? -1 : 0;
}

DISTILL_API char *distill_chat_render(const distill_chat_template *tmpl, const distill_conv *conv,
                                      int add_generation_prompt, size_t *len) {
    distill__data_sb sb;
    memset(&sb, 0, sizeof sb);
    if (!tmpl) tmpl = distill_chat_template_get(NULL);
    distill__data_sb_put(&sb, "", 0);
    if (distill__data_walk(tmpl, conv, DISTILL_LOSS_ASSISTANT, add_generation_prompt, distill__data_emit_text, &sb) != 0 ||
        sb.oom) {
        DISTILL_FREE(sb.s);
        return NULL;
    }
    if (len) *len = sb.n;
    return sb.s;
}

DISTILL_API void distill_floats_free(distill_floats *a) {
    if (!a) return;
    DISTILL_FREE(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

static int distill__data_floats_push(distill_floats *a, float x, size_t count) {
    if (a->cap - a->n < count) {
        size_t nc = a->cap ? a->cap : 256, bytes;
        float *nv;
        while (nc - a->n < count) { if (nc > SIZE_MAX / 4) return -1; nc *= 2; }
        if (!distill__mul_size(nc, sizeof(float), &bytes)) return -1;
        nv = (float *)DISTILL_REALLOC(a->v, bytes);
        if (!nv) return -1;
        a->v = nv;
        a->cap = nc;
    }
    while (count--) a->v[a->n++] = x;
    return 0;
}

typedef struct distill__data_enc {
    const distill_tokenizer *tok;
    distill_ids *ids;
    distill_floats *weights;
    distill_error *err;
    int64_t think_end;      /* tokens needed to include the last "</think>" of a target (-1: none) */
    int has_think;
} distill__data_enc;

static int distill__data_emit_ids(void *ctx, const char *s, size_t n, float w, int is_content) {
    distill__data_enc *e = (distill__data_enc *)ctx;
    size_t before = e->ids->n;
    if (n == 0) return 0;
    if (distill_tokenizer_encode(e->tok, s, n, 1, e->ids, e->err) != 0) return -1;
    if (e->weights && distill__data_floats_push(e->weights, w, e->ids->n - before) != 0)
        return distill__err(e->err, "out of memory");
    if (is_content && w > 0) {
        const char *open = distill__data_find(s, n, "<think>");
        const char *close = distill__data_find_last(s, n, "</think>");
        if (open) e->has_think = 1;
        if (close) {
            /* the token holding the last byte of "</think>": walk the token byte lengths */
            size_t target = (size_t)(close - s) + 8, acc = 0, i;
            for (i = before; i < e->ids->n; i++) {
                size_t bl = 0;
                distill_tokenizer_token_bytes(e->tok, e->ids->ids[i], &bl);
                acc += bl;
                if (acc >= target) break;
            }
            e->think_end = (int64_t)(i < e->ids->n ? i + 1 : e->ids->n);
        }
    }
    return 0;
}

DISTILL_API int distill_chat_encode(const distill_chat_template *tmpl, const distill_tokenizer *tok,
                                    const distill_conv *conv, distill_loss_mode mode,
                                    int add_generation_prompt, distill_ids *ids,
                                    distill_floats *weights, distill_error *err) {
    distill__data_enc e;
    if (!tmpl) tmpl = distill_chat_template_get(NULL);
    if (!tok) return distill__err(err, "distill_chat_encode: no tokenizer");
    memset(&e, 0, sizeof e);
    e.tok = tok;
    e.ids = ids;
    e.weights = weights;
    e.err = err;
    e.think_end = -1;
    return distill__data_walk(tmpl, conv, add_generation_prompt ? DISTILL_LOSS_ASSISTANT : mode, add_generation_prompt,
                              distill__data_emit_ids, &e);
}

static int distill__data_prompt_conv(distill_conv *c, const char *system, const char *user) {
    memset(c, 0, sizeof *c);
    if (system && distill__data_conv_push(c, DISTILL_ROLE_SYSTEM, system, strlen(system), -1.0f) != 0) return -1;
    return distill__data_conv_push(c, DISTILL_ROLE_USER, user ? user : "", user ? strlen(user) : 0, -1.0f);
}

DISTILL_API int distill_chat_prompt_ids(const distill_chat_template *tmpl, const distill_tokenizer *tok,
                                        const char *system, const char *user, distill_ids *ids,
                                        distill_error *err) {
    distill_conv c;
    int rc;
    if (distill__data_prompt_conv(&c, system, user) != 0) { distill_conv_free(&c); return distill__err(err, "out of memory"); }
    rc = distill_chat_encode(tmpl, tok, &c, DISTILL_LOSS_ASSISTANT, 1, ids, NULL, err);
    distill_conv_free(&c);
    return rc;
}

DISTILL_API char *distill_chat_render_prompt(const distill_chat_template *tmpl, const char *system,
                                             const char *user, size_t *len) {
    distill_conv c;
    char *s = NULL;
    if (distill__data_prompt_conv(&c, system, user) == 0) s = distill_chat_render(tmpl, &c, 1, len);
    distill_conv_free(&c);
    return s;
}

DISTILL_API int32_t distill_chat_eot_id(const distill_chat_template *tmpl, const distill_tokenizer *tok) {
    if (!tmpl) tmpl = distill_chat_template_get(NULL);
    return distill_tokenizer_token_id(tok, tmpl->end_of_turn);
}

/* ---- datasets ------------------------------------------------------------------------------ */
/* Rows point into one pool of token ids and weights; subsets made by distill_dataset_select
   share the pool (reference counted, not thread-safe: create and free datasets from one thread). */
typedef struct distill__data_pool {
    int refs;
    int32_t *tokens;
    float *weights;
    size_t n, cap;
} distill__data_pool;

typedef struct distill__data_row {
    size_t off;
    int32_t n, n_sup;
    int64_t id, line;
    int32_t flags;
} distill__data_row;

struct distill_dataset {
    distill__data_pool *pool;
    distill__data_row *rows;
    int64_t n_rows, cap_rows;
    distill_data_stats stats;
    int has_tokens;
};

static void distill__data_pool_release(distill__data_pool *p) {
    if (!p || --p->refs > 0) return;
    DISTILL_FREE(p->tokens);
    DISTILL_FREE(p->weights);
    DISTILL_FREE(p);
}

DISTILL_API void distill_dataset_free(distill_dataset *ds) {
    if (!ds) return;
    distill__data_pool_release(ds->pool);
    DISTILL_FREE(ds->rows);
    DISTILL_FREE(ds);
}

DISTILL_API int64_t distill_dataset_size(const distill_dataset *ds) { return ds ? ds->n_rows : 0; }

DISTILL_API int distill_dataset_row(const distill_dataset *ds, int64_t i, distill_row *row) {
    const distill__data_row *r;
    if (!ds || i < 0 || i >= ds->n_rows) return -1;
    r = &ds->rows[i];
    row->tokens = ds->pool->tokens ? ds->pool->tokens + r->off : NULL;
    row->weights = ds->pool->weights ? ds->pool->weights + r->off : NULL;
    row->n = r->n;
    row->n_supervised = r->n_sup;
    row->id = r->id;
    row->line = r->line;
    row->flags = r->flags;
    return 0;
}

DISTILL_API const distill_data_stats *distill_dataset_stats(const distill_dataset *ds) { return &ds->stats; }

static int distill__data_add_row(distill_dataset *ds, const distill__data_row *r) {
    if (ds->n_rows == ds->cap_rows) {
        int64_t nc = ds->cap_rows ? ds->cap_rows * 2 : 1024;
        size_t bytes;
        distill__data_row *nr;
        if (!distill__mul_size((size_t)nc, sizeof *nr, &bytes)) return -1;
        nr = (distill__data_row *)DISTILL_REALLOC(ds->rows, bytes);
        if (!nr) return -1;
        ds->rows = nr;
        ds->cap_rows = nc;
    }
    ds->rows[ds->n_rows++] = *r;
    return 0;
}

static int distill__data_pool_append(distill__data_pool *p, const int32_t *ids, const float *w, size_t n) {
    if (p->cap - p->n < n) {
        size_t nc = p->cap ? p->cap : ((size_t)1 << 16), bt, bw;
        int32_t *nt;
        float *nw;
        while (nc - p->n < n) { if (nc > SIZE_MAX / 8) return -1; nc *= 2; }
        if (!distill__mul_size(nc, sizeof(int32_t), &bt) || !distill__mul_size(nc, sizeof(float), &bw)) return -1;
        nt = (int32_t *)DISTILL_REALLOC(p->tokens, bt);
        if (!nt) return -1;
        p->tokens = nt;
        nw = (float *)DISTILL_REALLOC(p->weights, bw);
        if (!nw) return -1;
        p->weights = nw;
        p->cap = nc;
    }
    memcpy(p->tokens + p->n, ids, n * sizeof(int32_t));
    memcpy(p->weights + p->n, w, n * sizeof(float));
    p->n += n;
    return 0;
}

/* Load state shared by the JSONL and the .json-array paths. Records go through in batches:
     A. serially, in file order: parse, filters, schema adapter -> conversation;
     B. in parallel on the thread pool: chat template + tokenizer -> ids and weights (the
        tokenizer is the expensive part, and it is thread-safe);
     C. serially, in file order: length policy, checks, stats, append to the dataset.
   File order in A and C makes the result (and the first error under the strict policy)
   independent of the number of threads. */
#define DISTILL__DATA_BATCH 256
#define DISTILL__DATA_BATCH_BYTES ((size_t)32 << 20)

typedef struct distill__data_job {
    distill_json *doc;           /* owned (JSONL line) or NULL (item of a .json array) */
    const distill_json *rec;
    int64_t line;
    int status;                  /* 0 ok, 1 filtered, -1 error (err) */
    distill_conv conv;
    distill_ids ids;
    distill_floats w;
    int64_t think_end;
    int flags;
    distill_error err;
} distill__data_job;

typedef struct distill__data_load {
    distill_dataset *ds;
    distill_data_options opt;
    const distill_tokenizer *tok;
    const char *path;
    distill__data_filter *filters;
    distill_ids eot;
    distill_data_format format;      /* resolved on the first record */
    distill__data_job *jobs;
    int n_jobs;
    int stop;                        /* max_rows reached */
} distill__data_load;

/* A: one record into a job (the record is a parsed JSON value, or NULL with a parse error). */
static void distill__data_prepare(distill__data_load *L, distill__data_job *J) {
    distill_data_options o = L->opt;
    int i, has_target = 0;
    J->status = 0;
    J->flags = 0;
    J->think_end = -1;
    if (!J->rec) { J->status = -1; return; }
    for (i = 0; i < o.n_filters; i++)
        if (!distill__data_filter_match(&L->filters[i], J->rec)) { J->status = 1; return; }
    o.format = L->format;
    if (distill_conv_from_json(J->rec, &o, L->format == DISTILL_FORMAT_AUTO ? &L->format : NULL, L->path, &J->conv,
                               &J->err) != 0) {
        J->status = -1;
        return;
    }
    for (i = 0; i < J->conv.n; i++)
        if (J->conv.msgs[i].role == DISTILL_ROLE_ASSISTANT || J->conv.msgs[i].role == DISTILL_ROLE_TEXT) {
            has_target = 1;
            if (distill__data_find(J->conv.msgs[i].content, J->conv.msgs[i].len, "<think>")) J->flags |= DISTILL_ROW_THINK;
        }
    if (!has_target) {
        distill__data_field_err(&J->err, L->path, J->rec, NULL, "no assistant turn to learn from");
        J->status = -1;
    }
}

/* B: template + tokenizer, on worker threads. */
static void distill__data_encode_task(void *ctx, int64_t begin, int64_t end, int thread) {
    distill__data_load *L = (distill__data_load *)ctx;
    int64_t k;
    (void)thread;
    for (k = begin; k < end; k++) {
        distill__data_job *J = &L->jobs[k];
        distill__data_enc enc;
        if (J->status != 0) continue;
        memset(&enc, 0, sizeof enc);
        J->ids.n = 0;
        J->w.n = 0;
        enc.tok = L->tok;
        enc.ids = &J->ids;
        enc.weights = &J->w;
        enc.err = &J->err;
        enc.think_end = -1;
        if (distill__data_walk(L->opt.tmpl, &J->conv, L->opt.loss, 0, distill__data_emit_ids, &enc) != 0) J->status = -1;
        else if (J->ids.n > (size_t)INT32_MAX) J->status = distill__err(&J->err, "%s:%lld: row too long", L->path, (long long)J->line);
        J->think_end = enc.think_end;
    }
}

/* C: one encoded job into the dataset (or a counted skip/filter/drop). Returns 0 to go on,
   -1 to stop with err (strict policy, or out of memory). */
static int distill__data_finish(distill__data_load *L, distill__data_job *J, distill_error *err) {
    distill_data_stats *st = &L->ds->stats;
    distill_data_options o = L->opt;
    distill__data_row row;
    int64_t k;
    int rc = J->status;
    st->records++;
    if (rc == 1) { st->filtered++; return 0; }
    memset(&row, 0, sizeof row);
    row.id = st->records - 1;
    row.line = J->line;
    row.flags = J->flags;
    if (rc == 0 && L->tok) {
        size_t n = J->ids.n;
        if (o.max_seq > 0 && n > (size_t)o.max_seq) {
            if (!o.truncate) { st->dropped++; return 0; }
            row.flags |= DISTILL_ROW_TRUNCATED;
            if (J->think_end > o.max_seq) row.flags |= DISTILL_ROW_LOST_THINK;
            n = (size_t)o.max_seq;
        }
        {
            int64_t last_sup = -1;
            row.n = (int32_t)n;
            for (k = 1; k < (int64_t)n; k++)    /* token 0 is never a target */
                if (J->w.v[k] > 0) { row.n_sup++; last_sup = k; }
            if (row.n_sup == 0)
                rc = distill__err(&J->err, "%s:%lld: no supervised token in this row%s", L->path, (long long)J->line,
                                  row.flags & DISTILL_ROW_TRUNCATED ? " after truncation to max_seq" : " (no assistant turn?)");
            /* ends with the end-of-turn token(s): the supervised part's last tokens equal them */
            else if (L->eot.n > 0 && last_sup + 1 >= (int64_t)L->eot.n &&
                     memcmp(J->ids.ids + last_sup + 1 - (int64_t)L->eot.n, L->eot.ids, L->eot.n * sizeof(int32_t)) == 0)
                row.flags |= DISTILL_ROW_EOT;
        }
    }
    if (rc != 0) {
        if (o.policy == DISTILL_POLICY_STRICT) {
            if (err) *err = J->err;
            return -1;
        }
        if (!st->first_error[0]) memcpy(st->first_error, J->err.msg, sizeof st->first_error);
        st->skipped++;
        return 0;
    }
    if (L->tok) {
        int b = 0;
        row.off = L->ds->pool->n;
        if (distill__data_pool_append(L->ds->pool, J->ids.ids, J->w.v, (size_t)row.n) != 0)
            return distill__err(err, "%s: out of memory after %lld rows", L->path, (long long)L->ds->n_rows);
        st->tokens += row.n;
        st->supervised_tokens += row.n_sup;
        if (row.flags & DISTILL_ROW_TRUNCATED) st->truncated++;
        if (row.flags & DISTILL_ROW_LOST_THINK) st->lost_think++;
        if (row.flags & DISTILL_ROW_EOT) st->eot_rows++;
        if (st->rows == 0 || row.n < st->min_len) st->min_len = row.n;
        if (row.n > st->max_len) st->max_len = row.n;
        while (b + 1 < DISTILL_DATA_HIST && ((int64_t)1 << (b + 1)) <= row.n) b++;
        st->hist[b]++;
    }
    if (row.flags & DISTILL_ROW_THINK) st->think_rows++;
    if (distill__data_add_row(L->ds, &row) != 0) return distill__err(err, "%s: out of memory", L->path);
    st->rows++;
    if (L->opt.max_rows > 0 && st->rows >= L->opt.max_rows) L->stop = 1;
    return 0;
}

/* Run phases B and C over the n_jobs prepared jobs, then release their documents. */
static int distill__data_flush(distill__data_load *L, distill_error *err) {
    int i, rc = 0;
    if (L->tok && L->n_jobs > 0) distill_parallel_for(L->n_jobs, 1, distill__data_encode_task, L);
    for (i = 0; i < L->n_jobs; i++) {
        distill__data_job *J = &L->jobs[i];
        if (rc == 0 && !L->stop && distill__data_finish(L, J, err) != 0) rc = -1;
        distill_conv_free(&J->conv);
        distill_json_free(J->doc);
        J->doc = NULL;
        J->rec = NULL;
    }
    L->n_jobs = 0;
    return rc;
}

DISTILL_API distill_dataset *distill_dataset_load(const char *path, const distill_data_options *opt,
                                                  const distill_tokenizer *tok, distill_error *err) {
    distill__data_load L;
    distill_dataset *ds;
    distill_data_stats *st;
    int first = -1, i, ok = 0;
    double t0 = distill_time_seconds(), tj = 0;
    memset(&L, 0, sizeof L);
    L.opt = opt ? *opt : distill_data_options_default();
    L.tok = tok;
    L.path = path;
    if (L.opt.n_map > 0 && distill__data_map_check(&L.opt, err) != 0) return NULL;
    if (L.opt.max_seq < 0) { distill__err(err, "max_seq must be >= 0 (got %d)", L.opt.max_seq); return NULL; }
    if (L.opt.tmpl == NULL) L.opt.tmpl = distill_chat_template_get(NULL);
    L.format = L.opt.n_map > 0 && L.opt.format == DISTILL_FORMAT_AUTO ? DISTILL_FORMAT_MAPPED : L.opt.format;
    ds = (distill_dataset *)DISTILL_MALLOC(sizeof *ds);
    if (!ds) { distill__err(err, "%s: out of memory", path); return NULL; }
    memset(ds, 0, sizeof *ds);
    L.ds = ds;
    st = &ds->stats;
    ds->pool = (distill__data_pool *)DISTILL_MALLOC(sizeof *ds->pool);
    L.jobs = (distill__data_job *)DISTILL_MALLOC(DISTILL__DATA_BATCH * sizeof *L.jobs);
    if (!ds->pool || !L.jobs) { distill__err(err, "%s: out of memory", path); goto done; }
    memset(ds->pool, 0, sizeof *ds->pool);
    memset(L.jobs, 0, DISTILL__DATA_BATCH * sizeof *L.jobs);
    ds->pool->refs = 1;
    ds->has_tokens = tok != NULL;
    if (L.opt.n_filters > 0) {
        L.filters = (distill__data_filter *)DISTILL_MALLOC((size_t)L.opt.n_filters * sizeof *L.filters);
        if (!L.filters) { distill__err(err, "out of memory"); goto done; }
        memset(L.filters, 0, (size_t)L.opt.n_filters * sizeof *L.filters);
        for (i = 0; i < L.opt.n_filters; i++)
            if (distill__data_filter_compile(L.opt.filters[i], &L.filters[i], err) != 0) goto done;
    }
    if (tok && L.opt.tmpl->end_of_turn[0] &&
        distill_tokenizer_encode(tok, L.opt.tmpl->end_of_turn, strlen(L.opt.tmpl->end_of_turn), 1, &L.eot, err) != 0)
        goto done;
    {   /* .json array or JSONL: look at the first byte that is not whitespace (or a BOM) */
        FILE *f = fopen(path, "rb");
        int c;
        if (!f) { distill__err(err, "%s: cannot open: %s", path, strerror(errno)); goto done; }
        while ((c = fgetc(f)) != EOF && (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0xEF || c == 0xBB || c == 0xBF)) {}
        fclose(f);
        first = c;
    }
    if (first == EOF) { distill__err(err, "%s: empty file (no records)", path); goto done; }
    if (first == '[') {
        /* a top-level array (LLaMA-Factory's .json): parse it whole, then one record per item */
        double tp = distill_time_seconds();
        distill_json *doc = distill_json_parse_file(path, err);
        size_t k;
        tj += distill_time_seconds() - tp;
        if (!doc) goto done;
        for (k = 0; k < doc->len && !L.stop; k++) {
            distill__data_job *J = &L.jobs[L.n_jobs++];
            J->rec = &doc->items[k];
            J->line = doc->items[k].line;
            distill__data_prepare(&L, J);
            if (L.n_jobs == DISTILL__DATA_BATCH && distill__data_flush(&L, err) != 0) { distill_json_free(doc); goto done; }
        }
        if (distill__data_flush(&L, err) != 0) { distill_json_free(doc); goto done; }
        st->bytes = (int64_t)0;
        distill_json_free(doc);
    } else {
        distill_line_reader *r = distill_line_reader_open(path, L.opt.max_line, err);
        const char *line;
        size_t len, batch_bytes = 0;
        int64_t no;
        int rc;
        if (!r) goto done;
        for (;;) {
            double tp = distill_time_seconds();
            distill__data_job *J;
            size_t s = 0;
            rc = distill_line_reader_next(r, &line, &len, &no, err);
            if (rc <= 0) { tj += distill_time_seconds() - tp; break; }
            while (s < len && (line[s] == ' ' || line[s] == '\t')) s++;
            if (s == len) { tj += distill_time_seconds() - tp; continue; }     /* blank line */
            J = &L.jobs[L.n_jobs++];
            J->line = no;
            J->doc = distill_json_parse(line, len, path, no > INT_MAX ? INT_MAX : (int)no, &J->err);
            J->rec = J->doc;
            tj += distill_time_seconds() - tp;
            distill__data_prepare(&L, J);
            batch_bytes += len;
            if (L.n_jobs == DISTILL__DATA_BATCH || batch_bytes >= DISTILL__DATA_BATCH_BYTES) {
                batch_bytes = 0;
                if (distill__data_flush(&L, err) != 0) { rc = -1; break; }
                if (L.stop) break;
            }
        }
        if (rc >= 0 && distill__data_flush(&L, err) != 0) rc = -1;
        st->bytes = distill_line_reader_offset(r);
        distill_line_reader_close(r);
        if (rc < 0) goto done;
    }
    st->format = L.format;
    if (st->records == 0) { distill__err(err, "%s: no records (only blank lines)", path); goto done; }
    if (st->rows == 0) {
        distill__err(err, "%s: no usable rows: %lld records, %lld skipped, %lld filtered, %lld dropped (max_seq %d)%s%s",
                     path, (long long)st->records, (long long)st->skipped, (long long)st->filtered,
                     (long long)st->dropped, L.opt.max_seq, st->first_error[0] ? "; first error: " : "", st->first_error);
        goto done;
    }
    ok = 1;
done:
    if (L.jobs) {
        for (i = 0; i < L.n_jobs; i++) { distill_conv_free(&L.jobs[i].conv); distill_json_free(L.jobs[i].doc); }
        for (i = 0; i < DISTILL__DATA_BATCH; i++) { distill_ids_free(&L.jobs[i].ids); distill_floats_free(&L.jobs[i].w); }
        DISTILL_FREE(L.jobs);
    }
    for (i = 0; L.filters && i < L.opt.n_filters; i++) distill__data_filter_free(&L.filters[i]);
    DISTILL_FREE(L.filters);
    distill_ids_free(&L.eot);
    if (!ok) { distill_dataset_free(ds); return NULL; }
    st->seconds = distill_time_seconds() - t0;
    st->json_seconds = tj;
    return ds;
}

DISTILL_API void distill_data_stats_write_json(FILE *f, const distill_data_stats *s, int with_tokens) {
    int b, last = 0;
    fprintf(f, "{\"format\": \"%s\", \"records\": %lld, \"rows\": %lld, \"skipped\": %lld, \"filtered\": %lld, "
               "\"think_rows\": %lld",
            distill_data_format_name(s->format), (long long)s->records, (long long)s->rows, (long long)s->skipped,
            (long long)s->filtered, (long long)s->think_rows);
    if (with_tokens) {
        fprintf(f, ", \"tokens\": %lld, \"supervised_tokens\": %lld, \"dropped\": %lld, \"truncated\": %lld, "
                   "\"lost_think\": %lld, \"eot_rows\": %lld, \"think_share\": %.4f, \"eot_share\": %.4f, "
                   "\"min_len\": %lld, \"max_len\": %lld, \"mean_len\": %.1f, \"length_hist\": {",
                (long long)s->tokens, (long long)s->supervised_tokens, (long long)s->dropped, (long long)s->truncated,
                (long long)s->lost_think, (long long)s->eot_rows,
                s->rows ? (double)s->think_rows / (double)s->rows : 0.0, s->rows ? (double)s->eot_rows / (double)s->rows : 0.0,
                (long long)s->min_len, (long long)s->max_len, s->rows ? (double)s->tokens / (double)s->rows : 0.0);
        for (b = 0; b < DISTILL_DATA_HIST; b++) if (s->hist[b]) last = b;
        for (b = 0; b <= last; b++)   /* keys are the bucket's lower bound: [2^b, 2^(b+1)) tokens */
            fprintf(f, "%s\"%lld\": %lld", b ? ", " : "", b ? (long long)1 << b : 0LL, (long long)s->hist[b]);
        fprintf(f, "}");
    }
    fprintf(f, ", \"seconds\": %.3f, \"json_seconds\": %.3f", s->seconds, s->json_seconds);
    if (s->first_error[0]) {
        fprintf(f, ", \"first_error\": ");
        distill_json_write_string(f, s->first_error, strlen(s->first_error));
    }
    fprintf(f, "}\n");
}

/* ---- selection ---------------------------------------------------------------------------- */
/* Fisher-Yates driven by the seeded RNG: perm is a uniformly random permutation of 0..n-1 that
   depends only on (seed, n), so prefixes of it are nested subsets. */
static void distill__data_permute(int64_t *perm, int64_t n, uint64_t seed) {
    distill_rng r;
    int64_t i;
    distill_rng_seed(&r, seed);
    for (i = 0; i < n; i++) perm[i] = i;
    for (i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)distill_rng_below(&r, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static int distill__data_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

DISTILL_API distill_dataset *distill_dataset_select(const distill_dataset *ds, const distill_select_options *sel,
                                                    distill_error *err) {
    int64_t n = ds->n_rows, from = 0, count = n, i;
    int64_t *perm;
    distill_dataset *out;
    if (sel->n_splits < 0 || (sel->n_splits > 0 && (sel->split < 0 || sel->split >= sel->n_splits))) {
        distill__err(err, "select: split %d of %d is out of range", sel->split, sel->n_splits);
        return NULL;
    }
    if (sel->n_splits > 0) {
        count = n / sel->n_splits;
        from = count * sel->split;
    }
    if (sel->n < 0 || sel->n > count) {
        distill__err(err, "select: asked for %lld rows, only %lld available%s", (long long)sel->n, (long long)count,
                     sel->n_splits > 0 ? " in this split" : "");
        return NULL;
    }
    if (sel->n > 0) count = sel->n;
    perm = (int64_t *)DISTILL_MALLOC((size_t)(n ? n : 1) * sizeof *perm);
    out = (distill_dataset *)DISTILL_MALLOC(sizeof *out);
    if (!perm || !out) {
        DISTILL_FREE(perm);
        DISTILL_FREE(out);
        distill__err(err, "select: out of memory");
        return NULL;
    }
    distill__data_permute(perm, n, sel->seed);
    qsort(perm + from, (size_t)count, sizeof *perm, distill__data_cmp_i64);   /* back to file order */
    memset(out, 0, sizeof *out);
    out->pool = ds->pool;
    out->pool->refs++;
    out->has_tokens = ds->has_tokens;
    out->stats = ds->stats;
    out->rows = (distill__data_row *)DISTILL_MALLOC((size_t)(count ? count : 1) * sizeof *out->rows);
    if (!out->rows) { DISTILL_FREE(perm); distill_dataset_free(out); distill__err(err, "select: out of memory"); return NULL; }
    out->n_rows = out->cap_rows = count;
    /* recount what depends on the rows */
    out->stats.rows = count;
    out->stats.tokens = out->stats.supervised_tokens = out->stats.think_rows = out->stats.eot_rows = 0;
    out->stats.truncated = out->stats.lost_think = out->stats.min_len = out->stats.max_len = 0;
    memset(out->stats.hist, 0, sizeof out->stats.hist);
    for (i = 0; i < count; i++) {
        const distill__data_row *r = &ds->rows[perm[from + i]];
        int b = 0;
        out->rows[i] = *r;
        out->stats.tokens += r->n;
        out->stats.supervised_tokens += r->n_sup;
        if (r->flags & DISTILL_ROW_THINK) out->stats.think_rows++;
        if (r->flags & DISTILL_ROW_EOT) out->stats.eot_rows++;
        if (r->flags & DISTILL_ROW_TRUNCATED) out->stats.truncated++;
        if (r->flags & DISTILL_ROW_LOST_THINK) out->stats.lost_think++;
        if (i == 0 || r->n < out->stats.min_len) out->stats.min_len = r->n;
        if (r->n > out->stats.max_len) out->stats.max_len = r->n;
        while (b + 1 < DISTILL_DATA_HIST && ((int64_t)1 << (b + 1)) <= r->n) b++;
        out->stats.hist[b]++;
    }
    DISTILL_FREE(perm);
    if (sel->manifest) {
        distill_atomic_file af;
        if (distill_atomic_open(&af, sel->manifest, err) != 0) { distill_dataset_free(out); return NULL; }
        fprintf(af.f, "{\"seed\": %llu, \"n\": %lld, \"n_splits\": %d, \"split\": %d, \"of_rows\": %lld, \"rows\": [",
                (unsigned long long)sel->seed, (long long)count, sel->n_splits, sel->split, (long long)n);
        for (i = 0; i < count; i++) fprintf(af.f, "%s%lld", i ? ", " : "", (long long)out->rows[i].id);
        fprintf(af.f, "]}\n");
        if (distill_atomic_commit(&af, err) != 0) { distill_dataset_free(out); return NULL; }
    }
    return out;
}

/* ---- iteration ---------------------------------------------------------------------------- */
struct distill_loader {
    const distill_dataset *ds;
    distill_loader_options o;
    int64_t *perm;
    int64_t epoch, pos;
    uint64_t fingerprint;
    int T_cap;
    int32_t *tokens, *targets, *segments, *positions;
    float *weights;
    int *lengths;
    size_t cap;                 /* positions allocated in each (B,T) array */
    int cap_b;
    int64_t *rows;              /* dataset rows of the last batch */
    int n_rows, cap_rows;
};

DISTILL_API distill_loader_options distill_loader_options_default(void) {
    distill_loader_options o;
    memset(&o, 0, sizeof o);
    o.batch_rows = 8;
    o.shuffle = 1;
    o.seed = 1;
    return o;
}

static uint64_t distill__data_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    while (n--) { h ^= *b++; h *= 1099511628211ull; }
    return h;
}

static void distill__data_epoch_perm(distill_loader *L) {
    int64_t n = L->ds->n_rows, i;
    if (L->o.shuffle) distill__data_permute(L->perm, n, L->o.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(L->epoch + 1)));
    else for (i = 0; i < n; i++) L->perm[i] = i;
}

DISTILL_API distill_loader *distill_loader_create(const distill_dataset *ds, const distill_loader_options *o,
                                                  distill_error *err) {
    distill_loader *L;
    int64_t i, longest = 0;
    uint64_t h = 14695981039346656037ull;
    distill_loader_options opt = o ? *o : distill_loader_options_default();
    if (!ds || ds->n_rows == 0) { distill__err(err, "loader: empty dataset"); return NULL; }
    if (!ds->has_tokens) { distill__err(err, "loader: the dataset was loaded without a tokenizer"); return NULL; }
    if (opt.batch_rows <= 0 && opt.token_budget <= 0) { distill__err(err, "loader: set batch_rows > 0 or token_budget > 0"); return NULL; }
    if (opt.seq_len < 0) { distill__err(err, "loader: seq_len must be >= 0"); return NULL; }
    for (i = 0; i < ds->n_rows; i++) if (ds->rows[i].n > longest) longest = ds->rows[i].n;
    if (opt.seq_len == 0) opt.seq_len = (int)longest;
    if (longest > opt.seq_len) {
        for (i = 0; i < ds->n_rows; i++) if (ds->rows[i].n > opt.seq_len) break;
        distill__err(err, "loader: row %lld (line %lld) has %d tokens > seq_len %d: load with max_seq <= seq_len",
                     (long long)ds->rows[i].id, (long long)ds->rows[i].line, ds->rows[i].n, opt.seq_len);
        return NULL;
    }
    if (opt.token_budget > 0 && opt.token_budget < (opt.pack ? opt.seq_len : longest)) {
        distill__err(err, "loader: token_budget %lld is smaller than one sequence (%lld tokens)", (long long)opt.token_budget,
                     (long long)(opt.pack ? opt.seq_len : longest));
        return NULL;
    }
    L = (distill_loader *)DISTILL_MALLOC(sizeof *L);
    if (!L) { distill__err(err, "loader: out of memory"); return NULL; }
    memset(L, 0, sizeof *L);
    L->ds = ds;
    L->o = opt;
    L->T_cap = opt.seq_len;
    L->perm = (int64_t *)DISTILL_MALLOC((size_t)ds->n_rows * sizeof *L->perm);
    if (!L->perm) { DISTILL_FREE(L); distill__err(err, "loader: out of memory"); return NULL; }
    distill__data_epoch_perm(L);
    /* the fingerprint: rows (ids and lengths) and the options that shape the batches */
    for (i = 0; i < ds->n_rows; i++) {
        h = distill__data_fnv(h, &ds->rows[i].id, sizeof ds->rows[i].id);
        h = distill__data_fnv(h, &ds->rows[i].n, sizeof ds->rows[i].n);
    }
    h = distill__data_fnv(h, &opt.batch_rows, sizeof opt.batch_rows);
    h = distill__data_fnv(h, &opt.token_budget, sizeof opt.token_budget);
    h = distill__data_fnv(h, &opt.seq_len, sizeof opt.seq_len);
    h = distill__data_fnv(h, &opt.pack, sizeof opt.pack);
    h = distill__data_fnv(h, &opt.shuffle, sizeof opt.shuffle);
    h = distill__data_fnv(h, &opt.seed, sizeof opt.seed);
    L->fingerprint = h;
    return L;
}

DISTILL_API void distill_loader_free(distill_loader *L) {
    if (!L) return;
    DISTILL_FREE(L->perm);
    DISTILL_FREE(L->tokens);
    DISTILL_FREE(L->targets);
    DISTILL_FREE(L->segments);
    DISTILL_FREE(L->positions);
    DISTILL_FREE(L->weights);
    DISTILL_FREE(L->lengths);
    DISTILL_FREE(L->rows);
    DISTILL_FREE(L);
}

static int distill__data_loader_reserve(distill_loader *L, int B, int T) {
    size_t need = (size_t)B * (size_t)T;
    if (need > L->cap) {
        void *p[6];
        int k;
        p[0] = DISTILL_REALLOC(L->tokens, need * sizeof(int32_t));
        if (p[0]) L->tokens = (int32_t *)p[0];
        p[1] = DISTILL_REALLOC(L->targets, need * sizeof(int32_t));
        if (p[1]) L->targets = (int32_t *)p[1];
        p[2] = DISTILL_REALLOC(L->segments, need * sizeof(int32_t));
        if (p[2]) L->segments = (int32_t *)p[2];
        p[3] = DISTILL_REALLOC(L->positions, need * sizeof(int32_t));
        if (p[3]) L->positions = (int32_t *)p[3];
        p[4] = DISTILL_REALLOC(L->weights, need * sizeof(float));
        if (p[4]) L->weights = (float *)p[4];
        p[5] = (void *)L;
        for (k = 0; k < 5; k++) if (!p[k]) return -1;
        L->cap = need;
    }
    if (B > L->cap_b) {
        int *nl = (int *)DISTILL_REALLOC(L->lengths, (size_t)B * sizeof(int));
        if (!nl) return -1;
        L->lengths = nl;
        L->cap_b = B;
    }
    return 0;
}

static int distill__data_push_row(distill_loader *L, int64_t r) {
    if (L->n_rows == L->cap_rows) {
        int nc = L->cap_rows ? L->cap_rows * 2 : 64;
        int64_t *nr = (int64_t *)DISTILL_REALLOC(L->rows, (size_t)nc * sizeof *nr);
        if (!nr) return -1;
        L->rows = nr;
        L->cap_rows = nc;
    }
    L->rows[L->n_rows++] = r;
    return 0;
}

/* Place row r at (b, off): inputs tokens[0..n), targets the next token where it is supervised.
   targets[t] = tokens[t+1] with weight w[t+1] when w[t+1] > 0, else -1; the last position of a
   row has no target inside the row, so it gets -1 (this is what keeps packed rows apart). */
static void distill__data_place(distill_loader *L, int T, int b, int off, int seg, const distill__data_row *r) {
    const int32_t *tok = L->ds->pool->tokens + r->off;
    const float *w = L->ds->pool->weights + r->off;
    size_t base = (size_t)b * (size_t)T + (size_t)off;
    int t;
    for (t = 0; t < r->n; t++) {
        L->tokens[base + t] = tok[t];
        if (t + 1 < r->n && w[t + 1] > 0) {
            L->targets[base + t] = tok[t + 1];
            L->weights[base + t] = w[t + 1];
        } else {
            L->targets[base + t] = -1;
            L->weights[base + t] = 0.0f;
        }
        L->segments[base + t] = seg;
        L->positions[base + t] = t;
    }
}

DISTILL_API int distill_loader_next(distill_loader *L, struct distill_batch *batch, distill_error *err) {
    const distill__data_row *rows = L->ds->rows;
    int64_t n = L->ds->n_rows;
    int B = 0, T = 0, b, max_b;
    int *fill = NULL;
    L->n_rows = 0;
    if (L->pos >= n) { L->epoch++; L->pos = 0; distill__data_epoch_perm(L); }
    if (!L->o.pack) {
        /* rows in permutation order until batch_rows or the token budget (B * longest) is hit */
        while (L->pos < n) {
            const distill__data_row *r = &rows[L->perm[L->pos]];
            int nt = r->n > T ? r->n : T;
            if (L->o.batch_rows > 0 && B == L->o.batch_rows) break;
            if (L->o.token_budget > 0 && B > 0 && (int64_t)(B + 1) * nt > L->o.token_budget) break;
            if (distill__data_push_row(L, L->perm[L->pos]) != 0) return distill__err(err, "loader: out of memory");
            B++;
            T = nt;
            L->pos++;
        }
        if (distill__data_loader_reserve(L, B, T) != 0) return distill__err(err, "loader: out of memory");
        for (b = 0; b < B; b++) {
            const distill__data_row *r = &rows[L->rows[b]];
            size_t k;
            distill__data_place(L, T, b, 0, 0, r);
            for (k = (size_t)b * T + r->n; k < (size_t)(b + 1) * T; k++) {
                L->tokens[k] = 0;
                L->targets[k] = -1;
                L->weights[k] = 0;
                L->segments[k] = -1;
                L->positions[k] = 0;
            }
            L->lengths[b] = r->n;
        }
        batch->segments = NULL;
        batch->positions = NULL;
    } else {
        /* packing: fill sequences of T_cap positions in permutation order (next-fit); a row that
           does not fit in the current sequence starts the next one */
        int cur = 0;
        max_b = L->o.batch_rows > 0 ? L->o.batch_rows : 1 << 30;
        if (L->o.token_budget > 0 && L->o.token_budget / L->T_cap < max_b) max_b = (int)(L->o.token_budget / L->T_cap);
        if (max_b < 1) max_b = 1;
        fill = (int *)DISTILL_MALLOC((size_t)(max_b < 4096 ? max_b : 4096) * sizeof(int));
        if (!fill) return distill__err(err, "loader: out of memory");
        B = 1;
        fill[0] = 0;
        while (L->pos < n) {
            const distill__data_row *r = &rows[L->perm[L->pos]];
            if (fill[cur] + r->n > L->T_cap) {
                if (B == max_b || B == 4096) break;
                cur = B++;
                fill[cur] = 0;
            }
            if (distill__data_push_row(L, L->perm[L->pos]) != 0) { DISTILL_FREE(fill); return distill__err(err, "loader: out of memory"); }
            fill[cur] += r->n;
            L->pos++;
        }
        for (b = 0; b < B; b++) if (fill[b] > T) T = fill[b];
        if (distill__data_loader_reserve(L, B, T) != 0) { DISTILL_FREE(fill); return distill__err(err, "loader: out of memory"); }
        {
            int i = 0, seg = 0, off = 0;
            size_t k;
            b = 0;
            for (k = 0; k < (size_t)B * T; k++) {
                L->tokens[k] = 0;
                L->targets[k] = -1;
                L->weights[k] = 0;
                L->segments[k] = -1;
                L->positions[k] = 0;
            }
            for (i = 0; i < L->n_rows; i++) {
                const distill__data_row *r = &rows[L->rows[i]];
                if (off + r->n > fill[b] || (off + r->n > L->T_cap)) { b++; seg = 0; off = 0; }
                distill__data_place(L, T, b, off, seg, r);
                off += r->n;
                seg++;
            }
        }
        for (b = 0; b < B; b++) L->lengths[b] = fill[b];
        DISTILL_FREE(fill);
        batch->segments = L->segments;
        batch->positions = L->positions;
    }
    batch->B = B;
    batch->T = T;
    batch->tokens = L->tokens;
    batch->targets = L->targets;
    batch->weights = L->weights;
    batch->lengths = L->lengths;
    return 0;
}

DISTILL_API distill_loader_cursor distill_loader_get_cursor(const distill_loader *L) {
    distill_loader_cursor c;
    c.epoch = L->epoch;
    c.pos = L->pos;
    c.fingerprint = L->fingerprint;
    return c;
}

DISTILL_API int distill_loader_set_cursor(distill_loader *L, const distill_loader_cursor *c, distill_error *err) {
    if (c->fingerprint != L->fingerprint)
        return distill__err(err, "loader: the cursor was saved for other data or other loader options "
                                 "(fingerprint %016llx, this loader %016llx)",
                            (unsigned long long)c->fingerprint, (unsigned long long)L->fingerprint);
    if (c->epoch < 0 || c->pos < 0 || c->pos > L->ds->n_rows)
        return distill__err(err, "loader: invalid cursor (epoch %lld, pos %lld)", (long long)c->epoch, (long long)c->pos);
    L->epoch = c->epoch;
    L->pos = c->pos;
    distill__data_epoch_perm(L);
    return 0;
}

DISTILL_API const int64_t *distill_loader_last_rows(const distill_loader *L, int *n) {
    if (n) *n = L->n_rows;
    return L->rows;
}
