"""Resumable sessions (spec 3.14) against the real server: through a proxy
that cuts the connection at a random byte again and again, with traffic
both ways, every line and every answer arrives exactly once and in order;
a server that lost the session refuses with its reason; and a session
whose server is killed resumes on another that shares its store; the typed
layer (a generated client) resumes through cuts too."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import tempfile
from collections.abc import Callable

from conftest import PATIENCE, KvServer, Process, Server, run
from generated.kv import EventChanged, KvClient, ResponseDone

from rust_tcp import Client, Interrupted, Reconnect, Reconnected, Resumed, ResumeRefused, Text

FAST = Reconnect(initial_delay=0.002, max_delay=0.02)


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Arrivals:
    """A bounded wait for what is still on its way: ``arrived()`` after each
    arrival; ``await all(test)`` returns once ``test()`` holds (checked at
    once and at every arrival), or times out after the patience."""

    def __init__(self) -> None:
        self._done = asyncio.Event()
        self._test: Callable[[], bool] = lambda: False

    def arrived(self) -> None:
        if self._test():
            self._done.set()

    async def all(self, test: Callable[[], bool]) -> None:
        self._test = test
        self.arrived()
        await asyncio.wait_for(self._done.wait(), PATIENCE)


class CuttingProxy:
    """Forwards to ``target``, cutting each connection after a random number
    of bytes (0 to ``max_bytes``, either way) until ``calm`` is set, from
    when on nothing more is cut."""

    def __init__(self, target: str, max_bytes: int, seed: int) -> None:
        self.target = target
        self.max_bytes = max_bytes
        self.random = random.Random(seed)
        self.cuts = 0
        self.calm = False
        self.addr = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.addr = f"{host}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        host, port = self.target.rsplit(":", 1)
        server_r, server_w = await asyncio.open_connection(host, int(port))
        budget = [10**12 if self.calm else self.random.randint(0, self.max_bytes)]
        cut = asyncio.Event()

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while not cut.is_set():
                data = await r.read(4096)
                if not data:
                    break
                # Once calm, connections already open are spared too (one
                # cut during the final close would fail the test's close).
                passed = data if self.calm else data[: budget[0]]
                budget[0] -= len(passed)
                w.write(passed)
                if budget[0] <= 0 and not self.calm:
                    self.cuts += 1
                    break
            cut.set()

        await asyncio.wait(
            [asyncio.ensure_future(pump(client_r, server_w)), asyncio.ensure_future(pump(server_r, client_w))],
            return_when=asyncio.FIRST_COMPLETED,
        )
        cut.set()
        for w in (client_w, server_w):
            w.transport.abort()


def test_random_cuts_lose_and_duplicate_nothing(server: Callable[..., Server]) -> None:
    s = server("--broadcast")

    async def body() -> None:
        proxy = CuttingProxy(s.addr, max_bytes=1500, seed=7)
        await proxy.start()
        cutter = await Client.connect(proxy.addr, name="cutter", reconnect=FAST, resume=30, request_timeout=PATIENCE)
        steady = await Client.connect(s.addr, name="steady")
        cutter_sees, steady_sees = cutter.incoming(), steady.incoming()
        resumed = refused = 0
        got_by_cutter: list[str] = []
        got_by_steady: list[str] = []
        lines = Arrivals()

        async def read_cutter() -> None:
            nonlocal resumed, refused
            async for event in cutter_sees:
                if isinstance(event, Text):
                    got_by_cutter.append(event.text)
                    lines.arrived()
                elif isinstance(event, Resumed):
                    resumed += 1
                elif isinstance(event, ResumeRefused):
                    refused += 1

        async def read_steady() -> None:
            async for event in steady_sees:
                if isinstance(event, Text):
                    got_by_steady.append(event.text)
                    lines.arrived()

        readers = [asyncio.ensure_future(read_cutter()), asyncio.ensure_future(read_steady())]
        # Bounded: 100 cuts, 3,000 rounds or the test's patience.
        sent = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE
        while proxy.cuts < 100 and sent < 3000 and loop.time() < deadline:
            await cutter.send_text(f"c{sent}")
            await steady.send_text(f"s{sent}")
            assert await cutter.request(f"r{sent}") == f"r{sent}".encode()
            sent += 1
        proxy.calm = True
        assert await cutter.request(b"last") == b"last"
        assert await steady.request(b"last") == b"last"
        await lines.all(lambda: len(got_by_cutter) >= sent and len(got_by_steady) >= sent)
        print(f"cuts {proxy.cuts}, rounds {sent}, resumed {resumed}")
        assert proxy.cuts >= 100
        assert refused == 0
        assert got_by_cutter == [f"steady: s{i}" for i in range(sent)]
        assert got_by_steady == [f"cutter: c{i}" for i in range(sent)]
        assert resumed >= 1
        await cutter.close()
        await steady.close()
        for r in readers:
            r.cancel()
        await proxy.stop()

    run(body())


def test_a_server_that_lost_the_session_refuses_with_its_reason(server: Callable[..., Server]) -> None:
    s = server()
    addr = s.addr

    async def body() -> None:
        client = await Client.connect(addr, reconnect=FAST, resume=30)
        events = client.incoming()
        assert await client.request(b"before") == b"before"
        s.send_signal(signal.SIGSTOP)  # the request below stays in flight
        in_flight = asyncio.ensure_future(client.request(b"lost"))
        await asyncio.sleep(0)
        s.stop(signal.SIGKILL)
        replacement = Server("--name", "second", addr=addr)
        try:
            refusal = None
            while not isinstance(event := await events.__anext__(), Reconnected):
                if isinstance(event, ResumeRefused):
                    refusal = event
            assert refusal is not None and refusal.reason == "unknown session"
            assert refusal.unacknowledged >= 1
            try:
                await in_flight
                raise AssertionError("the request in flight was answered by a dead server")
            except Interrupted as e:
                assert "resume refused" in str(e)
            assert await client.request(b"after") == b"after"
            await client.close()
        finally:
            replacement.stop(signal.SIGKILL)

    run(body())


class SwitchingProxy:
    """Forwards each new connection to ``target``, which the test may
    change; a connection ends when either side does."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.addr = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.addr = f"{host}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        host, port = self.target.rsplit(":", 1)
        server_r, server_w = await asyncio.open_connection(host, int(port))

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(4096):
                w.write(data)
                await w.drain()

        await asyncio.wait(
            [asyncio.ensure_future(pump(client_r, server_w)), asyncio.ensure_future(pump(server_r, client_w))],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for w in (client_w, server_w):
            w.transport.abort()


def test_a_session_resumes_on_another_server_after_kill_9(
    server: Callable[..., Server], processes: list[Process]
) -> None:
    """Two servers share a session store (nats-server with JetStream); the
    one serving the client is frozen with a request in flight and killed:
    the client resumes on the other, which runs the request it never
    received and answers it, and the session goes on."""
    port = free_port()
    nats = Process(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", tempfile.mkdtemp()])
    processes.append(nats)
    nats.wait_for("Server is ready")
    store = f"nats://127.0.0.1:{port}"
    first = server("--name", "first", "--session-store", store)
    second = server("--name", "second", "--session-store", store)

    async def body() -> None:
        proxy = SwitchingProxy(first.addr)
        await proxy.start()
        client = await Client.connect(proxy.addr, reconnect=FAST, resume=30)
        events = client.incoming()
        assert await client.request(b"before") == b"before"
        await client.send_text("line")
        first.send_signal(signal.SIGSTOP)
        in_flight = asyncio.ensure_future(client.request(b"in flight"))
        await asyncio.sleep(0)
        proxy.target = second.addr
        first.stop(signal.SIGKILL)
        while not isinstance(event := await events.__anext__(), Resumed):
            assert not isinstance(event, ResumeRefused), event
        assert await in_flight == b"in flight"
        assert await client.request(b"after") == b"after"
        await client.close()
        await proxy.stop()

    run(body())
    second.wait_for("v2 session resumed from the session store")


def test_a_typed_protocol_resumes_through_cuts() -> None:
    """The typed layer rides the same session: through 50 cuts, every call of
    the generated kv client is answered once and every event it watches
    arrives once, in order."""
    kv = KvServer()

    async def body() -> None:
        proxy = CuttingProxy(kv.addr, max_bytes=1500, seed=11)
        await proxy.start()
        client = await KvClient.connect(proxy.addr, name="typed", reconnect=FAST, resume=30, request_timeout=PATIENCE)
        events = client.events()
        assert await client.watch() == ResponseDone()
        changed: list[EventChanged] = []
        resumed = refused = 0
        arrivals = Arrivals()

        async def read() -> None:
            nonlocal resumed, refused
            async for event in events:
                if isinstance(event, EventChanged):
                    changed.append(event)
                    arrivals.arrived()
                elif isinstance(event, Resumed):
                    resumed += 1
                elif isinstance(event, ResumeRefused):
                    refused += 1

        reader = asyncio.ensure_future(read())
        # Bounded: 50 cuts, 2,000 calls or the test's patience.
        sent = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE
        while proxy.cuts < 50 and sent < 2000 and loop.time() < deadline:
            assert await client.set(f"k{sent}", f"v{sent}") == ResponseDone()
            sent += 1
        proxy.calm = True
        await arrivals.all(lambda: len(changed) >= sent)
        print(f"typed: cuts {proxy.cuts}, calls {sent}, resumed {resumed}")
        assert proxy.cuts >= 50
        assert refused == 0
        assert resumed >= 1
        assert changed == [EventChanged(key=f"k{i}", value=f"v{i}") for i in range(sent)]
        await client.close()
        reader.cancel()
        await proxy.stop()

    try:
        run(body())
    finally:
        kv.stop()
