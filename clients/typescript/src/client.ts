/**
 * A session with a throng server over WebSocket: Hello → Welcome, then frames applied to a
 * {@link Mirror}, inputs and actions numbered from one counter, pings, and one
 * {@link CloseInfo} saying why it ended.
 *
 * On zone servers (docs/SCALING.md) the session follows the player across borders: a
 * `Transfer` from the server makes the client open the destination's WebSocket, present the
 * ticket with `Resume` and carry on there (a new Welcome and player id, a fresh mirror, the
 * same seq counter), telling listeners with `transfer` and `welcome` events.
 *
 * One binary WebSocket message is one protocol message (the TCP frame body without its
 * length prefix). The server ends a session with its own `Reject`/`Close` message first and
 * then a WebSocket close of code 4000 + reason index; the close info combines both, so a
 * caller learns the reason even if only one of them arrived.
 */

import { decodeServerMessage, encodeClientMessage } from "./codec.js";
import type { ClientMessage, StateFrame, Transfer, Welcome } from "./messages.js";
import { PROTOCOL_VERSION, closeReasonName } from "./messages.js";
import { Mirror } from "./mirror.js";
import type { FrameChanges, NamedEvent } from "./mirror.js";

/**
 * A WebSocket constructor: the browser's (the default: the global `WebSocket`), Node's
 * global one (Node 22+, or 20 with `--experimental-websocket`), or a stand-in for tests.
 */
export type WebSocketConstructor = new (url: string) => WebSocket;

export interface ConnectOptions {
  /** The WebSocket implementation (default: the global `WebSocket`). */
  WebSocket?: WebSocketConstructor;
  /**
   * Give up if no Welcome within this many ms (default 10000): at connect, and at each
   * zone a Transfer sends the session to.
   */
  timeoutMs?: number;
  /**
   * Ping when nothing was sent for this long, ms, so an idle player is not closed with
   * `idle_timeout` (default: a third of Welcome.idleTimeoutMs; 0 turns it off).
   */
  keepAliveMs?: number;
  /** The clock for receipt times and round trips (default `performance.now`). */
  now?: () => number;
}

/** Where a {@link Transfer} sends the player (the Transfer without its ticket). */
export interface ZoneAddress {
  /** The destination zone's name. */
  zone: string;
  /** Its TCP game listener, `HOST:PORT`. */
  address: string;
  /** Its WebSocket URL, empty if it has no web listener (a browser cannot follow then). */
  websocket: string;
}

/** Why a session ended (or never opened). */
export interface CloseInfo {
  /** Wire index of the server's close reason, if it gave one (message or close code). */
  reason: number | undefined;
  /**
   * The reason's name: a {@link CLOSE_REASONS} name from the server (after a Transfer, e.g.
   * `ticket_expired` or `already_online`: the destination refused the Resume), or one of
   * the client's: `goodbye` (this client left), `connection_failed`, `connection_lost`,
   * `timeout`, `client_error` (the server sent something this client cannot apply),
   * `transfer_failed` (a Transfer this client cannot follow: no WebSocket URL, or too many
   * in a row), `normal`.
   */
  reasonName: string;
  /** Human-readable detail (the server's, or the client's error). */
  detail: string;
  /** The WebSocket close code (1006 when the connection dropped without one). */
  code: number;
  /** True if the session never opened (a Reject, or no Welcome). */
  rejected: boolean;
  /**
   * Set if it ended while following a Transfer (before the destination's Welcome): where
   * the player was being sent. The player can log in again with Hello (a new connect).
   */
  transfer?: ZoneAddress;
}

/** A failed connect: the server refused, or the connection did not open. */
export class ConnectError extends Error {
  constructor(readonly close: CloseInfo) {
    super(`throng: ${close.reasonName}${close.detail ? `: ${close.detail}` : ""} (code ${close.code})`);
    this.name = "ConnectError";
  }
}

/** A frame as the client applied it. */
export interface FrameUpdate extends FrameChanges {
  /** The decoded frame. */
  frame: StateFrame;
  /** Local time it arrived (the `now` clock), for interpolation. */
  receivedAt: number;
}

/** The session continues on another zone after a Transfer (the `welcome` event). */
export interface ZoneWelcome {
  /** The destination's Welcome (also `client.welcome` from now on). */
  welcome: Welcome;
  /** The fresh mirror of the new zone's frames (also `client.mirror` from now on). */
  mirror: Mirror;
  /** The zone's name, from the Transfer (also `client.zone`). */
  zone: string;
  /** The player's id in the previous zone (ids are per server: `welcome.playerId` is new). */
  previousPlayerId: number;
}

