"""``python -m rust_tcp``: send, request and chat, against the real server
and beside the Rust client."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

from conftest import Process, Server, binary, python_cli


def test_send_arguments_and_stdin(server: Callable[..., Server]) -> None:
    s = server()
    out = python_cli("--addr", s.addr, "--name", "py-cli", "send", "hello", "two words")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    s.wait_for('Message: "hello"', "stdout")
    s.wait_for('Message: "two words"', "stdout")
    out = python_cli("--addr", s.addr, "send", stdin="from\nstdin\n")
    assert out.returncode == 0, out.stderr
    s.wait_for('Message: "from"', "stdout")
    s.wait_for('Message: "stdin"', "stdout")


def test_request_prints_responses_in_argument_order(server: Callable[..., Server]) -> None:
    s = server()
    out = python_cli("--addr", s.addr, "request", "ping", "2 + 2", "ünïcode")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ping\n2 + 2\nünïcode\n"


def test_errors_are_one_line_with_exit_status_1_and_usage_errors_2() -> None:
    out = python_cli("--addr", "127.0.0.1:1", "send", "x")
    assert out.returncode == 1
    assert out.stderr == "error: cannot connect to 127.0.0.1:1: Connection refused\n"
    out = python_cli("--addr", "nonsense", "send", "x")
    assert out.returncode == 2 and "not HOST:PORT" in out.stderr
    out = python_cli("--name", "", "send", "x")
    assert out.returncode == 2 and "the name must be 1 to 64 bytes" in out.stderr
    out = python_cli("send", "x", "--bogus")
    assert out.returncode == 2
    out = python_cli()
    assert out.returncode == 2 and "COMMAND" in out.stderr
    out = python_cli("--help")
    assert out.returncode == 0 and "chat" in out.stdout and "--token-file" in out.stdout


def test_python_chat_and_rust_chat_share_a_room(server: Callable[..., Server], processes: list[Process]) -> None:
    s = server("--broadcast")
    py = Process([sys.executable, "-m", "rust_tcp", "--addr", s.addr, "--name", "alice", "chat"], stdin=True)
    processes.append(py)
    py.wait_for("* connected to rust-tcp")
    rust = Process([binary("client"), "--addr", s.addr, "--name", "bob", "chat"], stdin=True)
    processes.append(rust)
    rust.wait_for("* connected to rust-tcp")
    assert py.proc.stdin is not None and rust.proc.stdin is not None
    py.proc.stdin.write("hi bob\n")
    py.proc.stdin.flush()
    assert rust.wait_for("alice: hi bob", "stdout") == "alice: hi bob"
    rust.proc.stdin.write("hello alice\n")
    rust.proc.stdin.flush()
    assert py.wait_for("bob: hello alice", "stdout") == "bob: hello alice"
    # A lost server: the Python chat says so and keeps trying.
    s.stop(signal.SIGKILL)
    py.wait_for("reconnecting")
    py.wait_for("reconnect attempt 1 failed")
    # End of input ends the chat with status 0.
    py.proc.stdin.close()
    assert py.proc.wait(timeout=15) == 0


def test_chat_gives_up_when_told(server: Callable[..., Server], processes: list[Process]) -> None:
    s = server("--broadcast")
    py = Process(
        [sys.executable, "-m", "rust_tcp", "--addr", s.addr, "chat", "--max-reconnect-attempts", "2"], stdin=True
    )
    processes.append(py)
    py.wait_for("* connected to")
    s.stop(signal.SIGKILL)
    assert py.proc.wait(timeout=15) == 1
    py.wait_for("error: could not reconnect after 2 attempts")
