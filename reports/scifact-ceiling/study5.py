"""RM3 (BM25 re-run with terms from the fused top documents), fused with the dense branch."""
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
res = {}
for split in ("train", "test"):
    C = Coll("scifact", split)
    base = {q: zfuse([C.bm.get(q, [])[:100], C.ve.get(q, [])[:100]], [1, 1.2]) for q in C.qrels}
    for m in (3, 5, 10):
        for nt in (10, 30):
            for lam in (0.5, 0.7, 0.85):
                lists = {}
                for q in C.qrels:
                    qt = B.query_terms(qtext[q]); z = sum(qt.values()) or 1
                    exp = B.rm3_terms(base[q][:m], [1.0] * m, nt)
                    w = {t: lam * v / z for t, v in qt.items()}
                    for t, v in exp.items(): w[t] = w.get(t, 0) + (1 - lam) * v
                    lists[q] = B.top(B.score(w), 100)
                for wv in (1.0, 1.2, 1.5):
                    name = f"z(bm25-rm3 fb={m} terms={nt} orig={lam}) + {wv} z(dense)"
                    res.setdefault(name, {})[split] = mean_ndcg(lambda q: zfuse([lists[q], C.ve.get(q, [])[:100]], [1, wv]), C.qrels)
                name = f"bm25-rm3 fb={m} terms={nt} orig={lam} alone"
                res.setdefault(name, {})[split] = mean_ndcg(lambda q: [d for d, _ in lists[q]], C.qrels)
        print(split, m, file=sys.stderr, flush=True)
for k in res: print(f"| {k} | {res[k]['train']:.4f} | {res[k]['test']:.4f} |")
json.dump(res, open("study5.json", "w"), indent=1)
