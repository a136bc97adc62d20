#!/bin/sh
# distill train under mpirun (make test-mpi): the command line of data-parallel training.
#   1. 2 ranks with --batch-rows 8 == one process with --batch-rows 8 within 1e-5 (relative to
#      the largest weight), and the files (checkpoints, metrics, model) come from rank 0 only;
#   2. killing one rank fails the whole job with a clear message (no hang), and
#      `--resume` continues from the last checkpoint to the same weights as an unbroken run;
#   3. SIGUSR1 on one rank stops every rank after the same step with a
#      checkpoint from rank 0, and resuming ends with the unbroken run's weights.
# usage: tests/mpi/mpi_train.sh [DISTILL_MPI_BINARY]     (default build/distill-mpi)
D=${1:-build/distill-mpi}
W=build/mpi/train
MPIRUN="timeout 300 mpirun --oversubscribe --allow-run-as-root"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok: $1"; }
bad() { fail=$((fail + 1)); echo "    FAIL: $1"; }
check() { if eval "$1"; then ok "$2"; else bad "$2"; fi; }

rm -rf $W && mkdir -p $W
# 96 rows of arithmetic prompts with answers of different lengths
i=0
while [ $i -lt 96 ]; do
    a=$((i * 7 % 23)); b=$((i * 5 % 17))
    n=$((i % 5 + 1)); ans=""; k=0
    while [ $k -lt $n ]; do ans="$ans $((a + b + k))"; k=$((k + 1)); done
    printf '{"prompt": "add %d and %d, then count up %d times", "completion": "<think>%d plus %d</think>%s", "text": "add %d and %d then count%s"}\n' \
        $a $b $n $a $b "$ans" $a $b "$ans" >> $W/d.jsonl
    i=$((i + 1))
done
$D tokenizer train --data $W/d.jsonl --field text --vocab-size 300 --out $W/tok.txt > /dev/null || { echo "mpi_train: tokenizer failed"; exit 1; }
ARGS="--data $W/d.jsonl --tokenizer $W/tok.txt --template plain --dim 48 --layers 2 --heads 4 --kv-heads 2 --hidden 96 --batch-rows 8 --lr 0.003 --seed 7"

# 1. equivalence
$D train $ARGS --steps 8 --out $W/one --threads 1 > $W/one.log 2>&1
check '[ $? -eq 0 ]' "one process trains"
$MPIRUN -np 2 $D train $ARGS --steps 8 --out $W/two > $W/two.log 2>&1
check '[ $? -eq 0 ]' "2 ranks train"
check 'grep -q "data parallel: 2 ranks (mpi)" $W/two.log' "2 ranks report data parallel"
check '[ $(grep -o "step 8/8" $W/two.log | wc -l) -eq 1 ]' "progress printed once (rank 0)"
$D info $W/two/model.dstl --diff $W/one/model.dstl > $W/diff.txt 2>&1
rel=$(awk '/max_rel_diff/ {print $2}' $W/diff.txt)
echo "  2 ranks vs 1 process, 8 steps: max_rel_diff $rel"
check 'awk -v r="$rel" "BEGIN { exit !(r != \"\" && r + 0 < 1e-5) }"' "2 ranks == 1 process within 1e-5 (got $rel)"
loss8() { grep '^{"step": 8,' $1/metrics.jsonl | sed 's/.*"loss": \([0-9.e-]*\),.*/\1/'; }
l1=$(loss8 $W/one); l2=$(loss8 $W/two)
check '[ -n "$l1" ] && awk -v a="$l1" -v b="$l2" "BEGIN { d = a - b; exit !(d < 1e-5 * a && d > -1e-5 * a) }"' "same loss at step 8 in metrics.jsonl ($l1 vs $l2)"

$MPIRUN -np 2 $D train $ARGS --steps 8 --out $W/two_ov --overlap --bucket-mb 0.05 > $W/two_ov.log 2>&1
$D info $W/two_ov/model.dstl --diff $W/two/model.dstl > $W/diff_ov.txt 2>&1
check 'grep -q "identical    yes" $W/diff_ov.txt' "--overlap (50 KB buckets during backward) == one all-reduce after it, bit for bit"

