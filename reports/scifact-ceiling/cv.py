"""Model-family selection by 5-fold cross-validation inside SciFact train (no test data),
then the chosen family refit on all of train and scored once on test."""
import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from ltr import build, FEATS, fit_pairwise, coord_ascent, ndcg_w

class Sub:  # a Coll-like view restricted to some queries
    def __init__(self, C, qs): self.qrels = {q: C.qrels[q] for q in qs}

WHOLE = "--wholedoc" in sys.argv
Ctr, tr = build("scifact", "train", wholedoc=WHOLE); Cte, te = build("scifact", "test", wholedoc=WHOLE)
fams = {
    "baseline zb+1.2zv (fixed)": None,
    "zb,zv (weights)": ["zb", "zv"],
    "zb,zv,zn": ["zb", "zv", "zn"],
    "zb,zv,zp": ["zb", "zv", "zp"],
    "zb,zv,zn,zp": ["zb", "zv", "zn", "zp"],
    "all but zw": [f for f in FEATS if f != "zw"],
}
if WHOLE:
    fams.update({"zb,zv,zw": ["zb", "zv", "zw"], "zb,zv,zn,zw": ["zb", "zv", "zn", "zw"],
                 "zb,zv,zn,zp,zw": ["zb", "zv", "zn", "zp", "zw"], "all": FEATS})
qs = sorted(Ctr.qrels); rng = np.random.RandomState(0); rng.shuffle(qs)
folds = [qs[i::5] for i in range(5)]
def fit(data, C, mask):
    w = fit_pairwise(data, mask); w, _ = coord_ascent(C, data, w, mask); return w
out = {}
for name, fs in fams.items():
    if fs is None:
        w = np.zeros(len(FEATS)); w[0] = 1; w[1] = 1.2; mask = np.ones(len(FEATS))
        cv = ndcg_w(Ctr, tr, w); full = cv
    else:
        mask = np.array([f in fs for f in FEATS], float)
        scores = []
        for k in range(5):
            held = set(folds[k]); trq = [q for q in qs if q not in held]
            dtr = {q: tr[q] for q in trq if q in tr}; dho = {q: tr[q] for q in held if q in tr}
            w = fit(dtr, Sub(Ctr, trq), mask)
            scores.append(ndcg_w(Sub(Ctr, held), dho, w, mask) * len(held))
        cv = sum(scores) / len(qs)
        w = fit(tr, Ctr, mask); full = ndcg_w(Ctr, tr, w, mask)
    t = ndcg_w(Cte, te, w, mask)
    out[name] = {"cv_train": cv, "train_fit": full, "test": t, "weights": {f: round(float(x), 4) for f, x, m in zip(FEATS, w, mask) if m and x}}
    print(f"| {name} | {cv:.4f} | {full:.4f} | {t:.4f} | {out[name]['weights']}", flush=True)
json.dump(out, open("cv%s.json" % ("-wholedoc" if WHOLE else ""), "w"), indent=1)
