"""A server written here that misbehaves on purpose: the client answers a
broken protocol with the right CLOSE and a clear exception, never buffers
past its limit, and keeps its request ids, heartbeats and cancellations
straight."""

from __future__ import annotations

import asyncio
import struct

import pytest
from conftest import PATIENCE, FakeServer, Peer, frame, run, welcome

from rust_tcp import (
    Cause,
    Client,
    ConnectionClosed,
    HandshakeRefused,
    Overflowed,
    ProtocolError,
    RequestFailed,
    RequestTimeout,
    Text,
    TlsError,
    UnsupportedVersion,
)


def broken_by(after_welcome: bytes, expected_code: int, max_frame: int = 1 << 24) -> ProtocolError:
    """Connects to a server that sends ``after_welcome`` once the session is
    open; checks the CLOSE the client sends and returns the caller's error."""

    async def script(peer: Peer) -> None:
        peer.send(welcome())
        peer.send(after_welcome)
        code, reason = await peer.expect_close()
        assert code == expected_code, reason
        assert await peer.at_end()

    async def body() -> ProtocolError:
        async with FakeServer(script) as fake:
            client = await Client.connect(fake.addr, max_frame=max_frame)
            with pytest.raises(ProtocolError) as e:
                await client.request(b"x")
            await fake.finished()
            return e.value

    return run(body())


def test_an_unknown_frame_type_is_a_protocol_error() -> None:
    e = broken_by(frame(0x7F, b"?"), 1002)
    assert e.code == 1002 and e.cause is Cause.PROTOCOL_VIOLATION
    assert "unknown frame type 0x7f" in str(e)


def test_a_frame_over_our_limit_is_refused_from_its_header() -> None:
    # Only the header is sent: the client must not wait for 2 GB.
    e = broken_by(struct.pack(">BBI", 2, 3, 2_000_000_000), 1009, max_frame=4096)
    assert "frame of 2000000000 bytes exceeds the limit of 4096" in str(e)


def test_text_that_is_not_utf8_is_invalid_data() -> None:
    e = broken_by(frame(3, b"\xff\xfe"), 1003)
    assert "not valid UTF-8" in str(e)


def test_a_response_with_an_unknown_status_and_a_short_ping() -> None:
    assert "status 7" in str(broken_by(frame(6, struct.pack(">IB", 0, 7)), 1002))
    assert "PING payload of 3 bytes" in str(broken_by(frame(7, b"abc"), 1002))


def test_frames_a_client_never_receives() -> None:
    assert "unexpected REQUEST" in str(broken_by(frame(5, b"\0\0\0\1x"), 1002))
    assert "unexpected HELLO" in str(broken_by(frame(1, b""), 1002))


def test_a_wrong_version_byte_mid_session() -> None:
    assert "version byte 1" in str(broken_by(b"\x01\x00\x02hi", 1002))


def test_handshake_failures() -> None:
    async def refuse(peer: Peer) -> None:
        peer.send(frame(0x0A, struct.pack(">H", 1010) + b"no thanks\x1b[2J"))

    async def old_server(peer: Peer) -> None:
        reason = b"unsupported version 2, this server speaks 1"
        peer.send(bytes([0, 1, 1]) + struct.pack(">H", len(reason)) + reason)

    async def http(peer: Peer) -> None:
        peer.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await peer.expect_close()

    async def tls(peer: Peer) -> None:
        peer.send(bytes.fromhex("15030300020228"))  # a TLS alert record

    async def critical(peer: Peer) -> None:
        peer.send(welcome(extensions=struct.pack(">HHH", 1, 0x8ABC, 0)))
        code, reason = await peer.expect_close()
        assert code == 1010 and "critical extension 0x8abc" in reason

    async def body() -> None:
        async with FakeServer(refuse) as fake:
            with pytest.raises(HandshakeRefused) as refused:
                await Client.connect(fake.addr)
            assert refused.value.code == 1010
            # The server's words are escaped before anyone prints them.
            assert refused.value.reason == "no thanks\\u001b[2J"
        async with FakeServer(old_server) as fake:
            with pytest.raises(UnsupportedVersion) as unsupported:
                await Client.connect(fake.addr)
            assert unsupported.value.versions == [1]
        async with FakeServer(http) as fake:
            with pytest.raises(ProtocolError, match="first byte 0x48"):
                await Client.connect(fake.addr)
            await fake.finished()
        async with FakeServer(tls) as fake:
            with pytest.raises(TlsError, match="speaks TLS"):
                await Client.connect(fake.addr)
        async with FakeServer(critical) as fake:
            with pytest.raises(ProtocolError) as e:
                await Client.connect(fake.addr)
            assert e.value.code == 1010
            await fake.finished()

    run(body())


