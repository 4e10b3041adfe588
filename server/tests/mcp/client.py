#!/usr/bin/env python3
"""Drive an MCP server with the official Python SDK (`mcp`, pinned by
scripts/mcp-client-requirements.txt; run with the python that
scripts/setup-mcp-client.sh prints as DARTMOUTH_MCP_PYTHON).

Usage:
    client.py [options] stdio -- COMMAND [ARGS...]
    client.py [options] http URL KEY        (KEY '' sends no Authorization header)

Options:
    --mode legacy|auto   legacy (default): the `initialize` handshake, as
                         ClientSession.initialize() does it. auto: what
                         `mcp.Client(...)` does by default - probe
                         `server/discover` (protocol 2026-07-28) first and fall
                         back to `initialize` on any JSON-RPC error.
    --timeout SECONDS    per-request read timeout (default 120)
    --no-ping            do not send a `ping` after the `initialize` handshake

Reads a JSON script from stdin: a list of steps, each
    {"tool": NAME, "arguments": {...}}                    call a tool
    {"tool": NAME, "arguments": {...}, "expect_error": true}
        the call must fail with a JSON-RPC error; records {"error": {code, message, data}}
    {"ping": true}                                        send a ping; records {"ping": "ok"}

The stdio server inherits this process's whole environment (the SDK's default
passes only HOME/LOGNAME/PATH/SHELL/TERM/USER) and its stderr.

Prints ONE JSON object on stdout:
    {"server": serverInfo, "protocol": negotiated version, "capabilities": {...},
     "tools": [tool dicts as listed],
     "results": [{"isError": bool, "text": first text content or null,
                  "structured": structuredContent or null}, ...]}

Exits 1 with the error on stderr on any protocol or transport failure: a failed
handshake, a JSON-RPC error where none was expected (or none where one was), a
result that does not validate, a non-JSON line on the server's stdout, an
HTTP error status, a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


class DriverError(Exception):
    pass


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="client.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["legacy", "auto"], default="legacy")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--no-ping", action="store_true")
    sub = p.add_subparsers(dest="transport", required=True)
    s = sub.add_parser("stdio")
    s.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    h = sub.add_parser("http")
    h.add_argument("url")
    h.add_argument("key")
    args = p.parse_args(argv)
    if args.transport == "stdio":
        cmd = args.command
        if cmd and cmd[0] == "--":
            cmd = cmd[1:]
        if not cmd:
            p.error("stdio needs a command: stdio -- COMMAND [ARGS...]")
        args.command = cmd
    return args


def read_script() -> list[dict[str, Any]]:
    raw = sys.stdin.read()
    script = json.loads(raw) if raw.strip() else []
    if not isinstance(script, list):
        raise DriverError("the script on stdin must be a JSON list of steps")
    for i, step in enumerate(script):
        if not isinstance(step, dict) or not (
            isinstance(step.get("tool"), str) or step.get("ping") is True
        ):
            raise DriverError(f"script step {i} must be {{'tool': NAME, ...}} or {{'ping': true}}: {step!r}")
    return script


def dump(model: Any) -> Any:
    if model is None:
        return None
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


async def run(args: argparse.Namespace, script: list[dict[str, Any]]) -> dict[str, Any]:
    transport_errors: list[BaseException] = []

    async def message_handler(message: Any) -> None:
        # The SDK hands transport-level faults (e.g. an unparseable stdout line) to
        # this handler and otherwise carries on; the driver must not swallow them.
        if isinstance(message, Exception):
            transport_errors.append(message)

    async with AsyncExitStack() as stack:
        if args.transport == "stdio":
            params = StdioServerParameters(
                command=args.command[0], args=args.command[1:], env=dict(os.environ)
            )
            transport = stdio_client(params)
        else:
            headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=args.timeout))
            )
            transport = streamable_http_client(args.url, http_client=http)

        client = await stack.enter_async_context(
            Client(
                transport,
                mode=args.mode,
                read_timeout_seconds=args.timeout,
                message_handler=message_handler,
                cache=None,
            )
        )
        session = client.session

        # `ping` exists only in the handshake era (removed in 2026-07-28).
        if not args.no_ping and session.initialize_result is not None:
            await session.send_ping()

        listing = await session.list_tools()
        out: dict[str, Any] = {
            "server": dump(session.server_info),
            "protocol": session.protocol_version,
            "capabilities": dump(session.server_capabilities),
            "tools": [dump(t) for t in listing.tools],
            "results": [],
        }

        for i, step in enumerate(script):
            if step.get("ping") is True:
                await session.send_ping()
                out["results"].append({"ping": "ok"})
                continue
            name = step["tool"]
            arguments = step.get("arguments")
            try:
                result = await session.call_tool(name, arguments)
            except MCPError as e:
                if step.get("expect_error"):
                    out["results"].append(
                        {"error": {"code": e.error.code, "message": e.error.message, "data": e.error.data}}
                    )
                    continue
                raise DriverError(
                    f"step {i} ({name}): JSON-RPC error {e.error.code}: {e.error.message}"
                    + (f" (data: {json.dumps(e.error.data)})" if e.error.data is not None else "")
                ) from e
            if step.get("expect_error"):
                raise DriverError(f"step {i} ({name}): expected a JSON-RPC error, got a result: {dump(result)}")
            text = next((c.text for c in result.content if getattr(c, "type", None) == "text"), None)
            out["results"].append(
                {"isError": bool(result.is_error), "text": text, "structured": result.structured_content}
            )

        if transport_errors:
            raise DriverError(
                "transport reported errors: " + "; ".join(f"{type(e).__name__}: {e}" for e in transport_errors)
            )
        return out


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaves(sub)]
    return [exc]


def describe(exc: BaseException) -> str:
    if isinstance(exc, MCPError):
        data = f" (data: {json.dumps(exc.error.data)})" if exc.error.data is not None else ""
        return f"MCPError {exc.error.code}: {exc.error.message}{data}"
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        script = read_script()
        out = anyio.run(run, args, script)
    except BaseException as exc:  # noqa: BLE001 - report everything, exit non-zero
        if isinstance(exc, SystemExit):
            raise
        for leaf in leaves(exc):
            if os.environ.get("MCP_CLIENT_TRACEBACK"):
                traceback.print_exception(leaf, file=sys.stderr)
            print(f"client.py: {describe(leaf)}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
