#!/bin/sh
# API-equivalence check for edits that only move and comment the public declarations (issue 19:
# the API section rewritten as a manual). Compares distill.h with the version at git revision
# REV (default HEAD):
#   1. the header without DISTILL_IMPLEMENTATION, preprocessed (-dD keeps the macros), cut into
#      top-level declarations (';' at brace depth 0, one per '#define' line), whitespace
#      normalised, sorted: the two sets must be equal; also with -DDISTILL_MPI when mpicc exists.
#      A bare "struct X;" is left out when the header defines struct X (it declares nothing);
#   2. the implementation compiled both ways: nm must list the same defined symbols.
# Usage: tests/api_decls.sh [REV]    exit 0 equal, 1 different (the difference is printed).
# Not part of `make test`: it compares two versions of the header, not the header with itself.
cd "$(dirname "$0")/.." || exit 1
rev=${1:-HEAD}
d=build/api_decls; rm -rf $d; mkdir -p $d/old $d/new
git show "$rev:distill.h" > $d/old/distill.h || exit 1
cp distill.h $d/new/distill.h
split_decls() {   # stdin: preprocessed C; stdout: one normalised declaration per line, sorted
python3 -c '
import sys, re
src = sys.stdin.read()
out, cur, depth = [], [], 0
for line in src.split("\n"):
    if line.lstrip().startswith("#"):
        out.append(line.strip()); continue
    for ch in line + "\n":
        cur.append(ch)
        if ch == "{": depth += 1
        elif ch == "}": depth -= 1
        elif ch == ";" and depth == 0:
            out.append("".join(cur)); cur = []
if "".join(cur).strip(): out.append("".join(cur))
def norm(s):
    s = re.sub(r"\s+", " ", s).strip()
    return re.sub(r" ?([(){}\[\],;*]) ?", r"\1", s)
decls = set(norm(x) for x in out if x.strip())
# "struct X;" declares nothing when the header defines struct X: the rewrite drops such a line
defined = set(m.group(1) for d in decls for m in re.finditer(r"struct (\w+)\{", d))
for s in sorted(decls):
    m = re.fullmatch(r"struct (\w+);", s)
    if not (m and m.group(1) in defined): print(s)
'
}
fail=0
for v in old new; do
  gcc -E -P -dD -std=c99 -x c $d/$v/distill.h | split_decls > $d/$v.decls
done
if ! diff $d/old.decls $d/new.decls > $d/decls.diff; then
  echo "declarations differ (< $rev, > working tree):"; cat $d/decls.diff; fail=1
else echo "declarations: $(wc -l < $d/new.decls) top-level declarations and macros, identical sets"; fi
MPIINC=$(mpicc --showme:incdirs 2>/dev/null | awk '{print $1}')
if [ -n "$MPIINC" ]; then
  for v in old new; do
    gcc -E -P -dD -std=c99 -DDISTILL_MPI -I"$MPIINC" -x c $d/$v/distill.h | split_decls > $d/$v.mpi.decls
  done
  if ! diff $d/old.mpi.decls $d/new.mpi.decls > $d/mpi.diff; then
    echo "declarations differ with DISTILL_MPI:"; cat $d/mpi.diff; fail=1
  else echo "declarations with DISTILL_MPI: identical sets"; fi
fi
for v in old new; do
  printf '#define DISTILL_IMPLEMENTATION\n#include "distill.h"\n' > $d/$v/impl.c
  gcc -std=c99 -O0 -c $d/$v/impl.c -o $d/$v/impl.o || fail=1
  nm --defined-only $d/$v/impl.o | awk '{print $2, $3}' | sort > $d/$v.syms
done
if ! diff $d/old.syms $d/new.syms > $d/syms.diff; then
  echo "defined symbols differ:"; cat $d/syms.diff; fail=1
else echo "nm: $(grep -c ' distill_' $d/new.syms) public distill_ symbols defined, identical"; fi
exit $fail
