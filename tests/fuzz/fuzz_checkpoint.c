/* libFuzzer harness for the library's own checkpoint format (make fuzz-all): the input is written
   to a file and read back with distill_checkpoint_read, every section is touched, and the file
   goes through distill_model_load and distill_trainer_resume (a trainer over a tiny model with
   the seed's config). A read must end in a checkpoint or an error message, never a crash, a
   sanitizer report, or an allocation the file cannot justify (libFuzzer's -malloc_limit_mb).
   The first input byte is a mode: bit 0 recomputes both CRC-32s so the fuzzer gets past the
   checksums into the JSON header, the section table and the training state. */
#define DISTILL_IMPLEMENTATION
#include "../../distill.h"
#include <unistd.h>

static char fuzz_path[64];
static distill_model *fuzz_m;
static distill_trainer *fuzz_t;
static int64_t fuzz_state[3];

static int src_next(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err) {
    (void)ctx; (void)b; (void)rows; (void)n_rows;
    return distill__err(err, "no data");
}
static void src_get(void *ctx, int64_t s[3]) { (void)ctx; memcpy(s, fuzz_state, sizeof fuzz_state); }
static int src_set(void *ctx, const int64_t s[3], distill_error *err) {
    (void)ctx;
    if (s[0] < 0) return distill__err(err, "bad state");
    memcpy(fuzz_state, s, sizeof fuzz_state);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    distill_config c = distill_config_default();
    distill_batch_source src;
    distill_train_config tc = distill_train_default();
    distill_error err;
    (void)argc; (void)argv;
    snprintf(fuzz_path, sizeof fuzz_path, "/tmp/distill_fuzz_ckpt.%ld.dstl", (long)getpid());
    c.vocab_size = 16; c.dim = 8; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 2; c.hidden_dim = 12;
    c.tie_embeddings = 1;
    fuzz_m = distill_model_create(&c, 1, 8, 7, &err);
    memset(&src, 0, sizeof src);
    src.next = src_next; src.get_state = src_get; src.set_state = src_set;
    tc.max_steps = 10; tc.progress = 0;
    fuzz_t = fuzz_m ? distill_trainer_create(fuzz_m, &src, NULL, &tc, &err) : NULL;
    if (!fuzz_t) { fprintf(stderr, "fuzz_checkpoint: setup failed: %s\n", err.msg); abort(); }
    return 0;
}

static void fix_crcs(unsigned char *b, size_t n) {
    if (n < DISTILL__CKPT_HDR) return;
    distill__put_u32(b + 32, distill_crc32(0, b + DISTILL__CKPT_HDR, n - DISTILL__CKPT_HDR));
    distill__put_u32(b + 36, distill_crc32(0, b, 36));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    distill_error err;
    distill_checkpoint *ck;
    unsigned char *b;
    unsigned mode;
    FILE *f;
    if (size < 1 || size > (1 << 20)) return 0;
    mode = data[0];
    b = (unsigned char *)malloc(size);
    memcpy(b, data + 1, size - 1);
    if (mode & 1) fix_crcs(b, size - 1);
    f = fopen(fuzz_path, "wb");
    if (!f) { free(b); return 0; }
    fwrite(b, 1, size - 1, f);
    fclose(f);
    free(b);

    err.msg[0] = 0;
    ck = distill_checkpoint_read(fuzz_path, &err);
    if (!ck) {
        if (!err.msg[0]) __builtin_trap();   /* a failure always explains itself */
    } else {
        static const char *names[] = {"params", "adam_m", "adam_v", "loader", "nope"};
        size_t i, k, n;
        unsigned sum = 0;
        for (i = 0; i < sizeof names / sizeof names[0]; i++) {
            const unsigned char *p = (const unsigned char *)distill_checkpoint_section(ck, names[i], &n);
            for (k = 0; p && k < n; k++) sum += p[k];  /* ASan checks every byte is inside the file */
        }
        if (sum == 0xdeadbeef) fprintf(stderr, " ");
        distill_checkpoint_free(ck);
        if (mode & 2) {
            distill_model *m = distill_model_load(fuzz_path, 1, 4, NULL, &err);
            if (!m && !err.msg[0]) __builtin_trap();
            distill_model_free(m);
        }
        if (mode & 4) {
            err.msg[0] = 0;
            if (distill_trainer_resume(fuzz_t, fuzz_path, &err) != 0 && !err.msg[0]) __builtin_trap();
        }
    }
    return 0;
}
