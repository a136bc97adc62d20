/* The option layer of the distill tool: one table per command drives the command line, the
   --config FILE.json file and the --help text, so that every command parses the same way.

   A command describes its options as a static table over a struct of its settings:

       typedef struct { const char *data; int max_seq; double lr; int pack; } my_opts;
       #define CLI_T my_opts
       static const cli_opt my_table[] = {
           CLI_SECTION("data"),
           CLI_PATH_REQ("data", data, "FILE", "training data"),
           CLI_INT("max-seq", max_seq, 16, 1 << 20, "longest row in tokens"),
           CLI_DBL("lr", lr, 0, 10, "peak learning rate"),
           CLI_BOOL("pack", pack, "pack several rows per sequence"),
       };
       #undef CLI_T

   Adding a flag is one line. The struct holds the defaults before parsing; --help shows them.

   The rules, the same for every command:
   - numbers are parsed whole: "abc", "1.5" for an integer, "1e999" and values outside [min, max]
     are usage errors whose one-line message names the flag and the accepted range; enumerations
     list their values; an unknown flag gets the nearest known one ("did you mean --max-seq?");
   - --flag VALUE and --flag=VALUE; a switch (bool) stands alone or takes 0/1 (--pack 0);
   - --config FILE.json: {"flag-name": value, ...} with the flag names without "--" (the spelling
     with '_' for '-', max_seq, is read as the same key: older sweep configs keep loading);
     numbers as JSON numbers, switches as true/false (or 0/1), repeatable flags as arrays of
     strings; an unknown key or a value of the wrong type is an error naming the file, the
     line and the key. Precedence: the defaults, then the config file, then the command line
     (a flag given there wins over the same key in the file; repeatable flags add to its list).
   - exit status: 0 ok, 1 failure, 2 usage error (every message above is one line on stderr). */
#ifndef DISTILL_CLI_OPTS_H
#define DISTILL_CLI_OPTS_H
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

typedef enum {
    CLI_K_INT,      /* int, integer in [min, max]                                   */
    CLI_K_INT64,    /* int64_t, integer in [min, max]                               */
    CLI_K_U64,      /* uint64_t, integer in [min, max] (seeds: max 2^64-1)          */
    CLI_K_DOUBLE,   /* double in [min, max]                                         */
    CLI_K_STRING,   /* const char * (text)                                          */
    CLI_K_PATH,     /* const char * (a file or folder)                              */
    CLI_K_ENUM,     /* const char *, one of the '|'-separated values                */
    CLI_K_BOOL,     /* int, 0 or 1                                                  */
    CLI_K_LIST,     /* cli_strlist: a repeatable flag                               */
    CLI_K_INTS,     /* cli_intlist: "1,5,10" or a JSON array, each in [min, max]     */
    CLI_K_BUF,      /* char[max]: text copied into a fixed buffer                   */
    CLI_K_OPTVAL,   /* cli_optval: a switch that may take a value (--resume [DIR])   */
    CLI_K_ALIAS,    /* another name of the flag in `meta`                           */
    CLI_K_SECTION   /* a heading in --help                                          */
} cli_kind;

#define CLI_LIST_MAX 64
typedef struct cli_strlist { const char *v[CLI_LIST_MAX]; int n; } cli_strlist;
typedef struct cli_intlist { int64_t v[CLI_LIST_MAX]; int n; } cli_intlist;
typedef struct cli_optval { int on; const char *value; } cli_optval;

enum { CLI_REQUIRED = 1 };

typedef struct cli_opt {
    const char *name;   /* the flag without "--" (one letter: "-o"); a section's title */
    cli_kind kind;
    size_t off;         /* offset of the setting in the command's struct */
    double min, max;    /* numbers: the accepted range; CLI_K_BUF: max is the buffer size */
    const char *meta;   /* the value's name in --help ("FILE"); ENUM: "a|b|c"; ALIAS: the flag */
    const char *help;
    int flags;          /* CLI_REQUIRED */
} cli_opt;

