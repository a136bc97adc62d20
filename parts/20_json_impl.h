/* ===================================================================================== */
/* JSON (owner: data issue)                                                               */
/* ===================================================================================== */
/* A strict RFC 8259 parser into an arena. Reading it top to bottom:
     1. the arena: every node, string and item array of one document lives in a chain of big
        blocks, so parsing is a few large allocations and freeing is a walk over the chain;
     2. UTF-8 validation (the whole text must be valid UTF-8, not only what we decode);
     3. the recursive-descent parser. Arrays and objects are built on a scratch stack and copied
        into the arena once their size is known, so items[] is one contiguous array;
     4. lookup helpers, the string writer and the streaming line reader for JSONL. */

/* ---- 1. the arena ----------------------------------------------------------------------- */
typedef struct distill__arena_block {
    struct distill__arena_block *next;
    size_t used, cap;          /* bytes of the payload that follows this header */
    double align_;             /* keeps the payload 8-byte aligned on every ABI */
} distill__arena_block;

/* The document header: the root node lives inside it, so distill_json_free(root) can find the
   arena from the root pointer alone. */
typedef struct distill__json_doc {
    distill__arena_block *blocks;
    size_t next_size, total;
    distill_json root;
} distill__json_doc;

static void *distill__arena_alloc(distill__json_doc *doc, size_t n) {
    distill__arena_block *b = doc->blocks;
    n = (n + 7) & ~(size_t)7;
    if (n == 0) n = 8;
    if (!b || b->cap - b->used < n) {
        size_t cap = doc->next_size, bytes;
        if (cap < n) cap = n;
        if (!distill__add_size(cap, sizeof(distill__arena_block), &bytes)) return NULL;
        b = (distill__arena_block *)DISTILL_MALLOC(bytes);
        if (!b) return NULL;
        b->next = doc->blocks;
        b->used = 0;
        b->cap = cap;
        doc->blocks = b;
        doc->total += cap;
        if (doc->next_size < ((size_t)1 << 26)) doc->next_size *= 2; /* geometric, capped at 64 MiB */
    }
    b->used += n;
    return (char *)(b + 1) + (b->used - n);
}

/* ---- 2. UTF-8 ------------------------------------------------------------------------- */
/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid (overlong, surrogate,
   above U+10FFFF, truncated, stray continuation byte). Follows the table of RFC 3629 section 4. */
static size_t distill__utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;                               /* continuation byte or overlong C0/C1 */
    if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;                         /* overlong */
        if (c == 0xED) hi = 0x9F;                         /* U+D800..U+DFFF: surrogates */
        return (n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80) ? 3 : 0;
    }
    if (c < 0xF5) {
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xF0) lo = 0x90;                         /* overlong */
        if (c == 0xF4) hi = 0x8F;                         /* above U+10FFFF */
        return (n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
                (s[3] & 0xC0) == 0x80) ? 4 : 0;
    }
    return 0;
}

/* Offset of the first invalid byte in s[0..n), or n when all of it is valid UTF-8. */
DISTILL__UNUSED static size_t distill__utf8_check(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        size_t k;
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) { i++; continue; }
        k = distill__utf8_seq(s + i, n - i);
        if (!k) return i;
        i += k;
    }
    return n;
}

static size_t distill__utf8_put(char *out, uint32_t cp) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
        o[2] = (unsigned char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
    o[3] = (unsigned char)(0x80 | (cp & 63));
    return 4;
}

/* ---- 3. the parser ---------------------------------------------------------------------- */
typedef struct distill__jp {
    const char *p, *end, *line_start;
    int line;
    const char *name;
    distill_error *err;
    distill__json_doc *doc;
    distill_json *stack;       /* scratch: items of the arrays/objects being built */
    size_t sn, scap;
    const char **kstack;       /* scratch: their keys */
    size_t *klstack, kn, kcap;
    int depth;
} distill__jp;

static int distill__jp_fail(distill__jp *jp, const char *at, const char *fmt, ...) DISTILL__PRINTF(3, 4);
static int distill__jp_fail(distill__jp *jp, const char *at, const char *fmt, ...) {
    if (jp->err) {
        char msg[320];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        distill__err(jp->err, "%s:%d:%ld: %s", jp->name ? jp->name : "<json>", jp->line,
                     (long)(at - jp->line_start) + 1, msg);
    }
    return -1;
}

