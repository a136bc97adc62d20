/* BF16 weights for inference and teachers (distill_model_to_bf16, distill_model_load_bf16).
   The reference is an FP32 model whose matrices were rounded to BF16 here, by an independent
   rounding on values (test_model_ref.h's ref_bf16, frexp/ldexp, not bit patterns). A model
   holding those weights in BF16 must compute the same bits as that FP32 model, because the
   kernels widen BF16 exactly:
     - the forward's loss and logits, in FP32 and in BF16 precision (vdpbf16ps and the portable
       path), under every kernel set this machine has, on 1 and 2 threads;
     - the generator's logits: prefill (> 16 rows, the blocked product), a few rows at once
       and one row (the gemv), with qkv biases, qk_norm, GQA, tied and untied heads;
     - a logit-distillation step with the BF16 model as teacher;
     - sha256 and safetensors export (BF16, F32) of the BF16 model; loading the export back
       with distill_model_load_bf16;
     - what needs FP32 weights fails with a message: training, checkpoints, llama2.c files. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "test_model_ref.h"

#include <sys/stat.h>
#include <unistd.h>

#define B_ 3
#define T_ 40

static distill_config cfg_of(int variant) {
    distill_config c = distill_config_default();
    c.vocab_size = 97; c.dim = 48; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 80;
    if (variant == 0) { c.qkv_bias = 1; c.tie_embeddings = 0; }
    else { c.qk_norm = 1; c.tie_embeddings = 1; c.n_kv_heads = 1; c.dim = 40; c.hidden_dim = 72; }
    return c;
}

/* An FP32 model with every matrix rounded to BF16 (vectors left alone), and its BF16 twin. */
static int make_pair(int variant, distill_model **fp, distill_model **h, distill_error *err) {
    distill_config c = cfg_of(variant);
    int i;
    size_t k;
    *fp = distill_model_create(&c, B_, T_, 7 + (uint64_t)variant, err);
    *h = distill_model_create(&c, B_, T_, 99, err);
    if (!*fp || !*h) return -1;
    for (i = 0; i < (*fp)->n_tensors; i++) {
        const distill_tensor_info *t = &(*fp)->tensors[i];
        float *p = (*fp)->params + t->offset;
        for (k = 0; k < t->numel; k++) {
            if (t->ndim == 2) p[k] = (float)ref_bf16((double)p[k]);
            else p[k] = 1.0f + 0.25f * (float)sin((double)(k + 3 * i));   /* norms and biases: not 1 or 0 */
        }
    }
    memcpy((*h)->params, (*fp)->params, (*fp)->num_floats * sizeof(float));
    return distill_model_to_bf16(*h, err);
}

static void make_batch(distill_batch *b, int32_t *tok, int32_t *tg, int *len, int V) {
    int i;
    for (i = 0; i < B_ * T_; i++) {
        tok[i] = (int32_t)((i * 7 + 3) % V);
        tg[i] = (i % T_) < 2 ? -1 : (int32_t)((i * 11 + 5) % V);
    }
    len[0] = T_; len[1] = T_ - 9; len[2] = 17;
    memset(b, 0, sizeof *b);
    b->B = B_; b->T = T_; b->tokens = tok; b->targets = tg; b->lengths = len;
}

static int same_bits(const float *a, const float *b, size_t n, size_t *at) {
    size_t i;
    for (i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) { *at = i; return 0; }
    return 1;
}

/* Forward (loss + every row's logits) of both models; 1 if all bits agree. */
static int forward_agrees(distill_model *fp, distill_model *h, const distill_batch *b, const char *what) {
    distill_stats s1, s2;
    distill_error err;
    int V = fp->cfg.vocab_size, r, ok = 1;
    size_t at = 0;
    float *l1 = (float *)malloc(sizeof(float) * (size_t)T_ * V), *l2 = (float *)malloc(sizeof(float) * (size_t)T_ * V);
    if (distill_model_forward(fp, b, NULL, 0.0f, &s1, &err) != 0 || distill_model_forward(h, b, NULL, 0.0f, &s2, &err) != 0) {
        CHECK(0, "%s: forward failed: %s", what, err.msg);
        free(l1); free(l2);
        return 0;
    }
    CHECK(s1.loss == s2.loss && s1.loss > 0.0, "%s: loss FP32-of-rounded %.17g, BF16 weights %.17g", what, s1.loss, s2.loss);
    ok &= s1.loss == s2.loss;
    for (r = 0; r < B_; r++) {
        distill_model_logits(fp, r, l1);
        distill_model_logits(h, r, l2);
        if (!same_bits(l1, l2, (size_t)T_ * V, &at)) {
            CHECK(0, "%s: row %d logit %zu: %.9g vs %.9g", what, r, at, l1[at], l2[at]);
            ok = 0;
        }
    }
    free(l1); free(l2);
    return ok;
}

