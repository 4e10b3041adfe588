#!/usr/bin/env python3
"""Consistency check for the catalog judged query set (stdlib only).

Re-reads the Shopify CSV export and verifies that
  * every query in queries.jsonl is well formed and has at least one grade-3 judgment,
  * every judged handle exists in the CSV,
  * for every constrained query (an explicit `filter` field, or a constraint expression
    listed in TEXT_CONSTRAINTS for natural-language constrained queries), every judged
    product has at least one variant that satisfies the whole expression.

Filter semantics follow the engine spec: variant fields (price, compare_at_price, sku,
in_stock, on_sale, size, color, finish, material, option.<name>) are evaluated on one
variant at a time; a product matches when one variant makes the whole expression true.
Product fields: vendor, product_type, tags, handle.

Usage: python3 build_check.py [--csv PATH] [--dir DIR] [--list QUERY_ID]
"""
import argparse
import collections
import csv
import json
import os
import re
import sys

DEFAULT_CSV = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "../../../shared/datasets/shopify/csv/products_export_life_made_magic.csv",
)
HERE = os.path.dirname(os.path.abspath(__file__))

# Constraints of the kind-c queries (constraints carried by the query text), written
# in the engine's filter syntax. Keys are query ids.
TEXT_CONSTRAINTS = {
    "c38": 'color = "light pink" AND size = "M" AND price < 50',   # light pink sweatshirt in size M under $50
    "c39": 'size = "XL" AND price < 30',                           # taylor swift t-shirt in XL under $30
    "c40": 'price < 25',                                           # harry styles mug under $25
    "c41": 'color = "black" AND size = "S" AND in_stock = true',   # black crop hoodie size S in stock
    "c42": 'color = "pink" AND size = "6M" AND in_stock = true',   # pink baby bodysuit 6 months available now
    "c43": 'price < 5',                                            # lilo and stitch sticker under $5
    "c44": 'price < 16',                                           # face mask under 16 dollars
    "c45": 'size = "4XL"',                                         # kpop sweatshirt in 4XL
    "c46": 'price >= 20 AND price <= 30',                          # tote bag between 20 and 30 dollars
    "c47": 'size = "2XL" AND in_stock = true',                     # taylor swift hoodie in 2XL in stock
    "c48": 'color = "white" AND size = "3XL"',                     # white tee in size 3XL
    "c49": 'price < 15',                                           # harry styles gift less than $15
    "c50": 'color = "maroon" AND size = "L"',                      # maroon hoodie size L
    "c51": 'price < 15 AND in_stock = true',                       # poster under $15 that's available now
    "c52": 'color = "gold" AND size = "XL"',                       # gold sweatshirt in XL
    "c53": 'in_stock = true',                                      # gilmore girls hoodie in stock
}

# ---------------------------------------------------------------- catalog loading

SIZE_WORDS = {
    "small": "S", "medium": "M", "large": "L",
    "x-large": "XL", "extra large": "XL", "xx-large": "2XL", "xxx-large": "3XL",
}


def norm_size(v):
    s = v.strip().lower()
    return SIZE_WORDS.get(s, s).lower()


def option_key(name):
    """Raw option name -> `option.<name>` key (lowercase, non-alphanumerics -> _)."""
    return "option." + re.sub(r"[^0-9a-z]", "_", name.strip().lower())


def canonical(name):
    """Canonical field for an option name, or None."""
    n = re.sub(r"\([^)]*\)", "", name).strip().lower()
    if n.endswith("size") or n.endswith("sizes"):
        return "size"
    if n in ("color", "colors", "colour", "colours", "base color"):
        return "color"
    if n == "surface":
        return "finish"
    if n == "material":
        return "material"
    return None


def to_float(s):
    s = (s or "").strip()
    return float(s) if s else None


def load_catalog(path):
    products = collections.OrderedDict()
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            h = row["Handle"]
            if h not in products:
                products[h] = {
                    "handle": h,
                    "title": row["Title"],
                    "vendor": row["Vendor"],
                    "product_type": row["Type"],
                    "tags": [t.strip() for t in row["Tags"].split(",") if t.strip()],
                    "option_names": [row["Option%d Name" % i] for i in (1, 2, 3)],
                    "variants": [],
                }
            p = products[h]
            if not row["Variant Price"].strip():
                continue  # image row
            price = to_float(row["Variant Price"])
            cap = to_float(row["Variant Compare At Price"])
            tracker = row["Variant Inventory Tracker"].strip()
            policy = row["Variant Inventory Policy"].strip().lower()
            qty = int(float(row["Variant Inventory Qty"] or 0))
            in_stock = (not tracker) or policy == "continue" or qty > 0
            v = {
                "price": price,
                "compare_at_price": cap,
                "sku": row["Variant SKU"],
                "in_stock": in_stock,
                "on_sale": cap is not None and cap > price,
            }
            for i in (1, 2, 3):
                name = p["option_names"][i - 1]
                val = row["Option%d Value" % i]
                if not name or not val:
                    continue
                v[option_key(name)] = val
                c = canonical(name)
                if c and c not in v:
                    v[c] = val
            p["variants"].append(v)
    return products

