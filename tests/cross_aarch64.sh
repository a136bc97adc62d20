#!/bin/sh
# Cross-compile the kernel and thread tests for aarch64 (NEON kernels) with Debian's
# gcc-aarch64-linux-gnu and run them under qemu-user. Exit 0 = pass; exit 1 = a test failed;
# exit 2 = the toolchain is missing (apt-get install gcc-aarch64-linux-gnu qemu-user).
cd "$(dirname "$0")/.." || exit 1
CC=${AARCH64_CC:-aarch64-linux-gnu-gcc}
QEMU=${QEMU_AARCH64:-qemu-aarch64}
GX=/usr/lib/gcc-cross/aarch64-linux-gnu/12
if ! command -v "$CC" >/dev/null 2>&1 && command -v clang >/dev/null 2>&1 && [ -d /usr/aarch64-linux-gnu/include ] \
   && [ -x /usr/bin/aarch64-linux-gnu-ld ] && [ -f $GX/libgcc.a ]; then
  # gcc-aarch64-linux-gnu conflicts with gcc-multilib on Debian and may have been removed; clang
  # with the leftover cross sysroot, binutils and libgcc does the same job
  CC="clang --target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu -isystem /usr/aarch64-linux-gnu/include -B$GX -L$GX -fuse-ld=/usr/bin/aarch64-linux-gnu-ld"
fi
if ! command -v ${CC%% *} >/dev/null 2>&1 || ! command -v "$QEMU" >/dev/null 2>&1; then
  echo "cross_aarch64: $CC or $QEMU not found (apt-get install gcc-aarch64-linux-gnu qemu-user)"
  exit 2
fi
# qemu-user aborts when a threaded guest forks and the child starts threads (its plugin/vCPU
# bookkeeping asserts); that test is skipped under emulation
export DISTILL_TEST_NO_FORK=1
d=build/aarch64; mkdir -p $d/tests
bins=""
for t in test_kernels test_kernels_attention test_threads; do
  echo "== $CC tests/$t.c"
  $CC -std=c99 -O2 -Wall -Wextra -pedantic -static -o $d/tests/$t tests/$t.c -lm -lpthread || exit 1
  bins="$bins $d/tests/$t"
done
# run.sh runs each binary directly; binfmt may not be registered, so wrap them in qemu here
P=0; F=0
for b in $bins; do
  echo "== $QEMU $b"
  out=$("$QEMU" "$b" 2>&1); rc=$?
  printf '%s\n' "$out"
  printf '%s\n' "$out" | grep -qE '^[a-z_]+: [0-9]+ passed, 0 failed' || rc=1
  case "$b" in *test_kernels) printf '%s\n' "$out" | grep -q "default: neon" || { echo "   the NEON kernels did not run"; rc=1; } ;; esac
  if [ $rc -eq 0 ]; then P=$((P + 1)); else F=$((F + 1)); fi
done
echo "aarch64: $P binaries passed, $F failed"
[ "$F" -eq 0 ]
