"""Per-query adaptive branch weights from each branch's own score distribution."""
import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from study2 import zfuse
from data import Coll

def conf(lst, kind, k=100):
    s = np.array([x for _, x in lst[:k]])
    if len(s) < 3 or s.std() == 0: return 1.0
    m, sd = s.mean(), s.std()
    if kind == "ztop1": return (s[0] - m) / sd
    if kind == "gap1-10": return (s[0] - s[min(9, len(s)-1)]) / sd
    if kind == "gap1-2": return (s[0] - s[1]) / sd + 0.1
    if kind == "ztop5": return (s[:5].mean() - m) / sd
    raise ValueError

res = {}
for split in ("train", "test"):
    C = Coll("scifact", split)
    pre = {q: (C.bm.get(q, [])[:100], C.ve.get(q, [])[:100]) for q in C.qrels}
    for kind in ("ztop1", "gap1-10", "gap1-2", "ztop5"):
        cf = {q: (conf(b, kind), conf(v, kind)) for q, (b, v) in pre.items()}
        for g in (0.5, 1.0, 2.0, 3.0):
            for wv in (1.0, 1.2, 1.5, 2.0):
                def run(q):
                    b, v = pre[q]; cb, cv = cf[q]
                    w = wv * (max(cv, 1e-3) / max(cb, 1e-3)) ** g
                    return zfuse([b, v], [1.0, w])
                res.setdefault(f"adaptive {kind} gamma={g} wv={wv}", {})[split] = mean_ndcg(run, C.qrels)
    # raw-cosine-based: w_v = wv * exp(g * (cos1 - mean cos1 over train...)) -> use cos1 directly
    for g in (2.0, 5.0, 10.0, 20.0):
        for wv in (1.0, 1.2, 1.5):
            def run(q):
                b, v = pre[q]; c1 = v[0][1] if v else 0.7
                return zfuse([b, v], [1.0, wv * np.exp(g * (c1 - 0.75))])
            res.setdefault(f"adaptive cos1 g={g} wv={wv}", {})[split] = mean_ndcg(run, C.qrels)
for k in res: print(f"| {k} | {res[k]['train']:.4f} | {res[k]['test']:.4f} |")
