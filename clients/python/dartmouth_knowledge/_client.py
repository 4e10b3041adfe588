"""The two clients: one surface (``_Api``), declared once over the operations of ``_ops``; the
sync and the async client differ only in how they perform a flow's effects (``_SyncRunner``,
``_AsyncRunner``)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

import httpx

from . import _ops
from ._core import Engine, Flow, Retry, Send, Sleep, Step
from .errors import DartmouthError

if TYPE_CHECKING:
    from . import models as m
    from ._ops import Files

P = ParamSpec("P")
T = TypeVar("T")


class Sync:
    """Marks the blocking client's surface."""


class Async:
    """Marks the asyncio client's surface."""


M = TypeVar("M", Sync, Async)


class _SyncRunner:
    def __init__(self, engine: Engine, http: httpx.Client) -> None:
        self.engine = engine
        self.http = http

    def run(self, step: Step[T]) -> T:
        flow: Flow[T] = step.flow(self.engine)
        try:
            effect = next(flow)
            while True:
                if isinstance(effect, Send):
                    try:
                        response = self.http.send(effect.request)
                    except httpx.TransportError as e:
                        effect = flow.throw(DartmouthError.from_transport(e))
                        continue
                    effect = flow.send(response)
                else:
                    assert isinstance(effect, Sleep)
                    _sleep(effect.seconds)
                    effect = flow.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


class _AsyncRunner:
    def __init__(self, engine: Engine, http: httpx.AsyncClient) -> None:
        self.engine = engine
        self.http = http

    async def run(self, step: Step[T]) -> T:
        flow: Flow[T] = step.flow(self.engine)
        try:
            effect = next(flow)
            while True:
                if isinstance(effect, Send):
                    try:
                        response = await self.http.send(effect.request)
                    except httpx.TransportError as e:
                        effect = flow.throw(DartmouthError.from_transport(e))
                        continue
                    effect = flow.send(response)
                else:
                    assert isinstance(effect, Sleep)
                    await _async_sleep(effect.seconds)
                    effect = flow.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


async def _async_sleep(seconds: float) -> None:
    try:  # anyio (httpx's own dependency) sleeps under asyncio and trio alike
        import anyio

        await anyio.sleep(seconds)
    except ImportError:  # pragma: no cover
        await asyncio.sleep(seconds)


class _Bound(Generic[M]):
    """The client or one of its namespaces: something that runs operations."""

    _runner: Any

    def __init__(self, runner: _SyncRunner | _AsyncRunner) -> None:
        self._runner = runner


