"""Paired comparison on SciFact test (and train) of the chosen configuration vs the default."""
import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from ltr import build, FEATS
cv = json.load(open("cv-wholedoc.json"))
def perq(C, data, w):
    out = []
    for q in C.qrels:
        if q not in data: out.append(0.0); continue
        cands, X, y = data[q]; s = X @ w; order = np.lexsort((np.array(cands), -s))
        out.append(ndcg10([cands[i] for i in order[:10]], C.qrels[q]))
    return np.array(out)
for split in ("train", "test"):
    C, data = build("scifact", split)
    base = perq(C, data, np.array([cv["baseline zb+1.2zv (fixed)"]["weights"].get(f, 0) for f in FEATS]))
    for name in ("all but zw", "zb,zv,zn"):
        x = perq(C, data, np.array([cv[name]["weights"].get(f, 0) for f in FEATS]))
        d = x - base; rng = np.random.RandomState(1)
        boots = [d[rng.randint(0, len(d), len(d))].mean() for _ in range(5000)]
        print(f"{split} {name}: delta {d.mean():+.4f}, 95% bootstrap CI [{np.percentile(boots, 2.5):+.4f}, {np.percentile(boots, 97.5):+.4f}], better {int((d > 1e-9).sum())} / worse {int((d < -1e-9).sum())} of {len(d)} queries")
