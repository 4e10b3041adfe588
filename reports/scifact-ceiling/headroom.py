import sys, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from study2 import zfuse
from data import Coll
for split in ("train", "test"):
    C = Coll("scifact", split)
    best = []; base = []; ranks = []
    for q in C.qrels:
        per = [ndcg10(zfuse([C.bm.get(q, [])[:100], C.ve.get(q, [])[:100]], [1, w]), C.qrels[q]) for w in (0, 0.3, 0.6, 1, 1.2, 1.5, 2, 3, 5, 100)]
        best.append(max(per)); base.append(per[4])
        r = zfuse([C.bm.get(q, [])[:100], C.ve.get(q, [])[:100]], [1, 1.2])
        for d in C.qrels[q]:
            ranks.append(r.index(d) + 1 if d in r else 999)
    ranks = np.array(ranks)
    print(split, "base %.4f oracle-per-query-weight %.4f" % (np.mean(base), np.mean(best)),
          "rel ranks: top1 %.3f top3 %.3f top10 %.3f 11-100 %.3f missing %.3f" % tuple([(ranks == 1).mean(), (ranks <= 3).mean(), (ranks <= 10).mean(), ((ranks > 10) & (ranks < 999)).mean(), (ranks == 999).mean()]))
