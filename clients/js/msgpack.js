// msgpack.js: the MessagePack that rust-tcp's typed protocols speak (the
// shapes serde's rmp-serde writes and reads), as one ES module with no
// dependencies, so a page can load it from the server beside rust-tcp.js
// instead of bundling a package:
//
//     import { TypedClient } from "/rust-tcp.js";
//     import * as msgpack from "/msgpack.js";
//     const kv = await TypedClient.connect(url, { name: "kv", minVersion: 1, maxVersion: 1 }, msgpack);
//
// What it covers is what serde produces: nil, booleans, integers of every
// width, float 32/64, strings, binary, arrays and maps. Integers outside
// JavaScript's safe range decode as BigInt (so a u64 id is never rounded)
// and a BigInt encodes as a 64-bit integer. Maps decode to plain objects
// (serde writes struct fields and enum tags as string keys), or to a `Map`
// when a key is not a string or a number. Extension types (which serde
// never writes) are refused with an error, as is a truncated or trailing
// input: bad bytes never decode to a wrong value.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** The deepest nesting decoded, so a hostile input cannot exhaust the stack. */
const MAX_DEPTH = 512;

/** Raised for bytes that are not one complete MessagePack value we read. */
export class MsgpackError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "MsgpackError";
  }
}

/** A growable output buffer. */
class Writer {
  constructor() {
    this.bytes = new Uint8Array(64);
    this.view = new DataView(this.bytes.buffer);
    this.length = 0;
  }

