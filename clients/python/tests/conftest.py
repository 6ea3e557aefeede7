"""Shared by the tests: the real ``server`` binary (built by cargo, started
on a free loopback port, stopped by its PID), the typed kv example server,
certificates made at test time, and a small misbehaving server."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[3]
PATIENCE = 15.0
"""A bound on failure, never a synchronisation device: every wait below
ends early on its signal and only fails the test once this runs out."""

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    """Runs an async test body, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, PATIENCE * 2)

    return asyncio.run(bounded())


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


_built = False


def build() -> None:
    """Builds the server and the kv example once per run (quick when
    ``cargo test`` has already built them)."""
    global _built
    if not _built:
        subprocess.run(
            [
                "cargo",
                "build",
                "--quiet",
                "--locked",
                "--bin",
                "server",
                "--bin",
                "client",
                "--example",
                "kv_store",
                "--example",
                "job_queue",
            ],
            cwd=REPO,
            check=True,
        )
        _built = True


def binary(name: str) -> str:
    build()
    return str(target_dir() / "debug" / name)


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    def pump() -> None:
        for line in stream:
            into.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()


class Process:
    """A child process with its stdout and stderr lines; killed by its PID
    when the test is done."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, stdin: bool = False) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUST_LOG": "info", **(env or {})},
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: queue.Queue[str] = queue.Queue()
        self.seen: dict[str, list[str]] = {"stdout": [], "stderr": []}
        _lines(self.proc.stdout, self.stdout)
        _lines(self.proc.stderr, self.stderr)

    def wait_for(self, needle: str, stream: str = "stderr") -> str:
        """The first line (not yet read) containing ``needle``."""
        lines = self.stdout if stream == "stdout" else self.stderr
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=PATIENCE)
        while True:
            left = (deadline - datetime.datetime.now()).total_seconds()
            try:
                line = lines.get(timeout=max(left, 0.0))
            except queue.Empty:
                raise AssertionError(f"no line containing {needle!r} in time; saw {self.seen[stream]}") from None
            self.seen[stream].append(line)
            if needle in line:
                return line

    def send_signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.send_signal(sig)
        try:
            return self.proc.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Server(Process):
    """The real ``server`` binary on 127.0.0.1, port picked by itself."""

    def __init__(self, *args: str, addr: str = "127.0.0.1:0") -> None:
        super().__init__([binary("server"), "--addr", addr, *args])
        line = self.wait_for("listening on ")
        self.addr = _addr_after(line)


class KvServer(Process):
    """The typed kv example (examples/kv_store.rs) serving on a free port."""

    def __init__(self) -> None:
        super().__init__([binary("examples/kv_store"), "--serve", "127.0.0.1:0"])
        self.addr = _addr_after(self.wait_for("listening on ", "stdout"))


class JobsServer(Process):
    """The typed job-queue example (examples/job_queue.rs) on a free port."""

    def __init__(self) -> None:
        super().__init__([binary("examples/job_queue"), "--serve", "127.0.0.1:0"])
        self.addr = _addr_after(self.wait_for("listening on ", "stdout"))


GENERATED = Path(__file__).resolve().parent / "generated"
"""Where the examples' clients are generated: ``from generated.jobs import JobsClient``."""


def generate_clients() -> None:
    """Writes ``generated/kv.py`` and ``generated/jobs.py`` from the
    examples' schemas (``--schema``), as a user would from theirs."""
    from rust_tcp.generate import generate

    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "__init__.py").write_text('"""Clients generated from the examples\' schemas."""\n')
    for module, example in [("kv", "kv_store"), ("jobs", "job_queue")]:
        schema = subprocess.run(
            [binary(f"examples/{example}"), "--schema"], check=True, capture_output=True, text=True
        ).stdout
        (GENERATED / f"{module}.schema.json").write_text(schema)
        (GENERATED / f"{module}.py").write_text(generate(schema))


def pytest_configure(config: pytest.Config) -> None:
    # Before the tests are collected: they import the generated modules.
    generate_clients()


