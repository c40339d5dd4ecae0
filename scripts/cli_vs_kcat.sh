#!/usr/bin/env bash
# Produce and consume N lines through `kafka-sansio` and kcat side by side on the
# same simulated cluster (served by `kafka-sansio sim`, a process of its own), and
# print each client's wall time, CPU time (user+sys) and records per second.
#
#   cargo build --release --features cli --bin kafka-sansio
#   scripts/cli_vs_kcat.sh [LINES=1000000] [CODEC=none]
#
# KAFKA_SANSIO (default target/release/kafka-sansio) and KCAT (default kcat) name the
# binaries. Only the clients' CPU is counted, not the server's.
set -euo pipefail
lines=${1:-1000000}
codec=${2:-none}
bin=${KAFKA_SANSIO:-target/release/kafka-sansio}
kcat=${KCAT:-kcat}
work=$(mktemp -d)
trap 'kill "$sim_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

awk -v n="$lines" 'BEGIN { pad = sprintf("%88s", ""); gsub(/ /, "x", pad);
  for (i = 0; i < n; i++) printf "value-%07d-%s\n", i, pad }' > "$work/lines"

"$bin" sim --ignore-stdin > "$work/sim.out" 2> /dev/null &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/sim.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$work/sim.out")
for t in ours theirs; do "$bin" -b "$bootstrap" topics create "$t" -p 1 -r 1 2> /dev/null; done

measure() { # label, stdin file, command...
  local label=$1 input=$2; shift 2
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" < "$input" > /dev/null 2> "$work/err" \
    || { cat "$work/err" >&2; exit 1; }
  read -r wall user sys < "$work/time"
  awk -v l="$label" -v w="$wall" -v u="$user" -v s="$sys" -v n="$lines" 'BEGIN {
    cpu = u + s; printf "%-24s %8.2f s wall %8.2f s cpu %10.0f rec/s %7.3f us cpu/rec\n",
    l, w, cpu, n / (w > 0 ? w : 1e-9), cpu / n * 1e6 }'
}

echo "$lines lines of 100 bytes, codec $codec, bootstrap $bootstrap"
measure "kcat produce" "$work/lines" "$kcat" -P -b "$bootstrap" -t theirs -z "$codec"
measure "kafka-sansio produce" "$work/lines" "$bin" -b "$bootstrap" produce -t ours -z "$codec"
for t in theirs ours; do
  measure "kcat consume $t" /dev/null "$kcat" -C -b "$bootstrap" -t "$t" -o beginning -e -q -f '%s\n'
  measure "kafka-sansio consume $t" /dev/null "$bin" -b "$bootstrap" consume -t "$t" -o beginning -e
done
