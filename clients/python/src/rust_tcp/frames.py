"""The v2 wire format, without any I/O: frame types, close codes, and the
encoding and decoding of each frame (docs/PROTOCOL.md, section 3).

Everything here works on ``bytes``; the connection (``connection.py``)
feeds it what the socket delivered and writes what it returns. Keeping the
format apart from the socket is what lets the tests check it byte for byte
against the spec's hex examples.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

VERSION = 2
"""The protocol version this package speaks (the first byte of every frame)."""

HEADER = struct.Struct(">BBI")
"""version u8, type u8, payload length u32."""

HEADER_LEN = HEADER.size

MIN_MAX_FRAME = 1024
"""The smallest ``max_frame`` anyone may announce (spec 3.3)."""

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
"""What we announce unless told otherwise, as the Rust client does."""

MAX_NAME_BYTES = 64

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_ID_STATUS = struct.Struct(">IB")


class FrameType(enum.IntEnum):
    """The type byte of a v2 frame (spec 3.2)."""

    HELLO = 0x01
    WELCOME = 0x02
    TEXT = 0x03
    BINARY = 0x04
    REQUEST = 0x05
    RESPONSE = 0x06
    PING = 0x07
    PONG = 0x08
    ERROR = 0x09
    CLOSE = 0x0A
    GOAWAY = 0x0B
    # Calls (spec 3.13), only once both sides agreed to them.
    CALL = 0x0C
    ITEM = 0x0D
    CREDIT = 0x0E
    END = 0x0F
    CANCEL = 0x10
    STATUS = 0x11
    # Resumable sessions (spec 3.14).
    ACK = 0x12


KNOWN_TYPES = frozenset(int(t) for t in FrameType)


class CloseCode(enum.IntEnum):
    """Close codes (spec 3.8): a peer acts on the code, people read the reason."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_DATA = 1003
    POLICY_VIOLATION = 1008
    FRAME_TOO_LARGE = 1009
    HANDSHAKE_REFUSED = 1010
    INTERNAL_ERROR = 1011
    SLOW_CONSUMER = 1013
    HEARTBEAT_TIMEOUT = 1014
    REQUEST_FAILED = 1015
    SERVER_FULL = 1016


def describe_code(code: int) -> str:
    """``1009 (frame too large)``, or just the number for a code we do not know."""
    try:
        return f"{code} ({CloseCode(code).name.lower().replace('_', ' ')})"
    except ValueError:
        return str(code)


class Encoding(enum.IntEnum):
    """Encodings of an application protocol's messages (spec 3.3.2)."""

    MSGPACK = 1
    POSTCARD = 2


EXT_AUTH_TOKEN = 0x0001
EXT_APP_PROTOCOL = 0x0002
EXT_CALLS = 0x0003
CALLS_VERSION = 1
EXT_CRITICAL = 0x8000


