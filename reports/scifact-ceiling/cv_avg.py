"""Single extra query embedding: the vector branch searched with normalise(q_prefix + q_noprefix);
BM25 weight 1, vector weight chosen by 5-fold CV on train (same folds as cv.py)."""
import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from study2 import zfuse
from data import Coll
GRID = (1.0, 1.2, 1.5, 1.8, 2.0, 2.5)
def runs(ds, split, mix):
    C = Coll(ds, split); Qnp = np.load(f"work/{ds}.{split}.qnp.npy")
    per = {}
    for q in C.qrels:
        if q not in C.qi: continue
        a = C.Q[C.qi[q]]; b = Qnp[C.qi[q]]; m = a + mix * b; m /= np.linalg.norm(m)
        dl = C.topk(C.dense_max(m), 100)
        per[q] = {wv: ndcg10(zfuse([C.bm.get(q, [])[:100], dl], [1, wv]), C.qrels[q]) for wv in GRID}
    return C, per
if __name__ == "__main__":
    for mix in (0.5, 1.0):
        Ctr, tr = runs("scifact", "train", mix); Cte, te = runs("scifact", "test", mix)
        qs = sorted(Ctr.qrels); rng = np.random.RandomState(0); rng.shuffle(qs); folds = [qs[i::5] for i in range(5)]
        mean = lambda per, qq, wv: np.mean([per[q][wv] if q in per else 0 for q in qq])
        cv = 0
        for k in range(5):
            held = set(folds[k]); trq = [q for q in qs if q not in held]
            wv = max(GRID, key=lambda w: mean(tr, trq, w)); cv += mean(tr, held, wv) * len(held)
        cv /= len(qs)
        wv = max(GRID, key=lambda w: mean(tr, qs, w))
        print(f"| dense on normalise(q + {mix} q_noprefix), z-fusion | {cv:.4f} | {mean(tr, qs, wv):.4f} (wv={wv}) | {mean(te, list(Cte.qrels), wv):.4f} |",
              "all wv:", {w: (round(mean(tr, qs, w), 4), round(mean(te, list(Cte.qrels), w), 4)) for w in GRID}, flush=True)