export interface ClientEvents {
  /** A frame was applied to the mirror. */
  frame: FrameUpdate;
  /** A server event, in delivery order (also in its frame's `events`). */
  event: NamedEvent & { tick: number };
  /** A pong: the round trip of its ping, ms. */
  pong: number;
  /**
   * The server moves the session to another zone: the current mirror got its last frame.
   * Inputs and actions sent until `welcome` are held and sent there (the latest input only).
   */
  transfer: ZoneAddress;
  /**
   * After a `transfer` (not at connect, which resolves with the first Welcome), the
   * session continues on another zone: new Welcome, new player id, a fresh mirror
   * whose frames start over (at that server's ticks). Entity ids are the new server's:
   * forget per-id state, clear interpolation and restart prediction here.
   */
  welcome: ZoneWelcome;
  /** The session ended. */
  close: CloseInfo;
}

type Listener<T> = (value: T) => void;

/** Transfers followed before a Welcome (a zone that hands the player straight on) at most. */
const MAX_TRANSFERS_IN_A_ROW = 4;
/** Messages held while a Transfer is followed, at most (the server's burst is 20). */
const MAX_HELD = 16;

/**
 * Opens a session: a socket at a URL, a first message (Hello, or Resume after a Transfer),
 * then the Welcome, following any Transfer that comes instead of it (a login at a zone
 * that does not own the player's saved position). Reports once: `opened` synchronously in
 * the Welcome's message handler (so the caller installs its own handlers before the next
 * message is dispatched), or `failed`.
 */
class Handshake {
  private ws: WebSocket | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private done = false;
  private hops = 0;
  private zone: string | undefined;
  private transfer: ZoneAddress | undefined;

  constructor(
    private readonly Socket: WebSocketConstructor,
    private readonly timeoutMs: number,
    private readonly opened: (ws: WebSocket, welcome: Welcome, zone: string | undefined) => void,
    private readonly failed: (info: CloseInfo) => void,
  ) {}

  /** Connects to `url` and sends `first` once open. */
  start(url: string, first: ClientMessage): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.fail({ reason: undefined, reasonName: "timeout", detail: "no Welcome in time", code: 1006, rejected: true }),
      this.timeoutMs,
    );
    let ws: WebSocket;
    try {
      ws = new this.Socket(url);
    } catch (error) {
      // A URL the WebSocket refuses (a browser throws a SyntaxError).
      this.fail({ reason: undefined, reasonName: "connection_failed", detail: String(error), code: 1006, rejected: true });
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    let refusal: { reason: number; detail: string } | undefined;
    const current = () => !this.done && this.ws === ws;
    ws.onopen = () => {
      if (current()) ws.send(encodeClientMessage(first));
    };
    ws.onmessage = (event) => {
      if (!current()) return;
      let message;
      try {
        message = decodeServerMessage(bytesOf(event.data));
      } catch (error) {
        this.fail({ reason: undefined, reasonName: "client_error", detail: String(error), code: 1006, rejected: true });
        return;
      }
      switch (message.type) {
        case "welcome":
          this.done = true;
          this.ws = undefined;
          clearTimeout(this.timer);
          this.opened(ws, message.welcome, this.zone);
          break;
        case "reject":
        case "close":
          refusal = { reason: message.reason, detail: message.detail };
          break;
        case "transfer":
          this.follow(message);
          break;
        default:
          this.fail({ reason: undefined, reasonName: "client_error", detail: `${message.type} before Welcome`, code: 1006, rejected: true });
      }
    };
    ws.onclose = (event) => {
      if (!current()) return;
      const info = closeInfo(event.code, event.reason, refusal);
      if (refusal === undefined && info.reason === undefined) info.reasonName = "connection_failed";
      this.fail({ ...info, rejected: true });
    };
    // Browsers follow an error with a close; some WebSocket implementations (Node 20's, when
    // the upgrade response is refused) report only the error.
    ws.onerror = (event) => {
      if (!current()) return; // (closing a failed socket may report another error)
      if (refusal !== undefined) {
        this.fail({ ...closeInfo(1006, "", refusal), rejected: true });
      } else {
        const message = (event as { message?: unknown }).message;
        const detail = typeof message === "string" ? message : "WebSocket error";
        this.fail({ reason: undefined, reasonName: "connection_failed", detail, code: 1006, rejected: true });
      }
    };
  }

  /**
   * Continues at the zone `transfer` names, with its ticket (the socket it came on, if
   * this handshake's, is done).
   */
  follow(transfer: Transfer): void {
    const old = this.ws;
    this.ws = undefined;
    old?.close(1000, "transfer");
    this.hops++;
    this.zone = transfer.zone;
    this.transfer = { zone: transfer.zone, address: transfer.address, websocket: transfer.websocket };
    if (transfer.websocket === "") {
      this.fail({
        reason: undefined,
        reasonName: "transfer_failed",
        detail: `zone ${transfer.zone} has no WebSocket listener (TCP only: ${transfer.address})`,
        code: 1000,
        rejected: true,
      });
    } else if (this.hops > MAX_TRANSFERS_IN_A_ROW) {
      this.fail({
        reason: undefined,
        reasonName: "transfer_failed",
        detail: `${this.hops} transfers without a Welcome (the last to zone ${transfer.zone})`,
        code: 1000,
        rejected: true,
      });
    } else {
      this.start(transfer.websocket, { type: "resume", protocolVersion: PROTOCOL_VERSION, ticket: transfer.ticket });
    }
  }

  /** Gives up (the client leaves): a Goodbye if the socket is open, then closes it. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = undefined;
    if (ws === undefined) return;
    if (ws.readyState === 1 /* OPEN */) ws.send(encodeClientMessage({ type: "goodbye" }));
    ws.close(1000, "goodbye");
  }

  private fail(info: CloseInfo): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = undefined;
    if (this.transfer !== undefined) info.transfer = this.transfer;
    this.failed(info);
    ws?.close();
  }
}

