/* distill json FILE: validate one JSON document (strict RFC 8259, UTF-8 checked), like a
   `jq .` check. Exit 0 and silent when valid; exit 1 with "FILE:line:col: message" when not. */
#include "cli.h"
#include <string.h>

#define CLI_JSON_DEPTH_TEXT_(x) #x
#define CLI_JSON_DEPTH_TEXT(x) CLI_JSON_DEPTH_TEXT_(x)

typedef struct { int unused; } json_opts;

#define CLI_T json_opts
static const cli_opt json_options[] = {
    CLI_SECTION("  (none: the file is the one argument)"),
};
#undef CLI_T

static const cli_cmd json_cmd = {
    "json", "usage: distill json FILE\n",
    "  Validate one JSON document (RFC 8259 strict, valid UTF-8, depth <= " CLI_JSON_DEPTH_TEXT(DISTILL_JSON_MAX_DEPTH) ").\n"
    "  Exit 0 and print nothing when valid; exit 1 with FILE:line:col: message when not.\n"
    "  For JSONL files use `distill data stats --data FILE`.\n",
    json_options, CLI_N(json_options), NULL, 1};

int cli_json(int argc, char **argv) {
    distill_error err;
    distill_json *j;
    const char *file = NULL;
    json_opts o;
    int npos = 0, rc = cli_parse(&json_cmd, &o, argc, argv, &file, &npos);
    if (rc != 0) return rc == CLI_HELP ? 0 : 2;
    if (!npos) return cli_usage_error(&json_cmd, "FILE is required: distill json FILE");
    j = distill_json_parse_file(file, &err);
    if (!j) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    distill_json_free(j);
    return 0;
}
