"""Everything but the I/O, shared by the sync and the async client.

An operation is a *flow*: a generator that yields effects — ``Send(request)`` (answered with
the ``httpx.Response``) and ``Sleep(seconds)`` — and returns the result. The retries, the
error answers, read-your-writes and task waiting are written once, here, as flows; the two
clients only perform the effects (``_client.py``: ``httpx.Client`` and ``time.sleep``, or
``httpx.AsyncClient`` and an awaited sleep).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, Union

import httpx

from ._routes import ROUTES
from .errors import DartmouthError

__version__ = "0.1.0"

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Retry:
    """When a refused call is sent again.

    A ``429`` (rate limited) or ``503`` (unavailable) answer is retried after its
    ``Retry-After`` (without one: ``backoff * 2**attempt`` seconds), at most ``max_retries``
    times, and only while the seconds slept for the call stay within ``max_wait``; past either
    bound the server's error is raised. ``Retry(max_retries=0)`` never retries.
    """

    max_retries: int = 3
    max_wait: float = 30.0
    statuses: frozenset[int] = frozenset({429, 503})
    backoff: float = 0.5

    def delay(self, error: DartmouthError, attempt: int, waited: float) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up."""
        if error.status not in self.statuses or attempt >= self.max_retries:
            return None
        delay = error.retry_after if error.retry_after is not None else self.backoff * (2**attempt)
        if waited + delay > self.max_wait:
            return None
        return delay


@dataclass(frozen=True)
class Send:
    request: httpx.Request


@dataclass(frozen=True)
class Sleep:
    seconds: float


Effect = Union[Send, Sleep]
Flow = Generator[Effect, Any, T]


class Step(Protocol[T_co]):
    """Something a client can run: a flow over the engine."""

    def flow(self, engine: Engine) -> Generator[Effect, Any, T_co]: ...