/**
 * Opens a session as `name` with `secret` at `url` (`ws://HOST:PORT/ws`); resolves once
 * the Welcome arrived (following a Transfer that comes first, on zone servers). Rejects
 * with {@link ConnectError} (a Reject, a failed connection, a timeout).
 */
export function connect(url: string, name: string, secret: string, options: ConnectOptions = {}): Promise<ThrongClient> {
  const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (Socket === undefined) return Promise.reject(new Error("no WebSocket: pass options.WebSocket"));
  const now = options.now ?? (() => performance.now());
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const handshake = new Handshake(
      Socket,
      timeoutMs,
      (ws, welcome, zone) => resolve(new ThrongClient(ws, welcome, now, options.keepAliveMs, { Socket, timeoutMs, zone })),
      (close) => reject(new ConnectError(close)),
    );
    handshake.start(url, { type: "hello", protocolVersion: PROTOCOL_VERSION, name, secret });
  });
}

/** What arrived on a socket before the caller of connect() could subscribe. */
type Backlogged = { generation: number } & ({ body: Uint8Array; at: number } | { code: number; reason: string });

/** An open session. Create it with {@link connect}. */
export class ThrongClient {
  /** Resolves once the session ended. */
  readonly closed: Promise<CloseInfo>;
  /** The last measured ping round trip, ms. */
  rttMs: number | undefined;
  private ws: WebSocket;
  private currentWelcome: Welcome;
  private currentMirror: Mirror;
  private currentZone: string | undefined;
  /** Bumped whenever a socket stops being the session's: its late events are ignored. */
  private generation = 0;
  /** The handshake with the zone a Transfer named, while it runs. */
  private following: Handshake | undefined;
  /** Messages sent while following a Transfer, sent once the destination welcomed us. */
  private held: ClientMessage[] = [];
  private readonly Socket: WebSocketConstructor;
  private readonly timeoutMs: number;
  private lastSeqSent = 0;
  private lastSentAt: number;
  private nonce = 0n;
  private readonly pings = new Map<bigint, { sentAt: number; resolve: (rtt: number) => void; reject: (e: Error) => void }>();
  private readonly listeners: { [K in keyof ClientEvents]: Set<Listener<ClientEvents[K]>> } = {
    frame: new Set(),
    event: new Set(),
    pong: new Set(),
    transfer: new Set(),
    welcome: new Set(),
    close: new Set(),
  };
  private closeInfo: CloseInfo | undefined;
  private refusal: { reason: number; detail: string } | undefined;
  private clientError: string | undefined;
  private leaving = false;
  /**
   * What arrived before the caller of connect() could subscribe (see the constructor),
   * in order; undefined once handed over.
   */
  private backlog: Backlogged[] | undefined = [];
  private resolveClosed!: (info: CloseInfo) => void;
  private readonly keepAlive: ReturnType<typeof setInterval> | undefined;

