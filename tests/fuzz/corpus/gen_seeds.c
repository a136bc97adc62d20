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

/* A shards seed (fuzz_shards): u16 + config.json, u16 + index, u32 + shard 1, shard 2; and
   config.json variants with the fields the loader refuses or accepts (fuzz_safetensors). */
static int shards_seed(const char *d, distill_error *err) {
    distill_config c = distill_config_default();
    distill_model *m;
    size_t n[4], i;
    unsigned char *f[4];
    const char *names[4] = {"build/seeds/sh/config.json", "build/seeds/sh/model.safetensors.index.json",
                            "build/seeds/sh/model-00001-of-00002.safetensors", "build/seeds/sh/model-00002-of-00002.safetensors"};
    static const char *variants[] = {
        "\"num_experts\": 4, ", "\"use_sliding_window\": true, \"sliding_window\": 4, ",
        "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
        "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8}, ",
        "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}, ",
        "\"layer_types\": [\"full_attention\"], \"partial_rotary_factor\": 1.0, \"quantization_config\": null, ",
        "\"model_type\": \"qwen3\", \"architectures\": [\"Qwen3ForCausalLM\"], ",
    };
    char out[256];
    FILE *o;
    c.vocab_size = 16; c.dim = 8; c.n_layers = 2; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 12; c.qkv_bias = 1;
    c.tie_embeddings = 0;
    m = distill_model_create(&c, 1, 8, 9, err);
    if (!m) return -1;
    mkdir("build/seeds/sh", 0755);
    if (distill_safetensors_save_sharded(m, "build/seeds/sh", "BF16", 1400, err)) { distill_model_free(m); return -1; }
    distill_model_free(m);
    for (i = 0; i < 4; i++) if (!(f[i] = (unsigned char *)distill_read_file(names[i], &n[i], err))) return -1;
    snprintf(out, sizeof out, "%s/shards/tiny_qwen2.seed", d);
    mkdir("tests/fuzz/corpus/shards", 0755);
    if (!(o = fopen(out, "wb"))) return -1;
    for (i = 0; i < 3; i++) {
        unsigned char pre[4] = {(unsigned char)(n[i] & 255), (unsigned char)(n[i] >> 8), (unsigned char)(n[i] >> 16),
                                (unsigned char)(n[i] >> 24)};
        fwrite(pre, 1, i < 2 ? 2 : 4, o);
        fwrite(f[i], 1, n[i], o);
    }
    fwrite(f[3], 1, n[3], o);
    fclose(o);
    /* config variants: the same shards, a field added to config.json */
    for (i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char cfg[4096];
        size_t k, cl = (size_t)snprintf(cfg, sizeof cfg, "{%s%s", variants[i], (const char *)f[0] + 1);
        unsigned char pre[4];
        snprintf(out, sizeof out, "%s/shards/variant_%zu.seed", d, i);
        if (!(o = fopen(out, "wb"))) return -1;
        pre[0] = (unsigned char)(cl & 255); pre[1] = (unsigned char)(cl >> 8);
        fwrite(pre, 1, 2, o);
        fwrite(cfg, 1, cl, o);
        for (k = 1; k < 3; k++) {
            pre[0] = (unsigned char)(n[k] & 255); pre[1] = (unsigned char)(n[k] >> 8);
            pre[2] = (unsigned char)(n[k] >> 16); pre[3] = (unsigned char)(n[k] >> 24);
            fwrite(pre, 1, k < 2 ? 2 : 4, o);
            fwrite(f[k], 1, n[k], o);
        }
        fwrite(f[3], 1, n[3], o);
        fclose(o);
    }
    for (i = 0; i < 4; i++) distill_free(f[i]);
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
    if (shards_seed(d, &err) != 0) goto fail2;
    printf("seeds written under %s\n", d);
    return 0;
fail2:
    fprintf(stderr, "%s\n", err.msg);
    return 1;
}
