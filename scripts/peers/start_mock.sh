#!/usr/bin/env bash
# Build (if needed) and start librdkafka's mock Kafka cluster on loopback.
#
#   scripts/peers/start_mock.sh [--librdkafka debian|2.16] [-b BROKERS] [-t TOPIC[:PARTS[:REPL]]]...
#
# stdout line 1: the bootstrap list, e.g. "127.0.0.1:40123,127.0.0.1:40125".
# Then the launcher reads commands on stdin (see mock_cluster.c: topic, down,
# up, rtt, errors, clear, leader, coordinator, apiversion, topic_error, quit)
# and answers each with one line, "ok" or "error: ...". EOF on stdin stops it.
#
# --librdkafka debian (default): Debian's librdkafka 2.0.2.
# --librdkafka 2.16: the same launcher run on librdkafka 2.16 from the
#   confluent-kafka wheel (LD_LIBRARY_PATH; the mock API used is in both).
#
# Installs what is missing first (scripts/peers/install.sh; its output goes to
# stderr so stdout stays the launcher's). Environment: PEERS_HOME as install.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PEERS_HOME="${PEERS_HOME:-$repo/target/peers}"

flavour=debian
if [ "${1:-}" = "--librdkafka" ]; then
  flavour="${2:?--librdkafka needs debian or 2.16}"
  shift 2
fi

need_install=0
{ command -v gcc && pkg-config --exists rdkafka; } >/dev/null 2>&1 || need_install=1
if [ "$flavour" = "2.16" ] && [ ! -e "$PEERS_HOME/librdkafka-2.16/librdkafka.so.1" ]; then
  need_install=1
fi
if [ "$need_install" = 1 ]; then
  bash "$here/install.sh" >&2 </dev/null
fi

bin="$PEERS_HOME/bin/mock_cluster"
src="$here/mock_cluster.c"
if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
  mkdir -p "$PEERS_HOME/bin"
  # Build into a temp name and rename, so two tests starting at once never
  # run a half-written binary.
  tmp="$bin.$$"
  # shellcheck disable=SC2046
  gcc -O2 -Wall -Wextra -o "$tmp" "$src" $(pkg-config --cflags --libs rdkafka) >&2
  mv -f "$tmp" "$bin"
fi

case "$flavour" in
  debian) exec "$bin" "$@" ;;
  2.16)
    export LD_LIBRARY_PATH="$PEERS_HOME/librdkafka-2.16${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    exec "$bin" "$@" ;;
  *) echo "unknown --librdkafka $flavour (debian|2.16)" >&2; exit 2 ;;
esac