  /** @internal Use {@link connect}. */
  constructor(
    ws: WebSocket,
    welcome: Welcome,
    private readonly now: () => number,
    keepAliveMs: number | undefined,
    zones: { Socket: WebSocketConstructor; timeoutMs: number; zone: string | undefined },
  ) {
    this.ws = ws;
    this.currentWelcome = welcome;
    this.currentMirror = new Mirror(welcome);
    this.currentZone = zones.zone;
    this.Socket = zones.Socket;
    this.timeoutMs = zones.timeoutMs;
    this.lastSentAt = now();
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.attach(ws);
    // The first frames often arrive with the Welcome, and some WebSocket implementations
    // (Node's) dispatch them in the same task, before the code after `await connect()`
    // runs. They are held until a timer's turn, which comes after every pending promise
    // continuation: listeners added right after connect() resolved see every frame.
    setTimeout(() => {
      const backlog = this.backlog ?? [];
      this.backlog = undefined;
      for (const item of backlog) {
        if (item.generation !== this.generation) continue; // a socket left behind by a Transfer
        if ("body" in item) this.receive(item.body, item.at);
        else this.finish(item.code, item.reason);
      }
    }, 0);
    const keepAlive = keepAliveMs ?? welcome.idleTimeoutMs / 3;
    if (keepAlive > 0) {
      this.keepAlive = setInterval(() => {
        if (this.following === undefined && this.now() - this.lastSentAt >= keepAlive) this.ping().catch(() => {});
      }, Math.min(keepAlive, 1000));
    }
  }

  /**
   * The session parameters, with the game's schema: the current zone's (a Transfer brings
   * a new Welcome, see the `welcome` event).
   */
  get welcome(): Welcome {
    return this.currentWelcome;
  }

  /**
   * The entities in view, updated by every frame before listeners are told. Frames are
   * applied from the first timer turn after connect() resolved, so that listeners added
   * right after it see every frame. A Transfer replaces it with a fresh one (the `welcome`
   * event): read it from the client, do not keep it.
   */
  get mirror(): Mirror {
    return this.currentMirror;
  }

  /** The client's own entity id (the current zone's: a Transfer changes it). */
  get playerId(): number {
    return this.currentWelcome.playerId;
  }

  /** The zone the session is on, once a Transfer named one (a Welcome does not). */
  get zone(): string | undefined {
    return this.currentZone;
  }

  /** Whether a Transfer is being followed (between the `transfer` and `welcome` events). */
  get transferring(): boolean {
    return this.following !== undefined;
  }

  /** The seq of the last input or action sent (0: none). */
  get lastSeq(): number {
    return this.lastSeqSent;
  }

  /** Whether the session is still open (it is while following a Transfer). */
  get open(): boolean {
    return this.closeInfo === undefined && !this.leaving;
  }

  /**
   * Walk toward `(dirX, dirY)` (each -128..127; the server normalises, `(0, 0)` stands
   * still) until the next input. Returns the input's seq (from the counter shared with
   * actions). Does nothing once the session is closed.
   */
  sendInput(dirX: number, dirY: number): number {
    const seq = this.lastSeqSent + 1;
    this.send({ type: "input", seq, dirX, dirY });
    this.lastSeqSent = seq;
    return seq;
  }

  /**
   * Sends an action of `kind` (its name in `schema.actions`, or an index) whose value is
   * `bytes` (postcard-encoded as the game's type). Returns its seq. Throws if the name is
   * not in the schema: the server would drop it and count it against the client.
   */
  sendAction(kind: string | number, bytes: Uint8Array): number {
    const index = typeof kind === "number" ? kind : this.welcome.schema.actions.indexOf(kind);
    if (index < 0) throw new Error(`the server has no action named ${JSON.stringify(kind)}`);
    const seq = this.lastSeqSent + 1;
    this.send({ type: "action", seq, kind: index, bytes });
    this.lastSeqSent = seq;
    return seq;
  }

