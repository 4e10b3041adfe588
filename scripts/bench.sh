#!/usr/bin/env bash
# The benchmarks: criterion micro-benchmarks, then the end-to-end `bench` program.
#   scripts/bench.sh            micro-benchmarks, embedder throughput, store writes, the 100k-chunk query bench
#   scripts/bench.sh --large    also the 1M-chunk bench (about 10 min to build once, ~6 GB disk)
# Corpora and shards are built once into target/bench-data; reruns only query.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup-model.sh)"
export ORT_DYLIB_PATH DARTMOUTH_MODELS_DIR DARTMOUTH_MODEL_DIR
cargo bench -p dartmouth-benches --bench micro
cargo build --release -p dartmouth-benches --bin bench
target/release/bench embed --docs 200
target/release/bench store
target/release/bench query --chunks 100000 --json target/bench-data/query-100000.json
if [[ "${1:-}" == "--large" ]]; then
  target/release/bench query --chunks 1000000 --json target/bench-data/query-1000000.json
fi
