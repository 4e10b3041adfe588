import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from study2 import zfuse
from data import Coll
W = np.load("work/scifact.wholedoc.npy"); wids = json.load(open("work/scifact.wholedoc.npy.ids.json"))
for split in ("train", "test"):
    C = Coll("scifact", split)
    lists = {}
    for q in C.qrels:
        s = W @ C.Q[C.qi[q]]; top = np.argsort(-s)[:100]; lists[q] = [(wids[t], float(s[t])) for t in top]
    print(split, "whole-doc dense %.4f" % mean_ndcg(lambda q: [d for d, _ in lists[q]], C.qrels),
          "engine max-chunk dense %.4f" % mean_ndcg(lambda q: [d for d, _ in C.ve.get(q, [])], C.qrels),
          " z(bm25)+1.2 z(wholedoc) %.4f" % mean_ndcg(lambda q: zfuse([C.bm.get(q, [])[:100], lists[q]], [1, 1.2]), C.qrels))
