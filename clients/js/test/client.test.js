// The JavaScript client in node against the real server's WebSocket
// listener: requests, pushes between WebSocket and TCP clients, the close
// handshake, go-away, reconnecting, refusals, the typed layer against the
// kv example, and a server that breaks the protocol.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { WebSocket, WebSocketServer } from "ws";
import * as msgpack from "../msgpack.js";
import { Client, RustTcpError, TypedClient, SUBPROTOCOL, encodeFrame, FrameType } from "../rust-tcp.js";
import { Server, Process, binary, PATIENCE } from "./servers.js";

const started = [];
after(async () => {
  for (const p of started) await p.stop();
});

/** @param {string[]} [args] */
async function server(args = [], where = {}) {
  const s = await Server.start(args, where);
  started.push(s);
  return s;
}

const options = { WebSocket };
const text = new TextDecoder();

/** The next event of `type` on `target`, bounded. */
function next(target, type) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} event in time`)), PATIENCE);
    target.addEventListener(type, (e) => { clearTimeout(timer); resolve(e.detail); }, { once: true });
  });
}

test("requests in flight are matched by id, and close confirms what was sent", async () => {
  const s = await server();
  const client = await Client.connect(s.url, { ...options, name: "js-node" });
  assert.equal(client.serverName, "rust-tcp");
  const payloads = Array.from({ length: 200 }, (_, i) => `request ${i} `.repeat((i % 5) + 1));
  const answers = await Promise.all(payloads.map((p) => client.request(p)));
  assert.deepEqual(answers.map((a) => text.decode(a)), payloads);
  for (let i = 0; i < 100; i++) await client.sendText(`message ${i}`);
  await client.close();
  for (let i = 0; i < 100; i++) await s.waitFor(`Message: "message ${i}"`, "stdout");
  await s.waitFor("transport=websocket");
});

test("a WebSocket client and a TCP client share a room", async () => {
  const s = await server(["--broadcast"]);
  const web = await Client.connect(s.url, { ...options, name: "web" });
  const tcp = new Process(binary("client"), ["--addr", s.tcp, "--name", "term", "chat"]);
  started.push(tcp);
  await tcp.waitFor("* connected to");
  const heard = next(web, "text");
  tcp.child.stdin.write("hello web\n");
  assert.deepEqual(await heard, { text: "term: hello web" });
  await web.sendText("hello term");
  await tcp.waitFor("web: hello term", "stdout");
  await web.close();
  tcp.child.stdin.end();
});

test("limits and refusals: too large, a wrong token, a full server, a bad name", async (t) => {
  const s = await server(["--max-frame-bytes", "1024"]);
  const client = await Client.connect(s.url, options);
  await assert.rejects(client.sendText("x".repeat(1025)), (e) => e instanceof RustTcpError && e.kind === "not-sent" && e.by === "us");
  assert.equal(text.decode(await client.request("y".repeat(1020))), "y".repeat(1020));
  await client.close();
  await assert.rejects(Client.connect(s.url, { ...options, name: "" }), /1 to 64 bytes/);

  const full = await server(["--max-connections", "1"]);
  const first = await Client.connect(full.url, options);
  await assert.rejects(Client.connect(full.url, options), (e) => e.kind === "connect" && e.by === "network");
  await first.close();

  const { writeFileSync, mkdtempSync } = await import("node:fs");
  const dir = mkdtempSync("/tmp/rust-tcp-js-");
  writeFileSync(`${dir}/tokens`, "the-token\n");
  const guarded = await server(["--auth-token-file", `${dir}/tokens`]);
  await assert.rejects(Client.connect(guarded.url, { ...options, token: "guess" }),
    (e) => e.kind === "refused" && e.code === 1008 && /authentication failed/.test(e.message));
  const welcome = await Client.connect(guarded.url, { ...options, token: "the-token" });
  assert.equal(text.decode(await welcome.request("in")), "in");
  await welcome.close();
  t.diagnostic("refusals carry the server's code and reason");
});

test("GOAWAY is an event, and a reconnecting client moves to the next server", async () => {
  const old = await server(["--shutdown-grace-secs", "60", "--name", "old"]);
  const client = await Client.connect(old.url, { ...options, reconnect: { initialDelay: 0.05, maxDelay: 0.2 } });
  const goaway = next(client, "goaway");
  const disconnected = next(client, "disconnected");
  old.child.kill("SIGTERM");
  assert.equal((await goaway).code, 1001);
  await disconnected;
  await old.waitFor("stopped accepting");
  const reconnected = next(client, "reconnected");
  const fresh = await server(["--name", "new"], { ws: old.ws });
  assert.equal((await reconnected).serverName, "new");
  await old.waitFor("close handshake complete");
  assert.equal(text.decode(await client.request("on new")), "on new");
  await client.close();
  await fresh.stop();
});

test("a lost connection interrupts requests in flight; they are not resent", async () => {
  const s = await server();
  const client = await Client.connect(s.url, { ...options, reconnect: { initialDelay: 0.05, maxAttempts: 2 } });
  s.child.kill("SIGSTOP");
  const inFlight = client.request("lost");
  const failed = assert.rejects(inFlight, (e) => e.kind === "interrupted");
  await s.stop("SIGKILL");
  await failed;
  const end = await next(client, "end");
  assert.match(end.error.message, /could not reconnect after 2 attempts/);
});

test("the typed layer calls the Rust kv service, through the client generated from its schema", async () => {
  const { generated } = await import("./servers.js");
  const { KvClient } = (await generated("kv_store")).module;
  const kv = new Process(binary("examples/kv_store"), ["--serve", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"]);
  started.push(kv);
  const line = await kv.waitFor("listening for WebSockets on", "stdout");
  const url = line.slice(line.indexOf("ws://")).trim();
  const watcher = await KvClient.connect(url, msgpack, options);
  assert.deepEqual(watcher.typed.negotiated, { name: "kv", version: 1, encoding: 1 });
  const changed = new Promise((resolve) => watcher.onEvent(resolve));
  assert.equal(await watcher.watch(), "Done");
  const writer = await KvClient.connect(url, msgpack, options);
  assert.equal(await writer.set("colour", "blue"), "Done");
  assert.deepEqual(await changed, { Changed: { key: "colour", value: "blue" } });
  assert.deepEqual(await watcher.get("colour"), { Value: "blue" });
  await assert.rejects(watcher.get("size"), (e) => e.kind === "remote" && e.error.NoSuchKey === "size");
  // Underneath, the untyped-value client: a request this version does not have.
  await assert.rejects(watcher.typed.call({ Delete: { key: "colour" } }), (e) => e.kind === "request-failed" && /Delete/.test(e.message));
  await assert.rejects(TypedClient.connect(url, { name: "kv", minVersion: 2, maxVersion: 3 }, msgpack, options),
    (e) => e.kind === "refused" && e.code === 1010 && /server speaks kv 1, client kv 2-3/.test(e.message));
  await writer.close();
  await watcher.close();
});

/** A WebSocket server that speaks the first frames right, then `script`. */
async function misbehaving(script) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => SUBPROTOCOL });
  await once(wss, "listening");
  const got = new Promise((resolve) => {
    wss.on("connection", (ws) => {
      /** @type {Uint8Array[]} */
      const frames = [];
      ws.on("message", (data) => {
        frames.push(new Uint8Array(data));
        if (frames.length === 1) {
          // WELCOME: version 2, max_frame 16 MiB, heartbeat 0, name "fake"
          ws.send(encodeFrame(FrameType.WELCOME, Uint8Array.from([2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 102, 97, 107, 101])));
          script(ws);
        }
      });
      ws.on("close", () => resolve(frames));
    });
  });
  const { port } = /** @type {import("node:net").AddressInfo} */ (wss.address());
  return { url: `ws://127.0.0.1:${port}/`, got, close: () => wss.close() };
}