def test_a_silent_server_times_out_the_handshake() -> None:
    hold = asyncio.Event()

    async def silent(peer: Peer) -> None:
        await hold.wait()

    async def body() -> None:
        async with FakeServer(silent) as fake:
            with pytest.raises(TimeoutError):
                await Client.connect(fake.addr, connect_timeout=0.2)
            hold.set()

    run(body())


def test_a_cancelled_request_keeps_its_id_until_answered() -> None:
    """Request 0 is abandoned (timed out); request 1 must not reuse its id
    while the server may still answer it, and the late answer to 0 must
    not be taken for anyone else's."""

    async def script(peer: Peer) -> None:
        peer.send(welcome())
        first = await peer.expect(5)
        second = await peer.expect(5)
        assert first[:4] == b"\0\0\0\0" and second[:4] == b"\0\0\0\1"
        # Answer the abandoned one late, then the live one.
        peer.send(frame(6, first[:4] + b"\0late"))
        peer.send(frame(6, second[:4] + b"\0on time"))
        third = await peer.expect(5)
        assert third[:4] == b"\0\0\0\2"
        peer.send(frame(6, third[:4] + b"\1no such thing"))
        await peer.expect_close()
        peer.send(frame(0x0A, struct.pack(">H", 1000) + b"closed"))

    async def body() -> None:
        async with FakeServer(script) as fake:
            client = await Client.connect(fake.addr)
            with pytest.raises(RequestTimeout) as e:
                await client.request(b"slow", timeout=0.05)
            assert e.value.cause is Cause.US
            assert await client.request(b"fast") == b"on time"
            with pytest.raises(RequestFailed, match="request failed: no such thing"):
                await asyncio.wait_for(client.request(b"bad"), PATIENCE)
            assert client.pending_requests == 0
            await client.close()
            await fake.finished()

    run(body())


def test_wait_for_cancels_cleanly() -> None:
    async def script(peer: Peer) -> None:
        peer.send(welcome())
        request = await peer.expect(5)
        await peer.expect_close()  # the client closes with the request unanswered
        peer.send(frame(6, request[:4] + b"\0too late"))
        peer.send(frame(0x0A, struct.pack(">H", 1000) + b"closed"))

    async def body() -> None:
        async with FakeServer(script) as fake:
            client = await Client.connect(fake.addr)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.request(b"never mind"), 0.05)
            assert client.pending_requests == 0
            await client.close()
            await fake.finished()

    run(body())


def test_pings_are_answered_and_a_silent_server_is_pinged_then_dropped() -> None:
    async def script(peer: Peer) -> None:
        peer.send(welcome(heartbeat_ms=100))
        peer.send(frame(7, struct.pack(">Q", 42)))
        assert await peer.expect(8) == struct.pack(">Q", 42)
        # Now silent: the client pings once, then gives up with 1014.
        assert len(await peer.expect(7)) == 8
        code, reason = await peer.expect_close()
        assert code == 1014, reason

    async def body() -> None:
        async with FakeServer(script) as fake:
            client = await Client.connect(fake.addr)
            assert client.heartbeat == pytest.approx(0.1)
            events = client.incoming()
            assert [e async for e in events] == []  # ends with the connection
            with pytest.raises(ConnectionClosed) as e:
                await client.request(b"x")
            assert e.value.code == 1014 and e.value.cause is Cause.NETWORK
            await fake.finished()

    run(body())


def test_a_client_that_does_not_read_its_pushes_ends_the_connection_and_says_why() -> None:
    """Memory stays bounded and nothing hangs: with ``incoming_capacity``
    pushes waiting, the client sends CLOSE 1011 saying why, its calls fail
    at once, and the stream's last item is the notice."""

    async def script(peer: Peer) -> None:
        peer.send(welcome())
        await peer.expect(5)  # the request: the client reads its pushes now
        for i in range(5):
            peer.send(frame(3, f"push {i}".encode()))
        code, reason = await peer.expect_close()
        assert code == 1011, (code, reason)
        assert reason == "the application is not reading its pushes (4 unread)"

    async def body() -> None:
        async with FakeServer(script) as fake:
            client = await Client.connect(fake.addr, incoming_capacity=4)
            pushes = client.incoming()
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(client.request(b"x"), PATIENCE)
            assert e.value.cause is Cause.US
            assert "not reading its pushes" in str(e.value)
            await fake.finished()
            got = [p async for p in pushes]
            assert got == [Text(f"push {i}") for i in range(4)] + [Overflowed(4)]

    run(body())
