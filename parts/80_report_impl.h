/* ===================================================================================== */
/* REPORTS: results tables and SVG plots                                                  */
/* ===================================================================================== */

/* ---- tables ----------------------------------------------------------------------------- */

DISTILL_API int distill_table_init(distill_table *t, const char *const *header, int ncol) {
    int j;
    memset(t, 0, sizeof *t);
    if (ncol < 1) return -1;
    t->ncol = ncol;
    t->cap = 16;
    t->cells = (char **)DISTILL_MALLOC(sizeof(char *) * (size_t)ncol * (size_t)(t->cap + 1));
    if (!t->cells) return -1;
    for (j = 0; j < ncol; j++) {
        t->cells[j] = distill__strdup(header && header[j] ? header[j] : "");
        if (!t->cells[j]) { t->nrow = -1; while (j-- > 0) DISTILL_FREE(t->cells[j]); DISTILL_FREE(t->cells); t->cells = NULL; return -1; }
    }
    return 0;
}

DISTILL_API int distill_table_add_row(distill_table *t, const char *const *cells) {
    int j;
    size_t base;
    if (!t->cells) return -1;
    if (t->nrow == t->cap) {
        size_t bytes;
        char **nc;
        if (!distill__mul_size(sizeof(char *) * (size_t)t->ncol, (size_t)t->cap * 2 + 1, &bytes)) return -1;
        nc = (char **)DISTILL_REALLOC(t->cells, bytes);
        if (!nc) return -1;
        t->cells = nc;
        t->cap *= 2;
    }
    base = (size_t)(t->nrow + 1) * (size_t)t->ncol;
    for (j = 0; j < t->ncol; j++) {
        t->cells[base + (size_t)j] = distill__strdup(cells && cells[j] ? cells[j] : "");
        if (!t->cells[base + (size_t)j]) {
            while (j-- > 0) DISTILL_FREE(t->cells[base + (size_t)j]);
            return -1;
        }
    }
    t->nrow++;
    return 0;
}

DISTILL_API const char *distill_table_cell(const distill_table *t, int row, int col) {
    if (!t->cells || row < 0 || row >= t->nrow || col < 0 || col >= t->ncol) return NULL;
    return t->cells[(size_t)(row + 1) * (size_t)t->ncol + (size_t)col];
}

DISTILL_API void distill_table_free(distill_table *t) {
    size_t i;
    if (t->cells)
        for (i = 0; i < (size_t)(t->nrow + 1) * (size_t)t->ncol; i++) DISTILL_FREE(t->cells[i]);
    DISTILL_FREE(t->cells);
    memset(t, 0, sizeof *t);
}

/* RFC 4180: a field holding a comma, quote, CR or LF is quoted, and quotes inside are doubled. */
static void distill__csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

DISTILL_API void distill_table_write_csv(FILE *f, const distill_table *t) {
    int i, j;
    for (i = 0; i <= t->nrow; i++)
        for (j = 0; j < t->ncol; j++) {
            distill__csv_field(f, t->cells[(size_t)i * (size_t)t->ncol + (size_t)j]);
            fputs(j + 1 < t->ncol ? "," : "\n", f);
        }
}

/* Markdown cell text: '|' escaped, newlines become spaces. Returns the printed width. */
static size_t distill__md_width(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += *s == '|' ? 2 : ((unsigned char)*s & 0xC0) == 0x80 ? 0 : 1;
    return n;
}
static void distill__md_cell(FILE *f, const char *s, size_t pad) {
    size_t w = distill__md_width(s);
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else if (*s == '\n' || *s == '\r') fputc(' ', f);
        else fputc(*s, f);
    }
    while (w++ < pad) fputc(' ', f);
}

/* A cell that reads as a number is right-aligned (the separator row says so with "--:"). */
static int distill__is_number(const char *s) {
    char *end;
    if (!*s) return 0;
    (void)strtod(s, &end);
    return *end == 0 && !strpbrk(s, "xXnNiI");   /* not hex, nan or inf */
}

