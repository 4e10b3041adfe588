"""Query-vector variants: no instruction prefix, average of both; chunk aggregation max + lam*mean."""
import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from data import Coll
from study2 import zfuse

for split in ("train", "test"):
    C = Coll("scifact", split)
    Qnp = np.load(f"work/scifact.{split}.qnp.npy")
    res = {}
    def dense(qv, lam=0.0):
        return C.topk(C.dense_agg(qv, lam) if lam else C.dense_max(qv), 100)
    variants = {}
    for q in C.qrels:
        i = C.qi[q]; a = C.Q[i]; b = Qnp[i]; m = (a + b) / np.linalg.norm(a + b)
        variants.setdefault("prefix", {})[q] = dense(a)
        variants.setdefault("noprefix", {})[q] = dense(b)
        variants.setdefault("avg", {})[q] = dense(m)
        for lam in (0.1, 0.3, 1.0):
            variants.setdefault(f"prefix max+{lam}mean", {})[q] = dense(a, lam)
    for name, runs in variants.items():
        res[f"dense {name}"] = mean_ndcg(lambda q: [d for d, _ in runs[q]][:10], C.qrels)
        for wv in (1.0, 1.2, 1.5, 2.0):
            res[f"z(bm25)+{wv}z(dense {name})"] = mean_ndcg(lambda q: zfuse([C.bm.get(q, [])[:100], runs[q]], [1.0, wv]), C.qrels)
    # both dense lists as separate branches
    for w1, w2 in ((0.6, 0.6), (0.8, 0.8), (1.0, 0.5), (0.5, 1.0), (1.0, 1.0)):
        res[f"z(bm25)+{w1}z(prefix)+{w2}z(noprefix)"] = mean_ndcg(lambda q: zfuse([C.bm.get(q, [])[:100], variants["prefix"][q], variants["noprefix"][q]], [1.0, w1, w2]), C.qrels)
    for k, v in res.items(): print(split, k, f"{v:.4f}")
