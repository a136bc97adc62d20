#!/bin/sh
# make test-long: the sweep at a small scale twice, with 1 and with 2 threads; every number but
# the timings must be identical (training and greedy evaluation are deterministic and the
# library promises the same results for any thread count). Then a kill in the middle of a run
# and a resume must give the same table again. A few minutes on 2 cores.
set -e
cd "$(dirname "$0")/.."
D=build/test_sweep_long
rm -rf $D.1 $D.2
args="--preset smoke --train 300 --direct 300 --eval 20 --sizes 25,100,250 --split-size 40 --dim 32 --max-new 96"
./distill sweep $args --out $D.1 --threads 1 > $D.1.log
./distill sweep $args --out $D.2 --threads 2 > $D.2.log
# drop the timing columns (train_seconds, eval_seconds: the last two)
strip() { sed 's/,[^,]*,[^,]*$//' "$1"; }
strip $D.1/results.csv > $D.1/strip.csv
strip $D.2/results.csv > $D.2/strip.csv
if ! cmp -s $D.1/strip.csv $D.2/strip.csv; then
  echo "FAIL: 1 thread and 2 threads disagree"; diff $D.1/strip.csv $D.2/strip.csv || true; exit 1
fi
echo "ok: identical results with 1 and 2 threads"
# kill a sweep mid-way, resume, compare
rm -rf $D.3
./distill sweep $args --out $D.3 --threads 2 > $D.3.log 2>&1 &
pid=$!
# kill it once the sweep runs have started (stage 0 finished) and while it is still running
i=0
while [ ! -f $D.3/runs/stage0/result.json ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
sleep 2
if ! kill -9 $pid 2>/dev/null; then echo "FAIL: the sweep ended before it could be killed (raise the sizes)"; exit 1; fi
wait $pid 2>/dev/null || true
if [ -f $D.3/results.csv ]; then echo "FAIL: the killed sweep had already finished"; exit 1; fi
./distill sweep $args --out $D.3 --threads 2 > $D.3.resume.log
strip $D.3/results.csv > $D.3/strip.csv
if ! cmp -s $D.2/strip.csv $D.3/strip.csv; then echo "FAIL: killed + resumed sweep differs"; exit 1; fi
echo "ok: killed and resumed sweep gives the same results ($(grep -c reused $D.3.resume.log) runs reused)"
echo "test_sweep_long: 2 passed, 0 failed, 0 skipped"
