#!/usr/bin/env bash
# Check that the real peers install, start and answer real clients, and that
# the mock's fault injection and the recording proxy work. Run from anywhere:
#
#   bash scripts/peers/selftest.sh
#
# Ends with "N passed, N failed" and exits non-zero if anything failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PEERS_HOME="${PEERS_HOME:-$repo/target/peers}"
eval "$(bash "$here/install.sh" </dev/null)"

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() { local name="$1"; shift; if "$@" >/dev/null 2>&1; then ok "$name"; else bad "$name"; fi; }

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

kcat_for() { # flavour -> env prefix
  if [ "$1" = 2.16 ]; then echo "env LD_LIBRARY_PATH=$PEERS_LIBRDKAFKA216_DIR kcat"; else echo kcat; fi
}

# ---------------------------------------------------------------- mock -----
for flavour in debian 2.16; do
  fifo_in="$tmp/mock-$flavour.in"; fifo_out="$tmp/mock-$flavour.out"
  mkfifo "$fifo_in" "$fifo_out"
  bash "$here/start_mock.sh" --librdkafka "$flavour" -b 3 -t t:2 <"$fifo_in" >"$fifo_out" 2>"$tmp/mock-$flavour.err" &
  pids+=($!)
  exec 7>"$fifo_in" 8<"$fifo_out"
  read -r -t 30 boot <&8 || boot=""
  mcmd() { echo "$*" >&7; local a; read -r -t 10 a <&8; [ "$a" = ok ]; }
  k=$(kcat_for "$flavour")
  if [ -z "$boot" ]; then bad "mock $flavour starts"; exec 7>&- 8<&-; continue; fi
  ok "mock $flavour starts ($boot)"
  check "mock $flavour: metadata lists 3 brokers" \
    bash -c "$k -b $boot -L -t t | grep -q '3 brokers'"
  check "mock $flavour: produce" \
    bash -c "printf 'a\nb\nc\n' | $k -b $boot -P -t t -p 0 -X check.crcs=true"
  check "mock $flavour: consume what was produced" \
    bash -c "[ \"\$($k -b $boot -C -t t -p 0 -o beginning -e -q -X check.crcs=true | tr -d '\n')\" = abc ]"
  check "mock $flavour: command topic" mcmd topic t2 1 1
  check "mock $flavour: command errors (Produce: NOT_LEADER x2)" mcmd errors 0 6 6
  check "mock $flavour: produce retries through pushed errors" \
    bash -c "echo d | $k -b $boot -P -t t2 -p 0"
  check "mock $flavour: command rtt" mcmd rtt 1 5
  mcmd down 2 && mcmd up 2 && ok "mock $flavour: down 2 / up 2" || bad "mock $flavour: down/up"
  echo "nonsense" >&7; read -r -t 10 a <&8
  case "$a" in error:*) ok "mock $flavour: unknown command answered with error";; *) bad "mock $flavour: unknown command ($a)";; esac
  check "mock $flavour: quit" mcmd quit
  exec 7>&- 8<&-
done

# ---------------------------------------------------------------- tansu ----
real_port=$("$PEERS_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PEERS_PYTHON" "$here/record_proxy.py" --upstream "127.0.0.1:$real_port" --out "$tmp/tansu.kframes" \
  </dev/null >"$tmp/proxy.out" 2>"$tmp/proxy.err" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/proxy.out" ] && break; sleep 0.05; done
proxy="$(head -n1 "$tmp/proxy.out")"
bash "$here/start_tansu.sh" "$real_port" "${proxy##*:}" >"$tmp/tansu.out" 2>"$tmp/tansu.err" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/tansu.out" ] && break; sleep 0.05; done
if [ "$(head -n1 "$tmp/tansu.out")" = "127.0.0.1:$real_port" ]; then ok "tansu starts (behind proxy $proxy)"; else bad "tansu starts"; fi
k=$(kcat_for 2.16)
check "tansu: create topic (kafka-python admin)" \
  "$PEERS_PYTHON" "$here/clients.py" kafka-python "$proxy" admin t
check "tansu: produce (kcat, librdkafka 2.16)" \
  bash -c "printf 'x\ny\n' | $k -b $proxy -P -t t -p 0"
check "tansu: consume (kcat, check.crcs)" \
  bash -c "[ \"\$($k -b $proxy -C -t t -p 0 -o beginning -e -q -X check.crcs=true | tr -d '\n')\" = xy ]"
check "proxy: recorded Produce and Fetch frames" \
  bash -c "'$PEERS_PYTHON' '$here/kafka_frames.py' dump '$tmp/tansu.kframes' | grep -q Produce && '$PEERS_PYTHON' '$here/kafka_frames.py' dump '$tmp/tansu.kframes' | grep -q Fetch"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
