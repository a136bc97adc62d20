/* Sharded Hugging Face checkpoints: a folder, its model.safetensors.index.json, or any one
   shard's path load the whole model, every tensor exactly once, in F32, F16 and BF16; hostile
   indexes and shards (missing, duplicated, misplaced or unknown tensors, paths out of the
   folder) and config.json features the model does not have end in an error naming the file
   and the field or tensor. The reference for the values is the single-file load of the same
   model in the same dtype (tested against PyTorch in test_interop). */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "cli_harness.h"
#include <stdlib.h>
#include <sys/stat.h>

#define DIR "build/test_sharded"

static distill_config cfg_of(int qwen) {
    distill_config c = distill_config_default();
    c.vocab_size = 40; c.dim = 16; c.n_layers = 3; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 24;
    c.qkv_bias = qwen; c.tie_embeddings = !qwen; c.rope_theta = qwen ? 1e6f : 1e4f;
    return c;
}

static void sha(const distill_model *m, char out[65]) { distill_model_sha256(m, out); }

static int write_text(const char *path, const char *s) {
    distill_error err;
    return distill_write_file_atomic(path, s, strlen(s), &err);
}

static char *read_text(const char *path) {
    distill_error err;
    size_t n;
    return (char *)distill_read_file(path, &n, &err);
}

/* replace the first occurrence of `from` in the file by `to` */
static int edit(const char *path, const char *from, const char *to) {
    char *s = read_text(path), *p, *o;
    size_t n;
    int rc;
    if (!s || !(p = strstr(s, from))) { distill_free(s); return -1; }
    n = strlen(s) - strlen(from) + strlen(to) + 1;
    o = (char *)malloc(n);
    memcpy(o, s, (size_t)(p - s));
    strcpy(o + (p - s), to);
    strcat(o, p + strlen(from));
    rc = write_text(path, o);
    free(o);
    distill_free(s);
    return rc;
}

/* the same for binary files, `to` as long as `from` */
static int edit_bin(const char *path, const char *from, const char *to) {
    distill_error err;
    size_t n, i, fl = strlen(from);
    unsigned char *b = (unsigned char *)distill_read_file(path, &n, &err);
    int rc = -1;
    for (i = 0; b && i + fl <= n; i++)
        if (!memcmp(b + i, from, fl)) { memcpy(b + i, to, fl); rc = distill_write_file_atomic(path, b, n, &err); break; }
    distill_free(b);
    return rc;
}

