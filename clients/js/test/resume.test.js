// Resumable sessions (spec 3.14) in node against the real server's
// WebSocket listener: through a TCP proxy that cuts the connection at a
// random byte (inside WebSocket messages too) again and again, with traffic
// both ways, every line and every answer arrives exactly once and in order;
// a server that lost the session refuses with its reason; a session whose
// server is killed resumes on another that shares its store; and the typed
// layer (a generated client) resumes through cuts too.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { Client } from "../rust-tcp.js";
import net from "node:net";
import path from "node:path";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { Server, Process, PATIENCE } from "./servers.js";
import { CuttingProxy, SwitchingProxy } from "./proxies.js";

const started = [];
after(async () => {
  for (const p of started) await p.stop();
});

const fast = { initialDelay: 0.002, maxDelay: 0.02 };

/**
 * A bounded wait for what is still on its way: call `arrived()` after each
 * arrival; `all(test, what)` resolves once `test()` holds (checked at once
 * and at every arrival), or fails after the patience saying what is missing.
 */
function arrivals() {
  let recheck = () => {};
  return {
    arrived() { recheck(); },
    /** @param {() => boolean} test @param {string} what @returns {Promise<void>} */
    all(test, what) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what} missing`)), PATIENCE);
        recheck = () => { if (test()) { clearTimeout(timer); resolve(); } };
        recheck();
      });
    },
  };
}

/** The next event of `type` on `target`, bounded. */
function next(target, type) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} event in time`)), PATIENCE);
    target.addEventListener(type, (e) => { clearTimeout(timer); resolve(e.detail); }, { once: true });
  });
}

test("random cuts lose and duplicate nothing, both ways", async () => {
  const s = await Server.start(["--broadcast"]);
  started.push(s);
  const proxy = new CuttingProxy(s.ws, 1500, 11);
  await proxy.start();
  const cutter = await Client.connect(proxy.url, { WebSocket, name: "cutter", reconnect: fast, resume: 30, requestTimeout: PATIENCE / 1000 });
  const steady = await Client.connect(s.url, { WebSocket, name: "steady" });
  /** @type {string[]} */
  const byCutter = [];
  /** @type {string[]} */
  const bySteady = [];
  let resumed = 0;
  let refused = 0;
  const lines = arrivals();
  cutter.addEventListener("text", (e) => { byCutter.push(/** @type {any} */ (e).detail.text); lines.arrived(); });
  steady.addEventListener("text", (e) => { bySteady.push(/** @type {any} */ (e).detail.text); lines.arrived(); });
  cutter.addEventListener("resumed", () => { resumed += 1; });
  cutter.addEventListener("resumerefused", () => { refused += 1; });
  // Bounded: 100 cuts, 3,000 rounds, or the patience.
  const until = Date.now() + PATIENCE;
  let sent = 0;
  while (proxy.cuts < 100 && sent < 3000 && Date.now() < until) {
    await cutter.sendText(`c${sent}`);
    await steady.sendText(`s${sent}`);
    assert.equal(new TextDecoder().decode(await cutter.request(`r${sent}`)), `r${sent}`);
    sent += 1;
  }
  proxy.calm = true;
  assert.equal(new TextDecoder().decode(await cutter.request("last")), "last");
  assert.equal(new TextDecoder().decode(await steady.request("last")), "last");
  // Every line was sent before the last requests were answered; the
  // broadcasts may still be on their way.
  await lines.all(() => byCutter.length >= sent && bySteady.length >= sent, "lines");
  console.log(`cuts ${proxy.cuts}, rounds ${sent}, resumed ${resumed}`);
  assert.ok(proxy.cuts >= 100, `only ${proxy.cuts} cuts`);
  assert.equal(refused, 0);
  assert.deepEqual(byCutter, Array.from({ length: sent }, (_, i) => `steady: s${i}`));
  assert.deepEqual(bySteady, Array.from({ length: sent }, (_, i) => `cutter: c${i}`));
  assert.ok(resumed >= 1);
  await cutter.close();
  await steady.close();
  proxy.server.close();
});

