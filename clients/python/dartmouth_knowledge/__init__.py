"""Dartmouth Knowledge: a client for the HTTP API (sync and asyncio, on httpx).

    from dartmouth_knowledge import Dartmouth
    with Dartmouth("http://127.0.0.1:8787", key) as dk:
        hits = dk.search(query="return policy", domains=["help-centre"], k=5)["hits"]
"""

from . import models
from ._client import AsyncDartmouth, Dartmouth
from ._core import Retry, __version__
from .errors import DartmouthError

__all__ = ["AsyncDartmouth", "Dartmouth", "DartmouthError", "Retry", "__version__", "models"]
