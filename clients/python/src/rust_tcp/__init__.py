"""A Python client for rust-tcp servers: protocol v2 over TCP or TLS, on
asyncio.

    import asyncio
    from rust_tcp import Client

    async def main() -> None:
        async with await Client.connect("127.0.0.1:8080", name="py") as client:
            print(await client.request(b"ping"))

    asyncio.run(main())

``rust_tcp.typed`` speaks a typed application protocol (MessagePack) with a
Rust ``typed`` service; ``python -m rust_tcp`` is a command line.
"""

from .calls import Call, CallError, CallStatus
from .client import Client, Reconnect, tls_context
from .errors import (
    Cause,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    HandshakeRefused,
    Interrupted,
    InvalidConfig,
    NotSent,
    ProtocolError,
    RequestFailed,
    RequestTimeout,
    RustTcpError,
    TlsError,
    UnsupportedVersion,
)
from .events import (
    Binary,
    Disconnected,
    GoAway,
    Overflowed,
    Pushed,
    Reconnected,
    ReconnectFailed,
    Resumed,
    ResumeRefused,
    ServerError,
    Text,
)
from .frames import AppChoice, AppProtocol, CloseCode, Encoding

__all__ = [
    "AppChoice",
    "AppProtocol",
    "Binary",
    "Call",
    "CallError",
    "CallStatus",
    "Cause",
    "Client",
    "CloseCode",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "Disconnected",
    "Encoding",
    "GoAway",
    "HandshakeRefused",
    "Interrupted",
    "InvalidConfig",
    "NotSent",
    "Overflowed",
    "ProtocolError",
    "Pushed",
    "Reconnect",
    "ReconnectFailed",
    "Reconnected",
    "RequestFailed",
    "RequestTimeout",
    "ResumeRefused",
    "Resumed",
    "RustTcpError",
    "ServerError",
    "Text",
    "TlsError",
    "UnsupportedVersion",
    "tls_context",
]

__version__ = "0.1.0"
