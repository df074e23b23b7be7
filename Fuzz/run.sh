#!/usr/bin/env bash
# Runs the kevent() fuzzer (Fuzz/kevent_fuzz.c) for a bounded time.
#
#   bash Fuzz/run.sh [SECONDS] [--update-corpus] [--strict] [-- LIBFUZZER-FLAGS...]
#
# SECONDS (default 60): fuzzing time, after the build (Fuzz/build.sh, incremental).
# Seeds come from Fuzz/corpus/ (read only); new interesting inputs go to a scratch corpus,
# .build-fuzz/run/corpus, kept between runs. --update-corpus replaces Fuzz/corpus/ with a
# small minimized selection of both (KQ_FUZZ_CORPUS_FILES files, default 48).
# Recorded library bugs (Fuzz/known-bugs.txt) are replayed first and reported, and the
# fuzzer then goes on past them; --strict makes them fail like any other finding.
# Exit status: 0 when nothing failed; libFuzzer's status on a crash, hang or leak (the input
# is in .build-fuzz/run/artifacts/ and the reproduction command is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=60
update=0
strict=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --update-corpus) update=1 ;;
    --strict) strict=1 ;;
    --) shift; extra=("$@"); break ;;
    ''|*[!0-9]*) echo "usage: bash Fuzz/run.sh [SECONDS] [--update-corpus] [--strict] [-- LIBFUZZER-FLAGS...]" >&2; exit 2 ;;
    *) seconds=$1 ;;
  esac
  shift
done

bin=$(bash Fuzz/build.sh)
work=$root/.build-fuzz/run
mkdir -p "$work/corpus" "$work/artifacts"

# The Swift runtime's crash handler and AddressSanitizer do not mix.
export SWIFT_BACKTRACE=enable=no
export KQ_FUZZ_FDCHECK=${KQ_FUZZ_FDCHECK:-1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

known=""
if [ -f Fuzz/known-bugs.txt ]; then
  known=$(sed -e 's/#.*//' Fuzz/known-bugs.txt | awk 'NF { printf "%s%s", sep, $1; sep="," }')
fi

# Recorded inputs (Fuzz/crashes/): an open bug (Fuzz/known-bugs.txt) is reported, a fixed one
# must pass (a failure is a regression and fails the run).
regressions=0
for input in Fuzz/crashes/*; do
  case "$input" in *.c|*.md) continue ;; esac
  [ -f "$input" ] || continue
  name=$(basename "$input")
  id=$(awk -v f="$name" '$1 !~ /^#/ && $2 == f { print $1 }' Fuzz/known-bugs.txt 2>/dev/null || true)
  if KQ_FUZZ_KNOWN= "$bin" "$input" >"$work/replay.log" 2>&1; then
    if [ -n "$id" ]; then echo "known bug $id (Fuzz/crashes/$name): no longer reproduces: remove it from Fuzz/known-bugs.txt"
    else echo "fixed bug Fuzz/crashes/$name: passes"; fi
  else
    if [ -n "$id" ]; then echo "known bug $id (Fuzz/crashes/$name): still reproduces"
    else
      echo "REGRESSION: Fuzz/crashes/$name fails again:"
      sed -n '/==== kevent_fuzz:/,/---- end ----/p; /ERROR: /,/SUMMARY/p' "$work/replay.log" | head -40
      regressions=$((regressions + 1))
    fi
  fi
done

if [ "$strict" = 1 ]; then export KQ_FUZZ_KNOWN=""; else export KQ_FUZZ_KNOWN="$known"; fi

log=$work/fuzz.log
echo "fuzzing for ${seconds}s: $bin (known bugs tolerated: ${KQ_FUZZ_KNOWN:-none}); log: $log"
status=0
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=2048 -print_funcs=0 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${extra[@]}" \
  "$work/corpus" Fuzz/corpus >"$log" 2>&1 || status=$?

final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
execs=$(final_stat number_of_executed_units)
rate=$(final_stat average_exec_per_sec)
last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1, features \2, corpus \3/p' <<<"$last")
grep -E "known library bug" "$log" | sort -u || true

if [ "$status" != 0 ]; then
  sed -n '/==== kevent_fuzz:/,/---- end ----/p; /ERROR: \(AddressSanitizer\|LeakSanitizer\|libFuzzer\)/,/SUMMARY/p; /runtime error/p' "$log" | head -120
  artifact=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -1)
  echo "kevent_fuzz: FAILED (status $status) after ${execs:-?} executions (${rate:-?} exec/s)"
  if [ -n "$artifact" ]; then
    echo "input: $artifact"
    echo "reproduce: SWIFT_BACKTRACE=enable=no KQ_FUZZ_TRACE=1 $bin $artifact"
    echo "minimize:  SWIFT_BACKTRACE=enable=no $bin -minimize_crash=1 -runs=20000 -artifact_prefix=$work/artifacts/min- $artifact"
  fi
  exit "$status"
fi

if [ "$update" = 1 ]; then
  max=${KQ_FUZZ_CORPUS_FILES:-48}
  merged=$work/merged
  rm -rf "$merged" && mkdir -p "$merged"
  "$bin" -merge=1 -max_len=2048 "$merged" Fuzz/corpus "$work/corpus" >"$work/merge.log" 2>&1
  rm -f Fuzz/corpus/*
  mkdir -p Fuzz/corpus
  # Half the largest inputs of the minimized set (long programs reach deep states), half a
  # spread over the rest (short ones run fast): at most $max files, 90 000 bytes in all.
  find "$merged" -type f -printf '%s %p\n' | sort -rn |
    awk -v max="$max" '{ size[NR] = $1; path[NR] = $2 }
      END { top = int(max / 2); if (top > NR) top = NR
            for (i = 1; i <= top; i++) pick(i)
            step = NR - top > max - top ? (NR - top) / (max - top) : 1
            for (i = top + 1; i <= NR && n < max; i += step) pick(int(i)) }
      function pick(j) { if (total + size[j] > 90000) return; total += size[j]; n++; print path[j] }' |
    while read -r f; do cp "$f" Fuzz/corpus/; done
  echo "Fuzz/corpus: $(ls Fuzz/corpus | wc -l) files, $(cat Fuzz/corpus/* | wc -c) bytes"
fi

echo "kevent_fuzz: ${execs:-?} executions in ${seconds}s, ${rate:-?} exec/s; ${cov:-coverage ?}; no failure"
if [ "$regressions" -gt 0 ]; then
  echo "kevent_fuzz: $regressions recorded input(s) of fixed bugs fail again (see above)"
  exit 1
fi
