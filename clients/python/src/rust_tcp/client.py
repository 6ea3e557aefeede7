"""The client handle: connect, send, request, read what the server pushes,
close; and, when asked to, reconnect.

``Client`` is what an application holds. Underneath it is one ``Link`` (a
connection and its session, ``connection.py``) at a time: a reconnecting
client replaces it when the connection is lost or the server goes away, and
new calls wait for the replacement (up to ``connect_timeout``).
"""

from __future__ import annotations

import asyncio
import os
import random
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from ssl import SSLContext

from . import frames
from .calls import Call
from .connection import Link, Settings, State, open_link
from .errors import Cause, ConnectionClosed, Interrupted, InvalidConfig, RequestTimeout, RustTcpError
from .events import (
    Disconnected,
    GoAway,
    Overflowed,
    Pushed,
    Reconnected,
    ReconnectFailed,
    Resumed,
    ResumeRefused,
)

TOKEN_ENV = "RUST_TCP_TOKEN"
"""Where the token comes from when none is passed (as the Rust client)."""


@dataclass(frozen=True)
class Reconnect:
    """How a client reconnects. The delay before attempt ``n`` (from 0) is
    ``initial_delay * 2**n``, capped at ``max_delay``, then scaled by a
    random factor between 0.5 and 1, so that many clients cut off at once
    do not all come back at once."""

    initial_delay: float = 0.1
    max_delay: float = 5.0
    max_attempts: int | None = None
    """Give up after this many failed attempts in a row (None: never)."""

    def delay(self, attempt: int) -> float:
        full = min(self.initial_delay * float(2 ** min(attempt, 30)), self.max_delay)
        return full * random.uniform(0.5, 1.0)