class FrameError(Exception):
    """A frame that breaks the format. ``code`` is the CLOSE code that tells
    the sender what it did wrong."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def malformed(reason: str) -> FrameError:
    return FrameError(CloseCode.PROTOCOL_ERROR, reason)


# ---- encoding ----


def frame(kind: int, payload: bytes = b"") -> bytes:
    """One whole frame: the header, then ``payload``."""
    return HEADER.pack(VERSION, kind, len(payload)) + payload


def code_reason(kind: int, code: int, reason: str) -> bytes:
    """An ERROR, CLOSE or GOAWAY frame."""
    return frame(kind, _U16.pack(code) + reason.encode())


def request(request_id: int, payload: bytes) -> bytes:
    """A REQUEST frame, with its header packed in one step (the hot path)."""
    return HEADER.pack(VERSION, FrameType.REQUEST, 4 + len(payload)) + _U32.pack(request_id) + payload


def ping(nonce: int) -> bytes:
    return frame(FrameType.PING, _U64.pack(nonce))


def pong(nonce: int) -> bytes:
    return frame(FrameType.PONG, _U64.pack(nonce))


@dataclass(frozen=True)
class AppProtocol:
    """The application protocol a client asks for in its HELLO (spec 3.3.2):
    a name, the range of its versions this client speaks, and the encodings
    it reads, most preferred first."""

    name: str
    min_version: int = 1
    max_version: int = 1
    encodings: tuple[Encoding, ...] = (Encoding.MSGPACK,)

    def __post_init__(self) -> None:
        ok = 1 <= len(self.name) <= 32 and all(c.isascii() and (c.isalnum() or c in "-_.") for c in self.name)
        if not ok:
            raise ValueError(f"application protocol name {self.name!r}: 1 to 32 ASCII letters, digits, '-', '_' or '.'")
        if not 0 <= self.min_version <= self.max_version <= 0xFFFF:
            raise ValueError(f"versions {self.min_version}-{self.max_version}: need 0 <= min <= max <= 65535")
        if not 1 <= len(self.encodings) <= 255:
            raise ValueError("at least one encoding")

    def encode(self) -> bytes:
        name = self.name.encode()
        return (
            bytes([len(name)])
            + name
            + _U16.pack(self.min_version)
            + _U16.pack(self.max_version)
            + bytes([len(self.encodings)])
            + bytes(int(e) for e in self.encodings)
        )


@dataclass(frozen=True)
class AppChoice:
    """What the server chose from an :class:`AppProtocol` offer."""

    name: str
    version: int
    encoding: int

    def __str__(self) -> str:
        try:
            encoding = Encoding(self.encoding).name.lower()
        except ValueError:
            encoding = f"encoding {self.encoding}"
        return f"{self.name} {self.version} ({encoding})"

    def fits(self, offer: AppProtocol) -> bool:
        return (
            self.name == offer.name
            and offer.min_version <= self.version <= offer.max_version
            and self.encoding in [int(e) for e in offer.encodings]
        )


def hello(
    name: str,
    max_frame: int,
    heartbeat_ms: int,
    token: str | None = None,
    app: AppProtocol | None = None,
    calls: bool = False,
    resume: bytes | None = None,
) -> bytes:
    """The HELLO frame (spec 3.3): versions [2], our limits, our name, and
    the extensions (token, application protocol, calls, resume) when there
    are any."""
    raw_name = name.encode()
    payload = bytes([1, VERSION]) + _U32.pack(max_frame) + _U32.pack(heartbeat_ms) + _U16.pack(len(raw_name)) + raw_name
    extensions: list[tuple[int, bytes]] = []
    if token is not None:
        extensions.append((EXT_AUTH_TOKEN, token.encode()))
    if app is not None:
        extensions.append((EXT_APP_PROTOCOL, app.encode()))
    if calls:
        extensions.append((EXT_CALLS, bytes([CALLS_VERSION])))
    if resume is not None:
        extensions.append((0x0004, resume))
    if extensions:
        payload += _U16.pack(len(extensions))
        for kind, data in extensions:
            payload += _U16.pack(kind) + _U16.pack(len(data)) + data
    return frame(FrameType.HELLO, payload)


# ---- calls (spec 3.13) ----

SERVER_STREAMS = 0x01
CLIENT_STREAMS = 0x02
MAX_METADATA_ENTRIES = 16
MAX_METADATA_BYTES = 4096

_CALL_HEAD = struct.Struct(">IBII")
_ID_ITEMS = struct.Struct(">II")


@dataclass(frozen=True)
class CallLimits:
    """What the server allows calls, from its WELCOME (spec 3.13)."""

    max_calls: int
    stream_credit: int
    max_deadline_ms: int


def check_metadata(metadata: list[tuple[str, bytes]]) -> str | None:
    """Why ``metadata`` cannot travel with a call, or None if it can."""
    if len(metadata) > MAX_METADATA_ENTRIES:
        return f"{len(metadata)} metadata entries; at most {MAX_METADATA_ENTRIES}"
    size = 1
    for key, value in metadata:
        raw = key.encode()
        if not 1 <= len(raw) <= 64 or not all(c in b"abcdefghijklmnopqrstuvwxyz0123456789-_." for c in raw):
            return f"metadata key {key!r}: 1 to 64 bytes of a-z, 0-9, '-', '_' or '.'"
        size += 3 + len(raw) + len(value)
    if size > MAX_METADATA_BYTES:
        return f"metadata of {size} bytes; at most {MAX_METADATA_BYTES}"
    return None


def call(
    call_id: int, flags: int, deadline_ms: int, credit: int, metadata: list[tuple[str, bytes]], payload: bytes
) -> bytes:
    """A CALL frame (metadata checked by the caller with :func:`check_metadata`)."""
    meta = bytearray([len(metadata)])
    for key, value in metadata:
        raw = key.encode()
        meta += bytes([len(raw)]) + raw + _U16.pack(len(value)) + value
    return frame(FrameType.CALL, _CALL_HEAD.pack(call_id, flags, deadline_ms, credit) + bytes(meta) + payload)


def item(call_id: int, payload: bytes) -> bytes:
    return frame(FrameType.ITEM, _U32.pack(call_id) + payload)


def credit(call_id: int, items: int) -> bytes:
    return frame(FrameType.CREDIT, _ID_ITEMS.pack(call_id, items))


def end(call_id: int) -> bytes:
    return frame(FrameType.END, _U32.pack(call_id))


def cancel(call_id: int) -> bytes:
    return frame(FrameType.CANCEL, _U32.pack(call_id))


def decode_item(payload: bytes) -> tuple[int, bytes]:
    if len(payload) < 4:
        raise malformed(f"ITEM payload of {len(payload)} bytes, needs at least 4")
    (call_id,) = _U32.unpack_from(payload)
    return int(call_id), payload[4:]


def decode_credit(payload: bytes) -> tuple[int, int]:
    if len(payload) != 8:
        raise malformed(f"CREDIT payload of {len(payload)} bytes, must be 8")
    call_id, items = _ID_ITEMS.unpack(payload)
    if items == 0:
        raise malformed("a credit of 0 items")
    return int(call_id), int(items)


def decode_status(payload: bytes) -> tuple[int, int, bytes]:
    """(id, status, body) of a STATUS; any status above 4 is an error."""
    if len(payload) < 5:
        raise malformed(f"STATUS payload of {len(payload)} bytes, needs at least 5")
    call_id, status = _ID_STATUS.unpack_from(payload)
    if status > 4:
        raise malformed(f"STATUS status {status}; only 0 to 4 exist")
    return int(call_id), int(status), payload[5:]


def decode_call_limits(data: bytes) -> CallLimits:
    if len(data) != 11 or data[0] != CALLS_VERSION:
        raise malformed("malformed calls extension: expected version 1 and 10 bytes of limits")
    (max_calls,) = _U16.unpack_from(data, 1)
    stream_credit, max_deadline = _ID_ITEMS.unpack_from(data, 3)
    return CallLimits(int(max_calls), int(stream_credit), int(max_deadline))


def check_name(name: str) -> str | None:
    """Why ``name`` cannot be a HELLO name, or None if it can (spec 3.3)."""
    raw = name.encode()
    if not 1 <= len(raw) <= MAX_NAME_BYTES:
        return f"the name must be 1 to {MAX_NAME_BYTES} bytes of UTF-8, not {len(raw)}"
    for c in name:
        if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F:
            return f"the name contains the control character U+{ord(c):04X}"
    return None


# ---- decoding ----


@dataclass
class Welcome:
    """The server's acceptance (spec 3.3)."""

    version: int
    max_frame: int
    heartbeat_ms: int
    server_name: str
    extensions: list[tuple[int, bytes]] = field(default_factory=list)

    def extension(self, kind: int) -> bytes | None:
        for k, data in self.extensions:
            if k == kind:
                return data
        return None