/* The generator on both: a 30-token prefill of sequence 0 (blocked product), 5 rows at once
   (sequences 1..2, gemv), then 4 single rows (gemv); all rows' logits compared. */
static int generator_agrees(const distill_model *fp, const distill_model *h, const char *what) {
    distill_error err;
    distill_generator *g1 = distill_generator_create(fp, 3, 64, &err), *g2 = distill_generator_create(h, 3, 64, &err);
    int V = fp->cfg.vocab_size, seq[30], i, step, ok = 1;
    int32_t tok[30];
    float *l1 = (float *)malloc(sizeof(float) * 30 * (size_t)V), *l2 = (float *)malloc(sizeof(float) * 30 * (size_t)V);
    size_t at = 0;
    if (!g1 || !g2) { CHECK(0, "%s: generator: %s", what, err.msg); ok = 0; goto done; }
    for (step = 0; step < 6 && ok; step++) {
        int n = step == 0 ? 30 : step == 1 ? 5 : 1;
        for (i = 0; i < n; i++) {
            seq[i] = step == 0 ? 0 : step == 1 ? 1 + i % 2 : step % 3;
            tok[i] = (int32_t)((i * 13 + step * 5 + 1) % V);
        }
        if (distill_generator_forward(g1, seq, tok, n, l1, 1, &err) != 0 ||
            distill_generator_forward(g2, seq, tok, n, l2, 1, &err) != 0) {
            CHECK(0, "%s: generator forward: %s", what, err.msg);
            ok = 0;
        } else if (!same_bits(l1, l2, (size_t)n * V, &at)) {
            CHECK(0, "%s: generator step %d (%d rows) logit %zu: %.9g vs %.9g", what, step, n, at, l1[at], l2[at]);
            ok = 0;
        }
    }
done:
    distill_generator_free(g1);
    distill_generator_free(g2);
    free(l1); free(l2);
    return ok;
}

static void test_same_bits_as_rounded_fp32(void) {
    static const char *const sets[] = {"scalar", "avx2", "avx512", "neon"};
    int variant, si, prec, threads, checked = 0;
    for (variant = 0; variant < 2; variant++) {
        distill_model *fp = NULL, *h = NULL;
        distill_error err;
        distill_batch b;
        int32_t tok[B_ * T_], tg[B_ * T_];
        int len[B_];
        if (make_pair(variant, &fp, &h, &err) != 0) { CHECK(0, "model: %s", err.msg); distill_model_free(fp); distill_model_free(h); return; }
        CHECK(distill_model_is_bf16(h) && !distill_model_is_bf16(fp) && h->params == NULL && h->grads == NULL,
              "the BF16 model released its FP32 weights");
        make_batch(&b, tok, tg, len, fp->cfg.vocab_size);
        for (si = 0; si < 4; si++) {
            if (distill_set_simd(sets[si]) != 0) continue;
            for (prec = 0; prec < 2; prec++)
                for (threads = 1; threads <= 2; threads++) {
                    char what[96];
                    int ok;
                    snprintf(what, sizeof what, "variant %d, %s, %s, %d thread%s", variant, sets[si],
                             prec ? "bf16" : "fp32", threads, threads > 1 ? "s" : "");
                    distill_set_threads(threads);
                    distill_model_set_precision(fp, prec);
                    distill_model_set_precision(h, prec);
                    ok = forward_agrees(fp, h, &b, what);
                    ok &= generator_agrees(fp, h, what);
                    checked += ok;
                }
        }
        distill_set_simd(NULL);
        distill_set_threads(0);
        distill_model_free(fp);
        distill_model_free(h);
    }
    printf("    %d (model, kernel set, precision, threads) combinations gave the same bits\n", checked);
}

/* A KD step: the student's loss and gradient with the BF16 teacher equal those with the FP32
   teacher holding the rounded weights. */
