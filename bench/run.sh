#!/bin/sh
# make bench: the kernels/threads benchmark, one run, JSON lines into build/bench/results.jsonl
#   1. FMA peak (bench/fma_peak.c), 1 and 2 threads, AVX2 and AVX-512
#   2. matmul GFLOP/s on transformer shapes, own kernels vs OpenBLAS, 1 and 2 threads, and
#      attention forward+backward (model part vs blocked flash kernel)
#   3. `distill bench train` for the S and M configs on 1 and 2 threads (and --blas), FP32 and
#      --precision bf16, and bench/torch_ref.py on the same shapes when /usr/bin/python3 has
#      torch (FP32 and bf16 autocast), with the ratios; a table of the four at the end.
# Knobs: THREADS="1 2"  CONFIGS="S M"  STEPS_S=5  STEPS_M=3  REPS=5  SKIP_MATMUL=1  SKIP_TORCH=1
#        DISTILL=path/to/distill (default: a BLAS=1 build in build/bench)
# The machine may be shared: every line has wall-time and CPU-time figures; quote medians.
set -e
cd "$(dirname "$0")/.."
B=build/bench; mkdir -p $B
OUT=$B/results.jsonl; : > $OUT
CC=${CC:-cc}
THREADS=${THREADS:-"1 2"}; CONFIGS=${CONFIGS:-"S M"}; REPS=${REPS:-5}
BLASF="-DDISTILL_OPENBLAS -I/usr/include/x86_64-linux-gnu/openblas-pthread"
BLASL="-lopenblas"
[ -f /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ] || { BLASF=""; BLASL=""; }
echo "== build (plain -O2, no -march: the kernels are chosen at run time)"
$CC -std=c99 -O2 bench/fma_peak.c -o $B/fma_peak -lpthread
$CC -std=c99 -O2 $BLASF bench/bench_kernels.c -o $B/bench_kernels -lm -lpthread $BLASL
if [ -z "$DISTILL" ]; then
  $CC -std=c99 -O2 $BLASF -o $B/distill examples/distill.c examples/cli/*.c examples/valley/*.c -lm -lpthread $BLASL
  DISTILL=$B/distill
fi
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) cores), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $B/machine.txt
echo "== FMA peak"; $B/fma_peak 2 0.3 | tee -a $OUT
if [ -z "$SKIP_MATMUL" ]; then
  echo "== matmul and attention"; $B/bench_kernels $REPS 2 | tee -a $OUT
fi
cfg_args() {
  case $1 in
    S) echo "--vocab 4096 --dim 256 --layers 4 --heads 4 --kv-heads 4 --ffn 768 --seq 256 --batch 8 --steps ${STEPS_S:-5}" ;;
    M) echo "--vocab 8192 --dim 512 --layers 8 --heads 8 --kv-heads 8 --ffn 1408 --seq 512 --batch 4 --steps ${STEPS_M:-3}" ;;
  esac
}
for c in $CONFIGS; do
  for t in $THREADS; do
    echo "== train $c, $t thread(s)"
    $DISTILL bench train $(cfg_args $c) --threads $t > $B/train_${c}_t$t.json
    sed "s/^{/{\"config\":\"$c\",/" $B/train_${c}_t$t.json | tee -a $OUT
    if [ -n "$BLASF" ] && [ -z "$SKIP_BLAS_TRAIN" ]; then
      $DISTILL bench train $(cfg_args $c) --threads $t --blas | sed "s/^{/{\"config\":\"$c\",/" | tee -a $OUT
    fi
    $DISTILL bench train $(cfg_args $c) --threads $t --precision bf16 > $B/train_${c}_t${t}_bf16.json
    sed "s/^{/{\"config\":\"$c\",/" $B/train_${c}_t${t}_bf16.json | tee -a $OUT
    if [ -z "$SKIP_TORCH" ] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
      /usr/bin/python3 bench/torch_ref.py $(cfg_args $c) --threads $t --distill $B/train_${c}_t$t.json \
        | sed "s/^{/{\"config\":\"$c\", /" | tee $B/torch_${c}_t$t.json | tee -a $OUT
      /usr/bin/python3 bench/torch_ref.py $(cfg_args $c) --threads $t --precision bf16 \
        --distill $B/train_${c}_t${t}_bf16.json | sed "s/^{/{\"config\":\"$c\", /" \
        | tee $B/torch_${c}_t${t}_bf16.json | tee -a $OUT
    fi
  done
done
echo "== training tokens/s (wall-time medians of one run each; ours: MFU against the FP32 FMA peak)"
python3 - "$B" "$CONFIGS" "$THREADS" <<'PY'
import json, os, sys
B, configs, threads = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def tps(name):
    try:
        with open(os.path.join(B, name)) as f:
            d = json.loads(f.read().strip().splitlines()[-1])
        return d
    except (OSError, ValueError, IndexError):
        return None
print("%-6s %3s | %9s %9s %9s | %10s %10s | %15s %15s" % ("config", "thr", "ours fp32", "ours bf16", "bf16/fp32",
      "torch fp32", "torch bf16", "ours/torch fp32", "ours/torch bf16"))
for c in configs:
    for t in threads:
        o32, o16 = tps("train_%s_t%s.json" % (c, t)), tps("train_%s_t%s_bf16.json" % (c, t))
        p32, p16 = tps("torch_%s_t%s.json" % (c, t)), tps("torch_%s_t%s_bf16.json" % (c, t))
        f = lambda d, w: "%*.0f" % (w, d["tokens_per_s"]) if d else "%*s" % (w, "-")
        r = lambda a, b, w: "%*.2f" % (w, a["tokens_per_s"] / b["tokens_per_s"]) if a and b else "%*s" % (w, "-")
        print("%-6s %3s | %s %s %s | %s %s | %s %s   (bf16 path: %s)" % (c, t, f(o32, 9), f(o16, 9), r(o16, o32, 9),
              f(p32, 10), f(p16, 10), r(o32, p32, 15), r(o16, p16, 15), o16.get("bf16_path", "?") if o16 else "-"))
PY
echo "== results in $OUT"
