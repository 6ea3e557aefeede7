#!/usr/bin/env node
// generate.js: a typed JavaScript client for a protocol, written from its
// schema (`client describe --json` against a running server, or a Rust
// program's `Schema::of::<P>().to_json()`).
//
//     node generate.js jobs.json -o jobs.js [--client ./rust-tcp.js]
//
// The module it writes is an ES module with JSDoc types over rust-tcp.js,
// `tsc --strict --checkJs` clean: a typedef per type in serde's MessagePack
// shapes (a struct an object of its fields, an enum a union of `"Unit"`,
// `{Newtype: value}` and `{Struct: {fields}}`), and a client class with one
// method per call returning that call's own type (a `Stream` of the item
// type for a streaming call). Generate it again when the Rust types change:
// the type checker then finds every use that no longer fits (a renamed
// field, a removed call) before anything runs. No dependencies, no build.

const SCHEMA_FORMAT = 1;
const RESERVED = new Set(["break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do",
  "else", "enum", "export", "extends", "false", "finally", "for", "function", "if", "import", "in", "instanceof", "new",
  "null", "return", "super", "switch", "this", "throw", "true", "try", "typeof", "var", "void", "while", "with", "yield",
  "let", "static", "implements", "interface", "package", "private", "protected", "public", "await", "options"]);

/** Raised for a file that is not a schema this generator reads. */
export class SchemaError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "SchemaError";
  }
}

/** @param {string} name */
function ident(name) {
  let out = name.replace(/\W/g, "_");
  if (out === "" || /^\d/.test(out)) out = `arg${out}`;
  return RESERVED.has(out) ? `${out}_` : out;
}

/** @param {string} name */
function camel(name) {
  return name.split(/[^A-Za-z0-9]+/).filter(Boolean).map((p) => p[0].toUpperCase() + p.slice(1)).join("") || "Protocol";
}

/** A property name in a type literal: bare when it can be. @param {string} name */
function prop(name) {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
}

/**
 * @typedef {string | {[kind: string]: any}} SchemaType
 * @typedef {{name: string, type: SchemaType, default: boolean, since: number}} SchemaField
 */

class Generator {
  /** @param {any} schema */
  constructor(schema) {
    this.schema = schema;
    /** @type {Map<string, string>} */
    this.names = new Map();
  }

  /** @param {string} serdeName */
  typeName(serdeName) {
    let name = this.names.get(serdeName);
    if (name === undefined) {
      name = serdeName.replace(/\W/g, "_");
      if (RESERVED.has(name) || ["Stream", "PROTOCOL", "TypedClient"].includes(name)) name += "_";
      this.names.set(serdeName, name);
    }
    return name;
  }

  /** The TypeScript type of a schema type (as JSDoc spells it). @param {SchemaType} ty @returns {string} */
  ts(ty) {
    if (typeof ty === "string") {
      if (/^[iu](64|128)$/.test(ty)) return "number | bigint";
      if (/^[iu](8|16|32)$|^f(32|64)$/.test(ty)) return "number";
      const simple = { unit: "null", bool: "boolean", char: "string", str: "string", bytes: "Uint8Array" };
      if (ty in simple) return simple[/** @type {keyof typeof simple} */ (ty)];
      throw new SchemaError(`unknown type ${JSON.stringify(ty)}`);
    }
    const [[kind, inner]] = Object.entries(ty);
    switch (kind) {
      case "option": return `${this.ts(inner)} | null`;
      case "seq": return `Array<${this.ts(inner)}>`;
      case "array": return `Array<${this.ts(inner.item)}>`;
      case "map": return `Record<string, ${this.ts(inner.value)}>`;
      case "tuple": return `[${inner.map((/** @type {SchemaType} */ t) => this.ts(t)).join(", ")}]`;
      case "named": return this.typeName(inner);
      default: throw new SchemaError(`unknown type ${JSON.stringify(ty)}`);
    }
  }

  /** @param {SchemaField[]} fields */
  fieldsType(fields) {
    const members = fields.map((f) => `${prop(f.name)}${f.default ? "?" : ""}: ${this.ts(f.type)}`);
    return `{${members.join(", ")}}`;
  }

