#!/usr/bin/env bash
# Install the TypeScript client's development dependencies (TypeScript, openapi-typescript,
# @langchain/core, miniflare with workerd, @types/node) exactly as clients/typescript/
# package-lock.json pins them: `npm ci --ignore-scripts`, from the npm registry. Quick when
# node_modules already matches the lock (a stamp of the lock's hash and the Node version).
#
#   scripts/setup-client-typescript.sh           set up, or check a previous setup quickly
#   scripts/setup-client-typescript.sh --force   install again from scratch
#
# Then the suite (it starts its own `dartmouth serve`):
#   (cd clients/typescript && DARTMOUTH_BIN=$PWD/../../target/release/dartmouth npm test)
#
# Needs Node 20+ with npm. Logs go to stderr; stdout stays empty.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/clients/typescript"

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-client-typescript: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { echo "setup-client-typescript: $*" >&2; }

command -v node >/dev/null || { log "node is not installed (Node 20+ is needed)"; exit 1; }
command -v npm >/dev/null || { log "npm is not installed"; exit 1; }
major="$(node -p 'process.versions.node.split(".")[0]')"
if (( major < 20 )); then
  log "Node $(node --version) is too old: 20 or later is needed"
  exit 1
fi

STAMP="$DIR/node_modules/.dartmouth-setup.sha256"
want_stamp() { echo "$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1) node-$(node --version)"; }

if [[ "$FORCE" == 0 && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$(want_stamp)" ]]; then
  exit 0
fi

exec 9>"$DIR/.setup.lock"  # beside node_modules, which npm ci replaces
flock 9  # one setup at a time

if [[ "$FORCE" == 0 && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$(want_stamp)" ]]; then
  exit 0  # another run finished it while this one waited
fi

log "npm ci in $DIR (from package-lock.json)"
rm -f "$STAMP"
# Install scripts are not needed (workerd's binary comes in its platform package) and not run.
(cd "$DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
# Everything the build and the suite use is there.
(cd "$DIR" && node -e '
  for (const m of ["typescript", "openapi-typescript", "@langchain/core/retrievers", "miniflare"]) import(m).catch((e) => { console.error(e.message); process.exit(1); });
') >&2
"$DIR/node_modules/.bin/workerd" --version >&2
want_stamp >"$STAMP.tmp"
mv "$STAMP.tmp" "$STAMP"
log "done: $(cd "$DIR" && node -p 'require("typescript/package.json").version') typescript, workerd $("$DIR/node_modules/.bin/workerd" --version | cut -d' ' -f2)"
