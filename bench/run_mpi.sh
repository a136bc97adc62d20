#!/bin/sh
# make bench-mpi: data-parallel step time and all-reduce time, 1 vs 2 ranks, same global batch.
# Each configuration runs REPEAT times (default 3); quote the medians. JSON lines go to
# build/bench/dp.jsonl. usage: bench/run_mpi.sh [CONFIGS] [STEPS] [REPEAT]
cd "$(dirname "$0")/.." || exit 1
CONFIGS=${1:-"tiny S M"}; STEPS=${2:-5}; REPEAT=${3:-3}
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
mkdir -p build/bench
mpicc -std=c99 -O2 -Wall -Wextra -pedantic -DDISTILL_MPI -o build/bench/bench_dp bench/bench_dp.c -lm -lpthread || exit 1
out=build/bench/dp.jsonl; : > $out
for cfg in $CONFIGS; do
  r=0
  while [ $r -lt $REPEAT ]; do
    DISTILL_THREADS=1 build/bench/bench_dp $cfg $STEPS | tee -a $out                      # 1 process, 1 thread
    DISTILL_THREADS=2 build/bench/bench_dp $cfg $STEPS | tee -a $out                      # 1 process, 2 threads
    $MPIRUN -np 2 -x DISTILL_THREADS=1 build/bench/bench_dp $cfg $STEPS 1 | tee -a $out   # 2 ranks, buckets during backward
    $MPIRUN -np 2 -x DISTILL_THREADS=1 build/bench/bench_dp $cfg $STEPS 0 | tee -a $out   # 2 ranks, one all-reduce after
    r=$((r + 1))
  done
done
