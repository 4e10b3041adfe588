#!/usr/bin/env bash
# Install the official Python MCP SDK (the `mcp` package), pinned with all of its
# dependencies in scripts/mcp-client-requirements.txt, into a tools venv. The MCP
# server's client tests drive `dartmouth mcp` (stdio) and `POST /mcp` (streamable
# HTTP) through it with server/tests/mcp/client.py.
#
#   scripts/setup-mcp-client.sh           set up, or check a previous setup quickly
#   scripts/setup-mcp-client.sh --force   recreate the venv from scratch
#
# Environment:
#   DARTMOUTH_TOOLS_VENV  venv to use/create            (default <repo>/.venv-tools)
#   PYTHON                interpreter for a new venv    (default python3)
#
# Logs go to stderr; stdout gets only KEY=VALUE lines, so this works:
#   eval "$(scripts/setup-mcp-client.sh)"; "$DARTMOUTH_MCP_PYTHON" server/tests/mcp/client.py ...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DARTMOUTH_TOOLS_VENV:-$ROOT/.venv-tools}"
REQ="$ROOT/scripts/mcp-client-requirements.txt"
PYTHON_BIN="${PYTHON:-python3}"

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-mcp-client: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { echo "setup-mcp-client: $*" >&2; }

PY="$VENV/bin/python"
STAMP="$VENV/.mcp-client-requirements.sha256"
# The stamp names the requirements' content and the interpreter it was installed for.
want_stamp() { echo "$(sha256sum "$REQ" | cut -d' ' -f1) $("$PY" -c 'import sys; print(sys.version.split()[0])')"; }

# Fast path, before taking the lock: venv works and the stamp matches.
if [[ "$FORCE" == 0 && -x "$PY" && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$(want_stamp 2>/dev/null)" ]]; then
  echo "DARTMOUTH_MCP_PYTHON=$PY"
  exit 0
fi

mkdir -p "$VENV"
exec 9>"$VENV/.setup.lock"
flock 9  # one setup at a time (parallel test runs, CI)

if [[ "$FORCE" == 1 ]] || [[ ! -x "$PY" ]] || ! "$PY" -c '' 2>/dev/null; then
  log "creating venv $VENV with $PYTHON_BIN ($("$PYTHON_BIN" --version 2>&1))"
  # keep the lock file (fd 9 holds it); remove everything else
  find "$VENV" -mindepth 1 -maxdepth 1 ! -name .setup.lock -exec rm -rf {} +
  "$PYTHON_BIN" -m venv "$VENV"
fi

if [[ "$FORCE" == 1 ]] || [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "$(want_stamp)" ]]; then
  log "installing pinned packages from $REQ into $VENV"
  rm -f "$STAMP"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-input --no-deps -r "$REQ" >&2
  # --no-deps trusts the list to be complete; pip check proves it.
  "$PY" -m pip check >&2
  "$PY" -c 'import mcp, mcp.client.stdio, mcp.client.streamable_http' >&2
  want_stamp >"$STAMP.tmp"
  mv "$STAMP.tmp" "$STAMP"
  log "done: mcp $("$PY" -c 'import importlib.metadata as m; print(m.version("mcp"))')"
fi

echo "DARTMOUTH_MCP_PYTHON=$PY"
