"""The client against the real server: messages, requests, pushes, the close
handshake, go-away, reconnecting, refusals."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest
from conftest import PATIENCE, Server, run

import rust_tcp
from rust_tcp import (
    Cause,
    Client,
    ConnectError,
    ConnectionClosed,
    Disconnected,
    GoAway,
    HandshakeRefused,
    Interrupted,
    NotSent,
    Overflowed,
    Reconnect,
    Reconnected,
    ReconnectFailed,
    Text,
)


def test_text_messages_reach_the_server_and_close_confirms_them(server: Callable[..., Server]) -> None:
    s = server()

    async def body() -> None:
        client = await Client.connect(s.addr, name="py-sender")
        assert client.server_name == "rust-tcp"
        assert client.server_max_frame_size == 16 * 1024 * 1024
        for i in range(500):
            await client.send_text(f"message {i}")
        # The acknowledgement comes after the server processed all of them.
        await client.close()

    run(body())
    for i in range(500):
        assert s.wait_for(f'Message: "message {i}"', "stdout")
    s.wait_for("name=py-sender")


def test_many_requests_in_flight_are_matched_by_id(server: Callable[..., Server]) -> None:
    s = server()

    async def body() -> None:
        async with await Client.connect(s.addr) as client:
            payloads = [f"request {i}".encode() * (i % 7 + 1) for i in range(300)]
            answers = await asyncio.gather(*(client.request(p) for p in payloads))
            assert answers == payloads  # the reference server echoes
            assert client.pending_requests == 0
            assert await client.request("text is sent as UTF-8 ✓") == "text is sent as UTF-8 ✓".encode()

    run(body())


def test_binary_and_pushes_between_two_clients(server: Callable[..., Server]) -> None:
    s = server("--broadcast")

    async def body() -> None:
        alice = await Client.connect(s.addr, name="alice")
        bob = await Client.connect(s.addr, name="bob")
        heard = bob.incoming()
        await asyncio.to_thread(s.wait_for, "name=bob")
        await alice.send_text("hi bob")
        await alice.send_binary(b"\x00\xff")
        pushed = await asyncio.wait_for(heard.__anext__(), PATIENCE)
        assert pushed == Text("alice: hi bob")
        with pytest.raises(RuntimeError):
            bob.incoming()
        await alice.close()
        await bob.close()
        # The stream ends with the connection.
        assert [p async for p in heard] == []

    run(body())


def test_a_client_that_does_not_read_its_pushes_fails_its_calls_instead_of_hanging(
    server: Callable[..., Server],
) -> None:
    s = server("--broadcast")

    async def body() -> None:
        deaf = await Client.connect(s.addr, name="deaf", incoming_capacity=4)
        pushes = deaf.incoming()
        talker = await Client.connect(s.addr, name="talker")
        for i in range(5):
            await talker.send_text(f"line {i}")
        await talker.close()
        line = await asyncio.to_thread(s.wait_for, "client closed: 1011")
        assert "not reading its pushes (4 unread)" in line
        with pytest.raises(ConnectionClosed) as e:
            await asyncio.wait_for(deaf.request(b"x"), PATIENCE)
        assert e.value.cause is Cause.US
        got = [p async for p in pushes]
        assert got == [Text(f"talker: line {i}") for i in range(4)] + [Overflowed(4)]

    run(body())


def test_a_frame_over_the_servers_limit_is_not_sent_and_the_connection_goes_on(server: Callable[..., Server]) -> None:
    s = server("--max-frame-bytes", "1024")

    async def body() -> None:
        async with await Client.connect(s.addr) as client:
            assert client.server_max_frame_size == 1024
            with pytest.raises(NotSent) as e:
                await client.send_text("x" * 1025)
            assert e.value.cause is Cause.US
            assert "exceeds the server's limit of 1024" in str(e.value)
            with pytest.raises(NotSent):
                await client.request(b"y" * 1021)  # 4 bytes of id + 1021 > 1024
            assert await client.request(b"y" * 1020) == b"y" * 1020

    run(body())


def test_goaway_on_sigterm_is_an_event_and_in_flight_requests_finish(server: Callable[..., Server]) -> None:
    s = server("--shutdown-grace-secs", "20")

    async def body() -> None:
        client = await Client.connect(s.addr, name="leaver")
        events = client.incoming()
        s.send_signal(signal.SIGTERM)
        event = await asyncio.wait_for(events.__anext__(), PATIENCE)
        assert isinstance(event, GoAway) and event.code == 1001
        with pytest.raises(NotSent, match="going away"):
            await client.request(b"new")
        # The close handshake still completes, long before the grace ends.
        await client.close()

    run(body())
    s.wait_for("close handshake complete")
    assert s.stop() == 0


def test_a_refusal_carries_the_close_code_and_reason(server: Callable[..., Server]) -> None:
    s = server("--max-connections", "1")

    async def body() -> None:
        first = await Client.connect(s.addr, name="first")
        with pytest.raises(HandshakeRefused) as e:
            await Client.connect(s.addr, name="second")
        assert e.value.code == 1016
        assert "server full" in e.value.reason
        assert e.value.cause is Cause.SERVER and e.value.is_remote
        await first.close()

    run(body())


def test_a_name_the_server_refuses_and_a_port_nobody_listens_on(server: Callable[..., Server]) -> None:
    s = server()

    async def body() -> None:
        with pytest.raises(rust_tcp.InvalidConfig):
            await Client.connect(s.addr, name="")
        with pytest.raises(rust_tcp.InvalidConfig):
            await Client.connect(s.addr, name="tab\there")
        with pytest.raises(ConnectError) as e:
            await Client.connect("127.0.0.1:1")
        assert e.value.is_network
        assert "Connection refused" in str(e.value)

    run(body())


def test_heartbeat_wish_is_granted_and_answered(server: Callable[..., Server]) -> None:
    # The server pings a silent client after one interval and drops it after
    # three: the client stays because it answers (and pings itself).
    s = server("--heartbeat-min-secs", "0.2")

    async def body() -> None:
        async with await Client.connect(s.addr, heartbeat=0.2) as client:
            assert client.heartbeat == pytest.approx(0.2)
            for _ in range(3):
                # Silence is what is under test: three intervals of it each
                # time would get a client that does not answer dropped.
                await asyncio.sleep(0.7)
                assert await client.request(b"still here") == b"still here"

    run(body())


def test_a_lost_connection_interrupts_requests_in_flight_and_reconnects(server: Callable[..., Server]) -> None:
    s = server()
    addr = s.addr

    async def body() -> None:
        client = await Client.connect(addr, reconnect=Reconnect(initial_delay=0.05, max_delay=0.2))
        events = client.incoming()
        s.send_signal(signal.SIGSTOP)  # the request below stays in flight
        in_flight = asyncio.ensure_future(client.request(b"lost"))
        await asyncio.sleep(0)
        s.stop(signal.SIGKILL)
        with pytest.raises(Interrupted) as e:
            await in_flight
        assert e.value.is_network
        assert isinstance(await events.__anext__(), Disconnected)
        replacement = Server("--name", "second", addr=addr)
        try:
            while not isinstance(event := await events.__anext__(), Reconnected):
                assert isinstance(event, ReconnectFailed) and not event.gave_up
            assert event.server_name == "second"
            assert await client.request(b"again") == b"again"
            await client.close()
        finally:
            replacement.stop(signal.SIGKILL)

    run(body())


def test_goaway_with_reconnect_moves_to_the_next_server_and_closes_the_old_one(
    server: Callable[..., Server],
) -> None:
    old = server("--shutdown-grace-secs", "60", "--name", "old")

    async def body() -> None:
        client = await Client.connect(old.addr, reconnect=Reconnect(initial_delay=0.05, max_delay=0.2))
        events = client.incoming()
        old.send_signal(signal.SIGTERM)
        await asyncio.to_thread(old.wait_for, "stopped accepting")
        assert isinstance(await events.__anext__(), GoAway)
        assert isinstance(await events.__anext__(), Disconnected)
        new = Server("--name", "new", addr=old.addr)
        try:
            while not isinstance(event := await events.__anext__(), Reconnected):
                assert isinstance(event, ReconnectFailed)
            assert event.server_name == "new"
            # The old server hears a proper close, long before its grace ends.
            await asyncio.to_thread(old.wait_for, "close handshake complete")
            assert await client.request(b"on new") == b"on new"
            await client.close()
        finally:
            new.stop(signal.SIGKILL)

    run(body())
    assert old.stop() == 0


def test_giving_up_after_max_attempts_ends_the_stream(server: Callable[..., Server]) -> None:
    s = server()

    async def body() -> None:
        client = await Client.connect(s.addr, reconnect=Reconnect(initial_delay=0.01, max_attempts=2))
        events = client.incoming()
        s.stop(signal.SIGKILL)
        seen = [e async for e in events]
        assert isinstance(seen[0], Disconnected)
        assert [type(e) for e in seen[1:]] == [ReconnectFailed, ReconnectFailed]
        last = seen[-1]
        assert isinstance(last, ReconnectFailed) and last.gave_up and last.attempt == 2
        with pytest.raises(ConnectionClosed, match="could not reconnect after 2 attempts"):
            await client.request(b"x")

    run(body())


def test_without_reconnect_the_client_ends_with_its_connection(server: Callable[..., Server]) -> None:
    s = server()

    async def body() -> None:
        client = await Client.connect(s.addr)
        events = client.incoming()
        s.stop(signal.SIGKILL)
        assert [e async for e in events] == []
        with pytest.raises(ConnectionClosed) as e:
            await client.request(b"x")
        assert e.value.cause is Cause.NETWORK

    run(body())
