"""What can go wrong, and who caused it.

Every exception here derives from :class:`RustTcpError` and carries
``cause``: whether *we* refused (our configuration, a local limit), the
*server* refused or closed by the rules, the *network* failed, or the server
*broke the protocol*. That is what a caller decides on: fix the
configuration, report, or retry.
"""

from __future__ import annotations

import enum

from .frames import describe_code


class Cause(enum.Enum):
    """Who caused an error (as the Rust client's ``Cause``)."""

    US = "by us"
    SERVER = "by the server"
    NETWORK = "by the network"
    PROTOCOL_VIOLATION = "by a protocol violation"


class RustTcpError(Exception):
    """The base of every error this package raises."""

    cause: Cause = Cause.US

    @property
    def is_remote(self) -> bool:
        """The server caused it (by the rules, or by breaking them)."""
        return self.cause in (Cause.SERVER, Cause.PROTOCOL_VIOLATION)

    @property
    def is_network(self) -> bool:
        return self.cause is Cause.NETWORK


class InvalidConfig(RustTcpError, ValueError):
    """The configuration cannot work (found before connecting)."""

    cause = Cause.US


class ConnectError(RustTcpError, OSError):
    """Nobody accepted the connection, or it broke before the handshake."""

    cause = Cause.NETWORK


class TlsError(ConnectError):
    """The TLS handshake failed: an untrusted or expired certificate, a name
    that does not match, or one side speaks TLS and the other does not."""


class ConnectTimeout(RustTcpError, TimeoutError):
    """Connecting or the handshake took longer than ``connect_timeout``."""

    cause = Cause.NETWORK


class HandshakeRefused(RustTcpError):
    """The server answered our HELLO with CLOSE: a wrong token (1008), a bad
    name or an application protocol it does not speak (1010), a full
    server (1016)…"""

    cause = Cause.SERVER

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"server refused the connection: {describe_code(code)}: {reason}")
        self.code = code
        self.reason = reason


class UnsupportedVersion(HandshakeRefused):
    """The server does not speak v2 (its frozen reply lists what it does)."""

    def __init__(self, versions: list[int], reason: str) -> None:
        RustTcpError.__init__(self, f"server does not speak our protocol version: {reason} (it speaks {versions})")
        self.code = 0
        self.reason = reason
        self.versions = versions


class ProtocolError(RustTcpError):
    """The server broke the protocol. We sent it CLOSE with ``code`` and
    ``reason`` and dropped the connection."""

    cause = Cause.PROTOCOL_VIOLATION

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the server broke the protocol ({describe_code(code)}): {reason}")
        self.code = code
        self.reason = reason


class ConnectionClosed(RustTcpError):
    """The connection is over: closed by us, by the server (``code`` is its
    CLOSE code), or lost on the network (``code`` is None)."""

    def __init__(self, by: Cause, reason: str, code: int | None = None) -> None:
        super().__init__(f"connection closed {by.value}: {reason}")
        self.cause = by
        self.reason = reason
        self.code = code


class Interrupted(RustTcpError):
    """The connection was lost (or the server went away) while this request
    was in flight, and a reconnecting client has moved on. The request was
    not resent, since the server may have acted on it: send it again if
    that is safe."""

    cause = Cause.NETWORK

    def __init__(self, why: str) -> None:
        super().__init__(f"interrupted, not resent: {why}")
        self.why = why


class RequestFailed(RustTcpError):
    """The server answered the request with a failure (RESPONSE status 1)."""

    cause = Cause.SERVER

    def __init__(self, reason: str) -> None:
        super().__init__(f"request failed: {reason}")
        self.reason = reason


class RequestTimeout(RustTcpError, TimeoutError):
    """No response within the request's time limit. Local: the connection is
    unharmed, and a late answer is dropped."""

    cause = Cause.US

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no response within {seconds:g}s")
        self.seconds = seconds


class NotSent(RustTcpError):
    """Our side refused to send: too large for the server, the server is
    going away, or the connection is closing. Nothing was sent."""

    cause = Cause.US
