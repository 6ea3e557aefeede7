// Calls (spec 3.13) from JavaScript in node, against the real server (its
// reference application echoes; a call whose request is "wait" waits for
// its cancel or deadline) and against a WebSocket server written here.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { WebSocket, WebSocketServer } from "ws";
import { Client, CallStatus, SUBPROTOCOL, encodeFrame, FrameType } from "../rust-tcp.js";
import { Server } from "./servers.js";

const started = [];
after(async () => {
  for (const p of started) await p.stop();
});

/** @param {string[]} [args] */
async function server(args = []) {
  const s = await Server.start(args);
  started.push(s);
  return s;
}

const options = { WebSocket };
const text = new TextDecoder();
const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

test("unary calls carry metadata and deadlines", async () => {
  const s = await server();
  const client = await Client.connect(s.url, { ...options, name: "js-calls" });
  const answer = await client.call("ping", { metadata: { traceparent: TRACEPARENT }, deadline: 5 });
  assert.equal(text.decode(answer), "ping");
  await assert.rejects(client.call("x", { metadata: { "Bad Key": "v" } }), { kind: "invalid-config" });
  await assert.rejects(client.call("wait", { deadline: 0.2 }), (e) => e.kind === "call" && e.status === CallStatus.DEADLINE_EXCEEDED && e.by === "server");
  assert.equal(text.decode(await client.call("still fine")), "still fine");
  await client.close();
});

test("the server's deadline cap ends a call that asked for none", async () => {
  const s = await server(["--max-call-deadline-secs", "0.2"]);
  const client = await Client.connect(s.url, options);
  await assert.rejects(client.call("wait"), (e) => e.status === CallStatus.DEADLINE_EXCEEDED && /deadline exceeded \(200 ms\)/.test(e.message));
  await client.close();
});

test("streams to and from Rust stay within their credit", async () => {
  const s = await server(["--call-stream-credit", "4"]);
  const client = await Client.connect(s.url, options);
  const one = await client.openCall("one", { serverStream: 1 });
  const items = [];
  for await (const item of one) items.push(text.decode(item));
  assert.deepEqual(items, ["one"]);
  assert.equal(text.decode(await one.result()), "one");
  // Both ways: 1,000 items sent under the server's credit of 4, echoed back
  // under ours of 8, read as they come.
  const both = await client.openCall("both", { serverStream: 8, clientStream: true });
  const feeding = (async () => {
    for (let i = 0; i < 1000; i++) await both.send(String(i));
    await both.end();
  })();
  const got = [];
  for await (const item of both) got.push(text.decode(item));
  await feeding;
  assert.deepEqual(got, Array.from({ length: 1000 }, (_, i) => String(i)));
  assert.equal(text.decode(await both.result()), "both");
  assert.equal(client.callsInFlight, 0);
  await client.close();
});

test("an AbortSignal cancels the call, and the connection goes on", async () => {
  const s = await server();
  const client = await Client.connect(s.url, options);
  const abort = new AbortController();
  const waiting = client.call("wait", { signal: abort.signal });
  abort.abort();
  await assert.rejects(waiting, (e) => e.kind === "call" && e.status === CallStatus.CANCELLED && e.by === "us");
  assert.equal(text.decode(await client.call("next")), "next");
  await client.close();
});

test("limits, and a server without calls", async () => {
  const limited = await server(["--max-calls-per-connection", "1"]);
  const client = await Client.connect(limited.url, options);
  const busy = await client.openCall("wait");
  await assert.rejects(client.call("x"), (e) => e.kind === "not-sent" && /1 calls in flight/.test(e.message));
  busy.cancel();
  await client.close();
  const without = await server(["--max-calls-per-connection", "0"]);
  const plain = await Client.connect(without.url, options);
  await assert.rejects(plain.call("x"), (e) => e.kind === "not-sent" && /does not speak calls/.test(e.message));
  assert.equal(text.decode(await plain.request("requests still work")), "requests still work");
  await plain.close();
});

