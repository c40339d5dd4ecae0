#!/usr/bin/env bash
# Produce and consume N lines through `kafka-sansio` and kcat side by side on the
# same simulated cluster (served by `kafka-sansio sim`, a process of its own), and
# print each client's wall time, CPU time (user+sys) and records per second: the
# median of REPEAT runs, the tools taking turns. Then the issue's goal: at least
# kcat's records per second at no more than half its CPU. `produce --dry-run` (read
# and split the lines, send nothing) is the tool's own part of producing; the rest
# of its produce CPU is the client's (Producer::send and the driver).
#
#   cargo build --release --features cli --bin kafka-sansio
#   scripts/cli_vs_kcat.sh [LINES=1000000] [CODEC=none] [REPEAT=5]
#
# KAFKA_SANSIO (default target/release/kafka-sansio) and KCAT (default kcat) name the
# binaries. Only the clients' CPU is counted, not the server's. Wall times on a
# shared machine wander; the load average is printed with them.
set -euo pipefail
lines=${1:-1000000}
codec=${2:-none}
repeat=${3:-5}
bin=${KAFKA_SANSIO:-target/release/kafka-sansio}
kcat=${KCAT:-kcat}
work=$(mktemp -d)
sim_pid=
trap '[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; rm -rf "$work"' EXIT

awk -v n="$lines" 'BEGIN { pad = sprintf("%88s", ""); gsub(/ /, "x", pad);
  for (i = 0; i < n; i++) printf "value-%07d-%s\n", i, pad }' > "$work/lines"

"$bin" sim --ignore-stdin > "$work/sim.out" 2> /dev/null &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/sim.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$work/sim.out")
for t in ours theirs; do "$bin" -b "$bootstrap" topics create "$t" -p 1 -r 1 2> /dev/null; done

# run LABEL INPUT COMMAND...: one timed run, appended to $work/LABEL as "wall cpu".
run() {
  local label=$1 input=$2; shift 2
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" < "$input" > /dev/null 2> "$work/err" \
    || { echo "$label failed:" >&2; cat "$work/err" >&2; exit 1; }
  awk '{ printf "%s %.3f\n", $1, $2 + $3 }' "$work/time" >> "$work/$label"
}

# median LABEL COLUMN
median() { awk -v c="$2" '{ print $c }' "$work/$1" | sort -g | awk '{ v[NR] = $1 }
  END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

report() { # label shown, file label
  local w c
  w=$(median "$2" 1); c=$(median "$2" 2)
  awk -v l="$1" -v w="$w" -v c="$c" -v n="$lines" 'BEGIN {
    printf "%-30s %6.2f s wall %6.3f s cpu %9.0f rec/s %6.3f us cpu/rec\n",
    l, w, c, n / (w > 0 ? w : 1e-9), c / n * 1e6 }'
}

echo "$lines lines of 100 bytes, codec $codec, median of $repeat runs, bootstrap $bootstrap"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# The first produce to each topic fills it for the consumes; later runs append.
for _ in $(seq "$repeat"); do
  run kcat_produce "$work/lines" "$kcat" -P -b "$bootstrap" -t theirs -z "$codec"
  run ks_produce "$work/lines" "$bin" -b "$bootstrap" produce -t ours -z "$codec"
  run ks_dry "$work/lines" "$bin" produce -t ours --dry-run
done
for _ in $(seq "$repeat"); do
  run kcat_consume /dev/null "$kcat" -C -b "$bootstrap" -t theirs -o beginning -c "$lines" -q -f '%s\n'
  run ks_consume /dev/null "$bin" -b "$bootstrap" consume -t ours -o beginning -c "$lines"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
report "kcat produce" kcat_produce
report "kafka-sansio produce" ks_produce
report "  of which reading (--dry-run)" ks_dry
report "kcat consume" kcat_consume
report "kafka-sansio consume" ks_consume

verdict() { # what, ours label, kcat label
  awk -v what="$1" -v ow="$(median "$2" 1)" -v oc="$(median "$2" 2)" \
      -v kw="$(median "$3" 1)" -v kc="$(median "$3" 2)" 'BEGIN {
    printf "%-8s rate %.2fx kcat (goal >= 1), CPU %.2fx kcat (goal <= 0.5): %s\n",
      what, kw / ow, oc / kc, (kw / ow >= 1 && oc / kc <= 0.5) ? "met" : "not met" }'
}
verdict produce ks_produce kcat_produce
verdict consume ks_consume kcat_consume