def tls_context(
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> ssl.SSLContext:
    """A client TLS context: the system's roots, or only the CAs in
    ``ca_file``; with ``cert_file`` and ``key_file``, our own certificate
    for a server that asks for one (mutual TLS)."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    elif key_file is not None:
        raise InvalidConfig("a TLS key needs its certificate (cert_file)")
    return context


class _End:
    """Marks the end of the pushes' stream in the queue."""


_END = _End()


class Client:
    """A v2 connection to a rust-tcp server.

    Connect with :meth:`connect`; use it from any number of tasks: requests
    are in flight together on the one connection, matched by id::

        async with await Client.connect("127.0.0.1:8080", name="sensor-7") as client:
            print(await client.request(b"ping"))
    """

    def __init__(
        self,
        addr: str,
        settings: Settings,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        connect_timeout: float,
        request_timeout: float | None,
        close_timeout: float,
        reconnect: Reconnect | None,
        incoming_capacity: int,
    ) -> None:
        self.addr = addr
        self._settings = settings
        self._ssl = ssl_context
        self._server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.close_timeout = close_timeout
        self._reconnect = reconnect
        self._capacity = incoming_capacity
        self._link: Link | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._gave_up: RustTcpError | None = None
        self._moving: asyncio.Task[None] | None = None
        self._leaving: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[Pushed | _End] = asyncio.Queue()
        self._taken = False
        self._stream_ended = False
        self._overflowed: Link | None = None
        self.dropped_pushes = 0
        """Pushes that arrived while nobody had called :meth:`incoming`."""

    @classmethod
    async def connect(
        cls,
        addr: str = "127.0.0.1:8080",
        *,
        name: str = "python-client",
        token: str | None = None,
        ssl: SSLContext | bool | None = None,
        server_hostname: str | None = None,
        max_frame: int = frames.DEFAULT_MAX_FRAME,
        heartbeat: float | None = None,
        connect_timeout: float = 10.0,
        request_timeout: float | None = None,
        close_timeout: float = 10.0,
        reconnect: Reconnect | bool | None = None,
        incoming_capacity: int = 1024,
        app_protocol: frames.AppProtocol | None = None,
        resume: float | None = None,
    ) -> Client:
        """Connects to ``addr`` (``HOST:PORT``) and completes the handshake.

        - ``name``: how the server labels us (1 to 64 bytes, no control
          characters).
        - ``token``: sent in the HELLO for a server that requires one;
          defaults to the ``RUST_TCP_TOKEN`` environment variable.
        - ``ssl``: True for TLS with the system's roots, or a context
          (:func:`tls_context` for a CA file or a client certificate).
        - ``max_frame``: the largest payload we accept (at least 1024); a
          larger frame from the server is refused from its header.
        - ``heartbeat``: the interval we wish for, in seconds (None: the
          server's default); both sides follow what the server grants.
        - ``request_timeout``: how long a request waits for its response by
          default (None: as long as the connection lives).
        - ``reconnect``: True or a :class:`Reconnect`: a lost connection or
          a server going away is followed by a new connection; requests in
          flight on the old one fail with ``Interrupted`` and are never
          resent.
        - ``resume``: with ``reconnect``, ask for a resumable session (spec
          3.14) kept this many seconds after a loss: the next connection
          picks it up with nothing lost either way (requests in flight are
          answered, never run twice; pushes sent meanwhile arrive in order),
          said by :class:`Resumed`; or :class:`ResumeRefused` with what may
          have been lost, then a new session.
        - ``incoming_capacity``: pushes kept for :meth:`incoming`. An
          application that took the stream and lets this many pile up
          unread gets :class:`Overflowed` as the stream's next item, and the
          client ends the connection (CLOSE 1011): calls fail at once
          instead of waiting on a connection the server would drop.

        Raises ``ConnectError``, ``TlsError``, ``ConnectTimeout``,
        ``HandshakeRefused`` (the server's CLOSE code and reason),
        ``ProtocolError`` or ``InvalidConfig``.
        """
        why = frames.check_name(name)
        if why is not None:
            raise InvalidConfig(why)
        if not frames.MIN_MAX_FRAME <= max_frame <= 0xFFFFFFFF:
            raise InvalidConfig(f"max_frame {max_frame}: must be 1024 to 4294967295")
        if heartbeat is not None and not 0 < heartbeat * 1000 <= 0xFFFFFFFF:
            raise InvalidConfig(f"heartbeat {heartbeat}: must be a positive number of seconds")
        if incoming_capacity < 1:
            raise InvalidConfig("incoming_capacity must be at least 1")
        if resume is not None and not 0 < resume * 1000 <= 0xFFFFFFFF:
            raise InvalidConfig(f"resume {resume}: must be a positive number of seconds")
        if token is None:
            token = os.environ.get(TOKEN_ENV) or None
        context: SSLContext | None
        if ssl is True:
            context = tls_context()
        elif ssl is False or ssl is None:
            context = None
        else:
            context = ssl
        policy = Reconnect() if reconnect is True else (reconnect or None)
        settings = Settings(
            name=name,
            max_frame=max_frame,
            heartbeat_ms=0 if heartbeat is None else max(1, round(heartbeat * 1000)),
            token=token,
            app=app_protocol,
            interrupts=policy is not None,
            resume_expiry_ms=None if resume is None else max(1, round(resume * 1000)),
        )
        client = cls(
            addr,
            settings,
            context,
            server_hostname,
            connect_timeout,
            request_timeout,
            close_timeout,
            policy,
            incoming_capacity,
        )
        link = client._link = await client._open()
        client._ready.set()
        if link.end is not None:
            # It ended in the read that brought its WELCOME, before it was
            # ours to watch: its end still ends the stream (or reconnects).
            client._link_ended(link)
        return client

    async def _open(self, resuming: Link | None = None) -> Link:
        return await open_link(
            self.addr,
            self._settings,
            self._pushed,
            self._link_ended,
            self._ssl,
            self._server_hostname,
            self.connect_timeout,
            resuming,
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- what the handshake said ----

    def _current(self) -> Link:
        assert self._link is not None
        return self._link

    @property
    def server_name(self) -> str:
        """The server's name from its WELCOME."""
        return self._current().server_name

    @property
    def server_max_frame_size(self) -> int:
        """The largest payload the server accepts."""
        return self._current().peer_max_frame

    @property
    def heartbeat(self) -> float:
        """The heartbeat interval in seconds both sides follow (0: none)."""
        return self._current().heartbeat

    @property
    def app_protocol(self) -> frames.AppChoice | None:
        """The application protocol the server chose, if we asked for one."""
        return self._current().app

    @property
    def calls_in_flight(self) -> int:
        """Calls sent whose STATUS has not come (a cancelled one counts
        until the server confirms: its id is not reused before)."""
        link = self._link
        return 0 if link is None else link.calls_in_flight

    @property
    def pending_requests(self) -> int:
        """Requests sent whose callers still wait for a response."""
        return self._current().pending

    # ---- sending ----

    async def _usable(self) -> Link:
        """The connection new calls go to; a reconnecting client waits for
        the next one (up to ``connect_timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        while True:
            link = self._current()
            if self._reconnect is None or self._closing:
                return link
            if link.state is State.OPEN and not link.going_away:
                return link
            if self._gave_up is not None:
                raise self._gave_up
            # The new connection may be cut again before this task runs:
            # then it waits for the next one, within the same deadline.
            try:
                await asyncio.wait_for(self._ready.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise ConnectionClosed(Cause.NETWORK, f"not reconnected within {self.connect_timeout:g}s") from None
            if self._gave_up is not None:
                raise self._gave_up
            if self._current() is link:
                return link  # nothing newer is coming (it says why if it ended)

    async def send_text(self, text: str) -> None:
        """Sends one TEXT message. Raises ``NotSent`` (too large for the
        server, or the connection is closing) or why the connection ended."""
        link = await self._usable()
        link.send(frames.FrameType.TEXT, text.encode(), "text")
        await link.drain()

    async def send_binary(self, data: bytes) -> None:
        """Sends one BINARY message."""
        link = await self._usable()
        link.send(frames.FrameType.BINARY, bytes(data), "binary")
        await link.drain()

    async def request(self, payload: bytes | str, *, timeout: float | None = None) -> bytes:
        """Sends a REQUEST and returns its response's bytes.

        Many may be in flight at once from many tasks. Cancelling the
        caller (``asyncio.wait_for``, say) abandons the request cleanly: its
        late answer is dropped, and its id is not reused while the server
        may still answer it. ``timeout`` (default ``request_timeout``)
        raises ``RequestTimeout``; a failure answer raises
        ``RequestFailed``.
        """
        if isinstance(payload, str):
            payload = payload.encode()
        link = self._link
        if link is None or link.state is not State.OPEN or link.going_away:
            link = await self._usable()
        fut = link.start_request(payload)
        if link.write_paused:
            await link.drain()
        limit = self.request_timeout if timeout is None else timeout
        if limit is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, limit)
        except asyncio.TimeoutError:
            if fut.cancelled():
                raise RequestTimeout(limit) from None
            raise

    async def open_call(
        self,
        payload: bytes | str = b"",
        *,
        deadline: float | None = None,
        metadata: Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]] | None = None,
        server_stream: int | None = None,
        client_stream: bool = False,
    ) -> Call:
        """Opens a call (spec 3.13) and returns it in flight.

        - ``deadline``: the call's budget in seconds, sent with it (the
          server stops its work when it passes) and kept here too.
        - ``metadata``: key/value pairs for the server (at most 16, 4096
          bytes; keys of a-z, 0-9, ``-``, ``_``, ``.``), a ``traceparent``
          for instance.
        - ``server_stream``: the server answers with a stream; at most this
          many items ahead of our reading.
        - ``client_stream``: we send a stream (``call.send``, ``call.end``).

        Raises ``NotSent`` when the server does not speak calls, or as many
        are in flight as it allows, and ``InvalidConfig`` for bad metadata.
        """
        data = payload.encode() if isinstance(payload, str) else payload
        pairs = metadata.items() if isinstance(metadata, Mapping) else (metadata or [])
        meta = [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]
        why = frames.check_metadata(meta)
        if why is not None:
            raise InvalidConfig(why)
        if deadline is not None and not 0 < deadline * 1000 <= 0xFFFFFFFF:
            raise InvalidConfig(f"deadline {deadline}: must be a positive number of seconds")
        window = 0 if server_stream is None else max(int(server_stream), 1)
        flags = (frames.SERVER_STREAMS if server_stream is not None else 0) | (
            frames.CLIENT_STREAMS if client_stream else 0
        )
        link = self._link
        if link is None or link.state is not State.OPEN or link.going_away:
            link = await self._usable()
        deadline_ms = 0 if deadline is None else max(1, round(deadline * 1000))
        call_id, route = link.start_call(data, flags, deadline_ms, window, meta)
        if link.write_paused:
            await link.drain()
        at = None if deadline is None else link.loop.time() + deadline
        return Call(link, call_id, route, window, at)

    async def call(
        self,
        payload: bytes | str = b"",
        *,
        deadline: float | None = None,
        metadata: Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]] | None = None,
    ) -> bytes:
        """Makes a unary call (spec 3.13) and returns its answer: a request
        with a deadline the server keeps too, and metadata. Cancelling the
        task that awaits it cancels the call on the server, whose work
        stops. Raises ``CallError`` (``status`` says how it ended)."""
        call = await self.open_call(payload, deadline=deadline, metadata=metadata)
        return await call.result()

    async def request_all(self, payloads: Iterable[bytes | str], *, timeout: float | None = None) -> list[bytes]:
        """Sends every payload as a request at once (one write) and returns
        the responses in the same order: a pipeline, as redis-py's, without
        a task per request. The first failure is raised once all are
        settled; the other requests are still answered (and dropped)."""
        link = await self._usable()
        waiting = [link.start_request(p.encode() if isinstance(p, str) else p) for p in payloads]
        await link.drain()
        limit = self.request_timeout if timeout is None else timeout
        together = asyncio.gather(*waiting)
        if limit is None:
            return await together
        try:
            return await asyncio.wait_for(together, limit)
        except asyncio.TimeoutError:
            raise RequestTimeout(limit) from None

    # ---- what the server pushes ----

    def incoming(self) -> AsyncIterator[Pushed]:
        """The server's pushes (and, for a reconnecting client, its notices),
        in arrival order, as an async iterator. It ends when the connection
        does (a reconnecting client: when it is closed or gives up).
        Only one may be taken: pushes go to one reader. Until it is taken,
        pushes are dropped (counted in ``dropped_pushes``)."""
        if self._taken:
            raise RuntimeError("incoming() was already taken; pushes go to one reader")
        self._taken = True
        return self._read_pushes()

    async def _read_pushes(self) -> AsyncIterator[Pushed]:
        queue = self._queue
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                return
            yield item

    def _push(self, item: Pushed | _End) -> None:
        if self._stream_ended:
            return
        if isinstance(item, _End):
            self._stream_ended = True
        self._queue.put_nowait(item)

    def _pushed(self, link: Link, item: Pushed) -> None:
        if isinstance(item, Resumed):
            if self._taken:
                self._push(item)
            return
        if isinstance(item, GoAway) and self._reconnect is not None and link is self._link:
            self._move_on(link, f"the server is going away ({item.code}: {item.reason})")
            if self._taken:
                self._push(item)
            return
        if not self._taken:
            self.dropped_pushes += 1
            return
        if self._overflowed is link:
            return  # already ended for this; nothing more from it is kept
        self._push(item)
        if self._queue.qsize() >= self._capacity:
            # Nobody is reading fast enough. Pausing the socket would make
            # the server drop us as a slow consumer while every call waited
            # on a connection it had given up on; dropping pushes would lose
            # them silently. So we end the connection, and say so.
            self._overflowed = link
            self._push(Overflowed(self._capacity))
            link.abandon(f"the application is not reading its pushes ({self._capacity} unread)")

    # ---- the connection's end, and reconnecting ----

    def _link_ended(self, link: Link) -> None:
        if link is not self._link:
            return  # an old connection, left behind on purpose
        if self._closing or self._reconnect is None:
            self._push(_END)
            return
        self._move_on(link, str(link.end))

    def _move_on(self, link: Link, why: str) -> None:
        if self._moving is not None or self._closing:
            return
        self._ready.clear()
        self._moving = asyncio.get_running_loop().create_task(self._replace(link, why))

    async def _replace(self, old: Link, why: str) -> None:
        assert self._reconnect is not None
        if self._taken:
            self._push(Disconnected(why))
        attempt = 0
        while True:
            await asyncio.sleep(self._reconnect.delay(attempt))
            if self._closing:
                old.give_up_kept(ConnectionClosed(Cause.US, "closed while reconnecting"))
                return
            try:
                new = await self._open(old if old.kept else None)
                break
            except RustTcpError as e:
                attempt += 1
                limit = self._reconnect.max_attempts
                gave_up = limit is not None and attempt >= limit
                if self._taken:
                    self._push(ReconnectFailed(attempt, str(e), gave_up))
                if gave_up:
                    self._gave_up = ConnectionClosed(
                        Cause.NETWORK, f"could not reconnect after {attempt} attempts: {e}"
                    )
                    old.give_up_kept(Interrupted(str(self._gave_up)))
                    self._push(_END)
                    self._ready.set()
                    self._moving = None
                    return
        if self._closing:
            if new.resumed is None:
                old.give_up_kept(ConnectionClosed(Cause.US, "closed while reconnecting"))
            await new.close(self.close_timeout)
            return
        self._link = new
        self._moving = None
        self._ready.set()
        if new.end is not None:
            # Cut in the read that brought its WELCOME, before it was ours
            # to watch (its end was ignored as an old connection's): it is
            # replaced in turn, as a connection cut later would be.
            self._link_ended(new)
        if old.state is not State.CLOSED:
            # A server going away still serves the old connection: close it
            # properly (what was sent on it is processed first) instead of
            # leaving the server to cut it at the end of its grace period.
            task = asyncio.get_running_loop().create_task(self._leave(old))
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)
        if new.refused is not None:
            lost = old.resume.unacknowledged if old.resume is not None else 0
            old.give_up_kept(Interrupted(f"resume refused: {new.refused}"))
            if self._taken:
                self._push(ResumeRefused(new.refused, lost))
        if self._taken and new.resumed is None:
            self._push(Reconnected(new.server_name))
        if new.state is State.CLOSED or new.going_away:
            self._move_on(new, str(new.end or "the server is going away"))

    async def _leave(self, old: Link) -> None:
        try:
            await old.close(self.close_timeout)
        except RustTcpError:
            pass  # the old connection's fate no longer matters to anyone

    async def close(self) -> None:
        """The close handshake: returns once the server has processed
        everything sent before it (its acknowledgement comes after the
        response to every request sent earlier). Raises why not, if the
        connection ended otherwise."""
        self._closing = True
        if self._moving is not None:
            self._moving.cancel()
            self._moving = None
        link = self._current()
        try:
            await link.close(self.close_timeout)
        finally:
            for task in list(self._leaving):
                await task
            self._push(_END)
            self._ready.set()
        if self._gave_up is not None:
            raise self._gave_up
