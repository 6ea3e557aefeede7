// msgpack.js against @msgpack/msgpack (the reference implementation): the
// same bytes for what serde writes, both ways, and a clear error for every
// kind of bad input.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as reference from "@msgpack/msgpack";
import { encode, decode, MsgpackError } from "../msgpack.js";

const VALUES = [
  null, true, false, 0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER,
  -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, Number.MIN_SAFE_INTEGER,
  0.5, -1.25, 1e300, "", "a", "é ünïcødé ✓", "x".repeat(31), "x".repeat(32), "y".repeat(300), "z".repeat(70000),
  new Uint8Array([]), new Uint8Array([1, 2, 3]), new Uint8Array(300), new Uint8Array(70000),
  [], [1, "two", [3]], Array.from({ length: 20 }, (_, i) => i), Array.from({ length: 70000 }, (_, i) => i % 7),
  {}, { Get: { key: "k" } }, "Watch", { Ok: null }, { Err: { NotFound: "k" } },
  Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}`, i])),
];

test("encodes what serde writes byte for byte as @msgpack/msgpack does", () => {
  for (const value of VALUES) {
    assert.deepEqual(encode(value), reference.encode(value), `encoding ${JSON.stringify(value)?.slice(0, 40)}`);
  }
});

test("decodes what @msgpack/msgpack writes to the same value", () => {
  for (const value of VALUES) {
    assert.deepEqual(decode(reference.encode(value)), value);
    assert.deepEqual(decode(encode(value)), value);
  }
});

test("64-bit integers beyond the safe range come back exact, as BigInt", () => {
  const big = 2n ** 63n + 5n;
  assert.equal(decode(encode(big)), big);
  assert.equal(decode(encode(-(2n ** 62n))), -(2n ** 62n));
  assert.equal(decode(encode(12n)), 12);
  assert.deepEqual(encode(2n ** 64n - 1n), new Uint8Array([0xcf, 255, 255, 255, 255, 255, 255, 255, 255]));
  assert.throws(() => encode(2n ** 64n), MsgpackError);
  // float 32, which Rust's f32 is written as
  assert.equal(decode(new Uint8Array([0xca, 0x3f, 0xc0, 0, 0])), 1.5);
});

test("fields left undefined are left out; a Map with other keys stays a Map", () => {
  assert.deepEqual(decode(encode({ a: 1, b: undefined })), { a: 1 });
  const map = new Map([[[1, 2], "pair"]]);
  assert.deepEqual(decode(encode(map)), map);
});

test("bad input is an error, never a wrong value", () => {
  const bad = [
    [new Uint8Array([]), /truncated/],
    [new Uint8Array([0xa5, 0x61]), /truncated/],
    [new Uint8Array([0x01, 0x02]), /1 bytes after/],
    [new Uint8Array([0xc1]), /never used/],
    [new Uint8Array([0xd4, 0x01, 0x02]), /extension/],
    [new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), /truncated/],
    [new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff]), /truncated/],
    [new Uint8Array([0xa2, 0xc3, 0x28]), /not UTF-8/],
    [new Uint8Array(600).fill(0x91), /nested deeper/],
  ];
  for (const [bytes, message] of bad) {
    assert.throws(() => decode(bytes), (e) => e instanceof MsgpackError && message.test(e.message), `decoding ${bytes.slice(0, 6)}`);
  }
});

test("a peer's __proto__ key is a field, not the prototype", () => {
  const value = /** @type {any} */ (decode(reference.encode(JSON.parse('{"__proto__": {"polluted": 1}}'))));
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  assert.deepEqual(value.__proto__, { polluted: 1 });
  assert.equal(/** @type {any} */ ({}).polluted, undefined);
});