def _addr_after(line: str) -> str:
    after = line.rsplit("listening on ", 1)[1]
    return "".join(c for c in after.split()[0] if c.isalnum() or c in ".:[]")


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Processes a test starts; each is stopped by its PID afterwards."""
    started: list[Process] = []
    yield started
    for p in started:
        p.stop(signal.SIGKILL)


@pytest.fixture
def server(processes: list[Process]) -> Callable[..., Server]:
    def start(*args: str, addr: str = "127.0.0.1:0") -> Server:
        s = Server(*args, addr=addr)
        processes.append(s)
        return s

    return start


def python_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m rust_tcp ARGS`` run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "rust_tcp", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        env={**os.environ, **(env or {})},
    )


# ---- certificates, made at test time ----


@dataclass
class Pem:
    cert: str
    key: str


@dataclass
class Certs:
    ca: str
    server: Pem
    client: Pem
    expired: Pem


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    where = tmp_path_factory.mktemp("certs")
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("test CA"))
        .issuer_name(name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def write(stem: str, cert: Any, key: Any) -> Pem:
        cert_path = where / f"{stem}.pem"
        key_path = where / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return Pem(str(cert_path), str(key_path))

    def leaf(stem: str, usage: Any, expired: bool = False) -> Pem:
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = (
            (now - datetime.timedelta(days=3), now - datetime.timedelta(days=2))
            if expired
            else (
                now - datetime.timedelta(days=1),
                now + datetime.timedelta(days=1),
            )
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(stem))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return write(stem, cert, key)

    ca_path = where / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return Certs(
        ca=str(ca_path),
        server=leaf("server", ExtendedKeyUsageOID.SERVER_AUTH),
        client=leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH),
        expired=leaf("expired", ExtendedKeyUsageOID.SERVER_AUTH, expired=True),
    )


# ---- a server written here, to misbehave on purpose ----

HEADER = struct.Struct(">BBI")


def frame(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(2, kind, len(payload)) + payload


def welcome(heartbeat_ms: int = 0, max_frame: int = 1 << 24, name: bytes = b"fake", extensions: bytes = b"") -> bytes:
    return frame(2, bytes([2]) + struct.pack(">IIH", max_frame, heartbeat_ms, len(name)) + name + extensions)


class Peer:
    """One accepted connection, seen from the fake server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read_frame(self) -> tuple[int, bytes]:
        """The client's next frame (type, payload), or (-1, b"") at its end."""
        try:
            header = await asyncio.wait_for(self.reader.readexactly(6), PATIENCE)
        except asyncio.IncompleteReadError:
            return -1, b""
        _, kind, length = HEADER.unpack(header)
        return kind, await self.reader.readexactly(length)

    async def expect(self, kind: int) -> bytes:
        got, payload = await self.read_frame()
        assert got == kind, f"expected frame type {kind}, got {got} {payload!r}"
        return payload

    async def expect_close(self) -> tuple[int, str]:
        payload = await self.expect(0x0A)
        return struct.unpack(">H", payload[:2])[0], payload[2:].decode()

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def at_end(self) -> bool:
        """Whether the client closed its side (all it sent already read)."""
        return await asyncio.wait_for(self.reader.read(1), PATIENCE) == b""


class FakeServer:
    """Accepts connections on a free loopback port and hands each to
    ``script`` (after reading its HELLO)."""

    def __init__(self, script: Callable[[Peer], Awaitable[None]]) -> None:
        self.script = script
        self.server: asyncio.Server | None = None
        self.done: list[asyncio.Future[None]] = []
        self.hellos: list[bytes] = []

    async def __aenter__(self) -> FakeServer:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.done.append(fut)
            peer = Peer(reader, writer)
            try:
                self.hellos.append(await peer.expect(0x01))
                await self.script(peer)
                fut.set_result(None)
            except BaseException as e:  # surfaced by finished()
                fut.set_exception(e)
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return self

    @property
    def addr(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def finished(self) -> None:
        """Waits for every connection's script, raising what it raised."""
        for fut in self.done:
            await asyncio.wait_for(fut, PATIENCE)

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
