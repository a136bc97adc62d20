/* distill - the command-line tool over distill.h.  Run `distill --help`. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "cli/cli.h"
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"tokenizer", cli_tokenizer, "train, encode and decode byte-level BPE tokenizers"},
    {"json", cli_json, "validate a JSON document (FILE:line:col: message on error)"},
    {"data", cli_data, "dataset stats, rendering with the loss mask, nested subsets"},
    {"generate", cli_generate, "continue a prompt with a model (greedy or sampled, KV cache)"},
    {"eval", cli_eval, "score generations: completion, think tags, pass@k (--generations or --model)"},
    {"world", cli_world, "the miniature programming world: generate problems, traces; verify"},
    {"sweep", cli_sweep, "the Valley of Code Reasoning experiment: data sweep, plots (make demo)"},
    {"bench", cli_bench, "training throughput on random tokens: tokens/s, MFU, peak RSS (JSON)"},
    {"train", cli_train, "train a student: SFT on teacher traces or logit distillation (KD)"},
    {"export", cli_export, "write a model as a Hugging Face folder (weights, config, tokenizer, chat template) or llama2.c .bin"},
    {"import", cli_import, "convert safetensors / llama2.c .bin into a distill checkpoint"},
    {"info", cli_info, "a model file's format, config, parameter count, weights SHA-256"},
};

static void usage(FILE *f) {
    size_t i;
    fprintf(f, "usage: distill <command> [options]   (distill <command> --help for details)\n"
               "       distill --version\n\n");
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nEvery command reads its options as flags (--name VALUE or --name=VALUE) or from\n"
               "--config FILE.json ({\"name\": value}, the flag names without --); a flag on the command\n"
               "line wins over the file. Numbers are checked whole and against their range.\n\n"
               CLI_EXIT_STATUS_TEXT
               "  (train, eval --model, sweep: 130 / 143 / 138 after SIGINT / SIGTERM / SIGUSR1, the work saved)\n");
}

/* The communicator of this process: MPI_COMM_WORLD when built with DISTILL_MPI and started by
   mpirun/srun, else the one-process communicator. `train` and `sweep` use it. */
static distill_comm the_comm;
static int have_comm;
const distill_comm *cli_comm(void) { return have_comm ? &the_comm : distill_comm_local(); }

/* On an error under MPI, end every rank: the others may be waiting in a collective. */
void cli_fail_all(int code) {
    const distill_comm *c = cli_comm();
    if (c->size > 1 && c->abort) { fflush(stdout); fflush(stderr); c->abort(c, code); }
}

int main(int argc, char **argv) {
    size_t i;
    int ranks, rank = 0, rc;
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("distill %s\n", DISTILL_VERSION);
        return 0;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) break;
    if (i == sizeof commands / sizeof commands[0]) {
        const char *near = NULL;
        int bd = 3;
        for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
            int d = cli_edit_distance(argv[1], commands[i].name);
            if (d < bd) { bd = d; near = commands[i].name; }
        }
        if (near) fprintf(stderr, "distill: unknown command '%s' (did you mean %s?)\n", argv[1], near);
        else fprintf(stderr, "distill: unknown command '%s' (see distill --help)\n", argv[1]);
        return 2;
    }
    ranks = distill_launcher_size(&rank);
    if (ranks > 1 && (!strcmp(argv[1], "train") || !strcmp(argv[1], "sweep"))) {
#ifdef DISTILL_MPI
        distill_error err;
        if (distill_mpi_init(&argc, &argv, &the_comm, &err) != 0) {
            fprintf(stderr, "distill %s: %s\n", argv[1], err.msg);
            return 1;
        }
        have_comm = 1;
#else
        if (rank == 0)
            fprintf(stderr, "distill %s: started as %d processes (mpirun/srun) but this build has no MPI; every copy would "
                            "do the whole job. Rebuild with `make MPI=1` (needs libopenmpi-dev), or run one process.\n",
                    argv[1], ranks);
        return 2;
#endif
    } else if (ranks > 1 && rank > 0) {
        return 0;   /* a one-process command started N times: rank 0 alone does it */
    }
    rc = commands[i].run(argc - 1, argv + 1);
    cli_opts_release();
#ifdef DISTILL_MPI
    if (have_comm) {
        if (rc != 0 && !cli_stopped_cleanly()) cli_fail_all(rc);   /* a signal's clean stop: no abort */
        distill_mpi_finalize();
    }
#endif
    return rc;
}