  /** @param {any} shape */
  shapeType(shape) {
    if (shape === "unit") return "[]";
    if ("newtype" in shape) return this.ts(shape.newtype);
    if ("tuple" in shape) return this.ts({ tuple: shape.tuple });
    if ("struct" in shape) return this.fieldsType(shape.struct);
    if ("enum" in shape) {
      const variants = shape.enum.map((/** @type {any} */ v) => {
        const tag = JSON.stringify(v.name);
        if (v.shape === "unit") return tag;
        if ("newtype" in v.shape) return `{${prop(v.name)}: ${this.ts(v.shape.newtype)}}`;
        if ("tuple" in v.shape) return `{${prop(v.name)}: ${this.ts({ tuple: v.shape.tuple })}}`;
        if ("struct" in v.shape) return `{${prop(v.name)}: ${this.fieldsType(v.shape.struct)}}`;
        throw new SchemaError(`variant ${v.name}: unknown shape ${JSON.stringify(v.shape)}`);
      });
      return variants.length ? variants.join(" | ") : "never";
    }
    throw new SchemaError(`unknown shape ${JSON.stringify(shape)}`);
  }

  /** @param {string} which */
  topName(which) {
    const ty = this.schema[which];
    return typeof ty === "object" && ty !== null && "named" in ty ? ty.named : null;
  }

  /** @param {any} call */
  requestShape(call) {
    const top = this.topName(call.kind === "one_way" ? "message" : "request");
    const variant = top && this.schema.types[top]?.shape?.enum?.find((/** @type {any} */ v) => v.name === call.variant);
    if (!variant) throw new SchemaError(`call ${call.name}: no variant ${call.variant} in the request type`);
    return variant.shape;
  }

  /** The request value of a call, from its parameters. @param {any} call */
  requestExpr(call) {
    const shape = this.requestShape(call);
    const tag = JSON.stringify(call.variant);
    const args = call.args.map((/** @type {SchemaField} */ a) => ident(a.name));
    if (shape === "unit") return tag;
    if ("newtype" in shape) return `{ ${prop(call.variant)}: ${args[0]} }`;
    if ("tuple" in shape) return `{ ${prop(call.variant)}: [${args.join(", ")}] }`;
    const fields = call.args.map((/** @type {SchemaField} */ a) => `${prop(a.name)}: ${ident(a.name)}`);
    return `{ ${prop(call.variant)}: { ${fields.join(", ")} } }`;
  }

  /** @param {any} call */
  method(call) {
    const name = ident(call.name);
    const params = call.args.map((/** @type {SchemaField} */ a) => ident(a.name));
    const docs = call.args.map((/** @type {SchemaField} */ a) => `   * @param {${this.ts(a.type)}} ${ident(a.name)}`);
    const since = call.since > this.schema.versions[0] ? ` (since version ${call.since})` : "";
    const request = this.requestExpr(call);
    const all = [...params, "options"].join(", ");
    if (call.kind === "one_way") {
      return [
        "  /**",
        `   * \`${call.name}\`: a one-way message${since}.`,
        ...docs,
        "   * @returns {Promise<void>}",
        "   */",
        `  async ${name}(${params.join(", ")}) {`,
        `    await this.typed.send(${request});`,
        "  }",
      ];
    }
    if (call.kind === "streaming") {
      const item = this.ts(this.schema.item);
      return [
        "  /**",
        `   * \`${call.name}\`: a streaming call${since}; read its items with \`for await\`${call.client_stream ? ", send yours with `send` and `end`" : ""}.`,
        ...docs,
        "   * @param {CallOptions} [options]",
        `   * @returns {Promise<Stream<${item}>>}`,
        "   */",
        `  async ${name}(${all}) {`,
        `    return new Stream(await this.typed.stream(${request}, { ...options${call.client_stream ? ", clientStream: true" : ""} }));`,
        "  }",
      ];
    }
    const returns = call.returns ?? null;
    const type = returns === null ? this.ts(this.schema.response) : this.ts(returns);
    const answer = `await this.typed.callWith(${request}, options)`;
    const value = returns === null ? answer : `unwrap(${answer}, ${JSON.stringify(call.variant)})`;
    return [
      "  /**",
      `   * \`${call.name}\`${since}; rejects with kind "remote" and \`error\` the protocol's error.`,
      ...docs,
      "   * @param {Omit<CallOptions, \"serverStream\" | \"clientStream\">} [options]",
      `   * @returns {Promise<${type}>}`,
      "   */",
      `  async ${name}(${all}) {`,
      `    return /** @type {${type}} */ (${value});`,
      "  }",
    ];
  }