/* insert `entry` ("\"name\": {...}, ") at the start of a safetensors header, re-padded */
static int st_insert(const char *path, const char *entry) {
    size_t n, hl, nh, pad, el = strlen(entry);
    unsigned char *b = (unsigned char *)read_text(path), *o;
    distill_error err;
    int i, rc;
    if (!b) return -1;
    hl = 0;
    for (i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    {
        FILE *f = fopen(path, "rb");
        fseek(f, 0, SEEK_END);
        n = (size_t)ftell(f);
        fclose(f);
    }
    nh = hl + el;
    pad = (8 - nh % 8) % 8;
    o = (unsigned char *)malloc(n + el + pad);
    for (i = 0; i < 8; i++) o[i] = (unsigned char)((nh + pad) >> (8 * i));
    o[8] = '{';
    memcpy(o + 9, entry, el);
    memcpy(o + 9 + el, b + 9, hl - 1);
    memset(o + 8 + nh, ' ', pad);
    memcpy(o + 8 + nh + pad, b + 8 + hl, n - 8 - hl);
    rc = distill_write_file_atomic(path, o, n + el + pad, &err);
    free(o);
    distill_free(b);
    return rc;
}

static void test_roundtrip_dtypes(void) {
    static const char *dtypes[] = {"F32", "F16", "BF16"};
    int qwen, d;
    mkdir("build", 0755);
    mkdir(DIR, 0755);
    for (qwen = 0; qwen < 2; qwen++)
        for (d = 0; d < 3; d++) {
            distill_config c = cfg_of(qwen);
            distill_error err;
            distill_model *m = distill_model_create(&c, 1, 8, 11 + qwen, &err), *one, *r;
            char dir[128], path[192], want[65], got[65];
            int n_shards = 0, k;
            if (!m) { CHECK(0, "%s", err.msg); return; }
            snprintf(dir, sizeof dir, DIR "/m%d_%s", qwen, dtypes[d]);
            snprintf(path, sizeof path, "%s_single.safetensors", dir);
            CHECK(distill_safetensors_save_as(m, path, dtypes[d], &err) == 0, "%s", err.msg);
            one = distill_model_load(path, 1, 8, NULL, &err);
            CHECK(one != NULL, "single file: %s", err.msg);
            if (!one) { distill_model_free(m); return; }
            sha(one, want);
            /* about 2 KB per shard: the 3-layer model spreads over several */
            CHECK(distill_safetensors_save_sharded(m, dir, dtypes[d], 2048, &err) == 0, "%s", err.msg);
            {   /* count shards from the index */
                char *ix;
                snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
                ix = read_text(path);
                CHECK(ix != NULL, "no index in %s", dir);
                if (ix) { const char *p = strstr(ix, "-of-"); if (p) n_shards = atoi(p + 4); }
                distill_free(ix);
            }
            CHECK(n_shards >= 3, "%s: %d shards", dir, n_shards);
            /* the folder, the index, and each shard's path */
            r = distill_model_load(dir, 1, 8, NULL, &err);
            CHECK(r != NULL, "folder %s: %s", dir, err.msg);
            if (r) { sha(r, got); CHECK(!strcmp(got, want) && r->cfg.tie_embeddings == c.tie_embeddings, "folder %s: tensors differ", dir); }
            distill_model_free(r);
            r = distill_model_load(path, 1, 8, NULL, &err);
            CHECK(r != NULL, "index %s: %s", path, err.msg);
            if (r) { sha(r, got); CHECK(!strcmp(got, want), "index %s: tensors differ", path); }
            distill_model_free(r);
            for (k = 1; k <= n_shards; k++) {
                snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, k, n_shards);
                r = distill_model_load(path, 1, 8, NULL, &err);
                CHECK(r != NULL, "shard %s: %s", path, err.msg);
                if (r) { sha(r, got); CHECK(!strcmp(got, want), "shard %s: tensors differ", path); }
                distill_model_free(r);
            }
            CHECK(!strcmp(distill_model_file_format(dir, &err), "safetensors-sharded"), "format of a folder");
            distill_model_free(one);
            distill_model_free(m);
        }
    {   /* one shard only: model.safetensors in the folder, no index, loads by folder */
        distill_config c = cfg_of(0);
        distill_error err;
        distill_model *m = distill_model_create(&c, 1, 8, 5, &err), *r;
        char a[65], b[65];
        CHECK(distill_safetensors_save_sharded(m, DIR "/single", "F32", (int64_t)1 << 30, &err) == 0, "%s", err.msg);
        r = distill_model_load(DIR "/single", 1, 8, NULL, &err);
        CHECK(r != NULL, "folder with model.safetensors: %s", err.msg);
        if (r) { sha(m, a); sha(r, b); CHECK(!strcmp(a, b), "F32 folder round trip is exact"); }
        distill_model_free(r);
        distill_model_free(m);
    }
}

/* a fresh 3-shard Qwen2 folder (untied: lm_head in the last shard) */
static int fresh(const char *dir) {
    distill_config c = cfg_of(1);
    distill_error err;
    distill_model *m = distill_model_create(&c, 1, 8, 3, &err);
    char cmd[256];
    int rc;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return -1;
    rc = m ? distill_safetensors_save_sharded(m, dir, "BF16", 6000, &err) : -1;
    distill_model_free(m);
    return rc;
}

static void expect_fail(const char *path, const char *want1, const char *want2, const char *what) {
    distill_error err;
    distill_model *r;
    err.msg[0] = 0;
    r = distill_model_load(path, 1, 8, NULL, &err);
    CHECK(!r && strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)), "%s: got '%s', want '%s'%s%s", what,
          r ? "(loaded)" : err.msg, want1, want2 ? " and " : "", want2 ? want2 : "");
    distill_model_free(r);
}

#define H DIR "/h"
#define IX H "/model.safetensors.index.json"
#define S1 H "/model-00001-of-00003.safetensors"
#define S2 H "/model-00002-of-00003.safetensors"
#define S3 H "/model-00003-of-00003.safetensors"

