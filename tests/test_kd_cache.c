/* The top-k teacher cache: round trip, validation of hostile or mismatched files, and the
   distillation head callback against the per-position reference. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include <stdlib.h>

#define NV 37
#define NT 9
#define NR 3
#define NK 5

static int32_t toks[NR][NT], tgts[NR][NT];
static float logits[NR][NT * NV];

static void make_data(void) {
    distill_rng r;
    int i, t, j;
    distill_rng_seed(&r, 3);
    for (i = 0; i < NR; i++) for (t = 0; t < NT; t++) {
        toks[i][t] = (int32_t)distill_rng_below(&r, NV);
        tgts[i][t] = t < 2 ? -1 : (int32_t)distill_rng_below(&r, NV);   /* a prompt, then supervised */
        for (j = 0; j < NV; j++) logits[i][t * NV + j] = (float)(2.0 * distill_rng_normal(&r));
    }
}

static int write_cache(const char *path, int k) {
    distill_error err;
    distill_topk_writer *w = distill_topk_writer_open(path, k, NV, &err);
    int i;
    if (!w) { printf("    %s\n", err.msg); return -1; }
    for (i = 0; i < NR; i++)
        if (distill_topk_writer_add_row(w, toks[i], tgts[i], NT, logits[i], &err) != 0) { printf("    %s\n", err.msg); distill_topk_writer_abort(w); return -1; }
    return distill_topk_writer_close(w, &err);
}

static void test_roundtrip_and_head(void) {
    distill_error err;
    distill_topk_cache *c;
    distill_kd_head *h;
    distill_kd_config kc = distill_kd_default();
    distill_batch batch;
    int64_t rows[NR] = {0, 1, 2}, pos[NR * NT];
    distill_stats st;
    static float lg[NR * NT * NV];
    static int32_t bt[NR * NT], btg[NR * NT];
    double want = 0, s[NV], g[NV], scratch[9 * NV], wsum = 0;
    int i, t, j;
    make_data();
    CHECK(write_cache("build/test_kd_cache.topk", NK) == 0, "write");
    c = distill_topk_cache_open("build/test_kd_cache.topk", NV, NR, &err);
    CHECK(c != NULL, "open: %s", err.msg);
    if (!c) return;
    CHECK(distill_topk_cache_k(c) == NK && distill_topk_cache_rows(c) == NR, "sizes");
    kc.beta = 0.5f; kc.temperature = 2.0f; kc.alpha = 0.8f;
    h = distill_kd_head_create(&kc, NV, &err);
    memset(&batch, 0, sizeof batch);
    batch.B = NR; batch.T = NT; batch.tokens = bt; batch.targets = btg;
    for (i = 0; i < NR; i++) for (t = 0; t < NT; t++) { bt[i * NT + t] = toks[i][t]; btg[i * NT + t] = tgts[i][t]; }
    CHECK(distill_kd_head_set_cache_rows(h, c, rows, &batch, &err) == 0, "set rows: %s", err.msg);
    /* reference: top-k computed here by sorting, independent of the writer's heap */
    for (i = 0; i < NR; i++) for (t = 0; t < NT; t++) {
        double lse = 0, mx = -1e30, top = 0;
        int32_t ids[NK];
        float lp[NK];
        int used[NV] = {0}, kk;
        if (tgts[i][t] < 0) continue;
        for (j = 0; j < NV; j++) if (logits[i][t * NV + j] > mx) mx = logits[i][t * NV + j];
        for (j = 0; j < NV; j++) lse += exp(logits[i][t * NV + j] - mx);
        lse = mx + log(lse);
        for (kk = 0; kk < NK; kk++) {
            int best = -1;
            for (j = 0; j < NV; j++) if (!used[j] && (best < 0 || logits[i][t * NV + j] > logits[i][t * NV + best])) best = j;
            used[best] = 1; ids[kk] = best; lp[kk] = (float)(logits[i][t * NV + best] - lse); top += exp(lp[kk]);
        }
        for (j = 0; j < NV; j++) s[j] = sin(0.3 * j + t + i);
        want += distill_kd_position(s, NV, NULL, ids, lp, NK, (float)log(1 - top), tgts[i][t], &kc, g, scratch).loss;
        wsum += 1;
    }
    for (i = 0; i < NR * NT; i++) { pos[i] = i; for (j = 0; j < NV; j++) lg[i * NV + j] = (float)sin(0.3 * j + (i % NT) + i / NT); }
    memset(&st, 0, sizeof st);
    distill_kd_head_loss(h).fn(h, pos, NR * NT, lg, NV, btg, NULL, 1.0f, 1, &st, 0);
    CHECK_CLOSE(st.loss, want, 1e-5, 1e-6, "head loss over the batch vs per-position reference");
    CHECK_CLOSE(st.weight_sum, wsum, 0, 0, "weight sum");
    for (j = 0; j < NV; j++) CHECK(lg[j] == 0.0f, "unsupervised position must get zero gradient");
    /* a batch row that is not the row the cache was made for is refused */
    rows[1] = 2;
    CHECK(distill_kd_head_set_cache_rows(h, c, rows, &batch, &err) != 0 && strstr(err.msg, "row 2"), "mismatched row accepted: %s", err.msg);
    distill_kd_head_free(h);
    distill_topk_cache_free(c);
}

