#!/usr/bin/env bash
# Relevance on every development collection, compared with the committed baseline.
#   scripts/eval.sh [extra `dartmouth eval` flags]   → reports/latest/{report.json,report.md,chart.svg}
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup-model.sh)"
export ORT_DYLIB_PATH DARTMOUTH_MODELS_DIR DARTMOUTH_MODEL_DIR
cargo build --release --bin dartmouth
ir=../shared/datasets/ir
target/release/dartmouth --data-dir "${DARTMOUTH_DATA_DIR:-./data}" eval \
  "$ir/scifact" "$ir/cranfield" "$ir/cacm" \
  --out reports/latest --baseline reports/dev/report.json "$@"
