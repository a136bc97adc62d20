/* libFuzzer harness for safetensors import (make fuzz-all). Input: u16 little-endian length n,
   n bytes of config.json, then the .safetensors bytes; both are written into a per-process
   directory and loaded with distill_model_load (format detection, config.json, header JSON,
   dtypes, shapes, data_offsets, F16/BF16 conversion). A load must end in a model or an error
   message, never a crash, a sanitizer report, or an allocation the files cannot justify. */
#define DISTILL_IMPLEMENTATION
#include "../../distill.h"
#include "fuzz_put.h"
#include <unistd.h>
#include <sys/stat.h>

static char fuzz_dir[64], fuzz_model[96], fuzz_cfg[96];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/distill_fuzz_st.%ld", (long)getpid());
    mkdir(fuzz_dir, 0755);
    snprintf(fuzz_model, sizeof fuzz_model, "%s/model.safetensors", fuzz_dir);
    snprintf(fuzz_cfg, sizeof fuzz_cfg, "%s/config.json", fuzz_dir);
    return 0;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    distill_error err;
    distill_model *m;
    size_t nc;
    if (size < 2 || size > (1 << 20)) return 0;
    nc = (size_t)data[0] | ((size_t)data[1] << 8);
    if (nc > size - 2) return 0;
    if (put(fuzz_cfg, data + 2, nc) || put(fuzz_model, data + 2 + nc, size - 2 - nc)) return 0;
    err.msg[0] = 0;
    m = distill_model_load(fuzz_model, 1, 4, NULL, &err);
    if (!m) {
        if (!err.msg[0]) __builtin_trap();
        return 0;
    }
    distill_model_free(m);
    return 0;
}