DISTILL_API void distill_table_write_markdown(FILE *f, const distill_table *t) {
    int i, j;
    size_t *w = (size_t *)DISTILL_MALLOC(sizeof(size_t) * (size_t)t->ncol);
    int *num = (int *)DISTILL_MALLOC(sizeof(int) * (size_t)t->ncol);
    if (!w || !num) { DISTILL_FREE(w); DISTILL_FREE(num); return; }
    for (j = 0; j < t->ncol; j++) {
        w[j] = 3;
        num[j] = t->nrow > 0;
        for (i = 0; i <= t->nrow; i++) {
            const char *c = t->cells[(size_t)i * (size_t)t->ncol + (size_t)j];
            size_t cw = distill__md_width(c);
            if (cw > w[j]) w[j] = cw;
            if (i > 0 && *c && !distill__is_number(c)) num[j] = 0;
        }
    }
    for (i = 0; i <= t->nrow; i++) {
        fputs("|", f);
        for (j = 0; j < t->ncol; j++) {
            fputc(' ', f);
            distill__md_cell(f, t->cells[(size_t)i * (size_t)t->ncol + (size_t)j], w[j]);
            fputs(" |", f);
        }
        fputc('\n', f);
        if (i == 0) {
            fputs("|", f);
            for (j = 0; j < t->ncol; j++) {
                size_t k;
                fputc(' ', f);
                for (k = 0; k + 1 < w[j]; k++) fputc('-', f);
                fputc(num[j] ? ':' : '-', f);
                fputs(" |", f);
            }
            fputc('\n', f);
        }
    }
    DISTILL_FREE(w);
    DISTILL_FREE(num);
}

/* Is s exactly a JSON number (RFC 8259 grammar)? Then it is written unquoted. */
static int distill__json_number_text(const char *s) {
    if (*s == '-') s++;
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') while (*s >= '0' && *s <= '9') s++;
    else return 0;
    if (*s == '.') { s++; if (!(*s >= '0' && *s <= '9')) return 0; while (*s >= '0' && *s <= '9') s++; }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == 0;
}

DISTILL_API void distill_table_write_json(FILE *f, const distill_table *t) {
    int i, j;
    fputs("[", f);
    for (i = 1; i <= t->nrow; i++) {
        fputs(i > 1 ? ",\n {" : "\n {", f);
        for (j = 0; j < t->ncol; j++) {
            const char *c = t->cells[(size_t)i * (size_t)t->ncol + (size_t)j];
            const char *h = t->cells[j];
            if (j) fputs(", ", f);
            distill_json_write_string(f, h, strlen(h));
            fputs(": ", f);
            if (distill__json_number_text(c)) fputs(c, f);
            else if (!*c || !strcmp(c, "null") || !strcmp(c, "nan") || !strcmp(c, "-nan") || !strcmp(c, "NaN"))
                fputs("null", f);   /* missing values, and NaN which JSON cannot hold */
            else distill_json_write_string(f, c, strlen(c));
        }
        fputs("}", f);
    }
    fputs(t->nrow ? "\n]\n" : "]\n", f);
}

/* ---- SVG plots -------------------------------------------------------------------------- */
/* Panel layout (pixels, panel-local): the plot area is [ML, w-MR] x [MT, h-MB]. With a log x
   axis, the first ZG pixels of it hold the x = 0 position and an axis break. */
#define DISTILL__PL_ML 62.0
#define DISTILL__PL_MR 16.0
#define DISTILL__PL_MT 34.0
#define DISTILL__PL_MB 46.0
#define DISTILL__PL_ZG 40.0

DISTILL_API double distill_plot_px_x(double x, double lo, double hi, int log_x, int panel_w) {
    double left = DISTILL__PL_ML, right = (double)panel_w - DISTILL__PL_MR;
    if (hi <= lo) hi = lo + 1;
    if (log_x) {
        if (x <= 0) return left + DISTILL__PL_ZG * 0.3;
        left += DISTILL__PL_ZG;
        x = log10(x);
    }
    return left + (x - lo) / (hi - lo) * (right - left);
}

