"""The typed layer against the Rust kv example (examples/kv_store.rs): the
application protocol negotiated in the handshake, requests as dicts or
dataclasses, events, the protocol's own errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import PATIENCE, KvServer, run
from generated.kv import EventChanged, KvClient, KvErrorNoSuchKey, ResponseDone, ResponseValue

from rust_tcp import AppProtocol, Encoding, HandshakeRefused, InvalidConfig, RequestFailed
from rust_tcp.typed import (
    DecodeError,
    EncodeError,
    Event,
    RemoteError,
    TypedClient,
    Variant,
    decode,
    encode,
    unpack_variant,
    variant,
)

KV = AppProtocol("kv", 1, 1)


@dataclass
class Set(Variant):
    key: str
    value: str


@dataclass
class Watch(Variant):
    pass


@pytest.fixture
def kv() -> Iterator[KvServer]:
    server = KvServer()
    yield server
    server.stop()


def test_calls_events_and_errors_against_the_rust_service(kv: KvServer) -> None:
    """Through the client generated from the example's schema (generated/kv.py)."""

    async def body() -> None:
        watcher = await KvClient.connect(kv.addr, name="watcher")
        assert watcher.typed.negotiated.name == "kv" and watcher.typed.negotiated.version == 1
        assert watcher.typed.negotiated.encoding == Encoding.MSGPACK
        events = watcher.events()
        assert await watcher.watch() == ResponseDone()
        writer = await KvClient.connect(kv.addr, name="writer")
        assert await writer.set("colour", "blue") == ResponseDone()
        pushed = await asyncio.wait_for(events.__anext__(), PATIENCE)
        assert pushed == EventChanged(key="colour", value="blue")
        assert await watcher.get("colour") == ResponseValue(value="blue")
        with pytest.raises(RemoteError) as e:
            await watcher.get("size")
        assert e.value.error == KvErrorNoSuchKey(value="size")
        assert e.value.is_remote
        # A request this version does not have: the service could not
        # handle it at all, and says why.
        with pytest.raises(RequestFailed, match="Delete"):
            await watcher.typed.call(variant("Delete", {"key": "colour"}))
        # The connection goes on after both kinds of error.
        assert await watcher.get("colour") == ResponseValue(value="blue")
        await writer.close()
        await watcher.close()

    run(body())


def test_requests_as_dicts_and_dataclasses_with_the_untyped_values(kv: KvServer) -> None:
    """The typed layer underneath, without generated code: serde's shapes by hand."""

    async def body() -> None:
        async with await TypedClient.connect(kv.addr, KV, name="by-hand") as client:
            events = client.events()
            assert await client.call(Watch()) == "Done"
            assert await client.call(Set("colour", "blue")) == "Done"
            pushed = await asyncio.wait_for(events.__anext__(), PATIENCE)
            assert isinstance(pushed, Event)
            assert unpack_variant(pushed.value) == ("Changed", {"key": "colour", "value": "blue"})
            assert unpack_variant(await client.call(variant("Get", {"key": "colour"}))) == ("Value", "blue")
            with pytest.raises(RemoteError) as e:
                await client.call({"Get": {"key": "size"}})
            assert e.value.error == {"NoSuchKey": "size"}

    run(body())


def test_a_protocol_the_server_does_not_speak_is_refused_in_the_handshake(kv: KvServer) -> None:
    async def body() -> None:
        with pytest.raises(HandshakeRefused) as e:
            await TypedClient.connect(kv.addr, AppProtocol("kv", 2, 3))
        assert e.value.code == 1010
        assert e.value.reason == "server speaks kv 1, client kv 2-3"
        with pytest.raises(HandshakeRefused, match="client asks for chat 1"):
            await TypedClient.connect(kv.addr, AppProtocol("chat", 1, 1))
        with pytest.raises(InvalidConfig):
            await TypedClient.connect(kv.addr, AppProtocol("kv", 1, 1, (Encoding.POSTCARD,)))

    run(body())


def test_encoding_follows_serdes_conventions() -> None:
    # The spec's example (3.3.3): REQUEST id 1 {"Get": {"key": "k"}}.
    assert encode(variant("Get", {"key": "k"})) == bytes.fromhex("81 a3 47 65 74 81 a3 6b 65 79 a1 6b")
    assert encode(Watch()) == bytes.fromhex("a5 57 61 74 63 68")  # "Watch"
    assert decode(bytes.fromhex("81 a2 4f 6b 81 a5 56 61 6c 75 65 a1 76"), "response") == {"Ok": {"Value": "v"}}
    with pytest.raises(DecodeError):
        decode(b"\xc1", "event")
    with pytest.raises(EncodeError):
        encode(object())
    with pytest.raises(DecodeError):
        unpack_variant([1, 2])
