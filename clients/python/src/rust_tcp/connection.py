"""One connection and its v2 session: the handshake, the frames each way,
requests matched to responses, heartbeats and the close handshake.

It is an ``asyncio.Protocol`` rather than a task reading a stream: bytes
are decoded in the callback that delivers them and each response resolves
its caller's future at once, with no task switch per frame. That is most
of a request's cost in Python, so it is what makes many requests in flight
on one connection cheap.

``Client`` (``client.py``) owns one of these at a time and replaces it when
a reconnecting client moves on; nothing here knows about reconnecting
except that requests cut off then fail as ``Interrupted``.
"""

from __future__ import annotations

import asyncio
import enum
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from . import frames
from .calls import Route
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
    RustTcpError,
    TlsError,
    UnsupportedVersion,
)
from .events import Binary, GoAway, Pushed, Resumed, ServerError, Text
from .frames import CloseCode, FrameError, FrameType
from .resume import ACK_DELAY, COUNTED, EXT_RESUME, Resumable, decode_ack, decode_grant

_HEADER = frames.HEADER
_HEADER_LEN = frames.HEADER_LEN
_TEXT = int(FrameType.TEXT)
_BINARY = int(FrameType.BINARY)
_RESPONSE = int(FrameType.RESPONSE)
_FLUSH_AT = 64 * 1024
_CALL_FRAMES = frozenset(
    (FrameType.ITEM, FrameType.CREDIT, FrameType.STATUS, FrameType.CALL, FrameType.END, FrameType.CANCEL)
)


class State(enum.Enum):
    """Where the session is (spec 3.10, from the client's side)."""

    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"  # we sent CLOSE and wait for the acknowledgement
    CLOSED = "closed"


@dataclass
class Settings:
    """What one connection needs to know: the HELLO's fields and our limits."""

    name: str
    max_frame: int
    heartbeat_ms: int
    token: str | None
    app: frames.AppProtocol | None
    interrupts: bool
    """Requests cut off by a lost connection fail as ``Interrupted`` (the
    client is reconnecting) rather than ``ConnectionClosed``."""
    calls: bool = True
    """Ask for calls (spec 3.13) in the HELLO."""
    resume_expiry_ms: int | None = None
    """Ask for a resumable session (spec 3.14) kept this long after a loss."""
    resume_max_bytes: int = 1024 * 1024
    """The most bytes of unacknowledged frames kept for a resume."""


def _peer_text(raw: str, limit: int = 200) -> str:
    """A server's words made safe to print on one line."""
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in raw[:limit])
    return shown + ("…" if len(raw) > limit else "")