static int distill__jp_oom(distill__jp *jp) { return distill__jp_fail(jp, jp->p, "out of memory"); }

/* JSON whitespace is space, tab, CR, LF; lines are counted here, the only place a raw newline
   may appear in valid JSON. */
static void distill__jp_ws(distill__jp *jp) {
    const char *p = jp->p, *end = jp->end;
    while (p < end) {
        char c = *p;
        if (c == ' ' || c == '\t' || c == '\r') p++;
        else if (c == '\n') { p++; jp->line++; jp->line_start = p; }
        else break;
    }
    jp->p = p;
}

/* Describe the byte at p for an error message: 'x', or \xNN when unprintable. */
static const char *distill__jp_describe(distill__jp *jp, const char *p, char *buf, size_t n) {
    unsigned char c;
    if (p >= jp->end) return "end of input";
    c = (unsigned char)*p;
    if (c >= 0x20 && c < 0x7F) snprintf(buf, n, "'%c'", c);
    else snprintf(buf, n, "byte 0x%02X", c);
    return buf;
}

static int distill__jp_hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* A string literal at jp->p (on the opening quote). Two passes: find the closing quote (and
   reject raw control characters), then copy or decode into the arena. Escapes only shrink text
   (\u00e9 is 6 bytes in, 2 out; a surrogate pair 12 in, 4 out), so the raw length bounds the
   decoded one. */
static int distill__jp_string(distill__jp *jp, const char **out, size_t *out_len) {
    const char *start = jp->p + 1, *q = start, *end = jp->end;
    int has_esc = 0, has_hi = 0;
    char *dst;
    size_t rawlen, n = 0;
    while (q < end) {
        unsigned char c;
        /* 8 bytes at a time while none is '"', '\\', a control character or non-ASCII
           (SWAR: a byte b is zero iff (b - 1) & ~b has its high bit set) */
        while (end - q >= 8) {
            uint64_t w, quote, bslash, ctrl;
            memcpy(&w, q, 8);
            quote = w ^ 0x2222222222222222ull;
            bslash = w ^ 0x5C5C5C5C5C5C5C5Cull;
            quote = (quote - 0x0101010101010101ull) & ~quote;
            bslash = (bslash - 0x0101010101010101ull) & ~bslash;
            ctrl = (w - 0x2020202020202020ull) & ~w;
            if ((quote | bslash | ctrl | w) & 0x8080808080808080ull) break;
            q += 8;
        }
        if (q >= end) break;
        c = (unsigned char)*q;
        if (c == '"') break;
        if (c == '\\') {
            has_esc = 1;
            if (end - q < 2) { q = end; break; }
            q += 2;
            continue;
        }
        if (c < 0x20) {
            return distill__jp_fail(jp, q, "control character 0x%02X in string (write it as an escape)", c);
        }
        if (c >= 0x80) has_hi = 1;
        q++;
    }
    if (q >= end) return distill__jp_fail(jp, jp->p, "unterminated string");
    rawlen = (size_t)(q - start);
    dst = (char *)distill__arena_alloc(jp->doc, rawlen + 1);
    if (!dst) return distill__jp_oom(jp);
    if (!has_esc) {
        if (has_hi) {
            size_t bad = distill__utf8_check(start, rawlen);
            if (bad != rawlen) return distill__jp_fail(jp, start + bad, "invalid UTF-8 in string");
        }
        memcpy(dst, start, rawlen);
        n = rawlen;
    } else {
        const char *s = start;
        while (s < q) {
            unsigned char c = (unsigned char)*s;
            if (c != '\\') {
                /* a run up to the next escape: validate once, copy once */
                const char *bs = (const char *)memchr(s, '\\', (size_t)(q - s));
                size_t run = bs ? (size_t)(bs - s) : (size_t)(q - s);
                if (has_hi) {
                    size_t bad = distill__utf8_check(s, run);
                    if (bad != run) return distill__jp_fail(jp, s + bad, "invalid UTF-8 in string");
                }
                memcpy(dst + n, s, run);
                n += run;
                s += run;
                continue;
            }
            {
                char e = s[1];
                switch (e) {
                case '"': dst[n++] = '"'; s += 2; break;
                case '\\': dst[n++] = '\\'; s += 2; break;
                case '/': dst[n++] = '/'; s += 2; break;
                case 'b': dst[n++] = '\b'; s += 2; break;
                case 'f': dst[n++] = '\f'; s += 2; break;
                case 'n': dst[n++] = '\n'; s += 2; break;
                case 'r': dst[n++] = '\r'; s += 2; break;
                case 't': dst[n++] = '\t'; s += 2; break;
                case 'u': {
                    uint32_t cp, lo;
                    if (q - s < 6 || distill__jp_hex4(s + 2, &cp) != 0)
                        return distill__jp_fail(jp, s, "\\u must be followed by 4 hex digits");
                    if (cp >= 0xDC00 && cp <= 0xDFFF)
                        return distill__jp_fail(jp, s, "lone low surrogate \\u%04X", (unsigned)cp);
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        /* a high surrogate must be followed by a low one: the pair is one character */
                        if (q - s < 12 || s[6] != '\\' || s[7] != 'u' || distill__jp_hex4(s + 8, &lo) != 0 ||
                            lo < 0xDC00 || lo > 0xDFFF)
                            return distill__jp_fail(jp, s, "lone high surrogate \\u%04X (not followed by a low surrogate)", (unsigned)cp);
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        s += 6;
                    }
                    n += distill__utf8_put(dst + n, cp);
                    s += 6;
                    break;
                }
                default: {
                    char b[16];
                    return distill__jp_fail(jp, s, "invalid escape \\%s in string",
                                            distill__jp_describe(jp, s + 1, b, sizeof b));
                }
                }
            }
        }
    }
    dst[n] = 0;
    *out = dst;
    *out_len = n;
    jp->p = q + 1;
    return 0;
}

