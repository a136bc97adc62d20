#!/bin/sh
# make mutants: mutation testing of distill.h. Each line of tests/mutants.txt names a mutation
# (a search string that occurs once in distill.h and its replacement) and the test binaries that
# should notice it. For each mutation: copy distill.h to build/mutants/src/ with the one change,
# build the listed tests against that copy, run them (from the repository root, with
# DISTILL_TEST_STRICT=1), and call the mutant killed when one of them fails, crashes or times
# out. distill.h itself is never modified. Prints one line per mutant and the survivors.
#
#   make mutants                         all of tests/mutants.txt, one mutant at a time
#   MUTANTS_ONLY="json_r_escape kd_jsd_grad" sh tests/mutants.sh     a subset, by name
#   MUTANTS_CHECK=1 sh tests/mutants.sh  only check that every search string is still unique
#
# Environment: CC (cc), MUTANT_OPT (-O1), MUTANT_TIMEOUT (seconds per test run, 300),
# MUTANTS_LIST (tests/mutants.txt), MUTANTS_TESTS (the directory of the test sources, tests;
# another revision's tests/ measures that suite), MUTANTS_DIR (scratch space, build/mutants). Exit status: 0 when every mutant was killed or is marked
# equivalent; 1 when a mutant survived or a baseline test failed; 2 when only search strings
# were missing or not unique (the header changed: update tests/mutants.txt).
cd "$(dirname "$0")/.." || exit 1
LIST=${MUTANTS_LIST:-tests/mutants.txt}
CC=${CC:-cc}
OPT=${MUTANT_OPT:--O1}
TIMEOUT=${MUTANT_TIMEOUT:-300}
W=${MUTANTS_DIR:-build/mutants}
TESTS_DIR=${MUTANTS_TESTS:-tests}
export DISTILL_TEST_STRICT=1
rm -rf $W
mkdir -p $W/src/tests $W/bin $W/base $W/log || exit 1
cp "$TESTS_DIR"/*.h "$TESTS_DIR"/*.c $W/src/tests/ || exit 1
cp distill.h $W/src/distill.h.orig || exit 1

# occurrences of $S (environment, taken literally: no regex, no escapes) in file $1
count() {
  awk 'BEGIN { s = ENVIRON["S"]; n = 0 }
       { t = $0; while ((i = index(t, s)) > 0) { n++; t = substr(t, i + length(s)) } }
       END { print n }' "$1"
}
# file $1 with the one occurrence of $S replaced by $R, to stdout
replace() {
  awk 'BEGIN { s = ENVIRON["S"]; r = ENVIRON["R"] }
       { i = index($0, s); if (i > 0) $0 = substr($0, 1, i - 1) r substr($0, i + length(s)); print }' "$1"
}
build() {   # build TEST into DIR against $W/src/distill.h; output in $W/log/build.log
  $CC -std=c99 $OPT -w -o "$2/$1" "$W/src/tests/$1.c" -lm -lpthread > $W/log/build.log 2>&1
}

# parse the list into tab-separated name, tests, search, replacement (one per line)
sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$LIST" |
  sed -n 's/^\([^ ]*\) \[\([^]]*\)\] \(.*\) ==> \(.*\)$/\1	\2	\3	\4/p' > $W/list.tsv
bad=$(sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$LIST" | grep -vc ' ==> ' || true)
[ "$bad" -eq 0 ] || echo "warning: $bad line(s) of $LIST are not NAME [TESTS] SEARCH ==> REPLACEMENT"
if [ -n "${MUTANTS_ONLY:-}" ]; then
  : > $W/only.tsv
  for n in $MUTANTS_ONLY; do awk -F '	' -v n="$n" '$1 == n || $1 == "equivalent:" n' $W/list.tsv >> $W/only.tsv; done
  mv $W/only.tsv $W/list.tsv
fi
total=$(wc -l < $W/list.tsv)
echo "mutants: $total from $LIST (CC=$CC $OPT, timeout ${TIMEOUT}s per test)"

# baseline: every listed test must pass against the unmodified header
cp $W/src/distill.h.orig $W/src/distill.h
tests=$(cut -f2 $W/list.tsv | tr ',' '\n' | sort -u)
[ -n "${MUTANTS_CHECK:-}" ] && tests=""
broken=""
for t in $tests; do
  if [ ! -f "$W/src/tests/$t.c" ]; then echo "baseline: $TESTS_DIR/$t.c does not exist"; broken="$broken $t"; continue; fi
  if ! build "$t" $W/base; then echo "baseline: $t does not build"; sed -n 1,10p $W/log/build.log; broken="$broken $t"; continue; fi
  if ! timeout "$TIMEOUT" $W/base/$t > $W/log/base.$t.log 2>&1; then
    echo "baseline: $t fails on the unmodified header (see $W/log/base.$t.log)"; broken="$broken $t"
  fi
done
[ -z "$broken" ] && [ -n "$tests" ] && echo "baseline: $(echo $tests | wc -w) test binaries pass on the unmodified header"

killed=0; survived=0; equiv=0; missing=0; stillborn=0; i=0
surv_names=""; equiv_names=""; missing_names=""
tab=$(printf '\t')
while IFS="$tab" read -r name tlist S R; do
  i=$((i + 1))
  export S R
  n=$(count $W/src/distill.h.orig)
  if [ "$n" -ne 1 ]; then
    if [ "$n" -eq 0 ]; then why="search string not found"; else why="search string occurs $n times"; fi
    printf '%3d %-30s %s\n' "$i" "$name" "NOT APPLIED: $why (update $LIST)"
    missing=$((missing + 1)); missing_names="$missing_names $name"; continue
  fi
  if [ -n "${MUTANTS_CHECK:-}" ]; then printf '%3d %-30s %s\n' "$i" "$name" "search string unique"; continue; fi
  replace $W/src/distill.h.orig > $W/src/distill.h
  verdict=""
  for t in $(echo "$tlist" | tr ',' ' '); do
    case " $broken " in *" $t "*) continue ;; esac
    if ! build "$t" $W/bin; then verdict="does not compile (stillborn)"; break; fi
    t0=$(date +%s)
    timeout "$TIMEOUT" $W/bin/$t > $W/log/$name.$t.log 2>&1; rc=$?
    t1=$(date +%s)
    if [ $rc -eq 124 ]; then verdict="killed by $t (timeout)"; break; fi
    if [ $rc -ne 0 ]; then
      why=$(grep -m1 'FAIL' $W/log/$name.$t.log | sed 's/^ *//' | cut -c1-90)
      [ -n "$why" ] || why="exit status $rc"
      verdict="killed by $t ($((t1 - t0))s): $why"; break
    fi
  done
  case "$verdict" in
    killed*) killed=$((killed + 1)) ;;
    does*) stillborn=$((stillborn + 1)) ;;
    *)
      case "$name" in
        equivalent:*) verdict="survived: equivalent (explained in $LIST)"; equiv=$((equiv + 1)); equiv_names="$equiv_names $name" ;;
        *) verdict="SURVIVED ($tlist all pass)"; survived=$((survived + 1)); surv_names="$surv_names $name" ;;
      esac ;;
  esac
  printf '%3d %-30s %s\n' "$i" "$name" "$verdict"
done < $W/list.tsv
cp $W/src/distill.h.orig $W/src/distill.h

applied=$((killed + survived + equiv))
echo
echo "mutants: $total listed, $applied applied, $killed killed, $survived survived, $equiv equivalent, $stillborn stillborn, $missing not applied"
[ $applied -gt 0 ] && awk -v k=$killed -v a=$applied -v e=$equiv 'BEGIN {
  printf "kill rate: %.1f%% of applied mutants, %.1f%% of non-equivalent ones\n", 100 * k / a, (a > e ? 100 * k / (a - e) : 0) }'
[ -n "$surv_names" ] && echo "SURVIVORS:$surv_names"
[ -n "$equiv_names" ] && echo "equivalent (explained):$equiv_names"
[ -n "$missing_names" ] && echo "not applied (search string missing or not unique):$missing_names"
[ -n "$broken" ] && echo "baseline failures (their mutants were judged without them):$broken"
[ -n "${MUTANTS_CHECK:-}" ] && echo "(MUTANTS_CHECK: strings checked, nothing built or run)"
if [ $survived -gt 0 ] || [ -n "$broken" ]; then exit 1; fi
if [ $missing -gt 0 ]; then exit 2; fi
exit 0
