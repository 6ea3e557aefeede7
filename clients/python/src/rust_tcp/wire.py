"""What generated clients (``python -m rust_tcp generate``) use at run time:
decoded MessagePack values read into typed ones, checked as they are read,
so a server that answers with another shape than the schema said raises
:class:`~rust_tcp.typed.DecodeError` naming where (``response.job.prio``),
never hands back a wrong value; and :class:`Stream`, a streaming call whose
items are typed.

Nothing here is meant to be called by hand: the generated module is the
interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .typed import DecodeError, RemoteError, TypedCall

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

Reader = Callable[[Any, str], T]


def _wrong(at: str, expected: str, value: Any) -> DecodeError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return DecodeError(f"{at}: expected {expected}, got {shown}")


def read_none(v: Any, at: str) -> None:
    if v is not None and v != []:
        raise _wrong(at, "nothing (nil)", v)


def read_bool(v: Any, at: str) -> bool:
    if not isinstance(v, bool):
        raise _wrong(at, "a boolean", v)
    return v


def read_int(v: Any, at: str) -> int:
    # bool is an int in Python, never on the wire.
    if isinstance(v, bool) or not isinstance(v, int):
        raise _wrong(at, "an integer", v)
    return v


def read_big_int(v: Any, at: str, signed: bool = False) -> int:
    """A u128 (or, ``signed``, an i128), which rmp-serde writes as 16
    big-endian bytes."""
    if isinstance(v, bytes) and len(v) == 16:
        return int.from_bytes(v, "big", signed=signed)
    return read_int(v, at)


def write_big_int(x: int, signed: bool = False) -> bytes:
    """A u128 (or, ``signed``, an i128) as rmp-serde reads it."""
    return x.to_bytes(16, "big", signed=signed)


def read_float(v: Any, at: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _wrong(at, "a number", v)
    return float(v)


def read_str(v: Any, at: str) -> str:
    if not isinstance(v, str):
        raise _wrong(at, "a string", v)
    return v


def read_bytes(v: Any, at: str) -> bytes:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, list) and all(isinstance(b, int) and 0 <= b < 256 for b in v):
        return bytes(v)
    raise _wrong(at, "bytes", v)


def read_optional(v: Any, at: str, read: Reader[T]) -> T | None:
    return None if v is None else read(v, at)


def read_list(v: Any, at: str, read: Reader[T], length: int | None = None) -> list[T]:
    if not isinstance(v, (list, tuple)):
        raise _wrong(at, "an array", v)
    if length is not None and len(v) != length:
        raise _wrong(at, f"an array of {length}", v)
    return [read(item, f"{at}[{i}]") for i, item in enumerate(v)]


def read_array(v: Any, at: str, length: int) -> list[Any]:
    """A tuple's items, unread: the generated code reads each by its type."""
    if not isinstance(v, (list, tuple)) or len(v) != length:
        raise _wrong(at, f"an array of {length}", v)
    return list(v)


def read_dict(v: Any, at: str, read_key: Reader[K], read_value: Reader[V]) -> dict[K, V]:
    if not isinstance(v, dict):
        raise _wrong(at, "a map", v)
    return {read_key(k, f"{at} key"): read_value(item, f"{at}[{k!r}]") for k, item in v.items()}


def read_struct(v: Any, at: str, name: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _wrong(at, f"a {name} (a map of its fields)", v)
    return v


def field(struct: dict[str, Any], name: str, at: str) -> Any:
    """A field that must be there."""
    if name not in struct:
        raise DecodeError(f"{at}: missing field {name!r}")
    return struct[name]


def read_variant(v: Any, at: str, enum: str) -> tuple[str, Any]:
    """``(name, payload)`` of an enum value: a bare name for a variant
    without fields, else a map of one entry."""
    if isinstance(v, str):
        return v, None
    if isinstance(v, dict) and len(v) == 1:
        ((name, payload),) = v.items()
        if isinstance(name, str):
            return name, payload
    raise _wrong(at, f"a {enum} (a variant)", v)


def unknown_variant(at: str, enum: str, name: str) -> DecodeError:
    return DecodeError(f"{at}: {enum} has no variant {name!r} in this client's schema (a newer server?)")


def unwrap(answer: Any, variant: str, at: str) -> Any:
    """A service's answer to one call: its own variant of the response."""
    name, payload = read_variant(answer, at, "response")
    if name != variant:
        raise DecodeError(f"{at}: expected the answer to {variant}, got {name}")
    return payload


def write_optional(x: T | None, write: Callable[[T], Any]) -> Any:
    return None if x is None else write(x)


class Stream(Generic[T]):
    """A streaming call: ``async for item in stream`` reads the server's
    items, typed; ``await stream.send(item)`` and ``await stream.end()``
    send the client's own, when the call streams both ways. Leaving an
    ``async with`` block early cancels the call on the server; the end of
    the stream raises ``RemoteError`` (with the protocol's error, typed)
    when the call failed."""

    def __init__(
        self,
        call: TypedCall,
        read: Reader[T],
        write: Callable[[T], Any],
        read_error: Reader[Any],
    ) -> None:
        self._call = call
        self._read = read
        self._write = write
        self._read_error = read_error

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        try:
            item = await self._call.__anext__()
        except StopAsyncIteration:
            await self.result()
            raise
        return self._read(item, "item")

    async def send(self, item: T) -> None:
        await self._call.send(self._write(item))

    async def end(self) -> None:
        await self._call.end()

    async def result(self) -> None:
        """Waits for how the call ended: the protocol's error raises
        ``RemoteError`` with it read as the schema says."""
        try:
            await self._call.result()
        except RemoteError as e:
            raise RemoteError(self._read_error(e.error, "error")) from None

    def cancel(self) -> None:
        self._call.cancel()

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._call.__aexit__(*exc_info)
