/* ===================================================================================== */
/* PUBLIC API: reports: results tables and SVG plots  (owner: valley/demo issue)           */
/* ===================================================================================== */
/* Experiments end in a table a person reads and a plot a person looks at. A table is a
   header plus rows of text cells, written as CSV (RFC 4180 quoting), Markdown (for READMEs)
   or JSON (an array of objects; cells that are JSON numbers stay numbers). A plot is one or
   more panels side by side, each with line series over a linear or log10 x axis, written as a
   self-contained SVG file (no fonts or scripts to fetch). */

typedef struct distill_table {
    int ncol, nrow, cap;
    char **cells;            /* (nrow + 1) * ncol strings, row 0 is the header */
} distill_table;

/* 0 ok, -1 out of memory (or ncol < 1). Cells are copied; a NULL cell is an empty string. */
DISTILL_API int  distill_table_init(distill_table *t, const char *const *header, int ncol);
DISTILL_API int  distill_table_add_row(distill_table *t, const char *const *cells);
DISTILL_API const char *distill_table_cell(const distill_table *t, int row, int col); /* row 0-based, excluding the header */
DISTILL_API void distill_table_free(distill_table *t);
DISTILL_API void distill_table_write_csv(FILE *f, const distill_table *t);
DISTILL_API void distill_table_write_markdown(FILE *f, const distill_table *t);
DISTILL_API void distill_table_write_json(FILE *f, const distill_table *t);

/* One line of a plot. Points are joined in the order given; a NaN y leaves a gap. */
typedef struct distill_plot_series {
    const char *label;       /* legend text (NULL: not in the legend) */
    const double *x, *y;     /* n points */
    const double *y_err;     /* NULL, or half-widths of vertical error bars */
    int n;
    const char *color;       /* "#1f77b4" etc.; NULL: the palette colour of the series index */
    double width;            /* stroke width in px; <= 0: 1.5 */
    int dashed;              /* 1: dashed line */
    int markers;             /* 1: a dot on every point */
    double opacity;          /* <= 0: 1 */
} distill_plot_series;

typedef struct distill_plot_panel {
    const char *title, *xlabel, *ylabel;
    int log_x;               /* 1: log10 x axis; points with x <= 0 are drawn at a separate
                                position marked "0" left of an axis break (the untrained model) */
    double y_min, y_max;     /* y_min >= y_max: fitted to the data */
    const distill_plot_series *series;
    int n_series;
    int legend_pos;          /* DISTILL_LEGEND_*: where the legend box goes inside the plot area */
} distill_plot_panel;
enum { DISTILL_LEGEND_TOP_RIGHT = 0, DISTILL_LEGEND_TOP_LEFT, DISTILL_LEGEND_TOP_CENTER,
       DISTILL_LEGEND_BOTTOM_RIGHT, DISTILL_LEGEND_BOTTOM_LEFT, DISTILL_LEGEND_BOTTOM_CENTER };

/* Write an SVG document: a title line over n_panels panels side by side, each panel_w x panel_h
   pixels. 0 ok, -1 on invalid input (err says which). */
DISTILL_API int distill_svg_write(FILE *f, const char *title, const distill_plot_panel *panels,
                                  int n_panels, int panel_w, int panel_h, distill_error *err);
/* The same to a file, written atomically. */
DISTILL_API int distill_svg_save(const char *path, const char *title, const distill_plot_panel *panels,
                                 int n_panels, int panel_w, int panel_h, distill_error *err);

/* The geometry distill_svg_write uses, exposed for tests and for callers placing annotations:
   the pixel x of data x in a panel of width panel_w whose axis spans [lo, hi] (log10 units when
   log_x), and the pixel y of data y in [lo, hi] for height panel_h. */
DISTILL_API double distill_plot_px_x(double x, double lo, double hi, int log_x, int panel_w);
DISTILL_API double distill_plot_px_y(double y, double lo, double hi, int panel_h);