test("a server that breaks the protocol gets the right CLOSE", async () => {
  for (const [bad, code, said] of [
    [Uint8Array.from([2, 0x7f, 0, 0, 0, 0]), 1002, /unknown frame type 0x7f/],
    [Uint8Array.from([2, 3, 0, 0, 0, 2, 0xff, 0xfe]), 1003, /not valid UTF-8/],
    [Uint8Array.from([2, 3, 0, 0, 0, 5, 104, 105]), 1002, /exactly one frame/],
    [Uint8Array.from([2, 6, 0, 0, 0, 5, 0, 0, 0, 0, 7]), 1002, /status 7/],
  ]) {
    const fake = await misbehaving((ws) => ws.send(bad));
    const client = await Client.connect(fake.url, options);
    const ended = next(client, "end");
    const error = (await ended).error;
    assert.equal(error.kind, "protocol");
    assert.equal(error.by, "protocol-violation");
    assert.equal(error.code, code);
    assert.match(error.message, said);
    const frames = await fake.got;
    const close = frames.at(-1);
    assert.equal(close[1], FrameType.CLOSE);
    assert.equal((close[6] << 8) | close[7], code);
    fake.close();
  }
});

test("heartbeats: PINGs are answered, a silent server is pinged, then dropped with 1014", async () => {
  // WELCOME granting a 100 ms heartbeat, then a PING, then silence.
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => SUBPROTOCOL });
  await once(wss, "listening");
  const seen = new Promise((resolve) => {
    wss.on("connection", (ws) => {
      const frames = [];
      ws.on("message", (data) => {
        const f = new Uint8Array(data);
        frames.push(f);
        if (f[1] === FrameType.HELLO) {
          ws.send(encodeFrame(FrameType.WELCOME, Uint8Array.from([2, 1, 0, 0, 0, 0, 0, 0, 100, 0, 4, 102, 97, 107, 101])));
          ws.send(encodeFrame(FrameType.PING, Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 42])));
        }
      });
      ws.on("close", () => resolve(frames));
    });
  });
  const { port } = /** @type {import("node:net").AddressInfo} */ (wss.address());
  const client = await Client.connect(`ws://127.0.0.1:${port}/`, options);
  assert.equal(client.heartbeat, 0.1);
  const end = (await next(client, "end")).error;
  assert.equal(end.code, 1014);
  assert.equal(end.by, "network");
  const types = (await seen).map((f) => f[1]);
  assert.deepEqual(types, [FrameType.HELLO, FrameType.PONG, FrameType.PING, FrameType.CLOSE]);
  wss.close();
});

