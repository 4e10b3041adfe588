"""The one error type: what the server answered, code and message unchanged."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx

# The server's codes (README, "Errors"); `code` is a plain `str` so that a code added later
# passes through too.
CODES = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class DartmouthError(Exception):
    """An error answer of the server (or no answer at all: ``code == "connection_error"``,
    ``status == 0``).

    ``code`` and ``message`` are the server's ``{"error": {"code", "message"}}`` as sent. An
    answer that is not that shape (a proxy's page, say) keeps its status, takes the code the
    server would use for that status, and its text as the message.
    """

    code: str
    status: int
    message: str
    retry_after: float | None
    request_id: str | None

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.request_id = request_id

    def __repr__(self) -> str:
        return (
            f"DartmouthError(code={self.code!r}, status={self.status}, message={self.message!r}"
            + (f", retry_after={self.retry_after}" if self.retry_after is not None else "")
            + ")"
        )

    @classmethod
    def from_response(cls, response: httpx.Response) -> DartmouthError:
        code, message = None, None
        try:
            body: Any = json.loads(response.content)
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                code, message = error.get("code"), error.get("message")
        except ValueError:
            pass
        if not isinstance(code, str) or not isinstance(message, str):
            code = CODES.get(response.status_code, f"http_{response.status_code}")
            message = response.text.strip()[:2000] or response.reason_phrase
        return cls(
            code,
            message,
            status=response.status_code,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            request_id=response.headers.get("x-request-id"),
        )

    @classmethod
    def from_transport(cls, error: httpx.TransportError) -> DartmouthError:
        return cls("connection_error", f"{type(error).__name__}: {error}", status=0)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
