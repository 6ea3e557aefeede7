// rust-tcp.js: a client for rust-tcp servers over WebSocket, for browsers
// and node. One ES module, no build step, no dependencies.
//
// Protocol v2 (docs/PROTOCOL.md) rides on WebSocket under the subprotocol
// "rust-tcp.v2": every binary WebSocket message carries exactly one v2
// frame, from HELLO to CLOSE (section 4 of the spec). So everything below
// is the same client as the Rust and Python ones: the handshake, requests
// matched by id, pushes, heartbeats, the close handshake, go-away and
// reconnecting. The typed layer (MessagePack) takes the encoder you give it,
// e.g. this directory's `import * as msgpack from "./msgpack.js"` (which a
// rust-tcp server serves at `/msgpack.js`) or "@msgpack/msgpack".
//
//     import { Client } from "./rust-tcp.js";
//     const client = await Client.connect("ws://127.0.0.1:8081/", { name: "web" });
//     client.addEventListener("text", (e) => console.log(e.detail.text));
//     console.log(await client.request("ping"));   // Uint8Array of "ping"
//     await client.close();

/** The WebSocket subprotocol that carries v2 frames. */
export const SUBPROTOCOL = "rust-tcp.v2";

const VERSION = 2;
const HEADER = 6;
const MIN_MAX_FRAME = 1024;
const DEFAULT_MAX_FRAME = 16 * 1024 * 1024;

/** Frame types (spec 3.2). */
export const FrameType = Object.freeze({
  HELLO: 1, WELCOME: 2, TEXT: 3, BINARY: 4, REQUEST: 5, RESPONSE: 6,
  PING: 7, PONG: 8, ERROR: 9, CLOSE: 10, GOAWAY: 11,
  // Calls (spec 3.13), only once both sides agreed to them.
  CALL: 12, ITEM: 13, CREDIT: 14, END: 15, CANCEL: 16, STATUS: 17,
  // Resumable sessions (spec 3.14).
  ACK: 18,
});

/** How a call ended (its STATUS, spec 3.13). */
export const CallStatus = Object.freeze({
  OK: 0, FAILED: 1, CANCELLED: 2, DEADLINE_EXCEEDED: 3, REFUSED: 4,
});
const STATUS_NAMES = ["ok", "failed", "cancelled", "deadline exceeded", "refused"];
const EXT_CALLS = 3;
const EXT_RESUME = 4;
const TYPE_NAMES = Object.fromEntries(Object.entries(FrameType).map(([k, v]) => [v, k]));

// ---- resumable sessions (spec 3.14) ----

/**
 * The frame types a resumable session counts: what the application sent.
 * The handshake, PING, PONG, CLOSE, GOAWAY and ACK belong to one connection.
 */
const COUNTED = new Set([3, 4, 5, 6, 9, 12, 13, 14, 15, 16, 17]);
const ACK_EVERY_FRAMES = 64;
const ACK_EVERY_BYTES = 64 * 1024;
const ACK_DELAY_MS = 100;
/** Why a server refuses a resume, by the WELCOME's reason byte. @type {Record<number, string>} */
const REFUSALS = {
  1: "unknown session", 2: "session expired", 3: "wrong resume token",
  4: "the session's replay buffer overflowed", 5: "the HELLO does not match the session's",
  6: "the ticket's position cannot be replayed from", 7: "the server keeps no resumable sessions now",
};

/**
 * A resumable session's counters and replay buffer, kept across the
 * connections it has. Sequence numbers are implicit: the n-th counted frame
 * we send is number n, on whichever connection it travels; ACK says how
 * many the server has; on a new connection each side sends what the other
 * had not received.
 */
class Resumable {
  /** @param {Uint8Array} id @param {Uint8Array} token @param {number} expiryMs @param {number} maxBytes */
  constructor(id, token, expiryMs, maxBytes) {
    this.id = id;
    this.token = token;
    this.expiryMs = expiryMs;
    this.maxBytes = maxBytes;
    /** Counted frames sent; the number of the first held (acknowledged). */
    this.sent = 0;
    this.first = 0;
    /** @type {Uint8Array[]} */
    this.replay = [];
    this.replayBytes = 0;
    /** More was sent than the buffer holds: no resume is possible. */
    this.overflowed = false;
    /** Counted frames received, and the count our last ACK said. */
    this.received = 0;
    this.acked = 0;
    this.unackedBytes = 0;
  }

  /** Frames we sent that the server has not acknowledged. */
  get unacknowledged() { return this.sent - this.first; }

  /**
   * The HELLO's extension data: a new session, or this one's ticket.
   * @param {number} expiryMs @param {Resumable | null} ticket
   */
  static ask(expiryMs, ticket) {
    const data = new Uint8Array(ticket ? 45 : 5);
    const view = new DataView(data.buffer);
    data[0] = ticket ? 1 : 0;
    view.setUint32(1, expiryMs);
    if (ticket) {
      data.set(ticket.id, 5);
      data.set(ticket.token, 21);
      view.setBigUint64(37, BigInt(ticket.received));
    }
    return data;
  }

  /** A counted frame goes out: kept until acknowledged. @param {Uint8Array} bytes */
  sentFrame(bytes) {
    this.sent += 1;
    if (this.overflowed) return;
    this.replay.push(bytes);
    this.replayBytes += bytes.length;
    if (this.replayBytes > this.maxBytes) {
      this.overflowed = true;
      this.replay = [];
      this.replayBytes = 0;
    }
  }

  /** A counted frame arrived; whether an ACK is due now. @param {number} size */
  receivedFrame(size) {
    this.received += 1;
    this.unackedBytes += size;
    return this.received - this.acked >= ACK_EVERY_FRAMES || this.unackedBytes >= ACK_EVERY_BYTES;
  }

  /** The ACK to send, if anything is unacknowledged. @returns {Uint8Array | null} */
  ackNow() {
    if (this.received === this.acked) return null;
    this.acked = this.received;
    this.unackedBytes = 0;
    const p = new Uint8Array(8);
    new DataView(p.buffer).setBigUint64(0, BigInt(this.received));
    return encodeFrame(FrameType.ACK, p);
  }

  /** The server has `count` of our frames. @param {number} count */
  acknowledged(count) {
    if (count > this.sent || count < this.first) {
      throw malformed(`ACK of ${count} frames, but ${this.sent} were sent and ${this.first} already acknowledged`);
    }
    while (this.first < count && this.replay.length) {
      this.replayBytes -= /** @type {Uint8Array} */ (this.replay.shift()).length;
      this.first += 1;
    }
  }

  /**
   * The server resumed us having had `serverReceived` of our frames: the
   * frames to send again, in order.
   * @param {number} serverReceived @returns {Uint8Array[]}
   */
  resumed(serverReceived) {
    if (serverReceived > this.sent || serverReceived < this.first) {
      throw malformed(`the server resumed at ${serverReceived}, but we sent ${this.sent} and it acknowledged ${this.first}`);
    }
    this.acknowledged(serverReceived);
    this.acked = this.received;
    this.unackedBytes = 0;
    return [...this.replay];
  }
}

/** Close codes (spec 3.8): a peer acts on the code, people read the reason. */
export const CloseCode = Object.freeze({
  NORMAL: 1000, GOING_AWAY: 1001, PROTOCOL_ERROR: 1002, INVALID_DATA: 1003,
  POLICY_VIOLATION: 1008, FRAME_TOO_LARGE: 1009, HANDSHAKE_REFUSED: 1010,
  INTERNAL_ERROR: 1011, SLOW_CONSUMER: 1013, HEARTBEAT_TIMEOUT: 1014, SERVER_FULL: 1016,
});

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Who caused an error: "us" (our configuration, a local limit), "server"
 * (it refused or closed by the rules), "network", or "protocol-violation"
 * (the server broke the protocol; we closed with `code`).
 * @typedef {"us" | "server" | "network" | "protocol-violation"} Cause
 */

/**
 * Every error this module raises.
 * - `kind`: "connect", "refused" (CLOSE instead of WELCOME), "protocol",
 *   "closed", "interrupted" (in flight on a lost connection, never resent),
 *   "request-failed", "timeout", "not-sent", "invalid-config", "decode",
 *   "call" (a call ended without its answer: `status` says how);
 * - `by`: who caused it ({@link Cause});
 * - `code`: the CLOSE code, when there is one.
 */