  /** @param {string} clientPath */
  module(clientPath) {
    const s = this.schema;
    if (s.schema !== SCHEMA_FORMAT) throw new SchemaError(`schema format ${JSON.stringify(s.schema)}; this generator reads ${SCHEMA_FORMAT}`);
    if (!Array.isArray(s.encodings) || !s.encodings.includes("msgpack")) {
      throw new SchemaError(`${s.protocol} speaks ${s.encodings}; this client speaks msgpack only`);
    }
    const [low, high] = s.versions;
    const client = `${camel(s.protocol)}Client`;
    const skip = new Set([this.topName("request"), this.topName("message")]);
    if (s.calls.some((/** @type {any} */ c) => c.kind === "unary" && c.returns != null)) skip.add(this.topName("response"));
    for (const name of Object.keys(s.types)) this.typeName(name);
    const typedefs = Object.keys(s.types).sort().filter((n) => !skip.has(n)).map((n) =>
      `/** \`${n}\`. @typedef {${this.shapeType(s.types[n].shape)}} ${this.typeName(n)} */`);
    const event = this.ts(s.event);
    const lines = [
      `// The \`${s.protocol}\` protocol (versions ${low}-${high}): its types and a client with a`,
      "// method per call, generated by rust-tcp's generate.js from its schema.",
      "// Do not edit: generate it again when the Rust types change, and the type",
      "// checker finds every use that no longer fits.",
      "",
      `import { TypedClient } from ${JSON.stringify(clientPath)};`,
      "",
      `/** @typedef {import(${JSON.stringify(clientPath)}).CallOptions} CallOptions */`,
      `/** @typedef {import(${JSON.stringify(clientPath)}).ConnectOptions} ConnectOptions */`,
      `/** @typedef {import(${JSON.stringify(clientPath)}).MsgpackCodec} MsgpackCodec */`,
      ...typedefs,
      `/** The protocol's own error. @typedef {${this.ts(s.error)}} ProtocolError */`,
      "",
      "/** The protocol as the handshake offers it. */",
      `export const PROTOCOL = Object.freeze({ name: ${JSON.stringify(s.protocol)}, minVersion: ${low}, maxVersion: ${high} });`,
      "",
      "/**",
      " * A service's answer to one call: its own variant of the response.",
      " * @param {unknown} answer @param {string} variant @returns {unknown}",
      " */",
      "function unwrap(answer, variant) {",
      "  if (typeof answer === \"object\" && answer !== null && variant in answer) return /** @type {Record<string, unknown>} */ (answer)[variant];",
      "  if (answer === variant) return null;",
      "  throw new Error(`expected the answer to ${variant}, got ${JSON.stringify(answer)}`);",
      "}",
      "",
      "/**",
      " * A streaming call: `for await (const item of stream)` reads the server's",
      " * items; `send` and `end` feed the client's own, when the call streams",
      " * both ways. Leaving the loop early cancels the call on the server.",
      " * @template T",
      " */",
      "export class Stream {",
      "  /** @param {import(" + JSON.stringify(clientPath) + ").TypedCall} call */",
      "  constructor(call) { this.call = call; }",
      "",
      "  /** @returns {AsyncIterator<T>} */",
      "  [Symbol.asyncIterator]() {",
      "    return /** @type {AsyncIterator<T>} */ (this.call[Symbol.asyncIterator]());",
      "  }",
      "",
      "  /** @param {T} item */",
      "  async send(item) { await this.call.send(item); }",
      "",
      "  async end() { await this.call.end(); }",
      "",
      "  /** How it ended: rejects with kind \"remote\" for the protocol's error. */",
      "  async result() { await this.call.result(); }",
      "",
      "  cancel() { this.call.cancel(); }",
      "}",
      "",
      "/**",
      ` * A connection speaking \`${s.protocol}\`: a method per call, each returning its own type.`,
      ` * Events pushed by the server arrive through {@link ${client}#onEvent}.`,
      " */",
      `export class ${client} {`,
      "  /**",
      "   * @param {string} url",
      "   * @param {MsgpackCodec} msgpack e.g. `import * as msgpack from \"/msgpack.js\"`",
      "   * @param {ConnectOptions} [options]",
      `   * @returns {Promise<${client}>}`,
      "   */",
      "  static async connect(url, msgpack, options = {}) {",
      `    return new ${client}(await TypedClient.connect(url, PROTOCOL, msgpack, options));`,
      "  }",
      "",
      "  /** @param {TypedClient} typed */",
      "  constructor(typed) {",
      "    /** The untyped-value client underneath. */",
      "    this.typed = typed;",
      "  }",
      "",
      "  /**",
      "   * Calls `listener` with each event the server pushes.",
      `   * @param {(event: ${event}) => void} listener`,
      "   */",
      "  onEvent(listener) {",
      "    this.typed.addEventListener(\"event\", (e) => {",
      `      listener(/** @type {${event}} */ (/** @type {CustomEvent<{value: unknown}>} */ (e).detail.value));`,
      "    });",
      "  }",
      "",
      "  /** The close handshake. */",
      "  async close() { await this.typed.close(); }",
    ];
    for (const call of s.calls) {
      lines.push("");
      lines.push(...this.method(call));
    }
    lines.push("}", "");
    return lines.join("\n");
  }
}