static void test_teacher(void) {
    distill_model *fp = NULL, *h = NULL, *st = NULL;
    distill_config c = cfg_of(0);
    distill_error err;
    distill_batch b;
    int32_t tok[B_ * T_], tg[B_ * T_];
    int len[B_], pass;
    double loss[2];
    float *grad[2] = {NULL, NULL};
    if (make_pair(0, &fp, &h, &err) != 0 || !(st = distill_model_create(&c, B_, T_, 3, &err))) {
        CHECK(0, "models: %s", err.msg);
        goto done;
    }
    make_batch(&b, tok, tg, len, c.vocab_size);
    for (pass = 0; pass < 2; pass++) {
        distill_kd_config kc = distill_kd_default();
        distill_kd_head *kh;
        distill_head_loss hl;
        distill_stats s;
        kc.alpha = 0.5f; kc.temperature = 2.0f;
        kh = distill_kd_head_create(&kc, c.vocab_size, &err);
        if (!kh || distill_kd_head_run_teacher(kh, pass ? h : fp, &b, &err) != 0) { CHECK(0, "teacher: %s", err.msg); distill_kd_head_free(kh); goto done; }
        hl = distill_kd_head_loss(kh);
        distill_model_zero_grad(st);
        if (distill_model_forward_backward(st, &b, &hl, 0.0f, &s, &err) != 0) { CHECK(0, "student: %s", err.msg); distill_kd_head_free(kh); goto done; }
        loss[pass] = s.loss;
        grad[pass] = (float *)malloc(st->num_floats * sizeof(float));
        memcpy(grad[pass], st->grads, st->num_floats * sizeof(float));
        distill_kd_head_free(kh);
    }
    {
        size_t at = 0;
        CHECK(loss[0] == loss[1], "KD loss with the FP32 teacher %.17g, with the BF16 teacher %.17g", loss[0], loss[1]);
        CHECK(same_bits(grad[0], grad[1], st->num_floats, &at), "student gradient %zu differs", at);
    }
done:
    free(grad[0]); free(grad[1]);
    distill_model_free(fp); distill_model_free(h); distill_model_free(st);
}

/* The products alone, on shapes the model tests do not reach: a K long enough to be cut in two
   (K >= 1024 and >= M, N: the second half's B starts mid-weight), ragged edges, and rows above
   the gemv's 16: W as BF16 bits against the widened floats, bit for bit, in both precisions. */
static void test_products(void) {
    static const int shapes[][3] = {{20, 1024, 1100}, {7, 33, 2000}, {300, 64, 80}, {17, 200, 96}};
    distill_rng r;
    size_t si;
    int prec, threads, checked = 0;
    distill_rng_seed(&r, 11);
    for (si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        size_t i, at = 0;
        float *x = (float *)malloc(sizeof(float) * (size_t)M * K), *wf = (float *)malloc(sizeof(float) * (size_t)N * K);
        float *bias = (float *)malloc(sizeof(float) * (size_t)N);
        float *c1 = (float *)malloc(sizeof(float) * (size_t)M * N), *c2 = (float *)malloc(sizeof(float) * (size_t)M * N);
        uint16_t *w16 = (uint16_t *)malloc(sizeof(uint16_t) * (size_t)N * K);
        for (i = 0; i < (size_t)M * K; i++) x[i] = (float)distill_rng_normal(&r);
        for (i = 0; i < (size_t)N; i++) bias[i] = (float)distill_rng_normal(&r);
        for (i = 0; i < (size_t)N * K; i++) {
            uint32_t u;
            float v = (float)ref_bf16(distill_rng_normal(&r));
            memcpy(&u, &v, 4);
            w16[i] = (uint16_t)(u >> 16);
            wf[i] = v;
        }
        for (prec = 0; prec < 2; prec++)
            for (threads = 1; threads <= 2; threads++) {
                distill_set_threads(threads);
                distill__mm_forward(prec, c1, x, wf, NULL, si % 2 ? bias : NULL, M, K, N);
                distill__mm_forward(prec, c2, x, NULL, w16, si % 2 ? bias : NULL, M, K, N);
                CHECK(same_bits(c1, c2, (size_t)M * N, &at), "[%dx%dx%d] %s %d threads: element %zu %.9g vs %.9g",
                      M, N, K, prec ? "bf16" : "fp32", threads, at, c1[at], c2[at]);
                checked++;
            }
        free(x); free(wf); free(bias); free(c1); free(c2); free(w16);
    }
    distill_set_threads(0);
    CHECK(checked == 16, "%d products checked", checked);
}

static int exists(const char *p) { struct stat sb; return stat(p, &sb) == 0; }
static int never_next(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err) {
    (void)ctx; (void)b; (void)rows; (void)n_rows;
    return distill__err(err, "not called");
}

