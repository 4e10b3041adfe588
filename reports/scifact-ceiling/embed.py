"""Embed texts with bge-small-en-v1.5 int8 (CLS pooling, L2 norm), as the engine does.
usage: embed.py queries IN.jsonl OUT.npy   (query prefix)   |  embed.py docs ... (no prefix, title\\ntext, 512 tokens)"""
import json, sys, numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
M = "/work/main/models/bge-small-en-v1.5/"
PREFIX = "Represent this sentence for searching relevant passages: "

def load(max_len=512):
    tok = Tokenizer.from_file(M + "tokenizer.json")
    tok.enable_truncation(max_len)
    tok.no_padding()
    so = ort.SessionOptions(); so.intra_op_num_threads = int(__import__("os").environ.get("ORT_THREADS", "1"))
    sess = ort.InferenceSession(M + "model.onnx", so, providers=["CPUExecutionProvider"])
    return tok, sess

def embed(texts, tok, sess, batch=1):
    names = [i.name for i in sess.get_inputs()]
    out = []
    # sort by length for efficient batching
    encs = tok.encode_batch(texts)
    order = np.argsort([len(e.ids) for e in encs])
    res = [None] * len(texts)
    for s in range(0, len(texts), batch):
        idx = order[s:s + batch]
        L = max(len(encs[i].ids) for i in idx)
        ids = np.zeros((len(idx), L), np.int64); mask = np.zeros_like(ids)
        for r, i in enumerate(idx):
            e = encs[i]; ids[r, :len(e.ids)] = e.ids; mask[r, :len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        h = sess.run(None, feed)[0]
        v = h[:, 0, :]
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        for r, i in enumerate(idx):
            res[i] = v[r]
    return np.stack(res).astype(np.float32)

if __name__ == "__main__":
    kind, inp, outp = sys.argv[1:4]
    rows = [json.loads(l) for l in open(inp)]
    tok, sess = load()
    if kind == "queries":
        texts = [PREFIX + r["text"] for r in rows]
    else:
        texts = [(r.get("title", "") + "\n" + r["text"]) if r.get("title", "").strip() else r["text"] for r in rows]
    v = embed(texts, tok, sess)
    np.save(outp, v)
    json.dump([r["_id"] for r in rows], open(outp + ".ids.json", "w"))
    print(v.shape)
