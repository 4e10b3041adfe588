#!/usr/bin/env python3
"""The model catalogue (engine/models.toml) for scripts/setup-model.sh: stdlib only.

  catalogue.py ids                      every model id, one a line
  catalogue.py files ID                 the file names model ID uses, one a line
  catalogue.py check DIR ID [ID ...]    each model's files in DIR/<id>/ against their sha256
"""
from __future__ import annotations

import hashlib
import os
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load() -> list[dict]:
    with open(os.path.join(ROOT, "engine", "models.toml"), "rb") as f:
        return tomllib.load(f)["model"]


def card(model_id: str) -> dict:
    for c in load():
        if c["id"] == model_id:
            return c
    sys.exit(f"catalogue: no model `{model_id}` in engine/models.toml")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(models_dir: str, ids: list[str]) -> int:
    bad = 0
    for model_id in ids:
        for name, expected in card(model_id)["files"].items():
            path = os.path.join(models_dir, model_id, name)
            if not os.path.isfile(path):
                print(f"catalogue: {path} is missing", file=sys.stderr)
                bad += 1
                continue
            got = sha256(path)
            if got != expected:
                print(f"catalogue: {path} has sha256 {got}, engine/models.toml says {expected}",
                      file=sys.stderr)
                bad += 1
    return 1 if bad else 0


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["ids"]:
        print("\n".join(c["id"] for c in load()))
    elif args[:1] == ["files"] and len(args) == 2:
        print("\n".join(card(args[1])["files"]))
    elif args[:1] == ["check"] and len(args) >= 3:
        sys.exit(check(args[1], args[2:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