  /** @param {number} more */
  reserve(more) {
    if (this.length + more <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + more) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  /** @param {number} byte */
  u8(byte) { this.reserve(1); this.bytes[this.length++] = byte; }

  /** @param {number} tag @param {number} value */
  u16(tag, value) { this.reserve(3); this.bytes[this.length] = tag; this.view.setUint16(this.length + 1, value); this.length += 3; }

  /** @param {number} tag @param {number} value */
  u32(tag, value) { this.reserve(5); this.bytes[this.length] = tag; this.view.setUint32(this.length + 1, value); this.length += 5; }

  /** @param {Uint8Array} bytes */
  raw(bytes) { this.reserve(bytes.length); this.bytes.set(bytes, this.length); this.length += bytes.length; }
}

/**
 * Encodes a value: `null`/`undefined` as nil, a whole number as the
 * smallest integer that holds it, any other number as float 64 (so
 * is a whole number beyond 2^53, which a double holds only roughly), a BigInt as
 * a 64-bit integer, a string, a `Uint8Array` (or `ArrayBuffer`) as binary,
 * an array, a `Map` or a plain object as a map (fields whose value is
 * `undefined` are left out, as serde leaves out a skipped `None`).
 * @param {unknown} value
 * @returns {Uint8Array}
 */
export function encode(value) {
  const out = new Writer();
  write(out, value, 0);
  return out.bytes.slice(0, out.length);
}

/** @param {Writer} out @param {unknown} value @param {number} depth */
function write(out, value, depth) {
  if (depth > MAX_DEPTH) throw new MsgpackError(`nested deeper than ${MAX_DEPTH}`);
  if (value === null || value === undefined) return out.u8(0xc0);
  switch (typeof value) {
    case "boolean": return out.u8(value ? 0xc3 : 0xc2);
    case "number": return writeNumber(out, value);
    case "bigint": return writeBigInt(out, value);
    case "string": return writeString(out, value);
    case "object": break;
    default: throw new MsgpackError(`cannot encode a ${typeof value}`);
  }
  if (value instanceof Uint8Array || value instanceof ArrayBuffer) {
    const bytes = value instanceof Uint8Array ? value : new Uint8Array(value);
    writeLength(out, bytes.length, -1, 0xc4, 0xc5, 0xc6);
    return out.raw(bytes);
  }
  if (Array.isArray(value)) {
    writeLength(out, value.length, 0x90, -1, 0xdc, 0xdd);
    for (const item of value) write(out, item, depth + 1);
    return;
  }
  const entries = value instanceof Map
    ? [...value.entries()]
    : Object.entries(value).filter(([, v]) => v !== undefined);
  writeLength(out, entries.length, 0x80, -1, 0xde, 0xdf);
  for (const [k, v] of entries) {
    write(out, k, depth + 1);
    write(out, v, depth + 1);
  }
}

/**
 * The length prefix: a fix form under 16 (`fix`, or -1 when there is none),
 * then 8, 16 and 32 bits (`tag8` -1 when there is no 8-bit form).
 * @param {Writer} out @param {number} n @param {number} fix @param {number} tag8 @param {number} tag16 @param {number} tag32
 */
function writeLength(out, n, fix, tag8, tag16, tag32) {
  if (fix >= 0 && n < 16) return out.u8(fix | n);
  if (tag8 >= 0 && n < 0x100) { out.u8(tag8); return out.u8(n); }
  if (n < 0x10000) return out.u16(tag16, n);
  if (n <= 0xffffffff) return out.u32(tag32, n);
  throw new MsgpackError(`a length of ${n} does not fit MessagePack`);
}

/** @param {Writer} out @param {string} text */
function writeString(out, text) {
  const bytes = textEncoder.encode(text);
  if (bytes.length < 32) out.u8(0xa0 | bytes.length);
  else writeLength(out, bytes.length, -1, 0xd9, 0xda, 0xdb);
  out.raw(bytes);
}

/** @param {Writer} out @param {number} n */
function writeNumber(out, n) {
  if (!Number.isSafeInteger(n)) {
    // Fractions, and whole numbers a double holds only approximately (a
    // BigInt says exactly which integer is meant).
    out.reserve(9);
    out.bytes[out.length] = 0xcb;
    out.view.setFloat64(out.length + 1, n);
    out.length += 9;
    return;
  }
  if (n >= 0) {
    if (n < 0x80) return out.u8(n);
    if (n < 0x100) { out.u8(0xcc); return out.u8(n); }
    if (n < 0x10000) return out.u16(0xcd, n);
    if (n <= 0xffffffff) return out.u32(0xce, n);
    return writeBigInt(out, BigInt(n));
  }
  if (n >= -32) return out.u8(n & 0xff);
  if (n >= -0x80) { out.u8(0xd0); return out.u8(n & 0xff); }
  if (n >= -0x8000) return out.u16(0xd1, n & 0xffff);
  if (n >= -0x80000000) return out.u32(0xd2, n >>> 0);
  return writeBigInt(out, BigInt(n));
}

/** @param {Writer} out @param {bigint} n */
function writeBigInt(out, n) {
  out.reserve(9);
  if (n >= 0n) {
    if (n > 0xffffffffffffffffn) throw new MsgpackError(`${n} does not fit 64 bits`);
    out.bytes[out.length] = 0xcf;
    out.view.setBigUint64(out.length + 1, n);
  } else {
    if (n < -0x8000000000000000n) throw new MsgpackError(`${n} does not fit 64 bits`);
    out.bytes[out.length] = 0xd3;
    out.view.setBigInt64(out.length + 1, n);
  }
  out.length += 9;
}

/**
 * Decodes exactly one value from `bytes`; throws {@link MsgpackError} for
 * anything truncated, trailing, malformed, or of an extension type.
 * @param {Uint8Array | ArrayBuffer} bytes
 * @returns {unknown}
 */
export function decode(bytes) {
  const input = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const reader = { bytes: input, view: new DataView(input.buffer, input.byteOffset, input.byteLength), at: 0 };
  const value = read(reader, 0);
  if (reader.at !== input.length) {
    throw new MsgpackError(`${input.length - reader.at} bytes after the value`);
  }
  return value;
}

/** @typedef {{bytes: Uint8Array, view: DataView, at: number}} Reader */

/** @param {Reader} r @param {number} n */
function need(r, n) {
  if (r.at + n > r.bytes.length) {
    throw new MsgpackError(`truncated: ${n} more bytes wanted at offset ${r.at}, ${r.bytes.length - r.at} left`);
  }
  const at = r.at;
  r.at += n;
  return at;
}

/** @param {Reader} r @param {number} depth @returns {unknown} */
function read(r, depth) {
  if (depth > MAX_DEPTH) throw new MsgpackError(`nested deeper than ${MAX_DEPTH}`);
  const tag = r.bytes[need(r, 1)];
  if (tag < 0x80) return tag;
  if (tag >= 0xe0) return tag - 0x100;
  if (tag <= 0x8f) return readMap(r, tag & 0x0f, depth);
  if (tag <= 0x9f) return readArray(r, tag & 0x0f, depth);
  if (tag <= 0xbf) return readString(r, tag & 0x1f);
  const v = r.view;
  switch (tag) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return readBinary(r, v.getUint8(need(r, 1)));
    case 0xc5: return readBinary(r, v.getUint16(need(r, 2)));
    case 0xc6: return readBinary(r, v.getUint32(need(r, 4)));
    case 0xca: return v.getFloat32(need(r, 4));
    case 0xcb: return v.getFloat64(need(r, 8));
    case 0xcc: return v.getUint8(need(r, 1));
    case 0xcd: return v.getUint16(need(r, 2));
    case 0xce: return v.getUint32(need(r, 4));
    case 0xcf: return narrow(v.getBigUint64(need(r, 8)));
    case 0xd0: return v.getInt8(need(r, 1));
    case 0xd1: return v.getInt16(need(r, 2));
    case 0xd2: return v.getInt32(need(r, 4));
    case 0xd3: return narrow(v.getBigInt64(need(r, 8)));
    case 0xd9: return readString(r, v.getUint8(need(r, 1)));
    case 0xda: return readString(r, v.getUint16(need(r, 2)));
    case 0xdb: return readString(r, v.getUint32(need(r, 4)));
    case 0xdc: return readArray(r, v.getUint16(need(r, 2)), depth);
    case 0xdd: return readArray(r, v.getUint32(need(r, 4)), depth);
    case 0xde: return readMap(r, v.getUint16(need(r, 2)), depth);
    case 0xdf: return readMap(r, v.getUint32(need(r, 4)), depth);
    default:
      throw new MsgpackError(`byte 0x${tag.toString(16)} at offset ${r.at - 1} is ${tag === 0xc1 ? "never used" : "an extension type"} in MessagePack`);
  }
}

