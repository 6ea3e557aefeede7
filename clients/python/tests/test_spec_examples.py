"""Every ``hex frame`` example in docs/PROTOCOL.md, read and written by this
package byte for byte: the spec is the contract for this client too."""

from __future__ import annotations

import re
import struct

from conftest import REPO

from rust_tcp import frames
from rust_tcp.frames import AppProtocol, FrameType
from rust_tcp.resume import EXT_RESUME, Resumable, ack, decode_ack, decode_grant


def examples() -> list[tuple[bytes, str]]:
    spec = (REPO / "docs" / "PROTOCOL.md").read_text()
    found = []
    for block in re.findall(r"```hex frame\n(.*?)```", spec, re.S):
        hex_lines = [line for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
        comment = " ".join(line.strip()[1:].strip() for line in block.splitlines() if line.strip().startswith("#"))
        found.append((bytes.fromhex(" ".join(hex_lines)), comment))
    return found


def written_again(data: bytes, comment: str) -> bytes:
    """What this package writes for the frame ``data`` holds."""
    version, kind, length = frames.HEADER.unpack_from(data)
    assert version == 2 and length == len(data) - 6, comment
    payload = data[6:]
    if kind == FrameType.HELLO:
        token = "s3cret" if "auth token" in comment else None
        app = AppProtocol("kv", 1, 2) if "kv" in comment else None
        ask = None
        if "resum" in comment:
            # Spec 3.14: a new session, or the ticket of session 11…11.
            session = Resumable(bytes([0x11] * 16), bytes([0x22] * 16), 60_000, 1 << 20)
            session.received = 40
            ask = session.ask(60_000, resuming="resuming" in comment)
        return frames.hello("alice", 16 * 1024 * 1024, 0, token, app, calls="speaks calls" in comment, resume=ask)
    if kind == FrameType.WELCOME:
        w = frames.decode_welcome(payload)
        ext = w.extension(frames.EXT_APP_PROTOCOL)
        if ext is not None:
            choice = frames.decode_app_choice(ext)
            assert (choice.name, choice.version, choice.encoding) == ("kv", 2, 1)
        calls = w.extension(frames.EXT_CALLS)
        if calls is not None:
            assert frames.decode_call_limits(calls) == frames.CallLimits(100, 16, 0), comment
        grant = w.extension(EXT_RESUME)
        if grant is not None:
            g = decode_grant(grant)
            assert g.expiry_ms == 60_000, comment
            assert g.status != 2 or g.refusal in comment, comment
        assert w.server_name == "rust-tcp"
        return data
    if kind == FrameType.ACK:
        return ack(decode_ack(payload))
    if kind in (FrameType.CLOSE, FrameType.ERROR, FrameType.GOAWAY):
        code, reason = frames.decode_code_reason("CLOSE", payload)
        assert str(code) in comment
        return frames.code_reason(kind, code, reason)
    if kind == FrameType.TEXT:
        return frames.frame(kind, frames.text(payload, "text").encode())
    if kind == FrameType.PING:
        return frames.ping(frames.decode_nonce("PING", payload))
    if kind == FrameType.REQUEST:
        return frames.request(int.from_bytes(payload[:4], "big"), payload[4:])
    if kind == FrameType.RESPONSE:
        request_id, status, body = frames.decode_response(payload)
        return frames.frame(kind, request_id.to_bytes(4, "big") + bytes([status]) + body)
    if kind == FrameType.CALL:
        call_id, flags, deadline_ms, credit = struct.unpack_from(">IBII", payload)
        meta = [("traceparent", TRACEPARENT.encode())] if "traceparent" in comment else []
        if "rust-tcp-schema" in comment:
            meta = [("rust-tcp-schema", b"")]
        meta_len = 1 + sum(3 + len(k) + len(v) for k, v in meta)
        request = payload[13 + meta_len :]
        return frames.call(call_id, flags, deadline_ms, credit, meta, request)
    if kind == FrameType.ITEM:
        return frames.item(*frames.decode_item(payload))
    if kind == FrameType.CREDIT:
        return frames.credit(*frames.decode_credit(payload))
    if kind == FrameType.END:
        return frames.end(int.from_bytes(payload, "big"))
    if kind == FrameType.CANCEL:
        return frames.cancel(int.from_bytes(payload, "big"))
    if kind == FrameType.STATUS:
        call_id, status, body = frames.decode_status(payload)
        return frames.frame(kind, call_id.to_bytes(4, "big") + bytes([status]) + body)
    return frames.frame(kind, payload)


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_every_hex_example_is_read_and_written_byte_for_byte() -> None:
    found = examples()
    assert len(found) >= 15, "the spec's examples were not found"
    for data, comment in found:
        assert written_again(data, comment) == data, comment
