"""A small BM25 over whole documents (title + text) with the engine's analyzer (tantivy
SimpleTokenizer, RemoveLong 40, lowercase, Lucene English stopwords, Snowball English stemmer),
weighted queries (for RM3), and k1/b as parameters."""
import sys, json, re, math, numpy as np
from collections import Counter, defaultdict
sys.path.insert(0, "/work/study28/pylib")
import snowballstemmer
STOP = set("a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with".split())
_stem = snowballstemmer.stemmer("english")
_tok = re.compile(r"[^\W_]+", re.UNICODE)
_cache = {}

def analyze(text):
    out = []
    for t in _tok.findall(text):
        if len(t.encode()) >= 40: continue
        t = t.lower()
        if t in STOP: continue
        s = _cache.get(t)
        if s is None: s = _cache[t] = _stem.stemWord(t)
        out.append(s)
    return out

class BM25:
    def __init__(self, dataset):
        rows = [json.loads(l) for l in open(f"/work/shared/datasets/ir/{dataset}/corpus.jsonl")]
        rows = [r for r in rows if (r.get("title") or "").strip() or (r.get("text") or "").strip()]
        self.docs = [r["_id"] for r in rows]; self.di = {d: i for i, d in enumerate(self.docs)}
        post = defaultdict(lambda: ([], []))
        self.tfs = []
        dl = []
        for i, r in enumerate(rows):
            toks = analyze((r.get("title") or "") + " " + (r.get("text") or ""))
            c = Counter(toks); self.tfs.append(c); dl.append(len(toks))
            for t, n in c.items():
                p = post[t]; p[0].append(i); p[1].append(n)
        self.post = {t: (np.array(a), np.array(b, np.float32)) for t, (a, b) in post.items()}
        self.dl = np.array(dl, np.float32); self.N = len(rows); self.avgdl = self.dl.mean()

    def idf(self, t):
        n = len(self.post[t][0]); return math.log(1 + (self.N - n + 0.5) / (n + 0.5))

    def score(self, qweights, k1=1.2, b=0.75):
        """qweights: {stemmed term: weight}. Returns score array over docs."""
        s = np.zeros(self.N, np.float32)
        norm = k1 * (1 - b + b * self.dl / self.avgdl)
        for t, w in qweights.items():
            if t not in self.post: continue
            idx, tf = self.post[t]
            s[idx] += w * self.idf(t) * tf * (k1 + 1) / (tf + norm[idx])
        return s

    def query_terms(self, text):
        return dict(Counter(analyze(text)))

    def top(self, s, k):
        nz = np.nonzero(s)[0]
        if len(nz) == 0: return []
        idx = nz[np.argsort(-s[nz], kind="stable")][:k]
        return [(self.docs[i], float(s[i])) for i in idx]

    def rm3_terms(self, fb_docs, fb_weights, n_terms):
        """Relevance model: P(t|R) = sum_d w_d * tf(t,d)/|d|, top n_terms (normalised to sum 1)."""
        acc = Counter()
        for d, w in zip(fb_docs, fb_weights):
            i = self.di[d]; L = max(self.dl[i], 1)
            for t, n in self.tfs[i].items(): acc[t] += w * n / L
        top = acc.most_common(n_terms); z = sum(v for _, v in top) or 1.0
        return {t: v / z for t, v in top}
