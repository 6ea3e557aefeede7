// A TCP proxy for the tests that breaks connections on purpose (spec 3.14's
// resumable sessions are tested through it): on loopback, on a free port.

import net from "node:net";

/**
 * Forwards to `target` (HOST:PORT), cutting each connection after a random
 * number of bytes (0 to `maxBytes`, either way) until `calm` is set, from
 * when on nothing more is cut. Seeded.
 */
export class CuttingProxy {
  /** @param {string} target @param {number} maxBytes @param {number} seed */
  constructor(target, maxBytes, seed) {
    const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
    this.cuts = 0;
    this.calm = false;
    /** @type {string | undefined} */
    this.addr = undefined;
    /** Connections open now, to cut on demand. @type {Set<() => void>} */
    this.open = new Set();
    let state = seed;
    const random = () => { state = (state * 1103515245 + 12345) % 2147483648; return state / 2147483648; };
    this.server = net.createServer((client) => {
      const upstream = net.connect(port, host);
      let budget = this.calm ? Infinity : Math.floor(random() * (maxBytes + 1));
      const cut = () => { this.open.delete(cut); client.resetAndDestroy(); upstream.resetAndDestroy(); };
      this.open.add(cut);
      for (const [from, to] of [[client, upstream], [upstream, client]]) {
        from.on("data", (data) => {
          // Once calm, connections already open are spared too.
          if (this.calm) budget = Infinity;
          const passed = data.subarray(0, Math.min(data.length, budget));
          budget -= passed.length;
          to.write(passed);
          if (budget === 0) { this.cuts += 1; cut(); }
        });
        from.on("error", () => cut());
        from.on("close", () => cut());
      }
    });
  }

  /** Cuts every connection open now. */
  cutAll() {
    for (const cut of [...this.open]) { this.cuts += 1; cut(); }
  }

  /**
   * Stops accepting (clients cannot reconnect) until `start` again;
   * resolves once the connections open now have ended too.
   */
  async hold() {
    await new Promise((resolve) => this.server.close(() => resolve(undefined)));
  }

  /** Listens on a free port, or on the port it had (after `hold`). */
  async start() {
    const port = this.addr ? Number(this.addr.slice(this.addr.lastIndexOf(":") + 1)) : 0;
    await new Promise((resolve) => this.server.listen(port, "127.0.0.1", () => resolve(undefined)));
    const a = /** @type {net.AddressInfo} */ (this.server.address());
    this.addr = `127.0.0.1:${a.port}`;
    this.url = `ws://${this.addr}/`;
  }
}


/**
 * Forwards each new connection to `target` (HOST:PORT), which the test may
 * change; a connection ends when either side does.
 */
export class SwitchingProxy {
  /** @param {string} target */
  constructor(target) {
    this.target = target;
    /** @type {string | undefined} */
    this.url = undefined;
    this.server = net.createServer((client) => {
      const at = this.target.lastIndexOf(":");
      const upstream = net.connect(Number(this.target.slice(at + 1)), this.target.slice(0, at));
      const end = () => { client.destroy(); upstream.destroy(); };
      client.pipe(upstream);
      upstream.pipe(client);
      for (const side of [client, upstream]) {
        side.on("error", end);
        side.on("close", end);
      }
    });
  }

  /** Listens on a free port. */
  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", () => resolve(undefined)));
    const a = /** @type {net.AddressInfo} */ (this.server.address());
    this.url = `ws://127.0.0.1:${a.port}/`;
  }
}
