import sys, json, numpy as np
sys.path.insert(0, "/work/study28")
import embed
rows = [json.loads(l) for l in open(sys.argv[1])]
tok, sess = embed.load()
np.save(sys.argv[2], embed.embed([r["text"] for r in rows], tok, sess))