  /** Sends a Ping; resolves with the round trip in ms (rejects if the session ends first). */
  ping(): Promise<number> {
    const nonce = ++this.nonce;
    return new Promise((resolve, reject) => {
      if (!this.open) {
        reject(new Error("session closed"));
        return;
      }
      this.pings.set(nonce, { sentAt: this.now(), resolve, reject });
      this.send({ type: "ping", nonce });
    });
  }

  /** Leaves: Goodbye, then a normal WebSocket close. The player is removed at the next tick. */
  close(): Promise<CloseInfo> {
    if (this.open) {
      const following = this.following;
      if (following !== undefined) {
        // Between zones: the destination's socket (if open) gets the Goodbye.
        this.following = undefined;
        this.leaving = true;
        following.abort();
        this.end({ reason: undefined, reasonName: "goodbye", detail: "left while changing zones", code: 1000, rejected: false });
      } else {
        this.send({ type: "goodbye" });
        this.leaving = true;
        this.ws.close(1000, "goodbye");
      }
    }
    return this.closed;
  }

  /** Calls `listener` on each `type` notification; returns the function that unsubscribes. */
  on<K extends keyof ClientEvents>(type: K, listener: Listener<ClientEvents[K]>): () => void {
    const set = this.listeners[type] as Set<Listener<ClientEvents[K]>>;
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * The frames applied from now on, until the session ends (buffered if not awaited),
   * across zones (a `welcome` event marks the switch).
   */
  frames(): AsyncIterableIterator<FrameUpdate> {
    const queue: FrameUpdate[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const unsubscribe = this.on("frame", (update) => {
      queue.push(update);
      wake?.();
    });
    void this.closed.then(() => {
      done = true;
      wake?.();
    });
    const iterator: AsyncIterableIterator<FrameUpdate> = {
      next: async () => {
        while (queue.length === 0 && !done) await new Promise<void>((resolve) => (wake = resolve));
        const value = queue.shift();
        if (value !== undefined) return { value, done: false };
        unsubscribe();
        return { value: undefined, done: true };
      },
      return: async () => {
        unsubscribe();
        done = true;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Makes `ws` the session's socket: its messages and close are the session's. */
  private attach(ws: WebSocket): void {
    const generation = ++this.generation;
    ws.onmessage = (event) => {
      if (generation !== this.generation) return;
      const body = bytesOf(event.data);
      if (this.backlog === undefined) this.receive(body, this.now());
      else this.backlog.push({ generation, body, at: this.now() });
    };
    ws.onclose = (event) => {
      if (generation !== this.generation) return;
      if (this.backlog === undefined) this.finish(event.code, event.reason);
      else this.backlog.push({ generation, code: event.code, reason: event.reason });
    };
    // An error is normally followed by a close (which says more); if none comes, the
    // session is over anyway.
    ws.onerror = () => {
      if (generation !== this.generation) return;
      setTimeout(() => {
        if (generation === this.generation) this.finish(1006, "WebSocket error");
      }, 1000);
    };
  }

  private send(message: ClientMessage): void {
    if (!this.open) return;
    if (this.following !== undefined) {
      this.hold(message);
      return;
    }
    this.ws.send(encodeClientMessage(message));
    this.lastSentAt = this.now();
  }

  /**
   * Keeps a message sent between zones for the destination: the latest input only (the
   * latest wins anyway), actions and pings in order, at most {@link MAX_HELD}.
   */
  private hold(message: ClientMessage): void {
    if (message.type === "input") this.held = this.held.filter((held) => held.type !== "input");
    this.held.push(message);
    if (this.held.length > MAX_HELD) this.held.shift();
  }

  private receive(body: Uint8Array, receivedAt: number): void {
    if (this.closeInfo !== undefined || this.clientError !== undefined) return;
    try {
      const message = decodeServerMessage(body);
      switch (message.type) {
        case "frame": {
          const changes = this.currentMirror.apply(message.frame);
          const update: FrameUpdate = { ...changes, frame: message.frame, receivedAt };
          this.emit("frame", update);
          for (const event of changes.events) this.emit("event", { ...event, tick: changes.tick });
          break;
        }
        case "pong": {
          const ping = this.pings.get(message.nonce);
          if (ping === undefined) break;
          this.pings.delete(message.nonce);
          this.rttMs = receivedAt - ping.sentAt;
          ping.resolve(this.rttMs);
          this.emit("pong", this.rttMs);
          break;
        }
        case "close":
        case "reject":
          this.refusal = { reason: message.reason, detail: message.detail };
          break;
        case "transfer":
          this.follow(message);
          break;
        case "welcome":
          throw new Error("a second Welcome");
      }
    } catch (error) {
      // The server broke a promise (undecodable bytes, a frame that contradicts the view):
      // the mirror cannot be trusted any more, so the session ends.
      this.clientError = error instanceof Error ? error.message : String(error);
      this.send({ type: "goodbye" });
      this.leaving = true;
      this.ws.close(1000, "client error");
    }
  }

  /** The server hands the player to another zone: continue there with the ticket. */
  private follow(transfer: Transfer): void {
    if (!this.open || this.following !== undefined) return; // leaving anyway
    // The old socket is done (the server closes it after the Transfer): its close and
    // anything after the Transfer mean nothing now. Pongs will not come from it.
    this.generation++;
    this.rejectPings("the session moved to another zone");
    const following = new Handshake(
      this.Socket,
      this.timeoutMs,
      (ws, welcome, zone) => this.resumed(ws, welcome, zone ?? transfer.zone),
      (info) => {
        if (this.following !== following) return;
        this.following = undefined;
        this.end({ ...info, rejected: false });
      },
    );
    this.following = following;
    this.ws.close(1000, "transfer");
    this.emit("transfer", { zone: transfer.zone, address: transfer.address, websocket: transfer.websocket });
    if (this.following !== following) return; // a listener closed the client
    following.follow(transfer);
  }

  /** The destination welcomed the player: the session goes on there. */
  private resumed(ws: WebSocket, welcome: Welcome, zone: string): void {
    this.following = undefined;
    const previousPlayerId = this.currentWelcome.playerId;
    this.ws = ws;
    this.currentWelcome = welcome;
    this.currentMirror = new Mirror(welcome);
    this.currentZone = zone;
    this.refusal = undefined;
    this.attach(ws);
    this.lastSentAt = this.now();
    const held = this.held;
    this.held = [];
    for (const message of held) {
      // A ping's round trip counts from now, not from before the move.
      const ping = message.type === "ping" ? this.pings.get(message.nonce) : undefined;
      if (ping !== undefined) ping.sentAt = this.now();
      this.send(message);
    }
    this.emit("welcome", { welcome, mirror: this.currentMirror, zone, previousPlayerId });
  }

  private finish(code: number, reason: string): void {
    if (this.closeInfo !== undefined) return;
    const info = closeInfo(code, reason, this.refusal);
    if (this.clientError !== undefined) {
      Object.assign(info, { reason: undefined, reasonName: "client_error", detail: this.clientError });
    } else if (info.reason === undefined && this.leaving) {
      info.reasonName = "goodbye";
    }
    this.end(info);
  }

  private end(info: CloseInfo): void {
    if (this.closeInfo !== undefined) return;
    this.closeInfo = info;
    this.held = [];
    if (this.keepAlive !== undefined) clearInterval(this.keepAlive);
    this.rejectPings(`session closed: ${info.reasonName}`);
    this.resolveClosed(info);
    this.emit("close", info);
  }

  private rejectPings(why: string): void {
    for (const ping of this.pings.values()) ping.reject(new Error(why));
    this.pings.clear();
  }

  private emit<K extends keyof ClientEvents>(type: K, value: ClientEvents[K]): void {
    for (const listener of this.listeners[type] as Set<Listener<ClientEvents[K]>>) listener(value);
  }
}

/** Names of the WebSocket-level close codes the protocol uses (no protocol message first). */
const WS_CODES: Record<number, string> = {
  1000: "normal",
  1002: "malformed",
  1003: "malformed",
  1006: "connection_lost",
  1009: "frame_too_large",
};

/** The close info of a WebSocket close, preferring the server's own Reject/Close message. */
function closeInfo(code: number, wsReason: string, refusal: { reason: number; detail: string } | undefined): CloseInfo {
  if (refusal !== undefined) {
    return { reason: refusal.reason, reasonName: closeReasonName(refusal.reason), detail: refusal.detail, code, rejected: false };
  }
  if (code >= 4000 && code < 5000) {
    const reason = code - 4000;
    return { reason, reasonName: closeReasonName(reason), detail: wsReason, code, rejected: false };
  }
  return { reason: undefined, reasonName: WS_CODES[code] ?? `ws_${code}`, detail: wsReason, code, rejected: false };
}

function bytesOf(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new Error(`a non-binary WebSocket message (${typeof data})`);
}
