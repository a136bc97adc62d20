#!/bin/sh
# The header must compile warning-free (-Werror) as C99/C11 with gcc and clang, as C++ with g++
# and clang++, and with DISTILL_STATIC included in two translation units of one program. Every
# configuration is tried; each failure is reported with the compiler's message, and the script
# exits 1 at the end if any failed.
cd "$(dirname "$0")/.." || exit 1
d=build/compile_check; mkdir -p $d
printf '#define DISTILL_IMPLEMENTATION\n#include "../../distill.h"\nint main(void){ distill_rng r; distill_rng_seed(&r, 1); return (int)(distill_rng_u64(&r) & 0); }\n' > $d/impl.c
cp $d/impl.c $d/impl.cpp
printf '#define DISTILL_STATIC\n#define DISTILL_IMPLEMENTATION\n#include "../../distill.h"\nint tu_a(void){ distill_rng r; distill_rng_seed(&r, 2); return (int)(distill_rng_u64(&r) & 1); }\n' > $d/static_a.c
printf '#define DISTILL_STATIC\n#define DISTILL_IMPLEMENTATION\n#include "../../distill.h"\nint tu_a(void);\nint main(void){ distill_rng r; distill_rng_seed(&r, 3); return tu_a() + (int)(distill_rng_u64(&r) & 0); }\n' > $d/static_b.c
W="-Wall -Wextra -pedantic -Werror"
CF=0; CFAILED=""
# check NAME COMMAND...: run one configuration's compile; on failure print its first 20 lines
check() {
  name=$1; shift
  echo "$name"
  if ! "$@" > $d/check.log 2>&1; then
    echo "FAIL  $name:"; sed -n 1,20p $d/check.log | sed 's/^/      /'
    CF=$((CF + 1)); CFAILED="$CFAILED
  $name"
  fi
}
for cc in gcc clang; do
  for std in c99 c11; do
    check "$cc -std=$std" $cc -std=$std $W -O2 $d/impl.c -o $d/a.out -lm -lpthread
  done
  check "$cc DISTILL_STATIC x2" $cc -std=c99 $W -O2 $d/static_a.c $d/static_b.c -o $d/s.out -lm -lpthread
done
for cxx in g++ clang++; do
  check "$cxx (C++)" $cxx -x c++ $W -O2 $d/impl.cpp -o $d/a.out -lm -lpthread
done
check "gcc DISTILL_NO_THREADS" gcc -std=c99 $W -O2 -DDISTILL_NO_THREADS $d/impl.c -o $d/a.out -lm
if command -v mpicc >/dev/null && command -v mpicxx >/dev/null; then
  printf '#define DISTILL_IMPLEMENTATION\n#include "../../distill.h"\nint main(int argc, char **argv){ distill_comm c; distill_error e; if (distill_mpi_init(&argc, &argv, &c, &e)) return 1; distill_mpi_finalize(); return 0; }\n' > $d/mpi.c
  cp $d/mpi.c $d/mpi.cpp
  check "mpicc DISTILL_MPI (gcc)" mpicc -std=c99 $W -O2 -DDISTILL_MPI $d/mpi.c -o $d/a.out -lm -lpthread
  check "mpicc DISTILL_MPI (clang)" env OMPI_CC=clang mpicc -std=c99 $W -O2 -DDISTILL_MPI $d/mpi.c -o $d/a.out -lm -lpthread
  check "mpicxx DISTILL_MPI (C++)" mpicxx -x c++ $W -O2 -DDISTILL_MPI $d/mpi.cpp -o $d/a.out -lm -lpthread
else
  echo "mpicc/mpicxx absent: the DISTILL_MPI build is not checked (apt-get install libopenmpi-dev)"
fi
if [ "$CF" -ne 0 ]; then
  echo "compile-check: $CF configuration(s) failed:$CFAILED"
  [ "$1" = "--run" ] || exit 1
else
  echo "compile-check: ok"
fi

