/* PUBLIC API: reports: results tables and SVG plots (owner: valley/demo issue) */