/* number = [ '-' ] int [ frac ] [ exp ];  int = '0' / 1-9 *DIGIT. Integers that fit in int64 are
   kept exactly; the double comes from strtod on a NUL-terminated copy (the text may not be
   NUL-terminated, and strtod must see exactly the validated token). */
static int distill__jp_number(distill__jp *jp, distill_json *v) {
    const char *p = jp->p, *start = p, *end = jp->end;
    int neg = 0, is_int = 1, overflow = 0;
    uint64_t mag = 0;
    if (*p == '-') { neg = 1; p++; }
    if (p >= end || *p < '0' || *p > '9') return distill__jp_fail(jp, p, "expected a digit after '-'");
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9') return distill__jp_fail(jp, start, "leading zeros are not allowed in numbers");
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            unsigned d = (unsigned)(*p - '0');
            if (mag > (UINT64_MAX - d) / 10) overflow = 1;
            else mag = mag * 10 + d;
            p++;
        }
    }
    if (p < end && *p == '.') {
        is_int = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9') return distill__jp_fail(jp, p, "expected a digit after '.'");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_int = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return distill__jp_fail(jp, p, "expected a digit in the exponent");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    v->type = DISTILL_JSON_NUMBER;
    if (is_int && !overflow && (neg ? mag <= (uint64_t)INT64_MAX + 1 : mag <= (uint64_t)INT64_MAX)) {
        v->is_int = 1;
        v->i64 = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        v->num = (double)v->i64;   /* int64 -> double rounds to nearest: correctly rounded */
    } else {
        char small[64], *buf = small, *e;
        size_t n = (size_t)(p - start);
        double d;
        if (n >= sizeof small) {
            buf = (char *)DISTILL_MALLOC(n + 1);
            if (!buf) return distill__jp_oom(jp);
        }
        memcpy(buf, start, n);
        buf[n] = 0;
        d = strtod(buf, &e);
        if (e != buf + n) {
            /* a program that called setlocale(LC_NUMERIC, ...) may use ',' as decimal point */
            char *dot = strchr(buf, '.');
            if (dot) {
                char alt[8];
                snprintf(alt, sizeof alt, "%.1f", 0.5);
                *dot = alt[1];
                d = strtod(buf, &e);
            }
        }
        if (buf != small) DISTILL_FREE(buf);
        if (d == HUGE_VAL || d == -HUGE_VAL)
            return distill__jp_fail(jp, start, "number out of range of a double");
        v->num = d;
        v->is_int = 0;
        v->i64 = (int64_t)0;
        if (d >= -9.2e18 && d <= 9.2e18) v->i64 = (int64_t)d;
    }
    jp->p = p;
    return 0;
}

