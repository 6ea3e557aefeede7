"""Typed protocols: call a Rust ``rust_tcp::typed`` service with Python
values, in MessagePack.

The handshake negotiates the application protocol (its name, a version
both sides speak, the encoding; spec 3.3.2), so a mismatch is refused
before any message. Then each REQUEST carries one request value, each
RESPONSE one ``{"Ok": response}`` or ``{"Err": error}``, and each BINARY
from the server one event (spec 3.3.3).

Values follow serde's conventions for MessagePack with field names, which
is what the Rust side reads and writes:

- a struct is a map of its fields: a dict, or any dataclass;
- an enum variant with fields is a map of one entry,
  ``{"Get": {"key": "k"}}``: :func:`variant` builds one, and a dataclass
  deriving :class:`Variant` encodes as one (its class name, its fields);
- a variant without fields is its name, ``"Watch"``;
- a newtype variant holds its value, ``{"Value": "v"}``.

Answers come back as plain Python values (dicts, lists, strings…);
:func:`unpack_variant` splits a variant into its name and its fields.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from .calls import Call
from .client import Client
from .errors import Cause, InvalidConfig, ProtocolError, RustTcpError
from .events import Binary, Pushed
from .frames import AppChoice, AppProtocol, CloseCode, Encoding


class RemoteError(RustTcpError):
    """The service answered with the protocol's own error (``{"Err": …}``):
    the request was understood and refused. ``error`` is its value."""

    cause = Cause.SERVER

    def __init__(self, error: Any) -> None:
        super().__init__(f"the server answered with an error: {error!r}")
        self.error = error


class DecodeError(RustTcpError):
    """An answer or an event that is not a value of the protocol (another
    version of it?). The connection goes on."""

    cause = Cause.SERVER


class EncodeError(RustTcpError, TypeError):
    """A value we cannot write in MessagePack. Nothing was sent."""

    cause = Cause.US


class Variant:
    """Derive a dataclass from this to encode it as an enum variant: its
    class name (or ``VARIANT``, if set) holding its fields. Without fields
    it is just the name, as serde writes a unit variant."""

    VARIANT: str | None = None


def variant(name: str, fields: Any = None) -> Any:
    """The MessagePack shape of an enum variant: ``variant("Watch")`` is
    ``"Watch"``, ``variant("Get", {"key": "k"})`` is ``{"Get": {"key": "k"}}``."""
    return name if fields is None else {name: fields}


def unpack_variant(value: Any) -> tuple[str, Any]:
    """``("Value", "v")`` for ``{"Value": "v"}``, ``("Watch", None)`` for
    ``"Watch"``; ``DecodeError`` for anything that is not a variant."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and len(value) == 1:
        ((name, fields),) = value.items()
        if isinstance(name, str):
            return name, fields
    raise DecodeError(f"not an enum variant: {value!r}")


def to_wire(value: Any) -> Any:
    """``value`` with dataclasses (and :class:`Variant` ones) turned into
    the maps serde expects."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Variant):
            name = value.VARIANT or type(value).__name__
            return name if not fields else {name: fields}
        return fields
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value


def encode(value: Any) -> bytes:
    try:
        packed: bytes = msgpack.packb(to_wire(value), use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise EncodeError(f"cannot encode {type(value).__name__} in MessagePack: {e}") from None
    return packed


def decode(data: bytes, what: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException, TypeError) as e:
        raise DecodeError(f"cannot decode the {what}: {e}") from None


@dataclass(frozen=True)
class Event:
    """An event of the protocol, decoded."""

    value: Any


@dataclass(frozen=True)
class Undecodable:
    """Binary that is not an event of this version; the connection goes on."""

    error: DecodeError


TypedPushed = Event | Undecodable | Pushed
"""What :meth:`TypedClient.events` yields: events, and everything else the
untyped client would (text, go-away, reconnection notices)."""


def _result(answer: Any) -> Any:
    """The value of serde's ``Result`` shape, or ``RemoteError``."""
    if isinstance(answer, dict) and len(answer) == 1:
        if "Ok" in answer:
            return answer["Ok"]
        if "Err" in answer:
            raise RemoteError(answer["Err"])
    raise DecodeError(f"the response is not {{'Ok': …}} or {{'Err': …}}: {answer!r}")


class TypedCall:
    """A streaming call of a typed protocol: its items decoded as they come,
    ours encoded as we send them; ``result()`` says how it ended (the
    protocol's own error as ``RemoteError``)."""

    def __init__(self, call: Call) -> None:
        self._call = call

    def __aiter__(self) -> TypedCall:
        return self

    async def __anext__(self) -> Any:
        return decode(await self._call.__anext__(), "item")

    async def send(self, item: Any) -> None:
        await self._call.send(encode(item))

    async def end(self) -> None:
        await self._call.end()

    async def result(self) -> None:
        """Waits for the end (dropping what is left of the stream)."""
        _result(decode(await self._call.result(), "the end of the stream"))

    def cancel(self) -> None:
        self._call.cancel()

    async def __aenter__(self) -> TypedCall:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._call.cancel()