test("a server that lost the session refuses with its reason", async () => {
  const s = await Server.start();
  const addr = s.ws;
  const client = await Client.connect(s.url, { WebSocket, reconnect: fast, resume: 30 });
  assert.equal(new TextDecoder().decode(await client.request("before")), "before");
  s.child.kill("SIGSTOP"); // the request below stays in flight
  const inFlight = client.request("lost");
  inFlight.catch(() => {});
  const refusal = next(client, "resumerefused");
  const reconnected = next(client, "reconnected");
  await s.stop("SIGKILL");
  const second = await Server.start(["--name", "second"], { ws: addr });
  started.push(second);
  const why = /** @type {any} */ (await refusal);
  assert.equal(why.reason, "unknown session");
  assert.ok(why.unacknowledged >= 1);
  await assert.rejects(inFlight, (e) => /** @type {any} */ (e).kind === "interrupted" && /resume refused/.test(e.message));
  assert.equal((/** @type {any} */ (await reconnected)).serverName, "second");
  assert.equal(new TextDecoder().decode(await client.request("after")), "after");
  await client.close();
});

test("a session resumes on another server after kill -9", async () => {
  // Two servers share a session store (nats-server with JetStream); the one
  // serving the client is frozen with a request in flight and killed: the
  // client resumes on the other, which runs the request it never received.
  const port = await freePort();
  const nats = new Process("nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", mkdtempSync(path.join(tmpdir(), "rust-tcp-js-"))]);
  started.push(nats);
  await nats.waitFor("Server is ready");
  const store = ["--session-store", `nats://127.0.0.1:${port}`];
  const first = await Server.start(["--name", "first", ...store]);
  const second = await Server.start(["--name", "second", ...store]);
  started.push(first, second);
  const proxy = new SwitchingProxy(first.ws);
  await proxy.start();
  const client = await Client.connect(/** @type {string} */ (proxy.url), { WebSocket, reconnect: fast, resume: 30 });
  assert.equal(new TextDecoder().decode(await client.request("before")), "before");
  first.child.kill("SIGSTOP");
  const inFlight = client.request("in flight");
  const resumed = next(client, "resumed");
  client.addEventListener("resumerefused", (e) => assert.fail(`refused: ${JSON.stringify(/** @type {any} */ (e).detail)}`));
  proxy.target = second.ws;
  await first.stop("SIGKILL");
  await resumed;
  assert.equal(new TextDecoder().decode(await inFlight), "in flight");
  assert.equal(new TextDecoder().decode(await client.request("after")), "after");
  await client.close();
  proxy.server.close();
  await second.waitFor("v2 session resumed from the session store");
});

/** A loopback port nobody listens on now. @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

test("the typed layer resumes through cuts: every call answered once, every event once, in order", async () => {
  const msgpack = await import("../msgpack.js");
  const { generated, binary } = await import("./servers.js");
  const { KvClient } = (await generated("kv_store")).module;
  const kv = new Process(binary("examples/kv_store"), ["--serve", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"]);
  started.push(kv);
  const line = await kv.waitFor("listening for WebSockets on", "stdout");
  const target = line.slice(line.indexOf("ws://") + "ws://".length).trim().replace(/\/$/, "");
  const proxy = new CuttingProxy(target, 1500, 13);
  await proxy.start();
  const client = await KvClient.connect(proxy.url, msgpack, { WebSocket, name: "typed", reconnect: fast, resume: 30, requestTimeout: PATIENCE / 1000 });
  /** @type {unknown[]} */
  const changed = [];
  let resumed = 0;
  let refused = 0;
  const events = arrivals();
  client.onEvent((/** @type {unknown} */ event) => { changed.push(event); events.arrived(); });
  client.typed.untyped.addEventListener("resumed", () => { resumed += 1; });
  client.typed.untyped.addEventListener("resumerefused", () => { refused += 1; });
  assert.equal(await client.watch(), "Done");
  // Bounded: 50 cuts, 2,000 calls, or the patience.
  const until = Date.now() + PATIENCE;
  let sent = 0;
  while (proxy.cuts < 50 && sent < 2000 && Date.now() < until) {
    assert.equal(await client.set(`k${sent}`, `v${sent}`), "Done");
    sent += 1;
  }
  proxy.calm = true;
  await events.all(() => changed.length >= sent, "events");
  console.log(`typed: cuts ${proxy.cuts}, calls ${sent}, resumed ${resumed}`);
  assert.ok(proxy.cuts >= 50, `only ${proxy.cuts} cuts`);
  assert.equal(refused, 0);
  assert.ok(resumed >= 1);
  assert.deepEqual(changed, Array.from({ length: sent }, (_, i) => ({ Changed: { key: `k${i}`, value: `v${i}` } })));
  await client.close();
  proxy.server.close();
});