static void test_files_and_refusals(void) {
    distill_model *fp = NULL, *h = NULL, *back = NULL, *back16 = NULL;
    distill_error err;
    distill_batch b;
    int32_t tok[B_ * T_], tg[B_ * T_];
    int len[B_];
    distill_stats s;
    char s1[65], s2[65], s3[65], dir[] = "/tmp/distill_bf16w_XXXXXX", path[256];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    if (make_pair(1, &fp, &h, &err) != 0) { CHECK(0, "models: %s", err.msg); goto done; }
    make_batch(&b, tok, tg, len, fp->cfg.vocab_size);
    distill_model_sha256(fp, s1);
    distill_model_sha256(h, s2);
    CHECK(!strcmp(s1, s2), "sha256 of the BF16 model (widened) equals the rounded FP32 model's");

    /* export as BF16 and as F32: both load back to the same weights */
    snprintf(path, sizeof path, "%s/m16.safetensors", dir);
    CHECK(distill_safetensors_save_as(h, path, "BF16", &err) == 0, "BF16 export: %s", err.msg);
    back = distill_model_load(path, B_, T_, NULL, &err);
    CHECK(back != NULL, "load the BF16 export: %s", back ? "" : err.msg);
    if (back) {   /* the matrices as held; the FP32 vectors rounded by the BF16 export */
        int i, bad = 0;
        size_t k;
        for (i = 0; i < fp->n_tensors; i++) {
            const distill_tensor_info *t = &fp->tensors[i];
            for (k = 0; k < t->numel; k++) {
                double want = t->ndim == 2 ? (double)fp->params[t->offset + k] : ref_bf16((double)fp->params[t->offset + k]);
                bad += (double)back->params[t->offset + k] != want;
            }
        }
        CHECK(bad == 0, "the BF16 export loads back to the weights held (%d values differ)", bad);
        distill_model_sha256(back, s2);
    }
    back16 = distill_model_load_bf16(path, B_, T_, NULL, &err);
    CHECK(back16 && distill_model_is_bf16(back16), "distill_model_load_bf16: %s", back16 ? "" : err.msg);
    if (back16 && back) {
        distill_model_sha256(back16, s3);
        CHECK(!strcmp(s2, s3), "distill_model_load_bf16 holds the weights distill_model_load reads");
        forward_agrees(back, back16, &b, "loaded back");
    }
    snprintf(path, sizeof path, "%s/m32.safetensors", dir);
    CHECK(distill_safetensors_save_as(h, path, "F32", &err) == 0, "F32 export: %s", err.msg);
    distill_model_free(back);
    back = distill_model_load(path, B_, T_, NULL, &err);
    if (back) { distill_model_sha256(back, s3); CHECK(!strcmp(s1, s3), "the F32 export holds the widened weights"); }
    else CHECK(0, "load the F32 export: %s", err.msg);

    /* distill_model_load_bf16 from every format: F32 safetensors (rounded while reading), a
       sharded BF16 folder, the library's checkpoint and a llama2.c file (read in FP32, then
       converted): each holds the weights of h */
    {
        static const char *const what[] = {"F32 safetensors", "sharded BF16 folder", "checkpoint", "llama2.c"};
        distill_model *l;
        int f;
        distill_model_free(back16);
        back16 = NULL;
        snprintf(path, sizeof path, "%s/shards", dir);
        CHECK(distill_safetensors_save_sharded(h, path, "BF16", 4000, &err) == 0, "sharded export: %s", err.msg);
        snprintf(path, sizeof path, "%s/m.dstl", dir);
        CHECK(distill_checkpoint_write(path, fp, 0, NULL, NULL, 0, &err) == 0, "checkpoint: %s", err.msg);
        for (f = 0; f < 4; f++) {
            distill_model *src = fp;
            if (f == 3) {   /* llama2.c has no qk_norm: a plain model, its rounded twin in FP32 */
                distill_config c = cfg_of(1);
                c.qk_norm = 0;
                src = distill_model_create(&c, B_, T_, 5, &err);
                if (src) {
                    size_t k;
                    for (k = 0; k < src->num_floats; k++) src->params[k] = (float)ref_bf16((double)src->params[k]);
                    snprintf(path, sizeof path, "%s/m.bin", dir);
                    CHECK(distill_llama2c_save(src, path, &err) == 0, "llama2.c export: %s", err.msg);
                }
            } else {
                snprintf(path, sizeof path, f == 0 ? "%s/m32.safetensors" : f == 1 ? "%s/shards" : "%s/m.dstl", dir);
                if (f == 1) src = distill_model_load(path, B_, T_, NULL, &err);   /* BF16 export: the norms rounded too */
            }
            l = src ? distill_model_load_bf16(path, B_, T_, NULL, &err) : NULL;
            CHECK(l && distill_model_is_bf16(l) && l->params == NULL, "%s: distill_model_load_bf16: %s", what[f], l ? "" : err.msg);
            if (l && src) {
                distill_model_sha256(l, s3);
                distill_model_sha256(src, s2);
                CHECK(!strcmp(s2, s3), "%s: distill_model_load_bf16 holds the weights", what[f]);
            }
            if (f == 0 && l) forward_agrees(fp, l, &b, "F32 safetensors read into BF16");
            distill_model_free(l);
            if (src != fp) distill_model_free(src);
        }
    }

    /* weights that are not BF16 values: the F32 file read straight into BF16 rounds each one
       as distill_model_to_bf16 rounds the FP32 load (nearest even, not truncation) */
    {
        distill_config c = cfg_of(0);
        distill_model *raw = distill_model_create(&c, B_, T_, 77, &err), *a = NULL, *d = NULL;
        snprintf(path, sizeof path, "%s/raw.safetensors", dir);
        CHECK(raw && distill_safetensors_save(raw, path, &err) == 0, "raw export: %s", err.msg);
        a = distill_model_load(path, B_, T_, NULL, &err);
        d = distill_model_load_bf16(path, B_, T_, NULL, &err);
        if (a && d) {
            distill_model_sha256(a, s2);
            CHECK(distill_model_to_bf16(a, &err) == 0, "to_bf16: %s", err.msg);
            distill_model_sha256(a, s3);
            CHECK(strcmp(s2, s3) != 0, "rounding to BF16 changed the weights");
            distill_model_sha256(d, s2);
            CHECK(!strcmp(s2, s3), "an F32 file read into BF16 equals the FP32 load converted");
        } else CHECK(0, "loads: %s", err.msg);
        distill_model_free(raw); distill_model_free(a); distill_model_free(d);
    }

    /* refusals, each naming the reason */
    err.msg[0] = 0;
    CHECK(distill_model_forward_backward(h, &b, NULL, 0.0f, &s, &err) != 0 && strstr(err.msg, "BF16 weights only"),
          "forward_backward refused: '%s'", err.msg);
    snprintf(path, sizeof path, "%s/h.dstl", dir);
    err.msg[0] = 0;
    CHECK(distill_checkpoint_write(path, h, 0, NULL, NULL, 0, &err) != 0 && strstr(err.msg, "BF16 weights only") && !exists(path),
          "checkpoint refused, nothing written: '%s'", err.msg);
    snprintf(path, sizeof path, "%s/h.bin", dir);
    err.msg[0] = 0;
    CHECK(distill_llama2c_save(h, path, &err) != 0 && strstr(err.msg, "BF16 weights only") && !exists(path),
          "llama2.c export refused: '%s'", err.msg);
    {
        distill_train_config tc = distill_train_default();
        distill_batch_source src;
        distill_trainer *t;
        memset(&src, 0, sizeof src);
        src.next = never_next;
        tc.max_steps = 1;
        err.msg[0] = 0;
        t = distill_trainer_create(h, &src, NULL, &tc, &err);
        CHECK(t == NULL && strstr(err.msg, "BF16 weights only"), "trainer refused: '%s'", err.msg);
        distill_trainer_free(t);
    }
    /* forward with targets works (evaluation) and allocates no gradient */
    CHECK(distill_model_forward(h, &b, NULL, 0.0f, &s, &err) == 0 && h->grads == NULL && s.loss > 0.0,
          "evaluation forward on the BF16 model");
done:
    distill_model_free(fp); distill_model_free(h); distill_model_free(back); distill_model_free(back16);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path) != 0) printf("    (could not remove %s)\n", dir);
}

int main(void) {
    (void)ref_model_loss; (void)ref_rope;   /* test_model_ref.h: only ref_bf16 is used here */
    distill_set_threads(0);
    RUN(test_same_bits_as_rounded_fp32);
    RUN(test_products);
    RUN(test_teacher);
    RUN(test_files_and_refusals);
    return harness_done("test_bf16_weights");
}
