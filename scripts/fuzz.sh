#!/usr/bin/env bash
# Fuzzing kafka-sansio with cargo-fuzz (libFuzzer). See docs/fuzzing.md.
#
#   scripts/fuzz.sh build                       build every target (as `run` does first)
#   scripts/fuzz.sh run [SECONDS] [TARGET...]   fuzz each target for SECONDS (default 60)
#   scripts/fuzz.sh seed [TARGET...]            regenerate seeds and minimize them into corpus/
#   scripts/fuzz.sh cmin [TARGET...]            fold the campaign's finds into corpus/, minimized
#   scripts/fuzz.sh list                        the targets
#
# Runs one target at a time with one job (CI machines here have two cores). Uses the
# stable toolchain without a sanitizer (`-s none`) and with debug assertions (`-a`),
# so integer overflow panics. Set FUZZ_SANITIZER=address to use ASan instead (needs
# nightly features; RUSTC_BOOTSTRAP=1 is set for it). Extra libFuzzer flags can be
# passed in FUZZ_ARGS, e.g. FUZZ_ARGS="-rss_limit_mb=1024". FUZZ_CODEGEN_UNITS sets
# the codegen units (cargo-fuzz builds with one: the fastest fuzzing, but one core
# compiles the whole library; CI's short run uses 16, which builds in about half
# the time on two cores).
#
# The committed corpus (corpus/<target>/) is only read by `run`; what a campaign
# finds goes to fuzz/corpus/<target>/ (ignored by git) until `cmin` folds it in.
# A crash stops the run, leaves the input in fuzz/artifacts/<target>/ and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

targets() { sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^kafka-sansio-fuzz$'; }

ensure_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
  fi
}

sanitizer=${FUZZ_SANITIZER:-none}
units=()
[ -n "${FUZZ_CODEGEN_UNITS:-}" ] && units=(--codegen-units "$FUZZ_CODEGEN_UNITS")
fuzz() {
  if [ "$sanitizer" = none ]; then
    cargo fuzz "$1" -s none -a "${units[@]}" "${@:2}"
  else
    RUSTC_BOOTSTRAP=1 cargo fuzz "$1" -s "$sanitizer" -a "${units[@]}" "${@:2}"
  fi
}

# Merges every input of the given directories into corpus/<target>, keeping only
# inputs that add coverage, plus every named regression input (regress-*).
merge_into_corpus() {
  local t=$1; shift
  local out; out=$(mktemp -d)
  local dirs=()
  for d in "$@"; do [ -d "$d" ] && dirs+=("$d"); done
  fuzz run "$t" "$out" "${dirs[@]}" -- -set_cover_merge=1 -use_counters=0 -rss_limit_mb=4096 >"$out.log" 2>&1 ||
    { tail -20 "$out.log"; echo "merge of $t failed" >&2; return 1; }
  mkdir -p "corpus/$t"
  find "corpus/$t" -maxdepth 1 -type f ! -name 'regress-*' -delete
  cp "$out"/* "corpus/$t/" 2>/dev/null || true
  rm -rf "$out" "$out.log"
  echo "$t: $(find "corpus/$t" -type f | wc -l) files, $(du -sk "corpus/$t" | cut -f1) KiB"
}

cmd=${1:-run}; shift || true
case "$cmd" in
  list) targets ;;
  build) ensure_cargo_fuzz; fuzz build ;;
  run)
    secs=${1:-60}; shift || true
    sel=("$@"); [ ${#sel[@]} -gt 0 ] || mapfile -t sel < <(targets)
    ensure_cargo_fuzz
    fuzz build
    for t in "${sel[@]}"; do
      mkdir -p "fuzz/corpus/$t"
      echo "=== $t for ${secs}s"
      # shellcheck disable=SC2086
      fuzz run "$t" "$root/fuzz/corpus/$t" "$root/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} 2>&1 |
        grep -E '^(#[0-9]+[[:space:]]*(DONE|INITED)|stat::|==[0-9]+==|SUMMARY|thread|Failing input|.*panicked|Done)' || true
      if [ -n "$(ls -A "fuzz/artifacts/$t" 2>/dev/null)" ]; then
        echo "crash in $t: fuzz/artifacts/$t/" >&2
        exit 1
      fi
    done
    ;;
  seed)
    sel=("$@"); [ ${#sel[@]} -gt 0 ] || mapfile -t sel < <(targets)
    ensure_cargo_fuzz
    seeds="$root/target/fuzz-seeds"
    FUZZ_SEEDS_DIR="$seeds" cargo test --all-features --test fuzz_corpus -- --ignored write_seeds
    fuzz build
    for t in "${sel[@]}"; do merge_into_corpus "$t" "$root/corpus/$t" "$seeds/$t"; done
    ;;
  cmin)
    sel=("$@"); [ ${#sel[@]} -gt 0 ] || mapfile -t sel < <(targets)
    ensure_cargo_fuzz
    fuzz build
    for t in "${sel[@]}"; do merge_into_corpus "$t" "$root/corpus/$t" "$root/fuzz/corpus/$t"; done
    ;;
  *) sed -n '2,21p' "$0"; exit 2 ;;
esac
