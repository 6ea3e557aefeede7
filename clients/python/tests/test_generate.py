"""``python -m rust_tcp generate``: a typed module from a schema, checked by
mypy --strict, whose values read and write serde's shapes; a field renamed
in the schema makes code written against the old one fail the type check;
a bad schema is one line and exit status 2, with nothing written."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import GENERATED

from rust_tcp.generate import SchemaError, generate

# Every kind of type the schema has (docs/SCHEMA.md), in one protocol.
SCHEMA: dict[str, Any] = {
    "schema": 1,
    "protocol": "every-type",
    "versions": [1, 2],
    "encodings": ["msgpack"],
    "calls": [
        {
            "name": "put",
            "kind": "unary",
            "since": 1,
            "variant": "Put",
            "args": [{"name": "thing", "type": {"named": "Thing"}, "default": False, "since": 1}],
            "returns": {"option": "u64"},
        }
    ],
    "request": {"named": "Request"},
    "response": {"named": "Response"},
    "error": "str",
    "message": "unit",
    "event": {"named": "Shape"},
    "item": "unit",
    "types": {
        "Request": {
            "since": 1,
            "shape": {
                "enum": [
                    {
                        "name": "Put",
                        "index": 0,
                        "since": 1,
                        "shape": {
                            "struct": [{"name": "thing", "type": {"named": "Thing"}, "default": False, "since": 1}]
                        },
                    }
                ]
            },
        },
        "Response": {
            "since": 1,
            "shape": {"enum": [{"name": "Put", "index": 0, "since": 1, "shape": {"newtype": {"option": "u64"}}}]},
        },
        "Id": {"since": 1, "shape": {"newtype": "u64"}},
        "Pair": {"since": 1, "shape": {"tuple": ["str", "i32"]}},
        "Nothing": {"since": 1, "shape": "unit"},
        "Thing": {
            "since": 1,
            "shape": {
                "struct": [
                    {"name": "id", "type": {"named": "Id"}, "default": False, "since": 1},
                    {"name": "type", "type": "str", "default": False, "since": 1},
                    {"name": "blob", "type": "bytes", "default": False, "since": 1},
                    {"name": "big", "type": "u128", "default": False, "since": 1},
                    {"name": "ratio", "type": "f64", "default": False, "since": 1},
                    {"name": "tags", "type": {"seq": "str"}, "default": True, "since": 2},
                    {"name": "scores", "type": {"map": {"key": "str", "value": "u8"}}, "default": False, "since": 1},
                    {"name": "pair", "type": {"named": "Pair"}, "default": False, "since": 1},
                    {"name": "rgb", "type": {"array": {"item": "u8", "len": 3}}, "default": False, "since": 1},
                    {"name": "point", "type": {"tuple": ["f32", "f32"]}, "default": False, "since": 1},
                    {"name": "nothing", "type": {"named": "Nothing"}, "default": False, "since": 1},
                    {"name": "shape", "type": {"named": "Shape"}, "default": False, "since": 1},
                    {"name": "note", "type": {"option": "str"}, "default": True, "since": 1},
                ]
            },
        },
        "Shape": {
            "since": 1,
            "shape": {
                "enum": [
                    {"name": "Dot", "index": 0, "since": 1, "shape": "unit"},
                    {"name": "Circle", "index": 1, "since": 1, "shape": {"newtype": "f64"}},
                    {"name": "Line", "index": 2, "since": 1, "shape": {"tuple": ["i32", "i32"]}},
                    {
                        "name": "Rect",
                        "index": 3,
                        "since": 1,
                        "shape": {
                            "struct": [
                                {"name": "w", "type": "u32", "default": False, "since": 1},
                                {"name": "h", "type": "u32", "default": False, "since": 1},
                            ]
                        },
                    },
                ]
            },
        },
    },
}


def load(source: str, name: str, into: Path) -> ModuleType:
    path = into / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def mypy(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=files[0].parent,
    )


def test_every_type_reads_and_writes_serdes_shapes(tmp_path: Path) -> None:
    m = load(generate(json.dumps(SCHEMA)), "every_type", tmp_path)
    wire = {
        "id": 7,
        "type": "box",
        "blob": b"\x00\xff",
        "big": (2**100).to_bytes(16, "big"),
        "ratio": 0.5,
        "tags": ["a"],
        "scores": {"x": 1},
        "pair": ["p", -3],
        "rgb": [1, 2, 3],
        "point": [1.5, 2.5],
        "nothing": [],
        "shape": {"Rect": {"w": 2, "h": 3}},
        "note": None,
    }
    thing = m._read_Thing(wire, "thing")
    assert thing == m.Thing(
        id=7,
        type="box",
        blob=b"\x00\xff",
        big=2**100,
        ratio=0.5,
        tags=["a"],
        scores={"x": 1},
        pair=("p", -3),
        rgb=[1, 2, 3],
        point=(1.5, 2.5),
        nothing=m.Nothing(),
        shape=m.ShapeRect(w=2, h=3),
        note=None,
    )
    for shape, value in [
        ("Dot", m.ShapeDot()),
        ({"Circle": 1.0}, m.ShapeCircle(value=1.0)),
        ({"Line": [1, 2]}, m.ShapeLine(f0=1, f1=2)),
        ({"Rect": {"w": 1, "h": 2}}, m.ShapeRect(w=1, h=2)),
    ]:
        assert m._read_Shape(shape, "shape") == value
        assert m._write_Shape(value) == shape
    # A defaulted field left as None is left out for the server to fill in.
    written = m._write_Thing(m.Thing(**{**thing.__dict__, "tags": None}))
    assert "tags" not in written and written["note"] is None
    assert m._write_Thing(thing)["big"] == (2**100).to_bytes(16, "big")
    # Reading checks as it goes, and says where.
    with pytest.raises(m._DecodeError, match=r"thing.shape.Rect.w: expected an integer, got 'wide'"):
        m._read_Thing({**wire, "shape": {"Rect": {"w": "wide", "h": 3}}}, "thing")
    with pytest.raises(m._DecodeError, match="Shape has no variant 'Hexagon'"):
        m._read_Shape("Hexagon", "shape")
    with pytest.raises(m._DecodeError, match="missing field 'type'"):
        m._read_Thing({k: v for k, v in wire.items() if k != "type"}, "thing")


def test_the_module_is_mypy_strict_clean(tmp_path: Path) -> None:
    (tmp_path / "every_type.py").write_text(generate(json.dumps(SCHEMA)))
    checked = mypy(tmp_path / "every_type.py")
    assert checked.returncode == 0, checked.stdout


def test_a_field_renamed_in_rust_fails_the_type_check_of_code_using_the_old_name(tmp_path: Path) -> None:
    """The kv example's generated client (from its --schema), then the same
    schema with the event's field `key` renamed `name`."""
    schema = json.loads((GENERATED / "kv.schema.json").read_text())
    uses = tmp_path / "uses.py"
    uses.write_text("from kv import EventChanged\n\n\ndef key_of(e: EventChanged) -> str:\n    return e.key\n")
    (tmp_path / "kv.py").write_text(generate(json.dumps(schema)))
    assert mypy(uses).returncode == 0
    changed = schema["types"]["Event"]["shape"]["enum"][0]["shape"]["struct"][0]
    assert changed["name"] == "key"
    changed["name"] = "name"
    (tmp_path / "kv.py").write_text(generate(json.dumps(schema)))
    checked = mypy(uses)
    assert checked.returncode == 1
    assert '"EventChanged" has no attribute "key"' in checked.stdout, checked.stdout