# ---------------------------------------------------------------- filter language

TOKEN = re.compile(r'\s*(?:(\()|(\))|(,)|("(?:[^"\\]|\\.)*")|(<=|>=|!=|=|<|>)|'
                   r'(-?\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_.]*))')


def tokenize(s):
    pos, out = 0, []
    s = s.strip()
    while pos < len(s):
        m = TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError("cannot tokenize at %r" % s[pos:])
        pos = m.end()
        lp, rp, comma, string, op, num, word = m.groups()
        if lp: out.append(("(", "("))
        elif rp: out.append((")", ")"))
        elif comma: out.append((",", ","))
        elif string is not None: out.append(("str", string[1:-1].replace('\\"', '"')))
        elif op: out.append(("op", op))
        elif num: out.append(("num", float(num)))
        else:
            up = word.upper()
            if up in ("AND", "OR", "NOT", "IN"):
                out.append((up, up))
            elif word in ("true", "false"):
                out.append(("bool", word == "true"))
            else:
                out.append(("field", word))
    return out


class Parser:
    def __init__(self, text):
        self.t = tokenize(text)
        self.i = 0

    def peek(self):
        return self.t[self.i][0] if self.i < len(self.t) else None

    def take(self, kind=None):
        tok = self.t[self.i]
        if kind and tok[0] != kind:
            raise ValueError("expected %s, got %r" % (kind, tok))
        self.i += 1
        return tok

    def parse(self):
        e = self.or_()
        if self.i != len(self.t):
            raise ValueError("trailing tokens: %r" % self.t[self.i:])
        return e

    def or_(self):
        e = self.and_()
        while self.peek() == "OR":
            self.take()
            e = ("or", e, self.and_())
        return e

    def and_(self):
        e = self.not_()
        while self.peek() == "AND":
            self.take()
            e = ("and", e, self.not_())
        return e

    def not_(self):
        if self.peek() == "NOT":
            self.take()
            return ("not", self.not_())
        if self.peek() == "(":
            self.take()
            e = self.or_()
            self.take(")")
            return e
        return self.cmp()

    def value(self):
        kind, v = self.take()
        if kind not in ("str", "num", "bool"):
            raise ValueError("expected a value, got %r" % v)
        return v

    def cmp(self):
        field = self.take("field")[1]
        if self.peek() == "IN":
            self.take()
            self.take("(")
            vals = [self.value()]
            while self.peek() == ",":
                self.take()
                vals.append(self.value())
            self.take(")")
            return ("in", field, vals)
        op = self.take("op")[1]
        return ("cmp", field, op, self.value())


PRODUCT_FIELDS = ("vendor", "product_type", "tags", "handle")


def fields_of(expr, acc):
    if expr[0] in ("and", "or"):
        fields_of(expr[1], acc); fields_of(expr[2], acc)
    elif expr[0] == "not":
        fields_of(expr[1], acc)
    else:
        acc.add(expr[1])
    return acc


def eq(field, a, b):
    if isinstance(b, bool) or isinstance(a, bool):
        return a is b
    if isinstance(b, float):
        return a is not None and not isinstance(a, str) and abs(a - b) < 1e-9
    if a is None:
        return False
    a = str(a)
    if field == "size":
        return norm_size(a) == norm_size(b)
    return a.strip().lower() == b.strip().lower()


def atom(field, product, variant):
    if field in PRODUCT_FIELDS:
        return product["tags"] if field == "tags" else product[field]
    return variant.get(field)


