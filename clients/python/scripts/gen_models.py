#!/usr/bin/env python3
"""Generate ``dartmouth_knowledge/models.py`` (TypedDicts) from the server's OpenAPI document.

    python clients/python/scripts/gen_models.py http://127.0.0.1:8787/openapi.json
    python clients/python/scripts/gen_models.py <(dartmouth openapi)
    python clients/python/scripts/gen_models.py openapi.json [OUT] [--check]

The source is a URL (a running ``dartmouth serve``; ``/openapi.json`` needs no key) or a file.
OUT defaults to ``dartmouth_knowledge/models.py`` beside this script.
Only the standard library is used, so any Python 3.10+ runs it.

What it writes:

* every component schema: an object as a ``TypedDict`` (a property outside ``required`` is
  ``NotRequired``; descriptions become docstrings), an enum as a ``Literal``, anything else as
  a type alias;
* for every operation of ``dartmouth_knowledge/_routes.py`` (the client's table of routes, by
  stable name): ``<Op>Request`` (the JSON request body), ``<Op>Query`` (the query parameters)
  and ``<Op>Response`` (the JSON answer of the first 2xx status; another 2xx status with its
  own body is ``<Op>Response<status>``). The client's methods are annotated with these names,
  so a regeneration changes the types without touching the client. An operation the document
  lacks gets ``Any`` types and a warning; a route of the document the table lacks is warned
  about too.

``--check`` writes nothing and exits 1 when the file on disk differs from what would be
written (for CI, against a document saved beside it).
"""

from __future__ import annotations

import argparse
import difflib
import json
import keyword
import re
import sys
import textwrap
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent / "dartmouth_knowledge"
OUT = PACKAGE / "models.py"

SUCCESS = ("200", "201", "202", "203", "204", "2XX", "2xx")


def load_routes() -> tuple[dict[str, tuple[str, str]], tuple[str, ...]]:
    """The client's route table, read from the package source without importing the package."""
    namespace: dict[str, Any] = {}
    source = (PACKAGE / "_routes.py").read_text(encoding="utf-8")
    exec(compile(source, str(PACKAGE / "_routes.py"), "exec"), namespace)  # noqa: S102
    return namespace["ROUTES"], namespace["NOT_COVERED"]


def load_document(source: str) -> dict[str, Any]:
    if re.match(r"^https?://", source):
        with urllib.request.urlopen(source, timeout=30) as answer:  # noqa: S310
            return json.loads(answer.read().decode("utf-8"))
    return json.loads(Path(source).read_text(encoding="utf-8"))


def pascal(text: str) -> str:
    words = re.split(r"[^0-9A-Za-z]+|(?<=[a-z0-9])(?=[A-Z])", text)
    name = "".join(w[:1].upper() + w[1:] for w in words if w)
    if not name or name[0].isdigit():
        name = "T" + name
    return name


def docstring(text: str, indent: str) -> str:
    text = text.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text += " "
    width = max(40, 96 - len(indent))
    lines = [
        line
        for paragraph in text.splitlines()
        for line in (textwrap.wrap(paragraph, width, break_on_hyphens=False, break_long_words=False) or [""])
    ] or [""]
    if len(lines) == 1:
        return f'{indent}"""{lines[0]}"""\n'
    body = "\n".join((indent + line) if line.strip() else "" for line in lines[1:])
    return f'{indent}"""{lines[0]}\n{body}\n{indent}"""\n'


@dataclass
class Field:
    key: str
    type: str
    required: bool
    description: str


@dataclass
class Definition:
    """One top-level name of the generated module."""

    name: str
    kind: str  # "class" | "alias"
    description: str = ""
    fields: list[Field] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)
    expr: str = ""  # an alias's type expression

    def functional(self) -> bool:
        """A TypedDict whose keys are not all identifiers takes the functional syntax."""
        return any(not f.key.isidentifier() or keyword.iskeyword(f.key) for f in self.fields)


