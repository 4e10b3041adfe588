"""Stage 2: dense pseudo-relevance feedback (Rocchio on the query vector) and chunk-score
aggregation, over exact engine chunk vectors. Grid on SciFact train; everything also scored on test."""
import sys, json, itertools, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from data import Coll

def z_of(lst):
    s = np.array([x for _, x in lst]); m, sd = s.mean(), s.std()
    if not sd > 1e-9 * np.abs(s).max(): return {d: 0.0 for d, _ in lst}, 0.0
    z = {d: float((x - m) / sd) for d, x in lst}; return z, min(z.values())

def zfuse(lists, weights):
    zs = [z_of(l) if l else ({}, 0.0) for l in lists]
    cands = set().union(*[set(z) for z, _ in zs])
    sc = {d: sum(w * (z[d] if d in z else low) for (z, low), w in zip(zs, weights)) for d in cands}
    return rank(sc)

class Runner:
    def __init__(self, split, ds="scifact", k=100):
        self.C = C = Coll(ds, split); self.k = k
        self.S = {}  # qid -> chunk scores of q
        self.base = {}
        for q in C.qrels:
            if q not in C.qi: continue
            self.S[q] = C.V @ C.Q[C.qi[q]]
            self.base[q] = zfuse([C.bm.get(q, [])[:k], C.ve.get(q, [])[:k]], [1.0, 1.2])

    def dense_list(self, qv, k=None):
        C = self.C
        return C.topk(np.maximum.reduceat(C.V @ qv, C.starts), k or self.k)

    def prf_vec(self, q, first, fb, alpha, src, beta=1.0):
        C = self.C; top = first[:fb]
        idx = [C.di[d] for d in top]
        if src == "mean": U = C.Dmean[idx]
        elif src == "first": U = C.Dfirst[idx]
        elif src == "best":  # each feedback doc's chunk closest to the query
            s = self.S[q]; U = []
            for i in idx:
                a, b = C.starts[i], C.starts[i] + C.nchunks[i]
                U.append(C.V[a + int(np.argmax(s[a:b]))])
            U = np.array(U)
        c = U.mean(0)
        qv = beta * C.Q[C.qi[q]] + alpha * c
        return qv / np.linalg.norm(qv)

    def run(self, cfg):
        """cfg: dict(fb, alpha, src, wv, wp(optional: keep original dense too), first='fused'|'dense')"""
        C = self.C; out = {}
        for q in C.qrels:
            if q not in C.qi: out[q] = []; continue
            first = self.base[q] if cfg.get("first", "fused") == "fused" else [d for d, _ in C.ve.get(q, [])]
            if cfg["alpha"] == 0:
                out[q] = self.base[q]; continue
            qv = self.prf_vec(q, first, cfg["fb"], cfg["alpha"], cfg["src"])
            dl = self.dense_list(qv)
            lists = [C.bm.get(q, [])[:self.k], dl]; ws = [1.0, cfg["wv"]]
            if cfg.get("wo", 0):
                lists.append(C.ve.get(q, [])[:self.k]); ws.append(cfg["wo"])
            out[q] = zfuse(lists, ws)
        return out

def score(C, runs):
    return mean_ndcg(lambda q: runs.get(q, []), C.qrels)

if __name__ == "__main__":
    R = {s: Runner(s) for s in ("train", "test")}
    res = []
    grid = []
    for src in ("mean", "best", "first"):
        for fb in (3, 5, 10):
            for alpha in (0.25, 0.5, 1.0, 2.0):
                for wv in (1.0, 1.2, 1.5, 2.0):
                    grid.append(dict(src=src, fb=fb, alpha=alpha, wv=wv))
    for cfg in grid:
        tr = score(R["train"].C, R["train"].run(cfg)); te = score(R["test"].C, R["test"].run(cfg))
        res.append((cfg, tr, te)); print(json.dumps(cfg), f"{tr:.4f} {te:.4f}", flush=True)
    json.dump(res, open("/work/study28/study2.json", "w"))