static int distill__jp_value(distill__jp *jp, distill_json *v);

static int distill__jp_push(distill__jp *jp, const distill_json *v) {
    if (jp->sn == jp->scap) {
        size_t nc = jp->scap ? jp->scap * 2 : 64, bytes;
        distill_json *ns;
        if (!distill__mul_size(nc, sizeof *ns, &bytes)) return distill__jp_oom(jp);
        ns = (distill_json *)DISTILL_REALLOC(jp->stack, bytes);
        if (!ns) return distill__jp_oom(jp);
        jp->stack = ns;
        jp->scap = nc;
    }
    jp->stack[jp->sn++] = *v;
    return 0;
}

static int distill__jp_push_key(distill__jp *jp, const char *k, size_t kl) {
    if (jp->kn == jp->kcap) {
        size_t nc = jp->kcap ? jp->kcap * 2 : 64;
        const char **nk;
        size_t *nl;
        if (nc > SIZE_MAX / sizeof(size_t)) return distill__jp_oom(jp);
        nk = (const char **)DISTILL_REALLOC((void *)jp->kstack, nc * sizeof *nk);
        if (!nk) return distill__jp_oom(jp);
        jp->kstack = nk;
        nl = (size_t *)DISTILL_REALLOC(jp->klstack, nc * sizeof *nl);
        if (!nl) return distill__jp_oom(jp);
        jp->klstack = nl;
        jp->kcap = nc;
    }
    jp->kstack[jp->kn] = k;
    jp->klstack[jp->kn] = kl;
    jp->kn++;
    return 0;
}

/* Move the items pushed since `base` (and keys since `kbase` for objects) into the arena. */
static int distill__jp_collect(distill__jp *jp, distill_json *v, size_t base, size_t kbase, int object) {
    size_t n = jp->sn - base, bytes;
    v->len = n;
    if (n) {
        if (!distill__mul_size(n, sizeof(distill_json), &bytes)) return distill__jp_oom(jp);
        v->items = (distill_json *)distill__arena_alloc(jp->doc, bytes);
        if (!v->items) return distill__jp_oom(jp);
        memcpy(v->items, jp->stack + base, bytes);
        if (object) {
            v->keys = (const char **)distill__arena_alloc(jp->doc, n * sizeof(const char *));
            v->key_lens = (size_t *)distill__arena_alloc(jp->doc, n * sizeof(size_t));
            if (!v->keys || !v->key_lens) return distill__jp_oom(jp);
            memcpy((void *)v->keys, jp->kstack + kbase, n * sizeof(const char *));
            memcpy(v->key_lens, jp->klstack + kbase, n * sizeof(size_t));
        }
    }
    jp->sn = base;
    jp->kn = kbase;
    return 0;
}

static int distill__jp_array(distill__jp *jp, distill_json *v) {
    size_t base = jp->sn;
    char b[16];
    v->type = DISTILL_JSON_ARRAY;
    jp->p++;                                   /* '[' */
    distill__jp_ws(jp);
    if (jp->p < jp->end && *jp->p == ']') { jp->p++; return 0; }
    for (;;) {
        distill_json item;
        if (distill__jp_value(jp, &item) != 0) return -1;
        if (distill__jp_push(jp, &item) != 0) return -1;
        distill__jp_ws(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            distill__jp_ws(jp);
            if (jp->p < jp->end && *jp->p == ']') return distill__jp_fail(jp, jp->p, "trailing comma before ']'");
            continue;
        }
        if (jp->p < jp->end && *jp->p == ']') { jp->p++; break; }
        return distill__jp_fail(jp, jp->p, "expected ',' or ']' after array item, found %s",
                                distill__jp_describe(jp, jp->p, b, sizeof b));
    }
    return distill__jp_collect(jp, v, base, jp->kn, 0);
}