export class RustTcpError extends Error {
  /**
   * @param {string} message
   * @param {{kind: string, by: Cause, code?: number, status?: number}} what
   */
  constructor(message, { kind, by, code, status }) {
    super(message);
    this.name = "RustTcpError";
    /** @type {string} */ this.kind = kind;
    /** @type {Cause} */ this.by = by;
    /** @type {number | undefined} */ this.code = code;
    /** The call's status ({@link CallStatus}), for kind "call". @type {number | undefined} */
    this.status = status;
  }
}

/** Text from the server made safe to show on one line. @param {string} s */
function printable(s, limit = 200) {
  // eslint-disable-next-line no-control-regex
  const shown = s.slice(0, limit).replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) =>
    `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return s.length > limit ? `${shown}…` : shown;
}

/** @param {number} code */
function describe(code) {
  const name = Object.entries(CloseCode).find(([, v]) => v === code)?.[0];
  return name ? `${code} (${name.toLowerCase().replace(/_/g, " ")})` : String(code);
}

// ---- the wire format ----

/** One frame: the header, then `payload`. @param {number} type @param {Uint8Array} payload */
export function encodeFrame(type, payload) {
  const out = new Uint8Array(HEADER + payload.length);
  const view = new DataView(out.buffer);
  out[0] = VERSION;
  out[1] = type;
  view.setUint32(2, payload.length);
  out.set(payload, HEADER);
  return out;
}

/** @param {number} type @param {number} code @param {string} reason */
function codeReason(type, code, reason) {
  const text = encoder.encode(reason);
  const payload = new Uint8Array(2 + text.length);
  new DataView(payload.buffer).setUint16(0, code);
  payload.set(text, 2);
  return encodeFrame(type, payload);
}

/**
 * An application protocol to ask for in the HELLO (spec 3.3.2).
 * @typedef {{name: string, minVersion?: number, maxVersion?: number}} AppProtocol
 */

/**
 * The HELLO frame (spec 3.3).
 * @param {{name: string, maxFrame: number, heartbeatMs: number, token?: string, app?: AppProtocol, calls?: boolean, resume?: Uint8Array}} h
 */
export function encodeHello({ name, maxFrame, heartbeatMs, token, app, calls, resume }) {
  const raw = encoder.encode(name);
  /** @type {Array<[number, Uint8Array]>} */
  const extensions = [];
  if (token !== undefined && token !== null && token !== "") extensions.push([1, encoder.encode(token)]);
  if (app) {
    const appName = encoder.encode(app.name);
    const data = new Uint8Array(1 + appName.length + 4 + 2);
    const view = new DataView(data.buffer);
    data[0] = appName.length;
    data.set(appName, 1);
    view.setUint16(1 + appName.length, app.minVersion ?? 1);
    view.setUint16(3 + appName.length, app.maxVersion ?? app.minVersion ?? 1);
    data[5 + appName.length] = 1; // one encoding:
    data[6 + appName.length] = 1; // MessagePack
    extensions.push([2, data]);
  }
  if (calls) extensions.push([EXT_CALLS, Uint8Array.of(1)]);
  if (resume) extensions.push([EXT_RESUME, resume]);
  const extLen = extensions.length ? 2 + extensions.reduce((n, [, d]) => n + 4 + d.length, 0) : 0;
  const payload = new Uint8Array(2 + 4 + 4 + 2 + raw.length + extLen);
  const view = new DataView(payload.buffer);
  payload[0] = 1;
  payload[1] = VERSION;
  view.setUint32(2, maxFrame);
  view.setUint32(6, heartbeatMs);
  view.setUint16(10, raw.length);
  payload.set(raw, 12);
  let at = 12 + raw.length;
  if (extensions.length) {
    view.setUint16(at, extensions.length);
    at += 2;
    for (const [kind, data] of extensions) {
      view.setUint16(at, kind);
      view.setUint16(at + 2, data.length);
      payload.set(data, at + 4);
      at += 4 + data.length;
    }
  }
  return encodeFrame(FrameType.HELLO, payload);
}

/** A frame that breaks the format: `code` tells the sender what it did wrong. */
class FrameError extends Error {
  /** @param {number} code @param {string} reason */
  constructor(code, reason) {
    super(reason);
    this.code = code;
  }
}

const malformed = (/** @type {string} */ reason) => new FrameError(CloseCode.PROTOCOL_ERROR, reason);

/** @param {Uint8Array} bytes @param {string} what */
function utf8(bytes, what) {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new FrameError(CloseCode.INVALID_DATA, `${what} is not valid UTF-8`);
  }
}

/** @param {Uint8Array} p @param {string} what @returns {[number, string]} */
function decodeCodeReason(p, what) {
  if (p.length < 2) throw malformed(`${what} payload of ${p.length} bytes, needs at least 2`);
  return [(p[0] << 8) | p[1], utf8(p.subarray(2), "reason")];
}

/**
 * The server's WELCOME (spec 3.3).
 * @param {Uint8Array} p
 * @returns {{version: number, maxFrame: number, heartbeatMs: number, serverName: string, extensions: Map<number, Uint8Array>}}
 */
export function decodeWelcome(p) {
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  let at = 0;
  const need = (/** @type {number} */ n, /** @type {string} */ field) => {
    if (at + n > p.length) throw malformed(`WELCOME ends inside its ${field}`);
  };
  need(11, "fixed fields");
  const version = p[0];
  const maxFrame = view.getUint32(1);
  const heartbeatMs = view.getUint32(5);
  const nameLen = view.getUint16(9);
  at = 11;
  need(nameLen, "server name");
  const serverName = utf8(p.subarray(at, at + nameLen), "server name");
  at += nameLen;
  const extensions = new Map();
  if (at < p.length) {
    need(2, "extension count");
    const count = view.getUint16(at);
    at += 2;
    if (count === 0) throw malformed("WELCOME has an extensions area with no extension");
    for (let i = 0; i < count; i++) {
      need(4, "extension header");
      const kind = view.getUint16(at);
      const len = view.getUint16(at + 2);
      at += 4;
      need(len, "extension data");
      extensions.set(kind, p.subarray(at, at + len));
      at += len;
    }
    if (at !== p.length) throw malformed(`WELCOME has ${p.length - at} bytes after its extensions`);
  }
  return { version, maxFrame, heartbeatMs, serverName, extensions };
}

// ---- one connection ----

/**
 * Options of {@link Client.connect}.
 * @typedef {object} ConnectOptions
 * @property {string} [name] how the server labels us (1 to 64 bytes of UTF-8)
 * @property {string} [token] the authentication token, for a server that requires one
 * @property {number} [maxFrame] the largest payload we accept (default 16 MiB)
 * @property {number} [heartbeat] the heartbeat interval we wish for, in seconds
 * @property {number} [connectTimeout] seconds for connecting and the handshake (default 10)
 * @property {number} [requestTimeout] seconds a request waits by default (none: as long as the connection lives)
 * @property {boolean | ReconnectPolicy} [reconnect] reconnect when the connection is lost or the server goes away
 * @property {AppProtocol} [appProtocol] the application protocol to ask for
 * @property {boolean} [calls] ask for calls (spec 3.13; default true)
 * @property {number} [resume] with `reconnect`, ask for a resumable session (spec 3.14) kept this many seconds after a loss
 * @property {typeof WebSocket} [WebSocket] the WebSocket class (default: the global one)
 */

/**
 * @typedef {object} ReconnectPolicy
 * @property {number} [initialDelay] seconds before the first attempt (0.1)
 * @property {number} [maxDelay] the longest delay, in seconds (5)
 * @property {number} [maxAttempts] give up after this many failures in a row (never)
 */

/** @typedef {{resolve: (b: Uint8Array) => void, reject: (e: Error) => void, abandoned: boolean}} Waiter */

class Link {
  /**
   * @param {string} url
   * @param {Required<Pick<ConnectOptions, "name" | "maxFrame">> & ConnectOptions} options
   * @param {(link: Link, type: string, detail: object) => void} onPush
   * @param {(link: Link) => void} onEnd
   * @param {boolean} interrupts
   * @param {Link | null} [resuming] the lost connection whose session to resume
   */
  constructor(url, options, onPush, onEnd, interrupts, resuming = null) {
    this.options = options;
    // Resumable sessions (spec 3.14): the connection whose session this
    // one asks for, the session it serves, and how the WELCOME answered.
    this.resuming = resuming;
    /** @type {Resumable | null} */
    this.resume = null;
    /** Resumed: frames the server replays, and ours sent again. @type {{replayed: number, resent: number} | null} */
    this.resumed = null;
    /** Why the server would not resume `resuming`. @type {string | null} */
    this.refused = null;
    /** The connection that resumed this one's session. @type {Link | null} */
    this.successor = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.ackTimer = undefined;
    this.onPush = onPush;
    this.onEnd = onEnd;
    this.interrupts = interrupts;
    /** @type {"handshake" | "open" | "closing" | "closed"} */
    this.state = "handshake";
    /** The handshake succeeded (whatever came after). */
    this.opened = false;
    /** @type {Map<number, Waiter>} */
    this.waiting = new Map();
    this.nextId = 0;
    /** The server's limits for calls, when both speak them. @type {{maxCalls: number, streamCredit: number, maxDeadlineMs: number} | null} */
    this.callLimits = null;
    /** Calls in flight, until their STATUS. @type {Map<number, Route>} */
    this.calls = new Map();
    this.nextCall = 0;
    this.goingAway = false;
    this.serverName = "";
    this.serverMaxFrameSize = MIN_MAX_FRAME;
    this.heartbeat = 0;
    /** @type {{name: string, version: number, encoding: number} | null} */
    this.app = null;
    /** @type {RustTcpError | null} */
    this.end = null;
    this.lastHeard = Date.now();
    this.pinged = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.beat = undefined;
    /** @type {(() => void) | null} */
    this.acked = null;
    this.welcomed = new Promise((resolve, reject) => {
      this.welcomeResolve = resolve;
      this.welcomeReject = reject;
    });
    this.welcomed.catch(() => {}); // the caller may be gone; the end says it
    const Ws = options.WebSocket ?? globalThis.WebSocket;
    if (!Ws) throw new RustTcpError("no WebSocket class here: pass options.WebSocket", { kind: "invalid-config", by: "us" });
    /** @type {WebSocket} */
    this.ws = new Ws(url, SUBPROTOCOL);
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => {
      if (this.ws.protocol !== SUBPROTOCOL) {
        this.finish(new RustTcpError(`the server did not accept the ${SUBPROTOCOL} subprotocol`,
          { kind: "connect", by: "server" }), 1002, "subprotocol");
        return;
      }
      const o = this.options;
      const resume = o.resume ? Resumable.ask(Math.max(1, Math.round(o.resume * 1000)), this.resuming?.resume ?? null) : undefined;
      this.ws.send(encodeHello({
        name: o.name, maxFrame: o.maxFrame, heartbeatMs: o.heartbeat ? Math.max(1, Math.round(o.heartbeat * 1000)) : 0,
        token: o.token, app: o.appProtocol, calls: o.calls ?? true, resume,
      }));
    };
    this.ws.onmessage = (event) => this.received(event.data);
    this.ws.onclose = (event) => this.lost(event.code, event.reason);
    this.ws.onerror = () => {}; // onclose follows, with what we can know
  }

  /** @param {unknown} data */
  received(data) {
    if (this.state === "closed") return;
    this.lastHeard = Date.now();
    try {
      if (typeof data === "string") throw malformed("a text WebSocket message; frames come in binary messages");
      const bytes = new Uint8Array(/** @type {ArrayBuffer} */ (data));
      if (bytes.length < HEADER) throw malformed(`a WebSocket message of ${bytes.length} bytes holds no whole frame header`);
      if (bytes[0] !== VERSION) throw malformed(`a frame begins with version byte ${bytes[0]}, not 2`);
      const type = bytes[1];
      if (!(type in TYPE_NAMES)) throw malformed(`unknown frame type 0x${type.toString(16).padStart(2, "0")}`);
      const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(2);
      if (length > this.options.maxFrame) {
        throw new FrameError(CloseCode.FRAME_TOO_LARGE, `frame of ${length} bytes exceeds the limit of ${this.options.maxFrame}`);
      }
      if (length !== bytes.length - HEADER) {
        throw malformed(`a WebSocket message must hold exactly one frame: ${bytes.length - HEADER} payload bytes for a header saying ${length}`);
      }
      this.frame(type, bytes.subarray(HEADER));
      if (this.resume && COUNTED.has(type) && this.end === null) this.count(bytes.length);
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      this.violation(e.code, e.message);
    }
  }

  /** @param {number} type @param {Uint8Array} p */
  frame(type, p) {
    if (this.state === "handshake") {
      if (type === FrameType.WELCOME) return this.welcome(p);
      if (type === FrameType.CLOSE) {
        const [code, reason] = decodeCodeReason(p, "CLOSE");
        this.finish(new RustTcpError(`server refused the connection: ${describe(code)}: ${printable(reason)}`,
          { kind: "refused", by: "server", code }), 1000, "refused");
        return;
      }
      throw malformed(`expected WELCOME first, got ${TYPE_NAMES[type]}`);
    }
    switch (type) {
      case FrameType.TEXT:
        return this.onPush(this, "text", { text: utf8(p, "text") });
      case FrameType.BINARY:
        return this.onPush(this, "binary", { data: p.slice() });
      case FrameType.RESPONSE:
        return this.response(p);
      case FrameType.PING:
        if (p.length !== 8) throw malformed(`PING payload of ${p.length} bytes, must be 8`);
        if (this.state === "open") this.send(encodeFrame(FrameType.PONG, p));
        return;
      case FrameType.PONG:
        if (p.length !== 8) throw malformed(`PONG payload of ${p.length} bytes, must be 8`);
        return;
      case FrameType.ERROR: {
        const [code, reason] = decodeCodeReason(p, "ERROR");
        return this.onPush(this, "servererror", { code, reason: printable(reason) });
      }
      case FrameType.GOAWAY: {
        const [code, reason] = decodeCodeReason(p, "GOAWAY");
        this.goingAway = true;
        return this.onPush(this, "goaway", { code, reason: printable(reason) });
      }
      case FrameType.ITEM:
      case FrameType.CREDIT:
      case FrameType.STATUS:
        if (!this.callLimits) throw malformed(`unexpected ${TYPE_NAMES[type]} frame: calls were not agreed`);
        return this.callFrame(type, p);
      case FrameType.ACK:
        if (!this.resume) throw malformed("unexpected ACK frame: the session is not resumable");
        if (p.length !== 8) throw malformed(`ACK payload of ${p.length} bytes, must be 8`);
        return this.resume.acknowledged(Number(new DataView(p.buffer, p.byteOffset).getBigUint64(0)));
      case FrameType.CLOSE: {
        const [code, reason] = decodeCodeReason(p, "CLOSE");
        if (this.state === "closing") {
          const end = code === CloseCode.NORMAL
            ? new RustTcpError("closed", { kind: "closed", by: "us", code })
            : new RustTcpError(`connection closed by the server: ${describe(code)}: ${printable(reason)}`, { kind: "closed", by: "server", code });
          this.finish(end, 1000, "closed");
        } else {
          this.send(codeReason(FrameType.CLOSE, CloseCode.NORMAL, "closed"));
          this.finish(new RustTcpError(`connection closed by the server: ${describe(code)}: ${printable(reason)}`,
            { kind: "closed", by: "server", code }), 1000, "closed");
        }
        return;
      }
      default:
        throw malformed(`unexpected ${TYPE_NAMES[type]} frame for a client in state ${this.state}`);
    }
  }

  /** @param {Uint8Array} p */
  welcome(p) {
    const w = decodeWelcome(p);
    const refuse = (/** @type {string} */ why) => new FrameError(CloseCode.HANDSHAKE_REFUSED, why);
    if (w.version !== VERSION) throw refuse(`server chose version ${w.version}; we asked for 2`);
    if (w.maxFrame < MIN_MAX_FRAME) throw refuse(`server max_frame ${w.maxFrame} is below the minimum of 1024`);
    for (const kind of w.extensions.keys()) {
      if (kind & 0x8000) throw refuse(`critical extension 0x${kind.toString(16)} is not supported`);
    }
    const offer = this.options.appProtocol;
    if (offer) {
      const data = w.extensions.get(2);
      if (!data) throw refuse(`the server speaks no application protocol; we asked for ${offer.name}`);
      const nameLen = data[0];
      const name = new TextDecoder().decode(data.subarray(1, 1 + nameLen));
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
      const version = view.getUint16(1 + nameLen);
      const encoding = data[3 + nameLen];
      const min = offer.minVersion ?? 1;
      const max = offer.maxVersion ?? min;
      if (name !== offer.name || version < min || version > max || encoding !== 1) {
        throw refuse(`the server chose ${name} ${version} (encoding ${encoding}), which we did not offer`);
      }
      this.app = { name, version, encoding };
    }
    const calls = w.extensions.get(EXT_CALLS);
    if (calls && (this.options.calls ?? true)) {
      if (calls.length !== 11 || calls[0] !== 1) throw malformed("malformed calls extension: expected version 1 and 10 bytes of limits");
      const view = new DataView(calls.buffer, calls.byteOffset, calls.byteLength);
      this.callLimits = { maxCalls: view.getUint16(1), streamCredit: view.getUint32(3), maxDeadlineMs: view.getUint32(7) };
    }
    this.acceptGrant(this.options.resume ? w.extensions.get(EXT_RESUME) : undefined);
    this.state = "open";
    this.opened = true;
    this.serverName = w.serverName;
    this.serverMaxFrameSize = w.maxFrame;
    this.heartbeat = w.heartbeatMs / 1000;
    if (this.heartbeat > 0) this.beat = setTimeout(() => this.heartbeatCheck(), w.heartbeatMs);
    this.welcomeResolve?.(undefined);
  }

  /**
   * The WELCOME's resume extension: the session resumed (what waited on the
   * old connection is answered here, starting with the frames the server
   * replays in the messages after this one), or a new one.
   * @param {Uint8Array | undefined} data
   */
  acceptGrant(data) {
    const old = this.resuming?.resume ?? null;
    if (!data) {
      if (old) this.refused = "the server does not resume sessions";
      return;
    }
    if (data.length !== 54) throw malformed(`malformed resume extension: ${data.length} bytes`);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const [status, reason] = [data[0], data[1]];
    if (!((status <= 1 && reason === 0) || (status === 2 && reason in REFUSALS))) {
      throw malformed(`malformed resume extension: status ${status}, reason ${reason}`);
    }
    const id = data.slice(6, 22);
    const received = Number(view.getBigUint64(38));
    const sent = Number(view.getBigUint64(46));
    if (status === 1) {
      const link = this.resuming;
      if (!old || !link || !old.id.every((b, i) => b === id[i])) throw malformed("the server resumed a session we did not ask for");
      this.resume = old;
      const resend = old.resumed(received);
      this.resumed = { replayed: Math.max(sent - old.received, 0), resent: resend.length };
      this.adopt(link);
      this.onPush(this, "resumed", this.resumed);
      for (const bytes of resend) this.send(bytes);
      return;
    }
    this.resume = new Resumable(id, data.slice(22, 38), view.getUint32(2), 1024 * 1024);
    if (old) this.refused = REFUSALS[reason] ?? "the server started a new session";
  }

  /** This connection resumed `old`'s session: its requests and calls are answered here. @param {Link} old */
  adopt(old) {
    for (const [id, w] of old.waiting) this.waiting.set(id, w);
    old.waiting.clear();
    this.nextId = old.nextId;
    for (const [id, r] of old.calls) this.calls.set(id, r);
    old.calls.clear();
    this.nextCall = old.nextCall;
    old.successor = this;
  }

  /** The connection was lost with a session that can be resumed: what waited on it waits on. */
  get kept() {
    return !!this.resume && !this.resume.overflowed && this.interrupts && this.end?.by === "network";
  }

  /** The session could not be resumed: what waited on it fails. @param {RustTcpError} why */
  giveUpKept(why) {
    for (const waiter of this.waiting.values()) if (!waiter.abandoned) waiter.reject(why);
    this.waiting.clear();
    for (const route of this.calls.values()) route.finish(null, why);
    this.calls.clear();
  }

  /** A frame the application sent: kept until the server acknowledges it. @param {Uint8Array} bytes */
  sendCounted(bytes) {
    this.resume?.sentFrame(bytes);
    this.send(bytes);
  }

  /** A counted frame arrived: acknowledged now, or within the delay. @param {number} size */
  count(size) {
    if (/** @type {Resumable} */ (this.resume).receivedFrame(size)) this.ack();
    else if (this.ackTimer === undefined) this.ackTimer = setTimeout(() => this.ack(), ACK_DELAY_MS);
  }

  ack() {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    if (this.state !== "open") return;
    const bytes = this.resume?.ackNow();
    if (bytes) this.send(bytes);
  }

  /** @param {Uint8Array} p */
  response(p) {
    if (p.length < 5) throw malformed(`RESPONSE payload of ${p.length} bytes, needs at least 5`);
    const id = new DataView(p.buffer, p.byteOffset).getUint32(0);
    const status = p[4];
    if (status > 1) throw malformed(`RESPONSE status ${status}; only 0 and 1 exist`);
    const waiter = this.waiting.get(id);
    if (!waiter) return; // an id we never sent: dropped
    this.waiting.delete(id);
    if (waiter.abandoned) return; // its caller gave up; the id is free again now
    if (status === 0) waiter.resolve(p.slice(5));
    else waiter.reject(new RustTcpError(`request failed: ${printable(utf8(p.subarray(5), "reason"), 1000)}`, { kind: "request-failed", by: "server" }));
  }

  /**
   * ITEM, CREDIT or STATUS of one of our calls. The server sends nothing
   * for a call after its STATUS, so a frame for a call not in flight, or
   * past the credit we granted, breaks the rules (1002).
   * @param {number} type @param {Uint8Array} p
   */
  callFrame(type, p) {
    const name = TYPE_NAMES[type];
    if (p.length < 4) throw malformed(`${name} payload of ${p.length} bytes, needs at least 4`);
    const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
    const id = view.getUint32(0);
    const route = this.calls.get(id);
    if (!route) throw malformed(`${name} for call ${id}, which is not in flight`);
    if (type === FrameType.ITEM) {
      if (!route.serverStreams) throw malformed(`ITEM for call ${id}, which has no server stream`);
      if (route.recvCredit === 0) throw malformed(`ITEM for call ${id} beyond the credit granted`);
      route.recvCredit -= 1;
      route.push(p.slice(4));
    } else if (type === FrameType.CREDIT) {
      if (p.length !== 8) throw malformed(`CREDIT payload of ${p.length} bytes, must be 8`);
      const items = view.getUint32(4);
      if (items === 0) throw malformed("a credit of 0 items");
      if (!route.clientStreams) throw malformed(`CREDIT for call ${id}, which has no client stream`);
      route.granted(items);
    } else {
      if (p.length < 5) throw malformed(`STATUS payload of ${p.length} bytes, needs at least 5`);
      const status = p[4];
      if (status > 4) throw malformed(`STATUS status ${status}; only 0 to 4 exist`);
      this.calls.delete(id);
      if (status === CallStatus.OK) route.finish(p.slice(5), null);
      else {
        const reason = printable(utf8(p.subarray(5), "reason"), 1000);
        route.finish(null, new RustTcpError(`call ${STATUS_NAMES[status]}: ${reason}`,
          { kind: "call", by: status === CallStatus.CANCELLED ? "us" : "server", status }));
      }
    }
  }

  /**
   * Sends a CALL (spec 3.13); its route receives what the server sends for it.
   * @param {Uint8Array} payload @param {number} flags @param {number} deadlineMs
   * @param {number} credit @param {Array<[Uint8Array, Uint8Array]>} metadata
   * @returns {[number, Route]}
   */
  startCall(payload, flags, deadlineMs, credit, metadata) {
    const metaLen = 1 + metadata.reduce((n, [k, v]) => n + 3 + k.length + v.length, 0);
    this.usable(13 + metaLen + payload.length, "call");
    const limits = this.callLimits;
    if (!limits) throw new RustTcpError("call not sent: the server does not speak calls (spec 3.13)", { kind: "not-sent", by: "us" });
    if (this.goingAway) throw new RustTcpError("call not sent: the server is going away", { kind: "not-sent", by: "us" });
    if (this.calls.size >= limits.maxCalls) {
      throw new RustTcpError(`call not sent: ${limits.maxCalls} calls in flight, as many as the server allows`, { kind: "not-sent", by: "us" });
    }
    let id = this.nextCall;
    while (this.calls.has(id)) id = (id + 1) >>> 0;
    this.nextCall = (id + 1) >>> 0;
    const body = new Uint8Array(13 + metaLen + payload.length);
    const view = new DataView(body.buffer);
    view.setUint32(0, id);
    body[4] = flags;
    view.setUint32(5, deadlineMs);
    view.setUint32(9, credit);
    let at = 13;
    body[at++] = metadata.length;
    for (const [k, v] of metadata) {
      body[at++] = k.length;
      body.set(k, at);
      at += k.length;
      view.setUint16(at, v.length);
      body.set(v, at + 2);
      at += 2 + v.length;
    }
    body.set(payload, at);
    const route = new Route(flags, credit, limits.streamCredit);
    this.calls.set(id, route);
    this.sendCounted(encodeFrame(FrameType.CALL, body));
    return [id, route];
  }

  /**
   * Sends a frame of call `id` while it is in flight; false once it ended.
   * @param {number} id @param {Route} route @param {number} type @param {Uint8Array} [rest]
   */
  callSend(id, route, type, rest = new Uint8Array(0)) {
    if (this.calls.get(id) !== route || this.state !== "open") return false;
    const body = new Uint8Array(4 + rest.length);
    new DataView(body.buffer).setUint32(0, id);
    body.set(rest, 4);
    this.sendCounted(encodeFrame(type, body));
    return true;
  }

  heartbeatCheck() {
    if (this.state === "closed") return;
    const interval = this.heartbeat * 1000;
    const silent = Date.now() - this.lastHeard;
    if (silent >= 3 * interval) {
      const reason = `nothing heard for ${(silent / 1000).toFixed(1)}s (3 heartbeat intervals of ${this.heartbeat}s)`;
      this.send(codeReason(FrameType.CLOSE, CloseCode.HEARTBEAT_TIMEOUT, reason));
      this.finish(new RustTcpError(reason, { kind: "closed", by: "network", code: CloseCode.HEARTBEAT_TIMEOUT }), 1000, "heartbeat");
      return;
    }
    let due;
    if (silent >= interval) {
      if (!this.pinged && this.state === "open") {
        this.pinged = true;
        // Any nonce will do: the PONG only has to echo it.
        const nonce = Uint8Array.from({ length: 8 }, () => Math.floor(Math.random() * 256));
        this.send(encodeFrame(FrameType.PING, nonce));
      }
      due = this.lastHeard + 3 * interval;
    } else {
      this.pinged = false;
      due = this.lastHeard + interval;
    }
    this.beat = setTimeout(() => this.heartbeatCheck(), Math.max(due - Date.now(), 1));
  }

  /** @param {Uint8Array} bytes */
  send(bytes) {
    if (this.ws.readyState === 1) this.ws.send(bytes);
  }

  /** @param {number} size @param {string} what */
  usable(size, what) {
    if (this.state !== "open") {
      if (this.end) throw this.end;
      throw new RustTcpError(`${what} not sent: the connection is ${this.state}`, { kind: "not-sent", by: "us" });
    }
    if (size > this.serverMaxFrameSize) {
      throw new RustTcpError(`${what} not sent: a payload of ${size} bytes exceeds the server's limit of ${this.serverMaxFrameSize}`,
        { kind: "not-sent", by: "us" });
    }
  }

  /**
   * @param {Uint8Array} payload
   * @param {number | undefined} timeout seconds
   * @returns {Promise<Uint8Array>}
   */
  request(payload, timeout) {
    this.usable(payload.length + 4, "request");
    if (this.goingAway) throw new RustTcpError("request not sent: the server is going away", { kind: "not-sent", by: "us" });
    let id = this.nextId;
    while (this.waiting.has(id)) id = (id + 1) >>> 0;
    this.nextId = (id + 1) >>> 0;
    const body = new Uint8Array(4 + payload.length);
    new DataView(body.buffer).setUint32(0, id);
    body.set(payload, 4);
    return new Promise((resolve, reject) => {
      /** @type {Waiter} */
      const waiter = { resolve, reject, abandoned: false };
      this.waiting.set(id, waiter);
      if (timeout !== undefined) {
        const timer = setTimeout(() => {
          // The id stays taken until the late answer comes: it is not
          // reused while the server may still answer it.
          waiter.abandoned = true;
          reject(new RustTcpError(`no response within ${timeout}s`, { kind: "timeout", by: "us" }));
        }, timeout * 1000);
        waiter.resolve = (b) => { clearTimeout(timer); resolve(b); };
        waiter.reject = (e) => { clearTimeout(timer); reject(e); };
      }
      this.sendCounted(encodeFrame(FrameType.REQUEST, body));
    });
  }

  get pending() {
    let n = 0;
    for (const w of this.waiting.values()) if (!w.abandoned) n++;
    return n;
  }

  /** The close handshake. @param {number} timeout seconds */
  async close(timeout) {
    if (this.state === "open") {
      this.state = "closing";
      this.send(codeReason(FrameType.CLOSE, CloseCode.NORMAL, "bye"));
      const acked = new Promise((resolve) => { this.acked = () => resolve(undefined); });
      let timer;
      const late = new Promise((resolve) => { timer = setTimeout(resolve, timeout * 1000, "late"); });
      const how = await Promise.race([acked, late]);
      clearTimeout(timer);
      if (how === "late") {
        this.finish(new RustTcpError(`no acknowledgement of our CLOSE within ${timeout}s`, { kind: "closed", by: "network" }), 1000, "late");
      }
    } else if (this.state === "handshake") {
      this.finish(new RustTcpError("closed during the handshake", { kind: "closed", by: "us" }), 1000, "bye");
    }
    if (this.end && this.end.by !== "us") throw this.end;
  }

  /** The server broke the protocol. @param {number} code @param {string} reason */
  violation(code, reason) {
    this.send(codeReason(FrameType.CLOSE, code, reason));
    this.finish(new RustTcpError(`the server broke the protocol (${describe(code)}): ${reason}`,
      { kind: "protocol", by: "protocol-violation", code }), 1000, "protocol error");
  }

  /** The WebSocket closed. @param {number} wsCode @param {string} wsReason */
  lost(wsCode, wsReason) {
    if (this.state === "closed") return;
    const said = wsReason ? `: ${printable(wsReason)}` : "";
    let why = wsCode === 1006
      ? "connection lost"
      : `the server closed the WebSocket without a CLOSE (WebSocket code ${wsCode}${said})`;
    if (this.state === "handshake") why = `cannot connect (${why})`;
    this.finish(new RustTcpError(why, { kind: this.state === "handshake" ? "connect" : "closed", by: "network" }));
  }

  /**
   * @param {RustTcpError} end
   * @param {number} [wsCode] close the WebSocket with this code, if still open
   * @param {string} [wsReason]
   */
  finish(end, wsCode, wsReason) {
    if (this.state === "closed") return;
    this.state = "closed";
    this.end = end;
    clearTimeout(this.beat);
    clearTimeout(this.ackTimer);
    if (wsCode !== undefined && this.ws.readyState <= 1) this.ws.close(wsCode, wsReason);
    this.welcomeReject?.(end);
    this.acked?.();
    const failed = this.interrupts && end.by !== "us"
      ? new RustTcpError(`interrupted, not resent: ${end.message}`, { kind: "interrupted", by: "network" })
      : end;
    if (!this.kept) this.giveUpKept(failed);
    this.onEnd(this);
  }
}