DISTILL_API double distill_plot_px_y(double y, double lo, double hi, int panel_h) {
    double top = DISTILL__PL_MT, bottom = (double)panel_h - DISTILL__PL_MB;
    if (hi <= lo) hi = lo + 1;
    return top + (1.0 - (y - lo) / (hi - lo)) * (bottom - top);
}

static const char *distill__palette[10] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};

static void distill__xml_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about `want` intervals. */
static double distill__nice_step(double range, int want) {
    double raw = range / (double)want, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static void distill__fmt_num(char *buf, size_t cap, double v) {
    if (fabs(v) < 1e-12) v = 0;
    snprintf(buf, cap, "%g", v);
}

static void distill__panel(FILE *f, const distill_plot_panel *p, double ox, double oy, int w, int h) {
    double xlo = HUGE_VAL, xhi = -HUGE_VAL, ylo = HUGE_VAL, yhi = -HUGE_VAL, step, ystep, v;
    int s, i, any_zero = 0, legend_n = 0;
    char num[64];
    /* data ranges (x in log10 units on a log axis) */
    for (s = 0; s < p->n_series; s++) {
        const distill_plot_series *se = &p->series[s];
        for (i = 0; i < se->n; i++) {
            double x = se->x[i], y = se->y[i], e = se->y_err ? se->y_err[i] : 0;
            if (!(y == y) || !(x == x)) continue;
            if (p->log_x) { if (x <= 0) { any_zero = 1; } else { x = log10(x); if (x < xlo) xlo = x; if (x > xhi) xhi = x; } }
            else { if (x < xlo) xlo = x; if (x > xhi) xhi = x; }
            if (!(e == e)) e = 0;
            if (y - e < ylo) ylo = y - e;
            if (y + e > yhi) yhi = y + e;
        }
        if (se->label) legend_n++;
    }
    if (xlo > xhi) { xlo = 0; xhi = 1; }
    if (p->log_x) {   /* the data's span plus a small margin, in decades */
        double pad = xhi - xlo < 1 ? 0.1 : 0.06 * (xhi - xlo);
        xlo -= pad;
        xhi += pad;
    }
    else if (xhi <= xlo) { xlo -= 0.5; xhi += 0.5; }
    if (p->y_min < p->y_max) { ylo = p->y_min; yhi = p->y_max; ystep = distill__nice_step(yhi - ylo, 5); }
    else {
        if (ylo > yhi) { ylo = 0; yhi = 1; }
        if (yhi - ylo < 1e-9) { ylo -= 0.5; yhi += 0.5; }
        ystep = distill__nice_step(yhi - ylo, 5);
        ylo = floor(ylo / ystep + 1e-9) * ystep;
        yhi = ceil(yhi / ystep - 1e-9) * ystep;
    }
    fprintf(f, "<g transform=\"translate(%.1f,%.1f)\">\n", ox, oy);
    /* frame, title, axis labels */
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
            DISTILL__PL_ML, DISTILL__PL_MT, (double)w - DISTILL__PL_ML - DISTILL__PL_MR, (double)h - DISTILL__PL_MT - DISTILL__PL_MB);
    fprintf(f, "<text x=\"%.1f\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">", (double)w / 2);
    distill__xml_text(f, p->title);
    fprintf(f, "</text>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">",
            (DISTILL__PL_ML + (double)w - DISTILL__PL_MR) / 2, (double)h - 8);
    distill__xml_text(f, p->xlabel);
    fprintf(f, "</text>\n<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 %.1f)\">",
            (DISTILL__PL_MT + (double)h - DISTILL__PL_MB) / 2, (DISTILL__PL_MT + (double)h - DISTILL__PL_MB) / 2);
    distill__xml_text(f, p->ylabel);
    fputs("</text>\n", f);
    /* y grid and ticks */
    for (v = ceil(ylo / ystep - 1e-9) * ystep; v <= yhi + ystep * 1e-6; v += ystep) {
        double py = distill_plot_px_y(v, ylo, yhi, h);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                DISTILL__PL_ML, py, (double)w - DISTILL__PL_MR, py);
        distill__fmt_num(num, sizeof num, v);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%s</text>\n", DISTILL__PL_ML - 4, py + 4, num);
    }
    /* x ticks: decades on a log axis (with 2 and 5 between when there are few), else nice steps */
    if (p->log_x) {
        double d;
        for (d = floor(xlo); d <= xhi + 1e-9; d += 1) {
            int mlt;
            for (mlt = 1; mlt <= 5; mlt += (mlt == 1 ? 1 : 3)) {
                double xv = pow(10.0, d) * mlt, px;
                if (log10(xv) > xhi + 1e-9) break;
                if (log10(xv) < xlo - 1e-9) continue;
                px = distill_plot_px_x(xv, xlo, xhi, 1, w);
                fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", px, DISTILL__PL_MT,
                        px, (double)h - DISTILL__PL_MB, mlt == 1 ? "#ddd" : "#f0f0f0");
                if (mlt == 1 || xhi - xlo <= 2.6) {
                    distill__fmt_num(num, sizeof num, xv);
                    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%s</text>\n", px,
                            (double)h - DISTILL__PL_MB + 15, num);
                }
            }
        }
        if (any_zero) {
            double px = distill_plot_px_x(0, xlo, xhi, 1, w), bx = DISTILL__PL_ML + DISTILL__PL_ZG * 0.7,
                   by = (double)h - DISTILL__PL_MB;
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">0</text>\n", px, by + 15);
            /* the axis break: two short slanted strokes */
            fprintf(f, "<path d=\"M%.1f %.1f l6 -8 M%.1f %.1f l6 -8\" stroke=\"#444\" fill=\"none\"/>\n", bx - 5, by + 4, bx, by + 4);
        }
    } else {
        step = distill__nice_step(xhi - xlo, 6);
        for (v = ceil(xlo / step - 1e-9) * step; v <= xhi + step * 1e-6; v += step) {
            double px = distill_plot_px_x(v, xlo, xhi, 0, w);
            distill__fmt_num(num, sizeof num, v);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%s</text>\n", px,
                    (double)h - DISTILL__PL_MB + 15, num);
        }
    }
    /* series: error bars, line (split at NaN), markers */
    for (s = 0; s < p->n_series; s++) {
        const distill_plot_series *se = &p->series[s];
        const char *col = se->color ? se->color : distill__palette[s % 10];
        double sw = se->width > 0 ? se->width : 1.5, op = se->opacity > 0 ? se->opacity : 1;
        int open = 0;
        fprintf(f, "<g stroke=\"%s\" fill=\"%s\" opacity=\"%.2f\">\n", col, col, op);
        for (i = 0; i < se->n; i++) {
            double px, py;
            if (!(se->y[i] == se->y[i]) || !(se->x[i] == se->x[i])) {
                if (open) { fputs("\"/>\n", f); open = 0; }
                continue;
            }
            px = distill_plot_px_x(se->x[i], xlo, xhi, p->log_x, w);
            py = distill_plot_px_y(se->y[i], ylo, yhi, h);
            if (!open) {
                fprintf(f, "<polyline fill=\"none\" stroke-width=\"%.1f\"%s points=\"", sw,
                        se->dashed ? " stroke-dasharray=\"5,4\"" : "");
                open = 1;
            } else fputc(' ', f);
            fprintf(f, "%.1f,%.1f", px, py);
        }
        if (open) fputs("\"/>\n", f);
        for (i = 0; i < se->n; i++) {
            double px, py;
            if (!(se->y[i] == se->y[i]) || !(se->x[i] == se->x[i])) continue;
            px = distill_plot_px_x(se->x[i], xlo, xhi, p->log_x, w);
            py = distill_plot_px_y(se->y[i], ylo, yhi, h);
            if (se->y_err && se->y_err[i] == se->y_err[i] && se->y_err[i] > 0) {
                double y0 = distill_plot_px_y(se->y[i] - se->y_err[i], ylo, yhi, h);
                double y1 = distill_plot_px_y(se->y[i] + se->y_err[i], ylo, yhi, h);
                fprintf(f, "<path d=\"M%.1f %.1f V%.1f M%.1f %.1f h8 M%.1f %.1f h8\" stroke-width=\"1.2\" fill=\"none\"/>\n",
                        px, y0, y1, px - 4, y0, px - 4, y1);
            }
            if (se->markers) fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" stroke=\"none\"/>\n", px, py, sw + 1.5);
        }
        fputs("</g>\n", f);
    }
    /* legend, top right inside the plot area */
    if (legend_n) {
        double boxh = 6 + 15 * legend_n, left = DISTILL__PL_ML + (p->log_x ? DISTILL__PL_ZG : 0);
        double lx = (double)w - DISTILL__PL_MR - 150, ly = DISTILL__PL_MT + 6;
        int k = 0, pos = p->legend_pos;
        if (pos == DISTILL_LEGEND_TOP_LEFT || pos == DISTILL_LEGEND_BOTTOM_LEFT) lx = left + 6;
        if (pos == DISTILL_LEGEND_TOP_CENTER || pos == DISTILL_LEGEND_BOTTOM_CENTER) lx = (left + (double)w - DISTILL__PL_MR) / 2 - 72;
        if (pos >= DISTILL_LEGEND_BOTTOM_RIGHT) ly = (double)h - DISTILL__PL_MB - 6 - boxh;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"144\" height=\"%.0f\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n",
                lx, ly, boxh);
        for (s = 0; s < p->n_series; s++) {
            const distill_plot_series *se = &p->series[s];
            const char *col = se->color ? se->color : distill__palette[s % 10];
            double y = ly + 13 + 15 * k;
            if (!se->label) continue;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"%s/>\n",
                    lx + 6, y - 4, lx + 28, y - 4, col, se->width > 0 ? se->width : 1.5,
                    se->dashed ? " stroke-dasharray=\"5,4\"" : "");
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", lx + 34, y);
            distill__xml_text(f, se->label);
            fputs("</text>\n", f);
            k++;
        }
    }
    fputs("</g>\n", f);
}

