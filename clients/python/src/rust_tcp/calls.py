"""Calls (docs/PROTOCOL.md, section 3.13): a request with a deadline the
server keeps too, metadata, cancellation that stops the server's work, and
streams both ways kept to the credit each receiver grants.

``Client.open_call`` returns a :class:`Call`: iterate it (``async for``) for
the server's items, ``await call.send(item)`` and ``await call.end()`` for
yours, ``await call.result()`` for the answer. Leaving it unfinished (an
``async with`` block, ``cancel()``, or asyncio cancelling the task that
awaits it) sends CANCEL. ``Client.call`` is the one-line unary form.
"""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING

from .errors import Cause, RustTcpError

if TYPE_CHECKING:
    from types import TracebackType

    from .connection import Link


class CallStatus(enum.IntEnum):
    """How a call ended (its STATUS)."""

    OK = 0
    FAILED = 1
    CANCELLED = 2
    DEADLINE_EXCEEDED = 3
    REFUSED = 4


class CallError(RustTcpError):
    """A call ended without its answer: the server failed or refused it, it
    was cancelled, or its deadline passed (``status`` says which)."""

    def __init__(self, status: CallStatus, reason: str) -> None:
        super().__init__(f"call {status.name.lower().replace('_', ' ')}: {reason}")
        self.status = status
        self.reason = reason
        # A cancelled call was cancelled by us; any other end the server
        # decided (a deadline it did not meet included).
        self.cause = Cause.US if status is CallStatus.CANCELLED else Cause.SERVER


class _Done:
    """Put after a call's last item: its STATUS (or the connection's end)."""


_DONE = _Done()


class Route:
    """One call in flight as its connection keeps it: the items that came,
    the credit each way, and its end."""

    def __init__(self, loop: asyncio.AbstractEventLoop, flags: int, credit: int, stream_credit: int) -> None:
        self.server_streams = bool(flags & 0x01)
        self.client_streams = bool(flags & 0x02)
        self.items: asyncio.Queue[bytes | _Done] = asyncio.Queue()
        self.ending: asyncio.Future[bytes] = loop.create_future()
        self.recv_credit = credit
        self.send_credit = stream_credit if self.client_streams else 0
        self.client_open = self.client_streams
        self.cancelled = False
        self._credit: asyncio.Event = asyncio.Event()

    def granted(self, items: int) -> None:
        self.send_credit += items
        self._credit.set()

    async def wait_credit(self) -> None:
        self._credit.clear()
        await self._credit.wait()

    def finish(self, status: int, body: bytes) -> None:
        if not self.ending.done():
            if status == CallStatus.OK:
                self.ending.set_result(body)
            else:
                reason = body.decode(errors="replace")
                self.ending.set_exception(CallError(CallStatus(status), reason))
                self.ending.exception()  # retrieved: its caller may be gone
        self.items.put_nowait(_DONE)
        self._credit.set()

    def fail(self, error: RustTcpError) -> None:
        if not self.ending.done():
            self.ending.set_exception(error)
            self.ending.exception()
        self.items.put_nowait(_DONE)
        self._credit.set()


class Call:
    """One call in flight. ``async for item in call`` reads the server's
    stream (each item read lets the server send another); ``send`` and
    ``end`` feed the call's own stream; ``result`` waits for the answer.
    Dropping out before the end (``cancel``, leaving ``async with``, a
    cancelled task) cancels the call on the server, whose work stops."""

    def __init__(self, link: Link, call_id: int, route: Route, window: int, deadline: float | None) -> None:
        self._first_link = link
        self.id = call_id
        self._route = route
        self._regrant = max(window // 2, 1)
        self._read = 0
        self._deadline = deadline
        self._budget = None if deadline is None else deadline - link.loop.time()
        self.done = False

    async def _within(self, waiting: asyncio.Future[bytes | _Done] | asyncio.Task[None]) -> None:
        """Waits for ``waiting`` until the call's deadline, if it has one."""
        if self._deadline is None:
            await waiting
            return
        left = self._deadline - self._link.loop.time()
        try:
            await asyncio.wait_for(asyncio.shield(waiting), max(left, 0))
        except asyncio.TimeoutError:
            waiting.cancel()
            self.cancel()
            raise CallError(
                CallStatus.DEADLINE_EXCEEDED, f"no answer within the deadline of {self._budget:g}s"
            ) from None

    @property
    def _link(self) -> Link:
        """The connection the call's frames go to: a resumed session's
        newest (spec 3.14)."""
        link = self._first_link
        while link.successor is not None:
            link = link.successor
        return link

    def __aiter__(self) -> Call:
        return self

    async def __anext__(self) -> bytes:
        route = self._route
        if route.items.empty() and self._deadline is not None:
            getter: asyncio.Future[bytes | _Done] = asyncio.ensure_future(route.items.get())
            try:
                await self._within(getter)
            except BaseException:
                getter.cancel()
                raise
            got = getter.result()
        else:
            got = await route.items.get()
        if isinstance(got, _Done):
            route.items.put_nowait(_DONE)  # for any later read
            self.done = True
            route.ending.result()  # raises how it ended, if not well
            raise StopAsyncIteration
        self._read += 1
        if self._read >= self._regrant:
            self._link.grant_call(self.id, route, self._read)
            self._read = 0
        return got

    async def send(self, item: bytes | str) -> None:
        """Sends one item of the call's stream, once the server has credit."""
        data = item.encode() if isinstance(item, str) else item
        while not self._link.send_call_item(self.id, self._route, data):
            waiting = asyncio.ensure_future(self._route.wait_credit())
            try:
                await self._within(waiting)
            except BaseException:
                waiting.cancel()
                raise
        if self._link.write_paused:
            await self._link.drain()

    async def end(self) -> None:
        """Ends the call's own stream."""
        self._link.end_call_stream(self.id, self._route)

    async def result(self) -> bytes:
        """The call's answer, once the server's stream (read or not) is over."""
        try:
            async for _ in self:
                pass
        except BaseException:
            if not self.done:
                self.cancel()
            raise
        return self._route.ending.result()

    def cancel(self) -> None:
        """Cancels the call: the server drops its work (STATUS 2)."""
        if not self.done:
            self.done = True
            self._link.cancel_call(self.id, self._route)

    async def __aenter__(self) -> Call:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()
