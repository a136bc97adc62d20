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

/* A row is identified by its tokens AND its targets: the same text with another loss mask (a
   different template mode, say) or another target id is refused, the row itself accepted. */
static void test_row_check(void) {
    distill_error err;
    distill_topk_cache *c;
    int32_t tk[NT], tg[NT];
    make_data();
    CHECK(write_cache("build/test_kd_cache.topk", NK) == 0, "write");
    c = distill_topk_cache_open("build/test_kd_cache.topk", NV, NR, &err);
    REQUIRE(c != NULL, "open: %s", err.msg);
    memcpy(tk, toks[1], sizeof tk);
    memcpy(tg, tgts[1], sizeof tg);
    CHECK(distill_topk_cache_check_row(c, 1, tk, tg, NT, &err) == 0, "the row it was made for: %s", err.msg);
    tg[5] = (tg[5] + 1) % NV;   /* same tokens, same supervised count, one other target */
    CHECK(distill_topk_cache_check_row(c, 1, tk, tg, NT, &err) != 0 && strstr(err.msg, "row 1"), "another target id accepted");
    tg[5] = tgts[1][5];
    tk[0] = (tk[0] + 1) % NV;   /* an unsupervised token */
    CHECK(distill_topk_cache_check_row(c, 1, tk, tg, NT, &err) != 0, "another prompt token accepted");
    distill_topk_cache_free(c);
}

/* Ties in the teacher's logits go to the lower token id (so the cache does not depend on the
   selection's order of visits): all-equal logits list ids 0..k-1 with log-probability
   -log(V); logits 1 at every third id list 0, 3, 6, 9, 12. Read from the file's documented
   layout, not through the library. */
static void test_topk_ties(void) {
    distill_error err;
    distill_topk_writer *w = distill_topk_writer_open("build/test_kd_cache_ties.topk", NK, NV, &err);
    int32_t tk[2] = {1, 2}, tg[2] = {3, 4}, want1[NK] = {0, 3, 6, 9, 12};
    static float lg[2 * NV];
    unsigned char *buf;
    size_t n, e0;
    int j, ok0 = 1, ok1 = 1;
    REQUIRE(w != NULL, "open: %s", err.msg);
    for (j = 0; j < NV; j++) { lg[j] = 0.0f; lg[NV + j] = j % 3 == 0 ? 1.0f : 0.0f; }
    CHECK(distill_topk_writer_add_row(w, tk, tg, 2, lg, &err) == 0, "add: %s", err.msg);
    CHECK(distill_topk_writer_close(w, &err) == 0, "close: %s", err.msg);
    buf = (unsigned char *)distill_read_file("build/test_kd_cache_ties.topk", &n, &err);
    REQUIRE(buf != NULL, "read: %s", err.msg);
    e0 = 40 + 24;   /* header, one row record */
    REQUIRE(n == e0 + 2 * (8 * NK + 4) + 4, "file size %zu", n);
    for (j = 0; j < NK; j++) {
        int32_t id0, id1;
        float lp0;
        memcpy(&id0, buf + e0 + 4 * j, 4);
        memcpy(&lp0, buf + e0 + 4 * NK + 4 * j, 4);
        memcpy(&id1, buf + e0 + 8 * NK + 4 + 4 * j, 4);
        if (id0 != j || fabs(lp0 + log((double)NV)) > 1e-5) ok0 = 0;
        if (id1 != want1[j]) ok1 = 0;
    }
    CHECK(ok0, "all-equal logits: the top-k is not ids 0..%d at -log(V)", NK - 1);
    CHECK(ok1, "ties among the largest logits: not ids 0, 3, 6, 9, 12");
    distill_free(buf);
}

int main(void) {
    RUN(test_roundtrip_and_head);
    RUN(test_hostile_files);
    RUN(test_row_check);
    RUN(test_topk_ties);
    return harness_done("test_kd_cache");
}