# logit distillation from a top-k cache (rows of each rank's shard map to cache entries) and
# sharded evaluation: 2 ranks == 1 process
head -n 24 $W/d.jsonl > $W/e.jsonl
$D train $ARGS --steps 1 --out $W/cache_b --build-cache $W/topk.bin --teacher $W/one/model.dstl --top-k 8 > $W/cache.log 2>&1
check '[ $? -eq 0 ] && [ -f $W/topk.bin ]' "top-k cache built from the 8-step model"
$MPIRUN -np 2 $D train $ARGS --steps 1 --out $W/cache_b2 --build-cache $W/topk2.bin --teacher $W/one/model.dstl --top-k 8 > $W/cache2.log 2>&1
check '[ $? -eq 0 ] && cmp -s $W/topk.bin $W/topk2.bin' "top-k cache built by 2 ranks == one process, byte for byte"
check '[ -z "$(ls $W/topk2.bin.part* 2>/dev/null)" ]' "no part files left behind"
KD="$ARGS --steps 6 --teacher-cache $W/topk.bin --kd-alpha 0.5 --eval-data $W/e.jsonl --eval-every 3 --eval-batches 2"
$D train $KD --out $W/kd1 --threads 1 > $W/kd1.log 2>&1
check '[ $? -eq 0 ]' "KD from the cache, one process"
$MPIRUN -np 2 $D train $KD --out $W/kd2 > $W/kd2.log 2>&1
check '[ $? -eq 0 ]' "KD from the cache, 2 ranks"
$D info $W/kd2/model.dstl --diff $W/kd1/model.dstl > $W/diff_kd.txt 2>&1
relkd=$(awk '/max_rel_diff/ {print $2}' $W/diff_kd.txt)
check 'awk -v r="$relkd" "BEGIN { exit !(r != \"\" && r + 0 < 1e-5) }"' "KD from the cache: 2 ranks == 1 process within 1e-5 (got $relkd)"
ev1=$(grep -o '"eval_loss": [0-9.e-]*' $W/kd1/metrics.jsonl | tail -1 | awk '{print $2}')
ev2=$(grep -o '"eval_loss": [0-9.e-]*' $W/kd2/metrics.jsonl | tail -1 | awk '{print $2}')
check '[ -n "$ev1" ] && awk -v a="$ev1" -v b="$ev2" "BEGIN { d = a - b; exit !(d < 1e-5 * a && d > -1e-5 * a) }"' "sharded eval loss $ev2 == one process $ev1"
check '[ $(grep -c "^eval at step" $W/kd2.log) -eq 2 ]' "eval printed once per evaluation (rank 0)"

# a job script that both starts and continues: bare --resume with no checkpoint yet starts fresh
$MPIRUN -np 2 $D train $ARGS --steps 2 --out $W/fresh --resume > $W/fresh.log 2>&1
check '[ $? -eq 0 ] && grep -q "no checkpoint in $W/fresh yet: starting from scratch" $W/fresh.log' "bare --resume on a new directory starts from scratch"

# 2. kill a rank, then resume
$MPIRUN -np 2 $D train $ARGS --steps 300 --save-every 10 --out $W/full > $W/full.log 2>&1
check '[ $? -eq 0 ]' "unbroken 2-rank run of 300 steps"
$MPIRUN -np 2 $D train $ARGS --steps 300 --save-every 10 --out $W/k > $W/k.log 2>&1 &
job=$!
t=0
# the first checkpoint (a 300-step run takes about a second now, and --keep-last replaces
# ckpt-10 within milliseconds, so poll often and for any checkpoint)
while ! ls $W/k/ckpt-*.dstl > /dev/null 2>&1 && [ $t -lt 6000 ]; do sleep 0.01; t=$((t + 1)); done
victim=""
for p in $(pgrep -f "distill-mpi train" 2>/dev/null; pgrep -f "$D train" 2>/dev/null); do
    if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$p; fi