class Link(asyncio.Protocol):
    """One TCP (or TLS) connection speaking v2."""

    def __init__(
        self,
        settings: Settings,
        on_push: Callable[[Link, Pushed], None],
        on_end: Callable[[Link], None],
        resuming: Link | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        # Resumable sessions (spec 3.14): the session this connection asks
        # to resume, the one it serves, and how the WELCOME answered.
        self._resuming = resuming
        self.resume: Resumable | None = None
        self.resumed: tuple[int, int] | None = None
        """Resumed: (frames the server replays, frames we sent again)."""
        self.refused: str | None = None
        """Why the server would not resume ``resuming``."""
        self.successor: Link | None = None
        """The connection that resumed this one's session."""
        self._ack_timer: asyncio.TimerHandle | None = None
        self.settings = settings
        self._on_push = on_push
        self._on_end = on_end
        self.transport: asyncio.Transport | None = None
        self.state = State.HANDSHAKE
        self._buf = bytearray()
        self._welcomed: asyncio.Future[frames.Welcome] = self._loop.create_future()
        self._acked: asyncio.Future[None] | None = None
        # Requests in flight: id -> the caller's future. A future whose
        # caller gave up (cancelled, timed out) stays here until its
        # response arrives, so its id is not reused while the server may
        # still answer it.
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._next_id = 0
        self.going_away = False
        self.server_name = ""
        self.peer_max_frame = frames.MIN_MAX_FRAME
        self.heartbeat = 0.0
        self.app: frames.AppChoice | None = None
        self.end: RustTcpError | None = None
        self._ended = asyncio.Event()
        self._write_paused = False
        self._drained: list[asyncio.Future[None]] = []
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._last_heard = self._loop.time()
        self._pinged = False
        self._beat: asyncio.TimerHandle | None = None
        # Calls in flight (spec 3.13), by id, until their STATUS arrives.
        self.call_limits: frames.CallLimits | None = None
        self._calls: dict[int, Route] = {}
        self._next_call = 0

    @property
    def closed(self) -> bool:
        """The session is over (read anew after each step that may end it)."""
        return self.state is State.CLOSED

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        s = self.settings
        ask = None
        if s.resume_expiry_ms is not None:
            old = self._resuming.resume if self._resuming is not None else None
            if old is not None:
                ask = old.ask(s.resume_expiry_ms, resuming=True)
            else:
                ask = Resumable(b"", b"", 0, 0).ask(s.resume_expiry_ms, resuming=False)
        transport.write(frames.hello(s.name, s.max_frame, s.heartbeat_ms, s.token, s.app, s.calls, ask))

    def data_received(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        self._last_heard = self._loop.time()
        buf = self._buf
        buf += data
        if self.state is State.HANDSHAKE and buf[0] != frames.VERSION:
            self._not_v2(buf)
            return
        at = 0
        size = len(buf)
        limit = self.settings.max_frame
        try:
            while size - at >= _HEADER_LEN:
                version, kind, length = _HEADER.unpack_from(buf, at)
                if version != frames.VERSION:
                    raise frames.malformed(f"a frame begins with version byte {version}, not 2")
                if kind not in frames.KNOWN_TYPES:
                    raise frames.malformed(f"unknown frame type 0x{kind:02x}")
                if length > limit:
                    # Refused from the header: a server cannot make us
                    # buffer more than we announced (spec 3.4).
                    raise FrameError(
                        CloseCode.FRAME_TOO_LARGE,
                        f"frame of {length} bytes exceeds the limit of {limit}",
                    )
                end = at + _HEADER_LEN + length
                if end > size:
                    break
                payload = bytes(buf[at + _HEADER_LEN : end])
                at = end
                if kind == _RESPONSE:
                    self._response(payload)
                else:
                    self._frame(kind, payload)
                if self.closed:
                    return
                if self.resume is not None and kind in COUNTED:
                    self._count(_HEADER_LEN + length)
            if at < size and buf[at] != frames.VERSION:
                # Known from its first byte: no need to wait for a header.
                raise frames.malformed(f"a frame begins with version byte {buf[at]}, not 2")
        except FrameError as e:
            self._violation(e.code, e.reason)
            return
        del buf[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state is State.CLOSED:
            return
        if self.state is State.HANDSHAKE and self._buf and self._buf[0] != frames.VERSION:
            self._not_v2(self._buf, at_end=True)
            if self.closed:
                return
        if isinstance(exc, ssl.SSLError):
            # TLS 1.3 lets the server refuse (no client certificate, say)
            # after our side of the TLS handshake is done.
            self._finish(TlsError(f"TLS: the server ended the connection: {exc.reason or exc}"))
            return
        why = f"connection lost: {exc}" if exc else "the server closed the connection without a CLOSE"
        if self.state is State.HANDSHAKE:
            why = f"the server closed during the handshake ({why})"
        self._finish(ConnectionClosed(Cause.NETWORK, why))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiters, self._drained = self._drained, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    # ---- the handshake ----

    async def welcomed(self) -> frames.Welcome:
        return await asyncio.shield(self._welcomed)

    def _not_v2(self, buf: bytearray, at_end: bool = False) -> None:
        """The server's first byte is not a v2 frame's."""
        first = buf[0]
        if first == 0:
            reply = frames.decode_unsupported_version(bytes(buf))
            if reply is None:
                if at_end:
                    self._finish(ConnectError("the server's unsupported-version reply was cut short"))
                return  # wait for the rest of it
            versions, reason = reply
            self._finish(UnsupportedVersion(versions, _peer_text(reason)), close_transport=True)
        elif first in (0x15, 0x16):
            self._finish(
                TlsError("the server speaks TLS; connect with TLS (tls=True or a CA file)"), close_transport=True
            )
        else:
            self._violation(CloseCode.PROTOCOL_ERROR, f"expected a v2 WELCOME, got first byte 0x{first:02x}")

    def _welcome(self, payload: bytes) -> None:
        w = frames.decode_welcome(payload)
        refuse = CloseCode.HANDSHAKE_REFUSED
        if w.version != frames.VERSION:
            raise FrameError(refuse, f"server chose version {w.version}; we asked for 2")
        if w.max_frame < frames.MIN_MAX_FRAME:
            raise FrameError(refuse, f"server max_frame {w.max_frame} is below the minimum of 1024")
        for kind, _ in w.extensions:
            if kind & frames.EXT_CRITICAL:
                raise FrameError(refuse, f"critical extension 0x{kind:04x} is not supported")
        offer = self.settings.app
        if offer is not None:
            data = w.extension(frames.EXT_APP_PROTOCOL)
            if data is None:
                raise FrameError(refuse, f"the server speaks no application protocol; we asked for {offer.name}")
            choice = frames.decode_app_choice(data)
            if not choice.fits(offer):
                raise FrameError(refuse, f"the server chose {choice}, which we did not offer")
            self.app = choice
        if self.settings.calls:
            data = w.extension(frames.EXT_CALLS)
            if data is not None:
                self.call_limits = frames.decode_call_limits(data)
        grant_data = w.extension(EXT_RESUME) if self.settings.resume_expiry_ms is not None else None
        grant = decode_grant(grant_data) if grant_data is not None else None
        old_link = self._resuming
        old = old_link.resume if old_link is not None else None
        if grant is not None and grant.status == 1:
            if old_link is None or old is None or grant.session_id != old.session_id:
                raise frames.malformed("the server resumed a session we did not ask for")
            self.resume = old
            resent = old.resumed(grant.received)
            self.resumed = (max(grant.sent - old.received, 0), len(resent))
            # What waited on the old connection is answered here, starting
            # with the frames the server replays in this very read.
            self.adopt(old_link)
            self._on_push(self, Resumed(*self.resumed))
            for data in resent:
                self._write(data)
        elif grant is not None:
            self.resume = Resumable(grant.session_id, grant.token, grant.expiry_ms, self.settings.resume_max_bytes)
            if old is not None:
                self.refused = grant.refusal
        elif old is not None:
            self.refused = "the server does not resume sessions"
        self.state = State.OPEN
        self.server_name = w.server_name
        self.peer_max_frame = w.max_frame
        self.heartbeat = w.heartbeat_ms / 1000
        if self.heartbeat > 0:
            self._beat = self._loop.call_later(self.heartbeat, self._heartbeat)
        self._welcomed.set_result(w)

    # ---- frames in ----

    def _frame(self, kind: int, payload: bytes) -> None:
        state = self.state
        if state is State.HANDSHAKE:
            if kind == FrameType.WELCOME:
                self._welcome(payload)
            elif kind == FrameType.CLOSE:
                code, reason = frames.decode_code_reason("CLOSE", payload)
                self._finish(HandshakeRefused(code, _peer_text(reason)), close_transport=True)
            else:
                raise frames.malformed(f"expected WELCOME first, got {FrameType(kind).name}")
            return
        if kind == _TEXT:
            self._on_push(self, Text(frames.text(payload, "text")))
        elif kind == _BINARY:
            self._on_push(self, Binary(payload))
        elif kind == FrameType.PING:
            nonce = frames.decode_nonce("PING", payload)
            if state is State.OPEN:  # after our CLOSE we send nothing, not even a PONG
                self._write(frames.pong(nonce))
        elif kind == FrameType.PONG:
            frames.decode_nonce("PONG", payload)
        elif kind == FrameType.ERROR:
            code, reason = frames.decode_code_reason("ERROR", payload)
            self._on_push(self, ServerError(code, _peer_text(reason)))
        elif kind == FrameType.GOAWAY:
            code, reason = frames.decode_code_reason("GOAWAY", payload)
            self.going_away = True
            self._on_push(self, GoAway(code, _peer_text(reason)))
        elif kind == FrameType.CLOSE:
            self._peer_close(*frames.decode_code_reason("CLOSE", payload))
        elif kind == FrameType.ACK and self.resume is not None:
            self.resume.acknowledged(decode_ack(payload))
        elif kind in _CALL_FRAMES and self.call_limits is not None:
            self._call_frame(kind, payload)
        else:  # HELLO, WELCOME again, REQUEST: not for a client to receive
            raise frames.malformed(f"unexpected {FrameType(kind).name} frame for a client in state {state.value}")

    def _response(self, payload: bytes) -> None:
        if self.state is State.HANDSHAKE:
            raise frames.malformed("expected WELCOME first, got RESPONSE")
        request_id, status, body = frames.decode_response(payload)
        waiter = self._waiting.pop(request_id, None)
        if waiter is None or waiter.done():
            return  # its caller gave up, or an id we never sent: dropped
        if status == 0:
            waiter.set_result(body)
        else:
            waiter.set_exception(RequestFailed(_peer_text(frames.text(body, "reason"), 1000)))

    def _call_frame(self, kind: int, payload: bytes) -> None:
        """ITEM, CREDIT or STATUS for one of our calls (spec 3.13). The
        server sends nothing for a call after its STATUS, so a frame for a
        call not in flight, or past the credit we granted, breaks the rules."""
        if kind == FrameType.ITEM:
            call_id, body = frames.decode_item(payload)
            route = self._call_route(call_id, "ITEM")
            if not route.server_streams:
                raise frames.malformed(f"ITEM for call {call_id}, which has no server stream")
            if route.recv_credit == 0:
                raise frames.malformed(f"ITEM for call {call_id} beyond the credit granted")
            route.recv_credit -= 1
            route.items.put_nowait(body)
        elif kind == FrameType.CREDIT:
            call_id, items = frames.decode_credit(payload)
            route = self._call_route(call_id, "CREDIT")
            if not route.client_streams:
                raise frames.malformed(f"CREDIT for call {call_id}, which has no client stream")
            route.granted(items)
        elif kind == FrameType.STATUS:
            call_id, status, body = frames.decode_status(payload)
            self._call_route(call_id, "STATUS")
            self._calls.pop(call_id).finish(status, body)
        else:  # CALL, END, CANCEL: the client's to send
            raise frames.malformed(f"unexpected {FrameType(kind).name} frame for a client")

    def _call_route(self, call_id: int, what: str) -> Route:
        route = self._calls.get(call_id)
        if route is None:
            raise frames.malformed(f"{what} for call {call_id}, which is not in flight")
        return route

    def _peer_close(self, code: int, reason: str) -> None:
        if self.state is State.CLOSING:
            # The acknowledgement of our CLOSE: everything we sent before it
            # was processed (spec 3.9).
            if code == CloseCode.NORMAL:
                self._finish(ConnectionClosed(Cause.US, "closed", code), close_transport=True)
            else:
                self._finish(ConnectionClosed(Cause.SERVER, _peer_text(reason), code), close_transport=True)
            return
        # The server ends the session: acknowledge, then we are done.
        self._write(frames.code_reason(FrameType.CLOSE, CloseCode.NORMAL, "closed"))
        self._finish(
            ConnectionClosed(Cause.SERVER, f"{frames.describe_code(code)}: {_peer_text(reason)}", code),
            close_transport=True,
        )

    # ---- frames out ----

    def _write(self, data: bytes) -> None:
        """Queues ``data``; what is queued in one turn of the event loop goes
        out in one write (64 requests gathered at once are one system call,
        not 64), or at once past 64 KiB, so a sender that never yields
        still meets the transport's flow control."""
        out = self._out
        out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes >= _FLUSH_AT:
            self._flush()
        elif len(out) == 1:
            self._loop.call_soon(self._flush)

    def _write_counted(self, data: bytes) -> None:
        """A frame the application sent: a resumable session keeps it until
        the server acknowledges it."""
        if self.resume is not None:
            self.resume.sent_frame(data)
        self._write(data)

    def _count(self, size: int) -> None:
        """A counted frame arrived: acknowledged now, or within the delay."""
        assert self.resume is not None
        if self.resume.received_frame(size):
            self._ack()
        elif self._ack_timer is None:
            self._ack_timer = self._loop.call_later(ACK_DELAY, self._ack)

    def _ack(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        if self.resume is not None and self.state is State.OPEN:
            data = self.resume.ack_now()
            if data is not None:
                self._write(data)

    @property
    def kept(self) -> bool:
        """The connection was lost with a session that can be resumed: what
        waited on it waits for the connection that resumes it."""
        end = self.end
        return (
            self.resume is not None
            and self.resume.resumable
            and self.settings.interrupts
            and end is not None
            and end.cause is Cause.NETWORK
            and not isinstance(end, ProtocolError)
        )

    def adopt(self, old: Link) -> None:
        """This connection resumed ``old``'s session: its waiting requests and
        calls are answered here from now on."""
        self._waiting.update(old._waiting)
        old._waiting = {}
        self._next_id = max(self._next_id, old._next_id)
        self._calls.update(old._calls)
        old._calls = {}
        self._next_call = max(self._next_call, old._next_call)
        old.successor = self

    def give_up_kept(self, why: RustTcpError) -> None:
        """The session could not be resumed: what waited on it fails."""
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(why)
        calls, self._calls = self._calls, {}
        for route in calls.values():
            route.fail(why)

    def _flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out = []
        self._out_bytes = 0
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _usable(self, size: int, what: str) -> None:
        """Raises why a frame of ``size`` payload bytes cannot be sent now."""
        if self.state is not State.OPEN:
            if self.end is not None:
                raise self.end
            raise NotSent(f"{what} not sent: the connection is {self.state.value}")
        if size > self.peer_max_frame:
            raise NotSent(
                f"{what} not sent: a payload of {size} bytes exceeds the server's limit of {self.peer_max_frame}"
            )

    @property
    def write_paused(self) -> bool:
        """The transport holds more than its high-water mark: writers wait."""
        return self._write_paused

    async def drain(self) -> None:
        """Waits while the transport holds more than its high-water mark."""
        if self._write_paused and self.state is not State.CLOSED:
            w: asyncio.Future[None] = self._loop.create_future()
            self._drained.append(w)
            await w

    def send(self, kind: int, payload: bytes, what: str) -> None:
        self._usable(len(payload), what)
        self._write_counted(frames.frame(kind, payload))

    def start_request(self, payload: bytes) -> asyncio.Future[bytes]:
        """Sends a REQUEST; the future resolves with its response."""
        self._usable(len(payload) + 4, "request")
        if self.going_away:
            raise NotSent("request not sent: the server is going away")
        waiting = self._waiting
        request_id = self._next_id
        while request_id in waiting:
            request_id = (request_id + 1) & 0xFFFFFFFF
        self._next_id = (request_id + 1) & 0xFFFFFFFF
        fut: asyncio.Future[bytes] = self._loop.create_future()
        waiting[request_id] = fut
        self._write_counted(frames.request(request_id, payload))
        return fut

    # ---- calls (spec 3.13) ----

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def start_call(
        self,
        payload: bytes,
        flags: int,
        deadline_ms: int,
        credit: int,
        metadata: list[tuple[str, bytes]],
    ) -> tuple[int, Route]:
        """Sends a CALL; its route receives what the server sends for it."""
        size = 14 + sum(3 + len(k.encode()) + len(v) for k, v in metadata) + len(payload)
        self._usable(size, "call")
        limits = self.call_limits
        if limits is None:
            raise NotSent("call not sent: the server does not speak calls (spec 3.13)")
        if self.going_away:
            raise NotSent("call not sent: the server is going away")
        if len(self._calls) >= limits.max_calls:
            raise NotSent(f"call not sent: {limits.max_calls} calls in flight, as many as the server allows")
        calls = self._calls
        call_id = self._next_call
        while call_id in calls:
            call_id = (call_id + 1) & 0xFFFFFFFF
        self._next_call = (call_id + 1) & 0xFFFFFFFF
        route = Route(self._loop, flags, credit, limits.stream_credit)
        calls[call_id] = route
        self._write_counted(frames.call(call_id, flags, deadline_ms, credit, metadata, payload))
        return call_id, route

    def _call_usable(self, call_id: int, route: Route, what: str) -> bool:
        """Whether the call's frames may still go out; raises how the call
        or the connection ended if the caller needs to know."""
        if self._calls.get(call_id) is not route:
            route.ending.result()  # raises how it ended, if not well
            raise NotSent(f"{what} not sent: the call has ended")
        if self.state is not State.OPEN:
            self._usable(0, what)
        return True

    def send_call_item(self, call_id: int, route: Route, data: bytes) -> bool:
        """Sends an item of our stream; False while the server has granted
        no credit for it."""
        self._call_usable(call_id, route, "item")
        if not route.client_open:
            raise NotSent("item not sent: the call's stream has ended")
        self._usable(4 + len(data), "item")
        if route.send_credit == 0:
            return False
        route.send_credit -= 1
        self._write_counted(frames.item(call_id, data))
        return True

    def end_call_stream(self, call_id: int, route: Route) -> None:
        self._call_usable(call_id, route, "END")
        if not route.client_open:
            raise NotSent("END not sent: the call's stream has already ended")
        route.client_open = False
        self._write_counted(frames.end(call_id))

    def grant_call(self, call_id: int, route: Route, items: int) -> None:
        """Grants the server's stream ``items`` more (we read them)."""
        if self._calls.get(call_id) is route and not route.cancelled and self.state is State.OPEN:
            route.recv_credit += items
            self._write_counted(frames.credit(call_id, items))

    def cancel_call(self, call_id: int, route: Route) -> None:
        """CANCEL, unless the call has ended; its id stays taken until the
        server's STATUS comes, so a late item is never another call's."""
        if self._calls.get(call_id) is route and not route.cancelled and self.state is State.OPEN:
            route.cancelled = True
            route.client_open = False
            self._write_counted(frames.cancel(call_id))

    @property
    def calls_in_flight(self) -> int:
        return len(self._calls)

    @property
    def pending(self) -> int:
        return sum(1 for f in self._waiting.values() if not f.done())

    async def close(self, timeout: float) -> None:
        """The close handshake: CLOSE, then the server's acknowledgement,
        which comes after the response to every request sent before it."""
        if self.state is State.OPEN:
            self._acked = self._loop.create_future()
            self._write(frames.code_reason(FrameType.CLOSE, CloseCode.NORMAL, "bye"))
            self.state = State.CLOSING
        if self.state is State.CLOSED:
            assert self.end is not None
            if self.end.cause is not Cause.US:
                raise self.end
            return
        if self._acked is None:  # still in the handshake: nothing to close politely
            self._finish(ConnectionClosed(Cause.US, "closed during the handshake"), close_transport=True)
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._acked), timeout)
        except asyncio.TimeoutError:
            self._finish(
                ConnectionClosed(Cause.NETWORK, f"no acknowledgement of our CLOSE within {timeout:g}s"),
                close_transport=True,
            )
            assert self.end is not None
            raise self.end from None

    def abandon(self, reason: str) -> None:
        """Ends the connection for a reason on our side (the application is
        not reading its pushes): CLOSE 1011 tells the server why, and every
        waiting call fails with ``ConnectionClosed`` caused by us."""
        if self.state is State.CLOSED:
            return
        self._write(frames.code_reason(FrameType.CLOSE, CloseCode.INTERNAL_ERROR, reason))
        self._finish(ConnectionClosed(Cause.US, reason, CloseCode.INTERNAL_ERROR), close_transport=True)

    def abort(self, why: RustTcpError) -> None:
        """Drops the connection at once (a connect timeout, say)."""
        self._finish(why, close_transport=True)

    # ---- heartbeats ----

    def _heartbeat(self) -> None:
        if self.state is State.CLOSED:
            return
        interval = self.heartbeat
        now = self._loop.time()
        silent = now - self._last_heard
        if silent >= 3 * interval:
            reason = f"nothing heard for {silent:.1f}s (3 heartbeat intervals of {interval:g}s)"
            self._write(frames.code_reason(FrameType.CLOSE, CloseCode.HEARTBEAT_TIMEOUT, reason))
            self._finish(ConnectionClosed(Cause.NETWORK, reason, CloseCode.HEARTBEAT_TIMEOUT), close_transport=True)
            return
        if silent >= interval:
            if not self._pinged and self.state is State.OPEN:
                self._pinged = True
                self._write(frames.ping(int.from_bytes(os.urandom(8), "big")))
            due = self._last_heard + 3 * interval
        else:
            self._pinged = False
            due = self._last_heard + interval
        self._beat = self._loop.call_later(max(due - now, 0.001), self._heartbeat)

    # ---- the end ----

    def _violation(self, code: int, reason: str) -> None:
        """The server broke the protocol: CLOSE with the code that says how,
        then drop the connection (spec 3.8)."""
        self._write(frames.code_reason(FrameType.CLOSE, code, reason))
        self._finish(ProtocolError(code, reason), close_transport=True)

    def _finish(self, end: RustTcpError, close_transport: bool = False) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self.end = end
        self._buf = bytearray()
        if self._beat is not None:
            self._beat.cancel()
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        if close_transport and self.transport is not None:
            self._flush()  # a CLOSE we queued goes out before the end
            self.transport.close()
        if not self._welcomed.done():
            self._welcomed.set_exception(end)
            self._welcomed.exception()  # retrieved: connect() may be gone
        if self._acked is not None and not self._acked.done():
            if end.cause is Cause.US:
                self._acked.set_result(None)
            else:
                self._acked.set_exception(end)
                self._acked.exception()
        failed: RustTcpError = end
        if self.settings.interrupts and end.cause is not Cause.US:
            failed = Interrupted(str(end))
        if not self.kept:
            self.give_up_kept(failed)
        self.resume_writing()
        self._ended.set()
        self._on_end(self)

    async def ended(self) -> RustTcpError:
        await self._ended.wait()
        assert self.end is not None
        return self.end


def split_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidConfig(f"address {addr!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


async def open_link(
    addr: str,
    settings: Settings,
    on_push: Callable[[Link, Pushed], None],
    on_end: Callable[[Link], None],
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    timeout: float,
    resuming: Link | None = None,
) -> Link:
    """Connects to ``addr`` and completes the handshake within ``timeout``;
    with ``resuming``, asks to resume that lost connection's session."""
    host, port = split_addr(addr)
    loop = asyncio.get_running_loop()
    link: Link | None = None

    def make() -> Link:
        nonlocal link
        link = Link(settings, on_push, on_end, resuming)
        return link

    async def handshake() -> Link:
        try:
            await loop.create_connection(
                make,
                host,
                port,
                ssl=ssl_context,
                server_hostname=(server_hostname or host) if ssl_context is not None else None,
            )
        except ssl.SSLCertVerificationError as e:
            raise TlsError(f"TLS: handshake with {addr} failed: {e.verify_message}") from None
        except ssl.SSLError as e:
            raise TlsError(f"TLS: handshake with {addr} failed: {e.reason or e} (does the server speak TLS?)") from None
        except OSError as e:
            # asyncio's own wording names the address again; the OS's is enough.
            said = os.strerror(e.errno) if e.errno else str(e)
            raise ConnectError(f"cannot connect to {addr}: {said}") from None
        assert link is not None
        await link.welcomed()
        return link

    try:
        return await asyncio.wait_for(handshake(), timeout)
    except asyncio.TimeoutError:
        error = ConnectTimeout(f"no answer from {addr} within {timeout:g}s")
        if link is not None:
            link.abort(error)
        raise error from None
