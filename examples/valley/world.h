/* world.h - a miniature competitive-programming world for the Valley of Code Reasoning
   experiment (arXiv 2510.06101), small enough that a student of a few hundred thousand
   parameters trained for seconds can learn part of it.

   THE LANGUAGE. A program is a pipeline of operations on a list of small integers, separated
   by '|', e.g.

       filter odd | sort | take 2 | sum

   Transforms (list -> list):  map +K, map -K, map *K, filter odd, filter even, filter >K,
   filter <K, sort, rsort, reverse, uniq, take K, drop K, scan (running totals).
   Reductions (list -> int, only as the last step): sum, max, min, len, first, last.
   The interpreter is safe by construction: fixed-size values (at most WORLD_MAX_LIST items),
   at most WORLD_MAX_OPS steps, values bounded by WORLD_MAX_ABS (overflow is an error), a step
   budget, no recursion and no allocation. Every failure is an error message, never a crash.

   THE PROBLEMS. A problem is a hidden program described in words plus two public examples;
   hidden tests judge a solution. Five levels: 1-2 ops described precisely (levels 1, 2: EASY),
   then 2-4 ops of which one or two are described vaguely ("put them in order": sort or rsort?)
   so that the examples must be used to decide (levels 3-5: HARD).

   THE TEACHER writes a reasoning trace inside <think>...</think>: the candidate readings of
   each vague phrase, then hypotheses ("try ...") each checked against the examples by really
   running it, backtracking to the next hypothesis on a mismatch, then a fenced solution. With
   probability error_rate the teacher is hasty (checks one example and stops at a misreading
   that happens to fit it) or slips when writing the final code; the record's judgement and
   pass_rate come from actually running the final code on the hidden tests. */
#ifndef WORLD_H
#define WORLD_H
#include "../../distill.h"

/* The generator's version: bump it whenever the files world_write_files makes change (fields,
   problems, traces), so that `distill sweep` makes an old world again instead of reusing it. */
#define WORLD_VERSION 2

#define WORLD_MAX_LIST 32         /* items in a list value                               */
#define WORLD_MAX_OPS 8           /* steps in a program                                  */
#define WORLD_MAX_ABS 1000000     /* |value| above this is an overflow error             */
#define WORLD_MAX_STEPS 20000     /* element operations per run                          */
#define WORLD_MAX_PROGRAM_TEXT 512
#define WORLD_N_PUBLIC 2
#define WORLD_N_HIDDEN 6
#define WORLD_N_LEVELS 5

typedef enum world_opcode {
    WORLD_MAP_ADD, WORLD_MAP_SUB, WORLD_MAP_MUL,
    WORLD_FILTER_ODD, WORLD_FILTER_EVEN, WORLD_FILTER_GT, WORLD_FILTER_LT,
    WORLD_SORT, WORLD_RSORT, WORLD_REVERSE, WORLD_UNIQ, WORLD_TAKE, WORLD_DROP, WORLD_SCAN,
    WORLD_SUM, WORLD_MAX, WORLD_MIN, WORLD_LEN, WORLD_FIRST, WORLD_LAST,
    WORLD_OP_COUNT
} world_opcode;

typedef struct world_op { int code, arg; } world_op;
typedef struct world_program { int n; world_op ops[WORLD_MAX_OPS]; } world_program;

/* A value: a list of n items, or (is_int) one integer in v[0]. */
typedef struct world_value { int is_int, n; int64_t v[WORLD_MAX_LIST]; } world_value;

typedef struct world_test { world_value in, out; } world_test;

typedef struct world_problem {
    uint64_t seed;
    int level;                              /* 1..5 */
    world_program truth;
    int vague[WORLD_MAX_OPS];               /* 1: step i is described vaguely */
    char question[1024];
    world_test pub[WORLD_N_PUBLIC], hid[WORLD_N_HIDDEN];
} world_problem;

/* ---- language ------------------------------------------------------------------------- */
/* Parse program text; 0 ok, -1 with a message naming the position in err. */
int  world_parse(const char *text, size_t len, world_program *p, char *err, size_t err_cap);
/* Run p on in. trace (may be NULL) receives the value after each step (p->n entries).
   0 ok, -1 runtime error (message in err). */
int  world_run(const world_program *p, const world_value *in, world_value *out,
               world_value *trace, char *err, size_t err_cap);
/* Canonical text: "filter odd | sum", "[3,1,4]", "7". Return the length written. */
size_t world_format_program(const world_program *p, char *buf, size_t cap);
size_t world_format_value(const world_value *v, char *buf, size_t cap);
int  world_parse_value(const char *text, size_t len, world_value *v, char *err, size_t err_cap);
int  world_value_equal(const world_value *a, const world_value *b);

/* ---- problems and the teacher ----------------------------------------------------------- */
/* Deterministic in (seed, level). level in 1..5. Returns 0 (always succeeds for valid level). */
int  world_generate(world_problem *pr, uint64_t seed, int level);
const char *world_difficulty_label(int level);      /* "EASY" or "HARD" */

