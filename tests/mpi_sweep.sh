#!/bin/sh
# make test-mpi: the tiny sweep under `mpirun -np 2` (ranks share the runs, rank 0 writes the
# report) must give the same table as one process: every column of results.csv but the two
# timings, results.md and every run's generations.jsonl byte for byte. Then a run lost after a
# kill is redone by rerunning the job, and the rest reused. Usage: sh tests/mpi_sweep.sh
# [DISTILL_MPI_BINARY] (default build/distill-mpi, built with mpicc -DDISTILL_MPI).
# MPIRUN overrides the launcher (default: mpirun --oversubscribe --allow-run-as-root).
cd "$(dirname "$0")/.." || exit 1
DISTILL=${1:-build/distill-mpi}
MPIRUN=${MPIRUN:-"mpirun --oversubscribe --allow-run-as-root"}
D=build/mpi_sweep
ARGS="--preset smoke --dim 16 --hidden 32 --seq 256 --train 80 --direct 60 --eval 8 --max-new 40 --sizes 8,16 --split-size 6"
RUNS="stage0 s1_n8 s1_n16 s1_easy_from0 s1_hard_from0 s1_correct_from0 s1_incorrect_from0 s1_easy_fromL s1_hard_fromL s1_correct_fromL s1_incorrect_fromL"
P=0; F=0
pass() { echo "  ok: $1"; P=$((P + 1)); }
fail() { echo "  FAIL: $1"; F=$((F + 1)); }
done_() { echo "mpi_sweep: $P passed, $F failed, $1 skipped"; [ "$F" -eq 0 ]; exit $?; }

if [ ! -x "$DISTILL" ]; then echo "  skip: no $DISTILL (mpicc -std=c99 -O2 -DDISTILL_MPI -o $DISTILL examples/distill.c examples/cli/*.c examples/valley/*.c -lm -lpthread)"; done_ 1; fi
if ! command -v "${MPIRUN%% *}" >/dev/null 2>&1; then echo "  skip: no ${MPIRUN%% *}"; done_ 1; fi
rm -rf $D && mkdir -p $D || exit 1

# the results must agree: all but the timing columns (train_seconds, eval_seconds: the last two)
same() {   # same DIR_A DIR_B WHAT
  sed 's/,[^,]*,[^,]*$//' "$1/results.csv" > "$1/strip.csv" 2>/dev/null
  sed 's/,[^,]*,[^,]*$//' "$2/results.csv" > "$2/strip.csv" 2>/dev/null
  if [ "$(wc -l < "$1/strip.csv")" -ne 12 ]; then fail "$3: $1/results.csv has $(wc -l < "$1/strip.csv") lines, want 12"; return; fi
  if ! cmp -s "$1/strip.csv" "$2/strip.csv"; then fail "$3: results.csv differs"; diff "$1/strip.csv" "$2/strip.csv"; return; fi
  if ! cmp -s "$1/results.md" "$2/results.md"; then fail "$3: results.md differs"; return; fi
  for r in $RUNS; do
    if ! cmp -s "$1/runs/$r/generations.jsonl" "$2/runs/$r/generations.jsonl"; then fail "$3: $r/generations.jsonl differs"; return; fi
  done
  pass "$3"
}

# one process (the same binary without mpirun: a one-process communicator)
if "$DISTILL" sweep $ARGS --out $D/one > $D/one.log 2>&1; then pass "one-process sweep"; else fail "one-process sweep ($D/one.log)"; fi

# two ranks
if $MPIRUN -np 2 "$DISTILL" sweep $ARGS --out $D/two > $D/two.log 2>&1; then pass "mpirun -np 2 sweep"; else fail "mpirun -np 2 sweep ($D/two.log)"; fi
if grep -q "rank 1: " $D/two.log && grep -q "rank 0: " $D/two.log; then pass "both ranks ran runs"; else fail "both ranks ran runs ($D/two.log)"; fi
same $D/one $D/two "2 ranks = 1 process"

# a run lost (as if its rank was killed before finishing it) is redone by rerunning the job
rm -f $D/two/runs/s1_n8/result.json $D/two/results.csv
if $MPIRUN -np 2 "$DISTILL" sweep $ARGS --out $D/two > $D/two.resume.log 2>&1; then pass "resumed mpirun sweep"; else fail "resumed mpirun sweep ($D/two.resume.log)"; fi
n=$(grep -c " reused " $D/two.resume.log)
if [ "$n" -eq 10 ] && grep -q "s1_n8 .* rows" $D/two.resume.log; then pass "resume: 10 runs reused, s1_n8 redone"; else fail "resume: $n runs reused ($D/two.resume.log)"; fi
same $D/one $D/two "resumed 2 ranks = 1 process"

# array-task options make no sense under mpirun
if $MPIRUN -np 2 "$DISTILL" sweep $ARGS --out $D/bad --task-id 0 --num-tasks 2 > $D/bad.log 2>&1; then
  fail "--task-id under mpirun accepted"
else pass "--task-id under mpirun refused"; fi
done_ 0
