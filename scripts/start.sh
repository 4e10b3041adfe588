#!/usr/bin/env bash
# Sets up a fresh machine and runs Dartmouth Knowledge on the embedded default (SQLite store and
# local shards in ./data): prepares the model, builds, indexes the bundled sample, searches it
# once from the command line, then serves it over HTTP (127.0.0.1:8787) and gRPC (127.0.0.1:50051).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/setup-model.sh)"
export ORT_DYLIB_PATH DARTMOUTH_MODELS_DIR DARTMOUTH_MODEL_DIR
cargo build --release --bin dartmouth
bin=target/release/dartmouth
data="${DARTMOUTH_DATA_DIR:-./data}"
dk() { "$bin" --data-dir "$data" "$@"; }

if ! dk domain list | grep -q '^help-centre\b'; then
  dk domain create help-centre --description "Help centre articles"
fi
dk index --domain help-centre sample/help-centre
dk domain stats help-centre
if ! dk domain list | grep -q '^store\b'; then
  dk domain create store --description "The shop's catalog"
fi
dk index --domain store --base-url https://shop.example sample/store/products.json
dk domain stats store
echo
echo '$ dartmouth search --domain help-centre "can I return sale items?"'
dk search --domain help-centre -k 3 "can I return sale items?"
echo
echo '$ dartmouth search --domain store --filter '"'"'in_stock = true AND price <= 50 AND size = "M"'"'"' --facets vendor,product_type "blue hoodie"'
dk search --domain store -k 3 --collapse --filter 'in_stock = true AND price <= 50 AND size = "M"' --facets vendor,product_type "blue hoodie"

# An agent that may read the help centre, with an API key kept (mode 600) in the data directory.
key_file="$data/support-agent.key"
if [[ ! -s "$key_file" ]]; then
  dk principal list | grep -q '^support-agent\b' || dk principal create support-agent --kind agent
  dk grant support-agent help-centre read
  dk grant support-agent store read
  (umask 077 && dk key create --principal support-agent | grep -o 'dk_[0-9a-f]\{64\}' > "$key_file")
fi
cat <<MSG

Serving. In another shell:
  KEY=\$(cat $key_file)
  curl -H "Authorization: Bearer \$KEY" localhost:8787/v1/search -d '{"query":"return policy for sale items","domains":["help-centre"],"k":3}'
  curl -H "Authorization: Bearer \$KEY" localhost:8787/v1/context -d '{"query":"blue hoodie size M under 50","domains":["store","help-centre"],"max_tokens":800}'
  dartmouth mcp --url http://127.0.0.1:8787 --key \$KEY      # the MCP tools on stdio, for an agent runtime
The admin console: http://127.0.0.1:8787/admin (sign in with an admin key: $bin --data-dir $data key create --principal admin).
Stop with Ctrl-C (in-flight requests finish first).
MSG
exec "$bin" --data-dir "$data" serve
