"""``python -m rust_tcp``: the Rust ``client`` binary's commands, in Python.

    python -m rust_tcp send hello world        # each a TEXT message; exit 0 once processed
    python -m rust_tcp request ping "2 + 2"    # each a REQUEST; responses in argument order
    python -m rust_tcp --name alice chat       # stdin lines out, the room's lines in
    python -m rust_tcp --addr HOST:PORT describe > jobs.json   # a server's schema
    python -m rust_tcp generate jobs.json -o jobs.py   # a typed client from a schema

Errors are one line on stderr (``error: …``) with exit status 1; usage
errors exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from collections.abc import Sequence

from .client import Client, Reconnect, tls_context
from .errors import InvalidConfig, RustTcpError
from .events import (
    Binary,
    Disconnected,
    GoAway,
    Reconnected,
    ReconnectFailed,
    Resumed,
    ResumeRefused,
    ServerError,
    Text,
)


def printable(text: str) -> str:
    """Text from the network, safe for a terminal: control characters escaped."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def show_payload(data: bytes) -> str:
    try:
        return printable(data.decode())
    except UnicodeDecodeError:
        return f"<{len(data)} bytes of binary>"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rust_tcp",
        description="Talk to a rust-tcp server over protocol v2 (the Python twin of the Rust `client`).",
        epilog="Errors are one line on stderr with exit status 1. The token comes from --token-file, "
        "else from the RUST_TCP_TOKEN environment variable.",
    )
    conn = p.add_argument_group("connection options (any command)")
    conn.add_argument("--addr", default="127.0.0.1:8080", help="server address, HOST:PORT (default: %(default)s)")
    conn.add_argument("--name", default="python-client", help="the name we introduce ourselves with")
    conn.add_argument(
        "--tls", action="store_true", help="connect with TLS, verifying the server against the system's roots (or --ca)"
    )
    conn.add_argument("--ca", metavar="FILE", help="trust only the CA certificates in this PEM file (implies --tls)")
    conn.add_argument(
        "--server-name",
        metavar="NAME",
        help="the name the server's certificate must carry (implies --tls; default: the host of --addr)",
    )
    conn.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="present this certificate chain (PEM) to a server that asks (implies --tls; needs --tls-key)",
    )
    conn.add_argument("--tls-key", metavar="FILE", help="the private key (PEM) of --tls-cert")
    conn.add_argument(
        "--token-file",
        "--auth-token-file",
        metavar="FILE",
        help="authenticate with the token on the first line of this file",
    )
    conn.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECS",
        help="how long connecting and the handshake may take (default: %(default)s)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    send = sub.add_parser(
        "send", help="send each MESSAGE as one text message; exit 0 once the server has processed them all"
    )
    send.add_argument(
        "messages", nargs="*", metavar="MESSAGE", help="messages to send; none: one per line of standard input"
    )
    request = sub.add_parser(
        "request",
        help="send each PAYLOAD as a request (all in flight at once) and print each response, in argument order",
    )
    request.add_argument("payloads", nargs="+", metavar="PAYLOAD")
    request.add_argument("--timeout", type=float, metavar="SECS", help="fail a request whose response takes longer")
    chat = sub.add_parser(
        "chat", help="send standard input line by line and print what others send (the server needs --broadcast)"
    )
    chat.add_argument("--no-reconnect", action="store_true", help="end with the connection instead of reconnecting")
    chat.add_argument(
        "--max-reconnect-attempts", type=int, metavar="N", help="give up (exit 1) after N failed attempts in a row"
    )
    sub.add_parser(
        "describe",
        help="print the schema of the server's protocol as JSON (the server needs reflection on); "
        "what `generate` reads",
    )
    generate = sub.add_parser(
        "generate",
        help="write a typed Python client (dataclasses, a method per call; mypy --strict clean) "
        "for the protocol of SCHEMA (from `client describe --json`); no connection is made",
    )
    generate.add_argument("schema", metavar="SCHEMA", help="the schema, JSON (`-` for standard input)")
    generate.add_argument("-o", "--output", metavar="FILE", help="write the module here (default: standard output)")
    return p


def run_generate(args: argparse.Namespace) -> None:
    """Writes the module, or nothing at all when the schema is bad."""
    from .generate import SchemaError, generate

    if args.schema == "-":
        text = sys.stdin.read()
    else:
        with open(args.schema, encoding="utf-8") as f:
            text = f.read()
    try:
        module = generate(text)
    except SchemaError as e:
        raise UsageError(f"{args.schema}: {e}") from None
    if args.output is None:
        sys.stdout.write(module)
        return
    # Written whole or not at all: a half-written module would be imported.
    tmp = f"{args.output}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(module)
    os.replace(tmp, args.output)


def prepare(args: argparse.Namespace) -> None:
    """Reads the files the arguments name (before the event loop starts):
    ``args.ssl_context`` and ``args.token``."""
    args.ssl_context = None
    if args.tls or args.ca or args.server_name or args.tls_cert or args.tls_key:
        if (args.tls_cert is None) != (args.tls_key is None):
            raise UsageError("--tls-cert and --tls-key go together")
        args.ssl_context = tls_context(args.ca, args.tls_cert, args.tls_key)
    args.token = None
    if args.token_file is not None:
        with open(args.token_file, encoding="utf-8") as f:
            args.token = f.readline().strip()
        if not args.token:
            raise UsageError(f"{args.token_file}: the first line holds no token")