static void test_hostile_shards(void) {
    char *ix;
    if (fresh(H) != 0) { CHECK(0, "cannot write %s", H); return; }
    ix = read_text(IX);
    CHECK(ix && strstr(ix, "model-00003-of-00003") && !strstr(ix, "model-00004"), "the fixture has 3 shards: %s", ix ? ix : "");
    distill_free(ix);
    /* a shard the index names is gone */
    remove(S2);
    expect_fail(H, "model-00002-of-00003.safetensors", "cannot be opened", "missing shard");
    /* a shard path out of the folder */
    fresh(H);
    edit(IX, "\"model-00001-of-00003.safetensors\"", "\"../model-00001-of-00003.safetensors\"");
    expect_fail(IX, "weight_map.", "expected a shard file name in the index's folder", "'..' in a shard name");
    fresh(H);
    edit(IX, "\"model-00001-of-00003.safetensors\"", "\"/etc/passwd\"");
    expect_fail(IX, "expected a shard file name", NULL, "absolute shard path");
    /* the index puts a tensor in another shard than the one holding it */
    fresh(H);
    edit(IX, "\"model.embed_tokens.weight\": \"model-00001-of-00003.safetensors\"",
         "\"model.embed_tokens.weight\": \"model-00002-of-00003.safetensors\"");
    expect_fail(H, "model.embed_tokens.weight", "the index puts it in 'model-00002-of-00003.safetensors'", "misplaced tensor");
    /* a tensor in two shards */
    fresh(H);
    st_insert(S3, "\"model.embed_tokens.weight\": {\"dtype\": \"BF16\", \"shape\": [40, 16], \"data_offsets\": [0, 1280]}, ");
    expect_fail(H, "model.embed_tokens.weight", NULL, "tensor in two shards");
    /* the same key twice in one header */
    fresh(H);
    st_insert(S1, "\"model.embed_tokens.weight\": {\"dtype\": \"BF16\", \"shape\": [40, 16], \"data_offsets\": [0, 1280]}, ");
    expect_fail(H, "tensor 'model.embed_tokens.weight' appears more than once", NULL, "duplicate key");
    /* a bias this architecture does not have, in a shard and in the index */
    fresh(H);
    st_insert(S1, "\"model.layers.0.mlp.up_proj.bias\": {\"dtype\": \"BF16\", \"shape\": [24], \"data_offsets\": [0, 48]}, ");
    expect_fail(H, "model.layers.0.mlp.up_proj.bias", "a bias the architecture does not have", "unknown tensor in a shard");
    fresh(H);
    edit(IX, "\"weight_map\": {", "\"weight_map\": {\n    \"model.layers.0.self_attn.o_proj.bias\": \"model-00001-of-00003.safetensors\",");
    expect_fail(IX, "model.layers.0.self_attn.o_proj.bias", "not part of the model", "unknown tensor in the index");
    /* older exports' rotary_emb.inv_freq buffers are skipped */
    fresh(H);
    st_insert(S1, "\"model.layers.0.self_attn.rotary_emb.inv_freq\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, ");
    {
        distill_error err;
        distill_model *r = distill_model_load(H, 1, 8, NULL, &err);
        CHECK(r != NULL, "inv_freq skipped: %s", err.msg);
        distill_model_free(r);
    }
    /* a tensor the index lists but no shard holds: take it out of a shard's header */
    fresh(H);
    CHECK(edit_bin(S3, "\"lm_head.weight\"", "\"lm_head.weigh_\"") == 0, "edit");
    expect_fail(H, "lm_head.weigh_", NULL, "renamed tensor in a shard");
    /* weight_map malformed */
    fresh(H);
    write_text(IX, "{\"weight_map\": []}");
    expect_fail(H, "field 'weight_map'", NULL, "weight_map not an object");
    write_text(IX, "{\"weight_map\": {\"model.norm.weight\": 7}}");
    expect_fail(H, "weight_map.model.norm.weight", NULL, "weight_map value not a string");
    write_text(IX, "{\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00003.safetensors\"}");
    expect_fail(H, "model.safetensors.index.json", NULL, "truncated index");
    /* one shard without its index */
    fresh(H);
    remove(IX);
    expect_fail(S1, "no model.safetensors.index.json beside it", NULL, "shard without an index");
    /* a folder with no model */
    expect_fail(DIR, "", NULL, "folder without a model");
}

