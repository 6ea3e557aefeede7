"""The client's side of the protocol as data (docs/conformance/client.json),
run against this client: a scripted server follows each case's steps while
the client does what the case says, and the client must answer and end as
the case says. The Rust and JavaScript clients run the very same cases."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import pytest
from conftest import PATIENCE, REPO, run

from rust_tcp import (
    CallError,
    Cause,
    Client,
    ConnectionClosed,
    HandshakeRefused,
    ProtocolError,
    RustTcpError,
)

CASES = json.loads((REPO / "docs" / "conformance" / "client.json").read_text())["cases"]
HEADER = struct.Struct(">BBI")


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    try:
        header = await asyncio.wait_for(reader.readexactly(6), PATIENCE)
    except asyncio.IncompleteReadError:
        return None
    _, kind, length = HEADER.unpack(header)
    return kind, await reader.readexactly(length)


TYPES = {"HELLO": 1, "REQUEST": 5, "PONG": 8, "CLOSE": 10, "CALL": 12, "CREDIT": 14}


async def script(steps: list[dict[str, Any]], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The case's server side; raises what differed."""
    hello = await read_frame(reader)
    assert hello is not None and hello[0] == 1, "a HELLO first"
    call_id = b"\0\0\0\0"
    for i, step in enumerate(steps, 1):
        if "expect_hello" in step:
            asks = hello[1].endswith(struct.pack(">HHB", 3, 1, 1))
            assert asks == step["expect_hello"]["calls"], f"step {i}: HELLO asks for calls: {asks}"
        elif "send" in step:
            writer.write(bytes.fromhex(step["send"].replace("{id}", call_id.hex(" "))))
            await writer.drain()
        elif "expect" in step:
            want = step["expect"]
            got = await read_frame(reader)
            assert got is not None, f"step {i}: the client closed; expected {want}"
            kind, payload = got
            assert kind == TYPES[want["type"]], f"step {i}: expected {want}, got type {kind} {payload!r}"
            if kind in (5, 12):
                call_id = payload[:4]
            if "code" in want:
                assert struct.unpack(">H", payload[:2])[0] == want["code"], f"step {i}: {payload!r}"
            if "nonce" in want:
                assert struct.unpack(">Q", payload)[0] == want["nonce"], f"step {i}: {payload!r}"
        elif step.get("expect_end"):
            assert await read_frame(reader) is None, f"step {i}: expected the end"


def report(e: RustTcpError) -> dict[str, Any]:
    if isinstance(e, HandshakeRefused):
        return {"error": "refused", "code": e.code}
    if isinstance(e, ProtocolError):
        return {"error": "protocol", "code": e.code}
    if isinstance(e, ConnectionClosed) and e.cause is Cause.SERVER:
        return {"error": "closed", "by": "server"}
    if isinstance(e, CallError):
        return {"error": "call", "status": int(e.status)}
    return {"error": str(e)}


async def act(client_does: str, addr: str) -> dict[str, Any]:
    try:
        client = await Client.connect(addr, name="conformance")
    except RustTcpError as e:
        return report(e)
    try:
        if client_does == "request":
            await client.request(b"x")
        elif client_does == "call":
            await client.call(b"x")
        elif client_does == "stream":
            call = await client.open_call(b"x", server_stream=1)
            await call.result()
        else:
            # The script ends the connection: the pushes' stream ends with
            # it, and a request after that raises how it ended.
            async for _ in client.incoming():
                pass
            await client.request(b"after")
            return {"ok": "still open"}
        return {"ok": "ok"}
    except RustTcpError as e:
        return report(e)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_client_case(case: dict[str, Any]) -> None:
    async def body() -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await script(case["server"], reader, writer)
                done.set_result(None)
            except BaseException as e:  # surfaced below
                done.set_exception(e)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        got = await asyncio.wait_for(act(case["client"], f"{host}:{port}"), PATIENCE)
        await asyncio.wait_for(done, PATIENCE)
        server.close()
        assert got == case["report"], case["about"]

    run(body())
