"""Real `dartmouth serve` processes for the client's tests (no stand-in for the server).

The binary is $DARTMOUTH_BIN (default <repo>/target/release/dartmouth). Each server gets a
fresh data directory, loopback ports chosen by the OS (`--http 127.0.0.1:0`; the server prints
`listening http=ADDR grpc=ADDR`), and an admin key made with `dartmouth key create --principal
admin` (the local operator is the bootstrap admin). Domains use the `fake` embedder: no model.

Servers (each started once per session, when first asked for, and stopped at the end):
- `server`: the one most tests use; no rate limits; JWT secret for delegated tokens; a local
  Shopify-compatible shop (`shop`) for pull sync.
- `limited_server`: 60 requests a minute per principal, burst 3: a real 429 with Retry-After.
- `nodes`: two nodes on one SQLite store behind a routing "balancer" (writes to the first,
  reads to the second, whose applier polls once an hour): a read sees a write only through
  `min_seq`.
"""

from __future__ import annotations

import inspect
import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

# The tests are of the installed package (scripts/setup-client-python.sh installs it): not of
# the source tree, which `python -m pytest` run from clients/python would put first on the path.
CLIENT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != CLIENT]

import dartmouth_knowledge  # noqa: E402
from dartmouth_knowledge import AsyncDartmouth, Dartmouth  # noqa: E402
from dartmouth_knowledge._routes import ROUTES  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("DARTMOUTH_BIN") or REPO / "target" / "release" / "dartmouth")
JWT_SECRET = "client-python-tests-0123456789abcdef0123456789"
SHOP_TOKEN = "shpat_client_python_tests"
SHOP_TOKEN_ENV = "DK_CLIENT_TEST_SHOP_TOKEN"
MODES = ("sync", "async")


# --- servers ----------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    admin_key: str
    data: Path
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def make_key(data: Path, store: str | None = None) -> str:
    args = [str(BIN), "--data-dir", str(data)] + (["--store", store] if store else [])
    done = subprocess.run(
        args + ["key", "create", "--principal", "admin"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"key create failed: {done.stderr}"
    secret = done.stdout.strip()
    assert secret.startswith("dk_"), f"key create printed {done.stdout!r}"
    return secret


def start_server(base: Path, *args: str, env: dict[str, str] | None = None, store: str | None = None, key: str | None = None) -> Server:
    if not BIN.is_file():
        pytest.fail(f"no dartmouth binary at {BIN}: build it (cargo build --release) or set DARTMOUTH_BIN", pytrace=False)
    data = base / "data"
    data.mkdir(parents=True)
    key = key or make_key(data, store)
    log = base / "server.log"
    command = [str(BIN), "serve", "--data-dir", str(data), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]
    command += (["--store", store] if store else []) + list(args)
    with open(log, "wb") as err:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "DARTMOUTH_LOG": "warn", **(env or {})},
        )
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:  # read stdout to its end, so that the pipe never fills
        assert process.stdout is not None
        for raw in process.stdout:
            lines.put(raw.decode("utf-8", "replace"))

    threading.Thread(target=drain, daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=60)
            found = re.search(r"listening http=(\S+)", line)
            if found:
                return Server(f"http://{found.group(1)}", key, data, log, process)
    except queue.Empty:
        process.kill()
        pytest.fail(f"dartmouth serve did not start within 60 s; its log:\n{log.read_text()}", pytrace=False)


@pytest.fixture(scope="session")
def shop() -> Iterator[str]:
    """A local Shopify-compatible Admin GraphQL endpoint (`host:port`) answering the calls a
    connection check and a sync make, for an empty shop."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ShopHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class ShopHandler(BaseHTTPRequestHandler):
    """The shapes of Shopify's Admin GraphQL API (as indexer/tests/it/shop_server.rs serves
    them): `X-Shopify-Access-Token`, `/admin/api/{version}/graphql.json`."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        if not re.fullmatch(r"/admin/api/[0-9-]+/graphql\.json", self.path):
            return self.answer(404, {"errors": "Not Found"})
        if self.headers.get("x-shopify-access-token") != SHOP_TOKEN:
            return self.answer(401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
        query = body.get("query", "")
        page = {"hasNextPage": False, "endCursor": None}
        data: Any = None
        if "publicApiVersions" in query:
            data = {"shop": {"name": "Test shop"}, "publicApiVersions": [{"handle": "2026-01", "supported": True}]}
        elif "bulkOperationRunQuery" in query:
            data = {"bulkOperationRunQuery": {"bulkOperation": {"id": "gid://shopify/BulkOperation/1", "status": "CREATED"}, "userErrors": []}}
        elif "node(id:" in query:
            data = {"node": {"id": "gid://shopify/BulkOperation/1", "status": "COMPLETED", "errorCode": None, "objectCount": "0", "url": None, "partialDataUrl": None}}
        elif "deletionEvents(" in query:
            data = {"deletionEvents": {"nodes": [], "pageInfo": page}}
        elif "products(" in query:
            data = {"products": {"nodes": [], "pageInfo": page}}
        self.answer(200, {"data": data})

    def answer(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, shop: str) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("server"),
        "--rate-limit", "0",
        "--ip-rate-limit", "0",
        "--jwt-hs256-secret", JWT_SECRET,
        "--jwt-issuer", "dk-client-tests",
        "--jwt-audience", "dk-client-tests",
        env={
            SHOP_TOKEN_ENV: SHOP_TOKEN,
            "DARTMOUTH_SHOPIFY_PLAIN_HOSTS": shop,
            "DARTMOUTH_SHOPIFY_POLL_MS": "20",
            "DARTMOUTH_SHOPIFY_BACKOFF_MS": "10",
        },
    )
    yield s
    s.stop()


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("limited"), "--rate-limit", "60", "--rate-burst", "3", "--ip-rate-limit", "0")
    yield s
    s.stop()


