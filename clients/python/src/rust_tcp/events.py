"""What arrives without being asked: the server's pushes, and the client's
own notices about its connection (lost, reconnected). ``Client.incoming()``
yields these, in arrival order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Text:
    """A text message (in a chat room: ``NAME: TEXT`` from another client)."""

    text: str


@dataclass(frozen=True)
class Binary:
    """Bytes (on a typed connection: an event, see ``rust_tcp.typed``)."""

    data: bytes


@dataclass(frozen=True)
class ServerError:
    """An ERROR frame: the server reports something that does not end the
    session."""

    code: int
    reason: str


@dataclass(frozen=True)
class GoAway:
    """The server is shutting down: finish what is in flight and close (a
    reconnecting client moves to a new connection by itself)."""

    code: int
    reason: str


@dataclass(frozen=True)
class Disconnected:
    """Not from the server: the connection was lost or the server went away
    (``why``), and the client is reconnecting."""

    why: str


@dataclass(frozen=True)
class Reconnected:
    """Not from the server: connected again, to this server."""

    server_name: str


@dataclass(frozen=True)
class ReconnectFailed:
    """Not from the server: an attempt to reconnect failed. With
    ``gave_up`` it was the last one allowed; the stream ends after this."""

    attempt: int
    error: str
    gave_up: bool


@dataclass(frozen=True)
class Overflowed:
    """Not from the server: the application let ``unread`` pushes pile up
    (``incoming_capacity``), so the client ended the connection (CLOSE 1011,
    telling the server why) rather than drop pushes without a word or leave
    calls waiting. Every waiting call fails with ``ConnectionClosed`` caused
    by us. A reconnecting client then reconnects; what the server sent in
    between is lost, which this notice says."""

    unread: int


@dataclass(frozen=True)
class Resumed:
    """Not from the server: connected again and the session resumed (spec
    3.14): nothing was lost either way. The ``replayed`` frames the server
    sent while we were away follow this notice, in order; ``resent`` of ours
    were sent again."""

    replayed: int
    resent: int


@dataclass(frozen=True)
class ResumeRefused:
    """Not from the server: the session could not be resumed (``reason``)
    and a new one began (``Reconnected`` follows). Requests in flight failed
    as interrupted; what the server sent while we were away is lost, and
    ``unacknowledged`` frames of ours may or may not have arrived."""

    reason: str
    unacknowledged: int


Pushed = (
    Text
    | Binary
    | ServerError
    | GoAway
    | Disconnected
    | Reconnected
    | ReconnectFailed
    | Overflowed
    | Resumed
    | ResumeRefused
)
"""Anything ``Client.incoming()`` yields."""