DISTILL_API int distill_svg_write(FILE *f, const char *title, const distill_plot_panel *panels,
                                  int n_panels, int panel_w, int panel_h, distill_error *err) {
    int i, s, top = title && *title ? 30 : 0;
    if (n_panels < 1 || n_panels > 64 || panel_w < 200 || panel_h < 150 || panel_w > 10000 || panel_h > 10000)
        return distill__err(err, "svg: need 1..64 panels of at least 200x150 px (got %d of %dx%d)", n_panels, panel_w, panel_h);
    for (i = 0; i < n_panels; i++)
        for (s = 0; s < panels[i].n_series; s++) {
            const distill_plot_series *se = &panels[i].series[s];
            if (se->n < 0 || (se->n > 0 && (!se->x || !se->y)))
                return distill__err(err, "svg: panel %d series %d: missing x or y", i, s);
        }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"DejaVu Sans, Arial, sans-serif\">\n", panel_w * n_panels, panel_h + top,
            panel_w * n_panels, panel_h + top);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (top) {
        fprintf(f, "<text x=\"%d\" y=\"21\" text-anchor=\"middle\" font-size=\"16\">", panel_w * n_panels / 2);
        distill__xml_text(f, title);
        fputs("</text>\n", f);
    }
    for (i = 0; i < n_panels; i++) distill__panel(f, &panels[i], (double)(i * panel_w), (double)top, panel_w, panel_h);
    fputs("</svg>\n", f);
    return ferror(f) ? distill__err(err, "svg: write error") : 0;
}

DISTILL_API int distill_svg_save(const char *path, const char *title, const distill_plot_panel *panels,
                                 int n_panels, int panel_w, int panel_h, distill_error *err) {
    distill_atomic_file af;
    if (distill_atomic_open(&af, path, err) != 0) return -1;
    if (distill_svg_write(af.f, title, panels, n_panels, panel_w, panel_h, err) != 0) {
        distill_atomic_abort(&af);
        return -1;
    }
    return distill_atomic_commit(&af, err);
}
