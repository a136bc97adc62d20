/* data_parallel.c - data parallelism by hand: what distill_trainer_set_comm does inside a step.
   Every rank holds the same model and sees the same global batch; each runs forward/backward on
   its own rows, the gradients are summed across ranks, and every rank takes the same AdamW step.

       mpicc -O2 -DDISTILL_MPI -o data_parallel examples/data_parallel.c -lm -lpthread
       mpirun -np 2 ./data_parallel

   The one thing to learn here: divide each rank's loss by the supervised weight of the GLOBAL
   batch (not its own), then a plain sum of the gradients is the gradient of the global mean. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"

#define ROWS 4   /* global batch rows */
#define LEN 24

int main(int argc, char **argv) {
    static const char *lines[ROWS] = {"the cat sat on the mat.  ", "a dog ran in the fog.    ",
                                   "two birds sang a song.   ", "one fish swam home.      "};
    int32_t tok[ROWS][LEN], tgt[ROWS][LEN];
    distill_comm comm;
    distill_error err;
    distill_config cfg = distill_config_default();
    distill_optim_config opt = distill_optim_default();
    distill_model *m;
    distill_batch mine;
    int r, t, lo, hi;
    int64_t step;
    if (distill_mpi_init(&argc, &argv, &comm, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (r = 0; r < ROWS; r++)
        for (t = 0; t < LEN; t++) { tok[r][t] = (unsigned char)lines[r][t]; tgt[r][t] = (unsigned char)lines[r][t + 1]; }
    lo = ROWS * comm.rank / comm.size;           /* this rank's rows of the global batch */
    hi = ROWS * (comm.rank + 1) / comm.size;
    memset(&mine, 0, sizeof mine);
    mine.B = hi - lo; mine.T = LEN; mine.tokens = tok[lo]; mine.targets = tgt[lo];

    cfg.vocab_size = 256; cfg.dim = 64; cfg.n_layers = 2; cfg.n_heads = 4; cfg.n_kv_heads = 2; cfg.hidden_dim = 176;
    m = distill_model_create(&cfg, ROWS, LEN, /*seed: the same on every rank*/ 42, &err);
    if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
    opt.lr = 3e-3f; opt.warmup_steps = 5; opt.total_steps = 60;
    for (step = 0; step < 60; step++) {
        distill_stats st;
        double loss_sum;
        /* every target is supervised here, so the global weight is ROWS*LEN; in general each rank
           counts its own and an all-reduce of one number gives the total */
        float grad_scale = 1.0f / (float)(ROWS * LEN);
        distill_model_zero_grad(m);
        if (mine.B > 0) {
            if (distill_model_forward(m, &mine, NULL, grad_scale, &st, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
            distill_model_backward(m);
        } else st.loss = 0.0;
        /* sum of the ranks' gradients = gradient of the global mean loss */
        if (comm.allreduce(&comm, m->grads, m->num_floats, DISTILL_F32, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        loss_sum = st.loss;   /* forward reported sum(loss) * grad_scale: the ranks' parts add up */
        comm.allreduce(&comm, &loss_sum, 1, DISTILL_F64, NULL);
        distill_adamw_step(m, &opt, step);   /* identical gradients -> identical weights */
        if (comm.rank == 0 && (step % 10 == 0 || step == 59)) printf("step %2d  global loss %.4f\n", (int)step, loss_sum);
    }
    {   /* the weights never travelled, yet every rank holds the same bits */
        uint32_t crc = distill_crc32(0, m->params, m->num_floats * sizeof(float)), root = crc;
        int64_t differ;
        comm.bcast(&comm, &root, sizeof root, 0, NULL);
        differ = root != crc;
        comm.allreduce(&comm, &differ, 1, DISTILL_I64, NULL);
        if (comm.rank == 0) printf("%d ranks, weights identical on every rank: %s\n", comm.size, differ ? "no" : "yes");
        distill_model_free(m);
        distill_mpi_finalize();
        return differ ? 1 : 0;
    }
}