def test_a_bad_schema_is_one_line_exit_2_and_nothing_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    out = tmp_path / "out.py"
    for text, said in [
        ("{not json", "not JSON"),
        ('{"schema": 9}', "schema format 9; this generator reads 1"),
        ('{"schema": 1, "protocol": "x"}', "not a rust-tcp schema"),
        (json.dumps({**SCHEMA, "encodings": ["postcard"]}), "speaks postcard; this client speaks msgpack only"),
    ]:
        bad.write_text(text)
        done = subprocess.run(
            [sys.executable, "-m", "rust_tcp", "generate", str(bad), "-o", str(out)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2, done.stderr
        assert said in done.stderr.splitlines()[-1], done.stderr
        assert not out.exists()
    with pytest.raises(SchemaError):
        generate("[]")


def test_the_schema_comes_from_the_running_server_too(processes: list[Any]) -> None:
    """``python -m rust_tcp describe`` (and ``fetch_schema``): the kv example
    serves with reflection on; what it says is its ``--schema``, and the
    module generated from it is the same."""
    from conftest import KvServer, run

    from rust_tcp import Client
    from rust_tcp.typed import fetch_schema

    kv = KvServer()
    processes.append(kv)
    expected = json.loads((GENERATED / "kv.schema.json").read_text())

    async def body() -> dict[str, Any]:
        async with await Client.connect(kv.addr, name="describe") as client:
            return await fetch_schema(client)

    assert run(body()) == expected
    done = subprocess.run(
        [sys.executable, "-m", "rust_tcp", "--addr", kv.addr, "describe"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
    assert generate(done.stdout) == (GENERATED / "kv.py").read_text()
