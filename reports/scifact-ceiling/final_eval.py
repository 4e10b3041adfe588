"""The configurations with weights fixed on SciFact train (cv-wholedoc.json, 4 decimals),
scored on SciFact train/test and on Cranfield and CACM test."""
import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from ltr import build, FEATS, ndcg_w
import cv_avg
cv = json.load(open("cv-wholedoc.json"))
cfgs = ["baseline zb+1.2zv (fixed)", "zb,zv,zn", "zb,zv,zn,zp", "all but zw"]
rows = []
for ds, split in (("scifact", "train"), ("scifact", "test"), ("cranfield", "test"), ("cacm", "test")):
    C, data = build(ds, split)
    r = {}
    for name in cfgs:
        w = np.array([cv[name]["weights"].get(f, 0.0) for f in FEATS])
        r[name] = ndcg_w(C, data, w)
    _, per = cv_avg.runs(ds, split, 1.0)
    r["avg-query dense, wv=1.8"] = np.mean([per[q][1.8] if q in per else 0 for q in C.qrels])
    r["bm25"] = mean_ndcg(lambda q: [d for d, _ in C.bm.get(q, [])], C.qrels)
    r["vector"] = mean_ndcg(lambda q: [d for d, _ in C.ve.get(q, [])], C.qrels)
    rows.append((f"{ds} {split}", r)); print(ds, split, {k: round(v, 4) for k, v in r.items()}, flush=True)
json.dump(rows, open("final_eval.json", "w"), indent=1)
