"""BM25 reproduction, k1/b grid, and RM3 from the fused top documents."""
import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from bm25 import BM25
from study2 import zfuse
from data import Coll

B = BM25("scifact")
qtext = {}
for f in ("queries.jsonl", "queries_train.jsonl"):
    for l in open(f"/work/shared/datasets/ir/scifact/{f}"):
        r = json.loads(l); qtext[r["_id"]] = r["text"]
Cs = {s: Coll("scifact", s) for s in ("train", "test")}
res = {}
def rec(name, split, v): res.setdefault(name, {})[split] = v
for split, C in Cs.items():
    base = {q: zfuse([C.bm.get(q, [])[:100], C.ve.get(q, [])[:100]], [1, 1.2]) for q in C.qrels}
    for k1 in (0.6, 0.9, 1.2, 1.5):
        for b in (0.3, 0.5, 0.75, 0.9):
            lists = {q: B.top(B.score(B.query_terms(qtext[q]), k1, b), 100) for q in C.qrels}
            rec(f"own bm25 k1={k1} b={b}", split, mean_ndcg(lambda q: [d for d, _ in lists[q]], C.qrels))
            for wv in (1.2, 1.5):
                rec(f"z(own bm25 k1={k1} b={b}) + {wv} z(dense)", split, mean_ndcg(lambda q: zfuse([lists[q], C.ve.get(q, [])[:100]], [1, wv]), C.qrels))
    print(split, "grid done", file=sys.stderr, flush=True)
for k in res: print(f"| {k} | {res[k]['train']:.4f} | {res[k]['test']:.4f} |")
json.dump(res, open("study4.json", "w"), indent=1)
