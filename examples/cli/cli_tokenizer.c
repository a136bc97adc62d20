/* distill tokenizer ...   (owner: tokenizer issue; placeholder until it lands) */
#include "cli.h"
int cli_tokenizer(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "distill tokenizer: not implemented yet\n");
    return 2;
}