static int distill__jp_object(distill__jp *jp, distill_json *v) {
    size_t base = jp->sn, kbase = jp->kn;
    char b[16];
    v->type = DISTILL_JSON_OBJECT;
    jp->p++;                                   /* '{' */
    distill__jp_ws(jp);
    if (jp->p < jp->end && *jp->p == '}') { jp->p++; return 0; }
    for (;;) {
        distill_json item;
        const char *k;
        size_t kl;
        if (jp->p >= jp->end || *jp->p != '"') {
            if (jp->p < jp->end && *jp->p == '}') return distill__jp_fail(jp, jp->p, "trailing comma before '}'");
            return distill__jp_fail(jp, jp->p, "expected a string key, found %s",
                                    distill__jp_describe(jp, jp->p, b, sizeof b));
        }
        if (distill__jp_string(jp, &k, &kl) != 0) return -1;
        distill__jp_ws(jp);
        if (jp->p >= jp->end || *jp->p != ':')
            return distill__jp_fail(jp, jp->p, "expected ':' after object key, found %s",
                                    distill__jp_describe(jp, jp->p, b, sizeof b));
        jp->p++;
        if (distill__jp_value(jp, &item) != 0) return -1;
        if (distill__jp_push(jp, &item) != 0 || distill__jp_push_key(jp, k, kl) != 0) return -1;
        distill__jp_ws(jp);
        if (jp->p < jp->end && *jp->p == ',') { jp->p++; distill__jp_ws(jp); continue; }
        if (jp->p < jp->end && *jp->p == '}') { jp->p++; break; }
        return distill__jp_fail(jp, jp->p, "expected ',' or '}' after object member, found %s",
                                distill__jp_describe(jp, jp->p, b, sizeof b));
    }
    return distill__jp_collect(jp, v, base, kbase, 1);
}

static int distill__jp_literal(distill__jp *jp, const char *word, distill_json_type t, distill_json *v) {
    size_t n = strlen(word);
    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0)
        return distill__jp_fail(jp, jp->p, "invalid literal (expected %s)", word);
    v->type = t;
    jp->p += n;
    return 0;
}