class Generator:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {}) or {}
        self.defs: dict[str, Definition] = {}
        self.ref_names: dict[str, str] = {}
        self.warnings: list[str] = []
        for raw in self.schemas:
            self.ref_names[raw] = self.unique(pascal(raw), reserve=True)

    # --- names -------------------------------------------------------------------------
    _reserved: set[str] = {"Any", "Literal", "NotRequired", "TypedDict", "TypeAlias", "Union"}

    def unique(self, base: str, reserve: bool = False) -> str:
        name, n = base, 2
        taken = self._reserved | set(self.defs) | set(self.ref_names.values())
        while name in taken:
            name, n = f"{base}{n}", n + 1
        if reserve:
            self._reserved = self._reserved | {name}
        return name

    # --- schemas -----------------------------------------------------------------------
    def resolve(self, schema: Any) -> Any:
        while isinstance(schema, dict) and "$ref" in schema:
            schema = self.lookup(schema["$ref"])
        return schema

    def lookup(self, ref: str) -> Any:
        node: Any = self.doc
        for part in ref.lstrip("#/").split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
        return node

    def ref_type(self, ref: str) -> str:
        """A component's name (defined on first use); anything else referred to, inline."""
        prefix = "#/components/schemas/"
        raw = ref[len(prefix):].replace("~1", "/").replace("~0", "~") if ref.startswith(prefix) else None
        if raw is not None and raw in self.ref_names:
            name = self.ref_names[raw]
            if name not in self.defs:
                self.define(name, self.schemas[raw])
            return name
        return self.type_of(self.lookup(ref), pascal(ref.rsplit("/", 1)[-1]))

    def type_of(self, schema: Any, hint: str) -> str:
        """A type expression for `schema`; an inline object becomes a class named after `hint`."""
        if schema is True or schema is None or schema == {}:
            return "Any"
        if schema is False:
            return "None"
        if not isinstance(schema, dict):
            return "Any"
        if "$ref" in schema:
            return self.nullable(self.ref_type(schema["$ref"]), schema)
        if "const" in schema:
            return self.literal([schema["const"]])
        if "enum" in schema:
            return self.literal(schema["enum"])
        for union in ("oneOf", "anyOf"):
            if union in schema:
                parts = [self.type_of(s, f"{hint}{i + 1}") for i, s in enumerate(schema[union])]
                return self.nullable(self.union(parts), schema)
        if "allOf" in schema:
            return self.nullable(self.all_of(schema, hint), schema)
        types = schema.get("type")
        if types is None:
            if "properties" in schema or "additionalProperties" in schema:
                types = "object"
            elif "items" in schema:
                types = "array"
            else:
                return "Any"
        if isinstance(types, str):
            types = [types]
        parts = [self.single(t, schema, hint) for t in types]
        return self.nullable(self.union(parts), schema)

    def nullable(self, expr: str, schema: dict[str, Any]) -> str:
        if schema.get("nullable") is True:
            return self.union([expr, "None"])
        return expr

    def single(self, kind: str, schema: dict[str, Any], hint: str) -> str:
        if kind == "null":
            return "None"
        if kind == "string":
            return "str"
        if kind == "integer":
            return "int"
        if kind == "number":
            return "float"
        if kind == "boolean":
            return "bool"
        if kind == "array":
            items = schema.get("items")
            if items is None and "prefixItems" in schema:
                parts = [self.type_of(s, f"{hint}Item{i + 1}") for i, s in enumerate(schema["prefixItems"])]
                return f"tuple[{', '.join(parts)}]" if parts else "list[Any]"
            return f"list[{self.type_of(items, hint + 'Item')}]"
        if kind == "object":
            if schema.get("properties"):
                return self.object_class(schema, hint)
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                return f"dict[str, {self.type_of(extra, hint + 'Value')}]"
            return "dict[str, Any]"
        return "Any"

    def literal(self, values: list[Any]) -> str:
        kept = [v for v in values if v is not None]
        parts = [f"Literal[{', '.join(repr(v) for v in kept)}]"] if kept else []
        if len(kept) != len(values):
            parts.append("None")
        return self.union(parts) if parts else "None"

    @staticmethod
    def union(parts: list[str]) -> str:
        seen: list[str] = []
        for p in parts:
            for q in split_union(p):
                if q not in seen:
                    seen.append(q)
        if "Any" in seen:
            return "Any"
        if "None" in seen:  # None last
            seen = [p for p in seen if p != "None"] + ["None"]
        return " | ".join(seen) if seen else "Any"

    def all_of(self, schema: dict[str, Any], hint: str, name: str | None = None) -> str:
        parts = schema["allOf"]
        if len(parts) == 1 and not schema.get("properties"):
            return self.type_of(parts[0], hint)
        bases: list[str] = []
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in parts:
            target = self.resolve(part)
            if "$ref" in part and self.defs.get(self.ref_type(part["$ref"]), Definition("", "")).kind == "class":
                bases.append(self.ref_type(part["$ref"]))
            elif isinstance(target, dict):
                merged["properties"].update(target.get("properties", {}))
                merged["required"] += target.get("required", [])
        merged["properties"].update(schema.get("properties", {}))
        merged["required"] += schema.get("required", [])
        merged["description"] = schema.get("description", "")
        return self.object_class(merged, hint, bases=bases, name=name)

    def object_class(self, schema: dict[str, Any], hint: str, bases: list[str] | None = None, name: str | None = None) -> str:
        name = name or self.unique(hint)
        definition = Definition(name=name, kind="class", description=schema.get("description", ""), bases=bases or [])
        self.defs[name] = definition  # before the fields: a property may refer back to it
        required = set(schema.get("required", []))
        for key, sub in (schema.get("properties") or {}).items():
            definition.fields.append(
                Field(
                    key=key,
                    type=self.type_of(sub, name + pascal(key)),
                    required=key in required,
                    description=(sub.get("description", "") if isinstance(sub, dict) else ""),
                )
            )
        return name

    def define(self, name: str, schema: Any, description: str = "") -> None:
        """A named top-level type for `schema`: a class for an object, else an alias."""
        if name in self.defs:
            return
        if isinstance(schema, dict) and "$ref" not in schema and not {"oneOf", "anyOf", "enum", "const"} & set(schema):
            kinds = schema.get("type")
            is_object = kinds == "object" or (kinds is None and "properties" in schema)
            if "allOf" in schema and (len(schema["allOf"]) > 1 or schema.get("properties")):
                self.all_of(schema, name, name=name)
                self.defs[name].description = self.defs[name].description or description
                return
            if is_object and schema.get("properties"):
                self.object_class(schema, name, name=name)
                self.defs[name].description = schema.get("description") or description
                return
        placeholder = Definition(name=name, kind="alias", description=(schema or {}).get("description", "") if isinstance(schema, dict) else "")
        self.defs[name] = placeholder
        placeholder.expr = self.type_of(schema, name)
        placeholder.description = placeholder.description or description

    # --- the document ------------------------------------------------------------------
    def components(self) -> None:
        for raw, schema in self.schemas.items():
            self.define(self.ref_names[raw], schema)

    def operations(self, routes: dict[str, tuple[str, str]], not_covered: tuple[str, ...]) -> None:
        paths: dict[str, Any] = self.doc.get("paths", {}) or {}
        known = {(m.upper(), p) for m, p in routes.values()}
        for path, item in paths.items():
            for method in item:
                if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                    if (method.upper(), path) not in known and path not in not_covered:
                        self.warnings.append(f"{method.upper()} {path}: in the document, not in the client's routes (_routes.py)")
        for op, (method, path) in routes.items():
            base = pascal(op)
            operation = (paths.get(path) or {}).get(method.lower())
            if operation is None:
                self.warnings.append(f"{method} {path} ({op}): not in the document; its types are Any")
                self.define(f"{base}Response", {}, f"`{method} {path}` (not in the document)")
                continue
            summary = operation.get("summary") or operation.get("description") or ""
            doc = f"`{method} {path}`: {summary}" if summary else f"`{method} {path}`"
            body = self.resolve(operation.get("requestBody") or {})
            content = body.get("content", {}) if isinstance(body, dict) else {}
            json_body = next((v for k, v in content.items() if "json" in k and isinstance(v, dict)), None)
            if json_body is not None and "schema" in json_body:
                self.define(f"{base}Request", self.as_object(json_body["schema"]), doc)
            params = [self.resolve(p) for p in operation.get("parameters", []) + (paths[path].get("parameters") or [])]
            query = [p for p in params if isinstance(p, dict) and p.get("in") == "query"]
            if query:
                self.define(
                    f"{base}Query",
                    {
                        "type": "object",
                        "properties": {p["name"]: {**(p.get("schema") or {}), "description": p.get("description", "")} for p in query},
                        "required": [p["name"] for p in query if p.get("required")],
                    },
                    f"The query parameters of {doc}",
                )
            self.responses(base, operation.get("responses", {}) or {}, doc)

    def as_object(self, schema: Any) -> Any:
        """A request body's schema as one object (the client takes its fields as keyword
        arguments): `oneOf`/`anyOf` of objects become one object of all their fields, none
        required."""
        target = self.resolve(schema)
        if not isinstance(target, dict):
            return schema
        variants = target.get("oneOf") or target.get("anyOf")
        if not variants:
            return schema
        merged: dict[str, Any] = {}
        for variant in variants:
            part = self.resolve(variant)
            if isinstance(part, dict) and "allOf" in part:
                for piece in part["allOf"]:
                    merged.update((self.resolve(piece) or {}).get("properties", {}))
            elif isinstance(part, dict):
                merged.update(part.get("properties", {}))
        if not merged:
            return schema
        return {"type": "object", "properties": merged, "description": target.get("description", "")}

    def responses(self, base: str, responses: dict[str, Any], doc: str) -> None:
        first = True
        for status in sorted(k for k in responses if k in SUCCESS):
            answer = self.resolve(responses[status])
            content = answer.get("content") if isinstance(answer, dict) else None
            name = f"{base}Response" if first else f"{base}Response{status}"
            if content:
                media = next((v for k, v in content.items() if "json" in k), None)
                if media is None:  # text or HTML: the client gives the text
                    self.define(name, {"type": "string"}, doc)
                else:
                    self.define(name, media.get("schema", {}), doc)
            elif status == "204":
                self.define(name, {"type": "null"}, doc)
            else:  # no body described
                self.define(name, {}, doc)
            first = False
        if first:
            self.define(f"{base}Response", {}, doc)

    # --- output ------------------------------------------------------------------------
    def render(self) -> str:
        info = self.doc.get("info", {})
        head = (
            "# Generated by clients/python/scripts/gen_models.py from the OpenAPI document of\n"
            f"# {info.get('title', '?')} {info.get('version', '?')} (OpenAPI {self.doc.get('openapi', '?')}).\n"
            "# Do not edit: regenerate with\n"
            "#   python clients/python/scripts/gen_models.py <URL or path of /openapi.json>\n"
            '"""The API\'s request and response shapes, as TypedDicts (generated from the OpenAPI document)."""\n\n'
            "import sys\n"
            "from typing import Any, Literal\n\n"
            "if sys.version_info >= (3, 11):\n"
            "    from typing import NotRequired, TypeAlias, TypedDict\n"
            "else:  # pragma: no cover\n"
            "    from typing_extensions import NotRequired, TypeAlias, TypedDict\n\n"
            "__all__ = [\n"
        )
        names = sorted(self.defs)
        head += "".join(f'    "{n}",\n' for n in names) + "]\n"
        out = [head]
        for d in self.ordered():
            out.append("\n\n" + self.render_one(d))
        return "".join(out).rstrip() + "\n"

    def ordered(self) -> list[Definition]:
        """Classes first (their annotations are lazy), then what runs at import (aliases,
        functional TypedDicts, subclasses), each after the names it evaluates."""
        names = set(self.defs)

        def runtime_deps(d: Definition) -> set[str]:
            if d.kind == "class":
                return set(d.bases)
            text = d.expr
            return {w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if w in names and w != d.name} | set(d.bases)

        plain = sorted((d for d in self.defs.values() if d.kind == "class" and not d.functional() and not d.bases), key=lambda d: d.name)
        rest = sorted((d for d in self.defs.values() if d not in plain), key=lambda d: (d.kind != "class", d.name))
        done = {d.name for d in plain}
        ordered = list(plain)
        pending = list(rest)
        while pending:
            progressed = False
            for d in list(pending):
                if runtime_deps(d) <= done:
                    ordered.append(d)
                    done.add(d.name)
                    pending.remove(d)
                    progressed = True
            if not progressed:  # a cycle through aliases: quote what is left
                for d in pending:
                    if d.kind == "alias":
                        d.expr = json.dumps(d.expr)
                    ordered.append(d)
                break
        return ordered

    def annotation(self, f: Field) -> str:
        """A field's annotation, evaluated at import (so that `__required_keys__` and
        `typing.get_type_hints` are right): a type naming a generated class is quoted, since
        the class may come later in the module."""
        names = set(self.defs)
        expr = f.type
        if any(w in names for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr)):
            expr = json.dumps(expr)
        return expr if f.required else f"NotRequired[{expr}]"

    def render_one(self, d: Definition) -> str:
        if d.kind == "alias":
            text = f"{d.name}: TypeAlias = {d.expr}\n"
            if d.description:
                text += docstring(d.description, "")
            return text
        if d.functional():
            items = "".join(
                f"        {json.dumps(f.key)}: {self.annotation(f)},\n" for f in d.fields
            )
            text = f'{d.name} = TypedDict(\n    "{d.name}",\n    {{\n{items}    }},\n)\n'
            if d.description:
                text += docstring(d.description, "")
            return text
        bases = ", ".join(d.bases) if d.bases else "TypedDict"
        text = f"class {d.name}({bases}):\n"
        if d.description:
            text += docstring(d.description, "    ")
        for f in d.fields:
            text += f"    {f.key}: {self.annotation(f)}\n"
            if f.description:
                text += docstring(f.description, "    ")
        if not d.description and not d.fields:
            text += "    pass\n"
        return text


def split_union(expr: str) -> list[str]:
    """The members of a top-level `A | B` (not inside brackets)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(expr):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expr[start:i].strip())
            start = i + 1
    parts.append(expr[start:].strip())
    return [p for p in parts if p]


def generate(doc: dict[str, Any]) -> tuple[str, list[str]]:
    routes, not_covered = load_routes()
    gen = Generator(doc)
    gen.components()
    gen.operations(routes, not_covered)
    return gen.render(), gen.warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="URL of a server's /openapi.json, or a file (`<(dartmouth openapi)`)")
    parser.add_argument("out_path", nargs="?", type=Path, metavar="OUT", help=f"where to write (default {OUT})")
    parser.add_argument("--out", type=Path, default=None, help="the same as OUT")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = parser.parse_args(argv)
    args.out = args.out or args.out_path or OUT
    text, warnings = generate(load_document(args.source))
    for w in warnings:
        print(f"gen_models: warning: {w}", file=sys.stderr)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            sys.stderr.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(args.out), "generated"))
            return 1
        print(f"gen_models: {args.out} is up to date", file=sys.stderr)
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"gen_models: wrote {args.out} ({len(text.splitlines())} lines)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
