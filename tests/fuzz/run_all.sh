#!/bin/sh
# Build and run every libFuzzer harness tests/fuzz/fuzz_*.c for FUZZ_SECONDS each (make fuzz-all),
# one at a time at low priority. Each harness starts from its committed seeds
# tests/fuzz/corpus/<name>/ or tests/fuzz/seeds/fuzz_<name>/ (name = file name without fuzz_ and
# .c; json and data also get tests/fixtures/json and data) plus the corpus it grew in earlier
# runs (build/fuzz/corpus_<name>/); findings are written to build/fuzz/art_<name>/ as
# crash-*, oom-*, leak-*, timeout-* files. -malloc_limit_mb flags any single allocation larger
# than a loader could justify for a <= 1 MB input. Prints one line per harness and exits 1 when
# any harness found something. Needs clang with libFuzzer (Debian: libclang-rt-14-dev).
# Usage: sh tests/fuzz/run_all.sh [seconds] [harness names...]
cd "$(dirname "$0")/../.." || exit 1
SECS=${1:-${FUZZ_SECONDS:-60}}
[ $# -gt 0 ] && shift
FCC=${FUZZ_CC:-clang}
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
out=build/fuzz; mkdir -p $out
names=""
if [ $# -gt 0 ]; then names="$*"; else
  for src in tests/fuzz/fuzz_*.c; do n=$(basename "$src" .c); names="$names ${n#fuzz_}"; done
fi
bad=0
printf '%-16s %8s %12s %10s %s\n' harness seconds executions exec/s findings > $out/summary.txt
for n in $names; do
  src=tests/fuzz/fuzz_$n.c
  $FCC $FLAGS -o $out/fuzz_$n $src -lm -lpthread || { echo "fuzz_$n: build failed"; bad=1; continue; }
  mkdir -p $out/corpus_$n $out/art_$n
  for dd in tests/fuzz/corpus/$n tests/fuzz/seeds/fuzz_$n; do
    [ -d $dd ] && cp -n $dd/* $out/corpus_$n/ 2>/dev/null
  done
  # the JSON and data harnesses start from the committed JSON/JSONL fixtures
  case $n in json|data) for dd in tests/fixtures/json tests/fixtures/data; do
    [ -d $dd ] && cp -n $dd/* $out/corpus_$n/ 2>/dev/null; done ;; esac
  before=$(ls $out/art_$n | wc -l)
  # from the repo root, so harnesses find ../shared/data like the tests do
  nice -n 10 $out/fuzz_$n -max_total_time="$SECS" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=20 \
    -print_final_stats=1 -artifact_prefix=$out/art_$n/ $out/corpus_$n > $out/log_$n.txt 2>&1
  execs=$(grep -E '^stat::number_of_executed_units' $out/log_$n.txt | awk '{print $2}')
  rate=$(grep -E '^stat::average_exec_per_sec' $out/log_$n.txt | awk '{print $2}')
  after=$(ls $out/art_$n | wc -l)
  found=$((after - before))
  [ "$found" -gt 0 ] && bad=1
  printf '%-16s %8s %12s %10s %s\n' "$n" "$SECS" "${execs:-?}" "${rate:-?}" "$found$( [ $found -gt 0 ] && echo " (see $out/art_$n, $out/log_$n.txt)")" | tee -a $out/summary.txt
done
exit $bad
