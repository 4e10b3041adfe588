"""Per-collection data for the study: dumps, qrels, query vectors, engine chunk vectors and
their documents (contiguous ordinals per document)."""
import json, numpy as np
from common import *

class Coll:
    def __init__(self, ds, split):
        self.ds, self.split = ds, split
        self.bm, self.ve, self.qrels = load_dump(ds, "bge-small-en-v1.5", split)
        self.Q = np.load(f"/work/study28/work/{ds}.{split}.q.npy")
        self.qids = json.load(open(f"/work/study28/work/{ds}.{split}.q.npy.ids.json"))
        self.qi = {q: i for i, q in enumerate(self.qids)}
        self.V = np.load(f"/work/study28/work/{ds}.chunks.npy")
        owner = json.load(open(f"/work/study28/work/{ds}.chunk_owner.json"))
        self.docs = []; starts = []
        for o, d in enumerate(owner):
            if not self.docs or self.docs[-1] != d:
                self.docs.append(d); starts.append(o)
        self.starts = np.array(starts); self.di = {d: i for i, d in enumerate(self.docs)}
        self.nchunks = np.diff(np.append(self.starts, len(owner)))
        # document vectors: mean of chunk vectors (normalised) and first chunk
        sums = np.add.reduceat(self.V, self.starts, axis=0)
        self.Dmean = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        self.Dfirst = self.V[self.starts]

    def dense_chunks(self, qvec):
        return self.V @ qvec

    def dense_max(self, qvec):
        return np.maximum.reduceat(self.V @ qvec, self.starts)

    def dense_agg(self, qvec, lam):
        s = self.V @ qvec
        mx = np.maximum.reduceat(s, self.starts); mean = np.add.reduceat(s, self.starts) / self.nchunks
        return mx + lam * mean

    def topk(self, scores, k):
        idx = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        idx = idx[np.lexsort((idx, -scores[idx]))]
        return [(self.docs[i], float(scores[i])) for i in idx]