/* How a teacher's trace went. The failures are the ways a real teacher fails, mixed:
     MISREAD    it misreads one precise step, then searches and checks every example as
                carefully as ever; a reading of the misread program fits the examples but not
                the hidden tests (same shape and length as a careful trace)
     EXEC_SLIP  while checking a wrong reading it makes one execution slip (the last value of a
                check line is the wanted one instead of the computed one) and accepts it
     HASTY      it accepts a reading after checking only the first example
     SLIP       the reasoning is right but the code written down differs from it
   Which traces are wrong is decided only by running the final code on the hidden tests. */
typedef enum world_teacher_kind {
    WORLD_TEACHER_CAREFUL, WORLD_TEACHER_HASTY, WORLD_TEACHER_SLIP, WORLD_TEACHER_MISREAD, WORLD_TEACHER_EXEC_SLIP
} world_teacher_kind;
#define WORLD_N_TEACHER_KINDS 5
const char *world_teacher_kind_name(world_teacher_kind k);   /* "careful", "hasty", ... */
/* Write the teacher's response (<think>...</think> then a fenced program) into buf. When
   hasty != 0 the teacher makes a mistake (kind in *kind; the mode is drawn from seed, falling
   back to another mode when one cannot make this problem's code wrong). *final receives the
   program in the fenced block. Returns the length written, or 0 if buf is too small. */
size_t world_teacher(const world_problem *pr, uint64_t seed, int hasty, char *buf, size_t cap,
                     world_program *final, world_teacher_kind *kind);
/* The direct answer of a non-reasoning model: only the fenced reference program. */
size_t world_direct(const world_problem *pr, char *buf, size_t cap);
/* Program execution as text, "[3,8,1] -> [3,1] -> 4" (the `distill world run` form), and a
   program's precise description, "keep the odd numbers, then add them up.": the instruct
   analog's other training text. Return the length written (0 if buf is too small). */
size_t world_execution_text(const world_program *p, const world_value *in, char *buf, size_t cap);
size_t world_describe(const world_program *p, char *buf, size_t cap);

/* Locate the answer in a model's text: the last fenced block after the last "</think>", or
   the last fenced block anywhere when there is no "</think>". An unterminated final fence
   does not count. Returns 1 and sets code/code_len, or 0 when there is none. */
int  world_extract_code(const char *text, size_t len, const char **code, size_t *code_len);
/* Run text's answer on tests; returns the number passed (0 if no code or it does not parse). */
int  world_score_text(const char *text, size_t len, const world_test *tests, int n,
                      char *reason, size_t reason_cap);

/* Write one JSONL record (no trailing newline). teacher_response may be NULL (eval sets). */
void world_write_record(FILE *f, const world_problem *pr, const char *id,
                        const char *response, double pass_rate, int right, const char *kind);

/* ---- data sets --------------------------------------------------------------------------- */
typedef struct world_gen_options {
    uint64_t n_train;      /* teacher traces (train.jsonl)                         2000 */
    uint64_t n_direct;     /* direct answers to other problems (direct.jsonl); (uint64_t)-1: = n_train */
    uint64_t n_eval;       /* held-out problems, levels balanced (eval.jsonl)      200 */
    uint64_t seed;         /* 1 */
    double error_rate;     /* share of erring teacher traces                       0.3 */
    int stage0_extra;      /* 1: direct.jsonl also holds, per problem, an execution row and a
                              description -> program row (the instruct analog)       1 */
} world_gen_options;
world_gen_options world_gen_options_default(void);
typedef struct world_gen_summary {
    uint64_t made[3];                          /* train, direct, eval */
    long long levels[3][WORLD_N_LEVELS + 1];
    long long right, kinds[WORLD_N_TEACHER_KINDS]; /* train: right traces; traces per teacher kind */
    double resp_chars;                         /* train: total response characters */
    long long extra;                           /* direct: execution + description rows */
} world_gen_summary;
/* Write dir/train.jsonl, dir/direct.jsonl, dir/eval.jsonl (atomically; dir must exist). Problem
   seeds come from separate streams; eval problems share neither program nor statement with any
   train/direct row (a reserved eighth of the programs is eval-only).
   0 ok, -1 with err. */
int  world_write_files(const char *dir, const world_gen_options *o, world_gen_summary *sum,
                       distill_error *err);
void world_print_summary(FILE *f, const world_gen_options *o, const world_gen_summary *sum);

/* The verifier `distill eval --verifier world` calls: read the record's "hidden_tests"
   ([{"input": "[1,2]", "output": "3"}, ...]), extract the answer from text and run it on all of
   them. Returns 1 when every hidden test passes, 0 otherwise (reason says why, e.g.
   "no fenced code block after </think>", "parse error at 7: unknown operation 'mapp'",
   "hidden test 3: got [1,2], want [2,1]"). */
int world_verify_text(const distill_json *record, const char *text, size_t len, char *reason,
                      size_t reason_cap);

#endif
