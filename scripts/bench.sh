#!/usr/bin/env bash
# Runs the comparison benchmarks with instruction counts (callgrind) under both build
# profiles, one after the other, and prints their tables:
#   bench      what `cargo bench` builds: no LTO, 16 codegen units
#   bench-lto  fat LTO and one codegen unit ([profile.bench-lto] in Cargo.toml)
#
#   scripts/bench.sh                     # records and messages, both profiles
#   scripts/bench.sh records             # one benchmark, both profiles
#   scripts/bench.sh messages metadata   # what follows the name goes to the bench binary
#
# Each table is the output of the command printed above it. Needs valgrind; the
# instruction counts repeat exactly run to run, the wall-clock columns do not.
set -euo pipefail
cd "$(dirname "$0")/.."

benches=(records messages)
if [ $# -gt 0 ]; then
  case "$1" in
    records | messages) benches=("$1"); shift ;;
    *) echo "usage: $0 [records|messages [bench arguments...]]" >&2; exit 2 ;;
  esac
fi

for bench in "${benches[@]}"; do
  for profile in bench bench-lto; do
    command=(cargo bench --profile "$profile" --bench "$bench" -- --callgrind "$@")
    printf '\n=== %s\n' "${command[*]}"
    "${command[@]}"
  done
done
