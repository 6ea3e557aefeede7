// The client's side of the protocol as data (docs/conformance/client.json),
// run against this client: a scripted WebSocket server follows each case's
// steps (one v2 frame per message) while the client does what the case
// says, and the client must answer and end as the case says. The Rust and
// Python clients run the very same cases.

import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import path from "node:path";
import { WebSocket, WebSocketServer } from "ws";
import { Client, SUBPROTOCOL } from "../rust-tcp.js";
import { REPO, PATIENCE } from "./servers.js";

const { cases } = JSON.parse(readFileSync(path.join(REPO, "docs", "conformance", "client.json"), "utf8"));
const TYPES = { HELLO: 1, REQUEST: 5, PONG: 8, CLOSE: 10, CALL: 12, CREDIT: 14 };

/** The frames in `bytes`, each whole. @param {Uint8Array} bytes */
function frames(bytes) {
  const out = [];
  for (let at = 0; at < bytes.length;) {
    const len = new DataView(bytes.buffer, bytes.byteOffset + at).getUint32(2);
    out.push(bytes.subarray(at, at + 6 + len));
    at += 6 + len;
  }
  return out;
}

/** A server's (unmasked) binary WebSocket frame carrying `payload`. @param {Uint8Array} payload */
function wsFrame(payload) {
  const head = payload.length < 126 ? [0x82, payload.length] : [0x82, 126, payload.length >> 8, payload.length & 255];
  return Buffer.concat([Buffer.from(head), Buffer.from(payload)]);
}

/** Runs the case's server steps on `ws`; rejects with what differed. */
function script(ws, steps) {
  const inbox = [];
  let waiter = null;
  let closed = false;
  ws.on("message", (data) => { inbox.push(new Uint8Array(data)); waiter?.(); });
  ws.on("close", () => { closed = true; waiter?.(); });
  const next = async () => {
    const deadline = Date.now() + PATIENCE;
    while (!inbox.length && !closed) {
      let timer;
      await new Promise((resolve) => {
        waiter = resolve;
        timer = setTimeout(resolve, Math.max(deadline - Date.now(), 0));
      });
      clearTimeout(timer);
      if (Date.now() >= deadline) throw new Error("the client said nothing in time");
    }
    return inbox.shift() ?? null;
  };
  return (async () => {
    const hello = await next();
    assert.ok(hello && hello[1] === TYPES.HELLO, "a HELLO first");
    let id = "00 00 00 00";
    for (const [i, step] of steps.entries()) {
      const at = `step ${i + 1}`;
      if (step.expect_hello) {
        const tail = Array.from(hello.subarray(hello.length - 5));
        assert.equal(JSON.stringify(tail) === JSON.stringify([0, 3, 0, 1, 1]), step.expect_hello.calls, `${at}: HELLO asks for calls`);
      } else if (step.send) {
        const bytes = Uint8Array.from(Buffer.from(step.send.replaceAll("{id}", id).replace(/\s/g, ""), "hex"));
        // Several frames in one step go out in one write, as over TCP.
        ws._socket.write(Buffer.concat(frames(bytes).map(wsFrame)));
      } else if (step.expect) {
        const got = await next();
        assert.ok(got, `${at}: the client closed; expected ${JSON.stringify(step.expect)}`);
        assert.equal(got[1], TYPES[step.expect.type], `${at}: expected ${step.expect.type}, got type ${got[1]}`);
        if (got[1] === TYPES.REQUEST || got[1] === TYPES.CALL) id = Buffer.from(got.subarray(6, 10)).toString("hex").replace(/(..)(?!$)/g, "$1 ");
        const view = new DataView(got.buffer, got.byteOffset);
        if (step.expect.code !== undefined) assert.equal(view.getUint16(6), step.expect.code, at);
        if (step.expect.nonce !== undefined) assert.equal(Number(view.getBigUint64(6)), step.expect.nonce, at);
      } else if (step.expect_end) {
        assert.equal(await next(), null, `${at}: expected the end`);
      }
    }
  })();
}

/** @param {any} e */
function report(e) {
  if (e.kind === "refused") return { error: "refused", code: e.code };
  if (e.kind === "protocol") return { error: "protocol", code: e.code };
  if (e.kind === "closed" && e.by === "server") return { error: "closed", by: "server" };
  if (e.kind === "call") return { error: "call", status: e.status };
  return { error: String(e.message) };
}

/** @param {string} does @param {string} url */
async function act(does, url) {
  let client;
  try {
    client = await Client.connect(url, { WebSocket, name: "conformance" });
  } catch (e) {
    return report(e);
  }
  try {
    if (does === "request") await client.request("x");
    else if (does === "call") await client.call("x");
    else if (does === "stream") await (await client.openCall("x", { serverStream: 1 })).result();
    else {
      // The script ends the connection: the client's "end" says how.
      const end = client.state === "closed" ? { error: client.current.end } : await once(client, "end").then(([e]) => e.detail);
      return end.error ? report(end.error) : { ok: "closed by us" };
    }
    return { ok: "ok" };
  } catch (e) {
    return report(e);
  }
}

for (const c of cases) {
  test(`client case ${c.name} (${c.section})`, async () => {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => SUBPROTOCOL });
    await once(wss, "listening");
    const scripted = new Promise((resolve, reject) => {
      wss.on("connection", (ws) => script(ws, c.server).then(resolve, reject));
    });
    const { port } = /** @type {import("node:net").AddressInfo} */ (wss.address());
    const got = await act(c.client, `ws://127.0.0.1:${port}/`);
    await scripted;
    // The script is done: cut what is left, so nothing outlives the case.
    for (const ws of wss.clients) ws.terminate();
    wss.close();
    assert.deepEqual(got, c.report, c.about);
  });
}
