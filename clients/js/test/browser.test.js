// The chat page in a real headless Chromium (Debian's `chromium`, driven by
// puppeteer-core): two pages and a terminal `client chat` in one room,
// messages crossing all three ways; a page from another origin refused; a
// page that shows "reconnecting" and recovers when its server restarts; a
// page whose connection is cut shows the lines sent while it was away.
// A screenshot of the page after the exchange is saved under target/.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";
import { Server, Process, binary, REPO, PATIENCE } from "./servers.js";
import { CuttingProxy } from "./proxies.js";

const CHROMIUM = process.env.CHROMIUM ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const SHOTS = path.join(REPO, "target", "browser");

/** @type {import("puppeteer-core").Browser} */
let browser;
const started = [];

before(async () => {
  assert.ok(CHROMIUM, "Chromium not found: apt-get install chromium (or set CHROMIUM)");
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: the tests may run as root, where Chromium's sandbox
    // cannot start. Only our loopback pages are loaded.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    timeout: PATIENCE,
    protocolTimeout: PATIENCE,
  });
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  for (const p of started) await p.stop();
});

/** A page at `url` that joined the chat as `name`. */
async function join(url, name) {
  const page = await browser.newPage();
  page.setDefaultTimeout(PATIENCE);
  await page.goto(url);
  await page.type("#name", name);
  await page.click("#join-button");
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "open");
  return page;
}

/** Types `text` into the page's chat box and sends it. */
async function say(page, text) {
  // Typing goes to the tab in front (a background tab gets no input).
  await page.bringToFront();
  await page.type("#text", text);
  await page.click("#send");
}

/** Waits until the page's log has a line containing `text`. */
async function sees(page, text) {
  await page.waitForFunction((t) => [...document.querySelectorAll("#log li")].some((li) => li.textContent.includes(t)), {}, text);
}

test("two pages and a terminal client share one room", async () => {
  const server = await Server.start(["--broadcast"]);
  started.push(server);
  const url = `http://${server.ws}/`;
  const ada = await join(url, "ada");
  const bob = await join(url, "bob");
  const term = new Process(binary("client"), ["--addr", server.tcp, "--name", "term", "chat"]);
  started.push(term);
  await term.waitFor("* connected to");

  await say(ada, "hello from ada");
  await sees(bob, "hello from ada");
  await term.waitFor("ada: hello from ada", "stdout");

  term.child.stdin.write("hello from the terminal\n");
  await sees(ada, "hello from the terminal");
  await sees(bob, "hello from the terminal");

  await say(bob, "hello from bob");
  await sees(ada, "hello from bob");
  await term.waitFor("bob: hello from bob", "stdout");

  // Who spoke is shown apart from what was said.
  const who = await ada.$$eval("#log .who", (names) => names.map((n) => n.textContent));
  assert.deepEqual(who.slice(0, 3), ["ada", "term", "bob"]);
  await ada.bringToFront(); // a background tab is not painted
  await ada.screenshot({ path: path.join(SHOTS, "chat.png") });
  await ada.close();
  await bob.close();
  term.child.stdin.end();
});

test("a page from another origin is refused, one allowed by --ws-allowed-origin is not", async () => {
  // A page served by another server: "another site" to ours.
  const other = await Server.start([]);
  started.push(other);
  const strict = await Server.start(["--broadcast"]);
  const open = await Server.start(["--broadcast", "--ws-allowed-origin", `http://${other.ws}`]);
  started.push(strict, open);
  const page = await browser.newPage();
  page.setDefaultTimeout(PATIENCE);
  await page.goto(`http://${other.ws}/`);
  const attempt = (url) => page.evaluate(async (u) => {
    const { Client } = await import("/rust-tcp.js");
    try {
      const c = await Client.connect(u, { name: "visitor", connectTimeout: 5 });
      await c.close();
      return "connected";
    } catch (e) {
      return `refused: ${e.message}`;
    }
  }, url);
  assert.match(await attempt(strict.url), /^refused: cannot connect/);
  await strict.waitFor("WebSocket upgrade refused with HTTP 403");
  assert.equal(await attempt(open.url), "connected");
  await page.close();
});

test("a page shows reconnecting and recovers when its server restarts", async () => {
  const server = await Server.start(["--broadcast", "--name", "first"]);
  started.push(server);
  const page = await join(`http://${server.ws}/`, "cleo");
  await server.stop("SIGKILL");
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "reconnecting");
  const again = await Server.start(["--broadcast", "--name", "second"], { ws: server.ws });
  started.push(again);
  await page.waitForFunction(() => document.getElementById("state").textContent === "connected to second");
  await sees(page, "reconnected to second");
  await say(page, "back again");
  await again.waitFor("name=cleo");
  await page.screenshot({ path: path.join(SHOTS, "reconnected.png") });
  await page.close();
});