// ---- calls (spec 3.13) ----

/** One call in flight as its connection keeps it: items, credit, its end. */
class Route {
  /** @param {number} flags @param {number} credit @param {number} streamCredit */
  constructor(flags, credit, streamCredit) {
    this.serverStreams = (flags & 1) !== 0;
    this.clientStreams = (flags & 2) !== 0;
    this.recvCredit = credit;
    this.sendCredit = this.clientStreams ? streamCredit : 0;
    this.clientOpen = this.clientStreams;
    this.cancelled = false;
    /** @type {Uint8Array[]} */
    this.items = [];
    /** @type {{answer: Uint8Array | null, error: RustTcpError | null} | null} */
    this.ended = null;
    /** Woken by an item, credit, or the end. @type {Array<() => void>} */
    this.wakers = [];
  }

  wake() {
    const wakers = this.wakers;
    this.wakers = [];
    for (const w of wakers) w();
  }

  /** @param {Uint8Array} item */
  push(item) { this.items.push(item); this.wake(); }

  /** @param {number} items */
  granted(items) { this.sendCredit += items; this.wake(); }

  /** @param {Uint8Array | null} answer @param {RustTcpError | null} error */
  finish(answer, error) {
    if (!this.ended) this.ended = { answer, error };
    this.wake();
  }

