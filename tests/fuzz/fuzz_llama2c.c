/* libFuzzer harness for llama2.c model import (make fuzz-all): the input is written to a file
   and loaded with distill_model_load (format detection, the 7 x int32 header, the weight size
   check, the RoPE row permutation), and also handed straight to the llama2.c reader so inputs
   that detection would route elsewhere still reach it. A load must end in a model or an error
   message, never a crash, a sanitizer report, or an allocation the file cannot justify. */
#define DISTILL_IMPLEMENTATION
#include "../../distill.h"
#include <unistd.h>

static char fuzz_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    snprintf(fuzz_path, sizeof fuzz_path, "/tmp/distill_fuzz_l2c.%ld.bin", (long)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    distill_error err;
    distill_model *m;
    FILE *f;
    if (size > (1 << 20)) return 0;
    f = fopen(fuzz_path, "wb");
    if (!f) return 0;
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    err.msg[0] = 0;
    m = distill_model_load(fuzz_path, 1, 4, NULL, &err);
    if (!m && !err.msg[0]) __builtin_trap();
    distill_model_free(m);
    if (size >= 28) {
        err.msg[0] = 0;
        m = distill__load_llama2c(data, size, "fuzz", 1, 4, &err);
        if (!m && !err.msg[0]) __builtin_trap();
        distill_model_free(m);
    }
    return 0;
}
