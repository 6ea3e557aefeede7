"""Resumable sessions (spec 3.14), the client's part: the resume
extension's bytes, and what a session keeps so that a new connection can
pick it up — how many counted frames each side has had, and every counted
frame we sent that the server has not acknowledged.

Sequence numbers are implicit: the n-th counted frame we send is number n,
on whichever connection it travels. The server acknowledges with ACK (the
count it received); on a new connection our HELLO says how many of its
frames we received, its WELCOME how many of ours it had, and each side
sends the other what came after that.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from .frames import CloseCode, FrameError, FrameType, frame

EXT_RESUME = 0x0004
"""The HELLO's and WELCOME's resume extension."""

ID_LEN = 16

ACK_EVERY_FRAMES = 64
ACK_EVERY_BYTES = 64 * 1024
ACK_DELAY = 0.1
"""Acknowledge after this many counted frames, bytes, or seconds."""

COUNTED = frozenset(
    int(t)
    for t in (
        FrameType.TEXT,
        FrameType.BINARY,
        FrameType.REQUEST,
        FrameType.RESPONSE,
        FrameType.ERROR,
        FrameType.CALL,
        FrameType.ITEM,
        FrameType.CREDIT,
        FrameType.END,
        FrameType.CANCEL,
        FrameType.STATUS,
    )
)
"""The frame types a resumable session counts: what the application sent.
The handshake, PING, PONG, CLOSE, GOAWAY and ACK belong to one connection."""

REFUSALS = {
    1: "unknown session",
    2: "session expired",
    3: "wrong resume token",
    4: "the session's replay buffer overflowed",
    5: "the HELLO does not match the session's",
    6: "the ticket's position cannot be replayed from",
    7: "the server keeps no resumable sessions now",
}
"""Why a server refuses a resume, by the WELCOME's reason byte."""

_ASK = struct.Struct(">BI")
_GRANT = struct.Struct(">BBI16s16sQQ")
_U64 = struct.Struct(">Q")


def ack(count: int) -> bytes:
    """An ACK frame: ``count`` counted frames received in the session."""
    return frame(FrameType.ACK, _U64.pack(count))


def decode_ack(payload: bytes) -> int:
    if len(payload) != 8:
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"ACK payload of {len(payload)} bytes, not 8")
    (count,) = _U64.unpack(payload)
    return int(count)


@dataclass(frozen=True)
class Grant:
    """The WELCOME's resume extension."""

    status: int
    """0: a new session; 1: resumed; 2: refused (``reason``), a new session."""
    reason: int
    expiry_ms: int
    session_id: bytes
    token: bytes
    received: int
    """Resumed: counted frames the server had received from us."""
    sent: int
    """Resumed: counted frames the server has sent in the session."""

    @property
    def refusal(self) -> str:
        return REFUSALS.get(self.reason, f"reason {self.reason}")


def decode_grant(data: bytes) -> Grant:
    if len(data) != _GRANT.size:
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"malformed resume extension: {len(data)} bytes")
    status, reason, expiry, session_id, token, received, sent = _GRANT.unpack(data)
    valid = (status in (0, 1) and reason == 0) or (status == 2 and reason in REFUSALS)
    if not valid:
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"malformed resume extension: status {status}, reason {reason}")
    return Grant(status, reason, expiry, session_id, token, received, sent)


class Resumable:
    """A resumable session's counters and replay buffer, kept across the
    connections it has. See the module's docs."""

    def __init__(self, session_id: bytes, token: bytes, expiry_ms: int, max_bytes: int) -> None:
        self.session_id = session_id
        self.token = token
        self.expiry_ms = expiry_ms
        self.max_bytes = max_bytes
        self.sent = 0
        """Counted frames sent."""
        self.first = 0
        """The number of the first frame held: how many the server acknowledged."""
        self._replay: deque[bytes] = deque()
        self._replay_bytes = 0
        self.overflowed = False
        """More was sent than the buffer holds: no resume is possible."""
        self.received = 0
        """Counted frames received."""
        self.acked = 0
        """The count our last ACK said."""
        self.unacked_bytes = 0

    @property
    def resumable(self) -> bool:
        return not self.overflowed

    @property
    def unacknowledged(self) -> int:
        """Frames we sent that the server has not acknowledged."""
        return self.sent - self.first

    def ask(self, expiry_ms: int, resuming: bool) -> bytes:
        """The HELLO's extension data: a new session, or this one's ticket."""
        if not resuming:
            return _ASK.pack(0, expiry_ms)
        return _ASK.pack(1, expiry_ms) + self.session_id + self.token + _U64.pack(self.received)

    def sent_frame(self, data: bytes) -> None:
        """A counted frame (whole, header included) goes out: kept until
        acknowledged."""
        self.sent += 1
        if self.overflowed:
            return
        self._replay.append(data)
        self._replay_bytes += len(data)
        if self._replay_bytes > self.max_bytes:
            self.overflowed = True
            self._replay.clear()
            self._replay_bytes = 0

    def received_frame(self, size: int) -> bool:
        """A counted frame of ``size`` bytes arrived; whether an ACK is due now."""
        self.received += 1
        self.unacked_bytes += size
        return self.received - self.acked >= ACK_EVERY_FRAMES or self.unacked_bytes >= ACK_EVERY_BYTES

    def ack_now(self) -> bytes | None:
        """The ACK to send, if anything is unacknowledged."""
        if self.received == self.acked:
            return None
        self.acked = self.received
        self.unacked_bytes = 0
        return ack(self.received)

    def acknowledged(self, count: int) -> None:
        """The server's ACK: it has ``count`` of our frames."""
        if count > self.sent or count < self.first:
            raise FrameError(
                CloseCode.PROTOCOL_ERROR,
                f"ACK of {count} frames, but {self.sent} were sent and {self.first} already acknowledged",
            )
        self._trim(count)

    def _trim(self, upto: int) -> None:
        while self.first < upto and self._replay:
            self._replay_bytes -= len(self._replay.popleft())
            self.first += 1

    def resumed(self, server_received: int) -> list[bytes]:
        """The server resumed us having had ``server_received`` of our frames:
        the frames to send again, in order (and what it had is let go)."""
        if server_received > self.sent or server_received < self.first:
            raise FrameError(
                CloseCode.PROTOCOL_ERROR,
                f"the server resumed at {server_received}, but we sent {self.sent} and it acknowledged {self.first}",
            )
        self._trim(server_received)
        self.acked = self.received
        self.unacked_bytes = 0
        return list(self._replay)
