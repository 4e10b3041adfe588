#!/usr/bin/env python3
"""Fusion methods compared offline on the candidate lists `dartmouth eval --dump-runs DIR` writes.

    python3 scripts/fusion_study.py DIR [--candidates 100] [--json OUT]

For every dataset × model in DIR it re-fuses each query's BM25 and vector lists (the top
`--candidates` of each, as the engine's hybrid takes them) with each method and weight of a grid,
scores nDCG@10 against the collection's qrels (trec_eval's: graded gains, log2 discount), and
then runs the leave-one-collection-out check: the configuration chosen on the other collections
(SciFact through its train split only) is scored on the one left out, beside its best single
branch. It mirrors `engine/src/fusion.rs` (weighted: min-max, a missed hit adds 0; zscore: a missed
hit takes the branch's lowest z; rrf: weight / (k + rank)); the engine's own rows in
`dartmouth eval` check that it does.
"""

import argparse
import csv
import json
import math
import os
import sys
from collections import defaultdict


def read_run(path, depth):
    run = defaultdict(list)
    with open(path, newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        next(rows)
        for qid, doc, rank, score in rows:
            if int(rank) <= depth:
                run[qid].append((doc, float(score)))
    return run


def read_qrels(path):
    qrels = defaultdict(dict)
    with open(path, newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        for row in rows:
            if not row or row[0] in ("query-id", "query_id"):
                continue
            qid, doc, rel = row[0], row[1], int(row[-1])
            if rel > 0:
                qrels[qid][doc] = rel
    return qrels


def ndcg10(ranked, judged):
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(judged.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def minmax(lst):
    if not lst:
        return {}
    lo = min(s for _, s in lst)
    hi = max(s for _, s in lst)
    return {d: ((s - lo) / (hi - lo) if hi > lo else 1.0) for d, s in lst}


def zscores(lst):
    if not lst:
        return {}, 0.0
    n = len(lst)
    mean = sum(s for _, s in lst) / n
    std = math.sqrt(sum((s - mean) ** 2 for _, s in lst) / n)
    scale = max(abs(s) for _, s in lst)
    if not (std > 1e-9 * scale):
        return {d: 0.0 for d, _ in lst}, 0.0
    z = {d: (s - mean) / std for d, s in lst}
    return z, min(z.values())


def fuse(method, param, wv, bm25, vec):
    scores = defaultdict(float)
    if method == "weighted":
        for d, x in minmax(bm25).items():
            scores[d] += x
        for d, x in minmax(vec).items():
            scores[d] += wv * x
    elif method == "zscore":
        zb, lb = zscores(bm25)
        zv, lv = zscores(vec)
        for d in set(zb) | set(zv):
            scores[d] = (zb[d] if d in zb else (lb if zb else 0.0)) + wv * (
                zv[d] if d in zv else (lv if zv else 0.0)
            )
    elif method == "rrf":
        for i, (d, _) in enumerate(bm25):
            scores[d] += 1.0 / (param + i + 1)
        for i, (d, _) in enumerate(vec):
            scores[d] += wv / (param + i + 1)
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def grid():
    for w in (0.3, 0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0):
        yield ("weighted", None, w)
        yield ("zscore", None, w)
    for k in (10, 30, 60, 100):
        for w in (0.5, 1.0, 1.5):
            yield ("rrf", k, w)


def label(cfg):
    m, p, w = cfg
    return f"{m} k={p} wv={w}" if m == "rrf" else f"{m} wv={w}"


def evaluate(dump, split, candidates):
    manifest = json.load(open(os.path.join(dump, "manifest.json")))
    entry = next(s for s in manifest["splits"] if s["split"] == split)
    files = dict(entry["files"])
    bm25 = read_run(os.path.join(dump, files["bm25"]), candidates)
    vec = read_run(os.path.join(dump, files["vector"]), candidates)
    # Paths as `dartmouth eval` was given them: relative to where it ran, like this script.
    qrels = read_qrels(entry["qrels_file"])
    qids = [q for q in qrels if q in bm25 or q in vec]
    missing = [q for q in qrels if q not in bm25 and q not in vec]
    out = {}

    def mean(f):
        vals = [f(q) for q in qids] + [0.0] * len(missing)
        return sum(vals) / len(vals)

    out["bm25"] = mean(lambda q: ndcg10([d for d, _ in bm25.get(q, [])], qrels[q]))
    out["vector"] = mean(lambda q: ndcg10([d for d, _ in vec.get(q, [])], qrels[q]))
    for cfg in grid():
        out[label(cfg)] = mean(
            lambda q: ndcg10(fuse(*cfg, bm25.get(q, []), vec.get(q, [])), qrels[q])
        )
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--json")
    args = ap.parse_args()
    results = {}  # (dataset, model) -> {"test": {...}, "train": {...}}
    for dataset in sorted(os.listdir(args.dir)):
        for model in sorted(os.listdir(os.path.join(args.dir, dataset))):
            dump = os.path.join(args.dir, dataset, model)
            if not os.path.isfile(os.path.join(dump, "manifest.json")):
                continue
            manifest = json.load(open(os.path.join(dump, "manifest.json")))
            for s in manifest["splits"]:
                results.setdefault((dataset, model), {})[s["split"]] = evaluate(
                    dump, s["split"], args.candidates
                )
    models = sorted({m for _, m in results})
    datasets = sorted({d for d, _ in results})
    configs = [label(c) for c in grid()]
    report = {}
    for model in models:
        print(f"\n## {model}\n")
        print("| held out | chosen on the others | its nDCG@10 | BM25 | vector | hybrid − best branch |")
        print("|---|---|---:|---:|---:|---:|")
        for held in datasets:
            if (held, model) not in results:
                continue
            others = [d for d in datasets if d != held and (d, model) in results]

            def tuning(d):
                r = results[(d, model)]
                return r.get("train", r["test"])

            best = max(configs, key=lambda c: sum(tuning(d)[c] for d in others) / len(others))
            r = results[(held, model)]["test"]
            margin = r[best] - max(r["bm25"], r["vector"])
            print(f"| {held} | {best} | {r[best]:.4f} | {r['bm25']:.4f} | {r['vector']:.4f} | {margin:+.4f} |")
            report.setdefault(model, {})[held] = {
                "chosen": best,
                "ndcg10": r[best],
                "bm25": r["bm25"],
                "vector": r["vector"],
                "margin": margin,
            }
        print("\nEvery configuration, test split:\n")
        print("| configuration | " + " | ".join(datasets) + " | mean |")
        print("|---|" + "---:|" * (len(datasets) + 1))
        for c in ["bm25", "vector"] + configs:
            vals = [results[(d, model)]["test"][c] for d in datasets if (d, model) in results]
            print(f"| {c} | " + " | ".join(f"{v:.4f}" for v in vals) + f" | {sum(vals)/len(vals):.4f} |")
        trains = [d for d in datasets if "train" in results.get((d, model), {})]
        for d in trains:
            r = results[(d, model)]["train"]
            top = sorted(configs, key=lambda c: -r[c])[:5]
            print(f"\n{d} train split (tuning): bm25 {r['bm25']:.4f}, vector {r['vector']:.4f}; best "
                  + ", ".join(f"{c} {r[c]:.4f}" for c in top))
        report.setdefault(model, {})["all"] = {
            d: results[(d, model)] for d in datasets if (d, model) in results
        }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())
