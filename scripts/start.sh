#!/usr/bin/env bash
# Sets up a fresh machine and runs Dartmouth Knowledge on the embedded default:
# prepares the model, builds, indexes the bundled sample into ./data and searches it.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/setup-model.sh)"
export ORT_DYLIB_PATH DARTMOUTH_MODEL_DIR
cargo build --release --bin dartmouth
bin=target/release/dartmouth
data="${DARTMOUTH_DATA_DIR:-./data}"

if ! "$bin" --data-dir "$data" domain list | grep -qx help-centre; then
  "$bin" --data-dir "$data" domain create help-centre
fi
"$bin" --data-dir "$data" index --domain help-centre sample/help-centre
"$bin" --data-dir "$data" domain stats help-centre
echo
echo '$ dartmouth search --domain help-centre "can I return sale items?"'
"$bin" --data-dir "$data" search --domain help-centre -k 3 "can I return sale items?"
echo
echo "Ready. Try: $bin --data-dir $data search --domain help-centre --mode hybrid --json \"express shipping cost\""