  /** Resolves at the next change. @returns {Promise<void>} */
  changed() { return new Promise((resolve) => this.wakers.push(() => resolve())); }
}

/**
 * Options of {@link Client.call} and {@link Client.openCall}.
 * @typedef {object} CallOptions
 * @property {number} [deadline] the call's budget in seconds: sent with it (the server stops its work when it passes) and kept here too
 * @property {Record<string, string | Uint8Array> | Array<[string, string | Uint8Array]>} [metadata] at most 16 pairs, 4096 bytes; keys of a-z, 0-9, "-", "_", "."
 * @property {number} [serverStream] the server answers with a stream, at most this many items ahead of our reading
 * @property {boolean} [clientStream] we send a stream ({@link Call#send}, {@link Call#end})
 * @property {AbortSignal} [signal] aborting it cancels the call on the server
 */

/**
 * One call in flight: `for await (const item of call)` reads the server's
 * stream (each item read lets it send another), `send`/`end` feed ours,
 * `result()` waits for the answer. `cancel()` (or the options' AbortSignal)
 * cancels it on the server, whose work stops.
 */
export class Call {
  /**
   * @param {Link} link @param {number} id @param {Route} route
   * @param {number} window @param {number | undefined} deadline seconds
   */
  constructor(link, id, route, window, deadline) {
    this.firstLink = link;
    this.id = id;
    this.route = route;
    this.regrant = Math.max(Math.floor(window / 2), 1);
    this.read = 0;
    this.deadline = deadline === undefined ? undefined : Date.now() + deadline * 1000;
    this.budget = deadline;
    /** @type {RustTcpError | null} */
    this.failed = null;
  }

