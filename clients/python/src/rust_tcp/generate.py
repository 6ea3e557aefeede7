"""``python -m rust_tcp generate SCHEMA.json``: a typed Python client for a
protocol, written from its schema (``client describe --json`` against a
running server, or a Rust program's ``Schema::of::<P>().to_json()``).

The module it writes holds a frozen dataclass per struct (fields by their
wire names, keyword-only), a dataclass per enum variant with the enum as
their union (``State = StateQueued | StateRunning``), and a client class
with one async method per call, each returning that call's own type (a
:class:`~rust_tcp.wire.Stream` of the item type for a streaming call).
Values are checked as they are read, so an answer of another shape fails
with a ``DecodeError`` naming where. The module is ``mypy --strict``
clean; generate it again when the Rust types change, and the type checker
finds every use that no longer fits (a renamed field, a removed call)
before anything runs.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass, field
from typing import Any

SCHEMA_FORMAT = 1


class SchemaError(ValueError):
    """The file is not a schema this generator reads."""


def _camel(name: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", name)
    return "".join(p[:1].upper() + p[1:] for p in parts if p) or "Protocol"


def _ident(name: str) -> str:
    """A Python identifier for a field or argument named ``name`` on the wire."""
    out = re.sub(r"\W", "_", name)
    if not out or out[0].isdigit():
        out = f"arg{out}"
    if keyword.iskeyword(out) or out in {"self", "cls", "deadline", "metadata", "window"}:
        out += "_"
    return out


def _str(text: str) -> str:
    return json.dumps(text)


@dataclass
class _Gen:
    schema: dict[str, Any]
    names: dict[str, str] = field(default_factory=dict)
    """Python names of the schema's types, by their serde name."""
    depth: int = 0

    # ---- names ----

    def type_name(self, serde_name: str) -> str:
        if serde_name not in self.names:
            base = re.sub(r"\W", "_", serde_name)
            if keyword.iskeyword(base) or base in {"PROTOCOL"}:
                base += "_"
            self.names[serde_name] = base
        return self.names[serde_name]

    def shape_of(self, serde_name: str) -> Any:
        t = self.schema["types"].get(serde_name)
        if t is None:
            raise SchemaError(f"the schema names type {serde_name!r} but does not describe it")
        return t["shape"]

    # ---- Python types ----

    def py(self, ty: Any) -> str:
        if isinstance(ty, str):
            return {
                "unit": "None",
                "bool": "bool",
                "f32": "float",
                "f64": "float",
                "char": "str",
                "str": "str",
                "bytes": "bytes",
            }.get(ty, "int" if re.fullmatch(r"[iu](8|16|32|64|128)", ty) else "_typing.Any")
        ((kind, inner),) = ty.items()
        if kind == "option":
            return f"{self.py(inner)} | None"
        if kind == "seq":
            return f"list[{self.py(inner)}]"
        if kind == "array":
            return f"list[{self.py(inner['item'])}]"
        if kind == "map":
            return f"dict[{self.py(inner['key'])}, {self.py(inner['value'])}]"
        if kind == "tuple":
            return "tuple[" + ", ".join(self.py(t) for t in inner) + "]" if inner else "tuple[()]"
        if kind == "named":
            return self.type_name(inner)
        raise SchemaError(f"unknown type {ty!r}")

    # ---- expressions ----

    def fresh(self) -> str:
        self.depth += 1
        return f"v{self.depth}"

    def write(self, ty: Any, x: str) -> str:
        """An expression for the wire form of the Python value ``x``."""
        if isinstance(ty, str):
            if ty in ("i128", "u128"):
                return f"_wire.write_big_int({x}, signed={ty == 'i128'})"
            return "None" if ty == "unit" else x
        ((kind, inner),) = ty.items()
        v = self.fresh()
        if kind == "option":
            return f"_wire.write_optional({x}, lambda {v}: {self.write(inner, v)})"
        if kind == "seq":
            return f"[{self.write(inner, v)} for {v} in {x}]"
        if kind == "array":
            return f"[{self.write(inner['item'], v)} for {v} in {x}]"
        if kind == "map":
            k = self.fresh()
            return f"{{{self.write(inner['key'], k)}: {self.write(inner['value'], v)} for {k}, {v} in {x}.items()}}"
        if kind == "tuple":
            return "[" + ", ".join(self.write(t, f"{x}[{i}]") for i, t in enumerate(inner)) + "]"
        if kind == "named":
            return f"_write_{self.type_name(inner)}({x})"
        raise SchemaError(f"unknown type {ty!r}")

    def read(self, ty: Any, v: str, at: str) -> str:
        """An expression reading the wire value ``v`` (at path ``at``, an
        expression too) as a Python value of ``ty``."""
        if isinstance(ty, str):
            if ty in ("i128", "u128"):
                return f"_wire.read_big_int({v}, {at}, signed={ty == 'i128'})"
            if re.fullmatch(r"[iu](8|16|32|64)", ty):
                return f"_wire.read_int({v}, {at})"
            reader = {
                "unit": "read_none",
                "bool": "read_bool",
                "f32": "read_float",
                "f64": "read_float",
                "char": "read_str",
                "str": "read_str",
                "bytes": "read_bytes",
            }.get(ty)
            if reader is None:
                raise SchemaError(f"unknown type {ty!r}")
            return f"_wire.{reader}({v}, {at})"
        ((kind, inner),) = ty.items()
        if kind == "named":
            return f"_read_{self.type_name(inner)}({v}, {at})"
        w, a = self.fresh(), self.fresh()
        if kind == "option":
            return f"_wire.read_optional({v}, {at}, lambda {w}, {a}: {self.read(inner, w, a)})"
        if kind == "seq":
            return f"_wire.read_list({v}, {at}, lambda {w}, {a}: {self.read(inner, w, a)})"
        if kind == "array":
            item = self.read(inner["item"], w, a)
            return f"_wire.read_list({v}, {at}, lambda {w}, {a}: {item}, length={inner['len']})"
        if kind == "map":
            k, ka = self.fresh(), self.fresh()
            key = self.read(inner["key"], k, ka)
            value = self.read(inner["value"], w, a)
            return f"_wire.read_dict({v}, {at}, lambda {k}, {ka}: {key}, lambda {w}, {a}: {value})"
        if kind == "tuple":
            items = ", ".join(self.read(t, f"{w}[{i}]", f'{at} + "[{i}]"') for i, t in enumerate(inner))
            comma = "," if len(inner) == 1 else ""
            return f"(lambda {w}: ({items}{comma}))(_wire.read_array({v}, {at}, {len(inner)}))"
        raise SchemaError(f"unknown type {ty!r}")

    # ---- types ----

    def fields_decl(self, fields: list[dict[str, Any]]) -> list[str]:
        lines = []
        required = [f for f in fields if not f["default"]]
        optional = [f for f in fields if f["default"]]
        for f in required:
            lines.append(f"    {_ident(f['name'])}: {self.py(f['type'])}")
        for f in optional:
            t = self.py(f["type"])
            if not t.endswith("| None"):
                t += " | None"
            lines.append(f"    {_ident(f['name'])}: {t} = None")
        return lines or ["    pass"]

    def fields_write(self, fields: list[dict[str, Any]], obj: str) -> list[str]:
        """Statements building ``out``, the map of a struct's fields."""
        lines = ["    out: dict[str, _typing.Any] = {}"]
        for f in fields:
            attr = f"{obj}.{_ident(f['name'])}"
            is_option = isinstance(f["type"], dict) and "option" in f["type"]
            if f["default"] and not is_option:
                # Left out when not given: the receiver fills in its default.
                lines.append(f"    if {attr} is not None:")
                lines.append(f"        out[{_str(f['name'])}] = {self.write(f['type'], attr)}")
            else:
                lines.append(f"    out[{_str(f['name'])}] = {self.write(f['type'], attr)}")
        return lines

    def fields_read(self, fields: list[dict[str, Any]], cls: str, d: str, at: str) -> str:
        args = []
        for f in fields:
            name = _str(f["name"])
            here = f'{at} + ".{f["name"]}"'
            if f["default"]:
                value = f"{d}.get({name})"
                ty = f["type"]
                if not (isinstance(ty, dict) and "option" in ty):
                    ty = {"option": ty}
                args.append(f"{_ident(f['name'])}={self.read(ty, value, here)}")
            else:
                args.append(f"{_ident(f['name'])}={self.read(f['type'], f'_wire.field({d}, {name}, {at})', here)}")
        return f"{cls}({', '.join(args)})"

    def type_code(self, serde_name: str, shape: Any) -> list[str]:
        name = self.type_name(serde_name)
        out: list[str] = []
        if isinstance(shape, str) or "enum" not in shape:
            return self.struct_code(serde_name, name, shape)
        variants = shape["enum"]
        members = []
        write = [f"def _write_{name}(x: {name}) -> _typing.Any:"]
        read = [
            f"def _read_{name}(v: _typing.Any, at: str) -> {name}:",
            f"    tag, payload = _wire.read_variant(v, at, {_str(serde_name)})",
        ]
        for variant in variants:
            vname = variant["name"]
            # `StateRunning`; `StateRunning_` if a type of that name exists.
            cls = f"{name}{vname}"
            if f"{serde_name}{vname}" in self.schema["types"]:
                cls += "_"
            members.append(cls)
            vshape = variant["shape"]
            here = f'at + ".{vname}"'
            out.append("")
            out.append("")
            out.append("@_dc.dataclass(frozen=True, kw_only=True)")
            out.append(f"class {cls}:")
            out.append(f'    """The variant ``{vname}`` of ``{serde_name}``."""')
            out.append("")
            if vshape == "unit":
                out.append("    pass")
                write.append(f"    if isinstance(x, {cls}):")
                write.append(f"        return {_str(vname)}")
                read.append(f"    if tag == {_str(vname)}:")
                read.append(f"        return {cls}()")
            elif "newtype" in vshape:
                out.append(f"    value: {self.py(vshape['newtype'])}")
                write.append(f"    if isinstance(x, {cls}):")
                write.append(f"        return {{{_str(vname)}: {self.write(vshape['newtype'], 'x.value')}}}")
                read.append(f"    if tag == {_str(vname)}:")
                read.append(f"        return {cls}(value={self.read(vshape['newtype'], 'payload', here)})")
            elif "tuple" in vshape:
                items = vshape["tuple"]
                for i, t in enumerate(items):
                    out.append(f"    f{i}: {self.py(t)}")
                if not items:
                    out.append("    pass")
                write.append(f"    if isinstance(x, {cls}):")
                written = ", ".join(self.write(t, f"x.f{i}") for i, t in enumerate(items))
                write.append(f"        return {{{_str(vname)}: [{written}]}}")
                read.append(f"    if tag == {_str(vname)}:")
                read.append(f"        items = _wire.read_array(payload, {here}, {len(items)})")
                args = ", ".join(f"f{i}={self.read(t, f'items[{i}]', here)}" for i, t in enumerate(items))
                read.append(f"        return {cls}({args})")
            elif "struct" in vshape:
                fields = vshape["struct"]
                out.extend(self.fields_decl(fields))
                write.append(f"    if isinstance(x, {cls}):")
                write.extend("    " + line for line in self.fields_write(fields, "x"))
                write.append(f"        return {{{_str(vname)}: out}}")
                read.append(f"    if tag == {_str(vname)}:")
                read.append(f"        d = _wire.read_struct(payload, {here}, {_str(vname)})")
                read.append(f"        return {self.fields_read(fields, cls, 'd', here)}")
            else:
                raise SchemaError(f"variant {vname} of {serde_name}: unknown shape {vshape!r}")
        write.append(f'    raise TypeError(f"not a value of {name}: {{x!r}}")')
        read.append(f"    raise _wire.unknown_variant(at, {_str(serde_name)}, tag)")
        union = " | ".join(members) if members else "_typing.NoReturn"
        out.append("")
        out.append("")
        out.append(f"{name}: _typing.TypeAlias = {_str(union)}")
        out.append(f'"""``{serde_name}``: one of its variants."""')
        return [*out, "", "", *write, "", "", *read]

    def struct_code(self, serde_name: str, name: str, shape: Any) -> list[str]:
        out = ["", ""]
        if shape == "unit":
            out += [
                "@_dc.dataclass(frozen=True)",
                f"class {name}:",
                f'    """``{serde_name}``, which holds nothing."""',
                "",
                "",
                f"def _write_{name}(x: {name}) -> _typing.Any:",
                "    return []",
                "",
                "",
                f"def _read_{name}(v: _typing.Any, at: str) -> {name}:",
                "    _wire.read_none(v, at)",
                f"    return {name}()",
            ]
        elif "newtype" in shape or "tuple" in shape:
            ty = shape["newtype"] if "newtype" in shape else {"tuple": shape["tuple"]}
            out += [
                f"{name}: _typing.TypeAlias = {_str(self.py(ty))}",
                f'"""``{serde_name}``, as its wire has it."""',
                "",
                "",
                f"def _write_{name}(x: {name}) -> _typing.Any:",
                f"    return {self.write(ty, 'x')}",
                "",
                "",
                f"def _read_{name}(v: _typing.Any, at: str) -> {name}:",
                f"    return {self.read(ty, 'v', 'at')}",
            ]
        elif "struct" in shape:
            fields = shape["struct"]
            out += [
                "@_dc.dataclass(frozen=True, kw_only=True)",
                f"class {name}:",
                f'    """``{serde_name}``."""',
                "",
                *self.fields_decl(fields),
                "",
                "",
                f"def _write_{name}(x: {name}) -> _typing.Any:",
                *self.fields_write(fields, "x"),
                "    return out",
                "",
                "",
                f"def _read_{name}(v: _typing.Any, at: str) -> {name}:",
                f"    d = _wire.read_struct(v, at, {_str(serde_name)})",
                f"    return {self.fields_read(fields, name, 'd', 'at')}",
            ]
        else:
            raise SchemaError(f"type {serde_name}: unknown shape {shape!r}")
        return out

    # ---- the client ----

    def top_name(self, which: str) -> str | None:
        ty = self.schema[which]
        return ty["named"] if isinstance(ty, dict) and "named" in ty else None

    def request_shape(self, call: dict[str, Any]) -> Any:
        top = self.top_name("message" if call["kind"] == "one_way" else "request")
        if top is None:
            raise SchemaError(f"call {call['name']}: the request type is not an enum")
        for variant in self.shape_of(top).get("enum", []):
            if variant["name"] == call["variant"]:
                return variant["shape"]
        raise SchemaError(f"call {call['name']}: no variant {call['variant']} in {top}")

    def request_expr(self, call: dict[str, Any]) -> str:
        shape = self.request_shape(call)
        tag = _str(call["variant"])
        args = call["args"]
        if shape == "unit":
            return tag
        if "newtype" in shape:
            return f"{{{tag}: {self.write(args[0]['type'], _ident(args[0]['name']))}}}"
        if "tuple" in shape:
            items = ", ".join(self.write(a["type"], _ident(a["name"])) for a in args)
            return f"{{{tag}: [{items}]}}"
        entries = ", ".join(f"{_str(a['name'])}: {self.write(a['type'], _ident(a['name']))}" for a in args)
        return f"{{{tag}: {{{entries}}}}}"

    def method(self, call: dict[str, Any]) -> list[str]:
        name = _ident(call["name"])
        params = "".join(f", {_ident(a['name'])}: {self.py(a['type'])}" for a in call["args"])
        request = self.request_expr(call)
        since = f" (since version {call['since']})" if call["since"] > self.schema["versions"][0] else ""
        kind = call["kind"]
        if kind == "one_way":
            return [
                f"    async def {name}(self{params}) -> None:",
                f'        """``{call["name"]}``: a one-way message{since}."""',
                f"        await self._typed.send({request})",
            ]
        options = "deadline: float | None = None, metadata: _abc.Mapping[str, bytes | str] | None = None"
        if kind == "streaming":
            item = self.schema["item"]
            both = call.get("client_stream", False)
            v, a = self.fresh(), self.fresh()
            return [
                f"    async def {name}(self{params}, *, window: int = 256, {options})"
                f" -> _wire.Stream[{self.py(item)}]:",
                f'        """``{call["name"]}``: a streaming call{since}; read its items with ``async for``'
                + (", send yours with ``send`` and ``end``" if both else "")
                + '."""',
                "        call = await self._typed.stream(",
                f"            {request},",
                "            window=window,",
                "            deadline=deadline,",
                "            metadata=metadata,",
                f"            client_stream={both},",
                "        )",
                f"        return _wire.Stream(call, lambda {v}, {a}: {self.read(item, v, a)}, "
                f"lambda {v}: {self.write(item, v)}, _read_protocol_error)",
            ]
        returns = call.get("returns")
        if returns is not None:
            ret_type = self.py(returns)
            result = self.read(returns, f'_wire.unwrap(answer, {_str(call["variant"])}, "response")', '"response"')
        else:
            ret_type = self.py(self.schema["response"])
            result = self.read(self.schema["response"], "answer", '"response"')
        return [
            f"    async def {name}(self{params}, *, {options}) -> {ret_type}:",
            f'        """``{call["name"]}``{since}; ``RemoteError`` with the protocol\'s error, typed."""',
            "        try:",
            f"            answer = await self._typed.call_with({request}, deadline=deadline, metadata=metadata)",
            "        except _RemoteError as e:",
            '            raise _RemoteError(_read_protocol_error(e.error, "error")) from None',
            f"        return {result}",
        ]

    def error_reader(self) -> list[str]:
        error = self.schema["error"]
        if error == "unit":
            # A protocol whose calls never fail: nothing to read, but the
            # reader still has a value to hand to RemoteError.
            return [
                "def _read_protocol_error(v: _typing.Any, at: str) -> object:",
                "    _wire.read_none(v, at)",
                "    return None",
            ]
        return [
            f"def _read_protocol_error(v: _typing.Any, at: str) -> {self.py(error)}:",
            f"    return {self.read(error, 'v', 'at')}",
        ]

    def module(self) -> str:
        s = self.schema
        if s.get("schema") != SCHEMA_FORMAT:
            raise SchemaError(f"schema format {s.get('schema')!r}; this generator reads {SCHEMA_FORMAT}")
        if "msgpack" not in s["encodings"]:
            raise SchemaError(f"{s['protocol']} speaks {', '.join(s['encodings'])}; this client speaks msgpack only")
        protocol, (low, high) = s["protocol"], s["versions"]
        client = f"{_camel(protocol)}Client"
        # The request and message enums are the calls; a service's response
        # enum too (each call returns its own type).
        skip = {self.top_name("request"), self.top_name("message")}
        if any(c.get("returns") is not None and c["kind"] == "unary" for c in s["calls"]):
            skip.add(self.top_name("response"))
        for name in s["types"]:
            self.type_name(name)
        body: list[str] = []
        for name, t in sorted(s["types"].items()):
            if name not in skip:
                body += self.type_code(name, t["shape"])
        event = s["event"]
        lines = [
            f'"""The ``{protocol}`` protocol (versions {low}-{high}): its types and a client with a',
            "method per call, generated by ``python -m rust_tcp generate`` from its schema.",
            "",
            "Do not edit: generate it again when the Rust types change, and ``mypy`` finds",
            'every use that no longer fits."""',
            "",
            "# ruff: noqa",
            "",
            "from __future__ import annotations",
            "",
            "import collections.abc as _abc",
            "import dataclasses as _dc",
            "import typing as _typing",
            "",
            "from rust_tcp import wire as _wire",
            "from rust_tcp.events import Pushed as _Pushed",
            "from rust_tcp.frames import AppProtocol as _AppProtocol",
            "from rust_tcp.typed import DecodeError as _DecodeError",
            "from rust_tcp.typed import Event as _Event",
            "from rust_tcp.typed import RemoteError as _RemoteError",
            "from rust_tcp.typed import TypedClient as _TypedClient",
            "from rust_tcp.typed import Undecodable as _Undecodable",
            "",
            f"PROTOCOL = _AppProtocol({_str(protocol)}, {low}, {high})",
            '"""The protocol as the handshake offers it."""',
            *body,
            "",
            "",
            *self.error_reader(),
            "",
            "",
            f"class {client}:",
            f'    """A connection speaking ``{protocol}``: a method per call, each returning its own',
            "    type. Calls from many tasks share the one connection.",
            "",
            f'        async with await {client}.connect("127.0.0.1:7000", name="me") as c:',
            "            ...",
            '    """',
            "",
            "    def __init__(self, typed: _TypedClient) -> None:",
            "        self._typed = typed",
            "",
            "    @classmethod",
            f"    async def connect(cls, addr: str, **options: _typing.Any) -> {client}:",
            '        """Connects and negotiates the protocol (``Client.connect``\'s options)."""',
            "        return cls(await _TypedClient.connect(addr, PROTOCOL, **options))",
            "",
            f"    async def __aenter__(self) -> {client}:",
            "        return self",
            "",
            "    async def __aexit__(self, *exc_info: object) -> None:",
            "        await self.close()",
            "",
            "    @property",
            "    def typed(self) -> _TypedClient:",
            '        """The untyped-value client underneath."""',
            "        return self._typed",
            "",
            "    async def close(self) -> None:",
            '        """The close handshake."""',
            "        await self._typed.close()",
            "",
            f"    def events(self) -> _abc.AsyncIterator[{self.py(event)} | _Undecodable | _Pushed]:",
            '        """The server\'s events, typed, and whatever else the connection reports, from',
            '        now on (as ``TypedClient.events``: call it before what causes them)."""',
            "        return self._events(self._typed.events())",
            "",
            "    async def _events(",
            "        self, pushes: _abc.AsyncIterator[_typing.Any]",
            f"    ) -> _abc.AsyncIterator[{self.py(event)} | _Undecodable | _Pushed]:",
            "        async for pushed in pushes:",
            "            if isinstance(pushed, _Event):",
            "                try:",
            f"                    yield {self.read(event, 'pushed.value', chr(34) + 'event' + chr(34))}",
            "                except _DecodeError as e:",
            "                    yield _Undecodable(e)",
            "            else:",
            "                yield pushed",
        ]
        for call in s["calls"]:
            lines.append("")
            lines.extend(self.method(call))
        return "\n".join(lines) + "\n"


def generate(schema_json: str) -> str:
    """The Python module for the schema in ``schema_json``."""
    try:
        schema = json.loads(schema_json)
    except json.JSONDecodeError as e:
        raise SchemaError(f"not JSON: {e}") from None
    if not isinstance(schema, dict):
        raise SchemaError("not a rust-tcp schema (a JSON object)")
    try:
        return _Gen(schema).module()
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        if isinstance(e, SchemaError):
            raise
        raise SchemaError(f"not a rust-tcp schema: {type(e).__name__} {e}") from None
