/* A batch source for trainer tests whose position is one integer: row r of the data is a fixed
   function of r (tokens and targets mod 32, the first two positions unsupervised), so a resumed
   run sees exactly the rows an unbroken run sees. B rows of T tokens per batch (B * T <= 128);
   the saved state is (pos, 0, fingerprint), and a state with another fingerprint is refused.
   Include after distill.h. */
#ifndef DISTILL_TEST_SYNTH_SOURCE_H
#define DISTILL_TEST_SYNTH_SOURCE_H
#include <stdio.h>
#include <string.h>

typedef struct { int64_t pos, fingerprint; int B, T; int32_t tok[128], tg[128]; } synth_src;

static int synth_next(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err) {
    synth_src *s = (synth_src *)ctx;
    int i, t;
    (void)err;
    for (i = 0; i < s->B; i++, s->pos++)
        for (t = 0; t < s->T; t++) {
            s->tok[i * s->T + t] = (int32_t)((s->pos * 7 + t * 3) % 32);
            s->tg[i * s->T + t] = t < 2 ? -1 : (int32_t)((s->pos * 5 + t * t) % 32);
        }
    memset(b, 0, sizeof *b);
    b->B = s->B; b->T = s->T; b->tokens = s->tok; b->targets = s->tg;
    *rows = NULL; *n_rows = 0;
    return 0;
}
static void synth_get(void *ctx, int64_t st[3]) {
    const synth_src *s = (const synth_src *)ctx;
    st[0] = s->pos; st[1] = 0; st[2] = s->fingerprint;
}
static int synth_set(void *ctx, const int64_t st[3], distill_error *err) {
    synth_src *s = (synth_src *)ctx;
    if (st[2] != s->fingerprint || st[0] < 0) {
        if (err) snprintf(err->msg, sizeof err->msg, "batch source state mismatch");
        return -1;
    }
    s->pos = st[0];
    return 0;
}
/* s at position 0 and q reading from it */
static void synth_source_init(distill_batch_source *q, synth_src *s, int B, int T, int64_t fingerprint) {
    memset(s, 0, sizeof *s);
    memset(q, 0, sizeof *q);
    s->B = B; s->T = T; s->fingerprint = fingerprint;
    q->ctx = s; q->next = synth_next; q->get_state = synth_get; q->set_state = synth_set;
}
#endif