  /** The connection the call's frames go to: a resumed session's newest (spec 3.14). */
  get link() {
    let link = this.firstLink;
    while (link.successor) link = link.successor;
    return link;
  }

  /** Waits for the route to change, or fails at the deadline. */
  async changed() {
    if (this.failed) throw this.failed;
    const at = this.deadline;
    if (at === undefined) return this.route.changed();
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(resolve, Math.max(at - Date.now(), 0), "late"); });
    const how = await Promise.race([this.route.changed(), late]);
    clearTimeout(timer);
    if (how === "late") {
      this.cancel();
      this.failed = new RustTcpError(`call deadline exceeded: no answer within the deadline of ${this.budget}s`,
        { kind: "call", by: "server", status: CallStatus.DEADLINE_EXCEEDED });
      throw this.failed;
    }
  }

  /** The next item of the server's stream, or null once the call ended well. @returns {Promise<Uint8Array | null>} */
  async next() {
    for (;;) {
      if (this.failed) throw this.failed;
      const item = this.route.items.shift();
      if (item) {
        this.read += 1;
        if (this.read >= this.regrant) {
          const grant = new Uint8Array(4);
          new DataView(grant.buffer).setUint32(0, this.read);
          if (!this.route.cancelled && this.link.callSend(this.id, this.route, FrameType.CREDIT, grant)) {
            this.route.recvCredit += this.read;
          }
          this.read = 0;
        }
        return item;
      }
      const ended = this.route.ended;
      if (ended) {
        if (ended.error) throw ended.error;
        return null;
      }
      await this.changed();
    }
  }

  /** @returns {AsyncIterator<Uint8Array>} */
  [Symbol.asyncIterator]() {
    return {
      next: async () => {
        const item = await this.next();
        return item === null ? { done: true, value: undefined } : { done: false, value: item };
      },
      return: async () => { this.cancel(); return { done: true, value: undefined }; },
    };
  }

  /** Sends one item of our stream, once the server has credit. @param {Uint8Array | string} item */
  async send(item) {
    const data = typeof item === "string" ? encoder.encode(item) : item;
    const route = this.route;
    this.link.usable(4 + data.length, "item");
    if (!route.clientOpen) throw new RustTcpError("item not sent: the call's stream has ended", { kind: "not-sent", by: "us" });
    while (route.sendCredit === 0) {
      if (route.ended) throw route.ended.error ?? new RustTcpError("item not sent: the call has ended", { kind: "not-sent", by: "us" });
      await this.changed();
    }
    if (!this.link.callSend(this.id, route, FrameType.ITEM, data)) {
      throw route.ended?.error ?? this.link.end ?? new RustTcpError("item not sent: the call has ended", { kind: "not-sent", by: "us" });
    }
    route.sendCredit -= 1;
  }

  /** Ends our stream. */
  async end() {
    if (!this.route.clientOpen) throw new RustTcpError("END not sent: the call's stream has already ended", { kind: "not-sent", by: "us" });
    this.route.clientOpen = false;
    this.link.callSend(this.id, this.route, FrameType.END);
  }

  /** The answer, once the server's stream (read or not) is over. @returns {Promise<Uint8Array>} */
  async result() {
    try {
      while ((await this.next()) !== null) { /* what is left of the stream */ }
    } catch (e) {
      this.cancel();
      throw e;
    }
    return /** @type {Uint8Array} */ (this.route.ended?.answer);
  }

  /** Cancels the call: the server drops its work (STATUS 2). */
  cancel() {
    const route = this.route;
    if (route.ended || route.cancelled) return;
    if (this.link.callSend(this.id, route, FrameType.CANCEL)) {
      route.cancelled = true;
      route.clientOpen = false;
    }
    this.failed ??= new RustTcpError("call cancelled: cancelled by us", { kind: "call", by: "us", status: CallStatus.CANCELLED });
    route.wake();
  }
}