test("across servers over NATS: a page on one, the Python client on the other", async () => {
  const python = process.env.RUST_TCP_PYTHON ?? path.join(REPO, "target", "python-venv", "bin", "python");
  assert.ok(existsSync(python), `no Python with clients/python installed at ${python} (scripts/test.sh makes it)`);
  const nats = new Process("nats-server", ["-a", "127.0.0.1", "-p", "-1", "-DV"]);
  started.push(nats);
  const natsAddr = (await nats.waitFor("Listening for client connections on")).match(/on ([0-9.:]+)/)[1];
  const relay = ["--broadcast", "--nats", `nats://${natsAddr}`, "--room", "web"];
  const a = await Server.start([...relay, "--name", "a"]);
  const b = await Server.start([...relay, "--name", "b"]);
  started.push(a, b);
  await a.waitFor("NATS connected");
  await b.waitFor("NATS connected");
  const page = await join(`http://${a.ws}/`, "dora");
  const py = new Process(python, ["-m", "rust_tcp", "--addr", b.tcp, "--name", "pyth", "chat"]);
  started.push(py);
  await py.waitFor("* connected to b");
  await say(page, "hello across servers");
  await py.waitFor("dora: hello across servers", "stdout");
  py.child.stdin.write("hello from python\n");
  await sees(page, "hello from python");
  await page.close();
  py.child.stdin.end();
});

test("--web-root serves a page of one's own, which loads the client and its MessagePack module from the server", async () => {
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const root = mkdtempSync("/tmp/rust-tcp-web-");
  writeFileSync(path.join(root, "index.html"), `<!doctype html><title>mine</title><script type="module">
    import { Client } from "/rust-tcp.js";
    import * as msgpack from "/msgpack.js";
    const client = await Client.connect(\`ws://\${location.host}/\`, { name: "own-page" });
    const echoed = await client.request(msgpack.encode({ Get: { key: "k" } }));
    document.title = JSON.stringify(msgpack.decode(echoed));
    await client.close();
  </script>`);
  const server = await Server.start(["--web-root", root]);
  started.push(server);
  const page = await browser.newPage();
  page.setDefaultTimeout(PATIENCE);
  await page.goto(`http://${server.ws}/`);
  await page.waitForFunction(() => document.title.startsWith("{"));
  assert.equal(await page.title(), JSON.stringify({ Get: { key: "k" } }));
  await server.waitFor("name=own-page");
  await page.close();
});

test("in the browser: a stream both ways under credit, and a call cancelled by an AbortSignal", async () => {
  const server = await Server.start(["--call-stream-credit", "4"]);
  started.push(server);
  const page = await browser.newPage();
  page.setDefaultTimeout(PATIENCE);
  await page.goto(`http://${server.ws}/`);
  const result = await page.evaluate(async () => {
    const { Client, CallStatus } = await import("/rust-tcp.js");
    const client = await Client.connect(`ws://${location.host}/`, { name: "page-calls" });
    const text = new TextDecoder();
    const call = await client.openCall("both", { serverStream: 8, clientStream: true });
    const feeding = (async () => {
      for (let i = 0; i < 300; i++) await call.send(String(i));
      await call.end();
    })();
    const got = [];
    for await (const item of call) got.push(text.decode(item));
    await feeding;
    const answer = text.decode(await call.result());
    const abort = new AbortController();
    const waiting = client.call("wait", { signal: abort.signal });
    abort.abort();
    const cancelled = await waiting.then(() => "answered", (e) => e.status === CallStatus.CANCELLED && e.by);
    await client.close();
    return { count: got.length, inOrder: got.every((v, i) => v === String(i)), answer, cancelled };
  });
  assert.deepEqual(result, { count: 300, inOrder: true, answer: "both", cancelled: "us" });
  await page.close();
});

test("a page whose connection is cut shows the lines sent while it was away", async () => {
  const server = await Server.start(["--broadcast"]);
  started.push(server);
  // The page comes through a proxy that cuts it on demand (it never cuts
  // by itself: calm from the start).
  const proxy = new CuttingProxy(server.ws, 0, 1);
  proxy.calm = true;
  await proxy.start();
  const ada = await join(`http://${proxy.addr}/`, "ada");
  const term = new Process(binary("client"), ["--addr", server.tcp, "--name", "term", "chat"]);
  started.push(term);
  await term.waitFor("* connected to");
  const watcher = new Process(binary("client"), ["--addr", server.tcp, "--name", "watcher", "chat"]);
  started.push(watcher);
  await watcher.waitFor("* connected to");
  term.child.stdin.write("before the cut\n");
  await sees(ada, "before the cut");
  // Cut, and let nobody back in until the server has kept ada's session
  // and broadcast a line to it (the watcher sees it go out).
  const held = proxy.hold(); // done once no connection is left
  proxy.cutAll();
  await held;
  await ada.waitForFunction(() => document.getElementById("state").dataset.state === "reconnecting");
  await server.waitFor("v2 session kept for");
  term.child.stdin.write("while ada was away\n");
  await watcher.waitFor("term: while ada was away", "stdout");
  await proxy.start();
  try {
    await sees(ada, "back: 1 line(s) sent while we were away follow");
  } catch (e) {
    console.log(await ada.$$eval("#log li", (items) => items.map((li) => li.textContent)));
    throw e;
  }
  await sees(ada, "while ada was away");
  await ada.waitForFunction(() => document.getElementById("state").dataset.state === "open");
  const lines = await ada.$$eval("#log li", (items) => items.map((li) => li.textContent ?? ""));
  assert.equal(lines.filter((l) => l.includes("while ada was away")).length, 1, "shown once");
  assert.equal(lines.filter((l) => l.includes("before the cut")).length, 1, "not shown again");
  await ada.close();
  proxy.server.close();
});