static void test_hostile_files(void) {
    distill_error err;
    unsigned char *buf;
    size_t n;
    distill_topk_cache *c;
    make_data();
    CHECK(write_cache("build/test_kd_cache.topk", NK) == 0, "write");
    buf = (unsigned char *)distill_read_file("build/test_kd_cache.topk", &n, &err);
    REQUIRE(buf != NULL, "read back: %s", err.msg);
    /* wrong vocabulary / rows */
    c = distill_topk_cache_open("build/test_kd_cache.topk", NV + 1, 0, &err);
    CHECK(!c && strstr(err.msg, "vocabulary"), "vocab mismatch: %s", err.msg);
    c = distill_topk_cache_open("build/test_kd_cache.topk", NV, NR + 1, &err);
    CHECK(!c && strstr(err.msg, "rows"), "row-count mismatch: %s", err.msg);
    /* truncated */
    distill_write_file_atomic("build/test_kd_cache_bad.topk", buf, n - 7, &err);
    c = distill_topk_cache_open("build/test_kd_cache_bad.topk", 0, 0, &err);
    CHECK(!c && strstr(err.msg, "bad.topk"), "truncated: %s", err.msg);
    /* one flipped bit in the payload */
    buf[n / 2] ^= 4;
    distill_write_file_atomic("build/test_kd_cache_bad.topk", buf, n, &err);
    c = distill_topk_cache_open("build/test_kd_cache_bad.topk", 0, 0, &err);
    CHECK(!c && strstr(err.msg, "checksum"), "bit flip: %s", err.msg);
    buf[n / 2] ^= 4;
    /* absurd counts in the header */
    memset(buf + 24, 0xff, 8);
    distill_write_file_atomic("build/test_kd_cache_bad.topk", buf, n, &err);
    c = distill_topk_cache_open("build/test_kd_cache_bad.topk", 0, 0, &err);
    CHECK(!c && strstr(err.msg, "rows"), "huge row count: %s", err.msg);
    distill_write_file_atomic("build/test_kd_cache_bad.topk", "DSTLTOPK", 8, &err);
    c = distill_topk_cache_open("build/test_kd_cache_bad.topk", 0, 0, &err);
    CHECK(!c, "8-byte file accepted");
    distill_free(buf);
    CHECK(distill_topk_writer_open("build/x.topk", NV, NV, &err) == NULL && strstr(err.msg, "k ("), "k >= NV accepted");
}

int main(void) {
    RUN(test_roundtrip_and_head);
    RUN(test_hostile_files);
    return harness_done("test_kd_cache");
}
