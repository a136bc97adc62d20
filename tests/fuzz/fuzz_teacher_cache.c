/* libFuzzer harness for the top-k teacher cache (make fuzz-all): the input is written to a file
   and opened with distill_topk_cache_open; an accepted cache is then used the way the trainer
   uses it: every row is checked against a made-up row, and every position's entry (ids,
   log-probabilities, tail) goes through distill_kd_position with finite student logits. An
   accepted cache must give a finite loss everywhere (no silent NaN) and list k distinct ids per
   position. The first byte is a mode: bit 0 recomputes the trailing CRC-32 so mutations reach
   the row table and the entries. */
#define DISTILL_IMPLEMENTATION
#include "../../distill.h"
#include <unistd.h>

static char fuzz_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    snprintf(fuzz_path, sizeof fuzz_path, "/tmp/distill_fuzz_topk.%ld.topk", (long)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    distill_error err;
    distill_topk_cache *c;
    unsigned char *b;
    unsigned mode;
    FILE *f;
    if (size < 1 || size > (1 << 20)) return 0;
    mode = data[0];
    b = (unsigned char *)malloc(size);
    memcpy(b, data + 1, size - 1);
    if ((mode & 1) && size - 1 >= 8) distill__put_u32(b + size - 5, distill_crc32(0, b, size - 5));
    f = fopen(fuzz_path, "wb");
    if (!f) { free(b); return 0; }
    fwrite(b, 1, size - 1, f);
    fclose(f);
    free(b);

    err.msg[0] = 0;
    c = distill_topk_cache_open(fuzz_path, (mode & 2) ? 11 : 0, (mode & 4) ? 2 : 0, &err);
    if (!c) {
        if (!err.msg[0]) __builtin_trap();
        return 0;
    }
    {
        int64_t r, p;
        int V = distill_topk_cache_vocab(c), k = distill_topk_cache_k(c), j;
        int32_t tok[6] = {1, 2, 3, 4, 5, 6}, tg[6] = {-1, 3, 4, 5, 6, 7};
        for (r = -1; r <= distill_topk_cache_rows(c) && r < 64; r++)
            distill_topk_cache_check_row(c, r, tok, tg, 6, &err);
        if (V <= 4096) {
            double *s = (double *)malloc(sizeof(double) * (size_t)V);
            double *g = (double *)malloc(sizeof(double) * (size_t)V);
            double *scratch = (double *)malloc(sizeof(double) * 5 * (size_t)V);
            distill_kd_config kc = distill_kd_default();
            for (j = 0; j < V; j++) s[j] = (double)((j * 37) % 11) * 0.3 - 1.0;
            kc.temperature = (mode & 8) ? 2.0f : 1.0f;
            kc.beta = (mode & 16) ? 0.5f : 0.0f;
            for (p = 0; p < c->n_positions && p < 256; p++) {
                const unsigned char *e = c->entries + (size_t)p * c->entry_bytes;
                int32_t ids[64];
                float lp[64], tail;
                int a, q, kk = k < 64 ? k : 64;
                distill_kd_result res;
                for (a = 0; a < kk; a++) {
                    ids[a] = (int32_t)distill__get_u32(e + 4 * (size_t)a);
                    lp[a] = distill__get_f32(e + 4 * (size_t)(k + a));
                }
                for (a = 0; a < kk; a++)
                    for (q = a + 1; q < kk; q++)
                        if (ids[a] == ids[q]) __builtin_trap();   /* duplicate ids: a silently wrong loss */
                tail = distill__get_f32(e + 8 * (size_t)k);
                res = distill_kd_position(s, V, NULL, ids, lp, kk, tail, 2, &kc, g, scratch);
                if (kk == k && !(res.loss == res.loss && fabs(res.loss) < INFINITY)) __builtin_trap();
            }
            free(s); free(g); free(scratch);
        }
    }
    distill_topk_cache_free(c);
    return 0;
}