class op(Generic[P, T]):
    """An operation of ``_ops`` as a method: on the sync client it returns the result, on the
    async client an awaitable of it. The signature and the docstring are the builder's."""

    def __init__(self, build: Callable[P, Step[T]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__
        self.__wrapped__ = build

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> op[P, T]: ...
    @overload
    def __get__(self, obj: _Bound[Sync], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: _Bound[Async], owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: _Bound[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build, run = self._build, obj._runner.run

        @functools.wraps(build)
        def method(*args: Any, **kwargs: Any) -> Any:
            return run(build(*args, **kwargs))

        return method


class _UploadFiles(Protocol):
    @overload
    def __call__(
        self,
        domain: str,
        files: Files,
        /,
        *,
        format: str | None = None,
        full_sync: bool = False,
        async_: Literal[False] = False,
        base_url: str | None = None,
    ) -> m.UploadFilesResponse: ...
    @overload
    def __call__(
        self,
        domain: str,
        files: Files,
        /,
        *,
        format: str | None = None,
        full_sync: bool = False,
        async_: Literal[True],
        base_url: str | None = None,
    ) -> m.UploadFilesResponse202: ...


class _AsyncUploadFiles(Protocol):
    @overload
    def __call__(
        self,
        domain: str,
        files: Files,
        /,
        *,
        format: str | None = None,
        full_sync: bool = False,
        async_: Literal[False] = False,
        base_url: str | None = None,
    ) -> Coroutine[Any, Any, m.UploadFilesResponse]: ...
    @overload
    def __call__(
        self,
        domain: str,
        files: Files,
        /,
        *,
        format: str | None = None,
        full_sync: bool = False,
        async_: Literal[True],
        base_url: str | None = None,
    ) -> Coroutine[Any, Any, m.UploadFilesResponse202]: ...


class upload_op:
    """``upload_files``: as `op`, typed by whether ``async_`` asks for a task (a ParamSpec
    cannot carry the overloads)."""

    def __init__(self) -> None:
        self._op = op(_ops.upload_files)
        self.__doc__ = _ops.upload_files.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> upload_op: ...
    @overload
    def __get__(self, obj: _Bound[Sync], owner: type[Any]) -> _UploadFiles: ...
    @overload
    def __get__(self, obj: _Bound[Async], owner: type[Any]) -> _AsyncUploadFiles: ...
    def __get__(self, obj: _Bound[Any] | None, owner: type[Any]) -> Any:
        return self if obj is None else self._op.__get__(obj, owner)


class Tasks(_Bound[M]):
    """``/v1/tasks``: background indexing and model switches."""

    list = op(_ops.list_tasks)
    get = op(_ops.get_task)
    cancel = op(_ops.cancel_task)
    wait = op(_ops.wait_task)


class Domains(_Bound[M]):
    """``/v1/domains``."""

    list = op(_ops.list_domains)
    create = op(_ops.create_domain)
    stats = op(_ops.domain_stats)
    update = op(_ops.update_domain)
    delete = op(_ops.delete_domain)
    reindex = op(_ops.reindex)
    rollback_model = op(_ops.rollback_model)
    drop_old_generation = op(_ops.drop_old_generation)


class Shopify(_Bound[M]):
    """A domain's Shopify pull sync (``/v1/domains/{domain}/shopify/...``)."""

    connect = op(_ops.connect_shop)
    connection = op(_ops.shop_connection)
    status = op(_ops.shop_status)
    disconnect = op(_ops.disconnect_shop)
    sync = op(_ops.sync_shop)


class Principals(_Bound[M]):
    """``/v1/principals``."""

    list = op(_ops.list_principals)
    create = op(_ops.create_principal)
    delete = op(_ops.delete_principal)


class Groups(_Bound[M]):
    """``/v1/groups/{group}/members``."""

    members = op(_ops.members)
    add = op(_ops.add_member)
    remove = op(_ops.remove_member)


class Grants(_Bound[M]):
    """``/v1/grants``."""

    list = op(_ops.list_grants)
    grant = op(_ops.grant)
    revoke = op(_ops.revoke_grant)


class Keys(_Bound[M]):
    """``/v1/keys``."""

    list = op(_ops.list_keys)
    create = op(_ops.create_key)
    revoke = op(_ops.revoke_key)


class Tokens(_Bound[M]):
    """``/v1/tokens``."""

    delegate = op(_ops.delegate)


class Snapshots(_Bound[M]):
    """``/v1/snapshots``."""

    list = op(_ops.list_snapshots)
    create = op(_ops.create_snapshot)
    restore = op(_ops.restore_snapshot)


class _Api(_Bound[M]):
    """The surface both clients share."""

    search = op(_ops.search)
    similar = op(_ops.similar)
    context = op(_ops.context)
    get_document = op(_ops.get_document)
    get_chunk = op(_ops.get_chunk)
    index_documents = op(_ops.index_documents)
    upload_files = upload_op()
    upload_catalog = op(_ops.upload_catalog)
    delete = op(_ops.delete)
    delete_document = op(_ops.delete_document)
    audit = op(_ops.audit)
    stats = op(_ops.live_stats)
    models = op(_ops.list_models)
    health = op(_ops.health)
    ready = op(_ops.ready)
    openapi = op(_ops.openapi)

    tasks: Tasks[M]
    domains: Domains[M]
    shopify: Shopify[M]
    principals: Principals[M]
    groups: Groups[M]
    grants: Grants[M]
    keys: Keys[M]
    tokens: Tokens[M]
    snapshots: Snapshots[M]

    _engine: Engine
    _settings: dict[str, Any]

    def _setup(self, engine: Engine, runner: _SyncRunner | _AsyncRunner, settings: dict[str, Any]) -> None:
        _Bound.__init__(self, runner)
        self._engine = engine
        self._settings = settings
        self.tasks = Tasks(runner)
        self.domains = Domains(runner)
        self.shopify = Shopify(runner)
        self.principals = Principals(runner)
        self.groups = Groups(runner)
        self.grants = Grants(runner)
        self.keys = Keys(runner)
        self.tokens = Tokens(runner)
        self.snapshots = Snapshots(runner)

    @property
    def url(self) -> str:
        return self._engine.url

    @property
    def written(self) -> dict[str, int]:
        """The highest sequence each domain's writes by this client were acknowledged with;
        with ``read_your_writes``, the next search or context of the domain sends it as
        ``min_seq``."""
        return self._engine.written()


def _engine(
    url: str,
    key: str | None,
    retry: Retry | int | None,
    read_your_writes: bool,
    timeout: float | httpx.Timeout | None,
    headers: dict[str, str] | None,
) -> Engine:
    if retry is None:
        retry = Retry(max_retries=0)
    elif isinstance(retry, int):
        retry = Retry(max_retries=retry)
    return Engine(
        url,
        key,
        retry=retry,
        read_your_writes=read_your_writes,
        timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        headers=headers,
    )


DEFAULT_TIMEOUT = 60.0


class Dartmouth(_Api[Sync]):
    """The blocking client (``httpx.Client``).

    ``Dartmouth(url, key)``: `url` the server's base URL (``http://127.0.0.1:8787``), `key` an
    API key or a JWT (a delegated token). ``retry``: a :class:`Retry` (or a number of retries;
    None: none). ``read_your_writes``: send each write's acknowledged sequence as ``min_seq``
    with the next search or context of its domain. ``timeout``: seconds per request.
    ``http_client``: an ``httpx.Client`` of your own (proxies, transports, event hooks); it is
    not closed by :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        retry: Retry | int | None = Retry(),
        read_your_writes: bool = False,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        headers: dict[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        engine = _engine(url, key, retry, read_your_writes, timeout, headers)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()
        settings = {"retry": retry, "read_your_writes": read_your_writes, "timeout": timeout, "headers": headers}
        self._setup(engine, _SyncRunner(engine, self._http), settings)

    def with_key(self, key: str | None) -> Dartmouth:
        """The same settings as another caller (a delegated token, another key); a new
        connection pool, nothing remembered."""
        return Dartmouth(self.url, key, **self._settings)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Dartmouth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncDartmouth(_Api[Async]):
    """The asyncio client (``httpx.AsyncClient``): :class:`Dartmouth`'s methods, awaited."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        retry: Retry | int | None = Retry(),
        read_your_writes: bool = False,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        headers: dict[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        engine = _engine(url, key, retry, read_your_writes, timeout, headers)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient()
        settings = {"retry": retry, "read_your_writes": read_your_writes, "timeout": timeout, "headers": headers}
        self._setup(engine, _AsyncRunner(engine, self._http), settings)

    def with_key(self, key: str | None) -> AsyncDartmouth:
        """The same settings as another caller (see :meth:`Dartmouth.with_key`)."""
        return AsyncDartmouth(self.url, key, **self._settings)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncDartmouth:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
