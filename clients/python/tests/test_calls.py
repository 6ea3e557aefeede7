"""Calls (spec 3.13) from Python: against the real server (its reference
application echoes; a call whose request is ``wait`` waits for its cancel
or deadline), and against a server written here that misbehaves."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import pytest
from conftest import PATIENCE, FakeServer, Peer, Server, frame, run, welcome

from rust_tcp import CallError, CallStatus, Cause, Client, InvalidConfig, NotSent, ProtocolError

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_unary_calls_carry_metadata_and_deadlines(server: Callable[..., Server]) -> None:
    s = server()

    async def body() -> None:
        async with await Client.connect(s.addr, name="py-calls") as client:
            answer = await client.call(b"ping", metadata={"traceparent": TRACEPARENT}, deadline=5)
            assert answer == b"ping"
            with pytest.raises(InvalidConfig):
                await client.call(b"x", metadata={"Bad Key": b"v"})
            with pytest.raises(CallError) as e:
                await client.call(b"wait", deadline=0.2)
            assert e.value.status is CallStatus.DEADLINE_EXCEEDED and e.value.cause is Cause.SERVER
            assert await client.call("still fine") == b"still fine"

    run(body())


def test_the_servers_deadline_cap_ends_a_call_that_asked_for_none(server: Callable[..., Server]) -> None:
    s = server("--max-call-deadline-secs", "0.2")

    async def body() -> None:
        async with await Client.connect(s.addr) as client:
            with pytest.raises(CallError) as e:
                await asyncio.wait_for(client.call(b"wait"), PATIENCE)
            assert e.value.status is CallStatus.DEADLINE_EXCEEDED
            assert e.value.reason == "deadline exceeded (200 ms)"

    run(body())


def test_streams_to_and_from_rust_stay_within_their_credit(server: Callable[..., Server]) -> None:
    s = server("--call-stream-credit", "4")

    async def body() -> None:
        async with await Client.connect(s.addr) as client:
            # The server's stream alone: the request as its one item.
            async with await client.open_call(b"one", server_stream=1) as call:
                assert [item async for item in call] == [b"one"]
                assert await call.result() == b"one"
            # Both: 1,000 items sent under the server's credit of 4 and
            # echoed back under ours of 8, read as they come.
            call = await client.open_call(b"both", server_stream=8, client_stream=True)

            async def feed() -> None:
                for i in range(1000):
                    await call.send(str(i))
                await call.end()

            feeding = asyncio.create_task(feed())
            got = [item async for item in call]
            await feeding
            assert got == [str(i).encode() for i in range(1000)]
            assert await call.result() == b"both"
            assert client.calls_in_flight == 0

    run(body())


def test_cancelling_the_task_cancels_the_call_and_keeps_its_id_until_the_status() -> None:
    called = asyncio.Event()

    async def script(peer: Peer) -> None:
        limits = bytes([1]) + struct.pack(">HII", 100, 16, 0)
        peer.send(welcome(extensions=struct.pack(">HHH", 1, 3, len(limits)) + limits))
        call = await peer.expect(0x0C)
        (call_id,) = struct.unpack(">I", call[:4])
        assert call[13:] == b"\x00wait"  # no metadata, then the request
        called.set()
        cancel = await peer.expect(0x10)
        assert struct.unpack(">I", cancel)[0] == call_id
        peer.send(frame(0x11, struct.pack(">IB", call_id, 2) + b"cancelled by the client"))
        answered = await peer.expect(0x0C)
        peer.send(frame(0x11, answered[:4] + b"\x00ok"))
        await peer.expect_close()
        peer.send(frame(0x0A, struct.pack(">H", 1000) + b"closed"))

    async def body() -> None:
        async with FakeServer(script) as fake:
            client = await Client.connect(fake.addr)
            assert fake.hellos[0].endswith(struct.pack(">HHHB", 1, 3, 1, 1)), "the HELLO asks for calls"
            task = asyncio.create_task(client.call(b"wait"))
            await asyncio.wait_for(called.wait(), PATIENCE)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client.calls_in_flight == 1, "the id stays taken until the server's STATUS"
            assert await client.call(b"next") == b"ok"
            assert client.calls_in_flight == 0
            await client.close()
            await fake.finished()

    run(body())


def test_a_server_past_our_credit_breaks_the_protocol() -> None:
    async def script(peer: Peer) -> None:
        limits = bytes([1]) + struct.pack(">HII", 100, 16, 0)
        peer.send(welcome(extensions=struct.pack(">HHH", 1, 3, len(limits)) + limits))
        call = await peer.expect(0x0C)
        assert call[4] == 1 and struct.unpack(">I", call[9:13])[0] == 1, "server stream, credit 1"
        peer.send(frame(0x0D, call[:4] + b"a") + frame(0x0D, call[:4] + b"b"))
        code, reason = await peer.expect_close()
        assert (code, reason) == (1002, f"ITEM for call {struct.unpack('>I', call[:4])[0]} beyond the credit granted")

    async def body() -> None:
        async with FakeServer(script) as fake:
            client = await Client.connect(fake.addr)
            call = await client.open_call(b"x", server_stream=1)
            with pytest.raises(ProtocolError) as e:
                async for _ in call:
                    pass
            assert e.value.code == 1002
            await fake.finished()

    run(body())


def test_limits_and_servers_without_calls(server: Callable[..., Server]) -> None:
    limited = server("--max-calls-per-connection", "1")
    without = server("--max-calls-per-connection", "0")

    async def body() -> None:
        async with await Client.connect(limited.addr) as client:
            busy = await client.open_call(b"wait")
            with pytest.raises(NotSent, match="1 calls in flight"):
                await client.call(b"x")
            busy.cancel()
        async with await Client.connect(without.addr) as client:
            with pytest.raises(NotSent, match="does not speak calls"):
                await client.call(b"x")
            assert await client.request(b"requests still work") == b"requests still work"

    run(body())
