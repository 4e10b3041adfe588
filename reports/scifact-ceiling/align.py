"""Monotone alignment of chunk ordinals to corpus documents (ordinals follow corpus order;
documents without text have no chunk), maximising the votes from mapchunks.py."""
import json, sys, numpy as np
from collections import Counter, defaultdict
sys.path.insert(0, "/work/study28")
from common import *
import mapchunks

def align(dataset, splits, tol=2e-6):
    V = mapchunks.load_vectors(f"eval-{dataset}-bge-small-en-v1-5")
    rows = [json.loads(l) for l in open(f"{DS}/{dataset}/corpus.jsonl")]
    corpus = [r["_id"] for r in rows]; pos = {d: i for i, d in enumerate(corpus)}
    votes = defaultdict(Counter)
    for split in splits:
        Q = np.load(f"work/{dataset}.{split}.q.npy"); qids = json.load(open(f"work/{dataset}.{split}.q.npy.ids.json"))
        _, ve, _ = load_dump(dataset, "bge-small-en-v1.5", split)
        S = Q @ V.T
        for i, q in enumerate(qids):
            order = np.argsort(S[i]); ss = S[i][order]
            for d, s in ve.get(q, []):
                lo, hi = np.searchsorted(ss, [s - tol, s + tol])
                for o in order[lo:hi]:
                    votes[int(o)][pos[d]] += 1
    N = V.shape[0]
    # weighted longest non-decreasing chain of (chunk, candidate doc position) pairs, one per chunk
    M = len(corpus) + 1
    tree_v = [0.0] * (M + 1); tree_n = [-1] * (M + 1)
    def query(c):  # max over positions <= c
        c += 1; bv, bn = 0.0, -1
        while c > 0:
            if tree_v[c] > bv: bv, bn = tree_v[c], tree_n[c]
            c -= c & -c
        return bv, bn
    def update(c, v, n):
        c += 1
        while c <= M:
            if v > tree_v[c]: tree_v[c], tree_n[c] = v, n
            c += c & -c
    nodes = []  # (chunk, pos, prev node)
    voted = [o for o in range(N) if votes[o]]
    for o in voted:
        pend = []
        for c, w in votes[o].items():
            bv, bn = query(c); sv, sn = query(c - 1) if c > 0 else (0.0, -1)
            # a chain that moves on to a new document earns 0.5: breaks ties between identical documents
            pend.append((c, sv + w + 0.5, sn) if sv + 0.5 >= bv else (c, bv + w, bn))
        for c, v, bn in pend:
            nodes.append((o, c, bn)); update(c, v, len(nodes) - 1)
    bv, n = query(M - 1); assign = {}
    while n >= 0:
        o, c, n = nodes[n]; assign[o] = c
    voted = sorted(assign)
    owner = [None] * N
    for o in voted: owner[o] = assign[o]
    # unvoted: previous chunk's doc, or the first doc after it that has no chunk yet (and has text)
    used = set(assign.values())
    for o in range(N):
        if owner[o] is None:
            p = owner[o - 1] if o else 0
            nxt = next((owner[k] for k in range(o + 1, N) if owner[k] is not None), len(corpus))
            free = [x for x in range(p + 1, nxt) if x not in used and ((rows[x].get("text") or "").strip() or (rows[x].get("title") or "").strip())]
            owner[o] = free[0] if free else p
            used.add(owner[o])
    mono = all(a <= b for a, b in zip(owner, owner[1:]))
    agree = sum(votes[o][owner[o]] for o in voted) / sum(sum(votes[o].values()) for o in voted)
    cnt = Counter(owner)
    print(f"{dataset}: chunks {N}, docs with chunks {len(cnt)} of {len(corpus)}, monotone {mono}, vote share kept {agree:.3f}")
    owner_ids = [corpus[p] for p in owner]
    json.dump(owner_ids, open(f"work/{dataset}.chunk_owner.json", "w"))
    np.save(f"work/{dataset}.chunks.npy", V)

if __name__ == "__main__":
    align(sys.argv[1], sys.argv[2:]); mapchunks.finish(sys.argv[1], sys.argv[2:])
