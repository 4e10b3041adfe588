"""A linear fusion over several query-time signals, weights learned on SciFact train
(pairwise logistic, then coordinate ascent on nDCG@10); scored on test."""
import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
from common import *
from study2 import z_of, zfuse
from data import Coll

K = 100
FEATS = ["zb", "zv", "zn", "zp", "inb", "inv", "lrb", "lrv", "cosgap", "bmratio", "meangap", "zbzv", "zw"]

def build(ds, split, noprefix=True, prf=(5, 0.5), wholedoc=False):
    C = Coll(ds, split)
    if wholedoc:
        W = np.load(f"/work/study28/work/{ds}.wholedoc.npy"); wids = json.load(open(f"/work/study28/work/{ds}.wholedoc.npy.ids.json"))
    Qnp = np.load(f"/work/study28/work/{ds}.{split}.qnp.npy") if noprefix else None
    data = {}
    for q in C.qrels:
        if q not in C.qi: continue
        i = C.qi[q]; qv = C.Q[i]
        bm = C.bm.get(q, [])[:K]; ve = C.ve.get(q, [])[:K]
        chunk = C.V @ qv
        dmax = np.maximum.reduceat(chunk, C.starts); dmean = np.add.reduceat(chunk, C.starts) / C.nchunks
        base = zfuse([bm, ve], [1, 1.2])
        lists = {"zb": bm, "zv": ve}
        if noprefix:
            lists["zn"] = C.topk(C.dense_max(Qnp[i]), K)
        fb, a = prf
        c = C.Dmean[[C.di[d] for d in base[:fb]]].mean(0); qp = qv + a * c; qp /= np.linalg.norm(qp)
        lists["zp"] = C.topk(C.dense_max(qp), K)
        if wholedoc:
            sw = W @ qv; top = np.argsort(-sw)[:K]
            lists["zw"] = [(wids[t], float(sw[t])) for t in top]
        zs = {n: z_of(l) if l else ({}, 0.0) for n, l in lists.items()}
        cands = sorted(set().union(*[set(z) for z, _ in zs.values()]))
        rb = {d: r for r, (d, _) in enumerate(bm)}; rv = {d: r for r, (d, _) in enumerate(ve)}
        bmd = dict(bm); top_bm = bm[0][1] if bm else 1.0; top_cos = ve[0][1] if ve else dmax.max()
        X = np.zeros((len(cands), len(FEATS)), np.float32)
        for j, d in enumerate(cands):
            f = {}
            for n, (z, low) in zs.items(): f[n] = z.get(d, low)
            f["inb"] = float(d in rb); f["inv"] = float(d in rv)
            f["lrb"] = np.log1p(rb.get(d, K)); f["lrv"] = np.log1p(rv.get(d, K))
            di = C.di[d]; f["cosgap"] = dmax[di] - top_cos
            f["bmratio"] = bmd.get(d, 0.0) / top_bm if top_bm else 0.0
            f["meangap"] = dmean[di] - dmax[di]
            f["zbzv"] = f["zb"] * f["zv"]
            X[j] = [f.get(n, 0.0) for n in FEATS]
        y = np.array([C.qrels[q].get(d, 0) for d in cands], np.float32)
        data[q] = (cands, X, y)
    return C, data

def ndcg_w(C, data, w, mask=None):
    vals = []
    for q in C.qrels:
        if q not in data: vals.append(0.0); continue
        cands, X, y = data[q]
        s = X @ (w * mask if mask is not None else w)
        order = np.lexsort((np.array(cands), -s))
        vals.append(ndcg10([cands[i] for i in order[:10]], C.qrels[q]))
    return float(np.mean(vals))

def fit_pairwise(data, mask, l2=1e-3, iters=300, lr=0.5):
    P = []
    for q, (cands, X, y) in data.items():
        pos = np.where(y > 0)[0]; neg = np.where(y == 0)[0]
        if len(pos) == 0 or len(neg) == 0: continue
        for p in pos:
            P.append(X[p] - X[neg])
    D = np.concatenate(P) * mask
    mu = np.abs(D).mean(0) + 1e-6
    w = np.zeros(D.shape[1]); w[FEATS.index("zb")] = 1; w[FEATS.index("zv")] = 1.2
    w *= mask
    for it in range(iters):
        m = D @ w; g = -(D * (1 / (1 + np.exp(m)))[:, None]).mean(0) + l2 * w
        w -= lr * g * mask
    return w

def coord_ascent(C, data, w, mask, steps=(0.5, 0.25, 0.1), rounds=2):
    best = ndcg_w(C, data, w, mask)
    for r in range(rounds):
        for st in steps:
            for f in range(len(w)):
                if not mask[f]: continue
                for delta in (st, -st):
                    w2 = w.copy(); w2[f] += delta * max(abs(w[f]), 0.2)
                    v = ndcg_w(C, data, w2, mask)
                    if v > best + 1e-5: best, w = v, w2
    return w, best

if __name__ == "__main__":
    Ctr, tr = build("scifact", "train"); Cte, te = build("scifact", "test")
    print("built", flush=True)
    sets = {
        "zb+zv (baseline weights)": ["zb", "zv"],
        "zb,zv,zn": ["zb", "zv", "zn"],
        "zb,zv,zp": ["zb", "zv", "zp"],
        "zb,zv,zn,zp": ["zb", "zv", "zn", "zp"],
        "all": FEATS,
    }
    out = {}
    for name, fs in sets.items():
        mask = np.array([f in fs for f in FEATS], float)
        if name.startswith("zb+zv"):
            w = np.zeros(len(FEATS)); w[0] = 1; w[1] = 1.2
            out[name] = (ndcg_w(Ctr, tr, w), ndcg_w(Cte, te, w), w.tolist()); print(name, out[name][:2], flush=True); continue
        w = fit_pairwise(tr, mask)
        a = (ndcg_w(Ctr, tr, w, mask), ndcg_w(Cte, te, w, mask))
        print(name, "pairwise", a, np.round(w, 3).tolist(), flush=True)
        w2, b = coord_ascent(Ctr, tr, w, mask)
        c = (b, ndcg_w(Cte, te, w2, mask))
        print(name, "pairwise+CA", c, np.round(w2, 3).tolist(), flush=True)
        out[name] = {"pairwise": (a, w.tolist()), "ca": (c, w2.tolist())}
    json.dump({"feats": FEATS, "res": out}, open("ltr.json", "w"), indent=1)