static int distill__jp_value(distill__jp *jp, distill_json *v) {
    char b[16];
    int rc;
    memset(v, 0, sizeof *v);
    distill__jp_ws(jp);
    if (jp->p >= jp->end) return distill__jp_fail(jp, jp->p, "unexpected end of input, expected a value");
    v->line = jp->line;
    v->col = (int)(jp->p - jp->line_start) + 1;
    switch (*jp->p) {
    case '{':
    case '[':
        if (jp->depth >= DISTILL_JSON_MAX_DEPTH)
            return distill__jp_fail(jp, jp->p, "nesting deeper than %d levels", DISTILL_JSON_MAX_DEPTH);
        jp->depth++;
        rc = *jp->p == '{' ? distill__jp_object(jp, v) : distill__jp_array(jp, v);
        jp->depth--;
        return rc;
    case '"':
        v->type = DISTILL_JSON_STRING;
        return distill__jp_string(jp, &v->str, &v->len);
    case 't': return distill__jp_literal(jp, "true", DISTILL_JSON_TRUE, v);
    case 'f': return distill__jp_literal(jp, "false", DISTILL_JSON_FALSE, v);
    case 'n': return distill__jp_literal(jp, "null", DISTILL_JSON_NULL, v);
    default:
        if (*jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9')) return distill__jp_number(jp, v);
        return distill__jp_fail(jp, jp->p, "unexpected %s, expected a value",
                                distill__jp_describe(jp, jp->p, b, sizeof b));
    }
}

DISTILL_API void distill_json_free(distill_json *root) {
    distill__json_doc *doc;
    distill__arena_block *b;
    if (!root) return;
    doc = (distill__json_doc *)(void *)((char *)root - offsetof(distill__json_doc, root));
    b = doc->blocks;
    while (b) {
        distill__arena_block *next = b->next;
        DISTILL_FREE(b);
        b = next;
    }
    DISTILL_FREE(doc);
}

DISTILL_API distill_json *distill_json_parse(const char *text, size_t len, const char *name,
                                             int first_line, distill_error *err) {
    distill__jp jp;
    distill__json_doc *doc;
    char b[16];
    int rc;
    doc = (distill__json_doc *)DISTILL_MALLOC(sizeof *doc);
    if (!doc) { distill__err(err, "%s: out of memory", name ? name : "<json>"); return NULL; }
    memset(doc, 0, sizeof *doc);
    /* first block ~ input size: a document of strings needs about its length, a document of
       numbers more (a node per few bytes); later blocks double */
    doc->next_size = len < 4096 ? 4096 : (len > ((size_t)1 << 26) ? ((size_t)1 << 26) : len);
    memset(&jp, 0, sizeof jp);
    jp.p = text ? text : "";
    jp.end = jp.p + (text ? len : 0);
    jp.line_start = jp.p;
    jp.line = first_line > 0 ? first_line : 1;
    jp.name = name;
    jp.err = err;
    jp.doc = doc;
    /* an optional UTF-8 byte order mark at the very start */
    if (jp.end - jp.p >= 3 && memcmp(jp.p, "\xEF\xBB\xBF", 3) == 0) jp.p += 3;
    rc = distill__jp_value(&jp, &doc->root);
    if (rc == 0) {
        distill__jp_ws(&jp);
        if (jp.p < jp.end)
            rc = distill__jp_fail(&jp, jp.p, "unexpected %s after the JSON value",
                                  distill__jp_describe(&jp, jp.p, b, sizeof b));
    }
    DISTILL_FREE(jp.stack);
    DISTILL_FREE((void *)jp.kstack);
    DISTILL_FREE(jp.klstack);
    if (rc != 0) {
        distill_json_free(&doc->root);
        return NULL;
    }
    return &doc->root;
}

DISTILL_API distill_json *distill_json_parse_file(const char *path, distill_error *err) {
    size_t n;
    char *text = (char *)distill_read_file(path, &n, err);
    distill_json *root;
    if (!text) return NULL;
    root = distill_json_parse(text, n, path, 1, err);
    DISTILL_FREE(text);
    return root;
}

DISTILL_API size_t distill_json_arena_bytes(const distill_json *root) {
    const distill__json_doc *doc;
    if (!root) return 0;
    doc = (const distill__json_doc *)(const void *)((const char *)root - offsetof(distill__json_doc, root));
    return doc->total;
}

/* ---- 4. lookups, writer, line reader ----------------------------------------------------- */
static const distill_json *distill__json_get_n(const distill_json *v, const char *key, size_t kl) {
    size_t i;
    if (!v || v->type != DISTILL_JSON_OBJECT) return NULL;
    for (i = v->len; i-- > 0;)                 /* from the end: the last duplicate wins */
        if (v->key_lens[i] == kl && memcmp(v->keys[i], key, kl) == 0) return &v->items[i];
    return NULL;
}

DISTILL_API const distill_json *distill_json_get(const distill_json *v, const char *key) {
    return key ? distill__json_get_n(v, key, strlen(key)) : NULL;
}

DISTILL_API const distill_json *distill_json_at(const distill_json *v, size_t i) {
    if (!v || v->type != DISTILL_JSON_ARRAY || i >= v->len) return NULL;
    return &v->items[i];
}

DISTILL_API const distill_json *distill_json_path(const distill_json *v, const char *path) {
    const char *s = path;
    if (!path) return NULL;
    while (v) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (v->type == DISTILL_JSON_ARRAY) {
            size_t idx = 0, i;
            if (n == 0 || n > 18) return NULL;
            for (i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9') return NULL;
                idx = idx * 10 + (size_t)(s[i] - '0');
            }
            v = distill_json_at(v, idx);
        } else {
            v = distill__json_get_n(v, s, n);
        }
        if (!dot) return v;
        s = dot + 1;
    }
    return NULL;
}

DISTILL_API const char *distill_json_type_name(distill_json_type t) {
    switch (t) {
    case DISTILL_JSON_NULL: return "null";
    case DISTILL_JSON_FALSE: return "false";
    case DISTILL_JSON_TRUE: return "true";
    case DISTILL_JSON_NUMBER: return "number";
    case DISTILL_JSON_STRING: return "string";
    case DISTILL_JSON_ARRAY: return "array";
    case DISTILL_JSON_OBJECT: return "object";
    }
    return "?";
}

/* Valid UTF-8 goes out as is; control characters, '"' and '\\' are escaped; an invalid byte
   (the caller's string need not be UTF-8) becomes U+FFFD so the output is always valid JSON. */