// ---- the client ----

/** An event with what came in `detail`. */
export class PushEvent extends Event {
  /** @param {string} type @param {object} detail */
  constructor(type, detail) {
    super(type);
    this.detail = detail;
  }
}

/**
 * A v2 connection to a rust-tcp server over WebSocket. Events (each a
 * {@link PushEvent}): "text" `{text}`, "binary" `{data}`, "servererror"
 * `{code, reason}`, "goaway" `{code, reason}`; a reconnecting client's
 * "disconnected" `{why}`, "reconnected" `{serverName}`, "reconnectfailed"
 * `{attempt, error, gaveUp}`; with `resume`, "resumed" `{replayed, resent}`
 * (the session goes on: the replayed frames follow it, nothing was lost) or
 * "resumerefused" `{reason, unacknowledged}` (a new session: requests in
 * flight failed as interrupted, and that many of ours may be lost, then
 * "reconnected"); and "end" `{error}` when the client is done.
 */
export class Client extends EventTarget {
  /**
   * Connects and completes the handshake.
   * @param {string} url `ws://HOST:PORT/` or `wss://…`
   * @param {ConnectOptions} [options]
   * @returns {Promise<Client>}
   */
  static async connect(url, options = {}) {
    const name = options.name ?? "web-client";
    const nameBytes = encoder.encode(name).length;
    // eslint-disable-next-line no-control-regex
    if (nameBytes < 1 || nameBytes > 64 || /[\u0000-\u001f\u007f-\u009f]/.test(name)) {
      throw new RustTcpError("the name must be 1 to 64 bytes of UTF-8 without control characters", { kind: "invalid-config", by: "us" });
    }
    const maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME;
    if (maxFrame < MIN_MAX_FRAME || maxFrame > 0xffffffff) {
      throw new RustTcpError(`maxFrame ${maxFrame}: must be 1024 to 4294967295`, { kind: "invalid-config", by: "us" });
    }
    const client = new Client(url, { ...options, name, maxFrame });
    client.link = await client.open();
    // What came with the WELCOME (in the same read, as node's ws delivers
    // it) waits for the caller's listeners, added once this returns.
    setTimeout(() => client.release(), 0);
    return client;
  }

  /** Delivers the events held since the handshake, and every one after. */
  release() {
    const held = this.held;
    this.held = null;
    for (const event of held ?? []) this.dispatchEvent(event);
  }

  /** @param {string} type @param {object} detail */
  emit(type, detail) {
    const event = new PushEvent(type, detail);
    if (this.held) this.held.push(event);
    else this.dispatchEvent(event);
  }

