/* libFuzzer harness for sharded safetensors (make fuzz-all). Input: u16 little-endian length a,
   a bytes of config.json; u16 length b, b bytes of model.safetensors.index.json; u32 length c,
   c bytes of model-00001-of-00002.safetensors; the rest is model-00002-of-00002.safetensors.
   The four files are written into a per-process folder and the folder is loaded with
   distill_model_load (folder resolution, the index's weight_map and shard names, config.json's
   fields and refusals, every shard's header, tensors once across shards). A load must end in a
   model or an error message, never a crash, a sanitizer report, or an unjustified allocation. */
#define DISTILL_IMPLEMENTATION
#include "../../distill.h"
#include "fuzz_put.h"
#include <unistd.h>
#include <sys/stat.h>

static char fuzz_dir[64], fuzz_cfg[96], fuzz_ix[128], fuzz_s1[128], fuzz_s2[128];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/distill_fuzz_sh.%ld", (long)getpid());
    mkdir(fuzz_dir, 0755);
    snprintf(fuzz_cfg, sizeof fuzz_cfg, "%s/config.json", fuzz_dir);
    snprintf(fuzz_ix, sizeof fuzz_ix, "%s/model.safetensors.index.json", fuzz_dir);
    snprintf(fuzz_s1, sizeof fuzz_s1, "%s/model-00001-of-00002.safetensors", fuzz_dir);
    snprintf(fuzz_s2, sizeof fuzz_s2, "%s/model-00002-of-00002.safetensors", fuzz_dir);
    return 0;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    distill_error err;
    distill_model *m;
    size_t a, b, c, at = 0;
    if (size < 8 || size > (1 << 20)) return 0;
    a = (size_t)data[0] | ((size_t)data[1] << 8);
    at = 2;
    if (a > size - at) return 0;
    if (put(fuzz_cfg, data + at, a)) return 0;
    at += a;
    if (size - at < 2) return 0;
    b = (size_t)data[at] | ((size_t)data[at + 1] << 8);
    at += 2;
    if (b > size - at || put(fuzz_ix, data + at, b)) return 0;
    at += b;
    if (size - at < 4) return 0;
    c = (size_t)data[at] | ((size_t)data[at + 1] << 8) | ((size_t)data[at + 2] << 16) | ((size_t)data[at + 3] << 24);
    at += 4;
    if (c > size - at || put(fuzz_s1, data + at, c) || put(fuzz_s2, data + at + c, size - at - c)) return 0;
    err.msg[0] = 0;
    m = distill_model_load(fuzz_dir, 1, 4, NULL, &err);
    if (!m) {
        if (!err.msg[0]) __builtin_trap();
        return 0;
    }
    distill_model_free(m);
    return 0;
}