done
if [ -n "$victim" ]; then kill -9 $victim; fi
wait $job; rc=$?
check '[ -n "$victim" ]' "found rank 1 (pid $victim) after the first checkpoint"
check '[ $rc -ne 0 ] && [ $rc -ne 124 ]' "the job fails (exit $rc), no hang"
check 'grep -qi "rank 1.*signal 9\|signal 9.*rank 1\|rank 1 with PID.*exited on signal 9" $W/k.log' "mpirun names rank 1 and signal 9"
last=$(ls $W/k/ckpt-*.dstl | tail -1)
check '[ ! -f $W/k/ckpt-000000300.dstl ] && [ -n "$last" ]' "stopped before the end, last checkpoint $last"
$MPIRUN -np 2 $D train $ARGS --steps 300 --save-every 10 --out $W/k --resume > $W/r.log 2>&1
check '[ $? -eq 0 ]' "resumed job finishes"
check 'grep -q "resumed at step [1-9]" $W/r.log' "$(grep -o 'resumed at step [0-9]*' $W/r.log)"
$D info $W/k/model.dstl --diff $W/full/model.dstl > $W/diff2.txt 2>&1
check 'grep -q "identical    yes" $W/diff2.txt' "killed + resumed == unbroken run, bit for bit"
check '[ $(grep -c "^{\"step\": 300," $W/k/metrics.jsonl) -eq 1 ]' "metrics.jsonl: one line per step after resume"

# 3. a signal on one rank (SIGUSR1, as Slurm's --signal sends) stops every rank after the same
#    step; rank 0 saves and names the checkpoint;
#    resuming ends bit-identical to the unbroken run
rank_pid() {   # the pid of MPI rank $1 of a `$D train` job
    for p in $(pgrep -f "$D train" 2>/dev/null); do
        if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then echo $p; fi
    done | head -1
}
$MPIRUN -np 2 $D train $ARGS --steps 300 --save-every 10 --out $W/s > $W/s.log 2>&1 &
job=$!
t=0
while ! ls $W/s/ckpt-*.dstl > /dev/null 2>&1 && [ $t -lt 6000 ]; do sleep 0.01; t=$((t + 1)); done
victim=$(rank_pid 1)
[ -n "$victim" ] && kill -USR1 $victim
wait $job; rc=$?
check '[ -n "$victim" ] && { [ $rc -eq 143 ] || [ $rc -eq 138 ]; }' "SIGUSR1 on rank 1: the job exits with a stop status ($rc)"
check 'grep -q "interrupted at step [0-9]*: saved $W/s/ckpt-[0-9]*.dstl; continue with --resume" $W/s.log' "rank 0 names the checkpoint it saved"
check '! grep -q MPI_ABORT $W/s.log' "a clean stop, no MPI_Abort"
saved=$(sed -n 's/.*interrupted at step [0-9]*: saved \([^;]*\);.*/\1/p' $W/s.log)
check '[ -n "$saved" ] && [ -f "$saved" ] && [ ! -f $W/s/model.dstl ]' "checkpoint $saved written, no final model"
# SIGTERM to mpirun itself is not tested: Open MPI forwards it and SIGKILLs the ranks about 1 s
# later, and on this machine the ranks were killed before saving in most attempts (docs/cluster.md:
# signal the ranks, as Slurm's --signal does, not mpirun).
$MPIRUN -np 2 $D train $ARGS --steps 300 --save-every 10 --out $W/s --resume > $W/s3.log 2>&1
check '[ $? -eq 0 ]' "resumed after the signals"
$D info $W/s/model.dstl --diff $W/full/model.dstl > $W/diff3.txt 2>&1
check 'grep -q "identical    yes" $W/diff3.txt' "signalled + resumed == unbroken run, bit for bit"

echo "mpi_train: $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
