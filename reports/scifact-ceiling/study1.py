"""Stage 1: fusion variants over the dumped lists (and exact dense scores), SciFact train/test."""
import sys, itertools, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from data import Coll

def zstats(lst):
    s = np.array([x for _, x in lst]); return s.mean(), s.std()

def fuse_general(bm, ve, wb, wv, k, fill="lowest", full_bm=None, full_ve=None, norm="z", kstat=None):
    """bm/ve: deep lists; take top-k of each as candidates. norm stats over top-kstat (default k).
    fill: 'lowest' (engine) | 'true' (score the missing doc in that branch from the deeper list /
    exact dense score; below the list -> branch's lowest)."""
    B, Vv = bm[:k], ve[:k]
    kst = kstat or k
    out = {}
    parts = []
    for lst, full, w in ((B, full_bm, wb), (Vv, full_ve, wv)):
        if not lst:
            parts.append(({}, 0.0, w, None, 0.0, 1.0)); continue
        sl = bm[:kst] if lst is B else ve[:kst]
        m, sd = zstats(sl)
        if norm == "minmax":
            lo = min(x for _, x in sl); hi = max(x for _, x in sl); m, sd = lo, (hi - lo) or 1.0
        z = {d: (x - m) / sd for d, x in lst}
        parts.append((z, min(z.values()), w, full, m, sd))
    cands = set(d for d, _ in B) | set(d for d, _ in Vv)
    for d in cands:
        t = 0.0
        for z, low, w, full, m, sd in parts:
            if d in z: t += w * z[d]
            elif fill == "true" and full is not None and d in full:
                t += w * max((full[d] - m) / sd, -1e9) if True else 0
            else: t += w * low
        out[d] = t
    return rank(out)

def evalcfg(C, fn):
    return mean_ndcg(lambda q: fn(q), C.qrels)

def main():
    res = {}
    for split in ("train", "test"):
        C = Coll("scifact", split)
        bm, ve = C.bm, C.ve
        # exact dense (max chunk, all docs) for fill='true'
        dense_full = {}
        for q in C.qrels:
            s = C.dense_max(C.Q[C.qi[q]]); dense_full[q] = {d: float(x) for d, x in zip(C.docs, s)}
        bmfull = {q: dict(bm[q]) for q in C.qrels}
        r = {}
        r["bm25"] = evalcfg(C, lambda q: [d for d, _ in bm.get(q, [])])
        r["vector (engine)"] = evalcfg(C, lambda q: [d for d, _ in ve.get(q, [])])
        r["vector (exact max-chunk)"] = evalcfg(C, lambda q: rank(dense_full[q])[:10])
        for k in (100, 200, 300, 1000):
            for wv in (0.8, 1.0, 1.2, 1.5, 2.0):
                r[f"z k={k} wv={wv}"] = evalcfg(C, lambda q: fuse_z(bm.get(q, [])[:k], ve.get(q, [])[:k], 1.0, wv))
                r[f"z-truefill k={k} wv={wv}"] = evalcfg(C, lambda q: fuse_general(bm.get(q, []), ve.get(q, []), 1.0, wv, k, "true", bmfull[q], dense_full[q]))
        for k in (20, 50):
            for wv in (1.0, 1.2, 1.5):
                r[f"z k={k} wv={wv}"] = evalcfg(C, lambda q: fuse_z(bm.get(q, [])[:k], ve.get(q, [])[:k], 1.0, wv))
        for kst in (10, 20, 50):
            for wv in (1.0, 1.2, 1.5):
                r[f"z-stats-top{kst} k=100 wv={wv}"] = evalcfg(C, lambda q: fuse_general(bm.get(q, []), ve.get(q, []), 1.0, wv, 100, "lowest", kstat=kst))
        for kk in (10, 30, 60):
            for wv in (1.0, 1.5, 2.0):
                def rrf(q):
                    sc = {}
                    for i, (d, _) in enumerate(bm.get(q, [])[:100]): sc[d] = sc.get(d, 0) + 1 / (kk + i + 1)
                    for i, (d, _) in enumerate(ve.get(q, [])[:100]): sc[d] = sc.get(d, 0) + wv / (kk + i + 1)
                    return rank(sc)
                r[f"rrf k={kk} wv={wv}"] = evalcfg(C, rrf)
        res[split] = r
        print(split, "done", file=sys.stderr)
    keys = list(res["train"])
    print("| method | train | test |\n|---|---:|---:|")
    for k in keys:
        print(f"| {k} | {res['train'][k]:.4f} | {res['test'][k]:.4f} |")
    json.dump(res, open("/work/study28/study1.json", "w"), indent=1)

main()