  /**
   * @param {string} url
   * @param {Required<Pick<ConnectOptions, "name" | "maxFrame">> & ConnectOptions} options
   */
  constructor(url, options) {
    super();
    this.url = url;
    this.options = options;
    const r = options.reconnect;
    /** @type {Required<ReconnectPolicy> | null} */
    this.policy = r ? {
      initialDelay: (r === true ? undefined : r.initialDelay) ?? 0.1,
      maxDelay: (r === true ? undefined : r.maxDelay) ?? 5,
      maxAttempts: (r === true ? undefined : r.maxAttempts) ?? Infinity,
    } : null;
    /** @type {Link | null} */
    this.link = null;
    this.closing = false;
    /** @type {Promise<void> | null} */
    this.moving = null;
    /** @type {RustTcpError | null} */
    this.gaveUp = null;
    /** @type {Array<() => void>} */
    this.readyWaiters = [];
    /** @type {PushEvent[] | null} events held until the caller can listen */
    this.held = [];
  }

  /** @param {Link | null} [resuming] @returns {Promise<Link>} */
  async open(resuming = null) {
    const link = new Link(this.url, this.options,
      (l, type, detail) => this.pushed(l, type, detail), (l) => this.ended(l), this.policy !== null, resuming);
    const seconds = this.options.connectTimeout ?? 10;
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new RustTcpError(`no answer from ${this.url} within ${seconds}s`, { kind: "timeout", by: "network" })), seconds * 1000);
    });
    try {
      await Promise.race([link.welcomed, late]);
    } catch (e) {
      link.finish(/** @type {RustTcpError} */ (e), 1000, "timeout");
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return link;
  }

  /** @returns {Link} */
  get current() {
    if (!this.link) throw new RustTcpError("not connected", { kind: "closed", by: "us" });
    return this.link;
  }

  /** The server's name from its WELCOME. */
  get serverName() { return this.current.serverName; }
  /** The largest payload the server accepts. */
  get serverMaxFrameSize() { return this.current.serverMaxFrameSize; }
  /** The heartbeat interval both sides follow, in seconds (0: none). */
  get heartbeat() { return this.current.heartbeat; }
  /** The application protocol chosen, if one was asked for. */
  get appProtocol() { return this.current.app; }
  /** Requests whose callers still wait. */
  get pendingRequests() { return this.current.pending; }
  /** "handshake", "open", "closing", "closed", or "reconnecting". */
  get state() { return this.moving ? "reconnecting" : this.current.state; }

  /** @returns {Promise<Link>} the connection new calls go to */
  async usable() {
    const seconds = this.options.connectTimeout ?? 10;
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const link = this.current;
      if (!this.policy || this.closing || (link.state === "open" && !link.goingAway)) return link;
      if (this.gaveUp) throw this.gaveUp;
      // The new connection may be cut again before this caller runs: then
      // it waits for the next one, within the same deadline.
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new RustTcpError(`not reconnected within ${seconds}s`, { kind: "closed", by: "network" })), Math.max(0, deadline - Date.now()));
        this.readyWaiters.push(() => { clearTimeout(timer); resolve(undefined); });
      });
      if (this.gaveUp) throw this.gaveUp;
      if (this.current === link) return link; // nothing newer is coming (it says why if it ended)
    }
  }

  /** Sends one TEXT message. @param {string} text */
  async sendText(text) {
    const link = await this.usable();
    const bytes = encoder.encode(text);
    link.usable(bytes.length, "text");
    link.sendCounted(encodeFrame(FrameType.TEXT, bytes));
  }

  /** Sends one BINARY message. @param {Uint8Array} data */
  async sendBinary(data) {
    const link = await this.usable();
    link.usable(data.length, "binary");
    link.sendCounted(encodeFrame(FrameType.BINARY, data));
  }

  /**
   * Sends a REQUEST; resolves with the response's bytes. Many may be in
   * flight at once. `timeout` (seconds; default `requestTimeout`) rejects
   * with kind "timeout", and the late answer is dropped.
   * @param {Uint8Array | string} payload
   * @param {{timeout?: number}} [options]
   * @returns {Promise<Uint8Array>}
   */
  async request(payload, { timeout } = {}) {
    const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
    const link = await this.usable();
    return link.request(bytes, timeout ?? this.options.requestTimeout);
  }

  /**
   * Opens a call (spec 3.13) and returns it in flight ({@link Call}).
   * Rejects with kind "not-sent" when the server does not speak calls or
   * as many are in flight as it allows, "invalid-config" for bad metadata.
   * @param {Uint8Array | string} payload
   * @param {CallOptions} [options]
   * @returns {Promise<Call>}
   */
  async openCall(payload, options = {}) {
    const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
    const pairs = Array.isArray(options.metadata) ? options.metadata : Object.entries(options.metadata ?? {});
    /** @type {Array<[Uint8Array, Uint8Array]>} */
    const metadata = pairs.map(([k, v]) => [encoder.encode(k), typeof v === "string" ? encoder.encode(v) : v]);
    const invalid = (/** @type {string} */ why) => new RustTcpError(why, { kind: "invalid-config", by: "us" });
    if (metadata.length > 16) throw invalid(`${metadata.length} metadata entries; at most 16`);
    for (const [k] of metadata) {
      if (k.length < 1 || k.length > 64 || !/^[a-z0-9._-]+$/.test(new TextDecoder().decode(k))) {
        throw invalid(`metadata key ${JSON.stringify(new TextDecoder().decode(k))}: 1 to 64 bytes of a-z, 0-9, '-', '_' or '.'`);
      }
    }
    const size = 1 + metadata.reduce((n, [k, v]) => n + 3 + k.length + v.length, 0);
    if (size > 4096) throw invalid(`metadata of ${size} bytes; at most 4096`);
    const { deadline, serverStream, clientStream, signal } = options;
    if (deadline !== undefined && !(deadline > 0)) throw invalid(`deadline ${deadline}: must be a positive number of seconds`);
    const window = serverStream === undefined ? 0 : Math.max(Math.floor(serverStream), 1);
    const flags = (serverStream !== undefined ? 1 : 0) | (clientStream ? 2 : 0);
    const link = await this.usable();
    const deadlineMs = deadline === undefined ? 0 : Math.max(1, Math.round(deadline * 1000));
    const [id, route] = link.startCall(bytes, flags, deadlineMs, window, metadata);
    const call = new Call(link, id, route, window, deadline);
    if (signal) {
      if (signal.aborted) call.cancel();
      else signal.addEventListener("abort", () => call.cancel(), { once: true });
    }
    return call;
  }

  /**
   * Makes a unary call (spec 3.13) and resolves with its answer: a request
   * with a deadline the server keeps too, metadata, and cancellation (the
   * options' AbortSignal) that stops the server's work. Rejects with kind
   * "call" and `status` when it ends otherwise.
   * @param {Uint8Array | string} payload
   * @param {Omit<CallOptions, "serverStream" | "clientStream">} [options]
   * @returns {Promise<Uint8Array>}
   */
  async call(payload, options = {}) {
    return (await this.openCall(payload, options)).result();
  }

  /** Calls sent whose STATUS has not come (a cancelled one until the server confirms). */
  get callsInFlight() { return this.current.calls.size; }

  /**
   * The close handshake: resolves once the server has processed everything
   * sent before it.
   */
  async close() {
    this.closing = true;
    const link = this.current;
    try {
      await link.close(this.options.connectTimeout ?? 10);
    } finally {
      this.wake();
      this.emit("end", { error: null });
    }
    if (this.gaveUp) throw this.gaveUp;
  }

  wake() {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w();
  }

  /** @param {Link} link @param {string} type @param {object} detail */
  pushed(link, type, detail) {
    if (type === "goaway" && this.policy && link === this.link) {
      this.emit(type, detail);
      const g = /** @type {{code: number, reason: string}} */ (detail);
      this.moveOn(link, `the server is going away (${g.code}: ${g.reason})`);
      return;
    }
    this.emit(type, detail);
  }

  /** @param {Link} link */
  ended(link) {
    // An old connection left behind, or a first one that never opened
    // (connect() rejects with why): not the client's end.
    if (this.link ? link !== this.link : !link.opened) return;
    if (this.closing || !this.policy) {
      if (!this.closing) this.emit("end", { error: link.end });
      return;
    }
    this.moveOn(link, link.end?.message ?? "connection lost");
  }

  /** @param {Link} old @param {string} why */
  moveOn(old, why) {
    if (this.moving || this.closing || !this.policy) return;
    this.moving = this.replace(old, why, this.policy);
  }

  /** @param {Link} old @param {string} why @param {Required<ReconnectPolicy>} policy */
  async replace(old, why, policy) {
    this.emit("disconnected", { why });
    let attempt = 0;
    /** @type {Link} */
    let next;
    for (;;) {
      const full = Math.min(policy.initialDelay * 2 ** Math.min(attempt, 30), policy.maxDelay);
      await new Promise((resolve) => setTimeout(resolve, full * (0.5 + Math.random() / 2) * 1000));
      if (this.closing) {
        old.giveUpKept(new RustTcpError("closed while reconnecting", { kind: "closed", by: "us" }));
        return;
      }
      try {
        next = await this.open(old.kept ? old : null);
        break;
      } catch (e) {
        attempt += 1;
        const gaveUp = attempt >= policy.maxAttempts;
        const error = /** @type {Error} */ (e).message;
        this.emit("reconnectfailed", { attempt, error, gaveUp });
        if (gaveUp) {
          this.gaveUp = new RustTcpError(`could not reconnect after ${attempt} attempts: ${error}`, { kind: "closed", by: "network" });
          old.giveUpKept(new RustTcpError(`interrupted, not resent: ${this.gaveUp.message}`, { kind: "interrupted", by: "network" }));
          this.moving = null;
          this.wake();
          this.emit("end", { error: this.gaveUp });
          return;
        }
      }
    }
    if (this.closing) {
      if (!next.resumed) old.giveUpKept(new RustTcpError("closed while reconnecting", { kind: "closed", by: "us" }));
      await next.close(10).catch(() => {});
      return;
    }
    this.link = next;
    this.moving = null;
    this.wake();
    // A server going away still serves the old connection: close it
    // properly instead of leaving it to be cut at the end of its grace.
    if (old.state !== "closed") old.close(10).catch(() => {});
    if (next.refused !== null) {
      const unacknowledged = old.resume?.unacknowledged ?? 0;
      old.giveUpKept(new RustTcpError(`interrupted: resume refused: ${next.refused}`, { kind: "interrupted", by: "network" }));
      this.emit("resumerefused", { reason: next.refused, unacknowledged });
    }
    if (!next.resumed) this.emit("reconnected", { serverName: next.serverName });
    // Cut in the read that brought its WELCOME, before it was ours to watch
    // (its end was ignored as an old connection's): replaced in turn, as a
    // connection cut later would be.
    if (next.state === "closed") this.ended(next);
  }
}

