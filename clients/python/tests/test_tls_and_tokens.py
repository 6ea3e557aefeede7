"""TLS with certificates made at test time, mutual TLS, and tokens right and
wrong, against the real server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Certs, Server, python_cli, run

from rust_tcp import Cause, Client, HandshakeRefused, TlsError, tls_context


def test_tls_with_our_ca(server: Callable[..., Server], certs: Certs) -> None:
    s = server("--tls-cert", certs.server.cert, "--tls-key", certs.server.key)

    async def body() -> None:
        async with await Client.connect(s.addr, ssl=tls_context(certs.ca)) as client:
            assert await client.request(b"over TLS") == b"over TLS"
        # The system's roots do not know our CA.
        with pytest.raises(TlsError) as e:
            await Client.connect(s.addr, ssl=True)
        assert "certificate" in str(e.value) and e.value.is_network
        # A plain client on the TLS port is told what is wrong.
        with pytest.raises(TlsError, match="speaks TLS"):
            await Client.connect(s.addr)

    run(body())


def test_tls_checks_the_name_and_the_dates(server: Callable[..., Server], certs: Certs) -> None:
    s = server("--tls-cert", certs.server.cert, "--tls-key", certs.server.key)
    expired = server("--tls-cert", certs.expired.cert, "--tls-key", certs.expired.key)
    plain = server()

    async def body() -> None:
        with pytest.raises(TlsError, match=r"mismatch|doesn.t match|not valid for"):
            await Client.connect(s.addr, ssl=tls_context(certs.ca), server_hostname="elsewhere.example")
        async with await Client.connect(s.addr, ssl=tls_context(certs.ca), server_hostname="localhost"):
            pass
        with pytest.raises(TlsError, match="expired"):
            await Client.connect(expired.addr, ssl=tls_context(certs.ca))
        with pytest.raises(TlsError, match="does the server speak TLS"):
            await Client.connect(plain.addr, ssl=tls_context(certs.ca))

    run(body())


def test_mutual_tls(server: Callable[..., Server], certs: Certs) -> None:
    s = server("--tls-cert", certs.server.cert, "--tls-key", certs.server.key, "--tls-client-ca", certs.ca)

    async def body() -> None:
        mine = tls_context(certs.ca, certs.client.cert, certs.client.key)
        async with await Client.connect(s.addr, ssl=mine) as client:
            assert await client.request(b"me") == b"me"
        # Without a certificate the server ends the handshake (TLS 1.3 says
        # so after the client thinks it is done: either way, no session).
        with pytest.raises(TlsError, match="CERTIFICATE_REQUIRED"):
            await Client.connect(s.addr, ssl=tls_context(certs.ca))

    run(body())


def test_tokens_right_wrong_and_from_the_environment(
    server: Callable[..., Server], certs: Certs, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("first-token\nsecond-token\n")
    s = server("--auth-token-file", str(tokens), "--tls-cert", certs.server.cert, "--tls-key", certs.server.key)
    ctx = tls_context(certs.ca)

    async def body() -> None:
        async with await Client.connect(s.addr, ssl=ctx, token="second-token") as client:
            assert await client.request(b"in") == b"in"
        with pytest.raises(HandshakeRefused) as e:
            await Client.connect(s.addr, ssl=ctx, token="guess")
        assert e.value.code == 1008 and e.value.reason == "authentication failed"
        assert e.value.cause is Cause.SERVER
        with pytest.raises(HandshakeRefused):
            await Client.connect(s.addr, ssl=ctx)
        os.environ["RUST_TCP_TOKEN"] = "first-token"
        try:
            async with await Client.connect(s.addr, ssl=ctx) as client:
                assert await client.request(b"env") == b"env"
        finally:
            del os.environ["RUST_TCP_TOKEN"]

    run(body())
    # The command line: --token-file, and a wrong one as one line, exit 1.
    good = tmp_path / "good"
    good.write_text("first-token\n")
    out = python_cli("--addr", s.addr, "--ca", certs.ca, "--token-file", str(good), "request", "hello")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello\n"
    bad = tmp_path / "bad"
    bad.write_text("nope\n")
    out = python_cli("--addr", s.addr, "--ca", certs.ca, "--token-file", str(bad), "send", "x")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "1008 (policy violation): authentication failed" in out.stderr