static void test_config_refusals(void) {
    static const struct { const char *add, *want; } cases[] = {
        {"\"num_experts\": 8,", "field 'num_experts': mixture of experts is not supported"},
        {"\"num_local_experts\": 8,", "field 'num_local_experts'"},
        {"\"use_sliding_window\": true,", "field 'use_sliding_window': sliding-window attention"},
        {"\"mlp_bias\": true,", "field 'mlp_bias'"},
        {"\"quantization_config\": {\"quant_method\": \"gptq\"},", "field 'quantization_config': quantized weights"},
        {"\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0},", "field 'rope_scaling': type 'yarn' is not supported"},
        {"\"partial_rotary_factor\": 0.5,", "field 'partial_rotary_factor'"},
        {"\"layer_types\": [\"full_attention\", \"sliding_attention\", \"full_attention\"],", "field 'layer_types.1'"},
        {"\"final_logit_softcapping\": 30.0,", "field 'final_logit_softcapping'"},
    };
    static const char *fine[] = {
        "\"use_sliding_window\": false, \"sliding_window\": 32768, \"max_window_layers\": 21,",
        "\"rope_scaling\": null, \"num_experts\": 0, \"quantization_config\": null,",
        "\"layer_types\": [\"full_attention\", \"full_attention\", \"full_attention\"], \"partial_rotary_factor\": 1.0,",
    };
    size_t i;
    char *cfg;
    if (fresh(H) != 0) { CHECK(0, "cannot write %s", H); return; }
    cfg = read_text(H "/config.json");
    if (!cfg) { CHECK(0, "no config.json"); return; }
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[4096];
        snprintf(buf, sizeof buf, "{\n  %s%s", cases[i].add, cfg + 1);
        write_text(H "/config.json", buf);
        expect_fail(H, "config.json", cases[i].want, cases[i].add);
    }
    write_text(H "/config.json", cfg);
    edit(H "/config.json", "\"silu\"", "\"gelu\"");
    expect_fail(H, "config.json", "hidden_act", "gelu");
    for (i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        char buf[4096];
        distill_error err;
        distill_model *r;
        snprintf(buf, sizeof buf, "{\n  %s%s", fine[i], cfg + 1);
        write_text(H "/config.json", buf);
        r = distill_model_load(H, 1, 8, NULL, &err);
        CHECK(r != NULL, "'%s' is harmless: %s", fine[i], err.msg);
        distill_model_free(r);
    }
    distill_free(cfg);
}

/* distill export --max-shard-size writes the folder; distill info and a reload read it */
static void test_cli_export_sharded(void) {
    distill_error err;
    distill_model *a, *b;
    char x[65], y[65], *s;
    if (!have_cli()) SKIP("./distill not built (make)");
    CHECK(sh("rm -rf " DIR "/cli && ./distill export tests/fixtures/hf_linear_rope --max-shard-size 30KB -o " DIR "/cli > /dev/null") == 0,
          "export --max-shard-size");
    CHECK(sh("./distill info " DIR "/cli > " DIR "/cli_info.txt") == 0, "info of the folder");
    s = (char *)distill_read_file(DIR "/cli_info.txt", NULL, NULL);
    CHECK(s && strstr(s, "safetensors-sharded") && strstr(s, "rope scaling linear, factor 4"), "info: %s", s ? s : "");
    distill_free(s);
    a = distill_model_load("tests/fixtures/hf_linear_rope", 1, 8, NULL, &err);
    b = distill_model_load(DIR "/cli/model-00002-of-00003.safetensors", 1, 8, NULL, &err);
    CHECK(a && b, "%s", err.msg);
    if (a && b) { sha(a, x); sha(b, y); CHECK(!strcmp(x, y), "F32 sharded export is exact"); }
    distill_model_free(a);
    distill_model_free(b);
    CHECK(sh("./distill export tests/fixtures/hf_linear_rope --max-shard-size 12QB -o " DIR "/cli2 2> /dev/null") == 2, "bad size refused");
}

int main(void) {
    RUN(test_roundtrip_dtypes);
    RUN(test_cli_export_sharded);
    RUN(test_hostile_shards);
    RUN(test_config_refusals);
    return harness_done("test_sharded");
}