@dataclass
class Nodes:
    writer: Server
    reader: Server

    def transport(self, mode: str) -> httpx.BaseTransport | httpx.AsyncBaseTransport:
        return (SyncBalancer if mode == "sync" else AsyncBalancer)(self.writer.url, self.reader.url)


READS = {"/v1/search", "/v1/context"}


def _route(request: httpx.Request, writer: str, reader: str) -> None:
    target = httpx.URL(reader if request.url.path in READS else writer)
    request.url = request.url.copy_with(host=target.host, port=target.port)
    request.headers["host"] = f"{target.host}:{target.port}"


class SyncBalancer(httpx.BaseTransport):
    """A load balancer in front of two nodes: searches and contexts go to the reader."""

    def __init__(self, writer: str, reader: str) -> None:
        self.writer, self.reader, self.inner = writer, reader, httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _route(request, self.writer, self.reader)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class AsyncBalancer(httpx.AsyncBaseTransport):
    def __init__(self, writer: str, reader: str) -> None:
        self.writer, self.reader, self.inner = writer, reader, httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _route(request, self.writer, self.reader)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="session")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    base = tmp_path_factory.mktemp("nodes")
    store = f"sqlite://{base / 'store.sqlite3'}?mode=rwc"
    (base / "keys").mkdir()
    key = make_key(base / "keys", store)
    common = ("--rate-limit", "0", "--ip-rate-limit", "0")
    writer = start_server(base / "writer", *common, store=store, key=key)
    reader = start_server(base / "reader", *common, "--apply-interval-ms", "3600000", store=store, key=key)
    yield Nodes(writer, reader)
    writer.stop()
    reader.stop()


# --- clients ----------------------------------------------------------------------------

# Every request any test client sent, as (mode, operation): the coverage test checks that
# every operation of the route table was sent by both clients.
SENT: set[tuple[str, str]] = set()
_TEMPLATES = [
    (op, method, re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(path)) + "$"))
    for op, (method, path) in ROUTES.items()
]


def operation_of(request: httpx.Request) -> str | None:
    path = request.url.raw_path.decode().split("?", 1)[0]
    for op, method, pattern in _TEMPLATES:
        if method == request.method and pattern.match(path):
            return op
    return None


@dataclass
class Traffic:
    """What one test client sent and got: each request's operation, body and answer status."""

    requests: list[httpx.Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def bodies(self, op: str) -> list[Any]:
        return [json.loads(r.content) for r in self.requests if operation_of(r) == op and r.content]


def hooked(mode: str, traffic: Traffic, transport: Any = None) -> httpx.Client | httpx.AsyncClient:
    def on_request(request: httpx.Request) -> None:
        traffic.requests.append(request)
        op = operation_of(request)
        if op:
            SENT.add((mode, op))

    def on_response(response: httpx.Response) -> None:
        traffic.statuses.append(response.status_code)

    if mode == "sync":
        return httpx.Client(transport=transport, event_hooks={"request": [on_request], "response": [on_response]})

    async def a_request(request: httpx.Request) -> None:
        on_request(request)

    async def a_response(response: httpx.Response) -> None:
        on_response(response)

    return httpx.AsyncClient(transport=transport, event_hooks={"request": [a_request], "response": [a_response]})


class Either:
    """A sync or async client behind one awaitable surface, so that each test runs the same
    steps through both: `await api.search(...)`, `await api.tasks.wait(...)`. The calls are
    the clients' own methods; a sync one runs to its end before the await returns."""

    def __init__(self, target: Any, mode: str, traffic: Traffic) -> None:
        self._target = target
        self.mode = mode
        self.traffic = traffic

    @property
    def client(self) -> Any:
        return self._target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if isinstance(value, dartmouth_knowledge._client._Bound):
            return Either(value, self.mode, self.traffic)
        if not callable(value):
            return value

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return call


ClientFactory = Callable[..., Either]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def connect(mode: str) -> Any:
    """`connect(url, key, **settings)`: a client of the test's mode, its traffic recorded."""
    made: list[Any] = []

    def factory(url: str, key: str | None, *, transport: Any = None, **settings: Any) -> Either:
        traffic = Traffic()
        http = hooked(mode, traffic, transport)
        cls = Dartmouth if mode == "sync" else AsyncDartmouth
        client = cls(url, key, http_client=http, **settings)  # type: ignore[arg-type]
        made.append(http)
        return Either(client, mode, traffic)

    yield factory
    for http in made:
        if isinstance(http, httpx.AsyncClient):
            await http.aclose()
        else:
            http.close()


@pytest.fixture
def api(connect: ClientFactory, server: Server) -> Either:
    """The admin's client of the test's mode on `server`."""
    return connect(server.url, server.admin_key)


@pytest.fixture
def name(mode: str, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Names unique to the test and mode (the tests share one server)."""
    test = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.lower()).strip("-")[-24:]
    return lambda what: f"{what}-{test}-{mode}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The coverage check runs after everything else.
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "last: runs after every other test")
    config.stash[DESELECTED] = False


DESELECTED = pytest.StashKey[bool]()


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[DESELECTED] = True


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"dartmouth binary: {BIN}", f"dartmouth_knowledge: {Path(dartmouth_knowledge.__file__).parent}"]

