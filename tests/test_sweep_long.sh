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
# kill a sweep mid-way (once its first run has finished, before its last), resume, compare.
# A finished run is OUT/runs/NAME/result.json (results.csv is written only at the end).
rm -rf $D.3
./distill sweep $args --out $D.3 --threads 2 > $D.3.log 2>&1 &
pid=$!
finished() { ls $1/runs/*/result.json 2>/dev/null | wc -l; }
total=$(finished $D.2)
i=0
while [ $i -lt 1200 ] && [ "$(finished $D.3)" -lt 1 ] && kill -0 $pid 2>/dev/null; do
  sleep 0.5; i=$((i + 1))
done
if ! kill $pid 2>/dev/null; then echo "FAIL: the sweep ended before it could be killed"; exit 1; fi
rc=0; wait $pid 2>/dev/null || rc=$?
done_runs=$(finished $D.3)
if [ $rc -ne 143 ]; then echo "FAIL: the killed sweep exited with status $rc, not by SIGTERM (143)"; exit 1; fi
if [ "$done_runs" -lt 1 ] || [ "$done_runs" -ge "$total" ]; then
  echo "FAIL: killed with $done_runs of $total runs finished (want some, not all)"; exit 1
fi
echo "killed after $done_runs of $total runs"
./distill sweep $args --out $D.3 --threads 2 > $D.3.resume.log
strip $D.3/results.csv > $D.3/strip.csv
if ! cmp -s $D.2/strip.csv $D.3/strip.csv; then echo "FAIL: killed + resumed sweep differs"; exit 1; fi
reused=$(grep -c reused $D.3.resume.log || true)
if [ "$reused" -lt 1 ]; then echo "FAIL: the resumed sweep reused no finished run"; exit 1; fi
echo "ok: killed and resumed sweep gives the same results ($reused runs reused)"
echo "test_sweep_long: 2 passed, 0 failed, 0 skipped"
