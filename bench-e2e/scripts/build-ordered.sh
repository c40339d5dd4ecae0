#!/usr/bin/env bash
# Builds client-ours, profiles each benchmark phase under callgrind against the
# simulated cluster, and links client-ours again with its functions ordered by the
# phases that run them (scripts/order-symbols.py). The second binary is copied beside
# bench-e2e as client-ours-ordered, so one run measures both:
#
#   bash scripts/build-ordered.sh              # from bench-e2e/; ~6 min
#   target/release-lto/bench-e2e --clients ours,ours-ordered --phases fetch,paced
#
# The ordering names functions by their mangled symbols, which change with the code:
# run it again after every change. See README.md, "Code pages".
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release-lto}
target=${CARGO_TARGET_DIR:-target}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }

cargo build --profile "$profile"
bin=$target/$profile
work=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null || true; rm -rf "$work"' EXIT

# serve-sim serves until its stdin closes.
mkfifo "$work/stdin"
"$bin/bench-e2e" serve-sim bench < "$work/stdin" > "$work/sim.out" &
exec 3> "$work/stdin"
for _ in $(seq 100); do
  [ -s "$work/sim.out" ] && break
  sleep 0.1
done
bootstrap=$(head -n 1 "$work/sim.out")
[ -n "$bootstrap" ] || { echo "the simulated cluster printed no bootstrap" >&2; exit 1; }

# produce first: the fetch and consume phases read what it wrote.
phases="produce paced fetch fetch-lent send1 send1-buffer send4 consume-group"
for phase in $phases; do
  echo "profiling $phase" >&2
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/cg.$phase" \
    "$bin/client-ours" "$bootstrap" --records 100000 --send-window 10000 \
    --phases "$phase" > /dev/null 2> "$work/valgrind.$phase.log" \
    || { cat "$work/valgrind.$phase.log" >&2; exit 1; }
done
exec 3>&-
wait

order=$target/client-ours.order
python3 scripts/order-symbols.py client-ours "$order" $(for p in $phases; do echo "$work/cg.$p"; done)
order=$(realpath "$order")
CARGO_TARGET_DIR="$target/ordered" \
  RUSTFLAGS="-C link-arg=-Wl,--symbol-ordering-file=$order -C link-arg=-Wl,--no-warn-symbol-ordering" \
  cargo build --profile "$profile" --bin client-ours
cp "$target/ordered/$profile/client-ours" "$bin/client-ours-ordered"
echo "$bin/client-ours-ordered: client-ours with its functions in $order's order" >&2