class TypedClient:
    """A connection speaking an application protocol. Calls from many tasks
    are in flight together on the one connection.

        kv = AppProtocol("kv", 1, 1)
        async with await TypedClient.connect("127.0.0.1:8080", kv) as store:
            await store.call(variant("Set", {"key": "colour", "value": "blue"}))
    """

    def __init__(self, client: Client, choice: AppChoice) -> None:
        self._client = client
        self._choice = choice

    @classmethod
    async def connect(cls, addr: str, protocol: AppProtocol, **options: Any) -> TypedClient:
        """Connects asking for ``protocol`` in the handshake; ``options`` are
        :meth:`Client.connect`'s. A server that does not speak it (or none
        of our versions) refuses: ``HandshakeRefused`` naming both sides."""
        if tuple(protocol.encodings) != (Encoding.MSGPACK,):
            raise InvalidConfig("this client speaks MessagePack only (postcard needs the very same Rust types)")
        client = await Client.connect(addr, app_protocol=protocol, **options)
        choice = client.app_protocol
        if choice is None:  # the connection refuses such a WELCOME; kept as a guard
            await client.close()
            raise ProtocolError(CloseCode.HANDSHAKE_REFUSED, f"no {protocol.name} chosen in the WELCOME")
        return cls(client, choice)

    async def __aenter__(self) -> TypedClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def negotiated(self) -> AppChoice:
        """The version and encoding the handshake settled on."""
        return self._choice

    @property
    def untyped(self) -> Client:
        """The client underneath (text messages, server name, closing)."""
        return self._client

    async def call(self, request: Any, *, timeout: float | None = None) -> Any:
        """Calls the service: its response, or ``RemoteError`` with the
        protocol's error, ``RequestFailed`` if it could not handle the
        request at all (it did not decode), ``DecodeError`` for an answer
        that is not a ``Result``, or why the connection failed."""
        return _result(decode(await self._client.request(encode(request), timeout=timeout), "response"))

    async def call_with(
        self,
        request: Any,
        *,
        deadline: float | None = None,
        metadata: Mapping[str, bytes | str] | None = None,
    ) -> Any:
        """A call (spec 3.13): like :meth:`call`, with a deadline the server
        keeps too and metadata; cancelling the awaiting task cancels it on
        the server. ``CallError`` when it ends without an answer."""
        answer = await self._client.call(encode(request), deadline=deadline, metadata=metadata)
        return _result(decode(answer, "response"))

    async def stream(
        self,
        request: Any,
        *,
        window: int = 256,
        deadline: float | None = None,
        metadata: Mapping[str, bytes | str] | None = None,
        client_stream: bool = False,
    ) -> TypedCall:
        """A streaming call: the server answers with a stream of the
        protocol's items, at most ``window`` ahead of our reading
        (``async for item in call``); with ``client_stream`` we send items
        too (``await call.send(item)``, ``await call.end()``). Leaving it
        early (``cancel()``, ``async with``) cancels it on the server."""
        call = await self._client.open_call(
            encode(request),
            deadline=deadline,
            metadata=metadata,
            server_stream=window,
            client_stream=client_stream,
        )
        return TypedCall(call)

    async def send(self, message: Any) -> None:
        """Sends a one-way message (BINARY)."""
        await self._client.send_binary(encode(message))

    def events(self) -> AsyncIterator[TypedPushed]:
        """The server's events, decoded (see :meth:`Client.incoming`)."""
        return self._events(self._client.incoming())

    async def _events(self, incoming: AsyncIterator[Pushed]) -> AsyncIterator[TypedPushed]:
        async for pushed in incoming:
            if isinstance(pushed, Binary):
                try:
                    yield Event(decode(pushed.data, "event"))
                except DecodeError as e:
                    yield Undecodable(e)
            else:
                yield pushed

    async def close(self) -> None:
        """The close handshake (see :meth:`Client.close`)."""
        await self._client.close()


REFLECTION_KEY = "rust-tcp-schema"
"""The metadata key of a call that asks a server for its schema (spec 3.13.1)."""


async def fetch_schema(client: Client) -> dict[str, Any]:
    """The schema of the protocol the server speaks (spec 3.13.1), as the
    JSON object ``python -m rust_tcp generate`` reads: the server must have
    reflection on (``Typed::reflection``), else ``CallError`` with its
    reason. ``client`` need not have asked for the protocol."""
    answer = await client.call(b"", metadata={REFLECTION_KEY: b""})
    try:
        schema = json.loads(answer)
    except ValueError as e:
        raise DecodeError(f"the schema is not JSON: {e}") from None
    if not isinstance(schema, dict):
        raise DecodeError("the schema is not a JSON object")
    return schema
