/* distill json FILE: validate one JSON document (strict RFC 8259, UTF-8 checked), like a
   `jq .` check. Exit 0 and silent when valid; exit 1 with "FILE:line:col: message" when not. */
#include "cli.h"
#include <string.h>

int cli_json(int argc, char **argv) {
    distill_error err;
    distill_json *j;
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc == 2 ? stdout : stderr;
        fprintf(f, "usage: distill json FILE\n"
                   "  Validate one JSON document (RFC 8259 strict, valid UTF-8, depth <= %d).\n"
                   "  Exit 0 and print nothing when valid; exit 1 with FILE:line:col: message when not.\n"
                   "  For JSONL files use `distill data stats --data FILE`.\n", DISTILL_JSON_MAX_DEPTH);
        return argc == 2 ? 0 : 2;
    }
    j = distill_json_parse_file(argv[1], &err);
    if (!j) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    distill_json_free(j);
    return 0;
}