/** A 64-bit integer as a number when it is exact, else as a BigInt. @param {bigint} n */
function narrow(n) {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

/** @param {Reader} r @param {number} n */
function readBinary(r, n) {
  const at = need(r, n);
  return r.bytes.slice(at, at + n);
}

/** @param {Reader} r @param {number} n */
function readString(r, n) {
  const at = need(r, n);
  try {
    return textDecoder.decode(r.bytes.subarray(at, at + n));
  } catch {
    throw new MsgpackError(`the string at offset ${at} is not UTF-8`);
  }
}

/** @param {Reader} r @param {number} n @param {number} depth */
function readArray(r, n, depth) {
  // Every item takes at least a byte: a claimed length longer than what is
  // left is refused before anything is allocated for it.
  if (n > r.bytes.length - r.at) need(r, n);
  const items = new Array(n);
  for (let i = 0; i < n; i++) items[i] = read(r, depth + 1);
  return items;
}

/** @param {Reader} r @param {number} n @param {number} depth */
function readMap(r, n, depth) {
  if (2 * n > r.bytes.length - r.at) need(r, 2 * n);
  /** @type {Record<string, unknown>} */
  const object = {};
  /** @type {Map<unknown, unknown> | null} */
  let map = null;
  for (let i = 0; i < n; i++) {
    const key = read(r, depth + 1);
    const value = read(r, depth + 1);
    if (map === null && (typeof key === "string" || typeof key === "number")) {
      // A plain object's own key, never its prototype: "__proto__" from a
      // peer is just a field name.
      Object.defineProperty(object, String(key), { value, enumerable: true, writable: true, configurable: true });
    } else {
      map ??= new Map(Object.entries(object));
      map.set(key, value);
    }
  }
  return map ?? object;
}
