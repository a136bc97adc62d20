/* The program every configuration of the build matrix compiles and runs (make matrix,
   tests/compile_check.sh --run): two training steps of a small Qwen2-style model (GQA, qkv bias,
   untied head), a JSON parse and a CRC, printed as one line of numbers that the script compares
   with the default build's (floats within a relative 1e-4: compilers may contract or vectorise
   differently, the algorithm must not change). With MATRIX_TWO_TU it is linked with a second
   translation unit that also holds a DISTILL_STATIC implementation. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"

#ifdef MATRIX_TWO_TU
int matrix_tu_b(void);
#endif

int main(void) {
    distill_config c = distill_config_default();
    distill_optim_config oc = distill_optim_default();
    distill_error err;
    distill_model *m;
    distill_batch b;
    distill_stats st0, st1;
    double gn0 = 0.0, gn1 = 0.0;
    static int32_t tok[2 * 16], tg[2 * 16];
    distill_json *j;
    int i, extra = 0;
    c.vocab_size = 64; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 48;
    c.qkv_bias = 1; c.tie_embeddings = 0; c.rope_theta = 1000000.0f;
    m = distill_model_create(&c, 2, 16, 1234, &err);
    if (!m) { printf("error %s\n", err.msg); return 1; }
    for (i = 0; i < 32; i++) { tok[i] = (int32_t)((i * 13 + 7) % 64); tg[i] = i % 16 < 3 ? -1 : (int32_t)((i * 5 + 1) % 64); }
    memset(&b, 0, sizeof b);
    b.B = 2; b.T = 16; b.tokens = tok; b.targets = tg;
    oc.lr = 3e-3f; oc.warmup_steps = 0;
    if (distill_train_step(m, &b, &oc, 0, &st0, &gn0, &err) != 0 || distill_train_step(m, &b, &oc, 1, &st1, &gn1, &err) != 0) {
        printf("error %s\n", err.msg);
        return 1;
    }
    {
        const char *doc = "{\"a\": [1, 2, {\"b\": -9007199254740993}]}";   /* beyond 2^53: exact int64 */
        j = distill_json_parse(doc, strlen(doc), "m", 1, &err);
    }
#ifdef MATRIX_TWO_TU
    extra = matrix_tu_b();
#endif
    printf("loss0 %.9g loss1 %.9g gnorm0 %.9g gnorm1 %.9g crc %08x json %lld extra %d simd %s\n", st0.loss, st1.loss, gn0, gn1,
           (unsigned)distill_crc32(0, "123456789", 9), j ? (long long)distill_json_path(j, "a.2.b")->i64 : 0LL, extra,
           distill_simd_name());
    distill_json_free(j);
    distill_model_free(m);
    return 0;
}
