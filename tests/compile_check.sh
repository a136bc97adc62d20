#!/bin/sh
# The header must compile warning-free (-Werror) as C99/C11 with gcc and clang, as C++ with g++
# and clang++, and with DISTILL_STATIC included in two translation units of one program.
set -e
cd "$(dirname "$0")/.."
d=build/compile_check; mkdir -p $d
printf '#define DISTILL_IMPLEMENTATION\n#include "../../distill.h"\nint main(void){ distill_rng r; distill_rng_seed(&r, 1); return (int)(distill_rng_u64(&r) & 0); }\n' > $d/impl.c
cp $d/impl.c $d/impl.cpp
printf '#define DISTILL_STATIC\n#define DISTILL_IMPLEMENTATION\n#include "../../distill.h"\nint tu_a(void){ distill_rng r; distill_rng_seed(&r, 2); return (int)(distill_rng_u64(&r) & 1); }\n' > $d/static_a.c
printf '#define DISTILL_STATIC\n#define DISTILL_IMPLEMENTATION\n#include "../../distill.h"\nint tu_a(void);\nint main(void){ distill_rng r; distill_rng_seed(&r, 3); return tu_a() + (int)(distill_rng_u64(&r) & 0); }\n' > $d/static_b.c
W="-Wall -Wextra -pedantic -Werror"
for cc in gcc clang; do
  for std in c99 c11; do
    echo "$cc -std=$std"; $cc -std=$std $W -O2 $d/impl.c -o $d/a.out -lm -lpthread
  done
  echo "$cc DISTILL_STATIC x2"; $cc -std=c99 $W -O2 $d/static_a.c $d/static_b.c -o $d/s.out -lm -lpthread
done
for cxx in g++ clang++; do
  echo "$cxx (C++)"; $cxx -x c++ $W -O2 $d/impl.cpp -o $d/a.out -lm -lpthread
done
echo "$CC DISTILL_NO_THREADS"; gcc -std=c99 $W -O2 -DDISTILL_NO_THREADS $d/impl.c -o $d/a.out -lm
echo "compile-check: ok"