// ---- typed protocols ----

/** The value of serde's `Result` shape, or an error of kind "remote". @param {unknown} answer */
function typedResult(answer) {
  if (answer && typeof answer === "object" && !Array.isArray(answer)) {
    const entries = Object.entries(answer);
    if (entries.length === 1 && entries[0][0] === "Ok") return entries[0][1];
    if (entries.length === 1 && entries[0][0] === "Err") {
      const error = new RustTcpError(`the server answered with an error: ${JSON.stringify(entries[0][1])}`, { kind: "remote", by: "server" });
      /** @type {unknown} */ (/** @type {any} */ (error).error = entries[0][1]);
      throw error;
    }
  }
  throw new RustTcpError(`the response is not {Ok: …} or {Err: …}: ${JSON.stringify(answer)}`, { kind: "decode", by: "server" });
}

/** The metadata key of a call that asks a server for its schema (spec 3.13.1). */
export const REFLECTION_KEY = "rust-tcp-schema";

/**
 * The schema of the protocol the server speaks (spec 3.13.1), as the JSON
 * object generate.js reads. The server must have reflection on; else the
 * call rejects with kind "call" and its reason. `client` need not have
 * asked for the protocol.
 * @param {Client} client
 * @returns {Promise<Record<string, unknown>>}
 */
export async function fetchSchema(client) {
  const answer = await client.call(new Uint8Array(0), { metadata: { [REFLECTION_KEY]: "" } });
  /** @type {unknown} */
  let schema;
  try {
    schema = JSON.parse(new TextDecoder().decode(answer));
  } catch (e) {
    throw new RustTcpError(`the schema is not JSON: ${/** @type {Error} */ (e).message}`, { kind: "decode", by: "server" });
  }
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    throw new RustTcpError("the schema is not a JSON object", { kind: "decode", by: "server" });
  }
  return /** @type {Record<string, unknown>} */ (schema);
}

/** A streaming call of a typed protocol: items decoded as they come. */
export class TypedCall {
  /** @param {Call} call @param {MsgpackCodec} msgpack */
  constructor(call, msgpack) {
    this.call = call;
    this.msgpack = msgpack;
  }

  /** @returns {AsyncIterator<unknown>} */
  [Symbol.asyncIterator]() {
    const items = this.call[Symbol.asyncIterator]();
    return {
      next: async () => {
        const got = await items.next();
        return got.done ? { done: true, value: undefined } : { done: false, value: this.msgpack.decode(got.value) };
      },
      return: async () => { this.call.cancel(); return { done: true, value: undefined }; },
    };
  }

  /** @param {unknown} item */
  async send(item) { await this.call.send(this.msgpack.encode(item)); }

  async end() { await this.call.end(); }

  /** Waits for the end; rejects with kind "remote" for the protocol's own error. */
  async result() { typedResult(this.msgpack.decode(await this.call.result())); }

  cancel() { this.call.cancel(); }
}

/**
 * A MessagePack codec, e.g. `import * as msgpack from "@msgpack/msgpack"`.
 * @typedef {{encode: (value: unknown) => Uint8Array, decode: (bytes: Uint8Array) => unknown}} MsgpackCodec
 */

/**
 * A connection speaking an application protocol in MessagePack, with
 * serde's conventions (spec 3.3.3): a struct is an object of its fields,
 * an enum variant with fields `{Get: {key: "k"}}`, one without its name
 * `"Watch"`. Events pushed by the service come as "event" `{value}`.
 */
export class TypedClient extends EventTarget {
  /**
   * @param {string} url
   * @param {AppProtocol} protocol
   * @param {MsgpackCodec} msgpack
   * @param {ConnectOptions} [options]
   */
  static async connect(url, protocol, msgpack, options = {}) {
    const client = await Client.connect(url, { ...options, appProtocol: protocol });
    return new TypedClient(client, msgpack);
  }

  /** @param {Client} client @param {MsgpackCodec} msgpack */
  constructor(client, msgpack) {
    super();
    this.untyped = client;
    this.msgpack = msgpack;
    client.addEventListener("binary", (e) => {
      const { data } = /** @type {PushEvent & {detail: {data: Uint8Array}}} */ (e).detail;
      try {
        this.dispatchEvent(new PushEvent("event", { value: msgpack.decode(data) }));
      } catch (err) {
        this.dispatchEvent(new PushEvent("undecodable", { error: String(err) }));
      }
    });
  }

  /** The version the handshake settled on. */
  get negotiated() { return this.untyped.appProtocol; }

  /**
   * Calls the service: resolves with its response; rejects with kind
   * "remote" (`error` holds the protocol's own error), "request-failed"
   * (it could not handle the request at all), or "decode".
   * @param {unknown} request
   * @param {{timeout?: number}} [options]
   */
  async call(request, options) {
    return typedResult(this.msgpack.decode(await this.untyped.request(this.msgpack.encode(request), options)));
  }

  /**
   * A call (spec 3.13): like {@link TypedClient#call}, with a deadline the
   * server keeps too, metadata, and an AbortSignal that cancels it.
   * @param {unknown} request
   * @param {Omit<CallOptions, "serverStream" | "clientStream">} [options]
   */
  async callWith(request, options) {
    return typedResult(this.msgpack.decode(await this.untyped.call(this.msgpack.encode(request), options)));
  }

  /**
   * A streaming call: the server answers with a stream of the protocol's
   * items (`for await`), at most `serverStream` (default 256) ahead of our
   * reading; with `clientStream` we send items too.
   * @param {unknown} request
   * @param {CallOptions} [options]
   * @returns {Promise<TypedCall>}
   */
  async stream(request, options = {}) {
    const call = await this.untyped.openCall(this.msgpack.encode(request), { serverStream: 256, ...options });
    return new TypedCall(call, this.msgpack);
  }

  /** Sends a one-way message. @param {unknown} message */
  async send(message) {
    await this.untyped.sendBinary(this.msgpack.encode(message));
  }

  /** The close handshake. */
  async close() {
    await this.untyped.close();
  }
}
