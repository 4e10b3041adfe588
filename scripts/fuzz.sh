#!/usr/bin/env bash
# Coverage-guided fuzzing of one target with cargo-fuzz (libFuzzer), on the stable toolchain
# (RUSTC_BOOTSTRAP lets it take the nightly flags cargo-fuzz passes).
#
#   scripts/fuzz.sh TARGET [SECONDS]      e.g. scripts/fuzz.sh filter 600
#   scripts/fuzz.sh --list
#
# Targets are the functions of fuzz/src/lib.rs; the time-bounded stable driver that CI runs is
# fuzz/tests/fuzz.rs. A crash is written under fuzz/cargo-fuzz/artifacts/TARGET/; copy it to
# fuzz/regressions/TARGET/ so every later run of the suite tries it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--list" ]; then
  ls fuzz/cargo-fuzz/fuzz_targets | sed 's/\.rs$//'
  exit 0
fi
target="${1:?usage: scripts/fuzz.sh TARGET [SECONDS] (--list for the targets)}"
seconds="${2:-300}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
corpus="fuzz/cargo-fuzz/corpus/$target"
mkdir -p "$corpus"
cd fuzz/cargo-fuzz
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir . "$target" "../../$corpus" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536
