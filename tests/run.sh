#!/bin/sh
# Run every test binary given on the command line, from the repository root, and print one
# closing line "N passed, N failed, N skipped" over all of them. Exit 1 if any test failed or
# any binary crashed. With DISTILL_TEST_STRICT=1 (CI) a skip is a failure: the C tests count it
# as failed themselves (tests/harness.h), a script's skipped count is added to the failures here.
cd "$(dirname "$0")/.." || exit 1
P=0; F=0; S=0; crashed=""
for t in "$@"; do
  echo "== $t"
  case "$t" in
    *.sh) out=$(sh "$t" 2>&1); rc=$? ;;   # scripts need not be executable
    *) out=$("$t" 2>&1); rc=$? ;;
  esac
  printf '%s\n' "$out"
  line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then
    echo "   $t exited with status $rc without a summary line (crash?)"
    F=$((F + 1)); crashed="$crashed $t"; continue
  fi
  p=$(echo "$line" | sed -E 's/^[^:]*: ([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
  s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p'); [ -n "$s" ] || s=0
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; crashed="$crashed $t"; fi
  if [ -n "${DISTILL_TEST_STRICT:-}" ] && [ "$DISTILL_TEST_STRICT" != 0 ] && [ "$s" -gt 0 ]; then
    echo "   $t skipped $s (a failure under DISTILL_TEST_STRICT)"; f=$((f + s)); s=0; crashed="$crashed $t"
  fi
  P=$((P + p)); F=$((F + f)); S=$((S + s))
done
[ -n "$crashed" ] && echo "binaries that failed or crashed:$crashed"
echo "$P passed, $F failed, $S skipped"
[ "$F" -eq 0 ]
