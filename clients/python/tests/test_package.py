"""The package as installed: the tests import the installed copy, and it is the source's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dartmouth_knowledge

CLIENT = Path(__file__).resolve().parents[1]
SOURCE = CLIENT / "dartmouth_knowledge"


def test_the_installed_package_is_the_source() -> None:
    installed = Path(dartmouth_knowledge.__file__).resolve().parent
    assert installed != SOURCE.resolve(), "the tests import the source tree, not the installed package"
    assert "site-packages" in installed.parts
    source_files = {p.relative_to(SOURCE) for p in SOURCE.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    installed_files = {p.relative_to(installed) for p in installed.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert source_files == installed_files
    stale = [str(p) for p in source_files if (SOURCE / p).read_bytes() != (installed / p).read_bytes()]
    assert not stale, f"installed copy differs from the source (run scripts/setup-client-python.sh): {stale}"
    assert (installed / "py.typed").exists()


def test_it_type_checks() -> None:
    """mypy --strict on the installed package and on a usage sample whose deliberate mistakes
    must be caught (`# type: ignore[...]` that mypy would call unused fails)."""
    sample = Path(__file__).with_name("typing_sample.py")
    for target in (["-p", "dartmouth_knowledge"], [str(sample)]):
        done = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--warn-unused-ignores", "--cache-dir=/dev/null", *target],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=Path(__file__).parent,
        )
        assert done.returncode == 0, done.stdout + done.stderr