_NOTHING: Any = object()


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of an operation of ``_routes.ROUTES``, and what its answer means."""

    op: str
    path: Mapping[str, str | int] = field(default_factory=dict)
    params: Mapping[str, Any] | None = None
    json: Any = _NOTHING
    content: bytes | None = None
    files: Sequence[tuple[str, tuple[str, bytes, str]]] | None = None
    headers: Mapping[str, str] | None = None
    expect: Literal["json", "text"] = "json"
    # A read that takes `min_seq`: the domains it names (empty: every readable one).
    reads: Sequence[str] | None = None
    # What a write acknowledged: (domain, seq) pairs to read after.
    wrote: Callable[[Any], Iterable[tuple[str, int]]] | None = None
    # Domains whose remembered sequence no longer holds (deleted, created anew).
    forgets: Sequence[str] = ()
    retry: bool = True

    def flow(self, engine: Engine) -> Flow[T]:
        return engine.call(self)


class Engine:
    """A client's settings and state: where, as whom, how to retry, what was written."""

    def __init__(
        self,
        url: str,
        key: str | None,
        *,
        retry: Retry,
        read_your_writes: bool,
        timeout: httpx.Timeout,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.retry = retry
        self.read_your_writes = read_your_writes
        self.timeout = timeout
        self.headers = {"user-agent": f"dartmouth-knowledge-python/{__version__}", **(headers or {})}
        self._seqs: dict[str, int] = {}
        self._lock = threading.Lock()

    # --- read your writes --------------------------------------------------------------
    def remember(self, domain: str, seq: int) -> None:
        if not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0 or not domain:
            return
        with self._lock:
            if seq > self._seqs.get(domain, 0):
                self._seqs[domain] = seq

    def forget(self, domain: str) -> None:
        with self._lock:
            self._seqs.pop(domain, None)

    def written(self) -> dict[str, int]:
        """The highest sequence each domain's writes were acknowledged with."""
        with self._lock:
            return dict(self._seqs)

    def min_seq(self, domains: Sequence[str]) -> dict[str, int]:
        with self._lock:
            if not domains:
                return dict(self._seqs)
            return {d: self._seqs[d] for d in domains if d in self._seqs}

    # --- requests ----------------------------------------------------------------------
    def build(self, call: Call[Any]) -> httpx.Request:
        method, template = ROUTES[call.op]
        path = template.format_map({k: urllib.parse.quote(str(v), safe="") for k, v in call.path.items()})
        headers = dict(self.headers)
        if self.key:
            headers["authorization"] = f"Bearer {self.key}"
        headers.update(call.headers or {})
        content = call.content
        body = call.json
        if body is not _NOTHING:
            if call.reads is not None and self.read_your_writes:
                body = self.with_min_seq(body, call.reads)
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers["content-type"] = "application/json"
        params = {k: v for k, v in (call.params or {}).items() if v is not None}
        params = {k: ("true" if v is True else "false" if v is False else v) for k, v in params.items()}
        return httpx.Request(
            method,
            self.url + path,
            params=params or None,
            content=content,
            files=call.files,
            headers=headers,
            extensions={"timeout": self.timeout.as_dict()},
        )

    def with_min_seq(self, body: Mapping[str, Any], domains: Sequence[str]) -> dict[str, Any]:
        known = self.min_seq(domains)
        if not known:
            return dict(body)
        given = dict(body.get("min_seq") or {})
        for domain, seq in known.items():
            given[domain] = max(seq, given.get(domain, 0))
        return {**body, "min_seq": given}

    def call(self, call: Call[T]) -> Flow[T]:
        """Send `call`, retrying as `self.retry` says; its result or its DartmouthError."""
        attempt, waited = 0, 0.0
        while True:
            response: httpx.Response = yield Send(self.build(call))
            if response.is_success:
                return self.finish(call, response)
            error = DartmouthError.from_response(response)
            delay = self.retry.delay(error, attempt, waited) if call.retry else None
            if delay is None:
                raise error
            yield Sleep(delay)
            attempt, waited = attempt + 1, waited + delay

    def finish(self, call: Call[T], response: httpx.Response) -> T:
        result: Any
        if call.expect == "text":
            result = response.text
        elif response.status_code == 204 or not response.content:
            result = None
        else:
            result = response.json()
        for domain in call.forgets:
            self.forget(domain)
        if call.wrote is not None and result is not None:
            for domain, seq in call.wrote(result):
                self.remember(domain, seq)
        return result  # type: ignore[no-any-return]


# --- what writes acknowledge ------------------------------------------------------------


def acknowledged(key: str, domain: str) -> Callable[[Any], list[tuple[str, int]]]:
    """`answer[key]` as the sequence of the answer's domain (or the path's)."""

    def pairs(answer: Any) -> list[tuple[str, int]]:
        if not isinstance(answer, Mapping):
            return []
        seq = answer.get(key)
        return [(str(answer.get("domain") or domain), seq)] if isinstance(seq, int) else []

    return pairs


def task_acknowledged(answer: Any) -> list[tuple[str, int]]:
    """A task's last acknowledged batch (`seq`), or its summary's `applied_seq`."""
    if not isinstance(answer, Mapping):
        return []
    seqs = [answer.get("seq")]
    summary = answer.get("summary")
    if isinstance(summary, Mapping):
        seqs.append(summary.get("applied_seq"))
    best = max((s for s in seqs if isinstance(s, int)), default=0)
    return [(str(answer.get("domain") or ""), best)] if best > 0 else []


def upload_acknowledged(domain: str) -> Callable[[Any], list[tuple[str, int]]]:
    """An upload answers its summary (`applied_seq`) or, with async, a task."""
    summary = acknowledged("applied_seq", domain)

    def pairs(answer: Any) -> list[tuple[str, int]]:
        if isinstance(answer, Mapping) and "status" in answer:
            return task_acknowledged(answer)
        return summary(answer)

    return pairs


# --- waiting for a task -----------------------------------------------------------------

FINISHED = frozenset({"succeeded", "failed", "canceled"})


@dataclass(frozen=True)
class WaitForTask(Generic[T]):
    """Polls a task until it has finished (succeeded, failed or canceled)."""

    get: Callable[[], Call[T]]
    id: str
    timeout: float | None
    interval: float

    def flow(self, engine: Engine) -> Flow[T]:
        started = time.monotonic()
        interval = self.interval
        while True:
            task: Any = yield from engine.call(self.get())
            if task.get("status") in FINISHED:
                return task  # type: ignore[no-any-return]
            if self.timeout is not None and time.monotonic() - started + interval > self.timeout:
                raise TimeoutError(f"task {self.id}: still {task.get('status')} after {self.timeout} s")
            yield Sleep(interval)
            interval = min(interval * 1.5, 2.0)
