/* The distill command-line tool: each subcommand lives in its own file in examples/cli/ and
   is registered in the table in examples/distill.c. Subcommands return a process exit status. */
#ifndef DISTILL_CLI_H
#define DISTILL_CLI_H
#include "../../distill.h"
#include "cli_opts.h"   /* the option layer: one table per command */

/* the values of the enumerations several commands share */
#define CLI_TEMPLATES "chatml|chatml-prefill|plain"
#define CLI_FORMATS "auto|messages|conversations|prompt-completion|alpaca|text|mapped"
#define CLI_LOSSES "assistant|last|all"

int cli_tokenizer(int argc, char **argv);   /* cli_tokenizer.c */
int cli_json(int argc, char **argv);        /* cli_json.c */
int cli_data(int argc, char **argv);        /* cli_data.c */
int cli_generate(int argc, char **argv);   /* cli_generate.c */
int cli_eval(int argc, char **argv);       /* cli_eval.c */
int cli_world(int argc, char **argv);       /* ../valley/cli_world.c (world.c: the miniature world) */
int cli_sweep(int argc, char **argv);       /* ../valley/sweep.c: the Valley experiment */
int cli_bench(int argc, char **argv);       /* cli_bench.c: distill bench train */
int cli_train(int argc, char **argv);       /* cli_train.c: SFT / logit distillation */
int cli_export(int argc, char **argv);      /* cli_export.c */
int cli_import(int argc, char **argv);      /* cli_import.c */
int cli_info(int argc, char **argv);        /* cli_info.c */

/* cli_verifier.c: the verifier of `eval` and `sweep`: "world" (name) or an external command
   (cmd) run per sample with a timeout in seconds. Fills *v (v->fn NULL: no verifier); 0, or 2
   after a message naming `who` for a usage error. cv must outlive v. */
typedef struct cli_verifier {
    int kind;             /* 0 none, 1 world, 2 command */
    const char *cmd;
    double timeout;
    const char *prompt;   /* the prompt the text answers (think markers), may be NULL */
    size_t prompt_len;
} cli_verifier;
int cli_verifier_setup(cli_verifier *cv, distill_verifier *v, const char *name, const char *cmd, double timeout,
                       const char *who);
int cli_verifier_run(void *ctx, const distill_json *record, const char *text, size_t len, char *reason,
                     size_t reason_cap);

/* examples/distill.c: the process's communicator (MPI_COMM_WORLD under `make MPI=1` + mpirun,
   else one process), and ending every rank after an error. */
const distill_comm *cli_comm(void);
void cli_fail_all(int code);

/* cli_signal.c: SIGINT, SIGTERM and SIGUSR1 ask the work to stop at its next safe point (pass
   cli_stop_flag() as distill_train_config.stop_flag / distill_eval_model_options.stop_flag);
   a second SIGINT or SIGTERM exits at once. The flag holds the first signal's number (0: none);
   cli_stop_status(sig) is the exit status to end with: 128 + sig (130 SIGINT, 143 SIGTERM,
   138 SIGUSR1 on Linux; 143 when sig is 0, i.e. another rank was signalled). */
void cli_catch_stop_signals(void);
volatile sig_atomic_t *cli_stop_flag(void);
int cli_stop_status(int sig);
int cli_stopped_cleanly(void);   /* cli_stop_status was called: main ends MPI without MPI_Abort */

#endif