DISTILL_API void distill_json_write_string(FILE *f, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    fputc('"', f);
    while (i < len) {
        unsigned c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') { i++; run++; continue; }
        if (run) { fwrite(u + i - run, 1, run, f); run = 0; }
        if (c >= 0x80) {
            size_t k = distill__utf8_seq(u + i, len - i);
            if (k) fwrite(u + i, 1, k, f);
            else fputs("\\ufffd", f);
            i += k ? k : 1;
            continue;
        }
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default: fprintf(f, "\\u%04x", c); break;
        }
        i++;
    }
    if (run) fwrite(u + i - run, 1, run, f);
    fputc('"', f);
}

struct distill_line_reader {
    FILE *f;
    char *path;
    char *buf;
    size_t cap, start, end, scan;   /* unread bytes are buf[start..end); no '\n' in [start..scan) */
    size_t max_line;
    int eof;
    int64_t line_no, offset;        /* lines returned so far; file offset of buf[start] */
};

DISTILL_API distill_line_reader *distill_line_reader_open(const char *path, size_t max_line,
                                                          distill_error *err) {
    distill_line_reader *r = (distill_line_reader *)DISTILL_MALLOC(sizeof *r);
    if (!r) { distill__err(err, "%s: out of memory", path); return NULL; }
    memset(r, 0, sizeof *r);
    r->max_line = max_line ? max_line : ((size_t)1 << 30);
    r->cap = (size_t)1 << 20;
    r->buf = (char *)DISTILL_MALLOC(r->cap);
    r->path = distill__strdup(path);
    if (!r->buf || !r->path) {
        distill__err(err, "%s: out of memory", path);
        distill_line_reader_close(r);
        return NULL;
    }
    r->f = fopen(path, "rb");
    if (!r->f) {
        distill__err(err, "%s: cannot open: %s", path, strerror(errno));
        distill_line_reader_close(r);
        return NULL;
    }
    return r;
}

DISTILL_API int distill_line_reader_next(distill_line_reader *r, const char **line, size_t *len,
                                         int64_t *line_no, distill_error *err) {
    for (;;) {
        char *nl = r->scan < r->end ? (char *)memchr(r->buf + r->scan, '\n', r->end - r->scan) : NULL;
        size_t ls = r->start, le;
        if (nl || (r->eof && r->start < r->end)) {
            if (nl) {
                le = (size_t)(nl - r->buf);
                r->start = le + 1;
            } else {                               /* the last line has no newline */
                le = r->end;
                r->start = r->end;
            }
            if (le - ls > r->max_line) {
                return distill__err(err, "%s:%lld: line longer than %zu bytes", r->path,
                                    (long long)r->line_no + 1, r->max_line);
            }
            r->scan = r->start;
            r->offset += (int64_t)(r->start - ls);
            r->line_no++;
            if (le > ls && r->buf[le - 1] == '\r') le--;
            r->buf[le] = 0;                        /* le < cap: see the growth rule below */
            *line = r->buf + ls;
            *len = le - ls;
            if (line_no) *line_no = r->line_no;
            return 1;
        }
        if (r->eof) return 0;
        r->scan = r->end;
        /* no newline in the buffer: move the partial line to the front, grow if it is full, read */
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->scan -= r->start;
            r->start = 0;
        }
        if (r->end > r->max_line) {
            return distill__err(err, "%s:%lld: line longer than %zu bytes", r->path,
                                (long long)r->line_no + 1, r->max_line);
        }
        if (r->cap - r->end < 65536 + 1) {        /* keep one spare byte for the NUL */
            size_t nc = r->cap * 2;
            char *nb;
            if (nc < r->cap) return distill__err(err, "%s: line too long", r->path);
            nb = (char *)DISTILL_REALLOC(r->buf, nc);
            if (!nb) return distill__err(err, "%s:%lld: out of memory for a line of %zu+ bytes", r->path,
                                         (long long)r->line_no + 1, r->end);
            r->buf = nb;
            r->cap = nc;
        }
        {
            size_t got = fread(r->buf + r->end, 1, r->cap - r->end - 1, r->f);
            if (got == 0) {
                if (ferror(r->f)) return distill__err(err, "%s: read error: %s", r->path, strerror(errno));
                r->eof = 1;
            }
            r->end += got;
        }
    }
}

DISTILL_API int64_t distill_line_reader_offset(const distill_line_reader *r) { return r->offset; }

DISTILL_API void distill_line_reader_close(distill_line_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    DISTILL_FREE(r->buf);
    DISTILL_FREE(r->path);
    DISTILL_FREE(r);
}
