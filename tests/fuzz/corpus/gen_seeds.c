/* Writes the tiny seed files of the model-file fuzzers (make fuzz-seeds): a checkpoint with
   optimizer moments and a train section, a safetensors file with its config.json (stored
   together in one seed as the harness expects: u16 length of config.json, config.json, the
   safetensors bytes), a llama2.c .bin, and a top-k teacher cache. The checkpoint and cache
   seeds start with the harness's mode byte (all modes on), then the file. Each is a few KB so the
   fuzzers start from valid files and mutate their fields. Run from the repository root. */
#define DISTILL_IMPLEMENTATION
#include "../../../distill.h"
#include <stdlib.h>
#include <sys/stat.h>

static distill_model *tiny(int qwen, distill_error *err) {
    distill_config c = distill_config_default();
    c.vocab_size = 16; c.dim = 8; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = qwen ? 1 : 2;
    c.hidden_dim = 12; c.qkv_bias = qwen; c.tie_embeddings = !qwen;
    c.rope_theta = qwen ? 1000000.0f : 10000.0f;
    return distill_model_create(&c, 1, 8, 7, err);
}

static int copy_prefixed(const char *cfg, const char *st, const char *out) {
    size_t nc, ns;
    unsigned char *a = (unsigned char *)distill_read_file(cfg, &nc, NULL);
    unsigned char *b = (unsigned char *)distill_read_file(st, &ns, NULL);
    unsigned char pre[2];
    FILE *f = fopen(out, "wb");
    if (!a || !b || !f || nc > 65535) return -1;
    pre[0] = (unsigned char)(nc & 255); pre[1] = (unsigned char)(nc >> 8);
    fwrite(pre, 1, 2, f); fwrite(a, 1, nc, f); fwrite(b, 1, ns, f);
    fclose(f); distill_free(a); distill_free(b);
    return 0;
}

/* the file with a mode byte in front, in place */
static int prefix_mode(const char *path, unsigned char mode) {
    size_t n;
    unsigned char *a = (unsigned char *)distill_read_file(path, &n, NULL);
    FILE *f;
    if (!a || !(f = fopen(path, "wb"))) return -1;
    fwrite(&mode, 1, 1, f); fwrite(a, 1, n, f);
    fclose(f); distill_free(a);
    return 0;
}

int main(void) {
    distill_error err;
    int q;
    const char *d = "tests/fuzz/corpus";
    char p[256], p2[256];
    mkdir("build", 0755); mkdir("build/seeds", 0755);
    for (q = 0; q < 2; q++) {
        distill_model *m = tiny(q, &err);
        distill_ckpt_section extra;
        int64_t cur[3] = {1, 2, 3};
        if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
        distill_model_init_params(m, 5);
        extra.name = "loader"; extra.data = cur; extra.size = sizeof cur;
        if (!m->m) {
            m->m = (float *)distill_alloc_aligned(m->num_floats * sizeof(float), 64);
            m->v = (float *)distill_alloc_aligned(m->num_floats * sizeof(float), 64);
        }
        snprintf(p, sizeof p, "%s/checkpoint/tiny_%s.dstl", d, q ? "qwen" : "llama");
        if (distill_checkpoint_write(p, m, q, "{\"step\": 3, \"rng\": [1, 2, 3, 4]}", &extra, 1, &err) || prefix_mode(p, 0xff)) goto fail;
        snprintf(p, sizeof p, "build/seeds/model.safetensors");
        if (distill_safetensors_save(m, p, &err)) goto fail;
        snprintf(p2, sizeof p2, "%s/safetensors/tiny_%s.seed", d, q ? "qwen" : "llama");
        if (copy_prefixed("build/seeds/config.json", p, p2)) { fprintf(stderr, "copy failed\n"); return 1; }
        if (!q) {
            snprintf(p, sizeof p, "%s/llama2c/tiny.bin", d);
            if (distill_llama2c_save(m, p, &err)) goto fail;
        }
        distill_model_free(m);
        continue;
    fail:
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    {
        /* top-k cache: 2 rows, V 11, k 3 */
        int32_t tok[5] = {1, 2, 3, 4, 5}, tg[5] = {-1, 3, 4, 5, 6};
        float lg[5 * 11];
        int i, r;
        distill_topk_writer *w;
        snprintf(p, sizeof p, "%s/teacher_cache/tiny.topk", d);
        w = distill_topk_writer_open(p, 3, 11, &err);
        if (!w) goto fail2;
        for (r = 0; r < 2; r++) {
            for (i = 0; i < 5 * 11; i++) lg[i] = (float)((i * 7 + r * 3) % 13) * 0.25f;
            if (distill_topk_writer_add_row(w, tok, tg, 5 - r, lg, &err)) goto fail2;
        }
        if (distill_topk_writer_close(w, &err) || prefix_mode(p, 0xff)) goto fail2;
    }
    printf("seeds written under %s\n", d);
    return 0;
fail2:
    fprintf(stderr, "%s\n", err.msg);
    return 1;
}
