#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 300), one
# after the other, and prints for each: runs, exec/s, coverage (edges) and
# features, and whether it found a crash.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# A crashing input is written to fuzz/regressions/TARGET/ (commit it: from
# then on `cargo test` replays it through tests/fuzz_corpus.rs, so the bug
# it found cannot come back unnoticed). New coverage-increasing inputs stay
# in fuzz/corpus/TARGET/ (not committed; only the seed-* files are).
# Needs `cargo install cargo-fuzz`; works on the stable toolchain (without
# AddressSanitizer: `-s none`). Exit status 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-300}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]  (SECONDS: a whole number above 0)" >&2
  exit 2
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "cargo-fuzz not found: run 'cargo install cargo-fuzz' first" >&2
  exit 1
fi
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
echo "building ${#targets[@]} targets..." >&2
cargo fuzz build -s none -O

printf '%-20s %12s %10s %8s %8s  %s\n' target runs exec/s cov ft result
crashed=0
for target in "${targets[@]}"; do
  mkdir -p "regressions/$target" "corpus/$target"
  log="$logs/$target.log"
  echo "fuzzing $target for ${seconds}s..." >&2
  status=0
  cargo fuzz run -s none -O "$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="regressions/$target/" >"$log" 2>&1 || status=$?
  runs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1)
  rate=$(grep -oP 'stat::average_exec_per_sec:\s*\K[0-9]+' "$log" | tail -1)
  cov=$(grep -oP '\bcov: \K[0-9]+' "$log" | tail -1)
  ft=$(grep -oP '\bft: \K[0-9]+' "$log" | tail -1)
  if ((status == 0)); then
    result=ok
  else
    crashed=1
    found=$(grep -oP 'Test unit written to \K\S+' "$log" | tail -1)
    result="CRASH (exit $status) ${found:-see below}"
    tail -n 30 "$log" >&2
  fi
  printf '%-20s %12s %10s %8s %8s  %s\n' "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
  # Keep the directory only if something was written to it.
  rmdir "regressions/$target" 2>/dev/null || true
done
exit "$crashed"
