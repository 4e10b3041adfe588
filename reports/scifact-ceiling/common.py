"""Shared loading, fusion and scoring for the offline study (mirrors engine/src/fusion.rs)."""
import csv, json, math, os
from collections import defaultdict
import numpy as np

DS = "/work/shared/datasets/ir"

def read_run(path, depth=1000):
    run = defaultdict(list)
    with open(path, newline="") as f:
        rows = csv.reader(f, delimiter="\t"); next(rows)
        for qid, doc, rank, score in rows:
            if int(rank) <= depth:
                run[qid].append((doc, float(score)))
    return run

def read_qrels(path):
    q = defaultdict(dict)
    with open(path, newline="") as f:
        for row in csv.reader(f, delimiter="\t"):
            if not row or row[0] in ("query-id", "query_id"):
                continue
            if int(row[-1]) > 0:
                q[row[0]][row[1]] = int(row[-1])
    return q

def ndcg10(ranked, judged):
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(judged.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0

def load_dump(dataset, model, split, root="/work/study28/runs"):
    d = os.path.join(root, dataset, model)
    man = json.load(open(os.path.join(d, "manifest.json")))
    e = next(s for s in man["splits"] if s["split"] == split)
    files = dict(e["files"])
    bm = read_run(os.path.join(d, files["bm25"]))
    ve = read_run(os.path.join(d, files["vector"]))
    qrels = read_qrels(os.path.join(DS, dataset, "qrels", f"{split}.tsv"))
    return bm, ve, qrels

def mean_ndcg(rank_fn, qrels):
    """rank_fn(qid) -> ranked doc list; queries with judgments; missing -> 0."""
    vals = [ndcg10(rank_fn(q), qrels[q]) for q in qrels]
    return sum(vals) / len(vals)

def per_query(rank_fn, qrels):
    return {q: ndcg10(rank_fn(q), qrels[q]) for q in qrels}

def zs(lst):
    if not lst:
        return {}, 0.0
    s = np.array([x for _, x in lst]); m = s.mean(); sd = s.std()
    scale = np.abs(s).max()
    if not (sd > 1e-9 * scale):
        return {d: 0.0 for d, _ in lst}, 0.0
    z = (s - m) / sd
    return {d: float(v) for (d, _), v in zip(lst, z)}, float(z.min())

def fuse_z(bm, ve, wb=1.0, wv=1.2):
    """Engine zscore: a hit missing from a branch takes that branch's lowest z."""
    zb, lb = zs(bm); zv, lv = zs(ve)
    sc = {}
    for d in set(zb) | set(zv):
        sc[d] = wb * (zb[d] if d in zb else (lb if zb else 0.0)) + wv * (zv[d] if d in zv else (lv if zv else 0.0))
    return [d for d, _ in sorted(sc.items(), key=lambda kv: (-kv[1], kv[0]))]

def rank(sc):
    return [d for d, _ in sorted(sc.items(), key=lambda kv: (-kv[1], kv[0]))]
