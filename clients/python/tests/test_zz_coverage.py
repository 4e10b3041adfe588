"""Every operation of the route table was sent by both clients in this session."""

from __future__ import annotations

import pytest
from conftest import DESELECTED, MODES, SENT

from dartmouth_knowledge._routes import ROUTES


@pytest.mark.last
def test_every_operation_was_called_by_both_clients(request: pytest.FixtureRequest) -> None:
    if request.config.stash[DESELECTED] or request.config.getoption("keyword") or request.config.getoption("markexpr"):
        pytest.skip("only a full run calls every operation")
    if len({item.path for item in request.session.items}) < len(list(request.path.parent.glob("test_*.py"))):
        pytest.skip("only a full run calls every operation")
    missing = sorted((mode, op) for mode in MODES for op in ROUTES if (mode, op) not in SENT)
    assert not missing, f"operations no test called: {missing}"