/* One line per option; CLI_T is the command's settings struct, #defined before the table. */
#define CLI__O(n, k, f, lo, hi, m, h, fl) {n, k, offsetof(CLI_T, f), lo, hi, m, h, fl}
#define CLI_INT(n, f, lo, hi, h)      CLI__O(n, CLI_K_INT, f, lo, hi, "N", h, 0)
#define CLI_INT64(n, f, lo, hi, h)    CLI__O(n, CLI_K_INT64, f, lo, hi, "N", h, 0)
#define CLI_U64(n, f, lo, hi, h)      CLI__O(n, CLI_K_U64, f, lo, hi, "N", h, 0)
#define CLI_DBL(n, f, lo, hi, h)      CLI__O(n, CLI_K_DOUBLE, f, lo, hi, "X", h, 0)
#define CLI_STR(n, f, m, h)           CLI__O(n, CLI_K_STRING, f, 0, 0, m, h, 0)
#define CLI_PATH(n, f, m, h)          CLI__O(n, CLI_K_PATH, f, 0, 0, m, h, 0)
#define CLI_PATH_REQ(n, f, m, h)      CLI__O(n, CLI_K_PATH, f, 0, 0, m, h, CLI_REQUIRED)
#define CLI_ENUM(n, f, vals, h)       CLI__O(n, CLI_K_ENUM, f, 0, 0, vals, h, 0)
#define CLI_BOOL(n, f, h)             CLI__O(n, CLI_K_BOOL, f, 0, 1, "", h, 0)
#define CLI_LIST(n, f, m, h)          CLI__O(n, CLI_K_LIST, f, 0, 0, m, h, 0)
#define CLI_INTS(n, f, lo, hi, h)     CLI__O(n, CLI_K_INTS, f, lo, hi, "N,N,...", h, 0)
#define CLI_BUF(n, f, m, h)           {n, CLI_K_BUF, offsetof(CLI_T, f), 0, (double)sizeof(((CLI_T *)0)->f), m, h, 0}
#define CLI_BUF_ENUM(n, f, vals, h)   {n, CLI_K_BUF, offsetof(CLI_T, f), 1, (double)sizeof(((CLI_T *)0)->f), vals, h, 0}
#define CLI_OPTVAL(n, f, m, h)        CLI__O(n, CLI_K_OPTVAL, f, 0, 0, m, h, 0)
#define CLI_ALIAS(n, target)          {n, CLI_K_ALIAS, 0, 0, 0, target, NULL, 0}
#define CLI_SECTION(title)            {title, CLI_K_SECTION, 0, 0, 0, NULL, NULL, 0}

/* A command: its name in messages ("train", "data stats"), the synopsis and text around the
   option list in --help, the table, and how many positional arguments it takes. */
typedef struct cli_cmd {
    const char *name;
    const char *usage;      /* "usage: distill train --data FILE ... [options]\n" (may be several lines) */
    const char *about;      /* text between the synopsis and the options, or NULL */
    const cli_opt *opts;
    int n_opts;
    const char *notes;      /* text after the options, or NULL */
    int max_pos;            /* positional arguments accepted (0: none) */
} cli_cmd;
#define CLI_N(table) ((int)(sizeof(table) / sizeof((table)[0])))

enum { CLI_HELP = -1 };

/* The whole command line of a command (argv[0] is the command's name): --help/-h anywhere
   prints the help to stdout and returns CLI_HELP (exit 0); then every --config FILE in order,
   then the flags. Positional arguments go to pos[0..*n_pos) (NULL pos: none accepted). Checks
   the CLI_REQUIRED options. 0 ok, 2 after a one-line message on stderr. */
int cli_parse(const cli_cmd *c, void *s, int argc, char **argv, const char **pos, int *n_pos);
/* The pieces, for commands that layer presets and saved configs (the sweep). */
int cli_config_load(const cli_cmd *c, void *s, const char *path);                 /* 0 or 2 */
int cli_args_apply(const cli_cmd *c, void *s, int argc, char **argv, const char **pos, int *n_pos); /* skips --config */
int cli_check_required(const cli_cmd *c, const void *s);                          /* 0 or 2 */
/* 1 if argv (argv[0] is the command) gives flag `name` on the command line itself. */
int cli_args_have(const cli_cmd *c, int argc, char **argv, const char *name);
void cli_help(const cli_cmd *c, const void *defaults, FILE *f);
/* The resolved options as a JSON object in the --config format (unset texts left out): what a
   run records so that it can be repeated with --config. */
void cli_opts_write_json(const cli_cmd *c, const void *s, FILE *f);
/* A usage error: "distill <cmd>: <message>" on one line of stderr; returns 2. */
int cli_usage_error(const cli_cmd *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Frees the config documents the parsed strings point into (at the end of main). */
void cli_opts_release(void);
/* Levenshtein distance (the suggestion for a misspelt flag); exposed for the tests. */
int cli_edit_distance(const char *a, const char *b);

#define CLI_EXIT_STATUS_TEXT "exit status: 0 ok, 1 failure, 2 usage error (bad or missing flag: one line on stderr)\n"
#endif
