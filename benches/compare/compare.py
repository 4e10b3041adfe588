"""Side by side: LanceDB hybrid, tantivy-py BM25 and hnswlib ANN against Dartmouth on the same
chunks, vectors and queries (the corpus `bench query` writes; see benches/src/bin/bench/corpus.rs).

Dartmouth's figures come from `bench query --json` run in the same invocation (run.sh); this
script builds and times the other three on the same machine, then prints ours/theirs ratios
against the targets of issue 6. Every system answers one query at a time, k = 10, and returns
the stored text of its hits (Dartmouth returns full hits with text, attributes and ranks).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

# LanceDB logs a deprecation warning per hybrid query otherwise.
os.environ.setdefault("LANCEDB_LOG", "error")


def load(corpus):
    meta = json.load(open(os.path.join(corpus, "meta.json")))
    n, dim = meta["chunks"], meta["dim"]
    chunks = [json.loads(line) for line in open(os.path.join(corpus, "chunks.jsonl"))]
    vectors = np.fromfile(os.path.join(corpus, "vectors.f32"), dtype="<f4").reshape(n, dim)
    queries = [json.loads(line)["text"] for line in open(os.path.join(corpus, "queries.jsonl"))]
    qvec = np.fromfile(os.path.join(corpus, "query_vectors.f32"), dtype="<f4").reshape(-1, dim)
    assert len(chunks) == n and len(queries) == len(qvec), "corpus files disagree"
    return meta, chunks, vectors, queries, qvec


def pct(lat, p):
    lat = sorted(lat)
    return lat[round((len(lat) - 1) * p)] * 1e3


def timed(fn, items):
    lat = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        lat.append(time.perf_counter() - t)
    return {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}


def tantivy_bm25(chunks, queries, workdir):
    import tantivy

    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    sb.add_text_field("title", stored=True, tokenizer_name="en_stem")
    sb.add_text_field("text", stored=True, tokenizer_name="en_stem")
    schema = sb.build()
    path = os.path.join(workdir, "tantivy")
    os.makedirs(path)
    index = tantivy.Index(schema, path=path)
    t = time.perf_counter()
    writer = index.writer(heap_size=256_000_000, num_threads=2)
    for c in chunks:
        writer.add_document(tantivy.Document(id=c["id"], title=c["title"], text=c["text"]))
    writer.commit()
    writer.wait_merging_threads()
    build = time.perf_counter() - t
    index.reload()
    searcher = index.searcher()

    def run(q):
        query, _errors = index.parse_query_lenient(q, ["title", "text"])
        for _score, addr in searcher.search(query, 10).hits:
            searcher.doc(addr)

    return {"build_s": build, **timed(run, queries)}


def lancedb_hybrid(chunks, vectors, queries, qvec, workdir):
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(os.path.join(workdir, "lancedb"))
    n, dim = vectors.shape
    table = pa.table(
        {
            "id": [c["id"] for c in chunks],
            "text": [c["title"] + "\n" + c["text"] for c in chunks],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        }
    )
    t = time.perf_counter()
    tbl = db.create_table("bench", data=table)
    # The vector index LanceDB recommends for recall at this size, and its native English FTS.
    tbl.create_index(metric="cosine", index_type="IVF_HNSW_SQ", vector_column_name="vector")
    tbl.create_fts_index("text", language="English", stem=True, remove_stop_words=True)
    build = time.perf_counter() - t

    def run(i):
        (
            tbl.search(query_type="hybrid")
            .vector(qvec[i])
            .text(queries[i])
            .limit(10)
            .select(["id", "text"])
            .to_arrow()
        )

    return {"build_s": build, **timed(run, range(len(queries)))}


def tenth_best(vectors, qvec):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = qvec / np.linalg.norm(qvec, axis=1, keepdims=True)
    sims = q @ unit.T
    return np.sort(np.partition(-sims, 9, axis=1)[:, :10], axis=1)[:, 9] * -1, unit, q


def hnswlib_ann(vectors, qvec, efs, probes):
    import hnswlib

    n, dim = vectors.shape
    tenth, unit, q = tenth_best(vectors, qvec[:probes])
    index = hnswlib.Index(space="cosine", dim=dim)
    # The same graph parameters as Dartmouth (M 24, ef_construction 100).
    index.init_index(max_elements=n, ef_construction=100, M=24, random_seed=1)
    t = time.perf_counter()
    index.add_items(vectors, np.arange(n), num_threads=2)
    build = time.perf_counter() - t
    index.set_num_threads(1)
    sweep = []
    for ef in efs:
        index.set_ef(max(ef, 10))
        found = 0
        t = time.perf_counter()
        for i in range(probes):
            labels, _ = index.knn_query(qvec[i : i + 1], k=10)
            found += int(np.sum(unit[labels[0]] @ q[i] >= tenth[i] - 1e-4))
        secs = time.perf_counter() - t
        sweep.append({"ef": ef, "recall_at_10": found / (probes * 10), "qps": probes / secs})
    return {"build_s": build, "sweep": sweep}


def at_recall(sweep, target):
    ok = [s for s in sweep if s["recall_at_10"] >= target]
    return max(ok, key=lambda s: s["qps"]) if ok else None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True, help="a corpus directory written by `bench query`")
    ap.add_argument("--ours", required=True, help="the JSON `bench query --json` wrote")
    ap.add_argument("--out", help="write the whole comparison here as JSON")
    ap.add_argument("--efs", default="16,32,64,96,128,256")
    ap.add_argument("--recall", type=float, default=0.95)
    args = ap.parse_args()

    meta, chunks, vectors, queries, qvec = load(args.corpus)
    ours = json.load(open(args.ours))
    if ours["chunks"] != meta["chunks"]:
        sys.exit(f"{args.ours} was measured on {ours['chunks']} chunks, the corpus has {meta['chunks']}")
    nq = ours["modes"]["bm25"]["queries"]
    queries, qvec = queries[:nq], qvec[:nq]
    probes = min(nq, 300)
    efs = [int(e) for e in args.efs.split(",")]
    workdir = tempfile.mkdtemp(prefix="dk-compare-")
    try:
        print(f"{meta['chunks']} chunks, {nq} queries, model {meta['model']}", file=sys.stderr)
        theirs = {}
        print("tantivy-py BM25 ...", file=sys.stderr)
        theirs["tantivy"] = tantivy_bm25(chunks, queries, workdir)
        print("hnswlib ANN ...", file=sys.stderr)
        theirs["hnswlib"] = hnswlib_ann(vectors, qvec, efs, probes)
        print("LanceDB hybrid ...", file=sys.stderr)
        theirs["lancedb"] = lancedb_hybrid(chunks, vectors, queries, qvec, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ours_ann = at_recall(ours["ann"], args.recall)
    their_ann = at_recall(theirs["hnswlib"]["sweep"], args.recall)
    rows = [
        ("hybrid p50 ms", ours["modes"]["hybrid"]["p50_ms"], "LanceDB", theirs["lancedb"]["p50_ms"], "<= 0.5"),
        ("bm25 p50 ms", ours["modes"]["bm25"]["p50_ms"], "tantivy-py", theirs["tantivy"]["p50_ms"], "<= 1.2"),
        (
            f"ANN QPS at recall@10 >= {args.recall}",
            ours_ann["qps"] if ours_ann else float("nan"),
            "hnswlib",
            their_ann["qps"] if their_ann else float("nan"),
            ">= 0.5",
        ),
    ]
    print(f"\n| measure | Dartmouth | other | other's | ours/theirs | target |")
    print("|---|---:|---|---:|---:|---|")
    verdicts = []
    for name, o, who, t, target in rows:
        ratio = o / t
        op, bound = target.split()
        ok = ratio <= float(bound) if op == "<=" else ratio >= float(bound)
        verdicts.append(ok)
        print(f"| {name} | {o:.3f} | {who} | {t:.3f} | {ratio:.2f} | {target} {'met' if ok else 'MISSED'} |")
    print(
        f"\nANN operating points: Dartmouth ef {ours_ann and ours_ann['ef']} "
        f"(recall {ours_ann and round(ours_ann['recall_at_10'], 4)}), hnswlib ef {their_ann and their_ann['ef']} "
        f"(recall {their_ann and round(their_ann['recall_at_10'], 4)})"
    )
    for s in ours["ann"]:
        print(f"  dartmouth ef {s['ef']}: recall {s['recall_at_10']:.4f} {s['qps']:.0f} QPS")
    for s in theirs["hnswlib"]["sweep"]:
        print(f"  hnswlib   ef {s['ef']}: recall {s['recall_at_10']:.4f} {s['qps']:.0f} QPS")
    print(
        f"p99 ms: hybrid {ours['modes']['hybrid']['p99_ms']:.3f} vs LanceDB {theirs['lancedb']['p99_ms']:.3f}; "
        f"bm25 {ours['modes']['bm25']['p99_ms']:.3f} vs tantivy-py {theirs['tantivy']['p99_ms']:.3f}"
    )
    if args.out:
        json.dump({"ours": ours, "theirs": theirs}, open(args.out, "w"), indent=2)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
