#!/usr/bin/env bash
# Set up the Python client's test environment: a venv with the pinned packages of
# scripts/client-python-requirements.txt (httpx, langchain-core, pytest, pytest-asyncio, mypy,
# hatchling, and all of their dependencies), then the client itself (clients/python) installed
# into it, so that its tests import the installed package. Re-installs the client whenever its
# sources change.
#
#   scripts/setup-client-python.sh           set up, or check a previous setup quickly
#   scripts/setup-client-python.sh --force   recreate the venv from scratch
#
# Environment:
#   DARTMOUTH_CLIENT_PYTHON_VENV  venv to use/create           (default <repo>/.venv-client-python)
#   PYTHON                        interpreter for a new venv   (default python3; 3.10 or newer)
#
# Logs go to stderr; stdout gets only KEY=VALUE lines, so this works:
#   eval "$(scripts/setup-client-python.sh)"
#   DARTMOUTH_BIN=target/release/dartmouth "$DARTMOUTH_CLIENT_PYTHON" -m pytest clients/python/tests -q
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DARTMOUTH_CLIENT_PYTHON_VENV:-$ROOT/.venv-client-python}"
REQ="$ROOT/scripts/client-python-requirements.txt"
CLIENT="$ROOT/clients/python"
PYTHON_BIN="${PYTHON:-python3}"

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-client-python: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { echo "setup-client-python: $*" >&2; }

PY="$VENV/bin/python"
STAMP="$VENV/.client-python-requirements.sha256"
PKG_STAMP="$VENV/.client-python-package.sha256"
# The requirements' stamp names their content and the interpreter they were installed for.
want_stamp() { echo "$(sha256sum "$REQ" | cut -d' ' -f1) $("$PY" -c 'import sys; print(sys.version.split()[0])')"; }
# The package's stamp names every file that goes into it.
want_pkg_stamp() {
  (cd "$CLIENT" && find pyproject.toml README.md dartmouth_knowledge -type f ! -name '*.pyc' -print0 \
     | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

# Fast path, before taking the lock: venv works and both stamps match.
if [[ "$FORCE" == 0 && -x "$PY" && -f "$STAMP" && -f "$PKG_STAMP" ]] \
   && [[ "$(cat "$STAMP")" == "$(want_stamp 2>/dev/null)" ]] \
   && [[ "$(cat "$PKG_STAMP")" == "$(want_pkg_stamp)" ]]; then
  echo "DARTMOUTH_CLIENT_PYTHON=$PY"
  exit 0
fi

mkdir -p "$VENV"
exec 9>"$VENV/.setup.lock"
flock 9  # one setup at a time (parallel test runs, CI)

if [[ "$FORCE" == 1 ]] || [[ ! -x "$PY" ]] || ! "$PY" -c '' 2>/dev/null; then
  "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { log "$PYTHON_BIN is $("$PYTHON_BIN" --version 2>&1); the client needs Python 3.10 or newer"; exit 1; }
  log "creating venv $VENV with $PYTHON_BIN ($("$PYTHON_BIN" --version 2>&1))"
  # keep the lock file (fd 9 holds it); remove everything else
  find "$VENV" -mindepth 1 -maxdepth 1 ! -name .setup.lock -exec rm -rf {} +
  "$PYTHON_BIN" -m venv "$VENV"
fi

if [[ "$FORCE" == 1 ]] || [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "$(want_stamp)" ]]; then
  log "installing pinned packages from $REQ into $VENV"
  rm -f "$STAMP" "$PKG_STAMP"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-input --no-deps -r "$REQ" >&2
  want_stamp >"$STAMP.tmp"
  mv "$STAMP.tmp" "$STAMP"
fi

if [[ "$FORCE" == 1 ]] || [[ ! -f "$PKG_STAMP" ]] || [[ "$(cat "$PKG_STAMP")" != "$(want_pkg_stamp)" ]]; then
  log "installing the client from $CLIENT"
  rm -f "$PKG_STAMP"
  stamp="$(want_pkg_stamp)"
  # The pinned hatchling builds it (no build isolation: nothing is downloaded here). The
  # build writes into a copy, so that the work tree gets no build/ or egg-info litter.
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  cp -r "$CLIENT/." "$tmp/"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
    --no-build-isolation --force-reinstall "$tmp" >&2
  # --no-deps trusts the list to be complete; pip check proves it, with the client in.
  "$PY" -m pip check >&2
  (cd / && "$PY" -c 'import dartmouth_knowledge, dartmouth_knowledge.langchain, httpx, pytest, pytest_asyncio' >&2)
  echo "$stamp" >"$PKG_STAMP"
  log "done: dartmouth-knowledge $("$PY" -c 'import importlib.metadata as m; print(m.version("dartmouth-knowledge"))'), httpx $("$PY" -c 'import importlib.metadata as m; print(m.version("httpx"))')"
fi

echo "DARTMOUTH_CLIENT_PYTHON=$PY"
