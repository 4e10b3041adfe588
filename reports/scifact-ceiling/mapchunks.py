"""Map the engine's chunk vectors (vectors.f32, by ordinal) to documents, using the dumped
vector lists (doc score = its best chunk's cosine) and our own query vectors: a chunk whose
cosine equals a listed doc's score (within tol) is voted to that doc; majority vote wins."""
import json, sys, numpy as np
from collections import Counter, defaultdict
sys.path.insert(0, "/work/study28")
from common import *

def load_vectors(shard):
    raw = open(f"/work/study28/evaldata/shards/{shard}/vectors.f32", "rb").read()
    assert raw[:4] == b"DKV1"
    dim = int.from_bytes(raw[4:8], "little")
    return np.frombuffer(raw[8:], dtype=np.float32).reshape(-1, dim)

def main(dataset, splits, tol=2e-6):
    V = load_vectors(f"eval-{dataset}-bge-small-en-v1-5")
    corpus = [json.loads(l)["_id"] for l in open(f"{DS}/{dataset}/corpus.jsonl")]
    votes = defaultdict(Counter)
    diffs = []
    for split in splits:
        Q = np.load(f"work/{dataset}.{split}.q.npy"); qids = json.load(open(f"work/{dataset}.{split}.q.npy.ids.json"))
        _, ve, _ = load_dump(dataset, "bge-small-en-v1.5", split)
        S = Q @ V.T
        for i, q in enumerate(qids):
            lst = ve.get(q, [])
            if not lst: continue
            diffs.append(S[i].max() - lst[0][1])
            order = np.argsort(S[i]); ss = S[i][order]
            for d, s in lst:
                lo, hi = np.searchsorted(ss, [s - tol, s + tol])
                for o in order[lo:hi]:
                    votes[int(o)][d] += 1
    diffs = np.abs(np.array(diffs))
    print("|max(V q) - top dumped score|: median %.1e, share < 1e-5: %.3f, max %.1e" % (np.median(diffs), (diffs < 1e-5).mean(), diffs.max()))
    N = V.shape[0]
    owner = [votes[o].most_common(1)[0][0] if votes[o] else None for o in range(N)]
    purity = [votes[o].most_common(1)[0][1] / sum(votes[o].values()) for o in range(N) if votes[o]]
    print("chunks", N, "unvoted", owner.count(None), "mean purity %.4f min %.3f" % (np.mean(purity), min(purity)))
    cnt = Counter(o for o in owner if o)
    print("docs", len(corpus), "docs with chunks", len(cnt), "max chunks/doc", max(cnt.values()))
    json.dump(owner, open(f"work/{dataset}.chunk_owner.json", "w"))
    np.save(f"work/{dataset}.chunks.npy", V)


def finish(dataset, splits):
    """Give unvoted chunks the owner of their most similar voted chunk, then check that
    max-over-chunks reproduces the dumped vector lists."""
    V = np.load(f"work/{dataset}.chunks.npy"); owner = json.load(open(f"work/{dataset}.chunk_owner.json"))
    voted = np.array([o is not None for o in owner])
    for o in np.where(~voted)[0]:
        sims = V[voted] @ V[o]
        owner[o] = np.array(owner, dtype=object)[voted][int(np.argmax(sims))]
    json.dump(owner, open(f"work/{dataset}.chunk_owner.json", "w"))
    docs = sorted(set(owner)); di = {d: i for i, d in enumerate(docs)}
    oi = np.array([di[o] for o in owner])
    tot = ok = 0
    for split in splits:
        Q = np.load(f"work/{dataset}.{split}.q.npy"); qids = json.load(open(f"work/{dataset}.{split}.q.npy.ids.json"))
        _, ve, _ = load_dump(dataset, "bge-small-en-v1.5", split)
        S = Q @ V.T
        for i, q in enumerate(qids):
            best = np.full(len(docs), -9.0, np.float32); np.maximum.at(best, oi, S[i])
            for d, s in ve.get(q, [])[:100]:
                tot += 1; ok += abs(best[di[d]] - s) < 2e-6
    print("dumped top-100 doc scores reproduced by max over mapped chunks: %d/%d" % (ok, tot))

if __name__ == "__main__":
    ds = sys.argv[1]
    main(ds, sys.argv[2:]); finish(ds, sys.argv[2:])