async def connect(args: argparse.Namespace, reconnect: Reconnect | None = None, resume: float | None = None) -> Client:
    return await Client.connect(
        args.addr,
        name=args.name,
        token=args.token,
        ssl=args.ssl_context,
        server_hostname=args.server_name,
        connect_timeout=args.connect_timeout,
        reconnect=reconnect,
        resume=resume,
    )


class UsageError(Exception):
    """Arguments that cannot work together (exit 2)."""


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Standard input, line by line, without blocking the loop: a thread
    reads (a pipe, a terminal or a plain file alike) and hands each line
    over; None marks the end."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, daemon=True).start()
    return lines


async def run_send(args: argparse.Namespace) -> None:
    client = await connect(args)
    try:
        if args.messages:
            for message in args.messages:
                await client.send_text(message)
        else:
            lines = stdin_lines(asyncio.get_running_loop())
            while (line := await lines.get()) is not None:
                await client.send_text(line)
    except BaseException:
        await asyncio.shield(_close_quietly(client))
        raise
    try:
        await client.close()
    except RustTcpError as e:
        raise RustTcpError(f"{e}; the messages may not have been received") from None


async def _close_quietly(client: Client) -> None:
    try:
        await client.close()
    except RustTcpError:
        pass


async def run_request(args: argparse.Namespace) -> None:
    async with await connect(args) as client:
        answers = await asyncio.gather(
            *(client.request(p, timeout=args.timeout) for p in args.payloads), return_exceptions=True
        )
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
            print(show_payload(answer), flush=True)


async def run_chat(args: argparse.Namespace) -> None:
    reconnect = None if args.no_reconnect else Reconnect(max_delay=2.0, max_attempts=args.max_reconnect_attempts)
    # Reconnecting resumes the session: lines sent to the room while we
    # were away are printed once we are back, and ours are not lost.
    client = await connect(args, reconnect, resume=None if reconnect is None else 60.0)
    print(f"* connected to {printable(client.server_name)}", file=sys.stderr, flush=True)
    lines = stdin_lines(asyncio.get_running_loop())

    async def typed() -> None:
        while (line := await lines.get()) is not None:
            await client.send_text(line)

    async def shown() -> None:
        async for pushed in client.incoming():
            if isinstance(pushed, Text):
                print(printable(pushed.text), flush=True)
            elif isinstance(pushed, Binary):
                print(f"<{len(pushed.data)} bytes of binary>", flush=True)
            elif isinstance(pushed, ServerError):
                print(f"* server error {pushed.code}: {printable(pushed.reason)}", flush=True)
            elif isinstance(pushed, GoAway):
                if reconnect is None:
                    print(f"* server is going away ({pushed.code}: {printable(pushed.reason)}); leaving", flush=True)
                    return
            elif isinstance(pushed, Disconnected):
                print(f"* {printable(pushed.why)}; reconnecting", file=sys.stderr, flush=True)
            elif isinstance(pushed, Resumed):
                print(
                    f"* resumed: {pushed.replayed} missed lines follow, {pushed.resent} of ours sent again",
                    file=sys.stderr,
                    flush=True,
                )
            elif isinstance(pushed, ResumeRefused):
                print(
                    f"* could not resume ({printable(pushed.reason)}): lines sent while we were away are lost, "
                    f"and {pushed.unacknowledged} of ours may be",
                    file=sys.stderr,
                    flush=True,
                )
            elif isinstance(pushed, Reconnected):
                print(f"* reconnected to {printable(pushed.server_name)}", file=sys.stderr, flush=True)
            elif isinstance(pushed, ReconnectFailed):
                if pushed.gave_up:
                    raise RustTcpError(f"could not reconnect after {pushed.attempt} attempts: {pushed.error}")
                print(f"* reconnect attempt {pushed.attempt} failed: {pushed.error}", file=sys.stderr, flush=True)
        if reconnect is None:
            raise RustTcpError("the connection ended")

    sending = asyncio.ensure_future(typed())
    showing = asyncio.ensure_future(shown())
    try:
        done, _ = await asyncio.wait({sending, showing}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        sending.cancel()
        showing.cancel()
        if not (showing.done() and not showing.cancelled() and showing.exception() is not None):
            await _close_quietly(client)


async def run_describe(args: argparse.Namespace) -> None:
    from .typed import fetch_schema

    client = await connect(args)
    try:
        schema = await fetch_schema(client)
    finally:
        await client.close()
    print(json.dumps(schema, indent=2))


COMMANDS = {"send": run_send, "request": run_request, "chat": run_chat, "describe": run_describe}


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        if args.command == "generate":
            run_generate(args)
            return 0
        prepare(args)
        asyncio.run(COMMANDS[args.command](args))
    except (UsageError, InvalidConfig) as e:
        p.print_usage(sys.stderr)
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    except (RustTcpError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
