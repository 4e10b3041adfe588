#!/usr/bin/env bash
# The benchmarks: criterion micro-benchmarks, then the end-to-end `bench` program.
#   scripts/bench.sh            all of them (the 100k shard is built once into target/bench-data)
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup-model.sh)"
export ORT_DYLIB_PATH DARTMOUTH_MODEL_DIR
cargo bench -p dartmouth-benches --bench micro
cargo build --release -p dartmouth-benches --bin bench
target/release/bench embed --docs 200
target/release/bench query --chunks 100000
target/release/bench query --chunks 100000 --max-query-words 4
