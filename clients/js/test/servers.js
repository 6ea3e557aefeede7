// Shared by the tests: the real `server` binary (built by cargo; started on
// free loopback ports, stopped by its PID) and the kv example.

import { spawn, execFileSync } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
/** A bound on failure, never a synchronisation device (milliseconds). */
export const PATIENCE = 15_000;

let built = false;

/** The path of a cargo-built binary (built once per run). @param {string} name */
export function binary(name) {
  if (!built) {
    execFileSync("cargo", ["build", "--quiet", "--locked", "--bin", "server", "--bin", "client", "--example", "kv_store", "--example", "job_queue"],
      { cwd: REPO, stdio: "inherit" });
    built = true;
  }
  const target = process.env.CARGO_TARGET_DIR ?? path.join(REPO, "target");
  return path.join(target, "debug", name);
}

/** A child process whose stdout and stderr lines can be waited for. */
export class Process {
  /** @param {string} program @param {string[]} args */
  constructor(program, args) {
    this.child = spawn(program, args, { env: { ...process.env, RUST_LOG: "info" }, stdio: ["pipe", "pipe", "pipe"] });
    /** @type {{stdout: string[], stderr: string[]}} */
    this.lines = { stdout: [], stderr: [] };
    /** @type {Array<{stream: string, needle: string, resolve: (line: string) => void}>} */
    this.waiters = [];
    for (const stream of /** @type {const} */ (["stdout", "stderr"])) {
      createInterface({ input: this.child[stream] }).on("line", (line) => {
        this.lines[stream].push(line);
        this.waiters = this.waiters.filter((w) => {
          if (w.stream === stream && line.includes(w.needle)) {
            w.resolve(line);
            return false;
          }
          return true;
        });
      });
    }
    /** Lines already handed to a waiter are not handed again. */
    this.seen = { stdout: 0, stderr: 0 };
  }

  /**
   * The first line, not yet waited for, containing `needle`.
   * @param {string} needle @param {"stdout" | "stderr"} [stream]
   * @returns {Promise<string>}
   */
  waitFor(needle, stream = "stderr") {
    const lines = this.lines[stream];
    for (let i = this.seen[stream]; i < lines.length; i++) {
      if (lines[i].includes(needle)) {
        this.seen[stream] = i + 1;
        return Promise.resolve(lines[i]);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line containing ${JSON.stringify(needle)} in time; saw ${JSON.stringify(lines)}`)), PATIENCE);
      this.waiters.push({ stream, needle, resolve: (line) => {
        clearTimeout(timer);
        this.seen[stream] = lines.length;
        resolve(line);
      } });
    });
  }

  /** Sends `signal` by PID and waits for the exit status. @param {NodeJS.Signals} [signal] */
  async stop(signal = "SIGKILL") {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const exited = once(this.child, "exit");
    this.child.kill(signal);
    const [code] = await exited;
    return code;
  }
}

/** The real server, with a WebSocket listener; `tcp` and `ws` are HOST:PORT. */
export class Server extends Process {
  /** @param {string[]} args */
  static async start(args = [], { tcp = "127.0.0.1:0", ws = "127.0.0.1:0" } = {}) {
    const server = new Server(binary("server"), ["--addr", tcp, "--ws-addr", ws, ...args]);
    server.tcp = addrAfter(await server.waitFor("listening on "), "listening on ");
    server.ws = addrAfter(await server.waitFor("listening for WebSockets on ws"), "://").replace(/\/$/, "");
    return server;
  }

  /** @returns {string} */
  get url() { return `ws://${this.ws}/`; }
}

/** @param {string} line @param {string} marker */
function addrAfter(line, marker) {
  const after = line.slice(line.indexOf(marker) + marker.length);
  return after.match(/^[0-9.:\[\]a-f]+/)?.[0] ?? "";
}

/**
 * The client generated from an example's schema (`--schema`), as a user
 * would generate theirs: written to a directory of its own (`dir`) and
 * imported. `example` is `kv_store` or `job_queue`.
 * @param {string} example
 * @returns {Promise<{module: any, dir: string, schema: string}>}
 */
export async function generated(example) {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { pathToFileURL } = await import("node:url");
  const { generate } = await import("../generate.js");
  const schema = execFileSync(binary(`examples/${example}`), ["--schema"], { encoding: "utf8" });
  const dir = mkdtempSync(path.join(tmpdir(), "rust-tcp-generated-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, `${example}.js`);
  writeFileSync(file, generate(schema, { client: path.join(REPO, "clients", "js", "rust-tcp.js") }));
  return { module: await import(pathToFileURL(file).href), dir, schema };
}