def evaluate(expr, product, variant):
    k = expr[0]
    if k == "and":
        return evaluate(expr[1], product, variant) and evaluate(expr[2], product, variant)
    if k == "or":
        return evaluate(expr[1], product, variant) or evaluate(expr[2], product, variant)
    if k == "not":
        return not evaluate(expr[1], product, variant)
    field = expr[1]
    val = atom(field, product, variant)
    if k == "in":
        vals = expr[2]
        if isinstance(val, list):
            return any(eq(field, x, y) for x in val for y in vals)
        return any(eq(field, val, y) for y in vals)
    op, ref = expr[2], expr[3]
    if op in ("=", "!="):
        hit = any(eq(field, x, ref) for x in val) if isinstance(val, list) else eq(field, val, ref)
        return hit if op == "=" else not hit
    if val is None or isinstance(val, (str, list, bool)):
        return False
    return {"<": val < ref, "<=": val <= ref, ">": val > ref, ">=": val >= ref}[op]


def matches(expr, product):
    """Product matches when ONE variant satisfies the whole expression."""
    return any(evaluate(expr, product, v) for v in product["variants"])


def parse(text):
    return Parser(text).parse()

# ---------------------------------------------------------------- checks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", default=DEFAULT_CSV)
    ap.add_argument("--dir", default=HERE)
    ap.add_argument("--list", help="print the handles matching a query's constraints")
    args = ap.parse_args()

    catalog = load_catalog(args.csv)
    queries = collections.OrderedDict()
    with open(os.path.join(args.dir, "queries.jsonl"), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                q = json.loads(line)
                assert set(q) <= {"_id", "text", "filter"}, "line %d: unexpected keys" % n
                assert q["_id"] not in queries, "duplicate query id %s" % q["_id"]
                queries[q["_id"]] = q

    constraints = {}
    for qid, q in queries.items():
        if "filter" in q:
            assert qid not in TEXT_CONSTRAINTS, "%s has both a filter and text constraints" % qid
            constraints[qid] = q["filter"]
        elif qid in TEXT_CONSTRAINTS:
            constraints[qid] = TEXT_CONSTRAINTS[qid]
    for qid in TEXT_CONSTRAINTS:
        assert qid in queries, "TEXT_CONSTRAINTS names unknown query %s" % qid
    parsed = {qid: parse(f) for qid, f in constraints.items()}
    known = set(PRODUCT_FIELDS) | {"price", "compare_at_price", "sku", "in_stock", "on_sale",
                                   "size", "color", "finish", "material"}
    for qid, e in parsed.items():
        for fld in fields_of(e, set()):
            assert fld in known or fld.startswith("option."), "%s: unknown field %s" % (qid, fld)

    if args.list:
        e = parsed[args.list]
        for h, p in catalog.items():
            if matches(e, p):
                print(h, "|", p["title"])
        return 0

    judged = collections.defaultdict(dict)
    errors = []
    with open(os.path.join(args.dir, "qrels", "test.tsv"), encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
        assert header == "query-id\tcorpus-id\tscore", "bad header %r" % header
        for n, line in enumerate(f, 2):
            cols = line.rstrip("\n").split("\t")
            if len(cols) != 3:
                errors.append("qrels line %d: expected 3 columns" % n)
                continue
            qid, h, s = cols
            if qid not in queries:
                errors.append("qrels line %d: unknown query %s" % (n, qid))
            if h not in catalog:
                errors.append("qrels line %d: unknown handle %s" % (n, h))
                continue
            if s not in ("1", "2", "3"):
                errors.append("qrels line %d: grade %s not in 1..3" % (n, s))
            if h in judged[qid]:
                errors.append("qrels line %d: duplicate pair %s %s" % (n, qid, h))
            judged[qid][h] = int(s)
            if qid in parsed and not matches(parsed[qid], catalog[h]):
                errors.append("%s: %s has no variant satisfying %s" % (qid, h, constraints[qid]))

    for qid in queries:
        if not judged.get(qid):
            errors.append("%s: no judgments" % qid)
        elif 3 not in judged[qid].values():
            errors.append("%s: no grade-3 product" % qid)

    kinds = collections.Counter(
        "b" if "filter" in q else ("c" if qid in TEXT_CONSTRAINTS else "a") for qid, q in queries.items())
    grades = collections.Counter(s for d in judged.values() for s in d.values())
    pairs = sum(len(d) for d in judged.values())
    print("products: %d, variants: %d" % (len(catalog), sum(len(p["variants"]) for p in catalog.values())))
    print("queries: %d (plain %d, filter %d, text-constrained %d)" % (
        len(queries), kinds["a"], kinds["b"], kinds["c"]))
    print("judged pairs: %d; grades: 3=%d 2=%d 1=%d" % (pairs, grades[3], grades[2], grades[1]))
    if errors:
        print("FAILED: %d problem(s)" % len(errors))
        for e in errors:
            print("  " + e)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
