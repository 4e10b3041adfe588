"""Text-level PRF for the dense branch: re-embed 'query + titles of the top-m fused documents'
(query instruction kept), search again, fuse. m chosen on train."""
import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from study2 import zfuse
from data import Coll
import embed
tok, sess = embed.load()
titles = {}
for l in open("/work/shared/datasets/ir/scifact/corpus.jsonl"):
    r = json.loads(l); titles[r["_id"]] = r.get("title", "")
qtext = {}
for f in ("queries.jsonl", "queries_train.jsonl"):
    for l in open(f"/work/shared/datasets/ir/scifact/{f}"):
        r = json.loads(l); qtext[r["_id"]] = r["text"]
for split in ("train", "test"):
    C = Coll("scifact", split)
    qs = [q for q in C.qrels if q in C.qi]
    base = {q: zfuse([C.bm.get(q, [])[:100], C.ve.get(q, [])[:100]], [1, 1.2]) for q in qs}
    for m in (1, 3):
        texts = [embed.PREFIX + qtext[q] + " " + " ".join(titles[d] for d in base[q][:m]) for q in qs]
        E = embed.embed(texts, tok, sess)
        lists = {q: C.topk(C.dense_max(E[i]), 100) for i, q in enumerate(qs)}
        r = {"dense alone": mean_ndcg(lambda q: [d for d, _ in lists.get(q, [])], C.qrels)}
        for wv in (1.0, 1.2, 1.5, 2.0):
            r[f"z(bm25)+{wv}z(prf-dense)"] = mean_ndcg(lambda q: zfuse([C.bm.get(q, [])[:100], lists.get(q, [])], [1, wv]), C.qrels)
        for w1, w2 in ((0.6, 0.6), (0.8, 0.8), (1.0, 0.5), (1.0, 1.0)):
            r[f"z(bm25)+{w1}z(dense)+{w2}z(prf-dense)"] = mean_ndcg(lambda q: zfuse([C.bm.get(q, [])[:100], C.ve.get(q, [])[:100], lists.get(q, [])], [1, w1, w2]), C.qrels)
        for k, v in r.items(): print(split, f"titles of top {m}:", k, f"{v:.4f}", flush=True)