# ---- make matrix (--run): every configuration also builds and RUNS tests/matrix_check.c (two
# training steps, a JSON parse, a CRC) and must print the default build's numbers (floats within
# a relative 1e-4). Optional toolchains (-m32 multilib, aarch64 cross + qemu) are skipped with a
# message when absent. Prints one line per configuration and a summary; exit 1 on any failure.
[ "$1" = "--run" ] || exit 0
printf '#define DISTILL_IMPLEMENTATION\n#include "../../distill.h"\nint matrix_tu_b(void){ distill_error e; distill_json *j = distill_json_parse("[7]", 3, "b", 1, &e); int v = j ? (int)j->items[0].i64 : -1; distill_json_free(j); return v; }\n' > $d/matrix_b.c
M=tests/matrix_check.c
L="-lm -lpthread"
P=0; F=0; S=0
ref=""
# same NAME "numbers": compare every numeric field with the reference line
same() {
  printf '%s\n%s\n' "$ref" "$1" | awk '
    NR == 1 { for (i = 1; i <= NF; i++) r[i] = $i; n = NF; next }
    { if (NF != n) { print "field count"; exit 1 }
      for (i = 1; i <= NF; i++) {
        if (r[i - 1] == "simd" || r[i - 1] == "extra") continue
        if (r[i] ~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ && r[i] ~ /\./) {
          d = r[i] - $i; if (d < 0) d = -d; a = r[i] < 0 ? -r[i] : r[i]
          if (d > 1e-4 * a + 1e-7) { print r[i - 1] " " r[i] " vs " $i; exit 1 }
        } else if (r[i] != $i) { print r[i - 1] " " r[i] " vs " $i; exit 1 }
      } }'
}
# run NAME BUILD-COMMAND... (the command builds $d/m.out); RUNNER / SIMD env may wrap the run
run() {
  name=$1; shift
  t0=$(date +%s)
  if ! "$@" > $d/build.log 2>&1; then
    echo "FAIL  $name: build failed"; sed -n 1,15p $d/build.log; F=$((F + 1)); return
  fi
  out=$(timeout ${MATRIX_TIMEOUT:-300} $RUNNER $d/m.out 2>&1); rc=$?
  t1=$(date +%s)
  if [ $rc -eq 124 ]; then echo "FAIL  $name: no result after ${MATRIX_TIMEOUT:-300}s (hang)"; F=$((F + 1)); return; fi
  if [ $rc -ne 0 ]; then echo "FAIL  $name: exit $rc: $out"; F=$((F + 1)); return; fi
  if [ -z "$ref" ]; then ref=$out; fi
  why=$(same "$out")
  if [ -n "$why" ]; then echo "FAIL  $name: differs from the default build: $why"; echo "      $out"; F=$((F + 1)); return; fi
  echo "ok    $name ($((t1 - t0))s): $out"; P=$((P + 1))
}
skip() { echo "skip  $1"; S=$((S + 1)); }
RUNNER=
run "gcc -std=c99 -O2 (reference)" gcc -std=c99 $W -O2 $M -o $d/m.out $L
run "gcc -std=c11 -O2" gcc -std=c11 $W -O2 $M -o $d/m.out $L
run "clang -std=c99 -O2" clang -std=c99 $W -O2 $M -o $d/m.out $L
run "clang -std=c11 -O0" clang -std=c11 $W -O0 $M -o $d/m.out $L
run "g++ -x c++ -O2" g++ -x c++ $W -O2 $M -o $d/m.out $L
run "clang++ -x c++ -O2" clang++ -x c++ $W -O2 $M -o $d/m.out $L
run "gcc DISTILL_STATIC, two translation units (-DDISTILL_STATIC)" gcc -std=c99 $W -O2 -DDISTILL_STATIC -DMATRIX_TWO_TU $M $d/matrix_b.c -o $d/m.out $L
run "gcc DISTILL_NO_THREADS (no -lpthread)" gcc -std=c99 $W -O2 -DDISTILL_NO_THREADS $M -o $d/m.out -lm
run "gcc -O3 -march=native" gcc -std=c99 $W -O3 -march=native $M -o $d/m.out $L
# scalar-only: the kernels pick their instruction set at run time; DISTILL_SIMD=scalar forces the
# portable C kernels (there is no compile-time switch)
RUNNER="env DISTILL_SIMD=scalar"
run "gcc, scalar kernels (DISTILL_SIMD=scalar)" gcc -std=c99 $W -O2 $M -o $d/m.out $L
RUNNER="env DISTILL_THREADS=1"
run "gcc, 1 thread (DISTILL_THREADS=1)" gcc -std=c99 $W -O2 $M -o $d/m.out $L
RUNNER=
if [ -f /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ]; then
  run "gcc BLAS=1 (OpenBLAS)" gcc -std=c99 $W -O2 -DDISTILL_OPENBLAS -I/usr/include/x86_64-linux-gnu/openblas-pthread $M -o $d/m.out -lopenblas $L
else skip "BLAS=1: libopenblas-dev not installed"; fi
if printf '#include <errno.h>\n#include <pthread.h>\n#include <math.h>\nint main(void){return errno;}\n' | gcc -m32 -x c - -o $d/m32probe -lm -lpthread >/dev/null 2>&1; then
  run "gcc -m32" gcc -m32 -std=c99 $W -O2 $M -o $d/m.out $L
else skip "gcc -m32: no 32-bit libc/libgcc (apt-get install gcc-multilib)"; fi
if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then
  RUNNER=qemu-aarch64
  run "aarch64-linux-gnu-gcc -static under qemu-aarch64 (NEON)" aarch64-linux-gnu-gcc -std=c99 $W -O2 -static $M -o $d/m.out $L
  RUNNER=
else skip "aarch64: gcc-aarch64-linux-gnu / qemu-user not installed"; fi
F=$((F + CF))
echo "matrix: $P passed, $F failed, $S skipped"
[ "$F" -eq 0 ]