test("a request timeout rejects, and the late answer is dropped without reusing its id", async () => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => SUBPROTOCOL });
  await once(wss, "listening");
  wss.on("connection", (ws) => {
    /** @type {Uint8Array[]} */
    const held = [];
    ws.on("message", (data) => {
      const f = new Uint8Array(data);
      if (f[1] === FrameType.HELLO) {
        ws.send(encodeFrame(FrameType.WELCOME, Uint8Array.from([2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 102, 97, 107, 101])));
      } else if (f[1] === FrameType.REQUEST) {
        held.push(f.subarray(6, 10));
        if (held.length === 2) {
          // The late answer to the first, then the second's own.
          const answer = (id, text) => encodeFrame(FrameType.RESPONSE, Uint8Array.from([...id, 0, ...new TextEncoder().encode(text)]));
          assert.deepEqual([...held[0]], [0, 0, 0, 0]);
          assert.deepEqual([...held[1]], [0, 0, 0, 1]);
          ws.send(answer(held[0], "late"));
          ws.send(answer(held[1], "on time"));
        }
      }
    });
  });
  const { port } = /** @type {import("node:net").AddressInfo} */ (wss.address());
  const client = await Client.connect(`ws://127.0.0.1:${port}/`, options);
  await assert.rejects(client.request("slow", { timeout: 0.05 }), (e) => e.kind === "timeout" && e.by === "us");
  assert.equal(text.decode(await client.request("fast")), "on time");
  assert.equal(client.pendingRequests, 0);
  const ended = next(client, "end");
  for (const peer of wss.clients) peer.terminate();
  assert.equal((await ended).error.by, "network");
  wss.close();
});
