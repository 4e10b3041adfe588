"""The generated models: current with the server's document, importable, right at run time."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import pytest
from conftest import Server

from dartmouth_knowledge import models

CLIENT = Path(__file__).resolve().parents[1]
GENERATOR = CLIENT / "scripts" / "gen_models.py"
SOURCE_MODELS = CLIENT / "dartmouth_knowledge" / "models.py"


def test_models_match_the_servers_document(server: Server) -> None:
    """models.py is what gen_models.py makes of the running server's /openapi.json: a change
    of the document without a regeneration fails here."""
    done = subprocess.run(
        [sys.executable, str(GENERATOR), f"{server.url}/openapi.json", "--check", "--out", str(SOURCE_MODELS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (
        "clients/python/dartmouth_knowledge/models.py is out of date with the server's OpenAPI document; "
        f"regenerate it: python clients/python/scripts/gen_models.py {{URL}}/openapi.json\n{done.stderr[-4000:]}"
    )


def test_generation_is_stable(tmp_path: Path, server: Server) -> None:
    outs = []
    for i in range(2):
        out = tmp_path / f"models{i}.py"
        subprocess.run([sys.executable, str(GENERATOR), f"{server.url}/openapi.json", "--out", str(out)], check=True, capture_output=True, timeout=60)
        outs.append(out.read_text())
    assert outs[0] == outs[1]
    compile(outs[0], "models.py", "exec")


def test_models_at_run_time() -> None:
    # Optional fields are NotRequired, also for typing.get_type_hints and __required_keys__.
    assert models.ContextInput.__required_keys__ == frozenset({"query"})
    assert "domains" in models.ContextInput.__optional_keys__
    hits = typing.get_type_hints(models.SearchOutput)["hits"]
    if typing.get_origin(hits) is not list:  # Python 3.10 keeps typing_extensions' NotRequired
        (hits,) = typing.get_args(hits)
    assert typing.get_origin(hits) is list and typing.get_args(hits) == (models.Hit,)
    for name in models.__all__:
        assert hasattr(models, name), name


@pytest.mark.parametrize("op", ["Search", "Context", "Ingest", "UploadFiles", "Task", "CreateDomain", "Audit"])
def test_operation_types_exist(op: str) -> None:
    assert any(name.startswith(op) for name in models.__all__)
