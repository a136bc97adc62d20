/* libFuzzer harness for the data loader (make fuzz): the input is written as a JSONL (or .json)
   file and loaded with the skip policy, every format, field mapping, filters, the think
   normalisation, max_seq truncation, and the minimind tokenizer when ../shared/data has it.
   A load must end in a dataset or an error message, never a crash; a loaded dataset is then
   rendered through the loader (batches, packing). */
#define DISTILL_IMPLEMENTATION
#include "../../distill.h"
#include <unistd.h>

static distill_tokenizer *fuzz_tok;
static char fuzz_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    distill_error err;
    (void)argc;
    (void)argv;
    fuzz_tok = distill_tokenizer_load("../shared/data/minimind/tokenizer.json", NULL, &err);
    snprintf(fuzz_path, sizeof fuzz_path, "/tmp/distill_fuzz_data.%ld.jsonl", (long)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *maps[] = {"q=prompt", "r=response", "t=think", "s=system"};
    static const char *filters[] = {"d in {EASY, MEDIUM}", "p >= 0.5"};
    distill_data_options o = distill_data_options_default();
    distill_dataset *ds;
    distill_error err;
    FILE *f;
    unsigned sel = size ? data[0] : 0;
    if (size > (1 << 20)) return 0;
    f = fopen(fuzz_path, "wb");
    if (!f) return 0;
    if (size > 1) fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    o.policy = (sel & 1) ? DISTILL_POLICY_SKIP : DISTILL_POLICY_STRICT;
    o.format = (distill_data_format)((sel >> 1) % 7);
    if (sel & 0x10) { o.map = maps; o.n_map = 4; }
    if (sel & 0x20) { o.filters = filters; o.n_filters = 2; }
    o.normalize_think = (sel >> 6) & 1;
    if (sel & 0x80) { o.max_seq = 16; o.truncate = 1; }
    ds = distill_dataset_load(fuzz_path, &o, (sel & 4) ? fuzz_tok : NULL, &err);
    if (!ds) {
        if (err.msg[0] == 0) __builtin_trap();   /* a failure always explains itself */
        return 0;
    }
    if (distill_dataset_size(ds) <= 0) __builtin_trap();   /* never a silently empty dataset */
    if ((sel & 4) && fuzz_tok) {
        distill_loader_options lo = distill_loader_options_default();
        distill_loader *L;
        distill_batch b;
        int i;
        lo.pack = (sel >> 3) & 1;
        lo.batch_rows = 3;
        L = distill_loader_create(ds, &lo, &err);
        for (i = 0; L && i < 4; i++) if (distill_loader_next(L, &b, &err) != 0) __builtin_trap();
        distill_loader_free(L);
    }
    distill_dataset_free(ds);
    return 0;
}
