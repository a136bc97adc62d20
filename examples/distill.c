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
    {"export", cli_export, "write a model as safetensors (+config.json) or llama2.c .bin"},
    {"import", cli_import, "convert safetensors / llama2.c .bin into a distill checkpoint"},
    {"info", cli_info, "a model file's format, config, parameter count, weights SHA-256"},
};

static void usage(FILE *f) {
    size_t i;
    fprintf(f, "usage: distill <command> [options]   (distill <command> --help for details)\n\n");
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    size_t i;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "distill: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