test("a server past our credit gets CLOSE 1002, and the call fails", async () => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => SUBPROTOCOL });
  await once(wss, "listening");
  const closed = new Promise((resolve) => {
    wss.on("connection", (ws) => {
      let seen = 0;
      ws.on("message", (data) => {
        const frame = new Uint8Array(/** @type {ArrayBuffer} */ (data));
        seen += 1;
        if (seen === 1) {
          // WELCOME "fake" speaking calls: 100 in flight, 16 items of credit.
          const limits = Uint8Array.from([0, 1, 0, 3, 0, 11, 1, 0, 100, 0, 0, 0, 16, 0, 0, 0, 0]);
          const welcome = Uint8Array.from([2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 102, 97, 107, 101, ...limits]);
          ws.send(encodeFrame(FrameType.WELCOME, welcome));
        } else if (frame[1] === FrameType.CALL) {
          const id = frame.subarray(6, 10);
          assert.equal(frame[10], 1, "the server streams");
          ws.send(encodeFrame(FrameType.ITEM, Uint8Array.from([...id, 97])));
          ws.send(encodeFrame(FrameType.ITEM, Uint8Array.from([...id, 98])));
        } else if (frame[1] === FrameType.CLOSE) {
          resolve([(frame[6] << 8) | frame[7], text.decode(frame.subarray(8))]);
        }
      });
    });
  });
  const { port } = /** @type {import("node:net").AddressInfo} */ (wss.address());
  const client = await Client.connect(`ws://127.0.0.1:${port}/`, options);
  const call = await client.openCall("x", { serverStream: 1 });
  await assert.rejects(call.result(), (e) => e.kind === "protocol" && e.code === 1002);
  assert.deepEqual(await closed, [1002, "ITEM for call 0 beyond the credit granted"]);
  wss.close();
});

test("typed streaming calls against the Rust job-queue example, through the client generated from its schema", async () => {
  const { Process, binary, generated, PATIENCE } = await import("./servers.js");
  const msgpack = await import("../msgpack.js");
  const { JobsClient } = (await generated("job_queue")).module;
  const jobs = new Process(binary("examples/job_queue"), ["--serve", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"]);
  started.push(jobs);
  const line = await jobs.waitFor("listening for WebSockets on", "stdout");
  const url = line.slice(line.indexOf("ws://")).trim();
  const client = await JobsClient.connect(url, msgpack, options);
  /** @type {unknown[]} */
  const ended = [];
  const endedTwice = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no job ends in time")), PATIENCE);
    client.onEvent((/** @type {unknown} */ e) => {
      ended.push(e);
      if (ended.length === 2) { clearTimeout(timer); resolve(undefined); }
    });
  });
  const job = await client.run(3, 1, { serverStream: 2 });
  const lines = [];
  for await (const l of job) lines.push(l);
  assert.deepEqual(lines, ["job line 0", "job line 1", "job line 2"]);
  await job.result();
  const long = await client.run(1000, 1);
  for await (const l of long) {
    assert.equal(l, "job line 0");
    break; // leaving the loop cancels the call, and the job with it
  }
  await endedTwice;
  assert.deepEqual(ended, [{ Ended: { id: 0, how: "finished" } }, { Ended: { id: 1, how: "cancelled" } }]);
  const counted = await client.count({ metadata: { traceparent: TRACEPARENT } });
  assert.deepEqual(counted, { started: 2, finished: 1, cancelled: 1, trace: "0af7651916cd43dd8448eb211c80319c" });
  const upper = await client.upper();
  await upper.send("follow");
  const it = upper[Symbol.asyncIterator]();
  assert.deepEqual(await it.next(), { done: false, value: "FOLLOW" });
  await upper.end();
  assert.deepEqual(await it.next(), { done: true, value: undefined });
  await upper.result();
  await client.close();
});