/**
 * The module for a schema.
 * @param {string} schemaJson the schema, as JSON
 * @param {{client?: string}} [options] where the generated module imports rust-tcp.js from (default "./rust-tcp.js")
 * @returns {string}
 */
export function generate(schemaJson, options = {}) {
  let schema;
  try {
    schema = JSON.parse(schemaJson);
  } catch (e) {
    throw new SchemaError(`not JSON: ${/** @type {Error} */ (e).message}`);
  }
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) throw new SchemaError("not a rust-tcp schema (a JSON object)");
  try {
    return new Generator(schema).module(options.client ?? "./rust-tcp.js");
  } catch (e) {
    if (e instanceof SchemaError) throw e;
    throw new SchemaError(`not a rust-tcp schema: ${/** @type {Error} */ (e).message}`);
  }
}

/** The command line: `generate.js SCHEMA [-o FILE] [--client PATH]`. @param {string[]} argv */
async function main(argv) {
  const fs = await import("node:fs");
  const usage = "usage: generate.js SCHEMA.json [-o FILE] [--client PATH-OF-rust-tcp.js]";
  /** @type {string | undefined} */ let input;
  /** @type {string | undefined} */ let output;
  let client = "./rust-tcp.js";
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      console.log(`${usage}\n\nWrites a typed ES module (JSDoc types, tsc --strict clean) with a client class for the protocol of SCHEMA (from \`client describe --json\`). No connection is made.`);
      return 0;
    }
    if ((arg === "-o" || arg === "--output") && i + 1 < argv.length) output = argv[++i];
    else if (arg === "--client" && i + 1 < argv.length) client = argv[++i];
    else if (input === undefined && !arg.startsWith("-")) input = arg;
    else {
      console.error(`generate.js: error: unexpected argument ${JSON.stringify(arg)}\n${usage}`);
      return 2;
    }
  }
  if (input === undefined) {
    console.error(`generate.js: error: which schema?\n${usage}`);
    return 2;
  }
  let module;
  try {
    module = generate(fs.readFileSync(input === "-" ? 0 : input, "utf8"), { client });
  } catch (e) {
    console.error(`generate.js: error: ${input}: ${/** @type {Error} */ (e).message}`);
    return e instanceof SchemaError ? 2 : 1;
  }
  if (output === undefined) {
    process.stdout.write(module);
  } else {
    // Whole or not at all: a half-written module would be imported.
    fs.writeFileSync(`${output}.tmp`, module);
    fs.renameSync(`${output}.tmp`, output);
  }
  return 0;
}

if (typeof process !== "undefined" && process.argv[1] && import.meta.url === (await import("node:url")).pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
