// generate.js: typed ES modules from the examples' schemas, tsc --strict
// clean, with code using them checked too; a field renamed in the schema
// makes code written against the old name fail the type check; a bad
// schema is one line and exit status 2, with nothing written.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { generated, REPO } from "./servers.js";
import { generate, SchemaError } from "../generate.js";

const JS = path.join(REPO, "clients", "js");
const CLIENT = path.join(JS, "rust-tcp.js");

/** tsc --strict over `files`; its exit status and output. @param {string[]} files */
function tsc(files) {
  const run = spawnSync(path.join(JS, "node_modules", ".bin", "tsc"), ["--noEmit", "--allowJs", "--checkJs", "--strict",
    "--target", "es2022", "--module", "es2022", "--moduleResolution", "bundler", "--lib", "es2022,dom", ...files], { encoding: "utf8" });
  return { status: run.status, out: run.stdout + run.stderr };
}

/** A directory of this test's own, removed when the process ends. @param {string} prefix */
function scratch(prefix) {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const USES = `// Code a user writes against the generated kv and jobs clients.
import * as msgpack from ${JSON.stringify(path.join(JS, "msgpack.js"))};
import { KvClient } from "./kv_store.js";
import { JobsClient } from "./job_queue.js";

/** @param {string} url */
export async function uses(url) {
  const kv = await KvClient.connect(url, msgpack);
  kv.onEvent((e) => { /** @type {string} */ const key = e.Changed.key; void key; });
  /** @type {"Done" | {Value: string}} */ const done = await kv.set("colour", "blue");
  const jobs = await JobsClient.connect(url, msgpack);
  /** @type {number | bigint} */ const started = (await jobs.count()).started;
  for await (const line of await jobs.run(3, 1)) { /** @type {string} */ const l = line; void l; }
  void done; void started;
}
`;

test("the generated modules and code using them are tsc --strict clean", async () => {
  const kv = await generated("kv_store");
  const jobs = await generated("job_queue");
  const dir = scratch("rust-tcp-uses-");
  execFileSync("cp", [path.join(kv.dir, "kv_store.js"), path.join(jobs.dir, "job_queue.js"), dir]);
  writeFileSync(path.join(dir, "uses.js"), USES);
  const checked = tsc([path.join(dir, "uses.js")]);
  assert.equal(checked.status, 0, checked.out);
});

test("a field renamed in Rust fails the type check of code using the old name", async () => {
  const kv = await generated("kv_store");
  const jobs = await generated("job_queue");
  const schema = JSON.parse(kv.schema);
  const field = schema.types.Event.shape.enum[0].shape.struct[0];
  assert.equal(field.name, "key");
  field.name = "name";
  const dir = scratch("rust-tcp-renamed-");
  writeFileSync(path.join(dir, "kv_store.js"), generate(JSON.stringify(schema), { client: CLIENT }));
  execFileSync("cp", [path.join(jobs.dir, "job_queue.js"), dir]);
  writeFileSync(path.join(dir, "uses.js"), USES);
  const checked = tsc([path.join(dir, "uses.js")]);
  assert.equal(checked.status, 2, checked.out);
  assert.match(checked.out, /Property 'key' does not exist/);
});

test("a bad schema is one line, exit status 2, and nothing written", () => {
  const dir = scratch("rust-tcp-bad-");
  const bad = path.join(dir, "bad.json");
  const out = path.join(dir, "out.js");
  for (const [text, said] of [
    ["{not json", "not JSON"],
    ['{"schema": 9}', "schema format 9; this generator reads 1"],
    ['{"schema": 1, "protocol": "x", "encodings": ["msgpack"]}', "not a rust-tcp schema"],
    ['{"schema": 1, "protocol": "x", "encodings": ["postcard"], "versions": [1, 1]}', "speaks postcard; this client speaks msgpack only"],
  ]) {
    writeFileSync(bad, text);
    const run = spawnSync(process.execPath, [path.join(JS, "generate.js"), bad, "-o", out], { encoding: "utf8" });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr.trim().split("\n").at(-1) ?? "", new RegExp(said.replace(/[()]/g, "\\$&")));
    assert.equal(existsSync(out), false);
  }
  assert.throws(() => generate("[]"), SchemaError);
});

test("the schema comes from the running server too (fetchSchema), and generates the same module", async () => {
  const { Process, binary } = await import("./servers.js");
  const { Client, fetchSchema } = await import("../rust-tcp.js");
  const kv = new Process(binary("examples/kv_store"), ["--serve", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"]);
  try {
    const line = await kv.waitFor("listening for WebSockets on", "stdout");
    const url = line.slice(line.indexOf("ws://")).trim();
    const { WebSocket } = await import("ws");
    const client = await Client.connect(url, { name: "describe", WebSocket: /** @type {any} */ (WebSocket) });
    const schema = await fetchSchema(client);
    await client.close();
    const { schema: expected } = await generated("kv_store");
    assert.deepEqual(schema, JSON.parse(expected));
    assert.equal(generate(JSON.stringify(schema), { client: CLIENT }), generate(expected, { client: CLIENT }));
  } finally {
    await kv.stop();
  }
});