def text(payload: bytes, what: str) -> str:
    """``payload`` as UTF-8, or a FrameError naming where it went wrong."""
    try:
        return payload.decode()
    except UnicodeDecodeError as e:
        raise FrameError(
            CloseCode.INVALID_DATA,
            f"{what} is not valid UTF-8 (first invalid byte at offset {e.start} of the {what})",
        ) from None


def decode_code_reason(kind: str, payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        raise malformed(f"{kind} payload of {len(payload)} bytes, needs at least 2")
    (code,) = _U16.unpack_from(payload)
    return code, text(payload[2:], "reason")


def decode_nonce(kind: str, payload: bytes) -> int:
    if len(payload) != 8:
        raise malformed(f"{kind} payload of {len(payload)} bytes, must be 8")
    (nonce,) = _U64.unpack(payload)
    return int(nonce)


def decode_response(payload: bytes) -> tuple[int, int, bytes]:
    """(id, status, body) of a RESPONSE; any status but 0 and 1 is an error."""
    if len(payload) < 5:
        raise malformed(f"RESPONSE payload of {len(payload)} bytes, needs at least 5")
    request_id, status = _ID_STATUS.unpack_from(payload)
    if status > 1:
        raise malformed(f"RESPONSE status {status}; only 0 and 1 exist")
    return request_id, status, payload[5:]


class _Reader:
    """Walks a payload field by field, naming what is missing."""

    def __init__(self, payload: bytes, what: str) -> None:
        self.payload = payload
        self.at = 0
        self.what = what

    def take(self, n: int, field_name: str) -> bytes:
        if self.at + n > len(self.payload):
            raise malformed(f"{self.what} ends inside its {field_name}")
        piece = self.payload[self.at : self.at + n]
        self.at += n
        return piece

    def u8(self, field_name: str) -> int:
        return self.take(1, field_name)[0]

    def u16(self, field_name: str) -> int:
        return int(_U16.unpack(self.take(2, field_name))[0])

    def u32(self, field_name: str) -> int:
        return int(_U32.unpack(self.take(4, field_name))[0])

    def rest(self) -> int:
        return len(self.payload) - self.at


def decode_welcome(payload: bytes) -> Welcome:
    r = _Reader(payload, "WELCOME")
    version = r.u8("version")
    max_frame = r.u32("max_frame")
    heartbeat_ms = r.u32("heartbeat_ms")
    name_len = r.u16("name length")
    raw = r.take(name_len, "server name")
    try:
        name = raw.decode()
    except UnicodeDecodeError as e:
        raise FrameError(
            CloseCode.HANDSHAKE_REFUSED,
            f"the server name is not valid UTF-8 (first invalid byte at offset {e.start} of the name)",
        ) from None
    extensions: list[tuple[int, bytes]] = []
    if r.rest() > 0:
        count = r.u16("extension count")
        if count == 0:
            raise malformed("WELCOME has an extensions area with no extension")
        for _ in range(count):
            kind = r.u16("extension type")
            length = r.u16("extension length")
            extensions.append((kind, r.take(length, "extension data")))
        if r.rest() > 0:
            raise malformed(f"WELCOME has {r.rest()} bytes after its extensions")
    return Welcome(version, max_frame, heartbeat_ms, name, extensions)


def decode_app_choice(data: bytes) -> AppChoice:
    r = _Reader(data, "the application protocol extension")
    name_len = r.u8("name length")
    name = r.take(name_len, "name").decode("ascii", errors="replace")
    version = r.u16("version")
    encoding = r.u8("encoding")
    if r.rest() > 0:
        raise malformed(f"the application protocol extension has {r.rest()} bytes too many")
    return AppChoice(name, version, encoding)


def decode_unsupported_version(data: bytes) -> tuple[list[int], str] | None:
    """The frozen unsupported-version reply (spec 1.1), once it is whole;
    None while more bytes are needed."""
    if len(data) < 2:
        return None
    count = data[1]
    end = 2 + count
    if len(data) < end + 2:
        return None
    (reason_len,) = _U16.unpack_from(data, end)
    if len(data) < end + 2 + reason_len:
        return None
    reason = data[end + 2 : end + 2 + reason_len].decode(errors="replace")
    return list(data[2:end]), reason
