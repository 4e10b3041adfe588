import sys; sys.path.insert(0, "/work/study28")
from common import *
from study2 import zfuse
for tb in ("0.5", "1", "2"):
    for split in ("train", "test"):
        bm, ve, qrels = load_dump("scifact", "bge-small-en-v1.5", split, root=f"/work/study28/runs_tb{tb}")
        print(tb, split, "bm25 %.4f" % mean_ndcg(lambda q: [d for d, _ in bm.get(q, [])], qrels),
              " ".join("wv=%s %.4f" % (wv, mean_ndcg(lambda q: zfuse([bm.get(q, [])[:100], ve.get(q, [])[:100]], [1, wv]), qrels)) for wv in (1.2, 1.5, 2.0)))
