"""The client covers every route of server/src/http/mod.rs but those it leaves out on purpose."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from dartmouth_knowledge._routes import NOT_COVERED, ROUTES

HTTP_RS = REPO / "server" / "src" / "http" / "mod.rs"


def server_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every `.route("path", get(h).post(h)…)` in http/mod.rs."""
    source = HTTP_RS.read_text(encoding="utf-8")
    routes = set()
    for path, handlers in re.findall(r'\.route\(\s*"([^"]+)",\s*(.*?)\)\s*(?=\.route|\.route_layer|;)', source, re.S):
        for method in re.findall(r"\b(get|post|put|patch|delete)\(", handlers):
            routes.add((method.upper(), path))
    return routes


@pytest.mark.skipif(not (REPO / "server").exists(), reason="the server's source is not beside the client")
def test_every_route_is_covered() -> None:
    assert HTTP_RS.exists(), f"{HTTP_RS} moved: point this test at the router"
    served = server_routes()
    # every `.route(` was read (a change of layout that the pattern misses fails here)
    assert len({p for _, p in served}) == HTTP_RS.read_text(encoding="utf-8").count(".route("), served
    covered = {(m, p) for m, p in ROUTES.values()}
    uncovered = {(m, p) for m, p in served if p not in NOT_COVERED} - covered
    assert not uncovered, f"routes of the server the client has no operation for: {sorted(uncovered)}"
    stale = covered - served
    assert not stale, f"operations of the client the server does not serve: {sorted(stale)}"
